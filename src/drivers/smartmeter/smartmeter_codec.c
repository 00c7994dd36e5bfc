// SPDX-License-Identifier: MIT
// voelkerb PowerMeter / SmartMeter codec: line framing, reply, info and sample decoding, commands.
//
// Transport: TCP port 54321, at most 3 clients per device. On connect the device sends its info
// object; afterwards every line it writes is
//
//     "Info:" PAYLOAD "\r\n"
//
// where PAYLOAD is one of
//   - a JSON object: a command reply {"error":false|true,"cmd":"<name>","msg":...,...} or the
//     info object {"cmd":"info","type":"powermeter"|"smartmeter","version":"2.3","name":...};
//   - a log line "[L]MM/DD HH:MM:SS: text" with L one of A, D, I, W, E (all, debug, info,
//     warning, error). While idle the device logs an empty info line about once a second to
//     every client at log level info ("[I]03/02 10:42:24: " with nothing after the colon);
//   - legacy text ("Setup done", the answer to "?").
// A line of more than SM_MAX_LINE bytes before its "\n" (prefix and "\r" included) is garbage:
// the firmware's lines stay below 700 bytes.
//
// Commands are one JSON object per line, "\n"-terminated: {"cmd":"getPower"}. The firmware
// reads a command with readStringUntil('\n') and a 10 ms timeout, so a keepalive "!" without a
// line end would be glued to a command sent within those 10 ms, and the firmware, seeing "!"
// first, would drop that command. The keepalive is therefore "!\n" (the author's client sends
// every message, "!" included, with "\r\n").
//
// Reply values (keys, never positions; the SmartMeter sends 3-element arrays, L1..L3):
//   getPower    activePower W, reactivePower var, apparentPower VA  (sum of phases)
//   getVoltage  voltage V                                            (mean of phases)
//   getCurrent  current mA                                           (sum of phases, in A)
//   getEnergy   energy Wh                                            (sum of phases)
//   getPeriod   period: the line frequency in Hz despite its name ("unit":"Hz"); of the
//               SmartMeter's three the L1 value is taken, as an open phase reads nonsense
//   info        relay 0/1 | true/false | "on"/"off" (PowerMeter only), rssi dBm, state,
//               energy Wh: a number (PowerMeter) or a string "[e1, e2, e3]" (SmartMeter);
//               type is compared case-insensitively (the README shows "PowerMeter").
// A busy device answers most commands with {"error":true,"state":"busy","msg":...}; an unknown
// command gets {"error":true,"cmd":...,"msg":"unknown command"}. SmartMeter firmware 2.2 fills
// apparentPower from the reactive power register: the codec reports what it is sent.
//
// MQTT powermeter/<name>/state/sample (JSON without "Info:"):
//   periodic  power W, current A, volt V, energy, inUse (PowerMeter), ts unix seconds as a
//             number (PowerMeter 2.x) or a string (SmartMeter, README examples), and on
//             SmartMeters built with per-line reporting v_l1..3, i_l1..3, p_l1..3, e_l1..3.
//             energy (and e_l*) is Wh on a PowerMeter 2.x, kWh on a SmartMeter and on a
//             PowerMeter 1.x.
//   single    {"value":x,"unit":"W"|"var"|"VA"|"V"|"mA"|"kWh","ts":"MM/DD/YYYY HH:MM:SS.mmm"};
//             the SmartMeter's value is a string "L1,L2,L3". The date-string ts is not a unix
//             time and is not reported.
// Any value that is missing, not a number or not finite is left out (has[] false).
#include "drivers/smartmeter/smartmeter_codec.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char PREFIX[] = "Info:";
enum { PREFIX_LEN = sizeof(PREFIX) - 1 };

// ---- framing -------------------------------------------------------------------------------

