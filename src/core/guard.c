// SPDX-License-Identifier: MIT
// The counter guard (see guard.h).
#include "core/guard.h"

#include <math.h>

static enum guard_verdict accept(struct guard *g, double value, int64_t now_ms,
                                 enum guard_verdict why)
{
    g->mark = value;
    g->mark_ms = now_ms;
    g->has_mark = true;
    g->confirmations = 0;
    g->low_count = 0;
    return why;
}

// A rise larger than max_rate allows for the time since the mark (plus one hour's worth of
// slack, so a restart after a long outage is not held back twice).
static bool implausible(const struct guard *g, double max_rate, double value, int64_t now_ms)
{
    if (max_rate <= 0)
        return false;
    double hours = (double)(now_ms - g->mark_ms) / 3600000.0;
    if (hours < 0)
        hours = 0;
    return value - g->mark > max_rate * (hours + 1.0);
}

enum guard_verdict guard_check(struct guard *g, enum counter_kind kind, double max_rate,
                               double noise, double value, int64_t now_ms)
{
    if (kind == COUNTER_NONE || !isfinite(value))
        return isfinite(value) ? GUARD_ACCEPT : GUARD_REJECT_SPIKE;
    if (!g->has_mark)
        return accept(g, value, now_ms, GUARD_ACCEPT);

    // Float noise and rounding around the mark are not a decrease.
    double eps = fmax(noise, 1e-9 * fmax(1.0, fabs(g->mark)));
    if (value >= g->mark - eps) {
        if (value <= g->mark + eps)
            return accept(g, fmax(value, g->mark), now_ms, GUARD_ACCEPT);
        if (!implausible(g, max_rate, value, now_ms))
            return accept(g, value, now_ms, GUARD_ACCEPT);
        // Confirm a big rise: the next readings must stay at or above it.
        if (g->confirmations && value >= g->pending - eps) {
            if (++g->confirmations > GUARD_CONFIRM)
                return accept(g, value, now_ms, GUARD_ACCEPT_CONFIRMED);
        } else {
            g->confirmations = 1;
        }
        g->pending = value;
        return GUARD_REJECT_SPIKE;
    }

    // Below the mark.
    g->confirmations = 0;
    if (kind == COUNTER_DAILY && value <= 0.05 * g->mark && value >= 0)
        return accept(g, value, now_ms, GUARD_ACCEPT_RESET);
    if (value == 0)
        return GUARD_REJECT_ZERO;
    if (g->low_count && value >= g->low - eps) {
        if (++g->low_count >= GUARD_REBASE_AFTER)
            return accept(g, value, now_ms, GUARD_ACCEPT_REBASE);
    } else {
        g->low_count = 1;
    }
    g->low = value;
    return GUARD_REJECT_DECREASE;
}

const char *guard_verdict_name(enum guard_verdict v)
{
    switch (v) {
    case GUARD_ACCEPT: return "accepted";
    case GUARD_ACCEPT_RESET: return "daily reset";
    case GUARD_ACCEPT_REBASE: return "new level accepted";
    case GUARD_ACCEPT_CONFIRMED: return "large rise confirmed";
    case GUARD_REJECT_ZERO: return "zero refused";
    case GUARD_REJECT_DECREASE: return "decrease refused";
    case GUARD_REJECT_SPIKE: return "implausible rise held back";
    }
    return "?";
}
