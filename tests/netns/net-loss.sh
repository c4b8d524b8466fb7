#!/bin/bash
#
# Integrity under loss: a random file sent over a TCP connection inside the
# tunnel arrives with the same SHA-256 while the relay drops 10 %, then
# 30 %, of the underlay datagrams in both directions (data and ACKs alike).
# Transfer times and the relay's drop counts are printed, never asserted
# (beyond a generous per-transfer bound that only a stuck tunnel exceeds).
#
# Size: 64 MiB, as the issue asks: 1-3 s under 10 % loss here, 2-6 s under
# 30 %.  Under 30 % loss both ways TCP's own exponential retransmission
# backoff (a retransmission and its ACK both get through only half the
# time) gives the transfer a long tail: seen 35 s, 72 s and over 120 s in
# about 40 runs, with the tunnel passing pings all along.  So the inner TCP
# caps its retransmission timeout at 1 s (net.ipv4.tcp_rto_max_ms, Linux
# 6.15+); on an older kernel make check sends 8 MiB under 30 % loss and
# SALTUN_TEST_BIG=1 the full 64 MiB.  SALTUN_TEST_LOSS_MIB=N sets both.
# Topology: lib-relay.sh.
#
# The sender keeps its socket open until the sink has closed, and sets
# TCP_USER_TIMEOUT to the transfer bound.  A sender that just closes (as
# `cat >/dev/tcp` did) leaves the kernel an orphaned socket with up to a
# send buffer of data; an orphan gives up after tcp_orphan_retries (8)
# retransmission timeouts counted from the first unrepaired
# retransmission, which under 30 % loss both ways with a 1 s RTO cap is
# about 7 s of continuous recovery, and then the sink waits forever behind
# the hole.  It was seen in about 1 run in 5 on the faster offload path
# (which leaves more in flight at close), with the receiver holding 34k
# out-of-order segments and no socket left at the sender.
#
#   A: python3 sender FILE  ==tunnel, relay drops==>  B: python3 sink -> FILE'

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq python3 sha256sum
test_start 300

MIB10=${SALTUN_TEST_LOSS_MIB:-64}
MIB30=${SALTUN_TEST_LOSS_MIB:-8}
PER_TRANSFER=120 # seconds; a healthy tunnel needs a few

relay_setup
relay_start
tunnel_start
# No TCP timestamps inside the tunnel: under heavy loss a timestamp echoed
# for a retransmission that filled a hole measures the whole time the hole
# was open (RFC 7323's rule), Linux takes that as an RTT sample, and a few
# of them push the retransmission timeout to minutes.  Without timestamps
# Karn's rule keeps retransmissions out of the RTT estimate.
rto_cap=no
for ns in "$nsA" "$nsB"; do
	nsx "$ns" sysctl -qw net.ipv4.tcp_timestamps=0
	if nsx "$ns" sysctl -qw net.ipv4.tcp_rto_max_ms=1000 2>/dev/null; then
		rto_cap=1s
	fi
done
if [ "$rto_cap" != no ] || [ "${SALTUN_TEST_BIG:-0}" = 1 ]; then
	MIB30=${SALTUN_TEST_LOSS_MIB:-64}
fi
log "inner TCP: $(nsx "$nsA" sysctl -n net.ipv4.tcp_congestion_control), timestamps off, retransmission timeout cap $rto_cap"

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
print("sink " + "connected", flush=True)
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
	# The connection is opened on a clean path, and the loss starts before
	# the first byte: a SYN-ACK lost to the loss makes Linux take a ~1 s
	# RTT sample (the retransmitted SYN-ACK echoes the first SYN's
	# timestamp), and then a 7 s+ retransmission timeout doubling under 30 %
	# loss stalls the transfer for minutes: TCP's trouble, not the tunnel's.
	# The sender shuts its side down when the file is sent and exits when
	# the sink closes: the sink has every byte by then.
	local sender=send-$loss
	rm -f "$T/go"
	bg_start "$sender" timeout "$PER_TRANSFER" ip netns exec "$nsA" python3 -c '
import os, socket, sys, time
c = socket.create_connection(("198.18.0.2", 7000))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(sys.argv[3]) * 1000)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        c.sendall(b)
c.shutdown(socket.SHUT_WR)
c.recv(1)
print("sender " + "done", flush=True)
' "$T/send.bin" "$T/go" "$PER_TRANSFER"
	wait_for "$T/$name.log" "^sink connected" 5 || fail "$sender could not connect"
	relay_ctl set both "drop=$loss" >/dev/null
	local d_a2b0 d_b2a0
	d_a2b0=$(relay_stat a2b.dropped)
	d_b2a0=$(relay_stat b2a.dropped)
	nsx "$nsA" nstat -n # reset the TCP counters' history
	t0=$(date +%s.%N)
	touch "$T/go"
	if ! wait_for "$T/$name.log" "^sink received" "$PER_TRANSFER"; then
		# Tell a stuck tunnel from TCP backing off: the tunnel's own
		# counters, and whether a ping still gets through the same loss.
		log "stalled: $(nsx "$nsA" ss -tni dst 198.18.0.2 | tr -s ' \t' ' ')"
		log "sender: $(tail -n 3 "$T/$sender.log" | tr '\n' ' ')"
		log "a: TCP $(nsx "$nsA" nstat | awk '/TCPTimeouts|RetransSegs|TCPAbortOnTimeout/ { printf "%s %s ", $1, $2 }')"
		log "b: TCP $(nsx "$nsB" nstat -a | awk '/InCsumErrors|InErrs|TCPOFOQueue|TCPOFODrop|TCPRcvQDrop|InSegs/ { printf "%s %s ", $1, $2 }')"
		log "b: $(nsx "$nsB" ss -tni src 198.18.0.2 | tr -s ' \t' ' ')"
		log "a: $(st_all a)"
		log "b: $(st_all b)"
		log "ping through the same loss: $(nsx "$nsA" ping -q -n -c 20 -i 0.1 -W 1 198.18.0.2 | grep transmitted)"
		fail "transfer under $loss loss did not finish in ${PER_TRANSFER}s"
	fi
	local secs
	secs=$(elapsed_since "$t0")
	wait_for "$T/$sender.log" "^sender done" 10 ||
		fail "$sender did not finish: $(tail -n 3 "$T/$sender.log" | tr '\n' ' ')"
	bg_stop "$sender"
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
