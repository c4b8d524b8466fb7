/*
 * Hooks: up, down, connect, disconnect (saltun.conf(5)).  Run through
 * `/bin/sh -c` with uv_spawn, never blocking the loop, bounded in time
 * (SIGTERM at the limit, SIGKILL 2 s later), output and exit status logged,
 * with an explicit environment (never the daemon's own).
 *
 * Substitutions (vtun): %d and %% device, %h session name, %a/%p remote
 * address/port, %A/%P local address/port, %m MTU.  Only values the daemon
 * formats itself are substituted (names validated at config load, addresses
 * from inet_ntop), never raw bytes from the network.
 */
#ifndef SALTUN_HOOK_H
#define SALTUN_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "compat.h"

enum hook_event { HOOK_UP = 0, HOOK_DOWN, HOOK_CONNECT, HOOK_DISCONNECT };

/* What a hook may know; NULL/0 where unknown ("" is substituted). */
struct hook_vars {
	const char *session;
	const char *device;
	const char *type;          /* "tun" | "tap" */
	unsigned mtu;
	const char *peer_address;  /* inet_ntop form */
	uint16_t peer_port;
	const char *local_address;
	uint16_t local_port;
	const char *peer_key;      /* base64 public key */
};

const char *hook_event_name(enum hook_event ev);

/*
 * Expand substitutions of `tmpl` into `out` (NUL-terminated).  Returns the
 * length, or -ENAMETOOLONG when it does not fit, or -EINVAL on an unknown
 * %-sequence (config validation uses this too).  Pure.
 */
int hook_expand(char *out, size_t outlen, const char *tmpl, const struct hook_vars *v);
/* True when every %-sequence in tmpl is known (for config validation). */
bool hook_template_valid(const char *tmpl, char *bad, size_t badlen);

/*
 * Build the environment array ("SALTUN_EVENT=up", ...) into `storage`
 * (a caller buffer) and `envp` (NULL-terminated, at most HOOK_ENV_MAX).
 * PATH is set to a fixed safe value.  Returns the count or -ENOSPC.  Pure.
 */
#define HOOK_ENV_MAX 16
int hook_build_env(char **envp, char *storage, size_t storage_len,
		   enum hook_event ev, const struct hook_vars *v);

/* Called once when the hook ended and all its handles are closed: exit
 * status (0..255), or -signal if a signal killed it, or -ETIMEDOUT if it was
 * killed at the time limit.  hook_run_sync also returns -errno when it could
 * not start the hook; -signal and -errno share a range, so callers treat any
 * non-zero value as failure (the log line already says which). */
typedef void (*hook_done_cb)(void *arg, enum hook_event ev, int status);

/*
 * Start `tmpl` for event `ev`.  Returns 0, or -errno if it could not be
 * started (then `done` is NOT called: libuv's rule; memory is still released
 * by close callbacks, so the loop must run once more).  The hook object is
 * heap-allocated and freed after its handles close.  timeout_ms = 0 means
 * the default 30 s.  v->session prefixes every logged line of its output
 * ("office: up hook: LINE"); lines are cut at 400 characters, control
 * characters shown as '?', at most 64 KiB logged per hook.  Nothing in `v`
 * or `tmpl` is referenced after the call returns.
 *
 * The hook runs in its own process group, and the time limit signals the
 * whole group.  A background process it leaves behind is not waited for:
 * the hook is done 0.5 s after the shell exits even if that process still
 * holds the output pipe (it should redirect its output).
 */
int hook_run(uv_loop_t *loop, enum hook_event ev, const char *tmpl,
	     const struct hook_vars *v, unsigned timeout_ms,
	     hook_done_cb done, void *arg) MUST_CHECK;

/* Run a hook synchronously (used on shutdown, after the loop stopped, and
 * by tests): runs its own small loop until the hook ends or times out. */
int hook_run_sync(enum hook_event ev, const char *tmpl, const struct hook_vars *v,
		  unsigned timeout_ms);

#endif
