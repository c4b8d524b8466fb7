/*
 * Test-vector loader for the unit tests: a strict little JSON reader for
 * the Noise vector files (cacophony/snow/noise-c layout, see
 * tests/vectors/README.md) and a reader for the KEY=hex lines on top of
 * rfc8439_aead.txt.  Malformed input is never skipped: every error is
 * printed to stderr with file:line:column and the reason, and returned.
 */
#ifndef SALTUN_TEST_VECTORS_H
#define SALTUN_TEST_VECTORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VECTOR_MAX_BYTES 512
#define VECTOR_MAX_MESSAGES 16
#define VECTOR_MAX_PSKS 4
#define VECTOR_NAME_MAX 96

struct vector_bytes {
	bool present;
	size_t len;
	uint8_t data[VECTOR_MAX_BYTES];
};

/* One entry of a Noise vector file.  The loader requires the name, both
 * prologues, the five keys (32 bytes each), handshake_hash and at least two
 * messages; psks are optional (counts 0 when absent). */
struct noise_vector {
	char protocol_name[VECTOR_NAME_MAX]; /* from `protocol_name` or `name` */
	struct vector_bytes init_prologue, resp_prologue;
	struct vector_bytes init_static, init_ephemeral, init_remote_static;
	struct vector_bytes resp_static, resp_ephemeral;
	struct vector_bytes handshake_hash;
	size_t init_psk_count, resp_psk_count;
	struct vector_bytes init_psks[VECTOR_MAX_PSKS], resp_psks[VECTOR_MAX_PSKS];
	size_t message_count;
	struct vector_bytes payload[VECTOR_MAX_MESSAGES], ciphertext[VECTOR_MAX_MESSAGES];
};

/*
 * Parse a whole vector document (`{ ..., "vectors": [ {...}, ... ] }`) held
 * in text[0..len) and copy out the entry named `name`.  `source` names the
 * input in error messages.  Returns 0, -EINVAL on malformed input (bad
 * JSON, bad hex, wrong key size, missing field, duplicate key, two entries
 * of that name), -ENOENT when no entry has that name.
 */
int vectors_parse_noise(struct noise_vector *out, const char *text, size_t len,
			const char *name, const char *source);
/* The same for a file; -errno when it cannot be read. */
int vectors_load_noise(struct noise_vector *out, const char *path, const char *name);

/*
 * The value of the one line `KEY=hexdigits` in text (lines starting with
 * '#' and lines without '=' are ignored).  -ENOENT when absent, -EINVAL
 * when it appears twice or the hex is bad.
 */
int vectors_parse_hex_line(struct vector_bytes *out, const char *text, size_t len,
			   const char *key, const char *source);
int vectors_load_hex_line(struct vector_bytes *out, const char *path, const char *key);

/* Whole file into a NUL-terminated heap buffer (free() it). -errno. */
int vectors_read_file(char **text, size_t *len, const char *path);

/* Hex string to bytes; false on odd length, a non-hex digit or overflow. */
bool vectors_hex_decode(struct vector_bytes *out, const char *hex, size_t hex_len);

#endif
