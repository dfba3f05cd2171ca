"""The registered functions and their bindings, as the Functions host indexes them."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import function_app
from purge.functions import common

ROOT = Path(__file__).resolve().parents[2]


@cache
def indexed() -> dict[str, dict[str, Any]]:
    """get_functions() may run once per FunctionApp: index once, as the host does."""
    return {
        fn.get_function_name(): json.loads(fn.get_function_json())
        for fn in function_app.app.get_functions()
    }


def trigger_of(name: str) -> dict[str, Any]:
    bindings = indexed()[name]["bindings"]
    (trigger,) = [b for b in bindings if b["type"].endswith("Trigger")]
    return trigger


def test_exactly_the_six_functions_are_registered() -> None:
    assert sorted(indexed()) == [
        "purge_http",
        "purge_restore",
        "purge_run",
        "purge_runs",
        "purge_status",
        "purge_timer",
    ]
    assert {fn["scriptFile"] for fn in indexed().values()} == {"function_app.py"}


def test_timer_reads_its_schedule_from_the_setting_and_uses_the_monitor() -> None:
    trigger = trigger_of("purge_timer")
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%PURGE_SCHEDULE%"
    assert trigger["useMonitor"] is True
    assert trigger["name"] == "timer"
    assert "runOnStartup" not in trigger or trigger["runOnStartup"] is False


def test_purge_endpoint_is_post_only_at_function_level() -> None:
    trigger = trigger_of("purge_http")
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "purge"
    assert trigger["methods"] == ["POST"]
    assert trigger["authLevel"].lower() == "function"
    outputs = [b for b in indexed()["purge_http"]["bindings"] if b["direction"] == "OUT"]
    assert outputs == [{"direction": "OUT", "type": "http", "name": "$return"}]


@pytest.mark.parametrize(
    ("name", "route", "method"),
    [
        ("purge_runs", "purge/runs", "GET"),
        ("purge_run", "purge/runs/{id}", "GET"),
        ("purge_restore", "purge/restore", "POST"),
    ],
)
def test_history_endpoints_are_at_function_level(name: str, route: str, method: str) -> None:
    trigger = trigger_of(name)
    assert (trigger["type"], trigger["route"], trigger["methods"]) == (
        "httpTrigger",
        route,
        [method],
    )
    assert trigger["authLevel"].lower() == "function"


def test_status_endpoint_is_get_only_at_function_level() -> None:
    trigger = trigger_of("purge_status")
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "purge/status"
    assert trigger["methods"] == ["GET"]
    assert trigger["authLevel"].lower() == "function"


def test_host_json_bounds_the_run_and_the_default_budget_fits_inside() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    timeout = common.read_function_timeout(ROOT / "host.json")
    assert timeout == 600.0
    budget = common.timer_budget(None, timeout)
    assert 0 < budget <= timeout - common.TIMEOUT_MARGIN_SECONDS


def test_importing_the_app_loads_no_sdk_and_reads_no_setting() -> None:
    """Indexing must be fast and must work before any PURGE_* setting exists."""
    code = (
        "import os, sys\n"
        "for k in [k for k in os.environ if k.startswith('PURGE_')]: del os.environ[k]\n"
        "import function_app\n"
        "assert len(function_app.app.get_functions()) == 6\n"
        "heavy = ('azure.containerregistry', 'azure.identity', 'rich', 'aiohttp', 'purge')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "             or m.startswith(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
