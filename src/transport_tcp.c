/*
 * Stream transport: TCP listeners beside the UDP sockets, accepted and
 * dialed connections, framing (tcp_frame.h), bounded write queues, and
 * the dialer's reconnect with exponential backoff.  DESIGN §3 "TCP".
 *
 * A connection's life:
 *
 *   accepted ──> unauthenticated ──(handshake authenticates)──> bound to a session
 *   dialed ──> connecting ──> connected ──(response authenticates)──> bound
 *
 * Until it is bound, a connection may carry only handshake messages (the
 * decoder refuses frames longer than an initiation), must authenticate
 * within TCP_HANDSHAKE_DEADLINE_MS, and accepted ones count against
 * TCP_UNAUTH_MAX and TCP_UNAUTH_PER_SOURCE.  Anything malformed or refused
 * closes that connection only.  A newly bound connection replaces the
 * session's old one; an unauthenticated one never displaces it.
 *
 * Memory: one allocation per connection (handles, decoder, write ring),
 * freed in the close callback of the last of its two handles.  The data
 * path allocates nothing: received frames are decoded in place in one
 * shared read buffer where they arrive whole, and sent frames are copied
 * into a fixed ring.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon.h"
#include "log.h"
#include "session.h"
#include "tcp_frame.h"
#include "transport.h"
#include "util.h"

#define TCP_RXBUF_LEN 65536
#define TCP_WQ_CAPACITY (TCP_WQ_MAX_BYTES + TCP_WQ_HANDSHAKE_BYTES)
/* Dead peers: the kernel gives up on unacknowledged data after this long
 * (TCP_USER_TIMEOUT) and probes idle connections (keepalive), so a dialer
 * notices a vanished peer in seconds, not after 15 minutes of retransmits. */
#define TCP_USER_TIMEOUT_MS 30000
#define TCP_KEEPALIVE_S 15
#define TCP_DEADLINE_FLOOR_MS 500

struct tcp_conn {
	uv_tcp_t handle;
	uv_timer_t deadline;            /* handshake deadline while unbound */
	uv_connect_t connect_req;
	uv_write_t write_req;
	struct daemon *d;
	struct tcp_conn *next, *prev;   /* d->tcp.conns */
	struct session *session;        /* bound: a handshake authenticated over it */
	struct session *dialer;         /* we dialed it for this session */
	struct sockaddr_storage peer;
	bool connected;                 /* accepted, or dialed and connect succeeded */
	bool unauth_counted;            /* counts against the caps */
	bool verified;                  /* the message being consumed authenticated */
	bool closing;
	unsigned open_handles;          /* freed when the last one has closed */

	/* Write ring: whole frames only.  [head, head + used) is queued, of
	 * which the first `inflight` bytes are in the current uv_write. */
	size_t wq_head, wq_used, wq_inflight;
	unsigned wq_frames, wq_inflight_frames;

	struct tcp_frame_decoder dec;
	uint8_t wq[TCP_WQ_CAPACITY];
};

static void tcp_conn_close(struct tcp_conn *c, const char *why);
static void tcp_session_redial_schedule(struct session *s);

static uint64_t tcp_scaled(const struct daemon *d, uint64_t ms, uint64_t floor)
{
	uint64_t v = ms / (d->time_scale ? d->time_scale : 1);
	return v < floor ? floor : v;
}

static bool tcp_session_dials(const struct session *s)
{
	return s->cs->transport == CONF_TRANSPORT_TCP && s->cs->has_endpoint;
}

/* One line per event a remote party can trigger, rate-limited. */
static void tcp_log_limited(struct daemon *d, struct ratelimit *rl, const struct sockaddr *peer,
			    const char *what)
{
	uint32_t suppressed;
	char addr[UTIL_ADDRSTRLEN];

	if (!ratelimit_allow(rl, util_now_ms(), &suppressed))
		return;
	log_warnx("tcp connection from %s: %s%s", util_sockaddr_str(peer, addr, sizeof(addr)), what,
		  suppressed ? " (more suppressed)" : "");
}

