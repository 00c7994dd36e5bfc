// SPDX-License-Identifier: MIT
// Marstek Venus C / E / E 3.0 (and the runtime keys of the A and D) over the HAME MQTT topics.
//
// A Venus talks only to the Marstek cloud. A relay (hame-relay) brings it onto the local
// broker: it forwards what we publish on hame_energy/<type>/App/<mac>/ctrl to the device and
// the device's answer back on hame_energy/<type>/device/<mac>/ctrl, but only one answer per
// request and only within about a second of it. So the broker link is the transport here, and
// the pacing rules follow from the relay: one request at a time, at least a second between
// the end of one exchange and the next request (the driver's minimum request gap), never two
// requests back to back.
//
// Groups: runtime (cd=1, every poll_interval, 60 s by default, never below 10 s), clock (cd=4
// with the local time, at start and every clock_interval; the echo tells whether the firmware
// counts months from 0 or 1), bms (cd=14) and ct (cd=19), each at its own slower interval
// (read_bms / read_ct switch them off). Replies are recognised by their keys, not by the
// request: a runtime reply that answers somebody else's poll is good data too, and any message
// on the device topic shows the device is there.
//
// Writes: working mode (cd=2), a schedule slot (cd=3, always the whole slot, built from the
// last reading with the one change), backup (cd=11), maximum discharge power / power version
// (cd=15), maximum charge power (cd=16). The firmware acknowledges some with ret=1 (ret=0 is a
// refusal) and others not at all: after ack_wait without an answer the write counts as sent,
// and the core reads the runtime group back after the request gap, which shows what the device
// really took. Factory reset and firmware updates are never sent.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drivers/driver.h"
#include "drivers/venus/venus_codec.h"

enum group { G_RUNTIME, G_CLOCK, G_BMS, G_CT, N_GROUPS };

static const struct drv_group groups[N_GROUPS] = {
    [G_RUNTIME] = {"runtime", NULL, true},
    [G_CLOCK] = {"clock", "clock_interval", true},
    [G_BMS] = {"bms", "bms_interval", false},
    [G_CT] = {"ct", "ct_interval", false},
};

// How a field gets its value from a reply.
enum source {
    S_VALUE, // vn_value(path)
    S_TEXT,  // the raw text of key `path`
    S_TEMP,  // vn_value(path) times the type's temperature scale
    S_CELLS, // computed from the cell voltages
    S_CLOCK, // the clock echo
};

