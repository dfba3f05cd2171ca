"""Parity with `acr purge` (issue 14): the same scenario, both tools, the same answers.

Each case runs acr-cli (the real `acr purge`, `../shared/tools/acr-cli/acr` beside the
repository, as CI lays it out) and `python -m purge` against the emulator over HTTPS and compares
what each dry run would delete and the acr-purge-style lines each prints to a pipe. Where
`../shared/` is absent (a user's clone) the acr-cli half skips with that reason; the checks of
our own output still run against the forms recorded here from acr-cli.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from acr_emulator.testing import EmulatorServer
from purge.config.casefold import fold_case
from tests.fixtures import case_folding

ROOT = Path(__file__).resolve().parents[2]
ACR_CLI = ROOT.parent / "shared" / "tools" / "acr-cli" / "acr"
DRY_BANNER = (
    "DRY RUN: The following output shows what WOULD be deleted if the purge command was "
    "executed. Nothing is deleted."
)

SCENARIO: dict[str, Any] = {
    "repositories": {
        "hello-world": {
            "manifests": [
                {"id": "v1", "kind": "image", "layers": 2, "updated": "-40d", "tags": ["v1"]},
                {"id": "v2", "kind": "image", "updated": "-20d", "tags": ["v2", "latest"]},
                {"id": "old", "kind": "image", "updated": "-60d"},
                {"id": "pinned", "kind": "image", "updated": "-90d",
                 "tags": [{"name": "stable", "locked": True}]},
            ]
        },
        "team/web": {
            "manifests": [
                {"id": "amd64", "kind": "image", "platform": "linux/amd64", "updated": "-10d"},
                {"id": "arm64", "kind": "image", "platform": "linux/arm64", "updated": "-10d"},
                {"id": "multi", "kind": "index", "children": ["amd64", "arm64"],
                 "updated": "-10d", "tags": ["1.0"]},
            ]
        },
        "kapp": {
            "manifests": [
                {"id": "a", "kind": "image", "updated": "-40d", "tags": ["k1", "K2", "x1"]},
                # three tags with the same lastUpdateTime: --keep ties
                {"id": "b", "kind": "image", "updated": "-40d", "tags": ["t-a", "t-b", "t-c"]},
                {"id": "u1", "kind": "image", "updated": "-50d"},
                {"id": "u2", "kind": "image", "updated": "-45d"},
                {"id": "u3", "kind": "image", "updated": "-42d"},
            ]
        },
    }
}  # fmt: skip


def needs_acr_cli() -> None:
    if not ACR_CLI.is_file():
        pytest.skip(f"acr-cli not found at {ACR_CLI} (../shared/ is laid out beside CI checkouts)")


def run_acr_cli(
    emu: EmulatorServer,
    *args: str,
    auth: Sequence[str] | None = None,
    default_registry: str | None = None,
    registry: str | None = None,
) -> Any:
    needs_acr_cli()
    env = {**os.environ, "SSL_CERT_FILE": emu.ca_file}
    env.pop("ACR_DEFAULT_REGISTRY", None)
    where = ["-r", registry or emu.login_server]
    if default_registry is not None:
        env["ACR_DEFAULT_REGISTRY"], where = default_registry, []
    creds = list(auth) if auth is not None else ["-u", "admin", "-p", "s3cret-admin"]
    cmd = [str(ACR_CLI), "purge", *where, *creds, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def run_ours(
    emu: EmulatorServer,
    *args: str,
    auth: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    registry: Sequence[str] | None = None,
) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PURGE_", "ACR_DEFAULT"))}
    creds = list(auth) if auth is not None else ["-u", "admin", "-p", "s3cret-admin"]
    where = (
        list(registry)
        if registry is not None
        else ["-r", emu.login_server, "--ca-file", emu.ca_file, "--allowed-host", "127.0.0.1"]
    )
    cmd = [sys.executable, "-m", "purge", "run", *where, *creds, *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env={**base, **(env or {})}, cwd=ROOT, timeout=120
    )


def acr_lines(stdout: str) -> list[str]:
    """acr purge's part of a text output: banner, repository sections, the two counts.

    Lines within one repository section are sorted: acr purge deletes manifests concurrently,
    so their order varies from run to run.
    """
    lines = stdout.splitlines()
    out: list[str] = []
    section: list[str] = []
    for line in lines:
        if line.startswith(("Would delete: ", "Deleted ")):
            section.append(line)
            continue
        out += sorted(section)
        section = []
        if line.startswith(("DRY RUN: ", "Would delete ", "Deleting ", "Number of ")) or (
            line == "" and out and not out[-1].startswith("Number of ")
        ):
            out.append(line)
        if line.startswith("Number of ") and "manifests" in line:
            break
    return out + sorted(section)


def deleted_set(stdout: str) -> set[str]:
    return {
        line.split(" ", 2)[-1] if line.startswith("Would") else line.split(" ", 1)[1]
        for line in stdout.splitlines()
        if line.startswith(("Would delete: ", "Deleted "))
    }


def refresh_token(emu: EmulatorServer) -> str:
    """An ACR refresh token, as `az acr login --expose-token` hands one out."""
    answer = requests.post(
        f"{emu.endpoint}/oauth2/exchange",
        data={"grant_type": "access_token", "service": emu.login_server, "access_token": "aad"},
        verify=emu.ca_file,
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["refresh_token"])


@pytest.fixture
def emu(emulator_factory: Any) -> EmulatorServer:
    return emulator_factory(scenario=SCENARIO)  # type: ignore[no-any-return]


def compare_dry(emu: EmulatorServer, *args: str, **kw: Any) -> list[str]:
    ours = run_ours(emu, *args, "--dry-run", **kw)
    assert ours.returncode == 0, ours.stderr
    theirs = run_acr_cli(emu, *args, "--dry-run", auth=kw.get("auth"))
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert deleted_set(ours.stdout) == deleted_set(theirs.stdout)
    assert acr_lines(ours.stdout) == acr_lines(theirs.stdout)
    return acr_lines(ours.stdout)


# --- 1. output lines ---------------------------------------------------------------------------


def test_dry_run_lines_are_acr_purges_lines(emu: EmulatorServer) -> None:
    lines = compare_dry(emu, "--filter", "hello-world:.*", "--ago", "1d", "--untagged")
    assert lines[0] == DRY_BANNER
    assert lines[1] == "Would delete tags for repository: hello-world"
    assert lines[-2:] == ["Number of tags to be deleted: 3", "Number of manifests to be deleted: 3"]


def test_lines_never_wrap_on_a_pipe(emu: EmulatorServer) -> None:
    ours = run_ours(emu, "--filter", "hello-world:.*", "--ago", "1d", "--untagged", "--dry-run")
    digest_lines = [line for line in ours.stdout.splitlines() if "@sha256:" in line]
    assert len(digest_lines) == 3
    for line in digest_lines:
        assert line.startswith(f"Would delete: {emu.login_server}/hello-world@sha256:")
        assert len(line.rsplit(":", 1)[1]) == 64, line  # the whole digest on one line
    assert "┃" not in ours.stdout and "│" not in ours.stdout  # no rich table on a pipe


def test_output_table_draws_the_tables_and_keeps_the_lines(emu: EmulatorServer) -> None:
    args = ("--filter", "hello-world:.*", "--ago", "1d", "--untagged", "--dry-run")
    table = run_ours(emu, *args, "--output", "table")
    text = run_ours(emu, *args)
    assert table.returncode == 0 and "┃" in table.stdout and "Action" in table.stdout
    assert acr_lines(table.stdout) == acr_lines(text.stdout)


def test_empty_sections_and_several_filters(emu: EmulatorServer) -> None:
    compare_dry(emu, "--filter", "team/web:nomatch", "--ago", "1d", "--untagged")
    compare_dry(emu, "--filter", "team/web:.*", "--filter", "kapp:x1", "--ago", "1d")
    compare_dry(emu, "--filter", "nomatch:.*", "--ago", "1d")


def test_real_run_lines_match(emulator_factory: Any) -> None:
    args = ("--filter", "hello-world:.*", "--ago", "1d", "--untagged")
    mine = emulator_factory(scenario=SCENARIO)
    ours = run_ours(mine, *args)
    assert ours.returncode == 0, ours.stderr
    lines = acr_lines(ours.stdout)
    assert lines[0] == "Deleting tags for repository: hello-world"
    assert lines[-2:] == ["Number of deleted tags: 3", "Number of deleted manifests: 3"]
    needs_acr_cli()
    theirs_emu = emulator_factory(scenario=SCENARIO)
    theirs = run_acr_cli(theirs_emu, *args)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert lines == [
        line.replace(theirs_emu.login_server, mine.login_server)
        for line in acr_lines(theirs.stdout)
    ]
    assert set(mine.dump()["repositories"]["hello-world"]["tags"]) == set(
        theirs_emu.dump()["repositories"]["hello-world"]["tags"]
    )


# --- 2. --untagged-only --keep N ----------------------------------------------------------------


def test_untagged_only_keep_keeps_the_newest_untagged(emu: EmulatorServer) -> None:
    lines = compare_dry(emu, "--filter", "kapp:.*", "--ago", "1d", "--untagged-only", "--keep", "1")
    assert lines[-1] == "Number of manifests to be deleted: 2"


# --- 3. --keep ties -------------------------------------------------------------------------


def test_keep_ties_follow_the_registrys_order(emu: EmulatorServer) -> None:
    lines = compare_dry(emu, "--filter", "kapp:^t-", "--ago", "1d", "--keep", "1")
    assert lines[-2] == "Number of tags to be deleted: 2"


# --- 4. (?i) lowercases as acr purge's engine does, \\d stays ASCII -------------------------------


def test_case_insensitive_kelvin_sign_matches_k(emu: EmulatorServer) -> None:
    lines = compare_dry(emu, "--filter", "kapp:(?i)\u212a", "--ago", "1d")
    assert f"Would delete: {emu.login_server}/kapp:K2" in lines
    compare_dry(emu, "--filter", "kapp:\\d", "--ago", "1d")


def one_repository_a_pattern(
    emulator_factory: Any, patterns: Sequence[str], tags: Sequence[str]
) -> tuple[list[set[str]], list[set[str]]]:
    """Each pattern on its own repository (acr purge joins one repository's filters with `|`),
    all in one run of each tool: (ours, acr purge's), the tags each selects, by pattern."""
    needs_acr_cli()
    manifest = {"id": "m", "kind": "image", "updated": "-40d", "tags": list(tags)}
    names = [f"c{n:03d}" for n in range(len(patterns))]
    emu = emulator_factory(scenario={"repositories": {n: {"manifests": [manifest]} for n in names}})
    pairs = zip(names, patterns, strict=True)
    filters = [arg for name, p in pairs for arg in ("--filter", f"{name}:{p}")]
    answers = []
    for run in (run_ours, run_acr_cli):
        done = run(emu, *filters, "--ago", "1d", "--dry-run")
        assert done.returncode == 0, done.stdout + done.stderr
        found: dict[str, set[str]] = {}
        for ref in deleted_set(done.stdout):
            repository, tag = ref.split("/", 1)[1].split(":", 1)
            found.setdefault(repository, set()).add(tag)
        answers.append([found.get(name, set()) for name in names])
    return answers[0], answers[1]


def test_case_insensitive_cases_select_what_acr_purge_selects(emulator_factory: Any) -> None:
    patterns = [p for p, _ in case_folding.CASES]
    ours, theirs = one_repository_a_pattern(emulator_factory, patterns, case_folding.TAGS)
    for (pattern, recorded), mine, acr in zip(case_folding.CASES, ours, theirs, strict=True):
        assert acr == set(recorded), f"acr purge now selects {sorted(acr)} with {pattern!r}"
        assert mine == acr, pattern


def test_random_case_insensitive_patterns_select_what_acr_purge_selects(
    emulator_factory: Any,
) -> None:
    patterns = case_folding.random_patterns(14, 120)
    assert sum(fold_case(p) != p for p in patterns) >= 30  # the rewrite is exercised
    tags = case_folding.TAGS + case_folding.PAIR_TAGS
    ours, theirs = one_repository_a_pattern(emulator_factory, patterns, tags)
    assert sum(bool(acr) for acr in theirs) >= 60  # and selects something
    for pattern, mine, acr in zip(patterns, ours, theirs, strict=True):
        assert mine == acr, (pattern, sorted(mine - acr), sorted(acr - mine))


def test_unicode_property_under_case_insensitive_is_refused_here(emu: EmulatorServer) -> None:
    args = ("--filter", "kapp:(?i)^\\p{Lu}", "--ago", "1d", "--dry-run")
    theirs = run_acr_cli(emu, *args)
    assert theirs.returncode == 0
    assert {ref.rsplit(":", 1)[1] for ref in deleted_set(theirs.stdout)} == {
        "k1", "K2", "x1", "t-a", "t-b", "t-c",
    }  # fmt: skip
    ours = run_ours(emu, *args)
    assert ours.returncode == 2 and "under (?i) is not supported" in ours.stderr
    assert deleted_set(ours.stdout) == set()


def test_class_subtraction_is_refused_here(emu: EmulatorServer) -> None:
    args = ("--filter", "kapp:^[a-z-[k]]1", "--ago", "1d", "--dry-run")
    theirs = run_acr_cli(emu, *args)
    assert theirs.returncode == 0
    assert deleted_set(theirs.stdout) == {f"{emu.login_server}/kapp:x1"}  # k subtracted
    ours = run_ours(emu, *args)
    assert ours.returncode == 2 and "class subtraction" in ours.stderr
    assert deleted_set(ours.stdout) == set()


def test_a_flag_in_one_filter_carries_into_the_next_only_in_acr_purge(emu: EmulatorServer) -> None:
    args = ("--filter", "kapp:(?i)^k", "--filter", "kapp:^X", "--ago", "1d", "--dry-run")
    theirs = run_acr_cli(emu, *args)
    assert theirs.returncode == 0  # it matches `(?i)^k|^X`: X is case-insensitive too
    assert {ref.rsplit(":", 1)[1] for ref in deleted_set(theirs.stdout)} == {"k1", "K2", "x1"}
    ours = run_ours(emu, *args)
    assert ours.returncode == 0  # each filter means what it says
    assert {ref.rsplit(":", 1)[1] for ref in deleted_set(ours.stdout)} == {"k1", "K2"}


# --- 5. flags ----------------------------------------------------------------------------------


def test_docker_config_credentials(emu: EmulatorServer, tmp_path: Path) -> None:
    auth = base64.b64encode(b"admin:s3cret-admin").decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {emu.login_server: {"auth": auth}}}))
    compare_dry(emu, "--filter", "kapp:x1", "--ago", "1d", auth=["-c", str(config)])


