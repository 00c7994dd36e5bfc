// SPDX-License-Identifier: MIT
// The hoymiles driver end to end: a real mosquitto, the simulated DTU (e2m-hoymiles-sim, its
// own implementation of the protocol and of the DTU's timing rules) and the daemon, on a time
// scale where the DTU's 30 s guard is 2 s: the daemon keeps 2.5 s between exchanges (allowed
// with unsafe_timing), polls every 3 s and pauses for a 2 s "cloud upload" every 20 s.
//
// Every scenario ends by asking the simulator: no guard violation, no lock-up, no request in
// an upload window. The simulator takes a request's arrival from the kernel's receive
// timestamp, so a simulator descheduled on a loaded machine does not see two requests closer
// together than they reached it.
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define SIM "tests/sim/e2m-hoymiles-sim"
#define T   "energy2mqtt/dtu/"

struct rig {
    struct broker broker;
    struct sim dtu;
    struct proc daemon;
    struct collector *mqtt;
};

// The DTU's scaled timing: guard 2 s, upload windows every 20 s from second 15 for 2 s.
static const char *const SIM_TIMING[] = {
    "--guard",         "2000", "--lockup",  "60000", "--cloud", "20000,15000,2000",
    "--data-interval", "1000", "--cmd-gap", "500"};

static void rig_start(struct rig *r, const char *const *extra, const char *options)
{
    memset(r, 0, sizeof(*r));
    broker_start(&r->broker, false);
    const char *args[40];
    size_t n = 0;
    args[n++] = "--port";
    args[n++] = "0";
    for (size_t i = 0; i < sizeof(SIM_TIMING) / sizeof(SIM_TIMING[0]); i++)
        args[n++] = SIM_TIMING[i];
    for (; extra && *extra; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    sim_start_bin(&r->dtu, SIM, args);
    r->mqtt = collector_new(r->broker.port, "#");
    const char *cfg =
        itest_write_file("dtu.yaml",
                         "mqtt: {url: 'mqtt://127.0.0.1:%d', scan_time: 300ms}\n"
                         "state_dir: %s\n"
                         "devices:\n"
                         "  - id: dtu\n"
                         "    name: Balcony\n"
                         "    model: hoymiles/hms-2t\n"
                         "    host: 127.0.0.1\n"
                         "    port: %d\n"
                         "    options:\n"
                         "      min_request_gap: 2500ms\n"
                         "      unsafe_timing: true\n"
                         "      poll_interval: 3s\n"
                         "      connect_timeout: 500ms\n"
                         "      reply_timeout: 1s\n"
                         "      backoff_min: 1s\n"
                         "      backoff_max: 4s\n"
                         "      stale_after: 8s\n"
                         "      sleep_interval: 2s\n"
                         "      command_wait: 500ms\n"
                         "      cloud_pause: \"off\"\n"
                         "      quiet_windows: [{every: 20s, start: 15s, length: 2s}]\n"
                         "%s",
                         r->broker.port, itest_dir(), r->dtu.ports[0], options ? options : "");
    daemon_start(&r->daemon, cfg, "daemon.log");
}

static void wait_online(struct rig *r)
{
    char *s = collector_wait(r->mqtt, T "availability", "online", 20000);
    ck_assert_msg(s, "the DTU never came online");
    free(s);
}

static json_t *sim_stats(struct rig *r)
{
    char line[8192];
    proc_send(&r->dtu.p, "stats");
    ck_assert(proc_read_line(&r->dtu.p, "{", line, sizeof(line), 3000));
    json_error_t err;
    json_t *o = json_loads(line, 0, &err);
    ck_assert_msg(o, "stats: %s", err.text);
    return o;
}

static double stat_num(struct rig *r, const char *key)
{
    json_t *o = sim_stats(r);
    json_t *v = json_object_get(o, key);
    double d = json_is_number(v)    ? json_number_value(v)
               : json_is_boolean(v) ? json_is_true(v)
                                    : NAN;
    json_decref(o);
    return d;
}

static long long requests_with_tag(struct rig *r, const char *tag)
{
    json_t *o = sim_stats(r);
    json_t *v = json_object_get(json_object_get(o, "requests_by_tag"), tag);
    long long n = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(o);
    return n;
}

// The last line of the simulator's log holding `needle` (without its newline), or "".
static void last_log_line(const struct proc *p, const char *needle, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen(p->log, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, n, "%s", line);
        }
    fclose(f);
}

