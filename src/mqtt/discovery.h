// SPDX-License-Identifier: MIT
// Home Assistant discovery payloads and the topic layout (pure: no I/O).
//
// Topics under the base topic B (default "energy2mqtt"):
//   B/bridge/availability   online|offline, retained; the last will
//   B/bridge/state          JSON diagnostics of the bridge (version, uptime, memory, ...)
//   B/bridge/republish/set  the "republish discovery" button
//   B/<device>/availability online|offline, retained
//   B/<device>/state        one JSON object with every entity's value
//   B/<device>/<entity>/set commands
// Discovery (prefix P, default "homeassistant"; node N = "<B>_<device>" made id-safe):
//   device mode: P/device/N/config, one payload with every entity as a component;
//   entity mode: P/<component>/N/<entity>/config, one payload per entity.
// Ids are built from the base topic and the device and entity ids, never from names, so they
// are stable across renames; the base topic keeps two instances on one broker apart.
#ifndef E2M_DISCOVERY_H
#define E2M_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

struct json_t;

// Facts learned at run time that belong in the device block (may be NULL).
struct disc_device_info {
    const char *serial;
    const char *sw_version;
};

// Called once per discovery message. `payload` NULL means "clear this topic".
typedef void (*disc_emit_fn)(void *arg, const char *topic, struct json_t *payload);

// Writes an id-safe version of `in` ([a-z0-9_-], everything else becomes '_') into `out`.
void discovery_sanitize(const char *in, char *out, size_t out_size);
// The node id of a device ("energy2mqtt_meter1") or of the bridge ("energy2mqtt_bridge").
void discovery_node_id(const struct mqtt_config *m, const char *device_id, char *out,
                       size_t out_size);

// Every discovery message for one device / for the bridge.
void discovery_device(const struct mqtt_config *m, const char *version,
                      const struct device_config *dev, const struct disc_device_info *info,
                      disc_emit_fn emit, void *arg);
void discovery_bridge(const struct mqtt_config *m, const char *version, disc_emit_fn emit,
                      void *arg);

// The text that tells a retained config on the broker belongs to this instance: its compact
// JSON (as published) references our bridge availability topic, `"t":"<base>/bridge/
// availability"`, which no other instance's payload contains. The MQTT link looks for it
// without copying the payload; the daemon clears configs that carry it but are no longer
// configured.
void discovery_ours_marker(const struct mqtt_config *m, char *out, size_t n);

// Built-in per-device diagnostic entities (present in every device's state).
#define DIAG_LINK_STATUS "link_status"
#define DIAG_LAST_SEEN   "last_seen"
#define DIAG_POLL_ERRORS "poll_errors"
#define DIAG_ASSUMED     "assumed"

struct model;
struct entity;
// Whether an entity's state may be the last command instead of a reading (a control of a
// field driver): its discovery carries a "source" attribute from the state's "assumed" list.
bool discovery_assumable(const struct entity *e);
bool discovery_has_assumable(const struct model *m);

#endif
