/*
 * The TCP transport, in two suites.
 *
 * tcp_frame: the pure decoder fed every way a stream can arrive (whole, one
 * byte at a time, odd chunk sizes, many frames per read), its errors
 * (length 0, above the maximum), and the header encoder.  Streams are
 * tables of frame lengths; every frame's bytes are checked exactly.
 *
 * tcp_transport: loop tests of transport_tcp.c on loopback (see there).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <sodium.h>

#include "daemon.h"
#include "tcp_frame.h"
#include "util.h"

#define MAXF 8

/* Byte `off` of frame number `idx`: distinct per frame and position. */
static uint8_t frame_byte(size_t idx, size_t off)
{
	return (uint8_t)(idx * 37 + off * 7 + (off >> 8) + 1);
}

/* The stream of frames with these lengths (lengths > 65535 are written as
 * the raw 16-bit header anyway, for the error cases), then `tail` bytes. */
static uint8_t *stream_build(const size_t *lens, size_t n, const uint8_t *tail, size_t ntail,
			     size_t *total)
{
	size_t sz = ntail;
	for (size_t i = 0; i < n; i++)
		sz += 2 + lens[i];
	uint8_t *s = malloc(sz ? sz : 1), *p = s;
	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++) {
		*p++ = (uint8_t)(lens[i] >> 8);
		*p++ = (uint8_t)lens[i];
		for (size_t j = 0; j < lens[i]; j++)
			*p++ = frame_byte(i, j);
	}
	if (ntail)
		memcpy(p, tail, ntail);
	*total = sz;
	return s;
}

struct decode_outcome {
	size_t nframes;
	size_t lens[MAXF];
	bool frames_ok;                 /* every byte as written */
	size_t zero_copy;               /* frames handed out inside the input */
	enum tcp_frame_result last;     /* result when the stream ended or broke */
	size_t consumed;                /* input bytes taken when it ended/broke */
};

/* Feed `s` in chunks whose sizes cycle through `chunks` (0-terminated; none
 * = all at once), as reads from a socket would deliver it. */
static void stream_decode(struct tcp_frame_decoder *dec, uint8_t *s, size_t total,
			  const size_t *chunks, struct decode_outcome *o)
{
	size_t pos = 0, ci = 0;

	memset(o, 0, sizeof(*o));
	o->frames_ok = true;
	o->last = TCP_FRAME_MORE;
	while (pos < total) {
		size_t c = chunks[0] == 0 ? total : chunks[ci];
		ci = chunks[ci + 1] == 0 ? 0 : ci + 1;
		if (c > total - pos)
			c = total - pos;
		uint8_t *in = s + pos, *start = in;
		size_t inlen = c;
		for (;;) {
			uint8_t *msg = NULL;
			size_t len = 0;
			enum tcp_frame_result r = tcp_frame_decode(dec, &in, &inlen, &msg, &len);
			if (r == TCP_FRAME_READY) {
				cr_assert_lt(o->nframes, MAXF);
				o->lens[o->nframes] = len;
				for (size_t j = 0; j < len; j++)
					if (msg[j] != frame_byte(o->nframes, j))
						o->frames_ok = false;
				if (msg >= start && msg + len <= start + c)
					o->zero_copy++;
				o->nframes++;
				continue;
			}
			o->last = r;
			break;
		}
		pos += (size_t)(in - start);
		if (o->last != TCP_FRAME_MORE)
			break;
		cr_assert_eq(inlen, 0, "MORE must consume all input");
	}
	o->consumed = pos;
}

/* Arrays, not pointers: Criterion re-executes the test binary for each
 * parameter, so a pointer into this process's data would dangle there. */
struct frame_case {
	char name[40];
	size_t max;
	size_t lens[MAXF];
	size_t n;
	char tail[20];                  /* raw bytes after the frames */
	size_t ntail;
	/* expected */
	size_t want_frames;             /* complete frames decoded */
	enum tcp_frame_result want_last;
	size_t want_consumed;           /* bytes taken before the stream ended/broke */
};

static const size_t chunk_plans[][4] = {
	{ 0 },                  /* the whole stream in one read */
	{ 1, 0 },               /* one byte per read */
	{ 2, 0 },
	{ 3, 0 },
	{ 5, 1, 0 },
	{ 7, 1000, 1, 0 },
	{ 151, 0 },
	{ 4096, 0 },
	{ 65537, 0 },
};

#define F(...) { __VA_ARGS__ }
#define H(n) (2 + (size_t)(n))

