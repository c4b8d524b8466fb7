/*
 * Noise IKpsk2 / IK: the published vectors in both roles, the RFC 8439
 * AEAD example and our nonce layout, every low-order point libsodium
 * rejects in every place a peer can put one, tampering, misuse of the state
 * machine, and the vector loader itself.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <sodium.h>

#include "compat.h"
#include "noise.h"
#include "vectors.h"

#define VECTOR_DIR SALTUN_TEST_DATADIR "/vectors/"
#define PROLOGUE ((const uint8_t *)"saltun v1")
#define PROLOGUE_LEN 9

static void setup_sodium(void)
{
	cr_assert_geq(sodium_init(), 0, "sodium_init failed");
}

TestSuite(noise, .init = setup_sodium);
TestSuite(noise_vectors, .init = setup_sodium);
TestSuite(vectors);

/* ---------------------------------------------------------------- helpers */

static void hex_format(char *out, size_t out_len, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && 2 * i + 2 < out_len; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
	out[2 * i] = '\0';
}

/* memcmp with both sides printed in hex on a mismatch. */
static void assert_bytes(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
	char g[2 * 600 + 1], w[2 * 600 + 1];

	if (memcmp(got, want, len) == 0)
		return;
	hex_format(g, sizeof g, got, len);
	hex_format(w, sizeof w, want, len);
	cr_assert_fail("%s differs (%zu bytes):\n  got  %s\n  want %s", what, len, g, w);
}

static bool all_bytes(const uint8_t *p, size_t len, uint8_t value)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != value)
			return false;
	return true;
}

static bool hs_is_wiped(const struct noise_handshake *hs)
{
	return sodium_is_zero((const unsigned char *)hs, sizeof *hs);
}

static void public_from_private(uint8_t pub[32], const uint8_t priv[32])
{
	cr_assert_eq(crypto_scalarmult_curve25519_base(pub, priv), 0);
}

static void random_keypair(uint8_t priv[32], uint8_t pub[32])
{
	randombytes_buf(priv, 32);
	public_from_private(pub, priv);
}

static struct noise_vector *vector_load(const char *file, const char *name)
{
	struct noise_vector *v = malloc(sizeof *v);
	char path[512];
	int ret;

	cr_assert_not_null(v);
	snprintf(path, sizeof path, "%s%s", VECTOR_DIR, file);
	ret = vectors_load_noise(v, path, name);
	cr_assert_eq(ret, 0, "loading %s from %s: %s", name, path, strerror(-ret));
	return v;
}

/*
 * A handshake between two parties, run step by step by the tests below.
 * Keys are random unless a test overrides them before pair_start().
 */
struct pair {
	uint8_t i_priv[32], i_pub[32], r_priv[32], r_pub[32];
	uint8_t i_psk[32], r_psk[32];
	bool psk2;
	struct noise_handshake ini, res;
	uint8_t payload1[40], payload2[24];
	uint8_t msg1[NOISE_MSG1_OVERHEAD + 40], msg2[NOISE_MSG2_OVERHEAD + 24];
};

static void pair_random(struct pair *p)
{
	memset(p, 0, sizeof *p);
	random_keypair(p->i_priv, p->i_pub);
	random_keypair(p->r_priv, p->r_pub);
	randombytes_buf(p->i_psk, sizeof p->i_psk);
	memcpy(p->r_psk, p->i_psk, sizeof p->r_psk);
	randombytes_buf(p->payload1, sizeof p->payload1);
	randombytes_buf(p->payload2, sizeof p->payload2);
	p->psk2 = true;
}

static void pair_start(struct pair *p)
{
	cr_assert_eq(noise_handshake_init(&p->ini, NOISE_INITIATOR, p->psk2, PROLOGUE,
					  PROLOGUE_LEN, p->i_priv, p->r_pub, p->i_psk), 0);
	cr_assert_eq(noise_handshake_init(&p->res, NOISE_RESPONDER, p->psk2, PROLOGUE,
					  PROLOGUE_LEN, p->r_priv, NULL, NULL), 0);
}

static void pair_write1(struct pair *p)
{
	cr_assert_eq(noise_write_msg1(&p->ini, p->msg1, p->payload1, sizeof p->payload1), 0);
	cr_assert_eq(p->ini.state, NOISE_HS_INITIATION_SENT);
}

static void pair_read1(struct pair *p)
{
	uint8_t got[sizeof p->payload1];

	cr_assert_eq(noise_read_msg1(&p->res, got, p->msg1, sizeof p->msg1), 0);
	cr_assert_eq(p->res.state, NOISE_HS_INITIATION_CONSUMED);
	assert_bytes(got, p->payload1, sizeof got, "payload 1");
	assert_bytes(p->res.rs, p->i_pub, 32, "initiator static learned by the responder");
	noise_handshake_set_psk(&p->res, p->r_psk);
}

static void pair_write2(struct pair *p)
{
	cr_assert_eq(noise_write_msg2(&p->res, p->msg2, p->payload2, sizeof p->payload2), 0);
	cr_assert_eq(p->res.state, NOISE_HS_DONE);
}

static void pair_read2(struct pair *p)
{
	uint8_t got[sizeof p->payload2];

	cr_assert_eq(noise_read_msg2(&p->ini, got, p->msg2, sizeof p->msg2), 0);
	cr_assert_eq(p->ini.state, NOISE_HS_DONE);
	assert_bytes(got, p->payload2, sizeof got, "payload 2");
}

/* ---------------------------------------------------------------- published vectors */

/* Arrays, not pointers: Criterion copies parameters into the test's own
 * process, where a pointer into this one need not be valid. */
struct vector_case {
	char file[48];
	char name[48];
	bool psk2;
};

static struct vector_case vector_cases[] = {
	{ "noise_vectors_selected.json", "Noise_IKpsk2_25519_ChaChaPoly_SHA256", true },
	{ "noise_vectors_selected.json", "Noise_IK_25519_ChaChaPoly_SHA256", false },
	{ "noise_c_basic_IK_selected.json", "Noise_IK_25519_ChaChaPoly_SHA256", false },
};

/* Start one side, either from the private key alone or with the values a
 * daemon keeps precomputed (which must give the same bytes). */
static void vector_start(struct noise_handshake *hs, enum noise_role role, bool psk2,
			 bool precomputed, const struct vector_bytes *prologue,
			 const uint8_t *s_priv, const uint8_t *rs, const uint8_t *psk)
{
	uint8_t s_pub[32], ss[32];
	int ret;

	if (!precomputed) {
		ret = noise_handshake_init(hs, role, psk2, prologue->data, prologue->len, s_priv,
					   rs, psk);
	} else {
		public_from_private(s_pub, s_priv);
		if (rs)
			cr_assert(noise_dh(ss, s_priv, rs));
		ret = noise_handshake_init_precomputed(hs, role, psk2, prologue->data,
						       prologue->len, s_priv, s_pub, rs,
						       rs ? ss : NULL, psk);
	}
	cr_assert_eq(ret, 0);
	cr_assert_eq(hs->state, NOISE_HS_EMPTY);
	cr_assert_eq(hs->role, role);
}

