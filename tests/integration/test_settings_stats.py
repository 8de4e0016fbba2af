"""Settings and statistics endpoints end to end (reference §2.3, §4.1, §5): the 27 per-entity
settings keys of sources and sinks, PATCH tasks with protected and invalid keys, inheritance
from the source, resets with null, persistence; sink statistics per level and per file from
real records through staging into the SQLite table, failed files, and clearing statistics."""
import datetime
import os
import sqlite3
import threading
import time

from conftest import TIMEOUT_MULT
from helpers import PATH_COLUMNS, assert_error, table_rows

SOURCES = "/v1/branches/default/sources"
TABLE = "in.c-bucket.table"
J = {"Content-Type": "application/json"}

USER_KEYS = {
    "storage.level.local.encoding.sync.wait": ("bool", True),
    "storage.level.staging.upload.trigger.count": ("int", 10000),
    "storage.level.staging.upload.trigger.size": ("string", "5MB"),
    "storage.level.staging.upload.trigger.interval": ("string", "30s"),
    "storage.level.target.import.trigger.count": ("int", 50000),
    "storage.level.target.import.trigger.size": ("string", "50MB"),
    "storage.level.target.import.trigger.interval": ("string", "1m0s"),
}
PROTECTED_KEYS = {
    "storage.level.local.encoding.compression.gzip.blockSize": ("string", "256KB"),
    "storage.level.local.encoding.compression.gzip.concurrency": ("int", 0),
    "storage.level.local.encoding.compression.gzip.implementation": ("string", "parallel"),
    "storage.level.local.encoding.compression.gzip.level": ("int", 1),
    "storage.level.local.encoding.compression.type": ("string", "gzip"),
    "storage.level.local.encoding.encoder.concurrency": ("int", 0),
    "storage.level.local.encoding.encoder.type": ("string", "csv"),
    "storage.level.local.encoding.failedChunksThreshold": ("int", 3),
    "storage.level.local.encoding.inputBuffer": ("string", "2MB"),
    "storage.level.local.encoding.maxChunkSize": ("string", "512KB"),
    "storage.level.local.encoding.sync.checkInterval": ("string", "5ms"),
    "storage.level.local.encoding.sync.compressedBytesTrigger": ("string", "256KB"),
    "storage.level.local.encoding.sync.countTrigger": ("int", 10000),
    "storage.level.local.encoding.sync.intervalTrigger": ("string", "50ms"),
    "storage.level.local.encoding.sync.mode": ("string", "disk"),
    "storage.level.local.encoding.sync.uncompressedBytesTrigger": ("string", "1MB"),
    "storage.level.local.volume.assignment.count": ("int", 1),
    "storage.level.local.volume.assignment.preferredTypes": ("[]string", ["default"]),
    "storage.level.target.import.trigger.expiration": ("string", "30m0s"),
    "storage.level.target.import.trigger.slicesCount": ("int", 100),
}
UPLOAD_COUNT = "storage.level.staging.upload.trigger.count"
IMPORT_COUNT = "storage.level.target.import.trigger.count"




def settings_path(source="s1", sink=None):
    return SOURCES + "/" + source + ("/sinks/" + sink if sink else "") + "/settings"


def get_settings(s, source="s1", sink=None):
    status, body = s.api_call("GET", settings_path(source, sink))
    assert status == 200, (status, body)
    assert list(body) == ["settings"], body
    return {item["key"]: item for item in body["settings"]}


def patch_settings(s, settings, source="s1", sink=None, description=None):
    body = {"settings": settings}
    if description is not None:
        body["changeDescription"] = description
    status, task = s.api_call("PATCH", settings_path(source, sink), body)
    assert status == 202, (status, task)
    assert task["type"] == ("api.update.sinkSettings" if sink else "api.update.sourceSettings")
    assert task["status"] == "processing" and task["isFinished"] is False, task
    done = s.wait_task(task)
    assert done["status"] == "success", done
    return done