enum sm_frame sm_frame_next(const uint8_t *buf, size_t len, const char **line, size_t *line_len,
                            bool *prefixed, size_t *consumed)
{
    *line = NULL;
    *line_len = 0;
    *prefixed = false;
    *consumed = 0;
    if (!buf || len == 0)
        return SM_FRAME_NEED_MORE;

    // The end of a line that is not too long lies within the first SM_MAX_LINE + 1 bytes;
    // looking further would only find the end of garbage.
    size_t scan = len < (size_t)SM_MAX_LINE + 1 ? len : (size_t)SM_MAX_LINE + 1;
    const uint8_t *nl = memchr(buf, '\n', scan);
    if (!nl) {
        if (len <= SM_MAX_LINE)
            return SM_FRAME_NEED_MORE;
        *consumed = (size_t)SM_MAX_LINE + 1;
        return SM_FRAME_SKIP;
    }
    size_t raw = (size_t)(nl - buf);
    *consumed = raw + 1;
    if (memchr(buf, '\0', raw))
        return SM_FRAME_SKIP;

    size_t end = raw;
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    size_t start = 0;
    if (end >= PREFIX_LEN && memcmp(buf, PREFIX, PREFIX_LEN) == 0) {
        start = PREFIX_LEN;
        *prefixed = true;
    }
    *line = (const char *)buf + start;
    *line_len = end - start;
    return SM_FRAME_LINE;
}

// ---- values --------------------------------------------------------------------------------

static const struct {
    const char *name, *unit;
} value_info[SM_VALUE_COUNT] = {
    [SM_POWER] = {"power", "W"},
    [SM_REACTIVE_POWER] = {"reactive_power", "var"},
    [SM_APPARENT_POWER] = {"apparent_power", "VA"},
    [SM_VOLTAGE] = {"voltage", "V"},
    [SM_CURRENT] = {"current", "A"},
    [SM_ENERGY] = {"energy", "Wh"},
    [SM_FREQUENCY] = {"frequency", "Hz"},
    [SM_RELAY] = {"relay", ""},
    [SM_IN_USE] = {"in_use", ""},
    [SM_RSSI] = {"rssi", "dBm"},
    [SM_TIMESTAMP] = {"timestamp", "s"},
    [SM_POWER_L1] = {"power_l1", "W"},
    [SM_POWER_L2] = {"power_l2", "W"},
    [SM_POWER_L3] = {"power_l3", "W"},
    [SM_REACTIVE_POWER_L1] = {"reactive_power_l1", "var"},
    [SM_REACTIVE_POWER_L2] = {"reactive_power_l2", "var"},
    [SM_REACTIVE_POWER_L3] = {"reactive_power_l3", "var"},
    [SM_APPARENT_POWER_L1] = {"apparent_power_l1", "VA"},
    [SM_APPARENT_POWER_L2] = {"apparent_power_l2", "VA"},
    [SM_APPARENT_POWER_L3] = {"apparent_power_l3", "VA"},
    [SM_VOLTAGE_L1] = {"voltage_l1", "V"},
    [SM_VOLTAGE_L2] = {"voltage_l2", "V"},
    [SM_VOLTAGE_L3] = {"voltage_l3", "V"},
    [SM_CURRENT_L1] = {"current_l1", "A"},
    [SM_CURRENT_L2] = {"current_l2", "A"},
    [SM_CURRENT_L3] = {"current_l3", "A"},
    [SM_ENERGY_L1] = {"energy_l1", "Wh"},
    [SM_ENERGY_L2] = {"energy_l2", "Wh"},
    [SM_ENERGY_L3] = {"energy_l3", "Wh"},
};

const char *sm_value_name(enum sm_value v)
{
    return (unsigned)v < SM_VALUE_COUNT ? value_info[v].name : "";
}

const char *sm_value_unit(enum sm_value v)
{
    return (unsigned)v < SM_VALUE_COUNT ? value_info[v].unit : "";
}

static void value_set(struct sm_values *out, enum sm_value id, double x)
{
    if (!isfinite(x))
        return;
    out->has[id] = true;
    out->v[id] = x;
}

// A quantity as the devices send it: one number, or three (L1..L3). ok[i] says whether x[i]
// was a finite number.
struct reading {
    int n; // 0 (nothing usable), 1 or 3
    double x[3];
    bool ok[3];
};

enum combine { COMBINE_SUM, COMBINE_MEAN };

// Per-phase values go to l1..l1+2; the total (or mean) needs all three phases.
static void reading_store(const struct reading *r, struct sm_values *out, enum sm_value total,
                          enum sm_value l1, enum combine how, double scale)
{
    if (r->n == 1) {
        if (r->ok[0])
            value_set(out, total, r->x[0] * scale);
        return;
    }
    if (r->n != 3)
        return;
    double sum = 0;
    bool all = true;
    for (int i = 0; i < 3; i++) {
        double x = r->x[i] * scale;
        if (r->ok[i] && isfinite(x)) {
            value_set(out, (enum sm_value)(l1 + i), x);
            sum += x;
        } else {
            all = false;
        }
    }
    if (all)
        value_set(out, total, how == COMBINE_MEAN ? sum / 3 : sum);
}

