"""Parity with `acr purge` (issue 14), the pure parts: times, ties, folding, flags, messages."""

from __future__ import annotations

import argparse
import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from acr_emulator.server import test_ca as emulator_ca
from purge.cli import main as cli
from purge.config import rules
from purge.config.casefold import fold_case, go_lower
from purge.config.command import parse_purge_command
from purge.config.rules import RuleError, make_rule
from purge.config.settings import ConfigError, load_settings
from purge.isotime import parse_ticks, parse_utc
from purge.model import DOCKER_MANIFEST, Manifest, RepositorySnapshot, Tag
from purge.planner import plan_repository
from purge.registry.wire import manifest_from_json, tag_from_json
from tests.fixtures import case_folding

UTC = timezone.utc
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


# --- 3. full precision and the registry's order ------------------------------------------------


def test_isotime_keeps_the_seventh_fraction_digit_for_ordering() -> None:
    a, b = "2024-01-31T10:00:00.1234567Z", "2024-01-31T10:00:00.1234563Z"
    ta, tb = parse_ticks(a), parse_ticks(b)
    assert ta is not None and tb is not None and ta - tb == 4  # 400 ns, in 100 ns ticks
    assert parse_utc(a) == parse_utc(b)  # a datetime holds microseconds only
    assert parse_ticks("2024-01-31T10:00:00Z") == parse_ticks("2024-01-31T10:00:00.0000000Z")
    assert parse_ticks("2024-01-31T11:00:00+01:00") == parse_ticks("2024-01-31T10:00:00Z")
    assert parse_ticks("2024-13-01T00:00:00Z") is None and parse_ticks(None) is None


