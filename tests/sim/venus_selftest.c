// SPDX-License-Identifier: MIT
// Self-test of e2m-venus-sim: starts a mosquitto and the simulator, plays the client side of
// hame-relay's App topic, checks the answers on the device topic.
//
// usage: venus_selftest [--wrapper "valgrind ..."] --mosquitto PATH <simulator> <scenario>...
// Each scenario starts its own broker and simulator, ends the simulator with SIGTERM and
// requires exit status 0. Exit status: 0 pass, 1 fail, 2 usage.
#include "selftest_child.h"
#include "selftest_mqtt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>

#define APP    "hame_energy/VNSE3-0/App/0123456789ab/ctrl"
#define DEVICE "hame_energy/VNSE3-0/device/0123456789ab/ctrl"
#define M_APP  "marstek_energy/VNSE3-0/App/0123456789ab/ctrl"
#define M_DEV  "marstek_energy/VNSE3-0/device/0123456789ab/ctrl"

static const char *mosquitto;

// ---- the relay's client side ------------------------------------------------------------------

// The app's side of the relay: a client that reads every device topic of the test battery.
static MQTTClient app_connect(int port)
{
    return mq_connect(port, "venus-selftest", "+/VNSE3-0/device/#");
}

// The next message on any device topic within `timeout_ms` (scaled): its topic and payload.
static bool mq_next(MQTTClient m, int timeout_ms, char *topic, size_t tn, char *out, size_t n)
{
    int64_t deadline = now_ms() + (int64_t)timeout_ms * selftest.slow;
    while (now_ms() < deadline) {
        char *t = NULL;
        int tlen = 0;
        MQTTClient_message *msg = NULL;
        int rc = MQTTClient_receive(m, &t, &tlen, &msg, 50);
        CHECK(rc == MQTTCLIENT_SUCCESS || rc == MQTTCLIENT_TOPICNAME_TRUNCATED,
              "test client lost the broker (%d)", rc);
        if (!msg)
            continue;
        snprintf(topic, tn, "%s", t);
        size_t len = (size_t)msg->payloadlen < n - 1 ? (size_t)msg->payloadlen : n - 1;
        memcpy(out, msg->payload, len);
        out[len] = '\0';
        MQTTClient_freeMessage(&msg);
        MQTTClient_free(t);
        return true;
    }
    return false;
}

// Sends `request` on the App topic and returns the answer on the device topic (fails without).
// The answer must come within the relay's second.
static const char *ask(MQTTClient m, const char *request)
{
    static char reply[4096];
    char topic[256];
    int64_t start = now_ms();
    mq_publish(m, APP, request);
    CHECK(mq_next(m, 1000, topic, sizeof(topic), reply, sizeof(reply)), "no answer to %s", request);
    CHECK(strcmp(topic, DEVICE) == 0, "answer on %s", topic);
    CHECK(now_ms() - start < 1000 * selftest.slow, "answer after %lld ms",
          (long long)(now_ms() - start));
    return reply;
}

// The raw value of `key` in a key=value payload ("" when absent).
static const char *val(const char *payload, const char *key)
{
    static char buf[128];
    char probe[40];
    snprintf(probe, sizeof(probe), ",%s=", key);
    const char *p = strstr(payload, probe);
    if (!p && strncmp(payload, probe + 1, strlen(probe) - 1) == 0)
        p = payload - 1;
    buf[0] = '\0';
    if (p) {
        p += strlen(probe);
        snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(p, ","), p);
    }
    return buf;
}

