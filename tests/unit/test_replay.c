/*
 * Replay window: the known cases of WireGuard's counter self-test, restated
 * as a table (same meanings, our names), plus a differential test against a
 * naive reference (a set of every counter ever accepted + the window rule).
 */
#include "config.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "replay.h"

#define W ((uint64_t)REPLAY_WINDOW)      /* 8128 */
#define LIM (W + 1)                       /* first counter that pushes 0 out */
#define R REPLAY_REJECT_AFTER_MESSAGES

Test(replay, constants)
{
	cr_assert_eq(REPLAY_BITS, 8192);
	cr_assert_eq(REPLAY_WINDOW, 8128);
	cr_assert_eq(R, UINT64_MAX - 8192);
	cr_assert_eq(sizeof(((struct replay *)0)->bitmap) * 8, REPLAY_BITS);
}

/*
 * A scenario is a fresh window fed runs of counters in order.  A run goes
 * from `first` to `last` inclusive, upwards or downwards, and every counter in
 * it must give `want`.  A single check is a run with first == last.
 */
struct replay_run {
	uint64_t first, last;
	bool want;
};

struct replay_scenario {
	const char *name;
	const struct replay_run *runs;
	size_t n_runs;
};

/* The 34 numbered single checks of the self-test, on one window. */
static const struct replay_run replay_known[] = {
	/*  1 */ { 0, 0, true },                       /* first counter */
	/*  2 */ { 1, 1, true },
	/*  3 */ { 1, 1, false },                      /* duplicate */
	/*  4 */ { 9, 9, true },                       /* gap forward */
	/*  5 */ { 8, 8, true },                       /* fill the gap backwards */
	/*  6 */ { 7, 7, true },
	/*  7 */ { 7, 7, false },                      /* duplicate inside the window */
	/*  8 */ { LIM, LIM, true },                   /* 0 now just out of the window */
	/*  9 */ { LIM - 1, LIM - 1, true },
	/* 10 */ { LIM - 1, LIM - 1, false },
	/* 11 */ { LIM - 2, LIM - 2, true },
	/* 12 */ { 2, 2, true },                       /* oldest still in the window */
	/* 13 */ { 2, 2, false },
	/* 14 */ { LIM + 16, LIM + 16, true },         /* slide by 16 */
	/* 15 */ { 3, 3, false },                      /* fell out of the window */
	/* 16 */ { LIM + 16, LIM + 16, false },
	/* 17 */ { LIM * 4, LIM * 4, true },           /* jump past the whole ring */
	/* 18 */ { LIM * 4 - (LIM - 1), LIM * 4 - (LIM - 1), true }, /* = max - W */
	/* 19 */ { 10, 10, false },                    /* far too old */
	/* 20 */ { LIM * 4 - LIM, LIM * 4 - LIM, false },             /* = max - W - 1 */
	/* 21 */ { LIM * 4 - (LIM + 1), LIM * 4 - (LIM + 1), false }, /* = max - W - 2 */
	/* 22 */ { LIM * 4 - (LIM - 2), LIM * 4 - (LIM - 2), true },  /* = max - W + 1 */
	/* 23 */ { LIM * 4 + 1 - LIM, LIM * 4 + 1 - LIM, false },     /* = max - W, seen */
	/* 24 */ { 0, 0, false },
	/* 25 */ { R, R, false },                      /* reject-after boundary */
	/* 26 */ { R - 1, R - 1, true },               /* greatest acceptable */
	/* 27 */ { R, R, false },
	/* 28 */ { R - 1, R - 1, false },
	/* 29 */ { R - 2, R - 2, true },
	/* 30 */ { R + 1, R + 1, false },
	/* 31 */ { R + 2, R + 2, false },
	/* 32 */ { R - 2, R - 2, false },
	/* 33 */ { R - 3, R - 3, true },
	/* 34 */ { 0, 0, false },
};
static_assert(sizeof(replay_known) / sizeof(replay_known[0]) == 34, "34 cases");

/* The six loops: a full window in order, shifted by one, reversed, ... */
static const struct replay_run replay_loop1[] = {
	{ 1, W, true }, { 0, 0, true }, { 0, 0, false },
};
static const struct replay_run replay_loop2[] = {
	{ 2, W + 1, true }, { 1, 1, true }, { 0, 0, false },
};
static const struct replay_run replay_loop3[] = {
	{ W, 0, true },
};
static const struct replay_run replay_loop4[] = {
	{ W + 1, 1, true }, { 0, 0, false },
};
static const struct replay_run replay_loop5[] = {
	{ W, 1, true }, { W + 1, 1 + W, true }, { 0, 0, false },
};
static const struct replay_run replay_loop6[] = {
	{ W, 1, true }, { 0, 0, true }, { W + 1, W + 1, true },
};

