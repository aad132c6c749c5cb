#!/usr/bin/env bash
# Launches N replicas on localhost, each behind its own fault proxy, and keeps them running
# until Ctrl-C (which stops everything it started). Further arguments go to `pbft launch`,
# e.g. scripts/cluster.sh 4 --load 4 --allow-byzantine. Break it from another terminal with
# `.build/release/pbft ctl ...` (docs/faults.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_libsodium

n=${1:-}
if ! [[ "$n" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/cluster.sh N [pbft launch options]" >&2
    exit 2
fi
shift
echo "==> swift build -c release --product pbft" >&2
swift build -c release --product pbft >&2
exec .build/release/pbft launch --replicas "$n" "$@"
