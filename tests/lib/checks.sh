#!/usr/bin/env bash
# The PASS/FAIL bookkeeping the shell suites share (tests/stack/run.sh,
# tests/swarm/run.sh): each check prints one PASS or FAIL line and is counted;
# the suite prints "N passed, M failed" from PASSED and FAILED at its end.
# Sourced, not run.

PASSED=0
FAILED=0

pass() {
  PASSED=$((PASSED + 1))
  printf 'PASS %s\n' "$*"
}

fail() {
  FAILED=$((FAILED + 1))
  printf 'FAIL %s\n' "$*"
}

# Runs a command as one check: PASS, or FAIL followed by its output.
check() {
  local name="$1"
  shift
  local out
  if out="$("$@" 2>&1)"; then
    pass "${name}"
  else
    fail "${name}"
    printf '%s\n' "${out}" | sed 's/^/    /'
  fi
}
