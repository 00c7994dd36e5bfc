// SPDX-License-Identifier: MIT
// Per-device request scheduler (see sched.h for the rules).
#include "sched.h"

#include <stdlib.h>

#include "mem.h"

struct pending {
    uint32_t target;
    int readback_group;
    int64_t interval_ms; // least time between two writes to this target
    int64_t queued_ms;
    uint32_t attempts;
};

struct last_write {
    uint32_t target;
    int64_t start_ms;
};

struct dropped {
    uint32_t target;
    enum sched_drop why;
};

struct sched {
    const struct sched_config *cfg;
    uint64_t rng;
    enum sched_state state;

    bool in_flight;
    struct sched_job cur;
    struct pending cur_write; // the write in flight, kept for a retry

    int64_t created_ms;
    int64_t not_before_ms; // end of the gap or backoff after the last exchange
    int64_t last_ok_ms;
    bool ever_ok;
    bool sleepy; // the last result said the device sleeps
    uint32_t failures;
    bool held;            // the job waiting now is held back by the gap, backoff or a window
    uint64_t guard_waits; // jobs that started late because of that

    int64_t *due_ms; // next poll per group
    bool *first;     // groups the driver wants polled before anything else
    int readback;    // group to read back next, or -1

    struct pending *pend;
    size_t n_pend, cap_pend;
    struct last_write *last;
    size_t n_last, cap_last;
    struct dropped *drops;
    size_t n_drops, cap_drops;
};

