// SPDX-License-Identifier: MIT
// The one JSON state message per device: {"<entity id>": value | null, ...} plus the built-in
// diagnostics (link status, last seen, poll errors).
#ifndef E2M_PUBLISH_H
#define E2M_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/state.h"

struct device_diag {
    const char *link_status; // starting | online | offline | sleeping
    int64_t last_seen_ms;    // wall clock of the last good exchange, 0 = never
    uint64_t poll_errors;
    const bool *assumed; // per entity: the value is the last command (listed under "assumed")
};

// Returns a malloc'd compact JSON text (the caller frees it).
char *publish_state_json(const struct device_config *dev, const struct state *st,
                         const struct device_diag *diag);

// Formats a wall-clock time as ISO 8601 UTC ("2026-11-21T10:15:00Z").
void publish_iso_time(int64_t wall_ms, char *out, size_t out_size);

#endif