def make_pipeline(s, columns=None):
    src = s.create_source("s1")
    s.create_sink("s1", "k1", columns or PATH_COLUMNS, table_id=TABLE)
    return src["http"]["url"]


# ---- settings ----

def test_get_settings_of_source_and_sink(streamd):
    make_pipeline(streamd)
    for sink in (None, "k1"):
        items = get_settings(streamd, sink=sink)
        expected = dict(USER_KEYS, **PROTECTED_KEYS)
        assert len(items) == 27
        assert set(items) == set(expected)
        for key, item in items.items():
            typ, default = expected[key]
            assert set(item) <= {"key", "type", "description", "value", "defaultValue",
                                 "overwritten", "protected", "validation"}, item
            assert item["type"] == typ, item
            assert item["defaultValue"] == default and item["value"] == default, item
            assert type(item["value"]) is type(default), item
            assert item["overwritten"] is False, item
            assert item["protected"] is (key in PROTECTED_KEYS), item
            assert isinstance(item["description"], str) and item["description"], item
        # the reference's texts: its config usage and validate tags
        assert items[UPLOAD_COUNT]["validation"] == "required,min=1,max=10000000"
        assert items[UPLOAD_COUNT]["description"] == "Records count to trigger slice upload."
        assert items["storage.level.staging.upload.trigger.interval"]["validation"] == \
            "required,minDuration=1s,maxDuration=30m"
        assert items["storage.level.staging.upload.trigger.size"]["validation"] == \
            "required,minBytes=100B,maxBytes=50MB"
        assert items["storage.level.local.encoding.compression.type"]["validation"] == \
            "required,oneof=none gzip"
        assert items["storage.level.local.encoding.compression.gzip.blockSize"]["validation"] == \
            "required,minBytes=16kB,maxBytes=100MB"
        assert items["storage.level.local.encoding.compression.gzip.level"]["validation"] == \
            "min=1,max=9"
        assert "validation" not in items["storage.level.local.encoding.sync.wait"]
        assert "validation" not in items["storage.level.local.encoding.compression.gzip.concurrency"]


def test_service_config_is_the_default(streamd_factory):
    s = streamd_factory(args=["--set", UPLOAD_COUNT + "=777",
                              "--set", "storage.level.target.import.trigger.interval=90s"])
    make_pipeline(s)
    for sink in (None, "k1"):
        items = get_settings(s, sink=sink)
        assert items[UPLOAD_COUNT]["defaultValue"] == 777
        assert items[UPLOAD_COUNT]["value"] == 777
        assert items["storage.level.target.import.trigger.interval"]["value"] == "1m30s"


def test_settings_unknown_entities_and_methods(streamd):
    status, body = streamd.api_call("GET", settings_path("nope"))
    assert_error(status, body, 404, "stream.api.sourceNotFound", "nope")
    status, body = streamd.api_call("PATCH", settings_path("nope"), {"settings": []})
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    streamd.create_source("s1")
    status, body = streamd.api_call("GET", settings_path("s1", "nope"))
    assert_error(status, body, 404, "stream.api.sinkNotFound", "nope")
    status, body = streamd.api_call("PATCH", settings_path("s1", "nope"), {"settings": []})
    assert_error(status, body, 404, "stream.api.sinkNotFound")
    status, headers, _ = streamd.request("POST", streamd.api + settings_path(), b"{}",
                                         {"X-StorageApi-Token": streamd.token})
    assert status == 405 and headers["allow"] == "GET, PATCH"
    status, body = streamd.api_call("GET", settings_path(), token="wrong-token-0123456789")
    assert_error(status, body, 401, "stream.api.unauthorized")


