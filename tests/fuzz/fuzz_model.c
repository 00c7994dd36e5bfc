// SPDX-License-Identifier: MIT
// libFuzzer harness for the entity definition loader (model_load_file on one YAML file).
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/mem.h"
#include "core/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// The file sits where model_load would look for the key "fuzz/model": <dir>/fuzz/model.yaml.
static char base_dir[64], vendor_dir[80], model_path[96];

static void remove_files(void)
{
    unlink(model_path);
    rmdir(vendor_dir);
    rmdir(base_dir);
}

static void init_once(void)
{
    if (model_path[0])
        return;
    snprintf(base_dir, sizeof(base_dir), "/tmp/e2m-fuzz-model-%ld", (long)getpid());
    snprintf(vendor_dir, sizeof(vendor_dir), "%s/fuzz", base_dir);
    snprintf(model_path, sizeof(model_path), "%s/model.yaml", vendor_dir);
    if ((mkdir(base_dir, 0700) < 0 && errno != EEXIST) ||
        (mkdir(vendor_dir, 0700) < 0 && errno != EEXIST)) {
        perror(vendor_dir);
        abort();
    }
    atexit(remove_files);
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            perror(path);
            abort();
        }
        data += n;
        size -= (size_t)n;
    }
    close(fd);
}

// Properties every loaded model has, whatever the file said.
static void check_model(const struct model *m)
{
    if (!m->driver || strcmp(m->key, "fuzz/model") != 0)
        abort();
    for (size_t i = 0; i < m->n_entities; i++) {
        const struct entity *e = &m->entities[i];
        if (!e->id || model_find(m, e->id) != e)
            abort();
        if (e->component == COMP_NUMBER && !(e->min < e->max && e->step > 0))
            abort();
        if (e->component == COMP_SELECT && e->n_map == 0)
            abort();
        if (e->source == SRC_EXPR && !e->expr)
            abort();
        for (size_t k = 0; k < e->n_map; k++)
            if (!e->map[k].label || entity_label(e, (double)e->map[k].raw) == NULL)
                abort();
        // The value transforms take whatever scale, offset and precision the file gave.
        double raw;
        (void)entity_value(e, 12345.0, -2);
        (void)entity_resolution(e, 1);
        if (e->component == COMP_NUMBER)
            (void)entity_raw(e, e->min, 0, &raw);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    write_file(model_path, data, size);

    struct diag d;
    diag_init(&d);
    struct arena *a = arena_new();
    struct model *m = model_load_file(a, model_path, "fuzz/model", &d);
    if ((m != NULL) != (diag_count(&d) == 0))
        abort();
    if (m)
        check_model(m);
    arena_free(a);
    diag_free(&d);
    return 0;
}
