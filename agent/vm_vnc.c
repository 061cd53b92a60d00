/* vm_vnc.c: a VM's VNC display, its port, and its passwords (see vm_vnc.h). */
#include "vm_vnc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "log.h"
#include "statefile.h"
#include "vm_internal.h"

/* Past the expiry, the persistent password comes back after this much more. */
#define RESTORE_MARGIN_MS 500

/* ---- the port ---------------------------------------------------------------------------- */

static bool port_taken(agent *a, const vm *v, unsigned port)
{
    for (vm *o = a->vms; o; o = o->next)
        if (o != v && o->vnc_port == port)
            return true;
    return false;
}

/* Whether port can be bound on the listen address now (not a guarantee for
 * later, but it skips ports another program holds). */
static bool port_bindable(const char *listen, unsigned port)
{
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    int fd, one = 1, r;

    if (inet_pton(AF_INET, listen, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, listen, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof(*in6);
    } else {
        return true;    /* a name: QEMU resolves it, and reports a failed bind itself */
    }
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return true;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    r = bind(fd, (struct sockaddr *)&ss, len);
    close(fd);
    return r == 0;
}

int vm_vnc_pick_port(vm *v, char *err, size_t errlen)
{
    const agent_config *c = &v->agent->cfg;

    v->vnc_port = 0;
    if (!v->def.vnc)
        return 0;
    for (unsigned p = c->vnc_port_min; p <= c->vnc_port_max; p++)
        if (!port_taken(v->agent, v, p) && port_bindable(c->vnc_listen, p)) {
            v->vnc_port = p;
            return 0;
        }
    snprintf(err, errlen, "vnc: no free port in the host's range %u-%u", c->vnc_port_min, c->vnc_port_max);
    return -EADDRINUSE;
}

void vm_vnc_on_exit(vm *v)
{
    v->vnc_port = 0;
    if (v->vnc_timer)
        uv_timer_stop(v->vnc_timer);
}

struct json_object *vm_vnc_runtime_json(const vm *v)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "host", json_object_new_string(v->agent->cfg.vnc_listen));
    json_object_object_add(o, "port", json_object_new_int((int)v->vnc_port));
    json_object_object_add(o, "display", json_object_new_int((int)v->vnc_port - 5900));
    json_object_object_add(o, "password-set", json_object_new_boolean(v->vnc_password[0] != '\0'));
    return o;
}

