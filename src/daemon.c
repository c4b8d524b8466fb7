/*
 * The daemon: startup order, the receive dispatcher, the receiver-index
 * table, the tick that drives every session's timers, and shutdown order.
 *
 * Startup:  config -> identity -> sockets -> buffers -> sessions (devices,
 *           up hooks, dial) -> signals, tick -> loop.
 * Shutdown: stop reading -> per session: disconnect + down hooks, device
 *           removed, keys wiped -> handles closed -> loop closed.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "control.h"
#include "daemon.h"
#include "key.h"
#include "log.h"
#include "priv.h"
#include "util.h"

/* Handshake messages consumed per tick before we ask for cookies (mac2). */
#define DAEMON_LOAD_THRESHOLD 256
/* Read rounds per wake-up per socket: one busy socket cannot starve the loop. */
#define DAEMON_RX_ROUNDS 4

/* ------------------------------------------------------------ index table */

static uint32_t index_hash(uint32_t idx) { return idx * 2654435761u; }

void daemon_index_add(struct daemon *d, struct index_entry *e, struct session *s, struct keypair *kp,
		      uint32_t idx)
{
	if (e->index != 0)
		daemon_index_del(d, e);
	/* Random, non-zero, unique: indices are not guessable from outside. */
	while (idx == 0 || daemon_index_find(d, idx) != NULL)
		idx = randombytes_random();
	e->index = idx;
	e->session = s;
	e->keypair = kp;
	struct index_entry **b = &d->index_buckets[index_hash(idx) & d->index_mask];
	e->next = *b;
	*b = e;
}

void daemon_index_del(struct daemon *d, struct index_entry *e)
{
	struct index_entry **p = &d->index_buckets[index_hash(e->index) & d->index_mask];

	for (; *p != NULL; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	e->index = 0;
	e->next = NULL;
}

struct index_entry *daemon_index_find(struct daemon *d, uint32_t index)
{
	struct index_entry *e = d->index_buckets[index_hash(index) & d->index_mask];

	while (e != NULL && e->index != index)
		e = e->next;
	return e;
}

/* ------------------------------------------------------------ sending */

int daemon_sock_for(struct daemon *d, const struct sockaddr *addr)
{
	int fallback = -1;
	for (unsigned i = 0; i < d->nsocks; i++) {
		if (d->socks[i].family != addr->sa_family)
			continue;
		if (d->socks[i].listening)
			return (int)i;
		if (fallback < 0)
			fallback = (int)i;
	}
	return fallback;
}

uint8_t *daemon_tx_reserve(struct daemon *d, unsigned *slot)
{
	if (d->tx.count == TRANSPORT_BATCH)
		daemon_flush(d);
	*slot = d->tx.count;
	return udp_batch_slot(&d->tx, *slot);
}

void daemon_tx_commit(struct daemon *d, unsigned slot, struct session *s, size_t len)
{
	/* Over TCP the message is framed into the connection's queue; the slot
	 * stays free for the next message. */
	if (tcp_session_active(s)) {
		tcp_session_send(s, udp_batch_slot(&d->tx, slot), len);
		return;
	}
	if (s->sock < 0) {
		s->st.drops[DROP_SEND]++;
		return;
	}
	d->tx.iov[slot].iov_len = len;
	memcpy(&d->tx.addr[slot], &s->endpoint, sizeof(s->endpoint));
	d->tx.sock[slot] = s->sock;
	d->tx.count = slot + 1;
}

void daemon_send(struct daemon *d, struct session *s, const uint8_t *msg, size_t len)
{
	unsigned slot;
	uint8_t *buf = daemon_tx_reserve(d, &slot);

	memcpy(buf, msg, len);
	daemon_tx_commit(d, slot, s, len);
	daemon_flush(d);
}

void daemon_flush(struct daemon *d)
{
	if (d->tx.count > 0)
		udp_batch_flush(&d->tx, d->socks);
}

/* ------------------------------------------------------------ receiving */

static void daemon_log_limited(struct daemon *d, struct ratelimit *rl, const struct sockaddr *src,
			       const char *what)
{
	uint32_t suppressed;
	char addr[UTIL_ADDRSTRLEN];

	if (!ratelimit_allow(rl, util_now_ms(), &suppressed))
		return;
	log_warnx("initiation from %s: %s%s", util_sockaddr_str(src, addr, sizeof(addr)), what,
		  suppressed ? " (more suppressed)" : "");
}

/* Under load, a handshake message must carry a valid mac2 (a cookie bound
 * to its source address); otherwise we answer with a cookie reply and do no
 * DH.  Returns true when the message may proceed. */
static bool daemon_check_load(struct daemon *d, uint8_t *msg, size_t len, uint32_t sender,
			      const struct sockaddr *src, int sock, struct tcp_conn *conn)
{
	uint8_t cookie[WIRE_COOKIE_LEN];
	struct wire_cookie_reply reply;
	uint8_t srcbytes[18];
	size_t srclen;

	if (++d->handshakes_this_tick <= DAEMON_LOAD_THRESHOLD)
		return true;
	if (src->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)src;
		memcpy(srcbytes, &in->sin_addr, 4);
		memcpy(srcbytes + 4, &in->sin_port, 2);
		srclen = 6;
	} else {
		const struct sockaddr_in6 *in6 = (const void *)src;
		memcpy(srcbytes, &in6->sin6_addr, 16);
		memcpy(srcbytes + 16, &in6->sin6_port, 2);
		srclen = 18;
	}
	uint64_t now = util_now_ms();
	wire_cookie_make(&d->cookies, cookie, srcbytes, srclen, now);
	if (wire_mac2_valid(msg, len, cookie))
		return true;
	wire_cookie_reply_create(&d->cookies, &reply, sender, msg, len, srcbytes, srclen, now);
	d->st.cookie_sent++;
	if (conn != NULL) {
		(void)tcp_conn_send(conn, (const uint8_t *)&reply, sizeof(reply), true);
		return false;
	}
	unsigned slot;
	uint8_t *buf = daemon_tx_reserve(d, &slot);
	memcpy(buf, &reply, sizeof(reply));
	d->tx.iov[slot].iov_len = sizeof(reply);
	memcpy(&d->tx.addr[slot], src, util_sockaddr_len(src));
	d->tx.sock[slot] = sock;
	d->tx.count = slot + 1;
	return false;
}

