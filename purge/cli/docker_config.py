"""`-c/--config FILE`: registry credentials from Docker config files, as acr purge reads them.

`auths.<host>.auth` is base64 `user:password`; `identitytoken` (what `az acr login` stores)
and the zero-GUID user mean the password is an ACR refresh token. Credential helpers
(`credsStore`, `credHelpers`) are programs this CLI does not run: such a file is an error that
says so, instead of a silent fall-back to another identity.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: The user name that says "the password is an ACR refresh token" (acr purge, docker login).
REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Login:
    """Either a user and password, or an ACR refresh token."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)


def login_from_user(username: str, password: str) -> Login:
    """`-u/-p`: the empty or zero-GUID user makes the password a refresh token (acr purge)."""
    if username in ("", REFRESH_TOKEN_USER):
        return Login(refresh_token=password)
    return Login(username=username, password=password)


def login_from_files(paths: Sequence[str], login_server: str) -> Login:
    """The first entry for `login_server` in `paths`, in order; ValueError says what is wrong."""
    helpers: list[str] = []
    for path in paths:
        config = _read(path)
        auths = config.get("auths")
        for key, entry in auths.items() if isinstance(auths, dict) else ():
            if _host_of(str(key)) == login_server and isinstance(entry, dict):
                return _login(entry, path, str(key))
        if config.get("credsStore") or login_server in (config.get("credHelpers") or {}):
            helpers.append(path)
    where = ", ".join(repr(p) for p in paths)
    hint = (
        f"; {', '.join(repr(p) for p in helpers)} use a credential helper (credsStore or "
        "credHelpers), which is not run here: pass -u/-p instead"
        if helpers
        else ""
    )
    raise ValueError(f"-c/--config: no credentials for {login_server} in {where}{hint}")


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"-c/--config {path!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"-c/--config {path!r}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"-c/--config {path!r}: not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f'-c/--config {path!r}: expected a JSON object with "auths"')
    return config


def _host_of(key: str) -> str:
    """`https://myreg.azurecr.io/v1/` -> `myreg.azurecr.io` (Docker writes keys both ways)."""
    host = key.strip().lower()
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    return host.split("/", 1)[0]


def _login(entry: dict[str, Any], path: str, key: str) -> Login:
    where = f"-c/--config {path!r}, auths[{key!r}]"
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Login(refresh_token=token)
    user, password = entry.get("username"), entry.get("password")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(f"{where}.auth: not base64 of 'user:password'") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise ValueError(f"{where}.auth: not base64 of 'user:password' (no ':')")
    if not isinstance(user, str) or not isinstance(password, str) or not password:
        raise ValueError(f"{where}: has no auth, username/password or identitytoken")
    return login_from_user(user, password)
