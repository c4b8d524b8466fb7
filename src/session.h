/*
 * One peer: its device, handshake state, keys, endpoint, timers and
 * counters.  Sessions are created from the config by the daemon and driven
 * by it: packets in (from the network and from the device), timer ticks.
 */
#ifndef SALTUN_SESSION_H
#define SALTUN_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "conf.h"
#include "hook.h"
#include "log.h"
#include "noise.h"
#include "replay.h"
#include "timers.h"
#include "tun.h"
#include "wire.h"

struct daemon;
struct session;
struct tcp_conn;

#define SESSION_STAGED_MAX 128   /* packets held while a handshake is in flight */
#define SESSION_HOOK_QUEUE 8     /* hook events waiting for the running one */

/* Entry of the daemon's receiver-index table (intrusive: no allocation). */
struct index_entry {
	struct index_entry *next;
	uint32_t index;             /* 0 = not in the table */
	struct session *session;
	struct keypair *keypair;    /* NULL: the session's handshake */
};

/* Transport keys of one completed handshake. */
struct keypair {
	struct noise_keys keys;
	uint64_t send_counter;
	struct replay replay;
	struct index_entry entry;   /* our (local) index */
	uint32_t remote_index;
	uint64_t birth_ms;
	bool initiator;             /* we sent the initiation: we rekey on time */
	bool valid;
};

enum session_state { SESSION_WAITING = 0, SESSION_HANDSHAKING, SESSION_UP };

/* Why packets were dropped: every drop is counted under its reason. */
enum session_drop {
	DROP_AUTH = 0,       /* data failed AEAD authentication */
	DROP_REPLAY,         /* counter replayed or too old */
	DROP_BAD_INNER,      /* decrypted packet not a valid IP packet / frame */
	DROP_KEY_EXPIRED,    /* data on a key too old or exhausted */
	DROP_QUEUE_FULL,     /* staging queue full while handshaking */
	DROP_NO_ENDPOINT,    /* nothing to send to: peer never dialled in */
	DROP_TOO_BIG,        /* packet larger than the MTU */
	DROP_DEVICE,         /* write to the device failed */
	DROP_SEND,           /* send to the network failed */
	DROP_HANDSHAKE,      /* handshake message refused (auth, replay, params) */
	DROP_GAVE_UP,        /* staged packets dropped after the handshake attempts ran out */
	DROP_SHAPED,         /* over the session's `speed` */
	DROP__COUNT
};
const char *session_drop_name(enum session_drop d);

struct session_stats {
	uint64_t rx_bytes, rx_packets, tx_bytes, tx_packets;
	uint64_t drops[DROP__COUNT];
	uint64_t handshake_attempts, handshakes_completed, hook_failures, rekeys;
};

/* Token bucket for `speed` (vtun's shaping): drops beyond the rate.
 * Tokens are kept in byte-nanoseconds so slow rates lose no precision. */
struct shaper {
	uint64_t rate;          /* bytes per second; 0 = unlimited */
	uint64_t burst_bn;      /* bucket size, byte-ns */
	uint64_t tokens_bn;
	uint64_t last_ns;
};
void shaper_init(struct shaper *sh, unsigned kbit, size_t max_packet);
bool shaper_allow(struct shaper *sh, size_t len, uint64_t now_ns);

struct staged_packet {
	uint16_t len;
	uint8_t *data;
};

struct session {
	struct daemon *d;
	const struct conf_session *cs;
	char name[CONF_NAME_MAX + 1];
	enum tun_type type;
	unsigned mtu;                   /* effective: configured or automatic */
	size_t max_packet;              /* mtu, + 14 for a tap frame */

	struct tun_dev dev;
	uv_poll_t dev_poll;
	bool dev_open, dev_polling;

	/* Handshake in flight (either role) and what protects it. */
	struct noise_handshake hs;
	struct index_entry hs_entry;
	uint8_t ss[NOISE_KEY_LEN];      /* DH(our static, peer static): fixed, computed once */
	bool ss_valid;                  /* false: the peer's key is low-order, never usable */
	uint8_t mac1_key[32];           /* peer's: for messages we send */
	uint8_t cookie_key[32];         /* peer's: to open its cookie replies */
	uint8_t last_mac1[WIRE_MAC_LEN];/* mac1 of our last handshake message */
	uint8_t cookie[WIRE_COOKIE_LEN];
	uint64_t cookie_birth_ms;       /* 0 = none */
	uint8_t last_timestamp[WIRE_TAI64N_LEN]; /* greatest initiation timestamp seen */
	uint64_t last_initiation_consumed_ms;

