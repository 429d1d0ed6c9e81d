//! The `feedwerk` command line. Thin: parses arguments, sets up logging, and calls the
//! library, one small function per command (`run` only dispatches); `output` prints
//! what they get back. `anyhow` lives in the binary and nowhere else.

// No function longer than `clippy.toml`'s `too-many-lines-threshold` (120): a long
// function is a stage doing its neighbours' work (issue 15). `.ci/run` denies warnings.
#![warn(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use feedwerk::config::Config;
use feedwerk::model::SourceKind;
use feedwerk::pipeline::{Pipeline, RefreshMode};
use feedwerk::upload::Retry;

mod output;
use output::{
    check_store, dupes_jsonl, dupes_text, print_preview, print_reports, print_source_health,
};

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

// Parsed once per process; boxing the larger variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Refresh the sources once, publish what changed, and exit (non-zero only if nothing
    /// could be published).
    ///
    /// By default every source is fetched except one a partner or our back-off has paused
    /// (after failures, or a 429/503 with Retry-After) and one gone with HTTP 410.
    Build {
        /// Show what the next publish would add, change and withdraw, writing nothing:
        /// partners are fetched, but the store and the outputs stay untouched.
        #[arg(long)]
        dry_run: bool,
        /// Fetch every source now, ignoring back-off and Retry-After pauses (a source gone
        /// with 410 still waits until its URL changes in the config).
        #[arg(long, conflicts_with = "due_only")]
        force: bool,
        /// Fetch only sources whose scheduled time has come (for running `build` from a
        /// cron job or systemd timer instead of the daemon).
        #[arg(long)]
        due_only: bool,
    },
    /// Run the daemon: refresh and publish on the schedule, serve the outputs over HTTP.
    Run,
    /// Validate the configuration and the local posts; exit 1 on any error.
    Check,
    /// Show every source's health: kind, URL, last success, last status, consecutive
    /// failures, items held, next fetch; with the last error, permanent moves and 410s.
    Sources,
    /// List the duplicate clusters held: the copy shown, the copies merged into it and
    /// why they matched (exact URL, same text, text similarity with its score).
    Dupes {
        /// One JSON line per item held: {"key": "<source>|<GUID or link>", "dup_of": "<key>" | null}.
        #[arg(long)]
        jsonl: bool,
    },
    /// Write local posts (`YYYY-MM-DD-slug.md` with TOML front matter) from a feed, a
    /// news page or a plain-text listing, or from what a configured source provides.
    /// Never overwrites: posts already in DIR (same file name, or same date and title)
    /// are left alone, so running it twice writes nothing new.
    #[command(after_help = IMPORT_EXAMPLES)]
    Import {
        /// An http(s) URL or a file: a feed (RSS, Atom, JSON Feed), an HTML page (with
        /// --selectors), or a text listing (a `DD.MM.YYYY` line, a title line, paragraphs).
        #[arg(long, value_name = "URL|FILE", required_unless_present = "source")]
        from: Option<String>,
        /// A configured feed or page source (by id) instead of --from.
        #[arg(long, value_name = "ID", conflicts_with_all = ["from", "selectors", "date_format"])]
        source: Option<String>,
        /// The directory to write posts into, e.g. feeds/defus.
        #[arg(long, value_name = "DIR")]
        into: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
        /// Keep each item's original URL as its `link` (the post points there instead of
        /// getting its own page).
        #[arg(long)]
        keep_links: bool,
    },
    /// Read one feed or page and explain it: format, encoding and how it was decided,
    /// the feed's own facts, every item as it would be published (our ID, the source's
    /// GUID, title, link, dates in UTC, language, summary) and the problems found.
    /// Exit status 1 when the document cannot be read as a feed or page.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor {
        /// An http(s) URL, a file, or the id of a configured source (its settings apply).
        #[arg(value_name = "URL|FILE|SOURCE")]
        target: String,
        #[command(flatten)]
        read: ReadArgs,
        /// Print one JSON object: format, encoding, encoding_decided_by, feed {title,
        /// link, id, updated, language}, items [{id, guid, title, link, published,
        /// updated, language, summary}], problems.
        #[arg(long)]
        json: bool,
    },
    /// Copy a SQLite store into an empty PostgreSQL database, every published ID kept:
    /// all of it in one transaction (a failure copies nothing), then the derived
    /// deduplication tables rebuilt. Stop the daemon first; afterwards set `[store] url`
    /// in the config instead of `path`.
    #[command(after_help = MIGRATE_EXAMPLES)]
    Migrate {
        /// The SQLite store file, e.g. state/feedwerk.sqlite (opened read-only).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The PostgreSQL database (postgres://user:password@host:port/database); it must
        /// hold no feedwerk data yet. From $FEEDWERK_MIGRATE_TO when not given, so the
        /// password need not be on the command line.
        #[arg(
            long,
            value_name = "URL",
            env = "FEEDWERK_MIGRATE_TO",
            hide_env_values = true
        )]
        to: String,
        /// PEM file of the CA that signed the server's certificate, trusted instead of
        /// the system's (as `store.ca_file`; `sslmode` in the URL says how much is checked).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Print a shell completion script, e.g. `feedwerk completions bash > /usr/share/bash-completion/completions/feedwerk`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `feedwerk manpage > /usr/local/share/man/man1/feedwerk.1`.
    Manpage {
        /// Write feedwerk.1 and one page per command (feedwerk-build.1, …) into DIR
        /// instead, e.g. /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

const DOCTOR_EXAMPLES: &str = "Examples:
  feedwerk doctor https://efus.eu/feed/
  feedwerk doctor --json partner-feed.xml
  feedwerk doctor https://partner.example/aktuelles/ \\
      --selectors 'item=.newsitem,title=h3 a,link=h3 a,date=.date' --date-format '%d.%m.%Y'
  feedwerk doctor lpr        # a configured source, with its selectors and settings";

/// How to read a feed or page given on the command line (`import`, `doctor`).
#[derive(clap::Args)]
struct ReadArgs {
    /// Read an HTML page with CSS selectors, as a `kind = "page"` source does:
    /// `item=.newsitem,title=h3 a,link=h3 a,date=.date` (keys: item, title, link, date,
    /// summary, content) or a TOML inline table `{ item = ".newsitem", title = "h3 a" }`.
    #[arg(long, value_name = "SPEC")]
    selectors: Option<String>,
    /// chrono format for the page's dates, e.g. "%d.%m.%Y"; repeat for several.
    #[arg(long = "date-format", value_name = "FORMAT")]
    date_format: Vec<String>,
    /// Zone for dates written without one [default: the site's, else Europe/Berlin].
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Base for relative links when reading a file (a URL is its own base).
    #[arg(long, value_name = "URL")]
    base_url: Option<url::Url>,
    /// Force the character encoding (e.g. windows-1252) instead of detecting it.
    #[arg(long, value_name = "LABEL")]
    encoding: Option<String>,
}

const MIGRATE_EXAMPLES: &str = "Examples:
  feedwerk migrate --from state/feedwerk.sqlite --to postgres://feedwerk@db.internal/feedwerk
  FEEDWERK_MIGRATE_TO='postgres://feedwerk:secret@db.internal/feedwerk' \\
      feedwerk migrate --from state/feedwerk.sqlite";

const IMPORT_EXAMPLES: &str = "Examples:
  feedwerk import --from aktuelles.txt --into feeds/defus
  feedwerk import --from https://partner.example/feed.xml --into feeds/archiv --keep-links
  feedwerk import --from https://partner.example/aktuelles/ --into feeds/partner \\
      --selectors 'item=.newsitem,title=h3 a,link=h3 a,date=.date' --date-format '%d.%m.%Y'
  feedwerk import --source lpr --into feeds/lpr-archiv";

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FEEDWERK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: in journald, files and pipes they
    // are noise that breaks grep.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(feedwerk::progress::LogWriter);
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
    feedwerk::progress::init(matches!(cli.log_format, LogFormat::Text));
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("feedwerk: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// The config when `import`/`doctor` run where there is none: `None` when the file
/// does not exist, an error when it exists but is invalid.
fn optional_config(path: &Path) -> anyhow::Result<Option<Config>> {
    if path.exists() {
        Ok(Some(Config::load(path)?))
    } else {
        Ok(None)
    }
}

fn fetcher_for(cfg: Option<&Config>) -> feedwerk::fetch::Fetcher {
    match cfg {
        Some(c) => feedwerk::fetch::Fetcher::new(&c.fetch, &c.user_agent()),
        None => feedwerk::fetch::Fetcher::new(
            &feedwerk::config::FetchConfig::default(),
            &format!("feedwerk/{}", env!("CARGO_PKG_VERSION")),
        ),
    }
}

/// `--selectors`, `--date-format`, `--timezone`, `--encoding` → how to read the document.
fn probe_options(
    read: &ReadArgs,
    cfg: Option<&Config>,
    source_id: &str,
) -> anyhow::Result<feedwerk::probe::ProbeOptions> {
    let selectors = read
        .selectors
        .as_deref()
        .map(feedwerk::source::page::parse_selector_spec)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    for f in &read.date_format {
        feedwerk::source::page::check_date_format(f)
            .map_err(|e| anyhow::anyhow!("--date-format: {e}"))?;
    }
    let timezone = match &read.timezone {
        Some(z) => z.parse::<chrono_tz::Tz>().map_err(|_| {
            anyhow::anyhow!("--timezone: unknown time zone `{z}` (e.g. Europe/Berlin)")
        })?,
        None => cfg
            .map(|c| c.site.timezone)
            .unwrap_or(chrono_tz::Europe::Berlin),
    };
    if let Some(e) = &read.encoding {
        if encoding_rs::Encoding::for_label(e.as_bytes()).is_none() {
            anyhow::bail!("--encoding: unknown encoding `{e}`");
        }
    }
    Ok(feedwerk::probe::ProbeOptions {
        source_id: source_id.to_owned(),
        selectors,
        date_formats: read.date_format.clone(),
        timezone,
        encoding: read.encoding.clone(),
        language: cfg.map(|c| c.site.language.clone()),
        tag_map: cfg.map(|c| c.tags.clone()).unwrap_or_default(),
    })
}

/// The clock every command reads "now" from: the real one, or `FEEDWERK_NOW` (RFC 3339)
/// so that a build is reproducible byte for byte (the golden tests pin outputs with it).
fn clock_now() -> anyhow::Result<DateTime<Utc>> {
    match std::env::var("FEEDWERK_NOW") {
        Ok(text) => Ok(DateTime::parse_from_rfc3339(&text)
            .with_context(|| format!("FEEDWERK_NOW: `{text}` is not an RFC 3339 time"))?
            .with_timezone(&Utc)),
        Err(_) => Ok(Utc::now()),
    }
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
) -> anyhow::Result<Vec<feedwerk::refresh::LocalDuplicate>> {
    let now = clock_now()?;
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
    let deduper = feedwerk::refresh::deduper(cfg);
    Ok(feedwerk::refresh::local_duplicates(
        &deduper, &s.id, items, now,
    )?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_path();
    match cli.command {
        Command::Build { dry_run: true, .. } => build_dry_run(config),
        Command::Build {
            dry_run: false,
            force,
            due_only,
        } => {
            let mode = if force {
                RefreshMode::Force
            } else if due_only {
                RefreshMode::Due
            } else {
                RefreshMode::Manual
            };
            build(config, mode)
        }
        Command::Run => {
            let cfg = load(config)?;
            runtime()?.block_on(feedwerk::daemon::run(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            from,
            source,
            into,
            read,
            keep_links,
        } => import(
            config,
            from.as_deref(),
            source.as_deref(),
            &into,
            &read,
            keep_links,
        ),
        Command::Doctor { target, read, json } => doctor(config, &target, &read, json),
        Command::Check => check(config),
        Command::Dupes { jsonl } => dupes(config, jsonl),
        Command::Migrate { from, to, ca_file } => migrate(&from, &to, ca_file.as_deref()),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "feedwerk",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage { dir } => manpage(dir.as_deref()),
        Command::Sources => sources(config),
    }
}

/// `build --dry-run`: fetch, then say what the next publish would change.
fn build_dry_run(config: &Path) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let (preview, upload) = runtime()?.block_on(Pipeline::preview(cfg, clock_now()?))?;
    print_reports(&preview.reports);
    print_preview(&preview);
    if let Some(u) = &upload {
        output::print_upload_plan(u);
    }
    Ok(ExitCode::SUCCESS)
}

/// `build`: refresh the sources `mode` picks, publish what changed, upload it to
/// `publish.target` (if set), announce it.
fn build(config: &Path, mode: RefreshMode) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let pipeline = Pipeline::open(cfg)?;
    let now = clock_now()?;
    let rt = runtime()?;
    let reports = rt.block_on(pipeline.refresh_with(now, mode));
    print_reports(&reports);
    // `--force` also skips the upload's back-off, as it does the sources'.
    let retry = if mode == RefreshMode::Force {
        Retry::Now
    } else {
        Retry::AfterBackoff
    };
    if !pipeline.needs_publish() {
        println!(
            "nothing changed since the last publish (0 written, outputs in {} kept as they are)",
            pipeline.output_dir().display()
        );
        return Ok(upload(&rt, &pipeline, now, retry));
    }
    let rep = match pipeline.publish_files(now) {
        Ok(rep) => rep,
        Err(e) => {
            eprintln!("feedwerk: nothing published: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for (path, e) in &rep.failed {
        println!("NOT PUBLISHED {path}: {e} (the previous version stays)");
    }
    if !rep.removed.is_empty() {
        println!(
            "removed {} documents of channels no longer published",
            rep.removed.len()
        );
    }
    println!(
        "published {} documents to {} ({} written, {} unchanged, {} rendered)",
        rep.written.len() + rep.unchanged + rep.failed.len(),
        pipeline.output_dir().display(),
        rep.written.len(),
        rep.unchanged,
        rep.rendered
    );
    // Readers told by the hub fetch from the bucket: upload before announcing.
    let code = upload(&rt, &pipeline, now, retry);
    for e in rt.block_on(pipeline.announce(&rep)) {
        println!("websub: {e}");
    }
    Ok(code)
}

/// `build`'s upload to `publish.target`: prints what it did; a failed upload fails the
/// build (the local outputs are complete; the next build retries).
fn upload(
    rt: &tokio::runtime::Runtime,
    pipeline: &Pipeline,
    now: DateTime<Utc>,
    retry: Retry,
) -> ExitCode {
    match rt.block_on(pipeline.upload(now, retry)) {
        Some(r) => {
            output::print_upload(&r);
            if matches!(r.outcome, feedwerk::upload::Outcome::Failed { .. }) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        None => ExitCode::SUCCESS,
    }
}

/// `import`: write posts into `into` from `--from` or a configured `--source`.
fn import(
    config: &Path,
    from: Option<&str>,
    source: Option<&str>,
    into: &Path,
    read: &ReadArgs,
    keep_links: bool,
) -> anyhow::Result<ExitCode> {
    use feedwerk::import::ImportTarget;
    let cfg = optional_config(config)?;
    let from = import_from(config, cfg.as_ref(), from, source, into, read)?;
    std::fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    let local_id = local_reader(config, cfg.as_ref(), into);
    let site_url = cfg
        .as_ref()
        .map(|c| c.site.base_url.clone())
        .unwrap_or_else(|| url::Url::parse("https://example.invalid/").expect("static URL"));
    let timezone = match (&read.timezone, &cfg) {
        (Some(z), _) => z
            .parse()
            .map_err(|_| anyhow::anyhow!("--timezone: unknown time zone `{z}`"))?,
        (None, Some(c)) => c.site.timezone,
        (None, None) => chrono_tz::Europe::Berlin,
    };
    let target = ImportTarget {
        into,
        timezone,
        site_url: &site_url,
        local_source: &local_id,
        keep_links,
    };
    let fetcher = fetcher_for(cfg.as_ref());
    let report = runtime()?.block_on(feedwerk::import::import(
        &from,
        &target,
        &fetcher,
        clock_now()?,
    ))?;
    for p in &report.written {
        println!("wrote   {}", p.display());
    }
    for (p, why) in &report.existing {
        println!("exists  {} ({why})", p.display());
    }
    for p in &report.problems {
        println!("problem {p}");
    }
    println!(
        "{} written, {} already there, {} problems",
        report.written.len(),
        report.existing.len(),
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `import` reads: a configured source by id, or a URL or file with the
/// command line's reading options.
fn import_from(
    config: &Path,
    cfg: Option<&Config>,
    from: Option<&str>,
    source: Option<&str>,
    into: &Path,
    read: &ReadArgs,
) -> anyhow::Result<feedwerk::import::ImportFrom> {
    use feedwerk::import::ImportFrom;
    match (source, from) {
        (Some(id), _) => {
            let cfg =
                cfg.with_context(|| format!("--source {id}: no config at {}", config.display()))?;
            let s = cfg
                .source(id)
                .with_context(|| format!("--source: no source `{id}` in {}", config.display()))?;
            Ok(ImportFrom::Source(s.clone()))
        }
        (None, Some(from)) => {
            let local_id = into
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("import")
                .to_owned();
            Ok(ImportFrom::Location {
                location: feedwerk::probe::Location::parse(from),
                opts: probe_options(read, cfg, &local_id)?,
                base_url: read.base_url.clone(),
            })
        }
        (None, None) => anyhow::bail!("give --from URL|FILE or --source ID"),
    }
}

/// The id of the local source that reads `into`, if the config has one: posts are read
/// back with its id and the site's URL, as `build` will read them. Without one, says
/// how to add it and reads them back as `import`.
fn local_reader(config: &Path, cfg: Option<&Config>, into: &Path) -> String {
    let reader = cfg
        .and_then(|c| {
            let want = std::fs::canonicalize(into).ok()?;
            c.sources.iter().find(|s| match &s.kind {
                SourceKind::Local { path } => {
                    std::fs::canonicalize(path).ok().as_ref() == Some(&want)
                }
                _ => false,
            })
        })
        .map(|s| s.id.to_string());
    if reader.is_none() {
        eprintln!(
            "note: no local source in {} reads {}; add one so `build` publishes these posts:\n  [[source]]\n  id = \"…\"\n  kind = \"local\"\n  path = \"{}\"",
            config.display(),
            into.display(),
            into.display()
        );
    }
    reader.unwrap_or_else(|| "import".into())
}

/// `doctor`: read one feed or page and explain it.
fn doctor(config: &Path, target: &str, read: &ReadArgs, json: bool) -> anyhow::Result<ExitCode> {
    use feedwerk::probe::Location;
    let cfg = optional_config(config)?;
    let by_id = cfg
        .as_ref()
        .and_then(|c| c.source(target))
        .filter(|_| !Path::new(target).exists());
    let location = match by_id.and_then(|s| s.kind.url()) {
        Some(u) => Location::Url(u.clone()),
        None if by_id.is_some() => {
            anyhow::bail!("source `{target}` is local: check its posts with `feedwerk check`")
        }
        None => Location::parse(target),
    };
    let configured = by_id.or_else(|| {
        let Location::Url(u) = &location else {
            return None;
        };
        cfg.as_ref()?
            .sources
            .iter()
            .find(|s| s.kind.url() == Some(u))
    });
    let opts = doctor_options(read, cfg.as_ref(), configured)?;
    let fetcher = fetcher_for(cfg.as_ref());
    let diagnosis = match runtime()?.block_on(feedwerk::doctor::run(
        &location,
        &opts,
        &fetcher,
        read.base_url.as_ref(),
        clock_now()?,
    )) {
        Ok(d) => d,
        Err(e) if json => feedwerk::doctor::unreachable(&location, &e),
        Err(e) => {
            eprintln!("feedwerk doctor: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if json {
        println!("{}", feedwerk::doctor::to_json(&diagnosis));
    } else {
        print!("{}", feedwerk::doctor::to_text(&diagnosis));
    }
    Ok(if diagnosis.readable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A configured source's own settings apply; command-line flags override them.
fn doctor_options(
    read: &ReadArgs,
    cfg: Option<&Config>,
    configured: Option<&feedwerk::model::Source>,
) -> anyhow::Result<feedwerk::probe::ProbeOptions> {
    let adhoc = probe_options(read, cfg, "doctor")?;
    let Some(s) = configured else {
        return Ok(adhoc);
    };
    let mut o = feedwerk::probe::ProbeOptions::from_source(s);
    if adhoc.selectors.is_some() {
        o.selectors = adhoc.selectors;
    }
    if !read.date_format.is_empty() {
        o.date_formats = adhoc.date_formats;
    }
    if read.timezone.is_some() {
        o.timezone = adhoc.timezone;
    }
    if read.encoding.is_some() {
        o.encoding = adhoc.encoding;
    }
    Ok(o)
}

/// `check`: the config, each source's posts or settings, and the store.
fn check(config: &Path) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "config {}: ok, {} sources",
        config.display(),
        cfg.sources.len()
    );
    let mut errors = 0;
    for s in &cfg.sources {
        errors += check_source(&cfg, s)?;
    }
    errors += check_store(&cfg.store);
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `check`'s line for one source (a local source's posts are read and their errors and
/// duplicates listed). Returns the error count.
fn check_source(cfg: &Config, s: &feedwerk::model::Source) -> anyhow::Result<usize> {
    let mut errors = 0;
    match &s.kind {
        SourceKind::Local { path } => {
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
            for d in local_duplicates(cfg, s, posts)? {
                println!(
                    "  duplicate: {} repeats {} ({}); only {} is published",
                    d.duplicate, d.kept, d.reason, d.kept
                );
            }
        }
        SourceKind::Page {
            url,
            selectors,
            date_formats,
        } => println!(
            "{:<12} page   {url}: items `{}`, title `{}`, dates {} in {} (preview: feedwerk doctor {})",
            s.id.as_str(),
            selectors.item,
            selectors.title,
            if date_formats.is_empty() {
                "by the general rules".to_owned()
            } else {
                date_formats
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            s.timezone,
            s.id
        ),
        k => println!(
            "{:<12} {:<6} {}",
            s.id.as_str(),
            k.name(),
            k.url().map(|u| u.as_str()).unwrap_or("")
        ),
    }
    Ok(errors)
}

/// `dupes`: the duplicate clusters held, as text or JSON lines.
fn dupes(config: &Path, jsonl: bool) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::open(load(config)?)?;
    let store = pipeline.store();
    if jsonl {
        dupes_jsonl(&**store)?;
    } else {
        dupes_text(&**store)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `migrate`: the SQLite store at `from` into the empty PostgreSQL database `to`.
fn migrate(from: &Path, to: &str, ca_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let url = feedwerk::db_url::DbUrl::new(to);
    let report = feedwerk::store::postgres::migrate::migrate(from, &url, ca_file)
        .context("cannot migrate")?;
    let rows: u64 = report.tables.iter().map(|(_, n)| n).sum();
    println!("migrated {} to {url}: {rows} rows", from.display());
    for (table, n) in &report.tables {
        println!("  {table:<16} {n:>8}");
    }
    println!("now set `[store] url` to this database in the config (instead of `path`)");
    Ok(ExitCode::SUCCESS)
}

/// `manpage`: one page on stdout, or every page into `dir`.
fn manpage(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    match dir {
        None => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .context("cannot write the man page")?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sources`: one line per source with its health, then its last error, 410 or move.
fn sources(config: &Path) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::open(load(config)?)?;
    let states = pipeline.store().source_states()?;
    let now = clock_now()?;
    println!(
        "{:<12} {:<5} {:<20} {:<18} {:>5} {:>6} {:<20}  URL",
        "SOURCE", "KIND", "LAST SUCCESS", "LAST STATUS", "FAILS", "ITEMS", "NEXT FETCH"
    );
    for s in &pipeline.cfg.sources {
        let st = states.get(s.id.as_str()).cloned().unwrap_or_default();
        print_source_health(s, &st, now);
    }
    if let Some(t) = &pipeline.cfg.publish.target {
        let st = pipeline.store().remote_state(&t.url)?;
        output::print_upload_state(&t.url, &st, now);
    }
    Ok(ExitCode::SUCCESS)
}
