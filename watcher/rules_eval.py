"""The compiled form of a rule and how it is evaluated on an ArticleText.

Every node answers `test(art, scope)`: None when it is false, else the list of hits that make it true (a hit
is (term, first word, last word); NOT is true with no hits). Nodes that have a place in the text (terms,
OR-groups of them, NEAR, a field of them) also answer `spans(art, scope)`, which NEAR and SENTENCE use.
`scope` is None (whole article) or a field name from `title:`, `body:` or `lead:`.

A term's positions are memoised on the article under its atoms, so topics sharing a term list look the
words up once per article. `needs()` gives clauses of atoms of which at least one must occur for the node
to be true; a topic uses them to skip an article by set arithmetic before any evaluation.
"""

from __future__ import annotations

from bisect import bisect_left

from .rules_text import CJK, CYRILLIC, HANGUL, LATIN, ArticleText, script_of, stem

LEAD_WORDS = 60  # lead: the title and the first 60 words of the body

Hit = tuple  # (Term, start, end)
Span = tuple  # (start, end, tuple[Hit, ...])


def atom_for(form: str, *, prefix: bool = False, exact: bool = False) -> tuple[str, str]:
    """How one rule word is looked up: ('s', stem), ('f', form), ('p', prefix) or ('c', substring)."""
    script = script_of(form)
    if script == CJK:
        return ("c", form)  # no spaces between words: match inside a run of characters
    if prefix:
        return ("p", form)
    if exact:
        return ("f", form)
    if script == HANGUL:
        return ("p", form)  # particles attach to the word: 북한군 matches 북한군이, 북한군을
    if script in (LATIN, CYRILLIC):
        return ("s", stem(form))
    return ("s", form)


def anchor_of(atom: tuple[str, str]) -> tuple[str, str]:
    """The atom a prefilter can test against the article's stem set (an exact form implies its stem)."""
    return ("s", stem(atom[1])) if atom[0] == "f" else atom


def _atom_positions(atom: tuple[str, str], art: ArticleText) -> list[int]:
    memo = art.memo
    hit = memo.get(atom)
    if hit is not None:
        return hit
    kind, value = atom
    if kind == "s":
        out = art.by_stem().get(value, [])
    elif kind == "f":
        out = art.by_form().get(value, [])
    else:
        by_form = art.by_form()
        forms = art.forms_with_prefix(value) if kind == "p" else art.forms_containing(value)
        out = sorted(p for f in forms for p in by_form[f]) if forms else []
    memo[atom] = out
    return out


def _in_scope(spans: list[tuple[int, int]], art: ArticleText, scope: str | None) -> list[tuple[int, int]]:
    if scope is None or not spans:
        return spans
    t = art.title_end
    if scope == "title":
        return [sp for sp in spans if sp[1] < t]
    if scope == "body":
        return [sp for sp in spans if sp[0] >= t]
    return [sp for sp in spans if sp[1] < t + LEAD_WORDS]  # lead


class Node:
    __slots__ = ("label", "children")
    positional = False

    def __init__(self, label: str, children: tuple[Node, ...] = ()):
        self.label = label
        self.children = children

    def test(self, art: ArticleText, scope: str | None) -> list[Hit] | None:
        raise NotImplementedError

    def spans(self, art: ArticleText, scope: str | None) -> list[Span]:
        raise NotImplementedError

    def needs(self) -> list[frozenset]:
        return []

    def terms(self) -> list[Term]:
        out: list[Term] = []
        for c in self.children:
            out.extend(c.terms())
        return out


class Term(Node):
    """A word, a prefix or a phrase (several atoms, one per word, at consecutive positions)."""

    __slots__ = ("atoms", "weight")
    positional = True

    def __init__(self, label: str, atoms: tuple[tuple[str, str], ...], weight: float):
        super().__init__(label)
        self.atoms = atoms
        self.weight = weight

    def positions(self, art: ArticleText, scope: str | None) -> list[tuple[int, int]]:
        key = (self.atoms, scope)
        found = art.memo.get(key)
        if found is None:
            atoms = self.atoms
            first = _atom_positions(atoms[0], art)
            if len(atoms) == 1:
                spans = [(p, p) for p in first]
            elif not first:
                spans = []
            else:
                rest = [set(_atom_positions(a, art)) for a in atoms[1:]]
                last = len(atoms) - 1
                t = art.title_end
                spans = [
                    (p, p + last)
                    for p in first
                    if all(p + i + 1 in s for i, s in enumerate(rest)) and (p < t) == (p + last < t)
                ]
            found = art.memo[key] = _in_scope(spans, art, scope)
        return found

    def test(self, art, scope):
        found = self.positions(art, scope)
        return [(self, s, e) for s, e in found] if found else None

    def spans(self, art, scope):
        return [(s, e, ((self, s, e),)) for s, e in self.positions(art, scope)]

    def needs(self):
        return [frozenset([anchor_of(a)]) for a in self.atoms]

    def terms(self):
        return [self]


