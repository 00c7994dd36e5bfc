// SPDX-License-Identifier: MIT
// DTU model of the Hoymiles simulator: timing rules, messages and inverter physics, without I/O.
//
// Time comes from the caller only (monotonic ms for durations, wall ms for timestamps, the sun
// and midnight); randomness comes from a seeded generator, so a test that replays the same calls
// gets the same bytes.
#include "hoymiles_sim.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBSTEP_MS  10000 // energy integration step
#define DAY_MS      86400000LL
#define WARN_MAX    16
#define EFFICIENCY  0.95 // AC out / DC in
#define CLOUD_KNOT  600000LL
#define DATA_OFFSET 28800 // the server-time offset every client sends

struct model_info {
    const char *name;
    int ports;
    double rated_w;
    uint64_t sn_prefix;
    int pv_sw, pv_hw_pn;
};

// Serial prefixes per hoymiles.md 2.11; part numbers other than the 800W-2T one are made up.
static const struct model_info models[] = {
    [HS_MODEL_HMS_400W_1T] = {"hms-400w-1t", 1, 400, 0x1121, 10012, 0x10112101},
    [HS_MODEL_HMS_800W_2T] = {"hms-800w-2t", 2, 800, 0x1412, 10008, 0x10214201},
    [HS_MODEL_HMS_2000W_4T] = {"hms-2000w-4t", 4, 2000, 0x1222, 10010, 0x10412201},
};

struct warn_event {
    int code, num;
    int64_t s_time, e_time; // wall seconds; e_time 0 = still active
};

// One data set as the DTU reports it until the next refresh.
struct snapshot {
    int64_t time_s;
    int ac_v, freq, ac_p, ac_q, ac_i, pf, temp;
    int pv_v[HS_MAX_PORTS], pv_i[HS_MAX_PORTS], pv_p[HS_MAX_PORTS];
    int pv_et[HS_MAX_PORTS], pv_ed[HS_MAX_PORTS];
    bool valid;
};

struct hs_conn {
    struct hs_buf in, out;
    bool closing;
    bool in_garbage;      // bytes are being skipped; counted once as a bad frame
    bool waiting_tag;     // a complete body waits for its GCM tag
    int64_t wait_since;   // mono when that body was read (the tag wait runs from here)
    int64_t body_arrival; // mono when the bytes completing that body arrived
};

struct hs_dtu {
    struct hs_config cfg;
    const struct model_info *m;
    uint64_t rng;
    char dtu_sn[13];
    uint64_t inv_sn;
    int signal; // WiFi signal strength, %

    int64_t last_mono, last_wall;
    int64_t day; // local day number of the last integration step

    // Power and boot state.
    bool powered; // PV present (daylight and not forced night)
    bool rebooting;
    int64_t reboot_until;
    bool encrypted;
    uint8_t enc_rand[HS_ENC_RAND_LEN];

    // Inverter.
    double share[HS_MAX_PORTS];
    double energy_total[HS_MAX_PORTS], energy_daily[HS_MAX_PORTS]; // Wh
    double ambient_mean;
    bool inverter_on;
    int limit_pm;     // persistent limit, 0.1 %
    double runtime_w; // runtime limit, W; < 0 = none
    int p_lim;        // session echo; 0 = none
    bool perf_mode;
    struct warn_event warns[WARN_MAX];
    int n_warns, wnum;

    // Data sets.
    struct snapshot snap;
    int64_t next_data;

    // Timing rules.
    bool have_last_req, locked, have_last_cmd, have_persist;
    int64_t last_req, locked_until, last_cmd, last_persist;
    int busy;

    // One-shot faults.
    bool f_garbage, f_badcrc, f_drop, f_stall, f_dup;
    struct hs_buf last_reply;

    struct hs_conn *conn; // the connection the DTU serves, NULL when none
    struct hs_stats st;   // counters; the state part is filled in by hs_dtu_stats()
};

enum frame_kind { FK_PLAIN, FK_SEALED, FK_NO_TAG };

// ---- Small helpers --------------------------------------------------------------------------

