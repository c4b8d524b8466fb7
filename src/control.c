/*
 * The control socket and the status it reports.
 *
 * Two halves.  The formatting half is pure: daemon and session structs in,
 * text or JSON out into a bounded buffer, so it is unit-tested with
 * hand-built structs.  The server half owns one uv_pipe_t listener and a
 * fixed table of CONTROL_CLIENTS_MAX connection slots embedded in struct
 * control: nothing is allocated per connection but the answer, every
 * connection is bounded in time (CONTROL_TIMEOUT_MS) and in request size
 * (CONTROL_LINE_MAX), and a connection beyond the table waits in the
 * kernel's backlog until a slot is free (libuv stops polling the listener
 * while an accepted connection is left pending).
 *
 * The status never reads d->static_priv, the config's private key or any
 * session's preshared key: only public keys, names, addresses and counters.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "key.h"
#include "log.h"
#include "session.h"
#include "util.h"

#define CONTROL_BACKLOG 64
#define CONTROL_UMASK 0117          /* socket mode 0660 from bind(2) */
#define CONTROL_DIR_MODE 0750
#define CONTROL_QUERY_TIMEOUT_S 10
#define CONTROL_ANSWER_MAX (16u << 20)
/* Status buffer budget: the daemon block, then per listen address and per
 * session.  A test fills every field to its widest and checks it fits. */
#define CONTROL_HEAD_MAX 2048
#define CONTROL_LISTEN_MAX 80
#define CONTROL_SESSION_MAX 2048
/* Text layout: "  label:" padded to the value column, as `wg show` aligns. */
#define CONTROL_LABEL_WIDTH 19
#define CONTROL_ITEMS_PER_LINE 4

/* Daemon-wide counters, in the order status shows them. */
static const struct {
	const char *name;
	size_t offset;
} control_counters[] = {
	{ "bad_header", offsetof(struct daemon_stats, bad_header) },
	{ "bad_mac1", offsetof(struct daemon_stats, bad_mac1) },
	{ "unknown_index", offsetof(struct daemon_stats, unknown_index) },
	{ "unknown_peer", offsetof(struct daemon_stats, unknown_peer) },
	{ "initiation_auth", offsetof(struct daemon_stats, initiation_auth) },
	{ "cookie_sent", offsetof(struct daemon_stats, cookie_sent) },
	{ "initiation_replay", offsetof(struct daemon_stats, initiation_replay) },
	{ "initiation_flood", offsetof(struct daemon_stats, initiation_flood) },
};
/* A counter added to struct daemon_stats must be added above, or status
 * would silently omit it. */
_Static_assert(sizeof(struct daemon_stats) == ARRAY_SIZE(control_counters) * sizeof(uint64_t),
	       "struct daemon_stats changed: update control_counters in control.c");

/* ------------------------------------------------------------ bounded output */

struct out {
	char *buf;
	size_t size, len;
	bool overflow;          /* something did not fit: the result is unusable */
};

static void out_vprintf(struct out *o, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
static void out_vprintf(struct out *o, const char *fmt, va_list ap)
{
	int n;

	if (o->overflow)
		return;
	n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
	if (n < 0 || (size_t)n >= o->size - o->len) {
		o->overflow = true;
		o->buf[o->len] = '\0';
		return;
	}
	o->len += (size_t)n;
}

static void out_printf(struct out *o, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vprintf(o, fmt, ap);
	va_end(ap);
}

/* A JSON string (RFC 8259 §7).  Bytes outside printable ASCII are escaped
 * as \u00XX: our strings are ASCII (validated names, inet_ntop, base64),
 * and this keeps the document valid whatever a device name holds. */
static void out_json_string(struct out *o, const char *s)
{
	out_printf(o, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			out_printf(o, "\\%c", *p);
		else if (*p == '\n')
			out_printf(o, "\\n");
		else if (*p == '\t')
			out_printf(o, "\\t");
		else if (*p < 0x20 || *p >= 0x7f)
			out_printf(o, "\\u%04x", *p);
		else
			out_printf(o, "%c", *p);
	}
	out_printf(o, "\"");
}

/* A JSON string, or null for NULL. */
static void out_json_string_or_null(struct out *o, const char *s)
{
	if (s == NULL)
		out_printf(o, "null");
	else
		out_json_string(o, s);
}

/* "  label:            value\n" */
static void out_field(struct out *o, const char *label, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void out_field(struct out *o, const char *label, const char *fmt, ...)
{
	va_list ap;
	char l[CONTROL_LABEL_WIDTH + 2];

	snprintf(l, sizeof(l), "%s:", label);
	out_printf(o, "  %-*s ", CONTROL_LABEL_WIDTH, l);
	va_start(ap, fmt);
	out_vprintf(o, fmt, ap);
	va_end(ap);
	out_printf(o, "\n");
}

/* "name N" items, CONTROL_ITEMS_PER_LINE per line, continuation lines
 * aligned under the value column. */
static void out_counter_list(struct out *o, const char *label, const char *const *names,
			     const uint64_t *values, size_t n)
{
	char l[CONTROL_LABEL_WIDTH + 2];

	snprintf(l, sizeof(l), "%s:", label);
	out_printf(o, "  %-*s ", CONTROL_LABEL_WIDTH, l);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && i % CONTROL_ITEMS_PER_LINE == 0)
			out_printf(o, ",\n  %-*s ", CONTROL_LABEL_WIDTH, "");
		else if (i > 0)
			out_printf(o, ", ");
		out_printf(o, "%s %llu", names[i], (unsigned long long)values[i]);
	}
	out_printf(o, "\n");
}

