#!/usr/bin/env bash
# Runs the adversarial simulator swarm over RUNS seeds from FIRST_SEED, in chunks, and keeps
# every failing seed with the line that replays it (docs/simulator.md, "A long swarm").
#
#   scripts/swarm.sh RUNS [FIRST_SEED] [--replicas 4,7,10] [--chunk 500] [--jobs N] [--generator G]
#
# Prints a line per chunk (seeds done, failures so far, runs/s, elapsed); writes each chunk's
# output and failures.txt to results/swarm-<first seed>-<time>/; prints the combinations the
# runs met (summed over the chunks) and the failures at the end. Exit code: 0 if every run passed, 1 if any failed or a chunk crashed, 2 for a bad
# argument, 130 on Ctrl-C and 143 on SIGTERM (after printing what was done).
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: scripts/swarm.sh RUNS [FIRST_SEED] [--replicas 4,7,10] [--chunk 500] [--jobs N] [--generator G]"
bad_argument() { echo "swarm.sh: $1 ($usage)" >&2; exit 2; }

runs="" first="" replicas="4,7,10" chunk=500 jobs=$(nproc) generator=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) echo "$usage"; exit 0 ;;
        --replicas|--chunk|--jobs|--generator)
            [ $# -ge 2 ] || bad_argument "$1 needs a value"
            case "$1" in --replicas) replicas=$2 ;; --chunk) chunk=$2 ;; --jobs) jobs=$2 ;; --generator) generator=$2 ;; esac
            shift 2 ;;
        -*) bad_argument "unknown option $1" ;;
        *)
            if [ -z "$runs" ]; then runs=$1
            elif [ -z "$first" ]; then first=$1
            else bad_argument "unexpected argument $1"
            fi
            shift ;;
    esac
