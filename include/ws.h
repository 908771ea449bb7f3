/* ws: the TCP edge — one listener on the UDP port's number speaking HTTP/1.1
 * (/healthz, /metrics) and WebSocket (RFC 6455, frames by wslay) on "/",
 * feeding text messages into the same tracker as UDP.
 *
 * Each connection: a bounded head buffer until the request is read (5 s
 * deadline), then a wslay context; pings every ws_ping_interval and a close
 * (1001) after two silent intervals; close 1009 / 1003 / 1007 / 1008 / 1013
 * for oversized, binary, invalid UTF-8, slow-reader and over-capacity. */
#ifndef PUNCHD_WS_H
#define PUNCHD_WS_H

#include <ev.h>
#include <stddef.h>

#include "config.h"
#include "tracker.h"

struct ws_server;

/* Listens on cfg->bind at port (cfg->ws_port, or udp_port when that is 0)
 * and installs itself as t's WebSocket sink. Returns the server (free with
 * ws_free()), or NULL with a reason in err. */
struct ws_server *ws_new(struct ev_loop *loop, const struct config *cfg, struct tracker *t,
                         unsigned udp_port, char *err, size_t errcap);
void ws_free(struct ws_server *s);

/* The address actually bound. */
const struct addr *ws_bound(const struct ws_server *s);

/* Graceful stop: no more accepts; plain HTTP connections are dropped and
 * every WebSocket gets close 1001 ("going away"). Returns how many
 * connections are still open (finishing their close); call ws_open() later
 * to see them go. */
unsigned ws_shutdown(struct ws_server *s);

/* Open TCP connections of any kind. */
unsigned ws_open(const struct ws_server *s);

/* Open WebSocket connections (upgraded; plain HTTP ones not counted). */
unsigned ws_connections(const struct ws_server *s);

#endif
