//! Lock policy, in one place.
//!
//! * [`check`] is `strata lock --check` and the first thing a build does:
//!   it compares the inputs the lock recorded with the spec's (Debian
//!   packages, excludes, preferences and archives; Python requirements,
//!   `exclude_newer`, index, extras and target; the platform; the verifier)
//!   and checks that every pin is self-consistent (the pylock is the one
//!   recorded and satisfies the requirements; each `.deb` pin is well
//!   formed and its request is met). It reads only the spec, the lock and
//!   the pylocks: no network, no resolution. The result names each change.
//! * [`relock`] is `strata lock`: every section whose inputs did not change
//!   is kept as it is; the others are resolved again with the current pins
//!   as preferences, so an edit moves only what it needs. `--upgrade`
//!   resolves everything afresh, `--upgrade-package NAME` moves one package,
//!   `--offline` resolves from the cache and mirrors only.
//! * [`for_build`] is what a build demands: builds are locked by default,
//!   so a lock, when there is one, must be current, layers that resolve
//!   names (Debian packages) need their pins and the verifier must be the
//!   pinned binary. With `--unlocked` these only warn, and missing Debian
//!   pins are resolved now, in memory.
//!
//! What is not an input (config, files, tarballs pinned in the spec,
//! layering, build options) never makes a lock stale: it changes the image,
//! not what the lock pins. The file format itself is [`crate::lockfile`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use crate::lockfile::*;
use crate::net::{Net, NetOptions, RetryPolicy};
use crate::report::Reporter;
use crate::sources::deb::control::parse_relations;
use crate::sources::deb::repo::{LockContext, Previous};
use crate::sources::deb::version::Version as DebVersion;
use crate::sources::python::lockfile::{self as pylockfile, Locked};
use crate::sources::python::uv::UvError;
use crate::sources::python::{Python, Target};
use crate::sources::verifier::{Verifier, VerifierError};
use crate::spec::LoadedSpec;
use crate::store::Store;

