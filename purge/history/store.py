"""Where run records live: a blob container (azure-storage-blob, aio) or a local folder.

Records are named `<inverted start time>-<run id>.json`: the inverted time (10**11 minus the
epoch seconds, zero-padded) makes the storage's own name order newest first, so listing the
latest runs reads one page and never the whole history. Every failure becomes a HistoryError
that names the store and the cause (unreachable, permission denied, missing record).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from purge.history.record import (
    HistoryError,
    RecordError,
    RunRecord,
    check_run_id,
    decode,
    run_started,
)

if TYPE_CHECKING:
    from azure.storage.blob.aio import ContainerClient

CONTAINER = "purge-runs"
_INVERT = 10**11
#: Storage calls fail fast: a run must not wait minutes to learn it cannot record (then it
#: deletes nothing). Two retries cover a dropped connection.
RETRY_TOTAL = 2
CONNECTION_TIMEOUT = 5
READ_TIMEOUT = 20


def record_name(run_id: str) -> str:
    started = run_started(run_id)
    return f"{_INVERT - int(started.timestamp()):011d}-{run_id}.json"


def run_id_of(name: str) -> str | None:
    stem = name.rsplit("/", 1)[-1]
    if not stem.endswith(".json") or "-" not in stem:
        return None
    candidate = stem[: -len(".json")].split("-", 1)[1]
    try:
        return check_run_id(candidate)
    except HistoryError:
        return None


@dataclass(frozen=True)
class Page:
    """Run ids newest first, and the cursor of the next page (None: this was the last)."""

    ids: tuple[str, ...]
    cursor: str | None = None


class Store(Protocol):
    @property
    def location(self) -> str: ...

    async def write(self, run_id: str, data: bytes) -> None: ...

    async def read(self, run_id: str) -> bytes: ...

    async def page(self, limit: int, cursor: str | None = None) -> Page: ...

    async def prune(self, before: datetime) -> int:
        """Remove the records of runs started before `before`; answers how many."""
        ...

    async def close(self) -> None: ...


async def read_record(store: Store, run_id: str) -> RunRecord:
    return decode(check_run_id(run_id), await store.read(run_id))


async def list_records(
    store: Store, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of run overviews, newest first; an unreadable record shows its error."""
    page = await store.page(limit, cursor)

    async def overview(run_id: str) -> dict[str, Any]:
        try:
            return (await read_record(store, run_id)).overview()
        except RecordError as exc:
            return {"id": run_id, "state": "unreadable", "error": str(exc)}

    return list(await asyncio.gather(*map(overview, page.ids))), page.cursor


# ------------------------------------------------------------------------------ local folder


@dataclass
class FolderStore:
    """Records as files in a folder: for the CLI, the demo and laptops (not for Azure)."""

    path: Path

    @property
    def location(self) -> str:
        return f"folder {os.fspath(self.path)!r}"

    async def write(self, run_id: str, data: bytes) -> None:
        target = self.path / record_name(run_id)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            os.replace(partial, target)  # readers never see half a record
        except OSError as exc:
            raise HistoryError(
                f"cannot write run record {run_id!r} to {self.location}: {exc}"
            ) from exc

    async def read(self, run_id: str) -> bytes:
        target = self.path / record_name(run_id)
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise HistoryError(f"no run {run_id!r} in {self.location}") from exc
        except OSError as exc:
            raise HistoryError(f"cannot read run {run_id!r} from {self.location}: {exc}") from exc

    def _names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.path) if run_id_of(n) is not None)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HistoryError(f"cannot list {self.location}: {exc}") from exc

    async def page(self, limit: int, cursor: str | None = None) -> Page:
        names = self._names()
        if cursor is not None:
            names = [n for n in names if n > record_name(cursor)]
        ids = tuple(run_id_of(n) or "" for n in names[:limit])
        return Page(ids, ids[-1] if len(names) > limit else None)

    async def prune(self, before: datetime) -> int:
        removed = 0
        for name in self._names():
            run_id = run_id_of(name)
            if run_id is not None and run_started(run_id) < before:
                try:
                    (self.path / name).unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise HistoryError(f"cannot remove {name} from {self.location}: {exc}") from exc
        return removed

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------- blob container


