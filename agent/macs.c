/* macs.c: see macs.h. */
#include "macs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "net/net.h"
#include "vm.h"

#define REGENERATE_TRIES 16

/* Whether the client's definition names NIC i's MAC. */
static bool mac_given(struct json_object *def_json, size_t i)
{
    struct json_object *nics, *nic;

    if (!json_object_object_get_ex(def_json, "nics", &nics) || !json_object_is_type(nics, json_type_array) ||
        i >= json_object_array_length(nics))
        return false;
    nic = json_object_array_get_idx(nics, i);
    return json_object_is_type(nic, json_type_object) && json_object_object_get_ex(nic, "mac", NULL);
}

void macs_keep(struct json_object *def_json, const vm_def *old, vm_def *def)
{
    for (size_t i = 0; old && i < def->nnics && i < old->nnics; i++)
        if (!mac_given(def_json, i))
            memcpy(def->nics[i].mac, old->nics[i].mac, NET_MAC_LEN);
}

static const vm *mac_owner(agent *a, const uint8_t *mac, const vm *self)
{
    for (const vm *v = a->vms; v; v = v->next) {
        if (v == self || v->undefined)
            continue;
        for (size_t i = 0; i < v->def.nnics; i++)
            if (!memcmp(v->def.nics[i].mac, mac, NET_MAC_LEN))
                return v;
    }
    return NULL;
}

int macs_make_unique(agent *a, struct json_object *def_json, vm_def *def, const vm *self, char *err,
                     size_t errlen)
{
    char text[NET_MAC_TEXT];
    const vm *owner;

    for (size_t i = 0; i < def->nnics; i++) {
        for (int k = 0; (owner = mac_owner(a, def->nics[i].mac, self)); k++) {
            net_mac_format(def->nics[i].mac, text);
            if (mac_given(def_json, i) || k == REGENERATE_TRIES) {
                snprintf(err, errlen, "nics[%zu].mac: %s is a NIC of %s", i, text, owner->def.name);
                return -EINVAL;
            }
            if (net_mac_generate(def->nics[i].mac) < 0) {
                snprintf(err, errlen, "nics[%zu].mac: cannot generate one", i);
                return -EIO;
            }
        }
    }
    return 0;
}
