/*
 * saltun(8): the command line.  As in wireguard-tools' wg.c, this file is
 * only a table of subcommands; each one parses its own options and calls
 * into the library.  Adding a command (status, reload) is one function and
 * one row in `commands`.
 *
 * Exit status, for every command: 0 success, 1 any failure, including
 * usage errors (documented in saltun(8)).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "conf.h"
#include "control.h"
#include "daemon.h"
#include "key.h"

#ifndef SALTUN_SYSCONFDIR
#define SALTUN_SYSCONFDIR "/etc"
#endif
#define MAIN_DEFAULT_CONFIG SALTUN_SYSCONFDIR "/saltun/saltun.conf"
#define MAIN_TIME_SCALE_MAX 1000000

struct command {
	const char *name;
	/* argv[0] is the command name; returns the exit status. */
	int (*run)(const struct command *cmd, int argc, char **argv);
	const char *args;    /* synopsis after the command name */
	const char *summary; /* one line for `saltun help` */
	const char *options; /* the option list for `saltun help COMMAND`, or NULL */
	const char *notes;   /* printed after the options, or NULL */
};

static int cmd_genkey(const struct command *cmd, int argc, char **argv);
static int cmd_pubkey(const struct command *cmd, int argc, char **argv);
static int cmd_genpsk(const struct command *cmd, int argc, char **argv);
static int cmd_check(const struct command *cmd, int argc, char **argv);
static int cmd_run(const struct command *cmd, int argc, char **argv);
static int cmd_status(const struct command *cmd, int argc, char **argv);
static int cmd_reload(const struct command *cmd, int argc, char **argv);
static int cmd_help(const struct command *cmd, int argc, char **argv);

static const struct command commands[] = {
	{ "run", cmd_run, "[-c FILE] [-v]... [-d] [--test-time-scale N]",
	  "Run the daemon for every session of a configuration",
	  "  -c, --config FILE        configuration (default " MAIN_DEFAULT_CONFIG ")\n"
	  "  -v, --verbose            more log output; repeat for more (-v: debug)\n"
	  "  -d, --detach             fork to the background and log to syslog\n"
	  "      --test-time-scale N  for tests only: divide every protocol timer by N\n",
	  "Started as root it runs as two processes: the network one as the config's\n"
	  "`user` without capabilities, the root one for devices and hooks (saltun(8)).\n"
	  "\nEnvironment:\n"
	  "  SALTUN_OFFLOAD=off       the plain data path: no tun offloads, no UDP GSO/GRO\n" },
	{ "check", cmd_check, "[-c FILE] [-q]",
	  "Validate a configuration and print its session table",
	  "  -c, --config FILE        configuration (default " MAIN_DEFAULT_CONFIG ")\n"
	  "  -q, --quiet              print only problems, not the table\n", NULL },
	{ "status", cmd_status, "[-c FILE | -s SOCKET] [--json] [SESSION]",
	  "Show the sessions of the running daemon: state, endpoint, traffic, errors",
	  "  -c, --config FILE        read the control socket path from FILE\n"
	  "                           (default " MAIN_DEFAULT_CONFIG ")\n"
	  "  -s, --socket SOCKET      the control socket itself\n"
	  "                           (default as the config says, else " CONTROL_DEFAULT_PATH ")\n"
	  "  -j, --json               one JSON document (schema in saltun(8))\n", NULL },
	{ "reload", cmd_reload, "[-c FILE | -s SOCKET]",
	  "Make the running daemon re-read its configuration (as SIGHUP does)",
	  "  -c, --config FILE        read the control socket path from FILE\n"
	  "                           (default " MAIN_DEFAULT_CONFIG ")\n"
	  "  -s, --socket SOCKET      the control socket itself\n"
	  "                           (default as the config says, else " CONTROL_DEFAULT_PATH ")\n", NULL },
	{ "genkey", cmd_genkey, "", "Print a new private key (base64)", NULL, NULL },
	{ "pubkey", cmd_pubkey, "", "Read a private key on stdin, print its public key", NULL, NULL },
	{ "genpsk", cmd_genpsk, "", "Print a new preshared key (base64)", NULL, NULL },
	{ "help", cmd_help, "[COMMAND]", "Show this help, or the help of COMMAND", NULL, NULL },
};

static const struct command *command_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void usage_print(FILE *out)
{
	fprintf(out, "Usage: saltun COMMAND [OPTIONS]\n"
		     "       saltun --help | --version\n\n"
		     "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'saltun help COMMAND' for the options of a command; see saltun(8).\n");
}

