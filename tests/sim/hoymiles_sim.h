// SPDX-License-Identifier: MIT
// Public interface of the simulated Hoymiles HMS-W built-in WiFi DTU (e2m-hoymiles-sim).
//
// Two layers, both free of I/O so that a test can run the DTU inside a virtual-time event loop:
//
// - The wire layer (hoymiles_sim_wire.c): CRC-16/MODBUS, a minimal protobuf encoder and
//   reader, "HM" frames and the AES-128-GCM scheme of encrypting firmware. Clients in tests may
//   use it too; it is the simulator's own reading of the protocol.
// - The DTU model (hoymiles_sim_core.c): one DTU with its inverter. It never reads a clock,
//   never sleeps and never touches a socket: every call takes the current monotonic time and
//   the wall-clock time (both in milliseconds, wall = Unix epoch UTC) from the caller, and all
//   randomness comes from the configured seed, so the same calls give the same bytes.
//
// Nothing here is shared with the daemon under src/: the simulator must not inherit the
// daemon's reading of the protocol. Both layers are built as the static library
// `hoymiles_sim_core` (links libcrypto and libm only).
//
// Typical use by a wrapper (the process in hoymiles_sim.c is one):
//   d = hs_dtu_new(&cfg, mono, wall);
//   loop: hs_dtu_tick(d, mono, wall); accept connections only while hs_dtu_reachable();
//         c = hs_conn_new(d, mono, wall) per accepted client; feed received bytes with
//         hs_conn_input(); send what hs_conn_output() returns and report it with hs_conn_sent();
//         close the socket when hs_conn_closing() and the output is empty, then hs_conn_free();
//         sleep until hs_dtu_next_event() or until input arrives.
#ifndef E2M_HOYMILES_SIM_H
#define E2M_HOYMILES_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---- Protocol constants -----------------------------------------------------------------

#define HS_HEADER_LEN   10   // magic, tag, seq, CRC, total length
#define HS_GCM_TAG_LEN  16   // appended after total_length bytes on encrypted tags
#define HS_ENC_RAND_LEN 16   // AppInfo dtu_info.enc_rand
#define HS_FRAME_MAX    4096 // largest total_length the DTU accepts; longer = bad frame
#define HS_DFS_ENCRYPT  (1u << 25)

// Request tags (App -> DTU); the reply tag is the request tag - 0x0100.
#define HS_TAG_APPINFO   0xA301
#define HS_TAG_HEARTBEAT 0xA302
#define HS_TAG_WARN      0xA304
#define HS_TAG_COMMAND   0xA305
#define HS_TAG_GETCONFIG 0xA309
#define HS_TAG_REALDATA  0xA311
#define HS_TAG_NETWORK   0xA314
#define HS_TAG_CLOUD_CMD 0x2305 // cloud-direction command; never answered locally

// Command actions (CommandResDTO field 2) the model acts on.
#define HS_ACTION_DTU_REBOOT    1
#define HS_ACTION_MI_REBOOT     3
#define HS_ACTION_MI_START      6
#define HS_ACTION_MI_SHUTDOWN   7
#define HS_ACTION_LIMIT_POWER   8
#define HS_ACTION_PERF_MODE     33
#define HS_ACTION_ALARM_LIST    50
#define HS_ACTION_LIMIT_RUNTIME 211
#define HS_ACTION_INV_REBOOT    8195

// Warning code of "inverter shut down by remote control".
#define HS_WARN_REMOTE_OFF 124

// Dummy secrets the DTU reports in GetConfig. They exist so tests can assert that a client
// never writes them to a log.
#define HS_SECRET_WIFI_SSID "e2m-sim-wlan"
#define HS_SECRET_WIFI_PASS "sim-wifi-pass-7c1e"
#define HS_SECRET_AP_PASS   "sim-ap-pass-93b2"

// ---- Wire layer (hoymiles_sim_wire.c) ------------------------------------------------------

// CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF): "123456789" -> 0x4B37, empty -> 0xFFFF.
uint16_t hs_crc16(const uint8_t *data, size_t n);

// A growable byte buffer. Zero-initialise it ({0}); hs_buf_free() releases it. Allocation
// failures abort.
struct hs_buf {
    uint8_t *data;
    size_t len, cap;
};

