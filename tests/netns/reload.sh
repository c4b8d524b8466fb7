#!/bin/bash
#
# Reload (SIGHUP and `saltun reload`) while traffic flows.  Daemon "a" has
# two sessions: [b], which no reload touches and through which a ping runs
# every 50 ms from before the first reload to after the last, and [c].
# Three reloads change [c]: its mtu and up hook (stop and start again, with
# its peer reloaded to the same mtu), its removal (by SIGHUP: down hook,
# device gone), then its return (added: device, hook, ping).  The ping
# through [b] must lose nothing, and [b] keep its device, its keys and its
# counters.  Then what a reload refuses, changing nothing: a config with a
# typo (exit 1, the error with its file and line) and a new `listen`.
#
#   ┌────────────────────────────────┐            ┌─────────────────────────────┐
#   │ $ns1                           │            │ $ns2                        │
#   │  ping -i 0.05 -> 198.18.1.2    │            │  tun-a 198.18.1.2/24        │
#   │  tun-b 198.18.1.1/24 [b]       │ ==tunnel== │    saltun "b" [a]           │
#   │  tun-c 198.18.2.1/24 [c]       │            │  u2 192.0.2.2/24 :5555      │
#   │    saltun "a"                  │            └─────────────────────────────┘
#   │  u1 192.0.2.1/24 :5555  ───────┼─── veth ───────────┘
#   │  v1 198.51.100.1/24     ───────┼─── veth ───┐
#   └────────────────────────────────┘            │ $ns3                        │
#                                   ==tunnel==    │  tun-a 198.18.2.2/24        │
#                                                 │    saltun "c" [a]           │
#                                                 │  v3 198.51.100.3/24 :5555   │
#                                                 └─────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd jq
test_start 120

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns3=$(ns_name 3)
ns_add "$ns1"
ns_add "$ns2"
ns_add "$ns3"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24
veth_link "$ns1" v1 198.51.100.1/24 "$ns3" v3 198.51.100.3/24

key_gen a
key_gen b
key_gen c
sock=$T/a.sock

# a's config: [b] always the same; [c] as given by C_MTU and C_TAG (the
# up hook records its tag), or absent when C_MTU is "-".  LISTEN and EXTRA
# (a line in [c]) for the refused reloads.
conf_a()
{
	{
		conf_global a "${LISTEN:-0.0.0.0:5555}"
		cat <<EOF
[b]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
device = tun-b
up = ip addr add 198.18.1.1/24 dev %d && ip link set %d up

EOF
		[ "$C_MTU" = - ] || cat <<EOF
[c]
public_key = $(key_pub c)
endpoint = 198.51.100.3:5555
device = tun-c
mtu = $C_MTU
up = ip addr add 198.18.2.1/24 dev %d && ip link set %d up && echo "up-$C_TAG %d %m" >>$T/c.events
down = echo "down %d %m" >>$T/c.events
connect = sleep ${C_SLEEP:-0} && echo "connect-$C_TAG %d" >>$T/c.events
${EXTRA:-}
EOF
	} >"$T/a.conf.new"
	mv "$T/a.conf.new" "$T/a.conf"
}

# The peer of [c] in $ns3, at mtu $1.
conf_c()
{
	{
		conf_global c 0.0.0.0:5555
		cat <<EOF
[a]
public_key = $(key_pub a)
endpoint = 198.51.100.1:5555
device = tun-a
mtu = $1
up = ip addr add 198.18.2.2/24 dev %d && ip link set %d up
EOF
	} >"$T/c.conf.new"
	mv "$T/c.conf.new" "$T/c.conf"
}

