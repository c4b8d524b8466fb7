/*
 * Logging: five verbs, as in OpenBSD daemons.  One sink per process (the
 * only global state saltun has).  Lines go to stderr until the daemon
 * detaches or `log = syslog` is configured.
 *
 *   log_warn   warning plus strerror(errno)
 *   log_warnx  warning, no errno
 *   log_info   notable event
 *   log_debug  only with -v / log_level = debug
 *   fatal      log and exit(1)
 */
#ifndef SALTUN_LOG_H
#define SALTUN_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include "compat.h"

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum log_sink { LOG_SINK_STDERR = 0, LOG_SINK_SYSLOG };

void log_init(const char *ident, enum log_sink sink, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; false on anything else. */
bool log_level_parse(const char *s, enum log_level *out);

void log_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);
NORETURN void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2);
NORETURN void fatalx(const char *fmt, ...) PRINTF_LIKE(1, 2);

/*
 * Rate limit for lines a remote party can trigger: at most `burst` lines
 * per `interval_ms`; the number suppressed is reported with the next line
 * that passes.  Embed one per (session, reason).
 */
struct ratelimit {
	uint64_t window_start_ms;
	uint32_t interval_ms;
	uint32_t burst;
	uint32_t printed;
	uint32_t suppressed;
};
#define RATELIMIT_INIT { 0, 5000, 5, 0, 0 }
/* True when a line may be printed now; *suppressed gets the count dropped
 * since the last line that passed (and is reset). */
bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ms, uint32_t *suppressed);

#endif
