/*
 * The privileged process does not trust the network process (priv.h): it
 * may be compromised and send anything.  Each test forks a privileged
 * process serving one end of a socketpair (priv_serve_fd, the code
 * priv_start runs after its fork) and plays the network process on the
 * other end with crafted datagrams (priv_msg.h).  Every hostile message
 * must be refused with its log line, do nothing (no hook runs, no device,
 * no descriptor kept), and leave the process serving: a valid request
 * after all of them is answered, and closing our end ends it with 0.
 *
 * The config's hooks `touch` marker files in the test's directory, so a
 * hook that ran shows.  Device cases need root and a network namespace
 * of their own; the rest need neither.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "conf.h"
#include "hook.h"
#include "priv.h"
#include "priv_msg.h"

#define PRIV1 "IHZcfT82sph4ph15MvNDnCaA2ibvgfi+LnYnEm54Eko="
#define PUB3 "/bsmUpyupcSqd1PfXDLJqCqehRJH2PmwiR/0U2c3+WU="

#define TIMEOUT_MS 5000

/* The refusals' log lines (priv.c). */
#define LOG_MALFORMED "privsep: refused a malformed message from the network process"
#define LOG_OPEN_UNKNOWN "privsep: device asked for an unknown session"
#define LOG_OPEN_MTU "office: privsep: device asked with mtu"
#define LOG_OPEN_TWICE "office: privsep: the session has its device already"
#define LOG_HOOK_NAME "privsep: hook refused: unterminated session name"
#define LOG_HOOK_EVENT "privsep: hook refused: unknown event"
#define LOG_HOOK_PEER "privsep: hook refused: peer address is not an address"
#define LOG_HOOK_LOCAL "privsep: hook refused: local address is not an address"
#define LOG_HOOK_NODEV "privsep: hook refused: no such session with a device"
#define LOG_CLOSE "privsep: close of a device that is not open"
#define LOG_HOOK_BUSY "office: privsep: hook refused: 8 hooks already running"

/* ------------------------------------------------------------ the server */

struct server {
	char dir[64];
	char conf_path[128];
	char log_path[128];
	pid_t pid;
	int fd;                 /* our end: we are the network process */
};

static void path_in(char *out, size_t outlen, const struct server *s, const char *name)
{
	snprintf(out, outlen, "%s/%s", s->dir, name);
}

static bool exists_in(const struct server *s, const char *name)
{
	char path[128];

	path_in(path, sizeof(path), s, name);
	return access(path, F_OK) == 0;
}

/* A config as the daemon would load: one session whose every hook leaves
 * a marker, so that any hook run shows. */
static void config_write(struct server *s)
{
	FILE *f;
	int fd;

	fd = open(s->conf_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", s->conf_path, strerror(errno));
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"[global]\n"
		"private_key = " PRIV1 "\n"
		"listen = 0.0.0.0:5555\n"
		"control = %s/control.sock\n"
		"\n"
		"[office]\n"
		"public_key = " PUB3 "\n"
		"endpoint = 192.0.2.2:5555\n"
		"type = tun\n"
		"device = stest%%d\n"
		"mtu = 1400\n"
		"hook_timeout = 5\n"
		"up = touch %s/up-ran\n"
		"down = touch %s/down-ran\n"
		"connect = sleep 1 && touch %s/connect-ran\n"
		"disconnect = touch %s/disconnect-ran\n",
		s->dir, s->dir, s->dir, s->dir, s->dir);
	cr_assert_eq(fclose(f), 0);
}

/* Fork the privileged process: it serves its end with its log (fd 2) in
 * a file and exits with what priv_serve_fd returned. */
