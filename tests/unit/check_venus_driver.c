// SPDX-License-Identifier: MIT
// The venus driver through the device runtime, on simulated time, with a fake MQTT transport:
// the device hooks' publish goes to a fake relay + device that answers on the device topic a
// little later (or not at all), one answer per request, and drops an answer when two requests
// come back to back. Checks the pacing (first request cd=1, never two requests closer than the
// gap, the groups at their own rates), reply timeouts and offline after three misses,
// the re-poll after a write, the exact slot payload, writes without acknowledgement, refusals,
// the garbage guards, the clock's month base, and the configuration checks.
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/device.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/loop.h"
#include "core/model.h"
#include "mqtt/command.h"

#define REQ_TOPIC   "hame_energy/HMG-50/App/aabbccddeeff/ctrl"
#define REPLY_TOPIC "hame_energy/HMG-50/device/aabbccddeeff/ctrl"
#define MAX_REQ     512

// ---- the fake relay and device ----------------------------------------------------------------

struct request {
    char payload[128];
    int64_t at;
};

static struct {
    // behaviour
    bool silent;     // answer nothing
    bool ack_writes; // answer writes with ret=<ack_value>
    int ack_value;
    int delay_ms;
    int month_base;     // how the fake firmware reads cd=4's mm
    int fail_publishes; // the broker link is down for this many publishes
    // device state
    int mcp_w, mdp_w, bac_u, wor_m;
    char tim[10][48];
    int tot_i;
    char extra[256]; // appended to every runtime reply
    // traffic
    struct request req[MAX_REQ];
    int n_req;
    int dropped;
    bool reply_pending;
    char pending[1024];
    char subscribed[4][128];
    int n_sub;
} rl;

static struct loop *loop;
static struct device *d;
static struct config *cfg;
static char dir[64];
static struct timer t_reply, t_stop;

static void runtime_payload(char *out, size_t n)
{
    size_t len = (size_t)snprintf(
        out, n,
        "cd=1,cel_p=256,cel_c=50,tot_i=%d,tot_o=29871,ele_d=120,ele_m=3456,grd_d=98,grd_m=2890,"
        "inc_d=45,inc_m=1234,inc_a=-56789,grd_f=0,grd_o=-800,grd_t=2,gct_s=1,cel_s=2,err_t=0,"
        "err_a=0,dev_n=153,grd_y=3,wor_m=%d,cts_m=0,bac_u=%d,wif_s=55,set_v=1,mcp_w=%d,mdp_w=%d,"
        "ct_t=3,phase_t=1,dchrg_t=0",
        rl.tot_i, rl.wor_m, rl.bac_u, rl.mcp_w, rl.mdp_w);
    for (int i = 0; i < 10 && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, ",tim_%d=%s", i, rl.tim[i]);
    if (rl.extra[0] && len < n)
        snprintf(out + len, n - len, ",%s", rl.extra);
}

static void deliver(void *arg)
{
    (void)arg;
    rl.reply_pending = false;
    device_mqtt_message(d, REPLY_TOPIC, (const uint8_t *)rl.pending, strlen(rl.pending), false);
}

static int field_of(const char *payload, const char *key)
{
    char pat[16];
    snprintf(pat, sizeof(pat), ",%s=", key);
    const char *p = strstr(payload, pat);
    return p ? atoi(p + strlen(pat)) : -1;
}

