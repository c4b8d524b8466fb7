/*
 * Privilege separation: see priv.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/capability.h>
#include <linux/landlock.h>
#include <sys/syscall.h>
#endif

#include <sodium.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "daemon.h"
#include "key.h"
#include "log.h"
#include "priv.h"
#include "priv_msg.h"
#include "util.h"

/* ------------------------------------------------------------ messages */

static size_t priv_msg_size(uint32_t type)
{
	switch (type) {
	case PRIV_OPEN: return sizeof(struct priv_open);
	case PRIV_OPENED: return sizeof(struct priv_opened);
	case PRIV_HOOK: return sizeof(struct priv_hook);
	case PRIV_HOOK_DONE: return sizeof(struct priv_hook_done);
	case PRIV_CLOSE: return sizeof(struct priv_close);
	case PRIV_CONF: return sizeof(struct priv_conf);
	case PRIV_CONF_REPLY: return sizeof(struct priv_conf_reply);
	case PRIV_READY: return sizeof(struct priv_ready);
	}
	return 0;
}

static bool priv_str_ok(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* An address to substitute into a hook: empty, or one inet_pton takes. */
static bool priv_addr_ok(const char *s, size_t size)
{
	struct in6_addr a6;

	if (!priv_str_ok(s, size))
		return false;
	return s[0] == '\0' || inet_pton(AF_INET, s, &a6) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

/* Send one message, with a descriptor when fd >= 0.  0 or -errno. */
static int priv_send(int sock, const void *msg, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

/*
 * Receive one message: its size is checked against its type.  *fd gets an
 * attached descriptor (or -1); any descriptor on a message that should not
 * carry one is closed.  Returns the type, 0 at end of file, -EAGAIN when
 * none (flags MSG_DONTWAIT), -EBADMSG for a malformed one (an empty one
 * included), or -errno.
 */
static int priv_recv(int sock, union priv_msg *m, int *fd, int flags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd < 0)
				*fd = got;
			else
				close(got);
		}
	}
	if (n == 0) {
		/* SOCK_SEQPACKET reads an empty message as 0 too, and it may
		 * carry descriptors: only a peer that is gone (POLLHUP) is the
		 * end, else a peer could stop us with one empty send. */
		struct pollfd pfd = { .fd = sock, .events = 0 };
		if (*fd < 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP) != 0)
			return 0;
	}
	if (n == 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
	    (size_t)n < sizeof(uint32_t) || priv_msg_size(m->type) != (size_t)n) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EBADMSG;
	}
	return (int)m->type;
}

/* ------------------------------------------------------------ devices */

/* Create and set up a session's device (in the privileged process, or in
 * the only one).  Failures are logged here. */
static int priv_device_create(const struct conf_session *cs, unsigned mtu, struct tun_dev *dev)
{
	enum tun_type type = cs->type == CONF_DEV_TAP ? TUN_TYPE_TAP : TUN_TYPE_TUN;
	int rc;

	rc = tun_open(dev, &tun_ops_platform, type, cs->device);
	if (rc < 0) {
		log_warnx("%s: cannot create %s device '%s': %s", cs->name,
			  type == TUN_TYPE_TAP ? "tap" : "tun", cs->device, strerror(-rc));
		return rc;
	}
	if ((rc = dev->ops->set_mtu(dev, mtu)) < 0)
		log_warnx("%s: cannot set MTU %u on %s: %s", cs->name, mtu, dev->name, strerror(-rc));
	if (cs->bridge[0] != '\0' && (rc = dev->ops->set_bridge(dev, cs->bridge)) < 0)
		log_warnx("%s: cannot add %s to bridge %s: %s", cs->name, dev->name, cs->bridge,
			  strerror(-rc));
	if ((rc = dev->ops->set_up(dev, true)) < 0)
		log_warnx("%s: cannot bring %s up: %s", cs->name, dev->name, strerror(-rc));
	return 0;
}

/* ------------------------------------------------------------ user */

