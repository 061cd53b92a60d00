/* vmdef_passthrough.c: the "passthrough" member of a VM definition: host
 * PCI devices the VM gets through VFIO.
 *
 * xCAT's othersettings string ("devpassthrough:0000:01:00.2,pci_0000_01_00_3",
 * the prefix optional), a list of addresses, or objects ({"host":
 * "0000:01:00.2", "mac": "52:54:00:..", "vlan": 100}) where mac and vlan
 * are an SR-IOV virtual function's, set through its physical function. */
#include "vmdef.h"
#include "vmdef_parse.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "net/net.h"
#include "net/passthrough.h"

#define PT_PREFIX "devpassthrough:"
#define PT_TEXT_MAX 1024

static const char *const hostdev_members[] = { "host", "mac", "vlan" };

static int set_host(vm_hostdev *h, const char *s, size_t i, errbuf *e)
{
    net_pci_addr a;

    if (!s || net_pci_addr_parse(s, &a) < 0)
        return errbuf_fail(e, "passthrough[%zu]: '%.32s' is not a PCI address (domain:bus:slot.function "
                           "like 0000:01:00.2, or pci_0000_01_00_2)", i, s ? s : "");
    net_pci_addr_format(&a, h->host);
    return 0;
}

static int parse_object(struct json_object *o, vm_hostdev *h, size_t i, errbuf *e)
{
    struct json_object *v;
    char field[32];
    uint64_t vlan;
    int r;

    snprintf(field, sizeof(field), "passthrough[%zu]", i);
    if ((r = vmdef_only_members(o, field, hostdev_members, ARRAY_SIZE(hostdev_members), e)) < 0)
        return r;
    if (!json_object_object_get_ex(o, "host", &v))
        return errbuf_fail(e, "passthrough[%zu].host: is required", i);
    if ((r = set_host(h, vmdef_json_cstr(v), i, e)) < 0)
        return r;
    if (json_object_object_get_ex(o, "mac", &v) &&
        (!vmdef_json_cstr(v) || net_mac_parse(vmdef_json_cstr(v), h->mac) < 0))
        return errbuf_fail(e, "passthrough[%zu].mac: must be a unicast address like 52:54:00:12:34:56", i);
    if (json_object_object_get_ex(o, "vlan", &v)) {
        if (!vmdef_json_uint(v, &vlan) || vlan < NET_VLAN_MIN || vlan > NET_VLAN_MAX)
            return errbuf_fail(e, "passthrough[%zu].vlan: must be from %d to %d", i, NET_VLAN_MIN, NET_VLAN_MAX);
        h->vlan = (uint16_t)vlan;
    }
    return 0;
}

static int parse_string(const char *text, vm_def *d, errbuf *e)
{
    char buf[PT_TEXT_MAX], *save = NULL, *tok;
    int r;

    if (!strncmp(text, PT_PREFIX, strlen(PT_PREFIX)))
        text += strlen(PT_PREFIX);
    if (strlen(text) >= sizeof(buf))
        return errbuf_fail(e, "passthrough: at most %d characters", PT_TEXT_MAX - 1);
    memcpy(buf, text, strlen(text) + 1);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (d->nhostdevs == VM_HOSTDEVS_MAX)
            return errbuf_fail(e, "passthrough: at most %d devices", VM_HOSTDEVS_MAX);
        memset(&d->hostdevs[d->nhostdevs], 0, sizeof(d->hostdevs[0]));
        if ((r = set_host(&d->hostdevs[d->nhostdevs], tok, d->nhostdevs, e)) < 0)
            return r;
        d->nhostdevs++;
    }
    return 0;
}

int vmdef_passthrough_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    size_t n;
    int r;

    d->nhostdevs = 0;
    if (s)
        return parse_string(s, d, e);
    if (!json_object_is_type(v, json_type_array))
        return errbuf_fail(e, "passthrough: must be a list of PCI devices, or a string like "
                           "\"devpassthrough:0000:01:00.2\"");
    if ((n = json_object_array_length(v)) > VM_HOSTDEVS_MAX)
        return errbuf_fail(e, "passthrough: at most %d devices", VM_HOSTDEVS_MAX);
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(v, i);

        memset(&d->hostdevs[i], 0, sizeof(d->hostdevs[i]));
        d->nhostdevs = i + 1;
        if (json_object_is_type(o, json_type_object))
            r = parse_object(o, &d->hostdevs[i], i, e);
        else
            r = set_host(&d->hostdevs[i], vmdef_json_cstr(o), i, e);
        if (r < 0)
            return r;
    }
    return 0;
}

int vmdef_passthrough_validate(const vm_def *d, errbuf *e)
{
    net_pci_addr a;

    if (d->nhostdevs > VM_HOSTDEVS_MAX)
        return errbuf_fail(e, "passthrough: at most %d devices", VM_HOSTDEVS_MAX);
    for (size_t i = 0; i < d->nhostdevs; i++) {
        const vm_hostdev *h = &d->hostdevs[i];
        if (net_pci_addr_parse(h->host, &a) < 0)
            return errbuf_fail(e, "passthrough[%zu].host: '%.16s' is not a PCI address", i, h->host);
        if (h->mac[0] & 1)
            return errbuf_fail(e, "passthrough[%zu].mac: must be a unicast address", i);
        if (h->vlan > NET_VLAN_MAX)
            return errbuf_fail(e, "passthrough[%zu].vlan: must be from %d to %d", i, NET_VLAN_MIN, NET_VLAN_MAX);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(d->hostdevs[j].host, h->host))
                return errbuf_fail(e, "passthrough[%zu]: %s is also passthrough[%zu]", i, h->host, j);
    }
    return 0;
}

static bool mac_set(const uint8_t *m)
{
    static const uint8_t zero[6];

    return memcmp(m, zero, 6) != 0;
}

struct json_object *vmdef_passthrough_to_json(const vm_def *d)
{
    struct json_object *a = json_object_new_array();
    char mac[NET_MAC_TEXT];

    for (size_t i = 0; a && i < d->nhostdevs && i < VM_HOSTDEVS_MAX; i++) {
        const vm_hostdev *h = &d->hostdevs[i];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "host", json_object_new_string(h->host));
        if (mac_set(h->mac)) {
            net_mac_format(h->mac, mac);
            json_object_object_add(o, "mac", json_object_new_string(mac));
        }
        if (h->vlan)
            json_object_object_add(o, "vlan", json_object_new_int(h->vlan));
        json_object_array_add(a, o);
    }
    return a;
}

bool vmdef_passthrough_equal(const vm_def *a, const vm_def *b)
{
    if (a->nhostdevs != b->nhostdevs || a->nhostdevs > VM_HOSTDEVS_MAX)
        return false;
    for (size_t i = 0; i < a->nhostdevs; i++)
        if (strcmp(a->hostdevs[i].host, b->hostdevs[i].host) || memcmp(a->hostdevs[i].mac, b->hostdevs[i].mac, 6) ||
            a->hostdevs[i].vlan != b->hostdevs[i].vlan)
            return false;
    return true;
}
