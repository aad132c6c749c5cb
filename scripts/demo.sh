#!/usr/bin/env bash
# The main job: build pbft, then
#  1. run the kill-primary experiment (experiments/kill-primary.toml): 4 replica processes
#     behind the fault proxy, 4 clients, SIGKILL of the primary under load, restart; the
#     checkers' verdicts and a self-contained HTML report;
#  2. drive a launch by hand: client operations, `pbft ctl kill primary`, restart, a
#     partition of the new primary and heal, and the event log with every fault's time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_libsodium

echo "==> swift build -c release --product pbft"
swift build -c release --product pbft
pbft=.build/release/pbft

mkdir -p runs
rm -rf runs/demo-kill-primary
echo "==> pbft run experiments/kill-primary.toml"
set +e
"$pbft" run experiments/kill-primary.toml --out runs/demo-kill-primary
verdict=$?
set -e
echo "    report: $(pwd)/runs/demo-kill-primary/report.html (open it in a browser; it needs no network)"
[ "$verdict" -eq 0 ] || { echo "error: the kill-primary experiment failed a verdict" >&2; exit 1; }

run=runs/demo
rm -rf "$run"
base_port=$((20000 + RANDOM % 12000))   # below the ephemeral range (32768+)
echo "==> pbft launch --replicas 4 --dir $run --base-port $base_port"
"$pbft" launch --replicas 4 --dir "$run" --base-port "$base_port" > runs/demo-launch.out 2>&1 &
launcher=$!
stop_launch() {
    kill -TERM "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
}
trap stop_launch EXIT
for _ in $(seq 1 100); do [ -f "$run/launch.json" ] && break; sleep 0.1; done
[ -f "$run/launch.json" ] || { cat runs/demo-launch.out; echo "error: the launch did not start" >&2; exit 1; }
sed -n '1,8p' runs/demo-launch.out | sed 's/^/    /'
sleep 1

ctl() { "$pbft" ctl "$@" --run "$run"; }
client() { "$pbft" client --cluster "$run/keys/cluster.toml" --key "$run/keys/client-$1.key" "${@:2}"; }
echo "==> client operations"
echo "put color blue     -> $(client 0 put color blue)"
echo "get color          -> $(client 1 get color)"
echo "cas color blue red -> $(client 2 cas color blue red)"
echo "get color          -> $(client 3 get color)"

echo "==> a short load: 4 closed-loop clients for 3 s"
"$pbft" client --cluster "$run/keys/cluster.toml" --keys "$run/keys" --clients 4 --duration 3
ctl status

echo "==> pbft ctl kill primary"
start=$(date +%s%N)
ctl kill primary
echo "put after-crash yes -> $(client 0 put after-crash yes)"
echo "    completed $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill command (view change included)"
ctl status | grep -E "^primary|^r" | head -5

echo "==> pbft ctl restart 0 (from its data directory)"
ctl restart 0
"$pbft" client --cluster "$run/keys/cluster.toml" --keys "$run/keys" --clients 4 --duration 2

echo "==> pbft ctl partition primary, a load, then pbft ctl heal"
ctl partition primary
"$pbft" client --cluster "$run/keys/cluster.toml" --keys "$run/keys" --clients 4 --duration 3
ctl heal
"$pbft" client --cluster "$run/keys/cluster.toml" --keys "$run/keys" --clients 4 --duration 2
ctl status

echo "==> stopping the launch (SIGTERM): it stops every process it started"
stop_launch
trap - EXIT
echo "==> the event log ($run/events.jsonl)"
cut -c1-160 "$run/events.jsonl"
echo "done: the experiment's results and report are in runs/demo-kill-primary/; the launch's keys, logs, data and events in $run/"