int priv_resolve_user(const struct conf_global *g, uid_t *uid, gid_t *gid, char *name,
		      size_t namelen)
{
	const char *want = g->user[0] != '\0' ? g->user : "saltun";
	struct passwd *pw = getpwnam(want);

	if (pw == NULL && g->user[0] == '\0')
		pw = getpwnam(want = "nobody");
	if (pw == NULL) {
		log_warnx("user '%s' does not exist", want);
		return -ENOENT;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	snprintf(name, namelen, "%s", want);
	if (g->group[0] != '\0') {
		struct group *gr = getgrnam(g->group);
		if (gr == NULL) {
			log_warnx("group '%s' does not exist", g->group);
			return -ENOENT;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

/* ------------------------------------------------------------ network side */

struct priv_pending {
	struct priv_pending *next;
	uint32_t id;
	enum hook_event ev;
	hook_done_cb done;
	void *arg;
};

struct priv {
	int fd;                     /* our end of the socketpair */
	uid_t uid;
	gid_t gid;
	char user[64];
	uint32_t next_id;
	struct priv_pending *pending; /* hooks running, by id */
	uv_poll_t poll;
	bool polling;
	bool gone;                  /* the privileged process went away */
	void (*gone_cb)(void *arg);
	void *gone_arg;
};

static void priv_on_gone(struct priv *p)
{
	if (p->gone)
		return;
	p->gone = true;
	log_warnx("the privileged process went away: stopping");
	if (p->gone_cb != NULL)
		p->gone_cb(p->gone_arg);
}

static void priv_hook_finish(struct priv *p, uint32_t id, int status)
{
	for (struct priv_pending **pp = &p->pending; *pp != NULL; pp = &(*pp)->next) {
		struct priv_pending *e = *pp;
		if (e->id != id)
			continue;
		*pp = e->next;
		e->done(e->arg, e->ev, status);
		free(e);
		return;
	}
	log_warnx("privileged process: completion of an unknown hook (%u)", id);
}

/* A message arrived that no request is waiting for. */
static void priv_dispatch(struct priv *p, int type, const union priv_msg *m, int fd)
{
	if (fd >= 0)
		close(fd);
	if (type == PRIV_HOOK_DONE)
		priv_hook_finish(p, m->hook_done.id, m->hook_done.status);
	else
		log_warnx("privileged process: unexpected message %d", type);
}

/* Every pending hook fails: the privileged process is gone. */
static void priv_fail_pending(struct priv *p)
{
	while (p->pending != NULL)
		priv_hook_finish(p, p->pending->id, -EPIPE);
}

/* Wait for the reply of type `want` (and `id` for hook completions),
 * serving whatever comes before it.  Returns the type or -errno. */
static int priv_wait(struct priv *p, int want, uint32_t id, union priv_msg *m, int *fd,
		     int timeout_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		int rc = poll(&pfd, 1, timeout_ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0)
			return -ETIMEDOUT;
		rc = priv_recv(p->fd, m, fd, MSG_DONTWAIT);
		if (rc == -EAGAIN)
			continue;
		if (rc <= 0) {
			priv_on_gone(p);
			return rc == 0 ? -EPIPE : rc;
		}
		if (rc == want && (want != PRIV_HOOK_DONE || m->hook_done.id == id))
			return rc;
		priv_dispatch(p, rc, m, *fd);
	}
}

static void priv_on_readable(uv_poll_t *h, int status, int events)
{
	struct priv *p = h->data;
	union priv_msg m;
	int fd, rc;

	(void)events;
	for (;;) {
		rc = status < 0 ? status : priv_recv(p->fd, &m, &fd, MSG_DONTWAIT);
		if (rc == -EAGAIN)
			return;
		if (rc <= 0) {
			uv_poll_stop(&p->poll);
			priv_fail_pending(p);
			priv_on_gone(p);
			return;
		}
		priv_dispatch(p, rc, &m, fd);
	}
}

int priv_watch(struct priv *p, uv_loop_t *loop, void (*gone)(void *arg), void *arg)
{
	int rc;

	if (p == NULL)
		return 0;
	p->gone_cb = gone;
	p->gone_arg = arg;
	if ((rc = uv_poll_init(loop, &p->poll, p->fd)) < 0)
		return rc;
	p->poll.data = p;
	p->polling = true;
	return uv_poll_start(&p->poll, UV_READABLE, priv_on_readable);
}

void priv_close(struct priv *p)
{
	if (p == NULL)
		return;
	if (p->polling) {
		/* The loop is closed already (daemon_shutdown): no callback. */
		p->polling = false;
	}
	priv_fail_pending(p);
	close(p->fd);
	free(p);
}

int priv_device_open(struct priv *p, const struct conf_session *cs, unsigned mtu,
		     struct tun_dev *dev)
{
	struct priv_open req = { .type = PRIV_OPEN, .mtu = mtu };
	union priv_msg m;
	int fd, rc;

	if (p == NULL)
		return priv_device_create(cs, mtu, dev);
	snprintf(req.session, sizeof(req.session), "%s", cs->name);
	if ((rc = priv_send(p->fd, &req, sizeof(req), -1)) < 0 ||
	    (rc = priv_wait(p, PRIV_OPENED, 0, &m, &fd, 30000)) < 0) {
		log_warnx("%s: cannot ask for the device: %s", cs->name, strerror(-rc));
		return rc;
	}
	if (m.opened.rc < 0 || fd < 0 || !priv_str_ok(m.opened.device, sizeof(m.opened.device))) {
		if (fd >= 0)
			close(fd);
		rc = m.opened.rc < 0 ? m.opened.rc : -EBADMSG;
		/* The privileged process logged why. */
		log_warnx("%s: no device: %s", cs->name, strerror(-rc));
		return rc;
	}
	dev->ops = &tun_ops_platform;
	dev->fd = fd;
	dev->type = cs->type == CONF_DEV_TAP ? TUN_TYPE_TAP : TUN_TYPE_TUN;
	snprintf(dev->name, sizeof(dev->name), "%s", m.opened.device);
	dev->mtu = mtu;
	/* The device was opened with the virtio-net header and offloads
	 * (tun.h): the data path must know which it reads. */
	dev->vnet = m.opened.vnet != 0;
	return 0;
}

void priv_device_closed(struct priv *p, const char *session)
{
	struct priv_close req = { .type = PRIV_CLOSE };

	if (p == NULL || p->gone)
		return;
	snprintf(req.session, sizeof(req.session), "%s", session);
	(void)priv_send(p->fd, &req, sizeof(req), -1);
}

static int priv_hook_send(struct priv *p, enum hook_event ev, const struct hook_vars *v,
			  uint32_t *id)
{
	struct priv_hook req = { .type = PRIV_HOOK, .event = (uint32_t)ev };

	if (p->gone)
		return -EPIPE;
	*id = req.id = ++p->next_id;
	snprintf(req.session, sizeof(req.session), "%s", v->session);
	snprintf(req.peer_address, sizeof(req.peer_address), "%s",
		 v->peer_address != NULL ? v->peer_address : "");
	snprintf(req.local_address, sizeof(req.local_address), "%s",
		 v->local_address != NULL ? v->local_address : "");
	req.peer_port = v->peer_port;
	req.local_port = v->local_port;
	return priv_send(p->fd, &req, sizeof(req), -1);
}

int priv_hook_run(struct priv *p, uv_loop_t *loop, enum hook_event ev, const char *tmpl,
		  const struct hook_vars *v, unsigned timeout_ms, hook_done_cb done, void *arg)
{
	struct priv_pending *e;
	uint32_t id;
	int rc;

	if (p == NULL)
		return hook_run(loop, ev, tmpl, v, timeout_ms, done, arg);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -ENOMEM;
	if ((rc = priv_hook_send(p, ev, v, &id)) < 0) {
		free(e);
		return rc;
	}
	e->id = id;
	e->ev = ev;
	e->done = done;
	e->arg = arg;
	e->next = p->pending;
	p->pending = e;
	return 0;
}

int priv_hook_run_sync(struct priv *p, enum hook_event ev, const char *tmpl,
		       const struct hook_vars *v, unsigned timeout_ms)
{
	union priv_msg m;
	uint32_t id;
	int fd, rc;

	if (p == NULL)
		return hook_run_sync(ev, tmpl, v, timeout_ms);
	if ((rc = priv_hook_send(p, ev, v, &id)) < 0 ||
	    /* The privileged process kills the hook 2 s after its limit. */
	    (rc = priv_wait(p, PRIV_HOOK_DONE, id, &m, &fd, (int)(timeout_ms ? timeout_ms : 30000) + 5000)) < 0) {
		log_warnx("%s: %s hook: %s", v->session, hook_event_name(ev), strerror(-rc));
		return rc;
	}
	return m.hook_done.status;
}

unsigned priv_conf_load(struct priv *p, struct conf *out, const char *path, FILE *diag)
{
	struct priv_conf req = { .type = PRIV_CONF };
	union priv_msg m;
	uint8_t *map = MAP_FAILED;
	size_t maplen = 0;
	int fd = -1, rc;
	unsigned errors = 1;

	if (p == NULL)
		return conf_load(out, path, diag);
	memset(out, 0, sizeof(*out));
	if ((rc = priv_send(p->fd, &req, sizeof(req), -1)) < 0 ||
	    (rc = priv_wait(p, PRIV_CONF_REPLY, 0, &m, &fd, 30000)) < 0) {
		fprintf(diag, "%s: cannot ask the privileged process to read it: %s\n", path,
			strerror(-rc));
		return 1;
	}
	maplen = m.conf_reply.diag_len + m.conf_reply.conf_len;
	struct stat st;
	if (fd < 0 || m.conf_reply.diag_len > SIZE_MAX / 2 || m.conf_reply.conf_len > SIZE_MAX / 2 ||
	    fstat(fd, &st) < 0 || (uint64_t)st.st_size != maplen ||
	    (maplen > 0 && (map = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)) {
		fprintf(diag, "%s: malformed answer from the privileged process\n", path);
		goto out;
	}
	if (m.conf_reply.diag_len > 0)
		fwrite(map, 1, m.conf_reply.diag_len, diag);
	errors = m.conf_reply.errors;
	if (errors == 0 && conf_deserialize(out, map + m.conf_reply.diag_len,
					    m.conf_reply.conf_len) < 0) {
		fprintf(diag, "%s: malformed config from the privileged process\n", path);
		errors = 1;
	}
out:
	if (map != MAP_FAILED)
		munmap(map, maplen);
	if (fd >= 0)
		close(fd);
	return errors;
}

void priv_ready(struct priv *p, bool control_bound, dev_t control_dev, ino_t control_ino)
{
	struct priv_ready req = { .type = PRIV_READY, .control_bound = control_bound,
				  .control_dev = control_dev, .control_ino = control_ino };

	if (p == NULL) {
#ifdef HAVE_SYSTEMD
		sd_notify(0, "READY=1");
#endif
		return;
	}
	(void)priv_send(p->fd, &req, sizeof(req), -1);
}

#ifdef __linux__
/* No file may be written, created, removed or executed from now on
 * (Landlock, Linux 5.13+); reads stay allowed (resolv.conf, hosts, NSS
 * modules).  Without Landlock in the kernel this does nothing. */
static void priv_landlock(void)
{
	struct landlock_ruleset_attr attr = { 0 };
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	int fd;

	if (abi < 1) {
		log_debug("landlock unavailable: file writes are limited by the user's rights only");
		return;
	}
	attr.handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
		LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
		LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		LANDLOCK_ACCESS_FS_MAKE_SYM;
#ifdef LANDLOCK_ACCESS_FS_REFER
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
#endif
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
#endif
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd < 0) {
		log_warn("landlock_create_ruleset");
		return;
	}
	if (syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		log_warn("landlock_restrict_self");
	close(fd);
}
#endif

int priv_drop(struct priv *p)
{
	if (p == NULL)
		return 0;
#ifdef __linux__
	/* Empty the bounding set while CAP_SETPCAP is still ours, so nothing
	 * this process ever executes could regain a capability.  Under a
	 * systemd unit without CAP_SETPCAP this fails: the unit's
	 * CapabilityBoundingSet bounds it then. */
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EPERM)
			break;
#endif
	if (setgroups(0, NULL) < 0 || setresgid(p->gid, p->gid, p->gid) < 0 ||
	    setresuid(p->uid, p->uid, p->uid) < 0) {
		log_warn("cannot become user %s", p->user);
		return -EPERM;
	}
	/* Root must be gone for good: a setuid that could be undone is a bug. */
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
		log_warnx("still root after dropping to %s", p->user);
		return -EPERM;
	}
#ifdef __linux__
	/* setresuid() away from 0 cleared the capability sets; ambient ones
	 * are cleared too, in case. */
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_warn("PR_SET_NO_NEW_PRIVS");
		return -EPERM;
	}
	priv_landlock();
#endif
	log_info("network process %ld runs as %s (uid %ld, gid %ld)", (long)getpid(), p->user,
		 (long)p->uid, (long)p->gid);
	return 0;
}

/* ------------------------------------------------------------ privileged side */

/* A device the network process holds, with what its hooks need: a copy
 * taken when it was created, so a reload does not change a running
 * session's hooks (a changed session is closed and created again). */
struct priv_device {
	struct priv_device *next;
	char session[CONF_NAME_MAX + 1];
	char device[IFNAMSIZ];
	enum tun_type type;
	unsigned mtu;
	char peer_key[KEY_B64_LEN + 1];
	char *hooks[4];               /* by enum hook_event; NULL = none */
	unsigned hook_timeout;
};

/* Hooks the network process may have running at once, per device it
 * holds: a legitimate one has at most a connect and a disconnect in flight
 * per session (each bounded by hook_timeout); a compromised one must not
 * be able to fork root shells without end. */
#define PRIV_HOOKS_PER_DEVICE 8

struct priv_parent {
	uv_loop_t loop;
	int fd;
	pid_t child;                  /* -1: none (priv_serve_fd) */
	uv_poll_t poll;
	uv_signal_t sigs[3];
	struct conf *conf;            /* what the last OPEN looks up: the newest accepted */
	struct conf own;              /* a reloaded config, once there is one */
	const char *config_path;
	struct priv_device *devices;
	unsigned ndevices;
	uint64_t control_dev, control_ino; /* the control socket as bound (READY) */
	bool have_control;
	bool child_gone;
	int channel_rc;               /* 0, or -errno when the channel broke */
	unsigned hooks_running;       /* started by PRIV_HOOK, not yet done */
};

struct priv_job {
	struct priv_parent *pp;
	uint32_t id;
};

static void priv_device_free(struct priv_device *pd)
{
	for (unsigned i = 0; i < 4; i++)
		free(pd->hooks[i]);
	free(pd);
}

static struct priv_device *priv_device_find(struct priv_parent *pp, const char *session)
{
	for (struct priv_device *pd = pp->devices; pd != NULL; pd = pd->next)
		if (strcmp(pd->session, session) == 0)
			return pd;
	return NULL;
}

static unsigned priv_device_count(const struct priv_parent *pp)
{
	unsigned n = 0;

	for (const struct priv_device *pd = pp->devices; pd != NULL; pd = pd->next)
		n++;
	return n;
}

static const struct conf_session *priv_conf_session(struct priv_parent *pp, const char *name)
{
	for (unsigned i = 0; i < pp->conf->nsessions; i++)
		if (strcmp(pp->conf->sessions[i].name, name) == 0)
			return &pp->conf->sessions[i];
	return NULL;
}

static char *priv_strdup_or_null(const char *s, bool *ok)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*ok = false;
	return d;
}

