/*
 * Offload module: segmentation of TSO/USO super-packets and TCP coalescing.
 *
 * Packets are built here by an independent builder (ref_build) whose
 * checksums come from a naive RFC 1071 reference (ref_sum: big-endian words,
 * a byte at a time, over a pseudo-header laid out as bytes).  Every segment
 * the module yields must equal, byte for byte, the packet the builder makes
 * for that segment; coalescing segments back must give the super-packet the
 * kernel would have handed us, with the kernel's partial-checksum
 * convention.  Malformed inputs sit in buffers of their exact length, so
 * ASan (sanitizer build) catches any read past them.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "offload.h"

#define MAXPKT OFFLOAD_MAX_PACKET

enum { F_FIN = 0x01, F_SYN = 0x02, F_RST = 0x04, F_PSH = 0x08, F_ACK = 0x10, F_URG = 0x20,
       F_ECE = 0x40, F_CWR = 0x80 };
enum { TCP = 6, UDP = 17 };

/* ------------------------------------------------------------ reference */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* RFC 1071 the slow way: big-endian 16-bit words, odd byte padded. */
static uint16_t ref_sum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static size_t ip_hlen(const uint8_t *pkt)
{
	return (pkt[0] >> 4) == 4 ? (size_t)(pkt[0] & 15) * 4 : 40;
}

/* The pseudo-header sum (RFC 793 / RFC 8200 8.1) for an L4 length. */
static uint16_t ref_pseudo(const uint8_t *pkt, size_t l4len)
{
	uint8_t ph[40] = { 0 };

	if ((pkt[0] >> 4) == 4) {
		memcpy(ph, pkt + 12, 8);
		ph[9] = pkt[9];
		wr16(ph + 10, (uint32_t)l4len);
		return ref_sum(ph, 12, 0);
	}
	memcpy(ph, pkt + 8, 32);
	wr32(ph + 32, (uint32_t)l4len);
	ph[39] = pkt[6];
	return ref_sum(ph, 40, 0);
}

/* Folded sum over pseudo-header and L4 bytes: 0xffff when the L4 checksum
 * of the packet is right. */
static uint16_t ref_l4_sum(const uint8_t *pkt, size_t len)
{
	size_t ihl = ip_hlen(pkt);

	return ref_sum(pkt + ihl, len - ihl, ref_pseudo(pkt, len - ihl));
}

/* Recompute the IPv4 header and TCP/UDP checksums of a packet (full). */
static void ref_fix(uint8_t *pkt, size_t len)
{
	size_t ihl = ip_hlen(pkt);
	uint8_t proto = (pkt[0] >> 4) == 4 ? pkt[9] : pkt[6];
	size_t at = ihl + (proto == TCP ? 16 : 6);
	uint16_t c;

	if ((pkt[0] >> 4) == 4) {
		wr16(pkt + 10, 0);
		wr16(pkt + 10, (uint16_t)~ref_sum(pkt, ihl, 0));
	}
	wr16(pkt + at, 0);
	c = (uint16_t)~ref_l4_sum(pkt, len);
	wr16(pkt + at, proto == UDP && c == 0 ? 0xffff : c);
}

/* Payload byte at stream offset i: distinct enough to catch a shifted or
 * repeated copy, and sums to unequal checksums for different offsets. */
static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 8) * 13 + 3);
}

struct spec {
	int ipv;                /* 4 or 6 */
	int proto;              /* TCP or UDP */
	size_t payload;
	uint8_t flags;          /* TCP flags; 0 = ACK */
	size_t opts;            /* TCP option bytes, multiple of 4 */
	uint32_t seq;
	uint16_t id;
	size_t pat_off;         /* payload is pat(pat_off + i) */
	bool partial;           /* L4 checksum field = pseudo-header sum, as TSO hands it */
};

static const uint8_t v4_addrs[8] = { 198, 18, 0, 1, 198, 18, 0, 2 };
static const uint8_t v6_addrs[32] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
};

static size_t spec_hlen(const struct spec *s)
{
	return (s->ipv == 4 ? 20 : 40) + (s->proto == TCP ? 20 + s->opts : 8);
}

/* Build the packet `s` describes into p (large enough); its length. */
static size_t ref_build(uint8_t *p, const struct spec *s)
{
	size_t ihl = s->ipv == 4 ? 20 : 40, l4h = s->proto == TCP ? 20 + s->opts : 8;
	size_t len = ihl + l4h + s->payload;
	uint8_t *l4 = p + ihl;

	memset(p, 0, ihl + l4h);
	if (s->ipv == 4) {
		p[0] = 0x45;
		p[1] = 0x10;                    /* DSCP + ECT */
		wr16(p + 2, (uint32_t)len);
		wr16(p + 4, s->id);
		wr16(p + 6, 0x4000);            /* DF */
		p[8] = 64;
		p[9] = (uint8_t)s->proto;
		memcpy(p + 12, v4_addrs, 8);
		wr16(p + 10, (uint16_t)~ref_sum(p, 20, 0));
	} else {
		wr32(p, 0x60012345);            /* traffic class 0x00, flow label 0x12345 */
		wr16(p + 4, (uint32_t)(len - 40));
		p[6] = (uint8_t)s->proto;
		p[7] = 64;
		memcpy(p + 8, v6_addrs, 32);
	}
	wr16(l4, 40000);
	wr16(l4 + 2, 5201);
	if (s->proto == TCP) {
		wr32(l4 + 4, s->seq);
		wr32(l4 + 8, 0xa0b0c0d0);
		l4[12] = (uint8_t)((l4h / 4) << 4);
		l4[13] = s->flags ? s->flags : F_ACK;
		wr16(l4 + 14, 501);
		for (size_t i = 0; i < s->opts; i++)
			l4[20 + i] = 1;         /* NOP */
		if (s->opts >= 12) {            /* NOP NOP timestamps */
			l4[22] = 8;
			l4[23] = 10;
			wr32(l4 + 24, 0x11223344);
			wr32(l4 + 28, 0x55667788);
		}
	} else {
		wr16(l4 + 4, (uint32_t)(l4h + s->payload));
	}
	for (size_t i = 0; i < s->payload; i++)
		p[ihl + l4h + i] = pat(s->pat_off + i);
	ref_fix(p, len);
	if (s->partial)
		wr16(l4 + (s->proto == TCP ? 16 : 6), ref_pseudo(p, len - ihl));
	return len;
}

/* The virtio header the kernel hands with a TSO/USO super-packet. */
static struct offload_vnet_hdr ref_gso_hdr(const struct spec *s, uint16_t gso_size)
{
	struct offload_vnet_hdr h = {
		.flags = OFFLOAD_F_NEEDS_CSUM,
		.gso_type = s->proto == UDP ? OFFLOAD_GSO_UDP_L4
			    : s->ipv == 4   ? OFFLOAD_GSO_TCPV4
					    : OFFLOAD_GSO_TCPV6,
		.hdr_len = (uint16_t)spec_hlen(s),
		.gso_size = gso_size,
		.csum_start = s->ipv == 4 ? 20 : 40,
		.csum_offset = s->proto == TCP ? 16 : 6,
	};
	return h;
}

static uint8_t *xmalloc(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	cr_assert_not_null(p);
	return p;
}

/* A copy of p in a buffer of exactly len bytes (for ASan). */
static uint8_t *exact_copy(const uint8_t *p, size_t len)
{
	uint8_t *q = xmalloc(len);

	memcpy(q, p, len);
	return q;
}

/* ------------------------------------------------------------ checksums */

