// SPDX-License-Identifier: MIT
// Harness shared by the simulator self-tests: runs a simulator as a child process and checks it.
//
// A self-test starts the simulator with its stdin and stdout on pipes (stdin is the control
// channel, stdout carries one event or answer per line) and its stderr in a temporary file that
// is shown when a check fails. Every failure ends the whole program: the child is killed, the
// reason printed as "FAIL <scenario>: ..." and the exit status is 1. The harness is independent
// of the daemon's sources on purpose, like the simulators themselves.
#ifndef E2M_TESTS_SIM_SELFTEST_CHILD_H
#define E2M_TESTS_SIM_SELFTEST_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// Longest line (including its terminator) read from a simulator or a socket; buffers passed as
// `out` below must hold this many bytes.
#define SELFTEST_LINE_MAX 16384

// Most lines a child keeps that no expectation has taken yet.
#define SELFTEST_BACKLOG_CAP 256

// Settings of the whole run. main() changes them before the first scenario starts.
struct selftest_config {
    const char *scenario;  // name in failure messages; selftest_run sets it
    const char *wrapper;   // command the simulator runs under, split at spaces, or NULL
    int slow;              // timeout multiplier for a slow wrapper (1 without one)
    int backlog_max;       // lines kept per child, at most SELFTEST_BACKLOG_CAP (default 64)
    bool backlog_strict;   // when full, true: a failure; false: the oldest line is dropped
    void (*cleanup)(void); // run by selftest_fail before exiting (e.g. to stop a broker), or NULL
};

extern struct selftest_config selftest;

// Reports a failure of the current scenario, kills the running child, prints its stderr, runs
// selftest.cleanup and exits with status 1.
void selftest_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

// Fails the scenario with the printf-style message when `cond` is false.
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            selftest_fail(__VA_ARGS__);                                                            \
        }                                                                                          \
    } while (0)

// Milliseconds of the monotonic clock.
int64_t now_ms(void);

// Sleeps `ms` milliseconds (nothing when ms <= 0), resuming after signals.
void sleep_ms(int64_t ms);

// Connects a TCP socket to 127.0.0.1:port. Returns the descriptor, or -1 with errno set.
int selftest_tcp_connect(int port);

// A private mosquitto for simulators that talk MQTT: started on a free loopback port with its
// configuration in a temporary directory; returns the port once it accepts connections, or
// fails the scenario. A NULL path is a usage error: a message and exit status 2.
int selftest_broker_start(const char *mosquitto);
// Stops the broker and removes its directory; nothing when none runs (fits selftest.cleanup).
void selftest_broker_stop(void);

// Lines arriving on a descriptor (a pipe or a socket), buffered until the newline.
struct line_stream {
    int fd;
    bool eof;  // the peer closed the stream (or reading failed); set by line_stream_read
    bool crlf; // drop a '\r' before the newline, for network protocols
    size_t len;
    char buf[SELFTEST_LINE_MAX];
};

// Copies the next line without its newline into `out` and returns `out`. Returns NULL when no
// complete line arrives within `timeout_ms` (not scaled by selftest.slow) or at end of stream.
char *line_stream_read(struct line_stream *s, int64_t timeout_ms, char *out);

// A running simulator. Lines on its stdout that a wait did not ask for go into a backlog, where
// later expectations find them.
struct child {
    pid_t pid;
    int in_fd; // the simulator's stdin, -1 after child_close_stdin
    struct line_stream out;
    char *backlog[SELFTEST_BACKLOG_CAP];
    int n_backlog;
    char errfile[64]; // file receiving the simulator's stderr
};

// Starts `sim` with the NULL-terminated `args` (under selftest.wrapper if set). Only one child
// runs at a time: it is the one selftest_fail kills.
void child_start(struct child *c, const char *sim, const char *const *args);

// Waits up to `timeout_ms` (scaled) for a line starting with `prefix` and copies it into `out`.
// The backlog is searched first; other lines that arrive meanwhile are added to it. Fails when
// no such line comes.
void child_expect(struct child *c, const char *prefix, int timeout_ms, char *out);

// True when a line starting with `prefix` is in the backlog or arrives within `timeout_ms` (not
// scaled). Every line read is added to the backlog, the matching one too.
bool child_saw(struct child *c, const char *prefix, int timeout_ms);

// Forgets the backlog and every line already written by the simulator.
void child_drain(struct child *c);

// Writes one printf-style line (the newline is added) to the simulator's stdin.
void child_send(struct child *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Sends a control command and waits (3 s, scaled) for its answer among the new lines: returns
// the text after "ok" or "ok " (valid until the next call), fails on a line starting with "err".
// Other lines go to the backlog.
const char *child_cmd(struct child *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Closes the simulator's stdin (end of file on its control channel).
void child_close_stdin(struct child *c);

// True when the simulator's stderr so far contains `text` on one line.
bool child_stderr_has(const struct child *c, const char *text);

// Ends the simulator with SIGTERM and requires that it exits with status 0 within 5 s (scaled).
// Its stderr file stays readable until child_release.
void child_terminate(struct child *c);

// Closes the pipes of a terminated child, frees its backlog and removes its stderr file.
void child_release(struct child *c);

// child_terminate, then child_release.
void child_stop(struct child *c);

// Starts `sim` with the `n_base` arguments in `base` followed by the NULL-terminated `extra`
// (or NULL), waits for its "ready port=N" line and returns N.
int child_start_port(struct child *c, const char *sim, const char *const *base, size_t n_base,
                     const char *const *extra);

// A TCP client of a simulator that receives binary frames.
struct selftest_conn {
    int fd;
    uint8_t buf[16384]; // received, not yet taken as a frame
    size_t len;
    unsigned skipped; // bytes that were not frames
};

// Connects to 127.0.0.1:port; fails the scenario when it cannot.
void selftest_conn_open(struct selftest_conn *k, int port);
void selftest_conn_close(struct selftest_conn *k);
// Sends all n bytes at once; fails the scenario when it cannot.
void selftest_conn_send(struct selftest_conn *k, const uint8_t *p, size_t n);
// Waits up to `ms` (scaled) for the next frame. parse(arg, buf, len) looks at the start of what
// has arrived and returns the length of a whole frame there (which it may copy or decode; it is
// taken off the buffer afterwards), minus the number of garbage bytes to skip, or 0 to wait for
// more. False on timeout or when the simulator closed the connection.
bool selftest_conn_next(struct selftest_conn *k, int ms,
                        long (*parse)(void *arg, const uint8_t *buf, size_t len), void *arg);

// One scenario of a self-test; `fn` gets the simulator's path and fails through CHECK.
struct selftest_scenario {
    const char *name;
    void (*fn)(const char *sim);
};

// Runs the `n` scenarios named in `names` in order, printing "PASS <name>" after each. Returns 0,
// or 2 after a message on stderr when a name is not in `list` (the ones before it have run).
int selftest_run(const char *sim, char *const *names, int n, const struct selftest_scenario *list,
                 size_t count);

#endif
