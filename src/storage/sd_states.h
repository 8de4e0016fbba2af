/* sd_states.h: the file and slice state machines of the reference (§4.2). */
#ifndef SD_STATES_H
#define SD_STATES_H

/* 1 if an entity of kind "file" or "slice" may move from state `from` to `to`:
 *   file:  writing -> closing -> importing -> imported
 *   slice: writing -> closing -> uploading -> uploaded -> imported
 * Staying in the same state (a retry record) is allowed. */
int sd_states_transition_ok(const char *kind, const char *from, const char *to);

#endif