static void sim_start(struct child *c, const char *sim, int port, const char *const *extra)
{
    char mqtt[64];
    snprintf(mqtt, sizeof(mqtt), "127.0.0.1:%d", port);
    const char *args[24] = {"--mqtt", mqtt, "--type", "VNSE3-0", "--mac", "0123456789ab"};
    int n = 6;
    for (; extra && *extra && n < 23; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    char line[SELFTEST_LINE_MAX];
    child_start(c, sim, args);
    child_expect(c, "ready mqtt VNSE3-0 0123456789ab", 5000, line);
}

// ---- scenarios --------------------------------------------------------------------------------

static const char *const runtime_keys[] = {
    "cel_p", "cel_c", "tot_i", "tot_o", "ele_d", "ele_m", "grd_d", "grd_m", "inc_d", "inc_m",
    "inc_a", "grd_f", "grd_o", "grd_t", "gct_s", "cel_s", "err_t", "err_a", "dev_n", "grd_y",
    "wor_m", "tim_0", "tim_9", "bac_u", "wif_s", "set_v", "mcp_w", "mdp_w", NULL};

// Reads: the runtime reply with every key, BMS and CT; the marstek_energy twin answers on its
// own prefix; unknown requests get nothing; a static device does not change.
static void test_reads(const char *sim)
{
    struct child ch;
    int port = selftest_broker_start(mosquitto);
    const char *extra[] = {"--static", NULL};
    sim_start(&ch, sim, port, extra);
    MQTTClient m = app_connect(port);
    char line[SELFTEST_LINE_MAX];

    const char *r = ask(m, "cd=1");
    CHECK(strncmp(r, "cd=1,", 5) == 0, "runtime reply starts with cd=1: %.40s", r);
    for (const char *const *k = runtime_keys; *k; k++)
        CHECK(val(r, *k)[0], "runtime reply lacks %s", *k);
    CHECK(strcmp(val(r, "tim_0"), "7|5|22|0|62|-800|1") == 0, "tim_0 %s", val(r, "tim_0"));
    CHECK(strcmp(val(r, "tim_2"), "21|30|24|0|65|600|0") == 0, "a slot ending 24:00: %s",
          val(r, "tim_2"));
    CHECK(strcmp(val(r, "tot_i"), "33993") == 0, "tot_i %s", val(r, "tot_i"));
    CHECK(strcmp(val(r, "cel_c"), "50") == 0 && strcmp(val(r, "cel_p"), "256") == 0, "soc");
    child_expect(&ch, "request cd=1", 1000, line);
    CHECK(strcmp(child_cmd(&ch, "get tot_i"), "33993") == 0, "get tot_i");

    r = ask(m, "cd=14");
    CHECK(strncmp(r, "cd=14,", 6) == 0 && val(r, "b_vo16")[0] && val(r, "b_soc")[0] &&
              strcmp(val(r, "b_tp1"), "23") == 0,
          "BMS reply %.80s", r);
    r = ask(m, "cd=19");
    CHECK(strncmp(r, "cd=19,get_power=", 16) == 0, "CT reply %s", r);

    char topic[256], reply[4096];
    mq_publish(m, M_APP, "cd=1");
    CHECK(mq_next(m, 1000, topic, sizeof(topic), reply, sizeof(reply)) && strcmp(topic, M_DEV) == 0,
          "the marstek_energy twin is answered on its own prefix (%s)", topic);
    mq_publish(m, APP, "cd=77");
    mq_publish(m, APP, "hello");
    CHECK(!mq_next(m, 500, topic, sizeof(topic), reply, sizeof(reply)), "answered %s", reply);
    sleep_ms(1200);
    r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "tot_i"), "33993") == 0 && strcmp(val(r, "grd_o"), "0") == 0,
          "a static device changed: %s %s", val(r, "tot_i"), val(r, "grd_o"));
    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

