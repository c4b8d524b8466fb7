/*
 * Test-vector loader: a strict recursive-descent JSON reader (RFC 8259
 * grammar, values we do not need are checked and skipped) that keeps only
 * the fields of one Noise vector entry, and a KEY=hex line reader.
 * The first error is printed as "source:line:column: reason" so a broken
 * vector file fails the test loudly instead of testing nothing.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vectors.h"

#define JSON_MAX_DEPTH 64

struct json {
	const char *start, *p, *end;
	const char *source;
	bool failed;
};

static void json_error(struct json *js, const char *what)
{
	unsigned line = 1, col = 1;

	if (js->failed)
		return;
	js->failed = true;
	for (const char *q = js->start; q < js->p && q < js->end; q++) {
		if (*q == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	fprintf(stderr, "%s:%u:%u: malformed vector file: %s\n", js->source, line, col, what);
}

static void json_skip_ws(struct json *js)
{
	while (js->p < js->end &&
	       (*js->p == ' ' || *js->p == '\t' || *js->p == '\n' || *js->p == '\r'))
		js->p++;
}

/* Consume `c` after optional whitespace. */
static bool json_expect(struct json *js, char c, const char *what)
{
	json_skip_ws(js);
	if (js->p >= js->end || *js->p != c) {
		json_error(js, what);
		return false;
	}
	js->p++;
	return true;
}

static bool json_peek(struct json *js, char c)
{
	json_skip_ws(js);
	return js->p < js->end && *js->p == c;
}

static bool json_is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string; *s and *len get its raw (still escaped) contents. */
static bool json_parse_string(struct json *js, const char **s, size_t *len)
{
	if (!json_expect(js, '"', "expected a string"))
		return false;
	*s = js->p;
	while (js->p < js->end && *js->p != '"') {
		unsigned char c = (unsigned char)*js->p;

		if (c < 0x20) {
			json_error(js, "control character in string");
			return false;
		}
		if (c == '\\') {
			js->p++;
			if (js->p >= js->end)
				break;
			if (*js->p == 'u') {
				for (int i = 1; i <= 4; i++) {
					if (js->p + i >= js->end || !json_is_hex(js->p[i])) {
						json_error(js, "bad \\u escape");
						return false;
					}
				}
				js->p += 4;
			} else if (!strchr("\"\\/bfnrt", *js->p)) {
				json_error(js, "bad escape in string");
				return false;
			}
		}
		js->p++;
	}
	if (js->p >= js->end) {
		json_error(js, "unterminated string");
		return false;
	}
	*len = (size_t)(js->p - *s);
	js->p++;
	return true;
}

static bool json_parse_digits(struct json *js)
{
	const char *first = js->p;

	while (js->p < js->end && *js->p >= '0' && *js->p <= '9')
		js->p++;
	return js->p > first;
}

static bool json_parse_number(struct json *js)
{
	if (js->p < js->end && *js->p == '-')
		js->p++;
	if (js->p < js->end && *js->p == '0')
		js->p++;
	else if (!json_parse_digits(js))
		goto bad;
	if (js->p < js->end && *js->p == '.') {
		js->p++;
		if (!json_parse_digits(js))
			goto bad;
	}
	if (js->p < js->end && (*js->p == 'e' || *js->p == 'E')) {
		js->p++;
		if (js->p < js->end && (*js->p == '+' || *js->p == '-'))
			js->p++;
		if (!json_parse_digits(js))
			goto bad;
	}
	return true;
bad:
	json_error(js, "bad number");
	return false;
}

static bool json_parse_literal(struct json *js, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(js->end - js->p) < n || memcmp(js->p, word, n) != 0) {
		json_error(js, "unexpected character");
		return false;
	}
	js->p += n;
	return true;
}

/* Any value, checked and thrown away. */
static bool json_skip_value(struct json *js, int depth)
{
	const char *s;
	size_t len;

	if (depth > JSON_MAX_DEPTH) {
		json_error(js, "nested too deeply");
		return false;
	}
	json_skip_ws(js);
	if (js->p >= js->end) {
		json_error(js, "unexpected end of input");
		return false;
	}
	switch (*js->p) {
	case '"':
		return json_parse_string(js, &s, &len);
	case '{':
		js->p++;
		if (json_peek(js, '}'))
			return json_expect(js, '}', "expected '}'");
		do {
			if (!json_parse_string(js, &s, &len) ||
			    !json_expect(js, ':', "expected ':'") ||
			    !json_skip_value(js, depth + 1))
				return false;
		} while (json_peek(js, ',') && json_expect(js, ',', "expected ','"));
		return json_expect(js, '}', "expected ',' or '}'");
	case '[':
		js->p++;
		if (json_peek(js, ']'))
			return json_expect(js, ']', "expected ']'");
		do {
			if (!json_skip_value(js, depth + 1))
				return false;
		} while (json_peek(js, ',') && json_expect(js, ',', "expected ','"));
		return json_expect(js, ']', "expected ',' or ']'");
	case 't':
		return json_parse_literal(js, "true");
	case 'f':
		return json_parse_literal(js, "false");
	case 'n':
		return json_parse_literal(js, "null");
	default:
		return json_parse_number(js);
	}
}

