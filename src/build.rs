//! The build pipeline: spec → artifacts fetched → layers planned, taken from
//! the layer cache or written → config and manifest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::info_span;

use crate::compress::Compression;
use crate::digest::Digest;
use crate::fetch::{Artifact, FetchError, FetchOptions, FetchSummary, Fetcher};
use crate::image::{assemble, BuiltImage, ImageError, ImageLayer, RuntimeConfig};
use crate::layer::{write_layer, LayerBlob, LayerError, LayerSettings};
use crate::lock::Lock;
use crate::report::{task_id, Reporter, TaskKind};
use crate::sources::{sources_of, Context, Part, Source, SourceError};
use crate::spec::{parse_platform, parse_port, LoadedSpec};
use crate::store::{Store, StoreError};
use crate::tree::Tree;

/// Version of the layer format; part of every layer cache key. Bump it with
/// every change that alters the bytes a source or the writer produces for the
/// same inputs (v2: `Status:` in Debian status.d paragraphs), or warm caches
/// would keep serving the old bytes.
pub const FORMAT_VERSION: &str = "strata-layer-v2";

/// The most layers an image may have; deeper images are refused by common
/// container runtimes (overlayfs stacking limits).
pub const MAX_LAYERS: usize = crate::sources::python::layering::MAX_IMAGE_LAYERS;

/// The most layers written at once. Each writer holds its own buffers
/// (up to 8 MiB of tar bytes plus the compressor's blocks), so this bounds
/// memory on machines with many cores.
pub const MAX_PARALLEL_LAYERS: usize = 4;

/// Build options that do not come from the spec.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Cache root.
    pub cache: PathBuf,
    /// Compression threads, and the most layers written at once (capped at
    /// [`MAX_PARALLEL_LAYERS`]); the bytes do not depend on it.
    pub threads: usize,
    /// Fetch behaviour (offline, mirrors, rewrites).
    pub fetch: FetchOptions,
    /// `SOURCE_DATE_EPOCH`, which overrides the spec's epoch.
    pub source_date_epoch: Option<u64>,
    /// Ignore the layer cache (always rebuild layers).
    pub no_layer_cache: bool,
    /// The `strata-verify` binary for specs with a `gpu:` section
    /// (default: `strata-verify` next to the running executable).
    pub verifier: Option<PathBuf>,
    /// Build even when the lock is missing or stale (Debian packages are then
    /// resolved against the live archive); the image records it.
    pub unlocked: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            cache: Store::default_root(),
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            fetch: FetchOptions::default(),
            source_date_epoch: None,
            no_layer_cache: false,
            verifier: None,
            unlocked: false,
        }
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Fetching failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A source failed.
    #[error("layer `{layer}` ({file} {node}): {source}")]
    Source {
        /// Layer name.
        layer: String,
        /// Spec file.
        file: String,
        /// Node path.
        node: String,
        /// The error.
        #[source]
        source: SourceError,
    },
    /// Writing a layer failed.
    #[error("layer `{layer}`: {source}")]
    Layer {
        /// Layer name.
        layer: String,
        /// The error.
        #[source]
        source: LayerError,
    },
    /// The image could not be assembled.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other.
    #[error("{0}")]
    Other(String),
}

/// One layer of the result, for summaries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerSummary {
    /// Name.
    pub name: String,
    /// The blob.
    #[serde(flatten)]
    pub blob: LayerBlob,
    /// Taken from the layer cache.
    pub cached: bool,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image.
    pub image: BuiltImage,
    /// Per-layer summaries.
    pub layers: Vec<LayerSummary>,
    /// Fetch summary.
    pub fetch: FetchSummary,
    /// Epoch used.
    pub epoch: u64,
    /// Packages per layer, for the SBOM.
    pub packages: Vec<crate::sbom::LayerPackages>,
}

/// What a layer leaves for the layers above it: the directory links they
/// resolve paths through, and the inputs of the CA bundle. Recorded with
/// each cached layer, so a layer taken from the cache passes them on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LayerEffects {
    /// Links made, retargeted or replaced.
    #[serde(default)]
    pub links: crate::tree::LinkChanges,
    /// CA bundle inputs.
    #[serde(default)]
    pub ca: crate::sources::cacerts::CaChanges,
}

