// SPDX-License-Identifier: MIT
// Hoymiles HMS-W built-in WiFi DTU (also DTU-WLite / Lite-S / Pro): "HM" frames with protobuf
// over TCP port 10081, AES-GCM on DTU firmware V01.01.x.
//
// The DTU's timing rules are the core's to keep (min_request_gap 31 s: a DTU asked again too
// soon hangs for about half an hour; quiet windows around its cloud uploads); this driver
// turns each job into exactly one request, or none.
//
// Groups: realdata (RealDataNew, every poll), info (AppInfo: versions, serials, and whether
// the DTU encrypts, with the seed; first after start, after a decryption failure and after
// the night, else every info_interval), config (GetConfig, optional: newer firmware accepts
// it and never answers, so after two silent tries it is skipped) and warnings (fetched only
// when the inverter's warning number moved; otherwise the poll is skipped and costs no
// request).
//
// Connections: one per request by default (connect, ask, read, close), which is what the DTU
// tolerates best and leaves its single connection slot free for the S-Miles app in between;
// `keep_connection` keeps it open. The DTU closing after a reply is normal.
//
// Night: without PV power the DTU is off. When the DTU cannot be reached and its last reading
// was below `sleep_power` (or nothing was read since the start), the job reports
// DRV_SLEEPING: no errors, values and counters kept, the core probes it every
// sleep_interval, and the first probe of the morning re-reads AppInfo (the seed changes with
// every DTU boot).
//
// Serial: the inverter's serial comes with AppInfo; it picks the inverter's entries out of the
// real data and goes into the on/off commands. It is kept in the state directory
// (drv_learned_set), so after a restart it is known before the first AppInfo reply, which at
// night may be hours away; a different serial in AppInfo replaces it.
//
// Controls: the persistent power limit in % (action 8: written to flash, so the entity file
// gives it a write interval and a dead band), the runtime limit in W (action 211, RAM only),
// inverter on/off and the restarts (cloud-tag 0x2305 commands, which the DTU takes locally but
// never answers: silence is success) and performance data mode (action 33). The DTU echoes
// the last limit command in the inverter's power_limit, in 0.1 % or 0.1 W depending on which
// command it was: the driver knows which one it sent, and shows a value the DTU cannot report
// as the last command (listed as assumed). err_code 7 (too soon after the previous command)
// is "busy": the core retries the write later.
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "drivers/driver.h"
#include "drivers/hoymiles/hoymiles_codec.h"

enum group { G_REALDATA, G_INFO, G_CONFIG, G_WARN, N_GROUPS };

static const struct drv_group groups[N_GROUPS] = {
    [G_REALDATA] = {"realdata", NULL, true},
    [G_INFO] = {"info", "info_interval", true},
    [G_CONFIG] = {"config", "config_interval", false},
    [G_WARN] = {"warnings", NULL, false},
};

enum { MAX_PORTS = 4, FIELDS_PER_PORT = 5 };

enum field {
    F_AC_POWER,
    F_AC_ENERGY_DAILY,
    F_ENERGY_TOTAL,
    F_GRID_VOLTAGE,
    F_GRID_FREQUENCY,
    F_AC_CURRENT,
    F_REACTIVE_POWER,
    F_POWER_FACTOR,
    F_TEMPERATURE,
    F_WARNING_NUMBER,
    F_LINK,
    F_STALE,
    F_LIMIT_PERCENT,
    F_LIMIT_WATTS,
    F_INVERTER_ON,
    F_PV_FIRST, // pv1_voltage, pv1_current, pv1_power, pv1_energy_total, pv1_energy_daily, pv2_...
    F_DTU_SERIAL = F_PV_FIRST + MAX_PORTS * FIELDS_PER_PORT,
    F_DTU_SW,
    F_DTU_HW,
    F_INVERTER_SERIAL,
    F_INVERTER_MODEL,
    F_INVERTER_SW,
    F_INVERTER_HW,
    F_SIGNAL,
    F_ENCRYPTED,
    F_WIFI_RSSI,
    F_UPLOAD_INTERVAL,
    F_WARNINGS_ACTIVE,
    F_LAST_WARNING,
    F_LAST_WARNING_CODE,
    N_FIELDS
};

enum port_value { PV_VOLTAGE, PV_CURRENT, PV_POWER, PV_ENERGY_TOTAL, PV_ENERGY_DAILY };

