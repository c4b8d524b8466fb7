/*
 * Privilege separation (OpenBSD style; see saltun(8) SECURITY).
 *
 * Started as root, the daemon is two processes, created once at startup:
 *
 *   the privileged process (the one started; comm "saltun") keeps root and
 *     does only what must stay root: it creates devices (and hands their
 *     descriptors over with SCM_RIGHTS), runs the hooks, reads the config
 *     and key files on reload, and removes the control socket at the end;
 *   the network process (its child; comm "saltun-net") does everything
 *     else, all packet parsing and crypto, as `user`/`group` with no
 *     capabilities, no_new_privs, and (where Landlock exists) no write
 *     access to any file.
 *
 * They talk over a SOCK_SEQPACKET socketpair with a fixed message set of
 * fixed-size messages.  The privileged process checks each message for its
 * exact size, terminated strings and ranges, and acts only on what its own
 * copy of the config says: a session name picks the device parameters and
 * the hook commands; the network process only supplies addresses (checked
 * with inet_pton) and ports to substitute.
 *
 * Started as another user (tests, a capability-only setup), or with
 * `user = root`, there is one process and every call below is done in it:
 * a NULL `struct priv *` means exactly that.
 */
#ifndef SALTUN_PRIV_H
#define SALTUN_PRIV_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <uv.h>

#include "compat.h"
#include "conf.h"
#include "hook.h"
#include "tun.h"

struct priv;

enum priv_start_result {
	PRIV_SINGLE = 0,   /* no separation: carry on in this process (*out = NULL) */
	PRIV_NETWORK,      /* we are the network process: *out is the channel */
	PRIV_PARENT_DONE,  /* we were the privileged process and it has ended */
};

/*
 * Split (when started as root and `user` is not root).  In the privileged
 * process this serves the network process until it exits and returns
 * PRIV_PARENT_DONE with the exit status for main() in *status.  The config
 * stays the caller's; config_path is the absolute path reload reads.
 * On failure it logs and returns -errno.
 */
int priv_start(struct conf *c, const char *config_path, struct priv **out, int *status);

/*
 * For tests only (tests/unit/test_priv.c): the privileged process's
 * serving, as priv_start runs it after the fork, on `fd`, one end of a
 * SOCK_SEQPACKET socketpair whose other end plays the network process
 * (messages in priv_msg.h).  No child is waited for or signalled.  Takes
 * `fd` (closes it).  Returns once the other end is closed: 0, or -errno
 * when the channel broke.
 */
int priv_serve_fd(struct conf *c, const char *config_path, int fd);

/* Network process: give up root.  After it: uid/gid of `user`/`group`, no
 * supplementary groups, no capabilities, no_new_privs, no file writes. */
int priv_drop(struct priv *p) MUST_CHECK;
/* Network process: watch the channel on `loop` (hook completions, and the
 * privileged process going away, which stops the loop). */
int priv_watch(struct priv *p, uv_loop_t *loop, void (*gone)(void *arg), void *arg);
void priv_close(struct priv *p);

/* Create the device of session `cs` with `mtu`: name, MTU, bridge, link up.
 * Fills dev (its ops do read/write/close only).  0 or -errno, logged. */
int priv_device_open(struct priv *p, const struct conf_session *cs, unsigned mtu,
		     struct tun_dev *dev);
/* The session's device was closed: the privileged process forgets it. */
void priv_device_closed(struct priv *p, const char *session);

/* hook_run / hook_run_sync through the privileged process.  With a channel
 * only v->session, the addresses and ports of `v` are sent: the command
 * and the rest come from the privileged process's config. */
int priv_hook_run(struct priv *p, uv_loop_t *loop, enum hook_event ev, const char *tmpl,
		  const struct hook_vars *v, unsigned timeout_ms, hook_done_cb done,
		  void *arg) MUST_CHECK;
int priv_hook_run_sync(struct priv *p, enum hook_event ev, const char *tmpl,
		       const struct hook_vars *v, unsigned timeout_ms);

/* conf_load() of the config the daemon started with, by whoever may read it. */
unsigned priv_conf_load(struct priv *p, struct conf *out, const char *path, FILE *diag);

/* Every session is up: tell systemd (the privileged process does), and
 * which control socket file we bound, for it to remove at the end (the
 * network process may not write to root's directory). */
void priv_ready(struct priv *p, bool control_bound, dev_t control_dev, ino_t control_ino);

/* The user and group the network process runs as: from the config, else
 * "saltun" if it exists, else "nobody".  0 or -ENOENT (logged). */
int priv_resolve_user(const struct conf_global *g, uid_t *uid, gid_t *gid, char *name,
		      size_t namelen);

#endif
