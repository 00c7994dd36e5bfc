// SPDX-License-Identifier: MIT
// Unit tests for the add-on glue (app/addon): the Supervisor's MQTT service answer and the
// conversion of /data/options.json into a configuration the loader accepts.
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/addon.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/model.h"
#include "core/node.h"
#include "core/params.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct service_case {
    const char *body;
    int rc;
    const char *host, *provider;
    int port;
    bool ssl;
    const char *user, *error;
};

static const struct service_case service_cases[] = {
    // The v1 API: `addon`.
    {"{\"result\":\"ok\",\"data\":{\"addon\":\"core_mosquitto\",\"host\":\"core-mosquitto\","
     "\"port\":1883,\"ssl\":false,\"protocol\":\"3.1.1\",\"username\":\"addons\","
     "\"password\":\"pw\"}}",
     0, "core-mosquitto", "core_mosquitto", 1883, false, "addons", NULL},
    // The v2 API: `app`, TLS, no credentials.
    {"{\"result\":\"ok\",\"data\":{\"app\":\"local_broker\",\"host\":\"10.0.0.2\",\"port\":8883,"
     "\"ssl\":true}}",
     0, "10.0.0.2", "local_broker", 8883, true, "", NULL},
    // A port written as a string, as older documentation shows it.
    {"{\"result\":\"ok\",\"data\":{\"host\":\"b\",\"port\":\"1884\"}}", 0, "b", "", 1884, false, "",
     NULL},
    {"{\"result\":\"error\",\"message\":\"Service not enabled\"}", -1, NULL, NULL, 0, false, NULL,
     "Service not enabled"},
    {"{\"result\":\"ok\",\"data\":{\"port\":1883}}", -1, NULL, NULL, 0, false, NULL, "no host"},
    {"{\"result\":\"ok\",\"data\":{\"host\":\"b\",\"port\":70000}}", -1, NULL, NULL, 0, false, NULL,
     "invalid port"},
    {"<html>bad gateway</html>", -1, NULL, NULL, 0, false, NULL, "not JSON"},
};

START_TEST(test_service)
{
    const struct service_case *c = &service_cases[_i];
    struct addon_broker b;
    char err[256] = "";
    int rc = addon_parse_service(c->body, &b, err, sizeof(err));
    ck_assert_int_eq(rc, c->rc);
    if (rc == 0) {
        ck_assert_str_eq(b.host, c->host);
        ck_assert_int_eq(b.port, c->port);
        ck_assert_int_eq(b.ssl, c->ssl);
        ck_assert_str_eq(b.provider, c->provider);
        ck_assert_str_eq(b.username, c->user);
    } else {
        ck_assert_msg(strstr(err, c->error), "'%s' lacks '%s'", err, c->error);
    }
}
END_TEST

static struct config *load_converted(const char *options, const struct addon_broker *b, char *err,
                                     size_t err_size)
{
    json_error_t je;
    json_t *o = json_loads(options, 0, &je);
    ck_assert_msg(o, "test options: %s", je.text);
    char *text = addon_build_config(o, b, "127.0.0.1:8099", "/data", err, err_size);
    json_decref(o);
    if (!text)
        return NULL;
    struct config *cfg = NULL;
    struct diag d;
    diag_init(&d);
    int rc = config_load_text("options.json (converted)", text, strlen(text), &cfg, &d);
    if (rc < 0) {
        snprintf(err, err_size, "%s", d.n ? d.lines[0] : "?");
        diag_free(&d);
        free(text);
        return NULL;
    }
    diag_free(&d);
    free(text);
    return cfg;
}

