"""`acr purge ...` command lines (PURGE_COMMAND, ACR Task --cmd) and the shared CLI flags."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from purge.config.command import (
    add_rule_arguments,
    make_parser,
    parse_purge_command,
    rule_from_namespace,
    split_commands,
)
from purge.config.rules import (
    MaxDeletions,
    Rule,
    RuleError,
    filters_for,
    protected_by,
    repository_matches,
    tag_search,
)

REGISTRY = "myreg.azurecr.io"


def tag_matches(rule: Rule, repository: str, tag: str) -> bool:
    """A tag is in scope: a filter of its repository finds it (as the planner asks)."""
    return tag_search(filters_for(rule, repository), tag)


def test_single_command_with_every_acr_purge_flag() -> None:
    (rule,) = parse_purge_command(
        "acr purge --registry {{.Run.Registry}} --filter 'hello-world:^v1' "
        "--filter 'team/.*:.*' --ago 2d3h6m --keep 3 --untagged --include-locked --dry-run "
        "--concurrency 8 --timeout 3600 --repository-page-size 50",
        REGISTRY,
    )
    assert rule.name == "rule-1"
    assert [f.text for f in rule.filters] == ["hello-world:^v1", "team/.*:.*"]
    assert rule.ago == timedelta(days=2, hours=3, minutes=6)
    assert rule.keep == 3
    assert rule.untagged and rule.include_locked and not rule.untagged_only
    assert rule.dry_run is True
    assert tag_matches(rule, "team/x", "anything")


def test_our_own_flags() -> None:
    (rule,) = parse_purge_command(
        "acr purge -f app:.* --protect ^latest$ --protect '^v\\d' --max-deletions 10% "
        "--name nightly --schedule '0 0 3 * * *'",
        REGISTRY,
    )
    assert rule.name == "nightly"
    assert protected_by(rule, "latest") == "^latest$"
    assert protected_by(rule, "v1") == "^v\\d"
    assert rule.max_deletions == MaxDeletions(percent=10.0)
    assert rule.schedule == "0 0 3 * * *"
    assert rule.dry_run is None
    assert rule.ago == timedelta(days=1)  # default


def test_several_commands_joined_by_and_and_semicolon() -> None:
    rules = parse_purge_command(
        "acr purge --filter 'a:.*' --ago 1d && acr purge --filter 'b:(?i:rc)' --ago 7d;"
        "acr purge --untagged-only --ago 0d",
        REGISTRY,
    )
    assert [r.name for r in rules] == ["rule-1", "rule-2", "rule-3"]
    assert rules[1].ago == timedelta(days=7)
    assert tag_matches(rules[1], "b", "1.0-RC1")
    assert rules[2].untagged_only
    assert repository_matches(rules[2], "anything/at/all")


def test_filter_with_colons_inside_groups_survives_shell_quoting() -> None:
    (rule,) = parse_purge_command(
        'acr purge --filter "(?:team|ops)/app:^(?!keep:)[[:alpha:]]+$"', REGISTRY
    )
    assert tag_matches(rule, "ops/app", "dev")
    assert not tag_matches(rule, "ops/app", "dev1")


@pytest.mark.parametrize(
    "registry_flag",
    ["-r myreg.azurecr.io", "--registry https://MyReg.azurecr.io/", "-r {{.Run.Registry}}", ""],
)
def test_registry_flag_that_agrees(registry_flag: str) -> None:
    assert parse_purge_command(f"acr purge {registry_flag} --filter a:.*", REGISTRY)


BAD_COMMANDS = [
    ("", "the command line is empty"),
    ("  ;  ", "the command line is empty"),
    ("acr purge --filter a:.* -r other.azurecr.io", "differs from PURGE_REGISTRY"),
    ("acr purge --filter a:.* -u admin -p secret", "managed identity"),
    ("acr purge --filter a:.* --bogus", "unrecognized arguments: --bogus"),
    ("acr purge --filter a:.* --dry", "unrecognized arguments: --dry"),  # no abbreviations
    ("acr purge --filter a:.* --ago 1w", "--ago '1w': unknown unit 'w'"),
    ("acr purge --filter a:.* --keep -2", "argument --keep"),
    ("acr purge --filter a:.* --keep", "expected one argument"),
    ("acr purge --filter a:.* --concurrency 0", "argument --concurrency"),
    ("acr purge --filter a:.* --concurrency 65", "between 1 and 64"),
    ("acr purge --filter a:.* --max-deletions 150%", "--max-deletions '150%': percentage"),
    ("acr purge --filter a:.* --timeout x", "argument --timeout"),
    ("acr purge --ago 1d", "needs at least one filter"),
    ("acr purge --filter a", "no colon"),
    ("acr purge --filter a:.* --untagged --untagged-only", "exclude each other"),
    ("acr purge --filter a:.* --schedule '0 3 * * *'", "has 5 fields"),
    ("acr purge --filter a:.* --name 'bad name'", "name 'bad name'"),
    ("docker run hello", "start with 'acr purge'"),
    ("purge --filter a:.*", "start with 'acr purge'"),
    ("acr purge --filter a:.* acr purge --filter b:.*", "join commands with '&&' or ';'"),
    ("acr purge --filter a:.* & acr purge --filter b:.*", "unexpected '&'"),
    ("acr purge --filter 'a:.*", "No closing quotation"),
]


@pytest.mark.parametrize(("cmd", "message"), BAD_COMMANDS)
def test_bad_commands(cmd: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_purge_command(cmd, REGISTRY)
    assert message in str(info.value)


def test_errors_say_which_command() -> None:
    with pytest.raises(RuleError, match=r"^command 2: "):
        parse_purge_command("acr purge --filter a:.* && acr purge --filter b", REGISTRY)


def test_registry_check_skipped_without_a_registry() -> None:
    assert parse_purge_command("acr purge -r whatever.example --filter a:.*", None)


def test_split_commands() -> None:
    assert split_commands("acr purge --filter 'x:a;b' && acr purge;acr purge") == [
        ["acr", "purge", "--filter", "x:a;b"],
        ["acr", "purge"],
        ["acr", "purge"],
    ]


def test_shared_arguments_on_a_caller_parser() -> None:
    parser = argparse.ArgumentParser(prog="acr-purge run")
    add_rule_arguments(parser)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    ns = parser.parse_args(
        [
            *("-r", REGISTRY, "-u", "admin", "-p", "pw", "--filter", "app:.*", "--ago", "30d"),
            *("--concurrency", "4", "--dry-run", "--output", "json"),
        ]
    )
    assert (ns.registry, ns.username, ns.password, ns.concurrency) == (REGISTRY, "admin", "pw", 4)
    rule = rule_from_namespace(ns, "cli")
    assert rule.name == "cli"
    assert rule.ago == timedelta(days=30)
    assert rule.dry_run is True


def test_parser_raises_instead_of_exiting() -> None:
    with pytest.raises(RuleError):
        make_parser().parse_args(["--help"])
