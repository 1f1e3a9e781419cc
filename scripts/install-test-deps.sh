#!/usr/bin/env bash
# System packages the tests need: OpenSSH server for the real SSH test hosts. Idempotent; root or sudo.
set -euo pipefail
if [ -x /usr/sbin/sshd ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends openssh-server procps >/dev/null
