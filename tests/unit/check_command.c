// SPDX-License-Identifier: MIT
// Unit tests for command topics and payload validation (mqtt/command), against the entities
// of the test meter fixture.
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/diag.h"
#include "core/mem.h"
#include "core/model.h"
#include "mqtt/command.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define METER_FILE E2M_SOURCE_DIR "/tests/unit/data/entities/test/meter.yaml"

// ---- Topics -------------------------------------------------------------------------------

#define ID64 "abcdefghijklmnopqrstuvwxyz0123456789_-abcdefghijklmnopqrstuvwxyz"

struct topic_case {
    const char *base, *topic;
    const char *device, *entity; // NULL: CMD_BAD_TOPIC
};

static const struct topic_case topic_cases[] = {
    {"energy2mqtt", "energy2mqtt/m1/limit/set", "m1", "limit"},
    {"energy2mqtt", "energy2mqtt/meter-1/l1_power/set", "meter-1", "l1_power"},
    {"home/e2m", "home/e2m/m1/limit/set", "m1", "limit"},
    {"energy2mqtt", "energy2mqtt/bridge/republish/set", "bridge", "republish"},
    {"energy2mqtt", "energy2mqtt/" ID64 "/" ID64 "/set", ID64, ID64},
    {"energy2mqtt", "other/m1/limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqttx/m1/limit/set", NULL, NULL}, // base is only a prefix
    {"energy2mqtt", "energy2mqtt", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/limit", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/limit/", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/limit/state", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/limit/SET", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/limit/set/", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/limit/set/x", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/x/limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt//limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1//set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt///set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/M1/limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/Limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m 1/limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m+/limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/#/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/lim.it/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/" ID64 "x/limit/set", NULL, NULL},
    {"energy2mqtt", "energy2mqtt/m1/" ID64 "x/set", NULL, NULL},
    {"energy2mqtt", "/energy2mqtt/m1/limit/set", NULL, NULL},
    {"home/e2m", "home/m1/limit/set", NULL, NULL},
};

START_TEST(test_parse_topic)
{
    const struct topic_case *c = &topic_cases[_i];
    char dev[COMMAND_MAX_ID + 1] = "", ent[COMMAND_MAX_ID + 1] = "";
    enum command_error rc = command_parse_topic(c->base, c->topic, dev, ent);
    if (!c->device) {
        ck_assert_msg(rc == CMD_BAD_TOPIC, "'%s' was accepted", c->topic);
        return;
    }
    ck_assert_msg(rc == CMD_OK, "'%s' refused", c->topic);
    ck_assert_str_eq(dev, c->device);
    ck_assert_str_eq(ent, c->entity);
}
END_TEST

// ---- Payloads -----------------------------------------------------------------------------

static struct arena *arena;
static struct model *model;

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
}

static void teardown(void)
{
    arena_free(arena);
}

static const struct entity *ent(const char *id)
{
    const struct entity *e = model_find(model, id);
    ck_assert_msg(e != NULL, "no entity %s in the fixture", id);
    return e;
}

struct payload_case {
    const char *entity;
    const char *payload;
    int len; // -1: strlen
    enum command_error want;
    double value;
    const char *label; // selects
};