/// Why locking, or a build's use of the lock, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock file is missing, unreadable or lacks a pin.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The lock does not match the spec.
    #[error(transparent)]
    Stale(#[from] Stale),
    /// The verifier binary cannot be used.
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// Locking a `python:` entry failed.
    #[error("layer `{layer}`: {source}")]
    Python {
        /// The layer key.
        layer: String,
        /// What went wrong.
        #[source]
        source: UvError,
    },
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
    /// Two `debs:` entries share a lock key.
    #[error("{}: two layer entries with `debs:` share the lock key `{key}`\nhint: give each a distinct `name:`", file.display())]
    SharedKey {
        /// The file of the second one.
        file: PathBuf,
        /// The key.
        key: String,
    },
    /// `exclude_newer` lies in the future: the resolution would change as
    /// packages are uploaded.
    #[error("layer `{layer}`: `exclude_newer: {value}` is in the future (now: {now})\nhint: a cutoff in the future lets uploads made after locking change the result; use a time that has passed, e.g. today's date")]
    ExcludeNewerInFuture {
        /// The layer key.
        layer: String,
        /// The value.
        value: String,
        /// The current time (UTC, RFC 3339).
        now: String,
    },
    /// `--upgrade-package NAME` names no package of the lock or the spec.
    #[error("--upgrade-package {name}: no package of that name is pinned by {} or requested by the spec{}", lock.display(), suggestion.as_ref().map(|s| format!("\nhint: did you mean `{s}`?")).unwrap_or_default())]
    UnknownPackage {
        /// The name given.
        name: String,
        /// The lock file.
        lock: PathBuf,
        /// The nearest known name.
        suggestion: Option<String>,
    },
    /// The network layer could not be set up.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
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

/// One way a lock no longer matches its spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    /// The spec needs a lock and there is none.
    NoLock,
    /// The lock is in an older format.
    Format {
        /// Its version.
        found: u32,
    },
    /// `platform:` changed.
    Platform {
        /// Locked.
        locked: String,
        /// Now.
        now: String,
    },
    /// A layer entry is new, or a kind of entry was added to it.
    LayerAdded {
        /// `debs` or `python`.
        section: &'static str,
        /// The layer key.
        layer: String,
    },
    /// The lock has pins for a layer entry the spec no longer has.
    LayerRemoved {
        /// `debs` or `python`.
        section: &'static str,
        /// The layer key.
        layer: String,
    },
    /// A list input changed (`packages`, `exclude`, `requirements`, `extras`).
    List {
        /// The layer key.
        layer: String,
        /// The input.
        input: &'static str,
        /// Entries the spec has and the lock did not.
        added: Vec<String>,
        /// Entries the lock had and the spec has not.
        removed: Vec<String>,
    },
    /// A single-valued input changed.
    Value {
        /// The layer key.
        layer: String,
        /// The input.
        input: &'static str,
        /// Locked value.
        locked: String,
        /// Value now.
        now: String,
    },
    /// A format-1 `debs:` entry whose inputs digest no longer matches.
    DebsChanged {
        /// The layer key.
        layer: String,
    },
    /// The pylock is not the file the lock recorded.
    PylockEdited {
        /// The layer key.
        layer: String,
        /// The pylock.
        path: String,
        /// Recorded sha256.
        recorded: String,
        /// sha256 now (`missing` when there is no file).
        now: String,
    },
    /// The pylock does not satisfy a requirement.
    Unsatisfied {
        /// The layer key.
        layer: String,
        /// The requirement.
        requirement: String,
        /// What the pylock has of that name.
        found: Option<String>,
    },
    /// A pin is malformed or does not meet the recorded request.
    BadPin {
        /// The layer key.
        layer: String,
        /// The package.
        package: String,
        /// What is wrong.
        problem: String,
    },
    /// The verifier differs from the pinned one (or one was added or removed).
    Verifier {
        /// Locked sha256 (`none`).
        locked: String,
        /// The one this command uses (`none`).
        now: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| v.join(", ");
        match self {
            Change::NoLock => write!(f, "there is no lock file"),
            Change::Format { found } => write!(
                f,
                "the lock is in format {found}; this strata writes format {LOCK_VERSION} (`strata lock` converts it and keeps every pin)"
            ),
            Change::Platform { locked, now } => write!(f, "platform: locked for {locked}, the spec says {now}"),
            Change::LayerAdded { section, layer } => {
                write!(f, "layer `{layer}`: its `{section}:` is new and not locked yet")
            }
            Change::LayerRemoved { section, layer } => {
                write!(f, "layer `{layer}`: the lock pins `{section}:` for a layer entry the spec no longer has")
            }
            Change::List { layer, input, added, removed } => {
                write!(f, "layer `{layer}`: {input}")?;
                if !added.is_empty() {
                    write!(f, " added: {}", list(added))?;
                }
                if !added.is_empty() && !removed.is_empty() {
                    write!(f, ";")?;
                }
                if !removed.is_empty() {
                    write!(f, " removed: {}", list(removed))?;
                }
                if added.is_empty() && removed.is_empty() {
                    write!(f, " reordered")?;
                }
                Ok(())
            }
            Change::Value { layer, input, locked, now } => {
                write!(f, "layer `{layer}`: {input} changed: {locked} → {now}")
            }
            Change::DebsChanged { layer } => write!(f, "layer `{layer}`: its `debs:` changed since it was locked"),
            Change::PylockEdited { layer, path, recorded, now } => write!(
                f,
                "layer `{layer}`: {path} is not the pylock the lock recorded (recorded {recorded}, now {now})"
            ),
            Change::Unsatisfied { layer, requirement, found } => match found {
                Some(have) => write!(f, "layer `{layer}`: the pylock does not satisfy `{requirement}` (it has {have})"),
                None => write!(f, "layer `{layer}`: the pylock has nothing for `{requirement}`"),
            },
            Change::BadPin { layer, package, problem } => write!(f, "layer `{layer}`: pin `{package}`: {problem}"),
            Change::Verifier { locked, now } => {
                write!(f, "verifier: the lock pins {locked}, this strata would pin {now}")
            }
        }
    }
}

/// A lock that does not match its spec, and each reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} is stale:{}\nhint: run `strata lock {spec}` (it keeps every pin the change does not touch) and commit the result{}", display_path(lock), changes.iter().map(|c| format!("\n  {c}")).collect::<String>(), if *build { " (or build with `--unlocked` for an experiment; the image then says so)" } else { "" })]
pub struct Stale {
    /// The lock file.
    pub lock: PathBuf,
    /// The spec, as shown.
    pub spec: String,
    /// What changed.
    pub changes: Vec<Change>,
    /// Whether a build refused it (the hint mentions `--unlocked`).
    pub build: bool,
}

/// Which verifier a check compares with the lock's pin.
#[derive(Debug, Clone, Copy)]
pub enum VerifierCheck<'a> {
    /// None: a build checks the verifier on its own (with the detailed error).
    Skip,
    /// This one (`None`: the spec needs none).
    Expect(Option<&'a Verifier>),
}

/// Whether a spec pins anything (and so wants a lock file).
pub fn needs_lock(spec: &LoadedSpec) -> bool {
    spec.layers.iter().any(|l| l.entry.debs.is_some() || l.entry.python.is_some())
        || spec.spec.gpu.as_ref().is_some_and(|g| g.verify.as_deref() != Some("off"))
}