Test(offload_csum, rfc1071_example)
{
	/* RFC 1071 section 3: these bytes sum to ddf2 (big-endian words). */
	static const uint8_t b[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	uint16_t mem = offload_csum_fold(offload_csum_add(0, b, sizeof(b)));
	uint8_t out[2];

	memcpy(out, &mem, 2); /* memory order: the bytes as they go on the wire */
	cr_assert_eq(out[0], 0xdd);
	cr_assert_eq(out[1], 0xf2);
	cr_assert_eq(ref_sum(b, 8, 0), 0xddf2);
}

Test(offload_csum, against_reference)
{
	/* Lengths around every loop boundary (32, 8, 4, 2, 1 bytes), all-ones
	 * bytes (carries everywhere), and chaining over even-length chunks. */
	static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 31, 32, 33, 39, 40, 63, 64,
				       65, 1499, 1500, 65535 };
	uint8_t *buf = xmalloc(65535), *ones = xmalloc(65535);

	for (size_t i = 0; i < 65535; i++) {
		buf[i] = pat(i * 31 + 5);
		ones[i] = 0xff;
	}
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t n = lens[k];
		const uint8_t *srcs[2] = { buf, ones };

		for (int s = 0; s < 2; s++) {
			uint16_t mem = offload_csum_fold(offload_csum_add(0, srcs[s], n));
			uint8_t out[2];
			uint32_t chained = 0;
			size_t step = 6, off;

			memcpy(out, &mem, 2);
			cr_assert_eq(rd16(out), ref_sum(srcs[s], n, 0), "len %zu src %d", n, s);
			for (off = 0; off + step < n; off += step)
				chained = offload_csum_add(chained, srcs[s] + off, step);
			chained = offload_csum_add(chained, srcs[s] + off, n - off);
			cr_assert_eq(offload_csum_fold(chained), mem, "chained len %zu", n);
		}
	}
	/* The 32-bit partial sum keeps its end-around carry. */
	cr_assert_eq(offload_csum_fold(offload_csum_add(0xffffffffu, ones, 2)), 0xffff);
	cr_assert_eq(offload_csum_fold(0x0001fffeu), 0xffff);
	cr_assert_eq(offload_csum_fold(0x00010000u), 0x0001);
	cr_assert_eq(offload_csum_fold(0), 0);
	free(buf);
	free(ones);
}

/* --------------------------------------------------------- vnet header */

Test(offload_vnet, parse_write)
{
	struct offload_vnet_hdr h = { .flags = 1, .gso_type = 0x81, .hdr_len = 0x1234,
				      .gso_size = 1448, .csum_start = 40, .csum_offset = 16 };
	struct offload_vnet_hdr back;
	uint8_t b[OFFLOAD_VNET_HDR_LEN + 1];
	uint16_t v;

	memset(b, 0xee, sizeof(b));
	offload_vnet_hdr_write(b, &h);
	cr_assert_eq(b[0], 1);
	cr_assert_eq(b[1], 0x81);
	memcpy(&v, b + 4, 2); /* native endian, as the kernel's legacy tun header */
	cr_assert_eq(v, 1448);
	cr_assert_eq(b[OFFLOAD_VNET_HDR_LEN], 0xee, "writes exactly 10 bytes");
	cr_assert(offload_vnet_hdr_parse(&back, b, OFFLOAD_VNET_HDR_LEN));
	cr_assert_eq(back.flags, 1);
	cr_assert_eq(back.gso_type, 0x81);
	cr_assert_eq(back.hdr_len, 0x1234);
	cr_assert_eq(back.gso_size, 1448);
	cr_assert_eq(back.csum_start, 40);
	cr_assert_eq(back.csum_offset, 16);
	for (size_t n = 0; n < OFFLOAD_VNET_HDR_LEN; n++) {
		uint8_t *q = exact_copy(b, n);
		cr_assert_not(offload_vnet_hdr_parse(&back, q, n), "len %zu", n);
		free(q);
	}
}

/* --------------------------------------------------------- segmentation */

struct seg_case {
	const char *name;
	struct spec s;          /* the super-packet */
	uint16_t gso;
	size_t nsegs;
	size_t last;            /* payload of the last segment */
};

static const struct seg_case seg_cases[] = {
	{ "tcp4 even", { 4, TCP, 14600, F_ACK, 0, 1000, 7, 0, true }, 1460, 10, 1460 },
	{ "tcp4 remainder 1", { 4, TCP, 14601, F_ACK | F_PSH, 0, 1000, 7, 0, true }, 1460, 11, 1 },
	{ "tcp4 fin psh cwr ts", { 4, TCP, 4000, F_ACK | F_PSH | F_FIN | F_CWR, 12, 0xfffff000u,
				  0xfffe, 0, true }, 1448, 3, 1104 },
	{ "tcp4 ece kept", { 4, TCP, 3000, F_ACK | F_ECE, 0, 5, 0, 0, true }, 1000, 3, 1000 },
	{ "tcp4 odd mss", { 4, TCP, 5012, F_ACK, 0, 77, 100, 0, true }, 1001, 6, 7 },
	{ "tcp4 64 segments", { 4, TCP, 6400, F_ACK, 0, 9, 1, 0, true }, 100, 64, 100 },
	{ "tcp4 one segment", { 4, TCP, 500, F_ACK | F_PSH, 0, 9, 1, 0, true }, 1460, 1, 500 },
	{ "tcp6 max", { 6, TCP, 65535 - 60, F_ACK | F_PSH, 0, 123456, 0, 0, true }, 1440, 46, 675 },
	{ "tcp6 ts", { 6, TCP, 2896, F_ACK, 12, 1, 0, 0, true }, 1428, 3, 40 },
	{ "udp4 even", { 4, UDP, 3000, 0, 0, 0, 42, 0, true }, 1000, 3, 1000 },
	{ "udp4 odd tail", { 4, UDP, 2999, 0, 0, 0, 42, 0, true }, 1000, 3, 999 },
	{ "udp6", { 6, UDP, 1401, 0, 0, 0, 0, 0, true }, 1400, 2, 1 },
	{ "udp6 big", { 6, UDP, 64000, 0, 0, 0, 0, 0, true }, 1452, 45, 112 },
};

/* The segment the kernel's own GSO would produce: index i of the case. */
static size_t ref_segment(uint8_t *p, const struct seg_case *c, size_t i)
{
	struct spec s = c->s;
	size_t off = i * c->gso;
	bool last = i + 1 == c->nsegs;

	s.payload = last ? c->s.payload - off : c->gso;
	s.seq = c->s.seq + (uint32_t)off;
	s.id = (uint16_t)(c->s.id + i);
	s.pat_off = off;
	s.partial = false;
	if (s.proto == TCP) {
		if (!last)
			s.flags &= (uint8_t)~(F_FIN | F_PSH);
		if (i > 0)
			s.flags &= (uint8_t)~F_CWR;
	}
	return ref_build(p, &s);
}

Test(offload_seg, super_packets)
{
	uint8_t *super = xmalloc(MAXPKT), *seg = xmalloc(MAXPKT), *want = xmalloc(MAXPKT);

	for (size_t k = 0; k < sizeof(seg_cases) / sizeof(seg_cases[0]); k++) {
		const struct seg_case *c = &seg_cases[k];
		struct offload_vnet_hdr h = ref_gso_hdr(&c->s, c->gso);
		size_t len = ref_build(super, &c->s), hlen = spec_hlen(&c->s), n = 0;
		struct offload_seg_iter it;
		ssize_t r;

		cr_assert(offload_seg_init(&it, &h, super, len), "%s: init", c->name);
		while ((r = offload_seg_next(&it, seg, MAXPKT)) > 0) {
			bool last = n + 1 == c->nsegs;
			size_t plen = last ? c->last : c->gso, wlen;
			uint8_t *l4 = seg + (c->s.ipv == 4 ? 20 : 40);

			cr_assert_lt(n, c->nsegs, "%s: too many segments", c->name);
			cr_assert_eq((size_t)r, hlen + plen, "%s: seg %zu length", c->name, n);
			/* Independent checks of what matters most... */
			cr_assert_eq(ref_l4_sum(seg, (size_t)r), 0xffff, "%s: seg %zu L4 csum", c->name, n);
			if (c->s.ipv == 4) {
				cr_assert_eq(rd16(seg + 2), r, "%s: seg %zu tot_len", c->name, n);
				cr_assert_eq(rd16(seg + 4), (uint16_t)(c->s.id + n), "%s: id", c->name);
				cr_assert_eq(ref_sum(seg, 20, 0), 0xffff, "%s: seg %zu ip csum", c->name, n);
			} else {
				cr_assert_eq(rd16(seg + 4), r - 40, "%s: seg %zu payload len", c->name, n);
			}
			if (c->s.proto == TCP) {
				uint8_t f = c->s.flags;
				if (!last)
					f &= (uint8_t)~(F_FIN | F_PSH);
				if (n > 0)
					f &= (uint8_t)~F_CWR;
				cr_assert_eq(rd32(l4 + 4), c->s.seq + (uint32_t)(n * c->gso),
					     "%s: seg %zu seq", c->name, n);
				cr_assert_eq(l4[13], f, "%s: seg %zu flags", c->name, n);
			} else {
				cr_assert_eq(rd16(l4 + 4), 8 + plen, "%s: seg %zu udp len", c->name, n);
				cr_assert_neq(rd16(l4 + 6), 0, "%s: udp csum present", c->name);
			}
			/* ...and the whole segment, byte for byte. */
			wlen = ref_segment(want, c, n);
			cr_assert_eq(wlen, (size_t)r);
			cr_assert(memcmp(seg, want, wlen) == 0, "%s: seg %zu bytes", c->name, n);
			n++;
		}
		cr_assert_eq(r, 0, "%s: end", c->name);
		cr_assert_eq(n, c->nsegs, "%s: segment count", c->name);
		cr_assert_eq(offload_seg_next(&it, seg, MAXPKT), 0, "%s: stays done", c->name);
	}
	free(super);
	free(seg);
	free(want);
}

