"""The compiled form of a rule and how it is evaluated on an ArticleText.

Evaluation has two passes, because most (article, topic) pairs are false and only true ones need details:
  ok(art, scope)   -> bool. Positional nodes (terms, OR-groups of them, NEAR, a field of them) also give
  mask(art, scope) -> the positions they cover as an int bit mask (bit i = word i). NEAR is then a few shifts
                      and ANDs of big ints, done in C, whatever the number of occurrences.
  test(art, scope) -> None when false, else the hits that make it true (a hit is (term, first, last); NOT is
                      true with no hits); positional nodes also give spans(art, scope) -> [(first, last, hits)].
`scope` is 0 (whole article) or the SCOPES number of `title:`, `body:` or `lead:`.

NEAR and SENTENCE are in near.py. Nodes are interned: two topics (or two places in one rule) that
compile to the same subtree, such as a shared @list, get the same node, and each node's mask is computed once
per article (memo keyed by the node's uid).
`needs()` gives clauses of atoms of which at least one must occur for the node to be true; a topic uses them
to skip an article by set arithmetic before any evaluation.
"""

from __future__ import annotations

import itertools
import weakref
from functools import reduce
from operator import or_

from .text import CJK, CYRILLIC, GAP, HANGUL, LATIN, LEAD_WORDS, VOCABULARY, ArticleText, script_of, stem

SCOPES = {"title": 1, "body": 2, "lead": 3}  # scope 0 is the whole article; ints make memo keys cheap
_uids = itertools.count(1)
_INTERNED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

Hit = tuple  # (Term, start, end)
Span = tuple  # (start, end, tuple[Hit, ...])


def atom_for(form: str, *, prefix: bool = False, exact: bool = False) -> tuple[str, str]:
    """How one rule word is looked up: ('s', stem), ('f', exact form), ('p', prefix), ('h', Hangul prefix)
    or ('c', CJK substring). The kind says which articles can hold it at all (Hangul, CJK)."""
    script = script_of(form)
    if script == CJK:
        return ("c", form)  # no spaces between words: match inside a run of characters
    if script == HANGUL:
        # particles attach to the word: 북한군 matches 북한군이, 북한군을 (=북한군 for the bare word only)
        return ("f", form) if exact else ("h", form)
    if prefix:
        return ("p", form)
    if exact:
        return ("f", form)
    if script in (LATIN, CYRILLIC):
        return ("s", stem(form))
    return ("s", form)


def anchor_of(atom: tuple[str, str]) -> tuple[str, str]:
    """The atom a prefilter can test against the article's stem set (an exact form implies its stem)."""
    return ("s", stem(atom[1])) if atom[0] == "f" else atom


def present(atom: tuple[str, str], art: ArticleText) -> bool:
    """Whether a prefix or substring atom occurs at all (stems are tested against art.stem_set directly)."""
    kind, value = atom
    if kind == "h":
        return art.has_script(HANGUL) and bool(art.forms_with_prefix(value))
    if kind == "c":
        return art.has_script(CJK) and bool(art.forms_containing(value))
    if kind == "p":
        return bool(art.forms_with_prefix(value))
    return bool(_atom_positions(atom, art))


def _atom_positions(atom: tuple[str, str], art: ArticleText) -> list[int]:
    memo = art.memo
    hit = memo.get(atom)
    if hit is not None:
        return hit
    kind, value = atom
    if kind in "sf" and value not in VOCABULARY:
        VOCABULARY.add(value)  # an atom made outside a Term (the index only holds the rules' words)
    if kind == "s":
        out = art.by_stem().get(value, []) if value in art.stem_set else []
    elif kind == "f":
        out = art.by_form().get(value, [])
    elif (kind == "h" and not art.has_script(HANGUL)) or (kind == "c" and not art.has_script(CJK)):
        out = []
    else:
        found = set(art.forms_with_prefix(value) if kind in "ph" else art.forms_containing(value))
        out = [i for i, f in enumerate(art.forms) if f in found] if found else []
    memo[atom] = out
    return out


