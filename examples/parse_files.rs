//! Parse-throughput probe for `bench/run` (and `../shared/bench/bench-parse --tool`):
//! decodes and parses every `*.xml` file under the given directories (or files) with the
//! same adapter the pipeline uses, on one thread, and prints what it read. With
//! `--normalise` it also turns every entry into an `Item`.
//!
//! ```sh
//! cargo build --release --example parse_files
//! target/release/examples/parse_files [--normalise] DIR_OR_FILE...
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use feedwerk::config::Config;
use feedwerk::normalise::{self, Context};
use feedwerk::source;

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            collect(&e?.path(), out)?;
        }
    } else if path.extension().is_some_and(|e| e == "xml") {
        out.push(path.to_owned());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut normalise_too = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--normalise" {
            normalise_too = true;
        } else if let Err(e) = collect(Path::new(&arg), &mut files) {
            eprintln!("parse_files: {arg}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if files.is_empty() {
        eprintln!("usage: parse_files [--normalise] DIR_OR_FILE...");
        return ExitCode::from(2);
    }
    files.sort();
    let cfg = Config::parse(
        "[site]\ntitle = \"probe\"\nbase_url = \"https://probe.example/\"\n\n\
         [[source]]\nid = \"probe\"\nkind = \"feed\"\nurl = \"https://probe.example/feed.xml\"\n",
        Path::new("probe.toml"),
    )
    .expect("built-in config is valid");
    let src = &cfg.sources[0];
    let now = Utc::now();
    let start = Instant::now();
    let (mut bytes, mut entries, mut items, mut failed) = (0usize, 0usize, 0usize, 0usize);
    for f in &files {
        let raw = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                failed += 1;
                continue;
            }
        };
        bytes += raw.len();
        let decoded = source::decode::decode_xml(&raw, None, None);
        let origin = f.display().to_string();
        let parsed = match source::feed::parse(&decoded.text, src.kind.url(), src.timezone, &origin)
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
                continue;
            }
        };
        entries += parsed.entries.len();
        if normalise_too {
            let ctx = Context {
                source: src,
                feed_link: parsed.link.as_ref(),
                feed_language: parsed.language.as_deref(),
                tag_map: &cfg.tags,
                now,
                back_catalogue: None,
            };
            items += parsed
                .entries
                .iter()
                .filter(|e| normalise::normalise(e, &ctx).is_ok())
                .count();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "files {} failed {failed} bytes {bytes} entries {entries} items {items} seconds {secs:.3} MB/s {:.1}",
        files.len(),
        bytes as f64 / 1e6 / secs
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
