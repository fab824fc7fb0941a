//! Lock policy, in one place.
//!
//! * [`relock`] is `strata lock`: resolve the Debian packages, record each
//!   pylock (uv rewrites those with `requirements:`), the spec checksum and
//!   the verifier's sha256, then write the lock file, or with `check`
//!   compare it only.
//! * [`for_build`] is what a build demands: builds are locked by default,
//!   so a lock, when there is one, must belong to this spec (its `[spec]`
//!   checksum), layers that resolve names (Debian packages) need their pins
//!   and the verifier must be the pinned binary. With `--unlocked` these only
//!   warn, and missing Debian pins are resolved now, in memory.
//!
//! The file format itself is [`crate::lockfile`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::lockfile::*;
use crate::net::{Net, NetOptions, RetryPolicy};
use crate::report::Reporter;
use crate::sources::python::lockfile::{lock_python, Locked};
use crate::sources::python::uv::UvError;
use crate::sources::verifier::{Verifier, VerifierError};
use crate::spec::LoadedSpec;
use crate::store::Store;

/// Why locking, or a build's use of the lock, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock file is missing, stale, unreadable or lacks a pin.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The verifier binary cannot be used.
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// Locking a `python:` entry failed.
    #[error(transparent)]
    Python(#[from] UvError),
    /// Resolving a `debs:` entry failed.
    #[error("layer `{layer}` ({} {node}): {source}", file.display())]
    Resolve {
        /// The layer entry.
        layer: String,
        /// Its file.
        file: PathBuf,
        /// Its node in the file.
        node: String,
        /// Why.
        #[source]
        source: crate::sources::deb::error::DebError,
    },
    /// Two `debs:` entries with one lock key.
    #[error("{}: two layer entries with `debs:` share the lock key `{key}`\nhint: give each a distinct `name:`", file.display())]
    SharedKey {
        /// The spec file.
        file: PathBuf,
        /// The key.
        key: String,
    },
    /// The network layer could not be set up.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// `strata lock --check`: the lock would change.
    #[error("{} is out of date (or missing) for {spec}\nhint: run `strata lock {spec}` and commit the result", path.display())]
    OutOfDate {
        /// The lock file.
        path: PathBuf,
        /// The spec, as given.
        spec: String,
    },
}

impl crate::error::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Resolve { source, .. } => source.hint(),
            Error::Net(e) => e.hint(),
            _ => None,
        }
    }
}

/// Checks that `lock` was made from this spec (its `[spec]` checksum).
pub fn check_current(spec: &LoadedSpec, lock: &Lock) -> Result<(), LockError> {
    let lp = lock_path(&spec.path);
    let now = spec_checksum(spec)?.to_string();
    let hint = format!(
        "hint: run `strata lock {}` and commit {} (or build with `--unlocked` for an experiment; the image then says so)",
        spec.path.display(),
        lp.display()
    );
    match &lock.spec {
        Some(s) if s.checksum == now => Ok(()),
        Some(s) => Err(LockError::Missing(format!(
            "{} is stale: {} changed since it was locked\n  locked spec: {}\n  spec now:    {now}\n{hint}",
            lp.display(),
            spec.path.display(),
            s.checksum
        ))),
        None => Err(LockError::Missing(format!(
            "{} has no [spec] checksum (it predates locked builds)\n{hint}",
            lp.display()
        ))),
    }
}

/// Checks, before anything is fetched, that every `debs:` entry of a spec is
/// pinned by the lock and the pins are current.
pub fn check_spec(spec: &LoadedSpec, lock: Option<&Lock>) -> Result<(), LockError> {
    for l in &spec.layers {
        if let Some(d) = &l.entry.debs {
            debs_pins(&spec.path, lock, l, d)?;
        }
    }
    Ok(())
}

