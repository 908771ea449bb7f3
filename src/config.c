/* config: defaults, JSON file and command-line flags, one table (see config.h). */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "version.h"
#include "xmem.h"

#define CONFIG_FILE_MAX (1 << 20) /* a config file larger than this is a mistake */

enum config_type { CFG_INT, CFG_ENUM, CFG_IP, CFG_HEXKEY, CFG_IP_OPT, CFG_SECRET, CFG_FRAC, CFG_CIDRS };

static const char *const config_compat_names[] = { "readme", "sobani-app", NULL };
static const char *const config_log_names[] = { "error", "warn", "info", "debug", NULL };

struct config_key {
    const char *name;
    enum config_type type;
    size_t off;                 /* offset of the field in struct config */
    long min, max;              /* CFG_INT range */
    const char *const *choices; /* CFG_ENUM names, index = stored value */
    const char *help;
};

#define OFF(f) offsetof(struct config, f)

static const struct config_key config_keys[] = {
    { "bind", CFG_IP, OFF(bind), 0, 0, NULL,
      "IP address to listen on; \"::\" = dual stack (default 0.0.0.0)" },
    { "port", CFG_INT, OFF(port), 0, 65535, NULL, "UDP port; 0 = any free port (default 3000)" },
    { "peer_ttl", CFG_INT, OFF(peer_ttl), 1, 86400, NULL,
      "seconds without announce/pulse before a peer expires (default 300)" },
    { "compat", CFG_ENUM, OFF(compat), 0, 0, config_compat_names,
      "reply vocabulary: readme or sobani-app (default readme)" },
    { "max_peers", CFG_INT, OFF(max_peers), 1, 100000000, NULL,
      "live peers at most; beyond: error full (default 1000000)" },
    { "max_datagram", CFG_INT, OFF(max_datagram), 256, 65507, NULL,
      "larger datagrams are dropped (default 1472)" },
    { "token_key", CFG_HEXKEY, OFF(token_key_hex), 0, 0, NULL,
      "64 hex chars keying session tokens; \"\" = random per process" },
    { "log_level", CFG_ENUM, OFF(log_level), 0, 0, config_log_names,
      "error, warn, info or debug (default info)" },
    { "ws_port", CFG_INT, OFF(ws_port), 0, 65535, NULL,
      "TCP port for HTTP and WebSocket; 0 = same number as the UDP port (default 0)" },
    { "ws_ping_interval", CFG_INT, OFF(ws_ping_interval), 1, 3600, NULL,
      "seconds between WebSocket pings; silent for 2 intervals = closed (default 20)" },
    { "max_connections", CFG_INT, OFF(max_connections), 1, 1000000, NULL,
      "TCP connections at most (default 10000)" },
    { "ws_max_message", CFG_INT, OFF(ws_max_message), 256, 16777216, NULL,
      "bytes of one WebSocket message; more = close 1009 (default 65536)" },
    { "ws_max_queued", CFG_INT, OFF(ws_max_queued), 4096, 1073741824, NULL,
      "bytes queued to a slow WebSocket reader; more = close 1008 (default 1048576)" },
    { "relay_max_bytes", CFG_INT, OFF(relay_max_bytes), 1, 1048576, NULL,
      "bytes of one relay payload; more = error tooLarge (default 16384)" },
    { "relay_bytes_per_sec", CFG_INT, OFF(relay_bytes_per_sec), 0, 1000000000, NULL,
      "relayed bytes per identity per second, 0 = unlimited (default 65536)" },
    { "probe_bind", CFG_IP_OPT, OFF(probe_bind), 0, 0, NULL,
      "second local IP for NAT detection probes; \"\" = bind's (default \"\")" },
    { "probe_port", CFG_INT, OFF(probe_port), 0, 65535, NULL,
      "UDP port for NAT detection probes; 0 = none, or the UDP port's number if probe_bind is set" },
    { "rate_requests_per_sec", CFG_INT, OFF(rate_requests_per_sec), 0, 100000000, NULL,
      "UDP requests per source IP (WS: per connection) per second, 0 = off (default 100)" },
    { "rate_requests_burst", CFG_INT, OFF(rate_requests_burst), 1, 100000000, NULL,
      "burst of the request limit (default 200)" },
    { "rate_income_per_sec", CFG_INT, OFF(rate_income_per_sec), 0, 100000000, NULL,
      "income messages to one peer per second; over it a push gets rateLimited, 0 = off (default 5)" },
    { "rate_income_burst", CFG_INT, OFF(rate_income_burst), 1, 100000000, NULL,
      "burst of the income limit (default 20)" },
    { "rate_response_bytes_per_sec", CFG_INT, OFF(rate_response_bytes_per_sec), 0, 1000000000, NULL,
      "UDP bytes sent to one IP per second (burst 2x), 0 = off (default 65536)" },
    { "max_connections_per_ip", CFG_INT, OFF(max_connections_per_ip), 0, 1000000, NULL,
      "TCP connections per source IP; beyond: 503, 0 = off (default 512)" },
    { "rate_exempt", CFG_CIDRS, OFF(rate_exempt), 0, 0, NULL,
      "CIDRs exempt from rate limits: JSON list, or comma-separated on the command line (default [])" },
    { "retry_threshold", CFG_FRAC, OFF(retry_threshold), 0, 1, NULL,
      "fill (fraction of max_peers) above which a new UDP peer needs a retry cookie; 1 = never (default 0.5)" },
    { "access_key", CFG_SECRET, OFF(access_key), 0, 0, NULL,
      "\"\" = open; else UDP requests need \"key\" and WS upgrades ?key= or a Bearer header" },
    { "metrics_key", CFG_SECRET, OFF(metrics_key), 0, 0, NULL,
      "\"\" = /metrics open; else it needs ?key= or a Bearer header" },
    { "trusted_proxies", CFG_CIDRS, OFF(trusted_proxies), 0, 0, NULL,
      "CIDRs whose PROXY header / X-Forwarded-For give the client address (default [])" },
    { "workers", CFG_INT, OFF(workers), 1, CONFIG_WORKERS_MAX, NULL,
      "UDP worker threads, each with its own socket on the port (SO_REUSEPORT) (default 1)" },

};

