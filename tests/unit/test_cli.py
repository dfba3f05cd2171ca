"""The CLI: acr purge's command line, clear exit codes, and nothing deleted on bad input."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import purge.registry.acr
from acr_emulator.server import test_ca as emulator_ca
from purge.cli import main as cli
from purge.config.hosts import trusted_host
from purge.config.settings import Connection
from purge.model import DOCKER_MANIFEST, Manifest, Tag
from tests.fakes import InMemoryRegistry

OLD = datetime.now(timezone.utc) - timedelta(days=60)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> InMemoryRegistry:
    """Stand the in-memory registry in for open_registry; record the connection."""
    reg = InMemoryRegistry("myreg.azurecr.io")
    for n in range(3):
        digest = f"sha256:{n:064x}"
        when = OLD + timedelta(hours=n)
        reg.add_manifest("app", Manifest(digest, DOCKER_MANIFEST, when, size=10))
        reg.add_tag("app", Tag(f"v{n}", digest, when))
    reg.add_manifest(
        "app", Manifest("sha256:" + "f" * 64, DOCKER_MANIFEST, datetime.now(timezone.utc))
    )
    reg.add_tag("app", Tag("latest", "sha256:" + "f" * 64, datetime.now(timezone.utc)))
    opened: list[Connection] = []

    def open_registry(connection: Connection, *, max_concurrency: int | None = None) -> object:
        trusted_host(connection.login_server, connection.allowed_hosts)
        opened.append(connection)
        return reg

    monkeypatch.setattr(purge.registry.acr, "open_registry", open_registry)
    monkeypatch.delenv("PURGE_REGISTRY", raising=False)
    reg.opened = opened  # type: ignore[attr-defined]
    return reg


def test_run_json_output_and_exit_zero(
    registry: InMemoryRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            *("run", "-r", "myreg.azurecr.io", "--filter", "app:^v", "--ago", "30d"),
            *("--keep", "1", "--output", "json"),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["totals"]["tagsDeleted"] == 2 and report["dryRun"] is False
    assert registry.tag_names("app") == {"v2", "latest"}
    assert "repositories in myreg.azurecr.io" in out.err  # plain progress lines off a TTY


def test_acr_task_command_line_works_with_placeholder_and_dry_run(
    registry: InMemoryRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_REGISTRY", "myreg.azurecr.io")
    argv = ["acr", "purge", "-r", "{{.Run.Registry}}", "--filter", "app:.*", "--ago", "1d"]
    code = cli.main([*argv, "--untagged", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Would delete: myreg.azurecr.io/app:v0" in out
    assert "Number of tags to be deleted: 3" in out
    assert registry.mutating_calls() == 0
    assert registry.opened[0].login_server == "myreg.azurecr.io"  # type: ignore[attr-defined]


def test_errors_in_the_run_exit_one(
    registry: InMemoryRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.fail("delete_tag")
    code = cli.main(["purge", "-r", "myreg.azurecr.io", "--filter", "app:v1", "--ago", "1d"])
    assert code == 1
    assert "injected failure" in capsys.readouterr().out


def test_emulator_flags_reach_the_connection(
    registry: InMemoryRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.pem"
    emulator_ca().cert_pem.write_to_path(str(ca))  # a real PEM bundle: its content is checked
    code = cli.main(
        [
            *("run", "-r", "https://127.0.0.1:8443/", "--allowed-host", "127.0.0.1:8443"),
            *("--ca-file", str(ca), "-u", "admin", "-p", "secret", "--filter", "app:nomatch"),
            *("--time-budget", "30", "--concurrency", "4"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    [connection] = registry.opened  # type: ignore[attr-defined]
    assert connection.login_server == "127.0.0.1:8443"
    assert (connection.username, connection.password) == ("admin", "secret")
    assert connection.ca_file == str(ca)
    assert "secret" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--filter", "app:.*"], "-r/--registry is required"),
        (["run", "-r", "{{.Run.Registry}}", "--filter", "app:.*"], "PURGE_REGISTRY"),
        (["run", "-r", "http://myreg.azurecr.io", "--filter", "a:b"], "plain http"),
        (["run", "-r", "myreg.azurecr.io/path", "--filter", "a:b"], "no path"),
        (["run", "-r", "evil.example.com", "--filter", "app:.*"], "evil.example.com"),
        (["run", "-r", "myreg.azurecr.io", "--filter", "app:.*", "-u", "me"], "go together"),
        (
            ["run", "-r", "myreg.azurecr.io", "--filter", "app:.*", "--ca-file", "/no/such"],
            "ca-file",
        ),
        (["run", "-r", "myreg.azurecr.io", "--filter", "app:.*", "--ago", "3w"], "--ago"),
        (["run", "-r", "myreg.azurecr.io", "--filter", "app:.*", "--keep", "-1"], "--keep"),
        (["run", "-r", "myreg.azurecr.io", "--filter", "a:b", "--time-budget", "0"], "seconds > 0"),
        (["run", "-r", "myreg.azurecr.io", "--filter", "noco1on"], "noco1on"),
        (["run", "-r", "myreg.azurecr.io"], "filter"),
        (["run", "-r", "myreg.azurecr.io", "--filter", "a:b", "--bogus"], "--bogus"),
    ],
)
def test_bad_input_exits_two_with_a_clear_message_and_deletes_nothing(
    registry: InMemoryRegistry,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert registry.mutating_calls() == 0 and registry.calls["list_repositories"] == 0


SECRET = "S3cret-from-a-typo"
RUN = ["run", "-r", "myreg.azurecr.io", "--filter", "app:.*"]
CONNECTION_STRING = f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={SECRET}"


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        ([*RUN, "--pasword", "-" + SECRET], "unrecognized arguments: --pasword (value hidden)"),
        ([*RUN, "--client-sec", SECRET], "unrecognized arguments: --client-sec (value hidden)"),
        ([*RUN, "-P", SECRET], "unrecognized arguments: -P (value hidden)"),
        ([*RUN, "-P" + SECRET], "unrecognized arguments: (value hidden)"),
        (
            [*RUN, "--histroy", CONNECTION_STRING],
            "--histroy (value hidden); did you mean --history?",
        ),
        ([*RUN, "--p=" + SECRET], "unrecognized arguments: --p=(value hidden)"),
        ([*RUN, "--pass", SECRET], "unrecognized arguments: --pass (value hidden)"),
        (["-p", SECRET, *RUN], "invalid choice: (value hidden)"),
        (["--pasword", SECRET, *RUN], "invalid choice: (value hidden)"),
        (["restore", "run-1", "--pasword", SECRET], "unrecognized arguments: --pasword (value"),
    ],
)
def test_usage_errors_never_echo_a_word_after_an_unknown_flag(
    registry: InMemoryRegistry, capsys: pytest.CaptureFixture[str], argv: list[str], shown: str
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert shown in err, err
    assert SECRET not in err and SECRET[1:] not in err, err
    assert registry.mutating_calls() == 0 and registry.calls["list_repositories"] == 0


def test_abbreviated_flags_are_refused_as_acr_purge_refuses_them(
    registry: InMemoryRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--include` is not taken for `--include-locked`, nor `--dry` for `--dry-run`."""
    assert cli.main([*RUN, "--ago", "1d", "--include", "--dry"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --include" in err
    assert "did you mean --include-locked?" in err
    assert registry.mutating_calls() == 0 and registry.calls["list_repositories"] == 0


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        ([*RUN, "--keep", "3dfoo"], "argument --keep: '3dfoo' is not a whole number"),
        ([*RUN, "--output", "yaml"], "invalid choice: 'yaml'"),
        ([*RUN, "--agoo", "30d"], "unrecognized arguments: --agoo 30d; did you mean --ago?"),
        (["rnu", "--filter", "app:.*"], "invalid choice: 'rnu'"),
    ],
)
def test_usage_errors_still_show_values_of_known_flags(
    registry: InMemoryRegistry, capsys: pytest.CaptureFixture[str], argv: list[str], shown: str
) -> None:
    assert cli.main(argv) == 2
    assert shown in capsys.readouterr().err