void hs_buf_append(struct hs_buf *b, const void *data, size_t n);
// Drops the first n bytes (n <= len).
void hs_buf_consume(struct hs_buf *b, size_t n);
void hs_buf_free(struct hs_buf *b);

// Protobuf writers (proto3 semantics, as the DTU encodes): hs_pb_int() and hs_pb_string() /
// hs_pb_bytes() omit zero values and empty strings; a negative value becomes the 10-byte
// two's-complement varint of int32/int64. hs_pb_varint() always writes. hs_pb_message() writes
// `sub` as a length-delimited field even when it is empty (a present sub-message).
void hs_pb_varint(struct hs_buf *b, unsigned field, uint64_t v);
void hs_pb_int(struct hs_buf *b, unsigned field, int64_t v);
void hs_pb_string(struct hs_buf *b, unsigned field, const char *s);
void hs_pb_bytes(struct hs_buf *b, unsigned field, const void *data, size_t n);
void hs_pb_message(struct hs_buf *b, unsigned field, const struct hs_buf *sub);

// Protobuf reader over a byte range. Wire types 0 (varint), 1 (64-bit), 2 (length-delimited)
// and 5 (32-bit) are understood; groups are malformed.
struct hs_pb_reader {
    const uint8_t *p, *end;
};

struct hs_pb_field {
    unsigned field, wire;
    uint64_t v;          // wire 0, 1, 5: the value
    const uint8_t *data; // wire 2: the bytes
    size_t len;
};

void hs_pb_reader_init(struct hs_pb_reader *r, const uint8_t *data, size_t n);
// Returns 1 with the next field in *f, 0 at the end, -EBADMSG when the input is malformed.
int hs_pb_next(struct hs_pb_reader *r, struct hs_pb_field *f);
// Checks that the whole range parses. Returns 0 or -EBADMSG.
int hs_pb_validate(const uint8_t *data, size_t n);
// The last varint of `field` in a message (as protobuf merges), truncated to int64 (so int32
// negatives read back negative). False when absent, malformed or of another wire type.
bool hs_pb_get_int(const uint8_t *data, size_t n, unsigned field, int64_t *out);
// The nth (0-based) length-delimited occurrence of `field`. False when there is none.
bool hs_pb_get_bytes(const uint8_t *data, size_t n, unsigned field, unsigned nth,
                     const uint8_t **out, size_t *out_len);
// Number of occurrences of `field` (any wire type); -EBADMSG when malformed.
int hs_pb_count(const uint8_t *data, size_t n, unsigned field);

// AES-128-GCM of encrypting DTU firmware: key = first 16 bytes of SHA-256^3(enc_rand); nonce =
// last 12 bytes of SHA-256^3(tag LE16 || seq LE16 || enc_rand); AAD = tag LE16 || seq LE16.
void hs_crypt_key(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint8_t key[16]);
void hs_crypt_nonce(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint16_t tag, uint16_t seq,
                    uint8_t nonce[12]);
// Encrypts n bytes (out may equal in) and produces the authentication tag. Returns 0 or -EIO.
int hs_crypt_seal(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint16_t tag, uint16_t seq,
                  const uint8_t *in, size_t n, uint8_t *out, uint8_t gcm_tag[HS_GCM_TAG_LEN]);
// Decrypts and verifies. Returns 0, or -EBADMSG when the tag does not match (out is then
// undefined).
int hs_crypt_open(const uint8_t enc_rand[HS_ENC_RAND_LEN], uint16_t tag, uint16_t seq,
                  const uint8_t *in, size_t n, const uint8_t gcm_tag[HS_GCM_TAG_LEN], uint8_t *out);

// Whether an encrypting DTU encrypts frames with this tag: everything except 0xA301/0xA201
// and the cloud families 0x22xx/0x23xx. The heartbeat 0xA302/0xA202 returns true here, but the
// DTU also accepts it plain (and then answers plain).
bool hs_tag_encrypted(uint16_t tag);

// Appends one complete frame to `out`: header with CRC and total_length over the payload (or
// over the ciphertext when enc_rand is not NULL), then the ciphertext and its 16-byte GCM tag.
// An empty payload is never encrypted and carries no GCM tag.
void hs_frame_build(struct hs_buf *out, uint16_t tag, uint16_t seq, const uint8_t *payload,
                    size_t n, const uint8_t *enc_rand);

