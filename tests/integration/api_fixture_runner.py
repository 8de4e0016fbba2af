"""Replays configuration-API fixtures (request, expected status, expected body with wildcards) in
the format of the reference's end-to-end API tests against a running streamd: steps
`NNN-name/{request.json,expected-http-code,expected-response.json}` run in order, `%%ENV%%`
placeholders and `<<NNN-step:response.dotted.path>>` references are substituted, a request may
repeat until an expression over its response holds, and the response is pretty-printed as the
reference runner prints it and matched against the expected text with its wildcards."""
import json
import os
import re
import time

from conftest import ADMIN_TOKEN, http_request

# The public URLs the reference's e2e environment uses; scenarios see them in task and source URLs.
API_PUBLIC_URL = "https://stream.keboola.local"
SOURCE_PUBLIC_URL = "https://stream-in.keboola.local"
PUBLIC_URL_SETS = {"api.publicUrl": API_PUBLIC_URL, "source.http.publicUrl": SOURCE_PUBLIC_URL}

# Values of the reference's placeholders for a streamd started by the test harness.
DEFAULT_ENV = {
    "TEST_DEFAULT_BRANCH_ID": "1",
    "TEST_KBC_PROJECT_ID": "1",
    "TEST_KBC_STORAGE_API_TOKEN": ADMIN_TOKEN,
}

STEP_RE = re.compile(r"^[0-9]{3}-")
ENV_RE = re.compile(r"%%([a-zA-Z0-9][a-zA-Z0-9\-_]*[a-zA-Z0-9])%%")
REF_RE = re.compile(r"<<([0-9]{3}-[^:<>]+):response\.([^<>]+)>>")
REPEAT_SLEEP = 0.05
DEFAULT_REPEAT_TIMEOUT = 60

# The reference runner's wildcards (PHPUnit's assertStringMatchesFormat set).
WILDCARDS = {
    "e": re.escape(os.sep),
    "s": r".+",
    "S": r".*",
    "a": r"[\s\S]+",
    "A": r"[\s\S]*",
    "w": r"[ \t\n\f\r\v]*",
    "i": r"[+\-][0-9]+",
    "d": r"[0-9]+",
    "x": r"[0-9a-zA-Z]+",
    "f": r"[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?",
    "c": r".",
    "%": r"%",
}


class FixtureError(Exception):
    """A fixture file is malformed (not a mismatch of the server's answer)."""


class StepFailed(AssertionError):
    """The server's answer to a step differs from the fixture."""


def is_scenario(path):
    return os.path.isdir(path) and any(
        STEP_RE.match(n) and os.path.isfile(os.path.join(path, n, "request.json"))
        for n in os.listdir(path))


def find_scenarios(root):
    """Every scenario directory under root (sorted), as paths relative to root."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if is_scenario(dirpath):
            found.append(os.path.relpath(dirpath, root))
            dirnames[:] = []
        dirnames.sort()
    return sorted(found)


def scenario_sets(scenario_dir):
    """Extra `--set` options of a scenario: its config.json `{"set": {...}}` over the public URLs."""
    sets = dict(PUBLIC_URL_SETS)
    path = os.path.join(scenario_dir, "config.json")
    if os.path.isfile(path):
        with open(path) as f:
            sets.update(json.load(f).get("set", {}))
    return sets


def set_args(sets):
    args = []
    for key, value in sets.items():
        args += ["--set", "%s=%s" % (key, value)]
    return args


def substitute_env(text, env):
    def repl(m):
        if m.group(1) not in env:
            raise FixtureError("unknown placeholder %s" % m.group(0))
        return env[m.group(1)]
    return ENV_RE.sub(repl, text)


def lookup(obj, dotted):
    """The value at a dotted path (`a.b.0.c`) in a decoded JSON value; KeyError if absent."""
    for part in dotted.split("."):
        if isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise KeyError(dotted)
    return obj


def substitute_refs(text, responses):
    def repl(m):
        step, dotted = m.group(1), m.group(2)
        if step not in responses:
            raise FixtureError("reference to a step that has not run: %s" % m.group(0))
        try:
            value = lookup(responses[step], dotted)
        except KeyError:
            raise StepFailed("the response of %s has no %s" % (step, dotted))
        return value if isinstance(value, str) else json.dumps(value)
    return REF_RE.sub(repl, text)


def _substitute_strings(value, responses):
    if isinstance(value, str):
        return substitute_refs(value, responses)
    if isinstance(value, list):
        return [_substitute_strings(v, responses) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_strings(v, responses) for k, v in value.items()}
    return value


def _go_numbers(value):
    """Go decodes JSON numbers to float64 and prints integral ones without a fraction."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    return value