static struct session *daemon_session_by_key(struct daemon *d, const uint8_t pub[KEY_LEN])
{
	for (unsigned i = 0; i < d->nsessions; i++)
		if (sodium_memcmp(d->sessions[i]->cs->public_key, pub, KEY_LEN) == 0)
			return d->sessions[i];
	return NULL;
}

/* noise_read_msg1_cached()'s lookup: the session of that static key, kept
 * for the caller, and its ss (computed when the session was set up). */
struct daemon_ss_lookup {
	struct daemon *d;
	struct session *s;
};

static const uint8_t *daemon_ss_lookup(void *ctx, const uint8_t rs[NOISE_PUBLIC_LEN])
{
	struct daemon_ss_lookup *l = ctx;

	l->s = daemon_session_by_key(l->d, rs);
	return l->s != NULL && l->s->ss_valid ? l->s->ss : NULL;
}

static bool daemon_consume_initiation(struct daemon *d, uint8_t *msg, size_t len,
				      const struct sockaddr *src, int sock, struct tcp_conn *conn)
{
	const struct wire_initiation *m = (const void *)msg;
	struct noise_handshake hs;
	uint8_t payload[WIRE_INIT_PAYLOAD_LEN];
	struct daemon_ss_lookup lookup = { .d = d, .s = NULL };
	struct session *s;
	bool ok = false;
	int rc;

	/* mac1 first: anything not meant for our key costs one hash, no reply. */
	if (!wire_mac1_valid(msg, len, d->mac1_key)) {
		d->st.bad_mac1++;
		daemon_log_limited(d, &d->rl_mac1, src, "mac1 invalid (peer has a wrong public key for us?)");
		return false;
	}
	if (!daemon_check_load(d, msg, len, wire_get_le32(m->sender), src, sock, conn))
		return true; /* answered with a cookie: the peer retries with mac2 */
	rc = noise_handshake_init_precomputed(&hs, NOISE_RESPONDER, true,
					      (const uint8_t *)WIRE_PROLOGUE, strlen(WIRE_PROLOGUE),
					      d->static_priv, d->static_pub, NULL, NULL, NULL);
	if (rc == 0)
		rc = noise_read_msg1_cached(&hs, payload, m->noise, sizeof(m->noise),
					    daemon_ss_lookup, &lookup);
	if (rc < 0) {
		d->st.initiation_auth++;
		daemon_log_limited(d, &d->rl_auth, src, "handshake initiation failed authentication");
		goto out;
	}
	/* Authentic: hs.rs is the key the lookup saw (NULL: no such session). */
	s = lookup.s;
	if (s == NULL) {
		char b64[KEY_B64_LEN + 1];
		key_to_base64(b64, hs.rs);
		d->st.unknown_peer++;
		char what[128];
		snprintf(what, sizeof(what), "unknown peer public key %s", b64);
		daemon_log_limited(d, &d->rl_unknown, src, what);
		goto out;
	}
	if (!tcp_conn_may_carry(conn, s, WIRE_INITIATION)) {
		d->tcp.st.wrong_transport++;
		s->st.drops[DROP_HANDSHAKE]++;
		daemon_log_limited(d, &d->rl_auth, src, conn == NULL
				   ? "initiation over UDP for a transport = tcp session"
				   : "initiation on a TCP connection of another session");
		goto out;
	}
	session_consume_initiation(s, &hs, wire_get_le32(m->sender), payload, src, sock, conn);
	ok = tcp_conn_verified(conn);
out:
	noise_handshake_clear(&hs);
	sodium_memzero(payload, sizeof(payload));
	return ok;
}

