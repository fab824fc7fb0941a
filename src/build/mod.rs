//! The build pipeline: spec → lock → fetch → tree → layer → image. Each
//! step lives in its own room:
//!
//! * [`crate::lock::for_build`] — the lock (loaded once) and the verifier;
//! * [`checks`] — sources and the CUDA stack, before and after fetching;
//! * [`crate::fetch`] — artifacts into the store;
//! * [`plan`] — sources into layers (the verifier is a source like any other);
//! * [`cache`] — layers found again by their inputs' digest;
//! * [`crate::layer`] — trees into compressed, reproducible tar blobs;
//! * [`config`] — runtime config and annotations;
//! * [`crate::image`] — config, manifest and the SBOM, as a [`BuiltImage`]
//!   any sink can write.

pub mod cache;
pub mod checks;
pub mod config;
pub mod plan;
pub mod remote;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::info_span;

use crate::digest::Digest;
use crate::fetch::{Artifact, FetchError, FetchOptions, FetchSummary, Fetcher};
use crate::image::{assemble, Attachment, BuiltImage, ImageError, ImageLayer};
use crate::layer::{write_layer, LayerBlob, LayerError, LayerSettings};
use crate::lock::{BuildLockOptions, Lock};
use crate::oci::Platform;
use crate::report::{task_id, Reporter, TaskKind};
use crate::sources::{sources_of, Context, SourceError};
use crate::spec::{parse_platform, LoadedSpec, ResolvedLayer};
use crate::store::{Store, StoreError};
use crate::tree::Tree;
use cache::{LayerCache, LayerEffects, LocalCache};
use plan::PlannedLayer;

pub use cache::FORMAT_VERSION;
pub use config::compression_of;
pub use plan::MAX_LAYERS;

/// The most layers written at once. Each writer holds its own buffers
/// (up to 8 MiB of tar bytes plus the compressor's blocks), so this bounds
/// memory on machines with many cores.
pub const MAX_PARALLEL_LAYERS: usize = 4;

/// Build options that do not come from the spec.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Compression threads, and the most layers written at once (capped at
    /// [`MAX_PARALLEL_LAYERS`]); the bytes do not depend on it.
    pub threads: usize,
    /// Fetch behaviour (offline, mirrors, network settings).
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
    /// The layer cache in a registry (`--cache-from`, `--cache-to`).
    pub remote: Option<Arc<remote::RegistryCache>>,
    /// The output needs the layers' bytes (a layout or archive): layers
    /// found in the registry cache are downloaded into the local cache.
    pub layer_bytes: bool,
    /// The SBOM format attached.
    pub sbom_format: crate::sbom::SbomFormat,
    /// Signs the provenance (its DSSE envelope) when given.
    pub provenance_key: Option<p256::ecdsa::SigningKey>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            fetch: FetchOptions::default(),
            source_date_epoch: None,
            no_layer_cache: false,
            verifier: None,
            unlocked: false,
            remote: None,
            layer_bytes: true,
            provenance_key: None,
            sbom_format: crate::sbom::SbomFormat::Spdx,
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
    /// The lock is missing or stale, or the verifier is not the pinned one.
    #[error(transparent)]
    Lock(#[from] crate::lock::Error),
    /// The CUDA stack does not fit the spec's `gpu:` section.
    #[error("{}: {source}", spec.display())]
    Gpu {
        /// The spec.
        spec: PathBuf,
        /// What does not fit.
        #[source]
        source: crate::cuda::CudaError,
    },
    /// The verifier's layer could not be planned.
    #[error("layer `strata-verify`: {source}")]
    Verifier {
        /// Why.
        #[source]
        source: SourceError,
    },
    /// More layers than runtimes accept.
    #[error("{}: the image would have {layers} layers; at most {} are allowed (container runtimes refuse deeper images)\nhint: lower `split.max_layers` of `python:` entries or merge layer entries", spec.display(), plan::MAX_LAYERS)]
    TooManyLayers {
        /// The spec.
        spec: PathBuf,
        /// How many it would have.
        layers: usize,
    },
    /// `SOURCE_DATE_EPOCH` past what image tools can read.
    #[error("SOURCE_DATE_EPOCH: {}", crate::spec::epoch_message("the time", *epoch))]
    Epoch {
        /// The epoch given.
        epoch: u64,
    },
    /// A link a layer leaves for the layers above has a path no image may hold.
    #[error("layer `{layer}`: {source}")]
    LayerPath {
        /// The layer.
        layer: String,
        /// Why.
        #[source]
        source: crate::tree::PathError,
    },
    /// An ELF file of a layer is for another CPU than the image.
    #[error("layer `{layer}`: {source}\nhint: every executable and shared object must be built for the image's platform; for a deliberate exception (firmware, an emulator's payload) list its path under the layer's `foreign_elf:`")]
    ForeignElf {
        /// The layer.
        layer: String,
        /// The file.
        #[source]
        source: crate::platform::ForeignElf,
    },
    /// The build's scratch directory could not be made.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The spec could not be read again (for its checksum).
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A layer found in the registry cache did not check out when its
    /// bytes were downloaded (it is forgotten: building again rebuilds it).
    #[error("layer `{layer}`: the registry cache's blob {digest} is not valid ({message})")]
    RemoteBlob {
        /// The layer.
        layer: String,
        /// Its blob.
        digest: Digest,
        /// Why.
        message: String,
    },
}

