/* sd_states.c: validation of file and slice state transitions. Every change of an entity's
 * state in streamd goes through this check, so a bug cannot skip a step of the pipeline. */
#include "storage/sd_states.h"

#include <string.h>

static const char *const sd__file_states[] = {"writing", "closing", "importing", "imported", NULL};
static const char *const sd__slice_states[] = {"writing",  "closing",  "uploading",
                                               "uploaded", "imported", NULL};

static int sd__index(const char *const *states, const char *s)
{
    for (int i = 0; states[i] != NULL; i++) {
        if (strcmp(states[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

int sd_states_transition_ok(const char *kind, const char *from, const char *to)
{
    const char *const *states = strcmp(kind, "file") == 0 ? sd__file_states : sd__slice_states;
    int a = sd__index(states, from);
    int b = sd__index(states, to);

    return a >= 0 && b >= 0 && (b == a || b == a + 1);
}
