//! The lock file's format: `SPEC.lock` beside `SPEC.yaml`, written by
//! `strata lock` and read by `strata build`, which installs exactly what it
//! pins and never resolves anything over the network. What a build or a
//! relock does with it is decided in [`crate::lock`].
//!
//! Format 2 (docs/lock.md): TOML, one table per kind of pin, and beside each
//! set of pins the inputs that chose them, written out (not hashed), so a
//! check can say exactly what changed and a relock can keep every pin whose
//! inputs did not:
//!
//! * `platform` — the spec's `platform:`;
//! * `[verifier]` — the `strata-verify` binary images with `gpu:` get;
//! * `[debs."<layer>"]` — the Debian packages of one layer entry, with
//!   `[debs."<layer>".inputs]` (packages, exclude, prefer, archives) and
//!   `arch`;
//! * `[python."<layer>"]` — the pylock of one `python:` entry, its sha256,
//!   and the requirements, `exclude_newer`, index, extras and target it was
//!   resolved for.
//!
//! Nothing else in a spec (config, files, tarballs pinned in the spec
//! itself) is recorded: editing it changes the image, not the lock. Sections
//! this version does not know are kept unchanged when the file is
//! rewritten. Output is deterministic: tables and keys are sorted, packages
//! sorted by name, no timestamps other than the archives' own `Date:`.
//!
//! Format 1 (a `[spec]` checksum of the whole spec and a digest of each
//! `debs:` entry's inputs) is still read, so `strata lock` can convert it and
//! keep its pins; builds and `strata lock --check` ask for that conversion.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::spec::{DebsSpec, LoadedSpec, PythonSpec, ResolvedLayer};

/// The lock format version this strata writes.
pub const LOCK_VERSION: u32 = 2;

/// The platform of specs that name none.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

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
    /// Format version: 2 (1 when read from an older file).
    pub version: u32,
    /// The spec's platform (`os/arch[/variant]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The `strata-verify` binary images with a `gpu:` section get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<VerifierLock>,
    /// Debian packages per layer entry (key: [`layer_key`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub debs: BTreeMap<String, DebsLock>,
    /// The pylock of each `python:` layer entry (key: [`layer_key`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub python: BTreeMap<String, PythonLock>,
    /// Sections owned by other commands, kept as they are.
    #[serde(flatten)]
    pub other: toml::Table,
    /// What a format-1 file recorded instead of the inputs themselves.
    #[serde(skip)]
    pub legacy: Option<Legacy>,
}

/// The digests a format-1 lock recorded in place of inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Legacy {
    /// `[spec] checksum`.
    pub spec_checksum: Option<String>,
    /// Each `debs:` entry's `inputs` digest ([`debs_inputs_v1`]).
    pub debs_inputs: BTreeMap<String, String>,
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

/// The pinned Debian packages of one layer entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebsLock {
    /// Debian architecture (an input: it chooses the packages).
    pub arch: String,
    /// Decisions a reader may want to review (excluded dependencies,
    /// provider choices, optional archives that were unreachable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the packages were resolved from.
    pub inputs: DebsInputs,
    /// The archive states the packages were resolved against.
    pub archives: Vec<LockedArchive>,
    /// The packages, sorted by name.
    pub packages: Vec<DebPin>,
}

/// The inputs of a `debs:` entry that choose packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebsInputs {
    /// `packages:`, as written.
    pub packages: Vec<String>,
    /// `exclude:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `prefer:`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prefer: BTreeMap<String, String>,
    /// The archives, one line each: `URL SUITE… [components: C…] [optional]`.
    pub archives: Vec<String>,
}

impl DebsInputs {
    /// The inputs of a `debs:` entry.
    pub fn of(spec: &DebsSpec) -> DebsInputs {
        DebsInputs {
            packages: spec.packages.iter().map(|p| p.0.clone()).collect(),
            exclude: spec.exclude.iter().map(|p| p.0.clone()).collect(),
            prefer: spec.prefer.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
            archives: spec
                .archives()
                .iter()
                .map(|a| {
                    let comps: Vec<&str> = if a.components.is_empty() {
                        vec!["main"]
                    } else {
                        a.components.iter().map(String::as_str).collect()
                    };
                    let mut s = format!("{} {} components: {}", a.url.0, a.suites.join(" "), comps.join(" "));
                    if a.optional {
                        s.push_str(" optional");
                    }
                    s
                })
                .collect(),
        }
    }
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

/// `[python."<layer>"]`: the pylock of one `python:` entry and what chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonLock {
    /// The pylock, as the spec names it (relative to the file that names it).
    pub pylock: String,
    /// `sha256:` of the pylock's bytes.
    pub sha256: String,
    /// The interpreter and platform the wheels are chosen for.
    pub target: String,
    /// Wheels the build installs from it.
    pub wheels: u64,
    /// `requirements:` as written (none: a pylock brought as it is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// `exclude_newer:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_newer: Option<String>,
    /// `index_url:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_url: Option<String>,
    /// `extras:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<String>,
}

