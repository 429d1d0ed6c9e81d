//! The queued writes of an upsert (insert, change, restyle, seen) and how they are
//! sent: used by the upsert (`items`) and by the lookups (`dedup`), which flush the
//! queue before reading, so neither module needs the other for it.

use std::cell::RefCell;

use deadpool_postgres::ClientWrapper;

use super::index_rows::IndexRows;
use super::pipeline::Pipeline;
use crate::model::Item;
use crate::store::{ts, StoreError};

/// One queued write of an upsert, with everything it needs owned (it runs on the
/// store's runtime).
pub(super) enum Write {
    /// Known items listed again unchanged: one statement for a run of them.
    Seen { ids: Vec<String>, at: i64 },
    /// A known item stored again in this version's form, not a change.
    Restyled { id: String, at: i64, data: String },
    /// A known item that changed: its row, tags and deduplication rows are rewritten.
    Changed(Box<Row>),
    /// A new item, with what deduplication decided for it.
    Inserted(Box<Row>, Option<Supersede>),
    /// The source's current window was stored at `at`.
    Window { source: String, at: i64 },
}

/// A new representative displaces the held one, `rep`, and takes its copies.
pub(super) struct Supersede {
    pub(super) rep: String,
    pub(super) reason: String,
}

/// An item's row as an upsert writes it.
pub(super) struct Row {
    pub(super) id: String,
    pub(super) source: String,
    pub(super) guid: Option<String>,
    pub(super) canonical_url: Option<String>,
    pub(super) text_hash: String,
    pub(super) published: i64,
    pub(super) now: i64,
    pub(super) published_id: String,
    pub(super) dup_of: Option<String>,
    pub(super) dup_reason: Option<String>,
    pub(super) data: String,
    pub(super) language: Option<String>,
    pub(super) title: String,
    pub(super) text: String,
    pub(super) tags: Vec<String>,
    pub(super) index: IndexRows,
}

impl Row {
    pub(super) fn of(item: &Item, data: String, now: i64) -> Row {
        Row {
            id: item.id.0.clone(),
            source: item.source.to_string(),
            guid: item.guid.clone(),
            canonical_url: item.canonical_url.clone(),
            text_hash: item.fingerprint.text_hash.clone(),
            published: ts(item.published),
            now,
            published_id: String::new(),
            dup_of: None,
            dup_reason: None,
            data,
            language: item.language.clone(),
            title: item.title.clone(),
            text: item.text.clone(),
            tags: item.tags.clone(),
            index: IndexRows::of(item),
        }
    }
}

/// Adds `w` to the queue, folding a run of unchanged items into one write.
pub(super) fn queue(q: &RefCell<Vec<Write>>, w: Write) {
    let mut q = q.borrow_mut();
    if let (
        Some(Write::Seen { ids, at }),
        Write::Seen {
            ids: more,
            at: when,
        },
    ) = (q.last_mut(), &w)
    {
        if at == when {
            ids.extend(more.iter().cloned());
            return;
        }
    }
    q.push(w);
}

