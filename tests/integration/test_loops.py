"""The data endpoint on several event loops (source.http.loops): connections are spread over the
loops, records from all of them land in the table exactly once, and the default is one loop per
CPU the process may run on."""
import os
import re
import time

from conftest import TIMEOUT_MULT
from helpers import FAST, PATH_COLUMNS, Loader, assert_loaded_once, table_rows

TABLE = "in.c-bucket.loops"
LOOP_SERIES = re.compile(
    r'^streamd_http_loop_requests_total\{server="source",loop="(\d+)"\} (\d+)$', re.M)


def loop_requests(s):
    """{loop index: requests it handled} of the data endpoint."""
    status, _, data = s.request("GET", s.metrics + "/metrics")
    assert status == 200
    return {int(i): int(n) for i, n in LOOP_SERIES.findall(data.decode())}


def test_records_of_every_loop_land_in_the_table_exactly_once(streamd_factory):
    s = streamd_factory(args=FAST + ["--set", "source.http.loops=3"])
    url = s.create_source("s1")["http"]["url"]
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id=TABLE)
    before = loop_requests(s)
    assert sorted(before) == [0, 1, 2]
    # 12 keep-alive clients: four connections per loop, all appending to the one slice
    load = Loader(url, clients=12, prefix="l").start()
    time.sleep(3 * TIMEOUT_MULT)
    load.finish()
    assert len(load.acked) > 300, load.statuses
    served = {i: n - before[i] for i, n in loop_requests(s).items()}
    total = sum(served.values())
    assert total >= len(load.acked)
    for i, n in served.items():
        assert n >= total * 0.2, "loop %d served %d of %d requests" % (i, n, total)
    deadline = time.time() + 90 * TIMEOUT_MULT
    while not load.acked <= {row[1] for row in table_rows(s.data_dir, TABLE)}:
        assert time.time() < deadline, "acknowledged records never reached the table"
        time.sleep(0.2)
    time.sleep(2)
    assert_loaded_once(table_rows(s.data_dir, TABLE), load.acked, load.sent)


def test_default_is_one_loop_per_cpu_of_the_process(streamd_factory):
    one = streamd_factory(preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert sorted(loop_requests(one)) == [0]
    every = streamd_factory()
    assert sorted(loop_requests(every)) == list(range(min(len(os.sched_getaffinity(0)), 16)))
