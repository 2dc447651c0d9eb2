"""Stories and teaching on the analyst's page, in-process: the story list with its sources, a story's articles,
split and merge; "relevant" / "not relevant" on matches and stories, and the queue of the models' calls. Each
click's label is read back from the labels table, and what the page said it changed is checked in the store."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from tests.helpers.web_support import NOW, seed, write_config
from tests.test_web import Page, titles
from watcher.models import Article, Entry, FeedUpdate, ModelCall
from watcher.runtime import Runtime
from watcher.store import Store
from watcher.web import Access, ConfigFile, WebContext, build_app

# The drone plant again, from a second outlet an hour later: the same story with two sources.
FOLLOW_UP = [
    ("asia", "drone-plant-2", "North Korea and Russia to co-produce attack drones, Seoul says",
     "North Korea and Russia agreed to build a factory that will produce attack drones, Seoul officials said.", 1),
]  # fmt: skip


def stored_call(store: Store, config, slug: str, title: str, body: str, call: ModelCall, hours: float = 4) -> int:
    """An article the pipeline stored with a model's call (held back or possible) instead of a match."""
    url = f"https://news.example/{slug}"
    entry = Entry("https://world.example/feed", slug, url, url, title)
    when = NOW - timedelta(hours=hours)
    article = Article(url, title, body, "page", entry, published_at=when, model_calls=(call,))
    feed_id = store.db.conn.execute("SELECT id FROM feeds WHERE name = 'world'").fetchone()[0]
    update = FeedUpdate(entry.feed_url, when, when, "ok", seen_entry_ids=(slug,), articles=(article,))
    store.apply_update(feed_id, update, config.routes(), config.possible_routes())
    return store.db.conn.execute("SELECT id FROM articles WHERE url = ?", (url,)).fetchone()[0]


