// SPDX-License-Identifier: MIT
// MQTT link over paho.mqtt.c's asynchronous client (see link.h).
#include "mqtt/link.h"

#include <MQTTAsync.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/mem.h"
#include "mqtt/topic.h"

struct qmsg {
    char *topic;
    void *payload;
    size_t len;
    int qos;
    bool retain;
    struct qmsg *next;      // FIFO order
    struct qmsg *hash_next; // same bucket
};

enum { QUEUE_BUCKETS = 4096 };

struct link {
    struct loop *loop;
    struct link_config cfg; // strings owned
    struct link_handlers h;
    MQTTAsync client;
    char uri[300];
    bool connected, connecting, stopping;
    struct timer reconnect_timer;
    int64_t backoff_ms;
    uint64_t rng;

    struct qmsg *head, *tail;
    struct qmsg *buckets[QUEUE_BUCKETS];
    size_t queued;

    atomic_size_t inflight;
    atomic_bool drain_posted;
    struct link_stats stats;
    struct log_budget oversized_log; // anyone who may publish can send these

    // The last OpenSSL error of a connection attempt, reported by paho's thread through
    // ssl_error_cb and taken by the failure callback; guarded by done_lock.
    char tls_error[120];

    // link_free() waits for paho's disconnect to finish on these.
    pthread_mutex_t done_lock;
    pthread_cond_t done_cond;
    bool disconnect_done;
};

// Events carried from paho's threads to the loop.
enum ev_kind { EV_CONNECTED, EV_CONNECT_FAILED, EV_LOST, EV_MESSAGE, EV_DIGEST, EV_DRAIN };

struct ev {
    struct link *l;
    enum ev_kind kind;
    char *topic;
    uint8_t *payload;
    size_t len;
    bool retained;
    uint64_t hash; // EV_DIGEST
    bool marked;   // EV_DIGEST
    char why[320];
};

static void on_event(void *arg);
static void link_connect(void *arg);

static void ev_free(void *arg)
{
    struct ev *e = arg;
    free(e->topic);
    free(e->payload);
    free(e);
}

static void post(struct link *l, struct ev *e)
{
    e->l = l;
    if (loop_post_drop(l->loop, on_event, ev_free, e) < 0)
        ev_free(e);
}

static struct ev *ev_new(enum ev_kind kind)
{
    struct ev *e = calloc(1, sizeof(*e));
    if (e)
        e->kind = kind;
    return e;
}

// ---- paho callbacks (paho's threads) --------------------------------------------------------

static void cb_connect_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    struct link *l = ctx;
    pthread_mutex_lock(&l->done_lock);
    l->tls_error[0] = '\0';
    pthread_mutex_unlock(&l->done_lock);
    struct ev *e = ev_new(EV_CONNECTED);
    if (e)
        post(l, e);
}

// What a refusal means for the user, by MQTT 3.1.1 CONNACK return code.
static const char *connack_reason(int code)
{
    switch (code) {
    case 1: return "the broker refused the protocol version";
    case 2: return "the broker refused the client id";
    case 3: return "the broker is unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorised (check username and password)";
    default: return NULL;
    }
}

// OpenSSL's error lines are "<thread>:error:<code>:<library>:<function>:<reason>:<file>:...";
// the reason ("certificate verify failed") is what the user needs. The first error of an
// attempt is the cause; later lines only add context.
static int cb_tls_error(const char *str, size_t len, void *ctx)
{
    struct link *l = ctx;
    char line[256];
    snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), str);
    const char *reason = line;
    for (int field = 0; field < 5 && reason; field++) {
        reason = strchr(reason, ':');
        if (reason)
            reason++;
    }
    if (!reason || !*reason)
        reason = line;
    size_t n = strcspn(reason, ":\n");
    pthread_mutex_lock(&l->done_lock);
    if (!l->tls_error[0])
        snprintf(l->tls_error, sizeof(l->tls_error), "%.*s", (int)n, reason);
    pthread_mutex_unlock(&l->done_lock);
    return 0;
}