fn list_change(layer: &str, input: &'static str, locked: &[String], now: &[String]) -> Option<Change> {
    if locked == now {
        return None;
    }
    let added = now.iter().filter(|x| !locked.contains(x)).cloned().collect();
    let removed = locked.iter().filter(|x| !now.contains(x)).cloned().collect();
    Some(Change::List { layer: layer.to_string(), input, added, removed })
}

fn value_change(layer: &str, input: &'static str, locked: Option<&str>, now: Option<&str>) -> Option<Change> {
    (locked != now).then(|| Change::Value {
        layer: layer.to_string(),
        input,
        locked: locked.unwrap_or("(none)").to_string(),
        now: now.unwrap_or("(none)").to_string(),
    })
}

/// Compares a lock with its spec (see the module docs). Reads the pylocks;
/// never the network. An empty result means the lock is current.
pub fn check(spec: &LoadedSpec, lock: Option<&Lock>, verifier: VerifierCheck<'_>) -> Result<Vec<Change>, Error> {
    let Some(lock) = lock else {
        return Ok(if needs_lock(spec) { vec![Change::NoLock] } else { Vec::new() });
    };
    if lock.is_legacy() {
        return Ok(vec![Change::Format { found: lock.version }]);
    }
    let mut out = Vec::new();
    let platform = platform_of(spec);
    if lock.platform.as_deref() != Some(platform.as_str()) {
        out.push(Change::Platform { locked: lock.platform.clone().unwrap_or_else(|| "(none)".into()), now: platform });
    }
    let mut debs_keys = BTreeSet::new();
    let mut python_keys = BTreeSet::new();
    for layer in &spec.layers {
        let key = layer_key(layer);
        if let Some(d) = &layer.entry.debs {
            debs_keys.insert(key.clone());
            match lock.debs.get(&key) {
                None => out.push(Change::LayerAdded { section: "debs", layer: key.clone() }),
                Some(entry) => {
                    let now = DebsInputs::of(d);
                    let was = &entry.inputs;
                    out.extend(list_change(&key, "Debian packages", &was.packages, &now.packages));
                    out.extend(list_change(&key, "exclude", &was.exclude, &now.exclude));
                    if was.prefer != now.prefer {
                        let show = |m: &BTreeMap<String, String>| {
                            format!("{{{}}}", m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
                        };
                        out.push(Change::Value {
                            layer: key.clone(),
                            input: "prefer",
                            locked: show(&was.prefer),
                            now: show(&now.prefer),
                        });
                    }
                    out.extend(list_change(&key, "archives", &was.archives, &now.archives));
                    out.extend(value_change(&key, "arch", Some(&entry.arch), Some(&d.arch())));
                    out.extend(check_debs_pins(&key, entry, d));
                    for (b, below) in pins_below(lock, spec, layer) {
                        if entry.packages.iter().any(|p| p.name == b.name) {
                            out.push(Change::BadPin {
                                layer: key.clone(),
                                package: b.name.clone(),
                                problem: format!("also pinned by layer `{below}` below (a package is installed once)"),
                            });
                        }
                    }
                }
            }
        }
        if let Some(py) = &layer.entry.python {
            python_keys.insert(key.clone());
            match lock.python.get(&key) {
                None => out.push(Change::LayerAdded { section: "python", layer: key.clone() }),
                Some(entry) => {
                    let now = PythonInputs::of(py, layer.arch);
                    let was = PythonInputs::recorded(entry);
                    out.extend(value_change(&key, "pylock", Some(&was.pylock), Some(&now.pylock)));
                    out.extend(list_change(&key, "requirements", &was.requirements, &now.requirements));
                    out.extend(value_change(
                        &key,
                        "exclude_newer",
                        was.exclude_newer.as_deref(),
                        now.exclude_newer.as_deref(),
                    ));
                    out.extend(value_change(&key, "index_url", was.index_url.as_deref(), now.index_url.as_deref()));
                    out.extend(list_change(&key, "extras", &was.extras, &now.extras));
                    out.extend(value_change(&key, "target", Some(&was.target), Some(&now.target)));
                    out.extend(check_pylock(layer, py, entry)?);
                }
            }
        }
    }
    for k in lock.debs.keys().filter(|k| !debs_keys.contains(*k)) {
        out.push(Change::LayerRemoved { section: "debs", layer: k.clone() });
    }
    for k in lock.python.keys().filter(|k| !python_keys.contains(*k)) {
        out.push(Change::LayerRemoved { section: "python", layer: k.clone() });
    }
    if let VerifierCheck::Expect(v) = verifier {
        let locked = lock.verifier.as_ref().map(|p| p.sha256.clone());
        let now = v.map(|v| v.sha256.to_string());
        if locked != now {
            out.push(Change::Verifier {
                locked: locked.unwrap_or_else(|| "none".into()),
                now: now.unwrap_or_else(|| "none".into()),
            });
        }
    }
    Ok(out)
}

/// The pins of the `debs:` entries of `spec` below `layer` that `lock`
/// holds, each with its entry's key (the first entry pinning a name wins).
fn pins_below<'a>(lock: &'a Lock, spec: &LoadedSpec, layer: &crate::spec::ResolvedLayer) -> Vec<(&'a DebPin, String)> {
    let mut out: Vec<(&'a DebPin, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for l in spec.layers.iter().take_while(|l| !std::ptr::eq(*l, layer)) {
        if l.entry.debs.is_none() {
            continue;
        }
        let key = layer_key(l);
        for p in lock.debs.get(&key).map(|e| e.packages.as_slice()).unwrap_or_default() {
            if seen.insert(p.name.as_str()) {
                out.push((p, key.clone()));
            }
        }
    }
    out
}

