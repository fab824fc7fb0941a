//! The Python part of `strata lock` and of the lock file (`SPEC.lock`).
//!
//! Wheels are pinned by the PEP 751 `pylock.toml` itself (URL, size,
//! sha256). The lock file records, per `python:` layer entry, which pylock
//! the spec was locked with, its sha256, and the inputs that chose it
//! ([`crate::lockfile::PythonLock`]):
//!
//! ```toml
//! [python."python"]
//! pylock = "pylock.pytorch-cuda.toml"
//! sha256 = "sha256:…"
//! target = "CPython 3.11 manylinux_2_28 x86_64"
//! wheels = 122
//! requirements = ["torch==2.9.0", "numpy", …]
//! exclude_newer = "2026-11-27T00:00:00Z"
//! ```
//!
//! `strata build` refuses a pylock whose bytes no longer match that record,
//! so an edited lock cannot slip into a build unnoticed. `strata lock` runs
//! uv only when the inputs changed (or an upgrade was asked for), and then
//! hands it the current pylock, whose versions uv keeps where they still fit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::marker::normalize_name;
use super::uv::{self, Preferences, UvError};
use super::version::Version;
use super::{Python, Target};
use crate::digest::Digest;
use crate::lockfile::{layer_key, PythonInputs, PythonLock};
use crate::spec::{PythonSpec, ResolvedLayer};
use crate::store::Store;

/// What `strata lock` did for one `python:` entry.
#[derive(Debug, Clone)]
pub struct Locked {
    /// The layer key.
    pub layer: String,
    /// The pylock path as the spec names it.
    pub pylock: String,
    /// Its sha256.
    pub sha256: Digest,
    /// Wheels selected for the target.
    pub wheels: usize,
    /// Whether uv ran (false: kept, or recorded as brought).
    pub resolved: bool,
    /// Whether the entry has `requirements:` (false: a brought pylock).
    pub requirements: bool,
    /// Whether its bytes changed.
    pub changed: bool,
    /// Package versions before (name → version).
    pub before: BTreeMap<String, String>,
    /// Package versions after.
    pub after: BTreeMap<String, String>,
}

/// The record of `key` in `lock`: (pylock as named, sha256).
pub fn recorded(lock: &crate::lockfile::Lock, key: &str) -> Option<(String, String)> {
    lock.python.get(key).map(|p| (p.pylock.clone(), p.sha256.clone()))
}

/// One package of a pylock: normalised name, version, marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PylockPackage {
    /// Normalised name.
    pub name: String,
    /// Version (`None` when the lock gives none).
    pub version: Option<String>,
    /// Environment marker.
    pub marker: Option<String>,
}

#[derive(Deserialize)]
struct RawPackages {
    #[serde(default)]
    packages: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: Option<String>,
    marker: Option<String>,
}

/// The packages a pylock lists (every one, whatever the target).
pub fn pylock_packages(text: &str) -> Result<Vec<PylockPackage>, UvError> {
    let raw: RawPackages =
        toml::from_str(text).map_err(|e| UvError { message: format!("not a valid pylock.toml: {e}"), hint: None })?;
    Ok(raw
        .packages
        .into_iter()
        .map(|p| PylockPackage { name: normalize_name(&p.name), version: p.version, marker: p.marker })
        .collect())
}

/// The versions of a pylock's packages by name (for reports).
pub fn versions(text: &str) -> BTreeMap<String, String> {
    pylock_packages(text).unwrap_or_default().into_iter().map(|p| (p.name, p.version.unwrap_or_default())).collect()
}

