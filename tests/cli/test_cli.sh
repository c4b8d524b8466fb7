#!/bin/bash
# The command line, end to end: key commands against RFC 7748, `check` on
# every shipped example and on a broken config, help, version, and usage
# errors.  Run by `make check` with SALTUN (the binary) and top_srcdir set.
# Needs no root and no network.

set -u

SALTUN=${SALTUN:-./src/saltun}
top_srcdir=${top_srcdir:-.}

if [ ! -x "$SALTUN" ]; then
	echo "SKIP: $SALTUN not built"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/saltun-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

failures=0
n=0

pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
	n=$((n + 1)); failures=$((failures + 1))
	echo "not ok $n - $1"
	[ -s "$tmp/out" ] && sed 's/^/#   stdout: /' "$tmp/out"
	[ -s "$tmp/err" ] && sed 's/^/#   stderr: /' "$tmp/err"
	return 0
}

# run CMD...: runs it with stdout/stderr in $tmp/out and $tmp/err, sets rc.
run() {
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

# expect DESC RC: the last run exited with RC.
expect_rc() {
	if [ "$rc" -eq "$2" ]; then pass "$1 (exit $2)"; else fail "$1: exit $rc, expected $2"; fi
}

# expect_line DESC FILE LINE: FILE holds LINE exactly, as a whole line.
expect_line() {
	if grep -qFx -- "$3" "$2"; then pass "$1"; else fail "$1: no line '$3'"; fi
}

# ------------------------------------------------------------ keys

# RFC 7748 §6.1: Alice's private key, in base64 (the hex of the RFC).
hex_to_base64() { printf '%b' "$(printf '%s' "$1" | sed 's/../\\x&/g')" | base64; }
alice_priv_b64=$(hex_to_base64 77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a)
alice_pub_b64=$(hex_to_base64 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a)

run "$SALTUN" pubkey <<<"$alice_priv_b64"
expect_rc "pubkey of RFC 7748 Alice" 0
if [ "$(cat "$tmp/out")" = "$alice_pub_b64" ] && [ "$alice_pub_b64" = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=" ]; then
	pass "pubkey prints RFC 7748 Alice's public key"
else
	fail "pubkey printed '$(cat "$tmp/out")', expected $alice_pub_b64"
fi

run "$SALTUN" genkey
expect_rc "genkey" 0
priv=$(cat "$tmp/out")
if [ ${#priv} -eq 44 ] && [ "$(printf '%s' "$priv" | base64 -d | wc -c)" -eq 32 ]; then
	pass "genkey prints 32 bytes in base64"
else
	fail "genkey printed '$priv'"
fi
# RFC 7748 clamping: low 3 bits of byte 0 clear, byte 31 = 01xxxxxx.
read -r b0 b31 < <(printf '%s' "$priv" | base64 -d | od -An -tu1 -v | tr -s ' \n' ' ' |
	awk '{ print $1, $32 }')
if [ $((b0 & 7)) -eq 0 ] && [ $((b31 & 192)) -eq 64 ]; then
	pass "genkey clamps the key"
else
	fail "genkey key not clamped: byte 0 = $b0, byte 31 = $b31"
fi

run "$SALTUN" pubkey <<<"$priv"
expect_rc "genkey | pubkey" 0
pub=$(cat "$tmp/out")
run "$SALTUN" pubkey <<<"$priv"
if [ ${#pub} -eq 44 ] && [ "$pub" != "$priv" ] && [ "$(cat "$tmp/out")" = "$pub" ]; then
	pass "genkey | pubkey round trip gives one stable public key"
else
	fail "genkey | pubkey gave '$pub' then '$(cat "$tmp/out")'"
fi

run "$SALTUN" genpsk
expect_rc "genpsk" 0
psk1=$(cat "$tmp/out")
psk2=$("$SALTUN" genpsk)
if [ ${#psk1} -eq 44 ] && [ "$psk1" != "$psk2" ]; then
	pass "genpsk prints fresh 44-character keys"
else
	fail "genpsk printed '$psk1' and '$psk2'"
fi

for bad in "abc" "" "${priv%?}" "$priv$priv"; do
	run "$SALTUN" pubkey <<<"$bad"
	expect_rc "pubkey refuses '$bad'" 1
	expect_line "pubkey explains the bad input" "$tmp/err" \
		"saltun pubkey: stdin is not a private key: expected 32-byte base64 key (44 characters), as saltun genkey prints"
	if [ -s "$tmp/out" ]; then fail "pubkey printed something for bad input"; fi
done

# genkey warns when the key lands in a file others can read, not otherwise.
(umask 022; "$SALTUN" genkey >"$tmp/open.key" 2>"$tmp/err")
expect_line "genkey warns about a world-readable output file" "$tmp/err" \
	"saltun genkey: warning: the output file is readable by group or others; use: (umask 077; saltun genkey > FILE)"
(umask 077; "$SALTUN" genkey >"$tmp/closed.key" 2>"$tmp/err")
if [ ! -s "$tmp/err" ] && [ "$(wc -c <"$tmp/closed.key")" -eq 45 ]; then
	pass "genkey is silent with umask 077"
else
	fail "genkey with umask 077"
fi

# ------------------------------------------------------ check: examples

examples=("$top_srcdir"/conf/*.conf)
if [ ${#examples[@]} -ne 4 ]; then
	fail "expected 4 example configs in $top_srcdir/conf, found ${#examples[@]}"
fi
for conf in "${examples[@]}"; do
	name=$(basename "$conf")
	run "$SALTUN" check -c "$conf"
	expect_rc "check $name as shipped" 0
	expect_line "check $name says so" "$tmp/out" "configuration OK"
	if grep -q -v ': warning: private_key is inline\|: warning: preshared_key is inline' "$tmp/err"; then
		fail "check $name: unexpected diagnostics"
	fi

	# The same with key files instead of inline keys: no warnings at all.
	mkdir -p "$tmp/$name.d"
	(umask 077; "$SALTUN" genkey >"$tmp/$name.d/private.key"; "$SALTUN" genpsk >"$tmp/$name.d/x.psk")
	sed -e 's|^private_key *=.*|private_key = ./private.key|' \
	    -e "s|^preshared_key *=.*|preshared_key = $tmp/$name.d/x.psk|" \
		"$conf" >"$tmp/$name.d/saltun.conf"
	chmod 600 "$tmp/$name.d/saltun.conf"
	run "$SALTUN" check -c "$tmp/$name.d/saltun.conf"
	expect_rc "check $name with key files" 0
	if [ -s "$tmp/err" ]; then fail "check $name with key files: diagnostics"; else pass "check $name with key files: no diagnostics"; fi
	run "$SALTUN" check -q -c "$tmp/$name.d/saltun.conf"
	if [ "$rc" -eq 0 ] && [ ! -s "$tmp/out" ]; then pass "check -q $name is silent"; else fail "check -q $name"; fi
done

# --------------------------------------------------- check: five errors

peer=$("$SALTUN" genkey | "$SALTUN" pubkey)
(umask 077; cat >"$tmp/broken.conf") <<EOF
[global]
private_key = $priv
listen = 5555
colour = blue
[office]
public_key = $peer
type = tan
endpoint = vpn.example.org:99999
[home]
public_key = $peer
mtu = 100
EOF
run "$SALTUN" check -c "$tmp/broken.conf"
expect_rc "check of a config with five errors" 1
b="$tmp/broken.conf"
expect_line "error 1: unknown key" "$tmp/err" "$b:4: unknown key 'colour' in [global]"
expect_line "error 2: bad type" "$tmp/err" "$b:7: bad type 'tan': expected tun or tap"
expect_line "error 3: bad port" "$tmp/err" \
	"$b:8: port 99999 out of range in 'vpn.example.org:99999': expected 1-65535"
expect_line "error 4: duplicate public key" "$tmp/err" \
	"$b:10: duplicate public_key: already used by session [office] (line 6)"
expect_line "error 5: bad mtu" "$tmp/err" "$b:11: mtu 100 out of range: expected 576-65535"
expect_line "error count" "$tmp/err" "$b: 5 errors"
if [ "$(wc -l <"$tmp/err")" -eq 6 ]; then pass "five errors and the count, nothing else"; else fail "unexpected diagnostics"; fi
if grep -q "configuration OK" "$tmp/out"; then fail "broken config reported OK"; else pass "broken config not reported OK"; fi

run "$SALTUN" check -c "$tmp/does-not-exist.conf"
expect_rc "check of a missing file" 1
expect_line "missing file named" "$tmp/err" "$tmp/does-not-exist.conf: cannot open: No such file or directory"

# ------------------------------------------------- help, version, usage

run "$SALTUN" --help
expect_rc "--help" 0
for cmd in run check genkey pubkey genpsk help; do
	if grep -q "^  $cmd " "$tmp/out"; then pass "--help lists $cmd"; else fail "--help lacks $cmd"; fi
done

run "$SALTUN" --version
expect_rc "--version" 0
if grep -Eqx 'saltun [0-9]+\.[0-9]+\.[0-9]+( \(git [^)]+\))?' "$tmp/out"; then
	pass "--version format"
else
	fail "--version printed '$(cat "$tmp/out")'"
fi

for cmd in run check genkey pubkey genpsk help; do
	run "$SALTUN" help "$cmd"
	expect_rc "help $cmd" 0
	if head -n1 "$tmp/out" | grep -Eq "^Usage: saltun $cmd( |\$)"; then
		pass "help $cmd starts with its usage"
	else
		fail "help $cmd"
	fi
	run "$SALTUN" "$cmd" --help
	expect_rc "$cmd --help" 0
	if grep -q "^Usage: saltun $cmd" "$tmp/out"; then pass "$cmd --help shows usage"; else fail "$cmd --help"; fi
done

run "$SALTUN" help run
expect_line "run documents --test-time-scale" "$tmp/out" \
	"      --test-time-scale N  for tests only: divide every protocol timer by N"

run "$SALTUN" frobnicate
expect_rc "unknown command" 1
expect_line "unknown command named" "$tmp/err" "saltun: unknown command 'frobnicate'"
if grep -q "^Usage: saltun COMMAND" "$tmp/err"; then pass "unknown command shows usage"; else fail "unknown command without usage"; fi

run "$SALTUN" help frobnicate
expect_rc "help of an unknown command" 1

run "$SALTUN"
expect_rc "no command" 1

run "$SALTUN" --frobnicate
expect_rc "unknown global option" 1

run "$SALTUN" check --frobnicate
expect_rc "unknown option of check" 1
expect_line "unknown option named" "$tmp/err" "saltun check: unknown option '--frobnicate'"

run "$SALTUN" check -c
expect_rc "check -c without a file" 1

run "$SALTUN" genkey extra
expect_rc "genkey with an argument" 1

for scale in 0 -1 x 10x 1000001; do
	run "$SALTUN" run --test-time-scale "$scale" -c "$tmp/broken.conf"
	expect_rc "run --test-time-scale $scale refused" 1
	expect_line "bad scale explained" "$tmp/err" \
		"saltun run: bad --test-time-scale '$scale': expected 1-1000000"
done

# ------------------------------------------------------------ man pages

# Every key and every command is documented; the pages render cleanly.
for key in private_key listen user group log log_level control public_key preshared_key \
	endpoint transport type device mtu bridge up down connect disconnect keepalive speed \
	hook_timeout; do
	if grep -q "^\.BI $key " "$top_srcdir/doc/saltun.conf.5"; then
		pass "saltun.conf(5) documents $key"
	else
		fail "saltun.conf(5) lacks $key"
	fi
done
for cmd in run check genkey pubkey genpsk help; do
	if grep -Eq "^\.BR? $cmd( |\$)" "$top_srcdir/doc/saltun.8"; then
		pass "saltun(8) documents $cmd"
	else
		fail "saltun(8) lacks $cmd"
	fi
done
if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
	for page in saltun.8 saltun.conf.5; do
		MANWIDTH=80 man --warnings -l "$top_srcdir/doc/$page" >"$tmp/out" 2>"$tmp/err"
		if [ -s "$tmp/err" ] || [ ! -s "$tmp/out" ]; then
			fail "man --warnings $page"
		else
			pass "man --warnings $page: no warnings"
		fi
	done
else
	echo "# man or groff missing: man page rendering not checked"
fi

echo "1..$n"
if [ "$failures" -ne 0 ]; then
	echo "$failures of $n checks failed"
	exit 1
fi
exit 0
