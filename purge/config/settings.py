"""App settings (environment variables) and CLI flags -> a validated Config.

Config is what the service, the registry client and the function handlers read; nothing else
reads the environment.
"""

from __future__ import annotations

import math
import os
import ssl
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from purge.config.command import MAX_CONCURRENCY, parse_purge_command
from purge.config.hosts import (
    AZURE_REGISTRY_SUFFIXES,
    LOGIN_SERVER_FORM,
    HostError,
    is_allowed,
    parse_host_port,
    parse_login_server,
)
from purge.config.rules import (
    Rule,
    RuleError,
    RuleProblems,
    did_you_mean,
    duplicate_name_problems,
    format_duration,
    json_type,
    rule_from_mapping,
)
from purge.config.schedule import ScheduleError
from purge.config.schedule import validate as validate_schedule
from purge.config.secrets import HIDDEN, looks_secret
from purge.config.strict_json import StrictJsonError, loads_strict
from purge.history.settings import HistorySettings, grace_problems, parse_history

#: The Entra ID audience of ACR tokens in Azure's public cloud; PURGE_AUDIENCE sets another.
DEFAULT_AUDIENCE = "https://containerregistry.azure.net"


class ConfigError(ValueError):
    """An invalid configuration. `errors` lists every problem, each naming its setting."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Connection:
    """How to reach and authenticate to the registry. Secrets are excluded from repr."""

    login_server: str  # host[:port], no scheme
    allowed_hosts: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None  # AZURE_CLIENT_ID: user-assigned managed identity
    audience: str | None = None  # ACR AAD audience for sovereign clouds
    ca_file: str | None = None  # extra CA bundle to trust (local emulator, private CAs)
    #: An ACR refresh token (acr purge's `-u ""` or zero-GUID user with `-p <token>`).
    refresh_token: str | None = field(default=None, repr=False)
    #: `n` of catalog pages (acr purge's `--repository-page-size`); None: the largest ACR allows.
    catalog_page_size: int | None = None

    @property
    def endpoint(self) -> str:
        return f"https://{self.login_server}"


@dataclass(frozen=True)
class Config:
    connection: Connection
    rules: tuple[Rule, ...]
    schedule: str | None = None
    dry_run: bool = False
    concurrency: int | None = None  # None: adaptive, up to the engine's default ceiling
    time_budget: float | None = None  # seconds; None: the trigger's default
    #: Where run records go (purge.history); None: history is off.
    history: HistorySettings | None = None


# --- Loading ----------------------------------------------------------------------------------

#: Every PURGE_* setting this app reads; any other PURGE_* name is a typo and an error.
KNOWN_SETTINGS = (
    "PURGE_REGISTRY",
    "PURGE_SCHEDULE",
    "PURGE_RULES",
    "PURGE_COMMAND",
    "PURGE_DRY_RUN",
    "PURGE_CONCURRENCY",
    "PURGE_TIME_BUDGET",
    "PURGE_ALLOWED_HOSTS",
    "PURGE_AUDIENCE",
    "PURGE_CA_FILE",
    "PURGE_USERNAME",
    "PURGE_PASSWORD",
    "PURGE_HISTORY",
    "PURGE_HISTORY_DAYS",
)
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def load_settings(
    environ: Mapping[str, str], *, require_schedule: bool = False, require_rules: bool = True
) -> Config:
    """Validate app settings into a Config; ConfigError lists every problem, by setting.

    An empty value counts as unset (Azure keeps app settings that were cleared). PURGE_SCHEDULE
    is optional here because check-config and the CLI can run without a timer; the timer
    passes `require_schedule=True`. Both PURGE_RULES and PURGE_COMMAND, or neither, is an error
    unless `require_rules=False` (the CLI's `run`, whose flags are the rule).
    """
    errors: list[str] = []

    def get(name: str) -> str | None:
        value = environ.get(name)
        return value.strip() if value is not None and value.strip() else None

    for name in sorted(environ):
        if name.upper().startswith("PURGE_") and name not in KNOWN_SETTINGS:
            errors.append(f"{name}: unknown setting{did_you_mean(name.upper(), KNOWN_SETTINGS)}")

    allowed_hosts = _parse_allowed_hosts(get("PURGE_ALLOWED_HOSTS"), errors)
    login_server = _parse_registry(get("PURGE_REGISTRY"), allowed_hosts, errors)
    schedule = get("PURGE_SCHEDULE")
    if schedule is not None:
        try:
            validate_schedule(schedule)
        except ScheduleError as exc:
            errors.append(f"PURGE_SCHEDULE: {exc}")
    elif require_schedule:
        errors.append("PURGE_SCHEDULE: required for the timer; e.g. '0 0 3 * * *' (03:00 UTC)")
    rules: tuple[Rule, ...] = ()
    if require_rules or get("PURGE_RULES") is not None or get("PURGE_COMMAND") is not None:
        rules = _parse_rules(get("PURGE_RULES"), get("PURGE_COMMAND"), login_server, errors)
    dry_run = _parse_bool("PURGE_DRY_RUN", get("PURGE_DRY_RUN"), False, errors)
    concurrency = _parse_concurrency(get("PURGE_CONCURRENCY"), errors)
    time_budget = _parse_time_budget(get("PURGE_TIME_BUDGET"), errors)
    history = parse_history(get("PURGE_HISTORY"), get("PURGE_HISTORY_DAYS"), environ, errors)
    errors += grace_problems(rules, history, "PURGE_HISTORY")
    audience = _parse_audience(get("PURGE_AUDIENCE"), errors)
    ca_file = get("PURGE_CA_FILE")
    if ca_file is not None and not os.path.isfile(ca_file):
        errors.append(f"PURGE_CA_FILE: {ca_file!r} is not an existing file (a PEM CA bundle)")
    elif ca_file is not None and (problem := ca_bundle_problem(ca_file)):
        errors.append(f"PURGE_CA_FILE: {ca_file!r}: {problem}")
    client_id = get("AZURE_CLIENT_ID")
    if client_id is not None:
        try:
            uuid.UUID(client_id)
        except ValueError:
            errors.append(
                f"AZURE_CLIENT_ID: {client_id!r} is not a GUID (the identity's client id)"
            )
    username, password = get("PURGE_USERNAME"), get("PURGE_PASSWORD")
    if (username is None) != (password is None):
        errors.append("PURGE_USERNAME and PURGE_PASSWORD go together: set both or neither")

    if errors:
        raise ConfigError(errors)
    assert login_server is not None
    return Config(
        connection=Connection(
            login_server=login_server,
            allowed_hosts=allowed_hosts,
            username=username,
            password=password,
            client_id=client_id,
            audience=audience,
            ca_file=ca_file,
        ),
        rules=rules,
        schedule=schedule,
        dry_run=dry_run,
        concurrency=concurrency,
        time_budget=time_budget,
        history=history,
    )


def load_settings_file(path: str | os.PathLike[str], *, require_schedule: bool = False) -> Config:
    """Load a local.settings.json (`{"IsEncrypted": false, "Values": {...}}`) like app settings."""
    where = f"settings file {os.fspath(path)!r}"
    try:
        with open(path, encoding="utf-8") as handle:
            document = loads_strict(handle.read())
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read it: {exc.strerror or exc}"]) from exc
    except (StrictJsonError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{where}: not valid JSON: {exc}"]) from exc
    if not isinstance(document, dict) or not isinstance(document.get("Values"), dict):
        raise ConfigError([f'{where}: expected an object with a "Values" object of settings'])
    if document.get("IsEncrypted") is True:
        raise ConfigError([f"{where}: IsEncrypted is true; decrypt it (func settings decrypt)"])
    values = document["Values"]
    wrong = [k for k, v in values.items() if not isinstance(v, str)]
    if wrong:
        raise ConfigError(
            [f"{k}: must be a string in {where}, got {_shown(k, values[k])}" for k in wrong]
        )
    return load_settings(values, require_schedule=require_schedule)


def ca_bundle_problem(path: str) -> str | None:
    """Why the existing file `path` cannot be a CA bundle, or None: checked before any request,
    so that a wrong file is bad input (exit 2), not a transport error in an incomplete run."""
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"not a PEM CA bundle ({reason})"
    return None


def _shown(name: str, value: Any) -> str:
    """A wrong-typed setting's value for an error message, unless the name looks secret."""
    if looks_secret(name):
        return f"{json_type(value)} {HIDDEN}"
    return repr(value)


def describe_config(config: Config) -> dict[str, Any]:
    """The configuration as JSON-able data for the status endpoint: never a secret."""
    connection = config.connection
    auth: dict[str, str | None]
    if connection.username is not None:
        auth = {"method": "basic", "username": connection.username}
    else:
        auth = {"method": "managed-identity", "clientId": connection.client_id}
    return {
        "registry": connection.login_server,
        "allowedHosts": list(connection.allowed_hosts),
        "auth": auth,
        "audience": connection.audience,
        "caFile": connection.ca_file,
        "schedule": config.schedule,
        "dryRun": config.dry_run,
        "concurrency": config.concurrency,
        "timeBudget": config.time_budget,
        "history": (
            {"location": config.history.describe(), "days": config.history.days}
            if config.history is not None
            else None
        ),
        "rules": [describe_rule(rule) for rule in config.rules],
    }


def describe_rule(rule: Rule) -> dict[str, Any]:
    """One rule in PURGE_RULES's own spelling, so it can be pasted back: unset keys are left
    out, as `null` is refused there."""
    limit = rule.max_deletions
    max_deletions: int | str | None = None
    if limit is not None:
        max_deletions = limit.count if limit.count is not None else f"{limit.percent:g}%"
    described = {
        "name": rule.name,
        "filter": [f.text for f in rule.filters],
        "ago": format_duration(rule.ago),
        "keep": rule.keep,
        "untagged": rule.untagged,
        "untaggedOnly": rule.untagged_only,
        "includeLocked": rule.include_locked,
        "protect": [str(p.pattern) for p in rule.protect],
        "maxDeletions": max_deletions,
        "schedule": rule.schedule,
        "dryRun": rule.dry_run,
        "grace": format_duration(rule.grace) if rule.grace is not None else None,
    }
    return {key: value for key, value in described.items() if value is not None}


def _parse_allowed_hosts(value: str | None, errors: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    hosts = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            hosts.append(parse_host_port(entry))
        except HostError as exc:
            errors.append(f"PURGE_ALLOWED_HOSTS: entry {entry.lower()!r}: {exc}")
    return tuple(hosts)


def _parse_registry(
    value: str | None, allowed_hosts: tuple[str, ...], errors: list[str]
) -> str | None:
    if value is None:
        errors.append(f"PURGE_REGISTRY: required; {LOGIN_SERVER_FORM}")
        return None
    try:
        login_server = parse_login_server(value)
    except HostError as exc:
        errors.append(f"PURGE_REGISTRY: {value!r}: {exc}")
        return None
    if not is_allowed(login_server, allowed_hosts):
        errors.append(
            f"PURGE_REGISTRY: {value!r} is not an Azure registry (host ending in "
            f"{', '.join(AZURE_REGISTRY_SUFFIXES)}) and not in PURGE_ALLOWED_HOSTS; tokens are "
            "only sent to those"
        )
        return None
    return login_server


def _parse_rules(
    rules_json: str | None, command: str | None, registry: str | None, errors: list[str]
) -> tuple[Rule, ...]:
    if rules_json is not None and command is not None:
        errors.append("PURGE_RULES and PURGE_COMMAND are both set; use exactly one of them")
        return ()
    if rules_json is None and command is None:
        errors.append(
            "PURGE_RULES or PURGE_COMMAND: one is required (a JSON array of rules, or "
            "'acr purge ...' command lines)"
        )
        return ()
    if command is not None:
        try:
            rules = parse_purge_command(command, registry)
        except RuleError as exc:
            errors.append(f"PURGE_COMMAND: {exc}")
            return ()
        errors.extend(f"PURGE_COMMAND: {p}" for p in duplicate_name_problems(rules))
        return rules
    assert rules_json is not None
    try:
        items = loads_strict(rules_json)
    except StrictJsonError as exc:
        errors.append(f"PURGE_RULES: not valid JSON: {exc}")
        return ()
    if not isinstance(items, list):
        errors.append(f"PURGE_RULES: must be a JSON array of rule objects, got {json_type(items)}")
        return ()
    if not items:
        errors.append("PURGE_RULES: the array is empty; add at least one rule")
        return ()
    parsed: list[Rule] = []
    for index, item in enumerate(items):
        try:
            parsed.append(rule_from_mapping(item, index))
        except RuleProblems as exc:
            errors.extend(exc.under(f"PURGE_RULES[{index}]"))
        except RuleError as exc:
            errors.append(f"PURGE_RULES[{index}]: {exc}")
    errors.extend(f"PURGE_RULES: {p}" for p in duplicate_name_problems(parsed))
    return tuple(parsed)


def _parse_bool(name: str, value: str | None, default: bool, errors: list[str]) -> bool:
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    errors.append(f"{name}: {value!r} is not a boolean; use true/false, 1/0 or yes/no")
    return default


def _parse_concurrency(value: str | None, errors: list[str]) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_CONCURRENCY:
        errors.append(
            f"PURGE_CONCURRENCY: {value!r}: expected a whole number from 1 to {MAX_CONCURRENCY}"
        )
        return None
    return int(value)


def _parse_time_budget(value: str | None, errors: list[str]) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        errors.append(f"PURGE_TIME_BUDGET: {value!r}: expected a number of seconds > 0, e.g. 540")
        return None
    return seconds


def _parse_audience(value: str | None, errors: list[str]) -> str | None:
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        errors.append(
            f"PURGE_AUDIENCE: {value!r}: expected an https URL such as "
            f"{DEFAULT_AUDIENCE} (the ACR AAD audience of your cloud)"
        )
        return None
    return value