Test(offload_seg, without_needs_csum_flag)
{
	/* The segments get full checksums whatever the field held. */
	struct spec s = { 4, TCP, 3000, F_ACK, 0, 1, 1, 0, true };
	struct offload_vnet_hdr h = ref_gso_hdr(&s, 1000);
	uint8_t *super = xmalloc(MAXPKT), *seg = xmalloc(MAXPKT);
	size_t len = ref_build(super, &s), n = 0;
	struct offload_seg_iter it;
	ssize_t r;

	h.flags = 0;
	h.csum_start = h.csum_offset = 0xffff; /* ignored without the flag */
	h.hdr_len = 9999;                      /* never trusted */
	wr16(super + 20 + 16, 0xbeef);
	cr_assert(offload_seg_init(&it, &h, super, len));
	while ((r = offload_seg_next(&it, seg, MAXPKT)) > 0) {
		cr_assert_eq(r, 40 + 1000);
		cr_assert_eq(ref_l4_sum(seg, (size_t)r), 0xffff);
		n++;
	}
	cr_assert_eq(n, 3);
	free(super);
	free(seg);
}

Test(offload_seg, cap_too_small)
{
	struct spec s = { 6, TCP, 2500, F_ACK, 0, 1, 0, 0, true };
	struct offload_vnet_hdr h = ref_gso_hdr(&s, 1200);
	uint8_t *super = xmalloc(MAXPKT), *seg = xmalloc(MAXPKT);
	size_t len = ref_build(super, &s);
	struct offload_seg_iter it;

	cr_assert(offload_seg_init(&it, &h, super, len));
	cr_assert_eq(offload_seg_next(&it, seg, 60 + 1199), -EMSGSIZE);
	/* Not moved: the retry yields the first segment. */
	cr_assert_eq(offload_seg_next(&it, seg, 60 + 1200), 60 + 1200);
	cr_assert_eq(rd32(seg + 44), 1);
	cr_assert_eq(offload_seg_next(&it, seg, 60 + 1200), 60 + 1200);
	cr_assert_eq(rd32(seg + 44), 1201);
	/* The short last one fits a smaller buffer. */
	cr_assert_eq(offload_seg_next(&it, seg, 59 + 100), -EMSGSIZE);
	cr_assert_eq(offload_seg_next(&it, seg, 60 + 100), 60 + 100);
	cr_assert_eq(offload_seg_next(&it, seg, 0), 0);

	/* GSO NONE too. */
	h.gso_type = OFFLOAD_GSO_NONE;
	h.flags = 0;
	cr_assert(offload_seg_init(&it, &h, super, len));
	cr_assert_eq(offload_seg_next(&it, seg, len - 1), -EMSGSIZE);
	cr_assert_eq(offload_seg_next(&it, seg, len), (ssize_t)len);
	free(super);
	free(seg);
}

/* ------------------------------------------------------------- GSO NONE */

Test(offload_seg, none_copies_any_packet)
{
	/* Not even IP: without NEEDS_CSUM nothing is parsed. */
	uint8_t pkt[77];
	struct offload_vnet_hdr h = { 0 };
	struct offload_seg_iter it;
	uint8_t out[100];

	for (size_t i = 0; i < sizeof(pkt); i++)
		pkt[i] = pat(i);
	cr_assert(offload_seg_init(&it, &h, pkt, sizeof(pkt)));
	cr_assert_eq(offload_seg_next(&it, out, sizeof(out)), 77);
	cr_assert(memcmp(out, pkt, 77) == 0);
	cr_assert_eq(offload_seg_next(&it, out, sizeof(out)), 0);
	h.flags = OFFLOAD_F_DATA_VALID;
	cr_assert(offload_seg_init(&it, &h, pkt, sizeof(pkt)));
	cr_assert_eq(offload_seg_next(&it, out, sizeof(out)), 77);
	cr_assert_not(offload_seg_init(&it, &h, pkt, 0), "empty");
}

Test(offload_seg, none_completes_checksum)
{
	static const struct spec specs[] = {
		{ 4, TCP, 1000, F_ACK | F_PSH, 12, 5, 5, 0, true },
		{ 6, TCP, 1, F_ACK, 0, 5, 0, 0, true },
		{ 4, UDP, 333, 0, 0, 0, 9, 0, true },
		{ 6, UDP, 1400, 0, 0, 0, 0, 0, true },
	};
	uint8_t *pkt = xmalloc(MAXPKT), *want = xmalloc(MAXPKT), *out = xmalloc(MAXPKT);

	for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
		struct spec full = specs[k];
		struct offload_vnet_hdr h = ref_gso_hdr(&specs[k], 0);
		struct offload_seg_iter it;
		size_t len = ref_build(pkt, &specs[k]);

		full.partial = false;
		ref_build(want, &full);
		h.gso_type = OFFLOAD_GSO_NONE;
		cr_assert(offload_seg_init(&it, &h, pkt, len), "case %zu", k);
		cr_assert_eq(offload_seg_next(&it, out, MAXPKT), (ssize_t)len, "case %zu", k);
		cr_assert(memcmp(out, want, len) == 0, "case %zu bytes", k);
		cr_assert_eq(offload_seg_next(&it, out, MAXPKT), 0);
	}
	free(pkt);
	free(want);
	free(out);
}

Test(offload_seg, none_udp_zero_becomes_ffff)
{
	/* Choose the last payload word so the complement comes out 0: UDP
	 * must send 0xffff instead (0 means "no checksum"). */
	struct spec s = { 4, UDP, 100, 0, 0, 0, 1, 0, true };
	uint8_t pkt[128], out[128];
	size_t len = ref_build(pkt, &s);
	struct offload_vnet_hdr h = ref_gso_hdr(&s, 0);
	struct offload_seg_iter it;
	uint16_t rest;

	h.gso_type = OFFLOAD_GSO_NONE;
	wr16(pkt + len - 2, 0);
	wr16(pkt + 26, 0);
	rest = ref_l4_sum(pkt, len);
	wr16(pkt + len - 2, (uint16_t)(0xffff - rest));
	cr_assert_eq(ref_l4_sum(pkt, len), 0xffff); /* the complement would be 0 */
	wr16(pkt + 26, ref_pseudo(pkt, len - 20));
	cr_assert(offload_seg_init(&it, &h, pkt, len));
	cr_assert_eq(offload_seg_next(&it, out, sizeof(out)), (ssize_t)len);
	cr_assert_eq(rd16(out + 26), 0xffff);
	cr_assert_eq(ref_l4_sum(out, len), 0xffff);
}

