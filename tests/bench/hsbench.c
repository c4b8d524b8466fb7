/*
 * hsbench: what one core can do with saltun's crypto, through the very
 * functions the daemon calls (src/noise.h, src/wire.h), with no sockets.
 *
 *   1. Full handshakes, both sides on this one core, in the daemon's order:
 *        initiator: noise_handshake_init, TAI64N + params payload,
 *                   noise_write_msg1, mac1                     (initiation)
 *        responder: mac1 check, noise_handshake_init, noise_read_msg1,
 *                   psk, noise_write_msg2, noise_split, mac1   (response)
 *        initiator: mac1 check, noise_read_msg2, noise_split
 *      once as the daemon does it (noise_handshake_init_precomputed with
 *      its cached static public key and, per peer, DH(s, rs) on both
 *      sides: noise_read_msg1_cached on the responder), and once with
 *      nothing cached (noise_handshake_init, noise_read_msg1), for
 *      comparison.  Each handshake's keys are cross-checked, so a broken
 *      noise.c fails the benchmark instead of timing garbage.
 *   2. One X25519 multiplication, variable and fixed base: the units that
 *      bound the handshake.
 *   3. Data-path AEAD: noise_encrypt / noise_decrypt of 1420-byte (a full
 *      MTU packet) and 64-byte packets, in place, as session_seal does.
 *
 * Figures are printed, never asserted (DESIGN §5).  Exit 0, or 1 when a
 * handshake fails or its keys disagree, 2 on a usage error.
 *
 *   hsbench [--seconds N] [--json]
 *
 * --seconds is the duration of EACH measurement (default 2); --json prints
 * one JSON object on stdout instead of the text table.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "noise.h"
#include "util.h"
#include "wire.h"

/* Data-path packet sizes: a full 1420-byte MTU packet (the default MTU on a
 * 1500-byte underlay) and a minimum-size one (per-packet overhead). */
static const size_t bench_sizes[] = { 1420, 64 };

/* AEAD calls between two clock reads: a 64-byte seal takes ~100 ns, so the
 * clock must not be read on every call. */
#define BENCH_AEAD_BATCH 256

struct bench_identity {
	uint8_t priv[NOISE_KEY_LEN];
	uint8_t pub[NOISE_PUBLIC_LEN];
	uint8_t mac1_key[32];   /* key of the mac1 on messages sent TO this side */
};

struct bench_pair {
	struct bench_identity ini, resp;
	uint8_t psk[NOISE_KEY_LEN];
	uint8_t ss[NOISE_KEY_LEN];     /* DH(s, rs), the same on both sides */
};

struct hs_result {
	uint64_t count;
	double seconds;
	/* Wall time spent in each of the three steps (ns, summed). */
	uint64_t ns_initiation, ns_response, ns_finish;
};

struct aead_result {
	size_t bytes;
	uint64_t packets;
	double seconds;
};

struct bench_report {
	double seconds;
	struct hs_result daemon, uncached;
	double x25519_us, x25519_base_us;
	struct aead_result enc[ARRAY_SIZE(bench_sizes)], dec[ARRAY_SIZE(bench_sizes)];
};

static void bench_identity_make(struct bench_identity *id)
{
	crypto_box_keypair(id->pub, id->priv);
	wire_mac1_key(id->mac1_key, id->pub);
}

static int bench_pair_make(struct bench_pair *p)
{
	bench_identity_make(&p->ini);
	bench_identity_make(&p->resp);
	randombytes_buf(p->psk, sizeof(p->psk));
	return noise_dh(p->ss, p->ini.priv, p->resp.pub) ? 0 : -EINVAL;
}

static void bench_pair_clear(struct bench_pair *p)
{
	sodium_memzero(p, sizeof(*p));
}

