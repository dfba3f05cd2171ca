"""Pushes that land while a purge deletes, on a throttled emulator (issue 16, section 1).

The repository-wide re-check happens before the delete phase; on a registry at its rate limit
that phase lasts seconds. A pusher changes the registry once the first delete of the run is in
flight (the emulator holds that request for a moment, as a slow registry would), so every change
lands after that re-check and before the manifest deletes:

- `promoted` is pushed onto the old image of `build-13` (planned for deletion);
- `build-20` is re-pushed onto a new image while its tag delete is in flight;
- `build-12` is moved to a new image, away from the old one that is still deleted.

The engine reads each manifest's tags just before its own DELETE, compares the digest ACR
answers for a tag delete (`X-Ms-Int-Docker-Content-Digest`) and puts a tag that moved back on its
new image. The outcome is read from the emulator; the report must agree with it.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from acr_emulator.scenario import manifest_digests
from acr_emulator.testing import EmulatorServer
from purge.config.settings import Config, load_settings
from purge.service import run_purge
from tests.fixtures.images import oci_image

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BUILDS = range(11, 21)
SCENARIO: dict[str, Any] = {
    "repositories": {
        "ci": {
            "manifests": [
                {
                    "id": f"m{n}",
                    "kind": "image",
                    "updated": f"-{60 - n}d",
                    # m20 is also the current `stable`: its build tag goes by a tag delete
                    "tags": [f"build-{n}"] + ([{"name": "stable", "updated": "-1h"}] * (n == 20)),
                }
                for n in BUILDS
            ]
        }
    }
}
RULES = [{"name": "ci", "filter": ["ci:^build-"], "ago": "30d", "untagged": True}]
#: Writes per second, reads ten times as many, as ACR's limits are: the delete phase takes seconds.
WRITE_LIMIT = 5.0


def tags_of(emu: EmulatorServer) -> dict[str, str]:
    return {name: t["digest"] for name, t in emu.dump()["repositories"]["ci"]["tags"].items()}


def config_for(emu: EmulatorServer, rules: list[dict[str, Any]]) -> Config:
    return load_settings({
        "PURGE_REGISTRY": emu.login_server, "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": emu.ca_file, "PURGE_USERNAME": emu.username or "",
        "PURGE_PASSWORD": emu.password or "", "PURGE_RULES": json.dumps(rules),
    })  # fmt: skip


def push_once_deletes_start(emu: EmulatorServer, *pushes: Callable[[], object]) -> threading.Event:
    """Run `pushes` in a thread as soon as the emulator has seen the run's first DELETE; the
    event is set once they are done."""
    pushed = threading.Event()

    def pusher() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(e["method"] == "DELETE" for e in emu.request_log()):
                for push in pushes:
                    push()
                pushed.set()
                return
            time.sleep(0.01)

    threading.Thread(target=pusher, daemon=True).start()
    return pushed


def body_of(emu: EmulatorServer, digest: str, repository: str = "ci") -> bytes:
    return emu._call(lambda: emu.emulator.registry.repo(repository).manifests[digest].body)


async def test_pushes_during_the_delete_phase_lose_nothing_and_the_report_is_exact(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    before = tags_of(emu)
    old13, old12, old20 = before["build-13"], before["build-12"], before["build-20"]
    new20, new20_digest = oci_image(emu, "build-20 again")
    new12, new12_digest = oci_image(emu, "build-12 moved")
    # The first delete of the run (the tag delete of build-20) is held 1 s by the registry.
    emu.inject_fault(method="DELETE", path_regex=r"/_tags/build-20$", status=None, delay=1.0)
    emu.set_rate_limits(reads=10 * WRITE_LIMIT, writes=WRITE_LIMIT)
    pushed = push_once_deletes_start(
        emu,
        lambda: emu.push_manifest("ci", body_of(emu, old13), OCI_MANIFEST, "promoted"),
        lambda: emu.push_manifest("ci", new20, OCI_MANIFEST, "build-20"),
        lambda: emu.push_manifest("ci", new12, OCI_MANIFEST, "build-12"),
    )
    config = config_for(emu, RULES)
    report = (await run_purge(config, dry_run=False)).to_dict()
    assert pushed.wait(10)
    emu.set_rate_limit(None)
    after = tags_of(emu)
    manifests = set(emu.dump()["repositories"]["ci"]["manifests"])

    # Nothing pushed during the run was lost.
    assert after["promoted"] == old13 and old13 in manifests  # the promoted image lives
    assert after["build-20"] == new20_digest and new20_digest in manifests
    assert after["build-12"] == new12_digest and new12_digest in manifests
    assert after["stable"] == old20
    # The rest was purged: the old build-12 image (untagged now) went too.
    for n in set(BUILDS) - {13, 20}:
        assert f"build-{n}" not in after or n == 12
        assert before[f"build-{n}"] not in manifests

    # The report says only what the registry removed.
    deleted_tags = {t["tag"]: t["digest"] for t in report["deleted"]["tags"]}
    deleted_manifests = {m["digest"]: m["tags"] for m in report["deleted"]["manifests"]}
    for name in ("promoted", "build-13", "build-20", "build-12"):
        assert name not in deleted_tags, name
    assert old13 not in deleted_manifests
    assert deleted_manifests[old12] == []  # build-12 had moved away: not removed with it
    for name in deleted_tags:
        assert name not in after
    for digest, tags in deleted_manifests.items():
        assert digest not in manifests
        assert not set(tags) & set(after)
    assert set(deleted_tags) == {f"build-{n}" for n in set(BUILDS) - {12, 13, 20}}
    kept = {(k.get("tag") or k.get("digest")): k["reason"] for k in report["kept"]}
    assert "moved" in kept["build-20"] and new20_digest[:19] in kept["build-20"]
    assert "promoted" in kept[old13]
    assert report["totals"]["tagsDeleted"] == len(deleted_tags)
    assert report["totals"]["manifestsDeleted"] == len(deleted_manifests)


def pre_delete_windows(log: list[dict[str, Any]], read: str) -> list[float]:
    """Seconds from each manifest's last read of `read` (`/_manifests/`: its tags;
    `/referrers/`: its referrers) to its accepted DELETE, from the request log."""
    read_at: dict[str, float] = {}
    windows = []
    for entry in log:
        path = entry["path"]
        if entry["method"] == "GET" and read in path and entry["status"] == 200:
            read_at[path.rsplit("/", 1)[1]] = entry["time"]
        if entry["method"] == "DELETE" and "/manifests/" in path and entry["status"] == 202:
            digest = path.rsplit("/", 1)[1]
            windows.append(entry["time"] - read_at[digest])
    return windows


async def test_each_manifest_is_checked_just_before_its_own_delete(emulator_factory: Any) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    emu.set_rate_limits(reads=10 * WRITE_LIMIT, writes=WRITE_LIMIT)
    config = config_for(emu, RULES)
    report = (await run_purge(config, dry_run=False)).to_dict()
    assert report["errors"] == []
    log = emu.request_log()
    # Every deleted manifest had its referrers and then its tags read right before its delete.
    for read in ("/referrers/", "/_manifests/"):
        windows = pre_delete_windows(log, read)
        assert len(windows) == len(BUILDS) - 1
        print(
            f"{read.strip('/')} read -> DELETE window at {WRITE_LIMIT:g} writes/s: median "
            f"{statistics.median(windows):.3f}s, max {max(windows):.3f}s"
        )


REFERRER_SCENARIO: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                # Untagged images, each with a signature that the registry removes with it.
                {"id": "u", "kind": "image", "updated": "-40d", "seed": "u"},
                {"id": "s", "kind": "artifact", "subject": "u", "updated": "-40d"},
                {"id": "v", "kind": "image", "updated": "-40d", "seed": "v"},
                {"id": "sv", "kind": "artifact", "subject": "v", "updated": "-40d"},
                # Its old tag goes by a tag delete of its own: the first delete of the run.
                {
                    "id": "w",
                    "kind": "image",
                    "updated": "-40d",
                    "tags": ["old-w", {"name": "keep-w", "updated": "-1h"}],
                },
            ]
        }
    }
}


async def test_referrers_pushed_during_the_delete_phase_keep_their_subject(
    emulator_factory: Any,
) -> None:
    """ACR deletes a manifest's referrers with it, tags and all. A tagged SBOM pushed onto an
    untagged image, or a tag pushed onto its planned signature, after the listing must not be
    taken along by the image's delete: each manifest's referrers are read just before it."""
    emu = emulator_factory(scenario=REFERRER_SCENARIO)
    digests = {m: d for m, d in manifest_digests(REFERRER_SCENARIO)["app"].items()}
    u, v, sv = digests["u"], digests["v"], digests["sv"]
    sbom = json.loads(oci_image(emu, "sbom of u")[0])
    sbom["subject"] = {"mediaType": OCI_MANIFEST, "digest": u, "size": len(body_of(emu, u, "app"))}
    sbom_body = json.dumps(sbom).encode()
    sbom_digest = "sha256:" + hashlib.sha256(sbom_body).hexdigest()
    signature = emu._call(lambda: emu.emulator.registry.repo("app").manifests[sv])
    emu.inject_fault(method="DELETE", path_regex=r"/_tags/old-w$", status=None, delay=1.0)
    emu.set_rate_limits(reads=10 * WRITE_LIMIT, writes=WRITE_LIMIT)
    pushed = push_once_deletes_start(
        emu,
        lambda: emu.push_manifest("app", sbom_body, OCI_MANIFEST, "sbom-u"),
        lambda: emu.push_manifest("app", signature.body, signature.media_type, "release-sig"),
    )
    rules = [{"name": "app", "filter": ["app:^old-"], "ago": "30d", "untagged": True}]
    config = config_for(emu, rules)
    report = (await run_purge(config, dry_run=False)).to_dict()
    assert pushed.wait(10)
    emu.set_rate_limit(None)
    state = emu.dump()["repositories"]["app"]
    tags = {name: t["digest"] for name, t in state["tags"].items()}

    # Nothing pushed during the run was lost, nor what it refers to.
    assert tags["sbom-u"] == sbom_digest and {u, sbom_digest, digests["s"]} <= set(
        state["manifests"]
    )
    assert tags["release-sig"] == sv and {v, sv} <= set(state["manifests"])
    assert "old-w" not in tags and tags["keep-w"] == digests["w"]
    # The report says so.
    assert report["errors"] == []
    assert {t["tag"] for t in report["deleted"]["tags"]} == {"old-w"}
    assert report["deleted"]["manifests"] == []
    kept = {k.get("digest"): k["reason"] for k in report["kept"] if "tag" not in k}
    assert "pushed during the purge" in kept[u] and sbom_digest[:19] in kept[u]
    assert "tag release-sig pushed onto its referrer" in kept[v]