{
	conf_global b 0.0.0.0:5555
	cat <<EOF
[a]
public_key = $(key_pub a)
endpoint = 192.0.2.1:5555
device = tun-a
up = ip addr add 198.18.1.2/24 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

C_MTU=1420 C_TAG=1 conf_a
conf_c 1420
saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"
saltun_start "$ns3" c "$T/c.conf"
ping_wait "$ns1" 198.18.1.2 10 || fail "no ping through [b]"
ping_wait "$ns1" 198.18.2.2 10 || fail "no ping through [c]"

ifindex()
{
	ip -n "$1" -o link show dev "$2" | cut -d: -f1
}

# `saltun reload` for daemon a: output in $T/reload-N.out (stdout and
# stderr), exit status in RELOAD_RC.
n_reload=0
reload_a()
{
	n_reload=$((n_reload + 1))
	RELOAD_OUT=$T/reload-$n_reload.out
	RELOAD_RC=0
	"$SALTUN" reload -s "$sock" >"$RELOAD_OUT" 2>&1 || RELOAD_RC=$?
}

b_index=$(ifindex "$ns1" tun-b)
b_handshakes=$(count_lines "$T/a.log" "^saltun: b: handshake complete")
[ "$b_handshakes" -ge 1 ] || fail "[b] never completed a handshake"

# 240 pings at 50 ms: 12 s, longer than the three reloads take.
bg_start ping ip netns exec "$ns1" ping -n -c 240 -i 0.05 -W 2 198.18.1.2
sleep 1

# ------------------------------------------------ 1: [c] changed: restarted
conf_c 1380
kill -HUP "${PIDS[c]}"
wait_for "$T/c.log" "^saltun: reloaded .*0 added, 0 removed, 1 restarted, 0 unchanged" 5 ||
	fail "c: SIGHUP did not restart [a] at mtu 1380"
# Its connect hook takes 3 s: reload 2 stops [c] while it runs.
C_MTU=1380 C_TAG=2 C_SLEEP=3 conf_a
reload_a
[ "$RELOAD_RC" -eq 0 ] || fail "reload 1: exit $RELOAD_RC: $(cat "$RELOAD_OUT")"
grep -qx "reloaded $T/a.conf: 0 added, 0 removed, 1 restarted, 1 unchanged" "$RELOAD_OUT" ||
	fail "reload 1 said: $(cat "$RELOAD_OUT")"
grep -qx "down tun-c 1420" "$T/c.events" || fail "reload 1: old [c]'s down hook did not run"
# The down hook ran before the answer; the up hook runs on the loop.
wait_for "$T/c.events" "^up-2 tun-c 1380$" 5 || fail "reload 1: new [c]'s up hook did not run"
[ "$(dev_mtu "$ns1" tun-c)" = 1380 ] || fail "reload 1: tun-c mtu $(dev_mtu "$ns1" tun-c), want 1380"
ping_wait "$ns1" 198.18.2.2 10 || fail "reload 1: no ping through the restarted [c]"
ping_df "$ns1" 198.18.2.2 1352 || fail "reload 1: a 1380-byte packet does not pass [c]"
log "reload 1: [c] restarted at mtu 1380, up again"

# ------------------------------------------------ 2: [c] removed, by SIGHUP
C_MTU=- conf_a
kill -HUP "${PIDS[a]}"
wait_for "$T/a.log" "^saltun: reloaded .*0 added, 1 removed, 0 restarted, 1 unchanged" 5 ||
	fail "reload 2 (SIGHUP) did not remove [c]"
grep -qx "down tun-c 1380" "$T/c.events" || fail "reload 2: [c]'s down hook did not run"
! dev_exists "$ns1" tun-c || fail "reload 2: tun-c still exists"
"$SALTUN" status -s "$sock" --json >"$T/status-2.json" || fail "status after reload 2"
jq -e '.sessions | map(.name) == ["b"]' "$T/status-2.json" >/dev/null ||
	fail "reload 2: status lists $(jq -c '.sessions | map(.name)' "$T/status-2.json")"
# The stopped [c] is freed only once its connect hook ended (a sanitizer
# build catches a use after free).
! grep -q "^connect-2" "$T/c.events" || fail "reload 2: connect hook not running at the removal"
wait_for "$T/c.events" "^connect-2 tun-c$" 5 || fail "reload 2: the connect hook did not finish"
wait_for "$T/a.log" "^saltun: c: stopped by reload, released" 2 || fail "reload 2: [c] not released"
log "reload 2: [c] removed by SIGHUP, down hook ran, device gone"

# ------------------------------------------------ 3: [c] added
C_MTU=1380 C_TAG=3 conf_a
reload_a
[ "$RELOAD_RC" -eq 0 ] || fail "reload 3: exit $RELOAD_RC: $(cat "$RELOAD_OUT")"
grep -qx "reloaded $T/a.conf: 1 added, 0 removed, 0 restarted, 1 unchanged" "$RELOAD_OUT" ||
	fail "reload 3 said: $(cat "$RELOAD_OUT")"
dev_exists "$ns1" tun-c || fail "reload 3: no tun-c"
wait_for "$T/c.events" "^up-3 tun-c 1380$" 5 || fail "reload 3: [c]'s up hook did not run"
ping_wait "$ns1" 198.18.2.2 10 || fail "reload 3: no ping through the added [c]"
log "reload 3: [c] added and up"

# ------------------------------------------------ [b] kept flowing
bg_alive ping || fail "the ping ended before the reloads did: make it longer"
pid=${PIDS[ping]}
for ((i = 0; i < 300; i++)); do
	pid_alive "$pid" || break
	sleep 0.1
done
bg_stop ping
grep -qE "^240 packets transmitted, 240 received" "$T/ping.log" ||
	fail "the ping through the unchanged [b] lost packets: $(grep transmitted "$T/ping.log")"
[ "$(ifindex "$ns1" tun-b)" = "$b_index" ] || fail "tun-b was re-created"
[ "$(count_lines "$T/a.log" "^saltun: b: handshake complete")" = "$b_handshakes" ] ||
	fail "[b] did a new handshake: its keys did not survive the reloads"
[ "$(count_lines "$T/a.log" "^saltun: b: (device removed|changed|removed)")" = 0 ] ||
	fail "a reload touched [b]"
"$SALTUN" status -s "$sock" --json >"$T/status-3.json" || fail "status after reload 3"
jq -e '.sessions[0] | .name == "b" and .rx_packets >= 240 and .tx_packets >= 240' \
	"$T/status-3.json" >/dev/null || fail "[b]'s counters were reset: $(jq -c '.sessions[0]' "$T/status-3.json")"
log "[b]: 240/240 pings across 3 reloads, same device, keys and counters"

# ------------------------------------------------ refused: a typo
c_index=$(ifindex "$ns1" tun-c)
EXTRA="mtuu = 1400" C_MTU=1380 C_TAG=4 conf_a
line=$(grep -n "^mtuu = 1400" "$T/a.conf" | cut -d: -f1)
reload_a
[ "$RELOAD_RC" -eq 1 ] || fail "a config with a typo: reload exit $RELOAD_RC, want 1"
grep -q "^saltun reload: error: reload: 1 error in $T/a.conf: nothing changed" "$RELOAD_OUT" ||
	fail "typo: no refusal line: $(cat "$RELOAD_OUT")"
grep -q "^$T/a.conf:$line: unknown key 'mtuu'" "$RELOAD_OUT" ||
	fail "typo: the error does not name the file and line $line: $(cat "$RELOAD_OUT")"
wait_for "$T/a.log" "reload: $T/a.conf:$line: unknown key 'mtuu'" 2 || fail "typo: not logged"
[ "$(ifindex "$ns1" tun-c)" = "$c_index" ] || fail "typo: tun-c was touched"
! grep -q "^up-4" "$T/c.events" || fail "typo: [c] was restarted"
ping_ok "$ns1" 198.18.2.2 3 || fail "typo: [c] stopped working"
log "refused: a typo on line $line, nothing changed"

# ------------------------------------------------ refused: listen
LISTEN=0.0.0.0:5556 C_MTU=1380 C_TAG=5 conf_a
reload_a
[ "$RELOAD_RC" -eq 1 ] || fail "new listen: reload exit $RELOAD_RC, want 1"
grep -qx "saltun reload: error: reload: 'listen' changed: restart saltun to apply" "$RELOAD_OUT" ||
	fail "new listen: $(cat "$RELOAD_OUT")"
[ "$(ifindex "$ns1" tun-c)" = "$c_index" ] || fail "listen: tun-c was touched"
ping_ok "$ns1" 198.18.1.2 3 || fail "listen: [b] stopped working"
ping_ok "$ns1" 198.18.2.2 3 || fail "listen: [c] stopped working"
log "refused: a new listen address, nothing changed"

# Whoever may connect may ask for status, but only root may reload (the
# socket opened to everyone here, for the test only).
if command -v setpriv >/dev/null 2>&1; then
	chmod 711 "$T"
	chmod 666 "$sock"
	as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	"${as_nobody[@]}" "$SALTUN" status -s "$sock" >/dev/null 2>"$T/nobody-status.err" ||
		fail "status as nobody: $(cat "$T/nobody-status.err")"
	rc=0
	"${as_nobody[@]}" "$SALTUN" reload -s "$sock" >"$T/nobody.out" 2>&1 || rc=$?
	[ "$rc" -eq 1 ] || fail "reload as nobody: exit $rc, want 1"
	grep -qx "saltun reload: error: reload: permission denied: only root may reload" "$T/nobody.out" ||
		fail "reload as nobody: $(cat "$T/nobody.out")"
	chmod 700 "$T"
	log "reload refused to an unprivileged client"
fi

# A clean stop still runs the down hook of the session a reload added.
saltun_stop a
[ "$STOP_STATUS" -eq 0 ] || fail "a exited with $STOP_STATUS"
[ "$(grep -c "^down tun-c 1380" "$T/c.events")" = 2 ] || fail "no down hook on the final stop"
exit 0
