/* punch_msg: the JSON messages libpunch exchanges with punchd. Builds
 * requests (announce, pulse, push, probe, relay) and parses replies and
 * notifications into a fixed struct (see punch_int.h). Pure: no I/O.
 *
 * Replies are untrusted input: every string is length-checked before it is
 * copied, addresses must be literals, keys and nonces must decode to their
 * exact sizes, and lists are cut at their documented maximum. */
#include "punch_int.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define PUNCH_MSG_IN_MAX 65536

enum punch_nat punch_nat_parse(const char *s)
{
    if (!s)
        return PUNCH_NAT_UNKNOWN;
    if (strcmp(s, "eim") == 0)
        return PUNCH_NAT_EIM;
    if (strcmp(s, "sequential") == 0)
        return PUNCH_NAT_SEQUENTIAL;
    if (strcmp(s, "random") == 0)
        return PUNCH_NAT_RANDOM;
    return PUNCH_NAT_UNKNOWN;
}

/* The string value of o[key], or NULL (absent or not a string). */
static const char *punch_json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Copies a string of at most cap-1 bytes; longer ones are left absent. */
static void punch_copy_str(char *dst, size_t cap, const char *src)
{
    dst[0] = '\0';
    if (src && strlen(src) < cap)
        memcpy(dst, src, strlen(src) + 1);
}

static int punch_is_share_id(const char *s)
{
    if (!s || strlen(s) != PUNCH_ID_LEN)
        return 0;
    for (size_t i = 0; i < PUNCH_ID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

static void punch_copy_id(char dst[PUNCH_ID_LEN + 1], const char *s)
{
    dst[0] = '\0';
    if (punch_is_share_id(s))
        memcpy(dst, s, PUNCH_ID_LEN + 1);
}

static int punch_json_addr(const cJSON *o, const char *key, struct punch_addr *a)
{
    const char *s = punch_json_str(o, key);
    return s && punch_addr_parse(a, s, strlen(s)) == 0;
}

/* Up to max endpoints from the array o[key]; invalid entries are skipped. */
static int punch_json_addrs(const cJSON *o, const char *key, struct punch_addr *out, int max)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key);
    const cJSON *v;
    int n = 0, seen = 0;
    if (!cJSON_IsArray(arr))
        return 0;
    cJSON_ArrayForEach(v, arr) {
        if (n >= max || ++seen > 64)
            break;
        if (cJSON_IsString(v) && punch_addr_parse(&out[n], v->valuestring, strlen(v->valuestring)) == 0)
            n++;
    }
    return n;
}

/* 1 if the array o[key] holds the string s, 0 if it does not, -1 if absent. */
static int punch_json_has(const cJSON *o, const char *key, const char *s)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key);
    const cJSON *v;
    int seen = 0;
    if (!cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(v, arr) {
        if (++seen > 16)
            break;
        if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
            return 1;
    }
    return 0;
}

