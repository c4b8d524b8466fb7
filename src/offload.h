/*
 * virtio-net header offloads for tun devices (IFF_VNET_HDR): segmentation of
 * the kernel's TSO/USO super-packets before encryption, and coalescing of
 * received TCP segments into super-packets before the tun write (as
 * wireguard-go does since 2023).  Pure: no I/O, no allocation.
 */
#ifndef SALTUN_OFFLOAD_H
#define SALTUN_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OFFLOAD_VNET_HDR_LEN 10   /* struct virtio_net_hdr, native endian */
#define OFFLOAD_MAX_PACKET 65535  /* an IP packet (tun, L3) */
/* Most segments coalesced into one super-packet (receive side). */
#define OFFLOAD_MAX_SEGMENTS 64
/* Most segments a kernel super-packet may be split into (send side): the
 * kernel decides the count, from the MSS (tcp_min_snd_mss is 48) or an
 * application's UDP_SEGMENT size (at most 128 datagrams); a small MTU
 * (576) already gives over 100.  Only an absurd count is refused. */
#define OFFLOAD_SEG_MAX_SEGMENTS 2048

enum offload_vnet_flags {
	OFFLOAD_F_NEEDS_CSUM = 1,  /* complete the checksum at csum_start+csum_offset */
	OFFLOAD_F_DATA_VALID = 2,  /* checksum already verified */
};

enum offload_gso_type {
	OFFLOAD_GSO_NONE = 0,
	OFFLOAD_GSO_TCPV4 = 1,
	OFFLOAD_GSO_UDP = 3,       /* UFO (IP fragments): never accepted */
	OFFLOAD_GSO_TCPV6 = 4,
	OFFLOAD_GSO_UDP_L4 = 5,    /* USO: each segment its own UDP datagram */
	OFFLOAD_GSO_ECN = 0x80,    /* flag: the TCP super-packet carries CWR */
};

/* Mirror of struct virtio_net_hdr (own definition so FreeBSD builds). */
struct offload_vnet_hdr {
	uint8_t flags;            /* OFFLOAD_F_* */
	uint8_t gso_type;         /* OFFLOAD_GSO_*, optionally | OFFLOAD_GSO_ECN */
	uint16_t hdr_len, gso_size, csum_start, csum_offset;
};

/* False when fewer than OFFLOAD_VNET_HDR_LEN bytes; the fields are only
 * read, offload_seg_init judges them. */
bool offload_vnet_hdr_parse(struct offload_vnet_hdr *h, const uint8_t *p, size_t len);
/* Writes exactly OFFLOAD_VNET_HDR_LEN bytes. */
void offload_vnet_hdr_write(uint8_t *p, const struct offload_vnet_hdr *h);

/*
 * Segmentation iterator over one packet read from a tun with vnet header
 * (hdr already parsed; pkt = the IP packet after the header).  Validates
 * everything (IPv4/IPv6, TCP/UDP, header lengths, csum_start/offset inside
 * the packet, gso_size > 0, segment count <= OFFLOAD_SEG_MAX_SEGMENTS): false
 * from init = drop it (count it).  With gso_type NONE it yields the packet
 * itself once (any IP packet: nothing is parsed), with its checksum
 * completed when NEEDS_CSUM is set.  Each segment is a complete IP packet
 * with correct IP total length/ID/checksum (IPv4), payload length (IPv6),
 * TCP sequence number, flags (FIN/PSH only on the last, CWR only on the
 * first), and a FULL TCP/UDP checksum.
 *
 * The iterator points into pkt, which must stay unchanged until done.
 */
