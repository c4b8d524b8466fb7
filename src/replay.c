/*
 * Sliding replay window, RFC 6479 style (the shape WireGuard's counter.c has
 * used since 2020).  The bitmap is a ring of 64-bit words; bit n % REPLAY_BITS
 * records counter n.  Moving the window forward never shifts bits: it only
 * zeroes the words the new top skipped over, so a check costs O(1) plus a
 * clear bounded by the size of the ring.
 *
 * Window rule, with max = top - 1 the greatest counter accepted so far:
 * counter n is still judged (seen or not) when n + REPLAY_WINDOW >= max, so
 * max itself and the REPLAY_WINDOW counters below it.  Those REPLAY_WINDOW + 1
 * counters span exactly REPLAY_WORDS words (REPLAY_WINDOW is a multiple of
 * 64), so none of them shares a word with a counter REPLAY_BITS away: that
 * is why one word of the ring is never part of the usable window.
 */
#include "config.h"

#include <assert.h>
#include <string.h>

#include "replay.h"

enum {
	REPLAY_WORD_BITS = 64,
	REPLAY_WORDS = REPLAY_BITS / REPLAY_WORD_BITS,
};

static_assert((REPLAY_WORDS & (REPLAY_WORDS - 1)) == 0, "ring index is a mask");
static_assert(REPLAY_WINDOW % REPLAY_WORD_BITS == 0, "window ends on a word boundary");
/* The window arithmetic (n + REPLAY_WINDOW) must not wrap for any n we judge. */
static_assert(REPLAY_REJECT_AFTER_MESSAGES <= UINT64_MAX - REPLAY_WINDOW, "no wrap");

void replay_init(struct replay *r)
{
	memset(r, 0, sizeof(*r));
}

/* Zero the words after the one holding `max` up to the one holding `n`
 * (n > max), so that stale bits from a lap around the ring read as unseen. */
static void replay_clear_words(struct replay *r, uint64_t max, uint64_t n)
{
	uint64_t from = max / REPLAY_WORD_BITS;
	uint64_t skipped = n / REPLAY_WORD_BITS - from;

	if (skipped > REPLAY_WORDS)
		skipped = REPLAY_WORDS;
	for (uint64_t i = 1; i <= skipped; i++)
		r->bitmap[(from + i) & (REPLAY_WORDS - 1)] = 0;
}

bool replay_check(struct replay *r, uint64_t counter)
{
	uint64_t bit, *word;

	/* The sender never reaches this; a counter this high is forged or
	 * corrupt, and accepting it would let the window approach the wrap. */
	if (counter >= REPLAY_REJECT_AFTER_MESSAGES)
		return false;

	if (r->top > 0 && counter + REPLAY_WINDOW < r->top - 1)
		return false; /* too old: its bit may already be recycled */

	if (counter >= r->top) {
		/* A fresh bitmap is all zero: nothing to clear on the first call. */
		if (r->top > 0)
			replay_clear_words(r, r->top - 1, counter);
		r->top = counter + 1;
	}

	word = &r->bitmap[(counter / REPLAY_WORD_BITS) & (REPLAY_WORDS - 1)];
	bit = UINT64_C(1) << (counter % REPLAY_WORD_BITS);
	if (*word & bit)
		return false;
	*word |= bit;
	return true;
}
