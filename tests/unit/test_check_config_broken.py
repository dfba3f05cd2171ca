"""check-config on local.settings.sample.json with one setting broken at a time.

Each broken file must fail with exit code 2 and a message that names the broken setting, so
that an operator who runs check-config before deploying learns exactly what to fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from purge.cli.main import EXIT_BAD_INPUT, EXIT_OK, main

SAMPLE = Path(__file__).resolve().parents[2] / "local.settings.sample.json"

BROKEN = {
    "PURGE_REGISTRY": "http://myregistry.azurecr.io",
    "PURGE_SCHEDULE": "0 3 * * *",
    "PURGE_RULES": '[{"name": "x", "filter": ["app:.*"], "ago": "30 days"}]',
    "PURGE_COMMAND": "acr purge --filter 'app:.*' --ago 7d",
    "PURGE_DRY_RUN": "maybe",
    "PURGE_CONCURRENCY": "0",
    "PURGE_TIME_BUDGET": "-5",
    "PURGE_ALLOWED_HOSTS": "https://bad host/",
    "PURGE_AUDIENCE": "not-a-url",
    "PURGE_CA_FILE": "/nonexistent/ca.pem",
    "PURGE_USERNAME": "admin",
    "PURGE_PASSWORD": "only-a-password",
    "AZURE_CLIENT_ID": "not-a-guid",
    "PURGE_DRYRUN": "true",
    "PURGE_HISTORY": "sometimes",
    "PURGE_HISTORY_DAYS": "0",
}


def write_settings(tmp_path: Path, name: str, value: str) -> Path:
    settings = json.loads(SAMPLE.read_text())
    settings["Values"][name] = value
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(settings))
    return path


def test_the_sample_itself_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--settings", str(SAMPLE)]) == EXIT_OK
    assert "configuration is valid" in capsys.readouterr().out


def test_every_setting_of_the_sample_is_broken_once() -> None:
    values = json.loads(SAMPLE.read_text())["Values"]
    assert {name for name in values if name.startswith(("PURGE_", "AZURE_"))} <= set(BROKEN)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_setting_fails_and_is_named(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_settings(tmp_path, name, BROKEN[name])
    assert main(["check-config", "--settings", str(path)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "configuration is valid" not in captured.out
    assert name in captured.err, captured.err


def test_an_empty_schedule_fails_because_the_timer_needs_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_settings(tmp_path, "PURGE_SCHEDULE", "")
    assert main(["check-config", "--settings", str(path)]) == EXIT_BAD_INPUT
    assert "PURGE_SCHEDULE" in capsys.readouterr().err
