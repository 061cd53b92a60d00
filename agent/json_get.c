/* json_get.c: see json_get.h. */
#include "json_get.h"

#include <json-c/json.h>

const char *json_get_string(struct json_object *o, const char *key)
{
    struct json_object *m;

    return o && json_object_object_get_ex(o, key, &m) && json_object_is_type(m, json_type_string)
               ? json_object_get_string(m) : NULL;
}