/// The inputs of a `python:` entry as the lock records them (everything in
/// [`PythonLock`] but the pylock's sha256 and wheel count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonInputs {
    /// The pylock path.
    pub pylock: String,
    /// The target description.
    pub target: String,
    /// Requirements.
    pub requirements: Vec<String>,
    /// `exclude_newer`.
    pub exclude_newer: Option<String>,
    /// `index_url`.
    pub index_url: Option<String>,
    /// `extras`.
    pub extras: Vec<String>,
}

impl PythonInputs {
    /// The inputs of a `python:` entry.
    pub fn of(spec: &PythonSpec, arch: crate::platform::Arch) -> PythonInputs {
        PythonInputs {
            pylock: spec.lock.clone(),
            target: crate::sources::python::Target::of(spec.target.as_ref(), arch).describe(),
            requirements: spec.requirements.clone(),
            exclude_newer: spec.exclude_newer.clone(),
            index_url: spec.index_url.clone(),
            extras: spec.extras.clone(),
        }
    }

    /// The inputs recorded in `lock`.
    pub fn recorded(lock: &PythonLock) -> PythonInputs {
        PythonInputs {
            pylock: lock.pylock.clone(),
            target: lock.target.clone(),
            requirements: lock.requirements.clone(),
            exclude_newer: lock.exclude_newer.clone(),
            index_url: lock.index_url.clone(),
            extras: lock.extras.clone(),
        }
    }

    /// The lock record of these inputs with the pylock's digest and wheel count.
    pub fn record(&self, sha256: &Digest, wheels: usize) -> PythonLock {
        PythonLock {
            pylock: self.pylock.clone(),
            sha256: sha256.to_string(),
            target: self.target.clone(),
            wheels: wheels as u64,
            requirements: self.requirements.clone(),
            exclude_newer: self.exclude_newer.clone(),
            index_url: self.index_url.clone(),
            extras: self.extras.clone(),
        }
    }
}

/// The platform a spec builds for.
pub fn platform_of(spec: &LoadedSpec) -> String {
    spec.spec.platform.clone().unwrap_or_else(|| DEFAULT_PLATFORM.to_string())
}

/// Format 1 as written: kept only to read older files.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Debs {
    inputs: String,
    arch: String,
    archives: Vec<LockedArchive>,
    #[serde(default)]
    notes: Vec<String>,
    packages: Vec<DebPin>,
}

#[derive(Deserialize)]
struct V1Spec {
    checksum: String,
}

#[derive(Deserialize)]
struct V1Python {
    pylock: String,
    sha256: String,
    target: String,
    wheels: u64,
}

impl Lock {
    /// An empty lock of the current format.
    pub fn new() -> Lock {
        Lock { version: LOCK_VERSION, ..Lock::default() }
    }

