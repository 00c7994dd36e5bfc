// SPDX-License-Identifier: MIT
// Small persistent state kept in state_dir: counter high-water marks and what drivers learned
// from their devices (serial numbers). Written atomically (temporary file, fsync, rename, fsync
// of the directory), so a crash or kill -9 at any moment leaves either the old or the new file,
// never a torn one.
#ifndef E2M_PERSIST_H
#define E2M_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct persist;

// Opens (or starts) <dir>/energy2mqtt-state.json. A corrupt file is kept aside as .corrupt
// and logged; the daemon starts with no marks rather than not at all. NULL dir: in memory only.
struct persist *persist_open(const char *dir);
void persist_close(struct persist *p);

// What is kept of one counter.
struct persist_counter {
    double total;    // the high-water mark published
    int64_t wall_ms; // when it was reached
    double offset;   // continuous counters: carried across device resets (0 otherwise)
};

// The stored record of a counter; false when none.
bool persist_get(const struct persist *p, const char *device, const char *entity,
                 struct persist_counter *out);
void persist_set(struct persist *p, const char *device, const char *entity,
                 const struct persist_counter *c);
// Short texts a device's driver learned (a serial number it must put in its requests), by key.
// persist_get_text() copies the stored value into `buf` (NUL-terminated); false when there is
// none or it does not fit in `n` bytes. persist_set_text() stores `value` (valid UTF-8), or
// forgets the key when value is NULL; it returns whether anything changed (only a change makes
// the store dirty).
bool persist_get_text(const struct persist *p, const char *device, const char *key, char *buf,
                      size_t n);
bool persist_set_text(struct persist *p, const char *device, const char *key, const char *value);
// Writes the file if anything changed since the last flush. Returns 0 or -errno.
int persist_flush(struct persist *p);
bool persist_dirty(const struct persist *p);

#endif
