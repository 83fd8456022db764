//! The disk tier and the memory+disk tiers, on real files in a temporary
//! directory: store and look up, stream while writing, ranges, purge,
//! metadata updates, eviction by bytes, restarts (a new `DiskCache` on the
//! same directory), cleanup of what a crash leaves, a child process
//! killed with SIGKILL in the middle of a fill, and promotion from disk to
//! memory. Two tests print timings: `restart_time_to_first_hit` and
//! `inline_read_cost`.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use pingora_cache::eviction::lru;
use pingora_cache::storage::disk::DiskCache;
use pingora_cache::storage::tiered::TieredStorage;
use pingora_cache::storage::{ENTRY_TOO_LARGE, HitHandler, PARTIAL_ENTRY_ABANDONED, Storage};
use pingora_cache::{CacheKey, CacheMeta, MemCache};
use pingora_core::header::ResponseHeader;
use pingora_error::Result;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "pingora-disk-test-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The files under `dir/sub` for every sub-directory (entries, or
/// `tmp`'s files with `sub == "tmp"`).
fn files(dir: &Path, only: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap().path();
        let name = sub.file_name().unwrap().to_str().unwrap().to_owned();
        if !sub.is_dir() || only.is_some_and(|o| o != name) || (only.is_none() && name == "tmp") {
            continue;
        }
        for f in std::fs::read_dir(&sub).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

fn entry_files(dir: &Path) -> Vec<PathBuf> {
    files(dir, None)
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    files(dir, Some("tmp"))
}

fn meta(fields: &[(&str, &str)]) -> CacheMeta {
    let mut h = ResponseHeader::build(200, None).unwrap();
    for (n, v) in fields {
        h.append_header(n.to_string(), *v).unwrap();
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
}

fn key(path: &str) -> CacheKey {
    CacheKey::new("", format!("http://t{path}"), "")
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

async fn store(cache: &dyn Storage, key: &CacheKey, m: &CacheMeta, body: &[u8]) -> Result<usize> {
    let mut miss = cache.get_miss_handler(key, m).await?;
    miss.write_body(Bytes::copy_from_slice(body)).await?;
    miss.finish().await
}

async fn body_of(cache: &dyn Storage, key: &CacheKey) -> Option<Vec<u8>> {
    let (_, mut hit) = cache.lookup(key).await.unwrap()?;
    Some(read_all(&mut hit).await.unwrap())
}

/// A body whose bytes say where they are.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn store_lookup_and_restart() {
    let dir = TempDir::new("restart");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    let k = key("/a");
    assert!(cache.lookup(&k).await.unwrap().is_none());
    let m = meta(&[("X-Case", "Kept"), ("Cache-Control", "max-age=60")]);
    let big = pattern(300_000);
    store(&cache, &k, &m, &big).await.unwrap();
    store(&cache, &key("/small"), &m, b"small").await.unwrap();
    let (got, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(hit.body_len(), Some(300_000));
    assert_eq!(got.fresh_until(), m.fresh_until());
    let fields: Vec<_> = got
        .response_header()
        .wire_headers()
        .map(|(n, _)| n.to_vec())
        .collect();
    assert_eq!(fields[0], b"X-Case");
    assert_eq!(read_all(&mut hit).await.unwrap(), big);
    assert_eq!(cache.used_bytes() as usize, cache.eviction().total_size());
    assert_eq!(entry_files(dir.path()).len(), 2);
    let used = cache.used_bytes();
    drop(cache);

    // A new cache on the same directory serves the same entries.
    let again = DiskCache::new(dir.path(), 1 << 24).unwrap();
    assert_eq!(again.used_bytes(), used);
    assert_eq!(again.eviction().total_items(), 2);
    assert_eq!(body_of(&again, &k).await.unwrap(), big);
    assert_eq!(body_of(&again, &key("/small")).await.unwrap(), b"small");
    let (got, _) = again.lookup(&k).await.unwrap().unwrap();
    assert_eq!(got.response_header().get_header("x-case").unwrap(), "Kept");
    assert_eq!(got.created(), m.created());
}

#[tokio::test]
async fn readers_stream_a_filling_entry() {
    let dir = TempDir::new("stream");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    assert!(cache.support_streaming_partial_write());
    let k = key("/s");
    let mut miss = cache.get_miss_handler(&k, &meta(&[])).await.unwrap();
    miss.write_body("ab".into()).await.unwrap();
    let (_, mut early) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(early.body_len(), None);
    let reader = tokio::spawn(async move { read_all(&mut early).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!reader.is_finished(), "the reader waits for the writer");
    miss.write_body("cd".into()).await.unwrap();
    let (_, mut late) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(tmp_files(dir.path()).len(), 1);
    miss.finish().await.unwrap();
    assert_eq!(reader.await.unwrap(), b"abcd");
    assert_eq!(read_all(&mut late).await.unwrap(), b"abcd");
    // After finish, from the entry's own file.
    assert_eq!(body_of(&cache, &k).await.unwrap(), b"abcd");
    assert!(tmp_files(dir.path()).is_empty());
    assert_eq!(entry_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn seek_reads_ranges() {
    let dir = TempDir::new("seek");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    let body = pattern(200_000);
    let k = key("/r");
    store(&cache, &k, &meta(&[]), &body).await.unwrap();
    for (start, end) in [
        (0, Some(10)),
        (5, Some(70_000)),
        (65_000, Some(140_001)),
        (199_990, None),
        (0, None),
    ] {
        let (_, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
        assert!(hit.can_seek());
        hit.seek(start, end).unwrap();
        let want = &body[start as usize..end.map_or(body.len(), |e| e as usize)];
        assert_eq!(read_all(&mut hit).await.unwrap(), want, "{start}..{end:?}");
    }
    let (_, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert!(hit.seek(10, Some(300_000)).is_err());
    assert!(hit.seek(10, Some(5)).is_err());
    // A range of an entry still filling.
    let k2 = key("/r2");
    let mut miss = cache.get_miss_handler(&k2, &meta(&[])).await.unwrap();
    let (_, mut partial) = cache.lookup(&k2).await.unwrap().unwrap();
    partial.seek(3, Some(6)).unwrap();
    miss.write_body("0123".into()).await.unwrap();
    miss.write_body("4567".into()).await.unwrap();
    assert_eq!(read_all(&mut partial).await.unwrap(), b"345");
    miss.finish().await.unwrap();
}

#[tokio::test]
async fn purge_deletes_finished_and_filling_entries() {
    let dir = TempDir::new("purge");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    let k = key("/p");
    store(&cache, &k, &meta(&[]), b"old").await.unwrap();
    let mut miss = cache.get_miss_handler(&k, &meta(&[])).await.unwrap();
    miss.write_body("ne".into()).await.unwrap();
    let (_, mut partial) = cache.lookup(&k).await.unwrap().unwrap();
    assert!(cache.purge(&k).await.unwrap());
    assert!(
        entry_files(dir.path()).is_empty(),
        "deleted before purge returns"
    );
    assert_eq!(cache.used_bytes(), 0);
    assert!(cache.lookup(&k).await.unwrap().is_none());
    let err = read_all(&mut partial).await.unwrap_err();
    assert_eq!(*err.etype(), PARTIAL_ENTRY_ABANDONED);
    assert!(miss.write_body("w".into()).await.is_err());
    assert!(miss.finish().await.is_err());
    assert!(cache.lookup(&k).await.unwrap().is_none());
    // The writer's file goes once the writer does.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tmp_files(dir.path()).is_empty());
    assert!(!cache.purge(&k).await.unwrap());
}

#[tokio::test]
async fn update_meta_rewrites_atomically_and_survives_restart() {
    let dir = TempDir::new("update");
    // With fsync, to run that path too.
    let cache = DiskCache::new(dir.path(), 1 << 24)
        .unwrap()
        .with_fsync(true);
    let k = key("/u");
    let body = pattern(100_000);
    store(&cache, &k, &meta(&[("V", "1")]), &body)
        .await
        .unwrap();
    let (_, mut old_reader) = cache.lookup(&k).await.unwrap().unwrap();
    assert!(
        cache
            .update_meta(&k, &meta(&[("V", "2"), ("More", "x")]))
            .await
            .unwrap()
    );
    assert!(!cache.update_meta(&key("/none"), &meta(&[])).await.unwrap());
    // A reader of the old file reads on.
    assert_eq!(read_all(&mut old_reader).await.unwrap(), body);
    let (m, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(m.response_header().get_header("v").unwrap(), "2");
    assert_eq!(read_all(&mut hit).await.unwrap(), body);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(entry_files(dir.path()).len(), 1, "the old file is gone");
    assert_eq!(cache.used_bytes() as usize, cache.eviction().total_size());
    drop(cache);
    let again = DiskCache::new(dir.path(), 1 << 24).unwrap();
    let (m, _) = again.lookup(&k).await.unwrap().unwrap();
    assert_eq!(m.response_header().get_header("more").unwrap(), "x");
}

#[tokio::test]
async fn bounded_by_bytes_evicting_lru() {
    let dir = TempDir::new("evict");
    // One shard so that the order is global; files are about 1.1 KB.
    let cache =
        DiskCache::with_eviction(dir.path(), Box::new(lru::Manager::with_shards(3500, 1))).unwrap();
    let body = vec![b'x'; 1000];
    for i in 0..3 {
        store(&cache, &key(&format!("/{i}")), &meta(&[]), &body)
            .await
            .unwrap();
    }
    assert!(cache.lookup(&key("/0")).await.unwrap().is_some());
    store(&cache, &key("/3"), &meta(&[]), &body).await.unwrap();
    assert!(cache.lookup(&key("/1")).await.unwrap().is_none());
    for i in [0, 2, 3] {
        assert!(
            cache
                .lookup(&key(&format!("/{i}")))
                .await
                .unwrap()
                .is_some(),
            "{i}"
        );
    }
    for i in 10..60 {
        store(&cache, &key(&format!("/{i}")), &meta(&[]), &body)
            .await
            .unwrap();
        assert!(cache.used_bytes() <= 3500);
    }
    assert_eq!(cache.used_bytes() as usize, cache.eviction().total_size());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let on_disk: u64 = entry_files(dir.path())
        .iter()
        .map(|f| f.metadata().unwrap().len())
        .sum();
    assert_eq!(on_disk, cache.used_bytes(), "evicted files are deleted");
    drop(cache);
    // A smaller budget at start-up evicts the oldest.
    let small =
        DiskCache::with_eviction(dir.path(), Box::new(lru::Manager::with_shards(1200, 1))).unwrap();
    assert_eq!(small.eviction().total_items(), 1);
    assert!(small.lookup(&key("/59")).await.unwrap().is_some());
}

#[tokio::test]
async fn too_large_and_dropped_writers_leave_nothing() {
    let dir = TempDir::new("large");
    let cache = DiskCache::new(dir.path(), 1 << 24)
        .unwrap()
        .with_max_entry_size(5);
    let k = key("/big");
    store(&cache, &k, &meta(&[("V", "old")]), b"old")
        .await
        .unwrap();
    let mut miss = cache.get_miss_handler(&k, &meta(&[])).await.unwrap();
    miss.write_body("abc".into()).await.unwrap();
    let err = miss.write_body("def".into()).await.unwrap_err();
    assert_eq!(*err.etype(), ENTRY_TOO_LARGE);
    drop(miss);
    let mut miss = cache.get_miss_handler(&k, &meta(&[])).await.unwrap();
    miss.write_body("ne".into()).await.unwrap();
    drop(miss);
    // The finished entry stays; the writers' files are deleted.
    assert_eq!(body_of(&cache, &k).await.unwrap(), b"old");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tmp_files(dir.path()).is_empty());
}

#[tokio::test]
async fn variants_and_purge_of_all() {
    let dir = TempDir::new("vary");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    let mut en = key("/v");
    en.set_variance_key([1; 16]);
    let mut fr = key("/v");
    fr.set_variance_key([2; 16]);
    let m = meta(&[("Vary", "Accept-Language")]);
    store(&cache, &en, &m, b"en").await.unwrap();
    store(&cache, &fr, &m, b"fr").await.unwrap();
    assert_eq!(body_of(&cache, &en).await.unwrap(), b"en");
    assert_eq!(body_of(&cache, &fr).await.unwrap(), b"fr");
    // Without variance: one of the variants, so that Vary can be read.
    let (m2, _) = cache.lookup(&key("/v")).await.unwrap().unwrap();
    assert!(m2.response_header().has_header("vary"));
    drop(cache);
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    assert_eq!(body_of(&cache, &fr).await.unwrap(), b"fr");
    assert!(cache.purge(&key("/v")).await.unwrap());
    assert!(cache.lookup(&en).await.unwrap().is_none());
    assert!(entry_files(dir.path()).is_empty());
}

#[tokio::test]
async fn start_up_cleans_what_a_crash_leaves() {
    let dir = TempDir::new("cleanup");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    for p in ["/keep", "/truncate", "/flip"] {
        store(&cache, &key(p), &meta(&[]), &pattern(5000))
            .await
            .unwrap();
    }
    drop(cache);
    let path_of = |p: &str| {
        let hex = pingora_cache::key::hex(&key(p).primary_bin());
        entry_files(dir.path())
            .into_iter()
            .find(|f| f.file_name().unwrap().to_str().unwrap().starts_with(&hex))
            .unwrap()
    };
    // Truncated, corrupted, a leftover of a fill, an older version of an
    // entry, and a file that is not ours (left alone).
    let trunc = path_of("/truncate");
    let len = trunc.metadata().unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&trunc)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let flip = path_of("/flip");
    let mut bytes = std::fs::read(&flip).unwrap();
    bytes[80] ^= 0xff;
    std::fs::write(&flip, bytes).unwrap();
    std::fs::write(
        dir.path().join("tmp").join("0000000000000001.tmp"),
        b"partial",
    )
    .unwrap();
    let keep = path_of("/keep");
    let name = keep.file_name().unwrap().to_str().unwrap();
    let older = keep.with_file_name(format!("{}.0000000000000001", &name[..32]));
    std::fs::copy(&keep, &older).unwrap();
    let foreign = dir.path().join("00").join("notes.txt");
    std::fs::write(&foreign, b"mine").unwrap();

    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    assert_eq!(body_of(&cache, &key("/keep")).await.unwrap(), pattern(5000));
    assert!(cache.lookup(&key("/truncate")).await.unwrap().is_none());
    assert!(cache.lookup(&key("/flip")).await.unwrap().is_none());
    assert!(tmp_files(dir.path()).is_empty());
    assert!(!older.exists() && !trunc.exists() && !flip.exists());
    assert!(foreign.exists());
    assert_eq!(cache.eviction().total_items(), 1);
}

#[tokio::test]
async fn refuses_a_directory_that_is_not_a_cache() {
    let dir = TempDir::new("foreign");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join("important.txt"), b"data").unwrap();
    assert!(DiskCache::new(dir.path(), 1 << 20).is_err());
    assert!(dir.path().join("important.txt").exists());
}

/// Not a test on its own: the child process of
/// `killed_mid_fill_is_never_served`. It stores `/done`, starts filling
/// `/partial`, says so on stdout and waits to be killed.
#[tokio::test]
#[ignore = "run by killed_mid_fill_is_never_served as a child process"]
async fn crash_child() {
    let dir = std::env::var("DISK_CRASH_DIR").expect("run by killed_mid_fill_is_never_served");
    let cache = DiskCache::new(&dir, 1 << 24).unwrap();
    store(&cache, &key("/done"), &meta(&[]), b"complete")
        .await
        .unwrap();
    let mut miss = cache
        .get_miss_handler(&key("/partial"), &meta(&[]))
        .await
        .unwrap();
    miss.write_body(Bytes::from(pattern(10_000))).await.unwrap();
    println!("FILLING");
    tokio::time::sleep(Duration::from_secs(60)).await;
    miss.write_body("never".into()).await.unwrap();
}

#[tokio::test]
async fn killed_mid_fill_is_never_served() {
    let dir = TempDir::new("crash");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env("DISK_CRASH_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines.next().expect("child ended before filling").unwrap();
        if line.contains("FILLING") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    assert_eq!(tmp_files(dir.path()).len(), 1, "the fill is under way");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    assert!(cache.lookup(&key("/partial")).await.unwrap().is_none());
    assert_eq!(body_of(&cache, &key("/done")).await.unwrap(), b"complete");
    assert!(tmp_files(dir.path()).is_empty(), "the leftover is deleted");
    assert_eq!(entry_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn tiered_promotes_disk_hits_to_memory() {
    let dir = TempDir::new("tiered");
    let disk = DiskCache::new(dir.path(), 1 << 24).unwrap();
    let k = key("/t");
    store(&disk, &k, &meta(&[]), b"from disk").await.unwrap();
    let memory = MemCache::new(1 << 20);
    let tiers = TieredStorage::new(memory.clone(), disk.clone());
    assert!(memory.lookup(&k).await.unwrap().is_none());
    // First hit: from disk, promoted once read to the end.
    assert_eq!(body_of(&tiers, &k).await.unwrap(), b"from disk");
    let deadline = Instant::now() + Duration::from_secs(5);
    while tiers.promoted() == 0 {
        assert!(Instant::now() < deadline, "promotion did not happen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Second hit: from memory, even with the disk copy gone.
    assert_eq!(body_of(&memory, &k).await.unwrap(), b"from disk");
    for f in entry_files(dir.path()) {
        std::fs::remove_file(f).unwrap();
    }
    assert_eq!(body_of(&tiers, &k).await.unwrap(), b"from disk");
    assert_eq!(tiers.promoted(), 1);

    // A range read promotes the whole body, from a read of its own.
    let r = key("/range");
    store(&disk, &r, &meta(&[]), b"0123456789").await.unwrap();
    let (_, mut hit) = tiers.lookup(&r).await.unwrap().unwrap();
    hit.seek(2, Some(4)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"23");
    while tiers.promoted() < 2 {
        assert!(Instant::now() < deadline, "range promotion did not happen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(body_of(&memory, &r).await.unwrap(), b"0123456789");

    // Too large to promote, or no promotion at all.
    let big = key("/large");
    store(&disk, &big, &meta(&[]), &[b'x'; 100]).await.unwrap();
    let none = TieredStorage::new(memory.clone(), disk.clone()).with_promotion(50, 8);
    let zero = TieredStorage::new(memory.clone(), disk.clone()).with_promotion(1000, 0);
    for t in [&none, &zero] {
        assert_eq!(body_of(t, &big).await.unwrap().len(), 100);
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(memory.lookup(&big).await.unwrap().is_none());
    assert_eq!(none.promoted() + zero.promoted(), 0);
}

#[tokio::test]
async fn tiered_writes_purges_and_updates_both() {
    let dir = TempDir::new("tiered-write");
    let disk = DiskCache::new(dir.path(), 1 << 24).unwrap();
    // Memory takes at most 8 bytes a body: larger ones live on disk only.
    let memory = MemCache::with_eviction(Box::new(lru::Manager::new(1 << 20)), 8);
    let tiers = TieredStorage::new(memory.clone(), disk.clone());
    let k = key("/w");
    store(&tiers, &k, &meta(&[("V", "1")]), b"small")
        .await
        .unwrap();
    assert_eq!(body_of(&memory, &k).await.unwrap(), b"small");
    assert_eq!(body_of(&disk, &k).await.unwrap(), b"small");
    assert!(tiers.update_meta(&k, &meta(&[("V", "2")])).await.unwrap());
    for tier in [&memory as &dyn Storage, &disk] {
        let (m, _) = tier.lookup(&k).await.unwrap().unwrap();
        assert_eq!(m.response_header().get_header("v").unwrap(), "2");
    }
    let big = key("/big");
    store(&tiers, &big, &meta(&[]), b"larger than eight")
        .await
        .unwrap();
    assert!(memory.lookup(&big).await.unwrap().is_none());
    assert_eq!(body_of(&tiers, &big).await.unwrap(), b"larger than eight");
    assert!(tiers.purge(&k).await.unwrap());
    assert!(memory.lookup(&k).await.unwrap().is_none());
    assert!(disk.lookup(&k).await.unwrap().is_none());
    assert!(tiers.support_streaming_partial_write());
}

/// Prints how long a restart takes with 10,000 entries on disk: the scan
/// in `DiskCache::new`, then the first hit.
#[tokio::test]
async fn restart_time_to_first_hit() {
    const ENTRIES: usize = 10_000;
    let dir = TempDir::new("restart-time");
    let cache = DiskCache::new(dir.path(), 1 << 30).unwrap();
    let m = meta(&[
        ("Cache-Control", "max-age=3600"),
        ("Content-Type", "text/plain"),
    ]);
    let body = Bytes::from(vec![b'x'; 1024]);
    let fill = Instant::now();
    for i in 0..ENTRIES {
        let mut miss = cache
            .get_miss_handler(&key(&format!("/{i}")), &m)
            .await
            .unwrap();
        miss.write_body(body.clone()).await.unwrap();
        miss.finish().await.unwrap();
    }
    let fill = fill.elapsed();
    drop(cache);
    let start = Instant::now();
    let cache = DiskCache::new(dir.path(), 1 << 30).unwrap();
    let scanned = start.elapsed();
    let hit = body_of(&cache, &key("/4242")).await.unwrap();
    let first_hit = start.elapsed();
    assert_eq!(hit.len(), 1024);
    assert_eq!(cache.eviction().total_items(), ENTRIES);
    eprintln!(
        "disk cache restart, {ENTRIES} entries of 1 KiB: scan {scanned:?}, \
         time to first hit {first_hit:?} (fill took {fill:?}; page cache warm)"
    );
}

/// Prints what a 64 KiB read costs from the page cache, inline and
/// through the blocking pool: why reads run inline by default. The raw
/// numbers use only `std` (optimised even in a debug build); the hit
/// numbers go through `DiskCache` (checksum and header parsing included,
/// so only meaningful in a release build).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn inline_read_cost() {
    use std::os::unix::fs::FileExt;
    const ROUNDS: u32 = 200;
    let dir = TempDir::new("read-cost");
    let k = key("/cost");
    let body = pattern(64 << 10);
    let raw_path = dir.path().join("raw");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    store(&cache, &k, &meta(&[]), &body).await.unwrap();
    std::fs::write(&raw_path, &body).unwrap();
    let raw_read = |path: &Path| {
        let mut buf = vec![0u8; 64 << 10];
        let f = std::fs::File::open(path).unwrap();
        f.read_exact_at(&mut buf, 0).unwrap();
        buf.len()
    };
    let start = Instant::now();
    for _ in 0..ROUNDS {
        assert_eq!(raw_read(&raw_path), body.len());
    }
    let raw_inline = start.elapsed() / ROUNDS;
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let path = raw_path.clone();
        let n = tokio::task::spawn_blocking(move || raw_read(&path))
            .await
            .unwrap();
        assert_eq!(n, body.len());
    }
    let raw_offloaded = start.elapsed() / ROUNDS;
    let mut hits = Vec::new();
    drop(cache);
    for offload in [false, true] {
        let cache = DiskCache::new(dir.path(), 1 << 24)
            .unwrap()
            .with_offloaded_reads(offload);
        let start = Instant::now();
        for _ in 0..ROUNDS {
            assert_eq!(body_of(&cache, &k).await.unwrap().len(), body.len());
        }
        hits.push(start.elapsed() / ROUNDS);
    }
    eprintln!(
        "64 KiB from the page cache: open+pread inline {raw_inline:?}, through \
         spawn_blocking {raw_offloaded:?}; DiskCache hit inline {:?}, offloaded {:?}",
        hits[0], hits[1]
    );
}

#[tokio::test]
async fn hot_entries_are_served_from_open_files_until_they_go() {
    let dir = TempDir::new("open-files");
    let cache = DiskCache::new(dir.path(), 1 << 24).unwrap();
    let k = key("/hot");
    let body = pattern(200_000);
    store(&cache, &k, &meta(&[("V", "1")]), &body)
        .await
        .unwrap();
    // The first hit opens the file and keeps it open.
    let (_, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), body);
    // Gone from the directory behind the cache's back: the next hits are
    // served from the open file, whole and by range.
    for file in entry_files(dir.path()) {
        std::fs::remove_file(file).unwrap();
    }
    let (m, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(m.response_header().get_header("v").unwrap(), "1");
    assert_eq!(read_all(&mut hit).await.unwrap(), body);
    let (_, mut part) = cache.lookup(&k).await.unwrap().unwrap();
    part.seek(100_000, Some(100_010)).unwrap();
    assert_eq!(read_all(&mut part).await.unwrap(), &body[100_000..100_010]);
    // Purged: never served again, open file or not.
    assert!(cache.purge(&k).await.unwrap());
    assert!(cache.lookup(&k).await.unwrap().is_none());
    // With no open files kept, a missing file is a miss.
    let cold = DiskCache::new(dir.path(), 1 << 24)
        .unwrap()
        .with_open_files(0);
    store(&cold, &k, &meta(&[]), &body).await.unwrap();
    assert!(cold.lookup(&k).await.unwrap().is_some());
    for file in entry_files(dir.path()) {
        std::fs::remove_file(file).unwrap();
    }
    assert!(cold.lookup(&k).await.unwrap().is_none());
}