static void logf_(struct hs_dtu *d, enum hs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void logf_(struct hs_dtu *d, enum hs_log_level level, const char *fmt, ...)
{
    if (!d->cfg.log) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->cfg.log(d->cfg.log_ctx, level, msg);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rng_next(struct hs_dtu *d)
{
    d->rng += 0x9E3779B97F4A7C15ULL;
    return mix64(d->rng);
}

static double rng_unit(struct hs_dtu *d)
{
    return (double)(rng_next(d) >> 11) / 9007199254740992.0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static int64_t local_ms(const struct hs_dtu *d, int64_t wall)
{
    return wall + (int64_t)d->cfg.tz_offset_min * 60000;
}

static int64_t local_day(const struct hs_dtu *d, int64_t wall)
{
    return floor_div(local_ms(d, wall), DAY_MS);
}

static int64_t ms_of_day(const struct hs_dtu *d, int64_t wall)
{
    return floor_mod(local_ms(d, wall), DAY_MS);
}

static int64_t sunrise_ms(const struct hs_dtu *d)
{
    return llround(d->cfg.sunrise_h * 3600000.0);
}

static int64_t sunset_ms(const struct hs_dtu *d)
{
    return llround(d->cfg.sunset_h * 3600000.0);
}

static int64_t wall_s(int64_t wall)
{
    return floor_div(wall, 1000);
}

// ---- Configuration --------------------------------------------------------------------------

void hs_config_init(struct hs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->model = HS_MODEL_HMS_800W_2T;
    cfg->seed = 1;
    cfg->guard_ms = 30000;
    cfg->lockup_ms = 30 * 60000;
    cfg->data_interval_ms = 30000;
    cfg->cmd_min_gap_ms = 3000;
    cfg->reboot_ms = 3000;
    cfg->tag_wait_ms = 1000;
    cfg->power_w = 400;
    cfg->sunrise_h = 6;
    cfg->sunset_h = 20;
    cfg->peak_w = 700;
    cfg->ambient_c = NAN;
}

int hs_config_set_model(struct hs_config *cfg, const char *name)
{
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        if (strcmp(name, models[i].name) == 0) {
            cfg->model = (enum hs_model)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *hs_model_name(enum hs_model model)
{
    return (unsigned)model < sizeof(models) / sizeof(models[0]) ? models[model].name : "?";
}

int hs_config_set_cloud(struct hs_config *cfg, const char *spec)
{
    if (strcmp(spec, "off") == 0) {
        cfg->n_windows = 0;
    } else if (strcmp(spec, "5min") == 0) {
        cfg->windows[0] = (struct hs_window){300000, 290000, 30000};
        cfg->n_windows = 1;
    } else if (strcmp(spec, "quarter") == 0) {
        cfg->windows[0] = (struct hs_window){900000, 880000, 40000};
        cfg->n_windows = 1;
    } else {
        long long p, s, l;
        char tail;
        if (sscanf(spec, "%lld,%lld,%lld%c", &p, &s, &l, &tail) != 3 || p <= 0 || s < 0 || l <= 0 ||
            l > p) {
            return -EINVAL;
        }
        cfg->windows[0] = (struct hs_window){p, s, l};
        cfg->n_windows = 1;
    }
    return 0;
}

// ---- Physics --------------------------------------------------------------------------------

static bool pv_present(const struct hs_dtu *d, int64_t wall)
{
    if (d->cfg.night) {
        return false;
    }
    if (!d->cfg.sun) {
        return true;
    }
    int64_t t = ms_of_day(d, wall);
    return t >= sunrise_ms(d) && t < sunset_ms(d);
}

// Passing clouds: a smooth factor in [0.6, 1] from hashed knots every 10 minutes.
static double cloud_factor(const struct hs_dtu *d, int64_t wall)
{
    int64_t k = floor_div(wall, CLOUD_KNOT);
    double frac = (double)(wall - k * CLOUD_KNOT) / (double)CLOUD_KNOT;
    double a = (double)(mix64(d->cfg.seed * 31 + (uint64_t)k) >> 11) / 9007199254740992.0;
    double b = (double)(mix64(d->cfg.seed * 31 + (uint64_t)k + 1) >> 11) / 9007199254740992.0;
    double s = frac * frac * (3 - 2 * frac);
    return 0.6 + 0.4 * (a + (b - a) * s);
}

// AC power the panels could deliver now (before the inverter's limits), W.
static double available_ac(const struct hs_dtu *d, int64_t wall)
{
    if (!pv_present(d, wall)) {
        return 0;
    }
    if (!d->cfg.sun) {
        return d->cfg.power_w > 0 ? d->cfg.power_w : 0;
    }
    double x =
        (double)(ms_of_day(d, wall) - sunrise_ms(d)) / (double)(sunset_ms(d) - sunrise_ms(d));
    return d->cfg.peak_w * pow(sin(M_PI * x), 1.3) * cloud_factor(d, wall);
}

static double limit_cap_w(const struct hs_dtu *d)
{
    double cap = d->m->rated_w;
    double lim = d->runtime_w >= 0 ? d->runtime_w : d->limit_pm / 1000.0 * d->m->rated_w;
    return lim < cap ? lim : cap;
}

// AC output and the DC power of each port at `wall` (the inverter throttles its MPP trackers
// when the limit bites, so DC follows AC).
static double ac_output(const struct hs_dtu *d, int64_t wall, double dc[HS_MAX_PORTS])
{
    double ac = d->inverter_on ? available_ac(d, wall) : 0;
    double cap = limit_cap_w(d);
    if (ac > cap) {
        ac = cap;
    }
    if (ac < 0) {
        ac = 0;
    }
    for (int i = 0; i < d->m->ports; i++) {
        dc[i] = ac / EFFICIENCY * d->share[i];
    }
    return ac;
}

static double ambient(const struct hs_dtu *d, int64_t wall)
{
    double h = (double)ms_of_day(d, wall) / 3600000.0;
    return d->ambient_mean + 6.0 * sin(2 * M_PI * (h - 9.0) / 24.0);
}

static void daily_reset(struct hs_dtu *d)
{
    for (int i = 0; i < d->m->ports; i++) {
        d->energy_daily[i] = 0;
    }
}

// Integrates the energy from the last call to (mono, wall).
static void advance(struct hs_dtu *d, int64_t mono, int64_t wall)
{
    if (mono <= d->last_mono) {
        return;
    }
    int64_t dt = mono - d->last_mono;
    int64_t n = (dt + SUBSTEP_MS - 1) / SUBSTEP_MS;
    int64_t w_from = d->last_wall, w_span = wall - d->last_wall;
    for (int64_t k = 0; k < n; k++) {
        int64_t w0 = w_from + w_span * k / n, w1 = w_from + w_span * (k + 1) / n;
        int64_t day = local_day(d, w1);
        if (day != d->day) {
            d->day = day;
            daily_reset(d);
            logf_(d, HS_LOG_DEBUG, "local midnight: daily energy reset");
        }
        double dc[HS_MAX_PORTS];
        ac_output(d, w0 + (w1 - w0) / 2, dc);
        double hours = (double)dt / (double)n / 3600000.0;
        for (int i = 0; i < d->m->ports; i++) {
            d->energy_total[i] += dc[i] * hours;
            d->energy_daily[i] += dc[i] * hours;
        }
    }
    d->last_mono = mono;
    d->last_wall = wall;
}

static void take_snapshot(struct hs_dtu *d, int64_t wall)
{
    struct snapshot *s = &d->snap;
    double dc[HS_MAX_PORTS];
    double ac = ac_output(d, wall, dc);
    double rated = d->m->rated_w;
    s->valid = true;
    s->time_s = wall_s(wall);
    s->ac_v = 2300 + (int)lround(rng_unit(d) * 60 - 30);
    s->freq = 5000 + (int)lround(rng_unit(d) * 10 - 5);
    s->ac_p = (int)lround(ac * 10);
    s->pf = 0;
    s->ac_q = 0;
    if (s->ac_p > 0) {
        int pf = 1000 - (int)(rng_unit(d) * 12);
        if (ac < 0.1 * rated) {
            pf -= (int)(60 * (1 - ac / (0.1 * rated)));
        }
        s->pf = pf;
        double q = s->ac_p * tan(acos(pf / 1000.0));
        s->ac_q = (int)lround(rng_unit(d) < 0.3 ? -q : q);
    }
    s->ac_i = (int)lround(ac / (s->ac_v / 10.0) * 100);
    s->temp = (int)lround((ambient(d, wall) + 30 * ac / rated) * 10);
    bool light = pv_present(d, wall);
    double port_max = rated / d->m->ports / EFFICIENCY;
    for (int i = 0; i < d->m->ports; i++) {
        double v = 0;
        if (light && dc[i] > 0) {
            v = 29 + 5 * sqrt(dc[i] / port_max) + rng_unit(d) - 0.5;
        } else if (light) {
            v = 40 + 3 * rng_unit(d); // open circuit: the inverter is off or limited to 0
        }
        s->pv_v[i] = (int)lround(v * 10);
        s->pv_i[i] = v > 0 ? (int)lround(dc[i] / v * 100) : 0;
        s->pv_p[i] = (int)lround(dc[i] * 10);
        s->pv_et[i] = (int)floor(d->energy_total[i]);
        s->pv_ed[i] = (int)floor(d->energy_daily[i]);
    }
}

// ---- Warnings -------------------------------------------------------------------------------

static void warn_add(struct hs_dtu *d, int code, int64_t wall)
{
    if (d->n_warns == WARN_MAX) {
        memmove(&d->warns[0], &d->warns[1], (WARN_MAX - 1) * sizeof(d->warns[0]));
        d->n_warns--;
    }
    d->warns[d->n_warns++] =
        (struct warn_event){.code = code, .num = ++d->wnum, .s_time = wall_s(wall)};
    logf_(d, HS_LOG_INFO, "warning event %d (code %d)", d->wnum, code);
}

static void warn_end(struct hs_dtu *d, int code, int64_t wall)
{
    for (int i = 0; i < d->n_warns; i++) {
        if (d->warns[i].code == code && d->warns[i].e_time == 0) {
            d->warns[i].e_time = wall_s(wall);
        }
    }
}

// ---- Boot, reboot, connections --------------------------------------------------------------

// Marks the served connection closing and forgets it. With keep_output the pending reply is
// still flushed (a reboot right after answering).
static void conn_detach(struct hs_dtu *d, bool keep_output)
{
    struct hs_conn *c = d->conn;
    if (!c) {
        return;
    }
    c->closing = true;
    c->waiting_tag = false;
    c->in.len = 0;
    if (!keep_output) {
        c->out.len = 0;
    }
    d->conn = NULL;
}

static void dtu_boot(struct hs_dtu *d, int64_t mono, int64_t wall)
{
    d->rebooting = false;
    d->st.dtu_boots++;
    if (d->encrypted) {
        for (int i = 0; i < HS_ENC_RAND_LEN; i++) {
            d->enc_rand[i] = (uint8_t)rng_next(d);
        }
    } else {
        memset(d->enc_rand, 0, sizeof(d->enc_rand));
    }
    // The runtime limit and the session's p_lim echo live in RAM; performance mode too.
    d->runtime_w = -1;
    d->p_lim = 0;
    d->perf_mode = false;
    d->locked = false;
    d->have_last_req = false;
    d->have_last_cmd = false;
    if (!d->cfg.stale || !d->snap.valid) {
        take_snapshot(d, wall);
    }
    d->next_data = mono + d->cfg.data_interval_ms;
    logf_(d, HS_LOG_INFO, "DTU booted, firmware %s%s", d->encrypted ? "V01.01.01" : "V01.00.07",
          d->encrypted ? " (encrypted)" : "");
}

static void dtu_reboot(struct hs_dtu *d, int64_t mono, bool keep_output)
{
    d->st.dtu_reboots++;
    d->rebooting = true;
    d->reboot_until = mono + d->cfg.reboot_ms;
    d->locked = false;
    conn_detach(d, keep_output);
    logf_(d, HS_LOG_INFO, "DTU reboot: unreachable for %" PRId64 " ms", d->cfg.reboot_ms);
}

// The inverter starts again: a new day for its daily counters, RAM settings gone.
static void inverter_restart(struct hs_dtu *d)
{
    daily_reset(d);
    // The DTU keeps echoing the lost runtime limit in p_lim (hoymiles.md 3.8).
    d->runtime_w = -1;
    logf_(d, HS_LOG_INFO, "inverter restart: daily energy reset, runtime limit lost");
}

static void inverter_reboot(struct hs_dtu *d)
{
    d->st.inverter_reboots++;
    inverter_restart(d);
}

static void inverter_set(struct hs_dtu *d, bool on, int64_t wall)
{
    if (on == d->inverter_on) {
        return;
    }
    d->inverter_on = on;
    if (!on) {
        warn_add(d, HS_WARN_REMOTE_OFF, wall);
    } else {
        warn_end(d, HS_WARN_REMOTE_OFF, wall);
    }
    logf_(d, HS_LOG_INFO, "inverter %s", on ? "on" : "off (remote)");
}

struct hs_dtu *hs_dtu_new(const struct hs_config *cfg, int64_t mono_ms, int64_t wall_ms)
{
    struct hs_dtu *d = calloc(1, sizeof(*d));
    if (!d) {
        abort();
    }
    d->cfg = *cfg;
    if ((unsigned)d->cfg.model >= sizeof(models) / sizeof(models[0])) {
        d->cfg.model = HS_MODEL_HMS_800W_2T;
    }
    if (d->cfg.n_windows < 0 || d->cfg.n_windows > HS_MAX_WINDOWS) {
        d->cfg.n_windows = 0;
    }
    if (d->cfg.data_interval_ms < 1) {
        d->cfg.data_interval_ms = 1;
    }
    if (!(d->cfg.sunset_h > d->cfg.sunrise_h) || d->cfg.sunrise_h < 0 || d->cfg.sunset_h > 24) {
        d->cfg.sunrise_h = 6;
        d->cfg.sunset_h = 20;
    }
    d->m = &models[d->cfg.model];
    d->rng = mix64(d->cfg.seed ^ 0x484D53494DULL);

    // Serials: the built-in DTU shares the inverter's last eight digits (hoymiles.md 2.3).
    uint64_t digits = 0;
    for (int i = 0; i < 8; i++) {
        digits = digits << 4 | (rng_next(d) % 10);
    }
    d->inv_sn = d->cfg.inverter_sn ? d->cfg.inverter_sn : (d->m->sn_prefix << 32 | digits);
    if (d->cfg.dtu_sn[0]) {
        snprintf(d->dtu_sn, sizeof(d->dtu_sn), "%s", d->cfg.dtu_sn);
    } else {
        snprintf(d->dtu_sn, sizeof(d->dtu_sn), "4143%08" PRIX64,
                 (uint64_t)(d->inv_sn & 0xFFFFFFFFu));
    }
    d->signal = 55 + (int)(rng_next(d) % 40);
    d->ambient_mean = isnan(d->cfg.ambient_c) ? -2 + 16 * rng_unit(d) : d->cfg.ambient_c;

    double sum = 0;
    for (int i = 0; i < d->m->ports; i++) {
        d->share[i] = 0.9 + 0.15 * rng_unit(d);
        sum += d->share[i];
        d->energy_total[i] = 150000 + 600000 * rng_unit(d);
    }
    for (int i = 0; i < d->m->ports; i++) {
        d->share[i] /= sum;
    }
    d->inverter_on = true;
    d->limit_pm = 1000;
    d->runtime_w = -1;
    d->encrypted = d->cfg.encrypted;
    d->st.min_persistent_interval_ms = -1;

    d->last_mono = mono_ms;
    d->last_wall = wall_ms;
    d->day = local_day(d, wall_ms);
    if (d->cfg.sun) {
        // The inverter has been producing since sunrise: integrate today's energy so far.
        int64_t midnight = wall_ms - ms_of_day(d, wall_ms);
        for (int64_t w = midnight; w < wall_ms; w += 60000) {
            double dc[HS_MAX_PORTS];
            int64_t step = wall_ms - w < 60000 ? wall_ms - w : 60000;
            ac_output(d, w + step / 2, dc);
            for (int i = 0; i < d->m->ports; i++) {
                d->energy_daily[i] += dc[i] * (double)step / 3600000.0;
                d->energy_total[i] += dc[i] * (double)step / 3600000.0;
            }
        }
    }
    d->powered = pv_present(d, wall_ms);
    if (d->powered) {
        dtu_boot(d, mono_ms, wall_ms);
    }
    return d;
}

void hs_dtu_free(struct hs_dtu *d)
{
    if (!d) {
        return;
    }
    hs_buf_free(&d->last_reply);
    free(d);
}

// ---- Requests -------------------------------------------------------------------------------

static void count_key(struct hs_count *arr, int *n, unsigned key)
{
    for (int i = 0; i < *n; i++) {
        if (arr[i].key == key) {
            arr[i].count++;
            return;
        }
    }
    if (*n < HS_MAX_COUNTS) {
        arr[*n].key = key;
        arr[(*n)++].count = 1;
    }
}

static bool in_cloud_window(const struct hs_dtu *d, int64_t wall)
{
    for (int i = 0; i < d->cfg.n_windows; i++) {
        const struct hs_window *w = &d->cfg.windows[i];
        if (w->period_ms > 0 && floor_mod(wall - w->start_ms, w->period_ms) < w->length_ms) {
            return true;
        }
    }
    return false;
}

// Copies a string field of a request into out (truncated, NUL-terminated; "" when absent).
static void copy_field(const uint8_t *data, size_t len, unsigned field, char *out, size_t cap)
{
    const uint8_t *s;
    size_t sl;
    out[0] = '\0';
    if (hs_pb_get_bytes(data, len, field, 0, &s, &sl)) {
        sl = sl < cap - 1 ? sl : cap - 1;
        memcpy(out, s, sl);
        out[sl] = '\0';
    }
}

static int64_t req_int(const uint8_t *p, size_t n, unsigned field, int64_t dflt)
{
    int64_t v;
    return hs_pb_get_int(p, n, field, &v) ? v : dflt;
}

static void reply_appinfo(struct hs_dtu *d, int64_t wall, struct hs_buf *r)
{
    struct hs_buf info = {0}, pv = {0}, feat = {0};
    hs_pb_string(r, 1, d->dtu_sn);
    hs_pb_int(r, 2, wall_s(wall));
    hs_pb_int(r, 3, 1); // device_nub
    hs_pb_int(r, 4, 1); // pv_nub: one inverter
    hs_pb_int(r, 5, 1); // package_nub

    hs_pb_int(&info, 1, 1);                              // device_kind: DTU
    hs_pb_int(&info, 2, d->encrypted ? 4353 : 4103);     // V01.01.01 / V01.00.07
    hs_pb_int(&info, 3, 4608);                           // hw 01.02.00
    hs_pb_int(&info, 4, d->cfg.data_interval_ms / 1000); // dtu_step_time
    hs_pb_int(&info, 9, d->signal);
    hs_pb_string(&info, 11, "1.1.21.10_hm");
    hs_pb_int(&info, 24, d->encrypted ? 0x4E0000C0 : 0x4C0000C0);
    if (d->encrypted) {
        hs_pb_bytes(&info, 27, d->enc_rand, HS_ENC_RAND_LEN);
    }
    hs_pb_message(r, 8, &info);

    hs_pb_int(&pv, 1, 3); // device_kind: micro-inverter
    hs_pb_int(&pv, 2, (int64_t)d->inv_sn);
    hs_pb_int(&pv, 4, d->m->pv_sw);
    hs_pb_int(&pv, 5, d->m->pv_hw_pn);
    hs_pb_int(&pv, 6, 256);
    hs_pb_int(&pv, 7, 0x0A00);
    hs_pb_int(&pv, 8, 0x0100);
    hs_pb_message(r, 11, &pv);

    char text[64];
    snprintf(text, sizeof(text), "1,A:%d,B:%d,C:%d", d->limit_pm, d->limit_pm, d->limit_pm);
    hs_pb_int(&feat, 1, 8);
    hs_pb_string(&feat, 2, text);
    hs_pb_message(r, 13, &feat);
    hs_buf_free(&info);
    hs_buf_free(&pv);
    hs_buf_free(&feat);
}

static void reply_realdata(struct hs_dtu *d, struct hs_buf *r)
{
    const struct snapshot *s = &d->snap;
    struct hs_buf sgs = {0};
    hs_pb_string(r, 1, d->dtu_sn);
    hs_pb_int(r, 2, s->time_s);
    hs_pb_int(r, 3, 1); // ap: one package
    hs_pb_int(r, 5, 1); // ver

    hs_pb_int(&sgs, 1, (int64_t)d->inv_sn);
    hs_pb_int(&sgs, 2, 1);
    hs_pb_int(&sgs, 3, s->ac_v);
    hs_pb_int(&sgs, 4, s->freq);
    hs_pb_int(&sgs, 5, s->ac_p);
    hs_pb_int(&sgs, 6, s->ac_q);
    hs_pb_int(&sgs, 7, s->ac_i);
    hs_pb_int(&sgs, 8, s->pf);
    hs_pb_int(&sgs, 9, s->temp);
    hs_pb_int(&sgs, 10, d->wnum);
    hs_pb_int(&sgs, 12, 1); // link_status
    hs_pb_int(&sgs, 13, d->p_lim);
    hs_pb_message(r, 9, &sgs);

    int daily = 0;
    for (int i = 0; i < d->m->ports; i++) {
        struct hs_buf pv = {0};
        hs_pb_int(&pv, 1, (int64_t)d->inv_sn);
        hs_pb_int(&pv, 2, i + 1);
        hs_pb_int(&pv, 3, s->pv_v[i]);
        hs_pb_int(&pv, 4, s->pv_i[i]);
        hs_pb_int(&pv, 5, s->pv_p[i]);
        hs_pb_int(&pv, 6, s->pv_et[i]);
        hs_pb_int(&pv, 7, s->pv_ed[i]);
        hs_pb_int(&pv, 8, 0x03000000);
        hs_pb_message(r, 11, &pv);
        hs_buf_free(&pv);
        daily += s->pv_ed[i];
    }
    hs_pb_int(r, 12, s->ac_p);
    hs_pb_int(r, 13, daily);
    hs_buf_free(&sgs);
}

static void reply_getconfig(struct hs_dtu *d, int64_t wall, const uint8_t *p, size_t n,
                            struct hs_buf *r)
{
    static const int wifi_ip[4] = {192, 168, 178, 77};
    hs_pb_int(r, 1, req_int(p, n, 1, DATA_OFFSET));
    hs_pb_int(r, 2, wall_s(wall));
    hs_pb_int(r, 5, d->p_lim);
    hs_pb_int(r, 8, 1);   // netmode: WiFi
    hs_pb_int(r, 10, 15); // server_send_time, minutes
    hs_pb_int(r, 11, d->signal);
    hs_pb_int(r, 12, 10081);
    hs_pb_string(r, 14, "2.1.21.10_hm");
    hs_pb_string(r, 16, HS_SECRET_WIFI_SSID);
    hs_pb_string(r, 17, HS_SECRET_WIFI_PASS);
    hs_pb_string(r, 18, "dataeu.hoymiles.com");
    hs_pb_string(r, 20, d->dtu_sn);
    hs_pb_int(r, 26, 1); // dhcp
    for (int i = 0; i < 4; i++) {
        hs_pb_int(r, 48 + (unsigned)i, wifi_ip[i]);
    }
    uint64_t mac = mix64(d->cfg.seed + 7);
    hs_pb_int(r, 54, 0x24);
    hs_pb_int(r, 55, 0xDC);
    hs_pb_int(r, 56, 0xC3);
    for (int i = 0; i < 3; i++) {
        hs_pb_int(r, 57 + (unsigned)i, (int64_t)((mac >> (8 * i)) & 0xFF));
    }
    char ap[32];
    snprintf(ap, sizeof(ap), "DTUBI-%s", d->dtu_sn);
    hs_pb_string(r, 61, ap);
    hs_pb_string(r, 62, HS_SECRET_AP_PASS);
}

static void reply_warn(struct hs_dtu *d, int64_t wall, struct hs_buf *r)
{
    hs_pb_string(r, 1, d->dtu_sn);
    hs_pb_int(r, 2, wall_s(wall));
    hs_pb_int(r, 3, 1); // package_nub
    for (int i = 0; i < d->n_warns; i++) {
        const struct warn_event *w = &d->warns[i];
        struct hs_buf mo = {0};
        int code = w->code;
        if (d->encrypted) {
            // Newer firmware flags the state in the code's high bits (hoymiles.md 2.9).
            code |= w->e_time ? 0x7000 : 0x2000;
        }
        hs_pb_int(&mo, 1, (int64_t)d->inv_sn);
        hs_pb_int(&mo, 2, code);
        hs_pb_int(&mo, 3, w->num);
        hs_pb_int(&mo, 4, w->s_time);
        hs_pb_int(&mo, 5, w->e_time);
        hs_pb_message(r, 6, &mo);
        hs_buf_free(&mo);
    }
}

static void reply_heartbeat(struct hs_dtu *d, int64_t wall, const uint8_t *p, size_t n,
                            struct hs_buf *r)
{
    char inv[17];
    snprintf(inv, sizeof(inv), "%012" PRIX64, d->inv_sn);
    hs_pb_int(r, 1, req_int(p, n, 1, DATA_OFFSET));
    hs_pb_int(r, 2, wall_s(wall));
    hs_pb_int(r, 3, d->signal / 2 - 60); // csq, negative
    hs_pb_string(r, 4, d->dtu_sn);
    hs_pb_string(r, 5, inv);
}

static void reply_network(struct hs_dtu *d, int64_t wall, struct hs_buf *r)
{
    hs_pb_string(r, 1, d->dtu_sn);
    hs_pb_int(r, 2, wall_s(wall));
    hs_pb_int(r, 3, 1);
    hs_pb_int(r, 6, 1); // working over WiFi
    hs_pb_int(r, 8, d->signal);
    hs_pb_int(r, 9, 1);
}

// Applies a command. Returns the err_code of the reply; *reboot is set for a DTU reboot, which
// happens after the reply is queued.
static int command_apply(struct hs_dtu *d, int64_t arrival, int64_t wall, int action,
                         const char *data, bool *reboot)
{
    switch (action) {
    case HS_ACTION_LIMIT_POWER: {
        int pm;
        char tail;
        if (sscanf(data, "A:%d%c", &pm, &tail) < 1 || pm < 0 || pm > 1000) {
            logf_(d, HS_LOG_WARN, "limit command with bad data '%s'", data);
            return 1;
        }
        d->st.persistent_writes++;
        if (d->have_persist) {
            int64_t gap = arrival - d->last_persist;
            if (d->st.min_persistent_interval_ms < 0 || gap < d->st.min_persistent_interval_ms) {
                d->st.min_persistent_interval_ms = gap;
            }
        }
        d->have_persist = true;
        d->last_persist = arrival;
        d->limit_pm = pm;
        d->runtime_w = -1; // a persistent limit cancels the runtime one
        d->p_lim = pm;
        logf_(d, HS_LOG_INFO, "persistent limit %.1f %% written to flash (write %" PRIu64 ")",
              pm / 10.0, d->st.persistent_writes);
        return 0;
    }
    case HS_ACTION_LIMIT_RUNTIME: {
        int s, p;
        if (sscanf(data, "S:%d,P:%d", &s, &p) != 2 || (s != 0 && s != 1) || p < 0) {
            logf_(d, HS_LOG_WARN, "runtime limit command with bad data '%s'", data);
            return 1;
        }
        d->st.runtime_writes++;
        if (s == 1) {
            d->runtime_w = p / 10.0;
            d->p_lim = p;
            logf_(d, HS_LOG_INFO, "runtime limit %.1f W", p / 10.0);
        } else {
            d->runtime_w = -1;
        }
        return 0;
    }
    case HS_ACTION_PERF_MODE: d->perf_mode = true; return 0;
    case HS_ACTION_DTU_REBOOT: *reboot = true; return 0;
    case HS_ACTION_MI_REBOOT:
    case HS_ACTION_INV_REBOOT: inverter_reboot(d); return 0;
    case HS_ACTION_MI_START: inverter_set(d, true, wall); return 0;
    case HS_ACTION_MI_SHUTDOWN: inverter_set(d, false, wall); return 0;
    default: return 0; // accepted without a visible effect (alarm list refresh, ...)
    }
}

// Handles a command frame; returns true when a reply was built into r.
static bool handle_command(struct hs_dtu *d, int64_t arrival, int64_t wall, uint16_t tag,
                           const uint8_t *p, size_t n, struct hs_buf *r, bool *reboot)
{
    char data[128];
    copy_field(p, n, 7, data, sizeof(data));
    int action = (int)req_int(p, n, 2, 0);
    count_key(d->st.by_action, &d->st.n_actions, (unsigned)action);
    if (tag == HS_TAG_CLOUD_CMD) {
        // Local clients reuse the cloud tag; the DTU acts but never answers it locally.
        command_apply(d, arrival, wall, action, data, reboot);
        logf_(d, HS_LOG_INFO, "0x2305 command action %d applied, not answered", action);
        return false;
    }
    int err = 0;
    if (d->busy > 0) {
        d->busy--;
        err = 7;
    } else if (d->have_last_cmd && arrival - d->last_cmd < d->cfg.cmd_min_gap_ms) {
        err = 7;
    }
    if (err == 7) {
        d->st.err7_replies++;
        logf_(d, HS_LOG_INFO, "command action %d refused with err_code 7 (busy)", action);
    }
    d->have_last_cmd = true;
    d->last_cmd = arrival;
    if (err == 0) {
        err = command_apply(d, arrival, wall, action, data, reboot);
    }
    hs_pb_string(r, 1, d->dtu_sn);
    hs_pb_int(r, 2, wall_s(wall));
    hs_pb_int(r, 3, action);
    hs_pb_int(r, 4, req_int(p, n, 5, 0));
    hs_pb_int(r, 5, err);
    hs_pb_int(r, 6, req_int(p, n, 6, 0));
    return true;
}

// Queues the reply frame on c, applying the armed one-shot faults.
static void send_reply(struct hs_dtu *d, struct hs_conn *c, uint16_t tag, uint16_t seq,
                       const struct hs_buf *payload, bool sealed)
{
    if (d->f_drop) {
        d->f_drop = false;
        c->closing = true;
        c->out.len = 0;
        logf_(d, HS_LOG_INFO, "fault drop: connection closed instead of reply 0x%04X", tag);
        return;
    }
    struct hs_buf frame = {0};
    hs_frame_build(&frame, tag, seq, payload->data, payload->len, sealed ? d->enc_rand : NULL);
    if (d->f_dup) {
        d->f_dup = false;
        hs_buf_append(&c->out, d->last_reply.data, d->last_reply.len);
    }
    if (d->f_garbage) {
        d->f_garbage = false;
        uint8_t junk[20];
        size_t k = 5 + (size_t)(rng_next(d) % 16);
        for (size_t i = 0; i < k; i++) {
            do {
                junk[i] = (uint8_t)rng_next(d);
            } while (junk[i] == 'H');
        }
        hs_buf_append(&c->out, junk, k);
    }
    d->last_reply.len = 0;
    hs_buf_append(&d->last_reply, frame.data, frame.len);
    if (d->f_badcrc) {
        d->f_badcrc = false;
        frame.data[6] ^= 0x5A;
        frame.data[7] ^= 0x5A;
    }
    hs_buf_append(&c->out, frame.data, frame.len);
    hs_buf_free(&frame);
    d->st.replies++;
    if (d->cfg.close_after_reply) {
        c->closing = true;
    }
}

// A complete request frame arrived at `arrival`. Applies the timing rules, then answers it.
static void frame_in(struct hs_dtu *d, struct hs_conn *c, int64_t arrival, int64_t wall,
                     const struct hs_frame *f, enum frame_kind kind)
{
    d->st.requests++;
    count_key(d->st.by_tag, &d->st.n_tags, f->tag);
    logf_(d, HS_LOG_DEBUG, "request 0x%04X seq %u, %zu payload bytes", f->tag, f->seq, f->n);
    if (in_cloud_window(d, wall)) {
        d->st.lost_uploads++;
        logf_(d, HS_LOG_WARN, "request 0x%04X inside a cloud upload window: upload lost", f->tag);
    }
    if (d->locked) {
        d->st.requests_while_locked++;
        d->last_req = arrival;
        logf_(d, HS_LOG_INFO, "locked up: request 0x%04X not answered", f->tag);
        return;
    }
    if (d->have_last_req && d->cfg.guard_ms > 0 && arrival - d->last_req < d->cfg.guard_ms) {
        d->st.guard_violations++;
        d->st.lockups++;
        d->locked = true;
        d->locked_until = arrival + d->cfg.lockup_ms;
        logf_(d, HS_LOG_WARN,
              "guard violation: request 0x%04X arrived %" PRId64 " ms after the previous one "
              "(guard %" PRId64 " ms); locked up for %" PRId64 " ms",
              f->tag, arrival - d->last_req, d->cfg.guard_ms, d->cfg.lockup_ms);
        d->last_req = arrival;
        return;
    }
    d->have_last_req = true;
    d->last_req = arrival;
    if (d->f_stall) {
        d->f_stall = false;
        d->st.stalled++;
        logf_(d, HS_LOG_INFO, "fault stall: request 0x%04X swallowed", f->tag);
        return;
    }
    if (hs_crc16(f->payload, f->n) != f->crc) {
        d->st.bad_frames++;
        logf_(d, HS_LOG_INFO, "request 0x%04X with a bad CRC: not answered", f->tag);
        return;
    }
    struct hs_buf plain = {0}, reply = {0};
    if (kind == FK_NO_TAG) {
        d->st.decrypt_failures++;
        logf_(d, HS_LOG_INFO, "request 0x%04X without GCM tag on an encrypted tag: ignored",
              f->tag);
        return;
    }
    if (kind == FK_SEALED) {
        uint8_t *out = malloc(f->n);
        if (!out) {
            abort();
        }
        if (hs_crypt_open(d->enc_rand, f->tag, f->seq, f->payload, f->n, f->gcm_tag, out) < 0) {
            free(out);
            d->st.decrypt_failures++;
            logf_(d, HS_LOG_INFO, "request 0x%04X does not decrypt: ignored", f->tag);
            return;
        }
        hs_buf_append(&plain, out, f->n);
        free(out);
    } else {
        hs_buf_append(&plain, f->payload, f->n);
    }
    if (hs_pb_validate(plain.data, plain.len) < 0) {
        d->st.bad_frames++;
        logf_(d, HS_LOG_INFO, "request 0x%04X is not protobuf: ignored", f->tag);
        hs_buf_free(&plain);
        return;
    }
    bool answer = true, reboot = false;
    switch (f->tag) {
    case HS_TAG_APPINFO: reply_appinfo(d, wall, &reply); break;
    case HS_TAG_HEARTBEAT: reply_heartbeat(d, wall, plain.data, plain.len, &reply); break;
    case HS_TAG_WARN: reply_warn(d, wall, &reply); break;
    case HS_TAG_REALDATA: reply_realdata(d, &reply); break;
    case HS_TAG_NETWORK: reply_network(d, wall, &reply); break;
    case HS_TAG_GETCONFIG:
        if (d->cfg.getconfig_silent) {
            answer = false;
            logf_(d, HS_LOG_INFO, "GetConfig accepted, not answered (getconfig silent)");
        } else {
            reply_getconfig(d, wall, plain.data, plain.len, &reply);
        }
        break;
    case HS_TAG_COMMAND:
    case HS_TAG_CLOUD_CMD:
        answer = handle_command(d, arrival, wall, f->tag, plain.data, plain.len, &reply, &reboot);
        break;
    default:
        answer = false;
        logf_(d, HS_LOG_INFO, "request 0x%04X not supported: not answered", f->tag);
        break;
    }
    if (answer) {
        send_reply(d, c, (uint16_t)(f->tag - 0x0100), f->seq, &reply, kind == FK_SEALED);
    }
    if (reboot) {
        dtu_reboot(d, arrival, true);
    }
    hs_buf_free(&plain);
    hs_buf_free(&reply);
}

// The heartbeat may come plain on encrypting firmware; accept a payload that parses as exactly
// the HBResDTO fields (1 and 2 varints, 3 a printable string).
static bool heartbeat_plain(const uint8_t *p, size_t n)
{
    struct hs_pb_reader r;
    struct hs_pb_field f;
    int rc;
    hs_pb_reader_init(&r, p, n);
    while ((rc = hs_pb_next(&r, &f)) > 0) {
        if ((f.field == 1 || f.field == 2) && f.wire == 0) {
            continue;
        }
        if (f.field != 3 || f.wire != 2) {
            return false;
        }
        for (size_t i = 0; i < f.len; i++) {
            if (f.data[i] < 0x20 || f.data[i] > 0x7E) {
                return false;
            }
        }
    }
    return rc == 0;
}

static bool sealed_ok(const struct hs_dtu *d, const struct hs_frame *f)
{
    uint8_t *out = malloc(f->n);
    if (!out) {
        abort();
    }
    bool ok = hs_crypt_open(d->enc_rand, f->tag, f->seq, f->payload, f->n, f->gcm_tag, out) == 0;
    free(out);
    return ok;
}

// Extracts and handles every complete frame buffered on c. The bytes that completed them
// reached the host at (arrival, arrival_wall); mono is now.
static void conn_process(struct hs_dtu *d, struct hs_conn *c, int64_t mono, int64_t arrival,
                         int64_t arrival_wall)
{
    while (!c->closing && d->conn == c && !d->rebooting) {
        size_t skip = 0;
        const uint8_t *b = c->in.data;
        while (skip < c->in.len &&
               !(b[skip] == 'H' && (skip + 1 >= c->in.len || b[skip + 1] == 'M'))) {
            skip++;
        }
        if (skip) {
            if (!c->in_garbage) {
                d->st.bad_frames++;
                logf_(d, HS_LOG_INFO, "skipping garbage before a frame");
            }
            c->in_garbage = true;
            c->waiting_tag = false;
            hs_buf_consume(&c->in, skip);
            b = c->in.data;
        }
        struct hs_frame f;
        int rc = hs_frame_parse(b, c->in.len, false, &f);
        if (rc == 0) {
            return;
        }
        if (rc < 0) {
            if (!c->in_garbage) {
                d->st.bad_frames++;
                logf_(d, HS_LOG_INFO, "frame with an impossible length: resynchronising");
            }
            c->in_garbage = true;
            hs_buf_consume(&c->in, 1);
            continue;
        }
        c->in_garbage = false;
        bool enc_tag = d->encrypted && f.n > 0 && hs_tag_encrypted(f.tag);
        if (!enc_tag) {
            frame_in(d, c, arrival, arrival_wall, &f, FK_PLAIN);
            hs_buf_consume(&c->in, f.total);
            continue;
        }
        struct hs_frame ft;
        bool have_tag = hs_frame_parse(b, c->in.len, true, &ft) > 0;
        if (f.tag == HS_TAG_HEARTBEAT && (!have_tag || !sealed_ok(d, &ft)) &&
            heartbeat_plain(f.payload, f.n)) {
            frame_in(d, c, arrival, arrival_wall, &f, FK_PLAIN);
            hs_buf_consume(&c->in, f.total);
            continue;
        }
        if (!have_tag) {
            if (!c->waiting_tag) {
                c->waiting_tag = true;
                c->wait_since = mono;
                c->body_arrival = arrival;
            }
            return;
        }
        c->waiting_tag = false;
        frame_in(d, c, arrival, arrival_wall, &ft, FK_SEALED);
        hs_buf_consume(&c->in, ft.frame_len);
    }
}

// ---- Public entry points --------------------------------------------------------------------

void hs_dtu_tick(struct hs_dtu *d, int64_t mono, int64_t wall)
{
    if (mono < d->last_mono) {
        mono = d->last_mono;
    }
    advance(d, mono, wall);
    bool p = pv_present(d, wall);
    if (p != d->powered) {
        d->powered = p;
        if (!p) {
            conn_detach(d, false);
            logf_(d, HS_LOG_INFO, "night: no PV power, DTU off");
        } else {
            // Sunrise powers the DTU and the inverter up from scratch.
            inverter_restart(d);
            d->rebooting = false;
            dtu_boot(d, mono, wall);
        }
    }
    if (d->rebooting && mono >= d->reboot_until) {
        if (d->powered) {
            dtu_boot(d, mono, wall);
        } else {
            d->rebooting = false; // boots at sunrise
        }
    }
    if (d->locked && mono >= d->locked_until) {
        d->locked = false;
        logf_(d, HS_LOG_INFO, "lock-up over: answering again");
    }
    struct hs_conn *c = d->conn;
    if (c && c->waiting_tag && mono >= c->wait_since + d->cfg.tag_wait_ms) {
        struct hs_frame f;
        c->waiting_tag = false;
        if (hs_frame_parse(c->in.data, c->in.len, false, &f) > 0) {
            frame_in(d, c, c->body_arrival, wall, &f, FK_NO_TAG);
            hs_buf_consume(&c->in, f.total);
        }
        if (d->conn == c) {
            conn_process(d, c, mono, mono, wall);
        }
    }
    if (d->powered && !d->rebooting && mono >= d->next_data) {
        if (!d->cfg.stale) {
            take_snapshot(d, wall);
        }
        while (d->next_data <= mono) {
            d->next_data += d->cfg.data_interval_ms;
        }
    }
}

int64_t hs_dtu_next_event(const struct hs_dtu *d, int64_t mono, int64_t wall)
{
    int64_t t = INT64_MAX;
#define EARLIER(x)                                                                                 \
    do {                                                                                           \
        int64_t x_ = (x);                                                                          \
        t = x_ < t ? x_ : t;                                                                       \
    } while (0)
    if (d->powered && !d->rebooting && !d->cfg.stale) {
        EARLIER(d->next_data);
    }
    if (d->rebooting) {
        EARLIER(d->reboot_until);
    }
    if (d->locked) {
        EARLIER(d->locked_until);
    }
    if (d->conn && d->conn->waiting_tag) {
        EARLIER(d->conn->wait_since + d->cfg.tag_wait_ms);
    }
    int64_t tod = ms_of_day(d, wall);
    EARLIER(mono + (DAY_MS - tod)); // local midnight: daily energy reset
    if (d->cfg.sun && !d->cfg.night) {
        int64_t sr = sunrise_ms(d), ss = sunset_ms(d);
        int64_t next = tod < sr ? sr : tod < ss ? ss : DAY_MS + sr;
        EARLIER(mono + (next - tod));
    }
#undef EARLIER
    return t;
}

bool hs_dtu_reachable(struct hs_dtu *d, int64_t mono, int64_t wall)
{
    hs_dtu_tick(d, mono, wall);
    return d->powered && !d->rebooting;
}

struct hs_conn *hs_conn_new(struct hs_dtu *d, int64_t mono, int64_t wall)
{
    if (!hs_dtu_reachable(d, mono, wall)) {
        return NULL;
    }
    if (d->conn) {
        d->st.connections_replaced++;
        logf_(d, HS_LOG_INFO, "new connection replaces the open one");
        conn_detach(d, false);
    }
    struct hs_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        abort();
    }
    d->conn = c;
    d->st.connections++;
    return c;
}

size_t hs_conn_input(struct hs_dtu *d, struct hs_conn *c, int64_t mono, int64_t wall,
                     const uint8_t *buf, size_t len)
{
    return hs_conn_input_at(d, c, mono, wall, mono, buf, len);
}

size_t hs_conn_input_at(struct hs_dtu *d, struct hs_conn *c, int64_t mono, int64_t wall,
                        int64_t arrived, const uint8_t *buf, size_t len)
{
    hs_dtu_tick(d, mono, wall);
    if (c->closing || d->conn != c || len == 0) {
        return len;
    }
    hs_buf_append(&c->in, buf, len);
    int64_t now = d->last_mono > mono ? d->last_mono : mono;
    int64_t arrival = arrived < now ? arrived : now;
    conn_process(d, c, now, arrival, wall - (now - arrival));
    return len;
}

const uint8_t *hs_conn_output(struct hs_conn *c, size_t *len)
{
    *len = c->out.len;
    return c->out.data;
}

void hs_conn_sent(struct hs_conn *c, size_t n)
{
    hs_buf_consume(&c->out, n);
}

bool hs_conn_closing(const struct hs_conn *c)
{
    return c->closing;
}

void hs_conn_free(struct hs_dtu *d, struct hs_conn *c)
{
    if (!c) {
        return;
    }
    if (d && d->conn == c) {
        d->conn = NULL;
    }
    hs_buf_free(&c->in);
    hs_buf_free(&c->out);
    free(c);
}

int hs_dtu_control(struct hs_dtu *d, int64_t mono, int64_t wall, enum hs_ctl what, double arg)
{
    hs_dtu_tick(d, mono, wall);
    mono = d->last_mono;
    bool on = arg != 0;
    switch (what) {
    case HS_CTL_NIGHT: d->cfg.night = on; break;
    case HS_CTL_POWER:
        if (!(arg >= 0) || arg > 1e6) {
            return -EINVAL;
        }
        d->cfg.sun = false;
        d->cfg.power_w = arg;
        break;
    case HS_CTL_REBOOT:
        if (d->powered && !d->rebooting) {
            dtu_reboot(d, mono, false);
        }
        d->locked = false;
        break;
    case HS_CTL_INVERTER_REBOOT: inverter_reboot(d); break;
    case HS_CTL_INVERTER_ON: inverter_set(d, on, wall); break;
    case HS_CTL_ENCRYPTED:
        d->encrypted = on;
        if (d->powered && !d->rebooting) {
            dtu_reboot(d, mono, false);
        }
        break;
    case HS_CTL_STALE: d->cfg.stale = on; break;
    case HS_CTL_CLOSE_AFTER_REPLY: d->cfg.close_after_reply = on; break;
    case HS_CTL_GETCONFIG_SILENT: d->cfg.getconfig_silent = on; break;
    case HS_CTL_WARN:
        if (!(arg >= 0 && arg <= 0xFFFF)) {
            return -EINVAL;
        }
        warn_add(d, (int)arg, wall);
        break;
    case HS_CTL_FAULT_GARBAGE: d->f_garbage = true; break;
    case HS_CTL_FAULT_BADCRC: d->f_badcrc = true; break;
    case HS_CTL_FAULT_DROP: d->f_drop = true; break;
    case HS_CTL_FAULT_STALL: d->f_stall = true; break;
    case HS_CTL_FAULT_DUP: d->f_dup = true; break;
    case HS_CTL_BUSY:
        if (!(arg >= 0 && arg <= 1e6)) {
            return -EINVAL;
        }
        d->busy = (int)arg;
        break;
    case HS_CTL_LOCK:
        d->locked = true;
        d->locked_until = mono + d->cfg.lockup_ms;
        d->st.lockups++;
        logf_(d, HS_LOG_INFO, "forced lock-up for %" PRId64 " ms", d->cfg.lockup_ms);
        break;
    case HS_CTL_UNLOCK: d->locked = false; break;
    case HS_CTL_GUARD:
    case HS_CTL_LOCKUP:
    case HS_CTL_CMD_GAP:
        if (!(arg >= 0 && arg <= 1e10)) {
            return -EINVAL;
        }
        *(what == HS_CTL_GUARD    ? &d->cfg.guard_ms
          : what == HS_CTL_LOCKUP ? &d->cfg.lockup_ms
                                  : &d->cfg.cmd_min_gap_ms) = (int64_t)arg;
        break;
    case HS_CTL_AMBIENT:
        if (!(arg > -60 && arg < 80)) {
            return -EINVAL;
        }
        d->ambient_mean = arg;
        break;
    default: return -EINVAL;
    }
    // Night, power and on/off changes show at once in reachability (and the next data set).
    hs_dtu_tick(d, mono, wall);
    return 0;
}

// ---- Statistics -----------------------------------------------------------------------------

void hs_dtu_stats(const struct hs_dtu *d, struct hs_stats *st)
{
    *st = d->st;
    st->model = d->cfg.model;
    snprintf(st->dtu_sn, sizeof(st->dtu_sn), "%s", d->dtu_sn);
    snprintf(st->inverter_sn, sizeof(st->inverter_sn), "%012" PRIX64, d->inv_sn);
    st->limit_percent = d->limit_pm / 10.0;
    st->limit_watts = d->runtime_w;
    st->p_lim = d->p_lim;
    st->inverter_on = d->inverter_on;
    st->perf_mode = d->perf_mode;
    double dc[HS_MAX_PORTS];
    st->power_w = ac_output(d, d->last_wall, dc);
    st->energy_total_wh = st->energy_daily_wh = 0;
    for (int i = 0; i < d->m->ports; i++) {
        st->energy_total_wh += d->energy_total[i];
        st->energy_daily_wh += d->energy_daily[i];
    }
    st->warning_number = d->wnum;
    st->data_timestamp = d->snap.time_s;
    st->locked = d->locked;
    st->night = !d->powered;
    st->reachable = d->powered && !d->rebooting;
    st->rebooting = d->rebooting;
    st->encrypted = d->encrypted;
    st->stale = d->cfg.stale;
    st->close_after_reply = d->cfg.close_after_reply;
    st->getconfig_silent = d->cfg.getconfig_silent;
    st->enc_rand_hex[0] = '\0';
    if (d->encrypted) {
        for (int i = 0; i < HS_ENC_RAND_LEN; i++) {
            snprintf(st->enc_rand_hex + 2 * i, 3, "%02x", d->enc_rand[i]);
        }
    }
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap *= 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            abort();
        }
    }
}

char *hs_stats_json(const struct hs_stats *st)
{
    struct sbuf b = {malloc(1024), 0, 1024};
    if (!b.p) {
        abort();
    }
    sb_printf(&b, "{\"requests\":%" PRIu64 ",\"replies\":%" PRIu64 ",\"requests_by_tag\":{",
              st->requests, st->replies);
    for (int i = 0; i < st->n_tags; i++) {
        sb_printf(&b, "%s\"0x%04x\":%" PRIu64, i ? "," : "", st->by_tag[i].key,
                  st->by_tag[i].count);
    }
    sb_printf(&b,
              "},\"guard_violations\":%" PRIu64 ",\"lockups\":%" PRIu64
              ",\"requests_while_locked\":%" PRIu64 ",\"lost_uploads\":%" PRIu64
              ",\"persistent_writes\":%" PRIu64 ",\"min_persistent_interval_ms\":",
              st->guard_violations, st->lockups, st->requests_while_locked, st->lost_uploads,
              st->persistent_writes);
    if (st->min_persistent_interval_ms >= 0 && st->persistent_writes >= 2) {
        sb_printf(&b, "%" PRId64, st->min_persistent_interval_ms);
    } else {
        sb_printf(&b, "null");
    }
    sb_printf(&b, ",\"runtime_writes\":%" PRIu64 ",\"err7_replies\":%" PRIu64 ",\"commands\":{",
              st->runtime_writes, st->err7_replies);
    for (int i = 0; i < st->n_actions; i++) {
        sb_printf(&b, "%s\"%u\":%" PRIu64, i ? "," : "", st->by_action[i].key,
                  st->by_action[i].count);
    }
    sb_printf(&b,
              "},\"decrypt_failures\":%" PRIu64 ",\"bad_frames\":%" PRIu64
              ",\"connections\":%" PRIu64 ",\"connections_replaced\":%" PRIu64
              ",\"stalled\":%" PRIu64 ",\"dtu_reboots\":%" PRIu64 ",\"dtu_boots\":%" PRIu64
              ",\"inverter_reboots\":%" PRIu64,
              st->decrypt_failures, st->bad_frames, st->connections, st->connections_replaced,
              st->stalled, st->dtu_reboots, st->dtu_boots, st->inverter_reboots);
    sb_printf(&b, ",\"model\":\"%s\",\"dtu_sn\":\"%s\",\"inverter_sn\":\"%s\"",
              hs_model_name(st->model), st->dtu_sn, st->inverter_sn);
    sb_printf(&b, ",\"limit_percent\":%.1f,\"limit_watts\":", st->limit_percent);
    if (st->limit_watts >= 0) {
        sb_printf(&b, "%.1f", st->limit_watts);
    } else {
        sb_printf(&b, "null");
    }
    sb_printf(&b, ",\"p_lim\":");
    if (st->p_lim) {
        sb_printf(&b, "%d", st->p_lim);
    } else {
        sb_printf(&b, "null");
    }
    sb_printf(&b,
              ",\"inverter_on\":%s,\"perf_mode\":%s,\"power_w\":%.1f,\"energy_total_wh\":%.1f"
              ",\"energy_daily_wh\":%.1f,\"warning_number\":%d,\"data_timestamp\":%" PRId64,
              st->inverter_on ? "true" : "false", st->perf_mode ? "true" : "false", st->power_w,
              st->energy_total_wh, st->energy_daily_wh, st->warning_number, st->data_timestamp);
    sb_printf(&b,
              ",\"locked\":%s,\"night\":%s,\"reachable\":%s,\"rebooting\":%s,\"encrypted\":%s"
              ",\"stale\":%s,\"close_after_reply\":%s,\"getconfig_silent\":%s,\"enc_rand\":",
              st->locked ? "true" : "false", st->night ? "true" : "false",
              st->reachable ? "true" : "false", st->rebooting ? "true" : "false",
              st->encrypted ? "true" : "false", st->stale ? "true" : "false",
              st->close_after_reply ? "true" : "false", st->getconfig_silent ? "true" : "false");
    if (st->enc_rand_hex[0]) {
        sb_printf(&b, "\"%s\"}", st->enc_rand_hex);
    } else {
        sb_printf(&b, "null}");
    }
    return b.p;
}