Test(offload_seg, none_generic_offsets)
{
	/* Protocol-blind: the sum from csum_start (seed 0 in the field) lands
	 * at csum_offset, odd offsets included. */
	static const struct { uint16_t start, offset; size_t len; } cases[] = {
		{ 0, 0, 2 }, { 7, 5, 50 }, { 7, 4, 51 }, { 10, 20, 32 }, { 3, 1, 6 }, { 0, 48, 50 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint8_t pkt[64], out[64];
		struct offload_vnet_hdr h = { .flags = OFFLOAD_F_NEEDS_CSUM,
					      .csum_start = cases[k].start,
					      .csum_offset = cases[k].offset };
		struct offload_seg_iter it;
		size_t len = cases[k].len, at = (size_t)cases[k].start + cases[k].offset;

		for (size_t i = 0; i < len; i++)
			pkt[i] = pat(i + k);
		pkt[at] = pkt[at + 1] = 0;
		cr_assert(offload_seg_init(&it, &h, pkt, len), "case %zu", k);
		cr_assert_eq(offload_seg_next(&it, out, sizeof(out)), (ssize_t)len);
		cr_assert_eq(ref_sum(out + cases[k].start, len - cases[k].start, 0), 0xffff,
			     "case %zu", k);
		cr_assert(memcmp(out, pkt, at) == 0 && memcmp(out + at + 2, pkt + at + 2,
							       len - at - 2) == 0);
	}
}

/* ------------------------------------------------------ malformed input */

struct bad_case {
	const char *name;
	struct spec s;
	uint16_t gso;
	void (*mutate)(uint8_t *p, size_t *len, struct offload_vnet_hdr *h);
};

static void m_version(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[0] = (uint8_t)(0x50 | (p[0] & 15)); }
static void m_ihl_small(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[0] = 0x44; }
static void m_ihl_huge(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)h; p[0] = 0x4f; *len = 59; wr16(p + 2, 59); }
static void m_totlen_short(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)h; wr16(p + 2, (uint32_t)*len - 1); }
static void m_totlen_long(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)h; wr16(p + 2, (uint32_t)*len + 1); }
static void m_mf(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[6] |= 0x20; }
static void m_fragoff(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[7] = 1; }
static void m_proto4_udp(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[9] = UDP; }
static void m_proto4_icmp(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[9] = 1; }
static void m_nh6_hbh(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[6] = 0; }
static void m_plen6(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)h; wr16(p + 4, (uint32_t)*len - 39); }
static void m_gso_tcpv6(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = OFFLOAD_GSO_TCPV6; }
static void m_gso_tcpv4(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = OFFLOAD_GSO_TCPV4; }
static void m_gso_ufo(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = OFFLOAD_GSO_UDP; }
static void m_gso_2(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = 2; }
static void m_gso_6(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = 6; }
static void m_gso_udp_ecn(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = OFFLOAD_GSO_UDP_L4 | OFFLOAD_GSO_ECN; }
static void m_gso_none_ecn(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = OFFLOAD_GSO_ECN; }
static void m_gso_udp_on_tcp(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = OFFLOAD_GSO_UDP_L4; h->csum_offset = 6; }
static void m_doff_small(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[ip_hlen(p) + 12] = 0x40; }
static void m_doff_past(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)h; p[ip_hlen(p) + 12] = 0xf0; *len = ip_hlen(p) + 59; wr16(p + 2, (uint32_t)*len); }
static void m_syn(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[ip_hlen(p) + 13] |= F_SYN; }
static void m_rst(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[ip_hlen(p) + 13] |= F_RST; }
static void m_urg(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)len; (void)h; p[ip_hlen(p) + 13] |= F_URG; }
static void m_udplen(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)h; wr16(p + ip_hlen(p) + 4, (uint32_t)(*len - ip_hlen(p) - 1)); }
static void m_gso0(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_size = 0; }
static void m_segs65(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_size = 3; } /* 6400 / 3 = 2134 segments */
static void m_no_payload(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)h; *len = spec_hlen(&(struct spec){ 4, TCP, 0, 0, 0, 0, 0, 0, 0 }); wr16(p + 2, (uint32_t)*len); }
static void m_csum_start(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->csum_start += 4; }
static void m_csum_offset(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->csum_offset = 6; }
static void m_none_start_past(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; h->gso_type = 0; h->csum_start = (uint16_t)*len; h->csum_offset = 0; }
static void m_none_field_past(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; h->gso_type = 0; h->csum_start = (uint16_t)(*len - 10); h->csum_offset = 9; }
static void m_none_offset_huge(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = 0; h->csum_start = 20; h->csum_offset = 0xffff; }
static void m_none_start_huge(uint8_t *p, size_t *len, struct offload_vnet_hdr *h)
{ (void)p; (void)len; h->gso_type = 0; h->csum_start = 0xffff; h->csum_offset = 0xffff; }

#define T4 { 4, TCP, 6400, F_ACK, 0, 1, 1, 0, true }
#define T6 { 6, TCP, 6400, F_ACK, 0, 1, 1, 0, true }
#define U4 { 4, UDP, 6400, 0, 0, 0, 1, 0, true }
#define U6 { 6, UDP, 6400, 0, 0, 0, 1, 0, true }

static const struct bad_case bad_cases[] = {
	{ "ip version 5", T4, 1000, m_version },
	{ "ip version 5 (v6)", T6, 1000, m_version },
	{ "ihl 4", T4, 1000, m_ihl_small },
	{ "ihl past the packet", T4, 1000, m_ihl_huge },
	{ "tot_len short", T4, 1000, m_totlen_short },
	{ "tot_len long", T4, 1000, m_totlen_long },
	{ "more fragments", T4, 1000, m_mf },
	{ "fragment offset", T4, 1000, m_fragoff },
	{ "tcpv4 on udp", T4, 1000, m_proto4_udp },
	{ "tcpv4 on icmp", T4, 1000, m_proto4_icmp },
	{ "udp_l4 on icmp", U4, 1000, m_proto4_icmp },
	{ "v6 extension header", T6, 1000, m_nh6_hbh },
	{ "v6 udp extension header", U6, 1000, m_nh6_hbh },
	{ "v6 payload length", T6, 1000, m_plen6 },
	{ "tcpv6 on ipv4", T4, 1000, m_gso_tcpv6 },
	{ "tcpv4 on ipv6", T6, 1000, m_gso_tcpv4 },
	{ "ufo", U4, 1000, m_gso_ufo },
	{ "gso type 2", T4, 1000, m_gso_2 },
	{ "gso type 6", T6, 1000, m_gso_6 },
	{ "udp_l4 with ecn", U6, 1000, m_gso_udp_ecn },
	{ "none with ecn", T4, 1000, m_gso_none_ecn },
	{ "udp_l4 on tcp", T4, 1000, m_gso_udp_on_tcp },
	{ "tcp doff 4", T4, 1000, m_doff_small },
	{ "tcp doff past the packet", T4, 1000, m_doff_past },
	{ "tcp syn", T4, 1000, m_syn },
	{ "tcp rst", T6, 1000, m_rst },
	{ "tcp urg", T4, 1000, m_urg },
	{ "udp length", U4, 1000, m_udplen },
	{ "udp6 length", U6, 1000, m_udplen },
	{ "gso_size 0", T4, 1000, m_gso0 },
	{ "over 2048 segments", T4, 6400, m_segs65 },
	{ "over 2048 udp segments", U6, 6400, m_segs65 },
	{ "no payload", T4, 1000, m_no_payload },
	{ "csum_start not the l4 header", T4, 1000, m_csum_start },
	{ "csum_offset not tcp's", T6, 1000, m_csum_offset },
	{ "none: csum_start at the end", T4, 1000, m_none_start_past },
	{ "none: field past the end", T4, 1000, m_none_field_past },
	{ "none: csum_offset huge", T4, 1000, m_none_offset_huge },
	{ "none: csum_start huge", T6, 1000, m_none_start_huge },
};

