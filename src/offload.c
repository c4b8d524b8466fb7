/*
 * virtio-net header offloads for tun devices: segmentation (TSO/USO) and
 * TCP coalescing (GRO).  The rules follow what the kernel does on the other
 * side of the tun (net/ipv4/tcp_offload.c, udp_offload.c, dev.c's
 * skb_checksum_help, include/linux/virtio_net.h), so that a super-packet we
 * split is what the kernel's own GSO would have sent, and one we build is
 * one the kernel's own GRO could have built.
 *
 * Checksums are summed in memory order (RFC 1071 section 2(B): the one's
 * complement sum is byte-order independent), 32-bit words at a time into a
 * 64-bit accumulator, and copying and summing the payload is one pass.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "offload.h"

enum offload_layout {
	IPV4_HLEN = 20,             /* without options */
	IPV6_HLEN = 40,
	IPV4_ADDRS = 12,            /* source then destination, contiguous */
	IPV6_ADDRS = 8,
	TCP_HLEN = 20,              /* without options */
	TCP_CSUM = 16,              /* offset of the checksum in the header */
	UDP_HLEN = 8,
	UDP_CSUM = 6,
	PROTO_TCP = 6,
	PROTO_UDP = 17,
	IPV4_FRAG_MASK = 0x3fff,    /* MF and fragment offset */
	IPV4_DF_RESERVED = 0xe0,    /* reserved and DF bits of byte 6 */
};

enum tcp_flag {
	TCP_FIN = 0x01,
	TCP_SYN = 0x02,
	TCP_RST = 0x04,
	TCP_PSH = 0x08,
	TCP_ACK = 0x10,
	TCP_URG = 0x20,
	TCP_ECE = 0x40,
	TCP_CWR = 0x80,
};

/* What offload_seg_next does next. */
enum seg_kind {
	SEG_DONE = 0,
	SEG_COPY,                   /* GSO NONE: the packet as it is */
	SEG_CSUM,                   /* GSO NONE + NEEDS_CSUM: complete the checksum */
	SEG_TCP,
	SEG_UDP,
};

static_assert(sizeof(struct offload_vnet_hdr) == OFFLOAD_VNET_HDR_LEN,
	      "mirrors struct virtio_net_hdr");
static_assert(OFFLOAD_MAX_SEGMENTS <= UINT8_MAX, "segment counters are 8-bit");

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A number as it sits in a packet, big-endian, read as a memory-order word. */
static inline uint64_t csum_number(uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	uint16_t w;

	memcpy(&w, b, 2);
	return w;
}

/* Each step adds less than 2^33, so the 64-bit accumulator cannot carry out
 * for 2^31 steps: far beyond any packet. */
static inline uint64_t csum_tail(const uint8_t *p, size_t len, uint64_t acc)
{
	uint32_t w32;
	uint16_t w16 = 0;

	if (len & 4) {
		memcpy(&w32, p, 4);
		acc += w32;
		p += 4;
	}
	if (len & 2) {
		memcpy(&w16, p, 2);
		acc += w16;
		p += 2;
		w16 = 0;
	}
	if (len & 1) {
		/* The odd byte is the first of a word padded with zero. */
		memcpy(&w16, p, 1);
		acc += w16;
	}
	return acc;
}

static uint64_t csum_partial(const uint8_t *p, size_t len, uint64_t acc)
{
	uint64_t w[4];

	for (; len >= 32; p += 32, len -= 32) {
		memcpy(w, p, 32);
		acc += (w[0] & 0xffffffff) + (w[0] >> 32) + (w[1] & 0xffffffff) + (w[1] >> 32) +
		       (w[2] & 0xffffffff) + (w[2] >> 32) + (w[3] & 0xffffffff) + (w[3] >> 32);
	}
	for (; len >= 8; p += 8, len -= 8) {
		memcpy(w, p, 8);
		acc += (w[0] & 0xffffffff) + (w[0] >> 32);
	}
	return csum_tail(p, len, acc);
}

