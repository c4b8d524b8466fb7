/*
 * The privilege-separation channel's message set (priv.h): internal to
 * priv.c, and included by tests/unit/test_priv.c to craft what a
 * compromised network process could send.  Nothing else may use it.
 *
 * Every message is one SOCK_SEQPACKET datagram of exactly the size of its
 * struct; strings are NUL-terminated inside their arrays.  Both ends are
 * the same binary, so the layouts are not a stable wire format; the sizes
 * are asserted so that a change to one is a deliberate one.
 */
#ifndef SALTUN_PRIV_MSG_H
#define SALTUN_PRIV_MSG_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>

#include "conf.h"

enum priv_type {
	PRIV_OPEN = 1,       /* net -> priv: create the device of a session */
	PRIV_OPENED,         /* priv -> net: result, the descriptor attached */
	PRIV_HOOK,           /* net -> priv: run a session's hook */
	PRIV_HOOK_DONE,      /* priv -> net: its exit status */
	PRIV_CLOSE,          /* net -> priv: the session's device is closed */
	PRIV_CONF,           /* net -> priv: read the config again (reload) */
	PRIV_CONF_REPLY,     /* priv -> net: diagnostics + config, in a memfd */
	PRIV_READY,          /* net -> priv: serving: notify systemd */
};

struct priv_open { uint32_t type; char session[CONF_NAME_MAX + 1]; uint32_t mtu; };
struct priv_opened { uint32_t type; int32_t rc; char device[IFNAMSIZ]; uint32_t vnet; };
struct priv_hook {
	uint32_t type, id, event;
	char session[CONF_NAME_MAX + 1];
	char peer_address[INET6_ADDRSTRLEN], local_address[INET6_ADDRSTRLEN];
	uint16_t peer_port, local_port;
};
struct priv_hook_done { uint32_t type, id; int32_t status; };
struct priv_close { uint32_t type; char session[CONF_NAME_MAX + 1]; };
struct priv_conf { uint32_t type; };
struct priv_conf_reply { uint32_t type, errors; uint64_t diag_len, conf_len; };
struct priv_ready { uint32_t type, control_bound; uint64_t control_dev, control_ino; };

_Static_assert(sizeof(struct priv_open) == 24, "priv_open size");
_Static_assert(sizeof(struct priv_opened) == 28, "priv_opened size");
_Static_assert(sizeof(struct priv_hook) == 124, "priv_hook size");
_Static_assert(sizeof(struct priv_hook_done) == 12, "priv_hook_done size");
_Static_assert(sizeof(struct priv_close) == 20, "priv_close size");
_Static_assert(sizeof(struct priv_conf) == 4, "priv_conf size");
_Static_assert(sizeof(struct priv_conf_reply) == 24, "priv_conf_reply size");
_Static_assert(sizeof(struct priv_ready) == 24, "priv_ready size");

union priv_msg {
	uint32_t type;
	struct priv_open open;
	struct priv_opened opened;
	struct priv_hook hook;
	struct priv_hook_done hook_done;
	struct priv_close close;
	struct priv_conf conf;
	struct priv_conf_reply conf_reply;
	struct priv_ready ready;
};

#endif
