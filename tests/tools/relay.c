/*
 * relay -- the fault-injecting middlebox of saltun's end-to-end tests.
 *
 * The test kernel has no netem, so this program stands in a middle network
 * namespace and does to the tunnel's packets what a bad network would:
 *
 *      ns A                       ns relay                         ns B
 *   saltun 192.0.2.1 ---veth--- 192.0.2.2:5555 [relay]
 *                               198.51.100.2:<own port> ---veth--- 198.51.100.1:5555 saltun
 *
 * A dials the relay's address.  The relay forwards from its own address and
 * a source port of its own, like a NAT, and returns B's replies to A's latest
 * source.  Each direction (a2b, b2a) runs a seeded pipeline of faults, in
 * this order (see pipeline_keys[] and README.md):
 *
 *   record -> drop -> flip -> trunc -> holdone -> dup -> delay/jitter -> send
 *
 * A TCP byte stream cannot lose or reorder bytes, so TCP honours flip,
 * delay/jitter (order kept), drop=1 (a stall: the relay stops reading), and
 * re-segments (seg=N) or coalesces (coalesce=N) the stream.
 *
 * A unix stream control socket changes pipelines at run time, replays
 * recorded packets, rebinds the outbound port and injects crafted bytes.
 *
 * The same binary carries the tiny endpoints the self-test needs (UDP and TCP
 * echo servers and senders, and a control client), so the tests need no socat
 * or netcat.  libc only, one thread, ppoll(), no globals: signals arrive
 * through a signalfd.  Every buffer and queue has a fixed bound; when one is
 * hit the packet is dropped and counted ("overflow"), never grown.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PRINTF_FMT(a, b) __attribute__((format(printf, a, b)))

enum {
	UDP_MAX = 65536,                /* a datagram never exceeds 65535 bytes */
	BURST = 64,                     /* datagrams read per socket per wake-up */
	FLUSH_BUDGET = 1024,            /* delayed packets sent per wake-up */
	QUEUE_DEFAULT = 4096,           /* delayed packets per direction */
	QUEUE_HARD_MAX = 65536,
	QUEUE_BYTES_MAX = 32 << 20,
	RECORD_MAX = 4096,              /* recorded packets per direction */
	RECORD_BYTES_MAX = 16 << 20,
	TCP_SLOTS = 32,                 /* chunks queued per TCP direction */
	TCP_CHUNK = 16384,
	TCP_OUT_MAX = 65536,            /* largest single write (coalesce cap) */
	CTL_CLIENTS = 4,
	CTL_LINE_MAX = 16384,
	REPLY_MAX = 16384,
	INJECT_MAX = 4096,
	SPEC_MAX = 1024,
	MATCH_MAX = 16,                 /* hold_match prefix bytes */
	SOCKBUF = 4 << 20,
};

#define DURATION_MAX_US 60000000.0      /* 60 s: longer is a test bug */

enum dir { DIR_A2B, DIR_B2A, DIR_COUNT };
static const char *const dir_names[DIR_COUNT] = { "a2b", "b2a" };

/* One random stream per stage, so turning one fault on or off does not
 * change the decisions of another: a drop pattern depends only on the seed,
 * the direction and the packet's index. */
enum stage { STAGE_DROP, STAGE_FLIP, STAGE_TRUNC, STAGE_DUP, STAGE_DELAY, STAGE_COUNT };

/* ------------------------------------------------------------ small tools */

static uint64_t clock_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void log_event(const char *fmt, ...) PRINTF_FMT(1, 2);
static void log_event(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("relay: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* xoshiro256** seeded through splitmix64 (Vigna): small, fast, and the same
 * sequence on every platform, which is what makes a seed reproducible. */
struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64_next(&seed);
}

static uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform in [0, 1): so probability 1.0 always fires and 0.0 never does. */
static double rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	uint64_t x = rng_next(r);

	return n ? x % n : 0;
}

/* A byte stream generated from a seed, for the TCP sender and its check. */
struct bytegen {
	struct rng rng;
	uint64_t word;
	unsigned left;
};

static void bytegen_fill(struct bytegen *g, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (g->left == 0) {
			g->word = rng_next(&g->rng);
			g->left = 8;
		}
		out[i] = (uint8_t)g->word;
		g->word >>= 8;
		g->left--;
	}
}

/* ------------------------------------------------------------- parsers */

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')       /* strtoull would accept " -1" */
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_number_start(const char *s)
{
	/* Refuses what strtod would take but a test never means: signs,
	 * spaces, "inf", "nan". */
	return (*s >= '0' && *s <= '9') || *s == '.';
}

static bool parse_probability(const char *s, double *out)
{
	char *end;
	double v;

	if (!parse_number_start(s))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0 && v <= 1.0))
		return false;
	*out = v;
	return true;
}

/* "2ms", "500us", "1.5s"; a bare number means milliseconds. */
static bool parse_duration(const char *s, uint32_t *out_us)
{
	char *end;
	double v, scale;

	if (!parse_number_start(s))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return false;
	if (strcmp(end, "us") == 0)
		scale = 1.0;
	else if (strcmp(end, "ms") == 0 || *end == '\0')
		scale = 1e3;
	else if (strcmp(end, "s") == 0)
		scale = 1e6;
	else
		return false;
	v *= scale;
	if (!(v >= 0.0 && v <= DURATION_MAX_US))
		return false;
	*out_us = (uint32_t)(v + 0.5);
	return true;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_hex(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(hex);

	if (n == 0 || n % 2 != 0 || n / 2 > cap)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return true;
}

/* ------------------------------------------------------------ addresses */

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

static struct sockaddr *addr_sa(struct addr *a)
{
	return (struct sockaddr *)&a->ss;
}

/* "192.0.2.2:5555", "[2001:db8::1]:5555", or without the port when
 * with_port is false ("198.51.100.2", "2001:db8::2"). Numeric only: the
 * tests never resolve names. */
static bool addr_parse(struct addr *out, const char *text, bool with_port)
{
	char host[INET6_ADDRSTRLEN];
	const char *port = NULL;
	size_t hl, n = strlen(text);
	uint64_t pv = 0;
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

	if (n == 0 || n > 64)
		return false;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL)
			return false;
		hl = (size_t)(close - text - 1);
		if (with_port) {
			if (close[1] != ':')
				return false;
			port = close + 2;
		} else if (close[1] != '\0') {
			return false;
		}
		text++;
	} else if (with_port) {
		const char *colon = strrchr(text, ':');

		if (colon == NULL || strchr(text, ':') != colon)
			return false;   /* IPv6 with a port needs brackets */
		hl = (size_t)(colon - text);
		port = colon + 1;
	} else {
		hl = n;
	}
	if (hl == 0 || hl >= sizeof host)
		return false;
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (port != NULL && !parse_u64(port, 65535, &pv))
		return false;
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pv);
		out->len = sizeof *sin;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pv);
		out->len = sizeof *sin6;
	} else {
		return false;
	}
	return true;
}

static uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

static const char *sockaddr_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, sockaddr_port(ss));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, sockaddr_port(ss));
	} else {
		snprintf(buf, len, "none");
	}
	return buf;
}

static bool sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family || sockaddr_port(a) != sockaddr_port(b))
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return false;
}

