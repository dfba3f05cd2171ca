"""One strict JSON reader for everything an operator or a caller writes (settings, HTTP body).

`json.loads` takes the last of duplicate keys (`"ago":"3650d","ago":"0d"` deleted everything),
reads `NaN`, raises ValueError on an integer of 5,000 digits (Python 3.11+) and RecursionError
on arrays nested 20,000 deep. Here each of these is a StrictJsonError that says what is wrong,
the same on every supported Python version.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Digits of the longest integer accepted: far above any count or size in a rule, far below
#: Python's int/str conversion limit (4,300 digits on 3.11+).
MAX_INTEGER_DIGITS = 20
#: Levels of nesting accepted: rules are three deep (array, object, list of strings).
MAX_DEPTH = 64


class StrictJsonError(ValueError):
    """The text is not JSON, or is JSON this app refuses. The message says which and where."""


def loads_strict(text: str) -> Any:
    """Parse `text`; StrictJsonError on malformed JSON, duplicate keys, NaN, huge or deep values."""
    _check_depth(text)
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise StrictJsonError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # a backstop: _check_depth refuses deep nesting first
        raise StrictJsonError(f"nested too deeply (at most {MAX_DEPTH} levels)") from None


def _check_depth(text: str) -> None:
    """Refuse nesting beyond MAX_DEPTH before the decoder recurses into it."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise StrictJsonError(f"nested too deeply (at most {MAX_DEPTH} levels)")
        elif char in "]}":
            depth -= 1


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError(f"key {key!r} appears more than once")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise StrictJsonError(
            f"an integer of {digits} digits (at most {MAX_INTEGER_DIGITS} are accepted)"
        )
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"a number too large: {text[:40]}")
    return value
