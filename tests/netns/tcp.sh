#!/bin/bash
#
# The TCP transport: a tun and a tap session over TCP (ping both ways, 10 s
# of iperf3 each way, figures printed), the dialer reconnecting by itself
# after its connection is reset (nftables `reject with tcp reset`) or
# destroyed (`ss -K`), and hostile input on the listen port from a third
# namespace (200 idle connections, frames of length 0, 1 and 65535,
# garbage, a slow drip) while a ping through the live session keeps
# answering.  b's tap session keeps the default transport = udp: a listening
# session accepts its peer over either; its tun session is transport = tcp
# and refuses a handshake over UDP.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tun0 198.18.0.1/24  saltun  │            │  tun0 198.18.0.2/24          │
#   │   "a1" [server] tcp ─────────┼─ dials ──> │    saltun "b" [peer-tun] tcp │
#   │  tap0 198.18.1.1/24  saltun  │            │  tap0 198.18.1.2/24          │
#   │   "a2" [server] tcp ─────────┼─ dials ──> │             [peer-tap] udp   │
#   │  u1 192.0.2.1/24 ────────────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            │  u3 198.51.100.2/24 :5555    │
#                                               └──────────────┬───────────────┘
#   ┌──────────────────────────────┐                           │
#   │ $ns3 (hostile)               │                           │
#   │  h3 198.51.100.1/24 ─────────┼────────── veth ───────────┘
#   │     198.51.100.10-29 (more sources, for the global cap)
#   └──────────────────────────────┘

. "$(dirname "$0")/lib.sh"
need_root
need_cmd iperf3 nft ss
test_start 240

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns3=$(ns_name 3)
ns_add "$ns1"
ns_add "$ns2"
ns_add "$ns3"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24
veth_link "$ns3" h3 198.51.100.1/24 "$ns2" u3 198.51.100.2/24

key_gen a1
key_gen a2
key_gen b
{
	conf_global b 0.0.0.0:5555
	cat <<EOF
[peer-tun]
public_key = $(key_pub a1)
transport = tcp
type = tun
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip link set %d up

[peer-tap]
public_key = $(key_pub a2)
type = tap
device = tap0
up = ip addr add 198.18.1.2/24 dev %d && ip link set %d up
EOF
} >"$T/b.conf"
# Two dial-only daemons in ns1 (one identity each: a session is keyed by
# its peer's public key).
for x in 1 2; do
	if [ "$x" = 1 ]; then type=tun; else type=tap; fi
	{
		conf_global "a$x"
		cat <<EOF
[server]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
transport = tcp
type = $type
device = ${type}0
up = ip addr add 198.18.$((x - 1)).1/24 dev %d && ip link set %d up
EOF
	} >"$T/a$x.conf"
done

saltun_start "$ns2" b "$T/b.conf"
wait_for "$T/b.log" "listening on 0\.0\.0\.0:5555 \(tcp\)" 5 || fail "b: no TCP listener"
saltun_start "$ns1" a1 "$T/a1.conf"
saltun_start "$ns1" a2 "$T/a2.conf"

# Authenticated TCP connections of b (from a1 and a2, not the hostile ns3).
b_conns()
{
	nsx "$ns2" ss -Htn state established '( sport = :5555 )' dst 192.0.2.1 | wc -l
}
# Established connections to b's port from ns3 (unauthenticated, by
# construction), as b sees them.
hostile_conns()
{
	nsx "$ns2" ss -Htn state established '( sport = :5555 )' dst 198.51.100.0/24 | wc -l
}

# ------------------------------------------------------------ tun and tap
for x in 1 2; do
	if [ "$x" = 1 ]; then type=tun; else type=tap; fi
	peer=198.18.$((x - 1)).2 me=198.18.$((x - 1)).1
	ping_wait "$ns1" "$peer" 20 || fail "$type: no ping through the TCP tunnel"
	wait_for "$T/a$x.log" "server: tcp connection to 192\.0\.2\.2:5555 authenticated" 2 ||
		fail "a$x: no authenticated TCP connection line"
	wait_for "$T/a$x.log" "server: handshake complete .*192\.0\.2\.2:5555" 2 ||
		fail "a$x: no handshake line"
	ping_ok "$ns1" "$peer" 5 || fail "$type: a -> b"
	ping_ok "$ns2" "$me" 5 || fail "$type: b -> a"
	log "$type over TCP: RTT $(ping_rtt "$ns1" "$peer" 10) ms; bare veth: $(ping_rtt "$ns1" 192.0.2.2 10) ms"