def test_patch_sink_and_source_settings(streamd):
    make_pipeline(streamd)
    done = patch_settings(streamd, [{"key": UPLOAD_COUNT, "value": 5},
                                    {"key": IMPORT_COUNT, "value": 20}], sink="k1")
    assert done["result"] == "Sink settings have been updated successfully."
    assert done["outputs"]["sinkId"] == "k1" and done["outputs"]["sourceId"] == "s1"
    items = get_settings(streamd, sink="k1")
    assert items[UPLOAD_COUNT]["value"] == 5 and items[UPLOAD_COUNT]["overwritten"] is True
    assert items[UPLOAD_COUNT]["defaultValue"] == 10000
    assert items[IMPORT_COUNT]["value"] == 20 and items[IMPORT_COUNT]["overwritten"] is True
    assert sum(1 for i in items.values() if i["overwritten"]) == 2
    # the source is untouched
    assert not any(i["overwritten"] for i in get_settings(streamd).values())
    status, sink = streamd.api_call("GET", SOURCES + "/s1/sinks/k1")
    assert sink["version"]["number"] == 2
    assert sink["version"]["description"] == "Updated settings."

    # source settings: the sink inherits them as its default, its own override wins
    done = patch_settings(streamd, [{"key": IMPORT_COUNT, "value": 40},
                                    {"key": "storage.level.staging.upload.trigger.size",
                                     "value": "10MB"},
                                    {"key": "storage.level.local.encoding.sync.wait",
                                     "value": False}],
                          description="Tune the source.")
    assert done["result"] == "Source settings have been updated successfully."
    items = get_settings(streamd)
    assert items[IMPORT_COUNT]["value"] == 40 and items[IMPORT_COUNT]["defaultValue"] == 50000
    assert items["storage.level.local.encoding.sync.wait"]["value"] is False
    status, src = streamd.api_call("GET", SOURCES + "/s1")
    assert src["version"]["number"] == 2
    assert src["version"]["description"] == "Tune the source."
    items = get_settings(streamd, sink="k1")
    assert items[IMPORT_COUNT]["value"] == 20 and items[IMPORT_COUNT]["defaultValue"] == 40
    assert items[IMPORT_COUNT]["overwritten"] is True
    size = items["storage.level.staging.upload.trigger.size"]
    assert (size["value"], size["defaultValue"], size["overwritten"]) == ("10MB", "10MB", False)
    assert items["storage.level.local.encoding.sync.wait"]["value"] is False

    # canonical spellings of sizes and durations
    patch_settings(streamd, [{"key": "storage.level.staging.upload.trigger.interval",
                              "value": "90s"},
                             {"key": "storage.level.target.import.trigger.size",
                              "value": 1048576}], sink="k1")
    items = get_settings(streamd, sink="k1")
    assert items["storage.level.staging.upload.trigger.interval"]["value"] == "1m30s"
    assert items["storage.level.target.import.trigger.size"]["value"] == "1MB"
    # durations as Go prints them: a fraction of a second, and every unit below the largest
    patch_settings(streamd, [{"key": "storage.level.staging.upload.trigger.interval",
                              "value": "1500ms"},
                             {"key": "storage.level.target.import.trigger.interval",
                              "value": "3600s"}], sink="k1")
    items = get_settings(streamd, sink="k1")
    assert items["storage.level.staging.upload.trigger.interval"]["value"] == "1.5s"
    assert items["storage.level.target.import.trigger.interval"]["value"] == "1h0m0s"

    # null resets the sink's override: the inherited source value is back
    patch_settings(streamd, [{"key": IMPORT_COUNT, "value": None}, {"key": UPLOAD_COUNT}],
                   sink="k1")
    items = get_settings(streamd, sink="k1")
    assert items[IMPORT_COUNT]["value"] == 40 and items[IMPORT_COUNT]["overwritten"] is False
    assert items[UPLOAD_COUNT]["value"] == 10000 and items[UPLOAD_COUNT]["overwritten"] is False
    status, sink = streamd.api_call("GET", SOURCES + "/s1/sinks/k1")
    assert sink["version"]["number"] == 5


