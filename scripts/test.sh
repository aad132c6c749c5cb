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

test_start=$(date +%s)
echo "==> swift test"
swift test --skip-build
echo "==> tests took $(elapsed_since "$test_start") s (total $(elapsed_since "$start") s)"
