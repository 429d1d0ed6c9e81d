//! The `feedwerk` command line. Thin: parses arguments, sets up logging, and calls the
//! library. `anyhow` lives here and nowhere else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};
use feedwerk::config::Config;
use feedwerk::pipeline::{Pipeline, SourceStatus};

/// RSS/Atom feed publisher and aggregator: local Markdown posts and partner feeds,
/// normalised, deduplicated and republished as RSS, Atom and JSON Feed.
#[derive(Parser)]
#[command(name = "feedwerk", version, about, long_about = None)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config.toml",
        env = "FEEDWERK_CONFIG"
    )]
    config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Refresh every source once, publish, and exit (non-zero only if nothing could be published).
    Build,
    /// Run the daemon: refresh and publish on the schedule, serve the outputs over HTTP.
    Run,
    /// Validate the configuration and the local posts; exit 1 on any error.
    Check,
    /// Show every source's health: kind, URL, last success, status, failures, items held.
    Sources,
    /// List the duplicate clusters held: the copy shown, the copies merged into it and
    /// why they matched (exact URL, same text, text similarity with its score).
    Dupes {
        /// One JSON line per item held: {"key": "<source>|<GUID or link>", "dup_of": "<key>" | null}.
        #[arg(long)]
        jsonl: bool,
    },
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FEEDWERK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: in journald, files and pipes they
    // are noise that breaks grep.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        // journald stamps each line itself; a second timestamp is noise.
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            builder.without_time().init()
        }
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("feedwerk: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Duplicates among one local source's posts, by file name.
fn local_duplicates(
    cfg: &Config,
    s: &feedwerk::model::Source,
    posts: Vec<feedwerk::source::local::Post>,
) -> anyhow::Result<Vec<feedwerk::dedupe::LocalDuplicate>> {
    let now = Utc::now();
    let ctx = feedwerk::normalise::Context {
        source: s,
        feed_link: None,
        feed_language: s.language.as_deref(),
        tag_map: &cfg.tags,
        now,
        back_catalogue: None,
    };
    let items = posts
        .into_iter()
        .filter(|p| !p.draft)
        .filter_map(|p| {
            let name = p
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.slug.clone());
            feedwerk::normalise::normalise(&p.entry, &ctx)
                .ok()
                .map(|i| (name, i))
        })
        .collect();
    let deduper = feedwerk::dedupe::Deduper::new(
        cfg.dedupe.clone(),
        cfg.sources
            .iter()
            .map(|s| (s.id.clone(), s.priority))
            .collect(),
    );
    Ok(deduper.local_duplicates(&s.id, items, now)?)
}

fn dupes_jsonl(store: &feedwerk::store::Store) -> anyhow::Result<()> {
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

fn dupes_text(store: &feedwerk::store::Store) -> anyhow::Result<()> {
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build => {
            let cfg = load(&cli.config)?;
            let pipeline = Pipeline::open(cfg)?;
            let now = Utc::now();
            let reports = runtime()?.block_on(pipeline.refresh(now));
            for r in &reports {
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
            match pipeline.publish(now) {
                Ok((catalog, rep)) => {
                    println!(
                        "published {} documents to {} ({} written, {} unchanged)",
                        catalog.len(),
                        pipeline.output_dir().display(),
                        rep.written.len(),
                        rep.unchanged
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("feedwerk: nothing published: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Run => {
            let cfg = load(&cli.config)?;
            runtime()?.block_on(feedwerk::daemon::run(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let cfg = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            println!(
                "config {}: ok, {} sources",
                cli.config.display(),
                cfg.sources.len()
            );
            let mut errors = 0;
            for s in &cfg.sources {
                match &s.kind {
                    feedwerk::model::SourceKind::Local { path } => {
                        let (posts, errs) = feedwerk::source::local::read_dir(
                            path,
                            s.id.as_str(),
                            &cfg.site.base_url,
                            s.timezone,
                        );
                        let drafts = posts.iter().filter(|p| p.draft).count();
                        println!(
                            "{:<12} local  {}: {} posts ({} drafts), {} errors",
                            s.id.as_str(),
                            path.display(),
                            posts.len(),
                            drafts,
                            errs.len()
                        );
                        for e in errs {
                            println!("  error: {e}");
                            errors += 1;
                        }
                        for d in local_duplicates(&cfg, s, posts)? {
                            println!(
                                "  duplicate: {} repeats {} ({}); only {} is published",
                                d.duplicate, d.kept, d.reason, d.kept
                            );
                        }
                    }
                    k => println!(
                        "{:<12} {:<6} {}",
                        s.id.as_str(),
                        k.name(),
                        k.url().map(|u| u.as_str()).unwrap_or("")
                    ),
                }
            }
            Ok(if errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Dupes { jsonl } => {
            let cfg = load(&cli.config)?;
            let pipeline = Pipeline::open(cfg)?;
            let store = pipeline.store();
            if jsonl {
                dupes_jsonl(&store)?;
            } else {
                dupes_text(&store)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sources => {
            let cfg = load(&cli.config)?;
            let pipeline = Pipeline::open(cfg)?;
            let store = pipeline.store();
            println!(
                "{:<12} {:<6} {:<20} {:<20} {:>5} {:>6}  URL / last error",
                "SOURCE", "KIND", "LAST SUCCESS", "LAST STATUS", "FAILS", "ITEMS"
            );
            for s in &pipeline.cfg.sources {
                let st = store.source_state(&s.id)?;
                let when = st
                    .last_success
                    .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "never".into());
                let url = s.kind.url().map(|u| u.to_string()).unwrap_or_default();
                println!(
                    "{:<12} {:<6} {:<20} {:<20} {:>5} {:>6}  {}",
                    s.id.as_str(),
                    s.kind.name(),
                    when,
                    st.last_status.as_deref().unwrap_or("-"),
                    st.consecutive_failures,
                    st.items_held,
                    url
                );
                if let Some(e) = &st.last_error {
                    println!("{:<12}   last error: {e}", "");
                }
                if let Some(m) = &st.moved_to {
                    println!("{:<12}   moved permanently to {m}; update the config", "");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