bool vectors_hex_decode(struct vector_bytes *out, const char *hex, size_t hex_len)
{
	out->present = false;
	out->len = 0;
	if (hex_len % 2 || hex_len / 2 > sizeof out->data)
		return false;
	for (size_t i = 0; i < hex_len; i++) {
		char c = hex[i];
		unsigned v;

		if (c >= '0' && c <= '9')
			v = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = (unsigned)(c - 'A' + 10);
		else
			return false;
		if (i % 2 == 0)
			out->data[i / 2] = (uint8_t)(v << 4);
		else
			out->data[i / 2] |= (uint8_t)v;
	}
	out->len = hex_len / 2;
	out->present = true;
	return true;
}

static bool json_key_is(const char *key, size_t key_len, const char *want)
{
	return key_len == strlen(want) && memcmp(key, want, key_len) == 0;
}

/* A hex string value into a field that must not be set yet. */
static bool json_parse_hex(struct json *js, struct vector_bytes *out)
{
	const char *s;
	size_t len;

	if (out->present) {
		json_error(js, "duplicate key");
		return false;
	}
	if (!json_parse_string(js, &s, &len))
		return false;
	if (!vectors_hex_decode(out, s, len)) {
		js->p = s;
		json_error(js, "not a hex string (odd length, bad digit, or too long)");
		return false;
	}
	return true;
}

static bool json_parse_hex_array(struct json *js, struct vector_bytes *items, size_t max,
				 size_t *count, bool *seen)
{
	if (*seen) {
		json_error(js, "duplicate key");
		return false;
	}
	*seen = true;
	if (!json_expect(js, '[', "expected an array of hex strings"))
		return false;
	if (json_peek(js, ']'))
		return json_expect(js, ']', "expected ']'");
	do {
		if (*count == max) {
			json_error(js, "too many entries");
			return false;
		}
		if (!json_parse_hex(js, &items[(*count)++]))
			return false;
	} while (json_peek(js, ',') && json_expect(js, ',', "expected ','"));
	return json_expect(js, ']', "expected ',' or ']'");
}

static bool json_parse_message(struct json *js, struct noise_vector *v)
{
	struct vector_bytes *payload, *ciphertext;
	const char *key;
	size_t key_len;

	if (v->message_count == VECTOR_MAX_MESSAGES) {
		json_error(js, "too many messages");
		return false;
	}
	payload = &v->payload[v->message_count];
	ciphertext = &v->ciphertext[v->message_count];
	v->message_count++;
	if (!json_expect(js, '{', "expected a message object"))
		return false;
	if (!json_peek(js, '}')) {
		do {
			bool ok;

			if (!json_parse_string(js, &key, &key_len) ||
			    !json_expect(js, ':', "expected ':'"))
				return false;
			if (json_key_is(key, key_len, "payload"))
				ok = json_parse_hex(js, payload);
			else if (json_key_is(key, key_len, "ciphertext"))
				ok = json_parse_hex(js, ciphertext);
			else
				ok = json_skip_value(js, 3);
			if (!ok)
				return false;
		} while (json_peek(js, ',') && json_expect(js, ',', "expected ','"));
	}
	if (!json_expect(js, '}', "expected ',' or '}'"))
		return false;
	if (!payload->present || !ciphertext->present) {
		json_error(js, "message lacks payload or ciphertext");
		return false;
	}
	return true;
}

static bool json_parse_messages(struct json *js, struct noise_vector *v, bool *seen)
{
	if (*seen) {
		json_error(js, "duplicate key");
		return false;
	}
	*seen = true;
	if (!json_expect(js, '[', "expected an array of messages"))
		return false;
	if (json_peek(js, ']'))
		return json_expect(js, ']', "expected ']'");
	do {
		if (!json_parse_message(js, v))
			return false;
	} while (json_peek(js, ',') && json_expect(js, ',', "expected ','"));
	return json_expect(js, ']', "expected ',' or ']'");
}

static bool json_parse_name(struct json *js, struct noise_vector *v)
{
	const char *s;
	size_t len;

	if (v->protocol_name[0]) {
		json_error(js, "duplicate protocol name");
		return false;
	}
	if (!json_parse_string(js, &s, &len))
		return false;
	if (len == 0 || len >= sizeof v->protocol_name || memchr(s, '\\', len)) {
		js->p = s;
		json_error(js, "bad protocol name");
		return false;
	}
	memcpy(v->protocol_name, s, len);
	v->protocol_name[len] = '\0';
	return true;
}

