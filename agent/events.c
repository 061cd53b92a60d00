/* events.c: a fixed ring of the most recent events. */
#include "events.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <json-c/json.h>

struct event_log {
    struct json_object **ring;  /* the full event objects, oldest at head */
    size_t cap, head, count;
    uint64_t last_seq;
    event_sink sink;
    void *opaque;
};

event_log *event_log_new(size_t capacity, event_sink sink, void *opaque)
{
    event_log *l = calloc(1, sizeof(*l));

    if (!l || !(l->ring = calloc(capacity, sizeof(*l->ring)))) {
        free(l);
        return NULL;
    }
    l->cap = capacity;
    l->sink = sink;
    l->opaque = opaque;
    return l;
}

void event_log_free(event_log *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        json_object_put(l->ring[(l->head + i) % l->cap]);
    free(l->ring);
    free(l);
}

static struct json_object *timestamp_now(void)
{
    struct timeval tv;
    struct json_object *ts = json_object_new_object();

    gettimeofday(&tv, NULL);
    json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
    json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
    return ts;
}

static void keep(event_log *l, struct json_object *ev)
{
    if (l->count == l->cap) {
        json_object_put(l->ring[l->head]);
        l->head = (l->head + 1) % l->cap;
        l->count--;
    }
    l->ring[(l->head + l->count) % l->cap] = ev;
    l->count++;
}

uint64_t event_emit(event_log *l, const char *name, struct json_object *data)
{
    struct json_object *ev = json_object_new_object();
    uint64_t seq = ++l->last_seq;

    json_object_object_add(ev, "event", json_object_new_string(name));
    json_object_object_add(ev, "data", data ? data : json_object_new_object());
    json_object_object_add(ev, "timestamp", timestamp_now());
    json_object_object_add(ev, "seq", json_object_new_int64((int64_t)seq));
    if (l->sink) {
        size_t len;
        const char *s = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN, &len);
        /* The sink wants the line with its terminator; json-c's buffer has room
         * only for the NUL, so build the line once here. */
        char *line = malloc(len + 1);
        if (line) {
            memcpy(line, s, len);
            line[len] = '\n';
            l->sink(line, len + 1, l->opaque);
            free(line);
        }
    }
    keep(l, ev);
    return seq;
}

struct json_object *event_log_since(const event_log *l, uint64_t after, bool *ret_missed)
{
    struct json_object *arr = json_object_new_array();
    uint64_t first = l->last_seq - l->count + 1;

    if (ret_missed)
        *ret_missed = l->count > 0 ? after + 1 < first : after < l->last_seq;
    for (size_t i = 0; i < l->count; i++) {
        struct json_object *ev = l->ring[(l->head + i) % l->cap];
        if (first + i > after)
            json_object_array_add(arr, json_object_get(ev));
    }
    return arr;
}

uint64_t event_log_last_seq(const event_log *l)
{
    return l->last_seq;
}