def test_refresh_token_mode(emu: EmulatorServer) -> None:
    token = refresh_token(emu)
    compare_dry(emu, "--filter", "kapp:x1", "--ago", "1d", auth=["-u", "", "-p", token])
    zero = "00000000-0000-0000-0000-000000000000"
    compare_dry(emu, "--filter", "kapp:x1", "--ago", "1d", auth=["-u", zero, "-p", token])


def test_verbose_and_filter_timeout_are_accepted(emu: EmulatorServer) -> None:
    compare_dry(emu, "--filter", "kapp:x1", "--ago", "1d", "--verbose")
    compare_dry(emu, "--filter", "kapp:x1", "--ago", "1d", "--filter-timeout-seconds", "5")


def catalog_page_sizes(emu: EmulatorServer) -> list[str]:
    return [
        dict(parse_qsl(r["query"])).get("n", "")
        for r in emu.request_log()
        if r["path"] in ("/v2/_catalog", "/acr/v1/_catalog")
    ]


def test_repository_page_size_is_the_catalog_page_size(emu: EmulatorServer) -> None:
    emu.reset_log()
    ours = run_ours(emu, "--filter", ".*:x1", "--ago", "1d", "--repository-page-size", "1")
    assert ours.returncode == 0, ours.stderr
    sizes = catalog_page_sizes(emu)
    assert len(sizes) >= 3 and set(sizes) == {"1"}, sizes  # three repositories, one a page
    emu.reset_log()
    theirs = run_acr_cli(emu, "--filter", ".*:x1", "--ago", "1d", "--repository-page-size", "1")
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert len(catalog_page_sizes(emu)) >= 3 and set(catalog_page_sizes(emu)) == {"1"}


