#!/usr/bin/env bash
# End-to-end throughput and memory of kafka-producer / kafka-consumer side by side with librdkafka's
# own rdkafka_performance, against the test environment's broker: Apache Kafka 4.1.1, one node
# (KRaft, a JVM with a 512 MiB heap on the same two cores).
#
#   scripts/testenv.sh run -- scripts/bench-e2e.sh [options]
#
#   -n N          messages per run (default 200000)
#   -r RUNS       runs per tool and pair, median reported (default 3)
#   -s BYTES      content size (default 300)
#   --no-build    use the release binaries as they are (default: cargo build --release --bins)
#   --no-flat     skip the memory-flatness check (a topic of 10 x N messages)
#   --fresh-broker  give every producer run a broker of its own (see below; default: one warm
#                 broker for all)
#   --only WHAT   producer | consumer | flat (repeatable; default all three)
#   --out DIR     raw results (default $CARGO_TARGET_DIR/bench-e2e/<date>)
#   --stamp-header-args  print rdkafka_performance's -H arguments for the benchmark's header
#                 stamp, one per line, and exit
#   env BENCH_PRODUCER / BENCH_CONSUMER: binaries to measure instead of target/release's
#
# Pairs (same content size, acks=all, idempotence, topics of 3 partitions, one key/node id per
# producer so both tools write one partition each, librdkafka defaults where rdkafka_performance
# would change them: linger.ms, retries, queued.min.messages, session.timeout.ms):
#   producer:  rdkafka_performance -P -s SIZE -c N   vs   kafka-producer --count N --size SIZE
#              --clock-type vector --no-state --format json >/dev/null (the JSON envelope, and
#              --envelope headers: the SIZE-byte content as the value, the clocks in headers),
#              and rdkafka_performance
#              with payloads of the envelope's size (the same bytes, no stamping: the bound any
#              producer of these envelopes meets on this broker), and rdkafka_performance -s SIZE
#              with a typical header stamp (-H kts-v=2 -H kts-stamp=…: the same headers and
#              values, no stamping: the bound of any librdkafka producer of header stamps)
#   consumer:  rdkafka_performance -G (balanced consumer, fresh group) -c N   vs
#              kafka-consumer --delivery causal|arrival --format json --from-beginning
#              --idle-timeout 2 --max-messages N >/dev/null (arrival also with --analyze-ordering),
#              on one topic of N envelopes written
#              by three producer nodes with --observe (real cross-partition happened-before);
#              and causal delivery of a second such topic written with --envelope headers,
#              against rdkafka_performance -G on it both as is and with -H parse (librdkafka
#              parses every record's headers, as any reader of header stamps must).
# Each consumer also reads the first N/5 messages of the same topic (a fresh group), and the report
# adds the steady rate as for the producers: start-up, group join and the last fetch cancel out.
# Runs are interleaved (the order rotates every run) so the shared machine's noise hits every
# tool alike. msgs/s = N / the process's wall time (start-up, metadata, group join and final
# flush included for every tool); peak RSS and CPU time come from GNU time, the broker's CPU
# time from /proc/$KTS_BROKER_PID. The broker shares the machine with the tools and may well be
# the bottleneck for both: compare ratios, not absolute rates, and read the broker's CPU column.
#
# Producer runs share the environment's broker, warmed first: every tool runs once untimed with N
# messages (pair "warmup" in results.tsv, left out of the report), so the JVM has compiled the
# request paths of every tool (headers, values of both sizes) before anything is timed, as on any
# broker that has been up for a while. Each run then writes its own fresh topic. With
# --fresh-broker every producer run gets a broker of its own instead (a nested scripts/testenv.sh,
# about 5 s to start, not measured): an empty log on a JVM that has served nothing, i.e. the
# broker's JIT warm-up is measured along with the tool.
# Each producer also runs with N/5 messages, and the report adds the steady rate
# (N - N/5) / (wall(N) - wall(N/5)), medians of the runs: start-up and final flush cancel out.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
# rdkafka_performance's -H arguments for the header stamp kafka-producer writes in the benchmark
# (format version 2, vector clock, one node; seq and counters of six digits), one per line.
stamp_header_args() {
    local n=500000 t=1795322597.7941232
    printf '%s\n' -H kts-v=2 -H \
        "kts-stamp=36:6f1c0000-0000-4000-8000-000000000000;10:bench-node;$n;vector;$t;$t;$n;[10:bench-node=$n];;"
}

