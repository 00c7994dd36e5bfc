// SPDX-License-Identifier: MIT
// Self-test of e2m-hoymiles-sim: starts it, speaks the DTU protocol to it and checks it.
//
// usage: hoymiles_selftest [--wrapper "valgrind ..."] <simulator> <scenario>...
// Each scenario starts its own simulator, ends it with SIGTERM and requires exit status 0, so
// every run also checks the clean shutdown. The scenario core_day runs the DTU model in-process
// on a simulated clock instead. The client uses the simulator's own wire module (frames, CRC,
// protobuf, AES-GCM). Exit status: 0 pass, 1 fail, 2 usage.
#include "hoymiles_sim.h"
#include "selftest_child.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define HCONN_BUF 16384 // bytes buffered from the DTU
#define GUARD     250   // --guard of every scenario

static int64_t last_req; // when the last request was sent (pacing against the guard)
static uint16_t next_seq = 0x1234;

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ---- The simulator process ----------------------------------------------------------------

// Starts the simulator with the options every scenario shares plus `extra` (NULL-terminated or
// NULL) and returns its TCP port.
static int dtu_start(struct child *c, const char *sim, const char *const *extra)
{
    static const char *const base[] = {
        "--port",      "0",       "--guard",  "250",    "--cloud",   "off",  "--data-interval",
        "500",         "--power", "500",      "--seed", "7",         "--tz", "0",
        "--reboot-ms", "800",     "--lockup", "1500",   "--cmd-gap", "600"};
    int port = child_start_port(c, sim, base, sizeof(base) / sizeof(base[0]), extra);
    last_req = 0;
    return port;
}

// Sends a control command and requires a bare "ok".
static void dtu_cmd(struct child *c, const char *cmd)
{
    const char *rest = child_cmd(c, "%s", cmd);
    CHECK(rest[0] == '\0', "command '%s' answered 'ok %s'", cmd, rest);
}

// Sends a control command that must be refused.
static void dtu_cmd_err(struct child *c, const char *cmd)
{
    char line[SELFTEST_LINE_MAX];
    child_send(c, "%s", cmd);
    child_expect(c, "err", 3000, line);
}

static json_t *dtu_stats(struct child *c)
{
    char line[SELFTEST_LINE_MAX];
    child_send(c, "stats");
    child_expect(c, "{", 3000, line);
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    CHECK(json_is_object(j), "stats is not a JSON object: %s (%s)", line, err.text);
    return j;
}

static int64_t js_int(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    CHECK(json_is_integer(v), "stats: %s is not an integer", key);
    return json_integer_value(v);
}

static double js_num(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    CHECK(json_is_number(v), "stats: %s is not a number", key);
    return json_number_value(v);
}

static bool js_bool(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    CHECK(json_is_boolean(v), "stats: %s is not a boolean", key);
    return json_is_true(v);
}

static int64_t js_sub_int(json_t *j, const char *obj, const char *key)
{
    json_t *v = json_object_get(json_object_get(j, obj), key);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

// One stats value, for short checks: returns the integer at `key`.
static int64_t stat_int(struct child *c, const char *key)
{
    json_t *j = dtu_stats(c);
    int64_t v = js_int(j, key);
    json_decref(j);
    return v;
}

static bool stat_bool(struct child *c, const char *key)
{
    json_t *j = dtu_stats(c);
    bool v = js_bool(j, key);
    json_decref(j);
    return v;
}

// Ends the simulator like child_stop and requires that its log never showed a secret.
static void dtu_stop(struct child *c)
{
    child_terminate(c);
    CHECK(!child_stderr_has(c, HS_SECRET_WIFI_PASS) && !child_stderr_has(c, HS_SECRET_AP_PASS),
          "a secret appeared in the simulator's log");
    child_release(c);
}

// ---- TCP client -----------------------------------------------------------------------------

struct hconn {
    int fd;
    bool eof;
    uint8_t buf[HCONN_BUF];
    size_t len;
};

static void hc_open(struct hconn *h, int port)
{
    memset(h, 0, sizeof(*h));
    h->fd = selftest_tcp_connect(port);
    CHECK(h->fd >= 0, "connect to %d: %s", port, strerror(errno));
}

// Connects, retrying for up to `ms` (a DTU that is booting refuses connections).
static void hc_open_retry(struct hconn *h, int port, int ms)
{
    int64_t deadline = now_ms() + (int64_t)ms * selftest.slow;
    memset(h, 0, sizeof(*h));
    while ((h->fd = selftest_tcp_connect(port)) < 0) {
        CHECK(now_ms() < deadline, "DTU still unreachable after %d ms: %s", ms, strerror(errno));
        sleep_ms(50);
    }
}

static void hc_close(struct hconn *h)
{
    if (h->fd >= 0) {
        close(h->fd);
    }
    h->fd = -1;
}

static bool refused(int port)
{
    int fd = selftest_tcp_connect(port);
    if (fd >= 0) {
        close(fd);
        return false;
    }
    return errno == ECONNREFUSED;
}

static void hc_send_raw(struct hconn *h, const void *data, size_t n)
{
    CHECK(send(h->fd, data, n, MSG_NOSIGNAL) == (ssize_t)n, "send: %s", strerror(errno));
}

// Reads until `want` bytes are buffered, the peer closes or `timeout_ms` (not scaled) passes.
static size_t hc_fill(struct hconn *h, size_t want, int64_t timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (h->len < want && !h->eof) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            break;
        }
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) {
            continue;
        }
        ssize_t r = recv(h->fd, h->buf + h->len, sizeof(h->buf) - h->len, 0);
        if (r <= 0) {
            h->eof = true;
            break;
        }
        h->len += (size_t)r;
    }
    return h->len;
}

static void hc_consume(struct hconn *h, size_t n)
{
    memmove(h->buf, h->buf + n, h->len - n);
    h->len -= n;
}

// True when the DTU closes the connection within `ms` (scaled); data before the close is kept.
static bool hc_wait_eof(struct hconn *h, int ms)
{
    int64_t deadline = now_ms() + (int64_t)ms * selftest.slow;
    while (!h->eof && now_ms() < deadline) {
        size_t before = h->len;
        hc_fill(h, h->len + 1, deadline - now_ms());
        if (h->len == sizeof(h->buf) && h->len == before) {
            break;
        }
    }
    return h->eof;
}

// ---- Requests -------------------------------------------------------------------------------

