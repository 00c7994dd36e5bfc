// SPDX-License-Identifier: MIT
// The status web server: the page, the read-only HTTP API and the Prometheus metrics.
//
// libmicrohttpd runs inside the daemon's event loop (its epoll descriptor is one more watched
// descriptor, its timeouts one more timer), so every request is answered on the loop thread
// from the live device state: no copies, no locks. The cost is that rendering blocks the
// loop for as long as it takes: about a millisecond per hundred devices.
#ifndef E2M_SERVER_H
#define E2M_SERVER_H

#include <jansson.h>

struct loop;
struct http_config;

// What the server asks the daemon for; every callback runs on the loop thread and returns
// something new that the server frees.
struct http_routes {
    json_t *(*health)(void *arg);
    json_t *(*devices)(void *arg);
    json_t *(*device)(void *arg, const char *id); // NULL: no such device
    char *(*metrics)(void *arg);
    void *arg;
};

struct http_server;

// Starts listening as `cfg` says. Returns NULL after logging why (e.g. the port is taken).
struct http_server *http_server_start(struct loop *loop, const struct http_config *cfg,
                                      const struct http_routes *routes);
// Closes every connection and the listening socket.
void http_server_stop(struct http_server *s);

// The page, as embedded at build time.
extern const unsigned char http_page_html[];
extern const unsigned long http_page_html_len;

#endif
