//! Remembered blob locations: after a push or pull, which repositories of
//! a registry hold which blobs. A later push to another repository of the
//! same registry tries a cross-repository mount from there before
//! uploading. It is only a hint: a failed mount falls back to an upload.
//! Stored as JSON in the cache (`registry/blob-locations.json`), written
//! atomically; concurrent writers may lose each other's entries, which
//! only costs a mount.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Repositories remembered per digest.
const PER_DIGEST: usize = 3;
/// Digests remembered per registry.
const PER_REGISTRY: usize = 50_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    #[serde(default)]
    registries: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// The remembered locations (a snapshot read at open).
#[derive(Debug, Default)]
pub(crate) struct BlobMemory {
    path: Option<PathBuf>,
    data: Data,
}

impl BlobMemory {
    /// Reads the file (missing or unreadable: empty); `None` disables remembering.
    pub fn open(path: Option<PathBuf>) -> BlobMemory {
        let data = path
            .as_ref()
            .and_then(|p| fs_err::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        BlobMemory { path, data }
    }

    /// A repository of `host` other than `except` known to hold `d`.
    pub fn source_for(&self, host: &str, d: &Digest, except: &str) -> Option<String> {
        self.data.registries.get(host)?.get(&d.to_string())?.iter().find(|r| r.as_str() != except).cloned()
    }

    /// Records that `repo` of `host` holds `digests`.
    pub fn record(&self, host: &str, repo: &str, digests: impl IntoIterator<Item = Digest>) {
        let Some(path) = &self.path else { return };
        let mut data: Data = fs_err::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let reg = data.registries.entry(host.to_string()).or_default();
        for d in digests {
            let key = d.to_string();
            if reg.len() >= PER_REGISTRY && !reg.contains_key(&key) {
                continue;
            }
            let list = reg.entry(key).or_default();
            list.retain(|r| r != repo);
            list.insert(0, repo.to_string());
            list.truncate(PER_DIGEST);
        }
        if let Some(parent) = path.parent() {
            let _ = fs_err::create_dir_all(parent);
        }
        if let Ok(bytes) = serde_json::to_vec(&data) {
            let _ = crate::atomic::atomic_write(path, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_most_recent_other_repository() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("registry/blob-locations.json");
        let blob = Digest::of(b"layer");
        BlobMemory::open(Some(p.clone())).record("r.io", "a", [blob]);
        BlobMemory::open(Some(p.clone())).record("r.io", "b", [blob]);
        let m = BlobMemory::open(Some(p));
        assert_eq!(m.source_for("r.io", &blob, "c").as_deref(), Some("b"));
        assert_eq!(m.source_for("r.io", &blob, "b").as_deref(), Some("a"));
        assert_eq!(m.source_for("other.io", &blob, "c"), None);
        BlobMemory::open(None).record("r.io", "x", [blob]); // disabled: no effect, no error
    }
}
