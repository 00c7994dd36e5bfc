// SPDX-License-Identifier: MIT
// LuxPower / EG4 dongle codec: LXP framing, translated-data bodies, CRC, encoders, decode CLI.
//
// The wire format (everything little-endian):
//
//   0  a1 1a            prefix
//   2  u16 protocol     1 (client requests), 2 (older dongles), 5 (newer dongles)
//   4  u16 frame length the bytes after offset 6 (total - 6)
//   6  u8  address      always 1
//   7  u8  TCP function c1 heartbeat, c2 translated data, c3 read param, c4 write param
//   8  10 bytes         the dongle's serial
//  18  ...              per TCP function:
//
//   heartbeat      one trailing byte (0x00, or 0x05 on EG4 "DG" dongles); any value is fine
//   read param     u16 param; a reply adds u16 value length and the value
//   write param    u16 param, u16 value length, value
//   translated     u16 data length (total - 20), then the data frame and a CRC over it:
//                  20 u8 address (0 request, 1 reply), 21 u8 device function (| 0x80 for an
//                  exception), 22 inverter serial, 32 u16 start register, 34 body, CRC u16
//
// Translated bodies: a read request has a u16 count; a read reply has the value bytes,
// preceded by their byte count on protocols 2 and 5 (a body of odd length) and without it on
// protocol 1 (even length); write single has the u16 value (the reply echoes what the inverter
// stored); a write-multi request has a u16 count, a byte count and the values, its reply only
// the count; an exception has one code byte. Register i of a block is value bytes 2i, 2i+1.
//
// Choices made here:
// - A frame length below a bare heartbeat's (12) or above LXP_FRAME_MAX is not a frame: the
//   two prefix bytes are dropped and the scan goes on. So is a translated frame whose data
//   length disagrees with its frame length, since one of the two lengths is wrong and the
//   frame length may be the one. A frame whose lengths agree but whose body has no valid shape
//   is dropped whole.
// - Nothing but the body's shape tells a request from a reply: a read body of exactly two
//   bytes from address 0 is a request (its count); anything else is a reply.
// - The address byte at offset 6 and the data-frame address are not checked: a captured
//   exception reply carries address 0.
#include "drivers/luxpower/luxpower_codec.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"

enum {
    PREFIX0 = 0xA1,
    PREFIX1 = 0x1A,
    MIN_FRAME_LENGTH = 2 + LXP_SERIAL_LEN, // address, TCP function, serial: a tailless heartbeat
    DATA_AT = 20,                          // the data frame of translated data
    BODY_AT = 34,                          // the function-specific body
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

const char *lxp_status_name(enum lxp_status s)
{
    switch (s) {
    case LXP_OK: return "ok";
    case LXP_NEED_MORE: return "need more";
    case LXP_GARBAGE: return "garbage";
    case LXP_BAD_FRAME: return "bad frame";
    case LXP_UNSUPPORTED: return "unsupported";
    }
    return "?";
}

const char *lxp_tcp_name(uint8_t tcp_function)
{
    switch (tcp_function) {
    case LXP_TCP_HEARTBEAT: return "heartbeat";
    case LXP_TCP_TRANSLATED: return "translated_data";
    case LXP_TCP_READ_PARAM: return "read_param";
    case LXP_TCP_WRITE_PARAM: return "write_param";
    default: return NULL;
    }
}

const char *lxp_function_name(uint8_t function)
{
    switch (function) {
    case LXP_READ_HOLD: return "read_hold";
    case LXP_READ_INPUT: return "read_input";
    case LXP_WRITE_SINGLE: return "write_single";
    case LXP_WRITE_MULTI: return "write_multi";
    default: return NULL;
    }
}

uint16_t lxp_crc(const uint8_t *data, size_t len)
{
    return crc16_modbus(data, len);
}

// ---- parsing --------------------------------------------------------------------------------

// Where the next prefix starts in buf[from..len), or where a lone first prefix byte at the
// very end waits for its second byte; len when there is neither.
static size_t next_prefix(const uint8_t *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (buf[i] != PREFIX0)
            continue;
        if (i + 1 == len || buf[i + 1] == PREFIX1)
            return i;
    }
    return len;
}

