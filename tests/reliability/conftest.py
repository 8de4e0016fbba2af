"""pytest harness of the long fault tests (`make reliability`): the integration harness (real
binary, temp data dirs, HTTP helpers), a figures file per test under results/, and what the
cluster fault tests share (free ports, waiting for the acknowledged records in PostgreSQL)."""
import importlib.util
import json
import os
import socket
import sys
import time

import pytest

_INTEGRATION = os.path.join(os.path.dirname(__file__), "..", "integration")
sys.path.insert(0, _INTEGRATION)
_spec = importlib.util.spec_from_file_location("integration_conftest",
                                               os.path.join(_INTEGRATION, "conftest.py"))
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)

streamd_factory = _harness.streamd_factory
http_request = _harness.http_request
TIMEOUT_MULT = _harness.TIMEOUT_MULT

# after TIMEOUT_MULT: backends imports it from this module
from backends import psql_rows  # noqa: E402
RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "results")


@pytest.fixture
def figures(request):
    """A dict the test fills with its measured figures; written to results/<test>.json."""
    data = {}
    yield data
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, request.node.name + ".json"), "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    print("\nfigures %s: %s" % (request.node.name, json.dumps(data, sort_keys=True)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def table_exists(pg, schema, table):
    return bool(psql_rows(pg, "SELECT 1 FROM information_schema.tables WHERE table_schema = "
                              "'%s' AND table_name = '%s'" % (schema, table)))


def drain(pg, schema, table, acked, timeout=120):
    """Waits (at most timeout s) until every acknowledged id is in the table, then 3 s more so
    that anything imported twice shows; returns (the ids of its rows, seconds the wait took)."""
    query = 'SELECT * FROM "%s"."%s" WHERE "id" <> \'probe\'' % (schema, table)  # no probes
    start = time.time()
    while time.time() - start < timeout:
        ids = [r[1] for r in psql_rows(pg, query)] if table_exists(pg, schema, table) else []
        if acked <= set(ids):
            break
        time.sleep(1)
    drain_s = time.time() - start
    time.sleep(3)
    ids = [r[1] for r in psql_rows(pg, query)] if table_exists(pg, schema, table) else []
    return ids, drain_s
