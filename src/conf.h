/*
 * The configuration: inih callbacks turned into a validated session table
 * of plain structs (no runtime objects).  Pure besides reading the config
 * and key files.  See saltun.conf(5).
 */
#ifndef SALTUN_CONF_H
#define SALTUN_CONF_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "key.h"
#include "log.h"

#define CONF_MAX_LISTEN 8
#define CONF_NAME_MAX (IFNAMSIZ - 1) /* 15: session and device names */
#define CONF_HOST_MAX 255
#define CONF_MTU_MIN 576
#define CONF_MTU_MAX 65535
#define CONF_KEEPALIVE_MAX 3600 /* seconds; 0 = off */
#define CONF_DEFAULT_PORT 5555

enum conf_transport { CONF_TRANSPORT_UDP = 0, CONF_TRANSPORT_TCP };
enum conf_devtype { CONF_DEV_TUN = 0, CONF_DEV_TAP };

struct conf_endpoint {
	char host[CONF_HOST_MAX + 1];   /* as written: literal address or hostname */
	uint16_t port;
	bool is_literal;                /* host is an IPv4/IPv6 literal: addr is set */
	struct sockaddr_storage addr;   /* with port, when is_literal */
};

struct conf_session {
	char name[CONF_NAME_MAX + 1];
	int line;                       /* line of the [section] header */
	uint8_t public_key[KEY_LEN];
	bool has_public_key;
	uint8_t preshared_key[KEY_LEN]; /* all zeros when none (Noise psk2 default) */
	bool has_preshared_key;
	bool has_endpoint;              /* false: waits for the peer to dial in */
	struct conf_endpoint endpoint;
	enum conf_transport transport;
	enum conf_devtype type;
	char device[CONF_NAME_MAX + 1]; /* name or pattern with %d; "" = kernel picks */
	unsigned mtu;                   /* 0 = automatic (underlay MTU minus overhead) */
	char bridge[CONF_NAME_MAX + 1]; /* tap only; "" = none */
	unsigned keepalive;             /* persistent keepalive in seconds; 0 = off */
	unsigned speed_in_kbit;         /* 0 = unlimited (shaping, see saltun.conf(5)) */
	unsigned speed_out_kbit;
	/* Hooks: NULL when absent.  Continuation lines are joined with '\n'. */
	char *up, *down, *connect, *disconnect;
	unsigned hook_timeout;          /* seconds, default 30 */
};

struct conf_global {
	uint8_t private_key[KEY_LEN];
	bool has_private_key;
	uint8_t public_key[KEY_LEN];    /* derived */
	struct sockaddr_storage listen[CONF_MAX_LISTEN];
	unsigned nlisten;               /* 0 = only dial out */
	char user[64];                  /* "" = default (saltun, else nobody) */
	char group[64];
	enum log_sink log_sink;
	enum log_level log_level;
	char control[108];              /* AF_UNIX path */
};

struct conf {
	char *path;
	struct conf_global global;
	struct conf_session *sessions;
	unsigned nsessions;
};

/*
 * Parse and validate `path`.  Every problem is written to `diag` as
 * "PATH:LINE: message" (warnings as "PATH:LINE: warning: message"), and
 * parsing keeps going so all of them show in one run.  Returns the number
 * of errors (0 = usable; warnings do not count); on any error *out is
 * freed and zeroed.
 */
unsigned conf_load(struct conf *out, const char *path, FILE *diag);
/* Same, from a string (tests); `name` stands in for the path in messages. */
unsigned conf_load_string(struct conf *out, const char *text, const char *name, FILE *diag);
/* Free everything and wipe key material. */
void conf_free(struct conf *c);
/*
 * A loaded config as bytes and back, for the privileged process to hand
 * the network one a config it read (priv.c): same binary on both ends.
 * conf_serialize: 0 or -ENOMEM, *out malloc'd (holds keys: wipe, free).
 * conf_deserialize: 0 or -EINVAL (malformed; *c zeroed) or -ENOMEM.
 */
int conf_serialize(const struct conf *c, uint8_t **out, size_t *outlen);
int conf_deserialize(struct conf *c, const uint8_t *blob, size_t len);
/* Print the session table as `saltun check` shows it. */
void conf_print(const struct conf *c, FILE *out);

const char *conf_devtype_name(enum conf_devtype t);
const char *conf_transport_name(enum conf_transport t);

/* Parse "host:port", "[v6]:port", "host" (default port); false with a
 * reason written to why. */
bool conf_parse_endpoint(struct conf_endpoint *ep, const char *s, char *why, size_t whylen);

#endif