/* ------------------------------------------------------------ lifecycle */

static struct tcp_conn *tcp_conn_new(struct daemon *d)
{
	/* Not calloc: the 64 KiB decoder buffer and the ring are written before
	 * they are read, and pages never touched cost no memory. */
	struct tcp_conn *c = malloc(sizeof(*c));

	if (c == NULL)
		return NULL;
	memset(c, 0, offsetof(struct tcp_conn, dec));
	c->d = d;
	tcp_frame_decoder_init(&c->dec, WIRE_INITIATION_LEN);
	c->next = d->tcp.conns;
	if (c->next != NULL)
		c->next->prev = c;
	d->tcp.conns = c;
	return c;
}

static void tcp_conn_on_close(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;

	if (--c->open_handles == 0)
		free(c);
}

static void tcp_unauth_uncount(struct tcp_conn *c)
{
	if (c->unauth_counted) {
		c->unauth_counted = false;
		c->d->tcp.nunauth--;
	}
}

/* Close both handles (pending writes are cancelled); unlink from the
 * daemon and the session at once, so nothing sends on it any more.  Safe
 * from inside any callback of this connection: memory goes only in the
 * close callbacks. */
static void tcp_conn_close(struct tcp_conn *c, const char *why)
{
	struct daemon *d = c->d;
	struct session *s = NULL;
	char addr[UTIL_ADDRSTRLEN];

	if (c->closing)
		return;
	c->closing = true;
	tcp_unauth_uncount(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->tcp.conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;

	if (c->session != NULL && c->session->conn == c) {
		s = c->session;
		s->conn = NULL;
	}
	if (c->dialer != NULL && c->dialer->dial == c) {
		s = c->dialer;
		s->dial = NULL;
	}
	/* Connections that never reached a session close without a line here:
	 * their callers log them, rate-limited. */
	struct session *owner = c->session != NULL ? c->session : c->dialer;
	if (owner != NULL && why != NULL)
		log_info("%s: tcp connection %s %s closed: %s", owner->name, c->dialer ? "to" : "from",
			 util_sockaddr_str((struct sockaddr *)&c->peer, addr, sizeof(addr)), why);
	if (c->open_handles == 0) {
		/* Never got a handle (init failed): nothing to wait for. */
		free(c);
	} else {
		uv_close((uv_handle_t *)&c->handle, tcp_conn_on_close);
		if (c->open_handles == 2)
			uv_close((uv_handle_t *)&c->deadline, tcp_conn_on_close);
	}
	if (s != NULL)
		tcp_session_redial_schedule(s);
}

static void tcp_conn_on_deadline(uv_timer_t *t)
{
	struct tcp_conn *c = container_of(t, struct tcp_conn, deadline);
	struct daemon *d = c->d;

	d->tcp.st.handshake_timeouts++;
	if (c->dialer != NULL)
		tcp_conn_close(c, c->connected ? "no handshake in time" : "connect timed out");
	else {
		tcp_log_limited(d, &d->tcp.rl_timeout, (struct sockaddr *)&c->peer,
				"closed: no handshake in time");
		tcp_conn_close(c, NULL);
	}
}

/* Socket options of every connection, best effort: latency (no Nagle
 * delay on small handshake and keepalive frames) and dead-peer detection. */
static void tcp_conn_tune(struct tcp_conn *c)
{
	uv_os_fd_t fd;
	unsigned timeout = TCP_USER_TIMEOUT_MS;

	(void)uv_tcp_nodelay(&c->handle, 1);
	(void)uv_tcp_keepalive(&c->handle, 1, TCP_KEEPALIVE_S);
	if (uv_fileno((uv_handle_t *)&c->handle, &fd) == 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof(timeout));
}

/* ------------------------------------------------------------ writing */

static void tcp_conn_kick(struct tcp_conn *c);

static void tcp_conn_on_write(uv_write_t *req, int status)
{
	struct tcp_conn *c = container_of(req, struct tcp_conn, write_req);

	if (c->closing)
		return; /* UV_ECANCELED: the ring goes with the connection */
	if (status < 0) {
		c->d->tcp.st.write_errors++;
		tcp_conn_close(c, uv_strerror(status));
		return;
	}
	c->wq_head = (c->wq_head + c->wq_inflight) % TCP_WQ_CAPACITY;
	c->wq_used -= c->wq_inflight;
	c->wq_frames -= c->wq_inflight_frames;
	c->wq_inflight = 0;
	c->wq_inflight_frames = 0;
	tcp_conn_kick(c);
}

/* One write at a time, of everything queued (at most two pieces when the
 * ring wraps): frames queued while it is in flight go in the next one. */
static void tcp_conn_kick(struct tcp_conn *c)
{
	uv_buf_t bufs[2];
	unsigned n = 1;
	size_t first;
	int rc;

	if (c->closing || !c->connected || c->wq_inflight > 0 || c->wq_used == 0)
		return;
	first = TCP_WQ_CAPACITY - c->wq_head;
	if (first > c->wq_used)
		first = c->wq_used;
	bufs[0] = uv_buf_init((char *)c->wq + c->wq_head, (unsigned)first);
	if (first < c->wq_used)
		bufs[n++] = uv_buf_init((char *)c->wq, (unsigned)(c->wq_used - first));
	c->wq_inflight = c->wq_used;
	c->wq_inflight_frames = c->wq_frames;
	rc = uv_write(&c->write_req, (uv_stream_t *)&c->handle, bufs, n, tcp_conn_on_write);
	if (rc < 0) {
		c->d->tcp.st.write_errors++;
		tcp_conn_close(c, uv_strerror(rc));
	}
}

static void tcp_ring_put(struct tcp_conn *c, size_t at, const uint8_t *p, size_t len)
{
	size_t first = TCP_WQ_CAPACITY - at;

	if (first >= len) {
		memcpy(c->wq + at, p, len);
	} else {
		memcpy(c->wq + at, p, first);
		memcpy(c->wq, p + first, len - first);
	}
}

int tcp_conn_send(struct tcp_conn *c, const uint8_t *msg, size_t len, bool handshake)
{
	uint8_t hdr[TCP_FRAME_HEADER_LEN];
	size_t flen = TCP_FRAME_HEADER_LEN + len, at;
	/* Data fills the queue up to its limits; handshake messages (small,
	 * rare, and what recovers a stuck session) have a reserve beyond. */
	size_t max_bytes = TCP_WQ_MAX_BYTES + (handshake ? TCP_WQ_HANDSHAKE_BYTES : 0);
	unsigned max_frames = TCP_WQ_MAX_FRAMES + (handshake ? TCP_WQ_HANDSHAKE_FRAMES : 0);

	if (c->closing)
		return -EPIPE;
	if (tcp_frame_header_put(hdr, len) < 0)
		return -EMSGSIZE;
	if (c->wq_used + flen > max_bytes || c->wq_frames >= max_frames)
		return -ENOBUFS; /* whole frames only: never half of one */
	at = (c->wq_head + c->wq_used) % TCP_WQ_CAPACITY;
	tcp_ring_put(c, at, hdr, sizeof(hdr));
	tcp_ring_put(c, (at + sizeof(hdr)) % TCP_WQ_CAPACITY, msg, len);
	c->wq_used += flen;
	c->wq_frames++;
	tcp_conn_kick(c);
	return 0;
}

/* ------------------------------------------------------------ reading */

static void tcp_conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tcp_conn *c = h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)c->d->tcp.rxbuf, TCP_RXBUF_LEN);
}