done
wait_for "$T/b.log" "peer-tun: handshake complete \(peer initiated\)" 2 || fail "b: no tun handshake"
wait_for "$T/b.log" "peer-tap: handshake complete \(peer initiated\)" 2 || fail "b: no tap handshake"
[ "$(b_conns)" -eq 2 ] || fail "b holds $(b_conns) connections from ns1, want 2"

for x in 1 2; do
	if [ "$x" = 1 ]; then type=tun; else type=tap; fi
	peer=198.18.$((x - 1)).2
	iperf_server "$ns2" "iperf-$type" "$peer"
	up=$(iperf_client "$ns1" "$peer" 10 "iperf-$type-a-to-b")
	down=$(iperf_client "$ns1" "$peer" 10 "iperf-$type-b-to-a" -R)
	log "iperf3 through the $type TCP tunnel: a -> b $up Mbit/s, b -> a $down Mbit/s"
	awk -v u="$up" -v d="$down" 'BEGIN { exit !(u > 0 && d > 0) }' || fail "$type: iperf3 moved nothing"
	bg_stop "iperf-$type"
done
{ bg_alive a1 && bg_alive a2 && bg_alive b; } || fail "a daemon died under load"
ping_ok "$ns2" 198.18.0.1 3 || fail "tun: b -> a after iperf3"
ping_ok "$ns2" 198.18.1.1 3 || fail "tap: b -> a after iperf3"

# ------------------------------------------------------------ reconnect
# tun: b answers a1's packets with TCP resets for a moment.  The dialer's
# next write meets the reset; its redials meet resets too (backoff grows)
# until the rule goes.
log "---- reset a1's connection with nftables"
nsx "$ns2" nft -f - <<'EOF'
table inet saltun_test {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr 192.0.2.1 tcp dport 5555 reject with tcp reset
	}
}
EOF
closed_before=$(count_lines "$T/a1.log" "server: tcp connection to .* closed")
ping_none "$ns1" 198.18.0.2 3 || true
wait_count "$T/a1.log" "server: tcp connection to .* closed" $((closed_before + 1)) 10 ||
	fail "a1: connection not closed by the reset"
sleep 1.5
nsx "$ns2" nft delete table inet saltun_test
t0=$(date +%s.%N)
auth_before=$(count_lines "$T/a1.log" "server: tcp connection to .* authenticated")
ping_wait "$ns1" 198.18.0.2 30 || fail "tun: no ping after the reset"
log "tun: ping answers again $(elapsed_since "$t0")s after the reset rule went"
[ "$(count_lines "$T/a1.log" "server: tcp connection to .* authenticated")" -gt "$auth_before" ] ||
	fail "a1: no new authenticated connection after the reset"
ping_ok "$ns2" 198.18.0.1 3 || fail "tun: b -> a after the reset"

# tap: destroy a2's socket in the kernel (ss -K; needs CONFIG_INET_DIAG_DESTROY).
log "---- destroy a2's connection with ss -K"
# Its network process owns the socket (privilege separation).
a2_net=$(saltun_net_pid a2) || fail "a2: no network process"
a2_port=
for _ in $(seq 30); do
	a2_port=$(nsx "$ns1" ss -Htnp state established '( dport = :5555 )' |
		awk -v p="pid=$a2_net," 'index($0, p) { n = split($3, a, ":"); print a[n]; exit }')
	[ -z "$a2_port" ] || break
	sleep 0.1
done
[ -n "$a2_port" ] ||
	fail "a2: cannot find the TCP connection of pid $a2_net in: $(nsx "$ns1" ss -Htnp state established)"
