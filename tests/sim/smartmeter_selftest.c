// SPDX-License-Identifier: MIT
// Self-test of e2m-smartmeter-sim: starts it, talks to it over TCP (and MQTT), checks it.
//
// usage: smartmeter_selftest [--wrapper "valgrind ..."] [--mosquitto PATH] <simulator>
//        <scenario>...
// Each scenario starts its own simulator (and broker), ends it with SIGTERM and requires exit
// status 0, so every run also checks the clean shutdown. Exit status: 0 pass, 1 fail, 2 usage.
#include "selftest_child.h"
#include "selftest_mqtt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <jansson.h>

static const char *mosquitto;

// ---- The simulator process --------------------------------------------------------------

static double sim_num(struct child *c, const char *what)
{
    return atof(child_cmd(c, "get %s", what));
}

// Starts the simulator and returns its TCP port; `mqtt` requires the broker connection.
static int sim_start(struct child *c, const char *sim, const char *const *args, bool mqtt)
{
    char line[SELFTEST_LINE_MAX];
    child_start(c, sim, args);
    child_expect(c, "ready tcp ", 5000, line);
    int port = atoi(line + 10);
    CHECK(port > 0, "no port in '%s'", line);
    CHECK(!mqtt || strstr(line, " mqtt"), "not connected to the broker: '%s'", line);
    return port;
}

// ---- TCP client -------------------------------------------------------------------------

static void conn_open(struct line_stream *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->crlf = true;
    c->fd = selftest_tcp_connect(port);
    CHECK(c->fd >= 0, "connect to %d: %s", port, strerror(errno));
}

static void conn_close(struct line_stream *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
}

static void conn_send(struct line_stream *c, const char *text)
{
    size_t n = strlen(text);
    CHECK(send(c->fd, text, n, MSG_NOSIGNAL) == (ssize_t)n, "send: %s", strerror(errno));
}

// Next line (without "\r\n"), or NULL after `timeout_ms` (scaled) or at end of stream (c->eof).
static char *conn_line(struct line_stream *c, int timeout_ms, char *out)
{
    return line_stream_read(c, (int64_t)timeout_ms * selftest.slow, out);
}

// Next line before `deadline` (absolute, already scaled); fails with `what` otherwise.
static char *conn_next(struct line_stream *c, int64_t deadline, char *out, const char *what)
{
    int64_t left = deadline - now_ms();
    CHECK(left > 0 && conn_line(c, (int)(left + selftest.slow - 1) / selftest.slow, out), "%s",
          what);
    return out;
}

static int64_t deadline_in(int ms)
{
    return now_ms() + (int64_t)ms * selftest.slow;
}

// Discards whatever arrives during `ms`.
static void conn_drain(struct line_stream *c, int ms)
{
    char line[SELFTEST_LINE_MAX];
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        conn_line(c, (int)(deadline - now_ms() + selftest.slow - 1) / selftest.slow, line);
    }
}

// Discards lines until the meter closes the connection; false if it is still open after `ms`.
static bool conn_wait_eof(struct line_stream *c, int ms)
{
    char line[SELFTEST_LINE_MAX];
    int64_t deadline = now_ms() + (int64_t)ms * selftest.slow;
    while (!c->eof && now_ms() < deadline) {
        conn_line(c, (int)(deadline - now_ms()), line);
    }
    return c->eof;
}

// Is `line` a firmware log line "Info:[L]MM/DD HH:MM:SS: text" of level `level`?
static bool is_log(const char *line, char level)
{
    const char *p = line;
    if (strncmp(p, "Info:[", 6) != 0 || p[6] != level || p[7] != ']') {
        return false;
    }
    static const char pattern[] = "00/00 00:00:00: ";
    p += 8;
    for (size_t i = 0; i < sizeof(pattern) - 1; i++) {
        if (pattern[i] == '0' ? (p[i] < '0' || p[i] > '9') : p[i] != pattern[i]) {
            return false;
        }
    }
    return true;
}

static const char *log_text(const char *line)
{
    return line + 8 + 16;
}

// Reads lines until a JSON reply whose "cmd" is `cmd` (NULL: any JSON object) and returns it;
// log lines are skipped.
static json_t *conn_reply(struct line_stream *c, const char *cmd, int timeout_ms)
{
    char line[SELFTEST_LINE_MAX];
    int64_t deadline = now_ms() + (int64_t)timeout_ms * selftest.slow;
    for (;;) {
        int64_t left = deadline - now_ms();
        CHECK(left > 0 && conn_line(c, (int)left, line), "no reply for %s%s", cmd ? cmd : "JSON",
              c->eof ? " (connection closed)" : "");
        if (strncmp(line, "Info:{", 6) != 0) {
            continue;
        }
        json_error_t err;
        json_t *doc = json_loads(line + 5, 0, &err);
        CHECK(json_is_object(doc), "reply is not a JSON object: %s", line);
        const char *got = json_string_value(json_object_get(doc, "cmd"));
        if (!cmd || (got && strcmp(got, cmd) == 0)) {
            return doc;
        }
        json_decref(doc);
    }
}

// Sends {"cmd":NAME}+extra and returns the reply, requiring "error":false.
static json_t *request(struct line_stream *c, const char *name, const char *extra)
{
    char text[512];
    snprintf(text, sizeof(text), "{\"cmd\":\"%s\"%s%s}\n", name, extra ? "," : "",
             extra ? extra : "");
    conn_send(c, text);
    json_t *r = conn_reply(c, name, 3000);
    CHECK(json_is_false(json_object_get(r, "error")), "%s failed: %s", name,
          json_string_value(json_object_get(r, "msg")));
    return r;
}

