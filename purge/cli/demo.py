"""`python -m purge demo`: the whole engine against a local emulated registry, no Azure needed.

It starts `acr_emulator` as a subprocess with the sample scenario, shows the registry, runs sample
rules as a dry run and then for real through the engine's normal path (run_purge over HTTPS with
the admin user), and checks that every surviving tag still pulls completely: manifest by tag,
every child of an index, every referrer, every blob, each verified against its digest. The
emulator is a separate process (not a thread) so that the demo exercises exactly what a user's
registry would: a socket, TLS with a CA file, and the real SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import importlib.util
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp
from rich.console import Console
from rich.table import Table

from purge.config.settings import Config, Connection, describe_rule
from purge.model import (
    INDEX_MEDIA_TYPES,
    KNOWN_MEDIA_TYPES,
    Manifest,
    Tag,
    cosign_subject,
    short_digest,
    short_tag,
)
from purge.registry.acr import open_registry
from purge.render import render_text
from purge.report import Report, human_bytes
from purge.service import run_purge

#: The sample rules, as an ACR Task would spell them (`{{.Run.Registry}}` is the ACR Task
#: placeholder). Each shows a different part of the engine: --keep and --protect, graph safety
#: around indexes and referrers, locks and unknown media types.
SAMPLE_COMMANDS = (
    "acr purge --name web-builds --filter 'shop/web:.*' --ago 30d --keep 2 --untagged "
    "--protect '^release-'",
    "acr purge --name api-releases --filter 'shop/api:.*' --ago 30d --untagged",
    "acr purge --name legacy-tools --filter 'tools/legacy:.*' --ago 180d --untagged",
)
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
#: Accept every manifest type, as a pulling client does; the emulator serves the stored type.
MANIFEST_ACCEPT = ", ".join(sorted(KNOWN_MEDIA_TYPES))


class DemoError(Exception):
    """The demo could not run (emulator missing or failed to start); exit code 2."""


# --- the emulator subprocess -----------------------------------------------------------------


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


# --- a plain OCI reader, independent of the engine -------------------------------------------


class PullError(Exception):
    """A pull step failed: missing, unreadable, or content that does not match its digest."""


class RegistryReader:
    """What a pulling client does, over plain /v2 HTTP with the admin user and the CA.

    Deliberately not the engine's client: the verification must not share a bug with what it
    checks. Every body is checked against its digest.
    """

    def __init__(self, endpoint: str, ca_file: str, username: str, password: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=ca_file)
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Basic {credentials}"},
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        await self._session.close()

    async def _get(self, path: str, accept: str | None = None) -> tuple[bytes, Any]:
        headers = {"Accept": accept} if accept else {}
        url = urljoin(self.endpoint + "/", path.lstrip("/"))
        async with self._session.get(url, headers=headers, ssl=self._ssl) as response:
            body = await response.read()
            if response.status != 200:
                raise PullError(f"GET {path}: HTTP {response.status} {body[:200]!r}")
            return body, response.headers

    async def _paged(self, path: str, key: str) -> list[str]:
        items: list[str] = []
        next_path: str | None = path
        while next_path is not None:
            body, headers = await self._get(next_path)
            items += json.loads(body).get(key) or []
            link = headers.get("Link", "")
            match = re.match(r"\s*<([^>]+)>", link)
            next_path = match.group(1) if match else None
        return items

    async def repositories(self) -> list[str]:
        return await self._paged("/v2/_catalog?n=1000", "repositories")

    async def tags(self, repository: str) -> list[str]:
        return await self._paged(f"/v2/{_q(repository)}/tags/list?n=1000", "tags")

    async def manifest(self, repository: str, reference: str) -> tuple[str, str, dict[str, Any]]:
        """(digest, media type, parsed body); the body must hash to its digest."""
        path = f"/v2/{_q(repository)}/manifests/{_q(reference)}"
        body, headers = await self._get(path, MANIFEST_ACCEPT)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        served = headers.get("Docker-Content-Digest")
        if reference.startswith("sha256:") and digest != reference:
            raise PullError(f"{repository}@{reference}: body hashes to {digest}")
        if served is not None and served != digest:
            raise PullError(f"{repository}:{reference}: body hashes to {digest}, header {served}")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise PullError(f"{repository}:{reference}: manifest is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise PullError(f"{repository}:{reference}: manifest is not a JSON object")
        media_type = document.get("mediaType") or headers.get("Content-Type", "")
        return digest, str(media_type), document

    async def referrers(self, repository: str, digest: str) -> list[str]:
        body, _ = await self._get(f"/v2/{_q(repository)}/referrers/{_q(digest)}")
        return [str(item["digest"]) for item in json.loads(body).get("manifests") or []]

    async def blob(self, repository: str, digest: str) -> int:
        body, _ = await self._get(f"/v2/{_q(repository)}/blobs/{_q(digest)}")
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if actual != digest:
            raise PullError(f"{repository} blob {digest}: content hashes to {actual}")
        return len(body)


def _q(text: str) -> str:
    return quote(text, safe="/")


# --- verification ----------------------------------------------------------------------------


@dataclass
class Verification:
    """What the pull check fetched and what failed; ok only when nothing failed."""

    tags: int = 0
    manifests: int = 0
    referrers: int = 0
    blobs: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tags": self.tags,
            "manifests": self.manifests,
            "referrers": self.referrers,
            "blobs": self.blobs,
            "problems": list(self.problems),
        }


async def verify_pulls(reader: RegistryReader) -> Verification:
    """Pull every tag of every repository completely, as a client would after the purge.

    A tag pulls when its manifest, every manifest an index points at (at any depth), every
    referrer of each of those (signatures, SBOMs, and their referrers) and every blob they name
    can be fetched and match their digests.
    """
    result = Verification()
    for repository in await reader.repositories():
        seen: set[str] = set()
        for tag in await reader.tags(repository):
            result.tags += 1
            try:
                digest, media_type, document = await reader.manifest(repository, tag)
            except PullError as exc:
                result.problems.append(f"{repository}:{tag}: {exc}")
                continue
            await _verify_graph(reader, repository, digest, media_type, document, seen, result)
    return result


async def _verify_graph(
    reader: RegistryReader,
    repository: str,
    digest: str,
    media_type: str,
    document: dict[str, Any],
    seen: set[str],
    result: Verification,
) -> None:
    if digest in seen:
        return
    seen.add(digest)
    result.manifests += 1
    for blob in _blob_digests(document):
        try:
            await reader.blob(repository, blob)
            result.blobs += 1
        except PullError as exc:
            result.problems.append(f"{repository}@{short_digest(digest)}: {exc}")
    edges: list[tuple[str, bool]] = []
    if media_type in INDEX_MEDIA_TYPES:
        edges += [(str(m["digest"]), False) for m in document.get("manifests") or []]
    try:
        edges += [(d, True) for d in await reader.referrers(repository, digest)]
    except PullError as exc:
        result.problems.append(f"{repository}@{short_digest(digest)}: referrers: {exc}")
    for child, is_referrer in edges:
        if child in seen:
            continue
        try:
            child_digest, child_type, child_doc = await reader.manifest(repository, child)
        except PullError as exc:
            what = "referrer" if is_referrer else "child"
            result.problems.append(f"{repository}@{short_digest(digest)}: {what} {child}: {exc}")
            continue
        if is_referrer:
            result.referrers += 1
        await _verify_graph(reader, repository, child_digest, child_type, child_doc, seen, result)


def _blob_digests(document: dict[str, Any]) -> list[str]:
    config = document.get("config")
    blobs = [str(config["digest"])] if isinstance(config, dict) and "digest" in config else []
    for layer in document.get("layers") or []:
        if isinstance(layer, dict) and "digest" in layer:
            blobs.append(str(layer["digest"]))
    return blobs


def plan_differences(dry: Report, real: Report) -> list[str]:
    """Where the real run deleted something other than what the dry run planned."""

    def deleted(report: Report) -> set[str]:
        tags = {f"{t['repository']}:{t['tag']}" for t in report.deleted_tags}
        return tags | {f"{m['repository']}@{m['digest']}" for m in report.deleted_manifests}

    planned, done = deleted(dry), deleted(real)
    return [f"deleted but not planned: {item}" for item in sorted(done - planned)] + [
        f"planned but not deleted: {item}" for item in sorted(planned - done)
    ]


# --- inventory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryRow:
    digest: str
    tags: tuple[str, ...]
    age: str
    locked: str
    kind: str
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "tags": list(self.tags),
            "age": self.age,
            "locked": self.locked,
            "kind": self.kind,
            "size": self.size,
        }


async def take_inventory(
    connection: Connection, reader: RegistryReader, now: datetime
) -> dict[str, list[InventoryRow]]:
    """Each repository's manifests as the engine lists them, described by their bodies."""
    registry = open_registry(connection)
    inventory: dict[str, list[InventoryRow]] = {}
    try:
        async for repository in registry.list_repositories():
            tags = [tag async for tag in registry.list_tags(repository)]
            manifests = [m async for m in registry.list_manifests(repository)]
            bodies = {}
            for manifest in manifests:
                try:
                    _, media_type, document = await reader.manifest(repository, manifest.digest)
                    bodies[manifest.digest] = (media_type, document)
                except PullError:
                    pass  # described as unreadable below
            inventory[repository] = _rows(tags, manifests, bodies, now)
    finally:
        await registry.close()
    return dict(sorted(inventory.items()))