static void out_json_counters(struct out *o, const char *const *names, const uint64_t *values,
			      size_t n)
{
	out_printf(o, "{");
	for (size_t i = 0; i < n; i++) {
		out_printf(o, "%s", i ? "," : "");
		out_json_string(o, names[i]);
		out_printf(o, ":%llu", (unsigned long long)values[i]);
	}
	out_printf(o, "}");
}

/* "1 day, 2 hours, 3 minutes, 4 seconds", zero units left out, as `wg show`. */
static void out_duration(struct out *o, uint64_t seconds)
{
	static const struct {
		const char *unit;
		uint64_t seconds;
	} units[] = { { "day", 86400 }, { "hour", 3600 }, { "minute", 60 }, { "second", 1 } };
	bool first = true;

	if (seconds == 0) {
		out_printf(o, "0 seconds");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		uint64_t n = seconds / units[i].seconds;
		seconds %= units[i].seconds;
		if (n == 0)
			continue;
		out_printf(o, "%s%llu %s%s", first ? "" : ", ", (unsigned long long)n, units[i].unit,
			   n == 1 ? "" : "s");
		first = false;
	}
}

/* ------------------------------------------------------------ status */

static const char *control_state_name(enum session_state st)
{
	switch (st) {
	case SESSION_WAITING: return "waiting";
	case SESSION_HANDSHAKING: return "handshaking";
	case SESSION_UP: return "up";
	}
	return "unknown";
}

/* Seconds since the last completed handshake, or false for never. */
static bool control_handshake_age(const struct session *s, uint64_t now_ms, uint64_t *age)
{
	uint64_t t = s->timers.last_handshake_complete;

	if (t == 0)
		return false;
	*age = now_ms > t ? (now_ms - t) / 1000 : 0;
	return true;
}

/* The peer's current endpoint, or NULL when there is none. */
static const char *control_endpoint(const struct session *s, char *buf, size_t len)
{
	if (!s->has_endpoint)
		return NULL;
	return util_sockaddr_str((const struct sockaddr *)&s->endpoint, buf, len);
}

static void control_drop_table(const struct session *s, const char **names, uint64_t *values)
{
	for (unsigned i = 0; i < DROP__COUNT; i++) {
		names[i] = session_drop_name((enum session_drop)i);
		values[i] = s->st.drops[i];
	}
}

static void control_counter_table(const struct daemon *d, const char **names, uint64_t *values)
{
	for (size_t i = 0; i < ARRAY_SIZE(control_counters); i++) {
		names[i] = control_counters[i].name;
		memcpy(&values[i], (const char *)&d->st + control_counters[i].offset, sizeof(uint64_t));
	}
}

