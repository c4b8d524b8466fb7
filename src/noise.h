/*
 * Noise_IKpsk2_25519_ChaChaPoly_SHA256 (Noise spec rev. 34), built only from
 * libsodium primitives.  Pure: no sockets, no clocks, no libuv; bytes in,
 * bytes and keys out, so the published vectors drive it directly.
 *
 *   IKpsk2:
 *     <- s
 *     ...
 *     -> e, es, s, ss
 *     <- e, ee, se, psk
 *
 * The plain IK pattern (no psk) is also supported so that the IK test
 * vectors exercise the same code.
 */
#ifndef SALTUN_NOISE_H
#define SALTUN_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compat.h"

#define NOISE_KEY_LEN 32
#define NOISE_HASH_LEN 32
#define NOISE_TAG_LEN 16
#define NOISE_PUBLIC_LEN 32
/* Message 1 is e (32) || encrypted s (32 + 16) || encrypted payload. */
#define NOISE_MSG1_OVERHEAD (NOISE_PUBLIC_LEN + NOISE_PUBLIC_LEN + NOISE_TAG_LEN + NOISE_TAG_LEN)
/* Message 2 is e (32) || encrypted payload. */
#define NOISE_MSG2_OVERHEAD (NOISE_PUBLIC_LEN + NOISE_TAG_LEN)

enum noise_role { NOISE_INITIATOR = 1, NOISE_RESPONDER = 2 };

enum noise_hs_state {
	NOISE_HS_EMPTY = 0,
	NOISE_HS_INITIATION_SENT,     /* initiator wrote message 1 */
	NOISE_HS_INITIATION_CONSUMED, /* responder read message 1 */
	NOISE_HS_DONE                 /* message 2 written/read: split() may run */
};

/* One handshake in flight.  Holds secrets: noise_handshake_clear() wipes. */
struct noise_handshake {
	enum noise_hs_state state;
	enum noise_role role;
	bool psk2;
	uint8_t h[NOISE_HASH_LEN];
	uint8_t ck[NOISE_HASH_LEN];
	uint8_t s_priv[NOISE_KEY_LEN];      /* local static */
	uint8_t s_pub[NOISE_PUBLIC_LEN];
	uint8_t e_priv[NOISE_KEY_LEN];      /* local ephemeral */
	uint8_t e_pub[NOISE_PUBLIC_LEN];
	uint8_t rs[NOISE_PUBLIC_LEN];       /* remote static (known before, or learned from msg 1) */
	uint8_t re[NOISE_PUBLIC_LEN];       /* remote ephemeral */
	uint8_t psk[NOISE_KEY_LEN];
	bool fixed_ephemeral;               /* tests: e_priv given, not generated */
	/* The CipherState (spec 5.1): k is usable once has_key; n counts its
	 * uses and restarts at 0 on every MixKey(). */
	bool has_key;
	uint8_t k[NOISE_KEY_LEN];
	uint64_t n;
	/* Initiator: DH(s, rs), computed (and rs checked) when the handshake
	 * starts, or supplied by noise_handshake_init_precomputed(). */
	uint8_t ss[NOISE_KEY_LEN];
};

/* Transport keys after Split(): initiator sends with k1, responder with k2. */
struct noise_keys {
	uint8_t send[NOISE_KEY_LEN];
	uint8_t recv[NOISE_KEY_LEN];
};

/*
 * Start a handshake.  `rs` is the responder's static public key (initiator
 * only; NULL for a responder).  `psk` NULL means all zeros (psk2) and is
 * ignored when !psk2.  Returns 0, or -EINVAL when a key is low-order (or
 * the role/rs combination is wrong).
 *
 * Every function below that fails wipes the whole handshake (state back to
 * NOISE_HS_EMPTY, no role), and a low-order key is refused before any byte
 * of the caller's output buffer is written.  Calls out of order or for the
 * wrong role return -EINVAL.
 */
int noise_handshake_init(struct noise_handshake *hs, enum noise_role role, bool psk2,
			 const uint8_t *prologue, size_t prologue_len,
			 const uint8_t s_priv[NOISE_KEY_LEN], const uint8_t *rs,
			 const uint8_t *psk) MUST_CHECK;
/*
 * noise_handshake_init() for a caller that keeps, across handshakes, what
 * never changes: its static public key `s_pub` (= X25519 base * s_priv) and,
 * initiator only, `ss` = noise_dh(s_priv, rs) (NULL for a responder, or to
 * have it computed here).  X25519 dominates the cost of a handshake; this
 * saves one or two of the five to seven multiplications a side does.  The
 * values are trusted: wrong ones make the peer reject message 1.
 */
