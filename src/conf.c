/*
 * The configuration: inih turns lines into (section, key, value) calls and
 * this file turns those into a validated session table.
 *
 * Debian's inih is built with INI_HANDLER_LINENO 0 and INI_MAX_LINE 200, so
 * the handler is never told its line number.  We therefore feed inih
 * through our own reader (ini_parse_stream), which sees every raw line
 * first: it counts lines, refuses over-long ones (inih would silently split
 * them in two), recognises section headers and continuation lines the way
 * inih will, and reports syntax errors itself, because inih reports only
 * the first one.  Lines we refuse reach inih as empty lines, so its line
 * count and ours stay equal.
 *
 * Parsing keeps going after an error (OpenBSD daemons): the user sees every
 * problem of the file in one run.  Checks that need the whole file
 * ([defaults] inheritance, missing keys, duplicates across sessions) run
 * once at the end, in conf_finish().
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>
#include <sodium.h>

#include "conf.h"
#include "util.h"

#ifndef SALTUN_RUNSTATEDIR
#define SALTUN_RUNSTATEDIR "/run"
#endif

#define CONF_HOOK_TIMEOUT_DEFAULT 30
#define CONF_HOOK_TIMEOUT_MAX 3600
#define CONF_MTU_IPV6_MIN 1280
#define CONF_HOSTNAME_MAX 253 /* RFC 1123 §2.1, without the trailing dot */
#define CONF_WHY_MAX 512

/* Every key, in the order saltun.conf(5) documents them. */
enum conf_key {
	CONF_KEY_PRIVATE_KEY = 0,
	CONF_KEY_LISTEN,
	CONF_KEY_USER,
	CONF_KEY_GROUP,
	CONF_KEY_LOG,
	CONF_KEY_LOG_LEVEL,
	CONF_KEY_CONTROL,
	CONF_KEY_PUBLIC_KEY,
	CONF_KEY_PRESHARED_KEY,
	CONF_KEY_ENDPOINT,
	CONF_KEY_TRANSPORT,
	CONF_KEY_TYPE,
	CONF_KEY_DEVICE,
	CONF_KEY_MTU,
	CONF_KEY_BRIDGE,
	CONF_KEY_UP,
	CONF_KEY_DOWN,
	CONF_KEY_CONNECT,
	CONF_KEY_DISCONNECT,
	CONF_KEY_KEEPALIVE,
	CONF_KEY_SPEED,
	CONF_KEY_HOOK_TIMEOUT,
	CONF_KEY_COUNT
};

static const struct conf_key_info {
	const char *name;
	bool global; /* [global] only; every other key is a session key */
	bool hook;   /* may span several lines */
} conf_keys[CONF_KEY_COUNT] = {
	[CONF_KEY_PRIVATE_KEY] = { "private_key", true, false },
	[CONF_KEY_LISTEN] = { "listen", true, false },
	[CONF_KEY_USER] = { "user", true, false },
	[CONF_KEY_GROUP] = { "group", true, false },
	[CONF_KEY_LOG] = { "log", true, false },
	[CONF_KEY_LOG_LEVEL] = { "log_level", true, false },
	[CONF_KEY_CONTROL] = { "control", true, false },
	[CONF_KEY_PUBLIC_KEY] = { "public_key", false, false },
	[CONF_KEY_PRESHARED_KEY] = { "preshared_key", false, false },
	[CONF_KEY_ENDPOINT] = { "endpoint", false, false },
	[CONF_KEY_TRANSPORT] = { "transport", false, false },
	[CONF_KEY_TYPE] = { "type", false, false },
	[CONF_KEY_DEVICE] = { "device", false, false },
	[CONF_KEY_MTU] = { "mtu", false, false },
	[CONF_KEY_BRIDGE] = { "bridge", false, false },
	[CONF_KEY_UP] = { "up", false, true },
	[CONF_KEY_DOWN] = { "down", false, true },
	[CONF_KEY_CONNECT] = { "connect", false, true },
	[CONF_KEY_DISCONNECT] = { "disconnect", false, true },
	[CONF_KEY_KEEPALIVE] = { "keepalive", false, false },
	[CONF_KEY_SPEED] = { "speed", false, false },
	[CONF_KEY_HOOK_TIMEOUT] = { "hook_timeout", false, false },
};

/* One session section (or [defaults]) as parsed, with the line each key
 * came from, so that checks made at the end can still point at a line. */
struct conf_parsed {
	struct conf_session s;
	char *section;                 /* the name as written, for messages */
	int line_of[CONF_KEY_COUNT];   /* 0 = not set in this section */
};

/* One diagnostic, held back until the file has been read. */
struct conf_message {
	int line;
	unsigned seq;
	bool warning;
	char *text;
};

enum conf_section_kind {
	CONF_SECTION_NONE = 0,  /* before the first header */
	CONF_SECTION_IGNORE,    /* after a malformed header: already reported */
	CONF_SECTION_GLOBAL,
	CONF_SECTION_DEFAULTS,
	CONF_SECTION_SESSION,
};

struct conf_parser {
	struct conf *c;
	const char *name;      /* file name as shown in messages */
	char *dir;             /* relative key paths are taken from here; NULL = cwd */
	FILE *diag;
	unsigned errors;
	bool buffered;         /* hold messages back, to print them in line order */
	struct conf_message *messages;
	unsigned nmessages, message_cap;
	bool others_can_read;   /* the config file itself: inline secrets are exposed */

	/* Input: a FILE or a string, one raw line at a time. */
	FILE *file;
	const char *text;
	size_t text_pos;
	char *line;
	size_t line_cap;
	int lineno;

	/* What inih will make of the line we hand it (mirrors its state). */
	bool has_prev_key;     /* inih's prev_name: an indented line continues it */
	bool continuation;     /* the current line continues the previous key */
	bool last_key_valid;   /* the previous key line was accepted */
	enum conf_key last_key;

	enum conf_section_kind kind;
	unsigned cur;          /* index into sessions, for CONF_SECTION_SESSION */
	int global_line;       /* header lines, 0 = not seen */
	int defaults_line;
	int global_line_of[CONF_KEY_COUNT];
	struct conf_parsed defaults;
	struct conf_parsed *sessions;
	unsigned nsessions, cap;
};

/* ------------------------------------------------------------ messages */

static void conf_vreport(struct conf_parser *p, int line, bool warning, const char *fmt,
			 va_list ap) PRINTF_LIKE(4, 0);
static void conf_write_prefix(const struct conf_parser *p, int line, bool warning)
{
	if (line > 0)
		fprintf(p->diag, "%s:%d: ", p->name, line);
	else
		fprintf(p->diag, "%s: ", p->name);
	if (warning)
		fputs("warning: ", p->diag);
}

static bool conf_message_reserve(struct conf_parser *p)
{
	struct conf_message *grown;
	unsigned cap;

	if (p->nmessages < p->message_cap)
		return true;
	cap = p->message_cap ? p->message_cap * 2 : 16;
	grown = realloc(p->messages, cap * sizeof(*grown));
	if (!grown)
		return false;
	p->messages = grown;
	p->message_cap = cap;
	return true;
}

/*
 * Messages are kept until the end and then printed in line order: checks
 * that need the whole file (duplicates, [defaults]) find their problems
 * last, but the user reads the file top to bottom.
 */
