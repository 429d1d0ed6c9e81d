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