closed_before=$(count_lines "$T/a2.log" "server: tcp connection to .* closed")
t0=$(date +%s.%N)
nsx "$ns1" ss -K -tn state established "( dport = :5555 and sport = :$a2_port )" >/dev/null 2>&1 || true
if wait_count "$T/a2.log" "server: tcp connection to .* closed" $((closed_before + 1)) 3; then
	ping_wait "$ns1" 198.18.1.2 30 || fail "tap: no ping after ss -K"
	log "tap: ping answers again $(elapsed_since "$t0")s after ss -K"
	ping_ok "$ns2" 198.18.1.1 3 || fail "tap: b -> a after ss -K"
else
	log "ss -K destroyed nothing (kernel without CONFIG_INET_DIAG_DESTROY?): skipped that part"
fi

# ------------------------------------------------------------ hostile input
# A ping through the live tun session runs the whole time.
bg_start ping-live ip netns exec "$ns1" ping -n -i 0.2 -W 1 198.18.0.2

# Send BYTES (printf escapes) on a new connection from ns3 and report how
# it ended: "closed" (EOF or reset) or "open" after WAIT s, with the time.
probe()
{
	local bytes=$1 wait=$2
	nsx "$ns3" timeout $((wait + 5)) bash -c '
		trap "" PIPE
		exec {fd}<>/dev/tcp/198.51.100.2/5555 || { echo "noconnect 0"; exit; }
		t0=$(date +%s%N)
		printf "$1" >&$fd 2>/dev/null
		if read -r -t "$2" -u $fd _; then st=data; else rc=$?; [ $rc -gt 128 ] && st=open || st=closed; fi
		echo "$st $(( ($(date +%s%N) - t0) / 1000000 ))"' _ "$bytes" "$wait"
}

