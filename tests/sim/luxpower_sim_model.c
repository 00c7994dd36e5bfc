// SPDX-License-Identifier: MIT
// e2m-luxpower-sim model: the LXP wire format, the inverter's registers and their evolution,
// and the dongle's answers. No sockets and no clocks: the caller passes the time.
//
// The inverter: two PV strings on a slow daylight-like wave, a house load, a 10 kWh battery that
// takes the PV surplus (at the charge power % of 5 kW), covers the deficit down to its cut-off
// SOC (at the discharge power %), charges from the grid while AC charge is on and the SOC is
// below the AC-charge limit, and discharges into the grid while forced discharge is on and the
// SOC is above its limit. The grid takes the rest. Energy counters integrate the powers in Wh
// and show 0.1 kWh; day counters reset at the inverter's local midnight.
#include "luxpower_sim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- wire ---------------------------------------------------------------------------------

uint16_t ls_crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

long ls_parse(const uint8_t *buf, size_t len, struct ls_frame *f)
{
    memset(f, 0, sizeof(*f));
    if (len == 0)
        return 0;
    if (buf[0] != 0xA1 || (len > 1 && buf[1] != 0x1A)) {
        size_t i = 1;
        while (i < len && buf[i] != 0xA1)
            i++;
        return -(long)i;
    }
    if (len < 6)
        return 0;
    size_t total = (size_t)le16(buf + 4) + 6;
    if (total < 18 || total > LS_FRAME_MAX)
        return -2;
    if (len < total)
        return 0;
    f->len = total;
    f->protocol = le16(buf + 2);
    f->tcp_fn = buf[7];
    memcpy(f->dongle, buf + 8, LS_SERIAL);
    f->rest = buf + 18;
    f->rest_len = total - 18;
    if (f->tcp_fn != 0xC2)
        return (long)total;
    if (total < 36 || le16(buf + 18) != total - 20)
        return -2;
    f->address = buf[20];
    f->fn = buf[21];
    memcpy(f->inverter, buf + 22, LS_SERIAL);
    f->reg = le16(buf + 32);
    f->body = buf + 34;
    f->body_len = total - 36;
    f->crc_ok = ls_crc16(buf + 20, total - 22) == le16(buf + total - 2);
    return (long)total;
}

static size_t header(uint8_t *out, uint16_t protocol, size_t total, uint8_t tcp_fn,
                     const uint8_t *dongle)
{
    out[0] = 0xA1;
    out[1] = 0x1A;
    put_le16(out + 2, protocol);
    put_le16(out + 4, (uint16_t)(total - 6));
    out[6] = 1;
    out[7] = tcp_fn;
    memcpy(out + 8, dongle, LS_SERIAL);
    return 18;
}

size_t ls_build_translated(uint8_t *out, uint16_t protocol, const uint8_t *dongle, uint8_t address,
                           uint8_t fn, const uint8_t *inverter, uint16_t reg, const uint8_t *body,
                           size_t body_len)
{
    size_t total = 34 + body_len + 2;
    header(out, protocol, total, 0xC2, dongle);
    put_le16(out + 18, (uint16_t)(total - 20));
    out[20] = address;
    out[21] = fn;
    memcpy(out + 22, inverter, LS_SERIAL);
    put_le16(out + 32, reg);
    memcpy(out + 34, body, body_len);
    put_le16(out + total - 2, ls_crc16(out + 20, total - 22));
    return total;
}

size_t ls_build_heartbeat(uint8_t *out, uint16_t protocol, const uint8_t *dongle, uint8_t tail)
{
    header(out, protocol, 19, 0xC1, dongle);
    out[18] = tail;
    return 19;
}

size_t ls_build_read(uint8_t *out, const uint8_t *dongle, const uint8_t *inverter, uint8_t fn,
                     uint16_t reg, uint16_t count)
{
    uint8_t body[2];
    put_le16(body, count);
    return ls_build_translated(out, 1, dongle, 0, fn, inverter, reg, body, 2);
}