Test(offload_seg, malformed_table)
{
	uint8_t *buf = xmalloc(MAXPKT);

	for (size_t k = 0; k < sizeof(bad_cases) / sizeof(bad_cases[0]); k++) {
		const struct bad_case *c = &bad_cases[k];
		struct offload_vnet_hdr h = ref_gso_hdr(&c->s, c->gso);
		size_t len = ref_build(buf, &c->s);
		struct offload_seg_iter it;
		uint8_t *exact;

		/* The unmutated packet is accepted: the row tests its mutation. */
		cr_assert(offload_seg_init(&it, &h, buf, len), "%s: control", c->name);
		c->mutate(buf, &len, &h);
		exact = exact_copy(buf, len);
		cr_assert_not(offload_seg_init(&it, &h, exact, len), "%s", c->name);
		cr_assert_eq(offload_seg_next(&it, buf, MAXPKT), 0, "%s: yields nothing", c->name);
		free(exact);
	}
	free(buf);
}

Test(offload_seg, limits_accepted)
{
	/* Just inside every bound that a row above steps outside. */
	struct spec s = T4;
	struct offload_vnet_hdr h = ref_gso_hdr(&s, 100);
	uint8_t *buf = xmalloc(MAXPKT);
	struct offload_seg_iter it;
	size_t len = ref_build(buf, &s);

	cr_assert(offload_seg_init(&it, &h, buf, len), "64 segments");
	/* A small MSS (MTU 576, a peer's tiny MSS) splits into many more. */
	h.gso_size = 4;
	cr_assert(offload_seg_init(&it, &h, buf, len), "1600 segments");
	{
		uint8_t seg[128];
		ssize_t r;
		unsigned n = 0;
		while ((r = offload_seg_next(&it, seg, sizeof(seg))) > 0) {
			cr_assert_eq(ref_l4_sum(seg, (size_t)r), 0xffff, "segment %u checksum", n);
			n++;
		}
		cr_assert_eq(r, 0);
		cr_assert_eq(n, 1600);
	}
	h.gso_size = 0xffff;
	cr_assert(offload_seg_init(&it, &h, buf, len), "one segment, huge gso_size");
	s.payload = 1;
	len = ref_build(buf, &s);
	h = ref_gso_hdr(&s, 1);
	cr_assert(offload_seg_init(&it, &h, buf, len), "1-byte payload");
	s = (struct spec){ 6, TCP, 65535 - 40 - 60, F_ACK, 40, 1, 0, 0, true };
	len = ref_build(buf, &s);
	cr_assert_eq(len, 65535);
	h = ref_gso_hdr(&s, 1100);
	cr_assert(offload_seg_init(&it, &h, buf, len), "65535 bytes, 40 option bytes");
	cr_assert_not(offload_seg_init(&it, &h, buf, 65536), "65536 bytes");
	free(buf);
}

Test(offload_seg, truncated)
{
	/* Every prefix of a super-packet, with its IP length fields left as
	 * they were (mismatch) or rewritten to match (short payload). */
	static const struct spec specs[] = { T4, T6, U4, U6,
		{ 4, TCP, 300, F_ACK, 12, 1, 1, 0, true } };
	uint8_t *buf = xmalloc(MAXPKT), *out = xmalloc(MAXPKT);

	for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
		struct offload_vnet_hdr h = ref_gso_hdr(&specs[k], 100);
		size_t full = ref_build(buf, &specs[k]), hlen = spec_hlen(&specs[k]);

		for (size_t len = 0; len < full && len < hlen + 300; len++) {
			struct offload_seg_iter it;
			uint8_t *p = exact_copy(buf, len);
			bool fixable = len >= (specs[k].ipv == 4 ? 4u : 6u);

			cr_assert_not(offload_seg_init(&it, &h, p, len), "spec %zu len %zu", k, len);
			if (fixable) {
				if (specs[k].ipv == 4)
					wr16(p + 2, (uint32_t)len);
				else
					wr16(p + 4, (uint32_t)(len - 40));
				if (specs[k].proto == UDP && len >= hlen)
					wr16(p + hlen - 4, (uint32_t)(len - hlen + 8));
			}
			bool ok = offload_seg_init(&it, &h, p, len);
			cr_assert_eq(ok, fixable && len > hlen, "spec %zu len %zu fixed", k, len);
			if (ok) {
				size_t got = 0;
				ssize_t r;
				while ((r = offload_seg_next(&it, out, MAXPKT)) > 0)
					got += (size_t)r - hlen;
				cr_assert_eq(got, len - hlen);
			}
			free(p);
		}
	}
	free(buf);
	free(out);
}

/* xorshift64*: a fixed sequence, so a failure reproduces. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

Test(offload_seg, garbage)
{
	static const uint8_t types[] = { 0, 1, 3, 4, 5, 0x81, 0x84, 2, 0xff };
	uint64_t st = 0x5a17u;
	uint8_t *out = xmalloc(MAXPKT);
	size_t accepted = 0;

	for (int n = 0; n < 20000; n++) {
		size_t len = rnd(&st) % 160;
		uint8_t *p = xmalloc(len);
		struct offload_vnet_hdr h = {
			.flags = (uint8_t)(rnd(&st) & 3),
			.gso_type = types[rnd(&st) % sizeof(types)],
			.hdr_len = (uint16_t)rnd(&st),
			.gso_size = (uint16_t)(rnd(&st) % 64),
			.csum_start = (uint16_t)(rnd(&st) % 64),
			.csum_offset = (uint16_t)(rnd(&st) % 20),
		};
		struct offload_seg_iter it;

		for (size_t i = 0; i < len; i++)
			p[i] = (uint8_t)rnd(&st);
		/* Steer half of them past the first checks. */
		if (len >= 40 && (rnd(&st) & 1)) {
			bool v6 = rnd(&st) & 1;
			uint8_t proto = (rnd(&st) & 1) ? TCP : UDP;
			size_t ihl = v6 ? 40 : 20;
			if (v6) {
				p[0] = 0x60;
				wr16(p + 4, (uint32_t)(len - 40));
				p[6] = proto;
			} else {
				p[0] = 0x45;
				wr16(p + 2, (uint32_t)len);
				p[6] = p[7] = 0;
				p[9] = proto;
			}
			h.csum_start = (uint16_t)ihl;
			h.csum_offset = proto == TCP ? 16 : 6;
			if (proto == UDP && len >= ihl + 8)
				wr16(p + ihl + 4, (uint32_t)(len - ihl));
			if (proto == TCP && len >= ihl + 20)
				p[ihl + 13] &= (uint8_t)~(F_SYN | F_RST | F_URG);
		}
		if (offload_seg_init(&it, &h, p, len)) {
			ssize_t r;
			size_t segs = 0;
			bool gso = (h.gso_type & 0x7f) != 0;

			accepted++;
			while ((r = offload_seg_next(&it, out, MAXPKT)) > 0) {
				cr_assert_leq((size_t)r, len);
				if (gso) {
					cr_assert_eq(ref_l4_sum(out, (size_t)r), 0xffff, "iter %d", n);
					if ((out[0] >> 4) == 4)
						cr_assert_eq(ref_sum(out, ip_hlen(out), 0), 0xffff);
				}
				segs++;
			}
			cr_assert_eq(r, 0);
			cr_assert_leq(segs, OFFLOAD_SEG_MAX_SEGMENTS);
			cr_assert_geq(segs, 1);
		}
		free(p);
	}
	/* The steering reaches the segmenting paths, not only refusals. */
	cr_assert_gt(accepted, 2000, "accepted %zu", accepted);
	free(out);
}

/* ------------------------------------------------------------ coalescing */

static struct offload_gro *gro_new(void)
{
	struct offload_gro *g = malloc(sizeof(*g));

	cr_assert_not_null(g);
	memset(g, 0xa5, sizeof(*g)); /* reset must not rely on zeroed memory */
	offload_gro_reset(g);
	cr_assert_eq(g->len, 0);
	return g;
}

struct gro_case {
	const char *name;
	struct spec s;
	uint16_t gso;
	uint8_t want_type;      /* gso_type after finish */
};

