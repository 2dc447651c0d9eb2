"""The core commands as a user types them: init, check, poll, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from tests.helpers.news import serve_site
from watcher.cli import main


def invoke(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def test_init_writes_a_config_that_checks_and_never_overwrites(tmp_path):
    path = tmp_path / "config.toml"
    assert invoke("init", str(path)).exit_code == 0
    assert "[[feeds]]" in path.read_text()
    result = invoke("--config", str(path), "check")
    assert result.exit_code == 0 and "ok (28 feeds, 2 topics" in result.output
    path.write_text("# mine\n")
    again = invoke("init", str(path))
    assert again.exit_code != 0 and "not overwriting" in again.output
    assert path.read_text() == "# mine\n"


def test_check_lists_every_error_and_exits_2(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        '[schedule]\ninterval = "soon"\n\n[[feeds]]\nname = "x"\nurl = "gopher://x"\n\n[topics.t]\nrule = "a AND ("\n'
    )
    result = invoke("--config", str(path), "check")
    assert result.exit_code == 2
    assert "schedule.interval" in result.output and "feeds[0].url" in result.output
    assert str(path) in result.output
    # The broken rule is listed beside the other problems, in words that read, with the caret on its line.
    assert "3 error(s)" in result.output
    assert (
        "topics.t.rule: expected a term, found the end of the rule (position 8)\n    a AND (\n           ^"
        in result.output
    )
    assert "found topic" not in result.output


def test_check_warns_about_every_secret_the_environment_lacks(tmp_path):
    path = tmp_path / "config.toml"
    invoke("init", str(path))
    path.write_text(
        path.read_text()
        + '\n[channels.s1]\ntype = "slack"\nwebhook_url_env = "UNSET_ONE"\n'
        + '\n[channels.s2]\ntype = "slack"\nwebhook_url_env = "SET_TWO"\n'
    )
    result = CliRunner().invoke(main, ["--config", str(path), "check"], env={"SET_TWO": "https://hooks.example/x"})
    assert result.exit_code == 0
    assert "warning: channels.s1.webhook_url_env: environment variable UNSET_ONE is not set" in result.output
    assert "SET_TWO" not in result.output


def test_init_empty_writes_the_starter_config_without_its_feeds(tmp_path):
    path = tmp_path / "config.toml"
    result = invoke("init", "--empty", str(path))
    assert result.exit_code == 0 and "feeds add" in result.output
    text = path.read_text()
    assert "[[feeds]]\n" not in text and "[topics." in text and "# --- Feeds" in text
    assert "38 North" not in text  # nor the note on the default feeds' full text
    checked = invoke("--config", str(path), "check")
    assert checked.exit_code == 0 and "ok (0 feeds, 2 topics" in checked.output


def test_status_check_finds_the_database_of_a_broken_config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[watcher]\ndatabase = "news.db"\n[schedule]\ninterval = "soon"\n')
    result = invoke("--config", str(path), "status", "--check")
    assert result.exit_code == 0  # degraded, not an error: the daemon may still run on its previous config
    assert "config.toml: 1 problem(s)" in result.output
    assert (tmp_path / "news.db").exists()


def test_status_says_a_removed_feed_is_removed_and_never_checked(tmp_path):
    from watcher.config import load_config
    from watcher.store import Store

    path = tmp_path / "config.toml"
    path.write_text(
        '[[feeds]]\nname = "kept"\nurl = "https://a.example/feed"\n'
        '[[feeds]]\nname = "gone"\nurl = "https://b.example/feed"\n[topics.t]\nrule = "drone"\n'
    )
    store = Store.open(tmp_path / "watcher.db")
    store.sync_feeds(load_config(path).feeds, timedelta(minutes=15), datetime.now(UTC))
    path.write_text('[[feeds]]\nname = "kept"\nurl = "https://a.example/feed"\n[topics.t]\nrule = "drone"\n')
    store.sync_feeds(load_config(path).feeds, timedelta(minutes=15), datetime.now(UTC))
    store.close()
    lines = invoke("--config", str(path), "status").output.splitlines()
    gone = next(line for line in lines if line.startswith("gone"))
    assert "(removed from the config)" in gone
    assert "never" in gone


def test_help_examples_name_channels_as_configs_spell_them():
    from watcher.cli.alerts import alerts, digest

    for group in (digest, alerts):
        for command in group.commands.values():
            assert "team-" not in (command.help or ""), command.name


def test_config_comes_from_the_environment_too(tmp_path):
    path = tmp_path / "elsewhere.toml"
    invoke("init", str(path))
    result = invoke("check", env={"WATCHER_CONFIG": str(path)})
    assert result.exit_code == 0 and str(path) in result.output


def test_poll_prints_a_summary_and_status_shows_each_feed(site, tmp_path):
    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[fetch]
allow_networks = ["127.0.0.0/8"]
[extract]
workers = 1
[[feeds]]
name = "world"
url = "{site.url("/world.rss")}"
[[feeds]]
name = "broken"
url = "{site.url("/error.xml")}"
[topics.drones]
rule = "drone* AND (produc* OR factory OR plant)"
""")
    db = tmp_path / "w.db"
    result = invoke("--config", str(config), "--db", str(db), "poll")
    assert result.exit_code == 0, result.output
    assert "2 feeds (1 failed), 3 entries, 3 new, 3 pages extracted, 1 matched" in result.output

    one = invoke("--config", str(config), "--db", str(db), "poll", "--feed", "world", "--json")
    [row] = [json.loads(line) for line in one.output.splitlines() if line.startswith("{")]
    assert row["feed"] == "world" and row["status"] == "not-modified"

    status = invoke("--config", str(config), "--db", str(db), "status", "--json")
    rows = {r["name"]: r for r in (json.loads(line) for line in status.output.splitlines())}
    assert rows["world"]["matches"] == 1 and rows["world"]["error_count"] == 0
    assert rows["broken"]["error_count"] == 1 and "500" in rows["broken"]["last_error"]
    table = invoke("--config", str(config), "--db", str(db), "status")
    assert "world" in table.output and "HTTP 500" in table.output
    assert "latest matches" in table.output and "terms: " in table.output  # why it matched, at a glance


def test_poll_rejects_an_unknown_feed(tmp_path):
    path = tmp_path / "config.toml"
    invoke("init", str(path))
    result = CliRunner().invoke(main, ["--config", str(path), "--db", str(tmp_path / "w.db"), "poll", "--feed", "nope"])
    assert result.exit_code == 2 and "no feed named 'nope'" in result.output


def test_version():
    from watcher import __version__

    assert __version__ in invoke("--version").output
