"""The schema, as numbered migrations. A database records the highest one applied in `PRAGMA user_version`.

Never edit a migration that has shipped: add the next one. docs/schema.md describes the result, and
tests/test_schema.py checks that the two agree.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: feeds and their schedule, seen entries, articles with sources and matches, FTS, the alert outbox.
    """
    CREATE TABLE feeds (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        url             TEXT NOT NULL UNIQUE,
        title           TEXT,
        moved_to        TEXT,                       -- target of a permanent redirect, for the user to copy into config
        enabled         INTEGER NOT NULL DEFAULT 1,
        extract         INTEGER NOT NULL DEFAULT 1,
        interval_s      INTEGER NOT NULL,
        etag            TEXT,
        last_modified   TEXT,
        added_at        TEXT NOT NULL,
        first_polled_at TEXT,
        last_checked_at TEXT,
        last_success_at TEXT,
        next_check_at   TEXT NOT NULL,              -- the schedule lives here; a tick polls feeds that are due
        error_count     INTEGER NOT NULL DEFAULT 0, -- consecutive failures; drives back-off, reset by a success
        last_error      TEXT,
        last_error_kind TEXT,
        last_status     TEXT,                       -- ok | not-modified | error
        last_warning    TEXT
    );
    CREATE INDEX feeds_next_check ON feeds(next_check_at);

    CREATE TABLE seen_entries (
        feed_id   INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        entry_id  TEXT NOT NULL,
        seen_at   TEXT NOT NULL,
        PRIMARY KEY (feed_id, entry_id)
    ) WITHOUT ROWID;

    CREATE TABLE articles (
        id            INTEGER PRIMARY KEY,
        url           TEXT NOT NULL UNIQUE,         -- canonical URL: one article however many feeds carry it
        title         TEXT NOT NULL,
        body          TEXT NOT NULL,
        body_source   TEXT NOT NULL,                -- page | feed-content | feed-summary | none
        author        TEXT,
        language      TEXT,
        published_at  TEXT,
        fetched_at    TEXT NOT NULL,
        matched       INTEGER NOT NULL DEFAULT 0    -- 1 when any topic matches; 0 rows are purged after keep_unmatched
    );
    CREATE INDEX articles_fetched ON articles(fetched_at);
    CREATE INDEX articles_unmatched ON articles(matched, fetched_at);

    CREATE TABLE article_sources (
        article_id   INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        feed_id      INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        entry_id     TEXT NOT NULL,
        link         TEXT,
        seen_at      TEXT NOT NULL,
        PRIMARY KEY (article_id, feed_id)
    ) WITHOUT ROWID;

    CREATE TABLE matches (
        article_id   INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        topic        TEXT NOT NULL,
        score        REAL NOT NULL,
        terms        TEXT NOT NULL,                 -- JSON list of the terms that matched
        snippet      TEXT NOT NULL,                 -- text around the terms, terms marked with [[ ]]
        matched_at   TEXT NOT NULL,
        retracted_at TEXT,                          -- set by rematch when the topic's rule no longer matches
        PRIMARY KEY (article_id, topic)
    ) WITHOUT ROWID;
    CREATE INDEX matches_topic ON matches(topic, matched_at);

    CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY,
        article_id       INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        topic            TEXT NOT NULL,
        channel          TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | dead | skipped
        created_at       TEXT NOT NULL,
        next_attempt_at  TEXT NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        sent_at          TEXT,
        UNIQUE (article_id, topic, channel)        -- the same alert can never be queued twice
    );
    CREATE INDEX deliveries_due ON deliveries(status, channel, next_attempt_at);

    CREATE TABLE channel_state (
        channel          TEXT PRIMARY KEY,
        last_digest_at   TEXT,                      -- the digest slot last sent; a missed slot is sent once
        last_sent_at     TEXT
    );

    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, body, content='articles', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER articles_ai AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END;
    CREATE TRIGGER articles_ad AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    END;
    CREATE TRIGGER articles_au AFTER UPDATE OF title, body ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
        INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END;

    CREATE VIEW latest_matches AS
        SELECT m.topic, a.title, a.url, a.published_at, m.matched_at, m.terms, m.snippet,
               (SELECT group_concat(f.name, ', ') FROM article_sources s JOIN feeds f ON f.id = s.feed_id
                 WHERE s.article_id = a.id) AS feeds
          FROM matches m JOIN articles a ON a.id = m.article_id
         WHERE m.retracted_at IS NULL
         ORDER BY m.matched_at DESC;

    CREATE VIEW feed_health AS
        SELECT f.name, f.url, f.last_status, f.last_success_at, f.next_check_at, f.error_count, f.last_error,
               (SELECT count(*) FROM article_sources s JOIN matches m ON m.article_id = s.article_id
                 WHERE s.feed_id = f.id AND m.retracted_at IS NULL) AS matches
          FROM feeds f;
    """,
    # 2: views for the questions people ask in Datasette and the sqlite3 shell (docs/schema.md, "Views").
    """
    CREATE VIEW delivery_log AS
        SELECT d.id, d.channel, d.topic, d.status, d.attempts, d.created_at, d.next_attempt_at, d.sent_at,
               d.last_error, a.title, a.url, d.article_id
          FROM deliveries d JOIN articles a ON a.id = d.article_id
         ORDER BY d.id DESC;

    CREATE VIEW topic_daily AS
        SELECT m.topic, date(m.matched_at) AS day, count(*) AS matches
          FROM matches m
         WHERE m.retracted_at IS NULL
         GROUP BY m.topic, day
         ORDER BY day DESC, m.topic;

    CREATE VIEW matched_articles AS
        SELECT a.id, a.title, a.url, a.published_at, a.fetched_at, a.author, a.language, a.body_source,
               (SELECT group_concat(m.topic, ', ') FROM matches m
                 WHERE m.article_id = a.id AND m.retracted_at IS NULL) AS topics,
               (SELECT group_concat(f.name, ', ') FROM article_sources s JOIN feeds f ON f.id = s.feed_id
                 WHERE s.article_id = a.id) AS feeds
          FROM articles a
         WHERE a.matched = 1
         ORDER BY coalesce(a.published_at, a.fetched_at) DESC;
    """,
    # 3: who holds a claim on a delivery, so a restarted daemon can take back the claims of the process it replaced
    # at once instead of waiting out their lease.
    """
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    """,
    # 4: topics that learn from labels: the analyst's labels (with the text they were given on, so a label outlives
    # the article's purge and imported examples need no article), each topic's model as plain numbers, and the
    # model's calls (rule matches held back, possible matches the rule missed) with their explanations.
    """
    CREATE TABLE labels (
        id           INTEGER PRIMARY KEY,
        topic        TEXT NOT NULL,
        label        TEXT NOT NULL CHECK (label IN ('yes', 'no')),
        item_key     TEXT NOT NULL,                 -- the article's URL, or "import:<uid>" for an imported example
        article_id   INTEGER REFERENCES articles(id) ON DELETE SET NULL,
        title        TEXT NOT NULL,                 -- the text the model trains on
        body         TEXT NOT NULL,
        source       TEXT NOT NULL,                 -- cli | import | digest | ...
        labelled_at  TEXT NOT NULL,
        labelled_by  TEXT NOT NULL DEFAULT '',
        UNIQUE (topic, item_key)                    -- labelling again replaces the label
    );
    CREATE INDEX labels_article ON labels(article_id);

    CREATE TABLE topic_models (
        topic          TEXT PRIMARY KEY,
        trained_at     TEXT NOT NULL,
        labels         INTEGER NOT NULL,            -- labels trained on
        positives      INTEGER NOT NULL,            -- of which "yes"
        labels_version TEXT NOT NULL,               -- the labels' state when trained: retrain when it changes
        bias           REAL NOT NULL,
        weights        TEXT NOT NULL                -- JSON object: feature name -> weight (plain numbers, no pickle)
    );

    CREATE TABLE model_calls (
        article_id   INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        topic        TEXT NOT NULL,
        verdict      TEXT NOT NULL CHECK (verdict IN ('held', 'possible')),
        probability  REAL NOT NULL,                 -- the model's estimate that the article is on the topic
        rule_score   REAL NOT NULL,
        terms        TEXT NOT NULL,                 -- JSON list: the rule's terms (held) or the model's reasons
        snippet      TEXT NOT NULL,
        features     TEXT NOT NULL,                 -- JSON list of [feature, weight]: the model's strongest reasons
        decided_at   TEXT NOT NULL,
        PRIMARY KEY (article_id, topic)
    ) WITHOUT ROWID;
    CREATE INDEX model_calls_verdict ON model_calls(verdict, decided_at);

    CREATE VIEW held_back_matches AS
        SELECT c.topic, a.id AS article_id, a.title, a.url, c.probability, c.rule_score, c.terms, c.features,
               c.snippet, c.decided_at,
               (SELECT group_concat(f.name, ', ') FROM article_sources s JOIN feeds f ON f.id = s.feed_id
                 WHERE s.article_id = a.id) AS feeds
          FROM model_calls c JOIN articles a ON a.id = c.article_id
         WHERE c.verdict = 'held'
         ORDER BY c.decided_at DESC;

    CREATE VIEW possible_matches AS
        SELECT c.topic, a.id AS article_id, a.title, a.url, c.probability, c.terms, c.features, c.snippet,
               c.decided_at,
               (SELECT group_concat(f.name, ', ') FROM article_sources s JOIN feeds f ON f.id = s.feed_id
                 WHERE s.article_id = a.id) AS feeds
          FROM model_calls c JOIN articles a ON a.id = c.article_id
         WHERE c.verdict = 'possible'
         ORDER BY c.decided_at DESC;
    """,
    # 5: stories (issue 12): one row per news event, however many feeds carry it; the index the same-story decision
    # looks up (docs/stories.md); document frequencies of terms; the analyst's merges and splits.
    """
    CREATE TABLE stories (
        id            INTEGER PRIMARY KEY,
        headline      TEXT NOT NULL,                -- the title of the story's earliest article
        first_seen    TEXT NOT NULL,
        last_seen     TEXT NOT NULL,
        sources       INTEGER NOT NULL DEFAULT 0,   -- feeds that carried one of its articles
        articles      INTEGER NOT NULL DEFAULT 0,
        merged_into   INTEGER REFERENCES stories(id) -- set by `watcher stories merge`; the story lives on there
    );
    CREATE INDEX stories_last_seen ON stories(last_seen);

    ALTER TABLE articles ADD COLUMN story_id INTEGER REFERENCES stories(id);
    ALTER TABLE articles ADD COLUMN story_pinned INTEGER NOT NULL DEFAULT 0;  -- placed by hand: never re-decided
    ALTER TABLE articles ADD COLUMN story_terms TEXT;  -- JSON [published, title terms, terms, their weights]
    CREATE INDEX articles_story ON articles(story_id);

    CREATE TABLE story_keys (
        key         TEXT NOT NULL,                  -- one of an article's rarest terms
        seen_at     TEXT NOT NULL,                  -- rows older than the window are pruned: the index stays small
        article_id  INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        PRIMARY KEY (key, seen_at, article_id)
    ) WITHOUT ROWID;
    CREATE INDEX story_keys_article ON story_keys(article_id);
    CREATE INDEX story_keys_seen ON story_keys(seen_at);

    CREATE TABLE story_terms (
        term   TEXT PRIMARY KEY,
        df     INTEGER NOT NULL                     -- articles whose title and lead carry it; term '' counts them all
    ) WITHOUT ROWID;

    CREATE VIEW stories_by_topic AS
        SELECT m.topic, s.headline, s.sources, s.first_seen, s.last_seen, s.id AS story_id
          FROM stories s JOIN articles a ON a.story_id = s.id JOIN matches m ON m.article_id = a.id
         WHERE m.retracted_at IS NULL AND s.merged_into IS NULL
         GROUP BY m.topic, s.id
         ORDER BY s.last_seen DESC;
    """,
    # 6: what stood between watcher and each article page (blocked by a bot challenge, a consent wall, a paywall),
    # shown per feed in feed_health; and the full-text index rebuilt so that search finds a word's forms (porter:
    # drones = drone) and Datasette finds it (it looks for content="articles" in double quotes).
    """
    ALTER TABLE articles ADD COLUMN page_outcome TEXT;

    DROP VIEW feed_health;
    CREATE VIEW feed_health AS
        SELECT f.name, f.url, f.last_status, f.last_success_at, f.next_check_at, f.error_count, f.last_error,
               (SELECT count(*) FROM article_sources s JOIN matches m ON m.article_id = s.article_id
                 WHERE s.feed_id = f.id AND m.retracted_at IS NULL) AS matches,
               (SELECT count(*) FROM article_sources s JOIN articles a ON a.id = s.article_id
                 WHERE s.feed_id = f.id AND a.page_outcome IS NOT NULL) AS pages_tried,
               (SELECT count(*) FROM article_sources s JOIN articles a ON a.id = s.article_id
                 WHERE s.feed_id = f.id AND a.page_outcome IN ('blocked', 'consent', 'paywall')) AS pages_walled,
               (SELECT group_concat(outcome, ', ') FROM (SELECT DISTINCT a.page_outcome AS outcome
                  FROM article_sources s JOIN articles a ON a.id = s.article_id
                 WHERE s.feed_id = f.id AND a.page_outcome IN ('blocked', 'consent', 'paywall'))) AS walls
          FROM feeds f;

    DROP TRIGGER articles_ai;
    DROP TRIGGER articles_ad;
    DROP TRIGGER articles_au;
    DROP TABLE articles_fts;
    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, body, content="articles", content_rowid="id", tokenize="porter unicode61 remove_diacritics 2"
    );
    INSERT INTO articles_fts(articles_fts) VALUES ('rebuild');
    CREATE TRIGGER articles_ai AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END;
    CREATE TRIGGER articles_ad AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    END;
    CREATE TRIGGER articles_au AFTER UPDATE OF title, body ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
        INSERT INTO articles_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END;
    """,
    # 7: several workers sharing one database (issue 14; docs/schema.md, "Several workers"): the lease a worker
    # holds on a feed it is polling, and each worker's own row (host, pid, last tick, feeds polled).
    """
    ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
    ALTER TABLE feeds ADD COLUMN lease_until TEXT;

    CREATE TABLE workers (
        name          TEXT PRIMARY KEY,             -- host:pid:start, unique per process
        host          TEXT NOT NULL,
        pid           INTEGER NOT NULL,
        started_at    TEXT NOT NULL,
        last_tick_at  TEXT NOT NULL,
        feeds_polled  INTEGER NOT NULL DEFAULT 0
    );
    """,
]