// What the fake firmware does with a request; returns the reply (empty: none).
static void device_handle(const char *p, char *out, size_t n)
{
    out[0] = '\0';
    if (strcmp(p, "cd=1") == 0) {
        runtime_payload(out, n);
    } else if (strcmp(p, "cd=14") == 0) {
        snprintf(out, n,
                 "cd=14,b_ver=108,b_soc=51,b_soh=99,b_vol=5312,b_cur=-94,b_tem=24,b_tp1=23,"
                 "b_vo1=3320,b_vo2=3325");
    } else if (strcmp(p, "cd=19") == 0) {
        snprintf(out, n, "cd=19,get_power=100|200|300|600|0");
    } else if (strncmp(p, "cd=4,", 5) == 0) {
        int y = field_of(p, "yy"), mo = field_of(p, "mm"), day = field_of(p, "rr");
        int h = field_of(p, "hh"), mi = field_of(p, "mn");
        int month = mo + (rl.month_base == 0 ? 1 : 0); // a 0-based firmware adds one
        snprintf(out, n, "cd=4,%d-%d-%d %d:%d:0", y, month, day, h, mi);
    } else if (strncmp(p, "cd=", 3) == 0) {
        int cd = atoi(p + 3);
        if (rl.ack_value == 1) {
            if (cd == 16)
                rl.mcp_w = field_of(p, "cp");
            if (cd == 15)
                rl.mdp_w = field_of(p, "vs");
            if (cd == 11)
                rl.bac_u = field_of(p, "bc");
            if (cd == 2)
                rl.wor_m = field_of(p, "md");
            if (cd == 3) {
                int nm = field_of(p, "nm");
                int bh, bm, eh, em;
                const char *bt = strstr(p, "bt="), *et = strstr(p, "et=");
                if (nm >= 0 && nm < 10 && bt && et && sscanf(bt, "bt=%d:%d", &bh, &bm) == 2 &&
                    sscanf(et, "et=%d:%d", &eh, &em) == 2)
                    snprintf(rl.tim[nm], sizeof(rl.tim[nm]), "%d|%d|%d|%d|%d|%d|%d", bh, bm, eh, em,
                             field_of(p, "wk"), field_of(p, "vv"), field_of(p, "as"));
            }
        }
        if (rl.ack_writes)
            snprintf(out, n, "cd=%d,ret=%d", cd, rl.ack_value);
    }
}

static int on_publish(void *arg, const char *topic, const void *payload, size_t len, bool retain)
{
    (void)arg;
    ck_assert(!retain);
    ck_assert_str_eq(topic, REQ_TOPIC);
    if (rl.fail_publishes > 0) {
        rl.fail_publishes--;
        return -ENOTCONN;
    }
    ck_assert_int_lt(rl.n_req, MAX_REQ);
    struct request *r = &rl.req[rl.n_req++];
    snprintf(r->payload, sizeof(r->payload), "%.*s", (int)len, (const char *)payload);
    r->at = loop_now(loop);
    if (rl.silent)
        return 0;
    if (rl.reply_pending) {
        rl.dropped++; // the relay forwards one reply per request window
        return 0;
    }
    device_handle(r->payload, rl.pending, sizeof(rl.pending));
    if (!rl.pending[0])
        return 0;
    rl.reply_pending = true;
    loop_timer_set(loop, &t_reply, loop_now(loop) + rl.delay_ms, deliver, NULL);
    return 0;
}

static int on_subscribe(void *arg, const char *filter)
{
    (void)arg;
    if (rl.n_sub < 4)
        snprintf(rl.subscribed[rl.n_sub++], sizeof(rl.subscribed[0]), "%s", filter);
    return 0;
}

static void on_event(void *arg, struct device *x, enum device_event ev)
{
    (void)arg;
    (void)x;
    (void)ev;
}

// ---- fixture ------------------------------------------------------------------------------------

static int rl_fail_next; // publishes to fail right from the start

static void start_with(const char *options)
{
    memset(&rl, 0, sizeof(rl));
    rl.fail_publishes = rl_fail_next;
    rl_fail_next = 0;
    rl.ack_writes = true;
    rl.ack_value = 1;
    rl.delay_ms = 200;
    rl.month_base = 1;
    rl.mcp_w = 2500;
    rl.mdp_w = 800;
    rl.bac_u = 0;
    rl.wor_m = 1;
    rl.tot_i = 33993;
    snprintf(rl.tim[0], sizeof(rl.tim[0]), "7|5|22|0|62|-800|1");
    for (int i = 1; i < 10; i++)
        snprintf(rl.tim[i], sizeof(rl.tim[i]), "0|0|0|0|127|0|0");
    snprintf(dir, sizeof(dir), "/tmp/e2m-venusdrv-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "entities_dir: %s/entities\nstate_dir: %s\ndevices:\n"
            "  - id: bat\n    model: marstek/venus\n    type: HMG-50\n"
            "    mac: 'AA:BB:CC:DD:EE:FF'\n    options: {%s}\n",
            E2M_SOURCE_DIR, dir, options);
    fclose(f);
    struct diag dg;
    diag_init(&dg);
    int rc = config_load(path, &cfg, &dg);
    diag_print(&dg, stderr);
    diag_free(&dg);
    ck_assert_int_eq(rc, 0);
    // 2026-05-14 10:00:00 UTC; the clock requests use the local time of the test's TZ (UTC).
    loop = loop_new_virtual(1000000, 1778752800000LL);
    ck_assert_ptr_nonnull(loop);
    struct device_hooks hooks = {
        .event = on_event, .mqtt_subscribe = on_subscribe, .mqtt_publish = on_publish};
    d = device_new(loop, &cfg->devices[0], NULL, &hooks);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(device_start(d), 0);
}

