//! PEP 751 `pylock.toml`: parsing and choosing the one wheel per package that
//! the target can install, offline and from the lock alone (the spec forbids
//! choosing by what happens to be downloadable).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::marker::{normalize_name, Marker};
use super::tags::{Target, WheelName};
use super::version::{SpecifierSet, Version};
use crate::digest::Digest;

/// A problem with a lock file, located where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PylockError {
    /// The lock file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl std::error::Error for PylockError {}

impl fmt::Display for PylockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawLock {
    lock_version: String,
    #[serde(default)]
    environments: Option<Vec<String>>,
    #[serde(default)]
    requires_python: Option<String>,
    #[serde(default)]
    default_groups: Vec<String>,
    #[allow(dead_code)]
    created_by: String,
    #[serde(default)]
    packages: Vec<RawPackage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPackage {
    name: toml::Spanned<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    requires_python: Option<String>,
    #[serde(default)]
    vcs: Option<toml::Value>,
    #[serde(default)]
    directory: Option<toml::Value>,
    #[serde(default)]
    archive: Option<RawFile>,
    #[serde(default)]
    sdist: Option<RawFile>,
    #[serde(default)]
    wheels: Option<Vec<RawFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

/// Where a wheel's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WheelLocation {
    /// Downloaded (and cached) from a URL.
    Url(String),
    /// A local file (a `path` in the lock, resolved against the lock's directory).
    Path(PathBuf),
}

/// The wheel chosen for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedWheel {
    /// Normalised package name.
    pub package: String,
    /// Version from the lock (or the wheel name when the lock has none).
    pub version: String,
    /// The wheel's file name, parsed.
    pub name: WheelName,
    /// Where it is.
    pub location: WheelLocation,
    /// Pinned SHA-256.
    pub sha256: Digest,
    /// Pinned size, when the lock gives one.
    pub size: Option<u64>,
    /// Line of the package in the lock.
    pub line: usize,
}

/// A parsed lock and the wheels selected for the target.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The lock file.
    pub file: PathBuf,
    /// SHA-256 of the lock file's bytes.
    pub lock_sha256: Digest,
    /// Selected wheels, sorted by package name.
    pub wheels: Vec<SelectedWheel>,
    /// Packages skipped because their marker is false for the target.
    pub skipped: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn file_name_of(url_or_path: &str) -> String {
    let last = url_or_path.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
    percent_decode(last)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The largest pylock.toml read, in bytes.
pub const MAX_PYLOCK_BYTES: u64 = 64 << 20;

/// Reads `file` and selects one wheel per package for `target`.
pub fn select_file(file: &Path, target: &Target, extras: &BTreeSet<String>) -> Result<Selection, PylockError> {
    let bytes = crate::hostfs::read_bounded(file, MAX_PYLOCK_BYTES, "a lock file").map_err(|e| PylockError {
        file: file.to_path_buf(),
        line: None,
        message: format!("cannot read the lock file: {e}"),
        hint: Some("create it with `strata lock SPEC` (needs `requirements:` and uv) or write it with `uv pip compile ... --format pylock.toml`; the path is relative to the file that names it".into()),
    })?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| PylockError {
        file: file.to_path_buf(),
        line: None,
        message: "the lock file is not UTF-8".into(),
        hint: None,
    })?;
    let mut sel = select(file, &text, target, extras)?;
    sel.lock_sha256 = Digest::of(&bytes);
    Ok(sel)
}

