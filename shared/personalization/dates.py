"""Java ``SimpleDateFormat`` patterns, formatted by babel (CLDR) in English (``en_US``).

CLDR patterns are Java's nearly letter for letter; where they differ, the Java meaning is
kept, so a pattern written for a Java backend prints the same here:

- ``u`` is Java's day number of the week (1 = Monday … 7 = Sunday), not CLDR's extended
  year; ``S`` is the millisecond as a number (``SSS`` = ``007``), not CLDR's fraction.
  Both are computed here.
- Four or more ``E``, ``M`` or ``L`` mean the full name (CLDR's five is a narrow
  ``F``); any number of ``a`` is ``AM``/``PM``, of ``G`` is ``AD``, of ``Z`` is
  ``+0200``; four or more ``z`` is the long zone name.
- Letters Java does not know (CLDR's ``Q``, ``e``, ``c``, ``B``, ``O``, ``v``, …) and
  numbers longer than CLDR allows (``ddd``, ``HHH``) are rejected, as is an unterminated
  quote. Quotes work as in Java: ``'o''clock'`` prints ``o'clock``, ``''`` a quote.
- ``z`` of a date given with a numeric offset prints that offset (``+0200``); Java would
  print ``GMT+02:00``. A date without an offset is UTC.

A pattern is parsed once (``date_pattern`` keeps the last 256), so a call costs one
babel format of the already parsed pattern.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from babel import Locale
from babel.dates import DateTimePattern, parse_pattern

MAX_PATTERN_CHARS = 100
_JAVA_LETTERS = frozenset("GyYMLwWDdFEuaHkKhmsSzZX")
# A quoted literal ('' inside is a quote), a run of one letter, or anything else.
_TOKEN = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|'|[^'A-Za-z]+")
# Java's letter run -> the CLDR run that prints the same.
_TO_CLDR: dict[str, Callable[[int], str]] = {
    "E": lambda n: "E" * min(n, 4),
    "M": lambda n: "M" * min(n, 4),
    "L": lambda n: "L" * min(n, 4),
    "a": lambda n: "a",
    "G": lambda n: "G",
    "Z": lambda n: "Z",
    "z": lambda n: "z" * min(n, 4),
}
# Java's numbers that CLDR does not have; the run's length is the minimum digits.
_COMPUTED: dict[str, Callable[[datetime], int]] = {
    "u": lambda when: when.isoweekday(),
    "S": lambda when: when.microsecond // 1000,
}


class DatePatternError(ValueError):
    pass


@functools.cache
def _english() -> Locale:
    return Locale.parse("en_US")


@dataclass(frozen=True)
class DatePattern:
    """A parsed pattern: babel patterns and computed numbers, in order."""

    parts: tuple[DateTimePattern | tuple[str, int], ...]

    def format(self, when: datetime) -> str:
        locale = _english()
        return "".join(
            str(_COMPUTED[part[0]](when)).zfill(part[1])
            if isinstance(part, tuple)
            else part.apply(when, locale)
            for part in self.parts
        )


def _cldr_run(run: str) -> str:
    letter = run[0]
    if letter not in _JAVA_LETTERS:
        raise DatePatternError(f"unsupported date pattern letter(s) {run!r}")
    if letter == "X" and len(run) > 3:
        raise DatePatternError(f"date pattern {run!r}: X is at most XXX")
    return _TO_CLDR[letter](len(run)) if letter in _TO_CLDR else run


def _babel(cldr: str) -> DateTimePattern:
    try:
        return parse_pattern(cldr)
    except ValueError as exc:  # e.g. "Invalid length for field: 'ddd'"
        raise DatePatternError(f"date pattern {cldr!r}: {exc}") from None


@functools.lru_cache(maxsize=256)
def date_pattern(pattern: str) -> DatePattern:
    """Parse a Java ``SimpleDateFormat`` pattern; DatePatternError says what is wrong."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise DatePatternError(f"a date pattern is at most {MAX_PATTERN_CHARS} characters")
    parts: list[DateTimePattern | tuple[str, int]] = []
    cldr = ""
    for match in _TOKEN.finditer(pattern):
        token = match.group(0)
        if token == "'":
            raise DatePatternError(f"unterminated quote in date pattern {pattern!r}")
        if token[0] in _COMPUTED:
            if cldr:
                parts.append(_babel(cldr))
            parts.append((token[0], len(token)))
            cldr = ""
        elif match.group(1):
            cldr += _cldr_run(token)
        else:  # quoted or other literal text: the same syntax in CLDR
            cldr += token
    if cldr or not parts:
        parts.append(_babel(cldr))
    return DatePattern(tuple(parts))
