/* fuzz_config: config loading from a JSON file and from flags.
 *
 * Input: one mode byte, then a file's text up to the first two NUL bytes,
 * then NUL-separated command-line words. The text is loaded as a config
 * file (config_load_file through a memfd, so nothing touches the disk);
 * the words go through config_set_text in pairs, (mode bit 1) through
 * config_from_env as PUNCHD_* variables, and (mode bit 0) through
 * config_from_args as a whole command line with --config pointing at the
 * same text. Whatever happens, the result is 0 with every key inside its
 * documented range, or -1 with a one-line reason; never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "fuzz.h"
#include "ids.h"

#define FUZZ_CFG_MAX_WORDS 32

static void fuzz_config_check_err(int rc, const char *err, size_t cap)
{
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
        FUZZ_CHECK(memchr(err, 0, cap) != NULL);
        FUZZ_CHECK(err[0] != '\0');
        /* Not checked: "one line". A key named "a\nb" in the file is
         * echoed as is; the file is the operator's, so that is cosmetic. */
    }
}

/* A CIDR list: bounded, each prefix valid with its host bits clear. */
static void fuzz_config_check_cidrs(const struct config_cidrs *l)
{
    FUZZ_CHECK(l->n <= CONFIG_CIDRS_MAX);
    for (unsigned i = 0; i < l->n; i++) {
        const struct addr_cidr *c = &l->c[i];
        FUZZ_CHECK(c->net.family == AF_INET || c->net.family == AF_INET6);
        FUZZ_CHECK(c->bits <= (c->net.family == AF_INET ? 32 : 128));
        FUZZ_CHECK(addr_in_cidr(&c->net, c) == 1);
        for (unsigned b = c->bits; b < 128; b++)
            FUZZ_CHECK(!(c->net.ip[b / 8] & (0x80 >> (b % 8))));
    }
}

/* Every key within the ranges the README documents. */
static void fuzz_config_check(const struct config *c)
{
    struct addr a;
    FUZZ_CHECK(memchr(c->bind, 0, sizeof c->bind) != NULL);
    FUZZ_CHECK(addr_parse_ip(&a, c->bind, 0) == 0);
    FUZZ_CHECK(c->port >= 0 && c->port <= 65535);
    FUZZ_CHECK(c->peer_ttl >= 1 && c->peer_ttl <= 86400);
    FUZZ_CHECK(c->compat == CONFIG_COMPAT_README || c->compat == CONFIG_COMPAT_SOBANI_APP);
    FUZZ_CHECK(c->max_peers >= 1 && c->max_peers <= 100000000);
    FUZZ_CHECK(c->max_datagram >= 256 && c->max_datagram <= 65507);
    FUZZ_CHECK(memchr(c->token_key_hex, 0, sizeof c->token_key_hex) != NULL);
    size_t kl = strlen(c->token_key_hex);
    FUZZ_CHECK(kl == 0 || kl == 64);
    FUZZ_CHECK(c->log_level >= 0 && c->log_level <= 3);
    FUZZ_CHECK(c->ws_port >= 0 && c->ws_port <= 65535);
    FUZZ_CHECK(c->ws_ping_interval >= 1 && c->ws_ping_interval <= 3600);
    FUZZ_CHECK(c->max_connections >= 1 && c->max_connections <= 1000000);
    FUZZ_CHECK(c->ws_max_message >= 256 && c->ws_max_message <= 16777216);
    FUZZ_CHECK(c->ws_max_queued >= 4096 && c->ws_max_queued <= 1073741824);
    FUZZ_CHECK(c->relay_max_bytes >= 1 && c->relay_max_bytes <= 1048576);
    FUZZ_CHECK(c->relay_bytes_per_sec >= 0 && c->relay_bytes_per_sec <= 1000000000);
    FUZZ_CHECK(memchr(c->probe_bind, 0, sizeof c->probe_bind) != NULL);
    FUZZ_CHECK(c->probe_bind[0] == '\0' || addr_parse_ip(&a, c->probe_bind, 0) == 0);
    FUZZ_CHECK(c->probe_port >= 0 && c->probe_port <= 65535);
    FUZZ_CHECK(c->rate_requests_per_sec >= 0 && c->rate_requests_burst >= 1);
    FUZZ_CHECK(c->rate_income_per_sec >= 0 && c->rate_income_burst >= 1);
    FUZZ_CHECK(c->rate_response_bytes_per_sec >= 0 && c->max_connections_per_ip >= 0);
    fuzz_config_check_cidrs(&c->rate_exempt);
    fuzz_config_check_cidrs(&c->trusted_proxies);
    FUZZ_CHECK(c->retry_threshold >= 0.0 && c->retry_threshold <= 1.0); /* false for NaN too */
    FUZZ_CHECK(memchr(c->access_key, 0, sizeof c->access_key) != NULL);
    FUZZ_CHECK(memchr(c->metrics_key, 0, sizeof c->metrics_key) != NULL);
}

