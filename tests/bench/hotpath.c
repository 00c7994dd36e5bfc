// SPDX-License-Identifier: MIT
// The hot path of a poll, counted in instructions: decode -> model -> state -> publish.
//
// The device runtime runs in-process with a register device that answers from memory: a
// blocking driver named "modbus" with the real Modbus driver's tables and settings, so the
// real entity file (Eastron SDM630, 40 entities) loads unchanged, and whose reads return
// registers that change every poll. N such devices are polled every 100 ms until P polls are
// done; each state change is rendered as the JSON state message the daemon publishes.
//
//   e2m-bench-hotpath [--devices N] [--polls P]     wall-clock figures
//   e2m-bench-hotpath --callgrind [--devices N] [--polls P]
//       runs itself under callgrind, counting instructions only inside job_done (a read's
//       result: register decode, scale, counter guard, state, expressions, read-back checks,
//       the next job) and device_state_json (the state message), and prints instructions per
//       poll and per entity per poll: a figure that does not depend on how busy the machine
//       is, so changes can be compared.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/device.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/model.h"
#include "drivers/drivers.h"

extern const struct driver_ops modbus_driver;

// ---- the register device --------------------------------------------------------------------

static int fake_open(const struct drv_device *dev, void **state)
{
    (void)dev;
    *state = calloc(1, sizeof(uint32_t)); // a per-device poll counter
    return *state ? 0 : -ENOMEM;
}

static void fake_close(void *state)
{
    free(state);
}

// Every read returns plausible registers that rise a little each poll (float32 values from 230
// up, each register its own), so the decode, scale, counter guard and change detection all do
// real work and no energy counter ever goes back.
static void fake_run(void *state, const struct drv_job *job, struct drv_result *res)
{
    uint32_t *n = state;
    (*n)++;
    res->status = DRV_OK;
    res->code = 0;
    res->detail[0] = '\0';
    res->n_samples = 0;
    if (job->type != DRV_JOB_READ) {
        res->count = 0;
        return;
    }
    for (uint16_t i = 0; i + 1 < job->count; i += 2) {
        float f = 230.0f + (float)i * 0.1f + (float)(*n) * 0.01f;
        uint32_t bits;
        memcpy(&bits, &f, sizeof(bits));
        res->regs[i] = (uint16_t)(bits >> 16);
        res->regs[i + 1] = (uint16_t)bits;
    }
    if (job->count % 2)
        res->regs[job->count - 1] = 0;
    res->count = job->count;
}

static struct driver_ops fake;

const struct driver_ops *drivers_find(const char *name)
{
    return strcmp(name, "modbus") == 0 ? &fake : NULL;
}

const struct driver_ops *const *drivers_all(size_t *n)
{
    static const struct driver_ops *const all[] = {&fake};
    *n = 1;
    return all;
}

// ---- the run --------------------------------------------------------------------------------

static struct loop *loop;
static struct device **devs;
static size_t n_devs;
static uint64_t target_polls, states, json_bytes;

static uint64_t polls_done(void)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n_devs; i++) {
        struct device_stats st;
        device_get_stats(devs[i], &st);
        sum += st.polls;
    }
    return sum;
}

