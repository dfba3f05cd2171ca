"""EmulatorServer: the emulator on 127.0.0.1 in a background thread, for tests and benchmarks.

The server runs its own event loop in its own thread so that sync clients, aio clients (on the
test's loop) and subprocesses can all talk to it. Every state change from the test thread is
run on the server's loop, so the handlers never see a half-applied change.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .server import Emulator, server_ssl_context, test_ca, write_ca

T = TypeVar("T")

# A small registry most tests start from: an image, a multi-arch index, a signature, a lock.
SMALL_SCENARIO: dict[str, Any] = {
    "repositories": {
        "hello-world": {
            "manifests": [
                {"id": "v1", "kind": "image", "layers": 2, "updated": "-40d", "tags": ["v1"]},
                {
                    "id": "v2",
                    "kind": "image",
                    "layers": 1,
                    "updated": "-20d",
                    "tags": ["v2", "latest"],
                },
                {"id": "old", "kind": "image", "updated": "-60d"},
                {
                    "id": "pinned",
                    "kind": "image",
                    "updated": "-90d",
                    "tags": [{"name": "stable", "locked": True}],
                },
            ]
        },
        "team/web": {
            "manifests": [
                {"id": "amd64", "kind": "image", "platform": "linux/amd64", "updated": "-10d"},
                {"id": "arm64", "kind": "image", "platform": "linux/arm64", "updated": "-10d"},
                {
                    "id": "multi",
                    "kind": "index",
                    "children": ["amd64", "arm64"],
                    "updated": "-10d",
                    "tags": ["1.0"],
                },
                {
                    "id": "sig",
                    "kind": "artifact",
                    "subject": "multi",
                    "updated": "-9d",
                    "artifactType": "application/vnd.cncf.notary.signature",
                },
            ]
        },
    }
}


class EmulatorServer:
    def __init__(
        self,
        scenario: dict[str, Any] | str | Path | None = None,
        username: str | None = "admin",
        password: str | None = "s3cret-admin",
        anonymous_pull: bool = False,
        controls: bool = True,
        data_dir: str | Path | None = None,
        aad_allow_list: set[str] | None = None,
        abac: bool = False,
    ) -> None:
        if isinstance(scenario, dict):
            scenario = copy.deepcopy(scenario)
        self.username, self.password = username, password
        self.emulator = Emulator.build(
            scenario, username, password, anonymous_pull, controls, aad_allow_list, abac
        )
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="acr-emulator-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir)
        self.ca = test_ca()
        self.ca_file = str(write_ca(self.ca, self.data_dir))
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="acr-emulator", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise RuntimeError(f"acr emulator failed to start: {failure[0]}") from failure[0]
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.emulator.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl_context(self.ca))
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop (or inline before start) and return its result."""
        if self._loop is None:
            return fn()

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(30)

    # -- addresses ---------------------------------------------------------------------------
    @property
    def login_server(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"https://{self.login_server}"

    # -- inspection and controls -------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return self._call(self.emulator.registry.dump)

    def request_log(self) -> list[dict[str, Any]]:
        return self._call(lambda: [dict(e) for e in self.emulator.controls.log])

    def reset_log(self) -> None:
        self._call(self.emulator.controls.log.clear)

    def issued_tokens(self) -> list[str]:
        return self._call(lambda: list(self.emulator.tokens.issued))

    def aad_tokens_seen(self) -> list[str]:
        return self._call(lambda: list(self.emulator.tokens.aad_tokens_seen))

    def set_latency(self, seconds: float) -> None:
        def apply() -> None:
            self.emulator.controls.latency = float(seconds)

        self._call(apply)

    def set_rate_limit(self, rps: float | None) -> None:
        """The same limit for reads and for writes (two buckets); None: no limit."""
        self._call(lambda: self.emulator.controls.set_rate_limit(rps))

    def set_rate_limits(self, reads: float | None, writes: float | None) -> None:
        self._call(lambda: self.emulator.controls.set_rate_limits(reads, writes))

    def set_sku(self, sku: str) -> None:
        self._call(lambda: self.emulator.controls.set_sku(sku))

    def inject_fault(
        self,
        method: str = "*",
        path_regex: str = ".*",
        status: int | None = 503,
        drop: bool = False,
        count: int = 1,
        delay: float = 0.0,
        skip: int = 0,
        after_acting: bool = False,
    ) -> None:
        """Fail the next `count` matching requests, after letting `skip` of them through.

        `after_acting` (with `drop`): the request is carried out, then its answer is lost."""
        self._call(
            lambda: self.emulator.controls.inject(
                method, path_regex, status, drop, count, delay, skip, after_acting
            )
        )

    def clear_faults(self) -> None:
        self._call(self.emulator.controls.faults.clear)

    def set_token_lifetime(self, seconds: float) -> None:
        def apply() -> None:
            self.emulator.tokens.lifetime = float(seconds)

        self._call(apply)

    def push_manifest(
        self, repo: str, manifest: bytes, media_type: str, tag: str | None = None
    ) -> str:
        return self._call(
            lambda: self.emulator.registry.push_manifest(repo, manifest, media_type, tag)
        )

    def push_blob(self, data: bytes) -> str:
        return self._call(lambda: self.emulator.registry.put_blob(data))