def _rows(
    tags: Sequence[Tag],
    manifests: Sequence[Manifest],
    bodies: dict[str, tuple[str, dict[str, Any]]],
    now: datetime,
) -> list[InventoryRow]:
    parents: dict[str, tuple[str, str]] = {}  # child digest -> (index digest, platform)
    for digest, (media_type, document) in bodies.items():
        if media_type in INDEX_MEDIA_TYPES:
            for entry in document.get("manifests") or []:
                platform = entry.get("platform") or {}
                label = "/".join(
                    str(platform[k]) for k in ("os", "architecture", "variant") if k in platform
                )
                parents[str(entry.get("digest"))] = (digest, label)
    tags_of: dict[str, list[Tag]] = {}
    for tag in tags:
        tags_of.setdefault(tag.digest, []).append(tag)
    rows = []
    for manifest in sorted(manifests, key=_newest_first):
        own_tags = tags_of.get(manifest.digest, [])
        locked = [t.name for t in own_tags if t.locked]
        lock_text = "manifest" if manifest.locked else ""
        if locked:
            lock_text = ", ".join(filter(None, [lock_text, "tag " + ", ".join(locked)]))
        body = bodies.get(manifest.digest)
        kind = _kind(manifest, body, parents, [t.name for t in own_tags])
        rows.append(
            InventoryRow(
                digest=manifest.digest,
                tags=tuple(t.name for t in own_tags),
                age=_age(manifest.last_updated, now),
                locked=lock_text or "no",
                kind=kind,
                size=manifest.size,
            )
        )
    return rows