/* The wildcard address of a family, port 0: the kernel picks the port. */
static void addr_any(struct addr *out, int family)
{
	memset(out, 0, sizeof *out);
	out->ss.ss_family = (sa_family_t)family;
	out->len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void socket_set_buffers(int fd)
{
	int size = SOCKBUF;

	/* The FORCE variants pass rmem_max as root; a high-rate test through
	 * a delaying relay needs more than the 208 KiB default. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

static void socket_set_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A bound, non-blocking socket; returns the fd or -errno. */
static int socket_open_bound(int type, struct addr *local, bool listening)
{
	int one = 1, fd, err;

	fd = socket(local->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (listening)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (type == SOCK_DGRAM)
		socket_set_buffers(fd);
	if (bind(fd, addr_sa(local), local->len) < 0)
		goto fail;
	if (type == SOCK_STREAM && listening && listen(fd, 16) < 0)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

static uint16_t socket_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return sockaddr_port(&ss);
}

static int signal_open(void)
{
	sigset_t set;
	struct sigaction ign;
	int fd;

	/* A vanished reader must give EPIPE, not kill the relay. */
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int file_write_text(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	int err = 0;

	if (f == NULL)
		return -errno;
	if (fwrite(text, 1, len, f) != len)
		err = -EIO;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	return err;
}

static struct timespec *timespec_from_us(struct timespec *ts, uint64_t us)
{
	ts->tv_sec = (time_t)(us / 1000000u);
	ts->tv_nsec = (long)(us % 1000000u) * 1000;
	return ts;
}

/* -------------------------------------------------------------- replies */

struct reply {
	char text[REPLY_MAX];
	size_t len;
};

static void reply_add(struct reply *out, const char *fmt, ...) PRINTF_FMT(2, 3);
static void reply_add(struct reply *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (out->len >= sizeof out->text - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out->text + out->len, sizeof out->text - out->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		out->len += (size_t)n;
	if (out->len > sizeof out->text - 1)
		out->len = sizeof out->text - 1;
}

/* ------------------------------------------------------------ pipelines */

struct pipeline {
	double drop, dup, flip, trunc;
	uint32_t delay_us, jitter_us;
	uint32_t holdone;
	struct {
		uint8_t bytes[MATCH_MAX];
		uint32_t len;
	} hold_match;
	bool record;
	uint32_t queue;
	uint32_t seg, seg_pause_us;
	uint32_t coalesce, coalesce_wait_us;
};

enum key_kind { KEY_PROBABILITY, KEY_DURATION, KEY_COUNT, KEY_FLAG, KEY_HEX };

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t offset;
	uint32_t min, max;              /* KEY_COUNT only */
};

static const struct key_def pipeline_keys[] = {
	{ "drop", KEY_PROBABILITY, offsetof(struct pipeline, drop), 0, 0 },
	{ "flip", KEY_PROBABILITY, offsetof(struct pipeline, flip), 0, 0 },
	{ "trunc", KEY_PROBABILITY, offsetof(struct pipeline, trunc), 0, 0 },
	{ "holdone", KEY_COUNT, offsetof(struct pipeline, holdone), 0, 100000000 },
	{ "hold_match", KEY_HEX, offsetof(struct pipeline, hold_match), 0, MATCH_MAX },
	{ "dup", KEY_PROBABILITY, offsetof(struct pipeline, dup), 0, 0 },
	{ "delay", KEY_DURATION, offsetof(struct pipeline, delay_us), 0, 0 },
	{ "jitter", KEY_DURATION, offsetof(struct pipeline, jitter_us), 0, 0 },
	{ "queue", KEY_COUNT, offsetof(struct pipeline, queue), 1, QUEUE_HARD_MAX },
	{ "record", KEY_FLAG, offsetof(struct pipeline, record), 0, 0 },
	{ "seg", KEY_COUNT, offsetof(struct pipeline, seg), 0, TCP_OUT_MAX },
	{ "seg_pause", KEY_DURATION, offsetof(struct pipeline, seg_pause_us), 0, 0 },
	{ "coalesce", KEY_COUNT, offsetof(struct pipeline, coalesce), 0, TCP_OUT_MAX },
	{ "coalesce_wait", KEY_DURATION, offsetof(struct pipeline, coalesce_wait_us), 0, 0 },
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void pipeline_init(struct pipeline *p)
{
	memset(p, 0, sizeof *p);
	p->queue = QUEUE_DEFAULT;
	p->seg_pause_us = 1000;
	p->coalesce_wait_us = 5000;
}

static bool pipeline_set_key(struct pipeline *p, const struct key_def *k, const char *val,
			     char *err, size_t errlen)
{
	char *field = (char *)p + k->offset;
	uint64_t v;

	switch (k->kind) {
	case KEY_PROBABILITY:
		if (val == NULL || !parse_probability(val, (double *)(void *)field))
			goto bad;
		return true;
	case KEY_DURATION:
		if (val == NULL || !parse_duration(val, (uint32_t *)(void *)field))
			goto bad;
		return true;
	case KEY_COUNT:
		if (val == NULL || !parse_u64(val, k->max, &v) || v < k->min)
			goto bad;
		*(uint32_t *)(void *)field = (uint32_t)v;
		return true;
	case KEY_FLAG:
		if (val == NULL || strcmp(val, "1") == 0)
			*(bool *)(void *)field = true;
		else if (strcmp(val, "0") == 0)
			*(bool *)(void *)field = false;
		else
			goto bad;
		return true;
	case KEY_HEX: {
		size_t len;

		if (val == NULL || !parse_hex(val, p->hold_match.bytes, k->max, &len))
			goto bad;
		p->hold_match.len = (uint32_t)len;
		return true;
	}
	}
bad:
	switch (k->kind) {
	case KEY_PROBABILITY:
		snprintf(err, errlen, "bad value for %s: expected a probability 0..1", k->name);
		break;
	case KEY_DURATION:
		snprintf(err, errlen, "bad value for %s: expected a duration up to 60s (2ms, 500us, 1s)",
			 k->name);
		break;
	case KEY_COUNT:
		snprintf(err, errlen, "bad value for %s: expected an integer %" PRIu32 "..%" PRIu32,
			 k->name, k->min, k->max);
		break;
	case KEY_FLAG:
		snprintf(err, errlen, "bad value for %s: expected no value, 0 or 1", k->name);
		break;
	case KEY_HEX:
		snprintf(err, errlen, "bad value for %s: expected 1..%" PRIu32 " bytes in hex",
			 k->name, k->max);
		break;
	}
	return false;
}

/* A spec is "key=value" items separated by commas or blanks; "" and "none"
 * give the empty pipeline.  The result replaces the whole pipeline: keys not
 * named take their defaults. */
static bool pipeline_parse(struct pipeline *out, const char *spec, char *err, size_t errlen)
{
	char copy[SPEC_MAX], *save = NULL, *tok;
	struct pipeline p;
	size_t n = strlen(spec);

	pipeline_init(&p);
	if (n >= sizeof copy) {
		snprintf(err, errlen, "pipeline spec too long");
		return false;
	}
	memcpy(copy, spec, n + 1);
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
		char *val = strchr(tok, '=');
		const struct key_def *k = NULL;

		if (strcmp(tok, "none") == 0)
			continue;
		if (val != NULL)
			*val++ = '\0';
		for (size_t i = 0; i < ARRAY_SIZE(pipeline_keys); i++)
			if (strcmp(tok, pipeline_keys[i].name) == 0)
				k = &pipeline_keys[i];
		if (k == NULL) {
			snprintf(err, errlen, "unknown pipeline key '%.64s'", tok);
			return false;
		}
		if (!pipeline_set_key(&p, k, val, err, errlen))
			return false;
	}
	if (p.seg != 0 && p.coalesce != 0) {
		snprintf(err, errlen, "seg and coalesce exclude each other");
		return false;
	}
	*out = p;
	return true;
}

static void format_duration(char *buf, size_t len, uint32_t us)
{
	if (us % 1000000 == 0 && us != 0)
		snprintf(buf, len, "%" PRIu32 "s", us / 1000000);
	else if (us % 1000 == 0)
		snprintf(buf, len, "%" PRIu32 "ms", us / 1000);
	else
		snprintf(buf, len, "%" PRIu32 "us", us);
}

/* The inverse of pipeline_parse: only what differs from the defaults. */
static void pipeline_format(const struct pipeline *p, struct reply *out)
{
	struct pipeline def;
	size_t start = out->len;

	pipeline_init(&def);
	for (size_t i = 0; i < ARRAY_SIZE(pipeline_keys); i++) {
		const struct key_def *k = &pipeline_keys[i];
		const char *field = (const char *)p + k->offset;
		const char *dfield = (const char *)&def + k->offset;
		const char *sep = out->len > start ? "," : "";
		char dur[32];

		switch (k->kind) {
		case KEY_PROBABILITY:
			if (*(const double *)(const void *)field != *(const double *)(const void *)dfield)
				reply_add(out, "%s%s=%g", sep, k->name,
					  *(const double *)(const void *)field);
			break;
		case KEY_DURATION:
		case KEY_COUNT:
			if (*(const uint32_t *)(const void *)field == *(const uint32_t *)(const void *)dfield)
				break;
			if (k->kind == KEY_DURATION) {
				format_duration(dur, sizeof dur, *(const uint32_t *)(const void *)field);
				reply_add(out, "%s%s=%s", sep, k->name, dur);
			} else {
				reply_add(out, "%s%s=%" PRIu32, sep, k->name,
					  *(const uint32_t *)(const void *)field);
			}
			break;
		case KEY_FLAG:
			if (*(const bool *)(const void *)field)
				reply_add(out, "%s%s", sep, k->name);
			break;
		case KEY_HEX:
			if (p->hold_match.len == 0)
				break;
			reply_add(out, "%s%s=", sep, k->name);
			for (uint32_t b = 0; b < p->hold_match.len; b++)
				reply_add(out, "%02x", p->hold_match.bytes[b]);
			break;
		}
	}
	if (out->len == start)
		reply_add(out, "none");
}

/* ---------------------------------------------------------- relay state */

struct counters {
	uint64_t received, forwarded, dropped, duplicated, delayed, flipped, truncated;
	uint64_t held, replayed, injected, overflow, send_errors, unroutable, foreign;
};

struct qpkt {
	uint64_t due, seq;              /* seq keeps equal deadlines in order */
	uint8_t *data;
	size_t len;
};

struct recpkt {
	uint8_t *data;
	size_t len;
};

struct tcp_chunk {
	uint8_t *data;                  /* TCP_CHUNK bytes, allocated once */
	size_t len, off;
	uint64_t due;
};

/* One direction of the TCP pair: reads the source into chunks, writes the
 * destination from `out`. */
struct tcp_flow {
	struct tcp_chunk slot[TCP_SLOTS];
	size_t head, count;
	uint64_t last_due, next_write;
	uint8_t out[TCP_OUT_MAX];
	size_t out_len, out_off;
	bool eof_in, shut_out, blocked;
	uint64_t bytes_in, bytes_out, writes, flipped;
};

struct direction {
	struct pipeline p;
	struct rng rng[STAGE_COUNT];
	struct counters c;
	/* delay queue: a binary min-heap on (due, seq) */
	struct qpkt *heap;
	size_t heap_len, heap_bytes;
	uint64_t heap_seq;
	/* holdone: one packet held back until `held_left` others passed */
	uint8_t *held;
	size_t held_len;
	bool has_held;
	uint32_t held_left, hold_armed;
	/* record ring, oldest at rec_head */
	struct recpkt *rec;
	size_t rec_head, rec_len, rec_bytes;
	struct tcp_flow tcp;
};

struct ctl_client {
	int fd;
	size_t len;
	char line[CTL_LINE_MAX];
};

struct relay {
	uint64_t seed;
	bool have_udp, have_tcp, have_from;
	struct addr udp_listen, udp_to, tcp_listen, tcp_to, from;
	int udp_a, udp_b;               /* A-facing listener, outbound (NAT) socket */
	struct sockaddr_storage a_peer; /* A's latest source */
	bool a_known;
	uint64_t rebinds;
	int tcp_l;
	int tcp_fd[2];                  /* [0] accepted from A, [1] dialed to B */
	bool tcp_connecting;
	uint64_t tcp_accepted, tcp_connected, tcp_connect_failed, tcp_replaced, tcp_closed;
	int ctl_l;
	bool ctl_created;
	struct ctl_client ctl[CTL_CLIENTS];
	int sig_fd;
	const char *control_path, *stats_path, *ready_path;
	struct direction dir[DIR_COUNT];
	uint8_t buf[UDP_MAX];
};

/* ---------------------------------------------------------- delay queue */

static bool qpkt_before(const struct qpkt *a, const struct qpkt *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_push(struct direction *d, struct qpkt pkt)
{
	size_t i = d->heap_len++;

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!qpkt_before(&pkt, &d->heap[parent]))
			break;
		d->heap[i] = d->heap[parent];
		i = parent;
	}
	d->heap[i] = pkt;
	d->heap_bytes += pkt.len;
}

static struct qpkt heap_pop(struct direction *d)
{
	struct qpkt top = d->heap[0], last = d->heap[--d->heap_len];
	size_t i = 0;

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= d->heap_len)
			break;
		if (child + 1 < d->heap_len && qpkt_before(&d->heap[child + 1], &d->heap[child]))
			child++;
		if (!qpkt_before(&d->heap[child], &last))
			break;
		d->heap[i] = d->heap[child];
		i = child;
	}
	if (d->heap_len > 0)
		d->heap[i] = last;
	d->heap_bytes -= top.len;
	return top;
}

/* ------------------------------------------------------------ UDP path */

/* Sends one datagram toward the direction's far side: a2b from the outbound
 * socket to B, b2a from the listener to A's latest source. */
static int udp_send(struct relay *r, enum dir d, const uint8_t *data, size_t len)
{
	int fd = d == DIR_A2B ? r->udp_b : r->udp_a;
	const struct sockaddr_storage *to = d == DIR_A2B ? &r->udp_to.ss : &r->a_peer;
	socklen_t tolen = d == DIR_A2B ? r->udp_to.len : r->udp_listen.len;

	if (fd < 0)
		return -EBADF;
	if (d == DIR_B2A && !r->a_known)
		return -EDESTADDRREQ;
	if (sendto(fd, data, len, 0, (const struct sockaddr *)to, tolen) < 0)
		return -errno;
	return 0;
}

static void udp_forward(struct relay *r, enum dir d, const uint8_t *data, size_t len)
{
	struct counters *c = &r->dir[d].c;
	int rc = udp_send(r, d, data, len);

	if (rc == 0)
		c->forwarded++;
	else if (rc == -EDESTADDRREQ)
		c->unroutable++;
	else
		c->send_errors++;
}

static uint32_t delay_draw(struct direction *d)
{
	uint64_t x = rng_next(&d->rng[STAGE_DELAY]);
	int64_t us = d->p.delay_us;

	if (d->p.jitter_us != 0)
		us += (int64_t)(x % (2 * (uint64_t)d->p.jitter_us + 1)) - (int64_t)d->p.jitter_us;
	return us > 0 ? (uint32_t)us : 0;
}

/* The stages after holdone: dup, then delay (or send at once). */
static void udp_deliver(struct relay *r, enum dir d, const uint8_t *data, size_t len, uint64_t now)
{
	struct direction *dd = &r->dir[d];
	int copies = 1;

	if (rng_unit(&dd->rng[STAGE_DUP]) < dd->p.dup) {
		copies = 2;
		dd->c.duplicated++;
	}
	for (int i = 0; i < copies; i++) {
		uint32_t delay = delay_draw(dd);
		struct qpkt q;

		if (delay == 0) {
			udp_forward(r, d, data, len);
			continue;
		}
		if (dd->heap_len >= dd->p.queue || dd->heap_len >= QUEUE_HARD_MAX ||
		    dd->heap_bytes + len > QUEUE_BYTES_MAX) {
			dd->c.overflow++;
			continue;
		}
		q.data = malloc(len ? len : 1);
		if (q.data == NULL) {
			dd->c.overflow++;
			continue;
		}
		memcpy(q.data, data, len);
		q.len = len;
		q.due = now + delay;
		q.seq = dd->heap_seq++;
		heap_push(dd, q);
		dd->c.delayed++;
	}
}

static void record_clear(struct direction *d)
{
	for (size_t i = 0; i < d->rec_len; i++)
		free(d->rec[(d->rec_head + i) % RECORD_MAX].data);
	d->rec_head = d->rec_len = d->rec_bytes = 0;
}

static void record_push(struct direction *d, const uint8_t *data, size_t len)
{
	struct recpkt *slot;
	uint8_t *copy = malloc(len ? len : 1);

	if (copy == NULL) {
		d->c.overflow++;
		return;
	}
	memcpy(copy, data, len);
	/* Bounded: the oldest recording gives way. */
	while (d->rec_len > 0 && (d->rec_len == RECORD_MAX || d->rec_bytes + len > RECORD_BYTES_MAX)) {
		struct recpkt *old = &d->rec[d->rec_head];

		d->rec_bytes -= old->len;
		free(old->data);
		d->rec_head = (d->rec_head + 1) % RECORD_MAX;
		d->rec_len--;
	}
	slot = &d->rec[(d->rec_head + d->rec_len) % RECORD_MAX];
	slot->data = copy;
	slot->len = len;
	d->rec_len++;
	d->rec_bytes += len;
}

static void hold_release(struct relay *r, enum dir d, uint64_t now)
{
	struct direction *dd = &r->dir[d];
	uint8_t *held = dd->held;

	if (!dd->has_held)
		return;
	dd->has_held = false;
	dd->held = NULL;
	udp_deliver(r, d, held, dd->held_len, now);
	free(held);
}

/* The whole pipeline for one received datagram; `data` may be changed. */
static void udp_process(struct relay *r, enum dir d, uint8_t *data, size_t len, uint64_t now)
{
	struct direction *dd = &r->dir[d];
	const struct pipeline *p = &dd->p;
	double u;
	uint64_t x;

	dd->c.received++;
	if (p->record)
		record_push(dd, data, len);

	/* Every stage draws its numbers for every packet, whether it fires or
	 * not, so each stage's decisions depend on the packet index alone. */
	if (rng_unit(&dd->rng[STAGE_DROP]) < p->drop) {
		dd->c.dropped++;
		return;
	}
	u = rng_unit(&dd->rng[STAGE_FLIP]);
	x = rng_next(&dd->rng[STAGE_FLIP]);
	if (u < p->flip && len > 0) {
		x %= (uint64_t)len * 8;
		data[x / 8] ^= (uint8_t)(1u << (x % 8));
		dd->c.flipped++;
	}
	u = rng_unit(&dd->rng[STAGE_TRUNC]);
	x = rng_below(&dd->rng[STAGE_TRUNC], len);
	if (u < p->trunc && len > 0) {
		len = (size_t)x;
		dd->c.truncated++;
	}

	if (dd->has_held) {
		udp_deliver(r, d, data, len, now);
		if (--dd->held_left == 0)
			hold_release(r, d, now);
		return;
	}
	if (dd->hold_armed != 0 && len >= p->hold_match.len &&
	    memcmp(data, p->hold_match.bytes, p->hold_match.len) == 0) {
		dd->held = malloc(len ? len : 1);
		if (dd->held != NULL) {
			memcpy(dd->held, data, len);
			dd->held_len = len;
			dd->held_left = dd->hold_armed;
			dd->has_held = true;
			dd->hold_armed = 0;
			dd->c.held++;
			return;
		}
		dd->c.overflow++;
	}
	udp_deliver(r, d, data, len, now);
}

static void udp_receive(struct relay *r, enum dir d, uint64_t now)
{
	int fd = d == DIR_A2B ? r->udp_a : r->udp_b;

	for (int i = 0; i < BURST && fd >= 0; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof from;
		ssize_t n = recvfrom(fd, r->buf, sizeof r->buf, 0, (struct sockaddr *)&from, &fromlen);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;         /* EAGAIN, or an ICMP error: nothing to do */
		}
		if (d == DIR_A2B) {
			/* NAT semantics: replies follow A's latest source. */
			r->a_peer = from;
			r->a_known = true;
		} else if (!sockaddr_equal(&from, &r->udp_to.ss)) {
			/* Port-restricted NAT: only B may answer on our port. */
			r->dir[d].c.foreign++;
			continue;
		}
		udp_process(r, d, r->buf, (size_t)n, now);
	}
}

