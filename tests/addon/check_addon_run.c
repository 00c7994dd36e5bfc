// SPDX-License-Identifier: MIT
// The add-on's start-up without Docker: the daemon runs `addon -c options.json` the way the
// container does, with a fake Supervisor (a small libmicrohttpd server in this process) that
// names the broker. Asserts that the daemon connects to that broker, that options naming a
// broker win, that the credentials from either reach the broker (which requires them) but not
// the daemon's debug log, and that a missing broker is a clear error.
#include <check.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define TOKEN "test-token-1234"

// ---- the fake Supervisor ----------------------------------------------------------------------

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static char fake_body[1024];
static unsigned fake_status = 200;
static int fake_requests, fake_authorized;

static enum MHD_Result fake_handle(void *arg, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls)
{
    (void)arg;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&fake_lock);
    fake_requests++;
    bool ok = auth && strcmp(auth, "Bearer " TOKEN) == 0;
    fake_authorized += ok;
    char body[1024];
    unsigned status = fake_status;
    snprintf(body, sizeof(body), "%s", fake_body);
    pthread_mutex_unlock(&fake_lock);
    if (!ok || strcmp(method, "GET") != 0 || strcmp(url, "/services/mqtt") != 0) {
        status = ok ? 404 : 401;
        snprintf(body, sizeof(body), "{\"result\":\"error\",\"message\":\"%s\"}",
                 ok ? "not found" : "unauthorized");
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static struct MHD_Daemon *fake_start(int port, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static struct MHD_Daemon *fake_start(int port, unsigned status, const char *fmt, ...)
{
    pthread_mutex_lock(&fake_lock);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fake_body, sizeof(fake_body), fmt, ap);
    va_end(ap);
    fake_status = status;
    fake_requests = fake_authorized = 0;
    pthread_mutex_unlock(&fake_lock);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL,
                                            NULL, fake_handle, NULL, MHD_OPTION_END);
    ck_assert_msg(d, "cannot start the fake Supervisor on port %d", port);
    return d;
}

static int fake_count(int *authorized)
{
    pthread_mutex_lock(&fake_lock);
    int n = fake_requests;
    *authorized = fake_authorized;
    pthread_mutex_unlock(&fake_lock);
    return n;
}

// ---- helpers ----------------------------------------------------------------------------------

static void addon_start(struct proc *p, const char *options, const char *log_name, int sup_port,
                        int http_port, bool token)
{
    char url[64], listen[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sup_port);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", http_port);
    setenv("E2M_SUPERVISOR_URL", url, 1);
    setenv("E2M_ADDON_LISTEN", listen, 1);
    if (token)
        setenv("SUPERVISOR_TOKEN", TOKEN, 1);
    else
        unsetenv("SUPERVISOR_TOKEN");
    unsetenv("HASSIO_TOKEN");
    char log[300];
    snprintf(log, sizeof(log), "%s/%s", itest_dir(), log_name);
    char *argv[] = {
        (char *)itest_path("build", "src/energy2mqtt"), "-v", "addon", "-c", (char *)options, NULL};
    proc_start(p, argv, log, false);
}