#define CONFIG_NKEYS (sizeof config_keys / sizeof config_keys[0])

static int config_fail(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int config_fail(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    return -1;
}

int config_cidrs_has(const struct config_cidrs *l, const struct addr *a)
{
    for (unsigned i = 0; i < l->n; i++)
        if (addr_in_cidr(a, &l->c[i]))
            return 1;
    return 0;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->bind, sizeof c->bind, "0.0.0.0");
    c->port = 3000;
    c->peer_ttl = 300;
    c->compat = CONFIG_COMPAT_README;
    c->max_peers = 1000000;
    c->max_datagram = 1472;
    c->token_key_hex[0] = '\0';
    c->log_level = LOG_INFO;
    c->ws_port = 0;
    c->workers = 1;
    c->ws_ping_interval = 20;
    c->max_connections = 10000;
    c->ws_max_message = 65536;
    c->ws_max_queued = 1048576;
    c->relay_max_bytes = 16384;
    c->relay_bytes_per_sec = 65536;
    c->probe_bind[0] = '\0';
    c->probe_port = 0;
    c->rate_requests_per_sec = 100;
    c->rate_requests_burst = 200;
    c->rate_income_per_sec = 5;
    c->rate_income_burst = 20;
    c->rate_response_bytes_per_sec = 65536;
    c->max_connections_per_ip = 512;
    c->retry_threshold = 0.5;
}

static const struct config_key *config_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

static const char *config_type_name(const struct config_key *k)
{
    return k->type == CFG_INT    ? "an integer"
           : k->type == CFG_FRAC ? "a number"
           : k->type == CFG_CIDRS ? "a list of CIDR strings"
                                 : "a string";
}

/* Parses a comma-separated CIDR list into out. */
static int config_store_cidrs(struct config_cidrs *out, const struct config_key *k, const char *src,
                              const char *v, char *err, size_t errcap)
{
    struct config_cidrs l = { 0 };
    char item[96];
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        if (n >= sizeof item || l.n == CONFIG_CIDRS_MAX)
            return config_fail(err, errcap, "%s: %s: at most %d CIDRs of up to %zu characters",
                               src, k->name, CONFIG_CIDRS_MAX, sizeof item - 1);
        memcpy(item, p, n);
        item[n] = '\0';
        if (addr_parse_cidr(&l.c[l.n], item) != 0)
            return config_fail(err, errcap, "%s: %s: \"%.64s\" is not an IP or IP/prefix", src,
                               k->name, item);
        l.n++;
        p += n;
    }
    *out = l;
    return 0;
}

