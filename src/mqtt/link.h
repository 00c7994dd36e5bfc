// SPDX-License-Identifier: MIT
// The MQTT link: the only module that talks to paho.mqtt.c.
//
// paho runs its own threads; its callbacks only post events to the loop, so every handler
// here runs on the loop thread. Publishing never blocks: messages go to paho while fewer than
// LINK_MAX_INFLIGHT are outstanding and wait in a bounded queue otherwise, where a newer
// message for the same topic replaces an older one not yet sent. While disconnected nothing
// is queued: the daemon re-publishes its whole state (discovery, availability, values) on
// every (re)connection, which is both simpler and correct after a broker restart without
// persistence. Reconnection backs off exponentially with jitter from 1 s to 60 s.
#ifndef E2M_LINK_H
#define E2M_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct loop;

enum { LINK_MAX_INFLIGHT = 1000, LINK_QUEUE_MAX = 50000, LINK_MAX_INBOUND = 256 * 1024 };

struct link_config {
    const char *host;
    int port;
    bool tls;
    const char *ca_file, *cert_file, *key_file;
    bool tls_insecure;
    const char *username;
    const char *password; // secret: never logged
    const char *client_id;
    int keepalive_s;
    const char *will_topic; // retained QoS 1 last will
    const char *will_payload;
    // Messages on topics matching these filters are digested in paho's thread instead of
    // copied to the loop: the handler gets their length, a hash of the payload, and whether it
    // contains `digest_marker`. For many large messages the daemon only has to recognise
    // (every retained discovery config on a busy broker).
    const char *const *digest_filters;
    size_t n_digest_filters;
    const char *digest_marker;
};

struct link_handlers {
    void (*connected)(void *arg);
    void (*disconnected)(void *arg, const char *why);
    void (*message)(void *arg, const char *topic, const uint8_t *payload, size_t len,
                    bool retained);
    // A message on a digest filter (see link_config).
    void (*digest)(void *arg, const char *topic, size_t len, bool retained, uint64_t hash,
                   bool marked);
    void *arg;
};

// 64-bit FNV-1a of a payload, as digests carry it.
uint64_t link_payload_hash(const void *payload, size_t len);

struct link_stats {
    bool connected;
    uint64_t published; // handed to paho
    uint64_t dropped;   // queue full, refused by paho, or published while disconnected
    uint64_t replaced;  // queued and replaced by a newer message to the same topic, unsent
    uint64_t received;
    uint64_t oversized; // inbound messages over LINK_MAX_INBOUND, ignored (and logged, budgeted)
    uint64_t connects;  // successful connections (the first and every reconnect)
    size_t queued, inflight;
};

struct link;

// Copies the configuration. Returns NULL when paho refuses it (logged). With TLS and
// tls_insecure it logs a warning that the broker is not verified. Connection failures are
// logged with their cause (the CONNACK code, OpenSSL's reason for a failed handshake).
struct link *link_new(struct loop *loop, const struct link_config *cfg,
                      const struct link_handlers *h);
// Starts connecting; returns immediately.
void link_start(struct link *l);
// Publishes what is queued, disconnects cleanly (waiting up to timeout_ms), frees everything.
// The will is not sent on a clean disconnect, so publish any final status before this.
void link_free(struct link *l, int timeout_ms);

int link_publish(struct link *l, const char *topic, const void *payload, size_t len, int qos,
                 bool retain);
static inline int link_publish_str(struct link *l, const char *topic, const char *payload, int qos,
                                   bool retain)
{
    return link_publish(l, topic, payload, strlen(payload), qos, retain);
}
int link_subscribe(struct link *l, const char *filter, int qos);
int link_unsubscribe(struct link *l, const char *filter);
bool link_connected(const struct link *l);
void link_get_stats(const struct link *l, struct link_stats *out);

#endif