static long http_status(int port, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

// A broker with an anonymous listener (b->port, for the test's own client) and one that takes
// only `user` with `password` (returned).
static int auth_broker_start(struct broker *b, const char *user, const char *password)
{
    int rc = itest_sh("mosquitto_passwd -c -b passwd '%s' '%s' && chmod 755 . && chmod 644 passwd",
                      user, password);
    ck_assert_msg(rc == 0, "mosquitto_passwd failed (see sh.log)");
    b->port = itest_free_port();
    int auth_port = itest_free_port();
    broker_start_conf(b,
                      "per_listener_settings true\n"
                      "listener %d 127.0.0.1\nallow_anonymous true\n"
                      "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s/passwd\n",
                      b->port, auth_port, itest_dir());
    return auth_port;
}

// ---- tests ------------------------------------------------------------------------------------

START_TEST(broker_from_the_supervisor)
{
    // The broker takes only the Supervisor's credentials, so they must be used; and the
    // password must stay out of the daemon's debug log.
    struct broker b = {0};
    int auth_port = auth_broker_start(&b, "addons", "Supervisor-secret");
    struct sim inv;
    static const char *const inv_args[] = {"--profile", "sunspec", "--port", "0", NULL};
    sim_start(&inv, inv_args);
    struct collector *c = collector_new(b.port, "#");
    int sup_port = itest_free_port(), http_port = itest_free_port();
    // The v2 answer (`app`), the port as an integer, no TLS.
    struct MHD_Daemon *sup =
        fake_start(sup_port, 200,
                   "{\"result\":\"ok\",\"data\":{\"app\":\"core_mosquitto\",\"host\":\"127.0.0.1\","
                   "\"port\":%d,\"ssl\":false,\"protocol\":\"3.1.1\",\"username\":\"addons\","
                   "\"password\":\"Supervisor-secret\"}}",
                   auth_port);
    // What the Supervisor writes: cleared options as empty strings, device options as one
    // string.
    const char *options = itest_write_file(
        "options.json",
        "{\"log_level\":\"info\",\"mqtt\":{\"url\":\"\",\"username\":\"\"},\"devices\":["
        "{\"id\":\"roof\",\"name\":\"Roof\",\"model\":\"sunspec/inverter\","
        "\"host\":\"127.0.0.1\",\"port\":%d,\"device\":\"\","
        "\"options\":\"poll_interval: 500ms, reply_timeout: 500ms\","
        "\"disable\":\"l1_l2_voltage, l2_l3_voltage\"}]}",
        inv.ports[0]);
    struct proc p;
    addon_start(&p, options, "daemon.log", sup_port, http_port, true);
    char *s = collector_wait(c, "energy2mqtt/bridge/availability", "online", 10000);
    ck_assert_msg(s, "the daemon never reached the broker the Supervisor named (see %s)", p.log);
    free(s);
    s = collector_wait(c, "energy2mqtt/roof/state", "\"power\":", 10000);
    ck_assert_msg(s, "no state of the configured device");
    ck_assert_ptr_null(strstr(s, "l1_l2_voltage"));
    free(s);
    int authorized, n = fake_count(&authorized);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(authorized, 1);
    ck_assert(proc_log_contains(&p, "MQTT broker from the Supervisor: 127.0.0.1"));
    ck_assert(proc_log_contains(&p, "core_mosquitto"));
    // The health check the Dockerfile runs, and the page for ingress.
    ck_assert_int_eq(http_status(http_port, "/api/health"), 200);
    ck_assert_int_eq(http_status(http_port, "/"), 200);
    ck_assert_int_eq(proc_stop(&p, SIGTERM, 30000), 0);
    ck_assert_msg(proc_log_contains(&p, " DEBUG ["), "not a debug log (see %s)", p.log);
    ck_assert_msg(!proc_log_contains(&p, "Supervisor-secret"), "the password is in %s", p.log);
    // Counter high-water marks are kept next to options.json (/data in the container).
    char state[512];
    snprintf(state, sizeof(state), "%s/energy2mqtt-state.json", itest_dir());
    struct stat st;
    ck_assert_msg(stat(state, &st) == 0, "no %s", state);
    MHD_stop_daemon(sup);
    collector_free(c);
    proc_stop(&inv.p, SIGTERM, 3000);
    broker_stop(&b);
    itest_cleanup();
}
END_TEST

// A broker in the options wins: the Supervisor is not asked. The credentials typed into the
// options are used and never logged.
START_TEST(options_name_the_broker)
{
    struct broker b = {0};
    int auth_port = auth_broker_start(&b, "me", "Options-secret");
    struct collector *c = collector_new(b.port, "#");
    int sup_port = itest_free_port(), http_port = itest_free_port();
    struct MHD_Daemon *sup =
        fake_start(sup_port, 200,
                   "{\"result\":\"ok\",\"data\":{\"addon\":\"x\",\"host\":\"192.0.2.1\","
                   "\"port\":1883}}");
    const char *options =
        itest_write_file("options.json",
                         "{\"mqtt\":{\"url\":\"mqtt://127.0.0.1:%d\",\"base_topic\":\"own\","
                         "\"username\":\"me\",\"password\":\"Options-secret\"},"
                         "\"devices\":[]}",
                         auth_port);
    struct proc p;
    addon_start(&p, options, "daemon.log", sup_port, http_port, true);
    char *s = collector_wait(c, "own/bridge/availability", "online", 10000);
    ck_assert_msg(s, "no connection to the broker in the options");
    free(s);
    int authorized;
    ck_assert_int_eq(fake_count(&authorized), 0);
    ck_assert_int_eq(proc_stop(&p, SIGTERM, 30000), 0);
    ck_assert_msg(proc_log_contains(&p, " DEBUG ["), "not a debug log (see %s)", p.log);
    ck_assert_msg(!proc_log_contains(&p, "Options-secret"), "the password is in %s", p.log);
    MHD_stop_daemon(sup);
    collector_free(c);
    broker_stop(&b);
    itest_cleanup();
}
END_TEST

struct no_broker_case {
    bool token;
    unsigned status;
    const char *body;
    const char *log; // what the log must say
};

static const struct no_broker_case no_broker_cases[] = {
    {false, 200, "{}", "no SUPERVISOR_TOKEN"},
    {true, 400, "{\"result\":\"error\",\"message\":\"Service not enabled\"}",
     "Service not enabled"},
    {true, 403, "{\"result\":\"error\",\"message\":\"No access to mqtt service!\"}", "mqtt:want"},
    {true, 200, "{\"result\":\"ok\",\"data\":{\"port\":1883}}", "names no host"},
};

START_TEST(no_broker_is_a_clear_error)
{
    const struct no_broker_case *k = &no_broker_cases[_i];
    int sup_port = itest_free_port(), http_port = itest_free_port();
    struct MHD_Daemon *sup = fake_start(sup_port, k->status, "%s", k->body);
    const char *options = itest_write_file("options.json", "{\"mqtt\":{},\"devices\":[]}");
    struct proc p;
    addon_start(&p, options, "daemon.log", sup_port, http_port, k->token);
    ck_assert_int_eq(proc_stop(&p, 0, 15000), 1);
    ck_assert_msg(proc_log_contains(&p, k->log), "the log does not say '%s' (see %s)", k->log,
                  p.log);
    ck_assert(proc_log_contains(&p, "no MQTT broker: set mqtt.url"));
    MHD_stop_daemon(sup);
    itest_cleanup();
}
END_TEST

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("addon");
    TCase *tc = tcase_create("addon");
    tcase_set_timeout(tc, 120);
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || strcmp(only, "broker_from_the_supervisor") == 0)
        tcase_add_test(tc, broker_from_the_supervisor);
    if (!only || strcmp(only, "options_name_the_broker") == 0)
        tcase_add_test(tc, options_name_the_broker);
    if (!only || strcmp(only, "no_broker_is_a_clear_error") == 0)
        tcase_add_loop_test(tc, no_broker_is_a_clear_error, 0,
                            (int)(sizeof(no_broker_cases) / sizeof(no_broker_cases[0])));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
