/*
 * fake_operator.c - a small, statically linked stand-in for the real
 * `cilium-operator-generic` binary (a Go/cobra program), used by the test
 * suite inside locally built `FROM scratch` images.
 *
 * It imitates what the certification checks look at:
 *   --help / -h / `help`  cobra help on stdout, exit 0
 *   --version             one "Cilium-Operator ..." line on stdout, exit 0
 *   no such flag          daemon start: logrus lines, gops pid file,
 *                         cluster-pool CIDR validation, then runs until
 *                         SIGTERM/SIGINT and exits 0
 *
 * Misbehaving variants are selected at compile time (see build.py):
 *   -DFAKE_VERSION='"1.17.5"'            version string (default "1.18.3")
 *   -DFAKE_HANG_ON_HELP                  --help prints nothing, ignores
 *                                        SIGTERM/SIGINT and never exits
 *   -DFAKE_HELP_EXIT_1                   --help prints help, then exits 1
 *   -DFAKE_MISSING_FLAG='"--k8s-namespace"'  help omits that flag's line
 *   -DFAKE_HELP_TO_STDERR                help goes to stderr, stdout empty
 *   -DFAKE_CRASH_ON_START                daemon dies right after "Starting"
 *
 * Build: gcc -static -O2 -Wall -Wextra -o cilium-operator-generic fake_operator.c
 * Only plain libc is used (no NSS lookups), so -static is safe.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef FAKE_VERSION
#define FAKE_VERSION "1.18.3"
#endif
/* Build metadata as printed by the real v1.17.5 operator. */
#define FAKE_COMMIT "69aab28cf1"
#define FAKE_BUILD_DATE "2025-06-12T11:29:27+00:00"
#define FAKE_GO_VERSION "go1.24.6"
/* The real binary's default IPAM mode only exists in the "generic" flavour. */
#define GENERIC_NAME "cilium-operator-generic"

/* basename(argv[0]), like cobra's `binaryName = filepath.Base(os.Args[0])`. */
static const char *binary_name = GENERIC_NAME;
/* Path of the gops pid file once written, removed again on shutdown. */
static char gops_pidfile[PATH_MAX + 32];
static volatile sig_atomic_t stop_signal;

/* ------------------------------------------------------------------ */
/* Logging: logrus TextFormatter style "time=... level=... msg=..."    */
/* ------------------------------------------------------------------ */

struct sbuf {
    char data[8192];
    size_t len;
};

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (sb->len >= sizeof(sb->data) - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(sb->data + sb->len, sizeof(sb->data) - sb->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb->len += (size_t)n;
    if (sb->len >= sizeof(sb->data))
        sb->len = sizeof(sb->data) - 1;
}

/* logrus quotes a value unless it only has [A-Za-z0-9-._/@^+]. */
static int needs_quoting(const char *s)
{
    if (*s == '\0')
        return 1;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && !strchr("-._/@^+", *s))
            return 1;
    }
    return 0;
}

static void sb_quoted(struct sbuf *sb, const char *s)
{
    sb_printf(sb, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(sb, "\\%c", *s);
        else if (*s == '\n')
            sb_printf(sb, "\\n");
        else
            sb_printf(sb, "%c", *s);
    }
    sb_printf(sb, "\"");
}

/*
 * Print one log line: log_kv(stream, level, msg, key, value, ..., NULL).
 * msg is always quoted (as in the observed output), other values only when
 * logrus would quote them. The line is written in one go and flushed so that
 * `docker logs` sees it immediately.
 */
static void log_kv(FILE *out, const char *level, const char *msg, ...)
    __attribute__((sentinel));

static void log_kv(FILE *out, const char *level, const char *msg, ...)
{
    struct sbuf sb;
    char ts[64];
    time_t now = time(NULL);
    struct tm tm;
    va_list ap;
    const char *key;

    sb.len = 0;
    sb.data[0] = '\0';
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    sb_printf(&sb, "time=\"%s\" level=%s msg=", ts, level);
    sb_quoted(&sb, msg);
    va_start(ap, msg);
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);
        if (val == NULL)
            val = "";
        sb_printf(&sb, " %s=", key);
        if (needs_quoting(val))
            sb_quoted(&sb, val);
        else
            sb_printf(&sb, "%s", val);
    }
    va_end(ap);
    sb_printf(&sb, "\n");
    fputs(sb.data, out);
    fflush(out);
}

