/*
 * The daemon: owns the libuv loop, the sockets, every session, signals and
 * the order of startup and shutdown.
 */
#ifndef SALTUN_DAEMON_H
#define SALTUN_DAEMON_H

#include <stdbool.h>

struct daemon_options {
	const char *config_path;
	int verbosity;          /* count of -v: 1 = debug */
	bool detach;            /* -d: fork to the background, log to syslog */
	unsigned time_scale;    /* tests only: all protocol timers divided by this (1 = real) */
};

/* Load the config, bring every session up and serve until SIGINT/SIGTERM.
 * Returns the process exit status (0 clean stop, 1 error). */
int daemon_run(const struct daemon_options *o);

#endif
