/*
 * Tunnel devices behind a small table of operations (as tinc's device
 * backends, but each call takes its context), so a FreeBSD backend can
 * follow in tun_bsd.c and tests can use a plain fd.
 *
 * Linux: /dev/net/tun with IFF_TUN|IFF_NO_PI (IP packets, no header) or
 * IFF_TAP|IFF_NO_PI (Ethernet frames).  A tun also gets IFF_VNET_HDR with
 * checksum and segmentation offloads when the kernel grants them (dev->vnet):
 * the device then hands over a virtio-net header in front of each packet,
 * which may be a 64 KiB TSO/USO super-packet, and wants one in front of
 * each packet written (offload.h).  The ops below still move one plain
 * packet per call on such a device (they add and take off the header; a
 * super-packet read that way is dropped, -EMSGSIZE); the data path uses
 * tun_read_vnet and tun_write_vnet.  SALTUN_OFFLOAD=off in the environment
 * keeps devices plain.
 */
#ifndef SALTUN_TUN_H
#define SALTUN_TUN_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "compat.h"

enum tun_type { TUN_TYPE_TUN = 0, TUN_TYPE_TAP = 1 };

struct tun_dev {
	const struct tun_ops *ops;
	int fd;                    /* non-blocking, close-on-exec; -1 when closed */
	enum tun_type type;
	char name[IFNAMSIZ];       /* the name the kernel gave */
	unsigned mtu;
	/* The device carries an OFFLOAD_VNET_HDR_LEN header in front of each
	 * packet (TUN_F_CSUM|TSO granted).  Set by open; a descriptor made
	 * elsewhere and handed over must carry the flag of the open that made it. */
	bool vnet;
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
	dev->vnet = false;
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
	dev->vnet = false;
	return tun_ops_fd.open(dev, type, name);
}

/*
 * Writing to vnet devices (dev->vnet), with receive-side coalescing: TCP
 * segments that continue one flow to one device are gathered into a single
 * super-packet (offload_gro) and written at once, which spares the kernel
 * a trip through its stack per segment.  One coalescer serves a whole
 * daemon (it holds 64 KiB; sessions hold none).  The caller flushes it
 * before going back to the event loop, so nothing is ever held across
 * callbacks: a device can close without a packet left pointing at it.
 */
struct offload_gro;
struct tun_coalescer {
	struct offload_gro *g;      /* NULL: not allocated */
	struct tun_dev *dev;        /* the device the held packet is for; NULL = none */
	uint64_t *drops;            /* where a failed write of it is counted */
};
/* 0 or -ENOMEM. */
int tun_coalescer_init(struct tun_coalescer *c);
/* Frees; flush first (a held packet is dropped). */
void tun_coalescer_free(struct tun_coalescer *c);
/* A vnet device: one read with the header, as the kernel gives it: bytes
 * (header included), or -errno (-EAGAIN when none). */
ssize_t tun_read_vnet(struct tun_dev *dev, void *buf, size_t len);
/* Deliver the IP packet `pkt` (`len` bytes; OFFLOAD_VNET_HDR_LEN writable
 * bytes in front of it) to the vnet tun `dev`: coalesced when it continues
 * the held flow, else written on its own with a zero header, after the held
 * packet so one flow keeps its order (c NULL: never coalesced).  Returns 0
 * or the -errno of a failed write of this packet; a failed flush counts in
 * the held packet's *drops. */
int tun_write_vnet(struct tun_coalescer *c, struct tun_dev *dev, uint64_t *drops, uint8_t *pkt,
		   size_t len);
/* Write what is held, if anything. */
void tun_coalescer_flush(struct tun_coalescer *c);

#endif
