#!/bin/bash
#
# Every datagram duplicated, both ways (relay dup=1): each duplicate is a
# replayed counter, so the receiver drops it and delivers each packet once.
# Ping must see no "DUP!", every echo answered, and each tun0 must receive
# exactly the packets its peer sent, while drops.replay grows by exactly the
# relay's duplicate count.  Topology: lib-relay.sh (A - relay - B).

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq
test_start 60

N=200
relay_setup
relay_start
tunnel_start
# Quiet point: counters before the faults.
sleep 0.5
rx_a0=$(dev_stat "$nsA" rx packets)
rx_b0=$(dev_stat "$nsB" rx packets)
rep_a0=$(st a .drops.replay)
rep_b0=$(st b .drops.replay)
srx_a0=$(st a .rx_packets)
srx_b0=$(st b .rx_packets)
relay_ctl set both dup=1.0 >/dev/null
dup_a2b0=$(relay_stat a2b.duplicated)
dup_b2a0=$(relay_stat b2a.duplicated)

nsx "$nsA" ping -n -c "$N" -i 0.01 -W 2 198.18.0.2 >"$T/ping.out" 2>&1 || true
# Late duplicates (and keepalives) land before the counters are read.
sleep 0.5
relay_ctl set both none >/dev/null
sleep 0.2
log "ping: $(grep -E 'transmitted' "$T/ping.out")"
dups=$(grep -c 'DUP!' "$T/ping.out" || true)
expect_eq "ping lines with DUP!" "$dups" 0
expect_eq "echo replies received" "$(ping_received "$T/ping.out")" "$N"
dup_a2b=$(($(relay_stat a2b.duplicated) - dup_a2b0))
dup_b2a=$(($(relay_stat b2a.duplicated) - dup_b2a0))
log "relay duplicated $dup_a2b datagrams a->b, $dup_b2a b->a"
{ [ "$dup_a2b" -ge "$N" ] && [ "$dup_b2a" -ge "$N" ]; } || fail "the relay did not duplicate every packet"

# Each device received each packet once: B the N requests, A the N replies.
expect_eq "b: tun0 rx packets" "$(($(dev_stat "$nsB" rx packets) - rx_b0))" "$N"
expect_eq "a: tun0 rx packets" "$(($(dev_stat "$nsA" rx packets) - rx_a0))" "$N"
expect_eq "b: session rx packets" "$(($(st b .rx_packets) - srx_b0))" "$N"
expect_eq "a: session rx packets" "$(($(st a .rx_packets) - srx_a0))" "$N"
# Every duplicate (data and keepalive alike) was dropped as a replay.
expect_eq "b: drops.replay" "$(($(st b .drops.replay) - rep_b0))" "$dup_a2b"
expect_eq "a: drops.replay" "$(($(st a .drops.replay) - rep_a0))" "$dup_b2a"
log "a: $(st_all a)"
log "b: $(st_all b)"
ping_ok "$nsA" 198.18.0.2 3 || fail "no ping after the duplication ended"