// What the simulated DTU saw, for failure messages: its rule counters, how many requests and
// busy replies, whether it is locked up now and the last violation it logged. A lock-up (the
// DTU answers nothing for --lockup ms) explains a command that never arrives.
static const char *sim_report(struct rig *r)
{
    static char text[1536];
    json_t *o = sim_stats(r);
    char violation[600];
    last_log_line(&r->dtu.p, "guard violation", violation, sizeof(violation));
    const char *keys[] = {"guard_violations", "lockups", "requests_while_locked", "lost_uploads",
                          "requests",         "replies", "err7_replies"};
    size_t n = 0;
    n += (size_t)snprintf(text + n, sizeof(text) - n, "simulator:");
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && n < sizeof(text); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, " %s=%lld", keys[i],
                              (long long)json_integer_value(json_object_get(o, keys[i])));
    if (n < sizeof(text))
        snprintf(text + n, sizeof(text) - n, " locked=%s%s%s",
                 json_is_true(json_object_get(o, "locked")) ? "yes" : "no",
                 violation[0] ? "; last: " : "", violation);
    json_decref(o);
    return text;
}

// The DTU's rules held for the whole scenario.
static void assert_rules_kept(struct rig *r)
{
    json_t *o = sim_stats(r);
    const char *keys[] = {"guard_violations", "lockups", "requests_while_locked", "lost_uploads"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(json_integer_value(json_object_get(o, keys[i])) == 0, "%s = %lld (%s)",
                      keys[i], (long long)json_integer_value(json_object_get(o, keys[i])),
                      sim_report(r));
    ck_assert_int_ge(json_integer_value(json_object_get(o, "requests")), 2);
    json_decref(o);
}

static void rig_stop(struct rig *r)
{
    assert_rules_kept(r);
    int rc = proc_stop(&r->daemon, SIGTERM, 30000);
    ck_assert_msg(rc == 0, "the daemon exited with %d", rc);
    // Secrets from GetConfig never reach the log.
    ck_assert(!proc_log_contains(&r->daemon, "sim-wifi-pass"));
    ck_assert(!proc_log_contains(&r->daemon, "sim-ap-pass"));
    collector_free(r->mqtt);
    proc_stop(&r->dtu.p, SIGTERM, 3000);
    broker_stop(&r->broker);
    itest_cleanup();
}

static bool wait_text(struct rig *r, const char *key, const char *want, int ms)
{
    long long end = itest_now_ms() + ms;
    while (itest_now_ms() < end) {
        char *v = itest_state_text(r->mqtt, T "state", key);
        bool same = v && strcmp(v, want) == 0;
        free(v);
        if (same)
            return true;
        itest_sleep_ms(50);
    }
    return false;
}

static bool wait_stat(struct rig *r, const char *key, double want, double tol, int ms)
{
    long long end = itest_now_ms() + ms;
    while (itest_now_ms() < end) {
        if (fabs(stat_num(r, key) - want) <= tol)
            return true;
        itest_sleep_ms(100);
    }
    return false;
}

// Whether the state message lists `id` as showing the last command.
static bool assumed(struct rig *r, const char *id)
{
    char *s = collector_last(r->mqtt, T "state");
    ck_assert_ptr_nonnull(s);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "assumed"), i, v) found |=
        strcmp(json_string_value(v), id) == 0;
    json_decref(o);
    return found;
}

