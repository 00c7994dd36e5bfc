// SPDX-License-Identifier: MIT
// Modbus simulator profiles: Eastron SDM630 meter and a SunSpec three-phase inverter.
//
// Register facts and where they come from are listed in tests/sim/README.md. Addresses are the
// 0-based protocol addresses that appear on the wire (libmodbus uses the same numbers).
#include "modbus_sim_device.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static double pow10i(int e)
{
    return pow(10.0, e);
}

// ==== Eastron SDM630 Modbus V2 ==========================================================
//
// Input registers are IEEE 754 float32, high word first. The meter answers reads anywhere in
// its input block, returning zeros for parameters it does not have, but a single request may
// ask for at most 40 parameters (80 registers). Holding registers are float32 parameters that
// are written with FC16, one parameter per request.

enum {
    SDM_V1 = 0x0000,   // L1-N voltage; L2, L3 follow every 2 registers
    SDM_I1 = 0x0006,   // phase currents
    SDM_P1 = 0x000C,   // phase active power
    SDM_VA1 = 0x0012,  // phase apparent power
    SDM_Q1 = 0x0018,   // phase reactive power
    SDM_PF1 = 0x001E,  // phase power factor (sign = direction of active power)
    SDM_ANG1 = 0x0024, // phase angle, degrees
    SDM_V_AVG = 0x002A,
    SDM_I_AVG = 0x002E,
    SDM_I_SUM = 0x0030,
    SDM_P = 0x0034,
    SDM_VA = 0x0038,
    SDM_Q = 0x003C,
    SDM_PF = 0x003E,
    SDM_ANG = 0x0042,
    SDM_HZ = 0x0046,
    SDM_IMP_KWH = 0x0048,
    SDM_EXP_KWH = 0x004A,
    SDM_IMP_KVARH = 0x004C,
    SDM_EXP_KVARH = 0x004E,
    SDM_TOT_KWH = 0x0156,
    SDM_TOT_KVARH = 0x0158,
    SDM_IMP_KWH1 = 0x015A,   // L1..L3 import kWh
    SDM_EXP_KWH1 = 0x0160,   // L1..L3 export kWh
    SDM_TOT_KWH1 = 0x0166,   // L1..L3 total kWh
    SDM_TOT_KVARH1 = 0x0178, // L1..L3 total kvarh
    SDM_IR_SIZE = 0x0180,

    SDM_HR_DEMAND_TIME = 0x0000,
    SDM_HR_DEMAND_PERIOD = 0x0002,
    SDM_HR_SYSTEM_TYPE = 0x000A,
    SDM_HR_NODE = 0x0014,
    SDM_HR_BAUD = 0x001C,
    SDM_HR_SIZE = 0x0020,

    SDM_MAX_READ = 80,
};

struct sdm_state {
    double t;
    double base_w, swing_w, period_s, phase0; // the household load shape of this device
    double load_walk, hz_walk;
    double w_walk[3], v_walk[3], pf_walk[3];
    double imp_kwh, exp_kwh, imp_kvarh, exp_kvarh;
    double ph_imp_kwh[3], ph_exp_kwh[3], ph_kvarh[3];
    double demand_min;
};