static void control_text_session(struct out *o, const struct session *s, uint64_t now_ms)
{
	char b64[KEY_B64_LEN + 1], ep[UTIL_ADDRSTRLEN];
	const char *names[DROP__COUNT];
	uint64_t values[DROP__COUNT], age;

	key_to_base64(b64, s->cs->public_key);
	out_printf(o, "session: %s\n", s->name);
	out_field(o, "peer", "%s", b64);
	out_field(o, "state", "%s", control_state_name(session_state(s)));
	out_field(o, "device", "%s", s->dev.name[0] ? s->dev.name : "(none)");
	out_field(o, "type", "%s", s->type == TUN_TYPE_TAP ? "tap" : "tun");
	out_field(o, "mtu", "%u", s->mtu);
	out_field(o, "transport", "%s", conf_transport_name(s->cs->transport));
	if (control_endpoint(s, ep, sizeof(ep)) != NULL)
		out_field(o, "endpoint", "%s", ep);
	else if (s->cs->has_endpoint)
		/* A host name not resolved (yet): say what will be dialled. */
		out_field(o, "endpoint", "%s:%u (not resolved)", s->cs->endpoint.host,
			  s->cs->endpoint.port);
	else
		out_field(o, "endpoint", "(none: waits for the peer)");
	if (control_handshake_age(s, now_ms, &age)) {
		char when[96];
		struct out w = { .buf = when, .size = sizeof(when) };
		out_duration(&w, age);
		out_field(o, "latest handshake", "%s%s", age == 0 ? "just now" : when,
			  age == 0 ? "" : " ago");
	} else {
		out_field(o, "latest handshake", "never");
	}
	out_field(o, "received", "%llu bytes, %llu packets", (unsigned long long)s->st.rx_bytes,
		  (unsigned long long)s->st.rx_packets);
	out_field(o, "sent", "%llu bytes, %llu packets", (unsigned long long)s->st.tx_bytes,
		  (unsigned long long)s->st.tx_packets);
	out_field(o, "handshakes", "%llu attempted, %llu completed",
		  (unsigned long long)s->st.handshake_attempts,
		  (unsigned long long)s->st.handshakes_completed);
	out_field(o, "rekeys", "%llu", (unsigned long long)s->st.rekeys);
	out_field(o, "hook failures", "%llu", (unsigned long long)s->st.hook_failures);
	control_drop_table(s, names, values);
	out_counter_list(o, "drops", names, values, DROP__COUNT);
}

static void control_json_session(struct out *o, const struct session *s, uint64_t now_ms)
{
	char b64[KEY_B64_LEN + 1], ep[UTIL_ADDRSTRLEN];
	const char *names[DROP__COUNT];
	uint64_t values[DROP__COUNT], age;

	key_to_base64(b64, s->cs->public_key);
	out_printf(o, "{\"name\":");
	out_json_string(o, s->name);
	out_printf(o, ",\"peer_public_key\":");
	out_json_string(o, b64);
	out_printf(o, ",\"state\":\"%s\",\"device\":", control_state_name(session_state(s)));
	out_json_string_or_null(o, s->dev.name[0] ? s->dev.name : NULL);
	out_printf(o, ",\"type\":\"%s\",\"mtu\":%u,\"transport\":\"%s\",\"endpoint\":",
		   s->type == TUN_TYPE_TAP ? "tap" : "tun", s->mtu,
		   conf_transport_name(s->cs->transport));
	out_json_string_or_null(o, control_endpoint(s, ep, sizeof(ep)));
	if (control_handshake_age(s, now_ms, &age))
		out_printf(o, ",\"latest_handshake_seconds_ago\":%llu", (unsigned long long)age);
	else
		out_printf(o, ",\"latest_handshake_seconds_ago\":null");
	out_printf(o,
		   ",\"rx_bytes\":%llu,\"rx_packets\":%llu,\"tx_bytes\":%llu,\"tx_packets\":%llu"
		   ",\"handshake_attempts\":%llu,\"handshakes_completed\":%llu,\"rekeys\":%llu"
		   ",\"hook_failures\":%llu,\"drops\":",
		   (unsigned long long)s->st.rx_bytes, (unsigned long long)s->st.rx_packets,
		   (unsigned long long)s->st.tx_bytes, (unsigned long long)s->st.tx_packets,
		   (unsigned long long)s->st.handshake_attempts,
		   (unsigned long long)s->st.handshakes_completed, (unsigned long long)s->st.rekeys,
		   (unsigned long long)s->st.hook_failures);
	control_drop_table(s, names, values);
	out_json_counters(o, names, values, DROP__COUNT);
	out_printf(o, "}");
}

