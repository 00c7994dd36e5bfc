// SPDX-License-Identifier: MIT
// GivEnergy dongle codec: envelope framing, transparent inner frames, CRC, encoders, decode CLI.
//
// The wire format (TCP 8899; every multi-byte field big-endian unless noted):
//
//   0  59 59 00 01       marker: transaction id 0x5959 and protocol id 1, never anything else
//   4  u16 length        the bytes after this field (total = 6 + length)
//   6  u8  unit id       1 (0 from the vendor's app; both accepted)
//   7  u8  function id   1 heartbeat, 2 transparent
//   8  10 bytes          the data adapter's ("dongle") serial; ignored in requests
//
//   heartbeat    18: u8 adapter type. The dongle sends one every few minutes; a client
//                answers with the same 19-byte shape, echoing the type.
//   transparent  18: u64 length of the inner frame (libraries call it padding; requests
//                carry 8, and the value is not checked on receipt), then the inner frame at
//                26: u8 device address, u8 function (| 0x80 for an error), body, CRC.
//
// Inner bodies by direction (requests carry no inverter serial, responses always do):
//
//   read request (3, 4, 0x16)   u16 base, u16 count
//   write request (6)           u16 register, u16 value
//   read response               inverter serial (10), u16 base, u16 count, count x u16
//   write response              inverter serial (10), u16 register, u16 value (the echo)
//   error response (fn | 0x80)  inverter serial (10), u16, u16 (base and count or 0; there
//                               is no exception code)
//   null response (fn 0)        zeros; sent unsolicited, carries nothing
//
// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) over the inner frame from the device
// address to the byte before the CRC, sent low byte first.
//
// Choices made here:
// - Resync on the four marker bytes. A marker whose length is below a heartbeat's or above
//   GE_LENGTH_MAX, or whose unit id or function id is not 0/1 or 1/2, is not a frame: its
//   first byte is dropped and the scan goes on.
// - The LAN-configuration broadcast of some dongles (zeros at 18-24, a comma at 25) and
//   function-0 null responses are GE_IGNORED, whatever their length and CRC.
// - With GE_DIR_ANY the direction follows the inner length: 8 bytes is a request (the only
//   request shape), anything else a response.
#include "drivers/givenergy/givenergy_codec.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"

enum {
    BODY_AT = GE_INNER_AT + 2,              // the function-specific body
    RESP_DATA_AT = BODY_AT + GE_SERIAL_LEN, // a response's body after the inverter serial
    REQUEST_INNER = 8,                      // address, function, 2 words, CRC
    RESPONSE_MIN_INNER = 18,                // address, function, serial, 2 words, CRC
};

static const uint8_t MARKER[4] = {0x59, 0x59, 0x00, 0x01};
static const uint8_t DUMMY_ADAPTER[GE_SERIAL_LEN] = {'A', 'B', '1', '2', '3',
                                                     '4', 'G', '5', '6', '7'};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)(v & 0xff);
}

const char *ge_status_name(enum ge_status s)
{
    switch (s) {
    case GE_OK: return "ok";
    case GE_NEED_MORE: return "need more";
    case GE_GARBAGE: return "garbage";
    case GE_BAD_FRAME: return "bad frame";
    case GE_IGNORED: return "ignored";
    case GE_UNSUPPORTED: return "unsupported";
    }
    return "?";
}

const char *ge_fid_name(uint8_t fid)
{
    switch (fid) {
    case GE_FID_HEARTBEAT: return "heartbeat";
    case GE_FID_TRANSPARENT: return "transparent";
    default: return NULL;
    }
}

const char *ge_function_name(uint8_t function)
{
    switch (function) {
    case GE_FN_NULL: return "null";
    case GE_FN_READ_HOLDING: return "read_holding";
    case GE_FN_READ_INPUT: return "read_input";
    case GE_FN_WRITE_SINGLE: return "write_single";
    case GE_FN_READ_METER: return "read_meter_product";
    default: return NULL;
    }
}

uint16_t ge_crc(const uint8_t *data, size_t len)
{
    return crc16_modbus(data, len);
}

// ---- parsing --------------------------------------------------------------------------------

// Where the next marker starts in buf[from..len), or where a partial marker at the very end
// waits for its other bytes; len when there is neither.
static size_t next_marker(const uint8_t *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        size_t n = len - i < sizeof(MARKER) ? len - i : sizeof(MARKER);
        if (memcmp(buf + i, MARKER, n) == 0)
            return i;
    }
    return len;
}

static bool is_read(uint8_t fn)
{
    return fn == GE_FN_READ_HOLDING || fn == GE_FN_READ_INPUT || fn == GE_FN_READ_METER;
}