// Reads the info line every connection starts with.
static json_t *conn_info(struct line_stream *c)
{
    json_t *info = conn_reply(c, "info", 3000);
    CHECK(!json_object_get(info, "error"), "info carries an error key");
    return info;
}

static double num(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);
    CHECK(json_is_number(v), "'%s' is not a number", key);
    return json_number_value(v);
}

static const char *str(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);
    CHECK(json_is_string(v), "'%s' is not a string", key);
    return json_string_value(v);
}

static double elem(json_t *doc, const char *key, size_t i)
{
    json_t *a = json_object_get(doc, key);
    CHECK(json_is_array(a) && json_array_size(a) == 3, "'%s' is not a 3-element array", key);
    CHECK(json_is_number(json_array_get(a, i)), "'%s'[%zu] is not a number", key, i);
    return json_number_value(json_array_get(a, i));
}

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

// Waits up to `ms` and fails if any line that is not a log line arrives.
static void expect_no_reply(struct line_stream *c, int ms)
{
    char line[SELFTEST_LINE_MAX];
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0 || !conn_line(c, (int)left, line)) {
            return;
        }
        CHECK(strncmp(line, "Info:[", 6) == 0, "unexpected line: %s", line);
    }
}

// Counts the liveness lines (empty INFO log lines) arriving within `ms`.
static int count_liveness(struct line_stream *c, int ms)
{
    char line[SELFTEST_LINE_MAX];
    int n = 0;
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0 || !conn_line(c, (int)left, line)) {
            return n;
        }
        n += is_log(line, 'I') && log_text(line)[0] == '\0';
    }
}

// ---- Scenarios: TCP ---------------------------------------------------------------------

