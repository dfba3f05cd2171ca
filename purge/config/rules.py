"""Rules: what to purge, with `acr purge`'s flag semantics (DESIGN.md section 3).

The dataclasses below are what the planner, the settings and the CLI share.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import Any

import regex

from purge import budget
from purge.config.casefold import Unsupported, end_of_class, fold_case
from purge.config.schedule import ScheduleError
from purge.config.schedule import validate as validate_schedule

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
    #: Seconds one match may take (`--filter-timeout-seconds`); None: MATCH_TIMEOUT_SECONDS.
    timeout: float | None = None


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
    #: A manifest this project untagged is deleted no earlier than this after its last tag
    #: went (read from the run history), so that an undo brings back the whole image.
    grace: timedelta | None = None


#: Per-match timeout in seconds. acr purge defaults to 60 s; a purge runs many matches, so a
#: runaway pattern must fail fast. A timeout keeps the item (fail closed) and is reported.
MATCH_TIMEOUT_SECONDS = 2.0


def repository_matches(rule: Rule, repository: str) -> bool:
    """True when any filter's repository pattern matches the whole name."""
    return any(_run(f.repository.fullmatch, repository, f.text, f.timeout) for f in rule.filters)


def filters_for(rule: Rule, repository: str) -> tuple[TagFilter, ...]:
    """The rule's filters whose repository pattern matches the whole name (raises
    MatchTimeout): their tag patterns are the ones `tag_search` tries in that repository."""
    return tuple(
        f for f in rule.filters if _run(f.repository.fullmatch, repository, f.text, f.timeout)
    )


def unmatched_filters(rule: Rule, repositories: Sequence[str]) -> list[TagFilter]:
    """The rule's filters whose repository part matches none of `repositories` (likely typos)."""
    left = list(rule.filters)
    for name in repositories:
        left = [f for f in left if not _run(f.repository.fullmatch, name, f.text, f.timeout)]
        if not left:
            break
    return left


def tag_search(filters: Sequence[TagFilter], tag: str) -> bool:
    """True when any filter's tag pattern finds `tag`, its repository part already matched.

    The planner selects a repository's filters once and then calls this per tag, so that a
    million tags do not each re-match the repository name.
    """
    return any(_run(f.tag.search, tag, f.text, f.timeout) for f in filters)


def protected_by(rule: Rule, tag: str) -> str | None:
    """The `--protect` pattern that protects `tag`, if any."""
    for pattern in rule.protect:
        if _run(pattern.search, tag, pattern.pattern):
            return str(pattern.pattern)
    return None


def _run(method: Any, text: str, source: str, timeout: float | None = None) -> bool:
    """One match, bounded by its timeout and by what is left of the run's budget.

    Regex time counts against the budget: once it is spent, BudgetSpent (not MatchTimeout, which
    keeps one item and goes on) stops the planning. `concurrent=True` releases the GIL while
    matching, so that the event loop goes on serving other repositories' requests while a slow
    pattern runs in a worker thread.
    """
    timeout = MATCH_TIMEOUT_SECONDS if timeout is None else timeout
    left = budget.remaining()
    if left is not None:
        if left <= 0:
            raise budget.BudgetSpent(f"the time budget ran out before matching {source!r}")
        timeout = min(timeout, left)
    try:
        return method(text, timeout=timeout, concurrent=True) is not None
    except TimeoutError as exc:
        if budget.spent():
            raise budget.BudgetSpent(
                f"the time budget ran out while matching {source!r} on {text!r}"
            ) from exc
        raise MatchTimeout(f"regex {source!r} timed out after {timeout:g}s on {text!r}") from exc


