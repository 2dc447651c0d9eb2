"""The analyst's page in a real browser: Debian's chromium, driven by Selenium through /usr/bin/chromedriver, against
`watcher run --http 127.0.0.1:0` polling the local news site. Each test does what an analyst does and checks what
the page shows and what the config file and the database then hold. Screenshots of each page go to
bench/results/screenshots/ (ignored by git). `.ci/run` installs chromium and chromium-driver when they are missing;
without them these tests skip, saying so."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon_runner import Daemon
from tests.helpers.localsite import LocalSite
from tests.helpers.news import serve_site
from watcher.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).parent.parent / "bench" / "results" / "screenshots"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
    ),
]

CONFIG = """# the browser tests' config
[watcher]
database = "watcher.db"
timezone = "Asia/Seoul"
alert_on_first_poll = true
http = "127.0.0.1:0"

[schedule]
tick = "1s"
alerts = "1s"

[fetch]
allow_networks = ["127.0.0.0/8"]
timeout = "5s"

[extract]
workers = 1

[[feeds]]
name = "world"
url = "{base}/world.rss"

# --- Topics ---
[topics.drone_cooperation]
# drones built together
rule = "drone* AND (produc* OR factory OR plant)"

[topics.troop_deployment]
rule = "troop* AND (deploy* OR send* OR sent)"

