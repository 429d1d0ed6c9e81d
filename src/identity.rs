//! The IDs readers see: the one rule that turns an item into its published `tag:` URI.
//!
//! A published ID is `tag:<host>,<date>:<source>/<key>` (RFC 4151): `<host>` is the
//! host of `site.base_url`, `<date>` is `site.id_date` (a fixed date from the config,
//! default [`DEFAULT_ID_DATE`]), `<source>` the source's id and `<key>` the item's key
//! within its source (a local post's file name, a partner item's GUID or link, a page
//! item's link or title and date). Nothing in it comes from the store or the clock, so
//! the same config and the same inputs give the same IDs on any day and from an empty
//! store: a lost `state/` directory, a move to a new server or a restore from an old
//! backup does not show subscribers the whole feed again as new.
//!
//! Older versions put the day an item was first seen where the date is. An ID, once
//! minted, is stored with its item and never minted again (`store` keeps it in
//! `items.published_id`), so items held by a store from those versions keep the IDs
//! readers already have; only items stored from now on get IDs by this rule. This
//! module owns the rule; when to mint (first sight) is the store's business.

use chrono::NaiveDate;

use crate::model::{ItemId, SourceId};

/// `site.id_date` when the config names none. Any fixed date makes IDs reproducible;
/// RFC 4151 asks for a day on which the site owned its domain, which only the operator
/// knows, so the config can say so.
pub const DEFAULT_ID_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => panic!("a valid date"),
};

/// The RFC 4151 tagging entity, `<host>,<date>`: what every published ID starts with.
pub fn tagging_entity(host: &str, id_date: NaiveDate) -> String {
    format!("{host},{}", id_date.format("%Y-%m-%d"))
}

/// The published ID of item `id` of `source` under `entity` (see [`tagging_entity`]).
/// An item ID is `<source>:<key>`; an ID without that shape is used whole as the key.
pub fn published_id(entity: &str, source: &SourceId, id: &ItemId) -> String {
    let key = id.0.split_once(':').map(|(_, k)| k).unwrap_or(&id.0);
    format!("tag:{entity}:{}/{key}", source.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_id_is_the_host_the_configured_date_the_source_and_the_key() {
        let entity = tagging_entity("www.defus.de", NaiveDate::from_ymd_opt(2017, 1, 1).unwrap());
        assert_eq!(
            published_id(
                &entity,
                &SourceId("defus".into()),
                &ItemId("defus:2017-10-09-mitgliederversammlung".into())
            ),
            "tag:www.defus.de,2017-01-01:defus/2017-10-09-mitgliederversammlung"
        );
    }

    #[test]
    fn an_item_id_without_a_source_prefix_is_the_whole_key() {
        let entity = tagging_entity("x.example", DEFAULT_ID_DATE);
        assert_eq!(
            published_id(&entity, &SourceId("a".into()), &ItemId("plain".into())),
            "tag:x.example,2000-01-01:a/plain"
        );
    }

    /// Keys may hold colons (a GUID that is itself a URN): only the source prefix goes.
    #[test]
    fn only_the_first_colon_separates_source_and_key() {
        let entity = tagging_entity("x.example", DEFAULT_ID_DATE);
        assert_eq!(
            published_id(
                &entity,
                &SourceId("a".into()),
                &ItemId("a:urn:uuid:1".into())
            ),
            "tag:x.example,2000-01-01:a/urn:uuid:1"
        );
    }
}
