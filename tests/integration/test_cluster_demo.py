"""scripts/cluster-demo.sh run for real, as a user runs it: it starts etcd, PostgreSQL, s3rver
and four streamd nodes; a source and sink created through the printed api URL take records on
both printed data nodes, which reach PostgreSQL; SIGTERM to the script stops every process it
started and removes the etcd and PostgreSQL data."""
import glob
import json
import os
import re
import signal
import subprocess
import time

from conftest import BIN, TIMEOUT_MULT, http_request
from backends import ROOT
from helpers import PATH_COLUMNS
from test_backends_combined import wait_psql

SCRIPT = os.path.join(ROOT, "scripts", "cluster-demo.sh")


def banner(proc):
    """The script's banner up to READY, as text; fails if the script exits first."""
    lines = []
    deadline = time.time() + 60 * TIMEOUT_MULT
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip() == "READY":
            return "".join(lines)
        lines.append(line)
    raise AssertionError("the demo did not get ready: " + "".join(lines) + proc.stderr.read())


def field(text, pattern):
    m = re.search(pattern, text, re.M)
    assert m, "no %r in the banner:\n%s" % (pattern, text)
    return m.group(1)


def api_task(api, token, path, body):
    headers = {"X-StorageApi-Token": token, "Content-Type": "application/json"}
    status, _, out = http_request(api + path, "POST", json.dumps(body), headers)
    assert status == 202, (status, out)
    task = json.loads(out)
    deadline = time.time() + 20 * TIMEOUT_MULT
    while not task["isFinished"]:
        assert time.time() < deadline, task
        time.sleep(0.05)
        status, _, out = http_request(task["url"], "GET", None, headers)
        task = json.loads(out)
    assert task["status"] == "success", task


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(pid):
    """The PIDs of pid's direct children, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_cluster_demo_script_runs_a_cluster_and_stops_it(tmp_path):
    demo_dir = str(tmp_path / "demo")
    env = dict(os.environ, DEMO_DIR=demo_dir, STREAMD_BIN=BIN)
    env.pop("STREAM_ADMIN_TOKEN", None)
    proc = subprocess.Popen([SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        text = banner(proc)
        api = field(text, r"^  api +(\S+)")
        data = [field(text, r"^  data node 1 +(\S+)"), field(text, r"^  data node 2 +(\S+)")]
        token = field(text, r"^  admin token +(\S+)")
        pg_url = field(text, r"^  PostgreSQL +(\S+)")
        etcd_dir = field(text, r"^  etcd .*\(data in (\S+)\)")
        pg_dir = field(text, r"^  PostgreSQL .*\(data in (\S+)\)")
        # everything the script started: its children (nodes, s3rver), etcd and the postmaster
        members = glob.glob(os.path.join(etcd_dir, "*", "pid"))  # one per etcd member
        assert len(members) == 1, members
        # four nodes and s3rver; a short-lived child (the banner's cat) may still be exiting
        deadline = time.time() + 10
        while len(children(proc.pid)) != 5 and time.time() < deadline:
            time.sleep(0.1)
        with open(members[0]) as f:
            started = children(proc.pid) + [int(f.read())]
        with open(os.path.join(pg_dir, "data", "postmaster.pid")) as f:
            started.append(int(f.readline()))
        assert len(started) == 7 and all(alive(p) for p in started), started

        api_task(api, token, "/v1/branches/default/sources",
                 {"sourceId": "s1", "name": "s1", "type": "http"})
        api_task(api, token, "/v1/branches/default/sources/s1/sinks",
                 {"sinkId": "k1", "name": "k1", "type": "table",
                  "table": {"type": "keboola", "tableId": "in.c-demo.events",
                            "mapping": {"columns": PATH_COLUMNS}}})
        status, _, out = http_request(api + "/v1/branches/default/sources/s1", "GET", None,
                                      {"X-StorageApi-Token": token})
        url = json.loads(out)["http"]["url"]
        assert status == 200 and url.startswith(data[0]), (status, url)
        sent = set()
        for n, base in enumerate(data):
            for i in range(5):
                rid = "d%d-%d" % (n + 1, i)
                deadline = time.time() + 10 * TIMEOUT_MULT
                while True:  # a data node routes the new sink within ~100 ms
                    status, _, _ = http_request(base + url[len(data[0]):], "POST",
                                                json.dumps({"id": rid}),
                                                {"Content-Type": "application/json"})
                    if status == 200:
                        break
                    assert time.time() < deadline, (base, status)
                    time.sleep(0.05)
                sent.add(rid)
        psql = {"psql": ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", pg_url]}
        rows = wait_psql(psql, 'SELECT "id" FROM "in.c-demo"."events"',
                         lambda r: sent <= {row[0] for row in r}, timeout=60)
        assert {r[0] for r in rows} == sent

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60 * TIMEOUT_MULT) == 143, proc.stderr.read()
        assert not [p for p in started if alive(p)], "a process outlived the demo"
        assert not os.path.exists(etcd_dir) and not os.path.exists(pg_dir)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
