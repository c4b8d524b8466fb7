/*
 * One peer session: handshake (both roles), keys, data in both directions,
 * timers, hooks.  The daemon routes packets here; this file decides.
 *
 * Receive order (STYLE 7): parse header, authenticate, replay-check, then
 * validate the inner packet, then move the endpoint and timers, then deliver.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon.h"
#include "hook.h"
#include "key.h"
#include "log.h"
#include "offload.h"
#include "priv.h"
#include "session.h"
#include "tcp_frame.h"
#include "util.h"

/* Automatic MTU: a 1500-byte underlay minus IPv6 (40) + UDP (8) + data
 * header (16) + tag (16).  See saltun.conf(5). */
#define SESSION_AUTO_MTU 1420
#define ETH_HLEN_ 14
/* Initiations consumed per session at most every this many ms (flood). */
#define SESSION_INITIATION_MIN_MS 20

const char *session_drop_name(enum session_drop dr)
{
	static const char *const names[DROP__COUNT] = {
		[DROP_AUTH] = "auth_failed",       [DROP_REPLAY] = "replay",
		[DROP_BAD_INNER] = "bad_inner",    [DROP_KEY_EXPIRED] = "key_expired",
		[DROP_QUEUE_FULL] = "queue_full",  [DROP_NO_ENDPOINT] = "no_endpoint",
		[DROP_TOO_BIG] = "too_big",        [DROP_DEVICE] = "device_write",
		[DROP_SEND] = "send_failed",       [DROP_HANDSHAKE] = "handshake_refused",
		[DROP_GAVE_UP] = "handshake_gave_up",  [DROP_SHAPED] = "shaped",
	};
	return names[dr];
}

static uint64_t now_ms(void) { return util_now_ms(); }

#define NS_PER_S UINT64_C(1000000000)

void shaper_init(struct shaper *sh, unsigned kbit, size_t max_packet)
{
	memset(sh, 0, sizeof(*sh));
	sh->rate = (uint64_t)kbit * 1000 / 8;
	/* 100 ms of traffic, and at least 8 full packets, may pass at once:
	 * a smaller bucket drops inside TCP's bursts and starves it. */
	uint64_t burst = sh->rate / 10;
	if (burst < 8 * max_packet)
		burst = 8 * max_packet;
	sh->burst_bn = burst * NS_PER_S;
	sh->tokens_bn = sh->burst_bn;
}

bool shaper_allow(struct shaper *sh, size_t len, uint64_t now_ns)
{
	uint64_t elapsed;

	if (sh->rate == 0)
		return true;
	/* Capping the step keeps rate * elapsed far from overflowing. */
	elapsed = now_ns - sh->last_ns;
	if (sh->last_ns == 0 || elapsed > NS_PER_S)
		elapsed = NS_PER_S;
	sh->last_ns = now_ns;
	sh->tokens_bn += sh->rate * elapsed;
	if (sh->tokens_bn > sh->burst_bn)
		sh->tokens_bn = sh->burst_bn;
	if (sh->tokens_bn < (uint64_t)len * NS_PER_S)
		return false;
	sh->tokens_bn -= (uint64_t)len * NS_PER_S;
	return true;
}

static void session_log_limited(struct session *s, struct ratelimit *rl, const char *what,
				const struct sockaddr *src)
{
	uint32_t suppressed;
	char addr[UTIL_ADDRSTRLEN];

	if (!ratelimit_allow(rl, now_ms(), &suppressed))
		return;
	if (suppressed)
		log_warnx("%s: %s from %s (%u similar suppressed)", s->name, what,
			  util_sockaddr_str(src, addr, sizeof(addr)), suppressed);
	else
		log_warnx("%s: %s from %s", s->name, what, util_sockaddr_str(src, addr, sizeof(addr)));
}

/* ------------------------------------------------------------ lifecycle */

int session_init(struct session *s, struct daemon *d, const struct conf_session *cs)
{
	memset(s, 0, sizeof(*s));
	s->d = d;
	s->cs = cs;
	s->dev.fd = -1;
	snprintf(s->name, sizeof(s->name), "%s", cs->name);
	s->type = cs->type == CONF_DEV_TAP ? TUN_TYPE_TAP : TUN_TYPE_TUN;
	s->mtu = cs->mtu ? cs->mtu : SESSION_AUTO_MTU - (s->type == TUN_TYPE_TAP ? ETH_HLEN_ : 0);
	s->max_packet = s->mtu + (s->type == TUN_TYPE_TAP ? ETH_HLEN_ : 0);
	/* A TCP frame carries at most 65535 bytes, a data message is the
	 * packet + 32: keep every data message of a TCP session framable. */
	if (cs->transport == CONF_TRANSPORT_TCP && s->max_packet > TCP_FRAME_MAX_PACKET) {
		s->max_packet = TCP_FRAME_MAX_PACKET;
		s->mtu = (unsigned)s->max_packet - (s->type == TUN_TYPE_TAP ? ETH_HLEN_ : 0);
		log_warnx("%s: mtu lowered to %u: over TCP a message is at most 65535 bytes", s->name,
			  s->mtu);
	}
	/* X25519 dominates a handshake's cost: the static-static DH never
	 * changes, so it is done once here rather than per initiation. */
	s->ss_valid = noise_dh(s->ss, d->static_priv, cs->public_key);
	wire_mac1_key(s->mac1_key, cs->public_key);
	wire_cookie_key(s->cookie_key, cs->public_key);
	timer_config_init(&s->tcfg, d->time_scale, cs->keepalive);
	shaper_init(&s->shape_in, cs->speed_in_kbit, s->max_packet);
	shaper_init(&s->shape_out, cs->speed_out_kbit, s->max_packet);
	timers_init(&s->timers, &s->tcfg);
	s->sock = -1;
	if (cs->has_endpoint && cs->endpoint.is_literal) {
		memcpy(&s->endpoint, &cs->endpoint.addr, sizeof(s->endpoint));
		s->has_endpoint = true;
		s->sock = daemon_sock_for(d, (struct sockaddr *)&s->endpoint);
	}
	for (int i = 0; i < 3; i++)
		replay_init(&s->kp[i].replay);
	s->rl_auth = (struct ratelimit)RATELIMIT_INIT;
	s->rl_hs = (struct ratelimit)RATELIMIT_INIT;
	s->rl_inner = (struct ratelimit)RATELIMIT_INIT;
	return 0;
}

