/* proto: the sobani wire format. Decodes one untrusted request (one JSON
 * object) into a fixed struct, and encodes replies under a byte budget by
 * dropping optional fields in a fixed order.
 *
 * No I/O and no state: proto_decode() copies what it needs out of cJSON's tree
 * and frees it before returning, so a request never outlives its datagram
 * (the common shapes skip cJSON altogether: proto_fast.h). */
#ifndef PUNCHD_PROTO_H
#define PUNCHD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"

enum proto_action {
    PROTO_ACT_NONE = 0,  /* "action" missing or not a string */
    PROTO_ACT_ANNOUNCE,
    PROTO_ACT_PULSE,
    PROTO_ACT_ALIVE,
    PROTO_ACT_PUSH,
    PROTO_ACT_RELAY,
    PROTO_ACT_PROBE,
    PROTO_ACT_UNKNOWN,   /* a string we do not know */
    PROTO_ACT_COUNT
};

/* Why a datagram was dropped without a reply (never reflect garbage). */
enum proto_drop {
    PROTO_DROP_TOO_LARGE = 0, /* over max_datagram */
    PROTO_DROP_INVALID_UTF8,  /* not UTF-8, so not JSON text */
    PROTO_DROP_NOT_JSON,      /* not exactly one JSON value (incl. trailing bytes, raw NUL) */
    PROTO_DROP_NOT_OBJECT,    /* JSON, but not an object */
    PROTO_DROP_COUNT
};

/* The JSON type a request field arrived with. */
enum proto_type { PROTO_T_ABSENT = 0, PROTO_T_STRING, PROTO_T_BOOL, PROTO_T_NUMBER, PROTO_T_OTHER };

/* Request fields punchd reads; everything else is ignored. */
enum proto_key {
    PROTO_K_SHAREID = 0,
    PROTO_K_TOKEN,
    PROTO_K_IP,
    PROTO_K_PORT,
    PROTO_K_OVERRIDE,
    PROTO_K_MULTIADDR,
    PROTO_K_PUBKEY,
    PROTO_K_COOKIE,
    PROTO_K_KEY,
    PROTO_K_COUNT
};

/* Longest string kept per field; longer ones are flagged too_long and
 * truncated (a too-long id is simply unknown, a too-long token wrong). */
#define PROTO_STR_MAX 256

struct proto_field {
    uint8_t type;      /* enum proto_type */
    uint8_t boolval;   /* PROTO_T_BOOL: 1 = true */
    uint8_t too_long;  /* PROTO_T_STRING longer than PROTO_STR_MAX bytes */
    uint16_t len;      /* PROTO_T_STRING: bytes in s (<= PROTO_STR_MAX) */
    double num;        /* PROTO_T_NUMBER */
    char s[PROTO_STR_MAX + 1]; /* PROTO_T_STRING, NUL-terminated, never contains NUL */
};

#define PROTO_CANDIDATES_MAX 8

/* The "candidates" field: absent, a valid list, or anything else (bad). */
enum proto_cand { PROTO_CAND_ABSENT = 0, PROTO_CAND_OK, PROTO_CAND_BAD };

struct proto_req {
    enum proto_action action;
    struct proto_field f[PROTO_K_COUNT];
    uint8_t cand;              /* enum proto_cand */
    uint8_t ncand;             /* PROTO_CAND_OK: entries in cand_addr (0..PROTO_CANDIDATES_MAX) */
    struct addr cand_addr[PROTO_CANDIDATES_MAX];
    /* "data" of a relay request, re-serialised (only with proto_decode_relay): */
    uint8_t has_data;          /* the field was present (any JSON value, null too) */
    uint8_t data_too_large;    /* it serialises to more than the payload capacity */
    size_t data_len;           /* bytes in the payload buffer */
};

