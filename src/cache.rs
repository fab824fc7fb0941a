//! Looking after the store: how much it holds (`strata cache info`) and
//! removing what builds no longer use (`strata cache prune`).
//!
//! Age is the time since a build last used a blob, read from its access
//! time, which the store sets on every use ([`Store::mark_used`]). Pruning
//! runs under the store's exclusive lock, so no build is running meanwhile:
//! temporary files left by killed processes are safe to remove, and no blob
//! disappears under a build that has already decided to use it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::build::cache::CacheEntry;
use crate::digest::Digest;
use crate::store::{Store, StoreError};

/// What the store holds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Usage {
    /// The store's root directory.
    pub root: PathBuf,
    /// Blobs (artifacts, layers, configs, manifests).
    pub blobs: u64,
    /// Their total size in bytes.
    pub blob_bytes: u64,
    /// Bytes of blobs also hard-linked from elsewhere (image layouts):
    /// removing them from the store does not free that space.
    pub linked_bytes: u64,
    /// Layer cache entries.
    pub layer_entries: u64,
    /// Files and directories under `tmp/` (in use by running processes, or
    /// left by killed ones).
    pub tmp_entries: u64,
    /// Their size in bytes.
    pub tmp_bytes: u64,
    /// Seconds since the least recently used blob was last used.
    pub oldest_use_secs: Option<u64>,
}

/// What pruning removes.
#[derive(Debug, Clone, Copy)]
pub enum Keep {
    /// Keep blobs used within this long; remove the rest.
    UsedWithin(Duration),
    /// Keep nothing.
    Nothing,
}

/// The outcome of [`prune`].
#[derive(Debug, Default, Clone, Serialize)]
pub struct PruneReport {
    /// True when nothing was removed because it was a dry run.
    pub dry_run: bool,
    /// Blobs removed (or that would be).
    pub removed_blobs: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Bytes of removed blobs still hard-linked from image layouts, which
    /// stay on disk until those layouts are deleted.
    pub still_linked_bytes: u64,
    /// Layer cache entries removed (their blob was removed or missing).
    pub removed_layer_entries: u64,
    /// Entries of `tmp/` removed.
    pub removed_tmp_entries: u64,
    /// Their bytes.
    pub removed_tmp_bytes: u64,
    /// Blobs kept.
    pub kept_blobs: u64,
    /// Their bytes.
    pub kept_bytes: u64,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    crate::error::io_err(action, path)
}

fn dir_entries(dir: &Path) -> Result<Vec<fs_err::DirEntry>, StoreError> {
    let mut v = Vec::new();
    for e in fs_err::read_dir(dir).map_err(io_err("reading", dir))? {
        v.push(e.map_err(io_err("reading", dir))?);
    }
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

/// Bytes under a path (a file, or a directory walked without following links).
fn size_of(p: &Path) -> u64 {
    let Ok(m) = fs_err::symlink_metadata(p) else { return 0 };
    if !m.is_dir() {
        return m.len();
    }
    fs_err::read_dir(p).map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum()).unwrap_or(0)
}

struct BlobFile {
    path: PathBuf,
    digest: Option<Digest>,
    size: u64,
    nlink: u64,
    last_use: SystemTime,
}

