"""The text report and the terminal's progress survive any text: rich markup in names, reasons
and errors is shown as is.

`--protect '^t0[/]?$'` once deleted four tags and then crashed the text report on rich's markup
(`MarkupError`), losing the record of a real deletion; a repository or registry error with `[/]`
crashed a terminal run the same way part-way, from its progress line. Every string is escaped on
its way in.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest

from purge.cli.main import progress_reporter
from purge.config.rules import make_rule
from purge.config.settings import Config, Connection
from purge.model import DOCKER_MANIFEST, Manifest, Tag
from purge.render import render_text
from purge.report import Report
from purge.service import run_purge
from tests.fakes import InMemoryRegistry

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
OLD = datetime(2024, 1, 1, tzinfo=timezone.utc)
HOSTILE = [
    "[/]",
    "[bold]x[/bold]",
    "[link=https://evil.example]y[/link]",
    "[/red]",
    "[[[",
    "]]][",
    "\\[b]",
    "[@click=app.quit]q[/]",
    ":warning:",
    "\x1b[31mred\x1b[0m",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_errors_and_repositories_with_markup_are_rendered_literally(text: str) -> None:
    report = Report("myreg.azurecr.io", False, NOW)
    report.start_rule("r", False)
    report.add_error(f"team/{text}", f"tag {text}", f"HTTP 500 INJECTED: {text}", rule="r")
    report.mark_incomplete(f"the registry said {text}")
    report.finish(NOW)
    rendered = render_text(report, width=400)
    assert "\x1b" not in rendered  # no terminal escape reaches the report
    shown = text.replace("\x1b", "\\x1b")  # control characters are shown escaped
    assert f"HTTP 500 INJECTED: {shown}" in rendered
    assert f"team/{shown}" in rendered
    assert f"the registry said {shown}" in rendered


async def test_a_protect_pattern_with_markup_does_not_lose_the_report_of_a_real_run() -> None:
    registry = InMemoryRegistry("myreg.azurecr.io")
    for n in range(5):
        digest = f"sha256:{n:064x}"
        registry.add_manifest("app", Manifest(digest, DOCKER_MANIFEST, OLD, size=10))
        registry.add_tag("app", Tag(f"t{n}", digest, OLD))
    rule = make_rule("r", filters=["app:.*"], ago="1d", protect=["^t0[/]?$"])
    config = Config(Connection("myreg.azurecr.io"), rules=(rule,))
    report = await run_purge(config, dry_run=False, now=NOW, registry=registry)
    assert registry.tag_names("app") == {"t0"}
    rendered = render_text(report, width=400)
    assert "^t0[/]?$" in rendered
    assert "deleted 4 tags" in rendered


async def test_a_filter_that_matches_no_repository_warns_in_the_report() -> None:
    registry = InMemoryRegistry("myreg.azurecr.io")
    registry.add_manifest("app", Manifest("sha256:" + "1" * 64, DOCKER_MANIFEST, OLD, size=1))
    registry.add_tag("app", Tag("v1", "sha256:" + "1" * 64, OLD))
    rule = make_rule("r", filters=["app:.*", "ap:.*", "team/.*:.*"], ago="1d")
    config = Config(Connection("myreg.azurecr.io"), rules=(rule,))
    report = await run_purge(config, dry_run=True, now=NOW, registry=registry)
    data = report.to_dict()
    assert data["warnings"] == [
        "rule 'r': filter 'ap:.*' matches no repository (did you mean 'app'?): the repository "
        "part must match a whole name",
        "rule 'r': filter 'team/.*:.*' matches no repository: the repository part must match "
        "a whole name",
    ]
    assert data["totals"]["tagsDeleted"] == 1  # a warning, not an error: the rest still runs
    assert data["errors"] == []
    assert "filter 'ap:.*' matches no repository" in render_text(report, width=400)


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so that progress_reporter takes its rich branch."""

    def isatty(self) -> bool:
        return True


#: (a progress message, how the terminal must show it)
PROGRESS = [
    ("repo[/]: 3 tags", "repo[/]: 3 tags"),
    ("[bold]app[/bold]: 1 tags", "[bold]app[/bold]: 1 tags"),
    (":smile: deleted", ":smile: deleted"),
    ("evil\x1b]0;pwned\x07: 2 tags", "evil\\x1b]0;pwned\\x07: 2 tags"),
    ("two\nlines\r", "two\\nlines\\r"),
    *[(f"team/{text}", "team/" + text.replace("\x1b", "\\x1b")) for text in HOSTILE],
]


@pytest.mark.parametrize(("message", "shown"), PROGRESS)
def test_terminal_progress_shows_any_text_literally(
    monkeypatch: pytest.MonkeyPatch, message: str, shown: str
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per message
    stream = Terminal()
    with progress_reporter(stream) as progress:
        progress(message)
    out = stream.getvalue()
    assert shown in out, out
    assert "\U0001f604" not in out and "\u26a0" not in out  # :smile: and :warning: stay text
    for raw in ("\x1b]0;pwned", "\x07", "two\nlines", "\x1b[31mred"):
        assert raw not in out, out


async def test_a_terminal_run_with_markup_in_a_repository_name_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    registry = InMemoryRegistry("myreg.azurecr.io")
    for n in range(2):
        digest = f"sha256:{n:064x}"
        registry.add_manifest("app[/]", Manifest(digest, DOCKER_MANIFEST, OLD, size=10))
        registry.add_tag("app[/]", Tag(f"t{n}", digest, OLD))
    rule = make_rule("r", filters=["app.*:.*"], ago="1d")
    config = Config(Connection("myreg.azurecr.io"), rules=(rule,))
    stream = Terminal()
    with progress_reporter(stream) as progress:
        report = await run_purge(
            config, dry_run=False, now=NOW, registry=registry, progress=progress
        )
    assert registry.tag_names("app[/]") == set()
    assert report.complete
    assert "app[/]: deleted 2 tags, 0 manifests, 0 errors" in stream.getvalue()
