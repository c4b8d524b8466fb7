/*
 * The fast data path's system interfaces: UDP GSO/GRO batching over
 * loopback sockets (transport_udp.c), and tun devices opened with the
 * virtio-net header (tun_linux.c).  The pure segmentation and coalescing
 * is test_offload.c's.  Tests that need root run in their own network
 * namespace (Criterion forks one process per test) and skip without it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "offload.h"
#include "transport.h"
#include "tun.h"

/* ------------------------------------------------------------ helpers */

static void netns_enter(void)
{
	if (geteuid() != 0)
		cr_skip_test("not root: needs a network namespace");
	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("unshare(CLONE_NEWNET): %s", strerror(errno));
}

/* Loopback up in this namespace (a fresh one has it down). */
static void lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(s, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
	cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
}

static void sock_open_lo(struct udp_sock *u)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	cr_assert_eq(udp_sock_open(u, NULL, (struct sockaddr *)&a, true), 0);
}

/* Byte j of datagram i: each datagram distinct, so a misplaced cut shows. */
static uint8_t pattern(unsigned i, size_t j)
{
	return (uint8_t)(i * 31 + j * 7 + 1);
}

/* Queue datagrams of the given sizes to `dst` from socket index 0. */
static void batch_fill(struct udp_batch *b, const struct sockaddr_storage *dst,
		       const size_t *sizes, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = udp_batch_slot(b, i);
		for (size_t j = 0; j < sizes[i]; j++)
			p[j] = pattern(i, j);
		b->iov[i].iov_len = sizes[i];
		memcpy(&b->addr[i], dst, sizeof(*dst));
		b->sock[i] = 0;
	}
	b->count = n;
}

/* Receive until `n` datagrams arrived (or 1 s without any); checks each
 * against the pattern in order; returns how many receive slots they used. */
static unsigned batch_drain(struct udp_batch *rx, int fd, const size_t *sizes, unsigned n,
			    unsigned *with_seg)
{
	unsigned got = 0, slots = 0;

	*with_seg = 0;
	while (got < n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		cr_assert_eq(poll(&pfd, 1, 1000), 1, "only %u of %u datagrams arrived", got, n);
		int m = udp_batch_recv(rx, fd);
		cr_assert_gt(m, 0);
		for (int k = 0; k < m; k++) {
			uint8_t *p = udp_batch_slot(rx, (unsigned)k);
			size_t len = rx->msgs[k].msg_len;
			size_t seg = rx->seg[k] ? rx->seg[k] : len;
			slots++;
			*with_seg += rx->seg[k] != 0;
			for (size_t off = 0; off < len; off += seg, got++) {
				size_t dl = len - off < seg ? len - off : seg;
				cr_assert_lt(got, n, "more datagrams than sent");
				cr_assert_eq(dl, sizes[got], "datagram %u: %zu bytes, sent %zu", got, dl,
					     sizes[got]);
				for (size_t j = 0; j < dl; j++)
					cr_assert_eq(p[off + j], pattern(got, j), "datagram %u byte %zu", got, j);
			}
		}
	}
	return slots;
}

/* ------------------------------------------------------------ UDP GSO/GRO */

struct gso_case {
	const char *what;
	size_t sizes[TRANSPORT_BATCH];
	unsigned n;
	unsigned slots;          /* receive slots used with GSO + GRO */
};

static const struct gso_case gso_cases[] = {
	{ "one datagram", { 1000 }, 1, 1 },
	{ "a run, the last shorter", { 1000, 1000, 1000, 1000, 300 }, 5, 1 },
	{ "a shorter one ends the run", { 1000, 500, 1000, 1000 }, 4, 2 },
	{ "a longer one starts a new run", { 500, 500, 1000, 1000 }, 4, 2 },
	/* 60 x 1200 = 72000 > TRANSPORT_GSO_BYTES: the run is cut at 54. */
	{ "runs stop short of 64 KiB",
	  { [0 ... 59] = 1200 }, 60, 2 },
};

ParameterizedTestParameters(fastpath, gso_gro)
{
	return cr_make_param_array(struct gso_case, gso_cases, sizeof(gso_cases) / sizeof(gso_cases[0]));
}

