// SPDX-License-Identifier: MIT
// e2m-givenergy-sim model: the dongle's wire format, the inverter's and battery's registers and
// their evolution, and the dongle's answers. No sockets and no clocks: the caller passes time.
//
// The plant: two PV strings on a slow wave, a house load, an 8.2 kWh battery (160 Ah at
// 51.2 V) that in eco mode takes the PV surplus (at most the charge rate, C/100) and covers the
// deficit down to its reserve, charges from the grid inside charge slot 1 while the charge
// schedule is on and the SOC is below the target, and discharges into the grid inside discharge
// slot 1 while the discharge schedule is on and eco mode is off. Pause mode stops charging,
// discharging or both. The grid takes the rest (IR30: + export). Energy counters integrate the
// powers and show 0.1 kWh.
//
// Quirks of the real thing: a request that arrives sooner than min_gap_ms after the previous
// one is dropped unanswered, as is a request with a wrong CRC (the All-in-One does that); reads
// of more than 60 registers get an error response; holding 300+ on a Gen1/Gen2 hybrid never
// answers; missing battery packs (0x33-0x37) answer pages of zeros with -273 degrees.
#include "givenergy_sim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- wire ---------------------------------------------------------------------------------

uint16_t gs_crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static const uint8_t MARK[4] = {0x59, 0x59, 0x00, 0x01};

// The marker at buf: 1 yes, 0 not yet known (too short), -1 no.
static int marker_at(const uint8_t *buf, size_t len)
{
    size_t n = len < 4 ? len : 4;
    return memcmp(buf, MARK, n) != 0 ? -1 : len < 4 ? 0 : 1;
}

static long skip_to_marker(const uint8_t *buf, size_t len)
{
    size_t i = 1;
    while (i < len && marker_at(buf + i, len - i) < 0)
        i++;
    return -(long)i;
}

long gs_parse(const uint8_t *buf, size_t len, struct gs_frame *f)
{
    memset(f, 0, sizeof(*f));
    if (len == 0)
        return 0;
    int m = marker_at(buf, len);
    if (m < 0)
        return skip_to_marker(buf, len);
    if (len < 8)
        return 0;
    size_t total = (size_t)be16(buf + 4) + 6;
    if (total < 19 || total > GS_FRAME_MAX || (buf[7] != 1 && buf[7] != 2))
        return skip_to_marker(buf, len);
    if (len < total)
        return 0;
    f->len = total;
    f->fid = buf[7];
    if (f->fid == 1) {
        f->adapter_type = buf[18];
        return (long)total;
    }
    if (total != 34)
        return -(long)total; // not a request's shape
    f->address = buf[26];
    f->fn = buf[27];
    f->w1 = be16(buf + 28);
    f->w2 = be16(buf + 30);
    f->crc_ok = gs_crc16(buf + 26, 6) == (uint16_t)(buf[32] | buf[33] << 8);
    return (long)total;
}

static size_t envelope(uint8_t *out, const uint8_t *adapter, size_t inner)
{
    size_t total = 26 + inner;
    memcpy(out, MARK, 4);
    put_be16(out + 4, (uint16_t)(total - 6));
    out[6] = 1;
    out[7] = 2;
    memcpy(out + 8, adapter, GS_SERIAL);
    memset(out + 18, 0, 8);
    out[25] = (uint8_t)inner;
    uint16_t crc = gs_crc16(out + 26, inner - 2);
    out[total - 2] = (uint8_t)crc;
    out[total - 1] = (uint8_t)(crc >> 8);
    return total;
}

size_t gs_build_request(uint8_t *out, uint8_t address, uint8_t fn, uint16_t w1, uint16_t w2)
{
    out[26] = address;
    out[27] = fn;
    put_be16(out + 28, w1);
    put_be16(out + 30, w2);
    return envelope(out, (const uint8_t *)"AB1234G567", 8);
}

size_t gs_build_heartbeat(uint8_t *out, const uint8_t *adapter, uint8_t type)
{
    memcpy(out, MARK, 4);
    put_be16(out + 4, 13);
    out[6] = 1;
    out[7] = 1;
    memcpy(out + 8, adapter, GS_SERIAL);
    out[18] = type;
    return 19;
}

