"""`streamd token create|list|revoke` against a running server: the commands go through the
server's control socket (DATA_DIR/control.sock, mode 0600, own uid or root only) and take
effect at once (a revoked token gets 401 on the next request); a malformed control request
gets an error answer and leaves the server well; after a stop the commands work on the store
again and see the same tokens."""
import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from conftest import TIMEOUT_MULT
from helpers import assert_error
from test_tokens import create_token, run_cli, source_ids

SOURCES = "/v1/branches/default/sources"


def control_path(s):
    return os.path.join(s.data_dir, "control.sock")


def control(s, raw, timeout=10):
    """Sends raw bytes to the control socket, closes the write side and returns the answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout * TIMEOUT_MULT)
    try:
        sock.connect(control_path(s))
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    finally:
        sock.close()
    assert out.endswith(b"\n") and out.count(b"\n") == 1, out
    return json.loads(out)


def test_token_commands_work_while_the_server_runs(streamd):
    s = streamd
    d = s.data_dir
    token, token_id = create_token(d, 2, "--admin", "--description", "made live")
    assert token not in s.read_stderr()

    # usable at once, and listed (text and JSON) without the token itself
    assert source_ids(s, token) == []
    r = run_cli("token", "list", "--data-dir", d)
    assert r.returncode == 0, r.stderr
    assert token_id in r.stdout and "made live" in r.stdout and token not in r.stdout
    r = run_cli("token", "list", "--data-dir", d, "--project", "2", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)["tokens"]
    assert [(t["id"], t["projectId"], t["isAdmin"], t["isMaster"], t["description"])
            for t in listed] == [(token_id, 2, True, True, "made live")]
    r = run_cli("token", "create", "--data-dir", d, "--project", "3", "--no-master", "--json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["projectId"] == 3 and not made["isMaster"] and not made["isAdmin"]
    status, body = s.api_call("GET", SOURCES, token=made["token"])
    assert_error(status, body, 401, "stream.api.masterTokenRequired")

    # revoked: refused by the very next request
    r = run_cli("token", "revoke", "--data-dir", d, token_id)
    assert r.returncode == 0, r.stderr
    assert "revoked token %s of project 2" % token_id in r.stdout
    status, body = s.api_call("GET", SOURCES, token=token)
    assert_error(status, body, 401, "stream.api.unauthorized")
    r = run_cli("token", "revoke", "--data-dir", d, token_id)
    assert r.returncode == 1 and "no token with id %s" % token_id in r.stderr

    # the server logs what changed, never a token
    log = s.read_stderr()
    assert "token %s of project 2 created" % token_id in log
    assert "token %s of project 2 revoked" % token_id in log
    assert token not in log and made["token"] not in log

    # stopped: the socket is gone and the commands work on the store itself, same tokens
    assert s.stop() == 0
    assert not os.path.exists(control_path(s))
    r = run_cli("token", "list", "--data-dir", d, "--json")
    assert r.returncode == 0, r.stderr
    ids = [t["id"] for t in json.loads(r.stdout)["tokens"]]
    assert made["id"] in ids and token_id not in ids
    s.start()
    status, body = s.api_call("GET", SOURCES, token=token)
    assert_error(status, body, 401, "stream.api.unauthorized")


def test_control_socket_is_private(streamd):
    st = os.stat(control_path(streamd))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    if os.geteuid() != 0:
        pytest.skip("checking another user's access needs root")
    # another user can neither connect (mode 0600) nor list the tokens through the CLI
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n"
             "    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\nsys.exit(0)\n")
    r = subprocess.run([sys.executable, "-c", probe, control_path(streamd)],
                       preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)), timeout=30)
    assert r.returncode == 3


def test_malformed_control_requests_get_errors_and_harm_nothing(streamd):
    s = streamd
    bad = [
        b"not json\n",
        b"\n",
        b"",
        b"\x00\xff\xfe\n",
        b"[1, 2]\n",
        b'{"cmd": 7}\n',
        b'{"cmd": "token.nope"}\n',
        b'{"cmd": "token.create"}\n',
        b'{"cmd": "token.create", "projectId": "1"}\n',
        b'{"cmd": "token.create", "projectId": 0}\n',
        b'{"cmd": "token.create", "projectId": 1, "isAdmin": "yes"}\n',
        b'{"cmd": "token.create", "projectId": 1, "description": "' + b"x" * 200 + b'"}\n',
        b'{"cmd": "token.create", "projectId": 1, "description": "a\\u0000b"}\n',
        b'{"cmd": "token.list", "projectId": -1}\n',
        b'{"cmd": "token.revoke"}\n',
        b'{"cmd": "token.revoke", "id": "../1"}\n',
        b'{"cmd": "token.revoke", "id": "' + b"1" * 40 + b'"}\n',
        b'{"cmd": "token.list", "cmd": "token.list"}\n',
        b"{" * 100000 + b"\n",
    ]
    for raw in bad:
        answer = control(s, raw)
        assert answer["error"] == "badRequest", (raw[:80], answer)
        assert answer["message"], answer
    answer = control(s, b'{"cmd": "token.revoke", "id": "999999"}\n')
    assert answer["error"] == "notFound" and "999999" in answer["message"], answer
    # a client that connects and says nothing holds the socket up to the server's timeout only
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(control_path(s))
    started = time.time()
    answer = control(s, b'{"cmd": "token.list", "projectId": 0}\n', timeout=30)
    assert time.time() - started < 15 * TIMEOUT_MULT
    idle.close()
    # still well: a good request works, no token was made, the API answers
    assert [t["projectId"] for t in answer["tokens"]] == [1]
    assert source_ids(s, s.token) == []
