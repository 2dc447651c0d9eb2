"""Topics that learn from labels: training, the decision and its explanation, labels in the store and on the
command line, retraining on change, and held-back and possible matches through a real poll to digests and views.

Training sets are written here: short invented news items, a few of each kind.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from tests.helpers.news import articles, make_config, poll_all, serve_site
from watcher.alerts.digest import POSSIBLE_DESCRIPTION, RenderSettings, build_message, item_from_delivery
from watcher.cli import main
from watcher.learn import TopicModel, judge_article
from watcher.learn.evaluate import combined, evaluate_topic, figures
from watcher.learn.model import describe_feature
from watcher.learn.retrain import models_in_use, refresh_models, retrain_changed, stale_topics
from watcher.learn.train import Example, cross_validated, train
from watcher.models import Article, Entry, FeedUpdate
from watcher.rules import TopicConfig, compile_topic, match_article
from watcher.store import NewLabel

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RULE = "troop* AND (send* OR sent OR deploy*)"
TOPIC = compile_topic(TopicConfig("troops", RULE), {})

# Deployments (yes) and what a loose rule also finds (no): sport, rehabilitation, vehicles, prisoner swaps.
YES = [
    ("Pyongyang sends 12,000 troops to Russia", "North Korea sent troops to the Kursk front, officials said."),
    ("US deploys 2,000 more troops to the Middle East", "The Pentagon is deploying troops to the region."),
    ("France sends troops to Estonia", "French troops will be deployed to the NATO battlegroup in Estonia."),
    ("NATO to deploy extra troops to Kosovo", "Peacekeeping troops are being sent to Kosovo after clashes."),
    ("Indonesia readies 8,000 troops for Gaza force", "Troops would be deployed with the stabilisation force."),
    ("UK sends troops to Poland border", "British troops deployed to help Poland at the Belarus border."),
]
NO = [
    ("Club sends striker on loan", "The football club sent its striker on loan; fans and troops of supporters."),
    ("Rehab centre opens for wounded troops", "Wounded troops are sent to a new rehabilitation centre for care."),
    ("Stryker vehicles sent to Ukraine", "Armoured vehicles are being sent; no troops are deployed, officials said."),
    ("Prisoner exchange returns troops", "Captured troops were sent home in a prisoner exchange, the ministry said."),
    ("Missile launch rattles region", "Troops watched as a missile was sent over the sea in a launch test."),
    ("Football cup final: fans send troops of buses", "Supporters sent troops of buses to the football final."),
]


def examples() -> list[Example]:
    return [Example(t, b, True) for t, b in YES] + [Example(t, b, False) for t, b in NO]


# --- the model and its decision ---------------------------------------------------------------------------


def test_a_topic_without_a_model_matches_exactly_as_its_rule():
    for title, body in YES + NO:
        assert judge_article([TOPIC], {}, title, body) == (match_article([TOPIC], title, body), ())


def test_training_learns_what_the_labels_say_and_scores_new_items_by_it():
    model = train(TOPIC, examples(), now=NOW)
    assert model.labels == 12 and model.positives == 6 and model.weights
    assert all(isinstance(w, float) for w in model.weights.values())  # plain numbers, nothing pickled
    deployment = TOPIC_MODEL_PROB(model, "Germany sends troops to Lithuania", "German troops deployed to Lithuania.")
    football = TOPIC_MODEL_PROB(model, "Club sends striker to rival", "The football club sent fans and troops.")
    assert deployment > football


def TOPIC_MODEL_PROB(model: TopicModel, title: str, body: str) -> float:
    from watcher.learn.model import score_topic
    from watcher.rules import ArticleText

    art = ArticleText(title, body)
    match = next(iter(match_article([TOPIC], title, body)), None)
    return score_topic(model, TOPIC, art, match).probability


def test_a_model_needs_yes_and_no_labels():
    from watcher.errors import LearnError

    with pytest.raises(LearnError, match="yes and"):
        train(TOPIC, [Example(t, b, True) for t, b in YES])


def hand_model(weights: dict[str, float], bias: float = 0.0) -> TopicModel:
    return TopicModel("troops", bias, weights, labels=10, positives=5, hold_below=0.1, possible_above=0.9)


def test_a_match_the_model_is_sure_is_wrong_is_held_back_with_its_terms_and_the_models_reasons():
    model = hand_model({"w:football": -300.0, "w:club": -200.0, "w:troop": 1.0})
    matches, calls = judge_article([TOPIC], {"troops": model}, *NO[0])
    assert matches == ()
    (call,) = calls
    assert call.verdict == "held" and call.probability < 0.1
    assert call.terms  # the rule's own terms, as found
    assert [name for name, _ in call.features][:2] == ["w:football", "w:club"]  # strongest against, first
    assert "[[" in call.snippet


def test_a_miss_the_model_is_sure_of_is_a_possible_match_explained_in_words():
    model = hand_model({"w:contingent": 300.0, "t:contingent": 100.0})
    title, body = "Korean contingent arrives in Lebanon", "A contingent of peacekeepers arrived at the UN base."
    assert match_article([TOPIC], title, body) == ()
    matches, calls = judge_article([TOPIC], {"troops": model}, title, body)
    assert matches == ()
    (call,) = calls
    assert call.verdict == "possible" and call.probability >= 0.9
    assert call.features[0][0] == "w:contingent"
    assert "word contingent" in call.terms
    assert call.snippet.startswith("A contingent")


def test_between_the_thresholds_the_rule_decides():
    model = hand_model({}, bias=0.0)  # probability 0.5 for everything
    for title, body in YES + NO:
        assert judge_article([TOPIC], {"troops": model}, title, body) == (match_article([TOPIC], title, body), ())


@pytest.mark.parametrize(
    ("name", "words"),
    [("w:troop", "word troop"), ("t:send", "title word send"), ("b:send_troop", "words send troop"),
     ("c: tro", 'letters " tro"'), ("rule:match", "the rule matched")],
)  # fmt: skip
def test_features_are_explained_in_words(name, words):
    assert describe_feature(name) == words


def test_evaluation_figures_and_cross_validation():
    f = figures([True, True, False, False], [True, False, True, False])
    assert (f.tp, f.fp, f.fn, f.tn) == (1, 1, 1, 1) and f.f1 == pytest.approx(0.5)
    assert combined(True, 0.05, 0.1, 0.9) is False and combined(False, 0.95, 0.1, 0.9) is True
    scored = cross_validated(TOPIC, examples(), folds=3)
    assert scored is not None and len(scored) == 12
    result = evaluate_topic(TOPIC, examples(), folds=3)
    assert result.rules.tp == 6 and result.rules.fp == 6  # the loose rule finds every one of them
    assert result.cross_validated is not None and result.with_model is None


# --- labels in the store, retraining on change ------------------------------------------------------------


def stored_article(store, url: str, title: str, body: str, feed_id: int = 1) -> int:
    entry = Entry("https://n.example/feed", url, url, url, title)
    update = FeedUpdate(
        entry.feed_url, NOW, NOW, "ok", seen_entry_ids=(url,), articles=(Article(url, title, body, "page", entry),)
    )
    store.apply_update(feed_id, update, {})
    return store.db.execute("SELECT id FROM articles WHERE url = ?", [url]).fetchone()[0]


def learn_config(tmp_path, **topic):
    from watcher.config import load_config

    settings = "".join(f"{k} = {json.dumps(v)}\n" for k, v in topic.items())
    path = tmp_path / "c.toml"
    path.write_text(
        f"""[watcher]\ndatabase = "w.db"\n[[feeds]]\nname = "n"\nurl = "https://n.example/feed"\n
