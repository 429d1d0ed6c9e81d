//! Which channels are published, and what their kind decides: the combined channel,
//! one per source, tag and language (as `[publish]` asks), and the `[[channel]]`s the
//! config defines. The kind ([`ChannelKind`]) is set here when a channel is planned
//! and read from there on; nothing reads it back from the channel's path.

use std::collections::{BTreeMap, HashSet};

use super::compress::Reach;
use crate::config::{Archives, Config};
use crate::model::{Channel, ChannelFilter, ChannelKind};
use crate::store::{Backend, StoreError};

/// The directories whose channels come and go with the data or the config; files of a
/// channel no longer published are removed from them after each publish.
pub(super) const GENERATED_CHANNEL_DIRS: [&str; 4] = ["sources", "tags", "lang", "channels"];

/// Every channel to publish: combined, per source, per tag, per language, and the
/// ones the config defines, in that order (the combined channel first).
pub fn plan(cfg: &Config, store: &dyn Backend) -> Result<Vec<Channel>, StoreError> {
    let max = cfg.publish.max_items;
    let mut out = vec![Channel {
        kind: ChannelKind::Combined,
        stem: String::new(),
        title: cfg.site.title.clone(),
        filter: ChannelFilter::default(),
        max_items: max,
    }];
    if cfg.publish.per_source {
        for s in &cfg.sources {
            out.push(Channel {
                kind: ChannelKind::Source,
                stem: format!("sources/{}", s.id),
                title: format!("{} – {}", cfg.site.title, s.title),
                filter: ChannelFilter {
                    sources: vec![s.id.clone()],
                    ..ChannelFilter::default()
                },
                max_items: max,
            });
        }
    }
    if cfg.publish.per_tag {
        out.extend(tag_channels(cfg, store)?);
    }
    if cfg.publish.per_language {
        for lang in store.visible_languages()? {
            out.push(Channel {
                kind: ChannelKind::Language,
                stem: format!("lang/{}", lang.to_lowercase()),
                title: format!("{} – {lang}", cfg.site.title),
                filter: ChannelFilter {
                    languages: vec![lang],
                    ..ChannelFilter::default()
                },
                max_items: max,
            });
        }
    }
    out.extend(cfg.channels.iter().cloned());
    Ok(out)
}

/// Tags that differ only in case or accents share one URL (and one channel). A tag gets
/// a channel when it is named in `[tags]` or carried by at least `tag_min_items` items
/// (counted per spelling, so an item carrying two spellings of one tag counts twice;
/// that only errs towards publishing).
fn tag_channels(cfg: &Config, store: &dyn Backend) -> Result<Vec<Channel>, StoreError> {
    let named: HashSet<String> = cfg.tags.values().map(slug::slugify).collect();
    let mut by_slug: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    for (tag, n) in store.visible_tag_counts()? {
        let slug = slug::slugify(&tag);
        if !slug.is_empty() {
            let entry = by_slug.entry(slug).or_default();
            entry.0.push(tag);
            entry.1 += n;
        }
    }
    let mut out = Vec::new();
    for (slug, (tags, n)) in by_slug {
        if n < cfg.publish.tag_min_items && !named.contains(&slug) {
            continue;
        }
        out.push(Channel {
            kind: ChannelKind::Tag,
            stem: format!("tags/{slug}"),
            title: format!("{} – {}", cfg.site.title, tags[0]),
            filter: ChannelFilter {
                tags,
                ..ChannelFilter::default()
            },
            max_items: cfg.publish.max_items,
        });
    }
    Ok(out)
}

/// How widely a channel's subscription documents are read (see [`Reach`]): the combined
/// channel and the `[[channel]]`s the site defines are its front door; the generated
/// per-source, per-tag and per-language channels are many, each with few readers.
pub(super) fn reach(ch: &Channel) -> Reach {
    match ch.kind {
        ChannelKind::Combined | ChannelKind::Defined => Reach::Wide,
        ChannelKind::Source | ChannelKind::Tag | ChannelKind::Language => Reach::Narrow,
    }
}

/// Whether `ch` has RFC 5005 archive pages under `publish.archives`.
pub(super) fn keeps_archive(archives: Archives, ch: &Channel) -> bool {
    match archives {
        Archives::All => true,
        Archives::None => false,
        Archives::Combined => matches!(ch.kind, ChannelKind::Combined | ChannelKind::Defined),
    }
}
