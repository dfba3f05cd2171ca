"""End to end: settings -> run_purge -> purge.registry.acr -> real SDK -> HTTPS -> emulator.

Identity is the real ManagedIdentityCredential against a local managed-identity endpoint.
Outcomes are read from the emulator's state afterwards, never taken from the report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from acr_emulator.testing import EmulatorServer
from purge.config.settings import load_settings
from purge.service import run_purge

SCENARIO: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "v1", "kind": "image", "updated": "-40d", "tags": ["v1"]},
                {"id": "v2", "kind": "image", "updated": "-35d", "tags": ["v2"]},
                {"id": "v3", "kind": "image", "updated": "-32d", "tags": ["v3"]},
                {"id": "r3", "kind": "image", "updated": "-33d", "tags": ["release-3"]},
                {"id": "new", "kind": "image", "updated": "-2d", "tags": ["v4", "latest"]},
                {"id": "orphan", "kind": "image", "updated": "-50d"},
                {"id": "fresh-orphan", "kind": "image", "updated": "-1h"},
                {"id": "pinned", "kind": "image", "updated": "-90d",
                 "tags": [{"name": "v0", "locked": True}]},
            ]
        },
        "other": {"manifests": [{"id": "o1", "kind": "image", "updated": "-60d", "tags": ["v1"]}]},
    }
}  # fmt: skip


def state(emu: EmulatorServer, repo: str = "app") -> tuple[set[str], int]:
    r = emu.dump()["repositories"].get(repo, {"tags": {}, "manifests": {}})
    return set(r["tags"]), len(r["manifests"])


async def purge(emu: EmulatorServer, command: str, **kw: Any) -> Any:
    config = load_settings({
        "PURGE_REGISTRY": emu.login_server, "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": emu.ca_file, "PURGE_COMMAND": command,
    })  # fmt: skip
    return await run_purge(config, **kw)


ALL = {"v0", "v1", "v2", "v3", "release-3", "v4", "latest"}
CASES = [
    ("acr purge --filter 'app:^v' --ago 30d", ALL - {"v1", "v2", "v3"}, 8),
    ("acr purge --filter 'app:.*' --ago 30d --keep 1", ALL - {"v1", "v2", "release-3"}, 8),
    ("acr purge --filter 'app:^v' --ago 30d --protect '^v2$'", ALL - {"v1", "v3"}, 8),
    ("acr purge --filter 'app:.*' --ago 30d --untagged", {"v0", "v4", "latest"}, 3),
    ("acr purge --filter 'app:.*' --untagged-only --ago 1d", ALL, 7),
    ("acr purge --filter 'app:^v0$' --ago 30d --include-locked", ALL - {"v0"}, 8),
    ("acr purge --filter 'app:^v0$' --ago 30d", ALL, 8),
    ("acr purge --filter 'app:.*' --ago 30d --max-deletions 2", ALL, 8),
    ("acr purge --filter 'app:.*' --ago 30d --dry-run", ALL, 8),
]


@pytest.mark.parametrize(("command", "tags_left", "manifests_left"), CASES)
async def test_rule_flags_end_to_end(
    emulator_factory: Any, identity_endpoint: Any, command: str, tags_left: set[str],
    manifests_left: int,
) -> None:  # fmt: skip
    emu = emulator_factory(scenario=SCENARIO)
    await purge(emu, command, dry_run=False)
    assert state(emu) == (tags_left, manifests_left)
    assert state(emu, "other") == ({"v1"}, 1)  # filters confine the repository
    assert identity_endpoint.issued  # signed in with the managed identity


async def test_dry_run_changes_nothing_and_plans_what_the_real_run_deletes(
    emulator_factory: Any, identity_endpoint: Any
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    command = "acr purge --filter 'app:.*' --ago 30d --untagged --include-locked"
    before = json.dumps(emu.dump(), sort_keys=True)
    dry = (await purge(emu, command, dry_run=True)).to_dict()
    assert json.dumps(emu.dump(), sort_keys=True) == before
    assert not any(e["method"] in ("DELETE", "PATCH") for e in emu.request_log())
    tags_before, _ = state(emu)
    manifests_before = set(emu.dump()["repositories"]["app"]["manifests"])
    await purge(emu, command, dry_run=False)
    tags_after, _ = state(emu)
    manifests_after = set(emu.dump()["repositories"]["app"]["manifests"])
    planned_tags = {t["tag"] for t in dry["deleted"]["tags"] if t["repository"] == "app"}
    planned_manifests = {
        m["digest"] for m in dry["deleted"]["manifests"] if m["repository"] == "app"
    }
    assert planned_tags == tags_before - tags_after
    assert planned_manifests == manifests_before - manifests_after
    assert planned_tags and planned_manifests
