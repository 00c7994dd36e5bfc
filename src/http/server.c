// SPDX-License-Identifier: MIT
// libmicrohttpd in the event loop: routing, access control, responses.
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/dynlib.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/mem.h"

// Bounds on what clients can make the daemon hold: connections, their idle time, and the
// memory of one connection (request line and headers; bodies are never read), beyond which
// libmicrohttpd answers with an error and closes the connection.
enum { HTTP_MAX_CONNECTIONS = 32, HTTP_IDLE_TIMEOUT_S = 30, HTTP_CONNECTION_MEMORY = 16 * 1024 };

struct http_server {
    struct loop *loop;
    struct MHD_Daemon *mhd;
    int epfd;
    struct timer timer;
    struct http_routes routes;
    const struct http_config *cfg;
};

// libmicrohttpd, loaded when a server starts (core/dynlib.h).
static struct {
    struct MHD_Daemon *(*start_daemon)(unsigned int flags, uint16_t port,
                                       MHD_AcceptPolicyCallback apc, void *apc_cls,
                                       MHD_AccessHandlerCallback dh, void *dh_cls, ...);
    const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *d,
                                                   enum MHD_DaemonInfoType type, ...);
    void (*stop_daemon)(struct MHD_Daemon *d);
    enum MHD_Result (*run)(struct MHD_Daemon *d);
    enum MHD_Result (*get_timeout)(struct MHD_Daemon *d, MHD_UNSIGNED_LONG_LONG *timeout);
    struct MHD_Response *(*create_response_from_buffer)(size_t size, void *buffer,
                                                        enum MHD_ResponseMemoryMode mode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *r, const char *header,
                                           const char *content);
    enum MHD_Result (*queue_response)(struct MHD_Connection *c, unsigned int status,
                                      struct MHD_Response *r);
    void (*destroy_response)(struct MHD_Response *r);
} mhd;

static int mhd_load(void)
{
    static int loaded; // 1 done, -1 failed
    if (loaded)
        return loaded > 0 ? 0 : -1;
    const struct dynlib_sym syms[] = {
        {"MHD_start_daemon", (void **)&mhd.start_daemon},
        {"MHD_get_daemon_info", (void **)&mhd.get_daemon_info},
        {"MHD_stop_daemon", (void **)&mhd.stop_daemon},
        {"MHD_run", (void **)&mhd.run},
        {"MHD_get_timeout", (void **)&mhd.get_timeout},
        {"MHD_create_response_from_buffer", (void **)&mhd.create_response_from_buffer},
        {"MHD_add_response_header", (void **)&mhd.add_response_header},
        {"MHD_queue_response", (void **)&mhd.queue_response},
        {"MHD_destroy_response", (void **)&mhd.destroy_response},
    };
    char err[256];
    if (dynlib_load("libmicrohttpd.so.12", syms, sizeof(syms) / sizeof(syms[0]), err, sizeof(err)) <
        0) {
        log_error("http", "%s (the web server needs libmicrohttpd 0.9)", err);
        loaded = -1;
        return -1;
    }
    loaded = 1;
    return 0;
}

static void run(struct http_server *s);

static void on_timer(void *arg)
{
    run(arg);
}

static void on_ready(void *arg, uint32_t events)
{
    (void)events;
    run(arg);
}

