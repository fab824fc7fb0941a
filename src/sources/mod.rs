//! Layer sources: each turns one kind of spec input into file-tree entries.
//!
//! A source first names the artifacts it needs (so they can be fetched in
//! parallel, or checked offline), then plans its layer parts: each part has a
//! fingerprint covering every input that can change its bytes, and a deferred
//! step that fills the tree. The build skips the deferred step when the layer
//! cache already holds a layer with that fingerprint.

pub mod accounts;
pub mod bytecode;
pub mod cacerts;
pub mod copy;
pub mod deb;
pub mod files;
pub mod python;
pub mod tarball;
pub mod verifier;

use std::path::PathBuf;

use crate::fetch::Artifact;
use crate::lockfile::Lock;
use crate::report::Reporter;
use crate::spec::ResolvedLayer;
use crate::store::{Store, StoreError};
use crate::tree::{PathError, Tree, TreeError};

/// Everything a source may use while filling a tree.
pub struct Context<'a> {
    /// The artifact store (fetched artifacts are in it).
    pub store: &'a Store,
    /// Directory for spool files of this build.
    pub scratch: PathBuf,
    /// Progress.
    pub reporter: &'a dyn Reporter,
    /// The blobs of the layers below the one being filled, bottom first
    /// (given to `bytecode:` layers only; empty for the others).
    pub lower: Vec<crate::layer::LayerBlob>,
}

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A message with all the details in it.
    #[error("{0}")]
    Message(String),
    /// A tree rule was broken.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An IO error on a named path.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// An archive member path was refused.
    #[error("{archive}: member {source}")]
    Path {
        /// The archive.
        archive: String,
        /// The refusal.
        #[source]
        source: PathError,
    },
    /// A Debian archive, index or package is not usable.
    #[error(transparent)]
    Deb(#[from] deb::error::DebError),
    /// A `copy:` entry cannot be copied.
    #[error(transparent)]
    Copy(#[from] copy::CopyError),
    /// A CA certificate cannot be added.
    #[error(transparent)]
    Ca(#[from] cacerts::CaError),
    /// A blob in the cache no longer has the bytes it was stored with (it
    /// has been removed, so the next attempt fetches or builds it again).
    #[error("{what}: the cached copy {} is corrupt (sha256 {}, expected {}); it was removed and is fetched again on the next build", path.display(), digests.1, digests.0)]
    CorruptCache {
        /// What it is.
        what: String,
        /// Its path in the store.
        path: PathBuf,
        /// The digest it was stored under, and what its bytes hash to now.
        digests: Box<(crate::digest::Digest, crate::digest::Digest)>,
    },
    /// Any other error, already described.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl crate::error::Hint for SourceError {
    fn hint(&self) -> Option<String> {
        match self {
            SourceError::Deb(e) => e.hint(),
            SourceError::Copy(e) => e.hint(),
            SourceError::Ca(e) => e.hint(),
            _ => None,
        }
    }
}

impl SourceError {
    /// A cached blob that failed verification: it is removed from the store
    /// (best effort) and reported as [`SourceError::CorruptCache`].
    pub fn corrupt_cache(
        what: &str,
        path: &std::path::Path,
        expected: crate::digest::Digest,
        found: crate::digest::Digest,
    ) -> SourceError {
        let _ = fs_err::remove_file(path);
        SourceError::CorruptCache {
            what: what.to_string(),
            path: path.to_path_buf(),
            digests: Box::new((expected, found)),
        }
    }

    /// An IO error with context.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SourceError {
        let path = path.into();
        move |source| SourceError::Io(crate::error::IoError { action, path, source })
    }
}

/// Fills a tree (run only when the layer is not cached).
pub type Populate<'s> = Box<dyn FnOnce(&Context<'_>, &mut Tree) -> Result<(), SourceError> + 's>;