def write_settings(path: Path, values: dict[str, str]) -> str:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return str(path)


def test_check_config_prints_rules_and_fire_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = write_settings(
        tmp_path / "local.settings.json",
        {
            "PURGE_REGISTRY": "myreg.azurecr.io",
            "PURGE_SCHEDULE": "0 0 3 * * *",
            "PURGE_RULES": json.dumps([{"name": "nightly", "filter": ["app:.*"], "ago": "30d"}]),
        },
    )
    assert cli.main(["check-config", "--settings", settings]) == 0
    out = capsys.readouterr().out
    assert "nightly" in out and "configuration is valid" in out
    assert out.count("T03:00:00") == 5


def test_check_config_lists_every_error_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = write_settings(
        tmp_path / "bad.json",
        {"PURGE_REGISTRY": "http://x", "PURGE_SCHEDUL": "0 0 3 * * *", "PURGE_RULES": "[]"},
    )
    assert cli.main(["check-config", "--settings", settings]) == 2
    err = capsys.readouterr().err
    assert "PURGE_REGISTRY" in err and "PURGE_SCHEDUL" in err and "PURGE_RULES" in err


def test_demo_hook_reports_a_missing_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "purge.cli.demo", None)  # as if purge/cli/demo.py were gone
    assert cli.main(["demo"]) == 2
    assert "demo is not available" in capsys.readouterr().err


def test_normalize_argv_accepts_acr_task_forms() -> None:
    assert cli.normalize_argv(["acr", "purge", "--filter", "a:b"]) == ["run", "--filter", "a:b"]
    assert cli.normalize_argv(["purge", "--dry-run"]) == ["run", "--dry-run"]
    assert cli.normalize_argv(["check-config"]) == ["check-config"]
