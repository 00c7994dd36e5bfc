// SPDX-License-Identifier: MIT
// Unit tests for the Marstek Venus codec: key=value parsing, message kinds, every decoded
// field with its unit, the garbage guards, schedule slots, the clock echo, every command
// encoder (with zero-padded times), and the decode command's JSON.
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/venus/venus_codec.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

// A full cd=1 reply as a Venus E sends it (values made up, keys and forms as documented).
#define RUNTIME_CORE                                                                               \
    "cel_p=256,cel_c=50,tot_i=33993,tot_o=29871,ele_d=120,ele_m=3456,grd_d=98,grd_m=2890,"         \
    "inc_d=45,inc_m=1234,inc_a=-56789,grd_f=0,grd_o=-800,grd_t=2,gct_s=1,cel_s=2,err_t=0,"         \
    "err_a=0,dev_n=153,grd_y=3,wor_m=1"
#define RUNTIME                                                                                    \
    "cd=1," RUNTIME_CORE ",tim_0=7|5|22|0|62|-800|1,tim_1=0|0|0|0|127|0|0,tim_2=21|30|24|0|65|"    \
    "1200|1,cts_m=0,bac_u=1,tra_a=0,tra_i=0,tra_o=0,htt_p=0,prc_c=250,prc_d=320,wif_s=55,set_v=1," \
    "mcp_w=2500,mdp_w=800,ct_t=3,phase_t=1,dchrg_t=0,bms_v=215,fc_v=202409090159,wifi_n=HomeNet,"  \
    "shelly_p=1010"
#define BMS                                                                                        \
    "cd=14,b_ver=108,b_soc=51,b_soh=99,b_cap=5120,b_vol=5312,b_chv=576,b_cur=-94,b_tem=24,"        \
    "b_tp1=23,b_tp2=24,b_tp3=22,b_tp4=25,b_mot=31,b_vo1=3320,b_vo2=3325,b_vo3=3318,b_vo4=0,"       \
    "b_cpc=87,b_err=0,b_war=0"

// ---- parsing ------------------------------------------------------------------------------

struct parse_case {
    const char *what;
    const char *payload;
    size_t len; // 0: strlen
    int rc;
    const char *pairs; // expected "key=value;key=value" in order
};

static const struct parse_case parse_cases[] = {
    {"plain pairs", "cd=1,a=1,b=2", 0, 0, "cd=1;a=1;b=2"},
    {"no cd prefix", "a=1", 0, 0, "a=1"},
    {"last duplicate wins, first position kept", "a=1,b=x,a=3", 0, 0, "a=3;b=x"},
    {"split on the first =", "k=v=w", 0, 0, "k=v=w"},
    {"spaces and line end trimmed", " a = 1 ,b=2\r\n", 0, 0, "a=1;b=2"},
    {"empty segments skipped", ",,a=1,,", 0, 0, "a=1"},
    {"empty value kept", "a=,b=2", 0, 0, "a=;b=2"},
    {"text survives", "wifi_n=My Net,ver=1.2.3", 0, 0, "wifi_n=My Net;ver=1.2.3"},
    {"sub-fields untouched", "tim_0=7|5|22|0|62|-800|1", 0, 0, "tim_0=7|5|22|0|62|-800|1"},
    {"network key:value form",
     "cd=26,dev_net_info:ip:192.168.1.5,gate:192.168.1.1,mask:255.255.255.0,dns:1.1.1.1,"
     "ct_connect_ip:192.168.1.9",
     0, 0,
     "cd=26;ip=192.168.1.5;gate=192.168.1.1;mask=255.255.255.0;dns=1.1.1.1;ct_connect_ip=192.168."
     "1.9"},
    {"clock echo: a bare value", "cd=4,2026-5-14 16:55:0", 0, 0, "cd=4;=2026-5-14 16:55:0"},
    {"pack detail key with a leading space", " BMS(1): num=2,b_vol=3300-3301", 0, 0,
     "BMS(1): num=2;b_vol=3300-3301"},
    {"stops at a NUL", "a=1\0b=2", 7, 0, "a=1"},
    {"empty payload", "", 0, 0, ""},
    {"only commas", ",,,", 0, 0, ""},
};

static void pairs_text(const struct vn_msg *m, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->n && len < n; i++)
        len +=
            (size_t)snprintf(out + len, n - len, "%s%s=%s", i ? ";" : "", m->key[i], m->value[i]);
}

START_TEST(test_parse)
{
    const struct parse_case *c = &parse_cases[_i];
    static struct vn_msg m;
    size_t len = c->len ? c->len : strlen(c->payload);
    ck_assert_int_eq(vn_parse(c->payload, len, &m), c->rc);
    char got[512];
    pairs_text(&m, got, sizeof(got));
    ck_assert_msg(strcmp(got, c->pairs) == 0, "%s: got '%s', want '%s'", c->what, got, c->pairs);
    ck_assert(!m.truncated);
}
END_TEST