struct hs_frame {
    uint16_t tag, seq, crc; // crc as found in the header
    size_t total;           // total_length from the header
    const uint8_t *payload; // total - 10 bytes (ciphertext when encrypted)
    size_t n;
    const uint8_t *gcm_tag; // NULL unless with_gcm_tag and n > 0
    size_t frame_len;       // bytes the frame occupies in the buffer (total [+ 16])
};

// Parses a frame at the start of buf. Returns its length (> 0), 0 when more bytes are needed,
// or -EBADMSG when the buffer does not start with "HM" or total_length is impossible. The CRC is
// not checked (compare f->crc with hs_crc16(f->payload, f->n)).
int hs_frame_parse(const uint8_t *buf, size_t len, bool with_gcm_tag, struct hs_frame *f);

// Parses, checks the CRC and, with enc_rand, decrypts a reply frame into `plain` (appended).
// Returns the frame length (> 0), 0 when incomplete, -EBADMSG on bad magic/length/CRC, -EACCES
// when decryption fails. `encrypted` says whether this tag is encrypted (hs_tag_encrypted()
// and an encrypting DTU); the frame header is returned in *f.
int hs_frame_open(const uint8_t *buf, size_t len, const uint8_t *enc_rand, bool encrypted,
                  struct hs_frame *f, struct hs_buf *plain);

// ---- DTU model (hoymiles_sim_core.c) ---------------------------------------------------------

enum hs_model { HS_MODEL_HMS_400W_1T, HS_MODEL_HMS_800W_2T, HS_MODEL_HMS_2000W_4T };

#define HS_MAX_PORTS   4
#define HS_MAX_WINDOWS 4

// A recurring cloud-upload window on the wall clock (UTC): active while
// (wall_ms - start_ms) mod period_ms < length_ms.
struct hs_window {
    int64_t period_ms, start_ms, length_ms;
};

enum hs_log_level { HS_LOG_WARN, HS_LOG_INFO, HS_LOG_DEBUG };

struct hs_config {
    enum hs_model model;      // default HMS-800W-2T
    char dtu_sn[13];          // "" = "4143" + the inverter serial's last 8 digits
    uint64_t inverter_sn;     // 0 = model prefix (0x1121/0x1412/0x1222) + 8 digits from seed
    uint64_t seed;            // default 1
    int64_t guard_ms;         // default 30000: two request arrivals closer = violation
    int64_t lockup_ms;        // default 1800000: silence after a violation
    int64_t data_interval_ms; // default 30000: a new data set (and timestamp) this often
    int64_t cmd_min_gap_ms;   // default 3000: a closer 0xA305 command gets err_code 7
    int64_t reboot_ms;        // default 3000: DTU unreachable while rebooting
    int64_t tag_wait_ms;      // default 1000: encrypting DTU waits this long for a GCM tag
    struct hs_window windows[HS_MAX_WINDOWS];
    int n_windows;              // default 0 (the process defaults to the "5min" preset)
    bool encrypted;             // firmware V01.01.01 (else V01.00.07)
    bool close_after_reply;     // close the connection after every reply
    bool stale;                 // data set and timestamp frozen
    bool getconfig_silent;      // GetConfig accepted but never answered
    bool night;                 // forced night: no PV, unreachable
    bool sun;                   // power follows a daylight curve; false = fixed power_w
    double power_w;             // fixed mode: available AC power in W (default 400)
    double sunrise_h, sunset_h; // sun mode, local hours (default 6 and 20)
    double peak_w;              // sun mode: available AC power at noon, W (default 700)
    int tz_offset_min;          // local time = UTC + this (sun curve, midnight reset)
    double ambient_c;           // mean ambient temperature; NAN (default) = from the seed
    // Log sink for the events a test wants to see (violations, lost uploads, ...); NULL = none.
    void (*log)(void *ctx, enum hs_log_level level, const char *msg);
    void *log_ctx;
};