/// The requirements a pylock does not satisfy for `target`: (requirement,
/// what the pylock has for that name). Requirements whose marker is false
/// for the target are not checked.
pub fn unsatisfied(
    requirements: &[String],
    packages: &[PylockPackage],
    target: &Target,
    extras: &[String],
) -> Result<Vec<(String, Option<String>)>, UvError> {
    let extras: BTreeSet<String> = extras.iter().map(|e| normalize_name(e)).collect();
    let env = target.marker_env(&extras, &BTreeSet::new());
    let mut out = Vec::new();
    for r in requirements {
        let req = super::requirement::parse(r)
            .map_err(|e| UvError { message: format!("requirement `{r}`: {}", e.message), hint: Some(e.hint) })?;
        if let Some(m) = &req.marker {
            if !m.evaluate(&env).map_err(|e| UvError { message: format!("requirement `{r}`: {e}"), hint: None })? {
                continue;
            }
        }
        let have: Vec<&PylockPackage> = packages.iter().filter(|p| p.name == req.name).collect();
        let ok = !have.is_empty()
            && (req.specifiers.is_empty()
                || have.iter().any(|p| {
                    p.version
                        .as_deref()
                        .and_then(|v| Version::parse(v).ok())
                        .is_some_and(|v| req.specifiers.iter().all(|s| s.contains(&v)))
                }));
        if !ok {
            let found = (!have.is_empty()).then(|| {
                have.iter()
                    .map(|p| format!("{} {}", p.name, p.version.as_deref().unwrap_or("(no version)")))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            out.push((r.clone(), found));
        }
    }
    Ok(out)
}

/// How `strata lock` treats the `python:` entries.
#[derive(Debug, Clone, Copy)]
pub struct Relock<'a> {
    /// Re-resolve from scratch (no preferences).
    pub upgrade: bool,
    /// Packages to move to their newest allowed version.
    pub upgrade_packages: &'a [String],
    /// Never use the network: uv runs `--offline`, choosing from the wheels
    /// of `mirrors` and of the store.
    pub offline: bool,
    /// Mirror directories.
    pub mirrors: &'a [PathBuf],
    /// The store (wheels the current pylock pins may be in it).
    pub store: &'a Store,
}

/// One platform's view of a `python:` entry, for [`lock_entries`].
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The layer entry (of that platform's spec).
    pub layer: &'a ResolvedLayer,
    /// Its `python:` (with that platform's pylock path).
    pub py: &'a PythonSpec,
    /// What the platform's lock recorded for it.
    pub previous: Option<&'a PythonLock>,
    /// Whether that lock is in the old format (its inputs are not compared).
    pub legacy: bool,
    /// The platform (`linux/arm64`), named in errors when there are several.
    pub platform: &'a str,
}

/// What [`lock_entries`] gives for one platform.
#[derive(Debug)]
pub struct EntryLocked {
    /// The record for the lock file.
    pub record: PythonLock,
    /// The report.
    pub locked: Locked,
    /// The pylock to write (path, bytes); `None` when its bytes did not change.
    pub write: Option<(PathBuf, Vec<u8>)>,
}

/// One platform's state while its entry is locked.
struct State<'a> {
    src: Python<'a>,
    path: PathBuf,
    inputs: PythonInputs,
    old: Option<Vec<u8>>,
    old_text: Option<String>,
    before: BTreeMap<String, String>,
    /// The pylock's bytes once decided (kept, brought or resolved).
    bytes: Option<Vec<u8>>,
    resolved: bool,
}

