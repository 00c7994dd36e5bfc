// SPDX-License-Identifier: MIT
// libFuzzer harness for the LuxPower dongle codec: the input is bytes from a dongle, parsed as a
// stream (with resync) the way the driver does; every frame found must keep the parser's
// contract and, where it has a canonical form, encode back to the same bytes; the decode
// command runs on the input as hex.
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "drivers/luxpower/luxpower_codec.h"

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

// A frame the parser accepted, checked against what it claims.
static void check_frame(const uint8_t *p, const struct lxp_frame *f)
{
    if (f->len < 18 || f->len > LXP_FRAME_MAX || (size_t)(p[4] | p[5] << 8) + 6 != f->len)
        abort();
    if (f->tcp_function != LXP_TCP_TRANSLATED)
        return;
    if (f->n_values > LXP_MAX_VALUES || (f->exception && f->n_values))
        abort();
    // Replies the inverter sends have one encoding: build it again and compare.
    uint8_t out[LXP_FRAME_MAX];
    int n = -1;
    if (f->exception && f->address == 1)
        n = lxp_encode_exception(out, sizeof(out), f->protocol, f->datalog, f->inverter,
                                 f->function, f->reg, f->exception_code);
    else if (!f->exception && !f->request && f->address == 1 &&
             (f->function == LXP_READ_HOLD || f->function == LXP_READ_INPUT))
        n = lxp_encode_read_reply(out, sizeof(out), f->protocol, f->datalog, f->inverter,
                                  f->function, f->reg, f->values, f->n_values, f->has_length_byte);
    else if (!f->exception && f->request && f->function == LXP_WRITE_SINGLE && f->protocol == 1)
        n = lxp_encode_write_single(out, sizeof(out), f->datalog, f->inverter, f->reg,
                                    f->values[0]);
    if (n < 0)
        return;
    if ((size_t)n != f->len)
        abort();
    // The CRC is recomputed, so only a frame whose CRC was right must match to the end; the
    // header's address byte (offset 6, always 1 on the wire) is not checked by the parser.
    size_t cmp = f->crc_ok ? f->len : f->len - 2;
    if (memcmp(out, p, 6) != 0 || memcmp(out + 7, p + 7, cmp - 7) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    // The stream: every byte is consumed exactly once, frames or garbage.
    size_t at = 0;
    while (at < size) {
        struct lxp_frame f;
        enum lxp_status st = lxp_parse(data + at, size - at, &f);
        if (st == LXP_NEED_MORE) {
            if (f.len != 0)
                abort();
            break;
        }
        if (f.len == 0 || f.len > size - at)
            abort();
        if (st == LXP_OK)
            check_frame(data + at, &f);
        at += f.len;
    }

    // The decode command on the input as hex: one frame or an error, never a crash, and what
    // it prints is one JSON object.
    if (size <= LXP_FRAME_MAX + 2) {
        char *hex = xmalloc(2 * size + 1);
        for (size_t i = 0; i < size; i++)
            snprintf(hex + 2 * i, 3, "%02x", data[i]);
        hex[2 * size] = '\0';
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        char err[200] = "";
        int rc = luxpower_decode(hex, out, err, sizeof(err));
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