static void priv_serve_open(struct priv_parent *pp, const struct priv_open *req)
{
	struct priv_opened rep = { .type = PRIV_OPENED };
	const struct conf_session *cs = NULL;
	struct priv_device *pd = NULL;
	struct tun_dev dev = { .fd = -1 };
	bool ok = true;
	int rc;

	if (!priv_str_ok(req->session, sizeof(req->session)) ||
	    (cs = priv_conf_session(pp, req->session)) == NULL) {
		log_warnx("privsep: device asked for an unknown session");
		rep.rc = -ENOENT;
		goto reply;
	}
	if (req->mtu < CONF_MTU_MIN || req->mtu > CONF_MTU_MAX || (cs->mtu != 0 && req->mtu > cs->mtu)) {
		log_warnx("%s: privsep: device asked with mtu %u", cs->name, req->mtu);
		rep.rc = -EINVAL;
		goto reply;
	}
	if (priv_device_find(pp, cs->name) != NULL || pp->ndevices >= pp->conf->nsessions + 64u) {
		log_warnx("%s: privsep: the session has its device already", cs->name);
		rep.rc = -EEXIST;
		goto reply;
	}
	if ((pd = calloc(1, sizeof(*pd))) == NULL) {
		rep.rc = -ENOMEM;
		goto reply;
	}
	snprintf(pd->session, sizeof(pd->session), "%s", cs->name);
	pd->type = cs->type == CONF_DEV_TAP ? TUN_TYPE_TAP : TUN_TYPE_TUN;
	pd->mtu = req->mtu;
	key_to_base64(pd->peer_key, cs->public_key);
	pd->hooks[HOOK_UP] = priv_strdup_or_null(cs->up, &ok);
	pd->hooks[HOOK_DOWN] = priv_strdup_or_null(cs->down, &ok);
	pd->hooks[HOOK_CONNECT] = priv_strdup_or_null(cs->connect, &ok);
	pd->hooks[HOOK_DISCONNECT] = priv_strdup_or_null(cs->disconnect, &ok);
	pd->hook_timeout = cs->hook_timeout;
	if (!ok) {
		priv_device_free(pd);
		rep.rc = -ENOMEM;
		goto reply;
	}
	if ((rc = priv_device_create(cs, req->mtu, &dev)) < 0) {
		priv_device_free(pd);
		rep.rc = rc;
		goto reply;
	}
	snprintf(pd->device, sizeof(pd->device), "%s", dev.name);
	snprintf(rep.device, sizeof(rep.device), "%s", dev.name);
	rep.vnet = dev.vnet;
	pd->next = pp->devices;
	pp->devices = pd;
	pp->ndevices++;
reply:
	if ((rc = priv_send(pp->fd, &rep, sizeof(rep), dev.fd)) < 0)
		log_warnx("privsep: cannot pass the device: %s", strerror(-rc));
	/* Ours closes; the network process's copy keeps the device. */
	if (dev.fd >= 0)
		close(dev.fd);
}

