#!/bin/bash
# Self-test of the fault-injection relay (tests/tools/relay), in three
# network namespaces:
#
#   ns A (client)                ns R (relay)                       ns B (server)
#   192.0.2.1/24 --veth-- 192.0.2.2/24   198.51.100.2/24 --veth-- 198.51.100.1/24
#   relay --send-udp/-tcp       relay --udp/--tcp :5555           relay --echo-udp/-tcp :7777
#   -> 192.0.2.2:5555           --to 198.51.100.1:7777
#
# The endpoints are the relay binary's own helper modes, so nothing beyond
# iproute2 and coreutils is needed.  Exit 77 when not root or without netns.
# Every process started is recorded and killed by its PID in the EXIT trap;
# every client runs under `timeout`, and a watchdog bounds the whole run.

set -u

RELAY=${RELAY:-${top_builddir:-.}/tests/tools/relay}
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (network namespaces)"
	exit 77
fi
if [ ! -x "$RELAY" ]; then
	echo "FAIL: relay binary not found at $RELAY (make check builds it)"
	exit 1
fi

NS_A=rlyA$$ NS_R=rlyR$$ NS_B=rlyB$$
TMP=$(mktemp -d /tmp/test_relay.XXXXXX)
PIDS=()
FAILS=0
CHECKS=0

teardown() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	ip netns del "$NS_A" 2>/dev/null
	ip netns del "$NS_R" 2>/dev/null
	ip netns del "$NS_B" 2>/dev/null
	rm -rf "$TMP"
}
trap teardown EXIT
trap 'exit 1' INT TERM

# The whole test must finish: a stuck step ends in the trap, not in CI's
# global timeout.
main_pid=$$
(
	trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
	sleep 180 &
	sleeper=$!
	wait "$sleeper" || exit 0
	echo "FAIL: watchdog: test took over 180 s" >&2
	kill -TERM "$main_pid"
) &
PIDS+=($!)

in_a() { ip netns exec "$NS_A" "$@"; }
in_r() { ip netns exec "$NS_R" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

check() { # check NAME CONDITION-COMMAND...
	local name=$1
	shift
	CHECKS=$((CHECKS + 1))
	if "$@"; then
		echo "ok   $name"
	else
		echo "FAIL $name"
		FAILS=$((FAILS + 1))
	fi
}

eq() { [ "$1" = "$2" ] || { echo "     expected '$2', got '$1'"; return 1; }; }
ne() { [ "$1" != "$2" ] || { echo "     expected something other than '$1'"; return 1; }; }
between() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] || { echo "     $1 not in $2..$3"; return 1; }; }

# field KEY LINE: the value of KEY=value in a line of space-separated pairs.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
# kv KEY FILE: the value of KEY=value in a key=value file.
kv() { sed -n "s/^$1=//p" "$2"; }

wait_file() { # wait_file PATH: up to 5 s
	local i
	for i in $(seq 50); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	echo "     $1 did not appear"
	return 1
}

# start NAME COMMAND...: background process, PID recorded; it writes
# $TMP/NAME.ready when its sockets are bound.  COMMAND must be a program, not
# a shell function: `&` then execs it, and $! is the program itself.
start() {
	local name=$1
	shift
	rm -f "$TMP/$name.ready"
	"$@" --ready-file "$TMP/$name.ready" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	PIDS+=($!)
	eval "PID_$name=$!"
	wait_file "$TMP/$name.ready" || { cat "$TMP/$name.err"; exit 1; }
}

forget_pid() { # the PID is gone: never signal it again, it may be reused
	local i
	for i in "${!PIDS[@]}"; do
		[ "${PIDS[$i]}" = "$1" ] && unset "PIDS[$i]"
	done
}

# stop NAME: SIGTERM, and the exit status must be 0 (counters written).
stop() {
	local pid_var="PID_$1" rc
	kill -TERM "${!pid_var}"
	wait "${!pid_var}"
	rc=$?
	forget_pid "${!pid_var}"
	[ "$rc" = 0 ] || { echo "     $1 exited with $rc"; cat "$TMP/$1.err"; }
	return "$rc"
}

ctl() { timeout 10 "$RELAY" --ctl "$TMP/relay.sock" "$@"; }

start_relay() { # start_relay ARGS...: UDP and TCP relay in ns R
	start relay ip netns exec "$NS_R" "$RELAY" --udp 192.0.2.2:5555 --to 198.51.100.1:7777 \
		--tcp 192.0.2.2:5555 --tcp-to 198.51.100.1:7777 \
		--control "$TMP/relay.sock" --stats-file "$TMP/relay.stats" "$@"
}

