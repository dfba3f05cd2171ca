"""Regex time counts against the time budget, and matching never blocks the event loop.

`(a|aa)+$` backtracks catastrophically on a run of `a`s that does not end the tag. Each match
times out (and its tag is kept), but 30 such tags once ran 60 s one after another on the event
loop under `--time-budget 5`, and the report said `"complete": true`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from acr_emulator.testing import EmulatorServer
from purge.config.rules import make_rule
from purge.config.settings import Config, Connection
from purge.service import run_purge

SLOW_TAGS = [f"{'a' * 40}-{n}" for n in range(30)]
SCENARIO = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": f"m{n}", "kind": "image", "updated": "-40d", "tags": [tag]}
                for n, tag in enumerate(SLOW_TAGS)
            ]
        },
        "other": {"manifests": [{"id": "o", "kind": "image", "updated": "-40d", "tags": ["old"]}]},
    }
}
BUDGET = 5.0
#: Beyond the budget: one regex timeout check interval plus scheduling on a loaded machine.
SLACK = 3.0


def connection(emu: EmulatorServer) -> Connection:
    return Connection(
        emu.login_server,
        allowed_hosts=(emu.login_server,),
        username=emu.username,
        password=emu.password,
        ca_file=emu.ca_file,
    )


async def test_catastrophic_backtracking_stops_at_the_budget_without_blocking_the_loop(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    before = emu.dump()
    rule = make_rule("slow", filters=["app:(a|aa)+$", "other:.*"], ago="1d", dry_run=True)
    config = Config(connection(emu), rules=(rule,))
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        report = await asyncio.wait_for(run_purge(config, budget_seconds=BUDGET), 120)
    finally:
        done.set()
        await tick
    elapsed = time.monotonic() - started

    data = report.to_dict()
    print(f"(a|aa)+$ on 30 tags, budget {BUDGET:g}s: {elapsed:.2f}s, longest loop stall "
          f"{max(gaps):.3f}s")  # fmt: skip
    assert elapsed < BUDGET + SLACK, elapsed
    assert data["complete"] is False
    assert "time budget" in data["incompleteReason"]
    assert max(gaps) < 1.0, max(gaps)  # the loop kept serving while the regexes ran
    kept = {k["tag"] for k in data["kept"] if "tag" in k and k["repository"] == "app"}
    deleted = {t["tag"] for t in data["deleted"]["tags"] if t["repository"] == "app"}
    assert not deleted & set(SLOW_TAGS)  # a tag whose match timed out is never deleted
    assert kept <= set(SLOW_TAGS)
    assert emu.dump() == before  # dry run
    # The other repository, which needs no slow match, was still planned within the budget.
    assert any(t["repository"] == "other" for t in data["deleted"]["tags"]), data["deleted"]
