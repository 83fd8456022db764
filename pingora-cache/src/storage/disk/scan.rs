//! The start-up scan: which files under the directory are valid entries.
//!
//! Cost: one `readdir` per sub-directory (256 of them), then for each
//! file one `open`, one `read` of its first 4 KiB (header and meta) and
//! one `fstat`, and a checksum of the meta; bodies are not read. Up to 8
//! threads share the sub-directories. That is
//! a few microseconds per entry with the files in the page cache and one
//! random read per entry on a cold disk (see the `restart_time_to_first_hit`
//! test in `tests/disk.rs`, which prints it).

use super::file::{HEADER_LEN, Header, MARKER, MARKER_TEXT, TMP_DIR, parse_name, sub_dir};
use super::reader::read_at;
use crate::key::{CompactCacheKey, HashBinary};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::Path;

/// The most meta bytes an entry may have (a response header is far
/// smaller); a larger length means a corrupt file.
const MAX_META: u32 = 1 << 20;

/// What the scan found and did.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Valid entries, oldest first (by id).
    pub(super) entries: Vec<Header>,
    /// Files deleted: unfinished, corrupt, or superseded by a newer one.
    pub(super) deleted: usize,
}

/// Make `dir` a cache directory, or check that it is one: a non-empty
/// directory without our marker file is refused, so that a wrong path
/// never gets its files deleted.
fn claim(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let marker = dir.join(MARKER);
    if !marker.exists() {
        if fs::read_dir(dir)?.next().is_some() {
            return Err(io::Error::other(format!(
                "{} is not empty and not a disk cache directory",
                dir.display()
            )));
        }
        fs::write(&marker, MARKER_TEXT)?;
    }
    fs::create_dir_all(dir.join(TMP_DIR))?;
    for b in 0..=255u8 {
        fs::create_dir_all(dir.join(sub_dir(&[b; 16])))?;
    }
    Ok(())
}

/// Read and check one entry file named for `key` and `id`.
fn check(path: &Path, key: &CompactCacheKey, id: u64) -> io::Result<Option<Header>> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut first = read_at(&file, 0, 4096)?;
    if first.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut meta_len = [0u8; 4];
    meta_len.copy_from_slice(&first[52..56]);
    let meta_len = u32::from_le_bytes(meta_len);
    if meta_len > MAX_META {
        return Ok(None);
    }
    let meta_end = HEADER_LEN + meta_len as usize;
    if first.len() < meta_end {
        first = read_at(&file, 0, meta_end)?;
        if first.len() < meta_end {
            return Ok(None);
        }
    }
    let Ok(header) = Header::decode(&first[..HEADER_LEN], &first[HEADER_LEN..meta_end]) else {
        return Ok(None);
    };
    let ok = header.id == id && header.key == *key && header.file_len() == file_len;
    Ok(ok.then_some(header))
}

fn remove(path: &Path, scan: &mut Scan) {
    match fs::remove_file(path) {
        Ok(()) => scan.deleted += 1,
        Err(e) => log::warn!("disk cache: cannot delete {}: {e}", path.display()),
    }
}

/// The valid entry files of one sub-directory; deletes the others.
fn scan_sub(dir: &Path, b: u8) -> io::Result<(Vec<Header>, usize)> {
    let mut found = Vec::new();
    let mut deleted = Scan::default();
    let sub = sub_dir(&[b; 16]);
    for item in fs::read_dir(dir.join(&sub))? {
        let path = item?.path();
        let parsed = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_name);
        let Some((key, id)) = parsed else {
            log::warn!("disk cache: ignoring {}", path.display());
            continue;
        };
        let checked = if sub_dir(&key.primary) == sub {
            check(&path, &key, id)
        } else {
            Ok(None)
        };
        match checked {
            Ok(Some(header)) => found.push(header),
            Ok(None) => remove(&path, &mut deleted),
            // Gone meanwhile, or unreadable: leave it alone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("disk cache: cannot read {}: {e}", path.display()),
        }
    }
    Ok((found, deleted.deleted))
}

/// Scan `dir`: delete what is in its `tmp` directory and every entry file
/// that is not valid or not the newest for its key, and return the rest.
/// The sub-directories are read by up to 8 threads: on a cold disk the
/// reads then overlap.
pub(super) fn scan(dir: &Path) -> io::Result<Scan> {
    claim(dir)?;
    let mut scan = Scan::default();
    for leftover in fs::read_dir(dir.join(TMP_DIR))? {
        remove(&leftover?.path(), &mut scan);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let parts: Vec<io::Result<(Vec<Header>, usize)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut all = (Vec::new(), 0);
                    for b in (t..256).step_by(threads) {
                        // `b` is below 256.
                        let (found, deleted) = scan_sub(dir, u8::try_from(b).unwrap_or(0))?;
                        all.0.extend(found);
                        all.1 += deleted;
                    }
                    Ok(all)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(io::Error::other("scan thread panicked")))
            })
            .collect()
    });
    let mut newest: HashMap<CompactCacheKey, Header> = HashMap::new();
    for part in parts {
        let (found, deleted) = part?;
        scan.deleted += deleted;
        for header in found {
            // Two files for one key: a crash between writing the newer
            // and deleting the older. Ids only grow, so keep the larger.
            let Some(old) = newest.insert(header.key, header) else {
                continue;
            };
            let (keep, stale) = if old.id > header.id {
                (old, header)
            } else {
                (header, old)
            };
            newest.insert(keep.key, keep);
            remove(
                &super::file::entry_path(dir, &stale.key, stale.id),
                &mut scan,
            );
        }
    }
    drop_superseded_kinds(dir, &mut newest, &mut scan);
    let mut entries: Vec<Header> = newest.into_values().collect();
    entries.sort_unstable_by_key(|h| h.id);
    scan.entries = entries;
    Ok(scan)
}

/// A resource holds either variants (with a variance) or one entry
/// without: the newer kind superseded the other when it was stored, so a
/// crash before the older files were deleted leaves both. Keep the kind
/// of the newest file.
fn drop_superseded_kinds(
    dir: &Path,
    entries: &mut HashMap<CompactCacheKey, Header>,
    scan: &mut Scan,
) {
    // Per primary: the newest id of each kind (plain, varied).
    let mut kinds: HashMap<HashBinary, (u64, u64)> = HashMap::new();
    for (key, h) in entries.iter() {
        let k = kinds.entry(key.primary).or_default();
        if key.variance.is_some() {
            k.1 = k.1.max(h.id + 1);
        } else {
            k.0 = k.0.max(h.id + 1);
        }
    }
    entries.retain(|key, h| {
        let (plain, varied) = kinds.get(&key.primary).copied().unwrap_or_default();
        let keep = if key.variance.is_some() {
            varied >= plain
        } else {
            plain >= varied
        };
        if !keep {
            remove(&super::file::entry_path(dir, key, h.id), scan);
        }
        keep
    });
}