// Writes: ret=1 and reflected in the next runtime reply; refused values ret=0 and unchanged;
// the slot times read by position; the clock echo; forbidden commands reported, never done.
static void test_writes(const char *sim)
{
    struct child ch;
    int port = selftest_broker_start(mosquitto);
    const char *extra[] = {"--static", NULL};
    sim_start(&ch, sim, port, extra);
    MQTTClient m = app_connect(port);
    char line[SELFTEST_LINE_MAX];

    CHECK(strcmp(ask(m, "cd=16,cp=1200"), "cd=16,ret=1") == 0, "cd=16 ack");
    child_expect(&ch, "write cd=16,cp=1200", 1000, line);
    CHECK(strcmp(ask(m, "cd=15,vs=2500"), "cd=15,ret=1") == 0, "cd=15 ack");
    CHECK(strcmp(ask(m, "cd=11,bc=1"), "cd=11,ret=1") == 0, "cd=11 ack");
    CHECK(strcmp(ask(m, "cd=2,md=1"), "cd=2,ret=1") == 0, "cd=2 ack");
    CHECK(strcmp(ask(m, "cd=3,md=1,nm=4,bt=06:30,et=24:00,wk=65,vv=-1500,as=1"), "cd=3,ret=1") == 0,
          "cd=3 ack");
    const char *r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "mcp_w"), "1200") == 0, "mcp_w %s", val(r, "mcp_w"));
    CHECK(strcmp(val(r, "mdp_w"), "2500") == 0 && strcmp(val(r, "set_v"), "0") == 0,
          "mdp_w %s set_v %s", val(r, "mdp_w"), val(r, "set_v"));
    CHECK(strcmp(val(r, "bac_u"), "1") == 0 && strcmp(val(r, "wor_m"), "1") == 0, "bac_u wor_m");
    CHECK(strcmp(val(r, "tim_4"), "6|30|24|0|65|-1500|1") == 0, "tim_4 %s", val(r, "tim_4"));

    // Unpadded times are read by position, as the firmware does: 2:43 becomes 02:03.
    CHECK(strcmp(ask(m, "cd=3,md=1,nm=5,bt=2:43,et=3:5x,wk=1,vv=100,as=0"), "cd=3,ret=1") == 0,
          "unpadded slot");
    r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "tim_5"), "2|3|3|0|1|100|0") == 0, "tim_5 %s", val(r, "tim_5"));

    static const char *const refused[] = {
        "cd=16,cp=2501",
        "cd=16,cp=-1",
        "cd=15,vs=700",
        "cd=11,bc=2",
        "cd=2,md=3",
        "cd=2,md=5",
        "cd=3,md=1,nm=10,bt=01:00,et=02:00,wk=1,vv=0,as=1",
        "cd=3,md=1,nm=1,bt=25:00,et=02:00,wk=1,vv=0,as=1",
        "cd=3,md=1,nm=1,bt=01:00,et=24:01,wk=1,vv=0,as=1",
        "cd=3,md=1,nm=1,bt=01:00,et=02:00,wk=128,vv=0,as=1",
        "cd=3,md=1,nm=1,bt=01:00,et=02:00,wk=1,vv=2600,as=1",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "cd=%d,ret=0", atoi(refused[i] + 3));
        r = ask(m, refused[i]);
        CHECK(strcmp(r, want) == 0, "%s: %s", refused[i], r);
    }
    CHECK(strcmp(ask(m, "cd=2,md=5,nl=1"), "cd=2,ret=1") == 0, "AI with nl=1");
    r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "mcp_w"), "1200") == 0 && strcmp(val(r, "bac_u"), "1") == 0 &&
              strcmp(val(r, "wor_m"), "5") == 0 && strcmp(val(r, "tim_1"), "0|0|0|0|127|0|0") == 0,
          "refused writes changed something");

    // The clock: months counted from 1; the echo shows the date now set.
    r = ask(m, "cd=4,yy=2026,mm=5,rr=14,hh=16,mn=55");
    CHECK(strncmp(r, "cd=4,2026-5-14 16:55:", 21) == 0, "clock echo %s", r);
    CHECK(strncmp(child_cmd(&ch, "clock"), "2026-05-14 16:55", 16) == 0, "clock");

    // Factory reset and firmware updates are reported, not done, and not answered.
    char topic[256], reply[4096];
    mq_publish(m, APP, "cd=5,rs=2");
    child_expect(&ch, "forbidden cd=5,rs=2", 1000, line);
    CHECK(!mq_next(m, 400, topic, sizeof(topic), reply, sizeof(reply)), "reset answered");
    CHECK(child_stderr_has(&ch, "forbidden request cd=5,rs=2"), "stderr");
    const char *stats = child_cmd(&ch, "stats");
    CHECK(strstr(stats, "\"forbidden\":1") && strstr(stats, "\"refused\":11"), "stats %s", stats);
    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