bool daemon_consume(struct daemon *d, uint8_t *msg, size_t len, const struct sockaddr *src,
		    int sock, struct tcp_conn *conn)
{
	struct index_entry *e;
	int type = wire_classify(msg, len);

	switch (type) {
	case WIRE_DATA:
		e = daemon_index_find(d, wire_get_le32(msg + 4));
		if (e == NULL || e->keypair == NULL) {
			d->st.unknown_index++;
			return conn == NULL || tcp_conn_may_carry(conn, NULL, WIRE_DATA);
		}
		if (!tcp_conn_may_carry(conn, e->session, type)) {
			d->tcp.st.wrong_transport++;
			return false;
		}
		session_consume_data(e->session, e->keypair, msg, len, src, sock, conn);
		return tcp_conn_verified(conn);
	case WIRE_INITIATION:
		return daemon_consume_initiation(d, msg, len, src, sock, conn);
	case WIRE_RESPONSE:
		if (!wire_mac1_valid(msg, len, d->mac1_key)) {
			d->st.bad_mac1++;
			return false;
		}
		e = daemon_index_find(d, wire_get_le32(msg + 8));
		if (e == NULL || e->keypair != NULL) {
			d->st.unknown_index++;
			return false;
		}
		if (!tcp_conn_may_carry(conn, e->session, type)) {
			d->tcp.st.wrong_transport++;
			return false;
		}
		if (!daemon_check_load(d, msg, len, wire_get_le32(msg + 4), src, sock, conn))
			return true;
		session_consume_response(e->session, msg, len, src, sock, conn);
		return tcp_conn_verified(conn);
	case WIRE_COOKIE_REPLY:
		e = daemon_index_find(d, wire_get_le32(msg + 4));
		if (e == NULL || e->keypair != NULL) {
			d->st.unknown_index++;
			return false;
		}
		if (!tcp_conn_may_carry(conn, e->session, type)) {
			d->tcp.st.wrong_transport++;
			return false;
		}
		/* Authenticated inside (AEAD); a bad one is ignored, as over UDP. */
		session_consume_cookie(e->session, msg, len);
		return true;
	default:
		d->st.bad_header++;
		return false;
	}
}

static void daemon_on_udp(uv_poll_t *h, int status, int events)
{
	struct udp_sock *u = container_of(h, struct udp_sock, poll);
	struct daemon *d = u->d;
	int sock = (int)(u - d->socks);

	if (status < 0)
		return;
	for (int round = 0; round < DAEMON_RX_ROUNDS; round++) {
		int n = udp_batch_recv(&d->rx, u->fd);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			uint8_t *p = udp_batch_slot(&d->rx, (unsigned)i);
			size_t len = d->rx.msgs[i].msg_len;
			/* A GRO run: datagrams of seg bytes back to back, the
			 * last maybe shorter; each is consumed in place. */
			size_t seg = d->rx.seg[i] != 0 ? d->rx.seg[i] : len, off = 0;
			/* An empty datagram is consumed (and counted as a bad
			 * header) too: at least one pass. */
			do {
				(void)daemon_consume(d, p + off, len - off < seg ? len - off : seg,
						     (struct sockaddr *)&d->rx.addr[i], sock, NULL);
				off += seg;
			} while (off < len);
		}
		if (n < TRANSPORT_BATCH)
			break;
	}
	/* Coalesced TCP segments go to their device at the end of every
	 * batch: nothing stays held across callbacks (tun.h). */
	tun_coalescer_flush(&d->rx.gro);
	daemon_flush(d);
}

/* ------------------------------------------------------------ timers, signals */

/* Free the sessions a reload stopped once nothing of theirs is pending
 * (`all`: at shutdown, after the loop ran for the last time). */