static const struct payload_case payload_cases[] = {
    // number 0..100 step 1
    {"limit", "42", -1, CMD_OK, 42, NULL},
    {"limit", " 42 \n", -1, CMD_OK, 42, NULL},
    {"limit", "\t7\r\n", -1, CMD_OK, 7, NULL},
    {"limit", "0", -1, CMD_OK, 0, NULL},
    {"limit", "100", -1, CMD_OK, 100, NULL},
    {"limit", "+5", -1, CMD_OK, 5, NULL},
    {"limit", "5.", -1, CMD_OK, 5, NULL},
    {"limit", "42.0", -1, CMD_OK, 42, NULL},
    {"limit", "1e2", -1, CMD_OK, 100, NULL},
    {"limit", "2.5e1", -1, CMD_OK, 25, NULL},
    {"limit", "1e3", -1, CMD_OUT_OF_RANGE, 0, NULL}, // a number, just too big
    {"limit", "-1", -1, CMD_OUT_OF_RANGE, 0, NULL},
    {"limit", "101", -1, CMD_OUT_OF_RANGE, 0, NULL},
    {"limit", "100.0001", -1, CMD_OUT_OF_RANGE, 0, NULL},
    {"limit", "42.5", -1, CMD_OFF_STEP, 0, NULL},
    {"limit", "abc", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "nan", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "NaN", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "inf", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "-inf", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "infinity", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "0x10", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "   ", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "1e", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "--5", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "1,5", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "4 2", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "42W", -1, CMD_NOT_A_NUMBER, 0, NULL},
    {"limit", "1e400", -1, CMD_NOT_A_NUMBER, 0, NULL},
    // number -50..50 step 0.5
    {"setpoint", "-12.5", -1, CMD_OK, -12.5, NULL},
    {"setpoint", "0.5", -1, CMD_OK, 0.5, NULL},
    {"setpoint", "12.50", -1, CMD_OK, 12.5, NULL},
    {"setpoint", "-50", -1, CMD_OK, -50, NULL},
    {"setpoint", "50", -1, CMD_OK, 50, NULL},
    {"setpoint", "0.25", -1, CMD_OFF_STEP, 0, NULL},
    {"setpoint", "0.1", -1, CMD_OFF_STEP, 0, NULL},
    {"setpoint", "50.5", -1, CMD_OUT_OF_RANGE, 0, NULL},
    {"setpoint", "-50.5", -1, CMD_OUT_OF_RANGE, 0, NULL},
    // select auto / Économie / manual
    {"mode", "auto", -1, CMD_OK, 0, "auto"},
    {"mode", "Économie", -1, CMD_OK, 1, "Économie"},
    {"mode", " manual\n", -1, CMD_OK, 2, "manual"},
    {"mode", "AUTO", -1, CMD_UNKNOWN_OPTION, 0, NULL},
    {"mode", "Auto", -1, CMD_UNKNOWN_OPTION, 0, NULL},
    {"mode", "économie", -1, CMD_UNKNOWN_OPTION, 0, NULL},
    {"mode", "Economie", -1, CMD_UNKNOWN_OPTION, 0, NULL},
    {"mode", "0", -1, CMD_UNKNOWN_OPTION, 0, NULL}, // raw values are not labels
    {"mode", "", -1, CMD_UNKNOWN_OPTION, 0, NULL},
    {"mode", "\xF0\x9F\x98\x80", -1, CMD_UNKNOWN_OPTION, 0, NULL}, // valid 4-byte UTF-8
    // switch
    {"relay", "ON", -1, CMD_OK, 1, NULL},
    {"relay", "OFF", -1, CMD_OK, 0, NULL},
    {"relay", "on", -1, CMD_OK, 1, NULL},
    {"relay", "off", -1, CMD_OK, 0, NULL},
    {"relay", " ON\n", -1, CMD_OK, 1, NULL},
    {"relay", "true", -1, CMD_BAD_SWITCH, 0, NULL},
    {"relay", "1", -1, CMD_BAD_SWITCH, 0, NULL},
    {"relay", "ONN", -1, CMD_BAD_SWITCH, 0, NULL},
    {"relay", "", -1, CMD_BAD_SWITCH, 0, NULL},
    // button
    {"reset", "PRESS", -1, CMD_OK, 1, NULL},
    {"reset", "PRESS\n", -1, CMD_OK, 1, NULL},
    {"reset", "press", -1, CMD_BAD_PRESS, 0, NULL},
    {"reset", "ON", -1, CMD_BAD_PRESS, 0, NULL},
    {"reset", "", -1, CMD_BAD_PRESS, 0, NULL},
    // not writable
    {"voltage", "230", -1, CMD_NOT_WRITABLE, 0, NULL},
    {"status", "running", -1, CMD_NOT_WRITABLE, 0, NULL},
    {"alarm", "ON", -1, CMD_NOT_WRITABLE, 0, NULL},
    {"raw_power", "1", -1, CMD_NOT_WRITABLE, 0, NULL},
    {"net_power", "1", -1, CMD_NOT_WRITABLE, 0, NULL},
    // invalid UTF-8
    {"mode", "\xC0\xAF", -1, CMD_NOT_UTF8, 0, NULL},         // overlong '/'
    {"mode", "\xE0\x80\xAF", -1, CMD_NOT_UTF8, 0, NULL},     // overlong, 3 bytes
    {"mode", "\xF0\x80\x80\xAF", -1, CMD_NOT_UTF8, 0, NULL}, // overlong, 4 bytes
    {"mode", "\xED\xA0\x80", -1, CMD_NOT_UTF8, 0, NULL},     // surrogate U+D800
    {"mode", "\xED\xBF\xBF", -1, CMD_NOT_UTF8, 0, NULL},     // surrogate U+DFFF
    {"mode", "\xF4\x90\x80\x80", -1, CMD_NOT_UTF8, 0, NULL}, // above U+10FFFF
    {"mode", "auto\xC3", -1, CMD_NOT_UTF8, 0, NULL},         // truncated 2-byte
    {"mode", "\xE2\x82", -1, CMD_NOT_UTF8, 0, NULL},         // truncated 3-byte
    {"mode", "\xC3(", -1, CMD_NOT_UTF8, 0, NULL},            // bad continuation
    {"mode", "\x80", -1, CMD_NOT_UTF8, 0, NULL},             // lone continuation
    {"mode", "\xFF", -1, CMD_NOT_UTF8, 0, NULL},
    {"mode", "\xFE", -1, CMD_NOT_UTF8, 0, NULL},
    {"mode", "\xF8\x88\x80\x80\x80", -1, CMD_NOT_UTF8, 0, NULL}, // 5-byte form
    {"mode", "au\0to", 5, CMD_NOT_UTF8, 0, NULL},                // embedded NUL
    {"limit",
     "4\0"
     "2",
     3, CMD_NOT_UTF8, 0, NULL},
    {"relay", "ON\0", 3, CMD_NOT_UTF8, 0, NULL},
};