static void control_text_daemon(struct out *o, const struct daemon *d, uint64_t now_ms)
{
	char b64[KEY_B64_LEN + 1], addr[UTIL_ADDRSTRLEN];
	const char *names[ARRAY_SIZE(control_counters)];
	uint64_t values[ARRAY_SIZE(control_counters)];
	unsigned up = 0;

	key_to_base64(b64, d->static_pub);
	out_printf(o, "daemon: saltun %s\n", PACKAGE_VERSION);
	out_field(o, "public key", "%s", b64);
	out_printf(o, "  %-*s ", CONTROL_LABEL_WIDTH, "listening:");
	if (d->conf.global.nlisten == 0)
		out_printf(o, "(none: dials out only)");
	for (unsigned i = 0; i < d->conf.global.nlisten; i++)
		out_printf(o, "%s%s", i ? ", " : "",
			   util_sockaddr_str((const struct sockaddr *)&d->conf.global.listen[i], addr,
					     sizeof(addr)));
	out_printf(o, "\n  %-*s ", CONTROL_LABEL_WIDTH, "uptime:");
	out_duration(o, now_ms > d->started_ms ? (now_ms - d->started_ms) / 1000 : 0);
	for (unsigned i = 0; i < d->nsessions; i++)
		up += session_state(d->sessions[i]) == SESSION_UP;
	out_printf(o, "\n");
	out_field(o, "sessions", "%u (%u up)", d->nsessions, up);
	control_counter_table(d, names, values);
	out_counter_list(o, "counters", names, values, ARRAY_SIZE(control_counters));
}

static void control_json_status(struct out *o, const struct daemon *d, const struct session *only,
				uint64_t now_ms)
{
	char b64[KEY_B64_LEN + 1], addr[UTIL_ADDRSTRLEN];
	const char *names[ARRAY_SIZE(control_counters)];
	uint64_t values[ARRAY_SIZE(control_counters)];
	bool first = true;

	key_to_base64(b64, d->static_pub);
	out_printf(o, "{\"version\":%d,\"saltun\":", CONTROL_JSON_VERSION);
	out_json_string(o, PACKAGE_VERSION);
	out_printf(o, ",\"public_key\":");
	out_json_string(o, b64);
	out_printf(o, ",\"listen\":[");
	for (unsigned i = 0; i < d->conf.global.nlisten; i++) {
		out_printf(o, "%s", i ? "," : "");
		out_json_string(o, util_sockaddr_str((const struct sockaddr *)&d->conf.global.listen[i],
						     addr, sizeof(addr)));
	}
	out_printf(o, "],\"uptime_seconds\":%llu,\"counters\":",
		   (unsigned long long)(now_ms > d->started_ms ? (now_ms - d->started_ms) / 1000 : 0));
	control_counter_table(d, names, values);
	out_json_counters(o, names, values, ARRAY_SIZE(control_counters));
	out_printf(o, ",\"sessions\":[");
	for (unsigned i = 0; i < d->nsessions; i++) {
		if (only != NULL && only != d->sessions[i])
			continue;
		out_printf(o, "%s", first ? "" : ",");
		control_json_session(o, d->sessions[i], now_ms);
		first = false;
	}
	out_printf(o, "]}\n");
}

size_t control_status_size(const struct daemon *d)
{
	return CONTROL_HEAD_MAX + (size_t)d->conf.global.nlisten * CONTROL_LISTEN_MAX +
	       (size_t)d->nsessions * CONTROL_SESSION_MAX;
}

int control_format_status(char *buf, size_t size, size_t *len, const struct daemon *d,
			  const char *session, bool json, uint64_t now_ms)
{
	struct out o = { .buf = buf, .size = size };
	const struct session *only = NULL;

	if (size == 0)
		return -ENOSPC;
	buf[0] = '\0';
	if (session != NULL && session[0] != '\0') {
		for (unsigned i = 0; i < d->nsessions && only == NULL; i++)
			if (strcmp(d->sessions[i]->name, session) == 0)
				only = d->sessions[i];
		if (only == NULL)
			return -ENOENT;
	}
	if (json) {
		control_json_status(&o, d, only, now_ms);
	} else if (only != NULL) {
		control_text_session(&o, only, now_ms);
	} else {
		control_text_daemon(&o, d, now_ms);
		for (unsigned i = 0; i < d->nsessions; i++) {
			out_printf(&o, "\n");
			control_text_session(&o, d->sessions[i], now_ms);
		}
	}
	if (o.overflow)
		return -ENOSPC;
	*len = o.len;
	return 0;
}

/* ------------------------------------------------------------ requests */

static bool control_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > CONF_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

static bool control_word_is(const char *w, size_t wlen, const char *s)
{
	return wlen == strlen(s) && memcmp(w, s, wlen) == 0;
}

