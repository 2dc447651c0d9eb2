"""The rule language: compile a topic's rule once, match every article, explain why (pure, no I/O).

    compile_topic(topic, terms) -> CompiledTopic        raises RuleError(message, rule, position, topic)
    compile_topics(topics, terms) -> tuple[CompiledTopic]
    match_article(topics, title, body) -> tuple[Match]  one Match per topic that matches
    match_with(RuleSet, title, body) -> tuple[Match]    the same in a worker process (compiles once per RuleSet)
    explain(topic, title, body) -> Explanation          for `watcher rules test`

The modules, bottom up: text.py (folding, word forms, the tokenised article), parse.py (grammar -> syntax
tree), evaluate.py (the compiled nodes and their evaluation), near.py (NEAR and SENTENCE), topics.py (compiling
a topic, matching, explanations, snippets). The language is documented in docs/rules.md.
"""

from .topics import (
    Clause,
    CompiledTopic,
    Explanation,
    RuleSet,
    TopicConfig,
    compile_topic,
    compile_topics,
    describe,
    explain,
    match_article,
    match_with,
)

__all__ = [
    "Clause",
    "CompiledTopic",
    "Explanation",
    "RuleSet",
    "TopicConfig",
    "compile_topic",
    "compile_topics",
    "describe",
    "explain",
    "match_article",
    "match_with",
]