// Fills the defaults listed above.
void hs_config_init(struct hs_config *cfg);
// Sets the model from "hms-400w-1t", "hms-800w-2t" or "hms-2000w-4t". 0 or -EINVAL.
int hs_config_set_model(struct hs_config *cfg, const char *name);
// Sets the cloud windows: "off" (none), "5min" (every 5 min from 4:50 for 30 s: second 50 of
// every minute = 4 mod 5), "quarter" (every 15 min from 14:40 for 40 s) or
// "PERIOD_MS,START_MS,LENGTH_MS" (replaces any preset). 0 or -EINVAL.
int hs_config_set_cloud(struct hs_config *cfg, const char *spec);
// "hms-800w-2t" etc.
const char *hs_model_name(enum hs_model model);

struct hs_dtu;
struct hs_conn;

// Creates a DTU that has just booted at (mono_ms, wall_ms); cfg is copied. In sun mode the
// day's energy so far is pre-integrated. Never NULL (allocation failures abort).
struct hs_dtu *hs_dtu_new(const struct hs_config *cfg, int64_t mono_ms, int64_t wall_ms);
// Frees the DTU. Free every hs_conn first.
void hs_dtu_free(struct hs_dtu *d);

// Advances the model to (mono, wall): energy integration (substeps of at most 10 s, split at
// local midnight), new data sets, end of a reboot or lock-up, sunrise/sunset, GCM-tag waits.
// Time never runs backwards: an earlier mono is treated as the last one seen.
void hs_dtu_tick(struct hs_dtu *d, int64_t mono, int64_t wall);
// Absolute monotonic time of the next thing hs_dtu_tick() has to do (data refresh, lock-up or
// reboot end, tag-wait timeout, sunrise/sunset, local midnight); INT64_MAX when nothing is due.
// Calling tick earlier is harmless; calling it later only delays those events.
int64_t hs_dtu_next_event(const struct hs_dtu *d, int64_t mono, int64_t wall);
// Ticks, then says whether the DTU accepts connections: false at night (no PV power, sun mode
// between sunset and sunrise, or forced `night`) and while rebooting. A wrapper closes its
// listening socket meanwhile so that connects are refused. Leaving the night is a fresh boot
// (new enc_rand, runtime limit and session limit forgotten, daily energy reset).
bool hs_dtu_reachable(struct hs_dtu *d, int64_t mono, int64_t wall);

// A client connected. Returns NULL when the DTU is unreachable (refuse the client). The DTU
// serves one connection: an existing one is marked closing (its pending output dropped) and
// counted in connections_replaced.
struct hs_conn *hs_conn_new(struct hs_dtu *d, int64_t mono, int64_t wall);
// Feeds bytes received on c at (mono, wall); the arrival time of a request is the mono of the
// call that completes its frame. Partial frames are kept inside c, so everything is always
// consumed: the return value is len. Replies appear in hs_conn_output(). Input on a connection
// that is closing or was replaced is discarded.
size_t hs_conn_input(struct hs_dtu *d, struct hs_conn *c, int64_t mono, int64_t wall,
                     const uint8_t *buf, size_t len);
// The same for bytes that reached the host at monotonic time `arrived` (at most mono; later is
// taken as mono), e.g. the kernel's receive timestamp. A request's arrival is then the
// arrival of the bytes that complete its frame, as a real DTU would see it, however late the
// wrapper got round to reading them: the guard, the command gap and the upload windows are
// measured on it (the upload windows at wall - (mono - arrived)).
size_t hs_conn_input_at(struct hs_dtu *d, struct hs_conn *c, int64_t mono, int64_t wall,
                        int64_t arrived, const uint8_t *buf, size_t len);
// Bytes waiting to be sent on c (*len = 0 when none); valid until the next call on c or d.
const uint8_t *hs_conn_output(struct hs_conn *c, size_t *len);
// Reports that the first n bytes of the output were sent.
void hs_conn_sent(struct hs_conn *c, size_t n);
// True when the DTU wants c closed: after flushing the output (close_after_reply, a reboot
// after a reply) or at once when the output is empty (drop fault, replaced, night, reboot).
bool hs_conn_closing(const struct hs_conn *c);
// Frees c (call when its socket is closed, by either side).
void hs_conn_free(struct hs_dtu *d, struct hs_conn *c);

