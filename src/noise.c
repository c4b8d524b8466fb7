/*
 * Noise_IKpsk2_25519_ChaChaPoly_SHA256 (Noise spec rev. 34) from libsodium
 * 1.0.18 primitives only.  Section numbers below are the spec's.
 *
 *   IKpsk2:                          IK (vectors only):
 *     <- s                             <- s
 *     ...                              ...
 *     -> e, es, s, ss                  -> e, es, s, ss
 *     <- e, ee, se, psk                <- e, ee, se
 *
 * The psk2 modifier (9.2) changes two things: every `e` token is followed by
 * MixKey(e.public), and the `psk` token at the end of message 2 is
 * MixKeyAndHash(psk).  The protocol name differs, so initial h differs too.
 *
 * Every X25519 of a message runs before the first byte of output is
 * written, so a low-order key leaves the caller's buffer untouched; every
 * failure wipes the whole handshake (state back to NOISE_HS_EMPTY); every
 * temporary secret is wiped before return.  Nothing is allocated.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "noise.h"

static const char noise_protocol_ikpsk2[] = "Noise_IKpsk2_25519_ChaChaPoly_SHA256";
static const char noise_protocol_ik[] = "Noise_IK_25519_ChaChaPoly_SHA256";

_Static_assert(NOISE_HASH_LEN == crypto_hash_sha256_BYTES, "HASHLEN is SHA-256's");
_Static_assert(NOISE_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "cipher key");
_Static_assert(NOISE_TAG_LEN == crypto_aead_chacha20poly1305_ietf_ABYTES, "cipher tag");
_Static_assert(NOISE_PUBLIC_LEN == crypto_scalarmult_curve25519_BYTES, "DHLEN");
_Static_assert(NOISE_KEY_LEN == crypto_scalarmult_curve25519_SCALARBYTES, "X25519 scalar");
_Static_assert(NOISE_HASH_LEN == crypto_auth_hmacsha256_BYTES, "HMAC output");

/* 12.3: the 96-bit ChaChaPoly nonce is 32 zero bits || little-endian n. */
static void noise_make_nonce(uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES],
			     uint64_t n)
{
	memset(nonce, 0, 4);
	for (size_t i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

void noise_encrypt(uint8_t *out, const uint8_t *in, size_t len, const uint8_t *ad,
		   size_t ad_len, uint64_t n, const uint8_t key[NOISE_KEY_LEN])
{
	uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

	noise_make_nonce(nonce, n);
	/* Cannot fail for len below MESSAGEBYTES_MAX (256 GiB), a precondition. */
	crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, ad_len, NULL, nonce,
						  key);
}

int noise_decrypt(uint8_t *out, const uint8_t *in, size_t len, const uint8_t *ad,
		  size_t ad_len, uint64_t n, const uint8_t key[NOISE_KEY_LEN])
{
	uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

	if (len < NOISE_TAG_LEN)
		return -EBADMSG;
	noise_make_nonce(nonce, n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad, ad_len,
						      nonce, key) != 0) {
		/* libsodium 1.0.18 already clears it; the contract must not
		 * depend on that. */
		sodium_memzero(out, len - NOISE_TAG_LEN);
		return -EBADMSG;
	}
	return 0;
}

bool noise_dh(uint8_t out[NOISE_KEY_LEN], const uint8_t priv[NOISE_KEY_LEN],
	      const uint8_t pub[NOISE_PUBLIC_LEN])
{
	/* -1 for the low-order points libsodium lists and for any all-zero
	 * result: a peer must not be able to force a known shared secret. */
	if (crypto_scalarmult_curve25519(out, priv, pub) != 0) {
		sodium_memzero(out, NOISE_KEY_LEN);
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- HASH, HKDF */

/* MixHash (5.2): h = HASH(h || data). */
static void noise_mix_hash(uint8_t h[NOISE_HASH_LEN], const uint8_t *data, size_t len)
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, h, NOISE_HASH_LEN);
	crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, h);
	/* Its buffer may still hold a psk-derived temp_h. */
	sodium_memzero(&st, sizeof st);
}

