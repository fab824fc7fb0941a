//! `/etc/ld.so.cache` across layers. The `debs:` stand-in of a layer lists
//! the libraries of that layer; a `debs:` layer above another one (a tools
//! layer over the Debian base) would hide the cache below, and with it
//! `libc.so.6`, from `ldconfig -p`. So once a layer's stand-in wrote a
//! cache and a cache exists below, the layer's cache is written again as
//! the union of both (ldconfig over the whole image would list both too).
//! The cache below is carried in the store by digest, like the CA bundle's
//! inputs, so a layer taken from the build cache passes it on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::store::Store;
use crate::tree::{Entry, Kind, Tree, TreePath};

use super::ldcache::{read_cache, write_cache};
use super::standins::CA_STANDIN_ORIGIN;
use crate::sources::SourceError;

const LD_CACHE: &str = "etc/ld.so.cache";

/// The `/etc/ld.so.cache` the layers below leave (bytes in the store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdState {
    /// The newest cache a stand-in wrote below.
    pub cache: Option<Digest>,
}

/// How one layer changes the [`LdState`] (recorded with cached layers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdChanges {
    /// The cache this layer leaves (as written, merged with the one below).
    #[serde(default)]
    pub cache: Option<Digest>,
    /// When the layer merged a cache from below: that cache. A cached layer
    /// is reused only over the same one.
    #[serde(default)]
    pub made_from: Option<Digest>,
}

impl LdState {
    /// Applies one layer's changes.
    pub fn apply(&mut self, changes: &LdChanges) {
        if let Some(c) = changes.cache {
            self.cache = Some(c);
        }
    }

    /// Whether a layer with these changes was made over this state.
    pub fn fits(&self, changes: &LdChanges, store: &Store) -> bool {
        changes.made_from.is_none_or(|d| self.cache == Some(d)) && changes.cache.is_none_or(|d| store.contains(&d))
    }
}

fn read(tree: &Tree, p: &TreePath) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    let Some(Entry { kind: Kind::File { content, .. }, .. }) = tree.get(p) else { return Ok(Vec::new()) };
    let mut v = Vec::new();
    content
        .open()
        .and_then(|r| r.take(64 << 20).read_to_end(&mut v))
        .map_err(|e| SourceError::Message(format!("reading /{p}: {e}")))?;
    Ok(v)
}

/// Merges the cache of `tree` (when a `debs:` stand-in wrote it) with the
/// one below. Returns what the layer changes.
pub fn update_cache(tree: &mut Tree, below: &LdState, store: &Store) -> Result<LdChanges, SourceError> {
    let path = TreePath::from_image_path(LD_CACHE).map_err(|e| SourceError::Message(format!("ld.so.cache: {e}")))?;
    match tree.get(&path) {
        Some(e) if &*e.origin == CA_STANDIN_ORIGIN => {}
        _ => return Ok(LdChanges::default()),
    }
    let here = read(tree, &path)?;
    let Some(below_digest) = below.cache else {
        return Ok(LdChanges { cache: Some(store.put_bytes(&here)?), made_from: None });
    };
    let below_path = store.path(&below_digest);
    let below_bytes = fs_err::read(&below_path).map_err(SourceError::io("reading from the cache", &below_path))?;
    let found = Digest::of(&below_bytes);
    if found != below_digest {
        return Err(SourceError::corrupt_cache("the ld.so.cache below", &below_path, below_digest, found));
    }
    store.mark_used(&below_digest);
    let bad = |e| SourceError::Message(format!("ld.so.cache: {e}"));
    let mut entries = read_cache(&here).map_err(bad)?;
    for e in read_cache(&below_bytes).map_err(bad)? {
        if !entries.contains(&e) {
            entries.push(e);
        }
    }
    let merged = write_cache(&entries);
    let origin: Arc<str> = Arc::from(CA_STANDIN_ORIGIN);
    tree.remove(&path);
    tree.insert(path, Entry::bytes(merged.clone(), 0o644, &origin))?;
    Ok(LdChanges { cache: Some(store.put_bytes(&merged)?), made_from: Some(below_digest) })
}

#[cfg(test)]
mod tests {
    use super::super::ldcache::{CacheEntry, FLAG_X86_64_LIBC6};
    use super::*;

    fn entry(key: &str, path: &str) -> CacheEntry {
        CacheEntry { key: key.into(), path: path.into(), flags: FLAG_X86_64_LIBC6 }
    }

    fn tree_with(entries: &[CacheEntry], origin: &str) -> Tree {
        let o: Arc<str> = Arc::from(origin);
        let mut t = Tree::new();
        t.insert(TreePath::from_image_path(LD_CACHE).unwrap(), Entry::bytes(write_cache(entries), 0o644, &o)).unwrap();
        t
    }

    fn keys(t: &Tree) -> Vec<String> {
        let b = read(t, &TreePath::from_image_path(LD_CACHE).unwrap()).unwrap();
        read_cache(&b).unwrap().into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn a_cache_above_keeps_the_libraries_below() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let libc = entry("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6");
        let curl = entry("libcurl.so.4", "/lib/x86_64-linux-gnu/libcurl.so.4");
        let mut state = LdState::default();
        // The base layer: its cache stays as written.
        let mut base = tree_with(std::slice::from_ref(&libc), CA_STANDIN_ORIGIN);
        let fx = update_cache(&mut base, &state, &store).unwrap();
        assert_eq!(keys(&base), ["libc.so.6"]);
        assert!(fx.made_from.is_none());
        state.apply(&fx);
        // A layer without a cache changes nothing.
        let mut plain = Tree::new();
        assert_eq!(update_cache(&mut plain, &state, &store).unwrap(), LdChanges::default());
        // A cache some other source wrote is the user's: left alone.
        let mut own = tree_with(std::slice::from_ref(&curl), "files");
        assert_eq!(update_cache(&mut own, &state, &store).unwrap(), LdChanges::default());
        assert_eq!(keys(&own), ["libcurl.so.4"]);
        // A tools layer above: both, in the loader's order, once each.
        let mut tools = tree_with(&[curl.clone(), libc.clone()], CA_STANDIN_ORIGIN);
        let fx2 = update_cache(&mut tools, &state, &store).unwrap();
        assert_eq!(keys(&tools), ["libcurl.so.4", "libc.so.6"]);
        assert_eq!(fx2.made_from, state.cache);
        assert!(state.fits(&fx2, &store));
        let other = LdState { cache: Some(Digest::of(b"x")) };
        assert!(!other.fits(&fx2, &store), "a cached layer is reused only over the same cache below");
    }
}