static void server_start(struct server *s)
{
	struct conf c;
	int sv[2];

	snprintf(s->dir, sizeof(s->dir), "/tmp/saltun-priv-XXXXXX");
	cr_assert_not_null(mkdtemp(s->dir));
	path_in(s->conf_path, sizeof(s->conf_path), s, "saltun.conf");
	path_in(s->log_path, sizeof(s->log_path), s, "log");
	config_write(s);
	cr_assert_eq(conf_load(&c, s->conf_path, stderr), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	s->pid = fork();
	cr_assert_geq(s->pid, 0);
	if (s->pid == 0) {
		int logfd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
		if (logfd < 0 || dup2(logfd, STDERR_FILENO) < 0)
			_exit(100);
		close(logfd);
		close(sv[0]);
		int rc = priv_serve_fd(&c, s->conf_path, sv[1]);
		conf_free(&c);
		_exit(rc == 0 ? 0 : 101);
	}
	close(sv[1]);
	conf_free(&c);
	s->fd = sv[0];
}

/* Close our end: the server must return 0 and exit on its own. */
static void server_stop(struct server *s)
{
	int wstatus;

	close(s->fd);
	s->fd = -1;
	cr_assert_eq(waitpid(s->pid, &wstatus, 0), s->pid);
	cr_assert(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0,
		  "the privileged process did not end cleanly (status 0x%x)", wstatus);
}

static void server_remove(struct server *s)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	cr_assert_eq(system(cmd), 0);
}