/* HMAC-SHA256(key, data) (4.3) with a 32-byte key. */
static void noise_hmac(uint8_t out[NOISE_HASH_LEN], const uint8_t key[NOISE_HASH_LEN],
		       const uint8_t *data, size_t len)
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, NOISE_HASH_LEN);
	crypto_auth_hmacsha256_update(&st, data, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

/* One HKDF output: HMAC(temp_key, prev || i), from a state already keyed
 * with temp_key (so the two key-pad blocks are hashed once, not per output). */
static void noise_hkdf_output(uint8_t out[NOISE_HASH_LEN],
			      const crypto_auth_hmacsha256_state *keyed, const uint8_t *prev,
			      uint8_t i)
{
	crypto_auth_hmacsha256_state st = *keyed;

	if (prev)
		crypto_auth_hmacsha256_update(&st, prev, NOISE_HASH_LEN);
	crypto_auth_hmacsha256_update(&st, &i, 1);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

/*
 * HKDF(chaining_key, ikm, 2 or 3) (4.3).  out1..out3 may alias ck: ck is
 * read only for temp_key, before any output is written.  out3 NULL = the
 * two-output form.
 */
static void noise_hkdf(uint8_t out1[NOISE_HASH_LEN], uint8_t out2[NOISE_HASH_LEN],
		       uint8_t *out3, const uint8_t ck[NOISE_HASH_LEN], const uint8_t *ikm,
		       size_t ikm_len)
{
	crypto_auth_hmacsha256_state keyed;
	uint8_t temp_key[NOISE_HASH_LEN];
	uint8_t t1[NOISE_HASH_LEN], t2[NOISE_HASH_LEN];

	noise_hmac(temp_key, ck, ikm, ikm_len);
	crypto_auth_hmacsha256_init(&keyed, temp_key, sizeof temp_key);
	noise_hkdf_output(t1, &keyed, NULL, 0x01);
	noise_hkdf_output(t2, &keyed, t1, 0x02);
	if (out3)
		noise_hkdf_output(out3, &keyed, t2, 0x03);
	memcpy(out1, t1, NOISE_HASH_LEN);
	memcpy(out2, t2, NOISE_HASH_LEN);
	sodium_memzero(&keyed, sizeof keyed);
	sodium_memzero(temp_key, sizeof temp_key);
	sodium_memzero(t1, sizeof t1);
	sodium_memzero(t2, sizeof t2);
}

/* ---------------------------------------------------------------- SymmetricState (5.2) */

/* MixKey: ck, temp_k = HKDF(ck, ikm, 2); InitializeKey(temp_k). */
static void noise_mix_key(struct noise_handshake *hs, const uint8_t *ikm, size_t ikm_len)
{
	noise_hkdf(hs->ck, hs->k, NULL, hs->ck, ikm, ikm_len);
	hs->has_key = true;
	hs->n = 0;
}

/* MixKeyAndHash: ck, temp_h, temp_k = HKDF(ck, ikm, 3); MixHash(temp_h);
 * InitializeKey(temp_k). */
static void noise_mix_key_and_hash(struct noise_handshake *hs, const uint8_t *ikm,
				   size_t ikm_len)
{
	uint8_t temp_h[NOISE_HASH_LEN];

	noise_hkdf(hs->ck, temp_h, hs->k, hs->ck, ikm, ikm_len);
	noise_mix_hash(hs->h, temp_h, sizeof temp_h);
	hs->has_key = true;
	hs->n = 0;
	sodium_memzero(temp_h, sizeof temp_h);
}

/*
 * EncryptAndHash: out gets len (+ 16 once a key is set) bytes; out == in
 * allowed.  n cannot reach the reserved 2^64 - 1 (5.1): in IK every key
 * encrypts once before the next MixKey() replaces it.
 */
static size_t noise_encrypt_and_hash(struct noise_handshake *hs, uint8_t *out,
				     const uint8_t *in, size_t len)
{
	size_t out_len = len;

	if (hs->has_key) {
		noise_encrypt(out, in, len, hs->h, NOISE_HASH_LEN, hs->n, hs->k);
		hs->n++;
		out_len += NOISE_TAG_LEN;
	} else if (len) {
		memmove(out, in, len);
	}
	noise_mix_hash(hs->h, out, out_len);
	return out_len;
}

/*
 * DecryptAndHash: out gets len (- 16 once a key is set) bytes; out == in
 * allowed, so the new h is hashed from the ciphertext before it may be
 * overwritten, and kept apart until the tag verified (the old h is the AD).
 */
static int noise_decrypt_and_hash(struct noise_handshake *hs, uint8_t *out, const uint8_t *in,
				  size_t len)
{
	uint8_t next_h[NOISE_HASH_LEN];

	if (hs->has_key && len < NOISE_TAG_LEN)
		return -EBADMSG;
	memcpy(next_h, hs->h, sizeof next_h);
	noise_mix_hash(next_h, in, len);
	if (hs->has_key) {
		if (noise_decrypt(out, in, len, hs->h, NOISE_HASH_LEN, hs->n, hs->k) != 0)
			return -EBADMSG;
		hs->n++;
	} else if (len) {
		memmove(out, in, len);
	}
	memcpy(hs->h, next_h, sizeof next_h);
	return 0;
}

/* ---------------------------------------------------------------- HandshakeState (5.3) */

void noise_handshake_clear(struct noise_handshake *hs)
{
	/* All zeros is NOISE_HS_EMPTY with no role: every step refuses it. */
	sodium_memzero(hs, sizeof *hs);
}

static int noise_handshake_start(struct noise_handshake *hs, enum noise_role role, bool psk2,
				 const uint8_t *prologue, size_t prologue_len,
				 const uint8_t s_priv[NOISE_KEY_LEN], const uint8_t *s_pub,
				 const uint8_t *rs, const uint8_t *ss, const uint8_t *psk)
{
	const char *name = psk2 ? noise_protocol_ikpsk2 : noise_protocol_ik;
	size_t name_len = strlen(name);

	noise_handshake_clear(hs);
	if (role != NOISE_INITIATOR && role != NOISE_RESPONDER)
		goto fail;
	/* IK: the initiator knows the responder's static key beforehand,
	 * the responder learns the initiator's from message 1. */
	if ((role == NOISE_INITIATOR) != (rs != NULL))
		goto fail;
	if (role == NOISE_RESPONDER && ss)
		goto fail;
	if (prologue_len && !prologue)
		goto fail;

	hs->role = role;
	hs->psk2 = psk2;
	memcpy(hs->s_priv, s_priv, NOISE_KEY_LEN);
	if (s_pub)
		memcpy(hs->s_pub, s_pub, NOISE_PUBLIC_LEN);
	else if (crypto_scalarmult_curve25519_base(hs->s_pub, s_priv) != 0)
		goto fail;
	if (psk2 && psk)
		memcpy(hs->psk, psk, NOISE_KEY_LEN);

	/* InitializeSymmetric (5.2): a name of at most HASHLEN bytes is
	 * zero-padded (IK's is exactly 32), a longer one hashed (IKpsk2's). */
	if (name_len <= NOISE_HASH_LEN)
		memcpy(hs->h, name, name_len);
	else
		crypto_hash_sha256(hs->h, (const uint8_t *)name, name_len);
	memcpy(hs->ck, hs->h, NOISE_HASH_LEN);
	noise_mix_hash(hs->h, prologue, prologue_len);

	/* Pre-message `<- s`: the responder's static key. */
	if (role == NOISE_INITIATOR) {
		memcpy(hs->rs, rs, NOISE_PUBLIC_LEN);
		noise_mix_hash(hs->h, hs->rs, NOISE_PUBLIC_LEN);
		/* ss needs no ephemeral: computing it here checks rs
		 * (low-order: refuse before anything is sent) and leaves
		 * message 1 one X25519 shorter. */
		if (ss)
			memcpy(hs->ss, ss, NOISE_KEY_LEN);
		else if (!noise_dh(hs->ss, hs->s_priv, hs->rs))
			goto fail;
	} else {
		noise_mix_hash(hs->h, hs->s_pub, NOISE_PUBLIC_LEN);
	}
	hs->state = NOISE_HS_EMPTY;
	return 0;

fail:
	noise_handshake_clear(hs);
	return -EINVAL;
}

int noise_handshake_init(struct noise_handshake *hs, enum noise_role role, bool psk2,
			 const uint8_t *prologue, size_t prologue_len,
			 const uint8_t s_priv[NOISE_KEY_LEN], const uint8_t *rs,
			 const uint8_t *psk)
{
	return noise_handshake_start(hs, role, psk2, prologue, prologue_len, s_priv, NULL, rs,
				     NULL, psk);
}

int noise_handshake_init_precomputed(struct noise_handshake *hs, enum noise_role role,
				     bool psk2, const uint8_t *prologue, size_t prologue_len,
				     const uint8_t s_priv[NOISE_KEY_LEN],
				     const uint8_t s_pub[NOISE_PUBLIC_LEN], const uint8_t *rs,
				     const uint8_t *ss, const uint8_t *psk)
{
	if (!s_pub) {
		noise_handshake_clear(hs);
		return -EINVAL;
	}
	return noise_handshake_start(hs, role, psk2, prologue, prologue_len, s_priv, s_pub, rs,
				     ss, psk);
}

void noise_handshake_set_ephemeral(struct noise_handshake *hs, const uint8_t e_priv[NOISE_KEY_LEN])
{
	memcpy(hs->e_priv, e_priv, NOISE_KEY_LEN);
	hs->fixed_ephemeral = true;
}

void noise_handshake_set_psk(struct noise_handshake *hs, const uint8_t *psk)
{
	if (psk)
		memcpy(hs->psk, psk, NOISE_KEY_LEN);
	else
		sodium_memzero(hs->psk, NOISE_KEY_LEN);
}

const uint8_t *noise_handshake_hash(const struct noise_handshake *hs)
{
	return hs->h;
}

/* Token `e` for the sender: a new key pair (or the test's fixed one). */
static int noise_make_ephemeral(struct noise_handshake *hs)
{
	if (!hs->fixed_ephemeral)
		randombytes_buf(hs->e_priv, NOISE_KEY_LEN);
	return crypto_scalarmult_curve25519_base(hs->e_pub, hs->e_priv) == 0 ? 0 : -EINVAL;
}

/* Token `e` after the key is on the wire or read from it: MixHash, and
 * with psk2 also MixKey (9.2), which keys the cipher from e on. */
static void noise_mix_ephemeral(struct noise_handshake *hs, const uint8_t e[NOISE_PUBLIC_LEN])
{
	noise_mix_hash(hs->h, e, NOISE_PUBLIC_LEN);
	if (hs->psk2)
		noise_mix_key(hs, e, NOISE_PUBLIC_LEN);
}

static bool noise_payload_len_ok(size_t len, size_t overhead)
{
	return len <= crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX &&
	       len <= SIZE_MAX - overhead;
}

int noise_write_msg1(struct noise_handshake *hs, uint8_t *out, const uint8_t *payload,
		     size_t payload_len)
{
	uint8_t es[NOISE_KEY_LEN];
	int ret = -EINVAL;

	if (hs->role != NOISE_INITIATOR || hs->state != NOISE_HS_EMPTY)
		goto fail;
	if (!noise_payload_len_ok(payload_len, NOISE_MSG1_OVERHEAD) ||
	    (payload_len && !payload)) {
		ret = -EMSGSIZE;
		goto fail;
	}
	ret = noise_make_ephemeral(hs);
	if (ret)
		goto fail;
	/* Both DHs (ss came from init) before the first byte is written. */
	if (!noise_dh(es, hs->e_priv, hs->rs)) {
		ret = -EINVAL;
		goto fail;
	}

	/* e */
	memcpy(out, hs->e_pub, NOISE_PUBLIC_LEN);
	noise_mix_ephemeral(hs, hs->e_pub);
	/* es */
	noise_mix_key(hs, es, sizeof es);
	/* s */
	noise_encrypt_and_hash(hs, out + NOISE_PUBLIC_LEN, hs->s_pub, NOISE_PUBLIC_LEN);
	/* ss */
	noise_mix_key(hs, hs->ss, NOISE_KEY_LEN);
	/* payload */
	noise_encrypt_and_hash(hs, out + NOISE_MSG1_OVERHEAD - NOISE_TAG_LEN, payload,
			       payload_len);

	hs->state = NOISE_HS_INITIATION_SENT;
	sodium_memzero(es, sizeof es);
	return 0;

fail:
	sodium_memzero(es, sizeof es);
	noise_handshake_clear(hs);
	return ret;
}

int noise_read_msg1(struct noise_handshake *hs, uint8_t *payload_out, const uint8_t *msg,
		    size_t len)
{
	return noise_read_msg1_cached(hs, payload_out, msg, len, NULL, NULL);
}

int noise_read_msg1_cached(struct noise_handshake *hs, uint8_t *payload_out, const uint8_t *msg,
			   size_t len, noise_ss_lookup_fn lookup, void *ctx)
{
	uint8_t es[NOISE_KEY_LEN], ss[NOISE_KEY_LEN];
	const uint8_t *cached;
	int ret = -EINVAL;

	if (hs->role != NOISE_RESPONDER || hs->state != NOISE_HS_EMPTY)
		goto fail;
	if (len < NOISE_MSG1_OVERHEAD)
		goto fail;

	/* e */
	memcpy(hs->re, msg, NOISE_PUBLIC_LEN);
	/* es: checked first, it is the cheapest way to drop a low-order e. */
	if (!noise_dh(es, hs->s_priv, hs->re))
		goto fail;
	noise_mix_ephemeral(hs, hs->re);
	noise_mix_key(hs, es, sizeof es);
	/* s */
	ret = noise_decrypt_and_hash(hs, hs->rs, msg + NOISE_PUBLIC_LEN,
				     NOISE_PUBLIC_LEN + NOISE_TAG_LEN);
	if (ret)
		goto fail;
	/* ss: an authentic but low-order static key still fails here, before
	 * anything reaches payload_out (a cache holds only usable keys' ss). */
	cached = lookup != NULL ? lookup(ctx, hs->rs) : NULL;
	if (cached != NULL) {
		memcpy(ss, cached, NOISE_KEY_LEN);
	} else if (!noise_dh(ss, hs->s_priv, hs->rs)) {
		ret = -EINVAL;
		goto fail;
	}
	noise_mix_key(hs, ss, sizeof ss);
	/* payload */
	ret = noise_decrypt_and_hash(hs, payload_out, msg + NOISE_MSG1_OVERHEAD - NOISE_TAG_LEN,
				     len - (NOISE_MSG1_OVERHEAD - NOISE_TAG_LEN));
	if (ret)
		goto fail;

	hs->state = NOISE_HS_INITIATION_CONSUMED;
	sodium_memzero(es, sizeof es);
	sodium_memzero(ss, sizeof ss);
	return 0;

fail:
	sodium_memzero(es, sizeof es);
	sodium_memzero(ss, sizeof ss);
	noise_handshake_clear(hs);
	return ret;
}

int noise_write_msg2(struct noise_handshake *hs, uint8_t *out, const uint8_t *payload,
		     size_t payload_len)
{
	uint8_t ee[NOISE_KEY_LEN], se[NOISE_KEY_LEN];
	int ret = -EINVAL;

	if (hs->role != NOISE_RESPONDER || hs->state != NOISE_HS_INITIATION_CONSUMED)
		goto fail;
	if (!noise_payload_len_ok(payload_len, NOISE_MSG2_OVERHEAD) ||
	    (payload_len && !payload)) {
		ret = -EMSGSIZE;
		goto fail;
	}
	ret = noise_make_ephemeral(hs);
	if (ret)
		goto fail;
	/* re and rs already passed a DH in message 1, so these cannot fail
	 * in practice; checked all the same, before anything is written. */
	if (!noise_dh(ee, hs->e_priv, hs->re) || !noise_dh(se, hs->e_priv, hs->rs)) {
		ret = -EINVAL;
		goto fail;
	}

	/* e */
	memcpy(out, hs->e_pub, NOISE_PUBLIC_LEN);
	noise_mix_ephemeral(hs, hs->e_pub);
	/* ee */
	noise_mix_key(hs, ee, sizeof ee);
	/* se */
	noise_mix_key(hs, se, sizeof se);
	/* psk */
	if (hs->psk2)
		noise_mix_key_and_hash(hs, hs->psk, NOISE_KEY_LEN);
	/* payload */
	noise_encrypt_and_hash(hs, out + NOISE_PUBLIC_LEN, payload, payload_len);

	hs->state = NOISE_HS_DONE;
	sodium_memzero(ee, sizeof ee);
	sodium_memzero(se, sizeof se);
	return 0;

fail:
	sodium_memzero(ee, sizeof ee);
	sodium_memzero(se, sizeof se);
	noise_handshake_clear(hs);
	return ret;
}

int noise_read_msg2(struct noise_handshake *hs, uint8_t *payload_out, const uint8_t *msg,
		    size_t len)
{
	uint8_t ee[NOISE_KEY_LEN], se[NOISE_KEY_LEN];
	int ret = -EINVAL;

	if (hs->role != NOISE_INITIATOR || hs->state != NOISE_HS_INITIATION_SENT)
		goto fail;
	if (len < NOISE_MSG2_OVERHEAD)
		goto fail;

	/* e */
	memcpy(hs->re, msg, NOISE_PUBLIC_LEN);
	if (!noise_dh(ee, hs->e_priv, hs->re) || !noise_dh(se, hs->s_priv, hs->re))
		goto fail;
	noise_mix_ephemeral(hs, hs->re);
	/* ee */
	noise_mix_key(hs, ee, sizeof ee);
	/* se */
	noise_mix_key(hs, se, sizeof se);
	/* psk */
	if (hs->psk2)
		noise_mix_key_and_hash(hs, hs->psk, NOISE_KEY_LEN);
	/* payload */
	ret = noise_decrypt_and_hash(hs, payload_out, msg + NOISE_PUBLIC_LEN,
				     len - NOISE_PUBLIC_LEN);
	if (ret)
		goto fail;

	hs->state = NOISE_HS_DONE;
	sodium_memzero(ee, sizeof ee);
	sodium_memzero(se, sizeof se);
	return 0;

fail:
	sodium_memzero(ee, sizeof ee);
	sodium_memzero(se, sizeof se);
	noise_handshake_clear(hs);
	return ret;
}

int noise_split(struct noise_handshake *hs, struct noise_keys *keys)
{
	uint8_t k1[NOISE_KEY_LEN], k2[NOISE_KEY_LEN];

	if (hs->state != NOISE_HS_DONE) {
		noise_handshake_clear(hs);
		return -EINVAL;
	}
	/* Split (5.2): temp_k1, temp_k2 = HKDF(ck, zerolen, 2). */
	noise_hkdf(k1, k2, NULL, hs->ck, NULL, 0);
	if (hs->role == NOISE_INITIATOR) {
		memcpy(keys->send, k1, NOISE_KEY_LEN);
		memcpy(keys->recv, k2, NOISE_KEY_LEN);
	} else {
		memcpy(keys->send, k2, NOISE_KEY_LEN);
		memcpy(keys->recv, k1, NOISE_KEY_LEN);
	}
	sodium_memzero(k1, sizeof k1);
	sodium_memzero(k2, sizeof k2);
	noise_handshake_clear(hs);
	return 0;
}
