"""The rule language's grammar: text -> syntax tree, with every error located in the text it came from.

    rule      := or_expr
    or_expr   := and_expr ( "OR" and_expr )*
    and_expr  := near_expr ( ["AND"] near_expr )*  two terms side by side mean AND
    near_expr := unary ( "NEAR/" number unary )*   a NEAR/5 b is NEAR(a b, 5)
    unary     := "NOT" unary | field ":" unary | weighted
    weighted  := primary [ "^" number ]
    primary   := word | word* | =word | "a phrase" | ="a phrase" | @list | "(" or_expr ")"
               | NEAR( operand operand ... [, number] ) | SENTENCE( operand operand ... )
    operand   := unary ( "OR" unary )*             inside NEAR/SENTENCE, side by side means "another operand"

Operators are written in capitals; `and`, `or`, `not` in lower case are refused (they are stop words, and a
rule that silently searched for the word "and" would be a bug nobody sees). See docs/rules.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .text import words_of

FIELDS = ("title", "body", "lead")
FUNCTIONS = ("NEAR", "SENTENCE")
DEFAULT_NEAR = 10
MAX_NEAR = 500
# Parentheses, NOT, fields and NEAR( ) within each other: the parser recurses, and a pasted rule of 5,000 NOTs
# must be an error that names the limit, not a RecursionError.
MAX_DEPTH = 64

_SPECIAL = set('()",^@=:')
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INFIX_NEAR_RE = re.compile(r"(?i)near/\d+")


def place(rule: str, position: int) -> str:
    """A 0-based offset as a person finds it: "column 11", or "line 3, column 5" in a rule of several lines."""
    start = rule.rfind("\n", 0, position) + 1
    column = f"column {position - start + 1}"
    return f"line {rule.count(chr(10), 0, position) + 1}, {column}" if "\n" in rule.strip("\n") else column


class RuleSyntaxError(Exception):
    """Raised inside the parser; compile turns it into a RuleError with the topic and the rule."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(slots=True)
class Syntax:
    """One node of the syntax tree. `start`/`end` locate it in the rule text (for errors and explanations)."""

    kind: str  # "term", "ref", "and", "or", "not", "near", "sentence", "field"
    start: int
    end: int
    children: list[Syntax] = field(default_factory=list)
    words: tuple[str, ...] = ()  # term: folded words (several = a phrase)
    prefix: tuple[bool, ...] = ()  # term: which words end with * (match as a prefix)
    exact: bool = False  # term: =word, the form as written (no word forms, no Hangul prefix)
    name: str = ""  # ref: the term list; field: the field name
    distance: int = DEFAULT_NEAR  # near
    weight: float = 1.0


@dataclass(slots=True)
class _Token:
    kind: str  # "(", ")", ",", "^", "=", "phrase", "word", "ref", "field", "func", "op", "near", "end"
    text: str
    start: int
    end: int