static void ymd_hms(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static struct hs_buf pl_appinfo(void)
{
    struct hs_buf b = {0};
    char ymd[32];
    ymd_hms(ymd, sizeof(ymd));
    hs_pb_string(&b, 1, ymd);
    hs_pb_int(&b, 2, 28800);
    hs_pb_int(&b, 5, time(NULL));
    return b;
}

static struct hs_buf pl_realdata(void)
{
    struct hs_buf b = {0};
    char ymd[32];
    ymd_hms(ymd, sizeof(ymd));
    hs_pb_string(&b, 1, ymd);
    hs_pb_int(&b, 4, 28800);
    hs_pb_int(&b, 5, time(NULL));
    return b;
}

static struct hs_buf pl_getconfig(void)
{
    struct hs_buf b = {0};
    hs_pb_int(&b, 1, 28800);
    hs_pb_int(&b, 2, time(NULL) - 60);
    return b;
}

static struct hs_buf pl_heartbeat(void)
{
    struct hs_buf b = {0};
    char ymd[32];
    ymd_hms(ymd, sizeof(ymd));
    hs_pb_int(&b, 1, 28800);
    hs_pb_int(&b, 2, time(NULL));
    hs_pb_string(&b, 3, ymd);
    return b;
}

static struct hs_buf pl_command(int action, const char *data)
{
    struct hs_buf b = {0};
    hs_pb_int(&b, 1, time(NULL));
    hs_pb_int(&b, 2, action);
    hs_pb_int(&b, 3, 1);
    hs_pb_int(&b, 4, 1);
    hs_pb_int(&b, 6, time(NULL) + action);
    hs_pb_string(&b, 7, data);
    return b;
}

// Waits until a request may be sent without violating the guard.
static void pace(void)
{
    int64_t due = last_req + GUARD + 120 * (int64_t)selftest.slow;
    sleep_ms(due - now_ms());
}

// Sends one frame (no pacing) and returns its seq. The payload is freed.
static uint16_t send_frame(struct hconn *h, uint16_t tag, struct hs_buf *pl, const uint8_t *key)
{
    struct hs_buf f = {0};
    uint16_t seq = next_seq++;
    hs_frame_build(&f, tag, seq, pl->data, pl->len, key);
    hc_send_raw(h, f.data, f.len);
    last_req = now_ms();
    hs_buf_free(&f);
    hs_buf_free(pl);
    return seq;
}

static uint16_t send_req(struct hconn *h, uint16_t tag, struct hs_buf pl, const uint8_t *key)
{
    pace();
    return send_frame(h, tag, &pl, key);
}

// Reads the reply to (tag, seq): checks magic, CRC, reply tag and echoed seq, decrypts when
// `key` is given. Returns false when nothing arrives within `timeout_ms` (scaled).
static bool recv_reply(struct hconn *h, uint16_t tag, uint16_t seq, const uint8_t *key,
                       struct hs_buf *plain, int timeout_ms)
{
    int64_t deadline = now_ms() + (int64_t)timeout_ms * selftest.slow;
    plain->len = 0;
    for (;;) {
        struct hs_frame f;
        int rc = h->len ? hs_frame_open(h->buf, h->len, key, key != NULL, &f, plain) : 0;
        CHECK(rc != -EACCES, "reply 0x%04X does not decrypt", f.tag);
        CHECK(rc >= 0, "bad reply frame (magic, length or CRC)");
        if (rc > 0) {
            CHECK(f.tag == tag - 0x0100, "reply tag 0x%04X to request 0x%04X", f.tag, tag);
            CHECK(f.seq == seq, "reply seq %u, request seq %u", f.seq, seq);
            hc_consume(h, (size_t)rc);
            return true;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0 || h->eof) {
            return false;
        }
        hc_fill(h, h->len + 1, left);
    }
}

// A paced request that must be answered; the reply payload is returned in *plain.
static void exchange(struct hconn *h, uint16_t tag, struct hs_buf pl, const uint8_t *key,
                     struct hs_buf *plain)
{
    uint16_t seq = send_req(h, tag, pl, key);
    CHECK(recv_reply(h, tag, seq, key, plain, 2000), "request 0x%04X seq %u not answered%s", tag,
          seq, h->eof ? " (connection closed)" : "");
}

// A paced request that must stay unanswered for `ms` (scaled).
static void silence(struct hconn *h, uint16_t tag, struct hs_buf pl, const uint8_t *key, int ms)
{
    CHECK(h->len == 0, "unexpected bytes before request 0x%04X", tag);
    send_req(h, tag, pl, key);
    hc_fill(h, 1, (int64_t)ms * selftest.slow);
    CHECK(h->len == 0, "request 0x%04X was answered (%zu bytes)", tag, h->len);
}

// ---- Protobuf checks ------------------------------------------------------------------------

static int64_t pb_int(const struct hs_buf *b, unsigned field)
{
    int64_t v = 0;
    hs_pb_get_int(b->data, b->len, field, &v);
    return v;
}

static bool pb_has(const struct hs_buf *b, unsigned field)
{
    int n = hs_pb_count(b->data, b->len, field);
    CHECK(n >= 0, "malformed protobuf");
    return n > 0;
}

// The nth sub-message `field` of b, copied into a buffer the caller frees.
static struct hs_buf pb_sub(const struct hs_buf *b, unsigned field, unsigned nth)
{
    const uint8_t *p;
    size_t n;
    struct hs_buf out = {0};
    CHECK(hs_pb_get_bytes(b->data, b->len, field, nth, &p, &n), "field %u #%u missing", field, nth);
    hs_buf_append(&out, p, n);
    return out;
}

static void pb_str(const struct hs_buf *b, unsigned field, char *out, size_t cap)
{
    const uint8_t *p;
    size_t n;
    out[0] = '\0';
    if (hs_pb_get_bytes(b->data, b->len, field, 0, &p, &n)) {
        n = n < cap - 1 ? n : cap - 1;
        memcpy(out, p, n);
        out[n] = '\0';
    }
}

struct realdata {
    char sn[16];
    int64_t ts, ap, ac_v, freq, ac_p, ac_q, ac_i, pf, temp, wnum, link, plim, dtu_p, dtu_ed;
    bool has_plim;
    int ports;
    int64_t pv_port[HS_MAX_PORTS], pv_v[HS_MAX_PORTS], pv_p[HS_MAX_PORTS];
    int64_t pv_et[HS_MAX_PORTS], pv_ed[HS_MAX_PORTS];
};

static void parse_realdata(const struct hs_buf *r, struct realdata *d)
{
    memset(d, 0, sizeof(*d));
    pb_str(r, 1, d->sn, sizeof(d->sn));
    d->ts = pb_int(r, 2);
    d->ap = pb_int(r, 3);
    d->dtu_p = pb_int(r, 12);
    d->dtu_ed = pb_int(r, 13);
    CHECK(hs_pb_count(r->data, r->len, 9) == 1, "expected one sgs_data");
    struct hs_buf sgs = pb_sub(r, 9, 0);
    d->ac_v = pb_int(&sgs, 3);
    d->freq = pb_int(&sgs, 4);
    d->ac_p = pb_int(&sgs, 5);
    d->ac_q = pb_int(&sgs, 6);
    d->ac_i = pb_int(&sgs, 7);
    d->pf = pb_int(&sgs, 8);
    d->temp = pb_int(&sgs, 9);
    d->wnum = pb_int(&sgs, 10);
    d->link = pb_int(&sgs, 12);
    d->has_plim = pb_has(&sgs, 13);
    d->plim = pb_int(&sgs, 13);
    hs_buf_free(&sgs);
    d->ports = hs_pb_count(r->data, r->len, 11);
    CHECK(d->ports >= 1 && d->ports <= HS_MAX_PORTS, "pv_data count %d", d->ports);
    for (int i = 0; i < d->ports; i++) {
        struct hs_buf pv = pb_sub(r, 11, (unsigned)i);
        d->pv_port[i] = pb_int(&pv, 2);
        d->pv_v[i] = pb_int(&pv, 3);
        d->pv_p[i] = pb_int(&pv, 5);
        d->pv_et[i] = pb_int(&pv, 6);
        d->pv_ed[i] = pb_int(&pv, 7);
        hs_buf_free(&pv);
    }
}

static void realdata(struct hconn *h, const uint8_t *key, struct realdata *d)
{
    struct hs_buf r = {0};
    exchange(h, HS_TAG_REALDATA, pl_realdata(), key, &r);
    parse_realdata(&r, d);
    hs_buf_free(&r);
}

// Sends a 0xA305 command and returns its err_code (checks the echoed action and tid).
static int64_t command(struct hconn *h, int action, const char *data, const uint8_t *key)
{
    struct hs_buf pl = pl_command(action, data), r = {0};
    int64_t tid = pb_int(&pl, 6);
    exchange(h, HS_TAG_COMMAND, pl, key, &r);
    CHECK(pb_int(&r, 3) == action, "command reply action %" PRId64, pb_int(&r, 3));
    CHECK(pb_int(&r, 6) == tid, "command reply tid");
    int64_t err = pb_int(&r, 5);
    hs_buf_free(&r);
    return err;
}

static void appinfo_feature(const struct hs_buf *r, char *out, size_t cap)
{
    out[0] = '\0';
    for (unsigned i = 0; i < (unsigned)hs_pb_count(r->data, r->len, 13); i++) {
        struct hs_buf f = pb_sub(r, 13, i);
        if (pb_int(&f, 1) == 8) {
            pb_str(&f, 2, out, cap);
        }
        hs_buf_free(&f);
    }
}

// Waits until a request can be sent as a command without err_code 7 from the command gap.
static void command_gap(int64_t last_cmd)
{
    sleep_ms(last_cmd + 750 - now_ms());
}

// ---- Scenarios ------------------------------------------------------------------------------

static void test_plain(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct hs_buf r = {0};
    char text[128];
    int port = dtu_start(&ch, sim, NULL);
    hc_open(&h, port);

    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);
    char dtu_sn[32];
    pb_str(&r, 1, dtu_sn, sizeof(dtu_sn));
    CHECK(strlen(dtu_sn) == 12 && strncmp(dtu_sn, "4143", 4) == 0, "dtu sn '%s'", dtu_sn);
    CHECK(llabs(pb_int(&r, 2) - time(NULL)) <= 5, "appinfo time");
    struct hs_buf info = pb_sub(&r, 8, 0);
    CHECK(pb_int(&info, 2) == 4103, "plain firmware must be V01.00.07 (4103)");
    CHECK(pb_int(&info, 24) == 0x4C0000C0, "dfs 0x%" PRIx64, pb_int(&info, 24));
    CHECK(!pb_has(&info, 27), "plain firmware sent enc_rand");
    CHECK(pb_int(&info, 9) > 0 && pb_int(&info, 9) <= 100, "signal strength");
    pb_str(&info, 11, text, sizeof(text));
    CHECK(text[0], "wifi_version missing");
    hs_buf_free(&info);
    struct hs_buf pv = pb_sub(&r, 11, 0);
    uint64_t inv_sn = (uint64_t)pb_int(&pv, 2);
    CHECK(inv_sn >> 32 == 0x1412, "HMS-800W-2T serial prefix 0x%" PRIx64, inv_sn >> 32);
    hs_buf_free(&pv);
    appinfo_feature(&r, text, sizeof(text));
    CHECK(strcmp(text, "1,A:1000,B:1000,C:1000") == 0, "app feature 8 '%s'", text);

    struct realdata d, d2;
    realdata(&h, NULL, &d);
    CHECK(strcmp(d.sn, dtu_sn) == 0, "realdata sn");
    CHECK(llabs(d.ts - time(NULL)) <= 5, "realdata timestamp %" PRId64, d.ts);
    CHECK(d.ap == 1, "ap %" PRId64, d.ap);
    CHECK(d.ac_v >= 2200 && d.ac_v <= 2400, "grid voltage %" PRId64, d.ac_v);
    CHECK(d.freq >= 4990 && d.freq <= 5010, "frequency %" PRId64, d.freq);
    CHECK(d.ac_p == 5000, "active power %" PRId64 " (500 W expected)", d.ac_p);
    CHECK(llabs(d.ac_i - llround(500.0 / (d.ac_v / 10.0) * 100)) <= 1, "AC current");
    CHECK(d.pf > 900 && d.pf <= 1000, "power factor %" PRId64, d.pf);
    CHECK(d.temp > -400 && d.temp < 800, "temperature %" PRId64, d.temp);
    CHECK(d.link == 1 && !d.has_plim, "link %" PRId64 " / p_lim present", d.link);
    CHECK(d.dtu_p == d.ac_p, "dtu_power %" PRId64 " != sgs power %" PRId64, d.dtu_p, d.ac_p);
    CHECK(d.ports == 2, "ports %d", d.ports);
    int64_t pv_sum = 0, ed_sum = 0;
    for (int i = 0; i < d.ports; i++) {
        CHECK(d.pv_port[i] == i + 1, "port number %" PRId64, d.pv_port[i]);
        CHECK(d.pv_v[i] > 250 && d.pv_v[i] < 450, "PV voltage %" PRId64, d.pv_v[i]);
        CHECK(d.pv_et[i] > 100000, "lifetime energy %" PRId64, d.pv_et[i]);
        pv_sum += d.pv_p[i];
        ed_sum += d.pv_ed[i];
    }
    CHECK(llabs(pv_sum - llround(5000 / 0.95)) <= 2, "DC power sum %" PRId64, pv_sum);
    CHECK(d.dtu_ed == ed_sum, "dtu_daily_energy %" PRId64 " != ports %" PRId64, d.dtu_ed, ed_sum);

    // A new data set after the interval: newer timestamp, energy never lower.
    sleep_ms(1100);
    realdata(&h, NULL, &d2);
    CHECK(d2.ts > d.ts, "timestamp did not advance");
    for (int i = 0; i < d.ports; i++) {
        CHECK(d2.pv_et[i] >= d.pv_et[i], "energy total decreased");
    }

    // Heartbeat: csq is a negative int32 (10-byte varint).
    exchange(&h, HS_TAG_HEARTBEAT, pl_heartbeat(), NULL, &r);
    CHECK(pb_int(&r, 3) < 0 && pb_int(&r, 3) > -100, "csq %" PRId64, pb_int(&r, 3));
    CHECK(pb_int(&r, 1) == 28800, "heartbeat offset echo");
    pb_str(&r, 4, text, sizeof(text));
    CHECK(strcmp(text, dtu_sn) == 0, "heartbeat dtu sn");
    struct hs_buf empty = {0};
    exchange(&h, HS_TAG_NETWORK, pl_getconfig(), NULL, &r);
    CHECK(pb_int(&r, 6) == 1, "network info work mode");
    exchange(&h, HS_TAG_WARN, pl_realdata(), NULL, &r);
    CHECK(!pb_has(&r, 6), "warnings on a fresh DTU");
    // An empty payload is legal (CRC 0xFFFF, length 10).
    exchange(&h, HS_TAG_REALDATA, empty, NULL, &r);
    // Unsupported request: no answer.
    silence(&h, 0xA315, pl_realdata(), NULL, 400);

    // Reassembly: header and payload in separate segments 100 ms apart.
    pace();
    struct hs_buf pl = pl_realdata(), f = {0};
    uint16_t seq = next_seq++;
    hs_frame_build(&f, HS_TAG_REALDATA, seq, pl.data, pl.len, NULL);
    hc_send_raw(&h, f.data, 6);
    sleep_ms(100);
    hc_send_raw(&h, f.data + 6, f.len - 6);
    last_req = now_ms();
    CHECK(recv_reply(&h, HS_TAG_REALDATA, seq, NULL, &r, 2000), "split request not answered");
    hs_buf_free(&pl);
    hs_buf_free(&f);

    json_t *j = dtu_stats(&ch);
    static const char *const keys[] = {"requests",
                                       "replies",
                                       "requests_by_tag",
                                       "guard_violations",
                                       "lockups",
                                       "requests_while_locked",
                                       "lost_uploads",
                                       "persistent_writes",
                                       "min_persistent_interval_ms",
                                       "runtime_writes",
                                       "err7_replies",
                                       "commands",
                                       "decrypt_failures",
                                       "bad_frames",
                                       "connections",
                                       "connections_replaced",
                                       "stalled",
                                       "dtu_reboots",
                                       "inverter_reboots",
                                       "limit_percent",
                                       "limit_watts",
                                       "p_lim",
                                       "inverter_on",
                                       "power_w",
                                       "energy_total_wh",
                                       "energy_daily_wh",
                                       "warning_number",
                                       "locked",
                                       "night",
                                       "reachable",
                                       "encrypted",
                                       "enc_rand",
                                       "model",
                                       "dtu_sn",
                                       "inverter_sn"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        CHECK(json_object_get(j, keys[i]), "stats lack '%s'", keys[i]);
    }
    CHECK(js_int(j, "requests") == 9 && js_int(j, "replies") == 8,
          "requests %" PRId64 " replies %" PRId64, js_int(j, "requests"), js_int(j, "replies"));
    CHECK(js_sub_int(j, "requests_by_tag", "0xa311") == 4, "0xa311 count");
    CHECK(js_int(j, "guard_violations") == 0 && js_int(j, "lockups") == 0 &&
              js_int(j, "lost_uploads") == 0 && js_int(j, "bad_frames") == 0 &&
              js_int(j, "decrypt_failures") == 0 && js_int(j, "persistent_writes") == 0,
          "non-zero fault counters");
    CHECK(json_is_null(json_object_get(j, "limit_watts")) &&
              json_is_null(json_object_get(j, "enc_rand")) &&
              json_is_null(json_object_get(j, "p_lim")),
          "null state values");
    CHECK(js_num(j, "limit_percent") == 100 && fabs(js_num(j, "power_w") - 500) < 0.01,
          "limit/power");
    CHECK(js_bool(j, "inverter_on") && !js_bool(j, "encrypted") && js_bool(j, "reachable") &&
              !js_bool(j, "locked") && js_int(j, "connections") == 1,
          "state flags");
    CHECK(strcmp(json_string_value(json_object_get(j, "model")), "hms-800w-2t") == 0, "model");
    json_decref(j);
    hs_buf_free(&r);
    hc_close(&h);
    dtu_stop(&ch);
}

