#!/usr/bin/env bash
# System packages the tests need: OpenSSH server for the real SSH test hosts, and python3-venv so that
# provisioning can create virtual environments on them, and tmux for driving the TUI as a person would.
# Idempotent; runs as root or through sudo.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && python3 -c 'import ensurepip, venv' 2>/dev/null && [ -x /usr/bin/python3 ] \
  && command -v tmux >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends openssh-server python3 python3-venv procps tmux >/dev/null
