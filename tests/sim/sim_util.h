// SPDX-License-Identifier: MIT
// What every simulator process needs: lines for the test harness, clocks, and SIGTERM/SIGINT
// turned into a readable descriptor so the poll loop can end cleanly.
#ifndef E2M_SIM_UTIL_H
#define E2M_SIM_UTIL_H

#include <stdint.h>

// One line on stdout, flushed at once: the harness reads the simulator's replies line by line.
void sim_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int64_t sim_mono_ms(void); // CLOCK_MONOTONIC
int64_t sim_mono_us(void); // CLOCK_MONOTONIC in microseconds (`served` and `--timestamps`)
int64_t sim_wall_ms(void); // Unix time
// Sleeps the whole time, across interrupting signals.
void sim_sleep_ms(int64_t ms);

// Makes `fd` non-blocking and close-on-exec. Returns 0 or -1 (errno set).
int sim_nonblock_cloexec(int fd);

// Ignores SIGPIPE and makes SIGTERM and SIGINT write a byte to a pipe; returns the pipe's
// read end (poll it; readable means stop) or -1. sim_signals_close() closes the pipe.
int sim_signals_open(void);
void sim_signals_close(void);

#endif
