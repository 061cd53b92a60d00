/* commands.h: the control protocol's commands (documented in docs/protocol.md). */
#ifndef AGENTD_COMMANDS_H
#define AGENTD_COMMANDS_H

#include <stdbool.h>

struct json_object;
typedef struct request request;

typedef struct command {
    const char *name;
    bool admin_only;
    /* args may be NULL; the handler answers r exactly once, now or later. */
    void (*run)(request *r, struct json_object *args);
} command;

const command *command_find(const char *name);
/* The whole table, NULL-name terminated. */
const command *command_table(void);

#endif