static void cb_connect_fail(void *ctx, MQTTAsync_failureData *d)
{
    struct link *l = ctx;
    struct ev *e = ev_new(EV_CONNECT_FAILED);
    char tls_error[sizeof(l->tls_error)];
    pthread_mutex_lock(&l->done_lock);
    snprintf(tls_error, sizeof(tls_error), "%s", l->tls_error);
    l->tls_error[0] = '\0';
    pthread_mutex_unlock(&l->done_lock);
    if (!e)
        return;
    const char *msg = d && d->message ? d->message : "refused";
    const char *why = strncmp(msg, "CONNACK", 7) == 0 && d ? connack_reason(d->code) : NULL;
    if (why)
        snprintf(e->why, sizeof(e->why), "%s", why);
    else if (l->cfg.tls && tls_error[0])
        snprintf(e->why, sizeof(e->why),
                 "TLS handshake failed: %s (check ca_file, the broker's certificate, and "
                 "cert_file/key_file if the broker asks for a client certificate)",
                 tls_error);
    else if (l->cfg.tls)
        // A certificate that does not name the host fails after the handshake, without an
        // OpenSSL error; so does a broker that is down.
        snprintf(e->why, sizeof(e->why),
                 "%s (is the broker up, and is its certificate valid for the host name '%.40s' "
                 "in the URL?)",
                 msg, l->cfg.host);
    else
        snprintf(e->why, sizeof(e->why), "%s (code %d)", msg, d ? d->code : 0);
    post(l, e);
}

static void cb_lost(void *ctx, char *cause)
{
    struct ev *e = ev_new(EV_LOST);
    if (!e)
        return;
    snprintf(e->why, sizeof(e->why), "%s", cause ? cause : "connection lost");
    post(ctx, e);
}

uint64_t link_payload_hash(const void *payload, size_t len)
{
    const uint8_t *p = payload;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static bool contains(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k && i + k <= n; i++)
        if (p[i] == (uint8_t)needle[0] && memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

static bool digested(const struct link *l, const char *topic)
{
    for (size_t i = 0; i < l->cfg.n_digest_filters; i++)
        if (topic_matches(l->cfg.digest_filters[i], topic))
            return true;
    return false;
}

// Runs in paho's thread: copies the message to the loop, or only its digest, or (over
// LINK_MAX_INBOUND) nothing but its size.
static int cb_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct link *l = ctx;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    struct ev *e = ev_new(EV_MESSAGE);
    if (e) {
        e->topic = malloc(tlen + 1);
        e->len = len;
        e->retained = m->retained != 0;
        if (e->topic) {
            memcpy(e->topic, topic, tlen);
            e->topic[tlen] = '\0';
        }
        if (e->topic && len <= LINK_MAX_INBOUND && digested(l, e->topic)) {
            e->kind = EV_DIGEST;
            e->hash = link_payload_hash(m->payload, len);
            e->marked = l->cfg.digest_marker && contains(m->payload, len, l->cfg.digest_marker);
        } else if (e->topic && len <= LINK_MAX_INBOUND) {
            e->payload = malloc(len + 1);
            if (e->payload) {
                memcpy(e->payload, m->payload, len);
                e->payload[len] = '\0';
            }
        }
        if (e->topic && (e->payload || e->kind == EV_DIGEST || len > LINK_MAX_INBOUND)) {
            post(l, e);
            e = NULL;
        }
    }
    if (e)
        ev_free(e);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void sent(struct link *l)
{
    atomic_fetch_sub(&l->inflight, 1);
    bool expected = false;
    // Only one drain event at a time, and only when something waits.
    if (atomic_compare_exchange_strong(&l->drain_posted, &expected, true)) {
        struct ev *e = ev_new(EV_DRAIN);
        if (e)
            post(l, e);
        else
            atomic_store(&l->drain_posted, false);
    }
}

static void cb_send_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    sent(ctx);
}

static void cb_send_fail(void *ctx, MQTTAsync_failureData *d)
{
    (void)d;
    sent(ctx);
}

static void cb_disconnected(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    struct link *l = ctx;
    pthread_mutex_lock(&l->done_lock);
    l->disconnect_done = true;
    pthread_cond_signal(&l->done_cond);
    pthread_mutex_unlock(&l->done_lock);
}

static void cb_disconnect_fail(void *ctx, MQTTAsync_failureData *d)
{
    (void)d;
    cb_disconnected(ctx, NULL);
}

// ---- queue (loop thread) --------------------------------------------------------------------

static size_t topic_hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h % QUEUE_BUCKETS;
}

