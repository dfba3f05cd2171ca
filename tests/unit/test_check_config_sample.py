"""The shipped local.settings.sample.json is valid, safe, and accepted by `check-config`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from purge.config.settings import KNOWN_SETTINGS, load_settings_file

SAMPLE = Path(__file__).resolve().parents[2] / "local.settings.sample.json"


def test_sample_loads_and_is_safe() -> None:
    config = load_settings_file(SAMPLE, require_schedule=True)
    assert config.dry_run is True
    assert config.connection.login_server.endswith(".azurecr.io")
    assert config.connection.username is None and config.connection.password is None
    assert len(config.rules) >= 2
    assert all(r.max_deletions is not None or r.untagged_only for r in config.rules)


def test_sample_lists_every_setting() -> None:
    values = json.loads(SAMPLE.read_text())["Values"]
    assert set(KNOWN_SETTINGS) | {"AZURE_CLIENT_ID"} <= set(values)
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"


def test_check_config_accepts_the_sample() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "purge", "check-config", "--settings", str(SAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "old-builds" in result.stdout
    assert "0 0 3 * * *" in result.stdout