fn blobs(store: &Store) -> Result<Vec<BlobFile>, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let dir = store.root().join("cas/sha256");
    let mut v = Vec::new();
    for e in dir_entries(&dir)? {
        let path = e.path();
        let m = fs_err::symlink_metadata(&path).map_err(io_err("reading", &path))?;
        let digest = e.file_name().to_str().and_then(|n| Digest::parse(&format!("sha256:{n}")).ok());
        v.push(BlobFile {
            path,
            digest,
            size: m.len(),
            nlink: m.nlink(),
            last_use: m.accessed().or_else(|_| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    Ok(v)
}

/// Reports what the store holds.
pub fn usage(store: &Store, now: SystemTime) -> Result<Usage, StoreError> {
    let mut u = Usage { root: store.root().to_path_buf(), ..Usage::default() };
    for b in blobs(store)? {
        u.blobs += 1;
        u.blob_bytes += b.size;
        if b.nlink > 1 {
            u.linked_bytes += b.size;
        }
        let age = now.duration_since(b.last_use).unwrap_or_default().as_secs();
        u.oldest_use_secs = Some(u.oldest_use_secs.map_or(age, |o| o.max(age)));
    }
    u.layer_entries = dir_entries(&store.layers_dir())?.len() as u64;
    for e in dir_entries(&store.tmp_dir())? {
        u.tmp_entries += 1;
        u.tmp_bytes += size_of(&e.path());
    }
    Ok(u)
}

/// Removes blobs not used within `keep` (all of them for [`Keep::Nothing`]),
/// the layer cache entries that named them, and everything under `tmp/`.
/// `store` must have been opened with [`Store::open_exclusive`].
pub fn prune(store: &Store, keep: Keep, dry_run: bool, now: SystemTime) -> Result<PruneReport, StoreError> {
    let mut r = PruneReport { dry_run, ..PruneReport::default() };
    let mut removed: std::collections::BTreeSet<Digest> = std::collections::BTreeSet::new();
    for b in blobs(store)? {
        let stale = match keep {
            Keep::Nothing => true,
            Keep::UsedWithin(d) => now.duration_since(b.last_use).unwrap_or_default() > d,
        };
        // A name that is not a digest is debris, whatever its age.
        if stale || b.digest.is_none() {
            if !dry_run {
                fs_err::remove_file(&b.path).map_err(io_err("removing", &b.path))?;
            }
            r.removed_blobs += 1;
            r.removed_bytes += b.size;
            if b.nlink > 1 {
                r.still_linked_bytes += b.size;
            }
            if let Some(d) = b.digest {
                removed.insert(d);
            }
        } else {
            r.kept_blobs += 1;
            r.kept_bytes += b.size;
        }
    }
    for e in dir_entries(&store.layers_dir())? {
        let p = e.path();
        // An entry that does not parse is of no use to any build: dangling.
        let blob = CacheEntry::read(&p).map(|e| e.blob.digest);
        let dangling = match blob {
            Some(d) => removed.contains(&d) || !store.contains(&d),
            None => true,
        };
        if dangling {
            if !dry_run {
                fs_err::remove_file(&p).map_err(io_err("removing", &p))?;
            }
            r.removed_layer_entries += 1;
        }
    }
    for e in dir_entries(&store.tmp_dir())? {
        let p = e.path();
        r.removed_tmp_entries += 1;
        r.removed_tmp_bytes += size_of(&p);
        if !dry_run {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir { fs_err::remove_dir_all(&p) } else { fs_err::remove_file(&p) }
                .map_err(io_err("removing", &p))?;
        }
    }
    Ok(r)
}

pub use crate::units::parse_age;

#[cfg(test)]
mod tests {
    use super::*;

    fn age(store: &Store, d: &Digest, days: u64) {
        let f = fs_err::File::open(store.path(d)).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(SystemTime::now() - Duration::from_secs(days * 86_400)))
            .unwrap();
    }

    #[test]
    fn prune_keeps_what_was_used_recently_and_drops_dangling_layer_entries() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let old = store.put_bytes(b"old artifact").unwrap();
        let fresh = store.put_bytes(b"fresh artifact").unwrap();
        let reused = store.put_bytes(b"old but used again").unwrap();
        age(&store, &old, 40);
        age(&store, &fresh, 2);
        age(&store, &reused, 40);
        store.mark_used(&reused);
        let entry = |d: &Digest| {
            let blob = crate::layer::LayerBlob {
                digest: *d,
                diff_id: *d,
                size: 1,
                tar_size: 1,
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            };
            serde_json::to_vec(&CacheEntry { key: "k".into(), blob, stamp: None, effects: None }).unwrap()
        };
        fs_err::write(store.layers_dir().join("a.json"), entry(&old)).unwrap();
        fs_err::write(store.layers_dir().join("b.json"), entry(&fresh)).unwrap();
        fs_err::write(store.tmp_dir().join("part-left-by-a-kill"), b"xyz").unwrap();
        fs_err::create_dir(store.tmp_dir().join("build-left")).unwrap();
        fs_err::write(store.tmp_dir().join("build-left/spool"), b"12345").unwrap();
        drop(store);

        let store = Store::open_exclusive(t.path(), &mut |_| panic!("nobody else holds the store")).unwrap();
        let now = SystemTime::now();
        let dry = prune(&store, Keep::UsedWithin(Duration::from_secs(30 * 86_400)), true, now).unwrap();
        assert_eq!((dry.removed_blobs, dry.removed_layer_entries, dry.removed_tmp_entries), (1, 1, 2));
        assert!(store.contains(&old), "a dry run removes nothing");
        let r = prune(&store, Keep::UsedWithin(Duration::from_secs(30 * 86_400)), false, now).unwrap();
        assert_eq!((r.removed_blobs, r.removed_bytes, r.kept_blobs), (1, 12, 2));
        assert_eq!((r.removed_layer_entries, r.removed_tmp_entries, r.removed_tmp_bytes), (1, 2, 8));
        assert!(!store.contains(&old) && store.contains(&fresh) && store.contains(&reused));
        assert!(!store.layers_dir().join("a.json").exists() && store.layers_dir().join("b.json").exists());
        assert_eq!(fs_err::read_dir(store.tmp_dir()).unwrap().count(), 0);

        let r = prune(&store, Keep::Nothing, false, now).unwrap();
        assert_eq!((r.removed_blobs, r.kept_blobs, r.removed_layer_entries), (2, 0, 1));
        let u = usage(&store, now).unwrap();
        assert_eq!((u.blobs, u.layer_entries, u.tmp_entries), (0, 0, 0));
    }

    #[test]
    fn an_open_store_makes_pruning_wait() {
        let t = tempfile::tempdir().unwrap();
        let user = Store::open(t.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let root = t.path().to_path_buf();
        let pruner = std::thread::spawn(move || {
            let mut waited = false;
            let s = Store::open_exclusive(&root, &mut |_| waited = true).unwrap();
            tx.send(()).unwrap();
            drop(s);
            waited
        });
        // While `user` is alive the pruner cannot get in.
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        drop(user);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(pruner.join().unwrap());
    }
}