def _lex(rule: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(rule)
    while i < n:
        ch = rule[i]
        if ch.isspace():
            i += 1
        elif ch in "(),^=":
            tokens.append(_Token(ch, ch, i, i + 1))
            i += 1
        elif ch == '"' or ch in "“”":
            close = min((j for j in (rule.find('"', i + 1), rule.find("”", i + 1)) if j >= 0), default=-1)
            if close < 0:
                raise RuleSyntaxError(f'expected " to close the phrase opened at {place(rule, i)}', n)
            tokens.append(_Token("phrase", rule[i + 1 : close], i, close + 1))
            i = close + 1
        elif ch == "@":
            m = _NAME_RE.match(rule, i + 1)
            if not m:
                raise RuleSyntaxError("expected a term list name after @ (letters, digits, _ and -)", i)
            tokens.append(_Token("ref", m.group(), i, m.end()))
            i = m.end()
        elif ch == ":":
            raise RuleSyntaxError("expected a field name before : (title:, body: or lead:)", i)
        else:
            j = i
            while j < n and not rule[j].isspace() and rule[j] not in _SPECIAL:
                j += 1
            text = rule[i:j]
            if j < n and rule[j] == ":":
                if text.lower() not in FIELDS:
                    raise RuleSyntaxError(f"unknown field {text}:; known: title:, body:, lead:", i)
                tokens.append(_Token("field", text.lower(), i, j + 1))
                j += 1
            elif j < n and rule[j] == "(":
                if text.upper() in FUNCTIONS and text != text.upper():
                    raise RuleSyntaxError(f"write {text.upper()}( in capitals", i)
                if text not in FUNCTIONS:
                    raise RuleSyntaxError(
                        f"unknown operator {text}(; known: NEAR(, SENTENCE( (put a space before ( to start a group)", i
                    )
                tokens.append(_Token("func", text, i, j + 1))
                j += 1
            elif text in ("AND", "OR", "NOT"):
                tokens.append(_Token("op", text, i, j))
            elif text in FUNCTIONS:
                raise RuleSyntaxError(
                    f"{text} takes its terms in parentheses right after it, as in {text}(drone supply)"
                    + (" or drone NEAR/5 supply" if text == "NEAR" else ""),
                    i,
                )
            elif text.upper().startswith("NEAR/") and not _INFIX_NEAR_RE.fullmatch(text):
                raise RuleSyntaxError("expected a number after NEAR/, as in drone NEAR/5 supply", i + 5)
            elif _INFIX_NEAR_RE.fullmatch(text):
                if not text.startswith("NEAR"):
                    raise RuleSyntaxError(f"write {text.upper()} in capitals", i)
                if not 0 <= int(text[5:]) <= MAX_NEAR:
                    raise RuleSyntaxError(f"NEAR distance must be a whole number from 0 to {MAX_NEAR}", i + 5)
                tokens.append(_Token("near", text, i, j))
            elif text.lower() in ("and", "or", "not"):
                raise RuleSyntaxError(
                    f'write {text.upper()} in capitals for the operator, or "{text}" in quotes to search for the word',
                    i,
                )
            else:
                tokens.append(_Token("word", text, i, j))
            i = j
    tokens.append(_Token("end", "", n, n))
    return tokens


class _Parser:
    def __init__(self, rule: str):
        self.rule = rule
        self.tokens = _lex(rule)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def parse(self) -> Syntax:
        if self.tok.kind == "end":
            raise RuleSyntaxError("the rule is empty", 0)
        node = self.or_expr()
        t = self.tok
        if t.kind == ")":
            raise RuleSyntaxError("unexpected ): no ( to close", t.start)
        if t.kind != "end":
            raise RuleSyntaxError(f"unexpected {t.text!r}", t.start)
        return node

    def or_expr(self, inside_operand: bool = False) -> Syntax:
        first = self.unary() if inside_operand else self.and_expr()
        parts = [first]
        while self.tok.kind == "op" and self.tok.text == "OR":
            op = self.take()
            if self.tok.kind in ("end", ")", ","):
                raise RuleSyntaxError("expected a term after OR", op.end)
            parts.append(self.unary() if inside_operand else self.and_expr())
        if len(parts) == 1:
            return first
        return Syntax("or", parts[0].start, parts[-1].end, parts)

    def and_expr(self) -> Syntax:
        parts = [self.near_expr()]
        while True:
            t = self.tok
            if t.kind == "op" and t.text == "AND":
                self.take()
                if self.tok.kind in ("end", ")", ","):
                    raise RuleSyntaxError("expected a term after AND", t.end)
                parts.append(self.near_expr())
            elif t.kind in ("word", "phrase", "ref", "field", "func", "(", "=") or (t.kind == "op" and t.text == "NOT"):
                parts.append(self.near_expr())  # side by side: AND
            else:
                break
        if len(parts) == 1:
            return parts[0]
        return Syntax("and", parts[0].start, parts[-1].end, parts)

    def near_expr(self) -> Syntax:
        """a NEAR/5 b: the infix form of NEAR(a b, 5), as in Lexis and Westlaw."""
        node = self.unary()
        while self.tok.kind == "near":
            op = self.take()
            if self.tok.kind in ("end", ")", ",") or self.tok.kind == "op":
                raise RuleSyntaxError(f"expected a term after {op.text}", op.end)
            right = self.unary()
            distance = int(op.text.split("/")[1])
            if (
                node.kind == "near"
                and node.distance == distance
                and node.start < node.end
                and self.rule[node.start] != "("
            ):
                node.children.append(right)  # a NEAR/5 b NEAR/5 c: all three within 5
                node.end = right.end
            else:
                node = Syntax("near", node.start, right.end, [node, right], distance=distance)
        return node

    def unary(self) -> Syntax:
        # every nesting (parentheses, NEAR/SENTENCE operands, NOT, fields) passes through here
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise RuleSyntaxError(
                    f"the rule nests too deep: more than {MAX_DEPTH} levels of parentheses, NOT and fields",
                    self.tok.start,
                )
            return self._unary()
        finally:
            self.depth -= 1

    def _unary(self) -> Syntax:
        t = self.tok
        if t.kind == "op" and t.text == "NOT":
            self.take()
            if self.tok.kind in ("end", ")", ","):
                raise RuleSyntaxError("expected a term after NOT", t.end)
            child = self.unary()
            return Syntax("not", t.start, child.end, [child])
        if t.kind == "field":
            self.take()
            if self.tok.kind in ("end", ")", ",") or self.tok.kind == "op":
                raise RuleSyntaxError(f"expected a term or ( after {t.text}:", t.end)
            child = self.unary()
            return Syntax("field", t.start, child.end, [child], name=t.text)
        node = self.primary()
        if self.tok.kind == "^":
            caret = self.take()
            num = self.tok
            if num.kind != "word" or not _NUMBER_RE.fullmatch(num.text):
                raise RuleSyntaxError("expected a number after ^, as in drone^2 or strike^-1", caret.end)
            self.take()
            node.weight = float(num.text)
            node.end = num.end
        return node

    def primary(self) -> Syntax:
        t = self.tok
        if t.kind == "(":
            self.take()
            if self.tok.kind == ")":
                raise RuleSyntaxError("empty ( )", t.start)
            node = self.or_expr()
            if self.tok.kind != ")":
                raise RuleSyntaxError(
                    f"expected ) to close the ( opened at {place(self.rule, t.start)}", self.tok.start
                )
            close = self.take()
            node.start, node.end = t.start, close.end
            return node
        if t.kind == "=":
            self.take()
            nxt = self.tok
            if nxt.kind not in ("word", "phrase") or nxt.start != t.end:
                raise RuleSyntaxError("expected a word or a phrase right after = (exact form, as in =US)", t.end)
            node = self.term(self.take())
            if any(node.prefix):
                raise RuleSyntaxError("= (exact form) and * (prefix) do not go together", t.start)
            node.exact, node.start = True, t.start
            return node
        if t.kind in ("word", "phrase"):
            return self.term(self.take())
        if t.kind == "ref":
            self.take()
            return Syntax("ref", t.start, t.end, name=t.text)
        if t.kind == "func":
            return self.function(self.take())
        if t.kind == "end":
            raise RuleSyntaxError("expected a term, found the end of the rule", t.start)
        if t.kind == ")":
            raise RuleSyntaxError("expected a term, found )", t.start)
        if t.kind == "op":
            raise RuleSyntaxError(f"expected a term before {t.text}", t.start)
        raise RuleSyntaxError(f"expected a term, found {t.text!r}", t.start)

    def term(self, t: _Token) -> Syntax:
        """A word or a phrase; a word cut into several words ("long-range", "Kim Jong-un") is a phrase."""
        offset = t.start + (1 if t.kind == "phrase" else 0)
        words: list[str] = []
        prefix: list[bool] = []
        for m in re.finditer(r"\S+", t.text):
            chunk = m.group()
            star = chunk.endswith("*")
            if "*" in chunk[:-1]:
                raise RuleSyntaxError(
                    "* goes at the end of a word, as in deploy*", offset + m.start() + chunk.index("*")
                )
            parts = words_of(chunk[:-1] if star else chunk)
            if star:
                if not parts:
                    raise RuleSyntaxError("expected a word before *", offset + m.start())
                _check_prefix(parts[-1], offset + m.start())
            words.extend(parts)
            prefix.extend([False] * (len(parts) - 1) + [star] if parts else [])
        if not words:
            if t.kind == "phrase":
                raise RuleSyntaxError("empty phrase", t.start)
            raise RuleSyntaxError(f"expected a word, found {t.text!r}", t.start)
        return Syntax("term", t.start, t.end, words=tuple(words), prefix=tuple(prefix))

    def function(self, t: _Token) -> Syntax:
        name = t.text
        operands: list[Syntax] = []
        distance = DEFAULT_NEAR
        while True:
            cur = self.tok
            if cur.kind == ")":
                self.take()
                break
            if cur.kind == "end":
                raise RuleSyntaxError(
                    f"expected ) to close the {name}( opened at {place(self.rule, t.start)}", cur.start
                )
            if cur.kind == ",":
                self.take()
                nxt = self.tok
                if nxt.kind == "word" and nxt.text.lstrip("-").isdigit() and self.tokens[self.i + 1].kind == ")":
                    if name != "NEAR":
                        raise RuleSyntaxError(f"{name}( takes no distance", nxt.start)
                    distance = int(nxt.text)
                    if not 0 <= distance <= MAX_NEAR:
                        raise RuleSyntaxError(f"NEAR distance must be a whole number from 0 to {MAX_NEAR}", nxt.start)
                    self.take()
                continue
            if cur.kind == "op" and cur.text in ("AND", "NOT"):
                raise RuleSyntaxError(
                    f"{cur.text} inside {name}( ): its terms must all be found anyway; use OR for alternatives",
                    cur.start,
                )
            if (
                name == "NEAR"
                and operands
                and cur.kind == "word"
                and cur.text.isdigit()
                and self.tokens[self.i + 1].kind == ")"
            ):
                # NEAR(drone supply 5): the comma is missing, and 5 would silently become a word to find.
                raise RuleSyntaxError(
                    f"a NEAR distance goes after a comma, as in NEAR(drone supply, {cur.text}); "
                    f'to find the number itself, put it in quotes: "{cur.text}"',
                    cur.start,
                )
            operands.append(self.or_expr(inside_operand=True))
        end = self.tokens[self.i - 1].end
        if len(operands) < 2:
            raise RuleSyntaxError(f"{name}( needs at least two terms, as in {name}(drone supply)", t.start)
        return Syntax(name.lower(), t.start, end, operands, distance=distance)


def _check_prefix(word: str, position: int) -> None:
    from .text import CJK, HANGUL, script_of

    least = 1 if script_of(word) in (HANGUL, CJK) else 3
    if len(word) < least:
        raise RuleSyntaxError(f"a prefix needs at least {least} letters before *", position)


def parse(rule: str) -> Syntax:
    """Parse a rule; raises RuleSyntaxError(message, position)."""
    return _Parser(rule).parse()
