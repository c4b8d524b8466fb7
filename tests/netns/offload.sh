#!/bin/bash
#
# The fast data path against the plain one, same topology, one after the
# other: tun offloads (the kernel hands the daemon 64 KiB TCP/UDP super-
# packets, the daemon splits them before sealing and coalesces what it
# decrypts) with UDP GSO/GRO on the underlay, then SALTUN_OFFLOAD=off.
# Each round: the log names the data path; 32 MiB of random bytes over TCP
# each way (IPv4 a -> b, IPv6 b -> a) arrive with the same SHA-256; a tcpdump
# on each tun0 sees super-packets (> 1500 bytes) with offloads and none
# without; iperf3 TCP both ways and UDP (figures printed, not asserted
# beyond "moved something"); with offloads, an application's UDP GSO send
# (USO) crosses the tunnel as 1000 intact datagrams.  Checksums matter
# everywhere: a segment with a wrong TCP or UDP checksum is dropped by the
# receiving kernel, so a broken split or merge shows as a stalled transfer,
# a lost datagram or a different hash.
#
#   ┌──────────────────────────────┐            ┌──────────────────────────────┐
#   │ $ns1                         │            │ $ns2                         │
#   │  tun0 198.18.0.1/24 fd00::1  │            │  tun0 198.18.0.2/24 fd00::2  │
#   │    saltun "a" [site2]        │ ==tunnel== │    saltun "b" [site1]        │
#   │  u1 192.0.2.1/24 :5555 ──────┼─── veth ───┼── u2 192.0.2.2/24 :5555      │
#   └──────────────────────────────┘            └──────────────────────────────┘

# shellcheck source-path=SCRIPTDIR disable=SC2016 # single-quoted perl programs
. "$(dirname "$0")/lib.sh"
need_root
need_cmd iperf3 perl sha256sum tcpdump
test_start 300

ns1=$(ns_name 1)
ns2=$(ns_name 2)
ns_add "$ns1"
ns_add "$ns2"
veth_link "$ns1" u1 192.0.2.1/24 "$ns2" u2 192.0.2.2/24

key_gen a
key_gen b
{
	conf_global a 0.0.0.0:5555
	cat <<EOF
[site2]
public_key = $(key_pub b)
endpoint = 192.0.2.2:5555
type = tun
device = tun0
up = ip addr add 198.18.0.1/24 dev %d && ip addr add fd00::1/64 dev %d && ip link set %d up
EOF
} >"$T/a.conf"
{
	conf_global b 0.0.0.0:5555
	cat <<EOF
[site1]
public_key = $(key_pub a)
endpoint = 192.0.2.1:5555
type = tun
device = tun0
up = ip addr add 198.18.0.2/24 dev %d && ip addr add fd00::2/64 dev %d && ip link set %d up
EOF
} >"$T/b.conf"

head -c $((32 << 20)) /dev/urandom >"$T/random.bin"
sum_sent=$(sha256sum <"$T/random.bin" | cut -d' ' -f1)

# A TCP sink NAME in NS on ADDR:PORT writing what one connection brings to
# $T/NAME.out; ready when this returns, "done" in its log at the end.
tcp_sink()
{
	local ns=$1 name=$2 addr=$3 port=$4
	bg_start "$name" ip netns exec "$ns" perl -MIO::Socket::IP -e '
		my ($addr, $port, $out) = @ARGV;
		my $l = IO::Socket::IP->new(LocalHost => $addr, LocalPort => $port,
					    Listen => 1, ReuseAddr => 1) or die "listen: $@";
		$| = 1;
		print "listening\n";
		my $c = $l->accept or die "accept: $!";
		open(my $f, ">", $out) or die "$out: $!";
		binmode $f;
		my $buf;
		while (my $n = sysread($c, $buf, 65536)) { print $f $buf or die "write: $!"; }
		close $f or die "close: $!";
		print "done\n";' "$addr" "$port" "$T/$name.out"
	wait_for "$T/$name.log" "^listening" 5 || fail "TCP sink $name did not start"
}

# Send $T/random.bin from NS to ADDR:PORT over one TCP connection.
tcp_send()
{
	local ns=$1 addr=$2 port=$3
	timeout 60 ip netns exec "$ns" perl -MIO::Socket::IP -e '
		my ($addr, $port, $in) = @ARGV;
		my $s = IO::Socket::IP->new(PeerHost => $addr, PeerPort => $port) or die "connect: $@";
		open(my $f, "<", $in) or die "$in: $!";
		binmode $f;
		my $buf;
		while (my $n = sysread($f, $buf, 65536)) {
			for (my $o = 0; $o < $n; ) {
				my $w = syswrite($s, $buf, $n - $o, $o) // die "send: $!";
				$o += $w;
			}
		}
		close $s or die "close: $!";' "$addr" "$port" "$T/random.bin"
}