def test_acr_default_registry_from_the_environment(emu: EmulatorServer) -> None:
    args = ("--filter", "kapp:x1", "--ago", "1d", "--dry-run")
    env = {"ACR_DEFAULT_REGISTRY": emu.login_server}
    flags = ["--ca-file", emu.ca_file, "--allowed-host", "127.0.0.1"]
    ours = run_ours(emu, *args, env=env, registry=flags)
    assert ours.returncode == 0, ours.stderr
    theirs = run_acr_cli(emu, *args, default_registry=emu.login_server)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert acr_lines(ours.stdout) == acr_lines(theirs.stdout)
    assert deleted_set(ours.stdout) == {f"{emu.login_server}/kapp:x1"}


# --- 6. exit codes and --ago differences (README's table lists each) ---------------------------


@pytest.mark.parametrize("ago", ["3dfoo", "-1d", "1.5d"])
def test_ago_values_acr_purge_accepts_are_refused_here(emu: EmulatorServer, ago: str) -> None:
    ours = run_ours(emu, "--filter", "kapp:.*", "--ago", ago, "--dry-run")
    assert ours.returncode == 2
    assert f"--ago {ago!r}" in ours.stderr and "expected [N]d" in ours.stderr
    assert deleted_set(ours.stdout) == set()
    theirs = run_acr_cli(emu, "--filter", "kapp:.*", "--ago", ago, "--dry-run")
    assert theirs.returncode == 0  # acr purge accepts it (and caps or inverts it)


