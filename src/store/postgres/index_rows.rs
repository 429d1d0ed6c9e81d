//! The deduplication rows of one stored item (signature, band keys, title parts) and
//! the statements that write them: shared by the upsert (`items`) and the lookups that
//! flush queued writes (`dedup`), so neither needs the other for it.

use deadpool_postgres::ClientWrapper;

use super::pipeline::Pipeline;
use super::Param;
use crate::model::Item;
use crate::normalise::fingerprint;
use crate::store::StoreError;
/// The deduplication rows of one item: its signature, its band keys (none unless the
/// signature has every band, as in SQLite), and the parts of its title.
pub(super) struct IndexRows {
    item_id: String,
    version: i64,
    shingles: i64,
    sig: Vec<u8>,
    title_key: String,
    bands: Vec<i64>,
    parts: Vec<String>,
}

impl IndexRows {
    pub(super) fn of(item: &Item) -> IndexRows {
        let fp = &item.fingerprint;
        let bands = fingerprint::band_keys(&fp.minhash);
        IndexRows {
            item_id: item.id.0.clone(),
            version: i64::from(fp.version),
            shingles: i64::from(fp.shingles),
            sig: fingerprint::to_blob(&fp.minhash),
            title_key: fingerprint::title_key(&item.title),
            bands: if bands.len() == fingerprint::BANDS {
                bands
            } else {
                Vec::new()
            },
            parts: fingerprint::title_parts(&item.title),
        }
    }

    /// Adds the statements writing the rows to `p`; `fresh`: the item has just been
    /// inserted and has none to replace. A re-indexed signature gets a new number (its
    /// old band rows go with the old one), so the newest members of a bucket are the
    /// most recently indexed, as in SQLite.
    pub(super) async fn write(
        self,
        c: &ClientWrapper,
        p: &mut Pipeline,
        fresh: bool,
    ) -> Result<(), StoreError> {
        if !fresh {
            let id = || -> Vec<Param> { vec![Box::new(self.item_id.clone())] };
            p.push(c, "DELETE FROM dedupe_sig WHERE item_id = $1", id())
                .await?;
            p.push(c, "DELETE FROM dedupe_title_part WHERE item_id = $1", id())
                .await?;
        }
        if !self.parts.is_empty() {
            p.push(
                c,
                "INSERT INTO dedupe_title_part (part, item_id)
                 SELECT part, $2 FROM unnest($1::text[]) part ON CONFLICT DO NOTHING",
                vec![Box::new(self.parts), Box::new(self.item_id.clone())],
            )
            .await?;
        }
        // The signature and its band rows in one statement (a data-modifying CTE runs
        // whether or not the outer insert has rows).
        p.push(
            c,
            "WITH s AS (
                 INSERT INTO dedupe_sig (item_id, version, shingles, sig, title_key)
                 VALUES ($1, $2, $3, $4, $5) RETURNING n)
             INSERT INTO dedupe_band (bucket, sig)
             SELECT k, s.n FROM s, unnest($6::bigint[]) k ON CONFLICT DO NOTHING",
            vec![
                Box::new(self.item_id),
                Box::new(self.version),
                Box::new(self.shingles),
                Box::new(self.sig),
                Box::new(self.title_key),
                Box::new(self.bands),
            ],
        )
        .await
    }
}
