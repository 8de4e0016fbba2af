"""Differential test of streamd's Jsonnet engine against Debian's libjsonnet (the `jsonnet` CLI).

Cases live in tests/integration/jsonnet_cases/*.jsonnet-cases. A file is a sequence of cases:

    ### case-name
    <Jsonnet program>
    --- expect            (optional) the expected JSON; the oracle is not run (functions
    <JSON>                libjsonnet 0.18 lacks, such as std.trim)
    --- error             (optional) the program must fail in both engines

Lines before the first `###` are a comment. Without `--- expect`/`--- error`, the oracle must
succeed and streamd must print the same value. Values are compared as parsed JSON with numbers
as doubles; strings that differ are compared token by token, numeric tokens as doubles, so
"0.1" (go-jsonnet's and streamd's shortest form) equals libjsonnet's "0.10000000000000001".

keboola.jsonnet-cases holds template cases with sections instead of a bare program:

    ### case-name
    --- body              the request body (default: {}; JSON, or a form for
                          Content-Type: application/x-www-form-urlencoded)
    --- headers           "Name: value" lines (Content-Type: application/json is added if absent)
    --- ip                the client IP (default 192.0.2.10)
    --- template          the template: run by `streamd template eval`
    --- expect / --- error as above

For the oracle the record functions (Ip, Body, BodyStr, Header, HeaderStr) are emulated in plain
Jsonnet by a prelude over the same body and headers, and the two values are compared.
"""
import concurrent.futures
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import pytest

from conftest import BIN

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_DIR = os.path.join(HERE, "jsonnet_cases")
ORACLE = shutil.which("jsonnet") or "/usr/bin/jsonnet"
TIMEOUT_MULT = float(os.environ.get("SD_TEST_TIMEOUT_MULTIPLIER",
                                    "3" if os.environ.get("STREAMD_SANITIZED") else "1"))
RUN_TIMEOUT = 20 * TIMEOUT_MULT
MIN_CASES = 300
MIN_KEBOOLA_CASES = 30
DEFAULT_IP = "192.0.2.10"
SECTIONS = ("expect", "error", "body", "headers", "ip", "template")


# --- case files -------------------------------------------------------------------------------

class Case:
    def __init__(self, file, name, line):
        self.file = file
        self.name = name
        self.line = line
        self.sections = {"program": []}
        self.current = "program"

    @property
    def id(self):
        return "%s::%s" % (os.path.splitext(self.file)[0], self.name)

    def text(self, section):
        lines = self.sections.get(section)
        if lines is None:
            return None
        return "\n".join(lines).strip("\n") + "\n"

    @property
    def is_template(self):
        return "template" in self.sections

    @property
    def expects_error(self):
        return "error" in self.sections

    @property
    def expected(self):
        text = self.text("expect")
        return None if text is None else json.loads(text)


def parse_case_file(path):
    cases = []
    case = None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("### "):
                case = Case(os.path.basename(path), line[4:].strip(), lineno)
                cases.append(case)
                continue
            if case is None:
                continue
            if line.startswith("--- "):
                section = line[4:].strip()
                if section not in SECTIONS:
                    raise ValueError("%s:%d: unknown section %r" % (path, lineno, section))
                case.current = section
                case.sections[section] = []
                continue
            case.sections[case.current].append(line)
    return cases


def load_cases():
    cases = []
    for name in sorted(os.listdir(CASES_DIR)):
        if name.endswith(".jsonnet-cases"):
            cases.extend(parse_case_file(os.path.join(CASES_DIR, name)))
    return cases


CASES = load_cases()


# --- comparison -------------------------------------------------------------------------------