static int sdm_init(struct sim_device *dev)
{
    int rc = sim_device_map(dev, 0, 0, 0, 0, 0, SDM_HR_SIZE, 0, SDM_IR_SIZE);
    if (rc < 0) {
        return rc;
    }
    struct sdm_state *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    dev->state = s;
    struct sim_rng *r = &dev->rng;
    // The base load sits below the swing so the sum goes negative part of the time: the meter
    // then sees export (a PV system behind it) and both energy directions advance.
    s->base_w = 600 + 800 * sim_rng_unit(r);
    s->swing_w = 1500 + 1000 * sim_rng_unit(r);
    s->period_s = 180 + 120 * sim_rng_unit(r);
    s->phase0 = 2 * PI * sim_rng_unit(r);
    s->imp_kwh = 1000 + 9000 * sim_rng_unit(r);
    s->exp_kwh = 200 + 1500 * sim_rng_unit(r);
    s->imp_kvarh = 100 + 900 * sim_rng_unit(r);
    s->exp_kvarh = 20 + 200 * sim_rng_unit(r);
    s->hz_walk = 0.02 * sim_rng_sym(r);
    for (int i = 0; i < 3; i++) {
        s->v_walk[i] = sim_rng_sym(r);
        s->pf_walk[i] = 0.02 * sim_rng_sym(r);
    }
    static const double share[3] = {0.42, 0.33, 0.25};
    for (int i = 0; i < 3; i++) {
        s->ph_imp_kwh[i] = s->imp_kwh * share[i];
        s->ph_exp_kwh[i] = s->exp_kwh * share[i];
        s->ph_kvarh[i] = (s->imp_kvarh + s->exp_kvarh) * share[i];
    }
    sim_put_float(dev, SIM_TABLE_HOLDING, SDM_HR_DEMAND_PERIOD, 60);
    sim_put_float(dev, SIM_TABLE_HOLDING, SDM_HR_SYSTEM_TYPE, 3);
    sim_put_float(dev, SIM_TABLE_HOLDING, SDM_HR_NODE, dev->unit);
    sim_put_float(dev, SIM_TABLE_HOLDING, SDM_HR_BAUD, 2); // 2 = 9600 baud
    return 0;
}

static void sdm_store_energy(struct sim_device *dev, const struct sdm_state *s)
{
    const enum sim_table in = SIM_TABLE_INPUT;
    sim_put_float(dev, in, SDM_IMP_KWH, s->imp_kwh);
    sim_put_float(dev, in, SDM_EXP_KWH, s->exp_kwh);
    sim_put_float(dev, in, SDM_IMP_KVARH, s->imp_kvarh);
    sim_put_float(dev, in, SDM_EXP_KVARH, s->exp_kvarh);
    sim_put_float(dev, in, SDM_TOT_KWH, s->imp_kwh + s->exp_kwh);
    sim_put_float(dev, in, SDM_TOT_KVARH, s->imp_kvarh + s->exp_kvarh);
    for (int i = 0; i < 3; i++) {
        sim_put_float(dev, in, SDM_IMP_KWH1 + 2 * i, s->ph_imp_kwh[i]);
        sim_put_float(dev, in, SDM_EXP_KWH1 + 2 * i, s->ph_exp_kwh[i]);
        sim_put_float(dev, in, SDM_TOT_KWH1 + 2 * i, s->ph_imp_kwh[i] + s->ph_exp_kwh[i]);
        sim_put_float(dev, in, SDM_TOT_KVARH1 + 2 * i, s->ph_kvarh[i]);
    }
}

