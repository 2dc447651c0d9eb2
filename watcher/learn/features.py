"""What a topic's model sees in an article: named features, computed from the words the rules already cut.

Every feature is binary and has a readable name, so an explanation can say which ones weighed most:
    w:<stem>          a word stem of the title or the first LEAD_WINDOW words of the body
    t:<stem>          a word stem of the title
    b:<stem>_<stem>   two neighbouring stems (in the same window)
    c:<4 chars>       a four-character piece of a word, padded with spaces (Korean particles, Russian endings,
                      compounds and spelling variants share them)
    rule:match        the topic's rule matched (with its min_score)
    rule:<clause>     one part of the rule holds (docs/rules.md, "Topics that learn from labels")
The text features are scaled together to unit length (a long article does not weigh more than a short one);
the rule's features have the value RULE_VALUE in every article.

Cost is bounded whatever the article: only the title and the first LEAD_WINDOW words are read, and character
pieces are taken once per distinct word form of the first CHAR_WINDOW words, of at most MAX_FORM_CHARS
characters.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from ..rules import ArticleText, CompiledTopic, clause_results

LEAD_WINDOW = 250  # words of the body after the title: a story says what it is about near its start
MAX_FORM_CHARS = 24  # a longer "word" (a URL, a run of CJK) gives no more pieces than this
CHAR_N = 4
# Character pieces are most of a long article's features: taken from the title and the first CHAR_WINDOW words
# only (the same figures on both halves of our labelled set as with the whole window).
CHAR_WINDOW = 60

RULE_MATCH = "rule:match"
# The rule's features count for less than a strong word. At 1 the model learnt to copy the rule (our rules were
# written on part of the labelled set, where they are nearly always right) and then overruled nothing on the
# other half; at 0.1 it still uses them (bench/eval_topics.py, both halves).
RULE_VALUE = 0.1


def text_features(art: ArticleText) -> list[str]:
    """The article's text features (their names), shared by every topic that has a model."""
    found = art.memo.get("learn:text")
    if found is not None:
        return found
    end = art.title_end + LEAD_WINDOW
    # A "word" of thousands of letters (a hostile feed) would become a feature name as long, stored and shown.
    stems = [s for s in art.stems[:end] if len(s) <= MAX_FORM_CHARS]
    names: set[str] = {"w:" + s for s in stems}
    names.update("t:" + s for s in art.stems[: art.title_end] if len(s) <= MAX_FORM_CHARS)
    names.update(f"b:{a}_{b}" for a, b in itertools.pairwise(stems))
    for form in set(art.forms[: art.title_end + CHAR_WINDOW]):
        padded = f" {form[:MAX_FORM_CHARS]} "
        if len(padded) <= CHAR_N:
            continue
        names.update("c:" + padded[i : i + CHAR_N] for i in range(len(padded) - CHAR_N + 1))
    features = list(names)  # unordered: training sorts its vocabulary, scoring does not care
    art.memo["learn:text"] = features
    return features


def rule_features(topic: CompiledTopic, art: ArticleText, matched: bool) -> list[str]:
    """The rule's own verdict and the parts of it that hold, as features of this topic's model."""
    names = [RULE_MATCH] if matched else []
    names.extend("rule:" + text for text, holds in clause_results(topic, art) if holds)
    return names


def weighted(text: Sequence[str], rule: Sequence[str]) -> list[tuple[str, float]]:
    """(name, value) pairs: text features scaled to unit length, rule features at 1."""
    scale = 1.0 / math.sqrt(len(text)) if text else 0.0
    return [(name, scale) for name in text] + [(name, RULE_VALUE) for name in dict.fromkeys(rule)]
