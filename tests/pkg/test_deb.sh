#!/bin/bash
#
# The Debian package, built and used as an admin would: copy the source
# tree to a temp dir, put packaging/debian there as debian/, build with
# `dpkg-buildpackage -us -uc -b`, run lintian (errors fail, warnings are
# printed), install the .deb with dpkg -i, exercise the installed program,
# user, directories and units, then purge it.
#
# This changes the host while it runs (a package, the `saltun` system user),
# so it needs root, and it refuses to touch a host where a saltun package is
# already known to dpkg.  The EXIT trap purges the package and removes the
# user if this test created it.  Exit 0 pass, 1 fail, 77 skipped.
#
# Environment:
#   top_srcdir             tree to package (make check sets it)
#   DEB_BUILD_OPTIONS      passed on; when unset, "nocheck": `make check`
#                          already ran the unit tests this build would repeat
#   SALTUN_DEB_TIMEOUT     seconds allowed for the build (default 1200)
#   KEEP=1                 keep the temp dir (build log, .deb) for a look

# Checks pass code to `eval` in single quotes on purpose: it is expanded
# when the check runs, not when the line is read.
# shellcheck disable=SC2016

set -eEuo pipefail

TEST_NAME=test_deb
SRC=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD_TIMEOUT=${SALTUN_DEB_TIMEOUT:-1200}
# Short steps: a hung dpkg or daemon must not hang `make check`.
STEP_TIMEOUT=120

W=""               # temp dir
INSTALLED=0        # the package is (possibly) installed by us: purge it
CREATED_USER=0     # the saltun user did not exist before: delete it
FAILURES=0

log() { printf '# %s\n' "$*"; }
skip() { printf 'SKIP: %s: %s\n' "$TEST_NAME" "$*" >&2; exit 77; }
fail() { printf 'FAIL: %s: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }

# One named expectation: keeps going after a failure so one run shows every
# broken point, and the test fails at the end.
check()
{
	local what=$1
	shift
	if "$@"; then
		printf 'ok - %s\n' "$what"
	else
		printf 'not ok - %s\n' "$what"
		FAILURES=$((FAILURES + 1))
	fi
}

cleanup()
{
	local rc=$?
	trap - EXIT ERR
	if [ "$INSTALLED" = 1 ]; then
		dpkg_run --purge saltun >/dev/null 2>&1 ||
			echo "WARN: $TEST_NAME: could not purge saltun" >&2
	fi
	# Debian leaves system users behind on purge (files may still carry
	# the uid); the test removes only a user it brought.
	if [ "$CREATED_USER" = 1 ] && getent passwd saltun >/dev/null; then
		deluser --system --quiet saltun >/dev/null 2>&1 || true
		getent group saltun >/dev/null &&
			{ delgroup --system --quiet saltun >/dev/null 2>&1 || true; }
	fi
	if [ -n "$W" ]; then
		if [ "${KEEP:-0}" = 1 ]; then
			echo "# kept $W" >&2
		else
			rm -rf -- "$W"
		fi
	fi
	exit "$rc"
}

# dpkg with a time limit, waiting out (for up to STEP_TIMEOUT) a lock held by
# someone else's apt-get or dpkg, which would otherwise fail the test.
dpkg_run()
{
	local t0=$SECONDS out rc
	while :; do
		out=$(timeout "$STEP_TIMEOUT" dpkg "$@" 2>&1) && rc=0 || rc=$?
		if [ "$rc" -eq 0 ] || ! grep -q 'lock' <<<"$out" ||
			[ $((SECONDS - t0)) -ge "$STEP_TIMEOUT" ]; then
			printf '%s\n' "$out"
			return "$rc"
		fi
		sleep 2
	done
}

# The package status letters from dpkg, "" when dpkg has never heard of it.
pkg_status()
{
	dpkg-query -W -f='${db:Status-Abbrev}' saltun 2>/dev/null || true
}

# Copy the tree as a release would have it: what git tracks plus files not
# yet committed (but not ignored build output); without git, everything but
# .git (dpkg-buildpackage's clean step runs `make distclean` on a configured
# tree).
tree_copy()
{
	local from=$1 to=$2 f
	mkdir -p "$to"
	if git -C "$from" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$from" ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do
				# Tracked files deleted in the work tree are listed too.
				if [ -e "$from/$f" ]; then printf '%s\0' "$f"; fi
			done |
			tar -C "$from" --null -T - -cf - | tar -C "$to" -xf -
	else
		tar -C "$from" --exclude=.git -cf - . | tar -C "$to" -xf -
	fi
	[ ! -e "$to/debian" ] || fail "the source tree has its own debian/"
	cp -R "$from/packaging/debian" "$to/debian"
}

# --------------------------------------------------------------- preconditions
[ "$(id -u)" -eq 0 ] || skip "needs root (installs and purges a package)"
for c in dpkg-buildpackage dpkg-parsechangelog dpkg-checkbuilddeps timeout \
	git tar flock adduser deluser; do
	command -v "$c" >/dev/null 2>&1 || skip "needs '$c'"
done
[ -f "$SRC/packaging/debian/changelog" ] || fail "no packaging/debian in $SRC"
# One run at a time per host: `make check` in a normal and a sanitizer build
# would otherwise install and purge the same package under each other.
lockdir=/run/lock
[ -d "$lockdir" ] || lockdir=/tmp
exec 9>"$lockdir/saltun-test_deb.lock"
flock -w "$BUILD_TIMEOUT" 9 || skip "another test_deb.sh held the lock for ${BUILD_TIMEOUT}s"
case $(pkg_status) in
"" | un* | pn*) ;;
*) skip "a saltun package is already known to dpkg ($(pkg_status)); not touching it" ;;
esac

