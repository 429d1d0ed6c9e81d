-- Deduplication tables. Applied on every open (all statements are idempotent), so
-- stores made before these tables existed gain them; `dedup::init` then indexes the
-- items such a store already holds.

-- One MinHash signature per item (see normalise::fingerprint), with the normalised
-- title used to find teasers and same-title copies.
CREATE TABLE IF NOT EXISTS dedupe_sig (
    item_id   TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    shingles  INTEGER NOT NULL,
    sig       BLOB NOT NULL,
    title_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dedupe_sig_title ON dedupe_sig(title_key);

-- LSH band table: one row per (band bucket, item). Candidates for an item are the
-- items sharing at least one bucket: an index lookup, never an all-pairs scan.
CREATE TABLE IF NOT EXISTS dedupe_band (
    bucket  INTEGER NOT NULL,
    item_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dedupe_band_bucket ON dedupe_band(bucket);
CREATE INDEX IF NOT EXISTS dedupe_band_item ON dedupe_band(item_id);

-- Representatives whose published ID readers have seen: from then on a cluster's
-- representative never changes.
CREATE TABLE IF NOT EXISTS dedupe_shown (
    item_id     TEXT PRIMARY KEY,
    first_shown INTEGER NOT NULL
);

-- A source re-issued an item under a new GUID (CMS migration): the new item ID maps
-- to the item already held, so nothing is published twice.
CREATE TABLE IF NOT EXISTS item_alias (
    alias   TEXT PRIMARY KEY,
    item_id TEXT NOT NULL
);

-- What deduplication noticed that an operator should know: identity churn, retractions.
CREATE TABLE IF NOT EXISTS dedupe_events (
    at        INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL
);

-- Cross-source GUID matches (partners re-syndicating an item under its original GUID).
CREATE INDEX IF NOT EXISTS items_guid ON items(guid);

CREATE TRIGGER IF NOT EXISTS items_delete_dedupe AFTER DELETE ON items BEGIN
    DELETE FROM dedupe_band WHERE item_id = old.id;
    DELETE FROM dedupe_sig WHERE item_id = old.id;
    DELETE FROM dedupe_shown WHERE item_id = old.id;
    DELETE FROM item_alias WHERE item_id = old.id;
END;
