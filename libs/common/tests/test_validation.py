"""The shared input checks: one-line text refuses every control character, and only them."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from pydantic import TypeAdapter, ValidationError

from ticketing_common.validation import SingleLine

LINE = TypeAdapter(SingleLine)
CONTROLS = [
    chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cc"
]


def test_there_are_65_control_characters_c0_del_and_c1() -> None:
    assert len(CONTROLS) == 65
    assert {"\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f"} <= set(CONTROLS)


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_every_control_character_is_refused_wherever_it_stands(char: str) -> None:
    for text in (char, f"{char}title", f"ti{char}tle", f"title{char}"):
        with pytest.raises(ValidationError, match="Must not contain control characters"):
            LINE.validate_python(text)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"], ids=["line", "paragraph"])
def test_unicode_line_and_paragraph_separators_are_refused(separator: str) -> None:
    with pytest.raises(ValidationError, match="Must not contain control characters"):
        LINE.validate_python(f"one{separator}two")


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"], ids=["high", "low"])
def test_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="Must be valid Unicode text"):
        LINE.validate_python(text)


@pytest.mark.parametrize(
    "text",
    ["Concert", "  spaced  ", "Été — 東京 · مسرح 🎟", "\u00a0no-break", "zero\u200bwidth", ""],
)
def test_printable_text_in_any_script_is_kept_as_given(text: str) -> None:
    assert LINE.validate_python(text) == text
