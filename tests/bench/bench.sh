#!/bin/bash
#
# saltun benchmark: the bare veth and the tunnel, measured in the same run
# on the same two namespaces, figures printed (never asserted: DESIGN §5).
#
#   ┌─────────────────────────────────┐            ┌─────────────────────────────────┐
#   │ sbench-$$-a                     │            │ sbench-$$-b                     │
#   │  iperf3 -c, ping                │            │  iperf3 -s                      │
#   │  tun  198.18.0.1/30             │ ==tunnel== │  tun  198.18.0.2/30             │
#   │    saltun "a" [b]               │            │    saltun "b" [a]               │
#   │  u1 192.0.2.1/24 :5555 ─────────┼─── veth ───┼── u2 192.0.2.2/24 :5555         │
#   └─────────────────────────────────┘            └─────────────────────────────────┘
#
# Per path (veth = 192.0.2.2, saltun/udp and saltun/tcp = 198.18.0.2):
#   - iperf3 TCP, 1 stream, a->b and b->a (-R); 4 streams a->b (-P 4)
#   - iperf3 UDP, unlimited rate (-b 0), 64-byte and 1392-byte payloads:
#     packets/s delivered and loss (1392 = the largest UDP payload that fits
#     the tunnel's 1420-byte MTU unfragmented: 1420 - 20 - 8)
#   - ping RTT, p50 and p99 of --pings echoes at 10 ms intervals
#   - CPU seconds per GB moved during the 1-stream a->b test: both daemons'
#     utime+stime (/proc/PID/stat), and the whole machine's busy time
#     (/proc/stat; includes iperf3 and the kernel on both ends)
# and once: handshakes/s and AEAD rates on one core (hsbench), and the
# daemon's RSS per session with 1000 configured sessions (sessions.sh).
#
# The TCP transport row reads "n/a (not implemented)" when the daemon
# refuses `transport = tcp` at startup (logs "not supported"); it is
# measured otherwise.
#
#   bench.sh --saltun PATH --hsbench PATH [--json FILE] [--seconds N]
#            [--pings N] [--sessions N] [--no-sessions] [--keep]
#
# `make bench` runs it; `make bench BENCH_ARGS="--json out.json"`.
# Root only (exit 77 otherwise, or when a tool is missing).  Exit 0 when
# every figure was measured, 1 when some could not be (they print "error").
# The cleanup ends only processes this script started (by PID) and removes
# only its own namespaces.

set -uo pipefail

SALTUN=""
HSBENCH=""
JSON_OUT=""
SECS=10
PINGS=200
NSESS=1000
DO_SESSIONS=1
KEEP=0
HERE=$(cd "$(dirname "$0")" && pwd)

usage()
{
	sed -n 's/^#   bench.sh/bench.sh/p; s/^#            \[/         [/p' "$0"
}

die_usage()
{
	echo "bench.sh: $*" >&2
	usage >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--saltun) SALTUN=${2:-}; shift 2 || die_usage "--saltun needs a path" ;;
	--hsbench) HSBENCH=${2:-}; shift 2 || die_usage "--hsbench needs a path" ;;
	--json) JSON_OUT=${2:-}; shift 2 || die_usage "--json needs a file" ;;
	--seconds) SECS=${2:-}; shift 2 || die_usage "--seconds needs a number" ;;
	--pings) PINGS=${2:-}; shift 2 || die_usage "--pings needs a number" ;;
	--sessions) NSESS=${2:-}; shift 2 || die_usage "--sessions needs a number" ;;
	--no-sessions) DO_SESSIONS=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die_usage "unknown argument '$1'" ;;
	esac
done
[[ $SECS =~ ^[0-9]+$ ]] && [ "$SECS" -ge 1 ] || die_usage "--seconds: expected a whole number >= 1, got '$SECS'"
[[ $PINGS =~ ^[0-9]+$ ]] && [ "$PINGS" -ge 10 ] || die_usage "--pings: expected a whole number >= 10, got '$PINGS'"
[[ $NSESS =~ ^[0-9]+$ ]] && [ "$NSESS" -ge 2 ] || die_usage "--sessions: expected a whole number >= 2, got '$NSESS'"
[ -n "$SALTUN" ] && [ -x "$SALTUN" ] || die_usage "--saltun: '$SALTUN' is not an executable"
[ -n "$HSBENCH" ] && [ -x "$HSBENCH" ] || die_usage "--hsbench: '$HSBENCH' is not an executable"