/* Stores an integer value after the range check. */
static int config_store_int(struct config *c, const struct config_key *k, const char *src,
                            long v, char *err, size_t errcap)
{
    if (v < k->min || v > k->max)
        return config_fail(err, errcap, "%s: %s: must be an integer from %ld to %ld (got %ld)",
                           src, k->name, k->min, k->max, v);
    *(long *)((char *)c + k->off) = v;
    return 0;
}

/* Stores a string-typed value (enum, IP, hex key) after validation. */
static int config_store_str(struct config *c, const struct config_key *k, const char *src,
                            const char *v, char *err, size_t errcap)
{
    switch (k->type) {
    case CFG_ENUM:
        for (long i = 0; k->choices[i]; i++) {
            if (strcmp(k->choices[i], v) == 0) {
                *(long *)((char *)c + k->off) = i;
                return 0;
            }
        }
        {
            char list[128] = "";
            for (size_t i = 0; k->choices[i]; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, k->choices[i], sizeof list - strlen(list) - 1);
            }
            return config_fail(err, errcap, "%s: %s: must be one of %s (got \"%.64s\")", src,
                               k->name, list, v);
        }
    case CFG_IP: {
        struct addr a;
        if (strlen(v) >= sizeof c->bind || addr_parse_ip(&a, v, 0) != 0)
            return config_fail(err, errcap,
                               "%s: %s: must be an IPv4 or IPv6 address literal (got \"%.64s\")",
                               src, k->name, v);
        snprintf((char *)c + k->off, sizeof c->bind, "%s", v);
        return 0;
    }
    case CFG_IP_OPT: {
        struct addr a;
        if (v[0] != '\0' && (strlen(v) >= sizeof c->bind || addr_parse_ip(&a, v, 0) != 0))
            return config_fail(err, errcap,
                               "%s: %s: must be \"\" or an IPv4 or IPv6 address literal (got \"%.64s\")",
                               src, k->name, v);
        snprintf((char *)c + k->off, sizeof c->bind, "%s", v);
        return 0;
    }
    case CFG_SECRET: {
        size_t n = strlen(v);
        int ok = n <= CONFIG_SECRET_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = v[i] > 0x20 && v[i] < 0x7f;
        if (!ok)
            return config_fail(err, errcap,
                               "%s: %s: must be at most %d printable ASCII characters, no spaces",
                               src, k->name, CONFIG_SECRET_MAX);
        snprintf((char *)c + k->off, CONFIG_SECRET_MAX + 1, "%s", v);
        return 0;
    }
    case CFG_FRAC: {
        char *end = NULL;
        errno = 0;
        double d = strtod(v, &end);
        if (v[0] == '\0' || *end != '\0' || errno == ERANGE || !(d >= 0 && d <= 1))
            return config_fail(err, errcap, "%s: %s: must be a number from 0 to 1 (got \"%.64s\")",
                               src, k->name, v);
        *(double *)((char *)c + k->off) = d;
        return 0;
    }
    case CFG_CIDRS:
        return config_store_cidrs((struct config_cidrs *)((char *)c + k->off), k, src, v, err, errcap);
    case CFG_HEXKEY: {
        struct ids_key key;
        if (v[0] != '\0' && ids_key_from_hex(&key, v) != 0)
            return config_fail(err, errcap,
                               "%s: %s: must be \"\" or exactly 64 hex characters (got %zu characters)",
                               src, k->name, strlen(v));
        snprintf((char *)c + k->off, sizeof c->token_key_hex, "%s", v);
        return 0;
    }
    case CFG_INT:
        break;
    }
    return config_fail(err, errcap, "%s: %s: internal type error", src, k->name);
}