static const struct frame_case frame_cases[] = {
	{ "one byte frame", TCP_FRAME_MAX, F(1), 1, "", 0, 1, TCP_FRAME_MORE, H(1) },
	{ "handshake sizes back to back", TCP_FRAME_MAX, F(152, 92, 64, 32), 4, "", 0, 4,
	  TCP_FRAME_MORE, H(152) + H(92) + H(64) + H(32) },
	{ "largest frame", TCP_FRAME_MAX, F(65535), 1, "", 0, 1, TCP_FRAME_MORE, H(65535) },
	{ "largest frames twice", TCP_FRAME_MAX, F(65535, 65535), 2, "", 0, 2, TCP_FRAME_MORE,
	  2 * H(65535) },
	{ "many small frames", TCP_FRAME_MAX, F(1, 2, 3, 16, 255, 256, 257, 1420), 8, "", 0, 8,
	  TCP_FRAME_MORE, H(1) + H(2) + H(3) + H(16) + H(255) + H(256) + H(257) + H(1420) },
	{ "length 0 first", TCP_FRAME_MAX, F(0), 1, "", 0, 0, TCP_FRAME_EMPTY, 2 },
	{ "length 0 after a frame", TCP_FRAME_MAX, F(92, 0, 5), 3, "", 0, 1, TCP_FRAME_EMPTY,
	  H(92) + 2 },
	{ "at the maximum", 152, F(152), 1, "", 0, 1, TCP_FRAME_MORE, H(152) },
	{ "one above the maximum", 152, F(153), 1, "", 0, 0, TCP_FRAME_OVERSIZE, 2 },
	{ "65535 above the maximum", 152, F(92, 65535), 2, "", 0, 1, TCP_FRAME_OVERSIZE,
	  H(92) + 2 },
	{ "maximum 1", 1, F(1, 1, 2), 3, "", 0, 2, TCP_FRAME_OVERSIZE, 2 * H(1) + 2 },
	{ "garbage (HTTP) is a huge length", 152, F(0), 0, "GET / HTTP/1.1\r\n", 16, 0,
	  TCP_FRAME_OVERSIZE, 2 },
	{ "garbage under a large maximum waits", TCP_FRAME_MAX, F(0), 0, "GET / HTTP/1.1\r\n", 16,
	  0, TCP_FRAME_MORE, 16 },
	{ "half a header", TCP_FRAME_MAX, F(64), 1, "\x01", 1, 1, TCP_FRAME_MORE, H(64) + 1 },
	{ "header, part of the body", TCP_FRAME_MAX, F(64), 1, "\x00\x10\x01\x02\x03", 5, 1,
	  TCP_FRAME_MORE, H(64) + 5 },
	{ "zero bytes", TCP_FRAME_MAX, F(0), 0, "", 0, 0, TCP_FRAME_MORE, 0 },
};

ParameterizedTestParameters(tcp_frame, decode)
{
	return cr_make_param_array(struct frame_case, frame_cases, ARRAY_SIZE(frame_cases));
}

ParameterizedTest(const struct frame_case *c, tcp_frame, decode)
{
	struct tcp_frame_decoder *dec = malloc(sizeof(*dec));
	size_t total;
	uint8_t *s = stream_build(c->lens, c->n, (const uint8_t *)c->tail, c->ntail, &total);

	cr_assert_not_null(dec);
	for (size_t p = 0; p < ARRAY_SIZE(chunk_plans); p++) {
		struct decode_outcome o;
		tcp_frame_decoder_init(dec, c->max);
		stream_decode(dec, s, total, chunk_plans[p], &o);
		cr_expect_eq(o.nframes, c->want_frames, "%s, plan %zu: %zu frames, want %zu", c->name,
			     p, o.nframes, c->want_frames);
		for (size_t i = 0; i < o.nframes && i < c->want_frames; i++)
			cr_expect_eq(o.lens[i], c->lens[i], "%s, plan %zu: frame %zu is %zu bytes, want %zu",
				     c->name, p, i, o.lens[i], c->lens[i]);
		cr_expect(o.frames_ok, "%s, plan %zu: frame contents differ", c->name, p);
		cr_expect_eq(o.last, c->want_last, "%s, plan %zu: ended with %s, want %s", c->name, p,
			     tcp_frame_result_name(o.last), tcp_frame_result_name(c->want_last));
		cr_expect_eq(o.consumed, c->want_consumed, "%s, plan %zu: consumed %zu, want %zu",
			     c->name, p, o.consumed, c->want_consumed);
		/* All at once: every complete frame is handed out in place. */
		if (p == 0)
			cr_expect_eq(o.zero_copy, c->want_frames, "%s: %zu of %zu frames copied", c->name,
				     c->want_frames - o.zero_copy, c->want_frames);
		/* One byte per read: every frame was reassembled, except that a
		 * 1-byte body is whole in the read after its header. */
		if (p == 1) {
			size_t ones = 0;
			for (size_t i = 0; i < c->want_frames; i++)
				ones += c->lens[i] == 1;
			cr_expect_eq(o.zero_copy, ones, "%s: %zu frames in place, want %zu", c->name,
				     o.zero_copy, ones);
		}
	}
	free(s);
	free(dec);
}

/* After an error nothing more is read: the stream cannot be resynchronised. */
Test(tcp_frame, errors_are_sticky)
{
	static const struct {
		uint8_t bytes[4];
		size_t max;
		enum tcp_frame_result want;
	} cases[] = {
		{ { 0x00, 0x00, 0x00, 0x05 }, TCP_FRAME_MAX, TCP_FRAME_EMPTY },
		{ { 0x00, 0x99, 0x00, 0x05 }, 152, TCP_FRAME_OVERSIZE },
		{ { 0xff, 0xff, 0x00, 0x05 }, 65534, TCP_FRAME_OVERSIZE },
	};
	struct tcp_frame_decoder *dec = malloc(sizeof(*dec));

	cr_assert_not_null(dec);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t buf[4], more[3] = { 0x00, 0x01, 0x42 }, *in = buf, *msg = NULL;
		size_t inlen = sizeof(buf), len = 0;

		memcpy(buf, cases[i].bytes, sizeof(buf));
		tcp_frame_decoder_init(dec, cases[i].max);
		cr_expect_eq(tcp_frame_decode(dec, &in, &inlen, &msg, &len), cases[i].want, "case %zu", i);
		cr_expect_eq(inlen, 2, "case %zu: the header only is consumed", i);
		in = more;
		inlen = sizeof(more);
		cr_expect_eq(tcp_frame_decode(dec, &in, &inlen, &msg, &len), cases[i].want, "case %zu", i);
		cr_expect_eq(inlen, sizeof(more), "case %zu: nothing consumed after the error", i);
		cr_expect_null(msg, "case %zu", i);
		/* init starts a new stream */
		tcp_frame_decoder_init(dec, cases[i].max);
		cr_expect_eq(tcp_frame_decode(dec, &in, &inlen, &msg, &len), TCP_FRAME_READY, "case %zu", i);
		cr_expect_eq(len, 1);
		cr_expect_eq(msg[0], 0x42);
		cr_expect_eq(msg, more + 2, "case %zu: in place", i);
	}
	free(dec);
}