static void queue_flush_due(struct relay *r, enum dir d, uint64_t now)
{
	struct direction *dd = &r->dir[d];

	/* Capped per wake-up so a burst coming due cannot starve the sockets. */
	for (int budget = FLUSH_BUDGET; budget > 0 && dd->heap_len > 0; budget--) {
		struct qpkt q;

		if (dd->heap[0].due > now)
			break;
		q = heap_pop(dd);

		udp_forward(r, d, q.data, q.len);
		free(q.data);
	}
}

static int udp_open_outbound(struct relay *r)
{
	struct addr local;

	if (r->have_from)
		local = r->from;
	else
		addr_any(&local, r->udp_to.ss.ss_family);
	return socket_open_bound(SOCK_DGRAM, &local, false);
}

/* NAT rebinding: the new socket is opened before the old one closes, so
 * the kernel cannot hand out the same port again. */
static int udp_rebind(struct relay *r)
{
	int fd = udp_open_outbound(r);

	if (fd < 0)
		return fd;
	close(r->udp_b);
	r->udp_b = fd;
	r->rebinds++;
	log_event("udp: rebound outbound socket to port %u", socket_local_port(fd));
	return 0;
}

/* ------------------------------------------------------------ TCP path */

static void tcp_flow_reset(struct tcp_flow *f)
{
	f->head = f->count = 0;
	f->last_due = f->next_write = 0;
	f->out_len = f->out_off = 0;
	f->eof_in = f->shut_out = f->blocked = false;
}

static bool tcp_pair_active(const struct relay *r)
{
	return r->tcp_fd[0] >= 0;
}

static void tcp_close_pair(struct relay *r, const char *why)
{
	if (!tcp_pair_active(r))
		return;
	for (int i = 0; i < 2; i++) {
		if (r->tcp_fd[i] >= 0)
			close(r->tcp_fd[i]);
		r->tcp_fd[i] = -1;
		tcp_flow_reset(&r->dir[i].tcp);
	}
	r->tcp_connecting = false;
	r->tcp_closed++;
	log_event("tcp: connection pair closed (%s)", why);
}

static bool tcp_can_read(const struct relay *r, enum dir d)
{
	const struct tcp_flow *f = &r->dir[d].tcp;

	return r->tcp_fd[d] >= 0 && !(d == DIR_B2A && r->tcp_connecting) && !f->eof_in &&
	       f->count < TCP_SLOTS && r->dir[d].p.drop < 1.0;      /* drop=1: a stall */
}

static int tcp_read(struct relay *r, enum dir d, uint64_t now)
{
	struct direction *dd = &r->dir[d];
	struct tcp_flow *f = &dd->tcp;

	for (int i = 0; i < 4 && tcp_can_read(r, d); i++) {
		struct tcp_chunk *c = &f->slot[(f->head + f->count) % TCP_SLOTS];
		struct tcp_chunk *tail = f->count ? &f->slot[(f->head + f->count - 1) % TCP_SLOTS] : NULL;
		size_t at = 0;
		ssize_t n;
		double u;
		uint64_t x, due;

		/* Without a delay, new bytes join the last chunk: many small
		 * reads must not exhaust the slots while coalesce waits. */
		if (tail != NULL && tail->len < TCP_CHUNK && dd->p.delay_us == 0 && dd->p.jitter_us == 0) {
			c = tail;
			at = tail->len;
		}
		if (c->data == NULL && (c->data = malloc(TCP_CHUNK)) == NULL)
			return -ENOMEM;
		n = recv(r->tcp_fd[d], c->data + at, TCP_CHUNK - at, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		if (n == 0) {
			f->eof_in = true;
			return 0;
		}
		f->bytes_in += (uint64_t)n;
		u = rng_unit(&dd->rng[STAGE_FLIP]);
		x = rng_next(&dd->rng[STAGE_FLIP]) % ((uint64_t)n * 8);
		if (u < dd->p.flip) {
			c->data[at + x / 8] ^= (uint8_t)(1u << (x % 8));
			f->flipped++;
		}
		if (c == tail) {
			c->len += (size_t)n;
			continue;
		}
		/* A byte stream keeps its order: jitter varies the delay but a
		 * chunk never overtakes the one before it. */
		due = now + delay_draw(dd);
		if (due < f->last_due)
			due = f->last_due;
		f->last_due = due;
		c->len = (size_t)n;
		c->off = 0;
		c->due = due;
		f->count++;
	}
	return 0;
}

/* Bytes of chunks due by `now`, and the first chunk that is not yet due. */
static size_t tcp_flow_ready(const struct tcp_flow *f, uint64_t now, uint64_t *next_due)
{
	size_t ready = 0;

	*next_due = UINT64_MAX;
	for (size_t i = 0; i < f->count; i++) {
		const struct tcp_chunk *c = &f->slot[(f->head + i) % TCP_SLOTS];

		if (c->due > now) {
			*next_due = c->due;
			break;
		}
		ready += c->len - c->off;
	}
	return ready;
}

/* How many bytes the next write carries, or 0 to wait.  seg: at most seg
 * bytes, spaced by seg_pause; coalesce: wait for `coalesce` bytes, for
 * coalesce_wait after the oldest became due, or for the end of the stream. */
static size_t tcp_flow_take(const struct relay *r, enum dir d, uint64_t now)
{
	const struct tcp_flow *f = &r->dir[d].tcp;
	const struct pipeline *p = &r->dir[d].p;
	uint64_t next_due;
	size_t ready = tcp_flow_ready(f, now, &next_due);

	if (ready == 0 || now < f->next_write)
		return 0;
	if (p->seg != 0)
		return ready < p->seg ? ready : p->seg;
	if (p->coalesce != 0) {
		if (ready < p->coalesce && !f->eof_in &&
		    now < f->slot[f->head].due + p->coalesce_wait_us)
			return 0;
		return ready < p->coalesce ? ready : p->coalesce;
	}
	return ready < TCP_OUT_MAX ? ready : TCP_OUT_MAX;
}

static void tcp_flow_gather(struct tcp_flow *f, size_t want)
{
	f->out_len = f->out_off = 0;
	while (want > 0 && f->count > 0) {
		struct tcp_chunk *c = &f->slot[f->head];
		size_t n = c->len - c->off;

		if (n > want)
			n = want;
		memcpy(f->out + f->out_len, c->data + c->off, n);
		f->out_len += n;
		c->off += n;
		want -= n;
		if (c->off == c->len) {
			f->head = (f->head + 1) % TCP_SLOTS;
			f->count--;
		}
	}
}

static int tcp_pump(struct relay *r, enum dir d, uint64_t now)
{
	struct tcp_flow *f = &r->dir[d].tcp;
	int fd = r->tcp_fd[1 - d];

	if (fd < 0 || r->tcp_connecting || f->blocked)
		return 0;
	for (int rounds = 0; rounds < 64; rounds++) {
		size_t want;

		if (f->out_off < f->out_len) {
			ssize_t n = send(fd, f->out + f->out_off, f->out_len - f->out_off, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					f->blocked = true;
					return 0;
				}
				return -errno;
			}
			f->out_off += (size_t)n;
			f->bytes_out += (uint64_t)n;
			f->writes++;
			if (f->out_off < f->out_len) {
				f->blocked = true;
				return 0;
			}
			f->out_off = f->out_len = 0;
			if (r->dir[d].p.seg != 0)
				f->next_write = now + r->dir[d].p.seg_pause_us;
			continue;
		}
		want = tcp_flow_take(r, d, now);
		if (want == 0)
			break;
		tcp_flow_gather(f, want);
	}
	if (f->count == 0 && f->out_len == 0 && f->eof_in && !f->shut_out) {
		/* Pass the half-close on once everything before it is out. */
		(void)shutdown(fd, SHUT_WR);
		f->shut_out = true;
	}
	return 0;
}

