//! The layer cache in a registry (`--cache-from REF`, `--cache-to REF`):
//! each entry is a small OCI artifact in the repository of REF, tagged
//! `layer-<key hex>`, whose config blob is the entry (key, layer blob,
//! effects) and whose blobs are the layer blob itself (and the CA inputs it
//! names). A runner with an empty local cache finds the layer's digest,
//! diff_id and size there without downloading a byte of what went into it;
//! the blob is read only when the output needs its bytes, and a push to the
//! same registry mounts it.
//!
//! Sources that must read their fetched artifacts to plan (the `python:`
//! source reads every wheel) leave a plan entry, tagged `plan-<key hex>`,
//! keyed by everything their planning reads (the pinned wheels' digests and
//! the install settings): the layer names, fingerprints and SBOM packages.
//!
//! Nothing unverified is used: an entry whose key, media types, blob digest
//! or size does not check out is ignored with a warning. Entries are
//! content-addressed and their bytes depend only on their inputs, so two
//! runners writing the same entry write the same bytes.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::cache::{Cached, LayerEffects};
use crate::digest::Digest;
use crate::image::read_blob;
use crate::layer::LayerBlob;
use crate::oci::{media, Descriptor, Manifest, RawManifest, Reference};
use crate::registry::{Client, RemoteSource};
use crate::report::Reporter;
use crate::store::Store;

/// `artifactType` of a layer cache entry.
pub const LAYER_ARTIFACT_TYPE: &str = "application/vnd.strata.layer-cache.v1";
/// Media type of a layer cache entry's config blob.
pub const LAYER_ENTRY_MEDIA_TYPE: &str = "application/vnd.strata.layer-cache.entry.v1+json";
/// `artifactType` of a plan entry.
pub const PLAN_ARTIFACT_TYPE: &str = "application/vnd.strata.plan-cache.v1";
/// Media type of a plan entry's config blob.
pub const PLAN_ENTRY_MEDIA_TYPE: &str = "application/vnd.strata.plan-cache.entry.v1+json";
/// Annotation naming the key of an entry.
pub const KEY_ANNOTATION: &str = "dev.strata.cache.key";
/// The largest entry config read.
const MAX_ENTRY: u64 = 4 << 20;

/// The config blob of a layer cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEntry {
    /// Format version (1).
    pub version: u32,
    /// The layer cache key (`sha256:…`).
    pub key: String,
    /// The layer.
    pub blob: LayerBlob,
    /// What the layer leaves for the layers above.
    pub effects: LayerEffects,
}

/// One planned part, as a plan entry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPart {
    /// The part's name (sources that split).
    pub name: Option<String>,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its SBOM packages.
    pub packages: Vec<crate::sbom::Package>,
}

/// The config blob of a plan entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Format version (1).
    pub version: u32,
    /// The plan key (`sha256:…`).
    pub key: String,
    /// The parts.
    pub parts: Vec<PlannedPart>,
}

/// The key of a source's plan entry from what its planning reads.
pub fn plan_key(inputs: &str) -> Digest {
    Digest::of(
        format!("strata-plan-v1 {} strata-{}\n{inputs}", super::cache::FORMAT_VERSION, env!("CARGO_PKG_VERSION"))
            .as_bytes(),
    )
}

/// A layer found in the registry.
#[derive(Debug, Clone)]
struct RemoteHit {
    /// The entry's manifest, by digest.
    entry: Reference,
    blob: LayerBlob,
    effects: LayerEffects,
}

/// The registry cache of one build.
pub struct RegistryCache {
    client: Client,
    from: Vec<Reference>,
    to: Option<Reference>,
    hits: Mutex<HashMap<Digest, Option<RemoteHit>>>,
    plans: Mutex<HashMap<Digest, Option<Vec<PlannedPart>>>>,
    pushed: Mutex<HashMap<Digest, ()>>,
    broken: Mutex<Vec<String>>,
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache").field("from", &self.from).field("to", &self.to).finish()
    }
}

/// What a registry cache did in one build.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct RemoteStats {
    /// Layers found in the registry.
    pub hits: usize,
    /// Layer blobs downloaded because the output needed their bytes.
    pub blobs_downloaded: usize,
    /// Their bytes.
    pub bytes_downloaded: u64,
    /// Entries written.
    pub written: usize,
}

fn tag(prefix: &str, key: &Digest) -> String {
    format!("{prefix}-{}", key.hex())
}