static void test_pm_commands(const char *sim)
{
    struct child ch;
    struct line_stream c;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--type", "powermeter", "--name", "pmtest", "--tick", "200", NULL};
    int port = sim_start(&ch, sim, args, false);
    conn_open(&c, port);

    json_t *info = conn_info(&c);
    CHECK(strcmp(str(info, "type"), "powermeter") == 0, "type");
    CHECK(strcmp(str(info, "version"), "2.3") == 0, "version");
    CHECK(strcmp(str(info, "name"), "pmtest") == 0, "name");
    CHECK(strcmp(str(info, "state"), "idle") == 0, "state");
    CHECK(json_is_integer(json_object_get(info, "relay")) && num(info, "relay") == 1, "relay");
    CHECK(num(info, "energy") > 0, "energy");
    CHECK(str(info, "ssids")[0] == '[', "ssids is not a bracketed string");
    CHECK(json_array_size(json_object_get(info, "calibration")) == 2, "calibration");
    CHECK(strlen(str(info, "MAC")) == 17 && str(info, "ip")[0], "MAC/ip");
    CHECK(json_is_number(json_object_get(info, "rssi")), "rssi");
    json_decref(info);

    json_t *r = request(&c, "getPower", NULL);
    double p = num(r, "activePower");
    CHECK(p > 0 && num(r, "apparentPower") >= p && num(r, "reactivePower") >= 0, "powers");
    CHECK(strcmp(str(r, "unit"), "W/var/VA") == 0, "power unit");
    json_decref(r);

    child_cmd(&ch, "set power 460");
    child_cmd(&ch, "set voltage 230");
    r = request(&c, "getPower", NULL);
    CHECK(NEAR(num(r, "activePower"), 460, 0.01), "pinned power %f", num(r, "activePower"));
    json_decref(r);
    r = request(&c, "getVoltage", NULL);
    CHECK(NEAR(num(r, "voltage"), 230, 0.01) && strcmp(str(r, "unit"), "V") == 0, "voltage");
    json_decref(r);
    r = request(&c, "getCurrent", NULL);
    CHECK(NEAR(num(r, "current"), 2000, 1) && strcmp(str(r, "unit"), "mA") == 0,
          "current %f mA, want 2000", num(r, "current"));
    json_decref(r);
    r = request(&c, "getEnergy", NULL);
    CHECK(num(r, "energy") > 0 && strcmp(str(r, "unit"), "Wh") == 0, "energy");
    CHECK(json_is_integer(json_object_get(r, "startTs")) && num(r, "days") == 30, "startTs/days");
    CHECK(strlen(str(r, "start")) == 23, "start '%s'", str(r, "start"));
    json_decref(r);
    r = request(&c, "getPeriod", NULL);
    CHECK(num(r, "period") > 49.9 && num(r, "period") < 50.1 && !strcmp(str(r, "unit"), "Hz"),
          "period");
    json_decref(r);

    // Energy integrates the power.
    double e0 = sim_num(&ch, "energy");
    sleep_ms(700);
    double e1 = sim_num(&ch, "energy");
    CHECK(e1 > e0 && e1 - e0 < 460.0 * 5 / 3600, "energy %f -> %f", e0, e1);

    // Keepalive: no answer; "?" answers "Setup done".
    child_drain(&ch);
    conn_send(&c, "!\r\n");
    expect_no_reply(&c, 300);
    child_expect(&ch, "cmd !", 1000, line);
    conn_send(&c, "?\n");
    int64_t deadline = deadline_in(2000);
    for (;;) {
        conn_next(&c, deadline, line, "no answer to ?");
        if (strncmp(line, "Info:[", 6) != 0) {
            break;
        }
    }
    CHECK(strcmp(line, "Info:Setup done") == 0, "? answered '%s'", line);

    // Unknown command: error reply and a warning log line.
    conn_send(&c, "{\"cmd\":\"frobnicate\"}\n");
    bool warned = false;
    deadline = deadline_in(2000);
    for (;;) {
        conn_next(&c, deadline, line, "no answer to an unknown command");
        if (is_log(line, 'W')) {
            warned = strcmp(log_text(line), "Received unknown command") == 0;
            continue;
        }
        if (strncmp(line, "Info:{", 6) == 0) {
            break;
        }
    }
    r = json_loads(line + 5, 0, NULL);
    CHECK(warned && json_is_true(json_object_get(r, "error")) &&
              strcmp(str(r, "msg"), "unknown command") == 0 &&
              strcmp(str(r, "cmd"), "frobnicate") == 0,
          "unknown command reply: %s", line);
    json_decref(r);
    child_expect(&ch, "cmd frobnicate", 1000, line);

    // Missing "cmd": error with the syntax hint.
    conn_send(&c, "{\"foo\":1}\n");
    r = conn_reply(&c, NULL, 2000);
    CHECK(json_is_true(json_object_get(r, "error")) && !json_object_get(r, "cmd") &&
              strncmp(str(r, "msg"), "Syntax error", 12) == 0,
          "missing cmd reply");
    json_decref(r);

    // Invalid JSON: only an error log line.
    conn_send(&c, "{\"cmd\":getPower\n");
    deadline = deadline_in(2000);
    for (;;) {
        conn_next(&c, deadline, line, "no error log line for invalid JSON");
        CHECK(strncmp(line, "Info:{", 6) != 0, "invalid JSON got a reply: %s", line);
        if (is_log(line, 'E')) {
            break;
        }
    }
    CHECK(strncmp(log_text(line), "deserializeJson() failed: __cmd_:getPower", 41) == 0,
          "error line: %s", line);
    expect_no_reply(&c, 300);
    child_expect(&ch, "cmd (invalid)", 1000, line);

    // resetEnergy with a start value, then the control channel's counter.
    json_decref(request(&c, "resetEnergy", "\"energy\":100"));
    double e = sim_num(&ch, "energy");
    CHECK(e >= 100 && e < 101, "energy after reset %f", e);
    r = request(&c, "getEnergy", NULL);
    CHECK(num(r, "days") == 0 && fabs(num(r, "startTs") - (double)time(NULL)) < 5, "reset ts");
    json_decref(r);
    child_cmd(&ch, "set energy 5000");
    CHECK(NEAR(sim_num(&ch, "energy"), 5000, 1), "set energy");

    // Log level warning silences the liveness lines; info brings them back.
    CHECK(count_liveness(&c, 700) >= 2, "no liveness lines at level info");
    json_decref(request(&c, "log", "\"level\":\"warning\""));
    CHECK(count_liveness(&c, 700) == 0, "liveness lines at level warning");
    conn_send(&c, "{\"cmd\":\"log\",\"level\":\"loud\"}\n");
    r = conn_reply(&c, "log", 2000);
    CHECK(json_is_true(json_object_get(r, "error")), "bad log level accepted");
    json_decref(r);
    json_decref(request(&c, "log", "\"level\":\"info\""));
    CHECK(count_liveness(&c, 700) >= 2, "liveness lines did not come back");

    // "info" on request, without an error key.
    conn_send(&c, "{\"cmd\":\"info\"}\n");
    json_decref(conn_info(&c));

    conn_close(&c);
    child_stop(&ch);
}

static void test_pm_switch(const char *sim)
{
    struct child ch;
    struct line_stream c, c2;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--type", "powermeter", "--tick", "200", NULL};
    int port = sim_start(&ch, sim, args, false);
    conn_open(&c, port);
    json_decref(conn_info(&c));
    conn_open(&c2, port);
    json_decref(conn_info(&c2));

    json_t *r = request(&c, "switch", "\"payload\":{\"value\":0}");
    CHECK(strncmp(str(r, "msg"), "Switching: ", 11) == 0, "switch msg");
    json_decref(r);
    child_expect(&ch, "relay ", 2000, line);
    CHECK(strcmp(line, "relay 0") == 0, "got '%s'", line);
    CHECK(strcmp(child_cmd(&ch, "get relay"), "0") == 0, "get relay after off");
    r = request(&c, "getPower", NULL);
    CHECK(num(r, "activePower") == 0 && num(r, "apparentPower") == 0, "power with relay off");
    json_decref(r);
    r = request(&c, "getCurrent", NULL);
    CHECK(num(r, "current") == 0, "current with relay off");
    json_decref(r);
    conn_send(&c, "{\"cmd\":\"info\"}\n");
    r = conn_info(&c);
    CHECK(num(r, "relay") == 0, "info relay after off");
    json_decref(r);
    // The other client sees the log line of the switch.
    int64_t deadline = deadline_in(1000);
    do {
        conn_next(&c2, deadline, line, "no 'Switched off' log line on the other client");
    } while (!(is_log(line, 'I') && strcmp(log_text(line), "Switched off") == 0));

    // Switching off again changes nothing; toggle turns on; the string "false" is 0.
    json_decref(request(&c, "switch", "\"payload\":{\"value\":0}"));
    json_decref(request(&c, "switch", "\"payload\":{\"value\":-1}"));
    child_expect(&ch, "relay ", 2000, line);
    CHECK(strcmp(line, "relay 1") == 0, "toggle: got '%s'", line);
    json_decref(request(&c, "switch", "\"payload\":{\"value\":\"false\"}"));
    child_expect(&ch, "relay ", 2000, line);
    CHECK(strcmp(line, "relay 0") == 0, "\"false\": got '%s'", line);
    json_decref(request(&c, "switch", "\"payload\":{\"value\":1}"));
    child_expect(&ch, "relay ", 2000, line);
    CHECK(strcmp(line, "relay 1") == 0, "on: got '%s'", line);
    CHECK(strcmp(child_cmd(&ch, "get relay"), "1") == 0, "get relay after on");
    conn_send(&c, "{\"cmd\":\"info\"}\n");
    r = conn_info(&c);
    CHECK(num(r, "relay") == 1, "info relay after on");
    json_decref(r);

    conn_send(&c, "{\"cmd\":\"switch\",\"payload\":{}}\n");
    r = conn_reply(&c, "switch", 2000);
    CHECK(json_is_true(json_object_get(r, "error")) &&
              strcmp(str(r, "msg"), "Not a valid \"switch\" command") == 0,
          "switch without value");
    json_decref(r);

    // A local change (the button on the meter) shows up the same way.
    child_cmd(&ch, "set relay 0");
    child_expect(&ch, "relay ", 2000, line);
    CHECK(strcmp(line, "relay 0") == 0, "local switch: got '%s'", line);

    conn_close(&c);
    conn_close(&c2);
    child_stop(&ch);
}