/* An unauthenticated connection accepts only handshake-sized frames; once
 * bound, the limit rises.  The limit applies to the next header. */
Test(tcp_frame, raise_max_between_frames)
{
	struct tcp_frame_decoder *dec = malloc(sizeof(*dec));
	size_t lens[] = { 152, 1000, 65535 }, total;
	uint8_t *s = stream_build(lens, 3, NULL, 0, &total), *in = s, *msg;
	size_t inlen = total, len;

	cr_assert_not_null(dec);
	tcp_frame_decoder_init(dec, 152);
	cr_assert_eq(tcp_frame_decode(dec, &in, &inlen, &msg, &len), TCP_FRAME_READY);
	cr_expect_eq(len, 152);
	tcp_frame_decoder_set_max(dec, TCP_FRAME_MAX);
	cr_assert_eq(tcp_frame_decode(dec, &in, &inlen, &msg, &len), TCP_FRAME_READY);
	cr_expect_eq(len, 1000);
	cr_expect_eq(msg[999], frame_byte(1, 999));
	tcp_frame_decoder_set_max(dec, 1000);
	cr_expect_eq(tcp_frame_decode(dec, &in, &inlen, &msg, &len), TCP_FRAME_OVERSIZE);
	cr_expect_eq(inlen, 65535);
	free(s);
	free(dec);
}

Test(tcp_frame, max_is_clamped)
{
	static const struct { size_t in, want; } cases[] = {
		{ 0, 1 }, { 1, 1 }, { 152, 152 }, { 65535, 65535 }, { 65536, 65535 },
		{ WIRE_MAX_MESSAGE, 65535 }, { SIZE_MAX, 65535 },
	};
	struct tcp_frame_decoder *dec = malloc(sizeof(*dec));

	cr_assert_not_null(dec);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		tcp_frame_decoder_init(dec, cases[i].in);
		cr_expect_eq(dec->max, cases[i].want, "init(%zu): max %zu", cases[i].in, dec->max);
		tcp_frame_decoder_set_max(dec, 7);
		tcp_frame_decoder_set_max(dec, cases[i].in);
		cr_expect_eq(dec->max, cases[i].want, "set_max(%zu): max %zu", cases[i].in, dec->max);
	}
	free(dec);
}

Test(tcp_frame, header_put)
{
	static const struct {
		size_t len;
		int rc;
		uint8_t out[2];
	} cases[] = {
		{ 0, -EMSGSIZE, { 0xaa, 0xaa } },
		{ 1, 0, { 0x00, 0x01 } },
		{ 92, 0, { 0x00, 0x5c } },
		{ 152, 0, { 0x00, 0x98 } },
		{ 255, 0, { 0x00, 0xff } },
		{ 256, 0, { 0x01, 0x00 } },
		{ 1452, 0, { 0x05, 0xac } },
		{ 65535, 0, { 0xff, 0xff } },
		{ 65536, -EMSGSIZE, { 0xaa, 0xaa } },
		{ WIRE_MAX_MESSAGE, -EMSGSIZE, { 0xaa, 0xaa } },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t out[2] = { 0xaa, 0xaa };
		cr_expect_eq(tcp_frame_header_put(out, cases[i].len), cases[i].rc, "len %zu", cases[i].len);
		cr_expect_eq(out[0], cases[i].out[0], "len %zu: byte 0 %#x", cases[i].len, out[0]);
		cr_expect_eq(out[1], cases[i].out[1], "len %zu: byte 1 %#x", cases[i].len, out[1]);
	}
}

Test(tcp_frame, sizes)
{
	cr_expect_eq(TCP_FRAME_HEADER_LEN, 2);
	cr_expect_eq(TCP_FRAME_MAX, 65535);
	cr_expect_eq(TCP_FRAME_MAX_PACKET, 65503);
	cr_expect_eq(sizeof(((struct tcp_frame_decoder *)0)->buf), 65537);
	/* Every handshake message fits the pre-authentication limit. */
	cr_expect_leq(WIRE_RESPONSE_LEN, WIRE_INITIATION_LEN);
	cr_expect_leq(WIRE_COOKIE_REPLY_LEN, WIRE_INITIATION_LEN);
}

/*
 * Differential: random frame lengths, random chunking, against the naive
 * reference (the list of lengths that built the stream).  xorshift with a
 * fixed seed, so a failure reproduces.
 */
