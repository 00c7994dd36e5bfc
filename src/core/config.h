// SPDX-License-Identifier: MIT
// The user's configuration: a YAML file, or the Home Assistant add-on's /data/options.json.
//
// Loading builds one immutable generation in an arena: MQTT settings, the devices with their
// driver settings and layered options (driver defaults, then the model file, then the
// device's own `options:`), and every entity model the devices use. All problems are
// collected with file:line:column and the key path.
#ifndef E2M_CONFIG_H
#define E2M_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/params.h"
#include "core/sched.h"

struct arena;
struct diag;
struct model;

enum discovery_mode { DISCOVERY_DEVICE, DISCOVERY_ENTITY };

// The longest password a password_file may hold (a longer file is refused, not cut short).
enum { CONFIG_MAX_SECRET = 1024 };

struct mqtt_config {
    const char *url; // as written (never contains credentials)
    const char *host;
    int port;
    bool tls;
    const char *username;
    const char *password;  // secret: never logged
    const char *client_id; // NULL: generated
    const char *base_topic;
    const char *discovery_prefix;
    enum discovery_mode discovery;
    const char *ca_file, *cert_file, *key_file;
    bool tls_insecure; // skip certificate and host name checks
    int64_t keepalive_ms;
    const char *birth_topic; // Home Assistant's status topic
    int64_t birth_delay_ms;  // re-publish after HA comes online (jittered +-50 %)
    int64_t scan_ms;         // retained-config scan at start-up
};

// The status web server (HTTP API, metrics, page). Off unless a port is configured.
struct http_config {
    const char *address; // numeric IPv4 or IPv6 address to listen on
    int port;            // 0 = off
    const char **allow;  // client addresses served (none: every client that can connect)
    size_t n_allow;
};

struct device_config {
    const char *id;
    const char *name;
    const char *model_key;
    const struct model *model;
    struct params settings;     // the driver's settings (host, port, ...)
    struct params core_options; // resolved: every timing option has a value
    struct params driver_options;
    struct sched_window *windows;
    size_t n_windows;
    bool *disabled; // per model entity: the user turned it off
    unsigned line, col;
};

struct config {
    struct arena *arena;
    const char *file;
    struct mqtt_config mqtt;
    struct http_config http;
    const char *state_dir;
    const char **entity_dirs;
    size_t n_entity_dirs;
    int log_level; // enum log_level, or -1 when not set
    struct device_config *devices;
    size_t n_devices;
};

// The longest one exchange with a device may take: connecting plus, for a read-modify-write,
// two requests. The scheduler keeps this much clear of quiet windows.
int64_t config_exchange_ms(const struct params *core_options);

// Loads `path`. Returns 0 and *out, or -EINVAL with the problems in `d` (and *out NULL).
// Logs a warning when `path` holds mqtt.password (written out, not as ${NAME}), the
// password_file or the key_file is readable by every local user.
int config_load(const char *path, struct config **out, struct diag *d);
// The same from a document in memory; `name` stands for the file in messages and decides
// the default state_dir (its directory).
int config_load_text(const char *name, const char *text, size_t len, struct config **out,
                     struct diag *d);
void config_free(struct config *c);

const struct device_config *config_find_device(const struct config *c, const char *id);

#endif