long gs_parse_response(const uint8_t *buf, size_t len, struct gs_response *r)
{
    memset(r, 0, sizeof(*r));
    if (len == 0)
        return 0;
    if (marker_at(buf, len) < 0)
        return skip_to_marker(buf, len);
    if (len < 8)
        return 0;
    size_t total = (size_t)be16(buf + 4) + 6;
    if (total < 19 || total > GS_FRAME_MAX)
        return skip_to_marker(buf, len);
    if (len < total)
        return 0;
    r->len = total;
    r->fid = buf[7];
    if (r->fid == 1) {
        r->adapter_type = buf[18];
        return (long)total;
    }
    if (total < 44)
        return (long)total;
    r->address = buf[26];
    r->error = (buf[27] & 0x80) != 0;
    r->fn = buf[27] & 0x7f;
    r->reg = be16(buf + 38);
    r->count = be16(buf + 40);
    r->crc_ok = gs_crc16(buf + 26, total - 28) == (uint16_t)(buf[total - 2] | buf[total - 1] << 8);
    if (!r->error && (r->fn == 3 || r->fn == 4)) {
        size_t n = (total - 44) / 2;
        r->n_values = (uint16_t)(n < 64 ? n : 64);
        for (size_t i = 0; i < r->n_values; i++)
            r->values[i] = be16(buf + 42 + 2 * i);
    } else if (r->fn == 6 && !r->error) {
        r->n_values = 1;
        r->values[0] = r->count;
    }
    return (long)total;
}

// ---- the model ----------------------------------------------------------------------------

enum { PACK_FIRST = 60, PACK_COUNT = 60, CELLS = 16 };

struct gs_sim {
    struct gs_config cfg;
    gs_emit_fn emit;
    gs_line_fn line;
    void *arg;
    uint16_t hr[GS_REGS], ir[GS_REGS];
    uint16_t pack[PACK_COUNT]; // battery 1, input registers 60-119
    uint32_t rng;
    double t_s;    // simulated seconds
    double soc_wh; // battery content
    double e_pv1, e_pv2, e_export, e_import, e_charge, e_discharge, e_ac_charge; // Wh today
    double t_pv, t_export, t_import, t_charge, t_discharge, t_ac_charge;         // Wh lifetime
    bool fault_zero, fault_badcrc;
    int64_t last_request_ms;
    bool any_request;
    unsigned long requests, responses, errors, early_drops, crc_drops, bad_frames, heartbeats,
        heartbeat_answers, writes, writes_refused, unanswered;
};

void gs_config_default(struct gs_config *c)
{
    memset(c, 0, sizeof(*c));
    c->seed = 1;
    c->family = GS_HYBRID;
    c->hb_ms = 180000;
    c->min_gap_ms = 150;
    snprintf(c->adapter_sn, sizeof(c->adapter_sn), "WF2125G316");
    snprintf(c->inverter_sn, sizeof(c->inverter_sn), "SA2114G047");
}

static uint32_t rnd(struct gs_sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 17;
    s->rng ^= s->rng << 5;
    return s->rng;
}

static const double CAPACITY_WH = 160 * 51.2;

static void put32(uint16_t *regs, unsigned at, uint32_t v)
{
    regs[at] = (uint16_t)(v >> 16);
    regs[at + 1] = (uint16_t)v;
}

static uint16_t tenths(double wh)
{
    return (uint16_t)((uint32_t)(wh / 100.0) & 0xffff);
}

