/*
 * Session timers as events in, actions out.  See the table in timers.h.
 * Deadlines are absolute monotonic milliseconds; 0 means "not armed".
 */
#include "config.h"

#include <string.h>

#include "timers.h"

void timer_config_init(struct timer_config *tc, unsigned scale, unsigned persistent_keepalive_s)
{
	if (scale == 0)
		scale = 1;
	tc->rekey_after_ms = 120000 / scale;
	tc->reject_after_ms = 180000 / scale;
	tc->rekey_attempt_ms = 90000 / scale;
	tc->rekey_timeout_ms = 5000 / scale;
	tc->rekey_jitter_ms = 333 / scale;
	tc->keepalive_ms = 10000 / scale;
	tc->persistent_keepalive_ms = (uint64_t)persistent_keepalive_s * 1000 / scale;
}

void timers_init(struct timers *t, const struct timer_config *cfg)
{
	memset(t, 0, sizeof(*t));
	t->cfg = cfg;
}

void timers_data_sent(struct timers *t, uint64_t now)
{
	t->last_data_sent = now;
	/* Sent data and heard nothing back for keepalive + rekey_timeout: the
	 * peer may have lost our keys, so start a new handshake. */
	if (t->new_handshake_deadline == 0)
		t->new_handshake_deadline = now + t->cfg->keepalive_ms + t->cfg->rekey_timeout_ms;
}

void timers_any_sent(struct timers *t, uint64_t now)
{
	t->last_any_sent = now;
	/* Anything we send carries the acknowledgement a keepalive would. */
	t->keepalive_deadline = 0;
}

void timers_data_received(struct timers *t, uint64_t now)
{
	t->last_data_received = now;
	if (t->keepalive_deadline == 0)
		t->keepalive_deadline = now + t->cfg->keepalive_ms;
}

void timers_any_received(struct timers *t, uint64_t now)
{
	t->last_any_received = now;
	t->new_handshake_deadline = 0;
}

void timers_handshake_initiated(struct timers *t, uint64_t now, uint64_t jitter_ms)
{
	if (t->handshake_attempts_start == 0)
		t->handshake_attempts_start = now;
	t->last_initiation_sent = now;
	t->next_retransmit = now + t->cfg->rekey_timeout_ms + jitter_ms;
}

void timers_handshake_complete(struct timers *t, uint64_t now)
{
	t->handshake_attempts_start = 0;
	t->next_retransmit = 0;
	t->last_handshake_complete = now;
}

void timers_keys_created(struct timers *t, uint64_t now)
{
	t->keys_birth = now;
	t->keys_expired_reported = false;
	t->zero_deadline = now + 3 * t->cfg->reject_after_ms;
}

unsigned timers_poll(struct timers *t, uint64_t now, bool have_staged)
{
	unsigned due = 0;
	const struct timer_config *c = t->cfg;

	if (t->next_retransmit != 0 && now >= t->next_retransmit) {
		t->next_retransmit = 0;
		if (now - t->handshake_attempts_start >= c->rekey_attempt_ms) {
			/* Give up this series; a new packet to send starts another. */
			t->handshake_attempts_start = 0;
			t->new_handshake_deadline = 0;
			due |= TIMER_GIVE_UP;
		} else {
			due |= TIMER_SEND_INITIATION;
		}
	}
	if (t->new_handshake_deadline != 0 && now >= t->new_handshake_deadline) {
		t->new_handshake_deadline = 0;
		if (t->handshake_attempts_start == 0)
			due |= TIMER_SEND_INITIATION;
	}
	if (t->keepalive_deadline != 0 && now >= t->keepalive_deadline) {
		t->keepalive_deadline = 0;
		due |= TIMER_SEND_KEEPALIVE;
	}
	if (c->persistent_keepalive_ms != 0 && now >= t->last_any_sent + c->persistent_keepalive_ms)
		due |= TIMER_SEND_KEEPALIVE;
	if (t->keys_birth != 0 && !t->keys_expired_reported && now >= t->keys_birth + c->reject_after_ms) {
		t->keys_expired_reported = true;
		due |= TIMER_EXPIRE_KEYS;
	}
	if (t->zero_deadline != 0 && now >= t->zero_deadline) {
		t->zero_deadline = 0;
		t->keys_birth = 0;
		due |= TIMER_ZERO_KEYS;
	}
	(void)have_staged;
	return due;
}

uint64_t timers_next_deadline(const struct timers *t)
{
	uint64_t next = UINT64_MAX;
	const uint64_t cand[] = {
		t->next_retransmit, t->new_handshake_deadline, t->keepalive_deadline,
		t->cfg->persistent_keepalive_ms ? t->last_any_sent + t->cfg->persistent_keepalive_ms : 0,
		t->keys_birth && !t->keys_expired_reported ? t->keys_birth + t->cfg->reject_after_ms : 0,
		t->zero_deadline,
	};
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] != 0 && cand[i] < next)
			next = cand[i];
	return next;
}