def _newest_first(manifest: Manifest) -> tuple[float, str]:
    moment = manifest.last_updated
    return (-(moment.timestamp() if moment else 0.0), manifest.digest)


def _kind(
    manifest: Manifest,
    body: tuple[str, dict[str, Any]] | None,
    parents: dict[str, tuple[str, str]],
    tag_names: Sequence[str],
) -> str:
    if body is None:
        return "unreadable manifest"
    media_type, document = body
    if media_type in INDEX_MEDIA_TYPES:
        count = len(document.get("manifests") or [])
        name = "Docker manifest list" if "docker" in media_type else "multi-arch index"
        return f"{name} ({count} platforms)"
    subject = document.get("subject")
    if isinstance(subject, dict):
        artifact = str(document.get("artifactType") or "")
        what = "signature" if "signature" in artifact else "referrer"
        if "spdx" in artifact or "sbom" in artifact or "cyclonedx" in artifact:
            what = "SBOM"
        return f"{what} of {short_digest(str(subject.get('digest')))}"
    for name in tag_names:
        signed = cosign_subject(name)
        if signed:
            return f"cosign {name.rsplit('.', 1)[1]} of {short_digest(signed[0])}"
    if media_type not in KNOWN_MEDIA_TYPES:
        return f"unknown type {media_type}"
    label = "Docker image" if "docker" in media_type else "image"
    if manifest.digest in parents:
        index, platform = parents[manifest.digest]
        return f"{label} {platform} in {short_digest(index)}"
    return label


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "?"
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.0f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{max(seconds / 60, 1):.0f}m"