struct vector_field {
	const char *key;
	size_t offset;
	size_t want_len; /* 0: any length */
	bool required;
};

static const struct vector_field vector_fields[] = {
	{ "init_prologue", offsetof(struct noise_vector, init_prologue), 0, true },
	{ "resp_prologue", offsetof(struct noise_vector, resp_prologue), 0, true },
	{ "init_static", offsetof(struct noise_vector, init_static), 32, true },
	{ "init_ephemeral", offsetof(struct noise_vector, init_ephemeral), 32, true },
	{ "init_remote_static", offsetof(struct noise_vector, init_remote_static), 32, true },
	{ "resp_static", offsetof(struct noise_vector, resp_static), 32, true },
	{ "resp_ephemeral", offsetof(struct noise_vector, resp_ephemeral), 32, true },
	{ "handshake_hash", offsetof(struct noise_vector, handshake_hash), 0, true },
};

static struct vector_bytes *vector_field_at(struct noise_vector *v, const struct vector_field *f)
{
	return (struct vector_bytes *)(void *)((char *)v + f->offset);
}

/* One element of "vectors".  Structure is checked for every entry; the
 * complete set of fields only for the entry we keep (*match). */
static bool json_parse_entry(struct json *js, struct noise_vector *v, const char *name,
			     bool *match)
{
	bool seen_init_psks = false, seen_resp_psks = false, seen_messages = false;
	const char *entry_start, *entry_end, *key;
	size_t key_len;

	memset(v, 0, sizeof *v);
	*match = false;
	if (!json_expect(js, '{', "expected a vector object"))
		return false;
	entry_start = js->p;
	if (!json_peek(js, '}')) {
		do {
			const struct vector_field *field = NULL;
			bool ok;

			if (!json_parse_string(js, &key, &key_len) ||
			    !json_expect(js, ':', "expected ':'"))
				return false;
			for (size_t i = 0; i < sizeof vector_fields / sizeof vector_fields[0]; i++)
				if (json_key_is(key, key_len, vector_fields[i].key))
					field = &vector_fields[i];
			if (field) {
				struct vector_bytes *b = vector_field_at(v, field);

				ok = json_parse_hex(js, b);
				if (ok && field->want_len && b->len != field->want_len) {
					js->p = key;
					json_error(js, "key is not 32 bytes");
					ok = false;
				}
			} else if (json_key_is(key, key_len, "protocol_name") ||
				   json_key_is(key, key_len, "name")) {
				ok = json_parse_name(js, v);
			} else if (json_key_is(key, key_len, "init_psks")) {
				ok = json_parse_hex_array(js, v->init_psks, VECTOR_MAX_PSKS,
							  &v->init_psk_count, &seen_init_psks);
			} else if (json_key_is(key, key_len, "resp_psks")) {
				ok = json_parse_hex_array(js, v->resp_psks, VECTOR_MAX_PSKS,
							  &v->resp_psk_count, &seen_resp_psks);
			} else if (json_key_is(key, key_len, "messages")) {
				ok = json_parse_messages(js, v, &seen_messages);
			} else {
				ok = json_skip_value(js, 2);
			}
			if (!ok)
				return false;
		} while (json_peek(js, ',') && json_expect(js, ',', "expected ','"));
	}
	if (!json_expect(js, '}', "expected ',' or '}'"))
		return false;
	if (!v->protocol_name[0]) {
		js->p = entry_start;
		json_error(js, "vector without protocol_name/name");
		return false;
	}
	if (strcmp(v->protocol_name, name) != 0)
		return true;
	*match = true;
	entry_end = js->p;
	js->p = entry_start; /* errors below point at the entry */
	for (size_t i = 0; i < sizeof vector_fields / sizeof vector_fields[0]; i++) {
		if (vector_fields[i].required && !vector_field_at(v, &vector_fields[i])->present) {
			json_error(js, "vector lacks a required field");
			fprintf(stderr, "%s: (the field is %s)\n", js->source, vector_fields[i].key);
			return false;
		}
	}
	for (size_t i = 0; i < v->init_psk_count; i++)
		if (v->init_psks[i].len != 32)
			goto bad_psk;
	for (size_t i = 0; i < v->resp_psk_count; i++)
		if (v->resp_psks[i].len != 32)
			goto bad_psk;
	if (v->message_count < 2) {
		json_error(js, "vector has fewer than 2 messages");
		return false;
	}
	js->p = entry_end;
	return true;
bad_psk:
	json_error(js, "psk is not 32 bytes");
	return false;
}

