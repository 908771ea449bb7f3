/* stats: counters the protocol logic keeps for logs and (later) /metrics.
 * Plain integers; every label set is bounded by the enums below. */
#ifndef PUNCHD_STATS_H
#define PUNCHD_STATS_H

#include <stdint.h>

#include "config.h"
#include "proto.h"

enum stats_transport { STATS_UDP = 0, STATS_WS = 1, STATS_TRANSPORT_COUNT };

enum stats_error {
    STATS_E_BAD_REQUEST = 0,
    STATS_E_UNKNOWN_ACTION,
    STATS_E_NOT_ANNOUNCED,
    STATS_E_UNKNOWN_SHARE_ID,
    STATS_E_UNAUTHORIZED,
    STATS_E_FULL,
    STATS_E_UNREACHABLE,
    STATS_E_TOO_LARGE,
    STATS_E_RATE_LIMITED,
    STATS_E_RETRY,
    STATS_E_COUNT
};

/* Requests refused or left unanswered at a limit (punchd_limited_total{limit}). */
enum stats_limit {
    STATS_L_REQUESTS = 0,      /* rate_requests_per_sec (UDP per IP, WS per connection) */
    STATS_L_INCOME,            /* rate_income_per_sec */
    STATS_L_RESPONSE_BYTES,    /* rate_response_bytes_per_sec: datagrams not sent */
    STATS_L_CONNECTIONS_PER_IP,/* max_connections_per_ip */
    STATS_L_CONNECTIONS,       /* max_connections */
    STATS_L_ACCESS_KEY,        /* requests without the access key */
    STATS_L_RETRY,             /* new UDP peers asked for a retry cookie */
    STATS_L_FULL,              /* max_peers reached */
    STATS_L_UNKNOWN_IDS,       /* push/relay refused: too many unknown shareIds from one IP */
    STATS_L_COUNT
};

struct stats {
    uint64_t requests[STATS_TRANSPORT_COUNT][PROTO_ACT_COUNT]; /* decoded requests by action */
    uint64_t errors[STATS_E_COUNT];          /* error replies (or app "expired") by code */
    uint64_t dropped[PROTO_DROP_COUNT];      /* datagrams dropped without reply */
    uint64_t limited[STATS_L_COUNT];         /* refusals and silences at each limit */
    uint64_t replies_too_large;              /* replies suppressed by the 4x / max_datagram rule */
    uint64_t expired;                        /* peers removed by expiry */
    uint64_t announced;                      /* new peers created */
    uint64_t pushes;                         /* successful pushes (income sent) */
    uint64_t relayed;                        /* relay messages delivered */
    uint64_t probes;                         /* NAT probes answered */
    uint64_t relayed_bytes;                  /* payload bytes delivered by relay */
    uint64_t worker_datagrams[CONFIG_WORKERS_MAX]; /* UDP datagrams read, by worker */
};

#endif
