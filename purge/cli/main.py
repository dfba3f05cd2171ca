"""`python -m purge` / `acr-purge`: the engine for laptops, CI and ACR Task command lines.

Subcommands: `run` (alias `purge`, and an optional leading `acr purge` so an ACR Task's command
line works unchanged), `check-config`, `demo`, and the run history's `runs` and `restore`.
Exit codes: 0 ok, 1 errors in the run, 2 bad input (a clear message on stderr; nothing is
deleted).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import TextIO

from purge import __version__
from purge.cli.docker_config import Login, login_from_files, login_from_user
from purge.config.command import attach_signed_values
from purge.config.hosts import AZURE_REGISTRY_SUFFIXES, HostError, is_allowed, parse_login_server
from purge.config.secrets import RedactingParser
from purge.config.settings import Config, ConfigError, Connection, ca_bundle_problem, load_settings

EXIT_OK = 0
EXIT_RUN_ERRORS = 1
EXIT_BAD_INPUT = 2

REGISTRY_PLACEHOLDER = "{{.Run.Registry}}"


class BadInput(Exception):
    """Invalid flags or settings: reported on stderr with exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        ns = parser.parse_args(attach_signed_values(args))
    except SystemExit as exc:  # --help, --version, or a usage error (without secrets)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_BAD_INPUT
    command: Callable[[argparse.Namespace], int] = ns.handler
    from purge.cli.history import HistoryInputError

    try:
        return command(ns)
    except (BadInput, HistoryInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing was deleted", file=sys.stderr)
        return EXIT_BAD_INPUT


def normalize_argv(argv: list[str]) -> list[str]:
    """Accept `acr purge ...` and `purge ...` (ACR Task syntax) as `run ...`."""
    if argv[:2] == ["acr", "purge"]:
        return ["run", *argv[2:]]
    if argv[:1] == ["purge"]:
        return ["run", *argv[1:]]
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = RedactingParser(  # its subparsers too: usage errors never show a secret
        prog="acr-purge",
        description="Purge old or unwanted tags and manifests from Azure Container Registry.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="purge now, with acr purge's flags",
        description="Purge a registry with acr purge's flags (an ACR Task's `acr purge ...` "
        "command line works too).",
    )
    add_run_arguments(run)
    run.set_defaults(handler=run_command)

    check = commands.add_parser(
        "check-config", help="validate app settings and show the parsed rules and schedule"
    )
    check.add_argument(
        "--settings",
        metavar="FILE",
        help="a local.settings.json to read instead of the environment",
    )
    check.set_defaults(handler=check_config_command)

    # The demo parses its own options (purge.cli.demo.parse_args): with no prefix characters of its
    # own here, `demo --json` reaches it whole instead of failing as an unknown option.
    demo = commands.add_parser(
        "demo",
        help="purge a local emulated registry (needs no Azure)",
        prefix_chars="+",
        add_help=False,
    )
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    demo.set_defaults(handler=demo_command)

    from purge.cli.history import add_restore_parser, add_runs_parser

    add_runs_parser(commands)
    add_restore_parser(commands)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """acr purge's rule flags (shared with PURGE_COMMAND parsing), then the CLI's own flags."""
    from purge.config.command import add_rule_arguments

    add_rule_arguments(parser)  # -r, -u, -p, -c, --dry-run, --concurrency and the rule flags
    add = parser.add_argument
    add(
        "--output",
        choices=("text", "json", "table"),
        default="text",
        help="text: acr purge's lines, plain (a terminal's stderr also gets the tables); "
        "json: the report; table: the tables and the lines",
    )
    add("--ca-file", metavar="PEM", help="extra CA bundle to trust (local emulator)")
    add(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="trust this non-Azure registry host[:port] with credentials (repeatable)",
    )
    add(
        "--time-budget", type=_positive_float, metavar="S", help="stop starting deletions after S s"
    )
    add(
        "--history",
        metavar="URL|DIR",
        help="record the run (write-ahead) in this folder, blob URL or storage connection "
        "string, for `runs` and `restore` (default: PURGE_HISTORY; else not recorded)",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


# --- run -----------------------------------------------------------------------------------


#: Appended to a dotless `-r myregistry` (and ACR_DEFAULT_REGISTRY), as acr purge does.
DEFAULT_REGISTRY_SUFFIX = ".azurecr.io"
#: App settings `run` does not read: its flags are the rule, it has no timer, and --history
#: reads PURGE_HISTORY itself (the CLI records only when asked).
_NOT_FOR_RUN = (
    "PURGE_RULES",
    "PURGE_COMMAND",
    "PURGE_SCHEDULE",
    "PURGE_HISTORY",
    "PURGE_HISTORY_DAYS",
)


def resolve_registry(value: str | None, environ: Mapping[str, str]) -> str:
    """The login server: `-r`, else PURGE_REGISTRY, else ACR_DEFAULT_REGISTRY; host[:port].

    A dotless name from `-r` or ACR_DEFAULT_REGISTRY gets `.azurecr.io`, as in acr purge.
    """
    configured = environ.get("PURGE_REGISTRY", "").strip()
    default = environ.get("ACR_DEFAULT_REGISTRY", "").strip()
    where = "-r/--registry"
    if value is None or value.strip() == "":
        if configured:
            value, where = configured, "PURGE_REGISTRY"
        elif default:
            value, where = default, "ACR_DEFAULT_REGISTRY"
        else:
            raise BadInput(
                "-r/--registry is required (or set PURGE_REGISTRY or ACR_DEFAULT_REGISTRY)"
            )
    value = value.strip()
    if value == REGISTRY_PLACEHOLDER:
        if not configured:
            raise BadInput(
                f"-r {REGISTRY_PLACEHOLDER} is an ACR Task placeholder; outside a task set "
                "PURGE_REGISTRY to the registry's login server, or pass -r myreg.azurecr.io"
            )
        value, where = configured, "PURGE_REGISTRY"
    try:
        value = parse_login_server(value)
    except HostError as exc:
        raise BadInput(f"{where} {value!r}: {exc}") from exc
    if where != "PURGE_REGISTRY" and "." not in value and ":" not in value:
        value += DEFAULT_REGISTRY_SUFFIX
    return value


def config_from_namespace(ns: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The run's Config: the same PURGE_* settings as the app, where a flag is given it wins."""
    from purge.config.command import rule_from_namespace
    from purge.config.rules import RuleProblems

    login_server = resolve_registry(getattr(ns, "registry", None), environ)
    try:
        rule = rule_from_namespace(ns, "cli")
    except RuleProblems as exc:
        raise BadInput("; ".join(exc.as_flags())) from exc
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    if ns.ca_file is not None and not os.path.isfile(ns.ca_file):
        raise BadInput(f"--ca-file {ns.ca_file!r}: no such file")
    if ns.ca_file is not None and (problem := ca_bundle_problem(ns.ca_file)):
        raise BadInput(f"--ca-file {ns.ca_file!r}: {problem}")
    env = {
        name: value
        for name, value in environ.items()
        if (name.upper().startswith("PURGE_") or name == "AZURE_CLIENT_ID")
        and name not in _NOT_FOR_RUN
    }
    flags = {
        "PURGE_REGISTRY": login_server,
        "PURGE_ALLOWED_HOSTS": ",".join(ns.allowed_host) or None,
        "PURGE_CA_FILE": ns.ca_file,
        "PURGE_CONCURRENCY": None if ns.concurrency is None else str(ns.concurrency),
        "PURGE_TIME_BUDGET": None if ns.time_budget is None else str(ns.time_budget),
        "PURGE_DRY_RUN": "true" if ns.dry_run else None,
    }
    env.update({name: value for name, value in flags.items() if value is not None})
    _check_trusted(login_server, env.get("PURGE_ALLOWED_HOSTS", ""))
    try:
        config = load_settings(env, require_rules=False)
    except ConfigError as exc:
        raise BadInput("; ".join(exc.errors)) from exc
    login = _login(ns, config.connection)
    connection = replace(
        config.connection,
        username=login.username,
        password=login.password,
        refresh_token=login.refresh_token,
        catalog_page_size=ns.repository_page_size,
    )
    from purge.cli.history import history_from
    from purge.history.settings import grace_problems

    history = history_from(ns, environ)
    problems = grace_problems((rule,), history, "--history")
    if problems:
        raise BadInput("; ".join(problems))
    return replace(config, connection=connection, rules=(rule,), history=history)


def _check_trusted(login_server: str, allowed: str) -> None:
    """Refuse an untrusted host with a message naming both ways to trust it."""
    hosts = tuple(host.strip() for host in allowed.split(",") if host.strip())
    if not is_allowed(login_server, hosts):
        suffixes = ", ".join(AZURE_REGISTRY_SUFFIXES)
        raise BadInput(
            f"-r/--registry {login_server!r}: credentials are only sent to hosts ending in "
            f"{suffixes} or trusted explicitly: pass --allowed-host {login_server} or set "
            f"PURGE_ALLOWED_HOSTS={login_server} (trusted now: {', '.join(hosts) or 'none'})"
        )


def _login(ns: argparse.Namespace, connection: Connection) -> Login:
    """`-u/-p` first, then `-c` files, then PURGE_USERNAME/PURGE_PASSWORD; else Azure AD."""
    if ns.username is not None or ns.password is not None:
        if ns.username is None or not ns.password:
            raise BadInput("-u/--username and -p/--password go together: give both or neither")
        return login_from_user(ns.username, ns.password)
    if ns.config:
        try:
            return login_from_files(ns.config, connection.login_server)
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
    if connection.username is not None and connection.password is not None:
        return login_from_user(connection.username, connection.password)
    return Login()


def run_command(ns: argparse.Namespace, *, environ: Mapping[str, str] | None = None) -> int:
    config = config_from_namespace(ns, os.environ if environ is None else environ)
    if ns.verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
    from purge.history.journal import run_recorded
    from purge.service import is_dry_run, run_purge

    with progress_reporter(sys.stderr) as progress:
        recorded = run_recorded(
            config.history,
            registry=config.connection.login_server,
            source="cli",
            dry_run=is_dry_run(config, None),
            run=functools.partial(run_purge, config, progress=progress),
            rules=config.rules,
        )
        try:
            report = asyncio.run(recorded)
        except ValueError as exc:  # untrusted host, unknown rule: refused before any request
            raise BadInput(str(exc)) from exc
    if ns.output == "json":
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return EXIT_RUN_ERRORS if report.errors else EXIT_OK
    from purge import render

    if ns.output == "table":
        print(render.tables_text(report, width=None), end="")
    elif sys.stderr.isatty():  # a person watching: the tables there, the pipe unchanged
        print(render.tables_text(report, width=None), end="", file=sys.stderr)
    print(render.lines_text(report), end="")
    return EXIT_RUN_ERRORS if report.errors else EXIT_OK


@contextmanager
def progress_reporter(stream: TextIO) -> Iterator[Callable[[str], None]]:
    """A rich live status on a terminal; plain timestamped lines otherwise (CI logs).

    Messages carry repository names and registry errors: `repo[/]` once raised rich's
    MarkupError part-way through a run, after deletions. They are shown as text, escaped.
    """
    if stream.isatty():
        from rich.text import Text

        from purge.render import plain_console, printable

        console = plain_console(stream, color=True)
        with console.status("purging...") as status:

            def show(message: str) -> None:
                text = printable(message)
                status.update(Text(text))  # a str status is read as markup, whatever the console
                console.log(text)

            yield show
        return

    def log(message: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"{stamp} {message}", file=stream, flush=True)

    yield log


# --- check-config ----------------------------------------------------------------------------


def check_config_command(ns: argparse.Namespace) -> int:
    from purge.config.schedule import next_fire_times
    from purge.config.settings import describe_config, load_settings, load_settings_file

    try:
        # check-config validates what the function app will run, and its timer needs a schedule.
        config = (
            load_settings_file(ns.settings, require_schedule=True)
            if ns.settings
            else load_settings(os.environ, require_schedule=True)
        )
    except ConfigError as exc:
        print(f"invalid configuration ({len(exc.errors)} problems):", file=sys.stderr)
        for error in exc.errors:
            print(f"  - {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, ValueError) as exc:
        raise BadInput(f"--settings {ns.settings!r}: {exc}") from exc
    print(json.dumps(describe_config(config), indent=2, default=str))
    now = datetime.now(timezone.utc)
    schedules = [("PURGE_SCHEDULE", config.schedule)] + [
        (f"rule {rule.name!r}", rule.schedule) for rule in config.rules
    ]
    for label, expression in schedules:
        if expression:
            times = next_fire_times(expression, now, 5)
            print(f"next fire times of {label} ({expression}):")
            for moment in times:
                print(f"  {moment.isoformat()}")
    print("configuration is valid")
    return EXIT_OK


# --- demo ----------------------------------------------------------------------------------


def demo_command(ns: argparse.Namespace) -> int:
    try:
        demo = importlib.import_module("purge.cli.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "purge.cli.demo":
            raise
        print(
            "error: the demo is not available in this installation (purge/cli/demo.py is missing)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    result = demo.main(list(ns.demo_args))
    return int(result or 0)
