#!/usr/bin/env bash
# Instruction counts per message of kafka-producer / kafka-consumer and of librdkafka's
# rdkafka_performance, under valgrind's callgrind (whole process: our code, librdkafka's threads,
# libc), against the test environment's broker. Counts do not depend on how loaded the machine is.
#
#   scripts/testenv.sh run -- scripts/profile-callgrind.sh [-n N] [--out DIR]
#
#   -n N       messages of the long runs (default 20000); every tool also runs N/5, and the
#              report gives the marginal count (I(N) - I(N/5)) / (N - N/5): start-up cancels
#   --out DIR  callgrind files and outputs (default $CARGO_TARGET_DIR/profile-callgrind/<date>);
#              read one with `callgrind_annotate --inclusive=yes DIR/cg.TOOL.N`
#
# Producers (one node, one partition, vector clock, 300-byte content, --format json to a file):
# --envelope headers, --envelope json, rdkafka_performance -P -s 300 and -s 554 (the envelope's
# size), and -s 300 with the header stamp's two headers (bench-e2e.sh --stamp-header-args). Consumers (a topic of 3 partitions written by three --observe nodes, --format json to a
# file): --delivery causal (JSON envelopes and header-stamped), --delivery arrival
# --analyze-ordering, and rdkafka_performance -G on each topic (on the header topic also with
# -H parse: librdkafka parsing each record's headers). Uses the release binaries of
# $CARGO_TARGET_DIR (build them first) and scripts/build-rdkafka-perf.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
N=20000 OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
        *) echo "profile-callgrind: unknown argument $1" >&2; exit 2 ;;
    esac
done
die() { printf 'profile-callgrind: error: %s\n' "$*" >&2; exit 1; }
[ -n "${KTS_BOOTSTRAP:-}" ] || die "KTS_BOOTSTRAP not set: run through scripts/testenv.sh run -- $0"
command -v valgrind >/dev/null || die "valgrind missing (Debian: apt-get install valgrind)"
P=$CARGO_TARGET_DIR/release/kafka-producer C=$CARGO_TARGET_DIR/release/kafka-consumer
[ -x "$P" ] && [ -x "$C" ] || die "no release binaries in $CARGO_TARGET_DIR (cargo build --release --bins)"
RD=$("$here/scripts/build-rdkafka-perf.sh")
OUT=${OUT:-$CARGO_TARGET_DIR/profile-callgrind/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
B=$KTS_BOOTSTRAP
CG=(valgrind --tool=callgrind --dump-instr=no --collect-jumps=no)
mapfile -t STAMP_HEADERS < <("$here/scripts/bench-e2e.sh" --stamp-header-args)
RD_P=(-a -1 -X enable.idempotence=true -X linger.ms=5 -X queue.buffering.max.messages=20000)
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/machine.txt"

mktopic() {
    "$P" --bootstrap "$B" --create-topic 3 --no-state --count 0 "$1" >/dev/null 2>"$OUT/mktopic.err" \
        || { cat "$OUT/mktopic.err" >&2; die "could not create topic $1"; }
}
profile() { # NAME MSGS CMD...: one callgrind run, its count appended to counts.tsv
    local name=$1 msgs=$2
    shift 2
    "${CG[@]}" --callgrind-out-file="$OUT/cg.$name.$msgs" "$@" >"$OUT/$name.$msgs.out" 2>"$OUT/$name.$msgs.err" \
        || { tail -n 5 "$OUT/$name.$msgs.err" >&2; die "$name ($msgs messages) failed"; }
    printf '%s\t%s\t%s\n' "$name" "$msgs" \
        "$(sed -n 's/^summary: //p' "$OUT/cg.$name.$msgs")" >>"$OUT/counts.tsv"
}

: >"$OUT/counts.tsv"
for msgs in "$N" $((N / 5)); do
    for tool in producer-headers producer-json rdkafka_performance-300 rdkafka_performance-554 \
        rdkafka_performance-300-stamp-headers; do
        t=cg-$tool-$msgs-$RANDOM
        mktopic "$t"
        case $tool in
            producer-*) profile "$tool" "$msgs" "$P" --bootstrap "$B" --node-id bench-node \
                --count "$msgs" --size 300 --clock-type vector --envelope "${tool#producer-}" \
                --no-state --format json "$t" ;;
            rdkafka_performance-300-stamp-headers) profile "$tool" "$msgs" "$RD" -P -t "$t" \
                -b "$B" -s 300 -c "$msgs" -k bench-node "${STAMP_HEADERS[@]}" "${RD_P[@]}" ;;
            rdkafka_performance-*) profile "$tool" "$msgs" "$RD" -P -t "$t" -b "$B" \
                -s "${tool#rdkafka_performance-}" -c "$msgs" -k bench-node "${RD_P[@]}" ;;
        esac
    done
    for envelope in json headers; do
        t=cg-src-$envelope-$msgs-$RANDOM
        mktopic "$t"
        each=$((msgs / 3)) pids=()
        for i in 0 1 2; do
            "$P" --bootstrap "$B" --node-id "node-$i" --observe --count "$each" --size 300 \
                --clock-type vector --envelope "$envelope" --no-state "$t" >/dev/null 2>"$OUT/fill.$i.err" &
            pids+=($!)
        done
        for i in 0 1 2; do wait "${pids[$i]}" || { cat "$OUT/fill.$i.err" >&2; die "filling $t failed"; }; done
        n=$((3 * each))
        profile "consumer-causal-$envelope" "$n" "$C" --bootstrap "$B" --group "g-$RANDOM$RANDOM" \
            --delivery causal --format json --from-beginning --idle-timeout 2 --max-messages "$n" "$t"
        profile "rdkafka_performance-G-$envelope" "$n" "$RD" -G "g-$RANDOM$RANDOM" -t "$t" -b "$B" \
            -c "$n" -X queued.min.messages=100000
        if [ "$envelope" = headers ]; then
            profile rdkafka_performance-G-headers-parse "$n" "$RD" -G "g-$RANDOM$RANDOM" -t "$t" \
                -b "$B" -c "$n" -H parse -X queued.min.messages=100000
        fi
        if [ "$envelope" = json ]; then
            profile consumer-arrival-analyze-json "$n" "$C" --bootstrap "$B" --group "g-$RANDOM$RANDOM" \
                --delivery arrival --analyze-ordering --format json --from-beginning --idle-timeout 2 \
                --max-messages "$n" "$t"
        fi
    done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

cat "$OUT/machine.txt"
python3 - "$OUT/counts.tsv" <<'PY' | tee "$OUT/report.md"
import sys
runs = {}
for line in open(sys.argv[1]):
    name, msgs, total = line.split()
    runs.setdefault(name, []).append((int(msgs), int(total)))
print("| tool | instructions (long run) | per message, whole process | per message, marginal |")
print("|---|---:|---:|---:|")
for name, rs in runs.items():
    (nl, il), (ns, is_) = sorted(rs, reverse=True)[:2]
    print(f"| {name} | {il:,} | {il / nl:,.0f} | {(il - is_) / (nl - ns):,.0f} |")
PY
echo "profile-callgrind: callgrind files in $OUT" >&2
