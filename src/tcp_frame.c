/*
 * 2-byte big-endian length framing over a byte stream.  See tcp_frame.h.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "tcp_frame.h"

static size_t tcp_frame_clamp(size_t max)
{
	if (max < 1)
		return 1;
	return max > TCP_FRAME_MAX ? TCP_FRAME_MAX : max;
}

void tcp_frame_decoder_init(struct tcp_frame_decoder *dec, size_t max)
{
	/* The 64 KiB buffer is left as it is: it is only read after being written. */
	dec->max = tcp_frame_clamp(max);
	dec->have = 0;
	dec->need = 0;
	dec->error = TCP_FRAME_MORE;
}

void tcp_frame_decoder_set_max(struct tcp_frame_decoder *dec, size_t max)
{
	dec->max = tcp_frame_clamp(max);
}

enum tcp_frame_result tcp_frame_decode(struct tcp_frame_decoder *dec, uint8_t **in, size_t *inlen,
				       uint8_t **msg, size_t *len)
{
	size_t n;

	if (dec->error != TCP_FRAME_MORE)
		return (enum tcp_frame_result)dec->error;
	/* Header: may arrive a byte at a time. */
	while (dec->have < TCP_FRAME_HEADER_LEN) {
		if (*inlen == 0)
			return TCP_FRAME_MORE;
		dec->buf[dec->have++] = **in;
		(*in)++;
		(*inlen)--;
		if (dec->have < TCP_FRAME_HEADER_LEN)
			continue;
		/* Checked as soon as the header is complete: an oversized length
		 * closes the connection before we buffer a byte of its body. */
		dec->need = (size_t)dec->buf[0] << 8 | dec->buf[1];
		if (dec->need == 0)
			return (enum tcp_frame_result)(dec->error = TCP_FRAME_EMPTY);
		if (dec->need > dec->max)
			return (enum tcp_frame_result)(dec->error = TCP_FRAME_OVERSIZE);
	}
	/* A body that arrived whole is handed out in place: no copy. */
	if (dec->have == TCP_FRAME_HEADER_LEN && *inlen >= dec->need) {
		*msg = *in;
		*len = dec->need;
		*in += dec->need;
		*inlen -= dec->need;
		dec->have = 0;
		return TCP_FRAME_READY;
	}
	n = TCP_FRAME_HEADER_LEN + dec->need - dec->have;
	if (n > *inlen)
		n = *inlen;
	memcpy(dec->buf + dec->have, *in, n);
	dec->have += n;
	*in += n;
	*inlen -= n;
	if (dec->have < TCP_FRAME_HEADER_LEN + dec->need)
		return TCP_FRAME_MORE;
	*msg = dec->buf + TCP_FRAME_HEADER_LEN;
	*len = dec->need;
	dec->have = 0;
	return TCP_FRAME_READY;
}

const char *tcp_frame_result_name(enum tcp_frame_result r)
{
	switch (r) {
	case TCP_FRAME_MORE: return "more";
	case TCP_FRAME_READY: return "ready";
	case TCP_FRAME_EMPTY: return "frame of length 0";
	case TCP_FRAME_OVERSIZE: return "frame too long";
	}
	return "?";
}

int tcp_frame_header_put(uint8_t out[TCP_FRAME_HEADER_LEN], size_t len)
{
	if (len == 0 || len > TCP_FRAME_MAX)
		return -EMSGSIZE;
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	return 0;
}
