// SPDX-License-Identifier: MIT
// Device runtime: read plan, scheduling, driver jobs, decoding, counter guard, writes.
#include "app/device.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/expr.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/model.h"
#include "core/persist.h"
#include "core/state.h"
#include "core/tcp.h"
#include "core/worker.h"
#include "drivers/driver.h"
#include "mqtt/publish.h"

enum { NO_GROUP = -1 };

// A read request of the plan: a register block, or a field group. Its index is its scheduler
// group.
struct group {
    int64_t interval_ms;
    uint8_t table; // register drivers
    uint32_t start;
    uint16_t count;
    uint16_t *data;
    bool valid;
    uint8_t field_group; // field drivers
    size_t *entities;    // entities to decode when this group has been read
    size_t n_entities;
};

// Where an entity's registers live in the plan.
struct binding {
    int group, sf_group;
    uint16_t offset, sf_offset;
};

// What an event-driven driver holds to reach the core (see driver.h).
struct drv_ctx {
    struct device *d;
};

struct pending_write {
    bool queued;
    struct command_value cv;
    double raw;
};

// What a writable entity needs beyond its value.
struct control {
    struct pending_write write;
    struct command_value sent; // what the last write carried
    bool confirm;              // written, to be compared with the read-back
};

enum { NO_SLOT = UINT16_MAX };

struct device {
    struct loop *loop;
    const struct device_config *cfg;
    const struct model *model;
    const struct driver_ops *drv;
    struct device_hooks hooks;
    struct persist *persist;
    struct drv_device dd;
    void *drv_state;
    struct worker *worker;

    struct sched *sched;
    struct sched_config scfg;
    struct group *groups;
    size_t n_groups;
    int64_t *intervals;
    struct binding *bind;
    bool *active;
    size_t *exprs; // expression entities in evaluation order
    size_t n_exprs;

    struct state state;
    // Per-entity extras only where an entity needs them: a counter's guard, a control's
    // write state. `slot` indexes the array of its kind (NO_SLOT for neither).
    uint16_t *slot;
    struct guard *guards;
    struct control *controls;
    bool *assumed; // the value shown is the last command, not a reading

    struct sched_job sjob;
    struct drv_job job;
    struct drv_result *res;
    bool busy;
    struct timer timer;

    // Event-driven drivers.
    struct drv_ctx ctx;
    struct tcp *tcp;
    struct timer drv_timer;  // the driver's own
    struct timer job_timer;  // the job in flight times out
    struct timer done_timer; // delivers drv_job_done() after the driver's hook returned
    bool done_pending;
    bool exprs_stale; // values arrived outside a job; expressions not yet evaluated
    char **filters;   // MQTT subscriptions
    size_t n_filters;

    enum sched_state last_state;
    int64_t last_ok_wall;
    bool dirty;
    int64_t dirty_since;
    struct log_limit fail_limit, refuse_limit, guard_limit;
    struct device_stats stats;
    int64_t job_started; // monotonic start of the exchange in flight
    struct device_error errors[DEVICE_ERRORS];
    uint8_t error_head; // where the next problem goes
};

const double device_latency_bounds_s[DEVICE_LATENCY_BOUNDS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                               0.5,   1,    2.5,   5,    10};

const char *device_failure_name(enum device_failure f)
{
    static const char *const names[DEVICE_FAIL_N] = {"connect",   "timeout", "protocol",
                                                     "exception", "io",      "other"};
    return f < DEVICE_FAIL_N ? names[f] : "other";
}