size_t ls_build_write(uint8_t *out, const uint8_t *dongle, const uint8_t *inverter, uint16_t reg,
                      uint16_t value)
{
    uint8_t body[2];
    put_le16(body, value);
    return ls_build_translated(out, 1, dongle, 0, 0x06, inverter, reg, body, 2);
}

size_t ls_build_write_multi(uint8_t *out, const uint8_t *dongle, const uint8_t *inverter,
                            uint16_t reg, const uint16_t *values, uint16_t n)
{
    uint8_t body[3 + 2 * 127];
    put_le16(body, n);
    body[2] = (uint8_t)(2 * n);
    for (uint16_t i = 0; i < n; i++)
        put_le16(body + 3 + 2 * i, values[i]);
    return ls_build_translated(out, 2, dongle, 0, 0x10, inverter, reg, body, 3 + 2 * (size_t)n);
}

// ---- the model ----------------------------------------------------------------------------

struct stats {
    unsigned long requests, replies, exceptions, reads, writes, multi_writes, echoes, heartbeats,
        broadcasts, bad_frames, bad_crc, wrong_dongle, wrong_inverter, zero_serial_reads,
        ignored_writes, reg11_writes, params;
};

struct ls_sim {
    struct ls_config cfg;
    ls_emit_fn emit;
    ls_line_fn line;
    void *arg;
    uint8_t dongle[LS_SERIAL], inverter[LS_SERIAL];
    uint16_t in[LS_REGS], hold[LS_REGS];
    bool fixed_in[LS_REGS]; // set by the control channel: evolution leaves it alone
    uint32_t rng;
    int64_t clock_offset_s; // the inverter's clock minus the wall clock
    int64_t last_hb_ms, prev_hb_ms, echo_ms;
    bool echoed_once;
    // Physics.
    double t_s;
    double pv1_w, pv2_w, load_w, chg_w, dis_w, rec_w, export_w, import_w, inv_w, eps_w;
    double soc;
    double wh_pv1, wh_pv2, wh_inv, wh_rec, wh_chg, wh_dis, wh_eps, wh_exp, wh_imp;
    double day_pv1, day_pv2, day_inv, day_rec, day_chg, day_dis, day_eps, day_exp, day_imp;
    double runtime_s;
    int day_of_year;
    struct stats st;
};

void ls_config_default(struct ls_config *c)
{
    *c = (struct ls_config){
        .seed = 1,
        .protocol = 2,
        .cloud = true,
        .hb_ms = 60000,
        .bc_ms = 300000,
        .input_max = 159,
        .holding_max = 239,
        .max_block = 127,
        .tz_minutes = 0,
    };
    snprintf(c->dongle_sn, sizeof(c->dongle_sn), "BA10000001");
    snprintf(c->inverter_sn, sizeof(c->inverter_sn), "4410000001");
}

static uint32_t rnd(struct ls_sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 17;
    s->rng ^= s->rng << 5;
    return s->rng;
}

// Uniform in [-1, 1).
static double noise(struct ls_sim *s)
{
    return (double)(rnd(s) % 20001) / 10000.0 - 1.0;
}

static void put_in(struct ls_sim *s, unsigned reg, double v)
{
    if (reg >= LS_REGS || s->fixed_in[reg])
        return;
    if (v < 0)
        v = 0;
    if (v > 65535)
        v = 65535;
    s->in[reg] = (uint16_t)lround(v);
}

static void put_in_signed(struct ls_sim *s, unsigned reg, double v)
{
    if (reg >= LS_REGS || s->fixed_in[reg])
        return;
    long r = lround(v);
    if (r < -32768)
        r = -32768;
    if (r > 32767)
        r = 32767;
    s->in[reg] = (uint16_t)(r & 0xffff);
}

// A 32-bit counter in two registers, low word first.
static void put_in32(struct ls_sim *s, unsigned reg, double v)
{
    if (s->fixed_in[reg] || s->fixed_in[reg + 1])
        return;
    uint32_t u = v <= 0 ? 0 : v >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)llround(v);
    s->in[reg] = (uint16_t)(u & 0xffff);
    s->in[reg + 1] = (uint16_t)(u >> 16);
}