static void test_encrypted(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct hs_buf r = {0};
    uint8_t key_a[HS_ENC_RAND_LEN], key_b[HS_ENC_RAND_LEN];
    const uint8_t *p;
    size_t n;
    char dtu_sn[32], hex[64];
    int port = dtu_start(&ch, sim, (const char *const[]){"--encrypted", NULL});
    hc_open(&h, port);

    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r); // always plain
    pb_str(&r, 1, dtu_sn, sizeof(dtu_sn));
    struct hs_buf info = pb_sub(&r, 8, 0);
    CHECK(pb_int(&info, 24) & HS_DFS_ENCRYPT, "dfs bit 25 not set");
    CHECK(pb_int(&info, 24) == 0x4E0000C0 && pb_int(&info, 2) == 4353, "V01.01.01 dfs/sw");
    CHECK(hs_pb_get_bytes(info.data, info.len, 27, 0, &p, &n) && n == HS_ENC_RAND_LEN,
          "enc_rand missing");
    memcpy(key_a, p, n);
    hs_buf_free(&info);
    json_t *j = dtu_stats(&ch);
    for (int i = 0; i < HS_ENC_RAND_LEN; i++) {
        snprintf(hex + 2 * i, 3, "%02x", key_a[i]);
    }
    CHECK(js_bool(j, "encrypted") &&
              strcmp(json_string_value(json_object_get(j, "enc_rand")), hex) == 0,
          "stats enc_rand");
    json_decref(j);

    // Encrypted RealDataNew: CRC over the ciphertext, GCM tag after total_length.
    pace();
    struct hs_buf pl = pl_realdata();
    uint16_t seq = send_frame(&h, HS_TAG_REALDATA, &pl, key_a);
    CHECK(recv_reply(&h, HS_TAG_REALDATA, seq, key_a, &r, 2000), "encrypted request unanswered");
    struct realdata d;
    parse_realdata(&r, &d);
    CHECK(strcmp(d.sn, dtu_sn) == 0 && d.ac_p == 5000, "decrypted realdata");

    // A plain request on an encrypted tag is not answered (the DTU waits for a GCM tag, then
    // gives up and counts a decrypt failure).
    silence(&h, HS_TAG_REALDATA, pl_realdata(), NULL, 1400);
    CHECK(stat_int(&ch, "decrypt_failures") == 1, "decrypt failure not counted");

    // The heartbeat is accepted plain (answered plain) and encrypted (answered encrypted).
    exchange(&h, HS_TAG_HEARTBEAT, pl_heartbeat(), NULL, &r);
    CHECK(pb_int(&r, 3) < 0, "plain heartbeat reply");
    exchange(&h, HS_TAG_HEARTBEAT, pl_heartbeat(), key_a, &r);
    CHECK(pb_int(&r, 3) < 0, "encrypted heartbeat reply");

    // Reboot: connection closed, refused while booting, new enc_rand afterwards.
    dtu_cmd(&ch, "reboot");
    CHECK(hc_wait_eof(&h, 2000), "reboot did not close the connection");
    hc_close(&h);
    CHECK(refused(port), "connection accepted while rebooting");
    hc_open_retry(&h, port, 3000);
    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);
    info = pb_sub(&r, 8, 0);
    CHECK(hs_pb_get_bytes(info.data, info.len, 27, 0, &p, &n) && n == HS_ENC_RAND_LEN,
          "enc_rand missing after reboot");
    memcpy(key_b, p, n);
    hs_buf_free(&info);
    CHECK(memcmp(key_a, key_b, HS_ENC_RAND_LEN) != 0, "enc_rand unchanged by the reboot");
    silence(&h, HS_TAG_REALDATA, pl_realdata(), key_a, 500);
    CHECK(stat_int(&ch, "decrypt_failures") == 2, "old key: decrypt failure not counted");
    realdata(&h, key_b, &d);
    CHECK(d.ac_p == 5000, "realdata with the new key");
    j = dtu_stats(&ch);
    CHECK(js_int(j, "dtu_reboots") == 1 && js_int(j, "guard_violations") == 0 &&
              js_int(j, "bad_frames") == 0,
          "reboot / guard / bad frame counters");
    json_decref(j);
    hs_buf_free(&r);
    hc_close(&h);
    dtu_stop(&ch);
}

