# shellcheck shell=bash
#
# Helpers for saltun's end-to-end tests.  Every test in this directory
# sources this file, calls `need_root` and `test_start SECONDS`, builds its
# namespaces, runs real `saltun run` processes and exits 0 (pass), 1 (fail)
# or 77 (skipped: not root, no /dev/net/tun, no `ip netns`, a tool missing).
#
# Addresses: underlay only 192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32;
# overlay only 198.18.0.0/15, fd00::/8.  Every interface lives inside a
# namespace this test created, so no packet ever leaves them.
#
# What a test may rely on after test_start:
#   $T            private temp dir (mode 700); logs, configs and keys go here
#   $SALTUN       the daemon binary (from the environment; make check sets it)
#   ns_name LABEL / ns_add NS      unique namespace names, created and recorded
#   nsx NS CMD...                  run CMD inside NS
#   veth_link NS1 IF1 ADDR1 NS2 IF2 ADDR2
#   key_gen NAME / key_pub NAME    $T/NAME.key and its public key
#   saltun_start NS NAME CONF [ARGS...] / saltun_stop NAME / saltun_kill NAME
#   bg_start NAME CMD...           any other background process, recorded
#   wait_for LOG PATTERN TIMEOUT / wait_count LOG PATTERN N TIMEOUT
#   ping_ok NS ADDR [COUNT] / ping_wait NS ADDR TIMEOUT
#   log MSG / fail MSG / skip MSG
# The EXIT trap (cleanup) ends only the processes recorded above, deletes
# only the namespaces recorded above, prints every log in $T when the test
# failed, and removes $T (kept when KEEP=1).

set -eEuo pipefail
umask 077 # keys and configs in $T must not be readable by others

TEST_NAME=$(basename "$0" .sh)
TEST_T0=$(date +%s.%N)
T=""
NAMESPACES=()
declare -A PIDS=()        # name -> pid of every background process we started
WATCHDOG_PID=""
WATCHDOG_SECONDS=0

log()
{
	printf '# [%6.2fs] %s\n' "$(elapsed_since "$TEST_T0")" "$*"
}

fail()
{
	printf 'FAIL: %s: %s\n' "$TEST_NAME" "$*" >&2
	exit 1
}

skip()
{
	printf 'SKIP: %s: %s\n' "$TEST_NAME" "$*" >&2
	exit 77
}

