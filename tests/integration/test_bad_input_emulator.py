"""Bad input through the real entry points, against a live emulator: a clear message, and not
one write in the emulator's request log (issue 16: "each asserting the clear message and zero
writes").

The CLI cases call `purge.cli.main` as a shell would; the settings and body cases call the
registered `POST /api/purge` handler with real azure.functions objects. All of them point at
one emulator over HTTPS, so a case that slipped through would really purge it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import function_app
from acr_emulator.testing import SMALL_SCENARIO, EmulatorServer
from purge.cli import main as cli

SECRET = "S3cret-not-for-logs"
HUGE = "9" * 5000
DEEP = "[" * 20000 + "]" * 20000


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(scenario=SMALL_SCENARIO) as server:
        yield server


@pytest.fixture
def fresh(emu: EmulatorServer) -> Iterator[EmulatorServer]:
    before = emu.dump()
    emu.reset_log()
    yield emu
    assert writes(emu) == [], "a bad input wrote to the registry"
    assert emu.dump() == before


def writes(emu: EmulatorServer) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emu.request_log()
        if e["method"] in ("DELETE", "PATCH", "PUT", "POST") and "/oauth2/" not in e["path"]
    ]


def base_args(emu: EmulatorServer) -> list[str]:
    return ["run", "-r", emu.login_server, "--allowed-host", emu.login_server,
            "--ca-file", emu.ca_file,
            "-u", emu.username or "", "-p", emu.password or ""]  # fmt: skip


def not_pem(tmp: Path) -> str:
    path = tmp / "not-a-ca.pem"
    path.write_text("this is not a certificate\n", encoding="utf-8")
    return str(path)


# (flags after the base ones, a fragment the message must contain)
CLI_CASES: list[tuple[list[str], str]] = [
    (["--filter", "app", "--ago", "1d"], "no colon"),
    (["--filter", "app:(", "--ago", "1d"], "invalid regular expression"),
    (["--filter", "app:", "--ago", "1d"], "the tag part is empty"),
    (["--filter", "(app:.*", "--ago", "1d"], "unclosed '('"),
    (["--ago", "1d"], "needs at least one filter"),
    (["--filter", "app:.*", "--ago=-1d"], "a sign is not allowed"),
    (["--filter", "app:.*", "--ago", "1w"], "unknown unit 'w'"),
    (["--filter", "app:.*", "--ago", "60000d"], "exceeds the maximum"),
    (["--filter", "app:.*", "--ago", "1d", "--keep", "-1"], "--keep"),
    (["--filter", "app:.*", "--ago", "1d", "--keep", "many"], "--keep"),
    (["--filter", "app:.*", "--ago", "1d", "--max-deletions", "101%"], "out of range"),
    (["--filter", "app:.*", "--ago", "1d", "--max-deletions", "-3"], "--max-deletions"),
    (["--filter", "app:.*", "--untagged", "--untagged-only"], "exclude each other"),
    (["--filter", "app:.*", "--ago", "1d3"], "'3' has no unit"),
    (["--filter", "app:.*", "--protect", ""], "non-empty regular expression"),
    (["--filter", "app:.*", "--protect", "("], "invalid regular expression"),
    (["--filter", "app:.*", "--name", ""], "name ''"),
    (["--filter", "app:.*", "--name", "two words"], "name 'two words'"),
    (["--filter", "app:.*", "--schedule", "every night"], "schedule"),
    (["--filter", "app:.*", "--concurrency", "0"], "--concurrency"),
    (["--filter", "app:.*", "--time-budget", "0"], "--time-budget"),
    (["--filter", "app:.*", "--time-budget", "nan"], "--time-budget"),
    (["--filter", "app:.*", "--agoo", "1d"], "unrecognized arguments: --agoo"),
    (["--filter", "app:.*", "--ca-file", "/nonexistent/ca.pem"], "--ca-file"),
    (["--filter", "app:.*", "--ca-file", "NOT-PEM"], "not a PEM CA bundle"),
]


@pytest.mark.parametrize(("flags", "message"), CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_bad_cli_flags_exit_2_with_a_clear_message_and_write_nothing(
    fresh: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    flags: list[str],
    message: str,
) -> None:
    flags = [not_pem(tmp_path) if f == "NOT-PEM" else f for f in flags]
    assert cli.main([*base_args(fresh), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err, err


@pytest.mark.parametrize("flag", ["--pasword", "--client-secret", "--token", "--client-sec", "-P"])
def test_a_mistyped_secret_flag_is_refused_without_echoing_its_value(
    fresh: EmulatorServer, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    assert cli.main([*base_args(fresh), "--filter", "app:.*", flag, SECRET]) == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {flag} (value hidden)" in err, err
    assert SECRET not in err


REGISTRY_CASES: list[tuple[str, str]] = [
    ("http://127.0.0.1:1", "plain http"),
    ("127.0.0.1:99999", "port"),
    ("127.0.0.1:1:2", "host[:port]"),
    ("evil.example.com", "PURGE_ALLOWED_HOSTS"),
    ("reg.azurecr.io/path", "no path"),
    ("a..azurecr.io", "not a valid host name"),
    ("-reg.azurecr.io", "not a valid host name"),
    ("reg_x.azurecr.io", "not a valid host name"),
    ("reg.azurecr.io:0", "port '0'"),
]


@pytest.mark.parametrize(("registry", "message"), REGISTRY_CASES)
def test_a_malformed_or_untrusted_registry_exits_2_and_writes_nothing(
    fresh: EmulatorServer, capsys: pytest.CaptureFixture[str], registry: str, message: str
) -> None:
    args = ["run", f"--registry={registry}", "--allowed-host", fresh.login_server,
            "--ca-file", fresh.ca_file, "--filter", "app:.*", "--ago", "1d"]  # fmt: skip
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "INCOMPLETE" not in err


def app_settings(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for key, value in {
        "PURGE_REGISTRY": emu.login_server,
        "PURGE_ALLOWED_HOSTS": emu.login_server,
        "PURGE_CA_FILE": emu.ca_file,
        "PURGE_USERNAME": emu.username or "",
        "PURGE_PASSWORD": emu.password or "",
        **settings,
    }.items():
        monkeypatch.setenv(key, value)


async def post(body: bytes, params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = func.HttpRequest(
        method="POST",
        url="https://app.azurewebsites.net/api/purge",
        headers={"Content-Type": "application/json"},
        params={"code": "key", **(params or {})},
        body=body,
    )
    response = await function_app.purge_http(request)
    return response.status_code, json.loads(response.get_body())


RULES_OK = '[{"name": "r", "filter": ["hello-world:.*"], "ago": "1d"}]'
SETTINGS_CASES: list[tuple[dict[str, str], str]] = [
    ({"PURGE_RULES": '[{"filter": ["hello-world:.*"], "ago": "3650d", "ago": "0d"}]'},
     "'ago' appears more than once"),
    ({"PURGE_RULES": '[{"filter": [".*:.*"], "ago": "0d", "dryRun": true, "dryRun": false}]'},
     "'dryRun' appears more than once"),
    ({"PURGE_RULES": '[{"filter": [".*:.*"], "ago": null}]'}, "ago: null is not allowed"),
    ({"PURGE_RULES": '[{"filter": [".*:.*"], "ago": "0d", "protect": null}]'},
     "protect: null is not allowed"),
    ({"PURGE_RULES": '[{"filter": [".*:.*"], "ago": "0d", "maxDeletions": null}]'},
     "maxDeletions: null is not allowed"),
    ({"PURGE_RULES": '[{"filter": [".*:.*"], "ago": "0d", "keep": null}]'},
     "keep: null is not allowed"),
    ({"PURGE_RULES": f'[{{"filter": [".*:.*"], "keep": {HUGE}}}]'}, "an integer of 5000 digits"),
    ({"PURGE_RULES": DEEP}, "nested too deeply"),
    ({"PURGE_COMMAND": f"acr purge --filter '.*:.*' --ago 0d --pasword {SECRET}"},
     "--pasword (value hidden)"),
    ({"PURGE_COMMAND": "acr purge --filter '.*:.*' --ago 0d --name ''"}, "name ''"),
    ({"PURGE_RULES": RULES_OK, "PURGE_COMMAND": "acr purge --filter a:b"}, "both set"),
    ({"PURGE_RULES": RULES_OK, "PURGE_CONCURRENCY": "0"}, "PURGE_CONCURRENCY"),
    ({"PURGE_RULES": RULES_OK, "PURGE_TIME_BUDGET": "-1"}, "PURGE_TIME_BUDGET"),
    ({"PURGE_RULES": RULES_OK, "PURGE_DRY_RUN": "maybe"}, "PURGE_DRY_RUN"),
    ({"PURGE_RULES": RULES_OK, "PURGE_RULEZ": "x"}, "did you mean 'PURGE_RULES'"),
    ({"PURGE_RULES": '[{"filter": [".*:.*"], "ago": "0d", "Keep": 1}]'}, "unknown key 'Keep'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"), SETTINGS_CASES, ids=[c[1][:40] for c in SETTINGS_CASES]
)
async def test_bad_settings_are_invalid_configuration_and_write_nothing(
    fresh: EmulatorServer, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], message: str
) -> None:
    app_settings(fresh, monkeypatch, **settings)
    status, body = await post(b'{"dryRun": false}')
    assert status == 500
    assert body["error"] == "invalid configuration; nothing was deleted"
    assert any(message in d for d in body["details"]), body["details"]
    assert SECRET not in json.dumps(body)
    assert fresh.request_log() == []  # refused before any request


BODY_CASES: list[tuple[bytes, dict[str, str], str]] = [
    (b'{"dryRun": "false"}', {}, '"dryRun" must be true or false'),
    (b'{"dryRun": true, "dryRun": false}', {}, "'dryRun' appears more than once"),
    (b'{"dryRun": ' + HUGE.encode() + b"}", {}, "an integer of 5000 digits"),
    (b'{"rules": ' + DEEP.encode() + b"}", {}, "nested too deeply"),
    (b'{"dryrun": false}', {}, "did you mean 'dryRun'"),
    (b"{}", {"dryRun": "false"}, "unknown query parameter 'dryRun'"),
    (b'{"dryRun": false, "rules": ["nope"]}', {}, "unknown rule 'nope'"),
]


@pytest.mark.parametrize(("body", "params", "message"), BODY_CASES, ids=[c[2] for c in BODY_CASES])
async def test_bad_request_bodies_are_400_and_write_nothing(
    fresh: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    body: bytes,
    params: dict[str, str],
    message: str,
) -> None:
    app_settings(fresh, monkeypatch, PURGE_RULES=RULES_OK)
    status, answer = await post(body, params)
    assert status == 400
    assert any(message in d for d in answer["details"]), answer
    assert fresh.request_log() == []
