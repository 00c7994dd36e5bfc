// SPDX-License-Identifier: MIT
// e2m-venus-sim device model: a Venus battery and its firmware's key=value protocol.
//
// What it answers (the forms the community documents for the cloud protocol):
//  cd=1   the runtime reply, `cd=1,cel_p=...,tim_0=h|m|h|m|mask|W|on,...`
//  cd=14  the BMS reply, cd=19 the CT reply `get_power=A|B|C|total|output`
//  cd=4   sets the clock; answered with the echo `cd=4,Y-M-D h:m:s`
//  cd=2, 3, 11, 15, 16: settings, answered `cd=<n>,ret=1` (ret=0 for a value it refuses)
// Times in cd=3 are read by position like the firmware does: `bt=2:43` becomes 02:03.
// Factory reset (cd=5) and firmware updates (cd=9, 20, 51, 53, 54) are never executed: they are
// reported as forbidden.
#include "venus_sim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool is_tenths_type(const char *type)
{
    return strncmp(type, "VNSA", 4) == 0 || strncmp(type, "VNSD", 4) == 0;
}

static void device_clock(const struct vs_device *d, int64_t wall_ms, struct tm *tm)
{
    time_t t = (time_t)((wall_ms + d->clock_offset_ms) / 1000);
    gmtime_r(&t, tm);
}

void vs_init(struct vs_device *d, const char *type, int month_base, int64_t wall_ms)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->type, sizeof(d->type), "%s", type);
    d->capacity_wh = strncmp(type, "HMG-25", 6) == 0 ? 2560 : 5120;
    d->month_base = month_base;
    d->stored_wh = d->capacity_wh / 2;
    d->charged_wh = 339930; // a battery that has seen some use
    d->discharged_wh = 298710;
    d->charged_day_wh = 1200;
    d->discharged_day_wh = 980;
    d->charged_month_wh = 34560;
    d->discharged_month_wh = 28900;
    d->income_eur = 56.789;
    d->mode = 0;
    d->mcp_w = 2500;
    d->mdp_w = 800;
    // A weekday charge slot, an empty one, and one that ends at 24:00 as some app versions
    // store the end of the day.
    d->slots[0] = (struct vs_slot){7, 5, 22, 0, 62, -800, 1};
    d->slots[2] = (struct vs_slot){21, 30, 24, 0, 65, 600, 0};
    for (int i = 0; i < VS_SLOTS; i++)
        if (i != 0 && i != 2)
            d->slots[i] = (struct vs_slot){0, 0, 0, 0, 127, 0, 0};
    struct tm tm;
    device_clock(d, wall_ms, &tm);
    d->day = tm.tm_mday;
    d->month = tm.tm_mon;
}

// ---- replies --------------------------------------------------------------------------------

struct out {
    char *buf;
    size_t n, len;
};

static void put_raw(struct out *o, const char *key, const char *value)
{
    if (o->len >= o->n)
        return;
    o->len +=
        (size_t)snprintf(o->buf + o->len, o->n - o->len, "%s%s=%s", o->len ? "," : "", key, value);
}

static const struct vs_pin *pin_find(const struct vs_device *d, const char *key)
{
    for (int i = 0; i < d->n_pins; i++)
        if (strcmp(d->pins[i].key, key) == 0)
            return &d->pins[i];
    return NULL;
}

static void put(const struct vs_device *d, struct out *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// A key with its value, unless `set` pinned another one.
static void put(const struct vs_device *d, struct out *o, const char *key, const char *fmt, ...)
{
    const struct vs_pin *p = pin_find(d, key);
    if (p) {
        put_raw(o, key, p->value);
        return;
    }
    char value[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    put_raw(o, key, value);
}

static int set_v_code(int watts)
{
    static const int codes[][2] = {{800, 1},  {600, 2},  {2200, 3}, {1200, 4}, {1500, 5},
                                   {2300, 6}, {2000, 7}, {3000, 8}, {3600, 9}};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i][0] == watts)
            return codes[i][1];
    return 0;
}