static bool json_finite(const json_t *j, double *x)
{
    if (!json_is_number(j))
        return false;
    *x = json_number_value(j);
    return isfinite(*x);
}

// A decimal number spelled out in full (no hex, no "inf"), surrounded by blanks at most.
static bool text_number(const char *s, size_t len, double *x)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789+-.eE", s[i]) || s[i] == '\0')
            return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    *x = strtod(buf, &end);
    return end == buf + len && isfinite(*x);
}

// "x", "x,y,z" or "[x, y, z]": the SmartMeter's single values and its info energy.
static void text_reading(const char *s, size_t len, struct reading *r)
{
    memset(r, 0, sizeof(*r));
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0)
        return;
    int n = 0;
    size_t i = 0;
    for (;;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t j = comma ? (size_t)(comma - s) : len;
        if (n == 3)
            return; // more than three parts: nothing we know
        r->ok[n] = text_number(s + i, j - i, &r->x[n]);
        n++;
        if (!comma)
            break;
        i = j + 1;
    }
    if (n == 1 || n == 3)
        r->n = n;
}

// A number, an array of exactly three, or (when strings are allowed) their text forms.
static void json_reading(const json_t *j, bool strings, struct reading *r)
{
    memset(r, 0, sizeof(*r));
    if (json_is_number(j)) {
        r->n = 1;
        r->ok[0] = json_finite(j, &r->x[0]);
    } else if (json_is_array(j) && json_array_size(j) == 3) {
        r->n = 3;
        for (size_t i = 0; i < 3; i++)
            r->ok[i] = json_finite(json_array_get(j, i), &r->x[i]);
    } else if (strings && json_is_string(j)) {
        text_reading(json_string_value(j), json_string_length(j), r);
    }
}

static void store(const json_t *obj, const char *key, bool strings, struct sm_values *out,
                  enum sm_value total, enum sm_value l1, enum combine how, double scale)
{
    struct reading r;
    json_reading(json_object_get(obj, key), strings, &r);
    reading_store(&r, out, total, l1, how, scale);
}

static void store_number(const json_t *obj, const char *key, struct sm_values *out,
                         enum sm_value id, double scale)
{
    double x;
    if (json_finite(json_object_get(obj, key), &x))
        value_set(out, id, x * scale);
}

// 0/1, true/false, "on"/"off", "true"/"false"; anything else (the "-" the firmware writes
// after a timed switch, say) is unknown.
static void store_flag(const json_t *j, struct sm_values *out, enum sm_value id)
{
    double x;
    if (json_is_boolean(j)) {
        value_set(out, id, json_is_true(j) ? 1 : 0);
    } else if (json_finite(j, &x)) {
        if (x == 0 || x == 1)
            value_set(out, id, x);
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j);
        if (strcasecmp(s, "on") == 0 || strcasecmp(s, "true") == 0)
            value_set(out, id, 1);
        else if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0)
            value_set(out, id, 0);
    }
}

// Unix seconds as a number or a numeric string; the date strings of single-value replies
// ("03/02/2021 11:59:59.034") are not numbers and stay absent.
static void store_timestamp(const json_t *j, struct sm_values *out)
{
    double x;
    if (json_finite(j, &x) ||
        (json_is_string(j) && text_number(json_string_value(j), json_string_length(j), &x)))
        value_set(out, SM_TIMESTAMP, x);
}

// ---- lines ---------------------------------------------------------------------------------