static const struct gro_case gro_cases[] = {
	{ "tcp4", { 4, TCP, 14600, F_ACK, 0, 1000, 7, 0, true }, 1460, OFFLOAD_GSO_TCPV4 },
	{ "tcp4 psh last, ts", { 4, TCP, 14601, F_ACK | F_PSH, 12, 0xfffffff0u, 0xfffd, 0, true },
	  1448, OFFLOAD_GSO_TCPV4 },
	{ "tcp4 odd mss", { 4, TCP, 5012, F_ACK, 0, 77, 100, 0, true }, 1001, OFFLOAD_GSO_TCPV4 },
	{ "tcp4 ecn", { 4, TCP, 3000, F_ACK | F_CWR | F_ECE, 0, 1, 1, 0, true }, 1000,
	  OFFLOAD_GSO_TCPV4 | OFFLOAD_GSO_ECN },
	{ "tcp4 64 segments", { 4, TCP, 6400, F_ACK, 0, 9, 1, 0, true }, 100, OFFLOAD_GSO_TCPV4 },
	{ "tcp6 max", { 6, TCP, 65535 - 60, F_ACK | F_PSH, 0, 123456, 0, 0, true }, 1440,
	  OFFLOAD_GSO_TCPV6 },
	{ "tcp6 ts", { 6, TCP, 2896, F_ACK, 12, 1, 0, 0, true }, 1428, OFFLOAD_GSO_TCPV6 },
	{ "tcp4 single", { 4, TCP, 500, F_ACK, 0, 9, 1, 0, true }, 1460, OFFLOAD_GSO_NONE },
	{ "tcp6 single cwr", { 6, TCP, 1, F_ACK | F_CWR, 0, 9, 1, 0, true }, 1460,
	  OFFLOAD_GSO_NONE },
};

Test(offload_gro, round_trip)
{
	uint8_t *super = xmalloc(MAXPKT), *seg = xmalloc(MAXPKT), *out = xmalloc(MAXPKT);
	struct offload_gro *g = gro_new();

	for (size_t k = 0; k < sizeof(gro_cases) / sizeof(gro_cases[0]); k++) {
		const struct gro_case *c = &gro_cases[k];
		struct offload_vnet_hdr h = ref_gso_hdr(&c->s, c->gso), back;
		size_t len = ref_build(super, &c->s), ihl = c->s.ipv == 4 ? 20 : 40, n;
		struct offload_seg_iter it;
		ssize_t r;

		cr_assert(offload_seg_init(&it, &h, super, len), "%s", c->name);
		while ((r = offload_seg_next(&it, seg, MAXPKT)) > 0)
			cr_assert(offload_gro_add(g, seg, (size_t)r), "%s: add", c->name);
		cr_assert_eq(g->len, len, "%s: held", c->name);
		n = offload_gro_finish(g);
		cr_assert_eq(n, OFFLOAD_VNET_HDR_LEN + len, "%s: finish", c->name);
		cr_assert_eq(g->len, 0, "%s: left empty", c->name);

		/* The kernel's own super-packet, byte for byte: IP lengths, ID
		 * of the first, flags of the whole, and in the TCP checksum
		 * field the pseudo-header sum, folded, NOT complemented (the
		 * CHECKSUM_PARTIAL convention of tcp_v4_send_check). */
		cr_assert(memcmp(g->buf + OFFLOAD_VNET_HDR_LEN, super, len) == 0, "%s: bytes",
			  c->name);
		cr_assert_eq(rd16(g->buf + OFFLOAD_VNET_HDR_LEN + ihl + 16),
			     ref_pseudo(super, len - ihl), "%s: partial csum", c->name);
		cr_assert(offload_vnet_hdr_parse(&back, g->buf, n));
		cr_assert_eq(back.flags, OFFLOAD_F_NEEDS_CSUM, "%s", c->name);
		cr_assert_eq(back.gso_type, c->want_type, "%s: gso_type", c->name);
		cr_assert_eq(back.gso_size, c->want_type ? c->gso : 0, "%s: gso_size", c->name);
		cr_assert_eq(back.hdr_len, spec_hlen(&c->s), "%s: hdr_len", c->name);
		cr_assert_eq(back.csum_start, ihl, "%s", c->name);
		cr_assert_eq(back.csum_offset, 16, "%s", c->name);

		/* What the kernel makes of it: completing the partial sum gives
		 * the full checksum of the whole. */
		back.gso_type = OFFLOAD_GSO_NONE;
		cr_assert(offload_seg_init(&it, &back, g->buf + OFFLOAD_VNET_HDR_LEN, len));
		cr_assert_eq(offload_seg_next(&it, out, MAXPKT), (ssize_t)len);
		cr_assert_eq(ref_l4_sum(out, len), 0xffff, "%s: completed", c->name);

		cr_assert_eq(offload_gro_finish(g), 0, "%s: empty now", c->name);
	}
	free(super);
	free(seg);
	free(out);
	free(g);
}

/* A flow of separate segments, as they come out of the tunnel. */
#define MSS 1000
static size_t flow_seg(uint8_t *p, int ipv, size_t i, size_t payload, uint8_t flags)
{
	struct spec s = { ipv, TCP, payload, flags ? flags : F_ACK, 12,
			  (uint32_t)(0x10000 + i * MSS), (uint16_t)(300 + i), i * MSS, false };
	return ref_build(p, &s);
}

struct refuse_case {
	const char *name;
	int ipv;
	bool taken;             /* controls: the mutated segment is still taken */
	/* Turns segment 1 into the case; checksums are fixed after, unless
	 * keep_csum, so each row tests only its own field. */
	void (*mutate)(uint8_t *p, size_t *len);
	bool keep_csum;
};

static void r_none(uint8_t *p, size_t *len) { (void)p; (void)len; }
static void r_seq_gap(uint8_t *p, size_t *len) { (void)len; wr32(p + ip_hlen(p) + 4, rd32(p + ip_hlen(p) + 4) + 1); }
static void r_seq_back(uint8_t *p, size_t *len) { (void)len; wr32(p + ip_hlen(p) + 4, rd32(p + ip_hlen(p) + 4) - 1); }
static void r_sport(uint8_t *p, size_t *len) { (void)len; p[ip_hlen(p) + 1] ^= 1; }
static void r_dport(uint8_t *p, size_t *len) { (void)len; p[ip_hlen(p) + 3] ^= 1; }
static void r_ack(uint8_t *p, size_t *len) { (void)len; p[ip_hlen(p) + 11] ^= 1; }
static void r_window(uint8_t *p, size_t *len) { (void)len; wr16(p + ip_hlen(p) + 14, 777); }
static void r_flag_add(uint8_t *p, uint8_t f) { p[ip_hlen(p) + 13] |= f; }
static void r_syn(uint8_t *p, size_t *len) { (void)len; r_flag_add(p, F_SYN); }
static void r_fin(uint8_t *p, size_t *len) { (void)len; r_flag_add(p, F_FIN); }
static void r_rst(uint8_t *p, size_t *len) { (void)len; r_flag_add(p, F_RST); }
static void r_urg(uint8_t *p, size_t *len) { (void)len; r_flag_add(p, F_URG); }
static void r_cwr(uint8_t *p, size_t *len) { (void)len; r_flag_add(p, F_CWR); }
static void r_ece(uint8_t *p, size_t *len) { (void)len; r_flag_add(p, F_ECE); }
static void r_psh(uint8_t *p, size_t *len) { (void)len; r_flag_add(p, F_PSH); }
static void r_no_ack(uint8_t *p, size_t *len) { (void)len; p[ip_hlen(p) + 13] = F_PSH; }
static void r_reserved(uint8_t *p, size_t *len) { (void)len; p[ip_hlen(p) + 12] |= 1; }
static void r_ts(uint8_t *p, size_t *len) { (void)len; p[ip_hlen(p) + 27] ^= 1; }
static void r_tos(uint8_t *p, size_t *len) { (void)len; p[1] ^= 4; }
static void r_ttl(uint8_t *p, size_t *len) { (void)len; p[8]--; }
static void r_df(uint8_t *p, size_t *len) { (void)len; p[6] ^= 0x40; }
static void r_mf(uint8_t *p, size_t *len) { (void)len; p[6] |= 0x20; }
static void r_id_skip(uint8_t *p, size_t *len) { (void)len; wr16(p + 4, rd16(p + 4) + 1); }
static void r_id_same(uint8_t *p, size_t *len) { (void)len; wr16(p + 4, rd16(p + 4) - 1); }
static void r_saddr4(uint8_t *p, size_t *len) { (void)len; p[15] ^= 1; }
static void r_daddr4(uint8_t *p, size_t *len) { (void)len; p[19] ^= 1; }
static void r_saddr6(uint8_t *p, size_t *len) { (void)len; p[23] ^= 1; }
static void r_daddr6(uint8_t *p, size_t *len) { (void)len; p[39] ^= 1; }
static void r_flow6(uint8_t *p, size_t *len) { (void)len; p[3] ^= 1; }
static void r_tclass6(uint8_t *p, size_t *len) { (void)len; p[1] ^= 0x10; }
static void r_hop6(uint8_t *p, size_t *len) { (void)len; p[7]--; }
static void r_nh6(uint8_t *p, size_t *len) { (void)len; p[6] = 0; }
static void r_udp(uint8_t *p, size_t *len) { (void)len; p[9] = UDP; }
static void r_bad_tcp_csum(uint8_t *p, size_t *len) { p[*len - 1] ^= 0x40; }
static void r_bad_ip_csum(uint8_t *p, size_t *len) { (void)len; p[10] ^= 1; }
static void r_bigger(uint8_t *p, size_t *len)
{
	*len = flow_seg(p, p[0] >> 4, 1, MSS + 1, 0);
}
static void r_smaller(uint8_t *p, size_t *len)
{
	*len = flow_seg(p, p[0] >> 4, 1, MSS - 1, 0);
}
static void r_pure_ack(uint8_t *p, size_t *len)
{
	*len = flow_seg(p, p[0] >> 4, 1, 0, 0);
}
static void r_no_opts(uint8_t *p, size_t *len)
{
	struct spec s = { p[0] >> 4, TCP, MSS, F_ACK, 0, 0x10000 + MSS, 301, MSS, false };
	*len = ref_build(p, &s);
}
static void r_ip_options(uint8_t *p, size_t *len)
{
	/* 4 bytes of IPv4 options (NOPs + EOL) before the TCP header. */
	memmove(p + 24, p + 20, *len - 20);
	p[20] = p[21] = p[22] = 1;
	p[23] = 0;
	p[0] = 0x46;
	*len += 4;
	wr16(p + 2, (uint32_t)*len);
}

