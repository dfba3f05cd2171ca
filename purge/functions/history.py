"""The HTTP side of run history: `GET /api/purge/runs[/{id}]` and `POST /api/purge/restore`.

Each function takes the app settings and the request's parts and answers an ApiResponse, so
that the function app's handlers stay one call each. The restore endpoint is a dry run unless
the body says `"dryRun": false`, like `POST /api/purge`, and has the same time budget: it
answers `"complete": false` with the tags it did not start, and calling again continues.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from purge.config.settings import Config, ConfigError, load_settings
from purge.functions.common import http_budget
from purge.functions.http import (
    MAX_BODY_BYTES,
    ApiResponse,
    BadRequest,
    _check_content_type,
    _decode_json,
    _describe,
    error_response,
)
from purge.history.record import HistoryError, RecordError, check_run_id
from purge.history.settings import HistorySettings
from purge.history.store import list_records, read_record

log = logging.getLogger("purge.history")

DEFAULT_PAGE = 20
MAX_PAGE = 100
RESTORE_KEYS = ("run", "dryRun")


@dataclass(frozen=True)
class RestoreRequest:
    run: str
    dry_run: bool = True


def _history(
    environ: Mapping[str, str],
) -> tuple[Config | None, HistorySettings | None, ApiResponse | None]:
    try:
        config = load_settings(environ)
    except ConfigError as exc:
        return None, None, error_response(500, "invalid configuration", exc.errors)
    if config.history is None:
        return (
            config,
            None,
            error_response(
                404,
                "run history is off",
                ["PURGE_HISTORY is 'off', or the app has no AzureWebJobsStorage connection"],
            ),
        )
    return config, config.history, None


def _page_query(query: Mapping[str, str]) -> tuple[int, str | None]:
    unknown = sorted(set(query) - {"code", "limit", "next"})
    problems = [f"unknown query parameter {name!r}; allowed: limit, next" for name in unknown]
    limit = DEFAULT_PAGE
    if "limit" in query:
        text = query["limit"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
            problems.append(f"'limit' must be a whole number from 1 to {MAX_PAGE}, got {text!r}")
        else:
            limit = int(text)
    if problems:
        raise BadRequest("invalid query", problems)
    return limit, query.get("next") or None


async def runs_response(environ: Mapping[str, str], query: Mapping[str, str]) -> ApiResponse:
    """`GET /api/purge/runs?limit=N&next=CURSOR`: run overviews, newest first."""
    try:
        limit, cursor = _page_query(query)
    except BadRequest as exc:
        return error_response(400, exc.error, exc.details)
    _, history, refused = _history(environ)
    if history is None:
        assert refused is not None
        return refused
    store = history.open()
    try:
        runs, following = await list_records(store, limit, cursor)
    except HistoryError as exc:
        return error_response(502, "run history could not be read", [str(exc)])
    finally:
        await store.close()
    return ApiResponse(200, {"runs": runs, "next": following})


async def run_response(environ: Mapping[str, str], run_id: str) -> ApiResponse:
    """`GET /api/purge/runs/{id}`: the whole record (report and write-ahead plan)."""
    try:
        check_run_id(run_id)
    except HistoryError as exc:
        return error_response(400, "malformed run id", [str(exc)])
    _, history, refused = _history(environ)
    if history is None:
        assert refused is not None
        return refused
    store = history.open()
    try:
        record = await read_record(store, run_id)
    except RecordError as exc:
        return error_response(500, "the run record is unreadable", [str(exc)])
    except HistoryError as exc:
        status = 404 if str(exc).startswith("no run") else 502
        return error_response(
            status,
            "run not found" if status == 404 else "run history could not be read",
            [str(exc)],
        )
    finally:
        await store.close()
    return ApiResponse(200, record.document)


def parse_restore_request(
    body: bytes, content_type: str | None, query: Mapping[str, str]
) -> RestoreRequest:
    unknown = sorted(set(query) - {"code"})
    if unknown:
        raise BadRequest(
            "query parameters are not accepted", [f"unknown query parameter {n!r}" for n in unknown]
        )
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest("request body too large", [f"at most {MAX_BODY_BYTES} bytes"])
    _check_content_type(content_type)
    data = _decode_json(body) if body.strip() else None
    if not isinstance(data, dict):
        raise BadRequest(
            "request body must be a JSON object",
            ['send e.g. {"run": "20261202T030000Z-a1b2c3", "dryRun": true}'],
        )
    problems = [
        f"unknown key {key!r}; allowed keys: {', '.join(RESTORE_KEYS)}"
        for key in data
        if key not in RESTORE_KEYS
    ]
    run = data.get("run")
    if not isinstance(run, str):
        problems.append(f'"run" must be a run id (string), got {_describe(run)}')
    else:
        try:
            check_run_id(run)
        except HistoryError as exc:
            problems.append(str(exc))
    dry_run = data.get("dryRun", True)
    if not isinstance(dry_run, bool):
        problems.append(f'"dryRun" must be true or false, got {_describe(dry_run)}')
    if problems:
        raise BadRequest("invalid request body", problems)
    assert isinstance(run, str)
    return RestoreRequest(run, dry_run)


async def restore_response(
    environ: Mapping[str, str], *, body: bytes, content_type: str | None, query: Mapping[str, str]
) -> ApiResponse:
    """`POST /api/purge/restore` with `{"run": ID, "dryRun": true|false}` (dry run by default)."""
    try:
        request = parse_restore_request(body, content_type, query)
    except BadRequest as exc:
        return error_response(400, exc.error, exc.details)
    config, history, refused = _history(environ)
    if history is None or config is None:
        assert refused is not None
        return refused
    from purge.history.restore import RecordMismatch, restore_run
    from purge.registry.acr import open_registry

    store = history.open()
    try:
        record = await read_record(store, request.run)
    except RecordError as exc:
        return error_response(500, "the run record is unreadable; nothing restored", [str(exc)])
    except HistoryError as exc:
        status = 404 if str(exc).startswith("no run") else 502
        return error_response(status, "run not found; nothing restored", [str(exc)])
    finally:
        await store.close()
    registry = open_registry(config.connection, max_concurrency=config.concurrency)
    try:
        result = await restore_run(
            record,
            registry,
            dry_run=request.dry_run,
            budget_seconds=http_budget(config.time_budget),  # the purge endpoint's budget
        )
    except RecordMismatch as exc:
        return error_response(
            409, "the run belongs to another registry; nothing restored", [str(exc)]
        )
    finally:
        await registry.close()
    log.log(
        logging.INFO if result.complete else logging.WARNING,
        "purge restore: %s",
        result.summary_line(),
    )
    return ApiResponse(200, result.to_dict())


async def last_run(history: HistorySettings | None) -> dict[str, Any] | None:
    """The newest run's overview for `GET /api/purge/status`; an error text if unreadable."""
    if history is None:
        return None
    store = history.open()
    try:
        runs, _ = await list_records(store, 1)
    except HistoryError as exc:
        return {"error": str(exc)}
    finally:
        await store.close()
    return runs[0] if runs else {}