static void command_usage_print(const struct command *cmd, FILE *out)
{
	fprintf(out, "Usage: saltun %s%s%s\n%s.\n", cmd->name, cmd->args[0] ? " " : "",
		cmd->args, cmd->summary);
	fprintf(out, "\nOptions:\n%s", cmd->options ? cmd->options : "");
	fprintf(out, "  -h, --help               show this help\n");
	if (cmd->notes != NULL)
		fprintf(out, "\n%s", cmd->notes);
}

static int usage_fail(const struct command *cmd, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int usage_fail(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "saltun %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'saltun help %s'.\n", cmd->name);
	return 1;
}

/*
 * getopt_long over a command's own argv (argv[0] is the command name).
 * Errors are printed here, not by getopt, so that they name the command.
 * Returns the option, -1 at the end, or '?' after printing an error.
 */
static int command_getopt(const struct command *cmd, int argc, char **argv,
			  const char *shortopts, const struct option *longopts)
{
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);

	if (c == '?') {
		/* optopt is the letter of a bad short option; 0 for a bad long
		 * one, which getopt has always stepped over. */
		if (optopt)
			usage_fail(cmd, "unknown option '-%c'", optopt);
		else
			usage_fail(cmd, "unknown option '%s'", argv[optind - 1]);
	} else if (c == ':') {
		usage_fail(cmd, "option '%s' needs an argument", argv[optind - 1]);
		c = '?';
	}
	return c;
}

/* Commands without options still take -h/--help and refuse arguments. */
static int command_no_options(const struct command *cmd, int argc, char **argv, bool *help)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*help = false;
	optind = 0;
	while ((c = command_getopt(cmd, argc, argv, "+:h", longopts)) != -1) {
		if (c != 'h')
			return 1;
		*help = true;
	}
	if (optind < argc)
		return usage_fail(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* ------------------------------------------------------------ keys */

static int key_print(const uint8_t key[KEY_LEN])
{
	char b64[KEY_B64_LEN + 1];
	int ret = 0;

	key_to_base64(b64, key);
	if (printf("%s\n", b64) < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "saltun: cannot write to stdout: %s\n", strerror(errno));
		ret = 1;
	}
	sodium_memzero(b64, sizeof(b64));
	return ret;
}

static int cmd_genkey(const struct command *cmd, int argc, char **argv)
{
	uint8_t key[KEY_LEN];
	struct stat st;
	bool help;
	int ret;

	if ((ret = command_no_options(cmd, argc, argv, &help)) != 0 || help) {
		if (help)
			command_usage_print(cmd, stdout);
		return ret;
	}
	/* As wg genkey: a private key about to land in a file others can
	 * read is worth a warning (the key is still written). */
	if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		fprintf(stderr,
			"saltun genkey: warning: the output file is readable by group or others; "
			"use: (umask 077; saltun genkey > FILE)\n");
	key_generate_private(key);
	ret = key_print(key);
	sodium_memzero(key, sizeof(key));
	return ret;
}

static int cmd_genpsk(const struct command *cmd, int argc, char **argv)
{
	uint8_t key[KEY_LEN];
	bool help;
	int ret;

	if ((ret = command_no_options(cmd, argc, argv, &help)) != 0 || help) {
		if (help)
			command_usage_print(cmd, stdout);
		return ret;
	}
	key_generate_psk(key);
	ret = key_print(key);
	sodium_memzero(key, sizeof(key));
	return ret;
}

static int cmd_pubkey(const struct command *cmd, int argc, char **argv)
{
	/* Room for a key, its newline and some stray whitespace; more input
	 * than this is not a key. */
	char buf[KEY_B64_LEN * 4];
	uint8_t priv[KEY_LEN], pub[KEY_LEN];
	size_t len;
	bool help;
	int ret;

	if ((ret = command_no_options(cmd, argc, argv, &help)) != 0 || help) {
		if (help)
			command_usage_print(cmd, stdout);
		return ret;
	}
	len = fread(buf, 1, sizeof(buf) - 1, stdin);
	buf[len] = '\0';
	ret = 1;
	if (ferror(stdin)) {
		fprintf(stderr, "saltun pubkey: cannot read stdin: %s\n", strerror(errno));
		goto out;
	}
	if (len == sizeof(buf) - 1 || strlen(buf) != len || !key_from_base64(priv, buf)) {
		fprintf(stderr, "saltun pubkey: stdin is not a private key: expected 32-byte "
				"base64 key (%d characters), as saltun genkey prints\n",
			KEY_B64_LEN);
		goto out;
	}
	if (key_public_from_private(pub, priv) != 0) {
		fprintf(stderr, "saltun pubkey: this private key has no usable public key\n");
		goto out;
	}
	ret = key_print(pub);
out:
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(priv, sizeof(priv));
	return ret;
}

