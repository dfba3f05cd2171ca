"""`acr purge ...` command lines -> Rules, so that an ACR Task's `--cmd` works unchanged.

The same flag set serves `PURGE_COMMAND` and the CLI's `run` command (`add_rule_arguments`,
`rule_from_namespace`), so the two can never drift apart.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from collections.abc import Sequence
from typing import Any, NoReturn

from purge.config.hosts import HostError, parse_login_server
from purge.config.rules import (
    Rule,
    RuleError,
    RuleProblems,
    default_rule_name,
    make_rule,
)
from purge.config.secrets import RedactingParser

log = logging.getLogger(__name__)

#: The placeholder an ACR Task expands to its registry's login server.
RUN_REGISTRY_PLACEHOLDER = "{{.Run.Registry}}"
#: acr purge's `--concurrency` is clamped to 1..32; ours allows up to PURGE_CONCURRENCY's 64.
MAX_CONCURRENCY = 64


class _RaisingParser(RedactingParser):
    """Every parse error as a RuleError, on every Python: argparse calls `error()` (which exits)
    for some errors even with exit_on_error=False, and raises ArgumentError for others (Python
    3.13 does so for unrecognized arguments); RedactingParser routes both to `fail`."""

    def fail(self, message: str) -> NoReturn:
        raise RuleError(f"acr purge: {message}")


def _typed(parse: Any) -> Any:
    """Wrap a parser so that argparse reports our message as `argument --x: <message>`."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except RuleError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _int_in(low: int, high: int | None) -> Any:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise RuleError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"between {low} and {high}"
            raise RuleError(f"{value} is out of range: must be {allowed}")
        return value

    return _typed(convert)


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """Add acr purge's flags and ours to `parser`. Destinations are the flag names in snake case.

    Registry and credentials (`-r`, `-u`, `-p`, `-c`), `--concurrency`, `--dry-run`,
    `--verbose` and `--repository-page-size` are for the caller to use; `--timeout` is accepted
    for compatibility and ignored. `--ago` and `--max-deletions` are checked by make_rule, so
    that their messages name the flag and the value as written.
    """
    parser.add_argument("-r", "--registry", help="login server, e.g. myregistry.azurecr.io")
    parser.add_argument("-u", "--username", help="ACR admin user or token name")
    parser.add_argument("-p", "--password", help="its password (never printed)")
    parser.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="Docker config file with the registry's credentials (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="log each step on stderr")
    parser.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="REPO:TAG",
        help="repository regex (whole name) and tag regex (searched); repeatable, OR-ed",
    )
    parser.add_argument(
        "--ago",
        default=None,
        metavar="DURATION",
        help="only what was last updated before now minus this, e.g. 30d, 1d3h6m (default 1d)",
    )
    parser.add_argument(
        "--keep",
        type=_int_in(0, None),
        default=0,
        help="per repository, keep this many of the newest tags that would be deleted",
    )
    parser.add_argument(
        "--untagged", action="store_true", help="also delete old manifests left without tags"
    )
    parser.add_argument(
        "--untagged-only",
        action="store_true",
        help="delete only old manifests without tags (--filter optional)",
    )
    parser.add_argument(
        "--include-locked",
        action="store_true",
        help="unlock and delete locked tags and manifests",
    )
    parser.add_argument("--dry-run", action="store_true", help="plan and report, delete nothing")
    parser.add_argument(
        "--concurrency",
        type=_int_in(1, MAX_CONCURRENCY),
        default=None,
        help=f"parallel requests, 1..{MAX_CONCURRENCY} (default: adaptive)",
    )
    parser.add_argument(
        "--timeout", type=_int_in(1, None), default=None, help="accepted for acr purge; ignored"
    )
    parser.add_argument(
        "--filter-timeout-seconds",
        type=_int_in(1, None),
        default=None,
        help="seconds one regex match may take (default 2); past it the item is kept",
    )
    parser.add_argument(
        "--repository-page-size",
        type=_int_in(1, None),
        default=None,
        help="repositories per catalog page (default: 1000, the most ACR serves)",
    )
    parser.add_argument(
        "--protect",
        action="append",
        default=[],
        metavar="REGEX",
        help="tags matching this regex are never deleted; repeatable",
    )
    parser.add_argument(
        "--max-deletions",
        default=None,
        metavar="N|P%",
        help="delete nothing for a rule whose plan exceeds N deletions or P%% of what it lists",
    )
    parser.add_argument("--name", default=None, help="rule name (default rule-1, rule-2, ...)")
    parser.add_argument(
        "--grace",
        default=None,
        metavar="DURATION",
        help="delete a manifest this project untagged no earlier than DURATION after its last "
        "tag went (needs run history)",
    )
    parser.add_argument(
        "--schedule", default=None, metavar="NCRONTAB", help="run this rule only on its schedule"
    )