// X(enum, key, group, source, path, writable)
#define VENUS_FIELDS(X)                                                                            \
    X(F_BATTERY_SOC, "battery_soc", G_RUNTIME, S_VALUE, "cel_c", false)                            \
    X(F_BATTERY_ENERGY, "battery_energy", G_RUNTIME, S_VALUE, "cel_p", false)                      \
    X(F_AC_POWER, "ac_power", G_RUNTIME, S_VALUE, "grd_o", false)                                  \
    X(F_OFFGRID_POWER, "offgrid_power", G_RUNTIME, S_VALUE, "grd_f", false)                        \
    X(F_CHARGE_TOTAL, "charge_energy_total", G_RUNTIME, S_VALUE, "tot_i", false)                   \
    X(F_DISCHARGE_TOTAL, "discharge_energy_total", G_RUNTIME, S_VALUE, "tot_o", false)             \
    X(F_CHARGE_TODAY, "charge_energy_today", G_RUNTIME, S_VALUE, "ele_d", false)                   \
    X(F_CHARGE_MONTH, "charge_energy_month", G_RUNTIME, S_VALUE, "ele_m", false)                   \
    X(F_DISCHARGE_TODAY, "discharge_energy_today", G_RUNTIME, S_VALUE, "grd_d", false)             \
    X(F_DISCHARGE_MONTH, "discharge_energy_month", G_RUNTIME, S_VALUE, "grd_m", false)             \
    X(F_INCOME_TODAY, "income_today", G_RUNTIME, S_VALUE, "inc_d", false)                          \
    X(F_INCOME_MONTH, "income_month", G_RUNTIME, S_VALUE, "inc_m", false)                          \
    X(F_INCOME_TOTAL, "income_total", G_RUNTIME, S_VALUE, "inc_a", false)                          \
    X(F_CHARGE_PRICE, "charge_price", G_RUNTIME, S_VALUE, "prc_c", false)                          \
    X(F_DISCHARGE_PRICE, "discharge_price", G_RUNTIME, S_VALUE, "prc_d", false)                    \
    X(F_WORKING_STATUS, "working_status", G_RUNTIME, S_VALUE, "grd_t", false)                      \
    X(F_CT_STATUS, "ct_status", G_RUNTIME, S_VALUE, "gct_s", false)                                \
    X(F_BATTERY_STATUS, "battery_status", G_RUNTIME, S_VALUE, "cel_s", false)                      \
    X(F_ERROR_CODE, "error_code", G_RUNTIME, S_VALUE, "err_t", false)                              \
    X(F_WARNING_CODE, "warning_code", G_RUNTIME, S_VALUE, "err_a", false)                          \
    X(F_FIRMWARE, "firmware", G_RUNTIME, S_TEXT, "dev_n", false)                                   \
    X(F_GRID_CODE, "grid_code", G_RUNTIME, S_VALUE, "grd_y", false)                                \
    X(F_WORKING_MODE, "working_mode", G_RUNTIME, S_VALUE, "wor_m", true)                           \
    X(F_CT_AUTO_SWITCH, "ct_auto_switch", G_RUNTIME, S_VALUE, "cts_m", false)                      \
    X(F_BACKUP, "backup", G_RUNTIME, S_VALUE, "bac_u", true)                                       \
    X(F_WIFI_SIGNAL, "wifi_signal", G_RUNTIME, S_VALUE, "wif_s", false)                            \
    X(F_POWER_VERSION, "power_version", G_RUNTIME, S_VALUE, "set_v", false)                        \
    X(F_MAX_CHARGE_POWER, "max_charge_power", G_RUNTIME, S_VALUE, "mcp_w", true)                   \
    X(F_MAX_DISCHARGE_POWER, "max_discharge_power", G_RUNTIME, S_VALUE, "mdp_w", true)             \
    X(F_CT_TYPE, "ct_type", G_RUNTIME, S_VALUE, "ct_t", false)                                     \
    X(F_PHASE, "phase", G_RUNTIME, S_VALUE, "phase_t", false)                                      \
    X(F_RECHARGE_MODE, "recharge_mode", G_RUNTIME, S_VALUE, "dchrg_t", false)                      \
    X(F_BMS_VERSION, "bms_version", G_RUNTIME, S_TEXT, "bms_v", false)                             \
    X(F_COMM_VERSION, "comm_version", G_RUNTIME, S_TEXT, "fc_v", false)                            \
    X(F_WIFI_NAME, "wifi_name", G_RUNTIME, S_TEXT, "wifi_n", false)                                \
    X(F_SHELLY_PORT, "shelly_port", G_RUNTIME, S_VALUE, "shelly_p", false)                         \
    X(F_PV1_POWER, "pv1_power", G_RUNTIME, S_VALUE, "pv1.power", false)                            \
    X(F_PV2_POWER, "pv2_power", G_RUNTIME, S_VALUE, "pv2.power", false)                            \
    X(F_PV3_POWER, "pv3_power", G_RUNTIME, S_VALUE, "pv3.power", false)                            \
    X(F_PV4_POWER, "pv4_power", G_RUNTIME, S_VALUE, "pv4.power", false)                            \
    X(F_PV1_CONNECTED, "pv1_connected", G_RUNTIME, S_VALUE, "pv1.connected", false)                \
    X(F_PV2_CONNECTED, "pv2_connected", G_RUNTIME, S_VALUE, "pv2.connected", false)                \
    X(F_PV3_CONNECTED, "pv3_connected", G_RUNTIME, S_VALUE, "pv3.connected", false)                \
    X(F_PV4_CONNECTED, "pv4_connected", G_RUNTIME, S_VALUE, "pv4.connected", false)                \
    X(F_PV_POWER, "pv_power", G_RUNTIME, S_VALUE, "pv_power", false)                               \
    X(F_PV_ENERGY_TODAY, "pv_energy_today", G_RUNTIME, S_VALUE, "pv.today", false)                 \
    X(F_PV_ENERGY_TOTAL, "pv_energy_total", G_RUNTIME, S_VALUE, "pv.total", false)                 \
    X(F_SURPLUS_FEED_IN, "surplus_feed_in", G_RUNTIME, S_VALUE, "fu.enabled", false)               \
    X(F_BLUETOOTH, "bluetooth_advertising", G_RUNTIME, S_VALUE, "ble.advertising", false)          \
    X(F_LED, "led", G_RUNTIME, S_VALUE, "led", false)                                              \
    X(F_LOCAL_API, "local_api", G_RUNTIME, S_VALUE, "api", false)                                  \
    X(F_LOCAL_API_PORT, "local_api_port", G_RUNTIME, S_VALUE, "port", false)                       \
    X(F_DOD, "depth_of_discharge", G_RUNTIME, S_VALUE, "dod", false)                               \
    X(F_BATTERY_POWER, "battery_power", G_RUNTIME, S_VALUE, "bp", false)                           \
    X(F_BATTERY_POWER_CALC, "battery_power_calculated", G_RUNTIME, S_VALUE, "rp", false)           \
    X(F_GRID_POWER, "grid_power", G_RUNTIME, S_VALUE, "gp", false)                                 \
    X(F_PARALLEL_MODE, "parallel_mode", G_RUNTIME, S_VALUE, "par", false)                          \
    X(F_PEAK_SHAVING, "peak_shaving", G_RUNTIME, S_VALUE, "peak_status", false)                    \
    X(F_PEAK_POWER, "peak_shaving_power", G_RUNTIME, S_VALUE, "peak_power", false)                 \
    X(F_BATTERY_PACKS, "battery_packs", G_RUNTIME, S_VALUE, "pack.count", false)                   \
    X(F_INVERTER_VERSION, "inverter_version", G_RUNTIME, S_TEXT, "inv_v", false)                   \
    X(F_MPPT_VERSION, "mppt_version", G_RUNTIME, S_TEXT, "mppt", false)                            \
    X(F_DEVICE_CLOCK, "device_clock", G_CLOCK, S_CLOCK, "", false)                                 \
    X(F_BMS_SOC, "bms_soc", G_BMS, S_VALUE, "b_soc", false)                                        \
    X(F_BMS_SOH, "bms_soh", G_BMS, S_VALUE, "b_soh", false)                                        \
    X(F_BMS_VOLTAGE, "bms_voltage", G_BMS, S_VALUE, "b_vol", false)                                \
    X(F_BMS_CHARGE_VOLTAGE, "bms_charge_voltage", G_BMS, S_VALUE, "b_chv", false)                  \
    X(F_BMS_CURRENT, "bms_current", G_BMS, S_VALUE, "b_cur", false)                                \
    X(F_BMS_TEMPERATURE, "bms_temperature", G_BMS, S_VALUE, "b_tem", false)                        \
    X(F_CELL_TEMP1, "cell_temperature_1", G_BMS, S_TEMP, "b_tp1", false)                           \
    X(F_CELL_TEMP2, "cell_temperature_2", G_BMS, S_TEMP, "b_tp2", false)                           \
    X(F_CELL_TEMP3, "cell_temperature_3", G_BMS, S_TEMP, "b_tp3", false)                           \
    X(F_CELL_TEMP4, "cell_temperature_4", G_BMS, S_TEMP, "b_tp4", false)                           \
    X(F_MOSFET_TEMP, "mosfet_temperature", G_BMS, S_TEMP, "b_mot", false)                          \
    X(F_BMS_CYCLES, "bms_cycles", G_BMS, S_VALUE, "b_cpc", false)                                  \
    X(F_BMS_ERROR, "bms_error", G_BMS, S_VALUE, "b_err", false)                                    \
    X(F_BMS_WARNING, "bms_warning", G_BMS, S_VALUE, "b_war", false)                                \
    X(F_BMS_FIRMWARE, "bms_firmware", G_BMS, S_TEXT, "b_ver", false)                               \
    X(F_CELL_MIN, "cell_voltage_min", G_BMS, S_CELLS, "min", false)                                \
    X(F_CELL_MAX, "cell_voltage_max", G_BMS, S_CELLS, "max", false)                                \
    X(F_CELL_AVG, "cell_voltage_avg", G_BMS, S_CELLS, "avg", false)                                \
    X(F_CELL_DIFF, "cell_voltage_diff", G_BMS, S_CELLS, "diff", false)                             \
    X(F_CT_POWER_A, "ct_power_a", G_CT, S_VALUE, "get_power.a", false)                             \
    X(F_CT_POWER_B, "ct_power_b", G_CT, S_VALUE, "get_power.b", false)                             \
    X(F_CT_POWER_C, "ct_power_c", G_CT, S_VALUE, "get_power.c", false)                             \
    X(F_CT_POWER_TOTAL, "ct_power_total", G_CT, S_VALUE, "get_power.total", false)                 \
    X(F_CT_POWER_OUTPUT, "ct_power_output", G_CT, S_VALUE, "get_power.output", false)