static void test_sm_commands(const char *sim)
{
    struct child ch;
    struct line_stream c;
    const char *args[] = {"--type", "smartmeter", "--name", "smtest", "--tick", "200", NULL};
    int port = sim_start(&ch, sim, args, false);
    conn_open(&c, port);

    json_t *info = conn_info(&c);
    CHECK(strcmp(str(info, "type"), "smartmeter") == 0, "type");
    CHECK(strcmp(str(info, "version"), "2.2") == 0, "version");
    double e[3];
    CHECK(sscanf(str(info, "energy"), "[%lf, %lf, %lf]", &e[0], &e[1], &e[2]) == 3,
          "energy string '%s'", str(info, "energy"));
    CHECK(!json_object_get(info, "relay") && !json_object_get(info, "MAC"), "relay/MAC keys");
    CHECK(json_array_size(json_object_get(info, "calibration")) == 6, "calibration");
    json_decref(info);

    child_cmd(&ch, "set power 100 200 300");
    child_cmd(&ch, "set voltage 230");
    json_t *r = request(&c, "getPower", NULL);
    for (size_t i = 0; i < 3; i++) {
        CHECK(NEAR(elem(r, "activePower", i), 100.0 * (double)(i + 1), 0.01), "L%zu power", i);
        CHECK(elem(r, "apparentPower", i) >= elem(r, "activePower", i), "apparent");
        CHECK(elem(r, "reactivePower", i) >= 0, "reactive");
    }
    json_decref(r);
    r = request(&c, "getVoltage", NULL);
    CHECK(NEAR(elem(r, "voltage", 2), 230, 0.01), "voltage");
    json_decref(r);
    r = request(&c, "getCurrent", NULL);
    CHECK(NEAR(elem(r, "current", 0), 100 / 230.0 * 1000, 0.2) &&
              NEAR(elem(r, "current", 2), 300 / 230.0 * 1000, 0.2) &&
              strcmp(str(r, "unit"), "mA") == 0,
          "current in mA");
    json_decref(r);
    r = request(&c, "getPeriod", NULL);
    CHECK(elem(r, "period", 1) > 49.9 && elem(r, "period", 1) < 50.1, "period");
    json_decref(r);

    // The SmartMeter has no relay: "switch" is an unknown command.
    conn_send(&c, "{\"cmd\":\"switch\",\"payload\":{\"value\":1}}\n");
    r = conn_reply(&c, "switch", 2000);
    CHECK(json_is_true(json_object_get(r, "error")) &&
              strcmp(str(r, "msg"), "unknown command") == 0,
          "switch on the SmartMeter");
    json_decref(r);

    json_decref(request(&c, "resetEnergy", "\"energy\":[1000,2000,3000]"));
    r = request(&c, "getEnergy", NULL);
    for (size_t i = 0; i < 3; i++) {
        double v = elem(r, "energy", i);
        CHECK(v >= 1000.0 * (double)(i + 1) && v < 1000.0 * (double)(i + 1) + 1, "L%zu %f", i, v);
    }
    CHECK(strcmp(str(r, "unit"), "Wh") == 0, "energy unit");
    json_decref(r);
    double total = sim_num(&ch, "energy");
    CHECK(total >= 6000 && total < 6003, "total %f", total);
    sleep_ms(600);
    CHECK(sim_num(&ch, "energy") > total, "energy does not rise");
    conn_send(&c, "{\"cmd\":\"resetEnergy\",\"energy\":[1]}\n");
    r = conn_reply(&c, "resetEnergy", 2000);
    CHECK(json_is_true(json_object_get(r, "error")) &&
              strcmp(str(r, "msg"), "Need 3 energy values") == 0,
          "resetEnergy with one value");
    json_decref(r);

    conn_close(&c);
    child_stop(&ch);
}

