#!/bin/bash
#
# Install what building and testing saltun needs, on Debian 12 or Ubuntu
# (apt).  Reruns are fast: when every package is installed already, apt is
# not touched at all.  Run as root (or with sudo available).
#
#   scripts/deps.sh

set -euo pipefail

PACKAGES=(
	# build
	autoconf automake pkg-config make gcc
	libsodium-dev libuv1-dev libinih-dev
	# unit tests
	libcriterion-dev
	# end-to-end tests and the demo
	iproute2 iputils-ping iperf3 tcpdump nftables procps kmod
	# tests/netns/status.sh checks `saltun status --json`
	jq
	# tests/netns/net-loss.sh (TCP sink) and net-inject.sh (crafted UDP)
	python3-minimal
	# the man pages (make distcheck renders them)
	man-db groff-base
)

installed()
{
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} packages installed"
	exit 0
fi

command -v apt-get >/dev/null || {
	echo "deps: missing ${missing[*]}, and no apt-get to install them" >&2
	exit 1
}
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || {
		echo "deps: missing ${missing[*]}: run as root to install them" >&2
		exit 1
	}
	sudo=(sudo)
fi

echo "deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
