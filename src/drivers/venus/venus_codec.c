// SPDX-License-Identifier: MIT
// Marstek Venus payload codec: key=value parsing, message kinds, decoding and command encoding.
//
// What the firmware sends, as far as the community has worked it out (none of it is
// documented by the vendor beyond cd=1..20):
//  - replies are comma-separated key=value pairs; a real device starts them with `cd=1,`, the
//    vendor's sample does not. Values are numbers or text; some carry sub-fields split by `|`.
//  - the network reply writes `key:value` instead (`cd=26,dev_net_info:ip:1.2.3.4,gate:...`),
//    and the clock echo a bare date (`cd=4,2026-5-14 16:55:0`).
//  - a key may come twice (the pack detail's `mos`): the last one counts.
//  - firmware bugs show as impossible values: a negative or sentinel mcp_w (-1, -1000, -2500),
//    dod 0, dchrg_t 255, a counter missing its last digit. Those become "unknown" here (or
//    are left to the core's counter guard), never a number Home Assistant would plot.
#include "drivers/venus/venus_codec.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

// ---- parsing ----------------------------------------------------------------------------

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static bool is_name(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static void add_pair(struct vn_msg *m, const char *key, const char *value)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->key[i], key) == 0) {
            m->value[i] = value; // the last occurrence wins
            return;
        }
    }
    if (m->n == VN_MAX_PAIRS) {
        m->truncated = true;
        return;
    }
    m->key[m->n] = key;
    m->value[m->n] = value;
    m->n++;
}

int vn_parse(const char *payload, size_t len, struct vn_msg *out)
{
    out->n = 0;
    out->truncated = false;
    out->buf[0] = '\0';
    const char *nul = payload ? memchr(payload, '\0', len) : NULL;
    if (nul)
        len = (size_t)(nul - payload);
    if (len > VN_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (len)
        memcpy(out->buf, payload, len);
    out->buf[len] = '\0';

    char *p = out->buf;
    while (p) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        char *seg = p;
        p = comma ? comma + 1 : NULL;
        char *eq = strchr(seg, '=');
        if (eq) {
            *eq = '\0';
            char *key = trim(seg);
            char *value = trim(eq + 1);
            if (*key || *value)
                add_pair(out, key, value);
            continue;
        }
        seg = trim(seg);
        if (!*seg)
            continue;
        static const char net_prefix[] = "dev_net_info:";
        if (strncmp(seg, net_prefix, sizeof(net_prefix) - 1) == 0)
            seg += sizeof(net_prefix) - 1;
        char *colon = strchr(seg, ':');
        if (colon && is_name(seg, (size_t)(colon - seg))) {
            *colon = '\0';
            add_pair(out, trim(seg), trim(colon + 1));
        } else {
            add_pair(out, "", seg); // a bare value: the clock echo's date
        }
    }
    return 0;
}

const char *vn_get(const struct vn_msg *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0)
            return m->value[i];
    return NULL;
}

bool vn_number_text(const char *text, double *out)
{
    if (!text || !*text || strspn(text, "+-0123456789.eE") != strlen(text))
        return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || end == text || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool whole_number(const char *text, long *out)
{
    double v;
    if (!vn_number_text(text, &v) || v != floor(v) || fabs(v) > 1e9)
        return false;
    *out = (long)v;
    return true;
}

static const char *const runtime_keys[] = {
    "cel_p", "cel_c", "tot_i", "tot_o", "ele_d", "ele_m", "grd_d", "grd_m",
    "inc_d", "inc_m", "inc_a", "grd_f", "grd_o", "grd_t", "gct_s", "cel_s",
    "err_t", "err_a", "dev_n", "grd_y", "wor_m", NULL,
};
static const char *const bms_keys[] = {"b_ver", "b_soc", "b_tp1", "b_vo1", NULL};
static const char *const network_keys[] = {"ip", "gate", "ct_connect_ip", NULL};

static bool has_all(const struct vn_msg *m, const char *const *keys)
{
    for (; *keys; keys++)
        if (!vn_get(m, *keys))
            return false;
    return true;
}

enum vn_kind vn_classify(const struct vn_msg *m)
{
    if (has_all(m, runtime_keys))
        return VN_KIND_RUNTIME;
    if (has_all(m, bms_keys))
        return VN_KIND_BMS;
    if (vn_get(m, "get_power"))
        return VN_KIND_CT_POWER;
    if (has_all(m, network_keys))
        return VN_KIND_NETWORK;
    // An acknowledgement is tiny: ret (and cd), or the clock echo's cd=4 and date.
    bool only_ack_keys = m->n > 0;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->key[i], "cd") != 0 && strcmp(m->key[i], "ret") != 0)
            only_ack_keys = false;
    if (only_ack_keys && vn_get(m, "ret"))
        return VN_KIND_ACK;
    struct vn_clock c;
    if (vn_clock_echo(m, &c) == 0)
        return VN_KIND_ACK;
    return VN_KIND_UNKNOWN;
}