/// Selects one wheel per package of the lock `text` (read from `file`) for `target`.
pub fn select(file: &Path, text: &str, target: &Target, extras: &BTreeSet<String>) -> Result<Selection, PylockError> {
    let err = |line: Option<usize>, message: String, hint: Option<&str>| PylockError {
        file: file.to_path_buf(),
        line,
        message,
        hint: hint.map(str::to_string),
    };
    let raw: RawLock = toml::from_str(text).map_err(|e| {
        err(
            None,
            format!("not a valid pylock.toml:\n{e}"),
            Some("see https://packaging.python.org/en/latest/specifications/pylock-toml/"),
        )
    })?;
    let major = raw.lock_version.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(err(
            None,
            format!("lock-version `{}` is not supported; strata reads lock-version 1.x", raw.lock_version),
            Some("re-create the lock with a tool that writes PEP 751 version 1.0"),
        ));
    }
    let full = Version::parse(&target.python_full).map_err(|e| err(None, e.to_string(), None))?;
    if let Some(rp) = &raw.requires_python {
        let set = SpecifierSet::parse(rp).map_err(|e| err(None, format!("requires-python: {e}"), None))?;
        if !set.contains(&full) {
            return Err(err(
                None,
                format!("the lock requires Python `{rp}`, but the image has Python {}", target.python_full),
                Some("re-lock for the image's Python (`strata lock SPEC` passes --python-version)"),
            ));
        }
    }
    let groups: BTreeSet<String> = raw.default_groups.iter().map(|g| normalize_name(g)).collect();
    let extras: BTreeSet<String> = extras.iter().map(|e| normalize_name(e)).collect();
    let env = target.marker_env(&extras, &groups);
    if let Some(envs) = &raw.environments {
        let mut any = envs.is_empty();
        for m in envs {
            let marker = Marker::parse(m).map_err(|e| err(None, format!("environments: {e}"), None))?;
            any |= marker.evaluate(&env).map_err(|e| err(None, format!("environments: {e}"), None))?;
        }
        if !any {
            return Err(err(
                None,
                format!(
                    "none of the lock's environments ({}) matches the image ({})",
                    envs.join("; "),
                    target.describe()
                ),
                Some("re-lock for the image's platform (`strata lock SPEC`)"),
            ));
        }
    }
    let ranks = target.tag_ranks();
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut wheels: BTreeMap<String, SelectedWheel> = BTreeMap::new();
    let mut skipped = Vec::new();
    for p in &raw.packages {
        let line = line_of(text, p.name.span().start);
        let name = normalize_name(p.name.get_ref());
        let perr = |message: String, hint: Option<&str>| err(Some(line), message, hint);
        if let Some(m) = &p.marker {
            let marker = Marker::parse(m).map_err(|e| perr(format!("package `{name}`: {e}"), None))?;
            if !marker.evaluate(&env).map_err(|e| perr(format!("package `{name}`: {e}"), None))? {
                skipped.push(name);
                continue;
            }
        }
        let version = p.version.clone();
        let label = match &version {
            Some(v) => format!("`{name}` {v}"),
            None => format!("`{name}`"),
        };
        if let Some(rp) = &p.requires_python {
            let set =
                SpecifierSet::parse(rp).map_err(|e| perr(format!("package {label}: requires-python: {e}"), None))?;
            if !set.contains(&full) {
                return Err(perr(
                    format!("package {label} requires Python `{rp}`, but the image has Python {}", target.python_full),
                    Some("re-lock for the image's Python (`strata lock SPEC` passes --python-version)"),
                ));
            }
        }
        if p.vcs.is_some() || p.directory.is_some() {
            return Err(perr(format!("package {label} comes from a {}; strata installs wheels only and never builds", if p.vcs.is_some() { "VCS checkout" } else { "local directory" }),
                Some("build a wheel (`uv build` or `python -m build`), then lock it as a `wheels` entry with `path`, `size` and `hashes`")));
        }
        let files: Vec<&RawFile> = match (&p.wheels, &p.archive) {
            (Some(w), None) if !w.is_empty() => w.iter().collect(),
            (None, Some(a)) if a.url.as_deref().or(a.path.as_deref()).is_some_and(|u| file_name_of(u).ends_with(".whl")) => vec![a],
            (Some(_), Some(_)) => return Err(perr(format!("package {label} lists both `wheels` and an `archive`; PEP 751 allows one kind of source"), None)),
            (_, Some(_)) => return Err(perr(format!("package {label} comes from an archive that is not a wheel; strata installs wheels only and never builds"),
                Some("build a wheel and lock it as a `wheels` entry"))),
            _ if p.sdist.is_some() => return Err(perr(format!("package {label} has only a source distribution; strata installs wheels only and never builds"),
                Some("pick a version that has a wheel for the image (re-lock), or build one and lock it as a `wheels` entry with `path`"))),
            _ => return Err(perr(format!("package {label} has no wheels"), None)),
        };
        let mut best: Option<(usize, (u64, String), &RawFile, WheelName)> = None;
        let mut seen = Vec::new();
        for f in &files {
            let loc =
                f.url.as_deref().or(f.path.as_deref()).ok_or_else(|| {
                    perr(format!("package {label}: a wheel entry has neither `url` nor `path`"), None)
                })?;
            let fname = f.name.clone().unwrap_or_else(|| file_name_of(loc));
            let wn = WheelName::parse(&fname).map_err(|m| perr(format!("package {label}: {m}"), None))?;
            if normalize_name(&wn.dist) != name {
                return Err(perr(
                    format!("package {label}: wheel `{fname}` is for `{}`, not `{name}`", normalize_name(&wn.dist)),
                    None,
                ));
            }
            let rank = wn.tags.iter().filter_map(|t| ranks.get(t)).min().copied();
            seen.push(format!("{} ({})", fname, wn.tag_text()));
            if let Some(r) = rank {
                let key = (r, wn.build_key());
                let better = match &best {
                    None => true,
                    Some((br, bb, _, bn)) => {
                        r < *br || (r == *br && (key.1 > *bb || (key.1 == *bb && wn.file < bn.file)))
                    }
                };
                if better {
                    best = Some((r, key.1, f, wn));
                }
            }
        }
        let Some((_, _, f, wn)) = best else {
            return Err(perr(
                format!("package {label}: no wheel fits {}; wheels in the lock:\n  {}", target.describe(), seen.join("\n  ")),
                Some(&format!(
                    "the image takes wheels tagged {cp}-{cp}, {cp}-abi3 (or an older abi3), {cp}-none or py3-none for manylinux_2_N with N <= {g} (manylinux2014 = 2_17, manylinux2010 = 2_12, manylinux1 = 2_5) on {arch}, or `any`; re-lock for the image with `strata lock SPEC` (uv pip compile --python-platform {arch}-manylinux_{g0}_{g} --python-version {p0}.{p1})",
                    cp = target.cp(), g = target.glibc.1, g0 = target.glibc.0, arch = target.arch, p0 = target.python.0, p1 = target.python.1
                )),
            ));
        };
        if let Some(v) = &version {
            let (a, b) = (Version::parse(v), Version::parse(&wn.version));
            let same = match (a, b) {
                (Ok(a), Ok(b)) => a == b,
                _ => v == &wn.version,
            };
            if !same {
                return Err(perr(
                    format!("package {label}: the chosen wheel `{}` has version {}", wn.file, wn.version),
                    Some("the lock is inconsistent; re-create it"),
                ));
            }
        }
        let sha = f.hashes.get("sha256").ok_or_else(|| {
            perr(
                format!(
                    "package {label}: wheel `{}` has no sha256 in `hashes` (found: {})",
                    wn.file,
                    f.hashes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                Some("strata pins downloads by SHA-256; re-lock with a tool that records sha256 (uv does)"),
            )
        })?;
        let sha256 = Digest::parse(sha).map_err(|e| perr(format!("package {label}: {e}"), None))?;
        let location = match (&f.url, &f.path) {
            (Some(u), _) => {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(perr(
                        format!("package {label}: wheel URL `{u}` is not http(s)"),
                        Some("use `path` for local wheels"),
                    ));
                }
                WheelLocation::Url(u.clone())
            }
            (None, Some(p)) => WheelLocation::Path(base.join(p)),
            (None, None) => unreachable!("checked above"),
        };
        let sel = SelectedWheel {
            package: name.clone(),
            version: version.unwrap_or_else(|| wn.version.clone()),
            name: wn,
            location,
            sha256,
            size: f.size,
            line,
        };
        if let Some(prev) = wheels.insert(name.clone(), sel) {
            return Err(perr(
                format!("package `{name}` appears twice for this target (also at line {})", prev.line),
                Some("PEP 751 allows several entries per name only when their markers exclude each other"),
            ));
        }
    }
    Ok(Selection {
        file: file.to_path_buf(),
        lock_sha256: Digest::of(text.as_bytes()),
        wheels: wheels.into_values().collect(),
        skipped,
    })
}