// The input registers from the model's state.
static void publish(struct gs_sim *s, double pv1, double pv2, double load, double batt, double grid)
{
    uint16_t *ir = s->ir;
    ir[0] = 1;
    ir[1] = (uint16_t)(pv1 > 0 ? 3200 + (int)(pv1 / 10) : 0);
    ir[2] = (uint16_t)(pv2 > 0 ? 3100 + (int)(pv2 / 10) : 0);
    ir[5] = 2405;
    ir[8] = (uint16_t)(pv1 > 0 ? pv1 * 10 / (ir[1] / 10.0) : 0);
    ir[9] = (uint16_t)(pv2 > 0 ? pv2 * 10 / (ir[2] / 10.0) : 0);
    put32(ir, 6, (uint32_t)((s->t_charge + s->t_discharge) / 100));
    put32(ir, 11, (uint32_t)(s->t_pv / 100));
    ir[13] = 4998;
    ir[17] = tenths(s->e_pv1);
    ir[18] = (uint16_t)pv1;
    ir[19] = tenths(s->e_pv2);
    ir[20] = (uint16_t)pv2;
    put32(ir, 21, (uint32_t)(s->t_export / 100));
    ir[24] = (uint16_t)(int16_t)(pv1 + pv2 + batt);
    ir[25] = tenths(s->e_export);
    ir[26] = tenths(s->e_import);
    put32(ir, 27, (uint32_t)(s->t_ac_charge / 100));
    ir[30] = (uint16_t)(int16_t)grid;
    put32(ir, 32, (uint32_t)(s->t_import / 100));
    ir[35] = tenths(s->e_ac_charge);
    ir[36] = tenths(s->e_charge);
    ir[37] = tenths(s->e_discharge);
    ir[41] = 352;
    ir[42] = (uint16_t)load;
    ir[44] = tenths(s->e_pv1 + s->e_pv2);
    put32(ir, 45, (uint32_t)(s->t_pv / 100));
    put32(ir, 47, 12345);
    ir[50] = (uint16_t)(5120 + (int)(s->soc_wh / CAPACITY_WH * 300));
    ir[51] = (uint16_t)(int16_t)(batt / (ir[50] / 100.0) * 100);
    ir[52] = (uint16_t)(int16_t)batt;
    ir[55] = 301;
    ir[56] = 215;
    ir[59] = (uint16_t)lround(s->soc_wh / CAPACITY_WH * 100);
    ir[180] = tenths(s->t_discharge);
    ir[181] = tenths(s->t_charge);
    ir[182] = tenths(s->e_discharge);
    ir[183] = tenths(s->e_charge);

    uint16_t *p = s->pack;
    unsigned sum = 0;
    for (unsigned i = 0; i < CELLS; i++) {
        p[i] = (uint16_t)(3250 + ir[59] + (i % 3) * 2);
        sum += p[i];
    }
    for (unsigned i = 16; i < 20; i++)
        p[i] = (uint16_t)(210 + i - 16);
    p[20] = (uint16_t)sum;
    p[21] = 245;
    put32(p, 22, sum);
    put32(p, 24, 16000);
    put32(p, 26, 16000);
    put32(p, 28, (uint32_t)(16000.0 * ir[59] / 100));
    p[35] = (uint16_t)(int16_t)(batt / 51.2 * 100);
    p[36] = 312;
    p[37] = CELLS;
    p[38] = 3005;
    p[40] = ir[59];
    put32(p, 41, 16000);
    p[43] = 213;
    p[44] = 210;
    p[45] = tenths(s->t_discharge);
    p[46] = tenths(s->t_charge);
    static const char bsn[] = "BG1234G567";
    for (unsigned i = 0; i < 5; i++)
        p[50 + i] = (uint16_t)(bsn[2 * i] << 8 | bsn[2 * i + 1]);
}

static bool in_slot(const struct gs_sim *s, unsigned start_reg, unsigned end_reg)
{
    unsigned start = s->hr[start_reg], end = s->hr[end_reg];
    if (start == end)
        return false;
    unsigned day_min = (unsigned)fmod(s->t_s / 60.0 + 12 * 60, 1440); // starts at noon
    unsigned now = day_min / 60 * 100 + day_min % 60;
    return start < end ? now >= start && now < end : now >= start || now < end;
}

