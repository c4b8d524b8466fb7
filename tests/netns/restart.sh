#!/bin/bash
#
# A crash and restart of either end, mid-ping: kill -9 (no clean stop, no
# hooks), start it again with the same config; traffic must resume within
# 20 s of the kill.  Recovery times are printed.  First b is killed, then
# a, whose namespace the ping runs in.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  ping -> 198.18.0.2          │            │                              │
#   │  tun0 198.18.0.1/24          │            │  tun0 198.18.0.2/24          │
#   │    saltun "a" [site2]        │ ==tunnel== │    saltun "b" [site1]        │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

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
{
	conf_global a 0.0.0.0:5555
	cat <<EOF
[site2]
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
[site1]
public_key = $(key_pub a)
endpoint = 192.0.2.1:5555
type = tun
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"
ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"

# A timestamped ping for the whole test (-D: "[epoch.usec] 64 bytes from").
bg_start pinger ip netns exec "$ns1" ping -n -D -i 0.2 -W 1 198.18.0.2
wait_for "$T/pinger.log" "bytes from" 5 || fail "the ping did not start"

# Time of the first answer after stamp T0 (empty while none).
first_answer_after()
{
	awk -v t="$1" -F'[][]' '/bytes from/ && $2 > t { print $2; exit }' "$T/pinger.log"
}

# Kill NAME in NS with SIGKILL, restart it; print the recovery time.
crash_and_restart()
{
	local ns=$1 name=$2 i t_kill t_start t_ok
	sleep 2
	t_kill=$(date +%s.%N)
	saltun_kill "$name"
	# The device dies with the process: it was not made persistent.
	for ((i = 0; i < 20; i++)); do
		dev_exists "$ns" tun0 || break
		sleep 0.1
	done
	! dev_exists "$ns" tun0 || fail "$name: tun0 outlived its killed daemon"
	sleep 1
	t_start=$(date +%s.%N)
	saltun_start "$ns" "$name" "$T/$name.conf"
	t_ok=""
	while [ -z "$t_ok" ]; do
		awk -v e="$(elapsed_since "$t_kill")" 'BEGIN { exit !(e < 20) }' ||
			fail "$name: no answer within 20 s of the kill"
		sleep 0.1
		t_ok=$(first_answer_after "$t_start")
	done
	log "$name: killed, restarted 1 s later; traffic back $(awk -v a="$t_ok" -v b="$t_kill" \
		'BEGIN { printf "%.2f", a - b }') s after the kill, $(awk -v a="$t_ok" -v b="$t_start" \
		'BEGIN { printf "%.2f", a - b }') s after the restart"
	# And it stays back.
	ping_ok "$ns1" 198.18.0.2 5 || fail "$name: traffic did not stay back after the restart"
}

crash_and_restart "$ns2" b
crash_and_restart "$ns1" a
{ bg_alive a && bg_alive b; } || fail "a daemon died after the restarts"
