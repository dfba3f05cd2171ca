"""The demo's registry: `acr_emulator` as a subprocess, started and always stopped."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class DemoError(Exception):
    """The demo could not run (emulator missing or failed to start); exit code 2."""


@dataclass(frozen=True)
class EmulatorInfo:
    """The ready file's content plus the process, so that it can be shown and stopped."""

    endpoint: str
    ca_file: str
    username: str
    password: str
    pid: int
    data_dir: str

    @property
    def login_server(self) -> str:
        return self.endpoint.removeprefix("https://")


def _emulator_location() -> tuple[Path, Path]:
    """(directory to put on PYTHONPATH, sample scenario) without importing acr_emulator.

    purge/ and acr_emulator/ share no code (DESIGN.md section 2); the demo only runs it.
    """
    spec = importlib.util.find_spec("acr_emulator")
    if spec is None or spec.origin is None:
        raise DemoError(
            "the demo needs the acr_emulator package (it ships with this repository); run it "
            "from a checkout of the project or install the project with `pip install -e .`"
        )
    package = Path(spec.origin).resolve().parent
    return package.parent, package / "scenarios" / "sample.json"


@contextmanager
def emulator_process(scenario: Path | None = None) -> Iterator[EmulatorInfo]:
    """Run `python -m acr_emulator` on a free loopback port; always stopped on exit.

    Stopping is terminate, wait, then kill if it does not exit in time, in a finally: the demo
    never leaves a server behind, whatever fails.
    """
    root, sample = _emulator_location()
    scenario = scenario or sample
    with tempfile.TemporaryDirectory(prefix="acr-purge-demo-") as work:
        data_dir = Path(work) / "data"
        ready = Path(work) / "ready.json"
        stderr_path = Path(work) / "emulator.stderr"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "acr_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--scenario",
            str(scenario),
            "--data-dir",
            str(data_dir),
            "--ready-file",
            str(ready),
        ]
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL, env=env
            )
        try:
            info = _wait_ready(process, ready, stderr_path)
            yield EmulatorInfo(
                endpoint=info["endpoint"],
                ca_file=info["ca_file"],
                username=info["username"],
                password=info["password"],
                pid=process.pid,
                data_dir=str(data_dir),
            )
        finally:
            _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, stderr: Path) -> dict[str, str]:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if process.poll() is not None:
            detail = stderr.read_text(errors="replace").strip()[-2000:]
            raise DemoError(f"the emulator exited with code {process.returncode}: {detail}")
        if time.monotonic() > deadline:
            raise DemoError(f"the emulator did not become ready within {READY_TIMEOUT:g}s")
        time.sleep(0.05)
    info: dict[str, str] = json.loads(ready.read_text())
    return info


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)