static void tcp_conn_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_conn *c = h->data;
	struct daemon *d = c->d;
	uint8_t *in = (uint8_t *)buf->base, *msg;
	size_t inlen, len;

	if (nread == 0)
		return;
	if (nread < 0) {
		tcp_conn_close(c, nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
		return;
	}
	inlen = (size_t)nread;
	while (!c->closing) {
		enum tcp_frame_result r = tcp_frame_decode(&c->dec, &in, &inlen, &msg, &len);
		if (r == TCP_FRAME_MORE)
			break;
		if (r != TCP_FRAME_READY) {
			d->tcp.st.bad_frames++;
			tcp_log_limited(d, &d->tcp.rl_bad, (struct sockaddr *)&c->peer,
					c->session != NULL || c->dialer != NULL
					? tcp_frame_result_name(r)
					: (r == TCP_FRAME_OVERSIZE ? "closed: first frame is not a handshake message"
					   : "closed: frame of length 0"));
			tcp_conn_close(c, tcp_frame_result_name(r));
			break;
		}
		c->verified = false;
		if (!daemon_consume(d, msg, len, (struct sockaddr *)&c->peer, -1, c)) {
			d->tcp.st.refused_frames++;
			tcp_log_limited(d, &d->tcp.rl_bad, (struct sockaddr *)&c->peer,
					"closed: message refused (malformed, unauthenticated or not for us)");
			tcp_conn_close(c, "message refused");
			break;
		}
	}
	daemon_flush(d);
}