static void priv_serve_close(struct priv_parent *pp, const struct priv_close *req)
{
	for (struct priv_device **p = &pp->devices; *p != NULL; p = &(*p)->next) {
		if (priv_str_ok(req->session, sizeof(req->session)) &&
		    strcmp((*p)->session, req->session) == 0) {
			struct priv_device *pd = *p;
			*p = pd->next;
			priv_device_free(pd);
			pp->ndevices--;
			return;
		}
	}
	log_warnx("privsep: close of a device that is not open");
}

static void priv_hook_vars(const struct priv_device *pd, struct hook_vars *v)
{
	memset(v, 0, sizeof(*v));
	v->session = pd->session;
	v->device = pd->device;
	v->type = pd->type == TUN_TYPE_TAP ? "tap" : "tun";
	v->mtu = pd->mtu;
	v->peer_key = pd->peer_key;
}

static void priv_on_hook_done(void *arg, enum hook_event ev, int status)
{
	struct priv_job *job = arg;
	struct priv_hook_done rep = { .type = PRIV_HOOK_DONE, .id = job->id, .status = status };

	(void)ev;
	job->pp->hooks_running--;
	if (!job->pp->child_gone)
		(void)priv_send(job->pp->fd, &rep, sizeof(rep), -1);
	free(job);
}

