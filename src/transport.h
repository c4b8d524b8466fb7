/*
 * Datagram transport: the daemon's UDP sockets and batched I/O
 * (recvmmsg/sendmmsg).  Buffers are allocated once at startup; the data
 * path allocates nothing per packet.  Each buffer slot has headroom for the
 * data header in front of the packet and tailroom for padding and the tag,
 * so a packet read from the device is encrypted in place.
 */
#ifndef SALTUN_TRANSPORT_H
#define SALTUN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define TRANSPORT_BATCH 64      /* datagrams per recvmmsg/sendmmsg */

struct daemon;

struct udp_sock {
	struct daemon *d;
	int fd;
	int family;
	bool listening;             /* bound to a configured `listen` address */
	struct sockaddr_storage local;
	uv_poll_t poll;
	bool polling;
};

/* One batch of datagrams, in or out. */
struct udp_batch {
	size_t slot_size;
	uint8_t *mem;                                   /* TRANSPORT_BATCH * slot_size */
	struct mmsghdr msgs[TRANSPORT_BATCH];
	struct iovec iov[TRANSPORT_BATCH];
	struct sockaddr_storage addr[TRANSPORT_BATCH];
	int sock[TRANSPORT_BATCH];                      /* tx: daemon socket of each */
	unsigned count;
};

/* Open a non-blocking UDP socket bound to `addr` (port 0 = ephemeral). */
int udp_sock_open(struct udp_sock *u, struct daemon *d, const struct sockaddr *addr,
		  bool listening);
void udp_sock_close(struct udp_sock *u);

int udp_batch_init(struct udp_batch *b, size_t slot_size);
void udp_batch_free(struct udp_batch *b);
static inline uint8_t *udp_batch_slot(struct udp_batch *b, unsigned i)
{
	return b->mem + (size_t)i * b->slot_size;
}

/* Receive up to TRANSPORT_BATCH datagrams; returns how many, 0 when none,
 * or -errno. */
int udp_batch_recv(struct udp_batch *b, int fd);
/* Send every queued datagram (grouped by socket), then empty the batch.
 * Returns the number that failed (counted by the caller as drops). */
unsigned udp_batch_flush(struct udp_batch *b, const struct udp_sock *socks);

#endif
