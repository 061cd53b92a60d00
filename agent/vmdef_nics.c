/* vmdef_nics.c: the "nics" member of a VM definition.
 *
 * A list of objects ({"bridge": "br0", "model": "virtio", "mac": ...,
 * "vlan": 100, "trunks": [200], "queues": 2, "boot-index": 0}), or the
 * strings management nodes write: xCAT's vmnics "br0,br1" and RHEV's
 * "network:ifname:installnic|..." ("rhevm:eth0:yes|blue:eth1"), where the
 * install NIC is the one the firmware boots from. A NIC without a MAC gets
 * one here, once (52:54:00:xx:xx:xx), and keeps it in the definition. */
#include "vmdef.h"
#include "vmdef_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "net/net.h"

#define BOOT_INDEX_MAX 999
#define QUEUES_MAX 16
#define NICS_TEXT_MAX 1024

static const char *const model_names[] = {
    [VM_NIC_VIRTIO] = "virtio", [VM_NIC_E1000] = "e1000", [VM_NIC_RTL8139] = "rtl8139",
};
static const char *const nic_members[] = {
    "bridge", "model", "mac", "vlan", "trunks", "queues", "boot-index", "guest-name", "slot",
};

const char *vm_nic_model_name(vm_nic_model m)
{
    return (unsigned)m < ARRAY_SIZE(model_names) ? model_names[m] : "unknown";
}

static void nic_init(vm_nic *n)
{
    memset(n, 0, sizeof(*n));
    n->queues = 1;
    n->boot_index = -1;
    n->slot = -1;
}

static int set_bridge(vm_nic *n, const char *s, size_t i, errbuf *e)
{
    const char *problem = s ? net_ifname_problem(s) : "must be a string";

    if (problem)
        return errbuf_fail(e, "nics[%zu].bridge: %s", i, problem);
    snprintf(n->bridge, sizeof(n->bridge), "%s", s);
    return 0;
}

/* ---- the object form -------------------------------------------------------- */

static int uint_member(struct json_object *v, uint64_t lo, uint64_t hi, uint64_t *ret, const char *what,
                       size_t i, errbuf *e)
{
    if (!vmdef_json_uint(v, ret) || *ret < lo || *ret > hi)
        return errbuf_fail(e, "nics[%zu].%s: must be a whole number from %llu to %llu", i, what,
                           (unsigned long long)lo, (unsigned long long)hi);
    return 0;
}

static int trunks_member(struct json_object *v, vm_nic *n, size_t i, errbuf *e)
{
    size_t len;
    uint64_t id;
    int r;

    if (!json_object_is_type(v, json_type_array) || (len = json_object_array_length(v)) > VM_TRUNKS_MAX)
        return errbuf_fail(e, "nics[%zu].trunks: must be a list of at most %d VLAN ids", i, VM_TRUNKS_MAX);
    for (size_t k = 0; k < len; k++) {
        if ((r = uint_member(json_object_array_get_idx(v, k), NET_VLAN_MIN, NET_VLAN_MAX, &id, "trunks", i, e)) < 0)
            return r;
        n->trunks[k] = (uint16_t)id;
    }
    n->ntrunks = len;
    return 0;
}

static int member(const char *key, struct json_object *v, vm_nic *n, size_t i, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    uint64_t u;
    int k, r;

    if (!strcmp(key, "bridge"))
        return set_bridge(n, s, i, e);
    if (!strcmp(key, "model")) {
        if (!s || (k = vmdef_name_index(model_names, ARRAY_SIZE(model_names), 0, s)) < 0)
            return errbuf_fail(e, "nics[%zu].model: must be virtio, e1000 or rtl8139", i);
        n->model = (vm_nic_model)k;
        return 0;
    }
    if (!strcmp(key, "mac")) {
        if (!s || net_mac_parse(s, n->mac) < 0)
            return errbuf_fail(e, "nics[%zu].mac: must be a unicast address like 52:54:00:12:34:56", i);
        return 0;
    }
    if (!strcmp(key, "guest-name")) {
        if (!s || net_ifname_problem(s))
            return errbuf_fail(e, "nics[%zu].guest-name: an interface name of 1 to 15 characters", i);
        snprintf(n->guest_name, sizeof(n->guest_name), "%s", s);
        return 0;
    }
    if (!strcmp(key, "trunks"))
        return trunks_member(v, n, i, e);
    if (!strcmp(key, "vlan")) {
        if ((r = uint_member(v, NET_VLAN_MIN, NET_VLAN_MAX, &u, key, i, e)) == 0)
            n->vlan = (uint16_t)u;
    } else if (!strcmp(key, "slot")) {
        if ((r = uint_member(v, 0, VM_SLOT_MAX, &u, key, i, e)) == 0)
            n->slot = (int)u;
    } else if (!strcmp(key, "queues")) {
        if ((r = uint_member(v, 1, QUEUES_MAX, &u, key, i, e)) == 0)
            n->queues = (unsigned)u;
    } else {
        if ((r = uint_member(v, 0, BOOT_INDEX_MAX, &u, key, i, e)) == 0)
            n->boot_index = (int)u;
    }
    return r;
}