def test_bad_input_exits_two_where_acr_purge_exits_one(emu: EmulatorServer) -> None:
    ours = run_ours(emu, "--filter", "kapp:.*", "--dry-run")  # no --ago: defaults to 1d here
    assert ours.returncode == 0, ours.stderr
    theirs = run_acr_cli(emu, "--filter", "kapp:.*", "--dry-run")
    assert theirs.returncode == 1 and "--ago is required" in theirs.stdout + theirs.stderr
    bad = run_ours(emu, "--filter", "kapp", "--ago", "1d", "--dry-run")
    assert bad.returncode == 2


def test_concurrency_acr_purge_replaces_is_refused_or_kept_here(emu: EmulatorServer) -> None:
    base = ("--filter", "kapp:x1", "--ago", "1d", "--dry-run")
    theirs = run_acr_cli(emu, *base, "--concurrency", "0")
    assert theirs.returncode == 0  # it says so on stdout and goes on with its default
    assert re.search(
        r"^Specified concurrency value invalid\. Set to default value: \d+ ?$", theirs.stdout, re.M
    ), theirs.stdout
    assert deleted_set(theirs.stdout) == {f"{emu.login_server}/kapp:x1"}
    ours = run_ours(emu, *base, "--concurrency", "0")
    assert ours.returncode == 2 and "--concurrency: 0" in ours.stderr and "1 and 64" in ours.stderr
    assert deleted_set(ours.stdout) == set()
    theirs = run_acr_cli(emu, *base, "--concurrency", "40")
    assert "Specified concurrency value too large. Set to maximum value: 32" in theirs.stdout
    ours = run_ours(emu, *base, "--concurrency", "40")  # within this project's 1..64
    assert ours.returncode == 0, ours.stderr
    assert deleted_set(ours.stdout) == deleted_set(theirs.stdout)
    assert run_ours(emu, *base, "--concurrency", "65").returncode == 2


