"""`.env.example` documents every setting, with its real default."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from common.settings import KEY_VARIABLES, Settings, load_settings, read_dotenv

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_every_setting_is_documented() -> None:
    documented = set(read_dotenv(EXAMPLE))
    variables = {f.metadata["env"] for f in fields(Settings)}
    assert variables - documented == set(), "document these in .env.example"
    assert documented - variables == set(), "these are not settings"
    # the executor's key (executor_svc.wallet.KeySettings): documented too, skipped by read_dotenv
    assert set(read_dotenv(EXAMPLE, keys=True)) - documented == KEY_VARIABLES


def test_example_values_are_the_defaults() -> None:
    assert load_settings({}, dotenv=EXAMPLE) == load_settings({}, dotenv=Path("/nonexistent"))