impl RegistryCache {
    /// Reads entries from `from` (the repositories of these references, in
    /// order) and writes them to `to`; `to` is read too.
    pub fn new(client: Client, mut from: Vec<Reference>, to: Option<Reference>) -> RegistryCache {
        if let Some(t) = &to {
            if !from.iter().any(|f| f.registry == t.registry && f.repository == t.repository) {
                from.push(t.clone());
            }
        }
        RegistryCache {
            client,
            from,
            to,
            hits: Mutex::new(HashMap::new()),
            plans: Mutex::new(HashMap::new()),
            pushed: Mutex::new(HashMap::new()),
            broken: Mutex::new(Vec::new()),
        }
    }

    fn at(r: &Reference, tag: String) -> Reference {
        Reference { registry: r.registry.clone(), repository: r.repository.clone(), tag: Some(tag), digest: None }
    }

    /// Reads an entry's manifest and config; `None` when absent, a warning
    /// when it cannot be used.
    fn read_entry(
        &self,
        repo: &Reference,
        tag: String,
        artifact_type: &str,
        config_type: &str,
        reporter: &dyn Reporter,
    ) -> Option<(RemoteSource, Manifest, Vec<u8>)> {
        if self.broken.lock().ok()?.contains(&repo.repo_display()) {
            return None;
        }
        let r = Self::at(repo, tag.clone());
        let src = match self.client.open(&r) {
            Ok(s) => s,
            Err(e) if e.status() == Some(404) => return None,
            Err(e) => {
                reporter.warn(&format!("registry cache {}: {e}; going on without it", repo.repo_display()));
                if let Ok(mut b) = self.broken.lock() {
                    b.push(repo.repo_display());
                }
                return None;
            }
        };
        let bad = |why: &str| {
            reporter.warn(&format!(
                "registry cache {}: entry {tag} is not valid ({why}); ignoring it",
                repo.repo_display()
            ));
            None
        };
        let Ok(m) = src.root_manifest().manifest("cache entry") else { return bad("not an image manifest") };
        if m.artifact_type.as_deref() != Some(artifact_type) || m.config.media_type != config_type {
            return bad("not a strata cache entry of this kind");
        }
        if m.config.size > MAX_ENTRY {
            return bad("its config is too large");
        }
        match read_blob(&src, &m.config) {
            Ok(b) => Some((src, m, b)),
            Err(e) => bad(&format!("its config cannot be read: {e}")),
        }
    }

    /// The layer built for `key`, when an entry in one of the repositories
    /// checks out. CA input blobs it names are downloaded into `store`
    /// (they are small); the layer blob is not.
    pub fn lookup(&self, key: &Digest, store: &Store, reporter: &dyn Reporter) -> Option<Cached> {
        if let Some(h) = self.hits.lock().ok()?.get(key) {
            return h.as_ref().map(|h| Cached { blob: h.blob.clone(), effects: h.effects.clone() });
        }
        let mut found = None;
        for repo in &self.from {
            let Some((src, m, config)) =
                self.read_entry(repo, tag("layer", key), LAYER_ARTIFACT_TYPE, LAYER_ENTRY_MEDIA_TYPE, reporter)
            else {
                continue;
            };
            match self.check_layer_entry(&src, key, &m, &config, store) {
                Ok(e) => {
                    let entry = repo.with_digest(src.root_manifest().digest);
                    found = Some(RemoteHit { entry, blob: e.blob, effects: e.effects });
                    break;
                }
                Err(why) => reporter.warn(&format!(
                    "registry cache {}: entry {} is not valid ({why}); ignoring it",
                    repo.repo_display(),
                    tag("layer", key)
                )),
            }
        }
        if let Some(h) = &found {
            self.client.remember_blobs(&h.entry, [h.blob.digest]);
        }
        let out = found.as_ref().map(|h| Cached { blob: h.blob.clone(), effects: h.effects.clone() });
        if let Ok(mut hits) = self.hits.lock() {
            hits.insert(*key, found);
        }
        out
    }

