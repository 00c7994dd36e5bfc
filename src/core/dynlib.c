// SPDX-License-Identifier: MIT
// dlopen() and dlsym() for the optional libraries (see dynlib.h).
#include "core/dynlib.h"

#include <dlfcn.h>
#include <stdio.h>

int dynlib_load(const char *soname, const struct dynlib_sym *syms, size_t n, char *err,
                size_t err_size)
{
    // Kept open for the life of the process: the functions stay in use.
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, err_size, "cannot load %s: %s", soname, dlerror());
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        void *p = dlsym(h, syms[i].name);
        if (!p) {
            snprintf(err, err_size, "%s has no %s", soname, syms[i].name);
            return -1;
        }
        *syms[i].slot = p;
    }
    return 0;
}
