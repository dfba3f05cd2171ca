"""Never echo a secret: argument errors show flag names, and values only where that is safe.

argparse echoes the words it refuses (`unrecognized arguments: --pasword S3cret`), and those
messages reach the status endpoint, the timer log, check-config and the CLI's stderr. No list of
secret-looking names is complete (`--client-sec S3cret`, `-P S3cret`, `--pasword -S3cret`), so
RedactingParser's rule is positional: a message shows flag names and the values of known flags
that carry no credential (`--keep '3dfoo'`); every word after an unknown flag, up to the next
known one, and every stray word (`-p S3 cret`) is hidden. One exception keeps typos readable:
after a close misspelling of a known non-secret flag, a plain number or duration is shown, with
a did-you-mean (`--agoo 30d; did you mean --ago?`).

Settings names (`PURGE_PASSWORD` in local.settings.json) are judged by `looks_secret`.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, NoReturn

HIDDEN = "(value hidden)"
#: Name fragments that mark a credential, also misspelt (`--pasword`, `--passwd`, `--pwd`).
_SECRET_WORDS = (
    "pass", "pw", "word", "secret", "token", "key", "credential", "auth", "sig", "cert",
)  # fmt: skip
#: How like a known flag (difflib's ratio) an unknown one must be to count as its misspelling.
_CLOSE = 0.8
#: What may follow a misspelt flag: a number or duration (`30d`, `1d3h6m`, `2.5s`, `10%`).
_PLAIN_VALUE = re.compile(r"(?:\d{1,6}(?:\.\d{1,3})?(?:ns|us|µs|ms|s|m|h|d)?){1,4}%?")
#: argparse takes these for positionals, not flags (none of our parsers has such a flag).
_NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")


def looks_secret(name: str) -> bool:
    """True for a flag or setting name that may carry a credential (`--api-key`, `*_PASSWORD`)."""
    lowered = name.lower().lstrip("-")
    return any(word in lowered for word in _SECRET_WORDS)


class _Words:
    """What a message may show of each word of one command line (`shown`, index for index)."""

    def __init__(self, parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.shown: list[str] = []
        self.hints: dict[int, str] = {}  # a shown unknown flag's index -> the flag it is like
        self.public = _choices(parser)  # subcommand names, --output's choices: never hidden
        self._scan(parser)

    def _scan(self, parser: argparse.ArgumentParser) -> None:
        options, commands = parser._option_string_actions, _commands(parser)
        wants_value: argparse.Action | None = None  # a known flag whose value comes next
        misspelt = False  # the word before misspells a known flag that takes a plain value
        after_unknown = options_ended = False
        for index, word in enumerate(self.argv):
            action, value = (None, None) if options_ended else _known(word, options, parser)
            flag = action is not None or (not options_ended and _is_flag(word, parser))
            if wants_value is not None and (not flag or _secret(wants_value)):
                self.shown.append(HIDDEN if _secret(wants_value) else word)
                wants_value = None
                continue
            wants_value = None
            if misspelt and not flag:
                self.shown.append(word if _PLAIN_VALUE.fullmatch(word) else HIDDEN)
                misspelt = False
                continue
            misspelt = False
            if word == "--" and not options_ended:  # argparse: only positionals from here on
                self.shown.append(word)
                options_ended = True
            elif not flag:
                if commands and word in commands:  # a subcommand: its own flags from here on
                    parser = commands[word]
                    options, commands = parser._option_string_actions, _commands(parser)
                    after_unknown = False
                    self.shown.append(word)
                elif commands:  # argparse says "invalid choice": a typo, or a value
                    self.shown.append(HIDDEN if after_unknown else word)
                    commands = {}
                else:  # a stray word: perhaps the rest of a value with a space in it
                    self.shown.append(HIDDEN)
            elif action is not None:
                after_unknown = False
                if value is None:
                    self.shown.append(word)
                    wants_value = action if action.nargs != 0 else None
                else:
                    shown = HIDDEN if _secret(action) else value
                    self.shown.append(word[: len(word) - len(value)] + shown)
            elif after_unknown or not word.startswith(parser.prefix_chars[0] * 2):
                # `-P` is a name; `-PS3cret` or `-S3cret` may be a value, and so may any word
                # after an unknown flag: only the flag that starts the run is named
                self.shown.append(word if len(word) == 2 and not after_unknown else HIDDEN)
                after_unknown = True
            else:
                after_unknown = True
                name, equals, value = word.partition("=")
                known = _long(options, parser)
                like = difflib.get_close_matches(name, known, n=3, cutoff=_CLOSE)
                longer = [option for option in known if option.startswith(name)]
                if like or len(longer) == 1:  # a typo, or an abbreviation (refused, as acr's)
                    self.hints[index] = like[0] if like else longer[0]
                misspelt = bool(like) and not looks_secret(name) and _takes_plain(like, options)
                if equals:
                    plain = misspelt and _PLAIN_VALUE.fullmatch(value) is not None
                    self.shown.append(f"{name}={value if plain else HIDDEN}")
                    misspelt = False
                else:
                    self.shown.append(name)

    def unrecognized(self, extras: Sequence[str]) -> str:
        """argparse's "unrecognized arguments" message, each word as this line may show it."""
        words: list[str] = []
        hints: list[str] = []
        start = 0
        for extra in extras:
            try:
                index = self.argv.index(extra, start)
            except ValueError:
                words.append(HIDDEN)
                continue
            words.append(self.shown[index])
            if index in self.hints and self.hints[index] not in hints:
                hints.append(self.hints[index])
            start = index + 1
        message = f"unrecognized arguments: {' '.join(words)}"
        return message + (f"; did you mean {' or '.join(hints)}?" if hints else "")

    def redact(self, message: str) -> str:
        """`message` (invalid choice, ambiguous option, ...) without the words this line hides."""
        pairs = [
            (word, shown)
            for word, shown in zip(self.argv, self.shown, strict=True)
            if word != shown and word not in self.public
        ]
        for word, shown in sorted(pairs, key=lambda pair: -len(pair[0])):
            message = message.replace(repr(word), shown if shown == HIDDEN else repr(shown))
            if word.startswith("-"):  # "ambiguous option: --p=S3cret could match ..."
                whole = re.compile(rf"(?<!\S){re.escape(word)}(?=[\s,:;]|$)")
                message = shown.join(whole.split(message))
        return message