static uint32_t xs_next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

Test(tcp_frame, random_chunks_match_reference)
{
	struct tcp_frame_decoder *dec = malloc(sizeof(*dec));
	uint32_t x = 0x5a17u;

	cr_assert_not_null(dec);
	for (int round = 0; round < 200; round++) {
		size_t lens[MAXF], n = 1 + xs_next(&x) % MAXF, total;
		for (size_t i = 0; i < n; i++)
			lens[i] = 1 + (xs_next(&x) % 4 == 0 ? xs_next(&x) % 65535 : xs_next(&x) % 1500);
		uint8_t *s = stream_build(lens, n, NULL, 0, &total);
		size_t plan[4] = { 1 + xs_next(&x) % 3000, 1 + xs_next(&x) % 7, 1 + xs_next(&x) % 70000, 0 };
		struct decode_outcome o;

		tcp_frame_decoder_init(dec, TCP_FRAME_MAX);
		stream_decode(dec, s, total, plan, &o);
		cr_assert_eq(o.nframes, n, "round %d: %zu frames of %zu", round, o.nframes, n);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(o.lens[i], lens[i], "round %d frame %zu", round, i);
		cr_assert(o.frames_ok, "round %d: contents", round);
		cr_assert_eq(o.last, TCP_FRAME_MORE);
		cr_assert_eq(o.consumed, total);
		cr_assert_eq(dec->have, 0, "round %d: nothing left over", round);
		free(s);
	}
	free(dec);
}

/* ==================================================================== */
/*
 * Loop tests of the TCP transport (transport_tcp.c) on loopback: a real
 * daemon loop with one listener, plain client sockets, and sessions made
 * by hand (no device, no handshake): hostile frames, the caps, the
 * handshake deadline, binding and replacement, the bounded write queue and
 * the redial backoff.  Every test ends by closing every handle and
 * asserting that the loop closes cleanly.
 */
struct fx {
	struct daemon *d;
	uint16_t port;
	struct conf_session cs_tcp, cs_udp;
};

static void fx_init(struct fx *f, unsigned time_scale)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	cr_assert_geq(sodium_init(), 0);
	log_init("test", LOG_SINK_STDERR, LOG_LEVEL_ERROR);
	memset(f, 0, sizeof(*f));
	f->d = calloc(1, sizeof(*f->d));
	cr_assert_not_null(f->d);
	f->d->time_scale = time_scale;
	cr_assert_eq(uv_loop_init(&f->d->loop), 0);
	f->d->index_buckets = calloc(64, sizeof(*f->d->index_buckets));
	f->d->index_mask = 63;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(udp_sock_open(&f->d->socks[0], f->d, (struct sockaddr *)&a, true), 0);
	f->d->nsocks = 1;
	f->port = ntohs(((struct sockaddr_in *)&f->d->socks[0].local)->sin_port);
	cr_assert_eq(tcp_transport_open(f->d), 0);
	cr_assert_eq(f->d->tcp.nlisteners, 1, "a TCP listener beside the UDP socket");
	f->cs_tcp.transport = CONF_TRANSPORT_TCP;
	f->cs_udp.transport = CONF_TRANSPORT_UDP;
}

static void fx_session(struct fx *f, struct session *s, const struct conf_session *cs,
		       const char *name)
{
	memset(s, 0, sizeof(*s));
	s->d = f->d;
	s->cs = cs;
	snprintf(s->name, sizeof(s->name), "%s", name);
}

static void fx_free(struct fx *f)
{
	tcp_transport_close(f->d);
	uv_run(&f->d->loop, UV_RUN_DEFAULT);
	udp_sock_close(&f->d->socks[0]);
	cr_expect_eq(uv_loop_close(&f->d->loop), 0, "a handle was left open");
	free(f->d->index_buckets);
	free(f->d);
}

/* Run the loop (without blocking) for up to ms, or until *done. */
static void fx_run(struct fx *f, unsigned ms, bool (*done)(struct fx *, void *), void *arg)
{
	uint64_t end = util_now_ms() + ms;

	while (util_now_ms() < end) {
		uv_run(&f->d->loop, UV_RUN_NOWAIT);
		if (done != NULL && done(f, arg))
			return;
		usleep(1000);
	}
}

/* A client connection from 127.0.0.SRC (connect completes in the kernel
 * backlog before the daemon accepts). */
static int fx_connect(struct fx *f, uint8_t src)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(f->port) };
	struct sockaddr_in from = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	from.sin_addr.s_addr = htonl(0x7f000000u | src);
	cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* True once the daemon closed `fd`'s connection (EOF or reset). */
