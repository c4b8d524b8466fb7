/*
 * libFuzzer target for the wire helpers: whatever arrives from the network
 * goes through wire_classify, the mac checks, cookie-reply consumption and
 * the parameter decoder (and, read as counters, the replay window).  Besides
 * "no crash, no sanitizer report", it checks invariants that must hold for
 * every input and aborts when one breaks:
 *
 *   - classify returns 0 or the header's own type, and only for a length
 *     that type allows;
 *   - a message that wire_macs_add signed passes both mac checks;
 *   - a cookie reply we create for a classified handshake message is
 *     consumed by the peer's key and that message's mac1, and yields the
 *     cookie the checker computes; any other reply either fails with the
 *     output wiped or succeeds;
 *   - params decode then encode gives the same four bytes;
 *   - wire_tai64n_after is a strict order (never both a > b and b > a);
 *   - the replay window never accepts a counter twice, nor one at or past
 *     the reject limit, nor one more than REPLAY_WINDOW below its top.
 *
 * Build and run: see README in this directory.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "replay.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* Fixed identity: fuzzing is about the parsers, not about the keys. */
static void fuzz_fixed_public(uint8_t pub[32])
{
	for (int i = 0; i < 32; i++)
		pub[i] = (uint8_t)(0x20 + i);
}

static void fuzz_classify(const uint8_t *data, size_t size)
{
	enum wire_type t = wire_classify(data, size);

	switch (t) {
	case WIRE_INVALID:
		break;
	case WIRE_INITIATION:
		CHECK(size == WIRE_INITIATION_LEN);
		break;
	case WIRE_RESPONSE:
		CHECK(size == WIRE_RESPONSE_LEN);
		break;
	case WIRE_COOKIE_REPLY:
		CHECK(size == WIRE_COOKIE_REPLY_LEN);
		break;
	case WIRE_DATA:
		CHECK(size >= WIRE_DATA_MIN_LEN && size <= WIRE_MAX_MESSAGE);
		break;
	default:
		abort();
	}
	if (t != WIRE_INVALID)
		CHECK(data[0] == (uint8_t)t && data[1] == 0 && data[2] == 0 && data[3] == 0);
}

static void fuzz_macs(const uint8_t *data, size_t size, const uint8_t mac1_key[32])
{
	static uint8_t copy[WIRE_MAX_MESSAGE];
	uint8_t cookie[WIRE_COOKIE_LEN];
	size_t len = size < sizeof(copy) ? size : sizeof(copy);
	bool v1, v2;

	/* Any length, including the short ones the predicates must refuse. */
	v1 = wire_mac1_valid(data, size, mac1_key);
	memset(cookie, 0x5a, sizeof(cookie));
	v2 = wire_mac2_valid(data, size, cookie);
	if (size < 2 * WIRE_MAC_LEN)
		CHECK(!v1 && !v2);

	if (len < 2 * WIRE_MAC_LEN)
		return;
	/* Signed by us, valid for us; with no cookie, mac2 is zeros. */
	memcpy(copy, data, len);
	wire_macs_add(copy, len, mac1_key, NULL);
	CHECK(wire_mac1_valid(copy, len, mac1_key));
	CHECK(sodium_is_zero(copy + len - WIRE_MAC_LEN, WIRE_MAC_LEN));
	memcpy(cookie, data, sizeof(cookie));
	wire_macs_add(copy, len, mac1_key, cookie);
	CHECK(wire_mac1_valid(copy, len, mac1_key));
	CHECK(wire_mac2_valid(copy, len, cookie));
}