# 32 MiB from NS_FROM to ADDR (in NS_TO) over TCP: the SHA-256 must match.
file_transfer()
{
	local from=$1 to=$2 addr=$3 name=$4 sum t0
	tcp_sink "$to" "$name" "$addr" 7000
	t0=$(date +%s.%N)
	tcp_send "$from" "$addr" 7000 || fail "$name: sending failed"
	wait_for "$T/$name.log" "^done" 30 || fail "$name: the sink did not finish"
	bg_stop "$name"
	sum=$(sha256sum <"$T/$name.out" | cut -d' ' -f1)
	[ "$sum" = "$sum_sent" ] ||
		fail "$name: SHA-256 $sum of $(stat -c %s "$T/$name.out") bytes received, $sum_sent sent"
	log "$name: 32 MiB intact in $(elapsed_since "$t0")s"
	rm -f "$T/$name.out"
}

# UDP: one application send with UDP_SEGMENT (USO) of 20 datagrams of 1000
# bytes, 50 times, from NS_FROM to ADDR in NS_TO; prints how many arrived
# intact, or "EIO" when the kernel refuses GSO on that route.
udp_gso_transfer()
{
	local from=$1 to=$2 addr=$3 name=$4
	bg_start "$name" ip netns exec "$to" perl -MIO::Socket::IP -e '
		my ($addr) = @ARGV;
		my $s = IO::Socket::IP->new(LocalHost => $addr, LocalPort => 7001,
					    Proto => "udp") or die "bind: $@";
		$| = 1;
		print "listening\n";
		my ($ok, $bad, $buf) = (0, 0);
		my $rin = "";
		vec($rin, fileno($s), 1) = 1;
		while (select(my $r = $rin, undef, undef, 3)) {
			defined(recv($s, $buf, 65536, 0)) or die "recv: $!";
			my ($i, $j) = unpack("NN", $buf);
			if (length($buf) == 1000 &&
			    substr($buf, 8) eq chr(($i * 20 + $j) & 255) x 992) { $ok++ } else { $bad++ }
			last if $ok + $bad == 1000;
		}
		print "received $ok intact, $bad damaged\n";' "$addr"
	wait_for "$T/$name.log" "^listening" 5 || fail "UDP sink $name did not start"
	ip netns exec "$from" perl -MIO::Socket::IP -e '
		my ($addr) = @ARGV;
		my $s = IO::Socket::IP->new(PeerHost => $addr, PeerPort => 7001,
					    Proto => "udp") or die "socket: $@";
		# SOL_UDP 17, UDP_SEGMENT 103 (linux/udp.h): 1000-byte segments.
		setsockopt($s, 17, 103, pack("i", 1000)) or die "UDP_SEGMENT: $!";
		for my $i (0 .. 49) {
			my $buf = join("", map { pack("NN", $i, $_) . chr(($i * 20 + $_) & 255) x 992 } 0 .. 19);
			unless (defined(send($s, $buf, 0))) {
				if ($!{EIO}) { print "EIO\n"; exit 0 }
				die "send: $!";
			}
			select(undef, undef, undef, 0.01);
		}' "$addr" >"$T/$name.send" 2>&1 || fail "$name: $(cat "$T/$name.send")"
	if grep -q EIO "$T/$name.send"; then
		bg_stop "$name"
		echo EIO
		return 0
	fi
	wait_for "$T/$name.log" "^received" 10 || fail "$name: the UDP sink did not finish"
	bg_stop "$name"
	sed -n 's/^received \([0-9]*\) intact.*/\1/p' "$T/$name.log"
}

# UDP iperf3 (-u): the receiver's delivered datagrams, and loss.
iperf_udp()
{
	local ns=$1 addr=$2 out=$3
	timeout 40 ip netns exec "$ns" iperf3 -c "$addr" -p 5201 -t 3 -u -b 300M -l 1392 -f m \
		>"$T/$out.log" 2>&1 || fail "iperf3 $out failed (see $out.log)"
	awk '/receiver$/ { split($(NF - 2), a, "/"); print a[2] - a[1], $(NF - 1) }' "$T/$out.log"
}