// Copies at most size - 1 bytes and never ends inside a UTF-8 sequence, so a truncated
// message is still valid text.
static void copy_text(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size) {
        len = size - 1;
        // When the first byte cut off continues a sequence, cut before that sequence's lead.
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void copy_json_string(char *dst, size_t size, const json_t *j)
{
    if (json_is_string(j))
        copy_text(dst, size, json_string_value(j), strlen(json_string_value(j)));
}

// "[L]" is followed by the device's time ("03/02 10:42:24", or longer forms), ": " and the
// text; the time is dropped so that msg holds only the text.
static void decode_log(const char *line, size_t len, struct sm_line *out)
{
    out->kind = SM_KIND_LOG;
    out->log_level = line[1];
    const char *text = line + 3;
    size_t n = len - 3;
    for (size_t k = 0; k < n; k++) {
        if (text[k] == ':' && (k + 1 == n || text[k + 1] == ' ')) {
            size_t skip = k + 1 < n ? k + 2 : k + 1;
            text += skip;
            n -= skip;
            break;
        }
        if (!strchr("0123456789/:. ", text[k]) || text[k] == '\0')
            break;
    }
    copy_text(out->msg, sizeof(out->msg), text, n);
}

static void decode_object(const json_t *root, struct sm_line *out)
{
    const json_t *cmd = json_object_get(root, "cmd");
    bool info = (json_is_string(cmd) && strcmp(json_string_value(cmd), "info") == 0) ||
                (json_object_get(root, "type") && json_object_get(root, "version") &&
                 json_object_get(root, "name"));
    out->kind = info ? SM_KIND_INFO : SM_KIND_REPLY;
    copy_json_string(out->cmd, sizeof(out->cmd), cmd);
    const json_t *error = json_object_get(root, "error");
    if (json_is_boolean(error)) {
        out->has_error = true;
        out->error = json_is_true(error);
    }
    copy_json_string(out->msg, sizeof(out->msg), json_object_get(root, "msg"));
    copy_json_string(out->state, sizeof(out->state), json_object_get(root, "state"));

    if (info) {
        const json_t *type = json_object_get(root, "type");
        if (json_is_string(type)) {
            if (strcasecmp(json_string_value(type), "powermeter") == 0)
                out->device = SM_DEVICE_POWERMETER;
            else if (strcasecmp(json_string_value(type), "smartmeter") == 0)
                out->device = SM_DEVICE_SMARTMETER;
        }
        copy_json_string(out->name, sizeof(out->name), json_object_get(root, "name"));
        copy_json_string(out->version, sizeof(out->version), json_object_get(root, "version"));
    }

    struct sm_values *v = &out->values;
    store(root, "activePower", false, v, SM_POWER, SM_POWER_L1, COMBINE_SUM, 1);
    store(root, "reactivePower", false, v, SM_REACTIVE_POWER, SM_REACTIVE_POWER_L1, COMBINE_SUM, 1);
    store(root, "apparentPower", false, v, SM_APPARENT_POWER, SM_APPARENT_POWER_L1, COMBINE_SUM, 1);
    store(root, "voltage", false, v, SM_VOLTAGE, SM_VOLTAGE_L1, COMBINE_MEAN, 1);
    store(root, "current", false, v, SM_CURRENT, SM_CURRENT_L1, COMBINE_SUM, 0.001);
    store(root, "energy", info, v, SM_ENERGY, SM_ENERGY_L1, COMBINE_SUM, 1);

    struct reading period;
    json_reading(json_object_get(root, "period"), false, &period);
    if (period.n > 0 && period.ok[0])
        value_set(v, SM_FREQUENCY, period.x[0]);

    store_flag(json_object_get(root, "relay"), v, SM_RELAY);
    store_number(root, "rssi", v, SM_RSSI, 1);
}

int sm_line_decode(const char *line, size_t len, struct sm_line *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = SM_KIND_UNKNOWN;
    if (len == 0) {
        out->kind = SM_KIND_LOG; // the bare liveness line
        return 0;
    }
    if (!line || len > SM_MAX_LINE)
        return 0; // over MQTT nothing frames a line: a longer payload is garbage as well
    if (len >= 3 && line[0] == '[' && line[2] == ']' && line[1] != '\0' &&
        memchr("ADIWE", line[1], 5)) {
        decode_log(line, len, out);
        return 0;
    }
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len || line[i] != '{')
        return 0;
    json_t *root = json_loadb(line, len, 0, NULL);
    if (json_is_object(root))
        decode_object(root, out);
    json_decref(root);
    return 0;
}

// ---- samples -------------------------------------------------------------------------------

static void decode_single(const json_t *root, struct sm_values *out)
{
    static const struct {
        const char *unit;
        enum sm_value total, l1;
        enum combine how;
        double scale;
    } units[] = {
        {"W", SM_POWER, SM_POWER_L1, COMBINE_SUM, 1},
        {"var", SM_REACTIVE_POWER, SM_REACTIVE_POWER_L1, COMBINE_SUM, 1},
        {"VA", SM_APPARENT_POWER, SM_APPARENT_POWER_L1, COMBINE_SUM, 1},
        {"V", SM_VOLTAGE, SM_VOLTAGE_L1, COMBINE_MEAN, 1},
        {"mA", SM_CURRENT, SM_CURRENT_L1, COMBINE_SUM, 0.001},
        {"A", SM_CURRENT, SM_CURRENT_L1, COMBINE_SUM, 1},
        {"kWh", SM_ENERGY, SM_ENERGY_L1, COMBINE_SUM, 1000},
        {"Wh", SM_ENERGY, SM_ENERGY_L1, COMBINE_SUM, 1},
    };
    const json_t *unit = json_object_get(root, "unit");
    if (!json_is_string(unit))
        return;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(json_string_value(unit), units[i].unit) == 0) {
            store(root, "value", true, out, units[i].total, units[i].l1, units[i].how,
                  units[i].scale);
            return;
        }
    }
}

