"""pytest harness of the long fault tests (`make reliability`): the integration harness (real
binary, temp data dirs, HTTP helpers) plus a figures file per test under results/."""
import importlib.util
import json
import os
import sys

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