/* Copy len bytes and sum them (as csum_partial over src) in one pass. */
static uint64_t csum_copy(uint8_t *dst, const uint8_t *src, size_t len, uint64_t acc)
{
	uint64_t w[4];

	for (; len >= 32; src += 32, dst += 32, len -= 32) {
		memcpy(w, src, 32);
		memcpy(dst, w, 32);
		acc += (w[0] & 0xffffffff) + (w[0] >> 32) + (w[1] & 0xffffffff) + (w[1] >> 32) +
		       (w[2] & 0xffffffff) + (w[2] >> 32) + (w[3] & 0xffffffff) + (w[3] >> 32);
	}
	for (; len >= 8; src += 8, dst += 8, len -= 8) {
		memcpy(w, src, 8);
		memcpy(dst, w, 8);
		acc += (w[0] & 0xffffffff) + (w[0] >> 32);
	}
	memcpy(dst, src, len);
	return csum_tail(src, len, acc);
}

static uint16_t csum_fold64(uint64_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

/* Store a finished checksum (memory order).  Zero becomes 0xffff, as the
 * kernel's skb_checksum_help does: the same value in one's complement, and
 * for UDP zero would mean "no checksum" (RFC 768). */
static inline void csum_store(uint8_t *p, uint64_t acc)
{
	uint16_t c = (uint16_t)~csum_fold64(acc);

	if (c == 0)
		c = 0xffff;
	memcpy(p, &c, 2);
}

uint16_t offload_csum_fold(uint32_t sum)
{
	return csum_fold64(sum);
}

uint32_t offload_csum_add(uint32_t sum, const void *data, size_t len)
{
	uint64_t acc = csum_partial(data, len, sum);

	/* 2^32 = 1 modulo 0xffff: folding to 32 bits keeps the sum. */
	acc = (acc & 0xffffffff) + (acc >> 32);
	acc = (acc & 0xffffffff) + (acc >> 32);
	return (uint32_t)acc;
}

/* Addresses and protocol of the pseudo-header (RFC 793, RFC 8200 8.1); the
 * length is added per segment. */
static uint64_t csum_pseudo(const uint8_t *ip, uint8_t ipv, uint8_t proto)
{
	if (ipv == 4)
		return csum_partial(ip + IPV4_ADDRS, 8, csum_number(proto));
	return csum_partial(ip + IPV6_ADDRS, 32, csum_number(proto));
}

bool offload_vnet_hdr_parse(struct offload_vnet_hdr *h, const uint8_t *p, size_t len)
{
	if (len < OFFLOAD_VNET_HDR_LEN)
		return false;
	h->flags = p[0];
	h->gso_type = p[1];
	memcpy(&h->hdr_len, p + 2, 2);
	memcpy(&h->gso_size, p + 4, 2);
	memcpy(&h->csum_start, p + 6, 2);
	memcpy(&h->csum_offset, p + 8, 2);
	return true;
}

void offload_vnet_hdr_write(uint8_t *p, const struct offload_vnet_hdr *h)
{
	p[0] = h->flags;
	p[1] = h->gso_type;
	memcpy(p + 2, &h->hdr_len, 2);
	memcpy(p + 4, &h->gso_size, 2);
	memcpy(p + 6, &h->csum_start, 2);
	memcpy(p + 8, &h->csum_offset, 2);
}

/* ---------------------------------------------------------- segmentation */

/* NONE + NEEDS_CSUM is protocol-blind, as virtio's partial checksum: the
 * sum from csum_start to the end goes to csum_start + csum_offset. */
static bool seg_init_csum(struct offload_seg_iter *it, const struct offload_vnet_hdr *h)
{
	if (h->csum_start >= it->len || it->len - h->csum_start < 2u ||
	    h->csum_offset > it->len - h->csum_start - 2)
		return false;
	it->l4_off = h->csum_start;
	it->csum_offset = h->csum_offset;
	it->kind = SEG_CSUM;
	return true;
}

/* The IP header of a GSO packet: sets ipv, l4_off; false unless the
 * protocol is `proto` and the lengths are exact. */
static bool seg_parse_ip(struct offload_seg_iter *it, uint8_t proto)
{
	const uint8_t *p = it->pkt;
	size_t len = it->len, ihl;

	if (len < IPV4_HLEN)
		return false;
	switch (p[0] >> 4) {
	case 4:
		ihl = (size_t)(p[0] & 0x0f) * 4;
		if (ihl < IPV4_HLEN || ihl > len || get16(p + 2) != len)
			return false;
		/* A fragment cannot be segmented; its L4 header is elsewhere. */
		if (get16(p + 6) & IPV4_FRAG_MASK)
			return false;
		if (p[9] != proto)
			return false;
		it->ipv = 4;
		it->ip_id = get16(p + 4);
		break;
	case 6:
		/* No extension headers: next header must be TCP/UDP itself. */
		if (len < IPV6_HLEN || get16(p + 4) != len - IPV6_HLEN || p[6] != proto)
			return false;
		ihl = IPV6_HLEN;
		it->ipv = 6;
		break;
	default:
		return false;
	}
	it->l4_off = (uint16_t)ihl;
	return true;
}

static bool seg_parse_l4(struct offload_seg_iter *it)
{
	const uint8_t *l4 = it->pkt + it->l4_off;
	size_t room = it->len - it->l4_off, thl;

	if (it->kind == SEG_TCP) {
		if (room < TCP_HLEN)
			return false;
		thl = (size_t)(l4[12] >> 4) * 4;
		if (thl < TCP_HLEN || thl > room)
			return false;
		/* The kernel never builds these into a super-packet; URG would
		 * need its pointer moved per segment. */
		if (l4[13] & (TCP_SYN | TCP_RST | TCP_URG))
			return false;
		it->seq = get32(l4 + 4);
	} else {
		thl = UDP_HLEN;
		if (room < UDP_HLEN || get16(l4 + 4) != room)
			return false;
	}
	it->l4_hlen = (uint16_t)thl;
	it->hlen = (uint16_t)(it->l4_off + thl);
	return true;
}

bool offload_seg_init(struct offload_seg_iter *it, const struct offload_vnet_hdr *h,
		      const uint8_t *pkt, size_t len)
{
	uint8_t gso = h->gso_type & (uint8_t)~OFFLOAD_GSO_ECN;
	bool ecn = h->gso_type & OFFLOAD_GSO_ECN;
	uint8_t proto;
	size_t segs;

	memset(it, 0, sizeof(*it));
	it->pkt = pkt;
	it->len = len;
	if (len == 0 || len > OFFLOAD_MAX_PACKET)
		return false;

	switch (gso) {
	case OFFLOAD_GSO_NONE:
		if (ecn)
			return false;
		if (!(h->flags & OFFLOAD_F_NEEDS_CSUM)) {
			/* Any IP packet at all (ICMP, fragments, extension
			 * headers...): nothing to parse, nothing to drop. */
			it->kind = SEG_COPY;
			return true;
		}
		return seg_init_csum(it, h);
	case OFFLOAD_GSO_TCPV4:
	case OFFLOAD_GSO_TCPV6:
		it->kind = SEG_TCP;
		proto = PROTO_TCP;
		break;
	case OFFLOAD_GSO_UDP_L4:
		if (ecn)
			return false;
		it->kind = SEG_UDP;
		proto = PROTO_UDP;
		break;
	default:
		/* UFO (IP fragmentation) and anything newer: never granted. */
		return false;
	}

	if (!seg_parse_ip(it, proto) || !seg_parse_l4(it))
		goto refuse;
	if ((gso == OFFLOAD_GSO_TCPV4 && it->ipv != 4) || (gso == OFFLOAD_GSO_TCPV6 && it->ipv != 6))
		goto refuse;
	/* csum_start is a hint we can check; hdr_len is not checked at all: the
	 * kernel may put the length of the skb's linear part there, which can
	 * run past the headers (wireguard-go hit this on forwarded traffic). */
	if ((h->flags & OFFLOAD_F_NEEDS_CSUM) &&
	    (h->csum_start != it->l4_off ||
	     h->csum_offset != (it->kind == SEG_TCP ? TCP_CSUM : UDP_CSUM)))
		goto refuse;
	if (h->gso_size == 0 || len == it->hlen)
		goto refuse;
	it->gso_size = h->gso_size;
	it->payload = (uint32_t)(len - it->hlen);
	segs = (it->payload + it->gso_size - 1u) / it->gso_size;
	if (segs > OFFLOAD_SEG_MAX_SEGMENTS)
		goto refuse;
	it->pseudo = (uint32_t)csum_fold64(csum_pseudo(pkt, it->ipv, proto));
	return true;

refuse:
	it->kind = SEG_DONE;
	return false;
}

/* One TCP or UDP segment: headers from the super-packet with this
 * segment's lengths, ID, sequence number and flags, then payload copied
 * and summed in one pass. */
static size_t seg_next_gso(struct offload_seg_iter *it, uint8_t *dst, size_t plen)
{
	uint8_t *l4 = dst + it->l4_off;
	size_t total = it->hlen + plen, l4_len = it->l4_hlen + plen;
	uint64_t acc;

	memcpy(dst, it->pkt, it->hlen);
	if (it->ipv == 4) {
		put16(dst + 2, (uint16_t)total);
		/* As the kernel's TSO without SKB_GSO_TCP_FIXEDID. */
		put16(dst + 4, (uint16_t)(it->ip_id + it->index));
		dst[10] = dst[11] = 0;
		csum_store(dst + 10, csum_partial(dst, it->l4_off, 0));
	} else {
		put16(dst + 4, (uint16_t)(total - IPV6_HLEN));
	}

	if (it->kind == SEG_TCP) {
		put32(l4 + 4, it->seq + it->off);
		/* tcp_gso_segment: CWR only on the first, FIN/PSH only on the
		 * last segment. */
		if (it->index > 0)
			l4[13] &= (uint8_t)~TCP_CWR;
		if (it->off + plen < it->payload)
			l4[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
		l4[TCP_CSUM] = l4[TCP_CSUM + 1] = 0;
	} else {
		put16(l4 + 4, (uint16_t)l4_len);
		l4[UDP_CSUM] = l4[UDP_CSUM + 1] = 0;
	}

	acc = it->pseudo + csum_number((uint16_t)l4_len);
	acc = csum_partial(l4, it->l4_hlen, acc);
	acc = csum_copy(dst + it->hlen, it->pkt + it->hlen + it->off, plen, acc);
	csum_store(l4 + (it->kind == SEG_TCP ? TCP_CSUM : UDP_CSUM), acc);
	return total;
}

ssize_t offload_seg_next(struct offload_seg_iter *it, uint8_t *dst, size_t cap)
{
	size_t plen, total, at;
	uint64_t acc;
	uint16_t c;

	switch (it->kind) {
	case SEG_COPY:
		if (cap < it->len)
			return -EMSGSIZE;
		memcpy(dst, it->pkt, it->len);
		it->kind = SEG_DONE;
		return (ssize_t)it->len;
	case SEG_CSUM:
		if (cap < it->len)
			return -EMSGSIZE;
		memcpy(dst, it->pkt, it->l4_off);
		/* The field holds the pseudo-header sum: summing over it adds
		 * it in, as skb_checksum_help does. */
		acc = csum_copy(dst + it->l4_off, it->pkt + it->l4_off, it->len - it->l4_off, 0);
		at = (size_t)it->l4_off + it->csum_offset;
		csum_store(dst + at, acc);
		if (it->csum_offset & 1) {
			/* The sum is aligned on csum_start: a field an odd
			 * distance away sees its bytes swapped. */
			memcpy(&c, dst + at, 2);
			c = (uint16_t)(c << 8 | c >> 8);
			memcpy(dst + at, &c, 2);
		}
		it->kind = SEG_DONE;
		return (ssize_t)it->len;
	case SEG_TCP:
	case SEG_UDP:
		plen = it->payload - it->off;
		if (plen > it->gso_size)
			plen = it->gso_size;
		total = it->hlen + plen;
		if (cap < total)
			return -EMSGSIZE;
		seg_next_gso(it, dst, plen);
		it->off += (uint32_t)plen;
		it->index++;
		if (it->off == it->payload)
			it->kind = SEG_DONE;
		return (ssize_t)total;
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ coalescing */

/* A TCP segment that may start or continue a super-packet. */
struct gro_seg {
	uint8_t ipv, flags;
	uint16_t ip_hlen, tcp_hlen, payload;
	uint32_t seq;
};

/* IPv4 without options or fragments, or IPv6 without extension headers,
 * then TCP with ACK, payload, and none of SYN/FIN/RST/URG (which end a
 * flow's bulk phase: the kernel's GRO flushes on them too). */
static bool gro_parse(struct gro_seg *s, const uint8_t *p, size_t len)
{
	const uint8_t *th;

	if (len < IPV4_HLEN + TCP_HLEN || len > OFFLOAD_MAX_PACKET)
		return false;
	switch (p[0] >> 4) {
	case 4:
		if (p[0] != 0x45 || get16(p + 2) != len || (get16(p + 6) & IPV4_FRAG_MASK) ||
		    p[9] != PROTO_TCP)
			return false;
		/* The IP header checksum is ours to rewrite at finish: a bad
		 * one must not be laundered into a good one. */
		if (csum_fold64(csum_partial(p, IPV4_HLEN, 0)) != 0xffff)
			return false;
		s->ipv = 4;
		s->ip_hlen = IPV4_HLEN;
		break;
	case 6:
		if (len < IPV6_HLEN + TCP_HLEN || get16(p + 4) != len - IPV6_HLEN ||
		    p[6] != PROTO_TCP)
			return false;
		s->ipv = 6;
		s->ip_hlen = IPV6_HLEN;
		break;
	default:
		return false;
	}
	th = p + s->ip_hlen;
	s->tcp_hlen = (uint16_t)((th[12] >> 4) * 4);
	if (s->tcp_hlen < TCP_HLEN || s->tcp_hlen >= len - s->ip_hlen)
		return false; /* short, or no payload */
	s->flags = th[13];
	if (!(s->flags & TCP_ACK) || (s->flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG)))
		return false;
	s->payload = (uint16_t)(len - s->ip_hlen - s->tcp_hlen);
	s->seq = get32(th + 4);
	return true;
}

/* Sum of the segment's TCP pseudo-header, header and payload, copying the
 * payload to dst on the way: 0xffff folded when the checksum is right. */
static uint16_t gro_copy_sum(uint8_t *dst, const uint8_t *p, const struct gro_seg *s)
{
	uint64_t acc = csum_pseudo(p, s->ipv, PROTO_TCP);

	acc += csum_number((uint16_t)(s->tcp_hlen + s->payload));
	acc = csum_partial(p + s->ip_hlen, s->tcp_hlen, acc);
	acc = csum_copy(dst, p + s->ip_hlen + s->tcp_hlen, s->payload, acc);
	return csum_fold64(acc);
}

/* Does s (at p) continue the held super-packet?  Everything the merged
 * packet keeps only once must be equal: the IP fields of a flow, the
 * ports, the ACK number and the options (the kernel's tcp_gro_receive
 * and inet_gro_receive checks). */
static bool gro_continues(const struct offload_gro *g, const uint8_t *p, const struct gro_seg *s)
{
	const uint8_t *h = g->buf + OFFLOAD_VNET_HDR_LEN;
	const uint8_t *th = p + s->ip_hlen, *hth = h + g->ip_hlen;

	if (g->closed || g->segs >= OFFLOAD_MAX_SEGMENTS ||
	    g->len + s->payload > OFFLOAD_MAX_PACKET)
		return false;
	if (s->ip_hlen != g->ip_hlen || s->tcp_hlen != g->tcp_hlen || s->payload > g->gso_size)
		return false;
	if (s->ipv == 4) {
		if (p[1] != h[1] || (p[6] & IPV4_DF_RESERVED) != (h[6] & IPV4_DF_RESERVED) ||
		    p[8] != h[8] || memcmp(p + IPV4_ADDRS, h + IPV4_ADDRS, 8) != 0)
			return false;
		/* The kernel's GSO on the way out numbers the segments
		 * again from the first ID: only a run it would recreate. */
		if (get16(p + 4) != g->next_id)
			return false;
	} else {
		/* Version, traffic class, flow label; hop limit; addresses. */
		if (memcmp(p, h, 4) != 0 || p[7] != h[7] ||
		    memcmp(p + IPV6_ADDRS, h + IPV6_ADDRS, 32) != 0)
			return false;
	}
	if (memcmp(th, hth, 4) != 0 || s->seq != g->next_seq ||
	    memcmp(th + 8, hth + 8, 4) != 0 || th[12] != hth[12])
		return false;
	/* The held flags, PSH aside (a PSH closes the packet) and CWR aside:
	 * CWR may only lead, as resegmenting keeps it on the first segment
	 * only, so a follower carrying it never matches. */
	if ((s->flags & ~TCP_PSH) != (hth[13] & ~(TCP_CWR | TCP_PSH)))
		return false;
	return memcmp(th + TCP_HLEN, hth + TCP_HLEN, s->tcp_hlen - TCP_HLEN) == 0;
}

void offload_gro_reset(struct offload_gro *g)
{
	/* buf is scratch beyond len: not touching its 64 KiB keeps reset cheap. */
	g->len = 0;
	g->segs = 0;
	g->closed = false;
}

bool offload_gro_add(struct offload_gro *g, const uint8_t *pkt, size_t len)
{
	uint8_t *h = g->buf + OFFLOAD_VNET_HDR_LEN, *hth;
	struct gro_seg s;
	size_t hlen;

	if (!gro_parse(&s, pkt, len))
		return false;
	hlen = (size_t)s.ip_hlen + s.tcp_hlen;

	if (g->len == 0) {
		/* Bytes are copied before the checksum is known; len stays 0
		 * (empty) unless it is right. */
		memcpy(h, pkt, hlen);
		if (gro_copy_sum(h + hlen, pkt, &s) != 0xffff)
			return false;
		g->len = len;
		g->ip_hlen = s.ip_hlen;
		g->tcp_hlen = s.tcp_hlen;
		g->gso_size = s.payload;
		g->segs = 1;
		g->next_seq = s.seq + s.payload;
		g->next_id = (uint16_t)(s.ipv == 4 ? get16(pkt + 4) + 1 : 0);
		g->closed = s.flags & TCP_PSH;
		return true;
	}

	if (!gro_continues(g, pkt, &s))
		return false;
	/* Appended past len: a bad checksum leaves g as it was. */
	if (gro_copy_sum(h + g->len, pkt, &s) != 0xffff)
		return false;
	hth = h + g->ip_hlen;
	/* The newest window is the one TCP would have ended up with after
	 * taking the segments one by one (same ACK, rising sequence). */
	memcpy(hth + 14, pkt + s.ip_hlen + 14, 2);
	if (s.flags & TCP_PSH) {
		hth[13] |= TCP_PSH;
		g->closed = true;
	}
	/* Only the last segment may be short: the kernel resegments the
	 * packet at gso_size. */
	if (s.payload < g->gso_size)
		g->closed = true;
	g->len += s.payload;
	g->segs++;
	g->next_seq += s.payload;
	g->next_id++;
	return true;
}

size_t offload_gro_finish(struct offload_gro *g)
{
	uint8_t *p = g->buf + OFFLOAD_VNET_HDR_LEN, *th;
	struct offload_vnet_hdr hdr;
	uint8_t ipv;
	size_t out;
	uint16_t c;

	if (g->len == 0)
		return 0;
	ipv = p[0] >> 4;
	th = p + g->ip_hlen;
	if (ipv == 4) {
		put16(p + 2, (uint16_t)g->len);
		p[10] = p[11] = 0;
		csum_store(p + 10, csum_partial(p, IPV4_HLEN, 0));
	} else {
		put16(p + 4, (uint16_t)(g->len - IPV6_HLEN));
	}
	/* CHECKSUM_PARTIAL's convention (tcp_v4_send_check, virtio): the
	 * field holds the pseudo-header sum folded, not complemented; the
	 * kernel or the NIC adds the rest and complements. */
	c = csum_fold64(csum_pseudo(p, ipv, PROTO_TCP) + csum_number((uint16_t)(g->len - g->ip_hlen)));
	memcpy(th + TCP_CSUM, &c, 2);

	memset(&hdr, 0, sizeof(hdr));
	hdr.flags = OFFLOAD_F_NEEDS_CSUM;
	hdr.hdr_len = (uint16_t)(g->ip_hlen + g->tcp_hlen);
	hdr.csum_start = g->ip_hlen;
	hdr.csum_offset = TCP_CSUM;
	if (g->segs > 1) {
		hdr.gso_type = ipv == 4 ? OFFLOAD_GSO_TCPV4 : OFFLOAD_GSO_TCPV6;
		/* As tcp_gro_complete: CWR on the first segment. */
		if (th[13] & TCP_CWR)
			hdr.gso_type |= OFFLOAD_GSO_ECN;
		hdr.gso_size = g->gso_size;
	}
	offload_vnet_hdr_write(g->buf, &hdr);

	out = OFFLOAD_VNET_HDR_LEN + g->len;
	offload_gro_reset(g);
	return out;
}
