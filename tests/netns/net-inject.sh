#!/bin/bash
#
# Injection from a third namespace X, from an address the session has never
# seen, aimed at B's live session:
#   1. forged data messages carrying the session's real receiver index
#      (taken from a capture) with fresh counters and random ciphertext:
#      each fails authentication (drops.auth_failed grows by exactly the
#      number sent);
#   2. genuine data packets captured earlier, replayed from X: each
#      authenticates but is a replay (drops.replay grows by the number
#      sent).
# Neither may move the endpoint (status endpoint unchanged, no "endpoint
# changed to" log line), reach B's tun0, or draw a single packet from B to
# X; the session keeps working through the relay.
#
#   A ── relay ── B (lib-relay.sh), and
#   ┌──────────────────────────┐      ┌──────────────────────────┐
#   │ $nsX (attacker)          │      │ $nsB                     │
#   │  xb 192.0.2.130/25 ──────┼ veth ┼─ ux 192.0.2.129/25 :5555 │
#   └──────────────────────────┘      └──────────────────────────┘

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq tcpdump python3
test_start 60

K=20
relay_setup
nsX=$(ns_name x)
ns_add "$nsX"
veth_link "$nsX" xb 192.0.2.130/25 "$nsB" ux 192.0.2.129/25
relay_start
tunnel_start

# Genuine data messages from A as B receives them (type 4 at UDP payload byte 0).
capture_start "$nsB" ub cap-data udp and dst port 5555 and 'udp[8] = 4'
ping_ok "$nsA" 198.18.0.2 5 || fail "ping a -> b"
capture_stop cap-data
mapfile -t genuine < <(pcap_payloads cap-data)
[ "${#genuine[@]}" -ge 5 ] || fail "captured only ${#genuine[@]} data messages"
idx=${genuine[-1]:8:8}
log "captured ${#genuine[@]} data messages; B's live receiver index (LE hex) $idx"

ep0=$(st b .endpoint)
moved0=$(count_lines "$T/b.log" "endpoint changed to")
rx0=$(dev_stat "$nsB" rx packets)
srx0=$(st b .rx_packets)
log "b: endpoint $ep0 before the injection"
capture_start "$nsB" ux cap-x ip dst host 192.0.2.130

# ---------------------------------------------------------------- 1. forged
forged=()
for ((i = 0; i < K; i++)); do
	# header, receiver index, a counter far ahead (LE), 64 bytes + 16-byte tag
	forged+=("04000000${idx}$(printf '%016x' $((0x100000 + i)) | sed 's/\(..\)/\1 /g' |
		awk '{ for (i = NF; i > 0; i--) printf "%s", $i }')$(head -c 80 /dev/urandom | od -An -tx1 | tr -d ' \n')")
done
auth0=$(st b .drops.auth_failed)
udp_inject "$nsX" 192.0.2.130 5555 192.0.2.129 5555 "${forged[@]}"
sleep 0.5
expect_eq "forged: b drops.auth_failed" "$(($(st b .drops.auth_failed) - auth0))" "$K"
expect_eq "forged: b endpoint" "$(st b .endpoint)" "$ep0"

# ---------------------------------------------------------------- 2. genuine, replayed
rep0=$(st b .drops.replay)
udp_inject "$nsX" 192.0.2.130 5555 192.0.2.129 5555 "${genuine[@]}"
sleep 0.5
expect_eq "replayed from X: b drops.replay" "$(($(st b .drops.replay) - rep0))" "${#genuine[@]}"
expect_eq "replayed from X: b endpoint" "$(st b .endpoint)" "$ep0"

# ---------------------------------------------------------------- nothing moved
expect_eq "b: 'endpoint changed to' lines during the injection" \
	"$(($(count_lines "$T/b.log" "endpoint changed to") - moved0))" 0
expect_eq "b: tun0 rx packets during the injection" "$(($(dev_stat "$nsB" rx packets) - rx0))" 0
expect_eq "b: session rx packets during the injection" "$(($(st b .rx_packets) - srx0))" 0
ping_ok "$nsA" 198.18.0.2 5 || fail "the session broke after the injection"
ping_ok "$nsB" 198.18.0.1 5 || fail "b -> a broke after the injection"
expect_eq "b: endpoint after pings" "$(st b .endpoint)" "$ep0"
capture_stop cap-x
expect_eq "IP packets from B to X" "$(capture_count cap-x)" 0
log "b: counters $(stj b .counters | jq -c .)"
log "b: $(st_all b)"
