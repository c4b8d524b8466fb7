/* Small portable helpers shared by every module. */
#ifndef SALTUN_COMPAT_H
#define SALTUN_COMPAT_H

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Find the owning struct from a pointer to an embedded member (libuv
 * handles are embedded in their owner and found again this way). */
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define MUST_CHECK __attribute__((warn_unused_result))
#define NORETURN __attribute__((noreturn))

#endif
