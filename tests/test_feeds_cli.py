"""`watcher feeds ...` on real config files: edits keep every comment and line, are checked before they are written,
and land atomically; discovery runs against the local site; OPML goes in and comes back out."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher import __version__
from watcher.cli import main
from watcher.config import load_config
from watcher.config_edit import NewFeed, add_feeds, edit_config, remove_feed
from watcher.errors import ConfigError
from watcher.opml import read_opml
from watcher.store import Store

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"

LOCAL_CONFIG = """\
# A small config for tests; this comment must survive every edit.
[watcher]
database = "watcher.db"   # beside this file

[fetch]
allow_networks = ["127.0.0.0/8"]   # the local site
timeout = "5s"

# --- Feeds ---
[[feeds]]
name = "world"
url = "{base}/feeds/world.rss"   # the first feed

# --- Topics ---
[topics.drones]
rule = "drone*"
"""


def run(config: Path, *args: str):
    env = {"WATCHER_CONFIG": None, "WATCHER_DB": None, "WATCHER_HTTP": None}
    return CliRunner().invoke(main, ["--config", str(config), *args], env=env, catch_exceptions=False)


def assert_only_added(before: str, after: str) -> list[str]:
    """Every line of `before` is still in `after`, in order; returns the lines that were added."""
    old, added = before.splitlines(), []
    i = 0
    for line in after.splitlines():
        if i < len(old) and line == old[i]:
            i += 1
        else:
            added.append(line)
    assert i == len(old), f"line {i + 1} of the original is gone: {old[i]!r}"
    return added


@pytest.fixture
def default_config(tmp_path) -> Path:
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", path)
    return path


@pytest.fixture
def local(site, tmp_path) -> Path:
    """A config that may fetch from the local site, which serves two feeds and pages that announce them."""
    base = site.url("")
    for path, name, ctype in (
        ("/feeds/world.rss", "world.rss", "application/rss+xml"),
        ("/blog/asia.atom", "asia.atom", "application/atom+xml"),
        ("/feed.json", "feed.json", "application/feed+json"),
    ):
        site.add(path, (FIXTURES / "site" / name).read_bytes().replace(b"{base}", base.encode()), content_type=ctype)
    site.add("/blog/index.html", (FIXTURES / "discovery" / "links.html").read_bytes(), content_type="text/html")
    config = tmp_path / "config.toml"
    config.write_text(LOCAL_CONFIG.replace("{base}", base), encoding="utf-8")
    return config


# --- feeds add --------------------------------------------------------------------------------------------------


def test_add_a_site_page_writes_its_feed_after_the_last_one_and_keeps_every_comment(local, site):
    before = local.read_text()
    result = run(
        local, "feeds", "add", site.url("/blog/index.html"), "--name", "asia desk", "--pick", "2", "--interval", "30m"
    )
    assert result.exit_code == 0, result.output
    assert f"added 'asia desk': {site.url('/blog/asia.atom')} (announced by the page; 2 entries now)" in result.output
    after = local.read_text()
    assert assert_only_added(before, after) == [
        "[[feeds]]",
        'name = "asia desk"',
        f'url = "{site.url("/blog/asia.atom")}"',
        'interval = "30m"',
        "",
    ]
    # The new table sits after the last feed, before the comment that opens the next section.
    assert after.index('name = "asia desk"') < after.index("# --- Topics ---")
    config = load_config(local)
    assert [(f.name, f.interval.total_seconds() if f.interval else None) for f in config.feeds] == [
        ("world", None),
        ("asia desk", 1800.0),
    ]


def test_add_names_the_feed_after_its_title_and_lists_the_page_s_other_feeds(local, site):
    local.write_text(local.read_text().replace("/feeds/world.rss", "/elsewhere.rss"))
    result = run(local, "feeds", "add", site.url("/blog/index.html"))
    assert result.exit_code == 0, result.output
    assert "added 'Test World Desk'" in result.output
    assert f"  2. Asia (Atom)  {site.url('/blog/asia.atom')}" in result.output
    assert f"  3. JSON Feed  {site.url('/feed.json')}" in result.output
    assert "--pick N" in result.output
    assert [f.name for f in load_config(local).feeds] == ["world", "Test World Desk"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["/feeds/world.rss"], "is in the config already, as 'world'"),
        (["/blog/asia.atom", "--name", "world"], "a feed named 'world' exists"),
        (["/blog/asia.atom", "--interval", "soon"], "expected a duration"),
        (["/blog/asia.atom", "--interval", "0s"], "longer than zero"),
        (["/no-such-page"], "HTTP 404"),
        (["/blog/index.html", "--pick", "9"], "there is no number 9"),
    ],
    ids=["same-url", "same-name", "bad-interval", "zero-interval", "404", "pick-out-of-range"],
)
def test_add_refuses_with_a_reason_and_leaves_the_file_alone(local, site, args, message):
    before = local.read_bytes()
    result = run(local, "feeds", "add", site.url(args[0]), *args[1:])
    assert result.exit_code == 2
    assert message in result.output
    assert local.read_bytes() == before


def test_adding_a_local_feed_without_the_allow_list_says_which_setting_allows_it(site, tmp_path):
    site.add("/feed.xml", (FIXTURES / "site" / "world.rss").read_bytes(), content_type="application/rss+xml")
    config = tmp_path / "config.toml"
    text = LOCAL_CONFIG.replace('allow_networks = ["127.0.0.0/8"]', "allow_networks = []")
    config.write_text(text.replace("{base}", site.url("")))
    result = run(config, "feeds", "add", site.url("/feed.xml"))
    assert result.exit_code == 2
    assert "127.0.0.1 is loopback" in result.output
    assert '[fetch] allow_networks = ["127.0.0.0/8"]' in result.output


def test_add_refuses_what_is_not_a_web_address(local):
    result = run(local, "feeds", "add", "ftp://example.org/feed")
    assert result.exit_code == 2 and "http:// or https://" in result.output


# --- feeds remove, list -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Yonhap (English)", "Japan Today", "The Diplomat", "UK Defence Journal"])
def test_remove_deletes_only_the_feed_s_own_lines(default_config, name):
    before = default_config.read_text()
    result = run(default_config, "feeds", "remove", name)
    assert result.exit_code == 0, result.output
    after = default_config.read_text()
    assert_only_added(after, before)  # the reverse: what remains is the original minus some lines
    removed = [line for line in before.splitlines() if line not in after.splitlines()]
    assert f'name = "{name}"' in removed and all(not line.startswith("#") for line in removed)
    assert before.count("\n# ") == after.count("\n# ")  # every comment line is still there
    assert name not in {f.name for f in load_config(default_config).feeds}


def test_remove_an_unknown_feed_suggests_close_names(default_config):
    result = run(default_config, "feeds", "remove", "Japan Todya")
    assert result.exit_code == 2 and "did you mean 'Japan Today'" in result.output


def test_list_shows_every_feed_with_its_interval_and_health(local, site):
    run(local, "feeds", "add", site.url("/blog/asia.atom"), "--interval", "2h")
    store = Store.open(local.parent / "watcher.db")  # as the daemon leaves it after a sync
    config = load_config(local)
    store.sync_feeds(config.feeds, config.schedule.interval, datetime.now(UTC))
    store.close()
    rows = [json.loads(line) for line in run(local, "feeds", "list", "--json").output.splitlines()]
    assert [(r["name"], r["interval"], r["interval_s"], r["status"], r["error_count"]) for r in rows] == [
        ("world", "15m (default)", 900, "new", 0),
        ("Test Asia Desk", "2h", 7200, "new", 0),
    ]
    table = run(local, "feeds", "list").output
    assert table.splitlines()[0].split() == ["name", "status", "errors", "interval", "url"]
    assert "2 feeds in" in table


def test_list_does_not_create_a_database(local):
    assert run(local, "feeds", "list").exit_code == 0
    assert not (local.parent / "watcher.db").exists()


# --- feeds import / export ----------------------------------------------------------------------------------------


def test_import_reads_nested_outlines_skips_duplicates_and_keeps_comments(default_config):
    before = default_config.read_text()
    result = run(default_config, "feeds", "import", str(FIXTURES / "opml" / "nested.opml"))
    assert result.exit_code == 0, result.output
    # Five of the file's feeds are in the default config already; one is listed twice in the file.
    assert "added 2 feeds" in result.output and "skipped 6" in result.output
    assert "skipped 'NK News' (https://www.nknews.org/feed/): in the config already, as 'NK News'" in result.output
    added = assert_only_added(before, default_config.read_text())
    assert 'name = "Top-level Wire"' in added and 'name = "untitled.example"' in added
    assert len(load_config(default_config).feeds) == 30


def test_import_makes_names_unique(local, tmp_path):
    opml = tmp_path / "same-names.opml"
    opml.write_text(
        '<opml version="2.0"><body><outline text="world" xmlUrl="https://a.example/rss"/>'
        '<outline text="world" xmlUrl="https://b.example/rss"/><outline text="world" xmlUrl="https://a.example/other"/></body></opml>'
    )
    assert run(local, "feeds", "import", str(opml)).exit_code == 0
    assert [f.name for f in load_config(local).feeds] == [
        "world",
        "world (a.example)",
        "world (b.example)",
        "world (2)",
    ]


def test_import_dry_run_changes_nothing(default_config):
    before = default_config.read_bytes()
    result = run(default_config, "feeds", "import", "--dry-run", str(FIXTURES / "opml" / "nested.opml"))
    assert "would add 'Top-level Wire': https://wire.example/rss.xml" in result.output
    assert default_config.read_bytes() == before


def test_import_check_adds_only_feeds_that_parse(local, site, tmp_path):
    opml = tmp_path / "check.opml"
    opml.write_text(
        f'<opml version="2.0"><body><outline text="asia" xmlUrl="{site.url("/blog/asia.atom")}"/>'
        f'<outline text="gone" xmlUrl="{site.url("/gone.rss")}"/>'
        f'<outline text="page" xmlUrl="{site.url("/blog/index.html")}"/></body></opml>'
    )
    result = run(local, "feeds", "import", "--check", str(opml))
    assert result.exit_code == 0, result.output
    assert "added 1 feeds" in result.output
    assert "skipped 'gone'" in result.output and "HTTP 404" in result.output and "skipped 'page'" in result.output
    assert [f.name for f in load_config(local).feeds] == ["world", "asia"]


def test_import_check_on_a_machine_without_network_says_so(local, tmp_path, monkeypatch):
    import socket

    from watcher import guard

    async def offline(host: str, port: int) -> list[str]:  # every name fails, as with the network down
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(guard, "_system_resolve", offline)
    opml = tmp_path / "far.opml"
    opml.write_text(
        "<opml version='2.0'><body>"
        + "".join(f"<outline text='f{i}' xmlUrl='https://feeds{i}.example.test/rss'/>" for i in range(5))
        + "</body></opml>"
    )
    before = local.read_bytes()
    result = CliRunner().invoke(
        main, ["--config", str(local), "feeds", "import", "--check", str(opml)], env={"WATCHER_CONFIG": None}
    )
    assert result.exit_code == 1
    assert "added 0 feeds" in result.stdout
    assert "none of the 5 feeds could be reached (DNS or connection failures): is the network down?" in result.stderr
    assert local.read_bytes() == before


def test_an_opml_round_trip_through_two_configs_keeps_every_feed(tmp_path):
    first, second = tmp_path / "one.toml", tmp_path / "two.toml"
    for path in (first, second):
        path.write_text("# feeds only\n[watcher]\ndatabase = 'w.db'\n")
    assert run(first, "feeds", "import", str(FIXTURES / "opml" / "nested.opml")).exit_code == 0
    exported = run(first, "feeds", "export").stdout
    assert exported.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    exported_path = tmp_path / "export.opml"
    exported_path.write_text(exported, encoding="utf-8")
    assert run(second, "feeds", "import", str(exported_path)).exit_code == 0
    feeds = lambda path: [(f.name, f.url) for f in load_config(path).feeds]
    assert feeds(first) == feeds(second)
    assert {(f.name, f.url) for f in read_opml(exported.encode())} == set(feeds(first))
    assert len(feeds(first)) == 7  # eight outlines, one a duplicate; the file: URL was never read


def test_export_writes_a_file_with_output(default_config, tmp_path):
    out = tmp_path / "subs.opml"
    assert run(default_config, "feeds", "export", "-o", str(out)).exit_code == 0
    assert len(read_opml(out.read_bytes())) == 28


# --- config_edit: checked, atomic, faithful ------------------------------------------------------------------------


def test_an_edit_that_would_break_the_config_writes_nothing(local):
    before = local.read_bytes()
    with pytest.raises(ConfigError, match=r"feeds\[1\].interval: expected a duration"):
        add_feeds(local, [NewFeed("x", "https://x.example/rss", interval="soon")])
    with pytest.raises(ConfigError, match=r"feeds\[1\].url: expected a URL not used before"):
        add_feeds(local, [NewFeed("x", load_config(local).feeds[0].url)])
    assert local.read_bytes() == before
    assert [p.name for p in local.parent.iterdir()] == ["config.toml"]  # no temp file left behind


def test_a_file_that_is_not_toml_is_not_edited(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[watcher\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        add_feeds(path, [NewFeed("x", "https://x.example/rss")])


def test_the_file_is_replaced_atomically_with_its_permissions(local):
    os.chmod(local, 0o640)
    inode = local.stat().st_ino
    add_feeds(local, [NewFeed("x", "https://x.example/rss")])
    assert local.stat().st_ino != inode  # a new file renamed over the old: readers see one or the other
    assert stat.S_IMODE(local.stat().st_mode) == 0o640


def test_a_file_mounted_on_its_own_is_rewritten_in_place(local, monkeypatch):
    import errno

    import watcher.config_edit

    def busy(src, dst):
        raise OSError(errno.EBUSY, "Device or resource busy")  # what rename(2) says over a bind-mounted file

    monkeypatch.setattr(watcher.config_edit.os, "replace", busy)
    inode = local.stat().st_ino
    add_feeds(local, [NewFeed("x", "https://x.example/rss")])
    assert local.stat().st_ino == inode and "https://x.example/rss" in local.read_text()
    assert [p.name for p in local.parent.iterdir()] == ["config.toml"]


def test_a_symlinked_config_is_edited_where_it_lives(local, tmp_path):
    link = tmp_path / "link.toml"
    link.symlink_to(local)
    add_feeds(link, [NewFeed("x", "https://x.example/rss")])
    assert link.is_symlink() and "https://x.example/rss" in local.read_text()


def test_a_change_made_meanwhile_is_not_overwritten(local):
    def change(doc):
        local.write_text(local.read_text() + "\n# someone saved in an editor\n")

    with pytest.raises(ConfigError, match="the file changed"):
        edit_config(local, change)
    assert local.read_text().endswith("# someone saved in an editor\n")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "[watcher]\ndatabase = 'w.db'\n",
            '[watcher]\ndatabase = \'w.db\'\n\n[[feeds]]\nname = "x"\nurl = "https://x.example/rss"\n',
        ),
        (
            "feeds = [{name = 'a', url = 'https://a.example/f'}]\n",
            "feeds = [{name = 'a', url = 'https://a.example/f'}, {name = \"x\", url = \"https://x.example/rss\"}]\n",
        ),
        (
            "[[feeds]]\nname = 'a'\nurl = 'https://a.example/f'",
            "[[feeds]]\nname = 'a'\nurl = 'https://a.example/f'\n\n[[feeds]]\nname = \"x\"\nurl = \"https://x.example/rss\"\n",
        ),
    ],
    ids=["no-feeds-yet", "inline-array", "no-final-newline"],
)
def test_add_to_configs_of_other_shapes(tmp_path, text, expected):
    path = tmp_path / "c.toml"
    path.write_text(text)
    add_feeds(path, [NewFeed("x", "https://x.example/rss")])
    assert path.read_text() == expected


def test_removing_the_last_feed_keeps_the_comments_around_it(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        "[watcher]\ndatabase = 'w.db'\n\n# Feeds\n[[feeds]]\nname = 'a'\nurl = 'https://a.example/f'\n\n# Topics next\n"
    )
    remove_feed(path, "a")
    assert path.read_text() == "[watcher]\ndatabase = 'w.db'\n\n# Feeds\n\n# Topics next\n"
    assert load_config(path).feeds == ()


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"watcher, version {__version__}\n"


def test_every_feeds_command_has_an_example_in_its_help():
    from watcher.cli.feeds import feeds, serve

    for name, command in [*feeds.commands.items(), ("serve", serve), ("feeds", feeds)]:
        assert "Example:" in (command.help or ""), name
