"""A real purge against the emulator (separate process) with latency and rate limits.

    python benchmarks/bench_purge.py [--rate-limit R | --rate-limit-writes W
        [--rate-limit-reads R] | --sku basic|standard|premium | --no-limit] [--concurrency N]
        [--latency-ms 20] [--repos 50 --tags 400] [--matrix]

The emulator has ACR's two budgets: reads (listings, bodies, tokens) and writes (deletes,
unlocks); `--rate-limit R` sets both to R per second, `--sku` to ACR's documented limits.
Deletions per second are quoted as a fraction of the write limit.

The client is the production path: settings -> purge.service.run_purge -> purge.registry.acr ->
azure-containerregistry aio -> HTTPS. Every figure about requests comes from the emulator's
own request log; the result is checked against the emulator's state afterwards (a fast purge
that deleted the wrong things is not a result). See benchmarks/README.md for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.emulator_process import EmulatorProcess
from benchmarks.scenario import RULE, Shape, expected_deletions, purge_scenario
from purge.config.settings import load_settings
from purge.registry.acr import open_registry
from purge.service import run_purge

#: ACR's documented operation limits per minute (reads, writes), as the emulator's --sku has them.
SKU_LIMITS_PER_MINUTE = {"basic": (1000, 100), "standard": (3000, 500), "premium": (10000, 2000)}

DEFAULT_RATE = 200.0
#: Scales of the --concurrency 1 baseline and the R=50 run in --matrix: repositories of the
#: full-scale shape (so per-repository overhead weighs the same), fewer of them, to stay
#: within about a minute each.
BASELINE_SHAPE = Shape(repositories=3, tags=400)
SLOW_RATE_SHAPE = Shape(repositories=8, tags=400)
#: Standard's 8.3 writes/s: a small registry keeps the run within a minute.
STANDARD_SHAPE = Shape(repositories=2, tags=200)


@dataclass(frozen=True)
class Limits:
    """Requests per second of the emulator's read and write buckets (None: unlimited)."""

    reads: float | None = None
    writes: float | None = None

    @classmethod
    def both(cls, rate: float) -> Limits:
        return cls(rate, rate)

    @classmethod
    def sku(cls, name: str) -> Limits:
        reads, writes = SKU_LIMITS_PER_MINUTE[name]
        return cls(reads / 60, writes / 60)

    def describe(self) -> str:
        if self.reads is None and self.writes is None:
            return "none"
        r = f"{self.reads:g}/s" if self.reads else "unlimited"
        w = f"{self.writes:g}/s" if self.writes else "unlimited"
        return f"reads {r}, writes {w}"


@dataclass(frozen=True)
class Figures:
    label: str
    shape: Shape
    limits: Limits
    concurrency: int | None
    latency_ms: float
    wall_seconds: float
    requests: int
    listing_requests: int
    token_requests: int
    delete_requests: int
    write_requests: int
    throttled: int
    tags_deleted: int
    manifests_deleted: int
    #: deletions that needed a request of their own (the plan's own-request items)
    own_deletions: int
    client_peak_rss_mb: float
    emulator_peak_rss_mb: float | None
    client_cpu_seconds: float
    emulator_cpu_seconds: float | None
    correct: bool

    @property
    def deletes_per_second(self) -> float:
        return self.own_deletions / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def artifacts(self) -> int:
        return self.tags_deleted + self.manifests_deleted

    @property
    def rate_limit(self) -> float | None:
        """The write limit: deletions draw from it (reads have their own)."""
        return self.limits.writes

    @property
    def rate_fraction(self) -> float | None:
        """Deletions per second as a fraction of the write limit."""
        return self.deletes_per_second / self.rate_limit if self.rate_limit else None

    @property
    def requests_per_deletion(self) -> float:
        return self.requests / max(1, self.own_deletions)

    @property
    def requests_per_deletion_no_listing(self) -> float:
        return (self.requests - self.listing_requests) / max(1, self.own_deletions)

    @property
    def throttled_share(self) -> float:
        return self.throttled / max(1, self.requests)


