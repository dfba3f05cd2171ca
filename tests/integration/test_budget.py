"""The time budget also bounds listings: a huge repository does not hold a run past its budget.

An HTTP run must answer within Azure's 230 s; a repository with 100,000 manifests takes
hundreds of page requests to list. When the budget runs out mid-listing the listing is
abandoned, nothing in that repository is deleted, and the report says the run is incomplete.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from acr_emulator.testing import EmulatorServer
from purge.config.settings import Connection, load_settings
from purge.registry.acr import AcrRegistry
from purge.service import run_purge

SCENARIO = {
    "repositories": {
        "big": {
            "manifests": [],
            "generate": {"count": 300, "tagPrefix": "build-", "start": "-100d", "step": "1m"},
        }
    }
}


async def test_a_listing_that_outlasts_the_budget_is_abandoned_and_deletes_nothing(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    before = emu.dump()
    assert len(before["repositories"]["big"]["tags"]) == 300
    settings = load_settings(
        {
            "PURGE_REGISTRY": emu.login_server,
            "PURGE_ALLOWED_HOSTS": emu.login_server,
            "PURGE_RULES": json.dumps([{"filter": ["big:.*"], "ago": "1d"}]),
        }
    )
    connection = Connection(
        emu.login_server,
        allowed_hosts=(emu.login_server,),
        username=emu.username,
        password=emu.password,
        ca_file=emu.ca_file,
    )
    registry = AcrRegistry(connection, page_size=10)  # 30 pages of tags
    emu.set_latency(0.05)
    emu.reset_log()
    started = time.monotonic()
    report = await run_purge(settings, dry_run=False, budget_seconds=0.5, registry=registry)
    elapsed = time.monotonic() - started
    await registry.close()

    data = report.to_dict()
    assert data["complete"] is False and data["totals"]["tagsDeleted"] == 0
    assert emu.dump() == before
    log = emu.request_log()
    assert not [e for e in log if e["method"] in ("DELETE", "PATCH")]
    tag_pages = [e for e in log if e["path"].endswith("/_tags")]
    assert 1 <= len(tag_pages) < 30  # abandoned part way, not listed to the end
    assert elapsed < 0.5 + 1.0  # overshoot: at most the page in flight