/* A file holding text[0..len), named by a /proc path valid until closed. */
static int fuzz_config_memfd(const char *text, size_t len, char *path, size_t cap)
{
    int fd = memfd_create("punchd-fuzz-config", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

int fuzz_config_one(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_rand_reset();
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    const char *text = (const char *)data + 1;
    size_t rest = size - 1, text_len = rest;
    for (size_t i = 0; i + 1 < rest; i++) {
        if (text[i] == '\0' && text[i + 1] == '\0') {
            text_len = i;
            break;
        }
    }

    /* The words after the text, NUL-terminated copies. */
    char *words_buf = malloc(rest + 1);
    char *argv[FUZZ_CFG_MAX_WORDS + 4];
    int nwords = 0;
    if (!words_buf)
        abort();
    if (text_len + 2 <= rest) {
        size_t wlen = rest - text_len - 2;
        memcpy(words_buf, text + text_len + 2, wlen);
        words_buf[wlen] = '\0';
        for (char *p = words_buf; p < words_buf + wlen + 1 && nwords < FUZZ_CFG_MAX_WORDS;) {
            argv[3 + nwords++] = p;
            p += strlen(p) + 1;
            if (p > words_buf + wlen)
                break;
        }
    }

    char path[64], err[256];
    int fd = fuzz_config_memfd(text, text_len, path, sizeof path);
    struct config c;

    config_defaults(&c);
    fuzz_config_check(&c);
    int rc = config_load_file(&c, path, err, sizeof err);
    fuzz_config_check_err(rc, err, sizeof err);
    fuzz_config_check(&c); /* a refused file leaves valid values too */

    /* Flags as key/value pairs on top of the file's values. */
    for (int i = 0; i + 1 < nwords; i += 2) {
        rc = config_set_text(&c, argv[3 + i], argv[3 + i + 1], err, sizeof err);
        fuzz_config_check_err(rc, err, sizeof err);
        fuzz_config_check(&c);
    }
    rc = config_finish(&c, err, sizeof err);
    fuzz_config_check_err(rc, err, sizeof err);
    if (rc == 0)
        FUZZ_CHECK(c.token_key_set == (c.token_key_hex[0] != '\0'));

    if (mode & 2) {
        /* The words as an environment (PUNCHD_<KEY>=value), over the file. */
        char *envp[FUZZ_CFG_MAX_WORDS + 1];
        for (int i = 0; i < nwords; i++)
            envp[i] = argv[3 + i];
        envp[nwords] = NULL;
        struct config c3;
        config_defaults(&c3);
        rc = config_load_file(&c3, path, err, sizeof err);
        rc = config_from_env(&c3, envp, err, sizeof err);
        fuzz_config_check_err(rc, err, sizeof err);
        fuzz_config_check(&c3);
    }
    if (mode & 1) {
        /* The whole command line. --config comes from us, never from the
         * input: a fuzzed path could name a device that blocks. */
        int argc = 3;
        int skip = 0;
        for (int i = 0; i < nwords; i++)
            if (strstr(argv[3 + i], "config") || strcmp(argv[3 + i], "-h") == 0)
                skip = 1;
        if (!skip) {
            argv[0] = "punchd";
            argv[1] = "--config";
            argv[2] = path;
            argc += nwords;
            argv[argc] = NULL;
            struct config c2;
            rc = config_from_args(&c2, argc, argv, err, sizeof err);
            FUZZ_CHECK(rc >= -1 && rc <= CONFIG_CLI_HEALTH);
            if (rc == -1)
                fuzz_config_check_err(rc, err, sizeof err);
            if (rc == CONFIG_CLI_RUN || rc == CONFIG_CLI_HEALTH)
                fuzz_config_check(&c2);
        }
    }
    close(fd);
    free(words_buf);
    return 0;
}
