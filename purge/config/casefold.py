"""`(?i)` as acr purge's regex engine reads it, for the ASCII names a registry has.

acr purge's engine (regexp2) lowercases: each pattern character when it parses the pattern (Go's
simple `unicode.ToLower`) and each name character when it matches. The `regex` package folds
case instead. On ASCII names the two agree for every atom made of ASCII characters, and differ
only where a non-ASCII character lowers or folds to ASCII: `(?i)ſ` (U+017F) selects `s` and `S`
here and nothing in acr purge, `(?i)ı` selects `I` here only, `(?i)İ` selects `I` in acr purge
only. Classes follow regexp2's own table: a range or `[\\W]` that holds U+0130 selects `i` and
`I`, while U+212A KELVIN SIGN selects `k` only when it stands alone in its class.

`fold_case` therefore rewrites each atom of a case-insensitive part that involves a non-ASCII
character into a case-sensitive class holding exactly the ASCII characters regexp2 selects
(computed from its rules below), and leaves every other atom to `regex`. Rewriting rather than
refusing: such patterns work in acr purge, and a pasted command must keep working. The one
exception is a Unicode property (`\\p{...}`) in a case-insensitive part: regexp2 gives those
case rules of its own (`(?i)\\p{Soft_Dotted}` selects `I`) that no table here reproduces exactly,
so it is refused (Unsupported) rather than approximated. A non-ASCII character in a name (ACR
allows none) is matched case-sensitively by a rewritten atom.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CODE_POINT = 0x10FFFF
KELVIN_SIGN = 0x212A
CAPITAL_I_WITH_DOT = 0x130

Ranges = tuple[tuple[int, int], ...]

#: regexp2's classes in acr purge's RE2 mode (its charclass.go), as code point ranges.
_DIGIT: Ranges = ((0x30, 0x39),)
_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_RE2_SPACE: Ranges = ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20))
_ECMA_SPACE: Ranges = (
    (0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF),
)  # fmt: skip
_SHORTHANDS = {"d": _DIGIT, "w": _WORD, "s": _RE2_SPACE}
#: POSIX classes: ASCII in regexp2 (`digit` is Unicode Nd there, the same on ASCII).
_POSIX: dict[str, Ranges] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": _DIGIT,
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": _ECMA_SPACE,
    "upper": ((0x41, 0x5A),),
    "word": _WORD,
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}
_CHAR_ESCAPES = {"a": 0x07, "b": 0x08, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
_OCTAL = "01234567"
_DECIMAL = "0123456789"
#: An inline flag group, `(?i)`, `(?x-i:`, `(?V1)` (`(?R)` and `(?1)` match too, harmlessly).
_FLAG_GROUP = re.compile(r"\(\?([A-Za-z0-9]*)(?:-([A-Za-z0-9]*))?([:)])")


class Unsupported(ValueError):
    """A case-insensitive part uses a construct whose acr purge meaning cannot be reproduced."""


def go_lower(cp: int) -> int:
    """Go's `unicode.ToLower` of one code point (simple case mapping; Python's is full)."""
    if cp == CAPITAL_I_WITH_DOT:
        return ord("i")  # str.lower() gives "i̇", two code points
    lowered = chr(cp).lower()
    return ord(lowered) if len(lowered) == 1 else cp


def fold_case(text: str) -> str:
    """`text` with acr purge's `(?i)` on ASCII names; unchanged when no atom needs it."""
    return _Folder(text).run()


