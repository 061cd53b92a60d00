/* vm.h: a VM at run time: its definition, its QEMU process, its QMP
 * connection, its state machine and the one job that may change it.
 *
 * Every state-changing operation is a job; a VM runs at most one at a time
 * and a second one is refused with Busy. Jobs finish through a callback that
 * gets either a return value or an error class and description. */
#ifndef AGENTD_VM_H
#define AGENTD_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm_hostdevs.h"
#include "vmdef.h"

struct json_object;
typedef struct agent agent;
typedef struct vm vm;
typedef struct qmp_client qmp_client;
typedef struct statefile_writer statefile_writer;
typedef struct uv_poll_s uv_poll_t;
typedef struct uv_timer_s uv_timer_t;
typedef struct diskjob diskjob;
typedef struct vm_qmpseq vm_qmpseq;
typedef struct vm_console vm_console;
typedef struct vm_migration vm_migration;
typedef struct vm_saving vm_saving;
typedef struct vm_sending vm_sending;
typedef struct vm_receiving vm_receiving;

typedef enum vm_state {
    VM_STOPPED,
    VM_STARTING,
    VM_RUNNING,
    VM_PAUSED,
    VM_SHUTTING_DOWN,
    VM_STOPPING,
    VM_CRASHED,
    VM_INCOMING,       /* destination of a live migration, not ours until finished */
    VM_MIGRATING,      /* source: the guest runs while QEMU sends its state */
    VM_MIGRATED,       /* source: all sent, guest stopped, QEMU kept until confirmed */
    VM_SAVING,         /* its state being written to a file (vm-save) */
    VM_SAVED,          /* no QEMU; its state is in a file and only vm-restore runs it */
    VM_RESTORING,      /* a QEMU loading the saved state */
    VM_SENDING,        /* offline migration, source: its disks going out on a stream */
    VM_SENT,           /* source: all sent; no QEMU, and only vm-send-confirm changes it */
    VM_RECEIVING,      /* destination: its disks coming in; not ours until the end */
} vm_state;

typedef enum vm_job_kind {
    VM_JOB_NONE,
    VM_JOB_START,
    VM_JOB_SHUTDOWN,
    VM_JOB_DESTROY,
    VM_JOB_RESET,
    VM_JOB_SUSPEND,
    VM_JOB_RESUME,
    VM_JOB_DEFINE,
    VM_JOB_UNDEFINE,
    VM_JOB_MASTER,     /* its disks copied into a master */
    VM_JOB_CLONE,      /* its disks being made from a master */
    VM_JOB_HOTPLUG,    /* a device attached to or detached from its QEMU */
    VM_JOB_MIGRATE,    /* source: sending its state, or confirming the handover */
    VM_JOB_MIGRATE_IN, /* destination: QEMU made ready for the stream, or the guest resumed here */
    VM_JOB_SAVE,       /* its state written to a file, then QEMU quits */
    VM_JOB_RESTORE,    /* a QEMU started from the saved state */
    VM_JOB_DISCARD,    /* the saved state dropped */
    VM_JOB_SNAPSHOT,   /* a snapshot created, reverted to or deleted */
    VM_JOB_SEND,       /* offline migration, source: streaming, or confirming */
    VM_JOB_RECEIVE,    /* destination: writing the disks from the stream */
} vm_job_kind;

/* The outcome of a job: status 0 with ret (may be NULL, ownership passes), or
 * an error class and description. */
typedef struct vm_result {
    int status;
    const char *err_class;
    const char *err_desc;
    struct json_object *ret;
} vm_result;

typedef void (*vm_done_cb)(vm *v, const vm_result *res, void *opaque);

typedef struct vm_process {
    pid_t pid;                 /* 0 when there is no QEMU */
    int pidfd;
    uv_poll_t *watch;          /* readable when the process ends */
    bool is_child;             /* started by this agent: exit status readable */
    uint64_t start_ticks;      /* /proc/PID/stat starttime: guards against PID reuse */
    int64_t started_at;        /* wall clock seconds */
} vm_process;