def test_patch_errors(streamd):
    make_pipeline(streamd)
    path = settings_path(sink="k1")
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": UPLOAD_COUNT, "value": 5},
        {"key": "storage.level.local.encoding.compression.gzip.blockSize", "value": "1MB"}]})
    assert_error(status, body, 403, "stream.api.forbidden", "Cannot modify protected keys",
                 '"storage.level.local.encoding.compression.gzip.blockSize"')
    status, body = streamd.api_call("PATCH", settings_path(), {"settings": [
        {"key": "storage.level.local.volume.assignment.count", "value": 2}]})
    assert_error(status, body, 403, "stream.api.forbidden",
                 "storage.level.local.volume.assignment.count")
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": UPLOAD_COUNT, "value": 0}]})
    assert_error(status, body, 400, "stream.api.badRequest", UPLOAD_COUNT, "between 1 and")
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": "storage.level.staging.upload.trigger.interval", "value": "soon"},
        {"key": IMPORT_COUNT, "value": 10000001},
        {"key": "storage.level.target.import.trigger.interval", "value": "10s"}]})
    # every error at once, in the order of the reference's config structs
    assert_error(status, body, 400, "stream.api.badRequest")
    assert body["message"] == (
        '- Invalid "storage.level.staging.upload.trigger.interval": time: invalid duration "soon".\n'
        '- Invalid "%s" value "10000001": must be between 1 and 10000000.\n'
        '- Invalid "storage.level.target.import.trigger.interval" value "10s": must be between '
        '30s and 24h.' % IMPORT_COUNT), body
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": "storage.level.staging.upload.trigger.interval", "value": "5"}]})
    assert_error(status, body, 400, "stream.api.badRequest")
    assert body["message"] == ('Invalid "storage.level.staging.upload.trigger.interval": '
                               'time: missing unit in duration "5".'), body
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": "storage.level.staging.upload.trigger.interval", "value": "1.5.5s"}]})
    assert_error(status, body, 400, "stream.api.badRequest")
    assert body["message"] == ('Invalid "storage.level.staging.upload.trigger.interval": '
                               'time: missing unit in duration "1.5.5s".'), body
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": "storage.level.staging.upload.trigger.size", "value": "a very long bad size value"},
        {"key": UPLOAD_COUNT, "value": "12"},
        {"key": "storage.level.staging.upload.trigger.interval", "value": "5sec"}]})
    assert_error(status, body, 400, "stream.api.badRequest")
    assert body["message"] == (
        '- Invalid "storage.level.staging.upload.trigger.size" value "a very long bad size…": '
        'invalid syntax.\n'
        '- Invalid "storage.level.staging.upload.trigger.interval": time: unknown unit "sec" in '
        'duration "5sec".'), body
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": UPLOAD_COUNT, "value": 1}, {"key": UPLOAD_COUNT, "value": 2}]})
    assert_error(status, body, 400, "stream.api.badRequest")
    assert body["message"] == 'Key "%s" is defined multiple times.' % UPLOAD_COUNT, body
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": "storage.level.local.encoding.sync.wait", "value": "maybe"},
        {"key": UPLOAD_COUNT, "value": 1.5}]})
    assert_error(status, body, 400, "stream.api.badRequest")
    assert body["message"] == (
        '- Invalid "storage.level.local.encoding.sync.wait" value "maybe": invalid syntax.\n'
        '- Invalid "%s" value: found type "float64", expected "uint64".' % UPLOAD_COUNT), body
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": "no.such.key", "value": 1}, {"key": "a.key", "value": 1},
        {"key": "storage.level.local.encoding.compression.gzip.blockSize", "value": "1MB"}]})
    assert_error(status, body, 400, "stream.api.badRequest")
    # unknown keys sorted; a protected key is refused only after the values bind
    assert body["message"] == 'Key not found: "a.key", "no.such.key".', body
    # a service-only key is not a settings key
    status, body = streamd.api_call("PATCH", path, {"settings": [
        {"key": "storage.level.staging.upload.minInterval", "value": "5s"}]})
    assert_error(status, body, 400, "stream.api.badRequest",
                 "storage.level.staging.upload.minInterval")
    status, body = streamd.api_call("PATCH", path, {"settings": {"a": 1}})
    assert_error(status, body, 400, "stream.api.badRequest", "settings")
    status, body = streamd.api_call("PATCH", path, {"settings": [{"value": 1}]})
    assert_error(status, body, 400, "stream.api.missingField", "key")
    status, body = streamd.api_call("PATCH", path, "not json")
    assert_error(status, body, 400, "stream.api.badRequest")
    status, body = streamd.api_call("PATCH", path, {"settings": [], "changeDescription": 5})
    assert_error(status, body, 400, "stream.api.badRequest", "changeDescription")
    # nothing was changed by the refused patches
    assert not any(i["overwritten"] for i in get_settings(streamd, sink="k1").values())
    status, sink = streamd.api_call("GET", SOURCES + "/s1/sinks/k1")
    assert sink["version"]["number"] == 1