static void test_guard(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct hs_buf r = {0};
    struct realdata d;
    int port = dtu_start(&ch, sim, NULL);
    hc_open(&h, port);
    realdata(&h, NULL, &d);

    // Second request 100 ms after the first: violation, lock-up, no answer.
    sleep_ms(100);
    struct hs_buf pl = pl_realdata();
    send_frame(&h, HS_TAG_REALDATA, &pl, NULL);
    int64_t violation = now_ms();
    hc_fill(&h, 1, 400 * (int64_t)selftest.slow);
    CHECK(h.len == 0, "the violating request was answered");
    json_t *j = dtu_stats(&ch);
    CHECK(js_int(j, "guard_violations") == 1 && js_int(j, "lockups") == 1 && js_bool(j, "locked") &&
              js_int(j, "requests_while_locked") == 0,
          "violation not counted or not locked");
    json_decref(j);
    CHECK(child_stderr_has(&ch, "guard violation"), "violation not logged on stderr");

    // Properly spaced requests during the lock-up are read but not answered.
    silence(&h, HS_TAG_REALDATA, pl_realdata(), NULL, 300);
    CHECK(stat_int(&ch, "requests_while_locked") == 1, "request while locked not counted");

    // After --lockup 1500 it answers again.
    sleep_ms(violation + 1500 + 100 - now_ms());
    realdata(&h, NULL, &d);
    j = dtu_stats(&ch);
    CHECK(!js_bool(j, "locked") && js_int(j, "guard_violations") == 1, "lock-up did not end");
    json_decref(j);

    // Forced lock and unlock.
    dtu_cmd(&ch, "lock");
    silence(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, 300);
    dtu_cmd(&ch, "unlock");
    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);

    // guard 0 disables the rule: two requests 50 ms apart are both answered.
    dtu_cmd(&ch, "guard 0");
    realdata(&h, NULL, &d);
    sleep_ms(50);
    last_req = 0;
    realdata(&h, NULL, &d);
    dtu_cmd_err(&ch, "guard fast");
    j = dtu_stats(&ch);
    CHECK(js_int(j, "guard_violations") == 1 && js_int(j, "lockups") == 2, "counters at end");
    json_decref(j);
    hs_buf_free(&r);
    hc_close(&h);
    dtu_stop(&ch);
}

// Sleeps until wall_ms % period lies in [lo, hi].
static void wait_phase(int64_t period, int64_t lo, int64_t hi)
{
    for (;;) {
        int64_t m = wall_now_ms() % period;
        if (m >= lo && m <= hi) {
            return;
        }
        sleep_ms(m < lo ? lo - m : period - m + lo);
    }
}

static void test_cloud(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct realdata d;
    int port = dtu_start(&ch, sim, (const char *const[]){"--cloud", "2000,0,1000", NULL});
    hc_open(&h, port);
    pace();
    wait_phase(2000, 200, 600);
    realdata(&h, NULL, &d);
    CHECK(stat_int(&ch, "lost_uploads") == 1, "request in the window not counted");
    CHECK(child_stderr_has(&ch, "upload lost"), "lost upload not logged");
    pace();
    wait_phase(2000, 1200, 1600);
    realdata(&h, NULL, &d);
    CHECK(stat_int(&ch, "lost_uploads") == 1, "request outside the window counted");
    pace();
    wait_phase(2000, 200, 600);
    realdata(&h, NULL, &d);
    CHECK(stat_int(&ch, "lost_uploads") == 2, "second window not counted");
    hc_close(&h);
    dtu_stop(&ch);
}