static void start(void)
{
    start_with("");
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

static void stop_loop(void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void run_for(int64_t ms)
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
    char *r = strdup(s ? s : "(not text)");
    json_decref(o);
    return r;
}

static void command(const char *id, const char *payload)
{
    const struct entity *e = model_find(cfg->devices[0].model, id);
    ck_assert_ptr_nonnull(e);
    struct command_value cv;
    char why[160];
    ck_assert_msg(command_validate(e, (const uint8_t *)payload, strlen(payload), &cv, why,
                                   sizeof(why)) == CMD_OK,
                  "%s: %s", id, why);
    ck_assert_int_eq(device_command(d, e, &cv, why, sizeof(why)), 0);
}

static int count_requests(const char *prefix)
{
    int n = 0;
    for (int i = 0; i < rl.n_req; i++)
        n += strncmp(rl.req[i].payload, prefix, strlen(prefix)) == 0;
    return n;
}

static int count_exact(const char *payload)
{
    int n = 0;
    for (int i = 0; i < rl.n_req; i++)
        n += strcmp(rl.req[i].payload, payload) == 0;
    return n;
}

static int find_request(const char *prefix, int from)
{
    for (int i = from; i < rl.n_req; i++)
        if (strncmp(rl.req[i].payload, prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

// No two requests closer than the driver's gap, plus the time the first one's reply took.
static void assert_paced(void)
{
    for (int i = 1; i < rl.n_req; i++)
        ck_assert_msg(rl.req[i].at - rl.req[i - 1].at >= 1000,
                      "requests %d (%s) and %d (%s) only %lld ms apart", i - 1,
                      rl.req[i - 1].payload, i, rl.req[i].payload,
                      (long long)(rl.req[i].at - rl.req[i - 1].at));
    ck_assert_int_eq(rl.dropped, 0);
}

// ---- tests ----------------------------------------------------------------------------------

START_TEST(test_first_poll_and_values)
{
    start();
    ck_assert_int_eq(rl.n_sub, 2);
    ck_assert_str_eq(rl.subscribed[0], REPLY_TOPIC);
    ck_assert_str_eq(rl.subscribed[1], "marstek_energy/HMG-50/device/aabbccddeeff/ctrl");
    run_for(1200);
    ck_assert_int_ge(rl.n_req, 1);
    ck_assert_str_eq(rl.req[0].payload, "cd=1"); // runtime first
    ck_assert(device_online(d));
    ck_assert(num("battery_soc") == 50);
    ck_assert(num("battery_energy") == 2.56);
    ck_assert(num("ac_power") == -800);
    ck_assert(num("charge_energy_total") == 339.93);
    ck_assert(num("income_total") == -56.789);
    ck_assert(num("wifi_signal") == -55);
    ck_assert(num("max_charge_power") == 2500);
    char *s = text("working_status");
    ck_assert_str_eq(s, "Charging");
    free(s);
    s = text("max_discharge_power");
    ck_assert_str_eq(s, "800 W");
    free(s);
    s = text("slot1_start");
    ck_assert_str_eq(s, "07:05");
    free(s);
    s = text("slot1_weekdays");
    ck_assert_str_eq(s, "12345");
    free(s);
    s = text("slot1_enabled");
    ck_assert_str_eq(s, "ON");
    free(s);
    ck_assert(num("slot1_power") == -800);
    s = text("firmware");
    ck_assert_str_eq(s, "153");
    free(s);
    run_for(5000); // clock, BMS and CT follow, a gap apart
    ck_assert_int_eq(count_requests("cd=4,"), 1);
    ck_assert_int_eq(count_requests("cd=14"), 1);
    ck_assert_int_eq(count_requests("cd=19"), 1);
    ck_assert(num("bms_voltage") == 53.12);
    ck_assert(num("bms_current") == -9.4);
    ck_assert(num("cell_voltage_max") == 3.325);
    ck_assert(num("ct_power_total") == 600);
    assert_paced();
    stop();
}
END_TEST

// The broker link is not up yet when the first request goes out (the daemon's start): the
// runtime poll is the first to go once it is, before the clock, BMS and CT.
START_TEST(test_runtime_first_after_link_down)
{
    rl_fail_next = 1;
    start();
    run_for(8000);
    ck_assert_int_ge(rl.n_req, 2);
    ck_assert_str_eq(rl.req[0].payload, "cd=1");
    ck_assert(device_online(d));
    ck_assert(num("battery_soc") == 50);
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, 1);
    assert_paced();
    stop();
}
END_TEST

START_TEST(test_rates_over_an_hour)
{
    start();
    run_for(3600 * 1000 + 500);
    // cd=1 every 60 s, BMS and CT every 5 min, the clock once (daily).
    int polls = count_exact("cd=1");
    ck_assert_msg(polls >= 60 && polls <= 62, "%d runtime polls", polls);
    ck_assert_int_ge(count_requests("cd=14"), 12);
    ck_assert_int_le(count_requests("cd=14"), 13);
    ck_assert_int_ge(count_requests("cd=19"), 12);
    ck_assert_int_le(count_requests("cd=19"), 13);
    ck_assert_int_eq(count_requests("cd=4,"), 1);
    assert_paced();
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, 0);
    stop();
}
END_TEST

START_TEST(test_optional_groups_off)
{
    start_with("read_bms: false, read_ct: false, sync_clock: false, poll_interval: 10s");
    run_for(600 * 1000);
    ck_assert_int_eq(count_requests("cd=14"), 0);
    ck_assert_int_eq(count_requests("cd=19"), 0);
    ck_assert_int_eq(count_requests("cd=4,"), 0);
    int polls = count_exact("cd=1");
    ck_assert_msg(polls >= 60 && polls <= 61, "%d runtime polls at 10 s", polls);
    ck_assert(is_null("bms_voltage"));
    assert_paced();
    stop();
}
END_TEST

START_TEST(test_timeouts_offline_after_three)
{
    start_with("sync_clock: false, read_bms: false, read_ct: false");
    rl.silent = true;
    run_for(6000); // the reply timeout is 5 s
    ck_assert(!device_online(d));
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, 1);
    ck_assert_int_ne(device_sched_state(d), SCHED_STATE_OFFLINE); // one miss is not offline
    run_for(60000);
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, 2);
    ck_assert_int_ne(device_sched_state(d), SCHED_STATE_OFFLINE);
    run_for(60000);
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.poll_errors, 3);
    ck_assert_int_eq(device_sched_state(d), SCHED_STATE_OFFLINE);
    // One request at a time: each waited for its own timeout.
    for (int i = 1; i < rl.n_req; i++)
        ck_assert_int_ge(rl.req[i].at - rl.req[i - 1].at, 5000);
    // The relay comes back: online with the next poll.
    rl.silent = false;
    run_for(61000);
    ck_assert(device_online(d));
    ck_assert(num("battery_soc") == 50);
    stop();
}
END_TEST