[topics.troops]\nrule = '{RULE}'\n{settings}
[channels.out]\ntype = "console"\nmode = "immediate"\n[channels.files]\ntype = "file"\ndirectory = "d"\n""",
        encoding="utf-8",
    )
    return path, load_config(path)


def seed(store, items=None) -> None:
    labels = [
        NewLabel("troops", "yes" if yes else "no", f"import:{i}", t, b, "import")
        for i, (t, b, yes) in enumerate(items or [(t, b, True) for t, b in YES] + [(t, b, False) for t, b in NO])
    ]
    store.add_labels(labels, NOW)


def test_labels_are_retrained_when_they_change_and_only_then(tmp_path, store):
    _, config = learn_config(tmp_path)
    assert retrain_changed(config, store, lambda: NOW) == []  # no labels: no model, nothing to do
    seed(store)
    assert stale_topics(config, store) == ["troops"]
    (outcome,) = retrain_changed(config, store, lambda: NOW)
    assert outcome.status == "trained" and outcome.labels == 12
    assert stale_topics(config, store) == [] and retrain_changed(config, store, lambda: NOW) == []
    first = models_in_use(config, store)["troops"]

    store.add_labels(
        [NewLabel("troops", "yes", "import:new", "Spain sends troops", "troops sent to Latvia", "cli")], NOW
    )
    assert stale_topics(config, store) == ["troops"]
    retrain_changed(config, store, lambda: NOW)
    second = models_in_use(config, store)["troops"]
    assert second.labels == 13 and second.labels_version != first.labels_version

    # Relabelling the same item replaces the label (one row) and retrains.
    store.add_labels(
        [NewLabel("troops", "no", "import:new", "Spain sends troops", "troops sent to Latvia", "cli")], NOW
    )
    assert store.db.execute("SELECT label FROM labels WHERE item_key = 'import:new'").fetchall() == [("no",)]
    assert stale_topics(config, store) == ["troops"]


def test_too_few_labels_remove_the_model_and_the_rule_decides_again(tmp_path, store):
    _, config = learn_config(tmp_path)
    seed(store)
    retrain_changed(config, store, lambda: NOW)
    assert models_in_use(config, store)
    store.db.execute("DELETE FROM labels WHERE label = 'no'")
    (outcome,) = retrain_changed(config, store, lambda: NOW)
    assert outcome.status == "removed" and models_in_use(config, store) == {}


def test_the_daemon_refresh_swaps_models_only_when_they_changed(tmp_path, store):
    _, config = learn_config(tmp_path)
    assert refresh_models(config, store.open_another, lambda: NOW, {}) is None
    seed(store)
    models = refresh_models(config, store.open_another, lambda: NOW, {})  # trains in its own connection
    assert models is not None and set(models) == {"troops"}
    assert refresh_models(config, store.open_another, lambda: NOW, models) is None


def test_a_topic_that_does_not_learn_ignores_its_model(tmp_path, store):
    _, config = learn_config(tmp_path, learn=False)
    seed(store)
    assert retrain_changed(config, store, lambda: NOW) == [] and models_in_use(config, store) == {}


# --- the command line -------------------------------------------------------------------------------------


def cli(path, db, *args):
    return CliRunner().invoke(main, ["--config", str(path), "--db", str(db), *args], catch_exceptions=False)


def test_label_import_list_export_round_trip_and_train(tmp_path, store):
    path, _ = learn_config(tmp_path)
    lines = [
        {"uid": f"y{i}", "title": t, "text": b, "labels": {"troops": "yes", "other": "no"}}
        for i, (t, b) in enumerate(YES)
    ] + [{"uid": f"n{i}", "title": t, "text": b, "labels": {"troops": "no"}} for i, (t, b) in enumerate(NO)]
    lines.append({"uid": "m", "title": "Unclear", "text": "troops", "labels": {"troops": "maybe"}})
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")

    result = cli(path, store.target, "labels", "import", str(source), "--by", "ana")
    assert result.exit_code == 0, result.output
    assert "imported 12 labels from 13 items" in result.output
    assert "topic troops: model trained on 12 labels (6 yes)" in result.output
    assert "skipped 6 labels for 'other'" in result.stderr
    assert store.db.execute("SELECT count(*) FROM topic_models").fetchone()[0] == 1

    listed = cli(path, store.target, "labels", "list")
    assert "troops: 6 yes, 6 no; model trained" in listed.output and "ana" in listed.output

    out = tmp_path / "out.jsonl"
    cli(path, store.target, "labels", "export", "-o", str(out))
    exported = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    expected = {x["uid"]: (x["title"], x["text"], x["labels"]["troops"]) for x in lines if x["uid"] != "m"}
    assert {x["uid"]: (x["title"], x["text"], x["labels"]["troops"]) for x in exported} == expected

    # Importing the export again changes nothing: same items, same labels, no retraining needed.
    before = store.db.execute("SELECT topic, item_key, label, title, body FROM labels ORDER BY item_key").fetchall()
    again = cli(path, store.target, "labels", "import", str(out))
    assert (
        store.db.execute("SELECT topic, item_key, label, title, body FROM labels ORDER BY item_key").fetchall()
        == before
    )
    assert "imported 12 labels" in again.output


def test_label_a_stored_article_and_export_it_with_its_url(tmp_path, store):
    path, _ = learn_config(tmp_path)
    from watcher.config import FeedConfig

    store.sync_feeds([FeedConfig("n", "https://n.example/feed")], timedelta(minutes=15), NOW)
    article_id = stored_article(store, "https://n.example/a", *NO[0])
    seed(store)
    result = cli(path, store.target, "label", str(article_id), "--topic", "troops", "no", "--by", "ana")
    assert result.exit_code == 0, result.output
    assert f"labelled article {article_id}" in result.output and "model trained on 13 labels" in result.output
    row = store.db.execute(
        "SELECT article_id, label, source, labelled_by FROM labels WHERE item_key = ?", ["https://n.example/a"]
    ).fetchone()
    assert row == (article_id, "no", "cli", "ana")
    exported = [json.loads(x) for x in cli(path, store.target, "labels", "export").output.splitlines()]
    assert {
        "uid": "https://n.example/a",
        "url": "https://n.example/a",
        "title": NO[0][0],
        "text": NO[0][1],
        "labels": {"troops": "no"},
    } in exported

    bad = CliRunner().invoke(
        main, ["--config", str(path), "--db", str(store.target), "label", "999", "--topic", "troops", "yes"]
    )
    assert bad.exit_code == 2 and "no article with id 999" in bad.output
    unknown = CliRunner().invoke(
        main, ["--config", str(path), "--db", str(store.target), "label", str(article_id), "--topic", "nope", "yes"]
    )
    assert unknown.exit_code == 2 and "no topic 'nope'" in unknown.output


def test_topics_evaluate_prints_rules_stored_model_and_cross_validated(tmp_path, store):
    path, _ = learn_config(tmp_path)
    source = tmp_path / "in.jsonl"
    items = [
        {"uid": str(i), "title": t, "text": b, "labels": {"troops": "yes" if i < 6 else "no"}}
        for i, (t, b) in enumerate(YES + NO)
    ]
    source.write_text("\n".join(json.dumps(x) for x in items), encoding="utf-8")
    no_model = cli(path, store.target, "topics", "evaluate", str(source), "--folds", "3")
    assert no_model.exit_code == 0, no_model.output
    rows = [line.split() for line in no_model.output.splitlines()[1:]]
    assert rows[0][:4] == ["troops", "12", "(6", "yes)"] and rows[0][4:6] == ["rules", "alone"]
    assert rows[0][6:9] == ["6", "6", "0"]  # TP FP FN of the loose rule
    assert rows[1][-1] == "-"  # no stored model yet
    assert rows[2][4:8] == ["rules", "+", "model,", "3-fold"] and rows[2][-1] != "-"
    cli(path, store.target, "labels", "import", str(source))
    with_model = cli(path, store.target, "topics", "evaluate", str(source), "--folds", "3")
    assert with_model.output.splitlines()[2].split()[-1] != "-"


# --- through a real poll: held back, possible, digests, views, status ------------------------------------


async def test_held_back_and_possible_matches_flow_to_views_digest_and_status(site, store, extractor, tmp_path):
    serve_site(site)
    config = make_config(site, feeds={"world": "/world.rss"}, channels={
        "inbox": {"type": "console", "mode": "immediate"},
        "daily": {"type": "file", "directory": str(tmp_path / "d"), "mode": "digest"},
    }, watcher={"alert_on_first_poll": True})  # fmt: skip
    # A model by hand (weights are large: text features are scaled to unit length), so the test does not depend on what a learner makes of a few items: Kursk is held back,
    # snow is a possible match, everything else sits at 0.5 and the rule decides.
    store.save_model("troop_deployment", trained_at=NOW, labels=4, positives=2, labels_version="by hand",
                     bias=0.0, weights={"w:kursk": -900.0, "w:snow": 900.0})  # fmt: skip
    await poll_all(config, store, extractor)

    held = list(store.db.query("SELECT * FROM held_back_matches"))
    assert [r["title"] for r in held] == ["Pyongyang sends thousands more troops to Russia's Kursk front"]
    assert json.loads(held[0]["terms"]) and json.loads(held[0]["features"])[0][0] == "w:kursk"
    possible = list(store.db.query("SELECT * FROM possible_matches"))
    assert [(r["topic"], r["title"]) for r in possible] == [
        ("troop_deployment", "Seoul braces for the first snow of the winter")
    ]
    assert "word snow" in json.loads(possible[0]["terms"])

    # Held back: no match row, no alert. Possible: the digest channel only, never the immediate one.
    topics_of = {r["title"]: r["topics"] for r in store.db.query("SELECT title, topics FROM matched_articles")}
    assert "Pyongyang sends thousands more troops to Russia's Kursk front" not in topics_of
    deliveries = {(r["title"], r["channel"]) for r in store.db.query("SELECT title, channel FROM delivery_log")}
    assert not any("Kursk" in title for title, _ in deliveries)
    assert ("Seoul braces for the first snow of the winter", "daily") in deliveries
    assert ("Seoul braces for the first snow of the winter", "inbox") not in deliveries
    assert any(channel == "inbox" for _, channel in deliveries)  # the other matches alert as before

    pending = store.pending_deliveries("daily", datetime.now(UTC) + timedelta(days=1))
    message = build_message(
        "digest", "daily", [item_from_delivery(d) for d in pending], NOW, RenderSettings.from_config(config)
    )
    assert message.groups[-1].possible and [i.title for i in message.groups[-1].items] == [
        "Seoul braces for the first snow of the winter"
    ]
    assert all(not g.possible for g in message.groups[:-1]) and len(message.groups) >= 2
    assert POSSIBLE_DESCRIPTION in message.text and "word snow" in message.text

    # Kept like matches: not purged with unmatched articles.
    store.purge_unmatched(datetime.now(UTC) + timedelta(days=30))
    assert len(list(store.db.query("SELECT * FROM held_back_matches"))) == 1

    status = CliRunner().invoke(main, ["--config", str(tmp_path / "none.toml"), "--db", str(store.target), "status"])
    assert "1 matches held back, 1 possible matches" in status.output
    assert "word kursk" in status.output and "word snow" in status.output


async def test_a_poll_without_models_stores_what_it_stored_before(site, store, extractor):
    serve_site(site)
    config = make_config(site)
    await poll_all(config, store, extractor)
    assert store.db.execute("SELECT count(*) FROM model_calls").fetchone()[0] == 0
    assert len(articles(store)) == 6


def test_a_possible_match_of_an_urgent_topic_waits_for_the_digest():
    from watcher.alerts.outbox import plan_batches
    from watcher.config import ChannelConfig
    from watcher.models import Delivery

    channel = ChannelConfig("daily", "file", mode="digest", urgent_immediately=True)
    match = Delivery(1, 1, "troops", "daily", NOW)
    possible = Delivery(2, 2, "troops", "daily", NOW, possible=True)
    waiting = plan_batches(channel, [match, possible], urgent_topics={"troops"}, slot=None, last_digest_at=None)
    assert [(b.kind, [d.id for d in b.deliveries]) for b in waiting] == [("immediate", [1])]
    at_slot = plan_batches(channel, [possible], urgent_topics={"troops"}, slot=NOW, last_digest_at=None)
    assert [(b.kind, [d.id for d in b.deliveries]) for b in at_slot] == [("digest", [2])]


@pytest.mark.parametrize(("key", "value"), [("hold_below", 2), ("possible_above", -0.5), ("learn", "yes")])
def test_topic_learning_settings_are_checked(tmp_path, key, value):
    from watcher.errors import ConfigError

    with pytest.raises(ConfigError, match=f"topics.troops.{key}"):
        learn_config(tmp_path, **{key: value})


def test_topic_learning_settings_have_documented_defaults(tmp_path):
    _, config = learn_config(tmp_path, hold_below=0.2)
    (topic,) = config.topics
    assert (topic.learn, topic.hold_below, topic.possible_above) == (True, 0.2, 0.9)


def test_a_hostile_article_costs_the_model_no_more_than_its_lead():
    from watcher.learn.features import LEAD_WINDOW, MAX_FORM_CHARS, text_features
    from watcher.rules import ArticleText

    huge = "troops sent " + "x" * 100_000 + " " + " ".join(f"w{i}" for i in range(200_000))
    names = text_features(ArticleText("Troops sent", huge))
    assert all(len(n) <= MAX_FORM_CHARS + 3 for n in names)  # "w:" / "c:" prefixes; no 100,000-letter feature
    assert sum(1 for n in names if n.startswith("w:")) <= LEAD_WINDOW + 2


async def test_the_daemon_retrains_in_a_thread_and_swaps_the_models_in(tmp_path, store):
    import asyncio

    from watcher.daemon import Daemon
    from watcher.pipeline import Pipeline

    _, config = learn_config(tmp_path)
    daemon = Daemon(config, store)
    pipeline = Pipeline(config=config, store=store, runtime=None, topics=(), rules=None, routes={}, feed_urls={})  # type: ignore[arg-type]
    daemon.pipeline = pipeline
    await daemon.learn()
    assert pipeline.models == {}  # no labels: the rules alone, as before

    seed(store)
    task = asyncio.create_task(daemon.learn())
    await asyncio.sleep(0)  # the job has started and handed the training to a thread...
    assert not task.done()  # ...so the loop (polls, alerts, /healthz) goes on meanwhile
    await task
    assert set(pipeline.models) == {"troops"} and pipeline.models["troops"].labels == 12
    assert store.model_versions()["troops"] == store.labels_versions()["troops"]


def test_rematch_holds_back_what_the_model_holds_back(tmp_path, store):
    from watcher.config import FeedConfig

    path, _ = learn_config(tmp_path)
    store.sync_feeds([FeedConfig("n", "https://n.example/feed")], timedelta(minutes=15), NOW)
    football = stored_article(store, "https://n.example/football", *NO[0])
    deployment = stored_article(store, "https://n.example/deploy", *YES[0])
    store.save_model("troops", trained_at=NOW, labels=4, positives=2, labels_version=store.labels_versions().get("troops", ""),
                     bias=0.0, weights={"w:football": -300.0})  # fmt: skip
    result = cli(path, store.target, "rematch")
    assert "1 new matches" in result.output
    assert [r[0] for r in store.db.execute("SELECT article_id FROM matches")] == [deployment]
    held = store.db.execute("SELECT article_id, verdict FROM model_calls").fetchall()
    assert held == [(football, "held")]
    assert store.db.execute("SELECT count(*) FROM deliveries WHERE article_id = ?", [football]).fetchone()[0] == 0


def test_the_fast_score_is_the_probability_of_the_features_training_sees():
    from watcher.learn.features import rule_features, text_features, weighted
    from watcher.rules import ArticleText

    model = train(TOPIC, examples(), now=NOW)
    for title, body in YES + NO + [("Empty", "")]:
        art = ArticleText(title, body)
        matched = bool(match_article([TOPIC], title, body))
        text, rule = text_features(art), rule_features(TOPIC, art, matched)
        assert model.score(text, rule) == pytest.approx(model.probability(weighted(text, rule)), abs=1e-12)