// Two ASCII characters a register, the first in the low byte.
static void put_ascii(uint16_t *regs, const uint8_t *text, size_t n)
{
    for (size_t i = 0; i < n; i += 2)
        regs[i / 2] = (uint16_t)(text[i] | (i + 1 < n ? text[i + 1] : 0) << 8);
}

static int local_day(const struct ls_sim *s, int64_t wall_ms)
{
    time_t t = (time_t)(wall_ms / 1000 + s->cfg.tz_minutes * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    return tm.tm_yday;
}

// Writes the physics into the input registers.
static void publish(struct ls_sim *s)
{
    double vbat = 48.0 + s->soc * 0.065;
    bool charging = s->chg_w > s->dis_w;
    bool pv = s->pv1_w + s->pv2_w > 10;
    int status = s->rec_w > 0   ? (pv ? 0x28 : 0x20)
                 : charging     ? (pv ? 0x0C : 0x08)
                 : s->dis_w > 0 ? (pv ? 0x14 : 0x10)
                 : pv           ? 0x04
                                : 0x00;
    put_in(s, 0, status);
    put_in(s, 1, pv ? 3600 + 300 * s->pv1_w / 4000 : 0);
    put_in(s, 2, pv ? 3400 + 300 * s->pv2_w / 4000 : 0);
    put_in(s, 4, vbat * 10);
    if (!s->fixed_in[5])
        s->in[5] = (uint16_t)((unsigned)lround(s->soc) | 97u << 8);
    put_in(s, 7, s->pv1_w);
    put_in(s, 8, s->pv2_w);
    put_in(s, 10, s->chg_w);
    put_in(s, 11, s->dis_w);
    put_in(s, 12, 2380 + 20 * noise(s));
    put_in(s, 15, 4998 + 3 * noise(s));
    put_in(s, 16, s->inv_w);
    put_in(s, 17, s->rec_w);
    put_in(s, 18, s->inv_w / 2.38);
    put_in(s, 19, 998);
    put_in(s, 20, 2381);
    put_in(s, 23, 5000);
    put_in(s, 24, s->eps_w);
    put_in(s, 25, s->eps_w * 1.1);
    put_in(s, 26, s->export_w);
    put_in(s, 27, s->import_w);
    put_in(s, 28, s->day_pv1 / 100);
    put_in(s, 29, s->day_pv2 / 100);
    put_in(s, 31, s->day_inv / 100);
    put_in(s, 32, s->day_rec / 100);
    put_in(s, 33, s->day_chg / 100);
    put_in(s, 34, s->day_dis / 100);
    put_in(s, 35, s->day_eps / 100);
    put_in(s, 36, s->day_exp / 100);
    put_in(s, 37, s->day_imp / 100);
    put_in(s, 38, 3900);
    put_in(s, 39, 3120);
    put_in32(s, 40, s->wh_pv1 / 100);
    put_in32(s, 42, s->wh_pv2 / 100);
    put_in32(s, 46, s->wh_inv / 100);
    put_in32(s, 48, s->wh_rec / 100);
    put_in32(s, 50, s->wh_chg / 100);
    put_in32(s, 52, s->wh_dis / 100);
    put_in32(s, 54, s->wh_eps / 100);
    put_in32(s, 56, s->wh_exp / 100);
    put_in32(s, 58, s->wh_imp / 100);
    put_in(s, 64, 38 + s->inv_w / 1000);
    put_in(s, 65, 41 + s->inv_w / 800);
    put_in(s, 66, 39);
    put_in32(s, 69, s->runtime_s);
    put_in_signed(s, 98, (s->chg_w - s->dis_w) / vbat * 100);
    put_in(s, 101, 3300 + s->soc * 0.9);
    put_in(s, 102, 3280 + s->soc * 0.9);
    put_in(s, 107, vbat * 10 - 1);
}

static void init_registers(struct ls_sim *s)
{
    // Input: what the physics does not write.
    s->in[13] = 28752; // S and T phases float on a single-phase unit
    s->in[14] = 28733;
    s->in[81] = 12000; // BMS limits: 120.00 A
    s->in[82] = 15000;
    s->in[83] = 568;
    s->in[84] = 470;
    s->in[95] = 3;
    s->in[96] = 2;
    s->in[97] = 200;
    s->in[103] = 185;    // 18.5 °C
    s->in[104] = 0xFFE7; // -2.5 °C: a cold cell
    s->in[105] = 2;
    s->in[106] = 321;
    put_ascii(&s->in[115], s->inverter, LS_SERIAL);
    // Holding: the settings.
    put_ascii(&s->hold[2], s->inverter, LS_SERIAL);
    put_ascii(&s->hold[7], (const uint8_t *)"FAAB", 4);
    s->hold[9] = 0x0101;
    s->hold[10] = 0x0E0E;
    s->hold[19] = 2;
    s->hold[21] = 0xF354; // EPS off, AC charge off, power on, forced discharge off
    s->hold[60] = 100;
    s->hold[64] = 100;
    s->hold[65] = 100;
    s->hold[66] = 50;
    s->hold[67] = 90;
    s->hold[68] = 0x1E02; // AC charge 1: 02:30-05:30
    s->hold[69] = 0x1E05;
    s->hold[74] = 50;
    s->hold[75] = 100;
    s->hold[82] = 100;
    s->hold[83] = 20;
    s->hold[84] = 0x0010; // forced discharge 1: 16:00-19:00
    s->hold[85] = 0x0013;
    s->hold[105] = 20;
    s->hold[110] = 2;
    s->hold[125] = 10;
    s->hold[160] = 20;
    s->hold[161] = 90;
}

struct ls_sim *ls_new(const struct ls_config *cfg, int64_t wall_ms, ls_emit_fn emit,
                      ls_line_fn line, void *arg)
{
    struct ls_sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    s->emit = emit;
    s->line = line;
    s->arg = arg;
    memcpy(s->dongle, cfg->dongle_sn, LS_SERIAL);
    memcpy(s->inverter, cfg->inverter_sn, LS_SERIAL);
    s->rng = cfg->seed * 2654435761u + 1;
    s->soc = 55 + rnd(s) % 20;
    s->wh_pv1 = 4100000 + rnd(s) % 100000;
    s->wh_pv2 = 3900000 + rnd(s) % 100000;
    s->wh_inv = 6500000;
    s->wh_rec = 120000;
    s->wh_chg = 2300000;
    s->wh_dis = 2100000;
    s->wh_eps = 30000;
    s->wh_exp = 2900000;
    s->wh_imp = 1700000;
    s->runtime_s = 86400.0 * 400;
    s->day_of_year = local_day(s, wall_ms);
    s->last_hb_ms = s->prev_hb_ms = INT64_MIN / 2;
    s->echo_ms = INT64_MIN / 2;
    init_registers(s);
    ls_tick(s, 0, true);
    return s;
}

void ls_free(struct ls_sim *s)
{
    free(s);
}

void ls_tick(struct ls_sim *s, int64_t ms, bool force)
{
    if (s->cfg.frozen && !force)
        return;
    double dt = (double)ms / 1000.0;
    s->t_s += dt;
    double wave = 0.75 + 0.25 * sin(s->t_s / 900.0);
    s->pv1_w = fmax(0, 2200 * wave + 60 * noise(s));
    s->pv2_w = fmax(0, 1600 * wave + 50 * noise(s));
    s->load_w = fmax(150, 700 + 250 * noise(s));
    s->eps_w = 120;
    double cap_chg = 5000.0 * s->hold[64] / 100.0, cap_dis = 5000.0 * s->hold[65] / 100.0;
    double pv = s->pv1_w + s->pv2_w, need = s->load_w + s->eps_w;
    double surplus = pv - need;
    s->chg_w = s->dis_w = s->rec_w = 0;
    bool ac_charge = s->hold[21] & 0x80, forced = s->hold[21] & 0x400;
    if (forced && s->soc > s->hold[83]) {
        s->dis_w = 5000.0 * s->hold[82] / 100.0;
    } else if (surplus > 0 && s->soc < 100) {
        s->chg_w = fmin(surplus, cap_chg);
    } else if (surplus < 0 && s->soc > s->hold[105]) {
        s->dis_w = fmin(-surplus, cap_dis);
    }
    if (ac_charge && !forced && s->soc < s->hold[67]) {
        s->rec_w = 5000.0 * s->hold[66] / 100.0;
        s->chg_w += s->rec_w;
    }
    // The inverter's AC port: PV and battery out, minus what it draws to charge.
    s->inv_w = fmax(0, pv + s->dis_w - (s->chg_w - s->rec_w) - s->eps_w);
    double grid = need - pv - s->dis_w + s->chg_w; // + import
    s->import_w = fmax(0, grid);
    s->export_w = fmax(0, -grid);
    s->soc = fmin(100, fmax(0, s->soc + (s->chg_w - s->dis_w) * dt / 3600.0 / 10000.0 * 100));
    double h = dt / 3600.0;
    s->wh_pv1 += s->pv1_w * h, s->day_pv1 += s->pv1_w * h;
    s->wh_pv2 += s->pv2_w * h, s->day_pv2 += s->pv2_w * h;
    s->wh_inv += s->inv_w * h, s->day_inv += s->inv_w * h;
    s->wh_rec += s->rec_w * h, s->day_rec += s->rec_w * h;
    s->wh_chg += s->chg_w * h, s->day_chg += s->chg_w * h;
    s->wh_dis += s->dis_w * h, s->day_dis += s->dis_w * h;
    s->wh_eps += s->eps_w * h, s->day_eps += s->eps_w * h;
    s->wh_exp += s->export_w * h, s->day_exp += s->export_w * h;
    s->wh_imp += s->import_w * h, s->day_imp += s->import_w * h;
    s->runtime_s += dt;
    publish(s);
}

// Resets the day counters at the inverter's midnight.
static void check_midnight(struct ls_sim *s, int64_t wall_ms)
{
    int day = local_day(s, wall_ms);
    if (day == s->day_of_year)
        return;
    s->day_of_year = day;
    s->day_pv1 = s->day_pv2 = s->day_inv = s->day_rec = s->day_chg = s->day_dis = s->day_eps =
        s->day_exp = s->day_imp = 0;
    publish(s);
}

// The clock registers 12-14 for now.
static void clock_regs(const struct ls_sim *s, int64_t wall_ms, uint16_t *r)
{
    time_t t = (time_t)(wall_ms / 1000 + s->clock_offset_s + s->cfg.tz_minutes * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    r[0] = (uint16_t)((tm.tm_year - 100) | (tm.tm_mon + 1) << 8);
    r[1] = (uint16_t)(tm.tm_mday | tm.tm_hour << 8);
    r[2] = (uint16_t)(tm.tm_min | tm.tm_sec << 8);
}

static bool clock_set(struct ls_sim *s, const uint16_t *r, int64_t wall_ms)
{
    struct tm tm = {
        .tm_year = (r[0] & 0xff) + 100,
        .tm_mon = (r[0] >> 8) - 1,
        .tm_mday = r[1] & 0xff,
        .tm_hour = r[1] >> 8,
        .tm_min = r[2] & 0xff,
        .tm_sec = r[2] >> 8,
    };
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    time_t t = timegm(&tm);
    s->clock_offset_s = (int64_t)t - s->cfg.tz_minutes * 60 - wall_ms / 1000;
    return true;
}

int ls_get(const struct ls_sim *s, char table, unsigned reg, int64_t wall_ms, uint16_t *out)
{
    if (reg >= LS_REGS || (table != 'i' && table != 'h'))
        return -EINVAL;
    if (table == 'h' && reg >= 12 && reg <= 14) {
        uint16_t r[3];
        clock_regs(s, wall_ms, r);
        *out = r[reg - 12];
        return 0;
    }
    *out = table == 'i' ? s->in[reg] : s->hold[reg];
    return 0;
}

int ls_set(struct ls_sim *s, char table, unsigned reg, uint16_t value)
{
    if (reg >= LS_REGS || (table != 'i' && table != 'h'))
        return -EINVAL;
    if (table == 'i') {
        s->in[reg] = value;
        s->fixed_in[reg] = true;
    } else {
        s->hold[reg] = value;
    }
    return 0;
}

void ls_set_cloud(struct ls_sim *s, bool on)
{
    s->cfg.cloud = on;
}

void ls_set_protocol(struct ls_sim *s, uint16_t protocol)
{
    s->cfg.protocol = protocol;
}

void ls_set_combined(struct ls_sim *s, bool on)
{
    s->cfg.combined = on;
}

void ls_set_frozen(struct ls_sim *s, bool on)
{
    s->cfg.frozen = on;
}

// ---- answers ------------------------------------------------------------------------------

static void send_translated(struct ls_sim *s, uint8_t fn, uint16_t reg, const uint8_t *body,
                            size_t n)
{
    uint8_t out[LS_FRAME_MAX];
    size_t len =
        ls_build_translated(out, s->cfg.protocol, s->dongle, 1, fn, s->inverter, reg, body, n);
    s->emit(s->arg, out, len);
}

static void send_exception(struct ls_sim *s, uint8_t fn, uint16_t reg, uint8_t code)
{
    s->st.exceptions++;
    send_translated(s, (uint8_t)(fn | 0x80), reg, &code, 1);
}

// A block of registers as a read reply (with the length byte unless protocol 1).
static void send_block(struct ls_sim *s, uint8_t fn, uint16_t reg, uint16_t count, int64_t wall_ms)
{
    uint8_t body[1 + 2 * 255];
    size_t at = 0;
    if (s->cfg.protocol != 1)
        body[at++] = (uint8_t)(2 * count);
    uint16_t clock[3];
    clock_regs(s, wall_ms, clock);
    for (uint16_t i = 0; i < count; i++, at += 2) {
        unsigned r = (unsigned)reg + i;
        uint16_t v = 0;
        if (fn == 0x04 && r < LS_REGS)
            v = s->in[r];
        else if (fn == 0x03 && r >= 12 && r <= 14)
            v = clock[r - 12];
        else if (fn == 0x03 && r < LS_REGS)
            v = s->hold[r];
        put_le16(body + at, v);
    }
    send_translated(s, fn, reg, body, at);
}

static bool is_slot(unsigned r)
{
    return (r >= 68 && r <= 89) || (r >= 152 && r <= 157);
}

static bool is_percent(unsigned r)
{
    return r == 60 || (r >= 64 && r <= 67) || r == 74 || r == 75 || r == 82 || r == 83 ||
           r == 125 || r == 160 || r == 161;
}

// Whether the inverter takes `v` for holding register r.
static bool value_ok(unsigned r, uint16_t v)
{
    if (is_percent(r))
        return v <= 100;
    if (r == 105)
        return v >= 10 && v <= 90;
    if (is_slot(r))
        return (v & 0xff) <= 23 && (v >> 8) <= 59;
    return true;
}

static void note_write(struct ls_sim *s, uint16_t reg, const uint16_t *v, uint16_t n)
{
    char line[1200];
    size_t at = (size_t)snprintf(line, sizeof(line), "write holding %u %u", reg, n);
    for (uint16_t i = 0; i < n && at < sizeof(line); i++)
        at += (size_t)snprintf(line + at, sizeof(line) - at, " %u", v[i]);
    if (s->line)
        s->line(s->arg, line);
    for (uint16_t i = 0; i < n; i++)
        if ((unsigned)reg + i == 11)
            s->st.reg11_writes++;
}

static void on_translated(struct ls_sim *s, const struct ls_frame *f, int64_t wall_ms)
{
    if (!f->crc_ok) {
        s->st.bad_crc++;
        return;
    }
    if (memcmp(f->dongle, s->dongle, LS_SERIAL) != 0) {
        s->st.wrong_dongle++;
        return;
    }
    static const uint8_t zero[LS_SERIAL];
    bool zero_serial = memcmp(f->inverter, zero, LS_SERIAL) == 0;
    if (!zero_serial && memcmp(f->inverter, s->inverter, LS_SERIAL) != 0) {
        s->st.wrong_inverter++;
        return;
    }
    s->st.requests++;
    uint8_t fn = f->fn;
    unsigned reg = f->reg;
    switch (fn) {
    case 0x03:
    case 0x04: {
        if (f->body_len != 2) {
            send_exception(s, fn, f->reg, 3);
            return;
        }
        uint16_t count = le16(f->body);
        unsigned max = fn == 0x04 ? s->cfg.input_max : s->cfg.holding_max;
        if (count == 0 || count > s->cfg.max_block) {
            send_exception(s, fn, f->reg, 3);
            return;
        }
        if (reg + count - 1 > max) {
            send_exception(s, fn, f->reg, 2);
            return;
        }
        s->st.reads++;
        if (zero_serial)
            s->st.zero_serial_reads++;
        check_midnight(s, wall_ms);
        send_block(s, fn, f->reg, count, wall_ms);
        s->st.replies++;
        return;
    }
    case 0x06: {
        if (zero_serial) {
            s->st.ignored_writes++; // a write needs the inverter's serial
            return;
        }
        if (f->body_len != 2) {
            send_exception(s, fn, f->reg, 3);
            return;
        }
        uint16_t v = le16(f->body);
        if (reg > s->cfg.holding_max) {
            send_exception(s, fn, f->reg, 2);
            return;
        }
        if (!value_ok(reg, v)) {
            send_exception(s, fn, f->reg, 3);
            return;
        }
        if (reg >= 12 && reg <= 14) {
            uint16_t r[3];
            clock_regs(s, wall_ms, r);
            r[reg - 12] = v;
            clock_set(s, r, wall_ms);
        } else {
            s->hold[reg] = v;
        }
        s->st.writes++;
        note_write(s, f->reg, &v, 1);
        uint8_t body[2];
        put_le16(body, v);
        send_translated(s, fn, f->reg, body, 2);
        s->st.replies++;
        ls_tick(s, 0, true); // the new setting shows at once
        return;
    }
    case 0x10: {
        if (zero_serial) {
            s->st.ignored_writes++;
            return;
        }
        if (f->body_len < 3) {
            send_exception(s, fn, f->reg, 3);
            return;
        }
        uint16_t count = le16(f->body);
        if (count == 0 || count > 127 || f->body[2] != 2 * count || f->body_len != 3u + 2 * count) {
            send_exception(s, fn, f->reg, 3);
            return;
        }
        if (reg + count - 1 > s->cfg.holding_max) {
            send_exception(s, fn, f->reg, 2);
            return;
        }
        uint16_t v[127];
        for (uint16_t i = 0; i < count; i++) {
            v[i] = le16(f->body + 3 + 2 * i);
            if (!value_ok(reg + i, v[i])) {
                send_exception(s, fn, f->reg, 3);
                return;
            }
        }
        if (reg == 12 && count == 3) {
            if (!clock_set(s, v, wall_ms)) {
                send_exception(s, fn, f->reg, 3);
                return;
            }
        } else {
            for (uint16_t i = 0; i < count; i++)
                if (reg + i < LS_REGS)
                    s->hold[reg + i] = v[i];
        }
        s->st.multi_writes++;
        note_write(s, f->reg, v, count);
        uint8_t body[2];
        put_le16(body, count);
        send_translated(s, fn, f->reg, body, 2);
        s->st.replies++;
        return;
    }
    default: send_exception(s, fn, f->reg, 1); return;
    }
}

void ls_request(struct ls_sim *s, const struct ls_frame *f, int64_t wall_ms)
{
    switch (f->tcp_fn) {
    case 0xC1:
        // A client answers a heartbeat: the dongle counts that as its server being there.
        if (memcmp(f->dongle, s->dongle, LS_SERIAL) == 0) {
            s->st.echoes++;
            s->echo_ms = wall_ms;
            s->echoed_once = true;
        }
        return;
    case 0xC2: on_translated(s, f, wall_ms); return;
    case 0xC3: {
        if (f->rest_len != 2 || memcmp(f->dongle, s->dongle, LS_SERIAL) != 0)
            return;
        s->st.params++;
        uint16_t param = le16(f->rest);
        uint8_t out[64];
        uint8_t value[8];
        size_t vlen = 0;
        if (param == 0) {
            put_le16(value, (uint16_t)(s->cfg.bc_ms / 1000)); // the broadcast interval in s
            vlen = 2;
        } else if (param == 7) {
            memcpy(value, "V2.06", 5);
            vlen = 5;
        }
        size_t total = 18 + 4 + vlen;
        header(out, s->cfg.protocol == 1 ? 2 : s->cfg.protocol, total, 0xC3, s->dongle);
        put_le16(out + 18, param);
        put_le16(out + 20, (uint16_t)vlen);
        memcpy(out + 22, value, vlen);
        s->emit(s->arg, out, total);
        return;
    }
    default: s->st.bad_frames++; return; // the dongle ignores what it does not know
    }
}

void ls_bad_frame(struct ls_sim *s)
{
    s->st.bad_frames++;
}

void ls_heartbeat(struct ls_sim *s, int64_t wall_ms)
{
    uint8_t out[32];
    size_t n = ls_build_heartbeat(out, s->cfg.protocol == 1 ? 2 : s->cfg.protocol, s->dongle,
                                  s->cfg.hb_tail);
    s->prev_hb_ms = s->last_hb_ms;
    s->last_hb_ms = wall_ms;
    s->st.heartbeats++;
    s->emit(s->arg, out, n);
}

bool ls_broadcast(struct ls_sim *s, int64_t wall_ms, bool force)
{
    // Answered: an echo since the heartbeat before the last one.
    bool answered = s->echoed_once && s->echo_ms >= s->prev_hb_ms;
    if (!force && !s->cfg.cloud && !answered)
        return false;
    check_midnight(s, wall_ms);
    if (s->cfg.combined) {
        send_block(s, 0x04, 0, 127, wall_ms);
    } else {
        for (uint16_t r = 0; r < 120; r += 40)
            send_block(s, 0x04, r, 40, wall_ms);
    }
    s->st.broadcasts++;
    return true;
}

char *ls_stats_json(const struct ls_sim *s)
{
    char *out = malloc(1400);
    if (!out)
        abort();
    char dongle[LS_SERIAL + 1], inverter[LS_SERIAL + 1];
    memcpy(dongle, s->dongle, LS_SERIAL);
    memcpy(inverter, s->inverter, LS_SERIAL);
    dongle[LS_SERIAL] = inverter[LS_SERIAL] = '\0';
    const struct stats *t = &s->st;
    snprintf(out, 1400,
             "{\"requests\":%lu,\"replies\":%lu,\"exceptions\":%lu,\"reads\":%lu,\"writes\":%lu,"
             "\"multi_writes\":%lu,\"echoes\":%lu,\"heartbeats\":%lu,\"broadcasts\":%lu,"
             "\"bad_frames\":%lu,\"bad_crc\":%lu,\"wrong_dongle\":%lu,\"wrong_inverter\":%lu,"
             "\"zero_serial_reads\":%lu,\"ignored_writes\":%lu,\"reg11_writes\":%lu,"
             "\"params\":%lu,\"protocol\":%u,\"combined\":%s,\"cloud\":%s,\"frozen\":%s,"
             "\"dongle_sn\":\"%s\",\"inverter_sn\":\"%s\",\"soc\":%.2f,\"hold21\":%u,"
             "\"clock_offset_s\":%lld}",
             t->requests, t->replies, t->exceptions, t->reads, t->writes, t->multi_writes,
             t->echoes, t->heartbeats, t->broadcasts, t->bad_frames, t->bad_crc, t->wrong_dongle,
             t->wrong_inverter, t->zero_serial_reads, t->ignored_writes, t->reg11_writes, t->params,
             s->cfg.protocol, s->cfg.combined ? "true" : "false", s->cfg.cloud ? "true" : "false",
             s->cfg.frozen ? "true" : "false", dongle, inverter, s->soc, s->hold[21],
             (long long)s->clock_offset_s);
    return out;
}
