/* sd_control.h: the control socket. A running streamd answers the token commands of
 * "streamd token create|list|revoke" on <dataDir>/control.sock, because the embedded state
 * store admits one process at a time; on a stopped data dir the CLI runs the same requests on
 * the store itself (sd_control_exec), so both paths share one implementation.
 *
 * Protocol: the client connects, writes one JSON object and a "\n" (at most
 * SD_CONTROL_MAX_REQUEST bytes), and the server answers one JSON object and a "\n", then
 * closes. Requests and answers:
 *   {"cmd":"token.create","projectId":N,"isAdmin":B,"isMaster":B,"description":S}
 *       -> {"token":RECORD,"secret":"<the new token: shown once, never stored>"}
 *   {"cmd":"token.list","projectId":N}          (N = 0: every project) -> {"tokens":[RECORD]}
 *   {"cmd":"token.revoke","id":"<digits>"}      -> {"token":RECORD}
 * where RECORD is {"id","projectId","isAdmin","isMaster","description","created"}. A refused or
 * failed request answers {"error":CODE,"message":TEXT} with CODE "badRequest", "forbidden",
 * "notFound" or "internal"; a malformed request never affects the server.
 *
 * Security: the socket has mode 0600 (it appears under its final name only with that mode) in
 * the data dir (0700), and the server answers only a peer of its own uid or root
 * (SO_PEERCRED). Changes go to the state store at once; the API looks tokens up there on every
 * request, so a revoked token is refused (401) by the next request. */
#ifndef SD_CONTROL_H
#define SD_CONTROL_H

#include <jansson.h>

struct sd_state;
struct sd_control;

#define SD_CONTROL_SOCKET "control.sock"
#define SD_CONTROL_MAX_REQUEST 65536
#define SD_CONTROL_TIMEOUT_MS 5000 /* the server's wait for a request; the client's is 6x */

/* Runs one request (borrowed) on st. Returns the answer, owned by the caller (never NULL).
 * Any thread; blocks on the state store. */
json_t *sd_control_exec(struct sd_state *st, const json_t *request);

/* Serves requests on <data_dir>/control.sock from a thread of its own, one at a time, until
 * sd_control_stop. st is borrowed and must outlive it. Replaces a socket a killed server left
 * (the caller holds the data dir's state store, so no other server uses it). Returns 0, SD_EINVAL
 * for a path too long for a unix socket, or -errno. */
int sd_control_start(struct sd_state *st, const char *data_dir, struct sd_control **out);

/* Stops serving, joins the thread and removes the socket. Accepts NULL. */
void sd_control_stop(struct sd_control *c);

/* Client: sends request (borrowed) to the server of data_dir and returns its answer in
 * *answer (owned). Returns 0, -ENOENT or -ECONNREFUSED when no server listens, SD_EINVAL for a
 * path too long, SD_EPARSE for a malformed answer, or another -errno. */
int sd_control_call(const char *data_dir, const json_t *request, json_t **answer);

#endif
