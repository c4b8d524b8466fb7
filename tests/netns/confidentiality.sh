#!/bin/bash
#
# Nothing sent through the tunnel shows on the wire: unique markers, in UDP
# payloads (bash's /dev/udp) and in ping padding (ping -p), are found in a
# capture of b's tun device (so the search works) and never in a capture
# of the underlay veth, which did carry the tunnel's packets.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2     tcpdump "tun" here  │
#   │  tun0 198.18.0.1/24          │            │  tun0 198.18.0.2/24          │
#   │    saltun "a" [site2]        │ ==tunnel== │    saltun "b" [site1]        │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   │   tcpdump "underlay" here    │            │                              │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd tcpdump od
test_start 60

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24
# An IPv4-only underlay: then every packet on it but ARP must be the
# tunnel's (no IPv6 neighbour or multicast chatter to explain away).
ip netns exec "$ns1" sysctl -qw net.ipv6.conf.u1.disable_ipv6=1
ip netns exec "$ns2" sysctl -qw net.ipv6.conf.u2.disable_ipv6=1

key_gen a
key_gen b
{
	conf_global a 0.0.0.0:5555
	cat <<EOF
[site2]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
type = tun
device = tun0
up = ip addr add 198.18.0.1/24 dev %d && ip link set %d up
EOF
} >"$T/a.conf"
{
	conf_global b 0.0.0.0:5555
	cat <<EOF
[site1]
public_key = $(key_pub a)
endpoint = 192.0.2.1:5555
type = tun
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"
ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"

# Markers that cannot occur by chance: 16 random bytes as hex, and 8 as
# 16 hex digits for ping's 16-byte pattern.
udp_mark=SALTUN-SECRET-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ping_mark=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
ping_pattern=$(printf %s "$ping_mark" | od -An -tx1 | tr -d ' \n')
log "markers: $udp_mark and $ping_mark"

capture_start "$ns1" u1 underlay
capture_start "$ns2" tun0 tun
for i in 1 2 3 4 5; do
	# shellcheck disable=SC2016 # expanded by the inner bash
	ip netns exec "$ns1" bash -c 'printf "%s %s" "$1" "$2" >/dev/udp/198.18.0.2/9999' _ "$udp_mark" "$i"
done
ip netns exec "$ns1" ping -q -n -c 5 -i 0.2 -W 1 -p "$ping_pattern" 198.18.0.2 >/dev/null ||
	fail "ping with the marker pattern did not cross"
sleep 0.5
capture_stop underlay
capture_stop tun

found()
{
	LC_ALL=C grep -a -c -F -- "$1" "$T/$2.pcap" || true
}
tunnel_packets=$(capture_count underlay "udp port 5555")
log "underlay: $tunnel_packets tunnel packets; tun: $(capture_count tun) packets"
[ "$tunnel_packets" -ge 15 ] || fail "the underlay capture holds only $tunnel_packets tunnel packets, want >= 15"
[ "$(found "$udp_mark" tun)" -ge 1 ] || fail "UDP marker not found in the tun capture: the search is broken"
[ "$(found "$ping_mark" tun)" -ge 1 ] || fail "ping marker not found in the tun capture: the search is broken"
[ "$(found "$udp_mark" underlay)" -eq 0 ] || fail "the UDP marker crossed the underlay in clear"
[ "$(found "$ping_mark" underlay)" -eq 0 ] || fail "the ping marker crossed the underlay in clear"
# No plaintext copy of our own port 9999 datagrams either: only tunnel
# traffic on the underlay.
[ "$(capture_count underlay "not udp port 5555 and not arp")" -eq 0 ] ||
	fail "non-tunnel traffic on the underlay: $(tcpdump -n -r "$T/underlay.pcap" "not udp port 5555" 2>/dev/null | head -n 5)"