/* Decodes buf[0..len) into req. The common flat shapes are decoded by
 * proto_fast_decode() without cJSON; everything else by cJSON, with the
 * same result either way. scratch (capacity scratch_cap >= len + 1) may be
 * overwritten. A JSON "\u0000" escape inside a string becomes U+FFFD, so a
 * string never silently ends early. Returns 0 (req filled; req->action may be
 * PROTO_ACT_NONE), or -1 - enum proto_drop when the datagram must be dropped. */
int proto_decode(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                 struct proto_req *req);

/* proto_decode() without the fast path (proto_fast.h): always the cJSON
 * tree. Same contract and results; for tests, the differential fuzzer and
 * benchmarks, which compare the two paths. */
int proto_decode_cjson(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                       struct proto_req *req);

/* As proto_decode(), and for a relay request also serialises its "data"
 * value into payload (capacity payload_cap; NUL-terminated on success),
 * setting req->has_data, req->data_len and req->data_too_large (when it
 * would take more than payload_max bytes). Requests other than relay take
 * proto_decode()'s fast path here too; relay ones always go through cJSON. */
int proto_decode_relay(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                       struct proto_req *req, char *payload, size_t payload_cap, size_t payload_max);

/* 1 if a and b hold the same decoded request: every member a decode sets,
 * compared one by one (never padding); strings whole, including the zeroed
 * bytes after the terminator; numbers bit for bit (-0.0 is not 0.0);
 * cand_addr in full. For checking the fast path against the cJSON one. */
int proto_req_same(const struct proto_req *a, const struct proto_req *b);

/* 1 if buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int proto_utf8_valid(const unsigned char *buf, size_t len);

/* Short name of a drop reason ("too_large", "invalid_utf8", ...), for logs
 * and metric labels. */
const char *proto_drop_name(enum proto_drop d);

/* Name of an action as it appears on the wire ("announce", ...; "unknown"). */
const char *proto_action_name(enum proto_action a);

/* Reply building. Fields are dropped, to fit a byte budget, in decreasing
 * prio order: message first, addr last; PROTO_KEEP fields are never dropped. */
enum proto_prio {
    PROTO_KEEP = 0,
    PROTO_PRIO_ADDR,
    PROTO_PRIO_TOKEN,
    PROTO_PRIO_TTL,
    PROTO_PRIO_NONCE,
    PROTO_PRIO_NAT,
    PROTO_PRIO_PREDICTED,
    PROTO_PRIO_CANDIDATES,
    PROTO_PRIO_PUBKEY,
    PROTO_PRIO_MULTIADDR,
    PROTO_PRIO_TRANSPORTS,
    PROTO_PRIO_MESSAGE,
    PROTO_PRIO_COUNT
};

enum proto_kind { PROTO_STR = 0, PROTO_RAW = 1 };

#define PROTO_MAX_FIELDS 16

struct proto_out_field {
    const char *key;
    const char *val;   /* PROTO_STR: escaped on output; PROTO_RAW: written as is */
    size_t len;
    uint8_t kind;      /* enum proto_kind */
    uint8_t prio;      /* enum proto_prio */
};

struct proto_reply {
    const char *action;
    int has_data;      /* emit "data":{...} */
    int n;
    struct proto_out_field f[PROTO_MAX_FIELDS];
};

/* Starts a reply with the given action (a static string) and data object. */
void proto_reply_init(struct proto_reply *r, const char *action, int has_data);

/* Appends a field; key and val must outlive proto_encode(). Extra fields past
 * PROTO_MAX_FIELDS are ignored. */
void proto_reply_add(struct proto_reply *r, const char *key, const char *val, size_t len,
                     enum proto_kind kind, enum proto_prio prio);
void proto_reply_str(struct proto_reply *r, const char *key, const char *val, enum proto_prio prio);

/* Encodes r into out, dropping optional fields until it fits in budget bytes
 * (budget <= cap). Returns the length, or -1 if even the fields that are never
 * dropped do not fit (then nothing must be sent). */
ssize_t proto_encode(const struct proto_reply *r, char *out, size_t cap, size_t budget);

#endif
