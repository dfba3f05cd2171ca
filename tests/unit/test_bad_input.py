"""Bad input not covered by the table-driven tests of rules, settings, command and CLI:
each case gets a clear message and zero delete requests.

Registry data arrives through the ACR client's JSON mapping (tag_from_json / manifest_from_json),
then runs through the real service and planner over the in-memory registry.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from purge.cli import main as cli
from purge.config import rules
from purge.config.rules import make_rule
from purge.config.settings import Config, Connection
from purge.model import DOCKER_MANIFEST
from purge.registry.wire import manifest_from_json, parse_time, tag_from_json
from purge.service import run_purge
from tests.fakes import InMemoryRegistry

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
OLD = "2024-04-01T00:00:00.1234567Z"
DIGEST = "sha256:" + "a" * 64


def config(*rule_list: rules.Rule) -> Config:
    return Config(Connection("test.azurecr.io"), rules=rule_list)


def registry_with(tags: list[dict[str, Any]], manifests: list[dict[str, Any]]) -> InMemoryRegistry:
    registry = InMemoryRegistry("test.azurecr.io")
    for item in manifests:
        registry.add_manifest("app", manifest_from_json(item))
    for item in tags:
        registry.add_tag("app", tag_from_json(item))
    return registry


def manifest(digest: str, **fields: Any) -> dict[str, Any]:
    attributes = {"deleteEnabled": True, "writeEnabled": True}
    return {"digest": digest, "mediaType": DOCKER_MANIFEST, "lastUpdateTime": OLD,
            "changeableAttributes": attributes, **fields}  # fmt: skip


BAD_TIMES = [None, "", "yesterday", "2024-13-45T00:00:00Z", "2024-04-01", 1714521600, [], "NaN"]


@pytest.mark.parametrize("value", BAD_TIMES)
def test_malformed_timestamps_parse_to_unknown(value: object) -> None:
    assert parse_time(value) is None


async def test_tags_and_manifests_with_bad_timestamps_are_kept_and_reported() -> None:
    digests = [f"sha256:{n:064x}" for n in range(len(BAD_TIMES) + 1)]
    manifests = [manifest(d, lastUpdateTime=t) for d, t in zip(digests, BAD_TIMES, strict=False)]
    manifests.append(manifest(digests[-1]))  # one good, old, untagged manifest
    tags = [
        {"name": f"t{n}", "digest": d, "lastUpdateTime": t,
         "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True}}
        for n, (d, t) in enumerate(zip(digests, BAD_TIMES, strict=False))
    ]  # fmt: skip
    registry = registry_with(tags, manifests)
    rule = make_rule("r", filters=["app:.*"], ago="1d", untagged=True)
    report = (await run_purge(config(rule), dry_run=False, now=NOW, registry=registry)).to_dict()
    assert registry.mutating_calls() == 1  # only the good manifest
    assert [m["digest"] for m in report["deleted"]["manifests"]] == [digests[-1]]
    kept_tags = {k["tag"]: k["reason"] for k in report["kept"] if "tag" in k}
    assert set(kept_tags) == {f"t{n}" for n in range(len(BAD_TIMES))}
    assert all("time" in reason or "date" in reason for reason in kept_tags.values()), kept_tags


async def test_missing_lock_attributes_count_as_locked() -> None:
    item = manifest(DIGEST)
    registry = registry_with([{"name": "v1", "digest": DIGEST, "lastUpdateTime": OLD}], [item])
    rule = make_rule("r", filters=["app:.*"], ago="1d")
    report = (await run_purge(config(rule), dry_run=False, now=NOW, registry=registry)).to_dict()
    assert registry.mutating_calls() == 0
    assert report["totals"]["tagsDeleted"] == 0
    assert any("lock" in k["reason"] for k in report["kept"])


async def test_catastrophic_regex_times_out_and_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rules, "MATCH_TIMEOUT_SECONDS", 0.05)
    registry = registry_with(
        [{"name": "a" * 60 + "b", "digest": DIGEST, "lastUpdateTime": OLD,
          "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True}}],
        [manifest(DIGEST)],
    )  # fmt: skip
    rule = make_rule("evil", filters=["app:(a|aa)+$"], ago="1d", untagged=True)
    started = datetime.now(timezone.utc)
    report = (await run_purge(config(rule), dry_run=False, now=NOW, registry=registry)).to_dict()
    assert datetime.now(timezone.utc) - started < timedelta(seconds=10)
    assert registry.mutating_calls() == 0
    assert any("timed out" in e["error"] for e in report["errors"]), report["errors"]


async def test_a_rule_that_matches_nothing_deletes_nothing_and_sends_no_delete() -> None:
    registry = registry_with(
        [{"name": "v1", "digest": DIGEST, "lastUpdateTime": OLD,
          "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True}}],
        [manifest(DIGEST)],
    )  # fmt: skip
    rule = make_rule("typo", filters=["ap:.*"], ago="1d", untagged=True)
    report = (await run_purge(config(rule), dry_run=False, now=NOW, registry=registry)).to_dict()
    assert registry.mutating_calls() == 0 and registry.calls["list_tags"] == 0
    assert report["totals"]["tagsDeleted"] == report["totals"]["manifestsDeleted"] == 0


CLI_CASES = [
    (["--keep", "1.5"], "--keep"),
    (["--keep", "two"], "--keep"),
    (["--ago", "30"], "--ago"),
    (["--ago", "99999999d"], "--ago"),
    (["--untagged", "--untagged-only"], "exclude each other"),
    (["--filter", "app:(unclosed"], "app:(unclosed"),
    (["--concurrency", "x"], "--concurrency"),
]


@pytest.mark.parametrize(("extra", "message"), CLI_CASES)
def test_bad_flags_exit_two_before_any_request(
    capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["run", "-r", "unreachable.azurecr.io", "--filter", "app:.*", "--ago", "1d", *extra]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ("http://myreg.azurecr.io", "plain http"),
        ("evil.example.com", "PURGE_ALLOWED_HOSTS"),
        ("myreg.azurecr.io.evil.com", "PURGE_ALLOWED_HOSTS"),
        ("", "-r/--registry is required"),
    ],
)
def test_bad_registries_are_refused_before_any_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, registry: str, message: str
) -> None:
    monkeypatch.delenv("PURGE_REGISTRY", raising=False)
    code = cli.main(["run", "-r", registry, "--filter", "app:.*", "-u", "u", "-p", "secret-pw"])
    printed = capsys.readouterr()
    assert code == 2, printed
    assert message in printed.err and "secret-pw" not in printed.err + printed.out
