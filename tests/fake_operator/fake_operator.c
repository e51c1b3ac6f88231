/*
 * fake_operator.c - a small, statically linked stand-in for the real
 * `cilium-operator-generic` (a Go/cobra program), used by the test suite
 * inside locally built images. It follows what real 1.17.5 and 1.18.10 builds
 * do in a container (REFERENCE.md; tests/test_operator_contract.py compares
 * the two on every behaviour below):
 *
 *   --help / -h / `help`  cobra help on stdout, exit 0; header, usage and the
 *                         --ipam default follow basename(argv[0])
 *   --version             "Cilium-Operator <v> <sha> <date> go version ..."
 *   unknown flag          "Error: unknown flag: --x" + usage on stderr, exit 1
 *   boot                  option dump and banner; Kubernetes is enabled when
 *                         --enable-k8s and (an API server flag, a kubeconfig,
 *                         KUBERNETES_SERVICE_HOST/PORT or K8S_NODE_NAME):
 *     no API server address  dies while building its object graph ("unable
 *                            to load in-cluster configuration ..."), before
 *                            any start hook
 *     with one               start hooks: gops writes <dir>/<pid> (or the
 *                            hook fails: "Start hook failed ... gops ...
 *                            mkdir X: permission denied", fatal), then
 *                            "Establishing connection to apiserver" every
 *                            5 s; nobody answers, so after 60 s: "Unable to
 *                            contact k8s api-server", fatal. SIGTERM kills it
 *                            (exit 143), as it does the real one then.
 *     Kubernetes disabled    the operator API's start hook cannot resolve
 *                            localhost without /etc/hosts: 1.17 hangs after
 *                            "Failed to start hive", 1.18 exits; with
 *                            localhost resolvable it stays up, and SIGTERM
 *                            stops its hive but not the process
 *   fatal                 1.17: logrus line on stderr, exit 1;
 *                         1.18: slog line on stdout, exit 255
 *
 * Compile-time variants (see build.py):
 *   -DFAKE_V117                          1.17.5 flags, log format, exit codes
 *                                        (default: 1.18)
 *   -DFAKE_VERSION='"1.17.5"'            printed version (default 1.17.5 /
 *                                        1.18.3)
 *   -DFAKE_API_WAIT_SECONDS=4            API server wait (default 60, real)
 *   -DFAKE_HANG_ON_HELP                  --help prints nothing, ignores
 *                                        SIGTERM/SIGINT and never exits
 *   -DFAKE_HELP_EXIT_1                   --help prints help, then exits 1
 *   -DFAKE_MISSING_FLAG='"--k8s-namespace"'  help omits that flag's line
 *   -DFAKE_HELP_TO_STDERR                help goes to stderr, stdout empty
 *   -DFAKE_CRASH_ON_START                its first start hook fails
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

#ifdef FAKE_V117
#define V117 1
#define DEFAULT_VERSION "1.17.5"
#define FAKE_COMMIT "69aab28cf1"
#define FAKE_BUILD_DATE "2025-06-12T11:29:27+00:00"
#define FATAL_RC 1
#define GOPS_HOOK "gops.registerGopsHooks.func1 (pkg/gops/cell.go:43) (operator.operator-infra.gops)"
#define INVOKE_FN "cmd.registerOperatorHooks (cmd/root.go:352)"
#else
#define V117 0
#define DEFAULT_VERSION "1.18.3"
#define FAKE_COMMIT "6bf2fe83d2"
#define FAKE_BUILD_DATE "2026-05-12T23:46:41+00:00"
#define FATAL_RC 255 /* logging.Fatal: os.Exit(-1) */
#define GOPS_HOOK "gops.registerGopsHooks.func1 (pkg/gops/cell.go:47) (operator.operator-infra.gops)"
#define INVOKE_FN "server.registerShell (.../shell/server/shell_server.go:38)"
#endif
#ifndef FAKE_VERSION
#define FAKE_VERSION DEFAULT_VERSION
#endif
#ifndef FAKE_API_WAIT_SECONDS
#define FAKE_API_WAIT_SECONDS 60 /* pkg/k8s/client: connTimeout */
#endif
#define API_RETRY_SECONDS 5
#define FAKE_GO_VERSION "go1.24.6"
#define GENERIC_NAME "cilium-operator-generic"
#define K8S_CLIENT_HOOK \
    "client.(*compositeClientset).onStart (operator.operator-infra.operator-k8s-client-builder.k8s-client-builder)"
