/* agentctl_print.c: tables, key: value listings and event lines.
 *
 * Cells are escaped when they are added, so widths are measured on what is
 * printed. Widths count UTF-8 characters, not bytes, so labels in other
 * scripts still line up. */
#include "agentctl_print.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define COLUMN_GAP 2
/* When the terminal does not say how wide it is. */
#define TERMINAL_COLUMNS 80

struct ctl_table {
    size_t ncols, nrows, cap;   /* cap counts rows */
    char **cells;               /* row-major, nrows * ncols */
};

static bool must_escape(unsigned char ch, int keep_newlines)
{
    if (ch == '\n')
        return !keep_newlines;
    return ch < 0x20 || ch == 0x7f;
}

/* s with control characters as \xNN; trailing newlines dropped. */
static char *escape(const char *s, int keep_newlines)
{
    size_t n = strlen(s), o = 0;
    char *out;

    while (n > 0 && s[n - 1] == '\n')
        n--;
    out = malloc(n * 4 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (must_escape(ch, keep_newlines))
            o += (size_t)sprintf(out + o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

void ctl_put_safe(FILE *f, const char *s, int keep_newlines)
{
    char *e = escape(s, keep_newlines);

    fputs(e ? e : "?", f);
    free(e);
}

char *ctl_safe_text(const char *s)
{
    return escape(s, 0);
}

const char *ctl_member_text(struct json_object *obj, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return json_object_get_string(v);
}

bool ctl_member_true(struct json_object *obj, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(obj, key, &v) && json_object_get_boolean(v);
}

void ctl_print_name_line(const char *name, const char *what)
{
    ctl_put_safe(stdout, name ? name : "?", 0);
    printf(" %s\n", what);
}

/* Whole units when the size is a whole number of them, as sizes are usually
 * given ("20G"); one decimal below ten units, where it tells 1.0G from 1.4G. */
void ctl_size_text(uint64_t bytes, char text[CTL_SIZE_TEXT_MAX])
{
    static const char units[] = "KMGTPE";
    uint64_t unit = 1024;
    int u = 0;
    double v;

    if (bytes < 1024) {
        snprintf(text, CTL_SIZE_TEXT_MAX, "%" PRIu64 "B", bytes);
        return;
    }
    while (u + 1 < (int)strlen(units) && bytes / unit >= 1024) {
        unit *= 1024;
        u++;
    }
    v = (double)bytes / (double)unit;
    if (bytes % unit == 0 || v >= 9.95)
        snprintf(text, CTL_SIZE_TEXT_MAX, "%.0f%c", v, units[u]);
    else
        snprintf(text, CTL_SIZE_TEXT_MAX, "%.1f%c", v, units[u]);
}

void ctl_member_size_text(struct json_object *obj, const char *key, char text[CTL_SIZE_TEXT_MAX])
{
    struct json_object *v;

    if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_int) &&
        json_object_get_int64(v) >= 0)
        ctl_size_text((uint64_t)json_object_get_int64(v), text);
    else
        snprintf(text, CTL_SIZE_TEXT_MAX, "-");
}

int64_t ctl_member_count(struct json_object *obj, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    return json_object_get_int64(v);
}

int ctl_percent(int64_t done, int64_t total)
{
    if (done < 0 || total <= 0)
        return 0;
    return done >= total ? 100 : (int)((double)done * 100.0 / (double)total);
}

static size_t terminal_columns(FILE *f)
{
    struct winsize ws;

    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
        return ws.ws_col;
    return TERMINAL_COLUMNS;
}

/* Cuts text to the terminal's width less one column, at a UTF-8 character
 * boundary; returns its length. */
static size_t fit_terminal(FILE *f, char *text)
{
    size_t max = terminal_columns(f) - 1, n = strlen(text);

    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
        n--;
    text[n] = '\0';
    return n;
}

void ctl_status_draw(ctl_status_line *s, char *text)
{
    size_t n = fit_terminal(s->f, text);

    fprintf(s->f, "\r%s", text);
    if (s->drawn > n)   /* wipe the end of a longer line, then put the cursor back */
        fprintf(s->f, "%*s\r%s", (int)(s->drawn - n), "", text);
    fflush(s->f);
    s->drawn = n;
}

void ctl_status_clear(ctl_status_line *s)
{
    if (s->drawn == 0)
        return;
    fprintf(s->f, "\r%*s\r", (int)s->drawn, "");
    fflush(s->f);
    s->drawn = 0;
}

void ctl_status_finish(ctl_status_line *s)
{
    if (s->drawn == 0)
        return;
    fputc('\n', s->f);
    fflush(s->f);
    s->drawn = 0;
}

/* Characters a terminal shows for s: UTF-8 continuation bytes take no column. */
static size_t display_width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

void ctl_print_rows(const char *const *header, size_t ncols, struct json_object *array, ctl_row_fn *row)
{
    ctl_table *t = ctl_table_new(ncols);

    if (!t)
        return;
    ctl_table_add(t, header);
    for (size_t i = 0; json_object_is_type(array, json_type_array) && i < json_object_array_length(array); i++)
        row(t, json_object_array_get_idx(array, i));
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

ctl_table *ctl_table_new(size_t ncols)
{
    ctl_table *t = calloc(1, sizeof(*t));

    if (t)
        t->ncols = ncols;
    return t;
}

void ctl_table_free(ctl_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

static int table_reserve(ctl_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **cells;

    if (t->nrows < t->cap)
        return 0;
    cells = realloc(t->cells, cap * t->ncols * sizeof(*cells));
    if (!cells)
        return -ENOMEM;
    t->cells = cells;
    t->cap = cap;
    return 0;
}

int ctl_table_add(ctl_table *t, const char *const *cells)
{
    char **row;

    if (table_reserve(t) < 0)
        return -ENOMEM;
    row = t->cells + t->nrows * t->ncols;
    for (size_t c = 0; c < t->ncols; c++) {
        row[c] = escape(cells[c] ? cells[c] : "-", c + 1 == t->ncols);
        if (!row[c]) {
            while (c-- > 0)
                free(row[c]);
            return -ENOMEM;
        }
    }
    t->nrows++;
    return 0;
}

/* Writes the last cell; its continuation lines start under its first. */
static void put_last_cell(FILE *f, const char *s, size_t indent)
{
    for (; *s; s++) {
        fputc(*s, f);
        if (*s == '\n')
            fprintf(f, "%*s", (int)indent, "");
    }
}

void ctl_table_print(const ctl_table *t, FILE *f)
{
    size_t *width = calloc(t->ncols, sizeof(*width));
    size_t indent;

    if (!width)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c + 1 < t->ncols; c++) {
            size_t w = display_width(t->cells[r * t->ncols + c]);
            width[c] = w > width[c] ? w : width[c];
        }
    for (size_t r = 0; r < t->nrows; r++) {
        char **row = t->cells + r * t->ncols;
        indent = 0;
        for (size_t c = 0; c + 1 < t->ncols; c++) {
            fprintf(f, "%s%*s", row[c], (int)(width[c] - display_width(row[c]) + COLUMN_GAP), "");
            indent += width[c] + COLUMN_GAP;
        }
        put_last_cell(f, row[t->ncols - 1], indent);
        fputc('\n', f);
    }
    free(width);
}

void ctl_print_json(FILE *f, struct json_object *v)
{
    fprintf(f, "%s\n", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_SPACED |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Appends the text of each element, separated by ", ". */
static char *join_array(struct json_object *a)
{
    size_t n = json_object_array_length(a);
    char *out = strdup(""), *item, *grown;

    for (size_t i = 0; out && i < n; i++) {
        item = ctl_value_text(json_object_array_get_idx(a, i));
        grown = NULL;
        if (item && asprintf(&grown, "%s%s%s", out, i ? ", " : "", item) < 0)
            grown = NULL;
        free(item);
        free(out);
        out = grown;
    }
    return out;
}

char *ctl_value_text(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return strdup("-");
    case json_type_boolean:
        return strdup(json_object_get_boolean(v) ? "yes" : "no");
    case json_type_string:   /* an empty string is "not set" to a reader */
        return strdup(*json_object_get_string(v) ? json_object_get_string(v) : "-");
    case json_type_array:
        return json_object_array_length(v) ? join_array(v) : strdup("-");
    default:
        return strdup(json_object_to_json_string_ext(v, JSON_FLAGS));
    }
}

/* Arrays of plain values read well on one line; others get a line per leaf. */
static bool array_is_flat(struct json_object *a)
{
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_type t = json_object_get_type(json_object_array_get_idx(a, i));
        if (t == json_type_object || t == json_type_array)
            return false;
    }
    return true;
}

static int add_leaf(ctl_table *t, const char *key, struct json_object *v)
{
    char *label = NULL, *text = ctl_value_text(v);
    int r = -ENOMEM;

    if (text && asprintf(&label, "%s:", key) >= 0)
        r = ctl_table_add(t, (const char *const[]){ label, text });
    free(label);
    free(text);
    return r;
}

static int add_object(ctl_table *t, const char *key, struct json_object *obj)
{
    char *child;
    int r = 0;

    if (json_object_object_length(obj) == 0)
        return key ? add_leaf(t, key, NULL) : 0;
    json_object_object_foreach(obj, name, v) {
        if (!key)
            r = ctl_table_add_fields(t, name, v);
        else if (asprintf(&child, "%s.%s", key, name) < 0)
            r = -ENOMEM;
        else {
            r = ctl_table_add_fields(t, child, v);
            free(child);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_array(ctl_table *t, const char *key, struct json_object *a)
{
    char *child;
    int r;

    if (array_is_flat(a))
        return add_leaf(t, key, a);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        if (asprintf(&child, "%s[%zu]", key, i) < 0)
            return -ENOMEM;
        r = ctl_table_add_fields(t, child, json_object_array_get_idx(a, i));
        free(child);
        if (r < 0)
            return r;
    }
    return 0;
}

int ctl_table_add_fields(ctl_table *t, const char *key, struct json_object *v)
{
    if (json_object_is_type(v, json_type_object))
        return add_object(t, key, v);
    if (!key)
        return 0;
    if (json_object_is_type(v, json_type_array))
        return add_array(t, key, v);
    return add_leaf(t, key, v);
}

static bool is_listed(const char *name, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

void ctl_print_fields(FILE *f, struct json_object *obj, const char *const *unwrap)
{
    ctl_table *t;
    int r;

    if (!json_object_is_type(obj, json_type_object)) {
        ctl_print_json(f, obj);   /* not the shape expected; show it as it is */
        return;
    }
    t = ctl_table_new(2);
    r = t ? 0 : -ENOMEM;
    json_object_object_foreach(obj, name, v) {
        if (r < 0)
            break;
        if (is_listed(name, unwrap) && json_object_is_type(v, json_type_object))
            r = ctl_table_add_fields(t, NULL, v);
        else
            r = ctl_table_add_fields(t, name, v);
    }
    if (t)
        ctl_table_print(t, f);
    ctl_table_free(t);
}

/* A string needs quotes in key=value form when it could be misread. */
static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '\\' || ch == '=')
            return true;
    }
    return false;
}

/* JSON's escapes quote strings and any nested value in one line. */
static void put_event_value(FILE *f, struct json_object *v)
{
    if (json_object_is_type(v, json_type_string) && !needs_quotes(json_object_get_string(v)))
        fputs(json_object_get_string(v), f);
    else
        ctl_put_safe(f, json_object_to_json_string_ext(v, JSON_FLAGS), 0);
}

/* The event's timestamp in UTC with milliseconds, or "-". */
static void put_event_time(FILE *f, struct json_object *event)
{
    struct json_object *ts, *sec, *usec;
    char text[64];
    struct tm tm;
    time_t t;

    if (!json_object_object_get_ex(event, "timestamp", &ts) ||
        !json_object_object_get_ex(ts, "seconds", &sec) ||
        !json_object_object_get_ex(ts, "microseconds", &usec)) {
        fputs("-", f);
        return;
    }
    t = (time_t)json_object_get_int64(sec);
    if (!gmtime_r(&t, &tm) || !strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm)) {
        fputs("-", f);
        return;
    }
    fprintf(f, "%s.%03dZ", text, (int)(json_object_get_int64(usec) / 1000 % 1000));
}

void ctl_print_event(FILE *f, struct json_object *event)
{
    struct json_object *seq, *name, *data;

    if (json_object_object_get_ex(event, "seq", &seq))
        fprintf(f, "%" PRId64 " ", json_object_get_int64(seq));
    else
        fputs("- ", f);
    put_event_time(f, event);
    fputc(' ', f);
    if (json_object_object_get_ex(event, "event", &name) && json_object_get_string(name))
        ctl_put_safe(f, json_object_get_string(name), 0);
    else
        fputs("-", f);
    if (json_object_object_get_ex(event, "data", &data) &&
        json_object_is_type(data, json_type_object)) {
        json_object_object_foreach(data, key, v) {
            fputc(' ', f);
            ctl_put_safe(f, key, 0);
            fputc('=', f);
            put_event_value(f, v);
        }
    }
    fputc('\n', f);
}
