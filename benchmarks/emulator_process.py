"""The emulator in a process of its own, as the benchmarks need it.

A separate process keeps the server's event loop and GIL away from the client being measured.
The request log is read back through the control endpoint (`/_emulator/log`).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 60.0


class EmulatorProcess:
    """`with EmulatorProcess(scenario, latency=0.02, writes=33.3) as emu: emu.login_server`

    `reads` / `writes`: the emulator's two request-per-second buckets (None: unlimited).
    """

    def __init__(
        self,
        scenario: dict[str, Any],
        *,
        latency: float = 0.0,
        reads: float | None = None,
        writes: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.latency = latency
        self.reads, self.writes = reads, writes
        self._tmp = tempfile.TemporaryDirectory(prefix="acr-bench-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> EmulatorProcess:
        tmp = Path(self._tmp.name)
        scenario_file = tmp / "scenario.json"
        scenario_file.write_text(json.dumps(self.scenario))
        ready = tmp / "ready.json"
        argv = [
            sys.executable, "-m", "acr_emulator", "--host", "127.0.0.1", "--port", "0",
            "--scenario", str(scenario_file), "--data-dir", str(tmp), "--ready-file", str(ready),
            "--controls", "--latency", str(self.latency),
        ]  # fmt: skip
        if self.reads is not None:
            argv += ["--rate-limit-reads", str(self.reads)]
        if self.writes is not None:
            argv += ["--rate-limit-writes", str(self.writes)]
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if self._proc.poll() is not None:
                error = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"acr_emulator exited with {self._proc.returncode}: {error}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"acr_emulator was not ready within {READY_TIMEOUT:g}s")
            time.sleep(0.05)
        self.info = json.loads(ready.read_text())
        return self

    @property
    def endpoint(self) -> str:
        return str(self.info["endpoint"])

    @property
    def login_server(self) -> str:
        return self.endpoint.removeprefix("https://")

    @property
    def ca_file(self) -> str:
        return str(self.info["ca_file"])

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def settings(self, command: str, concurrency: int | None = None) -> dict[str, str]:
        """App settings for a purge of this emulator with the admin user."""
        environ = {
            "PURGE_REGISTRY": self.login_server,
            "PURGE_ALLOWED_HOSTS": "127.0.0.1",
            "PURGE_CA_FILE": self.ca_file,
            "PURGE_USERNAME": str(self.info["username"]),
            "PURGE_PASSWORD": str(self.info["password"]),
            "PURGE_COMMAND": command,
        }
        if concurrency is not None:
            environ["PURGE_CONCURRENCY"] = str(concurrency)
        return environ

    def control(self, method: str, name: str) -> Any:
        """Call `/_emulator/{name}` (neither logged nor throttled by the emulator)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        request = urllib.request.Request(f"{self.endpoint}/_emulator/{name}", method=method)
        with urllib.request.urlopen(request, context=context, timeout=60) as answer:
            return json.loads(answer.read())

    def request_log(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "log")["requests"])

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "state")["repositories"])

    def peak_rss_mb(self) -> float | None:
        """The emulator's peak RSS (VmHWM), Linux only."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the emulator has used so far, Linux only."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None
        self._tmp.cleanup()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