static int tcp_conn_start(struct tcp_conn *c)
{
	int rc;

	c->handle.data = c;
	c->deadline.data = c;
	if ((rc = uv_timer_init(&c->d->loop, &c->deadline)) < 0)
		return rc;
	c->open_handles++;
	return uv_timer_start(&c->deadline, tcp_conn_on_deadline,
			      tcp_scaled(c->d, TCP_HANDSHAKE_DEADLINE_MS, TCP_DEADLINE_FLOOR_MS), 0);
}

/* ------------------------------------------------------------ accepting */

static unsigned tcp_unauth_from(struct daemon *d, const struct sockaddr *peer)
{
	unsigned n = 0;

	for (struct tcp_conn *c = d->tcp.conns; c != NULL; c = c->next) {
		if (!c->unauth_counted || c->peer.ss_family != peer->sa_family)
			continue;
		if (peer->sa_family == AF_INET
		    ? memcmp(&((struct sockaddr_in *)&c->peer)->sin_addr,
			     &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4) == 0
		    : memcmp(&((struct sockaddr_in6 *)&c->peer)->sin6_addr,
			     &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, 16) == 0)
			n++;
	}
	return n;
}

static void tcp_on_connection(uv_stream_t *server, int status)
{
	struct tcp_listener *l = container_of(server, struct tcp_listener, handle);
	struct daemon *d = l->d;
	struct tcp_conn *c;
	int namelen = sizeof(c->peer), rc;

	if (status < 0 || d->tcp.closed)
		return;
	c = tcp_conn_new(d);
	if (c == NULL) {
		log_warnx("tcp: no memory for a new connection");
		return;
	}
	if ((rc = uv_tcp_init(&d->loop, &c->handle)) < 0) {
		tcp_conn_close(c, NULL);
		return;
	}
	c->handle.data = c;
	c->open_handles = 1;
	if (uv_accept(server, (uv_stream_t *)&c->handle) < 0 ||
	    uv_tcp_getpeername(&c->handle, (struct sockaddr *)&c->peer, &namelen) < 0) {
		tcp_conn_close(c, NULL);
		return;
	}
	/* Over a cap: closed at once, before a byte is read.  A live session's
	 * connection is bound and never counts here. */
	if (d->tcp.nunauth >= TCP_UNAUTH_MAX) {
		d->tcp.st.refused_cap_total++;
		tcp_log_limited(d, &d->tcp.rl_cap_total, (struct sockaddr *)&c->peer,
				"refused: too many unauthenticated connections");
		tcp_conn_close(c, NULL);
		return;
	}
	if (tcp_unauth_from(d, (struct sockaddr *)&c->peer) >= TCP_UNAUTH_PER_SOURCE) {
		d->tcp.st.refused_cap_source++;
		tcp_log_limited(d, &d->tcp.rl_cap_source, (struct sockaddr *)&c->peer,
				"refused: too many unauthenticated connections from this address");
		tcp_conn_close(c, NULL);
		return;
	}
	c->unauth_counted = true;
	d->tcp.nunauth++;
	c->connected = true;
	d->tcp.st.accepted++;
	tcp_conn_tune(c);
	if (tcp_conn_start(c) < 0 ||
	    uv_read_start((uv_stream_t *)&c->handle, tcp_conn_on_alloc, tcp_conn_on_read) < 0) {
		tcp_conn_close(c, NULL);
		return;
	}
}