START_TEST(plain_values_and_discovery)
{
    struct rig r;
    // The daemon keeps its connection, the DTU closes it after every reply (as some
    // firmware does): each request then opens a new one.
    const char *extra[] = {"--power", "600", "--close-after-reply", NULL};
    rig_start(&r, extra, "      keep_connection: true\n");
    wait_online(&r);
    // Values as the DTU holds them: AC power, grid, the lifetime sum of the ports.
    ck_assert_msg(
        itest_wait_number(r.mqtt, T "state", "ac_power", stat_num(&r, "power_w"), 15, 10000),
        "ac_power %f", itest_state_number(r.mqtt, T "state", "ac_power"));
    double v = itest_state_number(r.mqtt, T "state", "grid_voltage");
    ck_assert_msg(v > 200 && v < 260, "grid voltage %f", v);
    ck_assert_msg(itest_wait_number(r.mqtt, T "state", "energy_total",
                                    stat_num(&r, "energy_total_wh") / 1000, 0.05, 10000),
                  "energy_total %f", itest_state_number(r.mqtt, T "state", "energy_total"));
    ck_assert(itest_state_number(r.mqtt, T "state", "pv1_power") > 0 &&
              itest_state_number(r.mqtt, T "state", "pv2_power") > 0);
    ck_assert(wait_text(&r, "inverter_model", "HMS-800W-2T", 5000));
    ck_assert(wait_text(&r, "dtu_version", "01.00.07", 5000));
    ck_assert(wait_text(&r, "encrypted", "OFF", 5000));
    ck_assert(wait_text(&r, "link", "ON", 5000));
    // AppInfo came first, then real data, each on a connection of its own.
    ck_assert_int_ge(requests_with_tag(&r, "0xa301"), 1);
    ck_assert_int_ge(requests_with_tag(&r, "0xa311"), 1);
    ck_assert_int_ge(stat_num(&r, "connections"), stat_num(&r, "requests"));
    ck_assert(!proc_log_contains(&r.daemon, " WARN "));
    // Discovery passes the validator, with every topic it references published.
    itest_assert_discovery_valid(r.mqtt);
    // Warnings: fetched once at the start, then only when the warning number moves.
    long long end = itest_now_ms() + 15000;
    while (requests_with_tag(&r, "0xa304") < 1 && itest_now_ms() < end)
        itest_sleep_ms(200);
    long long warn_requests = requests_with_tag(&r, "0xa304");
    ck_assert_int_eq(warn_requests, 1);
    itest_sleep_ms(7000);
    ck_assert_int_eq(requests_with_tag(&r, "0xa304"), warn_requests);
    char ok[64];
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "warn 216"));
    ck_assert_msg(wait_text(&r, "last_warning", "216: PV input fault", 15000), "last warning");
    ck_assert(itest_state_number(r.mqtt, T "state", "warnings_active") >= 1);
    ck_assert_int_eq(requests_with_tag(&r, "0xa304"), warn_requests + 1);
    rig_stop(&r);
}
END_TEST

START_TEST(encrypted_and_new_key_after_reboot)
{
    struct rig r;
    const char *extra[] = {"--encrypted", "--power", "500", NULL};
    rig_start(&r, extra, NULL);
    wait_online(&r);
    ck_assert(wait_text(&r, "encrypted", "ON", 10000));
    ck_assert(wait_text(&r, "dtu_version", "01.01.01", 5000));
    ck_assert(itest_wait_number(r.mqtt, T "state", "ac_power", 500, 15, 10000));
    // A DTU reboot changes the key: the daemon reads AppInfo again and carries on.
    long long appinfo = requests_with_tag(&r, "0xa301");
    char ok[128];
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "power 300"));
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "reboot"));
    ck_assert_msg(itest_wait_number(r.mqtt, T "state", "ac_power", 300, 15, 30000),
                  "no data after the reboot: %f",
                  itest_state_number(r.mqtt, T "state", "ac_power"));
    ck_assert_int_gt(requests_with_tag(&r, "0xa301"), appinfo);
    rig_stop(&r);
}
END_TEST

