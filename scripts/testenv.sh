#!/usr/bin/env bash
# The test environment: Apache Kafka (KRaft, one node or three) and a real NTP server (chronyd),
# on free loopback ports, for the duration of one command.
#
#   scripts/testenv.sh install                     install what is missing: Java 17+ and Maven
#                                                  (Debian packages), chrony, and the Kafka jars
#                                                  (Maven Central, once, into a cache)
#   scripts/testenv.sh run [--brokers 1|3] -- CMD  install, start Kafka and chronyd, export the
#                                                  variables below, run CMD, then stop everything
#                                                  (also on failure or interrupt)
#
# Exported to CMD:
#   KTS_BOOTSTRAP      the brokers' client listeners, host:port[,host:port...]
#   KTS_BROKER_PIDS    the brokers' pids, space-separated, in node-id order (KTS_BROKER_PID: the first)
#   KTS_TESTENV_DIR    the run's temp dir: node-N/{server.properties,broker.log,pid,start}; a test
#                      that kills node N restarts it with "$KTS_TESTENV_DIR/node-N/start", which
#                      writes the new pid to node-N/pid (cleanup reads those files)
#   KTS_BROKERS        the number of nodes
#   KTS_PROXY_LISTEN, KTS_PROXY_UPSTREAM   (one node only) a second listener for proxy tests: the
#                      broker listens on UPSTREAM and advertises LISTEN, where a test's TCP proxy
#                      forwards to UPSTREAM; clients bootstrapping at LISTEN then reach the broker
#                      only through the proxy
#   KTS_NTP_SERVER     chronyd, 127.0.0.1:port (KTS_NTP_PID its pid)
#
# The broker is org.apache.kafka:kafka_2.13 at the version docker/docker-compose.kafka.yml pins
# (scripts/kafka/pom.xml), started as `kafka.Kafka server.properties` with a bounded heap. Each
# node's server.properties is derived from the compose file (scripts/kafka/compose_props.py:
# the apache/kafka image's KAFKA_* rule, addresses mapped to loopback). chronyd runs with -x: it
# serves this host's clock on 127.0.0.1 and never touches the system clock. Nothing listens beyond
# loopback. Temp dirs are removed at exit.
#
# Settings (environment): KTS_CACHE (jar cache, default ~/.cache/kafka-timesync),
# KTS_BROKER_HEAP (default 512m), KTS_BROKER_START_TIMEOUT (seconds, default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KAFKA_DIR="$ROOT/scripts/kafka"
COMPOSE="$ROOT/docker/docker-compose.kafka.yml"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_DIR/pom.xml")
CACHE="${KTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-timesync}"
LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
HEAP="${KTS_BROKER_HEAP:-512m}"
START_TIMEOUT="${KTS_BROKER_START_TIMEOUT:-120}"
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    else sudo "$@"
    fi
}

APT_UPDATED=""
apt_update() { # package the update is for
    [ -n "$APT_UPDATED" ] && return 0
    as_root apt-get update -qq || die "apt-get update failed; install $1 yourself"
    APT_UPDATED=1
}

