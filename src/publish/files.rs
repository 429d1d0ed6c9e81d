//! The file side of publishing: atomic writes (temp file, fsync, rename, directory
//! fsync), temporary files readable by a web server, and the removal of what a crash
//! or an unpublished channel left in the output directory. Knows paths and bytes only,
//! nothing of documents or channels.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name prefix of the temporary files [`write_synced`] renames into place.
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
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
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

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync,
/// rename), without the directory's fsync: readers (and a killed process) see
/// the old file or the new one, and the new one's bytes are on disk before its name is;
/// the rename itself becomes durable with [`sync_dir`]. A publishing pass syncs each
/// directory once after all its files, not once per file: a full build writes thousands
/// of files into a handful of directories (`tags/` alone holds one per tag, format and
/// encoding), and every fsync of the directory was a journal commit.
pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
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
