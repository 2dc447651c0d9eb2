"""The rule language: compile a topic's rule once, match every article, explain why (pure, no I/O).

    compile_topic(topic, terms) -> CompiledTopic        raises RuleError(message, rule, position, topic)
    compile_topics(topics, terms) -> tuple[CompiledTopic]
    match_article(topics, title, body) -> tuple[Match]  one Match per topic that matches
    explain(topic, title, body) -> Explanation          for `watcher rules test`
    topic_holds(topic, ArticleText(title, body)) -> bool the verdict alone, on words cut once (rule previews)

The modules, bottom up: text.py (folding, word forms, the tokenised article), parse.py (grammar -> syntax
tree), evaluate.py (the compiled nodes and their evaluation), near.py (NEAR and SENTENCE), topics.py (compiling
a topic, matching, explanations, snippets). The language is documented in docs/rules.md.
"""

from .text import ArticleText
from .topics import (
    Clause,
    CompiledTopic,
    Explanation,
    TopicConfig,
    compile_topic,
    compile_topics,
    explain,
    match_article,
    terms_and_snippet,
    topic_holds,
)

__all__ = [
    "ArticleText",
    "Clause",
    "CompiledTopic",
    "Explanation",
    "TopicConfig",
    "compile_topic",
    "compile_topics",
    "explain",
    "match_article",
    "terms_and_snippet",
    "topic_holds",
]
