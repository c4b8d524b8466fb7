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
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/sockios.h>

#include "log.h"
#include "offload.h"
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

/* Offloads asked of a tun with IFF_VNET_HDR: the kernel may then hand us
 * packets with a partial checksum (CSUM) and TCP/UDP super-packets
 * (TSO/USO) that the data path splits before sealing, and accepts the same
 * from us.  USO arrived in Linux 6.2; older kernels refuse the whole
 * request with EINVAL, hence the second try without it. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
#define TUN_OFFLOADS_FULL (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6)
#define TUN_OFFLOADS_TSO (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)

/* SALTUN_OFFLOAD=off forces the plain data path (tests, and a way out
 * should a kernel's offloads misbehave). */
static bool tun_offload_allowed(void)
{
	const char *v = getenv("SALTUN_OFFLOAD");

	return v == NULL || strcmp(v, "off") != 0;
}

/* TUNSETIFF on a fresh clone descriptor.  0 or -errno (the caller logs);
 * *fdp and ifr_name (the kernel's choice for a pattern) set on success. */
static int tun_linux_create(struct ifreq *ifr, int *fdp)
{
	int fd, err;

	fd = open(TUN_CLONE_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A "tap%d" pattern or "" lets the kernel pick the first free name;
	 * TUNSETIFF writes the chosen one back into ifr_name. */
	if (ioctl(fd, TUNSETIFF, ifr) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

/* Header size and offloads on a device made with IFF_VNET_HDR: the full
 * set, else without USO.  False when the kernel grants neither. */
static bool tun_linux_offload(int fd)
{
	int hdrlen = OFFLOAD_VNET_HDR_LEN;

	if (ioctl(fd, TUNSETVNETHDRSZ, &hdrlen) < 0)
		return false;
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)TUN_OFFLOADS_FULL) == 0)
		return true;
	return ioctl(fd, TUNSETOFFLOAD, (unsigned long)TUN_OFFLOADS_TSO) == 0;
}

static int tun_linux_open(struct tun_dev *dev, enum tun_type type, const char *name)
{
	struct ifreq ifr;
	int fd = -1, err;
	/* Taps stay plain: a frame's offload would need the Ethernet header
	 * parsed as well, and a bridge may forward it anywhere. */
	bool vnet = type == TUN_TYPE_TUN && tun_offload_allowed();

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
	if (vnet) {
		struct ifreq vifr = ifr;

		vifr.ifr_flags = (short)(vifr.ifr_flags | IFF_VNET_HDR);
		if (tun_linux_create(&vifr, &fd) == 0) {
			if (tun_linux_offload(fd)) {
				ifr = vifr;
				goto done;
			}
			/* The flag cannot be taken back from a device: close it
			 * (it goes away, not being persistent) and make a plain one. */
			close(fd);
			fd = -1;
		}
		log_debug("device \"%s\": no tun offloads, plain data path", name);
		vnet = false;
	}
	if ((err = tun_linux_create(&ifr, &fd)) < 0) {
		errno = -err;
		log_warn("create %s device \"%s\"", type == TUN_TYPE_TAP ? "tap" : "tun", name);
		return err;
	}
done:
	ifr.ifr_name[IFNAMSIZ - 1] = '\0';
	memcpy(dev->name, ifr.ifr_name, IFNAMSIZ);
	dev->fd = fd;
	dev->type = type;
	dev->vnet = vnet;
	return 0;
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

/*
 * A vnet device through the plain ops (tun.h: one packet per call): the
 * header is added or taken off here, so code that knows nothing of
 * offloads keeps working on any device.  The data path itself reads and
 * writes the header (tun_read_vnet, tun_write_vnet).
 */
static const uint8_t tun_zero_vnet_hdr[OFFLOAD_VNET_HDR_LEN];

/* RFC 1071 over p[0, len), big-endian words: the partial checksum that
 * NEEDS_CSUM leaves to the reader (skb_checksum_help). */
static uint16_t tun_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len > 0)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static ssize_t tun_linux_read(struct tun_dev *dev, void *buf, size_t len)
{
	uint8_t hdr[OFFLOAD_VNET_HDR_LEN];
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { buf, len } };
	struct offload_vnet_hdr h;
	ssize_t n;

	if (!dev->vnet)
		return tun_read_fd(dev, buf, len);
	do
		n = readv(dev->fd, iov, 2);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (!offload_vnet_hdr_parse(&h, hdr, (size_t)n))
		return -EPROTO;
	n -= OFFLOAD_VNET_HDR_LEN;
	/* A super-packet is many packets: only the data path can split it. */
	if (h.gso_type != OFFLOAD_GSO_NONE)
		return -EMSGSIZE;
	if (h.flags & OFFLOAD_F_NEEDS_CSUM) {
		size_t at = (size_t)h.csum_start + h.csum_offset;
		uint8_t *p = buf;
		uint16_t c;
		/* The field holds the pseudo-header sum: summing over it adds
		 * it in.  TCP and UDP fields sit an even distance away. */
		if (h.csum_start >= (size_t)n || at + 2 > (size_t)n || (h.csum_offset & 1))
			return -EPROTO;
		c = tun_csum(p + h.csum_start, (size_t)n - h.csum_start);
		p[at] = (uint8_t)(c >> 8);
		p[at + 1] = (uint8_t)c;
	}
	return n;
}