# Packets longer than a 1420-byte MTU seen on tun0 in NS during a capture.
super_count()
{
	capture_count "$1" 'greater 1500'
}

round()
{
	local mode=$1 up down up6 udp path uso ta tb
	log "---- round: SALTUN_OFFLOAD=$mode"
	export SALTUN_OFFLOAD=$mode
	saltun_start "$ns1" a "$T/a.conf"
	saltun_start "$ns2" b "$T/b.conf"
	unset SALTUN_OFFLOAD
	if [ "$mode" = on ]; then
		path="tun offload \(TSO/USO\) \+ UDP GSO/GRO"
	else
		path="plain"
	fi
	wait_for "$T/a.log" "site2: data path: $path\$" 3 || fail "a: no 'data path: $path' line"
	wait_for "$T/b.log" "site1: data path: $path\$" 3 || fail "b: no 'data path: $path' line"
	ping_wait "$ns1" 198.18.0.2 15 || fail "$mode: no ping through the tunnel"
	ping_ok "$ns1" fd00::2 3 || fail "$mode: IPv6 a -> b"

	# Both tun0s watched while files cross: a's sees what its kernel hands
	# the daemon (TSO), b's what the daemon writes (GRO); -s 96 keeps only
	# headers.
	capture_start "$ns1" tun0 "cap-a-$mode" -s 96 tcp port 7000
	capture_start "$ns2" tun0 "cap-b-$mode" -s 96 tcp port 7000
	file_transfer "$ns1" "$ns2" 198.18.0.2 "file-a-to-b-$mode"
	file_transfer "$ns2" "$ns1" fd00::1 "file-b-to-a6-$mode"
	capture_stop "cap-a-$mode"
	capture_stop "cap-b-$mode"
	ta=$(super_count "cap-a-$mode")
	tb=$(super_count "cap-b-$mode")
	log "$mode: packets > 1500 bytes on tun0: a $ta, b $tb"
	if [ "$mode" = on ]; then
		# Each way, one side reads TSO packets and the other writes GRO ones.
		{ [ "$ta" -gt 0 ] && [ "$tb" -gt 0 ]; } || fail "$mode: no super-packets on tun0 (a $ta, b $tb)"
	else
		{ [ "$ta" -eq 0 ] && [ "$tb" -eq 0 ]; } || fail "$mode: super-packets on a plain tun0 (a $ta, b $tb)"
	fi

	iperf_server "$ns2" "iperf-b-$mode" 198.18.0.2
	up=$(iperf_client "$ns1" 198.18.0.2 5 "iperf-a-to-b-$mode")
	down=$(iperf_client "$ns1" 198.18.0.2 5 "iperf-b-to-a-$mode" -R)
	udp=$(iperf_udp "$ns1" 198.18.0.2 "iperf-udp-$mode")
	bg_stop "iperf-b-$mode"
	iperf_server "$ns2" "iperf6-b-$mode" fd00::2
	up6=$(iperf_client "$ns1" fd00::2 5 "iperf6-a-to-b-$mode")
	bg_stop "iperf6-b-$mode"
	log "$mode: iperf3 TCP a -> b $up, b -> a $down, IPv6 a -> b $up6 Mbit/s; UDP 1392 B: ${udp% *} datagrams delivered, loss ${udp#* }"
	awk -v u="$up" -v d="$down" -v s="$up6" -v p="${udp% *}" \
		'BEGIN { exit !(u > 0 && d > 0 && s > 0 && p > 0) }' || fail "$mode: iperf3 moved nothing"

	uso=$(udp_gso_transfer "$ns1" "$ns2" 198.18.0.2 "uso-$mode")
	log "$mode: UDP GSO send through the tunnel: $uso of 1000 datagrams intact"
	if [ "$mode" = on ]; then
		[ "$uso" = 1000 ] || fail "$mode: UDP GSO through the tunnel: $uso of 1000 datagrams intact"
	else
		# Without offloads on tun0, the sending kernel segments (or refuses).
		[ "$uso" = 1000 ] || [ "$uso" = EIO ] || fail "$mode: UDP GSO: $uso of 1000 intact"
	fi

	{ bg_alive a && bg_alive b; } || fail "$mode: a daemon died under load"
	saltun_stop a
	[ "$STOP_STATUS" -eq 0 ] || fail "a: exit status $STOP_STATUS after SIGTERM"
	saltun_stop b
	[ "$STOP_STATUS" -eq 0 ] || fail "b: exit status $STOP_STATUS after SIGTERM"
}

round on
round off
