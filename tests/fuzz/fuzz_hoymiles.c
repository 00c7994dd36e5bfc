// SPDX-License-Identifier: MIT
// libFuzzer harness for the Hoymiles DTU codec: framing, decryption, tolerant unpack, JSON, CLI,
// and the texts and the limit the driver takes from AppInfo.
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "drivers/hoymiles/hoymiles_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// The seed every encrypted corpus file was made with.
static const uint8_t SEED[16] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};

static const ProtobufCMessageDescriptor *const descriptors[] = {
    &hoymiles__appinfo_data_res_dto__descriptor,
    &hoymiles__appinfo_data_req_dto__descriptor,
    &hoymiles__hbres_dto__descriptor,
    &hoymiles__hbreq_dto__descriptor,
    &hoymiles__warn_res_dto__descriptor,
    &hoymiles__warn_req_dto__descriptor,
    &hoymiles__command_res_dto__descriptor,
    &hoymiles__command_req_dto__descriptor,
    &hoymiles__command_status_res_dto__descriptor,
    &hoymiles__command_status_req_dto__descriptor,
    &hoymiles__get_config_res_dto__descriptor,
    &hoymiles__get_config_req_dto__descriptor,
    &hoymiles__real_data_new_res_dto__descriptor,
    &hoymiles__real_data_new_req_dto__descriptor,
    &hoymiles__network_info_res_dto__descriptor,
    &hoymiles__network_info_req_dto__descriptor,
};
enum { N_DESCRIPTORS = sizeof(descriptors) / sizeof(descriptors[0]) };

static FILE *devnull;
static struct hm_crypto crypto;

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
    if (hm_crypto_set(&crypto, SEED, sizeof(SEED)) != 0)
        abort();
}

// A limit from AppInfo's feature 8 is a percentage, or refused.
static void check_feature_limit(const char *text)
{
    double pct = -1;
    int rc = hm_feature_limit_percent(text, &pct);
    if (rc == 0 ? !(pct >= 0 && pct <= 100) : rc != -EINVAL)
        abort();
}