def rule_from_namespace(ns: argparse.Namespace, name: str) -> Rule:
    """The Rule that parsed flags describe; `--name`, when given, overrides `name`."""
    if getattr(ns, "timeout", None) is not None:
        log.info("acr purge flag accepted and ignored: --timeout")
    return make_rule(
        name if ns.name is None else ns.name,  # `--name ''` is an error, not the default
        filters=ns.filter,
        ago=ns.ago,
        keep=ns.keep,
        untagged=ns.untagged,
        untagged_only=ns.untagged_only,
        include_locked=ns.include_locked,
        protect=ns.protect,
        max_deletions=ns.max_deletions,
        schedule=ns.schedule,
        dry_run=True if ns.dry_run else None,
        filter_timeout=ns.filter_timeout_seconds,
        grace=getattr(ns, "grace", None),
    )


#: Flags whose value may start with '-' (`--ago -1d`): pflag, acr purge's parser, takes the next
#: word as the value; argparse would take it for a flag and say "expected one argument".
_SIGNED_VALUE_FLAGS = ("--ago", "--keep", "--concurrency", "--max-deletions")


def attach_signed_values(args: Sequence[str]) -> list[str]:
    """`--ago -1d` -> `--ago=-1d`, so that the value reaches its check and gets a clear message."""
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in _SIGNED_VALUE_FLAGS and i + 1 < len(args) and args[i + 1].startswith("-"):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def make_parser() -> argparse.ArgumentParser:
    """A parser for the arguments after `acr purge` that raises RuleError instead of exiting."""
    parser = _RaisingParser(
        prog="acr purge", add_help=False, exit_on_error=False, allow_abbrev=False
    )
    add_rule_arguments(parser)
    return parser


def split_commands(cmd: str) -> list[list[str]]:
    """Tokens of each command in `cmd`, split at `&&` and `;` as a shell would."""
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars="&;")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:  # unbalanced quotes
        raise RuleError(f"cannot split the command line: {exc}") from exc
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in ("&&", ";"):
            commands.append([])
        elif token and set(token) <= {"&", ";"}:
            raise RuleError(f"unexpected {token!r}: join acr purge commands with '&&' or ';'")
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def parse_purge_command(cmd: str, registry: str | None) -> tuple[Rule, ...]:
    """Rules from one or more `acr purge ...` lines joined by `&&` or `;` (an ACR Task `--cmd`).

    `-r`/`--registry` may be `{{.Run.Registry}}` or must name `registry` (skipped when None).
    Credentials are refused: the function authenticates with its managed identity.
    """
    commands = split_commands(cmd)
    if not commands:
        raise RuleError("the command line is empty; expected 'acr purge --filter REPO:TAG ...'")
    rules: list[Rule] = []
    for number, tokens in enumerate(commands, start=1):
        try:
            rules.append(_parse_one(tokens, registry, default_rule_name(number - 1)))
        except RuleProblems as exc:
            raise RuleError(f"command {number}: " + "; ".join(exc.as_flags())) from exc
        except RuleError as exc:
            raise RuleError(f"command {number}: {exc}") from exc
    return tuple(rules)


def _parse_one(tokens: Sequence[str], registry: str | None, name: str) -> Rule:
    if list(tokens[:2]) != ["acr", "purge"]:
        raise RuleError(f"expected it to start with 'acr purge', got {' '.join(tokens[:2])!r}")
    args = list(tokens[2:])
    for i in range(len(args) - 1):
        if args[i : i + 2] == ["acr", "purge"]:
            raise RuleError("found a second 'acr purge': join commands with '&&' or ';'")
    ns = make_parser().parse_args(attach_signed_values(args))  # its errors show no secret
    if ns.username is not None or ns.password is not None or ns.config:
        raise RuleError(
            "-u/--username, -p/--password and -c/--config are not used here: the function "
            "signs in with its managed identity (AZURE_CLIENT_ID selects a user-assigned one); "
            "remove them"
        )
    if ns.repository_page_size is not None:
        log.info("--repository-page-size in PURGE_COMMAND: the app pages its catalog at 1000")
    if ns.registry is not None and registry is not None:
        _check_registry(ns.registry, registry)
    return rule_from_namespace(ns, name)


def _check_registry(given: str, registry: str) -> None:
    if given == RUN_REGISTRY_PLACEHOLDER:
        return
    try:
        same = parse_login_server(given) == parse_login_server(registry)
    except HostError as exc:
        raise RuleError(f"-r/--registry {given!r}: {exc}") from exc
    if not same:
        raise RuleError(
            f"-r/--registry {given!r} differs from PURGE_REGISTRY {registry!r}; use "
            f"{RUN_REGISTRY_PLACEHOLDER} or the same login server"
        )
