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
# pytest's exit status 5 (nothing collected) is a failure here, like any other non-zero status.
check() {
  if [ "$2" -eq 5 ]; then echo "pytest ($1) collected no tests: that is a failure here" >&2; return 1; fi
  return "$2"
}

if [ "$#" -gt 0 ]; then
  echo "== pytest $*"
  set +e; .venv/bin/python -m pytest -q "$@"; rc=$?; set -e
  check "$*" "$rc"
  exit $?
fi

# The whole suite in two lanes, then the rest. Lane 1: the real-engine tier (vLLM's CPU backend: mostly one
# busy core, waiting on engine start-ups; its engines on ports 18000+, its sshd hosts on their own subnet),
# then the integration tests of local hosts that own their port ranges (pools 22600+, adapters 23000+,
# shadow replay 21000+; gateways on free ports; no sshd). Lane 2: the unit, simulator and TUI suites (one
# core; no sshd hosts; the TUI's demo engines on ports 8000+). The other integration and chaos suites follow,
# alone, since they start sshd hosts and many engines on the planner's ports.
SIDE_LOCAL="tests/integration/test_pool_local.py tests/integration/test_adapters_local.py tests/integration/test_shadow_replay_local.py"
real_log=$(mktemp)
echo "== pytest tests/real_engine, then $SIDE_LOCAL (in the background, its log follows) | tests/unit tests/sim tests/tui"
set +e
( .venv/bin/python -m pytest -q tests/real_engine; r1=$?
  # shellcheck disable=SC2086
  .venv/bin/python -m pytest -q $SIDE_LOCAL; r2=$?
  echo "lane statuses: real_engine=$r1 side_local=$r2"
  if [ "$r1" -ne 0 ]; then exit "$r1"; fi; exit "$r2" ) > "$real_log" 2>&1 &
real_pid=$!
.venv/bin/python -m pytest -q tests/unit tests/sim tests/tui; rc_unit=$?
wait "$real_pid"; rc_real=$?
echo "== pytest tests/real_engine, then the side-lane integration tests"
cat "$real_log"
echo "== pytest tests/integration (but the side lane's)"
ignores=()
for f in $SIDE_LOCAL; do ignores+=("--ignore=$f"); done
.venv/bin/python -m pytest -q tests/integration "${ignores[@]}"; rc_rest=$?
set -e
status=0
check "tests/unit tests/sim tests/tui" "$rc_unit" || status=1
check "tests/real_engine + side lane" "$rc_real" || status=1
check "tests/integration" "$rc_rest" || status=1
# Every test file belongs to one lane: a new top-level test folder must be added above.
stray=$(find tests -mindepth 1 -maxdepth 1 -type d ! -name bench ! -name __pycache__ \
  ! -name unit ! -name sim ! -name real_engine ! -name integration ! -name tui)
if [ -n "$stray" ]; then echo "test folders in no lane of scripts/test.sh: $stray" >&2; status=1; fi
exit "$status"
