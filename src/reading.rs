//! What a source is read with: the settings whose change makes its stored items stale.
//!
//! A partner that has not changed answers our conditional GET with `304`, and its items
//! stay as they were read. That is right while we read it the same way; once the config
//! reads it differently — its page `selectors`, `date_format`, `encoding`, `timezone`,
//! `language`, `[source.tags]`, `allow_iframe_hosts`, or the site-wide `[tags]` and
//! `language` — the items held were made under the old settings. [`fingerprint`] sums
//! those settings up; the store keeps the fingerprint each source was last read with,
//! and the refresh fetches a source whose fingerprint differs at once and without
//! validators, so the document is parsed and normalised again and what changed is
//! published. Settings that only decide *when* (`schedule`) or how items are *shown*
//! (`title`, `homepage`, `priority`) are left out: changing them re-reads nothing.

use crate::config::Config;
use crate::model::{Source, SourceKind};

/// A digest of everything that decides what `s`'s document becomes as items. The text
/// hashed is `Debug` output of our own types (selectors, zone, ordered maps): a version
/// that formats them differently re-reads each source once, which is harmless.
pub fn fingerprint(s: &Source, cfg: &Config) -> String {
    let how = match &s.kind {
        SourceKind::Local { path } => format!("local {path:?}"),
        SourceKind::Feed { .. } => "feed".to_owned(),
        SourceKind::Page {
            selectors,
            date_formats,
            ..
        } => format!("page {selectors:?} {date_formats:?}"),
    };
    let text = format!(
        "{how}\nlanguage {:?}\ntimezone {:?}\nencoding {:?}\niframes {:?}\nsource tags {:?}\ntags {:?}\nsite language {:?}",
        s.language,
        s.timezone.name(),
        s.encoding,
        s.allow_iframe_hosts,
        s.tag_map,
        cfg.tags,
        cfg.site.language,
    );
    blake3::hash(text.as_bytes()).to_hex()[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `extra_source` may replace the default selectors line.
    fn config(extra_source: &str, tail: &str) -> Config {
        let selectors = if extra_source.starts_with("selectors") {
            ""
        } else {
            "selectors = { item = \".news\", title = \"h3\" }"
        };
        let text = format!(
            r#"[site]
title = "T"
base_url = "https://example.org/"

[[source]]
id = "lpr"
kind = "page"
url = "https://lpr.example/aktuelles/"
{selectors}
{extra_source}
{tail}
"#
        );
        Config::parse(&text, std::path::Path::new("config.toml")).expect("valid config")
    }

    fn fp(extra_source: &str, tail: &str) -> String {
        let cfg = config(extra_source, tail);
        fingerprint(&cfg.sources[0], &cfg)
    }

    #[test]
    fn every_reading_setting_changes_the_fingerprint() {
        let base = fp("", "");
        for (source, tail) in [
            ("selectors = { item = \".news\", title = \"h2\" }\n", ""),
            ("date_format = \"%d.%m.%Y\"", ""),
            ("encoding = \"windows-1252\"", ""),
            ("timezone = \"Europe/London\"", ""),
            ("language = \"fr\"", ""),
            ("allow_iframe_hosts = [\"www.youtube-nocookie.com\"]", ""),
            ("[source.tags]\n\"Prävention\" = [\"Prevention\"]", ""),
            ("", "[tags]\n\"Prävention\" = [\"Prevention\"]"),
        ] {
            assert_ne!(fp(source, tail), base, "{source}{tail}");
        }
    }

    #[test]
    fn schedule_title_and_priority_do_not_change_it() {
        let base = fp("", "");
        for source in [
            "schedule = \"0 0 * * *\"",
            "title = \"Landespräventionsrat\"",
            "priority = 70",
        ] {
            assert_eq!(fp(source, ""), base, "{source}");
        }
    }
}
