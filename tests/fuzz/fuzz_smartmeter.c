// SPDX-License-Identifier: MIT
// libFuzzer harness for the PowerMeter / SmartMeter codec: framing, line, sample and CLI decode.
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "drivers/smartmeter/smartmeter_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

static void close_devnull(void)
{
    fclose(devnull);
}

static void init_once(void)
{
    if (devnull)
        return;
    devnull = fopen("/dev/null", "w");
    if (!devnull) {
        perror("/dev/null");
        abort();
    }
    atexit(close_devnull);
}

static void check_values(const struct sm_values *v)
{
    for (int i = 0; i < SM_VALUE_COUNT; i++)
        if (v->has[i] && !isfinite(v->v[i]))
            abort();
    // 0/1 values are 0 or 1.
    if ((v->has[SM_RELAY] && v->v[SM_RELAY] != 0 && v->v[SM_RELAY] != 1) ||
        (v->has[SM_IN_USE] && v->v[SM_IN_USE] != 0 && v->v[SM_IN_USE] != 1))
        abort();
}

static void check_text(const char *s, size_t size)
{
    if (strnlen(s, size) == size)
        abort(); // not terminated within its array
}

static void check_line(const struct sm_line *l)
{
    if (l->kind < SM_KIND_REPLY || l->kind > SM_KIND_UNKNOWN)
        abort();
    if (l->log_level && (l->kind != SM_KIND_LOG || !strchr("ADIWE", l->log_level)))
        abort();
    if (l->error && !l->has_error)
        abort();
    if (l->device != SM_DEVICE_UNKNOWN && l->kind != SM_KIND_INFO)
        abort();
    check_text(l->cmd, sizeof(l->cmd));
    check_text(l->msg, sizeof(l->msg));
    check_text(l->state, sizeof(l->state));
    check_text(l->name, sizeof(l->name));
    check_text(l->version, sizeof(l->version));
    check_values(&l->values);
}

// Frames the input as a stream; every line must lie inside the bytes it consumed.
static void frame_all(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        const char *line;
        size_t len, used;
        bool prefixed;
        enum sm_frame r = sm_frame_next(data + off, size - off, &line, &len, &prefixed, &used);
        if (r == SM_FRAME_NEED_MORE) {
            // Waiting is right only for an unterminated rest that may still become a line.
            if (used != 0 || size - off > SM_MAX_LINE || memchr(data + off, '\n', size - off))
                abort();
            break;
        }
        if (used == 0 || used > size - off || used > (size_t)SM_MAX_LINE + 1)
            abort();
        if (r == SM_FRAME_LINE) {
            const char *start = (const char *)data + off;
            if (line < start || line + len > start + used || len > SM_MAX_LINE ||
                memchr(line, '\0', len) || data[off + used - 1] != '\n')
                abort();
            struct sm_line l;
            if (sm_line_decode(line, len, &l) != 0)
                abort();
            check_line(&l);
        } else if (r != SM_FRAME_SKIP) {
            abort();
        }
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    frame_all(data, size);

    // The whole input as one line, as a caller that frames on its own would pass it.
    struct sm_line l;
    if (sm_line_decode((const char *)data, size, &l) != 0)
        abort();
    check_line(&l);

    // The whole input as an MQTT payload, for every device and firmware generation.
    for (int device = SM_DEVICE_UNKNOWN; device <= SM_DEVICE_SMARTMETER; device++) {
        for (int major = 0; major <= 2; major++) {
            struct sm_values v;
            int rc = sm_sample_decode((const char *)data, size, (enum sm_device)device, major, &v);
            // Longer than a line is refused unparsed, and only that is.
            if (rc != 0 && rc != -EINVAL && rc != -EMSGSIZE)
                abort();
            if ((rc == -EMSGSIZE) != (size > SM_MAX_LINE))
                abort();
            check_values(&v);
            if (rc != 0)
                for (int i = 0; i < SM_VALUE_COUNT; i++)
                    if (v.has[i])
                        abort();
        }
    }

    // The decode command takes text: everything up to the first NUL.
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[256] = "";
    int rc = smartmeter_decode(text, devnull, err, sizeof(err));
    if ((rc != 0 && (rc != -EINVAL || err[0] == '\0')) || (rc != 0) != (text[0] == '\0'))
        abort();

    // The input as a command name: accepted only when it is letters only, and then exactly.
    char out[64];
    int n = sm_encode_cmd(out, sizeof(out), text);
    if (n >= 0) {
        for (const char *p = text; *p; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
                abort();
        char want[64];
        snprintf(want, sizeof(want), "{\"cmd\":\"%s\"}\n", text);
        if (strcmp(out, want) != 0 || (size_t)n != strlen(want))
            abort();
    } else if (n != -EINVAL && n != -ENOSPC) {
        abort();
    }
    free(text);
    return 0;
}
