/*
 * The control socket: an AF_UNIX stream socket on which the daemon answers
 * one request line per connection (`saltun status` is its client), and the
 * pure functions that turn the daemon's structs into status text or JSON.
 *
 * Protocol (documented in saltun(8); request names are append-only, the
 * protocol number is CONTROL_PROTOCOL_VERSION):
 *   client: one line of at most CONTROL_LINE_MAX bytes, ended by "\n" (or
 *           by the end of its output)
 *   server: the answer, then closes.  Any refusal is a single line that
 *           starts with "error: ".
 *   requests: "status [json] [SESSION]", "version"
 */
#ifndef SALTUN_CONTROL_H
#define SALTUN_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <uv.h>

#include "conf.h"

#ifndef SALTUN_RUNSTATEDIR
#define SALTUN_RUNSTATEDIR "/run"
#endif
#define CONTROL_DEFAULT_PATH SALTUN_RUNSTATEDIR "/saltun/control.sock"

#define CONTROL_PROTOCOL_VERSION 1  /* of the line protocol: the "version" answer */
#define CONTROL_JSON_VERSION 1      /* "version" of the status JSON document */
#define CONTROL_LINE_MAX 512        /* request bytes, without the newline */
#define CONTROL_CLIENTS_MAX 16      /* connections served at once; more wait */
#define CONTROL_TIMEOUT_MS 5000     /* a connection lives at most this long */
#define CONTROL_GROUP "saltun"      /* may connect, when the group exists */

struct daemon;
struct control;

/* One connection.  Both handles are embedded; the slot is free again once
 * both close callbacks ran (open_handles == 0). */
struct control_client {
	struct control *c;
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t write;
	char line[CONTROL_LINE_MAX + 2]; /* the line, its newline, a NUL */
	size_t len;
	char *answer;                    /* malloc'd; freed when the slot is free */
	unsigned open_handles;
	bool answered;
};

struct control {
	struct daemon *d;
	uv_pipe_t listener;
	char path[sizeof(((struct conf_global *)0)->control)];
	dev_t sock_dev;                  /* the file we bound: unlinked only if still ours */
	ino_t sock_ino;
	unsigned timeout_ms;             /* CONTROL_TIMEOUT_MS; tests shorten it */
	bool listener_open;
	bool closing;                    /* control_close ran: free when all handles closed */
	bool accept_pending;             /* a connection waits for a free slot */
	struct control_client clients[CONTROL_CLIENTS_MAX];
};

/* ------------------------------------------------------------ requests */

enum control_request_kind { CONTROL_REQ_STATUS = 0, CONTROL_REQ_VERSION };

struct control_request {
	enum control_request_kind kind;
	bool json;
	char session[CONF_NAME_MAX + 1]; /* "" = every session */
};

/* Parse one request line (without its newline; a trailing '\r' is
 * ignored).  False with the reason, safe to send back, in `why`. */
bool control_parse_request(struct control_request *r, const char *line, size_t len, char *why,
			   size_t whylen);

/* ------------------------------------------------------------ formatting */

/*
 * Status of `d` as text (aligned, for humans) or as one JSON document, for
 * every session or the one named `session` (NULL or "" = all), at monotonic
 * time `now_ms`, into buf (NUL-terminated).  Reads only public values:
 * never a private key or a preshared key.
 * 0 (length in *len), -ENOENT when there is no such session, -ENOSPC when
 * buf is too small.
 */
int control_format_status(char *buf, size_t size, size_t *len, const struct daemon *d,
			  const char *session, bool json, uint64_t now_ms);
/* A buffer size that always fits control_format_status of `d`. */
size_t control_status_size(const struct daemon *d);

/* The whole answer to request `line` (len bytes, no newline): status,
 * version or "error: ...\n".  *out is malloc'd.  0 or -ENOMEM. */
int control_answer(char **out, size_t *outlen, const struct daemon *d, const char *line,
		   size_t len, uint64_t now_ms);

/* ------------------------------------------------------------ the server */

/*
 * Listen on d->conf.global.control: parent directory created (0750) when
 * missing, a stale socket file replaced, never one a live daemon listens
 * on; mode 0660, group CONTROL_GROUP when it exists.  On failure the reason
 * is logged and d->control stays NULL: the daemon runs on without it.
 * 0 or -errno.
 */
int control_open(struct daemon *d);
/* Stop listening, drop every connection, remove the socket file.  Memory
 * is freed by the close callbacks: run the loop afterwards. */
void control_close(struct daemon *d);

/* ------------------------------------------------------------ the client */

/* The `control` key of [global] in a config file, without reading keys or
 * validating anything else (`saltun status` may not read the private key).
 * False when the file has none. */
bool control_path_from_conf(char *out, size_t outlen, FILE *f);

/* Connect to `path`, send `request` and a newline, read the answer to its
 * end (at most 16 MiB, within 10 s).  *answer is malloc'd and NUL-
 * terminated.  0 or -errno (connect's errno when the daemon is not there). */
int control_query(char **answer, size_t *len, const char *path, const char *request);

#endif