static bool fd_closed(int fd)
{
	uint8_t b[256];
	ssize_t n;

	while ((n = recv(fd, b, sizeof(b), 0)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static bool done_closed(struct fx *f, void *arg)
{
	return fd_closed(*(int *)arg);
}

static bool done_accepted(struct fx *f, void *arg)
{
	const struct tcp_stats *st = &f->d->tcp.st;
	return st->accepted + st->refused_cap_total + st->refused_cap_source >= *(uint64_t *)arg;
}

static const struct hostile_case {
	char name[32];
	uint8_t bytes[160];
	size_t len;
	/* counters expected to have moved by exactly one */
	bool bad_frame, refused, bad_header, bad_mac1, unknown_index;
} hostile_cases[] = {
	{ "length 0", { 0x00, 0x00 }, 2, true, false, false, false, false },
	{ "length 65535", { 0xff, 0xff, 0x04 }, 3, true, false, false, false, false },
	{ "length 153 (above an initiation)", { 0x00, 0x99 }, 2, true, false, false, false, false },
	{ "HTTP", "GET / HTTP/1.1\r\n\r\n", 18, true, false, false, false, false },
	{ "1-byte frame", { 0x00, 0x01, 0x04 }, 3, false, true, true, false, false },
	{ "bad header bytes", { 0x00, 0x04, 0x01, 0x01, 0x00, 0x00 }, 6, false, true, true, false, false },
	{ "forged initiation", { 0x00, 0x98, 0x01 }, 2 + 152, false, true, false, true, false },
	{ "forged response", { 0x00, 0x5c, 0x02 }, 2 + 92, false, true, false, true, false },
	{ "data before a handshake", { 0x00, 0x21, 0x04 }, 2 + 33, false, true, false, false, true },
};

/* Each hostile frame closes its own connection, counted under its reason;
 * an idle connection beside it stays. */
Test(tcp_transport, hostile_frames_close_only_their_connection)
{
	struct fx f;
	uint64_t one = 1;

	fx_init(&f, 1);
	int bystander = fx_connect(&f, 1);
	fx_run(&f, 1000, done_accepted, &one);
	cr_assert_eq(f.d->tcp.nunauth, 1);
	for (size_t i = 0; i < ARRAY_SIZE(hostile_cases); i++) {
		const struct hostile_case *c = &hostile_cases[i];
		struct tcp_stats st0 = f.d->tcp.st;
		struct daemon_stats ds0 = f.d->st;
		int fd = fx_connect(&f, 2);

		cr_assert_eq(send(fd, c->bytes, c->len, 0), (ssize_t)c->len);
		fx_run(&f, 2000, done_closed, &fd);
		cr_expect(fd_closed(fd), "%s: connection left open", c->name);
		cr_expect_eq(f.d->tcp.st.bad_frames - st0.bad_frames, c->bad_frame, "%s", c->name);
		cr_expect_eq(f.d->tcp.st.refused_frames - st0.refused_frames, c->refused, "%s", c->name);
		cr_expect_eq(f.d->st.bad_header - ds0.bad_header, c->bad_header, "%s", c->name);
		cr_expect_eq(f.d->st.bad_mac1 - ds0.bad_mac1, c->bad_mac1, "%s", c->name);
		cr_expect_eq(f.d->st.unknown_index - ds0.unknown_index, c->unknown_index, "%s", c->name);
		cr_expect_eq(f.d->tcp.nunauth, 1, "%s: the bystander must stay", c->name);
		cr_expect_not(fd_closed(bystander), "%s: bystander closed", c->name);
		close(fd);
	}
	close(bystander);
	fx_free(&f);
}

/* 8 unauthenticated connections per source address, 128 in all; the one
 * over a cap is closed at once and counted. */
Test(tcp_transport, unauthenticated_caps)
{
	struct fx f;
	int fds[TCP_UNAUTH_MAX + 2];
	unsigned n = 0;
	uint64_t want;

	fx_init(&f, 1);
	for (int i = 0; i < TCP_UNAUTH_PER_SOURCE + 1; i++)
		fds[n++] = fx_connect(&f, 1);
	want = n;
	fx_run(&f, 2000, done_accepted, &want);
	cr_expect_eq(f.d->tcp.nunauth, TCP_UNAUTH_PER_SOURCE);
	cr_expect_eq(f.d->tcp.st.refused_cap_source, 1);
	cr_expect_eq(f.d->tcp.st.refused_cap_total, 0);
	fx_run(&f, 2000, done_closed, &fds[n - 1]);
	cr_expect(fd_closed(fds[n - 1]), "the 9th from one address is closed");
	cr_expect_not(fd_closed(fds[0]));
	/* 15 more addresses with 8 each: 128 in all; then one more anywhere. */
	for (uint8_t src = 2; src <= 16; src++)
		for (int i = 0; i < TCP_UNAUTH_PER_SOURCE; i++)
			fds[n++] = fx_connect(&f, src);
	fds[n++] = fx_connect(&f, 200);
	want = n;
	fx_run(&f, 3000, done_accepted, &want);
	cr_expect_eq(f.d->tcp.nunauth, TCP_UNAUTH_MAX);
	cr_expect_eq(f.d->tcp.st.refused_cap_total, 1);
	cr_expect_eq(f.d->tcp.st.refused_cap_source, 1);
	cr_expect_eq(f.d->tcp.st.accepted, TCP_UNAUTH_MAX);
	fx_run(&f, 2000, done_closed, &fds[n - 1]);
	cr_expect(fd_closed(fds[n - 1]), "the 129th is closed");
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	fx_free(&f);
}

/* No handshake in time: closed.  (time_scale 1000: 5 s / 1000, floored at 500 ms.) */
Test(tcp_transport, handshake_deadline)
{
	struct fx f;
	uint64_t t0;

	fx_init(&f, 1000);
	int fd = fx_connect(&f, 1);
	t0 = util_now_ms();
	/* Half an initiation, then nothing. */
	cr_assert_eq(send(fd, "\x00\x98\x01\x00", 4, 0), 4);
	fx_run(&f, 3000, done_closed, &fd);
	uint64_t took = util_now_ms() - t0;
	cr_expect(fd_closed(fd));
	cr_expect_eq(f.d->tcp.st.handshake_timeouts, 1);
	cr_expect_geq(took, 450, "closed after %llu ms", (unsigned long long)took);
	cr_expect_lt(took, 1500, "closed after %llu ms", (unsigned long long)took);
	cr_expect_eq(f.d->tcp.nunauth, 0);
	close(fd);
	fx_free(&f);
}

/* The daemon's connection whose peer is client socket `fd`. */
static struct tcp_conn *fx_conn_of(struct fx *f, int fd)
{
	struct sockaddr_in me;
	socklen_t len = sizeof(me);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&me, &len), 0);
	for (struct tcp_conn *c = f->d->tcp.conns; c != NULL; c = tcp_conn_next(c))
		if (util_sockaddr_equal(tcp_conn_peer(c), (struct sockaddr *)&me))
			return c;
	cr_assert_fail("no connection for fd %d", fd);
	return NULL;
}

/* Which connection may carry what for whom, and binding: a newly bound
 * connection replaces the old one; an unbound one displaces nothing. */
Test(tcp_transport, bind_and_replace)
{
	struct fx f;
	struct session s, other, u;
	uint64_t want = 3;

	fx_init(&f, 1);
	fx_session(&f, &s, &f.cs_tcp, "s");
	fx_session(&f, &other, &f.cs_tcp, "other");
	fx_session(&f, &u, &f.cs_udp, "u");
	int fd1 = fx_connect(&f, 1), fd2 = fx_connect(&f, 1), fd3 = fx_connect(&f, 1);
	fx_run(&f, 2000, done_accepted, &want);
	cr_assert_eq(f.d->tcp.nunauth, 3);
	struct tcp_conn *c1 = fx_conn_of(&f, fd1), *c2 = fx_conn_of(&f, fd2), *c3 = fx_conn_of(&f, fd3);

	cr_expect_not(tcp_session_active(&u), "udp session without a connection: UDP");
	cr_expect(tcp_session_active(&s), "tcp session: never UDP");
	s.redial_backoff_ms = 8000;
	tcp_conn_bind(c1, &s);
	cr_expect_eq(s.conn, c1);
	cr_expect(tcp_conn_verified(c1));
	cr_expect_eq(s.redial_backoff_ms, 0, "a completed handshake resets the backoff");
	cr_expect_eq(f.d->tcp.nunauth, 2);

	const struct {
		const struct tcp_conn *c;
		const struct session *s;
		int type;
		bool want;
	} cases[] = {
		{ NULL, &s, WIRE_INITIATION, false },   /* tcp session: never over UDP */
		{ NULL, &s, WIRE_DATA, false },
		{ NULL, &u, WIRE_INITIATION, true },    /* udp session: over UDP ... */
		{ c3, &u, WIRE_INITIATION, true },      /* ... and over TCP */
		{ c3, &s, WIRE_INITIATION, true },      /* unbound: an initiation only */
		{ c3, &s, WIRE_DATA, false },
		{ c3, &s, WIRE_RESPONSE, false },       /* s did not dial it */
		{ c3, &s, WIRE_COOKIE_REPLY, false },
		{ c3, NULL, WIRE_DATA, false },         /* unknown index, unbound: refused */
		{ c1, &s, WIRE_DATA, true },            /* bound: anything of its session */
		{ c1, &s, WIRE_RESPONSE, true },
		{ c1, &s, WIRE_INITIATION, true },
		{ c1, &other, WIRE_INITIATION, false }, /* ... and nothing of another */
		{ c1, &other, WIRE_DATA, false },
		{ c1, NULL, WIRE_DATA, true },          /* unknown index, bound: a rekey race */
		{ NULL, NULL, WIRE_DATA, true },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		cr_expect_eq(tcp_conn_may_carry(cases[i].c, cases[i].s, cases[i].type), cases[i].want,
			     "case %zu", i);

	/* A newer authenticated connection replaces c1, which is closed. */
	tcp_conn_bind(c2, &s);
	cr_expect_eq(s.conn, c2);
	fx_run(&f, 2000, done_closed, &fd1);
	cr_expect(fd_closed(fd1), "the replaced connection is closed");
	cr_expect_not(fd_closed(fd2));
	cr_expect_not(fd_closed(fd3), "the unbound one stays until its deadline");
	cr_expect_eq(s.conn, c2, "an unbound connection displaces nothing");
	/* A handshake over UDP hands the session back to UDP. */
	tcp_conn_bind(c3, &u);
	cr_expect(tcp_session_active(&u));
	tcp_session_unbind(&u);
	cr_expect_null(u.conn);
	cr_expect_not(tcp_session_active(&u));
	fx_run(&f, 2000, done_closed, &fd3);
	cr_expect(fd_closed(fd3));
	tcp_session_stop(&s);
	cr_expect_null(s.conn);
	close(fd1);
	close(fd2);
	close(fd3);
	fx_free(&f);
}

struct reader {
	int fd;
	struct tcp_frame_decoder *dec;
	size_t nframes, want;
	size_t lens[600];
	uint8_t first[600];
	bool ok;
};

/* Read and deframe everything the daemon sent so far. */
static bool done_read(struct fx *f, void *arg)
{
	struct reader *r = arg;
	static uint8_t buf[1 << 16];
	ssize_t n;

	while ((n = recv(r->fd, buf, sizeof(buf), 0)) > 0) {
		uint8_t *in = buf, *msg;
		size_t inlen = (size_t)n, len;
		enum tcp_frame_result res;
		while ((res = tcp_frame_decode(r->dec, &in, &inlen, &msg, &len)) == TCP_FRAME_READY) {
			if (r->nframes < ARRAY_SIZE(r->lens)) {
				r->lens[r->nframes] = len;
				r->first[r->nframes] = msg[1];
				/* every byte after the first two is the frame's number */
				for (size_t j = 2; j < len; j++)
					if (msg[j] != (uint8_t)msg[1])
						r->ok = false;
			}
			r->nframes++;
		}
		if (res != TCP_FRAME_MORE)
			r->ok = false;
	}
	return r->nframes >= r->want;
}

static void send_frames(struct session *s, uint8_t type, size_t len, unsigned count, unsigned *seq)
{
	static uint8_t msg[65536];
	for (unsigned i = 0; i < count; i++, (*seq)++) {
		memset(msg, (uint8_t)*seq, len);
		msg[0] = type;
		tcp_session_send(s, msg, len);
	}
}

/* The write queue holds at most 256 data frames (or 256 KiB); beyond that
 * whole frames are dropped and counted, handshake frames have a reserve of
 * 4, and what does go out is whole frames in order. */
Test(tcp_transport, write_queue_is_bounded)
{
	struct fx f;
	struct session s, lonely;
	struct reader r = { .ok = true };
	uint64_t want = 1;
	unsigned seq = 0;

	fx_init(&f, 1);
	fx_session(&f, &s, &f.cs_tcp, "s");
	fx_session(&f, &lonely, &f.cs_tcp, "lonely");
	r.dec = malloc(sizeof(*r.dec));
	cr_assert_not_null(r.dec);
	tcp_frame_decoder_init(r.dec, TCP_FRAME_MAX);
	r.fd = fx_connect(&f, 1);
	fx_run(&f, 2000, done_accepted, &want);
	tcp_conn_bind(fx_conn_of(&f, r.fd), &s);

	/* The loop does not run: the first frame is in the kernel, the rest
	 * wait in the ring. */
	send_frames(&s, WIRE_DATA, 1000, 300, &seq);
	cr_expect_eq(s.st.drops[DROP_QUEUE_FULL], 300 - TCP_WQ_MAX_FRAMES);
	send_frames(&s, WIRE_RESPONSE, WIRE_RESPONSE_LEN, TCP_WQ_HANDSHAKE_FRAMES + 1, &seq);
	cr_expect_eq(s.st.drops[DROP_QUEUE_FULL], 300 - TCP_WQ_MAX_FRAMES + 1);
	r.want = TCP_WQ_MAX_FRAMES + TCP_WQ_HANDSHAKE_FRAMES;
	fx_run(&f, 5000, done_read, &r);
	cr_assert_eq(r.nframes, r.want);
	cr_expect(r.ok, "frames arrived whole and unaltered");
	for (size_t i = 0; i < r.nframes; i++) {
		bool hs = i >= TCP_WQ_MAX_FRAMES;
		/* frames 0..255 are data 0..255, then handshakes 300..303 */
		cr_expect_eq(r.lens[i], hs ? (size_t)WIRE_RESPONSE_LEN : 1000, "frame %zu", i);
		cr_expect_eq(r.first[i], (uint8_t)(hs ? 300 + i - TCP_WQ_MAX_FRAMES : i), "frame %zu", i);
	}
	/* Let the write callback empty the ring, then fill it by bytes. */
	fx_run(&f, 200, NULL, NULL);
	send_frames(&s, WIRE_DATA, 60000, 6, &seq);
	cr_expect_eq(s.st.drops[DROP_QUEUE_FULL], 300 - TCP_WQ_MAX_FRAMES + 1 + 2,
		     "4 frames of 60002 bytes fit in 256 KiB, not 5");
	r.want += 4;
	fx_run(&f, 5000, done_read, &r);
	cr_expect_eq(r.nframes, r.want);
	cr_expect(r.ok);
	cr_expect_eq(r.lens[r.nframes - 1], 60000);
	/* What cannot be framed, or has nowhere to go. */
	send_frames(&s, WIRE_DATA, 65536, 1, &seq);
	cr_expect_eq(s.st.drops[DROP_TOO_BIG], 1);
	send_frames(&lonely, WIRE_DATA, 100, 1, &seq);
	send_frames(&lonely, WIRE_INITIATION, WIRE_INITIATION_LEN, 1, &seq);
	cr_expect_eq(lonely.st.drops[DROP_NO_ENDPOINT], 2);
	tcp_session_stop(&s);
	close(r.fd);
	free(r.dec);
	fx_free(&f);
}

static bool done_dials(struct fx *f, void *arg)
{
	return f->d->tcp.st.dial_failures >= *(uint64_t *)arg;
}

/* A dialer whose peer refuses: reconnects with a backoff that doubles from
 * 1 s to at most 60 s (time_scale 1000 makes that 1 ms to 60 ms). */
Test(tcp_transport, redial_backoff)
{
	struct fx f;
	struct session s;
	struct sockaddr_in *ep = (struct sockaddr_in *)&f.cs_tcp.endpoint.addr;
	uint64_t want = 9;

	fx_init(&f, 1000);
	/* A port where nothing listens: the kernel refuses at once. */
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	cr_assert_eq(bind(probe, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(probe, (struct sockaddr *)&a, &alen), 0);
	close(probe);
	f.cs_tcp.has_endpoint = true;
	f.cs_tcp.endpoint.is_literal = true;
	memcpy(ep, &a, sizeof(a));
	fx_session(&f, &s, &f.cs_tcp, "dialer");

	uint64_t t0 = util_now_ms(), three = 3;
	tcp_session_start(&s);
	cr_expect_eq(f.d->tcp.st.dials, 1, "dials at once");
	fx_run(&f, 5000, done_dials, &three);
	/* The next attempt is 8 ms away: the loop stops before it. */
	cr_expect_eq(f.d->tcp.st.dial_failures, 3);
	cr_expect_eq(s.redial_backoff_ms, 8000, "1 s, 2 s, 4 s, then 8 s");
	fx_run(&f, 5000, done_dials, &want);
	uint64_t took = util_now_ms() - t0;
	uint64_t fails = f.d->tcp.st.dial_failures;
	cr_expect_geq(fails, want);
	/* Each failure doubled the backoff once, from 1000 ms, capped at 60 s. */
	uint64_t expect = fails >= 6 ? TCP_REDIAL_MAX_MS : TCP_REDIAL_MIN_MS << fails;
	cr_expect_eq(s.redial_backoff_ms, expect, "%llu failures: backoff %llu",
		     (unsigned long long)fails, (unsigned long long)s.redial_backoff_ms);
	/* Delays (scaled) 1+2+4+8+16+32+60+60 ms = 183 ms before the 9th. */
	cr_expect_geq(took, 183, "9 attempts took only %llu ms", (unsigned long long)took);
	cr_expect_eq(f.d->tcp.st.dials, fails + (s.dial != NULL), "one dial per attempt");
	tcp_session_stop(&s);
	uint64_t dials = f.d->tcp.st.dials;
	fx_run(&f, 200, NULL, NULL);
	cr_expect_eq(f.d->tcp.st.dials, dials, "a stopped session does not redial");
	fx_free(&f);
}

static bool done_dial_accepted(struct fx *f, void *arg)
{
	return f->d->tcp.st.accepted >= 1 && ((struct session *)arg)->dial != NULL;
}

static bool done_redialed(struct fx *f, void *arg)
{
	return f->d->tcp.st.dials >= 2;
}

/* A dialed connection: before it is bound it carries only its own
 * session's handshake messages; bound, it carries data; when it is lost the
 * dialer reconnects after the (reset) 1 s backoff. */
Test(tcp_transport, dialed_connection)
{
	struct fx f;
	struct session s, other;
	unsigned seq = 0;

	fx_init(&f, 1000);
	f.cs_tcp.has_endpoint = true;
	f.cs_tcp.endpoint.is_literal = true;
	/* Dial our own listener: its side sees what the dialer sends. */
	memcpy(&f.cs_tcp.endpoint.addr, &f.d->socks[0].local, sizeof(f.d->socks[0].local));
	fx_session(&f, &s, &f.cs_tcp, "dialer");
	fx_session(&f, &other, &f.cs_tcp, "other");
	tcp_session_start(&s);
	fx_run(&f, 2000, done_dial_accepted, &s);
	cr_assert_not_null(s.dial);
	cr_assert_null(s.conn);
	cr_expect_eq(f.d->tcp.nunauth, 1, "the accepted end counts, the dialed end does not");

	const struct {
		const struct session *s;
		int type;
		bool want;
	} cases[] = {
		{ &s, WIRE_RESPONSE, true }, { &s, WIRE_COOKIE_REPLY, true },
		{ &s, WIRE_INITIATION, true }, { &s, WIRE_DATA, false },
		{ &other, WIRE_RESPONSE, false }, { &other, WIRE_INITIATION, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		cr_expect_eq(tcp_conn_may_carry(s.dial, cases[i].s, cases[i].type), cases[i].want,
			     "case %zu", i);

	/* Unbound: data has nowhere to go; a handshake message uses the dial. */
	send_frames(&s, WIRE_DATA, 100, 1, &seq);
	cr_expect_eq(s.st.drops[DROP_NO_ENDPOINT], 1);
	/* A forged response (bad mac1) goes out on the dial, reaches the
	 * listening end, which closes its connection; the dialer (bound by
	 * then) sees it go and redials after ~1 s/1000. */
	uint8_t resp[WIRE_RESPONSE_LEN] = { WIRE_RESPONSE };
	tcp_session_send(&s, resp, sizeof(resp));
	cr_expect_eq(s.st.drops[DROP_NO_ENDPOINT], 1);
	tcp_conn_bind(s.dial, &s);
	cr_expect_eq(s.conn, s.dial);
	fx_run(&f, 3000, done_redialed, NULL);
	cr_expect_eq(f.d->st.bad_mac1, 1, "the listening end got the frame whole");
	cr_expect_eq(f.d->tcp.st.refused_frames, 1);
	cr_expect_eq(f.d->tcp.st.dials, 2, "redialed");
	cr_expect_eq(s.redial_backoff_ms, 2000, "backoff reset by the bind: 1 s used, 2 s next");
	tcp_session_stop(&s);
	fx_free(&f);
}