static void conf_vreport(struct conf_parser *p, int line, bool warning, const char *fmt,
			 va_list ap)
{
	char *text = NULL;
	va_list aq;
	int n;

	if (!warning)
		p->errors++;
	if (!p->diag)
		return;
	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (p->buffered && n >= 0 && conf_message_reserve(p))
		text = malloc((size_t)n + 1);
	if (!text) {
		/* Not buffering (yet), or out of memory: print it now. */
		conf_write_prefix(p, line, warning);
		vfprintf(p->diag, fmt, ap);
		fputc('\n', p->diag);
		return;
	}
	vsnprintf(text, (size_t)n + 1, fmt, ap);
	p->messages[p->nmessages] = (struct conf_message){
		.line = line, .seq = p->nmessages, .warning = warning, .text = text,
	};
	p->nmessages++;
}

/* Line order; messages about the whole file (line 0) last; ties keep the
 * order they were found in. */
static int conf_message_cmp(const void *a, const void *b)
{
	const struct conf_message *x = a, *y = b;
	unsigned lx = x->line > 0 ? (unsigned)x->line : UINT_MAX;
	unsigned ly = y->line > 0 ? (unsigned)y->line : UINT_MAX;

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void conf_flush_messages(struct conf_parser *p)
{
	if (p->nmessages)
		qsort(p->messages, p->nmessages, sizeof(*p->messages), conf_message_cmp);
	for (unsigned i = 0; i < p->nmessages; i++) {
		conf_write_prefix(p, p->messages[i].line, p->messages[i].warning);
		fprintf(p->diag, "%s\n", p->messages[i].text);
		free(p->messages[i].text);
	}
	free(p->messages);
	p->messages = NULL;
	p->nmessages = p->message_cap = 0;
}

static void conf_error(struct conf_parser *p, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void conf_error(struct conf_parser *p, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conf_vreport(p, line, false, fmt, ap);
	va_end(ap);
}

static void conf_warn(struct conf_parser *p, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void conf_warn(struct conf_parser *p, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conf_vreport(p, line, true, fmt, ap);
	va_end(ap);
}

/* "[global]", "[defaults]" or "session [office]", for messages. */
static const char *conf_where(const struct conf_parser *p, char *buf, size_t len)
{
	switch (p->kind) {
	case CONF_SECTION_GLOBAL: return "[global]";
	case CONF_SECTION_DEFAULTS: return "[defaults]";
	case CONF_SECTION_SESSION:
		snprintf(buf, len, "session [%s]", p->sessions[p->cur].section);
		return buf;
	default: return "no section";
	}
}

/* ------------------------------------------------------------- values */

const char *conf_devtype_name(enum conf_devtype t)
{
	return t == CONF_DEV_TAP ? "tap" : "tun";
}

const char *conf_transport_name(enum conf_transport t)
{
	return t == CONF_TRANSPORT_TCP ? "tcp" : "udp";
}

static bool conf_is_digit(char c) { return c >= '0' && c <= '9'; }
static bool conf_is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Decimal digits only (no sign, no spaces: "-5" and " 5" are mistakes, not
 * numbers); false when empty or above max. */
static bool conf_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (!conf_is_digit(*s))
			return false;
		if (v > (max - (unsigned long)(*s - '0')) / 10)
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return true;
}

static bool conf_all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!conf_is_digit(*s))
			return false;
	return true;
}

/*
 * Session, device and bridge names: [A-Za-z0-9_.-], 1..15 characters
 * (IFNAMSIZ - 1), not "." or "..".  The charset keeps them safe to
 * substitute into hook commands (%h, %d) unquoted.  A device may hold
 * one "%d", which the kernel replaces by the first free number.
 */
static bool conf_name_valid(const char *s, bool allow_pattern)
{
	size_t len = strlen(s);
	bool seen_pattern = false;

	if (len == 0 || len > CONF_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (const char *q = s; *q; q++) {
		if (conf_is_alpha(*q) || conf_is_digit(*q) || *q == '_' || *q == '.' || *q == '-')
			continue;
		if (allow_pattern && !seen_pattern && q[0] == '%' && q[1] == 'd') {
			seen_pattern = true;
			q++;
			continue;
		}
		return false;
	}
	return true;
}

/* RFC 1123 §2.1 host name: labels of 1-63 letters, digits and '-', not
 * starting or ending with '-', 253 characters at most, one optional
 * trailing dot.  The last label may not be all digits: "1.2.3" would be
 * read by getaddrinfo as the IPv4 address 1.2.0.3. */
static bool conf_hostname_valid(const char *s)
{
	size_t len = strlen(s);
	const char *label, *last_label;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > CONF_HOSTNAME_MAX)
		return false;
	label = last_label = s;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			size_t llen = (size_t)(s + i - label);
			if (llen == 0 || llen > 63 || label[0] == '-' || label[llen - 1] == '-')
				return false;
			last_label = label;
			label = s + i + 1;
			continue;
		}
		if (!conf_is_alpha(s[i]) && !conf_is_digit(s[i]) && s[i] != '-')
			return false;
	}
	for (const char *q = last_label; q < s + len && *q != '.'; q++)
		if (!conf_is_digit(*q))
			return true;
	return false;
}

static bool conf_parse_port(const char *port, const char *whole, uint16_t *out, char *why,
			    size_t whylen)
{
	unsigned long v;

	if (!conf_all_digits(port)) {
		snprintf(why, whylen, "bad port '%s' in '%s': expected 1-65535", port, whole);
		return false;
	}
	if (!conf_parse_uint(port, 65535, &v) || v == 0) {
		snprintf(why, whylen, "port %s out of range in '%s': expected 1-65535", port, whole);
		return false;
	}
	*out = (uint16_t)v;
	return true;
}

static void conf_endpoint_set_addr(struct conf_endpoint *ep, int family, const void *addr)
{
	memset(&ep->addr, 0, sizeof(ep->addr));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ep->addr;
		in->sin_family = AF_INET;
		in->sin_port = htons(ep->port);
		memcpy(&in->sin_addr, addr, sizeof(in->sin_addr));
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ep->addr;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(ep->port);
		memcpy(&in6->sin6_addr, addr, sizeof(in6->sin6_addr));
	}
	ep->is_literal = true;
}

bool conf_parse_endpoint(struct conf_endpoint *ep, const char *s, char *why, size_t whylen)
{
	char host[CONF_HOST_MAX + 1];
	const char *host_start, *host_end, *port = NULL;
	unsigned char addr[sizeof(struct in6_addr)];
	size_t host_len;

	memset(ep, 0, sizeof(*ep));
	if (s[0] == '[') {
		host_start = s + 1;
		host_end = strchr(host_start, ']');
		if (!host_end) {
			snprintf(why, whylen, "bad endpoint '%s': expected ']' after the IPv6 address", s);
			return false;
		}
		if (host_end[1] == ':') {
			port = host_end + 2;
		} else if (host_end[1] != '\0') {
			snprintf(why, whylen, "bad endpoint '%s': expected ':PORT' after ']'", s);
			return false;
		}
	} else {
		const char *colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':')) {
			/* Without brackets "2001:db8::1:5555" could be an address
			 * with a port or an address alone; refuse to guess. */
			snprintf(why, whylen,
				 "bad endpoint '%s': write an IPv6 address in brackets, as [2001:db8::1]:%d",
				 s, CONF_DEFAULT_PORT);
			return false;
		}
		host_start = s;
		host_end = colon ? colon : s + strlen(s);
		if (colon)
			port = colon + 1;
	}

	host_len = (size_t)(host_end - host_start);
	if (host_len > CONF_HOST_MAX)
		host_len = CONF_HOST_MAX; /* too long for any valid host: refused below */
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';

	ep->port = CONF_DEFAULT_PORT;
	if (port && !conf_parse_port(port, s, &ep->port, why, whylen))
		return false;

	if (s[0] == '[') {
		if (inet_pton(AF_INET6, host, addr) != 1) {
			snprintf(why, whylen, "bad IPv6 address '%s' in '%s': expected [IPv6]:PORT",
				 host, s);
			return false;
		}
		conf_endpoint_set_addr(ep, AF_INET6, addr);
	} else if (inet_pton(AF_INET, host, addr) == 1) {
		conf_endpoint_set_addr(ep, AF_INET, addr);
	} else if (!conf_hostname_valid(host) || (size_t)(host_end - host_start) != host_len) {
		snprintf(why, whylen,
			 "bad host '%s' in '%s': expected an IPv4 address, [IPv6] address or host name",
			 host, s);
		return false;
	}
	memcpy(ep->host, host, host_len + 1);
	return true;
}

