"""The truth of each part of a rule on an article, cheaply (no hits, terms or snippets).

A topic's model (learn/) takes them as features: which parts of the rule held tells it more than the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluate import Field, Node, Optional, Ref, Term
from .text import ArticleText

if TYPE_CHECKING:
    from .topics import CompiledTopic


def clause_results(topic: CompiledTopic, art: ArticleText, max_depth: int = 2) -> tuple[tuple[str, bool], ...]:
    """(clause text, whether it holds) for the parts of the rule down to `max_depth`, cheaply (no hits or
    snippets): the model of a topic that learns from labels takes them as features."""
    out: list[tuple[str, bool]] = []
    _truths(topic.root, art, 0, 0, max_depth, out)
    return tuple(out)


def _truths(node: Node, art: ArticleText, scope: int, depth: int, max_depth: int, out: list) -> None:
    if isinstance(node, Field):
        scope = node.scope
    if depth > 0:  # the whole rule is a feature of its own (the match, with min_score)
        out.append((" ".join(node.label.split()), node.ok(art, scope)))
    if depth >= max_depth or isinstance(node, (Term, Ref)):
        return
    children = node.children
    if isinstance(node, (Field, Optional)):
        only = children[0]
        if isinstance(only, (Term, Ref)):
            return
        if isinstance(only, Field):
            scope = only.scope
        children = only.children
    for child in children:
        _truths(child, art, scope, depth + 1, max_depth, out)