static void sdm_evolve(struct sim_device *dev, double dt)
{
    struct sdm_state *s = dev->state;
    struct sim_rng *r = &dev->rng;
    const enum sim_table in = SIM_TABLE_INPUT;
    static const double share[3] = {0.42, 0.33, 0.25};

    s->t += dt;
    s->load_walk = sim_walk(r, s->load_walk, dt, 30, 60, 400);
    s->hz_walk = sim_walk(r, s->hz_walk, dt, 20, 0.01, 0.05);
    double w = 2 * PI * s->t / s->period_s + s->phase0;
    double load =
        s->base_w + s->swing_w * sin(w) + 0.35 * s->swing_w * sin(w / 0.37 + 1.3) + s->load_walk;

    double wsum = 0, wi[3];
    for (int i = 0; i < 3; i++) {
        s->w_walk[i] = sim_walk(r, s->w_walk[i], dt, 90, 0.01, 0.08);
        wi[i] = share[i] + s->w_walk[i];
        wsum += wi[i];
    }

    double p_tot = 0, va_tot = 0, q_tot = 0, i_sum = 0, v_sum = 0;
    for (int i = 0; i < 3; i++) {
        s->v_walk[i] = sim_walk(r, s->v_walk[i], dt, 60, 0.4, 2.0);
        s->pf_walk[i] = sim_walk(r, s->pf_walk[i], dt, 120, 0.005, 0.03);
        double v = 230.0 + s->v_walk[i];
        double p = load * wi[i] / wsum;
        double pf = 0.96 + s->pf_walk[i];
        // Mostly inductive, capacitive for a stretch now and then, so both reactive counters
        // move.
        double q_sign = sin(2 * PI * s->t / 420 + 2.1 * i + s->phase0) > -0.4 ? 1.0 : -1.0;
        double va = fabs(p) / pf;
        double q = q_sign * sqrt(fmax(va * va - p * p, 0));
        double cur = va / v;
        sim_put_float(dev, in, SDM_V1 + 2 * i, v);
        sim_put_float(dev, in, SDM_I1 + 2 * i, cur);
        sim_put_float(dev, in, SDM_P1 + 2 * i, p);
        sim_put_float(dev, in, SDM_VA1 + 2 * i, va);
        sim_put_float(dev, in, SDM_Q1 + 2 * i, q);
        sim_put_float(dev, in, SDM_PF1 + 2 * i, p >= 0 ? pf : -pf);
        sim_put_float(dev, in, SDM_ANG1 + 2 * i, atan2(q, p) * 180 / PI);
        p_tot += p;
        va_tot += va;
        q_tot += q;
        i_sum += cur;
        v_sum += v;
    }
    sim_put_float(dev, in, SDM_V_AVG, v_sum / 3);
    sim_put_float(dev, in, SDM_I_AVG, i_sum / 3);
    sim_put_float(dev, in, SDM_I_SUM, i_sum);
    sim_put_float(dev, in, SDM_P, p_tot);
    sim_put_float(dev, in, SDM_VA, va_tot);
    sim_put_float(dev, in, SDM_Q, q_tot);
    sim_put_float(dev, in, SDM_PF, va_tot > 0 ? p_tot / va_tot : 1.0);
    sim_put_float(dev, in, SDM_ANG, atan2(q_tot, p_tot) * 180 / PI);
    sim_put_float(dev, in, SDM_HZ, 50.0 + s->hz_walk);

    // Energy integrates what the registers say, so a power value pinned with `set` is also the
    // power that the counters see.
    double h = dt / 3600.0;
    for (int i = 0; i < 3; i++) {
        double p = sim_get_float(dev, in, SDM_P1 + 2 * i);
        double q = sim_get_float(dev, in, SDM_Q1 + 2 * i);
        if (p >= 0) {
            s->ph_imp_kwh[i] += p * h / 1000;
        } else {
            s->ph_exp_kwh[i] -= p * h / 1000;
        }
        s->ph_kvarh[i] += fabs(q) * h / 1000;
    }
    double p = sim_get_float(dev, in, SDM_P);
    double q = sim_get_float(dev, in, SDM_Q);
    if (p >= 0) {
        s->imp_kwh += p * h / 1000;
    } else {
        s->exp_kwh -= p * h / 1000;
    }
    if (q >= 0) {
        s->imp_kvarh += q * h / 1000;
    } else {
        s->exp_kvarh -= q * h / 1000;
    }
    sdm_store_energy(dev, s);

    double period = sim_get_float(dev, SIM_TABLE_HOLDING, SDM_HR_DEMAND_PERIOD);
    s->demand_min += dt / 60.0;
    if (period >= 1) {
        s->demand_min = fmod(s->demand_min, period);
    }
    sim_put_float(dev, SIM_TABLE_HOLDING, SDM_HR_DEMAND_TIME, floor(s->demand_min));
}

static void sdm_resync(struct sim_device *dev)
{
    struct sdm_state *s = dev->state;
    const enum sim_table in = SIM_TABLE_INPUT;
    s->imp_kwh = sim_get_float(dev, in, SDM_IMP_KWH);
    s->exp_kwh = sim_get_float(dev, in, SDM_EXP_KWH);
    s->imp_kvarh = sim_get_float(dev, in, SDM_IMP_KVARH);
    s->exp_kvarh = sim_get_float(dev, in, SDM_EXP_KVARH);
    for (int i = 0; i < 3; i++) {
        s->ph_imp_kwh[i] = sim_get_float(dev, in, SDM_IMP_KWH1 + 2 * i);
        s->ph_exp_kwh[i] = sim_get_float(dev, in, SDM_EXP_KWH1 + 2 * i);
        s->ph_kvarh[i] = sim_get_float(dev, in, SDM_TOT_KVARH1 + 2 * i);
    }
}

