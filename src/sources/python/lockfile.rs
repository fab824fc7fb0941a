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

/// Locks one `python:` entry: records a brought pylock as it is; for an
/// entry with `requirements:`, keeps the pylock when its inputs did not
/// change and it still satisfies them, else runs uv with the current pylock
/// as preferences and writes what uv chose.
pub fn lock_entry(
    layer: &ResolvedLayer,
    py: &PythonSpec,
    previous: Option<&PythonLock>,
    legacy: bool,
    command: &str,
    opts: &Relock<'_>,
) -> Result<(PythonLock, Locked), UvError> {
    let key = layer_key(layer);
    let src = Python::new(py, layer);
    // Written by `strata lock`: its directory must be in the build context.
    let path = crate::hostfs::resolve_for_write(&layer.context, &layer.base_dir, &py.lock).map_err(|e| UvError {
        message: format!("python lock {}: {e}", src.lock_path().display()),
        hint: Some(e.hint().into()),
    })?;
    let inputs = PythonInputs::of(py, layer.arch);
    let old = match crate::hostfs::read_bounded(&path, super::pylock::MAX_PYLOCK_BYTES, "a lock file") {
        Ok(b) => Some(b),
        Err(crate::hostfs::HostPathError::Missing { .. }) => None,
        Err(e) => return Err(UvError { message: e.to_string(), hint: Some(e.hint().into()) }),
    };
    let old_text = old.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
    let before = old_text.as_deref().map(versions).unwrap_or_default();
    let uv_err = |message: String| UvError { message, hint: None };
    let (bytes, resolved) = if py.requirements.is_empty() {
        match &old {
            Some(b) => (b.clone(), false),
            // A brought pylock that is not there: the selection says how to make one.
            None => {
                let message = match src.selection() {
                    Err(e) => e.to_string(),
                    Ok(_) => format!("{} cannot be read", path.display()),
                };
                return Err(uv_err(message));
            }
        }
    } else {
        let moves: Vec<&String> =
            opts.upgrade_packages.iter().filter(|n| before.contains_key(&normalize_name(n))).collect();
        let keep = match (&old_text, previous) {
            (Some(text), Some(p)) if !opts.upgrade && moves.is_empty() => {
                let same_inputs = legacy || PythonInputs::recorded(p) == inputs;
                let same_bytes = p.sha256 == Digest::of(text.as_bytes()).to_string();
                let packages = pylock_packages(text)?;
                same_inputs
                    && same_bytes
                    && unsatisfied(&py.requirements, &packages, &src.target, &py.extras)?.is_empty()
            }
            _ => false,
        };
        if keep {
            (old.clone().unwrap_or_default(), false)
        } else {
            let links = if opts.offline { Some(find_links(opts, old_text.as_deref())?) } else { None };
            let prefs = Preferences {
                existing: if opts.upgrade { None } else { old.as_deref() },
                upgrade_packages: opts.upgrade_packages,
                find_links: links.as_ref().map(|l| l.dir.path()),
            };
            let mut text = uv::compile(py, &path, &src.target, command, &prefs)?;
            if let Some(l) = &links {
                text = restore_urls(&text, l, if opts.upgrade { None } else { old_text.as_deref() })?;
            }
            (text.into_bytes(), true)
        }
    };
    let sel = super::pylock::select(
        &path,
        &String::from_utf8_lossy(&bytes),
        &src.target,
        &py.extras.iter().cloned().collect(),
    )
    .map_err(|e| UvError {
        message: if resolved { format!("uv wrote a lock strata cannot use: {e}") } else { e.to_string() },
        hint: None,
    })?;
    let changed = old.as_deref() != Some(&bytes[..]);
    if changed {
        write_atomic(&path, &bytes).map_err(|e| uv_err(format!("writing {}: {e}", path.display())))?;
    }
    let sha256 = Digest::of(&bytes);
    let after = versions(&String::from_utf8_lossy(&bytes));
    let record = inputs.record(&sha256, sel.wheels.len());
    let locked = Locked {
        layer: key,
        pylock: py.lock.clone(),
        sha256,
        wheels: sel.wheels.len(),
        resolved,
        requirements: !py.requirements.is_empty(),
        changed,
        before,
        after,
    };
    Ok((record, locked))
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

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
