// SPDX-License-Identifier: MIT
// Libraries loaded when a feature is used instead of linked: a linked library is mapped into
// every process with everything it depends on (libmicrohttpd brings GnuTLS and p11-kit,
// libcurl Kerberos, LDAP and SSH), megabytes of resident memory for a daemon that may never
// serve a page or ask the Supervisor (tests/bench/RESULTS.md).
#ifndef E2M_DYNLIB_H
#define E2M_DYNLIB_H

#include <stddef.h>

// One symbol to look up and where its address goes: `slot` points at a function pointer
// (stored through a void * of the same size and representation, as POSIX requires).
struct dynlib_sym {
    const char *name;
    void **slot;
};

// Opens the library `soname` (e.g. "libcurl.so.4") once for the process and fills every slot.
// Returns 0, or -1 with the reason in `err` (the library or a symbol is missing); the slots
// are then untouched or partly filled and must not be used.
int dynlib_load(const char *soname, const struct dynlib_sym *syms, size_t n, char *err,
                size_t err_size);

#endif
