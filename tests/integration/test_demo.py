"""`python -m purge demo` end to end, as a user runs it: a subprocess that starts the emulator.

Also the demo's pull verification against a registry that is really broken, so that a passing
demo means something.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from acr_emulator.testing import EmulatorServer
from purge.cli.pull import RegistryReader, verify_pulls

ROOT = Path(__file__).resolve().parents[2]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "purge", "demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains `text` (scans /proc; no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # the process ended while we looked
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def emulator_alive(pid: int) -> bool:
    """True while `pid` is still an acr_emulator process (a reused PID is someone else)."""
    try:
        return b"acr_emulator" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_demo_prints_plan_verification_and_report_and_leaves_nothing_running() -> None:
    out = run_demo()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    started = re.search(r"acr_emulator pid (\d+) serving https://127\.0\.0\.1:\d+", text)
    data_dir = re.search(r"data dir (\S+),", text)
    assert started and data_dir, text[:2000]
    # The inventory, the rules in both spellings, the dry-run plan with graph-safety reasons.
    assert "multi-arch index (2 platforms)" in text and "signature of sha256:" in text
    assert "acr purge -r {{.Run.Registry}} --name web-builds" in text
    assert '"name": "api-releases"' in text
    for reason in ("kept by --keep 2", "protected by ^release-", "locked", "child of sha256:"):
        assert reason in text, reason
    assert re.search(r"referrer of sha256:\w+… \(tagged 1\.9-lts\)", text)
    assert "Would delete: 127.0.0.1:" in text and "/shop/web:build-101" in text
    assert re.search(r"tag sha256-[0-9a-f]{12}…\.sig +│ signature of deleted sha256:", text)
    # Verification and the real run's totals.
    assert "Verification: OK - every surviving tag pulls completely" in text
    assert "The real run deleted exactly what the dry run planned" in text
    totals = re.search(r"Number of deleted tags: (\d+)\nNumber of deleted manifests: (\d+)", text)
    assert totals and int(totals.group(1)) > 0 and int(totals.group(2)) > 0
    assert re.search(r"Estimated space freed: [\d.]+ MiB \(an upper bound", text)
    assert "\x1b[" not in text  # plain text in a pipe
    # The run history and the undo: the real run is listed, its builds come back (grace kept
    # their images), and the restored tags pull on their old digests.
    assert re.search(r"Step 6 - the run history.*\n  \d{8}T\d{6}Z-[0-9a-f]{6}  finished", text)
    assert re.search(r"restored +shop/web:build-101 @sha256:", text)
    assert "not restorable: manifest deleted (deleted by this run)" in text
    assert "Undo: OK - every restored tag pulls completely, on the digest it had before" in text
    # Nothing left behind: neither the emulator process nor its temporary directory.
    assert not emulator_alive(int(started.group(1)))
    assert processes_mentioning(data_dir.group(1)) == []
    assert not Path(data_dir.group(1)).exists()


def test_demo_json_is_one_document_with_matching_dry_and_real_runs() -> None:
    out = run_demo("--json")
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["verification"]["ok"] is True
    assert doc["verification"]["tags"] > 0 and doc["verification"]["referrers"] > 0
    dry, real = doc["dryRun"], doc["run"]
    assert dry["dryRun"] is True and real["dryRun"] is False
    assert dry["totals"]["tagsDeleted"] == real["totals"]["tagsDeleted"] > 0
    assert dry["totals"]["manifestsDeleted"] == real["totals"]["manifestsDeleted"] > 0
    assert real["totals"]["errors"] == 0 and real["totals"]["bytesFreed"] > 0
    assert {r["name"] for r in doc["purgeRules"]} == {"web-builds", "api-releases", "legacy-tools"}
    # Safety, read from the report: nothing locked and nothing of a kept index was deleted.
    deleted_tags = {(t["repository"], t["tag"]) for t in real["deleted"]["tags"]}
    assert ("shop/web", "v1.0.0") not in deleted_tags and (
        "shop/api",
        "1.9-lts",
    ) not in deleted_tags
    assert [r["id"] for r in doc["runs"]] == [real["run"]]  # the dry run is not recorded
    restored = {t["tag"]: t["digest"] for t in doc["restore"]["tags"] if t["status"] == "restored"}
    assert restored and restored == {
        t["tag"]: t["digest"] for t in real["deleted"]["tags"] if t["tag"] in restored
    }
    assert doc["restoredProblems"] == [] and doc["afterRestore"]["ok"] is True
    assert not emulator_alive(doc["emulator"]["pid"])


def test_demo_rejects_unknown_options() -> None:
    out = run_demo("--frobnicate")
    assert out.returncode == 2 and "--frobnicate" in out.stderr


BROKEN: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "ok", "kind": "image", "tags": ["good"]},
                {"id": "bad", "kind": "image", "corrupt": True, "tags": ["tampered"]},
                {"id": "kid", "kind": "image", "unreadable": True},
                {"id": "idx", "kind": "index", "children": ["kid"], "tags": ["multi"]},
                {"id": "sig", "kind": "artifact", "subject": "ok", "unreadable": True},
            ]
        }
    }
}


async def test_verification_reports_every_piece_that_does_not_pull() -> None:
    with EmulatorServer(scenario=BROKEN) as emu:
        reader = RegistryReader(emu.endpoint, emu.ca_file, "admin", "s3cret-admin")
        try:
            result = await verify_pulls(reader)
        finally:
            await reader.close()
    assert result.tags == 3 and not result.ok
    problems = "\n".join(result.problems)
    assert "app:tampered" in problems and "hashes to" in problems  # digest mismatch
    assert "child sha256:" in problems and "HTTP 500" in problems  # unreadable index child
    assert "referrer sha256:" in problems  # unreadable signature of a good image
    assert not any("app:good" in p and "hashes" in p for p in result.problems)
