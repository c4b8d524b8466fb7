/*
 * Linux tun/tap devices through /dev/net/tun (Documentation/networking/
 * tuntap.rst), and the fd backend that tests and the session code use
 * without root.
 *
 * The device is not persistent (no TUNSETPERSIST): the kernel removes it
 * when the last descriptor closes, so a crashed daemon leaves nothing behind.
 * Interface configuration (MTU, flags, bridge) goes through ioctls on a
 * throw-away AF_INET datagram socket: control path only, once per session.
 *
 * Failures are logged here, where the device and bridge names are known;
 * callers need not log them again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/sockios.h>

#include "log.h"
#include "tun.h"

#define TUN_CLONE_PATH "/dev/net/tun"

/* Copy `name` into an ifreq-sized buffer; false if it does not fit. */
static bool tun_copy_name(char dst[IFNAMSIZ], const char *name)
{
	size_t len = strlen(name);

	if (len >= IFNAMSIZ)
		return false;
	memcpy(dst, name, len + 1);
	return true;
}

/* A socket for SIOC[GS]IF* requests: any family works, AF_INET is always
 * there.  0 or -errno; *fd set on success. */
static int tun_ctl_socket(int *fd)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0) {
		int err = -errno;
		log_warn("socket for interface ioctls");
		return err;
	}
	*fd = s;
	return 0;
}

/* ---------------------------------------------------------------- Linux */

static int tun_linux_open(struct tun_dev *dev, enum tun_type type, const char *name)
{
	struct ifreq ifr;
	int fd = -1, err;

	if (name == NULL)
		name = "";
	if (type != TUN_TYPE_TUN && type != TUN_TYPE_TAP)
		return -EINVAL;
	memset(&ifr, 0, sizeof(ifr));
	if (!tun_copy_name(ifr.ifr_name, name)) {
		log_warnx("device name \"%s\" is longer than %d characters", name, IFNAMSIZ - 1);
		return -ENAMETOOLONG;
	}
	/* IFF_NO_PI: no 4-byte packet-information header in front of each
	 * packet; a tun carries bare IP packets, a tap bare Ethernet frames. */
	ifr.ifr_flags = (short)((type == TUN_TYPE_TAP ? IFF_TAP : IFF_TUN) | IFF_NO_PI);

	fd = open(TUN_CLONE_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		log_warn("open %s", TUN_CLONE_PATH);
		goto fail;
	}
	/* A "tap%d" pattern or "" lets the kernel pick the first free name;
	 * TUNSETIFF writes the chosen one back into ifr_name. */
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		log_warn("create %s device \"%s\"", type == TUN_TYPE_TAP ? "tap" : "tun", name);
		goto fail_close;
	}
	ifr.ifr_name[IFNAMSIZ - 1] = '\0';
	memcpy(dev->name, ifr.ifr_name, IFNAMSIZ);
	dev->fd = fd;
	dev->type = type;
	return 0;

fail_close:
	close(fd);
fail:
	return err;
}

static int tun_linux_set_mtu(struct tun_dev *dev, unsigned mtu)
{
	struct ifreq ifr;
	int s = -1, err;

	if (mtu > INT_MAX)
		return -EINVAL;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, dev->name, IFNAMSIZ);
	ifr.ifr_mtu = (int)mtu;

	err = tun_ctl_socket(&s);
	if (err < 0)
		return err;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
		err = -errno;
		log_warn("%s: set MTU %u", dev->name, mtu);
		goto out;
	}
	dev->mtu = mtu;
	err = 0;
out:
	close(s);
	return err;
}

static int tun_linux_set_up(struct tun_dev *dev, bool up)
{
	struct ifreq ifr;
	int s = -1, err;

	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, dev->name, IFNAMSIZ);

	err = tun_ctl_socket(&s);
	if (err < 0)
		return err;
	/* Read-modify-write: the other flags (multicast, noarp, ...) are the
	 * kernel's defaults for the device type and stay as they are. */
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		err = -errno;
		log_warn("%s: get interface flags", dev->name);
		goto out;
	}
	if (up)
		ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
	else
		ifr.ifr_flags = (short)(ifr.ifr_flags & ~IFF_UP);
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		err = -errno;
		log_warn("%s: set link %s", dev->name, up ? "up" : "down");
		goto out;
	}
	err = 0;
out:
	close(s);
	return err;
}