static ssize_t tun_linux_write(struct tun_dev *dev, const void *buf, size_t len)
{
	struct iovec iov[2] = { { (void *)tun_zero_vnet_hdr, OFFLOAD_VNET_HDR_LEN },
				{ (void *)buf, len } };
	ssize_t n;

	if (!dev->vnet)
		return tun_write_fd(dev, buf, len);
	do
		n = writev(dev->fd, iov, 2);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n >= OFFLOAD_VNET_HDR_LEN ? n - OFFLOAD_VNET_HDR_LEN : 0;
}

ssize_t tun_read_vnet(struct tun_dev *dev, void *buf, size_t len)
{
	return tun_read_fd(dev, buf, len);
}

const struct tun_ops tun_ops_platform = {
	.open = tun_linux_open,
	.set_mtu = tun_linux_set_mtu,
	.set_up = tun_linux_set_up,
	.set_bridge = tun_linux_set_bridge,
	.read = tun_linux_read,
	.write = tun_linux_write,
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

/* ------------------------------------------------------- vnet coalescing */

int tun_coalescer_init(struct tun_coalescer *c)
{
	c->dev = NULL;
	c->drops = NULL;
	c->g = malloc(sizeof(*c->g));
	if (c->g == NULL)
		return -ENOMEM;
	offload_gro_reset(c->g);
	return 0;
}

void tun_coalescer_free(struct tun_coalescer *c)
{
	free(c->g);
	c->g = NULL;
	c->dev = NULL;
}

void tun_coalescer_flush(struct tun_coalescer *c)
{
	size_t n;

	if (c->g == NULL || c->dev == NULL)
		return;
	n = offload_gro_finish(c->g);
	if (n > 0 && tun_write_fd(c->dev, c->g->buf, n) < 0 && c->drops != NULL)
		(*c->drops)++;
	c->dev = NULL;
	c->drops = NULL;
}

int tun_write_vnet(struct tun_coalescer *c, struct tun_dev *dev, uint64_t *drops, uint8_t *pkt,
		   size_t len)
{
	uint8_t *hdr = pkt - OFFLOAD_VNET_HDR_LEN;
	ssize_t n;

	/* Invariant: c->dev != NULL exactly when the coalescer holds a packet. */
	if (c != NULL && c->g != NULL && dev->type == TUN_TYPE_TUN) {
		if (c->dev != NULL && c->dev != dev)
			tun_coalescer_flush(c);
		if (offload_gro_add(c->g, pkt, len))
			goto held;
		/* Not a continuation: the held packet goes first, then this one
		 * may start the next super-packet. */
		if (c->dev != NULL) {
			tun_coalescer_flush(c);
			if (offload_gro_add(c->g, pkt, len))
				goto held;
		}
	}
	/* A zero header: no offload asked, checksums are complete (the sender
	 * completed them before sealing). */
	memset(hdr, 0, OFFLOAD_VNET_HDR_LEN);
	n = tun_write_fd(dev, hdr, len + OFFLOAD_VNET_HDR_LEN);
	return n < 0 ? (int)n : 0;
held:
	c->dev = dev;
	c->drops = drops;
	return 0;
}
