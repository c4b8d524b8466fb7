/*
 * Reload's pure halves (daemon.c): which [global] changes are refused,
 * and when a session counts as unchanged.  Each case is the base config
 * with one line replaced, added or moved, loaded by conf_load_string as
 * the daemon loads its file.  The daemon side (sessions kept, restarted,
 * stopped) is tests/netns/reload.sh.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "conf.h"
#include "daemon.h"

#define PRIV1 "IHZcfT82sph4ph15MvNDnCaA2ibvgfi+LnYnEm54Eko="
#define PRIV2 "+BIKnGFHDl2DrINLnTe7mx401p9iM/q6dnpTexNqtWM="
#define PUB3 "/bsmUpyupcSqd1PfXDLJqCqehRJH2PmwiR/0U2c3+WU="
#define PUB4 "NoxgvbzEgiTo5vYxMnKVhDzwGJikL6msq6DnaQGWDn4="
#define PSK "7rEFQqVefQPGIWGozNySCurP36w+sY3qJgFvtrOkjoA="

/* A case replaces the first line that starts with `from` by `to` ("" deletes
 * it; "\n" in `to` adds lines). */
static const char base[] =
	"[global]\n"
	"private_key = " PRIV1 "\n"
	"listen = 0.0.0.0:5555, [::]:5555\n"
	"control = /run/test/control.sock\n"
	"log_level = info\n"
	"\n"
	"[office]\n"
	"public_key = " PUB3 "\n"
	"endpoint = 192.0.2.2:5555\n"
	"type = tun\n"
	"device = tun-office\n"
	"mtu = 1400\n"
	"keepalive = 25\n"
	"up = ip link set %d up\n"
	"down = ip link set %d down\n"
	"\n"
	"[laptop]\n"
	"public_key = " PUB4 "\n"
	"type = tap\n"
	"bridge = br0\n";

/* base with the first line starting with `from` replaced by `to`. */
static char *edit(const char *from, const char *to)
{
	char needle[128];
	const char *at = base;

	snprintf(needle, sizeof(needle), "\n%s", from);
	if (strncmp(base, from, strlen(from)) != 0 && (at = strstr(base, needle)) != NULL)
		at++;
	cr_assert_not_null(at, "no line starting with '%s' in the base config", from);
	const char *end = strchr(at, '\n') + 1;
	size_t n = strlen(base) + strlen(to) + 2;
	char *out = malloc(n);
	cr_assert_not_null(out);
	snprintf(out, n, "%.*s%s%s%s", (int)(at - base), base, to, to[0] ? "\n" : "", end);
	return out;
}

static void load(struct conf *c, const char *text)
{
	char *diag = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&diag, &len);

	cr_assert_not_null(f);
	unsigned errors = conf_load_string(c, text, "test.conf", f);
	fclose(f);
	cr_assert_eq(errors, 0, "config refused: %s\n%s", diag, text);
	free(diag);
}

static const struct conf_session *find(const struct conf *c, const char *name)
{
	for (unsigned i = 0; i < c->nsessions; i++)
		if (strcmp(c->sessions[i].name, name) == 0)
			return &c->sessions[i];
	cr_assert_fail("no session '%s'", name);
	return NULL;
}

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
}

TestSuite(reload, .init = setup);

struct global_case {
	const char *from, *to;
	const char *refused; /* NULL: applies live */
};

static const struct global_case global_cases[] = {
	{ "private_key", "private_key = " PRIV2, "private_key" },
	{ "listen", "listen = 0.0.0.0:5556, [::]:5555", "listen" },
	{ "listen", "listen = 0.0.0.0:5555", "listen" },
	{ "listen", "listen = 0.0.0.0:5555, [::]:5555, 127.0.0.1:6000", "listen" },
	{ "listen", "", "listen" },
	{ "control", "control = /run/test/other.sock", "control" },
	{ "control", "control = /run/test/control.sock\nuser = nobody", "user" },
	{ "log_level", "log_level = debug", NULL },
	{ "log_level", "log = syslog", NULL },
	{ "log_level", "group = nogroup\nlog_level = info", "group" },
	{ "listen", "listen = 0.0.0.0:5555,[::]:5555", NULL }, /* spacing: same addresses */
	{ "[laptop]", "[laptop2]", NULL },               /* sessions are not [global] */
};

