// SPDX-License-Identifier: MIT
// Allocation: abort-on-OOM wrappers and a bump arena for data that lives and dies together.
#ifndef E2M_MEM_H
#define E2M_MEM_H

#include <stdarg.h>
#include <stddef.h>

// Out of memory is not survivable on the boxes we run on, and handling it at every call site
// would add thousands of untested branches; these abort with a message instead.
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

// An arena hands out zeroed, 16-byte aligned blocks and frees them all at once. A config load
// (user config, entity models) lives in one arena.
struct arena;

struct arena *arena_new(void);
void arena_free(struct arena *a);
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
// Bytes handed out so far (for tests and the memory benchmark).
size_t arena_used(const struct arena *a);

#endif
