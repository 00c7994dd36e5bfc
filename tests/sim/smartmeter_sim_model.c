// SPDX-License-Identifier: MIT
// e2m-smartmeter-sim measured values: seeded random walks, energy integration, time strings.
#include "smartmeter_sim.h"

#include <math.h>
#include <stdio.h>
#include <sys/time.h>

// ---- Random numbers and values ----------------------------------------------------------

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double sm_random(struct sm_sim *s)
{
    return (double)(splitmix64(&s->rng) >> 11) / 9007199254740992.0;
}

static double gauss(struct sm_sim *s)
{
    double u = sm_random(s), v = sm_random(s);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

double sm_round2(double v)
{
    return floor(v * 100.0 + 0.5) / 100.0;
}

double sm_round_to(double v, int decimals)
{
    double f = pow(10.0, decimals);
    return round(v * f) / f;
}

// A new load level: log-uniform, so small standby loads and big appliances both occur.
static double load_level(struct sm_sim *s)
{
    double lo = s->type == SM_POWERMETER ? 3.0 : 50.0;
    double hi = s->type == SM_POWERMETER ? 2500.0 : 3000.0;
    return lo * pow(hi / lo, sm_random(s));
}

void sm_meter_init(struct sm_sim *s, uint64_t seed)
{
    struct sm_meter *m = &s->m;
    s->rng = seed * 0x2545F4914F6CDD1Dull + 1;
    m->phases = s->type == SM_SMARTMETER ? 3 : 1;
    for (int p = 0; p < m->phases; p++) {
        m->power[p] =
            s->type == SM_POWERMETER ? 80.0 + 220.0 * sm_random(s) : 150.0 + 600.0 * sm_random(s);
        m->target[p] = m->power[p];
        m->pf[p] = 0.90 + 0.08 * sm_random(s);
        m->voltage[p] = 229.0 + 2.0 * sm_random(s);
        m->energy[p] = s->type == SM_POWERMETER ? 10000.0 + 40000.0 * sm_random(s)
                                                : 100000.0 + 900000.0 * sm_random(s);
    }
    m->freq = 49.99 + 0.02 * sm_random(s);
}

void sm_meter_step(struct sm_sim *s, double dt)
{
    struct sm_meter *m = &s->m;
    double follow = 1.0 - exp(-dt / 8.0), settle = 1.0 - exp(-dt / 30.0);
    for (int p = 0; p < m->phases; p++) {
        if (!m->power_pinned) {
            // Appliances switch now and then; the power then glides to the new level.
            if (sm_random(s) < dt / 30.0) {
                m->target[p] = load_level(s);
            }
            m->power[p] += (m->target[p] - m->power[p]) * follow +
                           gauss(s) * (0.01 * m->power[p] + 1.0) * sqrt(dt);
            m->power[p] = clamp(m->power[p], 0.0, 10000.0);
        }
        m->pf[p] = clamp(m->pf[p] + 0.002 * gauss(s), 0.85, 0.99);
        if (!m->voltage_pinned) {
            m->voltage[p] += (230.0 - m->voltage[p]) * settle + 0.15 * gauss(s) * sqrt(dt);
            m->voltage[p] = clamp(m->voltage[p], 228.0, 232.0);
        }
    }
    m->freq = clamp(m->freq + (50.0 - m->freq) * settle + 0.004 * gauss(s), 49.95, 50.05);
    for (int p = 0; p < m->phases; p++) {
        m->energy[p] += sm_power(s, p) * dt / 3600.0;
    }
}

double sm_power(const struct sm_sim *s, int phase)
{
    if (s->type == SM_POWERMETER && !s->relay) {
        return 0.0;
    }
    return s->m.power[phase];
}

double sm_current(const struct sm_sim *s, int phase)
{
    double v = s->m.voltage[phase];
    return v > 1.0 ? sm_power(s, phase) / v : 0.0;
}

double sm_apparent(const struct sm_sim *s, int phase)
{
    return sm_power(s, phase) / s->m.pf[phase];
}

double sm_reactive(const struct sm_sim *s, int phase)
{
    double p = sm_power(s, phase), sa = sm_apparent(s, phase);
    return sqrt(fmax(sa * sa - p * p, 0.0));
}

double sm_energy_total(const struct sm_sim *s)
{
    double e = 0;
    for (int p = 0; p < s->m.phases; p++) {
        e += s->m.energy[p];
    }
    return e;
}

// ---- Time strings -----------------------------------------------------------------------

void sm_time_long(char *buf, size_t n, time_t t, int ms)
{
    struct tm tm;
    localtime_r(&t, &tm);
    snprintf(buf, n, "%02d/%02d/%04d %02d:%02d:%02d.%03d", tm.tm_mon + 1, tm.tm_mday,
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void sm_time_short(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    snprintf(buf, n, "%02d/%02d %02d:%02d:%02d", tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

void sm_time_now_long(char *buf, size_t n)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    sm_time_long(buf, n, tv.tv_sec, (int)(tv.tv_usec / 1000));
}
