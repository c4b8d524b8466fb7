#!/bin/bash
#
# A 30 s blackout (the relay drops 100 % both ways) while a ping keeps
# sending, then the network comes back: the tunnel must carry traffic again
# within 6 s of the first packet sent after the restore (recovery time
# printed).  During the blackout A, which hears nothing back, must keep
# retrying its handshake (every 5 s) without giving up (that takes 90 s),
# and a handshake must complete after the restore.  Real time, no
# --test-time-scale.  Topology: lib-relay.sh.

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq
test_start 90

BLACKOUT=${SALTUN_TEST_BLACKOUT:-30}
relay_setup
relay_start
tunnel_start
hs_a0=$(st a .handshake_attempts)
done_a0=$(st a .handshakes_completed)

# -D: every line stamped with the epoch time, to find the first answer
# after the restore; -O: say so for each request left unanswered.
bg_start ping ip netns exec "$nsA" ping -n -D -O -i 0.1 -W 1 198.18.0.2
wait_for "$T/ping.log" "bytes from" 3 || fail "no ping before the blackout"
relay_ctl set both drop=1.0 >/dev/null
log "blackout for ${BLACKOUT}s"
sleep "$BLACKOUT"
[ "$(st a .state)" != waiting ] || fail "a gave up during a ${BLACKOUT}s blackout"
hs_during=$(($(st a .handshake_attempts) - hs_a0))
log "a: $hs_during handshake attempts during the blackout"
# Data went unanswered for over 15 s (keepalive + rekey timeout): A must
# have started handshaking, one attempt per 5 s.
[ "$hs_during" -ge 2 ] || fail "a made $hs_during handshake attempts in ${BLACKOUT}s of silence"
[ "$hs_during" -le $((BLACKOUT / 5 + 2)) ] || fail "a made $hs_during handshake attempts in ${BLACKOUT}s: a storm"

relay_ctl set both none >/dev/null
restored=$(date +%s.%N)
log "network restored"
# The first echo reply stamped after the restore.
deadline=10
first=""
for ((i = 0; i < deadline * 10; i++)); do
	first=$(awk -v r="$restored" '/bytes from/ { ts = substr($1, 2, length($1) - 2); if (ts + 0 > r + 0) { print ts; exit } }' "$T/ping.log")
	[ -n "$first" ] && break
	sleep 0.1
done
[ -n "$first" ] || fail "no echo reply within ${deadline}s of the restore"
recovery=$(awk -v a="$restored" -v b="$first" 'BEGIN { printf "%.2f", b - a }')
log "recovery: first echo reply ${recovery}s after the restore (pings every 0.1 s)"
awk -v r="$recovery" 'BEGIN { exit !(r <= 6) }' || fail "recovery took ${recovery}s, more than 6 s"
wait_for "$T/a.log" "b: handshake complete" 1 || true
# A new handshake completes once its next retry gets through (<= 5 s + jitter).
for ((i = 0; i < 80; i++)); do
	[ "$(st a .handshakes_completed)" -gt "$done_a0" ] && break
	sleep 0.1
done
expect_eq "a: new handshakes after the restore" "$(($(st a .handshakes_completed) - done_a0 > 0))" 1
bg_stop ping
log "ping: $(grep -c 'bytes from' "$T/ping.log") answers, $(grep -c 'no answer yet' "$T/ping.log") unanswered"
expect_eq "a: state" "$(st a .state)" up
expect_eq "b: state" "$(st b .state)" up
ping_ok "$nsA" 198.18.0.2 5 || fail "no clean ping after the restore"
ping_ok "$nsB" 198.18.0.1 5 || fail "no clean ping b -> a after the restore"
log "relay: $(relay_ctl stats a2b.dropped) $(relay_ctl stats b2a.dropped)"
log "a: $(st_all a)"
log "b: $(st_all b)"