/// Locks one `python:` entry for each platform of a spec (one entry for a
/// spec of one platform): records a brought pylock as it is; for an entry
/// with `requirements:`, keeps each platform's pylock when its inputs did
/// not change and it still satisfies them, else runs uv for that platform
/// with the current pylock as preferences and takes what uv chose.
///
/// With several platforms, a platform resolved now also prefers the
/// versions the other platforms' pylocks pin, and when the results still
/// differ (one platform got a newer version than another), each platform
/// resolved now that holds the newer one is resolved once more preferring
/// the older: the versions agree wherever the index has wheels for every
/// platform. Nothing is written: the caller writes [`EntryLocked::write`]
/// once every entry succeeded.
pub fn lock_entries(entries: &[Entry<'_>], command: &str, opts: &Relock<'_>) -> Result<Vec<EntryLocked>, UvError> {
    let several = entries.len() > 1;
    let named = |e: &Entry<'_>, err: UvError| {
        if several {
            UvError { message: format!("{}: {}", e.platform, err.message), hint: err.hint }
        } else {
            err
        }
    };
    let mut states = Vec::with_capacity(entries.len());
    for e in entries {
        states.push(prepare(e, opts).map_err(|err| named(e, err))?);
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // Each platform that needs uv, in the spec's order.
    for i in 0..states.len() {
        if states[i].bytes.is_some() {
            continue;
        }
        let others: Vec<String> = (0..states.len())
            .filter(|&j| j != i && !entries[j].py.requirements.is_empty())
            .filter_map(|j| states[j].bytes.as_deref().map(text))
            .collect();
        let own = if opts.upgrade { None } else { states[i].old_text.clone() };
        let prefs = preferences(own.as_deref(), &others, false);
        let out = resolve(&entries[i], &states[i], prefs.as_deref(), opts.upgrade_packages, command, opts)
            .map_err(|err| named(&entries[i], err))?;
        states[i].bytes = Some(out.into_bytes());
        states[i].resolved = true;
    }
    if several {
        agree(entries, &mut states, command, opts).map_err(|(i, err)| named(&entries[i], err))?;
    }
    let mut out = Vec::with_capacity(entries.len());
    for (e, st) in entries.iter().zip(states) {
        let bytes = st.bytes.unwrap_or_default();
        let sel = super::pylock::select(
            &st.path,
            &String::from_utf8_lossy(&bytes),
            &st.src.target,
            &e.py.extras.iter().cloned().collect(),
        )
        .map_err(|err| {
            named(
                e,
                UvError {
                    message: if st.resolved {
                        format!("uv wrote a lock strata cannot use: {err}")
                    } else {
                        err.to_string()
                    },
                    hint: None,
                },
            )
        })?;
        let changed = st.old.as_deref() != Some(&bytes[..]);
        let sha256 = Digest::of(&bytes);
        let after = versions(&String::from_utf8_lossy(&bytes));
        let record = st.inputs.record(&sha256, sel.wheels.len());
        let locked = Locked {
            layer: layer_key(e.layer),
            pylock: e.py.lock.clone(),
            sha256,
            wheels: sel.wheels.len(),
            resolved: st.resolved,
            requirements: !e.py.requirements.is_empty(),
            changed,
            before: st.before,
            after,
        };
        out.push(EntryLocked { record, locked, write: changed.then_some((st.path, bytes)) });
    }
    Ok(out)
}

/// Reads a platform's current pylock and decides whether it is kept (or,
/// without `requirements:`, recorded as brought).
fn prepare<'a>(e: &Entry<'a>, opts: &Relock<'_>) -> Result<State<'a>, UvError> {
    let (layer, py) = (e.layer, e.py);
    let src = Python::new(py, layer);
    // Written by `strata lock`: its directory must be in the build context.
    let path = crate::hostfs::resolve_for_write(&layer.context, &layer.base_dir, &py.lock).map_err(|err| UvError {
        message: format!("python lock {}: {err}", src.lock_path().display()),
        hint: Some(err.hint().into()),
    })?;
    let inputs = PythonInputs::of(py, layer.arch);
    let old = match crate::hostfs::read_bounded(&path, super::pylock::MAX_PYLOCK_BYTES, "a lock file") {
        Ok(b) => Some(b),
        Err(crate::hostfs::HostPathError::Missing { .. }) => None,
        Err(err) => return Err(UvError { message: err.to_string(), hint: Some(err.hint().into()) }),
    };
    let old_text = old.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
    let before = old_text.as_deref().map(versions).unwrap_or_default();
    let bytes = if py.requirements.is_empty() {
        match &old {
            Some(b) => Some(b.clone()),
            // A brought pylock that is not there: the selection says how to make one.
            None => {
                let message = match src.selection() {
                    Err(err) => err.to_string(),
                    Ok(_) => format!("{} cannot be read", path.display()),
                };
                return Err(UvError { message, hint: None });
            }
        }
    } else {
        let moves = opts.upgrade_packages.iter().any(|n| before.contains_key(&normalize_name(n)));
        let keep = match (&old_text, e.previous) {
            (Some(text), Some(p)) if !opts.upgrade && !moves => {
                let same_inputs = e.legacy || PythonInputs::recorded(p) == inputs;
                let same_bytes = p.sha256 == Digest::of(text.as_bytes()).to_string();
                let packages = pylock_packages(text)?;
                same_inputs
                    && same_bytes
                    && unsatisfied(&py.requirements, &packages, &src.target, &py.extras)?.is_empty()
            }
            _ => false,
        };
        if keep {
            old.clone()
        } else {
            None
        }
    };
    Ok(State { src, path, inputs, old, old_text, before, bytes, resolved: false })
}

/// Runs uv for one platform with `prefs` (a pylock's text) as its starting point.
fn resolve(
    e: &Entry<'_>,
    st: &State<'_>,
    prefs: Option<&str>,
    upgrade_packages: &[String],
    command: &str,
    opts: &Relock<'_>,
) -> Result<String, UvError> {
    let links = if opts.offline { Some(find_links(opts, st.old_text.as_deref())?) } else { None };
    let prefs = Preferences {
        existing: prefs.map(str::as_bytes),
        upgrade_packages,
        find_links: links.as_ref().map(|l| l.dir.path()),
    };
    let mut text = uv::compile(e.py, &st.path, &st.src.target, command, &prefs)?;
    if let Some(l) = &links {
        text = restore_urls(&text, l, if opts.upgrade { None } else { st.old_text.as_deref() })?;
    }
    Ok(text)
}

/// The pylock uv is handed as its starting point: `base` (the platform's own
/// pins) with the packages of `others` added; with `others_win`, their
/// versions replace the base's. `base` alone is handed over unchanged.
fn preferences(base: Option<&str>, others: &[String], others_win: bool) -> Option<String> {
    if others.is_empty() {
        return base.map(str::to_string);
    }
    let (head, own) = blocks(base.or(others.first().map(String::as_str))?);
    let own = if base.is_some() { own } else { Vec::new() };
    let mut by_name: BTreeMap<String, String> =
        own.into_iter().filter_map(|b| Some((name_version(&b)?.0, b))).collect();
    for o in others {
        for b in blocks(o).1 {
            let Some((name, _)) = name_version(&b) else { continue };
            if others_win || !by_name.contains_key(&name) {
                by_name.insert(name, b);
            }
        }
    }
    let mut out = head;
    for b in by_name.into_values() {
        out.push('\n');
        out.push_str(&b);
        out.push('\n');
    }
    Some(out)
}

/// The second pass of [`lock_entries`]: each platform resolved now that pins
/// a newer version of a package than another platform does is resolved once
/// more, preferring the older version (taken only where it has a wheel for
/// this platform). Errors carry the entry's index.
fn agree(
    entries: &[Entry<'_>],
    states: &mut [State<'_>],
    command: &str,
    opts: &Relock<'_>,
) -> Result<(), (usize, UvError)> {
    let with_requirements = |i: &usize| !entries[*i].py.requirements.is_empty();
    // The oldest version any platform pins, with its block.
    let mut oldest: BTreeMap<String, (Version, String)> = BTreeMap::new();
    for i in (0..states.len()).filter(with_requirements) {
        let text = String::from_utf8_lossy(states[i].bytes.as_deref().unwrap_or_default()).into_owned();
        for b in blocks(&text).1 {
            let Some((name, v)) = name_version(&b) else { continue };
            let Ok(v) = Version::parse(&v) else { continue };
            if oldest.get(&name).is_none_or(|(o, _)| v < *o) {
                oldest.insert(name, (v, b));
            }
        }
    }
    for i in (0..states.len()).filter(with_requirements) {
        if !states[i].resolved {
            continue;
        }
        let text = String::from_utf8_lossy(states[i].bytes.as_deref().unwrap_or_default()).into_owned();
        let mine = versions(&text);
        let behind: Vec<&String> = oldest
            .iter()
            .filter(|(n, (v, _))| mine.get(*n).and_then(|m| Version::parse(m).ok()).is_some_and(|m| m > *v))
            .map(|(_, (_, b))| b)
            .collect();
        if behind.is_empty() {
            continue;
        }
        let (head, _) = blocks(&text);
        let other = behind.iter().fold(head, |mut acc, b| {
            acc.push('\n');
            acc.push_str(b);
            acc.push('\n');
            acc
        });
        let prefs = preferences(Some(&text), &[other], true);
        let out = resolve(&entries[i], &states[i], prefs.as_deref(), &[], command, opts).map_err(|e| (i, e))?;
        states[i].bytes = Some(out.into_bytes());
    }
    Ok(())
}

/// A directory of wheels uv may choose from offline: every wheel a mirror
/// holds, and the wheels of the current pylock found in the store, each
/// under its file name.
struct Links {
    dir: tempfile::TempDir,
    /// File name → (original URL, size).
    origin: BTreeMap<String, (String, u64)>,
}

fn find_links(opts: &Relock<'_>, old: Option<&str>) -> Result<Links, UvError> {
    let io = |e: std::io::Error| UvError { message: format!("preparing the offline wheel directory: {e}"), hint: None };
    let dir = tempfile::Builder::new().prefix("strata-links-").tempdir().map_err(io)?;
    let mut origin = BTreeMap::new();
    let mut add = |name: &str, url: &str, size: u64, file: &Path| -> Result<(), UvError> {
        if name.contains('/') || origin.contains_key(name) {
            return Ok(());
        }
        let target = fs_err::canonicalize(file).map_err(io)?;
        fs_err::os::unix::fs::symlink(target, dir.path().join(name)).map_err(io)?;
        origin.insert(name.to_string(), (url.to_string(), size));
        Ok(())
    };
    for (name, _, url, size, file) in crate::mirror::wheels(opts.mirrors) {
        add(&name, &url, size, &file)?;
    }
    if let Some(text) = old {
        #[derive(Deserialize)]
        struct W {
            url: Option<String>,
            size: Option<u64>,
            hashes: BTreeMap<String, String>,
        }
        #[derive(Deserialize)]
        struct P {
            #[serde(default)]
            wheels: Vec<W>,
        }
        #[derive(Deserialize)]
        struct L {
            #[serde(default)]
            packages: Vec<P>,
        }
        if let Ok(l) = toml::from_str::<L>(text) {
            for w in l.packages.iter().flat_map(|p| &p.wheels) {
                let (Some(url), Some(h)) = (&w.url, w.hashes.get("sha256")) else { continue };
                let Ok(d) = Digest::parse(h) else { continue };
                let name = url.rsplit('/').next().unwrap_or_default();
                if opts.store.contains(&d) && name.ends_with(".whl") {
                    let size =
                        w.size.unwrap_or_else(|| fs_err::metadata(opts.store.path(&d)).map(|m| m.len()).unwrap_or(0));
                    add(name, url, size, &opts.store.path(&d))?;
                }
            }
        }
    }
    Ok(Links { dir, origin })
}

/// Splits pylock text into its header and `[[packages]]` blocks.
fn blocks(text: &str) -> (String, Vec<String>) {
    let mut parts = text.split("\n[[packages]]\n");
    let head = parts.next().unwrap_or_default().to_string();
    (head, parts.map(|b| format!("[[packages]]\n{}", b.trim_end_matches('\n'))).collect())
}

/// The top-level fields of a block (`key = value`, values may continue on
/// indented lines), in order.
fn fields(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.lines().skip(1) {
        let starts_field = line.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        match out.last_mut() {
            Some(last) if !starts_field => {
                last.1.push('\n');
                last.1.push_str(line);
            }
            _ => {
                let (k, _) = line.split_once(" = ").unwrap_or((line, ""));
                out.push((k.to_string(), line.to_string()));
            }
        }
    }
    out
}

fn name_version(block: &str) -> Option<(String, String)> {
    let l: RawPackages = toml::from_str(block).ok()?;
    let p = l.packages.into_iter().next()?;
    Some((normalize_name(&p.name), p.version.unwrap_or_default()))
}

/// After an offline uv run: a package the current pylock already had at the
/// same version keeps its artifact fields (`wheels`, `sdist`, …) as they
/// were; the others get the URL and size their wheel was fetched from in
/// place of the temporary `file://` path uv saw.
fn restore_urls(text: &str, links: &Links, old: Option<&str>) -> Result<String, UvError> {
    let bad = |m: String| UvError { message: format!("uv wrote a lock strata cannot use: {m}"), hint: None };
    const ARTIFACTS: [&str; 5] = ["wheels", "sdist", "archive", "directory", "vcs"];
    let old_blocks: BTreeMap<(String, String), Vec<(String, String)>> = old
        .map(|o| blocks(o).1.into_iter().filter_map(|b| Some((name_version(&b)?, fields(&b)))).collect())
        .unwrap_or_default();
    let prefix = format!("file://{}/", links.dir.path().display());
    let (head, new_blocks) = blocks(text);
    let mut out = head;
    for b in new_blocks {
        let nv = name_version(&b).ok_or_else(|| bad(format!("cannot read the package block:\n{b}")))?;
        let mut f = fields(&b);
        if let Some(of) = old_blocks.get(&nv) {
            f.retain(|(k, _)| !ARTIFACTS.contains(&k.as_str()));
            f.extend(of.iter().filter(|(k, _)| ARTIFACTS.contains(&k.as_str())).cloned());
        }
        let mut body: String = f.into_iter().map(|(_, v)| v + "\n").collect();
        while let Some(i) = body.find(&format!("url = \"{prefix}")) {
            let start = i + "url = \"".len();
            let end = start + body[start..].find('"').ok_or_else(|| bad("unterminated url".into()))?;
            let name = body[start + prefix.len()..end].to_string();
            let (url, size) = links
                .origin
                .get(&name)
                .ok_or_else(|| bad(format!("uv chose {name}, which is not in the offline wheel directory")))?;
            body.replace_range(i..end + 1, &format!("url = {}, size = {size}", toml::Value::from(url.as_str())));
        }
        out.push_str("\n[[packages]]\n");
        out.push_str(body.trim_end_matches('\n'));
        out.push('\n');
    }
    Ok(out)
}

/// Writes a pylock through a temporary file beside it and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = "lock-version = \"1.0\"\ncreated-by = \"t\"\n\n[[packages]]\nname = \"Torch\"\nversion = \"2.9.0\"\nwheels = [{ url = \"https://x/torch.whl\", hashes = { sha256 = \"00\" } }]\n\n[[packages]]\nname = \"numpy\"\nversion = \"2.4.6\"\nmarker = \"python_version >= '3.11'\"\nwheels = [\n  { url = \"https://x/numpy.whl\", hashes = { sha256 = \"01\" } },\n]\n";

    #[test]
    fn requirements_are_checked_against_the_pylock() {
        let pk = pylock_packages(LOCK).unwrap();
        let t = Target::default();
        let none: Vec<String> = vec![];
        let reqs =
            |r: &[&str]| unsatisfied(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &pk, &t, &none).unwrap();
        assert!(reqs(&["torch==2.9.0", "numpy", "NumPy>=2,<3", "torch[cuda] (>=2)"]).is_empty());
        assert!(reqs(&["einops; python_version < '3'"]).is_empty(), "a marker false for the target is not checked");
        assert_eq!(reqs(&["einops"]), vec![("einops".to_string(), None)]);
        assert_eq!(reqs(&["torch==2.8.0"]), vec![("torch==2.8.0".to_string(), Some("torch 2.9.0".to_string()))]);
    }

    #[test]
    fn preferences_add_the_other_platforms_versions() {
        let other = LOCK.replace("2.4.6", "2.5.0").replace("\"Torch\"", "\"torch\"").replace("2.9.0", "2.9.1")
            + "\n[[packages]]\nname = \"einops\"\nversion = \"0.8\"\nwheels = []\n";
        // Alone, the platform's own pylock is handed over byte for byte.
        assert_eq!(preferences(Some(LOCK), &[], false).as_deref(), Some(LOCK));
        // Its own versions win; what only the others pin is added.
        let p = preferences(Some(LOCK), std::slice::from_ref(&other), false).unwrap();
        let v = versions(&p);
        assert_eq!((v["torch"].as_str(), v["numpy"].as_str(), v["einops"].as_str()), ("2.9.0", "2.4.6", "0.8"));
        // For the agreement pass the others' versions win.
        let v = versions(&preferences(Some(LOCK), std::slice::from_ref(&other), true).unwrap());
        assert_eq!((v["torch"].as_str(), v["numpy"].as_str()), ("2.9.1", "2.5.0"));
        // With no pylock of its own (first lock, --upgrade): the others' alone.
        assert_eq!(versions(&preferences(None, std::slice::from_ref(&other), false).unwrap()), versions(&other));
        assert_eq!(preferences(None, &[], false), None);
    }

    #[test]
    fn blocks_and_fields_round_trip() {
        let (head, b) = blocks(LOCK);
        assert_eq!(head, "lock-version = \"1.0\"\ncreated-by = \"t\"\n");
        assert_eq!(b.len(), 2);
        let f = fields(&b[1]);
        assert_eq!(f.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["name", "version", "marker", "wheels"]);
        assert!(f[3].1.ends_with("\n]"), "{:?}", f[3]);
        assert_eq!(name_version(&b[0]), Some(("torch".into(), "2.9.0".into())));
    }
}
