// SPDX-License-Identifier: MIT
// libFuzzer harness for the user configuration loader (YAML and JSON through config_load).
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "core/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char config_path[64];

static void remove_config(void)
{
    unlink(config_path);
}

// Seeds name their models through ${E2M_FUZZ_ENTITIES}, and E2M_ENTITIES_DIR points at the
// same fixtures, so a lookup never depends on what others are editing in the repo's entities/.
static void init_once(void)
{
    if (config_path[0])
        return;
    snprintf(config_path, sizeof(config_path), "/tmp/e2m-fuzz-config-%ld.yaml", (long)getpid());
    setenv("E2M_FUZZ_ENTITIES", FUZZ_ENTITIES_DIR, 1);
    setenv("E2M_ENTITIES_DIR", FUZZ_ENTITIES_DIR, 1);
    atexit(remove_config);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    write_file(config_path, data, size);

    struct diag d;
    diag_init(&d);
    struct config *c = NULL;
    int rc = config_load(config_path, &c, &d);
    // The contract: success leaves no problems behind, failure always names one.
    if ((rc == 0) != (c != NULL) || (rc == 0) != (diag_count(&d) == 0))
        abort();
    // A loaded device always has its model and a unique id.
    for (size_t i = 0; c && i < c->n_devices; i++) {
        const struct device_config *dev = &c->devices[i];
        if (!dev->id || !dev->model || config_find_device(c, dev->id) != dev)
            abort();
    }
    config_free(c);
    diag_free(&d);
    return 0;
}