/* "host:port" as conf_print and messages show an endpoint. */
static void conf_endpoint_str(const struct conf_endpoint *ep, char *buf, size_t len)
{
	if (strchr(ep->host, ':'))
		snprintf(buf, len, "[%s]:%u", ep->host, ep->port);
	else
		snprintf(buf, len, "%s:%u", ep->host, ep->port);
}

static bool conf_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n';
}

/* inih's find_chars_or_comment(): the first of `chars`, or an inline
 * comment (';' after whitespace), or the end. */
static const char *conf_find_chars_or_comment(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s && !(chars && strchr(chars, *s)) && !(was_space && *s == ';')) {
		was_space = conf_is_space(*s);
		s++;
	}
	return s;
}

/* Hook %-sequences (see hook.h); checked here so that a typo is a config
 * error rather than a failed hook at 3 a.m. */
static bool conf_hook_line_valid(const char *s, char *bad)
{
	for (; *s; s++) {
		if (*s != '%')
			continue;
		if (s[1] == '\0' || !strchr("d%hapAPm", s[1])) {
			bad[0] = '%';
			bad[1] = s[1];
			bad[2] = '\0';
			return false;
		}
		s++;
	}
	return true;
}

/* ------------------------------------------------------------ sessions */

static void conf_session_init(struct conf_session *s)
{
	memset(s, 0, sizeof(*s));
	s->transport = CONF_TRANSPORT_UDP;
	s->type = CONF_DEV_TUN;
	s->hook_timeout = CONF_HOOK_TIMEOUT_DEFAULT;
}

static char **conf_hook_slot(struct conf_session *s, enum conf_key k)
{
	switch (k) {
	case CONF_KEY_UP: return &s->up;
	case CONF_KEY_DOWN: return &s->down;
	case CONF_KEY_CONNECT: return &s->connect;
	case CONF_KEY_DISCONNECT: return &s->disconnect;
	default: return NULL;
	}
}

static void conf_session_wipe(struct conf_session *s)
{
	free(s->up);
	free(s->down);
	free(s->connect);
	free(s->disconnect);
	sodium_memzero(s, sizeof(*s));
}

static void conf_parsed_free(struct conf_parsed *ps)
{
	conf_session_wipe(&ps->s);
	free(ps->section);
	ps->section = NULL;
}

/* ---------------------------------------------------------- key setters */

/* Join the config directory and a relative key path, so that
 * "private_key = ./private.key" means the file next to the config. */
static char *conf_key_path(struct conf_parser *p, const char *value)
{
	size_t len;
	char *out;

	if (value[0] == '/' || !p->dir)
		return strdup(value);
	len = strlen(p->dir) + 1 + strlen(value) + 1;
	out = malloc(len);
	if (out)
		snprintf(out, len, "%s%s%s", p->dir, strcmp(p->dir, "/") == 0 ? "" : "/", value);
	return out;
}

/*
 * Load a key for `key` (private_key, public_key, preshared_key).  Secret
 * values given inline are never echoed: the message says what was wrong
 * without copying a near-valid secret into a terminal or a log.
 */
static bool conf_set_key(struct conf_parser *p, enum conf_key key, uint8_t out[KEY_LEN],
			 const char *value)
{
	static const char *const label[] = {
		[CONF_KEY_PRIVATE_KEY] = "private key",
		[CONF_KEY_PUBLIC_KEY] = "public key",
		[CONF_KEY_PRESHARED_KEY] = "preshared key",
	};
	const char *name = conf_keys[key].name;
	bool secret = key != CONF_KEY_PUBLIC_KEY;
	char why[CONF_WHY_MAX];
	bool readable = false;
	char *path;
	int ret;

	if (!key_value_is_path(value)) {
		if (key_load(out, value, NULL, why, sizeof(why)) != 0) {
			if (secret)
				conf_error(p, p->lineno, "bad %s (value not shown): %s", name, why);
			else
				conf_error(p, p->lineno, "bad %s '%s': %s", name, value, why);
			return false;
		}
		if (secret && p->others_can_read)
			conf_warn(p, p->lineno,
				  "%s is inline and %s is readable by group or others; fix with: chmod 600 %s",
				  name, p->name, p->name);
		return true;
	}

	path = conf_key_path(p, value);
	if (!path) {
		conf_error(p, p->lineno, "out of memory");
		return false;
	}
	ret = key_load(out, path, &readable, why, sizeof(why));
	if (ret != 0)
		conf_error(p, p->lineno, "%s file %s: %s", label[key], path, why);
	else if (secret && readable)
		conf_warn(p, p->lineno,
			  "key file %s is readable by group or others; fix with: chmod 600 %s",
			  path, path);
	free(path);
	return ret == 0;
}

static void conf_set_listen(struct conf_parser *p, const char *value)
{
	struct conf_global *g = &p->c->global;
	char why[CONF_WHY_MAX], item[CONF_HOST_MAX + 16];
	const char *s = value;

	g->nlisten = 0;
	if (*value == '\0')
		return; /* explicitly none: dial out only */
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		struct sockaddr_storage addrs[2];
		unsigned naddrs = 0;

		while (len > 0 && (*s == ' ' || *s == '\t'))
			s++, len--;
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len >= sizeof(item))
			len = sizeof(item) - 1;
		memcpy(item, s, len);
		item[len] = '\0';

		if (item[0] == '\0') {
			conf_error(p, p->lineno,
				   "bad listen address '' in '%s': expected IPv4:PORT, [IPv6]:PORT or a bare PORT",
				   value);
			return;
		} else if (conf_all_digits(item)) {
			/* A bare port: every address of both families. */
			struct sockaddr_in *in = (struct sockaddr_in *)(void *)&addrs[0];
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&addrs[1];
			uint16_t port;

			if (!conf_parse_port(item, item, &port, why, sizeof(why))) {
				conf_error(p, p->lineno, "%s", why);
				return;
			}
			memset(addrs, 0, sizeof(addrs));
			in->sin_family = AF_INET;
			in->sin_port = htons(port);
			in->sin_addr.s_addr = htonl(INADDR_ANY);
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons(port);
			in6->sin6_addr = in6addr_any;
			naddrs = 2;
		} else {
			struct conf_endpoint ep;

			if (!conf_parse_endpoint(&ep, item, why, sizeof(why))) {
				conf_error(p, p->lineno, "%s", why);
				return;
			}
			if (!ep.is_literal) {
				conf_error(p, p->lineno,
					   "bad listen address '%s': expected IPv4:PORT, [IPv6]:PORT or a bare PORT (an address, not a host name)",
					   item);
				return;
			}
			addrs[0] = ep.addr;
			naddrs = 1;
		}

		for (unsigned i = 0; i < naddrs; i++) {
			const struct sockaddr *sa = (const struct sockaddr *)&addrs[i];
			char shown[UTIL_ADDRSTRLEN];

			for (unsigned j = 0; j < g->nlisten; j++) {
				if (util_sockaddr_equal(sa, (const struct sockaddr *)&g->listen[j])) {
					conf_error(p, p->lineno, "duplicate listen address %s in '%s'",
						   util_sockaddr_str(sa, shown, sizeof(shown)), value);
					return;
				}
			}
			if (g->nlisten == CONF_MAX_LISTEN) {
				conf_error(p, p->lineno, "too many listen addresses in '%s': at most %d",
					   value, CONF_MAX_LISTEN);
				return;
			}
			g->listen[g->nlisten++] = addrs[i];
		}
		if (!comma)
			break;
		s = comma + 1;
	}
}