static void qmsg_free(struct qmsg *m)
{
    free(m->topic);
    free(m->payload);
    free(m);
}

static void queue_clear(struct link *l)
{
    struct qmsg *m = l->head;
    while (m) {
        struct qmsg *next = m->next;
        qmsg_free(m);
        l->stats.dropped++;
        m = next;
    }
    l->head = l->tail = NULL;
    memset(l->buckets, 0, sizeof(l->buckets));
    l->queued = 0;
}

static int send_now(struct link *l, const char *topic, const void *payload, size_t len, int qos,
                    bool retain)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)len;
    msg.qos = qos;
    msg.retained = retain;
    MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
    opts.onSuccess = cb_send_ok;
    opts.onFailure = cb_send_fail;
    opts.context = l;
    atomic_fetch_add(&l->inflight, 1);
    int rc = MQTTAsync_sendMessage(l->client, topic, &msg, &opts);
    if (rc != MQTTASYNC_SUCCESS) {
        atomic_fetch_sub(&l->inflight, 1);
        l->stats.dropped++;
        log_debug("mqtt", "publish to %s refused by the client: %d", topic, rc);
        return -EIO;
    }
    l->stats.published++;
    return 0;
}

static void drain(struct link *l)
{
    while (l->head && l->connected && atomic_load(&l->inflight) < LINK_MAX_INFLIGHT) {
        struct qmsg *m = l->head;
        l->head = m->next;
        if (!l->head)
            l->tail = NULL;
        struct qmsg **pp = &l->buckets[topic_hash(m->topic)];
        while (*pp != m)
            pp = &(*pp)->hash_next;
        *pp = m->hash_next;
        l->queued--;
        send_now(l, m->topic, m->payload, m->len, m->qos, m->retain);
        qmsg_free(m);
    }
}

int link_publish(struct link *l, const char *topic, const void *payload, size_t len, int qos,
                 bool retain)
{
    if (!l->connected) {
        l->stats.dropped++;
        return -ENOTCONN;
    }
    if (!l->head && atomic_load(&l->inflight) < LINK_MAX_INFLIGHT)
        return send_now(l, topic, payload, len, qos, retain);

    size_t b = topic_hash(topic);
    for (struct qmsg *m = l->buckets[b]; m; m = m->hash_next) {
        if (strcmp(m->topic, topic) == 0) {
            // Not sent yet: the newer message takes its place in the queue.
            free(m->payload);
            m->payload = xmalloc(len ? len : 1);
            memcpy(m->payload, payload, len);
            m->len = len;
            m->qos = qos;
            m->retain = retain;
            l->stats.replaced++;
            return 0;
        }
    }
    if (l->queued >= LINK_QUEUE_MAX) {
        l->stats.dropped++;
        return -ENOBUFS;
    }
    struct qmsg *m = xcalloc(1, sizeof(*m));
    m->topic = xstrdup(topic);
    m->payload = xmalloc(len ? len : 1);
    memcpy(m->payload, payload, len);
    m->len = len;
    m->qos = qos;
    m->retain = retain;
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    m->hash_next = l->buckets[b];
    l->buckets[b] = m;
    l->queued++;
    return 0;
}

