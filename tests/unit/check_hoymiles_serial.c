// SPDX-License-Identifier: MIT
// The hoymiles driver's inverter serial against the fake core of fake_drv.c: learned from
// AppInfo and kept (once, and again when it changes), restored at the next start so that the
// real data is picked by it and the on/off command carries it before any AppInfo reply, and a
// kept value that is no serial is ignored.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/params.h"
#include "drivers/driver.h"
#include "drivers/hoymiles/hoymiles_codec.h"
#include "unit/fake_drv.h"

extern const struct driver_ops hoymiles_driver;
static const struct driver_ops *const drv = &hoymiles_driver;

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const int64_t WALL0 = 1795248000000LL; // 2026-11-21 08:00:00 UTC
static const int64_t OURS = 0x116180123456, OTHER = 0x114172000001;
enum { G_REALDATA, G_INFO };

// The core options the driver reads (the configuration loader resolves them in the daemon).
static const struct param_def core_defs[] = {
    {.name = "reply_timeout", .type = PARAM_DURATION, .def = "10s"},
};

static void start(const char *kept)
{
    fake_drv_setup(drv, "dtu", "192.0.2.9", 10081, WALL0);
    params_init(&fc.core, fc.arena, core_defs, N(core_defs));
    if (kept)
        fake_drv_learn("inverter_serial", kept);
    fake_drv_start_idle();
}

static uint16_t field(const char *key)
{
    for (size_t i = 0; i < drv->n_fields; i++)
        if (strcmp(drv->fields[i].key, key) == 0)
            return (uint16_t)i;
    ck_abort_msg("no field %s", key);
    return 0;
}

// Runs a job up to its request (connecting as the DTU accepts) and returns the request.
static struct hm_frame request(struct drv_job j)
{
    int opens = fc.opens;
    fc.sent_len = 0;
    drv->job(fc.state, &j);
    if (fc.opens > opens) {
        fc.tcp_open = true;
        drv->tcp_connected(fc.state);
    }
    struct hm_frame f;
    ck_assert_int_eq(hm_frame_parse(fc.sent, fc.sent_len, NULL, &f), HM_OK);
    ck_assert_uint_eq(f.len, fc.sent_len);
    return f;
}

static void reply(uint16_t tag, uint16_t seq, const ProtobufCMessage *msg)
{
    uint8_t payload[1024], frame[1200];
    size_t len = protobuf_c_message_pack(msg, payload);
    int n = hm_frame_build(frame, sizeof(frame), tag, seq, payload, len, NULL);
    ck_assert_int_gt(n, 0);
    fake_drv_receive(frame, (size_t)n);
}

static void app_info(int64_t serial)
{
    struct hm_frame f = request((struct drv_job){.type = DRV_JOB_POLL, .group = G_INFO});
    Hoymiles__APPPvInfoMO pv = HOYMILES__APPPV_INFO_MO__INIT;
    pv.has_pv_serial_number = true;
    pv.pv_serial_number = serial;
    Hoymiles__APPPvInfoMO *pvs[] = {&pv};
    Hoymiles__APPInfoDataReqDTO r = HOYMILES__APPINFO_DATA_REQ_DTO__INIT;
    r.dtu_serial_number = "414392373246";
    r.n_pv_info = 1;
    r.pv_info = pvs;
    reply(hm_reply_tag(f.tag), f.seq, &r.base);
    ck_assert_int_gt(fc.n_done, 0);
    ck_assert_int_eq(fc.done[fc.n_done - 1].status, DRV_OK);
}

