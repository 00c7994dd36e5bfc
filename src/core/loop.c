// SPDX-License-Identifier: MIT
// epoll event loop with a binary min-heap of timers and an eventfd-backed post queue.
#include "core/loop.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"

struct watch {
    int fd;
    bool dead; // unwatched while an event batch may still point at it
    loop_fd_fn cb;
    void *arg;
    struct watch *next;
};

struct post {
    loop_fn fn, drop;
    void *arg;
    struct post *next;
};

struct loop {
    int epfd, evfd;
    bool stop;
    int64_t now;
    bool virtual_time;
    int64_t wall_base;   // virtual time: wall clock at mono 0
    struct timer **heap; // 1-based
    size_t heap_n, heap_cap;
    struct watch *watches;
    struct watch *graveyard; // freed after the current event batch
    pthread_mutex_t lock;
    struct post *head, *tail;
};

struct loop *loop_new(void)
{
    struct loop *l = xcalloc(1, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || l->evfd < 0) {
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->evfd >= 0)
            close(l->evfd);
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev);
    l->heap_cap = 16;
    l->heap = xcalloc(l->heap_cap + 1, sizeof(*l->heap));
    l->now = clock_mono_ms();
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    struct post *p = l->head;
    while (p) {
        struct post *next = p->next;
        if (p->drop)
            p->drop(p->arg);
        free(p);
        p = next;
    }
    for (int pass = 0; pass < 2; pass++) {
        struct watch *w = pass ? l->graveyard : l->watches;
        while (w) {
            struct watch *next = w->next;
            free(w);
            w = next;
        }
    }
    for (size_t i = 1; i <= l->heap_n; i++)
        l->heap[i]->heap_index = 0;
    free(l->heap);
    close(l->epfd);
    close(l->evfd);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

struct loop *loop_new_virtual(int64_t mono_ms, int64_t wall_ms)
{
    struct loop *l = loop_new();
    if (!l)
        return NULL;
    l->virtual_time = true;
    l->now = mono_ms;
    l->wall_base = wall_ms - mono_ms;
    return l;
}

int64_t loop_now(const struct loop *l)
{
    return l->now;
}

int64_t loop_wall(const struct loop *l)
{
    return l->virtual_time ? l->wall_base + l->now : clock_wall_ms();
}

// The monotonic clock of this loop: real, or simulated (moved only by loop_run).
static int64_t loop_clock(const struct loop *l)
{
    return l->virtual_time ? l->now : clock_mono_ms();
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}

// ---- timer heap -----------------------------------------------------------------------------

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_index = a;
    l->heap[b]->heap_index = b;
}

static void heap_up(struct loop *l, size_t i)
{
    while (i > 1 && l->heap[i / 2]->due_ms > l->heap[i]->due_ms) {
        heap_swap(l, i, i / 2);
        i /= 2;
    }
}

static void heap_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i;
        if (c > l->heap_n)
            break;
        if (c + 1 <= l->heap_n && l->heap[c + 1]->due_ms < l->heap[c]->due_ms)
            c++;
        if (l->heap[i]->due_ms <= l->heap[c]->due_ms)
            break;
        heap_swap(l, i, c);
        i = c;
    }
}

void loop_timer_cancel(struct loop *l, struct timer *t)
{
    size_t i = t->heap_index;
    if (!i)
        return;
    heap_swap(l, i, l->heap_n);
    l->heap_n--;
    t->heap_index = 0;
    if (i <= l->heap_n) {
        heap_up(l, i);
        heap_down(l, i);
    }
}

void loop_timer_set(struct loop *l, struct timer *t, int64_t due_ms, loop_fn cb, void *arg)
{
    loop_timer_cancel(l, t);
    t->due_ms = due_ms;
    t->cb = cb;
    t->arg = arg;
    if (l->heap_n == l->heap_cap) {
        l->heap_cap *= 2;
        l->heap = xrealloc(l->heap, (l->heap_cap + 1) * sizeof(*l->heap));
    }
    l->heap[++l->heap_n] = t;
    t->heap_index = l->heap_n;
    heap_up(l, l->heap_n);
}

