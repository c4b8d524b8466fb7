#!/bin/bash
#
# Corruption: the relay flips one bit in 1 % of the datagrams, then
# truncates 1 %, then both at once, in both directions, under a UDP echo
# flow through the tunnel.  Every corrupted datagram must be dropped and
# counted exactly once, as an authentication failure (bit in the counter,
# ciphertext or tag), a bad header (type, reserved bytes, too short) or an
# unknown index (bit in the receiver index); nothing corrupted reaches a
# device (tun0's kernel rx counter moves exactly with the session's
# rx_packets, no rx errors, the echo sees no invalid payload); the session
# stays up and ping works.  Topology: lib-relay.sh.

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq
test_start 120

N=5000
relay_setup
relay_start
tunnel_start
echo_start

# Drops that a corrupted datagram arriving at daemon NAME can cause.
rejected()
{
	local out
	out=$("$SALTUN" status -s "$T/$1.sock" --json) || fail "saltun status of $1 failed"
	jq -r '.sessions[0].drops.auth_failed + .counters.bad_header + .counters.unknown_index +
		.counters.bad_mac1' <<<"$out"
}

# One phase: SPEC on both directions during N echoes.  EXACT=1: the drops
# must equal the relay's corruption counters (one fault kind at a time).
phase()
{
	local what=$1 spec=$2 exact=$3 res n dir bad f t
	declare -A rej0 rx0 srx0 rxerr0 f0 t0
	for n in a b; do
		rej0[$n]=$(rejected $n)
		srx0[$n]=$(st $n .rx_packets)
	done
	rx0[a]=$(dev_stat "$nsA" rx packets)
	rx0[b]=$(dev_stat "$nsB" rx packets)
	rxerr0[a]=$(($(dev_stat "$nsA" rx errors) + $(dev_stat "$nsA" rx dropped)))
	rxerr0[b]=$(($(dev_stat "$nsB" rx errors) + $(dev_stat "$nsB" rx dropped)))
	for dir in a2b b2a; do
		f0[$dir]=$(relay_stat $dir.flipped)
		t0[$dir]=$(relay_stat $dir.truncated)
	done
	relay_ctl set both "$spec" >/dev/null
	res=$(echo_send "$N" --interval 200us --size 300 --wait 1s)
	relay_ctl set both none >/dev/null
	sleep 0.3
	log "$what: echo $res"
	expect_eq "$what: echo payloads invalid" "$(field invalid "$res")" 0
	for dir in a2b b2a; do
		if [ $dir = a2b ]; then n=b; else n=a; fi
		f=$(($(relay_stat $dir.flipped) - f0[$dir]))
		t=$(($(relay_stat $dir.truncated) - t0[$dir]))
		bad=$(($(rejected $n) - rej0[$n]))
		log "$what: relay $dir flipped $f, truncated $t; $n rejected $bad" \
			"(auth_failed $(st $n .drops.auth_failed), bad_header $(stj $n .counters.bad_header)," \
			"unknown_index $(stj $n .counters.unknown_index), bad_mac1 $(stj $n .counters.bad_mac1) in all)"
		[ $((f + t)) -gt 0 ] || fail "$what: the relay corrupted nothing $dir: the test proved nothing"
		if [ "$exact" = 1 ]; then
			expect_eq "$what: $n rejected (= corrupted $dir)" "$bad" $((f + t))
		else
			# A datagram both flipped and truncated is one rejection.
			{ [ "$bad" -le $((f + t)) ] && [ "$bad" -ge $((f > t ? f : t)) ]; } ||
				fail "$what: $n rejected $bad, relay flipped $f and truncated $t"
		fi
		expect_eq "$what: $n drops.bad_inner" "$(st $n .drops.bad_inner)" 0
	done
	# What the session delivered is exactly what the kernel received.
	expect_eq "$what: a tun0 rx = session rx" "$(($(dev_stat "$nsA" rx packets) - rx0[a]))" \
		"$(($(st a .rx_packets) - srx0[a]))"
	expect_eq "$what: b tun0 rx = session rx" "$(($(dev_stat "$nsB" rx packets) - rx0[b]))" \
		"$(($(st b .rx_packets) - srx0[b]))"
	expect_eq "$what: a tun0 rx errors" "$(($(dev_stat "$nsA" rx errors) + $(dev_stat "$nsA" rx dropped) - rxerr0[a]))" 0
	expect_eq "$what: b tun0 rx errors" "$(($(dev_stat "$nsB" rx errors) + $(dev_stat "$nsB" rx dropped) - rxerr0[b]))" 0
	expect_eq "$what: a state" "$(st a .state)" up
	expect_eq "$what: b state" "$(st b .state)" up
	ping_ok "$nsA" 198.18.0.2 3 || fail "$what: no ping after the corruption"
}

phase "1% bit flips" flip=0.01 1
phase "1% truncation" trunc=0.01 1
phase "1% flips + 1% truncation" flip=0.01,trunc=0.01 0
# No new handshake was needed: corruption never broke the keys.
expect_eq "a: handshakes completed" "$(st a .handshakes_completed)" 1
log "a: $(st_all a)"
log "b: $(st_all b)"
