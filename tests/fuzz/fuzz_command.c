// SPDX-License-Identifier: MIT
// libFuzzer harness for Home Assistant commands: topic parsing and payload validation.
//
// Input layout: byte 0 picks an entity of the fixture model, the bytes up to the next 0x00
// are appended to "energy2mqtt" as the topic, and the rest is the payload. The whole input
// is also tried as a topic on its own.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "core/mem.h"
#include "core/model.h"
#include "mqtt/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE_TOPIC "energy2mqtt"

// Loaded once and kept for the life of the process (reachable, so not a leak).
static struct arena *model_arena;
static const struct model *model;

static void init_once(void)
{
    if (model)
        return;
    struct diag d;
    diag_init(&d);
    model_arena = arena_new();
    model =
        model_load_file(model_arena, FUZZ_ENTITIES_DIR "/fuzz/writable.yaml", "fuzz/writable", &d);
    if (!model || model->n_entities == 0) {
        diag_print(&d, stderr);
        abort();
    }
    diag_free(&d);
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > COMMAND_MAX_ID)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static void check_topic(const char *topic)
{
    char device[COMMAND_MAX_ID + 1], entity[COMMAND_MAX_ID + 1];
    if (command_parse_topic(BASE_TOPIC, topic, device, entity) != CMD_OK)
        return;
    // An accepted topic yields ids that are safe to use in topics and lookups.
    if (!id_ok(device) || !id_ok(entity))
        abort();
    char again[sizeof(BASE_TOPIC) + 2 * COMMAND_MAX_ID + 8];
    snprintf(again, sizeof(again), "%s/%s/%s/set", BASE_TOPIC, device, entity);
    if (strcmp(again, topic) != 0)
        abort();
}

// What an accepted command promises: nothing outside what the entity allows.
static void check_value(const struct entity *e, const struct command_value *v)
{
    switch (e->component) {
    case COMP_NUMBER:
        if (!isfinite(v->value) || v->value < e->min || v->value > e->max)
            abort();
        break;
    case COMP_SELECT:
        if (!v->label || entity_label(e, v->value) == NULL)
            abort();
        break;
    case COMP_SWITCH:
        if (v->value != (v->on ? e->on_value : e->off_value))
            abort();
        break;
    case COMP_BUTTON:
        if (v->value != e->press)
            abort();
        break;
    default: abort(); // read-only entities never accept a command
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();

    char *whole = xmalloc(size + 1);
    memcpy(whole, data, size);
    whole[size] = '\0';
    check_topic(whole);
    free(whole);

    if (size == 0)
        return 0;
    const struct entity *e = &model->entities[data[0] % model->n_entities];
    const uint8_t *rest = data + 1;
    size_t left = size - 1;
    const uint8_t *nul = memchr(rest, 0, left);
    size_t suffix_len = nul ? (size_t)(nul - rest) : left;
    char *topic = xmalloc(sizeof(BASE_TOPIC) + suffix_len);
    memcpy(topic, BASE_TOPIC, sizeof(BASE_TOPIC) - 1);
    memcpy(topic + sizeof(BASE_TOPIC) - 1, rest, suffix_len);
    topic[sizeof(BASE_TOPIC) - 1 + suffix_len] = '\0';
    check_topic(topic);
    free(topic);

    // Without a separator the payload is empty; it starts just after the 0x00.
    const uint8_t *payload = nul ? nul + 1 : rest + left;
    size_t plen = nul ? left - suffix_len - 1 : 0;
    struct command_value v;
    char why[160] = "";
    enum command_error err = command_validate(e, payload, plen, &v, why, sizeof(why));
    if (err == CMD_OK)
        check_value(e, &v);
    else if (why[0] == '\0' || command_error_name(err)[0] == '?')
        abort();
    return 0;
}