class Or(Node):
    __slots__ = ("positional",)

    def __init__(self, label, children):
        super().__init__(label, children)
        self.positional = all(c.positional for c in children)

    def test(self, art, scope):
        hits: list[Hit] | None = None
        for c in self.children:
            r = c.test(art, scope)
            if r is not None:
                hits = r if hits is None else hits + r
        return hits

    def spans(self, art, scope):
        out: list[Span] = []
        for c in self.children:
            out.extend(c.spans(art, scope))
        return out

    def needs(self):
        union: set = set()
        for c in self.children:
            clauses = c.needs()
            if not clauses:
                return []
            union |= min(clauses, key=len)
        return [frozenset(union)]


class And(Node):
    __slots__ = ()

    def test(self, art, scope):
        hits: list[Hit] = []
        for c in self.children:
            r = c.test(art, scope)
            if r is None:
                return None
            hits += r
        return hits

    def needs(self):
        return [clause for c in self.children for clause in c.needs()]


class Not(Node):
    __slots__ = ()

    def test(self, art, scope):
        return [] if self.children[0].test(art, scope) is None else None

    def terms(self):
        return []  # a negated term never contributes to a match


class Optional(Node):
    """A part with a negative weight: it never decides the match; when found it lowers the score."""

    __slots__ = ()

    def test(self, art, scope):
        return self.children[0].test(art, scope) or []


class Field(Node):
    __slots__ = ("field", "positional")

    def __init__(self, label, child: Node, field: str):
        super().__init__(label, (child,))
        self.field = field
        self.positional = child.positional

    def test(self, art, scope):
        return self.children[0].test(art, self.field)

    def spans(self, art, scope):
        return self.children[0].spans(art, self.field)

    def needs(self):
        return self.children[0].needs()


class Ref(Node):
    """A use of a named term list (@name): transparent, but explanations show it as one clause."""

    __slots__ = ("positional",)

    def __init__(self, label, child: Node):
        super().__init__(label, (child,))
        self.positional = child.positional

    def test(self, art, scope):
        return self.children[0].test(art, scope)

    def spans(self, art, scope):
        return self.children[0].spans(art, scope)

    def needs(self):
        return self.children[0].needs()


class Near(Node):
    """All operands within `distance` words of each other (at most that many words between), in one field."""

    __slots__ = ("distance",)
    positional = True

    def __init__(self, label, children, distance: int):
        super().__init__(label, children)
        self.distance = distance

    def spans(self, art, scope):
        ops = []
        for c in self.children:
            sp = c.spans(art, scope)
            if not sp:
                return []
            ops.append(sp)
        k = len(ops)
        items = sorted(((s, e, i, h) for i, sp in enumerate(ops) for s, e, h in sp), key=lambda x: (x[0], x[1]))
        t, n, count = art.title_end, self.distance, len(items)
        windows: list[Span] = []
        for a in range(count):
            s0, e0, i0, h0 = items[a]
            in_title = s0 < t
            seen = {i0}
            end, hits = e0, list(h0)
            j = a + 1
            while j < count:
                s, e, i, h = items[j]
                if s - e0 - 1 > n or (s < t) != in_title:
                    break
                seen.add(i)
                hits.extend(h)
                end = max(end, e)
                j += 1
            if len(seen) == k:
                windows.append((s0, end, tuple(hits)))
        return windows

    def test(self, art, scope):
        windows = self.spans(art, scope)
        if not windows:
            return None
        return list({h for w in windows for h in w[2]})

    def needs(self):
        return [clause for c in self.children for clause in c.needs()]


class Sentence(Node):
    """All operands in one sentence (the title is a sentence of its own)."""

    __slots__ = ()

    def test(self, art, scope):
        per_op = []
        common: set[int] | None = None
        for c in self.children:
            sp = c.spans(art, scope)
            if not sp:
                return None
            sentences = {art.sentence_of(s) for s, _, _ in sp}
            common = sentences if common is None else common & sentences
            if not common:
                return None
            per_op.append(sp)
        return list({h for sp in per_op for s, _, hs in sp if art.sentence_of(s) in common for h in hs})

    def needs(self):
        return [clause for c in self.children for clause in c.needs()]


def score_of(hits: list[Hit]) -> float:
    """Each term of the rule that took part counts its weight once, however often it occurs."""
    return sum(term.weight for term in {h[0] for h in hits})


def first_position(hits: list[Hit]) -> int:
    return min((h[1] for h in hits), default=0)


def sorted_positions(values: list[int], lo: int) -> int:
    return bisect_left(values, lo)