// ---- connection (loop thread) ---------------------------------------------------------------

static double jitter(struct link *l)
{
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    return 0.75 + 0.5 * (double)(l->rng % 10000) / 10000.0;
}

static void schedule_reconnect(struct link *l)
{
    if (l->stopping)
        return;
    int64_t wait = (int64_t)((double)l->backoff_ms * jitter(l));
    log_info("mqtt", "reconnecting to %s:%d in %.1f s", l->cfg.host, l->cfg.port,
             (double)wait / 1000.0);
    loop_timer_set(l->loop, &l->reconnect_timer, loop_now(l->loop) + wait, link_connect, l);
    l->backoff_ms = l->backoff_ms * 2 > 60000 ? 60000 : l->backoff_ms * 2;
}

static void link_connect(void *arg)
{
    struct link *l = arg;
    if (l->connected || l->connecting || l->stopping)
        return;
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    o.keepAliveInterval = l->cfg.keepalive_s;
    o.cleansession = 1;
    o.maxInflight = 65535;
    o.connectTimeout = 10;
    o.username = l->cfg.username;
    o.password = l->cfg.password;
    o.onSuccess = cb_connect_ok;
    o.onFailure = cb_connect_fail;
    o.context = l;
    if (l->cfg.will_topic) {
        will.topicName = l->cfg.will_topic;
        will.message = l->cfg.will_payload;
        will.retained = 1;
        will.qos = 1;
        o.will = &will;
    }
    if (l->cfg.tls) {
        ssl.trustStore = l->cfg.ca_file;
        ssl.keyStore = l->cfg.cert_file;
        ssl.privateKey = l->cfg.key_file;
        ssl.enableServerCertAuth = !l->cfg.tls_insecure;
        ssl.verify = !l->cfg.tls_insecure;
        ssl.ssl_error_cb = cb_tls_error;
        ssl.ssl_error_context = l;
        o.ssl = &ssl;
    }
    int rc = MQTTAsync_connect(l->client, &o);
    if (rc != MQTTASYNC_SUCCESS) {
        log_warn("mqtt", "cannot start connecting to %s:%d (code %d)", l->cfg.host, l->cfg.port,
                 rc);
        schedule_reconnect(l);
        return;
    }
    l->connecting = true;
}

static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

// paho leaves Nagle's algorithm on and offers no socket hook. With it on, a message sent
// while the previous one is unacknowledged waits for the broker's delayed ACK (40 ms on
// Linux): a state published right after another one would arrive 40 ms late. So find the
// connection to the broker among our descriptors (its peer is the broker's address) and turn
// Nagle off. Best effort: nothing but latency depends on it.
static void broker_nodelay(const struct link *l)
{
    char port[8];
    snprintf(port, sizeof(port), "%d", l->cfg.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(l->cfg.host, port, &hints, &ai) != 0)
        return;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    int found = 0;
    while (dir && (de = readdir(dir))) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int type = 0;
        socklen_t tlen = sizeof(type);
        if (*end || fd < 0 || getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
            type != SOCK_STREAM || getpeername((int)fd, (struct sockaddr *)&peer, &len) < 0)
            continue;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
            int one = 1;
            if (same_endpoint(&peer, a->ai_addr) &&
                setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0) {
                found++;
                break;
            }
        }
    }
    if (dir)
        closedir(dir);
    freeaddrinfo(ai);
    log_debug("mqtt", "TCP_NODELAY set on %d connection(s) to the broker", found);
}

