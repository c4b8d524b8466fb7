/*
 * Tunnel devices.  The fd backend runs anywhere; the Linux backend needs
 * root and /dev/net/tun and is skipped otherwise.  Each Linux test moves
 * its own process (Criterion forks one per test) into fresh network and
 * mount namespaces, with a sysfs of that network namespace mounted on /sys,
 * so devices and bridges never touch the host and /sys/class/net shows them.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tun.h"

/* ------------------------------------------------------------ helpers */

static void netns_enter(void)
{
	if (geteuid() != 0)
		cr_skip_test("not root: tun/tap devices need CAP_NET_ADMIN");
	if (access("/dev/net/tun", R_OK | W_OK) != 0)
		cr_skip_test("/dev/net/tun missing");
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0)
		cr_skip_test("unshare(CLONE_NEWNET|CLONE_NEWNS): %s", strerror(errno));
	/* Private mounts first, or the new sysfs would propagate to the host. */
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
	cr_assert_eq(mount("sysfs", "/sys", "sysfs", 0, NULL), 0, "%s", strerror(errno));
}

static int if_ioctl(unsigned long req, const char *name, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc;

	cr_assert_geq(s, 0);
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, IFNAMSIZ, "%s", name);
	rc = ioctl(s, req, ifr);
	close(s);
	return rc;
}

static int if_mtu(const char *name)
{
	struct ifreq ifr;

	cr_assert_eq(if_ioctl(SIOCGIFMTU, name, &ifr), 0, "SIOCGIFMTU %s: %s", name,
		     strerror(errno));
	return ifr.ifr_mtu;
}

static bool if_is_up(const char *name)
{
	struct ifreq ifr;

	cr_assert_eq(if_ioctl(SIOCGIFFLAGS, name, &ifr), 0);
	return (ifr.ifr_flags & IFF_UP) != 0;
}

static void run(const char *cmd)
{
	cr_assert_eq(system(cmd), 0, "command failed: %s", cmd);
}

/* Basename of /sys/class/net/DEV/master, "" when the device has none. */
static void if_master(const char *dev, char *out, size_t len)
{
	char path[128], target[PATH_MAX];
	ssize_t n;
	const char *slash;

	snprintf(path, sizeof(path), "/sys/class/net/%s/master", dev);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		out[0] = '\0';
		return;
	}
	target[n] = '\0';
	slash = strrchr(target, '/');
	slash = slash != NULL ? slash + 1 : target;
	cr_assert_lt(strlen(slash), len);
	memcpy(out, slash, strlen(slash) + 1);
}

static void assert_fd_flags(int fd)
{
	cr_assert_neq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "fd not non-blocking");
	cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, "fd not close-on-exec");
}

/* -------------------------------------------------------- Linux devices */

struct open_case {
	enum tun_type type;
	const char *name;
	const char *want;
};

Test(tun, open_names_and_close_removes)
{
	/* In order: patterns count up per pattern, "" is the kernel's own
	 * tun%d / tap%d, an exact name is kept. */
	static const struct open_case cases[] = {
		{ TUN_TYPE_TUN, "sttun%d", "sttun0" },
		{ TUN_TYPE_TUN, "sttun%d", "sttun1" },
		{ TUN_TYPE_TAP, "sttap%d", "sttap0" },
		{ TUN_TYPE_TUN, "", "tun0" },
		{ TUN_TYPE_TAP, "", "tap0" },
		{ TUN_TYPE_TAP, "office-tap", "office-tap" },
		{ TUN_TYPE_TUN, "abcdefghijklmno", "abcdefghijklmno" }, /* IFNAMSIZ - 1 */
	};
	struct tun_dev devs[ARRAY_SIZE(cases)];
	char buf[2048];

	netns_enter();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tun_dev *d = &devs[i];

		cr_assert_eq(tun_open(d, &tun_ops_platform, cases[i].type, cases[i].name), 0,
			     "case %zu", i);
		cr_assert_str_eq(d->name, cases[i].want, "case %zu", i);
		cr_assert_eq(d->type, cases[i].type);
		cr_assert_eq(d->ops, &tun_ops_platform);
		cr_assert_geq(d->fd, 0);
		assert_fd_flags(d->fd);
		cr_assert_neq(if_nametoindex(d->name), 0u, "%s not visible", d->name);
		/* Down, and nothing routed to it: nothing to read yet. */
		cr_assert_eq(d->ops->read(d, buf, sizeof(buf)), -EAGAIN);
	}
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tun_dev *d = &devs[i];

		d->ops->close(d);
		cr_assert_eq(d->fd, -1);
		cr_assert_eq(if_nametoindex(cases[i].want), 0u, "%s still exists", cases[i].want);
		d->ops->close(d); /* a second close is harmless */
		cr_assert_eq(d->fd, -1);
	}
}