START_TEST(limit_commands)
{
    struct rig r;
    const char *extra[] = {"--power", "700", NULL};
    rig_start(&r, extra, NULL);
    wait_online(&r);
    ck_assert(wait_text(&r, "link", "ON", 10000));
    // Persistent limit: reaches the DTU within one guard gap plus one exchange, and comes
    // back confirmed by the DTU's own echo.
    long long t0 = itest_now_ms();
    collector_publish(r.mqtt, T "power_limit/set", "50", false);
    ck_assert_msg(wait_stat(&r, "limit_percent", 50, 0.01, 15000), "limit not applied (%s)",
                  sim_report(&r));
    long long latency = itest_now_ms() - t0;
    fprintf(stderr, "hoymiles: persistent limit reached the DTU after %lld ms\n", latency);
    // Gap 2.5 s + connect 0.5 s + reply 1 s + a 2 s upload window + the stats round trips.
    ck_assert_int_le(latency, 7000);
    ck_assert(itest_wait_number(r.mqtt, T "state", "power_limit", 50, 0.01, 8000));
    ck_assert(itest_wait_number(r.mqtt, T "state", "ac_power", 400, 15, 10000)); // 50 % of 800 W
    itest_sleep_ms(4000);
    ck_assert(!assumed(&r, "power_limit")); // the DTU echoes it: source "device"
    // 0 % is refused (zero_turns_off is off): logged with the reason, the DTU untouched. The
    // refusal comes only when the persistent limit may be written again: a minute after 50.
    collector_publish(r.mqtt, T "power_limit/set", "0", false);
    // Runtime limit in W meanwhile (no write interval of its own). A command waits behind the
    // polls that fell due before it (up to three, each a 2.5 s gap), a quiet window with its
    // look-ahead (3 s) and, when the machine is loaded, a reply timeout and its backoff: the
    // budgets below are upper bounds for that, not expected times.
    collector_publish(r.mqtt, T "power_limit_runtime/set", "300", false);
    ck_assert_msg(wait_stat(&r, "limit_watts", 300, 0.01, 30000), "runtime limit not applied (%s)",
                  sim_report(&r));
    ck_assert(itest_wait_number(r.mqtt, T "state", "power_limit_runtime", 300, 0.01, 8000));
    ck_assert(itest_wait_number(r.mqtt, T "state", "ac_power", 300, 15, 10000));
    ck_assert_int_eq((int)stat_num(&r, "runtime_writes"), 1);
    // The DTU is busy (err_code 7): the command is sent again and taken (two exchanges, so
    // twice the budget).
    char ok[64];
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "busy 1"));
    collector_publish(r.mqtt, T "power_limit_runtime/set", "200", false);
    ck_assert_msg(wait_stat(&r, "limit_watts", 200, 0.01, 45000), "busy limit never applied (%s)",
                  sim_report(&r));
    ck_assert_msg((int)stat_num(&r, "err7_replies") == 1, "one busy reply expected (%s)",
                  sim_report(&r));
    ck_assert(itest_wait_number(r.mqtt, T "state", "power_limit_runtime", 200, 0.01, 8000));
    // Inverter off: a 0x2305 command the DTU never answers; the switch shows the command.
    collector_publish(r.mqtt, T "inverter/set", "OFF", false);
    ck_assert_msg(wait_stat(&r, "inverter_on", 0, 0, 30000), "inverter never switched off (%s)",
                  sim_report(&r));
    ck_assert(wait_text(&r, "inverter", "OFF", 8000));
    ck_assert(assumed(&r, "inverter"));
    ck_assert(itest_wait_number(r.mqtt, T "state", "ac_power", 0, 0.5, 10000));
    collector_publish(r.mqtt, T "inverter/set", "ON", false);
    ck_assert_msg(wait_stat(&r, "inverter_on", 1, 0, 30000), "inverter never switched on (%s)",
                  sim_report(&r));
    // The refusal of 0 %, not before the minute was up.
    long long end = t0 + 90000;
    while (itest_now_ms() < end && !proc_log_contains(&r.daemon, "0 % is not a power limit"))
        itest_sleep_ms(200);
    ck_assert(proc_log_contains(&r.daemon, "0 % is not a power limit"));
    ck_assert_int_ge(itest_now_ms() - t0, 60000);
    ck_assert(fabs(stat_num(&r, "limit_percent") - 50) < 0.01);
    ck_assert_int_eq((int)stat_num(&r, "persistent_writes"), 1);
    ck_assert(itest_wait_number(r.mqtt, T "state", "power_limit", 50, 0.01, 5000)); // snapped back
    rig_stop(&r);
}
END_TEST