/// Self-consistency of a `debs:` entry's pins: names unique and sorted,
/// none excluded, each `url` its archive plus its pool path, the
/// architecture the entry's, and every requested relation that names a
/// pinned package met by its pinned version.
fn check_debs_pins(key: &str, entry: &DebsLock, spec: &crate::spec::DebsSpec) -> Vec<Change> {
    let mut out = Vec::new();
    let bad = |package: &str, problem: String| Change::BadPin { layer: key.into(), package: package.into(), problem };
    let mut seen: BTreeMap<&str, &DebPin> = BTreeMap::new();
    let excluded: BTreeSet<&str> = spec.exclude.iter().map(|e| e.0.as_str()).collect();
    let roots: Vec<&str> = entry.archives.iter().map(|a| a.url.as_str()).collect();
    for p in &entry.packages {
        if seen.insert(&p.name, p).is_some() {
            out.push(bad(&p.name, "pinned twice".into()));
        }
        if excluded.contains(p.name.as_str()) {
            out.push(bad(&p.name, "pinned, but `exclude:` names it".into()));
        }
        if p.arch != entry.arch && p.arch != "all" {
            out.push(bad(&p.name, format!("architecture {} in a lock for {}", p.arch, entry.arch)));
        }
        if p.path.starts_with('/') || p.path.split('/').any(|c| c == "..") {
            out.push(bad(&p.name, format!("pool path `{}` escapes the archive root", p.path)));
        }
        if !roots.iter().any(|r| p.url == format!("{r}/{}", p.path)) {
            out.push(bad(&p.name, format!("url {} is not a locked archive plus its path {}", p.url, p.path)));
        }
        if DebVersion::parse(&p.version).is_err() {
            out.push(bad(&p.name, format!("`{}` is not a Debian version", p.version)));
        }
    }
    if entry.packages.windows(2).any(|w| w[0].name > w[1].name) {
        out.push(bad("*", "packages are not sorted by name (the file was edited by hand)".into()));
    }
    for rel in &spec.packages {
        let Ok(groups) = parse_relations(&rel.0) else { continue };
        for group in groups {
            let pinned: Vec<_> = group.iter().filter_map(|r| seen.get(r.name.as_str()).map(|p| (r, p))).collect();
            if pinned.is_empty() {
                // A virtual package, met by a provider: nothing to compare by name.
                continue;
            }
            let met = pinned.iter().any(|(r, p)| DebVersion::parse(&p.version).is_ok_and(|v| r.accepts(&v)));
            if !met {
                let (_, p) = pinned[0];
                out.push(bad(&p.name, format!("version {} does not meet `{}`", p.version, rel.0)));
            }
        }
    }
    out
}

/// Self-consistency of a `python:` entry: its pylock is the file recorded
/// and satisfies the requirements.
fn check_pylock(
    layer: &crate::spec::ResolvedLayer,
    py: &crate::spec::PythonSpec,
    entry: &PythonLock,
) -> Result<Vec<Change>, Error> {
    let key = layer_key(layer);
    let src = Python::new(py, layer);
    let path = src.lock_path();
    let shown = display_path(&path);
    let bytes =
        match crate::hostfs::read_bounded(&path, crate::sources::python::pylock::MAX_PYLOCK_BYTES, "a lock file") {
            Ok(b) => b,
            Err(crate::hostfs::HostPathError::Missing { .. }) => {
                return Ok(vec![Change::PylockEdited {
                    layer: key,
                    path: shown,
                    recorded: entry.sha256.clone(),
                    now: "missing".into(),
                }])
            }
            Err(e) => {
                let io =
                    crate::error::IoError { action: "reading", path, source: std::io::Error::other(e.to_string()) };
                return Err(LockError::Io(io).into());
            }
        };
    let now = crate::digest::Digest::of(&bytes).to_string();
    if now != entry.sha256 {
        return Ok(vec![Change::PylockEdited { layer: key, path: shown, recorded: entry.sha256.clone(), now }]);
    }
    let text = String::from_utf8_lossy(&bytes);
    let packages = pylockfile::pylock_packages(&text).map_err(|source| Error::Python { layer: key.clone(), source })?;
    let target = Target::of(py.target.as_ref(), layer.arch);
    let missing = pylockfile::unsatisfied(&py.requirements, &packages, &target, &py.extras)
        .map_err(|source| Error::Python { layer: key.clone(), source })?;
    Ok(missing
        .into_iter()
        .map(|(requirement, found)| Change::Unsatisfied { layer: key.clone(), requirement, found })
        .collect())
}