static int config_set_json(struct config *c, const char *src, const cJSON *item, char *err,
                           size_t errcap)
{
    const struct config_key *k = config_find(item->string);
    if (!k)
        return config_fail(err, errcap, "%s: unknown key \"%.64s\"", src, item->string);
    if (k->type == CFG_INT) {
        double d = item->valuedouble;
        if (!cJSON_IsNumber(item))
            return config_fail(err, errcap, "%s: %s: must be %s", src, k->name, config_type_name(k));
        /* (double)LONG_MAX is 2^63, one past LONG_MAX: converting it would be UB. */
        if (!isfinite(d) || d != floor(d) || d < (double)LONG_MIN || d >= (double)LONG_MAX)
            return config_fail(err, errcap, "%s: %s: must be an integer from %ld to %ld (got %g)",
                               src, k->name, k->min, k->max, d);
        return config_store_int(c, k, src, (long)d, err, errcap);
    }
    if (k->type == CFG_FRAC) {
        if (!cJSON_IsNumber(item) || !(item->valuedouble >= 0 && item->valuedouble <= 1))
            return config_fail(err, errcap, "%s: %s: must be a number from 0 to 1", src, k->name);
        *(double *)((char *)c + k->off) = item->valuedouble;
        return 0;
    }
    if (k->type == CFG_CIDRS) {
        /* A JSON list of strings; each goes through the same parser as a flag. */
        char list[CONFIG_CIDRS_MAX * 96];
        size_t used = 0;
        const cJSON *e;
        if (!cJSON_IsArray(item))
            return config_fail(err, errcap, "%s: %s: must be %s", src, k->name, config_type_name(k));
        list[0] = '\0';
        cJSON_ArrayForEach(e, item)
        {
            if (!cJSON_IsString(e) || strchr(e->valuestring, ',') || strchr(e->valuestring, ' '))
                return config_fail(err, errcap, "%s: %s: must be %s", src, k->name,
                                   config_type_name(k));
            size_t n = strlen(e->valuestring);
            if (used + n + 2 > sizeof list)
                return config_fail(err, errcap, "%s: %s: at most %d CIDRs", src, k->name,
                                   CONFIG_CIDRS_MAX);
            memcpy(list + used, e->valuestring, n);
            used += n;
            list[used++] = ',';
            list[used] = '\0';
        }
        return config_store_cidrs((struct config_cidrs *)((char *)c + k->off), k, src, list, err,
                                  errcap);
    }
    if (!cJSON_IsString(item))
        return config_fail(err, errcap, "%s: %s: must be %s", src, k->name, config_type_name(k));
    return config_store_str(c, k, src, item->valuestring, err, errcap);
}

int config_load_file(struct config *c, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return config_fail(err, errcap, "%s: cannot open: %s", path, strerror(errno));
    char *buf = xmalloc(CONFIG_FILE_MAX + 1);
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || n > CONFIG_FILE_MAX) {
        free(buf);
        return config_fail(err, errcap, "%s: %s", path,
                           rerr ? "read error" : "larger than 1 MiB");
    }
    buf[n] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, n + 1, &end, 1);
    if (!root || !cJSON_IsObject(root)) {
        if (!root)
            config_fail(err, errcap, "%s: not valid JSON (near byte %zu)", path,
                        end ? (size_t)(end - buf) : 0);
        else
            config_fail(err, errcap, "%s: must be one JSON object", path);
        cJSON_Delete(root);
        free(buf);
        return -1;
    }
    int rc = 0;
    for (const cJSON *it = root->child; it && rc == 0; it = it->next)
        rc = config_set_json(c, path, it, err, errcap);
    cJSON_Delete(root);
    free(buf);
    return rc;
}

/* "peer_ttl" -> "--peer-ttl" into out (cap bytes, truncated to fit). */
static void config_flag_of(const char *key, char *out, size_t cap)
{
    size_t n = 0;
    out[n++] = '-';
    out[n++] = '-';
    for (; *key && n + 1 < cap; key++)
        out[n++] = *key == '_' ? '-' : *key;
    out[n] = '\0';
}

/* Sets k from its textual value (a flag or an environment variable). */
static int config_set_value(struct config *c, const struct config_key *k, const char *src,
                            const char *value, char *err, size_t errcap)
{
    if (k->type != CFG_INT)
        return config_store_str(c, k, src, value, err, errcap);
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (value[0] == '\0' || *end != '\0' || errno == ERANGE)
        return config_fail(err, errcap, "%s: %s: must be an integer from %ld to %ld (got \"%.64s\")",
                           src, k->name, k->min, k->max, value);
    return config_store_int(c, k, src, v, err, errcap);
}

int config_set_text(struct config *c, const char *key, const char *value, char *err, size_t errcap)
{
    const struct config_key *k = config_find(key);
    char src[80];
    config_flag_of(key, src, sizeof src);
    if (!k)
        return config_fail(err, errcap, "unknown option %s", src);
    return config_set_value(c, k, src, value, err, errcap);
}

int config_finish(struct config *c, char *err, size_t errcap)
{
    if (c->token_key_hex[0]) {
        if (ids_key_from_hex(&c->token_key, c->token_key_hex) != 0)
            return config_fail(err, errcap, "token_key: must be exactly 64 hex characters");
        c->token_key_set = 1;
    } else {
        ids_key_random(&c->token_key);
        c->token_key_set = 0;
    }
    return 0;
}

