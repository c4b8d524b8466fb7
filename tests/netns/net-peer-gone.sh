#!/bin/bash
#
# The peer goes away for longer than the handshake attempt window, then
# comes back.  Both daemons run with --test-time-scale 10: the 90 s window
# is 9 s, retries every 0.5 s, the "new handshake" trigger after 1.5 s.
#   1. B's daemon stops; A sends one ping into the void.  A must start
#      handshaking, then give up at the end of the window ("giving up" log
#      line), after which it sends nothing at all: its handshake attempts
#      counter stops and the relay sees no datagram from A; once its keys
#      are too old it reports the link as lost ("disconnected").
#   2. No busy loop: A's CPU time (utime + stime, /proc/PID/stat) while the
#      peer is gone stays under 5 % of the wall time.
#   3. B comes back; A still sends nothing until there is traffic, then a
#      ping starts a new handshake series and the tunnel works again.
# Topology: lib-relay.sh.

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq getconf
test_start 90

SCALE=10
WINDOW=$((90 / SCALE)) # seconds of handshake attempts before giving up
QUIET=5                # seconds watched after giving up
relay_setup
relay_start
tunnel_start --test-time-scale "$SCALE"
ping_ok "$nsA" 198.18.0.2 3 || fail "ping a -> b"
pid_a=$(saltun_net_pid a) || fail "a: no network process"
hz=$(getconf CLK_TCK)

# ---------------------------------------------------------------- 1. gone
saltun_stop b
gone=$(date +%s.%N)
cpu0=$(cpu_ticks "$pid_a")
hs0=$(st a .handshake_attempts)
gaveup0=$(count_lines "$T/a.log" "giving up")
log "b stopped; a: $hs0 handshake attempts so far"
ping_none "$nsA" 198.18.0.2 1 || fail "ping answered with b gone"
wait_count "$T/a.log" "b: no answer from .* giving up" $((gaveup0 + 1)) $((WINDOW + 10)) ||
	fail "a did not give up within $((WINDOW + 10))s"
gaveup=$(date +%s.%N)
log "a gave up $(awk -v a="$gone" -v b="$gaveup" 'BEGIN { printf "%.1f", b - a }')s after b left:" \
	"$(grep "giving up" "$T/a.log" | tail -n 1)"
hs1=$(st a .handshake_attempts)
tx1=$(relay_stat a2b.received)
log "a: $((hs1 - hs0)) handshake attempts in the window (one per $((5000 / SCALE)) ms expected)"
[ $((hs1 - hs0)) -ge $((WINDOW * SCALE / 5 / 2)) ] || fail "a made only $((hs1 - hs0)) handshake attempts"
[ $((hs1 - hs0)) -le $((WINDOW * SCALE / 5 + 3)) ] || fail "a made $((hs1 - hs0)) handshake attempts: a storm"
sleep "$QUIET"
expect_eq "a: handshake attempts in ${QUIET}s after giving up" "$(($(st a .handshake_attempts) - hs1))" 0
expect_eq "relay: datagrams from a in ${QUIET}s after giving up" "$(($(relay_stat a2b.received) - tx1))" 0

# ---------------------------------------------------------------- 2. CPU
cpu=$(($(cpu_ticks "$pid_a") - cpu0))
wall=$(elapsed_since "$gone")
pct=$(awk -v c="$cpu" -v hz="$hz" -v w="$wall" 'BEGIN { printf "%.2f", 100 * c / hz / w }')
log "a: ${cpu} ticks of CPU (${hz}/s) in ${wall}s with the peer gone: ${pct} %"
awk -v p="$pct" 'BEGIN { exit !(p < 5) }' || fail "a used ${pct} % CPU while the peer was gone: a busy loop"

# ---------------------------------------------------------------- keys expire
[ "$(st a .state)" != handshaking ] || fail "a still handshaking after giving up"
# The link is lost for good once the keys pass REJECT_AFTER_TIME (18 s
# here): the disconnect event (and hook) must come.
wait_for "$T/a.log" "b: disconnected" $((180 / SCALE)) || fail "a never reported the link as lost"
log "a: $(grep "b: disconnected" "$T/a.log" | tail -n 1)"
# Status must agree with the disconnect event: expired keys are not "up".
state=$(st a .state)
[ "$state" != up ] || fail_later "a: status says 'up' after 'disconnected (keys expired)'"
log "a: state after the disconnect: $state"

# ---------------------------------------------------------------- 3. back
saltun_start "$nsB" b "$T/b.conf" --test-time-scale "$SCALE"
sleep 1
expect_eq "a: handshake attempts with b back but no traffic" "$(($(st a .handshake_attempts) - hs1))" 0
t0=$(date +%s.%N)
ping_wait "$nsA" 198.18.0.2 10 || fail "no ping after b came back"
log "tunnel back $(elapsed_since "$t0")s after the first new packet"
[ "$(st a .handshake_attempts)" -gt "$hs1" ] || fail "a made no new handshake attempt"
expect_eq "a: state" "$(st a .state)" up
ping_ok "$nsB" 198.18.0.1 3 || fail "b -> a after b came back"
log "a: $(st_all a)"
test_finish
