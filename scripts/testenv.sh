#!/usr/bin/env bash
# The test environment: a real Kafka-API broker (Tansu) and a real NTP server (chronyd), both on free
# loopback ports, for the duration of one command.
#
#   scripts/testenv.sh install          install what is missing (Debian chrony; tansu from crates.io)
#   scripts/testenv.sh run -- CMD...    install, start both, export KTS_BOOTSTRAP / KTS_NTP_SERVER,
#                                       run CMD, then stop both (also on failure or interrupt)
#
# chronyd runs unprivileged-style with -x: it serves this host's clock on 127.0.0.1 and never touches
# the system clock. Tansu keeps everything in memory. Nothing listens beyond loopback.
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH:/usr/sbin:/sbin"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

install_deps() {
    if ! command -v chronyd >/dev/null 2>&1; then
        log "installing chrony (Debian package)"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chrony >/dev/null
        # The package's service is not wanted here; only our loopback instance runs.
        as_root systemctl disable --now chrony >/dev/null 2>&1 || true
    fi
    command -v chronyd >/dev/null 2>&1 || die "chronyd still missing after install"
    if ! command -v tansu >/dev/null 2>&1; then
        log "installing tansu $TANSU_VERSION from crates.io (about 10 minutes the first time)"
        cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore --quiet
    fi
    command -v tansu >/dev/null 2>&1 || die "tansu still missing after install"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_tcp() { # host port seconds
    local deadline=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    return 1
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

run() {
    install_deps
    # Globals, not locals: cleanup runs from the EXIT trap, after run() has returned.
    TESTENV_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kts-testenv.XXXXXX")
    TANSU_PID="" CHRONY_PID=""
    local dir=$TESTENV_DIR
    cleanup() {
        local rc=$?
        trap - EXIT
        if [ -n "$TANSU_PID" ]; then
            # SIGCONT first, in case a test froze the broker with SIGSTOP and died before resuming it.
            kill -CONT "$TANSU_PID" 2>/dev/null || true
            kill "$TANSU_PID" 2>/dev/null || true
        fi
        [ -n "$CHRONY_PID" ] && { kill "$CHRONY_PID" 2>/dev/null || true; }
        wait 2>/dev/null || true
        if [ "$rc" != 0 ]; then
            log "exit $rc; last lines of the broker and NTP server logs:"
            tail -n 20 "$TESTENV_DIR/tansu.log" "$TESTENV_DIR/chronyd.log" >&2 2>/dev/null || true
        fi
        rm -rf "$TESTENV_DIR"
        exit "$rc"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    local kport nport
    kport=$(free_port)
    tansu broker \
        --listener-url "tcp://127.0.0.1:$kport" \
        --advertised-listener-url "tcp://127.0.0.1:$kport" \
        --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 &
    TANSU_PID=$!
    wait_tcp 127.0.0.1 "$kport" 60 || { cat "$dir/tansu.log" >&2; die "tansu did not listen on 127.0.0.1:$kport within 60 s"; }

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
    wait_ntp 127.0.0.1 "$nport" 30 || { cat "$dir/chronyd.log" >&2; die "chronyd did not serve time on 127.0.0.1:$nport within 30 s"; }

    export KTS_BOOTSTRAP="127.0.0.1:$kport"
    export KTS_NTP_SERVER="127.0.0.1:$nport"
    export KTS_BROKER_PID="$TANSU_PID"
    export KTS_NTP_PID="$CHRONY_PID"
    log "broker (tansu) at $KTS_BOOTSTRAP, NTP server (chronyd) at $KTS_NTP_SERVER"
    "$@"
}

case "${1:-}" in
    install) install_deps ;;
    run)
        shift
        [ "${1:-}" = "--" ] && shift
        [ $# -gt 0 ] || die "usage: scripts/testenv.sh run -- CMD..."
        run "$@"
        ;;
    *) die "usage: scripts/testenv.sh install | run -- CMD..." ;;
esac