def _is_listing(entry: dict[str, Any]) -> bool:
    path = str(entry["path"])
    return entry["method"] == "GET" and (
        path.endswith(("/_tags", "/_manifests", "/_catalog")) or path.endswith("/tags/list")
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


async def _purge(emu: EmulatorProcess, concurrency: int | None) -> tuple[float, Any]:
    config = load_settings(emu.settings(RULE, concurrency))
    registry = open_registry(config.connection, max_concurrency=config.concurrency)
    try:
        started = time.perf_counter()
        report = await run_purge(config, dry_run=False, registry=registry)
        wall = time.perf_counter() - started
        stats = registry.limiter.stats
        print(
            f"client limiter: peak {stats.peak_in_flight} in flight, final limit "
            f"{registry.limiter.controller.limit}, paused {stats.paused_seconds:.1f} task-s",
            flush=True,
        )
        return wall, report
    finally:
        await registry.close()


def run_once(
    shape: Shape,
    *,
    limits: Limits,
    concurrency: int | None,
    latency_ms: float,
    label: str = "run",
) -> Figures:
    """Seed a fresh emulator, purge it for real, and measure."""
    expected = expected_deletions(shape)
    with EmulatorProcess(
        purge_scenario(shape),
        latency=latency_ms / 1000,
        reads=limits.reads,
        writes=limits.writes,
    ) as emu:
        cpu_before, emulator_cpu_before = _cpu_seconds(), emu.cpu_seconds()
        wall, report = asyncio.run(_purge(emu, concurrency))
        client_cpu, emulator_cpu = _cpu_seconds() - cpu_before, emu.cpu_seconds()
        if emulator_cpu is not None and emulator_cpu_before is not None:
            emulator_cpu -= emulator_cpu_before
        log = emu.request_log()
        state = emu.state()
        emulator_rss = emu.peak_rss_mb()
    totals = report.to_dict()["totals"]
    tags_deleted = int(totals.get("tagsDeleted", 0))
    manifests_deleted = int(totals.get("manifestsDeleted", 0))
    tags_left = sum(len(repo["tags"]) for repo in state.values())
    manifests_left = sum(len(repo["manifests"]) for repo in state.values())
    correct = (
        report.complete
        and tags_deleted == expected.tags
        and manifests_deleted == expected.manifests
        and tags_left == shape.total_tags - expected.tags
        and manifests_left == _manifest_total(shape) - expected.manifests
    )
    statuses = Counter(int(entry["status"]) for entry in log)
    deletes = [e for e in log if e["method"] == "DELETE" and int(e["status"]) == 202]
    return Figures(
        label=label,
        shape=shape,
        limits=limits,
        concurrency=concurrency,
        latency_ms=latency_ms,
        wall_seconds=wall,
        requests=len(log),
        listing_requests=sum(1 for e in log if _is_listing(e)),
        token_requests=sum(1 for e in log if str(e["path"]).startswith("/oauth2/")),
        delete_requests=len(deletes),
        write_requests=sum(
            1
            for e in log
            if e["method"] not in ("GET", "HEAD") and not str(e["path"]).startswith("/oauth2/")
        ),
        throttled=statuses.get(429, 0),
        tags_deleted=tags_deleted,
        manifests_deleted=manifests_deleted,
        own_deletions=len(deletes),
        client_peak_rss_mb=_peak_rss_mb(),
        emulator_peak_rss_mb=emulator_rss,
        client_cpu_seconds=client_cpu,
        emulator_cpu_seconds=emulator_cpu,
        correct=correct,
    )


def _manifest_total(shape: Shape) -> int:
    # generated images + old and new orphans + 2 indexes with their children + the signature
    per_repository = shape.generated_tags + 2 * shape.old_untagged + 2 * 3 + 1
    return shape.repositories * per_repository


def describe(f: Figures) -> str:
    lines = [
        f"== {f.label}: {f.shape.repositories} repositories x {f.shape.tags} tags "
        f"({f.shape.total_tags} tags), latency {f.latency_ms:g} ms, "
        f"rate limits {f.limits.describe()}, "
        f"concurrency {f.concurrency or 'adaptive'}",
        f"wall time: {f.wall_seconds:.2f} s",
        f"deleted: {f.tags_deleted} tags, {f.manifests_deleted} manifests "
        f"({f.artifacts} artifacts) with {f.own_deletions} delete requests; "
        f"result {'CORRECT' if f.correct else 'WRONG'} (checked against the emulator's state)",
        f"deletions per second: {f.deletes_per_second:.1f} delete requests/s"
        + (f" = {f.rate_fraction:.2f} x the write limit" if f.rate_fraction is not None else "")
        + f" ({f.artifacts / f.wall_seconds:.1f} artifacts/s)",
        f"requests: {f.requests} total ({f.listing_requests} listing, {f.token_requests} token, "
        f"{f.delete_requests} delete; {f.write_requests} writes)",
        f"requests per deletion: {f.requests_per_deletion:.3f} with listing, "
        f"{f.requests_per_deletion_no_listing:.3f} without "
        f"(per artifact: {f.requests / max(1, f.artifacts):.3f} / "
        f"{(f.requests - f.listing_requests) / max(1, f.artifacts):.3f})",
        f"429 responses: {f.throttled} ({100 * f.throttled_share:.2f}% of requests)",
        f"peak RSS: client {f.client_peak_rss_mb:.0f} MB, emulator "
        + (f"{f.emulator_peak_rss_mb:.0f} MB" if f.emulator_peak_rss_mb else "n/a"),
        f"CPU busy during the purge: client {100 * f.client_cpu_seconds / f.wall_seconds:.0f}%, "
        "emulator "
        + (
            f"{100 * f.emulator_cpu_seconds / f.wall_seconds:.0f}%"
            if f.emulator_cpu_seconds is not None
            else "n/a"
        )
        + " (of one core)",
    ]
    return "\n".join(lines)


def matrix(shape: Shape, latency_ms: float) -> list[Figures]:
    """No limit; R=200 (both buckets); Premium and Standard (ACR's documented limits, smaller
    registries to stay within minutes); --concurrency 1 (smaller)."""
    runs = [
        run_once(shape, limits=Limits(), concurrency=None, latency_ms=latency_ms, label="no limit"),
        run_once(
            shape, limits=Limits.both(200), concurrency=None, latency_ms=latency_ms, label="R=200"
        ),
        run_once(
            SLOW_RATE_SHAPE,
            limits=Limits.sku("premium"),
            concurrency=None,
            latency_ms=latency_ms,
            label="--sku premium",
        ),
        run_once(
            STANDARD_SHAPE,
            limits=Limits.sku("standard"),
            concurrency=None,
            latency_ms=latency_ms,
            label="--sku standard",
        ),
        run_once(
            BASELINE_SHAPE,
            limits=Limits(),
            concurrency=1,
            latency_ms=latency_ms,
            label="baseline --concurrency 1",
        ),
    ]
    for figures in runs:
        print(describe(figures), flush=True)
    fast, baseline = runs[0], runs[-1]
    scale = fast.own_deletions / max(1, baseline.own_deletions)
    extrapolated = baseline.wall_seconds * scale
    print(
        f"== speed-up: the baseline deleted {baseline.own_deletions} items in "
        f"{baseline.wall_seconds:.1f} s; at the full scale ({fast.own_deletions} deletions) it "
        f"would take about {extrapolated:.0f} s (linear in deletions), vs {fast.wall_seconds:.1f} "
        f"s adaptive: {extrapolated / fast.wall_seconds:.1f}x "
        f"(by rate: {fast.deletes_per_second / baseline.deletes_per_second:.1f}x)"
    )
    return runs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help=f"reads and writes per second each "
        f"(default {DEFAULT_RATE:g} unless another limit is given)",
    )
    p.add_argument("--rate-limit-reads", type=float, default=None, help="reads per second")
    p.add_argument("--rate-limit-writes", type=float, default=None, help="writes per second")
    p.add_argument("--sku", choices=sorted(SKU_LIMITS_PER_MINUTE), help="ACR's limits for it")
    p.add_argument("--no-limit", action="store_true", help="no rate limit")
    p.add_argument(
        "--concurrency", type=int, default=None, help="PURGE_CONCURRENCY (default: adaptive)"
    )
    p.add_argument("--latency-ms", type=float, default=20.0, help="added to every request")
    p.add_argument("--repos", type=int, default=50)
    p.add_argument("--tags", type=int, default=400, help="tags per repository")
    p.add_argument(
        "--matrix",
        action="store_true",
        help="no limit, R=200, --sku premium, --sku standard, concurrency 1",
    )
    args = p.parse_args(argv)
    for flag in ("rate_limit", "rate_limit_reads", "rate_limit_writes"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            name = "--" + flag.replace("_", "-")
            p.error(f"{name} must be a positive number of requests per second, got {value}")
    if args.concurrency is not None and args.concurrency < 1:
        p.error(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.latency_ms < 0:
        p.error(f"--latency-ms must be >= 0, got {args.latency_ms}")
    return args


def main(argv: list[str] | None = None) -> list[Figures]:
    args = parse_args(argv)
    try:
        shape = Shape(repositories=args.repos, tags=args.tags)
    except ValueError as exc:
        raise SystemExit(f"bench_purge: {exc}") from None
    if args.matrix:
        return matrix(shape, args.latency_ms)
    figures = run_once(
        shape,
        limits=_limits(args),
        concurrency=args.concurrency,
        latency_ms=args.latency_ms,
    )
    print(describe(figures), flush=True)
    return [figures]


def _limits(args: argparse.Namespace) -> Limits:
    if args.no_limit:
        return Limits()
    if args.sku:
        return Limits.sku(args.sku)
    if args.rate_limit_reads or args.rate_limit_writes:
        return Limits(
            args.rate_limit_reads or args.rate_limit, args.rate_limit_writes or args.rate_limit
        )
    return Limits.both(args.rate_limit or DEFAULT_RATE)


if __name__ == "__main__":
    results = main()
    sys.exit(0 if all(f.correct for f in results) else 1)