/// What the layers below one layer leave for it.
#[derive(Debug, Clone, Default)]
struct Below {
    links: Arc<crate::tree::Lower>,
    ca: crate::sources::cacerts::CaState,
}

impl Below {
    fn apply(&mut self, fx: &LayerEffects, layer: &str) -> Result<(), BuildError> {
        if !fx.links.set.is_empty() || !fx.links.removed.is_empty() {
            let mut links = (*self.links).clone();
            links.apply(&fx.links, layer).map_err(|e| BuildError::Other(format!("layer `{layer}`: {e}")))?;
            self.links = Arc::new(links);
        }
        self.ca.apply(&fx.ca);
        Ok(())
    }

    /// True when a cached layer with these effects was made over this state
    /// (its CA bundle, if it wrote one, from the same inputs) and every blob
    /// the effects name is still in the store.
    fn fits(&self, fx: &LayerEffects, store: &Store) -> bool {
        let same_ca = fx.ca.made_from.is_none_or(|d| d == self.ca.digest());
        same_ca && crate::sources::cacerts::CaState::blobs(&fx.ca).all(|d| store.contains(d))
    }
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    key: String,
    blob: LayerBlob,
    /// What the layer leaves for the layers above (entries without it, from
    /// older versions, are not used).
    #[serde(default)]
    effects: Option<LayerEffects>,
    /// Identity of the blob file when it was written or last verified: a
    /// blob rewritten or truncated since then is re-hashed before reuse.
    /// Bytes that change without a change of identity are caught when the
    /// blob is copied into an output, which verifies its digest.
    #[serde(default)]
    stamp: Option<(u64, u64, i64, i64)>,
}

fn stamp(p: &std::path::Path) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// The cache key of a layer written above `below` (the directory links its
/// paths resolve through are part of what it is made from).
fn layer_key_above(fingerprints: &[&str], comp: &Compression, epoch: u64, below: &crate::tree::Lower) -> Digest {
    let lower = format!("lower {}", below.digest());
    let mut all: Vec<&str> = fingerprints.to_vec();
    all.push(&lower);
    layer_key(&all, comp, epoch)
}

fn layer_key(fingerprints: &[&str], comp: &Compression, epoch: u64) -> Digest {
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

/// A cached layer, re-hashed first when its file changed since it was
/// recorded; a corrupt blob is deleted and `None` returned so it is rebuilt.
fn cache_lookup(store: &Store, key: &Digest, reporter: &dyn Reporter) -> Option<LayerBlob> {
    cache_lookup_effects(store, key, reporter).map(|(b, _)| b)
}

/// A cached layer and what it leaves for the layers above; see [`cache_lookup`].
fn cache_lookup_effects(store: &Store, key: &Digest, reporter: &dyn Reporter) -> Option<(LayerBlob, LayerEffects)> {
    let p = store.layers_dir().join(format!("{}.json", key.hex()));
    let bytes = std::fs::read(&p).ok()?;
    let e: CacheEntry = serde_json::from_slice(&bytes).ok()?;
    let effects = e.effects.clone().unwrap_or_default();
    let blob_path = store.path(&e.blob.digest);
    let now = stamp(&blob_path)?;
    if e.stamp == Some(now) && now.1 == e.blob.size {
        store.mark_used(&e.blob.digest);
        return Some((e.blob, effects));
    }
    match store.verify(&e.blob.digest) {
        Ok(true) if now.1 == e.blob.size => {
            store.mark_used(&e.blob.digest);
            cache_store(store, key, &e.blob, e.effects.as_ref());
            Some((e.blob, effects))
        }
        _ => {
            reporter.warn(&format!("layer cache: blob {} was corrupt or changed; rebuilding it", e.blob.digest));
            let _ = std::fs::remove_file(&blob_path);
            let _ = std::fs::remove_file(&p);
            None
        }
    }
}

fn cache_store(store: &Store, key: &Digest, blob: &LayerBlob, effects: Option<&LayerEffects>) {
    let p = store.layers_dir().join(format!("{}.json", key.hex()));
    let entry = CacheEntry {
        key: key.to_string(),
        blob: blob.clone(),
        effects: effects.cloned(),
        stamp: stamp(&store.path(&blob.digest)),
    };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        let _ = crate::image::layout::atomic_write(&p, &bytes);
    }
}

