#!/bin/bash
#
# The tunnel over an IPv6-only underlay: handshake to a bracketed literal
# endpoint, ping through it over IPv4 and IPv6, and the automatic MTU fits:
# a full-size don't-fragment ping passes and the underlay carries no IPv6
# fragment.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tun0 198.18.0.1/24 fd00::1  │            │  tun0 198.18.0.2/24 fd00::2  │
#   │    saltun "a" [site2]        │ ==tunnel== │    saltun "b" [site1]        │
#   │  u1 2001:db8::1/64 :5555 ────┼─── veth ───┼── u2 2001:db8::2/64 :5555    │
#   └──────────────────────────────┘            └──────────────────────────────┘
#   (no IPv4 address on the veth)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd tcpdump
test_start 60

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 2001:db8::1/64 "$ns2" u2 2001:db8::2/64

key_gen a
key_gen b
{
	conf_global a "[::]:5555"
	cat <<EOF
[site2]
public_key = $(key_pub b)
endpoint = [2001:db8::2]:5555
type = tun
device = tun0
up = ip addr add 198.18.0.1/24 dev %d && ip addr add fd00::1/64 dev %d && ip link set %d up
EOF
} >"$T/a.conf"
{
	conf_global b "[::]:5555"
	cat <<EOF
[site1]
public_key = $(key_pub a)
endpoint = [2001:db8::1]:5555
type = tun
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip addr add fd00::2/64 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"

ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
wait_for "$T/a.log" "site2: handshake complete .*\[2001:db8::2\]:5555" 2 || fail "a: no handshake line naming [2001:db8::2]:5555"
wait_for "$T/b.log" "site1: handshake complete .*\[2001:db8::1\]:5555" 2 || fail "b: no handshake line naming [2001:db8::1]:5555"
ping_ok "$ns1" 198.18.0.2 5 || fail "IPv4 a -> b"
ping_ok "$ns2" 198.18.0.1 5 || fail "IPv4 b -> a"
ping_ok "$ns1" fd00::2 5 || fail "IPv6 a -> b"
ping_ok "$ns2" fd00::1 5 || fail "IPv6 b -> a"

# The automatic MTU: the veth's 1500 minus IPv6 (40) + UDP (8) + data
# header (16) + tag (16) at most.  Whatever the daemon chose, a packet of
# exactly that size must cross without fragmenting the underlay.
mtu=$(dev_mtu "$ns1" tun0)
mtu_b=$(dev_mtu "$ns2" tun0)
log "tun0 MTU: a $mtu, b $mtu_b (underlay 1500, IPv6)"
[ "$mtu" = "$mtu_b" ] || fail "the two ends chose different MTUs: $mtu and $mtu_b"
[ "$mtu" -le $((1500 - 40 - 8 - 32)) ] || fail "MTU $mtu cannot fit in a 1500-byte IPv6 underlay"
[ "$mtu" -ge 1280 ] || fail "MTU $mtu is below IPv6's minimum"

capture_start "$ns1" u1 underlay
ping_df "$ns1" 198.18.0.2 $((mtu - 28)) ||
	fail "full-size IPv4 ping (DF, $((mtu - 28)) bytes) a -> b"
ping_df "$ns2" fd00::1 $((mtu - 48)) ||
	fail "full-size IPv6 ping ($((mtu - 48)) bytes) b -> a"
capture_stop underlay
big=$(capture_count underlay "udp and greater $((mtu + 48))")
frags=$(capture_count underlay "ip6 and ip6[6] == 44")
log "underlay: $big full-size UDP datagrams, $frags IPv6 fragments"
[ "$big" -ge 12 ] || fail "expected 12 full-size datagrams on the underlay, saw $big"
[ "$frags" -eq 0 ] || fail "the underlay carried $frags IPv6 fragments"
# One byte more than the MTU does not fit: refused locally, not fragmented.
! ping_df "$ns1" 198.18.0.2 $((mtu - 27)) 1 ||
	fail "a ping one byte over the MTU passed"
