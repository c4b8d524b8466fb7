/*
 * Hooks on libuv: /bin/sh -c CMD with an explicit environment, output into a
 * pipe whose lines go to the log, a timer for the time limit.
 *
 * Life of one hook (struct hook, one heap allocation owning three handles):
 *
 *   hook_run      expand, build env, pipe, spawn (own process group), start
 *                 reading and the timer
 *   timer         at the limit: SIGTERM to the group; 2 s later SIGKILL
 *   exit_cb       status recorded; if the pipe is still open (a background
 *                 child holds it), the timer is re-armed for a short drain
 *   read_cb EOF   partial line flushed, pipe closed
 *   both done     status logged, every handle closed; the last close
 *                 callback calls `done` and frees the hook
 *
 * vtun ran hooks by blocking in waitpid and tinc with system(): either one
 * stalls every session for as long as the hook runs.  Here nothing blocks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hook.h"
#include "log.h"

#define HOOK_TIMEOUT_DEFAULT_MS 30000u
#define HOOK_KILL_GRACE_MS 2000u     /* SIGTERM -> SIGKILL */
/* After the shell exited, how long to wait for the output pipe to reach
 * EOF: a background child (`daemon &`) may hold it open forever. */
#define HOOK_DRAIN_MS 500u
#define HOOK_CMD_MAX 4096            /* expanded command line */
#define HOOK_LINE_MAX 400            /* logged per output line; the rest is cut */
#define HOOK_OUTPUT_MAX (64u * 1024) /* logged per hook; the rest is dropped */
#define HOOK_ENV_STORAGE 2048
#define HOOK_PREFIX_MAX 128

/* A fixed PATH: the daemon's own may come from whoever started it. */
#define HOOK_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct hook {
	uv_process_t proc;
	uv_pipe_t out;            /* stdout and stderr of the hook */
	uv_timer_t timer;         /* time limit, then kill grace, then drain */

	enum hook_event ev;
	hook_done_cb done;
	void *arg;
	unsigned timeout_ms;

	unsigned handles;         /* initialised and not yet closed */
	bool failed;              /* hook_run returned an error: no `done` */
	bool exited;              /* exit_cb ran */
	bool out_closed;          /* pipe at EOF (or given up on) and closing */
	bool timer_closed;
	bool term_sent, kill_sent;
	int status;               /* exit status, -signal, -ETIMEDOUT */
	int64_t exit_status;
	int term_signal;

	size_t line_len;
	bool line_cut;            /* current line longer than HOOK_LINE_MAX */
	size_t output_logged;
	bool output_truncated;

	char prefix[HOOK_PREFIX_MAX];      /* session name for log lines */
	char line[HOOK_LINE_MAX + 1];
	char rbuf[4096];
	char cmd[HOOK_CMD_MAX];
	char *envp[HOOK_ENV_MAX];
	char env_storage[HOOK_ENV_STORAGE];
};

const char *hook_event_name(enum hook_event ev)
{
	switch (ev) {
	case HOOK_UP: return "up";
	case HOOK_DOWN: return "down";
	case HOOK_CONNECT: return "connect";
	case HOOK_DISCONNECT: return "disconnect";
	}
	return "unknown";
}

/* ------------------------------------------------------- substitutions */

static bool hook_sequence_known(char c)
{
	return c != '\0' && strchr("d%hapAPm", c) != NULL;
}

bool hook_template_valid(const char *tmpl, char *bad, size_t badlen)
{
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		if (!hook_sequence_known(p[1])) {
			if (bad != NULL && badlen > 0)
				snprintf(bad, badlen, "%%%.1s", p + 1);
			return false;
		}
		p++;
	}
	return true;
}

/* Value of a known sequence; unknown values (NULL, port or MTU 0) are "". */
static const char *hook_sequence_value(char c, const struct hook_vars *v, char num[12])
{
	const char *s = NULL;
	unsigned n = 0;

	switch (c) {
	case 'd':
	case '%': s = v->device; break;
	case 'h': s = v->session; break;
	case 'a': s = v->peer_address; break;
	case 'A': s = v->local_address; break;
	case 'p': n = v->peer_port; break;
	case 'P': n = v->local_port; break;
	case 'm': n = v->mtu; break;
	}
	if (s != NULL)
		return s;
	if (n == 0)
		return "";
	snprintf(num, 12, "%u", n);
	return num;
}