VERSION=$(dpkg-parsechangelog -l "$SRC/packaging/debian/changelog" -S Version)
UPSTREAM=${VERSION%-*}
getent passwd saltun >/dev/null || CREATED_USER=1

W=$(mktemp -d "${TMPDIR:-/tmp}/saltun-deb.XXXXXX")
trap cleanup EXIT
# A signal ends the test through the EXIT trap, so the package still goes.
trap 'fail "stopped by signal"' TERM INT HUP
trap 'echo "FAIL: $TEST_NAME: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR
log "packaging $SRC as saltun $VERSION in $W"

TREE=$W/saltun-$UPSTREAM
tree_copy "$SRC" "$TREE"
(cd "$TREE" && dpkg-checkbuilddeps) >"$W/builddeps.log" 2>&1 ||
	skip "build dependencies missing: $(cat "$W/builddeps.log")"

# --------------------------------------------------------------------- build
log "dpkg-buildpackage -us -uc -b (limit ${BUILD_TIMEOUT}s, log $W/build.log)"
# Under `make check`, MAKEFLAGS carries the outer make's jobserver and
# command-line variables (TESTS=..., CFLAGS=...): the package must be built
# as from a clean shell, not with those.
if ! (cd "$TREE" && unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES &&
	DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck} \
		timeout -k 10 "$BUILD_TIMEOUT" dpkg-buildpackage -us -uc -b) \
	>"$W/build.log" 2>&1; then
	tail -n 60 "$W/build.log" >&2
	fail "dpkg-buildpackage failed (status above)"
fi
DEB=$(find "$W" -maxdepth 1 -name "saltun_${VERSION}_*.deb" | head -n 1)
CHANGES=$(find "$W" -maxdepth 1 -name "saltun_${VERSION}_*.changes" | head -n 1)
[ -n "$DEB" ] || fail "no saltun_${VERSION}_*.deb in $W"
log "built $(basename "$DEB")"

