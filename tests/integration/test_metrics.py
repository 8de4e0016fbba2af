"""/metrics end to end: the exposition passes `promtool check metrics`, the process metrics are
real, and the reference's record, operation and task metrics count what happened."""
import json
import re
import shutil
import subprocess
import time

from helpers import FAST, PATH_COLUMNS, csv_row

# promtool lints the reference's own names (its OpenTelemetry exporter appends the unit as
# written: "ms" -> _milliseconds, "B" -> _B); these exact complaints are expected, any other
# complaint fails the test.
REFERENCE_NAME_LINTS = {
    'use base unit "seconds" instead of "milliseconds"',
    "metric names should not contain abbreviated units",
}


def scrape(s):
    status, headers, data = s.request("GET", s.metrics + "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return data.decode()


def promtool_problems(text):
    """promtool's complaints about text, minus the reference-name lints; [] when clean."""
    assert shutil.which("promtool"), "promtool missing: run scripts/install-deps.sh test"
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    out = (r.stdout + r.stderr).decode()
    problems = []
    for line in out.splitlines():
        if not line.strip():
            continue
        if any(line.endswith(" " + lint) for lint in REFERENCE_NAME_LINTS) and \
                line.split(" ", 1)[0].startswith("keboola_go_"):
            continue
        problems.append(line)
    if r.returncode not in (0, 3):  # 3 = lint problems only; anything else is a parse error
        problems.append("promtool exit %d" % r.returncode)
    return problems


def value(text, name, **labels):
    """The sample of name whose labels include labels (exactly one must match)."""
    found = []
    for line in text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            found.append(float(m.group(4)))
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_promtool_accepts_and_process_metrics_are_real(streamd):
    text = scrape(streamd)
    assert promtool_problems(text) == []
    for name in ("process_cpu_seconds_total", "process_open_fds", "process_max_fds",
                 "process_virtual_memory_bytes", "process_resident_memory_bytes",
                 "process_threads", "keboola_go_stream_writer_file_descriptor_used_fd",
                 "keboola_go_stream_writer_file_descriptor_total_fd"):
        assert value(text, name) > 0, name
    assert value(text, "process_threads") >= 3  # loops, writer pool, operator
    assert abs(value(text, "process_start_time_seconds") - time.time()) < 120
    assert value(text, "target_info", service_name="stream") == 1
    assert value(text, "keboola_go_stream_writer_disk_total_B", volume_type="default") > 0


def test_thousand_records_are_counted(streamd):
    src = streamd.create_source("s1")
    streamd.create_sink("s1", "k1", PATH_COLUMNS)
    url = src["http"]["url"]
    source_bytes = sink_bytes = 0
    for i in range(1000):
        body = json.dumps({"id": "id-%04d" % i, "text": "x" * (i % 7)})
        status, _, data = streamd.request("POST", url, body, {"Content-Type": "application/json"})
        assert (status, data) == (200, b"OK"), (i, status, data)
        source_bytes += len(body)
        sink_bytes += len(csv_row([body, "id-%04d" % i, "x" * (i % 7)]).encode())
    text = scrape(streamd)
    assert promtool_problems(text) == []
    key = {"project_id": "1", "source_id": "s1"}
    assert value(text, "keboola_go_stream_source_record_duration_milliseconds_count",
                 has_error="false", source_type="http", **key) == 1000
    assert value(text, "keboola_go_stream_source_record_duration_milliseconds_bucket",
                 has_error="false", le="+Inf", **key) == 1000
    assert value(text, "keboola_go_stream_source_in_bytes_B_total", has_error="false",
                 **key) == source_bytes
    # durations are real: each record waited for its fdatasync, none for seconds
    total_ms = value(text, "keboola_go_stream_source_record_duration_milliseconds_sum",
                     has_error="false", **key)
    assert 0 < total_ms < 1000 * 1000
    assert value(text, "keboola_go_stream_sink_record_duration_milliseconds_count",
                 sink_id="k1", error_type="", sink_type="table", **key) == 1000
    assert value(text, "keboola_go_stream_sink_encoded_bytes_B_total", sink_id="k1",
                 error_type="", **key) == sink_bytes
    # the API's two create tasks (source, sink) ran and finished
    tasks = re.findall(r'^keboola_go_task_duration_milliseconds_count\{task_type="([^"]+)",'
                       r'is_success="true"\} 1$', text, re.M)
    assert len(tasks) == 2, text
    for task_type in tasks:
        assert value(text, "keboola_go_task_running", task_type=task_type) == 0


def test_failed_records_carry_the_error_labels(streamd):
    src = streamd.create_source("s1")
    streamd.create_sink("s1", "k1", [{"type": "path", "name": "id", "path": "id"}])
    url = src["http"]["url"]
    for _ in range(3):  # the path is missing: the sink refuses the record
        status, _, _ = streamd.request("POST", url, "{}", {"Content-Type": "application/json"})
        assert status == 500
    text = scrape(streamd)
    assert promtool_problems(text) == []
    assert value(text, "keboola_go_stream_source_record_duration_milliseconds_count",
                 source_id="s1", has_error="true") == 3
    sink_errors = re.findall(r'^keboola_go_stream_sink_record_duration_milliseconds_count\{'
                             r'[^}]*sink_id="k1",error_type="([^"]+)"[^}]*\} 3$', text, re.M)
    assert sink_errors == ["genericError"], text  # stream.in.genericError without the prefix


def test_operations_are_measured(streamd_factory):
    s = streamd_factory(args=FAST)
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS)
    for i in range(3):
        body = json.dumps({"id": "id-%d" % i})
        assert s.request("POST", src["http"]["url"], body,
                         {"Content-Type": "application/json"})[0] == 200
    deadline = time.time() + 30
    key = {"project_id": "1", "source_id": "s1", "sink_id": "k1", "error_type": ""}
    while True:
        text = scrape(s)
        # import.trigger.count=1: every rotation is a file rotation (no slicerotation)
        done = [op for op in ("sliceupload", "filerotation", "fileimport")
                if re.search(r'^keboola_go_stream_operation_duration_milliseconds_count\{[^}]*'
                             r'operation="%s"[^}]*\} [1-9]' % op, text, re.M)]
        if len(done) == 3 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert done == ["sliceupload", "filerotation", "fileimport"], text
    assert promtool_problems(text) == []
    assert value(text, "keboola_go_stream_operation_bytes_compressed_B_total",
                 operation="sliceupload", **key) > 0


def test_health_on_every_listener(streamd):
    # readiness as the reference (`OK\n`), liveness as ours, on the data and metrics listeners;
    # the API answers the reference's /health-check
    for base in (streamd.source, streamd.metrics, streamd.api):
        assert streamd.request("GET", base + "/health-check")[::2] == (200, b"OK\n"), base
    for base in (streamd.source, streamd.metrics):
        assert streamd.request("GET", base + "/livez")[::2] == (200, b"OK\n"), base
    status, _, data = streamd.request("GET", streamd.metrics + "/nope")
    assert status == 404 and json.loads(data)["error"] == "stream.metrics.routeNotFound"