/* User and group names as useradd(8) takes them; resolved by the daemon. */
static bool conf_set_account(struct conf_parser *p, const char *key, char *out, size_t outlen,
			     const char *value)
{
	size_t len = strlen(value);
	bool ok = len > 0 && len < outlen && value[0] != '-';

	for (size_t i = 0; ok && i < len; i++) {
		char ch = value[i];
		ok = conf_is_alpha(ch) || conf_is_digit(ch) || ch == '_' || ch == '.' || ch == '-' ||
		     (ch == '$' && i == len - 1);
	}
	if (!ok) {
		conf_error(p, p->lineno,
			   "bad %s '%s': expected a name of 1-%zu characters of A-Z a-z 0-9 _ . -",
			   key, value, outlen - 1);
		return false;
	}
	memcpy(out, value, len + 1);
	return true;
}

static void conf_set_global(struct conf_parser *p, enum conf_key k, const char *value)
{
	struct conf_global *g = &p->c->global;

	switch (k) {
	case CONF_KEY_PRIVATE_KEY:
		g->has_private_key = false;
		if (!conf_set_key(p, k, g->private_key, value))
			return;
		if (key_public_from_private(g->public_key, g->private_key) != 0) {
			conf_error(p, p->lineno, "bad private_key (value not shown): no public key can be derived from it");
			sodium_memzero(g->private_key, KEY_LEN);
			return;
		}
		g->has_private_key = true;
		break;
	case CONF_KEY_LISTEN:
		conf_set_listen(p, value);
		break;
	case CONF_KEY_USER:
		conf_set_account(p, "user", g->user, sizeof(g->user), value);
		break;
	case CONF_KEY_GROUP:
		conf_set_account(p, "group", g->group, sizeof(g->group), value);
		break;
	case CONF_KEY_LOG:
		if (strcmp(value, "stderr") == 0)
			g->log_sink = LOG_SINK_STDERR;
		else if (strcmp(value, "syslog") == 0)
			g->log_sink = LOG_SINK_SYSLOG;
		else
			conf_error(p, p->lineno, "bad log '%s': expected stderr or syslog", value);
		break;
	case CONF_KEY_LOG_LEVEL:
		if (!log_level_parse(value, &g->log_level))
			conf_error(p, p->lineno,
				   "bad log_level '%s': expected error, warn, info or debug", value);
		break;
	case CONF_KEY_CONTROL:
		if (value[0] != '/' || strlen(value) >= sizeof(g->control))
			conf_error(p, p->lineno,
				   "bad control '%s': expected an absolute path of at most %zu characters",
				   value, sizeof(g->control) - 1);
		else
			memcpy(g->control, value, strlen(value) + 1);
		break;
	default:
		break;
	}
}

static bool conf_set_hook(struct conf_parser *p, struct conf_session *s, enum conf_key k,
			  const char *value, bool append)
{
	char **slot = conf_hook_slot(s, k);
	size_t old = (append && *slot) ? strlen(*slot) : 0;
	size_t add = strlen(value);
	char bad[3], *grown;

	if (!conf_hook_line_valid(value, bad))
		conf_error(p, p->lineno,
			   "unknown substitution '%s' in %s hook: expected one of %%d %%%% %%h %%a %%p %%A %%P %%m",
			   bad, conf_keys[k].name);
	if (!append) {
		free(*slot);
		*slot = NULL;
	}
	/* "up =" followed by indented lines starts the hook on its second
	 * line: no leading empty command. */
	grown = realloc(*slot, old + (old ? 1 : 0) + add + 1);
	if (!grown) {
		conf_error(p, p->lineno, "out of memory");
		return false;
	}
	if (old)
		grown[old++] = '\n';
	memcpy(grown + old, value, add + 1);
	*slot = grown;
	return true;
}

