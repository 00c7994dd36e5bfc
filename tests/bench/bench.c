// SPDX-License-Identifier: MIT
// e2m-bench: the fleet benchmark; measures the daemon from outside with simulated devices.
//
// It starts a private mosquitto, the device simulators and `energy2mqtt run` as separate
// processes, subscribes to everything the daemon publishes and timestamps each message on
// arrival (CLOCK_MONOTONIC, the clock the simulators stamp their `served` and `write` lines
// with, so latencies across processes need no clock translation). CPU time and memory come
// from /proc/<pid> of the daemon. It deliberately links nothing of the daemon: what is measured
// is what a broker and Home Assistant would see.
//
// usage: e2m-bench [--build DIR] [--scenario small|fleet|burst|all] [--seconds N] [--smoke]
#define _GNU_SOURCE

#include <MQTTClient.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef E2M_BINARY_DIR
#define E2M_BINARY_DIR "build"
#endif
#ifndef E2M_BENCH_MOSQUITTO_PATH
#define E2M_BENCH_MOSQUITTO_PATH ""
#endif

#define BASE_TOPIC      "bench"
#define MAX_CHILDREN    256
#define PROBE_PERIOD_US 300000 // one freshness probe and one command every 0.3 s
#define POLL_S          5      // poll interval of the Modbus devices and the meters
#define SMOKE_BUDGET_S  20

// The drivers, one device model each. The id of a device is its kind's letter and its index.
enum kind { KIND_SDM, KIND_SUNSPEC, KIND_PM, KIND_HM, KIND_VENUS, KIND_LUX, KIND_COUNT };

static const char kind_letter[KIND_COUNT] = {'m', 's', 'p', 'h', 'v', 'l'};
static const char *const kind_name[KIND_COUNT] = {"sdm630",      "sunspec", "powermeter",
                                                  "hms-800w-2t", "venus",   "luxpower"};

// One measurement in flight on a device: a freshness probe (SDM630: `set` + `mark`, then the
// `served` line and the first state carrying the value) or a command (SunSpec: publish, then
// the simulator's `write` line). Times are CLOCK_MONOTONIC microseconds, 0 = not yet.
struct probe {
    bool active;
    double value;
    int64_t sent_us;
    int64_t served_us;
    int64_t done_us;
};

struct device {
    char id[16];
    enum kind kind;
    int index; // within its kind (= the Modbus simulator's device index)
    int port;
    int64_t disc_at;     // first discovery config
    int64_t online_at;   // first `online` availability
    int64_t burst_disc;  // first discovery config after the burst started
    int64_t burst_state; // first state after the burst started
    unsigned probes;     // probes or commands started on it
    struct probe probe;
};

// A Modbus simulator process: its control channel and the thread reading its stdout.
struct msim {
    pid_t pid;
    int in;
    FILE *out;
    pthread_t reader;
    bool reading;
    enum kind kind;
};

// Latency samples in microseconds.
struct samples {
    int64_t *v;
    size_t n, cap;
    long lost;
};

// What a scenario run does.
struct plan {
    const char *name;
    int count[KIND_COUNT];
    int window_s;    // measurement window; 0 = none (burst only)
    bool burst;      // measure the re-publish after Home Assistant's birth message
    bool smoke;      // fit everything into SMOKE_BUDGET_S
    int sdm_tick_ms; // evolution step of the SDM630 fleet (coarser = less simulator CPU)
};

struct results {
    int total; // devices
    int disc_seen, online_seen;
    double discovery_s; // NAN = not measured
    double online_s;
    double window_s;     // as run
    double cpu_idle_pct; // first half of the window: no commands
    double cpu_pct;      // whole window
    double cpu_per_poll_us;
    long polls;
    double hwm_mib, rss_mib, anon_mib;
    struct samples fresh, cmd;
    double msgs_per_s;
    bool burst_run;
    int burst_seen;
    double burst_s;
};

static struct {
    // Options.
    char build[1024];
    char mosquitto[1024];
    // The run.
    char tmp[256];
    pthread_mutex_t lock;
    struct device *devs;
    int n_devs;
    int first[KIND_COUNT], count[KIND_COUNT];
    struct device bridge; // only disc_at and burst_disc are used
    pid_t children[MAX_CHILDREN];
    int n_children;
    pid_t daemon;
    int64_t daemon_start;
    int broker_port;
    struct msim msim[KIND_COUNT];
    MQTTClient sub, pub;
    bool sub_made, pub_made;
    bool in_window;
    long win_msgs, win_states;
    int64_t burst_t0;
    long sim_errors;
    volatile sig_atomic_t stop;
} bench = {.lock = PTHREAD_MUTEX_INITIALIZER, .daemon = -1};

// ---- Small helpers ----------------------------------------------------------------------

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    if (us <= 0) {
        return;
    }
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench.stop) {
    }
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("e2m-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void *xcalloc_or_die(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        say("out of memory");
        exit(1);
    }
    return p;
}