/* A responder's ss cache with one entry (daemon_ss_lookup): counts its
 * calls and checks it is asked about the right key. */
struct ss_cache {
	uint8_t rs[32], ss[32];
	const uint8_t *answer; /* what to return: ss, a wrong value, or NULL */
	unsigned calls;
};

static const uint8_t *ss_cache_lookup(void *ctx, const uint8_t rs[NOISE_PUBLIC_LEN])
{
	struct ss_cache *c = ctx;

	c->calls++;
	return memcmp(rs, c->rs, 32) == 0 ? c->answer : NULL;
}

static void vector_run(const struct vector_case *c, bool precomputed)
{
	struct noise_vector *v = vector_load(c->file, c->name);
	struct noise_handshake ini, res;
	struct noise_keys ik, rk;
	uint8_t buf[VECTOR_MAX_BYTES + NOISE_MSG1_OVERHEAD], init_pub[32], resp_pub[32];
	uint64_t n_send[2] = { 0, 0 };
	size_t len;

	cr_assert_eq(v->init_psk_count, c->psk2 ? 1u : 0u);
	cr_assert_eq(v->resp_psk_count, c->psk2 ? 1u : 0u);
	cr_assert_eq(v->handshake_hash.len, (size_t)NOISE_HASH_LEN);
	cr_assert_geq(v->message_count, 3u, "want transport messages too");
	/* The vector's `<- s` is the responder's public key. */
	public_from_private(resp_pub, v->resp_static.data);
	assert_bytes(resp_pub, v->init_remote_static.data, 32, "init_remote_static");
	public_from_private(init_pub, v->init_static.data);

	vector_start(&ini, NOISE_INITIATOR, c->psk2, precomputed, &v->init_prologue,
		     v->init_static.data, v->init_remote_static.data,
		     c->psk2 ? v->init_psks[0].data : NULL);
	noise_handshake_set_ephemeral(&ini, v->init_ephemeral.data);
	/* The responder gets its psk only after message 1, as the daemon does
	 * once it knows who is calling. */
	vector_start(&res, NOISE_RESPONDER, c->psk2, precomputed, &v->resp_prologue,
		     v->resp_static.data, NULL, NULL);
	noise_handshake_set_ephemeral(&res, v->resp_ephemeral.data);

	/* -> e, es, s, ss */
	len = NOISE_MSG1_OVERHEAD + v->payload[0].len;
	cr_assert_eq(len, v->ciphertext[0].len);
	cr_assert_eq(noise_write_msg1(&ini, buf, v->payload[0].data, v->payload[0].len), 0);
	assert_bytes(buf, v->ciphertext[0].data, len, "message 1");
	/* The CipherState counted the payload's use of the key set by ss. */
	cr_assert(ini.has_key);
	cr_assert_eq(ini.n, 1u);
	memset(buf, 0xa5, sizeof buf);
	if (!precomputed) {
		cr_assert_eq(noise_read_msg1(&res, buf, v->ciphertext[0].data, len), 0);
	} else {
		/* As the daemon: ss from its cache of known peers. */
		struct ss_cache cache = { .calls = 0 };
		memcpy(cache.rs, init_pub, 32);
		cr_assert(noise_dh(cache.ss, v->resp_static.data, init_pub));
		cache.answer = cache.ss;
		cr_assert_eq(noise_read_msg1_cached(&res, buf, v->ciphertext[0].data, len,
						    ss_cache_lookup, &cache), 0);
		cr_assert_eq(cache.calls, 1u);
	}
	assert_bytes(buf, v->payload[0].data, v->payload[0].len, "payload 1 decrypted");
	assert_bytes(res.rs, init_pub, 32, "initiator static learned from message 1");
	cr_assert_eq(res.n, 1u);
	if (c->psk2)
		noise_handshake_set_psk(&res, v->resp_psks[0].data);

	/* <- e, ee, se[, psk] */
	len = NOISE_MSG2_OVERHEAD + v->payload[1].len;
	cr_assert_eq(len, v->ciphertext[1].len);
	cr_assert_eq(noise_write_msg2(&res, buf, v->payload[1].data, v->payload[1].len), 0);
	assert_bytes(buf, v->ciphertext[1].data, len, "message 2");
	memset(buf, 0xa5, sizeof buf);
	cr_assert_eq(noise_read_msg2(&ini, buf, v->ciphertext[1].data, len), 0);
	assert_bytes(buf, v->payload[1].data, v->payload[1].len, "payload 2 decrypted");

	assert_bytes(noise_handshake_hash(&ini), v->handshake_hash.data, 32, "initiator h");
	assert_bytes(noise_handshake_hash(&res), v->handshake_hash.data, 32, "responder h");

	cr_assert_eq(noise_split(&ini, &ik), 0);
	cr_assert_eq(noise_split(&res, &rk), 0);
	cr_assert(hs_is_wiped(&ini) && hs_is_wiped(&res), "split wipes the handshake");
	assert_bytes(ik.send, rk.recv, 32, "initiator send = responder recv");
	assert_bytes(ik.recv, rk.send, 32, "initiator recv = responder send");

	/* Transport: even index initiator -> responder, odd the other way,
	 * each direction counting its own n from 0. */
	for (size_t i = 2; i < v->message_count; i++) {
		bool from_initiator = (i % 2) == 0;
		const uint8_t *send = from_initiator ? ik.send : rk.send;
		const uint8_t *recv = from_initiator ? rk.recv : ik.recv;
		uint64_t n = n_send[i % 2]++;
		char what[64];

		len = v->payload[i].len;
		cr_assert_eq(len + NOISE_TAG_LEN, v->ciphertext[i].len, "message %zu length", i);
		noise_encrypt(buf, v->payload[i].data, len, NULL, 0, n, send);
		snprintf(what, sizeof what, "transport message %zu (n=%llu)", i,
			 (unsigned long long)n);
		assert_bytes(buf, v->ciphertext[i].data, len + NOISE_TAG_LEN, what);
		memset(buf, 0xa5, sizeof buf);
		cr_assert_eq(noise_decrypt(buf, v->ciphertext[i].data, len + NOISE_TAG_LEN, NULL, 0,
					   n, recv), 0);
		assert_bytes(buf, v->payload[i].data, len, what);
	}
	free(v);
}

ParameterizedTestParameters(noise_vectors, published)
{
	return cr_make_param_array(struct vector_case, vector_cases, ARRAY_SIZE(vector_cases));
}

ParameterizedTest(struct vector_case *c, noise_vectors, published)
{
	vector_run(c, false);
}

ParameterizedTestParameters(noise_vectors, published_precomputed)
{
	return cr_make_param_array(struct vector_case, vector_cases, ARRAY_SIZE(vector_cases));
}

ParameterizedTest(struct vector_case *c, noise_vectors, published_precomputed)
{
	vector_run(c, true);
}