static void decode_periodic(const json_t *root, double energy_scale, struct sm_values *out)
{
    store_number(root, "power", out, SM_POWER, 1);
    store_number(root, "current", out, SM_CURRENT, 1);
    store_number(root, "volt", out, SM_VOLTAGE, 1);
    store_number(root, "energy", out, SM_ENERGY, energy_scale);
    store_flag(json_object_get(root, "inUse"), out, SM_IN_USE);
    static const char *const phase_keys[3][4] = {
        {"p_l1", "i_l1", "v_l1", "e_l1"},
        {"p_l2", "i_l2", "v_l2", "e_l2"},
        {"p_l3", "i_l3", "v_l3", "e_l3"},
    };
    for (int i = 0; i < 3; i++) {
        store_number(root, phase_keys[i][0], out, (enum sm_value)(SM_POWER_L1 + i), 1);
        store_number(root, phase_keys[i][1], out, (enum sm_value)(SM_CURRENT_L1 + i), 1);
        store_number(root, phase_keys[i][2], out, (enum sm_value)(SM_VOLTAGE_L1 + i), 1);
        store_number(root, phase_keys[i][3], out, (enum sm_value)(SM_ENERGY_L1 + i), energy_scale);
    }
}

int sm_sample_decode(const char *payload, size_t len, enum sm_device device, int firmware_major,
                     struct sm_values *out)
{
    memset(out, 0, sizeof(*out));
    if (!payload)
        return -EINVAL;
    if (len > SM_MAX_LINE)
        return -EMSGSIZE;
    json_t *root = json_loadb(payload, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return -EINVAL;
    }
    store_timestamp(json_object_get(root, "ts"), out);
    // The reply to powermeter/<name>/state carries the relay as "on"/"off".
    store_flag(json_object_get(root, "relay"), out, SM_RELAY);
    if (json_object_get(root, "value")) {
        decode_single(root, out);
    } else {
        bool kwh = device == SM_DEVICE_SMARTMETER || firmware_major == 1;
        decode_periodic(root, kwh ? 1000 : 1, out);
    }
    json_decref(root);
    return 0;
}

// ---- commands ------------------------------------------------------------------------------

static int encode(char *out, size_t n, const char *text)
{
    size_t len = strlen(text);
    if (!out || len >= n)
        return -ENOSPC;
    memcpy(out, text, len + 1);
    return (int)len;
}

int sm_encode_cmd(char *out, size_t n, const char *name)
{
    if (!name || !*name)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
            return -EINVAL;
    if (!out)
        return -ENOSPC;
    int len = snprintf(out, n, "{\"cmd\":\"%s\"}\n", name);
    return len >= 0 && (size_t)len < n ? len : -ENOSPC;
}

int sm_encode_switch(char *out, size_t n, int value)
{
    if (value < -1 || value > 1)
        return -EINVAL;
    if (!out)
        return -ENOSPC;
    int len = snprintf(out, n, "{\"cmd\":\"switch\",\"payload\":{\"value\":%d}}\n", value);
    return len >= 0 && (size_t)len < n ? len : -ENOSPC;
}

int sm_encode_reset_energy(char *out, size_t n)
{
    return encode(out, n, "{\"cmd\":\"resetEnergy\"}\n");
}

int sm_encode_keepalive(char *out, size_t n)
{
    return encode(out, n, "!\n");
}

// ---- decode command ------------------------------------------------------------------------

// Ten significant digits, as printed; whole numbers print without ".0".
static json_t *json_value(double x)
{
    char buf[40];
    snprintf(buf, sizeof(buf), "%.10g", x);
    double r = strtod(buf, NULL);
    if (r == floor(r) && fabs(r) < 9007199254740992.0)
        return json_integer((json_int_t)r);
    return json_real(r);
}

