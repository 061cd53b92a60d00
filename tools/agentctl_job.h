/* agentctl_job.h: waiting for the reply of a long job (master-create, clone).
 *
 * While the agent copies disks it sends JOB_PROGRESS events for the job's VM
 * to every client. Their messages are printed as they come and, when stderr
 * is a terminal, a one-line progress bar is drawn there. Ctrl-C sends
 * job-cancel on the same connection and goes on waiting for the job's reply,
 * so that the agent removes what it had made before agentctl exits. */
#ifndef AGENTD_AGENTCTL_JOB_H
#define AGENTD_AGENTCTL_JOB_H

#include <stdbool.h>
#include <stdint.h>

struct ctl_conn;
struct ctl_request;
struct ctl_status_line;
struct json_object;

/* For the verbs that talk to two agents (migrate, move): */
/* "agentctl: WHERE: the conn's error (or errno r's text)", below the status line. */
void ctl_report(struct ctl_status_line *line, const char *where, const struct ctl_conn *c, int r);
/* Opens c afresh on socket and negotiates; a failure is reported. */
int ctl_open_agent(struct ctl_status_line *line, struct ctl_conn *c, const char *socket);

/* Blocks SIGINT and returns a signalfd that reads it, for a connection's
 * stop_fd; -errno on failure. Blocking it first means a Ctrl-C at any point
 * is seen by the next wait instead of killing agentctl mid-request. */
int ctl_job_signal_fd(void);
/* Reads the pending Ctrl-C from that signalfd, so that the next wait waits
 * for another one. */
void ctl_job_drain_signals(int fd);

/* Sends req (whose job runs on req->job_vm) and waits for its reply as
 * ctl_call() does. With json, the messages go to stderr, leaving stdout to
 * the reply. -EINTR after a second Ctrl-C, or after the first when the
 * request could not be sent whole. */
int ctl_job_call(struct ctl_conn *c, const struct ctl_request *req, bool json, int64_t deadline,
                 struct json_object **ret_value);

#endif