N=200000 RUNS=3 SIZE=300 BUILD=1 OUT="" ONLY="" PRODUCER_RUN="" FRESH=0
while [ $# -gt 0 ]; do
    case "$1" in
        # internal: one producer measurement (TOOL RUN MSGS PAIR) on this environment's broker,
        # appended to --out's results.tsv
        --producer-run) PRODUCER_RUN="$2 $3 $4 $5"; shift 5 ;;
        -n) N=$2; shift 2 ;;
        -r) RUNS=$2; shift 2 ;;
        -s) SIZE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --fresh-broker) FRESH=1; shift ;;
        --no-flat) ONLY=${ONLY:-"producer consumer"}; ONLY=${ONLY//flat/}; shift ;;
        --only) ONLY="$ONLY $2"; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --stamp-header-args) stamp_header_args; exit 0 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
        *) echo "bench-e2e: unknown argument $1" >&2; exit 2 ;;
    esac
done
ONLY=${ONLY:-"producer consumer flat"}
wants() { [[ " $ONLY " == *" $1 "* ]]; }

log() { printf 'bench-e2e: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -n "${KTS_BOOTSTRAP:-}" ] || die "KTS_BOOTSTRAP not set: run through scripts/testenv.sh run -- $0"
[ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1 \
    || die "GNU time missing (Debian: apt-get install time)"
command -v python3 >/dev/null || die "python3 missing"
B=$KTS_BOOTSTRAP

stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ -n "$PRODUCER_RUN" ]; then
    [ -n "$OUT" ] || die "--producer-run needs --out"
    BUILD=0 BENCH_PRODUCER=$OUT/bin/kafka-producer BENCH_CONSUMER=$OUT/bin/kafka-consumer
    ONLY=producer
fi
OUT=${OUT:-$CARGO_TARGET_DIR/bench-e2e/$stamp}
mkdir -p "$OUT/bin"
RESULTS=$OUT/results.tsv
[ -n "$PRODUCER_RUN" ] \
    || printf 'pair\ttool\trun\tmsgs\twall_s\tmsgs_per_s\tpeak_rss_kb\tcpu_s\tbroker_cpu_s\n' >"$RESULTS"

# --- binaries -------------------------------------------------------------------------------
# target/release is shared by name with other worktrees: build, then copy ours aside at once and
# check they are the binaries with the flags this script uses.
if [ "$BUILD" = 1 ]; then
    log "cargo build --release --bins"
    (cd "$here" && cargo build --release --bins --quiet)
fi
# BENCH_PRODUCER / BENCH_CONSUMER: measure these binaries instead (e.g. a branch not merged yet).
copy_bin() { [ "$1" -ef "$2" ] || cp "$1" "$2"; }
copy_bin "${BENCH_PRODUCER:-$CARGO_TARGET_DIR/release/kafka-producer}" "$OUT/bin/kafka-producer"
copy_bin "${BENCH_CONSUMER:-$CARGO_TARGET_DIR/release/kafka-consumer}" "$OUT/bin/kafka-consumer"
PRODUCER=$OUT/bin/kafka-producer CONSUMER=$OUT/bin/kafka-consumer
"$PRODUCER" --help 2>/dev/null | grep -q -- '--clock-type' \
    || die "$PRODUCER is not kafka-timesync's producer (no --clock-type in --help)"
if wants consumer || wants flat; then
    "$CONSUMER" --help 2>/dev/null | grep -q -- '--delivery' \
        || die "$CONSUMER has no --delivery flag (not built yet on this branch?)"
fi
RDPERF=$("$here/scripts/build-rdkafka-perf.sh")
[ -n "$PRODUCER_RUN" ] || log "binaries: $PRODUCER ($("$PRODUCER" --version)), $RDPERF"

# --- helpers --------------------------------------------------------------------------------
ticks=$(getconf CLK_TCK)
broker_cpu() { # broker user+system seconds so far (0 when the broker's pid is unknown)
    if [ -n "${KTS_BROKER_PID:-}" ] && [ -r "/proc/$KTS_BROKER_PID/stat" ]; then
        awk -v t="$ticks" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$KTS_BROKER_PID/stat"
    else
        echo 0
    fi
}

mktopic() { # name: a topic of 3 partitions
    "$PRODUCER" --bootstrap "$B" --create-topic 3 --no-state --count 0 "$1" >/dev/null 2>"$OUT/mktopic.err" \
        || { cat "$OUT/mktopic.err" >&2; die "could not create topic $1"; }
}

# measure PAIR TOOL RUN MSGS CMD... : runs CMD with stdout to $STDOUT (default $OUT/last.out),
# records wall time, peak RSS, CPU and broker CPU. Fails the script if CMD fails.
STDOUT=""
measure() {
    local pair=$1 tool=$2 run=$3 msgs=$4
    shift 4
    local tf=$OUT/time.$$ b0 b1 t0 t1
    b0=$(broker_cpu)
    t0=$(date +%s%N)
    if ! /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"${STDOUT:-$OUT/last.out}" 2>"$OUT/last.err"; then
        tail -n 20 "$OUT/last.err" >&2
        die "$pair/$tool run $run failed: $*"
    fi
    t1=$(date +%s%N)
    b1=$(broker_cpu)
    read -r wall rss usr sys <"$tf"
    wall=$(((t1 - t0) / 1000))e-6 # GNU time's %e has 10 ms resolution
    python3 - "$pair" "$tool" "$run" "$msgs" "$wall" "$rss" "$usr" "$sys" "$b0" "$b1" >>"$RESULTS" <<'PY'
import sys
pair, tool, run, msgs, wall, rss, usr, sys_, b0, b1 = sys.argv[1:]
msgs, wall = int(msgs), max(float(wall), 1e-3)
print(f"{pair}\t{tool}\t{run}\t{msgs}\t{wall:.3f}\t{msgs / wall:.0f}\t{rss}\t{float(usr) + float(sys_):.2f}\t{float(b1) - float(b0):.2f}")
PY
    log "$(tail -n 1 "$RESULTS" | cut -f1-3,5-9)"
}

# rotate K: prints 0..K-1 rotated by the run number, so every tool goes first in turn.
rotate() { local k=$1 r=$2 i; for ((i = 0; i < k; i++)); do echo $(((i + r) % k)); done; }

# Producer settings shared by both tools (our producer's defaults; librdkafka's where
# rdkafka_performance would override them).
RD_PRODUCER_X=(-a -1 -X enable.idempotence=true -X linger.ms=5 -X message.timeout.ms=20000
    -X queue.buffering.max.messages=20000 -X message.send.max.retries=2147483647
    -X retry.backoff.ms=100)
RD_CONSUMER_X=(-X queued.min.messages=100000 -X session.timeout.ms=45000)

check_rd_produced() { # expected count: the last summary line says all delivered, none failed
    grep -E "^% [0-9]+ messages produced" "$OUT/last.out" | tail -n 1 \
        | grep -qE " $1 delivered \(offset [0-9-]+, 0 failed\)" \
        || { tail -n 3 "$OUT/last.out" >&2; die "rdkafka_performance did not deliver $1 messages"; }
}
check_rd_consumed() {
    grep -qE "^% $1 messages \([0-9]+ bytes\) consumed" "$OUT/last.out" \
        || { tail -n 3 "$OUT/last.out" >&2; die "rdkafka_performance did not consume $1 messages"; }
}

# fill TOPIC COUNT [ENVELOPE]: COUNT messages from three producer nodes that observe each other,
# stamped in the JSON envelope (default) or in headers.
# fill TOPIC COUNT [ENVELOPE [sequential]]: three --observe producers write COUNT messages, at
# once (interleaved: real cross-partition happened-before) or one after another. Sequential is
# for the 10 x N topic: three full-speed producers each observing the others wrote gigabytes
# fast enough on this VM that the single broker's controller timed out its own session
# ("Fencing broker 1 ... because its session has timed out") and the records timed out.
fill() {
    local topic=$1 count=$2 envelope=${3:-json} order=${4:-interleaved} each c i pids=()
    each=$(((count + 2) / 3))
    log "filling $topic with 3 x $each vector-stamped messages (--observe, --envelope $envelope, $order)"
    for i in 0 1 2; do
        c=$each
        [ $i = 2 ] && c=$((count - 2 * each))
        "$PRODUCER" --bootstrap "$B" --node-id "node-$i" --observe --count "$c" --size "$SIZE" \
            --clock-type vector --envelope "$envelope" --no-state "$topic" >/dev/null 2>"$OUT/fill.$i.err" &
        pids[i]=$!
        if [ "$order" = sequential ]; then
            fill_wait "$topic" "$i"
        fi
    done
    if [ "$order" != sequential ]; then
        for i in 0 1 2; do fill_wait "$topic" "$i"; done
    fi
}
fill_wait() { # TOPIC I: waits for fill producer I (fill's pids)
    wait "${pids[$2]}" || { cat "$OUT/fill.$2.err" >&2; die "filling $1 failed"; }
}

# consume_verify TOPIC DELIVERY COUNT: an untimed run whose summary must show COUNT delivered.
consume_verify() {
    local summary
    summary=$("$CONSUMER" --bootstrap "$B" --group "verify-$2-$RANDOM$RANDOM" --delivery "$2" \
        --format json --from-beginning --idle-timeout 2 --max-messages "$3" "$1" 2>/dev/null | tail -n 1)
    python3 - "$summary" "$3" "$2" <<'PY' || die "verification of kafka-consumer --delivery $2 failed"
import json, sys
s, n, mode = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ok = s.get("event") == "summary" and s.get("delivered") == n and s.get("malformed") == 0
print(f"bench-e2e: verify --delivery {mode}: received {s.get('received')}, delivered "
      f"{s.get('delivered')}, buffered {s.get('buffered')}, violations {s.get('violations')}",
      file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}

run_consumer() { # PAIR TOOL RUN TOPIC COUNT
    local pair=$1 tool=$2 run=$3 topic=$4 count=$5 g="$1-$2-$3-$RANDOM$RANDOM"
    case $tool in
        rdkafka_performance|rdkafka_performance-headers-topic|rdkafka_performance-headers-parse)
            local parse=()
            [ "$tool" = rdkafka_performance-headers-parse ] && parse=(-H parse)
            measure "$pair" "$tool" "$run" "$count" \
                "$RDPERF" -G "$g" -t "$topic" -b "$B" -c "$count" "${parse[@]}" "${RD_CONSUMER_X[@]}"
            check_rd_consumed "$count" ;;
        kafka-consumer-causal|kafka-consumer-arrival|kafka-consumer-causal-headers|kafka-consumer-arrival-analyze)
            local delivery=${tool#kafka-consumer-} analyze=()
            [ "$tool" = kafka-consumer-arrival-analyze ] && analyze=(--analyze-ordering)
            delivery=${delivery%-headers}
            STDOUT=/dev/null measure "$pair" "$tool" "$run" "$count" \
                "$CONSUMER" --bootstrap "$B" --group "$g" --delivery "${delivery%-analyze}" \
                "${analyze[@]}" --format json --from-beginning --idle-timeout 2 \
                --max-messages "$count" "$topic" ;;
    esac
}

# The size of the benchmark's envelope (vector clock, one node, SIZE content bytes; seq and
# counters of six digits): what rdkafka_performance-envelope-size sends, i.e. librdkafka's own
# tool moving the same bytes with no stamping or encoding at all.
envelope_size() {
    python3 -c 'import json, sys
n = 500000
e = {"id": "6f1c0000-0000-4000-8000-000000000000", "content": "a" * int(sys.argv[1]), "seq": n,
     "timestamp": {"node_id": "bench-node", "timestamp": 1795322597.7941232, "clock_type": "vector",
                   "physical_time": 1795322597.7941232, "logical_time": n,
                   "vector_time": {"bench-node": n}}}
print(len(json.dumps(e, separators=(",", ":"))))' "$SIZE"
}

# One producer measurement on $B (with --fresh-broker, through a nested scripts/testenv.sh).
producer_run() { # TOOL RUN MSGS PAIR
    local tool=$1 run=$2 msgs=$3 pair=$4 t=prod-$1-$stamp-$2-$3
    mktopic "$t"
    case $tool in
        rdkafka_performance|rdkafka_performance-envelope-size|rdkafka_performance-stamp-headers)
            local size=$SIZE headers=()
            [ "$tool" = rdkafka_performance-envelope-size ] && size=$(envelope_size)
            [ "$tool" = rdkafka_performance-stamp-headers ] && mapfile -t headers < <(stamp_header_args)
            measure "$pair" "$tool" "$run" "$msgs" \
                "$RDPERF" -P -t "$t" -b "$B" -s "$size" -c "$msgs" -k bench-node "${headers[@]}" \
                "${RD_PRODUCER_X[@]}"
            check_rd_produced "$msgs" ;;
        kafka-producer-vector|kafka-producer-vector-headers)
            local envelope=json
            [ "$tool" = kafka-producer-vector ] || envelope=headers
            STDOUT=/dev/null measure "$pair" "$tool" "$run" "$msgs" \
                "$PRODUCER" --bootstrap "$B" --node-id bench-node --count "$msgs" --size "$SIZE" \
                --clock-type vector --envelope "$envelope" --no-state --format json "$t" ;;
    esac
}
if [ -n "$PRODUCER_RUN" ]; then
    # shellcheck disable=SC2086 # four words
    producer_run $PRODUCER_RUN
    exit 0