# --- the demo --------------------------------------------------------------------------------


def sample_rules_setting(commands: Sequence[str] = SAMPLE_COMMANDS) -> str:
    """PURGE_COMMAND for the sample rules, as it would be set on a function app."""
    return " && ".join(commands)


def build_config(info: EmulatorInfo, commands: Sequence[str] = SAMPLE_COMMANDS) -> Config:
    """The engine's normal Config: admin user, the emulator's CA, its host explicitly allowed."""
    from purge.config.command import parse_purge_command

    connection = Connection(
        login_server=info.login_server,
        allowed_hosts=(info.login_server,),
        username=info.username,
        password=info.password,
        ca_file=info.ca_file,
    )
    rules = parse_purge_command(sample_rules_setting(commands), info.login_server)
    return Config(connection=connection, rules=rules)


@dataclass
class DemoResult:
    info: EmulatorInfo
    inventory: dict[str, list[InventoryRow]]
    dry_run: Report
    real_run: Report
    verification: Verification
    plan_differences: list[str]

    @property
    def ok(self) -> bool:
        return self.verification.ok and not self.plan_differences and not self.real_run.errors


async def run_demo(info: EmulatorInfo, out: Output) -> DemoResult:
    """Inventory, dry run, real run, verification: the steps, printed as they happen."""
    config = build_config(info)
    reader = RegistryReader(info.endpoint, info.ca_file, info.username, info.password)
    try:
        now = datetime.now(timezone.utc)
        inventory = await take_inventory(config.connection, reader, now)
        out.inventory(inventory)
        out.rules(config)
        dry = await run_purge(config, dry_run=True)
        out.report("Step 3 - dry run: the plan, with a reason for every deletion and keep", dry)
        real = await run_purge(config, dry_run=False)
        differences = plan_differences(dry, real)
        verification = await verify_pulls(reader)
        out.verification(verification, differences)
        out.report("Step 5 - the real run's report", real)
    finally:
        await reader.close()
    return DemoResult(info, inventory, dry, real, verification, differences)