Test(tun, open_errors)
{
	static const struct {
		enum tun_type type;
		const char *name;
		int err;
	} cases[] = {
		{ TUN_TYPE_TUN, "abcdefghijklmnop", -ENAMETOOLONG }, /* IFNAMSIZ */
		{ TUN_TYPE_TAP, "a/b", -EINVAL },                     /* kernel: dev_valid_name */
		{ TUN_TYPE_TUN, "..", -EINVAL },
		{ (enum tun_type)7, "x%d", -EINVAL },
	};

	netns_enter();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tun_dev d;

		cr_assert_eq(tun_open(&d, &tun_ops_platform, cases[i].type, cases[i].name),
			     cases[i].err, "case %zu (%s)", i, cases[i].name);
		cr_assert_eq(d.fd, -1, "case %zu", i);
	}
}

Test(tun, mtu_and_link_up)
{
	struct tun_dev d;

	netns_enter();
	cr_assert_eq(tun_open(&d, &tun_ops_platform, TUN_TYPE_TAP, "sttap%d"), 0);
	cr_assert_eq(if_mtu(d.name), 1500);
	cr_assert_eq(d.ops->set_mtu(&d, 1400), 0);
	cr_assert_eq(if_mtu(d.name), 1400);
	cr_assert_eq(d.mtu, 1400u);
	/* Below the Ethernet minimum: the kernel refuses, nothing changes. */
	cr_assert_eq(d.ops->set_mtu(&d, 20), -EINVAL);
	cr_assert_eq(if_mtu(d.name), 1400);
	cr_assert_eq(d.mtu, 1400u);
	cr_assert_eq(d.ops->set_mtu(&d, 4000000000u), -EINVAL);

	cr_assert(!if_is_up(d.name));
	cr_assert_eq(d.ops->set_up(&d, true), 0);
	cr_assert(if_is_up(d.name));
	cr_assert_eq(d.ops->set_up(&d, false), 0);
	cr_assert(!if_is_up(d.name));
	d.ops->close(&d);

	/* A device that went away: errors come back, nothing crashes. */
	cr_assert_eq(d.ops->set_mtu(&d, 1400), -ENODEV);
	cr_assert_eq(d.ops->set_up(&d, true), -ENODEV);
}

static uint16_t inet_csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* IPv4 header + ICMP echo request with an 8-byte payload. */
static size_t build_ping(uint8_t *pkt, const char *src, const char *dst, uint16_t id)
{
	static const uint8_t payload[8] = "saltun!";
	size_t len = 20 + 8 + sizeof(payload);
	uint16_t c;

	memset(pkt, 0, len);
	pkt[0] = 0x45;
	pkt[2] = (uint8_t)(len >> 8);
	pkt[3] = (uint8_t)len;
	pkt[8] = 64;   /* TTL */
	pkt[9] = 1;    /* ICMP */
	cr_assert_eq(inet_pton(AF_INET, src, pkt + 12), 1);
	cr_assert_eq(inet_pton(AF_INET, dst, pkt + 16), 1);
	c = inet_csum(pkt, 20);
	pkt[10] = (uint8_t)(c >> 8);
	pkt[11] = (uint8_t)c;
	pkt[20] = 8;   /* echo request */
	pkt[24] = (uint8_t)(id >> 8);
	pkt[25] = (uint8_t)id;
	pkt[27] = 1;   /* sequence */
	memcpy(pkt + 28, payload, sizeof(payload));
	c = inet_csum(pkt + 20, 8 + sizeof(payload));
	pkt[22] = (uint8_t)(c >> 8);
	pkt[23] = (uint8_t)c;
	return len;
}

