// SPDX-License-Identifier: MIT
// Per-device request scheduler: decides when the next exchange with a device may start and
// what it is. Pure logic: no I/O, no clock reads (time is passed in), so a day of traffic can
// be simulated in milliseconds.
//
// The rules it keeps (DESIGN §7):
//  - one exchange in flight; at least `min_gap_ms` from the end of one to the start of the next;
//  - no exchange starts inside a quiet window, nor so close before one that its reply timeout
//    would reach into it (windows repeat on the local wall clock);
//  - read-backs first, then polls the driver asked for first, then writes, then polls;
//    writes to one target coalesce (newest wins) and respect a per-target minimum interval;
//    a write that succeeded is read back next;
//  - failures back off exponentially with jitter between a floor and a ceiling; missed poll
//    cycles are skipped, never caught up in a burst;
//  - the device is ONLINE after a good exchange, OFFLINE after `offline_after` failures in a
//    row or when nothing good happened for `stale_after_ms`. When the driver says the device
//    sleeps (a solar inverter at night), it keeps its state for a grace period (until the
//    data would be stale anyway) and is then SLEEPING: probed every `sleep_interval_ms`,
//    failures then are expected, not errors.
#ifndef E2M_SCHED_H
#define E2M_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// A quiet window repeating every `period_ms` of local wall-clock time, starting `start_ms`
// into each period and lasting `length_ms` (e.g. every 5 min from 4:50 for 30 s).
struct sched_window {
    int64_t period_ms;
    int64_t start_ms;
    int64_t length_ms;
};

struct sched_config {
    int64_t min_gap_ms;
    int64_t reply_timeout_ms; // upper bound of one exchange (quiet-window look-ahead)
    int64_t backoff_min_ms;
    int64_t backoff_max_ms;
    uint32_t offline_after;    // consecutive failures before OFFLINE (>= 1)
    int64_t stale_after_ms;    // OFFLINE when no good exchange for this long (0 = never)
    int64_t write_interval_ms; // minimum time between write starts to one target
    int64_t write_expiry_ms;   // a write not started within this is dropped (0 = never)
    uint32_t write_retries;    // failed attempts after the first before a write is dropped
    int64_t sleep_interval_ms;
    const struct sched_window *windows;
    size_t n_windows;
    const int64_t *group_interval_ms; // poll interval per read group
    size_t n_groups;
};

// Both clocks, read once by the caller: monotonic for intervals, local wall clock (UTC plus
// the zone offset) for quiet windows.
struct sched_time {
    int64_t mono_ms;
    int64_t wall_ms;
};

enum sched_job_kind { SCHED_JOB_POLL = 1, SCHED_JOB_WRITE };

struct sched_job {
    enum sched_job_kind kind;
    uint32_t group;  // POLL: the read group
    uint32_t target; // WRITE: the target (an entity index for the caller)
    bool readback;   // POLL: this poll confirms a write
};

enum sched_result {
    SCHED_RESULT_OK,
    SCHED_RESULT_FAIL,
    SCHED_RESULT_SLEEPING,
    SCHED_RESULT_BUSY,    // the device answered but could not take it now: a write is retried
                          // (without using up its retries), the device counts as there
    SCHED_RESULT_SKIPPED, // nothing was sent: the gap does not restart, the state is unchanged
};

enum sched_state {
    SCHED_STATE_STARTING,
    SCHED_STATE_ONLINE,
    SCHED_STATE_OFFLINE,
    SCHED_STATE_SLEEPING
};

enum sched_drop { SCHED_DROP_EXPIRED = 1, SCHED_DROP_FAILED };

struct sched;

// Checks a configuration; returns NULL or a reason it cannot work (e.g. a quiet window longer
// than its period, or a reply timeout that leaves no room between windows).
const char *sched_config_check(const struct sched_config *cfg);

// `cfg` (and the arrays it points to) must outlive the scheduler. `seed` drives the jitter.
struct sched *sched_new(const struct sched_config *cfg, uint64_t seed, struct sched_time now);
void sched_free(struct sched *s);

// Queues a write to `target`, or refreshes the pending one (the caller keeps the newest value;
// the scheduler only decides when). `readback_group` is the group to poll after the write
// succeeds, or -1. `interval_ms` is the least time between two writes to this target (< 0:
// the configuration's write_interval_ms).
void sched_write(struct sched *s, struct sched_time now, uint32_t target, int readback_group,
                 int64_t interval_ms);

// Polls `group` before any write or other poll (after a pending read-back), once the gap
// allows; kept until a poll of it succeeds (or is skipped).
void sched_poll_first(struct sched *s, uint32_t group);

// When an exchange may start now, fills *job, marks it in flight and returns now.mono_ms.
// Otherwise returns the monotonic time to ask again (INT64_MAX: only an event can change
// anything, e.g. the job in flight finishing or a write being queued).
int64_t sched_next(struct sched *s, struct sched_time now, struct sched_job *job);

// Evidence the device is there outside an exchange (data it pushed on its own): like a good
// exchange for the state (ONLINE, failures reset, staleness restarts), without touching the
// gap or the job in flight.
void sched_alive(struct sched *s, struct sched_time now);

// Ends the exchange in flight. A failed write is retried up to write_retries times.
void sched_done(struct sched *s, struct sched_time now, enum sched_result result);

// Pops a write the scheduler gave up on (expired or out of retries); false when none.
bool sched_take_dropped(struct sched *s, uint32_t *target, enum sched_drop *why);

enum sched_state sched_state(const struct sched *s);
const char *sched_state_name(enum sched_state state);

// A snapshot for diagnostics (status page, metrics).
struct sched_status {
    enum sched_state state;
    bool in_flight;
    bool in_quiet_window;
    int64_t guard_remaining_ms; // until the gap/backoff allows the next start
    size_t pending_writes;
    uint32_t failures;       // consecutive
    int64_t last_ok_mono_ms; // 0 = never
    uint64_t guard_waits;    // exchanges that started late because of the gap, a backoff or a
                             // quiet window (not because nothing was due)
};
void sched_status(const struct sched *s, struct sched_time now, struct sched_status *out);

#endif
