#!/bin/bash
#
# Two sites, one tun session each way over an IPv4 underlay: handshake,
# ping both ways over IPv4 and IPv6, 10 s of iperf3 each direction (figures
# printed, not asserted), then a clean stop removes the devices.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tun0 198.18.0.1/24 fd00::1  │            │  tun0 198.18.0.2/24 fd00::2  │
#   │    saltun "a" [site2]        │ ==tunnel== │    saltun "b" [site1]        │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd iperf3
test_start 120

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
type = tun
device = tun0
up = ip addr add 198.18.0.1/24 dev %d && ip addr add fd00::1/64 dev %d && ip link set %d up
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
up = ip addr add 198.18.0.2/24 dev %d && ip addr add fd00::2/64 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"
dev_exists "$ns1" tun0 || fail "a: no tun0"
dev_exists "$ns2" tun0 || fail "b: no tun0"

t0=$(date +%s.%N)
ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
log "first answer through the tunnel after $(elapsed_since "$t0")s"
wait_for "$T/a.log" "site2: handshake complete .*192\.0\.2\.2:5555" 2 || fail "a: no handshake line"
wait_for "$T/b.log" "site1: handshake complete .*192\.0\.2\.1:5555" 2 || fail "b: no handshake line"

ping_ok "$ns1" 198.18.0.2 5 || fail "IPv4 a -> b"
ping_ok "$ns2" 198.18.0.1 5 || fail "IPv4 b -> a"
ping_ok "$ns1" fd00::2 5 || fail "IPv6 a -> b"
ping_ok "$ns2" fd00::1 5 || fail "IPv6 b -> a"
log "RTT through the tunnel: $(ping_rtt "$ns1" 198.18.0.2 10) ms; bare veth: $(ping_rtt "$ns1" 192.0.2.2 10) ms"

iperf_server "$ns2" iperf-b 198.18.0.2
up=$(iperf_client "$ns1" 198.18.0.2 10 iperf-a-to-b)
down=$(iperf_client "$ns1" 198.18.0.2 10 iperf-b-to-a -R)
log "iperf3 through the tunnel: a -> b $up Mbit/s, b -> a $down Mbit/s"
awk -v u="$up" -v d="$down" 'BEGIN { exit !(u > 0 && d > 0) }' || fail "iperf3 moved nothing"
# Still one session after 20 s of load: no handshake storm, no crash.
{ bg_alive a && bg_alive b; } || fail "a daemon died under load"
ping_ok "$ns2" fd00::1 3 || fail "IPv6 b -> a after iperf3"

# Clean stop: exit status 0 and the device gone.
saltun_stop a
[ "$STOP_STATUS" -eq 0 ] || fail "a: exit status $STOP_STATUS after SIGTERM"
! dev_exists "$ns1" tun0 || fail "a: tun0 still there after stop"
saltun_stop b
[ "$STOP_STATUS" -eq 0 ] || fail "b: exit status $STOP_STATUS after SIGTERM"
! dev_exists "$ns2" tun0 || fail "b: tun0 still there after stop"
