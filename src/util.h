/* Small utilities with no better home: clocks, address formatting. */
#ifndef SALTUN_UTIL_H
#define SALTUN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Monotonic clock in milliseconds / nanoseconds (CLOCK_MONOTONIC). */
uint64_t util_now_ms(void);
uint64_t util_now_ns(void);

/* "192.0.2.1:5555" or "[2001:db8::1]:5555"; always NUL-terminated. */
#define UTIL_ADDRSTRLEN 64
const char *util_sockaddr_str(const struct sockaddr *sa, char *buf, size_t len);
/* Address and port split apart, for hook substitutions. */
bool util_sockaddr_split(const struct sockaddr *sa, char *addr, size_t addrlen, uint16_t *port);
/* Same address and port (and family). */
bool util_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b);
socklen_t util_sockaddr_len(const struct sockaddr *sa);

#endif
