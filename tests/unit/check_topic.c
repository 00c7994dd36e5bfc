// SPDX-License-Identifier: MIT
// MQTT topic filter matching.
#include <check.h>
#include <stdbool.h>

#include "mqtt/topic.h"

static const struct {
    const char *filter, *topic;
    bool match;
} cases[] = {
    {"a/b/c", "a/b/c", true},
    {"a/b/c", "a/b/d", false},
    {"a/b/c", "a/b", false},
    {"a/b", "a/b/c", false},
    {"a/+/c", "a/x/c", true},
    {"a/+/c", "a/x/y/c", false},
    {"a/+", "a/", true}, // an empty level is a level
    {"+/+", "/x", true},
    {"+", "a", true},
    {"+", "a/b", false},
    {"a/#", "a", true}, // # includes the parent level
    {"a/#", "a/b/c", true},
    {"a/#", "ab", false},
    {"#", "anything/at/all", true},
    {"#", "$SYS/broker", false}, // $-topics only by name
    {"+/broker", "$SYS/broker", false},
    {"$SYS/#", "$SYS/broker", true},
    {"powermeter/pm1/state/+", "powermeter/pm1/state/sample", true},
    {"powermeter/pm1/state/+", "powermeter/pm2/state/sample", false},
    {"hame_energy/+/device/aabbccddeeff/ctrl", "hame_energy/HMA-1/device/aabbccddeeff/ctrl", true},
};

START_TEST(test_match)
{
    ck_assert_msg(topic_matches(cases[_i].filter, cases[_i].topic) == cases[_i].match, "%s vs %s",
                  cases[_i].filter, cases[_i].topic);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topic");
    TCase *tc = tcase_create("match");
    tcase_add_loop_test(tc, test_match, 0, sizeof(cases) / sizeof(cases[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