static void daemon_reap_retired(struct daemon *d, bool all)
{
	struct session **p = &d->retired;

	while (*p != NULL) {
		struct session *s = *p;
		if (!all && !session_idle(s)) {
			p = &s->retired_next;
			continue;
		}
		*p = s->retired_next;
		log_debug("%s: stopped by reload, released", s->name);
		session_free(s);
		free(s);
	}
}

static void daemon_on_tick(uv_timer_t *t)
{
	struct daemon *d = container_of(t, struct daemon, tick);
	uint64_t now = util_now_ms();

	d->handshakes_this_tick = 0;
	for (unsigned i = 0; i < d->nsessions; i++)
		session_tick(d->sessions[i], now);
	daemon_flush(d);
	if (d->retired != NULL)
		daemon_reap_retired(d, false);
}

static void daemon_on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		log_info("SIGHUP: reloading %s", d->config_path);
		(void)daemon_reload(d, NULL); /* it logged the outcome */
		return;
	}
	log_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
	d->stopping = true;
	uv_stop(&d->loop);
}

/* The privileged process is gone: without it no hook runs and no device
 * can be made, so stop as on SIGTERM. */
static void daemon_on_priv_gone(void *arg)
{
	struct daemon *d = arg;

	d->stopping = true;
	uv_stop(&d->loop);
}

/* ------------------------------------------------------------ startup, shutdown */

/* Open a UDP socket and start reading it.  0 or -errno. */
static int daemon_sock_add(struct daemon *d, const struct sockaddr *sa, bool listening)
{
	struct udp_sock *u = &d->socks[d->nsocks];
	int rc;

	if (d->nsocks == DAEMON_MAX_SOCKS)
		return -ENOSPC;
	if ((rc = udp_sock_open(u, d, sa, listening)) < 0)
		return rc;
	if ((rc = uv_poll_init(&d->loop, &u->poll, u->fd)) < 0) {
		udp_sock_close(u);
		return rc;
	}
	u->polling = true;
	uv_poll_start(&u->poll, UV_READABLE, daemon_on_udp);
	d->nsocks++;
	return 0;
}

/* Dial-out sessions of a family no socket serves get an ephemeral socket:
 * at startup, and on reload for the sessions it adds. */
static void daemon_open_dial_sockets(struct daemon *d)
{
	bool have4 = false, have6 = false, need4 = false, need6 = false;
	int rc;

	for (unsigned i = 0; i < d->nsocks; i++) {
		have4 |= d->socks[i].family == AF_INET;
		have6 |= d->socks[i].family == AF_INET6;
	}
	for (unsigned i = 0; i < d->conf.nsessions; i++) {
		const struct conf_session *cs = &d->conf.sessions[i];
		if (!cs->has_endpoint)
			continue;
		if (cs->endpoint.is_literal) {
			need4 |= cs->endpoint.addr.ss_family == AF_INET;
			need6 |= cs->endpoint.addr.ss_family == AF_INET6;
		} else {
			need4 = need6 = true;
		}
	}
	struct sockaddr_in any4 = { .sin_family = AF_INET };
	struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	if (need4 && !have4 && (rc = daemon_sock_add(d, (struct sockaddr *)&any4, false)) < 0)
		log_warnx("cannot open an IPv4 UDP socket: %s", strerror(-rc));
	if (need6 && !have6 && (rc = daemon_sock_add(d, (struct sockaddr *)&any6, false)) < 0)
		log_debug("no IPv6 UDP socket: %s", strerror(-rc));
}

static int daemon_open_sockets(struct daemon *d)
{
	int rc;
	char addr[UTIL_ADDRSTRLEN];

	for (unsigned i = 0; i < d->conf.global.nlisten; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&d->conf.global.listen[i];
		rc = daemon_sock_add(d, sa, true);
		if (rc < 0) {
			log_warnx("cannot listen on %s: %s", util_sockaddr_str(sa, addr, sizeof(addr)),
				  strerror(-rc));
			return rc;
		}
		log_info("listening on %s (udp)", util_sockaddr_str(sa, addr, sizeof(addr)));
	}
	daemon_open_dial_sockets(d);
	return 0;
}

/* Packet slots fit the largest packet of any session of `c` (and at least
 * a 1500-byte one), with the data header in front and padding and tag
 * behind. */
static size_t daemon_slot_size(const struct conf *c)
{
	size_t max_packet = 1500;

	for (unsigned i = 0; i < c->nsessions; i++) {
		const struct conf_session *cs = &c->sessions[i];
		size_t mp = (cs->mtu ? cs->mtu : 1420) + 14;
		if (mp > max_packet)
			max_packet = mp;
	}
	return WIRE_DATA_HEADER_LEN + max_packet + WIRE_PADDING + NOISE_TAG_LEN;
}