/* The log so far ("" before the server made the file). */
static char *log_read(const struct server *s)
{
	FILE *f = fopen(s->log_path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (f == NULL) {
		cr_assert_eq(errno, ENOENT, "%s: %s", s->log_path, strerror(errno));
		return strdup("");
	}
	if (getdelim(&buf, &len, '\0', f) < 0) {
		cr_assert(feof(f), "%s: %s", s->log_path, strerror(errno));
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	cr_assert_not_null(buf);
	return buf;
}

static unsigned count_of(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *at = hay; (at = strstr(at, needle)) != NULL; at += strlen(needle))
		n++;
	return n;
}

/* Wait until `line` is in the log `want` times (no reply tells us when a
 * refusal without one was handled). */
static void log_wait(const struct server *s, const char *line, unsigned want, const char *what)
{
	unsigned have = 0;

	for (int waited = 0; waited < TIMEOUT_MS; waited += 10) {
		char *log = log_read(s);
		have = count_of(log, line);
		free(log);
		if (have >= want)
			return;
		usleep(10000);
	}
	cr_assert_fail("%s: '%s' logged %u times, want %u", what, line, have, want);
}

/* ------------------------------------------------------------ the wire */

/* Send one raw datagram with `nfds` descriptors attached. */
static void send_raw(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	cr_assert_leq(nfds, 8u);
	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	cr_assert_eq(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len, "sendmsg: %s",
		     strerror(errno));
}

/* Receive one reply; *fd gets the descriptor attached, or -1. */
static ssize_t recv_reply(int sock, union priv_msg *m, int *fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	ssize_t n;

	*fd = -1;
	memset(m, 0, sizeof(*m));
	cr_assert_eq(poll(&pfd, 1, TIMEOUT_MS), 1, "no reply from the privileged process");
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	cr_assert_gt(n, 0, "the privileged process went away");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return n;
}

static struct priv_open msg_open(const char *session, uint32_t mtu)
{
	struct priv_open m = { .type = PRIV_OPEN, .mtu = mtu };

	snprintf(m.session, sizeof(m.session), "%s", session);
	return m;
}

static struct priv_hook msg_hook(uint32_t id, uint32_t event, const char *session,
				 const char *peer, const char *local)
{
	struct priv_hook m = { .type = PRIV_HOOK, .id = id, .event = event,
			       .peer_port = 5555, .local_port = 4444 };

	snprintf(m.session, sizeof(m.session), "%s", session);
	snprintf(m.peer_address, sizeof(m.peer_address), "%s", peer);
	snprintf(m.local_address, sizeof(m.local_address), "%s", local);
	return m;
}

static struct priv_close msg_close(const char *session)
{
	struct priv_close m = { .type = PRIV_CLOSE };

	snprintf(m.session, sizeof(m.session), "%s", session);
	return m;
}

/* Fill a string field to its end with no NUL, starting with `text`. */
static void unterminate(char *field, size_t size, const char *text)
{
	memset(field, 'x', size);
	memcpy(field, text, strnlen(text, size));
}

/* ------------------------------------------------------------ the cases */

/*
 * One hostile request: the datagram, the descriptors sent with it, the
 * reply it must get (0: none), and the refusal's log line.
 */
struct hostile {
	const char *what;
	union {
		union priv_msg m;
		uint8_t raw[256];
	} u;
	size_t len;
	unsigned nfds;
	uint32_t reply;
	int32_t rc;             /* PRIV_OPENED rc or PRIV_HOOK_DONE status */
	const char *log;
};

static unsigned hostile_table(struct hostile *t)
{
	unsigned n = 0;

	/* Framing: size against type, type against direction. */
	t[n++] = (struct hostile){ "empty message", .len = 0, .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "empty message with a descriptor", .len = 0, .nfds = 1,
				   .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "2 bytes: shorter than any type", .u.m.type = PRIV_CONF,
				   .len = 2, .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "OPEN one byte short", .u.m.open = msg_open("office", 1400),
				   .len = sizeof(struct priv_open) - 1, .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "OPEN one byte short, with a descriptor",
				   .u.m.open = msg_open("office", 1400),
				   .len = sizeof(struct priv_open) - 1, .nfds = 1,
				   .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "CONF one byte long", .u.m.type = PRIV_CONF,
				   .len = sizeof(struct priv_conf) + 1, .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "HOOK one byte long",
				   .u.m.hook = msg_hook(1, HOOK_UP, "office", "", ""),
				   .len = sizeof(struct priv_hook) + 1, .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "longer than any message (truncated)", .u.m.type = PRIV_HOOK,
				   .len = sizeof(t->u.raw), .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "type 0", .u.m.type = 0, .len = 4, .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "type after the last", .u.m.type = PRIV_READY + 1,
				   .len = sizeof(struct priv_ready), .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "type 0xffffffff", .u.m.type = 0xffffffffu, .len = 4,
				   .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "OPENED (a reply) as a request", .u.m.type = PRIV_OPENED,
				   .len = sizeof(struct priv_opened), .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "HOOK_DONE (a reply) as a request", .u.m.type = PRIV_HOOK_DONE,
				   .len = sizeof(struct priv_hook_done), .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "CONF_REPLY (a reply) as a request",
				   .u.m.type = PRIV_CONF_REPLY,
				   .len = sizeof(struct priv_conf_reply), .nfds = 1,
				   .log = LOG_MALFORMED };
	t[n++] = (struct hostile){ "CONF with 6 descriptors (control truncated)",
				   .u.m.type = PRIV_CONF, .len = sizeof(struct priv_conf),
				   .nfds = 6, .log = LOG_MALFORMED };

	/* OPEN: only a session of the config, only an MTU in range. */
	t[n++] = (struct hostile){ "OPEN of a session not in the config",
				   .u.m.open = msg_open("nosuch", 1400),
				   .len = sizeof(struct priv_open), .reply = PRIV_OPENED,
				   .rc = -ENOENT, .log = LOG_OPEN_UNKNOWN };
	t[n] = (struct hostile){ "OPEN with an unterminated session name",
				 .u.m.open = msg_open("", 1400), .len = sizeof(struct priv_open),
				 .reply = PRIV_OPENED, .rc = -ENOENT, .log = LOG_OPEN_UNKNOWN };
	unterminate(t[n].u.m.open.session, sizeof(t[n].u.m.open.session), "office");
	n++;
	static const uint32_t bad_mtus[] = { 0, CONF_MTU_MIN - 1, 1401 /* > the session's */,
					     CONF_MTU_MAX + 1, 0xffffffffu };
	for (unsigned i = 0; i < sizeof(bad_mtus) / sizeof(bad_mtus[0]); i++)
		t[n++] = (struct hostile){ "OPEN with an MTU out of range",
					   .u.m.open = msg_open("office", bad_mtus[i]),
					   .len = sizeof(struct priv_open), .reply = PRIV_OPENED,
					   .rc = -EINVAL, .log = LOG_OPEN_MTU };

	/* HOOK: checked fields first, then the device. */
	t[n] = (struct hostile){ "HOOK with an unterminated session name",
				 .u.m.hook = msg_hook(11, HOOK_UP, "", "", ""),
				 .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				 .rc = -EINVAL, .log = LOG_HOOK_NAME };
	unterminate(t[n].u.m.hook.session, sizeof(t[n].u.m.hook.session), "office");
	n++;
	t[n++] = (struct hostile){ "HOOK with event 4", .u.m.hook = msg_hook(12, 4, "office", "", ""),
				   .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				   .rc = -EINVAL, .log = LOG_HOOK_EVENT };
	t[n++] = (struct hostile){ "HOOK with event 0xffffffff",
				   .u.m.hook = msg_hook(13, 0xffffffffu, "office", "", ""),
				   .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				   .rc = -EINVAL, .log = LOG_HOOK_EVENT };
	t[n++] = (struct hostile){ "HOOK with a shell command as peer address",
				   .u.m.hook = msg_hook(14, HOOK_UP, "office",
							"1.2.3.4; touch /tmp/x", ""),
				   .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				   .rc = -EINVAL, .log = LOG_HOOK_PEER };
	t[n++] = (struct hostile){ "HOOK with a host name as peer address",
				   .u.m.hook = msg_hook(15, HOOK_CONNECT, "office", "localhost", ""),
				   .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				   .rc = -EINVAL, .log = LOG_HOOK_PEER };
	t[n] = (struct hostile){ "HOOK with an unterminated peer address",
				 .u.m.hook = msg_hook(16, HOOK_UP, "office", "", ""),
				 .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				 .rc = -EINVAL, .log = LOG_HOOK_PEER };
	unterminate(t[n].u.m.hook.peer_address, sizeof(t[n].u.m.hook.peer_address), "1.2.3.4");
	n++;
	t[n] = (struct hostile){ "HOOK with an unterminated local address",
				 .u.m.hook = msg_hook(17, HOOK_UP, "office", "192.0.2.7", ""),
				 .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				 .rc = -EINVAL, .log = LOG_HOOK_LOCAL };
	unterminate(t[n].u.m.hook.local_address, sizeof(t[n].u.m.hook.local_address), "::1");
	n++;
	t[n++] = (struct hostile){ "HOOK with a scoped IPv6 local address",
				   .u.m.hook = msg_hook(18, HOOK_UP, "office", "", "fe80::1%lo"),
				   .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				   .rc = -EINVAL, .log = LOG_HOOK_LOCAL };
	t[n++] = (struct hostile){ "HOOK for a session with no device",
				   .u.m.hook = msg_hook(19, HOOK_UP, "office", "192.0.2.7", "::1"),
				   .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				   .rc = -EINVAL, .log = LOG_HOOK_NODEV };
	t[n++] = (struct hostile){ "HOOK for a session not in the config",
				   .u.m.hook = msg_hook(20, HOOK_UP, "nosuch", "", ""),
				   .len = sizeof(struct priv_hook), .reply = PRIV_HOOK_DONE,
				   .rc = -EINVAL, .log = LOG_HOOK_NODEV };
	t[n++] = (struct hostile){ "HOOK with a descriptor",
				   .u.m.hook = msg_hook(21, HOOK_DOWN, "office", "", ""),
				   .len = sizeof(struct priv_hook), .nfds = 1,
				   .reply = PRIV_HOOK_DONE, .rc = -EINVAL, .log = LOG_HOOK_NODEV };

	/* CLOSE: only a device that is open. */
	t[n++] = (struct hostile){ "CLOSE of a device that is not open",
				   .u.m.close = msg_close("office"),
				   .len = sizeof(struct priv_close), .log = LOG_CLOSE };
	t[n] = (struct hostile){ "CLOSE with an unterminated session name",
				 .u.m.close = msg_close(""), .len = sizeof(struct priv_close),
				 .log = LOG_CLOSE };
	unterminate(t[n].u.m.close.session, sizeof(t[n].u.m.close.session), "office");
	n++;
	t[n++] = (struct hostile){ "CLOSE with 3 descriptors", .u.m.close = msg_close("nosuch"),
				   .len = sizeof(struct priv_close), .nfds = 3, .log = LOG_CLOSE };
	return n;
}

/* Send one hostile request, check its reply (if any) and its log line.
 * `pipes` collects read ends whose write ends were sent: each must see
 * EOF once the server closed what it was given. */
static void hostile_send(struct server *s, const struct hostile *h, unsigned *logged,
			 const char *const *lines, unsigned nlines, int *pipes, unsigned *npipes)
{
	int fds[8];
	union priv_msg rep;
	int rfd;

	for (unsigned i = 0; i < h->nfds; i++) {
		int p[2];
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		pipes[(*npipes)++] = p[0];
		fds[i] = p[1];
	}
	send_raw(s->fd, h->u.raw, h->len, fds, h->nfds);
	for (unsigned i = 0; i < h->nfds; i++)
		close(fds[i]);
	if (h->reply != 0) {
		ssize_t n = recv_reply(s->fd, &rep, &rfd);
		cr_assert_eq(rep.type, h->reply, "%s: reply type %u, want %u", h->what, rep.type,
			     h->reply);
		cr_assert_eq(rfd, -1, "%s: a descriptor came with the refusal", h->what);
		if (h->reply == PRIV_OPENED) {
			cr_assert_eq((size_t)n, sizeof(struct priv_opened));
			cr_assert_eq(rep.opened.rc, h->rc, "%s: rc %d, want %d", h->what,
				     rep.opened.rc, h->rc);
		} else {
			cr_assert_eq((size_t)n, sizeof(struct priv_hook_done));
			cr_assert_eq(rep.hook_done.id, h->u.m.hook.id, "%s: reply id", h->what);
			cr_assert_eq(rep.hook_done.status, h->rc, "%s: status %d, want %d", h->what,
				     rep.hook_done.status, h->rc);
		}
	}
	for (unsigned i = 0; i < nlines; i++)
		if (strcmp(lines[i], h->log) == 0)
			log_wait(s, h->log, ++logged[i], h->what);
}

/* A reload after all of them: answered, with the config in the memfd. */
static void conf_request_ok(struct server *s)
{
	struct priv_conf req = { .type = PRIV_CONF };
	union priv_msg rep;
	struct conf c;
	struct stat st;
	uint8_t *map;
	int fd;

	send_raw(s->fd, &req, sizeof(req), NULL, 0);
	cr_assert_eq((size_t)recv_reply(s->fd, &rep, &fd), sizeof(struct priv_conf_reply));
	cr_assert_eq(rep.type, PRIV_CONF_REPLY, "reply type %u to CONF", rep.type);
	cr_assert_eq(rep.conf_reply.errors, 0);
	cr_assert_geq(fd, 0, "no memfd with the config");
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, rep.conf_reply.diag_len + rep.conf_reply.conf_len);
	cr_assert_gt(rep.conf_reply.conf_len, 0);
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	cr_assert_neq(map, MAP_FAILED);
	cr_assert_eq(conf_deserialize(&c, map + rep.conf_reply.diag_len,
				      (size_t)rep.conf_reply.conf_len), 0);
	cr_assert_eq(c.nsessions, 1);
	cr_assert_str_eq(c.sessions[0].name, "office");
	conf_free(&c);
	munmap(map, (size_t)st.st_size);
	close(fd);
}

