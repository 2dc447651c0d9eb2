"""Text for the rule engine: cutting text into words, and the tokenised article every topic shares.

One regular expression cuts both articles and rule terms into words, so a rule term and the text it must
match are always cut the same way ("Kim Jong-un" and "Kim Jong Un" are both kim · jong · un; "U.S." is us).

Each word gets two keys, its form and its stem (forms.py). Both are cached per distinct raw word, so a word is normalised once per process, not once per article.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from .forms import CJK, CYRILLIC, HANGUL, LATIN, OTHER, fold, script_of, stem

__all__ = [
    "CJK",
    "CYRILLIC",
    "GAP",
    "HANGUL",
    "LATIN",
    "LEAD_WORDS",
    "OTHER",
    "VOCABULARY",
    "ArticleText",
    "fold",
    "normalise",
    "script_of",
    "stem",
    "word_offsets",
    "words_of",
]

# A word: a number with separators (3,000 -> 3000; 1.5 stays), a dotted acronym (U.S., N.K.; the dots are
# dropped), or letters/digits with combining marks, with an English possessive absorbed (Russia's -> russia).
# A sentence end (. ! ? … before a space) and a line break are tokens of their own, so one pass yields words
# and sentences; they never get a word position. (Each alternative starts with a different character class:
# 3x faster than the obvious form.)
WORD_RE = re.compile(
    r"\d+(?:[.,]\d+)+|\w(?:\.\w\.(?:\w\.)*|[\w\u0300-\u036f]*(?:['’][sS]\b)?)|[.!?…](?=[\"”’»)\]]?(?:\s|$))|\n"
)

# The words that end with a dot yet do not end a sentence ("Mr. Putin", "Gen. Syrskyi").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr gen lt col maj sgt capt adm cmdr st gov sen rep pres prof no vs jan feb mar apr jun jul aug"
    " sep sept oct nov dec inc corp co ltd jr sr".split()
)

# --- cutting text into words ---------------------------------------------------------------------------------

LEAD_WORDS = 60  # lead: the title and the first 60 words of the body

_BREAK = ("", "")  # a sentence end: no word
_LINE = ("", "\n")  # a line break: a sentence end whatever came before
_NORMALISED: dict[str, tuple[str, str]] = {}


def normalise(raw: str) -> tuple[str, str]:
    """raw token -> (form, stem); _BREAK for sentence ends. Cached: news vocabularies repeat."""
    hit = _NORMALISED.get(raw)
    if hit is None:
        first = raw[0]
        if first == "\n":
            hit = _LINE
        elif first in ".!?…":
            hit = _BREAK
        else:
            word = raw
            if len(word) > 2 and word[-2] in "'’":
                word = word[:-2]  # Russia's -> Russia
            if first.isdigit():
                word = word.replace(",", "")  # 3,000 -> 3000
            elif "." in word:
                word = word.replace(".", "")  # U.S. -> US
            form = fold(word)
            hit = (form, stem(form))
        if len(_NORMALISED) > 400_000:
            _NORMALISED.clear()
        _NORMALISED[raw] = hit
    return hit


def _normalise_all(raws: list[str]) -> list[tuple[str, str]]:
    cached = list(map(_NORMALISED.get, raws))  # the common case, all cached, stays in C
    if None in cached:
        return [t or normalise(r) for t, r in zip(cached, raws)]
    return cached  # type: ignore[return-value]  # no None left: checked just above


def words_of(text: str) -> list[str]:
    """The folded forms of the words in a piece of rule text (no sentence ends)."""
    return [f for f, _ in map(normalise, WORD_RE.findall(text)) if f]


# The words and stems the compiled rules look up (evaluate.py registers them): an article indexes only these.
VOCABULARY: set[str] = set()
GAP = 512  # bits between the title's and the body's words in a mask: more than any NEAR reaches (500 + 1)


class ArticleText:
    """An article cut into words once, shared by every topic that looks at it.

    Words are numbered from 0: the title's words first, then the body's (`title_end` is the first body
    position). In bit masks the body's words start GAP bits after the title's, so that no NEAR reaches across
    (position_of converts back). Everything beyond the word stems is built on first use (the index of the
    rules' words, the sorted forms for prefixes, the sentence starts): most articles stop at the stem set.
    """

    __slots__ = (
        "_form_index",
        "_index",
        "_indexed",
        "_scope_masks",
        "_scripts",
        "_sentence_starts",
        "_sorted_forms",
        "_stem_masks",
        "_tokens",
        "body",
        "forms",
        "masks",
        "memo",
        "stem_set",
        "stems",
        "title",
        "title_end",
    )

    def __init__(self, title: str, body: str):
        self.title = title or ""
        self.body = body or ""
        title_tokens = _normalise_all(WORD_RE.findall(self.title))
        body_tokens = _normalise_all(WORD_RE.findall(self.body)) if self.body else []
        self._tokens = (title_tokens, body_tokens)
        title_words = [t for t in title_tokens if t[0]]
        words = title_words + [t for t in body_tokens if t[0]]
        self.title_end = len(title_words)
        self.forms: tuple[str, ...] = tuple(w[0] for w in words)
        self.stems: tuple[str, ...] = tuple(w[1] for w in words)
        self.stem_set = frozenset(self.stems)
        self._scripts: dict[str, bool] = {}  # has_script's answers, found on first use
        self.memo: dict = {}  # shared by the topics evaluated on this article: term -> positions, spans
        self.masks: dict = {}  # node -> the positions it covers, as a bit mask
        self._stem_masks: dict[str, int] = {}
        self._scope_masks: tuple[int, ...] | None = None
        self._index: dict[str, list[int]] = {}
        self._form_index: dict[str, list[int]] | None = None
        self._indexed = -1  # the size of VOCABULARY when the index was built
        self._sorted_forms: list[str] | None = None
        self._sentence_starts: list[int] | None = None

    def __len__(self) -> int:
        return len(self.forms)

    def has_script(self, script: str) -> bool:
        """Whether the title or the body has a character of `script` (CYRILLIC, HANGUL or CJK). Only rules with
        terms in those scripts ask (evaluate.py), so it is found on first use; isascii() is free (CPython keeps
        the flag), so most English text is answered without a scan."""
        found = self._scripts.get(script)
        if found is None:
            pattern = _SCRIPT_CLASSES[script]
            found = any(not text.isascii() and pattern.search(text) is not None for text in (self.title, self.body))
            self._scripts[script] = found
        return found

    def by_stem(self) -> dict[str, list[int]]:
        """Stem -> positions, for the stems in VOCABULARY (one pass, a set test per word)."""
        if self._indexed != len(VOCABULARY):
            self._index = _index(self.stems)
            self._form_index = None
            self._indexed = len(VOCABULARY)
        return self._index

    def by_form(self) -> dict[str, list[int]]:
        """Form -> positions, for the forms in VOCABULARY (exact =words)."""
        if self._indexed != len(VOCABULARY) or self._form_index is None:
            self.by_stem()
            self._form_index = _index(self.forms)
        return self._form_index

    def position_of(self, bit: int) -> int:
        return bit if bit < self.title_end else bit - GAP

    def stem_mask(self, stem: str) -> int:
        """The bits of a stem's positions (0 when absent)."""
        found = self._stem_masks.get(stem)
        if found is None:
            found = 0
            if stem in self.stem_set:
                VOCABULARY.add(stem)
                t = self.title_end
                for p in self.by_stem().get(stem, ()):
                    found |= 1 << (p if p < t else p + GAP)
            self._stem_masks[stem] = found
        return found

    def scope_mask(self, scope: int) -> int:
        """The bits of a scope: 0 all, 1 title, 2 body, 3 lead (the title and the first LEAD_WORDS)."""
        masks = self._scope_masks
        if masks is None:
            n, t = len(self.forms), self.title_end
            title = (1 << t) - 1
            first_body = 1 << (t + GAP)
            body = (first_body << (n - t)) - first_body
            lead = title | ((first_body << min(n - t, LEAD_WORDS)) - first_body)
            masks = self._scope_masks = (title | body, title, body, lead)
        return masks[scope]

    def forms_with_prefix(self, prefix: str) -> list[str]:
        if self._sorted_forms is None:
            self._sorted_forms = sorted(set(self.forms))
        sf = self._sorted_forms
        return sf[bisect_left(sf, prefix) : bisect_left(sf, prefix + "\U0010ffff")]

    def forms_containing(self, part: str) -> list[str]:
        return [f for f in set(self.forms) if part in f]

    @property
    def sentence_starts(self) -> list[int]:
        """The position where each sentence begins; the title is a sentence of its own, so is each line."""
        if self._sentence_starts is None:
            starts = [0]
            offset = 0  # words before this field
            for tokens in self._tokens:
                if offset and starts[-1] != offset:
                    starts.append(offset)  # the body starts a sentence
                # the k-th non-word token at index i follows i - k words of this field
                for k, i in enumerate([i for i, tok in enumerate(tokens) if not tok[0]]):
                    position = offset + i - k
                    after = tokens[i - 1][0] if i else ""
                    if starts[-1] != position and (tokens[i] is _LINE or after not in _ABBREVIATIONS):
                        starts.append(position)  # a sentence end ("Mr." is not one)
                offset += sum(1 for tok in tokens if tok[0])
            self._sentence_starts = starts
        return self._sentence_starts

    def sentence_of(self, position: int) -> int:
        return bisect_right(self.sentence_starts, position) - 1


def _index(words: Sequence[str]) -> dict[str, list[int]]:
    vocabulary = VOCABULARY
    index: dict[str, list[int]] = {}
    for i in [i for i, w in enumerate(words) if w in vocabulary]:
        index.setdefault(words[i], []).append(i)
    return index


_SCRIPT_CLASSES = {
    CYRILLIC: re.compile(r"[\u0400-\u052f]"),
    HANGUL: re.compile(r"[\uac00-\ud7a3\u3130-\u318f]"),
    CJK: re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]"),
}


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Character offsets of the words of `text`, in the order ArticleText numbers them (for snippets)."""
    out = []
    for m in WORD_RE.finditer(text):
        raw = m.group()
        if normalise(raw)[0]:
            end = m.end() - 2 if len(raw) > 2 and raw[-2] in "'’" else m.end()  # Russia's: mark Russia
            out.append((m.start(), end))
    return out
