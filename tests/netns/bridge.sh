#!/bin/bash
#
# Two LANs joined into one Ethernet segment: each site has a bridge br0
# with its LAN's veth and the tap (`bridge = br0` in the config: the daemon
# enslaves the tap itself).  The LAN hosts, which know nothing of saltun,
# resolve each other by ARP and ping across.
#
#   ┌───────────────┐   ┌────────────────────────┐          ┌────────────────────────┐   ┌───────────────┐
#   │ $lan1         │   │ $site1                 │          │ $site2                 │   │ $lan2         │
#   │ eth0          │   │  br0: l1 + tap0        │          │  br0: l2 + tap0        │   │ eth0          │
#   │ 198.18.10.1/24├───┤l1        saltun "a" ===│=tunnel===│=== saltun "b"        l2├───┤198.18.10.2/24 │
#   └───────────────┘   │  u1 192.0.2.1/24 ──────┼── veth ──┼── u2 192.0.2.2/24      │   └───────────────┘
#                       └────────────────────────┘          └────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd bridge
test_start 60

lan1=$(ns_name lan1)
site1=$(ns_name site1)
site2=$(ns_name site2)
lan2=$(ns_name lan2)
for ns in "$lan1" "$site1" "$site2" "$lan2"; do
	ns_add "$ns"
done
veth_link "$site1" u1 192.0.2.1/24 "$site2" u2 192.0.2.2/24
for site in "$site1:l1:$lan1:198.18.10.1/24" "$site2:l2:$lan2:198.18.10.2/24"; do
	IFS=: read -r s port lan addr <<<"$site"
	ip -n "$s" link add name br0 type bridge
	ip -n "$s" link set br0 up
	veth_link "$s" "$port" - "$lan" eth0 "$addr"
	ip -n "$s" link set "$port" master br0
done

key_gen a
key_gen b
{
	conf_global a 0.0.0.0:5555
	cat <<EOF
[site2]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
type = tap
device = tap0
bridge = br0
EOF
} >"$T/a.conf"
{
	conf_global b 0.0.0.0:5555
	cat <<EOF
[site1]
public_key = $(key_pub a)
endpoint = 192.0.2.1:5555
type = tap
device = tap0
bridge = br0
EOF
} >"$T/b.conf"

saltun_start "$site1" a "$T/a.conf"
saltun_start "$site2" b "$T/b.conf"
for s in "$site1" "$site2"; do
	link=$(ip -n "$s" -o link show dev tap0)
	grep -q "master br0" <<<"$link" || fail "tap0 in ${s##*-} is not in br0: $link"
	grep -Eq "[<,]UP[,>]" <<<"$link" || fail "tap0 in ${s##*-} is not up: $link"
done

# The LAN hosts must not send frames bigger than the tap carries.
mtu=$(dev_mtu "$site1" tap0)
ip -n "$lan1" link set eth0 mtu "$mtu"
ip -n "$lan2" link set eth0 mtu "$mtu"
log "tap0 MTU $mtu (LAN hosts set to match)"

ping_wait "$lan1" 198.18.10.2 15 || fail "lan1 cannot reach lan2 across the bridges"
wait_for "$T/a.log" "site2: handshake complete" 2 || fail "a: no handshake line"
ping_ok "$lan1" 198.18.10.2 5 || fail "lan1 -> lan2"
ping_ok "$lan2" 198.18.10.1 5 || fail "lan2 -> lan1"
ping_df "$lan1" 198.18.10.2 $((mtu - 28)) || fail "full-size ping ($((mtu - 28)) bytes, DF) lan1 -> lan2"

# Layer 2 end to end: lan1 resolved lan2's own MAC, and site1's bridge
# learned that MAC behind its tap.
mac2=$(ip -n "$lan2" -o link show dev eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\) .*/\1/p')
neigh=$(ip -n "$lan1" neigh show 198.18.10.2 dev eth0)
grep -q "lladdr $mac2 " <<<"$neigh " || fail "lan1 did not resolve 198.18.10.2 to $mac2: '$neigh'"
fdb=$(bridge -n "$site1" fdb show br br0)
grep -q "^$mac2 dev tap0 " <<<"$fdb" || fail "site1's br0 did not learn $mac2 behind tap0: $fdb"

# IPv6 link-local between the LAN hosts: multicast neighbour discovery
# floods through both bridges and the tunnel.
ll2=$(ip -n "$lan2" -6 -o addr show dev eth0 scope link | awk '{ sub(/\/.*/, "", $4); print $4 }')
[ -n "$ll2" ] || fail "lan2 has no link-local address"
ping_ok "$lan1" "$ll2%eth0" 5 || fail "link-local ping lan1 -> $ll2%eth0"
log "lan1 <-> lan2: RTT $(ping_rtt "$lan1" 198.18.10.2 10) ms across two bridges and the tunnel"
