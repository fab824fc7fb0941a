//! The layer cache: a built layer's blob, found again by the digest of
//! everything that determines its bytes (the sources' fingerprints, the
//! compression, the epoch, the layer format, Strata's version and the
//! directory links of the layers below). Entries
//! are small typed JSON files in the store's `layers/` directory; `strata
//! cache prune` reads the same type. [`LayerCache`] is the interface, so a
//! cache kept elsewhere (in a registry, as small artifacts) can stand in.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compress::Compression;
use crate::digest::Digest;
use crate::layer::LayerBlob;
use crate::report::Reporter;
use crate::store::Store;

/// Version of the layer format; part of every layer cache key. Bump it with
/// every change that alters the bytes a source or the writer produces for the
/// same inputs (v2: `Status:` in Debian status.d paragraphs), or warm caches
/// would keep serving the old bytes.
pub const FORMAT_VERSION: &str = "strata-layer-v2";

/// The cache key of a layer written above `below` (the directory links its
/// paths resolve through are part of what it is made from).
pub fn key_above(fingerprints: &[&str], comp: &Compression, epoch: u64, below: &crate::tree::Lower) -> Digest {
    let lower = format!("lower {}", below.digest());
    let mut all: Vec<&str> = fingerprints.to_vec();
    all.push(&lower);
    key(&all, comp, epoch)
}

/// The cache key of a layer.
pub fn key(fingerprints: &[&str], comp: &Compression, epoch: u64) -> Digest {
    // The strata version too: a release that forgot to bump FORMAT_VERSION
    // still cannot serve another release's bytes from a shared cache.
    let mut s = format!(
        "{FORMAT_VERSION} strata-{}\ncompression {}\nepoch {epoch}\n",
        env!("CARGO_PKG_VERSION"),
        comp.describe()
    );
    for f in fingerprints {
        s.push_str(f);
        s.push_str("\n--\n");
    }
    Digest::of(s.as_bytes())
}

/// Identity of a blob file (inode, size, mtime seconds and nanoseconds)
/// when it was written or last verified.
pub type Stamp = (u64, u64, i64, i64);

/// One entry, `layers/<key hex>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The key (`sha256:…`).
    pub key: String,
    /// The layer.
    pub blob: LayerBlob,
    /// The blob file's identity when recorded: a blob rewritten or truncated
    /// since then is re-hashed before reuse. Bytes that change without a
    /// change of identity are caught when the blob is copied into an output,
    /// which verifies its digest.
    #[serde(default)]
    pub stamp: Option<Stamp>,
    /// What the layer leaves for the layers above it. Entries without it,
    /// from versions that did not record it, are not used.
    #[serde(default)]
    pub effects: Option<LayerEffects>,
}

/// What a layer leaves for the layers above it: the directory links they
/// resolve paths through, and the inputs of the CA bundle. Recorded with
/// each cached layer, so a layer taken from the cache passes them on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEffects {
    /// Links made, retargeted or replaced.
    #[serde(default)]
    pub links: crate::tree::LinkChanges,
    /// CA bundle inputs.
    #[serde(default)]
    pub ca: crate::sources::cacerts::CaChanges,
    /// The `/etc/ld.so.cache` it leaves.
    #[serde(default)]
    pub ld: crate::sources::deb::ldlayers::LdChanges,
}

/// A layer found in the cache.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The layer.
    pub blob: LayerBlob,
    /// What it leaves for the layers above.
    pub effects: LayerEffects,
}

impl CacheEntry {
    /// Reads an entry file; `None` when it is missing or not an entry.
    pub fn read(path: &Path) -> Option<CacheEntry> {
        let bytes = fs_err::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The file of `key` in `store`.
    pub fn path(store: &Store, key: &Digest) -> PathBuf {
        store.layers_dir().join(format!("{}.json", key.hex()))
    }
}

fn stamp(p: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs_err::metadata(p).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Where built layers are found again.
pub trait LayerCache: Send + Sync {
    /// The layer built for `key` before, verified; `None` when there is none
    /// (or it went bad: it is then forgotten).
    fn lookup(&self, key: &Digest, reporter: &dyn Reporter) -> Option<Cached>;
    /// Remembers the layer built for `key`, with what it leaves for the
    /// layers above it.
    fn record(&self, key: &Digest, blob: &LayerBlob, effects: &LayerEffects);
}

/// The cache in the local store.
pub struct LocalCache<'a> {
    store: &'a Store,
    /// False for `--no-layer-cache`: nothing is found, built layers are still recorded.
    lookups: bool,
}

impl<'a> LocalCache<'a> {
    /// The cache of `store`; `lookups: false` rebuilds every layer.
    pub fn new(store: &'a Store, lookups: bool) -> LocalCache<'a> {
        LocalCache { store, lookups }
    }
}

impl LayerCache for LocalCache<'_> {
    fn lookup(&self, key: &Digest, reporter: &dyn Reporter) -> Option<Cached> {
        if !self.lookups {
            return None;
        }
        let p = CacheEntry::path(self.store, key);
        let e = CacheEntry::read(&p)?;
        let effects = e.effects?;
        let blob_path = self.store.path(&e.blob.digest);
        let now = stamp(&blob_path)?;
        if e.stamp == Some(now) && now.1 == e.blob.size {
            self.store.mark_used(&e.blob.digest);
            return Some(Cached { blob: e.blob, effects });
        }
        match self.store.verify(&e.blob.digest) {
            Ok(true) if now.1 == e.blob.size => {
                self.store.mark_used(&e.blob.digest);
                self.record(key, &e.blob, &effects);
                Some(Cached { blob: e.blob, effects })
            }
            _ => {
                reporter.warn(&format!("layer cache: blob {} was corrupt or changed; rebuilding it", e.blob.digest));
                let _ = fs_err::remove_file(&blob_path);
                let _ = fs_err::remove_file(&p);
                None
            }
        }
    }

    fn record(&self, key: &Digest, blob: &LayerBlob, effects: &LayerEffects) {
        let entry = CacheEntry {
            key: key.to_string(),
            blob: blob.clone(),
            stamp: stamp(&self.store.path(&blob.digest)),
            effects: Some(effects.clone()),
        };
        if let Ok(bytes) = serde_json::to_vec(&entry) {
            let _ = crate::atomic::atomic_write(&CacheEntry::path(self.store, key), &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Algorithm;

    #[test]
    fn key_changes_with_every_input_and_only_then() {
        let gz6 = Compression::new(Algorithm::Gzip, 6);
        let base = key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &gz6, 0);
        assert_eq!(base, key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &gz6, 0));
        let variants = [
            key(&["files-v1\nfile /a text sha256:ab 644 0 0 None\n"], &gz6, 0),
            key(&["files-v1\nfile /a text sha256:aa 755 0 0 None\n"], &gz6, 0),
            key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &Compression::new(Algorithm::Gzip, 9), 0),
            key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &Compression::new(Algorithm::Zstd, 6), 0),
            key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &gz6, 1),
            key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n", "accounts-v1\n"], &gz6, 0),
            key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &Compression { splice: false, ..gz6 }, 0),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }
}