// A firmware counting months from 0 takes mm=5 as June.
static void test_month_base(const char *sim)
{
    struct child ch;
    int port = selftest_broker_start(mosquitto);
    const char *extra[] = {"--static", "--month-base", "0", NULL};
    sim_start(&ch, sim, port, extra);
    MQTTClient m = app_connect(port);
    const char *r = ask(m, "cd=4,yy=2026,mm=5,rr=14,hh=6,mn=7");
    CHECK(strncmp(r, "cd=4,2026-6-14 6:7:", 19) == 0, "0-based echo %s", r);
    sleep_ms(1100);
    r = ask(m, "cd=4,yy=2026,mm=4,rr=14,hh=6,mn=7");
    CHECK(strncmp(r, "cd=4,2026-5-14 6:7:", 19) == 0, "0-based echo %s", r);
    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

// The relay's window: two requests back to back get one answer (the second is carried out
// but its answer lost); silence; the request gap in the statistics.
static void test_relay(const char *sim)
{
    struct child ch;
    int port = selftest_broker_start(mosquitto);
    const char *extra[] = {"--static", "--delay", "300", NULL};
    sim_start(&ch, sim, port, extra);
    MQTTClient m = app_connect(port);
    char line[SELFTEST_LINE_MAX], topic[256], reply[4096];

    mq_publish(m, APP, "cd=1");
    mq_publish(m, APP, "cd=16,cp=700");
    CHECK(mq_next(m, 1000, topic, sizeof(topic), reply, sizeof(reply)), "no answer at all");
    CHECK(strncmp(reply, "cd=1,", 5) == 0, "the first request's answer: %.30s", reply);
    CHECK(!mq_next(m, 700, topic, sizeof(topic), reply, sizeof(reply)), "a second answer: %s",
          reply);
    child_expect(&ch, "dropped cd=16,cp=700", 1000, line);
    CHECK(strcmp(child_cmd(&ch, "get mcp_w"), "700") == 0, "the dropped write was not done");
    const char *stats = child_cmd(&ch, "stats");
    CHECK(strstr(stats, "\"dropped\":1") && strstr(stats, "\"requests\":2"), "stats %s", stats);
    long gap = atol(strstr(stats, "\"min_gap_ms\":") + 13);
    CHECK(gap < 300, "min_gap_ms %ld", gap);

    child_cmd(&ch, "silent on");
    mq_publish(m, APP, "cd=1");
    child_expect(&ch, "request cd=1", 1000, line);
    CHECK(!mq_next(m, 800, topic, sizeof(topic), reply, sizeof(reply)), "silent but answered");
    child_cmd(&ch, "silent off");
    CHECK(strncmp(ask(m, "cd=1"), "cd=1,", 5) == 0, "answering again");
    stats = child_cmd(&ch, "stats");
    CHECK(strstr(stats, "\"silent\":1") && strstr(stats, "\"replies\":2"), "stats %s", stats);
    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

// Quirks: a negative mcp_w, a counter missing its last digit, an unknown set_v, dod 0; each for
// as many replies as asked; pinned keys; the evolution (power, energy) when not static.
static void test_quirks(const char *sim)
{
    struct child ch;
    int port = selftest_broker_start(mosquitto);
    const char *extra[] = {"--tick", "100", NULL};
    sim_start(&ch, sim, port, extra);
    MQTTClient m = app_connect(port);

    child_cmd(&ch, "quirk mcp 2");
    child_cmd(&ch, "quirk digit 1");
    child_cmd(&ch, "quirk setv 1");
    child_cmd(&ch, "quirk dod 1");
    const char *r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "mcp_w"), "-1") == 0, "mcp_w %s", val(r, "mcp_w"));
    size_t digits = strlen(val(r, "tot_i"));
    CHECK(digits == 4, "tot_i with a dropped digit: %s", val(r, "tot_i"));
    CHECK(strcmp(val(r, "set_v"), "12") == 0 && strcmp(val(r, "dod"), "0") == 0, "set_v dod");
    sleep_ms(1100);
    r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "mcp_w"), "-1") == 0, "second mcp_w quirk %s", val(r, "mcp_w"));
    CHECK(strlen(val(r, "tot_i")) == 5 && !val(r, "dod")[0], "quirks used up");
    sleep_ms(1100);
    r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "mcp_w"), "2500") == 0, "mcp_w back %s", val(r, "mcp_w"));

    // Pins: any key, until thawed; a key the firmware does not send is added.
    child_cmd(&ch, "set cel_c 42");
    child_cmd(&ch, "set pv1 1234|1");
    sleep_ms(1100);
    r = ask(m, "cd=1");
    CHECK(strcmp(val(r, "cel_c"), "42") == 0 && strcmp(val(r, "pv1"), "1234|1") == 0, "pins");
    child_cmd(&ch, "thaw cel_c");
    CHECK(strcmp(child_cmd(&ch, "get cel_c"), "42") != 0, "thawed cel_c still 42");
    // The automatic pattern moves power and energy (ticks of 100 ms are 0.1 s each).
    double e1 = atof(child_cmd(&ch, "get tot_o")) + atof(child_cmd(&ch, "get tot_i"));
    child_cmd(&ch, "step 300");
    double e2 = atof(child_cmd(&ch, "get tot_o")) + atof(child_cmd(&ch, "get tot_i"));
    CHECK(e2 > e1, "energy did not move: %f -> %f", e1, e2);

    // Control errors.
    child_send(&ch, "set tot_i 1,2");
    char line[SELFTEST_LINE_MAX];
    child_expect(&ch, "err usage: set", 1000, line);
    child_send(&ch, "quirk nothing");
    child_expect(&ch, "err usage: quirk", 1000, line);
    child_send(&ch, "get nothing");
    child_expect(&ch, "err no key", 1000, line);
    child_send(&ch, "bogus");
    child_expect(&ch, "err unknown command", 1000, line);
    child_send(&ch, "silent maybe");
    child_expect(&ch, "err usage: silent", 1000, line);
    mq_close(&m);
    child_stop(&ch);
    selftest_broker_stop();
}

// ---- main -------------------------------------------------------------------------------------

static const struct selftest_scenario scenarios[] = {
    {"reads", test_reads}, {"writes", test_writes}, {"month_base", test_month_base},
    {"relay", test_relay}, {"quirks", test_quirks},
};

int main(int argc, char **argv)
{
    int a = 1;
    for (; a + 1 < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
        if (strcmp(argv[a], "--wrapper") == 0) {
            selftest.wrapper = argv[a + 1];
            selftest.slow = 5;
        } else if (strcmp(argv[a], "--mosquitto") == 0) {
            mosquitto = argv[a + 1];
        } else {
            break;
        }
    }
    if (argc - a < 2 || !mosquitto) {
        fprintf(stderr,
                "usage: %s [--wrapper CMD] --mosquitto PATH <e2m-venus-sim> <scenario>...\n",
                argv[0]);
        return 2;
    }
    selftest.backlog_max = 256;
    selftest.cleanup = selftest_broker_stop;
    return selftest_run(argv[a], &argv[a + 1], argc - a - 1, scenarios,
                        sizeof(scenarios) / sizeof(scenarios[0]));
}