static uint64_t tcp_flow_deadline(const struct relay *r, enum dir d, uint64_t now)
{
	const struct tcp_flow *f = &r->dir[d].tcp;
	const struct pipeline *p = &r->dir[d].p;
	uint64_t next_due, t;
	size_t ready;

	if (r->tcp_fd[1 - d] < 0 || r->tcp_connecting || f->blocked)
		return UINT64_MAX;
	if (f->out_off < f->out_len)
		return now;
	if (f->count == 0)
		return f->eof_in && !f->shut_out ? now : UINT64_MAX;
	ready = tcp_flow_ready(f, now, &next_due);
	if (ready == 0)
		t = next_due;
	else if (p->seg == 0 && p->coalesce != 0 && ready < p->coalesce && !f->eof_in) {
		t = f->slot[f->head].due + p->coalesce_wait_us;
		if (next_due < t)
			t = next_due;
	} else
		t = now;
	return t > f->next_write ? t : f->next_write;
}

static void tcp_dial(struct relay *r, int afd)
{
	struct addr local;
	int bfd = -1;

	r->tcp_accepted++;
	socket_set_nodelay(afd);
	if (r->have_from)
		local = r->from;
	else
		addr_any(&local, r->tcp_to.ss.ss_family);
	bfd = socket_open_bound(SOCK_STREAM, &local, false);
	if (bfd < 0) {
		errno = -bfd;
		goto fail;
	}
	socket_set_nodelay(bfd);
	r->tcp_fd[0] = afd;
	r->tcp_fd[1] = bfd;
	tcp_flow_reset(&r->dir[DIR_A2B].tcp);
	tcp_flow_reset(&r->dir[DIR_B2A].tcp);
	if (connect(bfd, addr_sa(&r->tcp_to), r->tcp_to.len) == 0) {
		r->tcp_connecting = false;
		r->tcp_connected++;
		return;
	}
	if (errno == EINPROGRESS) {
		r->tcp_connecting = true;
		return;
	}
	r->tcp_fd[0] = r->tcp_fd[1] = -1;
fail:
	log_event("tcp: cannot dial B: %s", strerror(errno));
	r->tcp_connect_failed++;
	if (bfd >= 0)
		close(bfd);
	close(afd);
}

static void tcp_accept(struct relay *r)
{
	int fd = accept4(r->tcp_l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (tcp_pair_active(r)) {
		/* One session per relay: the newest connection wins. */
		tcp_close_pair(r, "replaced by a new connection");
		r->tcp_replaced++;
	}
	tcp_dial(r, fd);
}

static void tcp_connect_done(struct relay *r)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(r->tcp_fd[1], SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		log_event("tcp: cannot connect to B: %s", strerror(err));
		r->tcp_connect_failed++;
		tcp_close_pair(r, "connect failed");
		return;
	}
	r->tcp_connecting = false;
	r->tcp_connected++;
}

/* Both directions closed and drained: the pair is done. */
static void tcp_check_done(struct relay *r)
{
	if (tcp_pair_active(r) && r->dir[DIR_A2B].tcp.shut_out && r->dir[DIR_B2A].tcp.shut_out)
		tcp_close_pair(r, "both sides closed");
}

/* revents of tcp_fd[i]: i is also the direction that reads from it, and
 * 1 - i the direction that writes to it. */
static void tcp_handle(struct relay *r, int i, short revents, uint64_t now)
{
	enum dir rd = (enum dir)i, wd = (enum dir)(1 - i);
	int rc = 0;

	if (i == 1 && r->tcp_connecting) {
		if (revents & (POLLOUT | POLLERR | POLLHUP))
			tcp_connect_done(r);
		return;
	}
	if (revents & POLLERR) {
		int err = 0;
		socklen_t len = sizeof err;

		(void)getsockopt(r->tcp_fd[i], SOL_SOCKET, SO_ERROR, &err, &len);
		tcp_close_pair(r, err ? strerror(err) : "socket error");
		return;
	}
	if ((revents & (POLLIN | POLLHUP)) && tcp_can_read(r, rd))
		rc = tcp_read(r, rd, now);
	if (rc == 0 && tcp_pair_active(r) && (revents & (POLLOUT | POLLHUP)) && r->dir[wd].tcp.blocked) {
		r->dir[wd].tcp.blocked = false;
		rc = tcp_pump(r, wd, now);
	}
	if (rc < 0)
		tcp_close_pair(r, strerror(-rc));
}

/* ------------------------------------------------------------- stats */

static void stats_format(const struct relay *r, struct reply *out, const char *prefix)
{
	struct reply all = { .len = 0 };
	char peer[80];
	size_t plen = prefix ? strlen(prefix) : 0;

	reply_add(&all, "seed=%" PRIu64 "\n", r->seed);
	reply_add(&all, "udp.source_port=%u\n", r->udp_b >= 0 ? socket_local_port(r->udp_b) : 0);
	reply_add(&all, "udp.rebinds=%" PRIu64 "\n", r->rebinds);
	if (r->a_known)
		sockaddr_format(&r->a_peer, peer, sizeof peer);
	else
		snprintf(peer, sizeof peer, "none");
	reply_add(&all, "udp.a_peer=%s\n", peer);
	for (int d = 0; d < DIR_COUNT; d++) {
		const struct direction *dd = &r->dir[d];
		const struct counters *c = &dd->c;
		const char *n = dir_names[d];
		const struct {
			const char *key;
			uint64_t value;
		} rows[] = {
			{ "received", c->received }, { "forwarded", c->forwarded },
			{ "dropped", c->dropped }, { "duplicated", c->duplicated },
			{ "delayed", c->delayed }, { "flipped", c->flipped },
			{ "truncated", c->truncated }, { "held", c->held },
			{ "replayed", c->replayed }, { "injected", c->injected },
			{ "overflow", c->overflow }, { "send_errors", c->send_errors },
			{ "unroutable", c->unroutable }, { "foreign", c->foreign },
			{ "queued", dd->heap_len }, { "holding", dd->has_held },
			{ "recorded", dd->rec_len },
		};

		reply_add(&all, "%s.pipeline=", n);
		pipeline_format(&dd->p, &all);
		reply_add(&all, "\n");
		for (size_t k = 0; k < ARRAY_SIZE(rows); k++)
			reply_add(&all, "%s.%s=%" PRIu64 "\n", n, rows[k].key, rows[k].value);
	}
	reply_add(&all, "tcp.accepted=%" PRIu64 "\n", r->tcp_accepted);
	reply_add(&all, "tcp.connected=%" PRIu64 "\n", r->tcp_connected);
	reply_add(&all, "tcp.connect_failed=%" PRIu64 "\n", r->tcp_connect_failed);
	reply_add(&all, "tcp.replaced=%" PRIu64 "\n", r->tcp_replaced);
	reply_add(&all, "tcp.closed=%" PRIu64 "\n", r->tcp_closed);
	reply_add(&all, "tcp.active=%d\n", tcp_pair_active(r) ? 1 : 0);
	for (int d = 0; d < DIR_COUNT; d++) {
		const struct tcp_flow *f = &r->dir[d].tcp;

		reply_add(&all, "tcp.%s.bytes_in=%" PRIu64 "\n", dir_names[d], f->bytes_in);
		reply_add(&all, "tcp.%s.bytes_out=%" PRIu64 "\n", dir_names[d], f->bytes_out);
		reply_add(&all, "tcp.%s.writes=%" PRIu64 "\n", dir_names[d], f->writes);
		reply_add(&all, "tcp.%s.flipped=%" PRIu64 "\n", dir_names[d], f->flipped);
	}
	/* Filter by key prefix, line by line. */
	for (char *line = all.text; *line != '\0';) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);

		if (plen == 0 || strncmp(line, prefix, plen) == 0)
			reply_add(out, "%.*s", (int)len, line);
		line += len;
	}
}

/* --------------------------------------------------------- control */

/* "a2b" | "b2a" | "both" -> bit mask of directions. */
static bool parse_dirs(const char *word, unsigned *mask)
{
	if (word == NULL)
		return false;
	if (strcmp(word, "a2b") == 0)
		*mask = 1u << DIR_A2B;
	else if (strcmp(word, "b2a") == 0)
		*mask = 1u << DIR_B2A;
	else if (strcmp(word, "both") == 0)
		*mask = 1u << DIR_A2B | 1u << DIR_B2A;
	else
		return false;
	return true;
}

typedef int cmd_fn(struct relay *r, char *args, struct reply *out, char *err, size_t errlen);

static char *next_word(char **args)
{
	char *w = *args;

	while (*w == ' ' || *w == '\t')
		w++;
	if (*w == '\0')
		return NULL;
	*args = w + strcspn(w, " \t");
	if (**args != '\0')
		*(*args)++ = '\0';
	while (**args == ' ' || **args == '\t')
		(*args)++;
	return w;
}

static int cmd_set(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	struct pipeline p;
	unsigned mask;

	if (!parse_dirs(next_word(&args), &mask)) {
		snprintf(err, errlen, "usage: set a2b|b2a|both SPEC");
		return -1;
	}
	if (!pipeline_parse(&p, args, err, errlen))
		return -1;
	for (int d = 0; d < DIR_COUNT; d++) {
		if (!(mask & 1u << d))
			continue;
		r->dir[d].p = p;
		r->dir[d].hold_armed = p.holdone;
		reply_add(out, "%s.pipeline=", dir_names[d]);
		pipeline_format(&p, out);
		reply_add(out, "\n");
	}
	return 0;
}

static int cmd_replay(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	unsigned mask;

	if (!parse_dirs(next_word(&args), &mask) || *args != '\0') {
		snprintf(err, errlen, "usage: replay a2b|b2a|both");
		return -1;
	}
	if (!r->have_udp) {
		snprintf(err, errlen, "replay needs --udp");
		return -1;
	}
	for (int d = 0; d < DIR_COUNT; d++) {
		struct direction *dd = &r->dir[d];
		uint64_t sent = 0;

		if (!(mask & 1u << d))
			continue;
		for (size_t i = 0; i < dd->rec_len; i++) {
			const struct recpkt *pkt = &dd->rec[(dd->rec_head + i) % RECORD_MAX];
			int rc = udp_send(r, (enum dir)d, pkt->data, pkt->len);

			if (rc == -EAGAIN || rc == -ENOBUFS) {
				/* A burst of thousands can fill the socket
				 * buffer: wait for room, briefly. */
				struct pollfd pfd = { .fd = d == DIR_A2B ? r->udp_b : r->udp_a,
						      .events = POLLOUT };

				(void)poll(&pfd, 1, 100);
				rc = udp_send(r, (enum dir)d, pkt->data, pkt->len);
			}
			if (rc == 0)
				sent++;
			else if (rc == -EDESTADDRREQ)
				dd->c.unroutable++;
			else
				dd->c.send_errors++;
		}
		dd->c.replayed += sent;
		reply_add(out, "%s.replayed_now=%" PRIu64 "\n", dir_names[d], sent);
	}
	return 0;
}