static int sdm_check_write(const struct sim_device *dev, enum sim_table table, int address,
                           int count, const uint16_t *values, int function)
{
    (void)dev;
    if (table != SIM_TABLE_HOLDING) {
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    }
    // The meter's parameters are written with FC16 only.
    if (function != MODBUS_FC_WRITE_MULTIPLE_REGISTERS) {
        return MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
    }
    if (count != 2 || (address != SDM_HR_DEMAND_PERIOD && address != SDM_HR_SYSTEM_TYPE)) {
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    }
    uint32_t u = (uint32_t)values[0] << 16 | values[1];
    float f;
    memcpy(&f, &u, sizeof(f));
    static const float periods[] = {0, 5, 8, 10, 15, 20, 30, 60};
    static const float types[] = {1, 2, 3};
    const float *allowed = address == SDM_HR_DEMAND_PERIOD ? periods : types;
    size_t n = address == SDM_HR_DEMAND_PERIOD ? sizeof(periods) / sizeof(periods[0])
                                               : sizeof(types) / sizeof(types[0]);
    for (size_t i = 0; i < n; i++) {
        if (f == allowed[i]) {
            return 0;
        }
    }
    return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
}

// ==== SunSpec three-phase inverter ======================================================
//
// Holding registers from 40000: "SunS", common model 1 (length 65, the form without the Pad
// register that Fronius and most field devices report), inverter model 103, immediate controls
// model 123, end marker.

enum {
    SS_BASE = 40000,
    SS_SIZE = 149, // 40000..40148
    SS_C = 40002,  // common model 1
    SS_C_MN = 40004,
    SS_C_MD = 40020,
    SS_C_OPT = 40036,
    SS_C_VR = 40044,
    SS_C_SN = 40052,
    SS_C_DA = 40068,
    SS_I = 40069, // inverter model 103
    SS_A = 40071,
    SS_APHA = 40072,
    SS_A_SF = 40075,
    SS_PPVPHAB = 40076,
    SS_PHVPHA = 40079,
    SS_V_SF = 40082,
    SS_W = 40083,
    SS_W_SF = 40084,
    SS_HZ = 40085,
    SS_HZ_SF = 40086,
    SS_VA = 40087,
    SS_VA_SF = 40088,
    SS_VAR = 40089,
    SS_VAR_SF = 40090,
    SS_PF = 40091,
    SS_PF_SF = 40092,
    SS_WH = 40093,
    SS_WH_SF = 40095,
    SS_DCA = 40096,
    SS_DCA_SF = 40097,
    SS_DCV = 40098,
    SS_DCV_SF = 40099,
    SS_DCW = 40100,
    SS_DCW_SF = 40101,
    SS_TMPCAB = 40102,
    SS_TMPSNK = 40103,
    SS_TMPTRNS = 40104,
    SS_TMPOT = 40105,
    SS_TMP_SF = 40106,
    SS_ST = 40107,
    SS_STVND = 40108,
    SS_CTL = 40121, // immediate controls model 123
    SS_CONN_WINTMS = 40123,
    SS_CONN_RVRTTMS = 40124,
    SS_CONN = 40125,
    SS_WMAXLIMPCT = 40126,
    SS_WMAXLIMPCT_WINTMS = 40127,
    SS_WMAXLIMPCT_RVRTTMS = 40128,
    SS_WMAXLIMPCT_RMPTMS = 40129,
    SS_WMAXLIM_ENA = 40130,
    SS_OUTPFSET = 40131,
    SS_OUTPFSET_WINTMS = 40132,
    SS_OUTPFSET_RVRTTMS = 40133,
    SS_OUTPFSET_RMPTMS = 40134,
    SS_OUTPFSET_ENA = 40135,
    SS_VARWMAXPCT = 40136,
    SS_VARMAXPCT = 40137,
    SS_VARAVALPCT = 40138,
    SS_VARPCT_WINTMS = 40139,
    SS_VARPCT_RVRTTMS = 40140,
    SS_VARPCT_RMPTMS = 40141,
    SS_VARPCT_MOD = 40142,
    SS_VARPCT_ENA = 40143,
    SS_WMAXLIMPCT_SF = 40144,
    SS_OUTPFSET_SF = 40145,
    SS_VARPCT_SF = 40146,
    SS_END = 40147,
};

