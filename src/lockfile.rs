//! The lock file's format: `SPEC.lock` beside `SPEC.yaml`, written by
//! `strata lock` and read by `strata build`, which installs exactly what it
//! pins and never resolves anything over the network. What a build or a
//! relock does with it is decided in [`crate::lock`].
//!
//! Format (docs/lock.md): TOML, `version = 1`, one table per kind of pin.
//! `[debs."<layer>"]` holds the Debian packages of one layer entry, keyed by
//! the entry's `name` (or `file#layers[i]` when it has none). Sections this
//! version does not know are kept unchanged when the file is rewritten, so
//! other commands can add their own (Python wheel pins, the verifier's
//! sha256, a spec checksum) without losing the Debian pins, and vice versa.
//! Output is deterministic: tables and keys are sorted, packages sorted by
//! name, no timestamps other than the archives' own `Date:`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::spec::{DebsSpec, LoadedSpec, ResolvedLayer};

/// The lock format version this strata reads and writes.
pub const LOCK_VERSION: u32 = 1;

/// Why a lock file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The file is not a valid lock file.
    #[error("{path}: not a valid strata lock file: {message}\nhint: regenerate it with `strata lock {spec}`")]
    Parse {
        /// The lock file.
        path: PathBuf,
        /// The spec it belongs to.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// The lock could not be turned into TOML.
    #[error("serialising the lock: {0}")]
    Serialize(#[source] toml::ser::Error),
    /// The lock file is not a readable regular file of a sane size.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The lock file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: crate::hostfs::HostPathError,
    },
    /// The lock file is not text.
    #[error("reading {}: not UTF-8", path.display())]
    NotUtf8 {
        /// The lock file.
        path: PathBuf,
    },
    /// A pin the build needs is missing or stale.
    #[error("{0}")]
    Missing(String),
}

/// A lock file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// Format version: 1.
    pub version: u32,
    /// The checksum of the normalised spec this lock was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecLock>,
    /// The `strata-verify` binary images with a `gpu:` section get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<VerifierLock>,
    /// Debian packages per layer entry (key: [`layer_key`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub debs: BTreeMap<String, DebsLock>,
    /// Sections owned by other commands, kept as they are.
    #[serde(flatten)]
    pub other: toml::Table,
}

/// `[spec]`: which spec the lock belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecLock {
    /// [`spec_checksum`] of the spec and every file it includes.
    pub checksum: String,
}

/// `[verifier]`: the pinned `strata-verify` binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierLock {
    /// `sha256:` of the binary.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The checksum of a spec as parsed: the spec file and every included layer
/// file, each turned into canonical JSON (so comments, key order, quoting
/// style and line endings do not matter), with its path relative to the spec.
pub fn spec_checksum(spec: &LoadedSpec) -> Result<Digest, LockError> {
    let base = spec.path.parent().unwrap_or(Path::new(""));
    let mut text = String::from("strata-spec-v1\n");
    for (i, (path, source)) in spec.sources.iter().enumerate() {
        let value: serde_json::Value =
            serde_norway::from_str(source).map_err(|e| LockError::Missing(format!("{}: {e}", path.display())))?;
        let canon = crate::oci::canonical::to_vec(&value).map_err(|e| LockError::Missing(e.to_string()))?;
        // The spec's own file name does not matter; included files are named
        // relative to it.
        let rel = if i == 0 {
            "SPEC".to_string()
        } else {
            path.strip_prefix(base).unwrap_or(path).to_string_lossy().replace('\\', "/")
        };
        text.push_str(&rel);
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(&canon));
        text.push('\n');
    }
    Ok(Digest::of(text.as_bytes()))
}

/// The pinned Debian packages of one layer entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebsLock {
    /// `sha256:` of the resolution inputs (packages, excludes, preferences,
    /// archives, arch). A different value means the spec changed since locking.
    pub inputs: String,
    /// Debian architecture.
    pub arch: String,
    /// The archive states the packages were resolved against.
    pub archives: Vec<LockedArchive>,
    /// Decisions a reader may want to review (excluded dependencies,
    /// provider choices, optional archives that were unreachable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The packages, sorted by name.
    pub packages: Vec<DebPin>,
}

/// One signed `Release` used at lock time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedArchive {
    /// Archive root URL.
    pub url: String,
    /// Suite.
    pub suite: String,
    /// The Release file's `Date:`.
    pub date: String,
    /// sha256 of the `InRelease` file that was verified.
    pub inrelease_sha256: String,
}

/// One pinned `.deb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebPin {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Architecture (`amd64` or `all`).
    pub arch: String,
    /// Download URL (archive URL + pool path).
    pub url: String,
    /// Pool path (`Filename:` in the Packages index), to find it on any mirror.
    pub path: String,
    /// sha256 of the `.deb`.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl Lock {
    /// An empty lock.
    pub fn new() -> Lock {
        Lock { version: LOCK_VERSION, ..Lock::default() }
    }

    /// Parses lock-file text.
    pub fn parse(text: &str, path: &Path, spec: &str) -> Result<Lock, LockError> {
        let perr = |message: String| LockError::Parse { path: path.to_path_buf(), spec: spec.to_string(), message };
        let lock: Lock = toml::from_str(text).map_err(|e| perr(e.to_string().trim().to_string()))?;
        if lock.version != LOCK_VERSION {
            return Err(perr(format!(
                "lock version {} (expected {LOCK_VERSION}); this strata reads version {LOCK_VERSION}",
                lock.version
            )));
        }
        for (k, d) in &lock.debs {
            for p in &d.packages {
                if Digest::parse(&p.sha256).is_err() {
                    return Err(perr(format!("debs.\"{k}\": package {} has an invalid sha256 `{}`", p.name, p.sha256)));
                }
            }
        }
        Ok(lock)
    }

    /// The deterministic text of the lock, with a header comment.
    pub fn to_text(&self, spec_display: &str) -> Result<String, LockError> {
        let body = toml::to_string(self).map_err(LockError::Serialize)?;
        Ok(format!(
            "# Generated by `strata lock {spec_display}`. Do not edit by hand; commit it beside the spec.\n{body}"
        ))
    }

    /// Writes the lock atomically.
    pub fn write(&self, path: &Path, spec_display: &str) -> Result<(), LockError> {
        let text = self.to_text(spec_display)?;
        Ok(crate::atomic::atomic_write(path, text.as_bytes())?)
    }
}

