/*
 * Wire helpers: message classification, the fixed little encodings
 * (parameters, TAI64N), mac1/mac2 and the cookie mechanism that lets a
 * responder under load demand a round trip before it spends a DH.
 *
 * Pure and allocation-free: every buffer is the caller's.  Anything that
 * came from the network is compared in constant time (sodium_memcmp), and
 * libsodium's -1 becomes -EBADMSG here, at the boundary.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "wire.h"

static_assert(crypto_generichash_BYTES_MIN <= WIRE_MAC_LEN, "BLAKE2b-128 is allowed");
static_assert(crypto_hash_sha256_BYTES == 32, "mac1/cookie keys are SHA-256");
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == WIRE_COOKIE_NONCE_LEN,
	      "cookie nonce is an XChaCha20 nonce");
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == NOISE_TAG_LEN, "cookie tag");
static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == 32, "cookie key");
static_assert(WIRE_MAX_MESSAGE == 65567, "largest data message");

/* Labels of the two keys derived from a static public key (8 bytes each, as
 * WireGuard's, so the hashed input is one 40-byte block for SHA-256). */
#define WIRE_LABEL_MAC1 "mac1----"
#define WIRE_LABEL_COOKIE "cookie--"
#define WIRE_LABEL_LEN 8

/* TAI64 labels second s of TAI as 2^62 + s. */
#define WIRE_TAI64_BASE (UINT64_C(1) << 62)

enum wire_type wire_classify(const uint8_t *msg, size_t len)
{
	if (len < 4 || msg[1] != 0 || msg[2] != 0 || msg[3] != 0)
		return WIRE_INVALID;

	switch (msg[0]) {
	case WIRE_INITIATION:
		return len == WIRE_INITIATION_LEN ? WIRE_INITIATION : WIRE_INVALID;
	case WIRE_RESPONSE:
		return len == WIRE_RESPONSE_LEN ? WIRE_RESPONSE : WIRE_INVALID;
	case WIRE_COOKIE_REPLY:
		return len == WIRE_COOKIE_REPLY_LEN ? WIRE_COOKIE_REPLY : WIRE_INVALID;
	case WIRE_DATA:
		/* Any length in range: padding is capped at the MTU, so the
		 * ciphertext is not necessarily a multiple of WIRE_PADDING. */
		if (len < WIRE_DATA_MIN_LEN || len > WIRE_MAX_MESSAGE)
			return WIRE_INVALID;
		return WIRE_DATA;
	default:
		return WIRE_INVALID;
	}
}

void wire_header_set(uint8_t header[4], enum wire_type type)
{
	header[0] = (uint8_t)type;
	header[1] = 0;
	header[2] = 0;
	header[3] = 0;
}

void wire_params_encode(uint8_t out[4], const struct wire_params *p)
{
	out[0] = p->version;
	out[1] = p->type;
	out[2] = (uint8_t)p->mtu;
	out[3] = (uint8_t)(p->mtu >> 8);
}

void wire_params_decode(struct wire_params *p, const uint8_t in[4])
{
	p->version = in[0];
	p->type = in[1];
	p->mtu = (uint16_t)(in[2] | in[3] << 8);
}

void wire_tai64n(uint8_t out[WIRE_TAI64N_LEN], uint64_t sec, uint32_t nsec)
{
	uint64_t label = WIRE_TAI64_BASE + sec;

	/* Big-endian, unlike the rest of the wire: TAI64N is defined so that
	 * bytewise comparison orders time, which wire_tai64n_after relies on. */
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(label >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

bool wire_tai64n_after(const uint8_t a[WIRE_TAI64N_LEN], const uint8_t b[WIRE_TAI64N_LEN])
{
	/* Timestamps are sent encrypted and authenticated and are not secret
	 * to the receiver, so an ordinary memcmp is fine. */
	return memcmp(a, b, WIRE_TAI64N_LEN) > 0;
}

static void wire_key_derive(uint8_t key[32], const char label[WIRE_LABEL_LEN],
			    const uint8_t pub[32])
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)label, WIRE_LABEL_LEN);
	crypto_hash_sha256_update(&st, pub, 32);
	crypto_hash_sha256_final(&st, key);
	sodium_memzero(&st, sizeof(st));
}

void wire_mac1_key(uint8_t key[32], const uint8_t remote_static_pub[32])
{
	wire_key_derive(key, WIRE_LABEL_MAC1, remote_static_pub);
}

void wire_cookie_key(uint8_t key[32], const uint8_t remote_static_pub[32])
{
	wire_key_derive(key, WIRE_LABEL_COOKIE, remote_static_pub);
}

/* Both macs are BLAKE2b-128; they differ only in key and in how much of the
 * message they cover: mac1 everything before it, mac2 everything before it
 * (mac1 included, so a cookie is bound to a message that already passed
 * mac1). */
static void wire_mac_compute(uint8_t mac[WIRE_MAC_LEN], const uint8_t *msg, size_t covered,
			     const uint8_t *key, size_t key_len)
{
	crypto_generichash(mac, WIRE_MAC_LEN, msg, covered, key, key_len);
}

