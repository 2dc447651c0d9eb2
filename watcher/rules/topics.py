"""Topics: compiling a rule, matching an article against every topic, explaining why, marking snippets.

The language is documented in docs/rules.md; its grammar is in parse.py, the words in text.py and the
evaluation in evaluate.py and near.py. An article is cut into words once and shared by every
topic; a topic first checks, by set arithmetic on the article's word stems, that the words it cannot do
without are there, so most (article, topic) pairs cost a few set lookups. The rest are evaluated on bit masks
of word positions, and only a topic that matches works out its hits, score, terms and snippet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import RuleError
from ..models import Match
from .evaluate import And, Field, Node, Not, Optional, Or, Ref, Term, atom_for, intern, present, score_of
from .near import Near, Sentence
from .parse import RuleSyntaxError, Syntax, parse
from .snippets import surface_terms, terms_and_snippet
from .text import ArticleText

# A config is input too (a shared team file, a pasted rule): its compiled form is bounded, with errors that name
# the limit. Parts are counted after expanding @lists (each list once per weight it is used with).
MAX_RULE_PARTS = 20_000
MAX_RULE_DEPTH = 150  # nesting after expanding @lists: parentheses, NOT, fields, NEAR and list references
_MAX_PREFILTER_CLAUSES = 4


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """A topic as the config file gives it: its name, its rule and how its matches are alerted."""

    name: str
    rule: str
    description: str = ""
    min_score: float = 1.0
    urgent: bool = False  # urgent topics go out immediately on channels that take immediate alerts
    # Topics that learn from labels (learn/, docs/rules.md): used once the topic has a trained model.
    learn: bool = True
    hold_below: float = 0.1  # a rule match the model gives less than this is held back
    possible_above: float = 0.9  # an article the rule missed that the model gives at least this is a possible match


@dataclass(frozen=True, slots=True)
class CompiledTopic:
    name: str
    rule: str
    min_score: float
    root: Node
    # Clauses of which at least one word must occur: (stems, other atoms that need a scan of the forms).
    prefilter: tuple[tuple[frozenset, tuple], ...]
    description: str = ""
    urgent: bool = False
    terms: tuple[tuple[str, str], ...] = ()  # the term lists it was compiled with

    def __reduce__(self):
        # Nodes are interned per process: another process (a worker) compiles the rule again.
        config = TopicConfig(self.name, self.rule, self.description, self.min_score, self.urgent)
        return (compile_topic, (config, dict(self.terms)))


@dataclass(frozen=True, slots=True)
class Clause:
    """One part of a rule and whether it held, for explanations. `depth` 0 is the whole rule."""

    depth: int
    text: str
    matched: bool
    terms: tuple[str, ...] = ()
    penalty: bool = False  # a part with a negative weight: `matched` says whether it was found (and applied)


@dataclass(frozen=True, slots=True)
class Explanation:
    topic: str
    matched: bool
    score: float
    min_score: float
    reason: str  # "matched", "the rule is not satisfied", "score 1 is below min_score 2"
    terms: tuple[str, ...]
    snippet: str
    clauses: tuple[Clause, ...]

    def render(self, tree: bool = True) -> str:
        """The verdict, the terms and the snippet; with `tree`, each part of the rule and whether it held."""
        head = "MATCH" if self.matched else "no match"
        lines = [f"{self.topic}: {head} ({self.reason}; score {self.score:g}, min_score {self.min_score:g})"]
        for c in self.clauses if tree else ():
            found = f"   found: {', '.join(c.terms)}" if c.terms else ""
            if c.penalty:
                mark, note = ("−", "   (penalty applied)") if c.matched else ("·", "   (penalty not triggered)")
            else:
                mark, note = ("✓" if c.matched else "✗"), ""
            lines.append(f"  {'  ' * c.depth}{mark} {c.text}{found}{note}")
        if not tree and not self.matched:
            # The short verdict still says what was missing: the rule's top-level parts that did not hold.
            missing = [c.text for c in self.clauses if c.depth == 1 and not c.matched and not c.penalty]
            if missing:
                lines.append(f"  not found: {'; '.join(missing)}")
        if self.terms:
            lines.append(f"  terms: {', '.join(self.terms)}")
        if self.snippet:
            lines.append(f"  snippet: {self.snippet}")
        return "\n".join(lines)


# --- compiling ----------------------------------------------------------------------------------------------


class _Compiler:
    """Turns syntax into evaluation nodes, expanding @term lists; one per config so lists are parsed once."""

    def __init__(self, terms: Mapping[str, str]):
        self.terms = dict(terms)
        self.parsed: dict[str, Syntax] = {}
        # (list, weight) -> its node: a list used twice is compiled once (a chain of lists that each use the
        # previous one twice would otherwise double the work per level).
        self.expanded: dict[tuple[str, float], Node] = {}
        self.topic = ""
        self.parts = 0
        self.depth = 0

    def fail(self, message: str, source: str, position: int | None, stack: tuple[str, ...]) -> RuleError:
        if stack:
            message = f"in term list @{stack[-1]}: {message}"
        return RuleError(message, rule=source, position=position, topic=self.topic)

    def compile(self, topic: TopicConfig) -> CompiledTopic:
        self.topic = topic.name
        self.parts = 0
        try:
            syntax = parse(topic.rule)
        except RuleSyntaxError as e:
            raise self.fail(e.message, topic.rule, e.position, ()) from None
        root = self.lower(syntax, topic.rule, 1.0, (), penalty_ok=True)
        clauses = root.needs()
        if not clauses:
            raise self.fail(
                "the rule can be true without finding any of its words (NOT or a negative weight alone); "
                "add a term it must find",
                topic.rule,
                0,
                (),
            )
        return CompiledTopic(
            name=topic.name,
            rule=topic.rule,
            min_score=topic.min_score,
            root=root,
            prefilter=_prefilter(clauses),
            description=topic.description,
            urgent=topic.urgent,
            terms=tuple(sorted(self.terms.items())),
        )

    def lower(self, syn: Syntax, source: str, factor: float, stack: tuple[str, ...], penalty_ok: bool = False) -> Node:
        """Syntax -> node; a node's weight multiplies the weights of the terms inside it."""
        self.parts += 1
        if self.parts > MAX_RULE_PARTS:
            raise self.fail(
                f"the rule is too large: more than {MAX_RULE_PARTS} parts once its @lists are expanded "
                f"(limit MAX_RULE_PARTS = {MAX_RULE_PARTS})",
                source,
                syn.start,
                stack,
            )
        self.depth += 1
        try:
            if self.depth > MAX_RULE_DEPTH:
                raise self.fail(
                    f"the rule nests too deep: more than {MAX_RULE_DEPTH} levels of parentheses, NOT, fields, "
                    f"NEAR and @lists within each other (limit MAX_RULE_DEPTH = {MAX_RULE_DEPTH})",
                    source,
                    syn.start,
                    stack,
                )
            return self._lower(syn, source, factor, stack, penalty_ok)
        finally:
            self.depth -= 1

    def _lower(self, syn: Syntax, source: str, factor: float, stack: tuple[str, ...], penalty_ok: bool) -> Node:
        w = factor * syn.weight
        if syn.weight < 0:
            if not penalty_ok:
                raise self.fail(
                    "a negative weight (a penalty) goes on a part joined by AND, as in drone AND strike^-1",
                    source,
                    syn.start,
                    stack,
                )
            return intern(Optional(source[syn.start : syn.end], (self.build(syn, source, w, stack, False),)))
        return self.build(syn, source, w, stack, penalty_ok)

    def build(self, syn: Syntax, source: str, w: float, stack: tuple[str, ...], penalty_ok: bool) -> Node:
        label = source[syn.start : syn.end]
        kind = syn.kind
        if kind == "term":
            atoms = tuple(atom_for(word, prefix=p, exact=syn.exact) for word, p in zip(syn.words, syn.prefix))
            return intern(Term(label, atoms, w))
        if kind == "ref":
            return intern(Ref(label, self.expand(syn, source, w, stack)))
        if kind == "field":
            return intern(Field(label, self.lower(syn.children[0], source, w, stack, penalty_ok), syn.name))
        if kind == "not":
            return intern(Not(label, (self.lower(syn.children[0], source, w, stack),)))
        children = tuple(self.lower(c, source, w, stack, penalty_ok=(kind == "and")) for c in syn.children)
        if kind == "and":
            return intern(And(label, children))
        if kind == "or":
            return intern(Or(label, children))
        for child_syn, child in zip(syn.children, children):
            if not child.positional:
                raise self.fail(
                    f"{kind.upper()}( takes words, phrases, prefixes, @lists of them, OR-groups and NEAR( ); "
                    f"{child.label!r} has no single place in the text",
                    source,
                    child_syn.start,
                    stack,
                )
        if kind == "near":
            return intern(Near(label, children, syn.distance))
        return intern(Sentence(label, children))

    def expand(self, syn: Syntax, source: str, factor: float, stack: tuple[str, ...]) -> Node:
        name = syn.name
        if name not in self.terms:
            known = ", ".join(f"@{n}" for n in sorted(self.terms)) or "none (define them in [terms])"
            raise self.fail(f"unknown term list @{name}; known: {known}", source, syn.start, stack)
        if name in stack:
            chain = " -> ".join(f"@{n}" for n in stack[stack.index(name) :] + (name,))
            raise self.fail(f"term list @{name} refers to itself: {chain}", source, syn.start, stack)
        text = self.terms[name]
        compiled = self.expanded.get((name, factor))
        if compiled is not None:
            return compiled
        if name not in self.parsed:
            try:
                self.parsed[name] = parse(text)
            except RuleSyntaxError as e:
                raise self.fail(e.message, text, e.position, stack + (name,)) from None
        node = self.expanded[(name, factor)] = self.lower(self.parsed[name], text, factor, stack + (name,))
        return node