@dataclass
class BlobStore:
    """Records as block blobs in one container of a storage account."""

    container: ContainerClient
    description: str
    #: Closed with the store (an async credential holds its own HTTP session).
    owned: Sequence[Any] = field(default_factory=tuple)

    @property
    def location(self) -> str:
        return self.description

    async def write(self, run_id: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        name = record_name(run_id)
        try:
            try:
                await self.container.upload_blob(name, data, overwrite=True)
            except ResourceNotFoundError:
                await self._create_container()
                await self.container.upload_blob(name, data, overwrite=True)
        except Exception as exc:
            raise self._error(f"cannot write run record {run_id!r}", exc) from exc

    async def _create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self.container.create_container()

    async def read(self, run_id: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = await self.container.download_blob(record_name(run_id))
            data: bytes = await downloader.readall()
            return data
        except ResourceNotFoundError as exc:
            raise HistoryError(f"no run {run_id!r} in {self.location}") from exc
        except Exception as exc:
            raise self._error(f"cannot read run {run_id!r}", exc) from exc

    async def page(self, limit: int, cursor: str | None = None) -> Page:
        from azure.core.exceptions import ResourceNotFoundError

        ids: list[str] = []
        try:
            pages: Any = self.container.list_blobs(results_per_page=limit).by_page(
                continuation_token=cursor
            )
            async for page in pages:
                async for blob in page:
                    run_id = run_id_of(blob.name)
                    if run_id is not None:
                        ids.append(run_id)
                token = pages.continuation_token
                return Page(tuple(ids), token or None)
        except ResourceNotFoundError:
            return Page(())  # no container yet: no run was recorded
        except Exception as exc:
            raise self._error("cannot list runs", exc) from exc
        return Page(tuple(ids))

    async def prune(self, before: datetime) -> int:
        from azure.core.exceptions import ResourceNotFoundError

        old: list[str] = []
        try:
            async for blob in self.container.list_blobs():
                run_id = run_id_of(blob.name)
                if run_id is not None and run_started(run_id) < before:
                    old.append(blob.name)
            for name in old:
                with contextlib.suppress(ResourceNotFoundError):
                    await self.container.delete_blob(name)
        except ResourceNotFoundError:
            return 0
        except Exception as exc:
            raise self._error("cannot remove old runs", exc) from exc
        return len(old)

    async def close(self) -> None:
        try:
            await self.container.close()
        finally:
            for item in self.owned:
                await item.close()

    def _error(self, what: str, exc: Exception) -> HistoryError:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        where = f"{what} in {self.location}"
        if isinstance(exc, HistoryError):
            return exc
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            return HistoryError(f"{where}: the storage account is unreachable ({exc.message})")
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            code = getattr(exc, "error_code", None) or ""
            return HistoryError(
                f"{where}: permission denied (HTTP {status or 403}{' ' + code if code else ''}); "
                "the identity needs 'Storage Blob Data Contributor' on the account, or a valid "
                "connection string"
            )
        if isinstance(exc, HttpResponseError):
            return HistoryError(f"{where}: HTTP {status}: {exc.reason or exc.message}")
        return HistoryError(f"{where}: {type(exc).__name__}: {exc}")


def _client_options() -> dict[str, Any]:
    from azure.storage.blob.aio import LinearRetry

    return {
        # The SDK's default waits 15 s, then 45 s, ... between tries: too long for a run
        # that must learn quickly that it cannot record (and then deletes nothing).
        "retry_policy": LinearRetry(backoff=1, retry_total=RETRY_TOTAL, random_jitter_range=1),
        "connection_timeout": CONNECTION_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
    }


def blob_store_from_connection_string(
    connection_string: str, container: str = CONTAINER
) -> BlobStore:
    from azure.storage.blob.aio import ContainerClient

    client = ContainerClient.from_connection_string(
        connection_string, container, **_client_options()
    )
    where = f"container {container!r} of {client.url.rsplit('/', 1)[0]}"
    return BlobStore(client, where)


def blob_store_from_url(
    account_url: str, container: str = CONTAINER, *, client_id: str | None = None, managed: bool
) -> BlobStore:
    """A container reached with an Azure AD identity: the managed identity in the app (with
    `client_id` for a user-assigned one), DefaultAzureCredential (az login) for the CLI. A URL
    carrying a SAS (`?sv=...&sig=...`) authenticates by itself."""
    from azure.storage.blob.aio import ContainerClient

    owned: list[Any] = []
    credential: Any = None
    if "sig=" not in account_url:
        if managed:
            from azure.identity.aio import ManagedIdentityCredential

            credential = ManagedIdentityCredential(client_id=client_id)
        else:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
        owned.append(credential)
    base, _, query = account_url.partition("?")
    url = f"{base.rstrip('/')}/{container}" + (f"?{query}" if query else "")
    client = ContainerClient.from_container_url(url, credential=credential, **_client_options())
    return BlobStore(client, f"container {container!r} of {base.rstrip('/')}", owned)


def cutoff(days: int, now: datetime | None = None) -> datetime:
    from datetime import timedelta

    return (now or datetime.now(timezone.utc)) - timedelta(days=days)