int hook_expand(char *out, size_t outlen, const char *tmpl, const struct hook_vars *v)
{
	size_t len = 0;
	char num[12];

	/* Validity first, so a bad template is -EINVAL whatever its length:
	 * config validation reports the more useful of the two errors. */
	if (!hook_template_valid(tmpl, NULL, 0))
		return -EINVAL;
	if (outlen == 0)
		return -ENAMETOOLONG;
	for (const char *p = tmpl; *p != '\0'; p++) {
		const char *s = p;
		size_t n = 1;

		if (*p == '%') {
			s = hook_sequence_value(*++p, v, num);
			n = strlen(s);
		}
		if (n >= outlen - len)
			return -ENAMETOOLONG;
		memcpy(out + len, s, n);
		len += n;
	}
	out[len] = '\0';
	return len > INT32_MAX ? -ENAMETOOLONG : (int)len;
}

/* --------------------------------------------------------- environment */

struct env_builder {
	char **envp;
	char *storage;
	size_t storage_len;
	size_t used;
	int count;
};

static int env_add(struct env_builder *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int env_add(struct env_builder *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* One slot stays for the terminating NULL. */
	if (b->count >= HOOK_ENV_MAX - 1 || b->used >= b->storage_len)
		return -ENOSPC;
	va_start(ap, fmt);
	n = vsnprintf(b->storage + b->used, b->storage_len - b->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->storage_len - b->used)
		return -ENOSPC;
	b->envp[b->count++] = b->storage + b->used;
	b->used += (size_t)n + 1;
	return 0;
}

static const char *str_or_empty(const char *s) { return s != NULL ? s : ""; }
static bool str_known(const char *s) { return s != NULL && s[0] != '\0'; }

int hook_build_env(char **envp, char *storage, size_t storage_len,
		   enum hook_event ev, const struct hook_vars *v)
{
	struct env_builder b = { envp, storage, storage_len, 0, 0 };
	int err = 0;

	/* Always present, so scripts can test them without `${X-}`. */
	err = err ? err : env_add(&b, "SALTUN_EVENT=%s", hook_event_name(ev));
	err = err ? err : env_add(&b, "SALTUN_SESSION=%s", str_or_empty(v->session));
	err = err ? err : env_add(&b, "SALTUN_DEVICE=%s", str_or_empty(v->device));
	err = err ? err : env_add(&b, "SALTUN_TYPE=%s", str_or_empty(v->type));
	err = err ? err : env_add(&b, "SALTUN_MTU=%u", v->mtu);
	/* Only where known: an absent variable says "unknown" better than "". */
	if (!err && str_known(v->peer_address))
		err = env_add(&b, "SALTUN_PEER_ADDRESS=%s", v->peer_address);
	if (!err && v->peer_port != 0)
		err = env_add(&b, "SALTUN_PEER_PORT=%u", (unsigned)v->peer_port);
	if (!err && str_known(v->local_address))
		err = env_add(&b, "SALTUN_LOCAL_ADDRESS=%s", v->local_address);
	if (!err && v->local_port != 0)
		err = env_add(&b, "SALTUN_LOCAL_PORT=%u", (unsigned)v->local_port);
	if (!err && str_known(v->peer_key))
		err = env_add(&b, "SALTUN_PEER_KEY=%s", v->peer_key);
	err = err ? err : env_add(&b, "%s", HOOK_PATH);
	if (err)
		return err;
	envp[b.count] = NULL;
	return b.count;
}

/* ------------------------------------------------------------- running */

static void hook_on_close(uv_handle_t *handle)
{
	struct hook *h = handle->data;

	if (--h->handles > 0)
		return;
	/* Every handle is closed: nothing of ours is left on the loop. */
	if (!h->failed && h->done != NULL)
		h->done(h->arg, h->ev, h->status);
	free(h);
}

static void hook_close_handle(struct hook *h, uv_handle_t *handle)
{
	handle->data = h;
	uv_close(handle, hook_on_close);
}

/* Output lines are the hook's, so they are made harmless for the log:
 * control characters (escape sequences, CR) become '?'. */
static void hook_flush_line(struct hook *h)
{
	if (h->line_len == 0 && !h->line_cut)
		return;
	h->line[h->line_len] = '\0';
	if (!h->output_truncated) {
		if (h->output_logged + h->line_len > HOOK_OUTPUT_MAX) {
			h->output_truncated = true;
			log_info("%s: %s hook: output truncated", h->prefix, hook_event_name(h->ev));
		} else {
			h->output_logged += h->line_len + 1;
			log_info("%s: %s hook: %s%s", h->prefix, hook_event_name(h->ev), h->line,
				 h->line_cut ? " [...]" : "");
		}
	}
	h->line_len = 0;
	h->line_cut = false;
}

static void hook_take_output(struct hook *h, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\n') {
			hook_flush_line(h);
			continue;
		}
		if (h->line_len == HOOK_LINE_MAX) {
			h->line_cut = true;
			continue;
		}
		h->line[h->line_len++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
}

static void hook_log_status(struct hook *h)
{
	const char *ev = hook_event_name(h->ev);

	if (h->term_sent) {
		if (h->timeout_ms % 1000 == 0)
			log_warnx("%s: %s hook timed out after %u s, killed", h->prefix, ev,
				  h->timeout_ms / 1000);
		else
			log_warnx("%s: %s hook timed out after %u ms, killed", h->prefix, ev,
				  h->timeout_ms);
	} else if (h->term_signal != 0) {
		log_warnx("%s: %s hook failed: killed by signal %d", h->prefix, ev, h->term_signal);
	} else if (h->exit_status != 0) {
		log_warnx("%s: %s hook failed: exit status %" PRId64, h->prefix, ev, h->exit_status);
	} else {
		log_debug("%s: %s hook done", h->prefix, ev);
	}
}

/* Called when the process is reaped and the pipe is closed. */
static void hook_finish(struct hook *h)
{
	hook_log_status(h);
	if (!h->timer_closed) {
		h->timer_closed = true;
		uv_timer_stop(&h->timer);
		hook_close_handle(h, (uv_handle_t *)&h->timer);
	}
}

static void hook_close_output(struct hook *h)
{
	if (h->out_closed)
		return;
	hook_flush_line(h);
	h->out_closed = true;
	uv_read_stop((uv_stream_t *)&h->out);
	hook_close_handle(h, (uv_handle_t *)&h->out);
	if (h->exited)
		hook_finish(h);
}

static void hook_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	struct hook *h = container_of(handle, struct hook, out);

	/* One read is outstanding at a time on a stream: one buffer suffices. */
	*buf = uv_buf_init(h->rbuf, sizeof(h->rbuf));
}