int noise_handshake_init_precomputed(struct noise_handshake *hs, enum noise_role role,
				     bool psk2, const uint8_t *prologue, size_t prologue_len,
				     const uint8_t s_priv[NOISE_KEY_LEN],
				     const uint8_t s_pub[NOISE_PUBLIC_LEN], const uint8_t *rs,
				     const uint8_t *ss, const uint8_t *psk) MUST_CHECK;
/* Tests only: use this ephemeral private key instead of a random one.
 * Call after init (which clears it), before the message that sends e. */
void noise_handshake_set_ephemeral(struct noise_handshake *hs, const uint8_t e_priv[NOISE_KEY_LEN]);

/* Initiator: write message 1 (out: NOISE_MSG1_OVERHEAD + payload_len).
 * Returns 0 or -errno (-EINVAL on a low-order key: nothing to send;
 * -EMSGSIZE for a payload beyond what the AEAD takes). */
int noise_write_msg1(struct noise_handshake *hs, uint8_t *out,
		     const uint8_t *payload, size_t payload_len) MUST_CHECK;
/* Responder: read message 1; the initiator's static key is then in hs->rs
 * and the caller decides whether it knows that peer (and sets hs->psk with
 * noise_handshake_set_psk() before writing message 2).  payload_out gets
 * len - NOISE_MSG1_OVERHEAD bytes (it may be msg + NOISE_MSG1_OVERHEAD -
 * NOISE_TAG_LEN: decrypt in place).  -EBADMSG on authentication failure,
 * -EINVAL on low-order keys or a short message; the handshake is then wiped. */
int noise_read_msg1(struct noise_handshake *hs, uint8_t *payload_out,
		    const uint8_t *msg, size_t len) MUST_CHECK;
/*
 * The responder's cache of ss = noise_dh(s_priv, rs), one per known peer:
 * given the initiator's static key (decrypted, not yet authenticated: use it
 * only to look up), the 32-byte ss for that peer, or NULL to compute it.
 * A peer the cache does not know (or a wrong value) still fails as with no
 * cache: the payload cannot be opened without the right ss.
 */
typedef const uint8_t *(*noise_ss_lookup_fn)(void *ctx, const uint8_t rs[NOISE_PUBLIC_LEN]);
/* noise_read_msg1() that takes ss from `lookup` (may be NULL) when it has
 * it: a responder holding its peers' ss saves one of its four X25519. */
int noise_read_msg1_cached(struct noise_handshake *hs, uint8_t *payload_out,
			   const uint8_t *msg, size_t len, noise_ss_lookup_fn lookup,
			   void *ctx) MUST_CHECK;
void noise_handshake_set_psk(struct noise_handshake *hs, const uint8_t *psk);
/* Responder: write message 2 (out: NOISE_MSG2_OVERHEAD + payload_len). */
int noise_write_msg2(struct noise_handshake *hs, uint8_t *out,
		     const uint8_t *payload, size_t payload_len) MUST_CHECK;
/* Initiator: read message 2 (payload_out: len - NOISE_MSG2_OVERHEAD bytes).
 * Same errors as noise_read_msg1(). */
int noise_read_msg2(struct noise_handshake *hs, uint8_t *payload_out,
		    const uint8_t *msg, size_t len) MUST_CHECK;
/* After message 2 (state DONE): derive transport keys for our role, then
 * wipe the handshake.  -EINVAL if not DONE. */
int noise_split(struct noise_handshake *hs, struct noise_keys *keys) MUST_CHECK;
/* Handshake hash h (for tests and channel binding). */
const uint8_t *noise_handshake_hash(const struct noise_handshake *hs);
void noise_handshake_clear(struct noise_handshake *hs);

/*
 * Transport AEAD: ChaCha20-Poly1305 IETF, nonce = 4 zero bytes || LE64(n).
 * In-place allowed (out == in).  noise_encrypt writes len + 16 bytes.
 * noise_decrypt returns 0 or -EBADMSG (output wiped on failure).
 */
void noise_encrypt(uint8_t *out, const uint8_t *in, size_t len, const uint8_t *ad,
		   size_t ad_len, uint64_t n, const uint8_t key[NOISE_KEY_LEN]);
int noise_decrypt(uint8_t *out, const uint8_t *in, size_t len, const uint8_t *ad,
		  size_t ad_len, uint64_t n, const uint8_t key[NOISE_KEY_LEN]) MUST_CHECK;

/* Low-order / all-zero shared secret check used by every DH. */
bool noise_dh(uint8_t out[NOISE_KEY_LEN], const uint8_t priv[NOISE_KEY_LEN],
	      const uint8_t pub[NOISE_PUBLIC_LEN]) MUST_CHECK;

#endif
