"""Rules: what to purge, with `acr purge`'s flag semantics (DESIGN.md section 3).

INTERFACE FIRST: the dataclasses below are the contract the planner, settings and CLI share.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

DEFAULT_AGO = timedelta(days=1)


class RuleError(ValueError):
    """A rule, filter, duration or limit is malformed. The message says what and what is allowed."""


class MatchTimeout(RuleError):
    """A regex match ran past its timeout (catastrophic backtracking): fail closed."""


@dataclass(frozen=True)
class TagFilter:
    """One `--filter REPO:TAG`. Repository: whole-name match; tag: unanchored search."""

    text: str
    repository: Any  # regex.Pattern[str], anchored as acr purge anchors it
    tag: Any  # regex.Pattern[str]


@dataclass(frozen=True)
class MaxDeletions:
    """`--max-deletions N` or `P%`: exactly one of count/percent is set."""

    count: int | None = None
    percent: float | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    filters: tuple[TagFilter, ...] = ()
    ago: timedelta = DEFAULT_AGO
    keep: int = 0
    untagged: bool = False
    untagged_only: bool = False
    include_locked: bool = False
    protect: tuple[Any, ...] = ()  # regex.Pattern[str], searched in tag names
    max_deletions: MaxDeletions | None = None
    schedule: str | None = None
    dry_run: bool | None = None  # None: the run's (or PURGE_DRY_RUN's) setting


#: Per-match timeout in seconds. acr purge defaults to 60 s; a purge runs many matches, so a
#: runaway pattern must fail fast. A timeout keeps the item (fail closed) and is reported.
MATCH_TIMEOUT_SECONDS = 2.0


def repository_matches(rule: Rule, repository: str) -> bool:
    """True when any filter's repository pattern matches the whole name."""
    return any(_run(f.repository.fullmatch, repository, f.text) for f in rule.filters)


def tag_matches(rule: Rule, repository: str, tag: str) -> bool:
    """True when a filter whose repository matches also finds its tag pattern in `tag`."""
    return any(
        _run(f.repository.fullmatch, repository, f.text) and _run(f.tag.search, tag, f.text)
        for f in rule.filters
    )


def protected_by(rule: Rule, tag: str) -> str | None:
    """The `--protect` pattern that protects `tag`, if any."""
    for pattern in rule.protect:
        if _run(pattern.search, tag, pattern.pattern):
            return str(pattern.pattern)
    return None


def _run(method: Any, text: str, source: str) -> bool:
    try:
        return method(text, timeout=MATCH_TIMEOUT_SECONDS) is not None
    except TimeoutError as exc:
        raise MatchTimeout(
            f"regex {source!r} timed out after {MATCH_TIMEOUT_SECONDS:g}s on {text!r}"
        ) from exc
