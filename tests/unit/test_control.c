/*
 * The control socket: status text and JSON from hand-built daemon and
 * session structs (exact text, JSON validity, escaping, bounds, secrets
 * never shown), request parsing, the config reader of `saltun status`, and
 * the server itself driven on a real uv loop through a temp-path socket
 * (answers, errors, oversize and idle clients, the 16-client cap, stale
 * and live sockets, file modes, clean close).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "control.h"
#include "daemon.h"
#include "key.h"
#include "session.h"
#include "util.h"

/* ------------------------------------------------------------ fixture */

#define NOW_MS UINT64_C(1000000000000)              /* about 31 years of monotonic time */
#define STARTED_MS (NOW_MS - UINT64_C(90061999))    /* uptime 1 d 1 h 1 min 1 s */

struct fixture {
	struct daemon *d;
	struct conf_session cs[3];
	struct session s[3];
	struct session *table[3];       /* d->sessions: one pointer per session */
};

static void sa4(struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, addr, &in->sin_addr), 1);
}

static void sa6(struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
}

/* Three sessions, one per state: "office" up (tun, udp, handshake 125 s
 * ago, traffic, every drop reason a distinct count), "laptop" waiting (tap,
 * no endpoint, never), "branch" handshaking (tcp, endpoint a host name not
 * resolved, no device). */
static struct fixture *fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct daemon *d = calloc(1, sizeof(*d));

	cr_assert(f != NULL && d != NULL);
	f->d = d;
	for (unsigned i = 0; i < KEY_LEN; i++)
		d->static_pub[i] = (uint8_t)i;
	memset(d->static_priv, 0x5a, KEY_LEN);
	memset(d->conf.global.private_key, 0x5a, KEY_LEN);
	d->conf.global.has_private_key = true;
	sa4(&d->conf.global.listen[0], "0.0.0.0", 5555);
	sa6(&d->conf.global.listen[1], "2001:db8::1", 5555);
	d->conf.global.nlisten = 2;
	d->started_ms = STARTED_MS;
	d->st = (struct daemon_stats){ 1, 2, 3, 4, 5, 6, 7, 8 };

	struct conf_session *c = f->cs;
	struct session *s = f->s;
	snprintf(c[0].name, sizeof(c[0].name), "office");
	memset(c[0].public_key, 0xff, KEY_LEN);
	memset(c[0].preshared_key, 0xa5, KEY_LEN);
	c[0].has_preshared_key = true;
	c[0].has_endpoint = true;
	snprintf(c[1].name, sizeof(c[1].name), "laptop");
	c[1].type = CONF_DEV_TAP;
	snprintf(c[2].name, sizeof(c[2].name), "branch");
	memset(c[2].public_key, 0x11, KEY_LEN);
	c[2].has_endpoint = true;
	c[2].transport = CONF_TRANSPORT_TCP;
	snprintf(c[2].endpoint.host, sizeof(c[2].endpoint.host), "vpn.example.org");
	c[2].endpoint.port = 5555;

	for (unsigned i = 0; i < 3; i++) {
		s[i].d = d;
		s[i].cs = &c[i];
		memcpy(s[i].name, c[i].name, sizeof(s[i].name));
		s[i].mtu = 1420;
		s[i].sock = -1;
	}
	snprintf(s[0].dev.name, sizeof(s[0].dev.name), "tun-office");
	sa4(&s[0].endpoint, "192.0.2.2", 5555);
	s[0].has_endpoint = true;
	s[0].kp[0].valid = true;
	/* Keys made just now under real timers: the session counts as up. */
	timer_config_init(&s[0].tcfg, 1, 0);
	s[0].kp[0].birth_ms = util_now_ms();
	s[0].current = &s[0].kp[0];
	memset(&s[0].kp[0].keys, 0x77, sizeof(s[0].kp[0].keys));
	s[0].timers.last_handshake_complete = NOW_MS - 125000;
	s[0].st.rx_bytes = 123456;
	s[0].st.rx_packets = 100;
	s[0].st.tx_bytes = 654321;
	s[0].st.tx_packets = 200;
	for (unsigned i = 0; i < DROP__COUNT; i++)
		s[0].st.drops[i] = 10 + i;
	s[0].st.handshake_attempts = 3;
	s[0].st.handshakes_completed = 2;
	s[0].st.rekeys = 1;

	s[1].type = TUN_TYPE_TAP;
	s[1].mtu = 1406;
	snprintf(s[1].dev.name, sizeof(s[1].dev.name), "tap0");

	s[2].hs.state = NOISE_HS_INITIATION_SENT;
	s[2].timers.handshake_attempts_start = NOW_MS - 3000;
	s[2].st.handshake_attempts = 1;
	s[2].st.hook_failures = 1;

	for (unsigned i = 0; i < 3; i++)
		f->table[i] = &s[i];
	d->sessions = f->table;
	d->nsessions = 3;
	return f;
}

static void fixture_free(struct fixture *f)
{
	free(f->d);
	free(f);
}

static char *status_of(const struct daemon *d, const char *session, bool json, int *rc)
{
	size_t size = control_status_size(d), len = 0;
	char *buf = malloc(size);

	cr_assert_not_null(buf);
	*rc = control_format_status(buf, size, &len, d, session, json, NOW_MS);
	if (*rc == 0)
		cr_assert_eq(strlen(buf), len);
	return buf;
}

/* ------------------------------------------------------------ a JSON checker */

/* RFC 8259, strictly enough to catch what a formatter gets wrong:
 * structure, commas, string escapes, numbers.  Returns the end of the value
 * or NULL. */
