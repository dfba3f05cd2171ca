"""Never echo a secret: values of secret-looking flags and settings are hidden in messages.

An unknown flag is echoed by argparse with its value (`unrecognized arguments: --pasword
S3cret`), and that message reaches the status endpoint, the timer log and check-config. A flag
or setting name that looks like it carries a credential gets its value replaced instead.
"""

from __future__ import annotations

from collections.abc import Sequence

HIDDEN = "(value hidden)"
#: Name fragments that mark a credential, also misspelt (`--pasword`, `--passwd`, `--pwd`).
_SECRET_WORDS = (
    "pass", "pw", "word", "secret", "token", "key", "credential", "auth", "sig", "cert",
)  # fmt: skip


def looks_secret(name: str) -> bool:
    """True for a flag or setting name that may carry a credential (`--api-key`, `*_PASSWORD`)."""
    lowered = name.lower().lstrip("-")
    return any(word in lowered for word in _SECRET_WORDS)


def redact_arguments(message: str, tokens: Sequence[str]) -> str:
    """`message` with the value of every secret-looking `--flag VALUE` / `--flag=VALUE` hidden."""
    for index, token in enumerate(tokens):
        if not token.startswith("-"):
            continue
        flag, equals, _value = token.partition("=")
        if not looks_secret(flag):
            continue
        if equals:
            message = message.replace(token, f"{flag}={HIDDEN}")
        elif index + 1 < len(tokens) and not tokens[index + 1].startswith("-"):
            value = tokens[index + 1]
            message = message.replace(f"{token} {value}", f"{token} {HIDDEN}")
    return message
