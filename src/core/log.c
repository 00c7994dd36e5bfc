// SPDX-License-Identifier: MIT
// Logging to stderr (or a test sink), serialised across threads.
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level current_level = LOG_LVL_INFO;
static log_sink_fn sink;
static void *sink_arg;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

int log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"error", LOG_LVL_ERROR}, {"warning", LOG_LVL_WARN}, {"warn", LOG_LVL_WARN},
        {"info", LOG_LVL_INFO},   {"debug", LOG_LVL_DEBUG},  {"trace", LOG_LVL_TRACE},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return (int)names[i].level;
    return -1;
}

bool log_enabled(enum log_level level)
{
    return level <= current_level;
}

void log_set_sink(log_sink_fn fn, void *arg)
{
    pthread_mutex_lock(&log_lock);
    sink = fn;
    sink_arg = arg;
    pthread_mutex_unlock(&log_lock);
}

__attribute__((format(printf, 3, 0))) static void log_vmsg(enum log_level level, const char *who,
                                                           const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s [%s] ", level_names[level], who ? who : "-");
    if (n < 0)
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);

    pthread_mutex_lock(&log_lock);
    if (sink) {
        sink(level, line, sink_arg);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        fprintf(stderr, "%02d:%02d:%02d.%03ld %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000L, line);
    }
    pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *who, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, who, fmt, ap);
    va_end(ap);
}

enum { LIMIT_FIRST_MS = 60 * 1000, LIMIT_MAX_MS = 60 * 60 * 1000 };

void log_limited(struct log_limit *lim, int64_t now_ms, enum log_level level, const char *who,
                 const char *fmt, ...)
{
    if (lim->interval_ms && now_ms < lim->next_ms) {
        lim->suppressed++;
        return;
    }
    if (!log_enabled(level))
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (lim->suppressed)
        log_msg(level, who, "%s (%u similar suppressed)", msg, lim->suppressed);
    else
        log_msg(level, who, "%s", msg);
    lim->suppressed = 0;
    lim->interval_ms = lim->interval_ms ? lim->interval_ms * 2 : LIMIT_FIRST_MS;
    if (lim->interval_ms > LIMIT_MAX_MS)
        lim->interval_ms = LIMIT_MAX_MS;
    lim->next_ms = now_ms + lim->interval_ms;
}

void log_release(struct log_limit *lim, const char *who, const char *fmt, ...)
{
    if (!lim->interval_ms)
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg(LOG_LVL_INFO, who, "%s", msg);
    *lim = (struct log_limit){0};
}

void log_budgeted(struct log_budget *b, int64_t now_ms, enum log_level level, const char *who,
                  const char *fmt, ...)
{
    if (b->last_ms == 0)
        b->tokens = b->burst;
    else
        b->tokens += (double)(now_ms - b->last_ms) / 1000.0 * b->per_second;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last_ms = now_ms;
    if (b->tokens < 1) {
        b->suppressed++;
        return;
    }
    b->tokens -= 1;
    if (!log_enabled(level))
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (b->suppressed)
        log_msg(level, who, "%s (%u more not logged)", msg, b->suppressed);
    else
        log_msg(level, who, "%s", msg);
    b->suppressed = 0;
}