static void fuzz_cookie(const uint8_t *data, size_t size, enum wire_type t)
{
	struct wire_cookie_checker cc;
	struct wire_cookie_reply reply;
	uint8_t pub[32], peer_key[32], cookie[WIRE_COOKIE_LEN], want[WIRE_COOKIE_LEN];
	uint8_t mac1[WIRE_MAC_LEN];
	uint64_t now = 0;
	int ret;

	fuzz_fixed_public(pub);
	wire_cookie_checker_init(&cc, pub);
	wire_cookie_key(peer_key, pub);
	if (size >= 8)
		now = wire_get_le64(data + size - 8);

	/* Any 64 bytes taken as a reply, the mac1 from the 16 after them. */
	if (size >= WIRE_COOKIE_REPLY_LEN) {
		memcpy(&reply, data, sizeof(reply));
		memset(mac1, 0, sizeof(mac1));
		memcpy(mac1, data + WIRE_COOKIE_REPLY_LEN,
		       size - WIRE_COOKIE_REPLY_LEN < sizeof(mac1) ?
		       size - WIRE_COOKIE_REPLY_LEN : sizeof(mac1));
		memset(cookie, 0xcc, sizeof(cookie));
		ret = wire_cookie_reply_consume(cookie, &reply, peer_key, mac1);
		CHECK(ret == 0 || ret == -EBADMSG);
		if (ret != 0)
			CHECK(sodium_is_zero(cookie, sizeof(cookie)));
	}

	/* A reply to a well-formed handshake message, from the input as source
	 * address: the round trip must succeed and give the checker's cookie. */
	if (t == WIRE_INITIATION || t == WIRE_RESPONSE) {
		size_t src_len = size > 18 ? 18 : size;

		wire_cookie_reply_create(&cc, &reply, wire_get_le32(data + 4), data, size,
					 data, src_len, now);
		CHECK(wire_classify((const uint8_t *)&reply, sizeof(reply)) == WIRE_COOKIE_REPLY);
		CHECK(wire_get_le32(reply.receiver) == wire_get_le32(data + 4));
		ret = wire_cookie_reply_consume(cookie, &reply, peer_key,
						data + size - 2 * WIRE_MAC_LEN);
		CHECK(ret == 0);
		wire_cookie_make(&cc, want, data, src_len, now);
		CHECK(sodium_memcmp(cookie, want, sizeof(want)) == 0);
	}
	wire_cookie_checker_clear(&cc);
}

static void fuzz_params_tai(const uint8_t *data, size_t size)
{
	struct wire_params p;
	uint8_t back[4];

	if (size >= 4) {
		wire_params_decode(&p, data);
		wire_params_encode(back, &p);
		CHECK(memcmp(back, data, 4) == 0);
	}
	if (size >= 2 * WIRE_TAI64N_LEN) {
		const uint8_t *a = data, *b = data + WIRE_TAI64N_LEN;

		CHECK(!(wire_tai64n_after(a, b) && wire_tai64n_after(b, a)));
		CHECK(!wire_tai64n_after(a, a));
	}
}

/* The same bytes as a stream of replay-window operations: 3 bytes each, an
 * opcode and a 16-bit distance from the greatest counter accepted so far. */
static void fuzz_replay(const uint8_t *data, size_t size)
{
	struct replay r;
	uint64_t max = 0;

	replay_init(&r);
	for (size_t i = 0; i + 3 <= size; i += 3) {
		uint8_t op = data[i];
		uint64_t v = (uint64_t)data[i + 1] | (uint64_t)data[i + 2] << 8, c;
		bool fresh;

		switch (op & 3) {
		case 0:
			c = max + v;
			break;
		case 1:
			c = max > v ? max - v : 0;
			break;
		case 2: /* around the window's edge */
			c = max > REPLAY_WINDOW + (v & 7) ? max - REPLAY_WINDOW - (v & 7) + 4 : v & 7;
			break;
		default: /* anywhere, up to the reject limit and beyond */
			c = v << (op >> 2);
			if (op >= 0xfc)
				c = REPLAY_REJECT_AFTER_MESSAGES - 4 + (v & 7);
			break;
		}
		fresh = replay_check(&r, c);
		if (c >= REPLAY_REJECT_AFTER_MESSAGES)
			CHECK(!fresh);
		if (fresh) {
			CHECK(!replay_check(&r, c)); /* never accepted twice */
			if (c > max)
				max = c;
		}
		if (max >= REPLAY_WINDOW + 1)
			CHECK(!replay_check(&r, max - REPLAY_WINDOW - 1)); /* too old */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pub[32], mac1_key[32];

	if (sodium_init() < 0)
		abort();
	fuzz_fixed_public(pub);
	wire_mac1_key(mac1_key, pub);

	fuzz_classify(data, size);
	fuzz_macs(data, size, mac1_key);
	fuzz_cookie(data, size, wire_classify(data, size));
	fuzz_params_tai(data, size);
	fuzz_replay(data, size);
	return 0;
}
