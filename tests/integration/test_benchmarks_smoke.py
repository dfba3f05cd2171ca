"""Each benchmark script's main() at a tiny size: the figures it prints must be sane.

No timing assertions (the machine is shared); these check that the scripts still run against
the current engine and emulator, that the purge they measure is correct, and that the request
accounting adds up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_import, bench_memory, bench_purge  # noqa: E402
from benchmarks.scenario import Shape, expected_deletions  # noqa: E402


def test_bench_purge_with_a_rate_limit_purges_correctly_and_counts_requests(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (figures,) = bench_purge.main(["--repos", "3", "--tags", "12", "--rate-limit", "400"])
    expected = expected_deletions(Shape(3, 12))
    out = capsys.readouterr().out
    assert figures.correct, out
    assert (figures.tags_deleted, figures.manifests_deleted) == (expected.tags, expected.manifests)
    assert figures.own_deletions == expected.requests == figures.delete_requests
    # every request is accounted for, and listing is a small part of it
    assert figures.requests >= figures.delete_requests + figures.listing_requests
    assert 1.0 <= figures.requests_per_deletion_no_listing <= figures.requests_per_deletion
    assert 0 <= figures.throttled <= figures.requests
    assert figures.rate_fraction is not None and 0 < figures.rate_fraction <= 2
    assert figures.client_peak_rss_mb > 10
    assert figures.limits == bench_purge.Limits(400, 400)  # --rate-limit means both buckets
    assert figures.write_requests >= figures.delete_requests
    for label in (
        "wall time:",
        "deletions per second:",
        "x the write limit",
        "429 responses:",
        "peak RSS:",
    ):
        assert label in out


def test_bench_purge_split_limits_quote_the_write_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (figures,) = bench_purge.main(
        ["--repos", "1", "--tags", "12", "--rate-limit-writes", "50", "--rate-limit-reads", "300"]
    )
    out = capsys.readouterr().out
    assert figures.correct, out
    assert figures.limits == bench_purge.Limits(300, 50) and figures.rate_limit == 50
    assert figures.rate_fraction == pytest.approx(figures.deletes_per_second / 50)
    assert "reads 300/s, writes 50/s" in out
    assert bench_purge.Limits.sku("standard") == bench_purge.Limits(50, 500 / 60)


def test_bench_purge_baseline_concurrency_one_never_overlaps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (figures,) = bench_purge.main(
        ["--repos", "1", "--tags", "6", "--no-limit", "--concurrency", "1"]
    )
    out = capsys.readouterr().out
    assert figures.correct, out
    assert figures.rate_limit is None and figures.throttled == 0
    assert "peak 1 in flight" in out
    assert "concurrency 1" in out


def test_bench_memory_phases_plan_the_whole_synthetic_registry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    planner, service = bench_memory.main(["--repos", "4", "--tags", "50"])
    out = capsys.readouterr().out
    assert planner.data["tags"] == service.data["tags"] == 200
    # per repository: 39 of 49 images are old, plus the index, its 2 children and 1 orphan
    assert planner.data["deletions"] == 4 * (39 + 39 + 1 + 1 + 2 + 1)
    # whether an OCI manifest has a subject is read: most of each repository may go, so every
    # OCI body (49 images, the index, its 2 children, the orphan) costs fewer reads than the
    # candidates' bodies and referrers would
    assert planner.data["bodies"] == 4 * 53 and planner.data["referrers"] == 0
    assert service.data["complete"] is True and service.data["errors"] == 0
    assert service.data["reported_manifests"] == 4 * (39 + 1 + 2 + 1)
    assert service.data["deletions"] == 4 * (39 + 1 + 2 + 1)  # a tag goes with its manifest
    assert 10 < planner.peak_rss_mb < 2000 and 10 < service.peak_rss_mb < 2000
    assert "== planner:" in out and "== service:" in out


def test_bench_import_finds_function_app_lazy(capsys: pytest.CaptureFixture[str]) -> None:
    (figures,) = bench_import.main(["--runs", "2", "--top", "5", "--module", "function_app"])
    out = capsys.readouterr().out
    assert figures.eagerly_loaded == []
    assert 0 < figures.median_ms < 30_000
    assert len(figures.offenders) == 5
    assert any(name == "function_app" for _ms, name in figures.offenders)
    assert "median" in out and "lazy imports hold" in out