def go_pretty(value):
    """JSON as Go's json.MarshalIndent(v, "", "  ") prints it (HTML characters escaped)."""
    text = json.dumps(_go_numbers(value), indent=2, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def wildcard_regex(pattern):
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern) and pattern[i + 1] in WILDCARDS:
            out.append(WILDCARDS[pattern[i + 1]])
            i += 2
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def wildcard_match(expected, actual):
    """The reference's comparison: both sides trimmed, NBSP read as space, full match."""
    expected = expected.strip()
    actual = actual.strip().replace("\u00a0", " ")
    if not expected:
        return actual == ""
    return re.fullmatch(wildcard_regex(expected), actual) is not None


# --- repeat.until: the reference's expression syntax as far as fixtures use it ----------------
TOKEN_RE = re.compile(r"\s*(?:(?P<num>-?[0-9]+(?:\.[0-9]+)?)|(?P<str>'[^']*'|\"[^\"]*\")|"
                      r"(?P<op>==|!=|>=|<=|&&|\|\||[<>()!])|(?P<ident>[A-Za-z_][A-Za-z0-9_.]*))")


def _tokenize(expr):
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = TOKEN_RE.match(expr, pos)
        if not m or m.end() == pos:
            raise FixtureError("cannot parse repeat.until %r at %d" % (expr, pos))
        pos = m.end()
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
    return tokens


def evaluate_until(expr, response):
    """Evaluates `a != 'x' && (b == 1 || !c)` over the decoded response."""
    tokens = _tokenize(expr)
    pos = [0]

    def peek():
        return tokens[pos[0]] if pos[0] < len(tokens) else (None, None)

    def take():
        tok = peek()
        pos[0] += 1
        return tok

    def primary():
        kind, text = take()
        if kind == "num":
            return float(text)
        if kind == "str":
            return text[1:-1]
        if kind == "ident":
            if text in ("true", "false"):
                return text == "true"
            try:
                value = lookup(response, text)
            except KeyError:
                return None
            return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if text == "(":
            value = disjunction()
            if take()[1] != ")":
                raise FixtureError("missing ) in repeat.until %r" % expr)
            return value
        if text == "!":
            return not primary()
        raise FixtureError("unexpected %r in repeat.until %r" % (text, expr))

    def comparison():
        left = primary()
        kind, text = peek()
        if kind == "op" and text in ("==", "!=", ">=", "<=", "<", ">"):
            take()
            right = primary()
            return {"==": lambda: left == right, "!=": lambda: left != right,
                    ">=": lambda: left >= right, "<=": lambda: left <= right,
                    "<": lambda: left < right, ">": lambda: left > right}[text]()
        return left

    def conjunction():
        value = comparison()
        while peek() == ("op", "&&"):
            take()
            right = comparison()
            value = bool(value) and bool(right)
        return value

    def disjunction():
        value = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            value = bool(value) or bool(right)
        return value

    result = disjunction()
    if pos[0] != len(tokens):
        raise FixtureError("trailing tokens in repeat.until %r" % expr)
    return bool(result)


