// SPDX-License-Identifier: MIT
// The device runtime with an event-driven register driver (drv_registers): register values
// pushed outside any job decode every entity whose registers they hold and make the plan blocks
// they cover valid; a block that covers the read in flight answers it; a read ended without
// values leaves its block unknown; values pushed while a job waits are published; a text entity
// on a time_hm register is written as its registers. On a simulated-time loop.
//
// Like check_device_event, this file provides drivers_find()/drivers_all() itself.
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/device.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/loop.h"
#include "core/model.h"
#include "drivers/drivers.h"
#include "mqtt/command.h"

// ---- the fake register driver ---------------------------------------------------------------

enum { T_INPUT, T_HOLDING };

// Blocks of at most 10 registers, so the entities below need several reads.
static const struct drv_table tables[] = {
    {"input", false, false, 1000, {10, 0, 10}, 100},
    {"holding", false, true, 1000, {10, 0, 10}, 100},
};

enum answer {
    A_EXACT,   // the registers asked for
    A_LARGER,  // a larger block around them (like a broadcast)
    A_NOTHING, // DRV_OK without values
    A_SILENT,  // no answer: the job times out
    A_SKIP,    // nothing sent (DRV_SKIPPED)
};

static struct {
    struct drv_ctx *ctx;
    enum answer answer;
    int reads, writes;
    struct drv_job last_write;
    uint16_t bias; // added to every register value, so a new answer is a new value
} fk;

// Register r holds r * 10 + bias.
static void fill(uint16_t *v, uint32_t start, uint16_t count)
{
    for (uint16_t i = 0; i < count; i++)
        v[i] = (uint16_t)((start + i) * 10 + fk.bias);
}

static void push(uint8_t table, uint32_t start, uint16_t count)
{
    uint16_t v[200];
    fill(v, start, count);
    drv_registers(fk.ctx, table, start, count, v);
}

static int fake_open(const struct drv_device *dev, void **state)
{
    (void)dev;
    *state = &fk;
    return 0;
}

static void fake_close(void *state)
{
    (void)state;
}

static int fake_start(void *state, struct drv_ctx *ctx)
{
    (void)state;
    fk.ctx = ctx;
    return 0;
}

static void fake_job(void *state, const struct drv_job *job)
{
    (void)state;
    if (job->type == DRV_JOB_WRITE) {
        fk.writes++;
        fk.last_write = *job;
        drv_job_done(fk.ctx, DRV_OK, 0, NULL);
        return;
    }
    fk.reads++;
    switch (fk.answer) {
    case A_EXACT: push(job->table, job->address, job->count); break;
    case A_LARGER:
        push(job->table, job->address >= 5 ? job->address - 5 : 0, (uint16_t)(job->count + 10));
        break;
    case A_NOTHING: break;
    case A_SILENT: return;
    case A_SKIP: drv_job_done(fk.ctx, DRV_SKIPPED, 0, NULL); return;
    }
    drv_job_done(fk.ctx, DRV_OK, 0, NULL);
}

static void fake_abort(void *state)
{
    (void)state;
}

static const struct driver_ops fake_driver = {
    .name = "regs",
    .style = DRV_EVENT,
    .tables = tables,
    .n_tables = 2,
    .timing = {.min_gap_ms = 0,
               .poll_ms = 1000,
               .min_poll_ms = 10,
               .reply_timeout_ms = 100,
               .connect_timeout_ms = 100,
               .backoff_min_ms = 100,
               .backoff_max_ms = 200},
    .open = fake_open,
    .close = fake_close,
    .start = fake_start,
    .job = fake_job,
    .abort = fake_abort,
};

const struct driver_ops *drivers_find(const char *name)
{
    return strcmp(name, "regs") == 0 ? &fake_driver : NULL;
}

const struct driver_ops *const *drivers_all(size_t *n)
{
    static const struct driver_ops *const all[] = {&fake_driver};
    *n = 1;
    return all;
}

// ---- fixture --------------------------------------------------------------------------------

static char dir[64];
static struct config *cfg;
static struct loop *loop;
static struct device *d;
static int state_events;

static void on_event(void *arg, struct device *x, enum device_event ev)
{
    (void)arg;
    (void)x;
    if (ev == DEVICE_STATE)
        state_events++;
}