// Changes made by the control channel, for in-process tests. `arg` as noted; every call first
// ticks to (mono, wall). Returns 0, or -EINVAL for a bad argument.
enum hs_ctl {
    HS_CTL_NIGHT,             // arg 1/0: forced night on/off
    HS_CTL_POWER,             // arg W: fixed available AC power (leaves sun mode)
    HS_CTL_REBOOT,            // DTU reboot (as action 1), also ends a lock-up
    HS_CTL_INVERTER_REBOOT,   // as action 3/8195
    HS_CTL_INVERTER_ON,       // arg 1/0: as action 6/7
    HS_CTL_ENCRYPTED,         // arg 1/0: firmware change, takes effect as a reboot
    HS_CTL_STALE,             // arg 1/0
    HS_CTL_CLOSE_AFTER_REPLY, // arg 1/0
    HS_CTL_GETCONFIG_SILENT,  // arg 1/0
    HS_CTL_WARN,              // arg code: a new (active) warning event, warning_number + 1
    HS_CTL_FAULT_GARBAGE,     // next reply preceded by 5-20 random bytes, none of them 'H'
    HS_CTL_FAULT_BADCRC,      // next reply with its CRC XOR 0x5A5A
    HS_CTL_FAULT_DROP,        // close instead of the next reply (the request is processed)
    HS_CTL_FAULT_STALL,       // swallow the next request: not processed, not answered
    HS_CTL_FAULT_DUP,         // the previous reply (old seq) again, right before the next one
    HS_CTL_BUSY,              // arg N: the next N 0xA305 commands get err_code 7
    HS_CTL_LOCK,              // lock up for lockup_ms as after a guard violation
    HS_CTL_UNLOCK,            // end a lock-up now
    HS_CTL_GUARD,             // arg ms: guard_ms (0 disables the guard)
    HS_CTL_LOCKUP,            // arg ms: lockup_ms for later lock-ups
    HS_CTL_CMD_GAP,           // arg ms: cmd_min_gap_ms
    HS_CTL_AMBIENT,           // arg degC: mean ambient temperature
};

int hs_dtu_control(struct hs_dtu *d, int64_t mono, int64_t wall, enum hs_ctl what, double arg);

#define HS_MAX_COUNTS 32

struct hs_count {
    unsigned key; // tag or action
    uint64_t count;
};

struct hs_stats {
    // Counters (since creation). Requests are complete frames with a valid header, any tag.
    uint64_t requests, replies;
    struct hs_count by_tag[HS_MAX_COUNTS]; // in order of first appearance
    int n_tags;
    uint64_t guard_violations, lockups, requests_while_locked, lost_uploads;
    uint64_t persistent_writes;
    int64_t min_persistent_interval_ms; // -1 until two persistent writes happened
    uint64_t runtime_writes, err7_replies;
    struct hs_count by_action[HS_MAX_COUNTS]; // commands received (0xA305 and 0x2305)
    int n_actions;
    uint64_t decrypt_failures, bad_frames, connections, connections_replaced, stalled;
    uint64_t dtu_reboots, dtu_boots, inverter_reboots;
    // Current state.
    enum hs_model model;
    char dtu_sn[13];
    char inverter_sn[13]; // upper-case hex of the inverter serial
    double limit_percent; // persistent limit (action 8)
    double limit_watts;   // runtime limit (action 211); < 0 when none
    int p_lim;            // session p_lim echo (0.1 % or 0.1 W); 0 when none
    bool inverter_on, perf_mode;
    double power_w;         // AC power now
    double energy_total_wh; // sum of the ports' lifetime energy
    double energy_daily_wh; // sum of the ports' energy today
    int warning_number;
    int64_t data_timestamp; // wall seconds of the current data set
    bool locked, night, reachable, rebooting, encrypted, stale, close_after_reply;
    bool getconfig_silent;
    char enc_rand_hex[2 * HS_ENC_RAND_LEN + 1]; // "" when not encrypted
};

// Snapshot of the counters and state as of the last call that ticked the DTU.
void hs_dtu_stats(const struct hs_dtu *d, struct hs_stats *st);
// One-line JSON rendering of st (no newline); caller frees. Keys: the field names above,
// requests_by_tag {"0xa311": n} and commands {"8": n}; limit_watts, p_lim,
// min_persistent_interval_ms and enc_rand are null when absent.
char *hs_stats_json(const struct hs_stats *st);

#endif