/* Receive slots hold a whole UDP GRO run where sockets may get one (the
 * kernel would truncate it otherwise). */
static size_t daemon_rx_slot_size(size_t slot_size)
{
	if (transport_offload_allowed() && slot_size < TRANSPORT_GRO_SLOT)
		return TRANSPORT_GRO_SLOT;
	return slot_size;
}

/* ------------------------------------------------------------ reload */

static bool daemon_str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Every field of struct conf_session but `line` (where the section sits is
 * not configuration).  A field added there must be compared here, or a
 * reload keeps running a session whose config changed. */
bool daemon_reload_session_same(const struct conf_session *a, const struct conf_session *b)
{
	return strcmp(a->name, b->name) == 0 && a->has_public_key == b->has_public_key &&
	       sodium_memcmp(a->public_key, b->public_key, KEY_LEN) == 0 &&
	       a->has_preshared_key == b->has_preshared_key &&
	       sodium_memcmp(a->preshared_key, b->preshared_key, KEY_LEN) == 0 &&
	       a->has_endpoint == b->has_endpoint &&
	       strcmp(a->endpoint.host, b->endpoint.host) == 0 && a->endpoint.port == b->endpoint.port &&
	       a->endpoint.is_literal == b->endpoint.is_literal &&
	       (!a->endpoint.is_literal ||
		util_sockaddr_equal((const struct sockaddr *)&a->endpoint.addr,
				    (const struct sockaddr *)&b->endpoint.addr)) &&
	       a->transport == b->transport && a->type == b->type &&
	       strcmp(a->device, b->device) == 0 && a->mtu == b->mtu &&
	       strcmp(a->bridge, b->bridge) == 0 && a->keepalive == b->keepalive &&
	       a->speed_in_kbit == b->speed_in_kbit && a->speed_out_kbit == b->speed_out_kbit &&
	       daemon_str_same(a->up, b->up) && daemon_str_same(a->down, b->down) &&
	       daemon_str_same(a->connect, b->connect) &&
	       daemon_str_same(a->disconnect, b->disconnect) && a->hook_timeout == b->hook_timeout;
}

/* The identity and the sockets are made once, before any session; the
 * user and group are for a privilege drop that cannot be undone; the
 * control path is the socket this request may have come in on. */
const char *daemon_reload_refused_key(const struct conf_global *a, const struct conf_global *b)
{
	if (a->has_private_key != b->has_private_key ||
	    sodium_memcmp(a->private_key, b->private_key, KEY_LEN) != 0)
		return "private_key";
	if (a->nlisten != b->nlisten)
		return "listen";
	for (unsigned i = 0; i < a->nlisten; i++)
		if (!util_sockaddr_equal((const struct sockaddr *)&a->listen[i],
					 (const struct sockaddr *)&b->listen[i]))
			return "listen";
	if (strcmp(a->user, b->user) != 0)
		return "user";
	if (strcmp(a->group, b->group) != 0)
		return "group";
	if (strcmp(a->control, b->control) != 0)
		return "control";
	return NULL;
}

static struct session *daemon_session_by_name(struct daemon *d, const char *name)
{
	for (unsigned i = 0; i < d->nsessions; i++)
		if (strcmp(d->sessions[i]->name, name) == 0)
			return d->sessions[i];
	return NULL;
}

static bool daemon_conf_has_session(const struct conf *c, const char *name)
{
	for (unsigned i = 0; i < c->nsessions; i++)
		if (strcmp(c->sessions[i].name, name) == 0)
			return true;
	return false;
}

/* New packet buffers with larger slots, allocated before the old ones go
 * so that a failure leaves the daemon as it was.  Between callbacks the tx
 * batch is empty (every callback flushes), so nothing queued is lost. */
static int daemon_grow_slots(struct daemon *d, size_t slot_size)
{
	struct udp_batch rx, tx;

	if (udp_batch_init(&rx, daemon_rx_slot_size(slot_size)) < 0)
		return -ENOMEM;
	if (udp_batch_init(&tx, slot_size) < 0) {
		udp_batch_free(&rx);
		return -ENOMEM;
	}
	daemon_flush(d);
	udp_batch_free(&d->rx);
	udp_batch_free(&d->tx);
	d->rx = rx;
	d->tx = tx;
	d->slot_size = slot_size;
	return 0;
}