/// Settings of `strata lock`.
#[derive(Debug, Clone, Default)]
pub struct RelockOptions {
    /// Network settings for archive requests.
    pub net: NetOptions,
    /// The strata-verify binary to pin (default: the one built into strata).
    pub verifier: Option<PathBuf>,
    /// Resolve everything afresh, ignoring the current pins.
    pub upgrade: bool,
    /// Move these packages (Debian or Python) to their newest allowed version.
    pub upgrade_packages: Vec<String>,
    /// Never use the network: resolve from the cache and `mirrors` only.
    pub offline: bool,
    /// Mirror directories (`strata fetch --into`).
    pub mirrors: Vec<PathBuf>,
}

/// How one pin moved in a relock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinChange {
    /// `debs` or `python`.
    pub section: &'static str,
    /// The layer key.
    pub layer: String,
    /// The package.
    pub package: String,
    /// Version before (`None`: added).
    pub from: Option<String>,
    /// Version after (`None`: removed).
    pub to: Option<String>,
}

impl fmt::Display for PinChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.from, &self.to) {
            (None, Some(t)) => write!(f, "added {} {t}", self.package),
            (Some(v), None) => write!(f, "removed {} {v}", self.package),
            (Some(v), Some(t)) => write!(f, "moved {} {v} → {t}", self.package),
            (None, None) => write!(f, "{}", self.package),
        }
    }
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
    /// Layers resolved again (`debs `x``, `python `y``); the others were kept.
    pub resolved: Vec<String>,
    /// Every pin added, removed or moved.
    pub pins: Vec<PinChange>,
    /// Pins kept as they were.
    pub kept: usize,
    /// True when the file already said exactly this.
    pub unchanged: bool,
}

fn diff_pins(
    section: &'static str,
    layer: &str,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    out: &mut Vec<PinChange>,
) -> usize {
    let mut kept = 0;
    for (n, v) in after {
        match before.get(n) {
            Some(b) if b == v => kept += 1,
            b => out.push(PinChange {
                section,
                layer: layer.into(),
                package: n.clone(),
                from: b.cloned(),
                to: Some(v.clone()),
            }),
        }
    }
    for (n, v) in before.iter().filter(|(n, _)| !after.contains_key(*n)) {
        out.push(PinChange { section, layer: layer.into(), package: n.clone(), from: Some(v.clone()), to: None });
    }
    kept
}

/// Refuses an `exclude_newer` in the future (the result would change as
/// packages are uploaded). Only entries uv resolves are checked.
pub fn check_exclude_newer(spec: &LoadedSpec) -> Result<(), Error> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    for layer in &spec.layers {
        let Some(py) = &layer.entry.python else { continue };
        let Some(t) = &py.exclude_newer else { continue };
        if py.requirements.is_empty() {
            continue;
        }
        if crate::time::parse_rfc3339(t).is_some_and(|at| at > now) {
            let (y, m, d) = crate::time::civil_from_days(now.div_euclid(86_400));
            let s = now.rem_euclid(86_400);
            return Err(Error::ExcludeNewerInFuture {
                layer: layer_key(layer),
                value: t.clone(),
                now: format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s % 3600 / 60, s % 60),
            });
        }
    }
    Ok(())
}

