/* proto_micro: the cost of decoding one request, in ns, for the common
 * shapes: the cJSON path (proto_decode_cjson) against the fast path
 * (proto_fast_decode), and proto_decode() as the tracker calls it (fast
 * path first, cJSON when it declines), all measured in one run.
 *
 * usage: proto_micro [MS]   (MS: milliseconds per measurement, default 100)
 *
 * Each figure is the best of 7 measurements (the least disturbed by other
 * work on the machine) of as many decodes as fit in MS; the three paths
 * take turns, so a busy spell slows them alike. Before timing, each
 * shape is checked to be taken by the fast path with the cJSON path's
 * result; exit status 1 if not. Built and run by `make bench-proto`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"
#include "proto_fast.h"

#define MICRO_ROUNDS 7
#define MICRO_BATCH 256

struct micro_shape {
    const char *name;
    const char *text;
};

static const struct micro_shape micro_shapes[] = {
    { "announce", "{\"action\":\"announce\"}" },
    { "pulse+token",
      "{\"action\":\"pulse\",\"shareId\":\"A6iD7k3n\",\"token\":\"a44462b8fa5528e61f85914996694570\"}" },
    { "push", "{\"action\":\"push\",\"shareId\":\"6YLD6sV6\"}" },
    { "override-announce",
      "{\"action\":\"announce\",\"shareId\":\"A6iD7k3n\",\"token\":\"a44462b8fa5528e61f85914996694570\","
      "\"ip\":\"1.2.3.4\",\"port\":5000,\"override\":true}" },
};

enum micro_path { MICRO_CJSON = 0, MICRO_FAST, MICRO_DECODE, MICRO_NPATHS };

static char micro_scratch[2048];
static volatile unsigned micro_sink; /* keeps the decodes from being optimised away */

static double micro_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int micro_decode(enum micro_path p, const char *buf, size_t len, struct proto_req *req)
{
    switch (p) {
    case MICRO_CJSON:
        return proto_decode_cjson(buf, len, micro_scratch, sizeof micro_scratch, req);
    case MICRO_FAST:
        return proto_fast_decode(buf, len, req);
    default:
        return proto_decode(buf, len, micro_scratch, sizeof micro_scratch, req);
    }
}

/* ns per decode of buf by path p over ms milliseconds. */
static double micro_measure(enum micro_path p, const char *buf, size_t len, double ms)
{
    static struct proto_req req;
    uint64_t n = 0;
    unsigned acc = 0;
    double t0 = micro_now(), t;
    do {
        for (int i = 0; i < MICRO_BATCH; i++) {
            acc += (unsigned)micro_decode(p, buf, len, &req);
            acc += (unsigned)req.action + req.f[PROTO_K_SHAREID].len;
        }
        n += MICRO_BATCH;
        t = micro_now();
    } while (t - t0 < ms * 1e6);
    micro_sink += acc;
    return (t - t0) / (double)n;
}

/* Fills ns[path] for one shape: the best of MICRO_ROUNDS measurements per
 * path, the paths taking turns, so that a busy spell on the machine hits
 * all of them alike. */
static void micro_shape(const char *buf, size_t len, double ms, double ns[MICRO_NPATHS])
{
    for (int round = 0; round < MICRO_ROUNDS; round++)
        for (int p = 0; p < MICRO_NPATHS; p++) {
            double per = micro_measure((enum micro_path)p, buf, len, ms);
            if (round == 0 || per < ns[p])
                ns[p] = per;
        }
}

int main(int argc, char **argv)
{
    double ms = argc > 1 ? atof(argv[1]) : 100;
    if (ms <= 0)
        ms = 100;
    size_t nshapes = sizeof micro_shapes / sizeof micro_shapes[0];

    /* The figures only mean something if the fast path takes these shapes
     * and agrees with cJSON (the fuzzer and test_proto_fast check it all). */
    for (size_t s = 0; s < nshapes; s++) {
        static struct proto_req a, b;
        const char *t = micro_shapes[s].text;
        size_t len = strlen(t);
        if (proto_fast_decode(t, len, &a) != 0 ||
            proto_decode_cjson(t, len, micro_scratch, sizeof micro_scratch, &b) != 0 ||
            a.action != b.action || a.f[PROTO_K_SHAREID].len != b.f[PROTO_K_SHAREID].len) {
            fprintf(stderr, "proto_micro: the fast path does not take %s\n", micro_shapes[s].name);
            return 1;
        }
    }

    printf("proto decode, ns per request (best of %d x %.0f ms)\n", MICRO_ROUNDS, ms);
    printf("%-18s %5s %10s %10s %13s %8s\n", "shape", "bytes", "cJSON", "fast", "proto_decode",
           "speedup");
    double sum[MICRO_NPATHS] = { 0 };
    for (size_t s = 0; s < nshapes; s++) {
        const char *t = micro_shapes[s].text;
        size_t len = strlen(t);
        double ns[MICRO_NPATHS];
        micro_shape(t, len, ms, ns);
        for (int p = 0; p < MICRO_NPATHS; p++)
            sum[p] += ns[p];
        printf("%-18s %5zu %10.1f %10.1f %13.1f %7.1fx\n", micro_shapes[s].name, len, ns[MICRO_CJSON],
               ns[MICRO_FAST], ns[MICRO_DECODE], ns[MICRO_CJSON] / ns[MICRO_FAST]);
    }
    printf("%-18s %5s %10.1f %10.1f %13.1f %7.1fx\n", "mean", "", sum[MICRO_CJSON] / (double)nshapes,
           sum[MICRO_FAST] / (double)nshapes, sum[MICRO_DECODE] / (double)nshapes,
           sum[MICRO_CJSON] / sum[MICRO_FAST]);
    return 0;
}