static void values_from(struct lxp_frame *f, const uint8_t *p, size_t bytes)
{
    f->n_values = (uint16_t)(bytes / 2);
    for (size_t i = 0; i < f->n_values; i++)
        f->values[i] = get16(p + 2 * i);
}

// The body of translated data, by shape (see the top of the file).
static enum lxp_status parse_body(struct lxp_frame *f, const uint8_t *body, size_t n)
{
    if (f->exception) {
        if (n != 1)
            return LXP_BAD_FRAME;
        f->exception_code = body[0];
        return LXP_OK;
    }
    switch (f->function) {
    case LXP_READ_HOLD:
    case LXP_READ_INPUT:
        if (n == 2 && f->address == 0) {
            f->request = true;
            f->has_count = true;
            f->count = get16(body);
            return LXP_OK;
        }
        if (n % 2 == 1) {
            if (body[0] != n - 1)
                return LXP_BAD_FRAME;
            f->has_length_byte = true;
            values_from(f, body + 1, n - 1);
        } else {
            values_from(f, body, n);
        }
        return LXP_OK;
    case LXP_WRITE_SINGLE:
        if (n != 2)
            return LXP_BAD_FRAME;
        f->request = f->address == 0;
        values_from(f, body, n);
        return LXP_OK;
    case LXP_WRITE_MULTI:
        if (n < 2)
            return LXP_BAD_FRAME;
        f->has_count = true;
        f->count = get16(body);
        if (n == 2)
            return LXP_OK; // the reply: how many registers were written
        if (body[2] != n - 3 || body[2] != 2u * f->count)
            return LXP_BAD_FRAME;
        f->request = true;
        values_from(f, body + 3, n - 3);
        return LXP_OK;
    default: return LXP_UNSUPPORTED;
    }
}

static enum lxp_status parse_translated(const uint8_t *buf, struct lxp_frame *f)
{
    size_t total = f->len;
    if (total < BODY_AT + 2 || get16(buf + 18) != total - DATA_AT) {
        f->len = 2; // one of the two lengths is wrong: resync after this prefix
        return LXP_GARBAGE;
    }
    f->address = buf[DATA_AT];
    f->exception = (buf[21] & 0x80) != 0;
    f->function = buf[21] & 0x7f;
    memcpy(f->inverter, buf + 22, LXP_SERIAL_LEN);
    f->reg = get16(buf + 32);
    f->crc = get16(buf + total - 2);
    f->crc_calc = lxp_crc(buf + DATA_AT, total - 2 - DATA_AT);
    f->crc_ok = f->crc == f->crc_calc;
    return parse_body(f, buf + BODY_AT, total - 2 - BODY_AT);
}

static enum lxp_status parse_param(const uint8_t *buf, struct lxp_frame *f)
{
    size_t n = f->len - LXP_HEADER_LEN;
    if (n < 2)
        return LXP_BAD_FRAME;
    f->param = get16(buf + LXP_HEADER_LEN);
    if (n == 2)
        return LXP_OK; // a read request
    if (n < 4)
        return LXP_BAD_FRAME;
    uint16_t vlen = get16(buf + LXP_HEADER_LEN + 2);
    if ((size_t)vlen != n - 4)
        return LXP_BAD_FRAME;
    f->has_value = true;
    f->value_len = vlen;
    f->value = buf + LXP_HEADER_LEN + 4;
    return LXP_OK;
}

