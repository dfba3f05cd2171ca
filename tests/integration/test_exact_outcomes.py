"""The report says what the registry did, also when an answer is lost (issue 16, 2, 7a, 7b).

Real SDK over HTTPS against the emulator with injected faults; the outcome is read from the
emulator and compared with the report.
"""

from __future__ import annotations

import json
from typing import Any

from acr_emulator.scenario import manifest_digests
from acr_emulator.testing import EmulatorServer
from purge.config.settings import load_settings
from purge.service import run_purge

INDEX: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "a", "kind": "image", "platform": "linux/amd64", "updated": "-40d"},
                {"id": "b", "kind": "image", "platform": "linux/arm64", "updated": "-40d"},
                {"id": "multi", "kind": "index", "children": ["a", "b"], "updated": "-40d"},
            ]
        }
    }
}
UNTAGGED = [{"name": "old", "filter": ["app:.*"], "ago": "30d", "untagged": True}]


async def purge(emu: EmulatorServer, rules: list[dict[str, Any]]) -> dict[str, Any]:
    config = load_settings({
        "PURGE_REGISTRY": emu.login_server, "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": emu.ca_file, "PURGE_USERNAME": emu.username or "",
        "PURGE_PASSWORD": emu.password or "", "PURGE_RULES": json.dumps(rules),
    })  # fmt: skip
    return (await run_purge(config, dry_run=False)).to_dict()


def manifests(emu: EmulatorServer, repo: str = "app") -> set[str]:
    return set(emu.dump()["repositories"].get(repo, {"manifests": {}})["manifests"])


async def test_a_delete_whose_answer_was_lost_is_read_back_and_reported_done(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=INDEX)
    ids = manifest_digests(INDEX)["app"]
    index_delete = f"/v2/app/manifests/{ids['multi']}$"
    # The registry deletes the index, the answer is lost, and every retry gets 503.
    emu.inject_fault(method="DELETE", path_regex=index_delete, drop=True, after_acting=True)
    emu.inject_fault(method="DELETE", path_regex=index_delete, status=503, count=20)
    report = await purge(emu, UNTAGGED)
    assert manifests(emu) == set()  # the index went (lost answer) and so did its children
    deleted = {m["digest"] for m in report["deleted"]["manifests"]}
    assert deleted == set(ids.values())  # never contradict the registry
    assert not any("was not deleted" in e["error"] for e in report["errors"])
    assert report["totals"]["manifestsDeleted"] == 3


async def test_a_delete_whose_outcome_cannot_be_read_is_reported_unknown(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=INDEX)
    ids = manifest_digests(INDEX)["app"]
    index_delete = f"/v2/app/manifests/{ids['multi']}$"
    emu.inject_fault(method="DELETE", path_regex=index_delete, drop=True, after_acting=True)
    emu.inject_fault(method="DELETE", path_regex=index_delete, status=503, count=20)
    # ...and the read-back fails too, once the delete has been sent
    emu.inject_fault(
        method="GET", path_regex=f"/_manifests/{ids['multi']}$", status=503, count=40, skip=1
    )
    report = await purge(emu, UNTAGGED)
    assert manifests(emu) == {ids["a"], ids["b"]}  # the children stay: their index may live
    deleted = {m["digest"] for m in report["deleted"]["manifests"]}
    assert ids["multi"] not in deleted and not deleted & {ids["a"], ids["b"]}
    [unknown] = [e for e in report["errors"] if e["ref"] == ids["multi"]]
    assert "unknown" in unknown["error"]
    assert report["repositories"]["app"]["errors"] == len(report["errors"])


TAGGED: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": f"o{i}", "kind": "image", "updated": f"-{40 + i}d", "tags": [f"v{i}"]}
                for i in range(3)
            ]
        }
    }
}


async def test_a_failed_recheck_deletes_nothing_and_counts_its_error(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=TAGGED)
    before = emu.dump()["repositories"]["app"]
    # The listing works; the re-read of the tags just before deleting fails (every retry).
    emu.inject_fault(method="GET", path_regex=r"/acr/v1/app/_tags$", status=503, count=4, skip=1)
    report = await purge(emu, UNTAGGED)
    after = emu.dump()["repositories"]["app"]
    assert after["tags"].keys() == before["tags"].keys()
    assert after["manifests"].keys() == before["manifests"].keys()
    assert report["deleted"] == {"tags": [], "manifests": []}
    [error] = report["errors"]
    assert error["ref"] == "verify" and "nothing deleted in this repository" in error["error"]
    assert report["repositories"]["app"]["errors"] == 1


LOCKED: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {
                    "id": "m",
                    "kind": "image",
                    "updated": "-40d",
                    "tags": [
                        {"name": "prod", "locked": True},
                        {"name": "current", "updated": "-1h"},
                    ],
                },
                {"id": "orphan", "kind": "image", "updated": "-40d", "locked": True},
            ]
        }
    }
}


async def test_a_failed_delete_after_an_unlock_puts_the_lock_back(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=LOCKED)
    ids = manifest_digests(LOCKED)["app"]
    locked = {"deleteEnabled": False, "writeEnabled": False}
    emu.inject_fault(method="DELETE", path_regex=r"/_tags/prod$", status=500, count=20)
    emu.inject_fault(
        method="DELETE", path_regex=f"/manifests/{ids['orphan']}$", status=500, count=20
    )
    rules = [
        {"name": "old", "filter": ["app:^prod$"], "ago": "30d", "untagged": True,
         "includeLocked": True},
    ]  # fmt: skip
    report = await purge(emu, rules)
    repo = emu.dump()["repositories"]["app"]
    assert repo["tags"]["prod"]["changeableAttributes"].items() >= locked.items()
    assert repo["manifests"][ids["orphan"]]["changeableAttributes"].items() >= locked.items()
    assert report["deleted"] == {"tags": [], "manifests": []}
    errors = {e["ref"]: e["error"] for e in report["errors"]}
    for ref in ("prod", ids["orphan"]):
        assert "delete failed" in errors[ref] and "lock restored" in errors[ref], errors[ref]