#define AS_ENUM(e, key, group, source, path, writable) e,
enum field {
    VENUS_FIELDS(AS_ENUM) F_SLOT_FIRST, // slot1_start, slot1_end, slot1_weekdays, ... slot10_
    N_FIELDS = F_SLOT_FIRST + VN_SLOTS * 5
};
#undef AS_ENUM

enum slot_part { P_START, P_END, P_WEEKDAYS, P_POWER, P_ENABLED, N_PARTS };

#define AS_FIELD(e, key, group, source, path, writable)                                            \
    [e] = {key, group, source == S_TEXT || source == S_CLOCK, writable},
#define SLOT_FIELD(n, part, suffix, text)                                                          \
    [F_SLOT_FIRST + ((n)-1) * N_PARTS + (part)] = {"slot" #n suffix, G_RUNTIME, text, true}
#define SLOT(n)                                                                                    \
    SLOT_FIELD(n, P_START, "_start", true), SLOT_FIELD(n, P_END, "_end", true),                    \
        SLOT_FIELD(n, P_WEEKDAYS, "_weekdays", true), SLOT_FIELD(n, P_POWER, "_power", false),     \
        SLOT_FIELD(n, P_ENABLED, "_enabled", false)

// Units as published: kWh, W, VA, %, EUR, dBm, V, A, degC; codes as the device sends them.
static const struct drv_field fields[N_FIELDS] = {
    VENUS_FIELDS(AS_FIELD) SLOT(1),
    SLOT(2),
    SLOT(3),
    SLOT(4),
    SLOT(5),
    SLOT(6),
    SLOT(7),
    SLOT(8),
    SLOT(9),
    SLOT(10),
};
#undef AS_FIELD

#define AS_SOURCE(e, key, group, source, path, writable) [e] = {source, path},
static const struct {
    enum source source;
    const char *path;
} sources[F_SLOT_FIRST] = {VENUS_FIELDS(AS_SOURCE)};
#undef AS_SOURCE

static const char *const actions[] = {"refresh", "sync_clock", NULL};

static const struct param_def settings[] = {
    {.name = "type",
     .type = PARAM_STR,
     .required = true,
     .help = "the device type the cloud knows it by, e.g. HMG-50 (Venus E), HMG-25 (Venus C), "
             "VNSE3-0 (Venus E 3.0); hame-relay logs it"},
    {.name = "mac",
     .type = PARAM_STR,
     .required = true,
     .help = "the Bluetooth MAC (12 hex digits, colons allowed), not the Wi-Fi MAC; hame-relay "
             "logs it"},
};

static const char *const prefixes[] = {"hame_energy", "marstek_energy", "both", NULL};

static const struct param_def options[] = {
    {.name = "bms_interval",
     .type = PARAM_DURATION,
     .def = "5m",
     .min = 10000,
     .max = 86400000,
     .help = "how often the BMS (cd=14: cells, temperatures, cycles) is read"},
    {.name = "ct_interval",
     .type = PARAM_DURATION,
     .def = "5m",
     .min = 10000,
     .max = 86400000,
     .help = "how often the CT meter's power (cd=19) is read"},
    {.name = "clock_interval",
     .type = PARAM_DURATION,
     .def = "1d",
     .min = 3600000,
     .max = 604800000,
     .help = "how often the device clock is set (also once at start)"},
    {.name = "read_bms",
     .type = PARAM_BOOL,
     .def = "true",
     .help = "read the BMS at all (false: its entities stay unknown)"},
    {.name = "read_ct",
     .type = PARAM_BOOL,
     .def = "true",
     .help = "read the CT power at all (false: its entities stay unknown)"},
    {.name = "sync_clock",
     .type = PARAM_BOOL,
     .def = "true",
     .help = "set the device clock to this host's local time at start and every "
             "clock_interval (the schedule slots run on it)"},
    {.name = "ack_wait",
     .type = PARAM_DURATION,
     .def = "1500ms",
     .min = 200,
     .max = 10000,
     .help = "how long to wait for a write's acknowledgement; silence then counts as sent and "
             "the read-back shows what the device took"},
    {.name = "request_prefix",
     .type = PARAM_CHOICE,
     .def = "hame_energy",
     .choices = prefixes,
     .help = "where requests are published: hame_energy/..., marstek_energy/... or both (both "
             "means two requests at once, which a relay may answer only once)"},
};

enum want { W_NONE, W_RUNTIME, W_BMS, W_CT, W_ACK, W_CLOCK };

struct vn {
    struct drv_ctx *ctx;
    char id[65];
    char type[33];
    char mac[13];
    char request_topic[2][128];
    char reply_topic[2][128];
    int request_prefix; // 0 hame_energy, 1 marstek_energy, 2 both
    bool read_bms, read_ct, sync_clock;
    int64_t reply_timeout_ms, ack_wait_ms;
    double temp_scale;

    // The job in flight.
    bool waiting;
    struct drv_job job;
    enum want want;
    char payload[128];
    int slot_index; // a slot write: which slot, and what it becomes
    struct vn_slot slot_sent;
    struct vn_clock clock_sent;

    // What the device said.
    struct vn_slot slots[VN_SLOTS];
    bool slot_known[VN_SLOTS];
    int month_base;      // 1: the firmware counts months 1..12; 0: 0..11
    bool month_switched; // the base was changed once after an echo
    bool resync;         // set the clock again once the current job has ended
    struct vn_msg msg;   // the message being handled
};

// ---- helpers --------------------------------------------------------------------------------

static void finish(struct vn *m, enum drv_status st, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish(struct vn *m, enum drv_status st, int code, const char *fmt, ...)
{
    if (!m->waiting)
        return;
    m->waiting = false;
    m->want = W_NONE;
    drv_timer_cancel(m->ctx);
    char why[128] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
    }
    if (why[0])
        drv_job_done(m->ctx, st, code, "%s", why);
    else
        drv_job_done(m->ctx, st, code, NULL);
}

// The MAC as 12 lowercase hex digits; colons and dashes between the bytes are dropped.
// Returns 0 or -EINVAL.
static int normalise_mac(const char *in, char out[13])
{
    size_t n = 0;
    for (const char *p = in ? in : ""; *p; p++) {
        char c = *p;
        if (c == ':' || c == '-')
            continue;
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n == 12)
            return -EINVAL;
        out[n++] = c;
    }
    out[n] = '\0';
    return n == 12 ? 0 : -EINVAL;
}

