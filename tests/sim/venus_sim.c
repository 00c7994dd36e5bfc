// SPDX-License-Identifier: MIT
// e2m-venus-sim: a Marstek Venus and the hame-relay in front of it, on a local broker.
//
// It subscribes to <prefix>/<type>/App/<mac>/ctrl like the relay does and answers each request
// on <prefix>/<type>/device/<mac>/ctrl (the prefix of the request) after --delay ms, one answer
// per request: a request that arrives while an answer is still on its way is carried out, but
// its own answer is lost, as with the relay's one-second forwarding window. See README.md.
//
// One thread: poll() on stdin and a signal self-pipe with a short timeout, then paho's
// synchronous client is polled with a zero timeout (no callbacks, so paho starts no thread).
#include "venus_sim.h"
#include "sim_util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <MQTTClient.h>

#define POLL_MS     20
#define LINE_MAX_IN 512

struct sim {
    char host[64];
    int port;
    char type[33];
    char mac[13];
    int delay_ms;
    int tick_ms;
    bool statics;
    int prefixes; // bit 0 hame_energy, bit 1 marstek_energy

    struct vs_device dev;
    MQTTClient client;
    bool connected;
    int64_t next_retry_ms, next_tick_ms;

    bool silent;
    bool pending;
    int64_t pending_due;
    char pending_topic[160];
    char pending_reply[VS_REPLY_MAX];

    unsigned long requests, replies, dropped, silent_requests;
    int64_t last_request_ms, min_gap_ms; // -1: fewer than two requests

    char in[LINE_MAX_IN];
    size_t in_len;
    bool stdin_open;
};

static const char *prefix_name(int bit)
{
    return bit == 1 ? "hame_energy" : "marstek_energy";
}

// ---- broker ---------------------------------------------------------------------------------

static void try_connect(struct sim *s)
{
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.keepAliveInterval = 20;
    o.cleansession = 1;
    o.connectTimeout = 2;
    if (MQTTClient_connect(s->client, &o) != MQTTCLIENT_SUCCESS) {
        s->next_retry_ms = sim_mono_ms() + 1000;
        return;
    }
    for (int bit = 1; bit <= 2; bit <<= 1) {
        if (!(s->prefixes & bit))
            continue;
        char filter[160];
        snprintf(filter, sizeof(filter), "%s/%s/App/%s/ctrl", prefix_name(bit), s->type, s->mac);
        MQTTClient_subscribe(s->client, filter, 0);
    }
    s->connected = true;
}

static void publish(struct sim *s, const char *topic, const char *payload)
{
    if (s->connected)
        MQTTClient_publish(s->client, topic, (int)strlen(payload), payload, 0, 0, NULL);
}

// A request from the App topic `topic` (already known to be ours).
static void on_request(struct sim *s, const char *topic, const char *payload)
{
    int64_t now = sim_mono_ms();
    if (s->requests && (s->min_gap_ms < 0 || now - s->last_request_ms < s->min_gap_ms))
        s->min_gap_ms = now - s->last_request_ms;
    s->last_request_ms = now;
    s->requests++;
    sim_out("request %s", payload);
    if (s->silent) {
        s->silent_requests++;
        return;
    }
    char reply[VS_REPLY_MAX];
    enum vs_outcome r = vs_request(&s->dev, payload, sim_wall_ms(), reply, sizeof(reply));
    switch (r) {
    case VS_WRITE: sim_out("write %s", payload); break;
    case VS_REFUSED: sim_out("refused %s", payload); break;
    case VS_FORBIDDEN:
        sim_out("forbidden %s", payload);
        fprintf(stderr, "forbidden request %s\n", payload);
        break;
    default: break;
    }
    if (!reply[0])
        return;
    if (s->pending) {
        s->dropped++; // the relay forwards one answer per request window
        sim_out("dropped %s", payload);
        return;
    }
    // device topic = the request's topic with App -> device
    const char *app = strstr(topic, "/App/");
    snprintf(s->pending_topic, sizeof(s->pending_topic), "%.*s/device/%s", (int)(app - topic),
             topic, app + 5);
    snprintf(s->pending_reply, sizeof(s->pending_reply), "%s", reply);
    s->pending = true;
    s->pending_due = now + s->delay_ms;
}

static bool our_topic(const struct sim *s, const char *topic)
{
    for (int bit = 1; bit <= 2; bit <<= 1) {
        char t[160];
        snprintf(t, sizeof(t), "%s/%s/App/%s/ctrl", prefix_name(bit), s->type, s->mac);
        if ((s->prefixes & bit) && strcmp(topic, t) == 0)
            return true;
    }
    return false;
}

