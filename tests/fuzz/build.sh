#!/bin/sh
# Build saltun's libFuzzer targets straight from the sources, without
# automake: clang -fsanitize=fuzzer,address,undefined.  See README.
#
#   tests/fuzz/build.sh [OUTDIR]        (default: ./fuzz-build)
#
# Environment: CC (default clang), EXTRA_CFLAGS (e.g. -O2 or coverage flags).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-fuzz-build}
cc=${CC:-clang}

command -v "$cc" >/dev/null 2>&1 || {
	echo "build.sh: $cc not found: apt-get install -y clang libclang-rt-14-dev" >&2
	exit 1
}
sodium_cflags=$(pkg-config --cflags libsodium)
sodium_libs=$(pkg-config --libs libsodium)

mkdir -p "$out/include"
# The sources include autoconf's config.h first; the pure modules fuzzed
# here need nothing from it, so an empty one stands in.
: > "$out/include/config.h"

cflags="-std=c11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-D_GNU_SOURCE -I$out/include -I$top/src $sodium_cflags ${EXTRA_CFLAGS:-}"

# One line per target: name, then its sources (pure modules only).
while read -r name srcs; do
	[ -n "$name" ] || continue
	set --
	for s in $srcs; do set -- "$@" "$top/$s"; done
	echo "  CCLD     $out/$name"
	# shellcheck disable=SC2086 # word splitting of the flag lists is wanted
	"$cc" $cflags -o "$out/$name" "$@" $sodium_libs
done <<TARGETS
fuzz_wire tests/fuzz/fuzz_wire.c src/wire.c src/replay.c
TARGETS

# Seed corpus: one well-formed header at every message size, so the fuzzer
# starts past the length checks.
seeds="$out/seeds-wire"
mkdir -p "$seeds"
seed() { # name type length
	{ printf "\\$(printf '%03o' "$2")\\000\\000\\000"; head -c $(($3 - 4)) /dev/zero; } > "$seeds/$1"
}
seed initiation 1 152
seed response 2 92
seed cookie_reply 3 64
seed keepalive 4 32
seed data_1420 4 1452
echo "built: $out/fuzz_wire (seeds in $seeds)"