bool control_parse_request(struct control_request *r, const char *line, size_t len, char *why,
			   size_t whylen)
{
	const char *w[4];
	size_t wl[4], nw = 0, i = 0, arg = 1;

	memset(r, 0, sizeof(*r));
	if (len > CONTROL_LINE_MAX) {
		snprintf(why, whylen, "request longer than %d bytes", CONTROL_LINE_MAX);
		return false;
	}
	if (len > 0 && line[len - 1] == '\r')
		len--;
	/* Printable ASCII only: an error below may quote a word back. */
	for (size_t j = 0; j < len; j++) {
		unsigned char ch = (unsigned char)line[j];
		if ((ch < 0x20 && ch != '\t') || ch >= 0x7f) {
			snprintf(why, whylen, "request is not a line of text");
			return false;
		}
	}
	while (i < len) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		if (nw == ARRAY_SIZE(w)) {
			snprintf(why, whylen, "too many words in request");
			return false;
		}
		w[nw] = line + i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		wl[nw] = (size_t)(line + i - w[nw]);
		nw++;
	}
	if (nw == 0) {
		snprintf(why, whylen, "empty request");
		return false;
	}
	if (control_word_is(w[0], wl[0], "version")) {
		if (nw > 1) {
			snprintf(why, whylen, "'version' takes no arguments");
			return false;
		}
		r->kind = CONTROL_REQ_VERSION;
		return true;
	}
	if (!control_word_is(w[0], wl[0], "status")) {
		snprintf(why, whylen, "unknown request '%.*s' (known: status, version)",
			 (int)(wl[0] > 32 ? 32 : wl[0]), w[0]);
		return false;
	}
	r->kind = CONTROL_REQ_STATUS;
	/* "status json" is the JSON of every session: a session named "json"
	 * can only be asked for as "status json json" (saltun(8) says so). */
	if (arg < nw && control_word_is(w[arg], wl[arg], "json")) {
		r->json = true;
		arg++;
	}
	if (arg < nw) {
		if (!control_name_valid(w[arg], wl[arg])) {
			snprintf(why, whylen, "bad session name: expected at most %d of [A-Za-z0-9_.-]",
				 CONF_NAME_MAX);
			return false;
		}
		memcpy(r->session, w[arg], wl[arg]);
		r->session[wl[arg]] = '\0';
		arg++;
	}
	if (arg < nw) {
		snprintf(why, whylen, "usage: status [json] [SESSION]");
		return false;
	}
	return true;
}

static int control_answer_string(char **out, size_t *outlen, const char *fmt, ...)
	PRINTF_LIKE(3, 4);
static int control_answer_string(char **out, size_t *outlen, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	*out = s;
	*outlen = (size_t)n;
	return 0;
}

int control_answer(char **out, size_t *outlen, const struct daemon *d, const char *line,
		   size_t len, uint64_t now_ms)
{
	struct control_request r;
	char why[128];
	size_t size;
	char *buf;
	int rc;

	if (!control_parse_request(&r, line, len, why, sizeof(why)))
		return control_answer_string(out, outlen, "error: %s\n", why);
	if (r.kind == CONTROL_REQ_VERSION)
		return control_answer_string(out, outlen, "saltun %s\nprotocol %d\n", PACKAGE_VERSION,
					     CONTROL_PROTOCOL_VERSION);
	size = control_status_size(d);
	buf = malloc(size);
	if (buf == NULL)
		return -ENOMEM;
	rc = control_format_status(buf, size, outlen, d, r.session, r.json, now_ms);
	if (rc == 0) {
		*out = buf;
		return 0;
	}
	free(buf);
	if (rc == -ENOENT)
		return control_answer_string(out, outlen, "error: no session '%s'\n", r.session);
	/* The size bound was wrong: a bug, said as such rather than truncated. */
	log_warnx("control: status does not fit in %zu bytes", size);
	return control_answer_string(out, outlen, "error: status too large (a bug: please report)\n");
}

/* ------------------------------------------------------------ the server */

static void control_accept(struct control *c);

static void control_maybe_free(struct control *c)
{
	if (!c->closing || c->listener_open)
		return;
	for (unsigned i = 0; i < CONTROL_CLIENTS_MAX; i++)
		if (c->clients[i].open_handles != 0)
			return;
	free(c);
}

static void control_on_client_closed(uv_handle_t *h)
{
	struct control_client *cl = h->data;
	struct control *c = cl->c;

	if (--cl->open_handles > 0)
		return;
	/* Both handles closed: the pending write (if any) was cancelled before
	 * this callback, so the answer is no longer referenced. */
	free(cl->answer);
	cl->answer = NULL;
	cl->len = 0;
	cl->answered = false;
	if (c->closing)
		control_maybe_free(c);
	else if (c->accept_pending)
		control_accept(c);
}

static void control_client_close(struct control_client *cl)
{
	if (!uv_is_closing((uv_handle_t *)&cl->pipe))
		uv_close((uv_handle_t *)&cl->pipe, control_on_client_closed);
	if (!uv_is_closing((uv_handle_t *)&cl->timer))
		uv_close((uv_handle_t *)&cl->timer, control_on_client_closed);
}