    /// Parses lock-file text (format 2, or format 1 to be converted).
    pub fn parse(text: &str, path: &Path, spec: &str) -> Result<Lock, LockError> {
        let perr = |message: String| LockError::Parse { path: path.to_path_buf(), spec: spec.to_string(), message };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| perr(e.to_string().trim().to_string()))?;
        let version = table.get("version").and_then(toml::Value::as_integer);
        let lock = match version {
            Some(2) => {
                let lock: Lock =
                    table.try_into().map_err(|e: toml::de::Error| perr(e.to_string().trim().to_string()))?;
                lock
            }
            Some(1) => {
                let mut legacy = Legacy::default();
                let mut lock = Lock { version: 1, ..Lock::default() };
                table.remove("version");
                if let Some(s) = table.remove("spec") {
                    let s: V1Spec = s.try_into().map_err(|e: toml::de::Error| perr(format!("[spec]: {e}")))?;
                    legacy.spec_checksum = Some(s.checksum);
                }
                if let Some(v) = table.remove("verifier") {
                    lock.verifier = Some(v.try_into().map_err(|e: toml::de::Error| perr(format!("[verifier]: {e}")))?);
                }
                if let Some(toml::Value::Table(debs)) = table.remove("debs") {
                    for (k, v) in debs {
                        let d: V1Debs =
                            v.try_into().map_err(|e: toml::de::Error| perr(format!("[debs.\"{k}\"]: {e}")))?;
                        legacy.debs_inputs.insert(k.clone(), d.inputs);
                        lock.debs.insert(
                            k,
                            DebsLock {
                                arch: d.arch,
                                notes: d.notes,
                                inputs: DebsInputs::default(),
                                archives: d.archives,
                                packages: d.packages,
                            },
                        );
                    }
                }
                if let Some(toml::Value::Table(py)) = table.remove("python") {
                    for (k, v) in py {
                        let p: V1Python =
                            v.try_into().map_err(|e: toml::de::Error| perr(format!("[python.\"{k}\"]: {e}")))?;
                        lock.python.insert(
                            k,
                            PythonLock {
                                pylock: p.pylock,
                                sha256: p.sha256,
                                target: p.target,
                                wheels: p.wheels,
                                requirements: Vec::new(),
                                exclude_newer: None,
                                index_url: None,
                                extras: Vec::new(),
                            },
                        );
                    }
                }
                lock.other = table;
                lock.legacy = Some(legacy);
                lock
            }
            Some(v) => {
                return Err(perr(format!(
                    "lock version {v} (expected {LOCK_VERSION}); this strata reads versions 1 and {LOCK_VERSION}"
                )))
            }
            None => return Err(perr("no `version`".into())),
        };
        for (k, d) in &lock.debs {
            for p in &d.packages {
                if Digest::parse(&p.sha256).is_err() {
                    return Err(perr(format!("debs.\"{k}\": package {} has an invalid sha256 `{}`", p.name, p.sha256)));
                }
            }
        }
        Ok(lock)
    }

    /// True when this lock came from a format-1 file.
    pub fn is_legacy(&self) -> bool {
        self.version != LOCK_VERSION
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

/// A spec path as messages and generated headers show it, the same however
/// it was spelled: `./specs/x.yaml`, `specs/./x.yaml` and (from the
/// repository root) `/abs/repo/specs/x.yaml` are all `specs/x.yaml`.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let rel = match (path.is_absolute(), &cwd) {
        (true, Some(cwd)) => path.strip_prefix(cwd).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    };
    let mut parts: Vec<Component<'_>> = Vec::new();
    for c in rel.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let clean: PathBuf = parts.iter().collect();
    let s = clean.to_string_lossy().replace('\\', "/");
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

/// The largest lock file read, in bytes.
pub const MAX_LOCK_BYTES: u64 = 64 << 20;

/// Loads the lock file of a spec, `None` when there is none.
pub fn load_for(spec: &LoadedSpec) -> Result<Option<Lock>, LockError> {
    let path = spec.lock_path();
    if !path.exists() && fs_err::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    // A regular file of bounded size (a FIFO or an endless file here must
    // not hang the build).
    let bytes = crate::hostfs::read_bounded(&path, MAX_LOCK_BYTES, "a lock file")
        .map_err(|source| LockError::Read { path: path.clone(), source })?;
    let text = String::from_utf8(bytes).map_err(|_| LockError::NotUtf8 { path: path.clone() })?;
    Lock::parse(&text, &path, &display_path(&spec.path)).map(Some)
}

/// The key of a layer entry in the lock's per-layer tables: its `name`, else
/// `file#layers[i]`.
pub fn layer_key(layer: &ResolvedLayer) -> String {
    layer.display_name()
}