enum ss_state {
    SS_ST_OFF = 1,
    SS_ST_SLEEPING,
    SS_ST_STARTING,
    SS_ST_MPPT,
    SS_ST_THROTTLED,
    SS_ST_SHUTTING_DOWN,
    SS_ST_FAULT,
    SS_ST_STANDBY,
};

#define SS_WMAX     10000.0 // nameplate, W
#define SS_DAY_S    600.0   // one simulated day lasts ten minutes
#define SS_DAYLIGHT 0.7     // fraction of the day with sun
#define SS_NOT_IMPL 0x8000  // SunSpec int16 "not implemented"

struct ss_state_data {
    double t, day_off;
    double cloud_walk, hz_walk, pf_walk, dcv_walk;
    double v_walk[3];
    double tmp, wh;
    double lim_left, conn_left;
    bool lim_armed, conn_armed;
};

static int ss_init(struct sim_device *dev)
{
    int rc = sim_device_map(dev, 0, 0, 0, 0, SS_BASE, SS_SIZE, 0, 0);
    if (rc < 0) {
        return rc;
    }
    struct ss_state_data *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    dev->state = s;
    // Start in the morning with some spread, so a fleet is not in lockstep.
    s->day_off = 0.10 + 0.05 * sim_rng_unit(&dev->rng);
    s->wh = 1.0e6 + 2.0e7 * sim_rng_unit(&dev->rng);
    s->tmp = 25.0;
    s->hz_walk = 0.02 * sim_rng_sym(&dev->rng);
    s->pf_walk = 0.008 * sim_rng_sym(&dev->rng);
    for (int i = 0; i < 3; i++) {
        s->v_walk[i] = sim_rng_sym(&dev->rng);
    }

    const enum sim_table hr = SIM_TABLE_HOLDING;
    char sn[24];
    snprintf(sn, sizeof(sn), "SIM%05d", dev->index);
    sim_force_u16(dev, hr, SS_BASE, 0x5375);     // "Su"
    sim_force_u16(dev, hr, SS_BASE + 1, 0x6E53); // "nS"
    sim_force_u16(dev, hr, SS_C, 1);
    sim_force_u16(dev, hr, SS_C + 1, 65);
    sim_force_string(dev, hr, SS_C_MN, 16, "energy2mqtt-sim");
    sim_force_string(dev, hr, SS_C_MD, 16, "SIM-3P-10K");
    sim_force_string(dev, hr, SS_C_OPT, 8, "");
    sim_force_string(dev, hr, SS_C_VR, 8, "1.0.0");
    sim_force_string(dev, hr, SS_C_SN, 16, sn);
    sim_force_u16(dev, hr, SS_C_DA, (uint16_t)dev->unit);

    sim_force_u16(dev, hr, SS_I, 103);
    sim_force_u16(dev, hr, SS_I + 1, 50);
    static const struct {
        int address;
        int value;
    } fixed[] = {
        {SS_A_SF, -2},
        {SS_V_SF, -1},
        {SS_W_SF, 0},
        {SS_HZ_SF, -2},
        {SS_VA_SF, 0},
        {SS_VAR_SF, 0},
        {SS_PF_SF, -1},
        {SS_WH_SF, 0},
        {SS_DCA_SF, -2},
        {SS_DCV_SF, -1},
        {SS_DCW_SF, 0},
        {SS_TMP_SF, -1},
        {SS_TMPTRNS, (int16_t)SS_NOT_IMPL},
        {SS_TMPOT, (int16_t)SS_NOT_IMPL},
        {SS_CTL, 123},
        {SS_CTL + 1, 24},
        {SS_CONN, 1},
        {SS_WMAXLIMPCT, 100},
        {SS_WMAXLIM_ENA, 0},
        {SS_OUTPFSET, 1000},
        {SS_OUTPFSET_ENA, 0},
        {SS_VARPCT_MOD, 0},
        {SS_VARPCT_ENA, 0},
        {SS_WMAXLIMPCT_SF, 0},
        {SS_OUTPFSET_SF, -3},
        {SS_VARPCT_SF, 0},
        {SS_END, 0xFFFF},
        {SS_END + 1, 0},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        sim_force_u16(dev, hr, fixed[i].address, (uint16_t)fixed[i].value);
    }
    return 0;
}

