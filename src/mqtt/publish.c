// SPDX-License-Identifier: MIT
// Device state messages.
#include "mqtt/publish.h"

#include <jansson.h>
#include <math.h>
#include <time.h>

#include "core/model.h"
#include "mqtt/discovery.h"

void publish_iso_time(int64_t wall_ms, char *out, size_t out_size)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, out_size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *number(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

char *publish_state_json(const struct device_config *dev, const struct state *st,
                         const struct device_diag *diag)
{
    const struct model *m = dev->model;
    json_t *o = json_object();
    for (size_t i = 0; i < m->n_entities; i++) {
        const struct entity *e = &m->entities[i];
        if (e->internal || dev->disabled[i] || e->component == COMP_BUTTON)
            continue;
        const struct value *v = &st->v[i];
        json_t *j;
        switch (v->kind) {
        case VALUE_NUMBER: j = number(v->num); break;
        case VALUE_TEXT: j = json_string(v->text); break;
        default: j = json_null(); break;
        }
        json_object_set_new(o, e->id, j);
    }
    json_object_set_new(o, DIAG_LINK_STATUS, json_string(diag->link_status));
    if (diag->last_seen_ms) {
        char iso[40];
        publish_iso_time(diag->last_seen_ms, iso, sizeof(iso));
        json_object_set_new(o, DIAG_LAST_SEEN, json_string(iso));
    } else {
        json_object_set_new(o, DIAG_LAST_SEEN, json_null());
    }
    json_object_set_new(o, DIAG_POLL_ERRORS, json_integer((json_int_t)diag->poll_errors));
    // Controls whose state the device cannot report show the last command; their discovery
    // makes this list an attribute ("source": "device" or "last command").
    if (discovery_has_assumable(m)) {
        json_t *assumed = json_array();
        for (size_t i = 0; diag->assumed && i < m->n_entities; i++)
            if (diag->assumed[i] && !m->entities[i].internal && !dev->disabled[i])
                json_array_append_new(assumed, json_string(m->entities[i].id));
        json_object_set_new(o, DIAG_ASSUMED, assumed);
    }
    // 15 significant digits print the rounded values exactly (230.1, not 230.09999999999999).
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(o);
    return text;
}