/* ----------------------------------------------------- check and run */

static int cmd_check(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = MAIN_DEFAULT_CONFIG;
	bool quiet = false;
	struct conf conf;
	unsigned errors;
	int c;

	optind = 0;
	while ((c = command_getopt(cmd, argc, argv, "+:c:qh", longopts)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'q': quiet = true; break;
		case 'h': command_usage_print(cmd, stdout); return 0;
		default: return 1;
		}
	}
	if (optind < argc)
		return usage_fail(cmd, "unexpected argument '%s'", argv[optind]);

	errors = conf_load(&conf, path, stderr);
	if (errors) {
		fprintf(stderr, "%s: %u error%s\n", path, errors, errors == 1 ? "" : "s");
		return 1;
	}
	if (!quiet) {
		conf_print(&conf, stdout);
		printf("\nconfiguration OK\n");
	}
	conf_free(&conf);
	return 0;
}

static int cmd_run(const struct command *cmd, int argc, char **argv)
{
	enum { OPT_TIME_SCALE = 256 };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "detach", no_argument, NULL, 'd' },
		{ "test-time-scale", required_argument, NULL, OPT_TIME_SCALE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_options o = {
		.config_path = MAIN_DEFAULT_CONFIG,
		.verbosity = 0,
		.detach = false,
		.time_scale = 1,
	};
	unsigned long scale;
	char *end;
	int c;

	optind = 0;
	while ((c = command_getopt(cmd, argc, argv, "+:c:vdh", longopts)) != -1) {
		switch (c) {
		case 'c': o.config_path = optarg; break;
		case 'v': o.verbosity++; break;
		case 'd': o.detach = true; break;
		case OPT_TIME_SCALE:
			errno = 0;
			scale = strtoul(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno != 0 ||
			    scale < 1 || scale > MAIN_TIME_SCALE_MAX)
				return usage_fail(cmd, "bad --test-time-scale '%s': expected 1-1000000",
						  optarg);
			o.time_scale = (unsigned)scale;
			break;
		case 'h': command_usage_print(cmd, stdout); return 0;
		default: return 1;
		}
	}
	if (optind < argc)
		return usage_fail(cmd, "unexpected argument '%s'", argv[optind]);
	return daemon_run(&o);
}

/* ------------------------------------------------------------ status */

static bool status_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONF_NAME_MAX)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/*
 * A client of the control socket (protocol in saltun(8)): the path from -s,
 * else from the config's `control` (read without the keys, so group
 * members who may not read the private key can still ask), else the
 * default.  Sends `request`; the answer goes to stdout, or to stderr with
 * exit status 1 when it is a refusal ("error: ...").
 */
static int control_ask(const struct command *cmd, const char *config, const char *sock,
		       const char *request)
{
	char path[sizeof(((struct conf_global *)0)->control)];
	char *answer = NULL;
	size_t len;
	FILE *f;
	int rc;

	if (sock != NULL) {
		if (strlen(sock) >= sizeof(path))
			return usage_fail(cmd, "socket path longer than %zu characters", sizeof(path) - 1);
		snprintf(path, sizeof(path), "%s", sock);
	} else {
		snprintf(path, sizeof(path), "%s", CONTROL_DEFAULT_PATH);
		f = fopen(config != NULL ? config : MAIN_DEFAULT_CONFIG, "re");
		if (f == NULL && config != NULL) {
			fprintf(stderr, "saltun %s: cannot read %s: %s\n", cmd->name, config, strerror(errno));
			return 1;
		}
		/* Without -c, a missing or unreadable default config means the
		 * default socket. */
		if (f != NULL) {
			(void)control_path_from_conf(path, sizeof(path), f);
			fclose(f);
		}
	}

	rc = control_query(&answer, &len, path, request);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		fprintf(stderr, "saltun %s: cannot connect to %s: %s \u2014 is saltun running?\n",
			cmd->name, path, strerror(-rc));
		return 1;
	}
	if (rc == -EACCES || rc == -EPERM) {
		fprintf(stderr, "saltun %s: cannot connect to %s: %s \u2014 only root and group "
				"%s may ask\n", cmd->name, path, strerror(-rc), CONTROL_GROUP);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "saltun %s: %s: %s\n", cmd->name, path, strerror(-rc));
		return 1;
	}
	if (strncmp(answer, "error:", 6) == 0) {
		fprintf(stderr, "saltun %s: %s", cmd->name, answer);
		free(answer);
		return 1;
	}
	rc = 0;
	if (fwrite(answer, 1, len, stdout) != len || fflush(stdout) != 0) {
		fprintf(stderr, "saltun %s: cannot write to stdout: %s\n", cmd->name, strerror(errno));
		rc = 1;
	}
	free(answer);
	return rc;
}

