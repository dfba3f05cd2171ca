"""Azurite, Microsoft's storage emulator (npm `azurite`), for the demo and the tests only.

The function app never imports this. Azurite is installed on first use with `npm install` into
a git-ignored cache folder (`.cache/azurite` at the repository root, or AZURITE_CACHE), so the
README's one-line set-up commands stay enough on a fresh machine; that install takes under a
minute, once. Each Azurite runs on a free loopback port with its data in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
#: The version installed on first use, pinned so that every machine tests against the same
#: storage emulator (3.x serves the blob API the SDK speaks; 3.35.0 is the one measured here).
VERSION = "3.35.0"
PACKAGE = f"azurite@{VERSION}"
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 30.0


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started; the message says what to do."""


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    port: int
    account_key: str = ACCOUNT_KEY

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.account_key)


def connection_string(port: int, account_key: str = ACCOUNT_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={account_key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def cache_dir() -> Path:
    configured = os.environ.get("AZURITE_CACHE")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / ".cache" / "azurite"


def _binary(folder: Path) -> Path:
    return folder / "node_modules" / ".bin" / "azurite-blob"


def _installed_version(folder: Path) -> str | None:
    try:
        manifest = (folder / "node_modules" / "azurite" / "package.json").read_text()
        version = json.loads(manifest).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def azurite_blob_command() -> Path:
    """The `azurite-blob` executable of the pinned VERSION, installed into the cache folder
    when absent or another version. The install goes to a fresh folder beside the cache and
    replaces it only once complete, so an interrupted or concurrent install never leaves a
    half-installed cache that looks ready."""
    target = cache_dir()
    binary = _binary(target)
    if binary.exists() and _installed_version(target) == VERSION:
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise AzuriteError(
            "Azurite (the storage emulator used for run history) needs Node.js and npm: "
            "install them (e.g. `apt-get install nodejs npm`) and run again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        try:
            done = subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", PACKAGE],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AzuriteError(f"`npm install {PACKAGE}` took over {INSTALL_TIMEOUT:g}s") from exc
        if done.returncode != 0 or _installed_version(staging) != VERSION:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise AzuriteError(f"`npm install {PACKAGE}` failed: {' | '.join(tail)}")
        if binary.exists() and _installed_version(target) == VERSION:
            return binary  # another process finished the same install first
        shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError as exc:  # another install landed between the two lines above
            if _installed_version(target) != VERSION:
                raise AzuriteError(f"could not move Azurite into {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def azurite() -> Iterator[Azurite]:
    """Start Azurite's blob service on a free loopback port; stop it and drop its data after."""
    binary = azurite_blob_command()
    with tempfile.TemporaryDirectory(prefix="azurite-") as data:
        port = free_port()
        log = Path(data) / "azurite.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    str(binary),
                    "--blobHost", "127.0.0.1",
                    "--blobPort", str(port),
                    "--location", str(Path(data) / "store"),
                    "--skipApiVersionCheck",
                    "--loose",
                    "--silent",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_listening(process, port, log)
            yield Azurite(port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AzuriteError(
                f"Azurite exited with {process.returncode}: {log.read_text()[-500:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AzuriteError(f"Azurite did not listen on port {port} within {START_TIMEOUT:g}s")