START_TEST(test_write_then_one_repoll)
{
    start_with("sync_clock: false, read_bms: false, read_ct: false");
    run_for(3000);
    int before = rl.n_req;
    command("max_charge_power", "1200");
    run_for(3000);
    int w = find_request("cd=16,", before);
    ck_assert_int_ge(w, 0);
    ck_assert_str_eq(rl.req[w].payload, "cd=16,cp=1200");
    // The ack came after 200 ms; the read-back about a second after that, and only one.
    ck_assert_int_eq(w + 1, rl.n_req - 1);
    ck_assert_str_eq(rl.req[w + 1].payload, "cd=1");
    int64_t gap = rl.req[w + 1].at - rl.req[w].at;
    ck_assert_msg(gap >= 1200 && gap <= 1500, "re-poll %lld ms after the write", (long long)gap);
    ck_assert(num("max_charge_power") == 1200);
    // Other controls: the exact payloads.
    command("backup", "ON");
    command("working_mode", "AI");
    command("max_discharge_power", "2500 W");
    run_for(10000);
    ck_assert_int_ge(find_request("cd=11,bc=1", before), 0);
    ck_assert_int_ge(find_request("cd=2,md=5,nl=1", before), 0);
    ck_assert_int_ge(find_request("cd=15,vs=2500", before), 0);
    char *s = text("backup");
    ck_assert_str_eq(s, "ON");
    free(s);
    s = text("max_discharge_power");
    ck_assert_str_eq(s, "2500 W");
    free(s);
    assert_paced();
    stop();
}
END_TEST

