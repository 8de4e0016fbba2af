"""A record's answer waits for the writer's disk sync (issue 13 acceptance): streamd runs with the
sync-hold shim (conftest.SyncHold), and while the fdatasync of its slice file is held a POSTed
record gets no answer; it gets its 200 once the sync is let go. With sync.wait=false the answer
(202) does not wait for the sync."""
import threading
import time

from conftest import TIMEOUT_MULT, SyncHold, http_request
from helpers import PATH_COLUMNS


def pipeline(streamd_factory, hold, args=()):
    """streamd with the shim (not holding yet), a source and a sink, and one record written, so
    the slice file is open and the next held sync is a record's; returns the source's URL."""
    s = streamd_factory(env=hold.env(), args=list(args))
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS)
    url = src["http"]["url"]
    status, _, _ = post(url, "warm-up")
    assert status in (200, 202), status
    return url


def post(url, rid):
    return http_request(url, "POST", {"id": rid, "text": "t"}, timeout=60)


def post_in_thread(url, rid):
    """Posts one record in a thread; the returned dict gets "answer" (or "error")."""
    result = {}

    def run():
        try:
            result["answer"] = post(url, rid)
        except Exception as e:  # noqa: BLE001 (the test reports it)
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def wait_slice_sync_held(hold):
    """Waits until the shim holds an fdatasync of a slice file; returns the held calls."""
    deadline = time.time() + 5 * TIMEOUT_MULT
    while not any(line.startswith("fdatasync ") and "slice-" in line for line in hold.held()):
        assert time.time() < deadline, "no slice fdatasync was attempted: %r" % hold.held()
        time.sleep(0.01)
    return hold.held()


def test_record_answered_only_after_the_writer_sync(streamd_factory, tmp_path):
    hold = SyncHold(tmp_path)
    url = pipeline(streamd_factory, hold)
    hold.engage()
    try:
        t, result = post_in_thread(url, "r1")
        wait_slice_sync_held(hold)
        t.join(1.0)  # a second with the sync held: no answer may come
        assert not result, "answered while its sync was held: %r" % result
    finally:
        hold.release()
    t.join(5 * TIMEOUT_MULT)
    assert "answer" in result, "no answer within 5 s of the sync: %r" % result
    status, _, body = result["answer"]
    assert (status, body) == (200, b"OK"), result


def test_no_sync_wait_answers_while_the_sync_is_held(streamd_factory, tmp_path):
    hold = SyncHold(tmp_path)
    url = pipeline(streamd_factory, hold,
                   ["--set", "storage.level.local.encoding.sync.wait=false"])
    hold.engage()
    try:
        first = post(url, "r1")
        wait_slice_sync_held(hold)
        t, result = post_in_thread(url, "r2")  # while the sync of r1 is held
        t.join(1.0 * TIMEOUT_MULT)
        assert first[0] == 202, first
        assert "answer" in result and result["answer"][0] == 202, result
    finally:
        hold.release()