def _in_scope(spans: list[tuple[int, int]], art: ArticleText, scope: int) -> list[tuple[int, int]]:
    if not scope or not spans:
        return spans
    t = art.title_end
    if scope == 1:  # title
        return [sp for sp in spans if sp[1] < t]
    if scope == 2:  # body
        return [sp for sp in spans if sp[0] >= t]
    return [sp for sp in spans if sp[1] < t + LEAD_WORDS]  # lead


def intern(node: Node) -> Node:
    """The one node with this content (see the module docstring)."""
    found = _INTERNED.get(node.signature)
    if found is None:
        _INTERNED[node.signature] = found = node
    return found


class Node:
    __slots__ = ("__weakref__", "_needs_memo", "children", "label", "signature", "uid")
    positional = False

    def __init__(self, label: str, children: tuple[Node, ...] = (), *extra):
        self.label = label
        self.children = children
        self.uid = next(_uids) * 4  # + scope: the key of this node's mask in art.masks
        self.signature = (type(self).__name__, label, *extra, *(c.uid for c in children))
        self._needs_memo: list[frozenset] | None = None

    def ok(self, art: ArticleText, scope: int) -> bool:
        raise NotImplementedError

    def mask(self, art: ArticleText, scope: int) -> int:
        key = self.uid + scope
        found = art.masks.get(key)
        if found is None:
            found = art.masks[key] = self._mask(art, scope)
        return found

    def _mask(self, art: ArticleText, scope: int) -> int:
        raise NotImplementedError

    # test, spans and needs are memoised per node (per article for the first two): @lists make the rule a graph in
    # which one node can be reached by many paths, and a chain of lists that each use the previous one twice would
    # otherwise cost 2^depth. Every result is bounded, so no text makes one grow with the square of its length.
    def test(self, art: ArticleText, scope: int) -> list[Hit] | None:
        key = (self.uid + scope, "test")
        memo = art.memo
        if key in memo:
            return memo[key]
        found = self._test(art, scope)
        memo[key] = found = None if found is None else bounded(found, MAX_HITS)
        return found

    def spans(self, art: ArticleText, scope: int) -> list[Span]:
        key = (self.uid + scope, "spans")
        memo = art.memo
        found = memo.get(key)
        if found is None:
            # one span per (first, last): the same place reached through two paths is one place
            found = memo[key] = list({(sp[0], sp[1]): sp for sp in reversed(self._spans(art, scope))}.values())
        return found

    def needs(self) -> list[frozenset]:
        if self._needs_memo is None:
            self._needs_memo = list(dict.fromkeys(self._needs()))
        return self._needs_memo

    def _test(self, art: ArticleText, scope: int) -> list[Hit] | None:
        raise NotImplementedError

    def _spans(self, art: ArticleText, scope: int) -> list[Span]:
        raise NotImplementedError

    def _needs(self) -> list[frozenset]:
        return []

    def _ok_memo(self, art: ArticleText, scope: int) -> bool | None:
        """The memoised truth of a node that has no mask (AND, NOT, a non-positional OR); None when not yet known.
        Such a node's mask slot in art.masks is free, so it holds 0 or 1."""
        found = art.masks.get(self.uid + scope)
        return None if found is None else bool(found)

    def _remember(self, art: ArticleText, scope: int, value: bool) -> bool:
        art.masks[self.uid + scope] = 1 if value else 0
        return value


MAX_HITS = 200  # hits kept per node and article: the snippet and the score need few, hostile text has many
MAX_SPAN_HITS = 32  # hits kept per NEAR window


def bounded(hits, limit: int) -> list:
    """At most `limit` distinct hits, the earliest, but always one of each term (the score counts each term once)."""
    unique = list(dict.fromkeys(hits))
    if len(unique) <= limit:
        return unique
    unique.sort(key=lambda h: (h[1], h[2]))
    kept = list({h[0]: h for h in reversed(unique)}.values())  # the first hit of each term
    chosen = set(kept)
    for h in unique:
        if len(kept) >= limit:
            break
        if h not in chosen:
            kept.append(h)
            chosen.add(h)
    return kept