def test_settings_survive_restart(streamd):
    make_pipeline(streamd)
    patch_settings(streamd, [{"key": IMPORT_COUNT, "value": 30}])
    patch_settings(streamd, [{"key": UPLOAD_COUNT, "value": 7},
                             {"key": "storage.level.staging.upload.trigger.interval",
                              "value": "45s"}], sink="k1")
    before_src, before_sink = get_settings(streamd), get_settings(streamd, sink="k1")
    streamd.restart()
    assert get_settings(streamd) == before_src
    assert get_settings(streamd, sink="k1") == before_sink
    assert before_sink[UPLOAD_COUNT]["value"] == 7
    assert before_sink[IMPORT_COUNT]["value"] == 30


# ---- statistics ----

def stats_path(sink="k1", what="total", source="s1"):
    return SOURCES + "/" + source + "/sinks/" + sink + "/statistics/" + what


def get_total(s, sink="k1"):
    status, body = s.api_call("GET", stats_path(sink))
    assert status == 200, (status, body)
    assert set(body) == {"total", "levels"}, body
    assert set(body["levels"]) <= {"local", "staging", "target"}, body
    for level in list(body["levels"].values()) + [body["total"]]:
        assert {"recordsCount", "compressedSize", "uncompressedSize"} <= set(level), body
        assert set(level) <= {"recordsCount", "compressedSize", "uncompressedSize",
                              "firstRecordAt", "lastRecordAt"}, body
    for level in body["levels"].values():
        assert level["recordsCount"] > 0, body
    return body


def get_files(s, sink="k1", failed=None):
    path = stats_path(sink, "files") + ("" if failed is None else "?failedFiles=" + failed)
    status, body = s.api_call("GET", path)
    assert status == 200, (status, body)
    assert list(body) == ["files"], body
    for f in body["files"]:
        assert f["state"] in ("writing", "closing", "importing", "imported"), f
        assert set(f) <= {"state", "openedAt", "closingAt", "importingAt", "importedAt",
                          "retryAttempt", "retryReason", "retryAfter", "statistics"}, f
        assert set(f["statistics"]) == {"total", "levels"}, f
    return body["files"]


def level_count(body, level):
    return body["levels"].get(level, {}).get("recordsCount", 0)


def wait_for(what, predicate, timeout=30):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while True:
        value = what()
        if predicate(value):
            return value
        assert time.time() < deadline, "condition not reached: %r" % (value,)
        time.sleep(0.2)