static int cmd_clear(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	unsigned mask;

	if (!parse_dirs(next_word(&args), &mask) || *args != '\0') {
		snprintf(err, errlen, "usage: clear a2b|b2a|both");
		return -1;
	}
	for (int d = 0; d < DIR_COUNT; d++)
		if (mask & 1u << d)
			record_clear(&r->dir[d]);
	return 0;
}

static int cmd_release(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	unsigned mask;

	if (!parse_dirs(next_word(&args), &mask) || *args != '\0') {
		snprintf(err, errlen, "usage: release a2b|b2a|both");
		return -1;
	}
	for (int d = 0; d < DIR_COUNT; d++) {
		if (!(mask & 1u << d))
			continue;
		reply_add(out, "%s.released=%d\n", dir_names[d], r->dir[d].has_held ? 1 : 0);
		r->dir[d].hold_armed = 0;
		hold_release(r, (enum dir)d, clock_now_us());
	}
	return 0;
}

static int cmd_rebind(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	int rc;

	if (*args != '\0') {
		snprintf(err, errlen, "usage: rebind");
		return -1;
	}
	if (!r->have_udp) {
		snprintf(err, errlen, "rebind needs --udp");
		return -1;
	}
	rc = udp_rebind(r);
	if (rc < 0) {
		snprintf(err, errlen, "rebind: %s", strerror(-rc));
		return -1;
	}
	reply_add(out, "udp.source_port=%u\n", socket_local_port(r->udp_b));
	return 0;
}

static int cmd_inject(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	uint8_t bytes[INJECT_MAX];
	const char *side = next_word(&args);
	const char *hex = next_word(&args);
	size_t len;
	enum dir d;
	int rc;

	if (side == NULL || hex == NULL || *args != '\0' ||
	    (strcmp(side, "a") != 0 && strcmp(side, "b") != 0)) {
		snprintf(err, errlen, "usage: inject a|b HEX");
		return -1;
	}
	if (!parse_hex(hex, bytes, sizeof bytes, &len)) {
		snprintf(err, errlen, "inject: expected 1..%d bytes as an even number of hex digits",
			 INJECT_MAX);
		return -1;
	}
	if (!r->have_udp) {
		snprintf(err, errlen, "inject needs --udp");
		return -1;
	}
	d = side[0] == 'b' ? DIR_A2B : DIR_B2A;
	rc = udp_send(r, d, bytes, len);
	if (rc < 0) {
		snprintf(err, errlen, "inject: %s", rc == -EDESTADDRREQ ? "A's address is not known yet"
								       : strerror(-rc));
		return -1;
	}
	r->dir[d].c.injected++;
	reply_add(out, "injected=%zu\n", len);
	return 0;
}

static int cmd_stats(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	const char *prefix = next_word(&args);

	if (*args != '\0') {
		snprintf(err, errlen, "usage: stats [PREFIX]");
		return -1;
	}
	stats_format(r, out, prefix);
	return 0;
}

static int cmd_help(struct relay *r, char *args, struct reply *out, char *err, size_t errlen);

static const struct {
	const char *name, *usage;
	cmd_fn *fn;
} commands[] = {
	{ "set", "set a2b|b2a|both SPEC   replace the pipeline (SPEC empty or none: clean)", cmd_set },
	{ "replay", "replay a2b|b2a|both     re-send every recorded packet now", cmd_replay },
	{ "clear", "clear a2b|b2a|both      forget the recorded packets", cmd_clear },
	{ "release", "release a2b|b2a|both    send the held packet now, disarm holdone", cmd_release },
	{ "rebind", "rebind                  new outbound UDP socket, new source port", cmd_rebind },
	{ "inject", "inject a|b HEX          send these bytes to side a or b", cmd_inject },
	{ "stats", "stats [PREFIX]          counters as key=value lines", cmd_stats },
	{ "help", "help                    this list", cmd_help },
};

static int cmd_help(struct relay *r, char *args, struct reply *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		reply_add(out, "%s\n", commands[i].usage);
	return 0;
}

/* A reply is zero or more data lines, then "ok" or "error: ...". */
static void ctl_execute(struct relay *r, char *line, struct reply *out)
{
	char err[256] = "";
	char *args = line;
	const char *name = next_word(&args);

	out->len = 0;
	if (name == NULL)
		return;         /* blank line: nothing to answer */
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(name, commands[i].name) != 0)
			continue;
		if (commands[i].fn(r, args, out, err, sizeof err) == 0) {
			reply_add(out, "ok\n");
		} else {
			out->len = 0;
			reply_add(out, "error: %s\n", err);
		}
		return;
	}
	reply_add(out, "error: unknown command '%.64s' (try help)\n", name);
}

static void ctl_close(struct ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static bool ctl_send(struct ctl_client *c, const struct reply *out)
{
	if (out->len == 0)
		return true;
	/* A reply fits the socket buffer many times over; a client that does
	 * not read is dropped rather than waited for. */
	return send(c->fd, out->text, out->len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)out->len;
}

static void ctl_read(struct relay *r, struct ctl_client *c)
{
	struct reply *out = malloc(sizeof *out);
	ssize_t n;
	char *nl;

	if (out == NULL)
		return;
	n = recv(c->fd, c->line + c->len, sizeof c->line - c->len - 1, 0);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			ctl_close(c);
		goto done;
	}
	c->len += (size_t)n;
	c->line[c->len] = '\0';
	while ((nl = memchr(c->line, '\n', c->len)) != NULL) {
		size_t used = (size_t)(nl - c->line) + 1;

		*nl = '\0';
		if (nl > c->line && nl[-1] == '\r')
			nl[-1] = '\0';
		ctl_execute(r, c->line, out);
		memmove(c->line, c->line + used, c->len - used);
		c->len -= used;
		c->line[c->len] = '\0';
		if (!ctl_send(c, out)) {
			ctl_close(c);
			goto done;
		}
	}
	if (n == 0) {
		/* End of input: a last line without its newline still counts. */
		if (c->len > 0) {
			ctl_execute(r, c->line, out);
			(void)ctl_send(c, out);
		}
		ctl_close(c);
	} else if (c->len == sizeof c->line - 1) {
		out->len = 0;
		reply_add(out, "error: line too long\n");
		(void)ctl_send(c, out);
		ctl_close(c);
	}
done:
	free(out);
}