impl crate::error::Hint for BuildError {
    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Fetch(e) => e.hint(),
            BuildError::Source { source, .. } | BuildError::Verifier { source } => source.hint(),
            BuildError::Lock(e) => e.hint(),
            BuildError::Image(e) => e.hint(),
            _ => None,
        }
    }
}

impl BuildError {
    /// A source's failure, with the layer entry it belongs to.
    pub fn source(resolved: &ResolvedLayer, layer: &str, source: SourceError) -> BuildError {
        BuildError::Source {
            layer: layer.to_string(),
            file: resolved.file.display().to_string(),
            node: resolved.node.clone(),
            source,
        }
    }
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
    /// The image, its SBOM attached.
    pub image: BuiltImage,
    /// Per-layer summaries.
    pub layers: Vec<LayerSummary>,
    /// Fetch summary.
    pub fetch: FetchSummary,
    /// Epoch used.
    pub epoch: u64,
    /// Packages per layer (what the SBOM lists).
    pub packages: Vec<crate::sbom::LayerPackages>,
    /// What the registry cache did.
    pub remote: remote::RemoteStats,
}

/// All artifacts a spec needs, with pins from its lock file.
pub fn artifacts_of(spec: &LoadedSpec, lock: Option<&Lock>) -> Vec<Artifact> {
    spec.layers.iter().flat_map(|l| sources_of(l, lock)).flat_map(|s| s.artifacts()).collect()
}