/* Apply a config that loaded without errors: takes `nc` (freed or made the
 * daemon's).  Everything that can fail is allocated before the first
 * session stops, so a refusal changes nothing. */
static int daemon_reload_apply(struct daemon *d, struct conf *nc, FILE *out)
{
	const char *key = daemon_reload_refused_key(&d->conf.global, &nc->global);
	unsigned n = nc->nsessions, nfresh = 0, removed = 0, restarted = 0, failed = 0;
	struct session **table = NULL;
	bool *fresh = NULL;
	struct conf old;

	if (key != NULL) {
		log_warnx("reload: '%s' changed: restart saltun to apply", key);
		fprintf(out, "error: reload: '%s' changed: restart saltun to apply\n", key);
		conf_free(nc);
		return -EINVAL;
	}
	table = calloc(n ? n : 1, sizeof(*table));
	fresh = calloc(n ? n : 1, sizeof(*fresh));
	if (table == NULL || fresh == NULL)
		goto nomem;
	for (unsigned i = 0; i < n; i++) {
		struct session *s = daemon_session_by_name(d, nc->sessions[i].name);
		/* One whose device could not be created gets another try. */
		if (s != NULL && s->dev_open && daemon_reload_session_same(s->cs, &nc->sessions[i])) {
			table[i] = s;
			continue;
		}
		fresh[i] = true;
		nfresh++;
		if ((table[i] = malloc(sizeof(*table[i]))) == NULL)
			goto nomem;
	}
	if (daemon_slot_size(nc) > d->slot_size && daemon_grow_slots(d, daemon_slot_size(nc)) < 0)
		goto nomem;

	/* Stop what goes away or changes before anything starts: a changed
	 * session's successor takes the same device name and public key.  Its
	 * disconnect and down hooks run here, synchronously, as on shutdown. */
	for (unsigned i = 0; i < d->nsessions; i++) {
		struct session *s = d->sessions[i];
		bool kept = false;
		for (unsigned j = 0; j < n && !kept; j++)
			kept = !fresh[j] && table[j] == s;
		if (kept)
			continue;
		bool changed = daemon_conf_has_session(nc, s->name);
		log_info("%s: %s by reload: %s", s->name, changed ? "changed" : "removed",
			 changed ? "restarting" : "stopping");
		session_stop(s);
		/* Its config is freed below; a stopped session never reads it. */
		s->cs = NULL;
		s->retired_next = d->retired;
		d->retired = s;
		if (changed)
			restarted++;
		else
			removed++;
	}

	old = d->conf;
	d->conf = *nc;
	memset(nc, 0, sizeof(*nc));
	for (unsigned i = 0; i < n; i++)
		if (!fresh[i])
			table[i]->cs = &d->conf.sessions[i];
	free(d->sessions);
	d->sessions = table;
	d->nsessions = n;
	/* Every session points into the new config now. */
	conf_free(&old);

	daemon_open_dial_sockets(d);
	for (unsigned i = 0; i < n; i++) {
		if (!fresh[i])
			continue;
		session_init(table[i], d, &d->conf.sessions[i]);
		if (session_start(table[i]) < 0) {
			failed++;
			fprintf(out, "error: reload: session '%s' could not start (see the log)\n",
				table[i]->name);
		}
	}
	free(fresh);

	log_init("saltun", d->log_sink_forced ? LOG_SINK_SYSLOG : d->conf.global.log_sink,
		 d->log_level_forced ? LOG_LEVEL_DEBUG : d->conf.global.log_level);
	log_info("reloaded %s: %u added, %u removed, %u restarted, %u unchanged", d->config_path,
		 nfresh - restarted, removed, restarted, n - nfresh);
	fprintf(out, "reloaded %s: %u added, %u removed, %u restarted, %u unchanged\n",
		d->config_path, nfresh - restarted, removed, restarted, n - nfresh);
	return failed > 0 ? -EIO : 0;

nomem:
	for (unsigned i = 0; table != NULL && fresh != NULL && i < n; i++)
		if (fresh[i])
			free(table[i]);
	free(table);
	free(fresh);
	conf_free(nc);
	log_warnx("reload: out of memory: nothing changed");
	fprintf(out, "error: reload: out of memory: nothing changed\n");
	return -ENOMEM;
}