skip()
{
	echo "bench.sh: skipped: $*" >&2
	exit 77
}

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, tun devices); try: sudo make bench"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
for c in ip ss iperf3 ping jq awk getconf timeout; do
	command -v "$c" >/dev/null 2>&1 || skip "needs '$c'"
done
ip netns list >/dev/null 2>&1 || skip "no 'ip netns' (iproute2 with netns support)"

# ------------------------------------------------------------ bookkeeping

NSA="sbench-$$-a"
NSB="sbench-$$-b"
NAMESPACES=()
declare -A PIDS=()    # name -> pid, every background process we started
declare -A R=()       # "path.metric" -> figure (a number, or "error")
ERRORS=0
T=$(mktemp -d "${TMPDIR:-/tmp}/saltun-bench.XXXXXX")
umask 077

cleanup()
{
	local name ns
	trap - EXIT INT TERM
	for name in "${!PIDS[@]}"; do
		pid_stop "${PIDS[$name]}"
	done
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || echo "# could not delete namespace $ns" >&2
	done
	if [ "$KEEP" = 1 ]; then
		echo "# --keep: logs left in $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

note()
{
	printf '# %s\n' "$*" >&2
}

# A figure that could not be measured: said once, counted, printed as "error".
err()
{
	echo "bench.sh: $*" >&2
	ERRORS=$((ERRORS + 1))
}

pid_alive()
{
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# TERM, KILL after 5 s, reap.
pid_stop()
{
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

bg_start()
{
	local name=$1
	shift
	: >"$T/$name.log"
	"$@" </dev/null >>"$T/$name.log" 2>&1 &
	PIDS[$name]=$!
}

bg_stop()
{
	local name=$1
	[ -n "${PIDS[$name]:-}" ] || return 0
	pid_stop "${PIDS[$name]}"
	unset "PIDS[$name]"
}

nsx()
{
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

ns_add()
{
	ip netns add "$1" || { echo "bench.sh: ip netns add $1 failed" >&2; exit 1; }
	NAMESPACES+=("$1")
	ip -n "$1" link set lo up
}

# Wait up to SECS for an extended regex in a log; 1 on timeout.
wait_for()
{
	local file=$1 pattern=$2 secs=$3 i
	for ((i = 0; i < secs * 10; i++)); do
		grep -E -q -- "$pattern" "$file" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

fmt()
{
	# fmt DECIMALS VALUE: a number rounded, or the value as is ("error", "n/a").
	if [[ $2 =~ ^-?[0-9.]+(e[-+]?[0-9]+)?$ ]]; then
		awk -v v="$2" -v d="$1" 'BEGIN { printf "%.*f", d, v }'
	else
		printf '%s' "$2"
	fi
}

# Divide (a / b), or "error" when either is not a number or b is 0.
div()
{
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ || b !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ || b + 0 == 0)
			print "error"
		else
			printf "%.6g", a / b
	}'
}

# ------------------------------------------------------------ CPU accounting

CLK_TCK=$(getconf CLK_TCK)

# utime + stime of PID in ticks.  Fields after the ")" that closes comm,
# which may itself contain spaces: state is field 3, utime 14, stime 15.
proc_ticks1()
{
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }
	awk '{ print $12 + $13 }' <<<"$s"
}

# ... of a daemon: the process started and its network process
# (privilege separation: that is where the packets are handled).
proc_ticks()
{
	local t c
	t=$(proc_ticks1 "$1")
	for c in $(pgrep -P "$1" -x saltun-net); do
		t=$((t + $(proc_ticks1 "$c")))
	done
	echo "$t"
}

# Busy ticks of the whole machine: user nice system irq softirq steal
# (guest time is already inside user).
machine_ticks()
{
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# ------------------------------------------------------------ measurements

# iperf3 client in A against ADDR; JSON in $T/OUT.json.  0 on success.
iperf_run()
{
	local out=$1 addr=$2 rc=0
	shift 2
	timeout $((SECS + 30)) ip netns exec "$NSA" iperf3 -c "$addr" -p 5201 -t "$SECS" -J "$@" \
		>"$T/$out.json" 2>"$T/$out.err" || rc=$?
	if [ $rc -ne 0 ] || ! jq -e '.end.sum_received // .end.sum' "$T/$out.json" >/dev/null 2>&1; then
		err "iperf3 $out failed: $(jq -r '.error // empty' "$T/$out.json" 2>/dev/null) $(head -c 300 "$T/$out.err")"
		return 1
	fi
}

# Receiver's Gbit/s of a TCP run.
tcp_gbps()
{
	jq -r '.end.sum_received.bits_per_second / 1e9' "$T/$1.json"
}

# measure_tcp PATH ADDR: the three TCP figures; the 1-stream a->b run is
# also the CPU-per-GB run.
measure_tcp()
{
	local p=$1 addr=$2 d0a d0b m0 d1a d1b m1 bytes
	local pa=${PIDS[saltun-a]:-} pb=${PIDS[saltun-b]:-}

	[ -n "$pa" ] && d0a=$(proc_ticks "$pa") && d0b=$(proc_ticks "$pb")
	m0=$(machine_ticks)
	if iperf_run "$p-tcp1" "$addr"; then
		m1=$(machine_ticks)
		R[$p.tcp1_gbps]=$(tcp_gbps "$p-tcp1")
		R[$p.tcp1_retransmits]=$(jq -r '.end.sum_sent.retransmits // 0' "$T/$p-tcp1.json")
		bytes=$(jq -r '.end.sum_received.bytes' "$T/$p-tcp1.json")
		R[$p.tcp1_bytes]=$bytes
		R[$p.machine_cpu_s_per_gb]=$(div "$(div $((m1 - m0)) "$CLK_TCK")" "$(div "$bytes" 1e9)")
		if [ -n "$pa" ]; then
			d1a=$(proc_ticks "$pa")
			d1b=$(proc_ticks "$pb")
			R[$p.daemon_a_cpu_s]=$(div $((d1a - d0a)) "$CLK_TCK")
			R[$p.daemon_b_cpu_s]=$(div $((d1b - d0b)) "$CLK_TCK")
			R[$p.daemon_cpu_s_per_gb]=$(div "$(div $((d1a - d0a + d1b - d0b)) "$CLK_TCK")" "$(div "$bytes" 1e9)")
			# Each daemon alone: a seals (and opens the ACKs), b opens.
			R[$p.daemon_a_cpu_s_per_gb]=$(div "${R[$p.daemon_a_cpu_s]}" "$(div "$bytes" 1e9)")
			R[$p.daemon_b_cpu_s_per_gb]=$(div "${R[$p.daemon_b_cpu_s]}" "$(div "$bytes" 1e9)")
		fi
	else
		R[$p.tcp1_gbps]=error
		R[$p.machine_cpu_s_per_gb]=error
		if [ -n "$pa" ]; then
			R[$p.daemon_cpu_s_per_gb]=error
			R[$p.daemon_a_cpu_s_per_gb]=error
			R[$p.daemon_b_cpu_s_per_gb]=error
		fi
	fi
	if iperf_run "$p-tcp1r" "$addr" -R; then
		R[$p.tcp1r_gbps]=$(tcp_gbps "$p-tcp1r")
	else
		R[$p.tcp1r_gbps]=error
	fi
	if iperf_run "$p-tcp4" "$addr" -P 4; then
		R[$p.tcp4_gbps]=$(tcp_gbps "$p-tcp4")
	else
		R[$p.tcp4_gbps]=error
	fi
}

# measure_udp PATH ADDR LEN: unlimited sender; delivered = sent - lost.
measure_udp()
{
	local p=$1 addr=$2 len=$3 f=$1-udp$3
	if iperf_run "$f" "$addr" -u -b 0 -l "$len"; then
		# The receiver's counts (iperf3 >= 3.?: sum_received; older: sum).
		# Packets sent = .packets, so delivered = packets - lost.
		R[$p.udp${len}_pps]=$(jq -r '(.end.sum_received // .end.sum) |
			((.packets - .lost_packets) / .seconds)' "$T/$f.json")
		R[$p.udp${len}_loss_pct]=$(jq -r '(.end.sum_received // .end.sum).lost_percent' "$T/$f.json")
		R[$p.udp${len}_gbps]=$(jq -r --argjson l "$len" '(.end.sum_received // .end.sum) |
			((.packets - .lost_packets) * $l * 8 / .seconds / 1e9)' "$T/$f.json")
	else
		R[$p.udp${len}_pps]=error
		R[$p.udp${len}_loss_pct]=error
		R[$p.udp${len}_gbps]=error
	fi
}

# Nearest-rank percentile of the numbers on stdin.
percentile()
{
	sort -n | awk -v q="$1" '{ v[NR] = $1 } END {
		if (NR == 0) { print "error"; exit }
		r = int(q * NR); if (r < q * NR) r++; if (r < 1) r = 1
		print v[r]
	}'
}

measure_ping()
{
	local p=$1 addr=$2 f=$T/$1-ping.txt n
	timeout $((PINGS / 50 + 30)) ip netns exec "$NSA" ping -n -c "$PINGS" -i 0.01 -W 1 "$addr" >"$f" 2>&1
	n=$(grep -c 'time=' "$f")
	R[$p.ping_received]=$n
	if [ "$n" -eq 0 ]; then
		err "ping $p: no replies"
		R[$p.rtt_p50_ms]=error
		R[$p.rtt_p99_ms]=error
		return
	fi
	R[$p.rtt_p50_ms]=$(sed -n 's/.*time=\([0-9.]*\).*/\1/p' "$f" | percentile 0.50)
	R[$p.rtt_p99_ms]=$(sed -n 's/.*time=\([0-9.]*\).*/\1/p' "$f" | percentile 0.99)
}

measure_path()
{
	local p=$1 addr=$2
	note "measuring $p ($addr): TCP"
	measure_tcp "$p" "$addr"
	note "measuring $p ($addr): UDP"
	measure_udp "$p" "$addr" 64
	measure_udp "$p" "$addr" 1392
	note "measuring $p ($addr): ping"
	measure_ping "$p" "$addr"
}

# ------------------------------------------------------------ saltun

conf_write()
{
	local me=$1 peer=$2 my_overlay=$3 peer_underlay=$4 transport=$5
	cat >"$T/$me.conf" <<EOF
[global]
private_key = $T/$me.key
listen = 0.0.0.0:5555
log = stderr
control = $T/$me.sock

[$peer]
public_key = $(cat "$T/$peer.pub")
endpoint = $peer_underlay:5555
transport = $transport
type = tun
device = sbench0
up = ip addr add $my_overlay/30 dev %d && ip link set %d up
EOF
}

# daemons_start TRANSPORT: both daemons, tunnel up (a ping answered): 0;
# the daemon refused the transport ("not supported"/"not implemented"): 2;
# anything else: 1.  At most 30 s.
daemons_start()
{
	local tr=$1 t0=$SECONDS
	conf_write a b 198.18.0.1 192.0.2.2 "$tr"
	conf_write b a 198.18.0.2 192.0.2.1 "$tr"
	bg_start saltun-a ip netns exec "$NSA" "$SALTUN" run -c "$T/a.conf"
	bg_start saltun-b ip netns exec "$NSB" "$SALTUN" run -c "$T/b.conf"
	# `ip netns exec` execs the command: the PID is the daemon's own.
	while [ $((SECONDS - t0)) -lt 30 ]; do
		if grep -E -q -i 'not (yet )?supported|not implemented' "$T/saltun-a.log" "$T/saltun-b.log"; then
			REFUSED=$(grep -h -E -i 'not (yet )?supported|not implemented' "$T/saltun-a.log" \
				"$T/saltun-b.log" | head -n 1)
			return 2
		fi
		if nsx "$NSA" ping -n -q -c 1 -W 0.5 198.18.0.2 >/dev/null 2>&1; then
			wait_for "$T/saltun-a.log" "handshake complete" 2
			return 0
		fi
		pid_alive "${PIDS[saltun-a]}" && pid_alive "${PIDS[saltun-b]}" || break
		sleep 0.2
	done
	err "saltun/$tr: no ping through the tunnel within $((SECONDS - t0)) s; daemon logs:"
	tail -n 15 "$T/saltun-a.log" "$T/saltun-b.log" >&2
	return 1
}

daemons_stop()
{
	bg_stop saltun-a
	bg_stop saltun-b
}

# The data path the daemon announced ("data path: ..." at startup), else plain.
data_path()
{
	local l
	l=$(grep -h -i -m 1 -o 'data path: .*' "$T/saltun-a.log" 2>/dev/null)
	if [ -n "$l" ]; then
		printf '%s' "${l#*: }"
	else
		printf 'plain'
	fi
}

# ------------------------------------------------------------ run

DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
# Figures from uncommitted sources say so (--no-optional-locks: read only,
# the index is not refreshed).
if [ "$COMMIT" != unknown ] &&
	! git -C "$HERE/../.." --no-optional-locks diff --quiet HEAD -- src 2>/dev/null; then
	COMMIT="$COMMIT+dirty"
fi
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
CPUS=$(nproc)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
KERNEL=$(uname -r)
note "saltun bench $DATE commit $COMMIT, $CPUS CPUs ($CPU_MODEL), load $LOAD0, ${SECS} s per iperf3 run"

# One core, nothing else of ours running: do it first.
note "hsbench (one core)"
HSJSON=$("$HSBENCH" --seconds 3 --json 2>"$T/hsbench.err") || {
	err "hsbench failed: $(cat "$T/hsbench.err")"
	HSJSON=null
}

ns_add "$NSA"
ns_add "$NSB"
ip -n "$NSA" link add name u1 type veth peer name u2 netns "$NSB"
ip -n "$NSA" addr add 192.0.2.1/24 dev u1
ip -n "$NSB" addr add 192.0.2.2/24 dev u2
ip -n "$NSA" link set u1 up
ip -n "$NSB" link set u2 up
"$SALTUN" genkey >"$T/a.key" && "$SALTUN" pubkey <"$T/a.key" >"$T/a.pub" &&
	"$SALTUN" genkey >"$T/b.key" && "$SALTUN" pubkey <"$T/b.key" >"$T/b.pub" ||
	{ echo "bench.sh: saltun genkey/pubkey failed" >&2; exit 1; }

bg_start iperf3-server ip netns exec "$NSB" iperf3 -s -p 5201
# Its stdout is a file, so block-buffered: ask the socket table instead.
for ((i = 0; i < 50; i++)); do
	[ -n "$(nsx "$NSB" ss -Hltn 'sport = :5201' 2>/dev/null)" ] && break
	sleep 0.1
done
[ "$i" -lt 50 ] || { echo "bench.sh: iperf3 server did not start" >&2; exit 1; }

PATHS=(veth saltun_udp saltun_tcp)
declare -A STATUS=([veth]=ok [saltun_udp]=ok [saltun_tcp]=ok)
DATA_PATH=plain

measure_path veth 192.0.2.2

if daemons_start udp; then
	DATA_PATH=$(data_path)
	measure_path saltun_udp 198.18.0.2
else
	STATUS[saltun_udp]="error (tunnel did not come up)"
fi
daemons_stop

# TCP transport: measured when the daemon accepts it (before c04dead,
# `saltun check` passed `transport = tcp` but `saltun run` refused it).
REFUSED=""
daemons_start tcp
case $? in
0) measure_path saltun_tcp 198.18.0.2 ;;
2) STATUS[saltun_tcp]="n/a (not implemented)"
   note "saltun/tcp: ${REFUSED#saltun: }" ;;
*) STATUS[saltun_tcp]="error (tunnel did not come up)" ;;
esac
daemons_stop
bg_stop iperf3-server

SESSJSON=null
if [ "$DO_SESSIONS" = 1 ]; then
	note "sessions.sh: $NSESS sessions"
	SESSJSON=$(bash "$HERE/sessions.sh" --saltun "$SALTUN" --sessions "$NSESS" --json 2>"$T/sessions.err")
	rc=$?
	if [ $rc -ne 0 ] || ! jq -e . >/dev/null 2>&1 <<<"$SESSJSON"; then
		err "sessions.sh failed (status $rc): $(jq -r '.error // empty' <<<"$SESSJSON" 2>/dev/null) $(head -c 300 "$T/sessions.err")"
		jq -e . >/dev/null 2>&1 <<<"$SESSJSON" || SESSJSON=null
	fi
fi

# ------------------------------------------------------------ derived figures

for p in saltun_udp saltun_tcp; do
	for m in tcp1 tcp1r tcp4; do
		R[$p.${m}_ratio]=$(div "${R[$p.${m}_gbps]:-}" "${R[veth.${m}_gbps]:-}")
	done
	R[$p.added_p50_ms]=$(awk -v a="${R[$p.rtt_p50_ms]:-x}" -v b="${R[veth.rtt_p50_ms]:-x}" \
		'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.3f", a - b; else print "error" }')
	R[$p.added_p99_ms]=$(awk -v a="${R[$p.rtt_p99_ms]:-x}" -v b="${R[veth.rtt_p99_ms]:-x}" \
		'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.3f", a - b; else print "error" }')
done
HS=$(jq -r '.handshakes_per_s // "error"' <<<"$HSJSON")
HS_RESP=$(jq -r '.handshake.responder_per_s // "error"' <<<"$HSJSON")
KIB=$(jq -r 'if . == null then "n/a" else (.kib_per_session // "error") end' <<<"$SESSJSON")

# ------------------------------------------------------------ table

# cell PATH METRIC DECIMALS: the figure, or the path's status when it did not run.
cell()
{
	local p=$1 m=$2 d=$3
	if [ "${STATUS[$p]}" != ok ]; then
		printf '%s' "-"
	else
		fmt "$d" "${R[$p.$m]:-n/a}"
	fi
}

row()
{
	# row PATH FORMAT METRIC:DECIMALS...
	local p=$1 f=$2 spec cells=()
	shift 2
	if [ "${STATUS[$p]}" != ok ]; then
		printf '%-12s %s\n' "${p/_//}" "${STATUS[$p]}"
		return
	fi
	for spec in "$@"; do
		cells+=("$(cell "$p" "${spec%%:*}" "${spec##*:}")")
	done
	# shellcheck disable=SC2059 # the format is ours
	printf "%-12s $f\n" "${p/_//}" "${cells[@]}"
}

tgt()
{
	# tgt "TEXT" VALUE OP LIMIT
	local v=$2 verdict
	if [[ $v =~ ^-?[0-9.]+(e[-+]?[0-9]+)?$ ]]; then
		if awk -v v="$v" -v l="$4" -v op="$3" 'BEGIN { exit !((op == ">=") ? v >= l : v <= l) }'; then
			verdict="met"
		else
			verdict="NOT met"
		fi
	else
		verdict="not measured"
	fi
	printf '  %-46s %-9s %s\n' "$1" "$v" "$verdict"
}

{
	echo "saltun bench — $DATE — commit $COMMIT — kernel $KERNEL — $CPUS CPUs ($CPU_MODEL)"
	echo "load average before: $LOAD0; iperf3 runs of ${SECS} s; data path: $DATA_PATH"
	echo
	echo "TCP (Gbit/s, receiver; ratio = / veth)"
	printf '%-12s %9s %6s %9s %6s %9s %6s %8s\n' path "1 a->b" ratio "1 b->a" ratio "4 a->b" ratio retrans
	for p in "${PATHS[@]}"; do
		row "$p" '%9s %6s %9s %6s %9s %6s %8s' tcp1_gbps:2 tcp1_ratio:3 tcp1r_gbps:2 tcp1r_ratio:3 \
			tcp4_gbps:2 tcp4_ratio:3 tcp1_retransmits:0
	done
	echo
	echo "UDP, -b 0 (packets/s delivered, loss %)"
	printf '%-12s %10s %7s %10s %7s %8s\n' path "64 B pps" loss "1392 B pps" loss Gbit/s
	for p in "${PATHS[@]}"; do
		row "$p" '%10s %7s %10s %7s %8s' udp64_pps:0 udp64_loss_pct:2 udp1392_pps:0 \
			udp1392_loss_pct:2 udp1392_gbps:2
	done
	echo
	echo "Latency ($PINGS pings, 10 ms apart; + = minus veth) and CPU per GB over the 1-stream TCP a->b run"
	echo "(CPU s/GB: daemon a (sender), daemon b (receiver), both, whole machine)"
	printf '%-12s %7s %7s %8s %8s %6s %6s %6s %7s\n' path "p50 ms" "p99 ms" "+p50 ms" "+p99 ms" \
		"a" "b" "a+b" machine
	for p in "${PATHS[@]}"; do
		row "$p" '%7s %7s %8s %8s %6s %6s %6s %7s' rtt_p50_ms:3 rtt_p99_ms:3 added_p50_ms:3 \
			added_p99_ms:3 daemon_a_cpu_s_per_gb:2 daemon_b_cpu_s_per_gb:2 \
			daemon_cpu_s_per_gb:2 machine_cpu_s_per_gb:2
	done
	echo
	echo "handshakes/s, one core, both sides (hsbench): $(fmt 0 "$HS"); responder side alone: $(fmt 0 "$HS_RESP")/s"
	echo "AEAD one core (hsbench): $(jq -r 'if . == null then "error" else ([.encrypt[] | "encrypt \(.bytes) B \(.gbit_per_s * 100 | round / 100) Gbit/s"] | join(", ")) end' <<<"$HSJSON")"
	if [ "$SESSJSON" = null ]; then
		echo "RSS per session: ${KIB} (sessions.sh $([ "$DO_SESSIONS" = 1 ] && echo failed || echo skipped))"
	else
		echo "RSS per session: $KIB KiB, daemon only: tun devices are kernel memory $(jq -r '"(\(.rss_kib_1) KiB with 1 session, \(.rss_kib_n) KiB with \(.sessions); \(.devices) devices, \(.fds_n) fds)"' <<<"$SESSJSON")"
	fi
	echo
	echo "targets (issue \"Speed\"; saltun/udp):"
	tgt "one TCP stream >= 25% of bare veth (a->b)" "$(fmt 3 "${R[saltun_udp.tcp1_ratio]:-error}")" ">=" 0.25
	tgt "added RTT p50 <= 0.10 ms" "$(fmt 3 "${R[saltun_udp.added_p50_ms]:-error}")" "<=" 0.10
	tgt "daemon CPU <= 2 s per GB (busier daemon)" "$(fmt 2 "$(awk -v a="${R[saltun_udp.daemon_a_cpu_s_per_gb]:-x}" \
		-v b="${R[saltun_udp.daemon_b_cpu_s_per_gb]:-x}" 'BEGIN {
			if (a !~ /^[0-9.]+/ || b !~ /^[0-9.]+/) print "error"; else print (a > b ? a : b) }')")" "<=" 2
	tgt "daemon CPU <= 2 s per GB (both daemons)" "$(fmt 2 "${R[saltun_udp.daemon_cpu_s_per_gb]:-error}")" "<=" 2
	tgt "RSS <= 16 KiB per session" "$KIB" "<=" 16
	tgt ">= 4000 handshakes/s per core (both sides)" "$(fmt 0 "$HS")" ">=" 4000
	tgt ">= 4000 handshakes/s per core (responder)" "$(fmt 0 "$HS_RESP")" ">=" 4000
} | tee "$T/table.txt"

# ------------------------------------------------------------ JSON

if [ -n "$JSON_OUT" ]; then
	{
		echo "{"
		for p in "${PATHS[@]}"; do
			printf '"%s": {"status": %s' "$p" "$(jq -n --arg s "${STATUS[$p]}" '$s')"
			for k in "${!R[@]}"; do
				[ "${k%%.*}" = "$p" ] || continue
				v=${R[$k]}
				[[ $v =~ ^-?[0-9.]+(e[-+]?[0-9]+)?$ ]] || v="\"$v\""
				printf ', "%s": %s' "${k#*.}" "$v"
			done
			echo "},"
		done
		echo "\"_\": null}"
	} >"$T/paths.json"
	if jq -S --arg date "$DATE" --arg commit "$COMMIT" --arg kernel "$KERNEL" \
		--arg cpu "$CPU_MODEL" --argjson cpus "$CPUS" --argjson load "$LOAD0" \
		--argjson secs "$SECS" --argjson pings "$PINGS" --arg dp "$DATA_PATH" \
		--slurpfile paths "$T/paths.json" --argjson hs "$HSJSON" --argjson sess "$SESSJSON" \
		--arg tcpreason "${REFUSED#saltun: }" \
		-n '{date: $date, commit: $commit, kernel: $kernel, cpu_model: $cpu, cpus: $cpus,
		     loadavg_before: $load, iperf3_seconds: $secs, pings: $pings, data_path: $dp,
		     paths: ($paths[0] | del(._)), tcp_transport_note: $tcpreason,
		     hsbench: $hs, sessions: $sess}' >"$JSON_OUT"; then
		note "figures written to $JSON_OUT"
	else
		err "could not write $JSON_OUT"
	fi
fi

[ "$ERRORS" -eq 0 ] || { echo "bench.sh: $ERRORS figure(s) could not be measured" >&2; exit 1; }
exit 0
