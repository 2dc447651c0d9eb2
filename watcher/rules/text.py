"""Text for the rule engine: folding, word forms and the tokenised article every topic shares.

One regular expression cuts both articles and rule terms into words, so a rule term and the text it must
match are always cut the same way ("Kim Jong-un" and "Kim Jong Un" are both kim · jong · un; "U.S." is us).

Each word gets two keys:
  form  the word case-folded with diacritics removed (é -> e, ё -> е, ß -> ss); Hangul and CJK are left alone
  stem  the form reduced to its word family: a light English suffix stripper (drones -> drone, deployed,
        deployment -> deploy, supplies -> supply, sent -> send) and a light Russian ending stripper
        (беспилотники, беспилотников -> беспилотник); other scripts: the form itself.
Both are cached per distinct raw word, so a word is normalised once per process, not once per article.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

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
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "gen",
        "lt",
        "col",
        "maj",
        "sgt",
        "capt",
        "adm",
        "cmdr",
        "st",
        "gov",
        "sen",
        "rep",
        "pres",
        "prof",
        "no",
        "vs",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "inc",
        "corp",
        "co",
        "ltd",
        "jr",
        "sr",
    ]
)

HANGUL, CJK, CYRILLIC, LATIN, OTHER = "hangul", "cjk", "cyrillic", "latin", "other"

_FOLD_EXTRA = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def script_of(form: str) -> str:
    """The script of a folded word, judged by its first letter (digits count as Latin)."""
    for ch in form:
        o = ord(ch)
        if o < 0x250 or ch.isdigit():
            return LATIN
        if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
            return HANGUL
        if 0x0400 <= o <= 0x052F:
            return CYRILLIC
        if 0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF:
            return CJK
        return OTHER
    return OTHER


def fold(word: str) -> str:
    """Case-fold and strip diacritics; Hangul and CJK are kept as written (NFKD would split Hangul into jamo)."""
    w = word.casefold()
    if w.isascii():
        return w
    if script_of(w) in (HANGUL, CJK):
        return unicodedata.normalize("NFC", w)
    w = unicodedata.normalize("NFKD", w)
    w = "".join(ch for ch in w if not unicodedata.combining(ch))
    return w.translate(_FOLD_EXTRA)


# --- English word forms -------------------------------------------------------------------------------------

# Irregular forms mapped to the word they belong to, and words the suffix rules would damage.
_IRREGULAR = {
    "sent": "send",
    "sold": "sell",
    "bought": "buy",
    "built": "build",
    "fought": "fight",
    "brought": "bring",
    "withdrew": "withdraw",
    "withdrawn": "withdraw",
    "withdrawal": "withdraw",
    "withdrawals": "withdraw",
    "arrival": "arrive",
    "arrivals": "arrive",
    "flew": "fly",
    "flown": "fly",
    "gave": "give",
    "given": "give",
    "took": "take",
    "taken": "take",
    "made": "make",
    "began": "begin",
    "begun": "begin",
    "left": "leave",
    "men": "man",
    "women": "woman",
    "paid": "pay",
    "sought": "seek",
    "held": "hold",
    "went": "go",
    "gone": "go",
    "drew": "draw",
    "drawn": "draw",
    "rode": "ride",
    "ran": "run",
    "met": "meet",
    "kept": "keep",
    "struck": "strike",
    "shot": "shoot",
    "lent": "lend",
    "stood": "stand",
    "pulled": "pull",
    "redeployment": "redeploy",
    "sales": "sale",
    "deliveries": "delivery",
}
_KEEP = frozenset(
    [
        "news",
        "series",
        "species",
        "during",
        "thus",
        "various",
        "was",
        "has",
        "does",
        "is",
        "this",
        "its",
        "his",
        "hers",
        "lens",
        "bias",
        "gas",
        "chaos",
        "united",
        "always",
        "perhaps",
        "whereas",
        "christmas",
        "status",
        "campus",
        "virus",
        "bonus",
        "analysis",
        "crisis",
        "basis",
        "thesis",
        "kursk",
        "paris",
        "texas",
        "athens",
        "wales",
        "brussels",
        "mars",
        "isis",
        "hamas",
    ]
)
_VOWELS = frozenset("aeiouy")


def _has_vowel(s: str) -> bool:
    return any(c in _VOWELS for c in s)


def stem_english(w: str) -> str:
    """A light, predictable English stemmer: inflections (-s, -es, -ies, -ed, -ing), -ment, a final -e.

    It does not try to join derivations such as produce/production (write produc* for that). Rule words and
    text words go through the same function, so only a collision with a rule word can hurt; tests pin them.
    """
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or w in _KEEP or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("ied") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ed") and len(w) > 4 and _has_vowel(w[:-2]):
        w = w[:-2]
    elif w.endswith("ing") and len(w) > 5 and _has_vowel(w[:-3]):
        w = w[:-3]
    if w.endswith("ment") and len(w) > 7:
        w = w[:-4]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz" and w[-1] not in _VOWELS:
        w = w[:-1]  # shipped -> shipp -> ship; staff -> staf, staffed -> staf
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]  # produce, produced, producing -> produc
    return w


# --- Russian word forms -------------------------------------------------------------------------------------

# Case, number, gender and verb endings, longest first; written folded (й -> и, ё -> е), as fold() leaves them.
_RU_ENDINGS = tuple(
    sorted(
        {
            fold(e)
            for e in [
                "иями",
                "ями",
                "ами",
                "иях",
                "ях",
                "ах",
                "ием",
                "ием",
                "ией",
                "ией",
                "ей",
                "ой",
                "ий",
                "ый",
                "ое",
                "ее",
                "ые",
                "ие",
                "ых",
                "их",
                "ым",
                "им",
                "ом",
                "ем",
                "ого",
                "его",
                "ому",
                "ему",
                "ая",
                "яя",
                "ую",
                "юю",
                "ою",
                "ею",
                "ов",
                "ев",
                "ям",
                "ам",
                "ия",
                "ья",
                "ье",
                "ью",
                "ию",
                "ии",
                "ьи",
                "а",
                "я",
                "о",
                "е",
                "ы",
                "и",
                "у",
                "ю",
                "ь",
                "ешь",
                "ишь",
                "ете",
                "ите",
                "ет",
                "ит",
                "ут",
                "ют",
                "ат",
                "ят",
                "ть",
                "ла",
                "ло",
                "ли",
                "л",
                "ся",
                "сь",
            ]
        },
        key=len,
        reverse=True,
    )
)


def stem_russian(w: str) -> str:
    """Strip a reflexive particle, then the longest inflectional ending, keeping a stem of at least 3 letters."""
    for refl in ("ся", "сь"):
        if w.endswith(refl) and len(w) - 2 >= 4:
            w = w[:-2]
            break
    for ending in _RU_ENDINGS:
        if w.endswith(ending) and len(w) - len(ending) >= 3:
            return w[: -len(ending)]
    return w


def stem(form: str) -> str:
    """The word-family key of a folded word."""
    script = script_of(form)
    if script == LATIN:
        return stem_english(form)
    if script == CYRILLIC:
        return stem_russian(form)
    return form


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
        "_sentence_starts",
        "_sorted_forms",
        "_stem_masks",
        "_tokens",
        "body",
        "forms",
        "has_cjk",
        "has_cyrillic",
        "has_hangul",
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
        text_all = self.title + " " + self.body
        # max() is one C pass: below U+0400 there is no Cyrillic, below U+3040 no Hangul syllable and no CJK
        top = max(text_all)
        self.has_cyrillic = top >= "\u0400" and _CYRILLIC_RE.search(text_all) is not None
        if top < "\u3040":
            self.has_hangul = self.has_cjk = False
        else:
            self.has_hangul = _HANGUL_RE.search(text_all) is not None
            self.has_cjk = _CJK_RE.search(text_all) is not None
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


_CYRILLIC_RE = re.compile(r"[\u0400-\u052f]")
_HANGUL_RE = re.compile(r"[\uac00-\ud7a3\u3130-\u318f]")
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Character offsets of the words of `text`, in the order ArticleText numbers them (for snippets)."""
    out = []
    for m in WORD_RE.finditer(text):
        raw = m.group()
        if normalise(raw)[0]:
            end = m.end() - 2 if len(raw) > 2 and raw[-2] in "'’" else m.end()  # Russia's: mark Russia
            out.append((m.start(), end))
    return out
