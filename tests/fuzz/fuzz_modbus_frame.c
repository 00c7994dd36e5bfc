// SPDX-License-Identifier: MIT
// libFuzzer harness for the Modbus frame decoder (`energy2mqtt decode modbus HEX`).
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "drivers/modbus/modbus_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Modbus TCP ADUs are at most 260 bytes and RTU frames 256; the decode hook must take any
// input up to the smaller of the two (what it does with longer ones is its own business).
enum { FRAME_MAX = 256 };

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    char err[200] = "";

    json_t *o = modbus_frame_to_json(data, size, err, sizeof(err));
    bool decoded = o != NULL;
    if (!o && err[0] == '\0')
        abort(); // a refusal always says why
    json_decref(o);

    // The same bytes as the hex text a user pastes: decodes exactly when the bytes did.
    static const char digits[] = "0123456789abcdef";
    char *hex = xmalloc(2 * size + 1);
    for (size_t i = 0; i < size; i++) {
        hex[2 * i] = digits[data[i] >> 4];
        hex[2 * i + 1] = digits[data[i] & 15];
    }
    hex[2 * size] = '\0';
    err[0] = '\0';
    int rc = modbus_frame_decode(hex, devnull, err, sizeof(err));
    if ((size <= FRAME_MAX && (rc == 0) != decoded) || (rc != 0 && err[0] == '\0'))
        abort();
    free(hex);

    // The raw bytes as text exercise the hex parser itself (separators, 0x prefixes, junk).
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    (void)modbus_frame_decode(text, devnull, err, sizeof(err));
    free(text);
    return 0;
}
