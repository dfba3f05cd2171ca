"""`python -m purge demo`: the whole engine against a local emulated registry, no Azure needed.

It starts `acr_emulator` as a subprocess with the sample scenario, shows the registry, runs sample
rules as a dry run and then for real through the engine's normal path (run_purge over HTTPS with
the admin user), and checks that every surviving tag still pulls completely: manifest by tag,
every child of an index, every referrer, every blob, each verified against its digest. The
emulator is a separate process (not a thread) so that the demo exercises exactly what a user's
registry would: a socket, TLS with a CA file, and the real SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from purge.cli.emulator import DemoError, EmulatorInfo, emulator_process
from purge.cli.inventory import InventoryRow, take_inventory
from purge.cli.pull import (
    PullError,
    RegistryReader,
    Verification,
    plan_differences,
    verify_pulls,
)
from purge.config.secrets import RedactingParser
from purge.config.settings import Config, Connection, describe_rule
from purge.history.journal import run_recorded
from purge.history.restore import RestoreReport, restore_run
from purge.history.settings import HistorySettings
from purge.history.store import list_records, read_record
from purge.model import (
    short_digest,
    short_tag,
)
from purge.render import render_text
from purge.report import Report, human_bytes
from purge.service import run_purge

#: The sample rules, as an ACR Task would spell them (`{{.Run.Registry}}` is the ACR Task
#: placeholder). Each shows a different part of the engine: --keep and --protect, graph safety
#: around indexes and referrers, locks and unknown media types.
SAMPLE_COMMANDS = (
    "acr purge --name web-builds --filter 'shop/web:.*' --ago 30d --keep 2 --untagged --grace 7d "
    "--protect '^release-'",
    "acr purge --name api-releases --filter 'shop/api:.*' --ago 30d --untagged",
    "acr purge --name legacy-tools --filter 'tools/legacy:.*' --ago 180d --untagged",
)
#: Accept every manifest type, as a pulling client does; the emulator serves the stored type.


# --- the demo --------------------------------------------------------------------------------


def sample_rules_setting(commands: Sequence[str] = SAMPLE_COMMANDS) -> str:
    """PURGE_COMMAND for the sample rules, as it would be set on a function app."""
    return " && ".join(commands)


def build_config(info: EmulatorInfo, commands: Sequence[str] = SAMPLE_COMMANDS) -> Config:
    """The engine's normal Config: admin user, the emulator's CA, its host explicitly allowed."""
    from purge.config.command import parse_purge_command

    connection = Connection(
        login_server=info.login_server,
        allowed_hosts=(info.login_server,),
        username=info.username,
        password=info.password,
        ca_file=info.ca_file,
    )
    rules = parse_purge_command(sample_rules_setting(commands), info.login_server)
    return Config(connection=connection, rules=rules)


@dataclass
class DemoResult:
    info: EmulatorInfo
    inventory: dict[str, list[InventoryRow]]
    dry_run: Report
    real_run: Report
    verification: Verification
    plan_differences: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    restore: RestoreReport | None = None
    #: Each restored tag pulls by tag, with the digest it had before the purge.
    restored_problems: list[str] = field(default_factory=list)
    after_restore: Verification | None = None

    @property
    def ok(self) -> bool:
        restored = (
            self.restore is not None
            and self.restore.ok
            and self.restore.count("restored") > 0
            and not self.restored_problems
            and self.after_restore is not None
            and self.after_restore.ok
        )
        return (
            self.verification.ok
            and not self.plan_differences
            and not self.real_run.errors
            and restored
        )


async def run_demo(info: EmulatorInfo, out: Output, history: HistorySettings) -> DemoResult:
    """Inventory, dry run, real run, verification, run history and undo: the steps, printed
    as they happen. Both runs go through the run history as in the function app."""
    config = replace(build_config(info), history=history)
    reader = RegistryReader(info.endpoint, info.ca_file, info.username, info.password)
    try:
        now = datetime.now(timezone.utc)
        inventory = await take_inventory(config.connection, reader, now)
        out.inventory(inventory)
        out.rules(config)
        dry = await _recorded(config, dry_run=True)
        out.report("Step 3 - dry run: the plan, with a reason for every deletion and keep", dry)
        real = await _recorded(config, dry_run=False)
        differences = plan_differences(dry, real)
        verification = await verify_pulls(reader)
        out.verification(verification, differences)
        out.report("Step 5 - the real run's report", real)
        result = DemoResult(info, inventory, dry, real, verification, differences)
        await _undo(config, history, reader, result)
        out.history(result)
    finally:
        await reader.close()
    return result


async def _recorded(config: Config, *, dry_run: bool) -> Report:
    return await run_recorded(
        config.history,
        registry=config.connection.login_server,
        source="demo",
        dry_run=dry_run,
        run=functools.partial(run_purge, config, dry_run=dry_run),
        rules=config.rules,
    )


async def _undo(
    config: Config, history: HistorySettings, reader: RegistryReader, result: DemoResult
) -> None:
    """List the recorded runs, restore the real run, check the restored tags pull."""
    store = history.open()
    try:
        result.runs, _ = await list_records(store, 5)
        record = await read_record(store, result.real_run.run_id or "")
    finally:
        await store.close()
    from purge.registry.acr import open_registry

    registry = open_registry(config.connection)
    try:
        result.restore = await restore_run(record, registry, dry_run=False)
    finally:
        await registry.close()
    for item in result.restore.items:
        if item.status != "restored":
            continue
        try:
            digest, _, _ = await reader.manifest(item.repository, item.tag)
        except PullError as exc:
            result.restored_problems.append(str(exc))
            continue
        if digest != item.digest:
            result.restored_problems.append(
                f"{item.repository}:{item.tag} pulls {digest}, not {item.digest}"
            )
    result.after_restore = await verify_pulls(reader)


class Output:
    """Human output: rich tables and colour on a terminal, plain text in a pipe."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        tty = sys.stdout.isatty()
        self.console = Console(
            file=sys.stdout, width=None if tty else 120, highlight=False, soft_wrap=False
        )

    def say(self, text: str = "", style: str | None = None) -> None:
        if self.enabled:
            self.console.print(text, style=style, markup=False, soft_wrap=True)

    def heading(self, text: str) -> None:
        if self.enabled:
            self.console.print()
            self.console.rule(text, style="bold cyan", align="left")

    def started(self, info: EmulatorInfo) -> None:
        self.heading(
            "ACR purge demo - a local emulated registry; no Azure, nothing leaves 127.0.0.1"
        )
        self.say(f"acr_emulator pid {info.pid} serving {info.endpoint}")
        self.say(f"  data dir {info.data_dir}, CA {info.ca_file}, admin user {info.username}")

    def inventory(self, inventory: dict[str, list[InventoryRow]]) -> None:
        self.heading("Step 1 - what is in the registry")
        if not self.enabled:
            return
        for repository, rows in inventory.items():
            table = Table(title=repository, title_justify="left", title_style="bold")
            for column in ("Tags", "Age", "Digest", "Locked", "Kind"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(
                    ", ".join(short_tag(t) for t in row.tags) or "(untagged)",
                    row.age,
                    short_digest(row.digest),
                    row.locked,
                    row.kind,
                )
            self.console.print(table)

    def rules(self, config: Config) -> None:
        self.heading("Step 2 - the sample rules")
        self.say("As ACR Task command lines (also valid as PURGE_COMMAND, joined by '&&'):")
        for command in SAMPLE_COMMANDS:
            self.say(f"  {command.replace('acr purge', 'acr purge -r {{.Run.Registry}}', 1)}")
        self.say("The same rules as PURGE_RULES:")
        rules = [describe_rule(rule) for rule in config.rules]
        compact = [
            {k: v for k, v in rule.items() if v not in (None, [], False, 0)} for rule in rules
        ]
        self.say(json.dumps(compact, indent=2))
        self.say("Try the same with the CLI, e.g.:", style="dim")
        first = shlex.split(SAMPLE_COMMANDS[0])[2:]
        self.say(
            f"  python -m purge run -r {config.connection.login_server} -u "
            f"{config.connection.username} -p *** --ca-file CA --allowed-host "
            f"{config.connection.login_server} --dry-run {shlex.join(first)}",
            style="dim",
        )

    def report(self, title: str, report: Report) -> None:
        self.heading(title)
        if self.enabled:
            self.console.print(render_text(report, width=self.console.width), markup=False)

    def history(self, result: DemoResult) -> None:
        self.heading("Step 6 - the run history: every real run leaves a record (Azurite here)")
        for run in result.runs:
            self.say(f"  {run['id']}  {run.get('state', '')}  {run.get('summary') or ''}")
        self.say(
            "  (dry runs are not recorded; list them with `python -m purge runs --history ...` "
            "or GET /api/purge/runs)",
            style="dim",
        )
        self.heading("Step 7 - undo: put the deleted tags back where their images still exist")
        restore = result.restore
        if restore is not None and self.enabled:
            self.console.print(restore.render_text(), markup=False, soft_wrap=True)
        after = result.after_restore
        for problem in result.restored_problems + (after.problems if after else []):
            self.say(f"  FAILED: {problem}", style="bold red")
        good = not result.restored_problems and after is not None and after.ok
        self.say(
            "Undo: OK - every restored tag pulls completely, on the digest it had before"
            if good
            else "Undo: FAILED",
            style="bold green" if good else "bold red",
        )

    def verification(self, result: Verification, differences: list[str]) -> None:
        self.heading("Step 4 - verification: every surviving tag still pulls completely")
        self.say(
            f"pulled {result.tags} tags: {result.manifests} manifests (indexes, children, "
            f"referrers: {result.referrers}) and {result.blobs} blobs, each checked against its "
            "digest"
        )
        for problem in result.problems:
            self.say(f"  FAILED: {problem}", style="bold red")
        self.say(
            "Verification: OK - every surviving tag pulls completely"
            if result.ok
            else f"Verification: FAILED ({len(result.problems)} problems)",
            style="bold green" if result.ok else "bold red",
        )
        for difference in differences:
            self.say(f"  {difference}", style="bold red")
        self.say(
            "The real run deleted exactly what the dry run planned"
            if not differences
            else "The real run differs from the dry run's plan",
            style="green" if not differences else "bold red",
        )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = RedactingParser(
        prog="acr-purge demo",
        description="Purge a local emulated registry: dry run, real run, verification.",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of tables"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the emulator running afterwards (until Ctrl-C) to explore it",
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] = ()) -> int:
    """Exit 0 when the purge ran cleanly and verification passed; 1 otherwise; 2 if it can't run."""
    try:
        ns = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    out = Output(enabled=not ns.json)
    try:
        with emulator_process() as info, _history() as history:
            out.started(info)
            result = asyncio.run(run_demo(info, out, history))
            if ns.json:
                print(json.dumps(_result_json(result), indent=2, default=str))
            else:
                _conclude(out, result)
            if ns.keep_running:
                _wait_for_interrupt(info)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