def end_of_class(text: str, start: int) -> int:
    """Index just past the character class opening at `start` (V0: no nested sets)."""
    i = start + 1
    if i < len(text) and text[i] == "^":
        i += 1
    if i < len(text) and text[i] == "]":  # a leading `]` is a literal
        i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[" and text.startswith(("[:", "[=", "[."), i):
            close = text.find(text[i + 1] + "]", i + 2)
            if close != -1:
                i = close + 2
                continue
        if ch == "]":
            return i + 1
        i += 1
    return len(text)  # unterminated: the regex compiler reports it


def regexp2_ascii(ranges: Ranges, negate: bool) -> set[int]:
    """The ASCII characters regexp2 selects with a case-insensitive class of `ranges`.

    regexp2 merges the class into canonical ranges, replaces each one-character range by its
    lowercase and adds to each longer range its lowercase image from a fixed table (A-Z to
    a-z, U+0130 to `i`; U+212A is not in it); a name character matches when its lowercase is
    in the result. So ASCII `a` matches when the class holds lower(a) or upper(a), U+0130 (for
    i), or a lone U+212A (for k).
    """
    canon = _merge(ranges)
    lone_kelvin = (KELVIN_SIGN, KELVIN_SIGN) in canon

    def holds(cp: int) -> bool:
        return any(lo <= cp <= hi for lo, hi in canon)

    selected = set()
    for a in range(128):
        low = ord(chr(a).lower())
        hit = (
            holds(low)
            or holds(ord(chr(low).upper()))
            or (low == ord("i") and holds(CAPITAL_I_WITH_DOT))
            or (low == ord("k") and lone_kelvin)
        )
        if hit != negate:
            selected.add(a)
    return selected


class _Folder:
    """One left-to-right pass; (?i) and (?x) scoped as in .NET: a bare `(?i)` lasts until the
    enclosing group closes, `(?i:...)` for its group (`regex` scopes them the same way)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out: list[str] = []
        self.ci = False
        self.x = False
        self.saved: list[tuple[bool, bool]] = []
        self.uses_ci = False
        self.v1 = False

    def run(self) -> str:
        text, i = self.text, 0
        while i < len(text):
            ch = text[i]
            if self.x and (ch.isspace() or ch == "#"):  # (?x) whitespace and comments
                end = i + 1 if ch.isspace() else _line_end(text, i)
                self.out.append(text[i:end])
                i = end
            elif ch == "\\":
                i = self.escape(i)
            elif ch == "[":
                i = self.char_class(i)
            elif ch == "(":
                i = self.group(i)
            else:
                if ch == ")" and self.saved:
                    self.ci, self.x = self.saved.pop()
                self.literal(ord(ch), ch)
                i += 1
        if self.v1 and self.uses_ci:
            raise Unsupported("(?V1) together with (?i) is not supported")
        return "".join(self.out)

    def group(self, i: int) -> int:
        text = self.text
        if text.startswith("(?#", i):  # a comment, up to the first `)`
            return self.copy(i, _after(text, ")", i))
        flags = _FLAG_GROUP.match(text, i)
        if flags:
            on, off, kind = flags.group(1), flags.group(2) or "", flags.group(3)
            if kind == ":":
                self.saved.append((self.ci, self.x))
            self.ci = ("i" in on or self.ci) and "i" not in off
            self.x = ("x" in on or self.x) and "x" not in off
            self.uses_ci |= self.ci
            self.v1 |= "V1" in on
            return self.copy(i, flags.end())
        if text.startswith(("(?P=", "(?P>", "(?&"), i):  # a reference: no group opens
            return self.copy(i, _after(text, ")", i))
        self.saved.append((self.ci, self.x))
        if text.startswith(("(?P<", "(?'"), i) or (
            text.startswith("(?<", i) and text[i + 3 : i + 4] not in ("=", "!")
        ):  # a named group: the name is no atom
            return self.copy(i, _after(text, "'" if text[i + 2] == "'" else ">", i + 3))
        if text.startswith("(?(", i) and text[i + 3 : i + 4] != "?":  # (?(name)yes|no)
            return self.copy(i, _after(text, ")", i + 3))
        return self.copy(i, i + 1)  # `(`, `(?:`, `(?=`, ...: the rest scans as atoms

    def escape(self, i: int) -> int:
        text, n = self.text, len(self.text)
        if i + 1 >= n:
            return self.copy(i, n)
        e = text[i + 1]
        if e in _HEX_DIGITS or e == "N" or e == "0":
            cp, end = _char_escape(text, i)
            if cp is None:
                return self.copy(i, end)  # malformed: the compiler reports it
            self.literal(cp, text[i:end])
            return end
        if e in "123456789":  # `regex`: three octal digits are a character, else a group
            if not _at(text, i + 2, _DECIMAL):
                return self.copy(i, i + 2)
            if _at(text, i + 1, _OCTAL) and _at(text, i + 2, _OCTAL) and _at(text, i + 3, _OCTAL):
                self.literal(int(text[i + 1 : i + 4], 8) & 0x1FF, text[i : i + 4])
                return i + 4
            return self.copy(i, i + 3)
        if e in "pP":
            end = _after(text, "}", i + 2) if text[i + 2 : i + 3] == "{" else i + 3
            if self.ci:
                raise _property_under_ci(text[i:end])
            return self.copy(i, end)
        if e in "gL" and text[i + 2 : i + 3] == "<":  # \g<name>, \L<name>
            return self.copy(i, _after(text, ">", i + 3))
        if e.isascii() and e.isalnum():  # shorthands, assertions, \n, \t, ...
            return self.copy(i, i + 2)
        self.literal(ord(e), text[i : i + 2])  # an escaped literal
        return i + 2

    def literal(self, cp: int, source: str) -> None:
        """One character atom; under (?i) a non-ASCII one becomes what regexp2 selects."""
        if cp < 0x80 or not self.ci:
            self.out.append(source)
            return
        lowered = go_lower(cp)
        selected = [a for a in range(128) if ord(chr(a).lower()) == lowered]
        self.out.append(f"(?-i:[{_format([(c, c) for c in (*selected, cp)])}])")

    def char_class(self, i: int) -> int:
        end = end_of_class(self.text, i)
        if _subtracts(self.text[i:end]):
            raise Unsupported(
                f"{self.text[i:end]!r}: acr purge's engine reads '-[' in a class as a class "
                "subtraction (.NET), this one as two characters; list the characters instead"
            )
        if not self.ci:
            return self.copy(i, end)
        ranges, negate, end = self.parse_class(i)
        if all(hi < 0x80 for _, hi in ranges):  # ASCII only: `regex` already agrees
            return self.copy(i, end)
        selected = regexp2_ascii(ranges, negate)
        ascii_part = selected if not negate else set(range(128)) - selected
        members = [(c, c) for c in sorted(ascii_part)]
        members += [(max(lo, 0x80), hi) for lo, hi in _merge(ranges) if hi >= 0x80]
        body = _format(members)
        everything = _format([(0, MAX_CODE_POINT)])
        if negate:
            cls = f"[^{body}]" if body else f"[{everything}]"
        else:
            cls = f"[{body}]" if body else f"[^{everything}]"
        self.out.append(f"(?-i:{cls})")
        return end

    def parse_class(self, i: int) -> tuple[Ranges, bool, int]:
        """The class at `i` as code point ranges, read as `regex` (V0) reads its syntax and
        regexp2 gives meaning to its escapes and POSIX names."""
        text, n = self.text, len(self.text)
        j, negate = i + 1, False
        if text[j : j + 1] == "^":
            j, negate = j + 1, True
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if j >= n:
                raise Unsupported(f"unterminated character class {text[i:]!r}")
            if text[j] == "]" and not first:
                return tuple(ranges), negate, j + 1
            first = False
            item, j = self.class_item(j)
            if (
                isinstance(item, int)
                and text[j : j + 1] == "-"
                and text[j + 1 : j + 2] not in ("]", "")
            ):
                high, j = self.class_item(j + 1)
                if not isinstance(high, int) or high < item:
                    raise Unsupported(f"bad character range in {text[i:j]!r}")
                ranges.append((item, high))
            elif isinstance(item, int):
                ranges.append((item, item))
            else:
                ranges.extend(item)

    def class_item(self, j: int) -> tuple[int | Ranges, int]:
        """One member of a class: a code point, or the ranges of a shorthand or POSIX class."""
        text = self.text
        ch = text[j]
        if ch == "[" and text[j + 1 : j + 2] in (":", "=", "."):
            close = text.find(text[j + 1] + "]", j + 2)
            if close != -1:
                name = text[j + 2 : close]
                negated = name.startswith("^")
                known = _POSIX.get(name.removeprefix("^")) if text[j + 1] == ":" else None
                if known is None:
                    raise Unsupported(f"{text[j : close + 2]!r} under (?i) is not supported")
                return (_complement(known) if negated else known), close + 2
            return ord(ch), j + 1
        if ch != "\\":
            return ord(ch), j + 1
        e = text[j + 1 : j + 2]
        if e and e.lower() in _SHORTHANDS:
            shorthand = _SHORTHANDS[e.lower()]
            return (shorthand if e.islower() else _complement(shorthand)), j + 2
        if e and (e in _HEX_DIGITS or e == "N" or e in _OCTAL):
            cp, end = _char_escape(text, j)
            if cp is None:
                raise Unsupported(f"malformed escape {text[j:end]!r}")
            return cp, end
        if e and e in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[e], j + 2
        if e and e in "pP":
            end = _after(text, "}", j + 2) if text[j + 2 : j + 3] == "{" else j + 3
            raise _property_under_ci(text[j:end])
        if not e or (e.isascii() and e.isalnum()):
            raise Unsupported(
                f"{text[j : j + 2]!r} in a character class under (?i) is not supported"
            )
        return ord(e), j + 2

    def copy(self, start: int, end: int) -> int:
        self.out.append(self.text[start:end])
        return end


def _subtracts(cls: str) -> bool:
    """Whether regexp2 reads a subtraction (`[a-z-[aeiou]]`) in the class text `cls`: an
    unescaped `-[` after its first member."""
    j = 2 if cls.startswith("[^") else 1
    j += 2 if cls[j : j + 1] == "\\" else 1
    while j < len(cls) - 1:
        if cls[j] == "\\":
            j += 2
        elif cls.startswith("-[", j):
            return True
        else:
            j += 1
    return False


def _property_under_ci(token: str) -> Unsupported:
    return Unsupported(
        f"{token!r} under (?i) is not supported: acr purge's engine gives Unicode properties "
        "case rules of its own; list the characters instead (e.g. [A-Za-z]), or end (?i) "
        "before it with (?-i)"
    )


def _char_escape(text: str, i: int) -> tuple[int | None, int]:
    """`\\xHH`, `\\uHHHH`, `\\UHHHHHHHH`, `\\N{name}` or an octal escape of up to three digits
    at `i`, as `regex` reads it: (code point, or None when malformed; end)."""
    e = text[i + 1]
    if e in _HEX_DIGITS:
        end = i + 2 + _HEX_DIGITS[e]
        digits = text[i + 2 : end]
        ok = len(digits) == _HEX_DIGITS[e] and all(c in "0123456789abcdefABCDEF" for c in digits)
        cp = int(digits, 16) if ok else None
        return (cp if cp is not None and cp <= MAX_CODE_POINT else None), end
    if e == "N":
        end = _after(text, "}", i + 2)
        try:
            return ord(unicodedata.lookup(text[i + 3 : end - 1])), end
        except (KeyError, TypeError):
            return None, end
    end = i + 2
    while end < i + 4 and _at(text, end, _OCTAL):
        end += 1
    return int(text[i + 1 : end], 8), end


def _at(text: str, k: int, chars: str) -> bool:
    """Whether there is a character at `k` and it is one of `chars`."""
    return k < len(text) and text[k] in chars


def _after(text: str, close: str, start: int) -> int:
    """Index just past the first `close` at or after `start` (the end when there is none)."""
    at = text.find(close, start)
    return len(text) if at == -1 else at + len(close)


def _line_end(text: str, i: int) -> int:
    at = text.find("\n", i)
    return len(text) if at == -1 else at


def _merge(ranges: Ranges | list[tuple[int, int]]) -> Ranges:
    """Sorted ranges with overlapping and touching ones joined (regexp2's canonical form)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _complement(ranges: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in _merge(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODE_POINT:
        out.append((nxt, MAX_CODE_POINT))
    return tuple(out)


def _format(ranges: list[tuple[int, int]]) -> str:
    """Class members spelled with escapes only, so no flag or position changes their meaning."""
    return "".join(
        _escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}" for lo, hi in _merge(ranges)
    )


def _escape(cp: int) -> str:
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"
