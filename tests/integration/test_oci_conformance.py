"""The OCI distribution-spec conformance suite (v1.1.1, all four workflows) against the emulator.

The suite and its runner live in ../shared/tools/oci-conformance/ (CI lays ../shared/ beside the
clone); a user's clone has none, so the test skips there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT.parent / "shared" / "tools" / "oci-conformance" / "run.sh"
pytestmark = pytest.mark.skipif(
    not RUNNER.is_file(),
    reason=f"no OCI conformance suite at {RUNNER} (CI has ../shared/ beside the clone)",
)


def test_oci_conformance_suite_passes_on_the_emulator(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(RUNNER), "--emulator", sys.executable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "RESULTS": str(tmp_path)},
    )
    last = re.search(r"oci-conformance: (\d+) passed, (\d+) failed, (\d+) skipped", out.stdout)
    assert last, out.stdout + out.stderr
    passed, failed = int(last.group(1)), int(last.group(2))
    assert failed == 0, out.stdout
    assert passed >= 74, out.stdout  # Pull, Push, Content Discovery, Content Management