static void test_close_after_reply(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct realdata d;
    int port = dtu_start(&ch, sim, (const char *const[]){"--close-after-reply", NULL});
    hc_open(&h, port);
    realdata(&h, NULL, &d);
    CHECK(hc_wait_eof(&h, 1000), "connection not closed after the reply");
    hc_close(&h);
    hc_open(&h, port);
    realdata(&h, NULL, &d);
    CHECK(hc_wait_eof(&h, 1000), "second connection not closed after the reply");
    hc_close(&h);
    dtu_cmd(&ch, "close_after_reply off");
    hc_open(&h, port);
    realdata(&h, NULL, &d);
    realdata(&h, NULL, &d); // same connection still open
    CHECK(!stat_bool(&ch, "close_after_reply"), "stats close_after_reply");
    hc_close(&h);
    dtu_stop(&ch);
}

static void test_night(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct hs_buf r = {0};
    char line[SELFTEST_LINE_MAX];
    int port = dtu_start(&ch, sim, (const char *const[]){"--night", NULL});
    CHECK(refused(port), "connection accepted at night");
    json_t *j = dtu_stats(&ch);
    CHECK(js_bool(j, "night") && !js_bool(j, "reachable"), "night state");
    json_decref(j);
    dtu_cmd(&ch, "night off");
    child_expect(&ch, "state reachable", 1000, line);
    hc_open(&h, port);
    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);
    dtu_cmd(&ch, "night on");
    child_expect(&ch, "state unreachable", 1000, line);
    CHECK(hc_wait_eof(&h, 1000), "night did not close the connection");
    hc_close(&h);
    CHECK(refused(port), "connection accepted after night on");
    dtu_cmd(&ch, "night off");
    hc_open(&h, port);
    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);
    j = dtu_stats(&ch);
    CHECK(!js_bool(j, "night") && js_int(j, "dtu_boots") == 2, "boots %" PRId64,
          js_int(j, "dtu_boots"));
    json_decref(j);
    hs_buf_free(&r);
    hc_close(&h);
    dtu_stop(&ch);
}

static void test_stale(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct realdata a, b, c;
    int port =
        dtu_start(&ch, sim, (const char *const[]){"--stale", "--data-interval", "2000", NULL});
    hc_open(&h, port);
    realdata(&h, NULL, &a);
    sleep_ms(2500);
    realdata(&h, NULL, &b);
    CHECK(a.ts == b.ts && a.ac_v == b.ac_v && a.freq == b.freq && a.temp == b.temp,
          "stale data changed");
    CHECK(stat_bool(&ch, "stale"), "stats stale");
    dtu_cmd(&ch, "stale off");
    // Poll until a new data set appears, then a request soon after gets the same one.
    int64_t until = now_ms() + 5000 * (int64_t)selftest.slow;
    do {
        CHECK(now_ms() < until, "no new data set after stale off");
        realdata(&h, NULL, &c);
    } while (c.ts == a.ts);
    realdata(&h, NULL, &b);
    CHECK(b.ts == c.ts && b.ac_v == c.ac_v && b.freq == c.freq,
          "a request within the data interval got a new data set");
    hc_close(&h);
    dtu_stop(&ch);
}

static void test_getconfig(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct hs_buf r = {0};
    char text[128], dtu_sn[32];
    int port = dtu_start(&ch, sim, (const char *const[]){"--getconfig-silent", NULL});
    hc_open(&h, port);
    silence(&h, HS_TAG_GETCONFIG, pl_getconfig(), NULL, 500);
    CHECK(stat_bool(&ch, "getconfig_silent"), "stats getconfig_silent");
    dtu_cmd(&ch, "getconfig answer");
    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);
    pb_str(&r, 1, dtu_sn, sizeof(dtu_sn));
    exchange(&h, HS_TAG_GETCONFIG, pl_getconfig(), NULL, &r);
    CHECK(pb_int(&r, 1) == 28800 && llabs(pb_int(&r, 2) - time(NULL)) <= 5, "offset/time");
    CHECK(!pb_has(&r, 5), "limit_power_mypower without a limit command");
    CHECK(pb_int(&r, 10) == 15 && pb_int(&r, 11) > 0 && pb_int(&r, 11) <= 100, "send time/rssi");
    pb_str(&r, 16, text, sizeof(text));
    CHECK(strcmp(text, HS_SECRET_WIFI_SSID) == 0, "ssid '%s'", text);
    pb_str(&r, 17, text, sizeof(text));
    CHECK(strcmp(text, HS_SECRET_WIFI_PASS) == 0, "wifi password");
    pb_str(&r, 62, text, sizeof(text));
    CHECK(strcmp(text, HS_SECRET_AP_PASS) == 0, "ap password");
    pb_str(&r, 20, text, sizeof(text));
    CHECK(strcmp(text, dtu_sn) == 0, "getconfig dtu_sn");
    dtu_cmd(&ch, "getconfig silent");
    silence(&h, HS_TAG_GETCONFIG, pl_getconfig(), NULL, 500);
    CHECK(stat_int(&ch, "replies") == 2, "replies");
    hs_buf_free(&r);
    hc_close(&h);
    dtu_stop(&ch);
}