enum session_state session_state(const struct session *s)
{
	/* Up only while the current keys may still be used: past
	 * REJECT_AFTER_TIME they are dead even before they are wiped. */
	if (s->current != NULL && s->current->valid &&
	    util_now_ms() - s->current->birth_ms < s->tcfg.reject_after_ms)
		return SESSION_UP;
	if (s->hs.state != NOISE_HS_EMPTY || s->timers.handshake_attempts_start != 0)
		return SESSION_HANDSHAKING;
	return SESSION_WAITING;
}

static void session_hook_vars(struct session *s, struct hook_vars *v, char *peer, size_t peerlen,
			      char *local, size_t locallen, char *key)
{
	memset(v, 0, sizeof(*v));
	v->session = s->name;
	v->device = s->dev.name;
	v->type = s->type == TUN_TYPE_TAP ? "tap" : "tun";
	v->mtu = s->mtu;
	key_to_base64(key, s->cs->public_key);
	v->peer_key = key;
	if (s->has_endpoint &&
	    util_sockaddr_split((struct sockaddr *)&s->endpoint, peer, peerlen, &v->peer_port)) {
		v->peer_address = peer;
		/* The local address the kernel would use to reach the peer. */
		struct sockaddr_storage la;
		socklen_t lalen = sizeof(la);
		int fd = socket(s->endpoint.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			if (connect(fd, (struct sockaddr *)&s->endpoint,
				    util_sockaddr_len((struct sockaddr *)&s->endpoint)) == 0 &&
			    getsockname(fd, (struct sockaddr *)&la, &lalen) == 0 &&
			    util_sockaddr_split((struct sockaddr *)&la, local, locallen, &v->local_port)) {
				v->local_address = local;
				if (s->sock >= 0)
					v->local_port = ntohs(s->d->socks[s->sock].local.ss_family == AF_INET6
						? ((struct sockaddr_in6 *)&s->d->socks[s->sock].local)->sin6_port
						: ((struct sockaddr_in *)&s->d->socks[s->sock].local)->sin_port);
			}
			close(fd);
		}
	}
}

static void session_hook_start(struct session *s, enum hook_event ev);

static void session_hook_done(void *arg, enum hook_event ev, int status)
{
	struct session *s = arg;

	s->hooks_running--;
	if (status != 0)
		s->st.hook_failures++;
	/* Next queued event, in order; none once the session is stopping
	 * (its down hook runs synchronously then). */
	while (!s->stopping && s->hooks_running == 0 && s->hook_queue_len > 0) {
		enum hook_event next = s->hook_queue[s->hook_queue_head];
		s->hook_queue_head = (s->hook_queue_head + 1) % SESSION_HOOK_QUEUE;
		s->hook_queue_len--;
		session_hook_start(s, next);
	}
}

static const char *session_hook_template(const struct session *s, enum hook_event ev)
{
	switch (ev) {
	case HOOK_UP: return s->cs->up;
	case HOOK_DOWN: return s->cs->down;
	case HOOK_CONNECT: return s->cs->connect;
	case HOOK_DISCONNECT: return s->cs->disconnect;
	}
	return NULL;
}

static void session_hook_start(struct session *s, enum hook_event ev)
{
	const char *tmpl = session_hook_template(s, ev);
	struct hook_vars v;
	char peer[64], local[64], key[KEY_B64_LEN + 1];
	int rc;

	session_hook_vars(s, &v, peer, sizeof(peer), local, sizeof(local), key);
	rc = priv_hook_run(s->d->priv, &s->d->loop, ev, tmpl, &v, s->cs->hook_timeout * 1000,
			   session_hook_done, s);
	if (rc < 0) {
		s->st.hook_failures++;
		log_warnx("%s: cannot start %s hook: %s", s->name, hook_event_name(ev), strerror(-rc));
		return;
	}
	s->hooks_running++;
}

/* Run the hook of `ev`, if configured: synchronously (shutdown), or on the
 * loop after the hooks queued before it. */
static void session_hook(struct session *s, enum hook_event ev, bool sync)
{
	const char *tmpl = session_hook_template(s, ev);
	struct hook_vars v;
	char peer[64], local[64], key[KEY_B64_LEN + 1];

	if (tmpl == NULL)
		return;
	if (sync) {
		session_hook_vars(s, &v, peer, sizeof(peer), local, sizeof(local), key);
		if (priv_hook_run_sync(s->d->priv, ev, tmpl, &v, s->cs->hook_timeout * 1000) != 0)
			s->st.hook_failures++;
		return;
	}
	if (s->hooks_running == 0) {
		session_hook_start(s, ev);
		return;
	}
	if (s->hook_queue_len == SESSION_HOOK_QUEUE) {
		s->st.hook_failures++;
		log_warnx("%s: %s hook dropped: %u hooks already waiting", s->name,
			  hook_event_name(ev), SESSION_HOOK_QUEUE);
		return;
	}
	s->hook_queue[(s->hook_queue_head + s->hook_queue_len) % SESSION_HOOK_QUEUE] = ev;
	s->hook_queue_len++;
}

static void session_on_device(uv_poll_t *h, int status, int events);
static void session_send_initiation(struct session *s, bool retry);

static bool session_has_keys(const struct session *s);

