// SPDX-License-Identifier: MIT
// Time sources. Everything that makes timing decisions takes time as an argument instead of
// calling these, so it can be tested with simulated clocks.
#ifndef E2M_CLOCK_H
#define E2M_CLOCK_H

#include <stdint.h>

// Milliseconds on a monotonic clock (never jumps; unrelated to the calendar).
int64_t clock_mono_ms(void);
// Milliseconds since the Unix epoch, UTC.
int64_t clock_wall_ms(void);
// Local time zone offset from UTC at the given wall time, in milliseconds.
int64_t clock_local_offset_ms(int64_t wall_ms);

#endif