static void test_liveness(const char *sim)
{
    struct child ch;
    struct line_stream c;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--type", "powermeter", NULL};
    int port = sim_start(&ch, sim, args, false);
    conn_open(&c, port);
    json_decref(conn_info(&c));
    // Without --tick the liveness lines come once a second.
    int64_t at[3];
    for (int i = 0; i < 3;) {
        CHECK(conn_line(&c, 2500, line), "no liveness line within 2.5 s");
        if (is_log(line, 'I') && log_text(line)[0] == '\0') {
            at[i++] = now_ms();
        }
    }
    for (int i = 1; i < 3; i++) {
        int64_t gap = at[i] - at[i - 1];
        CHECK(gap >= 800 && gap <= 1500 * selftest.slow, "liveness gap %lld ms", (long long)gap);
    }
    conn_close(&c);
    child_stop(&ch);
}

static void test_clients(const char *sim)
{
    struct child ch;
    struct line_stream c[4];
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--type", "smartmeter", "--tick", "200", NULL};
    int port = sim_start(&ch, sim, args, false);
    for (int i = 0; i < 3; i++) {
        conn_open(&c[i], port);
        json_decref(conn_info(&c[i]));
    }
    CHECK(strcmp(child_cmd(&ch, "clients"), "3") == 0, "3 clients");
    // The fourth connection is accepted by TCP and closed without a line; the others are told.
    conn_open(&c[3], port);
    CHECK(!conn_line(&c[3], 2000, line) && c[3].eof, "4th client got '%s'", line);
    int64_t deadline = deadline_in(1000);
    do {
        conn_next(&c[0], deadline, line, "no 'To much clients' log line");
    } while (!(is_log(line, 'I') && strstr(line, "To much clients")));
    CHECK(strcmp(child_cmd(&ch, "clients"), "3") == 0, "still 3 clients");
    conn_close(&c[3]);
    // A free slot is taken again.
    conn_close(&c[1]);
    deadline = deadline_in(2000);
    while (strcmp(child_cmd(&ch, "clients"), "2") != 0) {
        CHECK(now_ms() < deadline, "closed client still counted");
        sleep_ms(50);
    }
    conn_open(&c[1], port);
    json_decref(conn_info(&c[1]));
    json_decref(request(&c[1], "getVoltage", NULL));
    for (int i = 0; i < 3; i++) {
        conn_close(&c[i]);
    }
    child_stop(&ch);
}

static void test_faults(const char *sim)
{
    struct child ch;
    struct line_stream c, d;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--type", "powermeter", "--tick", "200", NULL};
    int port = sim_start(&ch, sim, args, false);
    conn_open(&c, port);
    json_decref(conn_info(&c));

    // stall: nothing at all comes back, not even liveness; commands are not answered late.
    child_cmd(&ch, "fault stall");
    conn_drain(&c, 100); // lines sent before the stall
    conn_send(&c, "{\"cmd\":\"getPower\"}\n");
    CHECK(!conn_line(&c, 800, line), "stalled meter sent '%s'", line);
    child_expect(&ch, "cmd (stalled)", 1000, line);
    conn_open(&d, port);
    CHECK(!conn_line(&d, 400, line) && !d.eof, "stalled meter greeted a new client");
    conn_close(&d);
    child_cmd(&ch, "fault none");
    json_decref(request(&c, "getVoltage", NULL));

    // silent: commands are answered, liveness lines stop.
    child_cmd(&ch, "fault silent");
    count_liveness(&c, 250);
    json_decref(request(&c, "getVoltage", NULL));
    CHECK(count_liveness(&c, 800) == 0, "liveness lines while silent");
    child_cmd(&ch, "fault none");
    CHECK(count_liveness(&c, 800) >= 2, "liveness lines did not come back");

    // garbage: every line is random bytes.
    child_cmd(&ch, "fault garbage");
    conn_drain(&c, 300);
    conn_send(&c, "{\"cmd\":\"getVoltage\"}\n");
    for (int i = 0; i < 3; i++) {
        CHECK(conn_line(&c, 1000, line), "no garbage line");
        CHECK(strncmp(line, "Info:", 5) != 0, "garbage mode sent '%s'", line);
    }
    child_cmd(&ch, "fault none");
    json_decref(request(&c, "getVoltage", NULL));

    // drop: connections closed, new ones closed at once; then back to normal.
    conn_open(&d, port);
    json_decref(conn_info(&d));
    child_cmd(&ch, "fault drop");
    CHECK(conn_wait_eof(&c, 1000), "first client not dropped");
    CHECK(conn_wait_eof(&d, 1000), "second client not dropped");
    conn_close(&c);
    conn_close(&d);
    conn_open(&c, port);
    CHECK(!conn_line(&c, 1000, line) && c.eof, "new client not dropped");
    conn_close(&c);
    CHECK(strcmp(child_cmd(&ch, "clients"), "0") == 0, "clients while dropping");
    child_cmd(&ch, "fault none");
    conn_open(&c, port);
    json_decref(conn_info(&c));
    json_decref(request(&c, "getPower", NULL));
    conn_close(&c);
    child_stop(&ch);
}

