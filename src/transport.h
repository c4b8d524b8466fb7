/*
 * Transports.  Datagram: the daemon's UDP sockets and batched I/O
 * (recvmmsg/sendmmsg); stream: TCP, further down.  Buffers are allocated
 * once at startup; the data path allocates nothing per packet.  Each
 * buffer slot has headroom for the data header in front of the packet and
 * tailroom for padding and the tag, so a packet read from the device is
 * encrypted in place.
 */
#ifndef SALTUN_TRANSPORT_H
#define SALTUN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "conf.h"
#include "log.h"
#include "tun.h"

#define TRANSPORT_BATCH 64      /* datagrams per recvmmsg/sendmmsg */
/* UDP GSO/GRO (Linux 4.18/5.0): one send or receive carries a run of
 * equal-size datagrams, at most 64 of them and 64 KiB in all (the IP
 * length field; UDP_MAX_SEGMENTS was 64 before Linux 6.x raised it). */
#define TRANSPORT_GSO_SEGMENTS 64
#define TRANSPORT_GSO_BYTES 65000
/* A receive slot that may get a coalesced (GRO) run: the kernel truncates
 * what does not fit, so it must hold the largest. */
#define TRANSPORT_GRO_SLOT 65536

/* Whether the offloads (tun TSO/USO, UDP GSO/GRO) may be used at all:
 * SALTUN_OFFLOAD=off in the environment forces the plain data path. */
bool transport_offload_allowed(void);

struct daemon;

struct udp_sock {
	struct daemon *d;
	int fd;
	int family;
	bool listening;             /* bound to a configured `listen` address */
	struct sockaddr_storage local;
	uv_poll_t poll;
	bool polling;
	bool gso;                   /* the kernel takes UDP_SEGMENT on this socket */
	bool gro;                   /* UDP_GRO is on: a received slot may hold a run */
};