const char *vn_kind_name(enum vn_kind k)
{
    switch (k) {
    case VN_KIND_RUNTIME: return "runtime";
    case VN_KIND_BMS: return "bms";
    case VN_KIND_CT_POWER: return "ct_power";
    case VN_KIND_NETWORK: return "network";
    case VN_KIND_ACK: return "ack";
    case VN_KIND_UNKNOWN: break;
    }
    return "unknown";
}

// ---- the key table ----------------------------------------------------------------------

enum vtype {
    T_NUM,       // a number divided by `div`, inside [min, max] when min < max
    T_ENUM,      // a code that must have a label
    T_BOOL,      // 0 or 1
    T_TEXT,      // text, even when it looks like a number (versions, names, addresses)
    T_NEG,       // a magnitude published negated (Wi-Fi signal -> dBm)
    T_CELL,      // a cell voltage in mV; 0 marks an unused cell
    T_SLOT,      // tim_N
    T_PV,        // pvN: power in 0.1 W | connected
    T_PV_ENERGY, // pv: today | ... | total, in 10 Wh
    T_CT,        // get_power: A | B | C | total | output in W
    T_FLAG,      // fu: enabled | ?
    T_BLE,       // ble: bit 2 = advertising
    T_PACK,      // pack: count | presence mask | index | ? (battery packs, newer firmware)
};

struct label {
    int code;
    const char *label;
};

struct keydef {
    const char *key;
    enum vtype type;
    double div;
    double min, max;
    const struct label *labels; // T_ENUM, ended by a NULL label
};

static const struct label working_status[] = {
    {0, "sleep"},  {1, "standby"}, {2, "charging"}, {3, "discharging"},
    {4, "backup"}, {5, "ota"},     {6, "bypass"},   {0, NULL},
};
static const struct label ct_status[] = {
    {0, "not_connected"}, {1, "connected"}, {2, "weak_signal"}, {0, NULL}};
static const struct label battery_status[] = {
    {1, "idle"}, {2, "charging"}, {3, "discharging"}, {0, NULL}};
static const struct label grid_code[] = {
    {0, "auto"}, {1, "en50549"}, {2, "nl"}, {3, "de"}, {4, "at"}, {5, "uk"},
    {6, "es"},   {7, "pl"},      {8, "it"}, {9, "cn"}, {0, NULL},
};
static const struct label working_mode[] = {
    {0, "automatic"}, {1, "manual"}, {2, "trading"}, {5, "ai"}, {0, NULL}};
static const struct label meter_type[] = {
    {0, "none"}, {1, "ct1"}, {2, "ct2"}, {3, "ct3"}, {4, "shelly_pro"}, {5, "p1"}, {0, NULL},
};
static const struct label phase[] = {{0, "unknown"},      {1, "a"}, {2, "b"}, {3, "c"},
                                     {4, "not_detected"}, {0, NULL}};
static const struct label recharge_mode[] = {{0, "single_phase"}, {1, "three_phase"}, {0, NULL}};
static const struct label parallel_mode[] = {
    {0, "off"}, {1, "wiring_check"}, {2, "on"}, {255, "unsupported"}, {0, NULL}};