def post_records(s, url, ids, threads=20):
    """POSTs one JSON record per id from several threads (so all land in one slice quickly)."""
    failures = []

    def run(chunk):
        for rid in chunk:
            status, _, data = s.request("POST", url, '{"id": "%s", "text": "t-%s"}' % (rid, rid), J)
            if status != 200:
                failures.append((status, data))

    workers = [threading.Thread(target=run, args=(ids[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not failures, failures[:3]




def utc_now_iso():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


STATS_ARGS = ["--set", "storage.level.staging.upload.minInterval=1s",
              "--set", "storage.level.target.import.minInterval=1s",
              "--set", "storage.retry.initialInterval=100ms"]


def test_statistics_end_to_end(streamd_factory):
    s = streamd_factory(args=STATS_ARGS)
    url = make_pipeline(s)
    empty = get_total(s)
    assert empty["levels"] == {} and empty["total"]["recordsCount"] == 0
    patch_settings(s, [{"key": UPLOAD_COUNT, "value": 10}, {"key": IMPORT_COUNT, "value": 30}],
                   sink="k1")
    post_records(s, url, ["a%d" % i for i in range(100)])

    body = wait_for(lambda: get_total(s), lambda b: level_count(b, "target") == 100)
    assert body["total"]["recordsCount"] == 100
    assert body["total"]["compressedSize"] > 0 and body["total"]["uncompressedSize"] > 0
    target = body["levels"]["target"]
    assert target["compressedSize"] > 0 and target["uncompressedSize"] > 0
    assert target["firstRecordAt"] <= target["lastRecordAt"]
    assert "local" not in body["levels"] and "staging" not in body["levels"]

    files = get_files(s)
    imported = [f for f in files if f["state"] == "imported"]
    assert imported, files
    def file_records(f):
        total = f["statistics"]["total"]  # null for a file without records, as the reference
        assert total is None or total["recordsCount"] > 0, f
        return total["recordsCount"] if total else 0

    assert sum(file_records(f) for f in imported) == 100
    for f in imported:
        assert f["openedAt"] <= f["closingAt"] <= f["importingAt"] <= f["importedAt"], f
        assert f["statistics"]["levels"].get("target", {}).get("recordsCount", 0) == \
            file_records(f), f
    # imported files first, then the others, each group by openedAt
    states = [f["state"] == "imported" for f in files]
    assert states == sorted(states, reverse=True), files
    assert [f["openedAt"] for f in imported] == sorted(f["openedAt"] for f in imported)
    assert get_files(s, failed="true") == []
    # (the statistics of the open file may grow meanwhile: its gzip header is flushed later)
    assert [(f["state"], f["openedAt"]) for f in get_files(s, failed="false")] == \
        [(f["state"], f["openedAt"]) for f in files]
    rows = table_rows(s.data_dir, TABLE)
    assert len(rows) == 100
    assert sorted(r[1] for r in rows) == sorted("a%d" % i for i in range(100))

    # clear: totals drop to zero and the files opened before it are hidden
    before_clear = utc_now_iso()
    status, _, data = s.request("DELETE", s.api + stats_path("k1", "clear"),
                                headers={"X-StorageApi-Token": s.token})
    assert (status, data) == (200, b"")
    body = get_total(s)
    assert body["total"]["recordsCount"] == 0 and body["levels"] == {}, body
    assert get_files(s) == []

    # records after the clear are counted (exactly once while they move between levels)
    post_records(s, url, ["b%d" % i for i in range(30)])
    seen = []

    def total_after():
        b = get_total(s)
        seen.append(b["total"]["recordsCount"])
        return b

    body = wait_for(total_after, lambda b: level_count(b, "target") == 30)
    assert body["total"]["recordsCount"] == 30
    assert max(seen) == 30, seen
    assert len(table_rows(s.data_dir, TABLE)) == 130
    for f in get_files(s):
        assert f["openedAt"] > before_clear, f

    # the reset survives a restart
    s.restart()
    assert get_total(s)["total"]["recordsCount"] == 30

    # clearing the source clears its sinks
    status, body = s.api_call("DELETE", SOURCES + "/s1/statistics/clear")
    assert (status, body) == (200, None)
    body = get_total(s)
    assert body["total"]["recordsCount"] == 0 and body["levels"] == {}


def test_failed_files_are_listed(streamd_factory):
    s = streamd_factory(args=STATS_ARGS + [
        "--set", "storage.retry.maxInterval=500ms",
        "--set", "storage.level.staging.operator.sliceUploadCheckInterval=500ms",
        "--set", "storage.level.target.operator.fileImportCheckInterval=500ms"])
    url = make_pipeline(s)
    patch_settings(s, [{"key": UPLOAD_COUNT, "value": 1}, {"key": IMPORT_COUNT, "value": 3}],
                   sink="k1")
    # The table changes under the sink: imports fail until it is dropped (and recreated).
    db = sqlite3.connect(os.path.join(s.data_dir, "tables", "project-1.sqlite"), timeout=10)
    db.execute('DROP TABLE "%s"' % TABLE)
    db.execute('CREATE TABLE "%s" ("x" TEXT)' % TABLE)
    db.commit()
    db.close()
    post_records(s, url, ["f%d" % i for i in range(3)], threads=3)

    failed = wait_for(lambda: get_files(s, failed="true"), lambda f: len(f) > 0)
    assert len(failed) == 1, failed
    f = failed[0]
    assert f["state"] == "importing", f
    assert f["retryAttempt"] >= 1 and f["retryReason"] and f["retryAfter"], f
    assert f["statistics"]["total"]["recordsCount"] == 3, f
    assert f["statistics"]["levels"]["staging"]["recordsCount"] == 3, f
    # without the filter: files without a retry reason come before the failed one
    files = get_files(s)
    assert files[-1]["openedAt"] == f["openedAt"], files
    assert all("retryReason" not in g for g in files[:-1]), files
    body = get_total(s)
    assert level_count(body, "staging") == 3 and level_count(body, "target") == 0

    db = sqlite3.connect(os.path.join(s.data_dir, "tables", "project-1.sqlite"), timeout=10)
    db.execute('DROP TABLE "%s"' % TABLE)
    db.commit()
    db.close()
    wait_for(lambda: get_total(s), lambda b: level_count(b, "target") == 3)
    assert get_files(s, failed="true") == []
    assert sorted(r[1] for r in table_rows(s.data_dir, TABLE)) == ["f0", "f1", "f2"]


def test_statistics_errors_and_source_settings_rotate(streamd):
    for what in ("total", "files"):
        status, body = streamd.api_call("GET", stats_path("k1", what, source="nope"))
        assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = streamd.api_call("DELETE", SOURCES + "/nope/statistics/clear")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    make_pipeline(streamd)
    for method, what in (("GET", "total"), ("GET", "files"), ("DELETE", "clear")):
        status, body = streamd.api_call(method, stats_path("nope", what))
        assert_error(status, body, 404, "stream.api.sinkNotFound", "nope")
    status, body = streamd.api_call("GET", stats_path("k1", "files") + "?failedFiles=maybe")
    assert_error(status, body, 400, "stream.api.invalidFieldType")
    assert body["message"] == 'Invalid value "maybe" for "failedFiles", must be a boolean.', body
    # as Go's strconv.ParseBool: "T" is true
    assert get_files(streamd, failed="T") == []
    status, body = streamd.api_call("POST", stats_path("k1", "total"))
    assert_error(status, body, 405, "stream.api.methodNotAllowed")
    status, body = streamd.api_call("GET", stats_path("k1", "clear"))
    assert_error(status, body, 405, "stream.api.methodNotAllowed")
    status, body = streamd.api_call("GET", stats_path("k1", "nope"))
    assert_error(status, body, 404, "stream.api.endpointNotFound")

    # a new sink has one writing file without records
    files = get_files(streamd)
    assert len(files) == 1 and files[0]["state"] == "writing", files
    # as the reference: no statistics of a file without records
    assert files[0]["statistics"] == {"total": None, "levels": {}}, files
    # changing the source's settings rotates the file of each of its sinks
    streamd.create_sink("s1", "k2", PATH_COLUMNS, table_id=TABLE)
    patch_settings(streamd, [{"key": IMPORT_COUNT, "value": 100}])
    for sink in ("k1", "k2"):
        files = get_files(streamd, sink=sink)
        assert len(files) == 2, files
        assert [f["state"] for f in files].count("writing") == 1, files
    # and a sink's settings rotate that sink only
    patch_settings(streamd, [{"key": IMPORT_COUNT, "value": 99}], sink="k2")
    assert len(get_files(streamd, sink="k1")) == 2
    assert len(get_files(streamd, sink="k2")) == 3
