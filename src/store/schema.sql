-- feedwerk store, schema version 1. Applied under PRAGMA user_version.
CREATE TABLE IF NOT EXISTS sources (
    id                   TEXT PRIMARY KEY,
    url                  TEXT,
    etag                 TEXT,
    last_modified        TEXT,
    last_attempt         INTEGER,
    last_success         INTEGER,
    last_status          TEXT,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_fetch           INTEGER,
    moved_to             TEXT,
    gone                 INTEGER NOT NULL DEFAULT 0,
    fetch_count          INTEGER NOT NULL DEFAULT 0,
    -- when the source's current window (its last full document) was stored
    window_at            INTEGER
);

CREATE TABLE IF NOT EXISTS items (
    id            TEXT PRIMARY KEY,
    source_id     TEXT NOT NULL,
    guid          TEXT,
    canonical_url TEXT,
    text_hash     TEXT,
    published     INTEGER NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    published_id  TEXT NOT NULL UNIQUE,
    dup_of        TEXT,
    dup_reason    TEXT,
    withdrawn     INTEGER NOT NULL DEFAULT 0,
    data          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_visible ON items(published DESC, id) WHERE dup_of IS NULL AND withdrawn = 0;
CREATE INDEX IF NOT EXISTS items_source ON items(source_id, published DESC);
CREATE INDEX IF NOT EXISTS items_canonical ON items(canonical_url);
CREATE INDEX IF NOT EXISTS items_text_hash ON items(text_hash);
CREATE INDEX IF NOT EXISTS items_dup_of ON items(dup_of);

CREATE TABLE IF NOT EXISTS outputs (
    path          TEXT PRIMARY KEY,
    content_hash  TEXT NOT NULL,
    last_modified INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