START_TEST(test_options_with_supervisor_broker)
{
    struct addon_broker b = {
        .host = "core-mosquitto", .port = 1883, .username = "addons", .password = "secret"};
    char err[512] = "";
    // What the Supervisor writes: empty strings for cleared options, device options as a list.
    struct config *cfg = load_converted(
        "{\"log_level\":\"debug\",\"mqtt\":{\"url\":\"\",\"username\":\"\","
        "\"base_topic\":\"e2m\"},\"devices\":[{\"id\":\"roof\",\"name\":\"Roof\","
        "\"model\":\"sunspec/inverter\",\"host\":\"192.168.1.50\",\"port\":1502,\"device\":\"\","
        "\"options\":[\"poll_interval: 7s\",\"quiet_windows: [{every: 1d, start: '23:55', "
        "length: 10m}]\"],\"disable\":[\"l1_l2_voltage\"]},{\"id\":\"bat\","
        "\"model\":\"marstek/venus\",\"type\":\"HMG-50\",\"mac\":\"01:23:45:67:89:AB\"},"
        "{\"id\":\"meter\",\"model\":\"eastron/sdm630\",\"host\":\"10.0.0.9\","
        "\"options\":\"poll_interval: 9s, max_registers: 40\","
        "\"disable\":\"l1_power, l2_power l3_power\"}]}",
        &b, err, sizeof(err));
    ck_assert_msg(cfg, "%s", err);
    ck_assert_str_eq(cfg->mqtt.host, "core-mosquitto");
    ck_assert_int_eq(cfg->mqtt.port, 1883);
    ck_assert(!cfg->mqtt.tls);
    ck_assert_str_eq(cfg->mqtt.username, "addons");
    ck_assert_str_eq(cfg->mqtt.password, "secret");
    ck_assert_str_eq(cfg->mqtt.base_topic, "e2m");
    ck_assert_str_eq(cfg->state_dir, "/data");
    ck_assert_int_eq(cfg->log_level, LOG_LVL_DEBUG);
    ck_assert_int_eq(cfg->http.port, 8099);
    ck_assert_str_eq(cfg->http.address, "127.0.0.1");
    ck_assert_uint_eq(cfg->http.n_allow, 2);
    ck_assert_str_eq(cfg->http.allow[0], "172.30.32.2");
    ck_assert_uint_eq(cfg->n_devices, 3);
    const struct device_config *roof = &cfg->devices[0];
    ck_assert_int_eq(params_ms(&roof->core_options, "poll_interval"), 7000);
    ck_assert_uint_ge(roof->n_windows, 1);
    ck_assert_int_eq(roof->windows[0].length_ms, 600000);
    ck_assert_int_eq(params_int(&roof->settings, "port"), 1502);
    ck_assert_str_eq(params_str(&roof->settings, "host"), "192.168.1.50");
    ck_assert_str_eq(cfg->devices[1].name, "bat");
    const struct device_config *meter = &cfg->devices[2];
    ck_assert_int_eq(params_ms(&meter->core_options, "poll_interval"), 9000);
    ck_assert_int_eq(params_int(&meter->core_options, "max_registers"), 40);
    const struct entity *l2 = model_find(meter->model, "l2_power");
    ck_assert_ptr_nonnull(l2);
    ck_assert(meter->disabled[model_index(meter->model, l2)]);
    ck_assert(!meter->disabled[model_index(meter->model, model_find(meter->model, "power"))]);
    config_free(cfg);
}
END_TEST

START_TEST(test_options_name_their_broker)
{
    char err[512] = "";
    // mqtt.url given: no broker needed; TLS and the user's own credentials.
    struct config *cfg = load_converted(
        "{\"mqtt\":{\"url\":\"mqtts://broker.lan:8884\",\"username\":\"me\",\"password\":\"pw\"},"
        "\"devices\":[]}",
        NULL, err, sizeof(err));
    ck_assert_msg(cfg, "%s", err);
    ck_assert_str_eq(cfg->mqtt.host, "broker.lan");
    ck_assert_int_eq(cfg->mqtt.port, 8884);
    ck_assert(cfg->mqtt.tls);
    ck_assert_str_eq(cfg->mqtt.username, "me");
    config_free(cfg);

    // The user's credentials win over the service's; the service's TLS flag is kept.
    struct addon_broker b = {.host = "h", .port = 8883, .ssl = true, .username = "addons"};
    cfg = load_converted("{\"mqtt\":{\"username\":\"me\",\"password\":\"pw\"}}", &b, err,
                         sizeof(err));
    ck_assert_msg(cfg, "%s", err);
    ck_assert(cfg->mqtt.tls);
    ck_assert_int_eq(cfg->mqtt.port, 8883);
    ck_assert_str_eq(cfg->mqtt.username, "me");
    config_free(cfg);
}
END_TEST