#define K8S_MODULE "operator.operator-infra.operator-k8s-client-builder.k8s-client-builder"
#define GOPS_MODULE "operator.operator-infra.gops"
#define API_HOOK "*api.server.Start (operator.operator-controlplane.cilium-operator-api)"

/* basename(argv[0]), like cobra's `binaryName = filepath.Base(os.Args[0])`. */
static const char *binary_name = GENERIC_NAME;
/* Path of the gops port file once written, removed again by its stop hook. */
static char gops_pidfile[PATH_MAX + 32];
static char gops_addr[64];

/* ------------------------------------------------------------------ */
/* Logging: logrus (1.17's own logger) and Go slog text lines          */
/* ------------------------------------------------------------------ */

struct sbuf {
    char data[8192];
    size_t len;
};

static void sb_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
static int logrus_needs_quoting(const char *s)
{
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && !strchr("-._/@^+", *s))
            return 1;
    }
    return 0;
}

/* slog's TextHandler quotes empty values, spaces, '=', '"' and control characters. */
static int slog_needs_quoting(const char *s)
{
    if (*s == '\0')
        return 1;
    for (; *s; s++) {
        if (*s == ' ' || *s == '=' || *s == '"' || (unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    }
    return 0;
}

static void sb_value(struct sbuf *sb, const char *s, int quote)
{
    if (!quote) {
        sb_printf(sb, "%s", s);
        return;
    }
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

/* RFC3339 in UTC; Go's RFC3339Nano drops trailing zeros of the fraction. */
static void timestamp(char *buf, size_t cap, int nanos)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nanos && ts.tv_nsec != 0) {
        char frac[16];
        int len = snprintf(frac, sizeof(frac), "%09ld", ts.tv_nsec);

        while (len > 0 && frac[len - 1] == '0')
            frac[--len] = '\0';
        n += (size_t)snprintf(buf + n, cap - n, ".%s", frac);
    }
    snprintf(buf + n, cap - n, "Z");
}

#define MAX_KV 16

/*
 * One log line: emit(out, style, level, msg, key, value, ..., NULL).
 * STYLE_LOGRUS: time="<nanos>" (quoted), keys sorted by name (logrus' TextFormatter).
 * STYLE_SLOG / STYLE_SLOG_SECONDS: time=<nanos or seconds>, keys in the order given.
 * The line is written at once and flushed so that `docker logs` sees it immediately.
 */
enum style { STYLE_LOGRUS, STYLE_SLOG, STYLE_SLOG_SECONDS };

static void emit(FILE *out, enum style style, const char *level, const char *msg, ...)
    __attribute__((sentinel));

static void emit(FILE *out, enum style style, const char *level, const char *msg, ...)
{
    const char *keys[MAX_KV], *vals[MAX_KV];
    size_t n = 0;
    struct sbuf sb;
    char ts[64];
    va_list ap;
    const char *key;
    int logrus = style == STYLE_LOGRUS;

    va_start(ap, msg);
    while ((key = va_arg(ap, const char *)) != NULL && n < MAX_KV) {
        const char *val = va_arg(ap, const char *);
        keys[n] = key;
        vals[n++] = val ? val : "";
    }
    va_end(ap);
    if (logrus) { /* insertion sort by key */
        for (size_t i = 1; i < n; i++) {
            for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
                const char *k = keys[j], *v = vals[j];
                keys[j] = keys[j - 1], vals[j] = vals[j - 1];
                keys[j - 1] = k, vals[j - 1] = v;
            }
        }
    }
    sb.len = 0;
    sb.data[0] = '\0';
    timestamp(ts, sizeof(ts), style != STYLE_SLOG_SECONDS);
    sb_printf(&sb, logrus ? "time=\"%s\" level=%s msg=" : "time=%s level=%s msg=", ts, level);
    sb_value(&sb, msg, logrus ? logrus_needs_quoting(msg) : slog_needs_quoting(msg));
    for (size_t i = 0; i < n; i++) {
        sb_printf(&sb, " %s=", keys[i]);
        sb_value(&sb, vals[i], logrus ? logrus_needs_quoting(vals[i]) : slog_needs_quoting(vals[i]));
    }
    sb_printf(&sb, "\n");
    fputs(sb.data, out);
    fflush(out);
}

/*
 * Where each kind of line goes, per version:
 *   EARLY  option dump, banner, config errors: stderr (1.17 logrus, 1.18 slog)
 *   HIVE   the hive's own lines: stdout, slog (1.17 with seconds only)
 *   SUB    a subsystem's line: 1.17 logrus on stderr with subsys=<name>;
 *          1.18 slog on stdout with module=<module>
 */
