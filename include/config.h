/* config: punchd's settings, from defaults, a JSON file and command-line flags.
 *
 * Every key has one entry in a table (config.c) giving its type and range; the
 * file and the flags go through the same validation, so a value is accepted
 * or refused the same way wherever it comes from. Flags win over the file. */
#ifndef PUNCHD_CONFIG_H
#define PUNCHD_CONFIG_H

#include <stddef.h>

#include "addr.h"
#include "ids.h"
#include "log.h"

#define CONFIG_CIDRS_MAX 64   /* entries of a CIDR list key */
#define CONFIG_SECRET_MAX 128 /* bytes of access_key / metrics_key */

struct config_cidrs {
    unsigned n;
    struct addr_cidr c[CONFIG_CIDRS_MAX];
};

enum config_compat { CONFIG_COMPAT_README = 0, CONFIG_COMPAT_SOBANI_APP = 1 };

#define CONFIG_WORKERS_MAX 64

struct config {
    char bind[64];          /* IP literal to listen on */
    long port;              /* UDP port; 0 = any free port */
    long peer_ttl;          /* seconds without a request before a peer expires */
    long compat;            /* enum config_compat */
    long max_peers;         /* live peers at most */
    long max_datagram;      /* larger datagrams are dropped; none is sent larger */
    char token_key_hex[65]; /* "" or 64 hex characters */
    long log_level;         /* enum log_level */
    long ws_port;           /* TCP port for HTTP/WebSocket; 0 = the UDP socket's number */
    long ws_ping_interval;  /* seconds between server pings */
    long max_connections;   /* TCP connections at most */
    long ws_max_message;    /* bytes of one reassembled WebSocket message */
    long ws_max_queued;     /* bytes queued to a slow reader before close 1008 */
    long relay_max_bytes;   /* bytes of one relay payload as serialised */
    long relay_bytes_per_sec; /* relayed payload bytes per identity per second; 0 = no limit */
    char probe_bind[64];    /* "" = no probe address unless probe_port is set */
    long probe_port;        /* second UDP port for NAT detection; 0 = see probe_bind */
    long rate_requests_per_sec;  /* per source IP (UDP) / per connection (WS); 0 = off */
    long rate_requests_burst;
    long rate_income_per_sec;    /* income to one peer; over it the push is refused */
    long rate_income_burst;
    long rate_response_bytes_per_sec; /* UDP bytes sent to one IP; burst twice that */
    long max_connections_per_ip; /* TCP connections per source IP; 0 = off */
    struct config_cidrs rate_exempt; /* sources no rate limit applies to */
    double retry_threshold; /* fraction of max_peers above which new UDP peers need a cookie */
    char access_key[CONFIG_SECRET_MAX + 1];  /* "" = open */
    char metrics_key[CONFIG_SECRET_MAX + 1]; /* "" = /metrics open */
    struct config_cidrs trusted_proxies;     /* PROXY / X-Forwarded-For trusted from these */
    long workers;           /* UDP sockets (SO_REUSEPORT), each on its own thread and loop */
    /* Derived by config_finish(): */
    struct ids_key token_key;
    int token_key_set;
};

/* Result of config_from_args(). */
enum config_cli { CONFIG_CLI_RUN = 0, CONFIG_CLI_HELP = 1, CONFIG_CLI_VERSION = 2, CONFIG_CLI_HEALTH = 3 };

/* 1 if a's IP lies in one of l's networks (rate_exempt, trusted_proxies). */
int config_cidrs_has(const struct config_cidrs *l, const struct addr *a);

/* Fills c with the documented defaults. */
void config_defaults(struct config *c);

/* Applies the keys of the JSON object in file path. Returns 0, or -1 with a
 * one-line reason in err (naming the key) for an unreadable file, a file that
 * is not one JSON object, an unknown key, a wrong type or a value out of range. */
int config_load_file(struct config *c, const char *path, char *err, size_t errcap);

/* Sets key (config name, e.g. "peer_ttl") from its textual value, as given on
 * the command line. Returns 0, or -1 with a reason in err. */
int config_set_text(struct config *c, const char *key, const char *value, char *err, size_t errcap);

/* Applies every PUNCHD_<KEY>=value of envp (KEY = a config key upper-cased,
 * e.g. PUNCHD_PEER_TTL); values are parsed as on the command line (CIDR
 * lists comma-separated). Returns 0, or -1 with a reason in err for an
 * unknown PUNCHD_* variable or a bad value. */
int config_from_env(struct config *c, char *const *envp, char *err, size_t errcap);

/* The whole command line: defaults, then --config FILE (or ./config.json if it
 * exists and no --config is given), then the PUNCHD_* environment, then every
 * --key-name VALUE flag.
 * Returns an enum config_cli, or -1 with a reason in err. */
int config_from_args(struct config *c, int argc, char **argv, char *err, size_t errcap);

/* Checks cross-key constraints and derives fields (the token key). Returns 0
 * or -1 with a reason in err. config_from_args() calls it. */
int config_finish(struct config *c, char *err, size_t errcap);

/* Writes the --help text to f. */
void config_usage(void *file);

#endif