// Applies a reversion timeout that ran out: the device itself puts the control back, and the
// test log shows it like a write so a test can wait for it.
static void ss_revert(struct sim_device *dev, int address, uint16_t value)
{
    sim_force_u16(dev, SIM_TABLE_HOLDING, address, value);
    sim_out("revert %s holding %d 1 %u", dev->label, address, value);
}

static void ss_evolve(struct sim_device *dev, double dt)
{
    struct ss_state_data *s = dev->state;
    struct sim_rng *r = &dev->rng;
    const enum sim_table hr = SIM_TABLE_HOLDING;

    if (s->lim_armed && (s->lim_left -= dt) <= 0) {
        s->lim_armed = false;
        ss_revert(dev, SS_WMAXLIM_ENA, 0);
    }
    if (s->conn_armed && (s->conn_left -= dt) <= 0) {
        s->conn_armed = false;
        ss_revert(dev, SS_CONN, 1);
    }

    s->t += dt;
    s->cloud_walk = sim_walk(r, s->cloud_walk, dt, 20, 0.05, 0.25);
    s->hz_walk = sim_walk(r, s->hz_walk, dt, 20, 0.01, 0.05);
    s->pf_walk = sim_walk(r, s->pf_walk, dt, 60, 0.002, 0.01);
    s->dcv_walk = sim_walk(r, s->dcv_walk, dt, 30, 2, 15);
    double day = fmod(s->t / SS_DAY_S + s->day_off, 1.0);
    double sun = day < SS_DAYLIGHT ? pow(sin(PI * day / SS_DAYLIGHT), 1.3) : 0.0;
    double avail = fmin(SS_WMAX * sun * (1.0 - fabs(s->cloud_walk)), SS_WMAX);

    bool conn = sim_get_u16(dev, hr, SS_CONN) != 0;
    bool limit_on = sim_get_u16(dev, hr, SS_WMAXLIM_ENA) == 1;
    double pct =
        sim_get_u16(dev, hr, SS_WMAXLIMPCT) * pow10i(sim_get_s16(dev, hr, SS_WMAXLIMPCT_SF));
    double p;
    enum ss_state st;
    if (!conn) {
        p = 0;
        st = SS_ST_STANDBY;
    } else if (sun <= 0) {
        p = 0;
        st = day < SS_DAYLIGHT + 0.01 ? SS_ST_SHUTTING_DOWN : SS_ST_SLEEPING;
    } else if (day < 0.01 || avail < 20) {
        p = 0;
        st = day < SS_DAYLIGHT / 2 ? SS_ST_STARTING : SS_ST_SHUTTING_DOWN;
    } else {
        double cap = limit_on ? SS_WMAX * clampd(pct, 0, 100) / 100.0 : SS_WMAX;
        if (limit_on && avail > cap) {
            p = cap;
            st = SS_ST_THROTTLED;
        } else {
            p = avail;
            st = SS_ST_MPPT;
        }
    }

    double pf = 1.0 - fabs(s->pf_walk);
    if (sim_get_u16(dev, hr, SS_OUTPFSET_ENA) == 1) {
        double set =
            sim_get_s16(dev, hr, SS_OUTPFSET) * pow10i(sim_get_s16(dev, hr, SS_OUTPFSET_SF));
        if (fabs(set) >= 0.5 && fabs(set) <= 1.0) {
            pf = set;
        }
    }
    double va = p > 0 ? p / fabs(pf) : 0;
    double q = p > 0 ? copysign(sqrt(fmax(va * va - p * p, 0)), pf) : 0;

    static const double share[3] = {0.335, 0.333, 0.332};
    double v[3], a_sum = 0;
    for (int i = 0; i < 3; i++) {
        s->v_walk[i] = sim_walk(r, s->v_walk[i], dt, 60, 0.4, 2.0);
        v[i] = 230.0 + s->v_walk[i];
        double a = va * share[i] / v[i];
        a_sum += a;
        sim_put_u16_scaled(dev, hr, SS_APHA + i, a * 100);
        sim_put_u16_scaled(dev, hr, SS_PHVPHA + i, v[i] * 10);
    }
    for (int i = 0; i < 3; i++) {
        double ll = sqrt(3.0) * (v[i] + v[(i + 1) % 3]) / 2;
        sim_put_u16_scaled(dev, hr, SS_PPVPHAB + i, ll * 10);
    }
    sim_put_u16_scaled(dev, hr, SS_A, a_sum * 100);
    sim_put_s16(dev, hr, SS_W, p);
    sim_put_u16_scaled(dev, hr, SS_HZ, (50.0 + s->hz_walk) * 100);
    sim_put_s16(dev, hr, SS_VA, va);
    sim_put_s16(dev, hr, SS_VAR, q);
    sim_put_s16(dev, hr, SS_PF, p > 0 ? pf * 1000 : 0); // percent, PF_SF -1

    // The counter integrates the power register, so a power pinned with `set` is counted.
    double w_eff = sim_get_s16(dev, hr, SS_W) * pow10i(sim_get_s16(dev, hr, SS_W_SF));
    if (w_eff > 0) {
        s->wh += w_eff * dt / 3600.0;
    }
    sim_put_u32(dev, hr, SS_WH, (uint32_t)fmod(s->wh, 4294967296.0));

    double dcw = p > 0 ? p / 0.97 : 0;
    double dcv = sun > 0 ? (p > 0 ? 560 + 80 * sun : 650) + s->dcv_walk : 0;
    sim_put_u16_scaled(dev, hr, SS_DCA, dcv > 0 ? dcw / dcv * 100 : 0);
    sim_put_u16_scaled(dev, hr, SS_DCV, dcv * 10);
    sim_put_s16(dev, hr, SS_DCW, dcw);

    double target = 25.0 + 20.0 * p / SS_WMAX;
    s->tmp += (target - s->tmp) * fmin(1.0, dt / 120.0);
    sim_put_s16(dev, hr, SS_TMPCAB, s->tmp * 10);
    sim_put_s16(dev, hr, SS_TMPSNK, (s->tmp + 10.0 * p / SS_WMAX) * 10);
    sim_put_u16(dev, hr, SS_ST, (uint16_t)st);
    sim_put_u16(dev, hr, SS_STVND, (uint16_t)st);
}

