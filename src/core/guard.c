// SPDX-License-Identifier: MIT
// The counter guard (see guard.h).
#include "core/guard.h"

#include <math.h>

static enum guard_verdict accept(struct guard *g, double total, int64_t now_ms,
                                 enum guard_verdict why, double *out)
{
    g->mark = total;
    g->mark_ms = now_ms;
    g->has_mark = true;
    g->confirmations = 0;
    g->low_count = 0;
    *out = total;
    return why;
}

// A rise larger than max_rate allows for the time since the mark (plus one hour's worth of
// slack, so a restart after a long outage is not held back twice).
static bool implausible(const struct guard *g, double max_rate, double total, int64_t now_ms)
{
    if (max_rate <= 0)
        return false;
    double hours = (double)(now_ms - g->mark_ms) / 3600000.0;
    if (hours < 0)
        hours = 0;
    return total - g->mark > max_rate * (hours + 1.0);
}

// Counts consecutive readings below the mark that do not decrease among themselves; true once
// there have been `needed` of them.
static bool low_holds(struct guard *g, double value, double eps, unsigned needed)
{
    if (g->low_count && value >= g->low - eps)
        g->low_count++;
    else
        g->low_count = 1;
    g->low = value;
    return g->low_count >= needed;
}

enum guard_verdict guard_check(struct guard *g, enum counter_kind kind, double max_rate,
                               double noise, double value, int64_t now_ms, double *out)
{
    if (!isfinite(value))
        return GUARD_REJECT_SPIKE;
    if (kind == COUNTER_NONE) {
        *out = value;
        return GUARD_ACCEPT;
    }
    double total = kind == COUNTER_CONTINUOUS ? value + g->offset : value;
    if (!g->has_mark)
        return accept(g, total, now_ms, GUARD_ACCEPT, out);

    // Float noise and rounding around the mark are not a decrease.
    double eps = fmax(noise, 1e-9 * fmax(1.0, fabs(g->mark)));
    if (total >= g->mark - eps) {
        g->low_count = 0;
        if (total <= g->mark + eps)
            return accept(g, fmax(total, g->mark), now_ms, GUARD_ACCEPT, out);
        if (!implausible(g, max_rate, total, now_ms))
            return accept(g, total, now_ms, GUARD_ACCEPT, out);
        // Confirm a big rise: the next readings must stay at or above it.
        if (g->confirmations && total >= g->pending - eps) {
            if (++g->confirmations > GUARD_CONFIRM)
                return accept(g, total, now_ms, GUARD_ACCEPT_CONFIRMED, out);
        } else {
            g->confirmations = 1;
        }
        g->pending = total;
        return GUARD_REJECT_SPIKE;
    }

    // Below the mark.
    g->confirmations = 0;
    double reading_mark = g->mark - (kind == COUNTER_CONTINUOUS ? g->offset : 0);
    bool near_zero = value >= 0 && value <= 0.05 * reading_mark;
    if (kind == COUNTER_DAILY && near_zero)
        return accept(g, value, now_ms, GUARD_ACCEPT_RESET, out);
    if (kind == COUNTER_CONTINUOUS && near_zero) {
        // The device reset its counter; a glitch does not hold for several readings.
        if (!low_holds(g, value, eps, GUARD_CONFIRM + 1))
            return GUARD_REJECT_DECREASE;
        g->offset = g->mark;
        return accept(g, value + g->offset, now_ms, GUARD_ACCEPT_CONTINUED, out);
    }
    if (value == 0)
        return GUARD_REJECT_ZERO;
    if (!low_holds(g, value, eps, GUARD_REBASE_AFTER))
        return GUARD_REJECT_DECREASE;
    if (kind == COUNTER_CONTINUOUS) {
        g->offset = g->mark - value; // continue from the total reached
        return accept(g, g->mark, now_ms, GUARD_ACCEPT_REBASE, out);
    }
    return accept(g, value, now_ms, GUARD_ACCEPT_REBASE, out);
}

const char *guard_verdict_name(enum guard_verdict v)
{
    switch (v) {
    case GUARD_ACCEPT: return "accepted";
    case GUARD_ACCEPT_RESET: return "daily reset";
    case GUARD_ACCEPT_CONTINUED: return "device reset carried over";
    case GUARD_ACCEPT_REBASE: return "new level accepted";
    case GUARD_ACCEPT_CONFIRMED: return "large rise confirmed";
    case GUARD_REJECT_ZERO: return "zero refused";
    case GUARD_REJECT_DECREASE: return "decrease refused";
    case GUARD_REJECT_SPIKE: return "implausible rise held back";
    }
    return "?";
}
