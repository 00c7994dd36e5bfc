// SPDX-License-Identifier: MIT
// Unit tests for entity state (core/state) and the JSON state message (mqtt/publish).
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "core/mem.h"
#include "core/model.h"
#include "core/state.h"
#include "mqtt/publish.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define METER_FILE E2M_SOURCE_DIR "/tests/unit/data/entities/test/meter.yaml"

// ---- State transitions --------------------------------------------------------------------

enum op { SET_NUM, SET_TEXT, SET_UNKNOWN };

struct transition {
    enum op op;
    double num;
    const char *text;
    bool changed;
};

// One slot walked through every kind of change; each row says whether it counts.
static const struct transition transitions[] = {
    {SET_UNKNOWN, 0, NULL, false}, // it starts unknown
    {SET_NUM, 5, NULL, true},      {SET_NUM, 5, NULL, false},     {SET_NUM, 5.5, NULL, true},
    {SET_NUM, 0, NULL, true},      {SET_NUM, -0.0, NULL, false},  {SET_TEXT, 0, "on", true},
    {SET_TEXT, 0, "on", false},    {SET_TEXT, 0, "off", true},    {SET_TEXT, 0, "", true},
    {SET_UNKNOWN, 0, NULL, true},  {SET_UNKNOWN, 0, NULL, false}, {SET_TEXT, 0, "", true},
    {SET_NUM, 0, NULL, true},      {SET_UNKNOWN, 0, NULL, true},  {SET_NUM, 0, NULL, true},
};

START_TEST(test_transitions)
{
    struct state s;
    state_init(&s, 3);
    ck_assert(!state_known(&s, 0));
    ck_assert(!state_take_changed(&s));
    for (size_t i = 0; i < N(transitions); i++) {
        const struct transition *t = &transitions[i];
        int64_t now = 1000 + (int64_t)i;
        int64_t before = s.v[1].updated_ms;
        bool changed;
        switch (t->op) {
        case SET_NUM: changed = state_set_number(&s, 1, t->num, now); break;
        case SET_TEXT: changed = state_set_text(&s, 1, t->text, now); break;
        default: changed = state_set_unknown(&s, 1, now); break;
        }
        ck_assert_msg(changed == t->changed, "row %zu: expected %s", i,
                      t->changed ? "a change" : "no change");
        ck_assert_int_eq(state_take_changed(&s), t->changed);
        ck_assert(!state_take_changed(&s)); // taking clears it
        ck_assert_int_eq(s.v[1].updated_ms, t->changed ? now : before);
        switch (t->op) {
        case SET_NUM:
            ck_assert_int_eq(s.v[1].kind, VALUE_NUMBER);
            ck_assert_double_eq(s.v[1].num, t->num);
            break;
        case SET_TEXT:
            ck_assert_int_eq(s.v[1].kind, VALUE_TEXT);
            ck_assert_str_eq(s.v[1].text, t->text);
            ck_assert_ptr_ne(s.v[1].text, t->text); // a copy
            break;
        default: ck_assert(!state_known(&s, 1)); break;
        }
        // The neighbours never move.
        ck_assert(!state_known(&s, 0));
        ck_assert(!state_known(&s, 2));
    }
    state_free(&s);
    ck_assert_ptr_null(s.v);
}
END_TEST

START_TEST(test_changed_accumulates)
{
    struct state s;
    state_init(&s, 2);
    state_set_number(&s, 0, 1, 1);
    state_set_number(&s, 0, 1, 2); // no change, but the earlier one still counts
    ck_assert(state_take_changed(&s));
    ck_assert(!state_take_changed(&s));
    state_set_text(&s, 1, "x", 3);
    state_set_text(&s, 1, "y", 4);
    ck_assert(state_take_changed(&s));
    state_free(&s);
}
END_TEST

START_TEST(test_empty_state)
{
    struct state s;
    state_init(&s, 0);
    ck_assert_uint_eq(s.n, 0);
    ck_assert(!state_take_changed(&s));
    state_free(&s);
}
END_TEST

// ---- The state message --------------------------------------------------------------------

static struct arena *arena;
static struct model *model;
static struct device_config dev;
static struct state st;

static void setup(void)
{
    arena = arena_new();
    struct diag d;
    diag_init(&d);
    model = model_load_file(arena, METER_FILE, "test/meter", &d);
    if (!model)
        diag_print(&d, stderr);
    ck_assert_ptr_nonnull(model);
    diag_free(&d);
    dev = (struct device_config){.id = "m1", .name = "Meter", .model = model};
    dev.disabled = arena_alloc(arena, model->n_entities * sizeof(bool));
    state_init(&st, model->n_entities);
}

static void teardown(void)
{
    state_free(&st);
    arena_free(arena);
}

static size_t idx(const char *id)
{
    const struct entity *e = model_find(model, id);
    ck_assert_msg(e != NULL, "no entity %s in the fixture", id);
    return model_index(model, e);
}

static void set_num(const char *id, double v)
{
    state_set_number(&st, idx(id), v, 1);
}

static void set_text(const char *id, const char *t)
{
    state_set_text(&st, idx(id), t, 1);
}

