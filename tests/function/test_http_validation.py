"""Request validation of POST /api/purge: every bad request is a 400 that says what is wrong.

The first part tests purge.functions.http's parser (pure, no network); the second calls the real
handler with azure.functions.HttpRequest objects and checks the answer a client would get.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

import function_app
from purge.functions.http import (
    MAX_BODY_BYTES,
    BadRequest,
    PurgeRequest,
    error_response,
    parse_purge_request,
)


def parse(body: bytes | str, **kwargs: Any) -> PurgeRequest:
    raw = body.encode() if isinstance(body, str) else body
    return parse_purge_request(raw, **kwargs)


def rejection(body: bytes | str, **kwargs: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse(body, **kwargs)
    return caught.value


# --- the parser --------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["", "   \n", "{}"])
def test_no_options_means_a_dry_run_of_every_rule(body: str) -> None:
    assert parse(body, content_type="application/json") == PurgeRequest(dry_run=True, rules=None)


def test_deleting_needs_an_explicit_false() -> None:
    assert parse('{"dryRun": false}').dry_run is False
    assert parse('{"dryRun": true}').dry_run is True


def test_rule_subset_keeps_order_and_runs_a_repeated_name_once() -> None:
    request = parse('{"rules": ["b", "a", "b"], "dryRun": false}')
    assert request == PurgeRequest(dry_run=False, rules=("b", "a"))


def test_json_content_types_with_parameters_are_accepted() -> None:
    assert parse("{}", content_type="application/json; charset=utf-8").dry_run is True
    assert parse("{}", content_type="application/vnd.purge+json").dry_run is True
    assert parse("\ufeff{}".encode()).dry_run is True  # a BOM from Windows tools


def test_malformed_json_names_the_position() -> None:
    error = rejection('{"dryRun": fals}')
    assert error.error == "malformed JSON"
    assert "line 1 column" in error.details[0]


@pytest.mark.parametrize(
    ("body", "shown"),
    [("[]", "array"), ('"x"', "string"), ("true", "boolean"), ("null", "null"), ("3", "number")],
)
def test_body_must_be_an_object(body: str, shown: str) -> None:
    error = rejection(body)
    assert error.error == "request body must be a JSON object"
    assert f"got a JSON {shown}" in error.details[0]


def test_unknown_key_suggests_the_right_one_and_lists_the_allowed() -> None:
    error = rejection('{"dryrun": false}')
    assert error.details == [
        "unknown key 'dryrun' (did you mean 'dryRun'?); allowed keys: dryRun, rules"
    ]
    error = rejection('{"registry": "evil.azurecr.io"}')
    assert error.details == ["unknown key 'registry'; allowed keys: dryRun, rules"]


def test_a_misspelt_dry_run_never_turns_into_a_real_run() -> None:
    error = rejection('{"dry_run": false, "rule": ["x"]}')
    assert len(error.details) == 2
    assert "did you mean 'dryRun'?" in error.details[0]
    assert "did you mean 'rules'?" in error.details[1]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"dryRun": "false"}', '"dryRun" must be true or false, got string "false"'),
        ('{"dryRun": 0}', '"dryRun" must be true or false, got number 0'),
        ('{"dryRun": null}', '"dryRun" must be true or false, got null null'),
        ('{"rules": "nightly"}', '"rules" must be a list of rule names, got string "nightly"'),
        ('{"rules": []}', '"rules" is empty; omit it to run every configured rule'),
        (
            '{"rules": ["a", 3]}',
            '"rules"[1] must be a non-empty string (a rule name), got number 3',
        ),
        ('{"rules": [" "]}', '"rules"[0] must be a non-empty string (a rule name), got string " "'),
    ],
)
def test_wrong_types_say_what_is_allowed(body: str, message: str) -> None:
    error = rejection(body)
    assert error.error == "invalid request body"
    assert error.details == [message]


def test_duplicate_keys_are_refused_because_one_of_them_would_be_ignored() -> None:
    error = rejection('{"dryRun": true, "dryRun": false}')
    assert error.details == ["key 'dryRun' appears more than once"]


def test_non_json_constants_are_refused() -> None:
    assert rejection('{"dryRun": NaN}').details == ["NaN is not valid JSON"]


def test_oversized_body_is_refused_before_parsing() -> None:
    body = b'{"rules": ["' + b"a" * MAX_BODY_BYTES + b'"]}'
    error = rejection(body)
    assert error.error == "request body too large"
    assert str(MAX_BODY_BYTES) in error.details[0]


def test_non_utf8_body_is_refused() -> None:
    assert rejection(b'{"rules": ["\xff"]}').error == "request body is not UTF-8"


def test_wrong_content_type_is_refused() -> None:
    error = rejection("dryRun=false", content_type="application/x-www-form-urlencoded")
    assert error.error == "unsupported content type"
    assert "application/json" in error.details[0]


def test_query_parameters_other_than_the_function_key_are_refused() -> None:
    assert parse("", query={"code": "secret"}).dry_run is True
    error = rejection("", query={"dryRun": "false", "registry": "x"})
    assert error.error == "query parameters are not accepted"
    assert [d.split(":")[0] for d in error.details] == [
        "unknown query parameter 'dryRun'",
        "unknown query parameter 'registry'",
    ]


def test_error_response_shape() -> None:
    answer = error_response(400, "bad", ["one", "two"])
    assert answer.status == 400
    assert json.loads(answer.text) == {"error": "bad", "details": ["one", "two"]}


# --- the handler ---------------------------------------------------------------------------

VALID_SETTINGS = {
    "PURGE_REGISTRY": "contoso.azurecr.io",
    "PURGE_SCHEDULE": "0 0 3 * * *",
    "PURGE_RULES": json.dumps(
        [
            {"name": "nightly", "filter": ["app:.*"], "ago": "30d"},
            {"name": "weekly", "filter": ["web:.*"], "ago": "7d"},
        ]
    ),
}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in VALID_SETTINGS.items():
        monkeypatch.setenv(key, value)
    return VALID_SETTINGS


async def post(
    body: bytes, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    request = func.HttpRequest(
        method="POST",
        url="https://app.azurewebsites.net/api/purge",
        headers=headers if headers is not None else {"Content-Type": "application/json"},
        params=params or {},
        body=body,
    )
    response = await function_app.purge_http(request)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


@pytest.mark.parametrize(
    ("body", "headers", "params", "error"),
    [
        (b"{not json", None, None, "malformed JSON"),
        (b"[1]", None, None, "request body must be a JSON object"),
        (b'{"dryRun": false, "whatif": 1}', None, None, "invalid request body"),
        (b'{"dryRun": "no"}', None, None, "invalid request body"),
        (b"x" * (MAX_BODY_BYTES + 1), None, None, "request body too large"),
        (b"dryRun=false", {"Content-Type": "text/plain"}, None, "unsupported content type"),
        (b"", None, {"registry": "evil.example"}, "query parameters are not accepted"),
    ],
)
async def test_bad_requests_get_a_400_with_a_json_error(
    settings: dict[str, str],
    body: bytes,
    headers: dict[str, str] | None,
    params: dict[str, str] | None,
    error: str,
) -> None:
    status, answer = await post(body, headers, params)
    assert status == 400
    assert answer["error"] == error
    assert answer["details"] and all(isinstance(d, str) and d for d in answer["details"])


async def test_unknown_rule_name_is_a_400_naming_it_and_the_known_ones(
    settings: dict[str, str],
) -> None:
    status, answer = await post(b'{"rules": ["nightly", "nighlty"]}')
    assert status == 400
    assert answer["error"] == "unknown rule name"
    assert "nighlty" in answer["details"][0]
    assert "weekly" in answer["details"][0]


async def test_invalid_configuration_is_a_500_with_the_validation_errors(
    settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_RULES", '[{"name": "x", "filter": ["app:.*"], "ago": "30 days"}]')
    monkeypatch.setenv("PURGE_CONCURENCY", "4")
    status, answer = await post(b'{"dryRun": false}')
    assert status == 500
    assert answer["error"] == "invalid configuration; nothing was deleted"
    joined = "\n".join(answer["details"])
    assert "PURGE_RULES" in joined
    assert "PURGE_CONCURENCY" in joined


async def test_a_bad_request_is_refused_even_when_the_configuration_is_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Request errors come first: the caller can fix them without seeing the settings."""
    monkeypatch.delenv("PURGE_REGISTRY", raising=False)
    status, answer = await post(b'{"dryRun": "false"}')
    assert status == 400
    assert answer["details"] == ['"dryRun" must be true or false, got string "false"']