// Lets libmicrohttpd do what is ready, then wakes up again for its next timeout.
static void run(struct http_server *s)
{
    mhd.run(s->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (mhd.get_timeout(s->mhd, &ms) == MHD_YES)
        loop_timer_set(s->loop, &s->timer, loop_now(s->loop) + (int64_t)ms, on_timer, s);
    else
        loop_timer_cancel(s->loop, &s->timer);
}

static void mhd_log(void *arg, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *arg, const char *fmt, va_list ap)
{
    (void)arg;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_debug("http", "%s", msg);
}

// Only the configured clients (with ingress: the Supervisor's proxy and the health check).
static enum MHD_Result on_accept(void *arg, const struct sockaddr *sa, socklen_t len)
{
    struct http_server *s = arg;
    if (!s->cfg->n_allow)
        return MHD_YES;
    char ip[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip,
                  sizeof(ip));
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], ip, sizeof(ip));
        else
            inet_ntop(AF_INET6, a6, ip, sizeof(ip));
    }
    for (size_t i = 0; i < s->cfg->n_allow; i++)
        if (strcmp(ip, s->cfg->allow[i]) == 0)
            return MHD_YES;
    log_debug("http", "refused a connection from %s (not in http.allow)", ip[0] ? ip : "?");
    return MHD_NO;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = mhd.create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    mhd.add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    mhd.add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        mhd.add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (strncmp(type, "text/html", 9) == 0)
        // Everything the page needs is inside it: nothing may be loaded from elsewhere.
        mhd.add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; style-src "
                                "'unsafe-inline'; connect-src 'self'; img-src data:");
    enum MHD_Result rc = mhd.queue_response(c, status, r);
    mhd.destroy_response(r);
    return rc;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(j);
    if (!text)
        return MHD_NO;
    return reply(c, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *what)
{
    return reply_json(c, status, json_pack("{s:s}", "error", what));
}

static enum MHD_Result handle(void *arg, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct http_server *s = arg;
    (void)version;
    (void)upload;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_size = 0; // a body is not read, only refused
        return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "read-only: GET or HEAD only");
    }
    log_debug("http", "%s %s", method, url);
    const struct http_routes *r = &s->routes;
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", (void *)http_page_html,
                     http_page_html_len, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/api/health") == 0)
        return reply_json(c, MHD_HTTP_OK, r->health(r->arg));
    if (strcmp(url, "/api/devices") == 0 || strcmp(url, "/api/devices/") == 0)
        return reply_json(c, MHD_HTTP_OK, r->devices(r->arg));
    if (strncmp(url, "/api/devices/", 13) == 0) {
        json_t *j = r->device(r->arg, url + 13);
        return j ? reply_json(c, MHD_HTTP_OK, j)
                 : reply_error(c, MHD_HTTP_NOT_FOUND, "no such device");
    }
    if (strcmp(url, "/metrics") == 0) {
        char *text = r->metrics(r->arg);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
                     MHD_RESPMEM_MUST_FREE);
    }
    return reply_error(c, MHD_HTTP_NOT_FOUND, "not found");
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr) >> 24) ==
               127;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}

struct http_server *http_server_start(struct loop *loop, const struct http_config *cfg,
                                      const struct http_routes *routes)
{
    struct sockaddr_storage ss = {0};
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
    } else if (inet_pton(AF_INET6, cfg->address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        log_error("http", "cannot listen on '%s': not a numeric address", cfg->address);
        return NULL;
    }
    if (mhd_load() < 0)
        return NULL;
    struct http_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->routes = *routes;
    s->cfg = cfg;
    s->epfd = -1;
    s->mhd = mhd.start_daemon(flags, (uint16_t)cfg->port, on_accept, s, handle, s,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              (size_t)HTTP_CONNECTION_MEMORY, MHD_OPTION_END);
    if (!s->mhd) {
        log_error("http", "cannot listen on %s port %d (in use?)", cfg->address, cfg->port);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = mhd.get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || loop_watch(loop, info->epoll_fd, EPOLLIN, on_ready, s) < 0) {
        log_error("http", "cannot watch the web server's descriptor");
        mhd.stop_daemon(s->mhd);
        free(s);
        return NULL;
    }
    s->epfd = info->epoll_fd;
    if (!cfg->n_allow && !is_loopback(&ss))
        log_warn("http",
                 "listening on %s without http.allow: every client that can reach this host "
                 "can read the status page and API",
                 cfg->address);
    log_info("http", "status page and API on http://%s%s%s:%d/",
             strchr(cfg->address, ':') ? "[" : "", cfg->address,
             strchr(cfg->address, ':') ? "]" : "", cfg->port);
    run(s);
    return s;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    loop_timer_cancel(s->loop, &s->timer);
    if (s->epfd >= 0)
        loop_unwatch(s->loop, s->epfd);
    mhd.stop_daemon(s->mhd);
    free(s);
}
