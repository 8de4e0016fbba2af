"""Replays our own configuration-API fixtures (tests/integration/api_fixtures/<group>/<scenario>/,
the reference's e2e format) one scenario per test, each against a fresh streamd, and checks the
runner's own matching rules so a fixture cannot pass by accident."""
import json
import os

import pytest

import api_fixture_runner as runner

FIXTURES = os.path.join(os.path.dirname(__file__), "api_fixtures")


@pytest.mark.parametrize("scenario", runner.find_scenarios(FIXTURES))
def test_api_fixture(streamd_factory, scenario):
    scenario_dir = os.path.join(FIXTURES, scenario)
    s = streamd_factory(args=runner.set_args(runner.scenario_sets(scenario_dir)))
    runner.run_scenario(runner.Server(s.api, s.source, s.check_against_openapi), scenario_dir)


def test_wildcards_follow_the_reference_matcher():
    assert runner.wildcard_match('{\n  "id": "%s"\n}', '{\n  "id": "abc"\n}')
    assert not runner.wildcard_match('{\n  "id": "%s"\n}', '{\n  "id": ""\n}')
    assert runner.wildcard_match('"%S"', '""')
    assert not runner.wildcard_match('"%s"', '"a\nb"')
    assert runner.wildcard_match('[%A]', '[a\nb]')
    assert runner.wildcard_match('%d', '42') and not runner.wildcard_match('%d', '-42')
    assert runner.wildcard_match('%i', '-42') and not runner.wildcard_match('%i', '42')
    assert runner.wildcard_match('%f', '3.5e+10')
    assert runner.wildcard_match('100%%', '100%')
    assert runner.wildcard_match('a.b', 'a.b') and not runner.wildcard_match('a.b', 'axb')
    assert runner.wildcard_match('  x\n', 'x  ')


def test_pretty_printing_is_gos():
    text = runner.go_pretty(json.loads('{"b": 1.0, "a": ["<&>"], "c": {}, "d": [], "e": "ž"}'))
    assert text == ('{\n  "b": 1,\n  "a": [\n    "\\u003c\\u0026\\u003e"\n  ],\n'
                    '  "c": {},\n  "d": [],\n  "e": "ž"\n}')


def test_repeat_until_expressions():
    resp = {"status": "processing", "outputs": {"n": 2}}
    assert not runner.evaluate_until("status != 'processing'", resp)
    assert runner.evaluate_until("status == 'processing' && outputs.n >= 2", resp)
    assert runner.evaluate_until("(status == \"done\") || !missing", resp)
    with pytest.raises(runner.FixtureError):
        runner.evaluate_until("status ~ 1", resp)


def test_placeholders_and_references():
    env = dict(runner.DEFAULT_ENV)
    assert runner.substitute_env("/v1/branches/%%TEST_DEFAULT_BRANCH_ID%%", env) == "/v1/branches/1"
    with pytest.raises(runner.FixtureError):
        runner.substitute_env("%%NOPE%%", env)
    responses = {"001-create": {"url": "https://stream.keboola.local/v1/tasks/t1", "n": [5]}}
    assert runner.substitute_refs("<<001-create:response.url>>", responses).endswith("/v1/tasks/t1")
    assert runner.substitute_refs("x<<001-create:response.n.0>>", responses) == "x5"
    with pytest.raises(runner.StepFailed):
        runner.substitute_refs("<<001-create:response.missing>>", responses)
    server = runner.Server("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert server.url("https://stream-in.keboola.local/stream/1/s/x") == "http://127.0.0.1:2/stream/1/s/x"
    assert server.url("https://stream.keboola.local/v1/tasks/t1") == "http://127.0.0.1:1/v1/tasks/t1"
    assert server.url("/v1") == "http://127.0.0.1:1/v1"
    with pytest.raises(runner.FixtureError):
        server.url("https://example.com/x")


def test_a_wrong_expectation_fails(streamd_factory, tmp_path):
    step = tmp_path / "scenario" / "001-index"
    step.mkdir(parents=True)
    (step / "request.json").write_text('{"path": "/", "method": "GET"}')
    (step / "expected-http-code").write_text("200")
    (step / "expected-response.json").write_text('{\n  "api": "not-stream"\n}')
    s = streamd_factory(args=runner.set_args(runner.PUBLIC_URL_SETS))
    with pytest.raises(runner.StepFailed):
        runner.run_scenario(runner.Server(s.api, s.source), str(tmp_path / "scenario"))


def test_config_json_adds_sets(tmp_path):
    assert runner.scenario_sets(str(tmp_path)) == runner.PUBLIC_URL_SETS
    (tmp_path / "config.json").write_text('{"set": {"api.task.cleanupEnabled": "false"}}')
    sets = runner.scenario_sets(str(tmp_path))
    assert sets["api.task.cleanupEnabled"] == "false"
    assert sets["api.publicUrl"] == runner.API_PUBLIC_URL
    args = runner.set_args(sets)
    assert args[args.index("api.task.cleanupEnabled=false") - 1] == "--set"