/// The normalised project names of PEP 508 requirement strings
/// (`torch==2.9.0`, `jupyterlab[dev] >=4; python_version>='3.9'`).
pub fn requirement_names(reqs: &[String]) -> BTreeSet<String> {
    reqs.iter()
        .map(|r| {
            let n = r.trim().bytes().take_while(|b| b.is_ascii_alphanumeric() || b"._-".contains(b)).count();
            normalize_name(&r.trim()[..n])
        })
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
lock-version = "1.0"
created-by = "test"
requires-python = ">=3.11"

[[packages]]
name = "numpy"
version = "2.4.6"
wheels = [
  { url = "https://example.org/numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl", size = 1, hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000001" } },
  { url = "https://example.org/numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", size = 2, hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000002" } },
  { url = "https://example.org/numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", size = 3, hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000003" } },
  { url = "https://example.org/numpy-2.4.6-cp311-cp311-musllinux_1_2_x86_64.whl", size = 4, hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000004" } },
  { url = "https://example.org/numpy-2.4.6-cp311-cp311-manylinux_2_31_x86_64.whl", size = 5, hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000005" } },
]

[[packages]]
name = "Typing_Extensions"
version = "4.16.0"
wheels = [{ url = "https://example.org/typing_extensions-4.16.0-py3-none-any.whl", size = 6, hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000006" } }]

[[packages]]
name = "pywin32"
version = "311"
marker = "sys_platform == 'win32'"
wheels = [{ url = "https://example.org/pywin32-311-cp311-cp311-win_amd64.whl", size = 7, hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000007" } }]

[[packages]]
name = "markupsafe"
version = "3.0.4"
wheels = [{ path = "wheels/markupsafe-3.0.4-cp311-abi3-manylinux1_x86_64.whl", hashes = { sha256 = "0000000000000000000000000000000000000000000000000000000000000008" } }]
"#;

    #[test]
    fn selects_the_best_wheel_per_package_for_the_target() {
        let s = select(Path::new("/x/pylock.toml"), LOCK, &Target::default(), &BTreeSet::new()).unwrap();
        let got: Vec<(&str, &str)> = s.wheels.iter().map(|w| (w.package.as_str(), w.name.file.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("markupsafe", "markupsafe-3.0.4-cp311-abi3-manylinux1_x86_64.whl"),
                ("numpy", "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"),
                ("typing-extensions", "typing_extensions-4.16.0-py3-none-any.whl"),
            ]
        );
        assert_eq!(s.skipped, vec!["pywin32"]);
        assert_eq!(
            s.wheels[0].location,
            WheelLocation::Path(PathBuf::from("/x/wheels/markupsafe-3.0.4-cp311-abi3-manylinux1_x86_64.whl"))
        );
        assert_eq!(s.wheels[1].size, Some(3));
    }

    #[test]
    fn no_fitting_wheel_names_package_and_tags() {
        let lock = LOCK
            .replace("cp311-cp311-manylinux_2_17", "cp310-cp310-manylinux_2_17")
            .replace("cp311-cp311-manylinux_2_27", "cp313-cp313-manylinux_2_27");
        let e = select(Path::new("pylock.toml"), &lock, &Target::default(), &BTreeSet::new()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("pylock.toml:7: package `numpy` 2.4.6: no wheel fits CPython 3.11 manylinux_2_28 x86_64"),
            "{msg}"
        );
        assert!(
            msg.contains("(cp311-cp311-musllinux_1_2_x86_64)")
                && msg.contains("manylinux_2_31")
                && msg.contains("hint: "),
            "{msg}"
        );
    }

    #[test]
    fn lock_level_checks() {
        let t = Target::default();
        let none = BTreeSet::new();
        let err = |text: &str| select(Path::new("pylock.toml"), text, &t, &none).unwrap_err().to_string();
        let head = "lock-version = \"1.0\"\ncreated-by = \"t\"\n";
        assert!(err(&format!("{head}requires-python = \">=3.12\"\n"))
            .contains("requires Python `>=3.12`, but the image has Python 3.11.2"));
        assert!(err("lock-version = \"2.0\"\ncreated-by = \"t\"\n").contains("lock-version `2.0` is not supported"));
        assert!(err(&format!("{head}environments = [\"sys_platform == 'win32'\"]\n"))
            .contains("none of the lock's environments"));
        let pkg = |body: &str| format!("{head}[[packages]]\nname = \"x\"\nversion = \"1\"\n{body}\n");
        assert!(err(&pkg("sdist = { url = \"https://e/x-1.tar.gz\", hashes = { sha256 = \"00\" } }"))
            .contains("has only a source distribution"));
        assert!(err(&pkg("vcs = { type = \"git\", url = \"https://e/x\", commit-id = \"abc\" }"))
            .contains("comes from a VCS checkout"));
        assert!(err(&pkg("requires-python = \"<3.11\"\nwheels = []")).contains("package `x` 1 requires Python `<3.11`"));
        let w = "wheels = [{ url = \"https://e/x-1-py3-none-any.whl\", hashes = { sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\" } }]";
        let twice = format!("{}[[packages]]\nname = \"X\"\nversion = \"1\"\n{w}\n", pkg(w));
        assert!(err(&twice).contains("appears twice"));
        let md5 = "wheels = [{ url = \"https://e/x-1-py3-none-any.whl\", hashes = { md5 = \"00\" } }]";
        assert!(err(&pkg(md5)).contains("has no sha256"));
        assert!(err("not toml [").contains("not a valid pylock.toml"));
    }

    #[test]
    fn requirement_names_are_normalised() {
        let n = requirement_names(&[
            "torch==2.9.0".into(),
            "Jupyter_Lab[dev] >=4; python_version>='3.9'".into(),
            " numpy".into(),
        ]);
        assert_eq!(n.into_iter().collect::<Vec<_>>(), vec!["jupyter-lab", "numpy", "torch"]);
    }
}
