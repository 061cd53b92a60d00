/* json_get.h: reading members of JSON the agent wrote itself (its records),
 * where a member of the wrong type counts as missing. */
#ifndef AGENTD_JSON_GET_H
#define AGENTD_JSON_GET_H

struct json_object;

/* o's member key when it is a string, else NULL. */
const char *json_get_string(struct json_object *o, const char *key);

#endif
