"""`POST /api/purge`: request parsing, the run, response shaping; free of azure.functions.

A request that deletes is the most dangerous thing this app does, so parsing is strict: anything
it does not understand (unknown keys, wrong types, duplicate keys, query parameters) is a 400
that says what is wrong, rather than a silently ignored option that turns into a real run.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from purge.config.rules import did_you_mean, json_type
from purge.config.settings import ConfigError, load_settings
from purge.config.strict_json import StrictJsonError, loads_strict
from purge.functions.common import http_budget, log_report
from purge.registry.protocol import RegistryError

log = logging.getLogger("purge.functions")

#: Bodies above this are refused before parsing: a legitimate request is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
#: Keys of the JSON body of `POST /api/purge`.
ALLOWED_KEYS = ("dryRun", "rules")
#: Query parameters the Functions host itself uses (`code` carries the function key).
ALLOWED_QUERY_PARAMETERS = frozenset({"code"})
JSON_CONTENT_TYPE = "application/json"


class BadRequest(ValueError):
    """A request the API refuses (400). `details` lists each problem."""

    def __init__(self, error: str, details: Sequence[str] = ()) -> None:
        super().__init__(error if not details else f"{error}: {'; '.join(details)}")
        self.error = error
        self.details = list(details)


@dataclass(frozen=True)
class PurgeRequest:
    """What `POST /api/purge` asked for. Dry run unless the body says `"dryRun": false`."""

    dry_run: bool = True
    rules: tuple[str, ...] | None = None  # None: every configured rule


@dataclass(frozen=True)
class ApiResponse:
    """A JSON answer: the HTTP status and the body, for the function app to send as is."""

    status: int
    body: Mapping[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.body, indent=2, sort_keys=False, default=str)


def error_response(status: int, error: str, details: Iterable[str] = ()) -> ApiResponse:
    """`{"error": ..., "details": [...]}`: the one shape of every error answer."""
    return ApiResponse(status, {"error": error, "details": list(details)})


def parse_purge_request(
    body: bytes,
    *,
    content_type: str | None = None,
    query: Mapping[str, str] | None = None,
) -> PurgeRequest:
    """Validate the body (and query) of `POST /api/purge`; raise BadRequest on anything odd."""
    _check_query(query or {})
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(
            "request body too large",
            [f"the body has {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted"],
        )
    if not body.strip():
        return PurgeRequest()
    _check_content_type(content_type)
    data = _decode_json(body)
    if not isinstance(data, dict):
        raise BadRequest(
            "request body must be a JSON object",
            [f'got a JSON {json_type(data)}; send e.g. {{"dryRun": true, "rules": ["name"]}}'],
        )
    problems = [_unknown_key_message(key) for key in data if key not in ALLOWED_KEYS]
    dry_run = data.get("dryRun", True)
    if not isinstance(dry_run, bool):
        problems.append(f'"dryRun" must be true or false, got {_describe(dry_run)}')
    rules: tuple[str, ...] | None = None
    if "rules" in data:
        rules, rule_problems = _parse_rule_names(data["rules"])
        problems.extend(rule_problems)
    if problems:
        raise BadRequest("invalid request body", problems)
    return PurgeRequest(dry_run=bool(dry_run), rules=rules)


def _check_query(query: Mapping[str, str]) -> None:
    unknown = sorted(set(query) - ALLOWED_QUERY_PARAMETERS)
    if unknown:
        raise BadRequest(
            "query parameters are not accepted",
            [
                f"unknown query parameter {name!r}: put options in the JSON body "
                f"({', '.join(ALLOWED_KEYS)}); only 'code' (the function key) may be in the URL"
                for name in unknown
            ],
        )


def _check_content_type(content_type: str | None) -> None:
    if content_type is None or not content_type.strip():
        return  # curl without -H, tools that omit it: the body is still parsed strictly
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE and not media_type.endswith("+json"):
        raise BadRequest(
            "unsupported content type",
            [f"Content-Type is {content_type!r}; send {JSON_CONTENT_TYPE!r} with a JSON object"],
        )


def _decode_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not UTF-8", [str(exc)]) from exc
    try:
        return loads_strict(text)
    except StrictJsonError as exc:
        raise BadRequest("malformed JSON", [str(exc)]) from exc


def _parse_rule_names(value: Any) -> tuple[tuple[str, ...] | None, list[str]]:
    if not isinstance(value, list):
        return None, [f'"rules" must be a list of rule names, got {_describe(value)}']
    if not value:
        return None, ['"rules" is empty; omit it to run every configured rule']
    problems = [
        f'"rules"[{index}] must be a non-empty string (a rule name), got {_describe(item)}'
        for index, item in enumerate(value)
        if not isinstance(item, str) or not item.strip()
    ]
    if problems:
        return None, problems
    names = tuple(dict.fromkeys(value))  # a name listed twice runs once
    return names, []


def _unknown_key_message(key: str) -> str:
    """Suggest the key meant (case and typos: `dryrun`), and always list the allowed keys."""
    hint = did_you_mean(key, ALLOWED_KEYS, or_allowed=False)
    return f"unknown key {key!r}{hint}; allowed keys: {', '.join(ALLOWED_KEYS)}"


def _describe(value: Any) -> str:
    shown = json.dumps(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{json_type(value)} {shown}"


async def run_http_purge(
    environ: Mapping[str, str],
    *,
    body: bytes,
    content_type: str | None,
    query: Mapping[str, str],
    now: datetime | None = None,
) -> ApiResponse:
    """`POST /api/purge`: dry run unless asked otherwise, answered within the front-end limit."""
    try:
        request = parse_purge_request(body, content_type=content_type, query=query)
    except BadRequest as exc:
        return error_response(400, exc.error, exc.details)
    try:
        config = load_settings(environ)
    except ConfigError as exc:
        log.error("purge_http: invalid configuration, nothing deleted: %s", "; ".join(exc.errors))
        return error_response(500, "invalid configuration; nothing was deleted", exc.errors)
    from purge.history.journal import run_recorded
    from purge.service import UnknownRule, is_dry_run, run_purge, select_rules

    try:
        rules = select_rules(config, request.rules)  # unknown names: refused before any record
        report = await run_recorded(
            config.history,
            registry=config.connection.login_server,
            source="http",
            dry_run=is_dry_run(config, request.dry_run),
            run=functools.partial(
                run_purge,
                config,
                rules=rules,
                dry_run=request.dry_run,
                budget_seconds=http_budget(config.time_budget),
                now=now,
            ),
            rules=config.rules,
            prune=True,
        )
    except UnknownRule as exc:
        return error_response(400, "unknown rule name", [str(exc)])
    except RegistryError as exc:
        log.error("purge_http: the registry refused or failed: %s", exc)
        return error_response(502, "the registry refused or failed the request", [str(exc)])
    except Exception as exc:
        log.exception("purge_http: the purge failed")
        return error_response(500, "the purge failed", [f"{type(exc).__name__}: {exc}"])
    log_report(report, "purge_http")
    return ApiResponse(200, report.to_dict())