START_TEST(night_sleep_and_morning)
{
    struct rig r;
    const char *extra[] = {"--power", "4", "--encrypted", NULL};
    rig_start(&r, extra, NULL);
    wait_online(&r);
    ck_assert(itest_wait_number(r.mqtt, T "state", "ac_power", 4, 2, 10000));
    double energy = itest_state_number(r.mqtt, T "state", "energy_total");
    ck_assert(energy > 0);
    char ok[128];
    collector_clear(r.mqtt); // only what happens from nightfall on
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "night on"));
    long long t0 = itest_now_ms();
    char *s = collector_wait(r.mqtt, T "availability", "offline", 30000);
    ck_assert_msg(s, "the DTU never went to sleep");
    free(s);
    long long grace = itest_now_ms() - t0;
    fprintf(stderr, "hoymiles: availability offline %lld ms after nightfall\n", grace);
    ck_assert_int_ge(grace, 3000); // the grace period: stale_after (8 s) after the last reading
    ck_assert(wait_text(&r, "link_status", "sleeping", 5000));
    itest_sleep_ms(6000); // a few probes at night
    // Values and counters kept, nothing logged as a warning or error about it.
    ck_assert(fabs(itest_state_number(r.mqtt, T "state", "energy_total") - energy) < 0.01);
    ck_assert(!proc_log_contains(&r.daemon, " WARN "));
    ck_assert(!proc_log_contains(&r.daemon, " ERROR "));
    // Morning: the DTU boots with a new key; the next probe reads AppInfo and data flows.
    collector_clear(r.mqtt);
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "power 250"));
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "night off"));
    s = collector_wait(r.mqtt, T "availability", "online", 20000);
    ck_assert_msg(s, "no morning recovery");
    free(s);
    ck_assert(itest_wait_number(r.mqtt, T "state", "ac_power", 250, 15, 10000));
    ck_assert(itest_state_number(r.mqtt, T "state", "energy_total") >= energy);
    rig_stop(&r);
}
END_TEST

START_TEST(faults_stale_and_silent_config)
{
    struct rig r;
    const char *extra[] = {"--power", "450", "--getconfig-silent", NULL};
    rig_start(&r, extra,
              "      config_interval: 1s\n"
              "      stale_limit: 6s\n");
    wait_online(&r);
    ck_assert(itest_wait_number(r.mqtt, T "state", "ac_power", 450, 15, 10000));
    char ok[128];
    // Garbage before a reply, a bad CRC, a stale duplicate before the reply, a swallowed
    // request, a dropped connection: each costs at most one exchange; the device stays up.
    const char *faults[] = {"garbage", "badcrc", "dup", "stall", "drop"};
    for (size_t i = 0; i < 5; i++) {
        ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "fault %s", faults[i]));
        ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "power %d", 300 + 20 * (int)i));
        ck_assert_msg(
            itest_wait_number(r.mqtt, T "state", "ac_power", 300 + 20 * (int)i, 10, 20000),
            "after fault %s: %f", faults[i], itest_state_number(r.mqtt, T "state", "ac_power"));
    }
    char *s = collector_last(r.mqtt, T "availability");
    ck_assert_str_eq(s, "online");
    free(s);
    // GetConfig is never answered: after two tries the daemon stops asking.
    long long cfg_requests = requests_with_tag(&r, "0xa309");
    ck_assert_int_le(cfg_requests, 2);
    ck_assert(proc_log_contains(&r.daemon, "does not answer GetConfig"));
    // Stale data: the DTU keeps sending the same data set; after stale_limit it is reported
    // and the device goes offline; fresh data brings it back.
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "stale on"));
    ck_assert(wait_text(&r, "stale", "ON", 20000));
    s = collector_wait(r.mqtt, T "availability", "offline", 20000);
    ck_assert(s);
    free(s);
    ck_assert(sim_command(&r.dtu, ok, sizeof(ok), "stale off"));
    ck_assert(wait_text(&r, "stale", "OFF", 20000));
    s = collector_wait(r.mqtt, T "availability", "online", 20000);
    ck_assert(s);
    free(s);
    ck_assert_int_eq(requests_with_tag(&r, "0xa309"), cfg_requests);
    rig_stop(&r);
}
END_TEST

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct itest_case all[] = {
        {"plain_values_and_discovery", plain_values_and_discovery},
        {"encrypted_and_new_key_after_reboot", encrypted_and_new_key_after_reboot},
        {"limit_commands", limit_commands},
        {"night_sleep_and_morning", night_sleep_and_morning},
        {"faults_stale_and_silent_config", faults_stale_and_silent_config},
    };
    return itest_main("hoymiles", all, sizeof(all) / sizeof(all[0]), 180, argc, argv);
}