// xorshift64*: small, fast, and good enough for jitter.
static double sched_random(struct sched *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t mod64(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

const char *sched_config_check(const struct sched_config *c)
{
    if (c->min_gap_ms < 0)
        return "the minimum request gap cannot be negative";
    if (c->reply_timeout_ms <= 0)
        return "the reply timeout must be positive";
    if (c->backoff_min_ms <= 0 || c->backoff_max_ms < c->backoff_min_ms)
        return "the backoff floor must be positive and not above its ceiling";
    if (c->offline_after < 1)
        return "offline_after must be at least 1";
    if (c->sleep_interval_ms <= 0)
        return "the sleep interval must be positive";
    if (c->write_interval_ms < 0 || c->write_expiry_ms < 0 || c->stale_after_ms < 0)
        return "write intervals and staleness cannot be negative";
    for (size_t i = 0; i < c->n_groups; i++)
        if (c->group_interval_ms[i] <= 0)
            return "every poll interval must be positive";
    for (size_t i = 0; i < c->n_windows; i++) {
        const struct sched_window *w = &c->windows[i];
        if (w->period_ms <= 0 || w->start_ms < 0 || w->start_ms >= w->period_ms)
            return "a quiet window must start inside its period";
        if (w->length_ms <= 0 || w->length_ms >= w->period_ms)
            return "a quiet window must be shorter than its period";
        if (w->length_ms + c->reply_timeout_ms >= w->period_ms)
            return "a quiet window plus the reply timeout leaves no time for requests";
    }
    return NULL;
}

struct sched *sched_new(const struct sched_config *cfg, uint64_t seed, struct sched_time now)
{
    struct sched *s = xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    s->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    s->state = SCHED_STATE_STARTING;
    s->created_ms = now.mono_ms;
    s->not_before_ms = now.mono_ms;
    s->readback = -1;
    s->due_ms = xcalloc(cfg->n_groups ? cfg->n_groups : 1, sizeof(*s->due_ms));
    s->first = xcalloc(cfg->n_groups ? cfg->n_groups : 1, sizeof(*s->first));
    // Start up to a second late so a fleet does not poll in lock step; one offset for the
    // whole device keeps the reads of one cycle together.
    int64_t spread = 1000;
    for (size_t g = 0; g < cfg->n_groups; g++)
        spread = min64(spread, cfg->group_interval_ms[g]);
    int64_t offset = (int64_t)(sched_random(s) * (double)spread);
    for (size_t g = 0; g < cfg->n_groups; g++)
        s->due_ms[g] = now.mono_ms + offset;
    return s;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    free(s->due_ms);
    free(s->first);
    free(s->pend);
    free(s->last);
    free(s->drops);
    free(s);
}

static void drop_push(struct sched *s, uint32_t target, enum sched_drop why)
{
    if (s->n_drops == s->cap_drops) {
        s->cap_drops = s->cap_drops ? s->cap_drops * 2 : 4;
        s->drops = xrealloc(s->drops, s->cap_drops * sizeof(*s->drops));
    }
    s->drops[s->n_drops++] = (struct dropped){target, why};
}

static struct pending *pending_find(struct sched *s, uint32_t target)
{
    for (size_t i = 0; i < s->n_pend; i++)
        if (s->pend[i].target == target)
            return &s->pend[i];
    return NULL;
}

static void pending_remove(struct sched *s, size_t i)
{
    s->pend[i] = s->pend[--s->n_pend];
}

static void pending_add(struct sched *s, struct pending p)
{
    if (s->n_pend == s->cap_pend) {
        s->cap_pend = s->cap_pend ? s->cap_pend * 2 : 4;
        s->pend = xrealloc(s->pend, s->cap_pend * sizeof(*s->pend));
    }
    s->pend[s->n_pend++] = p;
}

void sched_write(struct sched *s, struct sched_time now, uint32_t target, int readback_group,
                 int64_t interval_ms)
{
    if (interval_ms < 0)
        interval_ms = s->cfg->write_interval_ms;
    struct pending *p = pending_find(s, target);
    if (p) {
        // The caller now holds a newer value; it replaces the pending one and gets the full
        // expiry time and retry budget again.
        p->readback_group = readback_group;
        p->interval_ms = interval_ms;
        p->queued_ms = now.mono_ms;
        p->attempts = 0;
        return;
    }
    pending_add(s, (struct pending){target, readback_group, interval_ms, now.mono_ms, 0});
}

void sched_poll_first(struct sched *s, uint32_t group)
{
    if (group < s->cfg->n_groups)
        s->first[group] = true;
}

static int64_t last_write_ms(const struct sched *s, uint32_t target)
{
    for (size_t i = 0; i < s->n_last; i++)
        if (s->last[i].target == target)
            return s->last[i].start_ms;
    return INT64_MIN;
}

static void last_write_set(struct sched *s, uint32_t target, int64_t when)
{
    for (size_t i = 0; i < s->n_last; i++) {
        if (s->last[i].target == target) {
            s->last[i].start_ms = when;
            return;
        }
    }
    if (s->n_last == s->cap_last) {
        s->cap_last = s->cap_last ? s->cap_last * 2 : 4;
        s->last = xrealloc(s->last, s->cap_last * sizeof(*s->last));
    }
    s->last[s->n_last++] = (struct last_write){target, when};
}

static int64_t write_ready_ms(const struct sched *s, const struct pending *p)
{
    int64_t last = last_write_ms(s, p->target);
    if (last == INT64_MIN)
        return INT64_MIN;
    return last + p->interval_ms;
}

// Moves `wall` forward until an exchange starting then, lasting up to the reply timeout,
// touches no quiet window. Returns the (possibly unchanged) wall time.
static int64_t window_clear(const struct sched_config *c, int64_t wall)
{
    for (int round = 0; round < 16; round++) {
        bool moved = false;
        for (size_t i = 0; i < c->n_windows; i++) {
            const struct sched_window *w = &c->windows[i];
            int64_t since = mod64(wall - w->start_ms, w->period_ms);
            int64_t last_start = wall - since;
            if (since < w->length_ms) {
                wall = last_start + w->length_ms; // inside: wait for its end
                moved = true;
            } else if (last_start + w->period_ms <= wall + c->reply_timeout_ms) {
                wall = last_start + w->period_ms + w->length_ms; // would run into the next
                moved = true;
            }
        }
        if (!moved)
            break;
    }
    return wall;
}

static bool in_window(const struct sched_config *c, int64_t wall)
{
    for (size_t i = 0; i < c->n_windows; i++) {
        const struct sched_window *w = &c->windows[i];
        if (mod64(wall - w->start_ms, w->period_ms) < w->length_ms)
            return true;
    }
    return false;
}

static void expire_writes(struct sched *s, int64_t now)
{
    if (!s->cfg->write_expiry_ms)
        return;
    for (size_t i = s->n_pend; i-- > 0;) {
        if (now - s->pend[i].queued_ms >= s->cfg->write_expiry_ms) {
            drop_push(s, s->pend[i].target, SCHED_DROP_EXPIRED);
            pending_remove(s, i);
        }
    }
}

static void check_stale(struct sched *s, int64_t now)
{
    if (!s->cfg->stale_after_ms || s->state == SCHED_STATE_OFFLINE ||
        s->state == SCHED_STATE_SLEEPING)
        return;
    int64_t ref = s->ever_ok ? s->last_ok_ms : s->created_ms;
    if (now - ref >= s->cfg->stale_after_ms) {
        // The end of a sleeping device's grace period.
        s->state = s->sleepy ? SCHED_STATE_SLEEPING : SCHED_STATE_OFFLINE;
        if (s->sleepy)
            s->not_before_ms =
                max64(s->not_before_ms, ref + max64(s->cfg->min_gap_ms, s->cfg->sleep_interval_ms));
    }
}

// Which job would run first once the gap allows, and from when it is ready.
struct pick {
    enum sched_job_kind kind;
    size_t index; // group, or index into pend
    int64_t ready_ms;
};

static bool pick_job(const struct sched *s, struct pick *out)
{
    if (s->readback >= 0) {
        *out = (struct pick){SCHED_JOB_POLL, (size_t)s->readback, INT64_MIN};
        return true;
    }
    for (size_t g = 0; g < s->cfg->n_groups; g++) {
        if (s->first[g]) {
            *out = (struct pick){SCHED_JOB_POLL, g, INT64_MIN};
            return true;
        }
    }
    bool found = false;
    if (s->state != SCHED_STATE_SLEEPING) {
        // Writes before polls: the oldest write whose target may be written again.
        for (size_t i = 0; i < s->n_pend; i++) {
            int64_t ready = write_ready_ms(s, &s->pend[i]);
            if (!found || ready < out->ready_ms ||
                (ready == out->ready_ms && s->pend[i].queued_ms < s->pend[out->index].queued_ms)) {
                *out = (struct pick){SCHED_JOB_WRITE, i, ready};
                found = true;
            }
        }
    }
    for (size_t g = 0; g < s->cfg->n_groups; g++) {
        // A poll only wins over a write that has to wait longer for its target interval.
        if (!found || s->due_ms[g] < out->ready_ms) {
            *out = (struct pick){SCHED_JOB_POLL, g, s->due_ms[g]};
            found = true;
        }
    }
    return found;
}

int64_t sched_next(struct sched *s, struct sched_time now, struct sched_job *job)
{
    if (s->in_flight)
        return INT64_MAX;
    expire_writes(s, now.mono_ms);
    check_stale(s, now.mono_ms);

    struct pick p;
    if (!pick_job(s, &p))
        return INT64_MAX;
    int64_t start = max64(s->not_before_ms, max64(p.ready_ms, now.mono_ms));
    if (s->cfg->n_windows) {
        int64_t wall = now.wall_ms + (start - now.mono_ms);
        start += window_clear(s->cfg, wall) - wall;
    }
    if (start > now.mono_ms) {
        if (start > max64(p.ready_ms, now.mono_ms))
            s->held = true;
        // Wake up early enough to notice an expiring write or the device going stale.
        int64_t wake = start;
        if (s->cfg->write_expiry_ms)
            for (size_t i = 0; i < s->n_pend; i++)
                wake = min64(wake, s->pend[i].queued_ms + s->cfg->write_expiry_ms);
        if (s->cfg->stale_after_ms &&
            (s->state == SCHED_STATE_ONLINE || s->state == SCHED_STATE_STARTING))
            wake =
                min64(wake, (s->ever_ok ? s->last_ok_ms : s->created_ms) + s->cfg->stale_after_ms);
        return max64(wake, now.mono_ms + 1);
    }

    if (p.kind == SCHED_JOB_WRITE) {
        s->cur_write = s->pend[p.index];
        pending_remove(s, p.index);
        last_write_set(s, s->cur_write.target, now.mono_ms);
        *job = (struct sched_job){.kind = SCHED_JOB_WRITE, .target = s->cur_write.target};
    } else {
        bool readback = s->readback >= 0 && (size_t)s->readback == p.index;
        if (!readback) {
            // Skip the cycles that were missed instead of catching up on them.
            int64_t interval = s->cfg->group_interval_ms[p.index];
            int64_t due = s->due_ms[p.index];
            if (due <= now.mono_ms)
                due += ((now.mono_ms - due) / interval + 1) * interval;
            s->due_ms[p.index] = due;
        }
        *job = (struct sched_job){
            .kind = SCHED_JOB_POLL, .group = (uint32_t)p.index, .readback = readback};
    }
    s->cur = *job;
    s->in_flight = true;
    if (s->held) {
        s->held = false;
        s->guard_waits++;
    }
    return now.mono_ms;
}

static int64_t backoff_ms(struct sched *s)
{
    double d = (double)s->cfg->backoff_min_ms;
    for (uint32_t i = 1; i < s->failures && d < (double)s->cfg->backoff_max_ms; i++)
        d *= 2;
    if (d > (double)s->cfg->backoff_max_ms)
        d = (double)s->cfg->backoff_max_ms;
    d *= 0.8 + 0.4 * sched_random(s); // +-20 % so a fleet does not retry in lock step
    if (d > (double)s->cfg->backoff_max_ms)
        d = (double)s->cfg->backoff_max_ms;
    return (int64_t)d;
}

// A failed write goes back to the queue (unless a newer value replaced it meanwhile) or, out
// of retries, to the dropped list. `count` says whether this attempt uses up a retry.
static void requeue_write(struct sched *s, bool count)
{
    struct pending w = s->cur_write;
    if (pending_find(s, w.target))
        return; // a newer value arrived meanwhile; it replaces this one
    if (count && ++w.attempts > s->cfg->write_retries)
        drop_push(s, w.target, SCHED_DROP_FAILED);
    else
        pending_add(s, w);
}

static void mark_ok(struct sched *s, int64_t t)
{
    s->failures = 0;
    s->last_ok_ms = t;
    s->ever_ok = true;
    s->sleepy = false;
    s->state = SCHED_STATE_ONLINE;
}

void sched_done(struct sched *s, struct sched_time now, enum sched_result result)
{
    if (!s->in_flight)
        return;
    s->in_flight = false;
    int64_t t = now.mono_ms;
    bool write = s->cur.kind == SCHED_JOB_WRITE;
    bool poll = !write;
    bool was_readback = poll && s->cur.readback;

    switch (result) {
    case SCHED_RESULT_OK:
        mark_ok(s, t);
        s->not_before_ms = t + s->cfg->min_gap_ms;
        if (write && s->cur_write.readback_group >= 0)
            s->readback = s->cur_write.readback_group;
        else if (was_readback)
            s->readback = -1;
        if (poll)
            s->first[s->cur.group] = false;
        break;
    case SCHED_RESULT_BUSY:
        mark_ok(s, t);
        s->not_before_ms = t + s->cfg->min_gap_ms;
        if (write)
            requeue_write(s, false);
        break;
    case SCHED_RESULT_SKIPPED:
        // Nothing went out: the gap still runs from the exchange before.
        if (was_readback)
            s->readback = -1;
        if (poll)
            s->first[s->cur.group] = false;
        break;
    case SCHED_RESULT_SLEEPING: {
        s->failures = 0;
        s->sleepy = true;
        if (was_readback)
            s->readback = -1;
        if (write && !pending_find(s, s->cur_write.target))
            pending_add(s, s->cur_write); // not attempted for real; keep it
        // A device that just fell asleep keeps its state until its data would be stale
        // anyway (the grace period); one that was failing or never answered sleeps now.
        int64_t ref = s->ever_ok ? s->last_ok_ms : s->created_ms;
        bool grace = s->state == SCHED_STATE_ONLINE && s->cfg->stale_after_ms &&
                     t - ref < s->cfg->stale_after_ms;
        if (!grace)
            s->state = SCHED_STATE_SLEEPING;
        s->not_before_ms =
            t + (grace ? s->cfg->min_gap_ms : max64(s->cfg->min_gap_ms, s->cfg->sleep_interval_ms));
        break;
    }
    case SCHED_RESULT_FAIL:
        if (s->state == SCHED_STATE_SLEEPING) {
            // A sleeping device not answering is expected: probe again later, no backoff.
            s->not_before_ms = t + max64(s->cfg->min_gap_ms, s->cfg->sleep_interval_ms);
        } else {
            s->sleepy = false;
            s->failures++;
            if (s->failures >= s->cfg->offline_after)
                s->state = SCHED_STATE_OFFLINE;
            s->not_before_ms = t + max64(s->cfg->min_gap_ms, backoff_ms(s));
        }
        if (write)
            requeue_write(s, true);
        break;
    }
}

void sched_alive(struct sched *s, struct sched_time now)
{
    mark_ok(s, now.mono_ms);
}

bool sched_take_dropped(struct sched *s, uint32_t *target, enum sched_drop *why)
{
    if (!s->n_drops)
        return false;
    *target = s->drops[0].target;
    *why = s->drops[0].why;
    s->n_drops--;
    for (size_t i = 0; i < s->n_drops; i++)
        s->drops[i] = s->drops[i + 1];
    return true;
}

enum sched_state sched_state(const struct sched *s)
{
    return s->state;
}

const char *sched_state_name(enum sched_state state)
{
    switch (state) {
    case SCHED_STATE_STARTING: return "starting";
    case SCHED_STATE_ONLINE: return "online";
    case SCHED_STATE_OFFLINE: return "offline";
    case SCHED_STATE_SLEEPING: return "sleeping";
    }
    return "?";
}

void sched_status(const struct sched *s, struct sched_time now, struct sched_status *out)
{
    *out = (struct sched_status){
        .state = s->state,
        .in_flight = s->in_flight,
        .in_quiet_window = in_window(s->cfg, now.wall_ms),
        .guard_remaining_ms = max64(0, s->not_before_ms - now.mono_ms),
        .pending_writes = s->n_pend,
        .failures = s->failures,
        .last_ok_mono_ms = s->ever_ok ? s->last_ok_ms : 0,
        .guard_waits = s->guard_waits,
    };
}