static void ss_resync(struct sim_device *dev)
{
    struct ss_state_data *s = dev->state;
    s->wh = sim_get_u32(dev, SIM_TABLE_HOLDING, SS_WH);
}

enum ss_rule {
    SS_RULE_ANY,  // any 16-bit value (time windows and timeouts, seconds)
    SS_RULE_BOOL, // 0 or 1
    SS_RULE_PCT,  // WMaxLimPct: 0..100 % after WMaxLimPct_SF
    SS_RULE_PF,   // OutPFSet: |cos phi| in 0.8..1 after OutPFSet_SF
    SS_RULE_VAR,  // reactive percentages: -100..100 % after VArPct_SF
    SS_RULE_MOD,  // VArPct_Mod: 0..3
};

static int ss_rule_of(int address)
{
    switch (address) {
    case SS_CONN_WINTMS:
    case SS_CONN_RVRTTMS:
    case SS_WMAXLIMPCT_WINTMS:
    case SS_WMAXLIMPCT_RVRTTMS:
    case SS_WMAXLIMPCT_RMPTMS:
    case SS_OUTPFSET_WINTMS:
    case SS_OUTPFSET_RVRTTMS:
    case SS_OUTPFSET_RMPTMS:
    case SS_VARPCT_WINTMS:
    case SS_VARPCT_RVRTTMS:
    case SS_VARPCT_RMPTMS: return SS_RULE_ANY;
    case SS_CONN:
    case SS_WMAXLIM_ENA:
    case SS_OUTPFSET_ENA:
    case SS_VARPCT_ENA: return SS_RULE_BOOL;
    case SS_WMAXLIMPCT: return SS_RULE_PCT;
    case SS_OUTPFSET: return SS_RULE_PF;
    case SS_VARWMAXPCT:
    case SS_VARMAXPCT:
    case SS_VARAVALPCT: return SS_RULE_VAR;
    case SS_VARPCT_MOD: return SS_RULE_MOD;
    default: return -1;
    }
}

