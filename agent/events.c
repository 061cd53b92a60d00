/* events.c: a fixed ring of the most recent events.
 *
 * The ring keeps each event as its protocol line, not as a json-c object: a
 * line is a few hundred bytes where the object tree is several KiB, and only
 * query-events, which is rare, needs them parsed again. */
#include "events.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <json-c/json.h>

struct event_log {
    char **ring;                /* the event lines (no '\n'), oldest at head */
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
        free(l->ring[(l->head + i) % l->cap]);
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

static void keep(event_log *l, char *ev)
{
    if (l->count == l->cap) {
        free(l->ring[l->head]);
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
    size_t len;

    json_object_object_add(ev, "event", json_object_new_string(name));
    json_object_object_add(ev, "data", data ? data : json_object_new_object());
    json_object_object_add(ev, "timestamp", timestamp_now());
    json_object_object_add(ev, "seq", json_object_new_int64((int64_t)seq));
    const char *s = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN, &len);
    /* One allocation serves the sink (with '\n') and the ring (without). */
    char *line = malloc(len + 2);
    if (line) {
        memcpy(line, s, len);
        line[len] = '\n';
        line[len + 1] = '\0';
        if (l->sink)
            l->sink(line, len + 1, l->opaque);
        line[len] = '\0';
        keep(l, line);
    }
    json_object_put(ev);
    return seq;
}

struct json_object *event_log_since(const event_log *l, uint64_t after, bool *ret_missed)
{
    struct json_object *arr = json_object_new_array();
    uint64_t first = l->last_seq - l->count + 1;

    if (ret_missed)
        *ret_missed = l->count > 0 ? after + 1 < first : after < l->last_seq;
    for (size_t i = 0; i < l->count; i++) {
        if (first + i <= after)
            continue;
        struct json_object *ev = json_tokener_parse(l->ring[(l->head + i) % l->cap]);
        if (ev)
            json_object_array_add(arr, ev);
    }
    return arr;
}

uint64_t event_log_last_seq(const event_log *l)
{
    return l->last_seq;
}
