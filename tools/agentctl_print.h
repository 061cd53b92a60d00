/* agentctl_print.h: agentctl's human output: aligned tables, key: value
 * listings of nested JSON, and one-line events.
 *
 * Text from the agent (labels, log tails, QEMU's messages) goes to a terminal,
 * so control characters are shown escaped, never written raw. */
#ifndef AGENTD_AGENTCTL_PRINT_H
#define AGENTD_AGENTCTL_PRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;

typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(size_t ncols);
/* Copies ncols cells; NULL prints as "-". Only the last column may span lines. */
int ctl_table_add(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *f);
void ctl_table_free(ctl_table *t);

/* A table to stdout: the header row (ncols cells), then one row per item
 * of the array, added by row. */
typedef void ctl_row_fn(ctl_table *t, struct json_object *item);
void ctl_print_rows(const char *const *header, size_t ncols, struct json_object *array, ctl_row_fn *row);

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
/* s escaped the same way, newlines too, as a string to free; NULL when out of memory. */
char *ctl_safe_text(const char *s);

/* A member's text (numbers too); NULL when it is missing or null. */
const char *ctl_member_text(struct json_object *obj, const char *key);
bool ctl_member_true(struct json_object *obj, const char *key);
/* "NAME what" on stdout, NAME escaped ("?" when NULL). */
void ctl_print_name_line(const char *name, const char *what);

/* Bytes as people read them: 512B, 20G, 1.0G, 3.5T. */
#define CTL_SIZE_TEXT_MAX 16
void ctl_size_text(uint64_t bytes, char text[CTL_SIZE_TEXT_MAX]);
/* A member that is a byte count, as above; "-" when it is missing or not a count. */
void ctl_member_size_text(struct json_object *obj, const char *key, char text[CTL_SIZE_TEXT_MAX]);
/* A member that is an integer; -1 when it is missing or not one. */
int64_t ctl_member_count(struct json_object *obj, const char *key);
/* done of total in whole percent, 0 to 100; 0 when either is unknown (< 0) or total is 0. */
int ctl_percent(int64_t done, int64_t total);

/* A line that is redrawn in place on a terminal (a job's progress bar, a
 * migration's progress). It is cut to the terminal's width, because a line
 * that wrapped could not be redrawn with '\r'. */
typedef struct ctl_status_line {
    FILE *f;
    size_t drawn;   /* bytes of the line now on the terminal; 0 for none */
} ctl_status_line;

/* Replaces the line with text, which is cut (in place) to fit. */
void ctl_status_draw(ctl_status_line *s, char *text);
/* Wipes the line, leaving the cursor at the start of it, so a message can go there. */
void ctl_status_clear(ctl_status_line *s);
/* Leaves the line as it was last drawn and moves below it. */
void ctl_status_finish(ctl_status_line *s);

#endif