// What the daemon does on a state change: render the state message.
static void on_event(void *arg, struct device *d, enum device_event ev)
{
    (void)arg;
    if (ev != DEVICE_STATE)
        return;
    char *json = device_state_json(d);
    json_bytes += strlen(json);
    free(json);
    states++;
    if (states % 64 == 0 && polls_done() >= target_polls)
        loop_stop(loop);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int run(size_t devices, uint64_t polls)
{
    fake = modbus_driver;
    fake.check = NULL;
    fake.conflict = NULL;
    fake.open = fake_open;
    fake.close = fake_close;
    fake.run = fake_run;
    log_set_level(LOG_LVL_WARN);

    char dir[] = "/tmp/e2m-hotpath-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/hotpath.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fprintf(f, "state_dir: %s\ndevices:\n", dir);
    for (size_t i = 0; i < devices; i++)
        fprintf(f,
                "  - {id: m%zu, model: eastron/sdm630, host: 127.0.0.1, port: %zu,"
                " options: {poll_interval: 100ms}}\n",
                i, 1000 + i);
    fclose(f);
    struct config *cfg;
    struct diag d;
    diag_init(&d);
    if (config_load(path, &cfg, &d) < 0) {
        diag_print(&d, stderr);
        diag_free(&d);
        return 1;
    }
    diag_free(&d);

    loop = loop_new();
    n_devs = cfg->n_devices;
    devs = calloc(n_devs, sizeof(*devs));
    struct device_hooks hooks = {.event = on_event};
    for (size_t i = 0; i < n_devs; i++) {
        devs[i] = device_new(loop, &cfg->devices[i], NULL, &hooks);
        if (!devs[i] || device_start(devs[i]) < 0)
            return 1;
    }
    size_t entities = cfg->devices[0].model->n_entities;
    target_polls = polls;
    int64_t t0 = now_ns();
    loop_run(loop);
    double secs = (double)(now_ns() - t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    uint64_t done = polls_done();
    size_t blocks;
    {
        struct device_stats st;
        device_get_stats(devs[0], &st);
        blocks = st.blocks;
    }
    for (size_t i = 0; i < n_devs; i++)
        device_free(devs[i]);
    free(devs);
    loop_free(loop);
    config_free(cfg);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "hotpath: could not remove %s\n", dir);

    // A poll here is one read request; a device cycle is `blocks` of them.
    printf("hotpath: devices=%zu entities=%zu reads_per_cycle=%zu reads=%llu states=%llu "
           "state_bytes=%llu seconds=%.2f cpu_seconds=%.2f\n",
           n_devs, entities, blocks, (unsigned long long)done, (unsigned long long)states,
           (unsigned long long)json_bytes, secs, cpu);
    return 0;
}

// ---- under callgrind ------------------------------------------------------------------------

static int callgrind(const char *self, const char *devices, const char *polls)
{
    char out[] = "/tmp/e2m-hotpath-cg-XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    char out_opt[64], log[] = "/tmp/e2m-hotpath-log-XXXXXX";
    snprintf(out_opt, sizeof(out_opt), "--callgrind-out-file=%s", out);
    fd = mkstemp(log);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        char *argv[] = {"valgrind",
                        "--tool=callgrind",
                        "--quiet",
                        out_opt,
                        "--toggle-collect=job_done",
                        "--toggle-collect=device_state_json",
                        (char *)self,
                        "--devices",
                        (char *)devices,
                        "--polls",
                        (char *)polls,
                        NULL};
        execvp("valgrind", argv);
        perror("valgrind");
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "hotpath: the callgrind run failed (is valgrind installed?)\n");
        unlink(out);
        unlink(log);
        return 1;
    }
    // The run's own line: how many reads and entities the instructions were spent on.
    unsigned long long reads = 0, states_seen = 0;
    size_t entities = 0, blocks = 0, ndev = 0;
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f))
        sscanf(line, "hotpath: devices=%zu entities=%zu reads_per_cycle=%zu reads=%llu states=%llu",
               &ndev, &entities, &blocks, &reads, &states_seen);
    if (f)
        fclose(f);
    // The instruction total of the collected parts.
    unsigned long long ir = 0;
    f = fopen(out, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "summary: %llu", &ir) == 1 || sscanf(line, "totals: %llu", &ir) == 1)
            break;
    if (f)
        fclose(f);
    unlink(out);
    unlink(log);
    if (!reads || !ir || !blocks || !entities) {
        fprintf(stderr, "hotpath: no figures from the callgrind run\n");
        return 1;
    }
    double cycles = (double)reads / (double)blocks;
    printf("hotpath_callgrind: instructions=%llu cycles=%.0f entities=%zu "
           "ir_per_cycle=%.0f ir_per_entity_per_cycle=%.0f\n",
           ir, cycles, entities, (double)ir / cycles, (double)ir / cycles / (double)entities);
    return 0;
}

int main(int argc, char **argv)
{
    const char *devices = "50", *polls = "20000";
    bool cg = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc)
            devices = argv[++i];
        else if (strcmp(argv[i], "--polls") == 0 && i + 1 < argc)
            polls = argv[++i];
        else if (strcmp(argv[i], "--callgrind") == 0)
            cg = true;
        else {
            fprintf(stderr, "usage: %s [--callgrind] [--devices N] [--polls P]\n", argv[0]);
            return 2;
        }
    }
    if (cg)
        return callgrind(argv[0], devices, polls);
    long nd = strtol(devices, NULL, 10), np = strtol(polls, NULL, 10);
    if (nd < 1 || nd > 5000 || np < 1) {
        fprintf(stderr, "hotpath: --devices 1..5000, --polls > 0\n");
        return 2;
    }
    return run((size_t)nd, (uint64_t)np);
}
