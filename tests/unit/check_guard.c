// SPDX-License-Identifier: MIT
// Unit tests for the counter guard (core/guard): scripted reading sequences per rule.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/guard.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MIN  60000LL
#define HOUR (60 * MIN)

enum { A = GUARD_ACCEPT, RESET = GUARD_ACCEPT_RESET, REBASE = GUARD_ACCEPT_REBASE };
enum { CONF = GUARD_ACCEPT_CONFIRMED, ZERO = GUARD_REJECT_ZERO };
enum { DEC = GUARD_REJECT_DECREASE, SPIKE = GUARD_REJECT_SPIKE };

struct step {
    double value;
    int64_t t_ms;
    int verdict;
    double mark; // the mark afterwards (NAN: do not check)
};

struct script {
    const char *name;
    enum counter_kind kind;
    double max_rate, noise;
    struct step steps[8];
    size_t n;
};

static const struct script scripts[] = {
    {"first value accepted", COUNTER_LIFETIME, 0, 0, {{1234.5, 0, A, 1234.5}}, 1},
    {"increase accepted, decrease and zero refused",
     COUNTER_LIFETIME,
     0,
     0,
     {{100, 0, A, 100},
      {101, MIN, A, 101},
      {100.5, 2 * MIN, DEC, 101},
      {0, 3 * MIN, ZERO, 101},
      {101.2, 4 * MIN, A, 101.2}},
     5},
    {"a zero first reading is a value like any other",
     COUNTER_LIFETIME,
     0,
     0,
     {{0, 0, A, 0}, {5, MIN, A, 5}},
     2},
    {"noise band below the mark is not a decrease",
     COUNTER_LIFETIME,
     0,
     0.01,
     // A reading rounded to 2 decimals may sit just below a mark stored with more digits;
     // the mark itself never goes down.
     {{100.004, 0, A, 100.004}, {100.0, MIN, A, 100.004}, {99.99, 2 * MIN, DEC, 100.004}},
     3},
    {"rise within max_rate accepted",
     COUNTER_LIFETIME,
     10, // kWh per hour
     0,
     {{100, 0, A, 100}, {119, HOUR, A, 119}, {127, HOUR + 30 * MIN, A, 127}},
     3},
    {"spike held back, then confirmed",
     COUNTER_LIFETIME,
     10,
     0,
     {{100, 0, A, 100},
      {500, MIN, SPIKE, 100},
      {501, 2 * MIN, SPIKE, 100},
      {502, 3 * MIN, CONF, 502},
      {503, 4 * MIN, A, 503}},
     5},
    {"spike not confirmed when the next reading drops back",
     COUNTER_LIFETIME,
     10,
     0,
     {{100, 0, A, 100},
      {500, MIN, SPIKE, 100},
      {100.1, 2 * MIN, A, 100.1},
      {500, 3 * MIN, SPIKE, 100.1},
      {501, 4 * MIN, SPIKE, 100.1},
      {100.2, 5 * MIN, A, 100.2}},
     6},
    {"a confirming reading must stay at or above the spike",
     COUNTER_LIFETIME,
     10,
     0,
     {{100, 0, A, 100},
      {500, MIN, SPIKE, 100},
      {400, 2 * MIN, SPIKE, 100}, // starts a new candidate at 400
      {401, 3 * MIN, SPIKE, 100},
      {402, 4 * MIN, CONF, 402}},
     5},
    {"max_rate scales with the time since the mark",
     COUNTER_LIFETIME,
     10,
     0,
     // 10 h later, up to 10 * (10 + 1) = 110 is plausible.
     {{100, 0, A, 100}, {209, 10 * HOUR, A, 209}},
     2},
    {"daily: reset to near zero accepted, other decreases refused",
     COUNTER_DAILY,
     0,
     0,
     {{20, 0, A, 20},
      {19, MIN, DEC, 20},
      {1, 2 * MIN, RESET, 1}, // 1 <= 5 % of 20
      {0, 3 * MIN, RESET, 0},
      {3, 4 * MIN, A, 3}},
     5},
    {"daily: 5 % is the limit",
     COUNTER_DAILY,
     0,
     0,
     {{100, 0, A, 100}, {5.1, MIN, DEC, 100}, {5, 2 * MIN, RESET, 5}},
     3},
    {"daily: a zero after a reset-free day",
     COUNTER_DAILY,
     0,
     0,
     {{12.5, 0, A, 12.5}, {0, MIN, RESET, 0}},
     2},
    {"none: anything finite goes",
     COUNTER_NONE,
     10,
     0,
     {{100, 0, A, NAN}, {-5, MIN, A, NAN}, {0, 2 * MIN, A, NAN}, {1e9, 3 * MIN, A, NAN}},
     4},
    {"NaN and infinity refused",
     COUNTER_LIFETIME,
     0,
     0,
     {{NAN, 0, SPIKE, NAN}, {10, MIN, A, 10}, {INFINITY, 2 * MIN, SPIKE, 10}, {11, 3 * MIN, A, 11}},
     4},
    {"NaN refused without a counter too",
     COUNTER_NONE,
     0,
     0,
     {{NAN, 0, SPIKE, NAN}, {-INFINITY, 0, SPIKE, NAN}},
     2},
};

