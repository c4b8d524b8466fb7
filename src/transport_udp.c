/*
 * UDP sockets and batched datagram I/O (Linux recvmmsg/sendmmsg).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "transport.h"
#include "util.h"

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
	if (b->mem == NULL)
		return -ENOMEM;
	return 0;
}

void udp_batch_free(struct udp_batch *b)
{
	free(b->mem);
	b->mem = NULL;
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
	}
	n = recvmmsg(fd, b->msgs, TRANSPORT_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	b->count = (unsigned)n;
	return n;
}

unsigned udp_batch_flush(struct udp_batch *b, const struct udp_sock *socks)
{
	unsigned failed = 0, i = 0;

	while (i < b->count) {
		/* A run of datagrams for the same socket goes in one sendmmsg. */
		unsigned j = i + 1;
		while (j < b->count && b->sock[j] == b->sock[i])
			j++;
		for (unsigned k = i; k < j; k++) {
			memset(&b->msgs[k].msg_hdr, 0, sizeof(b->msgs[k].msg_hdr));
			b->iov[k].iov_base = udp_batch_slot(b, k);
			b->msgs[k].msg_hdr.msg_iov = &b->iov[k];
			b->msgs[k].msg_hdr.msg_iovlen = 1;
			b->msgs[k].msg_hdr.msg_name = &b->addr[k];
			b->msgs[k].msg_hdr.msg_namelen =
				util_sockaddr_len((struct sockaddr *)&b->addr[k]);
		}
		unsigned k = i;
		while (k < j) {
			int n = sendmmsg(socks[b->sock[i]].fd, &b->msgs[k], j - k, MSG_DONTWAIT);
			if (n <= 0) {
				/* UDP semantics: a full socket buffer or an unreachable
				 * peer loses this datagram; skip it and go on. */
				failed++;
				k++;
			} else {
				k += (unsigned)n;
			}
		}
		i = j;
	}
	b->count = 0;
	return failed;
}