START_TEST(test_slot_writes_exact_payloads)
{
    start_with("sync_clock: false, read_bms: false, read_ct: false");
    run_for(3000);
    int before = rl.n_req;
    command("slot1_start", "06:30");
    run_for(3000);
    int w = find_request("cd=3,", before);
    ck_assert_int_ge(w, 0);
    ck_assert_str_eq(rl.req[w].payload, "cd=3,md=1,nm=0,bt=06:30,et=22:00,wk=62,vv=-800,as=1");
    char *s = text("slot1_start");
    ck_assert_str_eq(s, "06:30");
    free(s);
    // Two edits of one slot in a row: the second builds on the first.
    before = rl.n_req;
    command("slot3_end", "24:00");
    command("slot3_power", "-1500");
    command("slot3_weekdays", "06");
    command("slot3_enabled", "ON");
    run_for(15000);
    ck_assert_int_ge(find_request("cd=3,md=1,nm=2,bt=00:00,et=24:00,wk=127,vv=0,as=0", before), 0);
    s = text("slot3_end");
    ck_assert_str_eq(s, "24:00");
    free(s);
    ck_assert_str_eq(rl.tim[2], "0|0|24|0|65|-1500|1");
    ck_assert(num("slot3_power") == -1500);
    // A time the pattern refuses never becomes a command.
    const struct entity *e = model_find(cfg->devices[0].model, "slot1_start");
    struct command_value cv;
    char why[160];
    ck_assert_int_eq(command_validate(e, (const uint8_t *)"25:00", 5, &cv, why, sizeof(why)),
                     CMD_BAD_TEXT);
    ck_assert_int_eq(command_validate(e, (const uint8_t *)"6:30", 4, &cv, why, sizeof(why)),
                     CMD_BAD_TEXT);
    e = model_find(cfg->devices[0].model, "slot1_end");
    ck_assert_int_eq(command_validate(e, (const uint8_t *)"24:00", 5, &cv, why, sizeof(why)),
                     CMD_OK);
    assert_paced();
    stop();
}
END_TEST

START_TEST(test_write_without_ack_and_refused)
{
    start_with("sync_clock: false, read_bms: false, read_ct: false");
    run_for(3000);
    rl.ack_writes = false; // the firmware takes it but says nothing
    int before = rl.n_req;
    command("max_charge_power", "900");
    // An acknowledgement of another command (somebody else's) is not ours.
    ck_assert_str_eq(rl.req[rl.n_req - 1].payload, "cd=16,cp=900");
    device_mqtt_message(d, REPLY_TOPIC, (const uint8_t *)"cd=43,ret=0", 11, false);
    run_for(4000);
    int w = find_request("cd=16,cp=900", before);
    ck_assert_int_ge(w, 0);
    ck_assert_int_ge(w + 1, 1);
    ck_assert_str_eq(rl.req[w + 1].payload, "cd=1");
    int64_t gap = rl.req[w + 1].at - rl.req[w].at;
    ck_assert_msg(gap >= 2500 && gap <= 2700, "%lld", (long long)gap); // ack_wait 1.5 s + gap
    ck_assert(num("max_charge_power") == 900);
    struct device_stats st;
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.writes_refused, 0);
    // ret=0: refused; the device keeps its value.
    rl.ack_writes = true;
    rl.ack_value = 0;
    command("max_charge_power", "100");
    run_for(4000);
    device_get_stats(d, &st);
    ck_assert_uint_eq(st.writes_refused, 1);
    ck_assert(num("max_charge_power") == 900);
    ck_assert(device_online(d));
    stop();
}
END_TEST

