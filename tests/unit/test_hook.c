/*
 * Hooks: substitutions and environment (pure, table-driven), then real
 * /bin/sh processes on libuv loops: exit status, time limit, output into the
 * log, the loop kept running, every handle closed.
 *
 * Log lines go to stderr; each test that checks them points fd 2 at a file
 * (Criterion forks one process per test, so this stays within the test).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "hook.h"
#include "log.h"
#include "util.h"

#define KEY_B64 "hR8Wk2mNnA0qhKoZ5V6Qq3wqS1qkGZJ3sV4xW1t2Y3E="

static const struct hook_vars vars_full = {
	.session = "office",
	.device = "tap-office",
	.type = "tap",
	.mtu = 1420,
	.peer_address = "192.0.2.7",
	.peer_port = 5555,
	.local_address = "2001:db8::1",
	.local_port = 4444,
	.peer_key = KEY_B64,
};

static const struct hook_vars vars_empty = { 0 };

/* ------------------------------------------------------------ helpers */

static char tmpdir[64];

static void tmpdir_make(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/saltun-hook-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void tmpdir_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

static char *file_read(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	buf = malloc((size_t)len + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Point fd 2 (the log) at a file; log everything, debug included. */
static char logpath[128];

static void log_capture(void)
{
	int fd;

	tmpdir_make();
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	fflush(stderr);
	cr_assert_eq(dup2(fd, 2), 2);
	close(fd);
	log_init("saltun", LOG_SINK_STDERR, LOG_LEVEL_DEBUG);
}

static char *log_text(void)
{
	fflush(stderr);
	return file_read(logpath);
}

static size_t count_occurrences(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Bound a test's own run time: SIGALRM ends the test process, which
 * Criterion reports as a crash.  (Criterion's .timeout would do, but its
 * runner then leaks under LeakSanitizer when several timed tests run.) */
static void test_time_limit(unsigned seconds)
{
	alarm(seconds);
}

#define assert_log_has(text, line) \
	cr_assert_neq(strstr((text), (line)), NULL, "log lacks \"%s\":\n%s", (line), (text))

/* ------------------------------------------------------- substitutions */

struct expand_case {
	const char *tmpl;
	const struct hook_vars *v;
	size_t outlen;          /* 0: a big buffer */
	int ret;
	const char *want;       /* when ret >= 0 */
};

Test(hook, expand_table)
{
	static const struct expand_case cases[] = {
		/* every sequence */
		{ "", &vars_full, 0, 0, "" },
		{ "plain text", &vars_full, 0, 10, "plain text" },
		{ "%d", &vars_full, 0, 10, "tap-office" },
		{ "%%", &vars_full, 0, 10, "tap-office" },      /* vtun's spelling of %d */
		{ "%h", &vars_full, 0, 6, "office" },
		{ "%a", &vars_full, 0, 9, "192.0.2.7" },
		{ "%p", &vars_full, 0, 4, "5555" },
		{ "%A", &vars_full, 0, 11, "2001:db8::1" },
		{ "%P", &vars_full, 0, 4, "4444" },
		{ "%m", &vars_full, 0, 4, "1420" },
		{ "ip link set %d mtu %m up", &vars_full, 0, 34, "ip link set tap-office mtu 1420 up" },
		{ "%d%d", &vars_full, 0, 20, "tap-officetap-office" },
		{ "[%h] %a:%p -> %A:%P", &vars_full, 0, 43, "[office] 192.0.2.7:5555 -> 2001:db8::1:4444" },
		/* unknown values become "" */
		{ "[%d|%%|%h|%a|%p|%A|%P|%m]", &vars_empty, 0, 9, "[|||||||]" },
		/* unknown and trailing sequences */
		{ "100%x", &vars_full, 0, -EINVAL, NULL },
		{ "%D", &vars_full, 0, -EINVAL, NULL },
		{ "%", &vars_full, 0, -EINVAL, NULL },
		{ "abc%", &vars_full, 0, -EINVAL, NULL },
		{ "%%%", &vars_full, 0, -EINVAL, NULL },
		{ "% d", &vars_full, 0, -EINVAL, NULL },
		/* invalid wins over too long */
		{ "%d %d %q", &vars_full, 4, -EINVAL, NULL },
		/* overflow: exact fit, one short, nothing at all */
		{ "up %d", &vars_full, 14, 13, "up tap-office" },
		{ "up %d", &vars_full, 13, -ENAMETOOLONG, NULL },
		{ "up %d", &vars_full, 5, -ENAMETOOLONG, NULL },
		{ "abc", &vars_full, 4, 3, "abc" },
		{ "abc", &vars_full, 3, -ENAMETOOLONG, NULL },
		{ "", &vars_full, 1, 0, "" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct expand_case *c = &cases[i];
		char out[256];
		size_t outlen = c->outlen == 0 ? sizeof(out) - 1 : c->outlen;
		int ret;

		memset(out, 'Z', sizeof(out));
		ret = hook_expand(out, outlen, c->tmpl, c->v);
		cr_assert_eq(ret, c->ret, "case %zu \"%s\": %d, want %d", i, c->tmpl, ret, c->ret);
		if (c->ret >= 0) {
			cr_assert_str_eq(out, c->want, "case %zu", i);
			cr_assert_eq(strlen(out), (size_t)ret);
		}
		/* Never a byte past the buffer given. */
		cr_assert_eq(out[outlen], 'Z', "case %zu", i);
	}
	cr_assert_eq(hook_expand(NULL, 0, "x", &vars_full), -ENAMETOOLONG);
}

Test(hook, template_valid_table)
{
	static const struct {
		const char *tmpl;
		bool ok;
		const char *bad;
	} cases[] = {
		{ "", true, "" },
		{ "ip link set %d up", true, "" },
		{ "%d%%%h%a%p%A%P%m", true, "" },
		{ "echo 100%", false, "%" },
		{ "%x", false, "%x" },
		{ "%%%q", false, "%q" },
		{ "%d %Z %y", false, "%Z" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char bad[8] = "";

		cr_assert_eq(hook_template_valid(cases[i].tmpl, bad, sizeof(bad)), cases[i].ok,
			     "case %zu", i);
		cr_assert_str_eq(bad, cases[i].bad, "case %zu", i);
		cr_assert_eq(hook_template_valid(cases[i].tmpl, NULL, 0), cases[i].ok);
	}
}

Test(hook, event_names)
{
	cr_assert_str_eq(hook_event_name(HOOK_UP), "up");
	cr_assert_str_eq(hook_event_name(HOOK_DOWN), "down");
	cr_assert_str_eq(hook_event_name(HOOK_CONNECT), "connect");
	cr_assert_str_eq(hook_event_name(HOOK_DISCONNECT), "disconnect");
	cr_assert_str_eq(hook_event_name((enum hook_event)42), "unknown");
}

/* --------------------------------------------------------- environment */

#define PATH_ENTRY "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *const env_full[] = {
	"SALTUN_EVENT=connect",
	"SALTUN_SESSION=office",
	"SALTUN_DEVICE=tap-office",
	"SALTUN_TYPE=tap",
	"SALTUN_MTU=1420",
	"SALTUN_PEER_ADDRESS=192.0.2.7",
	"SALTUN_PEER_PORT=5555",
	"SALTUN_LOCAL_ADDRESS=2001:db8::1",
	"SALTUN_LOCAL_PORT=4444",
	"SALTUN_PEER_KEY=" KEY_B64,
	PATH_ENTRY,
};

static const struct hook_vars vars_up = {
	.session = "lab", .device = "tun7", .type = "tun", .mtu = 1380,
};

static const char *const env_up[] = {
	"SALTUN_EVENT=up",
	"SALTUN_SESSION=lab",
	"SALTUN_DEVICE=tun7",
	"SALTUN_TYPE=tun",
	"SALTUN_MTU=1380",
	PATH_ENTRY,
};

static void assert_env(char **envp, int n, const char *const *want, size_t nwant)
{
	cr_assert_eq(n, (int)nwant);
	for (size_t i = 0; i < nwant; i++)
		cr_assert_str_eq(envp[i], want[i], "entry %zu", i);
	cr_assert_null(envp[nwant]);
}

Test(hook, build_env_exact)
{
	static const struct hook_vars vars_blank = {
		.session = "s", .peer_address = "", .local_address = "", .peer_key = "",
	};
	static const char *const env_blank[] = {
		"SALTUN_EVENT=disconnect", "SALTUN_SESSION=s", "SALTUN_DEVICE=", "SALTUN_TYPE=",
		"SALTUN_MTU=0", PATH_ENTRY,
	};
	char *envp[HOOK_ENV_MAX];
	char storage[1024];

	assert_env(envp, hook_build_env(envp, storage, sizeof(storage), HOOK_CONNECT, &vars_full),
		   env_full, ARRAY_SIZE(env_full));
	assert_env(envp, hook_build_env(envp, storage, sizeof(storage), HOOK_UP, &vars_up),
		   env_up, ARRAY_SIZE(env_up));
	/* Empty strings count as unknown: absent, not "". */
	assert_env(envp, hook_build_env(envp, storage, sizeof(storage), HOOK_DISCONNECT,
					&vars_blank), env_blank, ARRAY_SIZE(env_blank));
}

Test(hook, build_env_nospace)
{
	char *envp[HOOK_ENV_MAX];
	char storage[1024];
	size_t need = 0;

	for (size_t i = 0; i < ARRAY_SIZE(env_full); i++)
		need += strlen(env_full[i]) + 1;
	cr_assert_eq(hook_build_env(envp, storage, need, HOOK_CONNECT, &vars_full),
		     (int)ARRAY_SIZE(env_full));
	cr_assert_eq(hook_build_env(envp, storage, need - 1, HOOK_CONNECT, &vars_full), -ENOSPC);
	cr_assert_eq(hook_build_env(envp, storage, 10, HOOK_CONNECT, &vars_full), -ENOSPC);
	cr_assert_eq(hook_build_env(envp, storage, 0, HOOK_CONNECT, &vars_full), -ENOSPC);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split at `sep`, sort, compare with `want` sorted. */
static void assert_lines_set(char *text, char sep, const char *const *want, size_t nwant)
{
	const char *got[32], *exp[32];
	size_t n = 0;
	char seps[2] = { sep, '\0' };

	for (char *tok = strtok(text, seps); tok != NULL; tok = strtok(NULL, seps)) {
		cr_assert_lt(n, ARRAY_SIZE(got));
		got[n++] = tok;
	}
	cr_assert_eq(n, nwant, "%zu variables, want %zu", n, nwant);
	memcpy(exp, want, nwant * sizeof(*want));
	qsort(got, n, sizeof(*got), cmp_str);
	qsort(exp, nwant, sizeof(*exp), cmp_str);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(got[i], exp[i]);
}

Test(hook, run_env_is_exact_and_private)
{
	char tmpl[256], path[128];
	char *text;

	tmpdir_make();
	cr_assert_eq(setenv("SECRET_LEAK", "1", 1), 0);
	/* /proc/$$/environ is exactly what the shell got from execve (NUL
	 * separated); `env` also shows what the shell adds itself (PWD). */
	snprintf(tmpl, sizeof(tmpl), "tr '\\0' '\\n' < /proc/$$/environ > %s/environ && env > %s/env",
		 tmpdir, tmpdir);
	cr_assert_eq(hook_run_sync(HOOK_CONNECT, tmpl, &vars_full, 5000), 0);

	snprintf(path, sizeof(path), "%s/environ", tmpdir);
	text = file_read(path);
	assert_lines_set(text, '\n', env_full, ARRAY_SIZE(env_full));
	free(text);

	snprintf(path, sizeof(path), "%s/env", tmpdir);
	text = file_read(path);
	cr_assert_null(strstr(text, "SECRET_LEAK"), "daemon environment leaked:\n%s", text);
	cr_assert_not_null(strstr(text, "SALTUN_PEER_KEY=" KEY_B64 "\n"));
	free(text);
	tmpdir_remove();
}

/* ------------------------------------------------------- exit statuses */

Test(hook, exit_status_reported_and_logged)
{
	static const struct {
		const char *cmd;
		int status;
		const char *line;
	} cases[] = {
		{ "true", 0, "saltun: office: up hook done\n" },
		{ "exit 3", 3, "saltun: office: up hook failed: exit status 3\n" },
		{ "exit 255", 255, "saltun: office: up hook failed: exit status 255\n" },
		{ "kill -9 $$", -9, "saltun: office: up hook failed: killed by signal 9\n" },
		{ "kill -TERM $$", -15, "saltun: office: up hook failed: killed by signal 15\n" },
		{ "no-such-command-xyz", 127, "saltun: office: up hook failed: exit status 127\n" },
	};
	char *text;

	log_capture();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		cr_assert_eq(hook_run_sync(HOOK_UP, cases[i].cmd, &vars_full, 5000),
			     cases[i].status, "case %zu: %s", i, cases[i].cmd);
	text = log_text();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_log_has(text, cases[i].line);
	/* The shell's complaint is output of the hook, logged as such. */
	assert_log_has(text, "saltun: office: up hook: /bin/sh: 1: no-such-command-xyz: not found\n");
	free(text);
	tmpdir_remove();
}

Test(hook, stdin_is_dev_null)
{
	char *text;

	log_capture();
	cr_assert_eq(hook_run_sync(HOOK_DOWN, "if read x; then echo got \"$x\"; else echo eof; fi",
				   &vars_full, 5000), 0);
	text = log_text();
	assert_log_has(text, "saltun: office: down hook: eof\n");
	free(text);
	tmpdir_remove();
}

/* -------------------------------------------------------------- timeouts */

Test(hook, timeout_kills_quickly)
{
	test_time_limit(10);
	uint64_t t0 = util_now_ms(), dt;
	char *text;

	log_capture();
	cr_assert_eq(hook_run_sync(HOOK_UP, "sleep 60", &vars_full, 500), -ETIMEDOUT);
	dt = util_now_ms() - t0;
	cr_assert_geq(dt, 450);
	cr_assert_lt(dt, 1500, "took %llu ms", (unsigned long long)dt);
	text = log_text();
	assert_log_has(text, "saltun: office: up hook timed out after 500 ms, killed\n");
	cr_assert_null(strstr(text, "exit status"));
	free(text);
	tmpdir_remove();
}

/* A hook that ignores SIGTERM (and so does its `sleep`: an ignored signal
 * stays ignored across exec) is killed 2 s later. */
Test(hook, timeout_escalates_to_sigkill)
{
	test_time_limit(15);
	uint64_t t0 = util_now_ms(), dt;
	char *text;

	log_capture();
	cr_assert_eq(hook_run_sync(HOOK_DOWN, "trap '' TERM; sleep 60; echo survived",
				   &vars_full, 1000), -ETIMEDOUT);
	dt = util_now_ms() - t0;
	cr_assert_geq(dt, 2900, "took %llu ms", (unsigned long long)dt);
	cr_assert_lt(dt, 4500, "took %llu ms", (unsigned long long)dt);
	text = log_text();
	assert_log_has(text, "saltun: office: down hook timed out after 1 s, killed\n");
	cr_assert_null(strstr(text, "down hook: survived"));
	free(text);
	tmpdir_remove();
}

static bool pid_gone(pid_t pid)
{
	char path[64], stat[256];
	FILE *f;
	char *rp;
	bool gone;

	/* Gone, or a zombie waiting for whoever reaps orphans here. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return true;
	gone = fgets(stat, sizeof(stat), f) != NULL && (rp = strrchr(stat, ')')) != NULL &&
	       rp[1] == ' ' && rp[2] == 'Z';
	fclose(f);
	return gone;
}

/* The time limit reaches what the hook started, not only the shell. */
Test(hook, timeout_kills_the_process_group)
{
	test_time_limit(10);
	char tmpl[256], path[128];
	char *text;
	pid_t pid;
	bool gone = false;

	tmpdir_make();
	snprintf(tmpl, sizeof(tmpl), "sleep 60 & echo $! > %s/pid; wait", tmpdir);
	cr_assert_eq(hook_run_sync(HOOK_UP, tmpl, &vars_full, 500), -ETIMEDOUT);
	snprintf(path, sizeof(path), "%s/pid", tmpdir);
	text = file_read(path);
	pid = (pid_t)atoi(text);
	free(text);
	cr_assert_gt(pid, 1);
	for (int i = 0; i < 50 && !gone; i++) {
		gone = pid_gone(pid);
		if (!gone)
			usleep(20000);
	}
	if (!gone)
		kill(pid, SIGKILL);
	cr_assert(gone, "background sleep %d survived the time limit", (int)pid);
	tmpdir_remove();
}

/* ----------------------------------------------------------------- output */

Test(hook, output_lines_reach_the_log)
{
	char *text;

	log_capture();
	cr_assert_eq(hook_run_sync(HOOK_CONNECT,
				   "echo hello %h; echo to-stderr >&2; echo; "
				   "printf 'esc\\033[31mred\\r\\n'; printf 'tab\\there\\n'; "
				   "printf 'no newline'",
				   &vars_full, 5000), 0);
	text = log_text();
	assert_log_has(text, "saltun: office: connect hook: hello office\n");
	assert_log_has(text, "saltun: office: connect hook: to-stderr\n");
	assert_log_has(text, "saltun: office: connect hook: esc?[31mred?\n");
	assert_log_has(text, "saltun: office: connect hook: tab\there\n");
	assert_log_has(text, "saltun: office: connect hook: no newline\n");
	/* Empty lines are not logged. */
	cr_assert_eq(count_occurrences(text, "office: connect hook: "), 5, "%s", text);
	free(text);
	tmpdir_remove();
}

Test(hook, output_long_line_is_cut)
{
	char want[512 + 64];
	char *text;

	log_capture();
	cr_assert_eq(hook_run_sync(HOOK_UP, "head -c 1000 /dev/zero | tr '\\0' x; echo; echo next",
				   &vars_full, 5000), 0);
	text = log_text();
	snprintf(want, sizeof(want), "saltun: office: up hook: %.400s [...]\n",
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	assert_log_has(text, want);
	assert_log_has(text, "saltun: office: up hook: next\n");
	free(text);
	tmpdir_remove();
}

/* 10000 lines of 10 characters: 64 KiB hold 5957 of them (11 bytes each
 * with the newline), then one "output truncated" and silence; the hook
 * still runs to its end and its status counts. */
Test(hook, output_total_is_capped)
{
	test_time_limit(20);
	char *text;

	log_capture();
	cr_assert_eq(hook_run_sync(HOOK_UP, "i=0; while [ $i -lt 10000 ]; do echo 0123456789; "
				   "i=$((i+1)); done; exit 4", &vars_full, 15000), 4);
	text = log_text();
	cr_assert_eq(count_occurrences(text, "saltun: office: up hook: 0123456789\n"), 5957);
	cr_assert_eq(count_occurrences(text, "saltun: office: up hook: output truncated\n"), 1);
	assert_log_has(text, "saltun: office: up hook failed: exit status 4\n");
	free(text);
	tmpdir_remove();
}

/* A background child keeps the output pipe open; the hook is done when the
 * shell exits (plus a short drain), not when the child does. */
Test(hook, background_child_does_not_hold_the_hook)
{
	test_time_limit(10);
	char tmpl[256], path[128];
	uint64_t t0 = util_now_ms(), dt;
	char *text;

	log_capture();
	snprintf(tmpl, sizeof(tmpl), "sleep 5 & echo $! > %s/pid; echo started", tmpdir);
	cr_assert_eq(hook_run_sync(HOOK_UP, tmpl, &vars_full, 3000), 0);
	dt = util_now_ms() - t0;
	cr_assert_lt(dt, 2000, "took %llu ms", (unsigned long long)dt);
	text = log_text();
	assert_log_has(text, "saltun: office: up hook: started\n");
	assert_log_has(text, "saltun: office: up hook done\n");
	free(text);
	snprintf(path, sizeof(path), "%s/pid", tmpdir);
	text = file_read(path);
	kill((pid_t)atoi(text), SIGKILL);
	free(text);
	tmpdir_remove();
}

/* ------------------------------------------------------ on a running loop */

struct loop_probe {
	uint64_t t0;
	uint64_t timer_t0;
	uint64_t timer_at;
	uint64_t done_at;
	bool hook_done_when_timer_fired;
	int done_calls;
	int status;
	enum hook_event ev;
	void *arg_seen;
};

static void probe_timer(uv_timer_t *t)
{
	struct loop_probe *p = t->data;

	p->timer_at = util_now_ms() - p->t0;
	p->hook_done_when_timer_fired = p->done_calls > 0;
	uv_close((uv_handle_t *)t, NULL);
}

static void probe_done(void *arg, enum hook_event ev, int status)
{
	struct loop_probe *p = arg;

	p->done_at = util_now_ms() - p->t0;
	p->done_calls++;
	p->status = status;
	p->ev = ev;
	p->arg_seen = arg;
}

Test(hook, does_not_block_the_loop)
{
	test_time_limit(10);
	struct loop_probe p = { 0 };
	uv_loop_t loop;
	uv_timer_t timer;

	cr_assert_eq(uv_loop_init(&loop), 0);
	p.t0 = util_now_ms();
	cr_assert_eq(hook_run(&loop, HOOK_DISCONNECT, "sleep 1; exit 6", &vars_full, 5000,
			      probe_done, &p), 0);
	/* hook_run itself returned at once. */
	cr_assert_lt(util_now_ms() - p.t0, 500);
	cr_assert_eq(uv_timer_init(&loop, &timer), 0);
	timer.data = &p;
	/* The loop's clock was cached at uv_loop_init; spawning took time. */
	uv_update_time(&loop);
	p.timer_t0 = util_now_ms();
	cr_assert_eq(uv_timer_start(&timer, probe_timer, 100, 0), 0);
	cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);

	/* libuv's clock may be the coarse one: a few ms of slack below. */
	cr_assert(!p.hook_done_when_timer_fired);
	cr_assert_geq(p.timer_at - (p.timer_t0 - p.t0), 90);
	cr_assert_lt(p.timer_at - (p.timer_t0 - p.t0), 600, "timer fired after %llu ms",
		     (unsigned long long)p.timer_at);
	cr_assert_eq(p.done_calls, 1);
	cr_assert_eq(p.status, 6);
	cr_assert_eq(p.ev, HOOK_DISCONNECT);
	cr_assert_eq(p.arg_seen, &p);
	cr_assert_geq(p.done_at, 950);
	cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(hook, concurrent_hooks_on_one_loop)
{
	test_time_limit(10);
	struct loop_probe p[3] = { { 0 } };
	static const char *const cmds[] = { "sleep 0.3; exit 1", "exit 2", "sleep 0.1" };
	uv_loop_t loop;

	cr_assert_eq(uv_loop_init(&loop), 0);
	for (size_t i = 0; i < ARRAY_SIZE(p); i++) {
		p[i].t0 = util_now_ms();
		cr_assert_eq(hook_run(&loop, (enum hook_event)i, cmds[i], &vars_full, 5000,
				      probe_done, &p[i]), 0);
	}
	cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	cr_assert_eq(p[0].done_calls, 1);
	cr_assert_eq(p[1].done_calls, 1);
	cr_assert_eq(p[2].done_calls, 1);
	cr_assert_eq(p[0].status, 1);
	cr_assert_eq(p[1].status, 2);
	cr_assert_eq(p[2].status, 0);
	cr_assert_eq(p[0].ev, HOOK_UP);
	cr_assert_eq(p[1].ev, HOOK_DOWN);
	cr_assert_eq(p[2].ev, HOOK_CONNECT);
	cr_assert_lt(p[1].done_at, p[2].done_at);
	cr_assert_lt(p[2].done_at, p[0].done_at);
	cr_assert_eq(uv_loop_close(&loop), 0);
}

/* --------------------------------------------------------------- errors */

static void must_not_be_called(void *arg, enum hook_event ev, int status)
{
	cr_assert_fail("done called after hook_run failed (status %d)", status);
}

Test(hook, run_errors_never_call_done)
{
	char big[5000];
	uv_loop_t loop;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(hook_run(&loop, HOOK_UP, "echo %q", &vars_full, 0, must_not_be_called, NULL),
		     -EINVAL);
	cr_assert_eq(hook_run(&loop, HOOK_UP, big, &vars_full, 0, must_not_be_called, NULL),
		     -ENAMETOOLONG);
	cr_assert_eq(hook_run(&loop, HOOK_UP, NULL, &vars_full, 0, must_not_be_called, NULL),
		     -EINVAL);
	cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	cr_assert_eq(uv_loop_close(&loop), 0);
	cr_assert_eq(hook_run_sync(HOOK_DOWN, "exit %z", &vars_full, 0), -EINVAL);
}

/* uv_spawn itself failing (here: /bin/sh not executable, in a private
 * mount namespace): its handles are closed and freed (the sanitizer build
 * checks for leaks), `done` is not called, the loop closes cleanly. */
Test(hook, spawn_failure_cleans_up)
{
	uv_loop_t loop;

	if (geteuid() != 0)
		cr_skip_test("not root: cannot hide /bin/sh in a mount namespace");
	if (unshare(CLONE_NEWNS) != 0)
		cr_skip_test("unshare(CLONE_NEWNS): %s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	cr_assert_eq(mount("/dev/null", "/bin/sh", NULL, MS_BIND, NULL), 0, "%s", strerror(errno));

	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(hook_run(&loop, HOOK_UP, "true", &vars_full, 0, must_not_be_called, NULL),
		     -EACCES);
	cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	cr_assert_eq(uv_loop_close(&loop), 0);
	cr_assert_eq(hook_run_sync(HOOK_UP, "true", &vars_full, 0), -EACCES);
}