START_TEST(test_parse_limits)
{
    static struct vn_msg m;
    static char big[VN_MAX_PAYLOAD + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(vn_parse(big, VN_MAX_PAYLOAD + 1, &m), -EMSGSIZE);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_int_eq(vn_parse(big, VN_MAX_PAYLOAD, &m), 0); // exactly the limit is fine
    ck_assert_uint_eq(m.n, 1);
    // More pairs than fit: the rest is ignored and the message says so.
    size_t len = 0;
    for (int i = 0; i < VN_MAX_PAIRS + 10; i++)
        len += (size_t)snprintf(big + len, sizeof(big) - len, "k%d=%d,", i, i);
    ck_assert_int_eq(vn_parse(big, len, &m), 0);
    ck_assert_uint_eq(m.n, VN_MAX_PAIRS);
    ck_assert(m.truncated);
    ck_assert_str_eq(vn_get(&m, "k0"), "0");
    ck_assert_ptr_null(vn_get(&m, "k256"));
    // A duplicate of a kept key still updates it when the table is full.
    ck_assert_int_eq(vn_parse("a=1,b=2", 7, &m), 0);
    ck_assert_ptr_null(vn_get(&m, "c"));
}
END_TEST

struct number_case {
    const char *text;
    bool ok;
    double v;
};

static const struct number_case number_cases[] = {
    {"12", true, 12},    {"-3.5", true, -3.5}, {"+7", true, 7},   {"1e3", true, 1000},
    {"0", true, 0},      {"", false, 0},       {"abc", false, 0}, {"0x10", false, 0},
    {"inf", false, 0},   {"nan", false, 0},    {"1 2", false, 0}, {"12a", false, 0},
    {"1e999", false, 0}, {"-", false, 0},      {".", false, 0},   {"3|4", false, 0},
};

START_TEST(test_number_text)
{
    const struct number_case *c = &number_cases[_i];
    double v = -1;
    ck_assert_msg(vn_number_text(c->text, &v) == c->ok, "'%s'", c->text);
    if (c->ok)
        ck_assert_double_eq(v, c->v);
}
END_TEST

// ---- message kinds ------------------------------------------------------------------------

struct kind_case {
    const char *payload;
    enum vn_kind kind;
};

static const struct kind_case kind_cases[] = {
    {RUNTIME, VN_KIND_RUNTIME},
    {RUNTIME_CORE, VN_KIND_RUNTIME}, // the vendor sample has no cd=1 in front
    {"cd=1,cel_p=1,cel_c=2", VN_KIND_UNKNOWN},
    // One core key missing: not a runtime reply.
    {"cel_p=256,cel_c=50,tot_i=33993,tot_o=29871,ele_d=120,ele_m=3456,grd_d=98,grd_m=2890,"
     "inc_d=45,inc_m=1234,inc_a=-56789,grd_f=0,grd_o=-800,grd_t=2,gct_s=1,cel_s=2,err_t=0,"
     "err_a=0,dev_n=153,grd_y=3",
     VN_KIND_UNKNOWN},
    {BMS, VN_KIND_BMS},
    {"b_ver=1,b_soc=2,b_tp1=3", VN_KIND_UNKNOWN},
    {"cd=19,get_power=100|200|300|600|0", VN_KIND_CT_POWER},
    {"cd=26,dev_net_info:ip:1.2.3.4,gate:1.2.3.1,mask:255.0.0.0,dns:8.8.8.8,ct_connect_ip:1.2.3.5",
     VN_KIND_NETWORK},
    {"ret=1", VN_KIND_ACK},
    {"ret=0", VN_KIND_ACK},
    {"cd=43,ret=1", VN_KIND_ACK},
    {"cd=4,2026-5-14 16:55:0", VN_KIND_ACK},
    {"cd=4,2026-5-14", VN_KIND_UNKNOWN},
    {"cd=5,2026-5-14 16:55:0", VN_KIND_UNKNOWN},
    {"ret=1,foo=2", VN_KIND_UNKNOWN},
    {"cd=10,wifi_v=1.2", VN_KIND_UNKNOWN},
    {"cd=1", VN_KIND_UNKNOWN},
    {"", VN_KIND_UNKNOWN},
    {"garbage", VN_KIND_UNKNOWN},
};

START_TEST(test_classify)
{
    const struct kind_case *c = &kind_cases[_i];
    static struct vn_msg m;
    ck_assert_int_eq(vn_parse(c->payload, strlen(c->payload), &m), 0);
    ck_assert_msg(vn_classify(&m) == c->kind, "'%.60s': %s, want %s", c->payload,
                  vn_kind_name(vn_classify(&m)), vn_kind_name(c->kind));
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(vn_kind_name(VN_KIND_RUNTIME), "runtime");
    ck_assert_str_eq(vn_kind_name(VN_KIND_BMS), "bms");
    ck_assert_str_eq(vn_kind_name(VN_KIND_CT_POWER), "ct_power");
    ck_assert_str_eq(vn_kind_name(VN_KIND_NETWORK), "network");
    ck_assert_str_eq(vn_kind_name(VN_KIND_ACK), "ack");
    ck_assert_str_eq(vn_kind_name(VN_KIND_UNKNOWN), "unknown");
}
END_TEST

// ---- values -------------------------------------------------------------------------------

struct value_case {
    const char *payload;
    const char *path;
    enum vn_result r;
    double v;
};

#define OK(p, k, v)                                                                                \
    {                                                                                              \
        p, k, VN_OK, v                                                                             \
    }
#define BAD(p, k)                                                                                  \
    {                                                                                              \
        p, k, VN_INVALID, 0                                                                        \
    }
#define ABSENT(p, k)                                                                               \
    {                                                                                              \
        p, k, VN_ABSENT, 0                                                                         \
    }

static const struct value_case value_cases[] = {
    // Every runtime field of the sample, in the published units.
    OK(RUNTIME, "cel_p", 2.56),    // 0.01 kWh -> kWh
    OK(RUNTIME, "cel_c", 50),      // %
    OK(RUNTIME, "tot_i", 339.93),  // 0.01 kWh
    OK(RUNTIME, "tot_o", 298.71),  //
    OK(RUNTIME, "ele_d", 1.2),     //
    OK(RUNTIME, "ele_m", 34.56),   //
    OK(RUNTIME, "grd_d", 0.98),    //
    OK(RUNTIME, "grd_m", 28.9),    //
    OK(RUNTIME, "inc_d", 0.045),   // 0.001 EUR
    OK(RUNTIME, "inc_m", 1.234),   //
    OK(RUNTIME, "inc_a", -56.789), // signed
    OK(RUNTIME, "grd_f", 0),       // VA
    OK(RUNTIME, "grd_o", -800),    // W, + discharging
    OK(RUNTIME, "grd_t", 2),       // charging
    OK(RUNTIME, "gct_s", 1),       // connected
    OK(RUNTIME, "cel_s", 2),       // charging
    OK(RUNTIME, "err_t", 0),       //
    OK(RUNTIME, "err_a", 0),       //
    OK(RUNTIME, "grd_y", 3),       // DE
    OK(RUNTIME, "wor_m", 1),       // manual
    OK(RUNTIME, "cts_m", 0),       //
    OK(RUNTIME, "bac_u", 1),       //
    OK(RUNTIME, "prc_c", 0.25),    // 0.001 EUR
    OK(RUNTIME, "prc_d", 0.32),    //
    OK(RUNTIME, "wif_s", -55),     // magnitude -> dBm
    OK(RUNTIME, "set_v", 1),       // 800 W
    OK(RUNTIME, "mcp_w", 2500),    //
    OK(RUNTIME, "mdp_w", 800),     //
    OK(RUNTIME, "ct_t", 3),        //
    OK(RUNTIME, "phase_t", 1),     //
    OK(RUNTIME, "dchrg_t", 0),     //
    OK(RUNTIME, "shelly_p", 1010), //
    ABSENT(RUNTIME, "dev_n"),      // text
    ABSENT(RUNTIME, "wifi_n"),     // text
    ABSENT(RUNTIME, "tim_0"),      // a slot, not a number
    ABSENT(RUNTIME, "pv1.power"),  // not on a Venus E
    ABSENT(RUNTIME, "pv_power"),   //
    ABSENT(RUNTIME, "nothing"),    //
    ABSENT(RUNTIME, "tra_a"),      // not explained: no value
    ABSENT(RUNTIME, "cel_p.x"),    // no such sub-field
    ABSENT(RUNTIME, "waytoolongkeynameforthecodec.x"),
    // Venus A/D extras.
    OK("pv1=1234|1,pv2=0|0,pv3=55|1", "pv1.power", 123.4), // 0.1 W
    OK("pv1=1234|1", "pv1.connected", 1),
    OK("pv2=0|0", "pv2.connected", 0),
    OK("pv1=1234|1,pv2=0|0,pv3=55|1", "pv_power", 128.9),
    BAD("pv1=1234|1,pv2=x|0", "pv_power"),
    BAD("pv1=-5|1", "pv1.power"),
    BAD("pv1=5|2", "pv1.connected"),
    BAD("pv1=5", "pv1.connected"),
    ABSENT("pv1=5|1", "pv1.volts"),
    OK("pv=123|4|5|98765", "pv.today", 1.23), // 10 Wh -> kWh
    OK("pv=123|4|5|98765", "pv.total", 987.65),
    OK("pv=42", "pv.total", 0.42),
    BAD("pv=42|x", "pv.total"),
    OK("fu=1|0", "fu.enabled", 1),
    OK("fu=0|1", "fu.enabled", 0),
    BAD("fu=|1", "fu.enabled"),
    OK("ble=4", "ble.advertising", 1),
    OK("ble=5", "ble", 1),
    OK("ble=1", "ble.advertising", 0),
    BAD("ble=256", "ble.advertising"),
    OK("led=1", "led", 1),
    BAD("led=2", "led"),
    OK("api=0", "api", 0),
    OK("port=30000", "port", 30000),
    OK("bp=-650,rp=-640,gp=120", "bp", -650),
    OK("bp=-650,rp=-640,gp=120", "rp", -640),
    OK("bp=-650,rp=-640,gp=120", "gp", 120),
    OK("par=255", "par", 255),
    BAD("par=3", "par"),
    OK("peak_status=1,peak_power=800", "peak_status", 1),
    OK("peak_status=1,peak_power=800", "peak_power", 800),
    OK("pack=2|3|0|1", "pack.count", 2),
    OK("pack=2|3|0|1", "pack.mask", 3),
    OK("pack=2|3|0|1", "pack.index", 0),
    BAD("pack=2", "pack.mask"),
    BAD("pack=x|3", "pack.count"),
    BAD("pack=300|3", "pack.count"),
    ABSENT("pack=2|3|0|1", "pack"),
    ABSENT("pack=2|3|0|1", "pack.other"),
    // Guards: firmware garbage becomes unknown.
    BAD("mcp_w=-1", "mcp_w"),
    BAD("mcp_w=-1000", "mcp_w"),
    BAD("mcp_w=-2500", "mcp_w"),
    BAD("mcp_w=2501", "mcp_w"),
    OK("mcp_w=0", "mcp_w", 0),
    BAD("mcp_w=abc", "mcp_w"),
    BAD("dod=0", "dod"),
    BAD("dod=29", "dod"),
    BAD("dod=89", "dod"),
    OK("dod=30", "dod", 30),
    OK("dod=88", "dod", 88),
    BAD("set_v=10", "set_v"),
    BAD("set_v=-1", "set_v"),
    BAD("set_v=1.5", "set_v"),
    OK("set_v=0", "set_v", 0),
    OK("set_v=9", "set_v", 9),
    BAD("dchrg_t=255", "dchrg_t"),
    BAD("grd_t=7", "grd_t"),
    BAD("wor_m=3", "wor_m"),
    OK("wor_m=5", "wor_m", 5),
    BAD("cel_s=0", "cel_s"),
    BAD("cel_c=101", "cel_c"),
    BAD("tot_i=-5", "tot_i"),
    BAD("tot_i=0x10", "tot_i"),
    BAD("tot_i=", "tot_i"),
    OK("tot_i=3399", "tot_i", 33.99), // a dropped digit is a number: the counter guard's case
    BAD("cts_m=2", "cts_m"),
    OK("wif_s=0", "wif_s", 0),
    // BMS.
    OK(BMS, "b_soc", 51),
    OK(BMS, "b_soh", 99),
    OK(BMS, "b_cap", 5120),
    OK(BMS, "b_vol", 53.12), // centivolts
    OK(BMS, "b_chv", 57.6),  // decivolts
    OK(BMS, "b_cur", -9.4),  // deciamps, signed
    OK(BMS, "b_tem", 24),
    OK(BMS, "b_tp1", 23),
    OK(BMS, "b_tp4", 25),
    OK(BMS, "b_mot", 31),
    OK(BMS, "b_vo1", 3320), // mV
    BAD(BMS, "b_vo4"),      // 0: an unused cell
    OK(BMS, "b_cpc", 87),
    OK(BMS, "b_err", 0),
    OK(BMS, "b_war", 0),
    ABSENT(BMS, "b_ver"),
    ABSENT(BMS, "b_vo17"),
    ABSENT("b_vo17=3000", "b_vo17"),
    ABSENT("b_vo0=3000", "b_vo0"),
    OK("b_vo16=3000", "b_vo16", 3000),
    // CT power.
    OK("get_power=100|-200|300|200|50", "get_power.a", 100),
    OK("get_power=100|-200|300|200|50", "get_power.b", -200),
    OK("get_power=100|-200|300|200|50", "get_power.c", 300),
    OK("get_power=100|-200|300|200|50", "get_power.total", 200),
    OK("get_power=100|-200|300|200|50", "get_power.output", 50),
    BAD("get_power=100|-200", "get_power.total"),
    ABSENT("get_power=1|2|3|4|5", "get_power.d"),
    ABSENT("get_power=1|2|3|4|5", "get_power"),
    // Acknowledgements.
    OK("cd=43,ret=1", "ret", 1),
    OK("cd=43,ret=1", "cd", 43),
};

START_TEST(test_value)
{
    const struct value_case *c = &value_cases[_i];
    static struct vn_msg m;
    ck_assert_int_eq(vn_parse(c->payload, strlen(c->payload), &m), 0);
    double v = -12345;
    enum vn_result r = vn_value(&m, c->path, &v);
    ck_assert_msg(r == c->r, "%s in '%.40s': result %d, want %d", c->path, c->payload, r, c->r);
    if (r == VN_OK)
        ck_assert_msg(fabs(v - c->v) < 1e-9, "%s: %.12g, want %.12g", c->path, v, c->v);
}
END_TEST

START_TEST(test_power_version_and_temperature_scale)
{
    static const int watts[] = {0, 800, 600, 2200, 1200, 1500, 2300, 2000, 3000, 3600};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(vn_power_version_watts(i), watts[i]);
    ck_assert_int_eq(vn_power_version_watts(10), -1);
    ck_assert_int_eq(vn_power_version_watts(-1), -1);
    ck_assert_double_eq(vn_temperature_scale("HMG-50"), 1);
    ck_assert_double_eq(vn_temperature_scale("VNSE3-0"), 1);
    ck_assert_double_eq(vn_temperature_scale("VNSA-1"), 0.1);
    ck_assert_double_eq(vn_temperature_scale("VNSD2-0"), 0.1);
    ck_assert_double_eq(vn_temperature_scale(NULL), 1);
}
END_TEST

START_TEST(test_cell_stats)
{
    static struct vn_msg m;
    ck_assert_int_eq(vn_parse(BMS, strlen(BMS), &m), 0);
    double lo, hi, avg, diff;
    ck_assert_int_eq(vn_cell_stats(&m, &lo, &hi, &avg, &diff), 3); // b_vo4 = 0 is unused
    ck_assert_double_eq_tol(lo, 3.318, 1e-9);
    ck_assert_double_eq_tol(hi, 3.325, 1e-9);
    ck_assert_double_eq_tol(avg, 3.321, 1e-9); // 3321 mV, rounded
    ck_assert_double_eq_tol(diff, 0.007, 1e-9);
    ck_assert_int_eq(vn_parse("b_vo1=0,b_vo2=0", 15, &m), 0);
    ck_assert_int_eq(vn_cell_stats(&m, &lo, &hi, &avg, &diff), 0);
}
END_TEST

// ---- slots --------------------------------------------------------------------------------

struct slot_case {
    const char *value;
    int rc;
    struct vn_slot want;
};

static const struct slot_case slot_cases[] = {
    {"7|5|22|0|62|-800|1", 0, {7, 5, 22, 0, 62, -800, true}},
    {"0|0|23|59|127|2500|0", 0, {0, 0, 23, 59, 127, 2500, false}},
    {"21|30|24|0|65|1200|1", 0, {21, 30, 24, 0, 65, 1200, true}}, // 24:00 as the day's end
    {"1|2|3|4|5", 0, {1, 2, 3, 4, 5, 0, false}},                  // missing: defaults
    {"1|2", 0, {1, 2, 0, 0, 127, 0, false}},
    {"", 0, {0, 0, 0, 0, 127, 0, false}},
    {"7|5|22|0|62|-800|2", 0, {7, 5, 22, 0, 62, -800, false}}, // only 1 is enabled
    {" 7 | 5 |22|0|62|-800|1", 0, {7, 5, 22, 0, 62, -800, true}},
    {"24|0|22|0|62|0|1", -EINVAL, {0}}, // 24:00 is no start
    {"7|5|24|1|62|0|1", -EINVAL, {0}},
    {"7|60|22|0|62|0|1", -EINVAL, {0}},
    {"7|5|22|0|128|0|1", -EINVAL, {0}},
    {"7|5|22|0|-1|0|1", -EINVAL, {0}},
    {"7|5|22|0|62|10001|1", -EINVAL, {0}},
    {"7|5|22|0|62|-800|1|9", -EINVAL, {0}},
    {"a|b", -EINVAL, {0}},
    {"7.5|5|22|0|62|0|1", -EINVAL, {0}},
    {"7||22|0|62|0|1", -EINVAL, {0}},
    {"-1|5|22|0|62|0|1", -EINVAL, {0}},
};

START_TEST(test_slot_parse)
{
    const struct slot_case *c = &slot_cases[_i];
    struct vn_slot s;
    ck_assert_msg(vn_slot_parse(c->value, &s) == c->rc, "'%s'", c->value);
    if (c->rc)
        return;
    ck_assert_int_eq(s.start_h, c->want.start_h);
    ck_assert_int_eq(s.start_m, c->want.start_m);
    ck_assert_int_eq(s.end_h, c->want.end_h);
    ck_assert_int_eq(s.end_m, c->want.end_m);
    ck_assert_uint_eq(s.weekdays, c->want.weekdays);
    ck_assert_int_eq(s.power, c->want.power);
    ck_assert(s.enabled == c->want.enabled);
}
END_TEST

START_TEST(test_times_and_weekdays)
{
    char t[8];
    vn_time_text(7, 5, t);
    ck_assert_str_eq(t, "07:05");
    vn_time_text(24, 0, t);
    ck_assert_str_eq(t, "24:00");
    vn_time_text(0, 0, t);
    ck_assert_str_eq(t, "00:00");

    int h = -1, m = -1;
    ck_assert_int_eq(vn_time_parse("02:43", false, &h, &m), 0);
    ck_assert_int_eq(h, 2);
    ck_assert_int_eq(m, 43);
    ck_assert_int_eq(vn_time_parse("23:59", false, &h, &m), 0);
    ck_assert_int_eq(vn_time_parse("24:00", true, &h, &m), 0);
    ck_assert_int_eq(h, 24);
    static const char *const bad[] = {"24:00", "2:43",  "02:3", "25:00", "12:60",
                                      "ab:cd", "12-30", "",     "12:300"};
    for (size_t i = 0; i < N(bad); i++)
        ck_assert_msg(vn_time_parse(bad[i], false, &h, &m) == -EINVAL, "'%s'", bad[i]);
    ck_assert_int_eq(vn_time_parse("24:01", true, &h, &m), -EINVAL);

    vn_weekdays_text(127, t);
    ck_assert_str_eq(t, "0123456");
    vn_weekdays_text(62, t);
    ck_assert_str_eq(t, "12345");
    vn_weekdays_text(65, t);
    ck_assert_str_eq(t, "06");
    vn_weekdays_text(0, t);
    ck_assert_str_eq(t, "");
    unsigned mask = 99;
    ck_assert_int_eq(vn_weekdays_parse("12345", &mask), 0);
    ck_assert_uint_eq(mask, 62);
    ck_assert_int_eq(vn_weekdays_parse("", &mask), 0);
    ck_assert_uint_eq(mask, 0);
    ck_assert_int_eq(vn_weekdays_parse("0123456", &mask), 0);
    ck_assert_uint_eq(mask, 127);
    static const char *const bad_days[] = {"7", "21", "11", "1 2", "mon", "-1"};
    for (size_t i = 0; i < N(bad_days); i++)
        ck_assert_msg(vn_weekdays_parse(bad_days[i], &mask) == -EINVAL, "'%s'", bad_days[i]);
}
END_TEST

// ---- clock echo ---------------------------------------------------------------------------

START_TEST(test_clock_echo)
{
    static struct vn_msg m;
    struct vn_clock c;
    ck_assert_int_eq(vn_parse("cd=4,2026-5-14 16:55:0", 22, &m), 0);
    ck_assert_int_eq(vn_clock_echo(&m, &c), 0);
    ck_assert_int_eq(c.year, 2026);
    ck_assert_int_eq(c.month, 5);
    ck_assert_int_eq(c.day, 14);
    ck_assert_int_eq(c.hour, 16);
    ck_assert_int_eq(c.minute, 55);
    ck_assert_int_eq(c.second, 0);
    static const char *const bad[] = {"cd=4,2026-5-14", "cd=4,2026-13-14 1:2:3",
                                      "cd=4,2026-5-14 25:2:3", "cd=4,2026-5-14 1:2:3x", "cd=4,x"};
    for (size_t i = 0; i < N(bad); i++) {
        ck_assert_int_eq(vn_parse(bad[i], strlen(bad[i]), &m), 0);
        ck_assert_msg(vn_clock_echo(&m, &c) == -EINVAL, "'%s'", bad[i]);
    }
    ck_assert_int_eq(vn_parse("cd=3,2026-5-14 16:55:0", 22, &m), 0);
    ck_assert_int_eq(vn_clock_echo(&m, &c), -ENOENT);
    ck_assert_int_eq(vn_parse("ret=1", 5, &m), 0);
    ck_assert_int_eq(vn_clock_echo(&m, &c), -ENOENT);
}
END_TEST

// ---- encoders -----------------------------------------------------------------------------

struct enc_case {
    const char *what;
    int rc; // >0: the expected payload's length is checked
    const char *want;
};

static int encode(int i, char *out, size_t n)
{
    struct vn_slot s1 = {7, 5, 22, 0, 62, -800, true};
    struct vn_slot s2 = {2, 43, 24, 0, 127, 1200, false};
    struct vn_slot s3 = {0, 0, 0, 0, 0, 0, false};
    struct vn_slot bad_end = {1, 0, 24, 1, 127, 0, true};
    struct vn_slot bad_start = {24, 0, 23, 0, 127, 0, true};
    struct vn_slot bad_mask = {1, 0, 2, 0, 128, 0, true};
    struct vn_slot bad_power = {1, 0, 2, 0, 1, 10001, true};
    struct vn_clock may = {2026, 5, 14, 6, 7, 30};
    struct vn_clock dec = {2026, 12, 31, 23, 59, 0};
    struct vn_clock bad_clock = {2026, 13, 1, 0, 0, 0};
    switch (i) {
    case 0: return vn_encode_read(out, n, 1);
    case 1: return vn_encode_read(out, n, 14);
    case 2: return vn_encode_read(out, n, 19);
    case 3: return vn_encode_read(out, n, 0);
    case 4: return vn_encode_working_mode(out, n, 0);
    case 5: return vn_encode_working_mode(out, n, 1);
    case 6: return vn_encode_working_mode(out, n, 2);
    case 7: return vn_encode_working_mode(out, n, 5);
    case 8: return vn_encode_working_mode(out, n, 3);
    case 9: return vn_encode_slot(out, n, 0, &s1);
    case 10: return vn_encode_slot(out, n, 9, &s2);
    case 11: return vn_encode_slot(out, n, 4, &s3);
    case 12: return vn_encode_slot(out, n, 10, &s1);
    case 13: return vn_encode_slot(out, n, -1, &s1);
    case 14: return vn_encode_slot(out, n, 0, &bad_end);
    case 15: return vn_encode_slot(out, n, 0, &bad_start);
    case 16: return vn_encode_slot(out, n, 0, &bad_mask);
    case 17: return vn_encode_slot(out, n, 0, &bad_power);
    case 18: return vn_encode_clock(out, n, &may, 1);
    case 19: return vn_encode_clock(out, n, &may, 0);
    case 20: return vn_encode_clock(out, n, &dec, 1);
    case 21: return vn_encode_clock(out, n, &bad_clock, 1);
    case 22: return vn_encode_clock(out, n, &may, 2);
    case 23: return vn_encode_backup(out, n, true);
    case 24: return vn_encode_backup(out, n, false);
    case 25: return vn_encode_discharge_power(out, n, 800);
    case 26: return vn_encode_discharge_power(out, n, 2500);
    case 27: return vn_encode_discharge_power(out, n, 50);
    case 28: return vn_encode_charge_power(out, n, 0);
    case 29: return vn_encode_charge_power(out, n, 2500);
    case 30: return vn_encode_charge_power(out, n, 2501);
    case 31: return vn_encode_charge_power(out, n, -1);
    default: return -1000;
    }
}

static const struct enc_case enc_cases[] = {
    {"read runtime", 1, "cd=1"},
    {"read BMS", 1, "cd=14"},
    {"read CT", 1, "cd=19"},
    {"read cd 0", -EINVAL, NULL},
    {"mode automatic", 1, "cd=2,md=0"},
    {"mode manual", 1, "cd=2,md=1"},
    {"mode trading", 1, "cd=2,md=2"},
    {"mode AI needs nl=1", 1, "cd=2,md=5,nl=1"},
    {"mode 3", -EINVAL, NULL},
    {"slot padded", 1, "cd=3,md=1,nm=0,bt=07:05,et=22:00,wk=62,vv=-800,as=1"},
    {"slot 2:43 padded, 24:00 end", 1, "cd=3,md=1,nm=9,bt=02:43,et=24:00,wk=127,vv=1200,as=0"},
    {"empty slot", 1, "cd=3,md=1,nm=4,bt=00:00,et=00:00,wk=0,vv=0,as=0"},
    {"slot 10", -EINVAL, NULL},
    {"slot -1", -EINVAL, NULL},
    {"end 24:01", -EINVAL, NULL},
    {"start 24:00", -EINVAL, NULL},
    {"mask 128", -EINVAL, NULL},
    {"power 10001", -EINVAL, NULL},
    {"clock months from 1", 1, "cd=4,yy=2026,mm=5,rr=14,hh=6,mn=7"},
    {"clock months from 0", 1, "cd=4,yy=2026,mm=4,rr=14,hh=6,mn=7"},
    {"clock December", 1, "cd=4,yy=2026,mm=12,rr=31,hh=23,mn=59"},
    {"clock month 13", -EINVAL, NULL},
    {"clock base 2", -EINVAL, NULL},
    {"backup on", 1, "cd=11,bc=1"},
    {"backup off", 1, "cd=11,bc=0"},
    {"discharge 800", 1, "cd=15,vs=800"},
    {"discharge 2500", 1, "cd=15,vs=2500"},
    {"discharge 50", -EINVAL, NULL},
    {"charge 0", 1, "cd=16,cp=0"},
    {"charge 2500", 1, "cd=16,cp=2500"},
    {"charge 2501", -EINVAL, NULL},
    {"charge -1", -EINVAL, NULL},
};

START_TEST(test_encode)
{
    const struct enc_case *c = &enc_cases[_i];
    char out[128];
    int rc = encode(_i, out, sizeof(out));
    if (c->rc < 0) {
        ck_assert_msg(rc == c->rc, "%s: %d", c->what, rc);
        return;
    }
    ck_assert_msg(rc == (int)strlen(c->want), "%s: rc %d", c->what, rc);
    ck_assert_msg(strcmp(out, c->want) == 0, "%s: '%s'", c->what, out);
    // Every good payload needs exactly its length plus the NUL.
    char small[128];
    ck_assert_int_eq(encode(_i, small, strlen(c->want)), -ENOSPC);
    ck_assert_int_eq(encode(_i, small, strlen(c->want) + 1), rc);
}
END_TEST

// ---- the decode command -------------------------------------------------------------------

struct decode_case {
    const char *input;
    const char *json; // NULL: -EINVAL expected
};

static const struct decode_case decode_cases[] = {
    {RUNTIME,
     "{\"kind\":\"runtime\",\"fields\":{\"cd\":1,\"cel_p\":2.56,\"cel_c\":50,\"tot_i\":339.93,"
     "\"tot_o\":298.71,\"ele_d\":1.2,\"ele_m\":34.56,\"grd_d\":0.98,\"grd_m\":28.9,\"inc_d\":"
     "0.045,\"inc_m\":1.234,\"inc_a\":-56.789,\"grd_f\":0,\"grd_o\":-800,\"grd_t\":\"charging\","
     "\"gct_s\":\"connected\",\"cel_s\":\"charging\",\"err_t\":0,\"err_a\":0,\"dev_n\":\"153\","
     "\"grd_y\":\"de\",\"wor_m\":\"manual\",\"tim_0\":{\"start\":\"07:05\",\"end\":\"22:00\","
     "\"weekdays\":\"12345\",\"power\":-800,\"enabled\":true},\"tim_1\":{\"start\":\"00:00\","
     "\"end\":\"00:00\",\"weekdays\":\"0123456\",\"power\":0,\"enabled\":false},\"tim_2\":{"
     "\"start\":\"21:30\",\"end\":\"24:00\",\"weekdays\":\"06\",\"power\":1200,\"enabled\":true},"
     "\"cts_m\":false,\"bac_u\":true,\"tra_a\":0,\"tra_i\":0,\"tra_o\":0,\"htt_p\":0,\"prc_c\":"
     "0.25,\"prc_d\":0.32,\"wif_s\":-55,\"set_v\":\"800 W\",\"mcp_w\":2500,\"mdp_w\":800,\"ct_t\":"
     "\"ct3\",\"phase_t\":\"a\",\"dchrg_t\":\"single_phase\",\"bms_v\":\"215\",\"fc_v\":"
     "\"202409090159\",\"wifi_n\":\"HomeNet\",\"shelly_p\":1010}}"},
    {BMS,
     "{\"kind\":\"bms\",\"fields\":{\"cd\":14,\"b_ver\":\"108\",\"b_soc\":51,\"b_soh\":99,"
     "\"b_cap\":5120,\"b_vol\":53.12,\"b_chv\":57.6,\"b_cur\":-9.4,\"b_tem\":24,\"b_tp1\":23,"
     "\"b_tp2\":24,\"b_tp3\":22,\"b_tp4\":25,\"b_mot\":31,\"b_vo1\":3320,\"b_vo2\":3325,\"b_vo3\":"
     "3318,\"b_vo4\":null,\"b_cpc\":87,\"b_err\":0,\"b_war\":0}}"},
    {"cd=19,get_power=100|-200|300|200|50",
     "{\"kind\":\"ct_power\",\"fields\":{\"cd\":19,\"get_power\":{\"a\":100,\"b\":-200,\"c\":300,"
     "\"total\":200,\"output\":50}}}"},
    {"cd=26,dev_net_info:ip:192.168.1.5,gate:192.168.1.1,mask:255.255.255.0,dns:1.1.1.1,"
     "ct_connect_ip:192.168.1.9",
     "{\"kind\":\"network\",\"fields\":{\"cd\":26,\"ip\":\"192.168.1.5\",\"gate\":"
     "\"192.168.1.1\",\"mask\":\"255.255.255.0\",\"dns\":\"1.1.1.1\",\"ct_connect_ip\":"
     "\"192.168.1.9\"}}"},
    {"ret=1", "{\"kind\":\"ack\",\"fields\":{\"ret\":1}}"},
    {"cd=43,ret=0", "{\"kind\":\"ack\",\"fields\":{\"cd\":43,\"ret\":0}}"},
    {"cd=4,2026-5-14 16:55:0",
     "{\"kind\":\"ack\",\"fields\":{\"cd\":4,\"clock\":\"2026-05-14 16:55:00\"}}"},
    // Firmware quirks: sentinels become null, a dropped digit is just a smaller number.
    {"mcp_w=-2500,dod=0,set_v=12,dchrg_t=255,tot_i=3399,tim_3=24|0|1|0|1|0|1",
     "{\"kind\":\"unknown\",\"fields\":{\"mcp_w\":null,\"dod\":null,\"set_v\":null,\"dchrg_t\":"
     "null,\"tot_i\":33.99,\"tim_3\":null}}"},
    {"pv1=1234|1,pv=123|4|98765,fu=1|0,ble=4,led=1,dod=80,par=2,pack=2|3|1|0",
     "{\"kind\":\"unknown\",\"fields\":{\"pv1\":{\"power\":123.4,\"connected\":true},\"pv\":{"
     "\"today\":1.23,\"total\":987.65},\"fu\":true,\"ble\":true,\"led\":true,\"dod\":80,\"par\":"
     "\"on\",\"pack\":{\"count\":2,\"mask\":3,\"index\":1}}}"},
    {"x=1,y=abc,z=", "{\"kind\":\"unknown\",\"fields\":{\"x\":1,\"y\":\"abc\",\"z\":\"\"}}"},
    {"just text", "{\"kind\":\"unknown\",\"fields\":{\"value\":\"just text\"}}"},
    {"", NULL},
    {",,,", NULL},
};

START_TEST(test_decode)
{
    const struct decode_case *c = &decode_cases[_i];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    char err[256] = "";
    int rc = venus_decode(c->input, f, err, sizeof(err));
    fclose(f);
    if (!c->json) {
        ck_assert_int_eq(rc, -EINVAL);
        ck_assert_msg(err[0], "no reason given");
        ck_assert_uint_eq(len, 0);
    } else {
        ck_assert_int_eq(rc, 0);
        ck_assert_msg(len > 0 && buf[len - 1] == '\n', "one line");
        buf[len - 1] = '\0';
        ck_assert_msg(strcmp(buf, c->json) == 0, "\ngot  %s\nwant %s", buf, c->json);
    }
    free(buf);
}
END_TEST

START_TEST(test_decode_too_long)
{
    static char big[VN_MAX_PAYLOAD + 10];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char err[256] = "";
    FILE *f = fopen("/dev/null", "w");
    ck_assert_int_eq(venus_decode(big, f, err, sizeof(err)), -EINVAL);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(err, "longer than 4096"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("venus_codec");
    TCase *tc = tcase_create("codec");
    tcase_add_loop_test(tc, test_parse, 0, N(parse_cases));
    tcase_add_test(tc, test_parse_limits);
    tcase_add_loop_test(tc, test_number_text, 0, N(number_cases));
    tcase_add_loop_test(tc, test_classify, 0, N(kind_cases));
    tcase_add_test(tc, test_kind_names);
    tcase_add_loop_test(tc, test_value, 0, N(value_cases));
    tcase_add_test(tc, test_power_version_and_temperature_scale);
    tcase_add_test(tc, test_cell_stats);
    tcase_add_loop_test(tc, test_slot_parse, 0, N(slot_cases));
    tcase_add_test(tc, test_times_and_weekdays);
    tcase_add_test(tc, test_clock_echo);
    tcase_add_loop_test(tc, test_encode, 0, N(enc_cases));
    tcase_add_loop_test(tc, test_decode, 0, N(decode_cases));
    tcase_add_test(tc, test_decode_too_long);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