int vectors_parse_noise(struct noise_vector *out, const char *text, size_t len,
			const char *name, const char *source)
{
	struct json js = { .start = text, .p = text, .end = text + len, .source = source };
	struct noise_vector *entry;
	bool seen_vectors = false, found = false;
	const char *key;
	size_t key_len;
	int ret = -EINVAL;

	/* An entry is ~25 KiB: keep it off the stack of small test threads. */
	entry = malloc(sizeof *entry);
	if (!entry)
		return -ENOMEM;
	memset(out, 0, sizeof *out);
	if (!json_expect(&js, '{', "expected a top-level object"))
		goto out;
	if (!json_peek(&js, '}')) {
		do {
			if (!json_parse_string(&js, &key, &key_len) ||
			    !json_expect(&js, ':', "expected ':'"))
				goto out;
			if (!json_key_is(key, key_len, "vectors")) {
				if (!json_skip_value(&js, 1))
					goto out;
				continue;
			}
			if (seen_vectors) {
				json_error(&js, "duplicate key \"vectors\"");
				goto out;
			}
			seen_vectors = true;
			if (!json_expect(&js, '[', "expected an array of vectors"))
				goto out;
			if (json_peek(&js, ']')) {
				js.p++;
				continue;
			}
			do {
				bool match;

				if (!json_parse_entry(&js, entry, name, &match))
					goto out;
				if (match && found) {
					json_error(&js, "two vectors with that name");
					goto out;
				}
				if (match) {
					*out = *entry;
					found = true;
				}
			} while (json_peek(&js, ',') && json_expect(&js, ',', "expected ','"));
			if (!json_expect(&js, ']', "expected ',' or ']'"))
				goto out;
		} while (json_peek(&js, ',') && json_expect(&js, ',', "expected ','"));
	}
	if (!json_expect(&js, '}', "expected ',' or '}'"))
		goto out;
	json_skip_ws(&js);
	if (js.p != js.end) {
		json_error(&js, "trailing data after the document");
		goto out;
	}
	if (!seen_vectors) {
		json_error(&js, "no \"vectors\" array");
		goto out;
	}
	if (!found) {
		fprintf(stderr, "%s: no vector named %s\n", source, name);
		ret = -ENOENT;
		goto out;
	}
	ret = 0;
out:
	free(entry);
	if (ret)
		memset(out, 0, sizeof *out);
	return ret;
}

int vectors_read_file(char **text, size_t *len, const char *path)
{
	FILE *f;
	char *buf = NULL;
	long size;
	int ret;

	*text = NULL;
	*len = 0;
	f = fopen(path, "rb");
	if (!f) {
		ret = -errno;
		fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
		return ret;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		ret = -errno;
		goto fail;
	}
	buf = malloc((size_t)size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto fail;
	}
	if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
		ret = -EIO;
		goto fail;
	}
	buf[size] = '\0';
	fclose(f);
	*text = buf;
	*len = (size_t)size;
	return 0;
fail:
	fprintf(stderr, "%s: cannot read: %s\n", path, strerror(-ret));
	free(buf);
	fclose(f);
	return ret;
}

int vectors_load_noise(struct noise_vector *out, const char *path, const char *name)
{
	char *text;
	size_t len;
	int ret;

	memset(out, 0, sizeof *out);
	ret = vectors_read_file(&text, &len, path);
	if (ret)
		return ret;
	ret = vectors_parse_noise(out, text, len, name, path);
	free(text);
	return ret;
}

int vectors_parse_hex_line(struct vector_bytes *out, const char *text, size_t len,
			   const char *key, const char *source)
{
	const char *p = text, *end = text + len;
	size_t key_len = strlen(key);
	unsigned line = 0;
	bool found = false;

	memset(out, 0, sizeof *out);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *value;
		size_t value_len;

		if (!eol)
			eol = end;
		line++;
		if (*p != '#' && (size_t)(eol - p) > key_len && memcmp(p, key, key_len) == 0 &&
		    p[key_len] == '=') {
			value = p + key_len + 1;
			value_len = (size_t)(eol - value);
			if (value_len && value[value_len - 1] == '\r')
				value_len--;
			if (found) {
				fprintf(stderr, "%s:%u: %s= given twice\n", source, line, key);
				goto bad;
			}
			if (!vectors_hex_decode(out, value, value_len)) {
				fprintf(stderr, "%s:%u: %s= is not hex\n", source, line, key);
				goto bad;
			}
			found = true;
		}
		p = eol + 1;
	}
	if (!found) {
		fprintf(stderr, "%s: no %s= line\n", source, key);
		return -ENOENT;
	}
	return 0;
bad:
	memset(out, 0, sizeof *out);
	return -EINVAL;
}

int vectors_load_hex_line(struct vector_bytes *out, const char *path, const char *key)
{
	char *text;
	size_t len;
	int ret;

	memset(out, 0, sizeof *out);
	ret = vectors_read_file(&text, &len, path);
	if (ret)
		return ret;
	ret = vectors_parse_hex_line(out, text, len, key, path);
	free(text);
	return ret;
}