static void test_commands(const char *sim)
{
    struct child ch;
    struct hconn h;
    struct hs_buf r = {0};
    struct realdata d;
    char text[128];
    int port = dtu_start(&ch, sim,
                         (const char *const[]){"--power", "700", "--data-interval", "200", NULL});
    hc_open(&h, port);

    // Persistent limit 50 %: p_lim 0.1 %, app feature, GetConfig field 5, AC capped at 400 W.
    CHECK(command(&h, HS_ACTION_LIMIT_POWER, "A:500,B:0,C:0\r", NULL) == 0, "limit 50 %% refused");
    int64_t first_persist = last_req, last_cmd = last_req;
    realdata(&h, NULL, &d);
    CHECK(d.has_plim && d.plim == 500 && d.ac_p == 4000, "p_lim %" PRId64 " power %" PRId64, d.plim,
          d.ac_p);
    exchange(&h, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);
    appinfo_feature(&r, text, sizeof(text));
    CHECK(strcmp(text, "1,A:500,B:500,C:500") == 0, "app feature 8 '%s'", text);
    exchange(&h, HS_TAG_GETCONFIG, pl_getconfig(), NULL, &r);
    CHECK(pb_int(&r, 5) == 500, "limit_power_mypower %" PRId64, pb_int(&r, 5));
    json_t *j = dtu_stats(&ch);
    CHECK(js_int(j, "persistent_writes") == 1 && js_num(j, "limit_percent") == 50,
          "persistent write not counted");
    json_decref(j);

    // Runtime limit 300 W: p_lim in 0.1 W.
    command_gap(last_cmd);
    CHECK(command(&h, HS_ACTION_LIMIT_RUNTIME, "S:1,P:3000", NULL) == 0, "runtime limit");
    last_cmd = last_req;
    realdata(&h, NULL, &d);
    CHECK(d.plim == 3000 && d.ac_p == 3000, "runtime p_lim %" PRId64 " power %" PRId64, d.plim,
          d.ac_p);
    j = dtu_stats(&ch);
    CHECK(js_num(j, "limit_watts") == 300 && js_int(j, "runtime_writes") == 1, "runtime stats");
    json_decref(j);

    // Two commands closer than --cmd-gap: the second gets err_code 7 and is not applied.
    command_gap(last_cmd);
    CHECK(command(&h, HS_ACTION_ALARM_LIST, "", NULL) == 0, "alarm list");
    CHECK(command(&h, HS_ACTION_LIMIT_POWER, "A:300,B:0,C:0\r", NULL) == 7, "no err 7 on gap");
    last_cmd = last_req;
    j = dtu_stats(&ch);
    CHECK(js_int(j, "err7_replies") == 1 && js_num(j, "limit_percent") == 50 &&
              js_int(j, "persistent_writes") == 1,
          "refused command applied");
    json_decref(j);

    // Persistent 80 % cancels the runtime limit.
    command_gap(last_cmd);
    CHECK(command(&h, HS_ACTION_LIMIT_POWER, "A:800,B:0,C:0\r", NULL) == 0, "limit 80 %%");
    int64_t second_persist = last_req;
    last_cmd = last_req;
    realdata(&h, NULL, &d);
    CHECK(d.plim == 800 && d.ac_p == 6400, "p_lim %" PRId64 " power %" PRId64, d.plim, d.ac_p);
    j = dtu_stats(&ch);
    CHECK(json_is_null(json_object_get(j, "limit_watts")) && js_int(j, "persistent_writes") == 2,
          "runtime limit not cancelled");
    int64_t min_gap = js_int(j, "min_persistent_interval_ms");
    CHECK(llabs(min_gap - (second_persist - first_persist)) < 150,
          "min persistent interval %" PRId64 " vs %" PRId64, min_gap,
          second_persist - first_persist);
    json_decref(j);

    // busy 1: the next command gets err_code 7, the one after is accepted.
    dtu_cmd(&ch, "busy 1");
    command_gap(last_cmd);
    CHECK(command(&h, HS_ACTION_PERF_MODE, "", NULL) == 7, "busy did not refuse");
    last_cmd = last_req;
    command_gap(last_cmd);
    CHECK(command(&h, HS_ACTION_PERF_MODE, "", NULL) == 0, "busy lasted too long");
    last_cmd = last_req;
    j = dtu_stats(&ch);
    CHECK(js_int(j, "err7_replies") == 2 && js_bool(j, "perf_mode"), "busy / perf mode");
    json_decref(j);

    // 0x2305 inverter off: never answered, power 0, warning 124 event.
    struct hs_buf pl = pl_command(HS_ACTION_MI_SHUTDOWN, "");
    silence(&h, HS_TAG_CLOUD_CMD, pl, NULL, 300);
    j = dtu_stats(&ch);
    CHECK(!js_bool(j, "inverter_on") && js_num(j, "power_w") == 0 &&
              js_int(j, "warning_number") == 1,
          "inverter off");
    json_decref(j);
    realdata(&h, NULL, &d);
    CHECK(d.ac_p == 0 && d.dtu_p == 0 && d.wnum == 1 && d.pv_p[0] == 0, "power after off");
    exchange(&h, HS_TAG_WARN, pl_realdata(), NULL, &r);
    CHECK(hs_pb_count(r.data, r.len, 6) == 1, "one warning expected");
    struct hs_buf w = pb_sub(&r, 6, 0);
    CHECK(pb_int(&w, 2) == HS_WARN_REMOTE_OFF && pb_int(&w, 3) == 1 && pb_int(&w, 4) > 0 &&
              !pb_has(&w, 5),
          "warning 124 active");
    hs_buf_free(&w);
    silence(&h, HS_TAG_CLOUD_CMD, pl_command(HS_ACTION_MI_START, ""), NULL, 300);
    exchange(&h, HS_TAG_WARN, pl_realdata(), NULL, &r);
    w = pb_sub(&r, 6, 0);
    CHECK(pb_int(&w, 5) >= pb_int(&w, 4), "warning 124 not ended by inverter on");
    hs_buf_free(&w);
    CHECK(stat_bool(&ch, "inverter_on"), "inverter on");

    // Runtime limit, then an inverter restart (0x2305 8195): runtime limit lost, p_lim kept.
    command_gap(last_cmd);
    CHECK(command(&h, HS_ACTION_LIMIT_RUNTIME, "S:1,P:2500", NULL) == 0, "runtime limit 2");
    silence(&h, HS_TAG_CLOUD_CMD, pl_command(HS_ACTION_INV_REBOOT, ""), NULL, 300);
    j = dtu_stats(&ch);
    CHECK(js_int(j, "inverter_reboots") == 1 && json_is_null(json_object_get(j, "limit_watts")) &&
              js_num(j, "energy_daily_wh") < 1,
          "inverter restart");
    json_decref(j);
    realdata(&h, NULL, &d);
    CHECK(d.plim == 2500 && d.ac_p == 6400, "after restart p_lim %" PRId64 " power %" PRId64,
          d.plim, d.ac_p);
    dtu_cmd(&ch, "warn 205");
    CHECK(stat_int(&ch, "warning_number") == 2, "warn control");

    // 0x2305 DTU reboot: connection closed, session p_lim gone, persistent limit kept.
    pace();
    pl = pl_command(HS_ACTION_DTU_REBOOT, "");
    send_frame(&h, HS_TAG_CLOUD_CMD, &pl, NULL);
    CHECK(hc_wait_eof(&h, 2000), "DTU reboot did not close the connection");
    CHECK(h.len == 0, "DTU reboot command was answered");
    hc_close(&h);
    hc_open_retry(&h, port, 3000);
    realdata(&h, NULL, &d);
    CHECK(!d.has_plim && d.ac_p == 6400, "after DTU reboot p_lim %" PRId64 " power %" PRId64,
          d.plim, d.ac_p);
    j = dtu_stats(&ch);
    CHECK(js_int(j, "dtu_reboots") == 1 && js_num(j, "limit_percent") == 80, "reboot state");
    CHECK(js_sub_int(j, "commands", "8") == 3 && js_sub_int(j, "commands", "211") == 2 &&
              js_sub_int(j, "commands", "50") == 1 && js_sub_int(j, "commands", "33") == 2 &&
              js_sub_int(j, "commands", "7") == 1 && js_sub_int(j, "commands", "6") == 1 &&
              js_sub_int(j, "commands", "8195") == 1 && js_sub_int(j, "commands", "1") == 1,
          "commands by action");
    CHECK(js_int(j, "guard_violations") == 0, "the test itself violated the guard");
    json_decref(j);
    hs_buf_free(&r);
    hc_close(&h);
    dtu_stop(&ch);
}

// Reads one raw frame after `skip` leading bytes; returns its length.
static size_t raw_frame_at(struct hconn *h, size_t at, struct hs_frame *f)
{
    int64_t deadline = now_ms() + 2000 * (int64_t)selftest.slow;
    for (;;) {
        int rc = h->len > at ? hs_frame_parse(h->buf + at, h->len - at, false, f) : 0;
        CHECK(rc >= 0, "no frame at offset %zu", at);
        if (rc > 0) {
            return (size_t)rc;
        }
        int64_t left = deadline - now_ms();
        CHECK(left > 0 && !h->eof, "frame at offset %zu incomplete", at);
        hc_fill(h, h->len + 1, left);
    }
}