// set_v: the power version codes (0 = the model's default).
static const struct label power_version[] = {
    {0, "default"}, {1, "800 W"},  {2, "600 W"},  {3, "2200 W"}, {4, "1200 W"}, {5, "1500 W"},
    {6, "2300 W"},  {7, "2000 W"}, {8, "3000 W"}, {9, "3600 W"}, {0, NULL},
};

#define NUM(k, d)                                                                                  \
    {                                                                                              \
        k, T_NUM, d, 0, 0, NULL                                                                    \
    }
#define RANGE(k, d, lo, hi)                                                                        \
    {                                                                                              \
        k, T_NUM, d, lo, hi, NULL                                                                  \
    }
#define ENUM(k, l)                                                                                 \
    {                                                                                              \
        k, T_ENUM, 1, 0, 0, l                                                                      \
    }
#define TYPED(k, t)                                                                                \
    {                                                                                              \
        k, t, 1, 0, 0, NULL                                                                        \
    }

static const struct keydef defs[] = {
    // cd=1 runtime
    RANGE("tot_i", 100, 0, 1e9),
    RANGE("tot_o", 100, 0, 1e9),
    RANGE("ele_d", 100, 0, 1e9),
    RANGE("ele_m", 100, 0, 1e9),
    RANGE("grd_d", 100, 0, 1e9),
    RANGE("grd_m", 100, 0, 1e9),
    NUM("inc_d", 1000),
    NUM("inc_m", 1000),
    NUM("inc_a", 1000),
    NUM("prc_c", 1000),
    NUM("prc_d", 1000),
    NUM("grd_f", 1),
    NUM("grd_o", 1),
    ENUM("grd_t", working_status),
    ENUM("gct_s", ct_status),
    ENUM("cel_s", battery_status),
    RANGE("cel_p", 100, 0, 1e6),
    RANGE("cel_c", 1, 0, 100),
    NUM("err_t", 1),
    NUM("err_a", 1),
    TYPED("dev_n", T_TEXT),
    ENUM("grd_y", grid_code),
    ENUM("wor_m", working_mode),
    TYPED("cts_m", T_BOOL),
    TYPED("bac_u", T_BOOL),
    TYPED("wif_s", T_NEG),
    ENUM("set_v", power_version),
    RANGE("mcp_w", 1, 0, 2500),
    RANGE("mdp_w", 1, 0, VN_MAX_POWER),
    ENUM("ct_t", meter_type),
    ENUM("phase_t", phase),
    ENUM("dchrg_t", recharge_mode),
    TYPED("bms_v", T_TEXT),
    TYPED("fc_v", T_TEXT),
    TYPED("wifi_n", T_TEXT),
    NUM("shelly_p", 1),
    // newer firmware (Venus A/D, E 3.0)
    TYPED("pv1", T_PV),
    TYPED("pv2", T_PV),
    TYPED("pv3", T_PV),
    TYPED("pv4", T_PV),
    TYPED("pv", T_PV_ENERGY),
    TYPED("fu", T_FLAG),
    TYPED("ble", T_BLE),
    TYPED("led", T_BOOL),
    TYPED("api", T_BOOL),
    NUM("port", 1),
    RANGE("dod", 1, 30, 88),
    NUM("bp", 1),
    NUM("rp", 1),
    NUM("gp", 1),
    ENUM("par", parallel_mode),
    TYPED("peak_status", T_BOOL),
    NUM("peak_power", 1),
    TYPED("pack", T_PACK),
    TYPED("inv_v", T_TEXT),
    TYPED("mppt", T_TEXT),
    // cd=14 BMS
    TYPED("b_ver", T_TEXT),
    RANGE("b_soc", 1, 0, 100),
    RANGE("b_soh", 1, 0, 100),
    NUM("b_cap", 1),
    NUM("b_vol", 100),
    NUM("b_chv", 10),
    NUM("b_cur", 10),
    NUM("b_tem", 1),
    NUM("b_tp1", 1),
    NUM("b_tp2", 1),
    NUM("b_tp3", 1),
    NUM("b_tp4", 1),
    NUM("b_mot", 1),
    RANGE("b_cpc", 1, 0, 1e9),
    NUM("b_err", 1),
    NUM("b_war", 1),
    // cd=19, cd=26, acknowledgements
    TYPED("get_power", T_CT),
    TYPED("ip", T_TEXT),
    TYPED("gate", T_TEXT),
    TYPED("mask", T_TEXT),
    TYPED("dns", T_TEXT),
    TYPED("ct_connect_ip", T_TEXT),
    TYPED("wifi_v", T_TEXT),
    NUM("ret", 1),
    NUM("cd", 1),
};