Test(reload, global_keys)
{
	struct conf a, b;

	load(&a, base);
	for (size_t i = 0; i < sizeof(global_cases) / sizeof(global_cases[0]); i++) {
		const struct global_case *t = &global_cases[i];
		char *text = edit(t->from, t->to);
		load(&b, text);
		const char *got = daemon_reload_refused_key(&a.global, &b.global);
		if (t->refused == NULL)
			cr_expect_null(got, "case %zu '%s': refused '%s'", i, t->to, got);
		else
			cr_expect(got != NULL && strcmp(got, t->refused) == 0,
				  "case %zu '%s': got '%s', want '%s'", i, t->to, got ? got : "(null)",
				  t->refused);
		/* Symmetric: going back is refused for the same key. */
		const char *back = daemon_reload_refused_key(&b.global, &a.global);
		cr_expect((back == NULL) == (t->refused == NULL), "case %zu: not symmetric", i);
		conf_free(&b);
		free(text);
	}
	cr_expect_null(daemon_reload_refused_key(&a.global, &a.global));
	conf_free(&a);
}

struct session_case {
	const char *from, *to;
	const char *session; /* the session looked at */
	bool same;
};

static const struct session_case session_cases[] = {
	/* every key of a session, changed */
	{ "public_key = " PUB3, "public_key = " PUB3 "\npreshared_key = " PSK, "office", false },
	{ "endpoint", "endpoint = 192.0.2.3:5555", "office", false },
	{ "endpoint", "endpoint = 192.0.2.2:5556", "office", false },
	{ "endpoint", "endpoint = vpn.example.org:5555", "office", false },
	{ "endpoint", "", "office", false },
	{ "endpoint", "endpoint = 192.0.2.2:5555\ntransport = tcp", "office", false },
	{ "type = tun", "type = tap", "office", false },
	{ "device = tun-office", "device = tun-x", "office", false },
	{ "mtu", "mtu = 1380", "office", false },
	{ "mtu", "", "office", false },                 /* 0: automatic */
	{ "keepalive", "keepalive = 24", "office", false },
	{ "keepalive", "keepalive = 25\nspeed = 1000", "office", false },
	{ "keepalive", "keepalive = 25\nspeed = 1000:2000", "office", false },
	{ "up", "up = ip link set %d up ", "office", true },   /* trailing blank: inih trims */
	{ "up", "up = ip link set %d  up", "office", false },
	{ "up", "", "office", false },
	{ "down", "down = ip link set %d down\n  && true", "office", false }, /* continuation */
	{ "down", "down = ip link set %d down\nconnect = true", "office", false },
	{ "down", "down = ip link set %d down\ndisconnect = true", "office", false },
	{ "down", "down = ip link set %d down\nhook_timeout = 10", "office", false },
	{ "bridge", "bridge = br1", "laptop", false },
	{ "public_key = " PUB4, "public_key = " PUB4 "\nendpoint = [2001:db8::1]:5555", "laptop", false },
	/* not a change: where the section sits, comments, another session */
	{ "[global]", "; a comment\n\n[global]", "office", true },
	{ "mtu", "; mtu = 1400\nmtu = 1400", "office", true },
	{ "mtu", "mtu = 1400", "laptop", true },
	{ "bridge", "bridge = br1", "office", true },
	{ "log_level", "log_level = debug", "office", true },
};

Test(reload, session_same)
{
	struct conf a, b;

	load(&a, base);
	for (size_t i = 0; i < sizeof(session_cases) / sizeof(session_cases[0]); i++) {
		const struct session_case *t = &session_cases[i];
		char *text = edit(t->from, t->to);
		load(&b, text);
		const struct conf_session *x = find(&a, t->session), *y = find(&b, t->session);
		cr_expect_eq(daemon_reload_session_same(x, y), t->same, "case %zu '%s': want %s", i,
			     t->to, t->same ? "same" : "changed");
		cr_expect_eq(daemon_reload_session_same(y, x), t->same, "case %zu: not symmetric", i);
		conf_free(&b);
		free(text);
	}
	/* Every session equals itself; two sessions never equal each other. */
	cr_expect(daemon_reload_session_same(find(&a, "office"), find(&a, "office")));
	cr_expect_not(daemon_reload_session_same(find(&a, "office"), find(&a, "laptop")));
	conf_free(&a);
}

/* Only the section's line differs: moving a session is not a change. */
Test(reload, line_does_not_count)
{
	struct conf a, b;
	char *text = edit("[global]", "\n\n\n[global]");

	load(&a, base);
	load(&b, text);
	cr_assert_neq(find(&a, "office")->line, find(&b, "office")->line);
	cr_expect(daemon_reload_session_same(find(&a, "office"), find(&b, "office")));
	cr_expect(daemon_reload_session_same(find(&a, "laptop"), find(&b, "laptop")));
	conf_free(&a);
	conf_free(&b);
	free(text);
}