# Only the package's own files, in the places Debian expects.
dpkg-deb -c "$DEB" | awk '{ print $1, $NF }' >"$W/contents"
has_entry() { grep -qxF -- "$1" "$W/contents"; }
check "binary in /usr/sbin" has_entry "-rwxr-xr-x ./usr/sbin/saltun"
check "unit saltun.service" has_entry "-rw-r--r-- ./lib/systemd/system/saltun.service"
check "unit saltun@.service" has_entry "-rw-r--r-- ./lib/systemd/system/saltun@.service"
check "man page saltun(8)" has_entry "-rw-r--r-- ./usr/share/man/man8/saltun.8.gz"
check "man page saltun.conf(5)" has_entry "-rw-r--r-- ./usr/share/man/man5/saltun.conf.5.gz"
check "examples uncompressed" has_entry \
	"-rw-r--r-- ./usr/share/doc/saltun/examples/site-to-site.conf"
check "systemd drop-in examples" has_entry \
	"-rw-r--r-- ./usr/share/doc/saltun/examples/systemd/type-simple.conf"
check "copyright file" has_entry "-rw-r--r-- ./usr/share/doc/saltun/copyright"
check "/etc/saltun shipped" has_entry "drwxr-xr-x ./etc/saltun/"
check "nothing under /usr/local" eval '! grep -q "^[^ ]* \./usr/local" "$W/contents"'
check "Depends: adduser" eval \
	'dpkg-deb -f "$DEB" Depends | tr -d " " | tr , "\n" | grep -x adduser >/dev/null'

check "configured with libsystemd (Type=notify)" \
	grep -qE '^ *systemd: +yes$' "$W/build.log"

# Maintainer scripts: no start on install, no stop before an upgrade, a
# try-restart after it, and a stop on removal (see debian/rules).
dpkg-deb -e "$DEB" "$W/control"
script() { cat "$W/control/$1" 2>/dev/null || true; }
# grep without -q: an early exit would SIGPIPE the writer, which pipefail
# turns into a false result.
script_has() { script "$1" | grep -F -- "$2" >/dev/null; }
script_lacks() { ! script "$1" | grep -E -- "$2" >/dev/null; }
check "postinst try-restarts saltun.service on upgrade" \
	script_has postinst "deb-systemd-invoke try-restart 'saltun.service'"
check "postinst try-restarts saltun@ instances on upgrade" \
	script_has postinst "deb-systemd-invoke try-restart 'saltun@*.service'"
check "postinst never starts a unit" \
	script_lacks postinst 'deb-systemd-invoke (\$_dh_action|start|restart)'
check "preinst does not stop the daemon for an upgrade" \
	script_lacks preinst 'deb-systemd-invoke stop'
check "prerm stops the daemon and instances on removal" \
	script_has prerm "deb-systemd-invoke stop saltun.service 'saltun@*.service'"

if command -v lintian >/dev/null 2>&1; then
	# As root lintian warns that it should not be; that line is no finding.
	timeout -k 10 "$STEP_TIMEOUT" lintian --fail-on error --tag-display-limit 0 \
		"$CHANGES" >"$W/lintian.log" 2>&1 && lintian_rc=0 || lintian_rc=$?
	grep -E '^[EWI]: ' "$W/lintian.log" | sed 's/^/# lintian: /' || true
	check "lintian: no errors" [ "$lintian_rc" -eq 0 ]
else
	log "lintian not installed: package not linted"
fi

# ------------------------------------------------------------------- install
INSTALLED=1
dpkg_run -i "$DEB" >"$W/install.log" 2>&1 ||
	{ cat "$W/install.log" >&2; fail "dpkg -i failed"; }
check "package installed" [ "$(pkg_status)" = "ii " ]

out=$(timeout 10 /usr/sbin/saltun --version 2>&1) && rc=0 || rc=$?
log "saltun --version: status $rc: $out"
check "saltun --version succeeds" [ "$rc" -eq 0 ]
check "saltun --version names $UPSTREAM" eval 'grep -qF -- "$UPSTREAM" <<<"$out"'

