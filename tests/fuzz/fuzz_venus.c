// SPDX-License-Identifier: MIT
// libFuzzer harness for the Marstek Venus codec: key=value parsing, message kinds, every value
// path with its guards, schedule slots (parse and re-encode), times and weekdays, the clock echo
// and the decode command.
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "drivers/venus/venus_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;
static struct vn_msg msg; // 8 KiB: not on the stack

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

// Paths the driver reads, with what a valid value must satisfy.
static const struct {
    const char *path;
    double lo, hi; // lo > hi: only finite
} paths[] = {
    {"cel_p", 0, 1e6},
    {"cel_c", 0, 100},
    {"tot_i", 0, 1e9},
    {"tot_o", 0, 1e9},
    {"ele_d", 0, 1e9},
    {"grd_m", 0, 1e9},
    {"inc_a", 1, 0},
    {"grd_o", 1, 0},
    {"grd_t", 0, 6},
    {"gct_s", 0, 2},
    {"cel_s", 1, 3},
    {"grd_y", 0, 9},
    {"wor_m", 0, 5},
    {"cts_m", 0, 1},
    {"bac_u", 0, 1},
    {"wif_s", 1, 0},
    {"set_v", 0, 9},
    {"mcp_w", 0, 2500},
    {"mdp_w", 0, VN_MAX_POWER},
    {"ct_t", 0, 5},
    {"phase_t", 0, 4},
    {"dchrg_t", 0, 1},
    {"pv1.power", 0, 1e300},
    {"pv2.connected", 0, 1},
    {"pv_power", 0, 1e300},
    {"pv.today", 0, 1e300},
    {"pv.total", 0, 1e300},
    {"fu.enabled", 0, 1},
    {"ble.advertising", 0, 1},
    {"led", 0, 1},
    {"dod", 30, 88},
    {"par", 0, 255},
    {"b_soc", 0, 100},
    {"b_vol", 1, 0},
    {"b_cur", 1, 0},
    {"b_tp1", 1, 0},
    {"b_vo1", 0, 1e300},
    {"b_vo16", 0, 1e300},
    {"get_power.total", 1, 0},
    {"get_power.output", 1, 0},
    {"ret", 1, 0},
    {"nothing", 1, 0},
    {"pack.count", 0, 255},
    {"pack.mask", 0, 255},
    {"pack.index", 0, 255},
};

static void check_values(const struct vn_msg *m)
{
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        double v = NAN;
        enum vn_result r = vn_value(m, paths[i].path, &v);
        if (r != VN_ABSENT && r != VN_INVALID && r != VN_OK)
            abort();
        if (r != VN_OK)
            continue;
        if (!isfinite(v))
            abort();
        if (paths[i].lo <= paths[i].hi && (v < paths[i].lo || v > paths[i].hi))
            abort();
    }
    double lo, hi, avg, diff;
    int cells = vn_cell_stats(m, &lo, &hi, &avg, &diff);
    if (cells < 0 || cells > 16 || (cells && (lo > hi || diff < 0 || !isfinite(avg))))
        abort();
}

// A slot that parses is one the encoder takes, and its times read back the same.
static void check_slot(const char *value)
{
    struct vn_slot s;
    if (vn_slot_parse(value, &s) != 0)
        return;
    char out[128];
    int n = vn_encode_slot(out, sizeof(out), 3, &s);
    if (n <= 0 || (size_t)n != strlen(out))
        abort();
    const char *bt = strstr(out, ",bt="), *et = strstr(out, ",et=");
    if (!bt || !et)
        abort();
    char t[6];
    int h, m;
    memcpy(t, bt + 4, 5);
    t[5] = '\0';
    if (vn_time_parse(t, false, &h, &m) != 0 || h != s.start_h || m != s.start_m)
        abort();
    memcpy(t, et + 4, 5);
    if (vn_time_parse(t, true, &h, &m) != 0 || h != s.end_h || m != s.end_m)
        abort();
    char days[8];
    unsigned mask;
    vn_weekdays_text(s.weekdays, days);
    if (vn_weekdays_parse(days, &mask) != 0 || mask != s.weekdays)
        abort();
}

// Text commands: whatever parses prints back as the same text.
static void check_text_commands(const char *text)
{
    int h, m;
    for (int end = 0; end <= 1; end++) {
        if (vn_time_parse(text, end, &h, &m) == 0) {
            char back[6];
            vn_time_text(h, m, back);
            if (strcmp(back, text) != 0 || (!end && h > 23))
                abort();
        }
    }
    unsigned mask;
    if (vn_weekdays_parse(text, &mask) == 0) {
        char back[8];
        vn_weekdays_text(mask, back);
        if (mask > 127 || strcmp(back, text) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    const char *nul = memchr(data, '\0', size);
    size_t text_len = nul ? (size_t)((const uint8_t *)nul - data) : size;
    int rc = vn_parse((const char *)data, size, &msg);
    if (rc == -EMSGSIZE) {
        if (text_len <= VN_MAX_PAYLOAD || msg.n)
            abort();
    } else if (rc != 0 || text_len > VN_MAX_PAYLOAD || msg.n > VN_MAX_PAIRS) {
        abort();
    }
    for (size_t i = 0; i < msg.n; i++) {
        // Keys and values live in the message's own buffer, terminated (a bare value's key is
        // the empty string).
        bool key_in_buf = msg.key[i] >= msg.buf && msg.key[i] <= msg.buf + VN_MAX_PAYLOAD;
        if ((!key_in_buf && msg.key[i][0]) || msg.value[i] < msg.buf ||
            msg.value[i] > msg.buf + VN_MAX_PAYLOAD ||
            strnlen(msg.value[i], VN_MAX_PAYLOAD + 1) > VN_MAX_PAYLOAD)
            abort();
        // Each key once: the last value won.
        for (size_t k = 0; k < i; k++)
            if (strcmp(msg.key[k], msg.key[i]) == 0)
                abort();
        check_slot(msg.value[i]);
        check_text_commands(msg.value[i]);
    }
    enum vn_kind kind = vn_classify(&msg);
    if (kind == VN_KIND_RUNTIME && (!vn_get(&msg, "cel_p") || !vn_get(&msg, "wor_m")))
        abort();
    if (kind == VN_KIND_ACK) {
        struct vn_clock c;
        if (!vn_get(&msg, "ret") && vn_clock_echo(&msg, &c) != 0)
            abort();
    }
    check_values(&msg);

    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    check_text_commands(text);
    char err[256] = "";
    rc = venus_decode(text, devnull, err, sizeof(err));
    if (rc != 0 && (rc != -EINVAL || !err[0]))
        abort();
    free(text);
    return 0;
}