/* Control-message room for one UDP_SEGMENT (tx) or UDP_GRO (rx) value. */
union udp_cmsg {
	char buf[CMSG_SPACE(sizeof(int))];
	struct cmsghdr align;
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
	/* rx: with UDP GRO, slot i holds a run of datagrams of seg[i] bytes
	 * each (the last may be shorter); 0 = one datagram. */
	uint16_t seg[TRANSPORT_BATCH];
	union udp_cmsg cmsg[TRANSPORT_BATCH];
	bool gso_off;                                   /* tx: the kernel refused GSO once */
	/* The tun offload path's daemon-wide buffers ride here, allocated
	 * with the batch (untouched memory until a vnet device uses them):
	 * tx: a super-packet read from a device (vnet header + 64 KiB),
	 * split into the slots; rx: TCP segments decrypted from this batch,
	 * coalesced into one device write. */
	uint8_t *super;
	struct tun_coalescer gro;
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

/* Receive up to TRANSPORT_BATCH datagrams (or GRO runs: see seg); returns
 * how many slots were filled, 0 when none, or -errno. */
int udp_batch_recv(struct udp_batch *b, int fd);
/* Send every queued datagram (grouped by socket; runs of equal-size
 * datagrams to one address in one GSO send where the socket allows), then
 * empty the batch.  Returns the number that failed (counted by the caller
 * as drops).  A GSO send the kernel refuses (EIO: no checksum offload on
 * the route; EINVAL) turns GSO off for this batch and goes out plainly. */
unsigned udp_batch_flush(struct udp_batch *b, const struct udp_sock *socks);

/*
 * Stream transport (DESIGN §3 "TCP", transport_tcp.c): a TCP listener on the
 * address and port of every listening UDP socket, and one dialed connection
 * per session with transport = tcp and an endpoint.  Messages are framed by
 * tcp_frame.h.  A connection carries data only once a handshake has
 * authenticated over it (it is then "bound" to that session); until then it
 * is held to a deadline and to caps on how many may wait.
 */
#define TCP_UNAUTH_MAX 128              /* accepted, unauthenticated connections in all */
#define TCP_UNAUTH_PER_SOURCE 8         /* ... from one source address */
#define TCP_HANDSHAKE_DEADLINE_MS 5000  /* to authenticate (dialed: to connect and do so) */
#define TCP_WQ_MAX_FRAMES 256           /* write queue: data frames waiting per connection */
#define TCP_WQ_MAX_BYTES (256 * 1024)   /* ... and their bytes, headers included */
#define TCP_WQ_HANDSHAKE_FRAMES 4       /* handshake frames may go this far past the limits */
#define TCP_WQ_HANDSHAKE_BYTES 1024
#define TCP_REDIAL_MIN_MS 1000          /* reconnect backoff: 1 s, 2 s, 4 s ... 60 s */
#define TCP_REDIAL_MAX_MS 60000

struct session;
struct tcp_conn;                        /* one connection; private to transport_tcp.c */

struct tcp_listener {
	struct daemon *d;
	uv_tcp_t handle;
	bool open;
};

/* What the TCP side refused or lost, for status and tests. */
struct tcp_stats {
	uint64_t accepted, refused_cap_total, refused_cap_source, handshake_timeouts,
		bad_frames, refused_frames, wrong_transport, dials, dial_failures, write_errors;
};

struct tcp_transport {
	struct tcp_listener listeners[CONF_MAX_LISTEN];
	unsigned nlisteners;
	struct tcp_conn *conns;         /* every open connection (intrusive list) */
	unsigned nunauth;               /* accepted and not yet bound */
	uint8_t *rxbuf;                 /* shared: libuv calls alloc and read back to back */
	struct tcp_stats st;
	struct ratelimit rl_cap_total, rl_cap_source, rl_bad, rl_timeout;
	bool closed;                    /* shutting down: no accept, no redial */
};

/* Listeners beside every listening UDP socket (a port that cannot be had
 * for TCP is logged, UDP goes on).  0 or -errno (no memory). */
int tcp_transport_open(struct daemon *d);
/* Close every connection and listener; their memory goes in the close
 * callbacks, so run the loop afterwards. */
void tcp_transport_close(struct daemon *d);

/* A session with transport = tcp and an endpoint dials now; no-op otherwise. */
void tcp_session_start(struct session *s);
/* The session stops: no more redial; its connections are closed. */
void tcp_session_stop(struct session *s);
/* Sends for `s` go over TCP: it has a bound connection, or is configured
 * for TCP (then nothing is ever sent over UDP). */
bool tcp_session_active(const struct session *s);
/* Frame `msg` into the queue of s's connection (handshake messages may use
 * the dialed connection before it is bound).  A drop is counted in s's
 * stats: no_endpoint, queue_full, too_big or send_failed. */
void tcp_session_send(struct session *s, const uint8_t *msg, size_t len);
/* A handshake over UDP authenticated: UDP takes over, the bound connection
 * (if any) is closed. */
void tcp_session_unbind(struct session *s);

/* A message that arrived on `c` (NULL: over UDP) may concern `s`: over UDP,
 * unless s is a TCP session; over TCP, when c is bound to s, or unbound and
 * carries an initiation (dialed connections: only for their own session)
 * or, when s dialed c, a response or cookie reply. */
bool tcp_conn_may_carry(const struct tcp_conn *c, const struct session *s, int wire_type);
/* A handshake (or data) authenticated over `c` for `s`: bind c to s (a
 * newly bound connection replaces s's old one) and mark the message as
 * authentic.  Called by the session's consumers on success only. */
void tcp_conn_bind(struct tcp_conn *c, struct session *s);
/* Whether the message being consumed authenticated (true for NULL). */
bool tcp_conn_verified(const struct tcp_conn *c);
/* Queue one framed message on `c`.  0; -ENOBUFS when the queue is full
 * (handshake messages have a small reserve); -EMSGSIZE; -EPIPE when closing. */
int tcp_conn_send(struct tcp_conn *c, const uint8_t *msg, size_t len, bool handshake);
/* Peer address of `c` (the source of its messages). */
const struct sockaddr *tcp_conn_peer(const struct tcp_conn *c);
/* Walk the daemon's open connections (status, tests):
 * for (c = d->tcp.conns; c != NULL; c = tcp_conn_next(c)). */
struct tcp_conn *tcp_conn_next(const struct tcp_conn *c);

#endif
