#!/usr/bin/python3
"""Dev tool: replays API fixtures in the reference's e2e format (e.g. its test/stream/api tree,
extracted with `git archive` to a temp dir) against a fresh streamd per scenario, prints pass/fail
per scenario and the match ratio. Scenarios that seed etcd (initial-etcd-kvs.txt) run unseeded.
Usage: scripts/replay-reference-fixtures.py [-v] [-k SUBSTRING] <dir>"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

import api_fixture_runner as runner  # noqa: E402
from conftest import Streamd  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("-k", default="", help="only scenarios whose name contains this")
    ap.add_argument("-v", action="store_true", help="print why a scenario failed")
    opts = ap.parse_args()
    scenarios = [s for s in runner.find_scenarios(opts.dir) if opts.k in s]
    passed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, scenario in enumerate(scenarios):
            scenario_dir = os.path.join(opts.dir, scenario)
            data_dir = os.path.join(tmp, "data%d" % i)
            os.makedirs(data_dir)
            s = Streamd(data_dir, args=runner.set_args(runner.scenario_sets(scenario_dir)))
            s.start()
            try:
                runner.run_scenario(runner.Server(s.api, s.source), scenario_dir)
                passed += 1
                print("PASS", scenario)
            except (AssertionError, runner.FixtureError) as e:
                print("FAIL", scenario)
                if opts.v:
                    print("    " + str(e).replace("\n", "\n    "))
            finally:
                s.stop()
    total = len(scenarios)
    print("%d/%d scenarios match (%.0f%%)" % (passed, total, 100.0 * passed / total if total else 0))
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
