/*
 * UDP sockets and batched datagram I/O (Linux recvmmsg/sendmmsg), with UDP
 * GSO on send (UDP_SEGMENT: a run of equal-size datagrams to one address
 * crosses the stack as one buffer) and UDP GRO on receive (UDP_GRO: the
 * kernel hands over such runs whole).  udp(7).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "offload.h"
#include "transport.h"
#include "util.h"

#ifndef SOL_UDP
#define SOL_UDP IPPROTO_UDP
#endif

bool transport_offload_allowed(void)
{
	const char *v = getenv("SALTUN_OFFLOAD");

	return v == NULL || strcmp(v, "off") != 0;
}

int udp_sock_open(struct udp_sock *u, struct daemon *d, const struct sockaddr *addr,
		  bool listening)
{
	int fd, one = 1, rc;
	int bufsz = 4 << 20;
	socklen_t len = sizeof(u->local);

	memset(u, 0, sizeof(*u));
	u->d = d;
	u->fd = -1;
	u->family = addr->sa_family;
	u->listening = listening;

	fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Several daemons in one namespace (tests) and quick restarts. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Keep IPv4 and IPv6 sockets separate: `listen` names each explicitly. */
	if (addr->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	/* Bursts of a fast sender must not overflow the default 208 KiB
	 * buffers; best effort (capped by net.core.*mem_max without CAP_NET_ADMIN). */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	if (bind(fd, addr, util_sockaddr_len(addr)) < 0)
		goto fail;
	if (getsockname(fd, (struct sockaddr *)&u->local, &len) < 0)
		goto fail;
	if (transport_offload_allowed()) {
		int seg = 0;
		socklen_t seglen = sizeof(seg);
		/* GSO is asked per send; a kernel that knows UDP_SEGMENT answers
		 * this getsockopt (4.18+).  GRO must be asked up front, and then
		 * every receive slot must hold a whole run (TRANSPORT_GRO_SLOT). */
		u->gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, &seglen) == 0;
		u->gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	}
	u->fd = fd;
	return 0;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

void udp_sock_close(struct udp_sock *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

int udp_batch_init(struct udp_batch *b, size_t slot_size)
{
	memset(b, 0, sizeof(*b));
	b->slot_size = slot_size;
	b->mem = malloc(TRANSPORT_BATCH * slot_size);
	/* Address space only until a vnet device uses them: pages are touched
	 * by the first super-packet. */
	b->super = malloc(OFFLOAD_VNET_HDR_LEN + OFFLOAD_MAX_PACKET);
	if (b->mem == NULL || b->super == NULL || tun_coalescer_init(&b->gro) < 0) {
		udp_batch_free(b);
		return -ENOMEM;
	}
	return 0;
}

void udp_batch_free(struct udp_batch *b)
{
	free(b->mem);
	b->mem = NULL;
	free(b->super);
	b->super = NULL;
	tun_coalescer_free(&b->gro);
}

/* The GRO segment size of a received message, 0 if it carries none. */
static uint16_t udp_msg_gro_size(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
			int v;
			memcpy(&v, CMSG_DATA(c), sizeof(v));
			return v > 0 && v <= UINT16_MAX ? (uint16_t)v : 0;
		}
	}
	return 0;
}