static void control_on_timeout(uv_timer_t *t)
{
	struct control_client *cl = t->data;

	log_debug("control: connection closed after %u ms without a complete exchange",
		  cl->c->timeout_ms);
	control_client_close(cl);
}

static void control_on_written(uv_write_t *w, int status)
{
	struct control_client *cl = w->data;

	/* Answered (or cancelled by a close): either way this connection is done. */
	control_client_close(cl);
}

/* 1: `line` is the request "reload"; -1: "reload" with arguments; 0: another
 * request (control_answer's). */
static int control_reload_words(const char *line, size_t len)
{
	static const char word[] = "reload";
	const size_t wl = sizeof(word) - 1;

	while (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		len--;
	if (len < wl || memcmp(line, word, wl) != 0)
		return 0;
	if (len == wl)
		return 1;
	return line[wl] == ' ' || line[wl] == '\t' ? -1 : 0;
}

/* "reload" changes the daemon, which control_answer() only reads: served
 * here.  Status is for the socket's group; a reload only for root, or for
 * the daemon's own user when it runs as one process (never for the
 * network process's user: nobody is not to reload anything).  SO_PEERCRED:
 * who connected, not who may open the file. */
static int control_answer_reload(struct control_client *cl, char **out, size_t *outlen, int words)
{
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	uv_os_fd_t fd;
	int rc;

	if (words < 0)
		return control_answer_string(out, outlen, "error: 'reload' takes no arguments\n");
	if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0 ||
	    (cred.uid != 0 && (cred.uid != geteuid() || cl->c->d->priv != NULL))) {
		log_warnx("control: reload refused: not asked by root");
		return control_answer_string(out, outlen,
					     "error: reload: permission denied: only root may reload\n");
	}
	rc = daemon_reload(cl->c->d, out);
	if (*out != NULL) {
		*outlen = strlen(*out);
		return 0;
	}
	/* No memory for the full answer: at least say how it ended. */
	return control_answer_string(out, outlen, "%s\n", rc == 0 ? "reloaded" :
				     rc == -EIO ? "error: reload: a session could not start (see the log)" :
				     "error: reload failed (see the log)");
}

/* The request is line[0, len): answer it and close after the write. */
static void control_respond(struct control_client *cl, size_t len)
{
	uv_buf_t b;
	int rc, reload;

	uv_read_stop((uv_stream_t *)&cl->pipe);
	cl->answered = true;
	reload = control_reload_words(cl->line, len);
	if (reload != 0)
		rc = control_answer_reload(cl, &cl->answer, &b.len, reload);
	else
		rc = control_answer(&cl->answer, &b.len, cl->c->d, cl->line, len, util_now_ms());
	if (rc < 0) {
		log_warnx("control: out of memory for an answer");
		control_client_close(cl);
		return;
	}
	b.base = cl->answer;
	cl->write.data = cl;
	rc = uv_write(&cl->write, (uv_stream_t *)&cl->pipe, &b, 1, control_on_written);
	if (rc < 0)
		control_client_close(cl);
}

static void control_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct control_client *cl = h->data;

	/* Never more than the line can hold: a request is read into its slot,
	 * one byte past CONTROL_LINE_MAX + newline tells "too long". */
	buf->base = cl->line + cl->len;
	buf->len = sizeof(cl->line) - 1 - cl->len;
}

static void control_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct control_client *cl = st->data;
	char *nl;

	if (cl->answered)
		return;
	if (nread < 0) {
		/* A client may end its request by closing its side instead of "\n". */
		if (nread == UV_EOF && cl->len > 0)
			control_respond(cl, cl->len);
		else
			control_client_close(cl);
		return;
	}
	if (nread == 0)
		return;
	nl = memchr(cl->line + cl->len, '\n', (size_t)nread);
	cl->len += (size_t)nread;
	if (nl != NULL)
		control_respond(cl, (size_t)(nl - cl->line));
	else if (cl->len >= sizeof(cl->line) - 1)
		control_respond(cl, cl->len); /* no newline within the limit: refused */
}