/* Operator's own logger: stderr, subsys=<binary name>. */
#define LOG(level, msg, ...) \
    log_kv(stderr, level, msg, ##__VA_ARGS__, "subsys", binary_name, (char *)NULL)
/* Hive lifecycle logger: stdout, subsys=hive. */
#define HIVE(level, msg, ...) \
    log_kv(stdout, level, msg, ##__VA_ARGS__, "subsys", "hive", (char *)NULL)

static void remove_gops_pidfile(void)
{
    if (gops_pidfile[0] != '\0') {
        unlink(gops_pidfile);
        gops_pidfile[0] = '\0';
    }
}

/* logrus Fatal: log at level=fatal and exit 1 (after running stop hooks). */
static void fatal_exit(void)
{
    remove_gops_pidfile();
    fflush(stdout);
    fflush(stderr);
    exit(1);
}

/* Go error strings are lower-case ("permission denied"); glibc's are not. */
static const char *errno_text(int err, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", strerror(err));
    if (buf[0] != '\0')
        buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

/* ------------------------------------------------------------------ */
/* Options: one table drives the help text and the option resolution   */
/* ------------------------------------------------------------------ */

enum otype { T_BOOL, T_STRING, T_STRINGS, T_INT, T_UINT16, T_UINT32, T_DURATION, T_MAP };

/* pflag's type names as shown in the help ("" for bool flags). */
static const char *const type_names[] = {
    [T_BOOL] = "", [T_STRING] = "string", [T_STRINGS] = "strings", [T_INT] = "int",
    [T_UINT16] = "uint16", [T_UINT32] = "uint32", [T_DURATION] = "duration", [T_MAP] = "map",
};

struct opt {
    const char *name;
    char shorthand;      /* 0 if none */
    enum otype type;
    const char *def;     /* default; NULL = zero value (not shown in help) */
    const char *usage;   /* NULL only for "help" (built from binary name) */
    const char *value;   /* resolved value */
    const char *source;  /* where value came from: default/config-dir/env/flag */
    const char *cli;     /* value given on the command line, if any */
};

/* Sorted by name, as pflag prints them. */
static struct opt opts[] = {
    {"cluster-id", 0, T_UINT32, NULL, "Unique identifier of the cluster", 0, 0, 0},
    {"cluster-name", 0, T_STRING, "default", "Name of the cluster", 0, 0, 0},
    {"cluster-pool-ipv4-cidr", 0, T_STRINGS, NULL,
     "IPv4 CIDR Range for Pods in cluster. Requires 'ipam=cluster-pool' and 'enable-ipv4=true'", 0, 0, 0},
    {"cluster-pool-ipv4-mask-size", 0, T_INT, "24",
     "Mask size for each IPv4 podCIDR per node. Requires 'ipam=cluster-pool' and 'enable-ipv4=true'", 0, 0, 0},
    {"cluster-pool-ipv6-cidr", 0, T_STRINGS, NULL,
     "IPv6 CIDR Range for Pods in cluster. Requires 'ipam=cluster-pool' and 'enable-ipv6=true'", 0, 0, 0},
    {"cluster-pool-ipv6-mask-size", 0, T_INT, "112",
     "Mask size for each IPv6 podCIDR per node. Requires 'ipam=cluster-pool' and 'enable-ipv6=true'", 0, 0, 0},
    {"config-dir", 0, T_STRING, NULL, "Directory that contains a file for each option", 0, 0, 0},
    {"debug", 'D', T_BOOL, NULL, "Enable debugging mode", 0, 0, 0},
    {"enable-gops", 0, T_BOOL, "true", "Enable gops server", 0, 0, 0},
    {"enable-ipv4", 0, T_BOOL, "true", "Enable IPv4 support", 0, 0, 0},
    {"enable-ipv6", 0, T_BOOL, "true", "Enable IPv6 support", 0, 0, 0},
    {"enable-k8s", 0, T_BOOL, "true",
     "Enable operation of Kubernetes-related services/controllers when using Cilium with Kubernetes", 0, 0, 0},
    {"enable-metrics", 0, T_BOOL, NULL, "Enable Prometheus metrics", 0, 0, 0},
    {"gops-port", 0, T_UINT16, "9891", "Port for gops server to listen on", 0, 0, 0},
    {"help", 'h', T_BOOL, NULL, NULL, 0, 0, 0},
    {"identity-allocation-mode", 0, T_STRING, "kvstore", "Method to use for identity allocation", 0, 0, 0},
    {"ipam", 0, T_STRING, NULL /* set in main() */, "Backend to use for IPAM", 0, 0, 0},
    {"k8s-api-server", 0, T_STRING, NULL, "Kubernetes API server URL", 0, 0, 0},
    {"k8s-kubeconfig-path", 0, T_STRING, NULL, "Absolute path of the kubernetes kubeconfig file", 0, 0, 0},
    {"k8s-namespace", 0, T_STRING, NULL,
     "Name of the Kubernetes namespace in which Cilium Operator is deployed in", 0, 0, 0},
    {"kvstore", 0, T_STRING, NULL, "Key-value store type", 0, 0, 0},
    {"kvstore-opt", 0, T_MAP, NULL, "Key-value store options e.g. etcd.address=127.0.0.1:4001", 0, 0, 0},
    {"leader-election-lease-duration", 0, T_DURATION, "15s",
     "Duration that non-leader operator candidates will wait before forcing to acquire leadership", 0, 0, 0},
    {"leader-election-renew-deadline", 0, T_DURATION, "10s",
     "Duration that current acting master will retry refreshing leadership in before giving up the lock", 0, 0, 0},
    {"leader-election-retry-period", 0, T_DURATION, "2s",
     "Duration that LeaderElector clients should wait between retries of the actions", 0, 0, 0},
    {"log-driver", 0, T_STRINGS, NULL, "Logging endpoints to use for example syslog", 0, 0, 0},
    {"log-opt", 0, T_MAP, NULL,
     "Log driver options for cilium-operator, configmap example for syslog driver: "
     "{\"syslog.level\":\"info\",\"syslog.facility\":\"local4\"}", 0, 0, 0},
    {"operator-api-serve-addr", 0, T_STRING, "localhost:9234", "Address to serve API requests", 0, 0, 0},
    {"operator-pprof", 0, T_BOOL, NULL, "Enable serving the pprof debugging API", 0, 0, 0},
    {"operator-pprof-port", 0, T_UINT16, "6061", "Port that the pprof listens on", 0, 0, 0},
    {"operator-prometheus-serve-addr", 0, T_STRING, ":9963", "Address to serve Prometheus metrics", 0, 0, 0},
    {"version", 0, T_BOOL, NULL, "Print version information", 0, 0, 0},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static struct opt *find_opt_n(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

static struct opt *find_opt(const char *name)
{
    return find_opt_n(name, strlen(name));
}

static struct opt *find_short(char c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].shorthand == c)
            return &opts[i];
    }
    return NULL;
}

/* strconv.ParseBool: returns 1 on success and stores the result in *out. */
static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

static int opt_bool(const char *name)
{
    const struct opt *o = find_opt(name);
    int b = 0;

    if (o != NULL && o->value != NULL)
        parse_bool(o->value, &b);
    return b;
}

static const char *opt_str(const char *name)
{
    const struct opt *o = find_opt(name);

    return (o != NULL && o->value != NULL) ? o->value : "";
}

/* Set an option's value; invalid booleans are reported and ignored. */
static void set_opt(struct opt *o, const char *value, const char *source)
{
    int b;

    if (o->type == T_BOOL && !parse_bool(value, &b)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "Ignoring invalid boolean value for option %s", o->name);
        LOG("warning", msg, "value", value, "source", source);
        return;
    }
    o->value = value;
    o->source = source;
}

/* ------------------------------------------------------------------ */
/* Help and version (cobra root command)                               */
/* ------------------------------------------------------------------ */

static int flag_hidden_in_help(const struct opt *o)
{
#ifdef FAKE_MISSING_FLAG
    /* Broken build: pretend this flag was never registered in the help. */
    const char *missing = FAKE_MISSING_FLAG;

    while (*missing == '-')
        missing++;
    return strcmp(o->name, missing) == 0;
#else
    (void)o;
    return 0;
#endif
}

/* The left column of a pflag usage line: "  -D, --debug" / "      --ipam string". */
static void flag_column(const struct opt *o, char *buf, size_t cap)
{
    const char *tn = type_names[o->type];

    if (o->shorthand)
        snprintf(buf, cap, "  -%c, --%s%s%s", o->shorthand, o->name, *tn ? " " : "", tn);
    else
        snprintf(buf, cap, "      --%s%s%s", o->name, *tn ? " " : "", tn);
}

/* cobra's default help template for a root command with sub-commands. */
static void print_help(FILE *out)
{
    const char *b = binary_name;
    char col[256];
    size_t width = 0;

    fprintf(out, "Run %s\n\n", b);
    fprintf(out, "Usage:\n  %s [flags]\n  %s [command]\n\n", b, b);
    fprintf(out,
            "Available Commands:\n"
            "  completion  Generate the autocompletion script for the specified shell\n"
            "  help        Help about any command\n"
            "  hive        Inspect the hive\n"
            "  metrics     Access metric status of the operator\n"
            "  status      Display status of operator\n"
            "  troubleshoot Run troubleshooting utilities to check control-plane connectivity\n"
            "\n"
            "Flags:\n");

    /* pflag pads the flag column to the widest entry plus three spaces. */
    for (size_t i = 0; i < NOPTS; i++) {
        if (flag_hidden_in_help(&opts[i]))
            continue;
        flag_column(&opts[i], col, sizeof(col));
        if (strlen(col) > width)
            width = strlen(col);
    }
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];

        if (flag_hidden_in_help(o))
            continue;
        flag_column(o, col, sizeof(col));
        fprintf(out, "%-*s   ", (int)width, col);
        if (o->usage != NULL)
            fputs(o->usage, out);
        else
            fprintf(out, "help for %s", b);
        /* Non-zero defaults are appended; strings are shown quoted (%q). */
        if (o->def != NULL && strcmp(o->def, "false") != 0) {
            if (o->type == T_STRING)
                fprintf(out, " (default \"%s\")", o->def);
            else
                fprintf(out, " (default %s)", o->def);
        }
        fputc('\n', out);
    }
    fprintf(out, "\nUse \"%s [command] --help\" for more information about a command.\n", b);
    fflush(out);
}