@pytest.fixture
async def web(tmp_path, store):
    """The page over each backend's store (conftest.py)."""
    config = write_config(tmp_path)
    seed(store, config)
    seed(store, config, stories=FOLLOW_UP)
    async with Runtime(config) as runtime:
        context = WebContext(
            store, ConfigFile(config), runtime, Access(loopback=True, password=None), clock=lambda: NOW
        )
        transport = httpx.ASGITransport(app=build_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8710") as client:
            yield Page(client, context)


def story_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="item story" data-story="(\d+)"', html)]


def labels(store: Store) -> list[tuple[int, str, str, str]]:
    return [
        tuple(r)
        for r in store.db.conn.execute("SELECT article_id, topic, label, source FROM labels ORDER BY article_id, topic")
    ]


def drone_story(store: Store) -> int:
    return store.db.conn.execute(
        "SELECT story_id FROM articles WHERE url = 'https://news.example/drone-plant'"
    ).fetchone()[0]


# --- stories --------------------------------------------------------------------------------------------------


async def test_stories_newest_first_with_their_sources(web):
    r = await web.get("/stories")
    assert r.status_code == 200
    story = drone_story(web.context.store)
    assert story_ids(r.text)[0] == story  # its last report is the newest
    item = r.text[r.text.index(f'data-story="{story}"') :].split("</li>")[0]
    assert "2 sources" in item and ">world</a>" in item and ">asia</a>" in item
    assert "<mark>drones</mark>" in item
    r = await web.get("/stories?topic=troop_deployment")
    assert len(story_ids(r.text)) == 1 and "Pyongyang" in r.text
    r = await web.get("/stories?feed=asia&since=24h")
    assert story_ids(r.text) == [story]


async def test_a_story_opens_to_its_articles_and_can_be_split_and_merged(web):
    store = web.context.store
    story = drone_story(store)
    r = await web.get(f"/story/{story}")
    assert r.status_code == 200 and r.text.count('class="title" href="/article/') == 2
    first = re.search(r'class="title" href="(/article/\d+)"', r.text).group(1)
    assert f'<a href="/story/{story}" id="story-link">' in (await web.get(first)).text
    follow_up = store.db.conn.execute("SELECT id FROM articles WHERE url LIKE '%drone-plant-2'").fetchone()[0]
    r = await web.post(f"/story/{story}/split", {"article_id": str(follow_up)})
    assert r.status_code == 303
    new_story = int(r.headers["location"].rsplit("/", 1)[1])
    assert new_story != story
    assert "is now a story of its own" in (await web.get(r.headers["location"])).text
    r = await web.post(f"/story/{story}/merge", {"other": str(new_story)})
    assert "merged into" in (await web.get(f"/story/{story}")).text
    assert drone_story(store) == story
    assert store.db.conn.execute("SELECT story_id FROM articles WHERE id = ?", (follow_up,)).fetchone()[0] == story


async def test_a_story_marked_not_relevant_leaves_the_topic_and_its_alerts_are_skipped(web):
    store = web.context.store
    story = drone_story(store)
    pending = store.db.conn.execute(
        "SELECT count(*) FROM deliveries d JOIN articles a ON a.id = d.article_id"
        " WHERE a.story_id = ? AND d.topic = 'drone_cooperation' AND d.status = 'pending'",
        (story,),
    ).fetchone()[0]
    assert pending == 2
    await web.get("/stories?topic=drone_cooperation")
    data = {
        "story_id": str(story),
        "topic": "drone_cooperation",
        "verdict": "no",
        "back": "/stories?topic=drone_cooperation",
    }
    r = await web.post("/teach/story", data)
    assert r.status_code == 303 and r.headers["location"] == "/stories?topic=drone_cooperation"
    page = await web.get(r.headers["location"])
    assert story not in story_ids(page.text)
    assert "not relevant for drone_cooperation (2 article(s))" in page.text and "2 alert(s) not yet sent" in page.text
    assert [(t, lab, src) for _, t, lab, src in labels(store)] == [("drone_cooperation", "no", "web")] * 2
    statuses = store.db.conn.execute(
        "SELECT DISTINCT d.status FROM deliveries d JOIN articles a ON a.id = d.article_id"
        " WHERE a.story_id = ? AND d.topic = 'drone_cooperation'",
        (story,),
    ).fetchall()
    assert statuses == [("skipped",)]


# --- teaching on matches --------------------------------------------------------------------------------------


async def test_a_match_marked_not_relevant_leaves_the_list_and_relevant_stays_labelled(web):
    store = web.context.store
    r = await web.get("/matches?topic=troop_deployment")
    assert titles(r.text) == ["Pyongyang sends thousands more troops to Russia"]
    article = int(re.search(r'data-article="(\d+)"', r.text).group(1))
    back = "/matches?topic=troop_deployment"
    r = await web.post(
        "/teach/match", {"article_id": str(article), "topic": "troop_deployment", "verdict": "yes", "back": back}
    )
    page = await web.get(r.headers["location"])
    assert "Labelled “Pyongyang sends thousands more troops to Russia” relevant for troop_deployment" in page.text
    assert "troop_deployment now has 1 label(s) (1 relevant, 0 not)" in page.text
    assert "labelled relevant" in page.text and titles(page.text) == ["Pyongyang sends thousands more troops to Russia"]
    r = await web.post(
        "/teach/match", {"article_id": str(article), "topic": "troop_deployment", "verdict": "no", "back": back}
    )
    page = await web.get(r.headers["location"])
    assert titles(page.text) == []
    assert "it leaves the troop_deployment lists" in page.text
    assert labels(store) == [(article, "troop_deployment", "no", "web")]  # the second label replaced the first


async def test_a_label_for_an_unknown_topic_or_article_is_refused(web):
    await web.get("/feeds")
    r = await web.post("/teach/match", {"article_id": "1", "topic": "nope", "verdict": "no"})
    assert r.status_code == 400
    r = await web.post("/teach/match", {"article_id": "9999", "topic": "troop_deployment", "verdict": "no"})
    assert r.status_code == 404
    r = await web.post("/teach/match", {"article_id": "1", "topic": "troop_deployment", "verdict": "maybe"})
    assert r.status_code == 400
    assert labels(web.context.store) == []


# --- the queue of the models' calls ---------------------------------------------------------------------------


async def test_possible_matches_are_confirmed_and_held_back_ones_restored(web):
    store, config = web.context.store, web.context.config()
    possible = stored_call(
        store, config, "deployment-2", "Marines arrive in Darwin for rotation", "A rotation of marines arrived.",
        ModelCall("troop_deployment", "possible", 0.94, 0.0, ("word marines",), "A rotation of marines arrived.",
                  (("w:marine", 1.7),)),
    )  # fmt: skip
    held = stored_call(
        store, config, "troop-parade", "Troops sent to rehearse for the parade", "Troops were sent to rehearse.",
        ModelCall("troop_deployment", "held", 0.04, 1.0, ("troops", "sent"), "[[Troops]] were [[sent]] to rehearse.",
                  (("w:parade", -2.1),)),
    )  # fmt: skip
    dismissed = stored_call(
        store, config, "toy-drones", "Toy drones sell out", "Shops sold out of toy drones.",
        ModelCall("drone_cooperation", "possible", 0.91, 0.0, ("word drones",), "Shops sold out.", (("w:drone", 1.1),)),
    )  # fmt: skip
    r = await web.get(f"/article/{possible}")  # where a digest's link leads: the call can be confirmed there too
    assert 'id="call-troop_deployment"' in r.text and "A possible match</strong> (94% on topic" in r.text
    r = await web.get("/teach")
    assert "Marines arrive in Darwin" in r.text and "word marine (+1.70)" in r.text and "94% on topic" in r.text
    assert "Troops sent to rehearse" in r.text[r.text.index('id="held"') :]

    r = await web.post("/teach/call", {"article_id": str(possible), "topic": "troop_deployment", "verdict": "yes"})
    page = await web.get(r.headers["location"])
    assert "Confirmed “Marines arrive in Darwin for rotation” as a match of troop_deployment" in page.text
    assert "Marines arrive" not in page.text.split('role="status"')[1].split("</p>", 1)[1]
    assert "Marines arrive in Darwin for rotation" in titles((await web.get("/matches?topic=troop_deployment")).text)

    before = store.db.conn.execute("SELECT count(*) FROM deliveries WHERE article_id = ?", (held,)).fetchone()[0]
    r = await web.post("/teach/call", {"article_id": str(held), "topic": "troop_deployment", "verdict": "yes"})
    page = await web.get(r.headers["location"])
    assert (
        "Restored “Troops sent to rehearse for the parade” as a match of troop_deployment; 1 alert(s) queued"
        in page.text
    )
    assert (
        store.db.conn.execute("SELECT count(*) FROM deliveries WHERE article_id = ?", (held,)).fetchone()[0]
        == before + 1
    )

    r = await web.post("/teach/call", {"article_id": str(dismissed), "topic": "drone_cooperation", "verdict": "no"})
    page = await web.get(r.headers["location"])
    assert "Dismissed “Toy drones sell out”" in page.text and 'data-article="' not in page.text.split("<h2>", 1)[1]
    assert "Toy drones sell out" not in titles((await web.get("/matches")).text)
    assert {(a, t, lab) for a, t, lab, _ in labels(store)} == {
        (possible, "troop_deployment", "yes"),
        (held, "troop_deployment", "yes"),
        (dismissed, "drone_cooperation", "no"),
    }


async def test_the_article_page_shows_the_model_s_strongest_features(web):
    store = web.context.store
    store.save_model(
        "drone_cooperation",
        trained_at=NOW,
        labels=12,
        positives=5,
        labels_version="x",
        bias=-1.0,
        weights={"w:dron": 2.0, "w:produc": 0.5, "w:korea": -0.7},
    )
    article = store.db.conn.execute(
        "SELECT id FROM articles WHERE url = 'https://news.example/drone-plant'"
    ).fetchone()[0]
    r = await web.get(f"/article/{article}")
    section = r.text[r.text.index('data-topic="drone_cooperation"') :].split("</section>")[0]
    assert "The topic's model (trained on 12 labels)" in section
    assert "For: word dron (+2.00), word produc (+0.50)" in section and "Against: word korea (-0.70)" in section
    assert 'action="/teach/match"' in section


@pytest.mark.parametrize(
    "query, expected",
    [("q=Kursk", ["troops"]), ("q=factory&topic=drone_cooperation", ["drone"]), ("q=%22Kursk", ["troops"])],
)
async def test_stories_are_searched_through_their_articles_text(web, query, expected):
    r = await web.get("/stories?" + query)
    assert r.status_code == 200
    headlines = re.findall(r'class="title" href="/story/\d+">([^<]+)</a>', r.text)
    assert len(headlines) == len(expected) and all(w in h.lower() for w, h in zip(expected, headlines))