ParameterizedTest(const struct gso_case *c, fastpath, gso_gro)
{
	struct udp_sock tx, rx;
	struct udp_batch bt, br;
	unsigned with_seg;

	netns_enter();
	lo_up();
	unsetenv("SALTUN_OFFLOAD");
	sock_open_lo(&tx);
	sock_open_lo(&rx);
	cr_assert(tx.gso, "UDP_SEGMENT not available");
	cr_assert(rx.gro, "UDP_GRO not available");
	cr_assert_eq(udp_batch_init(&bt, 2048), 0);
	cr_assert_eq(udp_batch_init(&br, TRANSPORT_GRO_SLOT), 0);

	batch_fill(&bt, &rx.local, c->sizes, c->n);
	cr_assert_eq(udp_batch_flush(&bt, &tx), 0, "%s: send failed", c->what);
	cr_assert_eq(bt.count, 0);
	cr_assert_not(bt.gso_off);
	cr_assert_eq(batch_drain(&br, rx.fd, c->sizes, c->n, &with_seg), c->slots, "%s", c->what);

	udp_batch_free(&bt);
	udp_batch_free(&br);
	udp_sock_close(&tx);
	udp_sock_close(&rx);
}

/* A kernel that refuses GSO (here: SO_NO_CHECK, UDP without checksums,
 * which GSO cannot do: EINVAL) gets every datagram plainly, and GSO stays
 * off for the batch. */
Test(fastpath, gso_refused_falls_back)
{
	static const size_t sizes[] = { 800, 800, 800, 800, 800, 800 };
	struct udp_sock tx, rx;
	struct udp_batch bt, br;
	unsigned with_seg, slots;
	int one = 1;

	netns_enter();
	lo_up();
	unsetenv("SALTUN_OFFLOAD");
	sock_open_lo(&tx);
	sock_open_lo(&rx);
	cr_assert_eq(setsockopt(tx.fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)), 0);
	/* GRO off on the receiver: each datagram in its own slot. */
	int zero = 0;
	cr_assert_eq(setsockopt(rx.fd, SOL_UDP, UDP_GRO, &zero, sizeof(zero)), 0);
	cr_assert_eq(udp_batch_init(&bt, 2048), 0);
	cr_assert_eq(udp_batch_init(&br, 2048), 0);

	batch_fill(&bt, &rx.local, sizes, 6);
	cr_assert_eq(udp_batch_flush(&bt, &tx), 0);
	cr_assert(bt.gso_off, "the refusal was not noticed");
	slots = batch_drain(&br, rx.fd, sizes, 6, &with_seg);
	cr_assert_eq(slots, 6);
	cr_assert_eq(with_seg, 0);

	/* Later flushes go plainly at once. */
	batch_fill(&bt, &rx.local, sizes, 6);
	cr_assert_eq(udp_batch_flush(&bt, &tx), 0);
	cr_assert_eq(batch_drain(&br, rx.fd, sizes, 6, &with_seg), 6);

	udp_batch_free(&bt);
	udp_batch_free(&br);
	udp_sock_close(&tx);
	udp_sock_close(&rx);
}

/* SALTUN_OFFLOAD=off: neither GSO nor GRO, one datagram per slot. */
Test(fastpath, offload_off_is_plain)
{
	static const size_t sizes[] = { 1000, 1000, 1000, 1000 };
	struct udp_sock tx, rx;
	struct udp_batch bt, br;
	unsigned with_seg;

	netns_enter();
	lo_up();
	cr_assert_eq(setenv("SALTUN_OFFLOAD", "off", 1), 0);
	cr_assert_not(transport_offload_allowed());
	sock_open_lo(&tx);
	sock_open_lo(&rx);
	cr_assert_not(tx.gso);
	cr_assert_not(rx.gro);
	cr_assert_eq(udp_batch_init(&bt, 2048), 0);
	cr_assert_eq(udp_batch_init(&br, 2048), 0);
	batch_fill(&bt, &rx.local, sizes, 4);
	cr_assert_eq(udp_batch_flush(&bt, &tx), 0);
	cr_assert_eq(batch_drain(&br, rx.fd, sizes, 4, &with_seg), 4);
	cr_assert_eq(with_seg, 0);
	udp_batch_free(&bt);
	udp_batch_free(&br);
	udp_sock_close(&tx);
	udp_sock_close(&rx);
}