class Output:
    """Human output: rich tables and colour on a terminal, plain text in a pipe."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        tty = sys.stdout.isatty()
        self.console = Console(
            file=sys.stdout, width=None if tty else 120, highlight=False, soft_wrap=False
        )

    def say(self, text: str = "", style: str | None = None) -> None:
        if self.enabled:
            self.console.print(text, style=style, markup=False, soft_wrap=True)

    def heading(self, text: str) -> None:
        if self.enabled:
            self.console.print()
            self.console.rule(text, style="bold cyan", align="left")

    def started(self, info: EmulatorInfo) -> None:
        self.heading(
            "ACR purge demo - a local emulated registry; no Azure, nothing leaves 127.0.0.1"
        )
        self.say(f"acr_emulator pid {info.pid} serving {info.endpoint}")
        self.say(f"  data dir {info.data_dir}, CA {info.ca_file}, admin user {info.username}")

    def inventory(self, inventory: dict[str, list[InventoryRow]]) -> None:
        self.heading("Step 1 - what is in the registry")
        if not self.enabled:
            return
        for repository, rows in inventory.items():
            table = Table(title=repository, title_justify="left", title_style="bold")
            for column in ("Tags", "Age", "Digest", "Locked", "Kind"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(
                    ", ".join(short_tag(t) for t in row.tags) or "(untagged)",
                    row.age,
                    short_digest(row.digest),
                    row.locked,
                    row.kind,
                )
            self.console.print(table)

    def rules(self, config: Config) -> None:
        self.heading("Step 2 - the sample rules")
        self.say("As ACR Task command lines (also valid as PURGE_COMMAND, joined by '&&'):")
        for command in SAMPLE_COMMANDS:
            self.say(f"  {command.replace('acr purge', 'acr purge -r {{.Run.Registry}}', 1)}")
        self.say("The same rules as PURGE_RULES:")
        rules = [describe_rule(rule) for rule in config.rules]
        compact = [
            {k: v for k, v in rule.items() if v not in (None, [], False, 0)} for rule in rules
        ]
        self.say(json.dumps(compact, indent=2))
        self.say("Try the same with the CLI, e.g.:", style="dim")
        first = shlex.split(SAMPLE_COMMANDS[0])[2:]
        self.say(
            f"  python -m purge run -r {config.connection.login_server} -u "
            f"{config.connection.username} -p *** --ca-file CA --allowed-host "
            f"{config.connection.login_server} --dry-run {shlex.join(first)}",
            style="dim",
        )

    def report(self, title: str, report: Report) -> None:
        self.heading(title)
        if self.enabled:
            self.console.print(render_text(report, width=self.console.width), markup=False)

    def verification(self, result: Verification, differences: list[str]) -> None:
        self.heading("Step 4 - verification: every surviving tag still pulls completely")
        self.say(
            f"pulled {result.tags} tags: {result.manifests} manifests (indexes, children, "
            f"referrers: {result.referrers}) and {result.blobs} blobs, each checked against its "
            "digest"
        )
        for problem in result.problems:
            self.say(f"  FAILED: {problem}", style="bold red")
        self.say(
            "Verification: OK - every surviving tag pulls completely"
            if result.ok
            else f"Verification: FAILED ({len(result.problems)} problems)",
            style="bold green" if result.ok else "bold red",
        )
        for difference in differences:
            self.say(f"  {difference}", style="bold red")
        self.say(
            "The real run deleted exactly what the dry run planned"
            if not differences
            else "The real run differs from the dry run's plan",
            style="green" if not differences else "bold red",
        )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="acr-purge demo",
        description="Purge a local emulated registry: dry run, real run, verification.",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of tables"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the emulator running afterwards (until Ctrl-C) to explore it",
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] = ()) -> int:
    """Exit 0 when the purge ran cleanly and verification passed; 1 otherwise; 2 if it can't run."""
    try:
        ns = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    out = Output(enabled=not ns.json)
    try:
        with emulator_process() as info:
            out.started(info)
            result = asyncio.run(run_demo(info, out))
            if ns.json:
                print(json.dumps(_result_json(result), indent=2, default=str))
            else:
                _conclude(out, result)
            if ns.keep_running:
                _wait_for_interrupt(info)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


def _conclude(out: Output, result: DemoResult) -> None:
    real = result.real_run
    out.heading("Done")
    out.say(
        f"Totals: deleted {len(real.deleted_tags)} tags and {len(real.deleted_manifests)} "
        f"manifests, kept {real.kept_count}, {len(real.errors)} errors; estimated space freed "
        f"up to {human_bytes(real.bytes_freed)} (an upper bound)."
    )
    out.say(
        "Demo OK" if result.ok else "Demo FAILED: see above",
        style="bold green" if result.ok else "bold red",
    )


def _wait_for_interrupt(info: EmulatorInfo) -> None:
    print(
        f"The emulator keeps running at {info.endpoint} (user {info.username}, password "
        f"{info.password}, CA {info.ca_file}). Press Ctrl-C to stop it.",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _result_json(result: DemoResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "emulator": {"endpoint": result.info.endpoint, "pid": result.info.pid},
        "inventory": {
            name: [row.to_dict() for row in rows] for name, rows in result.inventory.items()
        },
        "purgeCommand": sample_rules_setting(),
        "purgeRules": [describe_rule(rule) for rule in build_config(result.info).rules],
        "dryRun": result.dry_run.to_dict(),
        "run": result.real_run.to_dict(),
        "verification": result.verification.to_dict(),
        "planDifferences": list(result.plan_differences),
    }
