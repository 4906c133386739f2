#!/usr/bin/env bash
# Restart cost of a causal kafka-consumer (issue 13): the time from a restart to its first new
# delivery, after 10^3 and after 10^6 messages were delivered and committed by the same group.
# Goal: equal within noise (independent of the topic's length).
#
#   scripts/testenv.sh run -- scripts/bench-restart.sh [options]
#
#   -r RUNS       restarts measured per size, median reported (default 5)
#   --sizes "A B" messages committed before the restarts (default "1000 1000000")
#   --no-build    use target/release's binaries as they are (default: cargo build --release --bins)
#
# For each size N: a new topic of 3 partitions gets N vector-stamped envelopes from one
# kafka-producer (--count N, one node, so one partition), and a causal consumer of a fresh group
# delivers them all and stops on --idle-timeout (its final commit stores the offsets and the
# delivery state). Then RUNS times: one more message is written by a new node, and the same
# group's consumer is started again; the figure is the wall time from its start to its first
# "deliver" line (process start-up, metadata, committed offsets and the first fetch included),
# together with the records it read. It is then stopped with SIGTERM (and commits).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=5 SIZES="1000 1000000" BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        -r) RUNS=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
        *) echo "bench-restart: unknown argument $1" >&2; exit 2 ;;
    esac
done
log() { printf 'bench-restart: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ -n "${KTS_BOOTSTRAP:-}" ] || die "KTS_BOOTSTRAP not set: run through scripts/testenv.sh run -- $0"
command -v python3 >/dev/null || die "python3 missing"
B=$KTS_BOOTSTRAP
T=${CARGO_TARGET_DIR:-$here/target}/release
[ "$BUILD" = 0 ] || (cd "$here" && cargo build --release --bins -q)
P=$T/kafka-producer C=$T/kafka-consumer
[ -x "$P" ] && [ -x "$C" ] || die "no release binaries in $T"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# first_delivery GROUP TOPIC: starts the consumer, prints "<ms to the first deliver line> <records
# read>" once it has delivered something and been stopped with SIGTERM.
first_delivery() {
    python3 - "$C" "$B" "$1" "$2" <<'PY'
import json, subprocess, sys, time
c, b, group, topic = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.Popen([c, topic, "--bootstrap", b, "--group", group, "--delivery", "causal",
                      "--causal-timeout", "600000", "--format", "json"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
first = None
for line in p.stdout:
    if first is None and '"event":"deliver"' in line:
        first = (time.monotonic() - t0) * 1e3
        p.terminate()
    if '"event":"summary"' in line:
        received = json.loads(line)["received"]
p.wait(timeout=60)
print(f"{first:.0f} {received}")
PY
}

printf 'committed\trun\tfirst_delivery_ms\trecords_read\n' >"$work/results.tsv"
for n in $SIZES; do
    topic=bench-restart-$n-$RANDOM$RANDOM group=bench-restart-$n-$RANDOM$RANDOM
    "$P" --bootstrap "$B" --create-topic 3 --no-state --count 0 "$topic" >/dev/null
    log "writing $n messages to $topic"
    "$P" --bootstrap "$B" --no-state --node-id bench-a --clock-type vector --count "$n" \
        --format json "$topic" >/dev/null
    log "delivering and committing them (group $group)"
    start=$(date +%s.%N)
    "$C" "$topic" --bootstrap "$B" --group "$group" --delivery causal --format json \
        --buffer-size 10000 --idle-timeout 3 >"$work/first.json"
    delivered=$(grep -c '"event":"deliver"' "$work/first.json" || true)
    [ "$delivered" = "$n" ] || die "first run delivered $delivered of $n"
    log "  first run: $(python3 -c "print(f'{$(date +%s.%N) - $start - 3:.1f}')") s (without the 3 s idle timeout)"
    for r in $(seq 1 "$RUNS"); do
        "$P" --bootstrap "$B" --no-state --node-id "bench-new-$r" --clock-type vector --count 1 \
            --format json "$topic" >/dev/null
        read -r ms read_n < <(first_delivery "$group" "$topic")
        printf '%s\t%s\t%s\t%s\n' "$n" "$r" "$ms" "$read_n" >>"$work/results.tsv"
        log "  restart $r: first new delivery after $ms ms, $read_n records read"
    done
done
cat "$work/results.tsv"
python3 - "$work/results.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for n in dict.fromkeys(r["committed"] for r in rows):
    ms = sorted(int(r["first_delivery_ms"]) for r in rows if r["committed"] == n)
    reads = sorted(int(r["records_read"]) for r in rows if r["committed"] == n)
    print(f"committed {n}: first new delivery median {statistics.median(ms):.0f} ms "
          f"(min {ms[0]}, max {ms[-1]}, n={len(ms)}); records read per restart {reads[0]}..{reads[-1]}")
PY