static const struct keydef slot_def = TYPED("tim_", T_SLOT);
static const struct keydef cell_def = TYPED("b_vo", T_CELL);

// The definition of `key`, or NULL. tim_0..tim_9 and b_vo1..b_vo16 share one each.
static const struct keydef *find_def(const char *key)
{
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
        if (strcmp(defs[i].key, key) == 0)
            return &defs[i];
    if (strncmp(key, "tim_", 4) == 0 && key[4] >= '0' && key[4] <= '9' && !key[5])
        return &slot_def;
    if (strncmp(key, "b_vo", 4) == 0) {
        const char *d = key + 4;
        int n = 0;
        if (*d >= '1' && *d <= '9') {
            n = *d++ - '0';
            if (*d >= '0' && *d <= '9')
                n = n * 10 + (*d++ - '0');
        }
        if (!*d && n >= 1 && n <= 16)
            return &cell_def;
    }
    return NULL;
}

static const char *label_of(const struct label *l, long code)
{
    for (; l->label; l++)
        if (l->code == code)
            return l->label;
    return NULL;
}

// Sub-field `index` of a '|' list as a number. false when missing or not a number.
static bool subfield(const char *value, unsigned index, double *out)
{
    const char *p = value;
    for (unsigned i = 0; i < index; i++) {
        p = strchr(p, '|');
        if (!p)
            return false;
        p++;
    }
    char buf[48];
    size_t n = strcspn(p, "|");
    if (n >= sizeof(buf))
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return vn_number_text(trim(buf), out);
}

static unsigned subfield_count(const char *value)
{
    unsigned n = 1;
    for (const char *p = value; *p; p++)
        n += *p == '|';
    return n;
}

// A plain (not sub-field) value through its definition.
static enum vn_result plain_value(const struct keydef *d, const char *text, double *out)
{
    double v;
    if (!vn_number_text(text, &v))
        return VN_INVALID;
    switch (d->type) {
    case T_NUM:
        v /= d->div;
        if (d->min < d->max && (v < d->min || v > d->max))
            return VN_INVALID;
        *out = v;
        return VN_OK;
    case T_ENUM:
        if (v != floor(v) || fabs(v) > 1e6 || !label_of(d->labels, (long)v))
            return VN_INVALID;
        *out = v;
        return VN_OK;
    case T_BOOL:
        if (v != 0 && v != 1)
            return VN_INVALID;
        *out = v;
        return VN_OK;
    case T_NEG: *out = v == 0 ? 0 : -v; return VN_OK;
    case T_CELL:
        if (v <= 0)
            return VN_INVALID; // an unused cell
        *out = v;
        return VN_OK;
    case T_BLE:
        if (v != floor(v) || v < 0 || v > 255)
            return VN_INVALID;
        *out = ((long)v & 4) != 0;
        return VN_OK;
    default: return VN_INVALID;
    }
}