static void ctl_accept(struct relay *r)
{
	int fd = accept4(r->ctl_l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (int i = 0; i < CTL_CLIENTS; i++) {
		if (r->ctl[i].fd < 0) {
			r->ctl[i].fd = fd;
			r->ctl[i].len = 0;
			return;
		}
	}
	(void)send(fd, "error: busy\n", 12, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static int ctl_open(struct relay *r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, err;

	if (strlen(r->control_path) >= sizeof sun.sun_path)
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, r->control_path, strlen(r->control_path) + 1);
	/* A stale socket from a killed run is replaced; anything else is not
	 * ours to delete. */
	if (lstat(r->control_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(r->control_path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 8) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	r->ctl_created = true;
	return fd;
}

/* ---------------------------------------------------------- relay main */

/* Fixed slots of the poll set; a closed descriptor stays in it as -1. */
enum {
	PFD_SIG, PFD_UDP_A, PFD_UDP_B, PFD_TCP_L, PFD_TCP_A, PFD_TCP_B, PFD_CTL_L, PFD_CTL0,
	PFD_COUNT = PFD_CTL0 + CTL_CLIENTS
};

static void relay_poll_build(struct relay *r, struct pollfd *pfd)
{
	for (int i = 0; i < PFD_COUNT; i++) {
		pfd[i].fd = -1;
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	pfd[PFD_SIG].fd = r->sig_fd;
	pfd[PFD_UDP_A].fd = r->udp_a;
	pfd[PFD_UDP_B].fd = r->udp_b;
	pfd[PFD_TCP_L].fd = r->tcp_l;
	pfd[PFD_CTL_L].fd = r->ctl_l;
	for (int i = 0; i < CTL_CLIENTS; i++)
		pfd[PFD_CTL0 + i].fd = r->ctl[i].fd;
	for (int i = 0; i < 2; i++) {
		struct pollfd *p = &pfd[PFD_TCP_A + i];
		short ev = 0;

		if (r->tcp_fd[i] < 0)
			continue;
		if (tcp_can_read(r, (enum dir)i))
			ev |= POLLIN;
		if ((i == 1 && r->tcp_connecting) || r->dir[1 - i].tcp.blocked)
			ev |= POLLOUT;
		/* An fd with no interest stays out of the set: else a hung-up
		 * socket would wake the loop forever while we stall it. */
		p->fd = ev ? r->tcp_fd[i] : -1;
		p->events = ev;
	}
}

static int relay_run(struct relay *r)
{
	struct pollfd pfd[PFD_COUNT];

	for (;;) {
		uint64_t now = clock_now_us(), deadline = UINT64_MAX;
		struct timespec ts, *tsp = NULL;
		int n;

		for (int d = 0; d < DIR_COUNT; d++) {
			queue_flush_due(r, (enum dir)d, now);
			if (tcp_pair_active(r)) {
				int rc = tcp_pump(r, (enum dir)d, now);

				if (rc < 0)
					tcp_close_pair(r, strerror(-rc));
			}
		}
		tcp_check_done(r);
		for (int d = 0; d < DIR_COUNT; d++) {
			uint64_t t = tcp_flow_deadline(r, (enum dir)d, now);

			if (r->dir[d].heap_len > 0 && r->dir[d].heap[0].due < t)
				t = r->dir[d].heap[0].due;
			if (t < deadline)
				deadline = t;
		}
		if (deadline != UINT64_MAX)
			tsp = timespec_from_us(&ts, deadline > now ? deadline - now : 0);
		relay_poll_build(r, pfd);
		n = ppoll(pfd, PFD_COUNT, tsp, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		now = clock_now_us();
		if (pfd[PFD_SIG].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(r->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
				log_event("signal %u: stopping", si.ssi_signo);
				return 0;
			}
		}
		if (pfd[PFD_UDP_A].revents)
			udp_receive(r, DIR_A2B, now);
		if (pfd[PFD_UDP_B].revents && pfd[PFD_UDP_B].fd == r->udp_b)
			udp_receive(r, DIR_B2A, now);
		for (int i = 0; i < 2; i++)
			if (pfd[PFD_TCP_A + i].revents && pfd[PFD_TCP_A + i].fd == r->tcp_fd[i] &&
			    r->tcp_fd[i] >= 0)
				tcp_handle(r, i, pfd[PFD_TCP_A + i].revents, now);
		if (pfd[PFD_TCP_L].revents)
			tcp_accept(r);
		for (int i = 0; i < CTL_CLIENTS; i++)
			if (pfd[PFD_CTL0 + i].revents && pfd[PFD_CTL0 + i].fd == r->ctl[i].fd)
				ctl_read(r, &r->ctl[i]);
		if (pfd[PFD_CTL_L].revents)
			ctl_accept(r);
	}
}

static void relay_free(struct relay *r)
{
	for (int d = 0; d < DIR_COUNT; d++) {
		struct direction *dd = &r->dir[d];

		while (dd->heap != NULL && dd->heap_len > 0)
			free(heap_pop(dd).data);
		free(dd->heap);
		if (dd->rec != NULL)
			record_clear(dd);
		free(dd->rec);
		free(dd->held);
		for (int i = 0; i < TCP_SLOTS; i++)
			free(dd->tcp.slot[i].data);
	}
	for (int i = 0; i < CTL_CLIENTS; i++)
		ctl_close(&r->ctl[i]);
	if (r->ctl_l >= 0)
		close(r->ctl_l);
	if (r->ctl_created)
		unlink(r->control_path);
	int fds[] = { r->udp_a, r->udp_b, r->tcp_l, r->tcp_fd[0], r->tcp_fd[1], r->sig_fd };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(r);
}

/* ------------------------------------------------------------- options */

enum mode { MODE_NONE, MODE_RELAY, MODE_CTL, MODE_ECHO_UDP, MODE_ECHO_TCP, MODE_SEND_UDP, MODE_SEND_TCP };

struct options {
	enum mode mode;
	const char *target;             /* mode argument: ADDR:PORT or PATH */
	const char *udp, *to, *tcp, *tcp_to, *from, *a2b, *b2a;
	const char *control, *stats_file, *ready_file;
	bool have_seed;
	uint64_t seed, count, size, bytes, chunk;
	uint32_t interval_us, wait_us, hold_us;
	bool have_wait, list;
};

static const char usage_text[] =
"usage:\n"
"  relay [--udp ADDR:PORT --to ADDR:PORT] [--tcp ADDR:PORT [--tcp-to ADDR:PORT]]\n"
"        [--from ADDR] [--seed N] [--a2b SPEC] [--b2a SPEC] [--control PATH]\n"
"        [--stats-file FILE] [--ready-file FILE]\n"
"  relay --ctl PATH COMMAND...\n"
"  relay --echo-udp ADDR:PORT [--stats-file FILE] [--ready-file FILE]\n"
"  relay --echo-tcp ADDR:PORT [--stats-file FILE] [--ready-file FILE]\n"
"  relay --send-udp ADDR:PORT --count N [--size BYTES] [--interval D] [--wait D]\n"
"        [--list]\n"
"  relay --send-tcp ADDR:PORT --bytes N [--chunk BYTES] [--interval D] [--wait D]\n"
"        [--hold D] [--seed N]\n"
"\n"
"Relay mode (A dials the relay; the relay forwards to B from a port of its own):\n"
"  --udp ADDR:PORT     UDP address A sends to (IPv6 as [ADDR]:PORT)\n"
"  --to ADDR:PORT      B's UDP address; also B's TCP address unless --tcp-to\n"
"  --tcp ADDR:PORT     TCP address A connects to\n"
"  --tcp-to ADDR:PORT  B's TCP address\n"
"  --from ADDR         local address of the outbound sockets (default: any)\n"
"  --seed N            seed of every random choice (default: from the clock;\n"
"                      printed at start and in the stats)\n"
"  --a2b SPEC          pipeline from A to B; --b2a SPEC: from B to A\n"
"  --control PATH      unix stream socket for run-time commands; created after\n"
"                      every data socket is bound, so it also means \"ready\"\n"
"  --stats-file FILE   counters written here as key=value lines on exit\n"
"  --ready-file FILE   written (with the pid) once every socket is bound\n"
"  SIGTERM / SIGINT    print the counters to stderr and --stats-file, exit 0\n"
"\n"
"SPEC: key=value items separated by commas or blanks; \"none\" or empty: clean.\n"
"  Per UDP datagram, in this order (P is a probability 0..1; D a duration\n"
"  such as 500us, 2ms, 1.5s, a bare number meaning ms, at most 60s):\n"
"  record          keep a copy of every datagram as received (ring of 4096\n"
"                  packets / 16 MiB per direction); see `replay`\n"
"  drop=P          drop the datagram\n"
"  flip=P          flip one random bit\n"
"  trunc=P         truncate to a random shorter length (0..len-1)\n"
"  holdone=N       one-shot: hold the next datagram back and send it right\n"
"                  after N later datagrams went past (armed again by `set`)\n"
"  hold_match=HEX  holdone picks only a datagram that starts with these\n"
"                  bytes (at most 16), e.g. 04000000 for saltun data\n"
"  dup=P           send the datagram twice (each copy delayed on its own)\n"
"  delay=D         delay each datagram by D ...\n"
"  jitter=D        ... plus a uniform -D..+D, so datagrams reorder\n"
"  queue=N         at most N delayed datagrams (default 4096, max 65536,\n"
"                  and 32 MiB); beyond: dropped and counted as overflow\n"
"  For TCP (one byte stream per direction; dup, trunc, holdone, record and\n"
"  drop<1 do not apply):\n"
"  drop=1          stall: stop reading this direction (a blackout)\n"
"  flip=P          per read chunk, flip one random bit\n"
"  delay/jitter    delay the bytes; the order is always kept\n"
"  seg=N           write at most N bytes per send(), TCP_NODELAY, with\n"
"  seg_pause=D     this pause between writes (default 1ms)\n"
"  coalesce=N      gather up to N bytes into one write, waiting at most\n"
"  coalesce_wait=D this long after the oldest byte was due (default 5ms)\n"
"\n"
"Control commands (--ctl PATH COMMAND..., or one line each on the socket;\n"
"a reply is data lines then \"ok\" or \"error: ...\"):\n"
"  set a2b|b2a|both SPEC   replace the pipeline\n"
"  replay a2b|b2a|both     re-send every recorded datagram now\n"
"  clear a2b|b2a|both      forget the recorded datagrams\n"
"  release a2b|b2a|both    send a held datagram now and disarm holdone\n"
"  rebind                  new outbound UDP socket with a new source port\n"
"  inject a|b HEX          send bytes to A (from the listener) or to B (from\n"
"                          the outbound socket)\n"
"  stats [PREFIX]          the counters, optionally only keys with PREFIX\n"
"  help                    the command list\n"
"  --ctl prints the data lines to stdout, an error to stderr; exit status\n"
"  0 on ok, 1 on error, 2 when the relay cannot be reached.\n"
"\n"
"Helper endpoints (so tests need no socat):\n"
"  --echo-udp ADDR:PORT  answer each datagram with itself; prints\n"
"                        \"source ADDR:PORT\" whenever the sender changes\n"
"  --echo-tcp ADDR:PORT  echo every connection; prints \"closed bytes=N\n"
"                        reads=K\" per connection\n"
"  --send-udp ADDR:PORT  send --count datagrams of --size bytes (default 64,\n"
"                        min 8: a sequence number leads), one every\n"
"                        --interval (default 0), then read echoes until\n"
"                        --wait passes quietly (default 500ms); prints\n"
"                        \"sent= received= unique= duplicates= reordered=\n"
"                        invalid= send_errors= digest=\" (reordered: arrivals\n"
"                        below the highest sequence seen; digest: FNV-1a of\n"
"                        the sequence numbers in arrival order); --list also\n"
"                        prints \"recv SEQ\" per datagram; exit 0\n"
"  --send-tcp ADDR:PORT  send --bytes seeded bytes in --chunk writes (default\n"
"                        65536) every --interval, check the echo; gives up\n"
"                        after --wait without progress (default 5s); with\n"
"                        --hold D it keeps the connection open D after the\n"
"                        echo, or until the far end closes; prints\n"
"                        \"sent= received= match= eof=\"; exit 0 only if the\n"
"                        whole echo matched\n";

static void usage_print(FILE *f)
{
	fputs(usage_text, f);
}

static bool options_set_mode(struct options *o, enum mode m, const char *arg)
{
	if (o->mode != MODE_NONE && o->mode != m) {
		fprintf(stderr, "relay: choose one mode: relay, --ctl, --echo-*, --send-*\n");
		return false;
	}
	o->mode = m;
	o->target = arg;
	return true;
}

static int options_parse(struct options *o, int argc, char **argv)
{
	enum {
		OPT_UDP = 256, OPT_TO, OPT_TCP, OPT_TCP_TO, OPT_FROM, OPT_SEED, OPT_A2B, OPT_B2A,
		OPT_CONTROL, OPT_STATS, OPT_READY, OPT_CTL, OPT_ECHO_UDP, OPT_ECHO_TCP,
		OPT_SEND_UDP, OPT_SEND_TCP, OPT_COUNT, OPT_SIZE, OPT_INTERVAL, OPT_WAIT,
		OPT_BYTES, OPT_CHUNK, OPT_HOLD, OPT_LIST,
	};
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "udp", required_argument, NULL, OPT_UDP },
		{ "to", required_argument, NULL, OPT_TO },
		{ "tcp", required_argument, NULL, OPT_TCP },
		{ "tcp-to", required_argument, NULL, OPT_TCP_TO },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "a2b", required_argument, NULL, OPT_A2B },
		{ "b2a", required_argument, NULL, OPT_B2A },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "stats-file", required_argument, NULL, OPT_STATS },
		{ "ready-file", required_argument, NULL, OPT_READY },
		{ "ctl", required_argument, NULL, OPT_CTL },
		{ "echo-udp", required_argument, NULL, OPT_ECHO_UDP },
		{ "echo-tcp", required_argument, NULL, OPT_ECHO_TCP },
		{ "send-udp", required_argument, NULL, OPT_SEND_UDP },
		{ "send-tcp", required_argument, NULL, OPT_SEND_TCP },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "wait", required_argument, NULL, OPT_WAIT },
		{ "bytes", required_argument, NULL, OPT_BYTES },
		{ "chunk", required_argument, NULL, OPT_CHUNK },
		{ "hold", required_argument, NULL, OPT_HOLD },
		{ "list", no_argument, NULL, OPT_LIST },
		{ NULL, 0, NULL, 0 },
	};
	int c, index = 0;

	memset(o, 0, sizeof *o);
	o->size = 64;
	o->chunk = 65536;
	/* "+": stop at the first word, which starts a --ctl command. */
	while ((c = getopt_long(argc, argv, "+h", longopts, &index)) != -1) {
		bool ok = true;

		switch (c) {
		case 'h':
			usage_print(stdout);
			exit(0);
		case OPT_UDP: o->udp = optarg; break;
		case OPT_TO: o->to = optarg; break;
		case OPT_TCP: o->tcp = optarg; break;
		case OPT_TCP_TO: o->tcp_to = optarg; break;
		case OPT_FROM: o->from = optarg; break;
		case OPT_A2B: o->a2b = optarg; break;
		case OPT_B2A: o->b2a = optarg; break;
		case OPT_CONTROL: o->control = optarg; break;
		case OPT_STATS: o->stats_file = optarg; break;
		case OPT_READY: o->ready_file = optarg; break;
		case OPT_SEED:
			ok = parse_u64(optarg, UINT64_MAX, &o->seed);
			o->have_seed = true;
			break;
		case OPT_CTL: ok = options_set_mode(o, MODE_CTL, optarg); break;
		case OPT_ECHO_UDP: ok = options_set_mode(o, MODE_ECHO_UDP, optarg); break;
		case OPT_ECHO_TCP: ok = options_set_mode(o, MODE_ECHO_TCP, optarg); break;
		case OPT_SEND_UDP: ok = options_set_mode(o, MODE_SEND_UDP, optarg); break;
		case OPT_SEND_TCP: ok = options_set_mode(o, MODE_SEND_TCP, optarg); break;
		case OPT_COUNT: ok = parse_u64(optarg, 10000000, &o->count); break;
		case OPT_SIZE: ok = parse_u64(optarg, 65507, &o->size) && o->size >= 8; break;
		case OPT_BYTES: ok = parse_u64(optarg, 1ULL << 32, &o->bytes); break;
		case OPT_CHUNK:
			ok = parse_u64(optarg, 65536, &o->chunk) && o->chunk >= 1;
			break;
		case OPT_INTERVAL: ok = parse_duration(optarg, &o->interval_us); break;
		case OPT_WAIT:
			ok = parse_duration(optarg, &o->wait_us);
			o->have_wait = true;
			break;
		case OPT_HOLD: ok = parse_duration(optarg, &o->hold_us); break;
		case OPT_LIST: o->list = true; break;
		default:
			fprintf(stderr, "relay: try --help\n");
			return -EINVAL;
		}
		if (!ok) {
			fprintf(stderr, "relay: bad value for --%s: '%s'\n", longopts[index].name, optarg);
			return -EINVAL;
		}
	}
	if (o->mode == MODE_NONE)
		o->mode = MODE_RELAY;
	if (o->mode != MODE_CTL && optind < argc) {
		fprintf(stderr, "relay: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int relay_main(const struct options *o)
{
	struct relay *r = calloc(1, sizeof *r);
	char err[256], text[128];
	struct reply *stats = NULL;
	int rc = 2;

	if (r == NULL) {
		fprintf(stderr, "relay: out of memory\n");
		return 2;
	}
	r->udp_a = r->udp_b = r->tcp_l = r->tcp_fd[0] = r->tcp_fd[1] = r->ctl_l = r->sig_fd = -1;
	for (int i = 0; i < CTL_CLIENTS; i++)
		r->ctl[i].fd = -1;
	r->control_path = o->control;
	r->stats_path = o->stats_file;
	r->ready_path = o->ready_file;

	if (o->udp == NULL && o->tcp == NULL) {
		fprintf(stderr, "relay: give --udp and/or --tcp (see --help)\n");
		goto out;
	}
	if ((o->udp != NULL && !addr_parse(&r->udp_listen, o->udp, true)) ||
	    (o->tcp != NULL && !addr_parse(&r->tcp_listen, o->tcp, true))) {
		fprintf(stderr, "relay: bad listen address (want ADDR:PORT or [ADDR]:PORT)\n");
		goto out;
	}
	if (o->udp != NULL) {
		if (o->to == NULL || !addr_parse(&r->udp_to, o->to, true) || sockaddr_port(&r->udp_to.ss) == 0) {
			fprintf(stderr, "relay: --udp needs --to ADDR:PORT\n");
			goto out;
		}
		r->have_udp = true;
	}
	if (o->tcp != NULL) {
		const char *to = o->tcp_to ? o->tcp_to : o->to;

		if (to == NULL || !addr_parse(&r->tcp_to, to, true) || sockaddr_port(&r->tcp_to.ss) == 0) {
			fprintf(stderr, "relay: --tcp needs --tcp-to (or --to) ADDR:PORT\n");
			goto out;
		}
		r->have_tcp = true;
	}
	if (o->from != NULL) {
		if (!addr_parse(&r->from, o->from, false) ||
		    (r->have_udp && r->from.ss.ss_family != r->udp_to.ss.ss_family) ||
		    (r->have_tcp && r->from.ss.ss_family != r->tcp_to.ss.ss_family)) {
			fprintf(stderr, "relay: bad --from: an address of the same family as B's\n");
			goto out;
		}
		r->have_from = true;
	}
	if (o->have_seed) {
		r->seed = o->seed;
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		r->seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ (uint64_t)getpid();
	}
	for (int d = 0; d < DIR_COUNT; d++) {
		struct direction *dd = &r->dir[d];
		const char *spec = d == DIR_A2B ? o->a2b : o->b2a;

		for (int s = 0; s < STAGE_COUNT; s++)
			rng_seed(&dd->rng[s], r->seed ^ ((uint64_t)(d + 1) << 56) ^ ((uint64_t)(s + 1) << 48));
		if (!pipeline_parse(&dd->p, spec ? spec : "", err, sizeof err)) {
			fprintf(stderr, "relay: --%s: %s\n", dir_names[d], err);
			goto out;
		}
		dd->hold_armed = dd->p.holdone;
		dd->heap = calloc(QUEUE_HARD_MAX, sizeof *dd->heap);
		dd->rec = calloc(RECORD_MAX, sizeof *dd->rec);
		if (dd->heap == NULL || dd->rec == NULL) {
			fprintf(stderr, "relay: out of memory\n");
			goto out;
		}
	}

	r->sig_fd = signal_open();
	if (r->sig_fd < 0) {
		fprintf(stderr, "relay: signalfd: %s\n", strerror(-r->sig_fd));
		goto out;
	}
	if (r->have_udp) {
		r->udp_a = socket_open_bound(SOCK_DGRAM, &r->udp_listen, false);
		if (r->udp_a < 0) {
			fprintf(stderr, "relay: bind %s: %s\n", o->udp, strerror(-r->udp_a));
			goto out;
		}
		r->udp_b = udp_open_outbound(r);
		if (r->udp_b < 0) {
			fprintf(stderr, "relay: outbound UDP socket: %s\n", strerror(-r->udp_b));
			goto out;
		}
		log_event("udp %s -> %s%s, outbound port %u", o->udp,
			  sockaddr_format(&r->udp_to.ss, text, sizeof text),
			  r->have_from ? " (with --from)" : "", socket_local_port(r->udp_b));
	}
	if (r->have_tcp) {
		r->tcp_l = socket_open_bound(SOCK_STREAM, &r->tcp_listen, true);
		if (r->tcp_l < 0) {
			fprintf(stderr, "relay: listen %s: %s\n", o->tcp, strerror(-r->tcp_l));
			goto out;
		}
		log_event("tcp %s -> %s", o->tcp, sockaddr_format(&r->tcp_to.ss, text, sizeof text));
	}
	if (r->control_path != NULL) {
		r->ctl_l = ctl_open(r);
		if (r->ctl_l < 0) {
			fprintf(stderr, "relay: control socket %s: %s\n", r->control_path, strerror(-r->ctl_l));
			goto out;
		}
	}
	log_event("seed=%" PRIu64, r->seed);
	if (r->ready_path != NULL) {
		int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());

		n = file_write_text(r->ready_path, text, (size_t)n);
		if (n < 0) {
			fprintf(stderr, "relay: ready file %s: %s\n", r->ready_path, strerror(-n));
			goto out;
		}
	}

	rc = relay_run(r);
	if (rc < 0) {
		fprintf(stderr, "relay: poll: %s\n", strerror(-rc));
		rc = 1;
	}
	stats = calloc(1, sizeof *stats);
	if (stats != NULL) {
		stats_format(r, stats, NULL);
		fwrite(stats->text, 1, stats->len, stderr);
		int werr = r->stats_path ? file_write_text(r->stats_path, stats->text, stats->len) : 0;

		if (werr < 0) {
			fprintf(stderr, "relay: stats file %s: %s\n", r->stats_path, strerror(-werr));
			rc = 1;
		}
	}
	free(stats);
out:
	relay_free(r);
	return rc;
}

/* ------------------------------------------------------- control client */

static int ctl_client_main(const struct options *o, int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char cmd[CTL_LINE_MAX], *reply = NULL;
	size_t len = 0, cap = 1 << 16, used = 0;
	uint64_t deadline;
	int fd = -1, rc = 2;
	char *last, *end;

	if (strlen(o->target) >= sizeof sun.sun_path) {
		fprintf(stderr, "relay: control path too long\n");
		return 2;
	}
	memcpy(sun.sun_path, o->target, strlen(o->target) + 1);
	for (int i = optind; i < argc; i++) {
		int n = snprintf(cmd + len, sizeof cmd - len, "%s%s", i > optind ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= sizeof cmd - len - 1) {
			fprintf(stderr, "relay: command too long\n");
			return 2;
		}
		len += (size_t)n;
	}
	if (len == 0) {
		fprintf(stderr, "relay: --ctl PATH needs a command (try: help)\n");
		return 2;
	}
	cmd[len++] = '\n';
	reply = malloc(cap);
	if (reply == NULL)
		return 2;

	/* The relay may still be starting: retry for a short while. */
	deadline = clock_now_us() + 3000000;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0)
			break;
		close(fd);
		fd = -1;
		if ((errno != ENOENT && errno != ECONNREFUSED) || clock_now_us() > deadline)
			goto fail;
		usleep(20000);
	}
	if (send(fd, cmd, len, MSG_NOSIGNAL) != (ssize_t)len)
		goto fail;
	(void)shutdown(fd, SHUT_WR);
	deadline = clock_now_us() + 5000000;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = clock_now_us();
		ssize_t n;

		if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000 + 1)) <= 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		n = recv(fd, reply + used, cap - used - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		used += (size_t)n;
		if (used == cap - 1)
			break;
	}
	reply[used] = '\0';
	/* Data lines to stdout; the final status line decides the exit. */
	end = reply + used;
	if (end > reply && end[-1] == '\n')
		*--end = '\0';
	last = strrchr(reply, '\n');
	last = last ? last + 1 : reply;
	fwrite(reply, 1, (size_t)(last - reply), stdout);
	if (strcmp(last, "ok") == 0) {
		rc = 0;
	} else {
		fprintf(stderr, "relay: %s\n", *last ? last : "no reply");
		rc = 1;
	}
	goto out;