static enum ge_status parse_request(const uint8_t *buf, size_t inner, struct ge_frame *f)
{
    if (inner != REQUEST_INNER || f->error)
        return GE_BAD_FRAME;
    f->reg = get16(buf + BODY_AT);
    uint16_t second = get16(buf + BODY_AT + 2);
    if (is_read(f->function)) {
        f->has_count = true;
        f->count = second;
    } else if (f->function == GE_FN_WRITE_SINGLE) {
        f->n_values = 1;
        f->values[0] = second;
    } else {
        return GE_UNSUPPORTED;
    }
    return GE_OK;
}

static enum ge_status parse_response(const uint8_t *buf, size_t inner, struct ge_frame *f)
{
    if (inner < RESPONSE_MIN_INNER)
        return GE_BAD_FRAME;
    memcpy(f->inverter, buf + BODY_AT, GE_SERIAL_LEN);
    f->reg = get16(buf + RESP_DATA_AT);
    uint16_t second = get16(buf + RESP_DATA_AT + 2);
    if (f->error) {
        if (inner != RESPONSE_MIN_INNER)
            return GE_BAD_FRAME;
        f->has_count = true;
        f->count = second;
        return ge_function_name(f->function) ? GE_OK : GE_UNSUPPORTED;
    }
    if (is_read(f->function)) {
        size_t n = (inner - RESPONSE_MIN_INNER) / 2;
        if ((inner - RESPONSE_MIN_INNER) % 2 != 0 || second != n || n > GE_MAX_VALUES)
            return GE_BAD_FRAME;
        f->has_count = true;
        f->count = second;
        f->n_values = (uint16_t)n;
        bool zero = true;
        for (size_t i = 0; i < n; i++) {
            f->values[i] = get16(buf + RESP_DATA_AT + 4 + 2 * i);
            zero &= f->values[i] == 0;
        }
        f->all_zero = zero && n > 1;
        return GE_OK;
    }
    if (f->function == GE_FN_WRITE_SINGLE) {
        if (inner != RESPONSE_MIN_INNER)
            return GE_BAD_FRAME;
        f->n_values = 1;
        f->values[0] = second;
        return GE_OK;
    }
    return GE_UNSUPPORTED;
}

static enum ge_status parse_transparent(const uint8_t *buf, enum ge_direction dir,
                                        struct ge_frame *f)
{
    size_t total = f->len;
    if (total >= GE_INNER_AT) {
        static const uint8_t zeros[7];
        if (memcmp(buf + 18, zeros, 7) == 0 && buf[25] == ',') {
            f->lan_config = true;
            return GE_IGNORED;
        }
    }
    if (total < GE_INNER_AT + 4)
        return GE_BAD_FRAME;
    uint64_t il = 0;
    for (size_t i = 0; i < 8; i++)
        il = il << 8 | buf[18 + i];
    f->inner_len = il;
    size_t inner = total - GE_INNER_AT;
    f->address = buf[GE_INNER_AT];
    f->error = (buf[GE_INNER_AT + 1] & 0x80) != 0;
    f->function = buf[GE_INNER_AT + 1] & 0x7f;
    f->crc = (uint16_t)(buf[total - 2] | buf[total - 1] << 8);
    f->crc_calc = ge_crc(buf + GE_INNER_AT, inner - 2);
    f->crc_ok = f->crc == f->crc_calc;
    if (f->function == GE_FN_NULL && !f->error) {
        f->response = true;
        return GE_IGNORED;
    }
    f->response = dir == GE_DIR_RESPONSE || (dir == GE_DIR_ANY && inner != REQUEST_INNER);
    return f->response ? parse_response(buf, inner, f) : parse_request(buf, inner, f);
}

enum ge_status ge_parse(const uint8_t *buf, size_t len, enum ge_direction dir, struct ge_frame *f)
{
    memset(f, 0, sizeof(*f));
    size_t at = next_marker(buf, len, 0);
    if (at > 0) {
        f->len = at; // garbage up to the next marker (or a partial one at the end)
        return GE_GARBAGE;
    }
    if (len < GE_HEADER_LEN + GE_SERIAL_LEN)
        return GE_NEED_MORE;
    size_t length = get16(buf + 4);
    uint8_t unit = buf[6], fid = buf[7];
    if (length + 6 < GE_MIN_FRAME || length > GE_LENGTH_MAX || unit > 1 ||
        (fid != GE_FID_HEARTBEAT && fid != GE_FID_TRANSPARENT)) {
        size_t next = next_marker(buf, len, 1);
        f->len = next;
        return GE_GARBAGE;
    }
    if (len < length + 6)
        return GE_NEED_MORE;
    f->len = length + 6;
    f->unit_id = unit;
    f->fid = fid;
    memcpy(f->adapter, buf + 8, GE_SERIAL_LEN);
    if (fid == GE_FID_HEARTBEAT) {
        if (f->len != GE_MIN_FRAME)
            return GE_BAD_FRAME;
        f->adapter_type = buf[18];
        return GE_OK;
    }
    return parse_transparent(buf, dir, f);
}

