// SPDX-License-Identifier: MIT
// Integration test harness: a private mosquitto on a free loopback port, the Modbus
// simulator, the daemon (optionally under a wrapper such as valgrind), and an MQTT collector
// that records everything it sees so tests can wait for and assert on traffic.
#ifndef E2M_ITEST_H
#define E2M_ITEST_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct proc {
    pid_t pid;
    int in;        // write end of its stdin (-1 when closed)
    FILE *out;     // its stdout, line by line (NULL when sent to a file)
    char log[256]; // file receiving its stderr (and stdout when out is NULL)
};

// Starts argv[0] with stdin/stdout pipes; stderr goes to `log_path`. The child dies with the
// test process (PR_SET_PDEATHSIG), so a failed assertion never leaves processes behind.
void proc_start(struct proc *p, char *const argv[], const char *log_path, bool pipe_stdout);
// Reads stdout lines until one starts with `prefix` (copied into buf); false on timeout/EOF.
bool proc_read_line(struct proc *p, const char *prefix, char *buf, size_t n, int timeout_ms);
// Writes one line to its stdin.
void proc_send(struct proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Sends `sig` and waits up to timeout_ms; returns the exit status (or -1 on timeout, after
// which it is killed) as from waitpid's WEXITSTATUS, 128+signal when killed by a signal.
int proc_stop(struct proc *p, int sig, int timeout_ms);
// Whether `needle` appears in the process's log file.
bool proc_log_contains(const struct proc *p, const char *needle);
// Waits up to `ms` for `text` to appear in the process's log file, looking every 100 ms;
// whether it did.
bool proc_wait_log(const struct proc *p, const char *text, int ms);

// A temporary directory for this test (removed by itest_cleanup()).
const char *itest_dir(void);
void itest_cleanup(void);
// A TCP port on 127.0.0.1 that nothing listens on right now.
int itest_free_port(void);
// Path of a built artefact or a source file.
const char *itest_path(const char *build_or_source, const char *rel);

struct broker {
    struct proc p;
    int port;
    char conf[256];
};
void broker_start(struct broker *b, bool persistence);
// Starts mosquitto with a configuration written by the caller (printf-style); b->port must be
// a plain anonymous listener in it (the harness waits for that port).
void broker_start_conf(struct broker *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Runs a shell command in the test directory; returns its exit status.
int itest_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void broker_stop(struct broker *b);

// The Modbus simulator: `args` are extra arguments (e.g. "--profile sunspec"); fills ports.
struct sim {
    struct proc p;
    int ports[128];
    int n_ports;
    char rtu_path[512];
};
void sim_start(struct sim *s, const char *const *args);
// The same for another simulator binary (a path under the build directory).
void sim_start_bin(struct sim *s, const char *binary, const char *const *args);
// Sends a control command and waits for its "ok"/"err" answer (returned in buf).
bool sim_command(struct sim *s, char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Waits for a "write ..." line starting with `prefix` (e.g. "write 15020 holding 40126").
bool sim_wait_write(struct sim *s, const char *prefix, char *buf, size_t n, int timeout_ms);

// Writes a configuration file into the test directory and returns its path.
const char *itest_write_file(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Starts `energy2mqtt -v run -c config` (through $E2M_DAEMON_WRAPPER when set).
void daemon_start(struct proc *p, const char *config, const char *log_name);

// ---- MQTT collector -------------------------------------------------------------------------

struct msg {
    char *topic;
    char *payload;
    size_t len;
    bool retained;
    long long at_ms; // monotonic
};

struct collector;
struct collector *collector_new(int port, const char *filter);
void collector_free(struct collector *c);
void collector_publish(struct collector *c, const char *topic, const char *payload, bool retain);
// Messages seen so far (stable pointer until the next call); the count is returned.
size_t collector_count(struct collector *c);
// Forget everything seen so far.
void collector_clear(struct collector *c);
// Waits until a message on `topic` (exact, or '*' suffix for prefix match) arrives whose
// payload contains `needle` (NULL: any). Returns a malloc'd copy of the payload or NULL.
char *collector_wait(struct collector *c, const char *topic, const char *needle, int timeout_ms);
// The latest payload seen on `topic` (malloc'd) or NULL.
char *collector_last(struct collector *c, const char *topic);
// Number of messages seen on topics starting with `prefix`.
size_t collector_count_prefix(struct collector *c, const char *prefix);
// Writes "topic<TAB>payload" lines of every message seen (latest per topic) to `path`.
void collector_dump(struct collector *c, const char *path);
// Retained messages currently on the broker under `filter`: subscribes a fresh client for
// `wait_ms` and returns a collector holding what arrived (free it).
struct collector *collector_retained(int port, const char *filter, int wait_ms);

// Reads a number from a JSON object text: "key":<number>. NAN when absent or null.
double json_number_of(const char *json, const char *key);
// The string value of "key":"..." (malloc'd) or NULL.
char *json_string_of(const char *json, const char *key);

// A device's state: the latest payload on `topic`, a JSON object.
// The number under `key`; NAN when there is no payload, no such key or no number.
double itest_state_number(struct collector *c, const char *topic, const char *key);
// The string under `key` (malloc'd) or NULL.
char *itest_state_text(struct collector *c, const char *topic, const char *key);
// Waits up to `ms` for the latest payload's number under `key` to be within `tol` of `want`,
// looking every 100 ms.
bool itest_wait_number(struct collector *c, const char *topic, const char *key, double want,
                       double tol, int ms);
// Waits up to `ms` for a payload on `topic` holding "key":"want" (seen before the call counts,
// as for collector_wait()).
bool itest_wait_text(struct collector *c, const char *topic, const char *key, const char *want,
                     int ms);

long long itest_now_ms(void);
void itest_sleep_ms(int ms);

// Runs ha_validate (with --require-published when asked) over a capture file; returns its
// exit status with its output in `out`.
int itest_validate(const char *capture, bool require_published, char *out, size_t n);
// Dumps everything `c` saw and fails the test unless ha_validate --require-published accepts
// it: every discovery message valid, every topic it references published.
void itest_assert_discovery_valid(struct collector *c);

// A test program's main: runs the named cases (all of them when no name is given on the
// command line, e.g. for the valgrind runs) in one test case; returns the exit status.
struct itest_case {
    const char *name;
    const TTest *test;
};
int itest_main(const char *suite, const struct itest_case *cases, size_t n, int timeout_s, int argc,
               char **argv);

#endif
