/*
 * The daemon: owns the libuv loop, the sockets, every session, signals and
 * the order of startup and shutdown.
 */
#ifndef SALTUN_DAEMON_H
#define SALTUN_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "session.h"
#include "transport.h"
#include "wire.h"

struct daemon_options {
	const char *config_path;
	int verbosity;          /* count of -v: 1 = debug */
	bool detach;            /* -d: fork to the background, log to syslog */
	unsigned time_scale;    /* tests only: all protocol timers divided by this (1 = real) */
};

/* Counters of what arrived that no session could own. */
struct daemon_stats {
	uint64_t bad_header, bad_mac1, unknown_index, unknown_peer, initiation_auth, cookie_sent,
		initiation_replay, initiation_flood;
};

#define DAEMON_MAX_SOCKS (CONF_MAX_LISTEN + 2)

struct control;
struct priv;

struct daemon {
	uv_loop_t loop;
	struct conf conf;
	unsigned time_scale;

	uint8_t static_priv[KEY_LEN];
	uint8_t static_pub[KEY_LEN];
	uint8_t mac1_key[32];                /* ours: mac1 of messages sent to us */
	struct wire_cookie_checker cookies;

	/* One allocation per session, in config order: handles are embedded
	 * in a session and index entries and hook callbacks point at it, so a
	 * reload that changes the table never moves one. */
	struct session **sessions;
	unsigned nsessions;
	/* Stopped by a reload, freed by the tick once session_idle(). */
	struct session *retired;
	char *config_path;                   /* absolute: daemon(3) moves us to "/" */
	bool log_level_forced;               /* -v given: reload keeps debug */
	bool log_sink_forced;                /* -d given: reload keeps syslog */

	struct udp_sock socks[DAEMON_MAX_SOCKS];
	unsigned nsocks;
	struct udp_batch rx, tx;
	size_t slot_size;
	struct tcp_transport tcp;

	/* Receiver-index table: buckets of intrusive lists. */
	struct index_entry **index_buckets;
	uint32_t index_mask;

	uv_signal_t sigint, sigterm, sighup;
	uv_timer_t tick;
	uint64_t tick_ms;
	unsigned handshakes_this_tick;       /* load: above a threshold, require cookies */

	struct daemon_stats st;
	struct ratelimit rl_mac1, rl_unknown, rl_auth;
	bool stopping;

	uint64_t started_ms;                 /* util_now_ms() at startup: status uptime */
	struct control *control;             /* NULL: no control socket (see control.h) */
	struct priv *priv;                   /* NULL: one process (see priv.h) */
};

/* Load the config, bring every session up and serve until SIGINT/SIGTERM.
 * Returns the process exit status (0 clean stop, 1 error). */
int daemon_run(const struct daemon_options *o);

/*
 * Reload (SIGHUP, the control request "reload"): re-read the config file
 * the daemon started with.  A config with errors, or one that changes a
 * [global] key only a restart can apply, changes nothing.  Otherwise
 * sessions are matched by name: added ones start, removed ones stop,
 * changed ones (any key differs) stop and start again, unchanged ones keep
 * their device, keys, endpoint and counters.  log and log_level apply live.
 * What happened is logged; when `answer` is not NULL it also gets it as
 * text for the control client (malloc'd, lines ending in "\n"; a refusal
 * starts with "error: ", followed by the config's diagnostics).
 * 0, -EINVAL (refused: nothing changed), -EIO (applied, but a session could
 * not start) or -ENOMEM (nothing changed).
 */
int daemon_reload(struct daemon *d, char **answer);
/* Pure halves of reload, for tests.  Same config for a session: every key
 * equal (its line in the file does not count). */
bool daemon_reload_session_same(const struct conf_session *a, const struct conf_session *b);
/* The first [global] key that differs and that only a restart can apply
 * ("private_key", "listen", "user", "group", "control"), or NULL. */
const char *daemon_reload_refused_key(const struct conf_global *a, const struct conf_global *b);

/* Receiver-index table.  `index` 0 picks a new random one; a given index
 * is kept when it is free (a keypair inherits its handshake's index, which
 * the peer already uses to address us). */
void daemon_index_add(struct daemon *d, struct index_entry *e, struct session *s,
		      struct keypair *kp, uint32_t index);
void daemon_index_del(struct daemon *d, struct index_entry *e);
struct index_entry *daemon_index_find(struct daemon *d, uint32_t index);

/* Route one received message (decrypting data in place).  Over TCP, `conn`
 * is its connection, `sock` is -1 and `src` the connection's peer; NULL over
 * UDP.  False when it was refused as malformed, unauthenticated, not for
 * us or on the wrong connection: the TCP connection that carried it is then
 * closed.  (A data message for an unknown index on a bound connection is
 * dropped but not refused: it is a race with a new handshake.) */
bool daemon_consume(struct daemon *d, uint8_t *msg, size_t len, const struct sockaddr *src,
		    int sock, struct tcp_conn *conn);

/* Queue a message for `s`'s peer endpoint (copying it into the tx batch, or
 * over TCP into its connection's queue). */
void daemon_send(struct daemon *d, struct session *s, const uint8_t *msg, size_t len);
/* Send whatever the tx batch holds. */
void daemon_flush(struct daemon *d);
/* A tx slot to fill in place: returns its buffer (d->slot_size bytes) or
 * flushes first when the batch is full. */
uint8_t *daemon_tx_reserve(struct daemon *d, unsigned *slot);
void daemon_tx_commit(struct daemon *d, unsigned slot, struct session *s, size_t len);
/* Socket index to reach `addr` (a listening one of that family if any). */
int daemon_sock_for(struct daemon *d, const struct sockaddr *addr);

#endif
