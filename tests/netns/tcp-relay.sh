#!/bin/bash
#
# TCP transport through a hostile stream (issue tests 10 and 11): the relay
# re-segments the TCP stream between the two daemons into 1-byte pieces,
# then coalesces it into 64 KiB bursts; then the TCP connection is reset
# mid-transfer (ss -K on A's side).  The tunnel must carry ping and a
# random file whose SHA-256 must arrive intact, the dialer reconnecting by
# itself after the reset (the inner TCP retransmits what was lost).
#
#   A (198.18.0.1, transport = tcp, dials 192.0.2.2:5555)
#     -- relay --tcp 192.0.2.2:5555 --tcp-to 198.51.100.1:5555 (seg=1 | coalesce=65536) --
#   B (198.18.0.2, transport = tcp, listens)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd python3 sha256sum ss
test_start 150

relay_setup
sed -i 's/^type = tun$/type = tun\ntransport = tcp/' "$T/a.conf" "$T/b.conf"
relay_start --tcp 192.0.2.2:5555 --tcp-to 198.51.100.1:5555 --a2b seg=1 --b2a seg=1
tunnel_start

# 1-byte segments: every frame of every message crosses in pieces.
got=$(nsx "$nsA" ping -q -n -c 20 -i 0.2 -W 5 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
log "ping through 1-byte TCP segments: $got of 20"
[ "$got" -ge 19 ] || fail "ping through 1-byte segments: $got of 20 (a: $(st_all a))"
[ "$(st a .transport)" = tcp ] || fail "session a is not on tcp: $(st a .transport)"

# SECS-bounded transfer of MIB MiB A -> B; NAME for the logs; extra action
# (a function name) runs once the transfer is under way.
transfer() # name mib action
{
	local name=$1 mib=$2 action=$3 want got t0
	head -c $((mib << 20)) /dev/urandom >"$T/$name.send"
	want=$(sha256sum <"$T/$name.send" | cut -d' ' -f1)
	bg_start "sink-$name" ip netns exec "$nsB" python3 -c '
import socket, sys
srv = socket.create_server(("198.18.0.2", int(sys.argv[2])))
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
' "$T/$name.recv" "$4"
	wait_for "$T/sink-$name.log" "^sink ready" 5 || fail "sink $name did not start"
	t0=$(date +%s.%N)
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
	bg_start "send-$name" timeout 90 ip netns exec "$nsA" bash -c \
		'exec 3>/dev/tcp/198.18.0.2/$2 && cat "$1" >&3' _ "$T/$name.send" "$4"
	[ -z "$action" ] || "$action"
	wait_for "$T/sink-$name.log" "^sink received" 90 || fail "$name: the file did not arrive"
	got=$(sha256sum <"$T/$name.recv" | cut -d' ' -f1)
	log "$name: $mib MiB in $(elapsed_since "$t0")s, SHA-256 $([ "$got" = "$want" ] && echo intact || echo DIFFERENT)"
	expect_eq "$name SHA-256" "$got" "$want"
}

relay_ctl set both coalesce=65536 >/dev/null
transfer coalesced 16 "" 7001

reset_mid_transfer()
{
	sleep 0.5
	local before t0
	before=$(count_lines "$T/a.log" "handshake complete")
	t0=$(date +%s.%N)
	# Kill A's TCP connection to the relay: the dialer must notice and redial.
	nsx "$nsA" ss -K dst 192.0.2.2 dport = 5555 >/dev/null
	log "reset A's TCP connection mid-transfer"
	wait_count "$T/a.log" "handshake complete" $((before + 1)) 20 ||
		fail "no new handshake after the reset"
	log "reconnected and handshaken $(elapsed_since "$t0")s after the reset"
}
relay_ctl set both none >/dev/null
transfer reset 32 reset_mid_transfer 7002
test_finish