/// Resolves every `debs:` entry of a spec and returns the new lock: `base`'s
/// other sections are kept, its `debs` table is replaced. Nothing is written.
pub fn resolve_debs(
    spec: &LoadedSpec,
    base: Option<Lock>,
    store: &Store,
    net: &NetOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Lock, Error> {
    let mut lock = base.unwrap_or_default();
    let mut debs = BTreeMap::new();
    let layers: Vec<_> = spec.layers.iter().filter_map(|l| l.entry.debs.as_ref().map(|d| (l, d))).collect();
    if !layers.is_empty() {
        let net = Net::new(net.clone())?;
        let retry = RetryPolicy::default().with_retries(2);
        let cx = crate::sources::deb::repo::LockContext { store, reporter: reporter.clone(), net: &net, retry };
        for (l, d) in layers {
            let key = layer_key(l);
            if debs.contains_key(&key) {
                return Err(Error::SharedKey { file: l.file.clone(), key });
            }
            reporter.info(&format!("resolving layer `{key}`"));
            let entry = crate::sources::deb::repo::lock_layer(l, d, &cx).map_err(|source| Error::Resolve {
                layer: key.clone(),
                file: l.file.clone(),
                node: l.node.clone(),
                source,
            })?;
            debs.insert(key, entry);
        }
    }
    lock.version = LOCK_VERSION;
    lock.debs = debs;
    Ok(lock)
}

/// Settings of `strata lock`.
#[derive(Debug, Clone, Default)]
pub struct RelockOptions {
    /// Network settings for archive requests.
    pub net: NetOptions,
    /// The strata-verify binary to pin (default: next to the executable).
    pub verifier: Option<PathBuf>,
    /// Compare only: fail with [`Error::OutOfDate`] when the lock would change.
    pub check: bool,
}

/// What `strata lock` did.
#[derive(Debug)]
pub struct Relocked {
    /// The lock file.
    pub path: PathBuf,
    /// The lock.
    pub lock: Lock,
    /// The pylock of each `python:` entry.
    pub pylocks: Vec<Locked>,
    /// True when the file already said exactly this.
    pub unchanged: bool,
}

/// `strata lock`: resolves and records everything the spec's builds need.
pub fn relock(
    spec: &LoadedSpec,
    store: &Store,
    opts: &RelockOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Relocked, Error> {
    let mut lock = resolve_debs(spec, load_for(spec)?, store, &opts.net, reporter)?;
    // Python: uv rewrites the pylock of entries with `requirements:`; every
    // pylock's sha256 is recorded so builds notice a pylock edited later.
    let pylocks = lock_python(spec, &mut lock, opts.check)?;
    // The spec itself, and the verifier binary images with `gpu:` get.
    lock.spec = Some(SpecLock { checksum: spec_checksum(spec)?.to_string() });
    lock.verifier = Verifier::locate(spec, opts.verifier.as_deref(), None)?
        .map(|v| VerifierLock { sha256: v.sha256.to_string(), size: v.size });
    let path = lock_path(&spec.path);
    let shown = spec.path.display().to_string();
    let text = lock.to_text(&shown)?;
    let unchanged = fs_err::read_to_string(&path).ok().as_deref() == Some(text.as_str());
    if opts.check && !unchanged {
        return Err(Error::OutOfDate { path, spec: shown });
    }
    if !opts.check && !unchanged {
        lock.write(&path, &shown)?;
    }
    Ok(Relocked { path, lock, pylocks, unchanged })
}

/// Settings of a build that concern the lock.
#[derive(Debug, Clone, Default)]
pub struct BuildLockOptions {
    /// Build even when the lock is missing or stale.
    pub unlocked: bool,
    /// The strata-verify binary (default: next to the executable).
    pub verifier: Option<PathBuf>,
    /// Network settings, for resolving Debian packages when `unlocked`.
    pub net: NetOptions,
}

/// What a build takes from the lock.
#[derive(Debug)]
pub struct BuildInputs {
    /// The lock (resolved now, in memory, for `--unlocked` builds that lack pins).
    pub lock: Option<Lock>,
    /// The verifier binary for specs with a `gpu:` section.
    pub verifier: Option<Verifier>,
}

/// The lock a build uses (loaded once) and the verifier it embeds.
pub fn for_build(
    spec: &LoadedSpec,
    store: &Store,
    opts: &BuildLockOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildInputs, Error> {
    let mut lock = load_for(spec)?;
    if let Some(l) = &lock {
        if let Err(err) = check_current(spec, l) {
            if !opts.unlocked {
                return Err(err.into());
            }
            reporter.warn(&format!("--unlocked: {}", err.to_string().lines().next().unwrap_or_default()));
        }
    }
    if let Err(err) = check_spec(spec, lock.as_ref()) {
        if !opts.unlocked {
            return Err(err.into());
        }
        reporter.warn("--unlocked: resolving Debian packages against the live archive (this build is not reproducible from the spec alone)");
        lock = Some(resolve_debs(spec, lock.take(), store, &opts.net, reporter)?);
    }
    let pins = if opts.unlocked { None } else { lock.as_ref() };
    let verifier = Verifier::locate(spec, opts.verifier.as_deref(), pins)?;
    Ok(BuildInputs { lock, verifier })
}