/* Use the next resolved address (IPv4 and IPv6 results in turn). */
void session_resolved_next(struct session *s)
{
	char addr[UTIL_ADDRSTRLEN];

	if (s->nresolved == 0)
		return;
	const struct sockaddr_storage *ss = &s->resolved[s->resolved_next % s->nresolved];
	s->resolved_next++;
	if (s->has_endpoint && util_sockaddr_equal((const struct sockaddr *)ss,
						   (struct sockaddr *)&s->endpoint))
		return;
	memcpy(&s->endpoint, ss, sizeof(s->endpoint));
	s->has_endpoint = true;
	s->sock = daemon_sock_for(s->d, (struct sockaddr *)&s->endpoint);
	log_info("%s: endpoint %s is %s", s->name, s->cs->endpoint.host,
		 util_sockaddr_str((struct sockaddr *)ss, addr, sizeof(addr)));
}

static void session_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct session *s = container_of(req, struct session, resolver);
	unsigned n = 0;

	s->resolving = false;
	if (status == UV_ECANCELED || s->stopping) {
		uv_freeaddrinfo(res);
		return;
	}
	if (status < 0) {
		log_warnx("%s: cannot resolve %s: %s", s->name, s->cs->endpoint.host, uv_strerror(status));
		return;
	}
	for (struct addrinfo *ai = res; ai != NULL && n < ARRAY_SIZE(s->resolved); ai = ai->ai_next) {
		/* Only families we have a socket for. */
		if (daemon_sock_for(s->d, ai->ai_addr) < 0 || ai->ai_addrlen > sizeof(s->resolved[0]))
			continue;
		memset(&s->resolved[n], 0, sizeof(s->resolved[n]));
		memcpy(&s->resolved[n], ai->ai_addr, ai->ai_addrlen);
		n++;
	}
	uv_freeaddrinfo(res);
	if (n == 0) {
		log_warnx("%s: %s has no address we can reach", s->name, s->cs->endpoint.host);
		return;
	}
	s->nresolved = n;
	s->resolved_next = 0;
	session_resolved_next(s);
	if (!session_has_keys(s))
		session_send_initiation(s, false);
}

/* Resolve the endpoint's hostname, without blocking the loop. */
void session_resolve(struct session *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
	char port[8];
	int rc;

	if (!s->cs->has_endpoint || s->cs->endpoint.is_literal || s->resolving || s->stopping)
		return;
	s->last_resolve_ms = now_ms();
	snprintf(port, sizeof(port), "%u", s->cs->endpoint.port);
	rc = uv_getaddrinfo(&s->d->loop, &s->resolver, session_on_resolved, s->cs->endpoint.host,
			    port, &hints);
	if (rc < 0) {
		log_warnx("%s: cannot resolve %s: %s", s->name, s->cs->endpoint.host, uv_strerror(rc));
		return;
	}
	s->resolving = true;
}

/* What session_on_device and the receive path will do, for the log and
 * the benchmark (which greps "data path: "). */
static const char *session_data_path(const struct session *s)
{
	bool gso = false;

	if (!s->dev.vnet)
		return "plain";
	if (s->cs->transport == CONF_TRANSPORT_TCP)
		return "tun offload (TSO/USO), TCP transport";
	for (unsigned i = 0; i < s->d->nsocks; i++)
		gso |= s->d->socks[i].gso && s->d->socks[i].gro;
	return gso ? "tun offload (TSO/USO) + UDP GSO/GRO" : "tun offload (TSO/USO)";
}

int session_start(struct session *s)
{
	int rc;

	/* Made by the privileged process when there is one (priv.h); it logs
	 * what failed. */
	if ((rc = priv_device_open(s->d->priv, s->cs, s->mtu, &s->dev)) < 0)
		return rc;
	s->dev_open = true;
	log_info("%s: device %s (%s, mtu %u) created", s->name, s->dev.name,
		 s->type == TUN_TYPE_TAP ? "tap" : "tun", s->mtu);
	log_info("%s: data path: %s", s->name, session_data_path(s));

	rc = uv_poll_init(&s->d->loop, &s->dev_poll, s->dev.fd);
	if (rc < 0) {
		log_warnx("%s: cannot poll device: %s", s->name, uv_strerror(rc));
		return rc;
	}
	s->dev_poll.data = s;
	s->dev_polling = true;
	uv_poll_start(&s->dev_poll, UV_READABLE, session_on_device);
	session_hook(s, HOOK_UP, false);
	/* A session with an endpoint dials at once; over TCP, once connected. */
	if (s->cs->transport == CONF_TRANSPORT_TCP)
		tcp_session_start(s);
	else if (s->has_endpoint)
		session_send_initiation(s, false);
	else
		session_resolve(s);
	return 0;
}

static void keypair_clear(struct session *s, struct keypair *kp)
{
	if (kp == NULL)
		return;
	if (kp->entry.index != 0)
		daemon_index_del(s->d, &kp->entry);
	sodium_memzero(&kp->keys, sizeof(kp->keys));
	kp->valid = false;
	kp->send_counter = 0;
	replay_init(&kp->replay);
}

static void session_handshake_clear(struct session *s)
{
	if (s->hs_entry.index != 0)
		daemon_index_del(s->d, &s->hs_entry);
	noise_handshake_clear(&s->hs);
}

static void session_keys_clear(struct session *s)
{
	for (int i = 0; i < 3; i++)
		keypair_clear(s, &s->kp[i]);
	s->current = s->previous = s->next = NULL;
	session_handshake_clear(s);
}

static void session_staged_drop(struct session *s, enum session_drop why)
{
	s->st.drops[why] += s->staged_count;
	s->staged_count = 0;
	s->staged_head = 0;
	free(s->staged);
	free(s->staged_mem);
	s->staged = NULL;
	s->staged_mem = NULL;
}

static void session_on_closed(uv_handle_t *h)
{
	struct session *s = h->data;

	s->handles_closing--;
}

/* Close a handle embedded in s, counting it until its callback ran. */
static void session_close_handle(struct session *s, uv_handle_t *h)
{
	h->data = s;
	s->handles_closing++;
	uv_close(h, session_on_closed);
}

bool session_idle(const struct session *s)
{
	return s->hooks_running == 0 && s->handles_closing == 0 && !s->resolving;
}