log "---- frames and garbage from ns3"
body152=$(printf '\\x01\\x00\\x00\\x00%.0s' 1)$(printf '\\x00%.0s' $(seq 148))
for c in "length-0|\\x00\\x00" \
	"length-1|\\x00\\x01\\x04" \
	"length-65535|\\xff\\xff\\x04\\x00\\x00\\x00" \
	"http-garbage|GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" \
	"forged-initiation|\\x00\\x98$body152" \
	"data-before-handshake|\\x00\\x20\\x04\\x00\\x00\\x00$(printf '\\x00%.0s' $(seq 28))"; do
	name=${c%%|*} bytes=${c#*|}
	read -r st ms < <(probe "$bytes" 3)
	log "$name: $st after ${ms} ms"
	[ "$st" = closed ] || fail "$name: connection $st, want closed at once"
	[ "$ms" -lt 1000 ] || fail "$name: closed only after ${ms} ms"
done
ping_ok "$ns1" 198.18.0.2 3 || fail "tun: ping after the frames"

log "---- slow drip: an initiation-sized frame, one byte every 0.4 s"
read -r st ms < <(nsx "$ns3" timeout 20 bash -c '
	trap "" PIPE
	exec {fd}<>/dev/tcp/198.51.100.2/5555 || { echo "noconnect 0"; exit; }
	t0=$(date +%s%N)
	drip=("\x00" "\x98" "\x01")
	for i in $(seq 40); do
		printf "${drip[i - 1]:-\x00}" >&$fd 2>/dev/null || break
		read -r -t 0.4 -u $fd _; rc=$?
		[ $rc -gt 128 ] || break
	done
	[ $rc -gt 128 ] && st=open || st=closed
	echo "$st $(( ($(date +%s%N) - t0) / 1000000 ))"')
log "slow drip: $st after ${ms} ms"
[ "$st" = closed ] || fail "slow drip: still open"
[ "$ms" -ge 4000 ] && [ "$ms" -lt 8000 ] || fail "slow drip: closed after ${ms} ms, want the 5 s deadline"

log "---- 200 idle connections from one address"
bg_start idle-one ip netns exec "$ns3" bash -c '
	trap "" PIPE
	fds=()
	for i in $(seq 200); do exec {fd}<>/dev/tcp/198.51.100.2/5555 && fds+=($fd); done
	echo "opened ${#fds[@]}"
	sleep 30'
wait_for "$T/idle-one.log" "opened" 10 || fail "ns3 could not open 200 connections"
sleep 0.5
n=$(hostile_conns)
log "200 connections from one address: b holds $n"
[ "$n" -le 8 ] || fail "b holds $n unauthenticated connections from one address, cap 8"
[ "$n" -ge 1 ] || fail "b holds none: the cap should keep 8"
wait_for "$T/b.log" "refused: too many unauthenticated connections from this address" 2 ||
	fail "b: no log line for the per-source cap"
ping_ok "$ns1" 198.18.0.2 3 || fail "tun: ping with 200 idle connections"
wait_until_none()
{
	local i
	for ((i = 0; i < 80; i++)); do
		[ "$(hostile_conns)" -eq 0 ] && return 0
		sleep 0.1
	done
	return 1
}
wait_until_none || fail "b still holds $(hostile_conns) idle connections after the deadline"
log "idle connections closed by the handshake deadline"
bg_stop idle-one

log "---- 200 idle connections from 20 addresses (global cap 128)"
for i in $(seq 10 29); do
	ip -n "$ns3" addr add "198.51.100.$i/32" dev h3
	ip -n "$ns2" addr add "198.51.100.$((i + 100))/32" dev u3
	# Connections to .1xx leave from .i: a source address per destination.
	ip -n "$ns3" route add "198.51.100.$((i + 100))/32" dev h3 src "198.51.100.$i"
done
bg_start idle-many ip netns exec "$ns3" bash -c '
	trap "" PIPE
	fds=()
	for i in $(seq 110 129); do
		for j in $(seq 10); do exec {fd}<>/dev/tcp/198.51.100.$i/5555 && fds+=($fd); done
	done
	echo "opened ${#fds[@]}"
	sleep 30'
wait_for "$T/idle-many.log" "opened" 10 || fail "ns3 could not open 200 connections"
sleep 0.5
n=$(hostile_conns)
log "200 connections from 20 addresses: b holds $n"
# 8 per address would be 160: the global cap stops it at 128.
[ "$n" -eq 128 ] || fail "b holds $n unauthenticated connections, want the global cap 128"
wait_for "$T/b.log" "refused: too many unauthenticated connections( \(more suppressed\))?$" 2 ||
	fail "b: no log line for the global cap"
ping_ok "$ns1" 198.18.0.2 3 || fail "tun: ping with 128 idle connections"
ping_ok "$ns1" 198.18.1.2 3 || fail "tap: ping with 128 idle connections"
[ "$(b_conns)" -eq 2 ] || fail "b lost a live connection to the flood ($(b_conns) left)"
wait_until_none || fail "b still holds $(hostile_conns) idle connections after the deadline"
bg_stop idle-many

# The live ping never stopped answering (SIGINT: it prints its summary).
kill -INT "${PIDS[ping-live]}"
sleep 0.3
bg_stop ping-live
sent=$(awk '/packets transmitted/ { print $1 }' "$T/ping-live.log")
got=$(awk '/packets transmitted/ { print $4 }' "$T/ping-live.log")
log "live ping during the hostile phase: $got of $sent answered"
[ -n "$sent" ] && [ "$sent" -ge 20 ] || fail "live ping: no summary"
[ "$got" -ge $((sent - 1)) ] || fail "live ping lost $((sent - got)) of $sent"
{ bg_alive a1 && bg_alive a2 && bg_alive b; } || fail "a daemon died"

# ------------------------------------------------------------ wrong transport
# a1's identity dialing over UDP: b's [peer-tun] is transport = tcp and
# refuses it; the TCP session carries on.
log "---- a handshake over UDP for a transport = tcp session"
cp "$T/a1.key" "$T/a1u.key"
{
	conf_global a1u
	cat <<EOF
[server]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
type = tun
device = tun9
EOF
} >"$T/a1u.conf"
saltun_start "$ns1" a1u "$T/a1u.conf"
wait_for "$T/b.log" "initiation over UDP for a transport = tcp session" 5 ||
	fail "b: no line refusing the UDP handshake"
saltun_stop a1u
ping_ok "$ns1" 198.18.0.2 3 || fail "tun: ping after the UDP handshake attempt"

# ------------------------------------------------------------ clean stop
for n in a1 a2 b; do
	saltun_stop "$n"
	[ "$STOP_STATUS" -eq 0 ] || fail "$n: exit status $STOP_STATUS after SIGTERM"
done
! dev_exists "$ns2" tun0 || fail "b: tun0 still there after stop"
! dev_exists "$ns1" tap0 || fail "a2: tap0 still there after stop"
