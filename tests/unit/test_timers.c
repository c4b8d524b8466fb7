/*
 * Timers: events in, actions out, at WireGuard's values (scale 1) and
 * scaled down for tests.
 */
#include <criterion/criterion.h>

#include "timers.h"

static struct timer_config cfg;
static struct timers t;

static void setup(void)
{
	timer_config_init(&cfg, 1, 0);
	timers_init(&t, &cfg);
}

TestSuite(timers, .init = setup);

Test(timers, wireguard_values)
{
	cr_assert_eq(cfg.rekey_after_ms, 120000);
	cr_assert_eq(cfg.reject_after_ms, 180000);
	cr_assert_eq(cfg.rekey_attempt_ms, 90000);
	cr_assert_eq(cfg.rekey_timeout_ms, 5000);
	cr_assert_eq(cfg.keepalive_ms, 10000);
	cr_assert_eq(cfg.persistent_keepalive_ms, 0);
}

Test(timers, scaled)
{
	struct timer_config c;
	timer_config_init(&c, 20, 25);
	cr_assert_eq(c.rekey_after_ms, 6000);
	cr_assert_eq(c.rekey_timeout_ms, 250);
	cr_assert_eq(c.persistent_keepalive_ms, 1250);
}

Test(timers, nothing_due_when_idle)
{
	cr_assert_eq(timers_poll(&t, 1000000, false), 0);
	cr_assert_eq(timers_next_deadline(&t), UINT64_MAX);
}

Test(timers, retransmit_every_rekey_timeout_then_give_up)
{
	uint64_t now = 1000;
	unsigned sent = 1, gave_up = 0;

	timers_handshake_initiated(&t, now, 100);
	cr_assert_eq(timers_poll(&t, now + 5099, false), 0);
	for (now = 1000; now < 1000 + 100000; now += 100) {
		unsigned due = timers_poll(&t, now, true);
		if (due & TIMER_SEND_INITIATION) {
			sent++;
			timers_handshake_initiated(&t, now, 100);
		}
		if (due & TIMER_GIVE_UP)
			gave_up++;
	}
	/* 90 s of attempts every 5.1 s: the first plus 17 retries, then one give-up. */
	cr_assert_eq(sent, 18, "sent %u", sent);
	cr_assert_eq(gave_up, 1);
	cr_assert_eq(t.handshake_attempts_start, 0);
}

Test(timers, handshake_complete_stops_retries)
{
	timers_handshake_initiated(&t, 1000, 0);
	timers_handshake_complete(&t, 2000);
	cr_assert_eq(timers_poll(&t, 100000, false) & (TIMER_SEND_INITIATION | TIMER_GIVE_UP), 0);
}

Test(timers, passive_keepalive_after_receiving_data)
{
	timers_data_received(&t, 1000);
	cr_assert_eq(timers_poll(&t, 10999, false), 0);
	cr_assert_eq(timers_poll(&t, 11000, false), TIMER_SEND_KEEPALIVE);
	cr_assert_eq(timers_poll(&t, 11001, false), 0, "fires once");
}

Test(timers, no_keepalive_when_we_sent_something)
{
	timers_data_received(&t, 1000);
	timers_any_sent(&t, 5000);
	cr_assert_eq(timers_poll(&t, 20000, false), 0);
}

Test(timers, new_handshake_after_sending_without_reply)
{
	timers_data_sent(&t, 1000);
	timers_data_sent(&t, 9000); /* does not push the deadline */
	cr_assert_eq(timers_poll(&t, 15999, false), 0);
	cr_assert_eq(timers_poll(&t, 16000, false), TIMER_SEND_INITIATION);
}

Test(timers, reply_cancels_new_handshake)
{
	timers_data_sent(&t, 1000);
	timers_any_received(&t, 3000);
	cr_assert_eq(timers_poll(&t, 20000, false), 0);
}

Test(timers, persistent_keepalive)
{
	struct timer_config c;
	struct timers p;
	timer_config_init(&c, 1, 25);
	timers_init(&p, &c);
	timers_any_sent(&p, 1000);
	cr_assert_eq(timers_poll(&p, 25999, false), 0);
	cr_assert_eq(timers_poll(&p, 26000, false) & TIMER_SEND_KEEPALIVE, TIMER_SEND_KEEPALIVE);
	timers_any_sent(&p, 26000);
	cr_assert_eq(timers_poll(&p, 50999, false), 0);
}

Test(timers, keys_expire_then_zero)
{
	timers_keys_created(&t, 1000);
	cr_assert_eq(timers_poll(&t, 180999, false), 0);
	cr_assert_eq(timers_poll(&t, 181000, false), TIMER_EXPIRE_KEYS);
	cr_assert_eq(timers_poll(&t, 200000, false), 0, "expiry reported once");
	cr_assert_eq(timers_poll(&t, 541000, false), TIMER_ZERO_KEYS);
	cr_assert_eq(timers_poll(&t, 600000, false), 0);
}

Test(timers, new_keys_postpone_zeroing)
{
	timers_keys_created(&t, 1000);
	timers_keys_created(&t, 400000);
	cr_assert_eq(timers_poll(&t, 541000, false), 0, "the old keys' deadlines are gone");
	cr_assert_eq(timers_poll(&t, 580000, false), TIMER_EXPIRE_KEYS);
	cr_assert_eq(timers_poll(&t, 939999, false), 0);
	cr_assert_eq(timers_poll(&t, 940000, false), TIMER_ZERO_KEYS);
}

Test(timers, next_deadline_is_earliest)
{
	timers_data_received(&t, 1000);  /* keepalive at 11000 */
	timers_data_sent(&t, 2000);      /* new handshake at 17000 */
	cr_assert_eq(timers_next_deadline(&t), 11000);
}
