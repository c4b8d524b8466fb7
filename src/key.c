/*
 * Keys: 32-byte X25519 keys and preshared keys in standard base64, the
 * form WireGuard users already know.  libsodium is the only crypto; every
 * buffer that held key material is wiped before it goes out of scope.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "key.h"

/* A key file holds 44 characters and a newline; anything much longer is
 * not a key file, and we never read more than this. */
#define KEY_FILE_MAX 256

_Static_assert(sodium_base64_ENCODED_LEN(KEY_LEN, sodium_base64_VARIANT_ORIGINAL) ==
		       KEY_B64_LEN + 1,
	       "KEY_B64_LEN must match libsodium's encoded length");

static bool key_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void key_to_base64(char out[KEY_B64_LEN + 1], const uint8_t key[KEY_LEN])
{
	sodium_bin2base64(out, KEY_B64_LEN + 1, key, KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

bool key_from_base64(uint8_t out[KEY_LEN], const char *b64)
{
	const char *start = b64, *end;
	const char *b64_end = NULL;
	size_t bin_len = 0;

	while (key_is_space(*start))
		start++;
	end = start + strlen(start);
	while (end > start && key_is_space(end[-1]))
		end--;
	/* Exactly 44 characters: libsodium would otherwise accept a prefix
	 * and report where it stopped; we want all or nothing. */
	if ((size_t)(end - start) != KEY_B64_LEN)
		goto fail;
	if (sodium_base642bin(out, KEY_LEN, start, KEY_B64_LEN, NULL, &bin_len, &b64_end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bin_len != KEY_LEN || b64_end != end)
		goto fail;
	return true;

fail:
	sodium_memzero(out, KEY_LEN);
	return false;
}

void key_generate_private(uint8_t out[KEY_LEN])
{
	randombytes_buf(out, KEY_LEN);
	/* RFC 7748 §5: clear the 3 low bits (cofactor 8), clear bit 255 and
	 * set bit 254, so the stored key is already the scalar X25519 uses. */
	out[0] &= 248;
	out[31] &= 127;
	out[31] |= 64;
}

void key_generate_psk(uint8_t out[KEY_LEN])
{
	randombytes_buf(out, KEY_LEN);
}

int key_public_from_private(uint8_t pub[KEY_LEN], const uint8_t priv[KEY_LEN])
{
	/* libsodium clamps a copy of priv itself, so unclamped keys (RFC 7748
	 * test vectors, other tools' keys) give the same public key. */
	if (crypto_scalarmult_curve25519_base(pub, priv) != 0 || sodium_is_zero(pub, KEY_LEN)) {
		sodium_memzero(pub, KEY_LEN);
		return -EINVAL;
	}
	return 0;
}

/* Long enough and made of base64 characters only: meant as a key, even if
 * it is a broken one (a truncated paste must be reported as a bad key, not
 * as a missing file). */
static bool key_looks_like_base64(const char *value)
{
	size_t len = strlen(value);

	if (len < KEY_B64_LEN - 4)
		return false;
	for (const char *p = value; *p; p++) {
		char c = *p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

bool key_value_is_path(const char *value)
{
	uint8_t probe[KEY_LEN];
	bool is_key;

	/* '/' is a base64 character: half of all keys contain one, and one in
	 * 64 starts with it.  So a value that decodes as a whole 32-byte key
	 * is a key; otherwise one that starts like a path ('/', '.') is a
	 * path; any other is a path only if it holds a '/' and cannot be
	 * meant as base64. */
	is_key = key_from_base64(probe, value);
	sodium_memzero(probe, sizeof(probe));
	if (is_key)
		return false;
	if (value[0] == '/' || value[0] == '.')
		return true;
	return strchr(value, '/') != NULL && !key_looks_like_base64(value);
}

static int key_load_file(uint8_t out[KEY_LEN], const char *path, bool *group_other_readable,
			 char *why, size_t whylen)
{
	char buf[KEY_FILE_MAX + 1];
	struct stat st;
	size_t len = 0;
	int fd, ret;

	/* O_NONBLOCK: a FIFO given by mistake must not hang the load. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, whylen, "cannot open: %s", strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) != 0) {
		ret = -errno;
		snprintf(why, whylen, "cannot stat: %s", strerror(-ret));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(why, whylen, "not a regular file");
		goto out_close;
	}
	if (group_other_readable)
		*group_other_readable = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;

	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snprintf(why, whylen, "cannot read: %s", strerror(-ret));
			goto out_wipe;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	/* A NUL inside, or more than KEY_FILE_MAX bytes, cannot be a key. */
	if (strlen(buf) != len || !key_from_base64(out, buf)) {
		ret = -EINVAL;
		snprintf(why, whylen, "expected 32-byte base64 key (%d characters)", KEY_B64_LEN);
		goto out_wipe;
	}
	ret = 0;

out_wipe:
	sodium_memzero(buf, sizeof(buf));
out_close:
	close(fd);
	return ret;
}

int key_load(uint8_t out[KEY_LEN], const char *value, bool *group_other_readable,
	     char *why, size_t whylen)
{
	if (group_other_readable)
		*group_other_readable = false;
	if (whylen > 0)
		why[0] = '\0';
	if (key_value_is_path(value)) {
		int ret = key_load_file(out, value, group_other_readable, why, whylen);
		if (ret != 0)
			sodium_memzero(out, KEY_LEN);
		return ret;
	}
	if (!key_from_base64(out, value)) {
		snprintf(why, whylen, "expected 32-byte base64 key (%d characters)", KEY_B64_LEN);
		return -EINVAL;
	}
	return 0;
}