static bool type_ok(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

// Publishes the request; true when at least one copy went out.
static bool publish(struct vn *m, const char *payload)
{
    bool sent = false;
    for (int i = 0; i < 2; i++) {
        if (m->request_prefix != 2 && m->request_prefix != i)
            continue;
        if (drv_mqtt_publish(m->ctx, m->request_topic[i], payload, strlen(payload), false) == 0)
            sent = true;
    }
    log_debug(m->id, "request %s", payload);
    return sent;
}

static void local_clock(const struct vn *m, struct vn_clock *c)
{
    time_t t = (time_t)(drv_wall_ms(m->ctx) / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    *c = (struct vn_clock){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour,        tm.tm_min,     tm.tm_sec};
}

// ---- replies --------------------------------------------------------------------------------

static void emit_slots(struct vn *m)
{
    for (int i = 0; i < VN_SLOTS; i++) {
        char key[8];
        snprintf(key, sizeof(key), "tim_%d", i);
        const char *v = vn_get(&m->msg, key);
        if (!v)
            continue;
        uint16_t base = (uint16_t)(F_SLOT_FIRST + i * N_PARTS);
        struct vn_slot s;
        if (vn_slot_parse(v, &s) < 0) {
            m->slot_known[i] = false;
            for (int p = 0; p < N_PARTS; p++)
                drv_unknown(m->ctx, (uint16_t)(base + p));
            continue;
        }
        m->slots[i] = s;
        m->slot_known[i] = true;
        char t[8];
        vn_time_text(s.start_h, s.start_m, t);
        drv_text(m->ctx, base + P_START, t);
        vn_time_text(s.end_h, s.end_m, t);
        drv_text(m->ctx, base + P_END, t);
        vn_weekdays_text(s.weekdays, t);
        drv_text(m->ctx, base + P_WEEKDAYS, t);
        drv_value(m->ctx, base + P_POWER, s.power);
        drv_value(m->ctx, base + P_ENABLED, s.enabled);
    }
}

// Every field of `group` the message carries.
static void emit_group(struct vn *m, enum group group)
{
    double cells[4];
    int n_cells =
        group == G_BMS ? vn_cell_stats(&m->msg, &cells[0], &cells[1], &cells[2], &cells[3]) : 0;
    for (uint16_t f = 0; f < F_SLOT_FIRST; f++) {
        if (fields[f].group != group)
            continue;
        double v;
        enum vn_result r;
        switch (sources[f].source) {
        case S_TEXT: {
            const char *t = vn_get(&m->msg, sources[f].path);
            if (t && *t)
                drv_text(m->ctx, f, t);
            else if (t)
                drv_unknown(m->ctx, f);
            continue;
        }
        case S_CELLS: {
            static const char *const names[] = {"min", "max", "avg", "diff"};
            for (int k = 0; k < 4; k++)
                if (strcmp(sources[f].path, names[k]) == 0) {
                    if (n_cells)
                        drv_value(m->ctx, f, cells[k]);
                    else if (vn_get(&m->msg, "b_vo1"))
                        drv_unknown(m->ctx, f);
                }
            continue;
        }
        case S_CLOCK: continue; // from the echo only
        case S_TEMP:
            r = vn_value(&m->msg, sources[f].path, &v);
            v *= m->temp_scale;
            break;
        default: r = vn_value(&m->msg, sources[f].path, &v); break;
        }
        if (r == VN_OK)
            drv_value(m->ctx, f, v);
        else if (r == VN_INVALID)
            drv_unknown(m->ctx, f);
    }
    if (group == G_RUNTIME)
        emit_slots(m);
}

// What a write the device took (or did not refuse) changes in what the driver remembers:
// the next slot write builds on the slot as sent, until the read-back says otherwise.
static void write_taken(struct vn *m)
{
    if (m->slot_index >= 0) {
        m->slots[m->slot_index] = m->slot_sent;
        m->slot_known[m->slot_index] = true;
    }
    finish(m, DRV_OK, 0, NULL);
}

static int month_index(const struct vn_clock *c)
{
    return c->year * 12 + c->month - 1;
}

// The echo of a clock request: the date the device now has. A month late means the firmware
// counts months from 0; a month early, from 1 (after a wrong switch). The base is switched
// once, and the clock set again at once.
static void on_clock_echo(struct vn *m, const struct vn_clock *echo)
{
    char text[32];
    snprintf(text, sizeof(text), "%04d-%02d-%02d %02d:%02d:%02d", echo->year, echo->month,
             echo->day, echo->hour, echo->minute, echo->second);
    drv_text(m->ctx, F_DEVICE_CLOCK, text);
    const struct vn_clock *sent = &m->clock_sent;
    int diff = month_index(echo) - month_index(sent);
    if (diff == 0 && echo->day == sent->day) {
        log_debug(m->id, "clock set to %s", text);
        finish(m, DRV_OK, 0, NULL);
        return;
    }
    if ((diff == 1 || diff == -1) && echo->day == sent->day && !m->month_switched) {
        m->month_switched = true;
        m->month_base = m->month_base - diff;
        log_info(m->id,
                 "the device took month %d as %d: it counts months from %d; setting the clock "
                 "again",
                 sent->month - 1 + (m->month_base + diff), echo->month, m->month_base);
        // Asked for after this job ends: the end of a clock poll clears a request for it.
        m->resync = true;
        finish(m, DRV_OK, 0, NULL);
        drv_timer_set(m->ctx, 1);
        return;
    }
    log_warn(m->id, "clock sent as %04d-%02d-%02d %02d:%02d, the device says %s", sent->year,
             sent->month, sent->day, sent->hour, sent->minute, text);
    finish(m, DRV_OK, 0, NULL);
}

static void on_ack(struct vn *m)
{
    struct vn_clock echo;
    bool is_echo = vn_clock_echo(&m->msg, &echo) == 0;
    if (m->want == W_CLOCK && is_echo) {
        on_clock_echo(m, &echo);
        return;
    }
    if (is_echo)
        return; // an echo of somebody else's clock request
    double ret, cd;
    if (!vn_number_text(vn_get(&m->msg, "ret"), &ret))
        return;
    // An acknowledgement that names its command must name ours (cd=43,ret=1 answers cd=43).
    if (vn_number_text(vn_get(&m->msg, "cd"), &cd) && cd != atoi(m->payload + 3))
        return;
    if (m->want == W_ACK || m->want == W_CLOCK) {
        if (ret == 1)
            write_taken(m);
        else
            finish(m, DRV_ERR_EXCEPTION, 1, "the device refused %s (ret=%g)", m->payload, ret);
    }
}

// ---- requests -------------------------------------------------------------------------------

static void send_request(struct vn *m, enum want want)
{
    m->want = want; // before publishing: a loopback relay may answer inside the call
    if (!publish(m, m->payload)) {
        // Typically the daemon's broker link is not up yet at start: the runtime reply (and
        // the slots later writes build on) comes first once it is.
        drv_poll_first(m->ctx, G_RUNTIME);
        finish(m, DRV_ERR_CONNECT, 0, "not connected to the broker");
        return;
    }
    if (!m->waiting)
        return; // answered already
    drv_timer_set(m->ctx, want == W_ACK || want == W_CLOCK ? m->ack_wait_ms : m->reply_timeout_ms);
}

static void request_read(struct vn *m, int cd, enum want want)
{
    vn_encode_read(m->payload, sizeof(m->payload), cd);
    send_request(m, want);
}

static void request_clock(struct vn *m)
{
    local_clock(m, &m->clock_sent);
    if (vn_encode_clock(m->payload, sizeof(m->payload), &m->clock_sent, m->month_base) < 0) {
        finish(m, DRV_SKIPPED, 0, "the host clock is not set");
        return;
    }
    send_request(m, W_CLOCK);
}

// Builds the cd=3 payload for a slot field write into m->payload. 0, or -1 when the job was
// finished (refused).
static int build_slot(struct vn *m, uint16_t field)
{
    int index = (field - F_SLOT_FIRST) / N_PARTS;
    enum slot_part part = (enum slot_part)((field - F_SLOT_FIRST) % N_PARTS);
    if (!m->slot_known[index]) {
        drv_poll_first(m->ctx, G_RUNTIME);
        finish(m, DRV_ERR_EXCEPTION, 0,
               "slot %d has not been read yet (a slot is always written whole)", index + 1);
        return -1;
    }
    struct vn_slot s = m->slots[index];
    const char *text = m->job.text ? m->job.text : "";
    int rc = 0;
    switch (part) {
    case P_START: rc = vn_time_parse(text, false, &s.start_h, &s.start_m); break;
    case P_END: rc = vn_time_parse(text, true, &s.end_h, &s.end_m); break;
    case P_WEEKDAYS: rc = vn_weekdays_parse(text, &s.weekdays); break;
    case P_POWER:
        if (m->job.value < -VN_MAX_POWER || m->job.value > VN_MAX_POWER)
            rc = -EINVAL;
        s.power = (int)m->job.value;
        break;
    case P_ENABLED: s.enabled = m->job.value != 0; break;
    default: rc = -EINVAL; break;
    }
    if (rc == 0 && vn_encode_slot(m->payload, sizeof(m->payload), index, &s) < 0)
        rc = -EINVAL;
    if (rc < 0) {
        finish(m, DRV_ERR_EXCEPTION, 0, "slot %d: '%s' is not a value the device takes", index + 1,
               part <= P_WEEKDAYS ? text : "");
        return -1;
    }
    m->slot_index = index;
    m->slot_sent = s;
    return 0;
}

static void job_set(struct vn *m)
{
    const struct drv_job *j = &m->job;
    int len = -EINVAL;
    switch (j->field) {
    case F_WORKING_MODE:
        len = vn_encode_working_mode(m->payload, sizeof(m->payload), (int)j->value);
        break;
    case F_BACKUP: len = vn_encode_backup(m->payload, sizeof(m->payload), j->value != 0); break;
    case F_MAX_CHARGE_POWER:
        len = vn_encode_charge_power(m->payload, sizeof(m->payload), (int)j->value);
        break;
    case F_MAX_DISCHARGE_POWER:
        len = vn_encode_discharge_power(m->payload, sizeof(m->payload), (int)j->value);
        break;
    default:
        if (j->field >= F_SLOT_FIRST && j->field < N_FIELDS) {
            if (build_slot(m, j->field) < 0)
                return;
            len = 0;
        }
        break;
    }
    if (len < 0) {
        finish(m, DRV_ERR_EXCEPTION, 0, "%s: %g is not a value the device takes",
               j->field < N_FIELDS ? fields[j->field].key : "?", j->value);
        return;
    }
    send_request(m, W_ACK);
}

// ---- hooks ----------------------------------------------------------------------------------

static int vn_check(const struct drv_device *dev, char *err, size_t n)
{
    char mac[13];
    if (!type_ok(params_str(dev->settings, "type"))) {
        snprintf(err, n,
                 "type must be the device type as the cloud names it (1-32 letters, digits, - "
                 "and _), e.g. HMG-50 or VNSE3-0");
        return -EINVAL;
    }
    if (normalise_mac(params_str(dev->settings, "mac"), mac) < 0) {
        snprintf(err, n,
                 "mac must be the Bluetooth MAC: 12 hex digits, optionally with : or - between "
                 "the bytes");
        return -EINVAL;
    }
    return 0;
}

// Two pollers on one device would break "one request at a time" between them.
static int vn_conflict(const struct drv_device *a, const struct drv_device *b, char *err, size_t n)
{
    char ma[13], mb[13];
    if (normalise_mac(params_str(a->settings, "mac"), ma) < 0 ||
        normalise_mac(params_str(b->settings, "mac"), mb) < 0 || strcmp(ma, mb) != 0)
        return 0;
    snprintf(err, n,
             "the same Venus (MAC %s) is configured twice; two pollers would break the relay's "
             "one reply per request",
             mb);
    return -EINVAL;
}

static int vn_open(const struct drv_device *dev, void **state)
{
    struct vn *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s", dev->id);
    snprintf(m->type, sizeof(m->type), "%s", params_str(dev->settings, "type"));
    if (normalise_mac(params_str(dev->settings, "mac"), m->mac) < 0) {
        free(m);
        return -EINVAL;
    }
    static const char *const names[2] = {"hame_energy", "marstek_energy"};
    for (int i = 0; i < 2; i++) {
        snprintf(m->request_topic[i], sizeof(m->request_topic[i]), "%s/%s/App/%s/ctrl", names[i],
                 m->type, m->mac);
        snprintf(m->reply_topic[i], sizeof(m->reply_topic[i]), "%s/%s/device/%s/ctrl", names[i],
                 m->type, m->mac);
    }
    m->request_prefix = params_choice(dev->options, "request_prefix");
    m->read_bms = params_bool(dev->options, "read_bms");
    m->read_ct = params_bool(dev->options, "read_ct");
    m->sync_clock = params_bool(dev->options, "sync_clock");
    m->ack_wait_ms = params_ms(dev->options, "ack_wait");
    m->reply_timeout_ms = params_ms(dev->core_options, "reply_timeout");
    m->temp_scale = vn_temperature_scale(m->type);
    m->month_base = 1;
    m->slot_index = -1;
    *state = m;
    return 0;
}

static void vn_close(void *state)
{
    free(state);
}

static int vn_start(void *state, struct drv_ctx *ctx)
{
    struct vn *m = state;
    m->ctx = ctx;
    for (int i = 0; i < 2; i++)
        drv_mqtt_subscribe(ctx, m->reply_topic[i]);
    return 0;
}

// A clock resync asked for during a clock job, once that job is over.
static void flush_resync(struct vn *m)
{
    if (m->resync) {
        m->resync = false;
        drv_poll_first(m->ctx, G_CLOCK);
    }
}

static void vn_job(void *state, const struct drv_job *job)
{
    struct vn *m = state;
    flush_resync(m);
    m->job = *job;
    m->waiting = true;
    m->want = W_NONE;
    m->slot_index = -1;
    switch (job->type) {
    case DRV_JOB_POLL:
        switch (job->group) {
        case G_RUNTIME: request_read(m, 1, W_RUNTIME); return;
        case G_BMS:
            if (!m->read_bms)
                finish(m, DRV_SKIPPED, 0, NULL);
            else
                request_read(m, 14, W_BMS);
            return;
        case G_CT:
            if (!m->read_ct)
                finish(m, DRV_SKIPPED, 0, NULL);
            else
                request_read(m, 19, W_CT);
            return;
        case G_CLOCK:
            if (!m->sync_clock)
                finish(m, DRV_SKIPPED, 0, NULL);
            else
                request_clock(m);
            return;
        default: finish(m, DRV_ERR_PROTOCOL, 0, "no such group"); return;
        }
    case DRV_JOB_SET: job_set(m); return;
    case DRV_JOB_ACTION:
        if (job->action && strcmp(job->action, "refresh") == 0)
            request_read(m, 1, W_RUNTIME);
        else if (job->action && strcmp(job->action, "sync_clock") == 0)
            request_clock(m);
        else
            finish(m, DRV_ERR_PROTOCOL, 0, "no such action");
        return;
    default: finish(m, DRV_ERR_PROTOCOL, 0, "not a job for this driver"); return;
    }
}

static void vn_abort(void *state)
{
    struct vn *m = state;
    m->waiting = false;
    m->want = W_NONE;
    drv_timer_cancel(m->ctx);
}

static void vn_timer(void *state)
{
    struct vn *m = state;
    if (!m->waiting) {
        flush_resync(m);
        return;
    }
    if (m->want == W_ACK) {
        // Several commands are never acknowledged; the read-back tells what the device took.
        write_taken(m);
        return;
    }
    if (m->want == W_CLOCK) {
        log_debug(m->id, "no echo of the clock request: its month base is unverified");
        finish(m, DRV_OK, 0, NULL);
        return;
    }
    finish(m, DRV_ERR_TIMEOUT, 0, "no reply to %s within %lld ms (is the relay forwarding?)",
           m->payload, (long long)m->reply_timeout_ms);
}

static void vn_mqtt_message(void *state, const char *topic, const uint8_t *payload, size_t len,
                            bool retained)
{
    struct vn *m = state;
    if (strcmp(topic, m->reply_topic[0]) != 0 && strcmp(topic, m->reply_topic[1]) != 0)
        return;
    if (retained) {
        log_debug(m->id, "a retained message on %s is old news: ignored", topic);
        return;
    }
    if (vn_parse((const char *)payload, len, &m->msg) < 0) {
        log_debug(m->id, "a %zu-byte message on %s is too long: ignored", len, topic);
        return;
    }
    enum vn_kind kind = vn_classify(&m->msg);
    enum want done = W_NONE;
    switch (kind) {
    case VN_KIND_RUNTIME:
        emit_group(m, G_RUNTIME);
        done = W_RUNTIME;
        break;
    case VN_KIND_BMS:
        emit_group(m, G_BMS);
        done = W_BMS;
        break;
    case VN_KIND_CT_POWER:
        emit_group(m, G_CT);
        done = W_CT;
        break;
    case VN_KIND_ACK:
        if (m->waiting && (m->want == W_ACK || m->want == W_CLOCK)) {
            on_ack(m);
            return;
        }
        break;
    default: break;
    }
    if (m->waiting && done != W_NONE && m->want == done) {
        finish(m, DRV_OK, 0, NULL);
        return;
    }
    // Somebody else's answer, or a late one: still the device, and still good data.
    drv_alive(m->ctx);
}

const struct driver_ops venus_driver = {
    .name = "venus",
    .summary = "Marstek Venus C/E/E 3.0 battery over the HAME MQTT topics (through hame-relay)",
    .style = DRV_EVENT,
    .settings = settings,
    .n_settings = sizeof(settings) / sizeof(settings[0]),
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .fields = fields,
    .n_fields = N_FIELDS,
    .groups = groups,
    .n_groups = N_GROUPS,
    .actions = actions,
    .timing =
        {
            // The relay forwards one answer per request, within about a second: never two
            // requests back to back.
            .min_gap_ms = 1000,
            .poll_ms = 60000,
            .min_poll_ms = 10000,
            .reply_timeout_ms = 5000,
            .connect_timeout_ms = 1000,
            .backoff_min_ms = 5000,
            .backoff_max_ms = 60000,
        },
    .check = vn_check,
    .conflict = vn_conflict,
    .open = vn_open,
    .close = vn_close,
    .start = vn_start,
    .job = vn_job,
    .abort = vn_abort,
    .timer = vn_timer,
    .mqtt_message = vn_mqtt_message,
    .decode = venus_decode,
};
