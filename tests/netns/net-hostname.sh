#!/bin/bash
#
# The endpoint given as a host name: A dials "relay.saltun.test:5555",
# resolved through an /etc/hosts of the test's own, bind-mounted over the
# real one in a private mount namespace (unshare -m) that only A's daemon
# sees.  Two relays lead to B: relay 1 on 192.0.2.2, relay 2 on 192.0.2.3.
#   1. the name resolves to 192.0.2.2: the tunnel comes up through relay 1
#      and status shows endpoint 192.0.2.2:5555;
#   2. the name moves to 192.0.2.3 (the hosts file rewritten in place) and
#      the old address goes dark (relay 1 drops everything): A must resolve
#      the name again once its handshakes go unanswered, and the tunnel
#      must come back through relay 2 (endpoint 192.0.2.3:5555).
# --test-time-scale 10 (retry every 0.5 s, attempt window 9 s).
#
#   $nsA ── ua 192.0.2.1 ─┬─ ra 192.0.2.2:5555 relay 1 ─┐
#   (own /etc/hosts)      └─ ra 192.0.2.3:5555 relay 2 ─┴─ rb 198.51.100.2 ── B 198.51.100.1:5555

. "$(dirname "$0")/lib-relay.sh"
need_root
need_cmd jq unshare mount getent
test_start 90

SCALE=10
NAME=relay.saltun.test
relay_setup
ip -n "$nsR" addr add 192.0.2.3/24 dev ra
relay_start
bg_start relay2 ip netns exec "$nsR" "$RELAY" --udp 192.0.2.3:5555 --to 198.51.100.1:5555 \
	--from 198.51.100.2 --seed "$RELAY_SEED" --control "$T/relay2.sock"
for ((i = 0; i < 50; i++)); do
	[ -S "$T/relay2.sock" ] && break
	sleep 0.1
done
[ -S "$T/relay2.sock" ] || fail "relay 2 did not start"
relay2_stat()
{
	"$RELAY" --ctl "$T/relay2.sock" stats "$1" | sed -n "s/^$1=//p"
}

# The hosts file A sees; always rewritten in place (same inode), because a
# bind mount keeps pointing at the inode it was made from.
hosts_set()
{
	printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$1" "$NAME" >"$T/hosts"
}
# CMD in A's view of the world: private mount namespace, our hosts file.
in_a_view()
{
	# exec: under bg_start the recorded PID must be the daemon itself.
	# shellcheck disable=SC2016 # $1 and $@ belong to the inner sh
	exec unshare -m --propagation private sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' \
		_ "$T/hosts" "$@"
}
hosts_set 192.0.2.2
chmod 644 "$T/hosts"
# Test premise: the mechanism itself resolves, and sees a rewrite.
got=$(in_a_view getent ahostsv4 "$NAME" | awk 'NR == 1 { print $1 }')
expect_eq "premise: $NAME in A's view" "$got" 192.0.2.2
[ -z "$(getent hosts "$NAME" || true)" ] || fail "premise: $NAME resolves outside the test's view"

sed -i "s/^endpoint = 192\.0\.2\.2:5555\$/endpoint = $NAME:5555/" "$T/a.conf"
grep -q "^endpoint = $NAME:5555\$" "$T/a.conf" || fail "a.conf: endpoint not replaced"
"$SALTUN" check -c "$T/a.conf" >"$T/a.check" 2>&1 || fail "saltun check rejected a host name endpoint: $(cat "$T/a.check")"
saltun_start "$nsB" b "$T/b.conf" --test-time-scale "$SCALE"
bg_start a in_a_view ip netns exec "$nsA" "$SALTUN" run -c "$T/a.conf" -v --test-time-scale "$SCALE"
sleep 0.3
bg_alive a || fail "a exited at startup with a host name endpoint"

# ---------------------------------------------------------------- 1. first address
t0=$(date +%s.%N)
ping_wait "$nsA" 198.18.0.2 15 || fail "no tunnel with endpoint = $NAME:5555 (does the daemon resolve host names?)"
log "tunnel up through $NAME after $(elapsed_since "$t0")s"
expect_eq "a: endpoint" "$(st a .endpoint)" 192.0.2.2:5555
[ "$(relay_stat a2b.received)" -gt 0 ] || fail "relay 1 carried nothing"
expect_eq "relay 2: datagrams before the move" "$(relay2_stat a2b.received)" 0

# ---------------------------------------------------------------- 2. the name moves
hosts_set 192.0.2.3
expect_eq "premise: $NAME in A's view after the rewrite" \
	"$(in_a_view getent ahostsv4 "$NAME" | awk 'NR == 1 { print $1 }')" 192.0.2.3
relay_ctl set both drop=1.0 >/dev/null
moved=$(date +%s.%N)
log "$NAME now 192.0.2.3; 192.0.2.2 dark"
# Unanswered data starts a handshake after 1.5 s; its retries (and, at the
# latest, the end of the 9 s attempt window) are where a name is looked up
# again.  Ping keeps the traffic that drives them.
bound=25
if ! ping_wait "$nsA" 198.18.0.2 "$bound"; then
	log "a: $(st_all a)"
	log "relay 2 received $(relay2_stat a2b.received) datagrams"
	fail "no tunnel within ${bound}s after $NAME moved to 192.0.2.3"
fi
log "tunnel back through 192.0.2.3 $(elapsed_since "$moved")s after the move"
expect_eq "a: endpoint after the move" "$(st a .endpoint)" 192.0.2.3:5555
[ "$(relay2_stat a2b.received)" -gt 0 ] || fail "relay 2 carried nothing"
ping_ok "$nsB" 198.18.0.1 3 || fail "b -> a after the move"
log "a: $(st_all a)"
