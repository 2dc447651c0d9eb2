"""The same-story decision: does a new article report the same news event as a recent stored one?

Pure: `decide_story` takes the article's terms, the candidates the store's index found (docs/stories.md), the
document frequencies of their terms and `now`, and returns which story to join, or none. The store finds the
candidates without scanning stored articles: it looks up the article's index keys (its rarest terms) for the
window, so the cost per article does not grow with the store.

Why a small scorer of our own, not MinHash or TF-IDF from a library: the evaluation pairs (bench/eval_stories.py)
are feed titles and one-sentence summaries, where two outlets share a handful of words. MinHash's Jaccard estimate
over so few shingles is noise, and plain TF-IDF cosine reaches precision 0.95 only at recall 0.46. What separates
"same event" from "same war, another event" is which words are shared: names, places and numbers that few articles
carry (weighted by document frequency), and whether one headline's words appear in the other's text. Those are a
dozen lines of Python, with no model to ship.

Feed text is a stranger's input: every text is cut to a bounded length before it is split, and every set of terms
is bounded, so a hostile entry cannot make the decision slow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

MAX_TITLE_CHARS = 300
MAX_LEAD_CHARS = 600  # the title and the first sentences carry the event; the rest of a body adds angles
MAX_TERMS = 60
INDEX_KEYS = 16  # rarest terms written to the index; 8 found 90% of same-story dev pairs, 16 found 99.6%
# A young store has seen few articles: every term looks common and nothing would merge. Counting as if it had
# seen at least this many makes unseen terms rare from the start; a store past it uses its own counts.
COLD_START_DOCUMENTS = 200
# Stored articles scored per new article, at most (those sharing the most keys). Each costs ~25 us (read, parse,
# score), and a full window always fills the cut; 30 found no more same-story pairs than 25 (docs/stories.md).
CANDIDATES = 25

# Words that say nothing about which event it is: function words and the vocabulary of every news item.
_STOPWORD_TEXT = """
    a about above after again against ago all also am an and any are as at be been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
    out over own same she should so some such than that the their them then there these they this those through
    to too under until up very was we were what when where which while who whom why will with would you your
    says said say saying told tells tell new news latest live update updates report reports reported reporting
    amid after over via could may might must shall one two first last year years day days week weeks month months
    people time times get gets got make makes made take takes took back still us vs mr ms mrs since yet
    video watch photos pictures analysis opinion what's here's how
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_NUMBER = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class StoryText:
    """An article reduced to what the decision compares: its title terms and the terms of title and lead."""

    title_terms: frozenset[str]
    terms: frozenset[str]  # title and lead
    published_at: datetime | None = None
    # Total inverse document frequency of `terms` and of `title_terms`, fixed when the article was stored (None:
    # computed from the frequencies at hand). A stored candidate carries them, so the decision needs the current
    # frequencies of the new article's terms only; the counts drift slowly, and that drift is all it costs.
    weight: float | None = None
    title_weight: float | None = None

    @classmethod
    def of(cls, title: str, text: str, published_at: datetime | None = None) -> StoryText:
        title, lead = title[:MAX_TITLE_CHARS], text[:MAX_LEAD_CHARS]
        title_terms = frozenset(filter(None, map(_term_of, _words(title))))
        terms = frozenset(list(title_terms) + list(filter(None, map(_term_of, _words(lead))))[:MAX_TERMS])
        return cls(title_terms, terms, published_at)

    def weighed(self, df: Mapping[str, int], documents: int) -> StoryText:
        """The same text with its weights fixed from these frequencies (what the store keeps)."""
        idf = _idf(df, documents)
        return replace(self, weight=sum(idf(t) for t in self.terms), title_weight=sum(idf(t) for t in self.title_terms))

    def index_keys(self, df: Mapping[str, int]) -> tuple[str, ...]:
        """The rarest terms, title first on ties: what the store indexes and looks up for the window."""
        ranked = sorted(self.terms, key=lambda t: (df.get(t, 0), t not in self.title_terms, t))
        return tuple(ranked[:INDEX_KEYS])


@dataclass(frozen=True, slots=True)
class StoryCandidate:
    """A stored article the index found, with the story it belongs to."""

    article_id: int
    story_id: int
    text: StoryText


@dataclass(frozen=True, slots=True)
class StorySettings:
    window: timedelta = timedelta(hours=72)
    # On the log-odds below: the lowest that keeps precision >= 0.96 on half A of the dev pairs
    # (bench/eval_stories.py --fit --precision 0.96). Precision first: a false merge hides a story.
    threshold: float = 1.203


@dataclass(frozen=True, slots=True)
class StoryDecision:
    story_id: int | None  # None: a new story
    score: float
    article_id: int | None  # the stored article it matched best


# Logistic weights, fitted on half "A" of the dev pairs by bench/eval_stories.py --fit (the other half is kept to
# report on). Features: see `features`.
WEIGHTS: tuple[float, ...] = (-0.258, -0.763, 2.942, 2.420, 1.661, 1.157, -0.899, -0.014)
BIAS = -7.048
FEATURES = ("overlap", "containment", "title", "title_in_text", "evidence", "evidence_close", "gap", "rare")


def decide_story(
    article: StoryText,
    candidates: Sequence[StoryCandidate],
    df: Mapping[str, int],
    documents: int,
    now: datetime,
    settings: StorySettings,
) -> StoryDecision:
    """The story the article joins: the best-scoring candidate of the window above the threshold, else none."""
    best = StoryDecision(None, -math.inf, None)
    documents = max(documents, COLD_START_DOCUMENTS)
    # What the features need of the article is computed once for all its candidates (~25 in a full window).
    features_against = _FeaturesOf(article.weighed(df, documents), df, documents)
    published = article.published_at or now
    for candidate in candidates:
        when = candidate.text.published_at
        if when is not None and abs(published - when) > settings.window:
            continue
        score = _log_odds(features_against(candidate.text))
        if score > best.score:
            best = StoryDecision(candidate.story_id, score, candidate.article_id)
    if best.score < settings.threshold:
        return StoryDecision(None, best.score, None)
    return best