static void runtime(struct vs_device *d, int64_t wall_ms, char *buf, size_t n, bool consume)
{
    (void)wall_ms;
    struct out o = {buf, n, 0};
    buf[0] = '\0';
    double soc = 100.0 * d->stored_wh / d->capacity_wh;
    int p = (int)lround(d->power);
    put_raw(&o, "cd", "1");
    put(d, &o, "cel_p", "%d", (int)(d->stored_wh / 10));
    put(d, &o, "cel_c", "%d", (int)lround(soc));
    char tot_i[32];
    snprintf(tot_i, sizeof(tot_i), "%lld", (long long)(d->charged_wh / 10));
    if (d->quirk_digit && !pin_find(d, "tot_i") && strlen(tot_i) > 1) {
        tot_i[strlen(tot_i) - 1] = '\0'; // the firmware's dropped last digit
        if (consume)
            d->quirk_digit--;
    }
    put(d, &o, "tot_i", "%s", tot_i);
    put(d, &o, "tot_o", "%lld", (long long)(d->discharged_wh / 10));
    put(d, &o, "ele_d", "%lld", (long long)(d->charged_day_wh / 10));
    put(d, &o, "ele_m", "%lld", (long long)(d->charged_month_wh / 10));
    put(d, &o, "grd_d", "%lld", (long long)(d->discharged_day_wh / 10));
    put(d, &o, "grd_m", "%lld", (long long)(d->discharged_month_wh / 10));
    put(d, &o, "inc_d", "%lld", (long long)(d->discharged_day_wh / 1000 * 0.32 * 1000));
    put(d, &o, "inc_m", "%lld", (long long)(d->discharged_month_wh / 1000 * 0.32 * 1000));
    put(d, &o, "inc_a", "%lld", (long long)(d->income_eur * 1000));
    put(d, &o, "grd_f", "%d", d->backup ? abs(p) : 0);
    put(d, &o, "grd_o", "%d", p);
    put(d, &o, "grd_t", "%d", p < 0 ? 2 : p > 0 ? 3 : 1);
    put(d, &o, "gct_s", "1");
    put(d, &o, "cel_s", "%d", p < 0 ? 2 : p > 0 ? 3 : 1);
    put(d, &o, "err_t", "0");
    put(d, &o, "err_a", "0");
    put(d, &o, "dev_n", "153");
    put(d, &o, "grd_y", "3");
    put(d, &o, "wor_m", "%d", d->mode);
    for (int i = 0; i < VS_SLOTS; i++) {
        const struct vs_slot *s = &d->slots[i];
        char key[8];
        snprintf(key, sizeof(key), "tim_%d", i);
        put(d, &o, key, "%d|%d|%d|%d|%d|%d|%d", s->bh, s->bm, s->eh, s->em, s->wk, s->power,
            s->enabled);
    }
    put(d, &o, "cts_m", "0");
    put(d, &o, "bac_u", "%d", d->backup);
    put(d, &o, "tra_a", "0");
    put(d, &o, "tra_i", "0");
    put(d, &o, "tra_o", "0");
    put(d, &o, "htt_p", "0");
    put(d, &o, "prc_c", "250");
    put(d, &o, "prc_d", "320");
    put(d, &o, "wif_s", "52");
    if (d->quirk_setv && !pin_find(d, "set_v")) {
        put_raw(&o, "set_v", "12");
        if (consume)
            d->quirk_setv--;
    } else {
        put(d, &o, "set_v", "%d", set_v_code(d->mdp_w));
    }
    if (d->quirk_mcp && !pin_find(d, "mcp_w")) {
        put_raw(&o, "mcp_w", "-1"); // what some firmware reports instead of the setting
        if (consume)
            d->quirk_mcp--;
    } else {
        put(d, &o, "mcp_w", "%d", d->mcp_w);
    }
    put(d, &o, "mdp_w", "%d", d->mdp_w);
    put(d, &o, "ct_t", "3");
    put(d, &o, "phase_t", "1");
    put(d, &o, "dchrg_t", "0");
    put(d, &o, "bms_v", "215");
    put(d, &o, "fc_v", "202409090159");
    put(d, &o, "wifi_n", "SimNet");
    put(d, &o, "shelly_p", "1010");
    if (d->quirk_dod && !pin_find(d, "dod")) {
        put_raw(&o, "dod", "0");
        if (consume)
            d->quirk_dod--;
    } else if (pin_find(d, "dod")) {
        put(d, &o, "dod", "88");
    }
    // Pinned keys the reply does not carry otherwise (e.g. newer firmware's extras).
    for (int i = 0; i < d->n_pins; i++) {
        char probe[32];
        snprintf(probe, sizeof(probe), ",%s=", d->pins[i].key);
        if (!strstr(buf, probe))
            put_raw(&o, d->pins[i].key, d->pins[i].value);
    }
    d->replies_built++;
}