// One step of the plant: `dt` seconds.
static void evolve(struct gs_sim *s, double dt)
{
    s->t_s += dt;
    double wave = sin(s->t_s / 900.0);
    double pv1 = 1800 + 600 * wave + (double)(rnd(s) % 50);
    double pv2 = 900 + 300 * wave + (double)(rnd(s) % 30);
    double load = 700 + (double)(rnd(s) % 200);
    uint16_t *hr = s->hr;
    double rate_w = hr[111] / 100.0 * CAPACITY_WH, drate_w = hr[112] / 100.0 * CAPACITY_WH;
    double reserve_wh = hr[110] / 100.0 * CAPACITY_WH;
    double target = hr[20] ? hr[116] : 100;
    bool no_charge = hr[318] == 1 || hr[318] == 3, no_discharge = hr[318] == 2 || hr[318] == 3;
    double batt = 0; // + discharging
    double surplus = pv1 + pv2 - load;
    if (hr[96] && in_slot(s, 94, 95) && s->soc_wh < target / 100 * CAPACITY_WH)
        batt = -rate_w;
    else if (hr[59] && !hr[27] && in_slot(s, 56, 57) && s->soc_wh > reserve_wh)
        batt = drate_w;
    else if (hr[27])
        batt = surplus > 0 ? -fmin(surplus, rate_w) : fmin(-surplus, drate_w);
    if (batt < 0 && (no_charge || s->soc_wh >= CAPACITY_WH))
        batt = 0;
    if (batt > 0 && (no_discharge || s->soc_wh <= reserve_wh))
        batt = 0;
    double grid = surplus + batt; // + export
    double h = dt / 3600.0;
    s->soc_wh = fmin(CAPACITY_WH, fmax(0, s->soc_wh - batt * h));
    s->e_pv1 += pv1 * h;
    s->e_pv2 += pv2 * h;
    s->t_pv += (pv1 + pv2) * h;
    if (grid > 0) {
        s->e_export += grid * h;
        s->t_export += grid * h;
    } else {
        s->e_import -= grid * h;
        s->t_import -= grid * h;
    }
    if (batt < 0) {
        s->e_charge -= batt * h;
        s->t_charge -= batt * h;
        if (grid < 0) {
            s->e_ac_charge -= fmin(-grid, -batt) * h;
            s->t_ac_charge -= fmin(-grid, -batt) * h;
        }
    } else {
        s->e_discharge += batt * h;
        s->t_discharge += batt * h;
    }
    publish(s, pv1, pv2, load, batt, grid);
}

struct gs_sim *gs_new(const struct gs_config *cfg, gs_emit_fn emit, gs_line_fn line, void *arg)
{
    struct gs_sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    s->emit = emit;
    s->line = line;
    s->arg = arg;
    s->rng = cfg->seed ? cfg->seed : 1;
    static const uint16_t dtc[] = {0x2001, 0x2003, 0x3001, 0x8001};
    static const uint16_t arm[] = {449, 303, 282, 612};
    uint16_t *hr = s->hr;
    hr[0] = dtc[cfg->family];
    hr[1] = 3;
    hr[2] = 0x0832;
    hr[3] = 0x0201;
    for (unsigned i = 0; i < 5; i++)
        hr[13 + i] =
            (uint16_t)(cfg->inverter_sn[2 * i] << 8 | (uint8_t)cfg->inverter_sn[2 * i + 1]);
    hr[19] = 3007;
    hr[21] = arm[cfg->family];
    hr[27] = 1;
    hr[50] = 100;
    hr[55] = 160;
    hr[56] = 1600;
    hr[57] = 1900;
    hr[94] = 30;
    hr[95] = 430;
    hr[96] = 1;
    hr[110] = 4;
    hr[111] = 50;
    hr[112] = 50;
    hr[114] = 4;
    hr[116] = 100;
    hr[311] = 1;
    hr[313] = 100;
    hr[314] = 100;
    hr[317] = 1;
    s->soc_wh = CAPACITY_WH * 0.55;
    s->e_pv1 = 5200;
    s->e_pv2 = 2600;
    s->e_import = 1400;
    s->e_export = 3100;
    s->e_charge = 2500;
    s->e_discharge = 1800;
    s->e_ac_charge = 600;
    s->t_pv = 5123400;
    s->t_import = 2345600;
    s->t_export = 1987600;
    s->t_charge = 1456700;
    s->t_discharge = 1398800;
    s->t_ac_charge = 234500;
    evolve(s, 1);
    return s;
}