#define PORT_FIELD(n, value, suffix)                                                               \
    [F_PV_FIRST + ((n)-1) * FIELDS_PER_PORT + (value)] = {"pv" #n suffix, G_REALDATA, false, false}
#define PORT(n)                                                                                    \
    PORT_FIELD(n, PV_VOLTAGE, "_voltage"), PORT_FIELD(n, PV_CURRENT, "_current"),                  \
        PORT_FIELD(n, PV_POWER, "_power"), PORT_FIELD(n, PV_ENERGY_TOTAL, "_energy_total"),        \
        PORT_FIELD(n, PV_ENERGY_DAILY, "_energy_daily")

// Units as delivered: W, Wh, V, A, Hz, var, cos phi, degC, %.
static const struct drv_field fields[N_FIELDS] = {
    [F_AC_POWER] = {"ac_power", G_REALDATA, false, false},
    [F_AC_ENERGY_DAILY] = {"ac_energy_daily", G_REALDATA, false, false},
    [F_ENERGY_TOTAL] = {"energy_total", G_REALDATA, false, false},
    [F_GRID_VOLTAGE] = {"grid_voltage", G_REALDATA, false, false},
    [F_GRID_FREQUENCY] = {"grid_frequency", G_REALDATA, false, false},
    [F_AC_CURRENT] = {"ac_current", G_REALDATA, false, false},
    [F_REACTIVE_POWER] = {"reactive_power", G_REALDATA, false, false},
    [F_POWER_FACTOR] = {"power_factor", G_REALDATA, false, false},
    [F_TEMPERATURE] = {"temperature", G_REALDATA, false, false},
    [F_WARNING_NUMBER] = {"warning_number", G_REALDATA, false, false},
    [F_LINK] = {"link", G_REALDATA, false, false},
    [F_STALE] = {"stale", G_REALDATA, false, false},
    [F_LIMIT_PERCENT] = {"limit_percent", G_REALDATA, false, true},
    [F_LIMIT_WATTS] = {"limit_watts", G_REALDATA, false, true},
    [F_INVERTER_ON] = {"inverter_on", G_REALDATA, false, true},
    PORT(1),
    PORT(2),
    PORT(3),
    PORT(4),
    [F_DTU_SERIAL] = {"dtu_serial", G_INFO, true, false},
    [F_DTU_SW] = {"dtu_sw_version", G_INFO, true, false},
    [F_DTU_HW] = {"dtu_hw_version", G_INFO, true, false},
    [F_INVERTER_SERIAL] = {"inverter_serial", G_INFO, true, false},
    [F_INVERTER_MODEL] = {"inverter_model", G_INFO, true, false},
    [F_INVERTER_SW] = {"inverter_sw_version", G_INFO, true, false},
    [F_INVERTER_HW] = {"inverter_hw_version", G_INFO, true, false},
    [F_SIGNAL] = {"signal_strength", G_INFO, false, false},
    [F_ENCRYPTED] = {"encrypted", G_INFO, false, false},
    [F_WIFI_RSSI] = {"wifi_rssi", G_CONFIG, false, false},
    [F_UPLOAD_INTERVAL] = {"upload_interval", G_CONFIG, false, false},
    [F_WARNINGS_ACTIVE] = {"warnings_active", G_WARN, false, false},
    [F_LAST_WARNING] = {"last_warning", G_WARN, true, false},
    [F_LAST_WARNING_CODE] = {"last_warning_code", G_WARN, false, false},
};

static const char *const actions[] = {"restart_dtu", "restart_inverter", "performance_mode", NULL};

static const struct param_def settings[] = {
    {.name = "host",
     .type = PARAM_STR,
     .required = true,
     .help = "the DTU's address (give it a fixed one in the router)"},
    {.name = "port", .type = PARAM_INT, .def = "10081", .min = 1, .max = 65535},
};

static const char *const cloud_pauses[] = {"5min", "quarter", "off", NULL};

static const struct param_def options[] = {
    {.name = "cloud_pause",
     .type = PARAM_CHOICE,
     .def = "5min",
     .choices = cloud_pauses,
     .help = "keep clear of the DTU's cloud uploads: 5min = from hh:m4:50 for 30 s every 5 "
             "minutes (DTU firmware V1.00.01 and later), quarter = from hh:14:40, :29:40, "
             ":44:40, :59:40 for 40 s (older firmware), off"},
    {.name = "info_interval",
     .type = PARAM_DURATION,
     .def = "10m",
     .min = 1000,
     .max = 86400000,
     .help = "how often AppInfo (versions, signal, encryption) is read"},
    {.name = "config_interval",
     .type = PARAM_DURATION,
     .def = "5m",
     .min = 1000,
     .max = 86400000,
     .help = "how often GetConfig (Wi-Fi signal, limit read-back) is read"},
    {.name = "read_config",
     .type = PARAM_BOOL,
     .def = "true",
     .help = "ask for GetConfig at all (newer firmware may never answer it)"},
    {.name = "zero_turns_off",
     .type = PARAM_BOOL,
     .def = "false",
     .help = "a power limit of 0 % switches the inverter off, a limit above 0 % back on"},
    {.name = "stale_limit",
     .type = PARAM_DURATION,
     .def = "5m",
     .min = 1000,
     .max = 86400000,
     .help = "replies with an unchanged data time for this long count as failures"},
    {.name = "command_wait",
     .type = PARAM_DURATION,
     .def = "3s",
     .min = 500,
     .max = 30000,
     .help = "how long to wait for an answer to restart and on/off commands, which the DTU "
             "never answers locally"},
    {.name = "keep_connection",
     .type = PARAM_BOOL,
     .def = "false",
     .help = "keep the TCP connection open between requests"},
    {.name = "sleep_power",
     .type = PARAM_NUM,
     .def = "10",
     .min = 0,
     .max = 100000,
     .help = "an unreachable DTU whose last AC power was below this (W) is asleep, not failing"},
};

enum limit_kind { LIMIT_UNKNOWN, LIMIT_PERCENT, LIMIT_WATTS };

enum { FRAME_MAX = HM_HEADER_LEN + 1024 + HM_GCM_TAG_LEN, CONFIG_SILENT_AFTER = 2 };

struct hm {
    struct drv_ctx *ctx;
    char id[65];
    char host[256];
    int port;
    bool keep_connection, read_config, zero_turns_off;
    int64_t stale_limit_ms, command_wait_ms, reply_timeout_ms;
    double sleep_power;

    struct hm_crypto crypto;
    bool info_read;       // an AppInfo reply arrived since the start (encryption known)
    bool decrypt_retried; // AppInfo was re-read after a decryption failure
    uint16_t seq;

    // The job in flight.
    bool waiting;
    struct drv_job job;
    uint8_t out[FRAME_MAX];
    size_t out_len;
    uint16_t expect_tag, expect_seq;
    bool answerless; // a 0x2305 command: silence is success
    bool sent, connected;
    // What a successful command changes.
    enum limit_kind sent_kind;
    double sent_value;
    int sent_on; // inverter on/off sent (-1 none)

    // What the DTU said.
    bool have_data;
    int32_t last_ts;
    int64_t last_new_data_ms;
    double last_ac_power;
    int64_t inverter_serial;
    bool have_wnum;
    int32_t wnum, warn_fetched_wnum;
    bool warn_fetched;
    enum limit_kind limit_kind; // the last limit command accepted in this DTU session
    bool off_by_zero;           // zero_turns_off switched the inverter off
    unsigned config_silent;     // GetConfig requests in a row without an answer
    bool packages_noted;
    uint64_t bad_frames, stray_frames, stale_replies;
};

// ---- helpers --------------------------------------------------------------------------------

static struct hm_clock now_clock(const struct hm *m)
{
    int64_t wall = drv_wall_ms(m->ctx);
    time_t t = (time_t)(wall / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    return (struct hm_clock){.unix_s = wall / 1000, .local_offset_s = (int32_t)tm.tm_gmtoff};
}

static void finish(struct hm *m, enum drv_status st, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish(struct hm *m, enum drv_status st, int code, const char *fmt, ...)
{
    if (!m->waiting)
        return;
    m->waiting = false;
    drv_timer_cancel(m->ctx);
    if (!m->keep_connection || st != DRV_OK)
        drv_tcp_close(m->ctx);
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

// The DTU is not there. At night (or before anything was read) that is sleep, not failure;
// the next exchange then re-reads AppInfo, since a DTU that booted has a new seed.
static void unreachable(struct hm *m, enum drv_status failure, const char *why)
{
    if (!m->have_data || m->last_ac_power < m->sleep_power) {
        drv_poll_first(m->ctx, G_INFO);
        finish(m, DRV_SLEEPING, 0, "not reachable (%s): asleep without PV power", why);
        return;
    }
    finish(m, failure, 0, "%s", why);
}

// The event number of a warning code: newer firmware adds 0x2000 (active) or 0x7000 (ended).
static int warning_event(int code)
{
    return code & 0x0FFF;
}

static const char *warning_text(int code)
{
    int c = warning_event(code);
    switch (c) {
    case 121: return "over-temperature protection";
    case 124: return "shut down by remote control";
    case 125: return "grid configuration parameter error";
    case 141: return "grid overvoltage";
    case 142: return "10 min grid overvoltage";
    case 143: return "grid undervoltage";
    case 144: return "grid overfrequency";
    case 145: return "grid underfrequency";
    case 148: return "grid disconnected";
    default: break;
    }
    if (c >= 141 && c <= 149)
        return "grid fault";
    if (c >= 205 && c <= 218)
        return "PV input fault";
    if (c >= 301 && c <= 314)
        return "device fault";
    return "warning";
}

// ---- requests -------------------------------------------------------------------------------

static int build_command(struct hm *m, uint16_t tag, int action, int dev_kind, const char *data,
                         bool with_serial)
{
    struct hm_command cmd = {.tag = tag, .action = action, .dev_kind = dev_kind, .data = data};
    if (with_serial && m->inverter_serial) {
        cmd.serials = &m->inverter_serial;
        cmd.n_serials = 1;
    }
    return hm_req_command(m->out, sizeof(m->out), m->seq, now_clock(m), &cmd, &m->crypto);
}

// Builds the request for the job into m->out. Returns 1 to send it, 0 when the job is already
// finished (skipped or refused), -1 on a build error (finished too).
static int build_request(struct hm *m)
{
    const struct drv_job *j = &m->job;
    struct hm_clock t = now_clock(m);
    int len = -1;
    m->answerless = false;
    m->sent_kind = LIMIT_UNKNOWN;
    m->sent_on = -1;
    m->seq++;
    m->expect_seq = m->seq;

    switch (j->type) {
    case DRV_JOB_POLL:
        switch (j->group) {
        case G_REALDATA:
            len = hm_req_realdata(m->out, sizeof(m->out), m->seq, t, 0, &m->crypto);
            break;
        case G_INFO: len = hm_req_app_info(m->out, sizeof(m->out), m->seq, t, &m->crypto); break;
        case G_CONFIG:
            if (!m->read_config || m->config_silent >= CONFIG_SILENT_AFTER) {
                finish(m, DRV_SKIPPED, 0, NULL);
                return 0;
            }
            len = hm_req_get_config(m->out, sizeof(m->out), m->seq, t, &m->crypto);
            break;
        case G_WARN:
            // Only when the inverter's warning number moved since the last fetch.
            if (m->warn_fetched && (!m->have_wnum || m->wnum == m->warn_fetched_wnum)) {
                finish(m, DRV_SKIPPED, 0, NULL);
                return 0;
            }
            len = hm_req_warn(m->out, sizeof(m->out), m->seq, t, &m->crypto);
            break;
        default: finish(m, DRV_ERR_PROTOCOL, 0, "no such group"); return -1;
        }
        break;
    case DRV_JOB_SET:
        if (j->field == F_LIMIT_PERCENT) {
            double pct = j->value;
            if (pct < 0.05) {
                if (!m->zero_turns_off) {
                    finish(m, DRV_ERR_EXCEPTION, 0,
                           "0 %% is not a power limit (set zero_turns_off: true to switch the "
                           "inverter off instead)");
                    return 0;
                }
                m->answerless = true;
                m->sent_on = 0;
                m->sent_kind = LIMIT_PERCENT;
                m->sent_value = 0;
                len = build_command(m, HM_TAG_CLOUD_COMMAND, HM_ACTION_INVERTER_OFF, 1, NULL, true);
                break;
            }
            if (m->off_by_zero && m->zero_turns_off) {
                // Back on first; the limit itself goes in the next exchange (the job is
                // reported busy, so the core sends it again after the request gap).
                m->answerless = true;
                m->sent_on = 1;
                len = build_command(m, HM_TAG_CLOUD_COMMAND, HM_ACTION_INVERTER_ON, 1, NULL, true);
                break;
            }
            if (pct < 2)
                pct = 2; // the DTU's smallest limit
            char data[32];
            hm_limit_percent_data(data, sizeof(data), pct);
            m->sent_kind = LIMIT_PERCENT;
            m->sent_value = pct;
            len = build_command(m, HM_TAG_COMMAND, HM_ACTION_LIMIT_PERCENT, 1, data, false);
        } else if (j->field == F_LIMIT_WATTS) {
            char data[32];
            hm_limit_watts_data(data, sizeof(data), j->value);
            m->sent_kind = LIMIT_WATTS;
            m->sent_value = j->value;
            len = build_command(m, HM_TAG_COMMAND, HM_ACTION_LIMIT_WATTS, 1, data, false);
        } else if (j->field == F_INVERTER_ON) {
            m->answerless = true;
            m->sent_on = j->value != 0;
            len = build_command(m, HM_TAG_CLOUD_COMMAND,
                                m->sent_on ? HM_ACTION_INVERTER_ON : HM_ACTION_INVERTER_OFF, 1,
                                NULL, true);
        } else {
            finish(m, DRV_ERR_PROTOCOL, 0, "field cannot be written");
            return -1;
        }
        break;
    case DRV_JOB_ACTION:
        if (strcmp(j->action, "restart_dtu") == 0) {
            m->answerless = true;
            len = build_command(m, HM_TAG_CLOUD_COMMAND, HM_ACTION_DTU_REBOOT, -1, NULL, false);
        } else if (strcmp(j->action, "restart_inverter") == 0) {
            m->answerless = true;
            len =
                build_command(m, HM_TAG_CLOUD_COMMAND, HM_ACTION_INVERTER_REBOOT, -1, NULL, false);
        } else if (strcmp(j->action, "performance_mode") == 0) {
            len = build_command(m, HM_TAG_COMMAND, HM_ACTION_PERFORMANCE_MODE, -1, NULL, false);
        } else {
            finish(m, DRV_ERR_PROTOCOL, 0, "no such action");
            return -1;
        }
        break;
    default: finish(m, DRV_ERR_PROTOCOL, 0, "not a job for this driver"); return -1;
    }
    if (len < 0) {
        finish(m, DRV_ERR_PROTOCOL, 0, "cannot build the request");
        return -1;
    }
    m->out_len = (size_t)len;
    uint16_t tag = (uint16_t)((m->out[2] << 8) | m->out[3]);
    m->expect_tag = hm_reply_tag(tag);
    return 1;
}

static void send_request(struct hm *m)
{
    if (drv_tcp_send(m->ctx, m->out, m->out_len) < 0) {
        finish(m, DRV_ERR_IO, 0, "cannot send the request");
        return;
    }
    m->sent = true;
    drv_timer_set(m->ctx, m->answerless ? m->command_wait_ms : m->reply_timeout_ms);
}

// ---- replies --------------------------------------------------------------------------------

static void on_app_info(struct hm *m, const Hoymiles__APPInfoDataReqDTO *r)
{
    char text[64];
    if (r->dtu_serial_number && *r->dtu_serial_number)
        drv_text(m->ctx, F_DTU_SERIAL, r->dtu_serial_number);
    const Hoymiles__APPDtuInfoMO *di = r->dtu_info;
    bool encrypted = false;
    if (di) {
        if (di->has_dtu_sw_version) {
            hm_dtu_version(di->dtu_sw_version, text, sizeof(text));
            drv_text(m->ctx, F_DTU_SW, text);
        }
        if (di->has_dtu_hw_version) {
            hm_dtu_version(di->dtu_hw_version, text, sizeof(text));
            drv_text(m->ctx, F_DTU_HW, text);
        }
        if (di->has_signal_strength)
            drv_value(m->ctx, F_SIGNAL, di->signal_strength);
        encrypted = di->has_dfs && hm_dfs_encrypted(di->dfs);
    }
    if (encrypted) {
        bool had = m->crypto.on;
        if (!di->has_enc_rand ||
            hm_crypto_set(&m->crypto, di->enc_rand.data, di->enc_rand.len) < 0) {
            finish(m, DRV_ERR_PROTOCOL, 0, "the DTU encrypts but sent no usable seed");
            return;
        }
        if (!had)
            log_info(m->id, "the DTU encrypts its frames (firmware V01.01.x): using AES-GCM");
    } else {
        if (m->crypto.on)
            log_info(m->id, "the DTU no longer encrypts its frames");
        m->crypto.on = false;
    }
    drv_value(m->ctx, F_ENCRYPTED, encrypted);
    m->info_read = true;
    for (size_t i = 0; i < r->n_pv_info; i++) {
        const Hoymiles__APPPvInfoMO *pv = r->pv_info[i];
        if (!pv->has_pv_serial_number)
            continue;
        hm_serial_text(pv->pv_serial_number, text, sizeof(text));
        if (pv->pv_serial_number != m->inverter_serial && pv->pv_serial_number != 0)
            drv_learned_set(m->ctx, "inverter_serial", text);
        m->inverter_serial = pv->pv_serial_number;
        drv_text(m->ctx, F_INVERTER_SERIAL, text);
        const char *model = hm_inverter_model(pv->pv_serial_number);
        drv_text(m->ctx, F_INVERTER_MODEL, model ? model : "unknown");
        if (pv->has_pv_sw_version) {
            hm_inverter_sw_version(pv->pv_sw_version, text, sizeof(text));
            drv_text(m->ctx, F_INVERTER_SW, text);
        }
        if (pv->has_pv_hw_version) {
            hm_inverter_hw_version(pv->pv_hw_version, text, sizeof(text));
            drv_text(m->ctx, F_INVERTER_HW, text);
        }
        break; // an HMS-W DTU serves one inverter
    }
    // Feature 8 carries the persistent % limit, whatever command came last.
    for (size_t i = 0; i < r->n_app_features; i++) {
        const Hoymiles__APPFeatureMO *f = r->app_features[i];
        double pct;
        if (f->has_key && f->key == 8 && f->value && hm_feature_limit_percent(f->value, &pct) == 0)
            drv_value(m->ctx, F_LIMIT_PERCENT, pct);
    }
    finish(m, DRV_OK, 0, NULL);
}

// The echo of the last limit command, in the unit of the command that was sent.
static void limit_echo(struct hm *m, double tenths)
{
    if (m->limit_kind == LIMIT_PERCENT)
        drv_value(m->ctx, F_LIMIT_PERCENT, tenths / 10.0);
    else if (m->limit_kind == LIMIT_WATTS)
        drv_value(m->ctx, F_LIMIT_WATTS, tenths / 10.0);
}

static void on_realdata(struct hm *m, const Hoymiles__RealDataNewReqDTO *r)
{
    int64_t now = drv_now_ms(m->ctx);
    if (r->has_ap && r->ap > 1 && !m->packages_noted) {
        m->packages_noted = true;
        log_warn(m->id, "the DTU splits its data into %d packages; only the first is read", r->ap);
    }
    // Without a data time (no DTU seen so far omits it) every reply counts as new.
    int32_t ts = r->timestamp;
    if (m->have_data && r->has_timestamp && ts == m->last_ts) {
        // The DTU refreshes every 30-60 s: the same data set again is not new data.
        m->stale_replies++;
        if (now - m->last_new_data_ms >= m->stale_limit_ms) {
            drv_value(m->ctx, F_STALE, 1);
            finish(m, DRV_ERR_PROTOCOL, 0, "no new data for %lld s (the DTU may hang)",
                   (long long)((now - m->last_new_data_ms) / 1000));
            return;
        }
        finish(m, DRV_OK, 0, NULL);
        return;
    }
    m->have_data = true;
    m->last_ts = ts;
    m->last_new_data_ms = now;
    drv_value(m->ctx, F_STALE, 0);

    double ac_power = r->has_dtu_power ? (double)r->dtu_power / 10.0 : 0;
    const Hoymiles__SGSMO *s = NULL;
    for (size_t i = 0; i < r->n_sgs_data && !s; i++)
        if (!m->inverter_serial || r->sgs_data[i]->serial_number == m->inverter_serial)
            s = r->sgs_data[i];
    if (s) {
        // Absent fields are 0 in the DTU's proto3; link and limit are the exceptions.
        if (!r->has_dtu_power)
            ac_power = s->active_power / 10.0;
        drv_value(m->ctx, F_GRID_VOLTAGE, s->voltage / 10.0);
        drv_value(m->ctx, F_GRID_FREQUENCY, s->frequency / 100.0);
        drv_value(m->ctx, F_AC_CURRENT, s->current / 100.0);
        drv_value(m->ctx, F_REACTIVE_POWER, s->reactive_power / 10.0);
        drv_value(m->ctx, F_POWER_FACTOR, s->power_factor / 1000.0);
        drv_value(m->ctx, F_TEMPERATURE, s->temperature / 10.0);
        drv_value(m->ctx, F_WARNING_NUMBER, s->warning_number);
        if (s->has_link_status)
            drv_value(m->ctx, F_LINK, s->link_status == 1);
        if (s->has_power_limit)
            limit_echo(m, s->power_limit);
        m->wnum = s->warning_number;
        m->have_wnum = true;
    }
    drv_value(m->ctx, F_AC_POWER, ac_power);
    m->last_ac_power = ac_power;
    if (r->has_dtu_daily_energy)
        drv_value(m->ctx, F_AC_ENERGY_DAILY, (double)r->dtu_daily_energy);

    double total = 0;
    size_t ports = 0;
    for (size_t i = 0; i < r->n_pv_data; i++) {
        const Hoymiles__PvMO *p = r->pv_data[i];
        if (m->inverter_serial && p->has_serial_number && p->serial_number != m->inverter_serial)
            continue;
        int port = p->port_number;
        if (port < 1 || port > MAX_PORTS)
            continue;
        uint16_t base = (uint16_t)(F_PV_FIRST + (port - 1) * FIELDS_PER_PORT);
        drv_value(m->ctx, base + PV_VOLTAGE, p->voltage / 10.0);
        drv_value(m->ctx, base + PV_CURRENT, p->current / 100.0);
        drv_value(m->ctx, base + PV_POWER, p->power / 10.0);
        drv_value(m->ctx, base + PV_ENERGY_TOTAL, p->energy_total);
        drv_value(m->ctx, base + PV_ENERGY_DAILY, p->energy_daily);
        total += p->energy_total;
        ports++;
    }
    // Lifetime AC energy is not in the reply: the sum of the ports' totals stands in for it.
    if (ports)
        drv_value(m->ctx, F_ENERGY_TOTAL, total);
    finish(m, DRV_OK, 0, NULL);
}

static void on_config(struct hm *m, const Hoymiles__GetConfigReqDTO *r)
{
    m->config_silent = 0;
    if (r->has_wifi_rssi)
        drv_value(m->ctx, F_WIFI_RSSI, r->wifi_rssi);
    if (r->has_server_send_time)
        drv_value(m->ctx, F_UPLOAD_INTERVAL, r->server_send_time);
    if (r->has_limit_power_mypower && r->limit_power_mypower > 0)
        limit_echo(m, r->limit_power_mypower);
    finish(m, DRV_OK, 0, NULL);
}

static void on_warnings(struct hm *m, const Hoymiles__WarnReqDTO *r)
{
    int active = 0;
    const Hoymiles__WarnMO *last = NULL;
    for (size_t i = 0; i < r->n_warns; i++) {
        const Hoymiles__WarnMO *w = r->warns[i];
        int hi = w->code & 0xF000;
        if (hi == 0x2000 || (hi == 0 && w->e_time == 0))
            active++;
        if (!last || w->num > last->num || (w->num == last->num && w->s_time > last->s_time))
            last = w;
    }
    drv_value(m->ctx, F_WARNINGS_ACTIVE, active);
    if (last) {
        char text[96];
        int code = warning_event(last->code);
        snprintf(text, sizeof(text), "%d: %s", code, warning_text(last->code));
        drv_text(m->ctx, F_LAST_WARNING, text);
        drv_value(m->ctx, F_LAST_WARNING_CODE, code);
    }
    m->warn_fetched = true;
    m->warn_fetched_wnum = m->wnum;
    finish(m, DRV_OK, 0, NULL);
}

// What a command that the DTU took (or did not refuse) changes.
static void command_taken(struct hm *m)
{
    const struct drv_job *j = &m->job;
    if (m->sent_on >= 0) {
        drv_value_assumed(m->ctx, F_INVERTER_ON, m->sent_on);
        if (j->type == DRV_JOB_SET && j->field == F_LIMIT_PERCENT) {
            m->off_by_zero = m->sent_on == 0;
            if (m->sent_on == 1) {
                // Back on; the limit itself still has to go out.
                finish(m, DRV_ERR_BUSY, 0, "inverter switched back on; the limit follows");
                return;
            }
            drv_value_assumed(m->ctx, F_LIMIT_PERCENT, 0);
        } else {
            m->off_by_zero = false;
        }
    }
    if (m->sent_kind == LIMIT_PERCENT && m->sent_on < 0) {
        // A persistent limit cancels a runtime one.
        m->limit_kind = LIMIT_PERCENT;
        drv_value_assumed(m->ctx, F_LIMIT_PERCENT, m->sent_value);
        drv_unknown(m->ctx, F_LIMIT_WATTS);
    } else if (m->sent_kind == LIMIT_WATTS) {
        m->limit_kind = LIMIT_WATTS;
        drv_value_assumed(m->ctx, F_LIMIT_WATTS, m->sent_value);
    }
    if (j->type == DRV_JOB_ACTION && strcmp(j->action, "restart_dtu") == 0) {
        // A booting DTU has a new seed, and forgets the runtime limit.
        drv_poll_first(m->ctx, G_INFO);
        m->limit_kind = LIMIT_UNKNOWN;
    }
    if (j->type == DRV_JOB_ACTION && strcmp(j->action, "restart_inverter") == 0 &&
        m->limit_kind == LIMIT_WATTS)
        m->limit_kind = LIMIT_UNKNOWN; // the runtime limit is gone; the persistent one applies
    finish(m, DRV_OK, 0, NULL);
}

static void on_command(struct hm *m, const Hoymiles__CommandReqDTO *r)
{
    int err = r->has_err_code ? r->err_code : 0;
    if (err == 0) {
        command_taken(m);
    } else if (err == 7) {
        finish(m, DRV_ERR_BUSY, err, "the DTU answered err_code 7 (too soon after a command)");
    } else {
        finish(m, DRV_ERR_EXCEPTION, err, "the DTU refused the command (err_code %d)", err);
    }
}

static void on_reply(struct hm *m, const struct hm_frame *f, const uint8_t *plain)
{
    const struct hm_message *msg = hm_message_for_tag(f->tag);
    unsigned skipped = 0;
    ProtobufCMessage *pm = msg ? hm_unpack(msg->desc, plain, f->payload_len, &skipped) : NULL;
    if (!pm) {
        finish(m, DRV_ERR_PROTOCOL, 0, "reply 0x%04x is not a valid %s", f->tag,
               msg ? msg->name : "message");
        return;
    }
    if (skipped)
        log_debug(m->id, "%s: %u unknown or mistyped fields skipped", msg->name, skipped);
    switch (f->tag) {
    case 0xA201: on_app_info(m, (const Hoymiles__APPInfoDataReqDTO *)pm); break;
    case 0xA211: on_realdata(m, (const Hoymiles__RealDataNewReqDTO *)pm); break;
    case 0xA209: on_config(m, (const Hoymiles__GetConfigReqDTO *)pm); break;
    case 0xA204: on_warnings(m, (const Hoymiles__WarnReqDTO *)pm); break;
    case 0xA205:
    case 0x2205: on_command(m, (const Hoymiles__CommandReqDTO *)pm); break;
    default: finish(m, DRV_ERR_PROTOCOL, 0, "unexpected reply 0x%04x", f->tag); break;
    }
    protobuf_c_message_free_unpacked(pm, NULL);
}

// ---- hooks ----------------------------------------------------------------------------------

static int hm_open(const struct drv_device *dev, void **state)
{
    struct hm *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    snprintf(m->id, sizeof(m->id), "%s", dev->id);
    snprintf(m->host, sizeof(m->host), "%s", params_str(dev->settings, "host"));
    m->port = (int)params_int(dev->settings, "port");
    m->keep_connection = params_bool(dev->options, "keep_connection");
    m->read_config = params_bool(dev->options, "read_config");
    m->zero_turns_off = params_bool(dev->options, "zero_turns_off");
    m->stale_limit_ms = params_ms(dev->options, "stale_limit");
    m->command_wait_ms = params_ms(dev->options, "command_wait");
    m->sleep_power = params_num(dev->options, "sleep_power");
    m->reply_timeout_ms = params_ms(dev->core_options, "reply_timeout");
    m->seq = (uint16_t)(rand() & 0x7FFF);
    m->sent_on = -1;
    *state = m;
    return 0;
}

static void hm_close(void *state)
{
    struct hm *m = state;
    memset(&m->crypto, 0, sizeof(m->crypto)); // the session key
    free(m);
}

// The inverter's serial as the last run learned it (hex digits, as hm_serial_text writes it).
static void restore_serial(struct hm *m)
{
    char text[24];
    if (!drv_learned_get(m->ctx, "inverter_serial", text, sizeof(text)))
        return;
    size_t len = strlen(text);
    errno = 0;
    unsigned long long v = len ? strtoull(text, NULL, 16) : 0;
    if (len == 0 || len > 16 || strspn(text, "0123456789abcdefABCDEF") != len || errno || v == 0 ||
        v > INT64_MAX) {
        log_warn(m->id, "the inverter's serial kept from the last run ('%s') is not one", text);
        return;
    }
    m->inverter_serial = (int64_t)v;
    log_info(m->id, "the inverter's serial is %s (from the last run)", text);
}

static int hm_start(void *state, struct drv_ctx *ctx)
{
    struct hm *m = state;
    m->ctx = ctx;
    restore_serial(m);
    drv_poll_first(ctx, G_INFO); // encryption and seed before anything else
    return 0;
}

static void hm_job(void *state, const struct drv_job *job)
{
    struct hm *m = state;
    m->job = *job;
    m->waiting = true;
    m->sent = false;
    if (build_request(m) <= 0)
        return;
    if (drv_tcp_is_open(m->ctx)) {
        m->connected = true;
        send_request(m);
        return;
    }
    m->connected = false;
    if (drv_tcp_open(m->ctx, m->host, m->port) < 0) {
        drv_tcp_close(m->ctx); // a stale attempt; start over
        if (drv_tcp_open(m->ctx, m->host, m->port) < 0)
            finish(m, DRV_ERR_CONNECT, 0, "cannot start connecting");
    }
}

static void hm_abort(void *state)
{
    struct hm *m = state;
    m->waiting = false;
    drv_timer_cancel(m->ctx);
    drv_tcp_close(m->ctx);
}

static void hm_tcp_connected(void *state)
{
    struct hm *m = state;
    m->connected = true;
    if (m->waiting && !m->sent)
        send_request(m);
}

static size_t hm_tcp_data(void *state, const uint8_t *buf, size_t len)
{
    struct hm *m = state;
    struct hm_frame f;
    enum hm_status st = hm_frame_parse(buf, len, &m->crypto, &f);
    if (st == HM_NEED_MORE)
        return 0;
    if (st != HM_OK) {
        m->bad_frames++;
        log_debug(m->id, "%s: %zu bytes dropped", hm_status_name(st), f.len);
        return f.len;
    }
    if (!m->waiting || f.tag != m->expect_tag || f.seq != m->expect_seq) {
        // A late answer to an earlier request, or another client's: not ours.
        m->stray_frames++;
        log_debug(m->id, "frame 0x%04x seq %u is not the awaited reply", f.tag, f.seq);
        return f.len;
    }
    uint8_t plain[HM_PAYLOAD_MAX];
    if (hm_frame_open(&m->crypto, &f, plain) != HM_OK) {
        // The seed changes when the DTU reboots: read it again, once, before giving up.
        bool first = !m->decrypt_retried;
        m->decrypt_retried = true;
        drv_poll_first(m->ctx, G_INFO);
        if (first)
            finish(m, DRV_ERR_PROTOCOL, 0, "cannot decrypt the reply: re-reading the seed");
        else
            finish(m, DRV_ERR_PROTOCOL, 0,
                   "cannot decrypt the reply, even with a fresh seed from AppInfo");
        return f.len;
    }
    if (f.encrypted)
        m->decrypt_retried = false; // the key works

    on_reply(m, &f, plain);
    return f.len;
}

static void hm_tcp_closed(void *state, const char *why)
{
    struct hm *m = state;
    if (!m->waiting)
        return; // the DTU closes after a reply as it likes
    if (m->answerless && m->sent) {
        command_taken(m); // it took the command and went (e.g. rebooting)
        return;
    }
    if (!m->connected) {
        unreachable(m, DRV_ERR_CONNECT, why);
        return;
    }
    finish(m, DRV_ERR_IO, 0, "connection closed before the reply: %s", why);
}

static void hm_timer(void *state)
{
    struct hm *m = state;
    if (!m->waiting || !m->sent)
        return;
    if (m->answerless) {
        command_taken(m); // no answer is how the DTU says yes to these
        return;
    }
    if (m->job.type == DRV_JOB_POLL && m->job.group == G_CONFIG) {
        // Newer firmware takes GetConfig and never answers it: not a failure of the DTU.
        if (++m->config_silent == CONFIG_SILENT_AFTER)
            log_info(m->id, "the DTU does not answer GetConfig (newer firmware): not asking "
                            "again");
        finish(m, DRV_OK, 0, "GetConfig not answered");
        return;
    }
    // An encrypting DTU ignores a request it cannot decrypt: after a reboot it has a new
    // seed. Read AppInfo before the next try.
    if (m->crypto.on)
        drv_poll_first(m->ctx, G_INFO);
    unreachable(m, DRV_ERR_TIMEOUT, "no reply");
}

// Two pollers on one DTU would break its request guard between them.
static int hm_conflict(const struct drv_device *a, const struct drv_device *b, char *err, size_t n)
{
    if (strcasecmp(params_str(a->settings, "host"), params_str(b->settings, "host")) != 0 ||
        params_int(a->settings, "port") != params_int(b->settings, "port"))
        return 0;
    snprintf(err, n,
             "the same DTU (%s port %lld) is configured twice; two pollers would break its "
             "31 s request guard",
             params_str(b->settings, "host"), params_int(b->settings, "port"));
    return -EINVAL;
}

static size_t hm_quiet_windows(const struct drv_device *dev, struct sched_window *out, size_t max)
{
    if (max < 1)
        return 0;
    switch (params_choice(dev->options, "cloud_pause")) {
    case 0: // every 5 minutes from second 50 of minute 4, 9, 14, ... for 30 s
        out[0] = (struct sched_window){300000, 290000, 30000};
        return 1;
    case 1: // every quarter hour from 14:40 for 40 s
        out[0] = (struct sched_window){900000, 880000, 40000};
        return 1;
    default: return 0;
    }
}

const struct driver_ops hoymiles_driver = {
    .name = "hoymiles",
    .summary = "Hoymiles HMS-W built-in WiFi DTU (protobuf over TCP 10081, AES-GCM on V01.01.x)",
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
            .min_gap_ms = 31000,
            .poll_ms = 35000,
            .min_poll_ms = 1000, // the request gap is the DTU's real limit
            .reply_timeout_ms = 10000,
            .connect_timeout_ms = 5000,
            .backoff_min_ms = 5000,
            .backoff_max_ms = 300000,
        },
    .quiet_windows = hm_quiet_windows,
    .conflict = hm_conflict,
    .open = hm_open,
    .close = hm_close,
    .start = hm_start,
    .job = hm_job,
    .abort = hm_abort,
    .tcp_connected = hm_tcp_connected,
    .tcp_data = hm_tcp_data,
    .tcp_closed = hm_tcp_closed,
    .timer = hm_timer,
    .decode = hoymiles_decode,
    .decode_message = hoymiles_decode_message,
};