/// Builds the image described by `spec` from the store (opened once, by the
/// caller, for the whole command).
pub fn build(
    spec: &LoadedSpec,
    store: &Store,
    opts: &BuildOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildResult, BuildError> {
    let epoch = opts.source_date_epoch.or(spec.spec.epoch).unwrap_or(0);
    if epoch > crate::spec::MAX_EPOCH {
        return Err(BuildError::Epoch { epoch });
    }
    let comp = compression_of(spec);
    let lock_opts =
        BuildLockOptions { unlocked: opts.unlocked, verifier: opts.verifier.clone(), net: opts.fetch.net.clone() };
    let inputs = crate::lock::for_build(spec, store, &lock_opts, reporter.clone())?;

    // Every source is checked before anything is downloaded (lock files,
    // wheel selection, the CUDA stack), so a bad spec fails in seconds.
    let sources: Vec<Vec<_>> = spec.layers.iter().map(|l| sources_of(l, inputs.lock.as_ref())).collect();
    checks::sources(spec, &sources)?;
    checks::gpu(spec, &sources, None, 0)?;

    let settings = LayerSettings { compression: comp, threads: opts.threads.max(1), epoch };
    let cache = Layered {
        local: LocalCache::new(store, !opts.no_layer_cache),
        remote: opts.remote.as_deref().filter(|_| !opts.no_layer_cache),
        store,
    };
    // The layer entries at the bottom whose layers are all in the layer
    // cache need none of their artifacts (with a registry cache: a runner
    // with an empty local cache downloads nothing for them).
    let recorded = match cache.remote {
        Some(r) => probe(spec, &sources, &settings, &cache, r, reporter.as_ref())?,
        None => Vec::new(),
    };
    let skip = recorded.iter().take_while(|r| r.is_some()).count();

    // Provenance names every artifact of the image, fetched or not.
    let all_artifacts: Vec<Artifact> = sources.iter().flatten().flat_map(|s| s.artifacts()).collect();
    let artifacts: Vec<Artifact> = sources.iter().skip(skip).flatten().flat_map(|s| s.artifacts()).collect();
    let fetch = {
        let _s = info_span!("fetch", artifacts = artifacts.len()).entered();
        Fetcher::new(store.clone(), opts.fetch.clone(), reporter.clone()).fetch_all(&artifacts)?
    };
    checks::gpu(spec, &sources, Some(store), skip)?;

    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(store.tmp_dir())
        .map_err(crate::error::io_err::<BuildError>("creating scratch directory in", &store.tmp_dir()))?;
    let ctx = Context { store, scratch: scratch.path().to_path_buf(), reporter: reporter.as_ref(), lower: Vec::new() };
    let record_plan = |s: &dyn crate::sources::Source, parts: &[crate::sources::Part<'_>]| {
        if let (Some(r), Some(inputs)) = (cache.remote.filter(|r| r.writes()), s.plan_inputs()) {
            let parts: Vec<_> = parts.iter().map(plan::RecordedPart::of).collect();
            r.record_plan(&remote::plan_key(&inputs), &parts, store, reporter.as_ref());
        }
    };
    let mut layers = plan::plan(spec, &sources, inputs.verifier.as_ref(), &ctx, &recorded, &record_plan)?;
    // A `bytecode:` layer reads the blobs of every layer below it: the
    // layers are written in runs that end before each one.
    let mut written: Vec<WrittenLayer> = Vec::new();
    let mut below = Below::default();
    while !layers.is_empty() {
        let is_bytecode = |l: &PlannedLayer<'_>| l.entry.is_some_and(|e| e.entry.bytecode.is_some());
        let cut = layers.iter().skip(1).position(is_bytecode).map_or(layers.len(), |i| i + 1);
        let rest = layers.split_off(cut);
        if layers.first().is_some_and(is_bytecode) {
            // Layers found in the registry cache may have no bytes here yet.
            if let Some(r) = cache.remote {
                for w in written.iter().filter(|w| w.remote && !store.contains(&w.blob.digest)) {
                    r.materialize(&w.blob, store).map_err(|message| BuildError::RemoteBlob {
                        layer: w.name.clone(),
                        digest: w.blob.digest,
                        message,
                    })?;
                }
            }
        }
        let run_ctx = Context {
            store,
            scratch: ctx.scratch.clone(),
            reporter: reporter.as_ref(),
            lower: written.iter().map(|w| w.blob.clone()).collect(),
        };
        written.extend(write_layers(
            layers,
            &run_ctx,
            &settings,
            &cache,
            opts.threads,
            spec.arch(),
            reporter.as_ref(),
            &mut below,
        )?);
        layers = rest;
    }

    // Layers found in the registry: their bytes, when the output needs
    // them (verified, diff_id too), then remembered locally; and every
    // layer goes to the registry cache (`--cache-to`) when it is not there.
    let mut stats = remote::RemoteStats::default();
    if let Some(r) = cache.remote {
        for w in &written {
            if !w.remote {
                continue;
            }
            stats.hits += 1;
            if opts.layer_bytes {
                let n = r.materialize(&w.blob, store).map_err(|message| BuildError::RemoteBlob {
                    layer: w.name.clone(),
                    digest: w.blob.digest,
                    message,
                })?;
                if n > 0 {
                    stats.blobs_downloaded += 1;
                    stats.bytes_downloaded += n;
                }
                cache.local.record(&w.key, &w.blob, &w.effects);
            }
        }
        if r.writes() {
            for w in &written {
                if store.contains(&w.blob.digest)
                    && r.record_layer(&w.key, &w.blob, &w.effects, store, reporter.as_ref())
                {
                    stats.written += 1;
                }
            }
        }
    }

    let mut image_layers = Vec::new();
    let mut summaries = Vec::new();
    let mut packages: Vec<crate::sbom::LayerPackages> = Vec::new();
    for WrittenLayer { name, packages: layer_packages, blob, cached, .. } in written {
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

    let runtime = config::runtime_config(spec, inputs.verifier.as_ref());
    let (os, arch, variant) = parse_platform(spec.spec.platform.as_deref().unwrap_or(spec.arch().platform()))
        .ok_or_else(|| BuildError::Image(ImageError::BadTag("invalid platform".into())))?;
    let checksum = crate::spec::checksum(spec)?;
    let annotations = config::annotations(spec, epoch, &checksum, opts.unlocked, &runtime.labels);
    let mut image = assemble(
        &spec.spec.name,
        image_layers,
        &runtime,
        Platform::new(&os, &arch, variant.as_deref()),
        epoch,
        &annotations,
        store,
    )?;
    // The SBOM goes with the image as an artifact that refers to it.
    let tag = spec.spec.tag.clone().unwrap_or_else(|| "latest".into());
    let doc = match opts.sbom_format {
        crate::sbom::SbomFormat::Spdx => {
            crate::sbom::spdx(&spec.spec.name, &tag, &image.manifest.digest, epoch, &packages)
        }
        crate::sbom::SbomFormat::Cyclonedx => {
            crate::sbom::cyclonedx(&spec.spec.name, &tag, &image.manifest.digest, epoch, &packages)
        }
    };
    let doc = crate::oci::canonical::to_vec(&doc).map_err(|source| ImageError::Json { what: "the SBOM", source })?;
    let sbom = Attachment::new(&image.manifest.descriptor(), opts.sbom_format.media_type(), &doc, epoch)?;
    image.attach(sbom);
    // So does its provenance: what to rebuild it from (docs/signing.md#provenance).
    let statement = crate::provenance::statement(&crate::provenance::Inputs {
        spec,
        name: format!("{}:{tag}", spec.spec.name),
        manifest: image.manifest.digest,
        artifacts: &all_artifacts,
        epoch,
        platform: spec.spec.platform.clone().unwrap_or_else(|| "linux/amd64".into()),
        verifier: inputs.verifier.as_ref().map(|v| v.sha256),
        unlocked: opts.unlocked,
    });
    let envelope = crate::provenance::envelope(&statement, opts.provenance_key.as_ref());
    image.attach(Attachment::new(&image.manifest.descriptor(), crate::provenance::MEDIA_TYPE, &envelope, epoch)?);
    Ok(BuildResult { image, layers: summaries, fetch, epoch, packages, remote: stats })
}

/// A layer of the image, from the cache or written.
struct WrittenLayer {
    name: String,
    packages: Vec<crate::sbom::Package>,
    blob: LayerBlob,
    cached: bool,
    /// Found in the registry cache (its blob may not be in the store).
    remote: bool,
    key: Digest,
    effects: LayerEffects,
}

/// The local layer cache, then the registry's.
struct Layered<'a> {
    local: LocalCache<'a>,
    remote: Option<&'a remote::RegistryCache>,
    store: &'a Store,
}

impl Layered<'_> {
    /// The layer of `key`, and whether it came from the registry.
    fn find(&self, key: &Digest, reporter: &dyn Reporter) -> Option<(cache::Cached, bool)> {
        if let Some(c) = self.local.lookup(key, reporter) {
            return Some((c, false));
        }
        self.remote?.lookup(key, self.store, reporter).map(|c| (c, true))
    }
}