static void test_restart(const char *sim)
{
    struct child ch;
    struct line_stream c;
    char line[SELFTEST_LINE_MAX];
    // A 500 ms tick: the reboot takes a second, long enough to see the refused connection.
    const char *args[] = {"--type", "powermeter", "--tick", "500", NULL};
    int port = sim_start(&ch, sim, args, false);
    conn_open(&c, port);
    json_decref(conn_info(&c));
    json_decref(request(&c, "switch", "\"payload\":{\"value\":0}"));
    child_expect(&ch, "relay 0", 2000, line);
    double e0 = sim_num(&ch, "energy");

    conn_send(&c, "{\"cmd\":\"restart\"}\n");
    child_expect(&ch, "reboot", 2000, line);
    CHECK(conn_wait_eof(&c, 1000), "connection not closed by restart");
    conn_close(&c);
    // While it boots, connections are refused.
    int fd = selftest_tcp_connect(port);
    CHECK(fd < 0 && errno == ECONNREFUSED, "connect during reboot: %s",
          fd < 0 ? strerror(errno) : "accepted");
    child_expect(&ch, "boot", 3000, line);
    conn_open(&c, port);
    json_t *info = conn_info(&c);
    CHECK(num(info, "relay") == 0, "relay state lost across restart");
    CHECK(num(info, "energy") >= e0 - 0.01, "energy lost across restart");
    json_decref(info);
    json_decref(request(&c, "getEnergy", NULL));
    conn_close(&c);
    child_stop(&ch);
}

static void test_fw1(const char *sim)
{
    struct child ch;
    struct line_stream c;
    char line[SELFTEST_LINE_MAX];
    const char *args[] = {"--type", "powermeter", "--firmware", "1", "--tick", "200", NULL};
    int port = sim_start(&ch, sim, args, false);
    conn_open(&c, port);
    json_t *info = conn_info(&c);
    CHECK(strcmp(str(info, "version"), "1.3") == 0, "version");
    CHECK(!json_object_get(info, "MAC") && !json_object_get(info, "psram"), "fw 1 info keys");
    json_decref(info);
    // Version 1 puts the status document into its liveness lines (energy in kWh).
    json_t *status = NULL;
    int64_t deadline = deadline_in(1000);
    while (!status) {
        conn_next(&c, deadline, line, "no liveness line with the status document");
        if (is_log(line, 'I') && log_text(line)[0] == '{') {
            status = json_loads(log_text(line), 0, NULL);
        }
    }
    double kwh = num(status, "energy"), wh = sim_num(&ch, "energy");
    CHECK(fabs(kwh * 1000 - wh) < 20, "fw 1 energy %f kWh vs %f Wh", kwh, wh);
    CHECK(json_is_string(json_object_get(status, "ts")), "fw 1 ts");
    json_decref(status);
    // getPower does not exist in version 1; replies carry no "cmd" key.
    conn_send(&c, "{\"cmd\":\"getPower\"}\n");
    json_t *r = conn_reply(&c, NULL, 2000);
    CHECK(strcmp(str(r, "msg"), "unknown command") == 0 && !json_object_get(r, "error"),
          "fw 1 getPower");
    json_decref(r);
    conn_send(&c, "{\"cmd\":\"switch\",\"payload\":{\"value\":0}}\n");
    r = conn_reply(&c, NULL, 2000);
    CHECK(json_is_false(json_object_get(r, "error")) &&
              strcmp(str(r, "msg"), "Switching: Off") == 0,
          "fw 1 switch");
    json_decref(r);
    child_expect(&ch, "relay 0", 2000, line);
    conn_close(&c);
    child_stop(&ch);
}

static void test_static(const char *sim)
{
    struct child ch;
    struct line_stream c;
    const char *args[] = {"--type", "smartmeter", "--static", "--tick", "100", NULL};
    int port = sim_start(&ch, sim, args, false);
    double p0 = sim_num(&ch, "power"), e0 = sim_num(&ch, "energy");
    sleep_ms(500);
    CHECK(sim_num(&ch, "power") == p0 && sim_num(&ch, "energy") == e0, "values moved");
    child_cmd(&ch, "step 10");
    CHECK(sim_num(&ch, "energy") > e0, "step did not integrate energy");
    child_cmd(&ch, "run");
    double e1 = sim_num(&ch, "energy");
    sleep_ms(400);
    CHECK(sim_num(&ch, "energy") > e1, "run did not resume");
    // End of file on stdin only ends the control channel.
    child_close_stdin(&ch);
    sleep_ms(200);
    conn_open(&c, port);
    json_decref(conn_info(&c));
    json_decref(request(&c, "getPower", NULL));
    conn_close(&c);
    child_stop(&ch);
}

// ---- MQTT -------------------------------------------------------------------------------

// Waits for the next message on `topic` and copies its payload; other messages are dropped.
static bool mq_wait(MQTTClient m, const char *topic, int timeout_ms, char *out, size_t n)
{
    int64_t deadline = now_ms() + (int64_t)timeout_ms * selftest.slow;
    while (now_ms() < deadline) {
        char *t = NULL;
        int tlen = 0;
        MQTTClient_message *msg = NULL;
        int rc = MQTTClient_receive(m, &t, &tlen, &msg, 100);
        CHECK(rc == MQTTCLIENT_SUCCESS || rc == MQTTCLIENT_TOPICNAME_TRUNCATED,
              "test client lost the broker (%d)", rc);
        if (!msg) {
            continue;
        }
        bool match = strcmp(t, topic) == 0;
        if (match) {
            size_t len = (size_t)msg->payloadlen < n - 1 ? (size_t)msg->payloadlen : n - 1;
            memcpy(out, msg->payload, len);
            out[len] = '\0';
        }
        MQTTClient_freeMessage(&msg);
        MQTTClient_free(t);
        if (match) {
            return true;
        }
    }
    return false;
}

