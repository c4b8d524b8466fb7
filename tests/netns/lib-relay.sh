# shellcheck shell=bash
#
# Helpers for the net-*.sh tests: saltun over UDP through the
# fault-injection relay (tests/tools/relay, README.md there), which plays a
# hostile, lossy network between two namespaces.  Sources lib.sh, so a test
# needs only this file.
#
#   ┌───────────────────────────┐    ┌──────────────────────────────────┐    ┌───────────────────────────┐
#   │ $nsA                      │    │ $nsR                             │    │ $nsB                      │
#   │  tun0 198.18.0.1/24       │    │  relay --udp 192.0.2.2:5555      │    │  tun0 198.18.0.2/24       │
#   │                           │    │        --to 198.51.100.1:5555    │    │                           │
#   │  saltun "a" [b]           │    │  (a2b: A -> B, b2a: B -> A)      │    │  saltun "b" [a]           │
#   │  endpoint 192.0.2.2:5555  │    │                                  │    │  no endpoint: waits for A │
#   │  ua 192.0.2.1/24 :5555 ───┼veth┼─ ra 192.0.2.2/24                 │    │                           │
#   │                           │    │  rb 198.51.100.2/24 (own port) ──┼veth┼─ ub 198.51.100.1/24 :5555 │
#   └───────────────────────────┘    └──────────────────────────────────┘    └───────────────────────────┘
#
# A dials the relay; the relay forwards from 198.51.100.2 and a port of its
# own, like a NAT, so B only ever sees the relay's address.
#
# After relay_setup:
#   $nsA $nsR $nsB                 the namespaces
#   $T/a.conf $T/b.conf            the configs (a test may edit them before
#                                  tunnel_start)
#   relay_start [ARGS...]          the relay, control socket $T/relay.sock
#   relay_ctl CMD...               one control command; its data lines
#   relay_stat KEY                 one relay counter
#   tunnel_start [SALTUN ARGS...]  both daemons, then a ping through
#   st NAME JQ                     field of daemon NAME's only session
#                                  (`saltun status --json`), e.g. st b .drops.replay
#   stj NAME JQ                    the same on the whole document (.counters)
#   echo_start / echo_send N ARGS  UDP echo pair through the tunnel (A -> B)
#   dev_stat NS rx|tx packets|bytes|errors|dropped   tun0's kernel counters
#   cpu_ticks PID                  utime + stime in clock ticks
#   pcap_payloads NAME             UDP payloads of $T/NAME.pcap, hex, one a line
#   udp_inject NS SRC SPORT DST DPORT HEX...   crafted datagrams (python3)
#   field KEY LINE                 VALUE of KEY=VALUE in a line of words
#   expect_eq WHAT GOT WANT        fail unless equal, else log it
#   fail_later MSG / test_finish   a failure that lets the test go on

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Every relay decision comes from this seed, printed so that a failure can
# be run again with the same faults: SALTUN_TEST_SEED=N.
RELAY_SEED=${SALTUN_TEST_SEED:-$((RANDOM * 32768 + RANDOM))}

# $RELAY from the environment (make check exports it), else next to the
# daemon in a build tree.
find_relay()
{
	if [ -z "${RELAY:-}" ] && [ -n "${SALTUN:-}" ]; then
		RELAY=$(dirname "$SALTUN")/../tests/tools/relay
	fi
	[ -n "${RELAY:-}" ] || skip "RELAY not set (run via make check, or export RELAY=BUILD/tests/tools/relay)"
	[ -x "$RELAY" ] || fail "RELAY=$RELAY is not an executable (make tests/tools/relay)"
}

# Namespaces, links, keys and both configs.
relay_setup()
{
	find_relay
	nsA=$(ns_name a)
	nsR=$(ns_name r)
	nsB=$(ns_name b)
	ns_add "$nsA"
	ns_add "$nsR"
	ns_add "$nsB"
	# No IPv6 on the tunnel devices: router solicitations and MLD reports
	# would add packets that the tests' exact device counters do not expect.
	nsx "$nsA" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	nsx "$nsB" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	veth_link "$nsA" ua 192.0.2.1/24 "$nsR" ra 192.0.2.2/24
	veth_link "$nsR" rb 198.51.100.2/24 "$nsB" ub 198.51.100.1/24
	key_gen a
	key_gen b
	{
		conf_global a 0.0.0.0:5555
		cat <<EOF
[b]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
type = tun
device = tun0
up = ip addr add 198.18.0.1/24 dev %d && ip link set %d up
EOF
	} >"$T/a.conf"
	{
		conf_global b 0.0.0.0:5555
		cat <<EOF
[a]
public_key = $(key_pub a)
type = tun
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip link set %d up
EOF
	} >"$T/b.conf"
}

# The relay in $nsR, clean pipelines unless ARGS say otherwise (--a2b SPEC).
relay_start()
{
	bg_start relay ip netns exec "$nsR" "$RELAY" --udp 192.0.2.2:5555 --to 198.51.100.1:5555 \
		--from 198.51.100.2 --seed "$RELAY_SEED" --control "$T/relay.sock" \
		--stats-file "$T/relay.stats" "$@"
	# The control socket appears once every data socket is bound.
	local i
	for ((i = 0; i < 50; i++)); do
		[ -S "$T/relay.sock" ] && break
		sleep 0.1
	done
	[ -S "$T/relay.sock" ] || fail "relay did not start"
	log "relay seed $RELAY_SEED (SALTUN_TEST_SEED=$RELAY_SEED repeats these faults)"
}