void gs_free(struct gs_sim *s)
{
    free(s);
}

void gs_tick(struct gs_sim *s, int64_t ms, bool force)
{
    if (s->cfg.frozen && !force)
        return;
    evolve(s, (double)ms / 1000.0);
}

void gs_set_frozen(struct gs_sim *s, bool on)
{
    s->cfg.frozen = on;
}

void gs_fault_zero(struct gs_sim *s)
{
    s->fault_zero = true;
}

void gs_fault_badcrc(struct gs_sim *s)
{
    s->fault_badcrc = true;
}

void gs_bad_frame(struct gs_sim *s)
{
    s->bad_frames++;
}

void gs_heartbeat(struct gs_sim *s)
{
    uint8_t out[19];
    s->heartbeats++;
    s->emit(s->arg, out, gs_build_heartbeat(out, (const uint8_t *)s->cfg.adapter_sn, 1));
}

// A response with the inverter serial after address and function.
static void respond(struct gs_sim *s, uint8_t address, uint8_t fn, uint16_t w1, uint16_t w2,
                    const uint16_t *values, uint16_t n)
{
    uint8_t out[GS_FRAME_MAX];
    out[26] = address;
    out[27] = fn;
    memcpy(out + 28, s->cfg.inverter_sn, GS_SERIAL);
    put_be16(out + 38, w1);
    put_be16(out + 40, w2);
    for (uint16_t i = 0; i < n; i++)
        put_be16(out + 42 + 2 * i, s->fault_zero ? 0 : values[i]);
    if (n > 1)
        s->fault_zero = false;
    size_t len = envelope(out, (const uint8_t *)s->cfg.adapter_sn, 18 + 2u * n);
    if (s->fault_badcrc) {
        s->fault_badcrc = false;
        out[len - 1] ^= 0x5a;
    }
    s->responses++;
    if (fn & 0x80)
        s->errors++;
    s->emit(s->arg, out, len);
}

// Whether a write of `v` to holding `reg` is one the inverter takes.
static bool write_ok(const struct gs_sim *s, uint16_t reg, uint16_t v)
{
    bool ac = s->cfg.family == GS_AC || s->cfg.family == GS_AIO || s->cfg.family == GS_HYBRID_GEN3;
    bool hhmm = v / 100 <= 23 && v % 100 <= 59;
    switch (reg) {
    case 20:
    case 27:
    case 59:
    case 96:
    case 166: return v <= 1;
    case 29: return v == 0 || v == 1 || v == 3;
    case 31:
    case 32:
    case 44:
    case 45:
    case 56:
    case 57:
    case 94:
    case 95:
    case 243:
    case 244: return hhmm;
    case 50: return v <= 100;
    case 110:
    case 114:
    case 116: return v <= 100;
    case 111:
    case 112: return v <= 100;
    case 311: return ac && v <= 2;
    case 313:
    case 314: return ac && v >= 1 && v <= 100;
    case 317: return ac && v <= 1;
    case 318: return ac && v <= 3;
    case 319:
    case 320: return ac && hhmm;
    default: return false;
    }
}