static int ss_check_write(const struct sim_device *dev, enum sim_table table, int address,
                          int count, const uint16_t *values, int function)
{
    (void)function;
    const enum sim_table hr = SIM_TABLE_HOLDING;
    if (table != hr) {
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    }
    for (int i = 0; i < count; i++) {
        if (ss_rule_of(address + i) < 0) {
            return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
        }
    }
    for (int i = 0; i < count; i++) {
        double v;
        switch (ss_rule_of(address + i)) {
        case SS_RULE_BOOL:
            if (values[i] > 1) {
                return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            }
            break;
        case SS_RULE_PCT:
            v = values[i] * pow10i(sim_get_s16(dev, hr, SS_WMAXLIMPCT_SF));
            if (v > 100.0 + 1e-9) {
                return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            }
            break;
        case SS_RULE_PF:
            v = fabs((int16_t)values[i] * pow10i(sim_get_s16(dev, hr, SS_OUTPFSET_SF)));
            if (v < 0.8 - 1e-9 || v > 1.0 + 1e-9) {
                return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            }
            break;
        case SS_RULE_VAR:
            v = (int16_t)values[i] * pow10i(sim_get_s16(dev, hr, SS_VARPCT_SF));
            if (fabs(v) > 100.0 + 1e-9) {
                return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            }
            break;
        case SS_RULE_MOD:
            if (values[i] > 3) {
                return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
            }
            break;
        default: break;
        }
    }
    return 0;
}

static bool range_has(int address, int count, int lo, int hi)
{
    return address <= hi && address + count - 1 >= lo;
}

static void ss_written(struct sim_device *dev, enum sim_table table, int address, int count)
{
    struct ss_state_data *s = dev->state;
    const enum sim_table hr = SIM_TABLE_HOLDING;
    if (table != hr) {
        return;
    }
    // A limit (or a disconnect) with a reversion timeout reverts when the timeout runs out;
    // every write of the control restarts the timeout.
    if (range_has(address, count, SS_WMAXLIMPCT, SS_WMAXLIM_ENA)) {
        unsigned tms = sim_get_u16(dev, hr, SS_WMAXLIMPCT_RVRTTMS);
        s->lim_armed = sim_get_u16(dev, hr, SS_WMAXLIM_ENA) == 1 && tms > 0;
        s->lim_left = tms;
    }
    if (range_has(address, count, SS_CONN_RVRTTMS, SS_CONN)) {
        unsigned tms = sim_get_u16(dev, hr, SS_CONN_RVRTTMS);
        s->conn_armed = sim_get_u16(dev, hr, SS_CONN) == 0 && tms > 0;
        s->conn_left = tms;
    }
}

// ==== Registry ==========================================================================

static const struct sim_profile profiles[] = {
    {
        .name = "sdm630",
        .default_unit = 1,
        .max_read_registers = SDM_MAX_READ,
        .init = sdm_init,
        .evolve = sdm_evolve,
        .check_write = sdm_check_write,
        .resync = sdm_resync,
    },
    {
        .name = "sunspec",
        .default_unit = 1,
        .max_read_registers = MODBUS_MAX_READ_REGISTERS,
        .init = ss_init,
        .evolve = ss_evolve,
        .check_write = ss_check_write,
        .written = ss_written,
        .resync = ss_resync,
    },
};

const struct sim_profile *sim_profile_find(const char *name)
{
    for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
        if (strcmp(profiles[i].name, name) == 0) {
            return &profiles[i];
        }
    }
    return NULL;
}