// Remembers a problem for the status page (the log has it too).
static void note_error(struct device *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_error(struct device *d, const char *fmt, ...)
{
    struct device_error *e = &d->errors[d->error_head];
    d->error_head = (uint8_t)((d->error_head + 1) % DEVICE_ERRORS);
    e->wall_ms = loop_wall(d->loop);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
}

static enum device_failure failure_of(enum drv_status st)
{
    switch (st) {
    case DRV_ERR_CONNECT: return DEVICE_FAIL_CONNECT;
    case DRV_ERR_TIMEOUT: return DEVICE_FAIL_TIMEOUT;
    case DRV_ERR_PROTOCOL: return DEVICE_FAIL_PROTOCOL;
    case DRV_ERR_EXCEPTION: return DEVICE_FAIL_EXCEPTION;
    case DRV_ERR_IO: return DEVICE_FAIL_IO;
    default: return DEVICE_FAIL_OTHER;
    }
}

static void note_latency(struct device *d)
{
    double s = (double)(loop_now(d->loop) - d->job_started) / 1000.0;
    size_t b = 0;
    while (b < DEVICE_LATENCY_BOUNDS && s > device_latency_bounds_s[b])
        b++;
    d->stats.latency[b]++;
    d->stats.latency_sum_s += s;
}

// A counter's guard, or NULL.
static struct guard *guard_of(const struct device *d, size_t i)
{
    return d->model->entities[i].counter != COUNTER_NONE ? &d->guards[d->slot[i]] : NULL;
}

// A writable entity's write state, or NULL.
static struct control *control_of(const struct device *d, size_t i)
{
    return d->model->entities[i].writable ? &d->controls[d->slot[i]] : NULL;
}

// Both clocks for the scheduler, from the loop (which may run on simulated time).
static struct sched_time now_pair(const struct device *d)
{
    int64_t wall = loop_wall(d->loop);
    return (struct sched_time){loop_now(d->loop), wall + clock_local_offset_ms(wall)};
}

// ---- plan -----------------------------------------------------------------------------------

static void mark_active(struct device *d, size_t i)
{
    if (d->active[i])
        return;
    d->active[i] = true;
    const struct entity *e = &d->model->entities[i];
    if (e->source == SRC_EXPR) {
        const int *refs;
        size_t n = expr_refs(e->expr, &refs);
        for (size_t k = 0; k < n; k++)
            mark_active(d, (size_t)refs[k]);
    }
}

static void order_exprs(struct device *d, size_t i, bool *done)
{
    const struct entity *e = &d->model->entities[i];
    if (done[i] || e->source != SRC_EXPR || !d->active[i])
        return;
    done[i] = true;
    const int *refs;
    size_t n = expr_refs(e->expr, &refs);
    for (size_t k = 0; k < n; k++)
        order_exprs(d, (size_t)refs[k], done);
    d->exprs[d->n_exprs++] = i; // after everything it depends on
}

// A field group's default interval: the driver's option for it, or the poll interval.
static int64_t group_interval(const struct device *d, uint8_t field_group)
{
    const char *opt =
        d->drv->n_groups > field_group ? d->drv->groups[field_group].interval_option : NULL;
    return opt ? params_ms(&d->cfg->driver_options, opt)
               : params_ms(&d->cfg->core_options, "poll_interval");
}

static int64_t entity_interval(const struct device *d, const struct entity *e)
{
    if (e->interval_ms)
        return e->interval_ms;
    if (e->source == SRC_FIELD)
        return group_interval(d, d->drv->fields[e->field].group);
    return params_ms(&d->cfg->core_options, "poll_interval");
}

static void group_add_entity(struct group *g, size_t i)
{
    for (size_t k = 0; k < g->n_entities; k++)
        if (g->entities[k] == i)
            return;
    g->entities = xrealloc(g->entities, (g->n_entities + 1) * sizeof(size_t));
    g->entities[g->n_entities++] = i;
}

static int find_block(const struct device *d, const struct reg_ref *r, int64_t interval,
                      uint16_t *offset)
{
    for (size_t g = 0; g < d->n_groups; g++) {
        const struct group *b = &d->groups[g];
        if (b->table == r->table && b->interval_ms == interval && r->address >= b->start &&
            r->address + r->fmt.words <= b->start + b->count) {
            *offset = (uint16_t)(r->address - b->start);
            return (int)g;
        }
    }
    return NO_GROUP;
}

static int plan_registers(struct device *d)
{
    const struct model *m = d->model;
    size_t n_spans = 0;
    struct reg_span *spans = xcalloc(2 * m->n_entities + 1, sizeof(*spans));
    int64_t *ivals = xcalloc(m->n_entities + 1, sizeof(*ivals));
    size_t n_ivals = 0;
    for (size_t i = 0; i < m->n_entities; i++) {
        const struct entity *e = &m->entities[i];
        if (!d->active[i] || e->source != SRC_REGISTER)
            continue;
        int64_t iv = entity_interval(d, e);
        size_t gi;
        for (gi = 0; gi < n_ivals && ivals[gi] != iv; gi++)
            ;
        if (gi == n_ivals)
            ivals[n_ivals++] = iv;
        spans[n_spans++] =
            (struct reg_span){e->reg.table, (uint32_t)gi, e->reg.address, e->reg.fmt.words};
        if (e->has_scale_factor)
            spans[n_spans++] =
                (struct reg_span){e->scale_factor.table, (uint32_t)gi, e->scale_factor.address, 1};
    }
    struct reg_limits *limits = xcalloc(d->drv->n_tables + 1, sizeof(*limits));
    for (size_t t = 0; t < d->drv->n_tables; t++) {
        limits[t] = d->drv->tables[t].limits;
        if (!d->drv->tables[t].bits && params_is_set(&d->cfg->core_options, "max_registers"))
            limits[t].max_count = (uint16_t)params_int(&d->cfg->core_options, "max_registers");
        if (params_is_set(&d->cfg->core_options, "max_gap"))
            limits[t].max_gap = (uint16_t)params_int(&d->cfg->core_options, "max_gap");
    }
    size_t cap = n_spans + 1, bad = 0;
    struct reg_block *blocks = xcalloc(cap, sizeof(*blocks));
    int nb = regmap_plan(spans, n_spans, limits, d->drv->n_tables, blocks, cap, &bad);
    int rc = 0;
    if (nb < 0) {
        log_error(d->cfg->id,
                  "cannot plan reads: a value of %u registers at %u exceeds the "
                  "read limit",
                  spans[bad].count, spans[bad].address);
        rc = nb;
        goto out;
    }
    d->groups = xcalloc((size_t)nb + 1, sizeof(*d->groups));
    d->n_groups = (size_t)nb;
    for (int b = 0; b < nb; b++) {
        struct group *g = &d->groups[b];
        g->interval_ms = ivals[blocks[b].group];
        g->table = blocks[b].table;
        g->start = blocks[b].start;
        g->count = blocks[b].count;
        g->data = xcalloc(g->count, sizeof(uint16_t));
    }
    for (size_t i = 0; i < m->n_entities; i++) {
        const struct entity *e = &m->entities[i];
        struct binding *bd = &d->bind[i];
        bd->group = bd->sf_group = NO_GROUP;
        if (!d->active[i] || e->source != SRC_REGISTER)
            continue;
        int64_t iv = entity_interval(d, e);
        bd->group = find_block(d, &e->reg, iv, &bd->offset);
        group_add_entity(&d->groups[bd->group], i);
        if (e->has_scale_factor) {
            bd->sf_group = find_block(d, &e->scale_factor, iv, &bd->sf_offset);
            group_add_entity(&d->groups[bd->sf_group], i);
        }
    }
out:
    free(spans);
    free(ivals);
    free(limits);
    free(blocks);
    return rc;
}

// The scheduler group that polls a driver's field group, or -1.
static int device_group(const struct device *d, uint8_t field_group)
{
    for (size_t g = 0; g < d->n_groups; g++)
        if (d->groups[g].field_group == field_group)
            return (int)g;
    return -1;
}

static void plan_fields(struct device *d)
{
    const struct model *m = d->model;
    d->groups = xcalloc(m->n_entities + d->drv->n_groups + 1, sizeof(*d->groups));
    for (size_t i = 0; i < m->n_entities; i++) {
        const struct entity *e = &m->entities[i];
        d->bind[i].group = d->bind[i].sf_group = NO_GROUP;
        if (!d->active[i] || e->source != SRC_FIELD)
            continue;
        uint8_t fg = d->drv->fields[e->field].group;
        size_t g;
        for (g = 0; g < d->n_groups && d->groups[g].field_group != fg; g++)
            ;
        if (g == d->n_groups) {
            d->groups[g].field_group = fg;
            d->groups[g].interval_ms = entity_interval(d, e);
            d->n_groups++;
        } else if (entity_interval(d, e) < d->groups[g].interval_ms) {
            d->groups[g].interval_ms = entity_interval(d, e);
        }
        d->bind[i].group = (int)g;
        group_add_entity(&d->groups[g], i);
    }
    // Groups the driver needs whether or not an entity reads them.
    for (size_t fg = 0; fg < d->drv->n_groups; fg++) {
        if (!d->drv->groups[fg].always || device_group(d, (uint8_t)fg) >= 0)
            continue;
        d->groups[d->n_groups].field_group = (uint8_t)fg;
        d->groups[d->n_groups].interval_ms = group_interval(d, (uint8_t)fg);
        d->n_groups++;
    }
}

static void sched_setup(struct device *d)
{
    const struct params *o = &d->cfg->core_options;
    d->intervals = xcalloc(d->n_groups + 1, sizeof(*d->intervals));
    for (size_t g = 0; g < d->n_groups; g++)
        d->intervals[g] = d->groups[g].interval_ms;
    d->scfg = (struct sched_config){
        .min_gap_ms = params_ms(o, "min_request_gap"),
        .reply_timeout_ms = config_exchange_ms(o),
        .backoff_min_ms = params_ms(o, "backoff_min"),
        .backoff_max_ms = params_ms(o, "backoff_max"),
        .offline_after = (uint32_t)params_int(o, "offline_after"),
        .stale_after_ms = params_ms(o, "stale_after"),
        .write_interval_ms = params_ms(o, "write_interval"),
        .write_expiry_ms = params_ms(o, "write_expiry"),
        .write_retries = (uint32_t)params_int(o, "write_retries"),
        .sleep_interval_ms = params_ms(o, "sleep_interval"),
        .windows = d->cfg->windows,
        .n_windows = d->cfg->n_windows,
        .group_interval_ms = d->intervals,
        .n_groups = d->n_groups,
    };
}

// ---- decoding -------------------------------------------------------------------------------

static const uint16_t *regs_at(const struct device *d, int group, uint16_t offset)
{
    if (group == NO_GROUP || !d->groups[group].valid)
        return NULL;
    return d->groups[group].data + offset;
}

// The scale-factor exponent for an entity; false while unknown or marked absent.
static bool entity_sf(const struct device *d, size_t i, int *sf)
{
    const struct entity *e = &d->model->entities[i];
    *sf = 0;
    if (!e->has_scale_factor)
        return true;
    const uint16_t *r = regs_at(d, d->bind[i].sf_group, d->bind[i].sf_offset);
    if (!r)
        return false;
    double v;
    if (regmap_decode(&e->scale_factor.fmt, r, &v) < 0 || v < -10 || v > 10)
        return false; // SunSpec marks an absent scale factor with 0x8000
    *sf = (int)v;
    return true;
}

// Stores a raw reading as the entity's published value.
static void store_raw(struct device *d, size_t i, double raw, int sf, int64_t now)
{
    const struct entity *e = &d->model->entities[i];
    struct state *st = &d->state;
    if (e->n_bits) {
        char text[256];
        if (entity_bits_text(e, raw, text, sizeof(text)) < 0)
            state_set_unknown(st, i, now);
        else
            state_set_text(st, i, text, now);
        return;
    }
    if (e->map) {
        const char *label = entity_label(e, raw);
        if (label)
            state_set_text(st, i, label, now);
        else
            state_set_unknown(st, i, now);
        return;
    }
    if (e->component == COMP_SWITCH) {
        if (raw == e->on_value)
            state_set_text(st, i, "ON", now);
        else if (raw == e->off_value)
            state_set_text(st, i, "OFF", now);
        else
            state_set_unknown(st, i, now);
        return;
    }
    if (e->component == COMP_BINARY_SENSOR) {
        state_set_text(st, i, raw == e->off_value ? "OFF" : "ON", now);
        return;
    }
    double v = entity_value(e, raw, sf);
    if (e->counter != COUNTER_NONE) {
        struct guard *gd = guard_of(d, i);
        enum guard_verdict g =
            guard_check(gd, e->counter, e->max_rate, entity_resolution(e, sf), v, now, &v);
        if (!guard_accepted(g)) {
            d->stats.guard_rejects++;
            log_limited(&d->guard_limit, loop_now(d->loop), LOG_LVL_WARN, d->cfg->id,
                        "%s: %s (read %g, last %g)", e->id, guard_verdict_name(g), v, gd->mark);
            return;
        }
        // A daily reset or a carried device reset is routine; a rebase or a confirmed jump
        // deserves a look.
        if (g == GUARD_ACCEPT_RESET || g == GUARD_ACCEPT_CONTINUED)
            log_info(d->cfg->id, "%s: %s at %g", e->id, guard_verdict_name(g), v);
        else if (g != GUARD_ACCEPT)
            log_warn(d->cfg->id, "%s: %s at %g", e->id, guard_verdict_name(g), v);
        if (d->persist)
            persist_set(d->persist, d->cfg->id, e->id,
                        &(struct persist_counter){gd->mark, now, gd->offset});
    }
    state_set_number(st, i, v, now);
}

// Decodes entity i from its registers at `r` (NULL: unknown).
static void decode_entity_at(struct device *d, size_t i, const uint16_t *r, int64_t now)
{
    const struct entity *e = &d->model->entities[i];
    int sf;
    if (!r || !entity_sf(d, i, &sf)) {
        state_set_unknown(&d->state, i, now);
        return;
    }
    if (e->text) {
        char text[160];
        regmap_decode_string(&e->reg.fmt, r, text, sizeof(text));
        state_set_text(&d->state, i, text, now);
        return;
    }
    double raw;
    if (regmap_decode(&e->reg.fmt, r, &raw) < 0) {
        state_set_unknown(&d->state, i, now); // NaN/inf: the device has no value
        return;
    }
    store_raw(d, i, raw, sf, now);
}

static void decode_register_entity(struct device *d, size_t i, int64_t now)
{
    decode_entity_at(d, i, regs_at(d, d->bind[i].group, d->bind[i].offset), now);
}

static void eval_exprs(struct device *d, int64_t now)
{
    size_t n = d->model->n_entities;
    double *vals = xcalloc(n, sizeof(double));
    bool *known = xcalloc(n, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        known[i] = d->state.v[i].kind == VALUE_NUMBER;
        vals[i] = d->state.v[i].num;
    }
    for (size_t k = 0; k < d->n_exprs; k++) {
        size_t i = d->exprs[k];
        double v;
        if (expr_eval(d->model->entities[i].expr, vals, known, &v)) {
            store_raw(d, i, v, 0, now);
            known[i] = d->state.v[i].kind == VALUE_NUMBER;
            vals[i] = d->state.v[i].num;
        } else {
            state_set_unknown(&d->state, i, now);
            known[i] = false;
        }
    }
    free(vals);
    free(known);
}

static void apply_samples(struct device *d, const struct drv_result *res, int64_t now)
{
    for (size_t s = 0; s < res->n_samples; s++) {
        const struct drv_sample *smp = &res->samples[s];
        for (size_t i = 0; i < d->model->n_entities; i++) {
            const struct entity *e = &d->model->entities[i];
            if (!d->active[i] || e->source != SRC_FIELD || e->field != smp->field)
                continue;
            if (smp->text)
                state_set_text(&d->state, i, smp->str, now);
            else
                store_raw(d, i, smp->num, 0, now);
        }
    }
}

// After a read-back, say so when the device did not take the value it was sent.
static void check_confirmations(struct device *d, int group)
{
    for (size_t i = 0; i < d->model->n_entities; i++) {
        struct control *c = control_of(d, i);
        if (!c || !c->confirm || d->bind[i].group != group)
            continue;
        c->confirm = false;
        const struct entity *e = &d->model->entities[i];
        const struct value *v = &d->state.v[i];
        const struct command_value *cv = &c->sent;
        bool same;
        if (e->component == COMP_NUMBER)
            same = v->kind == VALUE_NUMBER && fabs(v->num - cv->value) <= e->step / 2;
        else if (e->component == COMP_SELECT)
            same = v->kind == VALUE_TEXT && strcmp(v->text, cv->label) == 0;
        else if (e->component == COMP_TEXT)
            same = v->kind == VALUE_TEXT && strcmp(v->text, cv->text) == 0;
        else
            same = v->kind == VALUE_TEXT && strcmp(v->text, cv->on ? "ON" : "OFF") == 0;
        if (d->assumed[i])
            log_info(d->cfg->id, "%s shown as commanded (the device does not report it)", e->id);
        else if (same)
            log_info(d->cfg->id, "%s confirmed by read-back", e->id);
        else
            log_warn(d->cfg->id,
                     "%s: the device did not keep the value written (read-back "
                     "differs)",
                     e->id);
    }
}

// ---- jobs -----------------------------------------------------------------------------------

// Remembers that the state message must be sent, and since when.
static void mark_dirty(struct device *d)
{
    if (!d->dirty)
        d->dirty_since = loop_now(d->loop);
    d->dirty = true;
}

static void device_tick(void *arg);
static void poke(struct device *d);

static void emit(struct device *d, enum device_event ev)
{
    if (d->hooks.event)
        d->hooks.event(d->hooks.arg, d, ev);
}

static void run_job(void *arg)
{
    struct device *d = arg;
    d->drv->run(d->drv_state, &d->job, d->res);
}

static enum sched_result classify(const struct drv_result *res, bool *refused)
{
    *refused = false;
    switch (res->status) {
    case DRV_OK: return SCHED_RESULT_OK;
    case DRV_SLEEPING: return SCHED_RESULT_SLEEPING;
    case DRV_SKIPPED: return SCHED_RESULT_SKIPPED;
    case DRV_ERR_BUSY: return SCHED_RESULT_BUSY;
    case DRV_ERR_EXCEPTION:
        // Busy, failure and gateway exceptions are transient trouble; the others mean the
        // device answered and refused this particular request.
        if (res->code == 4 || res->code == 5 || res->code == 6 || res->code == 10 ||
            res->code == 11)
            return SCHED_RESULT_FAIL;
        *refused = true;
        return SCHED_RESULT_OK;
    default: return SCHED_RESULT_FAIL;
    }
}

static void job_done(void *arg)
{
    struct device *d = arg;
    int64_t wall = loop_wall(d->loop);
    bool refused;
    enum sched_result r = classify(d->res, &refused);
    const struct sched_job *sj = &d->sjob;
    d->busy = false;

    if (r == SCHED_RESULT_FAIL) {
        if (sj->kind == SCHED_JOB_POLL)
            d->stats.poll_errors++;
        else
            d->stats.writes_failed++;
        d->stats.failures[failure_of(d->res->status)]++;
        log_limited(&d->fail_limit, loop_now(d->loop), LOG_LVL_WARN, d->cfg->id, "%s failed: %s",
                    sj->kind == SCHED_JOB_WRITE ? "write" : "poll", d->res->detail);
        note_error(d, "%s failed: %s", sj->kind == SCHED_JOB_WRITE ? "write" : "poll",
                   d->res->detail);
    } else if (r == SCHED_RESULT_OK || r == SCHED_RESULT_BUSY) {
        note_latency(d);
        d->last_ok_wall = wall;
        log_release(&d->fail_limit, d->cfg->id, "answering again");
    }

    if (r == SCHED_RESULT_SKIPPED) {
        // Nothing was sent: no poll happened, and a write was not needed.
        if (sj->kind == SCHED_JOB_WRITE) {
            log_info(d->cfg->id, "%s: not sent: %s", d->model->entities[sj->target].id,
                     d->res->detail[0] ? d->res->detail : "not needed");
            mark_dirty(d);
        }
    } else if (r == SCHED_RESULT_BUSY) {
        if (sj->kind == SCHED_JOB_WRITE)
            log_info(d->cfg->id, "%s: the device is busy (%s); trying again later",
                     d->model->entities[sj->target].id, d->res->detail);
    } else if (sj->kind == SCHED_JOB_POLL) {
        d->stats.polls++;
        struct group *g = &d->groups[sj->group];
        if (r == SCHED_RESULT_OK && !refused) {
            if (d->drv->n_tables) {
                memcpy(g->data, d->res->regs, sizeof(uint16_t) * g->count);
                g->valid = d->res->count == g->count;
                for (size_t k = 0; k < g->n_entities; k++)
                    decode_register_entity(d, g->entities[k], wall);
            } else {
                apply_samples(d, d->res, wall);
            }
            eval_exprs(d, wall);
            check_confirmations(d, (int)sj->group);
            log_release(&d->refuse_limit, d->cfg->id, "reads accepted again");
            mark_dirty(d); // one state message per poll, changed or not: last_seen moves on
        } else if (refused) {
            // The device answers but will not give this block (e.g. an address it lacks):
            // its values are unknown now, not frozen at their last reading.
            log_limited(&d->refuse_limit, loop_now(d->loop), LOG_LVL_WARN, d->cfg->id,
                        "read refused: %s", d->res->detail);
            note_error(d, "read refused: %s", d->res->detail);
            g->valid = false;
            for (size_t k = 0; k < g->n_entities; k++)
                if (d->drv->n_tables)
                    decode_register_entity(d, g->entities[k], wall);
                else
                    state_set_unknown(&d->state, g->entities[k], wall);
            eval_exprs(d, wall);
            mark_dirty(d);
        }
    } else {
        size_t i = sj->target;
        const struct entity *e = &d->model->entities[i];
        if (refused) {
            d->stats.writes_refused++;
            log_warn(d->cfg->id, "%s: the device refused the write: %s", e->id, d->res->detail);
            note_error(d, "%s: write refused: %s", e->id, d->res->detail);
            mark_dirty(d); // snap the control back
        } else if (r == SCHED_RESULT_OK) {
            d->stats.writes++;
            control_of(d, i)->confirm = d->bind[i].group != NO_GROUP;
            log_info(d->cfg->id, "%s written", e->id);
        }
    }
    sched_done(d->sched, now_pair(d), r);
    device_tick(d);
}

static int build_write(struct device *d, size_t i)
{
    const struct entity *e = &d->model->entities[i];
    const struct pending_write *w = &control_of(d, i)->write;
    struct drv_job *j = &d->job;
    *j = (struct drv_job){.bit = -1};
    if (e->action) {
        j->type = DRV_JOB_ACTION;
        j->action = e->action;
        return 0;
    }
    if (e->source == SRC_FIELD && !e->has_write) {
        j->type = DRV_JOB_SET;
        j->field = e->field;
        j->value = w->raw;
        // The copy in `sent` stays put while the job runs; a newer command only replaces the
        // pending one.
        if (e->component == COMP_TEXT)
            j->text = control_of(d, i)->sent.text;
        return 0;
    }
    const struct reg_ref *r = e->has_write ? &e->write : &e->reg;
    j->type = DRV_JOB_WRITE;
    j->table = r->table;
    j->address = r->address;
    if (d->drv->tables[r->table].bits) {
        j->count = 1;
        j->regs[0] = w->raw != 0;
    } else if (r->fmt.bit >= 0) {
        j->count = 1;
        j->bit = r->fmt.bit;
        j->bit_on = w->raw != 0;
        j->bit_format = r->fmt;
    } else if (e->component == COMP_TEXT) {
        j->count = r->fmt.words;
        return regmap_encode_text(&r->fmt, control_of(d, i)->sent.text, j->regs);
    } else {
        j->count = r->fmt.words;
        return regmap_encode(&r->fmt, w->raw, j->regs);
    }
    return 0;
}

// Clears the result of the last job, keeping its buffers.
static void reset_result(struct device *d, enum drv_status status)
{
    struct drv_result *r = d->res;
    *r = (struct drv_result){
        .status = status, .regs = r->regs, .max_samples = r->max_samples, .samples = r->samples};
}

// An event-driven job that got no answer in time.
static void job_timeout(void *arg)
{
    struct device *d = arg;
    if (!d->busy || d->done_pending)
        return;
    if (d->drv->abort)
        d->drv->abort(d->drv_state);
    reset_result(d, DRV_ERR_TIMEOUT);
    snprintf(d->res->detail, sizeof(d->res->detail), "no answer within %lld ms",
             (long long)config_exchange_ms(&d->cfg->core_options));
    job_done(d);
}

static void done_event(void *arg)
{
    struct device *d = arg;
    d->done_pending = false;
    job_done(d);
}

static void start_job(struct device *d, const struct sched_job *sj)
{
    d->sjob = *sj;
    d->job_started = loop_now(d->loop);
    if (sj->kind == SCHED_JOB_POLL) {
        const struct group *g = &d->groups[sj->group];
        if (d->drv->n_tables)
            d->job = (struct drv_job){.type = DRV_JOB_READ,
                                      .table = g->table,
                                      .address = g->start,
                                      .count = g->count,
                                      .bit = -1};
        else
            d->job = (struct drv_job){.type = DRV_JOB_POLL, .group = g->field_group, .bit = -1};
    } else {
        struct control *c = control_of(d, sj->target);
        c->write.queued = false;
        c->sent = c->write.cv;
        if (build_write(d, sj->target) < 0) {
            // Validated when queued, so this is a bug; never send half-built bytes.
            log_error(d->cfg->id, "%s: cannot encode the write", d->model->entities[sj->target].id);
            sched_done(d->sched, now_pair(d), SCHED_RESULT_OK);
            mark_dirty(d);
            return;
        }
    }
    if (d->drv->style == DRV_EVENT) {
        d->busy = true;
        reset_result(d, DRV_OK);
        loop_timer_set(d->loop, &d->job_timer,
                       loop_now(d->loop) + config_exchange_ms(&d->cfg->core_options), job_timeout,
                       d);
        d->drv->job(d->drv_state, &d->job);
        return;
    }
    if (worker_submit(d->worker, run_job, job_done, d) < 0) {
        log_error(d->cfg->id, "worker busy; job skipped");
        sched_done(d->sched, now_pair(d), SCHED_RESULT_FAIL);
        return;
    }
    d->busy = true;
}

static void device_tick(void *arg)
{
    struct device *d = arg;
    if (d->exprs_stale) {
        d->exprs_stale = false;
        eval_exprs(d, loop_wall(d->loop));
    }
    if (d->busy) {
        // A job is in flight (perhaps waiting long for an answer), but values the device
        // pushed meanwhile still go out, at most once a second.
        if (state_take_changed(&d->state))
            mark_dirty(d);
        int64_t now = loop_now(d->loop);
        if (d->dirty && now - d->dirty_since >= 1000) {
            d->dirty = false;
            emit(d, DEVICE_STATE);
        } else if (d->dirty) {
            loop_timer_set(d->loop, &d->timer, d->dirty_since + 1000, device_tick, d);
        }
        return;
    }
    for (int guard = 0; guard < 4; guard++) {
        struct sched_time now = now_pair(d);
        struct sched_job sj;
        int64_t at = sched_next(d->sched, now, &sj);
        uint32_t target;
        enum sched_drop why;
        while (sched_take_dropped(d->sched, &target, &why)) {
            d->stats.writes_dropped++;
            control_of(d, target)->write.queued = false;
            log_warn(d->cfg->id, "%s: command dropped (%s)", d->model->entities[target].id,
                     why == SCHED_DROP_EXPIRED ? "not sent in time" : "write failed repeatedly");
            note_error(d, "%s: command dropped (%s)", d->model->entities[target].id,
                       why == SCHED_DROP_EXPIRED ? "not sent in time" : "write failed repeatedly");
            mark_dirty(d);
        }
        enum sched_state st = sched_state(d->sched);
        if (st != d->last_state) {
            bool was_online = d->last_state == SCHED_STATE_ONLINE;
            d->last_state = st;
            if (st == SCHED_STATE_ONLINE || was_online)
                log_info(d->cfg->id, "now %s", sched_state_name(st));
            emit(d, DEVICE_AVAILABILITY);
            mark_dirty(d);
        }
        if (state_take_changed(&d->state))
            mark_dirty(d);
        if (at == now.mono_ms) {
            // Several reads of one cycle go out back to back: publish once after the last,
            // unless that takes more than a second.
            if (d->dirty && now.mono_ms - d->dirty_since > 1000) {
                d->dirty = false;
                emit(d, DEVICE_STATE);
            }
            start_job(d, &sj);
            if (d->busy)
                return;
            continue;
        }
        if (d->dirty) {
            d->dirty = false;
            emit(d, DEVICE_STATE);
        }
        if (at != INT64_MAX)
            loop_timer_set(d->loop, &d->timer, at, device_tick, d);
        return;
    }
    loop_timer_set(d->loop, &d->timer, loop_now(d->loop) + 1, device_tick, d);
}

// ---- public ---------------------------------------------------------------------------------

struct device *device_new(struct loop *loop, const struct device_config *cfg,
                          struct persist *persist, const struct device_hooks *hooks)
{
    struct device *d = xcalloc(1, sizeof(*d));
    const struct model *m = cfg->model;
    size_t n = m->n_entities;
    d->loop = loop;
    d->cfg = cfg;
    d->model = m;
    d->drv = m->driver;
    d->hooks = *hooks;
    d->persist = persist;
    d->dd = (struct drv_device){cfg->id, &cfg->settings, &cfg->core_options, &cfg->driver_options};
    d->active = xcalloc(n + 1, sizeof(bool));
    d->bind = xcalloc(n + 1, sizeof(*d->bind));
    d->exprs = xcalloc(n + 1, sizeof(size_t));
    d->slot = xcalloc(n + 1, sizeof(*d->slot));
    size_t n_guards = 0, n_controls = 0;
    for (size_t i = 0; i < n; i++) {
        const struct entity *e = &m->entities[i];
        d->slot[i] = e->counter != COUNTER_NONE ? (uint16_t)n_guards++
                     : e->writable              ? (uint16_t)n_controls++
                                                : NO_SLOT;
    }
    d->guards = xcalloc(n_guards + 1, sizeof(*d->guards));
    d->controls = xcalloc(n_controls + 1, sizeof(*d->controls));
    d->assumed = xcalloc(n + 1, sizeof(bool));
    d->res = xcalloc(1, sizeof(*d->res));
    d->ctx.d = d;
    d->last_state = SCHED_STATE_STARTING;
    state_init(&d->state, n);

    // What gets read: every enabled entity and what its expression needs. A button's
    // register is only a write target.
    for (size_t i = 0; i < n; i++)
        if (!cfg->disabled[i] && !m->entities[i].internal &&
            m->entities[i].component != COMP_BUTTON)
            mark_active(d, i);
    bool *done = xcalloc(n + 1, sizeof(bool));
    for (size_t i = 0; i < n; i++)
        order_exprs(d, i, done);
    free(done);

    if (d->drv->n_tables) {
        if (plan_registers(d) < 0)
            goto fail;
    } else {
        plan_fields(d);
    }
    sched_setup(d);
    // Result buffers for the largest read of the plan; field values of blocking drivers.
    size_t max_regs = 1;
    for (size_t g = 0; g < d->n_groups; g++)
        if (d->groups[g].count > max_regs)
            max_regs = d->groups[g].count;
    d->res->regs = xcalloc(max_regs, sizeof(uint16_t));
    if (d->drv->style == DRV_BLOCKING && d->drv->n_fields) {
        d->res->max_samples =
            (uint16_t)(d->drv->n_fields < DRV_MAX_SAMPLES ? d->drv->n_fields : DRV_MAX_SAMPLES);
        d->res->samples = xcalloc(d->res->max_samples, sizeof(struct drv_sample));
    }

    for (size_t i = 0; persist && i < n; i++) {
        const struct entity *e = &m->entities[i];
        struct persist_counter c;
        if (e->counter != COUNTER_NONE && persist_get(persist, cfg->id, e->id, &c))
            *guard_of(d, i) = (struct guard){
                .mark = c.total, .mark_ms = c.wall_ms, .offset = c.offset, .has_mark = true};
    }
    if (d->drv->open(&d->dd, &d->drv_state) < 0) {
        log_error(cfg->id, "the %s driver cannot open this device", d->drv->name);
        goto fail;
    }
    return d;
fail:
    device_free(d);
    return NULL;
}

int device_start(struct device *d)
{
    if (d->drv->style == DRV_BLOCKING) {
        d->worker = worker_new(d->loop);
        if (!d->worker) {
            log_error(d->cfg->id, "cannot start a worker thread");
            return -EAGAIN;
        }
    }
    d->sched = sched_new(&d->scfg, (uint64_t)loop_wall(d->loop) ^ (uintptr_t)d, now_pair(d));
    if (d->drv->style == DRV_EVENT && d->drv->start && d->drv->start(d->drv_state, &d->ctx) < 0) {
        log_error(d->cfg->id, "the %s driver cannot start this device", d->drv->name);
        return -EINVAL;
    }
    size_t reads = d->n_groups;
    log_info(d->cfg->id, "%s (%s): %zu read%s per cycle every %.1f s", d->model->key, d->drv->name,
             reads, reads == 1 ? "" : "s",
             (double)params_ms(&d->cfg->core_options, "poll_interval") / 1000.0);
    device_tick(d);
    return 0;
}

void device_free(struct device *d)
{
    if (!d)
        return;
    if (d->loop) {
        loop_timer_cancel(d->loop, &d->timer);
        loop_timer_cancel(d->loop, &d->drv_timer);
        loop_timer_cancel(d->loop, &d->job_timer);
        loop_timer_cancel(d->loop, &d->done_timer);
    }
    worker_free(d->worker); // waits for a job in flight
    tcp_free(d->tcp);
    for (size_t i = 0; i < d->n_filters; i++)
        free(d->filters[i]);
    free(d->filters);
    if (d->drv_state)
        d->drv->close(d->drv_state);
    sched_free(d->sched);
    for (size_t g = 0; g < d->n_groups; g++) {
        free(d->groups[g].data);
        free(d->groups[g].entities);
    }
    free(d->groups);
    free(d->intervals);
    free(d->bind);
    free(d->active);
    free(d->exprs);
    free(d->slot);
    free(d->guards);
    free(d->controls);
    free(d->assumed);
    if (d->res) {
        free(d->res->regs);
        free(d->res->samples);
    }
    free(d->res);
    state_free(&d->state);
    free(d);
}

const struct device_config *device_config(const struct device *d)
{
    return d->cfg;
}

enum sched_state device_sched_state(const struct device *d)
{
    return d->last_state;
}

bool device_online(const struct device *d)
{
    return d->last_state == SCHED_STATE_ONLINE;
}

int device_command(struct device *d, const struct entity *e, const struct command_value *cv,
                   char *why, size_t why_size)
{
    size_t i = model_index(d->model, e);
    double raw = cv->value;
    if (e->component == COMP_NUMBER) {
        int sf;
        if (!entity_sf(d, i, &sf)) {
            snprintf(why, why_size, "the scale factor of %s has not been read yet", e->id);
            return -EAGAIN;
        }
        if (entity_raw(e, cv->value, sf, &raw) < 0) {
            snprintf(why, why_size, "%g cannot be represented in the %s register", cv->value,
                     regmap_type_name((e->has_write ? &e->write : &e->reg)->fmt.type));
            return -ERANGE;
        }
    } else if (e->component == COMP_TEXT && e->source == SRC_REGISTER) {
        uint16_t regs[DRV_MAX_WRITE];
        if (regmap_encode_text(&e->reg.fmt, cv->text, regs) < 0) {
            snprintf(why, why_size, "'%s' does not fit the %s register", cv->text,
                     regmap_type_name(e->reg.fmt.type));
            return -ERANGE;
        }
    } else if (!e->action && (e->has_write || e->source == SRC_REGISTER)) {
        const struct reg_ref *r = e->has_write ? &e->write : &e->reg;
        uint16_t regs[DRV_MAX_WRITE];
        if (r->fmt.bit < 0 && !d->drv->tables[r->table].bits &&
            regmap_encode(&r->fmt, raw, regs) < 0) {
            snprintf(why, why_size, "raw value %g does not fit the %s register", raw,
                     regmap_type_name(r->fmt.type));
            return -ERANGE;
        }
    }
    if (e->component == COMP_NUMBER && e->deadband > 0) {
        // Compare with what the device will hold: the pending value, else the current one.
        const struct value *v = &d->state.v[i];
        const struct pending_write *w = &control_of(d, i)->write;
        bool known = w->queued || v->kind == VALUE_NUMBER;
        double ref = w->queued ? w->cv.value : v->num;
        if (known && fabs(cv->value - ref) < e->deadband) {
            log_debug(d->cfg->id, "%s: %g is within the dead band (%g) of %g: not sent", e->id,
                      cv->value, e->deadband, ref);
            mark_dirty(d); // the control shows the value in effect again
            poke(d);
            return 0;
        }
    }
    struct control *c = control_of(d, i);
    bool coalesced = c->write.queued;
    c->write = (struct pending_write){.queued = true, .cv = *cv, .raw = raw};
    sched_write(d->sched, now_pair(d), (uint32_t)i, d->bind[i].group,
                e->has_write_interval ? e->write_interval_ms : -1);
    log_info(d->cfg->id, "%s: command queued%s", e->id,
             coalesced ? " (replaces the pending one)" : "");
    if (!d->busy) {
        loop_timer_cancel(d->loop, &d->timer);
        device_tick(d);
    }
    return 0;
}

char *device_state_json(struct device *d)
{
    struct device_diag diag = {
        .link_status = sched_state_name(d->last_state),
        .last_seen_ms = d->last_ok_wall,
        .poll_errors = d->stats.poll_errors,
        .assumed = d->assumed,
    };
    return publish_state_json(d->cfg, &d->state, &diag);
}

void device_get_stats(const struct device *d, struct device_stats *out)
{
    *out = d->stats;
    out->last_ok_wall_ms = d->last_ok_wall;
    out->blocks = d->n_groups;
}

void device_sched_status(const struct device *d, struct sched_status *out)
{
    if (d->sched)
        sched_status(d->sched, now_pair(d), out);
    else
        *out = (struct sched_status){.state = d->last_state};
}

int64_t device_next_request_ms(const struct device *d)
{
    if (d->busy || !loop_timer_armed(&d->timer))
        return -1;
    int64_t left = d->timer.due_ms - loop_now(d->loop);
    return left > 0 ? left : 0;
}

size_t device_last_errors(const struct device *d, struct device_error *out)
{
    size_t n = 0;
    for (size_t k = 1; k <= DEVICE_ERRORS; k++) {
        const struct device_error *e =
            &d->errors[(d->error_head + DEVICE_ERRORS - k) % DEVICE_ERRORS];
        if (e->wall_ms)
            out[n++] = *e;
    }
    return n;
}

const struct state *device_values(const struct device *d)
{
    return &d->state;
}

bool device_entity_shown(const struct device *d, size_t i)
{
    return i < d->model->n_entities && !d->cfg->disabled[i] && !d->model->entities[i].internal;
}

bool device_write_pending(const struct device *d, size_t i, const struct command_value **cv)
{
    const struct control *c = i < d->model->n_entities ? control_of(d, i) : NULL;
    if (!c || !c->write.queued)
        return false;
    *cv = &c->write.cv;
    return true;
}

// ---- services for event-driven drivers --------------------------------------------------------

// Runs the tick soon (not from inside the driver's hook), so pushed values get published and
// availability changes are noticed.
static void poke(struct device *d)
{
    int64_t soon = loop_now(d->loop) + 20;
    if (!loop_timer_armed(&d->timer) || d->timer.due_ms > soon)
        loop_timer_set(d->loop, &d->timer, soon, device_tick, d);
}

int64_t drv_now_ms(const struct drv_ctx *c)
{
    return loop_now(c->d->loop);
}

int64_t drv_wall_ms(const struct drv_ctx *c)
{
    return loop_wall(c->d->loop);
}

const char *drv_device_id(const struct drv_ctx *c)
{
    return c->d->cfg->id;
}

static void tcp_on_connected(void *arg)
{
    struct device *d = arg;
    if (d->drv->tcp_connected)
        d->drv->tcp_connected(d->drv_state);
}

static size_t tcp_on_data(void *arg, const uint8_t *buf, size_t len)
{
    struct device *d = arg;
    return d->drv->tcp_data ? d->drv->tcp_data(d->drv_state, buf, len) : len;
}

static void tcp_on_closed(void *arg, const char *why)
{
    struct device *d = arg;
    if (d->drv->tcp_closed)
        d->drv->tcp_closed(d->drv_state, why);
}

int drv_tcp_open(struct drv_ctx *c, const char *host, int port)
{
    struct device *d = c->d;
    if (!d->tcp) {
        struct tcp_handlers h = {tcp_on_connected, tcp_on_data, tcp_on_closed, d};
        d->tcp = tcp_new(d->loop, &h, 64 * 1024);
    }
    return tcp_open(d->tcp, host, port, params_ms(&d->cfg->core_options, "connect_timeout"));
}

int drv_tcp_send(struct drv_ctx *c, const void *buf, size_t len)
{
    return c->d->tcp ? tcp_send(c->d->tcp, buf, len) : -ENOTCONN;
}

void drv_tcp_close(struct drv_ctx *c)
{
    if (c->d->tcp)
        tcp_close(c->d->tcp);
}

bool drv_tcp_is_open(const struct drv_ctx *c)
{
    return c->d->tcp && tcp_state(c->d->tcp) == TCP_OPEN;
}

int drv_mqtt_subscribe(struct drv_ctx *c, const char *filter)
{
    struct device *d = c->d;
    d->filters = xrealloc(d->filters, (d->n_filters + 1) * sizeof(*d->filters));
    d->filters[d->n_filters++] = xstrdup(filter);
    return d->hooks.mqtt_subscribe ? d->hooks.mqtt_subscribe(d->hooks.arg, filter) : 0;
}

int drv_mqtt_publish(struct drv_ctx *c, const char *topic, const void *payload, size_t len,
                     bool retain)
{
    struct device *d = c->d;
    if (!d->hooks.mqtt_publish)
        return -ENOTCONN;
    return d->hooks.mqtt_publish(d->hooks.arg, topic, payload, len, retain);
}

static void drv_timer_fired(void *arg)
{
    struct device *d = arg;
    if (d->drv->timer)
        d->drv->timer(d->drv_state);
}

void drv_timer_set(struct drv_ctx *c, int64_t delay_ms)
{
    struct device *d = c->d;
    loop_timer_set(d->loop, &d->drv_timer, loop_now(d->loop) + delay_ms, drv_timer_fired, d);
}

void drv_timer_cancel(struct drv_ctx *c)
{
    loop_timer_cancel(c->d->loop, &c->d->drv_timer);
}

// A value of `field` for every entity that reads it.
static void field_value(struct device *d, uint16_t field, const double *num, const char *text,
                        bool assumed)
{
    int64_t wall = loop_wall(d->loop);
    for (size_t i = 0; i < d->model->n_entities; i++) {
        const struct entity *e = &d->model->entities[i];
        if (!d->active[i] || e->source != SRC_FIELD || e->field != field)
            continue;
        if (d->assumed[i] != assumed) {
            d->assumed[i] = assumed;
            d->state.changed = true;
        }
        if (text)
            state_set_text(&d->state, i, text, wall);
        else if (num && !e->text)
            store_raw(d, i, *num, 0, wall);
        else
            state_set_unknown(&d->state, i, wall);
    }
    d->exprs_stale = true;
    poke(d);
}

void drv_value(struct drv_ctx *c, uint16_t field, double value)
{
    field_value(c->d, field, &value, NULL, false);
}

void drv_value_assumed(struct drv_ctx *c, uint16_t field, double value)
{
    field_value(c->d, field, &value, NULL, true);
}

void drv_text(struct drv_ctx *c, uint16_t field, const char *text)
{
    field_value(c->d, field, NULL, text, false);
}

void drv_unknown(struct drv_ctx *c, uint16_t field)
{
    field_value(c->d, field, NULL, NULL, false);
}

void drv_registers(struct drv_ctx *c, uint8_t table, uint32_t start, uint16_t count,
                   const uint16_t *regs)
{
    struct device *d = c->d;
    if (table >= d->drv->n_tables || count == 0 || !regs)
        return;
    uint32_t end = start + count;
    const struct drv_job *j = &d->job;
    if (d->busy && !d->done_pending && j->type == DRV_JOB_READ && j->table == table &&
        j->address >= start && j->address + j->count <= end) {
        memcpy(d->res->regs, regs + (j->address - start), sizeof(uint16_t) * j->count);
        d->res->count = j->count;
    }
    // Every block of the plan the values overlap keeps them; a block they cover entirely is
    // as good as read.
    for (size_t g = 0; g < d->n_groups; g++) {
        struct group *b = &d->groups[g];
        uint32_t lo = b->start > start ? b->start : start;
        uint32_t hi = b->start + b->count < end ? b->start + b->count : end;
        if (b->table != table || lo >= hi)
            continue;
        memcpy(b->data + (lo - b->start), regs + (lo - start), sizeof(uint16_t) * (hi - lo));
        if (start <= b->start && b->start + b->count <= end)
            b->valid = true;
    }
    // Entities whose registers all arrived are decoded from them; one whose scale factor is
    // not known yet waits for its block.
    int64_t wall = loop_wall(d->loop);
    for (size_t i = 0; i < d->model->n_entities; i++) {
        const struct entity *e = &d->model->entities[i];
        if (!d->active[i] || e->source != SRC_REGISTER || e->reg.table != table ||
            e->reg.address < start || e->reg.address + e->reg.fmt.words > end)
            continue;
        int sf;
        if (!entity_sf(d, i, &sf))
            continue;
        decode_entity_at(d, i, regs + (e->reg.address - start), wall);
    }
    d->exprs_stale = true;
    poke(d);
}

void drv_poll_first(struct drv_ctx *c, uint8_t group)
{
    struct device *d = c->d;
    int g = device_group(d, group);
    if (g < 0 || !d->sched)
        return;
    sched_poll_first(d->sched, (uint32_t)g);
    poke(d);
}

void drv_poll_all(struct drv_ctx *c)
{
    struct device *d = c->d;
    if (!d->sched)
        return;
    for (size_t g = 0; g < d->n_groups; g++)
        sched_poll_first(d->sched, (uint32_t)g);
    poke(d);
}

bool drv_learned_get(const struct drv_ctx *c, const char *key, char *buf, size_t n)
{
    const struct device *d = c->d;
    return d->persist && persist_get_text(d->persist, d->cfg->id, key, buf, n);
}

void drv_learned_set(struct drv_ctx *c, const char *key, const char *value)
{
    struct device *d = c->d;
    if (d->persist && persist_set_text(d->persist, d->cfg->id, key, value) && d->hooks.persist_soon)
        d->hooks.persist_soon(d->hooks.arg);
}

void drv_alive(struct drv_ctx *c)
{
    struct device *d = c->d;
    sched_alive(d->sched, now_pair(d));
    d->last_ok_wall = loop_wall(d->loop);
    mark_dirty(d); // like a poll: a state message, changed or not, so last_seen moves on
    poke(d);
}

void drv_job_done(struct drv_ctx *c, enum drv_status status, int code, const char *fmt, ...)
{
    struct device *d = c->d;
    if (!d->busy || d->done_pending || d->drv->style != DRV_EVENT)
        return;
    loop_timer_cancel(d->loop, &d->job_timer);
    d->res->status = status;
    d->res->code = code;
    d->res->detail[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->res->detail, sizeof(d->res->detail), fmt, ap);
        va_end(ap);
    }
    d->done_pending = true;
    loop_timer_set(d->loop, &d->done_timer, loop_now(d->loop), done_event, d);
}

size_t device_mqtt_filters(const struct device *d, const char *const **filters)
{
    *filters = (const char *const *)d->filters;
    return d->n_filters;
}

void device_mqtt_message(struct device *d, const char *topic, const uint8_t *payload, size_t len,
                         bool retained)
{
    if (d->drv->mqtt_message)
        d->drv->mqtt_message(d->drv_state, topic, payload, len, retained);
}