static json_t *json_values(const struct sm_values *v)
{
    json_t *o = json_object();
    for (int i = 0; i < SM_VALUE_COUNT; i++) {
        if (!v->has[i])
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "value", json_value(v->v[i]));
        if (*sm_value_unit((enum sm_value)i))
            json_object_set_new(e, "unit", json_string(sm_value_unit((enum sm_value)i)));
        json_object_set_new(o, sm_value_name((enum sm_value)i), e);
    }
    if (json_object_size(o) == 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

// Device text (log lines) need not be UTF-8; such bytes are shown as "?".
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char buf[sizeof(((struct sm_line *)0)->msg)];
    size_t n = 0;
    for (; s[n] && n + 1 < sizeof(buf); n++)
        buf[n] = (unsigned char)s[n] < 0x80 ? s[n] : '?';
    buf[n] = '\0';
    return json_string(buf);
}

static void set_text(json_t *o, const char *key, const char *s)
{
    if (*s)
        json_object_set_new(o, key, json_text(s));
}

static const char *device_name(enum sm_device d)
{
    return d == SM_DEVICE_POWERMETER ? "powermeter" : d == SM_DEVICE_SMARTMETER ? "smartmeter" : "";
}

// A periodic sample says which device sent it: the PowerMeter always sends inUse, the
// SmartMeter never does. The energy unit depends on it (Wh or kWh); PowerMeter firmware 1.x
// (kWh) cannot be told from 2.x and is taken for 2.x.
static enum sm_device sample_device(const json_t *root)
{
    if (json_object_get(root, "value"))
        return SM_DEVICE_UNKNOWN;
    if (json_object_get(root, "inUse"))
        return SM_DEVICE_POWERMETER;
    if (json_object_get(root, "power") || json_object_get(root, "volt") ||
        json_object_get(root, "energy"))
        return SM_DEVICE_SMARTMETER;
    return SM_DEVICE_UNKNOWN;
}

static bool is_sample(const json_t *root)
{
    return json_is_object(root) && !json_object_get(root, "cmd") &&
           !json_object_get(root, "error") &&
           (json_object_get(root, "ts") || json_object_get(root, "volt") ||
            json_object_get(root, "inUse"));
}

static json_t *decode_to_json(const char *text, size_t len)
{
    json_t *o = json_object();
    json_t *root = json_loadb(text, len, 0, NULL);
    json_t *values;
    if (is_sample(root)) {
        struct sm_values v;
        enum sm_device device = sample_device(root);
        sm_sample_decode(text, len, device, 0, &v);
        json_object_set_new(o, "kind", json_string("sample"));
        set_text(o, "device", device_name(device));
        values = json_values(&v);
    } else {
        static const char *const kinds[] = {
            [SM_KIND_REPLY] = "reply",
            [SM_KIND_INFO] = "info",
            [SM_KIND_LOG] = "log",
            [SM_KIND_UNKNOWN] = "unknown",
        };
        struct sm_line l;
        sm_line_decode(text, len, &l);
        json_object_set_new(o, "kind", json_string(kinds[l.kind]));
        set_text(o, "cmd", l.cmd);
        if (l.has_error)
            json_object_set_new(o, "error", json_boolean(l.error));
        set_text(o, "msg", l.msg);
        set_text(o, "state", l.state);
        set_text(o, "device", device_name(l.device));
        set_text(o, "name", l.name);
        set_text(o, "version", l.version);
        if (l.log_level)
            json_object_set_new(o, "log_level", json_stringn(&l.log_level, 1));
        values = json_values(&l.values);
    }
    if (values)
        json_object_set_new(o, "values", values);
    json_decref(root);
    return o;
}

int smartmeter_decode(const char *input, FILE *out, char *err, size_t err_size)
{
    size_t len = input ? strlen(input) : 0;
    if (len == 0) {
        if (err && err_size)
            snprintf(err, err_size,
                     "empty input: expected one line from TCP port 54321 (\"Info:...\") or an "
                     "MQTT state/sample payload");
        return -EINVAL;
    }
    while (len > 0 && (input[len - 1] == '\n' || input[len - 1] == '\r'))
        len--;
    const char *text = input;
    if (len >= PREFIX_LEN && memcmp(text, PREFIX, PREFIX_LEN) == 0) {
        text += PREFIX_LEN;
        len -= PREFIX_LEN;
    }
    json_t *o = decode_to_json(text, len);
    json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', out);
    json_decref(o);
    return 0;
}