static enum vn_result sub_value(const struct keydef *d, const char *text, const char *sub,
                                double *out)
{
    double v;
    switch (d->type) {
    case T_PV:
        if (strcmp(sub, "power") == 0) {
            if (!subfield(text, 0, &v) || v < 0)
                return VN_INVALID;
            *out = v / 10;
            return VN_OK;
        }
        if (strcmp(sub, "connected") == 0) {
            if (!subfield(text, 1, &v) || (v != 0 && v != 1))
                return VN_INVALID;
            *out = v;
            return VN_OK;
        }
        return VN_ABSENT;
    case T_PV_ENERGY: {
        unsigned idx;
        if (strcmp(sub, "today") == 0)
            idx = 0;
        else if (strcmp(sub, "total") == 0)
            idx = subfield_count(text) - 1;
        else
            return VN_ABSENT;
        if (!subfield(text, idx, &v) || v < 0)
            return VN_INVALID;
        *out = v / 100; // 10 Wh units -> kWh
        return VN_OK;
    }
    case T_CT: {
        static const char *const names[] = {"a", "b", "c", "total", "output", NULL};
        for (unsigned i = 0; names[i]; i++) {
            if (strcmp(sub, names[i]) == 0) {
                if (!subfield(text, i, &v))
                    return VN_INVALID;
                *out = v;
                return VN_OK;
            }
        }
        return VN_ABSENT;
    }
    case T_FLAG:
        if (strcmp(sub, "enabled") != 0)
            return VN_ABSENT;
        if (!subfield(text, 0, &v))
            return VN_INVALID;
        *out = v == 1;
        return VN_OK;
    case T_BLE:
        if (strcmp(sub, "advertising") != 0)
            return VN_ABSENT;
        return plain_value(d, text, out);
    case T_PACK: {
        static const char *const names[] = {"count", "mask", "index", NULL};
        for (unsigned i = 0; names[i]; i++) {
            if (strcmp(sub, names[i]) == 0) {
                if (!subfield(text, i, &v) || v < 0 || v > 255 || v != floor(v))
                    return VN_INVALID;
                *out = v;
                return VN_OK;
            }
        }
        return VN_ABSENT;
    }
    default: return VN_ABSENT;
    }
}

enum vn_result vn_value(const struct vn_msg *m, const char *path, double *out)
{
    if (strcmp(path, "pv_power") == 0) {
        static const char *const pvs[] = {"pv1.power", "pv2.power", "pv3.power", "pv4.power"};
        double sum = 0;
        bool any = false, bad = false;
        for (size_t i = 0; i < 4; i++) {
            double v;
            enum vn_result r = vn_value(m, pvs[i], &v);
            if (r == VN_OK) {
                sum += v;
                any = true;
            } else if (r == VN_INVALID) {
                bad = true;
            }
        }
        if (bad)
            return VN_INVALID;
        if (!any)
            return VN_ABSENT;
        *out = sum;
        return VN_OK;
    }
    char key[32];
    const char *dot = strchr(path, '.');
    size_t klen = dot ? (size_t)(dot - path) : strlen(path);
    if (klen >= sizeof(key))
        return VN_ABSENT;
    memcpy(key, path, klen);
    key[klen] = '\0';
    const char *text = vn_get(m, key);
    const struct keydef *d = find_def(key);
    if (!text || !d)
        return VN_ABSENT;
    if (dot)
        return sub_value(d, text, dot + 1, out);
    if (d->type == T_TEXT || d->type == T_SLOT || d->type == T_PV || d->type == T_PV_ENERGY ||
        d->type == T_CT || d->type == T_FLAG || d->type == T_PACK)
        return VN_ABSENT; // not a plain number
    return plain_value(d, text, out);
}

int vn_power_version_watts(int code)
{
    static const int watts[] = {0, 800, 600, 2200, 1200, 1500, 2300, 2000, 3000, 3600};
    return code >= 0 && code < 10 ? watts[code] : -1;
}

double vn_temperature_scale(const char *type)
{
    // The base type is the part before the model suffix: VNSA-1, VNSD2-0, ...
    if (type && (strncmp(type, "VNSA", 4) == 0 || strncmp(type, "VNSD", 4) == 0 ||
                 strncmp(type, "vnsa", 4) == 0 || strncmp(type, "vnsd", 4) == 0))
        return 0.1;
    return 1;
}

