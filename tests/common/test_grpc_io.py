"""Every gRPC process chooses gRPC's I/O before grpc loads (common/__init__.py): gRPC reads
GRPC_EXPERIMENTS once, when it loads, so a setting made after that would change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from common import GRPC_IO
from common.settings import REPO_ROOT

# A finder that notes the environment's GRPC_EXPERIMENTS when `grpc` is first looked for, then
# imports the package and the module `python -m <package>` runs (its main() is not called).
_PROBE = """
import importlib, json, os, sys
seen = []
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "grpc" and not seen:
            seen.append(os.environ.get("GRPC_EXPERIMENTS"))
        return None
sys.meta_path.insert(0, Probe())
package = sys.argv[1]
importlib.import_module(package)
module = {"gateway": "gateway.server", "worker": "worker.consumer", "router_svc": "router_svc.server",
          "executor_svc": "executor_svc.server", "persistence_svc": "persistence_svc.server"}[package]
importlib.import_module(module)
print(json.dumps({"at_grpc_import": seen, "now": os.environ.get("GRPC_EXPERIMENTS")}))
"""


def _python(env: dict[str, str], *args: str) -> str:
    """What `python *args` prints, run in the repository with `env`."""
    out = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


@pytest.mark.parametrize("package", ["gateway", "worker", "router_svc", "executor_svc", "persistence_svc"])
def test_grpc_loads_after_its_io_is_chosen(package: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    probe = json.loads(_python(env, "-c", _PROBE, package))
    assert probe["at_grpc_import"] == [GRPC_IO], probe
    assert probe["now"] == GRPC_IO


def test_an_operators_setting_is_kept() -> None:
    env = {**os.environ, "GRPC_EXPERIMENTS": "event_engine_client"}
    printed = _python(env, "-c", "import os, worker; print(os.environ['GRPC_EXPERIMENTS'])")
    assert printed.strip() == "event_engine_client"
