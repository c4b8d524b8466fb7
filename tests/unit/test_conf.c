/*
 * The configuration: every error with its exact text and line, warnings,
 * [defaults] inheritance, endpoint and listen forms, hooks, the table.
 *
 * Keys: our private key is RFC 7748's Alice, so our public key is known;
 * peers use Bob's public key and made-up (valid base64) keys.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "conf.h"
#include "util.h"

#define OUR_PRIV "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
#define OUR_PUB "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
#define PEER_A "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="
#define PEER_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
#define PEER_C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA="

/* Lines 1-3: a valid [global]. */
#define G "[global]\nprivate_key = " OUR_PRIV "\nlisten = 5555\n"

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
}

TestSuite(conf, .init = setup);

/* Load `text` as "site.conf"; the diagnostics are returned (free them). */
static char *load(struct conf *c, const char *text, unsigned *errors)
{
	char *diag = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&diag, &len);

	cr_assert_not_null(f);
	*errors = conf_load_string(c, text, "site.conf", f);
	cr_assert_eq(fclose(f), 0);
	return diag;
}

static bool conf_is_zeroed(const struct conf *c)
{
	return c->path == NULL && c->sessions == NULL && c->nsessions == 0 &&
	       sodium_is_zero((const unsigned char *)&c->global, sizeof(c->global));
}

struct diag_case {
	const char *what;
	const char *text;
	const char *diag;   /* everything written to diag, exactly */
	unsigned errors;
};

static void check_cases(const struct diag_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct conf c;
		unsigned errors;
		char *diag = load(&c, cases[i].text, &errors);

		cr_expect_str_eq(diag, cases[i].diag, "%s:\n got: %s\nwant: %s", cases[i].what,
				 diag, cases[i].diag);
		cr_expect_eq(errors, cases[i].errors, "%s: %u errors", cases[i].what, errors);
		if (errors)
			cr_expect(conf_is_zeroed(&c), "%s: not freed on error", cases[i].what);
		else
			conf_free(&c);
		free(diag);
	}
}

#define CHECK(cases) check_cases(cases, sizeof(cases) / sizeof(cases[0]))

/* ------------------------------------------------------------ accepted */