static void do_help(void)
{
#ifdef FAKE_HANG_ON_HELP
    /* Broken build: hang silently; only SIGKILL can stop it. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    for (;;)
        pause();
#endif
#ifdef FAKE_HELP_TO_STDERR
    print_help(stderr);
#else
    print_help(stdout);
#endif
#ifdef FAKE_HELP_EXIT_1
    exit(1);
#endif
    exit(0);
}

/* GOOS/GOARCH as Go reports them. */
static const char *goarch(void)
{
#if defined(__x86_64__)
    return "amd64";
#elif defined(__aarch64__)
    return "arm64";
#else
    static struct utsname u;

    if (uname(&u) != 0)
        return "unknown";
    if (strcmp(u.machine, "x86_64") == 0)
        return "amd64";
    if (strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    return u.machine;
#endif
}

static void version_string(char *buf, size_t cap, const char *product)
{
    snprintf(buf, cap, "%s %s %s %s go version %s linux/%s", product, FAKE_VERSION,
             FAKE_COMMIT, FAKE_BUILD_DATE, FAKE_GO_VERSION, goarch());
}

/* ------------------------------------------------------------------ */
/* Option sources: command line, --config-dir, CILIUM_* environment    */
/* ------------------------------------------------------------------ */

/*
 * pflag-like parsing: "--opt=value", "--opt value", bare "--bool-flag",
 * "-D"/"-h" shorthands, "--" ends the flags. Unknown options are accepted
 * with a warning (the real cobra would reject them). Returns 1 when the
 * `help` sub-command was given.
 */
static int parse_args(int argc, char **argv)
{
    int help_cmd = 0, positional = 0, dashdash = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = 1;
        } else if (!dashdash && a[0] == '-' && a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            struct opt *o = find_opt_n(name, len);

            if (o == NULL) {
                LOG("warning", "Ignoring unknown command-line option", "option", a);
                /* Swallow a separate value ("--foo bar") if it looks like one. */
                if (!eq && i + 1 < argc && argv[i + 1][0] != '-')
                    i++;
                continue;
            }
            if (eq)
                o->cli = eq + 1;
            else if (o->type == T_BOOL)
                o->cli = "true";
            else if (i + 1 < argc)
                o->cli = argv[++i]; /* pflag takes the next word, whatever it is */
            else {
                fprintf(stderr, "Error: flag needs an argument: --%s\n", o->name);
                exit(1);
            }
        } else if (!dashdash && a[0] == '-' && a[1] != '\0') {
            for (const char *c = a + 1; *c; c++) {
                struct opt *o = find_short(*c);

                if (o == NULL) {
                    char sh[3] = {'-', *c, '\0'};
                    LOG("warning", "Ignoring unknown command-line option", "option", sh);
                    continue;
                }
                o->cli = "true"; /* only bool flags have shorthands */
            }
        } else {
            /* cobra's built-in `help` command prints the root help. */
            if (positional == 0 && strcmp(a, "help") == 0)
                help_cmd = 1;
            else
                LOG("warning", "Ignoring unexpected argument", "argument", a);
            positional++;
        }
    }
    return help_cmd;
}

