#!/bin/bash
#
# Peers that must not get a tunnel: for each mistake, no packet crosses, no
# connect hook runs, and one clear line in the log names the mistake.
# "a" dials (has the endpoint), "b" only listens, so each mistake is seen
# from one known side.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tun0/tap0 198.18.0.1/24     │            │  tun0/tap0 198.18.0.2/24     │
#   │    saltun "a" [site2]  ──────┼─ dials ──> │    saltun "b" [site1]        │
#   │  u1 192.0.2.1/24 ────────────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘
#
#   mistake        what is wrong                     who says so
#   wrong-key      a has a wrong public key for b    b: mac1 invalid
#   unknown-peer   b has a wrong public key for a    b: unknown peer <a's key>
#   wrong-psk      preshared keys differ             a: response failed authentication
#   type           a is tap, b is tun                b: refused handshake ... type
#   mtu            a has mtu 1400, b 1380            b: refused handshake ... mtu

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
test_start 120

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24

key_gen a
key_gen b
key_gen stranger
psk_gen p1
psk_gen p2

# One [section] for NAME's config.  Args: session name, peer key, psk file
# or "", type, mtu or "", endpoint or "", overlay address, events file.
session_conf()
{
	local name=$1 key=$2 psk=$3 type=$4 mtu=$5 endpoint=$6 addr=$7 events=$8
	echo "[$name]"
	echo "public_key = $key"
	[ -z "$psk" ] || echo "preshared_key = $psk"
	[ -z "$endpoint" ] || echo "endpoint = $endpoint"
	echo "type = $type"
	echo "device = ${type}0"
	[ -z "$mtu" ] || echo "mtu = $mtu"
	echo "up = ip addr add $addr dev %d && ip link set %d up"
	echo "connect = echo connect %h >> $events"
}

# mistake, then: a's key for b, b's key for a, a's psk, b's psk, a's type,
# b's type, a's mtu, b's mtu, the log that must say so, what it must say.
scenario()
{
	local m=$1 akey=$2 bkey=$3 apsk=$4 bpsk=$5 atype=$6 btype=$7 amtu=$8 bmtu=$9
	local who=${10} pattern=${11} n
	log "---- $m"
	{
		conf_global "a" 0.0.0.0:5555
		session_conf site2 "$akey" "$apsk" "$atype" "$amtu" 192.0.2.2:5555 198.18.0.1/24 "$T/a-$m.events"
	} >"$T/a-$m.conf"
	{
		conf_global "b" 0.0.0.0:5555
		session_conf site1 "$bkey" "$bpsk" "$btype" "$bmtu" "" 198.18.0.2/24 "$T/b-$m.events"
	} >"$T/b-$m.conf"
	saltun_start "$ns2" "b-$m" "$T/b-$m.conf"
	saltun_start "$ns1" "a-$m" "$T/a-$m.conf"

	# Traffic makes a dial; nothing may come back.
	ping_none "$ns1" 198.18.0.2 5 || fail "$m: a ping crossed the tunnel"
	wait_for "$T/$who-$m.log" "$pattern" 5 || fail "$m: no log line /$pattern/ from $who"
	n=$(count_lines "$T/$who-$m.log" "$pattern")
	log "$who: $(grep -E -m 1 -- "$pattern" "$T/$who-$m.log") ($n line(s))"
	[ "$n" -le 5 ] || fail "$m: $n lines of /$pattern/: not rate-limited"
	! grep -qE "handshake complete" "$T/a-$m.log" || fail "$m: a claims a handshake"
	if grep -qE "handshake complete" "$T/b-$m.log"; then
		# Reported, not failed: a responder has its keys once it answered,
		# but the line reads as success when the peer cannot confirm them.
		log "NOTE: b logged 'handshake complete' although a could not complete: $(grep -m 1 'handshake complete' "$T/b-$m.log")"
	fi
	[ ! -e "$T/a-$m.events" ] || fail "$m: a ran its connect hook: $(cat "$T/a-$m.events")"
	[ ! -e "$T/b-$m.events" ] || fail "$m: b ran its connect hook: $(cat "$T/b-$m.events")"
	! ping_ok "$ns2" 198.18.0.1 1 || fail "$m: a ping crossed from b to a"

	saltun_stop "a-$m"
	saltun_stop "b-$m"
}

a=$(key_pub a)
b=$(key_pub b)
stranger=$(key_pub stranger)
p1=$T/p1.psk
p2=$T/p2.psk

scenario wrong-key "$stranger" "$a" "" "" tun tun "" "" b "mac1 invalid"
scenario unknown-peer "$b" "$stranger" "" "" tun tun "" "" b "unknown peer( public key)? $(re_quote "$a")"
scenario wrong-psk "$b" "$a" "$p1" "$p2" tun tun "" "" a "failed authentication"
scenario type "$b" "$a" "" "" tap tun "" "" b "refused handshake.*type.*tap.*tun"
scenario mtu "$b" "$a" "" "" tun tun 1400 1380 b "refused handshake.*mtu.*1400.*1380"

# And the same pair with nothing wrong does connect (so the above failed
# for the stated reasons, not because this setup cannot work at all).
scenario_ok()
{
	{
		conf_global "a" 0.0.0.0:5555
		session_conf site2 "$b" "$p1" tun "" 192.0.2.2:5555 198.18.0.1/24 "$T/a-ok.events"
	} >"$T/a-ok.conf"
	{
		conf_global "b" 0.0.0.0:5555
		session_conf site1 "$a" "$p1" tun "" "" 198.18.0.2/24 "$T/b-ok.events"
	} >"$T/b-ok.conf"
	saltun_start "$ns2" b-ok "$T/b-ok.conf"
	saltun_start "$ns1" a-ok "$T/a-ok.conf"
	ping_wait "$ns1" 198.18.0.2 15 || fail "ok: the correct configuration does not connect"
	ping_ok "$ns2" 198.18.0.1 3 || fail "ok: b -> a"
	wait_for "$T/a-ok.events" "connect site2" 3 || fail "ok: a's connect hook did not run"
	wait_for "$T/b-ok.events" "connect site1" 3 || fail "ok: b's connect hook did not run"
}
log "---- ok"
scenario_ok