struct bad_case {
    const char *options;
    bool broker;
    const char *error;
};

static const struct bad_case bad_cases[] = {
    {"{\"devices\":[]}", false, "no MQTT broker"},
    {"{\"mqtt\":{\"url\":\"\"}}", false, "no MQTT broker"},
    {"[1,2]", true, "not a JSON object"},
    {"{\"devices\":{}}", true, "devices: expected a list"},
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":[\"just words\"]}]}",
     true, "devices[0].options[0]: expected one 'key: value'"},
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":[\"a: 1, b: 2\"]}]}",
     true, "devices[0].options[0]"},
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":\"poll_interval: 5s, words\"}]}",
     true, "devices[0].options: expected 'key: value' pairs"},
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":7}]}",
     true, "devices[0].options: expected"},
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":[\"poll_interval: 5s}, {x: 1\"]}]}",
     true, "devices[0].options[0]"},
    // Passed through to the configuration, which reports it with its path.
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":[\"poll_intervall: 5s\"]}]}",
     true, "devices[0].options.poll_intervall"},
    // Found by fuzz_addon (corpus/addon/crash-*): an option that closes its mapping and
    // comments out the rest of the line, or ends the document, passed the check alone and
    // broke the converted document around it.
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":\"poll_interval: 5s} #\",\"disable\":\"power\"}]}",
     true, "devices[0].options: expected"},
    {"{\"devices\":[{\"id\":\"a\",\"model\":\"sunspec/inverter\",\"host\":\"h\","
     "\"options\":[\"poll_interval: 5s}\\r...\\r#\"]}]}",
     true, "devices[0].options[0]: expected"},
    // A string holding U+0001 could stand in for the marker of a device's options.
    {"{\"devices\":[{\"id\":\"a\",\"name\":\"\\u0001e2m-options-0\",\"model\":"
     "\"sunspec/inverter\",\"host\":\"h\",\"options\":\"poll_interval: 5s\"}]}",
     true, "U+0001"},
    {"{\"mqtt\":{\"options\":\"\\u0001e2m-options-0\"},\"devices\":[{\"id\":\"a\","
     "\"model\":\"sunspec/inverter\",\"host\":\"h\",\"options\":\"poll_interval: 5s\"}]}",
     true, "U+0001"},
};

START_TEST(test_bad_options)
{
    const struct bad_case *c = &bad_cases[_i];
    struct addon_broker b = {.host = "h", .port = 1883};
    char err[512] = "";
    struct config *cfg = load_converted(c->options, c->broker ? &b : NULL, err, sizeof(err));
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err, c->error), "'%s' lacks '%s'", err, c->error);
}
END_TEST

// ---- size limits ----------------------------------------------------------------------------

// An answer of `len` bytes: a valid service object padded with spaces inside the JSON.
static char *padded_answer(size_t len)
{
    static const char head[] = "{\"result\":\"ok\",\"data\":{\"host\":\"b\",\"port\":1883}";
    ck_assert_uint_gt(len, sizeof(head));
    char *s = malloc(len + 1);
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, ' ', len - sizeof(head));
    s[len - 1] = '}';
    s[len] = '\0';
    return s;
}

// A one-shot HTTP server on loopback: answers the first request with `body`, announcing its
// length or not (then the end of the connection ends the body).
struct one_shot {
    int fd, port;
    const char *body;
    bool with_length;
    pthread_t thread;
};