static const struct refuse_case refuse_cases[] = {
	{ "control: contiguous", 4, true, r_none, false },
	{ "control: contiguous v6", 6, true, r_none, false },
	{ "control: psh on the second", 4, true, r_psh, false },
	{ "control: shorter second", 6, true, r_smaller, false },
	{ "control: new window", 4, true, r_window, false },
	{ "seq gap", 4, false, r_seq_gap, false },
	{ "seq overlap", 6, false, r_seq_back, false },
	{ "source port", 4, false, r_sport, false },
	{ "destination port", 6, false, r_dport, false },
	{ "ack number", 4, false, r_ack, false },
	{ "syn", 4, false, r_syn, false },
	{ "fin", 6, false, r_fin, false },
	{ "rst", 4, false, r_rst, false },
	{ "urg", 4, false, r_urg, false },
	{ "cwr after the first", 4, false, r_cwr, false },
	{ "ece differs", 6, false, r_ece, false },
	{ "no ack", 4, false, r_no_ack, false },
	{ "tcp reserved bit", 4, false, r_reserved, false },
	{ "timestamp differs", 4, false, r_ts, false },
	{ "options differ in length", 6, false, r_no_opts, false },
	{ "bigger than the first", 4, false, r_bigger, false },
	{ "pure ack", 4, false, r_pure_ack, false },
	{ "tos", 4, false, r_tos, false },
	{ "ttl", 4, false, r_ttl, false },
	{ "df", 4, false, r_df, false },
	{ "more fragments", 4, false, r_mf, false },
	{ "ip id skips", 4, false, r_id_skip, false },
	{ "ip id repeats", 4, false, r_id_same, false },
	{ "ip options", 4, false, r_ip_options, false },
	{ "source address", 4, false, r_saddr4, false },
	{ "destination address", 4, false, r_daddr4, false },
	{ "v6 source address", 6, false, r_saddr6, false },
	{ "v6 destination address", 6, false, r_daddr6, false },
	{ "v6 flow label", 6, false, r_flow6, false },
	{ "v6 traffic class", 6, false, r_tclass6, false },
	{ "v6 hop limit", 6, false, r_hop6, false },
	{ "v6 extension header", 6, false, r_nh6, false },
	{ "udp", 4, false, r_udp, false },
	{ "bad tcp checksum", 4, false, r_bad_tcp_csum, true },
	{ "bad tcp checksum v6", 6, false, r_bad_tcp_csum, true },
	{ "bad ip header checksum", 4, false, r_bad_ip_csum, true },
};

Test(offload_gro, refusals)
{
	uint8_t *s0 = xmalloc(MAXPKT), *s1 = xmalloc(MAXPKT);
	struct offload_gro *g = gro_new();

	for (size_t k = 0; k < sizeof(refuse_cases) / sizeof(refuse_cases[0]); k++) {
		const struct refuse_case *c = &refuse_cases[k];
		size_t l0 = flow_seg(s0, c->ipv, 0, MSS, 0), l1 = flow_seg(s1, c->ipv, 1, MSS, 0);
		size_t n;
		uint8_t *exact;

		c->mutate(s1, &l1);
		if (!c->keep_csum)
			ref_fix(s1, l1);
		exact = exact_copy(s1, l1);
		cr_assert(offload_gro_add(g, s0, l0), "%s: first", c->name);
		cr_assert_eq(offload_gro_add(g, exact, l1), c->taken, "%s", c->name);
		cr_assert_eq(g->len, c->taken ? l0 + l1 - (l0 - MSS) : l0, "%s: held", c->name);
		if (!c->taken) {
			/* Untouched: it finishes as the first segment alone. */
			n = offload_gro_finish(g);
			cr_assert_eq(n, OFFLOAD_VNET_HDR_LEN + l0, "%s", c->name);
			cr_assert_eq(g->buf[1], OFFLOAD_GSO_NONE, "%s", c->name);
			cr_assert(memcmp(g->buf + OFFLOAD_VNET_HDR_LEN, s0, ip_hlen(s0) + 16) == 0,
				  "%s: first unchanged", c->name);
		} else if (c->mutate == r_window) {
			/* The newest window wins. */
			cr_assert_eq(rd16(g->buf + OFFLOAD_VNET_HDR_LEN + ip_hlen(s0) + 14), 777);
		}
		offload_gro_reset(g);
		free(exact);
	}
	free(s0);
	free(s1);
	free(g);
}

Test(offload_gro, nothing_after_psh_or_short)
{
	uint8_t *p = xmalloc(MAXPKT);
	struct offload_gro *g = gro_new();
	size_t len;

	/* PSH on the second: the third is refused, and starts anew after. */
	len = flow_seg(p, 4, 0, MSS, 0);
	cr_assert(offload_gro_add(g, p, len));
	len = flow_seg(p, 4, 1, MSS, F_ACK | F_PSH);
	cr_assert(offload_gro_add(g, p, len));
	len = flow_seg(p, 4, 2, MSS, 0);
	cr_assert_not(offload_gro_add(g, p, len));
	cr_assert_eq(offload_gro_finish(g), OFFLOAD_VNET_HDR_LEN + 52 + 2 * MSS);
	cr_assert_eq(g->buf[OFFLOAD_VNET_HDR_LEN + 33], F_ACK | F_PSH, "psh kept on the whole");
	cr_assert(offload_gro_add(g, p, len), "retried after the flush");

	/* A short segment ends it too. */
	offload_gro_reset(g);
	len = flow_seg(p, 6, 0, MSS, 0);
	cr_assert(offload_gro_add(g, p, len));
	len = flow_seg(p, 6, 1, MSS - 1, 0);
	cr_assert(offload_gro_add(g, p, len));
	len = flow_seg(p, 6, 2, MSS, 0);
	wr32(p + 44, 0x10000 + 2 * MSS - 1); /* contiguous after the short one */
	ref_fix(p, len);
	cr_assert_not(offload_gro_add(g, p, len));
	cr_assert_eq(g->len, 72 + 2 * MSS - 1);

	/* A first segment with PSH holds alone. */
	offload_gro_reset(g);
	len = flow_seg(p, 4, 0, MSS, F_ACK | F_PSH);
	cr_assert(offload_gro_add(g, p, len));
	len = flow_seg(p, 4, 1, MSS, 0);
	cr_assert_not(offload_gro_add(g, p, len));
	free(p);
	free(g);
}

