"""Security end to end: no secret in any log or report, no request can redirect the function,
and an identity with too few rights gets a clear permission error with nothing half-done.

(Host confinement of tokens - untrusted login servers, foreign challenge realms and paging links -
is proven in test_acr_confinement.py; auth level FUNCTION in tests/function/test_bindings.py.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

import function_app
from acr_emulator.testing import EmulatorServer
from purge.cli import main as cli
from purge.config.settings import Config, Connection, load_settings
from purge.registry.acr import AcrRegistry
from purge.service import run_purge
from tests.fixtures.anonymous import AnonymousTokenSource
from tests.fixtures.identity_endpoint import ManagedIdentityEndpoint

SCENARIO: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "a", "kind": "image", "platform": "linux/amd64", "updated": "-40d"},
                {"id": "b", "kind": "image", "platform": "linux/arm64", "updated": "-40d"},
                {"id": "multi", "kind": "index", "children": ["a", "b"], "updated": "-40d",
                 "tags": ["1.0"]},
                {"id": "old", "kind": "image", "updated": "-40d", "tags": ["old"]},
                {"id": "pinned", "kind": "image", "updated": "-40d",
                 "tags": [{"name": "pinned", "locked": True}]},
                {"id": "orphan", "kind": "image", "updated": "-40d"},
                {"id": "new", "kind": "image", "updated": "-1h", "tags": ["latest"]},
            ]
        }
    }
}  # fmt: skip
RULES = [{"name": "all", "filter": ["app:.*"], "ago": "30d", "untagged": True,
          "includeLocked": True}]  # fmt: skip


def set_settings(monkeypatch: pytest.MonkeyPatch, emu: EmulatorServer, **extra: str) -> None:
    for key, value in {
        "PURGE_REGISTRY": emu.login_server,
        "PURGE_ALLOWED_HOSTS": emu.login_server,
        "PURGE_CA_FILE": emu.ca_file,
        "PURGE_RULES": json.dumps(RULES),
        **extra,
    }.items():
        monkeypatch.setenv(key, value)


async def post(body: bytes, params: dict[str, str] | None = None) -> tuple[int, str]:
    request = func.HttpRequest(
        method="POST",
        url="https://app.azurewebsites.net/api/purge",
        headers={"Content-Type": "application/json"},
        params={"code": "the-function-key", **(params or {})},
        body=body,
    )
    response = await function_app.purge_http(request)
    return response.status_code, response.get_body().decode()


def secret_forms(secret: str) -> list[str]:
    """The secret and the parts of it that alone would be enough to misuse or recognise it."""
    forms = [secret]
    if secret.count(".") == 2:  # JWT-shaped: the signature part is as good as the token
        forms.append(secret.rsplit(".", 1)[-1])
    return [f for f in forms if len(f) >= 8]


async def test_no_token_or_key_reaches_any_log_or_report_of_a_full_run(
    emulator_factory: Callable[..., EmulatorServer],
    identity_endpoint: ManagedIdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    set_settings(monkeypatch, emu)
    caplog.set_level(logging.DEBUG)  # everything: azure-core, azure-identity, aiohttp, ours
    emu.set_token_lifetime(1.0)  # several generations of tokens during the run
    emu.set_latency(0.05)
    # a failing delete and a retried listing put error paths in the logs too
    emu.inject_fault(method="DELETE", path_regex="/manifests/", status=500, count=2)
    emu.inject_fault(method="GET", path_regex="/_tags$", status=503, count=1)
    status, answer = await post(b'{"dryRun": false}')
    assert status == 200
    report = json.loads(answer)
    assert report["totals"]["tagsDeleted"] + report["totals"]["manifestsDeleted"] > 0
    secrets = emu.issued_tokens() + emu.aad_tokens_seen() + identity_endpoint.issued
    assert len(secrets) >= 4
    secrets += [identity_endpoint.header_secret, "the-function-key"]
    printed = capsys.readouterr()
    text = "\n".join([caplog.text, answer, printed.out, printed.err])
    text += "\n".join(str(r.args) for r in caplog.records)
    assert len(caplog.records) > 20  # the SDKs really logged the requests
    for secret in secrets:
        for form in secret_forms(secret):
            assert form not in text, "a secret reached the logs or the report"


def test_basic_credentials_never_reach_cli_output_or_logs(
    emulator_factory: Callable[..., EmulatorServer],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    caplog.set_level(logging.DEBUG)
    base = ["run", "-r", emu.login_server, "--allowed-host", "127.0.0.1", "--ca-file", emu.ca_file,
            "--filter", "app:.*", "--ago", "30d", "--output", "json"]  # fmt: skip
    assert cli.main([*base, "-u", "admin", "-p", "wrong-password-123"]) == 1  # refused
    assert cli.main([*base, "-u", emu.username or "", "-p", emu.password or ""]) == 0
    printed = capsys.readouterr()
    text = caplog.text + printed.out + printed.err
    assert "permission denied" in printed.out  # the refused run said why
    for secret in ("wrong-password-123", emu.password or "", *emu.issued_tokens()):
        for form in secret_forms(secret):
            assert form not in text


async def test_no_request_parameter_can_point_the_function_at_another_host(
    emulator_factory: Callable[..., EmulatorServer],
    identity_endpoint: ManagedIdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    other = emulator_factory(scenario=SCENARIO)
    set_settings(monkeypatch, emu, PURGE_ALLOWED_HOSTS=f"{emu.login_server},{other.login_server}")
    attempts = [
        (json.dumps({"registry": other.login_server, "dryRun": False}).encode(), {}),
        (json.dumps({"endpoint": other.endpoint}).encode(), {}),
        (json.dumps({"rules": [{"filter": ["app:.*"]}]}).encode(), {}),
        (b"{}", {"registry": other.login_server}),
        (b"{}", {"PURGE_REGISTRY": other.login_server}),
    ]
    for body, params in attempts:
        status, answer = await post(body, params)
        assert status == 400, answer
        assert "error" in json.loads(answer)
    assert other.request_log() == [] and emu.request_log() == []
    assert identity_endpoint.issued == []  # not even a token was asked for


async def test_a_pull_only_identity_gets_a_permission_error_and_nothing_is_half_done(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    """Anonymous pull stands for an identity with AcrPull but without AcrDelete."""
    emu = emulator_factory(scenario=SCENARIO, anonymous_pull=True)
    before = emu.dump()
    connection = Connection(emu.login_server, allowed_hosts=("127.0.0.1",), ca_file=emu.ca_file)
    config = Config(connection, rules=load_settings({
        "PURGE_REGISTRY": emu.login_server, "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_RULES": json.dumps(RULES),
    }).rules)  # fmt: skip
    registry = AcrRegistry(connection, source=AnonymousTokenSource())
    report = (await run_purge(config, dry_run=False, registry=registry)).to_dict()
    await registry.close()
    assert emu.dump() == before  # no tag, manifest, child or lock changed
    assert report["totals"]["tagsDeleted"] == report["totals"]["manifestsDeleted"] == 0
    errors = [e["error"] for e in report["errors"]]
    assert errors and all("permission denied" in e or "kept because its index" in e for e in errors)
    assert any("AcrDelete" in e for e in errors)
    assert any("unlock" in e for e in errors)  # the locked tag: the PATCH was refused
    # the index was refused, so its children were not even tried (no half-deleted image)
    index = next(
        d for d, m in before["repositories"]["app"]["manifests"].items() if m["references"]
    )
    children = before["repositories"]["app"]["manifests"][index]["references"]
    tried = {e["path"].rsplit("/", 1)[-1] for e in emu.request_log() if e["method"] == "DELETE"}
    assert index in tried and not tried & set(children)