// Real data of two inverters, another one's first: 100.0 V for it, 230.1 V for ours.
static void realdata(void)
{
    struct hm_frame f = request((struct drv_job){.type = DRV_JOB_POLL, .group = G_REALDATA});
    Hoymiles__SGSMO other = HOYMILES__SGSMO__INIT, ours = HOYMILES__SGSMO__INIT;
    other.has_serial_number = other.has_voltage = true;
    other.serial_number = OTHER;
    other.voltage = 1000;
    ours.has_serial_number = ours.has_voltage = true;
    ours.serial_number = OURS;
    ours.voltage = 2301;
    Hoymiles__SGSMO *sgs[] = {&other, &ours};
    Hoymiles__RealDataNewReqDTO r = HOYMILES__REAL_DATA_NEW_REQ_DTO__INIT;
    r.has_timestamp = true;
    r.timestamp = (int32_t)(WALL0 / 1000);
    r.n_sgs_data = N(sgs);
    r.sgs_data = sgs;
    reply(hm_reply_tag(f.tag), f.seq, &r.base);
    ck_assert_int_eq(fc.done[fc.n_done - 1].status, DRV_OK);
}

START_TEST(test_serial_learned_and_kept)
{
    start(NULL);
    ck_assert_int_eq(fc.poll_first, 1);
    ck_assert_uint_eq(fc.poll_first_group, G_INFO);
    app_info(OURS);
    ck_assert_str_eq(fake_drv_learned("inverter_serial"), "116180123456");
    ck_assert_int_eq(fc.learned_changes, 1);
    const struct fake_value *v = fake_drv_value(field("inverter_serial"));
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v->str, "116180123456");
    // The same serial again is nothing new; another inverter behind the DTU is.
    app_info(OURS);
    ck_assert_int_eq(fc.learned_changes, 1);
    app_info(OTHER);
    ck_assert_str_eq(fake_drv_learned("inverter_serial"), "114172000001");
    ck_assert_int_eq(fc.learned_changes, 2);
    fake_drv_teardown();
}
END_TEST

// After a restart (at night, say: no AppInfo yet) the kept serial picks the inverter's data.
START_TEST(test_kept_serial_used_before_app_info)
{
    start("116180123456");
    realdata();
    const struct fake_value *v = fake_drv_value(field("grid_voltage"));
    ck_assert_ptr_nonnull(v);
    ck_assert_double_eq_tol(v->num, 230.1, 1e-9);
    ck_assert_int_eq(fc.learned_changes, 0);
    fake_drv_teardown();

    // Without it the first inverter's data would have been taken.
    start(NULL);
    realdata();
    ck_assert_double_eq_tol(fake_drv_value(field("grid_voltage"))->num, 100.0, 1e-9);
    fake_drv_teardown();
}
END_TEST

// The on/off command names the inverter it is for.
START_TEST(test_kept_serial_in_commands)
{
    start("116180123456");
    struct hm_frame f = request((struct drv_job){
        .type = DRV_JOB_SET, .field = field("inverter_on"), .value = 0, .bit = -1});
    Hoymiles__CommandResDTO *c = hoymiles__command_res_dto__unpack(NULL, f.payload_len, f.payload);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->n_mi_to_sn, 1);
    ck_assert_int_eq(c->mi_to_sn[0], OURS);
    hoymiles__command_res_dto__free_unpacked(c, NULL);
    fake_drv_teardown();
}
END_TEST

static const char *const bad_kept[] = {"",           "xyz",           "-116180123456",       "0",
                                       "0x11618012", " 116180123456", "11618012345678901234"};

START_TEST(test_bad_kept_serial_ignored)
{
    start(bad_kept[_i]);
    realdata();
    ck_assert_double_eq_tol(fake_drv_value(field("grid_voltage"))->num, 100.0, 1e-9);
    // AppInfo teaches it and replaces what was kept.
    app_info(OURS);
    ck_assert_str_eq(fake_drv_learned("inverter_serial"), "116180123456");
    fake_drv_teardown();
}
END_TEST

int main(void)
{
    log_set_level(LOG_LVL_ERROR);
    setenv("TZ", "UTC", 1);
    Suite *s = suite_create("hoymiles_serial");
    TCase *tc = tcase_create("serial");
    tcase_add_test(tc, test_serial_learned_and_kept);
    tcase_add_test(tc, test_kept_serial_used_before_app_info);
    tcase_add_test(tc, test_kept_serial_in_commands);
    tcase_add_loop_test(tc, test_bad_kept_serial_ignored, 0, (int)N(bad_kept));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