int daemon_reload(struct daemon *d, char **answer)
{
	char *diag = NULL, *text = NULL;
	size_t diaglen = 0, textlen = 0;
	FILE *df = NULL, *out = NULL;
	struct conf nc;
	unsigned errors;
	int rc = -ENOMEM;

	if (answer != NULL)
		*answer = NULL;
	if ((df = open_memstream(&diag, &diaglen)) == NULL ||
	    (out = open_memstream(&text, &textlen)) == NULL) {
		log_warnx("reload: out of memory: nothing changed");
		goto done;
	}
	/* The same rules as `saltun check`: a config with errors changes nothing. */
	errors = priv_conf_load(d->priv, &nc, d->config_path, df);
	if (fclose(df) != 0) {
		df = NULL;
		if (errors == 0)
			conf_free(&nc);
		log_warnx("reload: out of memory: nothing changed");
		goto done;
	}
	df = NULL;
	/* Every diagnostic, warnings too, goes to the log. */
	for (char *line = diag, *nl; line != NULL && *line != '\0'; line = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		log_warnx("reload: %.*s", nl != NULL ? (int)(nl - line) : (int)strlen(line), line);
	}
	if (errors > 0) {
		log_warnx("reload: %u error%s in %s: nothing changed", errors, errors == 1 ? "" : "s",
			  d->config_path);
		fprintf(out, "error: reload: %u error%s in %s: nothing changed\n", errors,
			errors == 1 ? "" : "s", d->config_path);
		rc = -EINVAL;
	} else {
		rc = daemon_reload_apply(d, &nc, out);
	}
	/* The client sees the outcome first, then what `saltun check` would say. */
	if (diag != NULL)
		fputs(diag, out);
	/* Without memory for the answer the reload still happened: the
	 * caller answers from rc alone. */
	if (fclose(out) == 0 && answer != NULL) {
		*answer = text;
		text = NULL;
	}
	out = NULL;
done:
	if (df != NULL)
		fclose(df);
	if (out != NULL)
		fclose(out);
	free(diag);
	free(text);
	return rc;
}

static void daemon_close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void daemon_shutdown(struct daemon *d)
{
	/* First: nobody reads status from a daemon that is taking itself apart. */
	control_close(d);
	for (unsigned i = 0; i < d->nsessions; i++)
		session_stop(d->sessions[i]);
	for (unsigned i = 0; i < d->nsessions; i++)
		session_free(d->sessions[i]);
	/* TCP connections free their memory in their close callbacks. */
	tcp_transport_close(d);
	/* Let hooks started just before the stop finish or be killed. */
	uv_walk(&d->loop, daemon_close_walk, NULL);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	for (unsigned i = 0; i < d->nsocks; i++)
		udp_sock_close(&d->socks[i]);
	if (uv_loop_close(&d->loop) != 0)
		log_warnx("event loop did not close cleanly");
	udp_batch_free(&d->rx);
	udp_batch_free(&d->tx);
	free(d->index_buckets);
	/* Hooks still pending in the privileged process fail now, while their
	 * sessions exist. */
	priv_close(d->priv);
	d->priv = NULL;
	/* Only now: the loop ran every close callback of their handles. */
	for (unsigned i = 0; i < d->nsessions; i++)
		free(d->sessions[i]);
	free(d->sessions);
	daemon_reap_retired(d, true);
	free(d->config_path);
	sodium_memzero(d->static_priv, sizeof(d->static_priv));
	sodium_memzero(&d->cookies, sizeof(d->cookies));
	conf_free(&d->conf);
}

