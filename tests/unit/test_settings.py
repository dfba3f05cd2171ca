"""App settings -> Config: every bad setting is named, with what is wrong and what is allowed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from acr_emulator.server import test_ca as emulator_ca
from purge.config.rules import MaxDeletions, make_rule
from purge.config.settings import (
    Config,
    ConfigError,
    Connection,
    describe_config,
    load_settings,
    load_settings_file,
)

RULES = json.dumps([{"name": "builds", "filter": ["app:^build-"], "ago": "30d", "keep": 2}])
BASE = {"PURGE_REGISTRY": "myreg.azurecr.io", "PURGE_RULES": RULES}


def _errors(**changes: str | None) -> list[str]:
    environ = {**BASE, **{k: v for k, v in changes.items() if v is not None}}
    for key in [k for k, v in changes.items() if v is None]:
        environ.pop(key, None)
    with pytest.raises(ConfigError) as info:
        load_settings(environ)
    assert str(info.value) == "; ".join(info.value.errors)
    return info.value.errors


def test_minimal_settings_and_defaults() -> None:
    config = load_settings({**BASE, "PATH": "/usr/bin", "FUNCTIONS_WORKER_RUNTIME": "python"})
    assert config.connection == Connection(login_server="myreg.azurecr.io")
    assert config.connection.endpoint == "https://myreg.azurecr.io"
    assert (config.schedule, config.dry_run, config.concurrency, config.time_budget) == (
        None,
        False,
        None,
        None,
    )
    (rule,) = config.rules
    assert (rule.name, rule.ago, rule.keep) == ("builds", timedelta(days=30), 2)


def test_every_setting(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    emulator_ca().cert_pem.write_to_path(str(ca))  # a real PEM bundle: its content is checked
    config = load_settings(
        {
            "PURGE_REGISTRY": "https://127.0.0.1:8443/",
            "PURGE_ALLOWED_HOSTS": " 127.0.0.1:8443 , localhost",
            "PURGE_SCHEDULE": "0 0 3 * * *",
            "PURGE_COMMAND": "acr purge -r {{.Run.Registry}} --filter a:.* && "
            "acr purge --untagged-only --ago 2d",
            "PURGE_DRY_RUN": "Yes",
            "PURGE_CONCURRENCY": "64",
            "PURGE_TIME_BUDGET": "200.5",
            "PURGE_AUDIENCE": "https://containerregistry.azure.net",
            "PURGE_CA_FILE": str(ca),
            "PURGE_USERNAME": "admin",
            "PURGE_PASSWORD": "s3cret",
            "AZURE_CLIENT_ID": "00000000-1111-2222-3333-444444444444",
        }
    )
    connection = config.connection
    assert connection.login_server == "127.0.0.1:8443"
    assert connection.allowed_hosts == ("127.0.0.1:8443", "localhost")
    assert (connection.username, connection.password) == ("admin", "s3cret")
    assert connection.client_id == "00000000-1111-2222-3333-444444444444"
    assert connection.audience == "https://containerregistry.azure.net"
    assert connection.ca_file == str(ca)
    assert "s3cret" not in repr(connection)
    assert (config.schedule, config.dry_run, config.concurrency, config.time_budget) == (
        "0 0 3 * * *",
        True,
        64,
        200.5,
    )
    assert [r.name for r in config.rules] == ["rule-1", "rule-2"]
    description = json.dumps(describe_config(config))
    assert "s3cret" not in description
    assert '"username": "admin"' in description


@pytest.mark.parametrize(
    ("registry", "allowed", "expected"),
    [
        ("MyReg.AzureCR.io", None, "myreg.azurecr.io"),
        ("https://myreg.azurecr.io", None, "myreg.azurecr.io"),
        ("myreg.azurecr.cn", None, "myreg.azurecr.cn"),
        ("myreg.azurecr.us:443", None, "myreg.azurecr.us:443"),
        ("localhost:5000", "localhost", "localhost:5000"),
        ("localhost:5000", "other, localhost:5000", "localhost:5000"),
    ],
)
def test_good_registries(registry: str, allowed: str | None, expected: str) -> None:
    environ = {**BASE, "PURGE_REGISTRY": registry}
    if allowed:
        environ["PURGE_ALLOWED_HOSTS"] = allowed
    assert load_settings(environ).connection.login_server == expected


BAD_SETTINGS: list[tuple[dict[str, str | None], str, str]] = [
    ({"PURGE_REGISTRY": None}, "PURGE_REGISTRY", "required"),
    ({"PURGE_REGISTRY": "  "}, "PURGE_REGISTRY", "required"),
    ({"PURGE_REGISTRY": "http://myreg.azurecr.io"}, "PURGE_REGISTRY", "plain http is refused"),
    ({"PURGE_REGISTRY": "myreg.azurecr.io/path"}, "PURGE_REGISTRY", "no scheme, path"),
    ({"PURGE_REGISTRY": "user@myreg.azurecr.io"}, "PURGE_REGISTRY", "no scheme, path"),
    ({"PURGE_REGISTRY": "myreg.azurecr.io:0"}, "PURGE_REGISTRY", "between 1 and 65535"),
    ({"PURGE_REGISTRY": "myreg.azurecr.io:http"}, "PURGE_REGISTRY", "between 1 and 65535"),
    ({"PURGE_REGISTRY": "my_reg.azurecr.io"}, "PURGE_REGISTRY", "not a valid host name"),
    ({"PURGE_REGISTRY": "docker.io"}, "PURGE_REGISTRY", "not an Azure registry"),
    ({"PURGE_REGISTRY": "azurecr.io"}, "PURGE_REGISTRY", "not an Azure registry"),
    ({"PURGE_REGISTRY": "myreg.azurecr.io.evil.com"}, "PURGE_REGISTRY", "not an Azure registry"),
    (
        {"PURGE_REGISTRY": "localhost:5000", "PURGE_ALLOWED_HOSTS": "localhost:6000"},
        "PURGE_REGISTRY",
        "not in PURGE_ALLOWED_HOSTS",
    ),
    ({"PURGE_ALLOWED_HOSTS": "https://x.example"}, "PURGE_ALLOWED_HOSTS", "entry"),
    ({"PURGE_ALLOWED_HOSTS": "ok.example, bad host"}, "PURGE_ALLOWED_HOSTS", "'bad host'"),
    ({"PURGE_SCHEDULE": "0 3 * * *"}, "PURGE_SCHEDULE", "has 5 fields"),
    ({"PURGE_SCHEDULE": "0 0 25 * * *"}, "PURGE_SCHEDULE", "out of range"),
    ({"PURGE_RULES": None}, "PURGE_RULES or PURGE_COMMAND", "one is required"),
    ({"PURGE_COMMAND": "acr purge --filter a:.*"}, "PURGE_RULES and PURGE_COMMAND", "exactly one"),
    ({"PURGE_RULES": "[]"}, "PURGE_RULES", "empty"),
    ({"PURGE_RULES": "{"}, "PURGE_RULES", "not valid JSON"),
    ({"PURGE_RULES": '{"filter": ["a:.*"]}'}, "PURGE_RULES", "must be a JSON array"),
    ({"PURGE_RULES": '[{"filter": ["a"]}]'}, "PURGE_RULES[0].filter[0]", "no colon"),
    ({"PURGE_RULES": '[{"filter": ["a:.*"], "kep": 1}]'}, "PURGE_RULES[0]", "did you mean 'keep'"),
    ({"PURGE_RULES": '[{"filter": ["a:.*"], "ago": "1y"}]'}, "PURGE_RULES[0]", "unknown unit"),
    ({"PURGE_RULES": '[{"filter": ["a:.*"], "keep": -1}]'}, "PURGE_RULES[0]", "keep -1"),
    ({"PURGE_RULES": '[{"filter": ["a:.*"], "schedule": "* *"}]'}, "PURGE_RULES[0]", "2 fields"),
    ({"PURGE_RULES": '[{"filter": ["a:.*"]}, 5]'}, "PURGE_RULES[1] (rule-2)", "JSON object"),
    (
        {"PURGE_RULES": '[{"name": "x", "filter": ["a:.*"]}, {"name": "x", "filter": ["b:.*"]}]'},
        "PURGE_RULES",
        "'x' is used 2 times",
    ),
    ({"PURGE_RULES": None, "PURGE_COMMAND": "acr purge --filter a"}, "PURGE_COMMAND", "no colon"),
    (
        {"PURGE_RULES": None, "PURGE_COMMAND": "acr purge -r x.azurecr.io --filter a:.*"},
        "PURGE_COMMAND",
        "differs from PURGE_REGISTRY",
    ),
    (
        {
            "PURGE_RULES": None,
            "PURGE_COMMAND": "acr purge --name a -f a:.*; acr purge --name a -f b:.*",
        },
        "PURGE_COMMAND",
        "'a' is used 2 times",
    ),
    ({"PURGE_DRY_RUN": "maybe"}, "PURGE_DRY_RUN", "use true/false"),
    ({"PURGE_DRY_RUN": "on"}, "PURGE_DRY_RUN", "use true/false"),
    ({"PURGE_CONCURRENCY": "0"}, "PURGE_CONCURRENCY", "from 1 to 64"),
    ({"PURGE_CONCURRENCY": "65"}, "PURGE_CONCURRENCY", "from 1 to 64"),
    ({"PURGE_CONCURRENCY": "4.5"}, "PURGE_CONCURRENCY", "from 1 to 64"),
    ({"PURGE_CONCURRENCY": "-3"}, "PURGE_CONCURRENCY", "from 1 to 64"),
    ({"PURGE_TIME_BUDGET": "0"}, "PURGE_TIME_BUDGET", "seconds > 0"),
    ({"PURGE_TIME_BUDGET": "-5"}, "PURGE_TIME_BUDGET", "seconds > 0"),
    ({"PURGE_TIME_BUDGET": "inf"}, "PURGE_TIME_BUDGET", "seconds > 0"),
    ({"PURGE_TIME_BUDGET": "nan"}, "PURGE_TIME_BUDGET", "seconds > 0"),
    ({"PURGE_TIME_BUDGET": "10m"}, "PURGE_TIME_BUDGET", "seconds > 0"),
    ({"PURGE_AUDIENCE": "containerregistry.azure.net"}, "PURGE_AUDIENCE", "https URL"),
    ({"PURGE_AUDIENCE": "http://containerregistry.azure.net"}, "PURGE_AUDIENCE", "https URL"),
    ({"PURGE_CA_FILE": "/nonexistent/ca.pem"}, "PURGE_CA_FILE", "not an existing file"),
    ({"PURGE_CA_FILE": "/"}, "PURGE_CA_FILE", "not an existing file"),
    ({"AZURE_CLIENT_ID": "my-identity"}, "AZURE_CLIENT_ID", "not a GUID"),
    ({"PURGE_USERNAME": "admin"}, "PURGE_USERNAME and PURGE_PASSWORD", "both or neither"),
    ({"PURGE_PASSWORD": "pw"}, "PURGE_USERNAME and PURGE_PASSWORD", "both or neither"),
    ({"PURGE_DRYRUN": "true"}, "PURGE_DRYRUN", "did you mean 'PURGE_DRY_RUN'"),
    ({"PURGE_RULE": "[]"}, "PURGE_RULE", "did you mean 'PURGE_RULES'"),
    ({"purge_schedule": "0 0 3 * * *"}, "purge_schedule", "did you mean 'PURGE_SCHEDULE'"),
    ({"PURGE_XYZZY": "1"}, "PURGE_XYZZY", "unknown setting"),
]


@pytest.mark.parametrize(("changes", "setting", "message"), BAD_SETTINGS)
def test_bad_settings_name_the_setting(
    changes: dict[str, str | None], setting: str, message: str
) -> None:
    errors = _errors(**changes)
    assert any(e.startswith(setting) and message in e for e in errors), errors


def test_every_problem_is_listed_at_once() -> None:
    errors = _errors(
        PURGE_REGISTRY="http://x",
        PURGE_DRY_RUN="perhaps",
        PURGE_CONCURRENCY="100",
        PURGE_TIME_BUDGET="soon",
        PURGE_RULES='[{"filter": ["a"], "ago": "1w"}]',
        PURGE_TYPO="1",
    )
    named = {e.split(":")[0].split("[")[0].split(" ")[0] for e in errors}
    assert named == {
        "PURGE_REGISTRY",
        "PURGE_DRY_RUN",
        "PURGE_CONCURRENCY",
        "PURGE_TIME_BUDGET",
        "PURGE_RULES",
        "PURGE_TYPO",
    }
    assert len(errors) == 7  # two problems in the one rule


def test_empty_values_count_as_unset() -> None:
    config = load_settings({**BASE, "PURGE_COMMAND": "", "PURGE_CA_FILE": " ", "PURGE_DRY_RUN": ""})
    assert config.connection.ca_file is None
    assert config.dry_run is False


def test_schedule_required_for_the_timer() -> None:
    with pytest.raises(ConfigError, match="PURGE_SCHEDULE: required"):
        load_settings(BASE, require_schedule=True)
    assert load_settings({**BASE, "PURGE_SCHEDULE": "0 0 3 * * *"}, require_schedule=True)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("NO", False)])
def test_dry_run_values(value: str, expected: bool) -> None:
    assert load_settings({**BASE, "PURGE_DRY_RUN": value}).dry_run is expected


def test_describe_config_is_json_in_rule_spelling() -> None:
    rules = json.dumps(
        [
            {
                "name": "r",
                "filter": ["app:^v"],
                "ago": "1d3h",
                "protect": ["^latest$"],
                "maxDeletions": "5%",
                "schedule": "0 0 3 * * *",
                "dryRun": True,
            }
        ]
    )
    described = describe_config(load_settings({**BASE, "PURGE_RULES": rules}))
    assert described["auth"] == {"method": "managed-identity", "clientId": None}
    (rule,) = described["rules"]
    assert rule == {
        "name": "r",
        "filter": ["app:^v"],
        "ago": "1d3h",
        "keep": 0,
        "untagged": False,
        "untaggedOnly": False,
        "includeLocked": False,
        "protect": ["^latest$"],
        "maxDeletions": "5%",
        "schedule": "0 0 3 * * *",
        "dryRun": True,
    }  # no "grace": unset keys are left out (null is refused in PURGE_RULES)
    # What describe_config prints is valid PURGE_RULES again.
    again = load_settings({**BASE, "PURGE_RULES": json.dumps(described["rules"])})
    assert describe_config(again)["rules"] == described["rules"]


def test_describe_config_hides_the_password() -> None:
    config = Config(
        connection=Connection("r.azurecr.io", username="u", password="hunter2"),
        rules=(make_rule("r", filters=["a:.*"], max_deletions=MaxDeletions(count=3)),),
    )
    text = json.dumps(describe_config(config))
    assert "hunter2" not in text
    assert '"maxDeletions": 3' in text


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def test_load_settings_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"IsEncrypted": False, "Values": {**BASE, "PURGE_DRY_RUN": "true"}})
    assert load_settings_file(path).dry_run is True


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "not valid JSON"),
        ([], 'a "Values" object'),
        ({"IsEncrypted": False}, 'a "Values" object'),
        ({"IsEncrypted": True, "Values": BASE}, "IsEncrypted is true"),
        ({"Values": {**BASE, "PURGE_CONCURRENCY": 4}}, "PURGE_CONCURRENCY: must be a string"),
    ],
)
def test_bad_settings_files(tmp_path: Path, document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings_file(_write(tmp_path, document))


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_settings_file(tmp_path / "absent.json")


def test_a_grace_needs_run_history_and_must_fit_in_it() -> None:
    rules = json.dumps([{"name": "g", "filter": ["app:.*"], "untagged": True, "grace": "7d"}])
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "PURGE_RULES": rules})
    assert "rule 'g': grace 7d needs run history" in str(caught.value)
    with pytest.raises(ConfigError, match="longer than the 5 days run records are kept"):
        load_settings(
            {**BASE, "PURGE_RULES": rules, "PURGE_HISTORY": "/tmp/runs", "PURGE_HISTORY_DAYS": "5"}
        )
    config = load_settings(
        {**BASE, "PURGE_RULES": rules, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    )
    assert config.rules[0].grace == timedelta(days=7) and config.history is not None
    no_untagged = json.dumps([{"name": "g", "filter": ["app:.*"], "grace": "7d"}])
    with pytest.raises(
        ConfigError, match=r"PURGE_RULES\[0\].grace: only delays the deletion of untagged manifests"
    ):
        load_settings({**BASE, "PURGE_RULES": no_untagged, "PURGE_HISTORY": "/tmp/runs"})
