/* Boots the test guest in QEMU for end-to-end tests, and talks its serial query protocol. */
#ifndef AGENTD_TESTS_SUPPORT_GUEST_H
#define AGENTD_TESTS_SUPPORT_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define GUEST_READY_LINE "AGENTD-GUEST-READY"
#define GUEST_LINE_MAX 4096

struct guest_opts {
    const char *qemu;        /* binary; NULL: $AGENTD_QEMU or "qemu-system-x86_64" */
    const char *accel;       /* NULL: $AGENTD_ACCEL or "tcg" */
    const char *guest_dir;   /* holds vmlinuz + initrd.img; NULL: $AGENTD_GUEST_DIR or the compile-time AGENTD_GUEST_DIR macro */
    const char *run_dir;     /* where sockets, pidfile and serial log go; must exist */
    int memory_mb;           /* 0: 256 */
    int vcpus;               /* 0: 1 */
    bool paused;             /* pass -S */
    const char *const *extra_args; /* NULL-terminated extra argv, may be NULL */
    bool no_reboot;          /* pass -no-reboot: a guest reset (or a panic, with panic=-1) makes QEMU exit */
    int start_timeout_ms;    /* how long guest_launch waits for the serial socket; 0: 10000 */
};

struct guest {
    pid_t pid;                /* QEMU, leader of its own session; -1 once reaped */
    int serial_fd;            /* connected unix socket to the serial chardev, O_CLOEXEC|O_NONBLOCK */
    char qmp_path[108];       /* unix socket QEMU listens on for QMP (server=on,wait=off) */
    char serial_path[108];
    char log_path[256];       /* serial output is also kept here (chardev logfile=) */
    char stderr_path[256];    /* QEMU's stdout and stderr */
    /* private: */
    bool launched;            /* a zeroed struct guest is safe to pass to guest_kill */
    bool line_truncated;      /* the line being read did not fit; its tail is dropped */
    int pidfd;                /* -1 when the kernel has no pidfd_open */
    int exit_status;          /* wait status, valid once pid is -1 */
    unsigned next_id;
    size_t buf_len;
    char buf[GUEST_LINE_MAX];
};

/* fork+exec (no shell), argv array; connects serial_fd (retrying until the socket
 * appears, with a deadline) before returning; -errno on failure: -ENOENT when the
 * QEMU binary is missing, -ECHILD when QEMU exited before its serial socket
 * appeared (see stderr_path), -ETIMEDOUT. */
int guest_launch(const struct guest_opts *o, struct guest *g);

/* Connects to the serial socket of a guest someone else launched (agentd),
 * for guest_wait_line and guest_query; guest_kill then only closes it. */
int guest_attach(struct guest *g, const char *serial_path);

/* Reads serial until a line starting with prefix (\r stripped) and copies it into
 * ret_line (may be NULL); -ETIMEDOUT, -EPIPE when QEMU closed the serial socket,
 * -ENOBUFS when the line does not fit ret_line. */
int guest_wait_line(struct guest *g, const char *prefix, int timeout_ms, char *ret_line, size_t len);

/* Waits for AGENTD-GUEST-READY. */
int guest_wait_ready(struct guest *g, int timeout_ms);

/* Sends ?id command, collects the data lines (without the "=id " prefix) joined by
 * \n into ret_out; returns 0 on ok, -EIO on err (message in ret_out), -ETIMEDOUT,
 * -ENOBUFS when the output does not fit len, -EMSGSIZE when a line was longer
 * than GUEST_LINE_MAX. ret_out is untouched on other failures. */
int guest_query(struct guest *g, const char *command, int timeout_ms, char *ret_out, size_t len);

/* waitpid with a deadline; ret_status (may be NULL) gets the raw wait status.
 * Can be called again after QEMU was reaped. -ETIMEDOUT, -ECHILD if never launched. */
int guest_wait_exit(struct guest *g, int timeout_ms, int *ret_status);

/* SIGKILL + reap if still running, close fds; safe to call twice, and on a zeroed
 * struct guest or after a failed guest_launch; tests call it in teardown. */
void guest_kill(struct guest *g);

#endif
