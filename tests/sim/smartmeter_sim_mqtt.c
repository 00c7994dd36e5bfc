// SPDX-License-Identifier: MIT
// e2m-smartmeter-sim broker connection: paho's synchronous client, driven from the main loop.
//
// No paho callbacks are registered, so paho starts no thread: the main loop calls
// sm_mqtt_poll() often (every 20 ms while connected), which receives with a zero timeout, lets
// paho send its keepalives and publishes the periodic sample.
#include "smartmeter_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTClient.h>

#define POLL_MS      20
#define PAYLOAD_MAX  4096
#define RETRY_DEVSEC 10 // ESP.simpleMQTT retries every 10 s

struct sm_mqtt {
    MQTTClient client;
    bool connected;
    int64_t next_retry_ms;
    int64_t next_sample_ms;
};

static bool allowed(const struct sm_sim *s)
{
    return !s->rebooting && !s->reboot_pending && s->fault != SM_FAULT_DROP;
}

static void try_connect(struct sm_sim *s)
{
    struct sm_mqtt *m = s->mqtt;
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.keepAliveInterval = 15; // PubSubClient's default; no will, like the firmware
    o.cleansession = 1;
    o.connectTimeout = 2;
    int64_t now = sim_mono_ms();
    if (MQTTClient_connect(m->client, &o) != MQTTCLIENT_SUCCESS) {
        m->next_retry_ms = now + (int64_t)RETRY_DEVSEC * s->tick_ms;
        return;
    }
    m->connected = true;
    sm_log(s, SM_LOG_INFO, "MQTT connected to %s", s->mqtt_host);
    char filter[64];
    snprintf(filter, sizeof(filter), "powermeter/+");
    MQTTClient_subscribe(m->client, filter, 0);
    snprintf(filter, sizeof(filter), "powermeter/%s/+", s->name);
    MQTTClient_subscribe(m->client, filter, 0);
    if (s->type == SM_POWERMETER) {
        sm_mqtt_publish(s, "state/switch", s->relay ? "true" : "false", true);
    }
    m->next_sample_ms = now + (int64_t)(s->publish_interval * 1000.0);
    if (s->ready) {
        sim_out("mqtt up");
    }
}

int sm_mqtt_start(struct sm_sim *s)
{
    char uri[128];
    struct sm_mqtt *m = calloc(1, sizeof(*m));
    if (!m) {
        abort();
    }
    snprintf(uri, sizeof(uri), "tcp://%s:%d", s->mqtt_host, s->mqtt_port);
    if (MQTTClient_create(&m->client, uri, s->name, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTCLIENT_SUCCESS) {
        free(m);
        return -EINVAL;
    }
    s->mqtt = m;
    try_connect(s);
    return m->connected ? 0 : -ENOTCONN;
}

bool sm_mqtt_connected(const struct sm_sim *s)
{
    return s->mqtt && s->mqtt->connected;
}

void sm_mqtt_publish(struct sm_sim *s, const char *sub, const char *payload, bool retain)
{
    if (!sm_mqtt_connected(s)) {
        return;
    }
    char topic[128];
    snprintf(topic, sizeof(topic), "powermeter/%s/%s", s->name, sub);
    MQTTClient_publish(s->mqtt->client, topic, (int)strlen(payload), payload, 0, retain, NULL);
}

static void lost(struct sm_sim *s)
{
    struct sm_mqtt *m = s->mqtt;
    m->connected = false;
    m->next_retry_ms = sim_mono_ms() + (int64_t)RETRY_DEVSEC * s->tick_ms;
    sm_log(s, SM_LOG_INFO, "MQTT disconnected from %s", s->mqtt_host);
    sim_out("mqtt down");
}

void sm_mqtt_disconnect(struct sm_sim *s)
{
    struct sm_mqtt *m = s->mqtt;
    if (!m) {
        return;
    }
    if (m->connected) {
        MQTTClient_disconnect(m->client, 100);
        m->connected = false;
        sim_out("mqtt down");
    }
    m->next_retry_ms = 0; // reconnect as soon as the fault or the reboot is over
}

// Handles one received message; `topic` and `payload` are NUL-terminated copies.
static void deliver(struct sm_sim *s, const char *topic, const char *payload)
{
    // A message on powermeter/<x> reaches every meter; tests require that nobody sends one.
    const char *rest = strncmp(topic, "powermeter/", 11) == 0 ? topic + 11 : NULL;
    if (rest && !strchr(rest, '/')) {
        fprintf(stderr, "broadcast %s %s\n", topic, payload);
        fflush(stderr);
    }
    if (s->fault != SM_FAULT_STALL) {
        sm_handle_mqtt(s, topic, payload);
    }
}

void sm_mqtt_poll(struct sm_sim *s)
{
    struct sm_mqtt *m = s->mqtt;
    if (!m) {
        return;
    }
    int64_t now = sim_mono_ms();
    if (m->connected && !MQTTClient_isConnected(m->client)) {
        lost(s);
    }
    if (!m->connected) {
        if (allowed(s) && now >= m->next_retry_ms) {
            try_connect(s);
        }
        return;
    }
    for (int n = 0; n < 64 && m->connected; n++) {
        char *topic = NULL;
        int tlen = 0;
        MQTTClient_message *msg = NULL;
        int rc = MQTTClient_receive(m->client, &topic, &tlen, &msg, 0);
        if (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED) {
            lost(s);
            break;
        }
        if (!msg) {
            MQTTClient_free(topic);
            break;
        }
        char *t = tlen > 0 ? strndup(topic, (size_t)tlen) : strdup(topic);
        size_t plen = msg->payloadlen > PAYLOAD_MAX ? PAYLOAD_MAX : (size_t)msg->payloadlen;
        char *payload = malloc(plen + 1);
        if (!t || !payload) {
            abort();
        }
        memcpy(payload, msg->payload, plen);
        payload[plen] = '\0';
        MQTTClient_freeMessage(&msg);
        MQTTClient_free(topic);
        deliver(s, t, payload);
        free(t);
        free(payload);
    }
    now = sim_mono_ms();
    if (m->connected && s->publish_interval >= 0 && now >= m->next_sample_ms) {
        m->next_sample_ms = now + (int64_t)(s->publish_interval * 1000.0);
        if (s->fault != SM_FAULT_STALL) {
            json_t *doc = sm_sample_doc(s);
            char *text = sm_dump(doc);
            sm_mqtt_publish(s, "state/sample", text, false);
            free(text);
            json_decref(doc);
        }
    }
}

int sm_mqtt_timeout(const struct sm_sim *s)
{
    const struct sm_mqtt *m = s->mqtt;
    if (!m) {
        return -1;
    }
    if (m->connected) {
        return POLL_MS;
    }
    if (!allowed(s)) {
        return 1000; // nothing to do until the fault or the reboot ends
    }
    int64_t left = m->next_retry_ms - sim_mono_ms();
    return left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
}

void sm_mqtt_stop(struct sm_sim *s)
{
    struct sm_mqtt *m = s->mqtt;
    if (!m) {
        return;
    }
    if (m->connected) {
        MQTTClient_disconnect(m->client, 100);
    }
    MQTTClient_destroy(&m->client);
    free(m);
    s->mqtt = NULL;
}
