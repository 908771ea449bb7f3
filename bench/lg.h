/* lg: the benchmark load generator's shared pieces — clock, latency
 * histogram, /proc readers, command arguments and JSON output.
 *
 * The load generator (bench/loadgen.c) reads one command per line on stdin
 * and answers each with one JSON object per line on stdout, so a driver can
 * keep its sockets and preloaded peers across phases. Loopback targets only:
 * every target address is checked with lg_parse_target(). */
#ifndef PUNCHD_BENCH_LG_H
#define PUNCHD_BENCH_LG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Latency histogram: 1 µs buckets up to LG_HIST_US, one overflow bucket. */
#define LG_HIST_US 100000

struct lg_hist {
    uint64_t n;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint32_t bucket[LG_HIST_US + 1];  /* [LG_HIST_US] = overflow */
};

/* Monotonic nanoseconds. */
uint64_t lg_now_ns(void);
/* CLOCK_REALTIME - CLOCK_MONOTONIC now, in ns: converts the kernel's receive
 * timestamps (SO_TIMESTAMPNS, real time) to lg_now_ns()'s clock. */
int64_t lg_real_minus_mono_ns(void);

void lg_hist_reset(struct lg_hist *h);
void lg_hist_add(struct lg_hist *h, uint64_t ns);
/* The q-quantile (0..1) in µs; 0 when empty. */
double lg_hist_quantile_us(const struct lg_hist *h, double q);
/* Writes "p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..,"max_us":..,"mean_us":..,
 * "hist":[[lo_us,count],...] (coarser bins as latency grows) to out. */
void lg_hist_json(const struct lg_hist *h, FILE *out);
/* The same with every key prefixed (e.g. "read_p99_us"), plus "n" (the
 * count); the "hist" array only if with_hist; ends without a comma. */
void lg_hist_json_as(const struct lg_hist *h, const char *prefix, int with_hist, FILE *out);

/* Server CPU seconds (utime + stime, all threads) of pid; -1 on error. */
double lg_proc_cpu_s(pid_t pid);
/* This process's own CPU seconds (user + system). */
double lg_self_cpu_s(void);
/* Seconds pid's threads (pid 0: the calling thread) spent runnable but
 * waiting for a CPU (schedstat run_delay: another task had the CPU); -1 if
 * the kernel does not say. */
double lg_proc_run_delay_s(pid_t pid);
/* The whole machine's CPU time so far from /proc/stat, in seconds summed over
 * CPUs: *busy (user, system, interrupts: not idle, iowait or steal) and
 * *steal (taken by the hypervisor for others); -1 in both if unreadable. */
void lg_machine_cpu_s(double *busy, double *steal);
/* VmRSS of pid in KiB; -1 on error. */
long lg_proc_rss_kib(pid_t pid);

/* Command arguments: "key=value" words after the command name. */
struct lg_args {
    int n;
    char *key[32];
    char *val[32];
};

/* Splits line (modified in place) into the command name (returned) and args;
 * NULL for an empty line. Words beyond 32 are ignored. The name and every
 * key and value point into line: valid while line is. */
char *lg_args_parse(char *line, struct lg_args *a);
/* The value of key (pointing into the parsed line), or def. */
const char *lg_arg_str(const struct lg_args *a, const char *key, const char *def);
/* The value of key as a number (strtol/strtod: trailing junk ignored), or def. */
long lg_arg_long(const struct lg_args *a, const char *key, long def);
double lg_arg_double(const struct lg_args *a, const char *key, double def);

/* Parses "a.b.c.d:port" into sin; the address must be in 127.0.0.0/8
 * (the benchmark never sends anywhere else). 0, or -1 if not. */
int lg_parse_target(const char *s, struct sockaddr_in *sin);

/* Prints {"error":msg} as the command's answer. */
void lg_reply_error(const char *cmd, const char *msg);

/* Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft limit. */
long lg_raise_nofile(void);

/* Small PRNG (xorshift64*): deterministic per seed, cheap per request. */
uint64_t lg_rand(uint64_t *state);

/* UDP commands (lg_udp.c); each prints one JSON line and returns 0, or -1
 * after printing an error line. The UDP state (sockets, peers) is owned by
 * lg_udp.c from udp_setup until lg_udp_free() or the next udp_setup. */
int lg_udp_setup(const struct lg_args *a);
int lg_udp_preload(const struct lg_args *a);
int lg_udp_run(const struct lg_args *a);
void lg_udp_free(void);

/* TCP / WebSocket commands (lg_tcp.c), same convention; the connections are
 * owned by lg_tcp.c from tcp_open until tcp_close (or the process ends). */
int lg_tcp_open(const struct lg_args *a);
int lg_tcp_run(const struct lg_args *a);
int lg_tcp_close(const struct lg_args *a);

#endif