// ---- file descriptors and posts -------------------------------------------------------------

int loop_watch(struct loop *l, int fd, uint32_t events, loop_fd_fn cb, void *arg)
{
    struct watch *w = xcalloc(1, sizeof(*w));
    w->fd = fd;
    w->cb = cb;
    w->arg = arg;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        free(w);
        return -e;
    }
    w->next = l->watches;
    l->watches = w;
    return 0;
}

int loop_watch_mod(struct loop *l, int fd, uint32_t events)
{
    for (struct watch *w = l->watches; w; w = w->next) {
        if (w->fd == fd) {
            struct epoll_event ev = {.events = events, .data.ptr = w};
            return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
        }
    }
    return -ENOENT;
}

void loop_unwatch(struct loop *l, int fd)
{
    for (struct watch **pp = &l->watches; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd == fd) {
            struct watch *w = *pp;
            *pp = w->next;
            epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
            w->dead = true;
            w->next = l->graveyard;
            l->graveyard = w;
            return;
        }
    }
}

int loop_post(struct loop *l, loop_fn fn, void *arg)
{
    return loop_post_drop(l, fn, NULL, arg);
}

static void wake(struct loop *l)
{
    uint64_t one = 1;
    ssize_t rc = write(l->evfd, &one, sizeof(one));
    (void)rc; // a full counter still wakes the loop
}

int loop_post_drop(struct loop *l, loop_fn fn, loop_fn drop, void *arg)
{
    struct post *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->fn = fn;
    p->drop = drop;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&l->lock);
    bool was_empty = l->head == NULL;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    pthread_mutex_unlock(&l->lock);
    if (was_empty)
        wake(l);
    return 0;
}

static void run_posts(struct loop *l)
{
    uint64_t n;
    ssize_t rc = read(l->evfd, &n, sizeof(n));
    (void)rc;
    pthread_mutex_lock(&l->lock);
    struct post *p = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->lock);
    while (p && !l->stop) {
        struct post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
    if (p) {
        // Stopping: keep the rest queued so loop_free() releases it.
        pthread_mutex_lock(&l->lock);
        struct post *last = p;
        while (last->next)
            last = last->next;
        last->next = l->head;
        l->head = p;
        if (!l->tail)
            l->tail = last;
        pthread_mutex_unlock(&l->lock);
        wake(l); // the eventfd was drained: a later loop_run must still see these
    }
}

int loop_run(struct loop *l)
{
    l->stop = false;
    while (!l->stop) {
        l->now = loop_clock(l);
        while (l->heap_n && l->heap[1]->due_ms <= l->now && !l->stop) {
            struct timer *t = l->heap[1];
            loop_timer_cancel(l, t);
            t->cb(t->arg);
        }
        if (l->stop)
            break;
        int timeout = -1;
        if (l->heap_n) {
            int64_t wait = l->heap[1]->due_ms - loop_clock(l);
            timeout = wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
        }
        struct epoll_event evs[32];
        int n;
        if (l->virtual_time) {
            // Simulated time stands still while anything is ready. Loopback traffic is
            // delivered by the kernel's network soft interrupt, which may run a moment after
            // send() returned: look twice before declaring the loop idle.
            n = epoll_wait(l->epfd, evs, 32, 0);
            if (n == 0) {
                sched_yield();
                n = epoll_wait(l->epfd, evs, 32, 0);
            }
            if (n == 0 && timeout > 0)
                l->now = l->heap[1]->due_ms; // idle: jump to the next timer
            else if (n == 0 && timeout < 0)
                n = epoll_wait(l->epfd, evs, 32, 100); // no timer at all: wait for real
        } else {
            n = epoll_wait(l->epfd, evs, 32, timeout);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        l->now = loop_clock(l);
        for (int i = 0; i < n && !l->stop; i++) {
            struct watch *w = evs[i].data.ptr;
            if (!w)
                run_posts(l);
            else if (!w->dead)
                w->cb(w->arg, evs[i].events);
        }
        while (l->graveyard) {
            struct watch *w = l->graveyard;
            l->graveyard = w->next;
            free(w);
        }
    }
    return 0;
}
