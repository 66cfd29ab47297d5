"""`make lint` checks every package we ship: mypy's `files` must name each of them."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENERATED = {"orderengine"}  # checked through its mypy-protobuf stubs wherever our code imports it


def test_mypy_checks_every_installed_package() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    installed = {name.rstrip("*") for name in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    checked = set(config["tool"]["mypy"]["files"])
    assert config["tool"]["mypy"]["strict"] is True
    assert checked == installed - GENERATED, "add the package to [tool.mypy] files in pyproject.toml"
    for package in checked:
        assert (REPO / package / "__init__.py").is_file(), f"{package} in [tool.mypy] files is no package"