struct offload_seg_iter {
	const uint8_t *pkt;
	size_t len;              /* of pkt */
	uint32_t pseudo;         /* addresses + protocol, partial sum */
	uint32_t seq;            /* TCP sequence number of the first segment */
	uint16_t ip_id;          /* IPv4 ID of the first segment */
	uint16_t hlen;           /* IP + TCP/UDP header bytes: the L4 header offset + l4_hlen */
	uint16_t l4_off;         /* csum_start: where the TCP/UDP header begins */
	uint16_t l4_hlen;
	uint16_t gso_size;       /* payload bytes per segment */
	uint16_t csum_offset;    /* NONE + NEEDS_CSUM: field offset from l4_off */
	uint32_t off;            /* payload bytes already yielded */
	uint32_t payload;        /* payload bytes in all */
	uint16_t index;          /* segments yielded */
	uint8_t kind;            /* private: enum in offload.c */
	uint8_t ipv;             /* 4 or 6 */
};
bool offload_seg_init(struct offload_seg_iter *it, const struct offload_vnet_hdr *h,
		      const uint8_t *pkt, size_t len);
/* Write the next segment into dst (capacity cap); returns its length, 0
 * when done, or -EMSGSIZE when cap is too small (the iterator does not
 * move: a retry with a bigger dst gets the same segment). */
ssize_t offload_seg_next(struct offload_seg_iter *it, uint8_t *dst, size_t cap);

/*
 * Receive-side coalescing (TCP GRO, IPv4 and IPv6, tun): packets that are
 * consecutive segments of one TCP flow (same addresses/ports, IP header
 * fields that must match do, TCP options identical, seq contiguous, ACK
 * flag only, or PSH on the last; no SYN/FIN/RST/URG/CWR-after-first, no IP
 * options/fragments, equal gso_size except a shorter last) are appended
 * into one super-packet of at most OFFLOAD_MAX_PACKET bytes and
 * OFFLOAD_MAX_SEGMENTS segments.  g->buf holds OFFLOAD_VNET_HDR_LEN + the
 * packet.
 *
 * Every segment taken has its TCP checksum verified (in the same pass that
 * copies it): the finished packet carries NEEDS_CSUM, which the kernel
 * trusts, so a corrupt segment must never be hidden inside one.
 */
struct offload_gro {
	uint8_t buf[OFFLOAD_VNET_HDR_LEN + OFFLOAD_MAX_PACKET];
	size_t len;               /* bytes of IP packet in buf after the vnet header; 0 = empty */
	/* private */
	uint32_t next_seq;        /* sequence number the next segment must have */
	uint16_t next_id;         /* IPv4 ID the next segment must have */
	uint16_t gso_size;        /* payload of the first segment */
	uint16_t ip_hlen, tcp_hlen;
	uint8_t segs;             /* segments held */
	bool closed;              /* PSH or a short segment taken: nothing may follow */
};
void offload_gro_reset(struct offload_gro *g);
/* Append pkt when it continues the held super-packet (or start one when
 * empty and pkt is a TCP segment that could start one).  False: not taken
 * (caller flushes g if it holds something, then retries once or writes pkt
 * on its own with a zero vnet header).  The held packet is unchanged when
 * false. */
bool offload_gro_add(struct offload_gro *g, const uint8_t *pkt, size_t len);
/* Finish the held packet: fix IP lengths/checksum, set the vnet header
 * (gso_type TCPV4/TCPV6 with gso_size when it holds >1 segment, else NONE;
 * NEEDS_CSUM with csum_start/csum_offset and the pseudo-header checksum in
 * the TCP checksum field), return the bytes to write (header + packet)
 * starting at g->buf, and leave g empty.  0 when empty.  The bytes stay in
 * g->buf until the next offload_gro_add. */
size_t offload_gro_finish(struct offload_gro *g);

/*
 * Checksum helpers (Internet checksum, RFC 1071), exposed for tests.  Sums
 * are in memory order, as the kernel's __wsum: a 16-bit value from them is
 * stored with memcpy (never htons), and a number n is added as the bytes of
 * htons(n).  Chain calls over chunks of even length (only the last may be
 * odd).
 */
/* Fold to 16 bits: the one's complement sum, NOT complemented (the partial
 * checksum virtio expects); a finished checksum field is ~fold. */
uint16_t offload_csum_fold(uint32_t sum);
/* sum + the bytes of data, as a 32-bit one's complement partial sum. */
uint32_t offload_csum_add(uint32_t sum, const void *data, size_t len);

#endif
