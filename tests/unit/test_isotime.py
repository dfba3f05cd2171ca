"""ISO timestamps as ACR and the Functions host write them, on every supported Python."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from purge.isotime import parse_utc

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-02-28T18:36:48.8081712Z", datetime(2023, 2, 28, 18, 36, 48, 808171, tzinfo=UTC)),
        ("2023-02-28T18:36:48.80817Z", datetime(2023, 2, 28, 18, 36, 48, 808170, tzinfo=UTC)),
        ("2023-02-28T18:36:48.05", datetime(2023, 2, 28, 18, 36, 48, 50000, tzinfo=UTC)),
        ("2023-02-28T18:36:48Z", datetime(2023, 2, 28, 18, 36, 48, tzinfo=UTC)),
        ("2023-02-28T20:36:48+02:00", datetime(2023, 2, 28, 18, 36, 48, tzinfo=UTC)),
        ("2023-02-28T20:36:48+0200", datetime(2023, 2, 28, 18, 36, 48, tzinfo=UTC)),
        ("2023-02-28 18:36:48", datetime(2023, 2, 28, 18, 36, 48, tzinfo=UTC)),
    ],
)
def test_accepts_what_acr_and_the_host_write(text: str, expected: datetime) -> None:
    assert parse_utc(text) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2023-13-01T00:00:00Z", "2023-02-28", "2023-02-28T18:36Z", None, 5]
)
def test_anything_else_is_none(text: object) -> None:
    assert parse_utc(text) is None
