// SPDX-License-Identifier: MIT
// MQTT topic filter matching.
#include "mqtt/topic.h"

#include <string.h>

bool topic_matches(const char *filter, const char *topic)
{
    // Wildcards at the first level do not match topics starting with '$' (MQTT 4.7.2).
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    const char *f = filter, *t = topic;
    for (;;) {
        const char *fe = strchr(f, '/'), *te = strchr(t, '/');
        size_t fl = fe ? (size_t)(fe - f) : strlen(f), tl = te ? (size_t)(te - t) : strlen(t);
        if (fl == 1 && f[0] == '#')
            return true; // the rest, including the parent level itself
        if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
            return false;
        if (!fe || !te) {
            // Both must end together; "a/#" also matches "a".
            if (!fe && !te)
                return true;
            return fe && !te && strcmp(fe + 1, "#") == 0;
        }
        f = fe + 1;
        t = te + 1;
    }
}