class Term(Node):
    """A word, a prefix or a phrase (several atoms, one per word, at consecutive positions)."""

    __slots__ = ("atoms", "gate", "script", "weight")
    positional = True

    def __init__(self, label: str, atoms: tuple[tuple[str, str], ...], weight: float):
        super().__init__(label, (), atoms, weight)
        self.atoms = atoms
        self.weight = weight
        VOCABULARY.update(v for k, v in atoms if k in "sf")
        VOCABULARY.update(anchor_of(a)[1] for a in atoms if a[0] == "f")
        # A stem the article must hold for this term to occur (the longest, as the likeliest to be rare).
        stems = [anchor_of(a)[1] for a in atoms if a[0] in "sf"]
        self.gate = max(stems, key=len) if stems else None
        # the script an article must contain for an ungated term (a prefix, Hangul, CJK) to occur
        kinds = {script_of(v) for _, v in atoms}
        self.script = kinds.pop() if len(kinds) == 1 else ""

    def pos(self, art: ArticleText, scope: int) -> list[tuple[int, int]]:
        key = self.uid + scope
        found = art.memo.get(key)
        if found is None:
            stem_set = art.stem_set
            atoms = self.atoms
            if any(kind == "s" and value not in stem_set for kind, value in atoms):
                spans = []
            elif len(atoms) == 1:
                spans = [(p, p) for p in _atom_positions(atoms[0], art)]
            else:
                first = _atom_positions(atoms[0], art)
                rest = [set(_atom_positions(a, art)) for a in atoms[1:]] if first else []
                last, t = len(atoms) - 1, art.title_end
                spans = [
                    (p, p + last)
                    for p in first
                    if all(p + i + 1 in s for i, s in enumerate(rest)) and (p < t) == (p + last < t)
                ]
            found = art.memo[key] = _in_scope(spans, art, scope)
        return found

    def _mask(self, art, scope):
        atoms = self.atoms
        if len(atoms) == 1 and atoms[0][0] == "s":
            m = art.stem_mask(atoms[0][1])
            return m & art.scope_mask(scope) if m and scope else m
        m, t = 0, art.title_end
        for s, e in self.pos(art, scope):
            m |= ((1 << (e - s + 1)) - 1) << (s if s < t else s + GAP)
        return m

    def ok(self, art, scope):
        return bool(self.mask(art, scope))

    def _test(self, art, scope):
        found = self.pos(art, scope)
        return [(self, s, e) for s, e in found] if found else None

    def _spans(self, art, scope):
        return [(s, e, ((self, s, e),)) for s, e in self.pos(art, scope)]

    def _needs(self):
        return [frozenset([anchor_of(a)]) for a in self.atoms]