fail:
	fprintf(stderr, "relay: control %s: %s\n", o->target, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(reply);
	return rc;
}

/* --------------------------------------------------- helper endpoints */

static int endpoint_open(const char *text, int type, bool listening, struct addr *a)
{
	int fd;

	if (!addr_parse(a, text, true)) {
		fprintf(stderr, "relay: bad address '%s'\n", text);
		return -EINVAL;
	}
	fd = socket_open_bound(type, a, listening);
	if (fd < 0)
		fprintf(stderr, "relay: bind %s: %s\n", text, strerror(-fd));
	return fd;
}

static void endpoint_finish(const struct options *o, const char *text, size_t len)
{
	int err = 0;

	fwrite(text, 1, len, stderr);
	if (o->stats_file != NULL)
		err = file_write_text(o->stats_file, text, len);
	if (err < 0)
		fprintf(stderr, "relay: stats file %s: %s\n", o->stats_file, strerror(-err));
}

static bool endpoint_ready(const struct options *o)
{
	char text[32];
	int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());

	if (o->ready_file != NULL)
		n = file_write_text(o->ready_file, text, (size_t)n);
	if (n < 0) {
		fprintf(stderr, "relay: ready file %s: %s\n", o->ready_file, strerror(-n));
		return false;
	}
	return true;
}

static int echo_udp_main(const struct options *o)
{
	struct addr a;
	struct sockaddr_storage last = { .ss_family = AF_UNSPEC };
	uint64_t received = 0, bytes = 0, sources = 0, errors = 0;
	uint8_t *buf = malloc(UDP_MAX);
	int fd, sig = -1, rc = 2;
	char text[256];

	if (buf == NULL)
		return 2;
	fd = endpoint_open(o->target, SOCK_DGRAM, false, &a);
	if (fd < 0)
		goto out;
	sig = signal_open();
	if (sig < 0 || !endpoint_ready(o))
		goto out;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sig, .events = POLLIN }, { .fd = fd, .events = POLLIN } };

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			goto out;
		if (pfd[0].revents)
			break;
		for (int i = 0; i < BURST; i++) {
			struct sockaddr_storage from;
			socklen_t fromlen = sizeof from;
			ssize_t n = recvfrom(fd, buf, UDP_MAX, 0, (struct sockaddr *)&from, &fromlen);

			if (n < 0)
				break;
			received++;
			bytes += (uint64_t)n;
			if (!sockaddr_equal(&from, &last)) {
				last = from;
				sources++;
				printf("source %s\n", sockaddr_format(&from, text, sizeof text));
			}
			if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen) < 0)
				errors++;
		}
	}
	rc = snprintf(text, sizeof text, "received=%" PRIu64 "\nbytes=%" PRIu64 "\nsources=%" PRIu64
		      "\nsend_errors=%" PRIu64 "\n", received, bytes, sources, errors);
	endpoint_finish(o, text, (size_t)rc);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (sig >= 0)
		close(sig);
	free(buf);
	return rc;
}

enum { ECHO_CONNS = 8 };

struct echo_conn {
	int fd;
	size_t len, off;
	bool eof;
	uint64_t bytes, reads;
	uint8_t buf[65536];
};