static void *one_shot_run(void *arg)
{
    struct one_shot *o = arg;
    int c = accept(o->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char req[4096];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        ssize_t n = read(c, req + got, sizeof(req) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    char head[256];
    size_t len = strlen(o->body);
    int hl = o->with_length ? snprintf(head, sizeof(head),
                                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                                       len)
                            : snprintf(head, sizeof(head),
                                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                       "Connection: close\r\n\r\n");
    // The client may hang up early (that is the point of the limit): ignore write errors.
    if (write(c, head, (size_t)hl) == hl) {
        for (size_t off = 0; off < len;) {
            ssize_t n = write(c, o->body + off, len - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    close(c);
    return NULL;
}

static void one_shot_start(struct one_shot *o, const char *body, bool with_length)
{
    o->body = body;
    o->with_length = with_length;
    o->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(o->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(o->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(o->fd, 1), 0);
    socklen_t alen = sizeof(a);
    getsockname(o->fd, (struct sockaddr *)&a, &alen);
    o->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&o->thread, NULL, one_shot_run, o), 0);
}

static void one_shot_stop(struct one_shot *o)
{
    pthread_join(o->thread, NULL);
    close(o->fd);
}

struct reply_case {
    size_t len;
    bool with_length;
    int rc;
};

static const struct reply_case reply_cases[] = {
    {ADDON_MAX_REPLY, true, 0},       {ADDON_MAX_REPLY, false, 0},
    {ADDON_MAX_REPLY + 1, true, -1},  // refused on the announced length
    {ADDON_MAX_REPLY + 1, false, -1}, // refused while reading
    {4 * ADDON_MAX_REPLY, false, -1},
};

START_TEST(test_supervisor_reply_limit)
{
    const struct reply_case *c = &reply_cases[_i];
    char *body = padded_answer(c->len);
    struct one_shot o;
    one_shot_start(&o, body, c->with_length);
    char url[64], err[256] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", o.port);
    struct addon_broker b;
    int rc = addon_query_supervisor(url, "token", &b, err, sizeof(err));
    one_shot_stop(&o);
    free(body);
    ck_assert_msg(rc == c->rc, "%zu bytes: rc %d (%s)", c->len, rc, err);
    if (rc == 0) {
        ck_assert_str_eq(b.host, "b");
    } else {
        char want[64];
        snprintf(want, sizeof(want), "longer than %d bytes", ADDON_MAX_REPLY);
        ck_assert_msg(strstr(err, want), "'%s' lacks '%s'", err, want);
    }
}
END_TEST

static char logged[4096];

static void capture(enum log_level level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof(logged) - n, "%s\n", line);
}

// An options file up to ADDON_MAX_OPTIONS bytes is read; one byte more is refused unread.
START_TEST(test_options_file_limit)
{
    char path[] = "/tmp/e2m-options-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = (size_t)ADDON_MAX_OPTIONS + (size_t)_i;
    static const char head[] = "{\"mqtt\":{\"url\":\"mqtt://127.0.0.1:1883\"},\"devices\":[]";
    char *text = malloc(len);
    memcpy(text, head, sizeof(head) - 1);
    memset(text + sizeof(head) - 1, ' ', len - sizeof(head));
    text[len - 1] = '}';
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    free(text);
    logged[0] = '\0';
    log_set_sink(capture, NULL);
    char *doc = addon_load(path);
    log_set_sink(NULL, NULL);
    unlink(path);
    if (_i == 0) {
        ck_assert_msg(doc, "a file at the limit was refused: %s", logged);
        ck_assert_ptr_nonnull(strstr(doc, "mqtt://127.0.0.1:1883"));
    } else {
        ck_assert_ptr_null(doc);
        char want[64];
        snprintf(want, sizeof(want), "is larger than %d bytes", ADDON_MAX_OPTIONS);
        ck_assert_msg(strstr(logged, want), "the log lacks '%s': %s", want, logged);
    }
    free(doc);
}
END_TEST

// Found by fuzz_addon: the options of one device may hold the text of the next device's
// marker (as a YAML escape); it must not take the next device's options.
START_TEST(test_option_holds_next_marker)
{
    json_t *o =
        json_loads("{\"devices\":[{\"id\":\"a\",\"model\":\"m\",\"options\":"
                   "\"label: \\\"\\\\u0001e2m-options-1\\\"\"},{\"id\":\"b\",\"model\":\"m\","
                   "\"options\":\"poll_interval: 5s\"}]}",
                   0, NULL);
    ck_assert_ptr_nonnull(o);
    struct addon_broker b = {.host = "h", .port = 1883};
    char err[256] = "";
    char *text = addon_build_config(o, &b, "127.0.0.1:8099", "/data", err, sizeof(err));
    json_decref(o);
    ck_assert_msg(text, "%s", err);
    struct arena *a = arena_new();
    struct diag d;
    diag_init(&d);
    struct node *root = NULL;
    ck_assert_int_eq(node_parse(a, "converted", text, strlen(text), &root, &d), 0);
    const struct node *devs = node_get(root, "devices");
    ck_assert_ptr_nonnull(devs);
    ck_assert_uint_eq(devs->n, 2);
    const struct node *label = node_get(node_get(devs->items[0], "options"), "label");
    ck_assert_ptr_nonnull(label);
    ck_assert_str_eq(label->str, "\001e2m-options-1");
    const struct node *poll = node_get(node_get(devs->items[1], "options"), "poll_interval");
    ck_assert_ptr_nonnull(poll);
    ck_assert_str_eq(poll->str, "5s");
    diag_free(&d);
    arena_free(a);
    free(text);
}
END_TEST

// Found by fuzz_addon: JSON leaves DEL, C1 controls, NEL, LS, PS, U+FEFF and U+FFFF raw, and
// YAML refuses them or reads the line breaks as spaces. They reach the configuration intact.
START_TEST(test_strings_survive_conversion)
{
    static const char password[] = "line\xe2\x80\xa8sep\xe2\x80\xa9para\xc2\x85nel\x7f";
    static const char name[] = "c1\xc2\x90"
                               "bom\xef\xbb\xbfnon\xef\xbf\xbf"
                               "char";
    json_t *o = json_pack("{s:{s:s,s:s},s:[{s:s,s:s,s:s,s:s}]}", "mqtt", "username", "me",
                          "password", password, "devices", "id", "meter", "name", name, "model",
                          "eastron/sdm630", "host", "10.0.0.9");
    ck_assert_ptr_nonnull(o);
    struct addon_broker b = {.host = "h", .port = 1883};
    char err[512] = "";
    char *text = addon_build_config(o, &b, "127.0.0.1:8099", "/data", err, sizeof(err));
    json_decref(o);
    ck_assert_msg(text, "%s", err);
    struct config *cfg = NULL;
    struct diag d;
    diag_init(&d);
    int rc = config_load_text("options.json (converted)", text, strlen(text), &cfg, &d);
    ck_assert_msg(rc == 0, "%s", d.n ? d.lines[0] : "?");
    ck_assert_str_eq(cfg->mqtt.password, password);
    ck_assert_uint_eq(cfg->n_devices, 1);
    ck_assert_str_eq(cfg->devices[0].name, name);
    config_free(cfg);
    diag_free(&d);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("addon");
    TCase *tc = tcase_create("addon");
    tcase_add_loop_test(tc, test_service, 0, (int)N(service_cases));
    tcase_add_test(tc, test_options_with_supervisor_broker);
    tcase_add_test(tc, test_options_name_their_broker);
    tcase_add_loop_test(tc, test_bad_options, 0, (int)N(bad_cases));
    tcase_add_loop_test(tc, test_supervisor_reply_limit, 0, (int)N(reply_cases));
    tcase_add_loop_test(tc, test_options_file_limit, 0, 2);
    tcase_add_test(tc, test_option_holds_next_marker);
    tcase_add_test(tc, test_strings_survive_conversion);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
