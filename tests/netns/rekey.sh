#!/bin/bash
#
# Key rotation under traffic: with every protocol timer divided by 20
# (--test-time-scale 20: rekey after 6 s, reject after 9 s, keepalive after
# 0.5 s), a 20 s ping crosses several rekeys with no loss at all, and the
# link stays one link: connect fires once per side, never disconnect.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  ping -i 0.1 for 20 s        │            │                              │
#   │  tun0 198.18.0.1/24          │            │  tun0 198.18.0.2/24          │
#   │    saltun "a" [site2] x20    │ ==tunnel== │    saltun "b" [site1] x20    │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
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
type = tun
device = tun0
up = ip addr add 198.18.0.1/24 dev %d && ip link set %d up
connect = echo connect >> $T/a.events
disconnect = echo disconnect >> $T/a.events
EOF2
} >"$T/a.conf"
{
	conf_global b 0.0.0.0:5555
	cat <<EOF2
[site1]
public_key = $(key_pub a)
endpoint = 192.0.2.1:5555
type = tun
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip link set %d up
connect = echo connect >> $T/b.events
disconnect = echo disconnect >> $T/b.events
EOF2
} >"$T/b.conf"

saltun_start "$ns1" a "$T/a.conf" --test-time-scale 20
saltun_start "$ns2" b "$T/b.conf" --test-time-scale 20
ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
wait_for "$T/a.log" "handshake complete" 2 || fail "a: no handshake line"
before=$(count_lines "$T/a.log" "handshake complete")

ip netns exec "$ns1" ping -n -c 200 -i 0.1 -W 1 198.18.0.2 >"$T/ping.log" 2>&1 || true
loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$T/ping.log")
summary=$(grep "packet loss" "$T/ping.log" || true)
rekeys=$(($(count_lines "$T/a.log" "handshake complete") - before))
ours=$(count_lines "$T/a.log" "handshake complete \(we initiated\)")
theirs=$(count_lines "$T/a.log" "handshake complete \(peer initiated\)")
log "20 s ping: $summary"
log "$rekeys handshakes during it (a's log: $ours initiated by a, $theirs by b, in all)"
[ "$loss" = 0 ] || fail "lost ${loss}% across rekeys: $summary"
[ "$rekeys" -ge 2 ] || fail "only $rekeys handshakes in 20 s at rekey-after 6 s"
[ "$rekeys" -le 10 ] || fail "$rekeys handshakes in 20 s: a handshake storm"
[ "$(cat "$T/a.events")" = connect ] || fail "a's connect/disconnect hooks: $(cat "$T/a.events")"
[ "$(cat "$T/b.events")" = connect ] || fail "b's connect/disconnect hooks: $(cat "$T/b.events")"
