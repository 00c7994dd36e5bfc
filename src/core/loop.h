// SPDX-License-Identifier: MIT
// The event loop: one thread owns every socket, timer and all daemon state.
//
// Other threads (paho's, device workers) never touch that state; they hand work to the loop
// with loop_post(), which is the only thread-safe function here.
#ifndef E2M_LOOP_H
#define E2M_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

typedef void (*loop_fn)(void *arg);
typedef void (*loop_fd_fn)(void *arg, uint32_t events);

// A timer embedded in its owner's struct; zero-initialise before first use.
struct timer {
    int64_t due_ms;
    size_t heap_index; // 0 = not armed
    loop_fn cb;
    void *arg;
};

struct loop *loop_new(void);
// A loop on simulated time, for tests that run days of traffic in seconds: the clocks start
// at `mono_ms` and `wall_ms` and move only when nothing is ready to run, then straight to
// the next timer. Sockets, timers and posts work as usual; a blocking worker's job takes no
// simulated time.
struct loop *loop_new_virtual(int64_t mono_ms, int64_t wall_ms);
// Frees the loop; posted work that never ran is not run: its drop function is called.
void loop_free(struct loop *l);
// Runs until loop_stop(). Returns 0, or -errno if epoll fails.
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

// Monotonic milliseconds, read once per loop iteration.
int64_t loop_now(const struct loop *l);
// Milliseconds since the Unix epoch (UTC): the real clock, or the simulated one.
int64_t loop_wall(const struct loop *l);

// Arms (or re-arms) a timer to fire at monotonic time `due_ms`.
void loop_timer_set(struct loop *l, struct timer *t, int64_t due_ms, loop_fn cb, void *arg);
void loop_timer_cancel(struct loop *l, struct timer *t);
static inline bool loop_timer_armed(const struct timer *t)
{
    return t->heap_index != 0;
}

// Watches a file descriptor (EPOLLIN etc.). Returns 0 or -errno.
int loop_watch(struct loop *l, int fd, uint32_t events, loop_fd_fn cb, void *arg);
// Changes the events a watched descriptor waits for. Returns 0 or -errno.
int loop_watch_mod(struct loop *l, int fd, uint32_t events);
void loop_unwatch(struct loop *l, int fd);

// Runs fn(arg) on the loop thread soon. Safe from any thread. Returns 0 or -errno.
int loop_post(struct loop *l, loop_fn fn, void *arg);
// Same, and if the loop is freed before running it, calls drop(arg) instead (to release what
// `arg` owns). `drop` may be NULL.
int loop_post_drop(struct loop *l, loop_fn fn, loop_fn drop, void *arg);

#endif