static void priv_serve_hook(struct priv_parent *pp, const struct priv_hook *req)
{
	struct priv_hook_done rep = { .type = PRIV_HOOK_DONE, .id = req->id, .status = 0 };
	struct priv_device *pd = NULL;
	struct priv_job *job;
	struct hook_vars v;
	const char *why = NULL;
	int rc;

	/* The network process's strings are never logged: they may hold
	 * anything but NUL. */
	if (!priv_str_ok(req->session, sizeof(req->session)))
		why = "unterminated session name";
	else if (req->event > HOOK_DISCONNECT)
		why = "unknown event";
	else if (!priv_addr_ok(req->peer_address, sizeof(req->peer_address)))
		why = "peer address is not an address";
	else if (!priv_addr_ok(req->local_address, sizeof(req->local_address)))
		why = "local address is not an address";
	else if ((pd = priv_device_find(pp, req->session)) == NULL)
		why = "no such session with a device";
	if (why != NULL) {
		log_warnx("privsep: hook refused: %s", why);
		rep.status = -EINVAL;
		goto reply;
	}
	if (pd->hooks[req->event] == NULL)
		goto reply;
	if (pp->hooks_running >= PRIV_HOOKS_PER_DEVICE * priv_device_count(pp)) {
		log_warnx("%s: privsep: hook refused: %u hooks already running", pd->session,
			  pp->hooks_running);
		rep.status = -EBUSY;
		goto reply;
	}
	priv_hook_vars(pd, &v);
	v.peer_address = req->peer_address[0] != '\0' ? req->peer_address : NULL;
	v.peer_port = req->peer_port;
	v.local_address = req->local_address[0] != '\0' ? req->local_address : NULL;
	v.local_port = req->local_port;
	if ((job = malloc(sizeof(*job))) == NULL) {
		rep.status = -ENOMEM;
		goto reply;
	}
	job->pp = pp;
	job->id = req->id;
	rc = hook_run(&pp->loop, (enum hook_event)req->event, pd->hooks[req->event], &v,
		      pd->hook_timeout * 1000, priv_on_hook_done, job);
	if (rc == 0) {
		pp->hooks_running++;
		return;
	}
	free(job);
	log_warnx("%s: cannot start %s hook: %s", pd->session, hook_event_name(req->event),
		  strerror(-rc));
	rep.status = rc;
reply:
	(void)priv_send(pp->fd, &rep, sizeof(rep), -1);
}