int vn_cell_stats(const struct vn_msg *m, double *min, double *max, double *avg, double *diff)
{
    int n = 0;
    double sum = 0, lo = 0, hi = 0;
    for (int i = 1; i <= 16; i++) {
        char key[8];
        snprintf(key, sizeof(key), "b_vo%d", i);
        double mv;
        if (vn_value(m, key, &mv) != VN_OK)
            continue;
        double v = mv / 1000;
        if (!n || v < lo)
            lo = v;
        if (!n || v > hi)
            hi = v;
        sum += mv;
        n++;
    }
    if (!n)
        return 0;
    *min = lo;
    *max = hi;
    *avg = round(sum / n) / 1000; // the mean in whole mV
    *diff = round((hi - lo) * 1000) / 1000;
    return n;
}

// ---- schedule slots ---------------------------------------------------------------------

int vn_slot_parse(const char *value, struct vn_slot *out)
{
    *out = (struct vn_slot){0, 0, 0, 0, 127, 0, false};
    if (!value)
        return -EINVAL;
    long f[7] = {0, 0, 0, 0, 127, 0, 0};
    unsigned count = *value ? subfield_count(value) : 0;
    if (count > 7)
        return -EINVAL;
    const char *p = value;
    for (unsigned i = 0; i < count; i++) {
        char buf[24];
        size_t n = strcspn(p, "|");
        if (n >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (!whole_number(trim(buf), &f[i]))
            return -EINVAL;
        p += n + (p[n] == '|');
    }
    bool start_ok = f[0] >= 0 && f[0] <= 23 && f[1] >= 0 && f[1] <= 59;
    bool end_ok = f[2] >= 0 && f[3] >= 0 && f[3] <= 59 && (f[2] <= 23 || (f[2] == 24 && !f[3]));
    if (!start_ok || !end_ok || f[4] < 0 || f[4] > 127 || labs(f[5]) > VN_MAX_POWER)
        return -EINVAL;
    *out = (struct vn_slot){(int)f[0],      (int)f[1], (int)f[2], (int)f[3],
                            (unsigned)f[4], (int)f[5], f[6] == 1};
    return 0;
}

void vn_time_text(int h, int m, char out[6])
{
    if (h < 0 || h > 99 || m < 0 || m > 99) {
        out[0] = '\0';
        return;
    }
    out[0] = (char)('0' + h / 10);
    out[1] = (char)('0' + h % 10);
    out[2] = ':';
    out[3] = (char)('0' + m / 10);
    out[4] = (char)('0' + m % 10);
    out[5] = '\0';
}

int vn_time_parse(const char *t, bool end, int *h, int *m)
{
    if (!t || strlen(t) != 5 || t[2] != ':')
        return -EINVAL;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (t[i] < '0' || t[i] > '9'))
            return -EINVAL;
    int hh = (t[0] - '0') * 10 + (t[1] - '0'), mm = (t[3] - '0') * 10 + (t[4] - '0');
    if (mm > 59 || hh > 24 || (hh == 24 && (!end || mm != 0)))
        return -EINVAL;
    *h = hh;
    *m = mm;
    return 0;
}

void vn_weekdays_text(unsigned mask, char out[8])
{
    size_t n = 0;
    for (int d = 0; d < 7; d++)
        if (mask & (1u << d))
            out[n++] = (char)('0' + d);
    out[n] = '\0';
}

int vn_weekdays_parse(const char *text, unsigned *mask)
{
    if (!text)
        return -EINVAL;
    unsigned m = 0;
    int last = -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '6' || *p - '0' <= last)
            return -EINVAL; // digits 0..6, ascending, each once
        last = *p - '0';
        m |= 1u << last;
    }
    *mask = m;
    return 0;
}

// ---- the clock --------------------------------------------------------------------------