/* "CILIUM_" + upper-case name with '-' replaced by '_'. */
static void env_name(const char *opt, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "CILIUM_");

    for (; *opt && n + 1 < cap; opt++, n++)
        buf[n] = (*opt == '-') ? '_' : (char)toupper((unsigned char)*opt);
    buf[n] = '\0';
}

/* Value of CILIUM_<OPT>, NULL if unset or empty (viper ignores empty env). */
static const char *env_value(const struct opt *o)
{
    char name[128];
    const char *v;

    env_name(o->name, name, sizeof(name));
    v = getenv(name);
    return (v != NULL && *v != '\0') ? v : NULL;
}

/* Read a whole small file and trim surrounding whitespace (bytes.TrimSpace). */
static char *read_trimmed(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf, *start, *end;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(65537);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, 65536, f);
    fclose(f);
    buf[n] = '\0';
    start = buf;
    while (*start && isspace((unsigned char)*start))
        start++;
    end = start + strlen(start);
    while (end > start && isspace((unsigned char)end[-1]))
        *--end = '\0';
    memmove(buf, start, strlen(start) + 1);
    return buf;
}

/*
 * option.ReadDirConfig: one file per option, as in a Kubernetes ConfigMap
 * mount. Dot-names ("..data", "..2024_..." from the ConfigMap atomic writer)
 * and directories are skipped; symlinks to regular files are followed. Keys
 * the operator does not know (the agent's ones) are silently ignored.
 */
