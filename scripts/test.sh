#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs libsodium when missing, builds, tests.
# The exit code is swift test's own (its last line can say "passed" when only an XCTest failed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_libsodium

start=$(date +%s)
echo "==> swift build --build-tests"
swift build --build-tests
echo "==> build took $(elapsed_since "$start") s"

# Two phases. The suites that run real replica processes (launches, experiments, process
# tests) measure time: service gaps, failover, liveness bounds. Run beside the CPU-bound
# simulator swarm on two cores they were starved into timeouts their verdicts then judge.
# So: everything else in parallel first, then those one at a time.
processes='^PBFT(Testbed|Runtime)Tests\.'
test_start=$(date +%s)
echo "==> swift test (in-process suites, in parallel)"
swift test --skip-build --skip "$processes"
echo "==> swift test (suites with replica processes, one at a time)"
swift test --skip-build --filter "$processes" --no-parallel
echo "==> tests took $(elapsed_since "$test_start") s (total $(elapsed_since "$start") s)"
