#!/bin/bash
#
# Ethernet over the tunnel (type = tap): ARP resolves the peer's MAC across
# it, IPv4 and IPv6 pings pass, and an IPv6 link-local ping works, which
# needs multicast neighbour discovery to cross the tunnel too.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tap0 198.18.0.1/24 fd00::1  │            │  tap0 198.18.0.2/24 fd00::2  │
#   │       fe80::... (auto)       │            │       fe80::... (auto)       │
#   │    saltun "a" [site2]        │ ==tunnel== │    saltun "b" [site1]        │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
test_start 60

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24

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
up = ip addr add 198.18.0.1/24 dev %d && ip addr add fd00::1/64 dev %d && ip link set %d up
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
up = ip addr add 198.18.0.2/24 dev %d && ip addr add fd00::2/64 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"
grep -q "tun type tap" <<<"$(ip -n "$ns1" -d link show dev tap0)" || fail "a: tap0 is not a tap device"

mac_of()
{
	ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\) .*/\1/p'
}
mac1=$(mac_of "$ns1" tap0)
mac2=$(mac_of "$ns2" tap0)
log "tap0 MACs: a $mac1, b $mac2"
{ [ -n "$mac1" ] && [ -n "$mac2" ] && [ "$mac1" != "$mac2" ]; } || fail "tap MACs: '$mac1' '$mac2'"

ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
wait_for "$T/a.log" "site2: handshake complete" 2 || fail "a: no handshake line"

# ARP: a learned b's tap MAC through the tunnel.
neigh=$(ip -n "$ns1" neigh show 198.18.0.2 dev tap0)
log "a's neighbour entry: $neigh"
grep -q "lladdr $mac2 " <<<"$neigh " || fail "ARP on a did not resolve 198.18.0.2 to $mac2: '$neigh'"

ping_ok "$ns1" 198.18.0.2 5 || fail "IPv4 a -> b"
ping_ok "$ns2" 198.18.0.1 5 || fail "IPv4 b -> a"
ping_ok "$ns1" fd00::2 5 || fail "IPv6 a -> b"
neigh6=$(ip -n "$ns1" -6 neigh show fd00::2 dev tap0)
grep -q "lladdr $mac2 " <<<"$neigh6 " || fail "NDP on a did not resolve fd00::2 to $mac2: '$neigh6'"

ll2=$(ip -n "$ns2" -6 -o addr show dev tap0 scope link | awk '{ sub(/\/.*/, "", $4); print $4 }')
ll1=$(ip -n "$ns1" -6 -o addr show dev tap0 scope link | awk '{ sub(/\/.*/, "", $4); print $4 }')
{ [ -n "$ll1" ] && [ -n "$ll2" ]; } || fail "no link-local addresses on the taps: '$ll1' '$ll2'"
ping_ok "$ns1" "$ll2%tap0" 5 || fail "link-local ping a -> $ll2%tap0"
ping_ok "$ns2" "$ll1%tap0" 5 || fail "link-local ping b -> $ll1%tap0"
log "link-local: $ll1 <-> $ll2 over the taps, RTT $(ping_rtt "$ns1" "$ll2%tap0" 5) ms"

# A packet of the tap's full MTU crosses (the frame adds 14 bytes of
# Ethernet header: the automatic MTU leaves room for them).
mtu=$(dev_mtu "$ns1" tap0)
log "tap0 MTU $mtu"
ping_df "$ns1" 198.18.0.2 $((mtu - 28)) ||
	fail "full-size ping ($((mtu - 28)) bytes, DF) over the tap"