relay_ctl()
{
	"$RELAY" --ctl "$T/relay.sock" "$@" || fail "relay command failed: $*"
}

relay_stat()
{
	local v
	v=$(relay_ctl stats "$1" | sed -n "s/^$1=//p")
	[ -n "$v" ] || fail "relay has no counter $1"
	echo "$v"
}

# Both daemons (extra ARGS to `saltun run`, e.g. --test-time-scale 10), and
# the first answer through the tunnel.
tunnel_start()
{
	saltun_start "$nsB" b "$T/b.conf" "$@"
	saltun_start "$nsA" a "$T/a.conf" "$@"
	ping_wait "$nsA" 198.18.0.2 20 || fail "no ping through the tunnel"
}

# JQ applied to the only session of daemon NAME, from its control socket.
st()
{
	local name=$1 expr=$2 out
	out=$("$SALTUN" status -s "$T/$name.sock" --json) || fail "saltun status of $name failed"
	jq -r ".sessions[0] | $expr" <<<"$out" || fail "status of $name: bad jq '$expr'"
}

# JQ applied to the whole status document of daemon NAME, e.g.
# stj b .counters.bad_header for a daemon-wide counter.
stj()
{
	local name=$1 expr=$2 out
	out=$("$SALTUN" status -s "$T/$name.sock" --json) || fail "saltun status of $name failed"
	jq -r "$expr" <<<"$out" || fail "status of $name: bad jq '$expr'"
}

# The whole JSON status of daemon NAME, compact, for the record.
st_all()
{
	"$SALTUN" status -s "$T/$1.sock" --json | jq -c '.sessions[0] | {state, endpoint, rx_packets,
		tx_packets, handshake_attempts, handshakes_completed, rekeys, drops}'
}

# Kernel counter of tun0 in NS: dev_stat NS rx|tx packets|bytes|errors|dropped.
dev_stat()
{
	ip -n "$1" -s -j link show dev tun0 | jq -r ".[0].stats64.$2.$3"
}

# CPU time (user + system) of PID in clock ticks.
cpu_ticks()
{
	# Fields after the ")" of comm: state is field 1, utime 12, stime 13.
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

expect_eq()
{
	local what=$1 got=$2 want=$3
	[ "$got" = "$want" ] || fail "$what: got '$got', want '$want'"
	log "$what: $got"
}

# Packets received by ping's summary line ("N packets transmitted, M received").
ping_received()
{
	sed -n 's/.* \([0-9]*\) received.*/\1/p' "$1"
}

ping_transmitted()
{
	sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$1"
}

# A UDP echo server inside the tunnel: the relay binary's --echo-udp, in B
# on 198.18.0.2:7777.
echo_start()
{
	bg_start echo ip netns exec "$nsB" "$RELAY" --echo-udp 198.18.0.2:7777 \
		--ready-file "$T/echo.ready"
	local i
	for ((i = 0; i < 50; i++)); do
		[ -s "$T/echo.ready" ] && return 0
		sleep 0.1
	done
	fail "UDP echo server did not start"
}

# COUNT sequenced datagrams from A through the tunnel to the echo server
# (extra ARGS: --interval D, --size N); prints the sender's summary line
# "sent= received= unique= duplicates= reordered= invalid= send_errors= digest=".
echo_send()
{
	local count=$1
	shift
	timeout 120 ip netns exec "$nsA" "$RELAY" --send-udp 198.18.0.2:7777 --count "$count" "$@" ||
		fail "relay --send-udp failed"
}

# The value of KEY in a line of KEY=VALUE words.
field()
{
	tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

# The UDP payloads in $T/NAME.pcap (a capture_start capture), one hex
# string per line, oldest first (IPv4 without options: 28 header bytes).
pcap_payloads()
{
	tcpdump -n -x -r "$T/$1.pcap" 2>/dev/null | awk '
		/^[^ \t]/ { if (h != "") print substr(h, 57); h = ""; next }
		{ for (i = 2; i <= NF; i++) h = h $i }
		END { if (h != "") print substr(h, 57) }'
}

# Send each HEX argument as one UDP datagram from NS, SRC_ADDR:SRC_PORT,
# to DST_ADDR:DST_PORT.
udp_inject()
{
	local ns=$1 src=$2 sport=$3 dst=$4 dport=$5
	shift 5
	nsx "$ns" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
for h in sys.argv[5:]:
    s.sendto(bytes.fromhex(h), (sys.argv[3], int(sys.argv[4])))
' "$src" "$sport" "$dst" "$dport" "$@" || fail "udp_inject failed"
}

# A failed check that should not stop the rest of the test from running
# (so one daemon bug does not hide the figures of the next step): printed
# now, and the test fails at test_finish.
LATE_FAILS=()
fail_later()
{
	printf 'FAIL (reported at the end): %s: %s\n' "$TEST_NAME" "$*" >&2
	LATE_FAILS+=("$*")
}

test_finish()
{
	[ "${#LATE_FAILS[@]}" -eq 0 ] || fail "${#LATE_FAILS[@]} check(s) failed: $(printf '%s; ' "${LATE_FAILS[@]}")"
}
