"""Run history from the CLI, with real processes: `run --history DIR`, `runs`, `restore`, and a
run killed mid-way whose record still lists everything that may have been deleted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.test_crash_resume import ROOT, emulator


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "purge", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_killed_run_leaves_a_record_of_every_deletion(tmp_path: Path) -> None:
    history = tmp_path / "runs"
    with emulator(tmp_path / "emu", latency=0.15) as emu:
        before = emu.state()
        first = emu.purge("--history", str(history))
        deadline = time.monotonic() + 60
        while len(emu.deletes()) < 4:
            assert first.poll() is None, "the purge finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=10)
        time.sleep(0.5)
        after = emu.state()
        listed = cli("runs", "--history", str(history), "--output", "json")
        assert listed.returncode == 0, listed.stderr
        runs = json.loads(listed.stdout)["runs"]
        assert [r["state"] for r in runs] == ["running"]  # it never finished
        shown = cli("runs", runs[0]["id"], "--history", str(history))
        record = json.loads(shown.stdout)
    gone = {
        (repository, tag)
        for repository, (tags, _) in before.items()
        for tag in tags
        if tag not in after[repository][0]
    }
    recorded = {(p["repository"], p["tag"]) for p in record["planned"] if p["kind"] == "tag"}
    assert gone and gone <= recorded


def test_runs_and_restore_from_the_command_line(tmp_path: Path) -> None:
    history = tmp_path / "runs"
    with emulator(tmp_path / "emu", latency=0.0) as emu:
        before = emu.state()
        run = emu.purge("--history", str(history))
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        run_id = json.loads(out)["run"]
        listed = cli("runs", "--history", str(history))
        assert listed.returncode == 0 and listed.stdout.startswith(run_id)
        host = emu.endpoint.removeprefix("https://")
        access = [
            "--allowed-host",
            host,
            "--ca-file",
            emu.ca_file,
            "-u",
            emu.username,
            "-p",
            emu.password,
        ]
        dry = cli(
            "restore", run_id, "--history", str(history), "--dry-run", "--time-budget", "60",
            "--output", "json", *access,
        )  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["complete"] is True
        dry = cli("restore", run_id, "--history", str(history), "--dry-run", *access)
        assert dry.returncode == 0, dry.stderr
        assert "would restore 0 tags" in dry.stdout  # --untagged deleted every image of these tags
        assert "not restorable (manifest deleted)" in dry.stdout
        assert emu.state() != before
        missing = cli("restore", "20200101T000000Z-abcdef", "--history", str(history), *access)
        assert missing.returncode == 1 and "no run '20200101T000000Z-abcdef'" in missing.stderr
        no_time = cli("restore", run_id, "--history", str(history), "--time-budget", "0")
        assert no_time.returncode == 2 and "expected seconds > 0, got '0'" in no_time.stderr
        bad = cli("runs", "--history", "nowhere-special")
        assert bad.returncode == 2 and "--history: 'nowhere-special' is not" in bad.stderr
