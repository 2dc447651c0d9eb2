"""Stories end to end: five outlets' versions of one event become one story with five sources and one alert; a
follow-up and a same-topic neighbour stay apart; merges and splits by hand hold; digests show "N sources".

Real parts: the local site serves the feeds and pages we write here, the real pipeline polls them into a real
SQLite file, Slack goes to the local webhook server and email to the local SMTP server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from tests.helpers.news import poll_all
from tests.helpers.smtp_server import SmtpServer
from tests.helpers.webhook_server import Endpoint
from watcher.alerts.outbox import Dispatcher
from watcher.cli import main
from watcher.config import config_from_dict
from watcher.stories import StorySettings, StoryText, decide_story

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

# One event, five outlets: different URLs, headlines and summaries (the GUIDE's kind of "same story").
EVENT = [
    (
        "Burkina Faso tells French troops to leave within a month",
        "Burkina Faso's military government has given French forces one month to withdraw from the country,"
        " ending a 2018 military accord, the state broadcaster RTB said on Sunday.",
    ),
    (
        "French troops to exit Burkina Faso within a month",
        "The junta in Ouagadougou ended the 2018 military accord with Paris and gave the 400 French special forces"
        " based in Burkina Faso one month to leave, RTB reported.",
    ),
    (
        "Burkina Faso ends military accord with France, gives troops a month to go",
        "Ouagadougou suspended the 2018 agreement under which French special forces are stationed in Burkina Faso"
        " and gave them one month to withdraw, state broadcaster RTB said.",
    ),
    (
        "Ouagadougou orders French special forces out of Burkina Faso",
        "Burkina Faso's junta has demanded that the 400 French troops of the Sabre task force leave within one"
        " month, ending the 2018 accord, RTB television reported on Sunday.",
    ),
    (
        "France's Sabre force told to quit Burkina Faso in one month",
        "Burkina Faso gave French troops a month to withdraw after ending the 2018 military accord with France,"
        " the national broadcaster RTB said.",
    ),
]
FOLLOW_UP = (
    "Last French soldiers leave Kamboinsin base as Sabre mission ends",
    "The final contingent of French special forces flew out of the Kamboinsin camp near Ouagadougou on Wednesday,"
    " the French general staff said, closing the Sabre base after fourteen years.",
)
NEIGHBOUR = (
    "Germany deploys first troops of permanent Lithuania brigade",
    "The first German soldiers of a permanent armoured brigade arrived in Vilnius on Monday, the defence ministry"
    " in Berlin said, the first such deployment abroad since 1945.",
)
BACKGROUND = [  # ordinary news that teaches the store which words are common
    (
        "Tokyo stocks close higher as yen weakens",
        "Exporters led gains on the Nikkei as the yen fell against the dollar.",
    ),
    (
        "Seoul braces for first snow of the winter",
        "Forecasters expect ten centimetres of snow in the capital by Friday.",
    ),
    (
        "Ukraine says Russian drones hit Odesa port",
        "Russian drones struck grain facilities in Odesa overnight, officials said.",
    ),
    ("Military government in Mali extends transition", "Mali's junta said elections would be delayed by two years."),
    (
        "France announces new budget cuts",
        "The French government said on Monday it would cut spending by ten billion euros.",
    ),
    (
        "Troops patrol streets after riots in capital",
        "Soldiers were deployed in the capital after two nights of riots, police said.",
    ),
]


def feed_xml(site, name: str, items: list[tuple[str, str, str, datetime]]) -> str:
    body = "".join(
        f"<item><title>{title}</title><link>{site.url(f'/{name}/{slug}.html')}</link><guid>{name}-{slug}</guid>"
        f"<description>{summary}</description><pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        for slug, title, summary, when in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title><link>{site.url("/")}</link>{body}</channel></rss>'


def serve(site, name: str, items: list[tuple[str, str, str, datetime]]) -> None:
    site.add(f"/{name}.rss", feed_xml(site, name, items), content_type="application/rss+xml")
    for slug, title, summary, _ in items:
        page = f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1><p>{summary}</p></article></body></html>"
        site.add(f"/{name}/{slug}.html", page, content_type="text/html; charset=utf-8")


OUTLETS = ["wire", "daily", "herald", "afrique", "courier"]


def config_for(site, channels: dict, outlets=(*OUTLETS, "late")):
    return config_from_dict(
        {
            "watcher": {"alert_on_first_poll": True},
            "fetch": {
                "allow_networks": ["127.0.0.0/8"],
                "timeout": "3s",
                "read_timeout": "2s",
                "connect_timeout": "2s",
            },
            "extract": {"workers": 1, "timeout": "20s"},
            "feeds": [{"name": n, "url": site.url(f"/{n}.rss")} for n in outlets],
            "topics": {"troops": {"rule": "troop* OR soldier* OR forces", "urgent": True}},
            "channels": channels,
        },
        "test-config.toml",
    )


def serve_world(site, *, late: list | None = None) -> None:
    """Five outlets carry the event (the wire also the background news); `late` carries what a test adds later."""
    for i, name in enumerate(OUTLETS):
        title, summary = EVENT[i]
        items = [(f"event-{i}", title, summary, T0 + timedelta(minutes=20 * i))]
        if name == "wire":
            items += [(f"bg-{k}", t, s, T0 - timedelta(hours=3)) for k, (t, s) in enumerate(BACKGROUND)]
        serve(site, name, items)
    serve(site, "late", late or [])


def stories_of(store) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for row in store.db.query("SELECT story_id, title FROM articles"):
        out.setdefault(row["story_id"], set()).add(row["title"])
    return out


def story_of(store, title: str) -> int:
    return store.db.execute("SELECT story_id FROM articles WHERE title = ?", [title]).fetchone()[0]


@pytest.fixture
def hook(site, monkeypatch):
    endpoint = Endpoint(site, "/services/T000/B000/STORY")
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", endpoint.url)
    return endpoint


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def channels(smtp_port: int) -> dict:
    return {
        "team": {"type": "slack", "mode": "immediate", "webhook_url_env": "TEST_SLACK_WEBHOOK"},
        "mail": {
            "type": "email",
            "mode": "digest",
            "schedule": "daily at 07:00",
            "urgent_immediately": False,
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from": "watcher <watcher@example.org>",
            "to": ["analyst@example.org"],
            "timeout": "5s",
        },
    }


async def test_five_versions_become_one_story_with_five_sources_and_one_alert(site, store, extractor, hook, smtp):
    serve_world(site)
    config = config_for(site, channels(smtp.port))
    await poll_all(config, store, extractor, now=T0 + timedelta(hours=2))

    event_story = story_of(store, EVENT[0][0])
    assert all(story_of(store, title) == event_story for title, _ in EVENT)
    row = store.db.execute("SELECT sources, articles, headline FROM stories WHERE id = ?", [event_story]).fetchone()
    assert row == (5, 5, EVENT[0][0])  # the earliest version names it
    assert story_of(store, "Troops patrol streets after riots in capital") != event_story

    dispatcher = Dispatcher(config, store)
    await dispatcher.run(T0 + timedelta(hours=2))
    assert len(hook.payloads) == 1  # one immediate alert for the five versions (and the riots story)
    assert len(smtp.messages) == 1  # the daily digest was due: the story once, with its five sources
    first_digest = smtp.messages[0].email.get_body(("plain",)).get_content()
    assert "5 sources" in first_digest and first_digest.count("Burkina Faso tells French troops") == 1
    text = json.dumps(hook.payloads[0])
    assert "5 sources" in text and text.count("Burkina Faso tells French troops") == 1

    # A sixth outlet carries the event later: it joins silently on Slack and shows in the next email digest.
    serve_world(
        site,
        late=[
            (
                "event-late",
                "Burkina Faso junta gives French troops one month to leave",
                EVENT[4][1],
                T0 + timedelta(hours=3),
            )
        ],
    )
    await poll_all(config, store, extractor, now=T0 + timedelta(hours=4), names=["late"])
    assert story_of(store, "Burkina Faso junta gives French troops one month to leave") == event_story
    await dispatcher.run(T0 + timedelta(hours=4))
    assert len(hook.payloads) == 1
    joined = store.db.execute(
        "SELECT d.status, d.last_error FROM deliveries d JOIN articles a ON a.id = d.article_id"
        " WHERE d.channel = 'team' AND a.title LIKE 'Burkina Faso junta%'"
    ).fetchone()
    assert joined == ("skipped", "joined a story already alerted on this channel")
    report = await dispatcher.send_digest_now("mail", T0 + timedelta(hours=5))
    assert report.ok and len(smtp.messages) == 2
    mail = smtp.messages[1].email
    plain = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "6 sources" in plain and "also reported by" in plain and "late: Burkina Faso junta" in plain
    assert plain.count("* Burkina Faso tells French troops to leave within a month") == 1
    assert "6 sources" in html and "also reported by" in html


async def test_follow_up_and_same_topic_neighbour_are_stories_of_their_own(site, store, extractor):
    serve_world(site, late=[])
    config = config_for(site, {"inbox": {"type": "console", "mode": "immediate"}})
    await poll_all(config, store, extractor, now=T0 + timedelta(hours=2))
    event_story = story_of(store, EVENT[0][0])
    serve_world(
        site,
        late=[
            ("follow", *FOLLOW_UP, T0 + timedelta(hours=60)),
            ("germany", *NEIGHBOUR, T0 + timedelta(hours=61)),
        ],
    )
    await poll_all(config, store, extractor, now=T0 + timedelta(hours=62), names=["late"])
    assert story_of(store, FOLLOW_UP[0]) not in (None, event_story)
    assert story_of(store, NEIGHBOUR[0]) not in (None, event_story, story_of(store, FOLLOW_UP[0]))


async def test_merge_and_split_by_hand_survive_later_articles_and_show_in_the_cli_and_view(
    site, store, extractor, tmp_path
):
    serve_world(site)
    config = config_for(site, {"inbox": {"type": "console", "mode": "immediate"}})
    await poll_all(config, store, extractor, now=T0 + timedelta(hours=2))
    event_story = story_of(store, EVENT[0][0])
    riots = story_of(store, "Troops patrol streets after riots in capital")
    odd_one = store.db.execute("SELECT id FROM articles WHERE title = ?", [EVENT[4][0]]).fetchone()[0]

    runner = CliRunner()
    args = ["--config", str(tmp_path / "none.toml"), "--db", store.target]
    result = runner.invoke(main, [*args, "stories", "split", str(odd_one)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    split_story = story_of(store, EVENT[4][0])
    assert split_story != event_story
    result = runner.invoke(main, [*args, "stories", "merge", str(event_story), str(riots)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert story_of(store, "Troops patrol streets after riots in capital") == event_story

    # A later version of the event joins the event's story; the split article and the merge stay as they were.
    serve_world(
        site,
        late=[
            (
                "event-late",
                "Burkina Faso junta gives French troops one month to leave",
                EVENT[1][1],
                T0 + timedelta(hours=3),
            )
        ],
    )
    await poll_all(config, store, extractor, now=T0 + timedelta(hours=4), names=["late"])
    assert story_of(store, "Burkina Faso junta gives French troops one month to leave") == event_story
    assert story_of(store, EVENT[4][0]) == split_story
    assert story_of(store, "Troops patrol streets after riots in capital") == event_story

    view = store.db.execute(
        "SELECT topic, headline, sources FROM stories_by_topic WHERE story_id = ?", [event_story]
    ).fetchone()
    # Sources are feeds: four outlets' versions, the riots report merged in (the wire's, already counted), the late
    # one. The headline is the earliest article's title: the riots report, published first.
    assert view == ("troops", "Troops patrol streets after riots in capital", 5)
    result = runner.invoke(main, [*args, "stories", "--topic", "troops", "--since", "100000d", "--json"])
    assert result.exit_code == 0, result.output
    listed = {row["id"]: row for row in map(json.loads, result.output.splitlines())}
    assert listed[event_story]["sources"] == 5 and listed[split_story]["sources"] == 1
    assert {r["feed"] for r in listed[event_story]["reports"]} == {"wire", "daily", "herald", "afrique", "late"}
    table = runner.invoke(main, [*args, "stories", "--since", "100000d"]).output
    assert "Troops patrol streets after riots in capital" in table and "headline" in table


def test_decision_is_pure_and_respects_the_window():
    now = T0
    a = StoryText.of(*EVENT[0], T0)
    b = StoryText.of(*EVENT[1], T0 - timedelta(hours=100))
    from watcher.stories import StoryCandidate

    df = {"burkina": 3, "faso": 3, "french": 40, "troop": 60}
    far = decide_story(a, [StoryCandidate(1, 7, b)], df, 10_000, now, StorySettings())
    assert far.story_id is None  # outside the 72 h window
    near = StoryText.of(*EVENT[1], T0 - timedelta(hours=1))
    close = decide_story(a, [StoryCandidate(1, 7, near)], df, 10_000, now, StorySettings())
    assert close.story_id == 7 and close.article_id == 1
    hostile = StoryText.of("x" * 10_000_000, "y " * 5_000_000)
    assert len(hostile.terms) <= 61


def test_the_words_terms_are_cached_within_a_bound_whatever_the_text():
    from watcher import stories

    cached = StoryText.of("Russia's drones launched", "Troops were deployed to Kursk.")
    assert cached == StoryText.of("Russia's drones launched", "Troops were deployed to Kursk.")
    assert cached.title_terms == {"russia", "drone", "launch"} and {"troop", "deploy", "kursk"} <= cached.terms
    assert stories._TERMS["launched"] == "launch" and stories._TERMS["were"] == ""  # a stopword: no term
    # A stream of new words (a hostile feed's) never keeps more than the bound, and no long word at all.
    long_word = "z" * (stories._TERM_WORD_CHARS + 1)
    for start in range(0, stories._TERMS_KEPT + 5_000, 90):
        StoryText.of(long_word, " ".join(f"w{n}" for n in range(start, start + 90)))
        assert len(stories._TERMS) <= stories._TERMS_KEPT
    assert long_word not in stories._TERMS
    assert StoryText.of(long_word, "").title_terms == {long_word}


def test_plan_batches_sends_a_story_once_per_channel():
    from watcher.alerts.outbox import plan_batches
    from watcher.config import ChannelConfig
    from watcher.models import Delivery

    fresh = Delivery(1, 10, "troops", "c", T0, story_id=5)
    later = Delivery(2, 11, "troops", "c", T0, story_id=5, story_alerted=True)
    immediate = plan_batches(
        ChannelConfig("c", "console", mode="immediate"),
        [fresh, later],
        urgent_topics=set(),
        slot=None,
        last_digest_at=None,
    )
    assert [(b.kind, [d.id for d in b.deliveries]) for b in immediate] == [("immediate", [1]), ("joined", [2])]
    # On a digest channel an urgent story goes at once the first time; its later sources wait for the digest.
    digest = plan_batches(
        ChannelConfig("c", "console", mode="digest"),
        [fresh, later],
        urgent_topics={"troops"},
        slot=T0,
        last_digest_at=None,
    )
    assert [(b.kind, [d.id for d in b.deliveries]) for b in digest] == [("immediate", [1]), ("digest", [2])]


def test_purging_unmatched_articles_recounts_their_stories(store):
    from watcher.config import FeedConfig
    from watcher.models import Article, Entry, FeedUpdate, Match

    store.sync_feeds(
        [FeedConfig("a", "https://a.example/f"), FeedConfig("b", "https://b.example/f")], timedelta(minutes=15), T0
    )
    for feed_id, (title, summary) in enumerate(EVENT[:2], start=1):
        url = f"https://n.example/{feed_id}"
        entry = Entry(f"https://f{feed_id}.example/f", f"e{feed_id}", url, url, title, summary=summary)
        matches = (Match("troops", 1.0, ("troops",), "[[troops]]"),) if feed_id == 1 else ()
        article = Article(url, title, summary, "feed-summary", entry, published_at=T0, matches=matches)
        update = FeedUpdate(entry.feed_url, T0, T0, "ok", seen_entry_ids=(entry.entry_id,), articles=(article,))
        store.apply_update(feed_id, update, {})
    story = story_of(store, EVENT[0][0])
    assert store.db.execute("SELECT sources, articles FROM stories WHERE id = ?", [story]).fetchone() == (2, 2)
    assert store.purge_unmatched(T0 + timedelta(days=4)) == 1
    assert store.db.execute("SELECT sources, articles FROM stories WHERE id = ?", [story]).fetchone() == (1, 1)
    assert store.db.execute("SELECT count(*) FROM story_keys").fetchone()[0] == 16  # the purged article's keys went


async def test_a_zero_window_makes_every_article_its_own_story(site, store, extractor):
    serve_world(site)
    config = config_for(site, {"inbox": {"type": "console", "mode": "immediate"}})
    config = config_from_dict(
        {
            "fetch": {"allow_networks": ["127.0.0.0/8"]},
            "extract": {"enabled": False},
            "stories": {"window": "0s"},
            "feeds": [{"name": f.name, "url": f.url} for f in config.feeds],
            "topics": {"troops": {"rule": "troop* OR soldier* OR forces"}},
        },
        "test-config.toml",
    )
    await poll_all(config, store, extractor, now=T0 + timedelta(hours=2))
    assert len({story_of(store, title) for title, _ in EVENT}) == 5


def test_term_counts_are_batched_in_memory_seen_by_the_next_article_and_written_on_close(tmp_path, monkeypatch):
    from watcher.config import FeedConfig
    from watcher.models import Article, Entry, FeedUpdate
    from watcher.store import Store
    from watcher.store import stories as store_stories

    monkeypatch.setattr(store_stories, "TERM_COUNTS_EVERY", 3)
    path = tmp_path / "w.db"
    store = Store.open(path)
    store.sync_feeds([FeedConfig("a", "https://a.example/f")], timedelta(minutes=15), T0)

    def write(n: int) -> None:
        url = f"https://n.example/{n}"
        entry = Entry("https://a.example/f", f"e{n}", url, url, f"Kramatorsk shelling report {n}", summary="")
        article = Article(url, entry.title, "", "feed-summary", entry, published_at=T0)
        store.apply_update(
            1, FeedUpdate(entry.feed_url, T0, T0, "ok", seen_entry_ids=(entry.entry_id,), articles=(article,)), {}
        )

    def counted() -> dict[str, int]:
        return dict(store.db.execute("SELECT term, df FROM story_terms WHERE term IN ('', 'kramatorsk')").fetchall())

    write(1)
    write(2)
    assert counted() == {}  # two articles: still in memory
    seen: list[dict[str, int]] = []
    decide = store_stories.decide_story
    monkeypatch.setattr(
        store_stories,
        "decide_story",
        lambda text, cands, df, docs, *a: seen.append(dict(df, **{"": docs})) or decide(text, cands, df, docs, *a),
    )
    write(3)
    assert seen[-1]["kramatorsk"] == 2 and seen[-1][""] == 2  # the third article saw the first two's counts
    assert counted() == {"": 3, "kramatorsk": 3}  # the third made a batch: written in its transaction
    write(4)
    assert counted() == {"": 3, "kramatorsk": 3}
    store.close()
    reopened = Store.open(path)
    try:
        assert dict(
            reopened.db.execute("SELECT term, df FROM story_terms WHERE term IN ('', 'kramatorsk')").fetchall()
        ) == {
            "": 4,
            "kramatorsk": 4,
        }  # closing wrote the rest
    finally:
        reopened.close()


def test_a_busy_window_scores_the_articles_sharing_most_keys_and_finds_the_report(store):
    """A busy window: more stored articles than the search scores (CANDIDATES), all newer, share four keys with a
    new article; the one report of its event shares five. The cut keeps those sharing most keys, so the report is
    scored and the new article joins its story, not the crowd's."""
    from watcher.config import FeedConfig
    from watcher.models import Article, Entry, FeedUpdate
    from watcher.stories import CANDIDATES

    store.sync_feeds([FeedConfig("a", "https://a.example/f")], timedelta(minutes=15), T0)

    def write(n: int, title: str, at: datetime) -> int:
        url = f"https://n.example/{n}"
        entry = Entry("https://a.example/f", f"e{n}", url, url, title, summary="")
        article = Article(url, title, "", "feed-summary", entry, published_at=at)
        update = FeedUpdate(entry.feed_url, at, at, "ok", seen_entry_ids=(entry.entry_id,), articles=(article,))
        store.apply_update(1, update, {})
        return store.db.execute("SELECT story_id FROM articles WHERE url = ?", (url,)).fetchone()[0]

    report = write(0, "Writer Amelina dies of wounds from Kramatorsk pizzeria strike", T0)
    crowd = {
        write(n, f"Ukraine war: Russia missile bulletin {n}", T0 + timedelta(minutes=n))
        for n in range(1, CANDIDATES + 11)
    }
    assert report not in crowd
    later = T0 + timedelta(hours=2)
    joined = write(99, "Ukraine war: Russia missile strike on Kramatorsk pizzeria kills writer Amelina", later)
    assert joined == report