int tcp_transport_open(struct daemon *d)
{
	char addr[UTIL_ADDRSTRLEN];
	int rc;

	d->tcp.rl_cap_total = d->tcp.rl_cap_source = (struct ratelimit)RATELIMIT_INIT;
	d->tcp.rl_bad = d->tcp.rl_timeout = (struct ratelimit)RATELIMIT_INIT;
	d->tcp.rxbuf = malloc(TCP_RXBUF_LEN);
	if (d->tcp.rxbuf == NULL)
		return -ENOMEM;
	/* The same address and port as each listening UDP socket (its port
	 * may have been chosen by the kernel). */
	for (unsigned i = 0; i < d->nsocks; i++) {
		const struct udp_sock *u = &d->socks[i];
		struct tcp_listener *l = &d->tcp.listeners[d->tcp.nlisteners];
		const struct sockaddr *sa = (const struct sockaddr *)&u->local;

		if (!u->listening || d->tcp.nlisteners == CONF_MAX_LISTEN)
			continue;
		l->d = d;
		if ((rc = uv_tcp_init_ex(&d->loop, &l->handle, u->family)) < 0)
			goto fail;
		l->open = true;
		d->tcp.nlisteners++;
		/* libuv sets SO_REUSEADDR: quick restarts; IPv6 sockets stay v6
		 * only, as the UDP ones. */
		rc = uv_tcp_bind(&l->handle, sa, u->family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&l->handle, SOMAXCONN, tcp_on_connection);
		if (rc < 0)
			goto fail;
		log_info("listening on %s (tcp)", util_sockaddr_str(sa, addr, sizeof(addr)));
		continue;
fail:
		log_warnx("cannot listen on %s (tcp): %s; UDP only there",
			  util_sockaddr_str(sa, addr, sizeof(addr)), uv_strerror(rc));
	}
	return 0;
}

void tcp_transport_close(struct daemon *d)
{
	d->tcp.closed = true;
	while (d->tcp.conns != NULL)
		tcp_conn_close(d->tcp.conns, NULL);
	for (unsigned i = 0; i < d->tcp.nlisteners; i++) {
		struct tcp_listener *l = &d->tcp.listeners[i];
		if (l->open && !uv_is_closing((uv_handle_t *)&l->handle))
			uv_close((uv_handle_t *)&l->handle, NULL);
		l->open = false;
	}
	/* No read callback can come: every connection is closing. */
	free(d->tcp.rxbuf);
	d->tcp.rxbuf = NULL;
}

/* ------------------------------------------------------------ dialing */

