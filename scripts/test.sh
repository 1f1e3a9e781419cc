#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian/Ubuntu machine, then run lint, types, import contracts
# and the whole test suite (unit, hypothesis, real-sshd integration). Used by README and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/install-test-deps.sh ]; then
  bash scripts/install-test-deps.sh
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev,ray]'

echo "== ruff";        .venv/bin/ruff check llmctl sim tests scripts
echo "== mypy";        .venv/bin/mypy
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest"
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