/// The lock file of a spec: the spec's path with the extension `.lock`.
pub fn lock_path(spec_path: &Path) -> PathBuf {
    spec_path.with_extension("lock")
}

/// The largest lock file read, in bytes.
pub const MAX_LOCK_BYTES: u64 = 64 << 20;

/// Loads the lock file of a spec, `None` when there is none.
pub fn load_for(spec: &LoadedSpec) -> Result<Option<Lock>, LockError> {
    let path = lock_path(&spec.path);
    if !path.exists() && fs_err::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    // A regular file of bounded size (a FIFO or an endless file here must
    // not hang the build).
    let bytes = crate::hostfs::read_bounded(&path, MAX_LOCK_BYTES, "a lock file")
        .map_err(|source| LockError::Read { path: path.clone(), source })?;
    let text = String::from_utf8(bytes).map_err(|_| LockError::NotUtf8 { path: path.clone() })?;
    Lock::parse(&text, &path, &spec.path.display().to_string()).map(Some)
}

/// The key of a layer entry in the lock's per-layer tables: its `name`, else
/// `file#layers[i]`.
pub fn layer_key(layer: &ResolvedLayer) -> String {
    layer.display_name()
}

/// The `sha256:` of everything in a `debs:` entry that affects resolution.
pub fn debs_inputs(spec: &DebsSpec) -> String {
    let archives: Vec<serde_json::Value> = spec
        .archives()
        .iter()
        .map(|a| serde_json::json!({"url": a.url.0, "suites": a.suites, "components": a.components, "optional": a.optional}))
        .collect();
    let v = serde_json::json!({
        "packages": spec.packages.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
        "exclude": spec.exclude.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
        "prefer": spec.prefer.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect::<BTreeMap<_, _>>(),
        "archives": archives,
        "arch": spec.arch(),
    });
    Digest::of(v.to_string().as_bytes()).to_string()
}

/// The Debian pins of a layer entry, checked against the spec: an error
/// with a `strata lock` hint when the lock is missing, lacks the entry, or
/// was made from different inputs.
pub fn debs_pins<'a>(
    spec_path: &Path,
    lock: Option<&'a Lock>,
    layer: &ResolvedLayer,
    debs: &DebsSpec,
) -> Result<&'a DebsLock, LockError> {
    let key = layer_key(layer);
    let lp = lock_path(spec_path);
    let hint = format!("hint: run `strata lock {}` (it resolves the packages against the archive and pins each .deb by sha256), then commit {}", spec_path.display(), lp.display());
    let Some(lock) = lock else {
        return Err(LockError::Missing(format!(
            "layer `{key}` installs Debian packages, but there is no lock file {}\n{hint}",
            lp.display()
        )));
    };
    let Some(entry) = lock.debs.get(&key) else {
        return Err(LockError::Missing(format!(
            "{} has no pins for the `debs:` of layer `{key}`\n{hint}",
            lp.display()
        )));
    };
    let now = debs_inputs(debs);
    if entry.inputs != now {
        return Err(LockError::Missing(format!(
            "the `debs:` of layer `{key}` changed since {} was written\n  locked inputs: {}\n  spec inputs:   {now}\n{hint}",
            lp.display(),
            entry.inputs
        )));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_sections_and_is_stable() {
        let text = r#"version = 1

[python]
pylock = "pylock.toml"
sha256 = "00"

[debs."base"]
inputs = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
arch = "amd64"

[[debs."base".archives]]
url = "http://deb.example/debian"
suite = "bookworm"
date = "Sat, 01 Nov 2025 10:00:00 UTC"
inrelease_sha256 = "11"

[[debs."base".packages]]
name = "a"
version = "1.0"
arch = "amd64"
url = "http://deb.example/debian/pool/main/a/a_1.0_amd64.deb"
path = "pool/main/a/a_1.0_amd64.deb"
sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
size = 10
"#;
        let lock = Lock::parse(text, Path::new("x.lock"), "x.yaml").unwrap();
        assert!(lock.other.contains_key("python"));
        let out = lock.to_text("x.yaml").unwrap();
        let again = Lock::parse(&out, Path::new("x.lock"), "x.yaml").unwrap();
        assert_eq!(lock, again);
        assert_eq!(out, again.to_text("x.yaml").unwrap());
        assert!(out.contains("[python]"), "{out}");
    }

    #[test]
    fn wrong_version_is_an_error_with_a_hint() {
        let e = Lock::parse("version = 2\n", Path::new("s.lock"), "s.yaml").unwrap_err().to_string();
        assert!(e.contains("lock version 2") && e.contains("strata lock s.yaml"), "{e}");
    }
}