/* Letters and digits, drawn without bias. */
static int random_password(char out[VM_VNC_PASSWORD_MAX + 1])
{
    static const char set[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    const unsigned n = sizeof(set) - 1, limit = 256 - 256 % n;
    unsigned char b[64];
    size_t k = 0;

    while (k < VM_VNC_PASSWORD_MAX) {
        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
            return -EIO;
        for (size_t i = 0; i < sizeof(b) && k < VM_VNC_PASSWORD_MAX; i++)
            if (b[i] < limit)
                out[k++] = set[b[i] % n];
    }
    out[k] = '\0';
    return 0;
}

/* ---- the persistent password --------------------------------------------------------------- */

void vm_vnc_load_password(vm *v)
{
    char *text = NULL;
    size_t len = 0;

    v->vnc_password[0] = '\0';
    if (statefile_read(v->vnc_password_path, VM_VNC_PASSWORD_MAX, &text, &len) < 0)
        return;
    memcpy(v->vnc_password, text, len);
    v->vnc_password[len] = '\0';
    free(text);
}

/* set_password, then (from its reply) expire_password; the second reply
 * finishes: done (may be NULL) gets the first error, or ret. */
typedef struct vnc_call {
    vm *v;
    vm_done_cb cb;
    void *opaque;
    struct json_object *ret;     /* the reply's value on success */
    char expires[24];            /* "never", "now" or "+N" */
    char err[256];
} vnc_call;

static void vnc_call_finish(vnc_call *k)
{
    vm_result res = { 0 };

    if (k->err[0]) {
        res.status = -1;
        res.err_class = "GenericError";
        res.err_desc = k->err;
        json_object_put(k->ret);
    } else {
        res.ret = k->ret ? k->ret : json_object_new_object();
    }
    if (k->cb)
        k->cb(k->v, &res, k->opaque);
    else if (k->err[0])
        log_err("vm %s: VNC password not set: %s", k->v->def.name, k->err);
    else
        json_object_put(res.ret);
    free(k);
}

static void on_expire_password(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vnc_call *k = opaque;

    if (r->status < 0)
        snprintf(k->err, sizeof(k->err), "expire_password: %s", r->err_desc ? r->err_desc : "failed");
    vnc_call_finish(k);
}

static void on_set_password(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vnc_call *k = opaque;
    struct json_object *exp;
    int rc;

    if (r->status < 0) {
        snprintf(k->err, sizeof(k->err), "set_password: %s", r->err_desc ? r->err_desc : "failed");
        vnc_call_finish(k);
        return;
    }
    exp = json_object_new_object();
    json_object_object_add(exp, "protocol", json_object_new_string("vnc"));
    json_object_object_add(exp, "time", json_object_new_string(k->expires));
    rc = vm_qmp(k->v, "expire_password", exp, on_expire_password, k);
    json_object_put(exp);
    if (rc < 0) {
        snprintf(k->err, sizeof(k->err), "expire_password: %s", strerror(-rc));
        vnc_call_finish(k);
    }
}

/* 0 when sent (k is then the callbacks'), else -errno and k is the caller's. */
static int send_password(vm *v, const char *password, const char *expires, vnc_call *k)
{
    struct json_object *set = json_object_new_object();
    int r;

    snprintf(k->expires, sizeof(k->expires), "%s", expires);
    json_object_object_add(set, "protocol", json_object_new_string("vnc"));
    json_object_object_add(set, "password", json_object_new_string(password));
    r = vm_qmp(v, "set_password", set, on_set_password, k);
    json_object_put(set);
    return r;
}

static void apply_persistent(vm *v)
{
    vnc_call *k;

    if (!v->vnc_port || !v->vnc_password[0] || !v->qmp_ready || !(k = calloc(1, sizeof(*k))))
        return;
    k->v = v;
    if (send_password(v, v->vnc_password, "never", k) < 0) {
        log_err("vm %s: cannot set its VNC password: QMP is not connected", v->def.name);
        free(k);
    }
}

void vm_vnc_on_qmp_ready(vm *v)
{
    apply_persistent(v);
}

typedef struct password_save {
    vm *v;
    vm_done_cb cb;
    void *opaque;
} password_save;

static void on_password_saved(int status, void *opaque)
{
    password_save *s = opaque;
    vm_result res = { 0 };
    vnc_call *k;

    if (status < 0) {
        res.status = -1;
        res.err_class = "GenericError";
        res.err_desc = "the password could not be saved";
        s->cb(s->v, &res, s->opaque);
    } else if (s->v->vnc_port && s->v->qmp_ready && (k = calloc(1, sizeof(*k)))) {
        /* A cleared password ends the current one now: a random one, expired. */
        char lock[VM_VNC_PASSWORD_MAX + 1] = "";
        bool clear = !s->v->vnc_password[0];
        *k = (vnc_call){ .v = s->v, .cb = s->cb, .opaque = s->opaque };
        if ((clear && random_password(lock) < 0) ||
            send_password(s->v, clear ? lock : s->v->vnc_password, clear ? "now" : "never", k) < 0) {
            free(k);
            res.ret = json_object_new_object();
            s->cb(s->v, &res, s->opaque);   /* saved; it takes effect at the next start */
        }
    } else {
        res.ret = json_object_new_object();
        s->cb(s->v, &res, s->opaque);
    }
    free(s);
}

int vm_vnc_set_password(vm *v, const char *password, vm_done_cb cb, void *opaque, vm_result *res)
{
    password_save *s;
    size_t len = password ? strlen(password) : 0;

    if (password && (len == 0 || len > VM_VNC_PASSWORD_MAX)) {
        vm_refuse(res, "InvalidParameter", "password: 1 to %d characters (VNC uses no more)", VM_VNC_PASSWORD_MAX);
        return -1;
    }
    if (!(s = malloc(sizeof(*s)))) {
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    *s = (password_save){ v, cb, opaque };
    snprintf(v->vnc_password, sizeof(v->vnc_password), "%s", password ? password : "");
    if (statefile_writer_put(v->vnc_password_file, password, len, on_password_saved, s) < 0) {
        free(s);
        vm_refuse(res, "GenericError", "the password could not be saved");
        return -1;
    }
    return 0;
}

/* ---- one-time credentials ----------------------------------------------------------------- */

static void on_credentials_expired(uv_timer_t *t)
{
    apply_persistent(t->data);
}

static int arm_restore(vm *v, uint32_t expire_s)
{
    if (!v->vnc_timer) {
        if (!(v->vnc_timer = malloc(sizeof(*v->vnc_timer))))
            return -ENOMEM;
        uv_timer_init(v->agent->loop, v->vnc_timer);
        v->vnc_timer->data = v;
    }
    return uv_timer_start(v->vnc_timer, on_credentials_expired, (uint64_t)expire_s * 1000 + RESTORE_MARGIN_MS, 0);
}

static struct json_object *credentials_json(const vm *v, const char *password, uint32_t expire_s)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "host", json_object_new_string(v->agent->cfg.vnc_listen));
    json_object_object_add(o, "port", json_object_new_int((int)v->vnc_port));
    json_object_object_add(o, "display", json_object_new_int((int)v->vnc_port - 5900));
    json_object_object_add(o, "protocol", json_object_new_string("vnc"));
    json_object_object_add(o, "password", json_object_new_string(password));
    json_object_object_add(o, "expires-at", json_object_new_int64((int64_t)time(NULL) + expire_s));
    return o;
}

int vm_vnc_credentials(vm *v, uint32_t expire_s, vm_done_cb cb, void *opaque, vm_result *res)
{
    char password[VM_VNC_PASSWORD_MAX + 1], expires[24];
    vnc_call *k;

    if (!v->def.vnc) {
        vm_refuse(res, "InvalidState", "%s has no VNC display (vnc is false in its definition)", v->def.name);
        return -1;
    }
    if (!v->vnc_port || !v->qmp_ready) {
        vm_refuse(res, "InvalidState", "%s is %s: its display exists while it runs", v->def.name,
                  vm_state_name(v));
        return -1;
    }
    if (random_password(password) < 0 || !(k = calloc(1, sizeof(*k)))) {
        vm_refuse(res, "GenericError", "cannot make a password");
        return -1;
    }
    *k = (vnc_call){ .v = v, .cb = cb, .opaque = opaque, .ret = credentials_json(v, password, expire_s) };
    snprintf(expires, sizeof(expires), "+%u", expire_s);
    if (send_password(v, password, expires, k) < 0) {
        json_object_put(k->ret);
        free(k);
        vm_refuse(res, "GenericError", "QMP is not connected to this VM");
        return -1;
    }
    if (arm_restore(v, expire_s) < 0)
        log_err("vm %s: its persistent VNC password will not come back after the credentials expire",
                v->def.name);
    explicit_bzero(password, sizeof(password));
    return 0;
}
