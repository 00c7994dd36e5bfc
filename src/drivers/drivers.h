// SPDX-License-Identifier: MIT
// The registry of compiled-in drivers (generated from drivers.def).
#ifndef E2M_DRIVERS_H
#define E2M_DRIVERS_H

#include <stddef.h>

#include "drivers/driver.h"

const struct driver_ops *drivers_find(const char *name);
// All drivers, for listings; *n receives the count.
const struct driver_ops *const *drivers_all(size_t *n);

#endif
