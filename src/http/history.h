// SPDX-License-Identifier: MIT
// A device's power over the last hour for the status page's chart: one average per minute.
//
// 60 floats and a running sum per device (under 300 bytes), filled from the values the daemon
// publishes anyway; minutes without a value stay empty instead of being interpolated.
#ifndef E2M_HISTORY_H
#define E2M_HISTORY_H

#include <stddef.h>
#include <stdint.h>

enum { HISTORY_MINUTES = 60 };

struct history {
    float slot[HISTORY_MINUTES]; // average of minute m at slot[m % 60]; NaN = no value
    int64_t minute;              // the minute being accumulated (Unix minutes), 0 = none yet
    double sum;
    uint32_t count;
};

void history_init(struct history *h);
// Adds a reading taken at wall time `wall_ms`. A reading older than the current minute is
// ignored (the wall clock stepped back).
void history_add(struct history *h, int64_t wall_ms, double value);
// The averages of the HISTORY_MINUTES minutes up to and including the one holding `now_ms`,
// oldest first; NaN where there was no value. Returns the Unix minute of the first.
int64_t history_get(const struct history *h, int64_t now_ms, double out[HISTORY_MINUTES]);

#endif
