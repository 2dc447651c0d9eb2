"""NEAR and SENTENCE: proximity on bit masks of word positions (bit i = word i; see evaluate.py).

NEAR(a b, n) holds when there is a position x such that every operand covers a word in [x - n - 1, x]: for
each operand, spread its mask n + 1 bits to the right (log2(n) shift-and-OR steps) and AND the results. The
title and the body are GAP bits apart in a mask, so no window spans both. SENTENCE maps each operand's bits
to sentence numbers and intersects the sets.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import reduce
from operator import itemgetter, or_

from .evaluate import MAX_SPAN_HITS, Node, _Pass, bounded

MAX_OPERAND_SPANS = 4  # an operand's spans joined into one window: the nearest few are enough to show it
_SCAN = 64  # spans looked at per operand and window, from the nearest: bounds a window's cost on any text


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

    def _spans(self, art, scope):
        """One span per window end, made of the operands' spans that reach into the window: for each operand at
        most MAX_OPERAND_SPANS, the nearest, found by bisection, so a window costs the same however often the
        words repeat (joining every inner hit made nested NEARs cost the product of their counts)."""
        ends = self._ends(art, scope) & art.scope_mask(0)
        if not ends:
            return []
        r, t = self.distance + 1, art.title_end
        operands = []
        for child in self.children:
            found = sorted(child.spans(art, scope), key=itemgetter(0))
            width = max((sp[1] - sp[0] for sp in found), default=0)
            operands.append((found, [sp[0] for sp in found], width))
        out = []
        for bit in _bits(ends):
            x = art.position_of(bit)
            chosen = []
            for found, starts, width in operands:
                last = bisect_right(starts, x)  # spans that start at or before x...
                first = max(bisect_left(starts, x - r - width), last - _SCAN)  # ...and may still reach x - r
                taken = 0
                for i in range(last - 1, first - 1, -1):
                    sp = found[i]
                    if sp[1] >= x - r and (sp[0] < t) == (x < t):
                        chosen.append(sp)
                        taken += 1
                        if taken == MAX_OPERAND_SPANS:
                            break
            if chosen:
                hits = bounded((h for c in chosen for h in c[2]), MAX_SPAN_HITS)
                out.append((min(c[0] for c in chosen), max(c[1] for c in chosen), tuple(hits)))
        return out

    def _test(self, art, scope):
        windows = self.spans(art, scope)
        if not windows:
            return None
        return list({h for w in windows for h in w[2]})

    def _needs(self):
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

    def _test(self, art, scope):
        common = self._common(art, scope)
        if not common:
            return None
        return list(
            {h for c in self.children for s, _, hs in c.spans(art, scope) if art.sentence_of(s) in common for h in hs}
        )

    def _needs(self):
        return [clause for c in self.children for clause in c.needs()]
