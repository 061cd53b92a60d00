/* cmd_sriov.c: host-sriov and host-sriov-set, SR-IOV physical functions as
 * host operations (sysfs on the thread pool). The count of VFs cannot be
 * changed while one of them is passed through to a VM: the kernel would
 * remove the device under the guest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "cmd_args.h"
#include "cmd_handlers.h"
#include "net/passthrough.h"
#include "server.h"
#include "vm.h"
#include "vm_hostdevs.h"
#include "work.h"

typedef struct sriov_work {
    request *r;
    net_sysfs sysfs;
    net_pci_addr pf;
    bool set;
    unsigned numvfs;
    int status;
    char err[384];
    struct json_object *reply;
} sriov_work;

static struct json_object *vf_json(const net_sysfs *s, const net_pci_addr *vf, size_t index)
{
    struct json_object *o = json_object_new_object();
    char addr[NET_PCI_TEXT], driver[NET_PCI_DRIVER_MAX] = "";

    net_pci_addr_format(vf, addr);
    net_pci_driver(s, vf, driver);
    json_object_object_add(o, "index", json_object_new_int((int)index));
    json_object_object_add(o, "host", json_object_new_string(addr));
    json_object_object_add(o, "driver", json_object_new_string(driver));
    return o;
}

/* The PF's state after any change: its VFs and their drivers. */
static int describe(sriov_work *w)
{
    net_pci_addr vfs[NET_SRIOV_VFS_MAX];
    char addr[NET_PCI_TEXT], netdev[16] = "";
    struct json_object *arr;
    size_t n;
    int r;

    if ((r = net_sriov_vfs(&w->sysfs, &w->pf, vfs, NET_SRIOV_VFS_MAX, &n, w->err, sizeof(w->err))) < 0)
        return r;
    net_pci_addr_format(&w->pf, addr);
    w->reply = json_object_new_object();
    arr = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, vf_json(&w->sysfs, &vfs[i], i));
    json_object_object_add(w->reply, "pf", json_object_new_string(addr));
    if (net_pci_netdev(&w->sysfs, &w->pf, netdev) == 0)
        json_object_object_add(w->reply, "netdev", json_object_new_string(netdev));
    json_object_object_add(w->reply, "numvfs", json_object_new_int((int)n));
    json_object_object_add(w->reply, "vfs", arr);
    return 0;
}

static void run_sriov(void *arg)
{
    sriov_work *w = arg;
    char addr[NET_PCI_TEXT], driver[NET_PCI_DRIVER_MAX];

    net_pci_addr_format(&w->pf, addr);
    if (net_pci_driver(&w->sysfs, &w->pf, driver) == -ENODEV) {
        snprintf(w->err, sizeof(w->err), "pf: %s: no such PCI device", addr);
        w->status = -ENODEV;
        return;
    }
    if (w->set && (w->status = net_sriov_set_numvfs(&w->sysfs, &w->pf, w->numvfs, w->err, sizeof(w->err))) < 0)
        return;
    w->status = describe(w);
}

static void after_sriov(void *arg)
{
    sriov_work *w = arg;

    if (w->status < 0)
        request_error(w->r, w->status == -ENODEV ? "NotFound" : "GenericError", "%s", w->err);
    else
        request_ok(w->r, w->reply);
    free(w);
}

/* A VF of pf held by a running VM, or NULL. */
static const vm *vf_holder(agent *a, const net_pci_addr *pf, const char **ret_host)
{
    net_pci_addr d, parent;
    net_sysfs s;
    unsigned index;

    vm_hostdevs_sysfs(a, &s);
    for (vm *v = a->vms; v; v = v->next)
        for (size_t i = 0; i < v->held_devs.n; i++)
            /* The physfn link is a readlink: cheap enough for the loop, unlike the writes. */
            if (net_pci_addr_parse(v->held_devs.dev[i].host, &d) == 0 &&
                net_sriov_vf_parent(&s, &d, &parent, &index) == 0 && !net_pci_addr_cmp(&parent, pf)) {
                *ret_host = v->held_devs.dev[i].host;
                return v;
            }
    return NULL;
}

static void sriov_command(request *r, struct json_object *args, bool set)
{
    static const char *const allowed_get[] = { "pf", NULL }, *const allowed_set[] = { "pf", "numvfs", NULL };
    sriov_work *w;
    const char *pf, *held;
    const vm *holder;
    int64_t n = 0;

    if (!args_known(r, args, set ? allowed_set : allowed_get) || !arg_string(r, args, "pf", true, &pf) ||
        (set && !arg_uint(r, args, "numvfs", -1, 0, NET_SRIOV_VFS_MAX, &n)))
        return;
    if (set && n < 0) {
        request_error(r, "InvalidParameter", "numvfs: is required");
        return;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        request_error(r, "GenericError", "out of memory");
        return;
    }
    if (net_pci_addr_parse(pf, &w->pf) < 0) {
        request_error(r, "InvalidParameter", "pf: '%.32s' is not a PCI address (like 0000:03:00.0)", pf);
        free(w);
        return;
    }
    if (set && (holder = vf_holder(request_agent(r), &w->pf, &held))) {
        request_error(r, "Busy", "numvfs: VF %s of %s is passed through to VM %s", held, pf, holder->def.name);
        free(w);
        return;
    }
    w->r = r;
    w->set = set;
    w->numvfs = (unsigned)n;
    vm_hostdevs_sysfs(request_agent(r), &w->sysfs);
    if (agent_work(request_agent(r)->loop, run_sriov, after_sriov, w) < 0) {
        request_error(r, "GenericError", "cannot queue the sysfs work");
        free(w);
    }
}

void cmd_host_sriov(request *r, struct json_object *args)
{
    sriov_command(r, args, false);
}

void cmd_host_sriov_set(request *r, struct json_object *args)
{
    sriov_command(r, args, true);
}