# --- Parsing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem of a rule, by the key the user wrote (None: the rule as a whole).

    Shown as `<where the user wrote it> <value>: <detail>` (`--ago '3dfoo': expected ...`,
    `PURGE_RULES[0].keep -1: must be ...`), or without the value when it is not a readable one.
    """

    key: str | None  # PURGE_RULES spelling: "ago", "maxDeletions", ...
    detail: str
    index: int | None = None  # position in a list value (filter, protect)
    value: str | None = None  # the value as written (repr), shown after the key

    def where(self, label: str) -> str:
        """`label '3dfoo': detail` when the value is known, else `label: detail`."""
        return f"{label} {self.value}: {self.detail}" if self.value else f"{label}: {self.detail}"


#: The acr purge flag of each PURGE_RULES key, to name a problem as a command line wrote it.
FLAG_OF_KEY = {
    "name": "--name",
    "filter": "--filter",
    "ago": "--ago",
    "keep": "--keep",
    "untagged": "--untagged",
    "untaggedOnly": "--untagged-only",
    "includeLocked": "--include-locked",
    "protect": "--protect",
    "maxDeletions": "--max-deletions",
    "schedule": "--schedule",
    "dryRun": "--dry-run",
    "filterTimeoutSeconds": "--filter-timeout-seconds",
    "grace": "--grace",
}


def key_path(problem: Problem) -> str:
    index = f"[{problem.index}]" if problem.index is not None else ""
    return f"{problem.key}{index}"


class RuleProblems(RuleError):
    """Every problem found in one rule, so that a user fixes them all in one go."""

    def __init__(self, rule: str, problems: list[Problem] | list[str]) -> None:
        self.rule = rule
        self.found = [p if isinstance(p, Problem) else Problem(None, p) for p in problems]
        #: The problems named by their PURGE_RULES keys (`ago '3dfoo': expected ...`).
        self.problems = self.render(key_path)
        super().__init__(f"rule {rule!r}: " + "; ".join(self.problems))

    def render(self, where: Callable[[Problem], str], rule_wide: str = "") -> list[str]:
        """Each problem under the label `where` gives it; rule-wide ones after `rule_wide`."""
        return [p.where(where(p)) if p.key else rule_wide + p.detail for p in self.found]

    def under(self, prefix: str) -> list[str]:
        """The problems named under `prefix`: `PURGE_RULES[0].ago '3dfoo': expected ...`."""
        return self.render(lambda p: f"{prefix}.{key_path(p)}", f"{prefix} ({self.rule}): ")

    def as_flags(self) -> list[str]:
        """The problems named by acr purge's flags (`--ago '3dfoo': expected ...`)."""
        return self.render(lambda p: FLAG_OF_KEY.get(str(p.key), str(p.key)))


#: `regex` flags for every user pattern. V0 reads patterns as `re`, Go and .NET users expect
#: (`[` is literal inside a class, POSIX `[[:alpha:]]` works). Its `(?i)` folds case where acr
#: purge's regexp2 lowercases; `fold_case` makes the two agree on ASCII names (casefold.py).
#: `\d \w \s \b` stay ASCII-only, as in regexp2: `ascii_shorthands` rewrites them.
REGEX_FLAGS = regex.V0

#: `\d \w \s` inside a character class, spelled out in ASCII.
_ASCII_IN_CLASS = {"d": "0-9", "w": "A-Za-z0-9_", "s": "\\t\\n\\x0b\\f\\r "}

#: acr purge caps `--ago` at 150 years; beyond that we refuse instead of capping silently.
MAX_AGO = timedelta(days=150 * 365)

#: Keys of one PURGE_RULES object, in their JSON spelling.
RULE_KEYS = (
    "name",
    "filter",
    "ago",
    "keep",
    "untagged",
    "untaggedOnly",
    "includeLocked",
    "protect",
    "maxDeletions",
    "schedule",
    "dryRun",
    "grace",
)

#: The implicit filter of `--untagged-only` without one: every repository.
MATCH_ALL_FILTER_TEXT = ".*:.*"

_FILTER_FORM = "expected REPOSITORY-REGEX:TAG-REGEX, e.g. 'team/app:^v1\\.' or 'app:.*'"
_RULE_NAME = regex.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", regex.ASCII)


@dataclass(frozen=True)
class UserPattern:
    """A user's regex: `pattern` as written, matched as acr purge matches it (see REGEX_FLAGS)."""

    pattern: str
    compiled: Any  # regex.Pattern[str] of ascii_shorthands(fold_case(pattern))

    def search(self, text: str, timeout: float | None = None, concurrent: bool = False) -> Any:
        return self.compiled.search(text, timeout=timeout, concurrent=concurrent)

    def fullmatch(self, text: str, timeout: float | None = None, concurrent: bool = False) -> Any:
        return self.compiled.fullmatch(text, timeout=timeout, concurrent=concurrent)