def test_keep_tells_tags_400ns_apart_apart() -> None:
    item = {"digest": dg(1), "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True}}
    newer = tag_from_json(
        {**item, "name": "zz-newer", "lastUpdateTime": "2024-04-01T00:00:00.1234567Z"}
    )
    older = tag_from_json(
        {**item, "name": "aa-older", "lastUpdateTime": "2024-04-01T00:00:00.1234563Z"}
    )
    manifest = Manifest(dg(1), DOCKER_MANIFEST, OLD, tags=("aa-older", "zz-newer"))
    snapshot = RepositorySnapshot("app", (older, newer), (manifest,))
    rule = make_rule("r", filters=["app:.*"], ago="1d", keep=1)
    plan = plan_repository(snapshot, rule, NOW)
    assert [d.tag for d in plan.tag_deletions] == ["aa-older"]


def test_keep_ties_follow_the_registrys_timedesc_order_not_names() -> None:
    # the registry listed t-c, t-b, t-a (timedesc, equal times): acr purge keeps t-c
    tags = tuple(Tag(name, dg(1), OLD, listed=i) for i, name in enumerate(["t-c", "t-b", "t-a"]))
    manifest = Manifest(dg(1), DOCKER_MANIFEST, OLD, tags=("t-a", "t-b", "t-c"))
    rule = make_rule("r", filters=["app:.*"], ago="1d", keep=1)
    for order in (tags, tags[::-1]):  # still independent of the tuple's order
        plan = plan_repository(RepositorySnapshot("app", order, (manifest,)), rule, NOW)
        assert sorted(d.tag for d in plan.tag_deletions) == ["t-a", "t-b"]


# --- 2. --untagged-only --keep N ---------------------------------------------------------------


def test_untagged_only_keep_keeps_the_newest_untagged_manifests() -> None:
    manifests = tuple(
        Manifest(dg(n), DOCKER_MANIFEST, OLD - timedelta(days=n), size=1) for n in range(1, 5)
    )
    rule = make_rule("r", untagged_only=True, ago="1d", keep=2)
    plan = plan_repository(RepositorySnapshot("app", (), manifests), rule, NOW)
    assert sorted(d.digest for d in plan.manifest_deletions) == [dg(3), dg(4)]
    kept = {k.ref: k.reason for k in plan.kept}
    assert "--keep 2" in kept[dg(1)] and "--keep 2" in kept[dg(2)]


def test_untagged_only_keep_is_accepted_in_purge_command() -> None:
    (rule,) = parse_purge_command("acr purge -r example --untagged-only --ago 3d --keep 5", None)
    assert rule.untagged_only and rule.keep == 5


def test_manifest_times_keep_full_precision_too() -> None:
    m = manifest_from_json({"digest": dg(1), "lastUpdateTime": "2024-04-01T00:00:00.1234567Z"})
    assert m.updated_ticks == parse_ticks("2024-04-01T00:00:00.1234567Z")


# --- 4. (?i) lowercases as acr purge's engine does; \d \w \s stay ASCII ------------------------


def tag_matches(rule: rules.Rule, repository: str, tag: str) -> bool:
    return rules.tag_search(rules.filters_for(rule, repository), tag)


def test_case_insensitive_folds_kelvin_sign_as_acr_purge() -> None:
    rule = make_rule("r", filters=["app:(?i)\u212a"], ago="1d")
    assert tag_matches(rule, "app", "k1") and tag_matches(rule, "app", "K2")
    assert not tag_matches(rule, "app", "x1")
    assert tag_matches(make_rule("r", filters=["(?i)APP:^v"], ago="1d"), "app", "v1")


def test_shorthand_classes_stay_ascii() -> None:
    rule = make_rule("r", filters=["app:^\\d+$"], ago="1d")
    assert tag_matches(rule, "app", "123")
    assert not tag_matches(rule, "app", "\u0661\u0662")  # Arabic-Indic digits
    assert not tag_matches(make_rule("r", filters=["app:^\\w+$"], ago="1d"), "app", "é")


def selected(pattern: str, tags: list[str] = case_folding.TAGS) -> str:
    rule = make_rule("r", filters=[f"app:{pattern}"], ago="1d")
    return "".join(sorted(t for t in tags if tag_matches(rule, "app", t)))


@pytest.mark.parametrize(("pattern", "acr_selects"), case_folding.CASES)
def test_case_insensitive_selects_what_acr_purge_selects(pattern: str, acr_selects: str) -> None:
    assert selected(pattern) == "".join(sorted(acr_selects))


@pytest.mark.parametrize(
    "pattern", ["(?i)release-\\d+", "(?i:APP)", "(?i)[[:alpha:]_-]", "^v1\\.", "\u017f", "(?i)[^a]"]
)
def test_patterns_without_non_ascii_case_insensitive_atoms_are_left_to_regex(
    pattern: str,
) -> None:
    assert fold_case(pattern) == pattern


def test_the_rewrite_names_each_ascii_character_and_keeps_the_original_itself() -> None:
    assert fold_case("(?i)\u0130x") == "(?i)(?-i:[\\x49\\x69\\u0130])x"
    assert fold_case("(?i)\u017f") == "(?i)(?-i:[\\u017f])"
    assert fold_case("(?x)(?i) \u017f # \u017f ( [") == "(?x)(?i) (?-i:[\\u017f]) # \u017f ( ["


def test_unicode_properties_under_case_insensitive_are_refused() -> None:
    with pytest.raises(RuleError, match=r"'app:\(\?i\)\\\\p\{L\}'.*under \(\?i\) is not supported"):
        make_rule("r", filters=["app:(?i)\\p{L}"], ago="1d")
    with pytest.raises(RuleError, match="is not supported"):
        make_rule("r", filters=["app:(?i)[\\P{Lu}_]"], ago="1d")
    assert selected("\\p{Lu}") == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # case-sensitive: as before
    assert selected("(?i:x)\\p{Lu}", ["xA", "Xa", "xa"]) == "xA"


def test_class_subtraction_is_refused() -> None:
    for pattern in ("[a-z-[aeiou]]", "(?i)[a-z-[aeiou]]", "[0-[a]]"):
        with pytest.raises(RuleError, match="class subtraction"):
            make_rule("r", filters=[f"app:{pattern}"], ago="1d")
    assert selected("[-[]x") == ""  # a leading '-' stays a character
    assert selected("[\\-[]") == ""


def test_syntax_errors_are_reported_as_written_not_hidden_by_the_rewrite() -> None:
    with pytest.raises(RuleError, match="invalid regular expression"):
        make_rule("r", filters=["app:(?i)[z-a\u017f]"], ago="1d")


def test_only_two_non_ascii_characters_lowercase_to_ascii() -> None:
    """regexp2 lowercases with Go's simple mapping: only U+0130 and U+212A reach ASCII, which is
    what `regexp2_ascii` builds on (its table maps no other range into ASCII either)."""
    reaching = [cp for cp in range(0x80, 0x110000) if go_lower(cp) < 0x80]
    assert reaching == [0x130, 0x212A]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_patterns_compile_and_only_case_insensitive_ones_are_rewritten(
    seed: int,
) -> None:
    for pattern in case_folding.random_patterns(seed, 100):
        plain = pattern.replace("(?i)", "").replace("(?i:", "(?:")
        rule = make_rule("r", filters=[f"app:{pattern}"], ago="1d")
        assert rule.filters[0].tag.pattern == pattern
        if "(?i" not in pattern:
            assert fold_case(pattern) == pattern, pattern
        assert fold_case(plain) == plain


# --- 5. flags ----------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["run", *argv])


def config(*argv: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return cli.config_from_namespace(parse(*argv), environ or {})


def test_dotless_registry_gets_the_azure_suffix() -> None:
    got = config("-r", "myregistry", "--filter", "a:.*", "--ago", "1d")
    assert got.connection.login_server == "myregistry.azurecr.io"
    assert config("-r", "MyReg.azurecr.io", "--filter", "a:.*").connection.login_server == (
        "myreg.azurecr.io"
    )


def test_acr_default_registry_from_the_environment() -> None:
    got = config("--filter", "a:.*", environ={"ACR_DEFAULT_REGISTRY": "teamreg"})
    assert got.connection.login_server == "teamreg.azurecr.io"
    flag_wins = config("-r", "other", "--filter", "a:.*", environ={"ACR_DEFAULT_REGISTRY": "x"})
    assert flag_wins.connection.login_server == "other.azurecr.io"


def test_docker_config_files_give_credentials(tmp_path: Path) -> None:
    first, second = tmp_path / "one.json", tmp_path / "two.json"
    first.write_text(json.dumps({"auths": {"elsewhere.io": {"auth": "eDp5"}}}))
    auth = base64.b64encode(b"puller:pa:ss").decode()
    second.write_text(json.dumps({"auths": {"https://myreg.azurecr.io": {"auth": auth}}}))
    got = config("-r", "myreg", "-c", str(first), "-c", str(second), "--filter", "a:.*")
    assert (got.connection.username, got.connection.password) == ("puller", "pa:ss")
    token = tmp_path / "token.json"
    token.write_text(json.dumps({"auths": {"myreg.azurecr.io": {"identitytoken": "rt-1"}}}))
    got = config("-r", "myreg", "-c", str(token), "--filter", "a:.*")
    assert got.connection.refresh_token == "rt-1" and got.connection.username is None


def test_docker_config_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(cli.BadInput, match=r"-c/--config .*no such file"):
        config("-r", "myreg", "-c", str(tmp_path / "absent.json"), "--filter", "a:.*")
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(cli.BadInput, match=r"no credentials for myreg\.azurecr\.io"):
        config("-r", "myreg", "-c", str(empty), "--filter", "a:.*")


def test_refresh_token_mode() -> None:
    for user in ("", "00000000-0000-0000-0000-000000000000"):
        got = config("-r", "myreg", "-u", user, "-p", "rt-2", "--filter", "a:.*")
        assert got.connection.refresh_token == "rt-2"
        assert got.connection.username is None and got.connection.password is None


def test_verbose_filter_timeout_and_page_size_are_honoured() -> None:
    got = config(
        *("-r", "myreg", "--filter", "a:.*", "--verbose"),
        *("--filter-timeout-seconds", "7", "--repository-page-size", "50"),
    )
    assert got.rules[0].filters[0].timeout == 7
    assert got.connection.catalog_page_size == 50
    (rule,) = parse_purge_command("acr purge --filter a:.* --filter-timeout-seconds 9", None)
    assert rule.filters[0].timeout == 9


# --- 7. messages name what the user wrote ------------------------------------------------------


def settings_errors(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings({"PURGE_REGISTRY": "myreg.azurecr.io", **environ})
    return caught.value.errors


def test_purge_rules_messages_name_the_key() -> None:
    rules_json = json.dumps(
        [{"name": "r", "filter": ["a:.*"], "ago": "3dfoo", "maxDeletions": "150%"}]
    )
    errors = " | ".join(settings_errors({"PURGE_RULES": rules_json}))
    assert "PURGE_RULES[0].ago '3dfoo'" in errors, errors
    assert "PURGE_RULES[0].maxDeletions '150%'" in errors, errors
    assert "expected" in errors and "(r)" not in errors


def test_purge_command_messages_name_the_flag() -> None:
    errors = " | ".join(settings_errors({"PURGE_COMMAND": "acr purge --filter a:.* --ago 3dfoo"}))
    assert "PURGE_COMMAND: " in errors and "--ago '3dfoo'" in errors, errors
    assert "expected [N]d" in errors


def test_cli_messages_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "-r", "myreg", "--filter", "a:.*", "--ago", "3dfoo"])
    err = capsys.readouterr().err
    assert code == 2 and "--ago '3dfoo'" in err and "expected [N]d" in err, err
    with pytest.raises(RuleError, match="keep -1"):
        make_rule("r", filters=["a:.*"], keep=-1)


# --- 8. the CLI reads PURGE_* settings, flags win ----------------------------------------------


def test_cli_reads_purge_settings_and_flags_win(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    emulator_ca().cert_pem.write_to_path(str(ca))  # a real PEM bundle: its content is checked
    environ = {
        "PURGE_REGISTRY": "127.0.0.1:8443",
        "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": str(ca),
        "PURGE_CONCURRENCY": "4",
    }
    got = config("--filter", "a:.*", environ=environ)
    assert got.connection.allowed_hosts == ("127.0.0.1",)
    assert got.connection.ca_file == str(ca) and got.concurrency == 4
    got = config("--filter", "a:.*", "--concurrency", "2", "--allowed-host", "h:1",
                 "-r", "h:1", environ=environ)  # fmt: skip
    assert got.concurrency == 2 and got.connection.allowed_hosts == ("h:1",)
    assert got.connection.login_server == "h:1"


def test_cli_refuses_bad_purge_settings_by_name() -> None:
    with pytest.raises(cli.BadInput, match="PURGE_CONCURRENCY"):
        config("-r", "myreg", "--filter", "a:.*", environ={"PURGE_CONCURRENCY": "lots"})


def test_untrusted_host_message_names_the_flag_and_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["run", "-r", "127.0.0.1:9", "--filter", "a:.*", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--allowed-host" in err and "PURGE_ALLOWED_HOSTS" in err, err


# --- 9. the wide token: does the registry grant every repository? -----------------------------


def jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.sig"


def test_grants_every_repository_reads_the_access_claim() -> None:
    from purge.registry.tokens import grants_every_repository

    wide = [{"type": "registry", "name": "catalog", "actions": ["*"]},
            {"type": "repository", "name": "*", "actions": ["*"]}]  # fmt: skip
    assert grants_every_repository(jwt({"access": wide})) is True  # ACR's spelling
    assert grants_every_repository(jwt({"access": [{"Type": "repository", "Name": "*"}]})) is True
    abac = [{"type": "registry", "name": "catalog", "actions": ["*"]}]  # wildcard refused
    assert grants_every_repository(jwt({"access": abac})) is False
    assert grants_every_repository("opaque-token") is None  # unknown: try it and see
