#!/bin/bash
#
# Integrity under loss: a random file sent over a TCP connection inside the
# tunnel arrives with the same SHA-256 while the relay drops 10 %, then
# 30 %, of the underlay datagrams in both directions (data and ACKs alike).
# Transfer times and the relay's drop counts are printed, never asserted
# (beyond a generous per-transfer bound that only a stuck tunnel exceeds).
#
# Size: the issue asks for 64 MiB.  That takes 1-3 s under 10 % loss here,
# so make check sends 64 MiB there; under 30 % it usually takes 3-8 s, but
# TCP's exponential retransmission backoff (data and ACKs both lost) gives
# it a long tail (seen: 35 s, and one run over 100 s in 21), so make check
# sends 8 MiB there and SALTUN_TEST_BIG=1 sends the full 64 MiB.
# SALTUN_TEST_LOSS_MIB=N sets both.  Topology: lib-relay.sh.
#
#   A: cat FILE > /dev/tcp/198.18.0.2/7000  ==tunnel, relay drops==>  B: python3 sink -> FILE'

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq python3 sha256sum
test_start 300

MIB10=${SALTUN_TEST_LOSS_MIB:-64}
MIB30=${SALTUN_TEST_LOSS_MIB:-8}
[ "${SALTUN_TEST_BIG:-0}" != 1 ] || MIB30=${SALTUN_TEST_LOSS_MIB:-64}
PER_TRANSFER=120 # seconds; a healthy tunnel needs a few

relay_setup
relay_start
tunnel_start
log "inner TCP congestion control: $(nsx "$nsA" sysctl -n net.ipv4.tcp_congestion_control)"

# One transfer of MIB MiB of random bytes from A to B under LOSS (both directions).
transfer()
{
	local loss=$1 MIB=$2 name=sink-$1 t0 got bytes dropped want sender
	head -c $((MIB << 20)) /dev/urandom >"$T/send.bin"
	want=$(sha256sum <"$T/send.bin" | cut -d' ' -f1)
	rm -f "$T/recv.bin"
	# The sink prints a marker the command line itself does not contain
	# (bg_start logs the command), then writes the stream to the file.
	bg_start "$name" ip netns exec "$nsB" python3 -c '
import socket, sys
srv = socket.create_server(("198.18.0.2", 7000))
print("sink " + "ready", flush=True)
conn, _ = srv.accept()
n = 0
with open(sys.argv[1], "wb") as f:
    while True:
        b = conn.recv(1 << 16)
        if not b:
            break
        f.write(b)
        n += len(b)
print("sink received %d bytes" % n, flush=True)
' "$T/recv.bin"
	wait_for "$T/$name.log" "^sink ready" 5 || fail "$name did not start"
	relay_ctl set both "drop=$loss" >/dev/null
	local d_a2b0 d_b2a0
	d_a2b0=$(relay_stat a2b.dropped)
	d_b2a0=$(relay_stat b2a.dropped)
	nsx "$nsA" nstat -n # reset the TCP counters' history
	t0=$(date +%s.%N)
	# bash closes the socket when cat is done: the sink sees EOF once
	# every byte arrived.
	sender=send-$loss
	# shellcheck disable=SC2016 # $1 belongs to the inner bash
	bg_start "$sender" timeout "$PER_TRANSFER" ip netns exec "$nsA" bash -c \
		'exec 3>/dev/tcp/198.18.0.2/7000 && cat "$1" >&3' _ "$T/send.bin"
	if ! wait_for "$T/$name.log" "^sink received" "$PER_TRANSFER"; then
		# Tell a stuck tunnel from TCP backing off: the tunnel's own
		# counters, and whether a ping still gets through the same loss.
		log "stalled: $(nsx "$nsA" ss -tni dst 198.18.0.2 | tr -s ' \t' ' ')"
		log "a: TCP $(nsx "$nsA" nstat | awk '/TCPTimeouts|RetransSegs/ { printf "%s %s ", $1, $2 }')"
		log "a: $(st_all a)"
		log "b: $(st_all b)"
		log "ping through the same loss: $(nsx "$nsA" ping -q -n -c 20 -i 0.1 -W 1 198.18.0.2 | grep transmitted)"
		fail "transfer under $loss loss did not finish in ${PER_TRANSFER}s"
	fi
	bg_stop "$sender"
	local secs
	secs=$(elapsed_since "$t0")
	dropped="$(($(relay_stat a2b.dropped) - d_a2b0)) a->b, $(($(relay_stat b2a.dropped) - d_b2a0)) b->a"
	relay_ctl set both none >/dev/null
	bg_stop "$name"
	bytes=$(stat -c %s "$T/recv.bin")
	got=$(sha256sum <"$T/recv.bin" | cut -d' ' -f1)
	log "loss $loss: $MIB MiB in ${secs}s ($(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", b * 8 / s / 1e6 }') Mbit/s)," \
		"$(nsx "$nsA" nstat | awk '/TCPTimeouts/ { n = $2 } END { print n + 0 }') TCP retransmission timeouts, relay dropped $dropped"
	expect_eq "bytes received under $loss loss" "$bytes" $((MIB << 20))
	expect_eq "SHA-256 under $loss loss" "$got" "$want"
	[ "${dropped%% *}" -gt 0 ] || fail "the relay dropped nothing: the test proved nothing"
}

transfer 0.1 "$MIB10"
transfer 0.3 "$MIB30"
# Loss never broke the session: no authentication failure, no bad packet.
for n in a b; do
	expect_eq "$n: drops.auth_failed" "$(st $n .drops.auth_failed)" 0
	expect_eq "$n: drops.bad_inner" "$(st $n .drops.bad_inner)" 0
done
ping_ok "$nsA" 198.18.0.2 3 || fail "no ping after the transfers"
log "a: $(st_all a)"
log "b: $(st_all b)"
