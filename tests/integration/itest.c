// SPDX-License-Identifier: MIT
// Integration test harness (see itest.h).
#include "itest.h"

#include <MQTTClient.h>
#include <arpa/inet.h>
#include <check.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long itest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void itest_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

// ---- temp dir and paths ---------------------------------------------------------------------

static char test_dir[200];

const char *itest_dir(void)
{
    if (!test_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(test_dir, sizeof(test_dir), "%.160s/e2m-itest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(test_dir));
    }
    return test_dir;
}

void itest_cleanup(void)
{
    if (!test_dir[0] || getenv("E2M_KEEP_TEST_DIR"))
        return;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", test_dir);
    test_dir[0] = '\0';
}

const char *itest_path(const char *root, const char *rel)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", strcmp(root, "build") == 0 ? E2M_BINARY_DIR : E2M_SOURCE_DIR, rel);
    return p;
}

const char *itest_write_file(const char *name, const char *fmt, ...)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/%s", itest_dir(), name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    return p;
}

int itest_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

// ---- processes ------------------------------------------------------------------------------

void proc_start(struct proc *p, char *const argv[], const char *log_path, bool pipe_stdout)
{
    int in[2], out[2] = {-1, -1};
    ck_assert_int_eq(pipe(in), 0);
    if (pipe_stdout)
        ck_assert_int_eq(pipe(out), 0);
    snprintf(p->log, sizeof(p->log), "%s", log_path);
    // Closed by a successful exec: reading EOF from it means the child runs its program.
    int exec_pipe[2];
    ck_assert_int_eq(pipe(exec_pipe), 0);
    fcntl(exec_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(exec_pipe[1], F_SETFD, FD_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        // Check's handlers (they kill the test's process group) must not run in here.
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        setpgid(0, 0);
        close(exec_pipe[0]);
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(in[0], 0);
        dup2(pipe_stdout ? out[1] : log, 1);
        dup2(log, 2);
        close(in[0]);
        close(in[1]);
        if (pipe_stdout) {
            close(out[0]);
            close(out[1]);
        }
        close(log);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(exec_pipe[1]);
    char c;
    while (read(exec_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(exec_pipe[0]);
    close(in[0]);
    p->pid = pid;
    p->in = in[1];
    p->out = NULL;
    if (pipe_stdout) {
        close(out[1]);
        p->out = fdopen(out[0], "r");
    }
}

bool proc_read_line(struct proc *p, const char *prefix, char *buf, size_t n, int timeout_ms)
{
    long long end = itest_now_ms() + timeout_ms;
    int fd = fileno(p->out);
    for (;;) {
        // Lines already buffered by stdio first, then wait on the descriptor.
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        char *got = fgets(buf, (int)n, p->out);
        fcntl(fd, F_SETFL, flags);
        if (got) {
            buf[strcspn(buf, "\n")] = '\0';
            if (strncmp(buf, prefix, strlen(prefix)) == 0)
                return true;
            continue;
        }
        if (feof(p->out))
            return false;
        clearerr(p->out);
        long long left = end - itest_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {fd, POLLIN, 0};
        poll(&pfd, 1, (int)left);
    }
}

void proc_send(struct proc *p, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    line[len++] = '\n';
    ck_assert_int_eq(write(p->in, line, (size_t)len), len);
}

int proc_stop(struct proc *p, int sig, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    long long end = itest_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (itest_now_ms() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            status = -1;
            break;
        }
        itest_sleep_ms(20);
    }
    p->pid = 0;
    if (p->in >= 0)
        close(p->in);
    p->in = -1;
    if (p->out)
        fclose(p->out);
    p->out = NULL;
    if (status == -1)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool proc_log_contains(const struct proc *p, const char *needle)
{
    FILE *f = fopen(p->log, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

bool proc_wait_log(const struct proc *p, const char *text, int ms)
{
    long long end = itest_now_ms() + ms;
    while (itest_now_ms() < end && !proc_log_contains(p, text))
        itest_sleep_ms(100);
    return proc_log_contains(p, text);
}

// ---- broker, simulator, daemon --------------------------------------------------------------

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

void broker_start(struct broker *b, bool persistence)
{
    if (!b->port)
        b->port = itest_free_port();
    snprintf(b->conf, sizeof(b->conf), "%s/mosquitto-%d.conf", itest_dir(), b->port);
    FILE *f = fopen(b->conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\n", b->port);
    if (persistence)
        fprintf(f, "persistence true\npersistence_location %s/\n", itest_dir());
    else
        fprintf(f, "persistence false\n");
    fclose(f);
    char log[300];
    snprintf(log, sizeof(log), "%s/mosquitto.log", itest_dir());
    char *argv[] = {"mosquitto", "-c", b->conf, NULL};
    proc_start(&b->p, argv, log, false);
    for (int i = 0; i < 200 && !port_open(b->port); i++)
        itest_sleep_ms(10);
    ck_assert_msg(port_open(b->port), "mosquitto did not start on port %d", b->port);
}

void broker_start_conf(struct broker *b, const char *fmt, ...)
{
    snprintf(b->conf, sizeof(b->conf), "%s/mosquitto-%d.conf", itest_dir(), b->port);
    FILE *f = fopen(b->conf, "w");
    ck_assert_ptr_nonnull(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    char log[300];
    snprintf(log, sizeof(log), "%s/mosquitto.log", itest_dir());
    char *argv[] = {"mosquitto", "-c", b->conf, NULL};
    proc_start(&b->p, argv, log, false);
    for (int i = 0; i < 200 && !port_open(b->port); i++)
        itest_sleep_ms(10);
    ck_assert_msg(port_open(b->port), "mosquitto did not start on port %d", b->port);
}

int itest_sh(const char *fmt, ...)
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof(cmd), "cd '%s' && (", itest_dir());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, ") >>sh.log 2>&1");
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void broker_stop(struct broker *b)
{
    proc_stop(&b->p, SIGTERM, 3000);
}

void sim_start(struct sim *s, const char *const *args)
{
    sim_start_bin(s, "tests/sim/e2m-modbus-sim", args);
}

void sim_start_bin(struct sim *s, const char *binary, const char *const *args)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)itest_path("build", binary);
    for (; args && *args && n < 30; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    char log[300];
    snprintf(log, sizeof(log), "%s/sim.log", itest_dir());
    proc_start(&s->p, argv, log, true);
    char line[2048];
    ck_assert_msg(proc_read_line(&s->p, "ready", line, sizeof(line), 5000),
                  "the simulator did not become ready");
    s->n_ports = 0;
    if (strncmp(line, "ready rtu ", 10) == 0) {
        snprintf(s->rtu_path, sizeof(s->rtu_path), "%.500s", line + 10);
        return;
    }
    // "ready tcp 1234 1235 mqtt" (ports only) or "ready port=1234".
    char *save, *tok = strtok_r(line + 5, " ", &save);
    while (tok && s->n_ports < (int)(sizeof(s->ports) / sizeof(s->ports[0]))) {
        if (strncmp(tok, "port=", 5) == 0)
            tok += 5;
        if (tok[0] >= '0' && tok[0] <= '9')
            s->ports[s->n_ports++] = atoi(tok);
        tok = strtok_r(NULL, " ", &save);
    }
}

bool sim_command(struct sim *s, char *buf, size_t n, const char *fmt, ...)
{
    char cmd[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    proc_send(&s->p, "%s", cmd);
    long long end = itest_now_ms() + 3000;
    while (itest_now_ms() < end) {
        if (!proc_read_line(&s->p, "", buf, n, 3000))
            return false;
        if (strncmp(buf, "ok", 2) == 0)
            return true;
        if (strncmp(buf, "err", 3) == 0)
            return false;
    }
    return false;
}

bool sim_wait_write(struct sim *s, const char *prefix, char *buf, size_t n, int timeout_ms)
{
    return proc_read_line(&s->p, prefix, buf, n, timeout_ms);
}

void daemon_start(struct proc *p, const char *config, const char *log_name)
{
    char *argv[40];
    int n = 0;
    char wrapper[512] = "";
    const char *w = getenv("E2M_DAEMON_WRAPPER");
    if (w && *w) {
        snprintf(wrapper, sizeof(wrapper), "%s", w);
        char *save, *tok = strtok_r(wrapper, " ", &save);
        while (tok && n < 30) {
            argv[n++] = tok;
            tok = strtok_r(NULL, " ", &save);
        }
    }
    argv[n++] = (char *)itest_path("build", "src/energy2mqtt");
    argv[n++] = "-v";
    argv[n++] = "run";
    argv[n++] = "-c";
    argv[n++] = (char *)config;
    argv[n] = NULL;
    char log[300];
    snprintf(log, sizeof(log), "%s/%s", itest_dir(), log_name);
    proc_start(p, argv, log, false);
}

// ---- collector ------------------------------------------------------------------------------

struct collector {
    MQTTClient client;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct msg *msgs;
    size_t n, cap;
};

static int on_msg(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
    struct collector *c = ctx;
    struct msg x = {0};
    size_t len = tlen > 0 ? (size_t)tlen : strlen(topic);
    x.topic = strndup(topic, len);
    x.payload = malloc((size_t)m->payloadlen + 1);
    memcpy(x.payload, m->payload, (size_t)m->payloadlen);
    x.payload[m->payloadlen] = '\0';
    x.len = (size_t)m->payloadlen;
    x.retained = m->retained;
    x.at_ms = itest_now_ms();
    pthread_mutex_lock(&c->lock);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->msgs = realloc(c->msgs, c->cap * sizeof(*c->msgs));
    }
    c->msgs[c->n++] = x;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

struct collector *collector_new(int port, const char *filter)
{
    struct collector *c = calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    char uri[64], id[64];
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
    static int counter;
    snprintf(id, sizeof(id), "itest-%d-%d", getpid(), counter++);
    ck_assert_int_eq(MQTTClient_create(&c->client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL),
                     MQTTCLIENT_SUCCESS);
    MQTTClient_setCallbacks(c->client, c, NULL, on_msg, NULL);
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.cleansession = 1;
    o.keepAliveInterval = 30;
    ck_assert_int_eq(MQTTClient_connect(c->client, &o), MQTTCLIENT_SUCCESS);
    if (filter)
        ck_assert_int_eq(MQTTClient_subscribe(c->client, filter, 1), MQTTCLIENT_SUCCESS);
    return c;
}

void collector_free(struct collector *c)
{
    if (!c)
        return;
    MQTTClient_disconnect(c->client, 1000);
    MQTTClient_destroy(&c->client);
    for (size_t i = 0; i < c->n; i++) {
        free(c->msgs[i].topic);
        free(c->msgs[i].payload);
    }
    free(c->msgs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

void collector_publish(struct collector *c, const char *topic, const char *payload, bool retain)
{
    MQTTClient_deliveryToken tok;
    ck_assert_int_eq(
        MQTTClient_publish(c->client, topic, (int)strlen(payload), payload, 1, retain, &tok),
        MQTTCLIENT_SUCCESS);
    MQTTClient_waitForCompletion(c->client, tok, 5000);
}

size_t collector_count(struct collector *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void collector_clear(struct collector *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        free(c->msgs[i].topic);
        free(c->msgs[i].payload);
    }
    c->n = 0;
    pthread_mutex_unlock(&c->lock);
}

static bool topic_match(const char *pattern, const char *topic)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*')
        return strncmp(pattern, topic, n - 1) == 0;
    return strcmp(pattern, topic) == 0;
}

char *collector_wait(struct collector *c, const char *topic, const char *needle, int timeout_ms)
{
    long long end = itest_now_ms() + timeout_ms;
    size_t seen = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        for (; seen < c->n; seen++) {
            const struct msg *m = &c->msgs[seen];
            if (topic_match(topic, m->topic) && (!needle || strstr(m->payload, needle))) {
                char *copy = strdup(m->payload);
                pthread_mutex_unlock(&c->lock);
                return copy;
            }
        }
        long long left = end - itest_now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (left > 50 ? 50 : left) * 1000000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

char *collector_last(struct collector *c, const char *topic)
{
    char *out = NULL;
    pthread_mutex_lock(&c->lock);
    for (size_t i = c->n; i-- > 0;) {
        if (topic_match(topic, c->msgs[i].topic)) {
            out = strdup(c->msgs[i].payload);
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return out;
}

size_t collector_count_prefix(struct collector *c, const char *prefix)
{
    size_t k = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++)
        k += strncmp(c->msgs[i].topic, prefix, strlen(prefix)) == 0;
    pthread_mutex_unlock(&c->lock);
    return k;
}

void collector_dump(struct collector *c, const char *path)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        bool later = false; // only the latest message per topic
        for (size_t k = i + 1; k < c->n && !later; k++)
            later = strcmp(c->msgs[k].topic, c->msgs[i].topic) == 0;
        if (!later)
            fprintf(f, "%s\t%s\n", c->msgs[i].topic, c->msgs[i].payload);
    }
    pthread_mutex_unlock(&c->lock);
    fclose(f);
}

struct collector *collector_retained(int port, const char *filter, int wait_ms)
{
    struct collector *c = collector_new(port, filter);
    itest_sleep_ms(wait_ms);
    return c;
}

// ---- JSON -----------------------------------------------------------------------------------

double json_number_of(const char *json, const char *key)
{
    json_t *o = json_loads(json, 0, NULL);
    json_t *v = json_object_get(o, key);
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(o);
    return d;
}

char *json_string_of(const char *json, const char *key)
{
    json_t *o = json_loads(json, 0, NULL);
    const char *s = json_string_value(json_object_get(o, key));
    char *out = s ? strdup(s) : NULL;
    json_decref(o);
    return out;
}

double itest_state_number(struct collector *c, const char *topic, const char *key)
{
    char *s = collector_last(c, topic);
    double v = s ? json_number_of(s, key) : NAN;
    free(s);
    return v;
}

char *itest_state_text(struct collector *c, const char *topic, const char *key)
{
    char *s = collector_last(c, topic);
    char *v = s ? json_string_of(s, key) : NULL;
    free(s);
    return v;
}

bool itest_wait_number(struct collector *c, const char *topic, const char *key, double want,
                       double tol, int ms)
{
    long long end = itest_now_ms() + ms;
    while (itest_now_ms() < end) {
        if (fabs(itest_state_number(c, topic, key) - want) <= tol)
            return true;
        itest_sleep_ms(100);
    }
    return false;
}

bool itest_wait_text(struct collector *c, const char *topic, const char *key, const char *want,
                     int ms)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "\"%s\":\"%s\"", key, want);
    char *s = collector_wait(c, topic, needle, ms);
    free(s);
    return s != NULL;
}

// ---- validation and main --------------------------------------------------------------------

int itest_validate(const char *capture, bool require_published, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s '%s' 2>&1", itest_path("build", "tests/ha/ha_validate"),
             require_published ? "--require-published" : "", capture);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t len = 0;
    out[0] = '\0';
    char line[1024];
    while (fgets(line, sizeof(line), p)) {
        if (len + strlen(line) < n) {
            strcpy(out + len, line);
            len += strlen(line);
        }
    }
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void itest_assert_discovery_valid(struct collector *c)
{
    char path[300], out[8192];
    snprintf(path, sizeof(path), "%s/capture.txt", itest_dir());
    collector_dump(c, path);
    ck_assert_msg(itest_validate(path, true, out, sizeof(out)) == 0, "validator: %s", out);
}

int itest_main(const char *suite, const struct itest_case *cases, size_t n, int timeout_s, int argc,
               char **argv)
{
    Suite *s = suite_create(suite);
    TCase *tc = tcase_create(suite);
    tcase_set_timeout(tc, timeout_s);
    for (size_t i = 0; i < n; i++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], cases[i].name) == 0;
        if (wanted)
            _tcase_add_test(tc, cases[i].test, 0, 0, 0, 1);
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