void vs_runtime(struct vs_device *d, int64_t wall_ms, char *out, size_t n)
{
    runtime(d, wall_ms, out, n, true);
}

static void bms(const struct vs_device *d, char *buf, size_t n)
{
    struct out o = {buf, n, 0};
    buf[0] = '\0';
    double soc = 100.0 * d->stored_wh / d->capacity_wh;
    int t = is_tenths_type(d->type) ? 10 : 1;
    put_raw(&o, "cd", "14");
    put(d, &o, "b_ver", "108");
    put(d, &o, "b_soc", "%d", (int)lround(soc));
    put(d, &o, "b_soh", "98");
    put(d, &o, "b_cap", "%d", (int)d->capacity_wh);
    int cell_mv = 3200 + (int)lround(soc * 1.5);
    put(d, &o, "b_vol", "%d", cell_mv * 16 / 10); // centivolts
    put(d, &o, "b_chv", "576");
    put(d, &o, "b_cur", "%d", (int)lround(d->power / (cell_mv * 16 / 1000.0) * 10));
    put(d, &o, "b_tem", "24");
    for (int i = 1; i <= 4; i++) {
        char key[8];
        snprintf(key, sizeof(key), "b_tp%d", i);
        put(d, &o, key, "%d", (22 + i) * t);
    }
    put(d, &o, "b_mot", "%d", 31 * t);
    for (int i = 1; i <= 16; i++) {
        char key[8];
        snprintf(key, sizeof(key), "b_vo%d", i);
        put(d, &o, key, "%d", cell_mv + (i % 4) - 2);
    }
    put(d, &o, "b_cpc", "%d", (int)(d->charged_wh / d->capacity_wh));
    put(d, &o, "b_err", "0");
    put(d, &o, "b_war", "0");
}

static void ct(const struct vs_device *d, char *buf, size_t n)
{
    struct out o = {buf, n, 0};
    buf[0] = '\0';
    int a = 180 + (int)(60 * sin(d->sim_s / 97)), b = 90, c = 60;
    int out = (int)lround(d->power);
    put_raw(&o, "cd", "19");
    put(d, &o, "get_power", "%d|%d|%d|%d|%d", a, b, c, a + b + c - out, out);
}

// ---- requests -------------------------------------------------------------------------------

// The value of `key` in a comma-separated key=value request, or NULL.
static const char *arg(const char *payload, const char *key, char *buf, size_t n)
{
    size_t klen = strlen(key);
    for (const char *p = payload; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t len = strcspn(p + klen + 1, ",");
            if (len >= n)
                len = n - 1;
            memcpy(buf, p + klen + 1, len);
            buf[len] = '\0';
            return buf;
        }
    }
    return NULL;
}

