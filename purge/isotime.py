"""ISO 8601 timestamps as ACR and the Functions host write them -> aware UTC datetimes.

Both write up to seven fraction digits (.NET ticks) and `Z`; Python 3.10's `fromisoformat`
takes only three or six digits and no `Z`, so the text is normalised first. A timestamp without
an offset is UTC: ACR's are, and this app evaluates every schedule in UTC.
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
