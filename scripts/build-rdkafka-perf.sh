#!/usr/bin/env bash
# Builds librdkafka's own benchmark tool, `rdkafka_performance`, from the librdkafka sources the
# rdkafka-sys crate carries, linked against the static library that rdkafka-sys's (release) build
# produced — so the reference tool runs exactly the librdkafka our binaries link.
#
# Usage: scripts/build-rdkafka-perf.sh [--force]
# Prints the path of the binary on stdout (cached in $CARGO_TARGET_DIR/rdkafka-perf/ or
# target/rdkafka-perf/; rebuilt when the source or the static library is newer, or with --force).
#
# Needs: a C compiler, and a release build of this crate (`cargo build --release`) so that
# $CARGO_TARGET_DIR/release/build/rdkafka-sys-*/out/src/librdkafka.a exists.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
cache=$target/rdkafka-perf
force=0
[[ ${1:-} == --force ]] && force=1

log() { printf 'build-rdkafka-perf: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The rdkafka-sys version this crate resolves to (Cargo.lock), so a stale registry copy of another
# version is never picked.
ver=$(awk '/^name = "rdkafka-sys"/{getline; gsub(/"/,"",$3); print $3; exit}' "$here/Cargo.lock" 2>/dev/null || true)
[[ -n $ver ]] || die "rdkafka-sys not found in $here/Cargo.lock"

reg=${CARGO_HOME:-$HOME/.cargo}/registry/src
src=""
for d in "$reg"/*/"rdkafka-sys-$ver"/librdkafka; do
    [[ -f $d/examples/rdkafka_performance.c ]] && { src=$d; break; }
done
[[ -n $src ]] || die "librdkafka sources of rdkafka-sys $ver not found under $reg (run cargo fetch)"

# The newest release build output of rdkafka-sys that contains the static library.
lib=""
for a in $(ls -t "$target"/release/build/rdkafka-sys-*/out/src/librdkafka.a 2>/dev/null); do
    lib=$a; break
done
[[ -n $lib ]] || die "no librdkafka.a under $target/release/build/rdkafka-sys-*/out/src (run: cargo build --release)"
out=$(dirname "$(dirname "$lib")")

# The libraries librdkafka was configured with (e.g. -lm -lz -ldl -lpthread -lrt).
libs=$(sed -n 's/^LIBS+=//p' "$out/Makefile.config" | tr '\n' ' ')
[[ -n ${libs// /} ]] || libs="-lm -lz -ldl -lpthread -lrt"

mkdir -p "$cache"
bin=$cache/rdkafka_performance
if [[ $force == 0 && -x $bin && $bin -nt $lib && $bin -nt $src/examples/rdkafka_performance.c ]]; then
    echo "$bin"
    exit 0
fi

log "compiling $src/examples/rdkafka_performance.c against $lib"
# Headers: the generated config.h and the library headers live in the build output ($out, $out/src).
# The example includes "../src/rd.h" and "../win32/…" relative to its own directory; pointing -I at
# $out/examples makes those resolve inside the configured build tree.
cc -O2 -g -Wall -Wno-unused -Wno-deprecated-declarations \
    -I"$out/src" -I"$out" -I"$out/examples" \
    "$src/examples/rdkafka_performance.c" -o "$bin.tmp" \
    "$lib" $libs
mv "$bin.tmp" "$bin"
"$bin" -h >/dev/null 2>&1 || true   # it prints usage and exits non-zero; just a smoke run
log "built $bin"
echo "$bin"