# Seconds (with fraction) elapsed since a `date +%s.%N` stamp.
elapsed_since()
{
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

need_root()
{
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	[ -c /dev/net/tun ] || skip "no /dev/net/tun"
	ip netns list >/dev/null 2>&1 || skip "no 'ip netns' (iproute2 with netns support)"
}

need_cmd()
{
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs '$c'"
	done
}

# Locate the daemon: $SALTUN from the environment (make check exports it),
# else `saltun` in PATH, said out loud so nobody tests an old install by
# mistake.
find_saltun()
{
	if [ -n "${SALTUN:-}" ]; then
		[ -x "$SALTUN" ] || fail "SALTUN=$SALTUN is not an executable"
		return 0
	fi
	SALTUN=$(command -v saltun 2>/dev/null) ||
		skip "SALTUN not set and no saltun in PATH (run via make check, or export SALTUN=/path/to/saltun)"
	echo "# SALTUN not set: using $SALTUN from PATH" >&2
}

# Begin the test: temp dir, traps, and a watchdog that ends the test after
# SECONDS whatever it is waiting for.
test_start()
{
	WATCHDOG_SECONDS=$1
	need_cmd ip ping awk timeout ps
	# Only the harness's own self-test runs without a daemon.
	[ "${LIB_NO_SALTUN:-0}" = 1 ] || find_saltun
	T=$(mktemp -d "${TMPDIR:-/tmp}/saltun-$TEST_NAME.XXXXXX")
	trap cleanup EXIT
	trap 'echo "FAIL: $TEST_NAME: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR
	# A signal is handled only once the foreground command returns; the
	# watchdog ends that command too, so the trap runs promptly.
	trap 'trap - TERM INT; fail "stopped by signal (watchdog after ${WATCHDOG_SECONDS}s?)"' TERM INT
	watchdog_start "$WATCHDOG_SECONDS"
	log "test $TEST_NAME, pid $$, temp dir $T, saltun ${SALTUN:-none}, time limit ${WATCHDOG_SECONDS}s"
}

watchdog_start()
{
	local secs=$1 self=$$
	(
		trap - ERR EXIT INT
		# cleanup TERMs us; take our sleep along rather than orphan it.
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		sleep "$secs" >/dev/null 2>&1 &
		sp=$!
		wait "$sp"
		echo "FAIL: $TEST_NAME: watchdog: test exceeded ${secs}s" >&2
		kill -TERM "$self" 2>/dev/null || true
		# Then the test's own foreground children, so the TERM trap runs.
		for p in $(ps -o pid= --ppid "$self"); do
			[ "$p" = "$BASHPID" ] || kill -TERM "$p" 2>/dev/null || true
		done
	) </dev/null &
	WATCHDOG_PID=$!
}

# True while pid is alive (not exited, not a zombie waiting for us).
pid_alive()
{
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# TERM, then KILL after `grace` seconds; reaps it.  Its exit status (128 +
# signal when killed) is left in STOP_STATUS: not printed, because a
# command substitution would run this in a subshell that cannot reap.
STOP_STATUS=""
pid_stop()
{
	local pid=$1 grace=${2:-3} i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	if pid_alive "$pid"; then
		echo "# pid $pid ignored SIGTERM for ${grace}s: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	STOP_STATUS=0
	# shellcheck disable=SC2034 # read by the tests
	wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

cleanup()
{
	local rc=$? name ns f
	trap - ERR EXIT TERM INT
	set +eE
	if [ -n "$WATCHDOG_PID" ]; then
		kill -TERM "$WATCHDOG_PID" 2>/dev/null
		wait "$WATCHDOG_PID" 2>/dev/null
	fi
	for name in "${!PIDS[@]}"; do
		pid_stop "${PIDS[$name]}" 3
	done
	PIDS=()
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || echo "# could not delete namespace $ns" >&2
	done
	# A sanitizer build reports to the daemon's stderr, sometimes only at
	# exit (leaks), after every check of the test passed.
	if [ "$rc" -eq 0 ] && [ -n "$T" ] && [ -d "$T" ] &&
		grep -lE "ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:" "$T"/*.log >/dev/null 2>&1; then
		echo "FAIL: $TEST_NAME: sanitizer report in $(grep -lE "Sanitizer|runtime error:" "$T"/*.log | xargs -n1 basename | paste -sd ' ')" >&2
		rc=1
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "$T" ] && [ -d "$T" ]; then
		for f in "$T"/*.log; do
			[ -e "$f" ] || continue
			echo "======== $(basename "$f") ========"
			tail -n 200 "$f"
		done
	fi
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "${KEEP:-0}" = 1 ]; then
			echo "# KEEP=1: left $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	case $rc in
	0) echo "PASS: $TEST_NAME ($(elapsed_since "$TEST_T0")s)" ;;
	77) ;;
	*) echo "FAIL: $TEST_NAME (exit $rc, $(elapsed_since "$TEST_T0")s)" ;;
	esac
	exit "$rc"
}

# ------------------------------------------------------------ namespaces

# The name this test uses for LABEL: unique per test and process.
ns_name()
{
	echo "saltun-$TEST_NAME-$$-$1"
}

ns_add()
{
	local ns=$1
	ip netns add "$ns" || fail "ip netns add $ns"
	NAMESPACES+=("$ns")
	ip -n "$ns" link set lo up
	# No duplicate address detection: addresses are usable at once, and
	# nothing else shares these links.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0
}

nsx()
{
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# Add ADDRS to IF in NS: a comma-separated list of CIDRs, or "-" for none.
addr_add()
{
	local ns=$1 ifname=$2 addrs=$3 a
	[ "$addrs" = - ] && return 0
	for a in ${addrs//,/ }; do
		case $a in
		*:*) ip -n "$ns" addr add "$a" dev "$ifname" nodad ;;
		*) ip -n "$ns" addr add "$a" dev "$ifname" ;;
		esac
	done
}

# A veth pair from IF1 in NS1 to IF2 in NS2, addressed and up.
veth_link()
{
	local ns1=$1 if1=$2 a1=$3 ns2=$4 if2=$5 a2=$6
	ip -n "$ns1" link add name "$if1" type veth peer name "$if2" netns "$ns2"
	addr_add "$ns1" "$if1" "$a1"
	addr_add "$ns2" "$if2" "$a2"
	ip -n "$ns1" link set "$if1" up
	ip -n "$ns2" link set "$if2" up
}

# ----------------------------------------------------------- processes

# Start CMD in the background as NAME; output to $T/NAME.log (appended, so
# a restarted process keeps its history).
bg_start()
{
	local name=$1
	shift
	[ -z "${PIDS[$name]:-}" ] || fail "bg_start: $name already running"
	echo "---- $(date +%T.%N) start: $*" >>"$T/$name.log"
	"$@" </dev/null >>"$T/$name.log" 2>&1 &
	PIDS[$name]=$!
}

# Stop NAME (TERM, KILL after GRACE s); exit status in STOP_STATUS.
bg_stop()
{
	local name=$1 grace=${2:-3} pid
	pid=${PIDS[$name]:-}
	[ -n "$pid" ] || fail "bg_stop: $name not running"
	unset "PIDS[$name]"
	pid_stop "$pid" "$grace"
}

bg_alive()
{
	[ -n "${PIDS[$1]:-}" ] && pid_alive "${PIDS[$1]}"
}

# ---------------------------------------------------------------- saltun

# $T/NAME.key and $T/NAME.pub.
key_gen()
{
	"$SALTUN" genkey >"$T/$1.key" || fail "saltun genkey"
	"$SALTUN" pubkey <"$T/$1.key" >"$T/$1.pub" || fail "saltun pubkey"
	[ -s "$T/$1.pub" ] || fail "saltun pubkey printed nothing"
}

key_pub()
{
	cat "$T/$1.pub"
}

# $T/NAME.psk
psk_gen()
{
	"$SALTUN" genpsk >"$T/$1.psk" || fail "saltun genpsk"
}

# The daemon for NAME in NS, after `saltun check` accepted CONF.  Its log is
# $T/NAME.log.  SALTUN_OFFLOAD, when set, is passed on.  Extra ARGS (e.g. --test-time-scale 20) go to `saltun run`.
saltun_start()
{
	local ns=$1 name=$2 conf=$3
	shift 3
	if ! "$SALTUN" check -c "$conf" >"$T/$name.check" 2>&1; then
		cat "$T/$name.check" >&2
		fail "saltun check rejected $conf"
	fi
	# SALTUN_OFFLOAD (off: the plain data path) reaches the daemon even
	# when the caller set it without exporting it.
	bg_start "$name" ip netns exec "$ns" \
		env ${SALTUN_OFFLOAD+"SALTUN_OFFLOAD=$SALTUN_OFFLOAD"} "$SALTUN" run -c "$conf" -v "$@"
	# A daemon that cannot start says so at once: catch it here, not as a
	# mysterious ping failure later.
	sleep 0.3
	bg_alive "$name" || fail "saltun $name exited at startup"
}

# Clean stop (SIGTERM); exit status in STOP_STATUS.
saltun_stop()
{
	bg_stop "$1" "${2:-5}"
}

# PID of daemon NAME's network process (privilege separation, saltun(8)):
# the one that owns the sockets and does the work; PIDS[NAME] is the
# privileged process.  Empty when there is none (yet).
saltun_net_pid()
{
	local i
	for i in $(seq 50); do
		pgrep -P "${PIDS[$1]}" -x saltun-net && return 0
		sleep 0.1
	done
	return 1
}

# SIGKILL, no cleanup by the daemon: a crash of both its processes.
saltun_kill()
{
	local name=$1 pid net
	pid=${PIDS[$name]}
	net=$(pgrep -P "$pid" -x saltun-net || true)
	unset "PIDS[$name]"
	kill -KILL "$pid" $net
	wait "$pid" 2>/dev/null || true
	[ -z "$net" ] || pid_stop "$net" 5
}

# The device of session SESSION in NS exists.
dev_exists()
{
	ip -n "$1" link show dev "$2" >/dev/null 2>&1
}

# --------------------------------------------------------------- waiting

# Wait up to TIMEOUT s for an extended regex in LOG; 1 on timeout.
wait_for()
{
	wait_count "$1" "$2" 1 "$3"
}

# Wait up to TIMEOUT s for N lines matching PATTERN in LOG.
wait_count()
{
	local file=$1 pattern=$2 n=$3 timeout=$4 t0
	t0=$(date +%s.%N)
	while :; do
		if [ "$(count_lines "$file" "$pattern")" -ge "$n" ]; then
			return 0
		fi
		if awk -v e="$(elapsed_since "$t0")" -v t="$timeout" 'BEGIN { exit !(e >= t) }'; then
			echo "# timeout after ${timeout}s waiting for $n x /$pattern/ in $(basename "$file")" >&2
			return 1
		fi
		sleep 0.1
	done
}

# Number of lines matching PATTERN in FILE (0 when FILE does not exist).
count_lines()
{
	local c
	c=$(grep -E -c -- "$2" "$1" 2>/dev/null) || true
	echo "${c:-0}"
}

# All COUNT (default 3) echo requests from NS to ADDR answered.
ping_ok()
{
	local ns=$1 addr=$2 count=${3:-3}
	ip netns exec "$ns" ping -q -n -c "$count" -i 0.2 -W 1 -w $((count / 5 + 3)) "$addr" >/dev/null 2>&1
}

# No echo request from NS to ADDR answered (COUNT tries).
ping_none()
{
	local ns=$1 addr=$2 count=${3:-3}
	! ip netns exec "$ns" ping -q -n -c "$count" -i 0.2 -W 1 -w $((count / 5 + 2)) "$addr" >/dev/null 2>&1
}

# Ping until one answer or TIMEOUT s: the first packet starts the handshake.
ping_wait()
{
	local ns=$1 addr=$2 timeout=$3 t0
	t0=$(date +%s.%N)
	until ip netns exec "$ns" ping -q -n -c 1 -W 1 "$addr" >/dev/null 2>&1; do
		if awk -v e="$(elapsed_since "$t0")" -v t="$timeout" 'BEGIN { exit !(e >= t) }'; then
			echo "# no answer from $addr in $ns within ${timeout}s" >&2
			return 1
		fi
		sleep 0.2
	done
	log "$addr answers from ${ns##*-} after $(elapsed_since "$t0")s"
}

# Average RTT in ms of COUNT pings (for the record, never asserted).
ping_rtt()
{
	local ns=$1 addr=$2 count=${3:-5}
	{ ip netns exec "$ns" ping -q -n -c "$count" -i 0.2 -W 1 "$addr" 2>/dev/null || true; } |
		awk -F/ '/^rtt|^round-trip/ { print $5 }'
}

# ---------------------------------------------------------------- config

# The [global] section of daemon NAME: its key, LISTEN (omit: dial out
# only) and its own control socket, so daemons in different namespaces,
# which share one filesystem, never collide on the default path.
conf_global()
{
	local name=$1 listen=${2:-}
	echo "[global]"
	echo "private_key = $T/$name.key"
	[ -z "$listen" ] || echo "listen = $listen"
	echo "control = $T/$name.sock"
	echo
}

# ---------------------------------------------------------------- iperf3

# An iperf3 server NAME in NS bound to ADDR, ready when this returns.
iperf_server()
{
	local ns=$1 name=$2 addr=$3
	# --forceflush: "Server listening" reaches the log file at once.
	bg_start "$name" ip netns exec "$ns" iperf3 -s --forceflush -B "$addr" -p 5201
	wait_for "$T/$name.log" "Server listening" 5 || fail "iperf3 server $name did not start"
}

# SECS of iperf3 from NS to ADDR (extra ARGS: -R for the other direction);
# output in $T/OUT.log; prints the receiver's Mbit/s.
iperf_client()
{
	local ns=$1 addr=$2 secs=$3 out=$4 mbit
	shift 4
	timeout $((secs + 30)) ip netns exec "$ns" iperf3 -c "$addr" -p 5201 -t "$secs" -f m "$@" \
		>"$T/$out.log" 2>&1 || fail "iperf3 $out failed (see $out.log)"
	mbit=$(awk '/receiver$/ { v = $(NF - 2) } END { print v }' "$T/$out.log")
	[ -n "$mbit" ] || fail "iperf3 $out: no receiver line"
	echo "$mbit"
}

# --------------------------------------------------------------- tcpdump

# Capture on IF in NS into $T/NAME.pcap (optional pcap FILTER words).
# --immediate-mode: otherwise packets wait in the kernel ring's block and a
# capture stopped soon after the traffic misses them.
capture_start()
{
	local ns=$1 ifname=$2 name=$3
	shift 3
	bg_start "$name" ip netns exec "$ns" tcpdump --immediate-mode -U -Z root -n -i "$ifname" \
		-w "$T/$name.pcap" "$@"
	wait_for "$T/$name.log" "listening on" 5 || fail "tcpdump $name did not start"
}

capture_stop()
{
	bg_stop "$1" 3
	[ "$STOP_STATUS" -eq 0 ] || fail "tcpdump $1 exited with $STOP_STATUS"
}

# Packets in $T/NAME.pcap matching the pcap FILTER words.
capture_count()
{
	local name=$1
	shift
	tcpdump -n -r "$T/$name.pcap" "$@" 2>/dev/null | wc -l
}

# The MTU of DEV in NS.
dev_mtu()
{
	ip -n "$1" -o link show dev "$2" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'
}

# COUNT (default 3) pings of SIZE payload bytes with don't-fragment set.
ping_df()
{
	local ns=$1 addr=$2 size=$3 count=${4:-3}
	ip netns exec "$ns" ping -q -n -c "$count" -i 0.2 -W 1 -M "do" -s "$size" "$addr" >/dev/null 2>&1
}

# STRING with every extended-regex metacharacter escaped (base64 keys
# contain '+' and '/').
re_quote()
{
	sed 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1"
}