def test_negative_keep_acr_purge_treats_as_zero_is_refused_here(emu: EmulatorServer) -> None:
    base = ("--filter", "kapp:.*", "--ago", "1d", "--dry-run")
    theirs = run_acr_cli(emu, *base, "--keep", "-1")
    assert theirs.returncode == 0
    assert deleted_set(theirs.stdout) == deleted_set(run_acr_cli(emu, *base).stdout) != set()
    ours = run_ours(emu, *base, "--keep", "-1")
    assert ours.returncode == 2 and "--keep: -1" in ours.stderr
    assert deleted_set(ours.stdout) == set()


FRESH: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "tagged", "kind": "image", "updated": "-40d", "tags": ["v1"]},
                {"id": "old", "kind": "image", "updated": "-3d"},
                {"id": "pushed", "kind": "image", "updated": "-1h"},  # a push in progress
            ]
        }
    }
}


def test_untagged_only_without_ago_cuts_off_at_one_day_here_now_in_acr_purge(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(scenario=FRESH)
    args = ("--filter", "app:.*", "--untagged-only", "--dry-run")
    theirs = run_acr_cli(emu, *args)
    assert theirs.returncode == 0
    assert "Number of manifests to be deleted: 2" in theirs.stdout  # the fresh one too
    ours = run_ours(emu, *args)
    assert ours.returncode == 0, ours.stderr
    assert "Number of manifests to be deleted: 1" in ours.stdout
    assert deleted_set(ours.stdout) < deleted_set(theirs.stdout)
    explicit = run_ours(emu, *args, "--ago", "0d")  # how to ask for acr purge's cutoff
    assert deleted_set(explicit.stdout) == deleted_set(theirs.stdout)


@contextlib.contextmanager
def connect_recorder() -> Iterator[tuple[str, list[str]]]:
    """An HTTPS proxy that records each CONNECT line and refuses it: which host a client
    would reach, without reaching it."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                seen.append(conn.recv(4096).decode("latin-1").split("\r\n", 1)[0])

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    finally:
        server.close()


def test_dotless_registry_gets_the_azure_suffix_in_both(emu: EmulatorServer) -> None:
    needs_acr_cli()
    args = ("--filter", "app:.*", "--ago", "1d", "--dry-run")
    with connect_recorder() as (proxy, seen):
        env = {"HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}
        run_ours(emu, *args, env=env, registry=["-r", "myregistry"])
        assert seen and set(seen) == {"CONNECT myregistry.azurecr.io:443 HTTP/1.1"}, seen
        seen.clear()
        cmd = [str(ACR_CLI), "purge", "-r", "myregistry", "-u", "u", "-p", "p", *args]
        acr = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:  # it retries for minutes: its first CONNECT is the answer
            deadline = time.monotonic() + 60
            while not seen and acr.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            acr.kill()
            acr.wait()
        assert seen and seen[0] == "CONNECT myregistry.azurecr.io:443 HTTP/1.1", seen


def test_dotless_host_and_port_gets_no_suffix_here(emu: EmulatorServer) -> None:
    where = f"localhost:{emu.port}"
    args = ("--filter", "kapp:x1", "--ago", "1d", "--dry-run")
    theirs = run_acr_cli(emu, *args, registry=where)
    assert theirs.returncode == 1
    assert f'"https://{where}.azurecr.io": invalid port' in theirs.stdout + theirs.stderr
    ours = run_ours(
        emu, *args, registry=["-r", where, "--ca-file", emu.ca_file, "--allowed-host", "localhost"]
    )
    assert ours.returncode == 0, ours.stderr
    assert deleted_set(ours.stdout) == {f"{where}/kapp:x1"}


SLOW: dict[str, Any] = {
    "repositories": {
        "slow": {
            "manifests": [
                {"id": "m", "kind": "image", "updated": "-40d", "tags": ["a" * 40 + "-0", "b1"]}
            ]
        }
    }
}


def test_filter_timeout_seconds_is_honoured_by_both(emulator_factory: Any) -> None:
    emu = emulator_factory(scenario=SLOW)
    args = ("--filter", "slow:(a|aa)+$", "--ago", "1d", "--dry-run")  # backtracks for minutes
    theirs = run_acr_cli(emu, *args, "--filter-timeout-seconds", "1")
    assert theirs.returncode == 1
    assert "match timeout after 1s on input `" + "a" * 40 + "-0`" in theirs.stdout
    ours = run_ours(emu, *args, "--filter-timeout-seconds", "1")
    assert ours.returncode == 1  # the tag is kept and the run reports the error
    assert "timed out after 1s on '" + "a" * 40 + "-0'; kept" in ours.stdout
    assert deleted_set(ours.stdout) == deleted_set(theirs.stdout) == set()


#: Two tags 400 ns apart: the same to the microsecond, told apart by ACR's seventh digit.
NEWER, OLDER = 1711929600.1234636, 1711929600.1234632
TIES: dict[str, Any] = {
    "repositories": {
        "ties": {
            "manifests": [
                {"id": "m", "kind": "image", "updated": OLDER,
                 "tags": [{"name": "aa-older", "updated": OLDER},
                          {"name": "zz-newer", "updated": NEWER}]},
            ]
        }
    }
}  # fmt: skip


def test_keep_tells_tags_400ns_apart_apart_as_acr_purge(emulator_factory: Any) -> None:
    emu = emulator_factory(scenario=TIES)
    listed = requests.get(
        f"{emu.endpoint}/acr/v1/ties/_tags",
        auth=("admin", "s3cret-admin"),
        verify=emu.ca_file,
        timeout=30,
    ).json()["tags"]
    times = {t["name"]: t["lastUpdateTime"] for t in listed}
    assert times == {
        "zz-newer": "2024-04-01T00:00:00.1234636Z",
        "aa-older": "2024-04-01T00:00:00.1234632Z",
    }
    lines = compare_dry(emu, "--filter", "ties:.*", "--ago", "1d", "--keep", "1")
    assert f"Would delete: {emu.login_server}/ties:aa-older" in lines
    assert lines[-2] == "Number of tags to be deleted: 1"


def test_repository_page_size_defaults_differ(emu: EmulatorServer) -> None:
    args = ("--filter", ".*:x1", "--ago", "1d", "--dry-run")
    emu.reset_log()
    assert run_ours(emu, *args).returncode == 0
    assert set(catalog_page_sizes(emu)) == {"1000"}  # the most ACR serves: fewer round trips
    emu.reset_log()
    assert run_acr_cli(emu, *args).returncode == 0
    assert set(catalog_page_sizes(emu)) == {"100"}


def test_readme_table_lists_every_difference_this_issue_leaves() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Compared with `acr purge`", 1)[1].split("\n## ", 1)[0]
    needles = (
        "--concurrency 0", "--keep -1", "exit code", "--ago", "-1d", "1.5d",
        "Specified concurrency value invalid", "`--repository-page-size`", "(?i)", "\\p{",
        "`host:port`", "class subtraction", "carries into",
    )  # fmt: skip
    for needle in needles:
        assert needle in table, needle


# --- 8. the CLI reads PURGE_* settings; flags win ----------------------------------------------


def test_cli_reads_purge_settings_from_the_environment(emu: EmulatorServer) -> None:
    env = {
        "PURGE_REGISTRY": emu.login_server,
        "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": emu.ca_file,
    }
    ours = run_ours(emu, "--filter", "kapp:x1", "--ago", "1d", "--dry-run", env=env, registry=[])
    assert ours.returncode == 0, ours.stderr
    assert deleted_set(ours.stdout) == {f"{emu.login_server}/kapp:x1"}


def test_untrusted_host_message_names_what_works(emu: EmulatorServer) -> None:
    ours = run_ours(
        emu, "--filter", "kapp:x1", "--ago", "1d",
        registry=["-r", emu.login_server, "--ca-file", emu.ca_file],
    )  # fmt: skip
    assert ours.returncode == 2
    assert "--allowed-host" in ours.stderr and "PURGE_ALLOWED_HOSTS" in ours.stderr
    assert emu.dump()["repositories"]["kapp"]["tags"]  # nothing deleted


# --- 9. one token per run ----------------------------------------------------------------------


def test_one_token_request_per_run(emu: EmulatorServer) -> None:
    emu.reset_log()
    ours = run_ours(emu, "--filter", ".*:.*", "--ago", "1d", "--untagged", "--dry-run")
    assert ours.returncode == 0, ours.stderr
    tokens = [r for r in emu.request_log() if r["path"].startswith("/oauth2/")]
    assert len(tokens) == 1, tokens


def test_abac_registry_falls_back_to_per_repository_scopes(emulator_factory: Any) -> None:
    args = ("--filter", ".*:.*", "--ago", "1d", "--untagged")
    plain = run_ours(emulator_factory(scenario=SCENARIO), *args, "--dry-run")
    abac = emulator_factory(scenario=SCENARIO, abac=True)
    ours = run_ours(abac, *args, "--dry-run")
    assert ours.returncode == 0, ours.stderr
    assert deleted_set(ours.stdout) == {
        line.replace(line.split("/", 1)[0], abac.login_server) for line in deleted_set(plain.stdout)
    }
    scopes = [
        " ".join(v for k, v in parse_qsl(r["query"]) if k == "scope")
        for r in abac.request_log()
        if r["path"] == "/oauth2/token"
    ]
    assert scopes[0] == "registry:catalog:* repository:*:*"  # the wide scope first
    assert len(scopes) == len(set(scopes)), scopes  # then each scope once: cached
    assert any(s.startswith("repository:kapp:") for s in scopes)
