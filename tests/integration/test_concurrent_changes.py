"""Tags pushed or moved while a purge runs are not deleted on the strength of the old listing.

The engine re-reads a repository's newest tags just before deleting there and plans again from a
fresh listing when anything changed (purge.service). These tests change the registry between
the listing and the deletions (while the manifest listing is held up by an injected delay) and
read the outcome from the emulator. The window that remains is described in docs/security.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from acr_emulator.testing import EmulatorServer
from purge.config.settings import load_settings
from purge.service import MAX_REPLANS, run_purge

SCENARIO: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "o0", "kind": "image", "updated": "-40d", "tags": ["v0"]},
                {"id": "o1", "kind": "image", "updated": "-41d", "tags": ["v1"]},
                {"id": "o2", "kind": "image", "updated": "-42d", "tags": ["v2"]},
                {"id": "new", "kind": "image", "updated": "-1h", "tags": ["latest"]},
            ]
        },
        "other": {"manifests": [{"id": "x", "kind": "image", "updated": "-40d", "tags": ["x"]}]},
    }
}
RULES = [{"name": "old", "filter": [".*:.*"], "ago": "30d", "untagged": True}]


async def purge(emu: EmulatorServer) -> dict[str, Any]:
    config = load_settings({
        "PURGE_REGISTRY": emu.login_server, "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": emu.ca_file, "PURGE_USERNAME": emu.username or "",
        "PURGE_PASSWORD": emu.password or "", "PURGE_RULES": json.dumps(RULES),
    })  # fmt: skip
    return (await run_purge(config, dry_run=False)).to_dict()


def tag_digests(emu: EmulatorServer, repo: str = "app") -> dict[str, str]:
    return {name: t["digest"] for name, t in emu.dump()["repositories"][repo]["tags"].items()}


def body_of(emu: EmulatorServer, repo: str, digest: str) -> tuple[bytes, str]:
    def read() -> tuple[bytes, str]:
        manifest = emu.emulator.registry.repo(repo).manifests[digest]
        return manifest.body, manifest.media_type

    return emu._call(read)


def during_planning(
    emu: EmulatorServer, change: Callable[[], None], times: int = 1
) -> threading.Thread:
    """Run `change` while each of the next `times` manifest listings of `app` is held up, i.e.
    after its tags were listed and before the deletions."""
    emu.inject_fault(method="GET", path_regex=r"/app/_manifests$", status=None, delay=0.4,
                     count=times)  # fmt: skip

    def watch() -> None:
        done = 0
        deadline = time.monotonic() + 30
        while done < times and time.monotonic() < deadline:
            seen = sum(1 for e in emu.request_log() if e["path"] == "/acr/v1/app/_manifests")
            if seen > done:
                change()
                done += 1
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


async def test_a_tag_pushed_onto_a_manifest_planned_for_deletion_survives(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    old = tag_digests(emu)
    body, media_type = body_of(emu, "app", old["v0"])
    # someone promotes the old image v0 while the purge plans: `prod` -> the same digest
    watcher = during_planning(emu, lambda: emu.push_manifest("app", body, media_type, "prod"))
    report = await purge(emu)
    watcher.join(5)
    after = tag_digests(emu)
    assert after["prod"] == old["v0"]  # the manifest, and so the new tag, are still there
    assert old["v0"] in emu.dump()["repositories"]["app"]["manifests"]
    assert "v1" not in after and "v2" not in after  # the rest was purged after a fresh listing
    assert "app:prod" not in {f"{t['repository']}:{t['tag']}" for t in report["deleted"]["tags"]}
    assert report["errors"] == []
    assert "other" not in emu.dump()["repositories"]  # purged (and so gone) meanwhile


async def test_a_tag_moved_to_a_new_image_is_not_deleted(emulator_factory: Any) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    old = tag_digests(emu)
    fresh = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",' + (
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,'
        b'"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},'
        b'"layers":[]}'
    )
    emu.push_blob(b"{}")
    media_type = "application/vnd.oci.image.manifest.v1+json"
    # v1 is re-pushed (moved) to a new build while the purge plans
    watcher = during_planning(emu, lambda: emu.push_manifest("app", fresh, media_type, "v1"))
    report = await purge(emu)
    watcher.join(5)
    after = tag_digests(emu)
    assert "v1" in after and after["v1"] != old["v1"]  # the moved tag survives, on its new image
    assert "v0" not in after and "v2" not in after
    assert report["errors"] == []


async def test_a_repository_that_keeps_changing_is_skipped_with_an_error(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    old = tag_digests(emu)
    body, media_type = body_of(emu, "app", old["v2"])
    counter = iter(range(100))
    watcher = during_planning(
        emu,
        lambda: emu.push_manifest("app", body, media_type, f"ci-{next(counter)}"),
        times=MAX_REPLANS + 1,
    )
    report = await purge(emu)
    watcher.join(5)
    after = tag_digests(emu)
    assert {"v0", "v1", "v2", "latest"} <= set(after)  # nothing deleted in app
    [error] = [e for e in report["errors"] if e["repository"] == "app"]
    assert error["ref"] == "verify" and "retried on the next run" in error["error"]
    listings = [e for e in emu.request_log() if e["path"] == "/acr/v1/app/_manifests"]
    assert len(listings) == MAX_REPLANS + 1  # bounded
    assert "other" not in emu.dump()["repositories"]  # the other repository was purged
