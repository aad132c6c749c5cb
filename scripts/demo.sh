#!/usr/bin/env bash
# The main job, as far as it goes today: build pbft, generate a 4-replica key set, print the
# cluster file. Later issues extend it to a running cluster, a fault and a report.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_libsodium

echo "==> swift build -c release"
swift build -c release --product pbft
pbft=.build/release/pbft

out=runs/demo/keys
echo "==> $pbft keygen --replicas 4 --clients 4 --out $out --force"
"$pbft" keygen --replicas 4 --clients 4 --out "$out" --force

echo "==> $out/cluster.toml"
cat "$out/cluster.toml"