enum lxp_status lxp_parse(const uint8_t *buf, size_t len, struct lxp_frame *f)
{
    memset(f, 0, sizeof(*f));
    size_t start = next_prefix(buf, len, 0);
    if (start > 0) {
        f->len = start; // everything before the next (possible) prefix
        return LXP_GARBAGE;
    }
    if (len < 6)
        return LXP_NEED_MORE;
    size_t flen = get16(buf + LXP_LENGTH_AT);
    if (flen < MIN_FRAME_LENGTH || flen + 6 > LXP_FRAME_MAX) {
        f->len = 2;
        return LXP_GARBAGE;
    }
    size_t total = flen + 6;
    if (len < total)
        return LXP_NEED_MORE;
    f->len = total;
    f->protocol = get16(buf + 2);
    f->tcp_function = buf[7];
    memcpy(f->datalog, buf + 8, LXP_SERIAL_LEN);
    switch (f->tcp_function) {
    case LXP_TCP_HEARTBEAT:
        if (total > LXP_HEADER_LEN) {
            f->has_tail = true;
            f->tail = buf[LXP_HEADER_LEN];
        }
        return LXP_OK;
    case LXP_TCP_TRANSLATED: return parse_translated(buf, f);
    case LXP_TCP_READ_PARAM:
    case LXP_TCP_WRITE_PARAM: return parse_param(buf, f);
    default: return LXP_UNSUPPORTED;
    }
}

// ---- encoders -------------------------------------------------------------------------------

static void header(uint8_t *out, uint16_t protocol, size_t total, uint8_t tcp_function,
                   const uint8_t *datalog)
{
    out[0] = PREFIX0;
    out[1] = PREFIX1;
    put16(out + 2, protocol);
    put16(out + 4, (uint16_t)(total - 6));
    out[6] = 1;
    out[7] = tcp_function;
    memcpy(out + 8, datalog, LXP_SERIAL_LEN);
}

// Translated data around `body`: header, data length, data frame, CRC.
static int translated(uint8_t *out, size_t cap, uint16_t protocol, const uint8_t *datalog,
                      uint8_t address, uint8_t function, const uint8_t *inverter, uint16_t reg,
                      const uint8_t *body, size_t body_len)
{
    if (!out || !datalog || !inverter)
        return -EINVAL;
    size_t total = BODY_AT + body_len + 2;
    if (total > LXP_FRAME_MAX)
        return -EINVAL;
    if (cap < total)
        return -ENOSPC;
    header(out, protocol, total, LXP_TCP_TRANSLATED, datalog);
    put16(out + 18, (uint16_t)(total - DATA_AT));
    out[DATA_AT] = address;
    out[21] = function;
    memcpy(out + 22, inverter, LXP_SERIAL_LEN);
    put16(out + 32, reg);
    if (body_len)
        memcpy(out + BODY_AT, body, body_len);
    put16(out + total - 2, lxp_crc(out + DATA_AT, total - 2 - DATA_AT));
    return (int)total;
}

int lxp_encode_read(uint8_t *out, size_t cap, const uint8_t *datalog, const uint8_t *inverter,
                    uint8_t function, uint16_t reg, uint16_t count)
{
    if ((function != LXP_READ_HOLD && function != LXP_READ_INPUT) || count == 0 ||
        count > LXP_MAX_READ)
        return -EINVAL;
    uint8_t body[2];
    put16(body, count);
    return translated(out, cap, 1, datalog, 0, function, inverter, reg, body, sizeof(body));
}

int lxp_encode_write_single(uint8_t *out, size_t cap, const uint8_t *datalog,
                            const uint8_t *inverter, uint16_t reg, uint16_t value)
{
    uint8_t body[2];
    put16(body, value);
    return translated(out, cap, 1, datalog, 0, LXP_WRITE_SINGLE, inverter, reg, body, sizeof(body));
}

int lxp_encode_write_multi(uint8_t *out, size_t cap, const uint8_t *datalog,
                           const uint8_t *inverter, uint16_t reg, const uint16_t *values,
                           uint16_t n)
{
    if (!values || n == 0 || n > LXP_MAX_READ)
        return -EINVAL;
    uint8_t body[3 + 2 * LXP_MAX_READ];
    put16(body, n);
    body[2] = (uint8_t)(2 * n);
    for (uint16_t i = 0; i < n; i++)
        put16(body + 3 + 2 * i, values[i]);
    return translated(out, cap, 2, datalog, 0, LXP_WRITE_MULTI, inverter, reg, body,
                      3 + 2 * (size_t)n);
}