static void control_accept(struct control *c)
{
	struct control_client *cl = NULL;
	int rc;

	for (unsigned i = 0; i < CONTROL_CLIENTS_MAX && cl == NULL; i++)
		if (c->clients[i].open_handles == 0)
			cl = &c->clients[i];
	if (cl == NULL) {
		/* Leave it in the backlog: libuv stops polling the listener until
		 * we accept, so a full table costs nothing while it lasts. */
		c->accept_pending = true;
		return;
	}
	c->accept_pending = false;
	cl->c = c;
	cl->len = 0;
	cl->answered = false;
	uv_pipe_init(&c->d->loop, &cl->pipe, 0);
	uv_timer_init(&c->d->loop, &cl->timer);
	cl->pipe.data = cl->timer.data = cl;
	cl->open_handles = 2;
	rc = uv_accept((uv_stream_t *)&c->listener, (uv_stream_t *)&cl->pipe);
	if (rc < 0) {
		log_warnx("control: accept: %s", uv_strerror(rc));
		control_client_close(cl);
		return;
	}
	uv_timer_start(&cl->timer, control_on_timeout, c->timeout_ms, 0);
	rc = uv_read_start((uv_stream_t *)&cl->pipe, control_on_alloc, control_on_read);
	if (rc < 0)
		control_client_close(cl);
}

static void control_on_connection(uv_stream_t *server, int status)
{
	struct control *c = container_of(server, struct control, listener);

	if (status < 0) {
		log_warnx("control: %s", uv_strerror(status));
		return;
	}
	control_accept(c);
}

static void control_on_listener_closed(uv_handle_t *h)
{
	struct control *c = container_of(h, struct control, listener);

	c->listener_open = false;
	control_maybe_free(c);
}

/* The gid of CONTROL_GROUP, or false when there is no such group. */
static bool control_group_gid(gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[16384];

	if (getgrnam_r(CONTROL_GROUP, &gr, buf, sizeof(buf), &res) != 0 || res == NULL)
		return false;
	*gid = gr.gr_gid;
	return true;
}

/* Create the socket's directory when missing, 0750 whatever the umask, and
 * in CONTROL_GROUP so that its members can reach the socket.  An existing
 * directory is left as its owner set it (systemd's RuntimeDirectory=). */
static int control_dir_make(const char *path)
{
	char dir[sizeof(((struct conf_global *)0)->control)];
	char *slash;
	struct stat st;
	gid_t gid;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0; /* relative (tests) or in "/" */
	*slash = '\0';
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (errno != ENOENT)
		return -errno;
	if (mkdir(dir, CONTROL_DIR_MODE) < 0 && errno != EEXIST)
		return -errno;
	if (chmod(dir, CONTROL_DIR_MODE) < 0)
		return -errno;
	if (control_group_gid(&gid) && chown(dir, (uid_t)-1, gid) < 0)
		log_info("control: cannot give %s to group %s (%s): root only", dir, CONTROL_GROUP,
			 strerror(errno));
	return 0;
}

/*
 * May we bind `path`?  0 when nothing is there or a stale socket was
 * removed.  -EADDRINUSE when a process accepts connections on it (another
 * saltun with the same `control`): never take its socket away.  -EEXIST
 * when it is not a socket: never delete a file we did not make.
 */
static int control_socket_claim(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Non-blocking: a live listener with a full backlog says EAGAIN
	 * instead of making the daemon wait. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	close(fd);
	if (rc == 0 || rc == EAGAIN || rc == EINPROGRESS)
		return -EADDRINUSE;
	if (rc != ECONNREFUSED)
		return -rc;
	/* Nobody listens: a previous daemon died without removing it. */
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	log_info("control: removed stale socket %s", path);
	return 0;
}