int udp_batch_recv(struct udp_batch *b, int fd)
{
	int n;

	for (unsigned i = 0; i < TRANSPORT_BATCH; i++) {
		b->iov[i].iov_base = udp_batch_slot(b, i);
		b->iov[i].iov_len = b->slot_size;
		memset(&b->msgs[i].msg_hdr, 0, sizeof(b->msgs[i].msg_hdr));
		b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
		b->msgs[i].msg_hdr.msg_iovlen = 1;
		b->msgs[i].msg_hdr.msg_name = &b->addr[i];
		b->msgs[i].msg_hdr.msg_namelen = sizeof(b->addr[i]);
		b->msgs[i].msg_hdr.msg_control = b->cmsg[i].buf;
		b->msgs[i].msg_hdr.msg_controllen = sizeof(b->cmsg[i].buf);
	}
	n = recvmmsg(fd, b->msgs, TRANSPORT_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	for (int i = 0; i < n; i++)
		b->seg[i] = udp_msg_gro_size(&b->msgs[i].msg_hdr);
	b->count = (unsigned)n;
	return n;
}

/* Pack datagrams [k, j) of one socket into messages from msgs[m] on:
 * with GSO, runs to one address whose datagrams all have the first one's
 * size (the last may be shorter) become one message.  first[] records each
 * message's first datagram and segs[] how many it carries.  Returns the
 * message count after packing.  Messages never outnumber datagrams, so
 * msgs[m] is free to overwrite once datagram m was packed. */
static unsigned udp_batch_pack(struct udp_batch *b, unsigned k, unsigned j, bool gso,
			       unsigned m, unsigned *first, unsigned *segs)
{
	while (k < j) {
		unsigned r = k + 1;
		size_t size = b->iov[k].iov_len, total = size;
		socklen_t alen = util_sockaddr_len((struct sockaddr *)&b->addr[k]);

		while (gso && r < j && r - k < TRANSPORT_GSO_SEGMENTS &&
		       b->iov[r].iov_len <= size && total + b->iov[r].iov_len <= TRANSPORT_GSO_BYTES &&
		       memcmp(&b->addr[r], &b->addr[k], alen) == 0) {
			total += b->iov[r].iov_len;
			/* A shorter datagram can only end a run. */
			if (b->iov[r++].iov_len < size)
				break;
		}
		struct msghdr *mh = &b->msgs[m].msg_hdr;
		memset(mh, 0, sizeof(*mh));
		mh->msg_iov = &b->iov[k];
		mh->msg_iovlen = r - k;
		mh->msg_name = &b->addr[k];
		mh->msg_namelen = alen;
		if (r - k > 1) {
			/* The kernel concatenates the iovecs and cuts every `size`
			 * bytes: the slots need not be contiguous. */
			mh->msg_control = b->cmsg[m].buf;
			mh->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
			struct cmsghdr *c = CMSG_FIRSTHDR(mh);
			uint16_t gso_size = (uint16_t)size;
			c->cmsg_level = SOL_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(gso_size));
			memcpy(CMSG_DATA(c), &gso_size, sizeof(gso_size));
		}
		first[m] = k;
		segs[m] = r - k;
		m++;
		k = r;
	}
	return m;
}

unsigned udp_batch_flush(struct udp_batch *b, const struct udp_sock *socks)
{
	unsigned failed = 0, i = 0;
	unsigned first[TRANSPORT_BATCH], segs[TRANSPORT_BATCH];

	for (unsigned k = 0; k < b->count; k++)
		b->iov[k].iov_base = udp_batch_slot(b, k);
	while (i < b->count) {
		/* A run of datagrams for the same socket goes in one sendmmsg. */
		unsigned j = i + 1;
		while (j < b->count && b->sock[j] == b->sock[i])
			j++;
		const struct udp_sock *u = &socks[b->sock[i]];
		bool gso = u->gso && !b->gso_off;
		unsigned nmsg = udp_batch_pack(b, i, j, gso, 0, first, segs);
		unsigned k = 0;
		while (k < nmsg) {
			int n = sendmmsg(u->fd, &b->msgs[k], nmsg - k, MSG_DONTWAIT);
			if (n > 0) {
				k += (unsigned)n;
				continue;
			}
			if (segs[k] > 1 && (errno == EIO || errno == EINVAL)) {
				/* The route cannot take GSO (no checksum offload, or a
				 * size it refuses): plain sends from now on, and these
				 * datagrams again, one message each. */
				log_info("UDP GSO refused by the kernel (%s): sending datagrams one by one",
					 strerror(errno));
				b->gso_off = true;
				nmsg = udp_batch_pack(b, first[k], j, false, k, first, segs);
				continue;
			}
			/* UDP semantics: a full socket buffer or an unreachable
			 * peer loses these datagrams; skip them and go on. */
			failed += segs[k];
			k++;
		}
		i = j;
	}
	b->count = 0;
	return failed;
}
