/*
 * Every wire layout and constant of the saltun protocol (DESIGN §3), in one
 * place.  All integers little-endian; every message starts with a 4-byte
 * header: type, 0, 0, 0.  Pure: parsing and building, mac1/mac2, cookies.
 *
 * Not compatible with WireGuard (different hash, prologue, payload), though
 * built to the same structure.
 */
#ifndef SALTUN_WIRE_H
#define SALTUN_WIRE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "noise.h"

/* Noise prologue: domain separation from every other protocol. */
#define WIRE_PROLOGUE "saltun v1"
#define WIRE_PROTOCOL_VERSION 1

enum wire_type {
	WIRE_INVALID = 0,        /* wire_classify: drop it */
	WIRE_INITIATION = 1,
	WIRE_RESPONSE = 2,
	WIRE_COOKIE_REPLY = 3,
	WIRE_DATA = 4,
};

enum wire_sizes {
	WIRE_MAC_LEN = 16,
	WIRE_COOKIE_LEN = 16,
	WIRE_COOKIE_NONCE_LEN = 24,    /* XChaCha20-Poly1305 */
	WIRE_TAI64N_LEN = 12,
	/* Initiation payload: TAI64N || version || type || mtu (LE16) */
	WIRE_INIT_PAYLOAD_LEN = WIRE_TAI64N_LEN + 4,
	WIRE_DATA_HEADER_LEN = 16,     /* type(4) receiver(4) counter(8) */
	WIRE_PADDING = 16,             /* plaintext padded to a multiple of this */
	WIRE_MAX_PACKET = 65535,       /* largest inner packet/frame */
};

/* Session parameters that both ends must agree on; a mismatch refuses the
 * handshake on the responder with a line naming the parameter. */
struct wire_params {
	uint8_t version;
	uint8_t type;   /* enum conf_devtype: 0 tun, 1 tap */
	uint16_t mtu;
};

struct wire_macs {
	uint8_t mac1[WIRE_MAC_LEN];
	uint8_t mac2[WIRE_MAC_LEN];
};

struct wire_initiation {
	uint8_t header[4];
	uint8_t sender[4];
	uint8_t noise[NOISE_MSG1_OVERHEAD + WIRE_INIT_PAYLOAD_LEN]; /* e, s, payload */
	struct wire_macs macs;
};

struct wire_response {
	uint8_t header[4];
	uint8_t sender[4];
	uint8_t receiver[4];
	uint8_t noise[NOISE_MSG2_OVERHEAD]; /* e, empty payload */
	struct wire_macs macs;
};

struct wire_cookie_reply {
	uint8_t header[4];
	uint8_t receiver[4];
	uint8_t nonce[WIRE_COOKIE_NONCE_LEN];
	uint8_t cookie[WIRE_COOKIE_LEN + NOISE_TAG_LEN];
};

struct wire_data_header {
	uint8_t header[4];
	uint8_t receiver[4];
	uint8_t counter[8];
	/* ciphertext (padded plaintext) || 16-byte tag follow */
};

enum wire_message_sizes {
	WIRE_INITIATION_LEN = 4 + 4 + NOISE_MSG1_OVERHEAD + WIRE_INIT_PAYLOAD_LEN + 2 * WIRE_MAC_LEN,
	WIRE_RESPONSE_LEN = 4 + 4 + 4 + NOISE_MSG2_OVERHEAD + 2 * WIRE_MAC_LEN,
	WIRE_COOKIE_REPLY_LEN = 4 + 4 + WIRE_COOKIE_NONCE_LEN + WIRE_COOKIE_LEN + NOISE_TAG_LEN,
	WIRE_DATA_MIN_LEN = WIRE_DATA_HEADER_LEN + NOISE_TAG_LEN, /* keepalive */
	/* largest message: data carrying a WIRE_MAX_PACKET packet */
	WIRE_MAX_MESSAGE = WIRE_DATA_HEADER_LEN + WIRE_MAX_PACKET + NOISE_TAG_LEN,
};

static_assert(sizeof(struct wire_initiation) == WIRE_INITIATION_LEN, "initiation layout");
static_assert(WIRE_INITIATION_LEN == 152, "initiation is 152 bytes");
static_assert(sizeof(struct wire_response) == WIRE_RESPONSE_LEN, "response layout");
static_assert(WIRE_RESPONSE_LEN == 92, "response is 92 bytes");
static_assert(sizeof(struct wire_cookie_reply) == WIRE_COOKIE_REPLY_LEN, "cookie layout");
static_assert(WIRE_COOKIE_REPLY_LEN == 64, "cookie reply is 64 bytes");
static_assert(sizeof(struct wire_data_header) == WIRE_DATA_HEADER_LEN, "data header layout");

