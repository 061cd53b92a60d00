/* vm_hostdevs.c: taking a VM's PCI devices from the host and giving them
 * back (see vm_hostdevs.h). */
#include "vm_hostdevs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "log.h"
#include "net/net.h"
#include "vm.h"
#include "work.h"

#define NL_TIMEOUT_MS 5000

void vm_hostdevs_sysfs(const agent *a, net_sysfs *ret)
{
    *ret = (net_sysfs){ .root = a->cfg.sysfs_root, .write = a->sysfs_write, .opaque = a->sysfs_opaque };
}

/* ---- on the loop ----------------------------------------------------------------------- */

static bool holds(const vm *o, const char *host)
{
    for (size_t k = 0; k < o->held_devs.n; k++)
        if (!strcmp(o->held_devs.dev[k].host, host))
            return true;
    /* A VM being started has not recorded what it holds yet. */
    for (size_t k = 0; o->spawning && k < o->def.nhostdevs; k++)
        if (!strcmp(o->def.hostdevs[k].host, host))
            return true;
    return false;
}

int vm_hostdevs_check_free(agent *a, const vm *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < v->def.nhostdevs; i++)
        for (vm *o = a->vms; o; o = o->next)
            if (o != v && holds(o, v->def.hostdevs[i].host)) {
                snprintf(err, errlen, "passthrough[%zu]: %s is held by VM %s", i, v->def.hostdevs[i].host,
                         o->def.name);
                return -EBUSY;
            }
    return 0;
}

/* ---- on the thread pool ------------------------------------------------------------------ */

static bool mac_set(const uint8_t *m)
{
    static const uint8_t zero[6];

    return memcmp(m, zero, 6) != 0;
}

/* An SR-IOV VF's MAC and VLAN, set through its PF's netdev. */
static int set_vf(const net_sysfs *s, const vm_hostdev *h, const net_pci_addr *a, size_t i, char *err,
                  size_t errlen)
{
    net_pci_addr pf;
    unsigned index;
    char pfdev[16], msg[256];
    net_link l;
    net_nl *nl;
    int r;

    if (!mac_set(h->mac) && !h->vlan)
        return 0;
    if ((r = net_sriov_vf_parent(s, a, &pf, &index)) < 0) {
        snprintf(err, errlen, "passthrough[%zu]: %s is not an SR-IOV virtual function, so it takes no mac "
                 "or vlan", i, h->host);
        return r;
    }
    if ((r = net_pci_netdev(s, &pf, pfdev)) < 0) {
        snprintf(err, errlen, "passthrough[%zu]: the physical function of %s has no network interface", i,
                 h->host);
        return r;
    }
    if ((r = net_nl_open(NL_TIMEOUT_MS, &nl)) < 0) {
        snprintf(err, errlen, "passthrough[%zu]: netlink: %s", i, strerror(-r));
        return r;
    }
    if ((r = net_link_get(nl, pfdev, &l)) < 0)
        snprintf(msg, sizeof(msg), "%s: %s", pfdev, strerror(-r));
    else
        r = net_vf_set(nl, l.ifindex, index, mac_set(h->mac) ? h->mac : NULL, h->vlan, msg, sizeof(msg));
    net_nl_close(nl);
    if (r < 0)
        snprintf(err, errlen, "passthrough[%zu]: %s", i, msg);
    return r;
}

static int take_one(const net_sysfs *s, const vm_def *def, const net_pci_addr *all, size_t i,
                    vm_hostdevs_held *held, char *err, size_t errlen)
{
    char msg[384];
    int r;

    if ((r = net_pci_group_check(s, &all[i], all, def->nhostdevs, msg, sizeof(msg))) < 0 ||
        (r = set_vf(s, &def->hostdevs[i], &all[i], i, msg, sizeof(msg))) < 0)
        goto fail;
    if ((r = net_pci_bind_vfio(s, &all[i], held->dev[held->n].driver, msg, sizeof(msg))) < 0)
        goto fail;
    snprintf(held->dev[held->n].host, sizeof(held->dev[0].host), "%s", def->hostdevs[i].host);
    held->n++;
    return 0;
fail:
    if (!strncmp(msg, "passthrough[", 12))
        snprintf(err, errlen, "%s", msg);
    else
        snprintf(err, errlen, "passthrough[%zu]: %s", i, msg);
    return r;
}

