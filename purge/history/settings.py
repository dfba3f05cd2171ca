"""PURGE_HISTORY and PURGE_HISTORY_DAYS -> where run records go, validated like every setting.

In the function app history is on by default whenever the app has its storage connection
(`AzureWebJobsStorage`, or its identity-based form `AzureWebJobsStorage__accountName` /
`AzureWebJobsStorage__blobServiceUri`, with `__clientId` for a user-assigned identity): every
function app has one, so every real run leaves a record without any set-up. The CLI records
only when asked (`--history`). Values of PURGE_HISTORY:

- unset: the app's storage when it has one, else off;  `off`: no records;
- `on`: the app's storage, and an error when there is none;
- a storage connection string (`AccountName=...;AccountKey=...`, `UseDevelopmentStorage=true`);
- an `https://<account>.blob.core.windows.net` URL (optionally `/container`, optionally a SAS),
  reached with the managed identity in the app and DefaultAzureCredential in the CLI;
- a local folder (an absolute path, or one starting with `.` or `~`): for the CLI and the demo.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from purge.history.store import (
    CONTAINER,
    FolderStore,
    Store,
    blob_store_from_connection_string,
    blob_store_from_url,
)

if TYPE_CHECKING:
    from purge.config.rules import Rule

DEFAULT_DAYS = 90
MAX_DAYS = 3650
_OFF = {"off", "false", "0", "no", "none"}
_ON = {"on", "true", "1", "yes"}


@dataclass(frozen=True)
class HistorySettings:
    """Where records go. Exactly one of `connection_string`, `account_url`, `folder` is set."""

    connection_string: str | None = field(default=None, repr=False)
    account_url: str | None = field(default=None, repr=False)
    folder: Path | None = None
    container: str = CONTAINER
    #: A user-assigned managed identity for identity-based storage (AzureWebJobsStorage__clientId).
    client_id: str | None = None
    #: In the function app: a managed identity; in the CLI: DefaultAzureCredential.
    managed_identity: bool = True
    days: int = DEFAULT_DAYS

    def open(self) -> Store:
        if self.folder is not None:
            return FolderStore(self.folder)
        if self.connection_string is not None:
            return blob_store_from_connection_string(self.connection_string, self.container)
        assert self.account_url is not None
        return blob_store_from_url(
            self.account_url,
            self.container,
            client_id=self.client_id,
            managed=self.managed_identity,
        )

    def describe(self) -> str:
        """Where records go, without secrets (for the status endpoint and check-config)."""
        if self.folder is not None:
            return f"folder {os.fspath(self.folder)}"
        if self.account_url is not None:
            return f"{self.account_url.split('?', 1)[0].rstrip('/')}/{self.container}"
        return f"container {self.container} of the storage connection string"


def parse_history(
    value: str | None,
    days_value: str | None,
    environ: Mapping[str, str],
    errors: list[str],
    *,
    app: bool = True,
) -> HistorySettings | None:
    """The history settings, or None when off; problems are appended to `errors`."""
    days = _parse_days(days_value, errors)
    text = (value or "").strip()
    if not text:
        return _app_storage(environ, days, required=False) if app else None
    if text.lower() in _OFF:
        return None
    if text.lower() in _ON:
        found = _app_storage(environ, days, required=True)
        if found is None:
            errors.append(
                "PURGE_HISTORY: 'on' needs the app's storage connection (AzureWebJobsStorage, "
                "or AzureWebJobsStorage__accountName for a managed identity); none is set"
            )
        return found
    return parse_location(text, days, errors, setting="PURGE_HISTORY", managed=app)


def parse_location(
    text: str, days: int, errors: list[str], *, setting: str, managed: bool
) -> HistorySettings | None:
    """A connection string, a blob URL or a local folder (see the module doc)."""
    if "accountname=" in text.lower() or "usedevelopmentstorage=" in text.lower():
        return HistorySettings(connection_string=text, days=days)
    if text.startswith(("https://", "http://")):
        parts = urlsplit(text)
        if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost"):
            errors.append(f"{setting}: {text.split('?', 1)[0]!r}: storage URLs must be https")
            return None
        segments = [s for s in parts.path.split("/") if s]
        container = CONTAINER
        base = f"{parts.scheme}://{parts.netloc}"
        if parts.hostname in ("127.0.0.1", "localhost") and segments:  # Azurite: /account/...
            base += "/" + segments.pop(0)
        if len(segments) > 1:
            errors.append(f"{setting}: {text.split('?', 1)[0]!r}: expected an account URL or "
                          "an account URL with one container, e.g. "
                          "'https://myaccount.blob.core.windows.net/purge-runs'")  # fmt: skip
            return None
        if segments:
            container = segments[0]
        url = base + (f"?{parts.query}" if parts.query else "")
        return HistorySettings(
            account_url=url, container=container, days=days, managed_identity=managed
        )
    if text.startswith(("/", ".", "~")) or os.path.isdir(text):
        return HistorySettings(folder=Path(text).expanduser(), days=days)
    errors.append(
        f"{setting}: {text!r} is not 'on', 'off', a storage connection string, an "
        "https://<account>.blob.core.windows.net URL or a local folder path"
    )
    return None


def _app_storage(
    environ: Mapping[str, str], days: int, *, required: bool
) -> HistorySettings | None:
    def get(name: str) -> str | None:
        value = environ.get(name)
        return value.strip() if value and value.strip() else None

    connection = get("AzureWebJobsStorage")
    if connection is not None:
        return HistorySettings(connection_string=connection, days=days)
    client_id = get("AzureWebJobsStorage__clientId")
    uri = get("AzureWebJobsStorage__blobServiceUri")
    if uri is not None:
        return HistorySettings(account_url=uri, client_id=client_id, days=days)
    account = get("AzureWebJobsStorage__accountName")
    if account is not None:
        return HistorySettings(
            account_url=f"https://{account}.blob.core.windows.net", client_id=client_id, days=days
        )
    return None


def _parse_days(value: str | None, errors: list[str]) -> int:
    if value is None or not value.strip():
        return DEFAULT_DAYS
    try:
        days = int(value.strip())
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        errors.append(
            f"PURGE_HISTORY_DAYS: {value.strip()!r} is not a whole number of days from 1 to "
            f"{MAX_DAYS} (how long run records are kept; default {DEFAULT_DAYS})"
        )
        return DEFAULT_DAYS
    return days


def grace_problems(
    rules: Sequence[Rule], history: HistorySettings | None, setting: str
) -> list[str]:
    """A grace is read from earlier runs' records: without history, or with records removed
    before the grace ends, it cannot be honoured, so it is a configuration error."""
    from purge.config.rules import format_duration

    problems = []
    for rule in rules:
        if rule.grace is None:
            continue
        grace = format_duration(rule.grace)
        if history is None:
            problems.append(
                f"rule {rule.name!r}: grace {grace} needs run history, which is off ({setting} "
                "is 'off', or there is no storage connection): the grace is read from the "
                "records of earlier runs"
            )
        elif rule.grace > timedelta(days=history.days):
            problems.append(
                f"rule {rule.name!r}: grace {grace} is longer than the {history.days} days run "
                "records are kept (PURGE_HISTORY_DAYS): raise PURGE_HISTORY_DAYS or shorten it"
            )
    return problems