Test(fastpath, offload_env_values)
{
	static const struct { const char *v; bool allowed; } t[] = {
		{ NULL, true }, { "on", true }, { "", true }, { "OFF", true }, { "off", false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].v == NULL)
			unsetenv("SALTUN_OFFLOAD");
		else
			setenv("SALTUN_OFFLOAD", t[i].v, 1);
		cr_assert_eq(transport_offload_allowed(), t[i].allowed, "SALTUN_OFFLOAD=%s",
			     t[i].v ? t[i].v : "(unset)");
	}
}

/* ------------------------------------------------------------ vnet tun */

/* No pointers in parameters: Criterion may run each in a fresh process
 * image, where the parent's addresses mean nothing. */
struct vnet_case {
	enum tun_type type;
	bool off;                /* SALTUN_OFFLOAD=off, else unset */
	bool vnet;
};

static const struct vnet_case vnet_cases[] = {
	{ TUN_TYPE_TUN, false, true },
	{ TUN_TYPE_TUN, true, false },
	{ TUN_TYPE_TAP, false, false },  /* taps stay plain */
	{ TUN_TYPE_TAP, true, false },
};

ParameterizedTestParameters(fastpath, tun_vnet_flag)
{
	return cr_make_param_array(struct vnet_case, vnet_cases,
				   sizeof(vnet_cases) / sizeof(vnet_cases[0]));
}

ParameterizedTest(const struct vnet_case *c, fastpath, tun_vnet_flag)
{
	struct tun_dev dev;

	netns_enter();
	if (access("/dev/net/tun", R_OK | W_OK) != 0)
		cr_skip_test("/dev/net/tun missing");
	if (c->off)
		setenv("SALTUN_OFFLOAD", "off", 1);
	else
		unsetenv("SALTUN_OFFLOAD");
	cr_assert_eq(tun_open(&dev, &tun_ops_platform, c->type, "fp%d"), 0);
	cr_assert_eq(dev.vnet, c->vnet);
	dev.ops->close(&dev);
}

/* An fd handed over (tun_open_fd) starts plain; the flag is the opener's. */
Test(fastpath, fd_backend_is_plain)
{
	struct tun_dev dev;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cr_assert_eq(tun_open_fd(&dev, sv[0], TUN_TYPE_TUN, "fd0"), 0);
	cr_assert_not(dev.vnet);
	dev.ops->close(&dev);
	close(sv[1]);
}

/* A vnet tun fp0 with 198.18.7.1/24, up: 198.18.7.2 is routed into it.
 * Returns the UDP socket that sent `msg` to 198.18.7.2:9 through it. */
static int vnet_tun_send(struct tun_dev *dev, const char *msg, size_t len)
{
	struct ifreq ifr;
	int s;

	netns_enter();
	if (access("/dev/net/tun", R_OK | W_OK) != 0)
		cr_skip_test("/dev/net/tun missing");
	unsetenv("SALTUN_OFFLOAD");
	cr_assert_eq(tun_open(dev, &tun_ops_platform, TUN_TYPE_TUN, "fp0"), 0);
	cr_assert(dev->vnet);
	cr_assert_eq(dev->ops->set_up(dev, true), 0);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, dev->name);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, "198.18.7.1", &sin->sin_addr);
	cr_assert_eq(ioctl(s, SIOCSIFADDR, &ifr), 0, "%s", strerror(errno));
	inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr);
	cr_assert_eq(ioctl(s, SIOCSIFNETMASK, &ifr), 0, "%s", strerror(errno));
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(9) };
	inet_pton(AF_INET, "198.18.7.2", &dst.sin_addr);
	cr_assert_eq(sendto(s, msg, len, 0, (struct sockaddr *)&dst, sizeof(dst)), (ssize_t)len);
	return s;
}

/* Swap addresses and ports of the IPv4/UDP packet at ip: its answer goes
 * back to the sender.  Swapping 16-bit words keeps every checksum valid. */
static void ip_udp_swap(uint8_t *ip)
{
	uint8_t t[4];

	memcpy(t, ip + 12, 4);
	memcpy(ip + 12, ip + 16, 4);
	memcpy(ip + 16, t, 4);
	memcpy(t, ip + 20, 2);
	memcpy(ip + 20, ip + 22, 2);
	memcpy(ip + 22, t, 2);
}