/* Ours: the ring's recycled words. */
static const struct replay_run replay_ring[] = {
	/* A jump of exactly one lap: counter 5 and 5 + 8192 share a bit. */
	{ 5, 5, true }, { 5 + REPLAY_BITS, 5 + REPLAY_BITS, true },
	{ 5 + REPLAY_BITS - 1, 5 + REPLAY_BITS - 1, true },
	{ 5 + REPLAY_BITS - W, 5 + REPLAY_BITS - W, true },
	{ 5 + REPLAY_BITS - W - 1, 5 + REPLAY_BITS - W - 1, false },
	{ 5, 5, false },
	/* Word by word across a lap: every bit must read unseen again. */
	{ 6 + REPLAY_BITS, 3 * REPLAY_BITS, true },
	{ 3 * REPLAY_BITS, 3 * REPLAY_BITS - W, false },
	/* A huge jump clears the whole ring, and only that. */
	{ UINT64_C(1) << 40, UINT64_C(1) << 40, true },
	{ (UINT64_C(1) << 40) - 1, (UINT64_C(1) << 40) - W, true },
	{ (UINT64_C(1) << 40) - W - 1, (UINT64_C(1) << 40) - W - 1, false },
};
static const struct replay_run replay_first_high[] = {
	/* The first counter may be anything below the limit. */
	{ R - 1, R - 1, true }, { R - 1 - W, R - 1 - W, true },
	{ R - 2 - W, R - 2 - W, false }, { R, R, false }, { UINT64_MAX, UINT64_MAX, false },
};
static const struct replay_run replay_limit_fresh[] = {
	/* Beyond the limit nothing is recorded: 0 is still fresh afterwards. */
	{ UINT64_MAX, UINT64_MAX, false }, { R, R, false }, { 0, 0, true },
};

#define SCENARIO(a) { #a, a, sizeof(a) / sizeof((a)[0]) }
static const struct replay_scenario replay_scenarios[] = {
	SCENARIO(replay_known),
	SCENARIO(replay_loop1),
	SCENARIO(replay_loop2),
	SCENARIO(replay_loop3),
	SCENARIO(replay_loop4),
	SCENARIO(replay_loop5),
	SCENARIO(replay_loop6),
	SCENARIO(replay_ring),
	SCENARIO(replay_first_high),
	SCENARIO(replay_limit_fresh),
};

Test(replay, scenarios)
{
	struct replay r;
	size_t checks = 0;

	for (size_t s = 0; s < sizeof(replay_scenarios) / sizeof(replay_scenarios[0]); s++) {
		const struct replay_scenario *sc = &replay_scenarios[s];

		replay_init(&r);
		for (size_t i = 0; i < sc->n_runs; i++) {
			const struct replay_run *run = &sc->runs[i];
			bool up = run->last >= run->first;
			uint64_t c = run->first;

			for (;;) {
				bool got = replay_check(&r, c);

				cr_assert_eq(got, run->want,
					     "%s run %zu: counter %" PRIu64 " gave %d, want %d",
					     sc->name, i + 1, c, got, run->want);
				checks++;
				if (c == run->last)
					break;
				c = up ? c + 1 : c - 1;
			}
		}
	}
	/* 34 + the six loops (8130, 8130, 8129, 8130, 8130, 8130) + ours. */
	cr_assert_geq(checks, 34 + 6 * 8129);
}

/* ------------------------------------------------------------------
 * Differential test against a naive reference.
 */

/* Open-addressing set of counters; slot value counter + 1, 0 = empty.
 * Counters it holds are < R, so + 1 never wraps. */
struct naive {
	uint64_t *slots;
	size_t mask;
	bool any;
	uint64_t max;
};

static uint64_t naive_hash(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return x;
}

/* Returns true when `c` was not in the set (and inserts it). */
static bool naive_insert(struct naive *n, uint64_t c)
{
	size_t i = naive_hash(c) & n->mask;

	while (n->slots[i] != 0) {
		if (n->slots[i] == c + 1)
			return false;
		i = (i + 1) & n->mask;
	}
	n->slots[i] = c + 1;
	return true;
}