Test(conf, minimal_and_defaults)
{
	struct conf c;
	unsigned errors;
	uint8_t want[KEY_LEN];
	size_t len;
	char *diag = load(&c, G "[office]\npublic_key = " PEER_A "\n", &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(diag, "");
	cr_expect_str_eq(c.path, "site.conf");
	cr_expect(c.global.has_private_key);
	cr_assert_eq(sodium_base642bin(want, KEY_LEN, OUR_PUB, strlen(OUR_PUB), NULL, &len, NULL,
				       sodium_base64_VARIANT_ORIGINAL), 0);
	cr_expect_arr_eq(c.global.public_key, want, KEY_LEN);
	cr_expect_str_eq(c.global.user, "");
	cr_expect_str_eq(c.global.group, "");
	cr_expect_eq(c.global.log_sink, LOG_SINK_STDERR);
	cr_expect_eq(c.global.log_level, LOG_LEVEL_INFO);
	cr_expect_str_eq(c.global.control, SALTUN_RUNSTATEDIR "/saltun/control.sock");

	cr_assert_eq(c.nsessions, 1);
	const struct conf_session *s = &c.sessions[0];
	cr_expect_str_eq(s->name, "office");
	cr_expect_eq(s->line, 4);
	cr_expect(s->has_public_key);
	cr_expect_not(s->has_preshared_key);
	cr_expect(sodium_is_zero(s->preshared_key, KEY_LEN));
	cr_expect_not(s->has_endpoint);
	cr_expect_eq(s->transport, CONF_TRANSPORT_UDP);
	cr_expect_eq(s->type, CONF_DEV_TUN);
	cr_expect_str_eq(s->device, "");
	cr_expect_eq(s->mtu, 0);
	cr_expect_str_eq(s->bridge, "");
	cr_expect_eq(s->keepalive, 0);
	cr_expect_eq(s->speed_in_kbit, 0);
	cr_expect_eq(s->speed_out_kbit, 0);
	cr_expect_null(s->up);
	cr_expect_null(s->down);
	cr_expect_null(s->connect);
	cr_expect_null(s->disconnect);
	cr_expect_eq(s->hook_timeout, 30);
	conf_free(&c);
	cr_expect(conf_is_zeroed(&c));
	free(diag);
}

Test(conf, every_key_set)
{
	static const char text[] =
		"[global]\n"
		"private_key = " OUR_PRIV "\n"
		"listen = 192.0.2.1:6000, [2001:db8::1]:6001\n"
		"user = saltun\n"
		"group = nogroup\n"
		"log = syslog\n"
		"log_level = debug\n"
		"control = /run/x/control.sock\n"
		"[x]\n"
		"public_key = " PEER_A "\n"
		"preshared_key = " PEER_B "\n"
		"endpoint = vpn.example.org:7000\n"
		"transport = tcp\n"
		"type = tap\n"
		"device = tap-x\n"
		"mtu = 1400\n"
		"bridge = br0\n"
		"up = echo up %d\n"
		"down = echo down %%\n"
		"connect = echo connect %a %p %A %P\n"
		"disconnect = echo disconnect %h %m\n"
		"keepalive = 3600\n"
		"speed = 2000:500\n"
		"hook_timeout = 3600\n";
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(diag, "");
	cr_expect_eq(c.global.nlisten, 2);
	cr_expect_str_eq(c.global.user, "saltun");
	cr_expect_str_eq(c.global.group, "nogroup");
	cr_expect_eq(c.global.log_sink, LOG_SINK_SYSLOG);
	cr_expect_eq(c.global.log_level, LOG_LEVEL_DEBUG);
	cr_expect_str_eq(c.global.control, "/run/x/control.sock");
	cr_assert_eq(c.nsessions, 1);
	const struct conf_session *s = &c.sessions[0];
	cr_expect(s->has_preshared_key);
	cr_expect_eq(s->preshared_key[0], 0x04); /* "BBBB" = 000001 000001 ... */
	cr_expect(s->has_endpoint);
	cr_expect_str_eq(s->endpoint.host, "vpn.example.org");
	cr_expect_eq(s->endpoint.port, 7000);
	cr_expect_eq(s->transport, CONF_TRANSPORT_TCP);
	cr_expect_eq(s->type, CONF_DEV_TAP);
	cr_expect_str_eq(s->device, "tap-x");
	cr_expect_eq(s->mtu, 1400);
	cr_expect_str_eq(s->bridge, "br0");
	cr_expect_str_eq(s->up, "echo up %d");
	cr_expect_str_eq(s->down, "echo down %%");
	cr_expect_str_eq(s->connect, "echo connect %a %p %A %P");
	cr_expect_str_eq(s->disconnect, "echo disconnect %h %m");
	cr_expect_eq(s->keepalive, 3600);
	cr_expect_eq(s->speed_in_kbit, 2000);
	cr_expect_eq(s->speed_out_kbit, 500);
	cr_expect_eq(s->hook_timeout, 3600);
	conf_free(&c);
	free(diag);
}

Test(conf, defaults_inherited_and_overridden)
{
	static const char text[] =
		G
		"[defaults]\n"
		"type = tap\n"
		"keepalive = 25\n"
		"transport = tcp\n"
		"mtu = 1400\n"
		"endpoint = vpn.example.org\n"
		"preshared_key = " PEER_C "\n"
		"up = ip link set %d up\n"
		"down = ip link set %d down\n"
		"speed = 1000\n"
		"hook_timeout = 5\n"
		"[inherits]\n"
		"public_key = " PEER_A "\n"
		"[overrides]\n"
		"public_key = " PEER_B "\n"
		"type = tun\n"
		"keepalive = 0\n"
		"transport = udp\n"
		"mtu = auto\n"
		"endpoint =\n"
		"preshared_key =\n"
		"up =\n"
		"down = echo bye\n"
		"speed = 0\n"
		"hook_timeout = 60\n";
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(diag, "");
	cr_assert_eq(c.nsessions, 2);

	const struct conf_session *a = &c.sessions[0];
	cr_expect_str_eq(a->name, "inherits");
	cr_expect_eq(a->type, CONF_DEV_TAP);
	cr_expect_eq(a->keepalive, 25);
	cr_expect_eq(a->transport, CONF_TRANSPORT_TCP);
	cr_expect_eq(a->mtu, 1400);
	cr_expect(a->has_endpoint);
	cr_expect_str_eq(a->endpoint.host, "vpn.example.org");
	cr_expect_eq(a->endpoint.port, 5555);
	cr_expect(a->has_preshared_key);
	cr_expect_eq(a->preshared_key[0], 0x08); /* "CCCC" = 000010 000010 ... */
	cr_expect_str_eq(a->up, "ip link set %d up");
	cr_expect_str_eq(a->down, "ip link set %d down");
	cr_expect_eq(a->speed_in_kbit, 1000);
	cr_expect_eq(a->speed_out_kbit, 1000);
	cr_expect_eq(a->hook_timeout, 5);

	const struct conf_session *b = &c.sessions[1];
	cr_expect_str_eq(b->name, "overrides");
	cr_expect_eq(b->type, CONF_DEV_TUN);
	cr_expect_eq(b->keepalive, 0);
	cr_expect_eq(b->transport, CONF_TRANSPORT_UDP);
	cr_expect_eq(b->mtu, 0);
	cr_expect_not(b->has_endpoint);
	cr_expect_not(b->has_preshared_key);
	cr_expect(sodium_is_zero(b->preshared_key, KEY_LEN));
	cr_expect_null(b->up);
	cr_expect_str_eq(b->down, "echo bye");
	cr_expect_eq(b->speed_in_kbit, 0);
	cr_expect_eq(b->hook_timeout, 60);
	/* Inherited hooks are copies, not shared pointers. */
	cr_expect_neq(a->down, b->down);
	conf_free(&c);
	free(diag);
}

Test(conf, defaults_after_sessions_still_apply)
{
	struct conf c;
	unsigned errors;
	char *diag = load(&c, G "[a]\npublic_key = " PEER_A "\n[defaults]\nkeepalive = 7\n", &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_eq(c.sessions[0].keepalive, 7);
	conf_free(&c);
	free(diag);
}

Test(conf, endpoint_forms)
{
	static const struct {
		const char *in;
		const char *host;
		uint16_t port;
		int family; /* AF_UNSPEC: host name, not literal */
		const char *addr;
	} cases[] = {
		{ "1.2.3.4:5", "1.2.3.4", 5, AF_INET, "1.2.3.4" },
		{ "192.0.2.1", "192.0.2.1", 5555, AF_INET, "192.0.2.1" },
		{ "[2001:db8::1]:5", "2001:db8::1", 5, AF_INET6, "2001:db8::1" },
		{ "[2001:db8::1]", "2001:db8::1", 5555, AF_INET6, "2001:db8::1" },
		{ "[::ffff:192.0.2.1]:65535", "::ffff:192.0.2.1", 65535, AF_INET6, "::ffff:192.0.2.1" },
		{ "host.example:5", "host.example", 5, AF_UNSPEC, NULL },
		{ "host.example", "host.example", 5555, AF_UNSPEC, NULL },
		{ "vpn.example.org.:1", "vpn.example.org.", 1, AF_UNSPEC, NULL },
		{ "a-b.c0.example", "a-b.c0.example", 5555, AF_UNSPEC, NULL },
		{ "localhost", "localhost", 5555, AF_UNSPEC, NULL },
		{ "3com.example", "3com.example", 5555, AF_UNSPEC, NULL },
		{ "x.123abc", "x.123abc", 5555, AF_UNSPEC, NULL },
		{ "a23456789012345678901234567890123456789012345678901234567890123.example:9",
		  "a23456789012345678901234567890123456789012345678901234567890123.example", 9,
		  AF_UNSPEC, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf_endpoint ep;
		char why[256] = "";
		char addr[INET6_ADDRSTRLEN];
		uint16_t port;

		cr_assert(conf_parse_endpoint(&ep, cases[i].in, why, sizeof(why)), "%s: %s",
			  cases[i].in, why);
		cr_expect_str_eq(ep.host, cases[i].host, "%s", cases[i].in);
		cr_expect_eq(ep.port, cases[i].port, "%s", cases[i].in);
		cr_expect_eq(ep.is_literal, cases[i].family != AF_UNSPEC, "%s", cases[i].in);
		if (cases[i].family == AF_UNSPEC)
			continue;
		cr_expect_eq(ep.addr.ss_family, cases[i].family, "%s", cases[i].in);
		cr_assert(util_sockaddr_split((const struct sockaddr *)&ep.addr, addr, sizeof(addr),
					      &port));
		cr_expect_str_eq(addr, cases[i].addr, "%s", cases[i].in);
		cr_expect_eq(port, cases[i].port, "%s", cases[i].in);
	}
}

Test(conf, endpoint_errors)
{
	static const struct {
		const char *in;
		const char *why;
	} cases[] = {
		{ "h:70000", "port 70000 out of range in 'h:70000': expected 1-65535" },
		{ "h:0", "port 0 out of range in 'h:0': expected 1-65535" },
		{ "h:99999999999999999999", "port 99999999999999999999 out of range in 'h:99999999999999999999': expected 1-65535" },
		{ "h:abc", "bad port 'abc' in 'h:abc': expected 1-65535" },
		{ "h:-1", "bad port '-1' in 'h:-1': expected 1-65535" },
		{ "h:", "bad port '' in 'h:': expected 1-65535" },
		{ "1.2.3.4:65536", "port 65536 out of range in '1.2.3.4:65536': expected 1-65535" },
		{ "[2001:db8::1]:99999", "port 99999 out of range in '[2001:db8::1]:99999': expected 1-65535" },
		{ "2001:db8::1", "bad endpoint '2001:db8::1': write an IPv6 address in brackets, as [2001:db8::1]:5555" },
		{ "[2001:db8::1", "bad endpoint '[2001:db8::1': expected ']' after the IPv6 address" },
		{ "[2001:db8::1]5", "bad endpoint '[2001:db8::1]5': expected ':PORT' after ']'" },
		{ "[2001:db8::zz]:5", "bad IPv6 address '2001:db8::zz' in '[2001:db8::zz]:5': expected [IPv6]:PORT" },
		{ "[192.0.2.1]:5", "bad IPv6 address '192.0.2.1' in '[192.0.2.1]:5': expected [IPv6]:PORT" },
		{ "-bad.example:5", "bad host '-bad.example' in '-bad.example:5': expected an IPv4 address, [IPv6] address or host name" },
		{ "bad-.example", "bad host 'bad-.example' in 'bad-.example': expected an IPv4 address, [IPv6] address or host name" },
		{ "under_score.example", "bad host 'under_score.example' in 'under_score.example': expected an IPv4 address, [IPv6] address or host name" },
		{ "a..b", "bad host 'a..b' in 'a..b': expected an IPv4 address, [IPv6] address or host name" },
		{ ".a", "bad host '.a' in '.a': expected an IPv4 address, [IPv6] address or host name" },
		{ "1.2.3", "bad host '1.2.3' in '1.2.3': expected an IPv4 address, [IPv6] address or host name" },
		{ "256.1.1.1:5", "bad host '256.1.1.1' in '256.1.1.1:5': expected an IPv4 address, [IPv6] address or host name" },
		{ "host name", "bad host 'host name' in 'host name': expected an IPv4 address, [IPv6] address or host name" },
		{ ":5", "bad host '' in ':5': expected an IPv4 address, [IPv6] address or host name" },
		{ "a234567890123456789012345678901234567890123456789012345678901234.example",
		  "bad host 'a234567890123456789012345678901234567890123456789012345678901234.example' in 'a234567890123456789012345678901234567890123456789012345678901234.example': expected an IPv4 address, [IPv6] address or host name" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf_endpoint ep;
		char why[512] = "";

		cr_expect_not(conf_parse_endpoint(&ep, cases[i].in, why, sizeof(why)), "accepted %s",
			      cases[i].in);
		cr_expect_str_eq(why, cases[i].why, "%s", cases[i].in);
	}
}

Test(conf, hostname_too_long)
{
	char host[300], why[1024];
	struct conf_endpoint ep;

	/* 4 labels of 63 + 3 dots = 255 > 253. */
	memset(host, 'a', sizeof(host));
	host[63] = host[127] = host[191] = '.';
	host[255] = '\0';
	cr_expect_not(conf_parse_endpoint(&ep, host, why, sizeof(why)));
	/* 253 is still fine. */
	host[253] = '\0';
	cr_expect(conf_parse_endpoint(&ep, host, why, sizeof(why)), "%s", why);
	cr_expect_eq(strlen(ep.host), 253);
}

Test(conf, listen_forms)
{
	static const struct {
		const char *value;
		unsigned n;
		const char *addrs[4];
	} cases[] = {
		{ "5555", 2, { "0.0.0.0:5555", "[::]:5555" } },
		{ "0.0.0.0:5555, [::]:5555", 2, { "0.0.0.0:5555", "[::]:5555" } },
		{ "192.0.2.1:1,[2001:db8::1]:2 , 3", 4,
		  { "192.0.2.1:1", "[2001:db8::1]:2", "0.0.0.0:3", "[::]:3" } },
		{ "192.0.2.1", 1, { "192.0.2.1:5555" } },
		{ "", 0, { NULL } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		struct conf c;
		unsigned errors;
		char *diag;

		snprintf(text, sizeof(text),
			 "[global]\nprivate_key = %s\nlisten = %s\n[a]\npublic_key = %s\nendpoint = 192.0.2.9\n",
			 OUR_PRIV, cases[i].value, PEER_A);
		diag = load(&c, text, &errors);
		cr_assert_eq(errors, 0, "%s: %s", cases[i].value, diag);
		cr_expect_eq(c.global.nlisten, cases[i].n, "%s", cases[i].value);
		for (unsigned j = 0; j < c.global.nlisten && j < cases[i].n; j++) {
			char buf[UTIL_ADDRSTRLEN];
			util_sockaddr_str((const struct sockaddr *)&c.global.listen[j], buf, sizeof(buf));
			cr_expect_str_eq(buf, cases[i].addrs[j], "%s [%u]", cases[i].value, j);
		}
		conf_free(&c);
		free(diag);
	}
}

Test(conf, multiline_hooks)
{
	static const char text[] =
		G
		"[a]\n"
		"public_key = " PEER_A "\n"
		"up = ip address add 198.18.0.1/30 dev %d\n"
		"    ip link set %d up   ; inline comments go\n"
		"\n"
		"\tip route add 198.18.1.0/24 dev %d\n"
		"down =\n"
		"    ip link set %d down\n"
		"    echo %h gone\n"
		"connect = one line\n"
		"; a comment between keys\n"
		"disconnect =\n"
		"  first\n"
		"  ; an indented comment is a comment\n"
		"  second\n";
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(diag, "");
	cr_expect_str_eq(c.sessions[0].up, "ip address add 198.18.0.1/30 dev %d\n"
					   "ip link set %d up\n"
					   "ip route add 198.18.1.0/24 dev %d");
	cr_expect_str_eq(c.sessions[0].down, "ip link set %d down\necho %h gone");
	cr_expect_str_eq(c.sessions[0].connect, "one line");
	cr_expect_str_eq(c.sessions[0].disconnect, "first\nsecond");
	conf_free(&c);
	free(diag);
}

Test(conf, device_patterns_are_not_duplicates)
{
	static const char text[] = G "[a]\npublic_key = " PEER_A "\ndevice = tun%d\n"
				     "[b]\npublic_key = " PEER_B "\ndevice = tun%d\n";
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors);

	cr_expect_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(diag, "");
	cr_expect_str_eq(c.sessions[1].device, "tun%d");
	conf_free(&c);
	free(diag);
}

Test(conf, names_at_the_limits)
{
	static const char text[] = G "[abcdefghijklmno]\npublic_key = " PEER_A "\n"
				     "device = a.b-c_d01234567\nbridge = br-0.1_2\ntype = tap\n"
				     "[x]\npublic_key = " PEER_B "\ndevice = abcdefghijklm%d\n";
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(c.sessions[0].name, "abcdefghijklmno");
	cr_expect_str_eq(c.sessions[0].device, "a.b-c_d01234567");
	cr_expect_str_eq(c.sessions[0].bridge, "br-0.1_2");
	cr_expect_str_eq(c.sessions[1].device, "abcdefghijklm%d");
	conf_free(&c);
	free(diag);
}

Test(conf, numbers_at_the_limits)
{
	static const struct {
		const char *line;
		unsigned mtu, keepalive, hook_timeout, in, out;
		const char *diag;
	} cases[] = {
		{ "mtu = 576", 576, 0, 30, 0, 0,
		  "site.conf:6: warning: mtu 576 is below 1280: IPv6 needs at least 1280\n" },
		{ "mtu = 1279", 1279, 0, 30, 0, 0,
		  "site.conf:6: warning: mtu 1279 is below 1280: IPv6 needs at least 1280\n" },
		{ "mtu = 1280", 1280, 0, 30, 0, 0, "" },
		{ "mtu = 65535", 65535, 0, 30, 0, 0, "" },
		{ "keepalive = 0", 0, 0, 30, 0, 0, "" },
		{ "keepalive = 3600", 0, 3600, 30, 0, 0, "" },
		{ "hook_timeout = 1", 0, 0, 1, 0, 0, "" },
		{ "speed = 0", 0, 0, 30, 0, 0, "" },
		{ "speed = 4294967295:1", 0, 0, 30, 4294967295u, 1, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		struct conf c;
		unsigned errors;
		char *diag;

		snprintf(text, sizeof(text), G "[a]\npublic_key = %s\n%s\n", PEER_A, cases[i].line);
		diag = load(&c, text, &errors);
		cr_assert_eq(errors, 0, "%s: %s", cases[i].line, diag);
		cr_expect_str_eq(diag, cases[i].diag, "%s", cases[i].line);
		cr_expect_eq(c.sessions[0].mtu, cases[i].mtu, "%s", cases[i].line);
		cr_expect_eq(c.sessions[0].keepalive, cases[i].keepalive, "%s", cases[i].line);
		cr_expect_eq(c.sessions[0].hook_timeout, cases[i].hook_timeout, "%s", cases[i].line);
		cr_expect_eq(c.sessions[0].speed_in_kbit, cases[i].in, "%s", cases[i].line);
		cr_expect_eq(c.sessions[0].speed_out_kbit, cases[i].out, "%s", cases[i].line);
		conf_free(&c);
		free(diag);
	}
}

Test(conf, line_length_limit)
{
	char text[1024], hook[256];
	struct conf c;
	unsigned errors;
	char *diag;

	/* "up = " + 194 characters = 199: the longest line accepted. */
	memset(hook, 'x', 194);
	hook[194] = '\0';
	snprintf(text, sizeof(text), G "[a]\npublic_key = %s\nup = %s\n", PEER_A, hook);
	diag = load(&c, text, &errors);
	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(c.sessions[0].up, hook);
	conf_free(&c);
	free(diag);

	/* One more is refused, and the lines after it keep their numbers. */
	hook[194] = 'x';
	hook[195] = '\0';
	snprintf(text, sizeof(text), G "[a]\npublic_key = %s\nup = %s\nmtu = 1\n", PEER_A, hook);
	diag = load(&c, text, &errors);
	cr_expect_eq(errors, 2);
	cr_expect_str_eq(diag, "site.conf:6: line too long (at most 199 characters)\n"
			       "site.conf:7: mtu 1 out of range: expected 576-65535\n");
	free(diag);
}

Test(conf, crlf_and_bom)
{
	static const char text[] = "\xEF\xBB\xBF[global]\r\nprivate_key = " OUR_PRIV "\r\n"
				   "listen = 5555\r\n[a]\r\npublic_key = " PEER_A "\r\n"
				   "up = one\r\n  two\r\n";
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(c.sessions[0].name, "a");
	cr_expect_str_eq(c.sessions[0].up, "one\ntwo");
	conf_free(&c);
	free(diag);
}

Test(conf, print_table)
{
	static const char text[] =
		"[global]\nprivate_key = " OUR_PRIV "\nlisten = 192.0.2.1:5555\n"
		"[office]\npublic_key = " PEER_A "\ntype = tap\ndevice = tap-office\n"
		"endpoint = vpn.example.org:5555\n"
		"[laptop]\npublic_key = " PEER_B "\ntransport = tcp\nmtu = 1380\n"
		"[v6]\npublic_key = " PEER_C "\nendpoint = [2001:db8::1]:6000\n";
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors), *out = NULL;
	size_t len = 0;
	FILE *f;

	cr_assert_eq(errors, 0, "%s", diag);
	f = open_memstream(&out, &len);
	conf_print(&c, f);
	fclose(f);
	cr_expect_str_eq(out,
		"public key  " OUR_PUB "\n"
		"listen      192.0.2.1:5555\n"
		"\n"
		"session  type  device      endpoint              transport  mtu   public key\n"
		"office   tap   tap-office  vpn.example.org:5555  udp        auto  " PEER_A "\n"
		"laptop   tun   auto        waits for peer        tcp        1380  " PEER_B "\n"
		"v6       tun   auto        [2001:db8::1]:6000    udp        auto  " PEER_C "\n");
	cr_expect_str_eq(conf_devtype_name(CONF_DEV_TUN), "tun");
	cr_expect_str_eq(conf_devtype_name(CONF_DEV_TAP), "tap");
	cr_expect_str_eq(conf_transport_name(CONF_TRANSPORT_UDP), "udp");
	cr_expect_str_eq(conf_transport_name(CONF_TRANSPORT_TCP), "tcp");
	conf_free(&c);
	free(out);
	free(diag);
}

/* ------------------------------------------------------------- errors */

Test(conf, error_unknown_key_and_section)
{
	static const struct diag_case cases[] = {
		{ "unknown key in a session",
		  G "\n[office]\npublic_key = " PEER_A "\nendpont = vpn.example.org\n",
		  "site.conf:7: unknown key 'endpont' in session [office]\n", 1 },
		{ "unknown key in [global]", G "foo = 1\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: unknown key 'foo' in [global]\n", 1 },
		{ "unknown key in [defaults]", G "[defaults]\nPublic_Key = x\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:5: unknown key 'Public_Key' in [defaults]\n", 1 },
		{ "key before any section", "mtu = 1400\n" G "[a]\npublic_key = " PEER_A "\n",
		  "site.conf:1: key 'mtu' outside any section: expected [global], [defaults] or a session section first\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_key_in_wrong_section)
{
	static const struct diag_case cases[] = {
		{ "session key in [global]",
		  "[global]\nprivate_key = " OUR_PRIV "\npublic_key = " PEER_A "\nlisten = 5555\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:3: key 'public_key' belongs in a session section, not [global]\n", 1 },
		{ "hook in [global]", G "up = true\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: key 'up' belongs in a session section, not [global]\n", 1 },
		{ "global key in a session", G "[a]\npublic_key = " PEER_A "\nlisten = 1\n",
		  "site.conf:6: key 'listen' belongs in [global], not session [a]\n", 1 },
		{ "global key in [defaults]", G "[defaults]\nprivate_key = " OUR_PRIV "\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:5: key 'private_key' belongs in [global], not [defaults]\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_missing_and_bad_keys)
{
	static const struct diag_case cases[] = {
		{ "no private_key", "[global]\nlisten = 5555\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf: missing private_key in [global]\n", 1 },
		{ "no [global] at all", "[a]\npublic_key = " PEER_A "\nendpoint = 192.0.2.1\n",
		  "site.conf: missing private_key in [global]\n", 1 },
		{ "short public_key", G "[a]\npublic_key = abc\n",
		  "site.conf:5: bad public_key 'abc': expected 32-byte base64 key (44 characters)\n", 1 },
		{ "public_key of 31 bytes", G "[a]\npublic_key = hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==\n",
		  "site.conf:5: bad public_key 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==': expected 32-byte base64 key (44 characters)\n", 1 },
		{ "public_key not base64", G "[a]\npublic_key = hSDwCYkwp1R0i33ctD73Wg2*Og0mOBr066SpjqqbTmo=\n",
		  "site.conf:5: bad public_key 'hSDwCYkwp1R0i33ctD73Wg2*Og0mOBr066SpjqqbTmo=': expected 32-byte base64 key (44 characters)\n", 1 },
		{ "inline private_key is never echoed",
		  "[global]\nprivate_key = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC=\nlisten = 5555\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:2: bad private_key (value not shown): expected 32-byte base64 key (44 characters)\n", 1 },
		{ "inline preshared_key is never echoed", G "[a]\npublic_key = " PEER_A "\npreshared_key = secret\n",
		  "site.conf:6: bad preshared_key (value not shown): expected 32-byte base64 key (44 characters)\n", 1 },
		{ "session without public_key", G "[a]\nendpoint = 192.0.2.1\n",
		  "site.conf:4: session [a] has no public_key\n", 1 },
		{ "our own public key", G "[a]\npublic_key = " OUR_PUB "\n",
		  "site.conf:5: public_key of session [a] is our own public key (from private_key): expected the peer's key\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_duplicates)
{
	static const struct diag_case cases[] = {
		{ "duplicate public_key",
		  "[global]\nprivate_key = " OUR_PRIV "\n[office]\npublic_key = " PEER_A "\n"
		  "endpoint = vpn.example.org\n;\n;\n;\n;\n;\n;\n;\n[home]\npublic_key = " PEER_A "\n"
		  "endpoint = 192.0.2.1\n",
		  "site.conf:14: duplicate public_key: already used by session [office] (line 4)\n", 1 },
		{ "duplicate device",
		  G "[office]\npublic_key = " PEER_A "\ndevice = tun0\n;\n;\n;\n;\n;\n;\n"
		  "[home]\npublic_key = " PEER_B "\ndevice = tun0\n",
		  "site.conf:15: duplicate device 'tun0': already used by session [office]\n", 1 },
		{ "duplicate key", G "[a]\npublic_key = " PEER_A "\nmtu = 1400\nmtu = 1500\n",
		  "site.conf:7: duplicate key 'mtu' in session [a]: first set at line 6\n", 1 },
		{ "duplicate hook", G "[a]\npublic_key = " PEER_A "\nup = a\nup = b\n",
		  "site.conf:7: duplicate key 'up' in session [a]: first set at line 6\n", 1 },
		{ "duplicate key in [global]", G "listen = 1\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: duplicate key 'listen' in [global]: first set at line 3\n", 1 },
		{ "indented key continues a non-hook", G "[a]\npublic_key = " PEER_A "\nmtu = 1400\n  keepalive = 25\n",
		  "site.conf:7: duplicate key 'mtu': an indented line continues it, and only up, down, connect and disconnect may span several lines (remove the indentation to start a new key)\n", 1 },
		{ "duplicate session", G "[a]\npublic_key = " PEER_A "\n[a]\nmtu = 1400\n",
		  "site.conf:6: duplicate section [a]: first at line 4\n", 1 },
		{ "duplicate [global]", G "[global]\nlog = syslog\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: duplicate section [global]: first at line 1\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_values)
{
	static const struct diag_case cases[] = {
		{ "type", G "[a]\npublic_key = " PEER_A "\ntype = tan\n",
		  "site.conf:6: bad type 'tan': expected tun or tap\n", 1 },
		{ "transport", G "[a]\npublic_key = " PEER_A "\ntransport = sctp\n",
		  "site.conf:6: bad transport 'sctp': expected udp or tcp\n", 1 },
		{ "bridge on tun",
		  G "[x]\npublic_key = " PEER_A "\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\nbridge = br0\n",
		  "site.conf:20: 'bridge' is only valid for type = tap (session [x] is tun)\n", 1 },
		{ "bridge from [defaults] on tun",
		  G "[defaults]\nbridge = br0\n[x]\npublic_key = " PEER_A "\n",
		  "site.conf:5: 'bridge' is only valid for type = tap (session [x] is tun)\n", 1 },
		{ "mtu too big",
		  G "[a]\npublic_key = " PEER_A "\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\n;\nmtu = 70000\n",
		  "site.conf:21: mtu 70000 out of range: expected 576-65535\n", 1 },
		{ "mtu 65536", G "[a]\npublic_key = " PEER_A "\nmtu = 65536\n",
		  "site.conf:6: mtu 65536 out of range: expected 576-65535\n", 1 },
		{ "mtu too small", G "[a]\npublic_key = " PEER_A "\nmtu = 575\n",
		  "site.conf:6: mtu 575 out of range: expected 576-65535\n", 1 },
		{ "mtu not a number", G "[a]\npublic_key = " PEER_A "\nmtu = -1\n",
		  "site.conf:6: bad mtu '-1': expected 576-65535 or auto\n", 1 },
		{ "mtu below 1280 warns", G "[a]\npublic_key = " PEER_A "\nmtu = 1000\n",
		  "site.conf:6: warning: mtu 1000 is below 1280: IPv6 needs at least 1280\n", 0 },
		{ "negative keepalive", G "[a]\npublic_key = " PEER_A "\nkeepalive = -1\n",
		  "site.conf:6: bad keepalive '-1': expected seconds 0-3600 (0 = off)\n", 1 },
		{ "absurd keepalive", G "[a]\npublic_key = " PEER_A "\nkeepalive = 3601\n",
		  "site.conf:6: keepalive 3601 out of range: expected 0-3600 seconds (0 = off)\n", 1 },
		{ "huge keepalive", G "[a]\npublic_key = " PEER_A "\nkeepalive = 99999999999999999999999\n",
		  "site.conf:6: keepalive 99999999999999999999999 out of range: expected 0-3600 seconds (0 = off)\n", 1 },
		{ "hook_timeout 0", G "[a]\npublic_key = " PEER_A "\nhook_timeout = 0\n",
		  "site.conf:6: hook_timeout 0 out of range: expected 1-3600 seconds\n", 1 },
		{ "hook_timeout 3601", G "[a]\npublic_key = " PEER_A "\nhook_timeout = 3601\n",
		  "site.conf:6: hook_timeout 3601 out of range: expected 1-3600 seconds\n", 1 },
		{ "hook_timeout word", G "[a]\npublic_key = " PEER_A "\nhook_timeout = 5s\n",
		  "site.conf:6: bad hook_timeout '5s': expected seconds 1-3600\n", 1 },
		{ "speed word", G "[a]\npublic_key = " PEER_A "\nspeed = fast\n",
		  "site.conf:6: bad speed 'fast': expected KBITS or IN:OUT in kbit/s (0 = unlimited)\n", 1 },
		{ "speed half", G "[a]\npublic_key = " PEER_A "\nspeed = 1000:\n",
		  "site.conf:6: bad speed '1000:': expected KBITS or IN:OUT in kbit/s (0 = unlimited)\n", 1 },
		{ "speed too big", G "[a]\npublic_key = " PEER_A "\nspeed = 4294967296\n",
		  "site.conf:6: bad speed '4294967296': expected KBITS or IN:OUT in kbit/s (0 = unlimited)\n", 1 },
		{ "endpoint port", G "\n\n\n\n\n\n[a]\npublic_key = " PEER_A "\nendpoint = h:70000\n",
		  "site.conf:12: port 70000 out of range in 'h:70000': expected 1-65535\n", 1 },
		{ "endpoint host", G "[a]\npublic_key = " PEER_A "\nendpoint = -h:1\n",
		  "site.conf:6: bad host '-h' in '-h:1': expected an IPv4 address, [IPv6] address or host name\n", 1 },
		{ "endpoint IPv6 without brackets", G "[a]\npublic_key = " PEER_A "\nendpoint = 2001:db8::1\n",
		  "site.conf:6: bad endpoint '2001:db8::1': write an IPv6 address in brackets, as [2001:db8::1]:5555\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_global_values)
{
	static const struct diag_case cases[] = {
		{ "listen host name", "[global]\nprivate_key = " OUR_PRIV "\nlisten = vpn.example.org:5555\n[a]\npublic_key = " PEER_A "\nendpoint = 192.0.2.1\n",
		  "site.conf:3: bad listen address 'vpn.example.org:5555': expected IPv4:PORT, [IPv6]:PORT or a bare PORT (an address, not a host name)\n", 1 },
		{ "listen port", "[global]\nprivate_key = " OUR_PRIV "\nlisten = 70000\n[a]\npublic_key = " PEER_A "\nendpoint = 192.0.2.1\n",
		  "site.conf:3: port 70000 out of range in '70000': expected 1-65535\n", 1 },
		{ "listen IPv6 port", "[global]\nprivate_key = " OUR_PRIV "\nlisten = [::]:0\n[a]\npublic_key = " PEER_A "\nendpoint = 192.0.2.1\n",
		  "site.conf:3: port 0 out of range in '[::]:0': expected 1-65535\n", 1 },
		{ "listen twice the same", "[global]\nprivate_key = " OUR_PRIV "\nlisten = 5555, 0.0.0.0:5555\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:3: duplicate listen address 0.0.0.0:5555 in '5555, 0.0.0.0:5555'\n", 1 },
		{ "listen too many", "[global]\nprivate_key = " OUR_PRIV "\nlisten = 1,2,3,4,5\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:3: too many listen addresses in '1,2,3,4,5': at most 8\n", 1 },
		{ "listen empty item", "[global]\nprivate_key = " OUR_PRIV "\nlisten = 5555,\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:3: bad listen address '' in '5555,': expected IPv4:PORT, [IPv6]:PORT or a bare PORT\n", 1 },
		{ "log", G "log = file\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad log 'file': expected stderr or syslog\n", 1 },
		{ "log_level", G "log_level = trace\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad log_level 'trace': expected error, warn, info or debug\n", 1 },
		{ "control relative", G "control = run/x.sock\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad control 'run/x.sock': expected an absolute path of at most 107 characters\n", 1 },
		{ "user", G "user = a b\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad user 'a b': expected a name of 1-63 characters of A-Z a-z 0-9 _ . -\n", 1 },
		{ "group", G "group = -x\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad group '-x': expected a name of 1-63 characters of A-Z a-z 0-9 _ . -\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_names)
{
	static const struct diag_case cases[] = {
		{ "session name with a space", G "[bad name]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad session name 'bad name': expected 1-15 characters of A-Z a-z 0-9 _ . -\n", 1 },
		{ "session name of 16", G "[abcdefghijklmnop]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad session name 'abcdefghijklmnop': expected 1-15 characters of A-Z a-z 0-9 _ . -\n", 1 },
		{ "session name with a slash", G "[a/b]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad session name 'a/b': expected 1-15 characters of A-Z a-z 0-9 _ . -\n", 1 },
		{ "session name ..", G "[..]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad session name '..': expected 1-15 characters of A-Z a-z 0-9 _ . -\n", 1 },
		{ "empty session name", G "[]\npublic_key = " PEER_A "\n",
		  "site.conf:4: bad session name '': expected 1-15 characters of A-Z a-z 0-9 _ . -\n", 1 },
		{ "device with a space", G "[a]\npublic_key = " PEER_A "\ndevice = tun 0\n",
		  "site.conf:6: bad device 'tun 0': expected 1-15 characters of A-Z a-z 0-9 _ . - (at most one %d)\n", 1 },
		{ "device of 16", G "[a]\npublic_key = " PEER_A "\ndevice = abcdefghijklmnop\n",
		  "site.conf:6: bad device 'abcdefghijklmnop': expected 1-15 characters of A-Z a-z 0-9 _ . - (at most one %d)\n", 1 },
		{ "device with two %d", G "[a]\npublic_key = " PEER_A "\ndevice = t%d%d\n",
		  "site.conf:6: bad device 't%d%d': expected 1-15 characters of A-Z a-z 0-9 _ . - (at most one %d)\n", 1 },
		{ "device with %s", G "[a]\npublic_key = " PEER_A "\ndevice = tun%s\n",
		  "site.conf:6: bad device 'tun%s': expected 1-15 characters of A-Z a-z 0-9 _ . - (at most one %d)\n", 1 },
		{ "bridge with a pattern", G "[a]\npublic_key = " PEER_A "\ntype = tap\nbridge = br%d\n",
		  "site.conf:7: bad bridge 'br%d': expected 1-15 characters of A-Z a-z 0-9 _ . -\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_hooks)
{
	static const struct diag_case cases[] = {
		{ "unknown sequence", G "[a]\npublic_key = " PEER_A "\nup = ip link set %x up\n",
		  "site.conf:6: unknown substitution '%x' in up hook: expected one of %d %% %h %a %p %A %P %m\n", 1 },
		{ "percent at the end", G "[a]\npublic_key = " PEER_A "\ndown = echo 100%\n",
		  "site.conf:6: unknown substitution '%' in down hook: expected one of %d %% %h %a %p %A %P %m\n", 1 },
		{ "in a continuation line", G "[a]\npublic_key = " PEER_A "\nconnect = echo %a\n  date +%s\n",
		  "site.conf:7: unknown substitution '%s' in connect hook: expected one of %d %% %h %a %p %A %P %m\n", 1 },
		{ "in [defaults]", G "[defaults]\ndisconnect = echo %D\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:5: unknown substitution '%D' in disconnect hook: expected one of %d %% %h %a %p %A %P %m\n", 1 },
	};
	CHECK(cases);
}

Test(conf, error_syntax)
{
	static const struct diag_case cases[] = {
		{ "no '='", G "[a]\npublic_key = " PEER_A "\nmtu 1400\n",
		  "site.conf:6: expected 'key = value', '[section]' or a comment\n", 1 },
		/* The keys below a broken header are skipped, not blamed on
		 * the session above it. */
		{ "unclosed section", G "[ok]\npublic_key = " PEER_B "\n[a\npublic_key = " PEER_A "\n",
		  "site.conf:6: expected ']' to close the section name\n", 1 },
		{ "text after a section", G "[ok]\npublic_key = " PEER_B "\n[a] b\npublic_key = " PEER_A "\n",
		  "site.conf:6: unexpected text 'b' after the section name\n", 1 },
		{ "no key name", G "[a]\npublic_key = " PEER_A "\n= 5\n",
		  "site.conf:6: missing key name before '='\n", 1 },
	};
	CHECK(cases);
}

Test(conf, warnings_only)
{
	static const struct diag_case cases[] = {
		{ "nobody can dial", "[global]\nprivate_key = " OUR_PRIV "\n[a]\npublic_key = " PEER_A "\n",
		  "site.conf:3: warning: session [a] has no endpoint and [global] has no listen: neither side can start the connection\n", 0 },
		{ "no sessions", G,
		  "site.conf: warning: no sessions: add one section per peer\n", 0 },
	};
	CHECK(cases);
}

Test(conf, messages_in_line_order)
{
	/* Found in the order 6 (bad type), 0 (no private_key), 4 (no
	 * public_key); printed by line, file-wide messages last. */
	static const struct diag_case cases[] = {
		{ "line order", "[global]\nlisten = 5555\n\n[a]\nendpoint = 192.0.2.1\ntype = x\n",
		  "site.conf:4: session [a] has no public_key\n"
		  "site.conf:6: bad type 'x': expected tun or tap\n"
		  "site.conf: missing private_key in [global]\n", 3 },
	};
	CHECK(cases);
}

Test(conf, five_errors_all_reported)
{
	static const char text[] =
		"[global]\n"                                  /* 1 */
		"private_key = " OUR_PRIV "\n"                /* 2 */
		"listen = 5555\n"                             /* 3 */
		"colour = blue\n"                             /* 4: unknown key */
		"[office]\n"                                  /* 5 */
		"public_key = " PEER_A "\n"                   /* 6 */
		"type = tan\n"                                /* 7: bad type */
		"endpoint = vpn.example.org:99999\n"          /* 8: port out of range */
		"[home]\n"                                    /* 9 */
		"public_key = " PEER_A "\n"                   /* 10: duplicate key */
		"mtu = 100\n";                                /* 11: mtu out of range */
	struct conf c;
	unsigned errors;
	char *diag = load(&c, text, &errors);

	cr_expect_eq(errors, 5);
	cr_expect_str_eq(diag,
		"site.conf:4: unknown key 'colour' in [global]\n"
		"site.conf:7: bad type 'tan': expected tun or tap\n"
		"site.conf:8: port 99999 out of range in 'vpn.example.org:99999': expected 1-65535\n"
		"site.conf:10: duplicate public_key: already used by session [office] (line 6)\n"
		"site.conf:11: mtu 100 out of range: expected 576-65535\n");
	cr_expect(conf_is_zeroed(&c));
	free(diag);
}

/* ------------------------------------------------------ files on disk */

static char tmpdir[64];

static void tmp_setup(void)
{
	setup();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/saltun-test-conf.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(conf, key_files, .init = tmp_setup, .fini = tmp_teardown)
{
	char priv[128], psk[128], pub[128], bad[128], text[1024], want[2048];
	struct conf c;
	unsigned errors;
	char *diag;

	snprintf(priv, sizeof(priv), "%s/private.key", tmpdir);
	snprintf(psk, sizeof(psk), "%s/a.psk", tmpdir);
	snprintf(pub, sizeof(pub), "%s/a.pub", tmpdir);
	snprintf(bad, sizeof(bad), "%s/bad.key", tmpdir);
	write_file(priv, OUR_PRIV "\n", 0600);
	write_file(psk, PEER_B "\n", 0600);
	write_file(pub, PEER_A "\n", 0644); /* public: no warning */
	write_file(bad, "not a key\n", 0600);

	/* Good files: no diagnostics at all. */
	snprintf(text, sizeof(text),
		 "[global]\nprivate_key = %s\nlisten = 5555\n[a]\npublic_key = %s\npreshared_key = %s\n",
		 priv, pub, psk);
	diag = load(&c, text, &errors);
	cr_expect_eq(errors, 0);
	cr_expect_str_eq(diag, "");
	cr_expect(c.sessions[0].has_preshared_key);
	cr_expect_eq(c.sessions[0].preshared_key[0], 0x04);
	conf_free(&c);
	free(diag);

	/* Secrets readable by others: warnings, not errors. */
	cr_assert_eq(chmod(priv, 0640), 0);
	cr_assert_eq(chmod(psk, 0604), 0);
	diag = load(&c, text, &errors);
	cr_expect_eq(errors, 0);
	snprintf(want, sizeof(want),
		 "site.conf:2: warning: key file %s is readable by group or others; fix with: chmod 600 %s\n"
		 "site.conf:6: warning: key file %s is readable by group or others; fix with: chmod 600 %s\n",
		 priv, priv, psk, psk);
	cr_expect_str_eq(diag, want);
	conf_free(&c);
	free(diag);

	/* Missing, bad and not-a-file key files. */
	snprintf(text, sizeof(text),
		 "[global]\nprivate_key = %s/nokey\nlisten = 5555\n[a]\npublic_key = %s\npreshared_key = %s\n"
		 "[b]\npublic_key = %s\n",
		 tmpdir, bad, tmpdir, PEER_C);
	diag = load(&c, text, &errors);
	cr_expect_eq(errors, 3);
	snprintf(want, sizeof(want),
		 "site.conf:2: private key file %s/nokey: cannot open: No such file or directory\n"
		 "site.conf:5: public key file %s: expected 32-byte base64 key (44 characters)\n"
		 "site.conf:6: preshared key file %s: not a regular file\n",
		 tmpdir, bad, tmpdir);
	cr_expect_str_eq(diag, want);
	free(diag);
}

Test(conf, load_file_relative_keys, .init = tmp_setup, .fini = tmp_teardown)
{
	char path[128], keypath[128], text[512], *diag = NULL;
	size_t len = 0;
	struct conf c;
	unsigned errors;
	FILE *f;

	snprintf(keypath, sizeof(keypath), "%s/private.key", tmpdir);
	write_file(keypath, OUR_PRIV "\n", 0600);
	snprintf(path, sizeof(path), "%s/saltun.conf", tmpdir);
	/* "./private.key" is next to the config, whatever the cwd is. */
	snprintf(text, sizeof(text),
		 "[global]\nprivate_key = ./private.key\nlisten = 5555\n[a]\npublic_key = %s\n", PEER_A);
	write_file(path, text, 0600);

	f = open_memstream(&diag, &len);
	errors = conf_load(&c, path, f);
	fclose(f);
	cr_assert_eq(errors, 0, "%s", diag);
	cr_expect_str_eq(diag, "");
	cr_expect_str_eq(c.path, path);
	cr_expect_eq(c.nsessions, 1);
	conf_free(&c);
	free(diag);
}

Test(conf, load_file_inline_secret_in_readable_file, .init = tmp_setup,
     .fini = tmp_teardown)
{
	char path[128], want[512], *diag = NULL;
	size_t len = 0;
	struct conf c;
	unsigned errors;
	FILE *f;

	snprintf(path, sizeof(path), "%s/saltun.conf", tmpdir);
	write_file(path, G "[a]\npublic_key = " PEER_A "\n", 0644);
	f = open_memstream(&diag, &len);
	errors = conf_load(&c, path, f);
	fclose(f);
	cr_expect_eq(errors, 0);
	snprintf(want, sizeof(want),
		 "%s:2: warning: private_key is inline and %s is readable by group or others; fix with: chmod 600 %s\n",
		 path, path, path);
	cr_expect_str_eq(diag, want);
	conf_free(&c);
	free(diag);
}

Test(conf, load_file_missing, .init = tmp_setup, .fini = tmp_teardown)
{
	char path[128], want[512], *diag = NULL;
	size_t len = 0;
	struct conf c;
	FILE *f;

	snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
	f = open_memstream(&diag, &len);
	cr_expect_eq(conf_load(&c, path, f), 1);
	fclose(f);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory\n", path);
	cr_expect_str_eq(diag, want);
	cr_expect(conf_is_zeroed(&c));
	free(diag);

	diag = NULL;
	f = open_memstream(&diag, &len);
	cr_expect_eq(conf_load(&c, tmpdir, f), 1);
	fclose(f);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory\n", tmpdir);
	cr_expect_str_eq(diag, want);
	free(diag);
}

/* The privileged process hands a reloaded config to the network process
 * as bytes (conf_serialize): every key survives, hooks included (NULL ones
 * stay NULL), and a blob cut short or altered anywhere is refused. */
Test(conf, serialize_round_trip_and_refusals)
{
	static const char text[] =
		G
		"user = nobody\n"
		"control = /run/x/c.sock\n"
		"[x]\n"
		"public_key = " PEER_A "\n"
		"preshared_key = " PEER_B "\n"
		"endpoint = vpn.example.org:7000\n"
		"type = tap\n"
		"device = tap-x\n"
		"bridge = br0\n"
		"up = echo up %d\n"
		"down = echo down\n"
		"  continued\n"
		"[y]\n"
		"public_key = " PEER_C "\n"
		"mtu = 1400\n";
	struct conf c, back;
	unsigned errors;
	uint8_t *blob;
	size_t len;
	char *diag = load(&c, text, &errors);

	cr_assert_eq(errors, 0, "%s", diag);
	free(diag);
	cr_assert_eq(conf_serialize(&c, &blob, &len), 0);
	cr_assert_eq(conf_deserialize(&back, blob, len), 0);
	cr_assert_str_eq(back.path, c.path);
	cr_assert_eq(memcmp(&back.global, &c.global, sizeof(c.global)), 0);
	cr_assert_eq(back.nsessions, 2);
	for (unsigned i = 0; i < 2; i++) {
		const struct conf_session *a = &c.sessions[i], *b = &back.sessions[i];
		cr_assert_str_eq(b->name, a->name);
		cr_assert_eq(memcmp(b->public_key, a->public_key, KEY_LEN), 0);
		cr_assert_eq(memcmp(b->preshared_key, a->preshared_key, KEY_LEN), 0);
		cr_assert_str_eq(b->endpoint.host, a->endpoint.host);
		cr_assert_eq(b->endpoint.port, a->endpoint.port);
		cr_assert_eq(b->type, a->type);
		cr_assert_str_eq(b->device, a->device);
		cr_assert_str_eq(b->bridge, a->bridge);
		cr_assert_eq(b->mtu, a->mtu);
		cr_assert_eq(b->hook_timeout, a->hook_timeout);
	}
	cr_assert_str_eq(back.sessions[0].up, "echo up %d");
	cr_assert_str_eq(back.sessions[0].down, "echo down\ncontinued");
	cr_assert_null(back.sessions[0].connect);
	cr_assert_null(back.sessions[1].up);
	cr_assert_eq(back.sessions[1].mtu, 1400);
	conf_free(&back);

	/* Every truncation is refused, leaving the output zeroed. */
	for (size_t cut = 0; cut < len; cut++) {
		cr_assert_eq(conf_deserialize(&back, blob, cut), -EINVAL, "cut at %zu of %zu", cut, len);
		cr_assert(conf_is_zeroed(&back));
	}
	/* Trailing bytes, a wrong magic, an unterminated session name. */
	uint8_t *longer = malloc(len + 1);
	cr_assert_not_null(longer);
	memcpy(longer, blob, len);
	longer[len] = 0;
	cr_assert_eq(conf_deserialize(&back, longer, len + 1), -EINVAL);
	longer[0] ^= 1;
	cr_assert_eq(conf_deserialize(&back, longer, len), -EINVAL);
	longer[0] ^= 1;
	size_t name_at = 8 + 4 + strlen(c.path) + sizeof(struct conf_global) +
			 offsetof(struct conf_session, name);
	memset(longer + name_at, 'A', sizeof(c.sessions[0].name));
	cr_assert_eq(conf_deserialize(&back, longer, len), -EINVAL);
	cr_assert(conf_is_zeroed(&back));
	free(longer);
	sodium_memzero(blob, len);
	free(blob);
	conf_free(&c);
}