def same_story_score(
    a: StoryText, b: StoryText, df: Mapping[str, int], documents: int, a_idf: Mapping[str, float] | None = None
) -> float:
    """Log-odds that a and b report the same event (`a_idf`: the weights of a's terms, when already known)."""
    return _log_odds(features(a, b, df, max(documents, COLD_START_DOCUMENTS), a_idf))


def features(
    a: StoryText, b: StoryText, df: Mapping[str, int], documents: int, a_idf: Mapping[str, float] | None = None
) -> tuple[float, ...]:
    """What separates one event from its neighbours: how much rare vocabulary the two share, and how close in time.

    Weights are inverse document frequencies, so "Kramatorsk" and "Osprey" count and "Ukraine" barely does. Every
    shared term is one of a's, so only a's terms need their frequencies; b's totals may come stored.
    """
    return _FeaturesOf(a, df, documents, a_idf)(b)


def _log_odds(values: tuple[float, ...]) -> float:
    return BIAS + sum(w * v for w, v in zip(WEIGHTS, values, strict=True))


class _FeaturesOf:
    """`features` of one article against any other: a's weights and the rarity cut, found once."""

    __slots__ = ("a", "a_title", "a_weight", "df", "documents", "rare_cut", "shared_idf")

    def __init__(
        self, a: StoryText, df: Mapping[str, int], documents: int, a_idf: Mapping[str, float] | None = None
    ) -> None:
        self.a, self.df, self.documents = a, df, documents
        self.shared_idf = a_idf if a_idf is not None else _idf_of(a.terms, df, documents)
        self.a_weight = a.weight if a.weight is not None else self._weight(a.terms)
        self.a_title = a.title_weight if a.title_weight is not None else self._weight(a.title_terms)
        self.rare_cut = math.log(max(documents, 1) / 300)  # rarer than about 1 article in 300

    def _weight(self, terms: frozenset[str]) -> float:
        idf = _idf(self.df, self.documents)
        return sum(idf(t) for t in terms)

    def __call__(self, b: StoryText) -> tuple[float, ...]:
        a, shared_idf = self.a, self.shared_idf
        of_shared = shared_idf.__getitem__  # every shared term is one of a's
        a_weight, a_title = self.a_weight, self.a_title
        b_weight = b.weight if b.weight is not None else self._weight(b.terms)
        b_title = b.title_weight if b.title_weight is not None else self._weight(b.title_terms)
        shared = a.terms & b.terms
        shared_weight = sum(map(of_shared, shared))
        shared_titles = sum(map(of_shared, a.title_terms & b.title_terms))
        gap_hours = (
            abs((a.published_at - b.published_at).total_seconds()) / 3600
            if a.published_at is not None and b.published_at is not None
            else 12.0  # unknown: neither close nor far
        )
        rare_cut = self.rare_cut
        rare = sum(1 for t in shared if shared_idf[t] >= rare_cut)
        return (
            _ratio(shared_weight, a_weight + b_weight - shared_weight),
            _ratio(shared_weight, min(a_weight, b_weight)),
            _ratio(shared_titles, a_title + b_title - shared_titles),
            max(
                _ratio(sum(map(of_shared, a.title_terms & b.terms)), a_title),
                _ratio(sum(map(of_shared, b.title_terms & a.terms)), b_title),
            ),
            math.log1p(shared_weight),
            math.log1p(shared_weight) / (1 + gap_hours / 12),  # shared evidence counts for more when close in time
            math.log1p(gap_hours),
            math.log1p(rare),
        )


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _idf_of(terms: frozenset[str], df: Mapping[str, int], documents: int) -> dict[str, float]:
    idf = _idf(df, documents)
    return {t: idf(t) for t in terms}


def _idf(df: Mapping[str, int], documents: int) -> Callable[[str], float]:
    top = documents + 1

    def idf(term: str) -> float:
        return math.log(top / (df.get(term, 0) + 1))

    return idf


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


_TERMS: dict[str, str] = {}  # word -> its term, "" for a word that is none: news vocabularies repeat
_TERMS_KEPT = 50_000
_TERM_WORD_CHARS = 40  # longer words are rare (and a hostile text's): not kept, so the cache stays under ~10 MB


def _term_of(word: str) -> str:
    """The term a word counts as, or "" (a stopword, a letter); cached."""
    term = _TERMS.get(word)
    if term is None:
        term = _term(word) if _keep(word) else ""
        if len(word) <= _TERM_WORD_CHARS:
            if len(_TERMS) >= _TERMS_KEPT:
                _TERMS.clear()
            _TERMS[word] = term
    return term


def _keep(word: str) -> bool:
    return len(word) > 1 and word.lower() not in _STOPWORDS


def _term(word: str) -> str:
    """Lower case, possessive, plural and -ed/-ing folded: 'Ukraine's'/'Ukraine', 'launched'/'launches'/'launch'."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.replace("'", "")
    if len(w) <= 3 or w[-1].isdigit():
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "shes", "ches", "xes")):
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    if w.endswith("ied") and len(w) > 4:
        return w[:-3] + "y"
    for ending in ("ing", "ed"):
        if w.endswith(ending) and len(w) - len(ending) >= 4:
            w = w[: -len(ending)]
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":  # stopped -> stopp -> stop
                w = w[:-1]
            return w
    return w
