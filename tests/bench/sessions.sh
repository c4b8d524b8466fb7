#!/bin/bash
#
# Memory per session: the resident size of a daemon holding N configured
# tun sessions (default 1000) against one holding a single session.
#
#   ┌───────────────────────────────────────────────┐
#   │ namespace sbench-$$-sess (nothing outside it) │
#   │   saltun run: listen 127.0.0.1:5555,          │
#   │   sessions s0001 … sN, devices sb0001 … sbN,  │
#   │   no endpoint: every session waits for a peer │
#   └───────────────────────────────────────────────┘
#
# Each session gets a fresh peer key (saltun genkey | saltun pubkey) and its
# own tun device; devices are kernel memory and do not appear in the
# daemon's RSS, which is what this measures: (VmRSS(N) - VmRSS(1)) / (N - 1).
# It also reports the kernel's unreclaimable slab growth per device (a
# machine-wide counter, so only indicative), the daemon's open descriptors
# and how long startup took.
#
#   sessions.sh --saltun PATH [--sessions N] [--json] [--keep]
#
# Root only (exit 77 otherwise).  Exit 0 with the figures, 1 when the
# N-session daemon did not start (the reason is printed, and put in the
# JSON as "error").

set -uo pipefail

SALTUN=""
N=1000
JSON=0
KEEP=0

usage()
{
	echo "usage: sessions.sh --saltun PATH [--sessions N] [--json] [--keep]"
}

while [ $# -gt 0 ]; do
	case $1 in
	--saltun) SALTUN=${2:?}; shift 2 ;;
	--sessions) N=${2:?}; shift 2 ;;
	--json) JSON=1; shift ;;
	--keep) KEEP=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 2 ] && [ "$N" -le 9999 ] ||
	{ echo "sessions.sh: --sessions: expected 2..9999, got '$N'" >&2; exit 2; }