/// The compression settings of a spec.
pub fn compression_of(spec: &LoadedSpec) -> Compression {
    match &spec.spec.compression {
        Some(c) => {
            let mut comp =
                Compression::new(c.algorithm, c.level.unwrap_or_else(|| Compression::default_level(c.algorithm)));
            if let Some(s) = c.splice {
                comp.splice = s && c.algorithm == crate::compress::Algorithm::Gzip;
            }
            comp
        }
        None => Compression::DEFAULT,
    }
}

/// All artifacts a spec needs, with pins from its lock file.
pub fn artifacts_of(spec: &LoadedSpec, lock: Option<&Lock>) -> Vec<Artifact> {
    let mut v = Vec::new();
    for l in &spec.layers {
        for s in sources_of(l, lock) {
            v.extend(s.artifacts());
        }
    }
    v
}

/// The lock a build uses. Locked builds are the default: a lock, when there
/// is one, must belong to this spec (its `[spec]` checksum), and layers that
/// resolve names (Debian packages) need their pins. With `--unlocked` both
/// checks only warn, and missing Debian pins are resolved now, in memory.
fn locked(spec: &LoadedSpec, opts: &BuildOptions, reporter: Arc<dyn Reporter>) -> Result<Option<Lock>, BuildError> {
    let e = |x: crate::lock::LockError| BuildError::Other(x.to_string());
    let mut lock = crate::lock::load_for(spec).map_err(e)?;
    if let Some(l) = &lock {
        if let Err(err) = crate::lock::check_current(spec, l) {
            if !opts.unlocked {
                return Err(e(err));
            }
            reporter.warn(&format!("--unlocked: {}", err.to_string().lines().next().unwrap_or_default()));
        }
    }
    if let Err(err) = crate::lock::check_spec(spec, lock.as_ref()) {
        if !opts.unlocked {
            return Err(e(err));
        }
        reporter.warn("--unlocked: resolving Debian packages against the live archive (this build is not reproducible from the spec alone)");
        let lo = crate::lock::LockOptions { cache: opts.cache.clone(), timeout: std::time::Duration::from_secs(30) };
        let mut fresh = crate::lock::lock_spec(spec, &lo, reporter).map_err(e)?;
        if let Some(old) = &lock {
            fresh.other = old.other.clone();
            fresh.verifier = old.verifier.clone();
        }
        lock = Some(fresh);
    }
    Ok(lock)
}