void session_stop(struct session *s)
{
	s->stopping = true;
	if (s->resolving)
		uv_cancel((uv_req_t *)&s->resolver);
	/* tcp_session_stop() would close the redial timer without a callback;
	 * closed here, its close is counted, so a session stopped by reload is
	 * not freed before libuv is done with the handle. */
	if (s->redial_init) {
		uv_timer_stop(&s->redial);
		session_close_handle(s, (uv_handle_t *)&s->redial);
		s->redial_init = false;
	}
	tcp_session_stop(s);
	if (s->connected) {
		s->connected = false;
		session_hook(s, HOOK_DISCONNECT, true);
	}
	if (s->dev_open)
		session_hook(s, HOOK_DOWN, true);
	if (s->dev_polling) {
		uv_poll_stop(&s->dev_poll);
		session_close_handle(s, (uv_handle_t *)&s->dev_poll);
		s->dev_polling = false;
	}
	if (s->dev_open) {
		s->dev.ops->close(&s->dev);
		s->dev_open = false;
		priv_device_closed(s->d->priv, s->name);
		log_info("%s: device removed", s->name);
	}
	session_keys_clear(s);
	session_staged_drop(s, DROP_GAVE_UP);
}

void session_free(struct session *s)
{
	session_keys_clear(s);
	session_staged_drop(s, DROP_GAVE_UP);
	sodium_memzero(s->cookie, sizeof(s->cookie));
	sodium_memzero(s->ss, sizeof(s->ss));
}

/* ------------------------------------------------------------ handshake */

static void session_params(const struct session *s, struct wire_params *p)
{
	p->version = WIRE_PROTOCOL_VERSION;
	p->type = (uint8_t)s->type;
	p->mtu = (uint16_t)s->mtu;
}

static void session_add_macs(struct session *s, uint8_t *msg, size_t len)
{
	uint64_t now = now_ms();
	/* A cookie is good for 120 s minus a margin (WireGuard: COOKIE_SECRET_MAX_AGE - LATENCY). */
	bool fresh = s->cookie_birth_ms != 0 &&
		     now - s->cookie_birth_ms < (120000 - 5000) / (s->d->time_scale ? s->d->time_scale : 1);
	wire_macs_add(msg, len, s->mac1_key, fresh ? s->cookie : NULL);
	memcpy(s->last_mac1, msg + len - 2 * WIRE_MAC_LEN, WIRE_MAC_LEN);
}

