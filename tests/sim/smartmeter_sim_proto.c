// SPDX-License-Identifier: MIT
// e2m-smartmeter-sim protocol: the JSON command set, info, samples and MQTT requests.
//
// Reply shapes, key order and texts follow the public firmware (PowerMeter Version_2 "2.3" and
// Version_1 "1.3", SmartMeter Version_2 "2.2"); see the simulator's section in README.md for
// what is simulated and what is left out.
#include "smartmeter_sim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- JSON helpers -----------------------------------------------------------------------

char *sm_dump(const json_t *doc)
{
    return json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12) |
                               JSON_ENCODE_ANY);
}

static void set_str(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, json_string(v));
}

static void set_real(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, json_real(v));
}

static void set_int(json_t *o, const char *key, long long v)
{
    json_object_set_new(o, key, json_integer(v));
}

static void set_fmt(json_t *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_fmt(json_t *o, const char *key, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    set_str(o, key, buf);
}

// A per-phase array of `f(s, phase)` rounded to `decimals`, scaled by `scale`.
static json_t *phase_array(const struct sm_sim *s, double (*f)(const struct sm_sim *, int),
                           double scale, int decimals)
{
    json_t *a = json_array();
    for (int p = 0; p < 3; p++) {
        json_array_append_new(a, json_real(sm_round_to(f(s, p) * scale, decimals)));
    }
    return a;
}

static double voltage_of(const struct sm_sim *s, int p)
{
    return s->m.voltage[p];
}

static double energy_of(const struct sm_sim *s, int p)
{
    return s->m.energy[p];
}

static double freq_of(const struct sm_sim *s, int p)
{
    return s->m.freq + 0.001 * (p - 1);
}

static double angle_of(const struct sm_sim *s, int p)
{
    return acos(s->m.pf[p]) * 180.0 / M_PI;
}

// ArduinoJson's as<int>() as the firmware relies on it: numbers truncate, true is 1, a string
// starting with 't' is 1, other strings give their leading integer or 0.
static long as_int(const json_t *v)
{
    if (json_is_integer(v)) {
        return (long)json_integer_value(v);
    }
    if (json_is_real(v)) {
        return (long)json_real_value(v);
    }
    if (json_is_true(v)) {
        return 1;
    }
    if (json_is_string(v)) {
        const char *str = json_string_value(v);
        return str[0] == 't' ? 1 : strtol(str, NULL, 10);
    }
    return 0;
}

static double as_num(const json_t *v)
{
    if (json_is_number(v)) {
        return json_number_value(v);
    }
    if (json_is_true(v)) {
        return 1;
    }
    if (json_is_string(v)) {
        return strtod(json_string_value(v), NULL);
    }
    return 0;
}

static json_t *payload_get(json_t *req, const char *key)
{
    return json_object_get(json_object_get(req, "payload"), key);
}

// ---- Info and samples -------------------------------------------------------------------

json_t *sm_info(struct sm_sim *s)
{
    bool pm = s->type == SM_POWERMETER, fw1 = pm && s->firmware == 1;
    char buf[64];
    json_t *o = json_object();
    set_str(o, "cmd", "info");
    set_str(o, "type", pm ? "powermeter" : "smartmeter");
    set_str(o, "version", fw1 ? "1.3" : pm ? "2.3" : "2.2");
    set_str(o, "compiled",
            fw1  ? "Mar  2 2021 10:21:43"
            : pm ? "Nov 14 2024 09:12:05"
                 : "Nov 10 2023 17:40:22");
    sm_time_now_long(buf, sizeof(buf));
    set_str(o, "sys_time", buf);
    set_str(o, "name", s->name);
    set_str(o, "ip", strcmp(s->host, "0.0.0.0") == 0 ? "127.0.0.1" : s->host);
    set_str(o, "mqtt_server", s->mqtt_host ? s->mqtt_host : "-");
    set_str(o, "stream_server", "-");
    set_str(o, "time_server", "time.google.com");
    set_int(o, "sampling_rate", pm ? 4000 : 8000);
    set_int(o, "buffer_size", fw1 ? 20000 : 3 * 1024 * 1024 + 512 * 1024);
    if (!fw1) {
        json_object_set_new(o, "psram", json_true());
        json_object_set_new(o, "rtc", json_true());
    }
    set_str(o, "state", "idle");
    if (pm) {
        set_int(o, "relay", s->relay);
        set_real(o, "energy", sm_round_to(s->m.energy[0], 3));
    } else {
        set_fmt(o, "energy", "[%.4f, %.4f, %.4f]", s->m.energy[0], s->m.energy[1], s->m.energy[2]);
    }
    if (s->reset_hour < 0) {
        set_str(o, "dailyReset", "None");
    } else {
        set_fmt(o, "dailyReset", "@%02d:%02d:00", s->reset_hour, s->reset_minute);
    }
    json_t *cal = json_array();
    for (int i = 0; i < (pm ? 2 : 6); i++) {
        json_array_append_new(cal, json_real(1.0));
    }
    json_object_set_new(o, "calibration", cal);
    set_str(o, "ssids", "[simnet, simnet-2g]");
    set_str(o, "ssid", "simnet");
    set_int(o, "rssi", -48 - (long long)(12 * sm_random(s)));
    set_str(o, "bssid", "7C:FF:4D:12:34:56");
    if (pm && !fw1) {
        json_object_set_new(o, "sensors", json_false());
        unsigned h = 5381;
        for (const char *p = s->name; *p; p++) {
            h = h * 33 + (unsigned char)*p;
        }
        set_fmt(o, "MAC", "24:0A:C4:%02X:%02X:%02X", (h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF);
    }
    return o;
}

json_t *sm_sample_doc(struct sm_sim *s)
{
    json_t *o = json_object();
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    if (s->type == SM_POWERMETER) {
        if (!s->relay) {
            set_real(o, "power", 0.0);
            set_real(o, "current", 0.0);
            json_object_set_new(o, "inUse", json_false());
        } else {
            double p = fmax(sm_round2(sm_power(s, 0)), 0.0);
            set_real(o, "power", p);
            json_object_set_new(o, "inUse", json_boolean(p > 2.0));
            set_real(o, "current", sm_round2(sm_current(s, 0)));
        }
        // Version 2 reports Wh and a numeric timestamp, version 1 kWh and a string.
        if (s->firmware == 1) {
            set_real(o, "energy", sm_round2(s->m.energy[0] / 1000.0));
            set_real(o, "volt", sm_round2(s->m.voltage[0]));
            set_str(o, "ts", ts);
        } else {
            set_real(o, "energy", sm_round2(s->m.energy[0]));
            set_real(o, "volt", sm_round2(s->m.voltage[0]));
            set_int(o, "ts", (long long)time(NULL));
        }
        return o;
    }
    double p = 0, i = 0, v = 0;
    for (int ph = 0; ph < 3; ph++) {
        p += sm_power(s, ph);
        i += sm_current(s, ph);
        v += s->m.voltage[ph] / 3.0;
    }
    set_real(o, "power", sm_round2(p));
    set_real(o, "energy", sm_round2(sm_energy_total(s) / 1000.0));
    set_real(o, "current", sm_round2(i));
    set_real(o, "volt", sm_round2(v));
    set_str(o, "ts", ts);
    if (s->line_values) {
        static const char *const keys[4][3] = {{"v_l1", "v_l2", "v_l3"},
                                               {"i_l1", "i_l2", "i_l3"},
                                               {"p_l1", "p_l2", "p_l3"},
                                               {"e_l1", "e_l2", "e_l3"}};
        for (int ph = 0; ph < 3; ph++) {
            set_real(o, keys[0][ph], sm_round2(s->m.voltage[ph]));
        }
        for (int ph = 0; ph < 3; ph++) {
            set_real(o, keys[1][ph], sm_round2(sm_current(s, ph)));
        }
        for (int ph = 0; ph < 3; ph++) {
            set_real(o, keys[2][ph], sm_round2(sm_power(s, ph)));
        }
        for (int ph = 0; ph < 3; ph++) {
            set_real(o, keys[3][ph], sm_round2(s->m.energy[ph] / 1000.0));
        }
    }
    return o;
}

// ---- Commands ---------------------------------------------------------------------------

// A handler fills `rep` and returns 1 for success ("error":false), 0 for an error reply and
// -1 when no reply is sent at all.
typedef int (*cmd_fn)(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw);

#define ON_PM1 1u
#define ON_PM2 2u
#define ON_SM  4u

static int cmd_info(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    // Over MQTT the firmware writes the info to whichever stream sent the last TCP command, so
    // nothing reaches the broker.
    if (origin != SM_ORIGIN_MQTT && s->clients[origin].fd >= 0) {
        json_t *info = sm_info(s);
        char *text = sm_dump(info);
        sm_client_send(s, &s->clients[origin], text);
        free(text);
        json_decref(info);
    }
    return -1;
}

static int cmd_switch(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    json_t *v = payload_get(req, "value");
    if (s->firmware == 1) {
        if (!v || json_is_null(v)) {
            set_str(rep, "msg", "Info:Not a valid \"switch\" command");
            return 1; // version 1 really reports this as "error":false
        }
        bool on = as_int(v) != 0;
        set_str(rep, "msg", on ? "Switching: On" : "Switching: Off");
        sm_relay_set(s, on);
        return 1;
    }
    if (!v || json_is_null(v)) {
        set_str(rep, "msg", "Not a valid \"switch\" command");
        return 0;
    }
    long value = as_int(v);
    // The firmware captures the message before it appends "On"/"Off".
    set_str(rep, "msg", "Switching: ");
    if (value == -1) {
        sm_relay_set(s, !s->relay);
    } else {
        sm_relay_set(s, value != 0);
    }
    return 1;
}

static int cmd_get_power(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    if (s->type == SM_SMARTMETER) {
        json_object_set_new(rep, "activePower", phase_array(s, sm_power, 1.0, 2));
        json_object_set_new(rep, "reactivePower", phase_array(s, sm_reactive, 1.0, 2));
        json_object_set_new(rep, "apparentPower", phase_array(s, sm_apparent, 1.0, 2));
    } else {
        set_real(rep, "activePower", sm_round_to(sm_power(s, 0), 2));
        set_real(rep, "reactivePower", sm_round_to(sm_reactive(s, 0), 2));
        set_real(rep, "apparentPower", sm_round_to(sm_apparent(s, 0), 2));
    }
    set_str(rep, "unit", "W/var/VA");
    return 1;
}

static int cmd_get_voltage(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    if (s->type == SM_SMARTMETER) {
        json_object_set_new(rep, "voltage", phase_array(s, voltage_of, 1.0, 2));
    } else {
        set_real(rep, "voltage", sm_round_to(s->m.voltage[0], 2));
    }
    set_str(rep, "unit", "V");
    return 1;
}

static int cmd_get_current(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    if (s->type == SM_SMARTMETER) {
        json_object_set_new(rep, "current", phase_array(s, sm_current, 1000.0, 1));
    } else {
        set_real(rep, "current", sm_round_to(sm_current(s, 0) * 1000.0, 1));
    }
    set_str(rep, "unit", "mA");
    return 1;
}

static int cmd_get_energy(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    char buf[64];
    if (s->type == SM_SMARTMETER) {
        json_object_set_new(rep, "energy", phase_array(s, energy_of, 1.0, 4));
    } else {
        set_real(rep, "energy", sm_round_to(s->m.energy[0], 4));
    }
    set_str(rep, "unit", "Wh");
    set_int(rep, "startTs", (long long)s->energy_reset_ts);
    sm_time_long(buf, sizeof(buf), s->energy_reset_ts, 0);
    set_str(rep, "start", buf);
    set_int(rep, "days", (long long)((time(NULL) - s->energy_reset_ts) / 86400));
    return 1;
}

static int cmd_get_period(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    if (s->type == SM_SMARTMETER) {
        json_object_set_new(rep, "period", phase_array(s, freq_of, 1.0, 3));
    } else {
        set_real(rep, "period", sm_round_to(s->m.freq, 3));
    }
    set_str(rep, "unit", "Hz");
    return 1;
}

static int cmd_get_phase(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    if (s->type == SM_SMARTMETER) {
        json_object_set_new(rep, "phase", phase_array(s, angle_of, 1.0, 2));
        set_str(rep, "unit", "Deg");
    } else {
        set_real(rep, "phase", sm_round_to(angle_of(s, 0), 2));
        set_str(rep, "unit", "Deg");
        set_real(rep, "swell", 0.0);
    }
    return 1;
}

static int cmd_log(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    static const char *const names[] = {"all", "debug", "info", "warning", "error"};
    const char *level = json_string_value(json_object_get(req, "level"));
    if (!level) {
        set_str(rep, "msg", "Not a valid Log level cmd, level missing");
        return 0;
    }
    int found = -1;
    for (int i = 0; i < 5; i++) {
        if (strcmp(level, names[i]) == 0) {
            found = i;
        }
    }
    if (found < 0) {
        set_fmt(rep, "msg", "Unknown log level: %s", level);
        return 0;
    }
    if (origin == SM_ORIGIN_MQTT) {
        set_str(rep, "msg", "getter not related to logger");
        return 0;
    }
    s->clients[origin].level = found;
    set_fmt(rep, "msg", "Log Level set to: %s", level);
    return 1;
}

static int cmd_restart(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    sm_reboot(s);
    return -1;
}

static int cmd_reset_energy(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    char when[64];
    double value[3] = {0, 0, 0};
    if (s->firmware == 1) {
        s->m.energy[0] = 0;
        s->energy_reset_ts = time(NULL);
        set_str(rep, "msg", "Energy reset!");
        return 1;
    }
    json_t *e = json_object_get(req, "energy");
    if (e && !json_is_null(e)) {
        if (s->type == SM_SMARTMETER) {
            if (json_array_size(e) != 3) {
                set_str(rep, "msg", "Need 3 energy values");
                return 0;
            }
            for (int i = 0; i < 3; i++) {
                value[i] = as_num(json_array_get(e, (size_t)i));
            }
        } else {
            value[0] = as_num(e);
        }
    }
    json_t *ts = json_object_get(req, "ts");
    time_t t = time(NULL);
    if (ts && !json_is_null(ts)) {
        t = (time_t)(uint32_t)as_int(ts);
    }
    for (int i = 0; i < s->m.phases; i++) {
        s->m.energy[i] = value[i];
    }
    s->energy_reset_ts = t;
    sm_time_long(when, sizeof(when), t, 0);
    if (s->type == SM_SMARTMETER) {
        set_fmt(rep, "msg", "Energy reset to [%.2f, %.2f, %.2f], @%s", value[0], value[1], value[2],
                when);
    } else {
        set_fmt(rep, "msg", "Energy reset to %.2f, @%s", value[0], when);
    }
    return 1;
}

static int cmd_publish_interval(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    json_t *v = json_object_get(req, "intv");
    if (!v || json_is_null(v)) {
        set_str(rep, "msg", "Missing \"intv\"");
        return 0;
    }
    double intv = as_num(v);
    if (intv != -1 && (intv < 0.01 || intv > 3600.0)) {
        set_str(rep, "msg", "Intv must be > 0.01 & <= 3600; -1 to disable");
        return 0;
    }
    s->publish_interval = intv;
    if (intv >= 0) {
        set_fmt(rep, "msg", "Broadcast energy data each: %.2f", intv);
    } else {
        set_str(rep, "msg", "Disabled energy data broadcast");
    }
    return 1;
}

static int cmd_daily_restart(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    json_t *h = json_object_get(req, "hour"), *m = json_object_get(req, "minute");
    if (!h || !m || json_is_null(h) || json_is_null(m)) {
        set_str(rep, "msg", "Missing hour/minute");
        return 0;
    }
    long hour = as_int(h), minute = as_int(m);
    if (hour < -1 || hour >= 24) {
        set_str(rep, "msg", "Hour must be in 24h format, -1 to disable");
        return 0;
    }
    if (minute < -1 || minute >= 60) {
        set_str(rep, "msg", "Minute must be -1<min<60, -1 to disable");
        return 0;
    }
    s->reset_hour = (int)hour;
    s->reset_minute = (int)minute;
    if (hour < 0) {
        set_str(rep, "msg", "Disabled daily restart");
    } else {
        set_fmt(rep, "msg", "Set daily restart to: %02ld:%02ld:00", hour, minute);
    }
    return 1;
}

static int cmd_clear_log(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    s->log_rows = 0;
    s->log_next = 0;
    return 1;
}

static int cmd_get_log(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    if (origin == SM_ORIGIN_MQTT) {
        return 1; // the dump goes to a stale TCP stream on the real meter
    }
    size_t cap = 64 + SM_LOG_ROWS * (sizeof(s->logfile[0]) + 4), len = 0;
    char *out = malloc(cap);
    if (!out) {
        abort();
    }
    len += (size_t)snprintf(out, cap, "{\"cmd\":\"log\",\"msg\":\"*** LOGFile *** //n");
    int first = s->log_rows < SM_LOG_ROWS ? 0 : s->log_next;
    for (int i = 0; i < s->log_rows; i++) {
        len +=
            (size_t)snprintf(out + len, cap - len, "%s//n", s->logfile[(first + i) % SM_LOG_ROWS]);
    }
    snprintf(out + len, cap - len, "*** LOGFile *** \"}");
    *raw = out;
    return 1;
}

static int cmd_stop(struct sm_sim *s, int origin, json_t *req, json_t *rep, char **raw)
{
    return 0; // idle: the firmware returns before it clears "error"
}

static const struct {
    const char *name;
    unsigned on;
    cmd_fn fn;
} commands[] = {
    {"info", ON_PM1 | ON_PM2 | ON_SM, cmd_info},
    {"switch", ON_PM1 | ON_PM2, cmd_switch},
    {"getPower", ON_PM2 | ON_SM, cmd_get_power},
    {"getVoltage", ON_PM2 | ON_SM, cmd_get_voltage},
    {"getCurrent", ON_PM2 | ON_SM, cmd_get_current},
    {"getEnergy", ON_PM2 | ON_SM, cmd_get_energy},
    {"getPeriod", ON_PM2 | ON_SM, cmd_get_period},
    {"getPhaseAngle", ON_PM2 | ON_SM, cmd_get_phase},
    {"log", ON_PM1 | ON_PM2 | ON_SM, cmd_log},
    {"restart", ON_PM1 | ON_PM2 | ON_SM, cmd_restart},
    {"resetEnergy", ON_PM1 | ON_PM2 | ON_SM, cmd_reset_energy},
    {"publishInterval", ON_PM2, cmd_publish_interval},
    {"dailyRestart", ON_PM2 | ON_SM, cmd_daily_restart},
    {"clearLog", ON_PM2 | ON_SM, cmd_clear_log},
    {"getLog", ON_PM2 | ON_SM, cmd_get_log},
    {"stop", ON_PM2 | ON_SM, cmd_stop},
};

// Copies a command name for the stdout trace, replacing anything unprintable.
static void trace_cmd(const char *name)
{
    char buf[64];
    size_t n = 0;
    for (; name[n] && n < sizeof(buf) - 1; n++) {
        unsigned char ch = (unsigned char)name[n];
        buf[n] = ch > ' ' && ch < 0x7F ? (char)ch : '?';
    }
    buf[n] = '\0';
    sim_out("cmd %s", n ? buf : "?");
}

json_t *sm_handle_command(struct sm_sim *s, int origin, const char *line, char **raw)
{
    bool fw1 = s->type == SM_POWERMETER && s->firmware == 1;
    unsigned on = s->type == SM_SMARTMETER ? ON_SM : fw1 ? ON_PM1 : ON_PM2;
    // The firmware reads the line into a fixed buffer (500 or 600 bytes with the NUL).
    char buf[600];
    size_t max = s->type == SM_SMARTMETER ? 599 : 499, n = strlen(line);
    n = n < max ? n : max;
    memcpy(buf, line, n);
    buf[n] = '\0';
    *raw = NULL;

    json_error_t err;
    json_t *req = json_loads(buf, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &err);
    if (!req) {
        sim_out("cmd (invalid)");
        for (size_t i = 0; i < n && i < 30; i++) {
            if (strchr("\r\n\"{}", buf[i])) {
                buf[i] = '_';
            }
        }
        sm_log(s, SM_LOG_ERROR, "deserializeJson() failed: %.30s", buf);
        if (origin != SM_ORIGIN_MQTT) {
            return NULL;
        }
        if (s->type == SM_POWERMETER) {
            *raw = strdup("Parse error");
            return NULL;
        }
        // The SmartMeter goes on with an empty document and answers with its syntax hint.
    }

    json_t *rep = json_object();
    if (!fw1) {
        json_object_set_new(rep, "error", json_true());
    }
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (!cmd) {
        if (req) {
            sim_out("cmd (none)");
        }
        set_str(rep, "msg",
                s->type == SM_SMARTMETER
                    ? "JSON format error, syntax: {\"cmd\":<cmdName>, \"[payload\":{<data>}]}}"
                    : "Syntax error: \"{\"cmd\":<commandName>,\"[payload\":{<possible data>}]}");
        json_decref(req);
        return rep;
    }
    trace_cmd(cmd);
    size_t i = 0;
    while (i < sizeof(commands) / sizeof(commands[0]) &&
           !(strcmp(commands[i].name, cmd) == 0 && (commands[i].on & on))) {
        i++;
    }
    if (i == sizeof(commands) / sizeof(commands[0])) {
        if (!fw1) {
            set_str(rep, "cmd", cmd);
        }
        set_str(rep, "msg", "unknown command");
        sm_log(s, SM_LOG_WARNING, "Received unknown command");
        json_decref(req);
        return rep;
    }
    if (fw1) {
        json_object_set_new(rep, "error", json_true());
    } else {
        set_str(rep, "cmd", cmd);
    }
    int rc = commands[i].fn(s, origin, req, rep, raw);
    json_decref(req);
    if (rc < 0) {
        json_decref(rep);
        return NULL;
    }
    if (rc > 0) {
        json_object_set_new(rep, "error", json_false());
    }
    return rep;
}

// ---- MQTT messages ----------------------------------------------------------------------

// Publishes a reply document and, like the firmware, logs it at INFO.
static void publish_doc(struct sm_sim *s, const char *sub, json_t *doc)
{
    char *text = sm_dump(doc);
    sm_log(s, SM_LOG_INFO, "%s", text);
    sm_mqtt_publish(s, sub, text, false);
    free(text);
    json_decref(doc);
}

static void mqtt_single_value(struct sm_sim *s, const char *what)
{
    char ts[40];
    const char *unit = "W";
    double v[3];
    for (int p = 0; p < s->m.phases; p++) {
        if (strcmp(what, "v") == 0) {
            v[p] = s->m.voltage[p];
            unit = "V";
        } else if (strcmp(what, "i") == 0) {
            v[p] = sm_current(s, p) * 1000.0;
            unit = "mA";
        } else if (strcmp(what, "q") == 0) {
            v[p] = sm_reactive(s, p);
            unit = "var";
        } else if (strcmp(what, "s") == 0) {
            v[p] = sm_apparent(s, p);
            unit = "VA";
        } else if (strcmp(what, "e") == 0) {
            v[p] = s->m.energy[p] / 1000.0;
            unit = "kWh";
        } else {
            v[p] = sm_power(s, p);
        }
    }
    json_t *o = json_object();
    if (s->type == SM_SMARTMETER) {
        set_fmt(o, "value", "%.2f,%.2f,%.2f", v[0], v[1], v[2]);
    } else {
        set_real(o, "value", sm_round_to(v[0], 4));
    }
    set_str(o, "unit", unit);
    sm_time_now_long(ts, sizeof(ts));
    set_str(o, "ts", ts);
    // The PowerMeter answers on state/sample, the SmartMeter firmware on state/info.
    publish_doc(s, s->type == SM_SMARTMETER ? "state/info" : "state/sample", o);
}

void sm_handle_mqtt(struct sm_sim *s, const char *topic, const char *payload)
{
    const char *slash = strrchr(topic, '/');
    const char *end = slash ? slash + 1 : topic;
    sm_log(s, SM_LOG_INFO, "MQTT msg on topic: %s: %s", topic, payload);
    if (strcmp(end, "switch") == 0 && s->type == SM_POWERMETER) {
        if (strcmp(payload, "on") == 0 || strcmp(payload, "true") == 0) {
            sm_relay_set(s, 1);
        } else if (strcmp(payload, "off") == 0 || strcmp(payload, "false") == 0) {
            sm_relay_set(s, 0);
        }
    } else if (strcmp(end, "cmd") == 0) {
        char *raw = NULL;
        json_t *rep = sm_handle_command(s, SM_ORIGIN_MQTT, payload, &raw);
        if (raw) {
            sm_mqtt_publish(s, "state/info", raw, false);
            free(raw);
        }
        if (rep && json_object_size(rep) > 0) {
            publish_doc(s, "state/info", rep);
        } else {
            json_decref(rep);
        }
    } else if (strcmp(end, "state") == 0) {
        char ts[40];
        json_t *o = json_object();
        if (s->type == SM_POWERMETER) {
            set_str(o, "relay", s->relay ? "on" : "off");
        }
        set_str(o, "sampleState", "idle");
        sm_time_now_long(ts, sizeof(ts));
        set_str(o, "ts", ts);
        publish_doc(s, "state/info", o);
    } else if (strcmp(end, "sample") == 0) {
        sm_log(s, SM_LOG_INFO, "MQTT wants sample");
        mqtt_single_value(s, payload);
    }
}