def compile_pattern(text: str, what: str) -> UserPattern:
    """Compile a user regex in acr purge's flavour; a RuleError names `what` and the reason.

    The pattern as written is compiled first, so that its syntax errors are reported as the
    user wrote it and never hidden by the `(?i)` rewriting.
    """
    try:
        compiled = regex.compile(ascii_shorthands(text), REGEX_FLAGS)
        folded = fold_case(text)
        if folded != text:
            compiled = regex.compile(ascii_shorthands(folded), REGEX_FLAGS)
        return UserPattern(text, compiled)
    except regex.error as exc:
        raise RuleError(f"{what}: invalid regular expression: {exc}") from exc
    except Unsupported as exc:
        raise RuleError(f"{what}: {exc}") from exc


def ascii_shorthands(text: str) -> str:
    """`text` with `\\d \\w \\s \\b` and their negations ASCII-only; everything else as is.

    Outside a character class each becomes a scoped `(?a:...)`; inside one `\\d \\w \\s`
    become ASCII ranges. `\\D \\W \\S` inside a class keep their Unicode meaning, which
    differs only on non-ASCII characters, and tag and repository names are ASCII.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            letter = text[i + 1]
            out.append(f"(?a:\\{letter})" if letter in "dDwWsSbB" else text[i : i + 2])
            i += 2
        elif ch == "[":
            end = end_of_class(text, i)
            out.append(_ascii_class(text[i:end]))
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _ascii_class(part: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(part):
        if part[i] == "\\" and i + 1 < len(part):
            letter = part[i + 1]
            out.append(_ASCII_IN_CLASS.get(letter, part[i : i + 2]))
            i += 2
        else:
            out.append(part[i])
            i += 1
    return "".join(out)


def split_filter(text: str) -> tuple[str, str]:
    """Split `REPO:TAG` at the one colon outside groups and character classes.

    A scanner rather than acr purge's lookaround regex: it also understands escapes, nested
    groups and POSIX classes, so `(?i:x)`, `(?:a|b)`, `(?<=a:)` and `[[:alpha:]]` never split.
    """
    colons: list[int] = []
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i = end_of_class(text, i)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif ch == ":" and depth == 0:
            colons.append(i)
        i += 1
    if len(colons) != 1:
        found = "no colon" if not colons else f"{len(colons)} colons"
        if depth > 0:
            found += " (an unclosed '(' hides everything after it)"
        raise RuleError(
            f"{text!r}: {found} outside regex groups and character classes; {_FILTER_FORM}"
        )
    repo, tag = text[: colons[0]], text[colons[0] + 1 :]
    if not repo or not tag:
        part = "repository" if not repo else "tag"
        raise RuleError(f"{text!r}: the {part} part is empty; {_FILTER_FORM}")
    return repo, tag


def parse_filter(text: str, timeout: float | None = None) -> TagFilter:
    """`--filter REPO:TAG`: the repository must match the whole name, the tag is searched."""
    if not isinstance(text, str):
        raise RuleError(f"{text!r}: must be a string; {_FILTER_FORM}")
    repo, tag = split_filter(text)
    return TagFilter(
        text=text,
        repository=compile_pattern(repo, f"{text!r}: the repository part {repo!r}"),
        tag=compile_pattern(tag, f"{text!r}: the tag part {tag!r}"),
        timeout=timeout,
    )


def parse_protect(text: str) -> Any:
    """`--protect REGEX`: searched in tag names; a matching tag is never deleted."""
    if not isinstance(text, str) or not text:
        raise RuleError(f"{text!r}: must be a non-empty regular expression string")
    return compile_pattern(text, f"{text!r}")


_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign, as Go accepts
    "μs": 1_000,  # U+03BC Greek mu, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_NANOS_PER_DAY = 86_400 * 1_000_000_000
_MAX_AGO_NANOS = MAX_AGO.days * _NANOS_PER_DAY
_DAYS_PREFIX = regex.compile(r"([0-9]+)d(.*)", regex.ASCII | regex.DOTALL)
_GO_TERM = regex.compile(r"([0-9]*\.?[0-9]*)([^0-9.]*)", regex.ASCII)
_DURATION_FORM = (
    "expected [N]d[GO-DURATION]: whole days first, then Go units h, m, s, ms, us, ns "
    "(e.g. 30d, 1d3h6m, 15m, 1.5h, 0d)"
)


def parse_duration(text: str) -> timedelta:
    """`--ago`: `[N]d` then an optional Go duration. Malformed or out of range: RuleError.

    acr purge turns some malformed values into its 150-year cap (nothing deleted) and negative
    ones into a future cutoff (everything deleted); both are refused here.
    """
    if not isinstance(text, str):
        raise RuleError(f"{text!r}: must be a string; {_DURATION_FORM}")
    raw = text.strip()
    if not raw:
        raise RuleError(f"{text!r}: is empty; {_DURATION_FORM}")
    if raw[0] in "+-":
        raise RuleError(
            f"{text!r}: a sign is not allowed (ago always looks back); {_DURATION_FORM}"
        )
    days, rest = 0, raw
    prefix = _DAYS_PREFIX.fullmatch(raw)
    if prefix:
        days_text, rest = prefix.group(1), prefix.group(2)
        if len(days_text) > 9:
            raise RuleError(f"{text!r}: exceeds the maximum of {MAX_AGO.days} days")
        days = int(days_text)
    elif "d" in raw:
        raise RuleError(f"{text!r}: days must be a whole number first; {_DURATION_FORM}")
    total = days * _NANOS_PER_DAY + (_parse_go_duration(rest, text) if rest else Fraction(0))
    if total > _MAX_AGO_NANOS:
        raise RuleError(f"{text!r}: exceeds the maximum of {MAX_AGO.days} days")
    return timedelta(microseconds=round(total / 1000))


def _parse_go_duration(rest: str, text: str) -> Fraction:
    """Go's time.ParseDuration grammar without a sign: (number unit)+, or a bare `0`."""
    if rest == "0":
        return Fraction(0)
    nanos = Fraction(0)
    pos = 0
    while pos < len(rest):
        term = _GO_TERM.match(rest, pos)
        assert term is not None  # both groups may be empty, so it always matches
        number, unit = term.group(1), term.group(2)
        if number in ("", "."):
            raise RuleError(f"{text!r}: expected a number at {rest[pos:]!r}; {_DURATION_FORM}")
        if not unit:
            raise RuleError(f"{text!r}: {number!r} has no unit; {_DURATION_FORM}")
        if unit not in _NANOS_PER_UNIT:
            hint = " (days come first, once; weeks and years: write days, e.g. 7d)"
            hint = hint if unit in ("d", "w", "y") else ""
            raise RuleError(f"{text!r}: unknown unit {unit!r}{hint}; {_DURATION_FORM}")
        if len(number) > 40:
            raise RuleError(f"{text!r}: exceeds the maximum of {MAX_AGO.days} days")
        nanos += Fraction(number) * _NANOS_PER_UNIT[unit]
        if nanos > _MAX_AGO_NANOS:
            raise RuleError(f"{text!r}: exceeds the maximum of {MAX_AGO.days} days")
        pos = term.end()
    return nanos