START_TEST(test_validate)
{
    const struct payload_case *c = &payload_cases[_i];
    const struct entity *e = ent(c->entity);
    size_t len = c->len < 0 ? strlen(c->payload) : (size_t)c->len;
    struct command_value v = {.value = 12345, .label = "junk"};
    char why[200] = "";
    enum command_error rc =
        command_validate(e, (const uint8_t *)c->payload, len, &v, why, sizeof(why));
    ck_assert_msg(rc == c->want, "%s <- '%s': expected '%s', got '%s' (%s)", c->entity, c->payload,
                  command_error_name(c->want), command_error_name(rc), why);
    if (rc != CMD_OK) {
        ck_assert_msg(why[0] != '\0', "no reason given");
        return;
    }
    ck_assert_msg(v.value == c->value, "%s <- '%s': value %g, expected %g", c->entity, c->payload,
                  v.value, c->value);
    if (e->component == COMP_SELECT) {
        ck_assert_ptr_nonnull(v.label);
        ck_assert_str_eq(v.label, c->label);
    } else {
        ck_assert_ptr_null(v.label);
    }
    if (e->component == COMP_SWITCH)
        ck_assert_int_eq(v.on, c->value == e->on_value);
}
END_TEST

static void fill(uint8_t *buf, size_t n, char c)
{
    memset(buf, c, n);
}

START_TEST(test_payload_size_limit)
{
    uint8_t buf[COMMAND_MAX_PAYLOAD + 2];
    struct command_value v;
    char why[200] = "";
    // 257 bytes: refused before anything else is looked at.
    fill(buf, COMMAND_MAX_PAYLOAD + 1, '1');
    ck_assert_int_eq(
        command_validate(ent("limit"), buf, COMMAND_MAX_PAYLOAD + 1, &v, why, sizeof(why)),
        CMD_TOO_LONG);
    ck_assert_ptr_nonnull(strstr(why, "257"));
    fill(buf, COMMAND_MAX_PAYLOAD + 1, 0xFF);
    ck_assert_int_eq(
        command_validate(ent("mode"), buf, COMMAND_MAX_PAYLOAD + 1, &v, why, sizeof(why)),
        CMD_TOO_LONG);
    // 256 bytes is allowed in: whitespace around a number is trimmed.
    fill(buf, COMMAND_MAX_PAYLOAD, ' ');
    buf[100] = '4';
    buf[101] = '2';
    ck_assert_int_eq(command_validate(ent("limit"), buf, COMMAND_MAX_PAYLOAD, &v, why, sizeof(why)),
                     CMD_OK);
    ck_assert_double_eq(v.value, 42);
    // A sensor is refused whatever the payload.
    ck_assert_int_eq(
        command_validate(ent("voltage"), buf, COMMAND_MAX_PAYLOAD + 1, &v, why, sizeof(why)),
        CMD_NOT_WRITABLE);
}
END_TEST

START_TEST(test_internal_writable_refused)
{
    struct entity e = *ent("limit");
    e.internal = true;
    struct command_value v;
    char why[200] = "";
    ck_assert_int_eq(command_validate(&e, (const uint8_t *)"42", 2, &v, why, sizeof(why)),
                     CMD_NOT_WRITABLE);
}
END_TEST

START_TEST(test_switch_custom_values)
{
    struct entity e = *ent("relay");
    e.on_value = 0xFF00;
    e.off_value = 7;
    struct command_value v;
    char why[200] = "";
    ck_assert_int_eq(command_validate(&e, (const uint8_t *)"ON", 2, &v, why, sizeof(why)), CMD_OK);
    ck_assert(v.on);
    ck_assert_double_eq(v.value, 0xFF00);
    ck_assert_int_eq(command_validate(&e, (const uint8_t *)"OFF", 3, &v, why, sizeof(why)), CMD_OK);
    ck_assert(!v.on);
    ck_assert_double_eq(v.value, 7);
}
END_TEST