int daemon_run(const struct daemon_options *o)
{
	struct daemon *d;
	unsigned errors;
	int rc, status = 1;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		fatal("calloc");
	d->time_scale = o->time_scale ? o->time_scale : 1;
	d->started_ms = util_now_ms();

	errors = conf_load(&d->conf, o->config_path, stderr);
	if (errors > 0) {
		log_warnx("%s: %u error%s: not starting", o->config_path, errors, errors == 1 ? "" : "s");
		free(d);
		return 1;
	}
	d->log_sink_forced = o->detach;
	d->log_level_forced = o->verbosity > 0;
	log_init("saltun", o->detach ? LOG_SINK_SYSLOG : d->conf.global.log_sink,
		 o->verbosity > 0 ? LOG_LEVEL_DEBUG : d->conf.global.log_level);
	/* Reload reads the file again after daemon(3) moved us to "/". */
	d->config_path = realpath(o->config_path, NULL);
	if (d->config_path == NULL && (d->config_path = strdup(o->config_path)) == NULL)
		fatal("strdup");
	if (d->conf.nsessions == 0)
		log_warnx("%s: no sessions configured", o->config_path);
	if (o->detach && daemon(0, 0) < 0)
		fatal("daemon");

	/* Two processes from here when started as root (priv.h); this one
	 * goes on as the network process. */
	rc = priv_start(&d->conf, d->config_path, &d->priv, &status);
	if (rc == PRIV_PARENT_DONE || rc < 0) {
		free(d->config_path);
		conf_free(&d->conf);
		free(d);
		if (rc == PRIV_PARENT_DONE)
			log_info("stopped");
		return rc < 0 ? 1 : status;
	}

	memcpy(d->static_priv, d->conf.global.private_key, KEY_LEN);
	memcpy(d->static_pub, d->conf.global.public_key, KEY_LEN);
	wire_mac1_key(d->mac1_key, d->static_pub);
	wire_cookie_checker_init(&d->cookies, d->static_pub);
	d->rl_mac1 = d->rl_unknown = d->rl_auth = (struct ratelimit)RATELIMIT_INIT;

	/* One descriptor per session device plus sockets: lift the soft limit
	 * to the hard one, or a config of 1000 sessions fails near 1010. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
			log_warn("cannot raise the open-files limit");
	}

	if ((rc = uv_loop_init(&d->loop)) < 0)
		fatalx("uv_loop_init: %s", uv_strerror(rc));
	signal(SIGPIPE, SIG_IGN);

	/* Buffers sized for the largest packet of any session, allocated once
	 * (again only when a reload raises an mtu beyond them). */
	d->slot_size = daemon_slot_size(&d->conf);
	/* Received datagrams may be as large as any message; drop the oversized. */
	if (udp_batch_init(&d->rx, daemon_rx_slot_size(d->slot_size)) < 0 ||
	    udp_batch_init(&d->tx, d->slot_size) < 0)
		fatal("cannot allocate packet buffers");

	uint32_t buckets = 64;
	while (buckets < d->conf.nsessions * 8u)
		buckets <<= 1;
	d->index_buckets = calloc(buckets, sizeof(*d->index_buckets));
	d->index_mask = buckets - 1;
	d->sessions = calloc(d->conf.nsessions ? d->conf.nsessions : 1, sizeof(*d->sessions));
	if (d->index_buckets == NULL || d->sessions == NULL)
		fatal("calloc");

	if (daemon_open_sockets(d) < 0)
		goto out;
	if (tcp_transport_open(d) < 0)
		fatal("cannot allocate TCP buffers");
	/* Status from the start.  Without it (another daemon holds the path,
	 * no directory) the tunnels still serve: it logged why.  Bound while
	 * still root: the directory is root's. */
	(void)control_open(d);
	/* Root is not needed past this point: every socket is open, and the
	 * loop has not yet read a packet. */
	if (priv_drop(d->priv) < 0 || priv_watch(d->priv, &d->loop, daemon_on_priv_gone, d) < 0)
		goto out;
	for (unsigned i = 0; i < d->conf.nsessions; i++, d->nsessions++) {
		if ((d->sessions[i] = malloc(sizeof(*d->sessions[i]))) == NULL)
			fatal("malloc");
		session_init(d->sessions[i], d, &d->conf.sessions[i]);
	}
	/* A session whose device cannot be created is logged and left out;
	 * the others serve. */
	unsigned started = 0;
	for (unsigned i = 0; i < d->nsessions; i++)
		if (session_start(d->sessions[i]) == 0)
			started++;
	if (started == 0 && d->nsessions > 0) {
		log_warnx("no session could start");
		goto out;
	}

	uv_signal_init(&d->loop, &d->sigint);
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sighup);
	d->sigint.data = d->sigterm.data = d->sighup.data = d;
	uv_signal_start(&d->sigint, daemon_on_signal, SIGINT);
	uv_signal_start(&d->sigterm, daemon_on_signal, SIGTERM);
	uv_signal_start(&d->sighup, daemon_on_signal, SIGHUP);

	/* One coarse tick drives every session's timers (no per-packet rearm). */
	d->tick_ms = 100 / d->time_scale;
	if (d->tick_ms == 0)
		d->tick_ms = 1;
	uv_timer_init(&d->loop, &d->tick);
	uv_timer_start(&d->tick, daemon_on_tick, d->tick_ms, d->tick_ms);

	log_info("saltun %s running: %u session%s", PACKAGE_VERSION, d->nsessions,
		 d->nsessions == 1 ? "" : "s");
	/* Type=notify: ready once every device exists and the sockets listen. */
	priv_ready(d->priv, d->control != NULL, d->control ? d->control->sock_dev : 0,
		   d->control ? d->control->sock_ino : 0);
	uv_run(&d->loop, UV_RUN_DEFAULT);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	status = 0;
out:
	daemon_shutdown(d);
	free(d);
	log_info("stopped");
	return status;
}