// A text the driver publishes: it fits (cut short at worst) and is printable ASCII.
static void check_text(const char *text, size_t cap)
{
    size_t n = strnlen(text, cap);
    if (n == cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if (text[i] < 0x20 || text[i] > 0x7e)
            abort();
}

// What the driver takes from an AppInfo reply besides the JSON: versions, serial, model and
// the persistent limit.
static void check_app_info(const Hoymiles__APPInfoDataReqDTO *r)
{
    char text[12]; // shorter than the longest version, so cutting short is exercised too
    const Hoymiles__APPDtuInfoMO *di = r->dtu_info;
    if (di) {
        hm_dtu_version(di->dtu_sw_version, text, sizeof(text));
        check_text(text, sizeof(text));
        hm_dtu_version(di->dtu_hw_version, text, sizeof(text));
        check_text(text, sizeof(text));
    }
    for (size_t i = 0; i < r->n_pv_info; i++) {
        const Hoymiles__APPPvInfoMO *pv = r->pv_info[i];
        hm_serial_text(pv->pv_serial_number, text, sizeof(text));
        check_text(text, sizeof(text));
        const char *model = hm_inverter_model(pv->pv_serial_number);
        if (model && !*model)
            abort();
        hm_inverter_sw_version(pv->pv_sw_version, text, sizeof(text));
        check_text(text, sizeof(text));
        hm_inverter_hw_version(pv->pv_hw_version, text, sizeof(text));
        check_text(text, sizeof(text));
    }
    for (size_t i = 0; i < r->n_app_features; i++)
        if (r->app_features[i]->value)
            check_feature_limit(r->app_features[i]->value);
}

// The message must render as JSON that jansson can print (so every string is valid UTF-8),
// and packing it must give bytes that unpack cleanly to the same bytes again.
static void check_message(const ProtobufCMessageDescriptor *d, ProtobufCMessage *m)
{
    if (m->descriptor != d)
        abort();
    json_t *j = hm_message_json(m);
    if (!json_is_object(j))
        abort();
    char *text = json_dumps(j, JSON_COMPACT);
    if (!text)
        abort();
    free(text);
    json_decref(j);

    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *a = xmalloc(n ? n : 1);
    if (protobuf_c_message_pack(m, a) != n)
        abort();
    unsigned skipped = 1;
    ProtobufCMessage *again = hm_unpack(d, a, n, &skipped);
    if (!again || skipped != 0)
        abort();
    size_t n2 = protobuf_c_message_get_packed_size(again);
    uint8_t *b = xmalloc(n2 ? n2 : 1);
    if (n2 != n || protobuf_c_message_pack(again, b) != n || memcmp(a, b, n) != 0)
        abort();
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(again, NULL);
    if (d == &hoymiles__appinfo_data_req_dto__descriptor)
        check_app_info((const Hoymiles__APPInfoDataReqDTO *)(const void *)m);
}

static void unpack_as(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
    unsigned skipped = 12345;
    ProtobufCMessage *m = hm_unpack(d, p, n, &skipped);
    if (!m) {
        if (skipped != 0)
            abort();
        return;
    }
    check_message(d, m);
    protobuf_c_message_free_unpacked(m, NULL);
}

// Where a NEED_MORE may stop: at a possible magic that has not got its whole frame yet.
static void check_need_more(const uint8_t *p, size_t rem, const struct hm_crypto *c)
{
    if (rem == 0)
        return;
    if (p[0] != 'H' || (rem > 1 && p[1] != 'M'))
        abort();
    if (rem < HM_HEADER_LEN)
        return;
    size_t total = (size_t)p[8] << 8 | p[9];
    uint16_t tag = (uint16_t)(p[2] << 8 | p[3]);
    bool enc = c && c->on && total > HM_HEADER_LEN && hm_tag_encrypted(tag);
    if (total < HM_HEADER_LEN || total - HM_HEADER_LEN > HM_PAYLOAD_MAX ||
        rem >= total + (enc ? HM_GCM_TAG_LEN : 0))
        abort();
}

// Frames the input as a stream, as the driver would, and checks every result.
static void frame_all(const uint8_t *data, size_t size, const struct hm_crypto *c)
{
    size_t off = 0;
    for (;;) {
        const uint8_t *p = data + off;
        size_t rem = size - off;
        struct hm_frame f;
        enum hm_status st = hm_frame_parse(rem ? p : NULL, rem, c, &f);
        if (st == HM_NEED_MORE) {
            if (f.len != 0)
                abort();
            check_need_more(p, rem, c);
            return;
        }
        if (f.len == 0 || f.len > rem)
            abort();
        switch (st) {
        case HM_SKIP_GARBAGE:
            if (rem >= 2 && p[0] == 'H' && p[1] == 'M') {
                if (f.len != 2) // only an over-long frame is skipped at a magic
                    abort();
            } else {
                for (size_t i = 1; i < f.len; i++)
                    if (p[i] == 'H' && (i + 1 == rem || p[i + 1] == 'M'))
                        abort(); // a magic was skipped over
            }
            break;
        case HM_BAD_LENGTH:
            if (f.len != 2 || p[0] != 'H' || p[1] != 'M' || ((size_t)p[8] << 8 | p[9]) >= 10)
                abort();
            break;
        case HM_OK:
        case HM_BAD_CHECKSUM: {
            if (f.payload != p + HM_HEADER_LEN ||
                f.len != HM_HEADER_LEN + f.payload_len + (f.encrypted ? HM_GCM_TAG_LEN : 0) ||
                f.crc_ok != (st == HM_OK) ||
                f.crc_ok != (hm_crc16(f.payload, f.payload_len) == f.crc) ||
                (f.encrypted != (f.gcm_tag != NULL)) ||
                (f.gcm_tag && f.gcm_tag != f.payload + f.payload_len))
                abort();
            if (st != HM_OK)
                break;
            uint8_t *plain = xmalloc(f.payload_len + 1);
            enum hm_status o = hm_frame_open(c, &f, plain);
            if (!f.encrypted && (o != HM_OK || memcmp(plain, f.payload, f.payload_len) != 0))
                abort();
            if (o != HM_OK && o != HM_DECRYPT_FAILED)
                abort();
            const struct hm_message *m = hm_message_for_tag(f.tag);
            if (o == HM_OK && m) {
                if (m->tag != f.tag)
                    abort();
                unpack_as(m->desc, plain, f.payload_len);
            }
            free(plain);
            break;
        }
        default: abort();
        }
        off += f.len;
    }
}

// The input as a payload: a frame built around it must parse and open to the same bytes.
static void build_round_trip(const uint8_t *data, size_t size)
{
    if (size > HM_PAYLOAD_MAX)
        return;
    uint16_t tag = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0xA211;
    uint8_t *frame = xmalloc(HM_HEADER_LEN + size + HM_GCM_TAG_LEN);
    uint8_t *plain = xmalloc(size + 1);
    for (int enc = 0; enc <= 1; enc++) {
        const struct hm_crypto *c = enc ? &crypto : NULL;
        int n = hm_frame_build(frame, HM_HEADER_LEN + size + HM_GCM_TAG_LEN, tag, 7, data, size, c);
        if (n < 0)
            abort();
        struct hm_frame f;
        if (hm_frame_parse(frame, (size_t)n, c, &f) != HM_OK || f.len != (size_t)n ||
            f.tag != tag || f.seq != 7 || f.payload_len != size)
            abort();
        if (hm_frame_open(c, &f, plain) != HM_OK || memcmp(plain, data, size) != 0)
            abort();
    }
    free(frame);
    free(plain);
}

static void check_decode_rc(int rc, const char *err)
{
    if (rc != 0 && (rc != -EINVAL || err[0] == '\0'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    frame_all(data, size, NULL);
    frame_all(data, size, &crypto);
    build_round_trip(data, size);
    for (size_t i = 0; i < N_DESCRIPTORS; i++)
        unpack_as(descriptors[i], data, size);

    // The decode command on a hex rendering: plain, with the corpus seed, and as a message.
    if (size > HM_HEADER_LEN + HM_PAYLOAD_MAX + HM_GCM_TAG_LEN)
        return 0;
    static const char seed_hex[] = "enc_rand=000102030405060708090a0b0c0d0e0f ";
    size_t prefix = sizeof(seed_hex) - 1;
    char *hex = xmalloc(prefix + 3 * size + 1);
    memcpy(hex, seed_hex, prefix);
    char *h = hex + prefix;
    for (size_t i = 0; i < size; i++)
        sprintf(h + 3 * i, "%02x%c", data[i], i % 5 == 4 ? ':' : ' ');
    h[3 * size] = '\0';
    char err[256] = "";
    int rc = hoymiles_decode(h, devnull, err, sizeof(err));
    check_decode_rc(rc, err);
    if (size == 0 && rc == 0)
        abort();
    err[0] = '\0';
    check_decode_rc(hoymiles_decode(hex, devnull, err, sizeof(err)), err);
    err[0] = '\0';
    const struct hm_message *m =
        hm_message_for_tag(size ? (uint16_t)(0xA200 | (data[0] & 0x1F)) : 0xA211);
    const char *name = m ? m->name : "NoSuchMessage";
    rc = hoymiles_decode_message(name, h, devnull, err, sizeof(err));
    check_decode_rc(rc, err);
    if (!m && rc == 0)
        abort();
    free(hex);

    // The decode command on the input as text, and the input as a feature 8 value.
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    check_feature_limit(text);
    err[0] = '\0';
    check_decode_rc(hoymiles_decode(text, devnull, err, sizeof(err)), err);
    free(text);
    return 0;
}