static int tun_linux_set_bridge(struct tun_dev *dev, const char *bridge)
{
	struct ifreq ifr;
	unsigned ifindex;
	int s = -1, err;

	if (bridge == NULL || bridge[0] == '\0')
		return 0;
	/* A bridge forwards Ethernet frames; a tun has no link layer. */
	if (dev->type != TUN_TYPE_TAP) {
		log_warnx("%s: only a tap device can join bridge %s", dev->name, bridge);
		return -EINVAL;
	}
	memset(&ifr, 0, sizeof(ifr));
	if (!tun_copy_name(ifr.ifr_name, bridge)) {
		log_warnx("%s: bridge name \"%s\" is longer than %d characters", dev->name,
			  bridge, IFNAMSIZ - 1);
		return -ENAMETOOLONG;
	}
	/* Checked first so the message says what is wrong: the ioctl itself
	 * would only answer ENODEV without naming which of the two is missing.
	 * saltun enslaves to a bridge, it never creates one (that is the
	 * admin's network design, like the bridge's own address). */
	if (if_nametoindex(bridge) == 0) {
		log_warnx("%s: bridge %s does not exist (create it first: "
			  "ip link add %s type bridge)", dev->name, bridge, bridge);
		return -ENODEV;
	}
	ifindex = if_nametoindex(dev->name);
	if (ifindex == 0) {
		err = -errno;
		log_warn("%s: interface index", dev->name);
		return err;
	}
	ifr.ifr_ifindex = (int)ifindex;

	err = tun_ctl_socket(&s);
	if (err < 0)
		return err;
	if (ioctl(s, SIOCBRADDIF, &ifr) < 0) {
		err = -errno;
		if (err == -EOPNOTSUPP)
			log_warnx("%s: %s is not a bridge", dev->name, bridge);
		else
			log_warn("%s: add to bridge %s", dev->name, bridge);
		goto out;
	}
	err = 0;
out:
	close(s);
	return err;
}

/* Shared by both backends: one packet per call.  EINTR is retried here so
 * callers see only EAGAIN (nothing pending) or a real error. */
static ssize_t tun_read_fd(struct tun_dev *dev, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(dev->fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t tun_write_fd(struct tun_dev *dev, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(dev->fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* Closing the last descriptor of a non-persistent device removes it. */
static void tun_close_fd(struct tun_dev *dev)
{
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
}

const struct tun_ops tun_ops_platform = {
	.open = tun_linux_open,
	.set_mtu = tun_linux_set_mtu,
	.set_up = tun_linux_set_up,
	.set_bridge = tun_linux_set_bridge,
	.read = tun_read_fd,
	.write = tun_write_fd,
	.close = tun_close_fd,
};

/* ------------------------------------------------------------ fd backend */

/*
 * The caller has put a packet-preserving descriptor (SOCK_SEQPACKET or
 * SOCK_DGRAM socketpair) in dev->fd; there is no interface behind it.
 * open takes ownership of that fd: close() closes it.
 */
static int tun_fd_open(struct tun_dev *dev, enum tun_type type, const char *name)
{
	int flags;

	if (dev->fd < 0)
		return -EBADF;
	if (type != TUN_TYPE_TUN && type != TUN_TYPE_TAP)
		return -EINVAL;
	/* Same invariants as a real device (tun.h): non-blocking for the loop,
	 * close-on-exec so hooks do not inherit it. */
	flags = fcntl(dev->fd, F_GETFL);
	if (flags < 0 || fcntl(dev->fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	flags = fcntl(dev->fd, F_GETFD);
	if (flags < 0 || fcntl(dev->fd, F_SETFD, flags | FD_CLOEXEC) < 0)
		return -errno;
	/* The caller's dev->name stays; only an empty one takes `name`, so
	 * log lines have something to show. */
	if (dev->name[0] == '\0' && name != NULL && !tun_copy_name(dev->name, name))
		dev->name[0] = '\0';
	dev->type = type;
	return 0;
}

/* Only recorded: there is no interface whose MTU could be set. */
static int tun_fd_set_mtu(struct tun_dev *dev, unsigned mtu)
{
	dev->mtu = mtu;
	return 0;
}

/* No interface, so no link state and no bridge: success, nothing done. */
static int tun_fd_set_up(struct tun_dev *dev, bool up)
{
	return 0;
}

static int tun_fd_set_bridge(struct tun_dev *dev, const char *bridge)
{
	return 0;
}

const struct tun_ops tun_ops_fd = {
	.open = tun_fd_open,
	.set_mtu = tun_fd_set_mtu,
	.set_up = tun_fd_set_up,
	.set_bridge = tun_fd_set_bridge,
	.read = tun_read_fd,
	.write = tun_write_fd,
	.close = tun_close_fd,
};
