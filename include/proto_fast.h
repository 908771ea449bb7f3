/* proto_fast: a strict, allocation-free decoder for the common request
 * shapes, tried by proto_decode() before cJSON.
 *
 * It handles one flat JSON object whose members are plain ASCII strings,
 * true, false, null or small integers, e.g.
 *   {"action":"pulse","shareId":"A6iD7k3n","token":"<32 hex>"}
 * with whitespace wherever JSON allows it, and produces exactly the struct
 * proto_req that the cJSON path (proto_decode_cjson) produces for the same
 * bytes. Anything else it declines, and the caller falls back to cJSON;
 * declining is always safe, so it never rejects (drops) anything itself.
 * It declines on: a backslash escape; a byte >= 0x80 or a control byte in a
 * string; a nested object or array (so "candidates" lists and relay "data"
 * go to cJSON); a number that is not an integer of at most 15 digits
 * (those are exact in a double, so the value equals strtod's); a duplicate
 * of a key punchd reads ("action", "candidates" and the enum proto_key
 * names: cJSON would keep the first); action "relay" (its "data" needs
 * cJSON); invalid JSON of any kind (truncated, trailing bytes, trailing
 * comma, bare words, ...).
 *
 * No I/O, no state, no allocation; reads only buf[0..len) (which need not be
 * NUL-terminated), in one pass plus a copy of the strings kept. */
#ifndef PUNCHD_PROTO_FAST_H
#define PUNCHD_PROTO_FAST_H

#include <stddef.h>

#include "proto.h"

/* Longest integer (in digits, sign excluded) the fast path converts:
 * 10^15 < 2^53, so every such integer is exact in a double. */
#define PROTO_FAST_DIGITS_MAX 15

/* Decodes buf[0..len) (untrusted, any bytes) into req, as proto_decode()
 * would with a large enough scratch buffer. Returns 0 when it decoded the
 * input: then req holds exactly what the cJSON path sets (action, every
 * f[k] whole, including the zeroed bytes after each string, cand =
 * PROTO_CAND_ABSENT or PROTO_CAND_BAD with ncand 0, has_data,
 * data_too_large and data_len 0; cand_addr is left alone, as cJSON leaves
 * it without a candidates list). Returns -1 when it declines (not a drop
 * reason: the caller must decode with cJSON); req is then untouched. */
int proto_fast_decode(const char *buf, size_t len, struct proto_req *req);

#endif
