"""ACR's token service: AAD exchange, refresh/access tokens, Basic admin auth, scope checks.

Tokens are opaque to the emulator's callers but shaped like ACR's JWTs (three dot-separated
segments whose middle one is base64 JSON with `exp`), because the SDK reads `exp` from them.
The payload is padded so that its base64 needs no `=`: azure-containerregistry 1.2.0 re-pads it
wrongly and would fail to decode otherwise.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass, field

# A grant: (type, name, actions); name "*" and action "*" are wildcards.
Grant = tuple[str, str, frozenset[str]]
ALL: list[Grant] = [("registry", "*", frozenset({"*"})), ("repository", "*", frozenset({"*"}))]
#: The user name that says "the password is an ACR refresh token" (`az acr login --expose-token`,
#: acr-cli's refresh-token mode, `docker login -u 00000000-0000-0000-0000-000000000000`).
REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
ANONYMOUS: list[Grant] = [
    ("registry", "catalog", frozenset({"*"})),
    ("repository", "*", frozenset({"pull", "metadata_read"})),
]


def parse_scopes(raw: str) -> list[Grant]:
    """`repository:team/app:pull,push registry:catalog:*` -> grants (bad items are ignored)."""
    grants: list[Grant] = []
    for item in raw.split():
        parts = item.split(":")
        if len(parts) < 3:
            continue
        grants.append((parts[0], ":".join(parts[1:-1]), frozenset(parts[-1].split(","))))
    return grants


def allows(grants: list[Grant], need_type: str, need_name: str, action: str) -> bool:
    for typ, name, actions in grants:
        if typ != need_type or (name != "*" and name != need_name):
            continue
        if "*" in actions or action in actions:
            return True
    return False


@dataclass
class Token:
    kind: str  # "refresh" | "access"
    grants: list[Grant]
    expires: float
    subject: str


@dataclass
class TokenService:
    username: str | None = "admin"
    password: str | None = None
    anonymous_pull: bool = False
    aad_allow_list: set[str] | None = None  # None: any non-empty AAD token is accepted
    #: Like an ABAC-enabled registry: wildcard repository scopes (`repository:*:*`) are not
    #: granted, and refresh tokens from the AAD exchange carry an `aad_identity` claim.
    abac: bool = False
    lifetime: float = 3600.0
    tokens: dict[str, Token] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    aad_tokens_seen: list[str] = field(default_factory=list)

    def _mint(
        self, kind: str, grants: list[Grant], subject: str, service: str, aad: bool = False
    ) -> str:
        now = time.time()
        exp = int(now + self.lifetime)
        payload = {
            "jti": secrets.token_hex(8),
            "sub": subject,
            "iat": int(now),
            "nbf": int(now),
            "exp": exp,
            "iss": "Azure Container Registry",
            "aud": service,
            "version": "1.0",
            "grant_type": kind,
            "access": [{"Type": t, "Name": n, "Actions": sorted(a)} for t, n, a in grants],
        }
        if aad and self.abac:
            payload["aad_identity"] = {"oid": subject}
        raw = json.dumps(payload, separators=(",", ":"))
        raw += " " * (-len(raw.encode()) % 3)
        header = base64.b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("=")
        token = f"{header}.{base64.b64encode(raw.encode()).decode()}.{secrets.token_hex(16)}"
        self.tokens[token] = Token(kind, grants, now + self.lifetime, subject)
        self.issued.append(token)
        return token

    def _valid(self, token: str, kind: str) -> Token | None:
        info = self.tokens.get(token)
        if info is None or info.kind != kind or info.expires <= time.time():
            return None
        return info

    def basic_ok(self, user: str | None, password: str | None) -> bool:
        return (
            self.username is not None
            and self.password is not None
            and user == self.username
            and password == self.password
        )

    def exchange(self, aad_token: str, service: str) -> str | None:
        """AAD access token -> ACR refresh token; None when the AAD token is refused."""
        if not aad_token:
            return None
        self.aad_tokens_seen.append(aad_token)
        if self.aad_allow_list is not None and aad_token not in self.aad_allow_list:
            return None
        return self._mint("refresh", ALL, "aad-identity", service, aad=True)

    def refresh_is_valid(self, refresh_token: str) -> bool:
        return self._valid(refresh_token, "refresh") is not None

    def access_from_refresh(self, refresh_token: str, scope: str, service: str) -> str | None:
        info = self._valid(refresh_token, "refresh")
        if info is None:
            return None
        wanted = self._grantable(parse_scopes(scope))
        granted = [g for g in wanted if all(allows(info.grants, g[0], g[1], a) for a in g[2])]
        return self._mint("access", granted, info.subject, service)

    def _grantable(self, wanted: list[Grant]) -> list[Grant]:
        """What the token service grants of `wanted`: all, or (ABAC) no wildcard repositories."""
        if not self.abac:
            return wanted
        return [g for g in wanted if not (g[0] == "repository" and "*" in g[1])]

    def access_for_admin(self, scope: str, service: str) -> str:
        wanted = parse_scopes(scope)
        grants = self._grantable(wanted) if wanted else ALL
        return self._mint("access", grants, self.username or "admin", service)

    def basic_grants(self, user: str, password: str) -> list[Grant] | None:
        """What Basic credentials may do: the admin user, or the refresh-token user (None: no)."""
        if self.basic_ok(user, password):
            return ALL
        if user in (REFRESH_TOKEN_USER, ""):
            info = self._valid(password, "refresh")
            if info is not None:
                return info.grants
        return None

    def access_for_basic(self, user: str, password: str, scope: str, service: str) -> str | None:
        """An access token for Basic credentials (the Docker token flow), None if refused."""
        if self.basic_ok(user, password):
            return self.access_for_admin(scope, service)
        if user in (REFRESH_TOKEN_USER, ""):
            return self.access_from_refresh(password, scope, service)
        return None

    def refresh_for_admin(self, service: str) -> str:
        return self._mint("refresh", ALL, self.username or "admin", service)

    def access_anonymous(self, service: str) -> str:
        # ACR answers 200 whatever was asked, but the token only grants pull on everything.
        return self._mint("access", ANONYMOUS, "acr_anon_pull", service)

    def access_grants(self, token: str) -> list[Grant] | None:
        info = self._valid(token, "access")
        return info.grants if info else None

    @staticmethod
    def decode_basic(value: str) -> tuple[str, str] | None:
        try:
            raw = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        return (user, password) if sep else None