/// Runs queued writes in order, on the connection (and transaction) of the call, as
/// one pipeline of statements.
pub(super) async fn flush(c: &ClientWrapper, writes: Vec<Write>) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut p = Pipeline::default();
    for w in writes {
        match w {
            Write::Seen { ids, at } => {
                p.push(
                    c,
                    "UPDATE items SET last_seen = $2, withdrawn = false WHERE id = ANY($1)",
                    vec![Box::new(ids), Box::new(at)],
                )
                .await?;
            }
            Write::Restyled { id, at, data } => {
                p.push(
                    c,
                    "UPDATE items SET data = $3, last_seen = $2, withdrawn = false WHERE id = $1",
                    vec![Box::new(id), Box::new(at), Box::new(data)],
                )
                .await?;
            }
            Write::Changed(row) => {
                let Row {
                    id,
                    guid,
                    canonical_url,
                    text_hash,
                    published,
                    now,
                    data,
                    language,
                    title,
                    text,
                    tags,
                    index,
                    ..
                } = *row;
                p.push(
                    c,
                    "UPDATE items SET data = $2, guid = $3, canonical_url = $4, text_hash = $5,
                         published = $6, last_seen = $7, withdrawn = false, language = $8,
                         title = $9, text = $10
                     WHERE id = $1",
                    vec![
                        Box::new(id.clone()),
                        Box::new(data),
                        Box::new(guid),
                        Box::new(canonical_url),
                        Box::new(text_hash),
                        Box::new(published),
                        Box::new(now),
                        Box::new(language),
                        Box::new(title),
                        Box::new(text),
                    ],
                )
                .await?;
                index_tags(c, &mut p, &id, tags, false).await?;
                index.write(c, &mut p, false).await?;
            }
            Write::Inserted(row, supersede) => push_insert(c, &mut p, *row, supersede).await?,
            Write::Window { source, at } => {
                p.push(
                    c,
                    "INSERT INTO sources (id, window_at) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET window_at = EXCLUDED.window_at",
                    vec![Box::new(source), Box::new(at)],
                )
                .await?;
            }
        }
    }
    p.run(c).await
}

/// Adds the statements storing a new item (and, if it supersedes a representative,
/// handing it that cluster) to `p`.
async fn push_insert(
    c: &ClientWrapper,
    p: &mut Pipeline,
    row: Row,
    supersede: Option<Supersede>,
) -> Result<(), StoreError> {
    let Row {
        id,
        source,
        guid,
        canonical_url,
        text_hash,
        published,
        now,
        published_id,
        dup_of,
        dup_reason,
        data,
        language,
        title,
        text,
        tags,
        index,
    } = row;
    p.push(
        c,
        "INSERT INTO items (id, source_id, guid, canonical_url, text_hash, published,
             first_seen, last_seen, published_id, dup_of, dup_reason, data,
             language, title, text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14)",
        vec![
            Box::new(id.clone()),
            Box::new(source),
            Box::new(guid),
            Box::new(canonical_url),
            Box::new(text_hash),
            Box::new(published),
            Box::new(now),
            Box::new(published_id),
            Box::new(dup_of),
            Box::new(dup_reason),
            Box::new(data),
            Box::new(language),
            Box::new(title),
            Box::new(text),
        ],
    )
    .await?;
    index_tags(c, p, &id, tags, true).await?;
    if let Some(Supersede { rep, reason }) = supersede {
        p.push(
            c,
            "UPDATE items SET dup_of = $2 WHERE dup_of = $1",
            vec![Box::new(rep.clone()), Box::new(id.clone())],
        )
        .await?;
        p.push(
            c,
            "UPDATE items SET dup_of = $2, dup_reason = $3 WHERE id = $1",
            vec![Box::new(rep), Box::new(id.clone()), Box::new(reason)],
        )
        .await?;
    }
    index.write(c, p, true).await?;
    Ok(())
}

/// Replaces the rows of an item's tags, in the item's order. `fresh`: just inserted.
async fn index_tags(
    c: &ClientWrapper,
    p: &mut Pipeline,
    id: &str,
    tags: Vec<String>,
    fresh: bool,
) -> Result<(), StoreError> {
    if !fresh {
        p.push(
            c,
            "DELETE FROM item_tags WHERE item_id = $1",
            vec![Box::new(id.to_owned())],
        )
        .await?;
    }
    if tags.is_empty() {
        return Ok(());
    }
    p.push(
        c,
        "INSERT INTO item_tags (item_id, tag)
         SELECT $1, t FROM unnest($2::text[]) WITH ORDINALITY AS u(t, o) ORDER BY o
         ON CONFLICT DO NOTHING",
        vec![Box::new(id.to_owned()), Box::new(tags)],
    )
    .await
}
