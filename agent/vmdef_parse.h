/* vmdef_parse.h: the checks and JSON accessors that the parts of the
 * definition parser share (vmdef.c, vmdef_disks.c). Internal to agent/. */
#ifndef AGENTD_VMDEF_PARSE_H
#define AGENTD_VMDEF_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"

struct json_object;
typedef struct vm_def vm_def;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The index of s in names[first..n), or -1. */
int vmdef_name_index(const char *const *names, size_t n, size_t first, const char *s);
/* min..max characters, each a letter, digit, '.', '_' or '-'. */
bool vmdef_token_valid(const char *s, size_t min, size_t max);
/* Why s is not an acceptable absolute path, or NULL. */
const char *vmdef_path_problem(const char *s);
/* A JSON string without embedded NULs, or NULL. */
const char *vmdef_json_cstr(struct json_object *v);
/* A non-negative JSON integer. */
bool vmdef_json_uint(struct json_object *v, uint64_t *ret);
/* A size in MiB: a whole number, or "512M", "2G". */
int vmdef_json_mib(struct json_object *v, uint64_t *ret);
/* Refuses members of o (the object named field) not in allowed. */
int vmdef_only_members(struct json_object *o, const char *field, const char *const *allowed,
                       size_t nallowed, errbuf *e);

/* vmdef_disks.c: the "disks" member. parse reads it; finish fills what
 * depends on other members (volume names need the VM's name); validate
 * checks a whole list as vmdef_validate does. */
int vmdef_disks_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_disks_finish(vm_def *d, errbuf *e);
int vmdef_disks_validate(const vm_def *d, errbuf *e);
struct json_object *vmdef_disks_to_json(const vm_def *d);
bool vmdef_disks_equal(const vm_def *a, const vm_def *b);
/* Copies src's heap members into d (which holds src's other bytes). */
int vmdef_disks_copy(const vm_def *src, vm_def *d);
void vmdef_disks_free(vm_def *d);

/* vmdef_nics.c: the "nics" member; finish generates missing MACs. Boot
 * indexes are unique across disks and NICs (validate checks both). */
int vmdef_nics_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_nics_finish(vm_def *d, errbuf *e);
int vmdef_nics_validate(const vm_def *d, errbuf *e);
struct json_object *vmdef_nics_to_json(const vm_def *d);
bool vmdef_nics_equal(const vm_def *a, const vm_def *b);

/* vmdef_passthrough.c: the "passthrough" member. */
int vmdef_passthrough_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_passthrough_validate(const vm_def *d, errbuf *e);
struct json_object *vmdef_passthrough_to_json(const vm_def *d);
bool vmdef_passthrough_equal(const vm_def *a, const vm_def *b);

/* vmdef_host.c: vnc, cpu-shares, memory-limit: how the host runs the VM;
 * hotplug-slots and the slots of disks and NICs. */
int vmdef_vnc_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_guest_agent_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_hotplug_slots_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_cpu_shares_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_memory_limit_parse(struct json_object *v, vm_def *d, errbuf *e);
int vmdef_host_validate(const vm_def *d, errbuf *e);
/* Adds the members that are set to o; -ENOMEM. */
int vmdef_host_to_json(const vm_def *d, struct json_object *o);
/* The first member that differs, or NULL. */
const char *vmdef_host_difference(const vm_def *a, const vm_def *b);

#endif