/* In-place: the payload decrypted over its own ciphertext in the message. */
Test(noise_vectors, read_in_place)
{
	struct noise_vector *v = vector_load("noise_vectors_selected.json",
					     "Noise_IKpsk2_25519_ChaChaPoly_SHA256");
	struct noise_handshake res, copy;
	uint8_t msg[VECTOR_MAX_BYTES];

	cr_assert_eq(noise_handshake_init(&res, NOISE_RESPONDER, true, v->resp_prologue.data,
					  v->resp_prologue.len, v->resp_static.data, NULL, NULL),
		     0);
	copy = res;
	memcpy(msg, v->ciphertext[0].data, v->ciphertext[0].len);
	cr_assert_eq(noise_read_msg1(&res, msg + NOISE_MSG1_OVERHEAD - NOISE_TAG_LEN, msg,
				     v->ciphertext[0].len), 0);
	assert_bytes(msg + NOISE_MSG1_OVERHEAD - NOISE_TAG_LEN, v->payload[0].data,
		     v->payload[0].len, "payload decrypted in place");
	/* Same h as reading into a separate buffer. */
	cr_assert_eq(noise_read_msg1(&copy, msg, v->ciphertext[0].data, v->ciphertext[0].len), 0);
	assert_bytes(res.h, copy.h, 32, "h after in-place read");
	free(v);
}

/* ---------------------------------------------------------------- AEAD */

static void rfc8439_load(struct vector_bytes *b, const char *key)
{
	int ret = vectors_load_hex_line(b, VECTOR_DIR "rfc8439_aead.txt", key);

	cr_assert_eq(ret, 0, "%s: %s", key, strerror(-ret));
}

/* The responder's ss cache: the right value gives the same handshake as
 * none; no entry (NULL) computes it; a wrong value (or a cache answering
 * for a key that is not the caller's) fails authentication and wipes the
 * handshake, as an unknown peer does without a cache. */
Test(noise, read_msg1_cached)
{
	struct pair p, q;
	struct ss_cache cache;
	uint8_t got[sizeof p.payload1], wrong[32];

	for (int mode = 0; mode < 3; mode++) {
		pair_random(&p);
		pair_start(&p);
		pair_write1(&p);
		memset(&cache, 0, sizeof cache);
		memcpy(cache.rs, p.i_pub, 32);
		cr_assert(noise_dh(cache.ss, p.r_priv, p.i_pub));
		cache.answer = mode == 0 ? cache.ss : NULL;
		if (mode == 2)
			memcpy(cache.rs, p.r_pub, 32); /* an entry for another key */
		cr_assert_eq(noise_read_msg1_cached(&p.res, got, p.msg1, sizeof p.msg1,
						    ss_cache_lookup, &cache), 0, "mode %d", mode);
		cr_assert_eq(cache.calls, 1u);
		assert_bytes(got, p.payload1, sizeof got, "payload 1");
		noise_handshake_set_psk(&p.res, p.r_psk);
		pair_write2(&p);
		pair_read2(&p);
		assert_bytes(noise_handshake_hash(&p.ini), noise_handshake_hash(&p.res), 32,
			     "same handshake hash");
	}

	/* A wrong ss: -EBADMSG, the payload output wiped, handshake wiped. */
	pair_random(&q);
	pair_start(&q);
	pair_write1(&q);
	memset(&cache, 0, sizeof cache);
	memcpy(cache.rs, q.i_pub, 32);
	randombytes_buf(wrong, sizeof wrong);
	cache.answer = wrong;
	memset(got, 0xa5, sizeof got);
	cr_assert_eq(noise_read_msg1_cached(&q.res, got, q.msg1, sizeof q.msg1, ss_cache_lookup,
					    &cache), -EBADMSG);
	cr_assert_eq(cache.calls, 1u);
	cr_assert(hs_is_wiped(&q.res));
	for (size_t i = 0; i < sizeof got; i++)
		cr_assert_eq(got[i], 0, "byte %zu of the payload not wiped on failure", i);

	/* NULL lookup: exactly noise_read_msg1. */
	pair_random(&q);
	pair_start(&q);
	pair_write1(&q);
	cr_assert_eq(noise_read_msg1_cached(&q.res, got, q.msg1, sizeof q.msg1, NULL, NULL), 0);
	assert_bytes(got, q.payload1, sizeof got, "payload 1");
}

Test(noise, rfc8439_aead_libsodium)
{
	struct vector_bytes key, nonce, aad, pt, ct, tag;
	uint8_t out[200], back[200];
	unsigned long long out_len = 0, back_len = 0;

	rfc8439_load(&key, "KEY");
	rfc8439_load(&nonce, "NONCE");
	rfc8439_load(&aad, "AAD");
	rfc8439_load(&pt, "PLAINTEXT");
	rfc8439_load(&ct, "CIPHERTEXT");
	rfc8439_load(&tag, "TAG");
	cr_assert_eq(key.len, 32u);
	cr_assert_eq(nonce.len, 12u);
	cr_assert_eq(aad.len, 12u);
	cr_assert_eq(pt.len, 114u);
	cr_assert_eq(ct.len, 114u);
	cr_assert_eq(tag.len, 16u);

	cr_assert_eq(crypto_aead_chacha20poly1305_ietf_encrypt(out, &out_len, pt.data, pt.len,
							       aad.data, aad.len, NULL,
							       nonce.data, key.data), 0);
	cr_assert_eq(out_len, 130u);
	assert_bytes(out, ct.data, 114, "RFC 8439 ciphertext");
	assert_bytes(out + 114, tag.data, 16, "RFC 8439 tag");
	cr_assert_eq(crypto_aead_chacha20poly1305_ietf_decrypt(back, &back_len, NULL, out, 130,
							       aad.data, aad.len, nonce.data,
							       key.data), 0);
	cr_assert_eq(back_len, 114u);
	assert_bytes(back, pt.data, 114, "RFC 8439 plaintext");
}

/* noise_encrypt's nonce is 00000000 || LE64(n): checked against libsodium
 * called with the nonce bytes spelled out here, never derived from n. */
struct nonce_case {
	uint64_t n;
	uint8_t nonce[12];
};