// ---- encoders -------------------------------------------------------------------------------

// The envelope around an inner frame of `inner` bytes whose CRC is still to be added.
static int frame_close(uint8_t *out, const uint8_t *adapter, uint64_t inner_len, size_t inner)
{
    size_t total = GE_INNER_AT + inner;
    memcpy(out, MARKER, sizeof(MARKER));
    put16(out + 4, (uint16_t)(total - 6));
    out[6] = 1;
    out[7] = GE_FID_TRANSPARENT;
    memcpy(out + 8, adapter ? adapter : DUMMY_ADAPTER, GE_SERIAL_LEN);
    for (size_t i = 0; i < 8; i++)
        out[18 + i] = (uint8_t)(inner_len >> (56 - 8 * i));
    uint16_t crc = ge_crc(out + GE_INNER_AT, inner - 2);
    out[total - 2] = (uint8_t)(crc & 0xff);
    out[total - 1] = (uint8_t)(crc >> 8);
    return (int)total;
}

static int encode_request(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                          uint8_t function, uint16_t w1, uint16_t w2)
{
    if (cap < GE_REQUEST_LEN)
        return -ENOSPC;
    out[GE_INNER_AT] = address;
    out[GE_INNER_AT + 1] = function;
    put16(out + BODY_AT, w1);
    put16(out + BODY_AT + 2, w2);
    // Requests carry 8 in the inner-length field, as every client sends; 0 silences the
    // inverter.
    return frame_close(out, adapter, REQUEST_INNER, REQUEST_INNER);
}

int ge_encode_read(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                   uint8_t function, uint16_t reg, uint16_t count)
{
    if (!is_read(function) || count == 0 || count > GE_MAX_READ)
        return -EINVAL;
    return encode_request(out, cap, adapter, address, function, reg, count);
}

int ge_encode_write(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address, uint16_t reg,
                    uint16_t value)
{
    return encode_request(out, cap, adapter, address, GE_FN_WRITE_SINGLE, reg, value);
}

int ge_encode_heartbeat(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t type)
{
    if (cap < GE_MIN_FRAME)
        return -ENOSPC;
    memcpy(out, MARKER, sizeof(MARKER));
    put16(out + 4, GE_MIN_FRAME - 6);
    out[6] = 1;
    out[7] = GE_FID_HEARTBEAT;
    memcpy(out + 8, adapter ? adapter : DUMMY_ADAPTER, GE_SERIAL_LEN);
    out[18] = type;
    return GE_MIN_FRAME;
}

static int encode_response(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                           uint8_t function, const uint8_t *inverter, uint16_t w1, uint16_t w2,
                           const uint16_t *values, uint16_t n)
{
    size_t inner = RESPONSE_MIN_INNER + 2u * n;
    if (GE_INNER_AT + inner > GE_FRAME_MAX)
        return -EINVAL;
    if (cap < GE_INNER_AT + inner)
        return -ENOSPC;
    out[GE_INNER_AT] = address;
    out[GE_INNER_AT + 1] = function;
    memcpy(out + BODY_AT, inverter ? inverter : DUMMY_ADAPTER, GE_SERIAL_LEN);
    put16(out + RESP_DATA_AT, w1);
    put16(out + RESP_DATA_AT + 2, w2);
    for (size_t i = 0; i < n; i++)
        put16(out + RESP_DATA_AT + 4 + 2 * i, values[i]);
    return frame_close(out, adapter, inner, inner);
}

int ge_encode_read_response(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                            uint8_t function, const uint8_t *inverter, uint16_t reg,
                            const uint16_t *values, uint16_t n)
{
    if (!is_read(function) || n > GE_MAX_VALUES || (n > 0 && !values))
        return -EINVAL;
    return encode_response(out, cap, adapter, address, function, inverter, reg, n, values, n);
}

int ge_encode_write_response(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                             const uint8_t *inverter, uint16_t reg, uint16_t value)
{
    return encode_response(out, cap, adapter, address, GE_FN_WRITE_SINGLE, inverter, reg, value,
                           NULL, 0);
}

