#!/bin/bash
#
# One server, two clients that dial in (the server knows no endpoint), each
# on its own server device, both pinging at once.  client2 sits behind a
# NAT (nftables masquerade, keepalive = 2) and changes its own underlay
# address mid-ping: the NAT gives it a new port, the server learns the new
# endpoint from the next authenticated packet and the session carries on.
#
#                                   ┌──────────────────────────────────────┐
#   ┌─────────────────────────┐     │ $server        saltun "server" :5555 │
#   │ $c1  saltun "client1"   │     │  tun-c1 198.18.1.1 peer 198.18.1.2   │
#   │  tun0 198.18.1.2        │     │  tun-c2 198.18.2.1 peer 198.18.2.2   │
#   │  u 192.0.2.2/28 ────────┼─────┼── s1 192.0.2.1/28                    │
#   └─────────────────────────┘     │   s2 192.0.2.17/28                   │
#                                   └────┬─────────────────────────────────┘
#   ┌─────────────────────────┐     ┌────┴─────────────────────────────────┐
#   │ $c2  saltun "client2"   │     │ $nat   masquerade out of n-out       │
#   │  tun0 198.18.2.2        │     │   n-out 192.0.2.18/28                │
#   │  e 198.51.100.2/24 ─────┼─────┼── n-in 198.51.100.1/24               │
#   │    (then .3, mid-ping)  │     └──────────────────────────────────────┘
#   │  default via .1         │
#   └─────────────────────────┘
#   The server has no route to 198.51.100.0/24: client2 is only reachable
#   through the NAT's mapping.

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd nft
test_start 90

server=$(ns_name server)
c1=$(ns_name c1)
c2=$(ns_name c2)
nat=$(ns_name nat)
for ns in "$server" "$c1" "$c2" "$nat"; do
	ns_add "$ns"
done
veth_link "$c1" u 192.0.2.2/28 "$server" s1 192.0.2.1/28
veth_link "$nat" n-out 192.0.2.18/28 "$server" s2 192.0.2.17/28
veth_link "$c2" e 198.51.100.2/24 "$nat" n-in 198.51.100.1/24
ip -n "$c2" route add default via 198.51.100.1
ip netns exec "$nat" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$nat" nft -f - <<'EOF'
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "n-out" masquerade
	}
}
EOF

key_gen server
key_gen client1
key_gen client2
{
	conf_global server 0.0.0.0:5555
	cat <<EOF
[client1]
public_key = $(key_pub client1)
type = tun
device = tun-c1
up = ip addr add 198.18.1.1 peer 198.18.1.2 dev %d && ip link set %d up

[client2]
public_key = $(key_pub client2)
type = tun
device = tun-c2
up = ip addr add 198.18.2.1 peer 198.18.2.2 dev %d && ip link set %d up
EOF
} >"$T/server.conf"
{
	conf_global client1
	cat <<EOF
[server]
public_key = $(key_pub server)
endpoint = 192.0.2.1:5555
type = tun
device = tun0
up = ip addr add 198.18.1.2 peer 198.18.1.1 dev %d && ip link set %d up
EOF
} >"$T/client1.conf"
{
	conf_global client2
	cat <<EOF
[server]
public_key = $(key_pub server)
endpoint = 192.0.2.17:5555
type = tun
device = tun0
keepalive = 2
up = ip addr add 198.18.2.2 peer 198.18.2.1 dev %d && ip link set %d up
EOF
} >"$T/client2.conf"

saltun_start "$server" server "$T/server.conf"
saltun_start "$c1" client1 "$T/client1.conf"
saltun_start "$c2" client2 "$T/client2.conf"

ping_wait "$c1" 198.18.1.1 15 || fail "client1 cannot reach the server"
ping_wait "$c2" 198.18.2.1 15 || fail "client2 cannot reach the server through the NAT"
wait_for "$T/server.log" "client1: handshake complete .*192\.0\.2\.2:" 2 || fail "server: no handshake with client1"
wait_for "$T/server.log" "client2: handshake complete .*192\.0\.2\.18:" 2 ||
	fail "server: no handshake with client2 from the NAT's address"
# The server can start traffic to both: it learned where they are.
ping_ok "$server" 198.18.1.2 3 || fail "server -> client1"
ping_ok "$server" 198.18.2.2 3 || fail "server -> client2 (through the NAT mapping)"

# Both clients ping at once for 10 s; client2 moves after 4 s.
bg_start ping1 ip netns exec "$c1" ping -n -D -c 50 -i 0.2 -W 1 198.18.1.1
bg_start ping2 ip netns exec "$c2" ping -n -D -c 50 -i 0.2 -W 1 198.18.2.1
sleep 4
moved=$(date +%s.%N)
# The new address first, promoted when the old one goes (else deleting a
# primary address deletes its secondaries too).
ip netns exec "$c2" sysctl -qw net.ipv4.conf.e.promote_secondaries=1
ip -n "$c2" addr add 198.51.100.3/24 dev e
ip -n "$c2" addr del 198.51.100.2/24 dev e
ip -n "$c2" route replace default via 198.51.100.1
log "client2 moved from 198.51.100.2 to 198.51.100.3"
wait_for "$T/server.log" "client2: endpoint changed to 192\.0\.2\.18:" 8 ||
	fail "server did not learn client2's new endpoint"
log "server: $(grep -E 'client2: endpoint changed' "$T/server.log" | tail -n 1)"
wait_for "$T/ping1.log" "packet loss" 15 || fail "client1's ping did not finish"
wait_for "$T/ping2.log" "packet loss" 15 || fail "client2's ping did not finish"

loss1=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$T/ping1.log")
recv2=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$T/ping2.log")
# Answers to client2 sent after the move (+1 s for the last old ones).
after=$(awk -v t="$moved" -F'[][]' '/bytes from/ && $2 > t + 1 { n++ } END { print n + 0 }' "$T/ping2.log")
log "client1: ${loss1}% loss; client2: $recv2/50 answered, $after of them more than 1 s after the move"
[ "$loss1" = 0 ] || fail "client1 lost ${loss1}% while client2 moved"
[ "$after" -ge 20 ] || fail "client2's session did not carry on after the move ($after answers)"
[ "$recv2" -ge 40 ] || fail "client2 lost $((50 - recv2)) of 50 pings across the move"
ping_ok "$server" 198.18.2.2 3 || fail "server -> client2 after the move"
