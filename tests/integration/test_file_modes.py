"""Files streamd creates under its data dir are private (issue 9): 0600 files and 0700
directories whatever the umask allows (a stricter umask still applies), and state and table
files of an older install are tightened when they are opened."""
import json
import os
import stat
import time

import pytest

from conftest import TIMEOUT_MULT
from helpers import FAST, PATH_COLUMNS, table_rows

TABLE = "in.c-bucket.table"
J = {"Content-Type": "application/json"}


def loose_modes(root, want_file, want_dir):
    """Paths under root (root itself excluded) with permission bits beyond what is wanted."""
    loose = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            want = want_dir if stat.S_ISDIR(st.st_mode) else want_file
            if stat.S_IMODE(st.st_mode) & ~want:
                loose.append("%s %o" % (os.path.relpath(path, root), stat.S_IMODE(st.st_mode)))
    return loose


def run_pipeline_until_import(s):
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id=TABLE)
    url = src["http"]["url"]
    deadline = time.time() + 60 * TIMEOUT_MULT
    i = 0
    while not table_rows(s.data_dir, TABLE):
        assert s.request("POST", url, json.dumps({"id": "r%d" % i}), J)[0] == 200
        i += 1
        assert time.time() < deadline, "no import happened"
        time.sleep(0.2)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_data_files_and_dirs_are_private(streamd_factory, umask):
    old = os.umask(umask)
    try:
        s = streamd_factory(args=FAST, token=None)  # the generated admin-token file too
    finally:
        os.umask(old)
    with open(os.path.join(s.data_dir, "admin-token")) as f:
        s.token = f.read().strip()
    run_pipeline_until_import(s)
    ready = os.path.join(s.data_dir + ".ready")
    assert s.stop() == 0
    names = set()
    for _, dirnames, filenames in os.walk(s.data_dir):
        names.update(dirnames + filenames)
    assert {"state", "wal", "tables", "admin-token", "project-1.sqlite"} <= names, names
    assert loose_modes(s.data_dir, 0o600, 0o700) == []
    assert stat.S_IMODE(os.stat(ready).st_mode) & 0o077 == 0


def test_older_install_is_tightened_on_open(streamd_factory):
    s = streamd_factory(args=FAST)
    run_pipeline_until_import(s)
    assert s.stop() == 0
    for sub in ("state", "tables"):
        root = os.path.join(s.data_dir, sub)
        os.chmod(root, 0o755)
        for name in os.listdir(root):
            os.chmod(os.path.join(root, name), 0o644)
    s.start()
    s.request("POST", s.api + "/v1/branches/default/sources/s1/test", "{}")  # opens the table db
    for sub in ("state", "tables"):
        root = os.path.join(s.data_dir, sub)
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        assert loose_modes(root, 0o600, 0o700) == []
