//! What the commands print: build reports, the dry-run preview, source health, duplicate
//! clusters and the store check. Part of the binary, not the library: the library hands
//! back reports and states, and this module alone decides how a person reads them.

use chrono::{DateTime, Utc};
use feedwerk::model::SourceKind;
use feedwerk::model::{SourceReport, SourceStatus};
use feedwerk::publish::Preview;

pub fn dupes_jsonl(store: &dyn feedwerk::store::Backend) -> anyhow::Result<()> {
    use std::io::Write as _;
    let held = store.all_items()?;
    let keys: std::collections::HashMap<String, String> = held
        .iter()
        .map(|(it, _, _)| (it.id.0.clone(), feedwerk::store::item_key(it)))
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (it, dup_of, _) in &held {
        let line = serde_json::json!({
            "key": feedwerk::store::item_key(it),
            "dup_of": dup_of.as_ref().and_then(|d| keys.get(d)),
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

pub fn dupes_text(store: &dyn feedwerk::store::Backend) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let clusters = store.clusters()?;
    let merged: usize = clusters.iter().map(|c| c.members.len()).sum();
    writeln!(
        out,
        "{} clusters, {} copies merged into them",
        clusters.len(),
        merged
    )?;
    for c in &clusters {
        let state = match (c.withdrawn, c.shown) {
            (true, _) => " [withdrawn]",
            (false, true) => "",
            (false, false) => " [not yet published]",
        };
        writeln!(
            out,
            "\n{} {} \"{}\"{state}\n  shown as {}",
            c.rep.published.format("%Y-%m-%d"),
            c.rep.source,
            c.rep.title,
            c.published_id
        )?;
        if let Some(u) = &c.rep.url {
            writeln!(out, "  {u}")?;
        }
        for (m, why) in &c.members {
            writeln!(
                out,
                "  + {} \"{}\" ({}){}",
                m.source,
                m.title,
                why,
                m.url.as_ref().map(|u| format!(" {u}")).unwrap_or_default()
            )?;
        }
    }
    let events = store.dedupe_events(20)?;
    if !events.is_empty() {
        writeln!(out, "\nrecent events:")?;
        for e in events {
            let (at, source, kind, detail) = (e.at, e.source, e.kind, e.detail);
            writeln!(
                out,
                "  {} {source} {kind}: {detail}",
                at.format("%Y-%m-%d %H:%M UTC")
            )?;
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(())
}

/// One `sources` line with its health, then its last error, 410 or move.
pub fn print_source_health(
    s: &feedwerk::model::Source,
    st: &feedwerk::model::SourceState,
    now: DateTime<Utc>,
) {
    let fmt = |d: Option<DateTime<Utc>>, none: &str| {
        d.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| none.to_owned())
    };
    let url = s
        .kind
        .url()
        .map(|u| u.to_string())
        .or_else(|| match &s.kind {
            SourceKind::Local { path } => Some(path.display().to_string()),
            _ => None,
        })
        .unwrap_or_default();
    let same_url = st.url.as_deref() == s.kind.url().map(|u| u.as_str());
    let gone = st.gone && same_url;
    let next = if gone {
        "never (gone)".to_owned()
    } else if st.next_fetch.is_none_or(|n| n <= now) {
        "now".to_owned()
    } else {
        fmt(st.next_fetch, "now")
    };
    println!(
        "{:<12} {:<5} {:<20} {:<18} {:>5} {:>6} {:<20}  {}",
        s.id.as_str(),
        s.kind.name(),
        fmt(st.last_success, "never"),
        st.last_status.as_deref().unwrap_or("-"),
        st.consecutive_failures,
        st.items_held,
        next,
        url
    );
    if st.consecutive_failures > 0 {
        if let Some(e) = &st.last_error {
            println!(
                "{:<12}   last error ({}): {e}",
                "",
                fmt(st.last_attempt, "?")
            );
        }
    }
    if gone {
        println!(
            "{:<12}   gone (HTTP 410): polling stopped; change the URL in the config to poll again",
            ""
        );
    }
    if let Some(m) = st.moved_to.as_ref().filter(|_| same_url) {
        println!("{:<12}   moved permanently to {m}; update the config", "");
    }
}

pub fn print_reports(reports: &[SourceReport]) {
    for r in reports {
        let status = match &r.status {
            SourceStatus::Updated {
                items,
                new,
                changed,
            } => format!("ok: {items} items ({new} new, {changed} changed)"),
            SourceStatus::NotModified => "not modified".to_owned(),
            SourceStatus::Skipped(why) => format!("skipped: {why}"),
            SourceStatus::Failed(e) => format!("FAILED: {e}"),
        };
        println!("{:<12} {status}", r.id.as_str());
        for p in &r.problems {
            println!("{:<12}   problem: {p}", "");
        }
        if let Some(m) = &r.moved_to {
            println!("{:<12}   moved permanently to {m}; update the config", "");
        }
    }
}

pub fn print_preview(p: &Preview) {
    println!("dry run: nothing was written. The next publish would");
    let list = |verb: &str, sign: char, items: &[feedwerk::store::StoredItem]| {
        println!("  {verb:<9} {} items", items.len());
        for s in items {
            println!(
                "    {sign} [{}] {}  ({})",
                s.item.source.as_str(),
                s.item.title,
                s.item.published.format("%Y-%m-%d")
            );
        }
    };
    list("add", '+', &p.added);
    list("change", '~', &p.changed);
    list("withdraw", '-', &p.withdrawn);
    println!(
        "  rewrite   {} of {} outputs{}",
        p.rewrite.len(),
        p.documents,
        if p.rewrite.is_empty() {
            String::new()
        } else {
            format!(": {}", p.rewrite.join(", "))
        }
    );
}

/// `check`'s store line, for the SQLite file or the PostgreSQL database. Returns the
/// error count.
pub fn check_store(store: &feedwerk::config::StoreConfig) -> usize {
    use feedwerk::config::StoreLocation;
    match &store.location {
        StoreLocation::Sqlite(path) => check_sqlite_store(path),
        StoreLocation::Postgres(url) => check_pg_store(url, store.ca_file.as_deref()),
    }
}

/// `check` on PostgreSQL: connects, reads the schema version and the items held,
/// writes nothing (see `store::postgres::inspect`). An unreachable server is an error
/// naming its URL without the password.
fn check_pg_store(url: &feedwerk::db_url::DbUrl, ca_file: Option<&std::path::Path>) -> usize {
    use feedwerk::store::StoreError;
    match feedwerk::store::postgres::inspect(url, ca_file) {
        Ok(i) if i.version == 0 => {
            println!(
                "store {url}: reachable, no feedwerk store yet (the first build or run creates it)"
            );
            0
        }
        Ok(i) if i.version > i.known => {
            println!(
                "store {url}: schema version {}, newer than this feedwerk knows ({}): upgrade feedwerk",
                i.version, i.known
            );
            1
        }
        Ok(i) => {
            let next = if i.version < i.known {
                format!(" (the next build or run migrates it to {})", i.known)
            } else {
                String::new()
            };
            println!(
                "store {url}: ok, PostgreSQL schema version {}{next}, {} items held",
                i.version,
                i.items.unwrap_or(0)
            );
            0
        }
        Err(StoreError::PgServer { error, .. }) => {
            println!("store {url}: cannot be used: {error}");
            1
        }
        Err(e) => {
            println!("store {url}: cannot be used: {e}");
            1
        }
    }
}

/// `check`'s SQLite line: `PRAGMA integrity_check` on a read-only copy (the file and its
/// neighbours stay untouched, so it is safe while the daemon runs). Returns the error count.
fn check_sqlite_store(path: &std::path::Path) -> usize {
    if !path.exists() {
        println!(
            "store {}: not created yet (the first build or run creates it)",
            path.display()
        );
        return 0;
    }
    let verdict = feedwerk::store::Store::snapshot(path, "check")
        .and_then(|s| Ok((s.integrity_check()?, s.all_items()?.len())));
    match verdict {
        Ok((ok, items)) if ok == "ok" => {
            println!("store {}: ok, {items} items held", path.display());
            0
        }
        Ok((problem, _)) => {
            println!("store {}: DAMAGED: {problem}", path.display());
            1
        }
        Err(e) => {
            println!("store {}: cannot be read: {e}", path.display());
            1
        }
    }
}

/// `build`'s upload lines: what went to `publish.target`, and why not when it did not.
pub fn print_upload(r: &feedwerk::upload::UploadReport) {
    use feedwerk::upload::Outcome;
    let t = &r.target;
    match &r.outcome {
        Outcome::Paused(at) => {
            println!(
                "upload to {t}: paused after failures until {} (`build --force` retries now)",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            return;
        }
        Outcome::Failed { error, retry_at } => println!(
            "UPLOAD FAILED to {t}: {error}; {} uploaded before it, nothing deleted; the bucket keeps serving the objects not replaced; retried after {}",
            r.uploaded.len(),
            retry_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        Outcome::Done => println!(
            "uploaded {} objects to {t} ({} already there, {} unchanged, {} deleted)",
            r.uploaded.len(),
            r.verified.len(),
            r.unchanged,
            r.deleted.len()
        ),
    }
    if r.held_deletes > 0 {
        println!(
            "NOT DELETED from {t}: {} objects no longer published, more than publish.max_deletes; raise it if this is meant",
            r.held_deletes
        );
    }
}

/// `build --dry-run`'s lines for `publish.target`.
pub fn print_upload_plan(d: &feedwerk::upload::DryRun) {
    println!("  upload    {} objects to {}", d.uploads.len(), d.target);
    for p in &d.uploads {
        println!("    ^ {p}");
    }
    let held = if d.deletes_held {
        format!(
            " (held back: more than publish.max_deletes = {})",
            d.max_deletes
        )
    } else {
        String::new()
    };
    println!("  delete    {} objects{held}", d.deletes.len());
    for p in &d.deletes {
        println!("    x {p}");
    }
}

/// `sources`' line for `publish.target`: how the last upload went.
pub fn print_upload_state(target: &str, st: &feedwerk::store::RemoteState, now: DateTime<Utc>) {
    let fmt = |d: DateTime<Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
    let last = st.last_success.map(fmt).unwrap_or_else(|| "never".into());
    let status = if st.consecutive_failures > 0 {
        "FAILING"
    } else if st.last_success.is_some() {
        "ok"
    } else {
        "-"
    };
    let next = match st.next_attempt {
        Some(at) if at > now => fmt(at),
        _ => "next cycle".into(),
    };
    println!(
        "\n{:<12} {:<5} {:<20} {:<18} {:>5} {:>6} {:<20}  {target}",
        "(upload)", "s3", last, status, st.consecutive_failures, st.objects, next
    );
    if st.consecutive_failures > 0 {
        if let (Some(e), Some(at)) = (&st.last_error, st.last_attempt) {
            println!("{:<12}   last error ({}): {e}", "", fmt(at));
        }
    }
    if st.held_deletes > 0 {
        println!(
            "{:<12}   {} deletes held back by publish.max_deletes",
            "", st.held_deletes
        );
    }
}
