/* wsframe: watches a client's WebSocket byte stream for frame headers, so a
 * limit can act on what a header declares before any of its payload arrives
 * (wslay reports a frame only once payload bytes are in). Sans I/O: the
 * caller passes every byte it hands to wslay, in order; nothing is copied
 * but the up to 14 bytes of a header split across reads. */
#ifndef PUNCHD_WSFRAME_H
#define PUNCHD_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

struct wsframe_info {
    uint8_t opcode;        /* 0x0 continuation, 0x1 text, 0x2 binary, 0x8.. control */
    uint8_t fin;
    uint8_t masked;
    uint64_t payload_len;  /* declared by this header */
    uint64_t msg_len;      /* declared so far by the data message this frame belongs to */
};

struct wsframe_scan {
    uint8_t hdr[14];
    uint8_t hlen;          /* header bytes collected */
    uint64_t skip;         /* payload bytes of the current frame still to pass */
    uint64_t msg_len;      /* running total of the current data message */
    uint8_t in_msg;        /* a data message's final frame is still to come */
    size_t stop;           /* after a nonzero return: bytes of buf before the header cb refused */
};

/* Called for each complete header; a nonzero return stops the scan. */
typedef int (*wsframe_header_cb)(const struct wsframe_info *f, void *user);

/* Zeroes s for a new connection. */
void wsframe_init(struct wsframe_scan *s);

/* 1 when the bytes fed so far end exactly between two messages (no header
 * or payload half-read, no fragmented message open): a frame parser fed the
 * same bytes holds no state worth keeping. */
int wsframe_at_boundary(const struct wsframe_scan *s);

/* Feeds buf[0..len) (the stream's next bytes); calls cb for each header
 * completed in it. Returns 0, or the first nonzero value cb returned (the
 * rest of buf is then not scanned). */
int wsframe_scan(struct wsframe_scan *s, const uint8_t *buf, size_t len, wsframe_header_cb cb,
                 void *user);

#endif
