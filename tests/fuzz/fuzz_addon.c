// SPDX-License-Identifier: MIT
// libFuzzer harness for the add-on glue: /data/options.json to a configuration, and the
// Supervisor's MQTT service answer.
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/addon.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/mem.h"
#include "core/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init_once(void)
{
    static bool done;
    if (done)
        return;
    setenv("E2M_ENTITIES_DIR", FUZZ_ENTITIES_DIR, 1);
    done = true;
}

// The Supervisor's answer: success fills a usable broker, failure says why.
static bool parse_service(const char *text, struct addon_broker *b)
{
    char err[256] = "";
    int rc = addon_parse_service(text, b, err, sizeof(err));
    if (rc != 0 && (rc != -1 || !err[0]))
        abort();
    if (rc == 0 && (!b->host[0] || b->port < 1 || b->port > 65535))
        abort();
    return rc == 0;
}

static bool is_set(const json_t *v)
{
    return v && !json_is_null(v) && !(json_is_string(v) && !*json_string_value(v));
}

static const struct node *scalar_at(const struct node *map, const char *key)
{
    const struct node *n = node_get(map, key);
    return n && n->kind == NODE_SCALAR ? n : NULL;
}

// Every string member of `in` that the conversion keeps (not empty, not one of `skip`) reads
// back from the document unchanged: a character JSON leaves raw but YAML takes differently
// (a line break, a control) must come through escaped.
static void check_strings(const json_t *in, const struct node *map, const char *const *skip)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        bool skipped = false;
        for (const char *const *s = skip; *s; s++)
            skipped |= strcmp(k, *s) == 0;
        if (skipped || !json_is_string(v) || !*json_string_value(v))
            continue;
        const struct node *n = scalar_at(map, k);
        if (!n || n->len != json_string_length(v) || strcmp(n->str, json_string_value(v)) != 0)
            abort();
    }
}

// The converted document as a document: it parses, the broker is the one the options or the
// Supervisor named, and every device's options are a mapping where the device has them (not
// a marker left in place, nor one that a string of the user's stood in for).
static void check_document(const json_t *options, const struct addon_broker *broker,
                           const char *text)
{
    struct arena *a = arena_new();
    struct diag d;
    diag_init(&d);
    struct node *root = NULL;
    if (node_parse(a, "converted", text, strlen(text), &root, &d) < 0 || !root ||
        root->kind != NODE_MAP)
        abort();
    static const char *const mqtt_skip[] = {"url", NULL};
    static const char *const dev_skip[] = {"options", "disable", NULL}; // converted, not copied
    const json_t *mqtt = json_object_get(options, "mqtt");
    if (json_is_object(mqtt))
        check_strings(mqtt, node_get(root, "mqtt"), mqtt_skip);
    const struct node *url = scalar_at(node_get(root, "mqtt"), "url");
    if (!url)
        abort();
    if (addon_has_broker(options)) {
        const char *want =
            json_string_value(json_object_get(json_object_get(options, "mqtt"), "url"));
        if (strcmp(url->str, want) != 0)
            abort();
    } else if (!broker ||
               strncmp(url->str, broker->ssl ? "mqtts://" : "mqtt://", broker->ssl ? 8 : 7) != 0) {
        abort();
    }
    const struct node *devs = node_get(root, "devices");
    const json_t *in = json_object_get(options, "devices");
    if (!devs || devs->kind != NODE_SEQ || devs->n != json_array_size(in))
        abort();
    for (size_t i = 0; i < devs->n; i++) {
        check_strings(json_array_get(in, i), devs->items[i], dev_skip);
        const json_t *opts = json_object_get(json_array_get(in, i), "options");
        const struct node *o = node_get(devs->items[i], "options");
        if (is_set(opts) ? !o || o->kind != NODE_MAP : o != NULL)
            abort();
    }
    diag_free(&d);
    arena_free(a);
}

// The loader's contract on the converted document, as for a configuration file.
static void check_load(const char *text)
{
    struct diag d;
    diag_init(&d);
    struct config *c = NULL;
    int rc = config_load_text("/data/options.json (converted)", text, strlen(text), &c, &d);
    if ((rc == 0) != (c != NULL) || (rc == 0) != (diag_count(&d) == 0))
        abort();
    config_free(c);
    diag_free(&d);
}

static void build(const json_t *options, const struct addon_broker *broker)
{
    char err[512] = "";
    char *text = addon_build_config(options, broker, "127.0.0.1:8099", "/nonexistent/e2m-fuzz", err,
                                    sizeof(err));
    // NULL always comes with a reason; a document needs a broker from somewhere.
    if (!text != (err[0] != '\0'))
        abort();
    if (!text)
        return;
    if (!json_is_object(options) || (!broker && !addon_has_broker(options)))
        abort();
    check_document(options, broker, text);
    check_load(text);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct addon_broker service;
    bool have_service = parse_service(text, &service);
    free(text);

    // Read as the daemon reads /data/options.json.
    json_error_t je;
    json_t *options = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!options)
        return 0;
    static const struct addon_broker fixed = {
        .host = "core-mosquitto", .port = 1883, .username = "addons", .password = "pw"};
    build(options, NULL);
    build(options, &fixed);
    if (have_service)
        build(options, &service);
    json_decref(options);
    return 0;
}
