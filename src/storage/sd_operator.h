/* sd_operator.h: the storage-coordinator and storage-reader roles of a standalone node: one
 * thread that rotates slices and files on their triggers, uploads closed slices to staging,
 * imports staged files into tables exactly once, retries failures with backoff, and deletes
 * local and staged data once the next level holds it (reference §4.2-§4.6). */
#ifndef SD_OPERATOR_H
#define SD_OPERATOR_H

struct sd_server;
struct sd_operator;

/* Starts the operator thread; srv->storage, srv->staging and srv->tables must be open. */
int sd_operator_start(struct sd_server *srv, struct sd_operator **out);
/* Wakes the operator for an immediate pass (any thread). */
void sd_operator_kick(struct sd_operator *op);
/* Stops and joins the thread after its current step; accepts NULL. */
void sd_operator_stop(struct sd_operator *op);

struct sd_config_bindings;
/* The keys the storage operator reads (for the registry). */
extern const struct sd_config_bindings sd_operator_config_bindings;

#endif