send_udp() { timeout 30 ip netns exec "$NS_A" "$RELAY" --send-udp 192.0.2.2:5555 "$@"; }
send_tcp() { timeout 30 ip netns exec "$NS_A" "$RELAY" --send-tcp 192.0.2.2:5555 "$@"; }

# ------------------------------------------------------------- topology
ip netns add "$NS_A" && ip netns add "$NS_R" && ip netns add "$NS_B" || {
	echo "SKIP: cannot create network namespaces"
	exit 77
}
ip link add va$$ netns "$NS_A" type veth peer name ra$$ netns "$NS_R" &&
ip link add vb$$ netns "$NS_B" type veth peer name rb$$ netns "$NS_R" || {
	echo "SKIP: cannot create veth pairs"
	exit 77
}
set -e
in_a ip addr add 192.0.2.1/24 dev va$$
in_r ip addr add 192.0.2.2/24 dev ra$$
in_r ip addr add 198.51.100.2/24 dev rb$$
in_b ip addr add 198.51.100.1/24 dev vb$$
for ns in "$NS_A" "$NS_R" "$NS_B"; do
	ip -n "$ns" link set lo up
done
in_a ip link set va$$ up
in_r ip link set ra$$ up
in_r ip link set rb$$ up
in_b ip link set vb$$ up
set +e

# ---------------------------------------------------------- the CLI
help=$("$RELAY" --help)
readme=$(cat "${top_srcdir:-$(dirname "$0")/../..}/tests/tools/README.md")
options="udp to tcp tcp-to from seed a2b b2a control stats-file ready-file ctl echo-udp
	echo-tcp send-udp send-tcp count size interval wait bytes chunk hold list"
keys="record drop flip trunc holdone hold_match dup delay jitter queue seg seg_pause coalesce
	coalesce_wait"
commands="set replay clear release rebind inject stats help"
missing= undocumented=
for opt in $options; do
	grep -q -- "--$opt\b" <<<"$help" || missing="$missing --$opt"
	grep -q -- "--$opt\b" <<<"$readme" || undocumented="$undocumented --$opt"
done
for key in $keys; do
	grep -q "^  $key" <<<"$help" || missing="$missing $key"
	grep -q "^| \`$key" <<<"$readme" || undocumented="$undocumented $key"
done
for cmd in $commands; do
	grep -q "^  $cmd" <<<"$help" || missing="$missing $cmd"
	grep -q "^| \`$cmd" <<<"$readme" || undocumented="$undocumented $cmd"
done
check "--help documents every option, pipeline key and command" eq "$missing" ""
check "README.md documents every option, pipeline key and command" eq "$undocumented" ""
"$RELAY" --udp 192.0.2.2:5555 --to 198.51.100.1:7777 --a2b "drop=2" 2>"$TMP/err"
check "a bad pipeline spec exits 2" eq "$?" 2
check "... and names the key" grep -q "bad value for drop" "$TMP/err"
"$RELAY" --udp 192.0.2.2:5555 2>/dev/null
check "--udp without --to exits 2" eq "$?" 2

# ------------------------------------------------- UDP: seeded drop
start echo ip netns exec "$NS_B" "$RELAY" --echo-udp 198.51.100.1:7777 --stats-file "$TMP/echo.stats"
run=()           # sender's summary line, per run
to_echo=0       # datagrams the relay delivered to the echo, over every run
seeds=(42 42 43)
for i in 0 1 2; do
	seed=${seeds[$i]}
	start_relay --seed "$seed" --a2b drop=0.5
	run[$i]=$(send_udp --count 400 --interval 200us --wait 300ms)
	stop relay
	to_echo=$((to_echo + $(kv a2b.forwarded "$TMP/relay.stats")))
	echo "     seed $seed: ${run[$i]}"
	check "drop=0.5 seed $seed: relay received all 400" eq "$(kv a2b.received "$TMP/relay.stats")" 400
	check "drop=0.5 seed $seed: forwarded + dropped = received" \
		eq "$(($(kv a2b.forwarded "$TMP/relay.stats") + $(kv a2b.dropped "$TMP/relay.stats")))" 400
	check "drop=0.5 seed $seed: sender got what the relay forwarded" \
		eq "$(field received "${run[$i]}")" "$(kv a2b.forwarded "$TMP/relay.stats")"
	check "drop=0.5 seed $seed: about half dropped" between "$(kv a2b.dropped "$TMP/relay.stats")" 150 250
