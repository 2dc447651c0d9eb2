"""The rule language: compile a topic's rule once, match every article, explain why (pure, no I/O).

    compile_topic(topic, terms) -> CompiledTopic        raises RuleError(message, rule, position, topic)
    compile_topics(topics, terms) -> tuple[CompiledTopic]
    match_article(topics, title, body) -> tuple[Match]  one Match per topic that matches
    match_with(RuleSet, title, body) -> tuple[Match]    the same in a worker process (compiles once per RuleSet)
    explain(topic, title, body) -> Explanation          for `watcher rules test`
    topic_holds(topic, ArticleText(title, body)) -> bool the verdict alone, on words cut once (rule previews)
    match_text(topics, ArticleText) / clause_results(topic, ArticleText)   for learn/, on words cut once

The modules, bottom up: forms.py (folding, word forms), text.py (the tokenised article), parse.py (grammar -> syntax
tree), evaluate.py (the compiled nodes and their evaluation), near.py (NEAR and SENTENCE), topics.py (compiling
a topic, matching, explanations), snippets.py (terms and marked snippets), clauses.py (the truth of each part of a rule, for learn/). The
language is documented in docs/rules.md.
"""

from .clauses import clause_results
from .text import ArticleText
from .topics import (
    Clause,
    CompiledTopic,
    Explanation,
    RuleSet,
    TopicConfig,
    compile_topic,
    compile_topics,
    explain,
    match_article,
    match_text,
    match_with,
    terms_and_snippet,
    topic_holds,
)

__all__ = [
    "ArticleText",
    "Clause",
    "CompiledTopic",
    "Explanation",
    "RuleSet",
    "TopicConfig",
    "clause_results",
    "compile_topic",
    "compile_topics",
    "explain",
    "match_article",
    "match_text",
    "match_with",
    "terms_and_snippet",
    "topic_holds",
]