    fn check_layer_entry(
        &self,
        src: &RemoteSource,
        key: &Digest,
        m: &Manifest,
        config: &[u8],
        store: &Store,
    ) -> Result<LayerEntry, String> {
        let e: LayerEntry = serde_json::from_slice(config).map_err(|e| format!("its config is not an entry: {e}"))?;
        if e.version != 1 {
            return Err(format!("entry version {}", e.version));
        }
        if e.key != key.to_string() || m.annotations.get(KEY_ANNOTATION) != Some(&e.key) {
            return Err(format!("it is the entry of {}, not of {key}", e.key));
        }
        let ca: Vec<&Digest> = crate::sources::cacerts::CaState::blobs(&e.effects.ca).collect();
        let Some(layer) = m.layers.first() else { return Err("it has no layer blob".into()) };
        if layer.digest != e.blob.digest || layer.size != e.blob.size || layer.media_type != e.blob.media_type {
            return Err(format!(
                "its blob {} ({} bytes) is not the layer it names, {} ({} bytes)",
                layer.digest, layer.size, e.blob.digest, e.blob.size
            ));
        }
        if m.layers.len() != 1 + ca.len() || m.layers[1..].iter().zip(&ca).any(|(d, c)| d.digest != **c) {
            return Err("its blobs are not the ones its effects name".into());
        }
        match self.client.blob_size(src.reference(), &layer.digest) {
            Ok(Some(n)) if n == layer.size => {}
            Ok(Some(n)) => {
                return Err(format!("the registry holds {n} bytes for {}, not {}", layer.digest, layer.size))
            }
            Ok(None) => return Err(format!("the registry does not hold its blob {}", layer.digest)),
            Err(e) => return Err(e.to_string()),
        }
        for d in &m.layers[1..] {
            if !store.contains(&d.digest) {
                download(src, d, store).map_err(|e| format!("{}: {e}", d.digest))?;
            }
        }
        Ok(e)
    }

    /// Downloads the blob of a layer found in the registry into the store
    /// (for outputs that need its bytes) and checks its diff_id and size
    /// as well. Returns the bytes downloaded (0 when the store has it or it
    /// was not found in the registry). A blob that does not check out is
    /// forgotten (the next attempt builds the layer) and reported.
    pub fn materialize(&self, blob: &LayerBlob, store: &Store) -> Result<u64, String> {
        if store.contains(&blob.digest) {
            return Ok(0);
        }
        let hit = {
            let hits = self.hits.lock().map_err(|_| "poisoned".to_string())?;
            hits.iter().find(|(_, h)| h.as_ref().is_some_and(|h| h.blob == *blob)).map(|(k, h)| (*k, h.clone()))
        };
        let Some((key, Some(h))) = hit else { return Ok(0) };
        let forget = |why: String| {
            let _ = fs_err::remove_file(store.path(&blob.digest));
            if let Ok(mut hits) = self.hits.lock() {
                hits.insert(key, None);
            }
            why
        };
        let src = self.client.open(&h.entry).map_err(|e| forget(e.to_string()))?;
        let d = Descriptor::new(h.blob.media_type.clone(), h.blob.digest, h.blob.size);
        let n = download(&src, &d, store).map_err(forget)?;
        let f = fs_err::File::open(store.path(&blob.digest)).map_err(|e| forget(e.to_string()))?;
        let r = crate::archive::decompress(std::io::BufReader::new(f), "cached layer")
            .map_err(|e| forget(e.to_string()))?;
        let (diff_id, tar_size) = crate::digest::hash_reader(r).map_err(|e| forget(e.to_string()))?;
        if diff_id != blob.diff_id || tar_size != blob.tar_size {
            return Err(forget(format!(
                "its uncompressed bytes hash to {diff_id} ({tar_size} bytes), not {} ({} bytes)",
                blob.diff_id, blob.tar_size
            )));
        }
        Ok(n)
    }
}

impl RegistryCache {
    /// Whether entries are written (`--cache-to`).
    pub fn writes(&self) -> bool {
        self.to.is_some()
    }

    /// The parts a source planned for `key` (see [`plan_key`]).
    pub fn plan(&self, key: &Digest, reporter: &dyn Reporter) -> Option<Vec<PlannedPart>> {
        if let Some(p) = self.plans.lock().ok()?.get(key) {
            return p.clone();
        }
        let mut found = None;
        for repo in &self.from {
            let t = tag("plan", key);
            let Some((_, m, config)) =
                self.read_entry(repo, t.clone(), PLAN_ARTIFACT_TYPE, PLAN_ENTRY_MEDIA_TYPE, reporter)
            else {
                continue;
            };
            match serde_json::from_slice::<PlanEntry>(&config) {
                Ok(e)
                    if e.version == 1
                        && e.key == key.to_string()
                        && m.annotations.get(KEY_ANNOTATION) == Some(&e.key)
                        && !e.parts.is_empty() =>
                {
                    found = Some(e.parts);
                    break;
                }
                Ok(e) => reporter.warn(&format!(
                    "registry cache {}: entry {t} is not valid (it is the entry of {}, not of {key}); ignoring it",
                    repo.repo_display(),
                    e.key
                )),
                Err(e) => reporter.warn(&format!(
                    "registry cache {}: entry {t} is not valid (its config is not a plan: {e}); ignoring it",
                    repo.repo_display()
                )),
            }
        }
        if let Ok(mut plans) = self.plans.lock() {
            plans.insert(*key, found.clone());
        }
        found
    }