Test(tun, ping_through_tun)
{
	uint8_t req[64], buf[2048];
	struct tun_dev d;
	size_t len;
	char cmd[128];
	bool got = false;

	netns_enter();
	cr_assert_eq(tun_open(&d, &tun_ops_platform, TUN_TYPE_TUN, "sttun%d"), 0);
	cr_assert_eq(d.ops->set_mtu(&d, 1400), 0);
	snprintf(cmd, sizeof(cmd), "ip addr add 198.18.7.1/24 dev %s", d.name);
	run(cmd);
	cr_assert_eq(d.ops->set_up(&d, true), 0);

	/* The "peer" 198.18.7.2 pings us through the tunnel; the kernel's
	 * answer comes back out of the same device as a bare IP packet (no
	 * packet-information header: IFF_NO_PI). */
	len = build_ping(req, "198.18.7.2", "198.18.7.1", 0x5a17);
	cr_assert_eq(d.ops->write(&d, req, len), (ssize_t)len);
	for (int tries = 0; tries < 20 && !got; tries++) {
		struct pollfd pfd = { .fd = d.fd, .events = POLLIN };
		ssize_t n;

		cr_assert_geq(poll(&pfd, 1, 100), 0);
		n = d.ops->read(&d, buf, sizeof(buf));
		if (n == -EAGAIN)
			continue;
		cr_assert_gt(n, 0, "read: %zd", n);
		if ((buf[0] >> 4) != 4 || buf[9] != 1)
			continue; /* IPv6 chatter (router solicitations) */
		cr_assert_eq(n, (ssize_t)len);
		cr_assert_eq(memcmp(buf + 12, req + 16, 4), 0, "reply source");
		cr_assert_eq(memcmp(buf + 16, req + 12, 4), 0, "reply destination");
		cr_assert_eq(buf[20], 0, "ICMP echo reply");
		cr_assert_eq(memcmp(buf + 24, req + 24, len - 24), 0, "id, seq and payload");
		got = true;
	}
	cr_assert(got, "no echo reply from the kernel");
	d.ops->close(&d);
}

Test(tun, bridge_enslave)
{
	struct tun_dev tap, tap2, tun;
	char master[IFNAMSIZ];

	netns_enter();
	run("ip link add stbr0 type bridge");
	cr_assert_eq(tun_open(&tap, &tun_ops_platform, TUN_TYPE_TAP, "sttap%d"), 0);

	/* "" and NULL: no bridge configured, nothing done. */
	cr_assert_eq(tap.ops->set_bridge(&tap, ""), 0);
	cr_assert_eq(tap.ops->set_bridge(&tap, NULL), 0);
	if_master(tap.name, master, sizeof(master));
	cr_assert_str_eq(master, "");

	cr_assert_eq(tap.ops->set_bridge(&tap, "stbr0"), 0);
	if_master(tap.name, master, sizeof(master));
	cr_assert_str_eq(master, "stbr0");

	/* Errors, each with its own code. */
	cr_assert_eq(tun_open(&tap2, &tun_ops_platform, TUN_TYPE_TAP, "sttap%d"), 0);
	cr_assert_eq(tap2.ops->set_bridge(&tap2, "nosuchbr"), -ENODEV);
	cr_assert_eq(tap2.ops->set_bridge(&tap2, "lo"), -EOPNOTSUPP);
	cr_assert_eq(tap2.ops->set_bridge(&tap2, "abcdefghijklmnop"), -ENAMETOOLONG);
	if_master(tap2.name, master, sizeof(master));
	cr_assert_str_eq(master, "");
	cr_assert_eq(tun_open(&tun, &tun_ops_platform, TUN_TYPE_TUN, "sttun%d"), 0);
	cr_assert_eq(tun.ops->set_bridge(&tun, "stbr0"), -EINVAL);

	/* Closing the tap removes it from the bridge too. */
	tap.ops->close(&tap);
	cr_assert_eq(access("/sys/class/net/stbr0/brif/sttap0", F_OK), -1);
	run("ip link del stbr0");
	cr_assert_eq(if_nametoindex("stbr0"), 0u);
	tap2.ops->close(&tap2);
	tun.ops->close(&tun);
}

/* ----------------------------------------------------------- fd backend */