int vn_clock_echo(const struct vn_msg *m, struct vn_clock *out)
{
    const char *cd = vn_get(m, "cd");
    const char *date = vn_get(m, "");
    if (!cd || strcmp(cd, "4") != 0 || !date)
        return -ENOENT;
    int y, mo, d, h, mi, s;
    char tail;
    if (sscanf(date, "%4d-%2d-%2d %2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &tail) != 6)
        return -EINVAL;
    if (y < 2000 || y > 2199 || mo < 0 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || s < 0 || s > 60)
        return -EINVAL;
    *out = (struct vn_clock){y, mo, d, h, mi, s};
    return 0;
}

// ---- commands ---------------------------------------------------------------------------

static int emit(size_t n, int len)
{
    if (len < 0)
        return -EINVAL;
    if ((size_t)len >= n)
        return -ENOSPC;
    return len;
}

int vn_encode_read(char *out, size_t n, int cd)
{
    if (cd < 1 || cd > 99)
        return -EINVAL;
    return emit(n, snprintf(out, n, "cd=%d", cd));
}

int vn_encode_working_mode(char *out, size_t n, int mode)
{
    if (mode == 5)
        return emit(n, snprintf(out, n, "cd=2,md=5,nl=1")); // AI needs nl=1
    if (mode < 0 || mode > 2)
        return -EINVAL;
    return emit(n, snprintf(out, n, "cd=2,md=%d", mode));
}

int vn_encode_slot(char *out, size_t n, int index, const struct vn_slot *s)
{
    bool start_ok = s->start_h >= 0 && s->start_h <= 23 && s->start_m >= 0 && s->start_m <= 59;
    bool end_ok = s->end_h >= 0 && s->end_m >= 0 && s->end_m <= 59 &&
                  (s->end_h <= 23 || (s->end_h == 24 && s->end_m == 0));
    if (index < 0 || index >= VN_SLOTS || !start_ok || !end_ok || s->weekdays > 127 ||
        abs(s->power) > VN_MAX_POWER)
        return -EINVAL;
    // The firmware reads bt/et by position: always two digits each (2:43 would become 02:03).
    char bt[6], et[6];
    vn_time_text(s->start_h, s->start_m, bt);
    vn_time_text(s->end_h, s->end_m, et);
    return emit(n, snprintf(out, n, "cd=3,md=1,nm=%d,bt=%s,et=%s,wk=%u,vv=%d,as=%d", index, bt, et,
                            s->weekdays, s->power, s->enabled ? 1 : 0));
}

int vn_encode_clock(char *out, size_t n, const struct vn_clock *c, int month_base)
{
    if ((month_base != 0 && month_base != 1) || c->year < 2000 || c->year > 2199 || c->month < 1 ||
        c->month > 12 || c->day < 1 || c->day > 31 || c->hour < 0 || c->hour > 23 ||
        c->minute < 0 || c->minute > 59)
        return -EINVAL;
    return emit(n, snprintf(out, n, "cd=4,yy=%d,mm=%d,rr=%d,hh=%d,mn=%d", c->year,
                            c->month - 1 + month_base, c->day, c->hour, c->minute));
}

int vn_encode_backup(char *out, size_t n, bool on)
{
    return emit(n, snprintf(out, n, "cd=11,bc=%d", on ? 1 : 0));
}

int vn_encode_discharge_power(char *out, size_t n, int watts)
{
    if (watts < 100 || watts > VN_MAX_POWER)
        return -EINVAL;
    return emit(n, snprintf(out, n, "cd=15,vs=%d", watts));
}

int vn_encode_charge_power(char *out, size_t n, int watts)
{
    if (watts < 0 || watts > 2500)
        return -EINVAL;
    return emit(n, snprintf(out, n, "cd=16,cp=%d", watts));
}

// ---- the decode command -----------------------------------------------------------------

static json_t *number_json(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *guarded(enum vn_result r, double v)
{
    return r == VN_OK ? number_json(v) : json_null();
}

static json_t *slot_json(const char *text)
{
    struct vn_slot s;
    if (vn_slot_parse(text, &s) < 0)
        return json_null();
    char bt[6], et[6], wk[8];
    vn_time_text(s.start_h, s.start_m, bt);
    vn_time_text(s.end_h, s.end_m, et);
    vn_weekdays_text(s.weekdays, wk);
    return json_pack("{s:s,s:s,s:s,s:i,s:b}", "start", bt, "end", et, "weekdays", wk, "power",
                     s.power, "enabled", s.enabled);
}

static json_t *sub_json(const struct vn_msg *m, const char *key, const char *const *subs)
{
    json_t *o = json_object();
    for (; *subs; subs++) {
        char path[48];
        snprintf(path, sizeof(path), "%s.%s", key, *subs);
        double v;
        enum vn_result r = vn_value(m, path, &v);
        json_object_set_new(o, *subs, guarded(r, v));
    }
    return o;
}

static json_t *key_json(const struct vn_msg *m, const char *key, const char *text)
{
    static const char *const pv_subs[] = {"power", "connected", NULL};
    static const char *const energy_subs[] = {"today", "total", NULL};
    static const char *const ct_subs[] = {"a", "b", "c", "total", "output", NULL};
    static const char *const pack_subs[] = {"count", "mask", "index", NULL};
    const struct keydef *d = find_def(key);
    double v;
    if (!d) {
        // Keys nobody has explained yet stay as they came: a number, or the text.
        if (vn_number_text(text, &v))
            return number_json(v);
        return json_string(text);
    }
    switch (d->type) {
    case T_TEXT: return json_string(text);
    case T_SLOT: return slot_json(text);
    case T_PV: {
        json_t *o = sub_json(m, key, pv_subs);
        json_t *c = json_object_get(o, "connected");
        if (json_is_integer(c))
            json_object_set_new(o, "connected", json_boolean(json_integer_value(c)));
        return o;
    }
    case T_PV_ENERGY: return sub_json(m, key, energy_subs);
    case T_CT: return sub_json(m, key, ct_subs);
    case T_PACK: return sub_json(m, key, pack_subs);
    case T_FLAG:
    case T_BLE:
        if (vn_value(m, d->type == T_FLAG ? "fu.enabled" : "ble.advertising", &v) != VN_OK)
            return json_null();
        return json_boolean(v != 0);
    case T_ENUM:
        if (plain_value(d, text, &v) != VN_OK)
            return json_null();
        return json_string(label_of(d->labels, (long)v));
    case T_BOOL:
        if (plain_value(d, text, &v) != VN_OK)
            return json_null();
        return json_boolean(v != 0);
    default: {
        enum vn_result r = plain_value(d, text, &v);
        return guarded(r, v);
    }
    }
}

int venus_decode(const char *input, FILE *out, char *err, size_t err_size)
{
    size_t len = input ? strlen(input) : 0;
    struct vn_msg *m = xmalloc(sizeof(*m));
    if (len == 0 || vn_parse(input, len, m) < 0 || m->n == 0) {
        free(m);
        if (err && err_size)
            snprintf(err, err_size,
                     len > VN_MAX_PAYLOAD
                         ? "the payload is longer than %d bytes"
                         : "expected a payload from hame_energy/<type>/device/<mac>/ctrl, "
                           "such as 'cd=1,cel_p=120,...' (at most %d bytes)",
                     VN_MAX_PAYLOAD);
        return -EINVAL;
    }
    json_t *fields = json_object();
    for (size_t i = 0; i < m->n; i++) {
        const char *key = m->key[i];
        if (!*key) {
            struct vn_clock c;
            if (vn_clock_echo(m, &c) == 0) {
                char t[32];
                snprintf(t, sizeof(t), "%04d-%02d-%02d %02d:%02d:%02d", c.year, c.month, c.day,
                         c.hour, c.minute, c.second);
                json_object_set_new(fields, "clock", json_string(t));
            } else {
                json_object_set_new(fields, "value", json_string(m->value[i]));
            }
            continue;
        }
        json_object_set_new(fields, key, key_json(m, key, m->value[i]));
    }
    json_t *o = json_pack("{s:s,s:o}", "kind", vn_kind_name(vn_classify(m)), "fields", fields);
    if (m->truncated)
        json_object_set_new(o, "truncated", json_true());
    json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', out);
    json_decref(o);
    free(m);
    return 0;
}
