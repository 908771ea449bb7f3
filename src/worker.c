/* worker: UDP worker threads (see worker.h). */
#include "worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmem.h"

struct worker {
    struct ev_loop *loop;
    ev_async stop;
    struct udp *udp;
    pthread_t thread;
    int running;
};

struct workers {
    unsigned n;                  /* threads (cfg->workers - 1) */
    struct worker *w;
};

static void worker_on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

static void worker_free_one(struct worker *w)
{
    if (w->running) {
        ev_async_send(w->loop, &w->stop);
        pthread_join(w->thread, NULL);
        w->running = 0;
    }
    if (w->loop) {
        ev_async_stop(w->loop, &w->stop);
        udp_free(w->udp); /* stops its watcher on w->loop: the thread is gone */
        ev_loop_destroy(w->loop);
        w->loop = NULL;
    }
}

struct workers *workers_start(const struct config *cfg, struct udp *first, char *err, size_t errcap)
{
    struct workers *ws = xcalloc(1, sizeof *ws);
    if (cfg->workers <= 1)
        return ws;
    ws->n = (unsigned)cfg->workers - 1;
    ws->w = xcalloc(ws->n, sizeof *ws->w);
    /* Threads inherit this mask: only the main thread takes signals. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        w->loop = ev_loop_new(EVFLAG_AUTO);
        if (!w->loop) {
            snprintf(err, errcap, "worker %u: cannot create an event loop", i + 1);
            goto fail;
        }
        ev_async_init(&w->stop, worker_on_stop);
        ev_async_start(w->loop, &w->stop);
        w->udp = udp_new_worker(w->loop, first, i + 1, err, errcap);
        if (!w->udp) {
            ev_async_stop(w->loop, &w->stop);
            ev_loop_destroy(w->loop);
            w->loop = NULL;
            goto fail;
        }
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errcap, "worker %u: cannot start a thread: %s", i + 1, strerror(rc));
            goto fail;
        }
        w->running = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ws;
fail:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    workers_stop(ws);
    return NULL;
}

void workers_stop(struct workers *ws)
{
    if (!ws)
        return;
    for (unsigned i = 0; i < ws->n; i++)
        worker_free_one(&ws->w[i]);
    free(ws->w);
    free(ws);
}