@contextmanager
def _history() -> Iterator[HistorySettings]:
    """Azurite (installed on first use) holds the demo's run history, as a storage account
    holds the function app's."""
    from purge.history.azurite import AzuriteError, azurite

    try:
        with azurite() as storage:
            yield HistorySettings(connection_string=storage.connection_string)
    except AzuriteError as exc:
        raise DemoError(str(exc)) from exc


def _conclude(out: Output, result: DemoResult) -> None:
    real = result.real_run
    out.heading("Done")
    out.say(
        f"Totals: deleted {len(real.deleted_tags)} tags and {len(real.deleted_manifests)} "
        f"manifests, kept {real.kept_count}, {len(real.errors)} errors; estimated space freed "
        f"up to {human_bytes(real.bytes_freed)} (an upper bound)."
    )
    out.say(
        "Demo OK" if result.ok else "Demo FAILED: see above",
        style="bold green" if result.ok else "bold red",
    )


def _wait_for_interrupt(info: EmulatorInfo) -> None:
    print(
        f"The emulator keeps running at {info.endpoint} (user {info.username}, password "
        f"{info.password}, CA {info.ca_file}). Press Ctrl-C to stop it.",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _result_json(result: DemoResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "emulator": {"endpoint": result.info.endpoint, "pid": result.info.pid},
        "inventory": {
            name: [row.to_dict() for row in rows] for name, rows in result.inventory.items()
        },
        "purgeCommand": sample_rules_setting(),
        "purgeRules": [describe_rule(rule) for rule in build_config(result.info).rules],
        "dryRun": result.dry_run.to_dict(),
        "run": result.real_run.to_dict(),
        "verification": result.verification.to_dict(),
        "planDifferences": list(result.plan_differences),
        "runs": result.runs,
        "restore": result.restore.to_dict() if result.restore is not None else None,
        "restoredProblems": list(result.restored_problems),
        "afterRestore": result.after_restore.to_dict() if result.after_restore else None,
    }