// Text entities: the payload (trimmed) must match the pattern and hold no control characters;
// without a pattern any text up to 255 bytes goes.
struct text_case {
    const char *pattern;
    const char *payload;
    enum command_error rc;
    const char *text; // what the command carries
};

#define TIME_OF_DAY "^([01][0-9]|2[0-3]):[0-5][0-9]$"

static const struct text_case text_cases[] = {
    {TIME_OF_DAY, "06:30", CMD_OK, "06:30"},
    {TIME_OF_DAY, " 23:59\n", CMD_OK, "23:59"},
    {TIME_OF_DAY, "00:00", CMD_OK, "00:00"},
    {TIME_OF_DAY, "24:00", CMD_BAD_TEXT, NULL},
    {TIME_OF_DAY, "6:30", CMD_BAD_TEXT, NULL},
    {TIME_OF_DAY, "06:60", CMD_BAD_TEXT, NULL},
    {TIME_OF_DAY, "06:30x", CMD_BAD_TEXT, NULL},
    {TIME_OF_DAY, "", CMD_BAD_TEXT, NULL},
    {"^0?1?2?3?4?5?6?$", "", CMD_OK, ""},
    {"^0?1?2?3?4?5?6?$", "12345", CMD_OK, "12345"},
    {"^0?1?2?3?4?5?6?$", "54321", CMD_BAD_TEXT, NULL},
    {NULL, "any text at all", CMD_OK, "any text at all"},
    {NULL, "tab\tinside", CMD_BAD_TEXT, NULL},
    {NULL, "del\x7f", CMD_BAD_TEXT, NULL},
    {NULL, "caf\xc3\xa9", CMD_OK, "caf\xc3\xa9"},
    {NULL, "bad \xff utf-8", CMD_NOT_UTF8, NULL},
};

START_TEST(test_text)
{
    const struct text_case *c = &text_cases[_i];
    struct entity e = {.id = "slot",
                       .component = COMP_TEXT,
                       .writable = true,
                       .text = true,
                       .pattern = c->pattern};
    struct command_value v;
    char why[300] = "";
    enum command_error rc =
        command_validate(&e, (const uint8_t *)c->payload, strlen(c->payload), &v, why, sizeof(why));
    ck_assert_msg(rc == c->rc, "'%s': %s (%s)", c->payload, command_error_name(rc), why);
    if (rc == CMD_OK)
        ck_assert_str_eq(v.text, c->text);
    else
        ck_assert_msg(why[0], "no reason");
}
END_TEST

START_TEST(test_text_length)
{
    struct entity e = {.id = "t", .component = COMP_TEXT, .writable = true, .text = true};
    char buf[COMMAND_MAX_PAYLOAD + 1];
    memset(buf, 'a', sizeof(buf));
    struct command_value v;
    char why[300];
    ck_assert_int_eq(
        command_validate(&e, (const uint8_t *)buf, COMMAND_MAX_TEXT, &v, why, sizeof(why)), CMD_OK);
    ck_assert_uint_eq(strlen(v.text), COMMAND_MAX_TEXT);
    ck_assert_int_eq(
        command_validate(&e, (const uint8_t *)buf, COMMAND_MAX_TEXT + 1, &v, why, sizeof(why)),
        CMD_BAD_TEXT);
    e.internal = true;
    ck_assert_int_eq(command_validate(&e, (const uint8_t *)"x", 1, &v, why, sizeof(why)),
                     CMD_NOT_WRITABLE);
}
END_TEST

START_TEST(test_error_names)
{
    for (int a = CMD_OK; a <= CMD_BAD_TEXT; a++) {
        ck_assert_str_ne(command_error_name((enum command_error)a), "?");
        for (int b = CMD_OK; b < a; b++)
            ck_assert_str_ne(command_error_name((enum command_error)a),
                             command_error_name((enum command_error)b));
    }
}
END_TEST

static Suite *command_suite(void)
{
    Suite *s = suite_create("command");
    TCase *tc = tcase_create("topic");
    tcase_add_loop_test(tc, test_parse_topic, 0, N(topic_cases));
    tcase_add_test(tc, test_error_names);
    tcase_add_loop_test(tc, test_text, 0, N(text_cases));
    tcase_add_test(tc, test_text_length);
    suite_add_tcase(s, tc);

    TCase *pc = tcase_create("payload");
    tcase_add_checked_fixture(pc, setup, teardown);
    tcase_add_loop_test(pc, test_validate, 0, N(payload_cases));
    tcase_add_test(pc, test_payload_size_limit);
    tcase_add_test(pc, test_internal_writable_refused);
    tcase_add_test(pc, test_switch_custom_values);
    suite_add_tcase(s, pc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(command_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
