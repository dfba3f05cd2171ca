"""ISO 8601 timestamps as ACR and the Functions host write them -> aware UTC datetimes.

Both write up to seven fraction digits (.NET ticks) and `Z`; Python 3.10's `fromisoformat`
takes only three or six digits and no `Z`, so the text is normalised first. A timestamp without
an offset is UTC: ACR's are, and this app evaluates every schedule in UTC. A datetime holds
microseconds only, so `parse_ticks` keeps ACR's seventh digit for ordering.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_TIME = re.compile(
    r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:?\d\d)?$", re.ASCII
)


def parse_utc(value: object) -> datetime | None:
    """The aware UTC datetime `value` names, or None when it is not such a timestamp."""
    if not isinstance(value, str):
        return None
    match = _TIME.match(value.strip())
    if not match:
        return None
    base, fraction, zone = match.groups()
    text = base.replace(" ", "T") + ("." + (fraction + "000000")[:6] if fraction else "")
    if zone in (None, "Z", "z"):
        zone = "+00:00"
    elif len(zone) == 5:
        zone = zone[:3] + ":" + zone[3:]
    try:
        return datetime.fromisoformat(text + zone).astimezone(timezone.utc)
    except ValueError:  # e.g. month 13
        return None


#: 100 ns ticks per second: ACR writes seven fraction digits (.NET ticks).
TICKS_PER_SECOND = 10_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_ticks(value: object) -> int | None:
    """100 ns ticks since the Unix epoch, all seven of ACR's fraction digits kept; else None.

    For ordering: tags 400 ns apart tie as datetimes, and `--keep` must still keep the newer
    one, as acr purge (which sorts by the registry's full-precision time) does.
    """
    moment = parse_utc(value)
    if moment is None:
        return None
    match = _TIME.match(str(value).strip())
    assert match is not None  # parse_utc matched the same text
    digits = ((match.group(2) or "") + "0000000")[:7]
    whole = moment.replace(microsecond=0) - _EPOCH
    return (whole.days * 86_400 + whole.seconds) * TICKS_PER_SECOND + int(digits)