Test(tun_fd, round_trip_over_seqpacket)
{
	static const size_t sizes[] = { 1, 60, 1400, 1500 };
	uint8_t out[1500], in[2048];
	struct tun_dev d;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cr_assert_eq(tun_open_fd(&d, sv[0], TUN_TYPE_TAP, "fdtap0"), 0);
	cr_assert_eq(d.ops, &tun_ops_fd);
	cr_assert_eq(d.fd, sv[0]);
	cr_assert_eq(d.type, TUN_TYPE_TAP);
	cr_assert_str_eq(d.name, "fdtap0");
	assert_fd_flags(d.fd);

	cr_assert_eq(d.ops->read(&d, in, sizeof(in)), -EAGAIN);

	/* Peer -> device: packet boundaries kept, one packet per read. */
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		memset(out, (int)(0x40 + i), sizes[i]);
		cr_assert_eq(write(sv[1], out, sizes[i]), (ssize_t)sizes[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		memset(out, (int)(0x40 + i), sizes[i]);
		cr_assert_eq(d.ops->read(&d, in, sizeof(in)), (ssize_t)sizes[i], "packet %zu", i);
		cr_assert_eq(memcmp(in, out, sizes[i]), 0, "packet %zu", i);
	}
	cr_assert_eq(d.ops->read(&d, in, sizeof(in)), -EAGAIN);

	/* Device -> peer. */
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		memset(out, (int)(0x80 + i), sizes[i]);
		cr_assert_eq(d.ops->write(&d, out, sizes[i]), (ssize_t)sizes[i]);
		cr_assert_eq(read(sv[1], in, sizeof(in)), (ssize_t)sizes[i]);
		cr_assert_eq(memcmp(in, out, sizes[i]), 0, "packet %zu", i);
	}

	/* Configuration: the MTU is recorded, the rest has nothing to do. */
	cr_assert_eq(d.ops->set_mtu(&d, 1280), 0);
	cr_assert_eq(d.mtu, 1280u);
	cr_assert_eq(d.ops->set_up(&d, true), 0);
	cr_assert_eq(d.ops->set_bridge(&d, "br0"), 0);

	/* close closes the fd: the peer sees end of stream, writes fail. */
	d.ops->close(&d);
	cr_assert_eq(d.fd, -1);
	cr_assert_eq(read(sv[1], in, sizeof(in)), 0);
	cr_assert_eq(fcntl(sv[0], F_GETFD), -1);
	cr_assert_eq(errno, EBADF);
	d.ops->close(&d);
	close(sv[1]);
}

Test(tun_fd, open_keeps_caller_name)
{
	struct tun_dev d;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	memset(&d, 0, sizeof(d));
	d.ops = &tun_ops_fd;
	d.fd = sv[0];
	snprintf(d.name, sizeof(d.name), "keep");
	cr_assert_eq(d.ops->open(&d, TUN_TYPE_TUN, "other%d"), 0);
	cr_assert_str_eq(d.name, "keep");
	cr_assert_eq(d.type, TUN_TYPE_TUN);
	cr_assert_eq(d.fd, sv[0]);
	d.ops->close(&d);
	close(sv[1]);
}

Test(tun_fd, open_errors)
{
	struct tun_dev d;
	int sv[2];

	/* tun_open resets dev->fd, so over the fd backend it always fails. */
	cr_assert_eq(tun_open(&d, &tun_ops_fd, TUN_TYPE_TUN, "x"), -EBADF);
	cr_assert_eq(d.fd, -1);
	cr_assert_eq(tun_open_fd(&d, 12345, TUN_TYPE_TUN, "x"), -EBADF); /* not open */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cr_assert_eq(tun_open_fd(&d, sv[0], (enum tun_type)3, "x"), -EINVAL);
	close(sv[0]);
	close(sv[1]);
}

Test(tun_fd, peer_gone)
{
	uint8_t b[16] = { 0 };
	struct tun_dev d;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cr_assert_eq(tun_open_fd(&d, sv[0], TUN_TYPE_TUN, "fdtun0"), 0);
	close(sv[1]);
	/* A plain write(2) to a socket whose peer is gone raises SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(d.ops->write(&d, b, sizeof(b)), -EPIPE);
	cr_assert_eq(d.ops->read(&d, b, sizeof(b)), 0);
	d.ops->close(&d);
}
