/*
 * Keys: base64 both ways, RFC 7748 §6.1 known answers, generation, and
 * loading from inline values and files (permissions included).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "key.h"

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
}

TestSuite(key, .init = setup);

static void hex_to_bin(uint8_t out[KEY_LEN], const char *hex)
{
	size_t len = 0;
	cr_assert_eq(sodium_hex2bin(out, KEY_LEN, hex, strlen(hex), NULL, &len, NULL), 0);
	cr_assert_eq(len, KEY_LEN);
}

/* RFC 7748 §6.1. */
#define ALICE_PRIV "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
#define ALICE_PUB "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
#define BOB_PRIV "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
#define BOB_PUB "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
#define SHARED "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"

/* The same keys in base64, as coreutils' base64(1) writes them. */
#define ALICE_PRIV_B64 "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
#define ALICE_PUB_B64 "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="

Test(key, base64_known_answers)
{
	static const struct {
		const char *hex;
		const char *b64;
	} cases[] = {
		{ "0000000000000000000000000000000000000000000000000000000000000000",
		  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
		{ ALICE_PRIV, ALICE_PRIV_B64 },
		{ ALICE_PUB, ALICE_PUB_B64 },
		{ BOB_PUB, "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t key[KEY_LEN], back[KEY_LEN];
		char b64[KEY_B64_LEN + 1];

		hex_to_bin(key, cases[i].hex);
		key_to_base64(b64, key);
		cr_expect_str_eq(b64, cases[i].b64, "case %zu", i);
		cr_expect_eq(strlen(b64), KEY_B64_LEN);
		cr_expect(key_from_base64(back, cases[i].b64), "case %zu", i);
		cr_expect_arr_eq(back, key, KEY_LEN, "case %zu", i);
	}
}

Test(key, base64_round_trip_random)
{
	for (int i = 0; i < 256; i++) {
		uint8_t key[KEY_LEN], back[KEY_LEN];
		char b64[KEY_B64_LEN + 1];

		randombytes_buf(key, sizeof(key));
		key_to_base64(b64, key);
		cr_assert_eq(strlen(b64), KEY_B64_LEN);
		cr_assert_eq(b64[KEY_B64_LEN - 1], '=');
		cr_assert(key_from_base64(back, b64), "%s", b64);
		cr_assert_arr_eq(back, key, KEY_LEN);
	}
}

Test(key, base64_surrounding_whitespace)
{
	uint8_t key[KEY_LEN], want[KEY_LEN];

	hex_to_bin(want, ALICE_PUB);
	cr_assert(key_from_base64(key, "  " ALICE_PUB_B64 "\n"));
	cr_expect_arr_eq(key, want, KEY_LEN);
	cr_assert(key_from_base64(key, "\t" ALICE_PUB_B64 "\r\n"));
	cr_expect_arr_eq(key, want, KEY_LEN);
}

Test(key, base64_bad_inputs)
{
	static const char *const bad[] = {
		"",
		"abc",
		"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo",       /* 43: pad missing */
		"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo==",     /* 45 */
		"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==",      /* 31 bytes */
		"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=AAAA", /* trailing data */
		"hSDwCYkwp1R0i33ctD73Wg2*Og0mOBr066SpjqqbTmo=",      /* not base64 */
		"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=",      /* URL-safe alphabet */
		"hSDwCYkwp1R0i33ctD73Wg2/Og0m OBr066SpjqqbTmo=",     /* space inside */
		"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp=",      /* non-canonical: bits past the key */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", /* 44 bytes */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t key[KEY_LEN];

		memset(key, 0xAA, sizeof(key));
		cr_expect_not(key_from_base64(key, bad[i]), "accepted '%s'", bad[i]);
		cr_expect(sodium_is_zero(key, KEY_LEN), "not wiped after '%s'", bad[i]);
	}
}

Test(key, rfc7748_public_keys)
{
	static const struct {
		const char *priv, *pub;
	} cases[] = {
		{ ALICE_PRIV, ALICE_PUB },
		{ BOB_PRIV, BOB_PUB },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t priv[KEY_LEN], pub[KEY_LEN], want[KEY_LEN];

		hex_to_bin(priv, cases[i].priv);
		hex_to_bin(want, cases[i].pub);
		cr_assert_eq(key_public_from_private(pub, priv), 0);
		cr_expect_arr_eq(pub, want, KEY_LEN, "case %zu", i);
	}
}

Test(key, rfc7748_shared_secret)
{
	uint8_t alice_priv[KEY_LEN], bob_priv[KEY_LEN], alice_pub[KEY_LEN], bob_pub[KEY_LEN];
	uint8_t k1[KEY_LEN], k2[KEY_LEN], want[KEY_LEN];

	hex_to_bin(alice_priv, ALICE_PRIV);
	hex_to_bin(bob_priv, BOB_PRIV);
	hex_to_bin(want, SHARED);
	cr_assert_eq(key_public_from_private(alice_pub, alice_priv), 0);
	cr_assert_eq(key_public_from_private(bob_pub, bob_priv), 0);
	cr_assert_eq(crypto_scalarmult(k1, alice_priv, bob_pub), 0);
	cr_assert_eq(crypto_scalarmult(k2, bob_priv, alice_pub), 0);
	cr_expect_arr_eq(k1, want, KEY_LEN);
	cr_expect_arr_eq(k2, want, KEY_LEN);
}

Test(key, generate_private_is_clamped_and_random)
{
	uint8_t first[KEY_LEN];

	key_generate_private(first);
	for (int i = 0; i < 64; i++) {
		uint8_t k[KEY_LEN], pub[KEY_LEN];

		key_generate_private(k);
		cr_expect_eq(k[0] & 7, 0);
		cr_expect_eq(k[31] & 0x80, 0);
		cr_expect_eq(k[31] & 0x40, 0x40);
		cr_expect_neq(memcmp(k, first, KEY_LEN), 0);
		cr_expect_eq(key_public_from_private(pub, k), 0);
		cr_expect_not(sodium_is_zero(pub, KEY_LEN));
	}
}

Test(key, generate_psk_is_random)
{
	uint8_t a[KEY_LEN], b[KEY_LEN];

	key_generate_psk(a);
	key_generate_psk(b);
	cr_expect_not(sodium_is_zero(a, KEY_LEN));
	cr_expect_neq(memcmp(a, b, KEY_LEN), 0);
}

Test(key, value_is_path)
{
	static const struct {
		const char *value;
		bool path;
	} cases[] = {
		{ "/etc/saltun/private.key", true },
		{ "./private.key", true },
		{ "../keys/a", true },
		{ ".hidden", true },
		{ "keys/a", true },
		{ "private.key", false },               /* neither: bad inline base64 */
		{ ALICE_PUB_B64, false },               /* base64 with a '/' is a key */
		{ "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=", false },
		{ "abc", false },
		/* A truncated paste with a '/' is a bad key, not a file name. */
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm==", false },
		{ "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo", false },
		/* One key in 64 starts with '/': a whole key is a key, not a path. */
		{ "/p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=", false },
		{ "/etc/saltun/keys/a-very-long-file-name.key", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(key_value_is_path(cases[i].value), cases[i].path, "'%s'",
			     cases[i].value);
}

/* A fresh temporary directory per test, removed with its files. */
static char tmpdir[64];

static void tmp_setup(void)
{
	setup();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/saltun-test-key.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(key, load_inline)
{
	uint8_t key[KEY_LEN], want[KEY_LEN];
	char why[128] = "unchanged";
	bool readable = true;

	hex_to_bin(want, ALICE_PUB);
	cr_assert_eq(key_load(key, ALICE_PUB_B64, &readable, why, sizeof(why)), 0);
	cr_expect_arr_eq(key, want, KEY_LEN);
	cr_expect_not(readable);

	memset(key, 0xAA, sizeof(key));
	cr_assert_eq(key_load(key, "abc", &readable, why, sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "expected 32-byte base64 key (44 characters)");
	cr_expect(sodium_is_zero(key, KEY_LEN));
	/* The flag pointer is optional. */
	cr_assert_eq(key_load(key, ALICE_PUB_B64, NULL, why, sizeof(why)), 0);
}

Test(key, load_file_permissions, .init = tmp_setup, .fini = tmp_teardown)
{
	static const struct {
		mode_t mode;
		bool readable;
	} cases[] = {
		{ 0600, false }, { 0400, false }, { 0640, true },
		{ 0604, true },  { 0644, true },  { 0700, false },
	};
	uint8_t key[KEY_LEN], want[KEY_LEN];
	char path[128], why[128];

	hex_to_bin(want, ALICE_PRIV);
	snprintf(path, sizeof(path), "%s/private.key", tmpdir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool readable = !cases[i].readable;

		write_file(path, ALICE_PRIV_B64 "\n", cases[i].mode);
		cr_assert_eq(key_load(key, path, &readable, why, sizeof(why)), 0, "%s", why);
		cr_expect_arr_eq(key, want, KEY_LEN);
		cr_expect_eq(readable, cases[i].readable, "mode %o", (unsigned)cases[i].mode);
	}
}

Test(key, load_file_errors, .init = tmp_setup, .fini = tmp_teardown)
{
	static const struct {
		const char *file;    /* NULL: do not create */
		const char *content;
		int ret;
		const char *why;
	} cases[] = {
		{ NULL, NULL, -ENOENT, "cannot open: No such file or directory" },
		{ "short.key", "abc\n", -EINVAL, "expected 32-byte base64 key (44 characters)" },
		{ "empty.key", "", -EINVAL, "expected 32-byte base64 key (44 characters)" },
		{ "two.key", ALICE_PRIV_B64 "\n" ALICE_PRIV_B64 "\n", -EINVAL,
		  "expected 32-byte base64 key (44 characters)" },
	};
	uint8_t key[KEY_LEN];
	char path[160], why[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, cases[i].file ? cases[i].file : "missing");
		if (cases[i].file)
			write_file(path, cases[i].content, 0600);
		memset(key, 0xAA, sizeof(key));
		cr_expect_eq(key_load(key, path, NULL, why, sizeof(why)), cases[i].ret, "case %zu", i);
		cr_expect_str_eq(why, cases[i].why, "case %zu", i);
		cr_expect(sodium_is_zero(key, KEY_LEN), "case %zu", i);
	}

	/* A directory opens, but is no key file. */
	cr_expect_eq(key_load(key, tmpdir, NULL, why, sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "not a regular file");
}

Test(key, load_file_unreadable, .init = tmp_setup, .fini = tmp_teardown)
{
	uint8_t key[KEY_LEN];
	char path[160], why[128];

	if (geteuid() == 0)
		cr_skip_test("root reads any file");
	snprintf(path, sizeof(path), "%s/private.key", tmpdir);
	write_file(path, ALICE_PRIV_B64 "\n", 0000);
	cr_expect_eq(key_load(key, path, NULL, why, sizeof(why)), -EACCES);
	cr_expect_str_eq(why, "cannot open: Permission denied");
}

Test(key, load_relative_path, .init = tmp_setup, .fini = tmp_teardown)
{
	uint8_t key[KEY_LEN], want[KEY_LEN];
	char path[160], why[128], cwd[4096];

	hex_to_bin(want, ALICE_PRIV);
	snprintf(path, sizeof(path), "%s/k", tmpdir);
	write_file(path, "  " ALICE_PRIV_B64 "  \n\n", 0600);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(tmpdir), 0);
	cr_expect_eq(key_load(key, "./k", NULL, why, sizeof(why)), 0, "%s", why);
	cr_expect_arr_eq(key, want, KEY_LEN);
	cr_assert_eq(chdir(cwd), 0);
}
