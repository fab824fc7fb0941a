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
    checks::gpu(spec, &sources, None)?;

    let artifacts: Vec<Artifact> = sources.iter().flatten().flat_map(|s| s.artifacts()).collect();
    let fetch = {
        let _s = info_span!("fetch", artifacts = artifacts.len()).entered();
        Fetcher::new(store.clone(), opts.fetch.clone(), reporter.clone()).fetch_all(&artifacts)?
    };
    checks::gpu(spec, &sources, Some(store))?;

    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(store.tmp_dir())
        .map_err(crate::error::io_err::<BuildError>("creating scratch directory in", &store.tmp_dir()))?;
    let ctx = Context { store, scratch: scratch.path().to_path_buf(), reporter: reporter.as_ref() };
    let settings = LayerSettings { compression: comp, threads: opts.threads.max(1), epoch };
    let layers = plan::plan(spec, &sources, inputs.verifier.as_ref(), &ctx)?;
    let cache = LocalCache::new(store, !opts.no_layer_cache);
    let arch = spec.arch();
    let written = write_layers(layers, &ctx, &settings, &cache, opts.threads, arch, reporter.as_ref())?;

    let mut image_layers = Vec::new();
    let mut summaries = Vec::new();
    let mut packages: Vec<crate::sbom::LayerPackages> = Vec::new();
    for WrittenLayer { name, packages: layer_packages, blob, cached } in written {
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
    let (os, arch, variant) = parse_platform(spec.spec.platform.as_deref().unwrap_or(arch.platform()))
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
    let doc = crate::sbom::spdx(&spec.spec.name, &tag, &image.manifest.digest, epoch, &packages);
    let doc = crate::oci::canonical::to_vec(&doc).map_err(|source| ImageError::Json { what: "the SBOM", source })?;
    let sbom = Attachment::new(&image.manifest.descriptor(), crate::sbom::SPDX_MEDIA_TYPE, &doc, epoch)?;
    image.attach(sbom);
    Ok(BuildResult { image, layers: summaries, fetch, epoch, packages })
}

/// A layer of the image, from the cache or written.
struct WrittenLayer {
    name: String,
    packages: Vec<crate::sbom::Package>,
    blob: LayerBlob,
    cached: bool,
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
fn write_layers(
    layers: Vec<PlannedLayer<'_>>,
    ctx: &Context<'_>,
    settings: &LayerSettings,
    cache: &dyn LayerCache,
    threads: usize,
    arch: crate::platform::Arch,
    reporter: &dyn Reporter,
) -> Result<Vec<WrittenLayer>, BuildError> {
    enum Item {
        Cached(LayerBlob),
        Tree(Box<(Tree, Digest, LayerEffects, Option<globset::GlobSet>)>),
    }
    // The architecture is part of every key: a layer is checked against it
    // (ELF files, the ld.so.cache) when it is written, so one written for
    // another platform is never taken from the cache unchecked.
    let platform_fp = format!("platform {}", arch.platform());
    let mut names = Vec::new();
    let mut packages = Vec::new();
    let mut queue = Vec::new();
    for PlannedLayer { name, parts, entry } in layers {
        packages.push(parts.iter().flat_map(|p| p.packages.clone()).collect::<Vec<_>>());
        names.push(name);
        queue.push(Some((parts, entry)));
    }
    let mut below = Below::default();
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
            let foreign = entry.map(|e| e.entry.foreign_elf.join("\n")).unwrap_or_default();
            let foreign_fp = format!("foreign_elf {foreign}");
            let mut fps: Vec<&str> = parts.iter().map(|p| p.fingerprint.as_str()).collect();
            fps.push(&platform_fp);
            if !foreign.is_empty() {
                fps.push(&foreign_fp);
            }
            let key = cache::key_above(&fps, &settings.compression, settings.epoch, &below.links);
            if let Some(hit) = cache.lookup(&key, reporter) {
                if below.fits(&hit.effects, ctx.store) {
                    for d in crate::sources::cacerts::CaState::blobs(&hit.effects.ca).chain(&hit.effects.ld.cache) {
                        ctx.store.mark_used(d);
                    }
                    reporter.info(&format!("layer {name}: cached {}", hit.blob.digest));
                    below.apply(&hit.effects, name)?;
                    return Ok(Item::Cached(hit.blob));
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
            Ok::<_, BuildError>(Item::Tree(Box::new((tree, key, fx, allowed))))
        },
        |i, item| {
            let (tree, key, fx, allowed) = match item {
                Item::Cached(blob) => return Ok((blob, true)),
                Item::Tree(b) => *b,
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
            Ok((blob, false))
        },
    )?;
    Ok(written
        .into_iter()
        .zip(names.into_iter().zip(packages))
        .map(|((blob, cached), (name, packages))| WrittenLayer { name, packages, blob, cached })
        .collect())
}
