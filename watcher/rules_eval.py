"""The compiled form of a rule and how it is evaluated on an ArticleText.

Evaluation has two passes, because most (article, topic) pairs are false and only true ones need details:
  ok(art, scope)    -> bool; positional nodes (terms, OR-groups of them, NEAR, a field of them) also give
  pos(art, scope)   -> sorted [(first word, last word)], which NEAR and SENTENCE combine. Cheap: lists of ints.
  test(art, scope)  -> None when false, else the hits that make it true (a hit is (term, first, last); NOT is
                       true with no hits); positional nodes also give spans(art, scope) -> [(first, last, hits)].
`scope` is 0 (whole article) or the SCOPES number of `title:`, `body:` or `lead:`.

A term's positions are memoised on the article under its atoms, so topics sharing words look them up once
per article. `needs()` gives clauses of atoms of which at least one must occur for the node to be true; a
topic uses them to skip an article by set arithmetic before any evaluation.
"""

from __future__ import annotations

from .rules_text import CJK, CYRILLIC, HANGUL, LATIN, ArticleText, script_of, stem

LEAD_WORDS = 60  # lead: the title and the first 60 words of the body
SCOPES = {"title": 1, "body": 2, "lead": 3}  # scope 0 is the whole article; ints make memo keys cheap
_TERM_IDS: dict[tuple, int] = {}  # atoms -> a small int, so a term's memo key is an int, not a nested tuple

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
        return art.has_hangul and bool(art.forms_with_prefix(value))
    if kind == "c":
        return art.has_cjk and bool(art.forms_containing(value))
    if kind == "p":
        return bool(art.forms_with_prefix(value))
    return bool(_atom_positions(atom, art))


def _atom_positions(atom: tuple[str, str], art: ArticleText) -> list[int]:
    memo = art.memo
    hit = memo.get(atom)
    if hit is not None:
        return hit
    kind, value = atom
    if kind == "s":
        out = art.by_stem().get(value, []) if value in art.stem_set else []
    elif kind == "f":
        out = art.by_form().get(value, [])
    elif kind == "h" and not art.has_hangul or kind == "c" and not art.has_cjk:
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