done
first=${first:-10000000}
# Seeds stay below 10^18 so that bash's signed 64-bit arithmetic never overflows.
[[ "$runs" =~ ^[1-9][0-9]{0,8}$ ]] || bad_argument "RUNS must be a whole number from 1 to 999999999, got '${runs}'"
[[ "$first" =~ ^(0|[1-9][0-9]{0,16})$ ]] || bad_argument "FIRST_SEED must be a whole number below 10^17, got '$first'"
[[ "$chunk" =~ ^[1-9][0-9]{0,6}$ ]] || bad_argument "--chunk must be a whole number of runs from 1, got '$chunk'"
[[ "$jobs" =~ ^[1-9][0-9]{0,3}$ ]] || bad_argument "--jobs must be a whole number from 1, got '$jobs'"
[[ "$replicas" =~ ^[0-9]+(,[0-9]+)*$ ]] || bad_argument "--replicas must be replica counts separated by commas, e.g. 4,7,10, got '$replicas'"
[[ -z "$generator" || "$generator" =~ ^[1-9]$ ]] || bad_argument "--generator must be a generator number, e.g. 2, got '$generator'"
# What a seed draws: pbft sim's newest generator unless --generator names one.
generator_option=()
[ -z "$generator" ] || generator_option=(--generator "$generator")
for n in ${replicas//,/ }; do
    (( 10#$n >= 4 && 10#$n <= 64 )) || bad_argument "--replicas: each count must be from 4 to 64, got $n"
done

# PBFT_BINARY: another build of pbft to run (e.g. .build-sim/release/pbft); never built here.
binary=${PBFT_BINARY:-.build/release/pbft}
if [ -n "${PBFT_BINARY:-}" ]; then
    [ -x "$binary" ] || bad_argument "PBFT_BINARY=$binary is not an executable"
elif [ ! -x "$binary" ]; then
    source scripts/lib.sh
    ensure_libsodium
    echo "==> $binary is missing; swift build -c release"
    swift build -c release
elif [ -n "$(find Sources Package.swift -newer "$binary" -print -quit)" ]; then
    echo "warning: sources changed since $binary was built; run swift build -c release to test them" >&2
fi

results="results/swarm-$first-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
failures_file="$results/failures.txt"
: > "$failures_file"

start=$(date +%s)
done_runs=0 failed_runs=0 crashed_runs=0
echo "==> $runs adversarial runs from seed $first (replicas $replicas, chunks of $chunk, $jobs jobs); output in $results"

elapsed() {
    local s=$(( $(date +%s) - start ))
    printf '%dh%02dm%02ds' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
}

runs_per_second() {
    local s=$(( $(date +%s) - start ))
    awk -v runs="$done_runs" -v s="$s" 'BEGIN { printf "%.1f", runs / (s > 0 ? s : 1) }'
}

# The combinations the runs met (pbft sim's "combinations:" line and the Byzantine
# behaviours under it), summed over the chunks that finished.
combination_totals() {
    cat "$results"/chunk-*.log 2>/dev/null | awk '
        function numbers(line, into,    n, i, parts, k) {
            n = split(line, parts, /[^0-9]+/)
            k = 0
            for (i = 1; i <= n; i++) if (parts[i] != "") into[++k] = parts[i] + 0
            return k
        }
        /^combinations: / {
            line = $0; sub(/3f\+1/, "", line)
            numbers(line, c)
            for (i = 1; i <= 4; i++) total[i] += c[i]
            seen = 1
            next
        }
        seen && /^  [A-Za-z]+: [0-9]+ runs, / {
            name = $1; sub(/:$/, "", name)
            if (!(name in runs)) order[++behaviours] = name
            numbers(substr($0, index($0, ":")), b)
            runs[name] += b[1]; reconfigured[name] += b[2]; primary[name] += b[3]
        }
        END {
            if (!seen) exit
            printf "==> combinations: %d runs with n != 3f+1 (%d from the start), %d with loss, state transfer and a reconfiguration, %d with amnesia and a reconfiguration\n", total[1], total[2], total[3], total[4]
            for (i = 1; i <= behaviours; i++) {
                name = order[i]
                printf "  %s: %d runs, %d with a reconfiguration (%d of them as primary of view 0)\n", name, runs[name], reconfigured[name], primary[name]
            }
        }'
}

finish() {
    local status=$1
    local seeds="no seeds"
    (( done_runs == 0 )) || seeds="seeds $first..$(( first + done_runs - 1 ))"
    combination_totals
    echo "==> $done_runs of $runs runs done ($seeds), $failed_runs failed, $crashed_runs crashed, $(runs_per_second) runs/s, elapsed $(elapsed)"
    if [ -s "$failures_file" ]; then
        echo "==> failures ($failures_file; replay with $binary in place of pbft):"
        cat "$failures_file"
    fi
    exit "$status"
}

seed=$first
# Ctrl-C reaches pbft sim too (same process group); the chunk it was running is not counted.
trap 'echo; echo "==> interrupted during the chunk from seed $seed"; finish 130' INT
trap 'echo "==> terminated during the chunk from seed $seed"; finish 143' TERM

# The seed of a chunk that crashed (no summary line): rerun it on one job, printing each run;
# the seed after the last one printed is the one that crashed. Prints that seed.
locate_crash() {
    local from=$1 count=$2 log=$3 last
    set +e
    "$binary" sim --adversarial "${generator_option[@]}" --runs "$count" --replicas "$replicas" --seed "$from" --jobs 1 --verbose > "$log" 2>&1
    set -e
    last=$(grep -oE '^seed [0-9]+:' "$log" | tail -n 1 | tr -dc 0-9)
    echo $(( ${last:-$(( from - 1 ))} + 1 ))
}

# What the process printed after its last run: the reason it died.
crash_reason() {
    awk '/^seed [0-9]+:/ { reason = ""; next } { reason = reason "    " $0 "\n" } END { printf "%s", reason }' "$1" | tail -n 10
}

# Seed ranges still to run, "first:count", in seed order. A range that crashes is split
# around the seed that crashed, and both sides run again as ranges of their own.
pending=()
for (( s = first; s < first + runs; s += chunk )); do
    pending+=("$s:$(( first + runs - s < chunk ? first + runs - s : chunk ))")
done

crashed_runs=0
while (( ${#pending[@]} > 0 )); do
    seed=${pending[0]%%:*} count=${pending[0]##*:}
    pending=("${pending[@]:1}")
    log="$results/chunk-$seed.log"
    # pbft sim exits 1 when a run fails: that is a result here, not a reason to stop.
    set +e
    "$binary" sim --adversarial "${generator_option[@]}" --runs "$count" --replicas "$replicas" --seed "$seed" --jobs "$jobs" > "$log" 2>&1
    status=$?
    set -e
    summary=$(grep -E '^[0-9]+ failed, ' "$log" || true)
    if [ -n "$summary" ]; then
        chunk_failed=${summary%% *}
        # Each "FAILED seed N: replay with: ..." line and the indented reasons after it.
        awk '/^FAILED seed /{ block = 1; print; next } block && /^    /{ print; next } { block = 0 }' "$log" | tee -a "$failures_file"
        if (( chunk_failed == 0 && status != 0 )); then
            echo "warning: pbft sim exited $status with no failed run; see $log" >&2
        fi
        failed_runs=$(( failed_runs + chunk_failed ))
        done_runs=$(( done_runs + count ))
        echo "seeds $seed..$(( seed + count - 1 )): $chunk_failed failed | $done_runs/$runs done, $failed_runs failed, $crashed_runs crashed, $(runs_per_second) runs/s, elapsed $(elapsed)"
        continue
    fi
    # No summary: the process died (a precondition, a signal) or refused its arguments.
    if (( status == 64 )); then
        echo "error: pbft sim refused its arguments:" >&2
        cat "$log" >&2
        finish 1
    fi
    echo "seeds $seed..$(( seed + count - 1 )): the process died (exit $status); locating the run on one job"
    mv "$log" "$results/died-$seed.log"
    locate_log="$results/locate-$seed.log"
    crashed=$(locate_crash "$seed" "$count" "$locate_log")
    if (( crashed >= seed + count )); then
        echo "error: seeds $seed..$(( seed + count - 1 )) killed pbft sim (exit $status) but not on one job: see $results/died-$seed.log" >&2
        finish 1
    fi
    {
        echo "CRASHED seed $crashed (exit $status): replay with: pbft sim --seed $crashed --runs 1 --replicas $replicas --real-signature-every 10 --adversarial${generator:+ --generator $generator}"
        crash_reason "$locate_log"
    } | tee -a "$failures_file"
    crashed_runs=$(( crashed_runs + 1 ))
    done_runs=$(( done_runs + 1 ))
    # The runs before it did not crash on one job but may have failed: run them again for their verdicts.
    split=()
    (( crashed == seed )) || split+=("$seed:$(( crashed - seed ))")
    (( crashed == seed + count - 1 )) || split+=("$(( crashed + 1 )):$(( seed + count - 1 - crashed ))")
    pending=("${split[@]}" "${pending[@]}")
done

trap - INT TERM
if (( failed_runs > 0 || crashed_runs > 0 )); then finish 1; fi
finish 0