/* The rule, stated plainly: below the limit, not older than the greatest
 * accepted counter minus the window, and never seen before. */
static bool naive_check(struct naive *n, uint64_t c)
{
	if (c >= R)
		return false;
	if (n->any && c < n->max && n->max - c > W)
		return false;
	if (!naive_insert(n, c))
		return false;
	if (!n->any || c > n->max)
		n->max = c;
	n->any = true;
	return true;
}

/* xorshift64*: fixed seed, same sequence on every machine. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
	return a < b ? 0 : a - b;
}

/* What the generator remembers: counters it already sent, to replay. */
struct gen {
	uint64_t seed;
	uint64_t base;          /* around where to start */
	uint64_t far;           /* bound of the rare far jumps */
	uint64_t history[1024];
	size_t n_history;
};

/* A counter near the reference's max, chosen to hit every edge often. */
static uint64_t next_counter(const struct naive *n, struct gen *g)
{
	uint64_t r = rng_next(&g->seed), m = n->any ? n->max : g->base;
	unsigned kind = (unsigned)(r % 1000);
	uint64_t arg = r >> 10, c;

	if (kind < 300)
		c = sat_add(m, 1 + arg % 3);                    /* in order, small gaps */
	else if (kind < 450)
		c = sat_sub(m, arg % (W + 200));                /* late, around the edge */
	else if (kind < 530)
		c = sat_sub(m, W + (arg % 3));                  /* exactly at the edge */
	else if (kind < 750 && g->n_history > 0)            /* replays, recent or old */
		c = g->history[arg % (g->n_history < ARRAY_SIZE(g->history) ?
				      g->n_history : ARRAY_SIZE(g->history))];
	else if (kind < 900)
		c = sat_add(m, arg % (3 * REPLAY_BITS));        /* jumps, laps of the ring */
	else if (kind < 920)
		c = sat_add(m, REPLAY_BITS - 64 + arg % 128);   /* one lap, give or take */
	else if (kind < 925)
		c = sat_add(m, arg % g->far);                   /* far ahead */
	else
		c = sat_add(m, arg % 16);                       /* near max, incl. itself */
	g->history[g->n_history++ % ARRAY_SIZE(g->history)] = c;
	return c;
}

static void replay_differential(struct gen *g, size_t ops, size_t *accepted, size_t *rejected,
				uint64_t *max)
{
	struct naive n = { .mask = (UINT64_C(1) << 21) - 1 };
	struct replay r;

	cr_assert_lt(ops, (size_t)n.mask / 2, "set must stay sparse");
	n.slots = calloc(n.mask + 1, sizeof(*n.slots));
	cr_assert_not_null(n.slots);
	replay_init(&r);

	for (size_t i = 0; i < ops; i++) {
		uint64_t c = next_counter(&n, g);
		bool want = naive_check(&n, c);
		bool got = replay_check(&r, c);

		cr_assert_eq(got, want, "op %zu: counter %" PRIu64 " (max %" PRIu64
			     ") gave %d, reference %d", i, c, n.max, got, want);
		if (got)
			(*accepted)++;
		else
			(*rejected)++;
	}
	*max = n.max;
	free(n.slots);
}

Test(replay, reference_from_zero)
{
	size_t acc = 0, rej = 0;
	uint64_t max;

	struct gen g = { .seed = UINT64_C(0x5a17a11e5eed0001), .base = 0,
			 .far = UINT64_C(1) << 40 };

	replay_differential(&g, 500000, &acc, &rej, &max);
	cr_log_info("from 0: %zu accepted, %zu rejected", acc, rej);
	/* Both outcomes must be frequent, or the test proves nothing. */
	cr_assert_gt(acc, 100000);
	cr_assert_gt(rej, 100000);
}

Test(replay, reference_across_reject_limit)
{
	size_t acc = 0, rej = 0;
	uint64_t max;

	/* Starts far enough below the limit to walk some way, then runs into
	 * it: every later forward counter must be refused by both. */
	struct gen g = { .seed = UINT64_C(0x0ddba11c0ffee002), .base = R - UINT64_C(500000000),
			 .far = UINT64_C(1) << 16 };

	replay_differential(&g, 500000, &acc, &rej, &max);
	cr_assert_geq(max, R - 64, "the walk reached the limit (max %" PRIu64 ")", max);
	cr_log_info("near limit: %zu accepted, %zu rejected", acc, rej);
	cr_assert_gt(acc, 50000);
	cr_assert_gt(rej, 100000);
}
