#!/bin/bash
#
# The harness tests itself, without saltun: inner tests built on lib.sh
# run a fake daemon in two namespaces joined by a bare veth, and we check
# what they leave behind.
#
#   ┌──────────────────────┐        ┌──────────────────────┐
#   │ $ns1                 │        │ $ns2                 │
#   │  fake saltun "a"     │        │  fake saltun "b"     │
#   │  ┌────────────────┐  │  veth  │  ┌────────────────┐  │
#   │  │ u1 192.0.2.1   ├──┼────────┼──┤ u2 192.0.2.2   │  │
#   │  │    2001:db8::1 │  │        │  │    2001:db8::2 │  │
#   │  └────────────────┘  │        │  └────────────────┘  │
#   └──────────────────────┘        └──────────────────────┘
#
# Inner tests: "pass" (exit 0), "fail" (exit 1, logs printed), "watchdog"
# (ends itself after 4 s while in `sleep 60`), "stubborn" (a daemon that
# ignores SIGTERM is killed 3 s later), "sanitizer" (every check passes but
# the daemon's log holds an AddressSanitizer report: exit 1).  After each: no namespace of it
# left, no process of it alive, temp dir gone.

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need_root
LIB_NO_SALTUN=1 test_start 90

LIB=$(cd "$(dirname "$0")" && pwd)/lib.sh

cat >"$T/fake-saltun" <<'EOF'
#!/bin/bash
# Just enough of saltun's command line for the harness.
case $1 in
genkey | genpsk) head -c 32 /dev/urandom | base64 ;;
pubkey) sha256sum | head -c 43; echo = ;;
check) exit 0 ;;
run)
	if [ "${FAKE_STUBBORN:-0}" = 1 ]; then
		trap '' TERM
	else
		trap 'echo "saltun: fake: stopping"; exit 0' TERM
	fi
	echo "saltun: fake daemon up in $(ip netns identify $$), args: $*"
	[ "${FAKE_ASAN:-0}" = 0 ] || echo "==1==ERROR: AddressSanitizer: heap-use-after-free (fake)"
	while :; do sleep 0.1; done
	;;
*) exit 2 ;;
esac
EOF
chmod 755 "$T/fake-saltun"

cat >"$T/inner.sh" <<EOF
#!/bin/bash
. "$LIB"
need_root
test_start "\$INNER_TIMEOUT"
n1=\$(ns_name 1)
n2=\$(ns_name 2)
ns_add "\$n1"
ns_add "\$n2"
veth_link "\$n1" u1 192.0.2.1/24,2001:db8::1/64 "\$n2" u2 192.0.2.2/24,2001:db8::2/64
ping_ok "\$n1" 192.0.2.2 || fail "no IPv4 ping over the bare veth"
ping_ok "\$n2" 2001:db8::1 || fail "no IPv6 ping over the bare veth"
key_gen a
cat >"\$T/a.conf" <<CONF
[global]
private_key = \$T/a.key
CONF
saltun_start "\$n1" a "\$T/a.conf" --test-time-scale 7
saltun_start "\$n2" b "\$T/a.conf"
wait_for "\$T/a.log" "fake daemon up in \$n1, args: run -c .* -v --test-time-scale 7" 3 ||
	fail "fake daemon a did not run in \$n1"
bg_start pinger ip netns exec "\$n1" ping -i 0.2 192.0.2.2
wait_for "\$T/pinger.log" "bytes from 192.0.2.2" 5 || fail "no ping"
saltun_stop b 1
! bg_alive b || fail "b alive after saltun_stop"
# Tell the outer test what to look for afterwards.
{
	echo "STOP=\$STOP_STATUS"
	echo "T=\$T"
	echo "NS=\${NAMESPACES[*]}"
	echo "PIDS=\${PIDS[*]}"
} >"\$INNER_STATE"
case \$INNER_MODE in
pass) ;;
fail) fail "deliberate failure" ;;
watchdog) sleep 60 ;;
stubborn | sanitizer) ;;
esac
EOF

# Run the inner test in MODE; check its exit status and what it left.
inner_run()
{
	local mode=$1 want_rc=$2 timeout=$3 rc=0 t0 secs state_t state_ns state_pids p ns
	rm -f "$T/state"
	t0=$(date +%s.%N)
	KEEP=0 INNER_MODE=$mode INNER_TIMEOUT=$timeout INNER_STATE=$T/state \
		SALTUN=$T/fake-saltun FAKE_STUBBORN=$([ "$mode" = stubborn ] && echo 1 || echo 0) \
		FAKE_ASAN=$([ "$mode" = sanitizer ] && echo 1 || echo 0) \
		bash "$T/inner.sh" >"$T/inner-$mode.out" 2>&1 || rc=$?
	secs=$(elapsed_since "$t0")
	log "inner $mode: exit $rc after ${secs}s"
	[ "$rc" -eq "$want_rc" ] || { cat "$T/inner-$mode.out"; fail "inner $mode: exit $rc, want $want_rc"; }
	[ -s "$T/state" ] || { cat "$T/inner-$mode.out"; fail "inner $mode: wrote no state"; }
	state_t=$(sed -n 's/^T=//p' "$T/state")
	state_ns=$(sed -n 's/^NS=//p' "$T/state")
	state_pids=$(sed -n 's/^PIDS=//p' "$T/state")
	[ "$(wc -w <<<"$state_ns")" -eq 2 ] || fail "inner $mode: namespaces '$state_ns'"
	[ "$(wc -w <<<"$state_pids")" -eq 2 ] || fail "inner $mode: pids '$state_pids'"
	for ns in $state_ns; do
		case $ns in saltun-inner-*) ;; *) fail "inner $mode: namespace name $ns" ;; esac
		! ip netns list | grep -qw -- "$ns" || fail "inner $mode: namespace $ns left behind"
	done
	for p in $state_pids; do
		! pid_alive "$p" || fail "inner $mode: process $p still alive"
	done
	[ ! -e "$state_t" ] || fail "inner $mode: temp dir $state_t left behind"
	INNER_SECS=$secs
}

# Started before the inner tests: nothing they do may touch it.
bg_start bystander sleep 60

inner_run pass 0 30
grep -qx "STOP=0" "$T/state" || fail "pass: saltun_stop status: $(grep STOP= "$T/state")"
grep -q "^PASS: inner" "$T/inner-pass.out" || fail "pass: no PASS line"
! grep -q "========" "$T/inner-pass.out" || fail "pass: printed logs"

inner_run fail 1 30
grep -q "deliberate failure" "$T/inner-fail.out" || fail "fail: no reason"
grep -q "======== a.log" "$T/inner-fail.out" || fail "fail: daemon log not printed"
grep -q "saltun: fake: stopping" "$T/inner-fail.out" || fail "fail: daemon not stopped by SIGTERM"

inner_run watchdog 1 4
grep -q "watchdog: test exceeded 4s" "$T/inner-watchdog.out" || fail "watchdog: no message"
awk -v s="$INNER_SECS" 'BEGIN { exit !(s < 15) }' || fail "watchdog: took ${INNER_SECS}s"

inner_run stubborn 0 30
grep -qx "STOP=137" "$T/state" || fail "stubborn: saltun_stop status: $(grep STOP= "$T/state")"
grep -q "ignored SIGTERM for 3s: SIGKILL" "$T/inner-stubborn.out" || fail "stubborn: not killed"

inner_run sanitizer 1 30
grep -q "FAIL: inner: sanitizer report in a.log" "$T/inner-sanitizer.out" || fail "sanitizer: not reported"

bg_alive bystander || fail "bystander died: the inner tests killed more than their own"
