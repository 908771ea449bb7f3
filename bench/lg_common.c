/* lg_common: clock, histogram, /proc readers, arguments and output for the
 * load generator (see lg.h). */
#include "lg.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t lg_real_minus_mono_ns(void)
{
    struct timespec m, r;
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_REALTIME, &r);
    return ((int64_t)r.tv_sec - (int64_t)m.tv_sec) * 1000000000 +
           ((int64_t)r.tv_nsec - (int64_t)m.tv_nsec);
}

void lg_hist_reset(struct lg_hist *h)
{
    memset(h, 0, sizeof *h);
}

void lg_hist_add(struct lg_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000u;
    h->bucket[us < LG_HIST_US ? us : LG_HIST_US]++;
    h->n++;
    h->sum_ns += ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

double lg_hist_quantile_us(const struct lg_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    /* The smallest bucket whose cumulative count reaches q of the total. */
    uint64_t want = (uint64_t)((double)h->n * q);
    if (want < 1)
        want = 1;
    uint64_t acc = 0;
    for (uint32_t i = 0; i <= LG_HIST_US; i++) {
        acc += h->bucket[i];
        if (acc >= want)
            return i < LG_HIST_US ? (double)i + 0.5 : (double)h->max_ns / 1000.0;
    }
    return (double)h->max_ns / 1000.0;
}

/* Bin width for the JSON histogram: fine where latencies usually are. */
static uint32_t lg_hist_bin_width(uint32_t us)
{
    if (us < 100)
        return 1;
    if (us < 1000)
        return 5;
    if (us < 10000)
        return 50;
    return 500;
}

void lg_hist_json(const struct lg_hist *h, FILE *out)
{
    lg_hist_json_as(h, "", 1, out);
}

void lg_hist_json_as(const struct lg_hist *h, const char *x, int with_hist, FILE *out)
{
    fprintf(out, "\"%sp50_us\":%.1f,\"%sp90_us\":%.1f,\"%sp99_us\":%.1f,\"%sp999_us\":%.1f,"
                 "\"%smax_us\":%.1f,\"%smean_us\":%.1f,\"%sn\":%llu",
            x, lg_hist_quantile_us(h, 0.50), x, lg_hist_quantile_us(h, 0.90),
            x, lg_hist_quantile_us(h, 0.99), x, lg_hist_quantile_us(h, 0.999),
            x, (double)h->max_ns / 1000.0, x, h->n ? (double)h->sum_ns / 1000.0 / (double)h->n : 0.0,
            x, (unsigned long long)h->n);
    if (!with_hist)
        return;
    fprintf(out, ",\"%shist\":[", x);
    int first = 1;
    uint32_t lo = 0;
    while (lo < LG_HIST_US) {
        uint32_t w = lg_hist_bin_width(lo);
        uint64_t c = 0;
        for (uint32_t i = lo; i < lo + w && i < LG_HIST_US; i++)
            c += h->bucket[i];
        if (c) {
            fprintf(out, "%s[%u,%llu]", first ? "" : ",", lo, (unsigned long long)c);
            first = 0;
        }
        lo += w;
    }
    if (h->bucket[LG_HIST_US])
        fprintf(out, "%s[%u,%llu]", first ? "" : ",", (unsigned)LG_HIST_US,
                (unsigned long long)h->bucket[LG_HIST_US]);
    fputc(']', out);
}

double lg_proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: the fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* after ')': state is field 3; utime and stime are fields 14 and 15. */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

double lg_self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void lg_machine_cpu_s(double *busy, double *steal)
{
    *busy = *steal = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    unsigned long long v[8] = { 0 };
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return;
    long hz = sysconf(_SC_CLK_TCK);
    double t = (double)(hz > 0 ? hz : 100);
    /* user nice system idle iowait irq softirq steal: busy leaves steal out */
    *busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / t;
    *steal = (double)v[7] / t;
}

/* Field 2 of a schedstat file (ns waiting on a run queue); -1 if unreadable. */
static double lg_schedstat_wait_s(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    unsigned long long run = 0, wait = 0;
    int ok = fscanf(f, "%llu %llu", &run, &wait) == 2;
    fclose(f);
    return ok ? (double)wait / 1e9 : -1;
}

double lg_proc_run_delay_s(pid_t pid)
{
    if (pid <= 0)
        return lg_schedstat_wait_s("/proc/thread-self/schedstat");
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    double sum = 0;
    int any = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char p2[160];
        snprintf(p2, sizeof p2, "/proc/%d/task/%.20s/schedstat", (int)pid, e->d_name);
        double w = lg_schedstat_wait_s(p2);
        if (w >= 0) {
            sum += w;
            any = 1;
        }
    }
    closedir(d);
    return any ? sum : -1;
}

long lg_proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

char *lg_args_parse(char *line, struct lg_args *a)
{
    a->n = 0;
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r\n", &save);
    if (!cmd)
        return NULL;
    for (char *w = strtok_r(NULL, " \t\r\n", &save); w && a->n < 32;
         w = strtok_r(NULL, " \t\r\n", &save)) {
        char *eq = strchr(w, '=');
        if (!eq)
            continue;
        *eq = '\0';
        a->key[a->n] = w;
        a->val[a->n] = eq + 1;
        a->n++;
    }
    return cmd;
}

const char *lg_arg_str(const struct lg_args *a, const char *key, const char *def)
{
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->key[i], key) == 0)
            return a->val[i];
    return def;
}

long lg_arg_long(const struct lg_args *a, const char *key, long def)
{
    const char *v = lg_arg_str(a, key, NULL);
    return v ? strtol(v, NULL, 10) : def;
}

double lg_arg_double(const struct lg_args *a, const char *key, double def)
{
    const char *v = lg_arg_str(a, key, NULL);
    return v ? strtod(v, NULL) : def;
}

int lg_parse_target(const char *s, struct sockaddr_in *sin)
{
    char ip[64];
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || (size_t)(colon - s) >= sizeof ip)
        return -1;
    memcpy(ip, s, (size_t)(colon - s));
    ip[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -1;
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
        return -1;
    /* loopback only: never a load towards another host */
    if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
        return -1;
    return 0;
}

void lg_reply_error(const char *cmd, const char *msg)
{
    printf("{\"cmd\":\"%s\",\"error\":\"%s\"}\n", cmd, msg);
    fflush(stdout);
}

long lg_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

uint64_t lg_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