static void conf_set_session(struct conf_parser *p, struct conf_parsed *ps, enum conf_key k,
			     const char *value)
{
	struct conf_session *s = &ps->s;
	char why[CONF_WHY_MAX];
	unsigned long v;

	switch (k) {
	case CONF_KEY_PUBLIC_KEY:
		s->has_public_key = conf_set_key(p, k, s->public_key, value);
		break;
	case CONF_KEY_PRESHARED_KEY:
		/* Empty: none (lets a session drop a psk from [defaults]). */
		s->has_preshared_key = false;
		sodium_memzero(s->preshared_key, KEY_LEN);
		if (*value != '\0')
			s->has_preshared_key = conf_set_key(p, k, s->preshared_key, value);
		break;
	case CONF_KEY_ENDPOINT:
		s->has_endpoint = false;
		if (*value == '\0')
			break; /* empty: wait for the peer, even if [defaults] dials */
		if (!conf_parse_endpoint(&s->endpoint, value, why, sizeof(why)))
			conf_error(p, p->lineno, "%s", why);
		else
			s->has_endpoint = true;
		break;
	case CONF_KEY_TRANSPORT:
		if (strcmp(value, "udp") == 0)
			s->transport = CONF_TRANSPORT_UDP;
		else if (strcmp(value, "tcp") == 0)
			s->transport = CONF_TRANSPORT_TCP;
		else
			conf_error(p, p->lineno, "bad transport '%s': expected udp or tcp", value);
		break;
	case CONF_KEY_TYPE:
		if (strcmp(value, "tun") == 0)
			s->type = CONF_DEV_TUN;
		else if (strcmp(value, "tap") == 0)
			s->type = CONF_DEV_TAP;
		else
			conf_error(p, p->lineno, "bad type '%s': expected tun or tap", value);
		break;
	case CONF_KEY_DEVICE:
		s->device[0] = '\0';
		if (*value == '\0')
			break; /* the kernel picks a name */
		if (!conf_name_valid(value, true))
			conf_error(p, p->lineno,
				   "bad device '%s': expected 1-%d characters of A-Z a-z 0-9 _ . - (at most one %%d)",
				   value, CONF_NAME_MAX);
		else
			memcpy(s->device, value, strlen(value) + 1);
		break;
	case CONF_KEY_MTU:
		if (strcmp(value, "auto") == 0) {
			s->mtu = 0;
		} else if (!conf_all_digits(value)) {
			conf_error(p, p->lineno, "bad mtu '%s': expected %d-%d or auto", value,
				   CONF_MTU_MIN, CONF_MTU_MAX);
		} else if (!conf_parse_uint(value, CONF_MTU_MAX, &v) || v < CONF_MTU_MIN) {
			conf_error(p, p->lineno, "mtu %s out of range: expected %d-%d", value,
				   CONF_MTU_MIN, CONF_MTU_MAX);
		} else {
			s->mtu = (unsigned)v;
			if (v < CONF_MTU_IPV6_MIN)
				conf_warn(p, p->lineno, "mtu %lu is below %d: IPv6 needs at least %d",
					  v, CONF_MTU_IPV6_MIN, CONF_MTU_IPV6_MIN);
		}
		break;
	case CONF_KEY_BRIDGE:
		s->bridge[0] = '\0';
		if (*value == '\0')
			break;
		if (!conf_name_valid(value, false))
			conf_error(p, p->lineno,
				   "bad bridge '%s': expected 1-%d characters of A-Z a-z 0-9 _ . -",
				   value, CONF_NAME_MAX);
		else
			memcpy(s->bridge, value, strlen(value) + 1);
		break;
	case CONF_KEY_UP:
	case CONF_KEY_DOWN:
	case CONF_KEY_CONNECT:
	case CONF_KEY_DISCONNECT:
		conf_set_hook(p, s, k, value, false);
		break;
	case CONF_KEY_KEEPALIVE:
		if (!conf_all_digits(value))
			conf_error(p, p->lineno,
				   "bad keepalive '%s': expected seconds 0-%d (0 = off)", value,
				   CONF_KEEPALIVE_MAX);
		else if (!conf_parse_uint(value, CONF_KEEPALIVE_MAX, &v))
			conf_error(p, p->lineno,
				   "keepalive %s out of range: expected 0-%d seconds (0 = off)", value,
				   CONF_KEEPALIVE_MAX);
		else
			s->keepalive = (unsigned)v;
		break;
	case CONF_KEY_SPEED: {
		char in[32];
		const char *colon = strchr(value, ':');
		size_t inlen = colon ? (size_t)(colon - value) : strlen(value);
		unsigned long vin, vout;

		if (inlen >= sizeof(in))
			inlen = sizeof(in) - 1;
		memcpy(in, value, inlen);
		in[inlen] = '\0';
		if (!conf_parse_uint(in, UINT32_MAX, &vin) ||
		    !conf_parse_uint(colon ? colon + 1 : in, UINT32_MAX, &vout)) {
			conf_error(p, p->lineno,
				   "bad speed '%s': expected KBITS or IN:OUT in kbit/s (0 = unlimited)",
				   value);
			break;
		}
		s->speed_in_kbit = (unsigned)vin;
		s->speed_out_kbit = (unsigned)vout;
		break;
	}
	case CONF_KEY_HOOK_TIMEOUT:
		if (!conf_all_digits(value))
			conf_error(p, p->lineno, "bad hook_timeout '%s': expected seconds 1-%d",
				   value, CONF_HOOK_TIMEOUT_MAX);
		else if (!conf_parse_uint(value, CONF_HOOK_TIMEOUT_MAX, &v) || v == 0)
			conf_error(p, p->lineno, "hook_timeout %s out of range: expected 1-%d seconds",
				   value, CONF_HOOK_TIMEOUT_MAX);
		else
			s->hook_timeout = (unsigned)v;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------- handler */

static bool conf_key_find(const char *name, enum conf_key *out)
{
	for (unsigned i = 0; i < CONF_KEY_COUNT; i++) {
		if (strcmp(conf_keys[i].name, name) == 0) {
			*out = (enum conf_key)i;
			return true;
		}
	}
	return false;
}

static struct conf_parsed *conf_current(struct conf_parser *p)
{
	if (p->kind == CONF_SECTION_DEFAULTS)
		return &p->defaults;
	if (p->kind == CONF_SECTION_SESSION)
		return &p->sessions[p->cur];
	return NULL;
}

static void conf_continue(struct conf_parser *p, const char *value)
{
	enum conf_key k = p->last_key;
	struct conf_parsed *ps = conf_current(p);
	char line[CONF_WHY_MAX];
	const char *end;
	size_t len;

	if (!p->last_key_valid)
		return; /* the key's own line was refused and reported */
	if (!conf_keys[k].hook) {
		/* Most often a new key indented by mistake, which inih would
		 * otherwise silently glue to the previous value. */
		conf_error(p, p->lineno,
			   "duplicate key '%s': an indented line continues it, and only up, down, connect and disconnect may span several lines (remove the indentation to start a new key)",
			   conf_keys[k].name);
		p->last_key_valid = false;
		return;
	}
	/* inih strips inline comments from a key's first line but not from
	 * its continuation lines; strip them here too, or "cmd ; note" would
	 * run "note" as a command. */
	end = conf_find_chars_or_comment(value, NULL);
	while (end > value && conf_is_space(end[-1]))
		end--;
	len = (size_t)(end - value);
	if (len >= sizeof(line))
		len = sizeof(line) - 1; /* cannot happen: lines are shorter */
	memcpy(line, value, len);
	line[len] = '\0';
	if (ps) /* hooks are session keys: always true, said for the reader */
		conf_set_hook(p, &ps->s, k, line, true);
}

static int conf_handle(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parser *p = user;
	char where[CONF_NAME_MAX + 64];
	struct conf_parsed *ps;
	enum conf_key k;
	int *line_of;

	(void)section; /* ours is p->kind: inih's copy is truncated and untrimmed */
	if (p->continuation) {
		conf_continue(p, value);
		return 1;
	}
	p->last_key_valid = false;
	if (p->kind == CONF_SECTION_IGNORE)
		return 1;
	if (p->kind == CONF_SECTION_NONE) {
		conf_error(p, p->lineno,
			   "key '%s' outside any section: expected [global], [defaults] or a session section first",
			   name);
		return 1;
	}
	if (!conf_key_find(name, &k)) {
		conf_error(p, p->lineno, "unknown key '%s' in %s", name,
			   conf_where(p, where, sizeof(where)));
		return 1;
	}
	if (conf_keys[k].global && p->kind != CONF_SECTION_GLOBAL) {
		conf_error(p, p->lineno, "key '%s' belongs in [global], not %s", name,
			   conf_where(p, where, sizeof(where)));
		return 1;
	}
	if (!conf_keys[k].global && p->kind == CONF_SECTION_GLOBAL) {
		conf_error(p, p->lineno, "key '%s' belongs in a session section, not [global]", name);
		return 1;
	}

	ps = conf_current(p);
	line_of = ps ? &ps->line_of[k] : &p->global_line_of[k];
	if (*line_of != 0) {
		conf_error(p, p->lineno, "duplicate key '%s' in %s: first set at line %d", name,
			   conf_where(p, where, sizeof(where)), *line_of);
		return 1;
	}
	*line_of = p->lineno;
	p->last_key = k;
	p->last_key_valid = true;
	if (ps)
		conf_set_session(p, ps, k, value);
	else
		conf_set_global(p, k, value);
	return 1;
}

/* -------------------------------------------------------------- reader */

static void conf_begin_section(struct conf_parser *p, const char *name)
{
	struct conf_parsed *ps;

	if (strcmp(name, "global") == 0 || strcmp(name, "defaults") == 0) {
		bool global = name[0] == 'g';
		int *seen = global ? &p->global_line : &p->defaults_line;

		/* A repeated [global] or [defaults] continues the first; keys
		 * set twice are caught as duplicates. */
		if (*seen)
			conf_error(p, p->lineno, "duplicate section [%s]: first at line %d", name,
				   *seen);
		else
			*seen = p->lineno;
		p->kind = global ? CONF_SECTION_GLOBAL : CONF_SECTION_DEFAULTS;
		return;
	}

	for (unsigned i = 0; i < p->nsessions; i++) {
		if (strcmp(p->sessions[i].section, name) == 0) {
			conf_error(p, p->lineno, "duplicate section [%s]: first at line %d", name,
				   p->sessions[i].s.line);
			p->kind = CONF_SECTION_SESSION;
			p->cur = i;
			return;
		}
	}
	if (!conf_name_valid(name, false))
		conf_error(p, p->lineno,
			   "bad session name '%s': expected 1-%d characters of A-Z a-z 0-9 _ . -",
			   name, CONF_NAME_MAX);
	if (p->nsessions == p->cap) {
		unsigned cap = p->cap ? p->cap * 2 : 8;
		struct conf_parsed *grown = realloc(p->sessions, cap * sizeof(*grown));
		if (!grown)
			goto oom;
		p->sessions = grown;
		p->cap = cap;
	}
	ps = &p->sessions[p->nsessions];
	memset(ps, 0, sizeof(*ps));
	conf_session_init(&ps->s);
	ps->section = strdup(name);
	if (!ps->section)
		goto oom;
	/* Too long a name was reported above; keep a truncated copy. */
	memcpy(ps->s.name, name, strnlen(name, CONF_NAME_MAX));
	ps->s.line = p->lineno;
	p->cur = p->nsessions++;
	p->kind = CONF_SECTION_SESSION;
	return;

oom:
	conf_error(p, p->lineno, "out of memory");
	p->kind = CONF_SECTION_IGNORE;
}

/*
 * Classify one raw line exactly as inih will, so that we know what the
 * handler calls for it will mean.  Returns false (after reporting) for a
 * line inih would reject; such a line is handed to inih empty.
 */
static bool conf_classify_line(struct conf_parser *p, const char *line)
{
	const char *start = line, *end;

	if (p->lineno == 1 && (unsigned char)start[0] == 0xEF &&
	    (unsigned char)start[1] == 0xBB && (unsigned char)start[2] == 0xBF)
		start += 3; /* inih skips a UTF-8 BOM */
	while (conf_is_space(*start))
		start++;

	if (*start == '\0' || *start == ';' || *start == '#')
		return true;
	if (p->has_prev_key && start > line) {
		p->continuation = true;
		return true;
	}
	if (*start == '[') {
		char name[256];
		const char *a, *b;
		size_t len;

		end = conf_find_chars_or_comment(start + 1, "]");
		if (*end != ']') {
			conf_error(p, p->lineno, "expected ']' to close the section name");
			p->kind = CONF_SECTION_IGNORE;
			p->last_key_valid = false;
			return false;
		}
		for (b = end + 1; conf_is_space(*b); b++)
			;
		if (*b != '\0' && *b != ';' && *b != '#') {
			conf_error(p, p->lineno, "unexpected text '%s' after the section name", b);
			p->kind = CONF_SECTION_IGNORE;
			p->last_key_valid = false;
			return false;
		}
		for (a = start + 1; a < end && conf_is_space(*a); a++)
			;
		for (b = end; b > a && conf_is_space(b[-1]); b--)
			;
		len = (size_t)(b - a);
		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		memcpy(name, a, len);
		name[len] = '\0';
		p->has_prev_key = false;
		conf_begin_section(p, name);
		return true;
	}
	end = conf_find_chars_or_comment(start, "=:");
	if (*end != '=' && *end != ':') {
		conf_error(p, p->lineno, "expected 'key = value', '[section]' or a comment");
		return false;
	}
	if (end == start) {
		conf_error(p, p->lineno, "missing key name before '%c'", *end);
		return false;
	}
	p->has_prev_key = true;
	return true;
}

/* Next raw line into p->line without its line terminator; -1 at the end. */
static long conf_next_line(struct conf_parser *p)
{
	size_t len;

	if (p->file) {
		ssize_t n = getline(&p->line, &p->line_cap, p->file);
		if (n < 0)
			return -1;
		len = (size_t)n;
	} else {
		const char *s = p->text + p->text_pos;
		const char *nl = strchr(s, '\n');

		if (*s == '\0')
			return -1;
		len = nl ? (size_t)(nl - s) + 1 : strlen(s);
		if (len + 1 > p->line_cap) {
			char *grown = realloc(p->line, len + 1);
			if (!grown)
				return -1;
			p->line = grown;
			p->line_cap = len + 1;
		}
		memcpy(p->line, s, len);
		p->line[len] = '\0';
		p->text_pos += len;
	}
	if (len > 0 && p->line[len - 1] == '\n')
		p->line[--len] = '\0';
	if (len > 0 && p->line[len - 1] == '\r')
		p->line[--len] = '\0';
	return (long)len;
}

/* inih's reader: fgets-like, one raw line per call, so inih's line count
 * and p->lineno agree. */
static char *conf_read(char *str, int num, void *stream)
{
	struct conf_parser *p = stream;
	long len = conf_next_line(p);

	if (len < 0)
		return NULL;
	p->lineno++;
	p->continuation = false;
	str[0] = '\0';
	if (len > num - 1) {
		conf_error(p, p->lineno, "line too long (at most %d characters)", num - 1);
		return str;
	}
	if (conf_classify_line(p, p->line))
		memcpy(str, p->line, (size_t)len + 1);
	return str;
}

/* ------------------------------------------------------------ finishing */

static bool conf_inherit(struct conf_session *dst, const struct conf_session *src,
			 enum conf_key k)
{
	char **from, **to;

	switch (k) {
	case CONF_KEY_PUBLIC_KEY:
		memcpy(dst->public_key, src->public_key, KEY_LEN);
		dst->has_public_key = src->has_public_key;
		break;
	case CONF_KEY_PRESHARED_KEY:
		memcpy(dst->preshared_key, src->preshared_key, KEY_LEN);
		dst->has_preshared_key = src->has_preshared_key;
		break;
	case CONF_KEY_ENDPOINT:
		dst->endpoint = src->endpoint;
		dst->has_endpoint = src->has_endpoint;
		break;
	case CONF_KEY_TRANSPORT: dst->transport = src->transport; break;
	case CONF_KEY_TYPE: dst->type = src->type; break;
	case CONF_KEY_DEVICE: memcpy(dst->device, src->device, sizeof(dst->device)); break;
	case CONF_KEY_MTU: dst->mtu = src->mtu; break;
	case CONF_KEY_BRIDGE: memcpy(dst->bridge, src->bridge, sizeof(dst->bridge)); break;
	case CONF_KEY_UP:
	case CONF_KEY_DOWN:
	case CONF_KEY_CONNECT:
	case CONF_KEY_DISCONNECT:
		from = conf_hook_slot((struct conf_session *)src, k);
		to = conf_hook_slot(dst, k);
		free(*to);
		*to = *from ? strdup(*from) : NULL;
		if (*from && !*to)
			return false;
		break;
	case CONF_KEY_KEEPALIVE: dst->keepalive = src->keepalive; break;
	case CONF_KEY_SPEED:
		dst->speed_in_kbit = src->speed_in_kbit;
		dst->speed_out_kbit = src->speed_out_kbit;
		break;
	case CONF_KEY_HOOK_TIMEOUT: dst->hook_timeout = src->hook_timeout; break;
	default: break;
	}
	return true;
}

static void conf_check_session(struct conf_parser *p, struct conf_parsed *ps)
{
	struct conf_session *s = &ps->s;
	const struct conf_global *g = &p->c->global;

	for (unsigned k = 0; k < CONF_KEY_COUNT; k++) {
		if (conf_keys[k].global || ps->line_of[k] || !p->defaults.line_of[k])
			continue;
		if (!conf_inherit(s, &p->defaults.s, (enum conf_key)k))
			conf_error(p, s->line, "out of memory");
		ps->line_of[k] = p->defaults.line_of[k];
	}
	/* An empty hook ("up =") only cancels one inherited from [defaults]. */
	for (unsigned k = CONF_KEY_UP; k <= CONF_KEY_DISCONNECT; k++) {
		char **slot = conf_hook_slot(s, (enum conf_key)k);
		if (*slot && **slot == '\0') {
			free(*slot);
			*slot = NULL;
		}
	}

	if (!ps->line_of[CONF_KEY_PUBLIC_KEY])
		conf_error(p, s->line, "session [%s] has no public_key", ps->section);
	else if (s->has_public_key && g->has_private_key &&
		 sodium_memcmp(s->public_key, g->public_key, KEY_LEN) == 0)
		conf_error(p, ps->line_of[CONF_KEY_PUBLIC_KEY],
			   "public_key of session [%s] is our own public key (from private_key): expected the peer's key",
			   ps->section);
	if (s->bridge[0] && s->type != CONF_DEV_TAP)
		conf_error(p, ps->line_of[CONF_KEY_BRIDGE],
			   "'bridge' is only valid for type = tap (session [%s] is %s)", ps->section,
			   conf_devtype_name(s->type));
	if (!s->has_endpoint && g->nlisten == 0)
		conf_warn(p, s->line,
			  "session [%s] has no endpoint and [global] has no listen: neither side can start the connection",
			  ps->section);
}

static void conf_check_duplicates(struct conf_parser *p)
{
	for (unsigned j = 1; j < p->nsessions; j++) {
		struct conf_parsed *b = &p->sessions[j];

		for (unsigned i = 0; i < j; i++) {
			struct conf_parsed *a = &p->sessions[i];
			if (a->s.has_public_key && b->s.has_public_key &&
			    sodium_memcmp(a->s.public_key, b->s.public_key, KEY_LEN) == 0) {
				conf_error(p, b->line_of[CONF_KEY_PUBLIC_KEY],
					   "duplicate public_key: already used by session [%s] (line %d)",
					   a->section, a->line_of[CONF_KEY_PUBLIC_KEY]);
				break;
			}
		}
		/* Patterns ("tap%d") get a fresh number per device. */
		if (!b->s.device[0] || strchr(b->s.device, '%'))
			continue;
		for (unsigned i = 0; i < j; i++) {
			struct conf_parsed *a = &p->sessions[i];
			if (strcmp(a->s.device, b->s.device) == 0) {
				conf_error(p, b->line_of[CONF_KEY_DEVICE],
					   "duplicate device '%s': already used by session [%s]",
					   b->s.device, a->section);
				break;
			}
		}
	}
}

static void conf_finish(struct conf_parser *p)
{
	struct conf *c = p->c;

	if (!p->global_line_of[CONF_KEY_PRIVATE_KEY])
		conf_error(p, 0, "missing private_key in [global]");
	for (unsigned i = 0; i < p->nsessions; i++)
		conf_check_session(p, &p->sessions[i]);
	conf_check_duplicates(p);
	if (p->nsessions == 0)
		conf_warn(p, 0, "no sessions: add one section per peer");

	if (p->nsessions == 0)
		return;
	c->sessions = calloc(p->nsessions, sizeof(*c->sessions));
	if (!c->sessions) {
		conf_error(p, 0, "out of memory");
		return;
	}
	/* Hand the sessions over; hooks move with them. */
	for (unsigned i = 0; i < p->nsessions; i++) {
		c->sessions[i] = p->sessions[i].s;
		memset(&p->sessions[i].s, 0, sizeof(p->sessions[i].s));
	}
	c->nsessions = p->nsessions;
}

/* ---------------------------------------------------------------- API */

static unsigned conf_parse(struct conf_parser *p)
{
	struct conf *c = p->c;

	memset(c, 0, sizeof(*c));
	p->buffered = true;
	c->global.log_sink = LOG_SINK_STDERR;
	c->global.log_level = LOG_LEVEL_INFO;
	snprintf(c->global.control, sizeof(c->global.control), "%s",
		 SALTUN_RUNSTATEDIR "/saltun/control.sock");
	conf_session_init(&p->defaults.s);
	c->path = strdup(p->name);
	if (!c->path) {
		conf_error(p, 0, "out of memory");
		goto out;
	}

	/* inih's own result is ignored: every problem it could report was
	 * found and reported, with its line, by conf_read(). */
	(void)ini_parse_stream(conf_read, p, conf_handle, p);
	if (p->file && ferror(p->file))
		conf_error(p, 0, "read error: %s", strerror(errno));
	conf_finish(p);

out:
	for (unsigned i = 0; i < p->nsessions; i++)
		conf_parsed_free(&p->sessions[i]);
	free(p->sessions);
	conf_parsed_free(&p->defaults);
	if (p->line)
		sodium_memzero(p->line, p->line_cap); /* it held inline keys */
	free(p->line);
	free(p->dir);
	conf_flush_messages(p);
	if (p->errors)
		conf_free(c);
	return p->errors;
}

unsigned conf_load(struct conf *out, const char *path, FILE *diag)
{
	struct conf_parser p = { .c = out, .name = path, .diag = diag };
	const char *slash = strrchr(path, '/');
	struct stat st;
	unsigned errors;

	memset(out, 0, sizeof(*out));
	p.file = fopen(path, "re");
	if (!p.file) {
		conf_error(&p, 0, "cannot open: %s", strerror(errno));
		return p.errors;
	}
	if (fstat(fileno(p.file), &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			conf_error(&p, 0, "cannot read: %s", strerror(EISDIR));
			fclose(p.file);
			return p.errors;
		}
		p.others_can_read = S_ISREG(st.st_mode) && (st.st_mode & (S_IRGRP | S_IROTH));
	}
	if (slash)
		p.dir = strndup(path, (size_t)(slash - path) + (slash == path ? 1 : 0));
	errors = conf_parse(&p);
	fclose(p.file);
	return errors;
}

unsigned conf_load_string(struct conf *out, const char *text, const char *name, FILE *diag)
{
	struct conf_parser p = { .c = out, .name = name, .diag = diag, .text = text };

	return conf_parse(&p);
}

void conf_free(struct conf *c)
{
	for (unsigned i = 0; i < c->nsessions; i++)
		conf_session_wipe(&c->sessions[i]);
	free(c->sessions);
	free(c->path);
	sodium_memzero(c, sizeof(*c));
}

static void conf_print_row(FILE *out, const char *const *cell, const size_t *width,
			   unsigned ncol)
{
	for (unsigned i = 0; i + 1 < ncol; i++)
		fprintf(out, "%-*s  ", (int)width[i], cell[i]);
	fprintf(out, "%s\n", cell[ncol - 1]);
}

void conf_print(const struct conf *c, FILE *out)
{
	static const char *const head[] = { "session", "type", "device", "endpoint",
					    "transport", "mtu", "public key" };
	enum { NCOL = 7 };
	char pub[KEY_B64_LEN + 1];
	size_t width[NCOL];

	key_to_base64(pub, c->global.public_key);
	fprintf(out, "public key  %s\n", pub);
	fputs("listen      ", out);
	if (c->global.nlisten == 0)
		fputs("none (dial out only)", out);
	for (unsigned i = 0; i < c->global.nlisten; i++) {
		char addr[UTIL_ADDRSTRLEN];
		fprintf(out, "%s%s", i ? ", " : "",
			util_sockaddr_str((const struct sockaddr *)&c->global.listen[i], addr,
					  sizeof(addr)));
	}
	fputs("\n\n", out);

	/* Two passes: widths first, so that the columns line up. */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < NCOL; i++)
			if (pass == 0)
				width[i] = strlen(head[i]);
		if (pass == 1)
			conf_print_row(out, head, width, NCOL);
		for (unsigned n = 0; n < c->nsessions; n++) {
			const struct conf_session *s = &c->sessions[n];
			char ep[CONF_HOST_MAX + 16], mtu[16];
			const char *cell[NCOL];

			if (s->has_endpoint)
				conf_endpoint_str(&s->endpoint, ep, sizeof(ep));
			else
				snprintf(ep, sizeof(ep), "waits for peer");
			if (s->mtu)
				snprintf(mtu, sizeof(mtu), "%u", s->mtu);
			else
				snprintf(mtu, sizeof(mtu), "auto");
			key_to_base64(pub, s->public_key);
			cell[0] = s->name;
			cell[1] = conf_devtype_name(s->type);
			cell[2] = s->device[0] ? s->device : "auto";
			cell[3] = ep;
			cell[4] = conf_transport_name(s->transport);
			cell[5] = mtu;
			cell[6] = pub;
			if (pass == 1) {
				conf_print_row(out, cell, width, NCOL);
				continue;
			}
			for (unsigned i = 0; i < NCOL; i++)
				if (strlen(cell[i]) > width[i])
					width[i] = strlen(cell[i]);
		}
	}
}

