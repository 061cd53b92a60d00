/* cmd_handlers.h: handlers defined outside commands.c, for its table. */
#ifndef AGENTD_CMD_HANDLERS_H
#define AGENTD_CMD_HANDLERS_H

struct json_object;
typedef struct request request;

/* cmd_storage.c */
void cmd_query_pools(request *r, struct json_object *args);
void cmd_pool_define(request *r, struct json_object *args);
void cmd_pool_undefine(request *r, struct json_object *args);
void cmd_pool_start(request *r, struct json_object *args);
void cmd_pool_stop(request *r, struct json_object *args);
void cmd_query_volumes(request *r, struct json_object *args);
void cmd_vol_create(request *r, struct json_object *args);
void cmd_vol_delete(request *r, struct json_object *args);
void cmd_query_volume(request *r, struct json_object *args);
void cmd_vol_check(request *r, struct json_object *args);

/* cmd_master.c */
void cmd_query_masters(request *r, struct json_object *args);
void cmd_master_create(request *r, struct json_object *args);
void cmd_master_delete(request *r, struct json_object *args);
void cmd_vm_clone(request *r, struct json_object *args);
void cmd_job_cancel(request *r, struct json_object *args);

/* cmd_sriov.c */
void cmd_host_sriov(request *r, struct json_object *args);
void cmd_host_sriov_set(request *r, struct json_object *args);

/* cmd_vnc.c */
void cmd_vnc_credentials(request *r, struct json_object *args);
void cmd_vnc_password(request *r, struct json_object *args);

/* cmd_console.c */
void cmd_console_attach(request *r, struct json_object *args);

/* cmd_migrate.c */
void cmd_vm_migrate_incoming(request *r, struct json_object *args);
void cmd_vm_migrate(request *r, struct json_object *args);
void cmd_vm_migrate_cancel(request *r, struct json_object *args);
void cmd_vm_migrate_finish(request *r, struct json_object *args);
void cmd_vm_migrate_confirm(request *r, struct json_object *args);

/* cmd_save.c */
void cmd_vm_save(request *r, struct json_object *args);
void cmd_vm_restore(request *r, struct json_object *args);
void cmd_vm_save_discard(request *r, struct json_object *args);

/* cmd_send.c */
void cmd_vm_send(request *r, struct json_object *args);
void cmd_vm_receive(request *r, struct json_object *args);
void cmd_vm_send_confirm(request *r, struct json_object *args);

/* commands.c: a sent VM whose destination has it goes, with its disks. */
typedef struct vm vm;
void undefine_sent(request *r, vm *v);

/* cmd_snapshot.c */
void cmd_snapshot_create(request *r, struct json_object *args);
void cmd_snapshot_list(request *r, struct json_object *args);
void cmd_snapshot_revert(request *r, struct json_object *args);
void cmd_snapshot_delete(request *r, struct json_object *args);

/* cmd_hotplug.c */
void cmd_disk_attach(request *r, struct json_object *args);
void cmd_disk_detach(request *r, struct json_object *args);
void cmd_nic_attach(request *r, struct json_object *args);
void cmd_nic_detach(request *r, struct json_object *args);
void cmd_vcpus_set(request *r, struct json_object *args);
void cmd_memory_set(request *r, struct json_object *args);
void cmd_balloon_set(request *r, struct json_object *args);

#endif
