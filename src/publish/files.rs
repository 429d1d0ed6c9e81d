//! The file side of publishing: atomic writes in batches (temp files, one sync, renames,
//! one fsync per directory: see [`commit`] for why that is crash-safe), temporary files readable by a web server, and the removal of what a crash
//! or an unpublished channel left in the output directory. Knows paths and bytes only,
//! nothing of documents or channels.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name prefix of the temporary files [`commit`] renames into place.
const TEMP_PREFIX: &str = ".feedwerk-";

/// Removes temporary files that a killed writer left under `out_dir` (a SIGKILL or power
/// cut between create and rename). Only files older than `older_than` go, so a `build`
/// running beside the daemon keeps its own. Returns how many were removed.
pub fn sweep_stale_temp_files(out_dir: &Path, older_than: std::time::Duration) -> usize {
    let mut removed = 0;
    let mut dirs = vec![out_dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(e.path());
                continue;
            }
            let stale = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= older_than);
            if stale
                && e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes the files of channels under `out_dir/dir` (`tags`, `lang`, …) that are no
/// longer published — a tag no item carries any more, or one that fell below
/// `publish.tag_min_items`: without this their last files stayed in the output
/// directory for ever, served by any web server in front of it. `live` holds the stems
/// (`tags/police`) published now, `archived` those of them with archive pages (see
/// `publish.archives`); a live channel's archive pages go when it has none any more.
/// Only a channel's own files go: `<name>.rss|.atom|.json`, `<name>/archive/<n>.rss|.atom`,
/// each with its `.gz`/`.br`; anything else stays. A file that cannot be removed is
/// logged and left. Returns the document paths removed.
pub fn remove_stale_channels(
    out_dir: &Path,
    dir: &str,
    live: &HashSet<&str>,
    archived: &HashSet<&str>,
) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(out_dir.join(dir)) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // The entry's type from the listing itself: a `stat` per file cost more than
        // the rest of a one-changed publish with a thousand channels.
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            if archived.contains(format!("{dir}/{name}").as_str()) {
                continue;
            }
            removed.extend(remove_archive_pages(
                out_dir,
                &format!("{dir}/{name}/archive"),
            ));
            // Only when empty: a directory holding anything else is not ours to drop.
            let _ = std::fs::remove_dir(e.path());
            continue;
        }
        let (base, compressed) = split_compressed(&name);
        let Some((stem, ext)) = base.rsplit_once('.') else {
            continue;
        };
        if matches!(ext, "rss" | "atom" | "json")
            && !live.contains(format!("{dir}/{stem}").as_str())
            && remove_file(&e.path())
            && !compressed
        {
            removed.push(format!("{dir}/{base}"));
        }
    }
    removed.sort();
    removed
}

/// Removes the archive pages (`<n>.rss|.atom` with their `.gz`/`.br`) in `out_dir/archive`,
/// then the directory if that left it empty. Returns the document paths removed.
pub fn remove_archive_pages(out_dir: &Path, archive: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let dir = out_dir.join(archive);
    for page in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let file = page.file_name().to_string_lossy().into_owned();
        let (base, compressed) = split_compressed(&file);
        let is_page = base.split_once('.').is_some_and(|(n, ext)| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && matches!(ext, "rss" | "atom")
        });
        if is_page && remove_file(&page.path()) && !compressed {
            removed.push(format!("{archive}/{base}"));
        }
    }
    let _ = std::fs::remove_dir(&dir);
    removed.sort();
    removed
}

/// Removes a file of a channel no longer published; a failure is logged and the file left.
fn remove_file(file: &Path) -> bool {
    match std::fs::remove_file(file) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %file.display(), error = %e, "cannot remove the file of a channel no longer published");
            false
        }
    }
}

/// `x.rss.gz` → (`x.rss`, true); `x.rss` → (`x.rss`, false).
fn split_compressed(name: &str) -> (&str, bool) {
    match name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".br"))
    {
        Some(base) => (base, true),
        None => (name, false),
    }
}

/// A file written under a temporary name in its destination's directory, not yet
/// synced and not yet visible under its own name: [`commit`] makes a batch of them
/// durable and renames them into place. Dropped uncommitted, the temporary file is
/// removed.
pub(super) struct Staged {
    temp: tempfile::TempPath,
    dest: PathBuf,
}

/// Writes `bytes` to a temporary file beside `path` (creating the directory when it
/// does not exist), without syncing it: see [`commit`]. The file is closed again, so a
/// cold build staging thousands of files holds no descriptor for them.
pub(super) fn stage(path: &Path, bytes: &[u8]) -> std::io::Result<Staged> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = || readable_temp_file(dir, TEMP_PREFIX);
    // The directory nearly always exists: create it only when it does not.
    let mut tmp = match temp() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            temp()?
        }
        other => other?,
    };
    tmp.write_all(bytes)?;
    Ok(Staged {
        temp: tmp.into_temp_path(),
        dest: path.to_owned(),
    })
}

