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
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TextIO

from purge import __version__
from purge.config.hosts import HostError, parse_login_server
from purge.config.settings import Config, ConfigError, Connection

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
        ns = parser.parse_args(args)
    except SystemExit as exc:  # argparse already printed a usage message
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
    parser = argparse.ArgumentParser(
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

    add_rule_arguments(parser)  # -r, -u, -p, --dry-run, --concurrency and the rule flags
    add = parser.add_argument
    add("--output", choices=("text", "json"), default="text", help="report format")
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


def resolve_registry(value: str | None, environ: Mapping[str, str]) -> str:
    """The login server from `-r` (or PURGE_REGISTRY), as host[:port]."""
    configured = environ.get("PURGE_REGISTRY", "").strip()
    if value is None or value.strip() == "":
        if not configured:
            raise BadInput("-r/--registry is required (or set PURGE_REGISTRY)")
        value = configured
    value = value.strip()
    if value == REGISTRY_PLACEHOLDER:
        if not configured:
            raise BadInput(
                f"-r {REGISTRY_PLACEHOLDER} is an ACR Task placeholder; outside a task set "
                "PURGE_REGISTRY to the registry's login server, or pass -r myreg.azurecr.io"
            )
        value = configured
    try:
        return parse_login_server(value)
    except HostError as exc:
        raise BadInput(f"-r/--registry {value!r}: {exc}") from exc


def config_from_namespace(ns: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    from purge.config.command import rule_from_namespace

    login_server = resolve_registry(getattr(ns, "registry", None), environ)
    try:
        rule = rule_from_namespace(ns, "cli")
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    if ns.ca_file is not None and not os.path.isfile(ns.ca_file):
        raise BadInput(f"--ca-file {ns.ca_file!r}: no such file")
    if (ns.username is None) != (ns.password is None):
        raise BadInput("-u/--username and -p/--password go together: give both or neither")
    connection = Connection(
        login_server=login_server,
        allowed_hosts=tuple(ns.allowed_host),
        username=ns.username,
        password=ns.password,
        ca_file=ns.ca_file,
    )
    from purge.cli.history import history_from
    from purge.history.settings import grace_problems

    history = history_from(ns, environ)
    problems = grace_problems((rule,), history, "--history")
    if problems:
        raise BadInput("; ".join(problems))
    return Config(
        connection=connection,
        rules=(rule,),
        dry_run=bool(ns.dry_run),
        concurrency=ns.concurrency,
        time_budget=ns.time_budget,
        history=history,
    )


def run_command(ns: argparse.Namespace, *, environ: Mapping[str, str] | None = None) -> int:
    config = config_from_namespace(ns, os.environ if environ is None else environ)
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
    else:
        from purge.render import render_text

        print(render_text(report), end="")
    return EXIT_RUN_ERRORS if report.errors else EXIT_OK


@contextmanager
def progress_reporter(stream: TextIO) -> Iterator[Callable[[str], None]]:
    """A rich live status on a terminal; plain timestamped lines otherwise (CI logs)."""
    if stream.isatty():
        from rich.console import Console

        console = Console(file=stream)
        with console.status("purging...") as status:

            def show(message: str) -> None:
                status.update(message)
                console.log(message)

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
            "error: the demo is not available in this version (purge/demo.py is missing)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    result = demo.main(list(ns.demo_args))
    return int(result or 0)