START_TEST(test_garbage_guards)
{
    start_with("sync_clock: false, read_bms: false, read_ct: false");
    run_for(3000);
    ck_assert(num("charge_energy_total") == 339.93);
    rl.mcp_w = -1;
    rl.tot_i = 3399; // a dropped digit
    snprintf(rl.extra, sizeof(rl.extra), "dod=0,set_v=12");
    snprintf(rl.tim[4], sizeof(rl.tim[4]), "25|0|1|0|1|0|1");
    run_for(60000);
    ck_assert(is_null("max_charge_power"));
    ck_assert(is_null("depth_of_discharge"));
    ck_assert(is_null("power_version"));
    ck_assert(is_null("slot5_start"));
    ck_assert(num("charge_energy_total") == 339.93); // not a new total
    // The next good reading is taken again.
    rl.mcp_w = 1800;
    rl.tot_i = 34001;
    run_for(60000);
    ck_assert(num("max_charge_power") == 1800);
    ck_assert(num("charge_energy_total") == 340.01);
    // A slot that reads as garbage cannot be edited (it is always written whole).
    int before = rl.n_req;
    command("slot5_power", "100");
    run_for(3000);
    ck_assert_int_eq(find_request("cd=3,", before), -1);
    stop();
}
END_TEST

START_TEST(test_replies_without_a_job)
{
    start_with("sync_clock: false, read_bms: false, read_ct: false");
    run_for(3000);
    // Somebody else's poll: the answer is good data and proves the device there.
    char buf[1024];
    rl.mcp_w = 1234;
    runtime_payload(buf, sizeof(buf));
    device_mqtt_message(d, "marstek_energy/HMG-50/device/aabbccddeeff/ctrl", (const uint8_t *)buf,
                        strlen(buf), false);
    run_for(100);
    ck_assert(num("max_charge_power") == 1234);
    // Retained messages are old news; other devices' topics are not ours.
    rl.mcp_w = 99;
    runtime_payload(buf, sizeof(buf));
    device_mqtt_message(d, REPLY_TOPIC, (const uint8_t *)buf, strlen(buf), true);
    device_mqtt_message(d, "hame_energy/HMG-50/device/000000000000/ctrl", (const uint8_t *)buf,
                        strlen(buf), false);
    run_for(100);
    ck_assert(num("max_charge_power") == 1234);
    stop();
}
END_TEST

START_TEST(test_clock_month_base)
{
    start_with("read_bms: false, read_ct: false");
    rl.month_base = 0; // this firmware counts months from 0
    run_for(6000);
    // The first request takes May as 5 -> June; the driver sees the echo and sends 4.
    ck_assert_int_eq(count_requests("cd=4,"), 2);
    int a = find_request("cd=4,", 0), b = find_request("cd=4,", a + 1);
    ck_assert_str_eq(rl.req[a].payload, "cd=4,yy=2026,mm=5,rr=14,hh=10,mn=0");
    ck_assert_ptr_nonnull(strstr(rl.req[b].payload, ",mm=4,"));
    char *s = text("device_clock");
    ck_assert_str_eq(s, "2026-05-14 10:00:00");
    free(s);
    assert_paced();
    stop();
}
END_TEST

START_TEST(test_clock_month_base_one)
{
    start_with("read_bms: false, read_ct: false");
    run_for(6000);
    ck_assert_int_eq(count_requests("cd=4,"), 1);
    ck_assert_str_eq(rl.req[find_request("cd=4,", 0)].payload,
                     "cd=4,yy=2026,mm=5,rr=14,hh=10,mn=0");
    stop();
}
END_TEST

START_TEST(test_buttons)
{
    start_with("read_bms: false, read_ct: false");
    run_for(5000);
    int before = rl.n_req;
    command("refresh", "PRESS");
    run_for(2000);
    ck_assert_int_eq(count_exact("cd=1"), 2);
    before = rl.n_req;
    command("sync_clock", "PRESS");
    run_for(2000);
    ck_assert_int_ge(find_request("cd=4,", before), 0);
    assert_paced();
    stop();
}
END_TEST