static int cmd_status(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *sock = NULL, *session = NULL;
	char request[64];
	bool json = false;
	int c;

	optind = 0;
	while ((c = command_getopt(cmd, argc, argv, "+:c:s:jh", longopts)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's': sock = optarg; break;
		case 'j': json = true; break;
		case 'h': command_usage_print(cmd, stdout); return 0;
		default: return 1;
		}
	}
	if (config != NULL && sock != NULL)
		return usage_fail(cmd, "give either -c or -s, not both");
	if (argc - optind > 1)
		return usage_fail(cmd, "unexpected argument '%s'", argv[optind + 1]);
	if (optind < argc) {
		session = argv[optind];
		if (!status_name_valid(session))
			return usage_fail(cmd, "bad session name '%s': expected 1-%d of [A-Za-z0-9_.-]",
					  session, CONF_NAME_MAX);
	}

	snprintf(request, sizeof(request), "status%s%s%s", json ? " json" : "",
		 session != NULL ? " " : "", session != NULL ? session : "");
	return control_ask(cmd, config, sock, request);
}

/* Re-reading happens in the daemon, with the rules of `saltun check`: a
 * refusal comes back as the answer (its first line "error: ..."). */
static int cmd_reload(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *sock = NULL;
	int c;

	optind = 0;
	while ((c = command_getopt(cmd, argc, argv, "+:c:s:h", longopts)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's': sock = optarg; break;
		case 'h': command_usage_print(cmd, stdout); return 0;
		default: return 1;
		}
	}
	if (config != NULL && sock != NULL)
		return usage_fail(cmd, "give either -c or -s, not both");
	if (optind < argc)
		return usage_fail(cmd, "unexpected argument '%s'", argv[optind]);
	return control_ask(cmd, config, sock, "reload");
}

static int cmd_help(const struct command *cmd, int argc, char **argv)
{
	const struct command *which;
	bool help;
	int ret;

	/* "saltun help run" gives the help of run; extra words are refused. */
	if (argc > 1 && argv[1][0] != '-') {
		if (argc > 2)
			return usage_fail(cmd, "unexpected argument '%s'", argv[2]);
		which = command_find(argv[1]);
		if (!which)
			return usage_fail(cmd, "unknown command '%s'", argv[1]);
		command_usage_print(which, stdout);
		return 0;
	}
	if ((ret = command_no_options(cmd, argc, argv, &help)) != 0)
		return ret;
	if (help)
		command_usage_print(cmd, stdout);
	else
		usage_print(stdout);
	return 0;
}

static void version_print(void)
{
	if (SALTUN_GIT_REVISION[0])
		printf("saltun %s (git %s)\n", PACKAGE_VERSION, SALTUN_GIT_REVISION);
	else
		printf("saltun %s\n", PACKAGE_VERSION);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd;
	int c;

	if (sodium_init() < 0) {
		fprintf(stderr, "saltun: cannot initialise libsodium\n");
		return 1;
	}

	/* Options before the command: "+" stops at the command name. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': usage_print(stdout); return 0;
		case 'V': version_print(); return 0;
		default:
			fprintf(stderr, "saltun: unknown option '%s'\n\n", argv[optind - 1]);
			usage_print(stderr);
			return 1;
		}
	}
	if (optind >= argc) {
		usage_print(stderr);
		return 1;
	}
	cmd = command_find(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "saltun: unknown command '%s'\n\n", argv[optind]);
		usage_print(stderr);
		return 1;
	}
	return cmd->run(cmd, argc - optind, argv + optind);
}
