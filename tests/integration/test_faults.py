"""Faults end to end: run_purge -> ACR client -> real SDK -> HTTPS -> emulator with faults on.

Each test checks the four promises of a run under faults: it completes or stops cleanly; retries
are bounded; the report states exactly what was deleted and what failed; and the registry state
afterwards (emu.dump()) shows that nothing outside the plan was deleted. The plan is the dry run
of the same rule taken before the faults are switched on (a dry run changes nothing).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest

from acr_emulator.testing import EmulatorServer
from purge.config.settings import Config, Connection, load_settings
from purge.executor import CHECKED_DELETE_SENDS
from purge.registry import acr as acr_module
from purge.registry.acr import AcrRegistry
from purge.registry.policies import RETRY_TOTAL, BoundedRetryPolicy
from purge.service import run_purge
from tests.fixtures.identity_endpoint import ManagedIdentityEndpoint

REPOSITORIES = ("alpha", "beta", "gamma")
#: Attempts one request gets on 5xx/429: azure-core caps status retries (retry_status) too.
TRIES = 1 + min(RETRY_TOTAL, BoundedRetryPolicy(retry_total=RETRY_TOTAL).status_retries)
RULES = [{"name": "old", "filter": [".*:.*"], "ago": "30d", "untagged": True}]


def repository(old: int = 3) -> dict[str, Any]:
    manifests: list[dict[str, Any]] = [
        {"id": f"o{i}", "kind": "image", "updated": f"-{40 + i}d", "tags": [f"v{i}"]}
        for i in range(old)
    ]
    manifests.append({"id": "new", "kind": "image", "updated": "-1h", "tags": ["latest"]})
    manifests.append({"id": "orphan", "kind": "image", "updated": "-50d"})
    return {"manifests": manifests}


SCENARIO: dict[str, Any] = {"repositories": {name: repository() for name in REPOSITORIES}}

State = dict[str, tuple[frozenset[str], frozenset[str]]]


def state(emu: EmulatorServer) -> State:
    """repository -> (tags, manifest digests), from the emulator itself."""
    return {
        name: (frozenset(repo["tags"]), frozenset(repo["manifests"]))
        for name, repo in emu.dump()["repositories"].items()
    }


def refs(s: State) -> set[str]:
    out: set[str] = set()
    for name, (tags, digests) in s.items():
        out |= {f"{name}:{t}" for t in tags} | {f"{name}@{d}" for d in digests}
    return out


def reported(report: dict[str, Any]) -> set[str]:
    """Everything the report says was deleted, as repo:tag / repo@digest."""
    return {f"{t['repository']}:{t['tag']}" for t in report["deleted"]["tags"]} | {
        f"{m['repository']}@{m['digest']}" for m in report["deleted"]["manifests"]
    }


def config(emu: EmulatorServer, rules: list[dict[str, Any]] | None = None) -> Config:
    return load_settings(
        {
            "PURGE_REGISTRY": emu.login_server,
            "PURGE_ALLOWED_HOSTS": "127.0.0.1",
            "PURGE_CA_FILE": emu.ca_file,
            "PURGE_RULES": json.dumps(rules or RULES),
        }
    )


def connection(emu: EmulatorServer) -> Connection:
    return Connection(emu.login_server, allowed_hosts=("127.0.0.1",), ca_file=emu.ca_file)


async def purge(emu: EmulatorServer, *, dry_run: bool = False, **kwargs: Any) -> dict[str, Any]:
    report = await run_purge(config(emu), dry_run=dry_run, **kwargs)
    return report.to_dict()


class Checked:
    """A dry-run plan taken before the faults, and the checks every faulty run must pass."""

    def __init__(self, emu: EmulatorServer, plan: dict[str, Any]) -> None:
        self.emu = emu
        self.before = state(emu)
        self.planned = reported(plan)
        assert self.planned, "the scenario must plan deletions"

    def after(self, report: dict[str, Any]) -> set[str]:
        """Assert the run stayed inside the plan and reported exactly what it deleted."""
        gone = refs(self.before) - refs(state(self.emu))
        assert gone <= self.planned, f"deleted outside the plan: {gone - self.planned}"
        assert reported(report) == gone, "the report must state exactly what was deleted"
        assert report["totals"]["errors"] == len(report["errors"])
        assert report["totals"]["tagsDeleted"] == len(report["deleted"]["tags"])
        assert report["totals"]["manifestsDeleted"] == len(report["deleted"]["manifests"])
        return gone

    def untouched(self, *repositories: str) -> None:
        now = state(self.emu)
        for name in repositories:
            assert now[name] == self.before[name], f"{name} must be left as it was"

    def done(self, *repositories: str) -> None:
        """These repositories were purged exactly as planned."""
        now = refs(state(self.emu))
        for name in repositories:
            mine = {r for r in self.planned if r.startswith((f"{name}:", f"{name}@"))}
            assert mine and not mine & now, f"{name}: planned deletions are missing"


@pytest.fixture
def emu(emulator_factory: Any, identity_endpoint: ManagedIdentityEndpoint) -> EmulatorServer:
    return emulator_factory(scenario=SCENARIO)


@pytest.fixture
async def checked(emu: EmulatorServer) -> Checked:
    return Checked(emu, await purge(emu, dry_run=True))


def attempts(emu: EmulatorServer) -> Counter[tuple[str, str]]:
    return Counter((e["method"], e["path"]) for e in emu.request_log())


def assert_bounded(emu: EmulatorServer) -> None:
    """No request was sent more often than its tries (plus one re-send after a 401 challenge;
    a tag listing is read twice: to plan, and to verify just before deleting). Token requests
    are per scope, so they are bounded per run instead."""
    for (method, path), n in attempts(emu).items():
        if path.startswith("/oauth2/"):
            continue
        limit = 2 * (TRIES + 1) if path.endswith("/_tags") else TRIES + 1
        assert n <= limit, f"{method} {path} sent {n} times"
    tokens = sum(n for (_, path), n in attempts(emu).items() if path.startswith("/oauth2/"))
    assert tokens <= 60, f"{tokens} token requests"


def errors_for(report: dict[str, Any], repository: str) -> list[str]:
    return [e["error"] for e in report["errors"] if e["repository"] == repository]


# ---------------------------------------------------------------- throttling and 5xx


async def test_429_storm_with_retry_after_completes(emu: EmulatorServer, checked: Checked) -> None:
    emu.reset_log()
    emu.inject_fault(status=429, count=TRIES - 1)  # a burst of refusals, no Retry-After
    emu.set_rate_limit(15)  # then ACR's pacing: 429 + Retry-After past the limit
    report = await purge(emu)
    assert report["complete"] and report["errors"] == [], report["errors"]
    assert checked.after(report) == checked.planned
    log = emu.request_log()
    assert sum(1 for e in log if e["status"] == 429) >= TRIES - 1
    deletes = Counter(e["path"] for e in log if e["method"] == "DELETE" and e["status"] == 202)
    assert deletes and set(deletes.values()) == {1}  # each deleted once, no duplicate delete
    assert_bounded(emu)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_bursts_of_5xx_are_ridden_out(
    emu: EmulatorServer, checked: Checked, status: int
) -> None:
    emu.reset_log()
    emu.inject_fault(method="GET", path_regex=r"/alpha/_tags$", status=status, count=2)
    emu.inject_fault(method="GET", path_regex=r"/beta/_manifests$", status=status, count=2)
    emu.inject_fault(method="DELETE", path_regex=r"/gamma/", status=status, count=3)
    report = await purge(emu)
    assert report["complete"] and report["errors"] == [], report["errors"]
    assert checked.after(report) == checked.planned
    assert sum(1 for e in emu.request_log() if e["status"] == status) == 7
    assert_bounded(emu)


async def test_connections_dropped_mid_request_are_retried(
    emu: EmulatorServer, checked: Checked
) -> None:
    emu.reset_log()
    emu.inject_fault(method="GET", path_regex=r"/beta/_tags$", status=None, drop=True, count=1)
    emu.inject_fault(method="DELETE", path_regex=r"/alpha/", status=None, drop=True, count=2)
    report = await purge(emu)
    assert report["errors"] == [], report["errors"]
    assert checked.after(report) == checked.planned
    assert sum(1 for e in emu.request_log() if e["status"] == -1) == 3
    assert_bounded(emu)


async def test_persistent_5xx_on_one_delete_fails_that_item_only(
    emu: EmulatorServer, checked: Checked
) -> None:
    emu.reset_log()
    emu.inject_fault(method="DELETE", path_regex=r"/alpha/manifests/", status=500, count=1000)
    report = await purge(emu)
    gone = checked.after(report)
    assert not any(r.startswith(("alpha:", "alpha@")) for r in gone)
    alpha_errors = errors_for(report, "alpha")
    assert len(alpha_errors) == 4 and all("HTTP 500" in e for e in alpha_errors)
    checked.untouched("alpha")
    checked.done("beta", "gamma")  # acr purge would have aborted the whole run here
    manifest_deletes = [
        e for e in emu.request_log() if e["method"] == "DELETE" and "alpha" in e["path"]
    ]
    # bounded: the same sends for each, every one right after its check (the executor resends)
    assert len(manifest_deletes) == 4 * CHECKED_DELETE_SENDS


async def test_a_throttled_manifest_delete_is_checked_again_before_it_is_sent_again(
    emu: EmulatorServer, checked: Checked
) -> None:
    """The SDK pipeline never resends a manifest DELETE by itself: a resend seconds later
    would skip the reads that make it safe (tags and referrers pushed meanwhile)."""
    emu.reset_log()
    emu.inject_fault(method="DELETE", path_regex=r"/alpha/manifests/", status=429, count=1)
    report = await purge(emu)
    assert report["errors"] == [], report["errors"]
    assert checked.after(report) == checked.planned
    log = [e for e in emu.request_log() if "/alpha/" in e["path"]]
    [refused] = [i for i, e in enumerate(log) if e["status"] == 429]
    digest = log[refused]["path"].rsplit("/", 1)[1]
    about = [
        (e["method"], e["path"].split("/")[-2], e["status"]) for e in log if digest in e["path"]
    ]
    check = [("GET", "referrers", 200), ("GET", "_manifests", 200)]
    sent = [("DELETE", "manifests", 429)]
    read_back = [("GET", "_manifests", 200)]
    about = about[about.index(check[0]) :]  # after the planner's read of the body
    assert about == check + sent + read_back + check + [("DELETE", "manifests", 202)]


# ---------------------------------------------------------------- failed and partial listings


@pytest.mark.parametrize("listing", ["_tags", "_manifests"])
async def test_a_listing_page_failing_after_earlier_pages_deletes_nothing_there(
    emu: EmulatorServer, checked: Checked, listing: str
) -> None:
    emu.reset_log()
    # page 1 succeeds, every later request for this listing fails
    emu.inject_fault(method="GET", path_regex=rf"/beta/{listing}$", status=503, count=100, skip=1)
    registry = AcrRegistry(connection(emu), page_size=2)
    report = (await run_purge(config(emu), dry_run=False, registry=registry)).to_dict()
    await registry.close()
    checked.after(report)
    checked.untouched("beta")
    checked.done("alpha", "gamma")
    [error] = errors_for(report, "beta")
    assert "HTTP 503" in error and "nothing deleted in this repository" in error
    pages = [e for e in emu.request_log() if e["path"] == f"/acr/v1/beta/{listing}"]
    assert pages[0]["status"] == 200 and "last=" not in pages[0]["query"]
    assert all(e["status"] == 503 for e in pages[1:]) and len(pages) == 1 + TRIES


async def test_a_failed_catalog_stops_cleanly_and_deletes_nothing(
    emu: EmulatorServer, checked: Checked
) -> None:
    emu.reset_log()
    emu.inject_fault(method="GET", path_regex=r"_catalog$", status=500, count=100)
    report = await purge(emu)
    assert not report["complete"]
    assert report["errors"][0]["ref"] == "_catalog" and "HTTP 500" in report["errors"][0]["error"]
    checked.after(report)
    checked.untouched(*REPOSITORIES)
    assert not any(e["method"] == "DELETE" for e in emu.request_log())


async def test_responses_slower_than_the_client_timeout(
    emu: EmulatorServer, checked: Checked, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.reset_log()
    # alpha: one slow answer (retried after the timeout); beta: always too slow (gives up)
    emu.inject_fault(method="GET", path_regex=r"/alpha/_manifests$", status=None, delay=1.2)
    emu.inject_fault(method="GET", path_regex=r"/beta/_tags$", status=None, delay=1.2, count=100)
    # The engine's own transport and read timeout (60 s in production), made short here.
    monkeypatch.setattr(acr_module, "READ_TIMEOUT", 0.3)
    registry = AcrRegistry(connection(emu))
    started = time.monotonic()
    report = (await run_purge(config(emu), dry_run=False, registry=registry)).to_dict()
    await registry.close()
    assert time.monotonic() - started < 20
    checked.after(report)
    checked.untouched("beta")
    checked.done("alpha", "gamma")
    [error] = errors_for(report, "beta")
    assert "nothing deleted in this repository" in error
    assert_bounded(emu)


# ---------------------------------------------------------------- identity and tokens


async def test_a_token_expiring_mid_run_is_renewed(emu: EmulatorServer, checked: Checked) -> None:
    emu.set_token_lifetime(0.5)
    emu.set_latency(0.1)  # the run outlives several tokens
    emu.reset_log()
    report = await purge(emu)
    assert report["errors"] == [], report["errors"]
    assert checked.after(report) == checked.planned
    log = emu.request_log()
    assert log[-1]["time"] - log[0]["time"] > 1.0
    assert sum(1 for e in log if e["path"] == "/oauth2/token" and e["status"] == 200) >= 3
    assert_bounded(emu)


async def test_a_revoked_token_gets_a_fresh_challenge_mid_run(
    emu: EmulatorServer, checked: Checked
) -> None:
    emu.reset_log()
    # the first DELETE is held for a moment; meanwhile the registry forgets every token it
    # issued (as after a key rotation), so that DELETE and the rest meet a fresh 401 challenge
    emu.inject_fault(method="DELETE", path_regex=".", status=None, delay=0.5)
    watcher = threading.Thread(target=forget_tokens_at_first_delete, args=(emu,), daemon=True)
    watcher.start()
    report = await purge(emu)
    watcher.join(5)
    assert report["errors"] == [], report["errors"]
    assert checked.after(report) == checked.planned
    challenged = [e for e in emu.request_log() if e["status"] == 401]
    assert challenged and challenged[0]["method"] == "DELETE"
    assert_bounded(emu)


def forget_tokens_at_first_delete(emu: EmulatorServer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(e["method"] == "DELETE" for e in emu.request_log()):
            emu._call(emu.emulator.tokens.tokens.clear)
            return
        time.sleep(0.02)


async def test_managed_identity_endpoint_down_stops_cleanly(
    emu: EmulatorServer, identity_endpoint: ManagedIdentityEndpoint
) -> None:
    before = state(emu)
    identity_endpoint.fail_next(1000, status=500)
    started = time.monotonic()
    report = await purge(emu)
    assert time.monotonic() - started < 60
    assert not report["complete"]
    assert report["errors"] and report["errors"][0]["ref"] == "_catalog"
    assert state(emu) == before
    assert not any(e["method"] in ("DELETE", "PATCH") for e in emu.request_log())
    assert len(identity_endpoint.requests) <= 10  # azure-identity's retries are bounded


async def test_managed_identity_endpoint_slow_or_flaky_still_completes(
    emu: EmulatorServer, checked: Checked, identity_endpoint: ManagedIdentityEndpoint
) -> None:
    identity_endpoint.requests.clear()
    identity_endpoint.set_delay(1.0)
    identity_endpoint.fail_next(1, status=503)
    report = await purge(emu)
    assert report["errors"] == [], report["errors"]
    assert checked.after(report) == checked.planned
    assert len(identity_endpoint.requests) >= 2  # the failed call was retried


# ---------------------------------------------------------------- registry data


async def test_unknown_media_types_and_bad_bodies_are_kept_and_reported(
    emulator_factory: Any, identity_endpoint: ManagedIdentityEndpoint
) -> None:
    helm = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    scenario = {
        "repositories": {
            "odd": {"manifests": [
                {"id": "helm", "kind": "unknown", "updated": "-60d", "mediaType": helm},
                {"id": "plain", "kind": "image", "updated": "-60d"},
            ]},
            # a referrer whose body does not match its digest, and one that cannot be fetched
            "forged": {"manifests": [
                {"id": "base", "kind": "image", "updated": "-60d"},
                {"id": "sbom", "kind": "artifact", "subject": "base", "updated": "-60d",
                 "corrupt": True, "artifactType": "application/vnd.example.sbom"},
            ]},
            "down": {"manifests": [
                {"id": "base", "kind": "image", "updated": "-60d"},
                {"id": "sig", "kind": "artifact", "subject": "base", "updated": "-60d",
                 "unreadable": True, "artifactType": "application/vnd.cncf.notary.signature"},
            ]},
        }
    }  # fmt: skip
    emu = emulator_factory(scenario=scenario)
    before = emu.dump()["repositories"]
    odd = before["odd"]["manifests"]
    helm_digest = next(d for d, m in odd.items() if m["mediaType"] == helm)
    plain = next(d for d in odd if d != helm_digest)
    rule = [{"name": "u", "untaggedOnly": True, "ago": "30d"}]
    report = (await run_purge(config(emu, rule), dry_run=False)).to_dict()
    after = emu.dump()["repositories"]
    assert set(after["odd"]["manifests"]) == {helm_digest}  # only the decidable image went
    assert reported(report) == {f"odd@{plain}"}
    for name in ("forged", "down"):
        assert after[name]["manifests"] == before[name]["manifests"]
    kept = {(k["repository"], k.get("digest")): k["reason"] for k in report["kept"]}
    assert helm in kept[("odd", helm_digest)]
    for name in ("forged", "down"):
        assert {digest for repo, digest in kept if repo == name} == set(before[name]["manifests"])