/* "--peer-ttl" -> "peer_ttl" (into out); returns 0, or -1 if arg is no long flag. */
static int config_flag_name(const char *arg, char *out, size_t cap, const char **inline_value)
{
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return -1;
    arg += 2;
    size_t i = 0;
    *inline_value = NULL;
    for (; *arg && i + 1 < cap; arg++) {
        if (*arg == '=') {
            *inline_value = arg + 1;
            break;
        }
        out[i++] = *arg == '-' ? '_' : *arg;
    }
    out[i] = '\0';
    return 0;
}

extern char **environ;

int config_from_env(struct config *c, char *const *envp, char *err, size_t errcap)
{
    static const char prefix[] = "PUNCHD_";
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *name = *e + sizeof prefix - 1, *eq = strchr(name, '=');
        char key[64], src[96];
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        if (!eq || n == 0 || n >= sizeof key)
            return config_fail(err, errcap, "environment: unknown variable %.80s", *e);
        int upper = 1; /* PUNCHD_PEER_TTL, never PUNCHD_peer_ttl */
        for (size_t i = 0; i < n; i++) {
            upper &= !(name[i] >= 'a' && name[i] <= 'z');
            key[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
        }
        key[n] = '\0';
        snprintf(src, sizeof src, "environment PUNCHD_%.*s", (int)n, name);
        const struct config_key *k = config_find(key);
        if (!k || !upper)
            return config_fail(err, errcap, "%s: unknown key (see --help)", src);
        if (config_set_value(c, k, src, eq + 1, err, errcap) != 0)
            return -1;
    }
    return 0;
}

int config_from_args(struct config *c, int argc, char **argv, char *err, size_t errcap)
{
    const char *config_path = NULL;
    char name[80];
    const char *val;
    int health = 0;

    config_defaults(c);
    /* First pass: --help, --version, --config; and reject malformed flags early. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return CONFIG_CLI_HELP;
        if (strcmp(argv[i], "--version") == 0)
            return CONFIG_CLI_VERSION;
        if (strcmp(argv[i], "--health") == 0) {
            health = 1;
            continue;
        }
        if (config_flag_name(argv[i], name, sizeof name, &val) != 0)
            return config_fail(err, errcap, "unexpected argument \"%.64s\" (see --help)", argv[i]);
        if (!val) {
            if (i + 1 >= argc)
                return config_fail(err, errcap, "%s needs a value", argv[i]);
            val = argv[++i];
        }
        if (strcmp(name, "config") == 0)
            config_path = val;
    }
    if (config_path) {
        if (config_load_file(c, config_path, err, errcap) != 0)
            return -1;
    } else if (access("config.json", F_OK) == 0) {
        if (config_load_file(c, "config.json", err, errcap) != 0)
            return -1;
    }
    /* Containers set PUNCHD_<KEY>: above the file, below the flags. */
    if (config_from_env(c, environ, err, errcap) != 0)
        return -1;
    /* Second pass: flags override the file. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--health") == 0)
            continue;
        config_flag_name(argv[i], name, sizeof name, &val);
        if (!val)
            val = argv[++i];
        if (strcmp(name, "config") == 0)
            continue;
        if (config_set_text(c, name, val, err, errcap) != 0)
            return -1;
    }
    if (config_finish(c, err, errcap) != 0)
        return -1;
    return health ? CONFIG_CLI_HEALTH : CONFIG_CLI_RUN;
}

void config_usage(void *file)
{
    FILE *f = file;
    fprintf(f,
            "punchd %s - NAT rendezvous tracker (sobani protocol over UDP)\n\n"
            "usage: punchd [--config FILE] [--KEY VALUE ...] [--help] [--version] [--health]\n\n"
            "  --config FILE        JSON config file (default ./config.json if present)\n"
            "  --health             check a running punchd (GET /healthz on its TCP port): exit 0 if healthy\n",
            PUNCHD_VERSION);
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        char flag[64];
        config_flag_of(config_keys[i].name, flag, sizeof flag);
        fprintf(f, "  %-20s %s\n", flag, config_keys[i].help);
    }
    fprintf(f, "\nEvery flag is also a key of the config file (--peer-ttl = \"peer_ttl\") and an\n"
               "environment variable PUNCHD_<KEY> (PUNCHD_PEER_TTL=60); flags override the\n"
               "environment, which overrides the file. An unknown PUNCHD_* variable is an error.\n"
               "Exit status 2 on a configuration error.\n");
}