fi

log "N=$N runs=$RUNS size=$SIZE broker=$B (pid ${KTS_BROKER_PID:-?}) results in $OUT"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB RAM"
    echo "kernel: $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "librdkafka: $("$RDPERF" -h 2>&1 | grep -m1 'librdkafka version' | sed 's/^ *//')"
    echo "N=$N runs=$RUNS content=$SIZE bytes"
    if [ "$FRESH" = 1 ]; then
        echo "producer runs: each on a fresh broker (its JIT warm-up measured with the tool)"
    else
        echo "producer runs: one broker, warmed by an untimed run of each tool first"
    fi
} >"$OUT/machine.txt"

# --- 1. producer ----------------------------------------------------------------------------
if wants producer; then
    short=$((N / 5))
    tools=(rdkafka_performance kafka-producer-vector rdkafka_performance-envelope-size
        kafka-producer-vector-headers rdkafka_performance-stamp-headers)
    log "producer: rdkafka_performance-envelope-size sends $(envelope_size)-byte payloads"
    log "producer: rdkafka_performance-stamp-headers sends $(stamp_header_args | tr '\n' ' ')"
    if [ "$FRESH" = 0 ]; then
        log "producer: warming the broker (each tool once, not reported)"
        for tool in "${tools[@]}"; do producer_run "$tool" 0 "$N" warmup; done
    fi
    for ((r = 1; r <= RUNS; r++)); do
        for k in $(rotate ${#tools[@]} "$r"); do
            for spec in "$N producer" "$short producer-short"; do
                if [ "$FRESH" = 0 ]; then
                    # shellcheck disable=SC2086 # MSGS PAIR
                    producer_run "${tools[$k]}" "$r" $spec
                else
                    # shellcheck disable=SC2086 # MSGS PAIR
                    "$here/scripts/testenv.sh" run -- "$0" -s "$SIZE" --out "$OUT" \
                        --producer-run "${tools[$k]}" "$r" $spec 2> >(grep -v '^testenv: Apache Kafka ' >&2)
                fi
            done
        done
    done
fi

# --- 2. consumer ----------------------------------------------------------------------------
if wants consumer; then
    short=$((N / 5))
    src=cons-src-$stamp
    mktopic "$src"
    fill "$src" "$N"
    consume_verify "$src" causal "$N"
    consume_verify "$src" arrival "$N"
    src_h=cons-src-headers-$stamp
    mktopic "$src_h"
    fill "$src_h" "$N" headers
    consume_verify "$src_h" causal "$N"
    tools=(rdkafka_performance kafka-consumer-causal kafka-consumer-arrival
        kafka-consumer-causal-headers rdkafka_performance-headers-topic
        kafka-consumer-arrival-analyze rdkafka_performance-headers-parse)
    for ((r = 1; r <= RUNS; r++)); do
        for k in $(rotate ${#tools[@]} "$r"); do
            t=$src
            [[ ${tools[$k]} == *headers* ]] && t=$src_h
            run_consumer consumer "${tools[$k]}" "$r" "$t" "$N"
            run_consumer consumer-short "${tools[$k]}" "$r" "$t" "$short"
        done
    done
fi

# --- 3. memory flatness: the same consumers on N and on 10 x N messages ------------------------
if wants flat; then
    big=flat-src-$stamp
    mktopic "$big"
    fill "$big" $((10 * N)) json sequential
    consume_verify "$big" causal $((10 * N))
    for count in "$N" $((10 * N)); do
        for tool in kafka-consumer-causal kafka-consumer-arrival rdkafka_performance; do
            run_consumer "flat-$count" "$tool" 1 "$big" "$count"
        done
    done
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

# --- report ---------------------------------------------------------------------------------
cat "$OUT/machine.txt"
python3 - "$RESULTS" <<'PY' | tee "$OUT/report.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
# Each tool against librdkafka's own tool moving the same bytes (values and headers) with no
# stamping, encoding or decoding: how much of the gap to rdkafka_performance is our own code.
BOUNDS = [("producer", "kafka-producer-vector", "rdkafka_performance-envelope-size"),
          ("producer", "kafka-producer-vector-headers", "rdkafka_performance-stamp-headers"),
          ("consumer", "kafka-consumer-causal-headers", "rdkafka_performance-headers-parse")]
def group(pair):
    out = {}
    for r in rows:
        if r["pair"] == pair:
            out.setdefault(r["tool"], []).append(r)
    return out
def table(pair, ref):
    g = group(pair)
    if not g:
        return
    base = statistics.median(float(r["msgs_per_s"]) for r in g.get(ref, [])) if ref in g else None
    print(f"\n### {pair}\n")
    print("| tool | runs | msgs/s (median) | msgs/s (all runs) | ratio to rdkafka_performance "
          "| peak RSS MiB (max) | CPU s (median) | CPU µs/msg | broker CPU s (median) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for tool, rs in g.items():
        rates = [float(r["msgs_per_s"]) for r in rs]
        med = statistics.median(rates)
        ratio = f"{med / base:.2f}" if base else "-"
        print(f"| {tool} | {len(rs)} | {med:,.0f} | {', '.join(f'{x:,.0f}' for x in rates)} | {ratio} "
              f"| {max(int(r['peak_rss_kb']) for r in rs) / 1024:.1f} "
              f"| {statistics.median(float(r['cpu_s']) for r in rs):.2f} "
              f"| {statistics.median(float(r['cpu_s']) / int(r['msgs']) for r in rs) * 1e6:.2f} "
              f"| {statistics.median(float(r['broker_cpu_s']) for r in rs):.2f} |")
table("producer", "rdkafka_performance")
def steady(long_pair, short_pair, ref):
    lg, sh = group(long_pair), group(short_pair)
    rates = {}
    for tool in lg:
        if tool not in sh:
            continue
        wl = statistics.median(float(r["wall_s"]) for r in lg[tool])
        ws = statistics.median(float(r["wall_s"]) for r in sh[tool])
        nl, ns = int(lg[tool][0]["msgs"]), int(sh[tool][0]["msgs"])
        if wl > ws:
            rates[tool] = ((nl - ns) / (wl - ws), wl, ws, nl, ns)
    if not rates:
        return
    print(f"\nSteady rate ({long_pair}), start-up and final flush removed: "
          "(N - N/5) / (wall(N) - wall(N/5)), median walls\n")
    print("| tool | wall N s | wall N/5 s | steady msgs/s | ratio to rdkafka_performance "
          "| ratio to its bound |")
    print("|---|---:|---:|---:|---:|---:|")
    bound_of = {tool: b for pair, tool, b in BOUNDS if pair == long_pair}
    for tool, (rate, wl, ws, nl, ns) in rates.items():
        ratio = f"{rate / rates[ref][0]:.2f}" if ref in rates else "-"
        b = bound_of.get(tool)
        to_bound = f"{rate / rates[b][0]:.2f}" if b in rates else "-"
        print(f"| {tool} | {wl:.3f} | {ws:.3f} | {rate:,.0f} | {ratio} | {to_bound} |")
steady("producer", "producer-short", "rdkafka_performance")
table("consumer", "rdkafka_performance")
steady("consumer", "consumer-short", "rdkafka_performance")
def median_rate(g, tool):
    return statistics.median(float(r["msgs_per_s"]) for r in g[tool])
bounds = []
for pair, tool, ref in BOUNDS:
    g = group(pair)
    if tool in g and ref in g:
        bounds.append((tool, ref, median_rate(g, tool) / median_rate(g, ref),
                       median_rate(g, ref) / median_rate(g, "rdkafka_performance")
                       if "rdkafka_performance" in g else None))
if bounds:
    print("\n### against librdkafka moving the same bytes (whole process, medians)\n")
    print("| tool | bound | ratio to the bound | the bound's ratio to rdkafka_performance |")
    print("|---|---|---:|---:|")
    for tool, ref, r, rr in bounds:
        print(f"| {tool} | {ref} | {r:.2f} | {'-' if rr is None else f'{rr:.2f}'} |")
flat = sorted({r["pair"] for r in rows if r["pair"].startswith("flat-")}, key=lambda p: int(p[5:]))
if len(flat) == 2:
    small, big = (group(p) for p in flat)
    print(f"\n### memory flatness: peak RSS reading {flat[0][5:]} vs {flat[1][5:]} messages\n")
    print("| tool | peak RSS MiB (N) | peak RSS MiB (10 N) | ratio | msgs/s (N) | msgs/s (10 N) |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool in small:
        if tool in big:
            a, b = small[tool][0], big[tool][0]
            ra, rb = int(a["peak_rss_kb"]) / 1024, int(b["peak_rss_kb"]) / 1024
            print(f"| {tool} | {ra:.1f} | {rb:.1f} | {rb / ra:.2f} | {float(a['msgs_per_s']):,.0f} "
                  f"| {float(b['msgs_per_s']):,.0f} |")
PY
log "raw results: $RESULTS"