def format_duration(value: timedelta) -> str:
    """The `--ago` spelling of a duration (`30d`, `1d3h6m`, `15m`, `0d`): parse_duration reads
    it back exactly. Days are left out of a duration under one day, as people write it."""
    if value < timedelta(0):
        return "-" + format_duration(-value)
    micros = value // timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds = Fraction(micros, 1_000_000)
    text = f"{days}d" if days or (not micros and not hours and not minutes) else ""
    if hours:
        text += f"{hours}h"
    if minutes:
        text += f"{minutes}m"
    if seconds:
        text += f"{float(seconds):f}".rstrip("0").rstrip(".") + "s"
    return text


def parse_max_deletions(value: str | int) -> MaxDeletions:
    """`--max-deletions N` (count >= 0) or `P%` (0 < P <= 100)."""
    form = "expected a whole number >= 0 or a percentage like '10%' (0 < P <= 100)"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RuleError(f"{value!r}: {form}")
    if isinstance(value, int):
        if value < 0:
            raise RuleError(f"{value!r}: must not be negative; {form}")
        return MaxDeletions(count=value)
    text = value.strip()
    if text.endswith("%"):
        number = text[:-1].strip()
        if not regex.fullmatch(r"[0-9]+(\.[0-9]+)?", number, regex.ASCII):
            raise RuleError(f"{value!r}: {form}")
        percent = float(number)
        if not 0 < percent <= 100:
            raise RuleError(f"{value!r}: percentage out of range; {form}")
        return MaxDeletions(percent=percent)
    if not regex.fullmatch(r"[0-9]+", text, regex.ASCII):
        raise RuleError(f"{value!r}: {form}")
    return MaxDeletions(count=int(text))