static void on_event(void *arg)
{
    struct ev *e = arg;
    struct link *l = e->l;
    switch (e->kind) {
    case EV_CONNECTED:
        l->connecting = false;
        l->connected = true;
        l->backoff_ms = 1000;
        l->stats.connects++;
        log_info("mqtt", "connected to %s:%d as %s", l->cfg.host, l->cfg.port, l->cfg.client_id);
        broker_nodelay(l);
        if (l->h.connected)
            l->h.connected(l->h.arg);
        break;
    case EV_CONNECT_FAILED:
    case EV_LOST: {
        bool was = l->connected;
        l->connecting = false;
        l->connected = false;
        queue_clear(l);
        if (e->kind == EV_LOST || was)
            log_warn("mqtt", "disconnected from %s:%d: %s", l->cfg.host, l->cfg.port, e->why);
        else
            log_warn("mqtt", "cannot connect to %s:%d: %s", l->cfg.host, l->cfg.port, e->why);
        if (was && l->h.disconnected)
            l->h.disconnected(l->h.arg, e->why);
        schedule_reconnect(l);
        break;
    }
    case EV_DIGEST:
        l->stats.received++;
        if (l->h.digest)
            l->h.digest(l->h.arg, e->topic, e->len, e->retained, e->hash, e->marked);
        break;
    case EV_MESSAGE:
        l->stats.received++;
        if (e->len > LINK_MAX_INBOUND) {
            l->stats.oversized++;
            log_budgeted(&l->oversized_log, loop_now(l->loop), LOG_LVL_WARN, "mqtt",
                         "ignoring a %zu-byte message on %s (limit %d)", e->len, e->topic,
                         LINK_MAX_INBOUND);
        } else if (l->h.message) {
            l->h.message(l->h.arg, e->topic, e->payload, e->len, e->retained);
        }
        break;
    case EV_DRAIN:
        atomic_store(&l->drain_posted, false);
        drain(l);
        break;
    }
    ev_free(e);
}

static void global_init(void)
{
    MQTTAsync_init_options init = MQTTAsync_init_options_initializer;
    init.do_openssl_init = 0;
    MQTTAsync_global_init(&init);
}

struct link *link_new(struct loop *loop, const struct link_config *cfg,
                      const struct link_handlers *h)
{
    struct link *l = xcalloc(1, sizeof(*l));
    l->loop = loop;
    l->h = *h;
    l->cfg = *cfg;
    l->cfg.host = xstrdup(cfg->host);
    l->cfg.client_id = xstrdup(cfg->client_id);
#define DUP(f) l->cfg.f = cfg->f ? xstrdup(cfg->f) : NULL
    DUP(ca_file);
    DUP(cert_file);
    DUP(key_file);
    DUP(username);
    DUP(password);
    DUP(will_topic);
    DUP(will_payload);
    DUP(digest_marker);
#undef DUP
    if (cfg->n_digest_filters) {
        char **f = xcalloc(cfg->n_digest_filters, sizeof(*f));
        for (size_t i = 0; i < cfg->n_digest_filters; i++)
            f[i] = xstrdup(cfg->digest_filters[i]);
        l->cfg.digest_filters = (const char *const *)f;
    }
    l->backoff_ms = 1000;
    l->oversized_log.burst = 10;
    l->oversized_log.per_second = 0.1;
    l->rng = (uint64_t)clock_wall_ms() ^ (uintptr_t)l;
    if (cfg->tls && cfg->tls_insecure)
        log_warn("mqtt",
                 "tls_insecure: the broker's certificate and host name are not verified; "
                 "anyone on the path to %s can pose as the broker and read the password",
                 cfg->host);
    pthread_mutex_init(&l->done_lock, NULL);
    pthread_cond_init(&l->done_cond, NULL);
    snprintf(l->uri, sizeof(l->uri), "%s://%s:%d", cfg->tls ? "ssl" : "tcp", cfg->host, cfg->port);
    // OpenSSL initialises itself when a TLS connection first needs it; paho's own eager
    // initialisation would load all of libcrypto's tables into every plain-MQTT daemon.
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.MQTTVersion = MQTTVERSION_3_1_1;
    co.sendWhileDisconnected = 0;
    // paho refuses a publish (MQTTASYNC_MAX_BUFFERED_MESSAGES) when more than this many wait
    // for its thread to write them, connected or not; the default is 100. Our own cap on
    // messages handed to paho is LINK_MAX_INFLIGHT, so paho must take that many.
    co.maxBufferedMessages = LINK_MAX_INFLIGHT + 16;
    int rc = MQTTAsync_createWithOptions(&l->client, l->uri, l->cfg.client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("mqtt", "cannot create an MQTT client for %s:%d (code %d)", cfg->host, cfg->port,
                  rc);
        link_free(l, 0);
        return NULL;
    }
    MQTTAsync_setCallbacks(l->client, l, cb_lost, cb_message, NULL);
    return l;
}