/// The format-1 digest of a `debs:` entry's inputs (to convert older locks).
pub fn debs_inputs_v1(spec: &DebsSpec) -> String {
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

/// Whether `entry` was resolved from exactly these inputs (for a format-1
/// entry: whether its digest matches).
pub fn debs_current(lock: &Lock, key: &str, entry: &DebsLock, spec: &DebsSpec) -> bool {
    match &lock.legacy {
        Some(l) => l.debs_inputs.get(key).is_some_and(|d| *d == debs_inputs_v1(spec)),
        None => entry.inputs == DebsInputs::of(spec) && entry.arch == spec.arch(),
    }
}

/// The Debian pins of a layer entry, checked against the spec: an error
/// with a `strata lock` hint when the lock is missing, lacks the entry, or
/// was made from different inputs.
pub fn debs_pins<'a>(
    spec: &LoadedSpec,
    lock: Option<&'a Lock>,
    layer: &ResolvedLayer,
    debs: &DebsSpec,
) -> Result<&'a DebsLock, LockError> {
    let key = layer_key(layer);
    let lp = spec.lock_path();
    let shown = display_path(&spec.path);
    let hint = format!("hint: run `strata lock {shown}` (it resolves the packages against the archive and pins each .deb by sha256), then commit {}", display_path(&lp));
    let Some(lock) = lock else {
        return Err(LockError::Missing(format!(
            "layer `{key}` installs Debian packages, but there is no lock file {}\n{hint}",
            display_path(&lp)
        )));
    };
    let Some(entry) = lock.debs.get(&key) else {
        return Err(LockError::Missing(format!(
            "{} has no pins for the `debs:` of layer `{key}`\n{hint}",
            display_path(&lp)
        )));
    };
    if !debs_current(lock, &key, entry, debs) {
        return Err(LockError::Missing(format!(
            "the `debs:` of layer `{key}` changed since {} was written\n{hint}",
            display_path(&lp),
        )));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"version = 2
platform = "linux/amd64"

[other]
kept = "yes"

[debs."base"]
arch = "amd64"

[debs."base".inputs]
packages = ["a"]
archives = ["http://deb.example/debian stable components: main"]

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

[python.py]
pylock = "pylock.toml"
sha256 = "sha256:00"
target = "CPython 3.11 manylinux_2_28 x86_64"
wheels = 1
requirements = ["alpha>=1"]
exclude_newer = "2026-01-01T00:00:00Z"
"#;

    #[test]
    fn round_trip_keeps_unknown_sections_and_is_stable() {
        let lock = Lock::parse(V2, Path::new("x.lock"), "x.yaml").unwrap();
        assert!(lock.other.contains_key("other"));
        assert_eq!(lock.python["py"].requirements, ["alpha>=1"]);
        let out = lock.to_text("x.yaml").unwrap();
        let again = Lock::parse(&out, Path::new("x.lock"), "x.yaml").unwrap();
        assert_eq!(lock, again);
        assert_eq!(out, again.to_text("x.yaml").unwrap());
        assert!(out.contains("[other]"), "{out}");
    }

    #[test]
    fn format_1_is_read_with_its_digests() {
        let v1 = "version = 1\n[spec]\nchecksum = \"sha256:aa\"\n[debs.base]\ninputs = \"sha256:bb\"\narch = \"amd64\"\narchives = []\npackages = []\n[python.py]\npylock = \"pylock.toml\"\nsha256 = \"sha256:cc\"\ntarget = \"t\"\nwheels = 3\n";
        let lock = Lock::parse(v1, Path::new("x.lock"), "x.yaml").unwrap();
        assert!(lock.is_legacy());
        let legacy = lock.legacy.as_ref().unwrap();
        assert_eq!(legacy.spec_checksum.as_deref(), Some("sha256:aa"));
        assert_eq!(legacy.debs_inputs["base"], "sha256:bb");
        assert_eq!(lock.python["py"].wheels, 3);
    }

    #[test]
    fn wrong_version_is_an_error_with_a_hint() {
        let e = Lock::parse("version = 3\n", Path::new("s.lock"), "s.yaml").unwrap_err().to_string();
        assert!(e.contains("lock version 3") && e.contains("strata lock s.yaml"), "{e}");
    }

    #[test]
    fn display_path_does_not_depend_on_spelling() {
        for p in ["specs/x.yaml", "./specs/x.yaml", "specs/./x.yaml", "specs/../specs/x.yaml"] {
            assert_eq!(display_path(Path::new(p)), "specs/x.yaml", "{p}");
        }
        let abs = std::env::current_dir().unwrap().join("specs/x.yaml");
        assert_eq!(display_path(&abs), "specs/x.yaml");
        assert_eq!(display_path(Path::new("../x.yaml")), "../x.yaml");
    }
}