_PARSING: ContextVar[_Words | None] = ContextVar("purge_parsing", default=None)


class RedactingParser(argparse.ArgumentParser):
    """An ArgumentParser whose error messages follow this module's rule; subparsers inherit it.

    Abbreviated flags are refused (`--include` is not taken for `--include-locked`), as acr
    purge's flag parser refuses them: a guess at what the user meant is not a setting.
    Override `fail` to report a message differently (it is safe to show by then).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: None = None
    ) -> argparse.Namespace:
        words = _Words(self, sys.argv[1:] if args is None else args)
        reset = _PARSING.set(words)
        try:
            try:
                ns, extras = self.parse_known_args(words.argv, namespace)
            except argparse.ArgumentError as exc:  # exit_on_error=False; Python 3.13's own path
                self.error(str(exc))
            if extras:
                self.fail(words.unrecognized(extras))
            return ns
        finally:
            _PARSING.reset(reset)

    def error(self, message: str) -> NoReturn:
        words = _PARSING.get()
        self.fail(message if words is None else words.redact(message))

    def fail(self, message: str) -> NoReturn:
        """Print the usage and `message` on stderr and exit 2, as argparse does."""
        super().error(message)


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _choices(parser: argparse.ArgumentParser) -> set[str]:
    """Every choice and subcommand name in `parser` and its subparsers."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found |= {name} | _choices(subparser)
        elif action.choices is not None:
            found |= {str(choice) for choice in action.choices}
    return found


def _is_flag(word: str, parser: argparse.ArgumentParser) -> bool:
    """What argparse takes for a flag (known or not) rather than for a positional word."""
    return (
        len(word) > 1
        and word[0] in parser.prefix_chars
        and " " not in word
        and not _NEGATIVE_NUMBER.fullmatch(word)
    )


def _known(
    word: str, options: dict[str, argparse.Action], parser: argparse.ArgumentParser
) -> tuple[argparse.Action | None, str | None]:
    """The known flag `word` names, and the value attached to it (`--x=v`, `-xv`) if any."""
    if len(word) < 2 or word[0] not in parser.prefix_chars:
        return None, None
    if word in options:
        return options[word], None
    name, equals, value = word.partition("=")
    if equals and name in options:
        return options[name], value
    if word[1] not in parser.prefix_chars and word[:2] in options:
        return options[word[:2]], word[2:]
    return None, None  # abbreviations are unknown flags: RedactingParser refuses them


def _long(options: dict[str, argparse.Action], parser: argparse.ArgumentParser) -> list[str]:
    return [name for name in options if name.startswith(parser.prefix_chars[0] * 2)]


def _secret(action: argparse.Action) -> bool:
    return looks_secret(action.dest)


def _takes_plain(like: list[str], options: dict[str, argparse.Action]) -> bool:
    """Whether a word misspelling `like[0]` may show its value: no close flag is secret."""
    return options[like[0]].nargs != 0 and not any(_secret(options[name]) for name in like)