static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || p[i] == '\0')
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p) || *p == '\0') {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *json_number(const char *p)
{
	const char *s = p;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	return p > s ? p : NULL;
}

static const char *json_value(const char *p, int depth)
{
	if (depth > 16)
		return NULL;
	p = json_ws(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		bool object = *p == '{';
		p = json_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (object) {
				if ((p = json_string(json_ws(p))) == NULL)
					return NULL;
				p = json_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			if ((p = json_value(p, depth + 1)) == NULL)
				return NULL;
			p = json_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (*p == '"')
		return json_string(p);
	if (strncmp(p, "null", 4) == 0)
		return p + 4;
	if (strncmp(p, "true", 4) == 0)
		return p + 4;
	if (strncmp(p, "false", 5) == 0)
		return p + 5;
	return json_number(p);
}

static bool json_valid(const char *doc)
{
	const char *end = json_value(doc, 0);
	return end != NULL && *json_ws(end) == '\0';
}

Test(json_checker, tells_valid_from_invalid)
{
	/* The checker itself: it must refuse what a broken formatter writes. */
	cr_assert(json_valid("{\"a\":[1,2,{\"b\":null}],\"c\":\"x\\\"y\\u0001\"}\n"));
	cr_assert_not(json_valid("{\"a\":1,}"));
	cr_assert_not(json_valid("{\"a\" 1}"));
	cr_assert_not(json_valid("[1 2]"));
	cr_assert_not(json_valid("{\"a\":\"tab\there\"}"));
	cr_assert_not(json_valid("{\"a\":\"\\x\"}"));
	cr_assert_not(json_valid("{\"a\":1}{"));
	cr_assert_not(json_valid("{\"a\":01}x"));
}

/* ------------------------------------------------------------ text */

static const char text_office[] =
	"session: office\n"
	"  peer:               //////////////////////////////////////////8=\n"
	"  state:              up\n"
	"  device:             tun-office\n"
	"  type:               tun\n"
	"  mtu:                1420\n"
	"  transport:          udp\n"
	"  endpoint:           192.0.2.2:5555\n"
	"  latest handshake:   2 minutes, 5 seconds ago\n"
	"  received:           123456 bytes, 100 packets\n"
	"  sent:               654321 bytes, 200 packets\n"
	"  handshakes:         3 attempted, 2 completed\n"
	"  rekeys:             1\n"
	"  hook failures:      0\n"
	"  drops:              auth_failed 10, replay 11, bad_inner 12, key_expired 13,\n"
	"                      queue_full 14, no_endpoint 15, too_big 16, device_write 17,\n"
	"                      send_failed 18, handshake_refused 19, handshake_gave_up 20, shaped 21\n";

static const char text_laptop[] =
	"session: laptop\n"
	"  peer:               AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	"  state:              waiting\n"
	"  device:             tap0\n"
	"  type:               tap\n"
	"  mtu:                1406\n"
	"  transport:          udp\n"
	"  endpoint:           (none: waits for the peer)\n"
	"  latest handshake:   never\n"
	"  received:           0 bytes, 0 packets\n"
	"  sent:               0 bytes, 0 packets\n"
	"  handshakes:         0 attempted, 0 completed\n"
	"  rekeys:             0\n"
	"  hook failures:      0\n"
	"  drops:              auth_failed 0, replay 0, bad_inner 0, key_expired 0,\n"
	"                      queue_full 0, no_endpoint 0, too_big 0, device_write 0,\n"
	"                      send_failed 0, handshake_refused 0, handshake_gave_up 0, shaped 0\n";

static const char text_branch[] =
	"session: branch\n"
	"  peer:               ERERERERERERERERERERERERERERERERERERERERERE=\n"
	"  state:              handshaking\n"
	"  device:             (none)\n"
	"  type:               tun\n"
	"  mtu:                1420\n"
	"  transport:          tcp\n"
	"  endpoint:           vpn.example.org:5555 (not resolved)\n"
	"  latest handshake:   never\n"
	"  received:           0 bytes, 0 packets\n"
	"  sent:               0 bytes, 0 packets\n"
	"  handshakes:         1 attempted, 0 completed\n"
	"  rekeys:             0\n"
	"  hook failures:      1\n"
	"  drops:              auth_failed 0, replay 0, bad_inner 0, key_expired 0,\n"
	"                      queue_full 0, no_endpoint 0, too_big 0, device_write 0,\n"
	"                      send_failed 0, handshake_refused 0, handshake_gave_up 0, shaped 0\n";

static const char text_daemon[] =
	"daemon: saltun " PACKAGE_VERSION "\n"
	"  public key:         AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
	"  listening:          0.0.0.0:5555, [2001:db8::1]:5555\n"
	"  uptime:             1 day, 1 hour, 1 minute, 1 second\n"
	"  sessions:           3 (1 up)\n"
	"  counters:           bad_header 1, bad_mac1 2, unknown_index 3, unknown_peer 4,\n"
	"                      initiation_auth 5, cookie_sent 6, initiation_replay 7, initiation_flood 8\n";

Test(status_text, every_session_exact)
{
	struct fixture *f = fixture_new();
	char expect[8192];
	int rc;

	snprintf(expect, sizeof(expect), "%s\n%s\n%s\n%s", text_daemon, text_office, text_laptop,
		 text_branch);
	char *got = status_of(f->d, NULL, false, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(got, expect);
	free(got);
	/* "" means every session too. */
	got = status_of(f->d, "", false, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(got, expect);
	free(got);
	fixture_free(f);
}

struct one_case {
	const char *name;
	const char *text;
};

Test(status_text, one_session_exact)
{
	const struct one_case cases[] = {
		{ "office", text_office }, { "laptop", text_laptop }, { "branch", text_branch },
	};
	struct fixture *f = fixture_new();
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = status_of(f->d, cases[i].name, false, &rc);
		cr_assert_eq(rc, 0, "%s", cases[i].name);
		cr_assert_str_eq(got, cases[i].text, "%s", cases[i].name);
		free(got);
	}
	fixture_free(f);
}

Test(status_text, unknown_session_is_enoent)
{
	struct fixture *f = fixture_new();
	const char *names[] = { "nosuch", "offic", "office2", "OFFICE" };
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		free(status_of(f->d, names[i], false, &rc));
		cr_assert_eq(rc, -ENOENT, "%s", names[i]);
		free(status_of(f->d, names[i], true, &rc));
		cr_assert_eq(rc, -ENOENT, "%s", names[i]);
	}
	fixture_free(f);
}

struct age_case {
	uint64_t ago_ms;
	const char *text;
};

static const struct age_case status_text_handshake_age_cases[] = {
	{ 0, "just now" },
	{ 999, "just now" },
	{ 1000, "1 second ago" },
	{ 59999, "59 seconds ago" },
	{ 60000, "1 minute ago" },
	{ 3600000, "1 hour ago" },
	{ 3661000, "1 hour, 1 minute, 1 second ago" },
	{ 86400000, "1 day ago" },
	{ 172800000 + 7200000 + 2000, "2 days, 2 hours, 2 seconds ago" },
};

static void status_text_handshake_age_run(const struct age_case *c)
{
	struct fixture *f = fixture_new();
	char want[128];
	int rc;

	f->s[0].timers.last_handshake_complete = NOW_MS - c->ago_ms;
	snprintf(want, sizeof(want), "  latest handshake:   %s\n", c->text);
	char *got = status_of(f->d, "office", false, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_not_null(strstr(got, want), "want '%s' in:\n%s", want, got);
	free(got);
	fixture_free(f);
}

Test(status_text, handshake_age)
{
	for (size_t i = 0; i < ARRAY_SIZE(status_text_handshake_age_cases); i++)
		status_text_handshake_age_run(&status_text_handshake_age_cases[i]);
}

Test(status_text, no_listen_and_zero_uptime)
{
	struct fixture *f = fixture_new();
	size_t len;
	char buf[4096];

	f->d->conf.global.nlisten = 0;
	f->d->started_ms = NOW_MS;
	f->d->nsessions = 0;
	cr_assert_eq(control_format_status(buf, sizeof(buf), &len, f->d, NULL, false, NOW_MS), 0);
	cr_assert_str_eq(buf,
			 "daemon: saltun " PACKAGE_VERSION "\n"
			 "  public key:         AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
			 "  listening:          (none: dials out only)\n"
			 "  uptime:             0 seconds\n"
			 "  sessions:           0 (0 up)\n"
			 "  counters:           bad_header 1, bad_mac1 2, unknown_index 3, unknown_peer 4,\n"
			 "                      initiation_auth 5, cookie_sent 6, initiation_replay 7, initiation_flood 8\n");
	fixture_free(f);
}

/* ------------------------------------------------------------ JSON */

#define JSON_DROPS_OFFICE                                                                   \
	"{\"auth_failed\":10,\"replay\":11,\"bad_inner\":12,\"key_expired\":13,"            \
	"\"queue_full\":14,\"no_endpoint\":15,\"too_big\":16,\"device_write\":17,"          \
	"\"send_failed\":18,\"handshake_refused\":19,\"handshake_gave_up\":20,\"shaped\":21}"
#define JSON_DROPS_ZERO                                                                     \
	"{\"auth_failed\":0,\"replay\":0,\"bad_inner\":0,\"key_expired\":0,"                \
	"\"queue_full\":0,\"no_endpoint\":0,\"too_big\":0,\"device_write\":0,"              \
	"\"send_failed\":0,\"handshake_refused\":0,\"handshake_gave_up\":0,\"shaped\":0}"
#define JSON_HEAD                                                                           \
	"{\"version\":1,\"saltun\":\"" PACKAGE_VERSION "\","                                \
	"\"public_key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","                    \
	"\"listen\":[\"0.0.0.0:5555\",\"[2001:db8::1]:5555\"],\"uptime_seconds\":90061,"    \
	"\"counters\":{\"bad_header\":1,\"bad_mac1\":2,\"unknown_index\":3,"                \
	"\"unknown_peer\":4,\"initiation_auth\":5,\"cookie_sent\":6,"                       \
	"\"initiation_replay\":7,\"initiation_flood\":8},\"sessions\":["
#define JSON_OFFICE                                                                         \
	"{\"name\":\"office\",\"peer_public_key\":\"//////////////////////////////////////////8=\"," \
	"\"state\":\"up\",\"device\":\"tun-office\",\"type\":\"tun\",\"mtu\":1420,"         \
	"\"transport\":\"udp\",\"endpoint\":\"192.0.2.2:5555\","                            \
	"\"latest_handshake_seconds_ago\":125,\"rx_bytes\":123456,\"rx_packets\":100,"      \
	"\"tx_bytes\":654321,\"tx_packets\":200,\"handshake_attempts\":3,"                  \
	"\"handshakes_completed\":2,\"rekeys\":1,\"hook_failures\":0,\"drops\":"            \
	JSON_DROPS_OFFICE "}"
#define JSON_LAPTOP                                                                         \
	"{\"name\":\"laptop\",\"peer_public_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"," \
	"\"state\":\"waiting\",\"device\":\"tap0\",\"type\":\"tap\",\"mtu\":1406,"          \
	"\"transport\":\"udp\",\"endpoint\":null,"                                          \
	"\"latest_handshake_seconds_ago\":null,\"rx_bytes\":0,\"rx_packets\":0,"            \
	"\"tx_bytes\":0,\"tx_packets\":0,\"handshake_attempts\":0,"                         \
	"\"handshakes_completed\":0,\"rekeys\":0,\"hook_failures\":0,\"drops\":"            \
	JSON_DROPS_ZERO "}"
#define JSON_BRANCH                                                                         \
	"{\"name\":\"branch\",\"peer_public_key\":\"ERERERERERERERERERERERERERERERERERERERERERE=\"," \
	"\"state\":\"handshaking\",\"device\":null,\"type\":\"tun\",\"mtu\":1420,"          \
	"\"transport\":\"tcp\",\"endpoint\":null,"                                          \
	"\"latest_handshake_seconds_ago\":null,\"rx_bytes\":0,\"rx_packets\":0,"            \
	"\"tx_bytes\":0,\"tx_packets\":0,\"handshake_attempts\":1,"                         \
	"\"handshakes_completed\":0,\"rekeys\":0,\"hook_failures\":1,\"drops\":"            \
	JSON_DROPS_ZERO "}"

Test(status_json, every_session_exact_and_valid)
{
	struct fixture *f = fixture_new();
	int rc;
	char *got = status_of(f->d, NULL, true, &rc);

	cr_assert_eq(rc, 0);
	cr_assert_str_eq(got, JSON_HEAD JSON_OFFICE "," JSON_LAPTOP "," JSON_BRANCH "]}\n");
	cr_assert(json_valid(got));
	free(got);
	fixture_free(f);
}

Test(status_json, one_session_keeps_the_document_shape)
{
	const struct one_case cases[] = {
		{ "office", JSON_HEAD JSON_OFFICE "]}\n" },
		{ "laptop", JSON_HEAD JSON_LAPTOP "]}\n" },
		{ "branch", JSON_HEAD JSON_BRANCH "]}\n" },
	};
	struct fixture *f = fixture_new();
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = status_of(f->d, cases[i].name, true, &rc);
		cr_assert_eq(rc, 0);
		cr_assert_str_eq(got, cases[i].text, "%s", cases[i].name);
		cr_assert(json_valid(got));
		free(got);
	}
	fixture_free(f);
}

Test(status_json, no_sessions_no_listen)
{
	struct fixture *f = fixture_new();
	int rc;

	f->d->nsessions = 0;
	f->d->conf.global.nlisten = 0;
	char *got = status_of(f->d, NULL, true, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_not_null(strstr(got, "\"listen\":[],"));
	cr_assert_not_null(strstr(got, "\"sessions\":[]}\n"));
	cr_assert(json_valid(got));
	free(got);
	fixture_free(f);
}

struct escape_case {
	const char *device;
	const char *json;
};

/* Device names come from the kernel; whatever they hold, the document
 * stays valid and says exactly that name. */
static const struct escape_case status_json_strings_escaped_cases[] = {
	{ "a\"b", "\"device\":\"a\\\"b\"" },
	{ "a\\b", "\"device\":\"a\\\\b\"" },
	{ "a\nb", "\"device\":\"a\\nb\"" },
	{ "a\tb", "\"device\":\"a\\tb\"" },
	{ "a\x01" "b", "\"device\":\"a\\u0001b\"" },
	{ "a\x7f", "\"device\":\"a\\u007f\"" },
	{ "\xc3\xa9", "\"device\":\"\\u00c3\\u00a9\"" },
	{ "a/b", "\"device\":\"a/b\"" },
};

static void status_json_strings_escaped_run(const struct escape_case *c)
{
	struct fixture *f = fixture_new();
	int rc;

	snprintf(f->s[0].dev.name, sizeof(f->s[0].dev.name), "%s", c->device);
	char *got = status_of(f->d, NULL, true, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_not_null(strstr(got, c->json), "want %s in %s", c->json, got);
	cr_assert(json_valid(got), "%s", got);
	free(got);
	fixture_free(f);
}

Test(status_json, strings_escaped)
{
	for (size_t i = 0; i < ARRAY_SIZE(status_json_strings_escaped_cases); i++)
		status_json_strings_escaped_run(&status_json_strings_escaped_cases[i]);
}

Test(status, never_shows_a_secret)
{
	struct fixture *f = fixture_new();
	char priv[KEY_B64_LEN + 1], psk[KEY_B64_LEN + 1], keys[KEY_B64_LEN + 1];
	int rc;

	key_to_base64(priv, f->d->static_priv);
	key_to_base64(psk, f->cs[0].preshared_key);
	key_to_base64(keys, (const uint8_t *)&f->s[0].kp[0].keys);
	for (int json = 0; json <= 1; json++) {
		const char *names[] = { NULL, "office" };
		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			char *got = status_of(f->d, names[i], json, &rc);
			cr_assert_eq(rc, 0);
			cr_assert_null(strstr(got, priv));
			cr_assert_null(strstr(got, psk));
			cr_assert_null(strstr(got, keys));
			/* Nor a piece of one: 0x5a.. is "Wlpa..", 0xa5.. "paWl..",
			 * the session keys 0x77.. "d3d3..". */
			cr_assert_null(strstr(got, "WlpaWlpa"));
			cr_assert_null(strstr(got, "paWlpaWl"));
			cr_assert_null(strstr(got, "d3d3d3d3"));
			free(got);
		}
	}
	fixture_free(f);
}

/* Every field at its widest: the size bound must hold, in both formats. */
Test(status, worst_case_fits_the_bound)
{
	struct fixture *f = fixture_new();
	struct daemon *d = f->d;
	int rc;

	d->conf.global.nlisten = CONF_MAX_LISTEN;
	for (unsigned i = 0; i < CONF_MAX_LISTEN; i++)
		sa6(&d->conf.global.listen[i], "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);
	memset(&d->st, 0xff, sizeof(d->st));
	d->started_ms = 0;
	for (unsigned i = 0; i < 3; i++) {
		struct session *s = &f->s[i];
		memset(s->name, 'n', CONF_NAME_MAX);
		s->name[CONF_NAME_MAX] = '\0';
		s->name[0] = (char)('a' + i);
		/* Every byte escaped as \u00XX: six times its length. */
		memset(s->dev.name, 0x01, sizeof(s->dev.name) - 1);
		s->dev.name[sizeof(s->dev.name) - 1] = '\0';
		sa6(&s->endpoint, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);
		s->has_endpoint = true;
		memset(&s->st, 0xff, sizeof(s->st));
		s->mtu = UINT32_MAX;
		s->timers.last_handshake_complete = 1;
	}
	f->cs[2].has_endpoint = true;
	memset(f->cs[2].endpoint.host, 'h', CONF_HOST_MAX);
	f->s[2].has_endpoint = false;
	for (int json = 0; json <= 1; json++) {
		size_t size = control_status_size(d), len;
		char *buf = malloc(size);
		cr_assert_eq(control_format_status(buf, size, &len, d, NULL, json, UINT64_MAX), 0,
			     "json=%d", json);
		cr_assert_lt(len, size);
		if (json)
			cr_assert(json_valid(buf));
		free(buf);
		free(status_of(d, f->s[1].name, json, &rc));
		cr_assert_eq(rc, 0);
	}
	fixture_free(f);
}

/* Every buffer size below the need gives -ENOSPC; the exact need works. */
Test(status, too_small_buffer_is_enospc)
{
	struct fixture *f = fixture_new();

	for (int json = 0; json <= 1; json++) {
		size_t need, len = 0;
		char big[16384];
		cr_assert_eq(control_format_status(big, sizeof(big), &need, f->d, NULL, json, NOW_MS), 0);
		for (size_t size = 0; size <= need; size++) {
			char *buf = malloc(size ? size : 1);
			cr_assert_eq(control_format_status(buf, size, &len, f->d, NULL, json, NOW_MS),
				     -ENOSPC, "size %zu of %zu", size, need);
			if (size > 0)
				cr_assert_lt(strlen(buf), size); /* still terminated */
			free(buf);
		}
		char *buf = malloc(need + 1);
		cr_assert_eq(control_format_status(buf, need + 1, &len, f->d, NULL, json, NOW_MS), 0);
		cr_assert_eq(len, need);
		cr_assert_str_eq(buf, big);
		free(buf);
	}
	fixture_free(f);
}

/* ------------------------------------------------------------ requests */

struct req_case {
	const char *line;
	bool ok;
	enum control_request_kind kind;
	bool json;
	const char *session;
	const char *why;
};

static const struct req_case request_parse_cases[] = {
	{ "status", true, CONTROL_REQ_STATUS, false, "", NULL },
	{ "status\r", true, CONTROL_REQ_STATUS, false, "", NULL },
	{ "  status  ", true, CONTROL_REQ_STATUS, false, "", NULL },
	{ "status json", true, CONTROL_REQ_STATUS, true, "", NULL },
	{ "status\tjson", true, CONTROL_REQ_STATUS, true, "", NULL },
	{ "status office", true, CONTROL_REQ_STATUS, false, "office", NULL },
	{ "status json office", true, CONTROL_REQ_STATUS, true, "office", NULL },
	{ "status json json", true, CONTROL_REQ_STATUS, true, "json", NULL },
	{ "status a.b_c-D9", true, CONTROL_REQ_STATUS, false, "a.b_c-D9", NULL },
	{ "status 123456789012345", true, CONTROL_REQ_STATUS, false, "123456789012345", NULL },
	{ "version", true, CONTROL_REQ_VERSION, false, "", NULL },
	{ "", false, 0, false, "", "empty request" },
	{ "   ", false, 0, false, "", "empty request" },
	{ "\r", false, 0, false, "", "empty request" },
	{ "STATUS", false, 0, false, "", "unknown request 'STATUS' (known: status, version)" },
	{ "reload now", false, 0, false, "", "unknown request 'reload' (known: status, version)" },
	{ "abcdefghijklmnopqrstuvwxyz0123456789", false, 0, false, "",
	  "unknown request 'abcdefghijklmnopqrstuvwxyz012345' (known: status, version)" },
	{ "version 2", false, 0, false, "", "'version' takes no arguments" },
	{ "status office json", false, 0, false, "", "usage: status [json] [SESSION]" },
	{ "status json a b", false, 0, false, "", "usage: status [json] [SESSION]" },
	{ "status a b c d", false, 0, false, "", "too many words in request" },
	{ "status 1234567890123456", false, 0, false, "",
	  "bad session name: expected at most 15 of [A-Za-z0-9_.-]" },
	{ "status a/b", false, 0, false, "",
	  "bad session name: expected at most 15 of [A-Za-z0-9_.-]" },
	{ "status a\x01", false, 0, false, "", "request is not a line of text" },
	{ "status \xc3\xa9", false, 0, false, "", "request is not a line of text" },
	{ "sta\rtus", false, 0, false, "", "request is not a line of text" },
};

static void request_parse_run(const struct req_case *c)
{
	struct control_request r;
	char why[128] = "";
	bool ok = control_parse_request(&r, c->line, strlen(c->line), why, sizeof(why));

	cr_assert_eq(ok, c->ok, "'%s': %s", c->line, why);
	if (ok) {
		cr_assert_eq(r.kind, c->kind, "'%s'", c->line);
		cr_assert_eq(r.json, c->json, "'%s'", c->line);
		cr_assert_str_eq(r.session, c->session, "'%s'", c->line);
	} else {
		cr_assert_str_eq(why, c->why, "'%s'", c->line);
	}
}

Test(request, parse)
{
	for (size_t i = 0; i < ARRAY_SIZE(request_parse_cases); i++)
		request_parse_run(&request_parse_cases[i]);
}

Test(request, embedded_nul_is_refused)
{
	struct control_request r;
	char why[128];

	cr_assert_not(control_parse_request(&r, "status\0x", 8, why, sizeof(why)));
	cr_assert_str_eq(why, "request is not a line of text");
}

Test(request, length_limit_exact)
{
	char line[CONTROL_LINE_MAX + 2], why[128];
	struct control_request r;

	/* "status" padded with blanks to exactly the limit: accepted. */
	memset(line, ' ', sizeof(line));
	memcpy(line, "status", 6);
	cr_assert(control_parse_request(&r, line, CONTROL_LINE_MAX, why, sizeof(why)));
	cr_assert_eq(r.kind, CONTROL_REQ_STATUS);
	/* One byte more: refused, whatever it says. */
	cr_assert_not(control_parse_request(&r, line, CONTROL_LINE_MAX + 1, why, sizeof(why)));
	cr_assert_str_eq(why, "request longer than 512 bytes");
}

struct answer_case {
	const char *line;
	const char *answer;       /* exact, or NULL: starts with prefix */
	const char *prefix;
};

static const struct answer_case request_answer_cases[] = {
	{ "version", "saltun " PACKAGE_VERSION "\nprotocol 1\n", NULL },
	{ "frobnicate", "error: unknown request 'frobnicate' (known: status, version)\n", NULL },
	{ "status nosuch", "error: no session 'nosuch'\n", NULL },
	{ "status json nosuch", "error: no session 'nosuch'\n", NULL },
	{ "", "error: empty request\n", NULL },
	{ "status", NULL, "daemon: saltun " PACKAGE_VERSION "\n" },
	{ "status office", NULL, "session: office\n" },
	{ "status json", NULL, "{\"version\":1," },
};

static void request_answer_run(const struct answer_case *c)
{
	struct fixture *f = fixture_new();
	char *out = NULL;
	size_t len = 0;

	cr_assert_eq(control_answer(&out, &len, f->d, c->line, strlen(c->line), NOW_MS), 0);
	cr_assert_eq(strlen(out), len);
	if (c->answer != NULL)
		cr_assert_str_eq(out, c->answer);
	else
		cr_assert_eq(strncmp(out, c->prefix, strlen(c->prefix)), 0, "%s", out);
	free(out);
	fixture_free(f);
}

Test(request, answer)
{
	for (size_t i = 0; i < ARRAY_SIZE(request_answer_cases); i++)
		request_answer_run(&request_answer_cases[i]);
}

Test(request, answer_matches_format)
{
	struct fixture *f = fixture_new();
	char *out = NULL, *want;
	size_t len;
	int rc;

	cr_assert_eq(control_answer(&out, &len, f->d, "status json laptop", 18, NOW_MS), 0);
	want = status_of(f->d, "laptop", true, &rc);
	cr_assert_str_eq(out, want);
	free(out);
	free(want);
	fixture_free(f);
}

/* ------------------------------------------------------------ config reader */

struct conf_case {
	const char *text;
	bool found;
	const char *path;
};

static const struct conf_case conf_reader_control_path_cases[] = {
	{ "[global]\ncontrol = /run/x.sock\n", true, "/run/x.sock" },
	{ "[global]\ncontrol=/run/x.sock", true, "/run/x.sock" },
	{ "[global]\n  control   =   /run/x.sock   \n", true, "/run/x.sock" },
	{ "[global]\ncontrol: /run/x.sock\n", true, "/run/x.sock" },
	{ "[global]\ncontrol = /run/x.sock ; comment\n", true, "/run/x.sock" },
	{ "[global]\ncontrol = /run/x;y.sock\n", true, "/run/x;y.sock" },
	{ "[ global ] ; c\r\ncontrol = /run/x.sock\r\n", true, "/run/x.sock" },
	{ "[global]\nprivate_key = /k\nlisten = 0.0.0.0:1\ncontrol = /a\n\n[s]\ncontrol = /b\n",
	  true, "/a" },
	{ "[global]\ncontrol = /a\ncontrol = /b\n", true, "/b" },
	{ "[s]\ncontrol = /b\n", false, "" },
	{ "control = /b\n", false, "" },
	{ "[global]\n;control = /b\n#control = /c\n", false, "" },
	{ "[global]\ncontrolx = /b\nxcontrol = /c\n", false, "" },
	{ "[global]\ncontrol =\n", false, "" },
	{ "", false, "" },
};

static void conf_reader_control_path_run(const struct conf_case *c)
{
	char out[108] = "";
	FILE *f = fmemopen((void *)c->text, strlen(c->text) ? strlen(c->text) : 1, "r");

	cr_assert_not_null(f);
	if (c->text[0] == '\0')
		fgetc(f); /* fmemopen needs a size >= 1: consume the NUL, at EOF */
	cr_assert_eq(control_path_from_conf(out, sizeof(out), f), c->found, "%s", c->text);
	cr_assert_str_eq(out, c->path);
	fclose(f);
}

Test(conf_reader, control_path)
{
	for (size_t i = 0; i < ARRAY_SIZE(conf_reader_control_path_cases); i++)
		conf_reader_control_path_run(&conf_reader_control_path_cases[i]);
}

Test(conf_reader, too_long_path_not_taken)
{
	char out[8] = "";
	const char *text = "[global]\ncontrol = /123456789\n";
	FILE *f = fmemopen((void *)text, strlen(text), "r");

	cr_assert_not(control_path_from_conf(out, sizeof(out), f));
	cr_assert_str_eq(out, "");
	fclose(f);
}

/* ------------------------------------------------------------ the server */

struct server {
	char dir[64];
	char path[108];
	struct daemon *d;
	struct fixture *f;
};

static void server_init(struct server *sv, const char *sub)
{
	cr_assert_eq(sodium_init() < 0, false);
	snprintf(sv->dir, sizeof(sv->dir), "/tmp/saltun-test-control.XXXXXX");
	cr_assert_not_null(mkdtemp(sv->dir));
	snprintf(sv->path, sizeof(sv->path), "%s%s/ctl.sock", sv->dir, sub);
	sv->f = fixture_new();
	sv->d = sv->f->d;
	cr_assert_eq(uv_loop_init(&sv->d->loop), 0);
	snprintf(sv->d->conf.global.control, sizeof(sv->d->conf.global.control), "%s", sv->path);
	sv->d->started_ms = util_now_ms();
}

static void server_open(struct server *sv, unsigned timeout_ms)
{
	cr_assert_eq(control_open(sv->d), 0);
	cr_assert_not_null(sv->d->control);
	sv->d->control->timeout_ms = timeout_ms;
}

/* Close, run the loop dry, and check that everything was closed. */
static void server_done(struct server *sv)
{
	char cmd[128];

	control_close(sv->d);
	cr_assert_null(sv->d->control);
	cr_assert_eq(access(sv->path, F_OK), -1, "socket file left behind");
	cr_assert_eq(uv_run(&sv->d->loop, UV_RUN_DEFAULT), 0);
	cr_assert_eq(uv_loop_close(&sv->d->loop), 0, "a handle was left open");
	fixture_free(sv->f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sv->dir);
	cr_assert_eq(system(cmd), 0);
}

static int client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

static void client_send(int fd, const char *s, size_t len)
{
	cr_assert_eq(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Turn the loop and read `fd` until EOF or `ms` elapsed.  Returns what was
 * read (NUL-terminated, malloc'd); *eof says whether the server closed. */
static char *client_read(struct server *sv, int fd, unsigned ms, bool *eof)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	uint64_t end = util_now_ms() + ms;

	*eof = false;
	while (util_now_ms() < end) {
		uv_run(&sv->d->loop, UV_RUN_NOWAIT);
		ssize_t r = recv(fd, buf + n, cap - n, MSG_DONTWAIT);
		if (r == 0) {
			*eof = true;
			break;
		}
		if (r > 0) {
			n += (size_t)r;
			continue;
		}
		/* Closed with some of our request unread (an oversize one): Linux
		 * reports ECONNRESET after the data instead of EOF. */
		if (errno == ECONNRESET) {
			*eof = true;
			break;
		}
		cr_assert(errno == EAGAIN, "recv: %s", strerror(errno));
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, 1);
	}
	buf[n] = '\0';
	return buf;
}

/* Turn the loop for `ms`. */
static void server_spin(struct server *sv, unsigned ms)
{
	uint64_t end = util_now_ms() + ms;
	while (util_now_ms() < end) {
		uv_run(&sv->d->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

struct exchange_case {
	const char *send;        /* sent as is (with its newline, or not) */
	size_t sendlen;          /* 0: strlen */
	bool shut_wr;            /* then close our side */
	const char *answer;      /* exact; NULL: starts with prefix */
	const char *prefix;
};

static const struct exchange_case server_exchange_cases[] = {
	{ "version\n", 0, false, "saltun " PACKAGE_VERSION "\nprotocol 1\n", NULL },
	{ "version\r\n", 0, false, "saltun " PACKAGE_VERSION "\nprotocol 1\n", NULL },
	{ "version", 0, true, "saltun " PACKAGE_VERSION "\nprotocol 1\n", NULL },
	{ "version\nstatus\n", 0, false, "saltun " PACKAGE_VERSION "\nprotocol 1\n", NULL },
	{ "hello\n", 0, false, "error: unknown request 'hello' (known: status, version)\n", NULL },
	{ "status nosuch\n", 0, false, "error: no session 'nosuch'\n", NULL },
	{ "status json nosuch\n", 0, false, "error: no session 'nosuch'\n", NULL },
	{ "\n", 0, false, "error: empty request\n", NULL },
	{ "status\n", 0, false, NULL, "daemon: saltun " PACKAGE_VERSION "\n" },
	{ "status laptop\n", 0, false, NULL, "session: laptop\n  peer:" },
	{ "status json\n", 0, false, NULL, "{\"version\":1,\"saltun\":" },
};

static void server_exchange_run(const struct exchange_case *c)
{
	struct server sv;
	bool eof;

	server_init(&sv, "");
	server_open(&sv, 2000);
	int fd = client_connect(sv.path);
	client_send(fd, c->send, c->sendlen ? c->sendlen : strlen(c->send));
	if (c->shut_wr)
		shutdown(fd, SHUT_WR);
	char *got = client_read(&sv, fd, 1500, &eof);
	cr_assert(eof, "server did not close");
	if (c->answer != NULL)
		cr_assert_str_eq(got, c->answer);
	else
		cr_assert_eq(strncmp(got, c->prefix, strlen(c->prefix)), 0, "%s", got);
	if (strncmp(c->send, "status json\n", 12) == 0)
		cr_assert(json_valid(got), "%s", got);
	free(got);
	close(fd);
	server_done(&sv);
}

Test(server, exchange)
{
	for (size_t i = 0; i < ARRAY_SIZE(server_exchange_cases); i++)
		server_exchange_run(&server_exchange_cases[i]);
}

Test(server, request_in_pieces)
{
	struct server sv;
	bool eof;

	server_init(&sv, "");
	server_open(&sv, 2000);
	int fd = client_connect(sv.path);
	const char *parts[] = { "ve", "r", "sio", "n\n" };
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		client_send(fd, parts[i], strlen(parts[i]));
		char *got = client_read(&sv, fd, i + 1 < ARRAY_SIZE(parts) ? 20 : 1000, &eof);
		if (i + 1 < ARRAY_SIZE(parts)) {
			cr_assert_not(eof, "closed before the newline");
			cr_assert_str_eq(got, "");
		} else {
			cr_assert(eof);
			cr_assert_str_eq(got, "saltun " PACKAGE_VERSION "\nprotocol 1\n");
		}
		free(got);
	}
	close(fd);
	server_done(&sv);
}

struct size_case {
	size_t len;         /* request bytes before the newline */
	bool newline;
	bool refused;
};

static const struct size_case server_request_size_limit_cases[] = {
	{ CONTROL_LINE_MAX, true, false },     /* 512 + "\n": served */
	{ CONTROL_LINE_MAX + 1, true, true },  /* 513 + "\n": refused */
	{ CONTROL_LINE_MAX + 1, false, true }, /* no newline in sight */
	{ 4096, false, true },                 /* a flood: refused at once */
};

static void server_request_size_limit_run(const struct size_case *c)
{
	struct server sv;
	bool eof;
	char *req = malloc(c->len + 1);

	/* "status" padded with blanks: a valid request if short enough. */
	memset(req, ' ', c->len);
	memcpy(req, "status", 6);
	req[c->len] = '\n';
	server_init(&sv, "");
	server_open(&sv, 3000);
	int fd = client_connect(sv.path);
	client_send(fd, req, c->len + c->newline);
	/* No shutdown: the refusal must not wait for the client. */
	char *got = client_read(&sv, fd, 1000, &eof);
	cr_assert(eof, "server did not close");
	if (c->refused)
		cr_assert_str_eq(got, "error: request longer than 512 bytes\n");
	else
		cr_assert_eq(strncmp(got, "daemon: saltun", 14), 0, "%s", got);
	free(got);
	free(req);
	close(fd);
	server_done(&sv);
}

Test(server, request_size_limit)
{
	for (size_t i = 0; i < ARRAY_SIZE(server_request_size_limit_cases); i++)
		server_request_size_limit_run(&server_request_size_limit_cases[i]);
}

Test(server, idle_client_closed_after_timeout)
{
	struct server sv;
	bool eof;

	server_init(&sv, "");
	server_open(&sv, 150);
	int fd = client_connect(sv.path);
	uint64_t t0 = util_now_ms();
	char *got = client_read(&sv, fd, 3000, &eof);
	uint64_t took = util_now_ms() - t0;
	cr_assert(eof, "idle client not closed");
	cr_assert_str_eq(got, "");
	cr_assert_geq(took, 140);
	cr_assert_lt(took, 1500);
	free(got);
	close(fd);
	server_done(&sv);
}

Test(server, half_request_then_silence_is_closed)
{
	struct server sv;
	bool eof;

	server_init(&sv, "");
	server_open(&sv, 150);
	int fd = client_connect(sv.path);
	client_send(fd, "stat", 4);
	char *got = client_read(&sv, fd, 3000, &eof);
	cr_assert(eof);
	cr_assert_str_eq(got, "");
	free(got);
	close(fd);
	server_done(&sv);
}

Test(server, at_most_16_clients_at_once)
{
	struct server sv;
	int idle[CONTROL_CLIENTS_MAX];
	bool eof;

	server_init(&sv, "");
	server_open(&sv, 5000);
	for (unsigned i = 0; i < CONTROL_CLIENTS_MAX; i++)
		idle[i] = client_connect(sv.path);
	server_spin(&sv, 30);
	/* Every slot taken: the next one waits in the backlog, unanswered. */
	int fd = client_connect(sv.path);
	client_send(fd, "version\n", 8);
	char *got = client_read(&sv, fd, 100, &eof);
	cr_assert_not(eof);
	cr_assert_str_eq(got, "");
	free(got);
	/* A slot frees up (its client leaves): the waiting one is served. */
	close(idle[0]);
	got = client_read(&sv, fd, 1000, &eof);
	cr_assert(eof);
	cr_assert_str_eq(got, "saltun " PACKAGE_VERSION "\nprotocol 1\n");
	free(got);
	close(fd);
	/* The others are still being served (not dropped): one still works. */
	client_send(idle[1], "version\n", 8);
	got = client_read(&sv, idle[1], 1000, &eof);
	cr_assert(eof);
	cr_assert_str_eq(got, "saltun " PACKAGE_VERSION "\nprotocol 1\n");
	free(got);
	for (unsigned i = 1; i < CONTROL_CLIENTS_MAX; i++)
		close(idle[i]);
	server_done(&sv);
}

Test(server, close_with_clients_connected)
{
	struct server sv;
	int fds[4];

	server_init(&sv, "");
	server_open(&sv, 5000);
	for (unsigned i = 0; i < ARRAY_SIZE(fds); i++)
		fds[i] = client_connect(sv.path);
	client_send(fds[0], "sta", 3);
	server_spin(&sv, 20);
	/* server_done asserts the loop closes with every handle freed. */
	control_close(sv.d);
	cr_assert_eq(uv_run(&sv.d->loop, UV_RUN_DEFAULT), 0);
	for (unsigned i = 0; i < ARRAY_SIZE(fds); i++) {
		char buf[16];
		ssize_t r;
		for (int tries = 0; (r = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT)) < 0 && tries < 100; tries++)
			usleep(1000);
		cr_assert_eq(r, 0, "client %u not closed", i);
		close(fds[i]);
	}
	cr_assert_eq(access(sv.path, F_OK), -1);
	cr_assert_eq(uv_loop_close(&sv.d->loop), 0);
	fixture_free(sv.f);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sv.dir);
	cr_assert_eq(system(cmd), 0);
}

Test(server, socket_mode_and_new_directory)
{
	struct server sv;
	struct stat st;
	char dir[128];

	umask(022); /* whatever the caller's umask, the socket is 0660 */
	server_init(&sv, "/run/sub");
	/* Only the socket's own directory is created, not its parents. */
	cr_assert_eq(control_open(sv.d), -ENOENT);
	cr_assert_null(sv.d->control);
	snprintf(dir, sizeof(dir), "%s/run", sv.dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	umask(077);
	server_open(&sv, 1000);
	cr_assert_eq(lstat(sv.path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0660, "socket mode %o", st.st_mode & 07777);
	snprintf(dir, sizeof(dir), "%s/run/sub", sv.dir);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750, "directory mode %o", st.st_mode & 07777);
	/* The process umask is restored after the bind. */
	mode_t m = umask(022);
	cr_assert_eq(m, 077);
	server_done(&sv);
}

Test(server, stale_socket_replaced)
{
	struct server sv;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool eof;

	server_init(&sv, "");
	/* A socket file nobody listens on: a daemon killed with SIGKILL. */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sv.path);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	cr_assert_eq(access(sv.path, F_OK), 0);
	server_open(&sv, 1000);
	int fd = client_connect(sv.path);
	client_send(fd, "version\n", 8);
	char *got = client_read(&sv, fd, 1000, &eof);
	cr_assert_str_eq(got, "saltun " PACKAGE_VERSION "\nprotocol 1\n");
	free(got);
	close(fd);
	server_done(&sv);
}

Test(server, live_socket_of_another_daemon_kept)
{
	struct server a, b;
	struct stat st1, st2;
	bool eof;

	server_init(&a, "");
	server_open(&a, 1000);
	cr_assert_eq(lstat(a.path, &st1), 0);
	/* A second daemon configured with the same path. */
	server_init(&b, "");
	snprintf(b.d->conf.global.control, sizeof(b.d->conf.global.control), "%s", a.path);
	cr_assert_eq(control_open(b.d), -EADDRINUSE);
	cr_assert_null(b.d->control);
	cr_assert_eq(uv_run(&b.d->loop, UV_RUN_DEFAULT), 0);
	cr_assert_eq(uv_loop_close(&b.d->loop), 0);
	/* The first one's socket is untouched and still answers. */
	cr_assert_eq(lstat(a.path, &st2), 0);
	cr_assert_eq(st1.st_ino, st2.st_ino);
	int fd = client_connect(a.path);
	client_send(fd, "version\n", 8);
	char *got = client_read(&a, fd, 1000, &eof);
	cr_assert_str_eq(got, "saltun " PACKAGE_VERSION "\nprotocol 1\n");
	free(got);
	close(fd);
	fixture_free(b.f);
	rmdir(b.dir);
	server_done(&a);
}

Test(server, not_a_socket_left_alone)
{
	struct server sv;
	char cmd[128];
	FILE *f;

	server_init(&sv, "");
	f = fopen(sv.path, "w");
	cr_assert_not_null(f);
	fputs("precious\n", f);
	fclose(f);
	cr_assert_eq(control_open(sv.d), -EEXIST);
	cr_assert_null(sv.d->control);
	f = fopen(sv.path, "r");
	char line[32] = "";
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_assert_str_eq(line, "precious\n");
	cr_assert_eq(uv_run(&sv.d->loop, UV_RUN_DEFAULT), 0);
	cr_assert_eq(uv_loop_close(&sv.d->loop), 0);
	fixture_free(sv.f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sv.dir);
	cr_assert_eq(system(cmd), 0);
}

Test(server, socket_replaced_behind_our_back_not_removed)
{
	struct server sv;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	server_init(&sv, "");
	server_open(&sv, 1000);
	/* Someone removes ours and binds another at the path: close must not
	 * delete theirs. */
	cr_assert_eq(unlink(sv.path), 0);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sv.path);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	control_close(sv.d);
	cr_assert_eq(access(sv.path, F_OK), 0);
	close(s);
	unlink(sv.path);
	server_done(&sv); /* control_close again is a no-op: d->control is NULL */
}

/* ------------------------------------------------------------ the client */

/* control_query blocks, so the server's loop turns in a thread meanwhile;
 * an async handle stops it from inside (uv_stop is not thread-safe). */
struct loop_thread {
	struct server *sv;
	uv_async_t stop;
};

static void on_stop(uv_async_t *a)
{
	uv_close((uv_handle_t *)a, NULL);
	uv_stop(a->loop);
}

static void *loop_run(void *arg)
{
	struct loop_thread *lt = arg;
	uv_run(&lt->sv->d->loop, UV_RUN_DEFAULT);
	return NULL;
}

struct query_case {
	const char *request;
	const char *answer;
	const char *prefix;
};

static const struct query_case client_query_cases[] = {
	{ "version", "saltun " PACKAGE_VERSION "\nprotocol 1\n", NULL },
	{ "status nosuch", "error: no session 'nosuch'\n", NULL },
	{ "status json office", NULL, "{\"version\":1," },
	{ "status", NULL, "daemon: saltun" },
};

static void client_query_run(const struct query_case *c)
{
	struct server sv;
	struct loop_thread lt = { .sv = &sv };
	pthread_t t;
	char *answer = NULL;
	size_t len = 0;

	server_init(&sv, "");
	server_open(&sv, 2000);
	cr_assert_eq(uv_async_init(&sv.d->loop, &lt.stop, on_stop), 0);
	cr_assert_eq(pthread_create(&t, NULL, loop_run, &lt), 0);
	int rc = control_query(&answer, &len, sv.path, c->request);
	uv_async_send(&lt.stop);
	pthread_join(t, NULL);
	cr_assert_eq(rc, 0, "%s", strerror(-rc));
	cr_assert_eq(strlen(answer), len);
	if (c->answer != NULL)
		cr_assert_str_eq(answer, c->answer);
	else
		cr_assert_eq(strncmp(answer, c->prefix, strlen(c->prefix)), 0, "%s", answer);
	free(answer);
	server_done(&sv);
}

Test(client, query)
{
	for (size_t i = 0; i < ARRAY_SIZE(client_query_cases); i++)
		client_query_run(&client_query_cases[i]);
}

Test(client, no_daemon)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/saltun-test-control.XXXXXX", path[108];
	char *answer = (char *)1;
	size_t len = 7;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	cr_assert_eq(control_query(&answer, &len, path, "status"), -ENOENT);
	cr_assert_null(answer);
	cr_assert_eq(len, 0);
	/* A stale socket: nobody listens. */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	cr_assert_eq(control_query(&answer, &len, path, "status"), -ECONNREFUSED);
	unlink(path);
	rmdir(dir);
	char longpath[200];
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	cr_assert_eq(control_query(&answer, &len, longpath, "status"), -ENAMETOOLONG);
}
