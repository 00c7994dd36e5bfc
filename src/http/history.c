// SPDX-License-Identifier: MIT
// Per-minute power averages over the last hour.
#include "http/history.h"

#include <math.h>

void history_init(struct history *h)
{
    for (size_t i = 0; i < HISTORY_MINUTES; i++)
        h->slot[i] = NAN;
    h->minute = 0;
    h->sum = 0;
    h->count = 0;
}

static size_t slot_of(int64_t minute)
{
    return (size_t)(minute % HISTORY_MINUTES);
}

void history_add(struct history *h, int64_t wall_ms, double value)
{
    if (!isfinite(value) || wall_ms < 0)
        return;
    int64_t m = wall_ms / 60000;
    if (h->count && m < h->minute)
        return;
    if (h->count && m != h->minute) {
        h->slot[slot_of(h->minute)] = (float)(h->sum / h->count);
        // The minutes in between had no value.
        for (int64_t k = h->minute + 1; k < m && k <= h->minute + HISTORY_MINUTES; k++)
            h->slot[slot_of(k)] = NAN;
        h->sum = 0;
        h->count = 0;
    }
    if (!h->count)
        h->slot[slot_of(m)] = NAN;
    h->minute = m;
    h->sum += value;
    h->count++;
}

int64_t history_get(const struct history *h, int64_t now_ms, double out[HISTORY_MINUTES])
{
    int64_t now = now_ms / 60000, first = now - (HISTORY_MINUTES - 1);
    for (int64_t m = first; m <= now; m++) {
        double v = NAN;
        if (h->count && m == h->minute)
            v = h->sum / h->count;
        else if (h->count && m < h->minute && m > h->minute - HISTORY_MINUTES)
            v = h->slot[slot_of(m)];
        out[m - first] = v;
    }
    return first;
}
