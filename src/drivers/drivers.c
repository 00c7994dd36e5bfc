// SPDX-License-Identifier: MIT
// The driver registry: one entry per line of drivers.def.
#include "drivers/drivers.h"

#include <string.h>

#define DRIVER(name) extern const struct driver_ops name##_driver;
#include "drivers/drivers.def"
#undef DRIVER

static const struct driver_ops *const all[] = {
#define DRIVER(name) &name##_driver,
#include "drivers/drivers.def"
#undef DRIVER
};

const struct driver_ops *drivers_find(const char *name)
{
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

const struct driver_ops *const *drivers_all(size_t *n)
{
    *n = sizeof(all) / sizeof(all[0]);
    return all;
}