/// `strata lock`: keeps what is current, resolves what changed (see the
/// module docs), records everything the spec's builds need, and writes the
/// lock file when it says something new.
pub fn relock(
    spec: &LoadedSpec,
    store: &Store,
    opts: &RelockOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Relocked, Error> {
    let mut all = relock_platforms(std::slice::from_ref(spec), store, opts, reporter)?;
    Ok(all.remove(0))
}

/// One platform's lock while [`relock_platforms`] builds it.
struct Pending {
    old: Option<Lock>,
    lock: Lock,
    path: PathBuf,
    shown: String,
    legacy: bool,
    resolved: Vec<String>,
    pins: Vec<PinChange>,
    kept: usize,
    pylocks: Vec<Locked>,
}

/// `strata lock` for every platform of a spec at once: `specs` are its
/// per-platform specs ([`LoadedSpec::for_platform`]; one spec for a spec of
/// one platform), each locked into its own lock file. Debian packages are
/// resolved per platform; a `python:` entry's requirements are resolved for
/// each platform into its own pylock, preferring the versions the other
/// platforms pin ([`pylockfile::lock_entries`]). Nothing is written unless
/// every platform succeeded.
pub fn relock_platforms(
    specs: &[LoadedSpec],
    store: &Store,
    opts: &RelockOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Vec<Relocked>, Error> {
    let moves: BTreeSet<String> = opts.upgrade_packages.iter().cloned().collect();
    let mut pending = Vec::with_capacity(specs.len());
    for spec in specs {
        check_exclude_newer(spec)?;
        let old = load_for(spec)?;
        let legacy = old.as_ref().is_some_and(Lock::is_legacy);
        pending.push((spec, old, legacy));
    }
    let olds: Vec<(&LoadedSpec, Option<&Lock>)> = pending.iter().map(|(s, o, _)| (*s, o.as_ref())).collect();
    check_upgrade_names(&olds, &moves, &specs[0].lock_path())?;

    let net = if opts.offline { None } else { Some(Net::new(opts.net.clone())?) };
    let mut out: Vec<Pending> = Vec::with_capacity(specs.len());
    for (spec, old, legacy) in pending {
        let mut p = relock_debs(spec, old, store, opts, &moves, net.as_ref(), reporter.clone())?;
        p.legacy = legacy;
        out.push(p);
    }

    // Python: each entry for every platform at once.
    let command = format!("strata lock {}", display_path(&specs[0].path));
    let py_opts = pylockfile::Relock {
        upgrade: opts.upgrade,
        upgrade_packages: &opts.upgrade_packages,
        offline: opts.offline,
        mirrors: &opts.mirrors,
        store,
    };
    let mut writes = Vec::new();
    for (i, l) in specs[0].layers.iter().enumerate() {
        if l.entry.python.is_none() {
            continue;
        }
        let key = layer_key(l);
        let platforms: Vec<String> = specs.iter().map(platform_of).collect();
        let entries: Vec<pylockfile::Entry<'_>> = specs
            .iter()
            .zip(&out)
            .zip(&platforms)
            .filter_map(|((spec, p), platform)| {
                let layer = spec.layers.get(i)?;
                Some(pylockfile::Entry {
                    layer,
                    py: layer.entry.python.as_ref()?,
                    previous: p.old.as_ref().and_then(|o| o.python.get(&key)),
                    legacy: p.legacy,
                    platform,
                })
            })
            .collect();
        let done = pylockfile::lock_entries(&entries, &command, &py_opts)
            .map_err(|source| Error::Python { layer: key.clone(), source })?;
        for (p, d) in out.iter_mut().zip(done) {
            if d.locked.resolved {
                p.resolved.push(format!("python `{key}`"));
            }
            p.kept += diff_pins("python", &key, &d.locked.before, &d.locked.after, &mut p.pins);
            p.lock.python.insert(key.clone(), d.record);
            p.pylocks.push(d.locked);
            writes.extend(d.write);
        }
    }

    // The verifier binary images with `gpu:` get.
    for (spec, p) in specs.iter().zip(&mut out) {
        p.lock.verifier = Verifier::locate(spec, opts.verifier.as_deref(), None)?
            .map(|v| VerifierLock { sha256: v.sha256.to_string(), size: v.size });
    }

    for (path, bytes) in writes {
        pylockfile::write_atomic(&path, &bytes).map_err(|e| Error::Python {
            layer: display_path(&path),
            source: UvError { message: format!("writing {}: {e}", path.display()), hint: None },
        })?;
    }
    let mut done = Vec::with_capacity(out.len());
    for p in out {
        let unchanged = p.old.as_ref().is_some_and(|o| !o.is_legacy() && *o == p.lock);
        if !unchanged {
            p.lock.write(&p.path, &p.shown)?;
        }
        done.push(Relocked {
            path: p.path,
            lock: p.lock,
            pylocks: p.pylocks,
            resolved: p.resolved,
            pins: p.pins,
            kept: p.kept,
            unchanged,
        });
    }
    Ok(done)
}

/// The Debian part of [`relock_platforms`] for one platform's spec.
fn relock_debs(
    spec: &LoadedSpec,
    old: Option<Lock>,
    store: &Store,
    opts: &RelockOptions,
    moves: &BTreeSet<String>,
    net: Option<&Net>,
    reporter: Arc<dyn Reporter>,
) -> Result<Pending, Error> {
    let path = spec.lock_path();
    let shown = display_path(&spec.path);
    let mut lock = Lock::new();
    lock.platform = Some(platform_of(spec));
    if let Some(o) = &old {
        lock.other = o.other.clone();
    }
    let mut resolved = Vec::new();
    let mut pins = Vec::new();
    let mut kept = 0;

    let retry = RetryPolicy::default().with_retries(2);
    let cx = LockContext { store, reporter: reporter.clone(), net, retry, mirrors: &opts.mirrors };
    // Whether a `debs:` entry below was resolved again: the ones above it
    // resolve against what it installs, so they are resolved again too.
    let mut below_moved = false;
    for l in &spec.layers {
        let Some(d) = &l.entry.debs else { continue };
        let key = layer_key(l);
        if lock.debs.contains_key(&key) {
            return Err(Error::SharedKey { file: l.file.clone(), key });
        }
        let below = pins_below(&lock, spec, l);
        let prev = old.as_ref().and_then(|o| o.debs.get(&key).map(|e| (o, e)));
        let overlaps =
            prev.is_some_and(|(_, e)| e.packages.iter().any(|p| below.iter().any(|(b, _)| b.name == p.name)));
        let current = prev.is_some_and(|(o, e)| debs_current(o, &key, e, d)) && !below_moved && !overlaps;
        let touched = prev.is_some_and(|(_, e)| e.packages.iter().any(|p| moves.contains(&p.name)));
        let entry = match prev {
            Some((_, e)) if current && !opts.upgrade && !touched => {
                let mut e = e.clone();
                e.inputs = DebsInputs::of(d);
                e
            }
            _ => {
                reporter.info(&format!("resolving layer `{key}`"));
                resolved.push(format!("debs `{key}`"));
                let previous = Previous {
                    pins: match prev {
                        Some((_, e)) if !opts.upgrade => {
                            e.packages.iter().filter(|p| !moves.contains(&p.name)).collect()
                        }
                        _ => Vec::new(),
                    },
                    archives: prev.map(|(_, e)| e.archives.as_slice()).unwrap_or_default(),
                    below,
                };
                below_moved = true;
                crate::sources::deb::repo::lock_layer(l, d, &cx, &previous).map_err(|source| Error::Resolve {
                    layer: key.clone(),
                    file: l.file.clone(),
                    node: l.node.clone(),
                    source,
                })?
            }
        };
        let versions = |e: &DebsLock| -> BTreeMap<String, String> {
            e.packages.iter().map(|p| (p.name.clone(), p.version.clone())).collect()
        };
        let before = prev.map(|(_, e)| versions(e)).unwrap_or_default();
        kept += diff_pins("debs", &key, &before, &versions(&entry), &mut pins);
        lock.debs.insert(key, entry);
    }
    Ok(Pending { old, lock, path, shown, legacy: false, resolved, pins, kept, pylocks: Vec::new() })
}

/// Every name `--upgrade-package` gives must be a pinned or requested package.
/// With several platforms, a name any platform knows will do.
fn check_upgrade_names(
    specs: &[(&LoadedSpec, Option<&Lock>)],
    names: &BTreeSet<String>,
    lock: &std::path::Path,
) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    let mut known: BTreeSet<String> = BTreeSet::new();
    for (_, old) in specs {
        if let Some(o) = old {
            known.extend(o.debs.values().flat_map(|d| d.packages.iter().map(|p| p.name.clone())));
        }
    }
    for l in specs.iter().flat_map(|(s, _)| &s.layers) {
        if let Some(py) = &l.entry.python {
            let src = Python::new(py, l);
            let limit = crate::sources::python::pylock::MAX_PYLOCK_BYTES;
            if let Ok(bytes) = crate::hostfs::read_bounded(&src.lock_path(), limit, "a lock file") {
                known.extend(pylockfile::versions(&String::from_utf8_lossy(&bytes)).into_keys());
            }
            known.extend(crate::sources::python::pylock::requirement_names(&py.requirements));
        }
        if let Some(d) = &l.entry.debs {
            for p in &d.packages {
                if let Ok(groups) = parse_relations(&p.0) {
                    known.extend(groups.into_iter().flatten().map(|r| r.name));
                }
            }
        }
    }
    for n in names {
        let norm = crate::sources::python::marker::normalize_name(n);
        if !known.contains(n) && !known.contains(&norm) {
            let suggestion = known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(n, k), k))
                .filter(|(d, k)| *d <= 2.max(k.len() / 3))
                .min()
                .map(|(_, k)| k.clone());
            return Err(Error::UnknownPackage { name: n.clone(), lock: lock.to_path_buf(), suggestion });
        }
    }
    Ok(())
}