/* Reload: read the config as root, answer with the diagnostics and the
 * config in one memfd.  An accepted config becomes what OPEN looks up. */
static void priv_serve_conf(struct priv_parent *pp)
{
	struct priv_conf_reply rep = { .type = PRIV_CONF_REPLY };
	char *diag = NULL;
	size_t diaglen = 0, bloblen = 0;
	uint8_t *blob = NULL;
	FILE *df = open_memstream(&diag, &diaglen);
	struct conf nc;
	int fd = -1;

	if (df == NULL) {
		rep.errors = 1;
		goto reply;
	}
	rep.errors = conf_load(&nc, pp->config_path, df);
	if (rep.errors == 0 && conf_serialize(&nc, &blob, &bloblen) < 0) {
		fprintf(df, "%s: out of memory\n", pp->config_path);
		conf_free(&nc);
		rep.errors = 1;
	}
	if (fclose(df) != 0) {
		rep.errors = rep.errors ? rep.errors : 1;
		diaglen = 0;
	}
	fd = memfd_create("saltun-conf", MFD_CLOEXEC);
	if (fd < 0 || (diaglen > 0 && write(fd, diag, diaglen) != (ssize_t)diaglen) ||
	    (bloblen > 0 && write(fd, blob, bloblen) != (ssize_t)bloblen)) {
		log_warn("privsep: cannot pass the config");
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	rep.diag_len = diaglen;
	rep.conf_len = bloblen;
	if (rep.errors == 0 && fd >= 0 &&
	    daemon_reload_refused_key(&pp->conf->global, &nc.global) == NULL) {
		/* The network process applies it (it refuses the same keys). */
		if (pp->conf == &pp->own)
			conf_free(&pp->own);
		pp->own = nc;
		pp->conf = &pp->own;
	} else if (rep.errors == 0) {
		conf_free(&nc);
	}
reply:
	if (blob != NULL) {
		sodium_memzero(blob, bloblen);
		free(blob);
	}
	free(diag);
	(void)priv_send(pp->fd, &rep, sizeof(rep), fd);
	if (fd >= 0)
		close(fd);
}

static void priv_on_child(uv_poll_t *h, int status, int events)
{
	struct priv_parent *pp = h->data;
	union priv_msg m;
	int fd, rc;

	(void)events;
	for (;;) {
		rc = status < 0 ? status : priv_recv(pp->fd, &m, &fd, MSG_DONTWAIT);
		if (rc == -EAGAIN)
			return;
		if (rc == 0 || (rc < 0 && rc != -EBADMSG)) {
			/* The network process exited (or its end broke): wind down. */
			pp->child_gone = true;
			pp->channel_rc = rc;
			uv_poll_stop(&pp->poll);
			uv_stop(&pp->loop);
			return;
		}
		if (fd >= 0)
			close(fd); /* no request carries a descriptor */
		switch (rc) {
		case PRIV_OPEN: priv_serve_open(pp, &m.open); break;
		case PRIV_HOOK: priv_serve_hook(pp, &m.hook); break;
		case PRIV_CLOSE: priv_serve_close(pp, &m.close); break;
		case PRIV_CONF: priv_serve_conf(pp); break;
		case PRIV_READY:
			/* Which file the network process bound, if it could (another
			 * daemon may hold the path): removed at the end if still there. */
			pp->have_control = m.ready.control_bound != 0;
			pp->control_dev = m.ready.control_dev;
			pp->control_ino = m.ready.control_ino;
#ifdef HAVE_SYSTEMD
			sd_notify(0, "READY=1");
#endif
			break;
		default:
			log_warnx("privsep: refused a malformed message from the network process");
		}
	}
}

static void priv_on_signal(uv_signal_t *h, int signum)
{
	struct priv_parent *pp = h->data;

	/* The network process stops itself (its down hooks come through us). */
	if (signum != SIGHUP) {
#ifdef HAVE_SYSTEMD
		sd_notify(0, "STOPPING=1");
#endif
	}
	if (!pp->child_gone && pp->child > 0)
		kill(pp->child, signum);
}

static void priv_close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Wait for the network process: its exit status, for main(). */
static int priv_reap(pid_t child)
{
	int wstatus = 0, status;
	pid_t w;

	do
		w = waitpid(child, &wstatus, 0);
	while (w < 0 && errno == EINTR);
	if (w == child && WIFEXITED(wstatus)) {
		status = WEXITSTATUS(wstatus);
		if (status != 0)
			log_warnx("network process exited with status %d", status);
	} else {
		status = 1;
		log_warnx("network process died%s%s", w == child && WIFSIGNALED(wstatus) ? ": " : "",
			  w == child && WIFSIGNALED(wstatus) ? strsignal(WTERMSIG(wstatus)) : "");
	}
	return status;
}

/* Serve the network process until its end of pp->fd closes, then reap
 * it, run the down hooks of the devices it left, and close pp->fd.
 * Returns its exit status; with no child (priv_serve_fd), 0 or the -errno
 * that broke the channel. */
static int priv_serve(struct priv_parent *pp)
{
	static const int signums[3] = { SIGINT, SIGTERM, SIGHUP };
	int status;

	if (uv_loop_init(&pp->loop) < 0)
		fatalx("uv_loop_init");
	uv_poll_init(&pp->loop, &pp->poll, pp->fd);
	pp->poll.data = pp;
	uv_poll_start(&pp->poll, UV_READABLE, priv_on_child);
	/* Signals reach the network process through us (priv_on_signal). */
	for (unsigned i = 0; pp->child > 0 && i < 3; i++) {
		uv_signal_init(&pp->loop, &pp->sigs[i]);
		pp->sigs[i].data = pp;
		uv_signal_start(&pp->sigs[i], priv_on_signal, signums[i]);
	}
	uv_run(&pp->loop, UV_RUN_DEFAULT);

	status = pp->child > 0 ? priv_reap(pp->child) : pp->channel_rc;
	/* Its devices went with it; what their down hooks undo (routes,
	 * firewall rules) may not have: run them for what it left. */
	for (struct priv_device *pd = pp->devices; pd != NULL; pd = pd->next) {
		struct hook_vars v;
		if (pd->hooks[HOOK_DOWN] == NULL)
			continue;
		log_warnx("%s: network process gone: running the down hook", pd->session);
		priv_hook_vars(pd, &v);
		(void)hook_run_sync(HOOK_DOWN, pd->hooks[HOOK_DOWN], &v, pd->hook_timeout * 1000);
	}
	while (pp->devices != NULL) {
		struct priv_device *pd = pp->devices;
		pp->devices = pd->next;
		priv_device_free(pd);
	}
	/* The network process cannot remove the socket from root's directory;
	 * only the file it bound, never a successor's. */
	struct stat st;
	if (pp->have_control && lstat(pp->conf->global.control, &st) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_dev == pp->control_dev && st.st_ino == pp->control_ino)
		unlink(pp->conf->global.control);
	/* Hooks still running finish (or are killed at their limit). */
	uv_walk(&pp->loop, priv_close_walk, NULL);
	uv_run(&pp->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&pp->loop);
	close(pp->fd);
	if (pp->conf == &pp->own)
		conf_free(&pp->own);
	return status;
}

int priv_serve_fd(struct conf *c, const char *config_path, int fd)
{
	struct priv_parent pp = { .fd = fd, .child = -1, .conf = c, .config_path = config_path };

	return priv_serve(&pp);
}

int priv_start(struct conf *c, const char *config_path, struct priv **out, int *status)
{
	struct priv *p;
	int sv[2];
	pid_t parent = getpid(), child;
	uid_t uid;
	gid_t gid;
	char user[64];

	*out = NULL;
	if (geteuid() != 0) {
		log_info("not started as root: one process, no privilege separation");
		return PRIV_SINGLE;
	}
	if (priv_resolve_user(&c->global, &uid, &gid, user, sizeof(user)) < 0)
		return -ENOENT;
	if (uid == 0) {
		log_warnx("user %s is root: no privilege separation", user);
		return PRIV_SINGLE;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("socketpair");
		free(p);
		return -errno;
	}
	fflush(NULL);
	if ((child = fork()) < 0) {
		log_warn("fork");
		close(sv[0]);
		close(sv[1]);
		free(p);
		return -EAGAIN;
	}
	if (child == 0) {
		close(sv[0]);
		/* Go when the privileged process goes (and if it already has). */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
		if (getppid() != parent)
			_exit(1);
		(void)prctl(PR_SET_NAME, "saltun-net", 0, 0, 0);
		p->fd = sv[1];
		p->uid = uid;
		p->gid = gid;
		snprintf(p->user, sizeof(p->user), "%s", user);
		*out = p;
		return PRIV_NETWORK;
	}
	free(p);
	close(sv[1]);
	struct priv_parent pp = { .fd = sv[0], .child = child, .conf = c, .config_path = config_path };
	*status = priv_serve(&pp);
	return PRIV_PARENT_DONE;
}
