"""Crash and resume: SIGKILL `python -m purge run` mid-run, run it again, compare with a clean run.

Both processes are real: the emulator (`python -m acr_emulator`, with latency so that the purge
is slow) and the CLI. Purging is idempotent (a delete of something already gone is a 404, which
counts as done), so the second run must finish the job, delete nothing the first run would not
have, and leave the registry exactly as one uninterrupted run does.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCENARIO: dict[str, Any] = {
    "repositories": {
        f"app{r}": {
            "manifests": [
                *(
                    {"id": f"b{i}", "kind": "image", "updated": f"-{31 + i}d", "tags": [f"b{i}"]}
                    for i in range(14)
                ),
                {"id": "keep", "kind": "image", "updated": "-1d", "tags": ["latest"]},
                {"id": "orphan", "kind": "image", "updated": "-60d"},
            ]
        }
        for r in range(2)
    }
}
COMMAND = ["--filter", "app.*:^b", "--ago", "30d", "--untagged", "--concurrency", "2"]


class Emulator:
    def __init__(self, info: dict[str, Any]) -> None:
        self.endpoint: str = info["endpoint"]
        self.ca_file: str = info["ca_file"]
        self.username: str = info["username"]
        self.password: str = info["password"]
        self._ssl = ssl.create_default_context(cafile=self.ca_file)

    def control(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.endpoint}/_emulator/{path}", context=self._ssl) as r:
            return json.loads(r.read())

    def state(self) -> dict[str, Any]:
        repos = self.control("state")["repositories"]
        return {
            name: (sorted(repo["tags"]), sorted(repo["manifests"])) for name, repo in repos.items()
        }

    def deletes(self) -> list[str]:
        entries = self.control("log")["requests"]
        return [e["path"] for e in entries if e["method"] == "DELETE" and e["status"] == 202]

    def purge(self, *extra: str) -> subprocess.Popen[str]:
        host = self.endpoint.removeprefix("https://")
        args = ["-r", host, "--allowed-host", host, "--ca-file", self.ca_file]
        args += ["-u", self.username, "-p", self.password, *COMMAND, "--output", "json", *extra]
        return subprocess.Popen(
            [sys.executable, "-m", "purge", "run", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@contextmanager
def emulator(tmp: Path, latency: float) -> Iterator[Emulator]:
    tmp.mkdir()
    (tmp / "scenario.json").write_text(json.dumps(SCENARIO))
    ready = tmp / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "acr_emulator",
            "--port",
            "0",
            "--controls",
            "--scenario",
            str(tmp / "scenario.json"),
            "--data-dir",
            str(tmp),
            "--ready-file",
            str(ready),
            "--latency",
            str(latency),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.05)
        yield Emulator(json.loads(ready.read_text()))
    finally:
        process.terminate()
        process.wait(10)


def test_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    with emulator(tmp_path / "clean", latency=0.0) as clean:
        dry = clean.purge("--dry-run")
        out, err = dry.communicate(timeout=60)
        assert dry.returncode == 0, err
        planned = json.loads(out)
        run = clean.purge()
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        expected = clean.state()
    planned_tags = {(t["repository"], t["tag"]) for t in planned["deleted"]["tags"]}
    planned_digests = {(m["repository"], m["digest"]) for m in planned["deleted"]["manifests"]}
    assert len(planned_digests) == 30

    with emulator(tmp_path / "crash", latency=0.15) as emu:
        before = emu.state()
        first = emu.purge()
        deadline = time.monotonic() + 60
        while len(emu.deletes()) < 4:
            assert first.poll() is None, "the purge finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=10)
        assert first.returncode == -signal.SIGKILL
        time.sleep(0.5)  # requests in flight when it died may still land
        killed = emu.state()
        assert killed != before and killed != expected  # really interrupted mid-run
        second = emu.purge()
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        resumed = json.loads(out)
        deleted_paths = emu.deletes()
        final = emu.state()

    assert final == expected
    # every delete either run sent was in the plan of an uninterrupted run
    allowed = {f"/acr/v1/{r}/_tags/{t}" for r, t in planned_tags}
    allowed |= {f"/v2/{r}/manifests/{d}" for r, d in planned_digests}
    assert deleted_paths and set(deleted_paths) <= allowed
    assert len(deleted_paths) == len(set(deleted_paths))  # nothing deleted twice
    assert resumed["complete"] and resumed["errors"] == []
    assert 0 < len(resumed["deleted"]["manifests"]) < len(planned_digests)
