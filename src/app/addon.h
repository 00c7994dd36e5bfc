// SPDX-License-Identifier: MIT
// Running as a Home Assistant add-on: the Supervisor's /data/options.json becomes the
// configuration, and the broker comes from the Supervisor when the options name none.
//
// The options follow the configuration file's structure with the changes the add-on option
// schema forces: a device's `options` is one string of "key: value" pairs separated by commas
// (a YAML flow mapping without its braces; a list of "key: value" strings is accepted too),
// `disable` a string of entity ids (or a list), because the schema holds no free-form
// mappings and nests only two levels; empty strings mean "not set"; the status page listens for
// ingress on 0.0.0.0:8099, answering only the Supervisor's proxy (172.30.32.2) and the
// container's own health check.
#ifndef E2M_ADDON_H
#define E2M_ADDON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

// Size limits: the options file (real ones are a few KiB) and the Supervisor's answer (real
// ones are under 1 KiB). Anything longer is refused with the reason.
enum { ADDON_MAX_OPTIONS = 1024 * 1024, ADDON_MAX_REPLY = 64 * 1024 };

// What the Supervisor says about the MQTT service (GET /services/mqtt).
struct addon_broker {
    char host[256];
    int port;
    bool ssl;
    char username[256];
    char password[256];
    char provider[128]; // the add-on providing it (`addon`, or `app` in the v2 API)
};

// Parses the Supervisor's answer. Returns 0, or -1 with the reason in `err`.
int addon_parse_service(const char *body, struct addon_broker *out, char *err, size_t err_size);

// Builds the configuration document (JSON text, malloc'd) from the add-on options and, when
// the options leave mqtt.url empty, the broker (NULL: none known). `listen` is the status
// page's address:port, `state_dir` where counter high-water marks are kept. Returns NULL
// with the reason in `err` when no broker is known or the options are malformed.
char *addon_build_config(const json_t *options, const struct addon_broker *broker,
                         const char *listen, const char *state_dir, char *err, size_t err_size);

// Whether the options name a broker themselves (a non-empty mqtt.url).
bool addon_has_broker(const json_t *options);

// Asks the Supervisor (`base_url`, e.g. http://supervisor) for the MQTT service with `token`.
// Returns 0, or -1 with the reason in `err` (also for an answer over ADDON_MAX_REPLY).
int addon_query_supervisor(const char *base_url, const char *token, struct addon_broker *out,
                           char *err, size_t err_size);

// Everything above for the daemon: reads `options_path`, asks the Supervisor when needed
// (SUPERVISOR_TOKEN, base URL from E2M_SUPERVISOR_URL or http://supervisor; the page's
// address from E2M_ADDON_LISTEN or 0.0.0.0:8099; state in the options file's directory,
// /data). Returns the document, or NULL after logging why (an options file over
// ADDON_MAX_OPTIONS is refused unread).
char *addon_load(const char *options_path);

#endif