static void echo_conn_close(struct echo_conn *c)
{
	printf("closed bytes=%" PRIu64 " reads=%" PRIu64 "\n", c->bytes, c->reads);
	close(c->fd);
	c->fd = -1;
}

static void echo_conn_step(struct echo_conn *c, short revents)
{
	if (c->off == c->len && !c->eof && (revents & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);

		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			echo_conn_close(c);
			return;
		}
		if (n == 0)
			c->eof = true;
		if (n > 0) {
			c->len = (size_t)n;
			c->off = 0;
			c->bytes += (uint64_t)n;
			c->reads++;
		}
	}
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			echo_conn_close(c);
			return;
		}
		c->off += (size_t)n;
	}
	c->off = c->len = 0;
	if (c->eof)
		echo_conn_close(c);
}

static int echo_tcp_main(const struct options *o)
{
	struct addr a;
	struct echo_conn *conns = calloc(ECHO_CONNS, sizeof *conns);
	uint64_t accepted = 0, bytes = 0, reads = 0;
	int lfd, sig = -1, rc = 2;
	char text[256];

	if (conns == NULL)
		return 2;
	for (int i = 0; i < ECHO_CONNS; i++)
		conns[i].fd = -1;
	lfd = endpoint_open(o->target, SOCK_STREAM, true, &a);
	if (lfd < 0)
		goto out;
	sig = signal_open();
	if (sig < 0 || !endpoint_ready(o))
		goto out;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		struct pollfd pfd[2 + ECHO_CONNS] = { { .fd = sig, .events = POLLIN },
						      { .fd = lfd, .events = POLLIN } };

		for (int i = 0; i < ECHO_CONNS; i++) {
			struct echo_conn *c = &conns[i];

			pfd[2 + i].fd = c->fd;
			pfd[2 + i].events = c->off < c->len ? POLLOUT : POLLIN;
		}
		if (poll(pfd, 2 + ECHO_CONNS, -1) < 0 && errno != EINTR)
			goto out;
		if (pfd[0].revents)
			break;
		for (int i = 0; i < ECHO_CONNS; i++) {
			struct echo_conn *c = &conns[i];
			uint64_t b = c->bytes, rd = c->reads;

			if (c->fd < 0 || pfd[2 + i].revents == 0)
				continue;
			echo_conn_step(c, pfd[2 + i].revents);
			bytes += c->bytes - b;
			reads += c->reads - rd;
		}
		if (pfd[1].revents) {
			int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			int slot = -1;

			for (int i = 0; i < ECHO_CONNS && fd >= 0; i++)
				if (conns[i].fd < 0)
					slot = i;
			if (fd >= 0 && slot < 0) {
				close(fd);
			} else if (fd >= 0) {
				memset(&conns[slot], 0, offsetof(struct echo_conn, buf));
				conns[slot].fd = fd;
				socket_set_nodelay(fd);
				accepted++;
			}
		}
	}
	rc = snprintf(text, sizeof text, "connections=%" PRIu64 "\nbytes=%" PRIu64 "\nreads=%" PRIu64 "\n",
		      accepted, bytes, reads);
	endpoint_finish(o, text, (size_t)rc);
	rc = 0;
out:
	for (int i = 0; i < ECHO_CONNS; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	if (lfd >= 0)
		close(lfd);
	if (sig >= 0)
		close(sig);
	free(conns);
	return rc;
}

static uint64_t fnv1a_add(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int send_udp_main(const struct options *o)
{
	struct addr a;
	uint8_t *buf = malloc(UDP_MAX), *seen = NULL;
	uint64_t sent = 0, received = 0, unique = 0, dups = 0, invalid = 0, errors = 0;
	uint64_t reordered = 0, highest = 0;
	uint64_t digest = 0xcbf29ce484222325ULL, now, next_send, quiet_end, hard_end;
	uint32_t wait = o->have_wait ? o->wait_us : 500000;
	int fd = -1, rc = 2;

	if (buf == NULL)
		return 2;
	if (o->count == 0) {
		fprintf(stderr, "relay: --send-udp needs --count N (N >= 1)\n");
		goto out;
	}
	seen = calloc((size_t)(o->count + 7) / 8, 1);
	if (seen == NULL || !addr_parse(&a, o->target, true)) {
		fprintf(stderr, "relay: bad address '%s'\n", o->target);
		goto out;
	}
	fd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, addr_sa(&a), a.len) < 0) {
		fprintf(stderr, "relay: %s: %s\n", o->target, strerror(errno));
		goto out;
	}
	socket_set_buffers(fd);
	now = clock_now_us();
	next_send = now;
	quiet_end = UINT64_MAX;
	/* A flood of stray datagrams must not keep the sender alive forever. */
	hard_end = now + (uint64_t)o->count * o->interval_us + 10ULL * wait + 1000000;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct timespec ts;
		uint64_t deadline;

		now = clock_now_us();
		for (int i = 0; i < BURST && sent < o->count && now >= next_send; i++) {
			for (uint64_t k = 0; k < o->size; k++)
				buf[k] = (uint8_t)(sent + k);
			for (int k = 0; k < 8; k++)
				buf[k] = (uint8_t)(sent >> (56 - 8 * k));
			if (send(fd, buf, (size_t)o->size, 0) < 0) {
				if (errno == EAGAIN || errno == ENOBUFS)
					break;  /* retry the same datagram */
				errors++;       /* e.g. ICMP unreachable: move on */
			}
			sent++;
			next_send += o->interval_us;
			if (sent == o->count)
				quiet_end = now + wait;
		}
		if (sent == o->count && (now >= quiet_end || now >= hard_end))
			break;
		deadline = sent < o->count ? next_send : quiet_end;
		if (deadline > hard_end)
			deadline = hard_end;
		if (ppoll(&pfd, 1, timespec_from_us(&ts, deadline > now ? deadline - now : 0), NULL) < 0 &&
		    errno != EINTR)
			goto out;
		for (int i = 0; i < BURST && (pfd.revents & POLLIN); i++) {
			ssize_t n = recv(fd, buf, UDP_MAX, 0);
			uint64_t seq = 0;

			if (n < 0)
				break;
			received++;
			if (sent == o->count)
				quiet_end = clock_now_us() + wait;
			for (int k = 0; k < 8 && n >= 8; k++)
				seq = seq << 8 | buf[k];
			if (n < 8 || seq >= o->count) {
				invalid++;
				continue;
			}
			digest = fnv1a_add(digest, seq);
			if (o->list)
				printf("recv %" PRIu64 "\n", seq);
			if (unique + dups > 0 && seq < highest)
				reordered++;
			if (seq > highest)
				highest = seq;
			if (seen[seq / 8] & (1u << (seq % 8))) {
				dups++;
			} else {
				seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
				unique++;
			}
		}
	}
	printf("sent=%" PRIu64 " received=%" PRIu64 " unique=%" PRIu64 " duplicates=%" PRIu64
	       " reordered=%" PRIu64 " invalid=%" PRIu64 " send_errors=%" PRIu64
	       " digest=%016" PRIx64 "\n",
	       sent, received, unique, dups, reordered, invalid, errors, digest);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(seen);
	free(buf);
	return rc;
}

static int send_tcp_main(const struct options *o)
{
	struct addr a;
	struct bytegen tx = { .left = 0 }, rx = { .left = 0 };
	uint8_t *out = malloc(65536), *in = malloc(65536), *want = malloc(65536);
	size_t out_len = 0, out_off = 0;
	uint64_t sent = 0, received = 0, total = o->bytes, now, next_send, progress, hold_end = 0;
	uint32_t wait = o->have_wait ? o->wait_us : 5000000;
	bool match = true, eof = false, shut = false;
	int fd = -1, rc = 2, err = 0;
	socklen_t elen = sizeof err;

	if (out == NULL || in == NULL || want == NULL)
		goto out;
	rng_seed(&tx.rng, o->have_seed ? o->seed : 1);
	rx.rng = tx.rng;
	if (!addr_parse(&a, o->target, true)) {
		fprintf(stderr, "relay: bad address '%s'\n", o->target);
		goto out;
	}
	fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, addr_sa(&a), a.len) < 0 && errno != EINPROGRESS))
		goto fail;
	{
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };

		if (poll(&pfd, 1, (int)(wait / 1000) + 1) <= 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
			errno = err ? err : errno;
			goto fail;
		}
	}
	socket_set_nodelay(fd);
	now = clock_now_us();
	next_send = now;
	progress = now;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = 0 };
		struct timespec ts;
		uint64_t deadline;

		now = clock_now_us();
		if (out_off == out_len && sent < total && now >= next_send) {
			out_len = (size_t)(total - sent < o->chunk ? total - sent : o->chunk);
			out_off = 0;
			bytegen_fill(&tx, out, out_len);
			next_send = now + o->interval_us;
		}
		while (out_off < out_len) {
			ssize_t n = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				eof = true;     /* reset by the far end */
				goto done;
			}
			out_off += (size_t)n;
			sent += (uint64_t)n;
			progress = now;
		}
		if (sent == total && out_off == out_len && !shut && o->hold_us == 0) {
			/* The half-close travels through the relay and
			 * ends the echo's connection in turn. */
			(void)shutdown(fd, SHUT_WR);
			shut = true;
		}
		if (eof || !match)
			break;
		if (received >= total && sent == total && o->hold_us == 0) {
			/* Echo complete: wait for the far end's close, which
			 * answers ours, so eof=1 means a clean end to end. */
			if (now >= progress + wait)
				break;
			deadline = progress + wait;
		} else if (received >= total && sent == total) {
			/* Hold the connection open until --hold passes or the
			 * far end closes it (the relay replaced it). */
			if (hold_end == 0)
				hold_end = now + o->hold_us;
			if (now >= hold_end)
				break;
			deadline = hold_end;
		} else {
			if (now >= progress + wait)
				break;
			deadline = progress + wait;
			if (out_off == out_len && sent < total && next_send < deadline)
				deadline = next_send;
		}
		pfd.events = (short)(POLLIN | (out_off < out_len ? POLLOUT : 0));
		if (ppoll(&pfd, 1, timespec_from_us(&ts, deadline > now ? deadline - now : 0), NULL) < 0 &&
		    errno != EINTR)
			goto fail;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, in, 65536, 0);

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				eof = true;
			} else if (n > 0) {
				size_t cmp = (size_t)n;

				if (received + (uint64_t)n > total) {
					match = false;  /* more than was sent */
					cmp = (size_t)(total - received);
				}
				bytegen_fill(&rx, want, cmp);
				if (memcmp(in, want, cmp) != 0)
					match = false;
				received += (uint64_t)n;
				progress = clock_now_us();
			}
		}
	}
done:
	printf("sent=%" PRIu64 " received=%" PRIu64 " match=%d eof=%d\n", sent, received,
	       match && received == total ? 1 : 0, eof ? 1 : 0);
	rc = match && received == total ? 0 : 1;
	goto out;
fail:
	fprintf(stderr, "relay: %s: %s\n", o->target, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(out);
	free(in);
	free(want);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o;

	if (options_parse(&o, argc, argv) < 0)
		return 2;
	switch (o.mode) {
	case MODE_CTL:
		return ctl_client_main(&o, argc, argv);
	case MODE_ECHO_UDP:
		return echo_udp_main(&o);
	case MODE_ECHO_TCP:
		return echo_tcp_main(&o);
	case MODE_SEND_UDP:
		return send_udp_main(&o);
	case MODE_SEND_TCP:
		return send_tcp_main(&o);
	case MODE_RELAY:
	case MODE_NONE:
		break;
	}
	return relay_main(&o);
}