static bool int_arg(const char *payload, const char *key, long lo, long hi, long *out)
{
    char buf[32];
    if (!arg(payload, key, buf, sizeof(buf)) || !*buf)
        return false;
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

// A time the way the firmware reads it: the hour from the first two characters and the minute
// from the two after the third, whatever they are ("2:43" is 2 and "3").
static bool positional_time(const char *t, int *h, int *m)
{
    if (strlen(t) < 4)
        return false;
    char hh[3] = {t[0], t[1], 0}, mm[3] = {t[3], t[4], 0};
    *h = atoi(hh);
    *m = atoi(mm);
    return true;
}

static enum vs_outcome ack(struct vs_device *d, int cd, bool ok, char *reply, size_t n)
{
    snprintf(reply, n, "cd=%d,ret=%d", cd, ok ? 1 : 0);
    if (ok)
        d->writes++;
    else
        d->refused++;
    return ok ? VS_WRITE : VS_REFUSED;
}

static enum vs_outcome set_slot(struct vs_device *d, const char *p, char *reply, size_t n)
{
    long md, nm, wk, vv, as;
    char bt[16], et[16];
    if (!int_arg(p, "md", 0, 9, &md))
        return ack(d, 3, false, reply, n);
    if (md == 2) // trading parameters: taken, without effect here
        return ack(d, 3, true, reply, n);
    struct vs_slot s;
    bool ok = md == 1 && int_arg(p, "nm", 0, VS_SLOTS - 1, &nm) && int_arg(p, "wk", 0, 127, &wk) &&
              int_arg(p, "vv", -2500, 2500, &vv) && int_arg(p, "as", 0, 1, &as) &&
              arg(p, "bt", bt, sizeof(bt)) && arg(p, "et", et, sizeof(et)) &&
              positional_time(bt, &s.bh, &s.bm) && positional_time(et, &s.eh, &s.em);
    ok = ok && s.bh >= 0 && s.bh <= 23 && s.bm >= 0 && s.bm <= 59 && s.em >= 0 && s.em <= 59 &&
         (s.eh <= 23 || (s.eh == 24 && s.em == 0)) && s.eh >= 0;
    if (!ok)
        return ack(d, 3, false, reply, n);
    s.wk = (int)wk;
    s.power = (int)vv;
    s.enabled = (int)as;
    d->slots[nm] = s;
    return ack(d, 3, true, reply, n);
}

static enum vs_outcome set_clock(struct vs_device *d, const char *p, int64_t wall_ms, char *reply,
                                 size_t n)
{
    long yy, mm, rr, hh, mn;
    if (!int_arg(p, "yy", 2000, 2199, &yy) || !int_arg(p, "mm", 0, 13, &mm) ||
        !int_arg(p, "rr", 1, 31, &rr) || !int_arg(p, "hh", 0, 23, &hh) ||
        !int_arg(p, "mn", 0, 59, &mn))
        return ack(d, 4, false, reply, n);
    int month = (int)mm + (d->month_base == 0 ? 1 : 0); // 1..12
    if (month < 1 || month > 12)
        return ack(d, 4, false, reply, n);
    struct tm tm = {.tm_year = (int)yy - 1900,
                    .tm_mon = month - 1,
                    .tm_mday = (int)rr,
                    .tm_hour = (int)hh,
                    .tm_min = (int)mn};
    time_t t = timegm(&tm);
    d->clock_offset_ms = (int64_t)t * 1000 - wall_ms;
    d->writes++;
    d->clock_sets++;
    struct tm now;
    device_clock(d, wall_ms, &now);
    d->day = now.tm_mday;
    d->month = now.tm_mon;
    snprintf(reply, n, "cd=4,%d-%d-%d %d:%d:%d", now.tm_year + 1900, now.tm_mon + 1, now.tm_mday,
             now.tm_hour, now.tm_min, now.tm_sec);
    return VS_WRITE;
}

enum vs_outcome vs_request(struct vs_device *d, const char *p, int64_t wall_ms, char *reply,
                           size_t n)
{
    reply[0] = '\0';
    if (strncmp(p, "cd=", 3) != 0)
        return VS_IGNORED;
    char *end;
    long cd = strtol(p + 3, &end, 10);
    if (end == p + 3 || (*end && *end != ','))
        return VS_IGNORED;
    long v;
    switch (cd) {
    case 1: runtime(d, wall_ms, reply, n, true); return VS_READ;
    case 14: bms(d, reply, n); return VS_READ;
    case 19: ct(d, reply, n); return VS_READ;
    case 2: {
        char nl[8];
        bool ok = int_arg(p, "md", 0, 5, &v) &&
                  (v <= 2 || (v == 5 && arg(p, "nl", nl, 8) && strcmp(nl, "1") == 0));
        if (ok)
            d->mode = (int)v;
        return ack(d, 2, ok, reply, n);
    }
    case 3: return set_slot(d, p, reply, n);
    case 4: return set_clock(d, p, wall_ms, reply, n);
    case 11: {
        bool ok = int_arg(p, "bc", 0, 1, &v);
        if (ok)
            d->backup = (int)v;
        return ack(d, 11, ok, reply, n);
    }
    case 15: {
        static const long allowed[] = {600, 800, 1200, 1500, 2000, 2200, 2300, 2500};
        bool ok = false;
        if (int_arg(p, "vs", 0, 100000, &v))
            for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
                ok |= allowed[i] == v;
        if (ok)
            d->mdp_w = (int)v;
        return ack(d, 15, ok, reply, n);
    }
    case 16: {
        bool ok = int_arg(p, "cp", 0, 2500, &v);
        if (ok)
            d->mcp_w = (int)v;
        return ack(d, 16, ok, reply, n);
    }
    case 5:
    case 9:
    case 20:
    case 51:
    case 53:
    case 54: d->forbidden++; return VS_FORBIDDEN;
    default: return VS_IGNORED;
    }
}

// ---- evolution ------------------------------------------------------------------------------

// The power the firmware wants now: in manual mode the enabled slot covering the device clock
// (its weekday bit set), else a slow charge/discharge swing; bounded by the limits.
static double wanted_power(const struct vs_device *d, int64_t wall_ms)
{
    double p;
    if (d->mode == 1) {
        struct tm tm;
        device_clock(d, wall_ms, &tm);
        int minute = tm.tm_hour * 60 + tm.tm_min;
        p = 0;
        for (int i = 0; i < VS_SLOTS; i++) {
            const struct vs_slot *s = &d->slots[i];
            int from = s->bh * 60 + s->bm, to = s->eh * 60 + s->em;
            if (s->enabled && (s->wk & (1 << tm.tm_wday)) && minute >= from && minute < to) {
                p = s->power;
                break;
            }
        }
    } else {
        p = 700 * sin(2 * M_PI * d->sim_s / 600);
    }
    if (p < -d->mcp_w)
        p = -d->mcp_w;
    if (p > d->mdp_w)
        p = d->mdp_w;
    return p;
}

void vs_tick(struct vs_device *d, double seconds, int64_t wall_ms)
{
    if (d->frozen || seconds <= 0)
        return;
    d->sim_s += seconds;
    const struct vs_pin *pinned = pin_find(d, "grd_o");
    double p = pinned ? atof(pinned->value) : wanted_power(d, wall_ms);
    if (p > 0 && d->stored_wh <= 0)
        p = 0;
    if (p < 0 && d->stored_wh >= d->capacity_wh)
        p = 0;
    d->power = p;
    double wh = fabs(p) * seconds / 3600;
    if (p < 0) {
        d->stored_wh = fmin(d->capacity_wh, d->stored_wh + wh);
        d->charged_wh += wh;
        d->charged_day_wh += wh;
        d->charged_month_wh += wh;
    } else if (p > 0) {
        d->stored_wh = fmax(0, d->stored_wh - wh);
        d->discharged_wh += wh;
        d->discharged_day_wh += wh;
        d->discharged_month_wh += wh;
        d->income_eur += wh / 1000 * 0.32;
    }
    struct tm tm;
    device_clock(d, wall_ms, &tm);
    if (tm.tm_mday != d->day) {
        d->day = tm.tm_mday;
        d->charged_day_wh = d->discharged_day_wh = 0;
    }
    if (tm.tm_mon != d->month) {
        d->month = tm.tm_mon;
        d->charged_month_wh = d->discharged_month_wh = 0;
    }
}

// ---- control --------------------------------------------------------------------------------

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n >= sizeof(((struct vs_pin *)0)->key))
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