static int parse_object(struct json_object *v, vm_nic *n, size_t i, errbuf *e)
{
    char field[32];
    struct json_object_iterator it, end;
    int r;

    snprintf(field, sizeof(field), "nics[%zu]", i);
    if ((r = vmdef_only_members(v, field, nic_members, ARRAY_SIZE(nic_members), e)) < 0)
        return r;
    if (!json_object_object_get_ex(v, "bridge", NULL))
        return errbuf_fail(e, "nics[%zu].bridge: is required", i);
    it = json_object_iter_begin(v);
    end = json_object_iter_end(v);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
        if ((r = member(json_object_iter_peek_name(&it), json_object_iter_peek_value(&it), n, i, e)) < 0)
            return r;
    return 0;
}

/* ---- the string forms ------------------------------------------------------------ */

/* "network:ifname:installnic" (RHEV) or "bridge" (xCAT); yes, y, 1 and true
 * mark the NIC to boot from. */
static int parse_one_string(char *s, vm_nic *n, size_t i, errbuf *e)
{
    char *ifname = strchr(s, ':'), *install = NULL;
    int r;

    if (ifname) {
        *ifname++ = '\0';
        if ((install = strchr(ifname, ':')))
            *install++ = '\0';
        if (*ifname && net_ifname_problem(ifname))
            return errbuf_fail(e, "nics[%zu].guest-name: '%.32s' is not an interface name", i, ifname);
        snprintf(n->guest_name, sizeof(n->guest_name), "%s", ifname);
    }
    if ((r = set_bridge(n, s, i, e)) < 0)
        return r;
    if (install && (!strcmp(install, "yes") || !strcmp(install, "y") || !strcmp(install, "1") ||
                    !strcmp(install, "true")))
        n->boot_index = 0;
    else if (install && *install && strcmp(install, "no") && strcmp(install, "n") && strcmp(install, "0") &&
             strcmp(install, "false"))
        return errbuf_fail(e, "nics[%zu]: installnic must be yes or no, not '%.16s'", i, install);
    return 0;
}

static int parse_string(const char *text, vm_def *d, errbuf *e)
{
    char buf[NICS_TEXT_MAX], *save = NULL, *tok;
    const char *sep = strchr(text, '|') ? "|" : ",";
    int r;

    if (strlen(text) >= sizeof(buf))
        return errbuf_fail(e, "nics: at most %d characters", NICS_TEXT_MAX - 1);
    memcpy(buf, text, strlen(text) + 1);
    for (tok = strtok_r(buf, sep, &save); tok; tok = strtok_r(NULL, sep, &save)) {
        if (d->nnics == VM_NICS_MAX)
            return errbuf_fail(e, "nics: at most %d NICs", VM_NICS_MAX);
        nic_init(&d->nics[d->nnics]);
        if ((r = parse_one_string(tok, &d->nics[d->nnics], d->nnics, e)) < 0)
            return r;
        d->nnics++;
    }
    return 0;
}

int vmdef_nics_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    size_t n;

    d->nnics = 0;
    if (s)
        return parse_string(s, d, e);
    if (!json_object_is_type(v, json_type_array))
        return errbuf_fail(e, "nics: must be a list of NICs, or a string like \"br0,br1\"");
    if ((n = json_object_array_length(v)) > VM_NICS_MAX)
        return errbuf_fail(e, "nics: at most %d NICs", VM_NICS_MAX);
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(v, i);
        const char *b = vmdef_json_cstr(o);
        int r;

        nic_init(&d->nics[i]);
        d->nnics = i + 1;
        if (json_object_is_type(o, json_type_object))
            r = parse_object(o, &d->nics[i], i, e);
        else if (b)
            r = set_bridge(&d->nics[i], b, i, e);
        else
            r = errbuf_fail(e, "nics[%zu]: must be an object or a bridge name", i);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool mac_unset(const uint8_t *m)
{
    static const uint8_t zero[6];

    return memcmp(m, zero, 6) == 0;
}

int vmdef_nics_finish(vm_def *d, errbuf *e)
{
    for (size_t i = 0; i < d->nnics; i++) {
        int r;
        if (!mac_unset(d->nics[i].mac))
            continue;
        if ((r = net_mac_generate(d->nics[i].mac)) < 0) {
            errbuf_fail(e, "nics[%zu].mac: cannot generate one: %s", i, strerror(-r));
            return r;
        }
    }
    return 0;
}

/* ---- validation, JSON, comparison -------------------------------------------------- */

