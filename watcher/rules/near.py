"""NEAR and SENTENCE: proximity on bit masks of word positions (bit i = word i; see evaluate.py).

NEAR(a b, n) holds when there is a position x such that every operand covers a word in [x - n - 1, x]: for
each operand, spread its mask n + 1 bits to the right (log2(n) shift-and-OR steps) and AND the results. The
title and the body are GAP bits apart in a mask, so no window spans both. SENTENCE maps each operand's bits
to sentence numbers and intersects the sets.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from .evaluate import Node, _Pass


def _steps(r: int) -> tuple[int, ...]:
    """Shifts that spread a bit over r more bits in log2(r) steps: m |= m << s for each s (r=6: 1, 2, 3)."""
    steps, span = [], 1
    while span <= r:
        steps.append(min(span, r + 1 - span))
        span += steps[-1]
    return tuple(steps)


def _reach_left(mask: int, r: int) -> int:
    """Bits x such that some bit of `mask` lies in [x, x + r]."""
    for step in _steps(r):
        mask |= mask >> step
    return mask


def _bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _unwrap(node: Node) -> tuple[Node, int]:
    """The node under @list and field wrappers, and the scope the innermost field sets (0: inherited)."""
    scope = 0
    while isinstance(node, _Pass):
        scope = scope or node.scope
        node = node.children[0]
    return node, scope


class Near(Node):
    """All operands within `distance` words: there is a position x such that every operand covers a word in
    [x - distance - 1, x], in one field (for two words: at most `distance` words between them)."""

    __slots__ = ("distance", "inner", "steps")
    positional = True

    def __init__(self, label, children, distance: int):
        super().__init__(label, children, distance)
        self.distance = distance
        self.inner = tuple(_unwrap(c) for c in children)
        self.steps = _steps(distance + 1)

    def _ends(self, art, scope) -> int:
        """The bits x that close a window (see the class docstring). The GAP between title and body keeps
        windows inside one field."""
        memo = art.masks
        own = -1 - self.uid - scope  # negative: the windows; uid + scope holds the mask
        found = memo.get(own)
        if found is not None:
            return found
        found = -1
        steps = self.steps
        for node, inner_scope in self.inner:
            m = node.mask(art, inner_scope or scope)
            for step in steps:  # reach right: bits x with a bit of m in [x - distance - 1, x]
                m |= m << step
            found &= m
            if not found:
                break
        memo[own] = found
        return found

    def ok(self, art, scope):
        return bool(self._ends(art, scope))

    def _mask(self, art, scope):
        ends = self._ends(art, scope)
        if not ends:
            return 0
        # the operands' words that take part in a window: those within reach to the left of an end
        return _reach_left(ends, self.distance + 1) & reduce(or_, (n.mask(art, s or scope) for n, s in self.inner))

    def spans(self, art, scope):
        ends = self._ends(art, scope) & art.scope_mask(0)
        if not ends:
            return []
        ops = [c.spans(art, scope) for c in self.children]
        r, t = self.distance + 1, art.title_end
        out = []
        for bit in _bits(ends):
            x = art.position_of(bit)
            chosen = [sp for op in ops for sp in op if sp[0] <= x and sp[1] >= x - r and (sp[0] < t) == (x < t)]
            if chosen:
                out.append(
                    (min(c[0] for c in chosen), max(c[1] for c in chosen), tuple(h for c in chosen for h in c[2]))
                )
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

    __slots__ = ("inner",)

    def __init__(self, label, children):
        super().__init__(label, children)
        self.inner = tuple(_unwrap(c) for c in children)

    def _common(self, art, scope) -> set[int]:
        common: set[int] | None = None
        for node, inner_scope in self.inner:
            m = node.mask(art, inner_scope or scope)
            if not m:
                return set()
            sentences = art.memo.get(("S", m))
            if sentences is None:
                sentences = art.memo[("S", m)] = {art.sentence_of(art.position_of(b)) for b in _bits(m)}
            common = sentences if common is None else common & sentences
            if not common:
                return set()
        return common or set()

    def ok(self, art, scope):
        key = self.uid + scope
        found = art.masks.get(key)
        if found is None:
            found = art.masks[key] = 1 if self._common(art, scope) else 0
        return bool(found)

    def test(self, art, scope):
        common = self._common(art, scope)
        if not common:
            return None
        return list(
            {h for c in self.children for s, _, hs in c.spans(art, scope) if art.sentence_of(s) in common for h in hs}
        )

    def needs(self):
        return [clause for c in self.children for clause in c.needs()]
