// SPDX-License-Identifier: MIT
// Line output, clocks and the signal pipe shared by the simulators (see sim_util.h).
#include "sim_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int sig_pipe[2] = {-1, -1};

void sim_out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sim_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t sim_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sim_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

void sim_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int sim_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(sig_pipe[1], &b, 1) < 0) {
        // The pipe is full, so a wake-up is pending anyway.
    }
    errno = saved;
}

int sim_signals_open(void)
{
    if (pipe(sig_pipe) < 0)
        return -1;
    if (sim_nonblock_cloexec(sig_pipe[0]) < 0 || sim_nonblock_cloexec(sig_pipe[1]) < 0) {
        sim_signals_close();
        return -1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
        sim_signals_close();
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    return sig_pipe[0];
}

void sim_signals_close(void)
{
    for (int i = 0; i < 2; i++) {
        if (sig_pipe[i] >= 0)
            close(sig_pipe[i]);
        sig_pipe[i] = -1;
    }
}