/* No marker: no hook ran. */
static void assert_no_hook_ran(const struct server *s)
{
	static const char *const markers[] = { "up-ran", "down-ran", "connect-ran",
						"disconnect-ran" };

	for (unsigned i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
		cr_assert(!exists_in(s, markers[i]), "a hook ran: %s exists", markers[i]);
}

Test(priv, refuses_hostile_requests_and_keeps_serving, .timeout = 60)
{
	static const char *const lines[] = { LOG_MALFORMED, LOG_OPEN_UNKNOWN, LOG_OPEN_MTU,
					     LOG_HOOK_NAME, LOG_HOOK_EVENT, LOG_HOOK_PEER,
					     LOG_HOOK_LOCAL, LOG_HOOK_NODEV, LOG_CLOSE };
	enum { NLINES = sizeof(lines) / sizeof(lines[0]) };
	static struct hostile t[64];
	unsigned logged[NLINES] = { 0 }, n = hostile_table(t);
	int pipes[64];
	unsigned npipes = 0;
	struct server s;
	char *log;

	cr_assert_leq(n, sizeof(t) / sizeof(t[0]));
	server_start(&s);
	for (unsigned i = 0; i < n; i++) {
		bool known = false;
		for (unsigned j = 0; j < NLINES; j++)
			known |= strcmp(lines[j], t[i].log) == 0;
		cr_assert(known, "%s: log line not in the list", t[i].what);
		hostile_send(&s, &t[i], logged, lines, NLINES, pipes, &npipes);
	}

	/* Still serving, and every refusal said so exactly once. */
	conf_request_ok(&s);
	log = log_read(&s);
	for (unsigned j = 0; j < NLINES; j++)
		cr_expect_eq(count_of(log, lines[j]), logged[j], "'%s' logged %u times, want %u",
			     lines[j], count_of(log, lines[j]), logged[j]);
	cr_expect_eq(count_of(log, "hook:"), 0, "a hook logged:\n%s", log);
	free(log);

	/* Every descriptor sent was closed: only our copies were left, and
	 * those are closed, so each pipe reads end of file. */
	for (unsigned i = 0; i < npipes; i++) {
		char c;
		struct pollfd pfd = { .fd = pipes[i], .events = POLLIN };
		cr_assert(poll(&pfd, 1, TIMEOUT_MS) == 1 && read(pipes[i], &c, 1) == 0,
			  "descriptor %u was kept by the privileged process", i);
		close(pipes[i]);
	}
	server_stop(&s);
	assert_no_hook_ran(&s);
	server_remove(&s);
}

/* The same refusals with the session's device open (root, own netns):
 * the device is what a hook needs, so each must be refused for its own
 * fault; a valid hook after them runs, and the device left open at the
 * end gets its down hook. */
Test(priv, refuses_hostile_hooks_with_a_device, .timeout = 60)
{
	union priv_msg rep;
	struct priv_open open_req = msg_open("office", 1400);
	struct priv_hook hook;
	struct priv_close close_req = msg_close("office");
	struct server s;
	char *log;
	int fd;

	if (geteuid() != 0)
		cr_skip_test("not root: cannot create a device");
	if (access("/dev/net/tun", F_OK) != 0)
		cr_skip_test("/dev/net/tun missing");
	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("unshare(CLONE_NEWNET): %s", strerror(errno));
	server_start(&s);

	send_raw(s.fd, &open_req, sizeof(open_req), NULL, 0);
	recv_reply(s.fd, &rep, &fd);
	cr_assert_eq(rep.type, PRIV_OPENED);
	cr_assert_eq(rep.opened.rc, 0, "OPEN: %s", strerror(-rep.opened.rc));
	cr_assert_geq(fd, 0, "OPEN: no descriptor");
	cr_assert_str_eq(rep.opened.device, "stest0");
	close(fd);

	/* A second device for the same session. */
	send_raw(s.fd, &open_req, sizeof(open_req), NULL, 0);
	recv_reply(s.fd, &rep, &fd);
	cr_assert_eq(rep.type, PRIV_OPENED);
	cr_assert_eq(rep.opened.rc, -EEXIST);
	cr_assert_eq(fd, -1);

	static const struct {
		uint32_t event;
		const char *peer, *local, *log;
	} bad[] = {
		{ 4, "", "", LOG_HOOK_EVENT },
		{ 0xffffffffu, "", "", LOG_HOOK_EVENT },
		{ HOOK_UP, "1.2.3.4; touch /tmp/x", "", LOG_HOOK_PEER },
		{ HOOK_UP, "$(touch /tmp/x)", "", LOG_HOOK_PEER },
		{ HOOK_CONNECT, "192.0.2.7", "::1 ", LOG_HOOK_LOCAL },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hook = msg_hook(100 + i, bad[i].event, "office", bad[i].peer, bad[i].local);
		send_raw(s.fd, &hook, sizeof(hook), NULL, 0);
		recv_reply(s.fd, &rep, &fd);
		cr_assert_eq(rep.type, PRIV_HOOK_DONE);
		cr_assert_eq(rep.hook_done.id, 100 + i);
		cr_assert_eq(rep.hook_done.status, -EINVAL, "bad hook %u ran", i);
	}
	hook = msg_hook(200, HOOK_UP, "office", "", "");
	unterminate(hook.peer_address, sizeof(hook.peer_address), "192.0.2.7");
	send_raw(s.fd, &hook, sizeof(hook), NULL, 0);
	recv_reply(s.fd, &rep, &fd);
	cr_assert_eq(rep.hook_done.status, -EINVAL, "hook with an unterminated address ran");
	assert_no_hook_ran(&s);

	/* A valid one runs. */
	hook = msg_hook(300, HOOK_UP, "office", "192.0.2.7", "2001:db8::1");
	send_raw(s.fd, &hook, sizeof(hook), NULL, 0);
	recv_reply(s.fd, &rep, &fd);
	cr_assert_eq(rep.type, PRIV_HOOK_DONE);
	cr_assert_eq(rep.hook_done.id, 300);
	cr_assert_eq(rep.hook_done.status, 0);
	cr_assert(exists_in(&s, "up-ran"), "the valid up hook did not run");

	/* At most 8 hooks running per device (the connect hook sleeps 1 s):
	 * a ninth is refused at once, the eight finish. */
	for (unsigned i = 0; i < 8; i++) {
		hook = msg_hook(500 + i, HOOK_CONNECT, "office", "192.0.2.7", "");
		send_raw(s.fd, &hook, sizeof(hook), NULL, 0);
	}
	hook = msg_hook(600, HOOK_CONNECT, "office", "192.0.2.7", "");
	send_raw(s.fd, &hook, sizeof(hook), NULL, 0);
	recv_reply(s.fd, &rep, &fd);
	cr_assert_eq(rep.type, PRIV_HOOK_DONE);
	cr_assert_eq(rep.hook_done.id, 600, "the ninth hook was not refused first");
	cr_assert_eq(rep.hook_done.status, -EBUSY);
	for (unsigned i = 0, seen = 0; i < 8; i++) {
		recv_reply(s.fd, &rep, &fd);
		cr_assert_eq(rep.type, PRIV_HOOK_DONE);
		cr_assert(rep.hook_done.id >= 500 && rep.hook_done.id < 508 &&
			  !(seen & (1u << (rep.hook_done.id - 500))), "reply id %u", rep.hook_done.id);
		seen |= 1u << (rep.hook_done.id - 500);
		cr_assert_eq(rep.hook_done.status, 0);
	}
	cr_assert(exists_in(&s, "connect-ran"));

	/* Closed: its hooks are refused; open again and left open. */
	send_raw(s.fd, &close_req, sizeof(close_req), NULL, 0);
	hook = msg_hook(400, HOOK_DISCONNECT, "office", "", "");
	send_raw(s.fd, &hook, sizeof(hook), NULL, 0);
	recv_reply(s.fd, &rep, &fd);
	cr_assert_eq(rep.hook_done.status, -EINVAL);
	cr_assert(!exists_in(&s, "disconnect-ran"));
	send_raw(s.fd, &open_req, sizeof(open_req), NULL, 0);
	recv_reply(s.fd, &rep, &fd);
	cr_assert_eq(rep.opened.rc, 0);
	close(fd);

	server_stop(&s);
	cr_assert(exists_in(&s, "down-ran"), "no down hook for the device left open");
	log = log_read(&s);
	cr_expect_eq(count_of(log, LOG_OPEN_TWICE), 1, "%s", log);
	cr_expect_eq(count_of(log, LOG_HOOK_EVENT), 2, "%s", log);
	cr_expect_eq(count_of(log, LOG_HOOK_PEER), 3, "%s", log);
	cr_expect_eq(count_of(log, LOG_HOOK_LOCAL), 1, "%s", log);
	cr_expect_eq(count_of(log, LOG_HOOK_NODEV), 1, "%s", log);
	cr_expect_eq(count_of(log, "office: network process gone: running the down hook"), 1,
		     "%s", log);
	cr_expect_eq(count_of(log, LOG_CLOSE), 0, "%s", log);
	cr_expect_eq(count_of(log, LOG_HOOK_BUSY), 1, "%s", log);
	free(log);
	server_remove(&s);
}
