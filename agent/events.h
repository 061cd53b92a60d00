/* events.h: the agent's event stream: numbered, timestamped, and kept in a
 * ring so a client that reconnects can ask for what it missed. */
#ifndef AGENTD_EVENTS_H
#define AGENTD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
typedef struct event_log event_log;

/* Called with every event as one protocol line (with its '\n'). */
typedef void (*event_sink)(const char *line, size_t len, void *opaque);

event_log *event_log_new(size_t capacity, event_sink sink, void *opaque);
void event_log_free(event_log *l);
/* Emits event name with data (ownership taken; NULL for none). Returns its seq. */
uint64_t event_emit(event_log *l, const char *name, struct json_object *data);
/* The kept events with seq > after, as a new JSON array. */
struct json_object *event_log_since(const event_log *l, uint64_t after, bool *ret_missed);
uint64_t event_log_last_seq(const event_log *l);

#endif