done
check "same seed, same packets dropped" eq "$(field digest "${run[0]}")" "$(field digest "${run[1]}")"
check "same seed, same count" eq "$(field received "${run[0]}")" "$(field received "${run[1]}")"
check "another seed, another pattern" ne "$(field digest "${run[1]}")" "$(field digest "${run[2]}")"

# --------------------------------------- UDP: run-time control, dup
start_relay --seed 1
out=$(send_udp --count 50 --wait 300ms)
check "clean pipeline: all 50 echoed" eq "$(field received "$out")/$(field unique "$out")" 50/50
ctl set a2b dup=1.0 >/dev/null
check "set a2b dup=1.0 is acknowledged" eq "$?" 0
out=$(send_udp --count 100 --interval 100us --wait 300ms)
check "dup=1.0 doubles: 200 echoes of 100" eq "$(field received "$out")" 200
check "dup=1.0: each sequence number twice" eq "$(field unique "$out")/$(field duplicates "$out")" 100/100
check "dup=1.0: stats duplicated=100" eq "$(ctl stats a2b.duplicated)" "a2b.duplicated=100"
check "dup=1.0: stats forwarded=250" eq "$(ctl stats a2b.forwarded)" "a2b.forwarded=250"

# ------------------------------------------------ UDP: NAT rebinding
port1=$(ctl stats udp.source_port | sed 's/.*=//')
check "the echo saw the relay's first source port" \
	eq "$(tail -n 1 "$TMP/echo.out")" "source 198.51.100.2:$port1"
ctl set a2b none >/dev/null
port2=$(ctl rebind | sed -n 's/^udp.source_port=//p')
check "rebind reports a new source port" ne "$port2" "$port1"
out=$(send_udp --count 20 --wait 300ms)
check "after rebind: all 20 echoed through the new port" eq "$(field received "$out")" 20
check "after rebind: the echo sees the new source port" \
	eq "$(tail -n 1 "$TMP/echo.out")" "source 198.51.100.2:$port2"
check "stats count the rebind" eq "$(ctl stats udp.rebinds)" "udp.rebinds=1"

# ------------------------------------------------- UDP: blackout
ctl set a2b drop=1 >/dev/null
out=$(send_udp --count 30 --wait 200ms)
check "drop=1: nothing gets through" eq "$(field received "$out")" 0
ctl set a2b "" >/dev/null
out=$(send_udp --count 30 --wait 300ms)
check "after the blackout: all 30 again" eq "$(field received "$out")" 30

# ------------------------------------------ UDP: holdone, delay/jitter
ctl set a2b holdone=10 >/dev/null
out=$(send_udp --count 20 --interval 1ms --wait 300ms --list)
order=$(grep '^recv' <<<"$out" | head -n 12 | cut -d' ' -f2 | tr '\n' ' ')
check "holdone=10: packet 0 arrives right after 10 others" eq "$order" "1 2 3 4 5 6 7 8 9 10 0 11 "
check "holdone=10: stats held=1" eq "$(ctl stats a2b.held)" "a2b.held=1"
ctl set a2b holdone=3,hold_match=0000000000000005 >/dev/null
out=$(send_udp --count 10 --interval 1ms --wait 300ms --list)
order=$(grep '^recv' <<<"$out" | cut -d' ' -f2 | tr '\n' ' ')
check "hold_match: holdone picks the datagram that matches" eq "$order" "0 1 2 3 4 6 7 8 5 9 "
ctl set a2b delay=20ms,jitter=15ms >/dev/null
out=$(send_udp --count 200 --interval 200us --wait 500ms)
check "delay+jitter: every packet arrives" eq "$(field unique "$out")" 200
check "delay+jitter: and some reordered" ne "$(field reordered "$out")" 0
check "delay+jitter: stats delayed=200" eq "$(ctl stats a2b.delayed)" "a2b.delayed=200"
ctl set a2b delay=200ms,queue=10 >/dev/null
out=$(send_udp --count 50 --wait 500ms)
check "queue=10: ten delayed, the rest overflow" eq "$(field received "$out")" 10
check "queue=10: stats overflow=40" eq "$(ctl stats a2b.overflow)" "a2b.overflow=40"

# ---------------------------------------- UDP: record/replay, inject
before=$(ctl stats a2b.forwarded | sed 's/.*=//')
ctl set a2b record >/dev/null
out=$(send_udp --count 5 --wait 300ms)
ctl set a2b none >/dev/null
check "record: 5 recorded" eq "$(ctl stats a2b.recorded)" "a2b.recorded=5"
check "replay re-sends 5" eq "$(ctl replay a2b)" "a2b.replayed_now=5"
check "inject b sends bytes to B" eq "$(ctl inject b 0000000000000001ff)" "injected=9"
ctl inject c 00 2>/dev/null
check "inject to an unknown side is an error" eq "$?" 1
ctl frobnicate 2>"$TMP/err"
check "an unknown command is an error" eq "$?:$(cat "$TMP/err")" \
	"1:relay: error: unknown command 'frobnicate' (try help)"
