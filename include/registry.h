/* registry: the live peers, indexed by shareId and by UDP address, ordered by
 * last-seen time for expiry.
 *
 * Peers live in fixed-size chunks addressed by 32-bit index (an index stays
 * valid until the peer is removed); both indexes are chained hash tables
 * keyed with SipHash (crypto_shorthash) under a per-process random key, so
 * crafted ids or addresses cannot pile into one bucket. Every peer has the same
 * TTL, so a list ordered by last-seen (touch = move to tail) makes expiry O(1)
 * per peer: the head is always the next to expire. No operation scans the
 * table. sodium_init() must have been called. */
#ifndef PUNCHD_REGISTRY_H
#define PUNCHD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "ids.h"
#include "ratelimit.h"

#define REGISTRY_NIL UINT32_MAX     /* "no peer" index */
#define REGISTRY_MULTIADDR_MAX 256  /* bytes of opaque multiaddr kept per peer */

#define REGISTRY_CANDIDATES_MAX 8  /* self-reported addresses kept per peer */
#define REGISTRY_PUBKEY_MAX 64     /* bytes of opaque public key kept per peer */

/* NAT mapping behaviour, from comparing the main and probe mappings. */
enum peer_nat { PEER_NAT_UNKNOWN = 0, PEER_NAT_EIM, PEER_NAT_SEQUENTIAL, PEER_NAT_RANDOM };

/* Rarely used per-peer data, allocated on first use only. */
struct peer_extra {
    uint8_t nat;                /* enum peer_nat */
    uint8_t ncand;              /* entries in cand */
    uint8_t pubkey_len;         /* 0 = none */
    struct addr probe;          /* the mapping the probe socket saw (with PEER_NAT_SEQUENTIAL) */
    struct addr cand[REGISTRY_CANDIDATES_MAX];
    char pubkey[REGISTRY_PUBKEY_MAX + 1];
    struct addr override;       /* address given to others; family 0 = none */
    struct addr ws_addr;        /* TCP address of the WebSocket side */
    void *ws_conn;              /* the WebSocket side's connection (owned by ws.c) */
    struct ratelimit_bucket relay; /* relay bytes (relay_bytes_per_sec) */
    uint16_t multiaddr_len;     /* 0 = none */
    char multiaddr[REGISTRY_MULTIADDR_MAX + 1];
};

#define PEER_WS 0x01 /* flags: the peer has a WebSocket side (extra->ws_conn) */

/* One live peer. Owned by the registry; a pointer from registry_peer() is
 * valid until the next call that adds or removes a peer. */
struct peer {
    char id[IDS_LEN];         /* shareId (not NUL-terminated) */
    uint32_t id_next;         /* next in id bucket chain; free-list link when unused */
    uint32_t addr_next;       /* next in address bucket chain */
    uint32_t lru_prev;        /* neighbours in the last-seen list */
    uint32_t lru_next;
    struct addr addr;         /* observed UDP source (family 0: no UDP side) */
    uint8_t local;            /* transport's index of the local address it talks to */
    uint8_t in_use;
    uint8_t flags;            /* PEER_WS */
    uint64_t last_seen;       /* monotonic milliseconds of the last UDP request */
    struct peer_extra *extra; /* NULL until override or multiaddr is set */
};

struct registry;

/* Creates a registry for at most max_peers peers expiring after ttl_ms.
 * Owned by the caller; free with registry_free(). */
struct registry *registry_new(uint32_t max_peers, uint64_t ttl_ms);
void registry_free(struct registry *r);

uint32_t registry_count(const struct registry *r);
uint32_t registry_capacity(const struct registry *r);

/* The peer at index i (which must be a live index). */
struct peer *registry_peer(const struct registry *r, uint32_t i);

/* Index of the live peer with this shareId / UDP address, or REGISTRY_NIL.
 * id may be any bytes; only exact IDS_LEN-byte matches are found. */
uint32_t registry_find_id(const struct registry *r, const char *id, size_t len);
uint32_t registry_find_addr(const struct registry *r, const struct addr *a);

/* A hint, no effect on the registry: the lookups of a[0..n) are coming. At a
 * million peers each step of a lookup (bucket, peer record, its last-seen
 * neighbours) is a cache miss; this starts each step for the whole batch
 * before the next, so the loads overlap instead of queueing. Entries with
 * family 0 are skipped. */
void registry_prefetch_addrs(const struct registry *r, const struct addr *a, size_t n);

/* Adds a peer (id and address must not be live already) seen at now. An
 * address of family 0 adds a peer without a UDP side (not indexed by address,
 * not in the expiry order). Returns its index, or REGISTRY_NIL when full. */
uint32_t registry_add(struct registry *r, const char id[IDS_LEN], const struct addr *a,
                      uint8_t local, uint64_t now);

/* Marks peer i's UDP side seen at now (moves it to the tail of the expiry order). */
void registry_touch(struct registry *r, uint32_t i, uint64_t now);

/* Moves peer i's UDP side to a new address (must not be live for another
 * peer), or removes the UDP side when a->family is 0. A peer gaining a UDP
 * side enters the expiry order as seen at now. */
void registry_set_addr(struct registry *r, uint32_t i, const struct addr *a, uint8_t local,
                       uint64_t now);

/* Gives peer i a WebSocket side (conn != NULL, at TCP address a) or removes it. */
void registry_set_ws(struct registry *r, uint32_t i, void *conn, const struct addr *a);

/* Gives peer i a new shareId (must not be live); the old one stops resolving. */
void registry_set_id(struct registry *r, uint32_t i, const char id[IDS_LEN]);

/* Sets (a != NULL) or clears the override address of peer i. */
void registry_set_override(struct registry *r, uint32_t i, const struct addr *a);

/* Peer i's extra data, allocated (zeroed) on first use. */
struct peer_extra *registry_extra_of(struct registry *r, uint32_t i);

/* Stores len (<= REGISTRY_MULTIADDR_MAX) bytes of multiaddr for peer i. */
void registry_set_multiaddr(struct registry *r, uint32_t i, const char *s, size_t len);

/* Removes peer i; its index and id become free. */
void registry_remove(struct registry *r, uint32_t i);

/* Sets *deadline to the time the oldest peer expires. Returns 0, or -1 if empty. */
int registry_next_deadline(const struct registry *r, uint64_t *deadline);

/* Expires at most budget UDP sides whose TTL has run out at now, calling cb
 * (may be NULL) on each first. A peer that also has a WebSocket side
 * (PEER_WS) only loses its UDP side; any other is removed. Returns how many
 * were expired; if that equals budget, more may be due. */
size_t registry_expire(struct registry *r, uint64_t now, size_t budget,
                       void (*cb)(void *ctx, uint32_t i, const struct peer *p), void *ctx);

#endif