int ge_encode_error(uint8_t *out, size_t cap, const uint8_t *adapter, uint8_t address,
                    uint8_t function, const uint8_t *inverter, uint16_t word1, uint16_t word2)
{
    return encode_response(out, cap, adapter, address, (uint8_t)(function | 0x80), inverter, word1,
                           word2, NULL, 0);
}

// ---- serials and identity -----------------------------------------------------------------

void ge_serial_text(const uint8_t *serial, char *out)
{
    bool printable = true;
    for (size_t i = 0; i < GE_SERIAL_LEN; i++)
        printable &= serial[i] >= 0x20 && serial[i] <= 0x7e;
    if (printable) {
        memcpy(out, serial, GE_SERIAL_LEN);
        out[GE_SERIAL_LEN] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < GE_SERIAL_LEN; i++) {
        out[2 * i] = hex[serial[i] >> 4];
        out[2 * i + 1] = hex[serial[i] & 15];
    }
    out[2 * GE_SERIAL_LEN] = '\0';
}

static const struct {
    const char *name;
    enum ge_family family;
    bool gen3;
} family_names[] = {
    {"hybrid", GE_FAMILY_HYBRID, false},
    {"hybrid_gen3", GE_FAMILY_HYBRID, true},
    {"ac", GE_FAMILY_AC, false},
    {"aio", GE_FAMILY_AIO, false},
};

const char *ge_family_name(enum ge_family family)
{
    switch (family) {
    case GE_FAMILY_HYBRID: return "hybrid";
    case GE_FAMILY_AC: return "AC-coupled";
    case GE_FAMILY_THREE_PHASE: return "three-phase";
    case GE_FAMILY_EMS: return "EMS";
    case GE_FAMILY_GATEWAY: return "Gateway";
    case GE_FAMILY_AIO: return "All-in-One";
    case GE_FAMILY_UNKNOWN: break;
    }
    return "unknown";
}

int ge_family_parse(const char *name, enum ge_family *family, bool *gen3)
{
    for (size_t i = 0; name && i < sizeof(family_names) / sizeof(family_names[0]); i++) {
        if (strcmp(name, family_names[i].name) == 0) {
            *family = family_names[i].family;
            *gen3 = family_names[i].gen3;
            return 0;
        }
    }
    return -EINVAL;
}

void ge_identify(const uint16_t *hr, struct ge_identity *id)
{
    memset(id, 0, sizeof(*id));
    id->dtc = hr[0];
    id->dsp_firmware = hr[19];
    id->arm_firmware = hr[21];
    for (size_t i = 0; i < 5; i++) {
        id->serial[2 * i] = (char)(hr[13 + i] >> 8);
        id->serial[2 * i + 1] = (char)(hr[13 + i] & 0xff);
    }
    for (size_t i = 0; i < GE_SERIAL_LEN; i++)
        if ((unsigned char)id->serial[i] < 0x20 || (unsigned char)id->serial[i] > 0x7e)
            id->serial[i] = '?';
    switch (id->dtc >> 12) {
    case 2: {
        id->family = GE_FAMILY_HYBRID;
        int series = id->arm_firmware / 100;
        id->generation = series == 3 ? 3 : series == 8 || series == 9 ? 2 : 1;
        id->model = id->generation == 3 ? "givenergy/hybrid-gen3" : "givenergy/hybrid";
        break;
    }
    case 3:
        id->family = GE_FAMILY_AC;
        id->model = "givenergy/ac";
        break;
    case 4:
    case 6: id->family = GE_FAMILY_THREE_PHASE; break;
    case 5: id->family = GE_FAMILY_EMS; break;
    case 7: id->family = GE_FAMILY_GATEWAY; break;
    case 8:
        // 81xx is the HV Gen3 hybrid and 83xx Gen4, both with the extended slots of a Gen3;
        // 82xx has the three-phase layout, which no entity file describes yet.
        switch ((id->dtc >> 8) & 0xf) {
        case 1:
        case 3:
            id->family = GE_FAMILY_HYBRID;
            id->generation = 3;
            id->model = "givenergy/hybrid-gen3";
            break;
        case 2: id->family = GE_FAMILY_THREE_PHASE; break;
        default:
            id->family = GE_FAMILY_AIO;
            id->model = "givenergy/aio";
            break;
        }
        break;
    default: break;
    }
}

// ---- decode CLI ---------------------------------------------------------------------------

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static json_t *serial_json(const uint8_t *serial)
{
    char text[2 * GE_SERIAL_LEN + 1];
    ge_serial_text(serial, text);
    return json_string(text);
}

