"""Peak memory and time of the engine over a synthetic registry of 1,000,000 tags.

    python benchmarks/bench_memory.py [--repos 2000 --tags 500] [--phase planner|service|all]

Two measurements, each in a fresh interpreter so that one's peak RSS cannot hide in the other's:
- planner: list -> RepositoryPlanner.bodies_needed -> .plan for every repository, one at a time;
- service: purge.service.run_purge (planner, executor, report) over `LazyRegistry`, a Registry
  that generates each repository's listing when asked and only counts deletions.
Repositories are generated lazily, one at a time, so the figures measure the engine, not the
generator. (tests.fakes.InMemoryRegistry holds the whole registry, so at this size it would
measure its own store; it is for unit tests.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scenario import RULE, repository_name, synthetic_children, synthetic_snapshot
from purge.config.command import parse_purge_command
from purge.config.settings import Config, Connection
from purge.model import Manifest, ManifestBody, RepositorySnapshot, Tag
from purge.planner import RepositoryPlanner
from purge.registry.protocol import ManifestUnreadable, NotFound, RemovedTag, RepositoryAttributes

ROOT = Path(__file__).resolve().parents[1]
LOGIN_SERVER = "bench.azurecr.io"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_rss_mb()


class LazyRegistry:
    """A Registry whose repositories exist only while they are listed; deletes are counted.

    Each listing regenerates its repository from the index in its name, so no state but the
    counters outlives a repository's turn.
    """

    def __init__(self, repositories: int, tags: int, now: datetime) -> None:
        self.repositories = repositories
        self.tags = tags
        self.now = now
        self.deleted_tags = 0
        self.deleted_manifests = 0
        self._index = {repository_name(i): i for i in range(repositories)}
        self._by_digest: dict[str, dict[str, Manifest]] = {}

    @property
    def login_server(self) -> str:
        return LOGIN_SERVER

    def _snapshot(self, repository: str) -> RepositorySnapshot:
        index = self._index.get(repository)
        if index is None:
            raise NotFound(f"repository {repository!r} not found", status=404)
        return synthetic_snapshot(index, self.tags, self.now)

    async def list_repositories(self) -> AsyncIterator[str]:
        for index in range(self.repositories):
            yield repository_name(index)

    async def list_tags(self, repository: str) -> AsyncIterator[Tag]:
        for tag in self._snapshot(repository).tags:
            yield tag

    async def list_manifests(self, repository: str) -> AsyncIterator[Manifest]:
        for manifest in self._snapshot(repository).manifests:
            yield manifest

    def _manifest(self, repository: str, digest: str) -> Manifest | None:
        """One manifest by digest; a repository's map is kept while workers may need it."""
        by_digest = self._by_digest.get(repository)
        if by_digest is None:
            if len(self._by_digest) >= 8:  # the service's REPOSITORY_CONCURRENCY
                del self._by_digest[next(iter(self._by_digest))]
            manifests = self._snapshot(repository).manifests
            by_digest = self._by_digest[repository] = {m.digest: m for m in manifests}
        return by_digest.get(digest)

    async def get_manifest(self, repository: str, digest: str) -> ManifestBody:
        manifest = self._manifest(repository, digest)
        if manifest is None:
            raise ManifestUnreadable(f"{repository}@{digest}: no such manifest", status=404)
        return synthetic_body(repository, manifest)

    async def manifest_state(self, repository: str, digest: str) -> Manifest | None:
        return self._manifest(repository, digest)

    async def list_referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        return ()  # synthetic manifests have no subject

    async def tag_state(self, repository: str, tag: str) -> Tag | None:
        return None  # asked only after a failed delete, and no delete fails here

    async def remove_tag(self, repository: str, tag: str) -> RemovedTag | None:
        self.deleted_tags += 1
        return RemovedTag(None)

    async def put_tag(self, repository: str, tag: str, digest: str) -> None:
        raise NotFound("the synthetic registry takes no pushes", status=404)

    async def repository_attributes(self, repository: str) -> RepositoryAttributes:
        self._snapshot(repository)
        return RepositoryAttributes(True, True, True)

    async def lock_repository(self, repository: str, **_: bool) -> None:
        return None

    async def lock_tag(self, repository: str, tag: str, **_: bool) -> None:
        return None

    async def lock_manifest(self, repository: str, digest: str, **_: bool) -> None:
        return None

    async def delete_tag(self, repository: str, tag: str) -> bool:
        self.deleted_tags += 1
        return True

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        self.deleted_manifests += 1
        return True

    async def unlock_tag(self, repository: str, tag: str) -> None:
        return None

    async def unlock_manifest(self, repository: str, digest: str) -> None:
        return None

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def close(self) -> None:
        return None


def synthetic_body(repository: str, manifest: Manifest) -> ManifestBody:
    """What GET of a synthetic manifest would parse to: an index's children, no subject."""
    children = synthetic_children(repository) if manifest.is_index else ()
    return ManifestBody(manifest.digest, manifest.media_type, children)


def _rule() -> Any:
    return parse_purge_command(RULE, None)[0]