static void mqtt_poll(struct sim *s)
{
    if (s->connected && !MQTTClient_isConnected(s->client)) {
        s->connected = false;
        s->next_retry_ms = sim_mono_ms() + 1000;
        sim_out("mqtt down");
    }
    if (!s->connected) {
        if (sim_mono_ms() >= s->next_retry_ms) {
            try_connect(s);
            if (s->connected)
                sim_out("mqtt up");
        }
        return;
    }
    for (int i = 0; i < 64; i++) {
        char *topic = NULL;
        int tlen = 0;
        MQTTClient_message *msg = NULL;
        int rc = MQTTClient_receive(s->client, &topic, &tlen, &msg, 0);
        if (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED) {
            s->connected = false;
            s->next_retry_ms = sim_mono_ms() + 1000;
            sim_out("mqtt down");
            return;
        }
        if (!msg) {
            MQTTClient_free(topic);
            return;
        }
        char t[256], payload[1024];
        snprintf(t, sizeof(t), "%.*s", tlen > 0 ? tlen : (int)strlen(topic), topic);
        int plen =
            msg->payloadlen < (int)sizeof(payload) - 1 ? msg->payloadlen : (int)sizeof(payload) - 1;
        memcpy(payload, msg->payload, (size_t)plen);
        payload[plen] = '\0';
        MQTTClient_freeMessage(&msg);
        MQTTClient_free(topic);
        if (our_topic(s, t))
            on_request(s, t, payload);
    }
}

// ---- control channel --------------------------------------------------------------------------

static void control(struct sim *s, const char *line, bool *quit)
{
    char cmd[32] = "", a[64] = "";
    int got = sscanf(line, "%31s %63s", cmd, a);
    if (got < 1 || cmd[0] == '#')
        return;
    if (strcmp(cmd, "quit") == 0) {
        sim_out("ok");
        *quit = true;
        return;
    }
    if (strcmp(cmd, "silent") == 0) {
        if (got != 2 || (strcmp(a, "on") != 0 && strcmp(a, "off") != 0)) {
            sim_out("err usage: silent on|off");
            return;
        }
        s->silent = strcmp(a, "on") == 0;
        if (s->silent)
            s->pending = false; // an answer on its way is lost too
        sim_out("ok");
        return;
    }
    if (strcmp(cmd, "delay") == 0) {
        int ms = atoi(a);
        if (got != 2 || ms < 0 || ms > 900) {
            sim_out("err usage: delay <0..900 ms>");
            return;
        }
        s->delay_ms = ms;
        sim_out("ok");
        return;
    }
    if (strcmp(cmd, "stats") == 0) {
        char gap[24];
        if (s->min_gap_ms < 0)
            snprintf(gap, sizeof(gap), "null");
        else
            snprintf(gap, sizeof(gap), "%lld", (long long)s->min_gap_ms);
        sim_out(
            "ok {\"requests\":%lu,\"replies\":%lu,\"dropped\":%lu,\"silent\":%lu,\"writes\":%lu,"
            "\"refused\":%lu,\"forbidden\":%lu,\"clock\":%lu,\"min_gap_ms\":%s}",
            s->requests, s->replies, s->dropped, s->silent_requests, s->dev.writes, s->dev.refused,
            s->dev.forbidden, s->dev.clock_sets, gap);
        return;
    }
    char out[VS_REPLY_MAX];
    if (vs_control(&s->dev, line, sim_wall_ms(), out, sizeof(out))) {
        sim_out("%s", out);
        return;
    }
    sim_out("err unknown command '%s'", cmd);
}

static void read_stdin(struct sim *s, bool *quit)
{
    char buf[256];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n <= 0) {
        s->stdin_open = false; // the device keeps running without a control channel
        return;
    }
    for (ssize_t i = 0; i < n && !*quit; i++) {
        if (buf[i] == '\n') {
            s->in[s->in_len] = '\0';
            control(s, s->in, quit);
            s->in_len = 0;
        } else if (s->in_len + 1 < sizeof(s->in)) {
            s->in[s->in_len++] = buf[i];
        }
    }
}

// ---- main -------------------------------------------------------------------------------------

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --mqtt HOST:PORT [--type HMG-50] [--mac aabbccddeeff] [--delay MS]\n"
            "          [--tick MS] [--static] [--month-base 0|1]\n"
            "          [--prefix hame_energy|marstek_energy|both]\n",
            argv0);
    return 2;
}