START_TEST(test_full_message)
{
    set_num("voltage", 230.1);
    set_num("power", 1500);
    set_num("energy", 12345.67);
    set_text("status", "running");
    set_text("serial", "AB12");
    set_num("raw_power", 7);
    set_num("limit", 80);
    set_num("setpoint", -12.5);
    set_text("mode", "Économie");
    set_text("relay", "ON");
    set_text("alarm", "OFF");
    set_num("frequency", 49.99);
    set_num("reset", 1); // a button never has a state, whatever the slot holds
    struct device_diag dg = {"online", 1700006400000LL, 3, NULL};
    char *json = publish_state_json(&dev, &st, &dg);
    ck_assert_str_eq(json, "{\"voltage\":230.1,\"power\":1500,\"energy\":12345.67,"
                           "\"status\":\"running\",\"serial\":\"AB12\",\"net_power\":null,"
                           "\"limit\":80,\"setpoint\":-12.5,\"mode\":\"Économie\","
                           "\"relay\":\"ON\",\"alarm\":\"OFF\",\"frequency\":49.99,"
                           "\"link_status\":\"online\",\"last_seen\":\"2023-11-15T00:00:00Z\","
                           "\"poll_errors\":3}");
    free(json);
}
END_TEST

START_TEST(test_unknown_disabled_and_never_seen)
{
    dev.disabled[idx("power")] = true;
    dev.disabled[idx("status")] = true;
    set_num("power", 5);
    set_num("voltage", 230);
    struct device_diag dg = {"offline", 0, 0, NULL};
    char *text = publish_state_json(&dev, &st, &dg);
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_null(json_object_get(o, "power"));
    ck_assert_ptr_null(json_object_get(o, "status"));
    ck_assert_ptr_null(json_object_get(o, "reset"));
    ck_assert_ptr_null(json_object_get(o, "raw_power"));
    ck_assert(json_is_integer(json_object_get(o, "voltage")));
    ck_assert(json_is_null(json_object_get(o, "energy")));
    ck_assert(json_is_null(json_object_get(o, "mode")));
    ck_assert(json_is_null(json_object_get(o, "last_seen")));
    ck_assert_str_eq(json_string_value(json_object_get(o, "link_status")), "offline");
    ck_assert(json_is_integer(json_object_get(o, "poll_errors")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "poll_errors")), 0);
    // 14 entities minus button, internal and two disabled, plus three diagnostics.
    ck_assert_uint_eq(json_object_size(o), 14 - 4 + 3);
    ck_assert_ptr_null(strstr(text, " ")); // compact
    json_decref(o);
    free(text);
}
END_TEST

struct number_case {
    double v;
    const char *text;
};

static const struct number_case number_cases[] = {
    {230.1, "230.1"},
    {-0.5, "-0.5"},
    {1500, "1500"},
    {-3, "-3"},
    {0, "0"},
    {-0.0, "0"},
    {12345.67, "12345.67"},
    {0.1 + 0.2, "0.3"}, // 15 significant digits hide binary noise
    {49.99, "49.99"},
    {0.001, "0.001"},
    {123456789.123, "123456789.123"},
    {1e15, "1000000000000000"},
    {4294967295.0, "4294967295"},
    {-2147483648.0, "-2147483648"},
    {99999.95, "99999.95"},
};

START_TEST(test_number_format)
{
    const struct number_case *c = &number_cases[_i];
    set_num("voltage", c->v);
    struct device_diag dg = {"online", 0, 0, NULL};
    char *json = publish_state_json(&dev, &st, &dg);
    char want[64];
    snprintf(want, sizeof(want), "{\"voltage\":%s,", c->text);
    ck_assert_msg(strncmp(json, want, strlen(want)) == 0, "%g: expected %s..., got %s", c->v, want,
                  json);
    free(json);
}
END_TEST

struct time_case {
    int64_t ms;
    const char *iso;
};

static const struct time_case time_cases[] = {
    {0, "1970-01-01T00:00:00Z"},
    {1999, "1970-01-01T00:00:01Z"}, // whole seconds, truncated
    {1700006400000LL, "2023-11-15T00:00:00Z"},
    {951782400000LL, "2000-02-29T00:00:00Z"},
    {1798761599000LL, "2026-12-31T23:59:59Z"},
    {4102444800000LL, "2100-01-01T00:00:00Z"},
};

START_TEST(test_iso_time)
{
    char out[40];
    publish_iso_time(time_cases[_i].ms, out, sizeof(out));
    ck_assert_str_eq(out, time_cases[_i].iso);
}
END_TEST

static Suite *state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("state");
    tcase_add_test(tc, test_transitions);
    tcase_add_test(tc, test_changed_accumulates);
    tcase_add_test(tc, test_empty_state);
    suite_add_tcase(s, tc);

    TCase *pc = tcase_create("publish");
    tcase_add_checked_fixture(pc, setup, teardown);
    tcase_add_test(pc, test_full_message);
    tcase_add_test(pc, test_unknown_disabled_and_never_seen);
    tcase_add_loop_test(pc, test_number_format, 0, N(number_cases));
    tcase_add_loop_test(pc, test_iso_time, 0, N(time_cases));
    suite_add_tcase(s, pc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(state_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
