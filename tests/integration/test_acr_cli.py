"""Azure's own `acr` (acr-cli, the real `acr purge`) against the emulator, unmodified.

The binary lives in ../shared/tools/acr-cli/ (CI lays ../shared/ beside the clone); a user's
clone has none, so these tests skip there. They hold the emulator to what acr-cli needs from
ACR: empty pages without their list key (it panicked on `"tags": []`), Basic admin login, and
its refresh-token mode (one /oauth2/token request for `registry:catalog:* repository:*:*`).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from acr_emulator.testing import EmulatorServer
from tests.integration.test_emulator_tokens import claims, refresh_token

ACR = Path(__file__).resolve().parents[3] / "shared" / "tools" / "acr-cli" / "acr"
pytestmark = pytest.mark.skipif(
    not ACR.is_file(), reason=f"no acr-cli at {ACR} (CI has ../shared/ beside the clone)"
)
#: acr-cli asks for 100 items a page: 100 tags make it read the empty page past the end.
HUNDRED = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": f"m{i}", "kind": "image", "updated": f"-{i + 1}d", "tags": [f"t{i:03}"]}
                for i in range(100)
            ]
        }
    }
}


def acr(emu: EmulatorServer, *args: str, user: str | None = None, password: str = "") -> str:
    creds = ["-u", emu.username or "", "-p", emu.password or ""]
    if user is not None:
        creds = ["-u", user, "-p", password]
    out = subprocess.run(
        [str(ACR), *args, "-r", emu.login_server, *creds],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SSL_CERT_FILE": emu.ca_file},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "panic" not in out.stderr, out.stderr
    return out.stdout


def listed(output: str, host: str, sep: str) -> set[str]:
    prefix = f"{host}/"
    return {
        line[len(prefix) :].split(sep, 1)[1]
        for line in output.splitlines()
        if line.startswith(prefix) and sep in line
    }


def test_tag_list_and_manifest_list_read_past_the_last_page(emulator_factory: Any) -> None:
    emu = emulator_factory(HUNDRED)
    tags = listed(acr(emu, "tag", "list", "--repository", "app"), emu.login_server, ":")
    assert tags == {f"t{i:03}" for i in range(100)}
    digests = listed(acr(emu, "manifest", "list", "--repository", "app"), emu.login_server, "@")
    assert digests == set(emu.dump()["repositories"]["app"]["manifests"])
    pages = [e["query"] for e in emu.request_log() if e["path"] == "/acr/v1/app/_tags"]
    assert len(pages) == 2 and "last=t099" in pages[1]  # the empty page was asked for


def test_purge_dry_run_plans_and_deletes_nothing(emulator: EmulatorServer) -> None:
    before = emulator.dump()
    digests = before["repositories"]["hello-world"]["manifests"]
    old = next(d for d, m in digests.items() if not m["tags"])
    out = acr(
        emulator,
        "purge",
        "--filter",
        "hello-world:.*",
        "--ago",
        "30d",
        "--untagged",
        "--dry-run",
    )
    doomed = set(re.findall(r"Would delete: \S+?/hello-world[:@](\S+)", out))
    assert "v1" in doomed and old in doomed
    assert not doomed & {"v2", "latest", "stable"}  # too new, or locked
    assert emulator.dump() == before
    assert not [e for e in emulator.request_log() if e["method"] in ("DELETE", "PATCH")]


def test_refresh_token_mode_asks_once_for_the_wide_scope(emulator: EmulatorServer) -> None:
    refresh = refresh_token(emulator)
    emulator.reset_log()
    for user in ("", "00000000-0000-0000-0000-000000000000"):
        out = acr(emulator, "tag", "list", "--repository", "team/web", user=user, password=refresh)
        assert listed(out, emulator.login_server, ":") == {"1.0"}
    log = emulator.request_log()
    tokens = [e for e in log if e["path"].startswith("/oauth2/")]
    assert [e["path"] for e in tokens] == ["/oauth2/token", "/oauth2/token"]  # one per run
    assert all(e["status"] == 200 for e in log)
    access = [claims(t) for t in emulator.issued_tokens() if claims(t)["grant_type"] == "access"]
    assert {(a["Type"], a["Name"]) for a in access[-1]["access"]} == {
        ("registry", "catalog"),
        ("repository", "*"),
    }


def test_abac_registry_is_purged_with_per_repository_scopes(emulator_factory: Any) -> None:
    """acr-cli tells ABAC by the refresh token's `aad_identity` claim and asks per repository."""
    emu = emulator_factory(abac=True)
    before = emu.dump()
    out = acr(
        emu,
        "purge",
        "--filter",
        "hello-world:.*",
        "--ago",
        "30d",
        "--untagged",
        "--dry-run",
        user="",
        password=refresh_token(emu),
    )
    assert "ABAC" in out and "Would delete: " in out
    assert "hello-world:v1" in out
    assert emu.dump() == before
    access = [claims(t) for t in emu.issued_tokens() if claims(t)["grant_type"] == "access"]
    names = {a["Name"] for token in access for a in token["access"] if a["Type"] == "repository"}
    assert names == {"hello-world"}  # never the wildcard