int lxp_encode_heartbeat(uint8_t *out, size_t cap, uint16_t protocol, const uint8_t *datalog,
                         uint8_t tail)
{
    if (!out || !datalog)
        return -EINVAL;
    size_t total = LXP_HEADER_LEN + 1;
    if (cap < total)
        return -ENOSPC;
    header(out, protocol, total, LXP_TCP_HEARTBEAT, datalog);
    out[LXP_HEADER_LEN] = tail;
    return (int)total;
}

int lxp_encode_read_param(uint8_t *out, size_t cap, const uint8_t *datalog, uint16_t param)
{
    if (!out || !datalog)
        return -EINVAL;
    size_t total = LXP_HEADER_LEN + 2;
    if (cap < total)
        return -ENOSPC;
    header(out, 2, total, LXP_TCP_READ_PARAM, datalog);
    put16(out + LXP_HEADER_LEN, param);
    return (int)total;
}

int lxp_encode_read_reply(uint8_t *out, size_t cap, uint16_t protocol, const uint8_t *datalog,
                          const uint8_t *inverter, uint8_t function, uint16_t reg,
                          const uint16_t *values, uint16_t n, bool length_byte)
{
    if ((function != LXP_READ_HOLD && function != LXP_READ_INPUT) || (n && !values) ||
        (length_byte && n > LXP_MAX_READ) || n > LXP_MAX_VALUES)
        return -EINVAL;
    uint8_t body[1 + 2 * LXP_MAX_VALUES];
    size_t at = 0;
    if (length_byte)
        body[at++] = (uint8_t)(2 * n);
    for (uint16_t i = 0; i < n; i++, at += 2)
        put16(body + at, values[i]);
    return translated(out, cap, protocol, datalog, 1, function, inverter, reg, body, at);
}

int lxp_encode_write_single_reply(uint8_t *out, size_t cap, uint16_t protocol,
                                  const uint8_t *datalog, const uint8_t *inverter, uint16_t reg,
                                  uint16_t value)
{
    uint8_t body[2];
    put16(body, value);
    return translated(out, cap, protocol, datalog, 1, LXP_WRITE_SINGLE, inverter, reg, body,
                      sizeof(body));
}

int lxp_encode_exception(uint8_t *out, size_t cap, uint16_t protocol, const uint8_t *datalog,
                         const uint8_t *inverter, uint8_t function, uint16_t reg, uint8_t code)
{
    return translated(out, cap, protocol, datalog, 1, (uint8_t)(function | 0x80), inverter, reg,
                      &code, 1);
}

// ---- serials ------------------------------------------------------------------------------

void lxp_serial_text(const uint8_t *serial, char *out)
{
    bool printable = true;
    for (size_t i = 0; i < LXP_SERIAL_LEN; i++)
        printable &= serial[i] >= 0x20 && serial[i] <= 0x7e;
    if (printable) {
        memcpy(out, serial, LXP_SERIAL_LEN);
        out[LXP_SERIAL_LEN] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < LXP_SERIAL_LEN; i++) {
        out[2 * i] = hex[serial[i] >> 4];
        out[2 * i + 1] = hex[serial[i] & 15];
    }
    out[2 * LXP_SERIAL_LEN] = '\0';
}

int lxp_serial_parse(const char *text, uint8_t *serial)
{
    if (!text || strlen(text) != LXP_SERIAL_LEN)
        return -EINVAL;
    for (size_t i = 0; i < LXP_SERIAL_LEN; i++)
        if ((unsigned char)text[i] < 0x21 || (unsigned char)text[i] > 0x7e)
            return -EINVAL;
    memcpy(serial, text, LXP_SERIAL_LEN);
    return 0;
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
    char text[2 * LXP_SERIAL_LEN + 1];
    lxp_serial_text(serial, text);
    return json_string(text);
}