void gs_request(struct gs_sim *s, const struct gs_frame *f, int64_t now_ms)
{
    if (f->fid == 1) {
        s->heartbeat_answers++;
        return;
    }
    s->requests++;
    bool early = s->any_request && now_ms - s->last_request_ms < s->cfg.min_gap_ms;
    s->any_request = true;
    s->last_request_ms = now_ms;
    if (early) {
        s->early_drops++; // the inverter was still busy with the previous one
        return;
    }
    if (!f->crc_ok) {
        s->crc_drops++;
        return;
    }
    bool inverter = f->address == 0x11 || f->address == 0x31;
    if (f->fn == 6) {
        if (!inverter) {
            s->unanswered++;
            return;
        }
        s->writes++;
        char text[64];
        if (f->w1 >= GS_REGS || !write_ok(s, f->w1, f->w2)) {
            s->writes_refused++;
            snprintf(text, sizeof(text), "refused holding %u %u", f->w1, f->w2);
            if (s->line)
                s->line(s->arg, text);
            respond(s, f->address, 0x86, f->w1, f->w2, NULL, 0);
            return;
        }
        s->hr[f->w1] = f->w2;
        snprintf(text, sizeof(text), "write holding %u 1 %u", f->w1, f->w2);
        if (s->line)
            s->line(s->arg, text);
        respond(s, f->address, 6, f->w1, f->w2, NULL, 0);
        return;
    }
    if (f->fn != 3 && f->fn != 4) {
        s->unanswered++;
        return;
    }
    uint16_t base = f->w1, count = f->w2;
    if (count == 0 || count > 60) {
        respond(s, f->address, (uint8_t)(f->fn | 0x80), base, count, NULL, 0);
        return;
    }
    uint16_t vals[60];
    if (inverter) {
        bool dc_hybrid = s->cfg.family == GS_HYBRID;
        if (f->fn == 3 && dc_hybrid && base + count > 300) {
            s->unanswered++; // holding 300+ times out on Gen1/Gen2 hybrids
            return;
        }
        if ((unsigned)base + count > GS_REGS) {
            respond(s, f->address, (uint8_t)(f->fn | 0x80), base, count, NULL, 0);
            return;
        }
        memcpy(vals, (f->fn == 3 ? s->hr : s->ir) + base, count * sizeof(uint16_t));
        respond(s, f->address, f->fn, base, count, vals, count);
        return;
    }
    if (f->fn == 4 && f->address >= 0x32 && f->address <= 0x37) {
        if (base < PACK_FIRST || base + count > PACK_FIRST + PACK_COUNT) {
            respond(s, f->address, 0x84, base, 0, NULL, 0);
            return;
        }
        for (uint16_t i = 0; i < count; i++) {
            unsigned r = base + i;
            if (f->address == 0x32)
                vals[i] = s->pack[r - PACK_FIRST];
            else // a missing pack: zeros, and its temperatures at -273.0
                vals[i] = (r >= 76 && r <= 79) || r == 81 || r == 103 || r == 104 ? 0xF556 : 0;
        }
        respond(s, f->address, 4, base, count, vals, count);
        return;
    }
    s->unanswered++;
}

int gs_get(const struct gs_sim *s, char table, unsigned reg, uint16_t *out)
{
    if (table == 'b') {
        if (reg < PACK_FIRST || reg >= PACK_FIRST + PACK_COUNT)
            return -EINVAL;
        *out = s->pack[reg - PACK_FIRST];
        return 0;
    }
    if (reg >= GS_REGS || (table != 'i' && table != 'h'))
        return -EINVAL;
    *out = table == 'i' ? s->ir[reg] : s->hr[reg];
    return 0;
}

int gs_set(struct gs_sim *s, char table, unsigned reg, uint16_t value)
{
    if (table == 'b') {
        if (reg < PACK_FIRST || reg >= PACK_FIRST + PACK_COUNT)
            return -EINVAL;
        s->pack[reg - PACK_FIRST] = value;
        return 0;
    }
    if (reg >= GS_REGS || (table != 'i' && table != 'h'))
        return -EINVAL;
    (table == 'i' ? s->ir : s->hr)[reg] = value;
    return 0;
}

char *gs_stats_json(const struct gs_sim *s)
{
    char *out = malloc(512);
    if (!out)
        abort();
    snprintf(out, 512,
             "{\"requests\":%lu,\"responses\":%lu,\"errors\":%lu,\"early_drops\":%lu,"
             "\"crc_drops\":%lu,\"bad_frames\":%lu,\"heartbeats\":%lu,\"heartbeat_answers\":%lu,"
             "\"writes\":%lu,\"writes_refused\":%lu,\"unanswered\":%lu}",
             s->requests, s->responses, s->errors, s->early_drops, s->crc_drops, s->bad_frames,
             s->heartbeats, s->heartbeat_answers, s->writes, s->writes_refused, s->unanswered);
    return out;
}