void wire_macs_add(uint8_t *msg, size_t len, const uint8_t mac1_key[32], const uint8_t *cookie)
{
	uint8_t *mac1, *mac2;

	assert(len >= 2 * WIRE_MAC_LEN);
	if (len < 2 * WIRE_MAC_LEN)
		return;
	mac1 = msg + len - 2 * WIRE_MAC_LEN;
	mac2 = msg + len - WIRE_MAC_LEN;

	wire_mac_compute(mac1, msg, len - 2 * WIRE_MAC_LEN, mac1_key, 32);
	/* Without a fresh cookie mac2 is zeros: the responder then knows we
	 * hold none, and under load answers with a cookie reply. */
	if (cookie)
		wire_mac_compute(mac2, msg, len - WIRE_MAC_LEN, cookie, WIRE_COOKIE_LEN);
	else
		memset(mac2, 0, WIRE_MAC_LEN);
}

bool wire_mac1_valid(const uint8_t *msg, size_t len, const uint8_t mac1_key[32])
{
	uint8_t mac[WIRE_MAC_LEN];
	bool ok;

	if (len < 2 * WIRE_MAC_LEN)
		return false;
	wire_mac_compute(mac, msg, len - 2 * WIRE_MAC_LEN, mac1_key, 32);
	ok = sodium_memcmp(mac, msg + len - 2 * WIRE_MAC_LEN, WIRE_MAC_LEN) == 0;
	sodium_memzero(mac, sizeof(mac));
	return ok;
}

bool wire_mac2_valid(const uint8_t *msg, size_t len, const uint8_t cookie[WIRE_COOKIE_LEN])
{
	uint8_t mac[WIRE_MAC_LEN];
	bool ok;

	if (len < 2 * WIRE_MAC_LEN)
		return false;
	wire_mac_compute(mac, msg, len - WIRE_MAC_LEN, cookie, WIRE_COOKIE_LEN);
	ok = sodium_memcmp(mac, msg + len - WIRE_MAC_LEN, WIRE_MAC_LEN) == 0;
	sodium_memzero(mac, sizeof(mac));
	return ok;
}

void wire_cookie_checker_init(struct wire_cookie_checker *cc, const uint8_t our_public[32])
{
	randombytes_buf(cc->secret, sizeof(cc->secret));
	/* Birth 0: the first wire_cookie_make at a real clock reading (more
	 * than the max age past 0) replaces this secret, so no secret outlives
	 * its age even though init does not know the time. */
	cc->secret_birth_ms = 0;
	wire_mac1_key(cc->mac1_key, our_public);
	wire_cookie_key(cc->cookie_key, our_public);
}

void wire_cookie_checker_clear(struct wire_cookie_checker *cc)
{
	sodium_memzero(cc, sizeof(*cc));
}

void wire_cookie_make(struct wire_cookie_checker *cc, uint8_t cookie[WIRE_COOKIE_LEN],
		      const uint8_t *src, size_t src_len, uint64_t now_ms)
{
	/* A clock that went backwards also rotates: an unknown age is treated
	 * as too old, never as young. */
	if (now_ms < cc->secret_birth_ms ||
	    now_ms - cc->secret_birth_ms > WIRE_COOKIE_SECRET_MAX_AGE_MS) {
		randombytes_buf(cc->secret, sizeof(cc->secret));
		cc->secret_birth_ms = now_ms;
	}
	crypto_generichash(cookie, WIRE_COOKIE_LEN, src, src_len, cc->secret, sizeof(cc->secret));
}

void wire_cookie_reply_create(struct wire_cookie_checker *cc, struct wire_cookie_reply *out,
			      uint32_t receiver, const uint8_t *msg, size_t len,
			      const uint8_t *src, size_t src_len, uint64_t now_ms)
{
	uint8_t cookie[WIRE_COOKIE_LEN];
	const uint8_t *mac1;

	/* Precondition: msg was classified as an initiation or a response and
	 * passed mac1.  A caller bug yields an all-zero reply (type 0), which
	 * no peer accepts, rather than an out-of-bounds read. */
	assert(len >= 2 * WIRE_MAC_LEN);
	if (len < 2 * WIRE_MAC_LEN) {
		sodium_memzero(out, sizeof(*out));
		return;
	}
	mac1 = msg + len - 2 * WIRE_MAC_LEN;

	wire_header_set(out->header, WIRE_COOKIE_REPLY);
	wire_put_le32(out->receiver, receiver);
	randombytes_buf(out->nonce, sizeof(out->nonce));
	wire_cookie_make(cc, cookie, src, src_len, now_ms);
	/* AD = the mac1 being answered: the reply is useful only to whoever
	 * sent that exact message, and cannot be replayed against another. */
	crypto_aead_xchacha20poly1305_ietf_encrypt(out->cookie, NULL, cookie, sizeof(cookie),
						   mac1, WIRE_MAC_LEN, NULL, out->nonce,
						   cc->cookie_key);
	sodium_memzero(cookie, sizeof(cookie));
}

int wire_cookie_reply_consume(uint8_t cookie[WIRE_COOKIE_LEN], const struct wire_cookie_reply *r,
			      const uint8_t cookie_key[32], const uint8_t last_mac1[WIRE_MAC_LEN])
{
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, NULL, NULL, r->cookie,
						       sizeof(r->cookie), last_mac1, WIRE_MAC_LEN,
						       r->nonce, cookie_key) != 0) {
		sodium_memzero(cookie, WIRE_COOKIE_LEN);
		return -EBADMSG;
	}
	return 0;
}