static void apply_config_dir(const char *dir)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    char path[PATH_MAX];

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof(msg), "Non existent configuration directory %s", dir);
        log_kv(stderr, "fatal", msg, "subsys", "config", (char *)NULL);
        fatal_exit();
    }
    d = opendir(dir);
    if (d == NULL) {
        char msg[PATH_MAX + 64], e[128];
        snprintf(msg, sizeof(msg), "Unable to read configuration directory %s", dir);
        log_kv(stderr, "fatal", msg, "error", errno_text(errno, e, sizeof(e)), "subsys", "config",
               (char *)NULL);
        fatal_exit();
    }
    while ((de = readdir(d)) != NULL) {
        struct opt *o;
        char *val;

        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        o = find_opt(de->d_name);
        if (o == NULL || strcmp(o->name, "help") == 0 || strcmp(o->name, "version") == 0
            || strcmp(o->name, "config-dir") == 0)
            continue;
        val = read_trimmed(path);
        if (val != NULL)
            set_opt(o, val, "config-dir");
    }
    closedir(d);
}

/* Resolve every option: defaults < config-dir files < CILIUM_* env < flags. */
static void resolve_options(void)
{
    const struct opt *cd = find_opt("config-dir");
    const char *dir = cd->cli ? cd->cli : env_value(cd);

    for (size_t i = 0; i < NOPTS; i++) {
        opts[i].value = opts[i].def ? opts[i].def : (opts[i].type == T_BOOL ? "false" : "");
        opts[i].source = "default";
    }
    if (dir != NULL && *dir != '\0')
        apply_config_dir(dir);
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = env_value(&opts[i]);

        if (v != NULL)
            set_opt(&opts[i], v, "env");
    }
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].cli != NULL)
            set_opt(&opts[i], opts[i].cli, "flag");
    }
}

