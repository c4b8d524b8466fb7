#!/bin/bash
#
# Reordering and the 8128-packet replay window (RFC 6479 style):
#   1. jitter reorders datagrams both ways: the inner flow sees them out of
#      order, and not one is dropped by the replay check (drops.replay 0);
#   2. one data packet held back behind 100 later ones (inside the window)
#      is still accepted;
#   3. one data packet held back behind 9000 later ones (beyond the window)
#      is the only packet dropped as a replay (drops.replay exactly 1).
# hold_match=04000000 (a data message's header) so the relay never holds a
# handshake.  The inner flow is the relay binary's UDP echo pair (sequence
# numbers, so it counts reordering).  Topology: lib-relay.sh.

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq
test_start 120

relay_setup
relay_start
tunnel_start
echo_start

# ---------------------------------------------------------------- 1. jitter
relay_ctl set both delay=3ms,jitter=3ms >/dev/null
res=$(echo_send 3000 --interval 200us --wait 1s)
log "jitter 3±3 ms: $res"
relay_ctl set both none >/dev/null
[ "$(field reordered "$res")" -gt 0 ] || fail "jitter reordered nothing: the test proved nothing"
expect_eq "echoes received under jitter" "$(field unique "$res")" 3000
expect_eq "b: drops.replay after jitter" "$(st b .drops.replay)" 0
expect_eq "a: drops.replay after jitter" "$(st a .drops.replay)" 0

# ---------------------------------------------------------------- 2. inside the window
relay_ctl set a2b holdone=100,hold_match=04000000 >/dev/null
res=$(echo_send 400 --interval 100us --wait 1s)
log "one packet held behind 100: $res; relay $(relay_ctl stats a2b.held) $(relay_ctl stats a2b.holding)"
expect_eq "relay: a2b.held" "$(relay_stat a2b.held)" 1
expect_eq "relay: a2b.holding (released)" "$(relay_stat a2b.holding)" 0
expect_eq "echoes received with one held inside the window" "$(field unique "$res")" 400
[ "$(field reordered "$res")" -ge 1 ] || fail "the held packet did not arrive late"
expect_eq "b: drops.replay after a hold inside the window" "$(st b .drops.replay)" 0

# ---------------------------------------------------------------- 3. beyond the window
rx0=$(st b .rx_packets)
relay_ctl set a2b holdone=9000,hold_match=04000000 >/dev/null
# A fast flood until over 9000 data packets have passed the held one (a
# loaded machine loses some of the flood before the relay: send batches
# until the relay lets the held packet go).  Only the replay counter is
# asserted: the echoes may overflow a socket somewhere.
for ((batch = 1; batch <= 12; batch++)); do
	res=$(echo_send 3000 --interval 20us --wait 200ms)
	log "flood batch $batch: $res; relay $(relay_ctl stats a2b.holding)"
	[ "$(relay_stat a2b.holding)" = 0 ] && break
done
log "relay: $(relay_ctl stats a2b.held) $(relay_ctl stats a2b.holding) $(relay_ctl stats a2b.forwarded)"
expect_eq "relay: a2b.held" "$(relay_stat a2b.held)" 2
expect_eq "relay: a2b.holding (released)" "$(relay_stat a2b.holding)" 0
log "b: session rx packets during the flood: $(($(st b .rx_packets) - rx0))"
expect_eq "b: drops.replay after a hold beyond the window" "$(st b .drops.replay)" 1
expect_eq "a: drops.replay" "$(st a .drops.replay)" 0
for n in a b; do
	expect_eq "$n: drops.auth_failed" "$(st $n .drops.auth_failed)" 0
done
ping_ok "$nsA" 198.18.0.2 3 || fail "no ping after the reordering"
log "a: $(st_all a)"
log "b: $(st_all b)"