int control_open(struct daemon *d)
{
	const char *path = d->conf.global.control;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *c;
	struct stat st;
	mode_t old;
	gid_t gid;
	int fd, rc;

	if (path[0] == '\0')
		return 0;
	if ((rc = control_dir_make(path)) < 0) {
		log_warnx("control: cannot create the directory of %s: %s; running without a control socket",
			  path, strerror(-rc));
		return rc;
	}
	rc = control_socket_claim(path);
	if (rc == -EADDRINUSE) {
		log_warnx("control: another daemon listens on %s; running without a control socket "
			  "(give each daemon its own 'control' path)", path);
		return rc;
	}
	if (rc < 0) {
		log_warnx("control: %s: %s%s; running without a control socket", path, strerror(-rc),
			  rc == -EEXIST ? " and is not a socket" : "");
		return rc;
	}

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->d = d;
	c->timeout_ms = CONTROL_TIMEOUT_MS;
	snprintf(c->path, sizeof(c->path), "%s", path);
	uv_pipe_init(&d->loop, &c->listener, 0);
	c->listener_open = true;
	/* Bound here rather than by uv_pipe_bind(), whose uv_close() unlinks
	 * the path whatever is there by then: control_close() removes the file
	 * only if it is still ours.  umask is process-wide; the daemon is
	 * single-threaded and spawns nothing in between. */
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		log_warnx("control: socket: %s; running without a control socket", strerror(-rc));
		goto fail;
	}
	old = umask(CONTROL_UMASK);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
	umask(old);
	if (rc < 0) {
		log_warnx("control: cannot bind %s: %s; running without a control socket", path,
			  strerror(-rc));
		close(fd);
		goto fail;
	}
	if ((rc = uv_pipe_open(&c->listener, fd)) < 0) {
		log_warnx("control: %s: %s; running without a control socket", path, uv_strerror(rc));
		close(fd);
		unlink(path);
		goto fail;
	}
	if (lstat(path, &st) == 0) {
		c->sock_dev = st.st_dev;
		c->sock_ino = st.st_ino;
	}
	/* Group members may ask for status (read-only); without the group, or
	 * without CAP_CHOWN (the systemd unit), it stays root's. */
	if (control_group_gid(&gid) && chown(path, (uid_t)-1, gid) < 0)
		log_info("control: cannot give %s to group %s (%s): root only", path, CONTROL_GROUP,
			 strerror(errno));
	rc = uv_listen((uv_stream_t *)&c->listener, CONTROL_BACKLOG, control_on_connection);
	if (rc < 0) {
		log_warnx("control: cannot listen on %s: %s; running without a control socket", path,
			  uv_strerror(rc));
		unlink(path);
		goto fail;
	}
	d->control = c;
	log_info("control socket %s", path);
	return 0;
fail:
	c->closing = true;
	uv_close((uv_handle_t *)&c->listener, control_on_listener_closed);
	return rc;
}

void control_close(struct daemon *d)
{
	struct control *c = d->control;
	struct stat st;

	if (c == NULL)
		return;
	d->control = NULL;
	c->closing = true;
	/* Remove the file only if it is still the one we bound: never another
	 * daemon's that replaced it. */
	if (lstat(c->path, &st) == 0 && st.st_dev == c->sock_dev && st.st_ino == c->sock_ino)
		unlink(c->path);
	for (unsigned i = 0; i < CONTROL_CLIENTS_MAX; i++)
		if (c->clients[i].open_handles != 0)
			control_client_close(&c->clients[i]);
	uv_close((uv_handle_t *)&c->listener, control_on_listener_closed);
}

/* ------------------------------------------------------------ the client */

static char *control_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

bool control_path_from_conf(char *out, size_t outlen, FILE *f)
{
	char *line = NULL, *p, *k, *v, *e;
	size_t cap = 0;
	bool global = false, found = false;

	/* The way inih reads it: "[section]", "key = value" or "key: value",
	 * ';' or '#' comment lines, ';' after whitespace starts an inline
	 * comment. */
	while (getline(&line, &cap, f) > 0) {
		p = control_trim(line);
		if (*p == '\0' || *p == ';' || *p == '#')
			continue;
		if (*p == '[') {
			e = strchr(p, ']');
			if (e != NULL) {
				*e = '\0';
				global = strcmp(control_trim(p + 1), "global") == 0;
			}
			continue;
		}
		if (!global)
			continue;
		e = p + strcspn(p, "=:");
		if (*e == '\0')
			continue;
		*e = '\0';
		k = control_trim(p);
		v = e + 1;
		for (e = v; *e != '\0'; e++)
			if (*e == ';' && e > v && (e[-1] == ' ' || e[-1] == '\t')) {
				*e = '\0';
				break;
			}
		v = control_trim(v);
		if (strcmp(k, "control") == 0 && *v != '\0' && strlen(v) < outlen) {
			memcpy(out, v, strlen(v) + 1);
			found = true;
		}
	}
	free(line);
	return found;
}

static int control_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int control_query(char **answer, size_t *len, const char *path, const char *request)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CONTROL_QUERY_TIMEOUT_S };
	char *buf = NULL, *nb;
	size_t cap = 0, n = 0;
	int fd, rc;

	*answer = NULL;
	*len = 0;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = control_write_all(fd, request, strlen(request))) < 0 ||
	    (rc = control_write_all(fd, "\n", 1)) < 0)
		goto out;
	for (;;) {
		if (cap - n < 4096) {
			if (cap >= CONTROL_ANSWER_MAX) {
				rc = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		ssize_t r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		/* The daemon closed with part of our request unread (it refused
		 * it early): Linux reports that after the answer, not as EOF. */
		if (r < 0 && errno == ECONNRESET && n > 0)
			break;
		if (r < 0) {
			rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	buf[n] = '\0';
	*answer = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}