    /// Writes an artifact (config `config` of `config_type`, then `blobs`
    /// from the store) tagged `tag` to the `--cache-to` repository, unless
    /// it is there already. Failures are warnings: the build goes on.
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        tag: String,
        key: &Digest,
        artifact_type: &str,
        config_type: &str,
        config: &[u8],
        blobs: Vec<Descriptor>,
        store: &Store,
        reporter: &dyn Reporter,
    ) -> bool {
        let Some(to) = &self.to else { return false };
        if self.pushed.lock().map(|p| p.contains_key(key)).unwrap_or(false) {
            return false;
        }
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(KEY_ANNOTATION.to_string(), key.to_string());
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media::MANIFEST.to_string()),
            artifact_type: Some(artifact_type.to_string()),
            config: Descriptor::of(config_type, config),
            layers: blobs,
            subject: None,
            annotations,
        };
        let result = (|| -> Result<bool, String> {
            let raw = RawManifest::encode(&m, media::MANIFEST).map_err(|e| e.to_string())?;
            let at = Self::at(to, tag.clone());
            match self.client.get_manifest(&at) {
                Ok(existing) if existing.digest == raw.digest => return Ok(false),
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.to_string()),
            }
            for d in &m.layers {
                if d.media_type == media::EMPTY {
                    self.client.push_blob_bytes(to, b"{}", media::EMPTY).map_err(|e| e.to_string())?;
                    continue;
                }
                let p = store.path(&d.digest);
                if !p.is_file() {
                    return Err(format!("{} is not in the local cache", d.digest));
                }
                self.client.push_blob_file(to, &p, d.digest, d.size, &d.media_type).map_err(|e| e.to_string())?;
            }
            self.client.push_blob_bytes(to, config, config_type).map_err(|e| e.to_string())?;
            self.client.push_manifest(to, &raw.bytes, media::MANIFEST, Some(&tag)).map_err(|e| e.to_string())?;
            Ok(true)
        })();
        if let Ok(mut p) = self.pushed.lock() {
            p.insert(*key, ());
        }
        match result {
            Ok(w) => w,
            Err(e) => {
                reporter.warn(&format!("registry cache {}: could not write {tag}: {e}", to.repo_display()));
                false
            }
        }
    }

    /// Writes the layer cache entry of `key` (the blob must be in the store).
    pub fn record_layer(
        &self,
        key: &Digest,
        blob: &LayerBlob,
        effects: &LayerEffects,
        store: &Store,
        reporter: &dyn Reporter,
    ) -> bool {
        let entry = LayerEntry { version: 1, key: key.to_string(), blob: blob.clone(), effects: effects.clone() };
        let Ok(config) = crate::oci::canonical::to_vec(&entry) else { return false };
        let mut blobs = vec![Descriptor::new(blob.media_type.clone(), blob.digest, blob.size)];
        for d in crate::sources::cacerts::CaState::blobs(&effects.ca) {
            let size = fs_err::metadata(store.path(d)).map(|m| m.len()).unwrap_or(0);
            blobs.push(Descriptor::new("application/octet-stream", *d, size));
        }
        self.put(tag("layer", key), key, LAYER_ARTIFACT_TYPE, LAYER_ENTRY_MEDIA_TYPE, &config, blobs, store, reporter)
    }

    /// Writes the plan entry of `key`.
    pub fn record_plan(&self, key: &Digest, parts: &[PlannedPart], store: &Store, reporter: &dyn Reporter) -> bool {
        if self.plans.lock().map(|p| matches!(p.get(key), Some(Some(_)))).unwrap_or(false) {
            return false;
        }
        let entry = PlanEntry { version: 1, key: key.to_string(), parts: parts.to_vec() };
        let Ok(config) = crate::oci::canonical::to_vec(&entry) else { return false };
        let empty = vec![Descriptor::of(media::EMPTY, b"{}")];
        self.put(tag("plan", key), key, PLAN_ARTIFACT_TYPE, PLAN_ENTRY_MEDIA_TYPE, &config, empty, store, reporter)
    }
}

fn download(src: &RemoteSource, d: &Descriptor, store: &Store) -> Result<u64, String> {
    crate::mirror::download_blob(src, d, store)
}