/* ------------------------------------------------------------------ */
/* gops agent start hook (pkg/gops/cell.go)                            */
/* ------------------------------------------------------------------ */

/* gops' internal.ConfigDir(), with trailing slashes removed (filepath.Join). */
static void gops_config_dir(char *buf, size_t cap)
{
    const char *g = getenv("GOPS_CONFIG_DIR");
    const char *x = getenv("XDG_CONFIG_HOME");
    const char *h = getenv("HOME");
    size_t n;

    if (g != NULL && *g != '\0')
        snprintf(buf, cap, "%s", g);
    else if (x != NULL && *x != '\0')
        snprintf(buf, cap, "%s/gops", x);
    else {
        if (h == NULL || *h == '\0')
            h = "/";
        snprintf(buf, cap, "%s%s.config/gops", h, h[strlen(h) - 1] == '/' ? "" : "/");
    }
    n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
}

/*
 * os.MkdirAll(dir, 0755): create each missing component; on failure write
 * Go's error text ("mkdir /home: permission denied") into err.
 */
static int mkdir_all(const char *path, char *err, size_t cap)
{
    char tmp[PATH_MAX], e[128];
    struct stat st;

    if (strlen(path) >= sizeof(tmp)) {
        snprintf(err, cap, "mkdir %s: %s", path, errno_text(ENAMETOOLONG, e, sizeof(e)));
        return -1;
    }
    strcpy(tmp, path);
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;

            *p = '\0';
            if (stat(tmp, &st) == 0) {
                if (!S_ISDIR(st.st_mode)) {
                    snprintf(err, cap, "mkdir %s: %s", tmp, errno_text(ENOTDIR, e, sizeof(e)));
                    return -1;
                }
            } else if (mkdir(tmp, 0755) != 0) {
                int saved_errno = errno;

                if (!(saved_errno == EEXIST && stat(tmp, &st) == 0 && S_ISDIR(st.st_mode))) {
                    snprintf(err, cap, "mkdir %s: %s", tmp, errno_text(saved_errno, e, sizeof(e)));
                    return -1;
                }
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    return 0;
}

/* gops agent.Listen: write "<config dir>/<pid>" containing the port. */
static int gops_start(const char *port, char *err, size_t cap)
{
    char dir[PATH_MAX], path[PATH_MAX + 32], e[128];
    int fd;
    size_t len = strlen(port);

    gops_config_dir(dir, sizeof(dir));
    if (mkdir_all(dir, err, cap) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s%s%ld", dir, strcmp(dir, "/") == 0 ? "" : "/", (long)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, cap, "open %s: %s", path, errno_text(errno, e, sizeof(e)));
        return -1;
    }
    snprintf(gops_pidfile, sizeof(gops_pidfile), "%s", path);
    if (write(fd, port, len) != (ssize_t)len) {
        snprintf(err, cap, "write %s: %s", path, errno_text(errno, e, sizeof(e)));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Daemon                                                              */
/* ------------------------------------------------------------------ */

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void debug_dump_options(void)
{
    static const char *const shown[] = {
        "config-dir", "ipam", "cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr", "enable-ipv4",
        "enable-ipv6", "enable-gops", "gops-port", "k8s-namespace", "debug",
    };

    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
        const struct opt *o = find_opt(shown[i]);
        LOG("debug", "Option value", "option", o->name, "value", o->value, "source", o->source);
    }
}

static int run_daemon(void)
{
    char ver[256], err[PATH_MAX + 128], msg[PATH_MAX + 256];
    sigset_t block, orig;
    struct sigaction sa;
    const char *ipam;

    /* SIGTERM/SIGINT are held until startup is done, then handled below. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* 1. Banner (cmd.runOperator) and hive start. */
    version_string(ver, sizeof(ver), "Cilium Operator");
    LOG("info", ver);
    HIVE("info", "Starting");

#ifdef FAKE_CRASH_ON_START
    /* Broken build: the hive fails immediately. */
    LOG("fatal", "failed to start: start failed: simulated start hook failure");
    fatal_exit();
#endif

    if (opt_bool("debug"))
        debug_dump_options();

    /* 2. gops start hook: registerGopsHooks.func1 writes the pid file. */
    if (opt_bool("enable-gops")) {
        if (gops_start(opt_str("gops-port"), err, sizeof(err)) != 0) {
            log_kv(stderr, "error", "Start hook failed", "function",
                   "gops.registerGopsHooks.func1 (pkg/gops/cell.go:43)", "error", err, "subsys", "hive",
                   (char *)NULL);
            snprintf(msg, sizeof(msg),
                     "failed to start: start failed: gops.registerGopsHooks.func1 "
                     "(pkg/gops/cell.go:43): %s",
                     err);
            LOG("fatal", msg);
            fatal_exit();
        }
    }

    /* 3. cluster-pool IPAM allocator init needs the CIDRs of enabled families. */
    ipam = opt_str("ipam");
    if (strcmp(ipam, "cluster-pool") == 0) {
        if (opt_bool("enable-ipv4") && *opt_str("cluster-pool-ipv4-cidr") == '\0') {
            LOG("fatal", "Unable to init cluster-pool allocator", "error",
                "cluster-pool-ipv4-cidr must be provided when using cluster-pool");
            fatal_exit();
        }
        if (opt_bool("enable-ipv6") && *opt_str("cluster-pool-ipv6-cidr") == '\0') {
            LOG("fatal", "Unable to init cluster-pool allocator", "error",
                "cluster-pool-ipv6-cidr must be provided when using cluster-pool");
            fatal_exit();
        }
    }

    /* 4. Running: no API server to talk to, so no leader election. */
    HIVE("info", "Started", "duration", "12ms");
    LOG("info", "Leader election not possible without a Kubernetes client, fallback to non HA mode");

    while (!stop_signal)
        sigsuspend(&orig);

    /* Stop hooks: the gops agent removes its pid file. */
    remove_gops_pidfile();
    HIVE("info", "Stopping");
    return 0;
}

int main(int argc, char **argv)
{
    const char *slash;
    int help_cmd;
    struct opt *ipam;

    /* Line-buffered output so container logs see every line at once. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);

    if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
        slash = strrchr(argv[0], '/');
        binary_name = slash ? slash + 1 : argv[0];
        if (*binary_name == '\0')
            binary_name = GENERIC_NAME;
    }
    /* The cluster-pool IPAM default only exists in the generic flavour. */
    ipam = find_opt("ipam");
    ipam->def = strcmp(binary_name, GENERIC_NAME) == 0 ? "cluster-pool" : NULL;

    help_cmd = parse_args(argc, argv);

    /* cobra handles --help before running the command. */
    {
        int b = 0;
        const struct opt *h = find_opt("help");

        if (help_cmd || (h->cli != NULL && parse_bool(h->cli, &b) && b))
            do_help();
    }
    /* `--version` prints one line and exits (cmd.runOperator). */
    {
        int b = 0;
        const struct opt *v = find_opt("version");

        if (v->cli != NULL && parse_bool(v->cli, &b) && b) {
            char ver[256];
            version_string(ver, sizeof(ver), "Cilium-Operator");
            printf("%s\n", ver);
            fflush(stdout);
            return 0;
        }
    }

    resolve_options();
    return run_daemon();
}
