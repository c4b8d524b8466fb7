#!/bin/bash
#
# Hooks: `up` assigns the addresses through %d (the device is a kernel-named
# pattern, tun%d), `connect` and `disconnect` fire once each, `down` runs on
# a clean stop, in that order, each with its substitutions and the explicit
# SALTUN_* environment -- never the daemon's own (a canary variable in the
# daemon's environment must not reach a hook).  Hook output reaches the
# log, and a failing hook is logged with its exit status.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tun%d -> 198.18.0.1/24      │            │  tun%d -> 198.18.0.2/24      │
#   │    saltun "a" [site2]        │ ==tunnel== │    saltun "b" [site1]        │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
test_start 60

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24

key_gen a
key_gen b

# The [section] of NAME, peer PEER.  Every hook calls $T/NAME.record,
# which appends "EVENT args" to $T/NAME.events and the hook's whole
# environment to $T/NAME.EVENT.env (a script keeps the hook lines short:
# a config line holds at most 199 characters).  b's disconnect hook fails
# on purpose (exit 3).
hooks_conf()
{
	local name=$1 session=$2 peer=$3 endpoint=$4 addr=$5 fail_disconnect=$6
	local rec=$T/$name.record
	cat >"$rec" <<EOF
#!/bin/sh
ev=\$1
shift
echo "\$ev \$*" >>"$T/$name.events"
env >>"$T/$name.\$ev.env"
EOF
	chmod 700 "$rec"
	cat <<EOF
[$session]
public_key = $(key_pub "$peer")
endpoint = $endpoint
type = tun
device = tun%d
up = ip addr add $addr dev %d && ip link set %d up && $rec up %d %h %m && echo hook-output-$name-up
connect = $rec connect %d %h %a %p
disconnect = $rec disconnect %d %h %a %p$fail_disconnect
down = $rec down %d %h
EOF
}

{
	conf_global a 0.0.0.0:5555
	hooks_conf a site2 b 192.0.2.2:5555 198.18.0.1/24 ""
} >"$T/a.conf"
{
	conf_global b 0.0.0.0:5555
	hooks_conf b site1 a 192.0.2.1:5555 198.18.0.2/24 " && exit 3"
} >"$T/b.conf"

SALTUN_CANARY=leaked HOOK_CANARY=leaked saltun_start "$ns1" a "$T/a.conf"
SALTUN_CANARY=leaked HOOK_CANARY=leaked saltun_start "$ns2" b "$T/b.conf"

# up: the addresses %d assigned are on the device the kernel named.
wait_for "$T/a.events" "^up " 5 || fail "a: up hook did not run"
wait_for "$T/b.events" "^up " 5 || fail "b: up hook did not run"
mtu=$(dev_mtu "$ns1" tun0)
first=$(head -n 1 "$T/a.events")
[ "$first" = "up tun0 site2 $mtu" ] || fail "a: up hook saw '$first', want 'up tun0 site2 $mtu'"
grep -q "inet 198.18.0.1/24 " <<<"$(ip -n "$ns1" addr show dev tun0)" || fail "a: tun0 lacks 198.18.0.1/24"
wait_for "$T/a.log" "hook-output-a-up" 3 || fail "a: the up hook's output is not in the log"

ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
wait_for "$T/a.events" "^connect " 5 || fail "a: connect hook did not run"
wait_for "$T/b.events" "^connect " 5 || fail "b: connect hook did not run"
ping_ok "$ns2" 198.18.0.1 5 || fail "b -> a"

# env FILE: each variable must be exactly VALUE ("" = must be absent).
env_is()
{
	local file=$1 var=$2 want=$3 got
	got=$(sed -n "s/^$var=//p" "$file")
	[ "$got" = "$want" ] || fail "$(basename "$file"): $var='$got', want '$want'"
}

# Only PATH, PWD (set by sh itself) and SALTUN_* may reach a hook.
env_clean()
{
	local file=$1 bad
	bad=$(grep -Ev '^(PATH|PWD|SALTUN_[A-Z_]+)=' "$file" || true)
	[ -z "$bad" ] || fail "$(basename "$file"): the daemon's environment leaked: $bad"
	! grep -q CANARY "$file" || fail "$(basename "$file"): canary leaked"
}

check_env()
{
	local name=$1 event=$2 session=$3 peer=$4 peer_addr=$5 f=$T/$1.$2.env
	[ "$(grep -c '^SALTUN_EVENT=' "$f")" -eq 1 ] || fail "$name: $event ran $(grep -c '^SALTUN_EVENT=' "$f") times"
	env_clean "$f"
	env_is "$f" SALTUN_EVENT "$event"
	env_is "$f" SALTUN_SESSION "$session"
	env_is "$f" SALTUN_DEVICE tun0
	env_is "$f" SALTUN_TYPE tun
	env_is "$f" SALTUN_MTU "$mtu"
	env_is "$f" SALTUN_PEER_KEY "$(key_pub "$peer")"
	if [ -n "$peer_addr" ]; then
		env_is "$f" SALTUN_PEER_ADDRESS "$peer_addr"
		env_is "$f" SALTUN_PEER_PORT 5555
	fi
	# Where known: our port is the listening one.
	if grep -q '^SALTUN_LOCAL_PORT=' "$f"; then
		env_is "$f" SALTUN_LOCAL_PORT 5555
	fi
}

check_env a up site2 b ""
check_env a connect site2 b 192.0.2.2
check_env b connect site1 a 192.0.2.1
log "a's connect hook environment: $(grep '^SALTUN_' "$T/a.connect.env" | tr '\n' ' ')"

# A clean stop of a: disconnect then down, once each; b is not told yet
# (its keys merely age), so b has run nothing more.
saltun_stop a
[ "$STOP_STATUS" -eq 0 ] || fail "a: exit status $STOP_STATUS after SIGTERM"
want_a="up tun0 site2 $mtu
connect tun0 site2 192.0.2.2 5555
disconnect tun0 site2 192.0.2.2 5555
down tun0 site2"
[ "$(cat "$T/a.events")" = "$want_a" ] ||
	fail "a's hooks ran: $(paste -sd '|' "$T/a.events"), want: $(paste -sd '|' <<<"$want_a")"
check_env a disconnect site2 b 192.0.2.2
check_env a down site2 b ""
! dev_exists "$ns1" tun0 || fail "a: tun0 remains after stop"
[ "$(grep -c . "$T/b.events")" -eq 2 ] || fail "b ran more than up and connect: $(paste -sd '|' "$T/b.events")"

saltun_stop b
[ "$STOP_STATUS" -eq 0 ] || fail "b: exit status $STOP_STATUS after SIGTERM (a failed hook must not change it)"
want_b="up tun0 site1 $mtu
connect tun0 site1 192.0.2.1 5555
disconnect tun0 site1 192.0.2.1 5555
down tun0 site1"
[ "$(cat "$T/b.events")" = "$want_b" ] ||
	fail "b's hooks ran: $(paste -sd '|' "$T/b.events"), want: $(paste -sd '|' <<<"$want_b")"
check_env b down site1 a ""
grep -qE "site1: disconnect hook failed.*(status|exit).* 3" "$T/b.log" ||
	fail "b: the failed disconnect hook (exit 3) is not logged with its status"