// ---- configuration ----------------------------------------------------------------------------

static int load_device(const char *device, char *err, size_t n)
{
    char path[] = "/tmp/e2m-venuscfg-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    char yaml[1024];
    int len = snprintf(yaml, sizeof(yaml), "entities_dir: %s/entities\ndevices:\n%s",
                       E2M_SOURCE_DIR, device);
    ck_assert_int_eq(write(fd, yaml, (size_t)len), len);
    close(fd);
    struct config *c = NULL;
    struct diag dg;
    diag_init(&dg);
    int rc = config_load(path, &c, &dg);
    unlink(path);
    err[0] = '\0';
    for (size_t i = 0; i < dg.n; i++)
        snprintf(err + strlen(err), n - strlen(err), "%s\n", dg.lines[i]);
    diag_free(&dg);
    if (c)
        config_free(c);
    return rc;
}

static const struct {
    const char *device;
    const char *error; // NULL: valid
} configs[] = {
    {"  - {id: a, model: marstek/venus, type: HMG-50, mac: aabbccddeeff}\n", NULL},
    {"  - {id: a, model: marstek/venus, type: VNSE3-0, mac: 'AA-BB-CC-DD-EE-FF'}\n", NULL},
    {"  - {id: a, model: marstek/venus, type: HMG-50, mac: aabbccddeef}\n", "12 hex digits"},
    {"  - {id: a, model: marstek/venus, type: HMG-50, mac: aabbccddeefg}\n", "12 hex digits"},
    {"  - {id: a, model: marstek/venus, type: HMG/50, mac: aabbccddeeff}\n", "device type"},
    {"  - {id: a, model: marstek/venus, mac: aabbccddeeff}\n", "type"},
    {"  - {id: a, model: marstek/venus, type: HMG-50, mac: aabbccddeeff}\n"
     "  - {id: b, model: marstek/venus, type: HMG-50, mac: 'aa:bb:cc:dd:ee:ff'}\n",
     "configured twice"},
    {"  - {id: a, model: marstek/venus, type: HMG-50, mac: aabbccddeeff,\n"
     "     options: {poll_interval: 5s}}\n",
     "polls at most every 10000 ms"},
    {"  - {id: a, model: marstek/venus, type: HMG-50, mac: aabbccddeeff,\n"
     "     options: {min_request_gap: 200ms}}\n",
     "safe minimum of 1000 ms"},
    {"  - {id: a, model: marstek/venus, type: HMG-50, mac: aabbccddeeff,\n"
     "     options: {bms_interval: 1s}}\n",
     "bms_interval"},
};

START_TEST(test_config)
{
    char err[2048];
    int rc = load_device(configs[_i].device, err, sizeof(err));
    if (!configs[_i].error) {
        ck_assert_msg(rc == 0, "%s", err);
        return;
    }
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err, configs[_i].error), "want '%s' in:\n%s", configs[_i].error, err);
}
END_TEST

int main(void)
{
    setenv("TZ", "UTC", 1);
    Suite *s = suite_create("venus_driver");
    TCase *tc = tcase_create("driver");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_first_poll_and_values);
    tcase_add_test(tc, test_runtime_first_after_link_down);
    tcase_add_test(tc, test_rates_over_an_hour);
    tcase_add_test(tc, test_optional_groups_off);
    tcase_add_test(tc, test_timeouts_offline_after_three);
    tcase_add_test(tc, test_write_then_one_repoll);
    tcase_add_test(tc, test_slot_writes_exact_payloads);
    tcase_add_test(tc, test_write_without_ack_and_refused);
    tcase_add_test(tc, test_garbage_guards);
    tcase_add_test(tc, test_replies_without_a_job);
    tcase_add_test(tc, test_clock_month_base);
    tcase_add_test(tc, test_clock_month_base_one);
    tcase_add_test(tc, test_buttons);
    tcase_add_loop_test(tc, test_config, 0, sizeof(configs) / sizeof(configs[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
