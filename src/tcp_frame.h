/*
 * TCP framing (DESIGN §3 "TCP"): over a stream, every saltun message is
 * preceded by its length as 2 bytes, big-endian.  Pure: bytes in, frames
 * out; no sockets.
 *
 * A frame carries 1 to 65535 bytes.  WIRE_MAX_MESSAGE (65567) does not fit,
 * so a session that speaks TCP keeps its data messages at or below 65535
 * bytes: its MTU (plus 14 for a tap frame) is at most TCP_FRAME_MAX_PACKET
 * (the session clamps it; see saltun.conf(5)).  Length 0 is never valid: no
 * saltun message is empty, and accepting it would let a peer hold a
 * connection open with a stream of nothing.
 */
#ifndef SALTUN_TCP_FRAME_H
#define SALTUN_TCP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

enum tcp_frame_sizes {
	TCP_FRAME_HEADER_LEN = 2,
	TCP_FRAME_MAX = 65535,
	/* Largest inner packet whose data message still fits one frame. */
	TCP_FRAME_MAX_PACKET = TCP_FRAME_MAX - WIRE_DATA_HEADER_LEN - NOISE_TAG_LEN,
};
static_assert(TCP_FRAME_MAX_PACKET == 65503, "data header + tag is 32 bytes");

/*
 * Reassembles frames from arbitrary chunks of a stream (partial reads, many
 * frames per read, one byte at a time).  Holds at most one frame: the buffer
 * is 2 + TCP_FRAME_MAX bytes and never grows.
 */
struct tcp_frame_decoder {
	size_t max;             /* largest length accepted, 1..TCP_FRAME_MAX */
	size_t have;            /* bytes buffered: header first, then body */
	size_t need;            /* body length, once the header is complete */
	int error;              /* sticky: the result that ended the stream */
	uint8_t buf[TCP_FRAME_HEADER_LEN + TCP_FRAME_MAX];
};

enum tcp_frame_result {
	TCP_FRAME_MORE = 0,     /* input used up, no complete frame yet */
	TCP_FRAME_READY,        /* one frame in *msg, *len */
	TCP_FRAME_EMPTY,        /* error: a frame of length 0 */
	TCP_FRAME_OVERSIZE,     /* error: a length above the decoder's max */
};

/* `max` is clamped to 1..TCP_FRAME_MAX. */
void tcp_frame_decoder_init(struct tcp_frame_decoder *dec, size_t max);
/* Change the largest length accepted (e.g. once a connection has
 * authenticated); applies to every frame whose header is not complete yet. */
void tcp_frame_decoder_set_max(struct tcp_frame_decoder *dec, size_t max);

/*
 * Consume bytes from *in (advancing *in, decreasing *inlen) until one frame
 * is complete.  On TCP_FRAME_READY, *msg and *len name the message: either
 * inside the caller's input (no copy, when it arrived whole) or inside the
 * decoder; it is writable and valid until the next call or until the input
 * buffer is reused.  Call again while it returns TCP_FRAME_READY.
 * TCP_FRAME_EMPTY and TCP_FRAME_OVERSIZE are final: the stream cannot be
 * resynchronised, and every later call returns the same error.
 */
enum tcp_frame_result tcp_frame_decode(struct tcp_frame_decoder *dec, uint8_t **in, size_t *inlen,
				       uint8_t **msg, size_t *len);

const char *tcp_frame_result_name(enum tcp_frame_result r);

/* The 2-byte header for a `len`-byte message: 0, or -EMSGSIZE when len is 0
 * or above TCP_FRAME_MAX (out untouched). */
int tcp_frame_header_put(uint8_t out[TCP_FRAME_HEADER_LEN], size_t len);

#endif