static void tcp_on_connect(uv_connect_t *req, int status)
{
	struct tcp_conn *c = container_of(req, struct tcp_conn, connect_req);
	struct session *s = c->dialer;
	char addr[UTIL_ADDRSTRLEN];

	if (c->closing)
		return; /* UV_ECANCELED */
	if (status < 0) {
		c->d->tcp.st.dial_failures++;
		log_info("%s: cannot connect to %s (tcp): %s", s->name,
			 util_sockaddr_str((struct sockaddr *)&c->peer, addr, sizeof(addr)),
			 uv_strerror(status));
		tcp_conn_close(c, NULL);
		return;
	}
	c->connected = true;
	tcp_conn_tune(c);
	if (uv_read_start((uv_stream_t *)&c->handle, tcp_conn_on_alloc, tcp_conn_on_read) < 0) {
		tcp_conn_close(c, "cannot read");
		return;
	}
	log_debug("%s: tcp connected to %s", s->name,
		  util_sockaddr_str((struct sockaddr *)&c->peer, addr, sizeof(addr)));
	/* The handshake binds this connection; until then it carries nothing else. */
	session_initiate(s);
	daemon_flush(c->d);
}

static void tcp_session_dial(struct session *s)
{
	struct daemon *d = s->d;
	struct tcp_conn *c;
	int rc;

	if (s->stopping || d->tcp.closed || s->dial != NULL || s->conn != NULL)
		return;
	if (!s->cs->endpoint.is_literal) {
		/* A hostname: dial its next resolved address, and look it up
		 * again on every attempt (dynamic DNS); with none known yet,
		 * try again after the backoff. */
		if (s->nresolved > 0)
			session_resolved_next(s);
		session_resolve(s);
		if (!s->has_endpoint) {
			tcp_session_redial_schedule(s);
			return;
		}
	}
	c = tcp_conn_new(d);
	if (c == NULL) {
		log_warnx("%s: no memory for a tcp connection", s->name);
		tcp_session_redial_schedule(s);
		return;
	}
	if (s->cs->endpoint.is_literal)
		memcpy(&c->peer, &s->cs->endpoint.addr, sizeof(c->peer));
	else
		memcpy(&c->peer, &s->endpoint, sizeof(c->peer));
	if ((rc = uv_tcp_init(&d->loop, &c->handle)) < 0) {
		tcp_conn_close(c, NULL);
		tcp_session_redial_schedule(s);
		return;
	}
	c->open_handles = 1;
	c->dialer = s;
	s->dial = c;
	d->tcp.st.dials++;
	rc = tcp_conn_start(c);
	if (rc == 0)
		rc = uv_tcp_connect(&c->connect_req, &c->handle, (struct sockaddr *)&c->peer,
				    tcp_on_connect);
	if (rc < 0) {
		/* libuv: a call that fails never runs its callback; we close here
		 * (which schedules the next attempt). */
		d->tcp.st.dial_failures++;
		tcp_conn_close(c, uv_strerror(rc));
	}
}

static void tcp_session_on_redial(uv_timer_t *t)
{
	tcp_session_dial(container_of(t, struct session, redial));
}

/* After a connection of a dialing session went away: try again after the
 * backoff (1 s, doubling to 60 s, plus up to a quarter of jitter so that
 * many clients of one server do not return in step), unless the session
 * still has a working connection or is stopping. */
static void tcp_session_redial_schedule(struct session *s)
{
	struct daemon *d = s->d;
	uint64_t delay;

	if (!tcp_session_dials(s) || s->stopping || d->tcp.closed || s->conn != NULL ||
	    s->dial != NULL || !s->redial_init || uv_is_active((uv_handle_t *)&s->redial))
		return;
	if (s->redial_backoff_ms == 0)
		s->redial_backoff_ms = TCP_REDIAL_MIN_MS;
	delay = s->redial_backoff_ms + randombytes_uniform((uint32_t)(s->redial_backoff_ms / 4) + 1);
	s->redial_backoff_ms *= 2;
	if (s->redial_backoff_ms > TCP_REDIAL_MAX_MS)
		s->redial_backoff_ms = TCP_REDIAL_MAX_MS;
	delay = tcp_scaled(d, delay, 1);
	log_debug("%s: reconnecting over tcp in %llu ms", s->name, (unsigned long long)delay);
	uv_timer_start(&s->redial, tcp_session_on_redial, delay, 0);
}

