"""The graph-safety corpus, end to end: one emulator scenario per graph shape, purged for real.

Each `tests/fixtures/scenarios/graph/<shape>.json` is a plain emulator scenario (loadable with
`python -m acr_emulator --scenario`); its sibling `<shape>.expect.json` says, run by run, which
command to run and which tags (`repo:tag`) and manifests (`repo@id`) must survive or be gone.
The two lists must together name everything in the registry before the run, so an unexpected
deletion can never go unnoticed. `{id}` in a tag stands for the hex digest of that manifest
(cosign tags); `push` pushes a new image onto a tag before the run; `unpullable` names
manifests the scenario made unreadable on purpose; `errors` says whether the run must report
errors (fail closed) or none; `unlocked` lists exactly what may be PATCHed (unlocked), nothing
when absent, and `unlockedRepositories` the repositories that may be unlocked for the run (each
must be locked again afterwards: every repository's attributes end as they began);
`auth: managed-identity` signs in through a local managed-identity endpoint instead of the
admin user.

The purge is the real one (run_purge -> purge.registry.acr -> azure-containerregistry -> HTTPS). The
outcome is read from the emulator (its state dump) and by pulling over plain /v2 with
purge.cli.pull.RegistryReader, which shares no code with the engine: every surviving tag pulls
completely (manifest, blobs, every child of an index at any depth, every referrer of each, digests
checked), everything planned is gone, and a dry run of the same state planned exactly what the
real run deleted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from acr_emulator.scenario import manifest_digests
from acr_emulator.testing import EmulatorServer
from purge.cli.pull import PullError, RegistryReader
from purge.config.command import parse_purge_command
from purge.config.settings import Config, Connection
from purge.report import Report
from purge.service import run_purge
from tests.fixtures.images import oci_image

GRAPH_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios" / "graph"
SHAPES = sorted(
    p.name.removesuffix(".json")
    for p in GRAPH_DIR.glob("*.json")
    if not p.name.endswith(".expect.json")
)
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_ID_REF = re.compile(r"\{([^{}]+)\}")
RUN_KEYS = {
    "command", "survive", "gone", "push", "unpullable", "errors", "auth", "unlocked",
    "unlockedRepositories",
}  # fmt: skip


# --- the corpus --------------------------------------------------------------------------------


@dataclass
class Shape:
    name: str
    scenario: dict[str, Any]
    expect: dict[str, Any]
    digests: dict[str, dict[str, str]]

    @classmethod
    def load(cls, name: str) -> Shape:
        scenario = json.loads((GRAPH_DIR / f"{name}.json").read_text())
        expect = json.loads((GRAPH_DIR / f"{name}.expect.json").read_text())
        for number, run in enumerate(expect["runs"], start=1):
            unknown = set(run) - RUN_KEYS
            assert not unknown, f"{name}.expect.json run {number}: unknown keys {sorted(unknown)}"
        return cls(name, scenario, expect, manifest_digests(scenario))

    def digest(self, repository: str, mid: str) -> str:
        try:
            return self.digests[repository][mid]
        except KeyError:
            raise AssertionError(f"{self.name}: no manifest {repository}@{mid}") from None

    def item(self, text: str) -> str:
        """`repo@id` -> `repo@sha256:...`; `repo:tag` with `{id}` -> the cosign tag name."""
        if "@" in text:
            repository, _, mid = text.partition("@")
            return f"{repository}@{self.digest(repository, mid)}"
        repository, _, tag = text.rpartition(":")
        assert repository, f"{self.name}: {text!r} is neither repo:tag nor repo@id"

        def hex_of(match: re.Match[str]) -> str:
            return self.digest(repository, match.group(1)).removeprefix("sha256:")

        return f"{repository}:{_ID_REF.sub(hex_of, tag)}"

    def items(self, texts: Iterable[str]) -> set[str]:
        resolved = [self.item(t) for t in texts]
        assert len(resolved) == len(set(resolved)), f"{self.name}: an item is listed twice"
        return set(resolved)


def inventory(dump: dict[str, Any]) -> set[str]:
    """Every tag (`repo:tag`) and manifest (`repo@digest`) in an emulator dump."""
    items: set[str] = set()
    for repository, r in dump["repositories"].items():
        items |= {f"{repository}:{tag}" for tag in r["tags"]}
        items |= {f"{repository}@{digest}" for digest in r["manifests"]}
    return items


def reported_deletions(report: Report) -> set[str]:
    tags = {f"{t['repository']}:{t['tag']}" for t in report.deleted_tags}
    return tags | {f"{m['repository']}@{m['digest']}" for m in report.deleted_manifests}


def attributes(dump: dict[str, Any], item: str) -> dict[str, Any]:
    """What a survivor must still have after the run: its digest (tags) and its locks."""
    if "@" in item:
        repository, _, digest = item.partition("@")
        m = dump["repositories"][repository]["manifests"][digest]
        return {"attrs": m["changeableAttributes"], "subject": m["subject"]}
    repository, _, tag = item.rpartition(":")
    t = dump["repositories"][repository]["tags"][tag]
    return {"attrs": t["changeableAttributes"], "digest": t["digest"]}


# --- pushing between runs ----------------------------------------------------------------------


def push_image(emu: EmulatorServer, shape: Shape, repository: str, mid: str, tag: str) -> None:
    """Push a fresh single-platform OCI image (blobs first, as a client does) onto `tag`."""
    body, expected = oci_image(emu, f"{shape.name}/{repository}/{mid}")
    digest = emu.push_manifest(repository, body, OCI_MANIFEST, tag)
    assert digest == expected
    shape.digests.setdefault(repository, {})[mid] = digest


# --- pulling, independent of the engine --------------------------------------------------------


@dataclass
class Pulled:
    manifests: set[str] = field(default_factory=set)
    blobs: int = 0


def _blobs(document: dict[str, Any]) -> list[str]:
    config = document.get("config")
    found = [config["digest"]] if isinstance(config, dict) and "digest" in config else []
    return found + [layer["digest"] for layer in document.get("layers") or []]


async def pull_graph(
    reader: RegistryReader,
    repository: str,
    reference: str,
    expected: str,
    unpullable: set[str],
    pulled: Pulled,
) -> None:
    """Pull `reference` as a client would: body, blobs, children and referrers, recursively."""
    item = f"{repository}@{expected}"
    if item in pulled.manifests:
        return
    digest, media_type, document = await reader.manifest(repository, reference)
    assert digest == expected, f"{repository}:{reference} serves {digest}, expected {expected}"
    pulled.manifests.add(item)
    for blob in _blobs(document):
        await reader.blob(repository, blob)
        pulled.blobs += 1
    edges = (
        [m["digest"] for m in document.get("manifests") or []] if media_type in INDEX_TYPES else []
    )
    edges += await reader.referrers(repository, digest)
    for edge in edges:
        if f"{repository}@{edge}" not in unpullable:
            await pull_graph(reader, repository, edge, edge, unpullable, pulled)


async def assert_gone(reader: RegistryReader, item: str) -> None:
    if "@" in item:
        repository, _, reference = item.partition("@")
    else:
        repository, _, reference = item.rpartition(":")
    with pytest.raises(PullError, match=r"HTTP 404"):
        await reader.manifest(repository, reference)


async def verify_pulls(
    emu: EmulatorServer, after: dict[str, Any], survive: set[str], gone: set[str],
    unpullable: set[str],
) -> Pulled:  # fmt: skip
    """Every survivor pulls completely; every pull stays within the survivors; the gone 404."""
    reader = RegistryReader(emu.endpoint, emu.ca_file, emu.username or "", emu.password or "")
    pulled = Pulled()
    try:
        for item in sorted(survive - unpullable):
            if "@" in item:
                repository, _, digest = item.partition("@")
                await pull_graph(reader, repository, digest, digest, unpullable, pulled)
            else:
                repository, _, tag = item.rpartition(":")
                digest = after["repositories"][repository]["tags"][tag]["digest"]
                if f"{repository}@{digest}" not in unpullable:
                    await pull_graph(reader, repository, tag, digest, unpullable, pulled)
        for item in sorted(gone):
            await assert_gone(reader, item)
        for item in sorted(unpullable):  # the scenario really hides these graphs
            repository, _, digest = item.partition("@")
            with pytest.raises(PullError):
                await reader.manifest(repository, digest)
    finally:
        await reader.close()
    outside = {m for m in pulled.manifests if m not in survive}
    assert not outside, f"pulls reached manifests that are not survivors: {sorted(outside)}"
    return pulled


# --- running -----------------------------------------------------------------------------------


def config_for(emu: EmulatorServer, command: str, managed_identity: bool) -> Config:
    """The engine's normal Config: the emulator's host explicitly allowed, its CA trusted."""
    connection = Connection(
        login_server=emu.login_server,
        allowed_hosts=(emu.login_server,),
        username=None if managed_identity else emu.username,
        password=None if managed_identity else emu.password,
        ca_file=emu.ca_file,
    )
    return Config(connection=connection, rules=parse_purge_command(command, emu.login_server))


def writes(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if e["method"] in ("DELETE", "PATCH", "PUT")]


def unlocked_repositories(log: list[dict[str, Any]]) -> set[str]:
    """Repositories PATCHed (unlocked, then locked again) in a request log."""
    return {
        e["path"].removeprefix("/acr/v1/")
        for e in log
        if e["method"] == "PATCH" and not re.search(r"/_(tags|manifests)/", e["path"])
    }


def unlocked_items(log: list[dict[str, Any]]) -> set[str]:
    """`repo:tag` / `repo@digest` of every PATCH (unlock) of an item in a request log."""
    items = set()
    for entry in log:
        if entry["method"] != "PATCH" or entry["path"].removeprefix("/acr/v1/") in (
            unlocked_repositories([entry])
        ):
            continue
        match = re.fullmatch(r"/acr/v1/(.+)/_(tags|manifests)/([^/]+)", entry["path"])
        assert match, f"unexpected PATCH {entry['path']}"
        repository, kind, ref = match.groups()
        items.add(f"{repository}:{ref}" if kind == "tags" else f"{repository}@{ref}")
    return items


async def dry_plan(emu: EmulatorServer, config: Config) -> set[str]:
    """What a dry run plans, checking that it changes nothing in the registry."""
    before = emu.dump()
    emu.reset_log()
    report = await run_purge(config, dry_run=True)
    assert writes(emu.request_log()) == [], "a dry run sent a write request"
    assert emu.dump() == before, "a dry run changed the registry"
    assert report.dry_run
    return reported_deletions(report)


@pytest.mark.parametrize("name", SHAPES)
async def test_graph_shape_end_to_end(
    name: str, emulator_factory: Callable[..., EmulatorServer], request: pytest.FixtureRequest
) -> None:
    shape = Shape.load(name)
    emu = emulator_factory(scenario=shape.scenario)
    initial = emu.dump()
    for repository, ids in shape.digests.items():  # the id -> digest map is the served one
        assert set(ids.values()) == set(initial["repositories"][repository]["manifests"])

    for number, run in enumerate(shape.expect["runs"], start=1):
        where = f"{name} run {number}"
        for push in run.get("push", ()):
            push_image(emu, shape, push["repository"], push["id"], push["tag"])
        managed_identity = run.get("auth") == "managed-identity"
        identity = request.getfixturevalue("identity_endpoint") if managed_identity else None
        config = config_for(emu, run["command"], managed_identity)
        survive, gone = shape.items(run["survive"]), shape.items(run["gone"])
        unpullable = shape.items(run.get("unpullable", ()))
        before = emu.dump()
        assert not survive & gone, f"{where}: in both lists: {sorted(survive & gone)}"
        assert survive | gone == inventory(before), (
            f"{where}: survive + gone must name everything; missing "
            f"{sorted(inventory(before) - survive - gone)}, unknown "
            f"{sorted(survive | gone - inventory(before))}"
        )

        # The dry run: on a fresh copy for the first run, else on this registry before the run.
        if number == 1:
            copy = emulator_factory(scenario=shape.scenario)
            planned = await dry_plan(copy, config_for(copy, run["command"], managed_identity))
        else:
            planned = await dry_plan(emu, config)

        emu.reset_log()
        report = await run_purge(config, dry_run=False)
        log = emu.request_log()
        after = emu.dump()
        deleted = inventory(before) - inventory(after)

        assert deleted == gone, (
            f"{where}: deleted but expected to survive {sorted(deleted - gone)}; "
            f"expected gone but still there {sorted(gone - deleted)}"
        )
        assert inventory(after) == survive
        assert planned == deleted, (
            f"{where}: dry run planned {sorted(planned ^ deleted)} differently"
        )
        assert reported_deletions(report) == deleted, f"{where}: report disagrees with the registry"
        for item in sorted(survive):
            assert attributes(after, item) == attributes(before, item), f"{where}: {item} changed"
        unlocked = unlocked_items(log)
        assert unlocked <= gone, f"{where}: unlocked something it kept: {sorted(unlocked - gone)}"
        assert unlocked == shape.items(run.get("unlocked", ())), f"{where}: unlocked {unlocked}"
        repositories = unlocked_repositories(log)
        assert repositories == set(run.get("unlockedRepositories", ())), f"{where}: {repositories}"
        for repository, r in after["repositories"].items():
            attrs = before["repositories"][repository]["changeableAttributes"]
            assert r["changeableAttributes"] == attrs, f"{where}: {repository} locks changed"
        if run.get("errors", False):
            assert report.errors, f"{where}: expected the run to report why it kept things"
        else:
            assert report.errors == [], f"{where}: unexpected errors {report.errors}"
            assert report.complete
        if identity is not None:
            assert identity.issued, f"{where}: did not sign in with the managed identity"
        pulled = await verify_pulls(emu, after, survive, gone, unpullable)
        assert pulled.manifests == {i for i in survive - unpullable if "@" in i}


def test_corpus_covers_the_required_shapes() -> None:
    """The corpus is the deliverable: it must not shrink below the shapes issue 6 asks for."""
    assert len(SHAPES) >= 15
    for name in SHAPES:
        expect = json.loads((GRAPH_DIR / f"{name}.expect.json").read_text())
        assert expect["shape"] and expect["acrPurge"] and expect["runs"], name
    commands = " ".join(r["command"] for n in SHAPES for r in Shape.load(n).expect["runs"])
    for flag in ("--include-locked", "--protect", "--max-deletions", "--untagged-only"):
        assert flag in commands
    assert "--filter '.*:.*' --ago 0d --untagged" in commands