// Most cases care only about the verdict.
static enum guard_verdict gc(struct guard *g, enum counter_kind kind, double max_rate, double noise,
                             double value, int64_t now_ms)
{
    double out;
    return guard_check(g, kind, max_rate, noise, value, now_ms, &out);
}

START_TEST(test_script)
{
    const struct script *s = &scripts[_i];
    struct guard g;
    memset(&g, 0, sizeof(g));
    for (size_t i = 0; i < s->n; i++) {
        const struct step *st = &s->steps[i];
        enum guard_verdict v = gc(&g, s->kind, s->max_rate, s->noise, st->value, st->t_ms);
        ck_assert_msg((int)v == st->verdict, "%s, step %zu (%g): expected '%s', got '%s'", s->name,
                      i, st->value, guard_verdict_name((enum guard_verdict)st->verdict),
                      guard_verdict_name(v));
        ck_assert(guard_accepted(v) == (st->verdict <= GUARD_ACCEPT_CONFIRMED));
        if (!isnan(st->mark)) {
            ck_assert(g.has_mark);
            ck_assert_msg(g.mark == st->mark, "%s, step %zu: mark %g, expected %g", s->name, i,
                          g.mark, st->mark);
        }
    }
}
END_TEST

START_TEST(test_mark_time_follows_acceptance)
{
    struct guard g = {0};
    gc(&g, COUNTER_LIFETIME, 0, 0, 10, 1000);
    ck_assert_int_eq(g.mark_ms, 1000);
    gc(&g, COUNTER_LIFETIME, 0, 0, 9, 2000); // refused: the time stays
    ck_assert_int_eq(g.mark_ms, 1000);
    gc(&g, COUNTER_LIFETIME, 0, 0, 11, 3000);
    ck_assert_int_eq(g.mark_ms, 3000);
}
END_TEST

// A replaced meter: after GUARD_REBASE_AFTER consistent lower readings the new level is
// trusted; before that, every one is refused.
START_TEST(test_rebase_after_consistent_lower_readings)
{
    struct guard g = {0};
    ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, 5000, 0), GUARD_ACCEPT);
    double v = 10;
    for (int i = 1; i < GUARD_REBASE_AFTER; i++) {
        v += 0.1;
        ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, v, i * MIN), GUARD_REJECT_DECREASE);
        ck_assert_double_eq(g.mark, 5000);
    }
    v += 0.1;
    ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, v, GUARD_REBASE_AFTER * MIN),
                     GUARD_ACCEPT_REBASE);
    ck_assert_double_eq(g.mark, v);
    // From the new level on, the ordinary rules apply again.
    ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, v - 1, 100 * MIN), GUARD_REJECT_DECREASE);
    ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, v + 1, 101 * MIN), GUARD_ACCEPT);
}
END_TEST

// Lower readings that keep decreasing among themselves are glitches, not a new meter.
START_TEST(test_no_rebase_when_inconsistent)
{
    struct guard g = {0};
    gc(&g, COUNTER_LIFETIME, 0, 0, 5000, 0);
    double v = 1000;
    for (int i = 1; i <= 3 * GUARD_REBASE_AFTER; i++) {
        v -= 1;
        ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, v, i * MIN), GUARD_REJECT_DECREASE);
    }
    ck_assert_double_eq(g.mark, 5000);
    ck_assert(g.low_count <= 1);
}
END_TEST

