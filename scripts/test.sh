#!/bin/bash
#
# Build saltun from this checkout and run its whole test suite: deps,
# autogen (when configure is missing or older than its sources), configure
# in build/ (build-asan/ with --sanitizers), make, make check.  The netns
# tests need root; without it they report SKIP.  On failure, the logs of
# the failed tests are printed.
#
#   scripts/test.sh [--sanitizers]
#   BUILDDIR=/some/dir scripts/test.sh      # build elsewhere

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=build
configure_args=()
case ${1:-} in
"") ;;
--sanitizers)
	builddir=build-asan
	configure_args=(--enable-sanitizers)
	# CI runs both builds: the normal one with the offload data path (tun
	# TSO/USO, UDP GSO/GRO), this one with the plain path, so every
	# end-to-end suite runs on both.
	export SALTUN_OFFLOAD=off
	;;
*)
	echo "usage: $0 [--sanitizers]" >&2
	exit 2
	;;
esac
builddir=${BUILDDIR:-$top/$builddir}

"$top/scripts/deps.sh"

if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ] ||
	[ "$top/Makefile.am" -nt "$top/Makefile.in" ]; then
	"$top/autogen.sh"
fi

mkdir -p "$builddir"
cd "$builddir"
[ -f Makefile ] || "$top/configure" "${configure_args[@]}"
make -j"$(nproc)"

# Tests run one at a time: the end-to-end ones measure loss and recovery
# times, which parallel iperf3 runs on a small machine would disturb.
if ! make check; then
	echo
	echo "==================== failed tests ($builddir) ===================="
	# The suite log holds the log of every test that did not pass.
	cat test-suite.log
	exit 1
fi
