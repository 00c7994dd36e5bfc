// SPDX-License-Identifier: MIT
// Levelled logging with a per-device prefix and rate limiting for repeated failures.
#ifndef E2M_LOG_H
#define E2M_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG, LOG_LVL_TRACE };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
// Parses "error", "warning"/"warn", "info", "debug", "trace"; returns -1 when unknown.
int log_level_parse(const char *name);
bool log_enabled(enum log_level level);

// A sink receives every formatted line (without newline). NULL restores stderr. Tests use this
// to assert that a refusal was logged with its reason.
typedef void (*log_sink_fn)(enum log_level level, const char *line, void *arg);
void log_set_sink(log_sink_fn fn, void *arg);

// `who` is the module or device name shown in brackets. Never pass a secret.
void log_msg(enum log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(who, ...) log_msg(LOG_LVL_ERROR, who, __VA_ARGS__)
#define log_warn(who, ...)  log_msg(LOG_LVL_WARN, who, __VA_ARGS__)
#define log_info(who, ...)  log_msg(LOG_LVL_INFO, who, __VA_ARGS__)
#define log_debug(who, ...)                                                                        \
    do {                                                                                           \
        if (log_enabled(LOG_LVL_DEBUG))                                                            \
            log_msg(LOG_LVL_DEBUG, who, __VA_ARGS__);                                              \
    } while (0)

// Complain/release for failures that repeat: the first occurrence is logged, then the same
// failure is logged again only after an interval that doubles up to an hour, with a count of
// what was suppressed. log_release() logs once when the condition clears.
struct log_limit {
    int64_t next_ms;      // monotonic time before which repeats are suppressed
    uint32_t interval_ms; // current interval; 0 = not complaining
    uint32_t suppressed;
};

void log_limited(struct log_limit *lim, int64_t now_ms, enum log_level level, const char *who,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void log_release(struct log_limit *lim, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// A budget for messages caused from outside (refused commands): up to `burst` lines at once,
// refilled at `per_second`; beyond that they are counted and the count is reported with the
// next line that fits. Zero-initialise, then set burst and per_second.
struct log_budget {
    double burst, per_second;
    double tokens;
    int64_t last_ms;
    uint32_t suppressed;
};

void log_budgeted(struct log_budget *b, int64_t now_ms, enum log_level level, const char *who,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