bool vs_control(struct vs_device *d, const char *line, int64_t wall_ms, char *out, size_t n)
{
    char cmd[32] = "", a[64] = "", b[64] = "";
    int got = sscanf(line, "%31s %63s %63s", cmd, a, b);
    if (got < 1)
        return false;
    if (strcmp(cmd, "set") == 0) {
        if (got != 3 || !key_ok(a) || strchr(b, ',')) {
            snprintf(out, n, "err usage: set <key> <raw value without commas>");
            return true;
        }
        struct vs_pin *p = (struct vs_pin *)pin_find(d, a);
        if (!p) {
            if (d->n_pins == VS_PINS) {
                snprintf(out, n, "err too many pinned keys");
                return true;
            }
            p = &d->pins[d->n_pins++];
        }
        snprintf(p->key, sizeof(p->key), "%.23s", a); // key_ok() checked the length
        snprintf(p->value, sizeof(p->value), "%s", b);
        snprintf(out, n, "ok");
        return true;
    }
    if (strcmp(cmd, "thaw") == 0) {
        for (int i = 0; i < d->n_pins; i++) {
            if (strcmp(d->pins[i].key, a) == 0) {
                d->pins[i] = d->pins[--d->n_pins];
                snprintf(out, n, "ok");
                return true;
            }
        }
        snprintf(out, n, "err %s is not pinned", a);
        return true;
    }
    if (strcmp(cmd, "get") == 0) {
        char reply[VS_REPLY_MAX], probe[40];
        runtime(d, wall_ms, reply, sizeof(reply), false);
        d->replies_built--;
        snprintf(probe, sizeof(probe), ",%.36s=", a);
        const char *p = strstr(reply, probe);
        if (got != 2 || !p) {
            snprintf(out, n, "err no key '%s' in the runtime reply", a);
            return true;
        }
        p += strlen(probe);
        snprintf(out, n, "ok %.*s", (int)strcspn(p, ","), p);
        return true;
    }
    if (strcmp(cmd, "soc") == 0) {
        double pct = atof(a);
        if (got != 2 || pct < 0 || pct > 100) {
            snprintf(out, n, "err usage: soc <0..100>");
            return true;
        }
        d->stored_wh = d->capacity_wh * pct / 100;
        snprintf(out, n, "ok");
        return true;
    }
    if (strcmp(cmd, "quirk") == 0) {
        int count = got == 3 ? atoi(b) : 1;
        int *q = strcmp(a, "mcp") == 0     ? &d->quirk_mcp
                 : strcmp(a, "digit") == 0 ? &d->quirk_digit
                 : strcmp(a, "setv") == 0  ? &d->quirk_setv
                 : strcmp(a, "dod") == 0   ? &d->quirk_dod
                                           : NULL;
        if (!q || count < 0) {
            snprintf(out, n, "err usage: quirk mcp|digit|setv|dod [count]");
            return true;
        }
        *q = count;
        snprintf(out, n, "ok");
        return true;
    }
    if (strcmp(cmd, "freeze") == 0 || strcmp(cmd, "run") == 0) {
        d->frozen = strcmp(cmd, "freeze") == 0;
        snprintf(out, n, "ok");
        return true;
    }
    if (strcmp(cmd, "step") == 0) {
        int steps = got >= 2 ? atoi(a) : 1;
        bool was = d->frozen;
        d->frozen = false;
        for (int i = 0; i < steps; i++)
            vs_tick(d, 1, wall_ms);
        d->frozen = was;
        snprintf(out, n, "ok");
        return true;
    }
    if (strcmp(cmd, "clock") == 0) {
        struct tm tm;
        device_clock(d, wall_ms, &tm);
        snprintf(out, n, "ok %04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return true;
    }
    return false;
}
