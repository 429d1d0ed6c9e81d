-- Deduplication tables. Applied on every open (all statements are idempotent), so
-- stores made before these tables existed gain them; `dedup::init` then indexes the
-- items such a store already holds.

-- One MinHash signature per item (see normalise::fingerprint), with the normalised
-- title used to find teasers and same-title copies. `n` is the small, stable integer
-- the band table refers to (an explicit INTEGER PRIMARY KEY, so VACUUM never renumbers
-- it; AUTOINCREMENT, so a deleted item's number is never handed to another).
-- `published` is the item's date (schema 4), kept beside the title key so the most
-- recent items of a title are the first entries of its key in `dedupe_sig_title_recent`
-- (`bounded::by_title_key`), read without the item rows or a sort.
CREATE TABLE IF NOT EXISTS dedupe_sig (
    n         INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id   TEXT NOT NULL UNIQUE,
    version   INTEGER NOT NULL,
    shingles  INTEGER NOT NULL,
    sig       BLOB NOT NULL,
    title_key TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
DROP INDEX IF EXISTS dedupe_sig_title;
CREATE INDEX IF NOT EXISTS dedupe_sig_title_recent ON dedupe_sig(title_key, published DESC, item_id);

-- LSH band table: one row per (band bucket, signature). Candidates for an item are the
-- items sharing at least one bucket: an index lookup, never an all-pairs scan. Two
-- integers in one WITHOUT ROWID primary key: a row is ~20 bytes and one b-tree insert,
-- where a rowid table keyed by item ID text took three b-trees and ~100 bytes a row.
-- No second index: an item's rows are deleted by key, the keys being a function of
-- its stored signature (`dedup::delete_bands`).
CREATE TABLE IF NOT EXISTS dedupe_band (
    bucket INTEGER NOT NULL,
    sig    INTEGER NOT NULL,
    PRIMARY KEY (bucket, sig)
) WITHOUT ROWID;

-- The bitmap over the band table's keys (`bandfilter`), in chunks of 4 KiB, written
-- in the transactions that write band rows; its size and the signatures it covers are
-- in `meta` (`dedupe_band_filter`). A superset of the keys: a deleted row's bit stays.
CREATE TABLE IF NOT EXISTS dedupe_band_filter (
    chunk INTEGER PRIMARY KEY,
    words BLOB NOT NULL
);

-- Signatures of items deleted whose band rows are still to be removed: the delete
-- trigger cannot compute band keys, `dedup::sweep_deleted` does, in the same
-- transaction when the store deletes and at the next open for anyone else.
CREATE TABLE IF NOT EXISTS dedupe_band_gone (
    n   INTEGER PRIMARY KEY,
    sig BLOB NOT NULL
);

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
    INSERT OR IGNORE INTO dedupe_band_gone (n, sig)
        SELECT n, sig FROM dedupe_sig WHERE item_id = old.id;
    DELETE FROM dedupe_sig WHERE item_id = old.id;
    DELETE FROM dedupe_shown WHERE item_id = old.id;
    DELETE FROM item_alias WHERE item_id = old.id;
END;
