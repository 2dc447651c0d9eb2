"""Text clean-up shared by parsing, extraction and display (watcher/text.py)."""

from __future__ import annotations

import random
import re

import pytest

from watcher.text import clean_text, collapse_spaces

# Whitespace of every kind str.split() and the regex \s know (vertical tab, file separators, NEL, no-break and
# ideographic spaces, line and paragraph separators), next to letters and newlines.
PIECES = [" ", "  ", "\t", "\n", "\n\n", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2028", "\u3000", "a", "bc", "Д"]


def by_definition(text: str) -> str:
    """The rule as first written, line by line: each line's runs of whitespace as one space, stripped; runs of
    blank lines as one; the whole stripped."""
    lines = (re.sub(r"[^\S\n]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n\s*\n\s*", "\n\n", "\n".join(lines)).strip()


@pytest.mark.parametrize(
    "text, paragraphs, one_line",
    [
        ("  Troops \t moved  west \n", "Troops moved west", "Troops moved west"),
        ("First.\n \n\n\t\nSecond.", "First.\n\nSecond.", "First. Second."),
        ("a\u3000\u3000b\xa0c\u2028d", "a b c d", "a b c d"),  # Unicode spaces are spaces, on one line
        (" \n \n ", "", ""),
    ],
)
def test_collapse_spaces(text, paragraphs, one_line):
    assert collapse_spaces(text, one_line=False) == paragraphs
    assert collapse_spaces(text, one_line=True) == one_line


def test_collapse_spaces_keeps_to_its_definition_on_random_text():
    rnd = random.Random(17)
    for _ in range(20_000):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 16)))
        assert collapse_spaces(text, one_line=False) == by_definition(text), repr(text)


def test_clean_text_drops_controls_and_replaces_lone_surrogates():
    assert clean_text("a\r\nb\rc") == "a\nb\nc"
    assert clean_text("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
    assert clean_text("lone \udcff and \ud800 surrogates") == "lone \ufffd and \ufffd surrogates"
    kept = "".join(chr(c) for c in range(0xE000) if not 0xD800 <= c <= 0xDFFF)
    dropped = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\t", "\n", "\r"}
    assert clean_text(kept) == "".join(ch for ch in kept if ch not in dropped).replace("\r", "\n")