def measure_planner(repositories: int, tags: int) -> dict[str, Any]:
    """Plan every repository in turn; nothing of a repository is kept after its plan."""
    rule = _rule()
    now = datetime.now(timezone.utc)
    baseline = _rss_mb()
    started = time.perf_counter()
    listed = deletions = keeps = fetched = referrers = 0
    for index in range(repositories):
        snapshot = synthetic_snapshot(index, tags, now)
        listed += len(snapshot.tags)
        repository_planner = RepositoryPlanner(snapshot, rule, now)
        needed = repository_planner.bodies_needed()
        fetched += len(needed)
        bodies = {
            m.digest: synthetic_body(snapshot.name, m)
            for m in snapshot.manifests
            if m.digest in needed
        }
        wanted = repository_planner.referrers_needed()  # synthetic manifests have no subject
        referrers += len(wanted)
        plan = repository_planner.plan(bodies, {digest: () for digest in wanted})
        deletions += plan.deletion_count
        keeps += len(plan.kept)
    return {
        "phase": "planner",
        "repositories": repositories,
        "tags": listed,
        "deletions": deletions,
        "keeps": keeps,
        "bodies": fetched,
        "referrers": referrers,
        "seconds": time.perf_counter() - started,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def measure_service(repositories: int, tags: int) -> dict[str, Any]:
    """run_purge over LazyRegistry: planner, executor and report, as a real run does them."""
    from purge.service import run_purge

    rule = _rule()
    now = datetime.now(timezone.utc)
    registry = LazyRegistry(repositories, tags, now)
    config = Config(Connection(LOGIN_SERVER), (rule,))
    baseline = _rss_mb()
    started = time.perf_counter()
    report = asyncio.run(run_purge(config, dry_run=False, registry=registry, now=now))
    seconds = time.perf_counter() - started
    totals = report.to_dict()["totals"]
    return {
        "phase": "service",
        "repositories": repositories,
        "tags": repositories * tags,
        "deletions": registry.deleted_tags + registry.deleted_manifests,
        "reported_tags": totals["tagsDeleted"],
        "reported_manifests": totals["manifestsDeleted"],
        "complete": report.complete,
        "errors": totals["errors"],
        "seconds": seconds,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


PHASES = {"planner": measure_planner, "service": measure_service}


@dataclass(frozen=True)
class MemoryFigures:
    phase: str
    data: dict[str, Any]

    @property
    def peak_rss_mb(self) -> float:
        return float(self.data["peak_rss_mb"])


def run_phase_isolated(phase: str, repositories: int, tags: int) -> MemoryFigures:
    """Run one phase in a fresh interpreter and read its JSON line."""
    answer = subprocess.run(
        [
            sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--json",
            "--repos", str(repositories), "--tags", str(tags),
        ],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if answer.returncode != 0:
        raise RuntimeError(f"bench_memory --phase {phase} failed: {answer.stderr.strip()}")
    return MemoryFigures(phase, json.loads(answer.stdout.strip().splitlines()[-1]))


def describe(f: MemoryFigures) -> str:
    d = f.data
    text = (
        f"== {f.phase}: {d['repositories']} repositories, {d['tags']} tags: "
        f"{d['seconds']:.1f} s ({d['tags'] / max(d['seconds'], 1e-9):,.0f} tags/s), "
        f"peak RSS {d['peak_rss_mb']:.0f} MB (interpreter and imports before the run: "
        f"{d['baseline_rss_mb']:.0f} MB), {d['deletions']} deletions"
    )
    if f.phase == "service":
        per_deletion = (d["peak_rss_mb"] - d["baseline_rss_mb"]) * 1024 / max(1, d["deletions"])
        text += f"; {per_deletion:.1f} kB of peak RSS per deletion"
        text += (
            f" (report: {d['reported_tags']} tags, {d['reported_manifests']} manifests, "
            f"{d['errors']} errors, complete={d['complete']})"
        )
    return text


def main(argv: list[str] | None = None) -> list[MemoryFigures]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repos", type=int, default=2000)
    p.add_argument("--tags", type=int, default=500, help="tags per repository")
    p.add_argument(
        "--service-repos",
        type=int,
        default=2000,
        help="repositories for the service phase of --phase all (default: the full 1,000,000 "
        "tags; lower it for a quicker run)",
    )
    p.add_argument("--phase", choices=("planner", "service", "all"), default="all")
    p.add_argument("--json", action="store_true", help="print one JSON line (used by --phase all)")
    args = p.parse_args(argv)
    if args.repos < 1 or args.tags < 1:
        p.error(f"--repos and --tags must be at least 1, got {args.repos} and {args.tags}")
    if args.phase != "all":
        data = PHASES[args.phase](args.repos, args.tags)
        print(json.dumps(data) if args.json else describe(MemoryFigures(args.phase, data)))
        return [MemoryFigures(args.phase, data)]
    results = []
    for phase in PHASES:
        repos = args.repos if phase == "planner" else min(args.repos, args.service_repos)
        figures = run_phase_isolated(phase, repos, args.tags)
        print(describe(figures), flush=True)
        results.append(figures)
    return results


if __name__ == "__main__":
    main()
