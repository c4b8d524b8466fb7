#!/bin/bash
#
# `saltun status` and the control socket, end to end.  Daemon "a" serves two
# sessions: [b], up (its peer runs in $ns2), and [c], waiting (its peer
# never comes).  After pings through [b], status in text and JSON must show
# both with the right states and traffic, one session on request, refuse an
# unknown one, and never print a private key.  Then the socket itself: mode
# 0660 in a directory the daemon created 0750, kept away from a second
# daemon configured with the same path, replaced when stale after a crash,
# and removed on a clean stop.
#
#   ┌──────────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                             │            │ $ns2                         │
#   │  tun0 198.18.0.1/24  [b]  up     │ ==tunnel== │  tun0 198.18.0.2/24  [a]     │
#   │  tun1                [c]  waiting│            │    saltun "b"                │
#   │    saltun "a", control $T/run/   │            │    (later saltun "d": same   │
#   │  u1 192.0.2.1/24 :5555 ──────────┼─── veth ───┼─── control path as "a")      │
#   └──────────────────────────────────┘            │  u2 192.0.2.2/24 :5555       │
#                                                   └──────────────────────────────┘

. "$(dirname "$0")/lib.sh"
need_root
need_cmd jq stat
test_start 90

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24

key_gen a
key_gen b
key_gen c
key_gen d
sock=$T/run/a.sock # $T/run does not exist: the daemon creates it
cat >"$T/a.conf" <<EOF
[global]
private_key = $T/a.key
listen = 0.0.0.0:5555
control = $sock

[b]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
device = tun0
up = ip addr add 198.18.0.1/24 dev %d && ip link set %d up

