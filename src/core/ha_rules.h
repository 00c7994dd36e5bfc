// SPDX-License-Identifier: MIT
// Home Assistant's rules for MQTT entities, as data: which device classes each platform
// accepts, which units each device class allows, which state classes fit which device class,
// and what the Energy dashboard will offer.
//
// The tables live in tests/ha/ha_rules.def (X-macros), shared with the discovery validator in
// tests/ha/, so the loader that refuses a bad entity file and the checker that audits our
// discovery output can never disagree. They reflect Home Assistant 2026.10 (see the file).
#ifndef E2M_HA_RULES_H
#define E2M_HA_RULES_H

#include <stdbool.h>

// The HA version the tables describe, e.g. "2026.10".
const char *ha_rules_version(void);

// Components (platforms) energy2mqtt publishes: sensor, binary_sensor, number, select,
// switch, button.
bool ha_component_ok(const char *component);
// Whether `component` accepts `device_class`.
bool ha_device_class_ok(const char *component, const char *device_class);
// Whether `unit` (NULL = no unit) is allowed for `device_class` on `component`. When not,
// *expected (if given) points at a human-readable list such as "mW, W, kW, MW, GW, TW" or
// "no unit".
bool ha_unit_ok(const char *component, const char *device_class, const char *unit,
                const char **expected);
bool ha_state_class_known(const char *state_class);
// Whether `state_class` (NULL = none) fits `device_class` (NULL = none) for a sensor. When
// not, *expected lists the allowed ones (or "no state_class").
bool ha_state_class_ok(const char *device_class, const char *state_class, const char **expected);
// entity_category "config" or "diagnostic" on `component` ("config" is refused on sensor and
// binary_sensor).
bool ha_entity_category_ok(const char *component, const char *category);

// Energy dashboard: the inputs a sensor with these keys would be offered for, as a
// comma-separated description (e.g. "grid, solar, battery, device consumption" for energy
// counters, "power" for power sensors), or NULL when the dashboard would not offer it.
const char *ha_energy_inputs(const char *device_class, const char *unit, const char *state_class);

#endif