static const struct nonce_case nonce_cases[] = {
	{ 0, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 } },
	{ 1, { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 } },
	{ 0x0807060504030201ull, { 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 } },
	{ 0x4746454443424140ull, { 0, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47 } },
	{ UINT64_MAX - 1, { 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
	{ UINT64_MAX, { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
};

Test(noise, transport_nonce_layout)
{
	struct vector_bytes key, aad, pt, ct;
	uint8_t want[200], got[200], back[200];
	unsigned long long want_len;

	rfc8439_load(&key, "KEY");
	rfc8439_load(&aad, "AAD");
	rfc8439_load(&pt, "PLAINTEXT");
	rfc8439_load(&ct, "CIPHERTEXT");
	for (size_t i = 0; i < ARRAY_SIZE(nonce_cases); i++) {
		const struct nonce_case *c = &nonce_cases[i];

		cr_assert_eq(crypto_aead_chacha20poly1305_ietf_encrypt(want, &want_len, pt.data,
								       pt.len, aad.data, aad.len,
								       NULL, c->nonce, key.data),
			     0);
		memset(got, 0xa5, sizeof got);
		noise_encrypt(got, pt.data, pt.len, aad.data, aad.len, c->n, key.data);
		assert_bytes(got, want, pt.len + 16, "noise_encrypt vs explicit nonce");
		cr_assert_eq(got[pt.len + 16], 0xa5, "wrote past len + 16");
		cr_assert_eq(noise_decrypt(back, got, pt.len + 16, aad.data, aad.len, c->n,
					   key.data), 0);
		assert_bytes(back, pt.data, pt.len, "noise_decrypt");
		/* Every other n opens nothing. */
		cr_assert_eq(noise_decrypt(back, got, pt.len + 16, aad.data, aad.len, c->n ^ 1,
					   key.data), -EBADMSG);
	}
	/* This n gives the RFC's nonce except its 4-byte constant 07000000,
	 * which Noise fixes at zero: same key and input, other ciphertext. */
	noise_encrypt(got, pt.data, pt.len, aad.data, aad.len, 0x4746454443424140ull, key.data);
	cr_assert_neq(memcmp(got, ct.data, ct.len), 0);
}

Test(noise, transport_in_place_and_empty)
{
	uint8_t key[32], buf[64 + 16], plain[64], tag_only[16];

	randombytes_buf(key, sizeof key);
	randombytes_buf(plain, sizeof plain);
	memcpy(buf, plain, sizeof plain);
	noise_encrypt(buf, buf, sizeof plain, (const uint8_t *)"ad", 2, 7, key);
	cr_assert_neq(memcmp(buf, plain, sizeof plain), 0);
	cr_assert_eq(noise_decrypt(buf, buf, sizeof buf, (const uint8_t *)"ad", 2, 7, key), 0);
	assert_bytes(buf, plain, sizeof plain, "in-place round trip");

	/* A keepalive: empty plaintext, 16-byte tag alone. */
	noise_encrypt(tag_only, NULL, 0, NULL, 0, 0, key);
	cr_assert_eq(noise_decrypt(buf, tag_only, sizeof tag_only, NULL, 0, 0, key), 0);
	tag_only[15] ^= 1;
	cr_assert_eq(noise_decrypt(buf, tag_only, sizeof tag_only, NULL, 0, 0, key), -EBADMSG);
	cr_assert_eq(noise_decrypt(buf, tag_only, 15, NULL, 0, 0, key), -EBADMSG);
}

Test(noise, decrypt_failure_wipes_output)
{
	static const struct {
		const char *what;
		size_t flip;     /* byte of the sealed message to flip, or SIZE_MAX */
		uint64_t n;
		const char *ad;
		bool other_key;
	} cases[] = {
		{ "flipped ciphertext", 0, 3, "ad", false },
		{ "flipped tag", 40, 3, "ad", false },
		{ "wrong n", SIZE_MAX, 4, "ad", false },
		{ "wrong ad", SIZE_MAX, 3, "aD", false },
		{ "wrong key", SIZE_MAX, 3, "ad", true },
	};
	uint8_t key[32], other[32], plain[32], sealed[48], out[48];

	randombytes_buf(key, sizeof key);
	randombytes_buf(other, sizeof other);
	randombytes_buf(plain, sizeof plain);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		noise_encrypt(sealed, plain, sizeof plain, (const uint8_t *)"ad", 2, 3, key);
		if (cases[i].flip != SIZE_MAX)
			sealed[cases[i].flip] ^= 0x80;
		memset(out, 0xa5, sizeof out);
		cr_assert_eq(noise_decrypt(out, sealed, sizeof sealed,
					   (const uint8_t *)cases[i].ad, 2, cases[i].n,
					   cases[i].other_key ? other : key),
			     -EBADMSG, "%s", cases[i].what);
		cr_assert(all_bytes(out, sizeof plain, 0), "%s: output not wiped", cases[i].what);
		cr_assert(all_bytes(out + sizeof plain, 16, 0xa5), "%s: wrote past len - 16",
			  cases[i].what);
	}
}

/* ---------------------------------------------------------------- X25519 */

/* RFC 7748 section 6.1. */
Test(noise, dh_rfc7748)
{
	struct vector_bytes a, a_pub, b, b_pub, k;
	uint8_t out1[32], out2[32], pub[32];

	cr_assert(vectors_hex_decode(&a, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", 64));
	cr_assert(vectors_hex_decode(&a_pub, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", 64));
	cr_assert(vectors_hex_decode(&b, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", 64));
	cr_assert(vectors_hex_decode(&b_pub, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", 64));
	cr_assert(vectors_hex_decode(&k, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", 64));
	public_from_private(pub, a.data);
	assert_bytes(pub, a_pub.data, 32, "Alice's public key");
	cr_assert(noise_dh(out1, a.data, b_pub.data));
	cr_assert(noise_dh(out2, b.data, a_pub.data));
	assert_bytes(out1, k.data, 32, "K from Alice");
	assert_bytes(out2, k.data, 32, "K from Bob");
}

/*
 * The points libsodium 1.0.18 refuses (has_small_order() in
 * crypto_scalarmult/curve25519/ref10/x25519_ref10.c, which ignores bit 255),
 * and the same seven with bit 255 set.  Any of them as a peer's key would
 * make the shared secret known to everyone.
 */
static const uint8_t low_order[][32] = {
	/* 0 (order 4) */
	{ 0 },
	/* 1 (order 1) */
	{ 1 },
	/* order 8 */
	{ 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
	  0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00 },
	/* order 8 */
	{ 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
	  0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57 },
	/* p - 1 (order 2) */
	{ 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f },
	/* p (= 0) */
	{ 0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f },
	/* p + 1 (= 1) */
	{ 0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f },
};
#define LOW_ORDER_CASES (2 * ARRAY_SIZE(low_order))

/* Case i: point i % 7, with bit 255 set for the second seven. */
static void low_order_point(uint8_t out[32], size_t i)
{
	memcpy(out, low_order[i % ARRAY_SIZE(low_order)], 32);
	if (i >= ARRAY_SIZE(low_order))
		out[31] |= 0x80;
}

Test(noise, low_order_points_rejected_by_libsodium)
{
	uint8_t priv[32], pub[32], point[32], out[32];

	random_keypair(priv, pub);
	for (size_t i = 0; i < LOW_ORDER_CASES; i++) {
		low_order_point(point, i);
		cr_assert_eq(crypto_scalarmult_curve25519(out, priv, point), -1, "point %zu", i);
		memset(out, 0xa5, sizeof out);
		cr_assert_not(noise_dh(out, priv, point), "point %zu", i);
		cr_assert(all_bytes(out, 32, 0), "point %zu: DH output not wiped", i);
	}
	/* And an ordinary key is accepted, so the loop above can fail. */
	cr_assert(noise_dh(out, priv, pub));
}

/* The initiator's ephemeral, replaced on the wire. */
Test(noise, low_order_initiator_ephemeral)
{
	for (size_t i = 0; i < LOW_ORDER_CASES; i++) {
		struct pair p;
		uint8_t out[sizeof p.payload1];

		pair_random(&p);
		pair_start(&p);
		pair_write1(&p);
		low_order_point(p.msg1, i);
		memset(out, 0x5a, sizeof out);
		cr_assert_eq(noise_read_msg1(&p.res, out, p.msg1, sizeof p.msg1), -EINVAL,
			     "point %zu", i);
		cr_assert(all_bytes(out, sizeof out, 0x5a), "point %zu: payload written", i);
		cr_assert(hs_is_wiped(&p.res), "point %zu: responder not wiped", i);
		cr_assert_eq(p.res.state, NOISE_HS_EMPTY);
	}
}

/* The initiator's static, authentic (encrypted under the real keys), seen
 * by the responder: refused at ss, before the payload is opened. */
Test(noise, low_order_initiator_static)
{
	for (size_t i = 0; i < LOW_ORDER_CASES; i++) {
		struct pair p;
		uint8_t out[sizeof p.payload1];

		pair_random(&p);
		pair_start(&p);
		low_order_point(p.ini.s_pub, i);
		pair_write1(&p);
		memset(out, 0x5a, sizeof out);
		cr_assert_eq(noise_read_msg1(&p.res, out, p.msg1, sizeof p.msg1), -EINVAL,
			     "point %zu", i);
		cr_assert(all_bytes(out, sizeof out, 0x5a), "point %zu: payload written", i);
		cr_assert(hs_is_wiped(&p.res), "point %zu: responder not wiped", i);
	}
}

/* The responder's static given to the initiator: nothing can be sent. */
Test(noise, low_order_responder_static)
{
	for (size_t i = 0; i < LOW_ORDER_CASES; i++) {
		struct noise_handshake hs;
		uint8_t priv[32], pub[32], point[32], out[NOISE_MSG1_OVERHEAD + 4];

		random_keypair(priv, pub);
		low_order_point(point, i);
		memset(&hs, 0x5a, sizeof hs);
		cr_assert_eq(noise_handshake_init(&hs, NOISE_INITIATOR, true, PROLOGUE,
						  PROLOGUE_LEN, priv, point, NULL), -EINVAL,
			     "point %zu", i);
		cr_assert(hs_is_wiped(&hs), "point %zu: not wiped", i);
		memset(out, 0x5a, sizeof out);
		cr_assert_eq(noise_write_msg1(&hs, out, (const uint8_t *)"ping", 4), -EINVAL);
		cr_assert(all_bytes(out, sizeof out, 0x5a), "point %zu: message written", i);
	}
}

/* The responder's ephemeral, replaced on the wire. */
Test(noise, low_order_responder_ephemeral)
{
	for (size_t i = 0; i < LOW_ORDER_CASES; i++) {
		struct pair p;
		uint8_t out[sizeof p.payload2];

		pair_random(&p);
		pair_start(&p);
		pair_write1(&p);
		pair_read1(&p);
		pair_write2(&p);
		low_order_point(p.msg2, i);
		memset(out, 0x5a, sizeof out);
		cr_assert_eq(noise_read_msg2(&p.ini, out, p.msg2, sizeof p.msg2), -EINVAL,
			     "point %zu", i);
		cr_assert(all_bytes(out, sizeof out, 0x5a), "point %zu: payload written", i);
		cr_assert(hs_is_wiped(&p.ini), "point %zu: initiator not wiped", i);
	}
}

/* ---------------------------------------------------------------- handshakes */

Test(noise, random_handshakes_mirror_keys)
{
	uint8_t first_e[8][32];

	for (size_t round = 0; round < ARRAY_SIZE(first_e); round++) {
		struct pair p;
		struct noise_keys ik, rk;
		uint8_t h[32], sealed[16 + 16], opened[16];

		pair_random(&p);
		pair_start(&p);
		pair_write1(&p);
		pair_read1(&p);
		pair_write2(&p);
		pair_read2(&p);
		memcpy(first_e[round], p.msg1, 32);
		for (size_t j = 0; j < round; j++)
			cr_assert_neq(memcmp(first_e[j], first_e[round], 32), 0,
				      "ephemeral reused");
		memcpy(h, noise_handshake_hash(&p.ini), 32);
		assert_bytes(noise_handshake_hash(&p.res), h, 32, "handshake hash");

		cr_assert_eq(noise_split(&p.ini, &ik), 0);
		cr_assert_eq(noise_split(&p.res, &rk), 0);
		cr_assert(hs_is_wiped(&p.ini) && hs_is_wiped(&p.res));
		assert_bytes(ik.send, rk.recv, 32, "i->r key");
		assert_bytes(ik.recv, rk.send, 32, "r->i key");
		cr_assert_neq(memcmp(ik.send, ik.recv, 32), 0, "both directions share a key");

		noise_encrypt(sealed, (const uint8_t *)"initiator speaks", 16, NULL, 0, 0, ik.send);
		cr_assert_eq(noise_decrypt(opened, sealed, sizeof sealed, NULL, 0, 0, rk.recv), 0);
		cr_assert_eq(memcmp(opened, "initiator speaks", 16), 0);
		noise_encrypt(sealed, (const uint8_t *)"responder speaks", 16, NULL, 0, 0, rk.send);
		cr_assert_eq(noise_decrypt(opened, sealed, sizeof sealed, NULL, 0, 0, ik.recv), 0);
		cr_assert_eq(memcmp(opened, "responder speaks", 16), 0);
		cr_assert_eq(noise_decrypt(opened, sealed, sizeof sealed, NULL, 0, 0, rk.recv),
			     -EBADMSG, "a side opened its own message");
	}
}

/* Every byte of message 1 matters: e (even the bit X25519 ignores, as it
 * is hashed), the encrypted static, the payload and both tags. */
Test(noise, tamper_msg1)
{
	static const uint8_t masks[] = { 0x01, 0x80 };
	struct pair p;

	pair_random(&p);
	pair_start(&p);
	pair_write1(&p);
	for (size_t i = 0; i < sizeof p.msg1; i++) {
		for (size_t m = 0; m < ARRAY_SIZE(masks); m++) {
			uint8_t msg[sizeof p.msg1], out[sizeof p.payload1];

			cr_assert_eq(noise_handshake_init(&p.res, NOISE_RESPONDER, true, PROLOGUE,
							  PROLOGUE_LEN, p.r_priv, NULL, NULL), 0);
			memcpy(msg, p.msg1, sizeof msg);
			msg[i] ^= masks[m];
			cr_assert_eq(noise_read_msg1(&p.res, out, msg, sizeof msg), -EBADMSG,
				     "byte %zu mask %02x", i, masks[m]);
			cr_assert(hs_is_wiped(&p.res), "byte %zu: not wiped", i);
		}
	}
	/* The untouched message still passes, so the loop tested tampering. */
	cr_assert_eq(noise_handshake_init(&p.res, NOISE_RESPONDER, true, PROLOGUE, PROLOGUE_LEN,
					  p.r_priv, NULL, NULL), 0);
	pair_read1(&p);
}

Test(noise, tamper_msg2)
{
	static const uint8_t masks[] = { 0x01, 0x80 };
	struct noise_handshake sent;
	struct pair p;

	pair_random(&p);
	pair_start(&p);
	pair_write1(&p);
	sent = p.ini;
	pair_read1(&p);
	pair_write2(&p);
	for (size_t i = 0; i < sizeof p.msg2; i++) {
		for (size_t m = 0; m < ARRAY_SIZE(masks); m++) {
			uint8_t msg[sizeof p.msg2], out[sizeof p.payload2];

			p.ini = sent;
			memcpy(msg, p.msg2, sizeof msg);
			msg[i] ^= masks[m];
			cr_assert_eq(noise_read_msg2(&p.ini, out, msg, sizeof msg), -EBADMSG,
				     "byte %zu mask %02x", i, masks[m]);
			cr_assert(hs_is_wiped(&p.ini), "byte %zu: not wiped", i);
		}
	}
	p.ini = sent;
	pair_read2(&p);
}

/* Lengths: too short for the fixed part is -EINVAL; a payload cut or grown
 * by a byte fails its tag. */
Test(noise, message_lengths)
{
	struct noise_handshake sent;
	struct pair p;
	uint8_t out[64], longer[sizeof p.msg1 + 1];

	pair_random(&p);
	pair_start(&p);
	pair_write1(&p);
	sent = p.ini;
	memcpy(longer, p.msg1, sizeof p.msg1);
	longer[sizeof p.msg1] = 0;

	static const struct {
		size_t len;
		int want;
	} msg1_cases[] = {
		{ 0, -EINVAL },
		{ NOISE_MSG1_OVERHEAD - 1, -EINVAL },
		{ NOISE_MSG1_OVERHEAD, -EBADMSG },
		{ sizeof p.msg1 - 1, -EBADMSG },
		{ sizeof p.msg1 + 1, -EBADMSG },
	};
	for (size_t i = 0; i < ARRAY_SIZE(msg1_cases); i++) {
		cr_assert_eq(noise_handshake_init(&p.res, NOISE_RESPONDER, true, PROLOGUE,
						  PROLOGUE_LEN, p.r_priv, NULL, NULL), 0);
		memset(out, 0x5a, sizeof out);
		cr_assert_eq(noise_read_msg1(&p.res, out, longer, msg1_cases[i].len),
			     msg1_cases[i].want, "msg1 length %zu", msg1_cases[i].len);
		cr_assert(hs_is_wiped(&p.res));
		if (msg1_cases[i].want == -EINVAL)
			cr_assert(all_bytes(out, sizeof out, 0x5a), "written on a short msg1");
	}

	cr_assert_eq(noise_handshake_init(&p.res, NOISE_RESPONDER, true, PROLOGUE, PROLOGUE_LEN,
					  p.r_priv, NULL, NULL), 0);
	pair_read1(&p);
	pair_write2(&p);
	static const struct {
		size_t len;
		int want;
	} msg2_cases[] = {
		{ 0, -EINVAL },
		{ NOISE_MSG2_OVERHEAD - 1, -EINVAL },
		{ NOISE_MSG2_OVERHEAD, -EBADMSG },
		{ sizeof p.msg2 - 1, -EBADMSG },
	};
	for (size_t i = 0; i < ARRAY_SIZE(msg2_cases); i++) {
		p.ini = sent;
		memset(out, 0x5a, sizeof out);
		cr_assert_eq(noise_read_msg2(&p.ini, out, p.msg2, msg2_cases[i].len),
			     msg2_cases[i].want, "msg2 length %zu", msg2_cases[i].len);
		cr_assert(hs_is_wiped(&p.ini));
		if (msg2_cases[i].want == -EINVAL)
			cr_assert(all_bytes(out, sizeof out, 0x5a), "written on a short msg2");
	}
}

/* Mismatched inputs, each caught where the spec says. */
enum mismatch { WRONG_PSK, WRONG_RS, WRONG_PROLOGUE, PSK2_VS_IK, NULL_PSK_VS_ZERO,
		NULL_PSK_VS_NONZERO };

Test(noise, mismatches)
{
	static const struct {
		const char *what;
		enum mismatch kind;
		int want1, want2; /* read_msg1, read_msg2 (if reached) */
	} cases[] = {
		{ "wrong psk", WRONG_PSK, 0, -EBADMSG },
		{ "wrong responder static", WRONG_RS, -EBADMSG, 0 },
		{ "wrong prologue", WRONG_PROLOGUE, -EBADMSG, 0 },
		{ "psk2 initiator, IK responder", PSK2_VS_IK, -EBADMSG, 0 },
		{ "NULL psk is all zeros", NULL_PSK_VS_ZERO, 0, 0 },
		{ "NULL psk vs a real one", NULL_PSK_VS_NONZERO, 0, -EBADMSG },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct pair p;
		uint8_t other_priv[32], other_pub[32], out1[sizeof p.payload1];
		uint8_t out2[sizeof p.payload2];
		const uint8_t *i_psk;
		int ret;

		pair_random(&p);
		random_keypair(other_priv, other_pub);
		i_psk = p.i_psk;
		switch (cases[i].kind) {
		case WRONG_PSK:
			p.r_psk[5] ^= 1;
			break;
		case NULL_PSK_VS_ZERO:
			i_psk = NULL;
			memset(p.r_psk, 0, sizeof p.r_psk);
			break;
		case NULL_PSK_VS_NONZERO:
			i_psk = NULL;
			break;
		default:
			break;
		}
		cr_assert_eq(noise_handshake_init(&p.ini, NOISE_INITIATOR, true,
						  cases[i].kind == WRONG_PROLOGUE ?
						  (const uint8_t *)"saltun v2" : PROLOGUE,
						  PROLOGUE_LEN, p.i_priv,
						  cases[i].kind == WRONG_RS ? other_pub : p.r_pub,
						  i_psk), 0);
		cr_assert_eq(noise_handshake_init(&p.res, NOISE_RESPONDER,
						  cases[i].kind != PSK2_VS_IK, PROLOGUE,
						  PROLOGUE_LEN, p.r_priv, NULL, NULL), 0);
		pair_write1(&p);
		ret = noise_read_msg1(&p.res, out1, p.msg1, sizeof p.msg1);
		cr_assert_eq(ret, cases[i].want1, "%s: msg1 gave %d", cases[i].what, ret);
		if (ret) {
			cr_assert(hs_is_wiped(&p.res), "%s", cases[i].what);
			continue;
		}
		noise_handshake_set_psk(&p.res, p.r_psk);
		pair_write2(&p);
		ret = noise_read_msg2(&p.ini, out2, p.msg2, sizeof p.msg2);
		cr_assert_eq(ret, cases[i].want2, "%s: msg2 gave %d", cases[i].what, ret);
		if (ret)
			cr_assert(hs_is_wiped(&p.ini), "%s", cases[i].what);
		else
			assert_bytes(out2, p.payload2, sizeof out2, cases[i].what);
	}
}

/* Steps out of order or for the wrong role: -EINVAL, nothing written, the
 * handshake wiped; split() only from DONE. */
enum misuse_step { STEP_WRITE1, STEP_READ1, STEP_WRITE2, STEP_READ2, STEP_SPLIT };

Test(noise, state_machine_misuse)
{
	static const struct {
		const char *what;
		bool initiator;
		int progress;   /* pair steps done first: 0 init, 1 write1, 2 read1, 3 write2 */
		enum misuse_step step;
	} cases[] = {
		{ "responder writes msg1", false, 0, STEP_WRITE1 },
		{ "initiator reads msg1", true, 0, STEP_READ1 },
		{ "initiator writes msg2", true, 1, STEP_WRITE2 },
		{ "responder writes msg2 before msg1", false, 0, STEP_WRITE2 },
		{ "initiator reads msg2 before sending msg1", true, 0, STEP_READ2 },
		{ "initiator writes msg1 twice", true, 1, STEP_WRITE1 },
		{ "responder reads msg1 twice", false, 2, STEP_READ1 },
		{ "responder reads msg2", false, 3, STEP_READ2 },
		{ "split: initiator fresh", true, 0, STEP_SPLIT },
		{ "split: initiator after msg1", true, 1, STEP_SPLIT },
		{ "split: responder fresh", false, 0, STEP_SPLIT },
		{ "split: responder after reading msg1", false, 2, STEP_SPLIT },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct pair p;
		struct noise_handshake *hs;
		struct noise_keys keys;
		uint8_t out[128];
		int ret = 0;

		pair_random(&p);
		pair_start(&p);
		if (cases[i].progress >= 1)
			pair_write1(&p);
		if (cases[i].progress >= 2)
			pair_read1(&p);
		if (cases[i].progress >= 3)
			pair_write2(&p);
		hs = cases[i].initiator ? &p.ini : &p.res;
		memset(out, 0x5a, sizeof out);
		memset(&keys, 0x5a, sizeof keys);
		switch (cases[i].step) {
		case STEP_WRITE1:
			ret = noise_write_msg1(hs, out, p.payload1, 4);
			break;
		case STEP_READ1:
			ret = noise_read_msg1(hs, out, p.msg1, sizeof p.msg1);
			break;
		case STEP_WRITE2:
			ret = noise_write_msg2(hs, out, p.payload2, 4);
			break;
		case STEP_READ2:
			ret = noise_read_msg2(hs, out, p.msg2, sizeof p.msg2);
			break;
		case STEP_SPLIT:
			ret = noise_split(hs, &keys);
			break;
		}
		cr_assert_eq(ret, -EINVAL, "%s: got %d", cases[i].what, ret);
		cr_assert(all_bytes(out, sizeof out, 0x5a), "%s: output written", cases[i].what);
		cr_assert(all_bytes((const uint8_t *)&keys, sizeof keys, 0x5a), "%s: keys written",
			  cases[i].what);
		cr_assert(hs_is_wiped(hs), "%s: not wiped", cases[i].what);
		cr_assert_eq(hs->state, NOISE_HS_EMPTY);
	}
}

Test(noise, init_arguments)
{
	uint8_t priv[32], pub[32], peer_priv[32], peer_pub[32];
	static const struct {
		const char *what;
		int role;
		bool give_rs, give_ss, give_s_pub, precomputed;
		int want;
	} cases[] = {
		{ "initiator", NOISE_INITIATOR, true, false, false, false, 0 },
		{ "responder", NOISE_RESPONDER, false, false, false, false, 0 },
		{ "initiator without rs", NOISE_INITIATOR, false, false, false, false, -EINVAL },
		{ "responder with rs", NOISE_RESPONDER, true, false, false, false, -EINVAL },
		{ "role 0", 0, true, false, false, false, -EINVAL },
		{ "role 3", 3, true, false, false, false, -EINVAL },
		{ "precomputed initiator", NOISE_INITIATOR, true, true, true, true, 0 },
		{ "precomputed initiator, ss computed", NOISE_INITIATOR, true, false, true, true, 0 },
		{ "precomputed responder", NOISE_RESPONDER, false, false, true, true, 0 },
		{ "precomputed without s_pub", NOISE_INITIATOR, true, true, false, true, -EINVAL },
		{ "precomputed responder with ss", NOISE_RESPONDER, false, true, true, true, -EINVAL },
	};

	random_keypair(priv, pub);
	random_keypair(peer_priv, peer_pub);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct noise_handshake hs;
		uint8_t ss[32];
		int ret;

		cr_assert(noise_dh(ss, priv, peer_pub));
		memset(&hs, 0x5a, sizeof hs);
		if (cases[i].precomputed)
			ret = noise_handshake_init_precomputed(
				&hs, (enum noise_role)cases[i].role, true, PROLOGUE, PROLOGUE_LEN,
				priv, cases[i].give_s_pub ? pub : NULL,
				cases[i].give_rs ? peer_pub : NULL, cases[i].give_ss ? ss : NULL,
				NULL);
		else
			ret = noise_handshake_init(&hs, (enum noise_role)cases[i].role, true,
						   PROLOGUE, PROLOGUE_LEN, priv,
						   cases[i].give_rs ? peer_pub : NULL, NULL);
		cr_assert_eq(ret, cases[i].want, "%s: got %d", cases[i].what, ret);
		if (ret) {
			cr_assert(hs_is_wiped(&hs), "%s: not wiped", cases[i].what);
			continue;
		}
		cr_assert_eq(hs.state, NOISE_HS_EMPTY, "%s", cases[i].what);
		cr_assert_eq((int)hs.role, cases[i].role, "%s", cases[i].what);
		assert_bytes(hs.s_pub, pub, 32, cases[i].what);
		cr_assert(all_bytes(hs.psk, 32, 0), "%s: NULL psk is not zeros", cases[i].what);
		if (cases[i].role == NOISE_INITIATOR)
			assert_bytes(hs.ss, ss, 32, cases[i].what);
	}
}

/* Everything that carried a secret is gone after split; until then the
 * sensitive fields are set (so the check above is not vacuous). */
Test(noise, split_wipes_everything)
{
	struct pair p;
	struct noise_keys ik, rk;

	pair_random(&p);
	pair_start(&p);
	pair_write1(&p);
	pair_read1(&p);
	pair_write2(&p);
	pair_read2(&p);
	cr_assert_not(sodium_is_zero(p.ini.e_priv, 32));
	cr_assert_not(sodium_is_zero(p.ini.ck, 32));
	cr_assert_not(sodium_is_zero(p.res.k, 32));
	cr_assert_eq(noise_split(&p.ini, &ik), 0);
	cr_assert_eq(noise_split(&p.res, &rk), 0);
	cr_assert(hs_is_wiped(&p.ini));
	cr_assert(hs_is_wiped(&p.res));
	/* A second split finds an empty handshake. */
	cr_assert_eq(noise_split(&p.ini, &ik), -EINVAL);
}

/* ---------------------------------------------------------------- the loader */

#define K32 "\"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\""
#define ENTRY_FIELDS                                                                      \
	"\"init_prologue\": \"\", \"resp_prologue\": \"4a6f\", \"init_static\": " K32       \
	", \"init_ephemeral\": " K32 ", \"init_remote_static\": " K32                     \
	", \"resp_static\": " K32 ", \"resp_ephemeral\": " K32                            \
	", \"handshake_hash\": " K32                                                      \
	", \"messages\": [{\"payload\": \"aa\", \"ciphertext\": \"bbcc\"},"               \
	" {\"payload\": \"\", \"ciphertext\": \"dd\", \"note\": [1, -2.5e3, null]}]"
#define ENTRY(name) "{\"protocol_name\": \"" name "\", " ENTRY_FIELDS "}"

static int parse_doc(struct noise_vector *v, const char *doc, const char *name)
{
	return vectors_parse_noise(v, doc, strlen(doc), name, "test-document");
}

Test(vectors, parses_a_good_document)
{
	static const char doc[] =
		"{ \"_meta\": {\"x\": [true, false, null, \"a\\\"b\\u00e9\"], \"n\": 0},\n"
		"  \"vectors\": [ " ENTRY("A") ",\n"
		"  {\"name\": \"B\", \"init_psks\": [" K32 "], " ENTRY_FIELDS ", \"fail\": false}\n"
		"] }\n";
	struct noise_vector *v = malloc(sizeof *v);

	cr_assert_not_null(v);
	cr_assert_eq(parse_doc(v, doc, "B"), 0);
	cr_assert_str_eq(v->protocol_name, "B");
	cr_assert_eq(v->init_prologue.len, 0u);
	cr_assert(v->init_prologue.present);
	cr_assert_eq(v->resp_prologue.len, 2u);
	cr_assert_eq(v->resp_prologue.data[0], 0x4a);
	cr_assert_eq(v->resp_prologue.data[1], 0x6f);
	cr_assert_eq(v->init_static.len, 32u);
	cr_assert_eq(v->init_static.data[31], 0x1f);
	cr_assert_eq(v->init_psk_count, 1u);
	cr_assert_eq(v->resp_psk_count, 0u);
	cr_assert_eq(v->message_count, 2u);
	cr_assert_eq(v->payload[0].len, 1u);
	cr_assert_eq(v->payload[0].data[0], 0xaa);
	cr_assert_eq(v->ciphertext[0].len, 2u);
	cr_assert_eq(v->ciphertext[0].data[1], 0xcc);
	cr_assert_eq(v->payload[1].len, 0u);
	cr_assert_eq(v->ciphertext[1].data[0], 0xdd);

	cr_assert_eq(parse_doc(v, doc, "A"), 0);
	cr_assert_str_eq(v->protocol_name, "A");
	cr_assert_eq(v->init_psk_count, 0u);
	cr_assert_eq(parse_doc(v, doc, "C"), -ENOENT);
	free(v);
}

Test(vectors, rejects_malformed_documents)
{
	static const struct {
		const char *what, *doc;
	} cases[] = {
		{ "empty", "" },
		{ "not an object", "[]" },
		{ "truncated", "{\"vectors\": [" ENTRY("A") },
		{ "trailing data", "{\"vectors\": [" ENTRY("A") "]} x" },
		{ "no vectors", "{\"other\": 1}" },
		{ "vectors twice", "{\"vectors\": [], \"vectors\": [" ENTRY("A") "]}" },
		{ "missing comma", "{\"vectors\": [" ENTRY("A") " " ENTRY("B") "]}" },
		{ "trailing comma", "{\"vectors\": [" ENTRY("A") ",]}" },
		{ "unterminated string", "{\"vectors\": [{\"name\": \"A}]}" },
		{ "control character", "{\"vectors\": [{\"name\": \"A\tB\", " ENTRY_FIELDS "}]}" },
		{ "bad escape", "{\"x\": \"\\q\", \"vectors\": [" ENTRY("A") "]}" },
		{ "bad number", "{\"x\": 01, \"vectors\": [" ENTRY("A") "]}" },
		{ "bad literal", "{\"x\": tru, \"vectors\": [" ENTRY("A") "]}" },
		{ "odd hex", "{\"vectors\": [{\"name\": \"A\", \"init_prologue\": \"abc\"}]}" },
		{ "bad hex digit", "{\"vectors\": [{\"name\": \"A\", \"init_prologue\": \"zz\"}]}" },
		{ "short key", "{\"vectors\": [{\"name\": \"A\", \"init_static\": \"00\"}]}" },
		{ "duplicate field", "{\"vectors\": [{\"name\": \"A\", \"init_prologue\": \"\", "
				     ENTRY_FIELDS "}]}" },
		{ "name and protocol_name", "{\"vectors\": [{\"name\": \"A\", \"protocol_name\": "
					    "\"A\", " ENTRY_FIELDS "}]}" },
		{ "entry without a name", "{\"vectors\": [{" ENTRY_FIELDS "}]}" },
		{ "selected entry lacks a key",
		  "{\"vectors\": [{\"name\": \"A\", \"init_prologue\": \"\"}]}" },
		{ "one message", "{\"vectors\": [{\"name\": \"A\", \"init_prologue\": \"\", "
				 "\"resp_prologue\": \"\", \"init_static\": " K32
				 ", \"init_ephemeral\": " K32 ", \"init_remote_static\": " K32
				 ", \"resp_static\": " K32 ", \"resp_ephemeral\": " K32
				 ", \"handshake_hash\": " K32
				 ", \"messages\": [{\"payload\": \"\", \"ciphertext\": \"\"}]}]}" },
		{ "message without ciphertext",
		  "{\"vectors\": [{\"name\": \"A\", \"messages\": [{\"payload\": \"\"}]}]}" },
		{ "short psk", "{\"vectors\": [{\"name\": \"A\", \"init_psks\": [\"00\"], "
			       ENTRY_FIELDS "}]}" },
		{ "same name twice", "{\"vectors\": [" ENTRY("A") ", " ENTRY("A") "]}" },
	};
	struct noise_vector *v = malloc(sizeof *v);

	cr_assert_not_null(v);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int ret = parse_doc(v, cases[i].doc, "A");

		cr_assert_eq(ret, -EINVAL, "%s: got %d", cases[i].what, ret);
		cr_assert_str_empty(v->protocol_name, "%s: output not cleared", cases[i].what);
	}
	/* The well-formed base of those cases does parse. */
	cr_assert_eq(parse_doc(v, "{\"vectors\": [" ENTRY("A") "]}", "A"), 0);
	free(v);
}

Test(vectors, missing_file)
{
	struct noise_vector *v = malloc(sizeof *v);

	cr_assert_not_null(v);
	cr_assert_eq(vectors_load_noise(v, VECTOR_DIR "does-not-exist.json", "A"), -ENOENT);
	free(v);
}

Test(vectors, hex_lines)
{
	static const char text[] =
		"# KEY=ff (a comment)\n"
		"KEY=0a0B\r\n"
		"KEYS=11\n"
		"BAD=0g\n"
		"TWICE=00\n"
		"TWICE=00\n"
		"EMPTY=\n";
	static const struct {
		const char *key;
		int want;
		size_t len;
	} cases[] = {
		{ "KEY", 0, 2 },
		{ "KEYS", 0, 1 },
		{ "EMPTY", 0, 0 },
		{ "BAD", -EINVAL, 0 },
		{ "TWICE", -EINVAL, 0 },
		{ "NONE", -ENOENT, 0 },
		{ "KE", -ENOENT, 0 },
	};
	struct vector_bytes b;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int ret = vectors_parse_hex_line(&b, text, strlen(text), cases[i].key, "text");

		cr_assert_eq(ret, cases[i].want, "%s: got %d", cases[i].key, ret);
		cr_assert_eq(b.len, cases[i].len, "%s", cases[i].key);
	}
	cr_assert_eq(vectors_parse_hex_line(&b, text, strlen(text), "KEY", "text"), 0);
	cr_assert_eq(b.data[0], 0x0a);
	cr_assert_eq(b.data[1], 0x0b);
}