NUM_TOKEN = re.compile(r"(-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def numbers_equal(a, b):
    fa, fb = float(a), float(b)
    return fa == fb or (math.isnan(fa) and math.isnan(fb))


def strings_equal(a, b):
    """Equal strings, or the same sequence of tokens with numeric tokens equal as doubles."""
    if a == b:
        return True
    ta, tb = NUM_TOKEN.split(a), NUM_TOKEN.split(b)
    if len(ta) != len(tb):
        return False
    for i, (x, y) in enumerate(zip(ta, tb)):
        if i % 2 == 1:  # numeric token (re.split puts captured groups at odd indexes)
            if not numbers_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def values_equal(a, b, path="$"):
    """Returns None when equal, else a description of the first difference."""
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return None if a is b else "%s: %r != %r" % (path, a, b)
    if isinstance(a, num) and isinstance(b, num):
        return None if numbers_equal(a, b) else "%s: %r != %r" % (path, a, b)
    if isinstance(a, str) and isinstance(b, str):
        return None if strings_equal(a, b) else "%s: %r != %r" % (path, a, b)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return "%s: array length %d != %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = values_equal(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if sorted(a) != sorted(b):
            return "%s: keys %r != %r" % (path, sorted(a), sorted(b))
        for k in sorted(a):
            d = values_equal(a[k], b[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if a is None and b is None:
        return None
    return "%s: %r (%s) != %r (%s)" % (path, a, type(a).__name__, b, type(b).__name__)


# --- running ----------------------------------------------------------------------------------

class Result:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err

    @property
    def ok(self):
        return self.rc == 0

    def value(self):
        return json.loads(self.out)

    def __repr__(self):
        return "rc=%s out=%r err=%r" % (self.rc, self.out[:400], self.err[:400])


def run(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return Result("timeout", "", "timed out after %ss" % RUN_TIMEOUT)
    return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"))


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def case_headers(case):
    headers = []
    for line in (case.text("headers") or "").splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    if not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return headers


def case_body(case):
    text = case.text("body")
    return "{}" if text is None else text.rstrip("\n")


def jsonnet_str(s):
    return json.dumps(s)  # a JSON string literal is a Jsonnet string literal


def canonical_header(name):
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


PRELUDE = r"""
local __sd_none = '\u0000sd-none';
local __sd_segs(path) = std.flattenArrays([
  local parts = std.split(seg, '[');
  (if parts[0] == '' then [] else [parts[0]]) +
  [std.parseInt(std.substr(p, 0, std.length(p) - 1)) for p in parts[1:]]
  for seg in std.split(path, '.')
]);
local __sd_walk(v, segs, i) =
  if i == std.length(segs) then { found: true, v: v }
  else
    local s = segs[i];
    if std.isNumber(s) then
      (if std.isArray(v) && s < std.length(v) then __sd_walk(v[s], segs, i + 1) else { found: false })
    else if std.isObject(v) && std.objectHas(v, s) then __sd_walk(v[s], segs, i + 1)
    else { found: false };
local __sd_canon(n) = std.join('-', [
  if std.length(p) == 0 then p else std.asciiUpper(p[0]) + std.asciiLower(std.substr(p, 1, std.length(p) - 1))
  for p in std.split(n, '-')
]);
local Ip() = __sd_ip;
local BodyStr() = __sd_body_str;
local Body(path=__sd_none, default=__sd_none) =
  if path == __sd_none then __sd_body
  else
    local r = __sd_walk(__sd_body, __sd_segs(path), 0);
    if r.found then r.v
    else if default != __sd_none then default
    else error 'path "' + path + '" not found in the body';
local Header(name=__sd_none, default=__sd_none) =
  if name == __sd_none then __sd_headers
  else if std.objectHas(__sd_headers, __sd_canon(name)) then __sd_headers[__sd_canon(name)]
  else if default != __sd_none then default
  else error 'header "' + name + '" not found';
local HeaderStr() = std.join('', [k + ': ' + __sd_headers[k] + '\n' for k in std.objectFields(__sd_headers)]);
"""


def oracle_program(case):
    body = case_body(case)
    headers = {canonical_header(n): v for n, v in case_headers(case)}
    ip = (case.text("ip") or DEFAULT_IP).strip()
    ctype = headers.get("Content-Type", "")
    try:
        if "json" in ctype:
            parsed = json.dumps(json.loads(body))
        elif ctype.startswith("application/x-www-form-urlencoded"):
            parsed = json.dumps(dict(urllib.parse.parse_qsl(body, keep_blank_values=True)))
        else:
            parsed = "error 'unsupported content type'"
    except ValueError:
        parsed = "error 'invalid body'"  # Body() must fail in both; BodyStr() still works
    head = "local __sd_ip = %s;\nlocal __sd_body_str = %s;\nlocal __sd_body = %s;\n" \
           "local __sd_headers = %s;\n" % (jsonnet_str(ip), jsonnet_str(body), parsed,
                                            json.dumps(headers))
    return head + PRELUDE + case.text("template")


def run_streamd(case, tmp):
    if not case.is_template:
        return run([BIN, "jsonnet", write(tmp, "streamd.jsonnet", case.text("program"))])
    cmd = [BIN, "template", "eval", "--body", write(tmp, "body", case_body(case))]
    for name, value in case_headers(case):
        cmd += ["--header", "%s: %s" % (name, value)]
        if name.lower() == "content-type":
            cmd += ["--content-type", value]
    cmd += ["--ip", (case.text("ip") or DEFAULT_IP).strip()]
    cmd.append(write(tmp, "template.jsonnet", case.text("template")))
    return run(cmd)


def run_oracle(case, tmp):
    program = oracle_program(case) if case.is_template else case.text("program")
    return run([ORACLE, write(tmp, "oracle.jsonnet", program)])


def check_case(case):
    """Runs one case; returns None when it passes, else a failure message."""
    tmp = tempfile.mkdtemp(prefix="sd-jn-")
    try:
        mine = run_streamd(case, tmp)
        if mine.rc == "timeout" or (isinstance(mine.rc, int) and mine.rc < 0):
            return "streamd crashed or hung: %r" % mine
        if case.expects_error:
            if mine.ok:
                return "streamd succeeded where an error is expected: %r" % mine
            if "expect" not in case.sections:
                oracle = run_oracle(case, tmp)
                if oracle.ok:
                    return "the oracle succeeded on an error case (test bug): %r" % oracle
            return None
        if not mine.ok:
            return "streamd failed: %r" % mine
        try:
            got = mine.value()
        except ValueError as e:
            return "streamd printed invalid JSON (%s): %r" % (e, mine)
        if "expect" in case.sections:
            want = case.expected
        else:
            oracle = run_oracle(case, tmp)
            if not oracle.ok:
                return "the oracle failed (test bug, or mark the case `--- error`): %r" % oracle
            want = oracle.value()
        diff = values_equal(got, want)
        if diff:
            return "values differ: %s\n streamd: %s\n expected: %s" % (
                diff, mine.out.strip()[:2000], json.dumps(want)[:2000])
        if "expect" not in case.sections and not case.is_template \
                and not strings_equal(mine.out, oracle.out):
            # Same value: the layout (3-space indent, "[ ]", key order, escapes) must match too.
            return "same value, different text:\n streamd: %r\n jsonnet: %r" % (
                mine.out[:2000], oracle.out[:2000])
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_RESULTS = {}


def _all_results():
    """Runs every case once, in a pool (each run is a process: ~40 ms for the oracle)."""
    if not _RESULTS:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2) * 2) as ex:
            for case, res in zip(CASES, ex.map(check_case, CASES)):
                _RESULTS[case.id] = res
    return _RESULTS


# --- tests ------------------------------------------------------------------------------------

def test_case_files_are_well_formed():
    ids = [c.id for c in CASES]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    assert not dups, "duplicate case names: %s" % dups
    for c in CASES:
        if c.is_template:
            assert c.text("program").strip() == "", "%s: text outside a section" % c.id
        else:
            assert c.text("program").strip(), "%s: empty program" % c.id
        if "expect" in c.sections:
            c.expected  # valid JSON
    assert len(CASES) >= MIN_CASES, "only %d cases" % len(CASES)
    assert sum(1 for c in CASES if c.is_template) >= MIN_KEBOOLA_CASES


def test_comparison_rules():
    assert values_equal({"a": [1, 0.1]}, {"a": [1.0, 0.10000000000000001]}) is None
    assert values_equal("x0.1y", "x0.10000000000000001y") is None
    assert values_equal("1e+21", "1e21") is None
    assert values_equal("0.1", "0.2") is not None
    assert values_equal("a b", "a  b") is not None
    assert values_equal(1, "1") is not None
    assert values_equal(True, 1) is not None
    assert values_equal({"a": 1}, {"a": 1, "b": 2}) is not None
    assert values_equal([1, 2], [2, 1]) is not None


def run_template(template, tmp):
    body = write(tmp, "body", "{}")
    return run([BIN, "template", "eval", "--body", body, "--content-type", "application/json",
                "--ip", DEFAULT_IP, write(tmp, "now.jsonnet", template)])


def test_now_formats(tmp_path):
    """Now() is the receive time: only its shape and its distance from the clock are checked."""
    import datetime
    r = run_template("[Now(), Now('%Y-%m-%d'), Now('%H:%M:%S'), Now('%Y/%m/%dT%H')]", str(tmp_path))
    assert r.ok, r
    default, day, clock, hour = r.value()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", default), default
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", day), day
    assert re.fullmatch(r"\d\d:\d\d:\d\d", clock), clock
    assert re.fullmatch(r"\d{4}/\d\d/\d\dT\d\d", hour), hour
    when = datetime.datetime.strptime(default, "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.utcnow()
    assert abs((now - when).total_seconds()) < 300, (default, now)
    assert default.startswith(day)
    r = run_template("Now(5)", str(tmp_path))
    assert not r.ok and r.rc != "timeout" and r.rc > 0, r


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_jsonnet_case(case):
    if not os.path.exists(BIN):
        pytest.fail("streamd binary not found at %s" % BIN)
    failure = _all_results()[case.id]
    if failure:
        pytest.fail("%s (%s:%d)\n%s" % (case.id, case.file, case.line, failure))
