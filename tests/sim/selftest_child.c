// SPDX-License-Identifier: MIT
// Harness shared by the simulator self-tests: child process, its lines, failures, clocks.
#include "selftest_child.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ARGV_MAX    128 // wrapper words, simulator and its arguments
#define WRAPPER_MAX 32  // words of the wrapper command
#define COMMAND_MAX 512 // one control line including the newline

struct selftest_config selftest = {
    .scenario = "?",
    .slow = 1,
    .backlog_max = 64,
};

static struct child *current; // the running child, killed by selftest_fail

static void show_stderr(const struct child *c)
{
    FILE *f = fopen(c->errfile, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        fprintf(stderr, "  sim stderr: %s", line);
    }
    if (f) {
        fclose(f);
    }
}

void selftest_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s: ", selftest.scenario);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (current) {
        if (current->pid > 0) {
            kill(current->pid, SIGKILL);
            waitpid(current->pid, NULL, 0);
        }
        // The simulator's stderr (and a wrapper's report) helps to see why.
        show_stderr(current);
        unlink(current->errfile);
    }
    if (selftest.cleanup) {
        selftest.cleanup();
    }
    exit(1);
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int selftest_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

char *line_stream_read(struct line_stream *s, int64_t timeout_ms, char *out)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);
        if (nl) {
            size_t n = (size_t)(nl - s->buf);
            memcpy(out, s->buf, n);
            out[s->crlf && n > 0 && out[n - 1] == '\r' ? n - 1 : n] = '\0';
            memmove(s->buf, nl + 1, s->len - n - 1);
            s->len -= n + 1;
            return out;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0 || s->eof) {
            return NULL;
        }
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) {
            continue;
        }
        // A line that fills the buffer reads 0 bytes and counts as the end of the stream.
        ssize_t r = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
        if (r <= 0) {
            s->eof = true;
            return NULL;
        }
        s->len += (size_t)r;
    }
}

// ---- The simulator process ----------------------------------------------------------------