static void punch_parse_peer(const cJSON *d, struct punch_msg *m)
{
    punch_copy_id(m->peer_id, punch_json_str(d, "peerShareId"));
    /* Is peeraddr a UDP address? income says so in addrTransport; a push
     * reply only lists the peer's transports (peeraddr is UDP when it has
     * UDP). Neither: an older tracker, UDP only. */
    const char *at = punch_json_str(d, "addrTransport");
    int has_udp = punch_json_has(d, "transports", "udp");
    if (at)
        m->peer_udp = strcmp(at, "udp") == 0;
    else
        m->peer_udp = has_udp;
    if (m->peer_udp != 0)
        m->has_peeraddr = punch_json_addr(d, "peeraddr", &m->peeraddr);
    m->ncand = punch_json_addrs(d, "candidates", m->cand, PUNCH_MAX_CANDIDATES);
    m->npred = punch_json_addrs(d, "predicted", m->pred, PUNCH_MAX_PREDICTED);
    const char *pk = punch_json_str(d, "pubkey");
    size_t pklen = 0;
    if (pk && strlen(pk) <= 64 &&
        (sodium_base642bin(m->pubkey, sizeof m->pubkey, pk, strlen(pk), NULL, &pklen, NULL,
                           sodium_base64_VARIANT_ORIGINAL) == 0 ||
         sodium_base642bin(m->pubkey, sizeof m->pubkey, pk, strlen(pk), NULL, &pklen, NULL,
                           sodium_base64_VARIANT_URLSAFE) == 0 ||
         sodium_base642bin(m->pubkey, sizeof m->pubkey, pk, strlen(pk), NULL, &pklen, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0) &&
        pklen == PUNCH_PK_LEN)
        m->has_pubkey = 1;
    const char *nonce = punch_json_str(d, "nonce");
    size_t nlen = 0;
    if (nonce && strlen(nonce) == 2 * PUNCH_NONCE_LEN &&
        sodium_hex2bin(m->nonce, sizeof m->nonce, nonce, strlen(nonce), NULL, &nlen, NULL) == 0 &&
        nlen == PUNCH_NONCE_LEN)
        m->has_nonce = 1;
}

static enum punch_msg_action punch_action_of(const char *a)
{
    static const struct {
        const char *name;
        enum punch_msg_action act;
    } map[] = {
        {"announceReceived", PUNCH_MSG_ANNOUNCED}, {"announced", PUNCH_MSG_ANNOUNCED},
        {"pulseReceived", PUNCH_MSG_PULSED},       {"alived", PUNCH_MSG_ALIVED},
        {"pushReceived", PUNCH_MSG_PUSHED},        {"pushed", PUNCH_MSG_PUSHED},
        {"income", PUNCH_MSG_INCOME},              {"probeReceived", PUNCH_MSG_PROBED},
        {"relayed", PUNCH_MSG_RELAYED},            {"error", PUNCH_MSG_ERROR},
        {"expired", PUNCH_MSG_EXPIRED},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(a, map[i].name) == 0)
            return map[i].act;
    return PUNCH_MSG_OTHER;
}

int punch_msg_parse(const char *buf, size_t len, struct punch_msg *m)
{
    memset(m, 0, sizeof *m);
    m->peer_udp = -1;
    if (len == 0 || len > PUNCH_MSG_IN_MAX || buf[0] != '{')
        return -1;
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, buf, len);
    copy[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(copy, &end, 1);
    int rc = -1;
    /* end must be the real end: an embedded NUL would hide trailing bytes. */
    if (!cJSON_IsObject(root) || end != copy + len)
        goto out;
    const char *action = punch_json_str(root, "action");
    if (!action)
        goto out;
    rc = 0;
    m->action = punch_action_of(action);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsObject(d))
        goto out;
    punch_copy_id(m->share_id, punch_json_str(d, "shareId"));
    const char *tok = punch_json_str(d, "token");
    if (tok && strlen(tok) == PUNCH_TOKEN_LEN)
        memcpy(m->token, tok, PUNCH_TOKEN_LEN + 1);
    const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(d, "ttl");
    if (cJSON_IsNumber(ttl) && ttl->valuedouble >= 1 && ttl->valuedouble <= 86400)
        m->ttl = (long)ttl->valuedouble;
    m->has_addr = punch_json_addr(d, "addr", &m->addr);
    m->has_probe = punch_json_addr(d, "probe", &m->probe);
    const char *nat = punch_json_str(d, "nat");
    if (nat) {
        m->has_nat = 1;
        m->nat = punch_nat_parse(nat);
    }
    switch (m->action) {
    case PUNCH_MSG_PUSHED:
    case PUNCH_MSG_INCOME:
        punch_parse_peer(d, m);
        break;
    case PUNCH_MSG_RELAYED: {
        punch_copy_id(m->peer_id, punch_json_str(d, "peerShareId"));
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(d, "payload");
        const char *p = cJSON_IsObject(pl) ? punch_json_str(pl, "p") : NULL;
        if (p && strlen(p) <= PUNCH_RELAY_MAX) {
            m->relay_len = strlen(p);
            memcpy(m->relay, p, m->relay_len + 1);
        }
        break;
    }
    case PUNCH_MSG_ERROR:
        punch_copy_str(m->code, sizeof m->code, punch_json_str(d, "code"));
        punch_copy_str(m->cookie, sizeof m->cookie, punch_json_str(d, "cookie"));
        break;
    default:
        break;
    }
out:
    cJSON_Delete(root);
    free(copy);
    return rc;
}