static void hook_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct hook *h = container_of(stream, struct hook, out);

	if (nread > 0) {
		hook_take_output(h, buf->base, (size_t)nread);
		return;
	}
	if (nread == 0)
		return;
	if (nread != UV_EOF)
		log_debug("%s: %s hook: reading output: %s", h->prefix, hook_event_name(h->ev),
			  uv_strerror((int)nread));
	hook_close_output(h);
}

static void hook_on_timer(uv_timer_t *timer);

static void hook_on_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
	struct hook *h = container_of(proc, struct hook, proc);

	h->exited = true;
	h->exit_status = exit_status;
	h->term_signal = term_signal;
	if (h->term_sent)
		h->status = -ETIMEDOUT;
	else if (term_signal != 0)
		h->status = -term_signal;
	else
		h->status = exit_status > INT32_MAX ? INT32_MAX : (int)exit_status;
	hook_close_handle(h, (uv_handle_t *)&h->proc);

	if (h->out_closed) {
		hook_finish(h);
	} else {
		/* The rest of the output is normally already in the pipe; wait a
		 * little for EOF, not for a background child that keeps it. */
		uv_timer_stop(&h->timer);
		uv_timer_start(&h->timer, hook_on_timer, HOOK_DRAIN_MS, 0);
	}
}

static void hook_on_timer(uv_timer_t *timer)
{
	struct hook *h = container_of(timer, struct hook, timer);

	if (h->exited) {
		/* Drain time is over: stop reading; the hook's status stands. */
		hook_close_output(h);
		return;
	}
	/* The hook runs as the leader of its own process group (setsid by
	 * UV_PROCESS_DETACHED), so the whole group is signalled: a shell
	 * waiting for `sleep` dies from SIGTERM, the sleep would not.  The
	 * group id is still ours: the leader has not been reaped. */
	if (!h->term_sent) {
		h->term_sent = true;
		uv_kill(-h->proc.pid, SIGTERM);
		uv_timer_start(&h->timer, hook_on_timer, HOOK_KILL_GRACE_MS, 0);
	} else if (!h->kill_sent) {
		h->kill_sent = true;
		uv_kill(-h->proc.pid, SIGKILL);
	}
}

