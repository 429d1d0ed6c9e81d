-- feedwerk PostgreSQL store, schema version 1: the tables of the parts built so far
-- (meta, sources and their reading, published outputs) and the items table whose
-- held count `sources` reports. Times are Unix seconds (BIGINT), as in the SQLite
-- store, so moving a deployment between the two copies values unchanged.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE sources (
    id                   TEXT PRIMARY KEY,
    url                  TEXT,
    etag                 TEXT,
    last_modified        TEXT,
    last_attempt         BIGINT,
    last_success         BIGINT,
    last_status          TEXT,
    last_error           TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    next_fetch           BIGINT,
    moved_to             TEXT,
    gone                 BOOLEAN NOT NULL DEFAULT false,
    fetch_count          BIGINT NOT NULL DEFAULT 0,
    window_at            BIGINT
);

CREATE TABLE source_reading (
    source_id   TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL
);

CREATE TABLE items (
    id            TEXT PRIMARY KEY,
    source_id     TEXT NOT NULL,
    guid          TEXT,
    canonical_url TEXT,
    text_hash     TEXT,
    published     BIGINT NOT NULL,
    first_seen    BIGINT NOT NULL,
    last_seen     BIGINT NOT NULL,
    published_id  TEXT NOT NULL UNIQUE,
    dup_of        TEXT,
    dup_reason    TEXT,
    withdrawn     BOOLEAN NOT NULL DEFAULT false,
    data          TEXT NOT NULL,
    language      TEXT,
    title         TEXT NOT NULL DEFAULT '',
    text          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX items_held ON items (source_id) WHERE NOT withdrawn;

CREATE TABLE outputs (
    path          TEXT PRIMARY KEY,
    content_hash  TEXT NOT NULL,
    last_modified BIGINT NOT NULL
);