/* ---- builders ---- */

/* Prints o compactly into out; with pad_to, adds "pad" so the result is at
 * least pad_to bytes. Frees o. Returns the length or -1. */
static int punch_msg_finish(cJSON *o, char *out, size_t cap, size_t pad_to)
{
    int rc = -1;
    if (!o || cap < 16 || cap > 1u << 24)
        goto out;
    if (!cJSON_PrintPreallocated(o, out, (int)cap - 5, 0))
        goto out;
    size_t n = strlen(out);
    const size_t pad_overhead = sizeof ",\"pad\":\"\"" - 1;
    if (pad_to > n + pad_overhead) {
        size_t k = pad_to - n - pad_overhead;
        if (k >= cap)
            goto out;
        char *pad = malloc(k + 1);
        if (!pad)
            goto out;
        memset(pad, 'x', k);
        pad[k] = '\0';
        cJSON *ok = cJSON_AddStringToObject(o, "pad", pad);
        free(pad);
        if (!ok || !cJSON_PrintPreallocated(o, out, (int)cap - 5, 0))
            goto out;
        n = strlen(out);
    }
    rc = (int)n;
out:
    cJSON_Delete(o);
    return rc;
}

static cJSON *punch_msg_new(const char *action, const char *key)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "action", action);
    if (key)
        cJSON_AddStringToObject(o, "key", key);
    return o;
}

int punch_msg_announce(char *out, size_t cap, const struct punch_announce_args *a)
{
    cJSON *o = punch_msg_new("announce", a->key);
    if (!o)
        return -1;
    if (a->share_id && a->token) {
        cJSON_AddStringToObject(o, "shareId", a->share_id);
        cJSON_AddStringToObject(o, "token", a->token);
    }
    if (a->cookie)
        cJSON_AddStringToObject(o, "cookie", a->cookie);
    if (a->ncand > 0) {
        cJSON *arr = cJSON_AddArrayToObject(o, "candidates");
        for (int i = 0; arr && i < a->ncand && i < PUNCH_MAX_CANDIDATES; i++) {
            char s[PUNCH_ADDR_STRLEN];
            punch_addr_format(&a->cand[i], s, sizeof s);
            cJSON_AddItemToArray(arr, cJSON_CreateString(s));
        }
    }
    if (a->pubkey_b64)
        cJSON_AddStringToObject(o, "pubkey", a->pubkey_b64);
    return punch_msg_finish(o, out, cap, a->pad_to);
}

int punch_msg_pulse(char *out, size_t cap, const char *key)
{
    return punch_msg_finish(punch_msg_new("pulse", key), out, cap, 0);
}

int punch_msg_push(char *out, size_t cap, const char *peer_id, const char *key, size_t pad_to)
{
    cJSON *o = punch_msg_new("push", key);
    if (o)
        cJSON_AddStringToObject(o, "shareId", peer_id);
    return punch_msg_finish(o, out, cap, pad_to);
}

int punch_msg_probe(char *out, size_t cap, const char *share_id, const char *token, const char *key)
{
    cJSON *o = punch_msg_new("probe", key);
    if (o) {
        cJSON_AddStringToObject(o, "shareId", share_id);
        cJSON_AddStringToObject(o, "token", token);
    }
    return punch_msg_finish(o, out, cap, 0);
}

int punch_msg_relay(char *out, size_t cap, const char *peer_id, const char *b64, size_t b64len,
                    const char *token)
{
    if (b64len > PUNCH_RELAY_MAX)
        return -1;
    char tmp[PUNCH_RELAY_MAX + 1];
    memcpy(tmp, b64, b64len);
    tmp[b64len] = '\0';
    cJSON *o = punch_msg_new("relay", NULL);
    if (o) {
        cJSON_AddStringToObject(o, "shareId", peer_id);
        if (token)
            cJSON_AddStringToObject(o, "token", token);
        cJSON *d = cJSON_AddObjectToObject(o, "data");
        if (d)
            cJSON_AddStringToObject(d, "p", tmp);
    }
    return punch_msg_finish(o, out, cap, 0);
}