static json_t *frame_json(const struct ge_frame *f)
{
    json_t *root = json_object();
    json_object_set_new(root, "function_id", json_string(ge_fid_name(f->fid)));
    json_object_set_new(root, "unit_id", json_integer(f->unit_id));
    json_object_set_new(root, "adapter_serial", serial_json(f->adapter));
    if (f->fid == GE_FID_HEARTBEAT) {
        json_object_set_new(root, "adapter_type", json_integer(f->adapter_type));
        return root;
    }
    if (f->lan_config) {
        json_object_set_new(root, "ignored", json_string("lan_config_broadcast"));
        return root;
    }
    json_object_set_new(root, "direction", json_string(f->response ? "response" : "request"));
    json_object_set_new(root, "device_address", json_integer(f->address));
    const char *fn = ge_function_name(f->function);
    json_object_set_new(root, "device_function", fn ? json_string(fn) : json_integer(f->function));
    json_object_set_new(root, "error", json_boolean(f->error));
    if (f->function == GE_FN_NULL && !f->error) {
        json_object_set_new(root, "ignored", json_string("null_response"));
        json_object_set_new(root, "crc_ok", json_boolean(f->crc_ok));
        return root;
    }
    if (f->response)
        json_object_set_new(root, "inverter_serial", serial_json(f->inverter));
    json_object_set_new(root, "register", json_integer(f->reg));
    if (f->has_count)
        json_object_set_new(root, "count", json_integer(f->count));
    json_t *values = json_array();
    for (size_t i = 0; i < f->n_values; i++)
        json_array_append_new(values, json_integer(f->values[i]));
    json_object_set_new(root, "values", values);
    if (f->all_zero)
        json_object_set_new(root, "all_zero", json_true());
    json_object_set_new(root, "crc_ok", json_boolean(f->crc_ok));
    if (f->response && !f->error && f->function == GE_FN_READ_HOLDING && f->reg == 0 &&
        f->n_values >= 22) {
        struct ge_identity id;
        ge_identify(f->values, &id);
        char dtc[8];
        snprintf(dtc, sizeof(dtc), "%04x", id.dtc);
        json_object_set_new(root, "device_type_code", json_string(dtc));
        json_object_set_new(root, "family", json_string(ge_family_name(id.family)));
        json_object_set_new(root, "model", id.model ? json_string(id.model) : json_null());
    }
    return root;
}

int givenergy_decode(const char *input, FILE *out, char *err, size_t err_size)
{
    uint8_t buf[GE_FRAME_MAX + 1];
    int n = bytes_frame_arg(input, buf, sizeof(buf), "5959 0001 000d 0101 ...", err, err_size);
    if (n < 0)
        return n;
    size_t len = (size_t)n;
    size_t m = len < sizeof(MARKER) ? len : sizeof(MARKER);
    if (memcmp(buf, MARKER, m) != 0) {
        set_err(err, err_size, "not a frame: it does not start with 59 59 00 01");
        return -EINVAL;
    }
    struct ge_frame f;
    enum ge_status st = ge_parse(buf, len, GE_DIR_ANY, &f);
    switch (st) {
    case GE_OK:
    case GE_IGNORED: break;
    case GE_NEED_MORE:
        if (len < GE_HEADER_LEN + GE_SERIAL_LEN)
            set_err(err, err_size, "truncated: %zu bytes, the header needs %d", len,
                    GE_HEADER_LEN + GE_SERIAL_LEN);
        else
            set_err(err, err_size, "truncated: the length field says %u bytes, got %zu",
                    get16(buf + 4) + 6u, len);
        return -EINVAL;
    case GE_GARBAGE:
        set_err(err, err_size,
                "bad header: length %u (expected %d to %d), unit id %u (0 or 1), function id "
                "%u (1 or 2)",
                get16(buf + 4), GE_MIN_FRAME - 6, GE_LENGTH_MAX, buf[6], buf[7]);
        return -EINVAL;
    case GE_BAD_FRAME:
        set_err(err, err_size, "malformed %s frame: its body does not fit the function",
                ge_fid_name(f.fid) ? ge_fid_name(f.fid) : "?");
        return -EINVAL;
    case GE_UNSUPPORTED:
        set_err(err, err_size, "unknown device function 0x%02x", buf[GE_INNER_AT + 1]);
        return -EINVAL;
    }
    if (f.len != len) {
        set_err(err, err_size, "%zu bytes after the %zu-byte frame (one frame per decode)",
                len - f.len, f.len);
        return -EINVAL;
    }
    json_t *root = frame_json(&f);
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) {
        set_err(err, err_size, "cannot render JSON");
        return -EINVAL;
    }
    fprintf(out, "%s\n", text);
    free(text);
    return 0;
}
