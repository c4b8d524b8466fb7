#!/bin/bash
#
# NAT rebinding: while A pings B through the tunnel, the relay (A's "NAT")
# twice moves its outbound traffic to a new source port.  B must follow
# each move at A's next authenticated packet: the session goes on (at most
# a few pings lost), B logs "endpoint changed to 198.51.100.2:NEWPORT", its
# status shows the new endpoint, and B -> A works to the new port with no
# new handshake.  Topology: lib-relay.sh.

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq
test_start 60

MAX_LOST=3
relay_setup
relay_start
tunnel_start
port0=$(relay_stat udp.source_port)
expect_eq "b: endpoint before" "$(st b .endpoint)" "198.51.100.2:$port0"
hs0=$(st b .handshakes_completed)
moved0=$(count_lines "$T/b.log" "a: endpoint changed to")

bg_start ping ip netns exec "$nsA" ping -n -c 200 -i 0.05 -W 1 198.18.0.2
ports=()
for round in 1 2; do
	sleep 3
	p=$(relay_ctl rebind | sed -n 's/^udp.source_port=//p')
	{ [ -n "$p" ] && [ "$p" != "$port0" ]; } || fail "relay rebind gave port '$p'"
	ports+=("$p")
	log "rebind $round: relay now sends from 198.51.100.2:$p"
	wait_for "$T/b.log" "a: endpoint changed to 198\.51\.100\.2:$p\$" 3 ||
		fail "b did not follow the rebinding to port $p"
	expect_eq "b: endpoint after rebind $round" "$(st b .endpoint)" "198.51.100.2:$p"
done
wait_for "$T/ping.log" "packets transmitted" 15 || fail "ping did not finish"
bg_stop ping
sent=$(ping_transmitted "$T/ping.log")
got=$(ping_received "$T/ping.log")
log "ping across two rebindings: $sent sent, $got answered, $((sent - got)) lost"
[ $((sent - got)) -le "$MAX_LOST" ] || fail "$((sent - got)) pings lost across the rebindings (at most $MAX_LOST)"
expect_eq "b: 'endpoint changed to' lines" "$(($(count_lines "$T/b.log" "a: endpoint changed to") - moved0))" 2
ping_ok "$nsB" 198.18.0.1 5 || fail "b -> a after the rebindings"
expect_eq "b: handshakes completed (the keys survived)" "$(st b .handshakes_completed)" "$hs0"
expect_eq "relay: rebinds" "$(relay_stat udp.rebinds)" 2
log "b: $(st_all b)"