static void test_faults(const char *sim)
{
    struct child ch;
    struct hconn h, h2;
    struct hs_buf r = {0}, pl;
    struct hs_frame f;
    uint16_t seq;
    int port = dtu_start(&ch, sim, NULL);
    hc_open(&h, port);

    // garbage: 5-20 bytes (none 'H') before an intact reply.
    dtu_cmd(&ch, "fault garbage");
    seq = send_req(&h, HS_TAG_REALDATA, pl_realdata(), NULL);
    hc_fill(&h, 40, 2000 * (int64_t)selftest.slow);
    size_t junk = 0;
    while (junk < h.len && h.buf[junk] != 'H') {
        junk++;
    }
    CHECK(junk >= 5 && junk <= 20, "%zu garbage bytes", junk);
    hc_consume(&h, junk);
    CHECK(recv_reply(&h, HS_TAG_REALDATA, seq, NULL, &r, 2000), "reply after garbage");

    // badcrc: the reply's CRC is wrong, nothing else.
    dtu_cmd(&ch, "fault badcrc");
    seq = send_req(&h, HS_TAG_REALDATA, pl_realdata(), NULL);
    size_t len = raw_frame_at(&h, 0, &f);
    CHECK(f.seq == seq && f.tag == 0xA211, "badcrc frame header");
    CHECK(hs_crc16(f.payload, f.n) == (uint16_t)(f.crc ^ 0x5A5A), "CRC not the corrupted one");
    hc_consume(&h, len);

    // dup: the previous reply (old seq, same bytes) right before the new one.
    struct hs_buf prev = {0};
    seq = send_req(&h, HS_TAG_APPINFO, pl_appinfo(), NULL);
    len = raw_frame_at(&h, 0, &f);
    CHECK(f.seq == seq, "appinfo seq");
    hs_buf_append(&prev, h.buf, len);
    hc_consume(&h, len);
    dtu_cmd(&ch, "fault dup");
    seq = send_req(&h, HS_TAG_REALDATA, pl_realdata(), NULL);
    len = raw_frame_at(&h, 0, &f);
    CHECK(len == prev.len && memcmp(h.buf, prev.data, len) == 0, "dup is not the previous reply");
    CHECK(f.seq == (uint16_t)(seq - 1), "dup seq %u", f.seq);
    hc_consume(&h, len);
    CHECK(recv_reply(&h, HS_TAG_REALDATA, seq, NULL, &r, 2000), "reply after dup");
    hs_buf_free(&prev);

    // stall: the next request is swallowed; the following one is answered with its own seq.
    dtu_cmd(&ch, "fault stall");
    silence(&h, HS_TAG_REALDATA, pl_realdata(), NULL, 400);
    exchange(&h, HS_TAG_REALDATA, pl_realdata(), NULL, &r);
    CHECK(stat_int(&ch, "stalled") == 1, "stall not counted");

    // drop: the connection closes instead of the reply.
    dtu_cmd(&ch, "fault drop");
    send_req(&h, HS_TAG_REALDATA, pl_realdata(), NULL);
    CHECK(hc_wait_eof(&h, 2000) && h.len == 0, "drop: connection not closed or data sent");
    hc_close(&h);
    hc_open(&h, port);

    // split: the reply arrives in pieces over about 100 ms.
    dtu_cmd(&ch, "fault split");
    seq = send_req(&h, HS_TAG_REALDATA, pl_realdata(), NULL);
    hc_fill(&h, 1, 2000 * (int64_t)selftest.slow);
    int64_t first = now_ms();
    size_t first_len = h.len;
    CHECK(recv_reply(&h, HS_TAG_REALDATA, seq, NULL, &r, 2000), "split reply");
    CHECK(first_len < 10 + r.len && now_ms() - first >= 80,
          "reply not split (%zu bytes, %" PRId64 " ms)", first_len, now_ms() - first);

    // Garbage before a request is skipped (one bad frame); a request with a bad CRC is not
    // answered (another bad frame).
    pace();
    pl = pl_realdata();
    struct hs_buf fb = {0};
    hs_buf_append(&fb, "\x01\x02xyz", 5);
    seq = next_seq++;
    hs_frame_build(&fb, HS_TAG_REALDATA, seq, pl.data, pl.len, NULL);
    hc_send_raw(&h, fb.data, fb.len);
    last_req = now_ms();
    CHECK(recv_reply(&h, HS_TAG_REALDATA, seq, NULL, &r, 2000), "request after garbage");
    fb.len = 0;
    hs_frame_build(&fb, HS_TAG_REALDATA, next_seq++, pl.data, pl.len, NULL);
    fb.data[7] ^= 1;
    pace();
    hc_send_raw(&h, fb.data, fb.len);
    last_req = now_ms();
    hc_fill(&h, 1, 400 * (int64_t)selftest.slow);
    CHECK(h.len == 0, "request with a bad CRC was answered");
    hs_buf_free(&fb);
    hs_buf_free(&pl);
    CHECK(stat_int(&ch, "bad_frames") == 2, "bad frames");

    // One connection at a time: a second one replaces the first.
    hc_open(&h2, port);
    CHECK(hc_wait_eof(&h, 1000), "first connection not closed by the second");
    exchange(&h2, HS_TAG_APPINFO, pl_appinfo(), NULL, &r);
    json_t *j = dtu_stats(&ch);
    CHECK(js_int(j, "connections") == 3 && js_int(j, "connections_replaced") == 1 &&
              js_int(j, "guard_violations") == 0,
          "connection counters");
    json_decref(j);
    dtu_cmd_err(&ch, "fault nonsense");
    dtu_cmd_err(&ch, "frobnicate");
    hs_buf_free(&r);
    hc_close(&h);
    hc_close(&h2);
    dtu_stop(&ch);
}

// ---- In-process: one simulated day ----------------------------------------------------------

// Sends a RealDataNew request into the in-process DTU and decodes the reply (false: no reply).
static bool core_request(struct hs_dtu *dtu, struct hs_conn *c, int64_t mono, int64_t wall,
                         struct realdata *d)
{
    struct hs_buf pl = pl_realdata(), f = {0}, plain = {0};
    uint16_t seq = next_seq++;
    hs_frame_build(&f, HS_TAG_REALDATA, seq, pl.data, pl.len, NULL);
    CHECK(hs_conn_input(dtu, c, mono, wall, f.data, f.len) == f.len, "input not consumed");
    size_t n;
    const uint8_t *out = hs_conn_output(c, &n);
    bool got = n > 0;
    if (got) {
        struct hs_frame fr;
        int rc = hs_frame_open(out, n, NULL, false, &fr, &plain);
        CHECK(rc > 0 && (size_t)rc == n && fr.tag == 0xA211 && fr.seq == seq, "in-process reply");
        hs_conn_sent(c, n);
        parse_realdata(&plain, d);
    }
    hs_buf_free(&pl);
    hs_buf_free(&f);
    hs_buf_free(&plain);
    return got;
}

// Feeds a RealDataNew request that reached the host at `arrived` but is read at `mono`;
// true when the DTU answered.
static bool core_request_at(struct hs_dtu *dtu, struct hs_conn *c, int64_t mono, int64_t wall,
                            int64_t arrived)
{
    struct hs_buf pl = pl_realdata(), f = {0};
    hs_frame_build(&f, HS_TAG_REALDATA, next_seq++, pl.data, pl.len, NULL);
    CHECK(hs_conn_input_at(dtu, c, mono, wall, arrived, f.data, f.len) == f.len,
          "input not consumed");
    size_t n;
    hs_conn_output(c, &n);
    hs_conn_sent(c, n);
    hs_buf_free(&pl);
    hs_buf_free(&f);
    return n > 0;
}

// The guard runs from arrival to arrival, as the DTU sees requests, not from when a loaded
// wrapper got round to reading them.
static void core_guard_on_arrival(const struct hs_config *cfg, int64_t noon)
{
    struct hs_dtu *x = hs_dtu_new(cfg, 0, noon);
    struct hs_conn *xc = hs_conn_new(x, 0, noon);
    CHECK(xc, "no connection at noon");
    int64_t g = cfg->guard_ms;
    // Arrived at 1000, read only at 1000 + g - 1000; the next arrives g + 500 after the first:
    // 1500 ms after the first was read, yet no violation.
    CHECK(core_request_at(x, xc, g, noon + g, 1000), "late-read request not answered");
    CHECK(core_request_at(x, xc, g + 1500, noon + g + 1500, g + 1500), "spaced request refused");
    struct hs_stats st;
    hs_dtu_stats(x, &st);
    CHECK(st.guard_violations == 0, "guard measured from the read, not the arrival");
    // Arrived g - 1 after the previous one, read much later: a violation all the same.
    CHECK(!core_request_at(x, xc, 3 * g, noon + 3 * g, 2 * g + 1499), "violation answered");
    hs_dtu_stats(x, &st);
    CHECK(st.guard_violations == 1 && st.locked, "late-read violation not detected");
    // An arrival reported after the read counts as the read: 9 g would put the next request,
    // g after this read, before it.
    hs_dtu_control(x, 3 * g, noon + 3 * g, HS_CTL_UNLOCK, 0);
    CHECK(core_request_at(x, xc, 5 * g, noon + 5 * g, 9 * g), "request after unlock refused");
    CHECK(core_request_at(x, xc, 6 * g, noon + 6 * g, 6 * g), "future arrival not clamped");
    hs_dtu_stats(x, &st);
    CHECK(st.guard_violations == 1, "violations at end");
    hs_conn_free(x, xc);
    hs_dtu_free(x);
}