struct vm {
    agent *agent;
    vm_def def;
    vm_state state;
    const char *reason;
    bool unresponsive;         /* QMP did not answer in time; the process lives */
    bool undefined;            /* removed; freed once its last callback ran */
    vm_process proc;
    qmp_client *qmp;
    bool qmp_ready;
    bool exit_expected;        /* a stop was requested: an exit is not a crash */
    bool guest_shutdown;       /* QEMU reported a guest-initiated SHUTDOWN */
    bool adopting;             /* re-adopted; its state is announced once QEMU tells it */
    int crash_restarts;        /* on-crash restarts in a row, each soon after its start */
    /* the job */
    vm_job_kind job;
    vm_done_cb job_cb;
    void *job_opaque;
    uv_timer_t *job_timer;
    int job_step;
    bool job_force;
    vm_state job_prev_state;   /* where a shutdown that times out returns to */
    const char *start_reason;  /* the reason a start job announces */
    bool spawning;             /* posix_spawn of QEMU in flight on the thread pool */
    uint32_t job_timeout_s;
    diskjob *diskjob;          /* the disk copies of a master-create or clone job */
    vm_qmpseq *qmpseq;         /* the QMP steps of a hotplug job */
    void *hotplug;             /* that job's own state, while it is the VM's job */
    vm_console *console;       /* clients on its serial console, while there are any */
    vm_migration *migration;   /* a live migration in or out, while one is going on */
    /* Destination of a live migration not finished yet: the definition is
     * kept with a marker (incoming_path) and dropped when QEMU ends. */
    bool incoming;
    /* Source: "outgoing" or "migrated" in the runtime record, so an agent
     * restart never resumes a guest whose state was sent. */
    const char *migration_mark;
    char incoming_path[PATH_MAX];
    statefile_writer *incoming_file;
    uv_timer_t *migration_timer;   /* progress ticks, or the wait for a stream */
    /* Save and restore (vm_save.c). The runtime record carries the mark
     * ("saving", "restoring"), the file and resume while one is in flight,
     * so a restarted agent finishes or undoes it. */
    vm_saving *saving;         /* the save or restore in flight */
    unsigned save_gen;         /* tells thread-pool work of an earlier one apart */
    struct json_object *saved; /* the saved record (vms/NAME.saved) while saved */
    const char *save_mark;
    bool save_resume;          /* the guest ran when it was saved: restore resumes it */
    char save_target[PATH_MAX];
    char saved_path[PATH_MAX];
    statefile_writer *saved_file;
    /* Offline migration (vm_send.c, vm_receive.c). The source keeps
     * vms/NAME.sent once everything went out, so a restart never boots a
     * VM the destination may own; the destination keeps vms/NAME.receiving
     * until the definition is saved, so a restart removes what a broken
     * stream left. */
    vm_sending *sending;
    vm_receiving *receiving;
    char sent_path[PATH_MAX];
    statefile_writer *sent_file;
    char receiving_path[PATH_MAX];
    statefile_writer *receiving_file;
    struct json_object *snapshots;   /* {"snapshots": [...]} (vm_snapshot.c), or NULL */
    struct snap_op *snapshot;  /* a snapshot delete QEMU runs (block-stream), while it runs */
    char snapshots_path[PATH_MAX];
    statefile_writer *snapshots_file;
    vm_hostdevs_held held_devs;   /* PCI devices on vfio-pci for its QEMU */
    unsigned vnc_port;         /* its VNC display while QEMU runs, else 0 */
    char vnc_password[9];      /* the persistent password, "" when none */
    uv_timer_t *vnc_timer;     /* puts the persistent password back after one-time credentials expire */
    statefile_writer *vnc_password_file;
    char vnc_password_path[PATH_MAX];
    uv_timer_t *health_timer;  /* re-checks an unresponsive QEMU */
    statefile_writer *def_file;
    statefile_writer *runtime_file;
    struct json_object *last_exit;   /* exit-status and log-tail of the last QEMU */
    int pending_io;            /* thread-pool work referring to this VM */
    char run_dir[PATH_MAX];
    char qmp_path[PATH_MAX];
    char serial_path[PATH_MAX];
    char qga_path[PATH_MAX];      /* the guest agent's channel, for a definition with guest-agent */
    char pidfile[PATH_MAX];
    char runtime_path[PATH_MAX];
    char def_path[PATH_MAX];
    char console_log[PATH_MAX];
    char qemu_log[PATH_MAX];
    vm *next;
};

vm *vm_find(agent *a, const char *name);
/* A VM here (not one being removed) has this uuid. */
bool vm_uuid_in_use(agent *a, const char *uuid);
/* A new VM object for def (taken over); not yet saved. */
int vm_new(agent *a, vm_def *def, vm **ret);
void vm_free(vm *v);
/* The agent's list of VMs, in definition order. */
void vm_append(agent *a, vm *v);
void vm_unlink(agent *a, vm *v);
/* Unlinks and frees a VM that never got (or no longer has) a definition. */
void vm_free_undefined(agent *a, vm *v);

const char *vm_state_name(const vm *v);   /* "unresponsive" overrides while set */
bool vm_has_process(const vm *v);

/* Takes the VM's job slot, or fills res with Busy. Definition changes use it
 * too, so nothing starts a VM whose definition is being replaced. */
bool vm_job_begin(vm *v, vm_job_kind kind, vm_done_cb cb, void *opaque, vm_result *res);
const char *vm_job_name(vm_job_kind k);

/* Persists the definition (durably) and reports through cb. */
int vm_save_definition(vm *v, vm_done_cb cb, void *opaque);

/* Jobs. Each returns 0 when started (cb will be called once) or fills res
 * with the refusal (Busy, InvalidState) and returns -1 without calling cb. */
int vm_start(vm *v, bool paused, const char *reason, vm_done_cb cb, void *opaque, vm_result *res);
int vm_shutdown(vm *v, uint32_t timeout_s, bool force, vm_done_cb cb, void *opaque, vm_result *res);
int vm_destroy(vm *v, vm_done_cb cb, void *opaque, vm_result *res);
int vm_reset(vm *v, vm_done_cb cb, void *opaque, vm_result *res);
int vm_suspend(vm *v, vm_done_cb cb, void *opaque, vm_result *res);
int vm_resume(vm *v, vm_done_cb cb, void *opaque, vm_result *res);
/* One raw QMP command (not a job: does not take the VM's job slot). */
int vm_qmp_passthrough(vm *v, const char *command, struct json_object *args,
                       vm_done_cb cb, void *opaque, vm_result *res);

/* Re-adopts a QEMU left running by an earlier agent, from its runtime record.
 * Returns 1 when adopted, 0 when there was nothing to adopt. */
int vm_adopt(vm *v);

/* Runtime facts for query-vm / query-vms. */
struct json_object *vm_runtime_json(const vm *v);
struct json_object *vm_summary_json(const vm *v);

#endif
