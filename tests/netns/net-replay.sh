#!/bin/bash
#
# Replay: the relay records every datagram from A (the handshake initiation
# and the first data packets), and sends them all to B again 10 s later,
# then once more after a rekey.  Each time:
#   - every replayed data packet is rejected (drops.replay, or auth_failed,
#     key_expired or the daemon's unknown_index once its key is gone): the
#     rejections grow by exactly the number replayed, and not one packet
#     reaches B's tun0 (kernel and session rx counters unchanged);
#   - the replayed initiation (TAI64N not newer than the last) gets no
#     response at all (a capture on B's underlay sees no response message)
#     and does not disturb the live session: no new handshake on B, and
#     ping keeps working on the same keys.
# --test-time-scale 6 so that a rekey comes after 20 s instead of 120 s
# (the keys are then 60 "protocol seconds" old at the first replay: still
# current, which is the point).  Topology: lib-relay.sh.

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq tcpdump
test_start 120

SCALE=6
relay_setup
relay_start --a2b record
tunnel_start --test-time-scale "$SCALE"
ping_ok "$nsA" 198.18.0.2 5 || fail "ping a -> b"
relay_ctl set a2b none >/dev/null # stop recording; the record stays
recorded_at=$(date +%s.%N)
sleep 0.3
rec=$(relay_stat a2b.recorded)
inits=$(st a .handshake_attempts)
expect_eq "a: initiations among the recorded datagrams" "$inits" 1
data=$((rec - inits))
log "relay recorded $rec datagrams from A: $inits initiation, $data data"
[ "$data" -ge 6 ] || fail "only $data data packets recorded"

# Every way a daemon may reject a replayed data packet.
rejected()
{
	local out
	out=$("$SALTUN" status -s "$T/$1.sock" --json) || fail "saltun status of $1 failed"
	jq -r '.sessions[0].drops.replay + .sessions[0].drops.auth_failed +
		.sessions[0].drops.key_expired + .counters.unknown_index' <<<"$out"
}

# Replay the record to B and check that it changed nothing.
replay_check()
{
	local what=$1 rej0 rx0 srx0 hs0 irep0 n
	rej0=$(rejected b)
	rx0=$(dev_stat "$nsB" rx packets)
	srx0=$(st b .rx_packets)
	hs0=$(st b .handshakes_completed)
	irep0=$(stj b .counters.initiation_replay)
	# UDP payload byte 0 is the message type: 2 is a handshake response.
	capture_start "$nsB" ub "cap-$what" udp and src host 198.51.100.1 and 'udp[8] = 2'
	n=$(relay_ctl replay a2b | sed -n 's/^a2b.replayed_now=//p')
	expect_eq "$what: datagrams replayed" "$n" "$rec"
	sleep 1.5
	capture_stop "cap-$what"
	log "$what: b $(st b '.drops | {replay, auth_failed, key_expired}' | tr -d ' \n')," \
		"unknown_index $(stj b .counters.unknown_index), initiation_replay $(stj b .counters.initiation_replay)"
	expect_eq "$what: b rejected data packets" "$(($(rejected b) - rej0))" "$data"
	expect_eq "$what: b tun0 rx packets" "$(($(dev_stat "$nsB" rx packets) - rx0))" 0
	expect_eq "$what: b session rx packets" "$(($(st b .rx_packets) - srx0))" 0
	expect_eq "$what: b initiations refused as replays" "$(($(stj b .counters.initiation_replay) - irep0))" 1
	expect_eq "$what: handshake responses sent by b" "$(capture_count "cap-$what")" 0
	expect_eq "$what: b handshakes completed" "$(st b .handshakes_completed)" "$hs0"
	ping_ok "$nsA" 198.18.0.2 3 || fail "$what: the live session was disturbed"
	expect_eq "$what: b handshakes completed after a ping" "$(st b .handshakes_completed)" "$hs0"
}

# ---------------------------------------------------------------- 10 s later
sleep "$(awk -v t="$recorded_at" -v now="$(date +%s.%N)" 'BEGIN { d = t + 10 - now; print (d > 0 ? d : 0) }')"
replay_check "replay after 10 s"

# ---------------------------------------------------------------- after a rekey
# A rekeys when it sends on a key older than 120 s / SCALE.
hs_a=$(st a .handshakes_completed)
for ((i = 0; i < 40; i++)); do
	[ "$(st a .handshakes_completed)" -gt "$hs_a" ] && break
	nsx "$nsA" ping -q -n -c 2 -i 0.2 -W 1 198.18.0.2 >/dev/null 2>&1 || true
done
[ "$(st a .handshakes_completed)" -gt "$hs_a" ] || fail "no rekey within $((120 / SCALE + 20)) s"
log "rekeyed: a handshakes completed $(st a .handshakes_completed), rekeys counter $(st a .rekeys)"
replay_check "replay after a rekey"
log "a: $(st_all a)"
log "b: $(st_all b)"