/* ------------------------------------------------------------ transfer */

/*
 * A loaded config crosses from the privileged process to the network one
 * (priv.c) as bytes: the same binary on both sides, so the plain structs
 * go as they are; only the strings behind pointers are written after them.
 * The reader still checks every length and every string it keeps.
 */
#define CONF_BLOB_MAGIC 0x53414c54u /* "SALT" */
#define CONF_BLOB_NONE UINT32_MAX   /* a NULL hook */

static void conf_blob_str(FILE *f, const char *s)
{
	uint32_t len = s != NULL ? (uint32_t)strlen(s) : CONF_BLOB_NONE;

	fwrite(&len, sizeof(len), 1, f);
	if (s != NULL)
		fwrite(s, 1, len, f);
}

int conf_serialize(const struct conf *c, uint8_t **out, size_t *outlen)
{
	uint32_t head[2] = { CONF_BLOB_MAGIC, c->nsessions };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return -ENOMEM;
	fwrite(head, sizeof(head), 1, f);
	conf_blob_str(f, c->path);
	fwrite(&c->global, sizeof(c->global), 1, f);
	for (unsigned i = 0; i < c->nsessions; i++) {
		struct conf_session cs = c->sessions[i];
		cs.up = cs.down = cs.connect = cs.disconnect = NULL;
		fwrite(&cs, sizeof(cs), 1, f);
		sodium_memzero(&cs, sizeof(cs));
		conf_blob_str(f, c->sessions[i].up);
		conf_blob_str(f, c->sessions[i].down);
		conf_blob_str(f, c->sessions[i].connect);
		conf_blob_str(f, c->sessions[i].disconnect);
	}
	if (ferror(f) != 0) {
		fclose(f);
		sodium_memzero(buf, len);
		free(buf);
		return -ENOMEM;
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = (uint8_t *)buf;
	*outlen = len;
	return 0;
}

struct conf_blob_reader {
	const uint8_t *p;
	size_t left;
};

static bool conf_blob_take(struct conf_blob_reader *r, void *dst, size_t n)
{
	if (n > r->left)
		return false;
	memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
	return true;
}

/* A string of the blob: NULL stays NULL (true), a failure is false. */
static bool conf_blob_take_str(struct conf_blob_reader *r, char **out)
{
	uint32_t len;

	*out = NULL;
	if (!conf_blob_take(r, &len, sizeof(len)))
		return false;
	if (len == CONF_BLOB_NONE)
		return true;
	if (len > r->left || memchr(r->p, '\0', len) != NULL || (*out = malloc(len + 1u)) == NULL)
		return false;
	memcpy(*out, r->p, len);
	(*out)[len] = '\0';
	r->p += len;
	r->left -= len;
	return true;
}

static bool conf_blob_terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

int conf_deserialize(struct conf *c, const uint8_t *blob, size_t len)
{
	struct conf_blob_reader r = { blob, len };
	uint32_t head[2];

	memset(c, 0, sizeof(*c));
	if (!conf_blob_take(&r, head, sizeof(head)) || head[0] != CONF_BLOB_MAGIC ||
	    head[1] > r.left / sizeof(struct conf_session))
		return -EINVAL;
	if (!conf_blob_take_str(&r, &c->path) || !conf_blob_take(&r, &c->global, sizeof(c->global)) ||
	    c->global.nlisten > CONF_MAX_LISTEN ||
	    !conf_blob_terminated(c->global.user, sizeof(c->global.user)) ||
	    !conf_blob_terminated(c->global.group, sizeof(c->global.group)) ||
	    !conf_blob_terminated(c->global.control, sizeof(c->global.control)))
		goto bad;
	if ((c->sessions = calloc(head[1] ? head[1] : 1, sizeof(*c->sessions))) == NULL)
		goto bad;
	for (uint32_t i = 0; i < head[1]; i++, c->nsessions++) {
		struct conf_session *cs = &c->sessions[i];
		if (!conf_blob_take(&r, cs, sizeof(*cs)))
			goto bad;
		cs->up = cs->down = cs->connect = cs->disconnect = NULL;
		if (!conf_blob_terminated(cs->name, sizeof(cs->name)) ||
		    !conf_blob_terminated(cs->device, sizeof(cs->device)) ||
		    !conf_blob_terminated(cs->bridge, sizeof(cs->bridge)) ||
		    !conf_blob_terminated(cs->endpoint.host, sizeof(cs->endpoint.host)) ||
		    !conf_blob_take_str(&r, &cs->up) || !conf_blob_take_str(&r, &cs->down) ||
		    !conf_blob_take_str(&r, &cs->connect) || !conf_blob_take_str(&r, &cs->disconnect)) {
			c->nsessions++; /* its strings are freed with the rest */
			goto bad;
		}
	}
	if (r.left != 0)
		goto bad;
	return 0;
bad:
	conf_free(c);
	return -EINVAL;
}