void tcp_session_start(struct session *s)
{
	if (!tcp_session_dials(s))
		return;
	if (uv_timer_init(&s->d->loop, &s->redial) == 0)
		s->redial_init = true;
	s->redial_backoff_ms = 0;
	tcp_session_dial(s);
}

void tcp_session_stop(struct session *s)
{
	if (s->redial_init) {
		uv_timer_stop(&s->redial);
		if (!uv_is_closing((uv_handle_t *)&s->redial))
			uv_close((uv_handle_t *)&s->redial, NULL);
		s->redial_init = false;
	}
	if (s->conn != NULL)
		tcp_conn_close(s->conn, NULL);
	if (s->dial != NULL)
		tcp_conn_close(s->dial, NULL);
}

/* ------------------------------------------------------------ the session's side */

bool tcp_session_active(const struct session *s)
{
	return s->conn != NULL || s->cs->transport == CONF_TRANSPORT_TCP;
}

void tcp_session_send(struct session *s, const uint8_t *msg, size_t len)
{
	bool handshake = len > 0 && msg[0] != WIRE_DATA;
	struct tcp_conn *c = s->conn;
	int rc;

	/* Before a handshake has bound a connection, only handshake messages
	 * may use the dialed one (they are what binds it). */
	if (c == NULL && handshake && s->dial != NULL && s->dial->connected)
		c = s->dial;
	if (c == NULL) {
		s->st.drops[DROP_NO_ENDPOINT]++;
		return;
	}
	rc = tcp_conn_send(c, msg, len, handshake);
	if (rc == -ENOBUFS)
		s->st.drops[DROP_QUEUE_FULL]++;
	else if (rc == -EMSGSIZE)
		s->st.drops[DROP_TOO_BIG]++;
	else if (rc < 0)
		s->st.drops[DROP_SEND]++;
}

void tcp_session_unbind(struct session *s)
{
	if (s->conn != NULL)
		tcp_conn_close(s->conn, "the peer's handshake came over UDP");
}

bool tcp_conn_may_carry(const struct tcp_conn *c, const struct session *s, int wire_type)
{
	if (c == NULL)
		return s == NULL || s->cs->transport != CONF_TRANSPORT_TCP;
	if (c->session != NULL)
		return s == NULL || c->session == s;
	if (s == NULL)
		return false;
	switch (wire_type) {
	case WIRE_INITIATION:
		return c->dialer == NULL || c->dialer == s;
	case WIRE_RESPONSE:
	case WIRE_COOKIE_REPLY:
		return c->dialer == s;
	default:
		return false;
	}
}

void tcp_conn_bind(struct tcp_conn *c, struct session *s)
{
	struct tcp_conn *old = s->conn;
	char addr[UTIL_ADDRSTRLEN];

	c->verified = true;
	if (c->session == s || c->closing)
		return;
	/* Precondition (tcp_conn_may_carry): c is unbound, or bound to s. */
	c->session = s;
	s->conn = c;
	tcp_unauth_uncount(c);
	uv_timer_stop(&c->deadline);
	tcp_frame_decoder_set_max(&c->dec, TCP_FRAME_MAX);
	/* A completed handshake resets the dialer's backoff. */
	s->redial_backoff_ms = 0;
	log_info("%s: tcp connection %s %s authenticated", s->name, c->dialer ? "to" : "from",
		 util_sockaddr_str((struct sockaddr *)&c->peer, addr, sizeof(addr)));
	if (old != NULL && old != c)
		tcp_conn_close(old, "replaced by a newly authenticated connection");
}

bool tcp_conn_verified(const struct tcp_conn *c)
{
	return c == NULL || c->verified;
}

const struct sockaddr *tcp_conn_peer(const struct tcp_conn *c)
{
	return (const struct sockaddr *)&c->peer;
}

struct tcp_conn *tcp_conn_next(const struct tcp_conn *c)
{
	return c->next;
}