/* The socket gets `msg` back: the kernel took the written packet, checksums included. */
static void expect_back(int s, const char *msg, size_t len)
{
	char got[64];
	struct pollfd rp = { .fd = s, .events = POLLIN };

	cr_assert_eq(poll(&rp, 1, 1000), 1, "the written packet did not arrive");
	cr_assert_eq(recv(s, got, sizeof(got), 0), (ssize_t)len);
	cr_assert_eq(memcmp(got, msg, len), 0);
}

static const char msg[] = "through the tun";

/* The data path's view: each packet behind a 10-byte header.  With
 * TUN_F_CSUM the kernel leaves the UDP checksum to us (NEEDS_CSUM): the
 * iterator completes it, and tun_write_vnet sends it back with a zero
 * header. */
Test(fastpath, tun_vnet_read_has_header)
{
	struct tun_dev dev;
	uint8_t buf[2048], pkt[2048];
	struct offload_vnet_hdr h;
	struct offload_seg_iter it;
	ssize_t n;
	int s = vnet_tun_send(&dev, msg, sizeof(msg));
	struct pollfd pfd = { .fd = dev.fd, .events = POLLIN };

	/* IPv6 router solicitations and the like may come first. */
	for (;;) {
		cr_assert_eq(poll(&pfd, 1, 1000), 1, "nothing read from the tun");
		n = tun_read_vnet(&dev, buf, sizeof(buf));
		cr_assert_gt(n, OFFLOAD_VNET_HDR_LEN);
		if ((buf[OFFLOAD_VNET_HDR_LEN] >> 4) == 4)
			break;
	}
	cr_assert(offload_vnet_hdr_parse(&h, buf, (size_t)n));
	cr_assert_eq(h.gso_type, OFFLOAD_GSO_NONE);
	/* A device with TUN_F_CSUM gets UDP with the checksum left partial. */
	cr_assert(h.flags & OFFLOAD_F_NEEDS_CSUM, "checksum completed by the kernel");
	cr_assert_eq((size_t)n, OFFLOAD_VNET_HDR_LEN + 20 + 8 + sizeof(msg));
	cr_assert_eq(buf[OFFLOAD_VNET_HDR_LEN + 9], IPPROTO_UDP);
	cr_assert_eq(memcmp(buf + OFFLOAD_VNET_HDR_LEN + 28, msg, sizeof(msg)), 0);
	cr_assert(offload_seg_init(&it, &h, buf + OFFLOAD_VNET_HDR_LEN, (size_t)n - OFFLOAD_VNET_HDR_LEN));
	cr_assert_eq(offload_seg_next(&it, pkt + OFFLOAD_VNET_HDR_LEN, sizeof(pkt) - OFFLOAD_VNET_HDR_LEN),
		     n - OFFLOAD_VNET_HDR_LEN);
	cr_assert_eq(offload_seg_next(&it, pkt + OFFLOAD_VNET_HDR_LEN, sizeof(pkt) - OFFLOAD_VNET_HDR_LEN), 0);
	ip_udp_swap(pkt + OFFLOAD_VNET_HDR_LEN);
	cr_assert_eq(tun_write_vnet(NULL, &dev, NULL, pkt + OFFLOAD_VNET_HDR_LEN,
				    (size_t)n - OFFLOAD_VNET_HDR_LEN), 0);
	expect_back(s, msg, sizeof(msg));
	close(s);
	dev.ops->close(&dev);
}

/* Code that knows nothing of offloads (the plain ops) sees plain packets
 * on a vnet device: the header taken off, a partial checksum completed,
 * and a zero header put in front of what it writes. */
Test(fastpath, tun_vnet_plain_ops)
{
	struct tun_dev dev;
	uint8_t buf[2048];
	ssize_t n;
	int s = vnet_tun_send(&dev, msg, sizeof(msg));
	struct pollfd pfd = { .fd = dev.fd, .events = POLLIN };

	for (;;) {
		cr_assert_eq(poll(&pfd, 1, 1000), 1, "nothing read from the tun");
		n = dev.ops->read(&dev, buf, sizeof(buf));
		cr_assert_gt(n, 0);
		if ((buf[0] >> 4) == 4)
			break;
	}
	cr_assert_eq((size_t)n, 20 + 8 + sizeof(msg));
	cr_assert_eq(memcmp(buf + 28, msg, sizeof(msg)), 0);
	ip_udp_swap(buf);
	cr_assert_eq(dev.ops->write(&dev, buf, (size_t)n), n);
	expect_back(s, msg, sizeof(msg));
	close(s);
	dev.ops->close(&dev);
}