/// Builds the image described by `spec`.
pub fn build(spec: &LoadedSpec, opts: &BuildOptions, reporter: Arc<dyn Reporter>) -> Result<BuildResult, BuildError> {
    let store = Store::open(&opts.cache)?;
    let epoch = opts.source_date_epoch.or(spec.spec.epoch).unwrap_or(0);
    if epoch > crate::spec::MAX_EPOCH {
        return Err(BuildError::Other(format!("SOURCE_DATE_EPOCH: {}", crate::spec::epoch_message("the time", epoch))));
    }
    let comp = compression_of(spec);

    let lock = locked(spec, opts, reporter.clone())?;
    // Every source is checked before anything is downloaded (lock files,
    // wheel selection, the CUDA stack), so a bad spec fails in seconds.
    let sources: Vec<Vec<Box<dyn Source + '_>>> = spec.layers.iter().map(|l| sources_of(l, lock.as_ref())).collect();
    for (resolved, srcs) in spec.layers.iter().zip(&sources) {
        for s in srcs {
            s.check().map_err(|e| source_error(resolved, &resolved.display_name(), e))?;
        }
    }
    check_cuda(spec, None)?;

    let artifacts: Vec<Artifact> = sources.iter().flatten().flat_map(|s| s.artifacts()).collect();
    let fetch = {
        let _s = info_span!("fetch", artifacts = artifacts.len()).entered();
        Fetcher::new(store.clone(), opts.fetch.clone(), reporter.clone()).fetch_all(&artifacts)?
    };
    check_cuda(spec, Some(&store))?;

    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(store.tmp_dir())
        .map_err(|e| BuildError::Other(format!("creating scratch directory: {e}")))?;
    let ctx = Context { store: &store, scratch: scratch.path().to_path_buf(), reporter: reporter.as_ref() };
    let settings = LayerSettings { compression: comp, threads: opts.threads.max(1), epoch };

    // Plan every layer first: the image's layer count is known (and capped)
    // before any layer is written.
    let mut layers: Vec<(String, Vec<Part<'_>>, &crate::spec::ResolvedLayer)> = Vec::new();
    for (resolved, srcs) in spec.layers.iter().zip(&sources) {
        let lname = resolved.display_name();
        let mut planned: Vec<Vec<Part<'_>>> = Vec::new();
        for s in srcs {
            planned.push(s.plan_with(&ctx).map_err(|e| source_error(resolved, &lname, e))?);
        }
        // A source that splits into several layers stands alone; otherwise all
        // parts of the entry merge into one layer.
        if planned.iter().any(|p| p.len() > 1) {
            if planned.len() > 1 {
                return Err(source_error(resolved, &lname, SourceError::Message(
                    "a source that makes several layers must be the only source of its layer entry; move the other sources to their own entry".into(),
                )));
            }
            for p in planned.into_iter().flatten() {
                let name = p.name.clone().map(|n| format!("{lname}/{n}")).unwrap_or_else(|| lname.clone());
                layers.push((name, vec![p], resolved));
            }
        } else {
            layers.push((lname.clone(), planned.into_iter().flatten().collect(), resolved));
        }
    }
    let verifier = verifier_plan(spec, opts)?;
    let total = layers.len() + usize::from(verifier.is_some());
    if total > MAX_LAYERS {
        return Err(BuildError::Other(format!(
            "{}: the image would have {total} layers; at most {MAX_LAYERS} are allowed (container runtimes refuse deeper images)\nhint: lower `split.max_layers` of `python:` entries or merge layer entries",
            spec.path.display(),
        )));
    }

    // Layers in order: each is looked up in the cache with a key that
    // covers the links of the layers below it, else populated above them
    // (here, in order) and written by up to `threads` workers at once (a
    // spliced layer is mostly inflating and hashing on one core). Blob bytes
    // do not depend on the threads, and the manifest keeps the planned order.
    struct Slot {
        name: String,
        packages: Vec<crate::sbom::Package>,
        blob: Option<LayerBlob>,
        cached: bool,
    }
    enum Item {
        Cached(LayerBlob),
        Tree(Tree, Digest, LayerEffects),
    }
    let mut slots: Vec<Slot> = Vec::new();
    let mut queue = Vec::new();
    for (name, parts, resolved) in layers {
        let packages: Vec<crate::sbom::Package> = parts.iter().flat_map(|p| p.packages.clone()).collect();
        queue.push(Some((parts, resolved)));
        slots.push(Slot { name, packages, cached: false, blob: None });
    }
    let mut below = Below::default();
    let written = crate::pool::run_ordered(
        queue.len(),
        opts.threads.clamp(1, MAX_PARALLEL_LAYERS),
        |i| {
            let Some((parts, resolved)) = queue[i].take() else {
                return Err(BuildError::Other("layer queued twice".into()));
            };
            let name = slots[i].name.clone();
            let fps: Vec<&str> = parts.iter().map(|p| p.fingerprint.as_str()).collect();
            let key = layer_key_above(&fps, &comp, epoch, &below.links);
            if !opts.no_layer_cache {
                if let Some((blob, fx)) = cache_lookup_effects(&store, &key, reporter.as_ref()) {
                    if below.fits(&fx, &store) {
                        reporter.info(&format!("layer {name}: cached {}", blob.digest));
                        below.apply(&fx, &name)?;
                        return Ok(Item::Cached(blob));
                    }
                }
            }
            let replace = resolved.entry.replace_symlinks.iter().map(|p| p.tree_path()).collect();
            let mut tree = Tree::above(below.links.clone(), replace);
            for p in parts {
                (p.populate)(&ctx, &mut tree).map_err(|e| source_error(resolved, &name, e))?;
            }
            let ca = crate::sources::cacerts::update_bundle(&mut tree, &below.ca, &store)
                .map_err(|e| source_error(resolved, &name, e))?;
            let fx = LayerEffects { links: tree.link_changes(), ca };
            below.apply(&fx, &name)?;
            reporter.plan(TaskKind::Layer, 1, Some(tree.file_bytes()));
            Ok(Item::Tree(tree, key, fx))
        },
        |i, item| {
            let (tree, key, fx) = match item {
                Item::Cached(blob) => return Ok((i, blob, true)),
                Item::Tree(tree, key, fx) => (tree, key, fx),
            };
            let name = &slots[i].name;
            let id = task_id();
            reporter.start(id, TaskKind::Layer, name, Some(tree.file_bytes()));
            let blob = {
                let _s = info_span!("write_layer", layer = %name).entered();
                let rep = reporter.clone();
                write_layer(&tree, &settings, &store, &move |n| rep.progress(id, n))
                    .map_err(|source| BuildError::Layer { layer: name.clone(), source })?
            };
            reporter.finish(id, &format!("{} ({})", blob.digest, crate::report::human_bytes(blob.size)));
            cache_store(&store, &key, &blob, Some(&fx));
            Ok((i, blob, false))
        },
    )?;
    for (slot, blob, cached) in written {
        slots[slot].blob = Some(blob);
        slots[slot].cached = cached;
    }

    let mut image_layers = Vec::new();
    let mut summaries = Vec::new();
    let mut packages: Vec<crate::sbom::LayerPackages> = Vec::new();
    for Slot { name, packages: layer_packages, blob, cached, .. } in slots {
        let Some(blob) = blob else {
            return Err(BuildError::Other(format!("layer `{name}` was neither cached nor written")));
        };
        let mut ann = BTreeMap::new();
        ann.insert("dev.strata.layer.name".to_string(), name.clone());
        ann.insert("dev.strata.layer.compression".to_string(), comp.describe());
        image_layers.push(ImageLayer { blob: blob.clone(), created_by: format!("strata: {name}"), annotations: ann });
        if !layer_packages.is_empty() {
            packages.push(crate::sbom::LayerPackages {
                index: image_layers.len(),
                name: name.clone(),
                digest: blob.digest,
                packages: layer_packages,
            });
        }
        summaries.push(LayerSummary { name, blob, cached });
    }

    let mut runtime = runtime_config(spec)?;
    if let Some(v) = verifier {
        let key = layer_key(&[v.fingerprint.as_str()], &comp, epoch);
        let name = "strata-verify".to_string();
        let cached = if opts.no_layer_cache { None } else { cache_lookup(&store, &key, reporter.as_ref()) };
        let (blob, was_cached) = match cached {
            Some(b) => (b, true),
            None => {
                let mut tree = Tree::new();
                let origin: Arc<str> = Arc::from(format!("verifier {}", v.path.display()));
                let mut entry =
                    crate::tree::Entry::file(crate::tree::Content::LocalFile(v.path.clone()), v.size, 0o755, &origin);
                if let crate::tree::Kind::File { sha256, .. } = &mut entry.kind {
                    *sha256 = Some(v.sha256);
                }
                tree.insert(
                    crate::tree::TreePath::from_image_path(VERIFIER_PATH)
                        .map_err(|e| BuildError::Other(e.to_string()))?,
                    entry,
                )
                .map_err(|e| BuildError::Other(e.to_string()))?;
                let blob = write_layer(&tree, &settings, &store, &|_| {})
                    .map_err(|source| BuildError::Layer { layer: name.clone(), source })?;
                cache_store(&store, &key, &blob, None);
                (blob, false)
            }
        };
        let mut ann = BTreeMap::new();
        ann.insert("dev.strata.layer.name".to_string(), name.clone());
        ann.insert("dev.strata.layer.compression".to_string(), comp.describe());
        image_layers.push(ImageLayer { blob: blob.clone(), created_by: format!("strata: {name}"), annotations: ann });
        packages.push(crate::sbom::LayerPackages {
            index: image_layers.len(),
            name: name.clone(),
            digest: blob.digest,
            packages: vec![crate::sbom::Package {
                kind: crate::sbom::PackageKind::File,
                name: "strata-verify".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
                purl: Some(format!(
                    "pkg:generic/strata-verify@{}?checksum=sha256:{}",
                    env!("CARGO_PKG_VERSION"),
                    v.sha256.hex()
                )),
                sha256: Some(v.sha256),
                download: None,
                license: Some("Apache-2.0".into()),
            }],
        });
        summaries.push(LayerSummary { name, blob, cached: was_cached });
        wrap_entrypoint(&mut runtime, spec, &v);
    }
    let (os, arch, variant) = parse_platform(spec.spec.platform.as_deref().unwrap_or("linux/amd64"))
        .ok_or_else(|| BuildError::Other("invalid platform".into()))?;
    let mut annotations = spec.spec.annotations.clone();
    annotations.insert("org.opencontainers.image.created".into(), crate::image::rfc3339(epoch));
    annotations.insert(
        "dev.strata.spec.sha256".into(),
        crate::lock::spec_checksum(spec).map_err(|e| BuildError::Other(e.to_string()))?.to_string(),
    );
    if opts.unlocked {
        annotations
            .insert("dev.strata.unlocked".into(), "true: built with --unlocked; the lock was not enforced".into());
    }
    annotations.insert("org.opencontainers.image.title".into(), spec.spec.name.clone());
    let image = assemble(image_layers, &runtime, (&os, &arch, variant.as_deref()), epoch, &annotations)?;
    Ok(BuildResult { image, layers: summaries, fetch, epoch, packages })
}

/// Where the verifier is installed in images.
pub const VERIFIER_PATH: &str = "/usr/local/bin/strata-verify";

/// The verifier binary chosen for a build.
#[derive(Debug, Clone)]
pub struct VerifierPlan {
    /// The local file.
    pub path: PathBuf,
    /// Its digest.
    pub sha256: Digest,
    /// Its size.
    pub size: u64,
    /// Layer fingerprint.
    pub fingerprint: String,
}

/// The verifier a spec's `gpu:` section asks for, located and hashed; `None`
/// when the spec has no `gpu:` section or says `verify: off`.
pub fn verifier_plan(spec: &LoadedSpec, opts: &BuildOptions) -> Result<Option<VerifierPlan>, BuildError> {
    let Some(gpu) = &spec.spec.gpu else { return Ok(None) };
    if gpu.verify.as_deref() == Some("off") {
        return Ok(None);
    }
    let path = match &opts.verifier {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("strata-verify")))
            .unwrap_or_else(|| PathBuf::from("strata-verify")),
    };
    let f = std::fs::File::open(&path).map_err(|e| {
        BuildError::Other(format!(
            "{}: the spec has a `gpu:` section, so the image gets strata-verify as its entrypoint, but the binary cannot be read at {}: {e}\nhint: build it with `verifier/build-reproducible.sh` (or `cargo build --release -p strata-verify`) and pass `--verifier PATH`, or set `gpu.verify: off`",
            spec.path.display(),
            path.display()
        ))
    })?;
    let (sha256, size) = crate::digest::hash_reader(std::io::BufReader::new(f))
        .map_err(|e| BuildError::Other(format!("reading {}: {e}", path.display())))?;
    if let Some(pin) = crate::lock::load_for(spec).ok().flatten().and_then(|l| l.verifier) {
        if pin.sha256 != sha256.to_string() && !opts.unlocked {
            return Err(BuildError::Other(format!(
                "strata-verify at {} does not match the lock {}\n  locked: {} ({} bytes)\n  found:  {sha256} ({size} bytes)\nhint: build it reproducibly with `verifier/build-reproducible.sh` and pass `--verifier target/x86_64-unknown-linux-gnu/verifier/strata-verify`, or re-lock with the binary you mean (`strata lock SPEC --verifier PATH`)",
                path.display(),
                crate::lock::lock_path(&spec.path).display(),
                pin.sha256,
                pin.size
            )));
        }
    }
    let fingerprint = format!("verifier-v1 {sha256} {VERIFIER_PATH} 0755\n");
    Ok(Some(VerifierPlan { path, sha256, size, fingerprint }))
}

