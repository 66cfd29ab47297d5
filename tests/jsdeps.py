"""The Node.js tools some tests drive (tests/js/package.json: newman, @grpc/grpc-js,
@grpc/proto-loader), installed once per machine with `npm ci` into tests/js/node_modules.

`.ci/run` installs them up front; a developer's first test run does it here. npm keeps every
package it fetched in its cache, so later installs work offline (`--prefer-offline`)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
NODE_MODULES = JS_DIR / "node_modules"
LOCKFILE = JS_DIR / "package-lock.json"
INSTALLED = NODE_MODULES / ".package-lock.json"  # npm writes it on every install


def node_tools() -> Path:
    """tests/js/node_modules, installed if missing or older than the lockfile. Skips the calling test
    only when node or npm are absent; a failing install fails it."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("needs node and npm, which are not installed (apt-get install nodejs npm)")
    # one install at a time on this machine
    with open(Path(tempfile.gettempdir()) / "orderengine-tests-js.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not INSTALLED.is_file() or INSTALLED.stat().st_mtime < LOCKFILE.stat().st_mtime:
            proc = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode != 0:
                pytest.fail(f"npm ci in {JS_DIR} failed:\n{proc.stdout}\n{proc.stderr}")
    return NODE_MODULES
