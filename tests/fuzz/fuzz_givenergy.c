// SPDX-License-Identifier: MIT
// libFuzzer harness for the GivEnergy dongle codec: the input is bytes from a dongle, parsed as
// a stream (with resync) in both directions the way the driver and the simulator do; every
// frame found must keep the parser's contract and, where it has a canonical form, encode back
// to the same bytes; the identity decoder runs on every holding block; the decode command runs
// on the input as hex.
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "drivers/givenergy/givenergy_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Re-encodes what a frame claims and compares it with its bytes. The unit id, the adapter
// serial of requests (always the dummy when we encode) and the inner-length field are not
// canonical, so they are copied over before comparing.
static void check_reencode(const uint8_t *p, const struct ge_frame *f)
{
    uint8_t out[GE_FRAME_MAX];
    int n = -1;
    if (f->fid == GE_FID_HEARTBEAT) {
        n = ge_encode_heartbeat(out, sizeof(out), f->adapter, f->adapter_type);
    } else if (!f->response && f->function == GE_FN_WRITE_SINGLE) {
        n = ge_encode_write(out, sizeof(out), f->adapter, f->address, f->reg, f->values[0]);
    } else if (!f->response && f->has_count && f->count >= 1 && f->count <= GE_MAX_READ) {
        n = ge_encode_read(out, sizeof(out), f->adapter, f->address, f->function, f->reg, f->count);
    } else if (f->response && f->error) {
        n = ge_encode_error(out, sizeof(out), f->adapter, f->address, f->function, f->inverter,
                            f->reg, f->count);
    } else if (f->response && f->function == GE_FN_WRITE_SINGLE) {
        n = ge_encode_write_response(out, sizeof(out), f->adapter, f->address, f->inverter, f->reg,
                                     f->values[0]);
    } else if (f->response) {
        n = ge_encode_read_response(out, sizeof(out), f->adapter, f->address, f->function,
                                    f->inverter, f->reg, f->values, f->n_values);
    }
    if (n < 0)
        return;
    if ((size_t)n != f->len)
        abort();
    out[6] = p[6];
    if (f->fid == GE_FID_TRANSPARENT)
        memcpy(out + 18, p + 18, 8);
    size_t cmp = f->fid == GE_FID_TRANSPARENT && !f->crc_ok ? f->len - 2 : f->len;
    if (memcmp(out, p, cmp) != 0)
        abort();
}

static void check_frame(const uint8_t *p, enum ge_status st, const struct ge_frame *f)
{
    if (f->len < GE_MIN_FRAME || f->len > GE_FRAME_MAX || (size_t)(p[4] << 8 | p[5]) + 6 != f->len)
        abort();
    if (f->n_values > GE_MAX_VALUES || (f->error && f->n_values))
        abort();
    if (st != GE_OK)
        return;
    check_reencode(p, f);
    if (f->response && !f->error && f->function == GE_FN_READ_HOLDING && f->reg == 0 &&
        f->n_values >= 22) {
        struct ge_identity id;
        ge_identify(f->values, &id);
        if (strlen(id.serial) != GE_SERIAL_LEN)
            abort();
    }
}

static void stream(const uint8_t *data, size_t size, enum ge_direction dir)
{
    // Every byte is consumed exactly once, frames or garbage.
    size_t at = 0;
    while (at < size) {
        struct ge_frame f;
        enum ge_status st = ge_parse(data + at, size - at, dir, &f);
        if (st == GE_NEED_MORE) {
            if (f.len != 0)
                abort();
            break;
        }
        if (f.len == 0 || f.len > size - at)
            abort();
        if (st == GE_OK || st == GE_IGNORED)
            check_frame(data + at, st, &f);
        at += f.len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream(data, size, GE_DIR_RESPONSE);
    stream(data, size, GE_DIR_REQUEST);
    stream(data, size, GE_DIR_ANY);

    // The decode command on the input as hex: one frame or an error, never a crash, and what
    // it prints is one JSON object.
    if (size <= GE_FRAME_MAX + 2) {
        char *hex = xmalloc(2 * size + 1);
        for (size_t i = 0; i < size; i++)
            snprintf(hex + 2 * i, 3, "%02x", data[i]);
        hex[2 * size] = '\0';
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        char err[200] = "";
        int rc = givenergy_decode(hex, out, err, sizeof(err));
        fclose(out);
        if (rc == 0) {
            json_t *j = json_loads(text, 0, NULL);
            if (!json_is_object(j))
                abort();
            json_decref(j);
        } else if (rc != -EINVAL || !err[0] || len != 0) {
            abort();
        }
        free(text);
        free(hex);
    }
    return 0;
}