/// Checks, before anything is fetched, that every `debs:` entry of a spec is
/// pinned by the lock and the pins are current.
pub fn check_spec(spec: &LoadedSpec, lock: Option<&Lock>) -> Result<(), LockError> {
    for l in &spec.layers {
        if let Some(d) = &l.entry.debs {
            debs_pins(spec, lock, l, d)?;
        }
    }
    Ok(())
}

/// The archive indexes (`InRelease` files and Packages indexes) behind the
/// lock's Debian pins, in the store, for `strata fetch --into` to put into a
/// mirror so that `strata lock --offline --mirror` can resolve from it: the
/// states the lock recorded when the store still has them, and (online) the
/// archives' current states. Failures are warnings: a mirror without indexes
/// still builds.
pub fn index_files(
    spec: &LoadedSpec,
    lock: Option<&Lock>,
    store: &Store,
    net: Option<&NetOptions>,
    reporter: Arc<dyn Reporter>,
) -> Vec<crate::fetch::Artifact> {
    let mut out: BTreeMap<String, crate::fetch::Artifact> = BTreeMap::new();
    let live = match net.map(|n| Net::new(n.clone())) {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            reporter.warn(&format!("archive indexes not added to the mirror: {e}"));
            None
        }
        None => None,
    };
    for l in &spec.layers {
        let Some(d) = &l.entry.debs else { continue };
        let key = layer_key(l);
        let recorded = lock.and_then(|k| k.debs.get(&key)).map(|e| e.archives.as_slice()).unwrap_or_default();
        let retry = RetryPolicy::default().with_retries(2);
        // The recorded states, from the store only.
        let cx = LockContext { store, reporter: reporter.clone(), net: None, retry, mirrors: &[] };
        if !recorded.is_empty() {
            if let Ok(idx) = crate::sources::deb::repo::load_indexes(l, d, &cx, recorded) {
                out.extend(idx.files.iter().map(|f| (f.sha256.to_string(), f.artifact())));
            }
        }
        if let Some(net) = &live {
            let cx = LockContext { store, reporter: reporter.clone(), net: Some(net), retry, mirrors: &[] };
            match crate::sources::deb::repo::load_indexes(l, d, &cx, recorded) {
                Ok(idx) => out.extend(idx.files.iter().map(|f| (f.sha256.to_string(), f.artifact()))),
                Err(e) => reporter.warn(&format!(
                    "layer `{key}`: the archives' current indexes are not in the mirror ({}); `strata lock --offline` can then only use the recorded states",
                    e.to_string().lines().next().unwrap_or_default()
                )),
            }
        }
    }
    out.into_values().collect()
}

