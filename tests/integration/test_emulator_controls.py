"""Test controls (latency, rate limit, faults, log), paging cursors, and the CLI's ready file."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from acr_emulator.testing import EmulatorServer
from tests.integration.test_emulator_auth import http

BIG = {"repositories": {"bulk": {"generate": {"count": 250, "tagPrefix": "b-", "step": "1m"}}}}


def admin(emu: EmulatorServer) -> tuple[str, str]:
    assert emu.username and emu.password
    return (emu.username, emu.password)


def test_rate_limit_answers_429_with_retry_after(emulator: EmulatorServer) -> None:
    emulator.set_rate_limit(5)
    statuses, headers = [], []
    for _ in range(12):
        r = http(emulator, "GET", "/acr/v1/_catalog", auth=admin(emulator))
        statuses.append(r.status_code)
        headers.append(r.headers)
    assert 200 in statuses and 429 in statuses
    limited = headers[statuses.index(429)]
    assert int(limited["Retry-After"]) >= 1
    remaining = [float(h["x-ms-ratelimit-remaining-calls-per-second"]) for h in headers]
    assert remaining[0] > remaining[3] >= 0  # truthful: it counts down
    emulator.set_rate_limit(None)
    assert http(emulator, "GET", "/acr/v1/_catalog", auth=admin(emulator)).status_code == 200


def test_reads_and_writes_draw_from_separate_buckets(emulator: EmulatorServer) -> None:
    emulator.set_rate_limits(reads=100, writes=2)
    auth = admin(emulator)
    deletes = [
        http(emulator, "DELETE", f"/acr/v1/hello-world/_tags/{t}", auth=auth)
        for t in ("v1", "v2", "latest")
    ]
    assert [r.status_code for r in deletes] == [202, 202, 429]
    assert float(deletes[1].headers["x-ms-ratelimit-remaining-calls-per-second"]) < 1
    # the write bucket is empty, the read bucket is not: listings go on
    read = http(emulator, "GET", "/acr/v1/hello-world/_tags", auth=auth)
    assert read.status_code == 200
    assert float(read.headers["x-ms-ratelimit-remaining-calls-per-second"]) > 90  # its own bucket
    emulator.set_rate_limits(reads=2, writes=None)
    statuses = [http(emulator, "GET", "/acr/v1/_catalog", auth=auth).status_code for _ in range(4)]
    assert statuses.count(429) >= 1
    assert (
        http(emulator, "DELETE", "/acr/v1/hello-world/_tags/latest", auth=auth).status_code == 202
    )


def test_sku_presets_are_acr_documented_limits(emulator: EmulatorServer) -> None:
    presets = {"basic": (1000, 100), "standard": (3000, 500), "premium": (10000, 2000)}
    for sku, (reads, writes) in presets.items():
        emulator.set_sku(sku)
        limits = emulator._call(emulator.emulator.controls.limits)
        assert limits == pytest.approx({"read": reads / 60, "write": writes / 60})
    with pytest.raises(ValueError, match="sku must be one of"):
        emulator.set_sku("gold")


def test_rate_limit_controls_by_endpoint(emulator_factory: Any) -> None:
    emu = emulator_factory(controls=True)
    r = http(emu, "PUT", "/_emulator/rate-limit", json={"reads": 50, "writes": 5})
    assert r.json() == {"read": 50.0, "write": 5.0}
    r = http(emu, "PUT", "/_emulator/rate-limit", json={"sku": "standard"})
    assert r.json() == pytest.approx({"read": 50.0, "write": 500 / 60})
    r = http(emu, "PUT", "/_emulator/rate-limit", json={"rps": 7})
    assert r.json() == {"read": 7.0, "write": 7.0}  # --rate-limit keeps meaning both
    assert http(emu, "GET", "/_emulator/rate-limit").json() == {"read": 7.0, "write": 7.0}
    assert http(emu, "PUT", "/_emulator/rate-limit", json={"writes": -1}).status_code == 400
    assert http(emu, "PUT", "/_emulator/rate-limit", json={"sku": "gold"}).status_code == 400
    r = http(emu, "PUT", "/_emulator/rate-limit", json={"rps": None})
    assert r.json() == {"read": None, "write": None}


def test_injected_status_and_drop_and_latency(emulator: EmulatorServer) -> None:
    emulator.inject_fault(method="DELETE", path_regex=r"/_tags/v1$", status=503, count=1)
    r = http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", auth=admin(emulator))
    assert r.status_code == 503
    assert http(emulator, "GET", "/acr/v1/_catalog", auth=admin(emulator)).status_code == 200
    emulator.inject_fault(path_regex="_catalog", status=None, drop=True, count=1)
    with pytest.raises(requests.ConnectionError):
        http(emulator, "GET", "/acr/v1/_catalog", auth=admin(emulator))
    emulator.set_latency(0.3)
    t0 = time.monotonic()
    http(emulator, "GET", "/acr/v1/_catalog", auth=admin(emulator))
    assert time.monotonic() - t0 >= 0.3
    log = emulator.request_log()
    assert [e["status"] for e in log[:3]] == [503, 200, -1]
    assert log[0]["method"] == "DELETE" and log[0]["path"] == "/acr/v1/hello-world/_tags/v1"
    emulator.reset_log()
    assert emulator.request_log() == []


def test_control_endpoint(emulator_factory: Any) -> None:
    emu = emulator_factory(controls=True)
    assert http(emu, "PUT", "/_emulator/rate-limit", json={"rps": 2}).status_code == 200
    assert http(emu, "POST", "/_emulator/faults", json={"status": 500, "count": 1}).ok
    assert http(emu, "GET", "/acr/v1/_catalog", auth=admin(emu)).status_code == 500
    state = http(emu, "GET", "/_emulator/state").json()
    assert set(state["repositories"]) == {"hello-world", "team/web"}
    log = http(emu, "GET", "/_emulator/log").json()["requests"]
    assert [e["status"] for e in log] == [500]
    bad = http(emu, "POST", "/_emulator/faults", json={"status": 999})
    assert bad.status_code == 400 and "100-599" in bad.json()["error"]
    off = emulator_factory(controls=False)
    assert http(off, "GET", "/_emulator/state").status_code == 404


@pytest.mark.parametrize("order", ["", "timedesc", "timeasc"])
def test_last_cursor_survives_deleting_that_item(emulator_factory: Any, order: str) -> None:
    emu = emulator_factory(BIG)
    auth = admin(emu)
    seen: list[str] = []
    url = f"/acr/v1/bulk/_tags?n=100&orderby={order}"
    while url:
        r = http(emu, "GET", url, auth=auth)
        names = [t["name"] for t in r.json()["tags"]]
        seen.extend(names)
        for name in names:  # delete the whole page, cursor item included, then follow Link
            assert http(emu, "DELETE", f"/acr/v1/bulk/_tags/{name}", auth=auth).status_code == 202
        link = r.headers.get("Link")
        url = link[1 : link.index(">")] if link else ""
    assert len(seen) == 250 == len(set(seen))
    if order == "timeasc":
        assert seen[:2] == ["b-0", "b-1"]
    assert emu.dump()["repositories"]["bulk"]["tags"] == {}


def test_page_size_is_clamped_to_1000_and_checked(emulator_factory: Any) -> None:
    emu = emulator_factory({"repositories": {"bulk": {"generate": {"count": 1100}}}})
    r = http(emu, "GET", "/acr/v1/bulk/_manifests?n=5000", auth=admin(emu))
    assert len(r.json()["manifests"]) == 1000 and "n=1000" in r.headers["Link"]
    bad = http(emu, "GET", "/acr/v1/bulk/_tags?n=zero", auth=admin(emu))
    assert bad.status_code == 400


@contextlib.contextmanager
def emulator_process(tmp_path: Path, *flags: str) -> Iterator[dict[str, Any]]:
    """`python -m acr_emulator` with `flags` on a free port: its ready file, once listening."""
    scenario = Path(__file__).resolve().parents[2] / "acr_emulator" / "scenarios" / "sample.json"
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "acr_emulator", "--port", "0", "--scenario", str(scenario),
         "--data-dir", str(tmp_path / "data"), "--ready-file", str(ready), *flags],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield json.loads(ready.read_text())
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_writes_ready_file_once_listening(tmp_path: Path) -> None:
    with emulator_process(tmp_path) as info:
        assert info["ca_file"] == str(tmp_path / "data" / "ca.pem")
        r = requests.get(
            info["endpoint"] + "/acr/v1/_catalog",
            verify=info["ca_file"],
            auth=(info["username"], info["password"]),
            timeout=10,
        )
        assert r.status_code == 200 and len(r.json()["repositories"]) >= 3


@pytest.mark.parametrize(
    ("flags", "limits"),
    [
        # ACR's per-minute limits by SKU, per second: reads 1,000 / 3,000 / 10,000 and writes
        # 100 / 500 / 2,000 a minute
        (["--sku", "basic"], {"read": 1000 / 60, "write": 100 / 60}),
        (["--sku", "premium"], {"read": 10000 / 60, "write": 2000 / 60}),
        (["--rate-limit", "7"], {"read": 7.0, "write": 7.0}),  # one figure: both budgets
        (["--rate-limit", "7", "--rate-limit-writes", "2"], {"read": 7.0, "write": 2.0}),
        (["--rate-limit-reads", "40"], {"read": 40.0, "write": None}),
    ],
)
def test_cli_rate_limit_flags_set_both_budgets(
    tmp_path: Path, flags: list[str], limits: dict[str, float | None]
) -> None:
    with emulator_process(tmp_path, "--controls", *flags) as info:
        r = requests.get(
            info["endpoint"] + "/_emulator/rate-limit", verify=info["ca_file"], timeout=10
        )
        assert r.status_code == 200
        assert r.json() == pytest.approx(limits)


def test_cli_rejects_bad_flags(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "acr_emulator", "--data-dir", str(tmp_path), "--rate-limit", "-3"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 2 and "--rate-limit must be a positive" in out.stderr
    for flags, message in [
        (["--rate-limit-writes", "0"], "--rate-limit-writes must be a positive"),
        (["--sku", "standard", "--rate-limit", "5"], "either --sku or --rate-limit"),
        (["--sku", "gold"], "invalid choice"),
    ]:
        out = subprocess.run(
            [sys.executable, "-m", "acr_emulator", "--data-dir", str(tmp_path), *flags],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert out.returncode == 2 and message in out.stderr, out.stderr
