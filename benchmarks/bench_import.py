"""Cold import time of `function_app`: what the Functions host pays before any trigger fires.

    python benchmarks/bench_import.py [--runs 7] [--top 12]

Each run is a fresh interpreter (no warm module cache in memory), timing the import inside it.
It also lists which heavy packages the import pulled in: a tick's SDKs (azure-containerregistry,
azure-identity, aiohttp, croniter, regex, rich) must load in the handler that needs them, not at
import. The `-X importtime` table names the top offenders by cumulative time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Packages a tick uses but indexing the app does not need.
LAZY_PACKAGES = (
    "azure.containerregistry",
    "azure.identity",
    "azure.core.pipeline.transport._aiohttp",
    "aiohttp",
    "croniter",
    "regex",
    "rich",
    "purge.service",
    "purge.registry.acr",
    "purge.planner",
)
_PROBE = """
import json, sys, time
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "modules": sorted(sys.modules)}}))
"""


@dataclass(frozen=True)
class ImportFigures:
    module: str
    runs: list[float]
    eagerly_loaded: list[str]
    offenders: list[tuple[float, str]]

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.runs)


def _probe(module: str) -> tuple[float, list[str]]:
    answer = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(answer.stdout.strip().splitlines()[-1])
    return float(data["seconds"]), list(data["modules"])


def import_offenders(module: str, top: int) -> list[tuple[float, str]]:
    """(cumulative ms, module) of the slowest imports, from `python -X importtime`."""
    answer = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[float, str]] = []
    for line in answer.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = (part.strip() for part in line[12:].split("|"))
        rows.append((int(cumulative_us) / 1000, name))
    return sorted(rows, reverse=True)[:top]


def measure(module: str = "function_app", runs: int = 7, top: int = 12) -> ImportFigures:
    if runs < 1:
        raise ValueError(f"--runs must be at least 1, got {runs}")
    times: list[float] = []
    modules: list[str] = []
    for _ in range(runs):
        seconds, modules = _probe(module)
        times.append(seconds)
    loaded = set(modules)
    eager = [name for name in LAZY_PACKAGES if name in loaded]
    return ImportFigures(module, times, eager, import_offenders(module, top))


def describe(f: ImportFigures) -> str:
    lines = [
        f"== cold import of {f.module}: median {f.median_ms:.1f} ms over {len(f.runs)} fresh "
        f"interpreters (min {1000 * min(f.runs):.1f}, max {1000 * max(f.runs):.1f} ms)",
        "tick-only packages loaded by this import: "
        + (", ".join(f.eagerly_loaded) or "none (lazy imports hold)"),
        "top imports by cumulative time (python -X importtime):",
    ]
    lines += [f"  {ms:8.1f} ms  {name}" for ms, name in f.offenders]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[ImportFigures]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=7, help="fresh interpreters to time")
    p.add_argument("--top", type=int, default=12, help="rows of the importtime table")
    p.add_argument(
        "--module",
        action="append",
        help="module(s) to time (default: function_app, then purge.service for comparison)",
    )
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1, got {args.runs}")
    results = []
    for module in args.module or ["function_app", "purge.service"]:
        figures = measure(module, args.runs, args.top)
        print(describe(figures), flush=True)
        results.append(figures)
    return results


if __name__ == "__main__":
    main()
