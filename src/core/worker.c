// SPDX-License-Identifier: MIT
// Per-device worker thread.
#include "core/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/mem.h"

struct worker {
    struct loop *loop;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    loop_fn job, done;
    void *arg;
    bool has_job, busy, quit;
    // Completions posted to the loop but not yet run. worker_free() cannot take them back,
    // so it marks the worker freed and the last of them releases the memory.
    unsigned pending;
    bool freed;
};

static void destroy(struct worker *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

// Runs on the loop thread (or from loop_free when the loop never ran it).
static void complete(struct worker *w, bool run)
{
    pthread_mutex_lock(&w->lock);
    w->pending--;
    bool freed = w->freed, last = w->pending == 0;
    loop_fn done = w->done;
    void *arg = w->arg;
    pthread_mutex_unlock(&w->lock);
    if (freed) {
        if (last)
            destroy(w);
        return;
    }
    if (run)
        done(arg);
}

static void on_complete(void *p)
{
    complete(p, true);
}

static void on_drop(void *p)
{
    complete(p, false);
}

// Jobs need little stack (results live on the heap); many devices mean many threads.
enum { WORKER_STACK = 256 * 1024 };

static void *worker_main(void *p)
{
    struct worker *w = p;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->has_job && !w->quit)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->quit)
            break;
        loop_fn job = w->job;
        void *arg = w->arg;
        w->has_job = false;
        pthread_mutex_unlock(&w->lock);
        job(arg);
        pthread_mutex_lock(&w->lock);
        if (!w->quit && loop_post_drop(w->loop, on_complete, on_drop, w) == 0)
            w->pending++;
        w->busy = false;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct worker *worker_new(struct loop *l)
{
    struct worker *w = xcalloc(1, sizeof(*w));
    w->loop = l;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    int rc = pthread_create(&w->thread, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (rc) {
        destroy(w);
        return NULL;
    }
    return w;
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(&w->lock);
    bool now = w->pending == 0;
    w->freed = true;
    pthread_mutex_unlock(&w->lock);
    if (now)
        destroy(w);
}

int worker_submit(struct worker *w, loop_fn job, loop_fn done, void *arg)
{
    pthread_mutex_lock(&w->lock);
    if (w->busy || w->pending) { // done/arg belong to the completion until it has run
        pthread_mutex_unlock(&w->lock);
        return -EBUSY;
    }
    w->job = job;
    w->done = done;
    w->arg = arg;
    w->has_job = true;
    w->busy = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

bool worker_busy(const struct worker *w)
{
    pthread_mutex_lock((pthread_mutex_t *)&w->lock);
    bool b = w->busy;
    pthread_mutex_unlock((pthread_mutex_t *)&w->lock);
    return b;
}