[ -n "$SALTUN" ] && [ -x "$SALTUN" ] || { echo "sessions.sh: --saltun PATH required (an executable)" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
	echo "sessions.sh: skipped: needs root (a network namespace and tun devices)" >&2
	exit 77
fi
[ -c /dev/net/tun ] || { echo "sessions.sh: skipped: no /dev/net/tun" >&2; exit 77; }

NS="sbench-$$-sess"
T=$(mktemp -d "${TMPDIR:-/tmp}/saltun-sessions.XXXXXX")
NS_MADE=0
DPID=""

cleanup()
{
	trap - EXIT INT TERM
	if [ -n "$DPID" ]; then
		daemon_stop "$DPID"
	fi
	[ "$NS_MADE" = 1 ] && { ip netns del "$NS" 2>/dev/null || echo "# could not delete namespace $NS" >&2; }
	if [ "$KEEP" = 1 ]; then
		echo "# --keep: left $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# TERM, then KILL after 10 s (1000 devices take a while to remove); reaps.
daemon_stop()
{
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	DPID=""
}

# kB field NAME of /proc/PID/status (0 when absent).
proc_status_kb()
{
	awk -v k="$2:" '$1 == k { v = $2 } END { print v + 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

meminfo_kb()
{
	awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo
}

umask 077
ip netns add "$NS" || { echo "sessions.sh: ip netns add $NS failed" >&2; exit 1; }
NS_MADE=1
ip -n "$NS" link set lo up

"$SALTUN" genkey >"$T/self.key" || { echo "sessions.sh: saltun genkey failed" >&2; exit 1; }

# conf_write FILE COUNT: COUNT waiting tun sessions.
conf_write()
{
	local file=$1 count=$2 i
	{
		echo "[global]"
		echo "private_key = $T/self.key"
		echo "listen = 127.0.0.1:5555"
		echo "log = stderr"
		echo "control = $T/control.sock"
		echo
		for ((i = 1; i <= count; i++)); do
			printf '[s%04d]\npublic_key = %s\ntype = tun\ndevice = sb%04d\n\n' \
				"$i" "${PEERS[i - 1]}" "$i"
		done
	} >"$file"
}

t0=$(date +%s.%N)
PEERS=()
# Real keys, as a user pastes them: about one in 64 starts with '/', which
# the config must still read as inline base64 (not a file name).
for ((i = 0; i < N; i++)); do
	k=$("$SALTUN" genkey | "$SALTUN" pubkey) || { echo "sessions.sh: saltun genkey | pubkey failed" >&2; exit 1; }
	PEERS+=("$k")
done
keygen_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
conf_write "$T/one.conf" 1
conf_write "$T/many.conf" "$N"

# run_daemon LABEL CONF COUNT: start, wait for "running: COUNT session",
# let it settle, and leave RSS_KB, ANON_KB, FDS, DEVS, START_S, ERR set.
run_daemon()
{
	local label=$1 conf=$2 count=$3 t0 slab0 log=$T/$1.log
	RSS_KB=0 ANON_KB=0 FDS=0 DEVS=0 START_S=0 ERR="" SLAB_KB=0
	if ! "$SALTUN" check -c "$conf" >"$T/$label.check" 2>&1; then
		ERR="saltun check refused the $count-session config: $(grep -v '^ ' "$T/$label.check" | head -n 3 | tr '\n' ' ')"
		return 1
	fi
	slab0=$(meminfo_kb SUnreclaim)
	t0=$(date +%s.%N)
	: >"$log"
	ip netns exec "$NS" "$SALTUN" run -c "$conf" </dev/null >"$log" 2>&1 &
	DPID=$!
	while ! grep -q "running: $count session" "$log"; do
		if ! kill -0 "$DPID" 2>/dev/null; then
			wait "$DPID"
			ERR="daemon exited (status $?) before running $count sessions: $(tail -n 3 "$log" | tr '\n' ' ')"
			DPID=""
			return 1
		fi
		if awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { exit !(b - a > 180) }'; then
			ERR="no 'running: $count sessions' line within 180 s: $(tail -n 3 "$log" | tr '\n' ' ')"
			daemon_stop "$DPID"
			return 1
		fi
		sleep 0.1
	done
	START_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	# Settle: the first ticks run, lazy pages are touched.
	sleep 1
	# The daemon is both its processes when started as root (privilege
	# separation): the network one holds the sessions, the root one a
	# copy of the config.  Both count.
	local p
	for p in "$DPID" $(pgrep -P "$DPID" -x saltun-net); do
		RSS_KB=$((RSS_KB + $(proc_status_kb "$p" VmRSS)))
		ANON_KB=$((ANON_KB + $(proc_status_kb "$p" RssAnon)))
		FDS=$((FDS + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
	done
	DEVS=$(ip -n "$NS" -o link show type tun 2>/dev/null | wc -l)
	SLAB_KB=$(($(meminfo_kb SUnreclaim) - slab0))
	# A session whose device failed is logged and left out: count them.
	local failed
	failed=$(grep -c -i "cannot\|failed\|error" "$log")
	if [ "$DEVS" -ne "$count" ]; then
		ERR="$DEVS of $count devices exist ($failed error lines): $(grep -i -m 3 "cannot\|failed\|error" "$log" | tr '\n' ' ')"
	fi
	daemon_stop "$DPID"
	[ -z "$ERR" ]
}

run_daemon one "$T/one.conf" 1
rc1=$?
R1=$RSS_KB A1=$ANON_KB F1=$FDS S1=$START_S E1=$ERR
run_daemon many "$T/many.conf" "$N"
rcn=$?
RN=$RSS_KB AN=$ANON_KB FN=$FDS SN=$START_S DN=$DEVS EN=$ERR SLABN=$SLAB_KB

status=0
err=""
if [ $rc1 -ne 0 ]; then
	err="1-session daemon: $E1"
	status=1
elif [ $rcn -ne 0 ]; then
	err="$N-session daemon: $EN"
	status=1
fi
# Per-session figures only when both daemons ran: null otherwise.
per=null per_anon=null slab_per=null
if [ $status = 0 ]; then
	per=$(awk -v a="$R1" -v b="$RN" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / (n - 1) }')
	per_anon=$(awk -v a="$A1" -v b="$AN" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / (n - 1) }')
	slab_per=$(awk -v s="$SLABN" -v n="$N" 'BEGIN { printf "%.1f", s / n }')
fi

if [ "$JSON" = 1 ]; then
	jq -n --argjson n "$N" --argjson r1 "$R1" --argjson rn "$RN" --argjson a1 "$A1" \
		--argjson an "$AN" --argjson per "$per" --argjson pera "$per_anon" \
		--argjson f1 "$F1" --argjson fn "$FN" --argjson devs "$DN" --argjson s1 "$S1" \
		--argjson sn "$SN" --argjson slab "$slab_per" --argjson keygen "$keygen_s" \
		--arg err "$err" --argjson ok "$([ $status = 0 ] && echo true || echo false)" \
		'{sessions: $n, started: $ok, rss_kib_1: $r1, rss_kib_n: $rn, anon_kib_1: $a1,
		  anon_kib_n: $an, kib_per_session: $per, anon_kib_per_session: $pera,
		  fds_1: $f1, fds_n: $fn, devices: $devs, startup_s_1: $s1, startup_s_n: $sn,
		  kernel_slab_kib_per_device: $slab, keygen_s: $keygen,
		  error: (if $err == "" then null else $err end)}'
else
	echo "sessions: $N configured tun sessions, no endpoint (waiting)"
	echo "  1 session:  VmRSS $R1 KiB (anon $A1), $F1 fds, up in ${S1} s"
	echo "  $N sessions: VmRSS $RN KiB (anon $AN), $FN fds, $DN devices, up in ${SN} s"
	if [ -z "$err" ]; then
		echo "  daemon RSS per session: $per KiB (anon $per_anon KiB); kernel slab per device ~$slab_per KiB"
	else
		echo "  FAILED: $err"
	fi
fi
exit $status
