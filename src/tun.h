/*
 * Tunnel devices behind a small table of operations (as tinc's device
 * backends, but each call takes its context), so a FreeBSD backend can
 * follow in tun_bsd.c and tests can use a plain fd.
 *
 * Linux: /dev/net/tun with IFF_TUN|IFF_NO_PI (IP packets, no header) or
 * IFF_TAP|IFF_NO_PI (Ethernet frames).
 */
#ifndef SALTUN_TUN_H
#define SALTUN_TUN_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "compat.h"

enum tun_type { TUN_TYPE_TUN = 0, TUN_TYPE_TAP = 1 };

struct tun_dev {
	const struct tun_ops *ops;
	int fd;                    /* non-blocking, close-on-exec; -1 when closed */
	enum tun_type type;
	char name[IFNAMSIZ];       /* the name the kernel gave */
	unsigned mtu;
};

struct tun_ops {
	/* Create the device: `name` may be a pattern like "tap%d" or "" (kernel
	 * picks).  Sets dev->fd and dev->name.  0 or -errno. */
	int (*open)(struct tun_dev *dev, enum tun_type type, const char *name);
	/* MTU, link up, bridge: 0 or -errno (bridge "" or NULL = none).  A
	 * bridge must already exist (-ENODEV otherwise) and takes only taps. */
	int (*set_mtu)(struct tun_dev *dev, unsigned mtu);
	int (*set_up)(struct tun_dev *dev, bool up);
	int (*set_bridge)(struct tun_dev *dev, const char *bridge);
	/* One packet; bytes, or -errno (-EAGAIN when none). */
	ssize_t (*read)(struct tun_dev *dev, void *buf, size_t len);
	ssize_t (*write)(struct tun_dev *dev, const void *buf, size_t len);
	/* Close and remove the device (it is never made persistent); safe to
	 * call again, dev->fd is -1 afterwards. */
	void (*close)(struct tun_dev *dev);
};

/* Failures of open/set_* are logged by the backend, which knows the device
 * and bridge names; callers need not log them again. */

/* The platform's backend. */
extern const struct tun_ops tun_ops_platform;
/*
 * A backend over an existing packet-preserving descriptor (SOCK_SEQPACKET
 * or SOCK_DGRAM socketpair): tests, and anything without root.  The caller
 * puts the fd in dev->fd BEFORE open (tun_open_fd below does that; tun_open
 * cannot, it resets dev->fd); open only checks it, makes it non-blocking and
 * close-on-exec, and takes ownership.  dev->name is kept (an empty one takes
 * `name`).  set_mtu only records dev->mtu; set_up and set_bridge do nothing
 * and return 0, since there is no interface behind the fd.
 */
extern const struct tun_ops tun_ops_fd;

/* Convenience wrappers. */
static inline int tun_open(struct tun_dev *dev, const struct tun_ops *ops, enum tun_type type,
			   const char *name)
{
	dev->ops = ops;
	dev->fd = -1;
	dev->type = type;
	dev->name[0] = '\0';
	dev->mtu = 0;
	return ops->open(dev, type, name);
}

/* The fd backend over `fd` (ownership passes to dev on success). */
static inline int tun_open_fd(struct tun_dev *dev, int fd, enum tun_type type, const char *name)
{
	dev->ops = &tun_ops_fd;
	dev->fd = fd;
	dev->type = type;
	dev->name[0] = '\0';
	dev->mtu = 0;
	return tun_ops_fd.open(dev, type, name);
}

#endif
