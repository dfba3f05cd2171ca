"""Settings that would silently mean something else (issue 16, sections 3 and 7).

Duplicate keys, `null` for a rule key, integers of thousands of digits, JSON nested thousands
deep and secret values after a mistyped flag: each is a ConfigError (or a 400) that says what is
wrong, never a crash, never a value that overrides another, never an echoed secret.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from purge.config.rules import RULE_KEYS
from purge.config.settings import ConfigError, load_settings, load_settings_file
from purge.functions.http import BadRequest, parse_purge_request

REGISTRY = "contoso.azurecr.io"
SECRET = "S3cret-never-echoed"
HUGE_INTEGER = "9" * 5000
DEEP_ARRAY = "[" * 20000 + "]" * 20000
DEEP_OBJECT = '{"a":' * 20000 + "1" + "}" * 20000


def errors_for(**settings: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings({"PURGE_REGISTRY": REGISTRY, **settings})
    return info.value.errors


def rules_errors(text: str) -> list[str]:
    return errors_for(PURGE_RULES=text)


# --- duplicate keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_text", "key"),
    [
        ('{"filter": ["app:.*"], "ago": "3650d", "ago": "0d"}', "ago"),
        ('{"filter": ["app:.*"], "dryRun": true, "dryRun": false}', "dryRun"),
        ('{"filter": ["app:.*"], "filter": [".*:.*"]}', "filter"),
        ('{"name": "a", "name": "b", "filter": ["app:.*"]}', "name"),
    ],
)
def test_a_duplicate_key_in_purge_rules_is_refused(rule_text: str, key: str) -> None:
    errors = rules_errors(f"[{rule_text}]")
    assert len(errors) == 1, errors
    assert errors[0].startswith("PURGE_RULES: "), errors
    assert "appears more than once" in errors[0], errors
    assert repr(key) in errors[0], errors


def test_a_duplicate_key_is_refused_at_any_depth() -> None:
    errors = rules_errors('[{"filter": ["app:.*"]}, {"filter": ["web:.*"], "keep": 1, "keep": 0}]')
    assert any("'keep' appears more than once" in e for e in errors), errors


def write_settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_duplicate_setting_in_local_settings_json_is_refused(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path,
        '{"IsEncrypted": false, "Values": {"PURGE_REGISTRY": "contoso.azurecr.io", '
        '"PURGE_DRY_RUN": "true", "PURGE_DRY_RUN": "false", '
        '"PURGE_COMMAND": "acr purge --filter app:.* --ago 30d"}}',
    )
    with pytest.raises(ConfigError) as info:
        load_settings_file(path)
    assert len(info.value.errors) == 1
    assert "local.settings.json" in info.value.errors[0]
    assert "'PURGE_DRY_RUN' appears more than once" in info.value.errors[0]


def test_a_duplicate_values_object_in_local_settings_json_is_refused(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path,
        '{"Values": {"PURGE_DRY_RUN": "false"}, "Values": {"PURGE_DRY_RUN": "true"}}',
    )
    with pytest.raises(ConfigError, match="'Values' appears more than once"):
        load_settings_file(path)


# --- null is a type error naming the key ---------------------------------------------------


@pytest.mark.parametrize("key", [k for k in RULE_KEYS if k != "filter"] + ["filter"])
def test_null_for_a_rule_key_is_an_error_naming_it(key: str) -> None:
    rule = {"name": "nightly", "filter": ["app:.*"], key: None}
    errors = rules_errors(json.dumps([rule]))
    assert len(errors) == 1, errors
    assert errors[0].startswith("PURGE_RULES[0]"), errors
    assert f"{key}: null is not allowed" in errors[0], errors
    assert "leave the key out" in errors[0], errors


def test_null_ago_no_longer_falls_back_to_one_day() -> None:
    errors = rules_errors('[{"filter": ["app:.*"], "ago": null}]')
    assert errors == [
        "PURGE_RULES[0].ago: null is not allowed; give a duration string like '30d', or leave "
        "the key out"
    ]


# --- numbers and nesting that break the JSON decoder ---------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f'[{{"filter": ["app:.*"], "keep": {HUGE_INTEGER}}}]', "an integer of 5000 digits"),
        (f'[{{"filter": ["app:.*"], "keep": -{HUGE_INTEGER}}}]', "an integer of 5000 digits"),
        (DEEP_ARRAY, "nested too deeply"),
        (f"[{DEEP_OBJECT}]", "nested too deeply"),
        ('[{"filter": ["app:.*"], "keep": NaN}]', "NaN is not valid JSON"),
        ('[{"filter": ["app:.*"], "keep": 1e999}]', "a number too large"),
    ],
    ids=["huge-int", "huge-negative-int", "deep-array", "deep-object", "nan", "huge-float"],
)
def test_hostile_json_in_purge_rules_is_invalid_configuration(text: str, problem: str) -> None:
    errors = rules_errors(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith("PURGE_RULES: not valid JSON"), errors[0][:300]
    assert problem in errors[0], errors[0][:300]
    assert len(errors[0]) < 300


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"dryRun": ' + HUGE_INTEGER.encode() + b"}", "an integer of 5000 digits"),
        (b'{"rules": ' + DEEP_ARRAY.encode() + b"}", "nested too deeply"),
        (('{"a":' * 10000 + "1" + "}" * 10000).encode(), "nested too deeply"),  # < 64 KiB
    ],
    ids=["huge-int", "deep-array", "deep-object"],
)
def test_hostile_json_in_the_http_body_is_a_bad_request(body: bytes, problem: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_purge_request(body, content_type="application/json")
    assert info.value.error == "malformed JSON"
    assert any(problem in d for d in info.value.details), info.value.details


def test_hostile_json_in_local_settings_json_is_invalid_configuration(tmp_path: Path) -> None:
    path = write_settings(tmp_path, '{"Values": ' + DEEP_OBJECT + "}")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_settings_file(path)


# --- secrets are never echoed ---------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        f"--pasword {SECRET}",
        f"--pasword={SECRET}",
        f"--client-secret {SECRET}",
        f"--token '{SECRET}'",
        f"--api-key {SECRET} --ago 1d",
        f"--passwd {SECRET}",
    ],
)
def test_a_value_after_a_secret_looking_flag_is_never_echoed(flags: str) -> None:
    errors = errors_for(PURGE_COMMAND=f"acr purge --filter app:.* {flags}")
    assert len(errors) == 1, errors
    assert SECRET not in errors[0], errors
    assert "unrecognized arguments" in errors[0], errors
    assert "--" + flags.split()[0].lstrip("-").split("=")[0] in errors[0], errors
    assert "(value hidden)" in errors[0], errors


def test_a_mistyped_flag_that_is_not_secret_still_shows_its_value() -> None:
    errors = errors_for(PURGE_COMMAND="acr purge --filter app:.* --agoo 30d")
    assert "--agoo 30d" in errors[0], errors


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        (f"--pasword -{SECRET}", "unrecognized arguments: --pasword (value hidden)"),
        (f"--pasword=-{SECRET}", "unrecognized arguments: --pasword=(value hidden)"),
        (f"--client-sec {SECRET}", "unrecognized arguments: --client-sec (value hidden)"),
        (f"-P {SECRET}", "unrecognized arguments: -P (value hidden)"),
        (f"-P{SECRET}", "unrecognized arguments: (value hidden)"),
        (f"--sp {SECRET} --ago 1d --tenant t", "--sp (value hidden) --tenant (value hidden)"),
        (f"--bogus {SECRET} -{SECRET} --other", "--bogus (value hidden) (value hidden) (value"),
        (f"-u me -p S3 {SECRET}", "unrecognized arguments: (value hidden)"),  # unquoted space
        (f"--agoo {SECRET}", "unrecognized arguments: --agoo (value hidden); did you mean --ago?"),
        (f"--grase=1d{SECRET}", "unrecognized arguments: --grase=(value hidden); did you mean"),
    ],
)
def test_no_word_after_an_unknown_flag_is_echoed(flags: str, shown: str) -> None:
    """Flag names are shown; what follows an unknown flag never is, whatever its name or shape."""
    errors = errors_for(PURGE_COMMAND=f"acr purge --filter app:.* {flags}")
    assert len(errors) == 1, errors
    assert shown in errors[0], errors
    assert SECRET not in errors[0], errors
    assert SECRET[1:] not in errors[0], errors


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ("--keep 3dfoo", "argument --keep: '3dfoo' is not a whole number"),
        ("--ago 3dfoo", "'3dfoo'"),
        ("--agoo=30d", "unrecognized arguments: --agoo=30d; did you mean --ago?"),
        ("--concurency 4", "unrecognized arguments: --concurency 4; did you mean --concurrency?"),
    ],
)
def test_values_of_known_flags_and_their_misspellings_are_still_shown(
    flags: str, shown: str
) -> None:
    errors = errors_for(PURGE_COMMAND=f"acr purge --filter app:.* {flags}")
    assert shown in errors[0], errors


@pytest.mark.parametrize("name", ["PURGE_PASSWORD", "PURGE_TOKEN_SECRET", "AZURE_CLIENT_SECRET"])
def test_a_non_string_secret_in_local_settings_json_is_not_printed(
    tmp_path: Path, name: str
) -> None:
    path = write_settings(
        tmp_path, json.dumps({"Values": {"PURGE_REGISTRY": REGISTRY, name: 918273645}})
    )
    with pytest.raises(ConfigError) as info:
        load_settings_file(path)
    text = "; ".join(info.value.errors)
    assert "918273645" not in text
    assert f"{name}: must be a string" in text


def test_a_non_string_ordinary_setting_still_shows_its_value(tmp_path: Path) -> None:
    path = write_settings(tmp_path, json.dumps({"Values": {"PURGE_CONCURRENCY": 8}}))
    with pytest.raises(ConfigError, match=r"PURGE_CONCURRENCY: must be a string .*got 8"):
        load_settings_file(path)


# --- smaller: an empty rule name ------------------------------------------------------------


def test_an_empty_name_in_purge_command_is_an_error_not_the_default() -> None:
    errors = errors_for(PURGE_COMMAND="acr purge --filter app:.* --name ''")
    assert len(errors) == 1, errors
    assert "name ''" in errors[0], errors
