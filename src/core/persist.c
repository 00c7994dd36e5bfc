// SPDX-License-Identifier: MIT
// Persistent state file.
#include "core/persist.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define STATE_FILE "energy2mqtt-state.json"
enum { STATE_VERSION = 1 };

struct persist {
    char *dir;
    char path[PATH_MAX];
    // {"version":1,"counters":{"dev":{"entity":[value, wall_ms]}},
    //  "learned":{"dev":{"key":"text"}}}; files from before "learned" lack it.
    json_t *root;
    json_t *counters, *learned; // borrowed from root
    bool dirty;
};

static void fresh(struct persist *p)
{
    json_decref(p->root);
    p->root = json_pack("{s:i,s:{},s:{}}", "version", STATE_VERSION, "counters", "learned");
    p->counters = json_object_get(p->root, "counters");
    p->learned = json_object_get(p->root, "learned");
}

struct persist *persist_open(const char *dir)
{
    struct persist *p = xcalloc(1, sizeof(*p));
    fresh(p);
    if (!dir)
        return p;
    p->dir = xstrdup(dir);
    snprintf(p->path, sizeof(p->path), "%s/%s", dir, STATE_FILE);
    json_error_t err;
    json_t *root = json_load_file(p->path, 0, &err);
    if (!root) {
        if (access(p->path, F_OK) == 0) {
            char aside[PATH_MAX + 16];
            snprintf(aside, sizeof(aside), "%s.corrupt", p->path);
            rename(p->path, aside);
            log_error("state", "%s is unreadable (%s at line %d); kept as %s, starting afresh",
                      p->path, err.text, err.line, aside);
        }
        return p;
    }
    json_t *counters = json_object_get(root, "counters");
    json_t *learned = json_object_get(root, "learned");
    if (!json_is_object(counters) || (learned && !json_is_object(learned)) ||
        json_integer_value(json_object_get(root, "version")) != 1) {
        // Perhaps written by a newer version: keep it rather than overwrite it later.
        char aside[PATH_MAX + 16];
        snprintf(aside, sizeof(aside), "%s.unknown", p->path);
        rename(p->path, aside);
        log_error("state", "%s has an unknown layout; kept as %s, starting afresh", p->path, aside);
        json_decref(root);
        return p;
    }
    if (!learned) {
        // Written before drivers learned anything: the section appears with the next change.
        learned = json_object();
        json_object_set_new(root, "learned", learned);
    }
    json_decref(p->root);
    p->root = root;
    p->counters = counters;
    p->learned = learned;
    return p;
}

void persist_close(struct persist *p)
{
    if (!p)
        return;
    json_decref(p->root);
    free(p->dir);
    free(p);
}

bool persist_get(const struct persist *p, const char *device, const char *entity,
                 struct persist_counter *out)
{
    // [total, wall_ms] (first layout) or [total, wall_ms, offset].
    json_t *e = json_object_get(json_object_get(p->counters, device), entity);
    size_t n = json_array_size(e);
    if (!json_is_array(e) || n < 2 || n > 3 || !json_is_number(json_array_get(e, 0)))
        return false;
    out->total = json_number_value(json_array_get(e, 0));
    out->wall_ms = (int64_t)json_integer_value(json_array_get(e, 1));
    out->offset = n == 3 ? json_number_value(json_array_get(e, 2)) : 0;
    return true;
}

void persist_set(struct persist *p, const char *device, const char *entity,
                 const struct persist_counter *c)
{
    json_t *dev = json_object_get(p->counters, device);
    if (!dev) {
        dev = json_object();
        json_object_set_new(p->counters, device, dev);
    }
    json_t *e = json_object_get(dev, entity);
    if (e && json_number_value(json_array_get(e, 0)) == c->total &&
        json_number_value(json_array_get(e, 2)) == c->offset)
        return;
    json_object_set_new(dev, entity,
                        c->offset
                            ? json_pack("[f,I,f]", c->total, (json_int_t)c->wall_ms, c->offset)
                            : json_pack("[f,I]", c->total, (json_int_t)c->wall_ms));
    p->dirty = true;
}

bool persist_get_text(const struct persist *p, const char *device, const char *key, char *buf,
                      size_t n)
{
    json_t *v = json_object_get(json_object_get(p->learned, device), key);
    if (!json_is_string(v) || n == 0 || json_string_length(v) >= n)
        return false;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return true;
}

bool persist_set_text(struct persist *p, const char *device, const char *key, const char *value)
{
    json_t *dev = json_object_get(p->learned, device);
    json_t *old = json_object_get(dev, key);
    if (!value) {
        if (!old)
            return false;
        json_object_del(dev, key);
        if (json_object_size(dev) == 0)
            json_object_del(p->learned, device);
        p->dirty = true;
        return true;
    }
    if (json_is_string(old) && strcmp(json_string_value(old), value) == 0)
        return false;
    json_t *text = json_string(value);
    if (!text) {
        log_error("state", "%s: learned %s is not UTF-8 text: not kept", device, key);
        return false;
    }
    if (!dev) {
        dev = json_object();
        json_object_set_new(p->learned, device, dev);
    }
    json_object_set_new(dev, key, text);
    p->dirty = true;
    return true;
}

bool persist_dirty(const struct persist *p)
{
    return p->dirty;
}

int persist_flush(struct persist *p)
{
    if (!p->dir)
        p->dirty = false; // nothing to write to: in-memory only
    if (!p->dirty)
        return 0;
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    char *text = json_dumps(p->root, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        off += (size_t)w;
    }
    free(text);
    if (rc < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        goto fail;
    }
    close(fd);
    if (rename(tmp, p->path) < 0)
        goto fail;
    int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); // makes the rename itself durable
        close(dfd);
    }
    p->dirty = false;
    return 0;
fail:;
    int e = errno;
    log_error("state", "cannot write %s: %s", p->path, strerror(e));
    return -e;
}