void link_start(struct link *l)
{
    link_connect(l);
}

static void free_cfg(struct link_config *c)
{
    free((char *)c->host);
    free((char *)c->client_id);
    free((char *)c->ca_file);
    free((char *)c->cert_file);
    free((char *)c->key_file);
    free((char *)c->username);
    if (c->password) // wipe the secret before giving the memory back
        memset((char *)c->password, 0, strlen(c->password));
    free((char *)c->password);
    free((char *)c->will_topic);
    free((char *)c->will_payload);
    free((char *)c->digest_marker);
    for (size_t i = 0; i < c->n_digest_filters; i++)
        free((char *)c->digest_filters[i]);
    free((void *)c->digest_filters);
}

void link_free(struct link *l, int timeout_ms)
{
    if (!l)
        return;
    l->stopping = true;
    loop_timer_cancel(l->loop, &l->reconnect_timer);
    if (l->client) {
        if (l->connected) {
            // Hand everything still queued to paho, then let it finish within the timeout.
            while (l->head) {
                struct qmsg *m = l->head;
                l->head = m->next;
                send_now(l, m->topic, m->payload, m->len, m->qos, m->retain);
                qmsg_free(m);
            }
            l->tail = NULL;
            l->queued = 0;
            MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
            d.timeout = timeout_ms;
            d.onSuccess = cb_disconnected;
            d.onFailure = cb_disconnect_fail;
            d.context = l;
            if (MQTTAsync_disconnect(l->client, &d) == MQTTASYNC_SUCCESS) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                int64_t ns = until.tv_nsec + (int64_t)(timeout_ms + 1000) * 1000000;
                until.tv_sec += ns / 1000000000;
                until.tv_nsec = ns % 1000000000;
                pthread_mutex_lock(&l->done_lock);
                while (!l->disconnect_done)
                    if (pthread_cond_timedwait(&l->done_cond, &l->done_lock, &until))
                        break;
                pthread_mutex_unlock(&l->done_lock);
            }
        }
        MQTTAsync_destroy(&l->client);
    }
    queue_clear(l);
    free_cfg(&l->cfg);
    pthread_mutex_destroy(&l->done_lock);
    pthread_cond_destroy(&l->done_cond);
    free(l);
}

int link_subscribe(struct link *l, const char *filter, int qos)
{
    if (!l->connected)
        return -ENOTCONN;
    MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
    int rc = MQTTAsync_subscribe(l->client, filter, qos, &o);
    return rc == MQTTASYNC_SUCCESS ? 0 : -EIO;
}

int link_unsubscribe(struct link *l, const char *filter)
{
    if (!l->connected)
        return -ENOTCONN;
    MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
    int rc = MQTTAsync_unsubscribe(l->client, filter, &o);
    return rc == MQTTASYNC_SUCCESS ? 0 : -EIO;
}

bool link_connected(const struct link *l)
{
    return l->connected;
}

void link_get_stats(const struct link *l, struct link_stats *out)
{
    *out = l->stats;
    out->connected = l->connected;
    out->queued = l->queued;
    out->inflight = atomic_load(&l->inflight);
}