/// Makes the verifier the entrypoint (`strata-verify -- <entrypoint>`), keeps
/// `cmd`, and records what it must check in the environment and labels.
fn wrap_entrypoint(rc: &mut RuntimeConfig, spec: &LoadedSpec, v: &VerifierPlan) {
    let Some(gpu) = &spec.spec.gpu else { return };
    let mut ep = vec![VERIFIER_PATH.to_string(), "--".to_string()];
    ep.extend(rc.entrypoint.take().unwrap_or_default());
    rc.entrypoint = Some(ep);
    let arch = gpu.arch.clone().unwrap_or_else(|| vec!["sm_80".into(), "sm_90".into()]);
    rc.env.entry("STRATA_CUDA_VERSION".into()).or_insert_with(|| gpu.cuda.clone());
    rc.env.entry("STRATA_ALLOWED_SM".into()).or_insert_with(|| arch.join(","));
    rc.env.entry("STRATA_VERIFY".into()).or_insert_with(|| gpu.verify.clone().unwrap_or_else(|| "quick".into()));
    rc.labels.insert("dev.strata.verifier.sha256".into(), v.sha256.to_string());
    rc.labels.insert("dev.strata.gpu.cuda".into(), gpu.cuda.clone());
    rc.labels.insert("dev.strata.gpu.arch".into(), arch.join(","));
}

