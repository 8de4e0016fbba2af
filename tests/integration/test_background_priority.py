"""Background work runs at background priority (issue 14): the threads that upload slices
(sd-upload), import files (sd-import), flush statistics (sd-stats) and clean the disk
(sd-diskclean) run SCHED_IDLE, as /proc shows them; every other thread (the event loops, the
slice writers) stays at the normal policy, the event loops at nice 0."""
import json
import os
import threading
import time

from helpers import FAST, PATH_COLUMNS

SCHED_OTHER, SCHED_IDLE = 0, 5
BACKGROUND = {"sd-upload", "sd-import", "sd-stats", "sd-diskclean"}


def threads(pid):
    """{tid: (name, nice, policy)} of every live thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # after the name: state is field 3, so field N is fields[N - 3]
        out[int(tid)] = (name, int(fields[19 - 3]), int(fields[41 - 3]))
    return out


def test_background_threads_yield_to_the_data_path(streamd_factory):
    s = streamd_factory(args=FAST)
    url = s.create_source("s1")["http"]["url"]
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id="in.c-b.t")
    stop = threading.Event()

    def post():
        while not stop.is_set():
            body = json.dumps({"id": "x", "text": "y" * 1000})
            assert s.request("POST", url, body, {"Content-Type": "application/json"})[0] == 200

    poster = threading.Thread(target=post)
    poster.start()
    seen = {}
    try:
        # upload and import threads live as long as one step: poll until each was seen
        deadline = time.time() + 60
        while not BACKGROUND <= set(seen) and time.time() < deadline:
            for name, nice, policy in threads(s.proc.pid).values():
                if name in BACKGROUND:
                    seen.setdefault(name, (nice, policy))
                else:  # the slice writers' and template evaluators' threads among them
                    assert policy == SCHED_OTHER, (name, nice, policy)
                    if name.startswith("sd-source"):
                        assert nice == 0, (name, nice)
    finally:
        stop.set()
        poster.join()
    assert set(seen) == BACKGROUND, seen
    for name, prio in seen.items():
        assert prio == (0, SCHED_IDLE), (name, prio)