def _prefilter(clauses: list[frozenset]) -> tuple[tuple[frozenset, tuple], ...]:
    out = []
    for clause in sorted(set(clauses), key=len)[:_MAX_PREFILTER_CLAUSES]:
        stems = frozenset(v for k, v in clause if k == "s")
        slow = tuple(sorted((k, v) for k, v in clause if k != "s"))
        out.append((stems, slow))
    return tuple(out)


def compile_topic(topic: TopicConfig, terms: Mapping[str, str]) -> CompiledTopic:
    """Compile one topic's rule; raises RuleError with the topic, the rule (or term list) and the position."""
    return _Compiler(terms).compile(topic)


def compile_topics(topics: Sequence[TopicConfig], terms: Mapping[str, str]) -> tuple[CompiledTopic, ...]:
    """Compile every topic, sharing the parsed term lists; raises the first RuleError."""
    compiler = _Compiler(terms)
    return tuple(compiler.compile(t) for t in topics)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The topics and term lists as written: what a worker process needs to match (it compiles them once)."""

    topics: tuple[TopicConfig, ...]
    terms: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, topics: Sequence[TopicConfig], terms: Mapping[str, str]) -> RuleSet:
        return cls(tuple(topics), tuple(sorted(terms.items())))


_COMPILED: dict[RuleSet, tuple[CompiledTopic, ...]] = {}  # per worker process: the rule sets it has compiled


def match_with(rules: RuleSet, title: str, body: str) -> tuple[Match, ...]:
    """match_article for a worker process: the rules are compiled at the first article and kept (a reload sends
    another RuleSet, and the worker keeps the last few)."""
    compiled = _COMPILED.get(rules)
    if compiled is None:
        if len(_COMPILED) >= 4:
            _COMPILED.clear()
        compiled = _COMPILED[rules] = compile_topics(rules.topics, dict(rules.terms))
    return match_article(compiled, title, body)


# --- matching -----------------------------------------------------------------------------------------------


def _may_match(topic: CompiledTopic, art: ArticleText) -> bool:
    stem_set = art.stem_set
    for stems, slow in topic.prefilter:
        if stems.isdisjoint(stem_set) and not any(present(a, art) for a in slow):
            return False
    return True


def match_article(topics: Sequence[CompiledTopic], title: str, body: str) -> tuple[Match, ...]:
    """Every topic the article matches, with its score, the terms found and a marked snippet."""
    return match_text(topics, ArticleText(title, body))


def match_text(topics: Sequence[CompiledTopic], art: ArticleText) -> tuple[Match, ...]:
    """match_article on an article already cut into words (learn/ reuses the words for its features)."""
    matches = []
    for topic in topics:
        if not _may_match(topic, art) or not topic.root.ok(art, 0):
            continue
        hits = topic.root.test(art, 0)
        if hits is None:
            continue
        score = score_of(hits)
        if score < topic.min_score:
            continue
        terms, snippet = terms_and_snippet(art, hits)
        matches.append(Match(topic=topic.name, score=score, terms=terms, snippet=snippet))
    return tuple(matches)


def topic_holds(topic: CompiledTopic, art: ArticleText) -> bool:
    """Whether the topic matches an article already cut into words: match_article's verdict without the terms and
    snippet (the costly part), for comparing two rules over many stored articles (rematch.preview_rule)."""
    if not _may_match(topic, art) or not topic.root.ok(art, 0):
        return False
    hits = topic.root.test(art, 0)
    return hits is not None and score_of(hits) >= topic.min_score


def explain(topic: CompiledTopic, title: str, body: str) -> Explanation:
    """Whether the topic matches and why: each clause's truth, the terms found, the score and a snippet."""
    art = ArticleText(title, body)
    hits = topic.root.test(art, 0)
    score = score_of(hits) if hits is not None else 0.0
    if hits is None:
        reason = "the rule is not satisfied"
    elif score < topic.min_score:
        reason = f"score {score:g} is below min_score {topic.min_score:g}"
    else:
        reason = "matched"
    clauses: list[Clause] = []
    _walk(topic.root, art, 0, 0, clauses)
    terms, snippet = terms_and_snippet(art, hits or [])
    return Explanation(
        topic=topic.name,
        matched=reason == "matched",
        score=score,
        min_score=topic.min_score,
        reason=reason,
        terms=terms,
        snippet=snippet,
        clauses=tuple(clauses),
    )


def _walk(node: Node, art: ArticleText, scope: int, depth: int, out: list[Clause]) -> None:
    if isinstance(node, Field):
        scope = node.scope
    hits = node.test(art, scope)
    text = " ".join(node.label.split())  # a rule written over several lines reads as one
    if isinstance(node, Optional):
        # A penalty part always "holds" (it never decides the match): what matters is whether it was found.
        out.append(Clause(depth, text, bool(hits), surface_terms(art, hits) if hits else (), penalty=True))
    else:
        out.append(Clause(depth, text, hits is not None, surface_terms(art, hits) if hits else ()))
    if isinstance(node, (Term, Ref)):
        return
    children = node.children
    if isinstance(node, (Field, Optional)):
        only = children[0]  # its text is already on this line: show what is inside it
        if isinstance(only, (Term, Ref)):
            return
        if isinstance(only, Field):
            scope = only.scope
        children = only.children
    for child in children:
        _walk(child, art, scope, depth + 1, out)