// Alternating lower readings with good ones never add up to a rebase.
START_TEST(test_no_rebase_when_interrupted)
{
    struct guard g = {0};
    gc(&g, COUNTER_LIFETIME, 0, 0, 5000, 0);
    for (int i = 1; i <= 2 * GUARD_REBASE_AFTER; i++) {
        if (i % 10 == 0)
            ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, 5000 + i, i * MIN), GUARD_ACCEPT);
        else
            ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 0, 0, 10, i * MIN), GUARD_REJECT_DECREASE);
    }
    ck_assert(g.mark >= 5000);
}
END_TEST

// A spike candidate interrupted by a lower reading starts over.
START_TEST(test_spike_count_restarts)
{
    struct guard g = {0};
    gc(&g, COUNTER_LIFETIME, 1, 0, 100, 0);
    for (int round = 0; round < 5; round++) {
        ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 1, 0, 900, MIN), GUARD_REJECT_SPIKE);
        ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 1, 0, 901, MIN), GUARD_REJECT_SPIKE);
        ck_assert_int_eq(gc(&g, COUNTER_LIFETIME, 1, 0, 99, MIN), GUARD_REJECT_DECREASE);
    }
    ck_assert_double_eq(g.mark, 100);
}
END_TEST

START_TEST(test_verdict_names)
{
    for (int v = GUARD_ACCEPT; v <= GUARD_REJECT_SPIKE; v++) {
        const char *n = guard_verdict_name((enum guard_verdict)v);
        ck_assert_ptr_nonnull(n);
        ck_assert_str_ne(n, "?");
        for (int w = GUARD_ACCEPT; w < v; w++)
            ck_assert_str_ne(n, guard_verdict_name((enum guard_verdict)w));
    }
}
END_TEST

// A continuous counter carries the device's own reset (resetEnergy) over: the published total
// keeps rising from where it was.
START_TEST(test_continuous_carries_reset)
{
    struct guard g = {0};
    double out = 0;
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 100, 0, &out), GUARD_ACCEPT);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 120, 1000, &out), GUARD_ACCEPT);
    ck_assert(out == 120);
    // The reset: 0, then slowly rising. Held back until it has held three readings.
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 0, 2000, &out),
                     GUARD_REJECT_DECREASE);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 0.5, 3000, &out),
                     GUARD_REJECT_DECREASE);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 1, 4000, &out),
                     GUARD_ACCEPT_CONTINUED);
    ck_assert(out == 121); // 120 carried + 1
    ck_assert(g.offset == 120);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 5, 5000, &out), GUARD_ACCEPT);
    ck_assert(out == 125);
}
END_TEST

// A zero that comes back up is a glitch, never a reset: nothing is counted twice.
START_TEST(test_continuous_glitch_not_a_reset)
{
    struct guard g = {0};
    double out = 0;
    guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 100, 0, &out);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 0, 1000, &out),
                     GUARD_REJECT_DECREASE);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 0, 2000, &out),
                     GUARD_REJECT_DECREASE);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, 101, 3000, &out), GUARD_ACCEPT);
    ck_assert(out == 101);
    ck_assert(g.offset == 0);
    // A lasting lower level (not near zero) continues from the total reached.
    double v = 60;
    enum guard_verdict r = GUARD_REJECT_DECREASE;
    for (int k = 0; k < GUARD_REBASE_AFTER; k++)
        r = guard_check(&g, COUNTER_CONTINUOUS, 0, 0, v + k * 0.1, 4000 + k * 1000, &out);
    ck_assert_int_eq(r, GUARD_ACCEPT_REBASE);
    ck_assert(fabs(out - 101) < 1e-9);
    ck_assert_int_eq(guard_check(&g, COUNTER_CONTINUOUS, 0, 0, v + 10, 90000, &out), GUARD_ACCEPT);
    ck_assert(out > 101);
}
END_TEST

static Suite *guard_suite(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("scripts");
    tcase_add_loop_test(tc, test_script, 0, N(scripts));
    suite_add_tcase(s, tc);
    TCase *rc = tcase_create("rules");
    tcase_add_test(rc, test_mark_time_follows_acceptance);
    tcase_add_test(rc, test_rebase_after_consistent_lower_readings);
    tcase_add_test(rc, test_no_rebase_when_inconsistent);
    tcase_add_test(rc, test_no_rebase_when_interrupted);
    tcase_add_test(rc, test_spike_count_restarts);
    tcase_add_test(rc, test_verdict_names);
    tcase_add_test(rc, test_continuous_carries_reset);
    tcase_add_test(rc, test_continuous_glitch_not_a_reset);
    suite_add_tcase(s, rc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(guard_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