static void session_send_initiation(struct session *s, bool retry)
{
	struct wire_initiation m;
	uint8_t payload[WIRE_INIT_PAYLOAD_LEN];
	struct wire_params p;
	struct timespec ts;
	uint64_t now = now_ms();
	int rc;

	if (!s->has_endpoint || s->stopping)
		return;
	/* At most one initiation per REKEY_TIMEOUT unless it is the timer's retry. */
	if (!retry && s->timers.last_initiation_sent != 0 &&
	    now - s->timers.last_initiation_sent < s->tcfg.rekey_timeout_ms)
		return;

	session_handshake_clear(s);
	rc = s->ss_valid ? noise_handshake_init_precomputed(&s->hs, NOISE_INITIATOR, true,
				(const uint8_t *)WIRE_PROLOGUE, strlen(WIRE_PROLOGUE), s->d->static_priv,
				s->d->static_pub, s->cs->public_key, s->ss, s->cs->preshared_key)
			 : -EINVAL;
	if (rc < 0) {
		log_warnx("%s: cannot start a handshake: peer public key is unusable", s->name);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	wire_tai64n(payload, (uint64_t)ts.tv_sec, (uint32_t)ts.tv_nsec);
	session_params(s, &p);
	wire_params_encode(payload + WIRE_TAI64N_LEN, &p);

	memset(&m, 0, sizeof(m));
	wire_header_set(m.header, WIRE_INITIATION);
	rc = noise_write_msg1(&s->hs, m.noise, payload, sizeof(payload));
	sodium_memzero(payload, sizeof(payload));
	if (rc < 0) {
		session_handshake_clear(s);
		log_warnx("%s: handshake aborted: low-order key", s->name);
		return;
	}
	daemon_index_add(s->d, &s->hs_entry, s, NULL, 0);
	wire_put_le32(m.sender, s->hs_entry.index);
	session_add_macs(s, (uint8_t *)&m, sizeof(m));

	s->st.handshake_attempts++;
	daemon_send(s->d, s, (uint8_t *)&m, sizeof(m));
	timers_handshake_initiated(&s->timers, now, randombytes_uniform((uint32_t)s->tcfg.rekey_jitter_ms + 1));
	timers_any_sent(&s->timers, now);
	log_debug("%s: initiation sent", s->name);
}

void session_initiate(struct session *s)
{
	session_send_initiation(s, true);
}

static void session_connected(struct session *s)
{
	if (s->connected)
		return;
	s->connected = true;
	session_hook(s, HOOK_CONNECT, false);
}

static void session_disconnected(struct session *s, const char *why)
{
	if (!s->connected)
		return;
	s->connected = false;
	log_info("%s: disconnected (%s)", s->name, why);
	session_hook(s, HOOK_DISCONNECT, false);
}

/* Install new keys: as initiator they are current at once; as responder they
 * wait in `next` until the initiator's first data message confirms them. */
static struct keypair *session_keys_install(struct session *s, const struct noise_keys *keys,
					    uint32_t remote_index, bool initiator, uint64_t now)
{
	struct keypair *kp = NULL;

	/* Recycle the slot that is neither current nor previous. */
	for (int i = 0; i < 3; i++) {
		struct keypair *c = &s->kp[i];
		if (c != s->current && c != s->previous) {
			kp = c;
			break;
		}
	}
	keypair_clear(s, kp);
	if (s->next == kp)
		s->next = NULL;
	/* Keys replacing live keys: a rekey (the first keys are not one). */
	if (s->current != NULL && s->current->valid)
		s->st.rekeys++;
	kp->keys = *keys;
	kp->remote_index = remote_index;
	kp->initiator = initiator;
	kp->birth_ms = now;
	kp->send_counter = 0;
	replay_init(&kp->replay);
	kp->valid = true;
	/* Take over the handshake's index: the peer addresses us with it. */
	kp->entry.index = 0;

	if (initiator) {
		if (s->next != NULL) {
			keypair_clear(s, s->next);
			s->next = NULL;
		}
		if (s->previous != NULL)
			keypair_clear(s, s->previous);
		s->previous = s->current;
		s->current = kp;
	} else {
		if (s->next != NULL)
			keypair_clear(s, s->next);
		s->next = kp;
	}
	timers_keys_created(&s->timers, now);
	return kp;
}

static void session_staged_flush(struct session *s);
static void session_send_keepalive(struct session *s);

void session_consume_initiation(struct session *s, struct noise_handshake *hs,
				uint32_t sender_index, const uint8_t *payload,
				const struct sockaddr *src, int sock, struct tcp_conn *conn)
{
	struct wire_params theirs, ours;
	struct wire_response m;
	struct noise_keys keys;
	uint64_t now = now_ms();
	char addr[UTIL_ADDRSTRLEN];
	int rc;

	/* A replayed initiation (same or older timestamp) must not disturb the
	 * live session: it gets no response at all. */
	if (!wire_tai64n_after(payload, s->last_timestamp)) {
		s->d->st.initiation_replay++;
		s->st.drops[DROP_HANDSHAKE]++;
		session_log_limited(s, &s->rl_hs, "replayed handshake initiation refused", src);
		return;
	}
	if (s->last_initiation_consumed_ms != 0 &&
	    now - s->last_initiation_consumed_ms < SESSION_INITIATION_MIN_MS) {
		s->d->st.initiation_flood++;
		return;
	}
	wire_params_decode(&theirs, payload + WIRE_TAI64N_LEN);
	session_params(s, &ours);
	if (theirs.version != ours.version || theirs.type != ours.type || theirs.mtu != ours.mtu) {
		uint32_t suppressed;
		s->st.drops[DROP_HANDSHAKE]++;
		if (ratelimit_allow(&s->rl_hs, now, &suppressed)) {
			if (theirs.version != ours.version)
				log_warnx("%s: refused handshake: peer's protocol version is %u, ours is %u",
					  s->name, theirs.version, ours.version);
			else if (theirs.type != ours.type)
				log_warnx("%s: refused handshake: peer's type is %s, ours is %s", s->name,
					  theirs.type == TUN_TYPE_TAP ? "tap" : "tun",
					  ours.type == TUN_TYPE_TAP ? "tap" : "tun");
			else
				log_warnx("%s: refused handshake: peer's mtu is %u, ours is %u", s->name,
					  theirs.mtu, ours.mtu);
		}
		return;
	}
	/* Both ends initiated at once: if each answered the other, neither
	 * would hold confirmed keys until the 5 s retry.  The end with the
	 * greater public key keeps its initiation in flight and lets the other
	 * answer it; the other end answers as usual. */
	if (s->hs.state == NOISE_HS_INITIATION_SENT && s->hs.role == NOISE_INITIATOR &&
	    now - s->timers.last_initiation_sent < s->tcfg.rekey_timeout_ms &&
	    memcmp(s->d->static_pub, s->cs->public_key, KEY_LEN) > 0) {
		log_debug("%s: simultaneous initiations: keeping ours", s->name);
		return;
	}
	memcpy(s->last_timestamp, payload, WIRE_TAI64N_LEN);
	s->last_initiation_consumed_ms = now;

	/* Our own initiation in flight (if any) is superseded. */
	session_handshake_clear(s);
	s->hs = *hs;
	noise_handshake_set_psk(&s->hs, s->cs->preshared_key);

	memset(&m, 0, sizeof(m));
	wire_header_set(m.header, WIRE_RESPONSE);
	rc = noise_write_msg2(&s->hs, m.noise, NULL, 0);
	if (rc == 0)
		rc = noise_split(&s->hs, &keys);
	if (rc < 0) {
		session_handshake_clear(s);
		s->st.drops[DROP_HANDSHAKE]++;
		return;
	}
	struct keypair *kp = session_keys_install(s, &keys, sender_index, false, now);
	sodium_memzero(&keys, sizeof(keys));
	daemon_index_add(s->d, &kp->entry, s, kp, 0);
	wire_put_le32(m.sender, kp->entry.index);
	wire_put_le32(m.receiver, sender_index);

	/* The initiation authenticated the peer: learn where it is (roaming). */
	if (!s->has_endpoint || !util_sockaddr_equal(src, (struct sockaddr *)&s->endpoint)) {
		if (s->has_endpoint)
			log_info("%s: endpoint changed to %s", s->name,
				 util_sockaddr_str(src, addr, sizeof(addr)));
		memcpy(&s->endpoint, src, util_sockaddr_len(src));
		s->has_endpoint = true;
	}
	s->sock = sock;
	/* Before the response goes out: it must leave on this connection. */
	if (conn != NULL)
		tcp_conn_bind(conn, s);
	else
		tcp_session_unbind(s);
	session_add_macs(s, (uint8_t *)&m, sizeof(m));
	daemon_send(s->d, s, (uint8_t *)&m, sizeof(m));
	timers_any_sent(&s->timers, now);
	timers_any_received(&s->timers, now);
	/* Complete only once the initiator's first data confirms the keys. */
	log_debug("%s: handshake answered, peer %s", s->name, util_sockaddr_str(src, addr, sizeof(addr)));
}

void session_consume_response(struct session *s, uint8_t *msg, size_t len,
			      const struct sockaddr *src, int sock, struct tcp_conn *conn)
{
	const struct wire_response *m = (const void *)msg;
	struct noise_handshake hs;
	struct noise_keys keys;
	uint64_t now = now_ms();
	char addr[UTIL_ADDRSTRLEN];
	int rc;

	if (s->hs.state != NOISE_HS_INITIATION_SENT || s->hs.role != NOISE_INITIATOR)
		return;
	/* Work on a copy: a forged response (mac1 is computable by anyone) must
	 * not destroy the handshake in flight. */
	hs = s->hs;
	rc = noise_read_msg2(&hs, NULL, m->noise, sizeof(m->noise));
	if (rc == 0)
		rc = noise_split(&hs, &keys);
	noise_handshake_clear(&hs);
	if (rc < 0) {
		s->st.drops[DROP_HANDSHAKE]++;
		session_log_limited(s, &s->rl_hs,
				    "handshake response failed authentication (wrong preshared_key?)", src);
		return;
	}
	/* The responder addresses our data with the index of our initiation. */
	uint32_t our_index = s->hs_entry.index;
	session_handshake_clear(s);
	struct keypair *kp = session_keys_install(s, &keys, wire_get_le32(m->sender), true, now);
	sodium_memzero(&keys, sizeof(keys));
	daemon_index_add(s->d, &kp->entry, s, kp, our_index);

	if (!util_sockaddr_equal(src, (struct sockaddr *)&s->endpoint)) {
		log_info("%s: endpoint changed to %s", s->name, util_sockaddr_str(src, addr, sizeof(addr)));
		memcpy(&s->endpoint, src, util_sockaddr_len(src));
	}
	s->sock = sock;
	s->has_endpoint = true;
	if (conn != NULL)
		tcp_conn_bind(conn, s);
	else
		tcp_session_unbind(s);
	timers_handshake_complete(&s->timers, now);
	timers_any_received(&s->timers, now);
	s->st.handshakes_completed++;
	log_info("%s: handshake complete (we initiated), peer %s", s->name,
		 util_sockaddr_str(src, addr, sizeof(addr)));
	session_connected(s);
	/* Data (or a keepalive) under the new key confirms it to the responder. */
	if (s->staged_count > 0)
		session_staged_flush(s);
	else
		session_send_keepalive(s);
}

void session_consume_cookie(struct session *s, const uint8_t *msg, size_t len)
{
	if (s->hs.state != NOISE_HS_INITIATION_SENT)
		return;
	if (wire_cookie_reply_consume(s->cookie, (const struct wire_cookie_reply *)msg,
				      s->cookie_key, s->last_mac1) == 0) {
		s->cookie_birth_ms = now_ms();
		log_debug("%s: cookie received: peer is under load", s->name);
	}
}

/* ------------------------------------------------------------ data out */

static bool keypair_usable(const struct session *s, const struct keypair *kp, uint64_t now)
{
	return kp != NULL && kp->valid && now - kp->birth_ms < s->tcfg.reject_after_ms &&
	       kp->send_counter < REPLAY_REJECT_AFTER_MESSAGES;
}

static bool session_has_keys(const struct session *s)
{
	return keypair_usable(s, s->current, now_ms());
}

static void session_maybe_rekey_on_send(struct session *s, uint64_t now)
{
	const struct keypair *kp = s->current;
	if (kp != NULL && kp->valid && kp->initiator &&
	    (now - kp->birth_ms >= s->tcfg.rekey_after_ms || kp->send_counter >= REKEY_AFTER_MESSAGES))
		session_send_initiation(s, false);
}

/* Encrypt the packet at buf + WIRE_DATA_HEADER_LEN (len bytes, room for
 * padding and tag behind it) in place and queue it.  Caller checked keys. */
static void session_seal(struct session *s, struct keypair *kp, uint8_t *buf, size_t len,
			 unsigned slot, uint64_t now)
{
	size_t padded = wire_padded_len(len, s->max_packet);
	uint8_t *pt = buf + WIRE_DATA_HEADER_LEN;
	uint64_t n = kp->send_counter++;

	memset(pt + len, 0, padded - len);
	wire_header_set(buf, WIRE_DATA);
	wire_put_le32(buf + 4, kp->remote_index);
	wire_put_le64(buf + 8, n);
	noise_encrypt(pt, pt, padded, NULL, 0, n, kp->keys.send);
	daemon_tx_commit(s->d, slot, s, WIRE_DATA_HEADER_LEN + padded + NOISE_TAG_LEN);
	timers_any_sent(&s->timers, now);
	if (len > 0) {
		timers_data_sent(&s->timers, now);
		s->st.tx_packets++;
		s->st.tx_bytes += len;
	}
}

static void session_send_keepalive(struct session *s)
{
	uint64_t now = now_ms();
	unsigned slot;
	uint8_t *buf;

	if (!keypair_usable(s, s->current, now) || !s->has_endpoint)
		return;
	buf = daemon_tx_reserve(s->d, &slot);
	session_seal(s, s->current, buf, 0, slot, now);
}

static void session_stage(struct session *s, const uint8_t *pkt, size_t len)
{
	if (s->staged == NULL) {
		s->staged = calloc(SESSION_STAGED_MAX, sizeof(*s->staged));
		s->staged_mem = malloc(SESSION_STAGED_MAX * s->max_packet);
		if (s->staged == NULL || s->staged_mem == NULL) {
			session_staged_drop(s, DROP_QUEUE_FULL);
			s->st.drops[DROP_QUEUE_FULL]++;
			return;
		}
		for (unsigned i = 0; i < SESSION_STAGED_MAX; i++)
			s->staged[i].data = s->staged_mem + (size_t)i * s->max_packet;
	}
	if (s->staged_count == SESSION_STAGED_MAX) {
		/* Keep the newest: drop the oldest (as WireGuard does). */
		s->staged_head = (s->staged_head + 1) % SESSION_STAGED_MAX;
		s->staged_count--;
		s->st.drops[DROP_QUEUE_FULL]++;
	}
	struct staged_packet *p = &s->staged[(s->staged_head + s->staged_count) % SESSION_STAGED_MAX];
	memcpy(p->data, pkt, len);
	p->len = (uint16_t)len;
	s->staged_count++;
}

static void session_staged_flush(struct session *s)
{
	uint64_t now = now_ms();

	while (s->staged_count > 0 && keypair_usable(s, s->current, now)) {
		struct staged_packet *p = &s->staged[s->staged_head];
		unsigned slot;
		uint8_t *buf = daemon_tx_reserve(s->d, &slot);
		memcpy(buf + WIRE_DATA_HEADER_LEN, p->data, p->len);
		session_seal(s, s->current, buf, p->len, slot, now);
		s->staged_head = (s->staged_head + 1) % SESSION_STAGED_MAX;
		s->staged_count--;
	}
	if (s->staged_count == 0)
		session_staged_drop(s, DROP_GAVE_UP); /* frees the ring; count is 0 */
	daemon_flush(s->d);
}

/* One packet read from the device sits at buf + WIRE_DATA_HEADER_LEN in tx
 * slot `slot`: seal it in place (the slot is committed), stage it while a
 * handshake is needed, or drop it. */
static void session_device_packet(struct session *s, uint8_t *buf, size_t n, unsigned slot,
				  uint64_t now)
{
	if (s->shape_out.rate != 0 && !shaper_allow(&s->shape_out, n, util_now_ns())) {
		s->st.drops[DROP_SHAPED]++;
		return;
	}
	if (keypair_usable(s, s->current, now) && s->has_endpoint) {
		session_seal(s, s->current, buf, n, slot, now);
		session_maybe_rekey_on_send(s, now);
	} else if (!s->has_endpoint) {
		s->st.drops[DROP_NO_ENDPOINT]++;
	} else {
		session_stage(s, buf + WIRE_DATA_HEADER_LEN, n);
		session_send_initiation(s, false);
	}
}

/* A vnet device (tun.h): each read is a virtio-net header and a packet of
 * up to 64 KiB, read into the daemon's one super-packet buffer and split by
 * the offload iterator straight into tx slots, each segment a complete IP
 * packet of at most the MTU, sealed in place.  The budget counts segments,
 * so a busy TSO sender cannot hold the loop longer than a plain one. */
static void session_on_device_vnet(struct session *s, uint64_t now)
{
	struct daemon *d = s->d;
	uint8_t *sp = d->tx.super;
	unsigned budget = TRANSPORT_BATCH * 2;

	while (budget > 0) {
		struct offload_vnet_hdr vh;
		struct offload_seg_iter it;
		ssize_t n = tun_read_vnet(&s->dev, sp, OFFLOAD_VNET_HDR_LEN + OFFLOAD_MAX_PACKET);

		if (n == -EAGAIN || n == -EINTR)
			break;
		if (n < 0) {
			log_warnx("%s: device read: %s", s->name, strerror((int)-n));
			break;
		}
		budget--;
		/* What the kernel hands over is checked like anything else: a
		 * header or packet the iterator cannot split is dropped. */
		if (!offload_vnet_hdr_parse(&vh, sp, (size_t)n) ||
		    !offload_seg_init(&it, &vh, sp + OFFLOAD_VNET_HDR_LEN,
				      (size_t)n - OFFLOAD_VNET_HDR_LEN)) {
			s->st.drops[DROP_BAD_INNER]++;
			continue;
		}
		for (;;) {
			unsigned slot;
			uint8_t *buf = daemon_tx_reserve(d, &slot);
			ssize_t len = offload_seg_next(&it, buf + WIRE_DATA_HEADER_LEN, s->max_packet);
			if (len == 0)
				break;
			if (len < 0) {
				s->st.drops[DROP_TOO_BIG]++;
				break;
			}
			session_device_packet(s, buf, (size_t)len, slot, now);
			if (budget > 0)
				budget--;
		}
	}
	daemon_flush(d);
}

/* The device has packets: read a bounded batch, seal each in place in the
 * daemon's tx batch, then send the batch in one go. */
static void session_on_device(uv_poll_t *h, int status, int events)
{
	struct session *s = h->data;
	uint64_t now = now_ms();
	unsigned budget = TRANSPORT_BATCH * 2;

	if (status < 0)
		return;
	if (s->dev.vnet) {
		session_on_device_vnet(s, now);
		return;
	}
	while (budget-- > 0) {
		unsigned slot;
		uint8_t *buf = daemon_tx_reserve(s->d, &slot);
		ssize_t n = s->dev.ops->read(&s->dev, buf + WIRE_DATA_HEADER_LEN, s->max_packet);
		if (n == -EAGAIN || n == -EINTR)
			break;
		if (n < 0) {
			log_warnx("%s: device read: %s", s->name, strerror((int)-n));
			break;
		}
		if (n == 0)
			continue;
		session_device_packet(s, buf, (size_t)n, slot, now);
	}
	daemon_flush(s->d);
}

/* ------------------------------------------------------------ data in */

/* Length of the real packet inside a padded plaintext, or 0 if invalid. */
static size_t session_inner_len(const struct session *s, const uint8_t *p, size_t len)
{
	size_t off = 0, iplen;

	if (s->type == TUN_TYPE_TAP) {
		if (len < ETH_HLEN_)
			return 0;
		uint16_t ethertype = (uint16_t)(p[12] << 8 | p[13]);
		if (ethertype != 0x0800 && ethertype != 0x86dd)
			return len; /* ARP etc.: trailing zeros are Ethernet padding */
		off = ETH_HLEN_;
		p += off;
		len -= off;
	}
	if (len < 1)
		return 0;
	switch (p[0] >> 4) {
	case 4:
		if (len < 20)
			return 0;
		iplen = (size_t)(p[2] << 8 | p[3]);
		if (iplen < 20 || iplen > len)
			return 0;
		return off + iplen;
	case 6:
		if (len < 40)
			return 0;
		iplen = 40 + (size_t)(p[4] << 8 | p[5]);
		if (iplen > len)
			return 0;
		return off + iplen;
	default:
		return 0;
	}
}

void session_consume_data(struct session *s, struct keypair *kp, uint8_t *msg, size_t len,
			  const struct sockaddr *src, int sock, struct tcp_conn *conn)
{
	uint64_t now = now_ms();
	uint64_t counter = wire_get_le64(msg + 8);
	uint8_t *pt = msg + WIRE_DATA_HEADER_LEN;
	size_t ctlen = len - WIRE_DATA_HEADER_LEN, ptlen = ctlen - NOISE_TAG_LEN;
	char addr[UTIL_ADDRSTRLEN];

	if (!kp->valid || now - kp->birth_ms >= s->tcfg.reject_after_ms) {
		s->st.drops[DROP_KEY_EXPIRED]++;
		return;
	}
	/* 1. authenticate */
	if (noise_decrypt(pt, pt, ctlen, NULL, 0, counter, kp->keys.recv) < 0) {
		s->st.drops[DROP_AUTH]++;
		session_log_limited(s, &s->rl_auth, "data failed authentication", src);
		return;
	}
	/* 2. then the counter: only an authentic one may move the window */
	if (!replay_check(&kp->replay, counter)) {
		s->st.drops[DROP_REPLAY]++;
		return;
	}
	/* 3. key confirmation: the initiator used our responder key */
	if (kp == s->next) {
		if (s->previous != NULL)
			keypair_clear(s, s->previous);
		s->previous = s->current;
		s->current = kp;
		s->next = NULL;
		timers_handshake_complete(&s->timers, now);
		s->st.handshakes_completed++;
		log_info("%s: handshake complete (peer initiated), peer %s", s->name,
			 util_sockaddr_str(src, addr, sizeof(addr)));
		session_connected(s);
		if (s->staged_count > 0)
			session_staged_flush(s);
	}
	/* 4. endpoint and timers move only for authentic, fresh packets */
	if (!util_sockaddr_equal(src, (struct sockaddr *)&s->endpoint)) {
		log_info("%s: endpoint changed to %s", s->name, util_sockaddr_str(src, addr, sizeof(addr)));
		memcpy(&s->endpoint, src, util_sockaddr_len(src));
		s->has_endpoint = true;
	}
	s->sock = sock;
	if (conn != NULL)
		tcp_conn_bind(conn, s);
	timers_any_received(&s->timers, now);
	if (kp->initiator && kp == s->current &&
	    now - kp->birth_ms >= s->tcfg.reject_after_ms - s->tcfg.keepalive_ms - s->tcfg.rekey_timeout_ms)
		session_send_initiation(s, false);
	if (ptlen == 0)
		return; /* keepalive */

	/* 5. the inner packet must be what the device expects */
	size_t n = session_inner_len(s, pt, ptlen);
	if (n == 0 || n > s->max_packet) {
		s->st.drops[DROP_BAD_INNER]++;
		session_log_limited(s, &s->rl_inner, "malformed packet inside the tunnel", src);
		return;
	}
	timers_data_received(&s->timers, now);
	if (s->shape_in.rate != 0 && !shaper_allow(&s->shape_in, n, util_now_ns())) {
		s->st.drops[DROP_SHAPED]++;
		return;
	}
	ssize_t w;
	if (s->dev.vnet)
		/* The data header in front of pt has room for the vnet header.
		 * Over UDP, the daemon flushes the coalescer after each batch;
		 * over TCP nothing would, so those packets go on their own. */
		w = tun_write_vnet(conn == NULL ? &s->d->rx.gro : NULL, &s->dev,
				   &s->st.drops[DROP_DEVICE], pt, n);
	else
		w = s->dev.ops->write(&s->dev, pt, n);
	if (w < 0) {
		s->st.drops[DROP_DEVICE]++;
		return;
	}
	s->st.rx_packets++;
	s->st.rx_bytes += n;
}

/* ------------------------------------------------------------ timers */

void session_tick(struct session *s, uint64_t now)
{
	unsigned due = timers_poll(&s->timers, now, s->staged_count > 0);

	if (due & TIMER_GIVE_UP) {
		char addr[UTIL_ADDRSTRLEN];
		log_info("%s: no answer from %s after %llu s of handshake attempts; giving up until there is traffic",
			 s->name,
			 s->has_endpoint ? util_sockaddr_str((struct sockaddr *)&s->endpoint, addr, sizeof(addr)) : "(none)",
			 (unsigned long long)(s->tcfg.rekey_attempt_ms / 1000));
		session_handshake_clear(s);
		session_staged_drop(s, DROP_GAVE_UP);
		/* A dial-out session forgets a roamed endpoint: back to the configured one. */
		if (s->cs->has_endpoint && s->cs->endpoint.is_literal) {
			memcpy(&s->endpoint, &s->cs->endpoint.addr, sizeof(s->endpoint));
			s->sock = daemon_sock_for(s->d, (struct sockaddr *)&s->endpoint);
		}
		session_resolve(s);
	}
	if (due & TIMER_SEND_INITIATION) {
		/* Unanswered for 3 retries: try the hostname's next address, and
		 * look the name up again (its address may have changed). */
		if (s->nresolved > 0 && s->timers.handshake_attempts_start != 0 &&
		    now - s->last_resolve_ms >= 3 * s->tcfg.rekey_timeout_ms) {
			session_resolved_next(s);
			session_resolve(s);
		}
		session_send_initiation(s, true);
	}
	if (due & TIMER_EXPIRE_KEYS) {
		/* No handshake for REJECT_AFTER_TIME: the link is gone or idle. */
		if (!keypair_usable(s, s->current, now))
			session_disconnected(s, "keys expired");
	}
	if (due & TIMER_ZERO_KEYS) {
		session_keys_clear(s);
		session_disconnected(s, "keys zeroed");
		log_debug("%s: all keys wiped after 540 s without a handshake", s->name);
	}
	if (due & TIMER_SEND_KEEPALIVE) {
		if (keypair_usable(s, s->current, now))
			session_send_keepalive(s);
		else if (s->cs->keepalive != 0)
			/* Persistent keepalive with no keys: keep trying to be
			 * reachable (NAT), as WireGuard does. */
			session_send_initiation(s, false);
	}
}
