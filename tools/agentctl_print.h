/* agentctl_print.h: agentctl's human output: aligned tables, key: value
 * listings of nested JSON, and one-line events.
 *
 * Text from the agent (labels, log tails, QEMU's messages) goes to a terminal,
 * so control characters are shown escaped, never written raw. */
#ifndef AGENTD_AGENTCTL_PRINT_H
#define AGENTD_AGENTCTL_PRINT_H

#include <stddef.h>
#include <stdio.h>

struct json_object;

typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(size_t ncols);
/* Copies ncols cells; NULL prints as "-". Only the last column may span lines. */
int ctl_table_add(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *f);
void ctl_table_free(ctl_table *t);

/* Pretty JSON, for --json and vm-qmp. */
void ctl_print_json(FILE *f, struct json_object *v);

/* "key: value" lines for every leaf of obj, nested keys joined with '.'.
 * Members named in unwrap (NULL-terminated) lend their members to the top
 * level without their own name as a prefix. */
void ctl_print_fields(FILE *f, struct json_object *obj, const char *const *unwrap);
/* Adds the leaves of v under key to a two-column table, as above. */
int ctl_table_add_fields(ctl_table *t, const char *key, struct json_object *v);

/* A leaf as people read it: yes/no, "-" for null or "", arrays joined by ", ".
 * Returns a string to free, or NULL when out of memory. */
char *ctl_value_text(struct json_object *v);

/* "SEQ TIME EVENT key=value ..." on one line. */
void ctl_print_event(FILE *f, struct json_object *event);

/* Writes s with control characters escaped as \xNN (newlines kept if asked). */
void ctl_put_safe(FILE *f, const char *s, int keep_newlines);

#endif