# --- running -----------------------------------------------------------------------------------
class Server:
    """Where a scenario's requests go: the API and source listeners of a running streamd."""

    def __init__(self, api, source, check=None):
        self.api, self.source, self.check = api.rstrip("/"), source.rstrip("/"), check

    def url(self, path):
        for public, real in ((API_PUBLIC_URL, self.api), (SOURCE_PUBLIC_URL, self.source)):
            if path == public or path.startswith(public + "/") or path.startswith(public + "?"):
                return real + path[len(public):]
        if "://" in path:
            raise FixtureError("absolute URL outside the test's public URLs: %s" % path)
        return self.api + (path if path.startswith("/") else "/" + path)


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_request(step_dir, env, responses):
    text = substitute_env(read_text(os.path.join(step_dir, "request.json")), env)
    try:
        req = json.loads(text)
    except ValueError as e:
        raise FixtureError("%s/request.json: %s" % (step_dir, e))
    if not isinstance(req, dict) or "path" not in req or req.get("method") not in (
            "DELETE", "GET", "PATCH", "POST", "PUT"):
        raise FixtureError("%s/request.json needs path and method" % step_dir)
    return _substitute_strings(req, responses)


def encode_body(req, step_dir):
    body, headers = req.get("body"), dict(req.get("headers") or {})
    if body is None:
        return None, headers
    if isinstance(body, str):
        return body.encode(), headers
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if isinstance(body, (dict, list)) and "json" in ctype.lower():
        return json.dumps(body).encode(), headers
    raise FixtureError("%s: body must be JSON with a JSON content type, or a string" % step_dir)


def render_body(data):
    """(decoded JSON or None, text to match) as the reference runner prints a response body."""
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        return {}, "{}"
    try:
        value = json.loads(text)
    except ValueError:
        return None, text
    return value, go_pretty(value)


def run_step(server, step_dir, env, responses):
    """Runs one step; returns its decoded response. Raises StepFailed on a mismatch."""
    name = os.path.basename(step_dir)
    req = load_request(step_dir, env, responses)
    body, headers = encode_body(req, step_dir)
    url = server.url(req["path"])
    repeat = req.get("repeat") or {}
    deadline = time.time() + float(repeat.get("timeout") or DEFAULT_REPEAT_TIMEOUT)
    while True:
        status, _, data = http_request(url, req["method"], body, headers)
        value, text = render_body(data)
        if not repeat.get("until") or evaluate_until(repeat["until"], value or {}):
            break
        if time.time() > deadline:
            raise StepFailed("%s: %r did not hold within the timeout; last response:\n%s"
                             % (name, repeat["until"], text))
        time.sleep(REPEAT_SLEEP)
    responses[name] = value if value is not None else {}
    if server.check and url.startswith(server.api):
        # an empty body is checked as no body (it is printed as "{}", as the reference runner does)
        server.check(req["method"], url[len(server.api):], status, value if data.strip() else None)
    expected_code = int(read_text(os.path.join(step_dir, "expected-http-code")).strip())
    problems = []
    if status != expected_code:
        problems.append("status %d, expected %d; body:\n%s" % (status, expected_code, text))
    expected_path = os.path.join(step_dir, "expected-response.json")
    if os.path.isfile(expected_path):
        expected = substitute_refs(substitute_env(read_text(expected_path), env), responses)
        if not wildcard_match(expected, text):
            problems.append("body differs.\n--- expected\n%s\n--- actual\n%s" % (expected.strip(), text))
    if problems:
        raise StepFailed("%s %s: %s" % (req["method"], req["path"], "\n".join(problems)))
    return responses[name]


def run_scenario(server, scenario_dir, env=None):
    """Runs every step of a scenario in order; the first failing step raises StepFailed."""
    env = dict(DEFAULT_ENV, **(env or {}))
    responses = {}
    steps = sorted(n for n in os.listdir(scenario_dir)
                   if STEP_RE.match(n) and os.path.isdir(os.path.join(scenario_dir, n)))
    if not steps:
        raise FixtureError("%s has no steps" % scenario_dir)
    for step in steps:
        try:
            run_step(server, os.path.join(scenario_dir, step), env, responses)
        except StepFailed as e:
            raise StepFailed("step %s: %s" % (step, e))
    return responses