class Node:
    __slots__ = ("label", "children")
    positional = False
    gates: frozenset | None = None  # positional nodes: stems one of which lies in every occurrence (else None)
    span_max = 0  # positional nodes: the most words an occurrence spans, minus one

    def __init__(self, label: str, children: tuple[Node, ...] = ()):
        self.label = label
        self.children = children

    def ok(self, art: ArticleText, scope: int) -> bool:
        raise NotImplementedError

    def pos(self, art: ArticleText, scope: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def test(self, art: ArticleText, scope: int) -> list[Hit] | None:
        raise NotImplementedError

    def spans(self, art: ArticleText, scope: int) -> list[Span]:
        raise NotImplementedError

    def needs(self) -> list[frozenset]:
        return []


class Term(Node):
    """A word, a prefix or a phrase (several atoms, one per word, at consecutive positions)."""

    __slots__ = ("atoms", "weight", "gate", "gates", "span_max", "key")
    positional = True

    def __init__(self, label: str, atoms: tuple[tuple[str, str], ...], weight: float):
        super().__init__(label)
        self.atoms = atoms
        self.weight = weight
        # A stem the article must hold for this term to occur (the longest, as the likeliest to be rare).
        stems = [anchor_of(a)[1] for a in atoms if a[0] in "sf"]
        self.gate = max(stems, key=len) if stems else None
        self.gates = frozenset([self.gate]) if self.gate else None
        self.span_max = len(atoms) - 1
        self.key = _TERM_IDS.setdefault(atoms, len(_TERM_IDS) + 1) * 4  # + scope: the memo key

    def pos(self, art: ArticleText, scope: int) -> list[tuple[int, int]]:
        key = self.key + scope
        found = art.memo.get(key)
        if found is None:
            stem_set = art.stem_set
            for kind, value in self.atoms:
                if kind == "s" and value not in stem_set:
                    art.memo[key] = []
                    return []
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

    def ok(self, art, scope):
        return bool(self.pos(art, scope))

    def test(self, art, scope):
        found = self.pos(art, scope)
        return [(self, s, e) for s, e in found] if found else None

    def spans(self, art, scope):
        return [(s, e, ((self, s, e),)) for s, e in self.pos(art, scope)]

    def needs(self):
        return [frozenset([anchor_of(a)]) for a in self.atoms]


class Or(Node):
    """Any of its children. Children that are terms are looked up by set intersection with the article's
    stems first, so a long list of alternatives costs one C-level operation when none occurs."""

    __slots__ = ("positional", "by_gate", "gate_keys", "gates", "others", "span_max", "present_gates")

    def __init__(self, label, children):
        super().__init__(label, children)
        self.positional = all(c.positional for c in children)
        child_gates = [c.gates for c in children]
        self.present_gates = frozenset().union(*child_gates) if None not in child_gates else None
        self.span_max = max(c.span_max for c in children)
        by_gate: dict[str, list[Node]] = {}
        others: list[Node] = []
        for c in children:
            if isinstance(c, Term) and c.gate is not None:
                by_gate.setdefault(c.gate, []).append(c)
            else:
                others.append(c)
        self.by_gate = by_gate
        self.gate_keys = frozenset(by_gate)
        self.others = tuple(others)
        self.gates = self.present_gates

    def _candidates(self, art: ArticleText):
        present = self.gate_keys.intersection(art.stem_set)
        if not present:
            return self.others
        by_gate = self.by_gate
        return [c for g in present for c in by_gate[g]] + list(self.others)

    def ok(self, art, scope):
        return any(c.ok(art, scope) for c in self._candidates(art))

    def pos(self, art, scope):
        candidates = self._candidates(art)
        if len(candidates) == 1:
            return candidates[0].pos(art, scope)
        key = None
        if not self.others:
            # the same words found by another topic's list (a shared or similar @list): reuse the merge
            key = (scope, *sorted([c.key for c in candidates]))
            found = art.memo.get(key)
            if found is not None:
                return found
        out: list[tuple[int, int]] = []
        for c in candidates:
            out += c.pos(art, scope)
        out.sort()
        if key is not None:
            art.memo[key] = out
        return out

    def test(self, art, scope):
        hits: list[Hit] | None = None
        for c in self._candidates(art):
            r = c.test(art, scope)
            if r is not None:
                hits = r if hits is None else hits + r
        return hits

    def spans(self, art, scope):
        out: list[Span] = []
        for c in self._candidates(art):
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

    def ok(self, art, scope):
        return all(c.ok(art, scope) for c in self.children)

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

    def ok(self, art, scope):
        return not self.children[0].ok(art, scope)

    def test(self, art, scope):
        return None if self.children[0].ok(art, scope) else []


class Optional(Node):
    """A part with a negative weight: it never decides the match; when found it lowers the score."""

    __slots__ = ()

    def ok(self, art, scope):
        return True

    def test(self, art, scope):
        return self.children[0].test(art, scope) or []


class _Wrapper(Node):
    """A node with one child that passes evaluation through (a field sets the scope)."""

    __slots__ = ("positional", "gates", "span_max")

    def __init__(self, label, child: Node):
        super().__init__(label, (child,))
        self.positional = child.positional
        self.gates = child.gates
        self.span_max = child.span_max

    def _scope(self, scope):
        return scope

    def ok(self, art, scope):
        return self.children[0].ok(art, self._scope(scope))

    def pos(self, art, scope):
        return self.children[0].pos(art, self._scope(scope))

    def test(self, art, scope):
        return self.children[0].test(art, self._scope(scope))

    def spans(self, art, scope):
        return self.children[0].spans(art, self._scope(scope))

    def needs(self):
        return self.children[0].needs()


class Field(_Wrapper):
    """title:, body: or lead: (the title and the first LEAD_WORDS words of the body)."""

    __slots__ = ("field", "scope")

    def __init__(self, label, child: Node, field: str):
        super().__init__(label, child)
        self.field = field
        self.scope = SCOPES[field]

    def _scope(self, scope):
        return self.scope


class Ref(_Wrapper):
    """A use of a named term list (@name): transparent, but explanations show it as one clause."""

    __slots__ = ()


def _windows(ops: list[list], n: int, title_end: int, first_only: bool) -> list[tuple[int, ...]]:
    """Where every operand occurs within n words of the others, in one field.

    ops[i] holds operand i's spans (first, last, ...). One sweep in text order: at each span, the latest span
    seen of every other operand is the nearest one on the left; if all are close enough, the span closes a
    window. Returns the windows as tuples of the chosen spans' indexes into a merged list (see callers)."""
    k = len(ops)
    merged = sorted((sp[0], sp[1], i, j) for i, op in enumerate(ops) for j, sp in enumerate(op))
    latest: list[tuple | None] = [None] * k
    found = []
    for item in merged:
        s, _, i, _ = item
        latest[i] = item
        in_title = s < title_end
        for other in latest:
            if other is None or s - other[1] - 1 > n or (other[0] < title_end) != in_title:
                break
        else:
            found.append(tuple(latest))
            if first_only:
                break
    return found


class Near(Node):
    """All operands within `distance` words of each other (at most that many words between), in one field."""

    __slots__ = ("distance", "span_max")
    positional = True

    def __init__(self, label, children, distance: int):
        super().__init__(label, children)
        self.distance = distance
        self.span_max = distance + sum(c.span_max + 1 for c in children)

    def ok(self, art, scope):
        first = self.children[0].pos(art, scope)
        if not first:
            return False
        # Before merging position lists: is a gate word of every other operand within reach of the first's?
        stems, n = art.stems, self.distance
        for c in self.children[1:]:
            gates = c.gates
            if gates is not None:
                reach = n + 1 + c.span_max
                if all(gates.isdisjoint(stems[max(0, s - reach) : e + reach + 1]) for s, e in first):
                    return False
        ops = [first]
        for c in self.children[1:]:
            p = c.pos(art, scope)
            if not p:
                return False
            ops.append(p)
        return bool(_windows(ops, self.distance, art.title_end, True))

    def pos(self, art, scope):
        ops = []
        for c in self.children:
            p = c.pos(art, scope)
            if not p:
                return []
            ops.append(p)
        found = _windows(ops, self.distance, art.title_end, False)
        return sorted({(min(x[0] for x in w), max(x[1] for x in w)) for w in found})

    def spans(self, art, scope):
        ops = []
        for c in self.children:
            sp = c.spans(art, scope)
            if not sp:
                return []
            ops.append(sp)
        out = []
        for w in _windows(ops, self.distance, art.title_end, False):
            chosen = [ops[i][j] for _, _, i, j in w]
            out.append((min(c[0] for c in chosen), max(c[1] for c in chosen), tuple(h for c in chosen for h in c[2])))
        return out

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

    def _common(self, art, per_op) -> set[int]:
        common: set[int] | None = None
        for sp in per_op:
            sentences = {art.sentence_of(x[0]) for x in sp}
            common = sentences if common is None else common & sentences
            if not common:
                return set()
        return common or set()

    def ok(self, art, scope):
        per_op = []
        for c in self.children:
            p = c.pos(art, scope)
            if not p:
                return False
            per_op.append(p)
        return bool(self._common(art, per_op))

    def test(self, art, scope):
        per_op = []
        for c in self.children:
            sp = c.spans(art, scope)
            if not sp:
                return None
            per_op.append(sp)
        common = self._common(art, per_op)
        if not common:
            return None
        return list({h for sp in per_op for s, _, hs in sp if art.sentence_of(s) in common for h in hs})

    def needs(self):
        return [clause for c in self.children for clause in c.needs()]


def score_of(hits: list[Hit]) -> float:
    """Each term of the rule that took part counts its weight once, however often it occurs."""
    return sum(term.weight for term in {h[0] for h in hits})
