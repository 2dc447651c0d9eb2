"""What differs between the store's two SQL dialects, as small named hooks: the queries stay shared text.

Both SQLite (3.35+) and PostgreSQL speak `ON CONFLICT`, `RETURNING` and upserts, so most statements are the same;
a query that needs a difference asks its dialect for it by name (docs/schema.md, "PostgreSQL").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    param: str  # one bound parameter
    skip_locked: str  # after a SELECT whose rows a claim takes: other claimers skip them instead of waiting
    begin_write: str  # how a write transaction starts: SQLite takes the write lock up front

    def params(self, values: Sequence[Any]) -> str:
        """`?,?,?` (or `%s,%s,%s`) for an `IN (...)` over `values`."""
        return ",".join([self.param] * len(values))

    def sql(self, text: str) -> str:
        """A statement written with `?` placeholders, in this dialect's."""
        return text if self.param == "?" else text.replace("?", self.param)

    def text_agg(self, expression: str) -> str:
        """The values of `expression` as one "A, B" text."""
        return f"group_concat({expression}, ', ')" if self.name == "sqlite" else f"string_agg({expression}, ', ')"


# SQLite serialises writers: the transaction that claims holds the only write lock, so there is nothing to skip.
SQLITE = Dialect("sqlite", "?", "", "BEGIN IMMEDIATE")
POSTGRES = Dialect("postgresql", "%s", " FOR UPDATE SKIP LOCKED", "BEGIN")
