"""What differs between the store's two SQL dialects, as small named hooks: the queries stay shared text.

Both SQLite (3.35+) and PostgreSQL speak `ON CONFLICT`, `RETURNING` and upserts, so most statements are the same;
a query that needs a difference asks its dialect for it by name (docs/schema.md, "PostgreSQL"). Statements are
written with SQLite's `?` and `:name` placeholders; the PostgreSQL connection rewrites them once per statement
(`postgres.translate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    skip_locked: str  # after a SELECT whose rows a claim takes: other claimers skip them instead of waiting

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite"

    def text_agg(self, expression: str, separator: str = ", ", *, distinct: bool = False, order_by: str = "") -> str:
        """The values of `expression` as one "A, B" text. SQLite's DISTINCT form only takes its default ","; SQLite
        (3.40) joins in the order it reads the rows, PostgreSQL in the order said (`order_by`)."""
        if self.is_sqlite:
            if distinct:
                assert separator == ",", "SQLite's group_concat(DISTINCT x) only joins with ','"
                return f"group_concat(DISTINCT {expression})"
            return f"group_concat({expression}, '{separator}')"
        order = f" ORDER BY {order_by}" if order_by and not distinct else ""
        return f"string_agg({'DISTINCT ' if distinct else ''}{expression}, '{separator}'{order})"

    def json_list(self, expression: str, order_by: str = "") -> str:
        """The values of `expression` as JSON list text. SQLite (3.40) keeps the order of the rows it is given;
        PostgreSQL needs the order said (`order_by`)."""
        if self.is_sqlite:
            return f"json_group_array({expression})"
        return f"json_agg({expression}{f' ORDER BY {order_by}' if order_by else ''})::text"

    def json_array(self, *expressions: str) -> str:
        return f"{'json_array' if self.is_sqlite else 'json_build_array'}({', '.join(expressions)})"

    def json_key_count(self, column: str) -> str:
        """How many keys the JSON object text in `column` has."""
        if self.is_sqlite:
            return f"(SELECT count(*) FROM json_each({column}))"
        return f"(SELECT count(*) FROM json_object_keys({column}::json))"

    def greatest(self, a: str, b: str) -> str:
        """The larger of two values (SQLite's max() with two arguments is a scalar; PostgreSQL's is greatest())."""
        return f"max({a}, {b})" if self.is_sqlite else f"greatest({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"min({a}, {b})" if self.is_sqlite else f"least({a}, {b})"

    def one_at_a_time(self, key: int) -> str | None:
        """A statement that makes the rest of this write transaction wait for any other transaction that ran it
        with `key` (several workers syncing the config at once). None on SQLite: its write lock, taken by BEGIN
        IMMEDIATE, already lets one writer in at a time."""
        return None if self.is_sqlite else f"SELECT pg_advisory_xact_lock({int(key)})"

    def feed_names(self, article: str, *, as_json: bool) -> str:
        """The names of the feeds that carried article `article`.id, as a JSON list or as "A, B" text."""
        # SQLite reads article_sources in the order they were written: the order they were seen.
        first_seen = "s.seen_at, f.id"
        name = self.json_list("f.name", first_seen) if as_json else self.text_agg("f.name", order_by=first_seen)
        return (
            f"(SELECT {name} FROM article_sources s JOIN feeds f ON f.id = s.feed_id WHERE s.article_id = {article}.id)"
        )

    def newest_postings(self, keys: Sequence[str], since: str, cap: int) -> tuple[str, list[Any]]:
        """A query of `article_id`s: for each of `keys`, its newest `cap` rows of story_keys since `since`; and its
        parameters. SQLite: one limited subquery per key; PostgreSQL: one statement whatever the number of keys
        (a LATERAL join over the keys as an array), which the server plans once and keeps prepared."""
        if self.is_sqlite:
            sql = " UNION ALL ".join(
                "SELECT * FROM (SELECT article_id FROM story_keys WHERE key = ? AND seen_at >= ?"
                f" ORDER BY seen_at DESC LIMIT ?) AS k{i}"
                for i in range(len(keys))
            )
            return sql, [value for key in keys for value in (key, since, cap)]
        sql = (
            "SELECT p.article_id FROM unnest(CAST(? AS text[])) AS k(key) CROSS JOIN LATERAL"
            " (SELECT article_id FROM story_keys WHERE key = k.key AND seen_at >= ? ORDER BY seen_at DESC LIMIT ?) AS p"
        )
        return sql, [list(keys), since, cap]

    # --- full-text search: FTS5 on SQLite, a tsvector column with a GIN index on PostgreSQL ---------------

    def search_source(self) -> str:
        """The FROM clause of a search over `articles a`; its one parameter is the query (see search_text)."""
        if self.is_sqlite:
            return "articles_fts JOIN articles a ON a.id = articles_fts.rowid"
        return "articles a CROSS JOIN websearch_to_tsquery('english', ?) AS q"

    def search_match(self) -> str:
        """The WHERE condition of a search (SQLite: its one parameter is the query)."""
        return "articles_fts MATCH ?" if self.is_sqlite else "a.search_vector @@ q"

    def search_snippet(self) -> str:
        if self.is_sqlite:
            return "snippet(articles_fts, -1, '[[', ']]', '…', 24)"
        return (
            "ts_headline('english', a.title || ' ' || a.body, q,"
            " 'StartSel=[[, StopSel=]], MaxWords=24, MinWords=8, FragmentDelimiter=…, MaxFragments=1')"
        )

    def search_rank(self) -> str:
        """Lower is better, as FTS5's bm25 (title hits weigh 5 times body hits on SQLite; A vs B on PostgreSQL)."""
        if self.is_sqlite:
            return "round(bm25(articles_fts, 5.0, 1.0), 3)"
        return "round(-ts_rank(a.search_vector, q)::numeric, 3)::float8"


# SQLite serialises writers: the transaction that claims holds the only write lock, so there is nothing to skip.
SQLITE = Dialect("sqlite", "")
POSTGRES = Dialect("postgresql", " FOR UPDATE SKIP LOCKED")
