"""`python -m purge runs` and `python -m purge restore`: read run history, undo a run.

Both read the same records the function app writes (`--history` takes a storage connection
string, a blob URL or a local folder; PURGE_HISTORY is used when the flag is absent). Restore
talks to the registry recorded in the run, with the same registry flags as `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from purge.config.hosts import parse_login_server
from purge.history.record import HistoryError
from purge.history.settings import HistorySettings, parse_history


class HistoryInputError(ValueError):
    """Bad history flags; the CLI prints it and exits 2."""


def add_history_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--history",
        metavar="URL|DIR",
        help="where run records are kept: a local folder, an https blob URL or a storage "
        "connection string (default: PURGE_HISTORY)",
    )


def history_from(ns: argparse.Namespace, environ: Mapping[str, str]) -> HistorySettings | None:
    """The CLI records only when asked: --history, else an explicit PURGE_HISTORY."""
    errors: list[str] = []
    value = getattr(ns, "history", None) or environ.get("PURGE_HISTORY")
    found = parse_history(value, environ.get("PURGE_HISTORY_DAYS"), environ, errors, app=False)
    if errors:
        raise HistoryInputError(
            "; ".join(e.replace("PURGE_HISTORY:", "--history:", 1) for e in errors)
        )
    return found


def add_runs_parser(commands: Any) -> None:
    runs = commands.add_parser(
        "runs", help="list recorded runs (newest first), or show one", description=__doc__
    )
    runs.add_argument("run", nargs="?", metavar="RUN_ID", help="show this run's whole record")
    add_history_argument(runs)
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="runs per page (1..100)")
    runs.add_argument(
        "--next", metavar="CURSOR", help="the page after CURSOR (printed below a page)"
    )
    runs.add_argument("--output", choices=("text", "json"), default="text")
    runs.set_defaults(handler=runs_command)


def runs_command(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    history = history_from(ns, environ)
    if history is None:
        raise HistoryInputError("no run history: pass --history URL|DIR or set PURGE_HISTORY")
    if not 1 <= ns.limit <= 100:
        raise HistoryInputError(f"--limit {ns.limit}: expected 1..100")
    try:
        result = asyncio.run(_runs(history, ns.run, ns.limit, ns.next))
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if ns.output == "json" or ns.run:
        print(json.dumps(result, indent=2, default=str))
        return 0
    for run in result["runs"]:
        line = (
            run.get("summary") or run.get("error") or f"{run.get('planned', 0)} deletions planned"
        )
        print(f"{run['id']}  {run.get('state', ''):9} {line}")
    if not result["runs"]:
        print(f"no runs recorded in {history.describe()}")
    if result["next"]:
        print(f"more: --next {result['next']}")
    return 0


async def _runs(
    history: HistorySettings, run_id: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    from purge.history.store import list_records, read_record

    store = history.open()
    try:
        if run_id:
            return (await read_record(store, run_id)).document
        runs, following = await list_records(store, limit, cursor)
        return {"runs": runs, "next": following}
    finally:
        await store.close()


def add_restore_parser(commands: Any) -> None:
    from purge.cli.main import _positive_float

    restore = commands.add_parser(
        "restore",
        help="put back the tags a run deleted (where their manifests still exist)",
        description="Put back every tag RUN_ID deleted whose manifest still exists, on the same "
        "digest; a tag that exists now elsewhere is never moved. Needs push rights (AcrPush).",
    )
    restore.add_argument("run", metavar="RUN_ID")
    add_history_argument(restore)
    restore.add_argument("--dry-run", action="store_true", help="say what would be restored")
    restore.add_argument("-r", "--registry", metavar="REGISTRY", help="default: the run's registry")
    restore.add_argument("-u", "--username", metavar="USER")
    restore.add_argument("-p", "--password", metavar="PASS")
    restore.add_argument("--ca-file", metavar="PEM", help="extra CA bundle to trust")
    restore.add_argument("--allowed-host", action="append", default=[], metavar="HOST")
    restore.add_argument("--output", choices=("text", "json"), default="text")
    restore.add_argument(
        "--time-budget",
        type=_positive_float,
        metavar="S",
        help="start no tag after S s (like `run`); restoring again continues",
    )
    restore.set_defaults(handler=restore_command)


def restore_command(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    from purge.config.settings import Connection

    environ = os.environ if environ is None else environ
    history = history_from(ns, environ)
    if history is None:
        raise HistoryInputError("no run history: pass --history URL|DIR or set PURGE_HISTORY")
    if (ns.username is None) != (ns.password is None):
        raise HistoryInputError("-u/--username and -p/--password go together: give both or neither")
    if ns.ca_file is not None and not os.path.isfile(ns.ca_file):
        raise HistoryInputError(f"--ca-file {ns.ca_file!r}: no such file")

    async def restore() -> Any:
        from purge.history.restore import restore_run
        from purge.history.store import read_record
        from purge.registry.acr import open_registry

        store = history.open()
        try:
            record = await read_record(store, ns.run)
        finally:
            await store.close()
        connection = Connection(
            login_server=parse_login_server(ns.registry or record.registry),  # HostError: bad input
            allowed_hosts=tuple(ns.allowed_host),
            username=ns.username,
            password=ns.password,
            ca_file=ns.ca_file,
        )
        registry = open_registry(connection)
        try:
            return await restore_run(
                record, registry, dry_run=ns.dry_run, budget_seconds=ns.time_budget
            )
        finally:
            await registry.close()

    try:
        result = asyncio.run(restore())
    except HistoryError as exc:
        print(f"error: {exc}; nothing restored", file=sys.stderr)
        return 1
    except ValueError as exc:  # untrusted host, another registry's run
        raise HistoryInputError(f"{exc}; nothing restored") from exc
    if ns.output == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.render_text())
    return 0 if result.ok else 1
