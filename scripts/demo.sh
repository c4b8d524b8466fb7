#!/bin/bash
#
# saltun in one minute: two network namespaces joined by a veth, a tunnel
# between them, a ping and a short iperf3 through it and over the bare veth
# for comparison.  Everything happens inside the two namespaces and is
# removed at the end.  Needs root (namespaces, tun devices); installs the
# packages it needs and builds saltun first when needed.
#
#   ┌────────────────────────────┐            ┌────────────────────────────┐
#   │ namespace A                │            │ namespace B                │
#   │  tun0 198.18.0.1           │ ==tunnel== │  tun0 198.18.0.2           │
#   │  veth 192.0.2.1/24 :5555 ──┼────────────┼── veth 192.0.2.2/24 :5555  │
#   └────────────────────────────┘            └────────────────────────────┘
#
#   scripts/demo.sh                  # SALTUN=/path/to/saltun to use another build

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (network namespaces and tun devices)" >&2; exit 1; }

"$top/scripts/deps.sh"

if [ -z "${SALTUN:-}" ]; then
	SALTUN=$top/build/src/saltun
	if [ ! -x "$SALTUN" ]; then
		echo "demo: building saltun in $top/build"
		[ -x "$top/configure" ] || "$top/autogen.sh"
		mkdir -p "$top/build"
		(cd "$top/build" && { [ -f Makefile ] || ../configure -q; } && make -j"$(nproc)" src/saltun)
	fi
fi
[ -c /dev/net/tun ] || modprobe tun

tmp=$(mktemp -d /tmp/saltun-demo.XXXXXX)
nsa=saltun-demo-$$-a
nsb=saltun-demo-$$-b
pids=()
ok=0

cleanup()
{
	set +e
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	if [ "$ok" != 1 ]; then
		echo "demo: failed; the daemons' logs:" >&2
		tail -n 30 "$tmp"/a.log "$tmp"/b.log >&2 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The underlay: a veth between the two namespaces.
ip netns add "$nsa"
ip netns add "$nsb"
ip -n "$nsa" link set lo up
ip -n "$nsb" link set lo up
ip -n "$nsa" link add name veth0 type veth peer name veth0 netns "$nsb"
ip -n "$nsa" addr add 192.0.2.1/24 dev veth0
ip -n "$nsb" addr add 192.0.2.2/24 dev veth0
ip -n "$nsa" link set veth0 up
ip -n "$nsb" link set veth0 up

# Keys and configs: each side knows its own private key and the other's
# public key; the up hook addresses the tunnel device.
umask 077
"$SALTUN" genkey >"$tmp/a.key"
"$SALTUN" genkey >"$tmp/b.key"
for side in a b; do
	if [ $side = a ]; then peer=b me=1 them=2; else peer=a me=2 them=1; fi
	cat >"$tmp/$side.conf" <<EOF
[global]
private_key = $tmp/$side.key
listen = 0.0.0.0:5555
control = $tmp/$side.sock

[$peer]
public_key = $("$SALTUN" pubkey <"$tmp/$peer.key")
endpoint = 192.0.2.$them:5555
type = tun
device = tun0
up = ip addr add 198.18.0.$me/24 dev %d && ip link set %d up
EOF
	"$SALTUN" check -c "$tmp/$side.conf" >/dev/null
done

# A first, then B once A is listening: B's first handshake attempt then
# finds A ready (the usual case: one end is up long before the other).
ip netns exec "$nsa" "$SALTUN" run -c "$tmp/a.conf" 2>"$tmp/a.log" &
pids+=($!)
for _ in $(seq 50); do
	grep -q "running" "$tmp/a.log" && break
	sleep 0.1
done
t_start=$(now)
ip netns exec "$nsb" "$SALTUN" run -c "$tmp/b.conf" 2>"$tmp/b.log" &
pids+=($!)

# The first packet (or B's start) starts the handshake; wait for the
# first answer.
t_first=""
for _ in $(seq 30); do
	if ip netns exec "$nsa" ping -c 1 -W 1 198.18.0.2 >/dev/null 2>&1; then
		t_first=$(now)
		break
	fi
	sleep 0.1
done
[ -n "$t_first" ] || { echo "demo: no answer through the tunnel within 15 s" >&2; exit 1; }
grep -q "handshake complete" "$tmp/a.log" "$tmp/b.log" || { echo "demo: no handshake logged" >&2; exit 1; }

rtt()
{
	ip netns exec "$1" ping -q -c 10 -i 0.2 "$2" | awk -F/ '/^rtt/ { print $5 }'
}
rtt_tunnel=$(rtt "$nsa" 198.18.0.2)
rtt_veth=$(rtt "$nsa" 192.0.2.2)

# iperf3 for 5 s from A to ADDR in B; the receiver's Mbit/s into $bw.
iperf()
{
	local addr=$1 out _
	: >"$tmp/iperf-server.log"
	ip netns exec "$nsb" iperf3 -s -1 --forceflush -B "$addr" >"$tmp/iperf-server.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do
		grep -q "Server listening" "$tmp/iperf-server.log" && break
		sleep 0.1
	done
	out=$(timeout 30 ip netns exec "$nsa" iperf3 -c "$addr" -t 5 -f m)
	bw=$(awk '/receiver$/ { print $(NF - 2) }' <<<"$out")
}
iperf 198.18.0.2
bw_tunnel=$bw
iperf 192.0.2.2
bw_veth=$bw

cat <<EOF

saltun demo: two namespaces, one tunnel ($("$SALTUN" --version 2>/dev/null | head -n 1 || echo saltun))
  handshake:   first ping answered $(secs "$t_start" "$t_first") s after B started
               A logged: $(grep -h "handshake complete" "$tmp/a.log" | head -n 1 | sed 's/^saltun: //')
  RTT:         tunnel ${rtt_tunnel:-?} ms, bare veth ${rtt_veth:-?} ms (ping, average of 10)
  throughput:  tunnel ${bw_tunnel:-?} Mbit/s, bare veth ${bw_veth:-?} Mbit/s (iperf3, 5 s, one TCP stream)
  configs:     [global] private_key, listen; [peer] public_key, endpoint, type, device, up
               (see saltun.conf(5))
EOF
ok=1
