"""Filter, duration, limit and rule parsing: acr purge's semantics, and clear errors otherwise."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purge.config import rules
from purge.config.rules import (
    MATCH_ALL_FILTER_TEXT,
    MatchTimeout,
    MaxDeletions,
    Rule,
    RuleError,
    RuleProblems,
    duplicate_name_problems,
    filters_for,
    format_duration,
    make_rule,
    parse_duration,
    parse_filter,
    parse_max_deletions,
    parse_protect,
    protected_by,
    repository_matches,
    rule_from_mapping,
    split_filter,
    tag_search,
)

# --- filter splitting ----------------------------------------------------------------------

SPLITS = [
    ("app:.*", ("app", ".*")),
    ("team/app:^v1\\.", ("team/app", "^v1\\.")),
    ("(?:team|ops)/app:latest", ("(?:team|ops)/app", "latest")),
    ("(?i:App):v1", ("(?i:App)", "v1")),
    ("app:(?i:RC)", ("app", "(?i:RC)")),
    ("app:[[:alpha:]]+", ("app", "[[:alpha:]]+")),
    ("[[:alpha:]]+:[[:digit:]]", ("[[:alpha:]]+", "[[:digit:]]")),
    ("app:[:x]", ("app", "[:x]")),
    ("app:[]:]", ("app", "[]:]")),
    ("app:[^]:]", ("app", "[^]:]")),
    ("a\\:b:c", ("a\\:b", "c")),
    ("app:(?<=v):(?=1)", None),  # two top-level colons
    ("app:^(?!dev:).*", ("app", "^(?!dev:).*")),
    ("app:(?<=x:)y", ("app", "(?<=x:)y")),
    ("app:((?:a:b)|c)", ("app", "((?:a:b)|c)")),
    ("app:[\\]:]x", ("app", "[\\]:]x")),
]


@pytest.mark.parametrize(("text", "expected"), SPLITS)
def test_split_filter(text: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(RuleError, match="2 colons"):
            split_filter(text)
    else:
        assert split_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app", "no colon"),
        ("app:", "tag part is empty"),
        (":v1", "repository part is empty"),
        ("a:b:c", "2 colons"),
        ("(?:a):(?:b):c", "2 colons"),
        ("", "no colon"),
        ("(unclosed:v1", "an unclosed"),
    ],
)
def test_split_filter_errors_name_filter_and_form(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as info:
        split_filter(text)
    assert repr(text) in str(info.value)
    assert "REPOSITORY-REGEX:TAG-REGEX" in str(info.value)


# --- matching ------------------------------------------------------------------------------


def tag_matches(rule: Rule, repository: str, tag: str) -> bool:
    """A tag is in scope: a filter of its repository finds it (as the planner asks)."""
    return tag_search(filters_for(rule, repository), tag)


def _rule(*filters: str, protect: tuple[str, ...] = ()) -> rules.Rule:
    return make_rule("t", filters=filters, protect=protect)


MATCHES = [
    # filter, repository, tag, repository matches?, tag matches?
    ("app:.*", "app", "v1", True, True),
    ("app:.*", "app2", "v1", False, False),  # whole-name repository match
    ("app:.*", "team/app", "v1", False, False),
    ("team/.*:.*", "team/app", "x", True, True),
    ("app:v1", "app", "v10", True, True),  # tag search is unanchored
    ("app:^v1$", "app", "v10", True, False),
    ("app:^v1$", "app", "v1", True, True),
    ("a|b:.*", "a", "x", True, True),  # alternation is grouped: no `ax` quirk
    ("a|b:.*", "ax", "x", False, False),
    ("(?:a|b)/c:.*", "b/c", "x", True, True),
    ("(?:a|b)/c:.*", "a", "x", False, False),
    ("(?i:APP):.*", "app", "x", True, True),
    ("app:(?i:RC)", "app", "1.0-rc1", True, True),
    ("app:^[[:alpha:]]+$", "app", "latest", True, True),
    ("app:^[[:alpha:]]+$", "app", "v1", True, False),
    ("app:^(?!release-).*", "app", "release-1", True, False),
    ("app:^(?!release-).*", "app", "dev-1", True, True),
    ("app:(?<=-)rc", "app", "1-rc", True, True),
    ("app:(?<=-)rc", "app", "rc", True, False),
    ("app:^\\d+$", "app", "123", True, True),
    ("app:^\\d+$", "app", "١٢٣", True, False),  # \d is ASCII, as in acr purge
    ("app:^(v)\\1$", "app", "vv", True, True),  # backreferences
]


@pytest.mark.parametrize(("text", "repo", "tag", "repo_ok", "tag_ok"), MATCHES)
def test_matching(text: str, repo: str, tag: str, repo_ok: bool, tag_ok: bool) -> None:
    rule = _rule(text)
    assert repository_matches(rule, repo) is repo_ok
    assert tag_matches(rule, repo, tag) is tag_ok


def test_several_filters_are_ored_per_repository() -> None:
    rule = _rule("app:^dev-", "app:^pr-", "other:.*")
    assert tag_matches(rule, "app", "dev-1")
    assert tag_matches(rule, "app", "pr-2")
    assert not tag_matches(rule, "app", "v1")
    assert tag_matches(rule, "other", "v1")


def test_protect_wins_and_names_its_pattern() -> None:
    rule = _rule("app:.*", protect=("^latest$", "^v\\d"))
    assert protected_by(rule, "latest") == "^latest$"
    assert protected_by(rule, "v2") == "^v\\d"
    assert protected_by(rule, "dev") is None


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("app:(unclosed", "tag part"),
        ("a):v1", "repository part"),
        ("app:[z-a]", "tag part"),
        ("app:*", "tag part"),
        ("app:(?<name", "tag part"),
    ],
)
def test_invalid_regex_names_the_part_and_the_reason(text: str, part: str) -> None:
    with pytest.raises(RuleError, match="invalid regular expression") as info:
        parse_filter(text)
    assert part in str(info.value)


def test_invalid_protect() -> None:
    with pytest.raises(RuleError, match="invalid regular expression"):
        parse_protect("(")
    with pytest.raises(RuleError, match="non-empty"):
        parse_protect("")


def test_catastrophic_backtracking_times_out_and_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `regex` defuses `(a+)+$`, but not an alternation of overlapping branches.
    monkeypatch.setattr(rules, "MATCH_TIMEOUT_SECONDS", 0.05)
    rule = _rule("app:(a|aa)+$")
    started = time.monotonic()
    with pytest.raises(MatchTimeout, match="timed out"):
        tag_matches(rule, "app", "a" * 60 + "b")
    assert time.monotonic() - started < 5
    assert tag_matches(rule, "app", "aaaa")  # the same pattern works on a benign tag


def test_defused_pattern_does_not_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MATCH_TIMEOUT_SECONDS", 0.05)
    assert not tag_matches(_rule("app:^(a+)+$"), "app", "a" * 60 + "b")


# --- durations -----------------------------------------------------------------------------

VALID_DURATIONS = [
    ("30d", timedelta(days=30)),
    ("1d3h6m", timedelta(days=1, hours=3, minutes=6)),
    ("2d3h6m", timedelta(days=2, hours=3, minutes=6)),
    ("15m", timedelta(minutes=15)),
    ("0d", timedelta(0)),
    ("0d30s", timedelta(seconds=30)),
    ("2h", timedelta(hours=2)),
    ("1.5h", timedelta(hours=1, minutes=30)),
    (".5h", timedelta(minutes=30)),
    ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
    ("300ms", timedelta(milliseconds=300)),
    ("10us", timedelta(microseconds=10)),
    ("10µs", timedelta(microseconds=10)),
    ("10μs", timedelta(microseconds=10)),
    ("1000ns", timedelta(microseconds=1)),
    ("0", timedelta(0)),
    ("1d0s", timedelta(days=1)),
    (" 7d ", timedelta(days=7)),
    ("54750d", timedelta(days=54750)),
]


@pytest.mark.parametrize(("text", "expected"), VALID_DURATIONS)
def test_valid_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


BAD_DURATIONS = [
    ("", "empty"),
    ("   ", "empty"),
    ("-1d", "sign"),
    ("+1d", "sign"),
    ("-5m", "sign"),
    ("d", "whole number first"),
    ("1.5d", "whole number first"),
    ("3h2d", "whole number first"),
    ("1d2d", "unknown unit 'd'"),
    ("30", "no unit"),
    ("1d30", "no unit"),
    ("1w", "unknown unit 'w'"),
    ("2y", "unknown unit 'y'"),
    ("2D", "unknown unit 'D'"),
    ("1H", "unknown unit 'H'"),
    ("1hh", "unknown unit 'hh'"),
    ("1e3h", "unknown unit 'e'"),
    ("0x10h", "unknown unit 'x'"),
    ("1d 3h", "expected a number"),
    ("1d-3h", "expected a number"),
    ("h", "expected a number"),
    ("abc", "expected a number"),
    ("..5h", "expected a number"),
    ("1..5h", "no unit"),
    ("١d", "whole number first"),
    ("54751d", "maximum of 54750 days"),
    ("54750d1s", "maximum of 54750 days"),
    ("99999999999999999999d", "maximum of 54750 days"),
    ("10000000h", "maximum of 54750 days"),
    ("9" * 80 + "h", "maximum of 54750 days"),
]


@pytest.mark.parametrize(("text", "message"), BAD_DURATIONS)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("value", [30, None, 1.5, ["30d"]])
def test_duration_must_be_a_string(value: object) -> None:
    with pytest.raises(RuleError, match="must be a string"):
        parse_duration(value)  # type: ignore[arg-type]


# --- max deletions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50", MaxDeletions(count=50)),
        (50, MaxDeletions(count=50)),
        (0, MaxDeletions(count=0)),
        ("10%", MaxDeletions(percent=10.0)),
        ("2.5%", MaxDeletions(percent=2.5)),
        ("100%", MaxDeletions(percent=100.0)),
    ],
)
def test_max_deletions(value: str | int, expected: MaxDeletions) -> None:
    assert parse_max_deletions(value) == expected


@pytest.mark.parametrize(
    "value", ["-1", -1, "0%", "101%", "abc", "", "%", "1.5", "ten%", True, 2.0, "1e3"]
)
def test_bad_max_deletions(value: object) -> None:
    with pytest.raises(RuleError, match="expected a whole number >= 0 or a percentage"):
        parse_max_deletions(value)  # type: ignore[arg-type]


# --- rules from PURGE_RULES objects --------------------------------------------------------


def test_rule_from_mapping_full() -> None:
    rule = rule_from_mapping(
        {
            "name": "builds",
            "filter": ["app:^build-"],
            "ago": "30d",
            "keep": 5,
            "untagged": True,
            "includeLocked": True,
            "protect": ["^latest$"],
            "maxDeletions": "10%",
            "schedule": "0 0 3 * * *",
            "dryRun": False,
        },
        0,
    )
    assert rule.name == "builds"
    assert rule.ago == timedelta(days=30)
    assert rule.keep == 5
    assert rule.untagged and rule.include_locked and not rule.untagged_only
    assert rule.max_deletions == MaxDeletions(percent=10.0)
    assert rule.schedule == "0 0 3 * * *"
    assert rule.dry_run is False
    assert tag_matches(rule, "app", "build-7")
    assert protected_by(rule, "latest") == "^latest$"


def test_rule_defaults() -> None:
    rule = rule_from_mapping({"filter": ["app:.*"]}, 2)
    assert rule.name == "rule-3"
    assert rule.ago == timedelta(days=1)
    assert (rule.keep, rule.untagged, rule.dry_run, rule.max_deletions) == (0, False, None, None)


def test_untagged_only_without_filter_matches_every_repository() -> None:
    rule = rule_from_mapping({"untaggedOnly": True}, 0)
    assert [f.text for f in rule.filters] == [MATCH_ALL_FILTER_TEXT]
    assert repository_matches(rule, "any/repo/name")


BAD_RULES = [
    ({"filter": ["app:.*"], "agoo": "1d"}, "unknown key 'agoo' (did you mean 'ago'?)"),
    ({"filter": ["app:.*"], "untagged_only": True}, "did you mean 'untaggedOnly'?"),
    ({"filter": ["app:.*"], "zzz": 1}, "unknown key 'zzz' (allowed:"),
    ({"filter": "app:.*"}, "filter: must be a list of strings"),
    ({"filter": ["app:.*", 3]}, "filter: must be a list of strings"),
    ({"filter": ["app:.*"], "keep": "3"}, "keep: must be a whole number"),
    ({"filter": ["app:.*"], "keep": -1}, "keep -1: must be a whole number >= 0"),
    ({"filter": ["app:.*"], "keep": True}, "keep: must be a whole number"),
    ({"filter": ["app:.*"], "keep": 1.5}, "keep: must be a whole number"),
    ({"filter": ["app:.*"], "untagged": "true"}, "untagged: must be true or false"),
    ({"filter": ["app:.*"], "dryRun": 1}, "dryRun: must be true or false"),
    ({"filter": ["app:.*"], "ago": 30}, "ago: must be a duration string"),
    ({"filter": ["app:.*"], "ago": "30x"}, "unknown unit 'x'"),
    ({"filter": ["app:.*"], "protect": "^latest$"}, "protect: must be a list of strings"),
    ({"filter": ["app:.*"], "protect": ["("]}, "invalid regular expression"),
    ({"filter": ["app:.*"], "maxDeletions": "200%"}, "percentage out of range"),
    ({"filter": ["app:.*"], "maxDeletions": [1]}, "maxDeletions: must be a whole number"),
    ({"filter": ["app:.*"], "schedule": "0 3 * * *"}, "schedule: '0 3 * * *' has 5 fields"),
    ({"filter": ["app:.*"], "schedule": 5}, "schedule: must be an NCRONTAB string"),
    ({"filter": ["app:.*"], "untagged": True, "untaggedOnly": True}, "exclude each other"),
    ({}, "needs at least one filter"),
    ({"filter": []}, "needs at least one filter"),
    ({"filter": ["app"]}, "no colon"),
    ({"filter": ["app:.*"], "name": ""}, "name '': 1-64 characters"),
    ({"filter": ["app:.*"], "name": "has space"}, "name 'has space'"),
    ({"filter": ["app:.*"], "name": 7}, "name: must be a string"),
]


@pytest.mark.parametrize(("obj", "message"), BAD_RULES)
def test_bad_rules(obj: dict[str, object], message: str) -> None:
    with pytest.raises(RuleProblems) as info:
        rule_from_mapping(obj, 0)
    assert any(message in p for p in info.value.problems), info.value.problems


def test_make_rule_refuses_a_single_string_for_lists() -> None:
    with pytest.raises(RuleProblems, match="lists of strings"):
        make_rule("r", filters="app:.*")


def test_every_problem_of_a_rule_is_listed() -> None:
    with pytest.raises(RuleProblems) as info:
        rule_from_mapping({"filter": ["app"], "ago": "1w", "protect": ["("]}, 0)
    assert len(info.value.problems) == 3


@pytest.mark.parametrize("obj", [["app:.*"], "app:.*", None, 3])
def test_rule_must_be_an_object(obj: object) -> None:
    with pytest.raises(RuleProblems, match="must be a JSON object"):
        rule_from_mapping(obj, 0)


def test_duplicate_names() -> None:
    a = make_rule("same", filters=["a:.*"])
    b = make_rule("same", filters=["b:.*"])
    c = make_rule("other", filters=["c:.*"])
    assert duplicate_name_problems([a, b, c]) == [
        "rule name 'same' is used 2 times; names must be unique"
    ]
    assert duplicate_name_problems([a, c]) == []


# --- properties ----------------------------------------------------------------------------

_ATOMS = st.sampled_from(
    ["a", "b/c", ".*", "\\d+", "\\:", "(?:x:y)", "(?i:Q:)", "[[:alpha:]:]", "[]:]", "(a|b:c)"]
)
_PATTERN = st.lists(_ATOMS, min_size=1, max_size=5).map("".join)


@settings(max_examples=200, deadline=None)
@given(_PATTERN, _PATTERN)
def test_split_finds_the_one_top_level_colon(repo: str, tag: str) -> None:
    assert split_filter(f"{repo}:{tag}") == (repo, tag)


@settings(max_examples=200, deadline=None)
@given(st.timedeltas(min_value=timedelta(0), max_value=rules.MAX_AGO))
def test_format_duration_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value