static json_t *frame_json(const struct lxp_frame *f)
{
    json_t *root = json_object();
    json_object_set_new(root, "protocol", json_integer(f->protocol));
    json_object_set_new(root, "tcp_function", json_string(lxp_tcp_name(f->tcp_function)));
    json_object_set_new(root, "datalog", serial_json(f->datalog));
    if (f->tcp_function == LXP_TCP_TRANSLATED) {
        json_object_set_new(root, "device_function", json_string(lxp_function_name(f->function)));
        json_object_set_new(root, "exception",
                            f->exception ? json_integer(f->exception_code) : json_null());
        json_object_set_new(root, "inverter", serial_json(f->inverter));
        json_object_set_new(root, "register", json_integer(f->reg));
        if (f->has_count)
            json_object_set_new(root, "count", json_integer(f->count));
        json_t *values = json_array();
        for (size_t i = 0; i < f->n_values; i++)
            json_array_append_new(values, json_integer(f->values[i]));
        json_object_set_new(root, "values", values);
        json_object_set_new(root, "crc_ok", json_boolean(f->crc_ok));
    } else if (f->tcp_function == LXP_TCP_READ_PARAM || f->tcp_function == LXP_TCP_WRITE_PARAM) {
        json_object_set_new(root, "param", json_integer(f->param));
        if (f->has_value) {
            char *hex = malloc(2 * (size_t)f->value_len + 1);
            if (!hex)
                abort();
            for (size_t i = 0; i < f->value_len; i++)
                snprintf(hex + 2 * i, 3, "%02x", f->value[i]);
            hex[2 * (size_t)f->value_len] = '\0';
            json_object_set_new(root, "value", json_string(hex));
            free(hex);
        } else {
            json_object_set_new(root, "value", json_null());
        }
    }
    return root;
}

int luxpower_decode(const char *input, FILE *out, char *err, size_t err_size)
{
    uint8_t buf[LXP_FRAME_MAX + 1];
    int n = bytes_frame_arg(input, buf, sizeof(buf), "a11a 0200 0d00 01c1 ...", err, err_size);
    if (n < 0)
        return n;
    size_t len = (size_t)n;
    if (buf[0] != PREFIX0 || (len > 1 && buf[1] != PREFIX1)) {
        set_err(err, err_size, "not a frame: it does not start with a1 1a");
        return -EINVAL;
    }
    struct lxp_frame f;
    enum lxp_status st = lxp_parse(buf, len, &f);
    switch (st) {
    case LXP_OK: break;
    case LXP_NEED_MORE:
        if (len < 6)
            set_err(err, err_size, "truncated: %zu bytes, the header needs 6", len);
        else
            set_err(err, err_size, "truncated: the frame length says %u bytes, got %zu",
                    get16(buf + LXP_LENGTH_AT) + 6u, len);
        return -EINVAL;
    case LXP_GARBAGE: {
        unsigned flen = get16(buf + LXP_LENGTH_AT);
        if (flen < MIN_FRAME_LENGTH || flen + 6 > LXP_FRAME_MAX)
            set_err(err, err_size, "bad length: frame length %u is not %d to %d", flen,
                    MIN_FRAME_LENGTH, LXP_FRAME_MAX - 6);
        else
            set_err(err, err_size, "bad length: data length %u does not match frame length %u",
                    len >= 20 ? get16(buf + 18) : 0u, flen);
        return -EINVAL;
    }
    case LXP_BAD_FRAME:
        set_err(err, err_size, "malformed %s frame: its body does not fit the function",
                lxp_tcp_name(f.tcp_function) ? lxp_tcp_name(f.tcp_function) : "?");
        return -EINVAL;
    case LXP_UNSUPPORTED:
        if (!lxp_tcp_name(f.tcp_function))
            set_err(err, err_size, "unknown TCP function 0x%02x", f.tcp_function);
        else
            set_err(err, err_size, "unknown device function 0x%02x", buf[21]);
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