#if V117
#define EARLY(level, msg, ...) emit(stderr, STYLE_LOGRUS, level, msg, ##__VA_ARGS__, (char *)NULL)
#define HIVE(level, msg, ...) emit(stdout, STYLE_SLOG_SECONDS, level, msg, ##__VA_ARGS__, (char *)NULL)
#define SUB(level, msg, subsys, module, ...) \
    emit(stderr, STYLE_LOGRUS, level, msg, ##__VA_ARGS__, "subsys", subsys, (char *)NULL)
#define LEVEL_WARN "warning"
#else
#define EARLY(level, msg, ...) emit(stderr, STYLE_SLOG, level, msg, ##__VA_ARGS__, (char *)NULL)
#define HIVE(level, msg, ...) emit(stdout, STYLE_SLOG, level, msg, ##__VA_ARGS__, (char *)NULL)
#define SUB(level, msg, subsys, module, ...) \
    emit(stdout, STYLE_SLOG, level, msg, "module", module, ##__VA_ARGS__, (char *)NULL)
#define LEVEL_WARN "warn"
#endif

static void remove_gops_pidfile(void)
{
    if (gops_pidfile[0] != '\0') {
        unlink(gops_pidfile);
        gops_pidfile[0] = '\0';
    }
}

/* cmd.runOperator: "failed to start: <err>" at level fatal, then exit. */
static void fatal_exit(const char *msg)
{
#if V117
    emit(stderr, STYLE_LOGRUS, "fatal", msg, "subsys", binary_name, (char *)NULL);
#else
    emit(stdout, STYLE_SLOG, "fatal", msg, (char *)NULL);
#endif
    fflush(stdout);
    fflush(stderr);
    exit(FATAL_RC);
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
    const char *usage;   /* NULL only for "help" (built from binary name); "" = hidden */
    const char *value;   /* resolved value */
    const char *source;  /* where value came from: default/config-dir/env/flag */
    const char *cli;     /* value given on the command line, if any */
};

#define CIDR_USAGE(fam, v) \
    "IPv" fam " CIDR Range for Pods in cluster. Requires 'ipam=cluster-pool' and 'enable-ipv" v "=true'"
#define MASK_USAGE(fam, v) \
    "Mask size for each IPv" fam " podCIDR per node. Requires 'ipam=cluster-pool' and 'enable-ipv" v "=true'"

/* Sorted by name, as pflag prints them; usage texts as the real operator's. */
static struct opt opts[] = {
    {"cluster-id", 0, T_UINT32, NULL, "Unique identifier of the cluster", 0, 0, 0},
    {"cluster-name", 0, T_STRING, "default",
     "Name of the cluster. It must consist of at most 32 lower case alphanumeric characters and '-', "
     "start and end with an alphanumeric character.", 0, 0, 0},
    {"cluster-pool-ipv4-cidr", 0, T_STRINGS, NULL, CIDR_USAGE("4", "4"), 0, 0, 0},
    {"cluster-pool-ipv4-mask-size", 0, T_INT, "24", MASK_USAGE("4", "4"), 0, 0, 0},
    {"cluster-pool-ipv6-cidr", 0, T_STRINGS, NULL, CIDR_USAGE("6", "6"), 0, 0, 0},
    {"cluster-pool-ipv6-mask-size", 0, T_INT, "112", MASK_USAGE("6", "6"), 0, 0, 0},
    {"config-dir", 0, T_STRING, NULL, "Configuration directory that contains a file for each option", 0, 0, 0},
    {"debug", 'D', T_BOOL, NULL, "Enable debugging mode", 0, 0, 0},
#if !V117
    {"enable-gops", 0, T_BOOL, "true", "Enable gops server", 0, 0, 0},
#endif
    {"enable-ipv4", 0, T_BOOL, "true", "Enable IPv4 support", 0, 0, 0},
    {"enable-ipv6", 0, T_BOOL, "true", "Enable IPv6 support", 0, 0, 0},
    {"enable-k8s", 0, T_BOOL, "true", "Enable the k8s clientset", 0, 0, 0},
    {"enable-metrics", 0, T_BOOL, NULL, "Enable Prometheus metrics", 0, 0, 0},
    {"gops-port", 0, T_UINT16, "9891", "Port for gops server to listen on", 0, 0, 0},
    {"help", 'h', T_BOOL, NULL, NULL, 0, 0, 0},
    {"identity-allocation-mode", 0, T_STRING, "kvstore", "Method to use for identity allocation", 0, 0, 0},
    {"ipam", 0, T_STRING, NULL /* set in main() */, "Backend to use for IPAM", 0, 0, 0},
#if V117
    {"k8s-api-server", 0, T_STRING, NULL, "Kubernetes API server URL", 0, 0, 0},
#else
    {"k8s-api-server", 0, T_STRING, NULL, "" /* deprecated, hidden */, 0, 0, 0},
    {"k8s-api-server-urls", 0, T_STRINGS, NULL, "Kubernetes API server URLs", 0, 0, 0},
#endif
    {"k8s-kubeconfig-path", 0, T_STRING, NULL, "Absolute path of the kubernetes kubeconfig file", 0, 0, 0},
    {"k8s-namespace", 0, T_STRING, NULL,
     "Name of the Kubernetes namespace in which Cilium Operator is deployed in", 0, 0, 0},
    {"kvstore", 0, T_STRING, NULL, "Key-value store type", 0, 0, 0},
    {"leader-election-lease-duration", 0, T_DURATION, "15s",
     "Duration that non-leader operator candidates will wait before forcing to acquire leadership", 0, 0, 0},
    {"leader-election-renew-deadline", 0, T_DURATION, "10s",
     "Duration that current acting master will retry refreshing leadership in before giving up the lock", 0, 0, 0},
    {"leader-election-retry-period", 0, T_DURATION, "2s",
     "Duration that LeaderElector clients should wait between retries of the actions", 0, 0, 0},
    {"log-driver", 0, T_STRINGS, NULL, "Logging endpoints to use for example syslog", 0, 0, 0},
    {"operator-api-serve-addr", 0, T_STRING, "localhost:9234", "Address to serve API requests", 0, 0, 0},
    {"operator-pprof", 0, T_BOOL, NULL, "Enable serving pprof debugging API", 0, 0, 0},
    {"operator-pprof-port", 0, T_UINT16, "6061", "Port that pprof listens on", 0, 0, 0},
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

/* ------------------------------------------------------------------ */
/* Help and version (cobra root command)                               */
/* ------------------------------------------------------------------ */

static int flag_hidden_in_help(const struct opt *o)
{
    if (o->usage != NULL && o->usage[0] == '\0')
        return 1;
#ifdef FAKE_MISSING_FLAG
    /* Broken build: pretend this flag was never registered in the help. */
    const char *missing = FAKE_MISSING_FLAG;

    while (*missing == '-')
        missing++;
    return strcmp(o->name, missing) == 0;
#else
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

/* cobra's usage template for a root command with sub-commands (help adds "Run <name>"). */
static void print_usage(FILE *out)
{
    const char *b = binary_name;
    char col[256];
    size_t width = 0;

    fprintf(out, "Usage:\n  %s [flags]\n  %s [command]\n\n", b, b);
    fprintf(out,
            "Available Commands:\n"
            "  completion   Generate the autocompletion script for the specified shell\n"
            "  help         Help about any command\n"
            "  hive         Inspect the hive\n"
            "  metrics      Access metric status of the operator\n"
#if !V117
            "  shell        Connect to the Cilium shell\n"
#endif
            "  status       Display status of operator\n"
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
    FILE *out = stdout;

#ifdef FAKE_HANG_ON_HELP
    /* Broken build: hang silently; only SIGKILL can stop it. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    for (;;)
        pause();
#endif
#ifdef FAKE_HELP_TO_STDERR
    out = stderr;
#endif
    fprintf(out, "Run %s\n\n", binary_name);
    print_usage(out);
#ifdef FAKE_HELP_EXIT_1
    exit(1);
#endif
    exit(0);
}

/* cobra's flag error: the error and the usage on stderr, then Execute() prints it again. */
static void usage_error(const char *what)
{
    fprintf(stderr, "Error: %s\n", what);
    print_usage(stderr);
    printf("%s\n", what);
    fflush(stdout);
    exit(1);
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

static void version_string(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s %s %s go version %s linux/%s", FAKE_VERSION, FAKE_COMMIT, FAKE_BUILD_DATE,
             FAKE_GO_VERSION, goarch());
}

/* ------------------------------------------------------------------ */
/* Option sources: command line, --config-dir, CILIUM_* environment    */
/* ------------------------------------------------------------------ */

/*
 * pflag-like parsing: "--opt=value", "--opt value", bare "--bool-flag",
 * "-D"/"-h" shorthands, "--" ends the flags; unknown flags and commands are
 * cobra errors. Returns 1 when the `help` sub-command was given.
 */
static int parse_args(int argc, char **argv)
{
    int help_cmd = 0, positional = 0, dashdash = 0;
    char what[512];

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
                snprintf(what, sizeof(what), "unknown flag: --%.*s", (int)len, name);
                usage_error(what);
            }
            if (eq)
                o->cli = eq + 1;
            else if (o->type == T_BOOL)
                o->cli = "true";
            else if (i + 1 < argc)
                o->cli = argv[++i]; /* pflag takes the next word, whatever it is */
            else {
                snprintf(what, sizeof(what), "flag needs an argument: --%s", o->name);
                usage_error(what);
            }
            if (!V117 && strcmp(o->name, "k8s-api-server") == 0)
                fprintf(stderr, "Flag --k8s-api-server has been deprecated, use --k8s-api-server-urls\n");
        } else if (!dashdash && a[0] == '-' && a[1] != '\0') {
            for (const char *c = a + 1; *c; c++) {
                struct opt *o = find_short(*c);

                if (o == NULL) {
                    snprintf(what, sizeof(what), "unknown shorthand flag: '%c' in %s", *c, a);
                    usage_error(what);
                }
                o->cli = "true"; /* only bool flags have shorthands */
            }
        } else if (positional++ == 0 && strcmp(a, "help") == 0) {
            help_cmd = 1; /* cobra's built-in `help` command prints the root help */
        } else if (!help_cmd) {
            fprintf(stderr, "Error: unknown command \"%s\" for \"%s\"\nRun '%s --help' for usage.\n", a,
                    binary_name, binary_name);
            printf("unknown command \"%s\" for \"%s\"\n", a, binary_name);
            exit(1);
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

static void config_fatal(const char *msg, const char *error)
{
#if V117
    EARLY("fatal", msg, "error", error, "subsys", "config");
#else
    EARLY("fatal", msg, "error", error);
#endif
    exit(FATAL_RC);
}

/* viper's cast of a config-map string to the option's type (bool and unsigned ports). */
static void check_config_value(const struct opt *o, const char *value)
{
    char err[1024];
    int b;

    if (o->type == T_BOOL && !parse_bool(value, &b)) {
        snprintf(err, sizeof(err), "option %s: strconv.ParseBool: parsing \"%s\": invalid syntax", o->name, value);
        config_fatal("Incorrect config-map flag value", err);
    }
    if (o->type == T_UINT16 || o->type == T_UINT32) {
        char *end;
        unsigned long v = strtoul(value, &end, 10);

        if (*value == '\0' || *end != '\0' || !isdigit((unsigned char)*value)
            || v > (o->type == T_UINT16 ? 65535UL : 4294967295UL)) {
            const char *tn = type_names[o->type];
            if (V117)
                snprintf(err, sizeof(err), "option %s: unable to cast \"%s\" of type string to %s", o->name,
                         value, tn);
            else
                snprintf(err, sizeof(err),
                         "option %s: unable to cast \"%s\" of type string to %s: strconv.ParseUint: "
                         "parsing \"%s\": invalid syntax", o->name, value, tn, value);
            config_fatal("Incorrect config-map flag value", err);
        }
    }
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
    char path[PATH_MAX], msg[PATH_MAX + 64], e[128];

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, sizeof(msg), "Non existent configuration directory %s", dir);
        config_fatal(msg, errno_text(ENOENT, e, sizeof(e)));
    }
    d = opendir(dir);
    if (d == NULL) {
        snprintf(msg, sizeof(msg), "Unable to read configuration directory %s", dir);
        config_fatal(msg, errno_text(errno, e, sizeof(e)));
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
        if (val != NULL) {
            check_config_value(o, val);
            o->value = val;
            o->source = "config-dir";
        }
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
            opts[i].value = v, opts[i].source = "env";
        if (opts[i].cli != NULL)
            opts[i].value = opts[i].cli, opts[i].source = "flag";
    }
}

/* ------------------------------------------------------------------ */
/* Kubernetes client configuration (pkg/k8s/client)                    */
/* ------------------------------------------------------------------ */

static int has_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0';
}

static const char *api_server_flag(void)
{
#if !V117
    if (*opt_str("k8s-api-server-urls"))
        return opt_str("k8s-api-server-urls"); /* the first of a list in the real one */
#endif
    return opt_str("k8s-api-server");
}

/* config.isEnabled(): the chart's K8S_NODE_NAME alone turns the client on. */
static int k8s_enabled(void)
{
    return opt_bool("enable-k8s")
        && (*api_server_flag() || *opt_str("k8s-kubeconfig-path")
            || (has_env("KUBERNETES_SERVICE_HOST") && has_env("KUBERNETES_SERVICE_PORT"))
            || has_env("K8S_NODE_NAME"));
}

/* The `server:` of a kubeconfig, copied into host; 0 on success, else err says why. */
static int kubeconfig_server(const char *path, char *host, size_t hcap, char *err, size_t ecap)
{
    struct stat st;
    char e[128], line[1024];
    FILE *f;

    if (stat(path, &st) != 0) {
        snprintf(err, ecap, "stat %s: %s", path, errno_text(errno, e, sizeof(e)));
        return -1;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, ecap, "open %s: %s", path, errno_text(errno, e, sizeof(e)));
        return -1;
    }
    host[0] = '\0';
    while (fgets(line, sizeof(line), f) != NULL) {
        char *s = strstr(line, "server:");

        if (s != NULL) {
            s += strlen("server:");
            while (*s == ' ' || *s == '"' || *s == '\'')
                s++;
            snprintf(host, hcap, "%s", s);
            host[strcspn(host, "\"'\r\n ")] = '\0';
            break;
        }
    }
    fclose(f);
    if (host[0] == '\0') {
        snprintf(err, ecap, "invalid configuration: no configuration has been provided");
        return -1;
    }
    return 0;
}

/* The API server address the client will use; 0 on success, else err says why. */
static int rest_config(char *host, size_t hcap, char *err, size_t ecap)
{
    const char *url = api_server_flag();
    const char *kubeconfig = opt_str("k8s-kubeconfig-path");

    if (*kubeconfig) {
        if (kubeconfig_server(kubeconfig, host, hcap, err, ecap) != 0)
            return -1;
        if (*url)
            snprintf(host, hcap, "%s", url);
        return 0;
    }
    if (strncmp(url, "http://", 7) == 0) { /* plain http needs no credentials */
        snprintf(host, hcap, "%s", url);
        return 0;
    }
    if (has_env("KUBERNETES_SERVICE_HOST") && has_env("KUBERNETES_SERVICE_PORT")) {
        const char *token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
        char e[128];

        if (access(token, R_OK) != 0) {
            snprintf(err, ecap, "open %s: %s", token, errno_text(errno, e, sizeof(e)));
            return -1;
        }
        snprintf(err, ecap, "the fake operator has no in-cluster client");
        return -1;
    }
    snprintf(err, ecap, "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                        "KUBERNETES_SERVICE_PORT must be defined");
    return -1;
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
static int gops_listen(const char *port, char *err, size_t cap)
{
    char dir[PATH_MAX], path[PATH_MAX + 32], e[128];
    int fd;
    size_t len = strlen(port);

    gops_config_dir(dir, sizeof(dir));
    if (mkdir_all(dir, err, cap) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s%s%ld", dir, strcmp(dir, "/") == 0 ? "" : "/", (long)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0777);
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
/* Daemon: object graph, start hooks, stop                             */
/* ------------------------------------------------------------------ */

static void stop_hooks(int gops_started)
{
    HIVE("info", "Stopping hive");
    if (gops_started) {
        remove_gops_pidfile();
        SUB("info", "Stopped gops server", "gops", GOPS_MODULE, "address", gops_addr);
    }
#if !V117
    HIVE("info", "Stopped hive", "duration", "581.416\xc2\xb5s");
#endif
}

/* A start hook returned err: the hive logs it, runs the stop hooks and the operator dies. */
static void start_hook_failed(const char *function, const char *err, const char *duration, int gops_started)
{
    char msg[2048];

    HIVE("error", "Start hook failed", "function", function, "error", err);
    HIVE("error", "Failed to start hive", "error", err, "duration", duration);
    stop_hooks(gops_started);
    snprintf(msg, sizeof(msg), "failed to start: %s", err);
    fatal_exit(msg);
}

/* Option dump of cmd.initEnv (every option, at info level, before the banner). */
static void dump_options(void)
{
    char msg[1024], ver[256];

    for (size_t i = 0; i < NOPTS; i++) {
        if (strcmp(opts[i].name, "help") == 0)
            continue;
        snprintf(msg, sizeof(msg), "  --%s='%s'", opts[i].name, opts[i].value);
        EARLY("info", msg, "subsys", binary_name);
    }
    version_string(ver, sizeof(ver));
#if V117
    snprintf(msg, sizeof(msg), "Cilium Operator %s", ver);
    EARLY("info", msg, "subsys", binary_name);
#else
    EARLY("info", "Cilium Operator", "subsys", binary_name, "version", ver);
#endif
}

/* The k8s client's start hook: retry every 5 s until the 60 s connection timeout. */
static void wait_for_api_server(const char *host)
{
    char err[3072], hostport[1024], duration[32];
    const char *h = strstr(host, "://");

    snprintf(hostport, sizeof(hostport), "%s", h ? h + 3 : host);
    hostport[strcspn(hostport, "/")] = '\0';
    /* SIGTERM keeps Go's default action here: the real operator dies of it (exit 143). */
    for (int waited = 0;;) {
        int step = FAKE_API_WAIT_SECONDS - waited < API_RETRY_SECONDS ? FAKE_API_WAIT_SECONDS - waited
                                                                       : API_RETRY_SECONDS;
#if V117
        SUB("info", "Establishing connection to apiserver", "k8s-client-builder", K8S_MODULE, "host", host);
#else
        SUB("info", "Establishing connection to apiserver", "k8s-client-builder", K8S_MODULE, "ipAddr", host);
#endif
        if (waited >= FAKE_API_WAIT_SECONDS)
            break;
        sleep((unsigned)step);
        waited += step;
    }
    /* The fake never talks to an API server: nothing answers where the suite points it. */
    snprintf(err, sizeof(err), "Get \"%s/api/v1/namespaces/kube-system\": dial tcp %s: connect: connection refused",
             host, hostport);
    SUB("error", "Unable to contact k8s api-server", "k8s-client-builder", K8S_MODULE, "ipAddr", host, "error", err);
    if (FAKE_API_WAIT_SECONDS >= 60)
        snprintf(duration, sizeof(duration), "%dm%d.049115551s", FAKE_API_WAIT_SECONDS / 60,
                 FAKE_API_WAIT_SECONDS % 60);
    else
        snprintf(duration, sizeof(duration), "%d.049115551s", FAKE_API_WAIT_SECONDS);
    start_hook_failed(K8S_CLIENT_HOOK, err, duration, 1);
}

/* Go's resolver reads /etc/hosts; without a localhost entry it asks DNS, which is absent. */
static int localhost_resolves(void)
{
    FILE *f = fopen("/etc/hosts", "r");
    char line[512];
    int found = 0;

    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        for (char *tok = strtok(line, " \t\r\n"); tok && !found; tok = strtok(NULL, " \t\r\n"))
            found = strcmp(tok, "localhost") == 0;
    }
    fclose(f);
    return found;
}

/*
 * Go's default for SIGTERM/SIGINT: die of the signal (exit 143 / 130). As a container's
 * PID 1 a signal left at SIG_DFL is discarded by the kernel, so exit with the same status.
 */
static void die_of_signal(int sig)
{
    sigset_t set;

    signal(sig, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig);
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* Kubernetes disabled: the control plane starts without leader election. */
static void run_without_k8s(int gops_started)
{
    char msg[256];

    SUB("info", "Support for coordination.k8s.io/v1 not present, fallback to non HA mode", binary_name,
        "operator");
    if (strcmp(opt_str("ipam"), "cluster-pool") == 0 && opt_bool("enable-ipv4")
        && *opt_str("cluster-pool-ipv4-cidr") == '\0') {
        snprintf(msg, sizeof(msg), "Unable to init %s allocator", opt_str("ipam"));
        SUB("fatal", msg, binary_name, "operator", "error",
            "cluster-pool-ipv4-cidr must be provided when using cluster-pool");
        exit(FATAL_RC);
    }
#if !V117
    { /* 1.18: the shell server's listener job wants its runtime directory */
        char err[PATH_MAX + 64], msg[PATH_MAX + 128];

        if (mkdir_all("/var/run/cilium", err, sizeof(err)) != 0) {
            snprintf(msg, sizeof(msg), "could not create default runtime directory: %s", err);
            SUB("error", "one-shot job errored", binary_name, "operator.operator-infra.shell", "name", "listener",
                "func", "server.shell.listener", "error", msg);
        }
    }
#endif
    if (!localhost_resolves()) {
        const char *err = "unable to listen on localhost:9234: listen tcp: lookup localhost on [::1]:53: "
                          "read udp [::1]:46137->[::1]:53: read: connection refused";
#if V117
        (void)gops_started;
        HIVE("error", "Start hook failed", "function", API_HOOK, "error", err);
        HIVE("error", "Failed to start hive", "error", err, "duration", "15.783212ms");
        HIVE("info", "Stopping hive");
        for (;;) /* a stop hook waits for a Kubernetes sync that never comes */
            pause();
#else
        start_hook_failed(API_HOOK, err, "12.041621ms", gops_started);
#endif
    }
    HIVE("info", "Started hive", "duration", "12ms");
    { /* the hive handles the signal and stops, but a stop hook then waits forever */
        struct sigaction sa;
        sigset_t block, orig;

        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        sigprocmask(SIG_BLOCK, &block, &orig);
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        while (!got_signal)
            sigsuspend(&orig);
        sigprocmask(SIG_SETMASK, &orig, NULL);
        HIVE("info", "Signal received", "signal", got_signal == SIGINT ? "interrupt" : "terminated");
        HIVE("info", "Stopping hive");
        for (;;)
            pause();
    }
}

static int run_daemon(void)
{
    char host[1024], err[PATH_MAX + 256], msg[PATH_MAX + 512];
    int gops_started = 0, k8s = k8s_enabled();

    signal(SIGTERM, die_of_signal);
    signal(SIGINT, die_of_signal);
    dump_options();
    /* Populating the object graph builds the k8s client's rest config: no start hook yet. */
    if (k8s && rest_config(host, sizeof(host), err, sizeof(err)) != 0) {
        snprintf(msg, sizeof(msg), "unable to create k8s client rest configuration: %s", err);
        HIVE("error", "Invoke failed", "error", msg, "function", INVOKE_FN);
        HIVE("info", "Stopping hive");
#if !V117
        HIVE("info", "Stopped hive", "duration", "4.006\xc2\xb5s");
#endif
        snprintf(msg, sizeof(msg),
                 "failed to start: failed to populate object graph: unable to create k8s client rest "
                 "configuration: %s", err);
        fatal_exit(msg);
    }
    HIVE("info", "Registering CNP / CCNP validator", "module",
         "operator.operator-controlplane.leader-lifecycle.network-policy-validator");
    HIVE("info", "Starting hive");

#ifdef FAKE_CRASH_ON_START
    /* Broken build: its first start hook fails. */
    start_hook_failed("crash.simulated (fake_operator.c) (operator.operator-infra.crash)",
                      "simulated start hook failure", "1ms", 0);
#endif

    /* Start hook 1: gops writes its port file, logging "Started" before it tries. */
    if (V117 || opt_bool("enable-gops")) {
        snprintf(gops_addr, sizeof(gops_addr), "127.0.0.1:%s", opt_str("gops-port"));
        SUB("info", "Started gops server", "gops", GOPS_MODULE, "address", gops_addr);
        if (gops_listen(opt_str("gops-port"), err, sizeof(err)) != 0)
            start_hook_failed(GOPS_HOOK, err, "2.676223ms", 0);
        gops_started = 1;
    }
    /* Start hook 2: the k8s client waits for the API server. */
    if (k8s)
        wait_for_api_server(host);
    run_without_k8s(gops_started);
    return 0;
}

int main(int argc, char **argv)
{
    const char *slash;
    struct opt *ipam;
    int b = 0;

    /* Line-buffered output so container logs see every line at once. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);

    if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
        slash = strrchr(argv[0], '/');
        binary_name = slash ? slash + 1 : argv[0];
        if (*binary_name == '\0')
            binary_name = GENERIC_NAME;
    }
    /* operator/cmd/flags.go: the cluster-pool IPAM default only for the generic name. */
    ipam = find_opt("ipam");
    ipam->def = strcmp(binary_name, GENERIC_NAME) == 0 ? "cluster-pool" : NULL;

    /* cobra handles --help before running the command. */
    if (parse_args(argc, argv) || (find_opt("help")->cli && parse_bool(find_opt("help")->cli, &b) && b))
        do_help();
    /* `--version` prints one line and exits (cmd.runOperator). */
    if (find_opt("version")->cli && parse_bool(find_opt("version")->cli, &b) && b) {
        char ver[256];

        version_string(ver, sizeof(ver));
        printf("Cilium-Operator %s\n", ver);
        fflush(stdout);
        return 0;
    }
    resolve_options();
    return run_daemon();
}
