#!/bin/bash
#
# Privilege separation (saltun(8) SECURITY): the daemon started as root is
# two processes.  The network process, which parses every packet, runs as
# the unprivileged user (saltun if it exists, else nobody) with no
# capabilities and no_new_privs; the privileged one keeps root for devices
# and hooks.  Checked here from /proc/PID/status, and by what still works:
# connect, disconnect, up and down hooks run as root; a session added by
# reload gets its device; a clean stop runs every down hook as root and
# removes the control socket; when the network process dies, the
# privileged one runs the down hooks it left behind and exits with 1.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tun-a 198.18.0.1/24         │            │  tun-b 198.18.0.2/24         │
#   │    saltun "a" [b] (+ [x])    │ ==tunnel== │    saltun "b" [a]            │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
need_cmd pgrep
test_start 90

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24

key_gen a
key_gen b
key_gen x

# Who the network process must be: the daemon's default.
if id -u saltun >/dev/null 2>&1; then
	want_user=saltun
else
	want_user=nobody
fi
want_uid=$(id -u "$want_user")
want_gid=$(id -g "$want_user")
[ "$want_uid" -ne 0 ] || skip "user $want_user is root here"

# Every hook appends "EVENT DEVICE UID" to $T/NAME.events.
rec=$T/record
cat >"$rec" <<EOF
#!/bin/sh
echo "\$1 \$2 \$(id -u)" >>"$T/\$3.events"
EOF
chmod 755 "$rec"

session_conf()
{
	local name=$1 session=$2 peer=$3 endpoint=$4 addr=$5 dev=$6
	cat <<EOF
[$session]
public_key = $(key_pub "$peer")
endpoint = $endpoint
type = tun
device = $dev
up = ip addr add $addr dev %d && ip link set %d up && $rec up %d $name
connect = $rec connect %d $name
disconnect = $rec disconnect %d $name
down = ip link show dev %d >/dev/null; $rec down %d $name
EOF
}

{
	conf_global a 0.0.0.0:5555
	session_conf a b b 192.0.2.2:5555 198.18.0.1/24 tun-a
} >"$T/a.conf"
{
	conf_global b 0.0.0.0:5555
	session_conf b a a 192.0.2.1:5555 198.18.0.2/24 tun-b
} >"$T/b.conf"

saltun_start "$ns1" a "$T/a.conf"
saltun_start "$ns2" b "$T/b.conf"
ping_wait "$ns1" 198.18.0.2 15 || fail "no ping through the tunnel"
log "tunnel up"

# ---------------------------------------------------------------- the processes
net=$(saltun_net_pid a) || fail "a: no network process (comm saltun-net) under ${PIDS[a]}"
st=/proc/$net/status
field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$2"; }

[ "$(field Uid "$st")" = "$want_uid $want_uid $want_uid $want_uid" ] ||
	fail "network process: Uid '$(field Uid "$st")', want $want_uid x4"
[ "$(field Gid "$st")" = "$want_gid $want_gid $want_gid $want_gid" ] ||
	fail "network process: Gid '$(field Gid "$st")', want $want_gid x4"
[ -z "$(field Groups "$st")" ] || fail "network process: supplementary groups '$(field Groups "$st")'"
for cap in CapInh CapPrm CapEff CapAmb; do
	[ "$(field "$cap" "$st")" = 0000000000000000 ] ||
		fail "network process: $cap $(field "$cap" "$st")"
done
# Started as root with every capability, the bounding set goes too.
[ "$(field CapBnd "$st")" = 0000000000000000 ] || fail "network process: CapBnd $(field CapBnd "$st")"
[ "$(field NoNewPrivs "$st")" = 1 ] || fail "network process: NoNewPrivs $(field NoNewPrivs "$st")"
# It holds the sockets and the device: the work is done there.
ls -l "/proc/$net/fd" | grep -q "/dev/net/tun" || fail "network process does not hold the tun device"
[ "$(awk '/^Uid:/ { print $2 }' "/proc/${PIDS[a]}/status")" = 0 ] || fail "privileged process is not root"
wait_for "$T/a.log" "network process $net runs as $want_user \\(uid $want_uid, gid $want_gid\\)" 2 ||
	fail "a: no log line for the drop"
log "network process $net: uid/gid $want_uid/$want_gid, no groups, CapEff/CapPrm/CapBnd 0, NoNewPrivs 1"
log "processes: $(ps -o user=,pid=,ppid=,comm= -p "${PIDS[a]},$net" | tr -s ' ' | paste -sd ';')"

# ---------------------------------------------------------------- hooks as root
wait_for "$T/a.events" "^connect tun-a 0$" 10 || fail "a: connect hook did not run as root: $(cat "$T/a.events")"
grep -qx "up tun-a 0" "$T/a.events" || fail "a: up hook did not run as root: $(cat "$T/a.events")"
log "up and connect hooks ran as root"

# ---------------------------------------------------------------- reload adds a session
session_conf a x x 192.0.2.99:5555 198.18.9.1/24 tun-x >>"$T/a.conf"
"$SALTUN" reload -s "$T/a.sock" >"$T/reload.out" 2>&1 || fail "reload: $(cat "$T/reload.out")"
grep -q "1 added, 0 removed, 0 restarted, 1 unchanged" "$T/reload.out" || fail "reload: $(cat "$T/reload.out")"
dev_exists "$ns1" tun-x || fail "the session added by reload has no device"
wait_for "$T/a.events" "^up tun-x 0$" 5 || fail "up hook of the added session did not run as root"
ping_ok "$ns1" 198.18.0.2 3 || fail "the reload disturbed the tunnel"
log "reload as root through the network process: tun-x created, its up hook ran as root"

# ---------------------------------------------------------------- clean stop
saltun_stop a 10
[ "$STOP_STATUS" -eq 0 ] || fail "a exited with $STOP_STATUS"
pid_alive "$net" && fail "the network process outlived the daemon"
grep -qx "disconnect tun-a 0" "$T/a.events" || fail "disconnect hook not run as root: $(cat "$T/a.events")"
grep -qx "down tun-a 0" "$T/a.events" || fail "down hook of tun-a not run as root: $(cat "$T/a.events")"
grep -qx "down tun-x 0" "$T/a.events" || fail "down hook of tun-x not run as root: $(cat "$T/a.events")"
[ ! -e "$T/a.sock" ] || fail "the control socket was left behind"
dev_exists "$ns1" tun-a && fail "tun-a left behind"
log "clean stop: disconnect and both down hooks ran as root, socket removed, devices gone"

# ---------------------------------------------------------------- the network process dies
net=$(saltun_net_pid b) || fail "b: no network process"
kill -KILL "$net"
for _ in $(seq 50); do
	pid_alive "${PIDS[b]}" || break
	sleep 0.1
done
bg_stop b 5
[ "$STOP_STATUS" -eq 1 ] || fail "b: exit status $STOP_STATUS after its network process died, want 1"
wait_for "$T/b.log" "network process died: Killed" 1 || fail "b: the death is not logged"
grep -qx "down tun-b 0" "$T/b.events" || fail "b: no down hook after the crash: $(cat "$T/b.events")"
[ ! -e "$T/b.sock" ] || fail "b: the control socket was left behind"
log "network process killed: the privileged one ran the down hook as root and exited 1"
exit 0