example=/usr/share/doc/saltun/examples/site-to-site.conf
out=$(timeout 10 /usr/sbin/saltun check -c "$example" 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" | sed 's/^/# check: /'
check "saltun check accepts $example" [ "$rc" -eq 0 ]
# The unit's own ExecStartPre command line, on the example: the options the
# unit passes must be ones the program takes.
pre=$(sed -n 's|^ExecStartPre=||p' /lib/systemd/system/saltun.service)
pre=${pre//\/etc\/saltun\/saltun.conf/$example}
log "ExecStartPre as run: $pre"
# shellcheck disable=SC2086 # the command line is split into words on purpose
check "the unit's ExecStartPre accepts $example" \
	eval 'timeout 10 $pre >/dev/null 2>&1'

# The user the network half drops to: a system account nobody logs in as.
uid="" gid="" home="" shell=""
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd saltun || true) || true
check "user saltun exists" [ -n "$uid" ]
check "user saltun is a system user (uid $uid)" \
	eval '[ -n "$uid" ] && [ "$uid" -lt 1000 ]'
check "user saltun has group saltun" \
	[ "$(getent group saltun | cut -d: -f3 || true)" = "${gid:-x}" ]
check "user saltun has no home ($home)" [ "$home" = /nonexistent ]
check "user saltun cannot log in ($shell)" \
	eval '[ "$shell" = /usr/sbin/nologin ] || [ "$shell" = /bin/false ]'
check "/etc/saltun is root:root 0750" \
	[ "$(stat -c '%U:%G %a' /etc/saltun)" = "root:root 750" ]

for u in saltun.service saltun@.service; do
	check "$u installed as shipped" \
		cmp -s "/lib/systemd/system/$u" "$SRC/packaging/systemd/$u"
done
# --no-enable: no wants/ link for the unit or any instance of the template.
check "units not enabled" eval \
	'[ -z "$(find /etc/systemd/system -name "saltun*" 2>/dev/null)" ]'
# Reinstalling must be harmless: the maintainer scripts are idempotent.
check "reinstall succeeds" eval \
	'dpkg_run -i "$DEB" >>"$W/install.log" 2>&1'

if command -v systemd-analyze >/dev/null 2>&1; then
	man=no
	command -v man >/dev/null 2>&1 && man=yes
	check "systemd-analyze verify saltun.service" \
		systemd-analyze verify --man="$man" /lib/systemd/system/saltun.service
	# A template verifies only as an instance.
	ln -s /lib/systemd/system/saltun@.service "$W/saltun@test.service"
	check "systemd-analyze verify saltun@test.service" \
		systemd-analyze verify --man="$man" "$W/saltun@test.service"
	# The hardening as a number: 2.8 when written.  Dropping any one of
	# ProtectSystem, ProtectKernelTunables, SystemCallFilter,
	# RestrictNamespaces, RestrictAddressFamilies or CapabilityBoundingSet,
	# or adding CAP_SYS_ADMIN, scores 3.0 or more (threshold in tenths).
	for u in /lib/systemd/system/saltun.service "$W/saltun@test.service"; do
		check "systemd-analyze security $(basename "$u") <= 2.9" eval \
			'systemd-analyze security --offline=yes --threshold=29 "$u" >/dev/null 2>&1'
	done
else
	log "systemd-analyze not installed: units not verified"
fi

# --------------------------------------------------------------------- purge
dpkg_run --purge saltun >"$W/purge.log" 2>&1 ||
	{ cat "$W/purge.log" >&2; fail "dpkg --purge failed"; }
INSTALLED=0
check "package purged" eval 'case $(pkg_status) in "" | un* | pn*) true ;; *) false ;; esac'
check "binary removed" [ ! -e /usr/sbin/saltun ]
check "units removed" [ ! -e /lib/systemd/system/saltun.service ]
check "/etc/saltun removed" [ ! -e /etc/saltun ]

[ "$FAILURES" -eq 0 ] || fail "$FAILURES check(s) failed (KEEP=1 keeps the logs)"
log "all checks passed"