int hook_run(uv_loop_t *loop, enum hook_event ev, const char *tmpl,
	     const struct hook_vars *v, unsigned timeout_ms,
	     hook_done_cb done, void *arg)
{
	uv_process_options_t opt;
	uv_stdio_container_t stdio[3];
	char *args[4];
	struct hook *h;
	int fds[2] = { -1, -1 };
	int err;

	if (tmpl == NULL || v == NULL)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->ev = ev;
	h->done = done;
	h->arg = arg;
	h->timeout_ms = timeout_ms != 0 ? timeout_ms : HOOK_TIMEOUT_DEFAULT_MS;
	snprintf(h->prefix, sizeof(h->prefix), "%s", v->session != NULL ? v->session : "-");

	err = hook_expand(h->cmd, sizeof(h->cmd), tmpl, v);
	if (err < 0) {
		log_warnx("%s: %s hook: %s", h->prefix, hook_event_name(ev),
			  err == -EINVAL ? "unknown %-sequence" : "command too long");
		goto fail_free;
	}
	err = hook_build_env(h->envp, h->env_storage, sizeof(h->env_storage), ev, v);
	if (err < 0) {
		log_warnx("%s: %s hook: environment too large", h->prefix, hook_event_name(ev));
		goto fail_free;
	}
	/* Close-on-exec on both ends: the child gets the write end only as
	 * its fds 1 and 2 (dup2 clears the flag); no other hook or later
	 * child inherits either end. */
	if (pipe2(fds, O_CLOEXEC) < 0) {
		err = -errno;
		log_warn("%s: %s hook: pipe", h->prefix, hook_event_name(ev));
		goto fail_free;
	}

	/* From here on handles exist, and memory is released by the close
	 * callbacks, not here: `failed` keeps `done` from being called. */
	uv_pipe_init(loop, &h->out, 0);
	h->handles++;
	uv_timer_init(loop, &h->timer);
	h->handles++;
	err = uv_pipe_open(&h->out, fds[0]);
	if (err < 0) {
		close(fds[0]);
		close(fds[1]);
		goto fail_handles;
	}
	fds[0] = -1;
	err = uv_read_start((uv_stream_t *)&h->out, hook_on_alloc, hook_on_read);
	if (err < 0) {
		close(fds[1]);
		goto fail_handles;
	}

	args[0] = (char *)"/bin/sh";
	args[1] = (char *)"-c";
	args[2] = h->cmd;
	args[3] = NULL;
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = fds[1];
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = fds[1];
	memset(&opt, 0, sizeof(opt));
	opt.exit_cb = hook_on_exit;
	opt.file = args[0];
	opt.args = args;
	opt.env = h->envp;
	opt.stdio = stdio;
	opt.stdio_count = 3;
	/* Its own process group, so the time limit can kill what it started. */
	opt.flags = UV_PROCESS_DETACHED;

	log_debug("%s: running %s hook: %s", h->prefix, hook_event_name(ev), h->cmd);
	err = uv_spawn(loop, &h->proc, &opt);
	/* The child has its copy (or there is no child): ours would keep the
	 * pipe from ever reaching EOF. */
	close(fds[1]);
	/* uv_spawn initialises the handle even when it fails. */
	h->handles++;
	if (err < 0) {
		log_warnx("%s: %s hook: cannot run /bin/sh: %s", h->prefix, hook_event_name(ev),
			  uv_strerror(err));
		hook_close_handle(h, (uv_handle_t *)&h->proc);
		goto fail_handles;
	}
	/* The loop's cached time may be old (we may be deep in a callback
	 * that took a while): the limit counts from now. */
	uv_update_time(loop);
	uv_timer_start(&h->timer, hook_on_timer, h->timeout_ms, 0);
	return 0;

fail_handles:
	h->failed = true;
	h->out_closed = true;
	h->timer_closed = true;
	hook_close_handle(h, (uv_handle_t *)&h->out);
	hook_close_handle(h, (uv_handle_t *)&h->timer);
	return err;
fail_free:
	free(h);
	return err;
}

/* --------------------------------------------------------- synchronous */

struct hook_sync {
	bool done;
	int status;
};

static void hook_sync_done(void *arg, enum hook_event ev, int status)
{
	struct hook_sync *s = arg;

	s->done = true;
	s->status = status;
}

int hook_run_sync(enum hook_event ev, const char *tmpl, const struct hook_vars *v,
		  unsigned timeout_ms)
{
	struct hook_sync s = { false, 0 };
	uv_loop_t loop;
	int err, rc;

	err = uv_loop_init(&loop);
	if (err < 0)
		return err;
	err = hook_run(&loop, ev, tmpl, v, timeout_ms, hook_sync_done, &s);
	/* Also after a failure: the close callbacks free the hook. */
	uv_run(&loop, UV_RUN_DEFAULT);
	if (err == 0)
		err = s.done ? s.status : -EIO;
	rc = uv_loop_close(&loop);
	if (rc < 0)
		log_warnx("hook loop did not close: %s", uv_strerror(rc));
	return err;
}