/* Little-endian helpers. */
static inline void wire_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t wire_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void wire_put_le64(uint8_t *p, uint64_t v)
{
	wire_put_le32(p, (uint32_t)v); wire_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t wire_get_le64(const uint8_t *p)
{
	return (uint64_t)wire_get_le32(p) | (uint64_t)wire_get_le32(p + 4) << 32;
}

/*
 * Classify a received datagram/frame: returns its type when the header is
 * well-formed (type 1..4, reserved bytes zero) and the length fits the type,
 * or WIRE_INVALID (0) when it must be dropped.  Handshake messages must have
 * their exact length (WIRE_INITIATION_LEN, WIRE_RESPONSE_LEN,
 * WIRE_COOKIE_REPLY_LEN); data needs WIRE_DATA_MIN_LEN <= len <=
 * WIRE_MAX_MESSAGE but not a multiple of WIRE_PADDING, because padding is
 * capped at the MTU.
 */
enum wire_type wire_classify(const uint8_t *msg, size_t len);

void wire_header_set(uint8_t header[4], enum wire_type type);

/* Session parameters in the initiation payload. */
void wire_params_encode(uint8_t out[4], const struct wire_params *p);
void wire_params_decode(struct wire_params *p, const uint8_t in[4]);

/* TAI64N of a wall-clock time (sec, nsec): 8-byte BE (2^62 + sec), 4-byte BE nsec. */
void wire_tai64n(uint8_t out[WIRE_TAI64N_LEN], uint64_t sec, uint32_t nsec);
/* Strictly greater, bytewise (TAI64N sorts as big-endian). */
bool wire_tai64n_after(const uint8_t a[WIRE_TAI64N_LEN], const uint8_t b[WIRE_TAI64N_LEN]);

/*
 * mac1 / mac2.  mac1 key = SHA-256("mac1----" || responder static public),
 * mac1 = BLAKE2b-128(key, msg up to mac1); mac2 = BLAKE2b-128(cookie, msg up
 * to mac2), or zeros when we hold no fresh cookie.  `msg` is the whole
 * message; the macs sit at its end (last 32 bytes).
 */
void wire_mac1_key(uint8_t key[32], const uint8_t remote_static_pub[32]);
void wire_cookie_key(uint8_t key[32], const uint8_t remote_static_pub[32]);
/* Precondition for wire_macs_add: len >= 2 * WIRE_MAC_LEN (asserted; a
 * shorter message is left untouched).  The predicates return false for a
 * shorter message.  Comparisons are constant-time. */
void wire_macs_add(uint8_t *msg, size_t len, const uint8_t mac1_key[32],
		   const uint8_t *cookie /* NULL = no cookie */);
bool wire_mac1_valid(const uint8_t *msg, size_t len, const uint8_t mac1_key[32]) MUST_CHECK;
bool wire_mac2_valid(const uint8_t *msg, size_t len, const uint8_t cookie[WIRE_COOKIE_LEN]) MUST_CHECK;

/*
 * Cookies (responder under load).  The responder keeps a random secret that
 * is replaced once it is older than WIRE_COOKIE_SECRET_MAX_AGE_MS (or the
 * clock went backwards); the cookie for a source is
 * BLAKE2b-128(key = secret, source address bytes || port).
 */
#define WIRE_COOKIE_SECRET_MAX_AGE_MS 120000
struct wire_cookie_checker {
	uint8_t secret[32];
	uint64_t secret_birth_ms;
	uint8_t mac1_key[32];     /* our own mac1 key */
	uint8_t cookie_key[32];   /* our own cookie-encryption key */
};
/* Random secret, and our own mac1/cookie keys derived from our_public.
 * libsodium must be initialised. */
void wire_cookie_checker_init(struct wire_cookie_checker *cc, const uint8_t our_public[32]);
/* Wipe the secret and keys. */
void wire_cookie_checker_clear(struct wire_cookie_checker *cc);
/* Compute the cookie for `src` (opaque address bytes) at time now_ms. */
void wire_cookie_make(struct wire_cookie_checker *cc, uint8_t cookie[WIRE_COOKIE_LEN],
		      const uint8_t *src, size_t src_len, uint64_t now_ms);
/* Build a cookie reply to `msg` (an initiation or response whose sender
 * index is `receiver`), for source `src`: random nonce, the cookie encrypted
 * under our cookie key with msg's mac1 as associated data.  Precondition:
 * len >= 2 * WIRE_MAC_LEN (else the reply is all zeros). */
void wire_cookie_reply_create(struct wire_cookie_checker *cc, struct wire_cookie_reply *out,
			      uint32_t receiver, const uint8_t *msg, size_t len,
			      const uint8_t *src, size_t src_len, uint64_t now_ms);
/* Initiator side: decrypt a cookie reply using the peer's cookie key and the
 * mac1 we last sent.  0, or -EBADMSG (cookie wiped). */
int wire_cookie_reply_consume(uint8_t cookie[WIRE_COOKIE_LEN], const struct wire_cookie_reply *r,
			      const uint8_t cookie_key[32], const uint8_t last_mac1[WIRE_MAC_LEN]) MUST_CHECK;

/* Padded plaintext length for a packet of `len` bytes: rounded up to 16,
 * but not above `cap` (the MTU, plus 14 for a tap frame); a packet already
 * longer than `cap` is returned unpadded, never truncated. */
static inline size_t wire_padded_len(size_t len, size_t cap)
{
	size_t p = (len + WIRE_PADDING - 1) & ~(size_t)(WIRE_PADDING - 1);
	if (p > cap)
		p = cap > len ? cap : len;
	return p;
}

#endif