static double bench_ns_to_s(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* The responder's ss cache (daemon_ss_lookup): one known peer. */
static const uint8_t *bench_ss_lookup(void *ctx, const uint8_t rs[NOISE_PUBLIC_LEN])
{
	const struct bench_pair *p = ctx;

	return sodium_memcmp(rs, p->ini.pub, NOISE_PUBLIC_LEN) == 0 ? p->ss : NULL;
}

static int bench_hs_init(struct noise_handshake *hs, enum noise_role role, bool precomputed,
			 const struct bench_identity *self, const struct bench_pair *p)
{
	const uint8_t *prologue = (const uint8_t *)WIRE_PROLOGUE;
	size_t prologue_len = strlen(WIRE_PROLOGUE);
	const uint8_t *rs = role == NOISE_INITIATOR ? p->resp.pub : NULL;
	const uint8_t *psk = role == NOISE_INITIATOR ? p->psk : NULL;

	if (!precomputed)
		return noise_handshake_init(hs, role, true, prologue, prologue_len, self->priv, rs,
					    psk);
	return noise_handshake_init_precomputed(hs, role, true, prologue, prologue_len, self->priv,
						self->pub, rs,
						role == NOISE_INITIATOR ? p->ss : NULL, psk);
}

/*
 * One complete handshake; the three steps' wall times are added to r.
 * 0, or -errno from the step that failed (-EKEYREJECTED when it completed
 * but the two sides derived different keys).
 */
static int bench_handshake_once(const struct bench_pair *p, bool precomputed, struct hs_result *r)
{
	struct noise_handshake ini, resp;
	struct noise_keys ki, kr;
	struct wire_initiation m1;
	struct wire_response m2;
	struct wire_params params = { .version = WIRE_PROTOCOL_VERSION, .type = 0, .mtu = 1420 };
	uint8_t payload[WIRE_INIT_PAYLOAD_LEN], got[WIRE_INIT_PAYLOAD_LEN];
	struct timespec wall;
	uint64_t t0, t1, t2, t3;
	int rc;

	t0 = util_now_ns();
	/* -> e, es, s, ss  (initiator: session_send_initiation) */
	rc = bench_hs_init(&ini, NOISE_INITIATOR, precomputed, &p->ini, p);
	if (rc < 0)
		goto out;
	clock_gettime(CLOCK_REALTIME, &wall);
	wire_tai64n(payload, (uint64_t)wall.tv_sec, (uint32_t)wall.tv_nsec);
	wire_params_encode(payload + WIRE_TAI64N_LEN, &params);
	memset(&m1, 0, sizeof(m1));
	wire_header_set(m1.header, WIRE_INITIATION);
	wire_put_le32(m1.sender, 1);
	rc = noise_write_msg1(&ini, m1.noise, payload, sizeof(payload));
	if (rc < 0)
		goto out;
	wire_macs_add((uint8_t *)&m1, sizeof(m1), p->resp.mac1_key, NULL);
	t1 = util_now_ns();

	/* <- e, ee, se, psk  (responder: daemon_consume_initiation and
	 * session_consume_initiation) */
	rc = -EBADMSG;
	if (wire_classify((const uint8_t *)&m1, sizeof(m1)) != WIRE_INITIATION ||
	    !wire_mac1_valid((const uint8_t *)&m1, sizeof(m1), p->resp.mac1_key))
		goto out;
	rc = bench_hs_init(&resp, NOISE_RESPONDER, precomputed, &p->resp, p);
	if (rc < 0)
		goto out;
	rc = precomputed ? noise_read_msg1_cached(&resp, got, m1.noise, sizeof(m1.noise),
						  bench_ss_lookup, (void *)p)
			 : noise_read_msg1(&resp, got, m1.noise, sizeof(m1.noise));
	if (rc < 0)
		goto out;
	/* The daemon looks the peer up by hs.rs here, then takes its psk. */
	rc = -EKEYREJECTED;
	if (sodium_memcmp(resp.rs, p->ini.pub, NOISE_PUBLIC_LEN) != 0 ||
	    memcmp(got, payload, sizeof(got)) != 0)
		goto out;
	noise_handshake_set_psk(&resp, p->psk);
	memset(&m2, 0, sizeof(m2));
	wire_header_set(m2.header, WIRE_RESPONSE);
	wire_put_le32(m2.sender, 2);
	wire_put_le32(m2.receiver, 1);
	rc = noise_write_msg2(&resp, m2.noise, NULL, 0);
	if (rc == 0)
		rc = noise_split(&resp, &kr);
	if (rc < 0)
		goto out;
	wire_macs_add((uint8_t *)&m2, sizeof(m2), p->ini.mac1_key, NULL);
	t2 = util_now_ns();

	/* Initiator: daemon_consume (mac1) and session_consume_response. */
	rc = -EBADMSG;
	if (wire_classify((const uint8_t *)&m2, sizeof(m2)) != WIRE_RESPONSE ||
	    !wire_mac1_valid((const uint8_t *)&m2, sizeof(m2), p->ini.mac1_key))
		goto out;
	rc = noise_read_msg2(&ini, NULL, m2.noise, sizeof(m2.noise));
	if (rc == 0)
		rc = noise_split(&ini, &ki);
	if (rc < 0)
		goto out;
	t3 = util_now_ns();

	/* Outside the timed steps: initiator sends with what responder receives. */
	rc = -EKEYREJECTED;
	if (sodium_memcmp(ki.send, kr.recv, NOISE_KEY_LEN) != 0 ||
	    sodium_memcmp(ki.recv, kr.send, NOISE_KEY_LEN) != 0)
		goto out;
	r->ns_initiation += t1 - t0;
	r->ns_response += t2 - t1;
	r->ns_finish += t3 - t2;
	r->count++;
	rc = 0;
out:
	noise_handshake_clear(&ini);
	noise_handshake_clear(&resp);
	sodium_memzero(&ki, sizeof(ki));
	sodium_memzero(&kr, sizeof(kr));
	return rc;
}

static int bench_handshakes(const struct bench_pair *p, bool precomputed, double seconds,
			    struct hs_result *r)
{
	uint64_t start = util_now_ns(), limit = (uint64_t)(seconds * 1e9), now;
	int rc;

	memset(r, 0, sizeof(*r));
	do {
		rc = bench_handshake_once(p, precomputed, r);
		if (rc < 0) {
			fprintf(stderr, "hsbench: handshake %llu (%s) failed: %s\n",
				(unsigned long long)r->count, precomputed ? "daemon" : "uncached",
				strerror(-rc));
			return rc;
		}
		now = util_now_ns();
	} while (now - start < limit);
	r->seconds = bench_ns_to_s(now - start);
	return 0;
}

/*
 * Microseconds per X25519 multiplication: variable base (crypto_scalarmult,
 * as noise_dh: every DH) or fixed base (crypto_scalarmult_base: a new
 * ephemeral, or a static public key recomputed by noise_handshake_init).
 */
static double bench_x25519(double seconds, bool fixed_base)
{
	uint8_t priv[32], pub[32], out[32];
	uint64_t start = util_now_ns(), limit = (uint64_t)(seconds * 1e9), now, n = 0;
	int rc;

	crypto_box_keypair(pub, priv);
	do {
		rc = fixed_base ? crypto_scalarmult_base(out, priv) : crypto_scalarmult(out, priv, pub);
		if (rc != 0)
			return -1.0;
		/* Feed the output back: the calls cannot be hoisted or merged. */
		memcpy(priv, out, sizeof(priv));
		n++;
		now = util_now_ns();
	} while (now - start < limit);
	sodium_memzero(priv, sizeof(priv));
	sodium_memzero(out, sizeof(out));
	return (double)(now - start) / 1e3 / (double)n;
}

/*
 * Seal (decrypt == false) or open packets of `len` bytes with the data
 * path's call: in place, counter as nonce, no associated data.  Opening
 * reuses one sealed packet (counter 0) into a second buffer, so every call
 * verifies a real tag; -EBADMSG if one does not.
 */
static int bench_aead(size_t len, bool decrypt, double seconds, struct aead_result *r)
{
	uint8_t key[NOISE_KEY_LEN];
	uint8_t *buf = NULL, *ct = NULL;
	uint64_t start, limit = (uint64_t)(seconds * 1e9), now, n = 0;
	int rc = -ENOMEM;

	/* Header room in front, as in the daemon's tx slots. */
	buf = malloc(WIRE_DATA_HEADER_LEN + len + NOISE_TAG_LEN);
	ct = malloc(len + NOISE_TAG_LEN);
	if (buf == NULL || ct == NULL)
		goto out;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(buf, WIRE_DATA_HEADER_LEN + len + NOISE_TAG_LEN);
	memcpy(ct, buf + WIRE_DATA_HEADER_LEN, len);
	noise_encrypt(ct, ct, len, NULL, 0, 0, key);

	start = util_now_ns();
	do {
		for (unsigned i = 0; i < BENCH_AEAD_BATCH; i++, n++) {
			uint8_t *pt = buf + WIRE_DATA_HEADER_LEN;
			if (!decrypt) {
				noise_encrypt(pt, pt, len, NULL, 0, n, key);
			} else if (noise_decrypt(pt, ct, len + NOISE_TAG_LEN, NULL, 0, 0, key) < 0) {
				rc = -EBADMSG;
				goto out;
			}
		}
		now = util_now_ns();
	} while (now - start < limit);
	r->bytes = len;
	r->packets = n;
	r->seconds = bench_ns_to_s(now - start);
	rc = 0;
out:
	sodium_memzero(key, sizeof(key));
	free(buf);
	free(ct);
	return rc;
}

static double hs_per_s(const struct hs_result *r)
{
	return r->seconds > 0 ? (double)r->count / r->seconds : 0;
}

static double hs_us(const struct hs_result *r, uint64_t ns)
{
	return r->count ? (double)ns / 1e3 / (double)r->count : 0;
}

static double aead_pps(const struct aead_result *r)
{
	return r->seconds > 0 ? (double)r->packets / r->seconds : 0;
}

/* Gbit/s of packet bytes (plaintext; the 32 bytes of header and tag are
 * overhead, not goodput). */
static double aead_gbps(const struct aead_result *r)
{
	return aead_pps(r) * (double)r->bytes * 8 / 1e9;
}

static void report_text(const struct bench_report *b)
{
	const struct hs_result *v[2] = { &b->daemon, &b->uncached };
	const char *name[2] = { "as the daemon does them (cached s_pub and DH(s,rs), both sides)",
				"with nothing cached (noise_handshake_init, noise_read_msg1)" };

	printf("hsbench: one core, %.1f s per figure, libsodium %s%s\n", b->seconds,
	       sodium_version_string(), sodium_runtime_has_avx2() ? ", AVX2" : "");
	printf("X25519: %.1f us per DH (variable base), %.1f us per key generation (fixed base)\n",
	       b->x25519_us, b->x25519_base_us);
	for (int i = 0; i < 2; i++) {
		printf("handshakes %s:\n", name[i]);
		printf("  %.0f handshakes/s (both sides on one core; %llu in %.2f s)\n",
		       hs_per_s(v[i]), (unsigned long long)v[i]->count, v[i]->seconds);
		printf("  initiation %.1f us, response %.1f us, finish %.1f us\n",
		       hs_us(v[i], v[i]->ns_initiation), hs_us(v[i], v[i]->ns_response),
		       hs_us(v[i], v[i]->ns_finish));
		printf("  a responder core alone: %.0f initiations answered/s\n",
		       v[i]->ns_response ? 1e9 * (double)v[i]->count / (double)v[i]->ns_response : 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bench_sizes); i++) {
		printf("noise_encrypt %4zu B: %10.0f packets/s %6.2f Gbit/s | noise_decrypt: %10.0f packets/s %6.2f Gbit/s\n",
		       b->enc[i].bytes, aead_pps(&b->enc[i]), aead_gbps(&b->enc[i]),
		       aead_pps(&b->dec[i]), aead_gbps(&b->dec[i]));
	}
}

static void report_json_hs(const char *key, const struct hs_result *r)
{
	printf("  \"%s\": {\"handshakes_per_s\": %.1f, \"count\": %llu, \"seconds\": %.3f, "
	       "\"initiation_us\": %.2f, \"response_us\": %.2f, \"finish_us\": %.2f, "
	       "\"responder_per_s\": %.1f},\n",
	       key, hs_per_s(r), (unsigned long long)r->count, r->seconds,
	       hs_us(r, r->ns_initiation), hs_us(r, r->ns_response), hs_us(r, r->ns_finish),
	       r->ns_response ? 1e9 * (double)r->count / (double)r->ns_response : 0);
}

static void report_json_aead(const char *key, const struct aead_result *r, size_t n, bool last)
{
	printf("  \"%s\": [", key);
	for (size_t i = 0; i < n; i++)
		printf("%s{\"bytes\": %zu, \"packets_per_s\": %.1f, \"gbit_per_s\": %.3f}",
		       i ? ", " : "", r[i].bytes, aead_pps(&r[i]), aead_gbps(&r[i]));
	printf("]%s\n", last ? "" : ",");
}

static void report_json(const struct bench_report *b)
{
	printf("{\n");
	printf("  \"seconds_per_figure\": %.3f,\n", b->seconds);
	printf("  \"libsodium\": \"%s\",\n", sodium_version_string());
	printf("  \"avx2\": %s,\n", sodium_runtime_has_avx2() ? "true" : "false");
	printf("  \"x25519_us\": %.2f,\n", b->x25519_us);
	printf("  \"x25519_base_us\": %.2f,\n", b->x25519_base_us);
	printf("  \"handshakes_per_s\": %.1f,\n", hs_per_s(&b->daemon));
	report_json_hs("handshake", &b->daemon);
	report_json_hs("handshake_uncached", &b->uncached);
	report_json_aead("encrypt", b->enc, ARRAY_SIZE(bench_sizes), false);
	report_json_aead("decrypt", b->dec, ARRAY_SIZE(bench_sizes), true);
	printf("}\n");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hsbench [--seconds N] [--json]\n"
		   "  --seconds N  duration of each measurement (default 2, 0.01 .. 3600)\n"
		   "  --json       one JSON object on stdout instead of text\n");
}

