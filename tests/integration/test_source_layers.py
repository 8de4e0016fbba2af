"""The layering issue 12 asks for, checked on the source tree: the wiring's header
(roles/sd_node.h) is included only by the wiring (sd_node.c, and sd_cli.c that turns the
command line into roles), and no module of the api, source or storage roles includes anything
from src/roles/ (no upward dependency, no api <-> roles cycle)."""
import os
import re

from backends import ROOT

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes():
    """{path relative to the repo: [included headers]} of every C/C++ file under src/ and
    plugins/."""
    out = {}
    for top in ("src", "plugins"):
        for root, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                if name.endswith((".c", ".h", ".cpp")):
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8") as f:
                        out[os.path.relpath(path, ROOT)] = INCLUDE.findall(f.read())
    return out


def test_only_the_wiring_includes_the_wiring_header():
    found = includes()
    assert "src/roles/sd_node.c" in found  # the walk saw the tree
    users = sorted(p for p, inc in found.items() if "roles/sd_node.h" in inc)
    assert users == ["src/roles/sd_cli.c", "src/roles/sd_node.c"], users


def test_role_modules_do_not_include_roles():
    upward = sorted((p, h) for p, inc in includes().items()
                    if p.startswith(("src/api/", "src/source/", "src/storage/"))
                    for h in inc if h.startswith("roles/"))
    assert upward == [], upward