static int validate_nic(const vm_def *d, size_t i, errbuf *e)
{
    const vm_nic *n = &d->nics[i];
    const char *problem = net_ifname_problem(n->bridge);
    char mac[NET_MAC_TEXT];

    if (problem)
        return errbuf_fail(e, "nics[%zu].bridge: %s", i, problem);
    if ((unsigned)n->model >= ARRAY_SIZE(model_names))
        return errbuf_fail(e, "nics[%zu].model: must be virtio, e1000 or rtl8139", i);
    net_mac_format(n->mac, mac);
    if (mac_unset(n->mac) || (n->mac[0] & 1))
        return errbuf_fail(e, "nics[%zu].mac: %s is not a unicast address", i, mac);
    if (n->vlan > NET_VLAN_MAX || n->ntrunks > VM_TRUNKS_MAX)
        return errbuf_fail(e, "nics[%zu].vlan: must be from %d to %d", i, NET_VLAN_MIN, NET_VLAN_MAX);
    for (size_t k = 0; k < n->ntrunks; k++)
        if (n->trunks[k] < NET_VLAN_MIN || n->trunks[k] > NET_VLAN_MAX)
            return errbuf_fail(e, "nics[%zu].trunks: must be from %d to %d", i, NET_VLAN_MIN, NET_VLAN_MAX);
    if (n->queues < 1 || n->queues > QUEUES_MAX || (n->queues > 1 && n->model != VM_NIC_VIRTIO))
        return errbuf_fail(e, "nics[%zu].queues: 1 to %d, and more than 1 only for virtio", i, QUEUES_MAX);
    if (n->boot_index < -1 || n->boot_index > BOOT_INDEX_MAX)
        return errbuf_fail(e, "nics[%zu].boot-index: must be a whole number from 0 to %d", i, BOOT_INDEX_MAX);
    for (size_t j = 0; j < i; j++) {
        if (!memcmp(d->nics[j].mac, n->mac, 6))
            return errbuf_fail(e, "nics[%zu].mac: %s is also nics[%zu]'s", i, mac, j);
        if (n->boot_index >= 0 && d->nics[j].boot_index == n->boot_index)
            return errbuf_fail(e, "nics[%zu].boot-index: %d is also nics[%zu]'s", i, n->boot_index, j);
    }
    for (size_t j = 0; n->boot_index >= 0 && j < d->ndisks; j++)
        if (d->disks[j].boot_index == n->boot_index)
            return errbuf_fail(e, "nics[%zu].boot-index: %d is also disks[%zu]'s", i, n->boot_index, j);
    return 0;
}

int vmdef_nics_validate(const vm_def *d, errbuf *e)
{
    int r;

    if (d->nnics > VM_NICS_MAX)
        return errbuf_fail(e, "nics: at most %d NICs", VM_NICS_MAX);
    for (size_t i = 0; i < d->nnics; i++)
        if ((r = validate_nic(d, i, e)) < 0)
            return r;
    return 0;
}

static struct json_object *nic_to_json(const vm_nic *n)
{
    struct json_object *o = json_object_new_object(), *t = json_object_new_array();
    char mac[NET_MAC_TEXT];

    net_mac_format(n->mac, mac);
    for (size_t k = 0; k < n->ntrunks; k++)
        json_object_array_add(t, json_object_new_int(n->trunks[k]));
    json_object_object_add(o, "bridge", json_object_new_string(n->bridge));
    json_object_object_add(o, "model", json_object_new_string(model_names[n->model]));
    json_object_object_add(o, "mac", json_object_new_string(mac));
    if (n->vlan)
        json_object_object_add(o, "vlan", json_object_new_int(n->vlan));
    json_object_object_add(o, "trunks", t);
    json_object_object_add(o, "queues", json_object_new_int((int)n->queues));
    if (n->boot_index >= 0)
        json_object_object_add(o, "boot-index", json_object_new_int(n->boot_index));
    if (n->guest_name[0])
        json_object_object_add(o, "guest-name", json_object_new_string(n->guest_name));
    if (n->slot >= 0)
        json_object_object_add(o, "slot", json_object_new_int(n->slot));
    return o;
}

struct json_object *vmdef_nics_to_json(const vm_def *d)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; a && i < d->nnics && i < VM_NICS_MAX; i++)
        json_object_array_add(a, nic_to_json(&d->nics[i]));
    return a;
}

static bool nic_equal(const vm_nic *a, const vm_nic *b)
{
    return !strcmp(a->bridge, b->bridge) && a->model == b->model && !memcmp(a->mac, b->mac, 6) &&
           a->vlan == b->vlan && a->ntrunks == b->ntrunks &&
           !memcmp(a->trunks, b->trunks, a->ntrunks * sizeof(a->trunks[0])) && a->queues == b->queues &&
           a->boot_index == b->boot_index && !strcmp(a->guest_name, b->guest_name) && a->slot == b->slot;
}

bool vmdef_nics_equal(const vm_def *a, const vm_def *b)
{
    if (a->nnics != b->nnics || a->nnics > VM_NICS_MAX)
        return false;
    for (size_t i = 0; i < a->nnics; i++)
        if (!nic_equal(&a->nics[i], &b->nics[i]))
            return false;
    return true;
}