# Installs Debian package $1 for command $2. $1 may be a list of alternatives ("a|b|c"): the first
# with an installation candidate is installed.
apt_install() { # package[|package...], command it provides
    local want=${1//|/ or } pkg="" p
    command -v apt-get >/dev/null 2>&1 \
        || die "$2 is missing and this is not a Debian-like system: install $want (it provides $2)"
    [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1 \
        || die "$2 is missing; installing $want needs root or sudo: install it yourself (apt-get install ${1%%|*})"
    apt_update "$want"
    for p in ${1//|/ }; do
        if apt-cache policy "$p" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null; then pkg=$p; break; fi
    done
    [ -n "$pkg" ] || die "$2 is missing and apt has none of $want: install a package that provides $2"
    log "installing $pkg (Debian package; provides $2)"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$pkg" >/dev/null \
        || die "installing $pkg failed; install it yourself (it provides $2)"
    command -v "$2" >/dev/null 2>&1 || die "$2 still missing after installing $pkg"
}

# Apache Kafka 4 runs on Java 17 or newer (Debian 12 has 17, Debian 13 has 21).
JAVA_PACKAGES="openjdk-17-jre-headless|openjdk-21-jre-headless|openjdk-25-jre-headless"
check_java() {
    local version major
    version=$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)
    major=${version%%.*}
    [ "$major" = 1 ] && major=$(cut -d. -f2 <<<"$version")
    [[ "$major" =~ ^[0-9]+$ ]] || die "cannot tell java's version ('java -version' printed no version); Apache Kafka $KAFKA_VERSION needs Java 17 or newer (Debian: openjdk-17-jre-headless)"
    [ "$major" -ge 17 ] || die "java is version $version; Apache Kafka $KAFKA_VERSION needs Java 17 or newer: install openjdk-17-jre-headless (Debian) and put it first on PATH"
}

# The jar cache is complete when every jar Maven resolved (listed in .complete) is there.
jars_complete() {
    local jar
    [ -f "$LIBS/.complete" ] || return 1
    if [ ! -s "$LIBS/.complete" ]; then
        # A cache from before the list was kept: list what is there.
        [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || return 1
        (cd "$LIBS" && ls -1 -- *.jar) >"$LIBS/.complete.tmp" && mv "$LIBS/.complete.tmp" "$LIBS/.complete"
    fi
    while read -r jar; do
        [ -f "$LIBS/$jar" ] || { log "the jar cache lacks $jar; resolving it again"; return 1; }
    done <"$LIBS/.complete"
}

install_jars() {
    if jars_complete; then return 0; fi
    log "resolving Apache Kafka $KAFKA_VERSION and its runtime dependencies (43 MB of jars) from Maven Central into $LIBS (once; 10-20 s here)"
    rm -rf "$LIBS"
    mkdir -p "$LIBS"
    local mlog="$CACHE/maven-$KAFKA_VERSION.log"
    if ! mvn -B -q -f "$KAFKA_DIR/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$LIBS" >"$mlog" 2>&1; then
        local first
        first=$(sed -e 's/\x1b\[[0-9;]*m//g' "$mlog" | grep -m 1 '^\[ERROR\]' | cut -c 9-240 || true)
        die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (reachable from here? a proxy in ~/.m2/settings.xml?): ${first:-see the log}; log: $mlog"
    fi
    [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || die "Maven finished but $LIBS has no kafka_2.13-$KAFKA_VERSION.jar"
    (cd "$LIBS" && ls -1 -- *.jar) >"$LIBS/.complete.tmp" && mv "$LIBS/.complete.tmp" "$LIBS/.complete"
}

install_deps() {
    command -v java >/dev/null 2>&1 || apt_install "$JAVA_PACKAGES" java
    check_java
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3
    if ! jars_complete 2>/dev/null; then
        command -v mvn >/dev/null 2>&1 || apt_install maven mvn
    fi
    if ! command -v chronyd >/dev/null 2>&1; then
        apt_install chrony chronyd
        # The package's service is not wanted here; only our loopback instance runs.
        as_root systemctl disable --now chrony >/dev/null 2>&1 || true
    fi
    install_jars
}

free_tcp_ports() { # N [FILE...]: N distinct free loopback ports, none of them named in FILEs
    python3 - "$@" <<'PY'
import re, socket, sys
n, taken = int(sys.argv[1]), set()
for f in sys.argv[2:]:
    taken |= {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", open(f).read())}
held, ports = [], []
while len(ports) < n:  # every socket stays bound until all are chosen: no port twice
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
    p = s.getsockname()[1]
    if p not in taken:
        ports.append(p)
print(*ports)
PY
}

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ntp() { # host port seconds: until the server answers a client-mode packet with a synchronised reply
    python3 - "$1" "$2" "$3" <<'PY'
import socket, struct, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.time() + limit
while time.time() < deadline:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    pkt = bytearray(48); pkt[0] = (4 << 3) | 3
    try:
        s.sendto(pkt, (host, port)); data, _ = s.recvfrom(512)
        if len(data) >= 48 and data[0] >> 6 != 3 and 1 <= data[1] <= 15:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
PY
}

# Writes node-N/start: starts node N in the background (it survives the caller: setsid), writes its
# pid to node-N/pid and prints it. Used for the first start and by tests that restart a node.
write_start_script() { # node dir
    local node_dir=$1
    cat >"$node_dir/start" <<EOF
#!/usr/bin/env bash
# Starts this Kafka node (again) in the background; prints its pid and writes it to $node_dir/pid.
set -euo pipefail
cd "$node_dir"
setsid java -Xmx$HEAP -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \\
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.yaml" -cp "$LIBS/*" \\
    kafka.Kafka "$node_dir/server.properties" >>"$node_dir/broker.log" 2>&1 </dev/null &
echo \$! >"$node_dir/pid"
echo \$!
EOF
    chmod +x "$node_dir/start"
}

node_pids() {
    local f
    for f in "$TESTENV_DIR"/node-*/pid; do
        [ -f "$f" ] && cat "$f"
    done
}

run() {
    local brokers=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --brokers) brokers=${2:-}; shift 2 ;;
            --brokers=*) brokers=${1#--brokers=}; shift ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    case "$brokers" in 1|3) ;; *) die "--brokers takes 1 or 3 (the compose file's cluster), not '$brokers'" ;; esac
    [ $# -gt 0 ] || die "usage: scripts/testenv.sh run [--brokers 1|3] -- CMD..."
    install_deps

    # Globals, not locals: cleanup runs from the EXIT trap, after run() has returned.
    TESTENV_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kts-testenv.XXXXXX")
    CHRONY_PID="" CMD_PID=""
    cleanup() {
        local rc=$? pids
        trap - EXIT INT TERM
        if [ -n "$CMD_PID" ] && kill -0 "$CMD_PID" 2>/dev/null; then
            # Interrupted: the command goes first, then what it was using.
            kill -TERM "$CMD_PID" 2>/dev/null || true
            wait "$CMD_PID" 2>/dev/null || true
        fi
        pids=$(node_pids 2>/dev/null | tr '\n' ' ')
        if [ -n "$pids" ]; then
            # SIGCONT first, in case a test froze a broker with SIGSTOP and died before resuming
            # it. The data is thrown away: no controlled shutdown needed.
            # shellcheck disable=SC2086
            kill -CONT $pids 2>/dev/null || true
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
        fi
        [ -n "$CHRONY_PID" ] && { kill "$CHRONY_PID" 2>/dev/null || true; }
        wait 2>/dev/null || true
        case "$rc" in
            0|130|143) ;;
            *)
                local f
                log "exit $rc; the brokers' last warnings, errors and fencing changes (full logs are removed now):"
                for f in "$TESTENV_DIR"/node-*/broker.log; do
                    [ -f "$f" ] || continue
                    printf '  %s:\n' "${f#"$TESTENV_DIR"/}" >&2
                    grep -E '^\[[^]]*\] (WARN|ERROR) |Fencing broker|has been unfenced' "$f" | tail -n 16 | sed 's/^/    /' >&2 || true
                done
                ;;
        esac
        rm -rf "$TESTENV_DIR"
        exit "$rc"
    }
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local dir=$TESTENV_DIR

    local started assignments CLUSTER_ID BOOTSTRAP NODE_IDS n
    started=$(date +%s.%N)
    assignments=$(python3 "$KAFKA_DIR/compose_props.py" "$COMPOSE" "$dir" "$brokers") \
        || die "cannot derive server.properties from $COMPOSE"
    eval "$assignments"
    local proxy_listen="" proxy_upstream=""
    if [ "$brokers" = 1 ]; then
        # A second client listener for tests that put a TCP proxy between clients and the broker:
        # the broker listens on proxy_upstream and tells clients to connect to proxy_listen, where
        # the test's proxy (when running) forwards to it. Nothing else uses it.
        local proxy_ports
        read -r -a proxy_ports <<<"$(free_tcp_ports 2 "$dir/node-1/server.properties")"
        proxy_upstream="127.0.0.1:${proxy_ports[0]}" proxy_listen="127.0.0.1:${proxy_ports[1]}"
        sed -i -e "s|^listeners=.*|&,PROXIED://$proxy_upstream|" \
            -e "s|^advertised.listeners=.*|&,PROXIED://$proxy_listen|" \
            -e "s|^listener.security.protocol.map=.*|&,PROXIED:PLAINTEXT|" "$dir/node-1/server.properties"
    fi
    for n in $NODE_IDS; do
        java -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.yaml" -cp "$LIBS/*" kafka.tools.StorageTool \
            format --ignore-formatted -t "$CLUSTER_ID" -c "$dir/node-$n/server.properties" \
            >"$dir/node-$n/format.log" 2>&1 \
            || { tail -n 20 "$dir/node-$n/format.log" >&2; die "formatting node $n's storage failed"; }
    done
    for n in $NODE_IDS; do
        write_start_script "$dir/node-$n"
        "$dir/node-$n/start" >/dev/null
    done

    local nport
    nport=$(free_udp_port)
    cat >"$dir/chrony.conf" <<CONF
port $nport
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 8
cmdport 0
pidfile $dir/chronyd.pid
driftfile $dir/chrony.drift
CONF
    # -u: stay the invoking user (as root, chronyd would otherwise drop to _chrony and lose the temp dir).
    chronyd -x -d -u "$(id -un)" -f "$dir/chrony.conf" >"$dir/chronyd.log" 2>&1 &
    CHRONY_PID=$!

    if ! python3 "$KAFKA_DIR/metadata_wait.py" "$BOOTSTRAP" "$brokers" "$START_TIMEOUT"; then
        for n in $NODE_IDS; do tail -n 30 "$dir/node-$n/broker.log" >&2 || true; done
        die "Apache Kafka ($brokers node(s)) did not answer metadata with $brokers broker(s) at $BOOTSTRAP within ${START_TIMEOUT} s"
    fi
    for n in $NODE_IDS; do
        kill -0 "$(cat "$dir/node-$n/pid")" 2>/dev/null || { tail -n 30 "$dir/node-$n/broker.log" >&2; die "Kafka node $n exited"; }
    done
    wait_ntp 127.0.0.1 "$nport" 30 || { cat "$dir/chronyd.log" >&2; die "chronyd did not serve time on 127.0.0.1:$nport within 30 s"; }

    export KTS_BOOTSTRAP="$BOOTSTRAP"
    export KTS_BROKERS="$brokers"
    KTS_BROKER_PIDS=$(node_pids | tr '\n' ' ' | sed 's/ $//')
    export KTS_BROKER_PIDS
    export KTS_BROKER_PID="${KTS_BROKER_PIDS%% *}"
    export KTS_TESTENV_DIR="$dir"
    export KTS_PROXY_LISTEN="$proxy_listen" KTS_PROXY_UPSTREAM="$proxy_upstream"
    export KTS_NTP_SERVER="127.0.0.1:$nport"
    export KTS_NTP_PID="$CHRONY_PID"
    log "Apache Kafka $KAFKA_VERSION, $brokers node(s), at $KTS_BOOTSTRAP (ready in $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s); NTP server (chronyd) at $KTS_NTP_SERVER"
    # In the background with the caller's stdin, so that a signal to this script is handled at
    # once (bash runs traps only between foreground commands) rather than after CMD ends.
    "$@" <&0 &
    CMD_PID=$!
    wait "$CMD_PID"
}

# Each arm exits: bash reads a script as it runs, so nothing after this statement may be read once
# a run has started (the file may change under a long run, e.g. with a checkout).
case "${1:-}" in
    install) install_deps; log "ready: java, chronyd and Apache Kafka $KAFKA_VERSION's jars in $LIBS"; exit 0 ;;
    run) shift; run "$@"; exit ;;
    *) die "usage: scripts/testenv.sh install | run [--brokers 1|3] -- CMD..." ;;
esac