int vm_hostdevs_take(const net_sysfs *s, const vm_def *def, vm_hostdevs_held *held, char *err, size_t errlen)
{
    net_pci_addr all[VM_HOSTDEVS_MAX];
    int r;

    held->n = 0;
    for (size_t i = 0; i < def->nhostdevs; i++)
        if (net_pci_addr_parse(def->hostdevs[i].host, &all[i]) < 0) {
            snprintf(err, errlen, "passthrough[%zu]: '%s' is not a PCI address", i, def->hostdevs[i].host);
            return -EINVAL;
        }
    for (size_t i = 0; i < def->nhostdevs; i++)
        if ((r = take_one(s, def, all, i, held, err, errlen)) < 0) {
            vm_hostdevs_give_back(s, held, NULL, 0);
            return r;
        }
    return 0;
}

int vm_hostdevs_give_back(const net_sysfs *s, vm_hostdevs_held *held, char *err, size_t errlen)
{
    char msg[384];
    net_pci_addr a;
    int first = 0, r;

    /* In reverse, as they were taken. */
    for (size_t i = held->n; i-- > 0;) {
        if ((r = net_pci_addr_parse(held->dev[i].host, &a)) == 0)
            r = net_pci_restore(s, &a, held->dev[i].driver, msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "'%s' is not a PCI address", held->dev[i].host);
        if (r < 0 && !first) {
            first = r;
            if (err)
                snprintf(err, errlen, "%s", msg);
        }
    }
    held->n = 0;
    return first;
}

/* ---- release after the fact -------------------------------------------------------------- */

typedef struct release_work {
    vm *v;
    net_sysfs sysfs;
    vm_hostdevs_held held;
    int status;
    char err[384];
} release_work;

static void run_release(void *arg)
{
    release_work *w = arg;

    w->status = vm_hostdevs_give_back(&w->sysfs, &w->held, w->err, sizeof(w->err));
}

static void after_release(void *arg)
{
    release_work *w = arg;

    w->v->pending_io--;
    if (w->status < 0)
        log_err("vm %s: a passed-through device did not go back to its driver: %s", w->v->def.name, w->err);
    else
        log_info("vm %s: passed-through devices returned to the host", w->v->def.name);
    free(w);
}

void vm_hostdevs_release(vm *v, const vm_hostdevs_held *held)
{
    release_work *w;

    if (!held->n)
        return;
    if (!(w = calloc(1, sizeof(*w)))) {
        log_err("vm %s: out of memory: its passed-through devices stay on vfio-pci", v->def.name);
        return;
    }
    w->v = v;
    w->held = *held;
    vm_hostdevs_sysfs(v->agent, &w->sysfs);
    v->pending_io++;
    if (agent_work(v->agent->loop, run_release, after_release, w) < 0) {
        v->pending_io--;
        log_err("vm %s: cannot queue giving back its passed-through devices", v->def.name);
        free(w);
    }
}

/* ---- the runtime record -------------------------------------------------------------------- */

struct json_object *vm_hostdevs_to_json(const vm_hostdevs_held *held)
{
    struct json_object *a;

    if (!held->n)
        return NULL;
    a = json_object_new_array();
    for (size_t i = 0; i < held->n; i++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "host", json_object_new_string(held->dev[i].host));
        json_object_object_add(o, "driver", json_object_new_string(held->dev[i].driver));
        json_object_array_add(a, o);
    }
    return a;
}

int vm_hostdevs_from_json(struct json_object *a, vm_hostdevs_held *ret)
{
    vm_hostdevs_held h = { 0 };
    size_t n;

    if (!json_object_is_type(a, json_type_array) || (n = json_object_array_length(a)) > VM_HOSTDEVS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(a, i), *host, *driver;
        if (!json_object_object_get_ex(o, "host", &host) || !json_object_object_get_ex(o, "driver", &driver) ||
            json_object_get_string_len(host) >= (int)sizeof(h.dev[0].host) ||
            json_object_get_string_len(driver) >= (int)sizeof(h.dev[0].driver))
            return -EINVAL;
        snprintf(h.dev[i].host, sizeof(h.dev[i].host), "%s", json_object_get_string(host));
        snprintf(h.dev[i].driver, sizeof(h.dev[i].driver), "%s", json_object_get_string(driver));
        h.n++;
    }
    *ret = h;
    return 0;
}