static void test_core_day(const char *sim)
{
    (void)sim;
    struct hs_config cfg;
    hs_config_init(&cfg);
    cfg.seed = 3;
    cfg.sun = true;
    cfg.sunrise_h = 6;
    cfg.sunset_h = 20;
    cfg.peak_w = 700;
    cfg.tz_offset_min = 60;
    cfg.ambient_c = -3;
    // 2026-06-01 02:00 local (UTC+1) = 01:00 UTC.
    const int64_t day0 = 1780272000000LL; // 2026-06-01 00:00:00 UTC
    const int64_t start = day0 + 3600000LL, step = 60000;
    int64_t mono = 5000000, wall = start;
    struct hs_dtu *dtu = hs_dtu_new(&cfg, mono, wall);
    struct hs_stats st;
    struct hs_conn *c = NULL;
    struct realdata d;
    double last_total = -1, daily_before_midnight = -1, total_at_sunrise = -1;
    bool saw_day = false, checked_dawn = false, checked_noon = false, reset_seen = false;
    int64_t prev_day_ms = -1;
    CHECK(!hs_dtu_reachable(dtu, mono, wall), "reachable at 02:00");
    CHECK(hs_conn_new(dtu, mono, wall) == NULL, "connection accepted at night");
    for (int64_t t = 0; t <= 26 * 3600000LL; t += step) {
        mono = 5000000 + t;
        wall = start + t;
        int64_t next = hs_dtu_next_event(dtu, mono, wall);
        CHECK(next > mono - step, "next event in the past");
        bool up = hs_dtu_reachable(dtu, mono, wall);
        hs_dtu_stats(dtu, &st);
        int64_t local = (wall + 3600000LL) % 86400000LL; // ms of the local day
        double h = local / 3600000.0;
        CHECK(up == (h >= 6 && h < 20), "reachable %d at %.2f h", up, h);
        CHECK(st.energy_total_wh >= last_total, "energy total decreased at %.2f h", h);
        if (h >= 6.1 && total_at_sunrise < 0) {
            total_at_sunrise = st.energy_total_wh;
        }
        last_total = st.energy_total_wh;
        saw_day |= up;
        if (prev_day_ms > local) {
            // Local midnight passed in this step.
            CHECK(st.energy_daily_wh < 1e-9, "daily energy %.3f after midnight",
                  st.energy_daily_wh);
            reset_seen = true;
        } else if (local >= 86400000LL - step) {
            daily_before_midnight = st.energy_daily_wh;
        }
        prev_day_ms = local;
        if (!checked_dawn && h >= 6.1 && h < 7) {
            // Just after sunrise the inverter is still below freezing (ambient -3 degC mean).
            c = hs_conn_new(dtu, mono, wall);
            CHECK(c, "no connection after sunrise");
            CHECK(core_request(dtu, c, mono, wall, &d), "no reply at dawn");
            CHECK(d.temp < 0, "temperature %" PRId64 " at dawn", d.temp);
            CHECK(d.ts <= wall / 1000 && d.ts > wall / 1000 - 31, "data set age");
            checked_dawn = true;
        }
        if (!checked_noon && h >= 12) {
            CHECK(c && !hs_conn_closing(c), "connection lost during the day");
            CHECK(core_request(dtu, c, mono, wall, &d), "no reply at noon");
            CHECK(d.ac_p > 1000 && d.ac_p <= 7000 && d.dtu_p == d.ac_p, "noon power %" PRId64,
                  d.ac_p);
            // A second request 10 s later (virtual time) violates the guard.
            CHECK(!core_request(dtu, c, mono + 10000, wall + 10000, &d), "violation answered");
            hs_dtu_stats(dtu, &st);
            CHECK(st.guard_violations == 1 && st.locked, "violation not detected in-process");
            CHECK(hs_dtu_next_event(dtu, mono + 10000, wall + 10000) <=
                      mono + 10000 + cfg.lockup_ms,
                  "lock-up end not announced");
            checked_noon = true;
        }
        if (c && hs_conn_closing(c)) {
            hs_conn_free(dtu, c); // night closed it
            c = NULL;
        }
    }
    hs_dtu_stats(dtu, &st);
    CHECK(saw_day && checked_dawn && checked_noon && reset_seen, "day not covered");
    CHECK(daily_before_midnight > 1000 && daily_before_midnight < 10000, "day's energy %.1f Wh",
          daily_before_midnight);
    CHECK(fabs((last_total - total_at_sunrise) - daily_before_midnight) < 20,
          "total grew %.1f Wh, daily %.1f Wh", last_total - total_at_sunrise,
          daily_before_midnight);
    CHECK(st.dtu_boots == 1 && !st.locked && st.requests == 3,
          "boots %" PRIu64 " requests %" PRIu64, st.dtu_boots, st.requests);
    char *json = hs_stats_json(&st);
    json_error_t err;
    json_t *j = json_loads(json, 0, &err);
    CHECK(json_is_object(j) && js_int(j, "guard_violations") == 1 && js_bool(j, "night"),
          "stats JSON: %s", json);
    json_decref(j);
    free(json);
    hs_conn_free(dtu, c);
    hs_dtu_free(dtu);

    // Same seed and calls, same bytes.
    struct hs_buf out[2] = {{0}, {0}};
    for (int k = 0; k < 2; k++) {
        struct hs_dtu *x = hs_dtu_new(&cfg, 0, day0 + 11 * 3600000LL);
        struct hs_conn *xc = hs_conn_new(x, 0, day0 + 11 * 3600000LL);
        struct hs_buf pl = pl_appinfo(), f = {0};
        hs_frame_build(&f, HS_TAG_REALDATA, 1, pl.data, pl.len, NULL);
        hs_conn_input(x, xc, 40000, day0 + 11 * 3600000LL + 40000, f.data, f.len);
        size_t n;
        const uint8_t *o = hs_conn_output(xc, &n);
        hs_buf_append(&out[k], o, n);
        hs_buf_free(&pl);
        hs_buf_free(&f);
        hs_conn_free(x, xc);
        hs_dtu_free(x);
    }
    CHECK(out[0].len > 0 && out[0].len == out[1].len &&
              memcmp(out[0].data, out[1].data, out[0].len) == 0,
          "model not deterministic");
    hs_buf_free(&out[0]);
    hs_buf_free(&out[1]);

    core_guard_on_arrival(&cfg, day0 + 11 * 3600000LL);

    // Wire reference values (hoymiles.md 1.3).
    CHECK(hs_crc16((const uint8_t *)"123456789", 9) == 0x4B37, "CRC check value");
    CHECK(hs_crc16(NULL, 0) == 0xFFFF, "CRC of nothing");
    static const uint8_t frame_payload[] = {0x10, 0x80, 0xe1, 0x01, 0x18,
                                            0xb8, 0xdd, 0xc6, 0xa8, 0x06};
    CHECK(hs_crc16(frame_payload, sizeof(frame_payload)) == 0x4049, "CRC of the real frame");
}

// ---- Main -----------------------------------------------------------------------------------

static const struct selftest_scenario scenarios[] = {
    {"plain", test_plain},
    {"encrypted", test_encrypted},
    {"guard", test_guard},
    {"cloud", test_cloud},
    {"close_after_reply", test_close_after_reply},
    {"night", test_night},
    {"stale", test_stale},
    {"getconfig", test_getconfig},
    {"commands", test_commands},
    {"faults", test_faults},
    {"core_day", test_core_day},
};

int main(int argc, char **argv)
{
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--wrapper") == 0) {
        selftest.wrapper = argv[a + 1];
        selftest.slow = 5;
        a += 2;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: %s [--wrapper CMD] <e2m-hoymiles-sim> <scenario>...\n", argv[0]);
        return 2;
    }
    return selftest_run(argv[a], &argv[a + 1], argc - a - 1, scenarios,
                        sizeof(scenarios) / sizeof(scenarios[0]));
}