/// One planned layer part of a source.
pub struct Part<'s> {
    /// Optional name (for sources that split into several layers).
    pub name: Option<String>,
    /// Stable description of every input that affects the bytes.
    pub fingerprint: String,
    /// Deferred tree filling.
    pub populate: Populate<'s>,
    /// Packages this part installs, for the SBOM.
    pub packages: Vec<crate::sbom::Package>,
}

/// A layer source.
pub trait Source {
    /// Short description for messages, e.g. `tarball https://…/x.tar.gz`.
    fn describe(&self) -> String;
    /// Artifacts to fetch before planning.
    fn artifacts(&self) -> Vec<Artifact> {
        Vec::new()
    }
    /// The layer parts. Most sources return exactly one; a source that
    /// returns several must be alone in its layer entry.
    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError>;
    /// Checks what can be checked before anything is fetched (lock files,
    /// settings), so a bad input fails fast. Default: nothing to check.
    fn check(&self) -> Result<(), SourceError> {
        Ok(())
    }
    /// The layer parts, for sources that must read their fetched artifacts
    /// to plan (the `python:` source reads every wheel's directory to find
    /// conflicts across its layers). Default: [`Source::plan`].
    fn plan_with(&self, _ctx: &Context<'_>) -> Result<Vec<Part<'_>>, SourceError> {
        self.plan()
    }
    /// For sources whose [`Source::plan_with`] reads fetched artifacts:
    /// everything that planning reads (the pinned artifacts' digests and
    /// the settings), so a plan recorded for the same inputs can stand in
    /// for it (the registry layer cache). `None`: [`Source::plan`] needs
    /// no fetched artifact.
    fn plan_inputs(&self) -> Option<String> {
        None
    }
    /// Checks the CUDA stack the source installs against the spec's `gpu:`
    /// section: from its lock alone when `store` is `None` (before anything
    /// is downloaded), else also from its fetched artifacts. Default:
    /// nothing to check.
    fn check_gpu(&self, _gpu: &crate::spec::GpuSpec, _store: Option<&Store>) -> Result<(), GpuCheckError> {
        Ok(())
    }
}

/// Why a source's CUDA stack does not fit the spec's `gpu:` section.
#[derive(Debug, thiserror::Error)]
pub enum GpuCheckError {
    /// The stack does not match.
    #[error(transparent)]
    Cuda(#[from] crate::cuda::CudaError),
    /// The source could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// The sources of one resolved layer entry, in a fixed order. `lock` is the
/// spec's lock file: sources that install pinned artifacts take their pins
/// from it (see [`crate::lock`]).
pub fn sources_of<'a>(layer: &'a ResolvedLayer, lock: Option<&'a Lock>) -> Vec<Box<dyn Source + 'a>> {
    let mut v: Vec<Box<dyn Source + 'a>> = Vec::new();
    let e = &layer.entry;
    if let Some(d) = &e.debs {
        let pins = lock.and_then(|l| l.debs.get(&crate::lockfile::layer_key(layer)));
        v.push(Box::new(deb::Debs { spec: d, layer, pins }));
    }
    if !e.copy.is_empty() {
        v.push(Box::new(copy::Copy { layer }));
    }
    if !e.dirs.is_empty() || !e.files.is_empty() || !e.symlinks.is_empty() {
        v.push(Box::new(files::Files { layer }));
    }
    if let Some(t) = &e.tarball {
        v.push(Box::new(tarball::Tarball { spec: t, layer }));
    }
    if let Some(a) = &e.accounts {
        v.push(Box::new(accounts::Accounts { spec: a }));
    }
    if let Some(p) = &e.python {
        v.push(Box::new(python::Python::new(p, layer).with_lock(lock)));
    }
    if !e.ca_certificates.is_empty() {
        v.push(Box::new(cacerts::CaCertificates { layer }));
    }
    if let Some(b) = &e.bytecode {
        v.push(Box::new(bytecode::Bytecode { spec: b, layer }));
    }
    v
}
