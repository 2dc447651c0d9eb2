"""Word forms: which script a word is in, folding (case and diacritics), and the stem of its word family.

  form  the word case-folded with diacritics removed (é -> e, ё -> е, ß -> ss); Hangul and CJK are left alone
  stem  the form reduced to its word family: a light English suffix stripper (drones -> drone, deployed,
        deployment -> deploy, supplies -> supply, sent -> send) and a light Russian ending stripper
        (беспилотники, беспилотников -> беспилотник); other scripts: the form itself.
Rule words and text words go through the same functions (text.py), so only a collision with a rule word can hurt;
tests/test_topics.py pins the forms that matter to the default rules.
"""

from __future__ import annotations

import unicodedata

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
    "news series species during thus various was has does is this its his hers lens bias gas chaos united"
    " always perhaps whereas christmas status campus virus bonus analysis crisis basis thesis kursk paris"
    " texas athens wales brussels mars isis hamas".split()
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
            for e in (
                "иями ями ами иях ях ах ием ием ией ией ей ой ий ый ое ее ые ие ых их ым им ом ем ого его ому ему "
                "ая яя ую юю ою ею ов ев ям ам ия ья ье ью ию ии ьи а я о е ы и у ю ь "
                "ешь ишь ете ите ет ит ут ют ат ят ть ла ло ли л ся сь"
            ).split()
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
