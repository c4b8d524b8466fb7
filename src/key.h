/*
 * Keys: X25519 private/public keys and preshared keys, 32 bytes each,
 * written as standard base64 (44 characters with one '=' pad), as
 * WireGuard does.
 */
#ifndef SALTUN_KEY_H
#define SALTUN_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compat.h"

#define KEY_LEN 32
#define KEY_B64_LEN 44 /* without the NUL */

/* Encode 32 bytes to base64 (out: KEY_B64_LEN + 1 bytes, NUL-terminated). */
void key_to_base64(char out[KEY_B64_LEN + 1], const uint8_t key[KEY_LEN]);
/* Decode exactly one 32-byte key from base64, surrounding whitespace
 * ignored.  False (and *out wiped) on bad characters or wrong length. */
bool key_from_base64(uint8_t out[KEY_LEN], const char *b64) MUST_CHECK;

/* New random private key, clamped as RFC 7748 prescribes. */
void key_generate_private(uint8_t out[KEY_LEN]);
/* Random preshared key. */
void key_generate_psk(uint8_t out[KEY_LEN]);
/* Public key of a private key (crypto_scalarmult_base); -EINVAL when the
 * result would be all zeros. */
int key_public_from_private(uint8_t pub[KEY_LEN], const uint8_t priv[KEY_LEN]) MUST_CHECK;

/*
 * Load a key given in config either inline (base64) or as a path to a file
 * holding base64.  A value starting with '/' or '.' is a path; so is any
 * other value containing a '/', unless it looks like base64 (40 or more
 * characters of A-Z a-z 0-9 + / =: base64 itself contains '/', and a
 * truncated key must read as a bad key, not a missing file).  Everything
 * else is inline base64, and so is any value that decodes as a whole
 * 32-byte key, even one starting with '/' (key_value_is_path).  Returns 0, or
 * -errno with a human reason in `why` that does not repeat the path and
 * never quotes key material ("cannot open: Permission denied", "expected
 * 32-byte base64 key (44 characters)"); *out is wiped on failure.
 * *group_other_readable (may be NULL) is set when the file's mode lets
 * group or other read it (the caller warns); false for inline keys.
 */
int key_load(uint8_t out[KEY_LEN], const char *value, bool *group_other_readable,
	     char *why, size_t whylen) MUST_CHECK;
/* True when key_load would treat `value` as a file name. */
bool key_value_is_path(const char *value);

#endif
