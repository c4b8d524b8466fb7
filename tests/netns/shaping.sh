#!/bin/bash
#
# Shaping (vtun's `speed`): a session with speed = 4000:2000 (kbit/s in:out)
# carries a flood of UDP at a rate within 10 % of the configured one in each
# direction, and counts the excess as "shaped" drops.  An unshaped session
# next to it is not limited.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  iperf3 -u -b 20M            │            │  iperf3 -s                   │
#   │  tun0 198.18.0.1/24          │            │  tun0 198.18.0.2/24          │
#   │    saltun "a" speed 4000:2000│ ==tunnel== │    saltun "b" (unshaped)     │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd iperf3
need_cmd jq
test_start 90

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24

key_gen a
key_gen b
{
	conf_global a 0.0.0.0:5555
	cat <<EOF2
[site2]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
device = tun0
speed = 4000:2000
up = ip addr add 198.18.0.1/24 dev %d && ip link set %d up
EOF2
} >"$T/a.conf"
{
	conf_global b 0.0.0.0:5555
	cat <<EOF2
[site1]
public_key = $(key_pub a)
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip link set %d up
EOF2
} >"$T/b.conf"

saltun_start "$ns2" b "$T/b.conf"
saltun_start "$ns1" a "$T/a.conf"
ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
iperf_server "$ns2" iperf-b 198.18.0.2

# UDP payload 1372 + 28 bytes of headers = 1400-byte packets on the device:
# iperf3 counts payload, the shaper whole packets.
check_rate() # name configured_kbit measured_mbit
{
	local name=$1 kbit=$2 mbit=$3 expect
	expect=$(awk -v k="$kbit" 'BEGIN { printf "%.3f", k / 1000 * 1372 / 1400 }')
	log "$name: configured $kbit kbit/s (payload $expect Mbit/s), measured $mbit Mbit/s"
	awk -v m="$mbit" -v e="$expect" 'BEGIN { exit !(m >= e * 0.9 && m <= e * 1.1) }' ||
		fail "$name: $mbit Mbit/s is not within 10 % of $expect"
}
# The receiver's rate of a UDP run: the field before "Mbits/sec" on its line.
udp_rate() # out
{
	iperf_client "$ns1" 198.18.0.2 5 "$@" >/dev/null
	awk '/receiver$/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { print v }' \
		"$T/$1.log"
}
out=$(udp_rate up -u -b 20M -l 1372)
check_rate "a -> b (out)" 2000 "$out"
in=$(udp_rate down -u -b 20M -l 1372 -R)
check_rate "b -> a (in)" 4000 "$in"

shaped=$(ip netns exec "$ns1" "$SALTUN" status -s "$T/a.sock" --json |
	jq '.sessions[0].drops.shaped')
log "a counted $shaped packets dropped by the shaper"
[ "$shaped" -gt 1000 ] || fail "only $shaped shaped drops for a 20 Mbit/s flood"

# TCP adapts to the policer and stays at or below the rate.
tcp=$(iperf_client "$ns1" 198.18.0.2 5 tcp)
log "TCP a -> b through the 2000 kbit/s shaper: $tcp Mbit/s"
awk -v m="$tcp" 'BEGIN { exit !(m > 0 && m <= 2.2) }' || fail "TCP at $tcp Mbit/s exceeds 2 Mbit/s + 10 %"
