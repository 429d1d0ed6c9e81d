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
    data          TEXT NOT NULL,
    -- copy of data's language, for language channels (added to older stores on open)
    language      TEXT,
    -- copy of data's title, and the matching text (`Item::text`, not in data): what
    -- deduplication compares, read without parsing data (schema 3)
    title         TEXT NOT NULL DEFAULT '',
    text          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS items_visible ON items(published DESC, id) WHERE dup_of IS NULL AND withdrawn = 0;
-- A source's items (prune, withdrawals, source channels) and the items it holds (every
-- refresh counts them from this index, not by reading every row for its `withdrawn`
-- flag): one index for both since schema 5, where two (`items_source` by date,
-- `items_held` of the held) each cost every insert a b-tree write.
DROP INDEX IF EXISTS items_source;
DROP INDEX IF EXISTS items_held;
CREATE INDEX IF NOT EXISTS items_by_source ON items(source_id, withdrawn, published DESC);
CREATE INDEX IF NOT EXISTS items_canonical ON items(canonical_url);
CREATE INDEX IF NOT EXISTS items_text_hash ON items(text_hash);
-- Only the duplicates: lookups are always `dup_of = ?`. A full index made `dup_of IS NULL`
-- look selective to the planner (no statistics say nearly every row is NULL), so channel
-- and archive queries walked every visible item through it: quadratic in a large store.
DROP INDEX IF EXISTS items_dup_of;
CREATE INDEX IF NOT EXISTS items_dups ON items(dup_of) WHERE dup_of IS NOT NULL;

CREATE TABLE IF NOT EXISTS outputs (
    path          TEXT PRIMARY KEY,
    content_hash  TEXT NOT NULL,
    last_modified INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Tags of every item, so a tag channel reads only its own items instead of parsing
-- every stored item's JSON (O(tags x items) per publish otherwise).
CREATE TABLE IF NOT EXISTS item_tags (
    item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (tag, item_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS item_tags_item ON item_tags(item_id);
-- No index by language (schema 5): a language channel matches `de` and `de-*`, which
-- no query plan reads from one, and `items_language` only cost every insert.
DROP INDEX IF EXISTS items_language;

-- What changed since the last publish, recorded by the triggers below whatever code path
-- changes an item, so publishing re-renders only the channels those items belong to.
-- kind: 'source' | 'tag' | 'lang'. Cleared by a successful publish.
CREATE TABLE IF NOT EXISTS publish_dirty (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

-- An item's channels are its source's, its language's and its tags'; a duplicate's
-- change also touches its representative's channels ("also published by"). A new
-- item's are marked by the code that inserts it (`inserted.rs`: an AFTER INSERT
-- trigger gave every insert a statement journal); older builds' trigger is dropped.
DROP TRIGGER IF EXISTS items_dirty_insert;

CREATE TRIGGER IF NOT EXISTS items_dirty_update AFTER UPDATE ON items
WHEN OLD.data IS NOT NEW.data OR OLD.dup_of IS NOT NEW.dup_of OR OLD.withdrawn IS NOT NEW.withdrawn
  OR OLD.published IS NOT NEW.published OR OLD.language IS NOT NEW.language
  OR OLD.source_id IS NOT NEW.source_id
BEGIN
    INSERT OR IGNORE INTO publish_dirty (kind, key) VALUES ('source', OLD.source_id), ('source', NEW.source_id);
    INSERT OR IGNORE INTO publish_dirty (kind, key)
        SELECT 'lang', OLD.language WHERE OLD.language IS NOT NULL
        UNION ALL SELECT 'lang', NEW.language WHERE NEW.language IS NOT NULL
        UNION ALL SELECT 'tag', tag FROM item_tags WHERE item_id = NEW.id
        UNION ALL SELECT 'source', source_id FROM items WHERE id IN (OLD.dup_of, NEW.dup_of)
        UNION ALL SELECT 'lang', language FROM items
            WHERE id IN (OLD.dup_of, NEW.dup_of) AND language IS NOT NULL
        UNION ALL SELECT 'tag', tag FROM item_tags WHERE item_id IN (OLD.dup_of, NEW.dup_of);
END;

-- BEFORE, so the item's tags are still there to read.
CREATE TRIGGER IF NOT EXISTS items_dirty_delete BEFORE DELETE ON items BEGIN
    INSERT OR IGNORE INTO publish_dirty (kind, key) VALUES ('source', OLD.source_id);
    INSERT OR IGNORE INTO publish_dirty (kind, key)
        SELECT 'lang', OLD.language WHERE OLD.language IS NOT NULL
        UNION ALL SELECT 'tag', tag FROM item_tags WHERE item_id = OLD.id
        UNION ALL SELECT 'source', source_id FROM items WHERE id = OLD.dup_of
        UNION ALL SELECT 'lang', language FROM items WHERE id = OLD.dup_of AND language IS NOT NULL
        UNION ALL SELECT 'tag', tag FROM item_tags WHERE item_id = OLD.dup_of;
END;

CREATE TRIGGER IF NOT EXISTS item_tags_dirty_insert AFTER INSERT ON item_tags BEGIN
    INSERT OR IGNORE INTO publish_dirty (kind, key) VALUES ('tag', NEW.tag);
END;

CREATE TRIGGER IF NOT EXISTS item_tags_dirty_delete AFTER DELETE ON item_tags BEGIN
    INSERT OR IGNORE INTO publish_dirty (kind, key) VALUES ('tag', OLD.tag);
END;

-- The reading settings (a digest, see src/reading.rs) each source was last read with.
CREATE TABLE IF NOT EXISTS source_reading (
    source_id   TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL
);