static bool mac_ok(const char *m)
{
    if (strlen(m) != 12)
        return false;
    for (const char *p = m; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    static struct sim s;
    snprintf(s.type, sizeof(s.type), "HMG-50");
    snprintf(s.mac, sizeof(s.mac), "aabbccddeeff");
    s.delay_ms = 150;
    s.tick_ms = 1000;
    s.prefixes = 3;
    s.min_gap_ms = -1;
    int month_base = 1;
    bool have_mqtt = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--static") == 0) {
            s.statics = true;
            continue;
        }
        if (!v)
            return usage(argv[0]);
        i++;
        if (strcmp(o, "--mqtt") == 0) {
            const char *colon = strrchr(v, ':');
            if (!colon || colon == v || (size_t)(colon - v) >= sizeof(s.host))
                return usage(argv[0]);
            snprintf(s.host, sizeof(s.host), "%.*s", (int)(colon - v), v);
            s.port = atoi(colon + 1);
            have_mqtt = s.port > 0 && s.port < 65536;
        } else if (strcmp(o, "--type") == 0 && strlen(v) < sizeof(s.type) && !strpbrk(v, "/+#")) {
            snprintf(s.type, sizeof(s.type), "%s", v);
        } else if (strcmp(o, "--mac") == 0 && mac_ok(v)) {
            snprintf(s.mac, sizeof(s.mac), "%s", v);
        } else if (strcmp(o, "--delay") == 0 && atoi(v) >= 0 && atoi(v) <= 900) {
            s.delay_ms = atoi(v);
        } else if (strcmp(o, "--tick") == 0 && atoi(v) >= 10) {
            s.tick_ms = atoi(v);
        } else if (strcmp(o, "--month-base") == 0 && (!strcmp(v, "0") || !strcmp(v, "1"))) {
            month_base = atoi(v);
        } else if (strcmp(o, "--prefix") == 0) {
            s.prefixes = !strcmp(v, "hame_energy")      ? 1
                         : !strcmp(v, "marstek_energy") ? 2
                         : !strcmp(v, "both")           ? 3
                                                        : 0;
            if (!s.prefixes)
                return usage(argv[0]);
        } else {
            return usage(argv[0]);
        }
    }
    if (!have_mqtt)
        return usage(argv[0]);

    int sig_fd = sim_signals_open();
    if (sig_fd < 0) {
        perror("signals");
        return 1;
    }

    vs_init(&s.dev, s.type, month_base, sim_wall_ms());
    char uri[128], id[64];
    snprintf(uri, sizeof(uri), "tcp://%s:%d", s.host, s.port);
    snprintf(id, sizeof(id), "e2m-venus-sim-%s", s.mac);
    if (MQTTClient_create(&s.client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "cannot create an MQTT client for %s\n", uri);
        return 1;
    }
    try_connect(&s);
    if (!s.connected) {
        fprintf(stderr, "cannot connect to the broker at %s\n", uri);
        MQTTClient_destroy(&s.client);
        return 1;
    }
    sim_out("ready mqtt %s %s", s.type, s.mac);
    s.stdin_open = true;
    s.next_tick_ms = sim_mono_ms() + s.tick_ms;

    bool quit = false;
    while (!quit) {
        struct pollfd fds[2] = {{.fd = sig_fd, .events = POLLIN},
                                {.fd = s.stdin_open ? STDIN_FILENO : -1, .events = POLLIN}};
        int n = poll(fds, 2, POLL_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (fds[0].revents & POLLIN))
            break;
        if (n > 0 && (fds[1].revents & (POLLIN | POLLHUP)))
            read_stdin(&s, &quit);
        mqtt_poll(&s);
        int64_t now = sim_mono_ms();
        if (s.pending && now >= s.pending_due) {
            s.pending = false;
            publish(&s, s.pending_topic, s.pending_reply);
            s.replies++;
        }
        if (now >= s.next_tick_ms) {
            if (!s.statics)
                vs_tick(&s.dev, s.tick_ms / 1000.0, sim_wall_ms());
            s.next_tick_ms += s.tick_ms;
            if (s.next_tick_ms < now)
                s.next_tick_ms = now + s.tick_ms;
        }
    }
    if (s.connected)
        MQTTClient_disconnect(s.client, 200);
    MQTTClient_destroy(&s.client);
    sim_signals_close();
    return 0;
}