impl LayerCache for Layered<'_> {
    fn lookup(&self, key: &Digest, reporter: &dyn Reporter) -> Option<cache::Cached> {
        self.find(key, reporter).map(|(c, _)| c)
    }

    fn record(&self, key: &Digest, blob: &LayerBlob, effects: &LayerEffects) {
        self.local.record(key, blob, effects)
    }
}

/// The cache key of a layer: its parts' fingerprints above the links of
/// the layers below, with the platform and the entry's `foreign_elf`. The
/// architecture is part of every key: a layer is checked against it (ELF
/// files, the ld.so.cache) when it is written, so one written for another
/// platform is never taken from the cache unchecked.
fn layer_key(
    fps: Vec<&str>,
    settings: &LayerSettings,
    below: &crate::tree::Lower,
    arch: crate::platform::Arch,
    foreign_elf: &[String],
) -> Digest {
    let platform = format!("platform {}", arch.platform());
    let foreign = format!("foreign_elf {}", foreign_elf.join("\n"));
    let mut all = fps;
    all.push(&platform);
    if !foreign_elf.is_empty() {
        all.push(&foreign);
    }
    cache::key_above(&all, &settings.compression, settings.epoch, below)
}

/// Which layer entries at the bottom of the image the layer cache holds
/// entirely, found without fetching anything: `Some(parts of each source)`
/// for each, in order, up to the first entry with a layer it lacks. Sources
/// that plan from their fetched artifacts are planned from the plan the
/// registry cache recorded for the same inputs.
fn probe(
    spec: &LoadedSpec,
    sources: &[Vec<Box<dyn crate::sources::Source + '_>>],
    settings: &LayerSettings,
    cache: &Layered<'_>,
    remote: &remote::RegistryCache,
    reporter: &dyn Reporter,
) -> Result<Vec<Option<Vec<Vec<plan::RecordedPart>>>>, BuildError> {
    let mut out = Vec::new();
    let mut below = Below::default();
    for (resolved, srcs) in spec.layers.iter().zip(sources) {
        let mut per_source = Vec::new();
        for s in srcs {
            let parts = match s.plan_inputs() {
                Some(inputs) => remote.plan(&remote::plan_key(&inputs), reporter),
                None => s.plan().ok().map(|parts| parts.iter().map(plan::RecordedPart::of).collect()),
            };
            match parts {
                Some(p) => per_source.push(p),
                None => return Ok(out),
            }
        }
        let Some(layers) = plan::group(per_source.iter().map(|p| p.iter().collect::<Vec<_>>()).collect()) else {
            return Ok(out);
        };
        for parts in layers {
            let fps: Vec<&str> = parts.iter().map(|p| p.fingerprint.as_str()).collect();
            let key = layer_key(fps, settings, &below.links, spec.arch(), &resolved.entry.foreign_elf);
            match cache.lookup(&key, reporter) {
                Some(hit) if below.fits(&hit.effects, cache.store) => {
                    below.apply(&hit.effects, &resolved.display_name())?
                }
                _ => return Ok(out),
            }
        }
        out.push(Some(per_source));
    }
    Ok(out)
}

/// What the layers below one layer leave for it.
#[derive(Debug, Clone, Default)]
struct Below {
    links: Arc<crate::tree::Lower>,
    ca: crate::sources::cacerts::CaState,
    ld: crate::sources::deb::ldlayers::LdState,
}

impl Below {
    fn apply(&mut self, fx: &LayerEffects, layer: &str) -> Result<(), BuildError> {
        if !fx.links.set.is_empty() || !fx.links.removed.is_empty() {
            let mut links = (*self.links).clone();
            links
                .apply(&fx.links, layer)
                .map_err(|source| BuildError::LayerPath { layer: layer.to_string(), source })?;
            self.links = Arc::new(links);
        }
        self.ca.apply(&fx.ca);
        self.ld.apply(&fx.ld);
        Ok(())
    }

    /// True when a cached layer with these effects was made over this state
    /// (its CA bundle, if it wrote one, from the same inputs) and every blob
    /// the effects name is still in the store.
    fn fits(&self, fx: &LayerEffects, store: &Store) -> bool {
        let same_ca = fx.ca.made_from.is_none_or(|d| d == self.ca.digest());
        same_ca
            && crate::sources::cacerts::CaState::blobs(&fx.ca).all(|d| store.contains(d))
            && self.ld.fits(&fx.ld, store)
    }
}

/// Every layer in order: looked up in the cache with a key that covers the
/// links of the layers below it, else populated above them (here, in
/// order) and written by up to `threads` workers at once (a spliced layer
/// is mostly inflating and hashing on one core). Blob bytes do not depend
/// on the threads, and the result keeps the planned order.
#[allow(clippy::too_many_arguments)] // one call site; the state carried between runs of layers
fn write_layers(
    layers: Vec<PlannedLayer<'_>>,
    ctx: &Context<'_>,
    settings: &LayerSettings,
    cache: &Layered<'_>,
    threads: usize,
    arch: crate::platform::Arch,
    reporter: &dyn Reporter,
    below: &mut Below,
) -> Result<Vec<WrittenLayer>, BuildError> {
    enum Item {
        Cached(LayerBlob, bool, Digest, LayerEffects),
        Tree(Tree, Digest, LayerEffects, Option<globset::GlobSet>),
    }
    let mut names = Vec::new();
    let mut packages = Vec::new();
    let mut queue = Vec::new();
    for PlannedLayer { name, parts, entry } in layers {
        packages.push(parts.iter().flat_map(|p| p.packages.clone()).collect::<Vec<_>>());
        names.push(name);
        queue.push(Some((parts, entry)));
    }
    let written = crate::pool::run_ordered(
        queue.len(),
        threads.clamp(1, MAX_PARALLEL_LAYERS),
        |i| {
            let Some((parts, entry)) = queue[i].take() else {
                unreachable!("every queued layer is taken once");
            };
            let name = &names[i];
            let fail = |e: SourceError| match entry {
                Some(resolved) => BuildError::source(resolved, name, e),
                None => BuildError::Verifier { source: e },
            };
            let fps: Vec<&str> = parts.iter().map(|p| p.fingerprint.as_str()).collect();
            let foreign = entry.map(|e| e.entry.foreign_elf.as_slice()).unwrap_or_default();
            let key = layer_key(fps, settings, &below.links, arch, foreign);
            if let Some((hit, remote)) = cache.find(&key, reporter) {
                if below.fits(&hit.effects, ctx.store) {
                    for d in crate::sources::cacerts::CaState::blobs(&hit.effects.ca).chain(&hit.effects.ld.cache) {
                        ctx.store.mark_used(d);
                    }
                    let from = if remote { " (registry cache)" } else { "" };
                    reporter.info(&format!("layer {name}: cached {}{from}", hit.blob.digest));
                    below.apply(&hit.effects, name)?;
                    return Ok(Item::Cached(hit.blob, remote, key, hit.effects));
                }
            }
            let replace = entry.map(|e| e.entry.replace_symlinks.iter().map(|p| p.tree_path()).collect());
            let mut tree = Tree::above(below.links.clone(), replace.unwrap_or_default());
            for p in parts {
                (p.populate)(ctx, &mut tree).map_err(fail)?;
            }
            let ca = crate::sources::cacerts::update_bundle(&mut tree, &below.ca, ctx.store).map_err(fail)?;
            let ld = crate::sources::deb::ldlayers::update_cache(&mut tree, &below.ld, ctx.store).map_err(fail)?;
            let fx = LayerEffects { links: tree.link_changes(), ca, ld };
            below.apply(&fx, name)?;
            reporter.plan(TaskKind::Layer, 1, Some(tree.file_bytes()));
            let allowed = match entry {
                Some(e) if !e.entry.foreign_elf.is_empty() => Some(
                    crate::sources::copy::patterns(&e.entry.foreign_elf)
                        .map_err(|(_, g)| fail(SourceError::Message(format!("foreign_elf: {g}"))))?,
                ),
                _ => None,
            };
            Ok::<_, BuildError>(Item::Tree(tree, key, fx, allowed))
        },
        |i, item| {
            let (tree, key, fx, allowed) = match item {
                Item::Cached(blob, remote, key, fx) => return Ok((blob, true, remote, key, fx)),
                Item::Tree(tree, key, fx, allowed) => (tree, key, fx, allowed),
            };
            let name = &names[i];
            let ok = |p: &str| allowed.as_ref().is_some_and(|g| crate::sources::copy::matches_here_or_above(g, p));
            crate::platform::check_elf(&tree, arch, &ok)
                .map_err(|source| BuildError::ForeignElf { layer: name.clone(), source })?;
            let id = task_id();
            reporter.start(id, TaskKind::Layer, name, Some(tree.file_bytes()));
            let blob = {
                let _s = info_span!("write_layer", layer = %name).entered();
                write_layer(&tree, settings, ctx.store, &|n| reporter.progress(id, n))
                    .map_err(|source| BuildError::Layer { layer: name.clone(), source })?
            };
            reporter.finish(id, &format!("{} ({})", blob.digest, crate::report::human_bytes(blob.size)));
            cache.record(&key, &blob, &fx);
            Ok((blob, false, false, key, fx))
        },
    )?;
    Ok(written
        .into_iter()
        .zip(names.into_iter().zip(packages))
        .map(|((blob, cached, remote, key, effects), (name, packages))| WrittenLayer {
            name,
            packages,
            blob,
            cached,
            remote,
            key,
            effects,
        })
        .collect())
}