static void samples_add(struct samples *s, int64_t v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        int64_t *n = realloc(s->v, cap * sizeof(*n));
        if (!n) {
            return;
        }
        s->v = n;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

// Nearest-rank percentile of sorted samples, in milliseconds.
static double percentile_ms(const struct samples *s, double p)
{
    if (s->n == 0) {
        return NAN;
    }
    size_t rank = (size_t)ceil(p / 100.0 * (double)s->n);
    if (rank < 1) {
        rank = 1;
    }
    return (double)s->v[rank - 1] / 1000.0;
}

// ---- Child processes --------------------------------------------------------------------

// Starts argv[0] with the given stdin, stdout and stderr (-1: /dev/null). The child gets its
// own process group, so a Ctrl-C reaches only the benchmark, which then stops everything in
// order; PR_SET_PDEATHSIG kills it when the benchmark dies without doing so. Returns the pid,
// or -1 with errno set when the program could not be started.
static pid_t spawn(char *const argv[], int in_fd, int out_fd, int err_fd)
{
    int ep[2];
    if (bench.n_children == MAX_CHILDREN || pipe2(ep, O_CLOEXEC) < 0) {
        errno = EMFILE;
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(ep[0]);
        close(ep[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        int null = open("/dev/null", O_RDWR);
        dup2(in_fd >= 0 ? in_fd : null, 0);
        dup2(out_fd >= 0 ? out_fd : null, 1);
        dup2(err_fd >= 0 ? err_fd : null, 2);
        // Nothing else is inherited: not the other simulators' pipes, not paho's sockets.
        // The exec-status pipe closes itself at exec.
        close_range(3, (unsigned)ep[1] - 1, 0);
        close_range((unsigned)ep[1] + 1, ~0U, 0);
        execv(argv[0], argv);
        int e = errno;
        if (write(ep[1], &e, sizeof(e)) < 0) {
            // The parent then sees a successful start and a child that exits at once.
        }
        _exit(127);
    }
    close(ep[1]);
    int e = 0;
    ssize_t r;
    while ((r = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR) {
    }
    close(ep[0]);
    if (r > 0) {
        waitpid(pid, NULL, 0);
        errno = e;
        return -1;
    }
    bench.children[bench.n_children++] = pid;
    return pid;
}

static void forget_child(pid_t pid)
{
    for (int i = 0; i < bench.n_children; i++) {
        if (bench.children[i] == pid) {
            bench.children[i] = bench.children[--bench.n_children];
            return;
        }
    }
}

// SIGTERM, then SIGKILL after `timeout_ms`; reaps it. Returns its wait status or -1.
static int child_stop(pid_t pid, int timeout_ms)
{
    if (pid <= 0) {
        return -1;
    }
    int status = -1;
    kill(pid, SIGTERM);
    int64_t end = mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            break;
        }
        if (mono_us() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        sleep_us(10000);
    }
    forget_child(pid);
    return status;
}

// Every child still running: SIGTERM to all at once, then SIGKILL after `timeout_ms`.
static void children_stop_all(int timeout_ms)
{
    for (int i = 0; i < bench.n_children; i++) {
        kill(bench.children[i], SIGTERM);
    }
    int64_t end = mono_us() + (int64_t)timeout_ms * 1000;
    while (bench.n_children > 0) {
        for (int i = 0; i < bench.n_children;) {
            pid_t r = waitpid(bench.children[i], NULL, WNOHANG);
            if (r == bench.children[i] || (r < 0 && errno == ECHILD)) {
                bench.children[i] = bench.children[--bench.n_children];
            } else {
                i++;
            }
        }
        if (bench.n_children == 0) {
            break;
        }
        if (mono_us() > end) {
            for (int i = 0; i < bench.n_children; i++) {
                kill(bench.children[i], SIGKILL);
                waitpid(bench.children[i], NULL, 0);
            }
            bench.n_children = 0;
            break;
        }
        sleep_us(10000);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (remove(path) < 0) {
        say("cannot remove %s: %s", path, strerror(errno));
    }
    return 0;
}

static void tmp_remove(void)
{
    if (!bench.tmp[0]) {
        return;
    }
    if (getenv("E2M_KEEP_BENCH_DIR")) {
        say("kept %s", bench.tmp);
    } else {
        nftw(bench.tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    bench.tmp[0] = '\0';
}

// Last resort on any exit path: nothing keeps running, nothing stays in /tmp.
static void at_exit_cleanup(void)
{
    children_stop_all(2000);
    tmp_remove();
}

static void on_signal(int sig)
{
    bench.stop = 1;
}

static int open_log(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", bench.tmp, name);
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

// Waits for a line starting with "ready" in a simulator's output file; returns the first
// number after "ready tcp " or "ready port=", or -1.
static int wait_ready_file(const char *name, int timeout_ms)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", bench.tmp, name);
    int64_t end = mono_us() + (int64_t)timeout_ms * 1000;
    while (mono_us() < end && !bench.stop) {
        FILE *f = fopen(path, "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f)) {
            if (strncmp(line, "ready tcp ", 10) == 0 || strncmp(line, "ready port=", 11) == 0) {
                fclose(f);
                return atoi(line + (line[6] == 't' ? 10 : 11));
            }
            if (strncmp(line, "ready mqtt ", 11) == 0) { // on the broker: no port of its own
                fclose(f);
                return 0;
            }
        }
        if (f) {
            fclose(f);
        }
        sleep_us(20000);
    }
    return -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

// Copies the last `lines` lines of a log in the run directory to stderr (the directory is
// removed at the end of the run).
static void log_tail(const char *name, int lines)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", bench.tmp, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    char ring[20][512];
    int n = 0;
    lines = lines > 20 ? 20 : lines;
    while (fgets(ring[n % lines], sizeof(ring[0]), f)) {
        n++;
    }
    fclose(f);
    for (int i = n > lines ? n - lines : 0; i < n; i++) {
        fprintf(stderr, "  | %s", ring[i % lines]);
    }
}

static bool daemon_alive(void)
{
    if (bench.daemon <= 0) {
        return false;
    }
    int status;
    pid_t r = waitpid(bench.daemon, &status, WNOHANG);
    if (r == bench.daemon) {
        say("the daemon exited (status %d); the end of its log:", status);
        log_tail("daemon.log", 20);
        forget_child(bench.daemon);
        bench.daemon = -1;
        return false;
    }
    return true;
}

// ---- Devices ----------------------------------------------------------------------------

// The device with this id ("m0042"), or the bridge for "bridge", or NULL.
static struct device *device_find(const char *id, size_t len)
{
    if (len == 6 && memcmp(id, "bridge", 6) == 0) {
        return &bench.bridge;
    }
    if (len < 2 || len > 8) {
        return NULL;
    }
    int k = 0;
    while (k < KIND_COUNT && kind_letter[k] != id[0]) {
        k++;
    }
    if (k == KIND_COUNT) {
        return NULL;
    }
    int i = 0;
    for (size_t c = 1; c < len; c++) {
        if (id[c] < '0' || id[c] > '9') {
            return NULL;
        }
        i = i * 10 + (id[c] - '0');
    }
    if (i >= bench.count[k]) {
        return NULL;
    }
    struct device *d = &bench.devs[bench.first[k] + i];
    return strlen(d->id) == len && memcmp(d->id, id, len) == 0 ? d : NULL;
}

static void devices_make(const struct plan *p)
{
    bench.n_devs = 0;
    for (int k = 0; k < KIND_COUNT; k++) {
        bench.first[k] = bench.n_devs;
        bench.count[k] = p->count[k];
        bench.n_devs += p->count[k];
    }
    bench.devs = xcalloc_or_die((size_t)bench.n_devs, sizeof(*bench.devs));
    for (int k = 0; k < KIND_COUNT; k++) {
        int digits = p->count[k] > 100 ? 4 : 2;
        for (int i = 0; i < p->count[k]; i++) {
            struct device *d = &bench.devs[bench.first[k] + i];
            d->kind = k;
            d->index = i;
            snprintf(d->id, sizeof(d->id), "%c%0*d", kind_letter[k], digits, i);
        }
    }
    memset(&bench.bridge, 0, sizeof(bench.bridge));
    snprintf(bench.bridge.id, sizeof(bench.bridge.id), "bridge");
}

// ---- MQTT subscriber --------------------------------------------------------------------

// The l1_voltage of an SDM630 state message, or NAN.
static double state_l1_voltage(const void *payload, size_t len)
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    json_t *v = json_object_get(o, "l1_voltage");
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(o);
    return d;
}

// Called on paho's thread for every message, with its arrival time.
static void message_seen(const char *topic, size_t tlen, const void *payload, size_t plen,
                         int64_t now)
{
    static const char disc[] = "homeassistant/device/" BASE_TOPIC "_";
    static const char base[] = BASE_TOPIC "/";
    const size_t dl = sizeof(disc) - 1, bl = sizeof(base) - 1;

    pthread_mutex_lock(&bench.lock);
    if (tlen > dl + 7 && memcmp(topic, disc, dl) == 0 &&
        memcmp(topic + tlen - 7, "/config", 7) == 0) {
        struct device *d = device_find(topic + dl, tlen - dl - 7);
        if (d && plen > 0) {
            if (!d->disc_at) {
                d->disc_at = now;
            }
            if (bench.burst_t0 && !d->burst_disc) {
                d->burst_disc = now;
            }
        }
        bench.win_msgs += bench.in_window;
    } else if (tlen > 14 && memcmp(topic, "homeassistant/", 14) == 0) {
        // The birth message is the benchmark's own.
        bench.win_msgs += bench.in_window && strncmp(topic, "homeassistant/status", tlen) != 0;
    } else if (tlen > bl && memcmp(topic, base, bl) == 0) {
        const char *id = topic + bl;
        const char *slash = memchr(id, '/', tlen - bl);
        const char *leaf = slash ? slash + 1 : NULL;
        size_t leaf_len = slash ? (size_t)(topic + tlen - leaf) : 0;
        if (leaf_len >= 4 && memcmp(leaf + leaf_len - 4, "/set", 4) == 0) {
            // A command the benchmark published.
        } else {
            bench.win_msgs += bench.in_window;
            struct device *d = slash ? device_find(id, (size_t)(slash - id)) : NULL;
            if (d && d != &bench.bridge && leaf_len == 5 && memcmp(leaf, "state", 5) == 0) {
                bench.win_states += bench.in_window;
                if (bench.burst_t0 && !d->burst_state) {
                    d->burst_state = now;
                }
                struct probe *pr = &d->probe;
                if (d->kind == KIND_SDM && pr->active && !pr->done_us && now >= pr->sent_us &&
                    fabs(state_l1_voltage(payload, plen) - pr->value) < 0.05) {
                    pr->done_us = now;
                }
            } else if (d && leaf_len == 12 && memcmp(leaf, "availability", 12) == 0 && plen == 6 &&
                       memcmp(payload, "online", 6) == 0 && !d->online_at) {
                d->online_at = now;
            }
        }
    }
    pthread_mutex_unlock(&bench.lock);
}

static int on_message(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
    int64_t now = mono_us();
    size_t len = tlen > 0 ? (size_t)tlen : strlen(topic);
    message_seen(topic, len, m->payload, m->payloadlen > 0 ? (size_t)m->payloadlen : 0, now);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

static void on_connection_lost(void *ctx, char *cause)
{
    say("the subscriber lost its connection (%s): figures after this point are incomplete",
        cause ? cause : "?");
}

// Creates and connects a client; *made says whether it must be destroyed.
static int mqtt_connect(MQTTClient *c, bool *made, const char *role, bool subscribe)
{
    char uri[64], id[64];
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", bench.broker_port);
    snprintf(id, sizeof(id), "e2m-bench-%s-%d", role, (int)getpid());
    if (MQTTClient_create(c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTCLIENT_SUCCESS) {
        return -1;
    }
    *made = true;
    if (subscribe) {
        MQTTClient_setCallbacks(*c, NULL, on_connection_lost, on_message, NULL);
    }
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.cleansession = 1;
    o.keepAliveInterval = 60;
    if (MQTTClient_connect(*c, &o) != MQTTCLIENT_SUCCESS) {
        return -1;
    }
    if (subscribe) {
        // QoS 0: messages arrive as they are sent, without acknowledgement round trips.
        char *filters[] = {"homeassistant/#", BASE_TOPIC "/#"};
        int qos[] = {0, 0};
        if (MQTTClient_subscribeMany(*c, 2, filters, qos) != MQTTCLIENT_SUCCESS) {
            return -1;
        }
    }
    return 0;
}

// ---- Modbus simulators ------------------------------------------------------------------

static void sim_line(struct msim *s, char *line)
{
    int dev, addr, count, value;
    long long t;
    char table[16];
    line[strcspn(line, "\n")] = '\0';
    if (sscanf(line, "served %d %15s %d @%lld", &dev, table, &addr, &t) == 4) {
        pthread_mutex_lock(&bench.lock);
        if (s->kind == KIND_SDM && dev >= 0 && dev < bench.count[KIND_SDM]) {
            struct probe *pr = &bench.devs[bench.first[KIND_SDM] + dev].probe;
            if (pr->active && !pr->served_us && t >= pr->sent_us) {
                pr->served_us = t;
            }
        }
        pthread_mutex_unlock(&bench.lock);
    } else if (sscanf(line, "write %d %15s %d %d %d @%lld", &dev, table, &addr, &count, &value,
                      &t) == 6) {
        // dev is the port here: the simulator names devices by port in write lines.
        if (s->kind != KIND_SUNSPEC || addr != 40126 || count != 1) {
            return;
        }
        pthread_mutex_lock(&bench.lock);
        for (int i = 0; i < bench.count[KIND_SUNSPEC]; i++) {
            struct device *d = &bench.devs[bench.first[KIND_SUNSPEC] + i];
            struct probe *pr = &d->probe;
            if (d->port == dev && pr->active && !pr->done_us && (int)pr->value == value &&
                t >= pr->sent_us) {
                pr->done_us = t;
                break;
            }
        }
        pthread_mutex_unlock(&bench.lock);
    } else if (strncmp(line, "err", 3) == 0) {
        pthread_mutex_lock(&bench.lock);
        long n = ++bench.sim_errors;
        pthread_mutex_unlock(&bench.lock);
        if (n <= 5) {
            say("simulator: %s", line);
        }
    }
}

static void *sim_reader(void *arg)
{
    struct msim *s = arg;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, s->out) > 0) {
        sim_line(s, line);
    }
    free(line);
    return NULL;
}

// Starts one e2m-modbus-sim serving all devices of `kind` and records their ports.
static int msim_start(enum kind kind, const struct plan *p)
{
    struct msim *s = &bench.msim[kind];
    int n = bench.count[kind];
    char path[1100], count[16], tick[16], log[32];
    snprintf(path, sizeof(path), "%s/tests/sim/e2m-modbus-sim", bench.build);
    snprintf(count, sizeof(count), "%d", n);
    snprintf(tick, sizeof(tick), "%d", kind == KIND_SDM ? p->sdm_tick_ms : 1000);
    snprintf(log, sizeof(log), "modbus-%s.log", kind_name[kind]);
    char *argv[] = {path,           "--profile", kind == KIND_SDM ? "sdm630" : "sunspec",
                    "--count",      count,       "--tick",
                    tick,           "--seed",    kind == KIND_SDM ? "1" : "2",
                    "--timestamps", NULL};
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        return -1;
    }
    int err = open_log(log);
    s->kind = kind;
    s->pid = spawn(argv, in[0], out[1], err);
    int e = errno;
    close(in[0]);
    close(out[1]);
    if (err >= 0) {
        close(err);
    }
    s->in = in[1];
    s->out = fdopen(out[0], "r");
    if (s->pid < 0) {
        say("cannot start %s: %s", path, strerror(e));
        return -1;
    }
    struct pollfd pfd = {out[0], POLLIN, 0};
    char *line = NULL;
    size_t cap = 0;
    if (poll(&pfd, 1, 20000) != 1 || getline(&line, &cap, s->out) <= 0 ||
        strncmp(line, "ready tcp ", 10) != 0) {
        say("the %s simulator did not start; see %s/%s", kind_name[kind], bench.tmp, log);
        free(line);
        return -1;
    }
    char *save = NULL, *tok = strtok_r(line + 10, " \n", &save);
    for (int i = 0; i < n; i++, tok = strtok_r(NULL, " \n", &save)) {
        if (!tok) {
            say("the %s simulator announced too few ports", kind_name[kind]);
            free(line);
            return -1;
        }
        bench.devs[bench.first[kind] + i].port = atoi(tok);
    }
    free(line);
    if (pthread_create(&s->reader, NULL, sim_reader, s) != 0) {
        return -1;
    }
    s->reading = true;
    return 0;
}

// Sends control lines in one write: the simulator handles them in the same loop turn.
static void msim_send(struct msim *s, const char *text)
{
    size_t len = strlen(text);
    if (s->in < 0 || write(s->in, text, len) != (ssize_t)len) {
        say("cannot write to the simulator: %s", strerror(errno));
    }
}

static void msim_stop(struct msim *s)
{
    if (s->pid > 0) {
        child_stop(s->pid, 3000);
        s->pid = 0;
    }
    if (s->in >= 0) {
        close(s->in);
        s->in = -1;
    }
    if (s->reading) {
        pthread_join(s->reader, NULL);
        s->reading = false;
    }
    if (s->out) {
        fclose(s->out);
        s->out = NULL;
    }
}

// The meters, DTUs, batteries and hybrid inverters: one process each, output to a file (nothing
// reads it while running). The Venus simulators answer on the broker, as hame-relay does for a
// real one.
static int other_sims_start(void)
{
    for (int k = KIND_PM; k <= KIND_LUX; k++) {
        for (int i = 0; i < bench.count[k]; i++) {
            struct device *d = &bench.devs[bench.first[k] + i];
            char path[1100], seed[16], name[32], log[64];
            snprintf(seed, sizeof(seed), "%d", 100 + i);
            snprintf(name, sizeof(name), "bench%s", d->id);
            snprintf(log, sizeof(log), "%s.out", d->id);
            int fd = open_log(log);
            pid_t pid;
            if (k == KIND_PM) {
                snprintf(path, sizeof(path), "%s/tests/sim/e2m-smartmeter-sim", bench.build);
                char *argv[] = {path,     "--type", "powermeter", "--name", name,
                                "--port", "0",      "--seed",     seed,     NULL};
                pid = spawn(argv, -1, fd, fd);
            } else if (k == KIND_VENUS) {
                char mqtt[64], mac[16];
                snprintf(path, sizeof(path), "%s/tests/sim/e2m-venus-sim", bench.build);
                snprintf(mqtt, sizeof(mqtt), "127.0.0.1:%d", bench.broker_port);
                snprintf(mac, sizeof(mac), "0000be%06x", i);
                char *argv[] = {path, "--mqtt", mqtt, "--type", "HMG-50", "--mac", mac, NULL};
                pid = spawn(argv, -1, fd, fd);
            } else if (k == KIND_LUX) {
                // A dongle with its cloud: heartbeats every minute, input broadcasts every 5
                // minutes (the daemon answers no heartbeat and polls every 5 s). Its serial is
                // configured, as the first heartbeat could be a minute away.
                char sn[16];
                snprintf(path, sizeof(path), "%s/tests/sim/e2m-luxpower-sim", bench.build);
                snprintf(sn, sizeof(sn), "BL%08d", i);
                char *argv[] = {path,    "--port",         "0",      "--seed",
                                seed,    "--dongle-sn",    sn,       "--heartbeat-ms",
                                "60000", "--broadcast-ms", "300000", NULL};
                pid = spawn(argv, -1, fd, fd);
            } else {
                // Real DTU timing (30 s guard); no cloud windows, see the note in the README.
                snprintf(path, sizeof(path), "%s/tests/sim/e2m-hoymiles-sim", bench.build);
                char *argv[] = {path, "--port", "0", "--seed", seed, "--cloud", "off", NULL};
                pid = spawn(argv, -1, fd, fd);
            }
            int e = errno;
            if (fd >= 0) {
                close(fd);
            }
            if (pid < 0) {
                say("cannot start %s: %s", path, strerror(e));
                return -1;
            }
        }
    }
    for (int k = KIND_PM; k <= KIND_LUX; k++) {
        for (int i = 0; i < bench.count[k]; i++) {
            struct device *d = &bench.devs[bench.first[k] + i];
            char log[64];
            snprintf(log, sizeof(log), "%s.out", d->id);
            d->port = wait_ready_file(log, 10000);
            if (d->port < 0 || (d->port == 0 && k != KIND_VENUS)) {
                say("the simulator of %s did not start; see %s/%s", d->id, bench.tmp, log);
                return -1;
            }
        }
    }
    return 0;
}

// ---- Broker and daemon ------------------------------------------------------------------

static int broker_start(void)
{
    bench.broker_port = free_port();
    char conf[512];
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", bench.tmp);
    FILE *f = fopen(conf, "w");
    if (!f || bench.broker_port < 0) {
        return -1;
    }
    // The subscriber must never lose a message (the counts and latencies depend on it), and
    // Nagle's algorithm would add its delay to every latency measured through the broker.
    fprintf(f,
            "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 1000000\nmax_queued_bytes 0\nset_tcp_nodelay true\n",
            bench.broker_port);
    fclose(f);
    int log = open_log("mosquitto.log");
    char *argv[] = {bench.mosquitto, "-c", conf, NULL};
    pid_t pid = spawn(argv, -1, log, log);
    int e = errno;
    if (log >= 0) {
        close(log);
    }
    if (pid < 0) {
        say("cannot start %s: %s", bench.mosquitto, strerror(e));
        return -1;
    }
    for (int i = 0; i < 500 && !port_open(bench.broker_port); i++) {
        sleep_us(10000);
    }
    if (!port_open(bench.broker_port)) {
        say("mosquitto did not start; see %s/mosquitto.log", bench.tmp);
        return -1;
    }
    return 0;
}

static int config_write(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fprintf(f,
            "mqtt:\n  url: mqtt://127.0.0.1:%d\n  base_topic: " BASE_TOPIC "\n"
            "  birth_delay: 0s\nstate_dir: %s\ndevices:\n",
            bench.broker_port, bench.tmp);
    static const char *const model[KIND_COUNT] = {"eastron/sdm630",      "sunspec/inverter",
                                                  "voelkerb/powermeter", "hoymiles/hms-2t",
                                                  "marstek/venus",       "luxpower/lxp-hybrid"};
    for (int i = 0; i < bench.n_devs; i++) {
        const struct device *d = &bench.devs[i];
        fprintf(f, "  - id: %s\n    model: %s\n", d->id, model[d->kind]);
        if (d->kind == KIND_VENUS) {
            // The driver's defaults: runtime every 60 s, BMS and CT power every 5 minutes.
            fprintf(f, "    type: HMG-50\n    mac: '0000be%06x'\n", d->index);
            continue;
        }
        fprintf(f, "    host: 127.0.0.1\n    port: %d\n", d->port);
        if (d->kind == KIND_HM) {
            // The daemon's timing defaults (31 s gap, 35 s polls) except the cloud pause,
            // which would make the figures depend on the minute the benchmark starts.
            fprintf(f, "    options: {cloud_pause: \"off\"}\n");
        } else if (d->kind == KIND_LUX) {
            fprintf(f, "    options: {poll_interval: %ds, dongle_serial: BL%08d}\n", POLL_S,
                    d->index);
        } else {
            fprintf(f, "    options: {poll_interval: %ds}\n", POLL_S);
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int daemon_start(void)
{
    char bin[1100], cfg[512];
    snprintf(bin, sizeof(bin), "%s/src/energy2mqtt", bench.build);
    snprintf(cfg, sizeof(cfg), "%s/bench.yaml", bench.tmp);
    if (config_write(cfg) < 0) {
        say("cannot write %s", cfg);
        return -1;
    }
    int log = open_log("daemon.log");
    char *argv[] = {bin, "run", "-c", cfg, NULL};
    bench.daemon_start = mono_us();
    bench.daemon = spawn(argv, -1, log, log);
    int e = errno;
    if (log >= 0) {
        close(log);
    }
    if (bench.daemon < 0) {
        say("cannot start %s: %s", bin, strerror(e));
        return -1;
    }
    return 0;
}

// ---- /proc ------------------------------------------------------------------------------

// utime + stime of the daemon (all threads, including ended ones) in seconds, or NAN.
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return NAN;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    // The command name may contain spaces and parentheses: fields count from the last ')'.
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return NAN;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct mem_sample {
    long hwm_kb, rss_kb, anon_kb;
};

static int proc_mem(pid_t pid, struct mem_sample *m)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    *m = (struct mem_sample){-1, -1, -1};
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "VmHWM: %ld", &m->hwm_kb);
        sscanf(line, "VmRSS: %ld", &m->rss_kb);
        sscanf(line, "RssAnon: %ld", &m->anon_kb);
    }
    fclose(f);
    return m->rss_kb >= 0 ? 0 : -1;
}

// ---- Phases -----------------------------------------------------------------------------

// Waits until every device has published discovery (and the bridge) and is online, or until
// `deadline`. Fills the startup figures.
static void wait_startup(struct results *r, int64_t deadline)
{
    bool disc_done = false, online_done = false;
    int64_t last_note = mono_us();
    while (!bench.stop && daemon_alive()) {
        int64_t disc_max = 0, online_max = 0;
        int disc_seen = 0, online_seen = 0;
        pthread_mutex_lock(&bench.lock);
        for (int i = 0; i < bench.n_devs; i++) {
            const struct device *d = &bench.devs[i];
            disc_seen += d->disc_at != 0;
            online_seen += d->online_at != 0;
            disc_max = d->disc_at > disc_max ? d->disc_at : disc_max;
            online_max = d->online_at > online_max ? d->online_at : online_max;
        }
        bool bridge = bench.bridge.disc_at != 0;
        int64_t bridge_at = bench.bridge.disc_at;
        pthread_mutex_unlock(&bench.lock);
        r->disc_seen = disc_seen + bridge;
        r->online_seen = online_seen;
        if (!disc_done && disc_seen == bench.n_devs && bridge) {
            disc_done = true;
            int64_t t = disc_max > bridge_at ? disc_max : bridge_at;
            r->discovery_s = (double)(t - bench.daemon_start) / 1e6;
            say("discovery complete after %.2f s", r->discovery_s);
        }
        if (!online_done && online_seen == bench.n_devs) {
            online_done = true;
            r->online_s = (double)(online_max - bench.daemon_start) / 1e6;
            say("all %d devices online after %.2f s", bench.n_devs, r->online_s);
        }
        int64_t now = mono_us();
        if ((disc_done && online_done) || now >= deadline) {
            break;
        }
        if (now - last_note > 10000000) {
            say("waiting: %d/%d discovery configs, %d/%d devices online", r->disc_seen,
                bench.n_devs + 1, online_seen, bench.n_devs);
            last_note = now;
        }
        sleep_us(20000);
    }
    if (!disc_done || !online_done) {
        say("startup incomplete: %d/%d discovery configs, %d/%d devices online", r->disc_seen,
            bench.n_devs + 1, r->online_seen, bench.n_devs);
        char missing[200] = "";
        size_t n = 0;
        pthread_mutex_lock(&bench.lock);
        for (int i = 0; i < bench.n_devs && n + 20 < sizeof(missing); i++) {
            const struct device *d = &bench.devs[i];
            if (!d->disc_at || !d->online_at) {
                n += (size_t)snprintf(missing + n, sizeof(missing) - n, " %s%s", d->id,
                                      d->disc_at ? "" : "(no config)");
            }
        }
        pthread_mutex_unlock(&bench.lock);
        say("not seen:%s", missing);
    }
}

// Ends finished or overdue probes of one kind and records their latencies.
static void probes_harvest(enum kind kind, struct samples *s, int64_t timeout_us, int64_t now)
{
    pthread_mutex_lock(&bench.lock);
    for (int i = 0; i < bench.count[kind]; i++) {
        struct probe *pr = &bench.devs[bench.first[kind] + i].probe;
        if (!pr->active) {
            continue;
        }
        int64_t from = kind == KIND_SDM ? pr->served_us : pr->sent_us;
        if (pr->done_us && from) {
            samples_add(s, pr->done_us - from);
            pr->active = false;
        } else if (now - pr->sent_us > timeout_us) {
            s->lost++;
            pr->active = false;
        }
    }
    pthread_mutex_unlock(&bench.lock);
}

// The next device of `kind` after *cursor without a probe in flight, or NULL.
static struct device *next_idle(enum kind kind, int *cursor)
{
    int n = bench.count[kind];
    struct device *found = NULL;
    pthread_mutex_lock(&bench.lock);
    for (int k = 0; k < n && !found; k++) {
        *cursor = (*cursor + 1) % n;
        struct device *d = &bench.devs[bench.first[kind] + *cursor];
        if (!d->probe.active && d->online_at) {
            found = d;
        }
    }
    pthread_mutex_unlock(&bench.lock);
    return found;
}

// Pins a new L1 voltage on an SDM630 and arms the `served` notification, in one write.
static void freshness_probe(struct device *d)
{
    char cmd[160];
    // 100.0-199.9 V never occurs naturally (230 V +- 2), and consecutive probes of a device
    // differ by 0.1 V, so the first state with the value is the one after the served read.
    double v = 100.0 + (double)((d->index * 7 + (int)d->probes) % 1000) / 10.0;
    snprintf(cmd, sizeof(cmd), "set %d input 0 float32 %.1f\nmark %d input 0\n", d->index, v,
             d->index);
    pthread_mutex_lock(&bench.lock);
    d->probe = (struct probe){.active = true, .value = v, .sent_us = mono_us()};
    d->probes++;
    pthread_mutex_unlock(&bench.lock);
    msim_send(&bench.msim[KIND_SDM], cmd);
}

// Publishes a new power limit for a SunSpec inverter, as Home Assistant would.
static void command_send(struct device *d)
{
    char topic[64], payload[16];
    int v = 20 + (int)(d->probes % 60); // 0-100 % in steps of 1; consecutive values differ
    snprintf(topic, sizeof(topic), BASE_TOPIC "/%s/power_limit/set", d->id);
    snprintf(payload, sizeof(payload), "%d", v);
    pthread_mutex_lock(&bench.lock);
    d->probe = (struct probe){.active = true, .value = v, .sent_us = mono_us()};
    d->probes++;
    pthread_mutex_unlock(&bench.lock);
    MQTTClient_deliveryToken tok;
    if (MQTTClient_publish(bench.pub, topic, (int)strlen(payload), payload, 0, 0, &tok) !=
        MQTTCLIENT_SUCCESS) {
        say("publish %s failed", topic);
    }
}

// The measurement window: probes and memory samples all along, commands in the second half
// only, so the first half shows the daemon's cost of polling alone.
static void window_run(const struct plan *p, struct results *r, int window_s)
{
    const int64_t fresh_timeout = (3 * POLL_S + 2) * 1000000LL, cmd_timeout = 10000000;
    size_t cap = (size_t)window_s + 8, n_mem = 0;
    long *rss = xcalloc_or_die(cap, sizeof(long)), *anon = xcalloc_or_die(cap, sizeof(long));
    int cur_sdm = -1, cur_sun = -1;

    say("measuring for %d s (commands in the second half)", window_s);
    int64_t start = mono_us(), half = start + (int64_t)window_s * 500000,
            end = start + (int64_t)window_s * 1000000;
    double cpu0 = proc_cpu_s(bench.daemon), cpu_half = NAN;
    pthread_mutex_lock(&bench.lock);
    bench.win_msgs = bench.win_states = 0;
    bench.in_window = true;
    pthread_mutex_unlock(&bench.lock);

    int64_t next_probe = start, next_mem = start;
    while (!bench.stop && daemon_alive()) {
        int64_t now = mono_us();
        if (now >= end) {
            break;
        }
        if (isnan(cpu_half) && now >= half) {
            cpu_half = proc_cpu_s(bench.daemon);
        }
        if (now >= next_mem) {
            struct mem_sample m;
            if (n_mem < cap && proc_mem(bench.daemon, &m) == 0) {
                rss[n_mem] = m.rss_kb;
                anon[n_mem++] = m.anon_kb;
            }
            next_mem += 1000000;
        }
        if (now >= next_probe) {
            probes_harvest(KIND_SDM, &r->fresh, fresh_timeout, now);
            probes_harvest(KIND_SUNSPEC, &r->cmd, cmd_timeout, now);
            struct device *d = bench.count[KIND_SDM] ? next_idle(KIND_SDM, &cur_sdm) : NULL;
            if (d) {
                freshness_probe(d);
            }
            d = now >= half && bench.count[KIND_SUNSPEC] ? next_idle(KIND_SUNSPEC, &cur_sun) : NULL;
            if (d) {
                command_send(d);
            }
            next_probe += PROBE_PERIOD_US;
        }
        int64_t wake = next_probe < next_mem ? next_probe : next_mem;
        wake = wake < end ? wake : end;
        sleep_us(wake - mono_us());
    }
    int64_t stop = mono_us();
    double cpu1 = proc_cpu_s(bench.daemon);
    struct mem_sample last = {-1, -1, -1};
    proc_mem(bench.daemon, &last);
    pthread_mutex_lock(&bench.lock);
    bench.in_window = false;
    long msgs = bench.win_msgs, states = bench.win_states;
    pthread_mutex_unlock(&bench.lock);

    double secs = (double)(stop - start) / 1e6;
    r->window_s = secs;
    r->polls = states;
    r->msgs_per_s = secs > 0 ? (double)msgs / secs : NAN;
    r->cpu_pct = 100.0 * (cpu1 - cpu0) / secs;
    r->cpu_idle_pct = 100.0 * (cpu_half - cpu0) / (secs / 2);
    r->cpu_per_poll_us = states > 0 ? 1e6 * (cpu1 - cpu0) / (double)states : NAN;
    r->hwm_mib = last.hwm_kb >= 0 ? (double)last.hwm_kb / 1024.0 : NAN;
    if (n_mem > 0) {
        qsort(rss, n_mem, sizeof(long), cmp_long);
        qsort(anon, n_mem, sizeof(long), cmp_long);
        r->rss_mib = (double)rss[n_mem / 2] / 1024.0;
        r->anon_mib = (double)anon[n_mem / 2] / 1024.0;
    }
    free(rss);
    free(anon);

    // Probes still in flight get until their timeout (not in smoke mode: no time left).
    int64_t grace_end = stop + (p->smoke ? 0 : fresh_timeout);
    for (;;) {
        int64_t now = mono_us();
        probes_harvest(KIND_SDM, &r->fresh, fresh_timeout, now);
        probes_harvest(KIND_SUNSPEC, &r->cmd, cmd_timeout, now);
        bool pending = false;
        pthread_mutex_lock(&bench.lock);
        for (int i = 0; i < bench.n_devs && !pending; i++) {
            pending = bench.devs[i].probe.active;
        }
        pthread_mutex_unlock(&bench.lock);
        if (!pending || now >= grace_end || bench.stop) {
            break;
        }
        sleep_us(50000);
    }
    say("window done: %ld state messages, %zu freshness and %zu command samples", states,
        r->fresh.n, r->cmd.n);
}

// Home Assistant restarts: everything must be published again.
static void burst_run(struct results *r, int timeout_s)
{
    r->burst_run = true;
    pthread_mutex_lock(&bench.lock);
    for (int i = 0; i < bench.n_devs; i++) {
        bench.devs[i].burst_disc = bench.devs[i].burst_state = 0;
    }
    bench.bridge.burst_disc = 0;
    int64_t t0 = mono_us();
    bench.burst_t0 = t0;
    pthread_mutex_unlock(&bench.lock);
    say("publishing homeassistant/status = online");
    MQTTClient_deliveryToken tok;
    if (MQTTClient_publish(bench.pub, "homeassistant/status", 6, "online", 1, 0, &tok) !=
        MQTTCLIENT_SUCCESS) {
        say("cannot publish the birth message");
        return;
    }
    int64_t deadline = t0 + (int64_t)timeout_s * 1000000;
    while (!bench.stop && daemon_alive() && mono_us() < deadline) {
        int seen = 0;
        int64_t last = 0;
        pthread_mutex_lock(&bench.lock);
        for (int i = 0; i < bench.n_devs; i++) {
            const struct device *d = &bench.devs[i];
            if (d->burst_disc && d->burst_state) {
                seen++;
                int64_t t = d->burst_disc > d->burst_state ? d->burst_disc : d->burst_state;
                last = t > last ? t : last;
            }
        }
        int64_t bridge = bench.bridge.burst_disc;
        pthread_mutex_unlock(&bench.lock);
        r->burst_seen = seen + (bridge != 0);
        if (seen == bench.n_devs && bridge) {
            last = bridge > last ? bridge : last;
            r->burst_s = (double)(last - t0) / 1e6;
            say("re-published after %.2f s", r->burst_s);
            break;
        }
        sleep_us(20000);
    }
    pthread_mutex_lock(&bench.lock);
    bench.burst_t0 = 0;
    pthread_mutex_unlock(&bench.lock);
}

// ---- Report -----------------------------------------------------------------------------

struct row_ctx {
    const char *scenario;
    int failed;  // targets missed
    int missing; // figures that could not be measured
};

// One table row. `target` < 0: no target; otherwise PASS when value < target. A NAN value
// counts as not measured when `required`.
static void row(struct row_ctx *c, const char *label, double value, const char *unit, double target,
                bool required, const char *note)
{
    char val[64], tgt[32] = "", res[8] = "";
    if (isnan(value)) {
        snprintf(val, sizeof(val), "not measured");
        c->missing += required;
    } else {
        int decimals = fabs(value) < 10 ? 3 : fabs(value) < 1000 ? 2 : 1;
        snprintf(val, sizeof(val), "%.*f %s", decimals, value, unit);
    }
    if (target >= 0) {
        snprintf(tgt, sizeof(tgt), "< %g %s", target, unit);
        bool pass = !isnan(value) && value < target;
        snprintf(res, sizeof(res), "%s", isnan(value) ? "-" : pass ? "PASS" : "FAIL");
        c->failed += !isnan(value) && !pass;
    }
    printf("  %-30s %-18s %-14s %-5s %s\n", label, val, tgt, res, note ? note : "");
}

static void kv_line(FILE *out, const char *scenario, const char *key, double value,
                    const char *unit, double target)
{
    fprintf(out, "bench scenario=%s figure=%s value=", scenario, key);
    if (isnan(value)) {
        fprintf(out, "nan");
    } else {
        fprintf(out, "%.6g", value);
    }
    fprintf(out, " unit=%s", unit);
    if (target >= 0) {
        fprintf(out, " target=%g status=%s", target,
                isnan(value)     ? "unmeasured"
                : value < target ? "PASS"
                                 : "FAIL");
    }
    fputc('\n', out);
}

#define FIGURE(label, key, value, unit, target, required, note)                                    \
    do {                                                                                           \
        row(&ctx, label, value, unit, target, required, note);                                     \
        kv_line(lines, ctx.scenario, key, value, unit, target);                                    \
    } while (0)

// Prints the table and the key=value lines; returns the number of figures that could not be
// measured.
static int report(const struct plan *p, struct results *r, const double *targets)
{
    struct row_ctx ctx = {.scenario = p->name};
    char *linebuf = NULL;
    size_t linelen = 0;
    FILE *lines = open_memstream(&linebuf, &linelen);
    if (!lines) {
        return 1;
    }
    char devices[160];
    snprintf(devices, sizeof(devices),
             "%d devices: %d sdm630, %d sunspec, %d powermeter, %d hms, %d venus, %d luxpower",
             r->total, p->count[KIND_SDM], p->count[KIND_SUNSPEC], p->count[KIND_PM],
             p->count[KIND_HM], p->count[KIND_VENUS], p->count[KIND_LUX]);
    printf("\nscenario %s (%s)%s\n", p->name, devices, p->smoke ? ", smoke" : "");
    if (r->window_s > 0) {
        printf("  window %.1f s, %ld state messages\n", r->window_s, r->polls);
    }
    printf("  %-30s %-18s %-14s %-5s %s\n", "figure", "value", "target", "", "");
    char note[96];
    snprintf(note, sizeof(note), "%d/%d configs", r->disc_seen, r->total + 1);
    FIGURE("discovery complete", "discovery_s", r->discovery_s, "s", targets[0], true, note);
    snprintf(note, sizeof(note), "%d/%d online", r->online_seen, r->total);
    FIGURE("all devices online", "online_s", r->online_s, "s", -1, true, note);
    if (p->window_s > 0) {
        FIGURE("CPU, polling only", "cpu_idle_pct", r->cpu_idle_pct, "%", targets[1], true,
               "first half (no commands), 10 ms resolution");
        FIGURE("CPU, whole window", "cpu_pct", r->cpu_pct, "%", targets[2], true, "% of one core");
        FIGURE("CPU per poll", "cpu_per_poll_us", r->cpu_per_poll_us, "us", -1, true,
               "per state message");
        FIGURE("state messages per second", "polls_per_s",
               r->window_s > 0 ? (double)r->polls / r->window_s : NAN, "1/s", -1, true, NULL);
        FIGURE("memory peak (VmHWM)", "vmhwm_mib", r->hwm_mib, "MiB", -1, true, NULL);
        FIGURE("memory steady (VmRSS median)", "vmrss_mib", r->rss_mib, "MiB", targets[3], true,
               NULL);
        FIGURE("RssAnon (median)", "rssanon_mib", r->anon_mib, "MiB", -1, true, NULL);
        const struct samples *s[2] = {&r->fresh, &r->cmd};
        const char *name[2] = {"freshness", "command"};
        for (int i = 0; i < 2; i++) {
            char label[64], key[64];
            qsort(s[i]->v, s[i]->n, sizeof(int64_t), cmp_i64);
            snprintf(note, sizeof(note), "%zu samples, %ld lost", s[i]->n, s[i]->lost);
            snprintf(label, sizeof(label), "%s p50", name[i]);
            snprintf(key, sizeof(key), "%s_p50_ms", name[i]);
            FIGURE(label, key, percentile_ms(s[i], 50), "ms", -1, true, note);
            snprintf(label, sizeof(label), "%s p99", name[i]);
            snprintf(key, sizeof(key), "%s_p99_ms", name[i]);
            FIGURE(label, key, percentile_ms(s[i], 99), "ms", targets[4 + i], true, NULL);
            snprintf(label, sizeof(label), "%s max", name[i]);
            snprintf(key, sizeof(key), "%s_max_ms", name[i]);
            FIGURE(label, key, percentile_ms(s[i], 100), "ms", -1, true, NULL);
            snprintf(key, sizeof(key), "%s_samples", name[i]);
            kv_line(lines, p->name, key, (double)s[i]->n, "1", -1);
        }
        FIGURE("MQTT messages per second", "mqtt_msgs_per_s", r->msgs_per_s, "1/s", -1, true,
               "bench/# and homeassistant/#");
    }
    if (r->burst_run) {
        snprintf(note, sizeof(note), "%d/%d devices+bridge", r->burst_seen, r->total + 1);
        FIGURE("re-publish after HA birth", "burst_s", r->burst_s, "s", -1, true, note);
    }
    if (ctx.failed) {
        printf("  %d target(s) missed\n", ctx.failed);
    }
    fclose(lines);
    printf("%s", linebuf);
    free(linebuf);
    fflush(stdout);
    return ctx.missing;
}

// ---- A scenario run ---------------------------------------------------------------------

static void results_init(struct results *r)
{
    memset(r, 0, sizeof(*r));
    r->discovery_s = r->online_s = r->cpu_idle_pct = r->cpu_pct = r->cpu_per_poll_us = NAN;
    r->hwm_mib = r->rss_mib = r->anon_mib = r->msgs_per_s = r->burst_s = NAN;
}

static void run_teardown(void)
{
    if (bench.daemon > 0) {
        int st = child_stop(bench.daemon, 15000);
        if (st != 0) {
            say("the daemon ended with wait status %d", st);
        }
        bench.daemon = -1;
    }
    for (int k = 0; k < KIND_COUNT; k++) {
        msim_stop(&bench.msim[k]);
    }
    if (bench.sub_made) {
        MQTTClient_disconnect(bench.sub, 1000);
        MQTTClient_destroy(&bench.sub);
        bench.sub_made = false;
    }
    if (bench.pub_made) {
        MQTTClient_disconnect(bench.pub, 1000);
        MQTTClient_destroy(&bench.pub);
        bench.pub_made = false;
    }
    children_stop_all(3000); // the other simulators, then the broker
    tmp_remove();
    free(bench.devs);
    bench.devs = NULL;
    bench.n_devs = 0;
}

// Runs one scenario and prints its table. Returns 0 when every figure was measured (in smoke
// mode: also enough samples), 1 otherwise.
static int run(const struct plan *p, const double *targets)
{
    struct results r;
    results_init(&r);
    int64_t t_begin = mono_us();
    int64_t budget_end = t_begin + (int64_t)SMOKE_BUDGET_S * 1000000;
    int rc = 1;

    for (int k = 0; k < KIND_COUNT; k++) {
        bench.msim[k] = (struct msim){.in = -1};
    }
    devices_make(p);
    r.total = bench.n_devs;
    snprintf(bench.tmp, sizeof(bench.tmp), "/tmp/e2m-bench-XXXXXX");
    if (!mkdtemp(bench.tmp)) {
        bench.tmp[0] = '\0';
        say("mkdtemp: %s", strerror(errno));
        goto out;
    }
    say("%s: starting mosquitto, simulators for %d devices and the daemon (logs in %s)", p->name,
        bench.n_devs, bench.tmp);
    if (broker_start() < 0) {
        goto out;
    }
    if ((bench.count[KIND_SDM] && msim_start(KIND_SDM, p) < 0) ||
        (bench.count[KIND_SUNSPEC] && msim_start(KIND_SUNSPEC, p) < 0) || other_sims_start() < 0) {
        goto out;
    }
    if (mqtt_connect(&bench.sub, &bench.sub_made, "sub", true) < 0 ||
        mqtt_connect(&bench.pub, &bench.pub_made, "pub", false) < 0) {
        say("cannot connect to mosquitto on port %d", bench.broker_port);
        goto out;
    }
    if (daemon_start() < 0) {
        goto out;
    }

    int window = p->window_s;
    int64_t startup_deadline;
    if (p->smoke) {
        // Leave at least 8 s of window and 2.5 s for stopping everything.
        startup_deadline = budget_end - 10500000;
    } else {
        startup_deadline = mono_us() + (bench.n_devs > 10 ? 240 : 90) * 1000000LL;
    }
    wait_startup(&r, startup_deadline);
    if (bench.stop || !daemon_alive()) {
        goto report;
    }
    if (p->smoke) {
        window = (int)((budget_end - mono_us() - 2500000) / 1000000);
    }
    if (window > 0) {
        window_run(p, &r, window);
    }
    if (p->burst && !bench.stop && daemon_alive()) {
        burst_run(&r, 120);
    }
report:
    run_teardown();
    int missing = report(p, &r, targets);
    if (p->smoke) {
        bool ok = missing == 0 && r.fresh.n >= 2 && r.cmd.n >= 3;
        printf("smoke: %s (%zu freshness, %zu command samples, %d figures missing, %.1f s)\n",
               ok ? "PASS" : "FAIL", r.fresh.n, r.cmd.n, missing,
               (double)(mono_us() - t_begin) / 1e6);
        rc = ok ? 0 : 1;
    } else {
        rc = missing ? 1 : 0;
        printf("scenario %s took %.0f s\n", p->name, (double)(mono_us() - t_begin) / 1e6);
    }
    free(r.fresh.v);
    free(r.cmd.v);
    return bench.stop ? 1 : rc;
out:
    run_teardown();
    free(r.fresh.v);
    free(r.cmd.v);
    return 1;
}

// ---- Main -------------------------------------------------------------------------------

static void usage(FILE *f)
{
    fprintf(f, "usage: e2m-bench [--build DIR] [--scenario small|fleet|burst|all] [--seconds N]"
               " [--smoke]\n");
}

static void find_mosquitto(void)
{
    const char *env = getenv("E2M_MOSQUITTO");
    const char *cands[] = {env, E2M_BENCH_MOSQUITTO_PATH, "/usr/sbin/mosquitto",
                           "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"};
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
        if (cands[i] && cands[i][0] && access(cands[i], X_OK) == 0) {
            snprintf(bench.mosquitto, sizeof(bench.mosquitto), "%s", cands[i]);
            return;
        }
    }
    snprintf(bench.mosquitto, sizeof(bench.mosquitto), "mosquitto");
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        say("warning: only %llu file descriptors allowed; the fleet needs about 2500 in the daemon",
            (unsigned long long)rl.rlim_cur);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"build", required_argument, NULL, 'b'},   {"scenario", required_argument, NULL, 's'},
        {"seconds", required_argument, NULL, 'n'}, {"smoke", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *scenario = "small";
    int seconds = 0;
    bool smoke = false;
    snprintf(bench.build, sizeof(bench.build), "%s", E2M_BINARY_DIR);
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'b': snprintf(bench.build, sizeof(bench.build), "%s", optarg); break;
        case 's': scenario = optarg; break;
        case 'n':
            seconds = atoi(optarg);
            if (seconds < 4 || seconds > 86400) {
                fprintf(stderr, "e2m-bench: --seconds takes 4 to 86400\n");
                return 2;
            }
            break;
        case 'S': smoke = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    bool want_small = strcmp(scenario, "small") == 0 || strcmp(scenario, "all") == 0;
    bool want_fleet = strcmp(scenario, "fleet") == 0 || strcmp(scenario, "all") == 0;
    bool want_burst = strcmp(scenario, "burst") == 0 || strcmp(scenario, "all") == 0;
    if (optind != argc || (!want_small && !want_fleet && !want_burst)) {
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); // the table and the progress on stderr stay in order
    find_mosquitto();
    raise_fd_limit();
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(at_exit_cleanup);

    // Targets: discovery s, idle CPU %, window CPU %, steady RSS MiB, freshness and command
    // p99 ms; -1 = none.
    static const double small_targets[6] = {-1, 0.2, -1, 8, -1, -1};
    static const double fleet_targets[6] = {10, -1, 10, 64, 20, 50};
    int rc = 0;
    if (smoke) {
        struct plan p = {.name = "small",
                         .count = {1, 1, 1, 1, 1, 1},
                         .window_s = 1,
                         .smoke = true,
                         .sdm_tick_ms = 1000};
        return run(&p, small_targets);
    }
    if (want_small) {
        struct plan p = {.name = "small",
                         .count = {1, 1, 1, 1, 1, 1},
                         .window_s = seconds ? seconds : 60,
                         .sdm_tick_ms = 1000};
        rc |= run(&p, small_targets);
    }
    if ((want_fleet || want_burst) && !bench.stop) {
        // `all` measures the burst on the same fleet run, after its window.
        struct plan p = {
            .name = want_fleet ? "fleet" : "burst",
            .count = {950, 50, 50, 50, 50, 50}, // 1000 Modbus devices, 50 of each other driver
            .window_s = want_fleet ? (seconds ? seconds : 60) : 0,
            .burst = want_burst,
            .sdm_tick_ms = 5000};
        rc |= run(&p, fleet_targets);
    }
    return rc;
}