/* Strict: the whole string is a number in [0.01, 3600]. */
static bool parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0.01 && v <= 3600))
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_report b;
	struct bench_pair pair;
	bool json = false;
	int c, ret = 1;

	memset(&b, 0, sizeof(b));
	b.seconds = 2.0;
	while ((c = getopt_long(argc, argv, "s:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!parse_seconds(optarg, &b.seconds)) {
				fprintf(stderr, "hsbench: --seconds: expected a number from 0.01 to 3600, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hsbench: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "hsbench: sodium_init failed\n");
		return 1;
	}
	if (bench_pair_make(&pair) < 0) {
		fprintf(stderr, "hsbench: generated a low-order key pair (cannot happen)\n");
		goto out;
	}

	if (bench_handshakes(&pair, true, b.seconds, &b.daemon) < 0 ||
	    bench_handshakes(&pair, false, b.seconds, &b.uncached) < 0)
		goto out;
	b.x25519_us = bench_x25519(b.seconds / 4, false);
	b.x25519_base_us = bench_x25519(b.seconds / 4, true);
	if (b.x25519_us < 0 || b.x25519_base_us < 0) {
		fprintf(stderr, "hsbench: X25519 failed\n");
		goto out;
	}
	for (size_t i = 0; i < ARRAY_SIZE(bench_sizes); i++) {
		int rc = bench_aead(bench_sizes[i], false, b.seconds, &b.enc[i]);
		if (rc == 0)
			rc = bench_aead(bench_sizes[i], true, b.seconds, &b.dec[i]);
		if (rc < 0) {
			fprintf(stderr, "hsbench: AEAD of %zu bytes: %s\n", bench_sizes[i],
				strerror(-rc));
			goto out;
		}
	}
	if (json)
		report_json(&b);
	else
		report_text(&b);
	ret = 0;
out:
	bench_pair_clear(&pair);
	return ret;
}