Test(offload_gro, size_limits)
{
	uint8_t *p = xmalloc(MAXPKT);
	struct offload_gro *g = gro_new();
	size_t i, len;

	/* Bytes: 40 + 1460 * 44 = 64280 fits, a 45th segment would not. */
	for (i = 0; i < 44; i++) {
		struct spec s = { 4, TCP, 1460, F_ACK, 0, (uint32_t)(i * 1460), (uint16_t)i, 0, false };
		len = ref_build(p, &s);
		cr_assert(offload_gro_add(g, p, len), "segment %zu", i);
	}
	cr_assert_eq(g->len, 64280);
	{
		struct spec s = { 4, TCP, 1460, F_ACK, 0, (uint32_t)(i * 1460), (uint16_t)i, 0, false };
		len = ref_build(p, &s);
		cr_assert_not(offload_gro_add(g, p, len), "65740 bytes");
		/* One byte over does not fit; exactly 65535 does. */
		s.payload = 1256;
		len = ref_build(p, &s);
		cr_assert_not(offload_gro_add(g, p, len), "65536 bytes");
		s.payload = 1255;
		len = ref_build(p, &s);
		cr_assert(offload_gro_add(g, p, len));
		cr_assert_eq(g->len, 65535);
		cr_assert_eq(offload_gro_finish(g), OFFLOAD_VNET_HDR_LEN + 65535);
	}

	/* Segments: 64 taken, the 65th refused. */
	for (i = 0; i < 65; i++) {
		struct spec s = { 6, TCP, 100, F_ACK, 0, (uint32_t)(i * 100), 0, 0, false };
		len = ref_build(p, &s);
		cr_assert_eq(offload_gro_add(g, p, len), i < 64, "segment %zu", i);
	}
	cr_assert_eq(g->len, 60 + 6400);
	free(p);
	free(g);
}

Test(offload_gro, never_starts)
{
	struct spec ok = { 4, TCP, 100, F_ACK, 0, 1, 1, 0, false };
	uint8_t *p = xmalloc(MAXPKT), *q;
	struct offload_gro *g = gro_new();
	size_t len, full;
	static const uint8_t flags[] = { F_SYN | F_ACK, F_FIN | F_ACK, F_RST | F_ACK,
					 F_URG | F_ACK, F_PSH, 0x02, F_ACK | F_RST };

	for (size_t k = 0; k < sizeof(flags); k++) {
		struct spec s = ok;
		len = ref_build(p, &s);
		p[33] = flags[k];
		ref_fix(p, len);
		cr_assert_not(offload_gro_add(g, p, len), "flags %#x", flags[k]);
	}
	/* UDP, ICMP, version 5, IPv6 hop-by-hop, pure ACK, bad checksums. */
	ok.proto = UDP;
	len = ref_build(p, &ok);
	cr_assert_not(offload_gro_add(g, p, len), "udp");
	ok.proto = TCP;
	len = ref_build(p, &ok);
	p[9] = 1;
	ref_fix(p, len);
	cr_assert_not(offload_gro_add(g, p, len), "icmp");
	len = ref_build(p, &ok);
	p[0] = 0x55;
	cr_assert_not(offload_gro_add(g, p, len), "version 5");
	ok.ipv = 6;
	len = ref_build(p, &ok);
	p[6] = 0;
	cr_assert_not(offload_gro_add(g, p, len), "hop-by-hop");
	ok.ipv = 4;
	ok.payload = 0;
	len = ref_build(p, &ok);
	cr_assert_not(offload_gro_add(g, p, len), "pure ack");
	ok.payload = 100;
	len = ref_build(p, &ok);
	p[len - 1] ^= 1;
	cr_assert_not(offload_gro_add(g, p, len), "bad tcp checksum");
	len = ref_build(p, &ok);
	wr16(p + 2, (uint32_t)len - 1);
	cr_assert_not(offload_gro_add(g, p, len), "padding after tot_len");
	cr_assert_not(offload_gro_add(g, p, 65536), "too big");
	cr_assert_eq(g->len, 0);

	/* Every prefix of good segments, in exact buffers; the whole is taken. */
	for (int v = 4; v <= 6; v += 2) {
		struct spec s = { v, TCP, 64, F_ACK, 12, 1, 1, 0, false };
		full = ref_build(p, &s);
		for (len = 0; len < full; len++) {
			q = exact_copy(p, len);
			cr_assert_not(offload_gro_add(g, q, len), "v%d len %zu", v, len);
			free(q);
		}
		q = exact_copy(p, full);
		cr_assert(offload_gro_add(g, q, full));
		cr_assert_eq(offload_gro_finish(g), OFFLOAD_VNET_HDR_LEN + full);
		free(q);
	}
	free(p);
	free(g);
}

Test(offload_gro, interleaved_flows_alternate)
{
	/* One flow at a time: a second flow's segment is refused, and the
	 * caller's flush-and-retry starts it. */
	uint8_t *a = xmalloc(MAXPKT), *b = xmalloc(MAXPKT);
	struct offload_gro *g = gro_new();
	size_t la = flow_seg(a, 4, 0, MSS, 0), lb = flow_seg(b, 4, 0, MSS, 0);

	b[20 + 1] ^= 2; /* other source port */
	ref_fix(b, lb);
	cr_assert(offload_gro_add(g, a, la));
	cr_assert_not(offload_gro_add(g, b, lb));
	cr_assert_eq(offload_gro_finish(g), OFFLOAD_VNET_HDR_LEN + la);
	cr_assert(offload_gro_add(g, b, lb));
	cr_assert_eq(offload_gro_finish(g), OFFLOAD_VNET_HDR_LEN + lb);
	cr_assert_eq(rd16(g->buf + OFFLOAD_VNET_HDR_LEN + 20), rd16(b + 20));
	free(a);
	free(b);
	free(g);
}

Test(offload_seg, ipv4_options_copied)
{
	/* TSO keeps IP options on every segment (the kernel copies the whole
	 * IP header); the IP checksum covers them. */
	struct spec s = { 4, TCP, 2500, F_ACK | F_PSH, 0, 1, 9, 0, true };
	uint8_t *super = xmalloc(MAXPKT), *seg = xmalloc(MAXPKT);
	size_t len = ref_build(super, &s), n = 0;
	struct offload_vnet_hdr h = ref_gso_hdr(&s, 1000);
	struct offload_seg_iter it;
	ssize_t r;

	r_ip_options(super, &len);
	wr16(super + 10, 0);
	wr16(super + 10, (uint16_t)~ref_sum(super, 24, 0));
	wr16(super + 24 + 16, ref_pseudo(super, len - 24));
	h.csum_start = 24;
	h.hdr_len = 44;
	cr_assert(offload_seg_init(&it, &h, super, len));
	while ((r = offload_seg_next(&it, seg, MAXPKT)) > 0) {
		size_t plen = n < 2 ? 1000 : 500;
		cr_assert_eq(r, 44 + plen);
		cr_assert_eq(seg[0], 0x46);
		cr_assert(memcmp(seg + 20, "\x01\x01\x01\x00", 4) == 0);
		cr_assert_eq(rd16(seg + 2), r);
		cr_assert_eq(rd16(seg + 4), 9 + n);
		cr_assert_eq(ref_sum(seg, 24, 0), 0xffff);
		cr_assert_eq(ref_l4_sum(seg, (size_t)r), 0xffff);
		cr_assert_eq(rd32(seg + 28), 1 + 1000 * n);
		cr_assert_eq(seg[24 + 13], n == 2 ? F_ACK | F_PSH : F_ACK);
		cr_assert_eq(seg[44], pat(1000 * n));
		n++;
	}
	cr_assert_eq(n, 3);
	free(super);
	free(seg);
}