	/* Keys: current sends and receives; previous still receives; next is a
	 * responder's key awaiting confirmation by the initiator's first data. */
	struct keypair kp[3];
	struct keypair *current, *previous, *next;

	/* Where the peer is: from the config, then the latest authenticated packet. */
	struct sockaddr_storage endpoint;
	bool has_endpoint;
	int sock;                       /* index of the daemon socket to send from */

	/* Endpoint given as a hostname: resolved asynchronously at start and
	 * again while handshakes go unanswered (dynamic DNS). */
	uv_getaddrinfo_t resolver;
	bool resolving;
	uint64_t last_resolve_ms;
	struct sockaddr_storage resolved[4];
	unsigned nresolved, resolved_next;

	struct timer_config tcfg;
	struct timers timers;

	struct staged_packet *staged;   /* ring, allocated while a handshake is needed */
	uint8_t *staged_mem;
	unsigned staged_head, staged_count;

	/* TCP (transport_tcp.c): the connection the last handshake over TCP
	 * bound (sends go there while it lives), the one we dialed (transport =
	 * tcp with an endpoint), and the reconnect timer with its backoff. */
	struct tcp_conn *conn, *dial;
	uv_timer_t redial;
	bool redial_init;
	uint64_t redial_backoff_ms;     /* next delay before jitter; 0 = reset */

	bool connected;                 /* connect hook ran, disconnect not yet */
	bool stopping;
	/* Hooks of a session run one at a time, in event order (connect must
	 * not race the up hook that assigns the addresses). */
	unsigned hooks_running;
	enum hook_event hook_queue[SESSION_HOOK_QUEUE];
	unsigned hook_queue_head, hook_queue_len;
	struct shaper shape_in, shape_out;  /* network->device, device->network */
	struct session_stats st;
	struct ratelimit rl_auth, rl_hs, rl_inner;

	/* Reload stops sessions while the loop runs: the stopped one waits in
	 * the daemon's retired list until session_idle(), then is freed. */
	unsigned handles_closing;       /* uv_close()d, close callback not yet run */
	struct session *retired_next;
};

/* Set up from the config (no I/O yet).  0 or -errno. */
int session_init(struct session *s, struct daemon *d, const struct conf_session *cs);
/* Create the device, run the up hook, start polling, dial if we have an endpoint. */
int session_start(struct session *s);
/* Stop: disconnect + down hooks (synchronously), device closed, keys wiped. */
void session_stop(struct session *s);
/* Free what session_init allocated; wipe secrets. */
void session_free(struct session *s);
/* Nothing of a stopped session is pending: no hook running, no handle
 * waiting for its close callback, no name lookup in flight.  Only then may
 * its memory go (callbacks find the session through the handles embedded
 * in it).  A stopped session never reads s->cs again. */
bool session_idle(const struct session *s);

enum session_state session_state(const struct session *s);

/* Packets from the network, after the daemon routed them (by index or by
 * the initiator's static key).  `src` is the sender's address and `sock`
 * the daemon socket it came in on; over TCP, `conn` is the connection
 * (sock = -1, src its peer) and is bound to the session when the message
 * authenticates (tcp_conn_bind); NULL over UDP. */
void session_consume_response(struct session *s, uint8_t *msg, size_t len,
			      const struct sockaddr *src, int sock, struct tcp_conn *conn);
void session_consume_cookie(struct session *s, const uint8_t *msg, size_t len);
void session_consume_data(struct session *s, struct keypair *kp, uint8_t *msg, size_t len,
			  const struct sockaddr *src, int sock, struct tcp_conn *conn);
/* The responder's half: `hs` has consumed message 1 and names this session's
 * peer; `payload` is the decrypted initiation payload. */
void session_consume_initiation(struct session *s, struct noise_handshake *hs,
				uint32_t sender_index, const uint8_t *payload,
				const struct sockaddr *src, int sock, struct tcp_conn *conn);
/* Start a handshake now, whatever the retry timer says (a dialed TCP
 * connection has just come up: the handshake binds it). */
void session_initiate(struct session *s);

/* Hostname endpoints: look the name up (asynchronously; no-op for an
 * address or while a lookup runs), and move to its next address. */
void session_resolve(struct session *s);
void session_resolved_next(struct session *s);

/* Timer tick: do what is due. */
void session_tick(struct session *s, uint64_t now);

#endif