ctl "set a2b drop=0.5 bogus=1" 2>"$TMP/err"
check "a bad set keeps the old pipeline" eq "$(ctl stats a2b.pipeline)" "a2b.pipeline=none"
for key in forwarded replayed injected; do
	to_echo=$((to_echo + $(ctl stats a2b.$key | sed 's/.*=//')))
done
stop echo
check "the echo received exactly what the relays sent it" eq "$(kv received "$TMP/echo.stats")" "$to_echo"
start echo ip netns exec "$NS_B" "$RELAY" --echo-udp 198.51.100.1:7777

# robustness: faults on odd sizes, both ways
ctl set both flip=0.5,trunc=0.5,dup=0.5,delay=1ms,jitter=1ms >/dev/null
send_udp --count 200 --size 8 --wait 300ms >/dev/null
send_udp --count 20 --size 65507 --wait 300ms >/dev/null
send_udp --count 200 --size 1400 --wait 300ms >/dev/null
ctl inject b "$(head -c 4096 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >/dev/null
check "inject of 4096 random bytes" eq "$?" 0
check "faults on odd sizes: relay still answers" eq "$(ctl stats udp.rebinds)" "udp.rebinds=1"
stop relay
check "relay exits 0 on SIGTERM" eq "$?" 0
check "counters in --stats-file" eq "$(kv a2b.replayed "$TMP/relay.stats")" 5
check "stats file counts the injected datagrams" eq "$(kv a2b.injected "$TMP/relay.stats")" 2
stop echo

# ------------------------------------------------------------- TCP
start echo ip netns exec "$NS_B" "$RELAY" --echo-tcp 198.51.100.1:7777 --stats-file "$TMP/echo.stats"
start_relay --seed 5 --a2b seg=1,seg_pause=1ms
out=$(send_tcp --bytes 1000)
check "seg=1: the same 1000 bytes come back" eq "$?:$out" "0:sent=1000 received=1000 match=1 eof=1"
# One read per segment on an idle machine; a busy one may merge a few.
reads=$(sed -n 's/^closed bytes=1000 reads=//p' "$TMP/echo.out" | tail -n 1)
check "seg=1: the echo read the stream in many pieces" between "${reads:-0}" 250 1000
check "seg=1: one write per byte" eq "$(ctl stats tcp.a2b.writes)" "tcp.a2b.writes=1000"

ctl set a2b coalesce=4000,coalesce_wait=50ms >/dev/null
out=$(send_tcp --bytes 4000 --chunk 10 --interval 100us)
check "coalesce: the same bytes come back" eq "$?:$out" "0:sent=4000 received=4000 match=1 eof=1"
reads=$(sed -n 's/^closed bytes=4000 reads=//p' "$TMP/echo.out" | tail -n 1)
check "coalesce: far fewer reads than the 400 writes" between "${reads:-0}" 1 100

ctl set a2b delay=10ms,jitter=5ms >/dev/null
out=$(send_tcp --bytes 1000000 --chunk 1000)
check "delay+jitter on TCP: a megabyte, in order" eq "$?:$out" "0:sent=1000000 received=1000000 match=1 eof=1"

ctl set a2b none >/dev/null
timeout 30 ip netns exec "$NS_A" "$RELAY" --send-tcp 192.0.2.2:5555 --bytes 100 --hold 20s \
	>"$TMP/hold.out" &
hold_pid=$!
PIDS+=($hold_pid)
sleep 0.5
out=$(send_tcp --bytes 100)
check "a second connection works" eq "$?:$out" "0:sent=100 received=100 match=1 eof=1"
wait "$hold_pid"
forget_pid "$hold_pid"
check "the first connection was closed by the relay" eq "$(cat "$TMP/hold.out")" "sent=100 received=100 match=1 eof=1"
check "stats: one connection replaced" eq "$(ctl stats tcp.replaced)" "tcp.replaced=1"

ctl set a2b drop=1 >/dev/null
out=$(send_tcp --bytes 100 --wait 1s)
check "drop=1 stalls the TCP stream" eq "$?:$(field received "$out")" "1:0"
stop relay
check "TCP counters in the stats file" eq "$(kv tcp.accepted "$TMP/relay.stats")" 6
stop echo

echo "$((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" = 0 ]