// Blocks (10 registers each): input 0-9 (a, b), 10-19 (c), 20-29 (d, wide: 29-30 spans two
// blocks' worth, so it lives in a 20-block), holding 0-9 (slot).
static void start(enum answer answer, const char *poll)
{
    memset(&fk, 0, sizeof(fk));
    fk.answer = answer;
    state_events = 0;
    snprintf(dir, sizeof(dir), "/tmp/e2m-devregs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/test", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/test/regs.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("model: regs\nmanufacturer: T\nname: Register thing\ndriver: regs\nentities:\n"
          "  - {id: a, register: {table: input, address: 1}}\n"
          "  - {id: b, register: {table: input, address: 8}}\n"
          "  - {id: c, register: {table: input, address: 12}}\n"
          "  - {id: wide, register: {table: input, address: 25, type: u32}}\n"
          "  - {id: slot, component: text, register: {table: holding, address: 3, type: time_hm},"
          "     pattern: '^[0-9]{2}:[0-9]{2}$'}\n",
          f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
    f = fopen(path, "w");
    fprintf(f,
            "entities_dir: %s\nstate_dir: %s\ndevices:\n  - id: r1\n    model: test/regs\n"
            "    options: {poll_interval: %s, reply_timeout: 100ms, connect_timeout: 100ms}\n",
            dir, dir, poll);
    fclose(f);
    struct diag dg;
    diag_init(&dg);
    int rc = config_load(path, &cfg, &dg);
    diag_print(&dg, stderr);
    diag_free(&dg);
    ck_assert_int_eq(rc, 0);
    loop = loop_new_virtual(1000000, 1795248000000LL);
    struct device_hooks hooks = {.event = on_event};
    d = device_new(loop, &cfg->devices[0], NULL, &hooks);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(device_start(d), 0);
}

static void stop(void)
{
    device_free(d);
    loop_free(loop);
    config_free(cfg);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static struct timer t_stop;

static void stop_loop(void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void run_for(int ms)
{
    loop_timer_set(loop, &t_stop, loop_now(loop) + ms, stop_loop, NULL);
    loop_run(loop);
}

static json_t *state(void)
{
    char *s = device_state_json(d);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    ck_assert_ptr_nonnull(o);
    return o;
}

static double num(const char *key)
{
    json_t *o = state();
    json_t *v = json_object_get(o, key);
    double r = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(o);
    return r;
}

static bool is_null(const char *key)
{
    json_t *o = state();
    bool r = json_is_null(json_object_get(o, key));
    json_decref(o);
    return r;
}

static char *text(const char *key)
{
    json_t *o = state();
    const char *s = json_string_value(json_object_get(o, key));
    char *r = s ? strdup(s) : NULL;
    json_decref(o);
    return r;
}

// ---- tests ----------------------------------------------------------------------------------

// Values pushed outside any job: whatever lies inside the range is decoded at once, the rest
// waits (a u32 whose second register is missing is not decoded from half of it).
START_TEST(test_pushed_registers_decode_what_they_hold)
{
    start(A_SILENT, "1h");
    run_for(10);
    ck_assert(is_null("a") && is_null("c"));
    fk.bias = 1;
    push(T_INPUT, 0, 26); // 0-25: a, b, c, but only the first half of wide
    run_for(100);
    ck_assert(num("a") == 11);
    ck_assert(num("b") == 81);
    ck_assert(num("c") == 121);
    ck_assert(is_null("wide"));
    // Published at once when no job is in flight, within a second when one is (the first
    // poll may still be waiting for its answer, depending on when the loop started it).
    run_for(1000);
    ck_assert_int_ge(state_events, 1);
    push(T_INPUT, 25, 2); // the u32 alone: high word first (the default word order)
    run_for(100);
    ck_assert(num("wide") == 251.0 * 65536 + 261);
    // Another table's registers at the same addresses do not touch the input entities.
    fk.bias = 5;
    push(T_HOLDING, 0, 20);
    run_for(100);
    ck_assert(num("a") == 11);
    char *s = text("slot");
    ck_assert_str_eq(s, "00:35"); // holding 3 = 35: hour 0, minute 35
    free(s);
    stop();
}
END_TEST

// A READ job answered by a larger block (another client's, a broadcast): the job gets its part.
START_TEST(test_larger_block_answers_the_read)
{
    start(A_LARGER, "200ms");
    fk.bias = 2;
    run_for(350);
    ck_assert_int_ge(fk.reads, 3);
    ck_assert(num("a") == 12);
    ck_assert(num("c") == 122);
    ck_assert(num("wide") == 252.0 * 65536 + 262);
    ck_assert(device_online(d));
    stop();
}
END_TEST

START_TEST(test_exact_answers)
{
    start(A_EXACT, "200ms");
    fk.bias = 3;
    run_for(350);
    ck_assert(num("b") == 83);
    fk.bias = 4; // the next cycle brings new values
    run_for(250);
    ck_assert(num("b") == 84);
    stop();
}
END_TEST

// A read ended with DRV_OK but no values: its entities are unknown, not stale.
START_TEST(test_read_without_values_is_unknown)
{
    start(A_SILENT, "1h");
    fk.bias = 1;
    push(T_INPUT, 0, 30);
    run_for(50);
    ck_assert(num("a") == 11);
    stop();
    start(A_NOTHING, "200ms");
    run_for(350);
    ck_assert_int_ge(fk.reads, 3);
    ck_assert(is_null("a") && is_null("c") && is_null("wide"));
    stop();
}
END_TEST

// Pushed values go out while a job waits for its answer.
START_TEST(test_pushed_while_a_job_waits)
{
    start(A_SILENT, "200ms");
    for (int i = 0; i < 40 && fk.reads == 0; i++)
        run_for(5);                // the first poll comes within the first interval
    ck_assert_int_eq(fk.reads, 1); // in flight, unanswered
    int before = state_events;
    fk.bias = 7;
    push(T_INPUT, 10, 10);
    run_for(1100);
    ck_assert(num("c") == 127);
    ck_assert_int_gt(state_events, before);
    stop();
}
END_TEST

// A text command for a time_hm register becomes that register's value; a time out of range is
// refused before anything is queued.
START_TEST(test_time_text_written_as_register)
{
    start(A_EXACT, "200ms");
    run_for(350);
    const struct entity *e = model_find(cfg->devices[0].model, "slot");
    ck_assert_ptr_nonnull(e);
    struct command_value cv = {0};
    char why[128];
    snprintf(cv.text, sizeof(cv.text), "21:30");
    ck_assert_int_eq(device_command(d, e, &cv, why, sizeof(why)), 0);
    run_for(100);
    ck_assert_int_eq(fk.writes, 1);
    ck_assert_int_eq(fk.last_write.type, DRV_JOB_WRITE);
    ck_assert_uint_eq(fk.last_write.table, T_HOLDING);
    ck_assert_uint_eq(fk.last_write.address, 3);
    ck_assert_uint_eq(fk.last_write.count, 1);
    ck_assert_uint_eq(fk.last_write.regs[0], 0x151E);
    ck_assert_int_lt(fk.last_write.bit, 0);
    snprintf(cv.text, sizeof(cv.text), "24:00");
    ck_assert_int_eq(device_command(d, e, &cv, why, sizeof(why)), -ERANGE);
    ck_assert_ptr_nonnull(strstr(why, "does not fit the time_hm register"));
    run_for(100);
    ck_assert_int_eq(fk.writes, 1);
    stop();
}
END_TEST

// Polls skipped at the start are all asked for again at once with drv_poll_all().
START_TEST(test_poll_all_after_skipping)
{
    start(A_SKIP, "1h");
    run_for(1100);                 // the first cycle starts within a second
    ck_assert_int_eq(fk.reads, 4); // every block once, none answered
    run_for(1000);
    ck_assert_int_eq(fk.reads, 4); // the next cycle is an hour away
    fk.answer = A_EXACT;
    fk.bias = 9;
    drv_poll_all(fk.ctx);
    run_for(100);
    ck_assert_int_eq(fk.reads, 8);
    ck_assert(num("a") == 19 && num("c") == 129);
    stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("device_regs");
    TCase *tc = tcase_create("registers");
    tcase_add_test(tc, test_pushed_registers_decode_what_they_hold);
    tcase_add_test(tc, test_larger_block_answers_the_read);
    tcase_add_test(tc, test_exact_answers);
    tcase_add_test(tc, test_read_without_values_is_unknown);
    tcase_add_test(tc, test_pushed_while_a_job_waits);
    tcase_add_test(tc, test_time_text_written_as_register);
    tcase_add_test(tc, test_poll_all_after_skipping);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
