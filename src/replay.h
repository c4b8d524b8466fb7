/*
 * Sliding replay window for data-message counters (RFC 6479 style, as
 * WireGuard since 2020): 8192 bits of bitmap, of which 8128 are the usable
 * window (one 64-bit word is always being recycled).  Pure.
 *
 * Call only after the AEAD tag verified: an unauthenticated counter must
 * never move the window.
 */
#ifndef SALTUN_REPLAY_H
#define SALTUN_REPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include "compat.h"

#define REPLAY_BITS 8192
#define REPLAY_WINDOW (REPLAY_BITS - 64) /* 8128 */
/* No counter at or above this is ever accepted (a window below 2^64 so the
 * counter cannot wrap), as WireGuard's REJECT_AFTER_MESSAGES. */
#define REPLAY_REJECT_AFTER_MESSAGES (UINT64_MAX - REPLAY_BITS)

struct replay {
	uint64_t top;   /* greatest counter accepted + 1 (0: none yet) */
	uint64_t bitmap[REPLAY_BITS / 64];
};

void replay_init(struct replay *r);
/* True when `counter` is fresh (and records it); false for a replay, a
 * counter too old for the window, or >= REPLAY_REJECT_AFTER_MESSAGES. */
bool replay_check(struct replay *r, uint64_t counter) MUST_CHECK;

#endif