/// Makes staged files durable, then visible: one sync of their file systems for all of
/// them, then a rename of each over its destination. The directories' own entries (the
/// renames) become durable with [`sync_dir`], once per directory, after the caller's
/// last rename.
///
/// Why this is as safe as a sync per file, for readers and for a crash:
/// - every staged file was written completely (and closed) before the first rename, and
///   a rename replaces a name atomically: a reader, a `SIGKILL`, or a crash that keeps
///   the page cache sees the old file or the new one, never a part;
/// - the sync comes before the first rename: after a power cut, a name that points to
///   a new file points to its complete, synced bytes. Renames not yet made durable may
///   be lost, which brings back the old file, whole;
/// - the store records a document as published only after this and [`sync_dir`]
///   (`Publisher::finish`), so a publish cut short is done again on the next run;
///   temporary files a killed writer left are removed by [`sweep_stale_temp_files`].
///
/// The sync is one `syncfs(2)` per file system the files are on (on Linux; elsewhere one
/// fsync per file), instead of one fsync per file: a cold medium build writes ~2 000
/// documents, and each fsync was a journal commit of its own. `syncfs` also flushes
/// what other programs wrote to that file system, which costs them nothing but may
/// make it take longer when much else is being written at the same time.
///
/// Renames are made in `batches` order, each batch's files in order; a failed rename
/// fails only its own batch (`Err` at its index), and the batches after it are still
/// renamed. A failed sync fails the lot and renames nothing.
pub(super) fn commit(batches: Vec<Vec<Staged>>) -> Vec<std::io::Result<()>> {
    if let Err(e) = sync_file_systems(batches.iter().flatten()) {
        return batches
            .iter()
            .map(|_| Err(std::io::Error::new(e.kind(), e.to_string())))
            .collect();
    }
    batches
        .into_iter()
        .map(|batch| {
            for staged in batch {
                staged.temp.persist(&staged.dest).map_err(|e| e.error)?;
            }
            Ok(())
        })
        .collect()
}

/// Syncs the file systems holding `files` (each once; see [`commit`]).
#[cfg(target_os = "linux")]
fn sync_file_systems<'a>(files: impl Iterator<Item = &'a Staged>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let dirs: HashSet<&Path> = files
        .map(|f| f.dest.parent().unwrap_or(Path::new(".")))
        .collect();
    let mut done = HashSet::new();
    for dir in dirs {
        let d = std::fs::File::open(dir)?;
        if !done.insert(d.metadata()?.dev()) {
            continue;
        }
        // SAFETY: `d` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn sync_file_systems<'a>(files: impl Iterator<Item = &'a Staged>) -> std::io::Result<()> {
    for f in files {
        std::fs::File::open(&f.temp)?.sync_all()?;
    }
    Ok(())
}

/// A temporary file in `dir`, to be renamed over a file that others read. Created 0666
/// less the umask, as `std::fs::write` would: tempfile's own 0600 would survive the
/// rename and leave every published file unreadable to a web server serving the
/// directory as another user (the system-user setup with `UMask=0027` in the README).
pub(crate) fn readable_temp_file(
    dir: &Path,
    prefix: &str,
) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    b.tempfile_in(dir)
}

/// Makes the entries (renames) of `dir` durable. Best effort: a failure only weakens
/// what survives a power cut, never what readers see.
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `file` with `.ext` appended: where its compressed copy lives.
pub(crate) fn sibling(file: &Path, ext: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_of_channels_no_longer_published_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let files = [
            "tags/gone.rss",
            "tags/gone.rss.gz",
            "tags/gone.json.br",
            "tags/gone/archive/1.atom",
            "tags/gone/archive/1.atom.br",
            "tags/kept.atom",
            "tags/kept/archive/2.rss",
            "tags/notes.txt",
            "tags/odd/archive/readme.rss",
        ];
        for f in files {
            std::fs::create_dir_all(out.join(f).parent().unwrap()).unwrap();
            std::fs::write(out.join(f), "x").unwrap();
        }
        let live: HashSet<&str> = ["tags/kept"].into();
        let removed = remove_stale_channels(out, "tags", &live, &live);
        assert_eq!(removed, ["tags/gone.rss", "tags/gone/archive/1.atom"]);
        for f in &files[..5] {
            assert!(!out.join(f).exists(), "{f} left");
        }
        for f in &files[5..] {
            assert!(out.join(f).exists(), "{f} removed");
        }
        assert!(!out.join("tags/gone").exists());
        // Another directory's channels are not touched.
        assert!(remove_stale_channels(out, "lang", &live, &live).is_empty());
        // A channel still published but without archive pages any more loses only those.
        let none = HashSet::new();
        let removed = remove_stale_channels(out, "tags", &live, &none);
        assert_eq!(removed, ["tags/kept/archive/2.rss"]);
        assert!(out.join("tags/kept.atom").exists());
        assert!(out.join("tags/odd/archive/readme.rss").exists());
    }
}