class Or(Node):
    """Any of its children. Children that are terms are looked up by set intersection with the article's
    stems first, so a long list of alternatives costs one C-level operation when none occurs; Hangul and
    CJK terms are skipped on articles without those scripts."""

    __slots__ = ("by_gate", "complex", "complex_keys", "gate_keys", "others", "positional", "scripts", "words")

    def __init__(self, label, children):
        super().__init__(label, children)
        self.positional = all(c.positional for c in children)
        by_gate: dict[str, list[Node]] = {}
        complex_: dict[str, list[Node]] = {}  # gated terms that are not one word found by stem
        words: set[str] = set()  # single words found by stem: their mask is the stem's mask
        others: list[Node] = []
        scripts: dict[str, list[Node]] = {HANGUL: [], CJK: [], CYRILLIC: []}
        for c in children:
            if isinstance(c, Term) and c.gate is not None:
                by_gate.setdefault(c.gate, []).append(c)
                if len(c.atoms) == 1 and c.atoms[0][0] == "s":
                    words.add(c.atoms[0][1])
                else:
                    complex_.setdefault(c.gate, []).append(c)
            elif isinstance(c, Term) and c.script in scripts:
                scripts[c.script].append(c)  # only looked at in articles with that script
            else:
                others.append(c)
        self.by_gate, self.gate_keys = by_gate, frozenset(by_gate)
        self.complex, self.complex_keys = complex_, frozenset(complex_)
        self.words = frozenset(words)
        self.others = tuple(others)
        self.scripts = tuple((name, tuple(nodes)) for name, nodes in scripts.items() if nodes)

    def _rest(self, art: ArticleText) -> tuple[Node, ...]:
        rest = self.others
        for name, nodes in self.scripts:
            if art.has_script(name):
                rest += nodes
        return rest

    def _candidates(self, art: ArticleText):
        present_gates = self.gate_keys.intersection(art.stem_set)
        if not present_gates:
            return self._rest(art)
        by_gate = self.by_gate
        return [c for g in present_gates for c in by_gate[g]] + list(self._rest(art))

    def _mask(self, art, scope):
        stem_set = art.stem_set
        m = reduce(or_, map(art.stem_mask, self.words.intersection(stem_set)), 0)
        if m and scope:
            m &= art.scope_mask(scope)
        for g in self.complex_keys.intersection(stem_set):
            for c in self.complex[g]:
                m |= c.mask(art, scope)
        for c in self._rest(art):
            m |= c.mask(art, scope)
        return m

    def ok(self, art, scope):
        if self.positional:
            return bool(self.mask(art, scope))
        known = self._ok_memo(art, scope)
        if known is not None:
            return known
        return self._remember(art, scope, any(c.ok(art, scope) for c in self._candidates(art)))

    def _test(self, art, scope):
        hits: list[Hit] | None = None
        for c in self._candidates(art):
            r = c.test(art, scope)
            if r is not None:
                hits = r if hits is None else hits + r
        return hits

    def _spans(self, art, scope):
        out: list[Span] = []
        for c in self._candidates(art):
            out.extend(c.spans(art, scope))
        return out

    def _needs(self):
        union: set = set()
        for c in self.children:
            clauses = c.needs()
            if not clauses:
                return []
            union |= min(clauses, key=len)
        return [frozenset(union)]


class And(Node):
    __slots__ = ()

    def ok(self, art, scope):
        known = self._ok_memo(art, scope)
        if known is not None:
            return known
        return self._remember(art, scope, all(c.ok(art, scope) for c in self.children))

    def _test(self, art, scope):
        hits: list[Hit] = []
        for c in self.children:
            r = c.test(art, scope)
            if r is None:
                return None
            hits += r
        return hits

    def _needs(self):
        return [clause for c in self.children for clause in c.needs()]


class Not(Node):
    __slots__ = ()

    def ok(self, art, scope):
        known = self._ok_memo(art, scope)
        if known is not None:
            return known
        return self._remember(art, scope, not self.children[0].ok(art, scope))

    def _test(self, art, scope):
        return None if self.children[0].ok(art, scope) else []


class Optional(Node):
    """A part with a negative weight: it never decides the match; when found it lowers the score."""

    __slots__ = ()

    def ok(self, art, scope):
        return True

    def _test(self, art, scope):
        return self.children[0].test(art, scope) or []


class _Pass(Node):
    """One child, evaluated as is (a @list) or in a scope of its own (a field)."""

    __slots__ = ("positional", "scope")

    def __init__(self, label, child: Node, *extra):
        super().__init__(label, (child,), *extra)
        self.positional = child.positional
        self.scope = 0

    def ok(self, art, scope):
        return self.children[0].ok(art, self.scope or scope)

    def mask(self, art, scope):
        return self.children[0].mask(art, self.scope or scope)

    def _test(self, art, scope):
        return self.children[0].test(art, self.scope or scope)

    def _spans(self, art, scope):
        return self.children[0].spans(art, self.scope or scope)

    def _needs(self):
        return self.children[0].needs()


class Ref(_Pass):
    """A use of a named term list (@name): transparent, but explanations show it as one clause."""

    __slots__ = ()


class Field(_Pass):
    """title:, body: or lead: (the title and the first LEAD_WORDS words of the body)."""

    __slots__ = ("field",)

    def __init__(self, label, child: Node, field: str):
        super().__init__(label, child, field)
        self.field = field
        self.scope = SCOPES[field]


def score_of(hits: list[Hit]) -> float:
    """Each term of the rule that took part counts its weight once, however often it occurs."""
    return sum(term.weight for term in {h[0] for h in hits})
