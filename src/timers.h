/*
 * Session timers as an API of events (WireGuard's timers.c): the session
 * reports what happened, and timers_poll() says what is due.  Pure: times
 * are monotonic milliseconds passed in; nothing here arms an OS timer.
 * The daemon polls every session on a coarse tick (and right after events).
 *
 * Every timer (values of WireGuard, divided by `scale` for tests):
 *   REKEY_AFTER_TIME      120 s  initiator starts a new handshake when sending on a key this old
 *   REJECT_AFTER_TIME     180 s  a key this old is never used again
 *   REKEY_ATTEMPT_TIME     90 s  give up a series of handshake attempts (drop staged packets)
 *   REKEY_TIMEOUT           5 s  retry an unanswered initiation (+ up to 1/3 s jitter)
 *   KEEPALIVE_TIMEOUT      10 s  send a keepalive after receiving data and sending nothing
 *   new handshake          15 s  (KEEPALIVE + REKEY_TIMEOUT) after sending data and receiving nothing
 *   zero keys             540 s  (3 * REJECT_AFTER_TIME) with no new handshake: wipe all keys
 *   persistent keepalive   from config (NAT), every N s of sending nothing
 */
#ifndef SALTUN_TIMERS_H
#define SALTUN_TIMERS_H

#include <stdbool.h>
#include <stdint.h>

#define REKEY_AFTER_MESSAGES (UINT64_C(1) << 60)

struct timer_config {
	uint64_t rekey_after_ms;        /* 120000 */
	uint64_t reject_after_ms;       /* 180000 */
	uint64_t rekey_attempt_ms;      /*  90000 */
	uint64_t rekey_timeout_ms;      /*   5000 */
	uint64_t rekey_jitter_ms;       /*    333 */
	uint64_t keepalive_ms;          /*  10000 */
	uint64_t persistent_keepalive_ms; /* 0 = off */
};

/* WireGuard's values divided by `scale` (1 = real time; tests use more). */
void timer_config_init(struct timer_config *tc, unsigned scale, unsigned persistent_keepalive_s);

enum timer_action {
	TIMER_SEND_INITIATION = 1 << 0, /* start or retry a handshake */
	TIMER_SEND_KEEPALIVE = 1 << 1,
	TIMER_GIVE_UP = 1 << 2,         /* handshake attempts exhausted: drop staged packets */
	TIMER_ZERO_KEYS = 1 << 3,       /* wipe every key and handshake state */
	TIMER_EXPIRE_KEYS = 1 << 4,     /* current keys older than reject_after: unusable */
};

struct timers {
	const struct timer_config *cfg;
	/* times of events; 0 = never */
	uint64_t last_data_sent;
	uint64_t last_data_received;
	uint64_t last_any_sent;            /* any packet to the peer, keepalives included */
	uint64_t last_any_received;        /* any authenticated packet */
	uint64_t last_initiation_sent;
	uint64_t last_handshake_complete;
	uint64_t handshake_attempts_start; /* first initiation of the current series */
	uint64_t keys_birth;               /* current keys made */
	/* deadlines; 0 = not armed */
	uint64_t next_retransmit;
	uint64_t new_handshake_deadline;
	uint64_t keepalive_deadline;
	uint64_t zero_deadline;
	bool keys_expired_reported;
};

void timers_init(struct timers *t, const struct timer_config *cfg);

/* Events. */
void timers_data_sent(struct timers *t, uint64_t now);
void timers_any_sent(struct timers *t, uint64_t now);      /* keepalive or data */
void timers_data_received(struct timers *t, uint64_t now);
void timers_any_received(struct timers *t, uint64_t now);  /* authenticated, keepalive or data */
/* An initiation went out; `jitter_ms` in [0, rekey_jitter_ms] chosen by the caller. */
void timers_handshake_initiated(struct timers *t, uint64_t now, uint64_t jitter_ms);
void timers_handshake_complete(struct timers *t, uint64_t now);
/* New keys installed (either role). */
void timers_keys_created(struct timers *t, uint64_t now);

/* What is due at `now` (a mask of enum timer_action); disarms what it
 * reports.  `have_staged` says packets wait for a handshake. */
unsigned timers_poll(struct timers *t, uint64_t now, bool have_staged);

/* Earliest armed deadline (UINT64_MAX when none): when to poll next. */
uint64_t timers_next_deadline(const struct timers *t);

#endif
