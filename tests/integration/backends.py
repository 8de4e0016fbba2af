"""The external peers of the backend tests, each started by the test on loopback and stopped
by PID: a throwaway PostgreSQL 15 cluster (tests/pg/pg_cluster.sh), s3rver behind the
signature-checking proxy (tests/unit/s3_sigv4_proxy.py, botocore) and a throwaway etcd
(tests/etcd/etcd_server.sh), with the streamd options that point at them. A peer that cannot
start fails the test."""
import csv
import io
import os
import re
import subprocess
import time

import pytest

from conftest import TIMEOUT_MULT
from helpers import FAST

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "tests", "pg", "pg_cluster.sh")
S3RVER = os.path.join(ROOT, "tests", ".node", "node_modules", ".bin", "s3rver")
PROXY = os.path.join(ROOT, "tests", "unit", "s3_sigv4_proxy.py")
ETCD = os.path.join(ROOT, "tests", "etcd", "etcd_server.sh")
BUCKET = "streamd-it"
# s3rver knows the access key id S3RVER only (it refuses others); the proxy checks the secret
KEY_ID, SECRET = "S3RVER", "streamd-secret-key-0123"


@pytest.fixture(scope="module")
def pg():
    """A running cluster: its psql base command and a libpq URL for streamd."""
    out = subprocess.run([CLUSTER, "start"], capture_output=True, text=True)
    assert out.returncode == 0, "the PostgreSQL cluster did not start: " + out.stderr
    d, port = out.stdout.split()
    try:
        yield {"port": port, "dir": d,
               "psql": ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port,
                        "-U", "postgres", "-d", "postgres"],
               "url": "postgresql://postgres:s3cr3t-pw@127.0.0.1:%s/postgres" % port}
    finally:
        subprocess.run([CLUSTER, "stop", d], check=True)


def psql_rows(pg, sql):
    """The rows of a query, byte-exact, through COPY ... TO STDOUT (FORMAT csv)."""
    out = subprocess.run(pg["psql"] + ["-c", "COPY (%s) TO STDOUT (FORMAT csv)" % sql],
                         capture_output=True, check=True)
    return [tuple(r) for r in csv.reader(io.StringIO(out.stdout.decode("utf-8"), newline=""))]


def start_server(cmd, pattern, env=None):
    """Starts cmd and returns (process, port) once its output names the port."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    deadline = time.time() + 20 * TIMEOUT_MULT
    while time.time() < deadline:
        line = proc.stdout.readline()
        m = re.search(pattern, line)
        if m:
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise AssertionError("%s did not start (run scripts/install-deps.sh test)" % cmd[0])


class S3Stack:
    """s3rver with a bucket, behind the signature-checking proxy; s3rver can be stopped and
    started again on its port with its data."""

    def __init__(self, tmp_path):
        self.data = tmp_path / "s3rver"
        self.data.mkdir()
        self.log = str(tmp_path / "proxy.log")
        self.server, self.port = self.start_server(0)
        try:
            self.proxy, proxy_port = start_server(
                ["/usr/bin/python3", PROXY, str(self.port), KEY_ID, SECRET, "us-east-1",
                 self.log], r"PORT (\d+)")
        except AssertionError:
            self.stop_server()
            raise
        self.endpoint = "http://127.0.0.1:%d" % proxy_port

    def start_server(self, port):
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.server, self.port = start_server(
            [S3RVER, "-d", str(self.data), "-a", "127.0.0.1", "-p", str(port),
             "--configure-bucket", BUCKET], r"listening on 127\.0\.0\.1:(\d+)", env)
        return self.server, self.port

    def stop_server(self):
        self.server.terminate()
        self.server.wait()

    def close(self):
        self.proxy.terminate()
        self.proxy.wait()
        if self.server.poll() is None:
            self.stop_server()


@pytest.fixture
def s3(tmp_path):
    stack = S3Stack(tmp_path)
    yield stack
    stack.close()


def s3_args(endpoint, secret=SECRET):
    return FAST + ["--set", "staging.backend=s3", "--set", "staging.s3.endpoint=" + endpoint,
                   "--set", "staging.s3.bucket=" + BUCKET, "--set", "staging.s3.prefix=staged",
                   "--set", "staging.s3.accessKeyId=" + KEY_ID,
                   "--set", "staging.s3.secretAccessKey=" + secret,
                   "--set", "staging.s3.forcePathStyle=true"]




class Etcd:
    """A throwaway etcd of `members` members (url lists their client URLs, comma separated);
    halt() and resume() make an outage of all of them with their data kept."""

    def __init__(self, members=1):
        out = subprocess.run([ETCD, "start", str(members)], capture_output=True, text=True)
        assert out.returncode == 0, "etcd did not start: " + out.stderr
        self.dir, self.url = out.stdout.split()

    def halt(self):
        subprocess.run([ETCD, "halt", self.dir], check=True)

    def resume(self):
        subprocess.run([ETCD, "resume", self.dir], check=True)

    def kill_leader(self):
        """kill -9 of the leader; returns its member name for restart()."""
        out = subprocess.run([ETCD, "kill-leader", self.dir], capture_output=True, text=True)
        assert out.returncode == 0, "no etcd leader to kill: " + out.stderr
        return out.stdout.strip()

    def restart(self, member):
        subprocess.run([ETCD, "restart", self.dir, member], check=True)

    def close(self):
        subprocess.run([ETCD, "stop", self.dir], check=True)

    def range(self, prefix, namespace="stream/"):
        """{key without the namespace: JSON value} of every key under prefix (v3 JSON gateway)."""
        import base64
        import json
        import urllib.request
        start = (namespace + prefix).encode()
        end = start[:-1] + bytes([start[-1] + 1])
        body = json.dumps({"key": base64.b64encode(start).decode(),
                           "range_end": base64.b64encode(end).decode()}).encode()
        url = self.url.split(",")[0] + "/v3/kv/range"
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=10) as r:
            kvs = json.loads(r.read()).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode()[len(namespace):]:
                json.loads(base64.b64decode(kv["value"])) for kv in kvs}


@pytest.fixture
def etcd():
    server = Etcd()
    yield server
    server.close()
