"""The generated code in orderengine/v1 must be exactly what `make protos` produces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", "scripts/protos.sh", str(tmp_path)],
        cwd=REPO,
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    generated = sorted(p.name for p in (tmp_path / "orderengine" / "v1").iterdir())
    committed = sorted(
        p.name
        for p in (REPO / "orderengine" / "v1").iterdir()
        if p.name != "__init__.py" and p.suffix in (".py", ".pyi")
    )
    assert generated == committed, "run `make protos` and commit the result"
    for name in generated:
        fresh = (tmp_path / "orderengine" / "v1" / name).read_text()
        assert fresh == (REPO / "orderengine" / "v1" / name).read_text(), (
            f"{name} is stale: run `make protos`"
        )
