"""`watcher rules test`, `rematch`, `search` and `export` on a real database and config file."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from watcher.cli import main
from watcher.config import load_config
from watcher.models import Article, Entry, FeedUpdate
from watcher.rules import compile_topics, match_article
from watcher.store import Store

CONFIG = """
[[feeds]]
name = "desk"
url = "https://desk.example/feed"

[topics.drones]
rule = 'drone* AND (factory OR produc*)'

[topics.troops]
rule = 'troop* AND (deploy* OR sent)'

[channels.inbox]
type = "console"
"""

STORIES = [
    ("Russia and North Korea open a drone factory", "The factory will produce drones for the front."),
    ("Troops deployed to the border", "Thousands of troops were deployed overnight to the northern border."),
    ("Drone show lights up Seoul", "Hundreds of drones formed pictures over the river."),  # unmatched, kept for rematch
]


@pytest.fixture
def env(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    config = load_config(tmp_path / "config.toml")
    store = Store.open(tmp_path / "watcher.db")
    now = datetime.now(UTC)
    store.sync_feeds(config.feeds, timedelta(minutes=15), now)
    topics = compile_topics(config.topics, config.terms)
    articles = []
    for i, (title, body) in enumerate(STORIES):
        entry = Entry(
            "https://desk.example/feed", f"e{i}", f"https://desk.example/{i}", f"https://desk.example/{i}", title
        )
        articles.append(Article(entry.url, title, body, "page", entry, matches=match_article(topics, title, body)))
    update = FeedUpdate(
        "https://desk.example/feed",
        now,
        now,
        "ok",
        seen_entry_ids=tuple(a.entry.entry_id for a in articles),
        articles=tuple(articles),
    )
    store.apply_update(1, update, config.routes())
    store.close()
    return tmp_path


def run(env, *args):
    result = CliRunner().invoke(main, ["--config", str(env / "config.toml"), *args], catch_exceptions=False)
    return result


def test_rules_test_explains_a_match(env):
    result = run(env, "rules", "test", "troops", "--text", "Russia deployed troops to the border.")
    assert result.exit_code == 0, result.output
    assert "deployed" in result.output and "[[" in result.output


def test_rules_test_says_why_not_and_exits_1(env):
    result = run(env, "rules", "test", "drone* AND factory", "--text", "A drone show over the river.")
    assert result.exit_code == 1
    assert "not found: factory" in result.output


def test_rules_test_gives_a_short_verdict_and_the_tree_with_explain(env):
    args = ["rules", "test", "troops", "--text", "Russia deployed troops to the border."]
    short = run(env, *args).output.splitlines()
    assert short[0].startswith("troops: MATCH") and len(short) <= 4  # verdict, terms, snippet
    assert not any("✓" in line for line in short)
    tree = run(env, *args, "--explain").output
    assert "✓" in tree and len(tree.splitlines()) > len(short)


def test_an_untriggered_penalty_is_not_ticked(env):
    rule = "troop* AND deploy* AND exercise^-1"
    tree = run(env, "rules", "test", rule, "--text", "Troops deployed to the border.", "--explain").output
    (line,) = [line for line in tree.splitlines() if "exercise" in line and "AND" not in line]
    assert "✓" not in line and "penalty not triggered" in line
    applied = run(env, "rules", "test", rule, "--text", "Troops deployed for an exercise.", "--explain").output
    assert "penalty applied" in applied


def test_rules_test_reports_a_bad_rule_with_its_position(env):
    result = run(env, "rules", "test", "drone AND (factory", "--text", "x")
    assert result.exit_code != 0
    assert "position" in result.output


def test_rules_test_on_an_html_file(env, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><nav>Home News</nav><article><h1>Drones</h1>"
        + "<p>The new factory will produce drones for export to several countries, officials said.</p>" * 5
        + "</article></body></html>"
    )
    result = run(env, "rules", "test", "drones", "--file", str(page))
    assert result.exit_code == 0, result.output


def test_search_ranks_and_filters(env):
    result = run(env, "search", "drones", "--format", "json")
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["title"] for r in rows} == {STORIES[0][0], STORIES[2][0]}
    assert all("[[" in r["snippet"] for r in rows)
    only_topic = [
        json.loads(line)
        for line in run(env, "search", "drones", "--topic", "drones", "--format", "json").output.splitlines()
    ]
    assert [r["title"] for r in only_topic] == [STORIES[0][0]]
    unknown_feed = run(env, "search", "drones", "--feed", "dek", "--format", "json")
    assert unknown_feed.exit_code == 2 and "no feed named 'dek'; did you mean 'desk'?" in unknown_feed.output
    unknown_topic = run(env, "search", "drones", "--topic", "drone")
    assert unknown_topic.exit_code == 2 and "no topic named 'drone'; known: drones, troops" in unknown_topic.output


def _titles(env, query):
    result = run(env, "search", query, "--format", "json")
    assert result.exit_code == 0, result.output
    return {json.loads(line)["title"] for line in result.output.splitlines()}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("north-korean", set()),  # was: no such column: korean (and no story says "North Korean")
        ("North-Korea", {0}),
        ("drone", {0, 2}),  # forms match: drones, drone
        ("drones", {0, 2}),
        ("deploying", {1}),  # deployed
        ('"drone factory"', {0}),
        ('"unclosed drone', set()),  # a stray quote is forgiven
        ("drone AND", {0, 2}),  # so is a dangling operator
        ("drone NOT seoul", {0}),
        ("(factory OR border) troops", {1}),
        ("deploy*", {1}),
    ],
)
def test_search_takes_plain_words_hyphens_and_quotes_and_matches_forms(env, query, expected):
    assert _titles(env, query) == {STORIES[i][0] for i in expected}


def test_a_search_with_nothing_to_find_says_so(env):
    result = run(env, "search", "AND OR")
    assert result.exit_code == 2 and "nothing to search for" in result.output


def test_export_json_writes_terms_as_a_list_and_refuses_an_unknown_topic(env):
    rows = [json.loads(line) for line in run(env, "export", "--format", "json").output.splitlines()]
    assert rows and all(isinstance(r["terms"], list) for r in rows)
    assert "no topic named 'nope'" in run(env, "export", "--topic", "nope").output


def test_datasette_finds_the_full_text_index_of_articles(env):
    # Datasette (and sqlite-utils) detect an FTS table by `content="articles"` in its SQL: the check both use.
    import sqlite_utils

    db = sqlite_utils.Database(env / "watcher.db")
    assert db["articles"].detect_fts() == "articles_fts"
    ids = [r[0] for r in db.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH 'drones'").fetchall()]
    assert len(ids) == 2


def test_export_csv_and_json(env):
    rows = list(csv.DictReader(io.StringIO(run(env, "export").output)))
    assert {r["topic"] for r in rows} == {"drones", "troops"}
    assert {"title", "url", "terms", "snippet", "feeds"} <= set(rows[0])
    lines = run(env, "export", "--topic", "troops", "--format", "json").output.splitlines()
    assert [json.loads(line)["title"] for line in lines] == [STORIES[1][0]]


def test_rematch_adds_new_matches_and_retracts_old_ones_without_deleting(env):
    # Widen "drones" to any drone story, narrow "troops" so the stored match no longer holds.
    text = (env / "config.toml").read_text()
    text = text.replace("rule = 'drone* AND (factory OR produc*)'", "rule = 'drone*'")
    text = text.replace("rule = 'troop* AND (deploy* OR sent)'", "rule = 'troop* AND withdraw*'")
    (env / "config.toml").write_text(text)

    result = run(env, "rematch")
    assert result.exit_code == 0, result.output
    assert "1 new matches, 1 retracted" in result.output

    store = Store.open(env / "watcher.db")
    rows = {
        (r["topic"], r["title"]): r["retracted_at"]
        for r in store.db.query(
            "SELECT m.topic, a.title, m.retracted_at FROM matches m JOIN articles a ON a.id = m.article_id"
        )
    }
    assert rows[("drones", STORIES[2][0])] is None  # the drone show now matches ...
    assert rows[("troops", STORIES[1][0])] is not None  # ... and the troop story is marked, still there
    pending = {d.title for d in store.pending_deliveries("inbox", datetime.now(UTC) + timedelta(minutes=1))}
    assert STORIES[2][0] in pending  # the new match alerts
    assert STORIES[1][0] not in pending  # the retracted one's unsent alert is not sent

    again = run(env, "rematch")
    assert "0 new matches, 0 retracted, 0 alerts queued" in again.output  # idempotent
