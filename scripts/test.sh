#!/usr/bin/env bash
# The whole test suite: set-up (packages + release build), then `swift test`,
# which includes the tests that start real `mpirun` jobs. The exit code is
# the suite's; the last line is a plain "N passed, N failed" summary.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || { echo "test: setup failed"; exit 1; }
# Test-only tools: headless chromium for the report test.
scripts/setup-report-test.sh || { echo "test: installing chromium failed"; exit 1; }

# mpirun as root, and more ranks than this machine's cores, in every test.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

log=$(mktemp /tmp/ecenet-test.XXXXXX)
swift test "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# "Executed N tests, with M failures" or "Executed N tests, with K tests skipped and M failures".
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with .*[0-9]+ failures?" "$log" | tail -1)
total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
skipped=$(sed -nE 's/.*with ([0-9]+) tests? skipped.*/\1/p' <<<"$summary")
rm -f "$log"
if [[ -z "$summary" ]]; then
  echo "test: the XCTest summary is missing (build failure?)"
  echo "test: 0 passed, 1 failed"
  exit 1
fi
# XCTest counts failures (assertions), not failed tests; any failure fails the run.
if [[ $rc -ne 0 && $failed -eq 0 ]]; then failed=1; fi
passed=$(( total - ${skipped:-0} - (failed > total ? total : failed) ))
echo "test: $passed passed, $failed failed, ${skipped:-0} skipped"
exit $rc