def valued(key: str, value: Any, message: str, index: int | None = None) -> Problem:
    """A Problem about `value`; a leading `'value': ` in `message` moves to the value."""
    shown = repr(value)
    return Problem(key, message.removeprefix(f"{shown}: "), index, shown)


def make_rule(
    name: str,
    *,
    filters: Sequence[str] = (),
    ago: str | timedelta | None = None,
    keep: int = 0,
    untagged: bool = False,
    untagged_only: bool = False,
    include_locked: bool = False,
    protect: Sequence[str] = (),
    max_deletions: str | int | MaxDeletions | None = None,
    schedule: str | None = None,
    dry_run: bool | None = None,
    filter_timeout: float | None = None,
    grace: str | timedelta | None = None,
) -> Rule:
    """Build a Rule from flag-like values, checking each and their combination.

    Raises RuleProblems listing every problem, each by the key it concerns. `--untagged-only`
    without a filter gets the match-all filter, so the matching helpers need no special case.
    """
    problems: list[Problem] = []
    timeout = filter_timeout

    def attempt(key: str, parse: Any, value: Any, index: int | None = None) -> Any:
        try:
            return parse(value)
        except RuleError as exc:
            problems.append(valued(key, value, str(exc), index))
            return None

    if not isinstance(name, str) or not _RULE_NAME.fullmatch(name):
        problems.append(
            valued(
                "name",
                name,
                "1-64 characters, letters, digits, '.', '_' or '-', starting with a letter or "
                "digit",
            )
        )
    if isinstance(filters, str) or isinstance(protect, str):
        problems.append(
            Problem(None, "filters and protect must be lists of strings, not one string")
        )
        filters, protect = (), ()
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        problems.append(valued("filterTimeoutSeconds", timeout, "must be a number of seconds > 0"))
        timeout = None
    parsed_filters = tuple(
        f
        for f in (
            attempt("filter", lambda t: parse_filter(t, timeout), text, i)
            for i, text in enumerate(filters)
        )
        if f
    )
    if untagged_only and not filters:
        parsed_filters = (parse_filter(MATCH_ALL_FILTER_TEXT, timeout),)
    elif not filters:
        problems.append(
            Problem(
                None,
                "needs at least one filter (REPOSITORY-REGEX:TAG-REGEX); only untaggedOnly "
                "(--untagged-only) may leave it out",
            )
        )
    if isinstance(ago, timedelta):
        parsed_ago: timedelta | None = ago
        if not timedelta(0) <= ago <= MAX_AGO:
            problems.append(valued("ago", ago, f"must be between 0 and {MAX_AGO.days} days"))
    else:
        parsed_ago = DEFAULT_AGO if ago is None else attempt("ago", parse_duration, ago)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        problems.append(valued("keep", keep, "must be a whole number >= 0"))
    if untagged and untagged_only:
        problems.append(
            Problem(
                None, "untagged and untaggedOnly (--untagged, --untagged-only) exclude each other"
            )
        )
    parsed_protect = tuple(
        p for p in (attempt("protect", parse_protect, t, i) for i, t in enumerate(protect)) if p
    )
    parsed_max = (
        max_deletions
        if max_deletions is None or isinstance(max_deletions, MaxDeletions)
        else attempt("maxDeletions", parse_max_deletions, max_deletions)
    )
    parsed_grace = grace if not isinstance(grace, str) else attempt("grace", parse_duration, grace)
    if parsed_grace is not None and parsed_grace <= timedelta(0):
        problems.append(
            valued("grace", grace, "must be longer than 0 (e.g. '7d'); leave it out for no grace")
        )
        parsed_grace = None
    if parsed_grace is not None and not (untagged or untagged_only):
        problems.append(
            Problem(
                "grace",
                "only delays the deletion of untagged manifests: it needs untagged or "
                "untaggedOnly (--untagged, --untagged-only)",
            )
        )
    if schedule is not None:
        try:
            validate_schedule(schedule)
        except ScheduleError as exc:
            problems.append(Problem("schedule", str(exc)))
    if problems:
        raise RuleProblems(str(name), problems)
    assert parsed_ago is not None
    return Rule(
        name=name,
        filters=parsed_filters,
        ago=parsed_ago,
        keep=keep,
        untagged=untagged,
        untagged_only=untagged_only,
        include_locked=include_locked,
        protect=parsed_protect,
        max_deletions=parsed_max,
        schedule=schedule.strip() if schedule is not None else None,
        dry_run=dry_run,
        grace=parsed_grace,
    )