[channels.inbox]
type = "console"
mode = "immediate"
"""


class Running:
    def __init__(self, directory: Path, url: str, daemon: Daemon, site: LocalSite) -> None:
        self.directory = directory
        self.url = url
        self.daemon = daemon
        self.site = site

    @property
    def config_text(self) -> str:
        return (self.directory / "config.toml").read_text(encoding="utf-8")

    def store(self) -> Store:
        return Store.open(self.directory / "watcher.db")


@pytest.fixture(scope="module")
def watcher_page(tmp_path_factory) -> Iterator[Running]:
    site = LocalSite().start()
    serve_site(site)
    site.add(
        "/asia-desk.html",
        '<html><head><title>Asia desk</title><link rel="alternate" type="application/atom+xml" title="Asia" '
        'href="/asia.atom"></head><body>news</body></html>',
        content_type="text/html",
    )
    directory = tmp_path_factory.mktemp("browser")
    (directory / "config.toml").write_text(CONFIG.replace("{base}", site.url("")), encoding="utf-8")
    daemon = Daemon(directory)
    try:
        url = re.search(r"listening on (http://\S+)", daemon.wait_for("ops endpoint listening on")).group(1)
        daemon.wait_for("feed world: ok")
        yield Running(directory, url, daemon, site)
        assert daemon.stop() < 10
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
        site.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def find(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def find_all(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def said(driver) -> str:
    return wait(driver, lambda d: find_all(d, "#said") and find(d, "#said").text)


# --- the tests ----------------------------------------------------------------------------------------------------


def test_matches_show_marked_terms_and_open_to_the_explanation(watcher_page, browser):
    browser.get(watcher_page.url + "/matches")
    items = find_all(browser, "#matches .item .title")
    titles = [i.text for i in items]
    assert "North Korea and Russia to co-produce attack drones at a new plant" in titles
    assert "Seoul braces for the first snow of the winter" not in titles
    marks = [m.text.lower() for m in find_all(browser, "#matches mark")]
    assert "drones" in marks and "troops" in marks
    assert "KST" in find(browser, "#matches .meta").text
    shot(browser, "matches")
    next(i for i in items if "drones" in i.text).click()
    wait(browser, lambda d: "/article/" in d.current_url)
    explanation = find(browser, '[data-topic="drone_cooperation"]')
    assert "drone_cooperation: match" in explanation.text and "✓ drone*" in explanation.text
    assert "Yelabuga" in find(browser, ".body").text  # the extracted text
    shot(browser, "article")


def test_a_rule_error_shows_as_you_type_then_the_what_if_counts_then_save(watcher_page, browser):
    browser.get(watcher_page.url + "/rules/drone_cooperation")
    area = find(browser, "#rule")
    area.clear()
    area.send_keys("drone* AND (produc*")
    box = wait(browser, lambda d: find(d, "#rule-error").is_displayed() and find(d, "#rule-error"))
    assert "position 20" in box.text and find_all(browser, "#rule-error pre.rule-caret mark")
    shot(browser, "rule-error")
    area.send_keys(" OR engineer*)")
    wait(browser, lambda d: not find(d, "#rule-error").is_displayed())
    find(browser, "#try").click()
    wait(browser, lambda d: find_all(d, "#whatif"))
    # The stored news: the drone plant matches both rules; nothing else mentions drones with these words.
    assert (find(browser, "#added-count").text, find(browser, "#dropped-count").text) == ("0", "0")
    assert find(browser, "#kept-count").text == "1"
    shot(browser, "rule-whatif")
    area = find(browser, "#rule")
    area.clear()
    area.send_keys("troop* OR drone*")
    find(browser, "#try").click()
    wait(browser, lambda d: find_all(d, "#whatif") and find(d, "#added-count").text == "1")
    assert "Pyongyang sends thousands more troops" in find(browser, "ul.added").text
    find(browser, "#save").click()
    message = said(browser)
    assert "Saved the rule of drone_cooperation" in message and "1 new matches" in message
    assert 'rule = "troop* OR drone*"' in watcher_page.config_text
    assert "# drones built together" in watcher_page.config_text
    watcher_page.daemon.wait_for("config reloaded")
    shot(browser, "rule-saved")


def test_add_a_feed_by_its_site_address(watcher_page, browser):
    browser.get(watcher_page.url + "/feeds")
    find(browser, '#add-feed input[name="url"]').send_keys(watcher_page.site.url("/asia-desk.html"))
    find(browser, '#add-feed input[name="name"]').send_keys("Asia desk")
    find(browser, "#add-feed button").click()
    assert "Added 'Asia desk'" in said(browser)
    assert find(browser, '[data-feed="Asia desk"]')
    assert watcher_page.site.url("/asia.atom") in watcher_page.config_text
    watcher_page.daemon.wait_for("feed Asia desk: ok")
    shot(browser, "feeds")


def test_retry_a_dead_alert(watcher_page, browser):
    store = watcher_page.store()
    try:
        sent = store.list_deliveries(status="sent")
        assert sent, "the daemon sent the first poll's alerts"
        store.mark_dead([sent[0]["id"]], "550 refused")
        browser.get(watcher_page.url + "/alerts")
        row = find(browser, f'#dead [data-delivery="{sent[0]["id"]}"]')
        assert "550 refused" in row.text
        shot(browser, "alerts")
        find(row, "button").click()
        assert "1 dead alert(s) put back in the queue" in said(browser)
        assert not find_all(browser, f'#dead [data-delivery="{sent[0]["id"]}"]')
        assert sent[0]["id"] not in [d["id"] for d in store.list_deliveries(status="dead")]
    finally:
        store.close()


# --- stories (store/stories.py) -------------------------------------------------------------------------------


def test_triage_a_story_not_relevant_and_see_it_leave(watcher_page, browser):
    browser.get(watcher_page.url + "/stories?topic=troop_deployment")
    stories = find_all(browser, "#stories .story")
    story = next(s for s in stories if "Pyongyang" in s.text)
    story_id = story.get_attribute("data-story")
    assert "1 source" in story.text and "troops" in [m.text.lower() for m in find_all(story, "mark")]
    shot(browser, "stories")
    find(story, "button.no").click()
    assert "not relevant for troop_deployment" in said(browser)
    assert story_id not in [s.get_attribute("data-story") for s in find_all(browser, "#stories .story")]
    store = watcher_page.store()
    try:
        assert ("troop_deployment", "no") in store.db.conn.execute("SELECT topic, label FROM labels").fetchall()
    finally:
        store.close()


# --- teaching the topics (labels: store/labels.py) ----------------------------------------------------------


def test_mark_a_match_not_relevant_and_see_it_leave_the_list(watcher_page, browser):
    browser.get(watcher_page.url + "/matches?topic=drone_cooperation")
    first = find(browser, "#matches .item")
    title = find(first, ".title").text
    find(first, "button.no").click()
    assert f"Labelled “{title}” not relevant for drone_cooperation" in said(browser)
    assert title not in [t.text for t in find_all(browser, "#matches .item .title")]
    shot(browser, "match-dismissed")


def test_confirm_a_possible_match(watcher_page, browser):
    store = watcher_page.store()
    try:
        snow = store.db.conn.execute("SELECT id FROM articles WHERE title LIKE 'Seoul braces%'").fetchone()[0]
        with store.db.conn:  # what the pipeline writes for a possible match (store/labels.py record_model_calls)
            store.db.conn.execute(
                "INSERT INTO model_calls (article_id, topic, verdict, probability, rule_score, terms, snippet, features,"
                " decided_at) VALUES (?, 'troop_deployment', 'possible', 0.93, 0, '[\"word winter\"]', 'The first snow',"
                " '[[\"w:winter\", 1.4]]', '2026-12-06T00:00:00Z')",
                (snow,),
            )
        browser.get(watcher_page.url + "/teach")
        item = find(browser, f'#possible [data-article="{snow}"]')
        assert "word winter (+1.40)" in item.text and "93% on topic" in item.text
        shot(browser, "teach")
        find(item, "button.yes").click()
        assert "Confirmed “Seoul braces for the first snow of the winter” as a match of troop_deployment" in said(
            browser
        )
        assert not find_all(browser, f'#possible [data-article="{snow}"]')
        browser.get(watcher_page.url + "/matches?topic=troop_deployment")
        assert "Seoul braces for the first snow of the winter" in [t.text for t in find_all(browser, "#matches .title")]
    finally:
        store.close()
