// SPDX-License-Identifier: MIT
// The counter guard: decides whether a new reading of an energy counter may be published.
//
// Home Assistant treats any drop of a total_increasing sensor as a meter reset and adds the
// whole next value again, so one glitch (a 0 from a device that just woke up, a dropped digit,
// a garbage frame) becomes a spike in the Energy dashboard that users then fix by hand. The
// guard keeps a high-water mark per counter (persisted across restarts by the caller) and:
//  - refuses a 0 or any decrease of a lifetime counter;
//  - lets a daily counter fall back to near zero (its midnight reset) but nothing else;
//  - carries a continuous counter across the device's own resets (a "reset energy" button):
//    once a near-zero reading has held for GUARD_CONFIRM more readings, the total so far
//    becomes an offset added to every later reading, so the published total keeps rising;
//  - with a max_rate, holds back a rise faster than physically possible until GUARD_CONFIRM
//    more readings confirm it;
//  - accepts a lasting lower level (a replaced meter) after GUARD_REBASE_AFTER consistent
//    readings (a continuous counter continues from its total instead of dropping).
#ifndef E2M_GUARD_H
#define E2M_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/model.h"

enum { GUARD_CONFIRM = 2, GUARD_REBASE_AFTER = 30 };

struct guard {
    double mark;     // last accepted total (the high-water mark of a lifetime counter)
    int64_t mark_ms; // wall clock when it was accepted
    double offset;   // continuous counters: added to every reading
    bool has_mark;
    double pending; // an implausible rise waiting for confirmation
    uint8_t confirmations;
    double low; // readings below the mark, waiting to be trusted
    uint16_t low_count;
};

enum guard_verdict {
    GUARD_ACCEPT,
    GUARD_ACCEPT_RESET,     // a daily counter's reset
    GUARD_ACCEPT_CONTINUED, // a continuous counter's device reset, carried by the offset
    GUARD_ACCEPT_REBASE,    // a new, lower level has held long enough
    GUARD_ACCEPT_CONFIRMED, // a big rise seen often enough to be real
    GUARD_REJECT_ZERO,
    GUARD_REJECT_DECREASE,
    GUARD_REJECT_SPIKE,
};

// Checks `value` (the reading, in the entity's unit) read at wall time `now_ms`. When
// accepted, updates the guard and sets *out to the value to publish (the reading plus the
// offset of a continuous counter). `noise` is the band around the mark that counts as
// "unchanged" (one published step: a reading rounded to the published precision may sit just
// below a mark stored with more digits).
enum guard_verdict guard_check(struct guard *g, enum counter_kind kind, double max_rate_per_hour,
                               double noise, double value, int64_t now_ms, double *out);
static inline bool guard_accepted(enum guard_verdict v)
{
    return v <= GUARD_ACCEPT_CONFIRMED;
}
const char *guard_verdict_name(enum guard_verdict v);

#endif
