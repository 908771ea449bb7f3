/* wsframe: frame-header watcher for the WebSocket input (see wsframe.h). */
#include "wsframe.h"

#include <stdint.h>
#include <string.h>

void wsframe_init(struct wsframe_scan *s) { memset(s, 0, sizeof *s); }

/* Header size once its first two bytes are known (RFC 6455 section 5.2). */
static size_t wsframe_header_len(const uint8_t h[2])
{
    size_t n = 2;
    uint8_t len7 = h[1] & 0x7f;
    if (len7 == 126)
        n += 2;
    else if (len7 == 127)
        n += 8;
    if (h[1] & 0x80)
        n += 4;
    return n;
}

static void wsframe_parse(struct wsframe_scan *s, struct wsframe_info *f)
{
    const uint8_t *h = s->hdr;
    uint8_t len7 = h[1] & 0x7f;
    uint64_t len = len7;
    if (len7 == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
    }
    f->opcode = h[0] & 0x0f;
    f->fin = (h[0] & 0x80) != 0;
    f->masked = (h[1] & 0x80) != 0;
    f->payload_len = len;
    if (!(f->opcode & 0x8)) {
        /* Saturate: a hostile 2^63-byte declaration must not wrap the sum. */
        uint64_t prev = f->opcode == 0x0 ? s->msg_len : 0;
        s->msg_len = prev + len < prev ? UINT64_MAX : prev + len;
        s->in_msg = !f->fin;
    }
    f->msg_len = s->msg_len;
}

int wsframe_at_boundary(const struct wsframe_scan *s)
{
    return s->hlen == 0 && s->skip == 0 && !s->in_msg;
}

int wsframe_scan(struct wsframe_scan *s, const uint8_t *buf, size_t len, wsframe_header_cb cb,
                 void *user)
{
    size_t i = 0, start = SIZE_MAX; /* SIZE_MAX: the header began in an earlier buf */
    while (i < len) {
        if (s->skip > 0) {
            size_t n = (uint64_t)(len - i) < s->skip ? len - i : (size_t)s->skip;
            s->skip -= n;
            i += n;
            continue;
        }
        if (s->hlen == 0)
            start = i;
        s->hdr[s->hlen++] = buf[i++];
        if (s->hlen < 2 || s->hlen < wsframe_header_len(s->hdr))
            continue;
        struct wsframe_info f;
        wsframe_parse(s, &f);
        s->hlen = 0;
        s->skip = f.payload_len;
        int rc = cb(&f, user);
        if (rc != 0) {
            s->stop = start == SIZE_MAX ? 0 : start;
            return rc;
        }
    }
    return 0;
}
