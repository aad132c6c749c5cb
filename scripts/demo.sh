#!/usr/bin/env bash
# The main job: build pbft, generate keys for 4 replicas, start them as processes on
# localhost UDP, run a few client operations, kill the primary (SIGKILL), show the view
# change and the cluster serving again, restart the old primary from its data directory,
# and stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_libsodium

echo "==> swift build -c release --product pbft"
swift build -c release --product pbft
pbft=.build/release/pbft

run=runs/demo
rm -rf "$run"
mkdir -p "$run"
base_port=$((20000 + RANDOM % 20000))
echo "==> keys for 4 replicas and 4 clients (ports $base_port..$((base_port + 3)))"
"$pbft" keygen --replicas 4 --clients 4 --out "$run/keys" --base-port "$base_port" --force | head -1

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all EXIT

start_replica() {
    "$pbft" replica --cluster "$run/keys/cluster.toml" --id "$1" --key "$run/keys/replica-$1.key" \
        --data "$run/data/r$1" --log-level info >> "$run/replica-$1.log" 2>&1 &
    pids[$1]=$!
}
for i in 0 1 2 3; do start_replica "$i"; done
echo "==> 4 replicas started (pids ${pids[*]}); logs in $run/replica-*.log"
sleep 1

client() { "$pbft" client --cluster "$run/keys/cluster.toml" --key "$run/keys/client-$1.key" "${@:2}"; }
echo "==> client operations"
echo "put color blue   -> $(client 0 put color blue)"
echo "get color        -> $(client 1 get color)"
echo "cas color blue red -> $(client 2 cas color blue red)"
echo "get color        -> $(client 3 get color)"

echo "==> a short load: 4 closed-loop clients for 3 s"
"$pbft" client --cluster "$run/keys/cluster.toml" --keys "$run/keys" --clients 4 --duration 3

echo "==> kill -9 the primary (replica 0, pid ${pids[0]})"
kill -KILL "${pids[0]}"
start=$(date +%s%N)
echo "put after-crash yes -> $(client 0 put after-crash yes)"
echo "    completed $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill (view change included)"
echo "get color        -> $(client 1 get color)"
grep -h "view" "$run"/replica-1.log | tail -n 2 || true

echo "==> restart replica 0 from its data directory"
start_replica 0
sleep 2
"$pbft" client --cluster "$run/keys/cluster.toml" --keys "$run/keys" --clients 4 --duration 2
sleep 1
echo "==> last executed sequence number per replica (execution.jsonl)"
for i in 0 1 2 3; do
    printf "replica %d: %s\n" "$i" "$(tail -n 1 "$run/data/r$i/execution.jsonl" | grep -o '"seq":[0-9]*' || echo none)"
done
echo "==> stopping"
stop_all
trap - EXIT
echo "done: logs, data and execution logs are in $run/"