void child_start(struct child *c, const char *sim, const char *const *args)
{
    const char *argv[ARGV_MAX];
    int n = 0;
    char *wrap = NULL;
    memset(c, 0, sizeof(*c));
    if (selftest.wrapper) {
        wrap = strdup(selftest.wrapper);
        CHECK(wrap, "out of memory");
        char *save = NULL;
        for (char *t = strtok_r(wrap, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            CHECK(n < WRAPPER_MAX, "wrapper has more than %d words", WRAPPER_MAX);
            argv[n++] = t;
        }
    }
    argv[n++] = sim;
    for (int i = 0; args && args[i]; i++) {
        CHECK(n < ARGV_MAX - 1, "more than %d simulator arguments", ARGV_MAX - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    snprintf(c->errfile, sizeof(c->errfile), "/tmp/e2m-sim-err-XXXXXX");
    int err_fd = mkstemp(c->errfile);
    CHECK(err_fd >= 0, "mkstemp: %s", strerror(errno));

    int in[2], out[2];
    CHECK(pipe(in) == 0 && pipe(out) == 0, "pipe: %s", strerror(errno));
    c->pid = fork();
    CHECK(c->pid >= 0, "fork: %s", strerror(errno));
    if (c->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        close(err_fd);
        execvp(argv[0], (char *const *)argv);
        perror("exec");
        _exit(127);
    }
    free(wrap);
    close(err_fd);
    close(in[0]);
    close(out[1]);
    c->in_fd = in[1];
    c->out.fd = out[0];
    current = c;
}

static void backlog_add(struct child *c, const char *line)
{
    CHECK(selftest.backlog_max > 0 && selftest.backlog_max <= SELFTEST_BACKLOG_CAP,
          "backlog_max %d out of range", selftest.backlog_max);
    if (c->n_backlog >= selftest.backlog_max) {
        CHECK(!selftest.backlog_strict, "too many unexpected lines");
        free(c->backlog[0]);
        memmove(&c->backlog[0], &c->backlog[1], (size_t)(c->n_backlog - 1) * sizeof(char *));
        c->n_backlog--;
    }
    c->backlog[c->n_backlog] = strdup(line);
    CHECK(c->backlog[c->n_backlog], "out of memory");
    c->n_backlog++;
}

// Index of the first backlog line starting with `prefix`, or -1.
static int backlog_find(const struct child *c, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (int i = 0; i < c->n_backlog; i++) {
        if (strncmp(c->backlog[i], prefix, plen) == 0) {
            return i;
        }
    }
    return -1;
}

static void backlog_clear(struct child *c)
{
    for (int i = 0; i < c->n_backlog; i++) {
        free(c->backlog[i]);
    }
    c->n_backlog = 0;
}

void child_expect(struct child *c, const char *prefix, int timeout_ms, char *out)
{
    int i = backlog_find(c, prefix);
    if (i >= 0) {
        strcpy(out, c->backlog[i]);
        free(c->backlog[i]);
        memmove(&c->backlog[i], &c->backlog[i + 1],
                (size_t)(c->n_backlog - i - 1) * sizeof(char *));
        c->n_backlog--;
        return;
    }
    size_t plen = strlen(prefix);
    int64_t deadline = now_ms() + (int64_t)timeout_ms * selftest.slow;
    for (;;) {
        int64_t left = deadline - now_ms();
        CHECK(left > 0 && line_stream_read(&c->out, left, out), "no line starting with '%s'",
              prefix);
        if (strncmp(out, prefix, plen) == 0) {
            return;
        }
        backlog_add(c, out);
    }
}

bool child_saw(struct child *c, const char *prefix, int timeout_ms)
{
    char line[SELFTEST_LINE_MAX];
    if (backlog_find(c, prefix) >= 0) {
        return true;
    }
    size_t plen = strlen(prefix);
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0 || !line_stream_read(&c->out, left, line)) {
            return false;
        }
        backlog_add(c, line);
        if (strncmp(line, prefix, plen) == 0) {
            return true;
        }
    }
}

void child_drain(struct child *c)
{
    char line[SELFTEST_LINE_MAX];
    while (line_stream_read(&c->out, 50, line)) {
    }
    backlog_clear(c);
}

// Sends an already formatted command line (with its newline).
static void send_line(struct child *c, const char *text)
{
    size_t n = strlen(text);
    CHECK(write(c->in_fd, text, n) == (ssize_t)n, "write to simulator");
}

// Formats a command and appends the newline; the text without it stays at the start of `out`.
static void format_line(char *out, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void format_line(char *out, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, size - 1, fmt, ap);
    CHECK(n >= 0 && (size_t)n < size - 1, "control line longer than %zu bytes", size - 2);
    out[n] = '\n';
    out[n + 1] = '\0';
}

void child_send(struct child *c, const char *fmt, ...)
{
    char text[COMMAND_MAX];
    va_list ap;
    va_start(ap, fmt);
    format_line(text, sizeof(text), fmt, ap);
    va_end(ap);
    send_line(c, text);
}

const char *child_cmd(struct child *c, const char *fmt, ...)
{
    static char line[SELFTEST_LINE_MAX];
    char cmd[COMMAND_MAX];
    va_list ap;
    va_start(ap, fmt);
    format_line(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    send_line(c, cmd);
    int len = (int)strlen(cmd) - 1;
    // Answers come in order, so only new lines can be the answer; the backlog is left alone.
    int64_t deadline = now_ms() + 3000 * (int64_t)selftest.slow;
    for (;;) {
        int64_t left = deadline - now_ms();
        CHECK(left > 0 && line_stream_read(&c->out, left, line), "no answer to '%.*s'", len, cmd);
        if (strncmp(line, "ok", 2) == 0) {
            return line[2] == ' ' ? line + 3 : line + 2;
        }
        CHECK(strncmp(line, "err", 3) != 0, "command '%.*s' failed: %s", len, cmd, line);
        backlog_add(c, line);
    }
}

void child_close_stdin(struct child *c)
{
    if (c->in_fd >= 0) {
        close(c->in_fd);
    }
    c->in_fd = -1;
}

bool child_stderr_has(const struct child *c, const char *text)
{
    FILE *f = fopen(c->errfile, "r");
    if (!f) {
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    while (!found && getline(&line, &cap, f) >= 0) {
        found = strstr(line, text) != NULL;
    }
    free(line);
    fclose(f);
    return found;
}

void child_terminate(struct child *c)
{
    kill(c->pid, SIGTERM);
    int64_t deadline = now_ms() + 5000 * (int64_t)selftest.slow;
    int status;
    pid_t r;
    while ((r = waitpid(c->pid, &status, WNOHANG)) == 0 && now_ms() < deadline) {
        sleep_ms(20);
    }
    CHECK(r == c->pid, "simulator did not exit after SIGTERM");
    c->pid = 0;
    CHECK(WIFEXITED(status), "simulator died by signal %d",
          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    CHECK(WEXITSTATUS(status) == 0, "simulator exit status %d", WEXITSTATUS(status));
}

void child_release(struct child *c)
{
    child_close_stdin(c);
    close(c->out.fd);
    c->out.fd = -1;
    backlog_clear(c);
    unlink(c->errfile);
    if (current == c) {
        current = NULL;
    }
}

void child_stop(struct child *c)
{
    child_terminate(c);
    child_release(c);
}

int child_start_port(struct child *c, const char *sim, const char *const *base, size_t n_base,
                     const char *const *extra)
{
    const char *args[64];
    size_t n = 0;
    CHECK(n_base < sizeof(args) / sizeof(args[0]), "too many simulator options");
    for (size_t i = 0; i < n_base; i++) {
        args[n++] = base[i];
    }
    for (int i = 0; extra && extra[i]; i++) {
        CHECK(n < sizeof(args) / sizeof(args[0]) - 1, "too many simulator options");
        args[n++] = extra[i];
    }
    args[n] = NULL;
    child_start(c, sim, args);
    char line[SELFTEST_LINE_MAX];
    child_expect(c, "ready port=", 5000, line);
    int port = atoi(line + 11);
    CHECK(port > 0, "no port in '%s'", line);
    return port;
}

void selftest_conn_open(struct selftest_conn *k, int port)
{
    memset(k, 0, sizeof(*k));
    k->fd = selftest_tcp_connect(port);
    CHECK(k->fd >= 0, "connect to %d: %s", port, strerror(errno));
}

void selftest_conn_close(struct selftest_conn *k)
{
    if (k->fd >= 0) {
        close(k->fd);
    }
    k->fd = -1;
}

void selftest_conn_send(struct selftest_conn *k, const uint8_t *p, size_t n)
{
    CHECK(send(k->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n, "send: %s", strerror(errno));
}

bool selftest_conn_next(struct selftest_conn *k, int ms,
                        long (*parse)(void *arg, const uint8_t *buf, size_t len), void *arg)
{
    int64_t deadline = now_ms() + (int64_t)ms * selftest.slow;
    for (;;) {
        long r = parse(arg, k->buf, k->len);
        if (r < 0) {
            k->skipped += (unsigned)-r;
            memmove(k->buf, k->buf - r, k->len - (size_t)-r);
            k->len -= (size_t)-r;
            continue;
        }
        if (r > 0) {
            memmove(k->buf, k->buf + r, k->len - (size_t)r);
            k->len -= (size_t)r;
            return true;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            return false;
        }
        struct pollfd p = {.fd = k->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) {
            continue;
        }
        ssize_t got = recv(k->fd, k->buf + k->len, sizeof(k->buf) - k->len, 0);
        if (got <= 0) {
            return false;
        }
        k->len += (size_t)got;
    }
}

int selftest_run(const char *sim, char *const *names, int n, const struct selftest_scenario *list,
                 size_t count)
{
    // A simulator that exits early must fail a check, not kill the test with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
    for (int k = 0; k < n; k++) {
        size_t i = 0;
        while (i < count && strcmp(names[k], list[i].name) != 0) {
            i++;
        }
        if (i == count) {
            fprintf(stderr, "unknown scenario %s\n", names[k]);
            return 2;
        }
        selftest.scenario = list[i].name;
        list[i].fn(sim);
        printf("PASS %s\n", selftest.scenario);
    }
    return 0;
}

// ---- a private broker ------------------------------------------------------------------------

static pid_t broker_pid;
static char broker_dir[64];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

void selftest_broker_stop(void)
{
    if (broker_pid > 0) {
        kill(broker_pid, SIGTERM);
        waitpid(broker_pid, NULL, 0);
        broker_pid = 0;
    }
    if (broker_dir[0]) {
        char path[128];
        snprintf(path, sizeof(path), "%s/mosquitto.conf", broker_dir);
        unlink(path);
        rmdir(broker_dir);
        broker_dir[0] = '\0';
    }
}

int selftest_broker_start(const char *mosquitto)
{
    if (!mosquitto) {
        fprintf(stderr, "scenario %s needs --mosquitto PATH\n", selftest.scenario);
        exit(2);
    }
    char conf[128];
    int port = free_port();
    snprintf(broker_dir, sizeof(broker_dir), "/tmp/e2m-selftest-mq-XXXXXX");
    CHECK(mkdtemp(broker_dir), "mkdtemp: %s", strerror(errno));
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", broker_dir);
    FILE *f = fopen(conf, "w");
    CHECK(f, "write %s", conf);
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n",
            port);
    fclose(f);
    broker_pid = fork();
    CHECK(broker_pid >= 0, "fork");
    if (broker_pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execl(mosquitto, mosquitto, "-c", conf, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = now_ms() + 5000;
    for (;;) {
        int fd = selftest_tcp_connect(port);
        if (fd >= 0) {
            close(fd);
            return port;
        }
        CHECK(now_ms() < deadline, "mosquitto did not start on port %d", port);
        sleep_ms(50);
    }
}