static json_t *mq_json(MQTTClient m, const char *topic)
{
    char payload[4096];
    CHECK(mq_wait(m, topic, 3000, payload, sizeof(payload)), "nothing on %s", topic);
    json_t *doc = json_loads(payload, 0, NULL);
    CHECK(json_is_object(doc), "%s: not a JSON object: %s", topic, payload);
    return doc;
}

static void test_mqtt_pm(const char *sim)
{
    struct child ch;
    char mqtt[64], payload[4096], line[SELFTEST_LINE_MAX];
    int bport = selftest_broker_start(mosquitto);
    snprintf(mqtt, sizeof(mqtt), "127.0.0.1:%d", bport);
    const char *args[] = {"--type",     "powermeter", "--name", "pmq", "--mqtt", mqtt,
                          "--interval", "0.5",        "--tick", "200", NULL};
    sim_start(&ch, sim, args, true);
    MQTTClient m = mq_connect(bport, "selftest", "powermeter/#");

    CHECK(mq_wait(m, "powermeter/pmq/state/switch", 2000, payload, sizeof(payload)) &&
              strcmp(payload, "true") == 0,
          "retained state/switch '%s'", payload);
    json_t *s = mq_json(m, "powermeter/pmq/state/sample");
    CHECK(json_object_size(s) == 6, "sample has %zu keys", json_object_size(s));
    CHECK(json_is_integer(json_object_get(s, "ts")), "fw 2 ts must be a number");
    CHECK(json_is_boolean(json_object_get(s, "inUse")), "inUse");
    double wh = sim_num(&ch, "energy");
    CHECK(fabs(num(s, "energy") - wh) < 10, "energy %f vs %f Wh", num(s, "energy"), wh);
    CHECK(num(s, "volt") > 227 && num(s, "volt") < 233, "volt");
    CHECK(NEAR(num(s, "current"), num(s, "power") / num(s, "volt"), 0.05), "current in A");
    json_decref(s);

    // Switch via MQTT: relay line, retained state, power 0 in the samples.
    mq_publish(m, "powermeter/pmq/switch", "off");
    child_expect(&ch, "relay 0", 2000, line);
    CHECK(mq_wait(m, "powermeter/pmq/state/switch", 2000, payload, sizeof(payload)) &&
              strcmp(payload, "false") == 0,
          "state/switch after off '%s'", payload);
    s = mq_json(m, "powermeter/pmq/state/sample");
    CHECK(num(s, "power") == 0 && json_is_false(json_object_get(s, "inUse")), "sample when off");
    json_decref(s);
    MQTTClient late = mq_connect(bport, "selftest-late", "powermeter/#");
    CHECK(mq_wait(late, "powermeter/pmq/state/switch", 2000, payload, sizeof(payload)) &&
              strcmp(payload, "false") == 0,
          "retained state/switch for a new subscriber '%s'", payload);
    mq_close(&late);
    mq_publish(m, "powermeter/pmq/switch", "ON"); // not exact lower case: ignored
    mq_publish(m, "powermeter/pmq/switch", "true");
    child_expect(&ch, "relay ", 2000, line);
    CHECK(strcmp(line, "relay 1") == 0, "after 'ON' and 'true': %s", line);

    // Commands via MQTT answer on state/info.
    mq_publish(m, "powermeter/pmq/cmd", "{\"cmd\":\"getVoltage\"}");
    json_t *r = mq_json(m, "powermeter/pmq/state/info");
    CHECK(json_is_false(json_object_get(r, "error")) && num(r, "voltage") > 227, "cmd reply");
    json_decref(r);
    child_expect(&ch, "cmd getVoltage", 2000, line);
    mq_publish(m, "powermeter/pmq/cmd", "not json");
    CHECK(mq_wait(m, "powermeter/pmq/state/info", 2000, payload, sizeof(payload)) &&
              strcmp(payload, "Parse error") == 0,
          "invalid cmd answered '%s'", payload);
    mq_publish(m, "powermeter/pmq/state", "");
    r = mq_json(m, "powermeter/pmq/state/info");
    CHECK(strcmp(str(r, "relay"), "on") == 0 && strcmp(str(r, "sampleState"), "idle") == 0 &&
              json_is_string(json_object_get(r, "ts")),
          "state reply");
    json_decref(r);
    child_cmd(&ch, "set voltage 231");
    mq_publish(m, "powermeter/pmq/sample", "v");
    r = mq_json(m, "powermeter/pmq/state/sample");
    while (!json_object_get(r, "value")) { // periodic samples share the topic
        json_decref(r);
        r = mq_json(m, "powermeter/pmq/state/sample");
    }
    CHECK(NEAR(num(r, "value"), 231, 0.01) && strcmp(str(r, "unit"), "V") == 0, "single value");
    json_decref(r);

    // A broadcast reaches the meter (and is reported on stderr).
    mq_publish(m, "powermeter/switch", "off");
    child_expect(&ch, "relay 0", 2000, line);
    CHECK(child_stderr_has(&ch, "broadcast powermeter/switch off"), "broadcast not logged");

    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

static void test_mqtt_pm1(const char *sim)
{
    struct child ch;
    char mqtt[64];
    int bport = selftest_broker_start(mosquitto);
    snprintf(mqtt, sizeof(mqtt), "127.0.0.1:%d", bport);
    const char *args[] = {"--type", "powermeter", "--firmware", "1",   "--name", "pm1",
                          "--mqtt", mqtt,         "--interval", "0.5", NULL};
    sim_start(&ch, sim, args, true);
    MQTTClient m = mq_connect(bport, "selftest", "powermeter/#");
    json_t *s = mq_json(m, "powermeter/pm1/state/sample");
    double wh = sim_num(&ch, "energy");
    CHECK(fabs(num(s, "energy") * 1000 - wh) < 20, "fw 1 energy %f kWh vs %f Wh", num(s, "energy"),
          wh);
    CHECK(json_is_string(json_object_get(s, "ts")) && atoll(str(s, "ts")) > 1600000000,
          "fw 1 ts must be a string of unix seconds");
    json_decref(s);
    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

static void test_mqtt_sm(const char *sim)
{
    struct child ch;
    char mqtt[64], payload[4096];
    int bport = selftest_broker_start(mosquitto);
    snprintf(mqtt, sizeof(mqtt), "127.0.0.1:%d", bport);
    const char *args[] = {"--type",     "smartmeter", "--name", "smq", "--mqtt", mqtt,
                          "--interval", "0.5",        "--tick", "200", NULL};
    sim_start(&ch, sim, args, true);
    MQTTClient m = mq_connect(bport, "selftest", "powermeter/#");
    child_cmd(&ch, "set power 100 200 300");
    child_cmd(&ch, "set voltage 230");
    // The first sample may predate the set; the second cannot.
    json_decref(mq_json(m, "powermeter/smq/state/sample"));
    json_t *s = mq_json(m, "powermeter/smq/state/sample");
    static const char *const keys[] = {"power", "energy", "current", "volt", "ts",   "v_l1",
                                       "v_l2",  "v_l3",   "i_l1",    "i_l2", "i_l3", "p_l1",
                                       "p_l2",  "p_l3",   "e_l1",    "e_l2", "e_l3"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        CHECK(json_object_get(s, keys[i]), "sample lacks %s", keys[i]);
    }
    CHECK(json_is_string(json_object_get(s, "ts")), "SmartMeter ts must be a string");
    CHECK(NEAR(num(s, "power"), 600, 0.01) && NEAR(num(s, "p_l2"), 200, 0.01), "powers");
    CHECK(NEAR(num(s, "current"), 600 / 230.0, 0.02), "current in A");
    double wh = sim_num(&ch, "energy");
    CHECK(fabs(num(s, "energy") * 1000 - wh) < 20, "energy %f kWh vs %f Wh", num(s, "energy"), wh);
    json_decref(s);

    mq_publish(m, "powermeter/smq/cmd", "{\"cmd\":\"getCurrent\"}");
    json_t *r = mq_json(m, "powermeter/smq/state/info");
    CHECK(NEAR(elem(r, "current", 2), 300 / 230.0 * 1000, 0.2), "cmd reply");
    json_decref(r);
    mq_publish(m, "powermeter/smq/state", "");
    r = mq_json(m, "powermeter/smq/state/info");
    CHECK(!json_object_get(r, "relay") && strcmp(str(r, "sampleState"), "idle") == 0,
          "SmartMeter state reply");
    json_decref(r);
    mq_publish(m, "powermeter/smq/sample", "p");
    r = mq_json(m, "powermeter/smq/state/info");
    CHECK(strcmp(str(r, "value"), "100.00,200.00,300.00") == 0 && !strcmp(str(r, "unit"), "W"),
          "single value %s", str(r, "value"));
    json_decref(r);
    // No relay: the switch topic is ignored and no state/switch exists.
    mq_publish(m, "powermeter/smq/switch", "off");
    CHECK(!mq_wait(m, "powermeter/smq/state/switch", 800, payload, sizeof(payload)),
          "SmartMeter published state/switch");
    CHECK(!child_saw(&ch, "relay", 100), "SmartMeter printed a relay line");
    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

// ---- Main -------------------------------------------------------------------------------

static const struct selftest_scenario scenarios[] = {
    {"pm_commands", test_pm_commands}, {"pm_switch", test_pm_switch},
    {"sm_commands", test_sm_commands}, {"liveness", test_liveness},
    {"clients", test_clients},         {"faults", test_faults},
    {"restart", test_restart},         {"fw1", test_fw1},
    {"static", test_static},           {"mqtt_pm", test_mqtt_pm},
    {"mqtt_pm1", test_mqtt_pm1},       {"mqtt_sm", test_mqtt_sm},
};

int main(int argc, char **argv)
{
    int a = 1;
    for (; a + 1 < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
        if (strcmp(argv[a], "--wrapper") == 0) {
            selftest.wrapper = argv[a + 1];
            selftest.slow = 5;
        } else if (strcmp(argv[a], "--mosquitto") == 0) {
            mosquitto = argv[a + 1];
        } else {
            break;
        }
    }
    if (argc - a < 2) {
        fprintf(stderr,
                "usage: %s [--wrapper CMD] [--mosquitto PATH] <e2m-smartmeter-sim> <scenario>...\n",
                argv[0]);
        return 2;
    }
    // The simulator prints a line for every command a client sends, most of which no scenario
    // asks for: keep the newest ones.
    selftest.backlog_max = 256;
    selftest.cleanup = selftest_broker_stop;
    return selftest_run(argv[a], &argv[a + 1], argc - a - 1, scenarios,
                        sizeof(scenarios) / sizeof(scenarios[0]));
}