[c]
public_key = $(key_pub c)
device = tun1
EOF
{
	conf_global b 0.0.0.0:5555
	cat <<EOF
[a]
public_key = $(key_pub a)
endpoint = 192.0.2.1:5555
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

# `saltun status ARGS...`: stdout to $T/out-N.txt, stderr to $T/err-N.txt
# (every output is searched for private keys at the end); the exit status
# in STATUS_RC, the file names in OUT and ERR.
n_out=0
status()
{
	n_out=$((n_out + 1))
	OUT=$T/out-$n_out.txt
	ERR=$T/err-$n_out.txt
	STATUS_RC=0
	"$SALTUN" status "$@" >"$OUT" 2>"$ERR" || STATUS_RC=$?
}

# The text block of session NAME in file F.
block()
{
	awk -v s="session: $2" '$0 == s { f = 1; print; next } /^(session|daemon): / { f = 0 } f' "$1"
}

saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"
wait_for "$T/a.log" "control socket $(re_quote "$sock")" 5 || fail "a: no control socket line"
ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
ping_ok "$ns1" 198.18.0.2 5 || fail "ping a -> b"

# ---------------------------------------------------------------- modes
[ "$(stat -c %a "$sock")" = 660 ] || fail "socket mode $(stat -c %a "$sock"), want 660"
[ -S "$sock" ] || fail "$sock is not a socket"
[ "$(stat -c %a "$T/run")" = 750 ] || fail "directory mode $(stat -c %a "$T/run"), want 750"
# Group saltun may ask when that group exists; root alone otherwise.
group=root
getent group saltun >/dev/null 2>&1 && group=saltun
[ "$(stat -c %G "$sock")" = "$group" ] || fail "socket group $(stat -c %G "$sock"), want $group"
[ "$(stat -c %U "$sock")" = root ] || fail "socket owner $(stat -c %U "$sock"), want root"

# ---------------------------------------------------------------- text
status -c "$T/a.conf"
[ "$STATUS_RC" -eq 0 ] || fail "status -c: exit $STATUS_RC: $(cat "$ERR")"
cp "$OUT" "$T/text.txt"
grep -qx "daemon: saltun .*" "$T/text.txt" || fail "no daemon line"
grep -Eqx "  public key: +$(re_quote "$(key_pub a)")" "$T/text.txt" || fail "not a's public key"
grep -Eqx "  listening: +0\.0\.0\.0:5555" "$T/text.txt" || fail "no listen line"
grep -Eqx "  sessions: +2 \(1 up\)" "$T/text.txt" || fail "sessions line"
block "$T/text.txt" b >"$T/b.block"
block "$T/text.txt" c >"$T/c.block"
[ -s "$T/b.block" ] && [ -s "$T/c.block" ] || fail "status lacks a session: $(cat "$T/text.txt")"
grep -Eqx "  state: +up" "$T/b.block" || fail "b not up: $(cat "$T/b.block")"
grep -Eqx "  peer: +$(re_quote "$(key_pub b)")" "$T/b.block" || fail "b: peer key"
grep -Eqx "  device: +tun0" "$T/b.block" || fail "b: device"
grep -Eqx "  endpoint: +192\.0\.2\.2:5555" "$T/b.block" || fail "b: endpoint"
grep -Eqx "  latest handshake: +(just now|[0-9]+ seconds? ago)" "$T/b.block" || fail "b: handshake age"
grep -Eqx "  received: +[1-9][0-9]* bytes, [1-9][0-9]* packets" "$T/b.block" || fail "b: nothing received"
grep -Eqx "  sent: +[1-9][0-9]* bytes, [1-9][0-9]* packets" "$T/b.block" || fail "b: nothing sent"
grep -Eq "^  drops: +auth_failed 0, " "$T/b.block" || fail "b: drops line"
grep -Eqx "  state: +waiting" "$T/c.block" || fail "c not waiting: $(cat "$T/c.block")"
grep -Eqx "  device: +tun1" "$T/c.block" || fail "c: device"
grep -Eqx "  endpoint: +\(none: waits for the peer\)" "$T/c.block" || fail "c: endpoint"
grep -Eqx "  latest handshake: +never" "$T/c.block" || fail "c: handshake"
grep -Eqx "  received: +0 bytes, 0 packets" "$T/c.block" || fail "c: received"
log "text status: b up, c waiting"

# ---------------------------------------------------------------- JSON
status -s "$sock" --json
[ "$STATUS_RC" -eq 0 ] || fail "status --json: exit $STATUS_RC: $(cat "$ERR")"
cp "$OUT" "$T/status.json"
jq -e . "$T/status.json" >/dev/null || fail "status --json is not JSON: $(cat "$T/status.json")"
jq -e --arg pub "$(key_pub a)" --arg bpub "$(key_pub b)" '
	.version == 1 and .public_key == $pub and .listen == ["0.0.0.0:5555"] and
	(.uptime_seconds | type) == "number" and
	(.counters | keys | length) == 8 and
	(.sessions | map(.name)) == ["b", "c"] and
	(.sessions[0] | .state == "up" and .peer_public_key == $bpub and .device == "tun0" and
		.type == "tun" and .transport == "udp" and .endpoint == "192.0.2.2:5555" and
		(.latest_handshake_seconds_ago | type) == "number" and
		.rx_bytes > 0 and .rx_packets > 0 and .tx_bytes > 0 and .tx_packets > 0 and
		.handshakes_completed >= 1 and (.drops | keys | length) == 12) and
	(.sessions[1] | .state == "waiting" and .device == "tun1" and .endpoint == null and
		.latest_handshake_seconds_ago == null and .rx_bytes == 0 and .tx_bytes == 0)
' "$T/status.json" >/dev/null || fail "status --json does not match: $(jq . "$T/status.json")"
# Text and JSON tell the same story.
[ "$(awk '/^  received:/ { print $2 }' "$T/b.block")" -le "$(jq '.sessions[0].rx_bytes' "$T/status.json")" ] ||
	fail "rx_bytes went backwards between text and JSON"
log "JSON status matches"

# ---------------------------------------------------------------- one session
status -s "$sock" b
[ "$STATUS_RC" -eq 0 ] || fail "status b: exit $STATUS_RC"
head -n 1 "$OUT" | grep -qx "session: b" || fail "status b: $(cat "$OUT")"
[ "$(grep -c '^session: ' "$OUT")" -eq 1 ] || fail "status b shows more than b"
! grep -q "^daemon: " "$OUT" || fail "status b shows the daemon block"
status -s "$sock" --json c
[ "$STATUS_RC" -eq 0 ] || fail "status --json c: exit $STATUS_RC"
jq -e '(.sessions | length) == 1 and .sessions[0].name == "c" and .version == 1' "$OUT" >/dev/null ||
	fail "status --json c: $(cat "$OUT")"

# ---------------------------------------------------------------- errors
status -s "$sock" nosuch
[ "$STATUS_RC" -eq 1 ] || fail "unknown session: exit $STATUS_RC"
grep -qx "saltun status: error: no session 'nosuch'" "$ERR" || fail "unknown session: $(cat "$ERR")"
[ ! -s "$OUT" ] || fail "unknown session printed to stdout"
status -s "$sock" 'bad/name'
[ "$STATUS_RC" -eq 1 ] || fail "bad name: exit $STATUS_RC"
grep -q "bad session name" "$ERR" || fail "bad name: $(cat "$ERR")"
status -c "$T/a.conf" -s "$sock"
[ "$STATUS_RC" -eq 1 ] || fail "-c with -s accepted"

# The peer's daemon answers on its own socket, about its own session.
status -s "$T/b.sock" --json
[ "$STATUS_RC" -eq 0 ] || fail "status of b: exit $STATUS_RC"
jq -e --arg pub "$(key_pub b)" '.public_key == $pub and .sessions[0].name == "a" and
	.sessions[0].state == "up"' "$OUT" >/dev/null || fail "status of b: $(cat "$OUT")"

# ---------------------------------------------------------------- a second daemon, same path
{
	cat <<EOF
[global]
private_key = $T/d.key
control = $sock

[x]
public_key = $(key_pub c)
device = tun9
EOF
} >"$T/d.conf"
saltun_start "$ns2" d "$T/d.conf"
wait_for "$T/d.log" "another daemon listens on $(re_quote "$sock")" 5 ||
	fail "d: no refusal of the busy control socket"
bg_alive d || fail "d stopped instead of running without a control socket"
status -s "$sock" --json
jq -e --arg pub "$(key_pub a)" '.public_key == $pub' "$OUT" >/dev/null ||
	fail "the socket no longer answers for a: $(cat "$OUT")"
saltun_stop d
[ -S "$sock" ] || fail "d's stop removed a's socket"

# ---------------------------------------------------------------- crash, stale socket, restart
saltun_kill a
[ -S "$sock" ] || fail "no socket file left after SIGKILL (test premise)"
status -s "$sock"
[ "$STATUS_RC" -eq 1 ] || fail "status of a dead daemon: exit $STATUS_RC"
grep -qx "saltun status: cannot connect to $sock: Connection refused — is saltun running?" "$ERR" ||
	fail "dead daemon: $(cat "$ERR")"
saltun_start "$ns1" a "$T/a.conf"
wait_for "$T/a.log" "removed stale socket $(re_quote "$sock")" 5 || fail "a: stale socket not replaced"
wait_for "$T/a.log" "control socket $(re_quote "$sock")" 5 || fail "a: no control socket after restart"
status -c "$T/a.conf" --json
[ "$STATUS_RC" -eq 0 ] || fail "status after restart: exit $STATUS_RC: $(cat "$ERR")"
jq -e '(.sessions | map(.name)) == ["b", "c"]' "$OUT" >/dev/null || fail "after restart: $(cat "$OUT")"
log "stale socket replaced after a crash"

# ---------------------------------------------------------------- clean stop
saltun_stop a
[ "$STOP_STATUS" -eq 0 ] || fail "a: exit status $STOP_STATUS after SIGTERM"
[ ! -e "$sock" ] || fail "socket left behind after a clean stop"
status -c "$T/a.conf"
[ "$STATUS_RC" -eq 1 ] || fail "status of a stopped daemon: exit $STATUS_RC"
grep -qx "saltun status: cannot connect to $sock: No such file or directory — is saltun running?" "$ERR" ||
	fail "stopped daemon: $(cat "$ERR")"

# ---------------------------------------------------------------- no secrets, ever
for k in a b c d; do
	key=$(cat "$T/$k.key")
	if grep -rqF -- "$key" "$T"/out-*.txt "$T"/err-*.txt; then
		fail "private key of $k printed by saltun status"
	fi
done
log "$n_out status runs, no private key in any output"
