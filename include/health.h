/* health: `punchd --health`, the container health check — asks a running
 * punchd for GET /healthz on its own TCP port, with no tool but punchd itself
 * (the runtime image has no curl). */
#ifndef PUNCHD_HEALTH_H
#define PUNCHD_HEALTH_H

#include "config.h"

/* Connects to the TCP port cfg describes (ws_port, else port) on cfg->bind,
 * or on loopback when bind is a wildcard, and GETs /healthz within
 * timeout_ms. Returns 0 on a 200 answer, else 1 after writing why to stderr. */
int health_check(const struct config *cfg, int timeout_ms);

#endif
