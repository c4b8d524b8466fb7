#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

/* The log sink is the one process global (STYLE: no globals beyond it). */
static struct {
	enum log_sink sink;
	enum log_level level;
} log_state = { LOG_SINK_STDERR, LOG_LEVEL_INFO };

void log_init(const char *ident, enum log_sink sink, enum log_level level)
{
	if (log_state.sink == LOG_SINK_SYSLOG && sink != LOG_SINK_SYSLOG)
		closelog();
	log_state.sink = sink;
	log_state.level = level;
	if (sink == LOG_SINK_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level) { log_state.level = level; }
enum log_level log_get_level(void) { return log_state.level; }

bool log_level_parse(const char *s, enum log_level *out)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

static void log_vwrite(enum log_level level, int err, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	int n;

	if (level > log_state.level)
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (err != 0 && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(err));

	if (log_state.sink == LOG_SINK_SYSLOG) {
		syslog(prio[level], "%s", line);
	} else {
		/* One write per line so lines of several processes do not mix. */
		fprintf(stderr, "saltun: %s\n", line);
		fflush(stderr);
	}
}

#define LOG_BODY(level, err)                         \
	do {                                         \
		va_list ap;                          \
		va_start(ap, fmt);                   \
		log_vwrite((level), (err), fmt, ap); \
		va_end(ap);                          \
	} while (0)

void log_warn(const char *fmt, ...)
{
	int err = errno;
	LOG_BODY(LOG_LEVEL_WARN, err);
	errno = err;
}
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_LEVEL_WARN, 0); }
void log_info(const char *fmt, ...) { LOG_BODY(LOG_LEVEL_INFO, 0); }
void log_debug(const char *fmt, ...) { LOG_BODY(LOG_LEVEL_DEBUG, 0); }

void fatal(const char *fmt, ...)
{
	int err = errno;
	LOG_BODY(LOG_LEVEL_ERROR, err);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, 0);
	exit(1);
}

bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ms, uint32_t *suppressed)
{
	*suppressed = 0;
	if (now_ms - rl->window_start_ms >= rl->interval_ms || rl->window_start_ms == 0) {
		rl->window_start_ms = now_ms ? now_ms : 1;
		rl->printed = 0;
	}
	if (rl->printed >= rl->burst) {
		rl->suppressed++;
		return false;
	}
	rl->printed++;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}