fn source_error(resolved: &crate::spec::ResolvedLayer, layer: &str, source: SourceError) -> BuildError {
    BuildError::Source {
        layer: layer.to_string(),
        file: resolved.file.display().to_string(),
        node: resolved.node.clone(),
        source,
    }
}

/// Checks `gpu.cuda` against the Python lock: from the lock alone when
/// `store` is `None` (before downloading), else also against torch's pinned
/// requirements read from the fetched wheel.
fn check_cuda(spec: &LoadedSpec, store: Option<&Store>) -> Result<(), BuildError> {
    let Some(gpu) = &spec.spec.gpu else { return Ok(()) };
    let err = |e: crate::cuda::CudaError| BuildError::Other(format!("{}: {e}", spec.path.display()));
    crate::cuda::check_gpu(gpu).map_err(err)?;
    for l in &spec.layers {
        let Some(p) = &l.entry.python else { continue };
        let src = crate::sources::python::Python::new(p, l);
        let sel = src.selection().map_err(|e| source_error(l, &l.display_name(), e))?;
        match store {
            None => crate::cuda::check_lock(gpu, &sel.wheels).map_err(err)?,
            Some(store) => {
                if let Some((version, reqs)) = crate::sources::python::wheel_requires(sel, "torch", store)
                    .map_err(|e| source_error(l, &l.display_name(), e))?
                {
                    crate::cuda::check_torch_requires(gpu, &version, &reqs, &sel.wheels).map_err(err)?;
                }
            }
        }
    }
    Ok(())
}