def default_rule_name(index: int) -> str:
    """`rule-1`, `rule-2`, ... for the 0-based position of a rule that has no name."""
    return f"rule-{index + 1}"


def rule_from_mapping(obj: Any, index: int) -> Rule:
    """One PURGE_RULES object (0-based `index` in the array) -> Rule; RuleProblems lists all."""
    name = default_rule_name(index)
    if not isinstance(obj, Mapping):
        raise RuleProblems(name, [f"must be a JSON object, got {type(obj).__name__}"])
    if "name" in obj:
        name = obj["name"] if isinstance(obj["name"], str) else name
    problems: list[Problem] = []
    for key in obj:
        if key not in RULE_KEYS:
            problems.append(
                Problem(None, f"unknown key {key!r}{did_you_mean(str(key), RULE_KEYS)}")
            )

    def present(key: str, label: str) -> bool:
        """False when the key is absent; `null` is an error, never a way to drop a guard."""
        if key not in obj:
            return False
        if obj[key] is None:
            problems.append(
                Problem(key, f"null is not allowed; give {label}, or leave the key out")
            )
            return False
        return True

    def typed(key: str, kind: Any, label: str) -> Any:
        if not present(key, label):
            return None
        value = obj[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            problems.append(Problem(key, f"must be {label}, got {json_type(value)} {value!r}"))
            return None
        return value

    def string_list(key: str, example: str) -> list[str]:
        if not present(key, f"a list of strings, e.g. [{example!r}]"):
            return []
        value = obj[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(
                Problem(key, f"must be a list of strings, e.g. [{example!r}], got {value!r}")
            )
            return []
        return value

    raw_name = typed("name", str, "a string")
    filters = string_list("filter", "app:^v1\\.")
    ago = typed("ago", str, "a duration string like '30d'")
    keep = typed("keep", int, "a whole number >= 0")
    flags = {
        k: typed(k, bool, "true or false") for k in ("untagged", "untaggedOnly", "includeLocked")
    }
    protect = string_list("protect", "^latest$")
    max_deletions = typed("maxDeletions", (int, str), "a whole number or a percentage like '10%'")
    schedule = typed("schedule", str, "an NCRONTAB string like '0 0 3 * * *'")
    dry_run = typed("dryRun", bool, "true or false")
    grace = typed("grace", str, "a duration string like '7d'")
    if problems:
        raise RuleProblems(name, problems)
    return make_rule(
        raw_name if raw_name is not None else name,
        filters=filters,
        ago=ago,
        keep=0 if keep is None else keep,
        untagged=bool(flags["untagged"]),
        untagged_only=bool(flags["untaggedOnly"]),
        include_locked=bool(flags["includeLocked"]),
        protect=protect,
        max_deletions=max_deletions,
        schedule=schedule,
        dry_run=dry_run,
        grace=grace,
    )


def duplicate_name_problems(rules: Sequence[Rule]) -> list[str]:
    """One message per rule name used more than once (names select rules in the HTTP API)."""
    seen: dict[str, int] = {}
    for rule in rules:
        seen[rule.name] = seen.get(rule.name, 0) + 1
    return [
        f"rule name {name!r} is used {n} times; names must be unique"
        for name, n in seen.items()
        if n > 1
    ]


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice `word` most likely meant (typos, then case), or None when nothing is close."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def did_you_mean(word: str, choices: Sequence[str], *, or_allowed: bool = True) -> str:
    """' (did you mean 'x'?)' for the closest choice; when none is close, the allowed choices
    (or nothing, for callers that list them anyway)."""
    choice = closest(word, choices)
    if choice:
        return f" (did you mean {choice!r}?)"
    return f" (allowed: {', '.join(choices)})" if or_allowed else ""


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages about JSON input."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object"