/// Settings of a build that concern the lock.
#[derive(Debug, Clone, Default)]
pub struct BuildLockOptions {
    /// Build even when the lock is missing or stale.
    pub unlocked: bool,
    /// The strata-verify binary (default: the one built into strata).
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
        // The pylock's own record is checked by the python source, with the
        // file's details; the verifier by `Verifier::locate`.
        let changes: Vec<Change> = check(spec, Some(l), VerifierCheck::Skip)?
            .into_iter()
            .filter(|c| !matches!(c, Change::PylockEdited { .. }))
            .collect();
        if !changes.is_empty() {
            let stale = Stale { lock: spec.lock_path(), spec: display_path(&spec.path), changes, build: true };
            if !opts.unlocked {
                return Err(stale.into());
            }
            reporter.warn(&format!("--unlocked: {}", stale.to_string().lines().take(2).collect::<Vec<_>>().join("")));
        }
    }
    let debs_ok = spec
        .layers
        .iter()
        .filter_map(|l| l.entry.debs.as_ref().map(|d| (l, d)))
        .all(|(l, d)| debs_pins(spec, lock.as_ref(), l, d).is_ok());
    if !debs_ok {
        if !opts.unlocked {
            for l in &spec.layers {
                if let Some(d) = &l.entry.debs {
                    debs_pins(spec, lock.as_ref(), l, d)?;
                }
            }
        }
        reporter.warn("--unlocked: resolving Debian packages against the live archive (this build is not reproducible from the spec alone)");
        let net = Net::new(opts.net.clone())?;
        let cx = LockContext {
            store,
            reporter: reporter.clone(),
            net: Some(&net),
            retry: RetryPolicy::default().with_retries(2),
            mirrors: &[],
        };
        let mut l = lock.take().unwrap_or_else(Lock::new);
        for layer in &spec.layers {
            let Some(d) = &layer.entry.debs else { continue };
            let key = layer_key(layer);
            let prev = l.debs.get(&key).cloned();
            let previous = Previous {
                pins: prev.as_ref().map(|e| e.packages.iter().collect()).unwrap_or_default(),
                archives: prev.as_ref().map(|e| e.archives.as_slice()).unwrap_or_default(),
                below: pins_below(&l, spec, layer),
            };
            let entry = crate::sources::deb::repo::lock_layer(layer, d, &cx, &previous).map_err(|source| {
                Error::Resolve { layer: key.clone(), file: layer.file.clone(), node: layer.node.clone(), source }
            })?;
            l.debs.insert(key, entry);
        }
        lock = Some(l);
    }
    let pins = if opts.unlocked { None } else { lock.as_ref() };
    let verifier = Verifier::locate(spec, opts.verifier.as_deref(), pins)?;
    Ok(BuildInputs { lock, verifier })
}