fn runtime_config(spec: &LoadedSpec) -> Result<RuntimeConfig, BuildError> {
    let mut rc = RuntimeConfig::default();
    if let Some(c) = &spec.spec.config {
        rc.user = c.user.clone();
        rc.workdir = c.workdir.as_ref().map(|p| p.0.clone());
        rc.env = c.env.clone();
        rc.entrypoint = c.entrypoint.clone();
        rc.cmd = c.cmd.clone();
        rc.ports = c.ports.iter().filter_map(|p| parse_port(p)).collect();
        rc.volumes = c.volumes.iter().map(|v| v.0.clone()).collect();
        rc.labels = c.labels.clone();
        rc.stop_signal = c.stop_signal.clone();
    }
    if let Some(gpu) = &spec.spec.gpu {
        let (labels, env) = crate::cuda::labels_and_env(gpu);
        for (k, v) in labels {
            rc.labels.entry(k).or_insert(v);
        }
        for (k, v) in env {
            rc.env.entry(k).or_insert(v);
        }
    }
    if !rc.env.contains_key("PATH") {
        rc.env.insert("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    Ok(rc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Algorithm;

    #[test]
    fn layer_key_changes_with_every_input_and_only_then() {
        let gz6 = Compression::new(Algorithm::Gzip, 6);
        let base = layer_key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &gz6, 0);
        assert_eq!(base, layer_key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &gz6, 0));
        let variants = [
            layer_key(&["files-v1\nfile /a text sha256:ab 644 0 0 None\n"], &gz6, 0),
            layer_key(&["files-v1\nfile /a text sha256:aa 755 0 0 None\n"], &gz6, 0),
            layer_key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &Compression::new(Algorithm::Gzip, 9), 0),
            layer_key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &Compression::new(Algorithm::Zstd, 6), 0),
            layer_key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &gz6, 1),
            layer_key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n", "accounts-v1\n"], &gz6, 0),
            layer_key(&["files-v1\nfile /a text sha256:aa 644 0 0 None\n"], &Compression { splice: false, ..gz6 }, 0),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }
}
