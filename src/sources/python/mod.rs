//! `python:`: wheels pinned by a PEP 751 `pylock.toml`, installed into the
//! image's Python (Debian's `/usr/local` scheme) without pip or Python.
//!
//! Pipeline: the lock is read and one wheel per package chosen for the
//! target (`pylock`, `tags`, `marker`); the wheels are fetched like any
//! artifact; every wheel is planned (`install`: central directory, RECORD,
//! launchers) and all of them go through one conflict check; then the
//! wheels are split into layers (`layering`), one [`Part`] each, whose
//! fingerprint is exactly its wheels' hashes plus the install settings.
//! File bytes stream from the wheels in the store when a layer is written,
//! checked against RECORD as they pass (`zip`).

pub mod install;
pub mod layering;
pub mod lockfile;
pub mod marker;
pub mod pylock;
pub mod requirement;
pub mod tags;
pub mod uv;
pub mod version;
pub mod zip;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use install::{InstallOptions, InstalledWheel, Scheme};
pub use layering::SplitPolicy;
pub use pylock::{SelectedWheel, Selection, WheelLocation};
pub use tags::Target;

use super::{Context, Part, Source, SourceError};
use crate::fetch::Artifact;
use crate::spec::{PythonSpec, ResolvedLayer};
use crate::tree::{Content, Entry, Kind, Tree, TreeError, TreePath};
use zip::ZipArchive;

/// Version of the install rules; part of every python layer fingerprint.
pub const INSTALLER_VERSION: &str = "python-wheels-v1";

/// Checks a `python:` entry where no file needs to exist yet (the lock may
/// be written later by `strata lock`). Returns (node, message, hint).
pub fn check_spec(py: &PythonSpec) -> Result<(), (String, String, Option<String>)> {
    let file = Path::new(&py.lock).file_name().and_then(|f| f.to_str()).unwrap_or("");
    let pep751 = file == "pylock.toml"
        || (file.starts_with("pylock.")
            && file.ends_with(".toml")
            && file.len() > "pylock..toml".len()
            && !file[7..file.len() - 5].contains('.'));
    if !pep751 {
        return Err((
            "lock".into(),
            format!("lock file `{}` is not named `pylock.toml` or `pylock.<name>.toml`", py.lock),
            Some("PEP 751 fixes the file name so tools can find locks; e.g. `lock: pylock.pytorch-cuda.toml`".into()),
        ));
    }
    for (i, r) in py.requirements.iter().enumerate() {
        if let Err(e) = requirement::parse(r) {
            return Err((format!("requirements[{i}]"), e.message, Some(e.hint)));
        }
    }
    if let Some(u) = &py.index_url {
        let ok = (u.starts_with("https://") || u.starts_with("http://"))
            && url::Url::parse(u).is_ok()
            && !u.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err((
                "index_url".into(),
                format!("`{}` is not an http(s) URL", crate::net::redact::url(u)),
                Some(
                    "e.g. `index_url: https://pypi.org/simple`; local directories and other schemes are not accepted"
                        .into(),
                ),
            ));
        }
    }
    if let Some(t) = &py.exclude_newer {
        if !valid_timestamp(t) {
            return Err((
                "exclude_newer".into(),
                format!("`{t}` is not a date or RFC 3339 time"),
                Some("e.g. `2026-11-01T00:00:00Z` or `2026-11-01`".into()),
            ));
        }
    }
    if let Some(s) = &py.split {
        if let Some(m) = s.max_layers {
            if !(1..=layering::MAX_IMAGE_LAYERS as u32).contains(&m) {
                return Err((
                    "split.max_layers".into(),
                    format!("max_layers {m} is outside 1-{}", layering::MAX_IMAGE_LAYERS),
                    None,
                ));
            }
        }
        if let Some(g) = s.groups {
            if !(1..=layering::MAX_IMAGE_LAYERS as u32).contains(&g) {
                return Err((
                    "split.groups".into(),
                    format!("groups {g} is outside 1-{}", layering::MAX_IMAGE_LAYERS),
                    None,
                ));
            }
        }
    }
    Ok(())
}

/// The pylock of one platform of a multi-platform spec whose `python:`
/// entry resolves `requirements:`: `pylock.toml` → `pylock.linux-arm64.toml`,
/// `dir/pylock.app.toml` → `dir/pylock.app-linux-arm64.toml` (`suffix` is the
/// platform with `-` for `/`). Still a PEP 751 name.
pub fn platform_pylock(lock: &str, suffix: &str) -> String {
    let (dir, file) = match lock.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), lock),
    };
    let name = file.strip_prefix("pylock.").and_then(|f| f.strip_suffix(".toml")).unwrap_or_default();
    if name.is_empty() {
        format!("{dir}pylock.{suffix}.toml")
    } else {
        format!("{dir}pylock.{name}-{suffix}.toml")
    }
}

fn valid_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let date = b.len() >= 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    date && (b.len() == 10
        || (b.len() >= 20
            && (b[10] == b'T' || b[10] == b' ')
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)))
}

/// A `python:` source.
pub struct Python<'a> {
    /// Its spec.
    pub spec: &'a PythonSpec,
    /// The layer entry (for relative paths and the name).
    pub layer: &'a ResolvedLayer,
    /// The image's interpreter and platform.
    pub target: Target,
    /// Where wheels go.
    pub scheme: Scheme,
    /// What the spec's lock file recorded for this entry: (pylock, sha256).
    pub recorded: Option<(String, String)>,
    selection: OnceLock<Result<Selection, pylock::PylockError>>,
}

/// One wheel, planned.
#[derive(Debug)]
pub struct PlannedWheel {
    /// What the lock chose.
    pub wheel: SelectedWheel,
    /// Its size in bytes.
    pub size: u64,
    /// Whether `REQUESTED` was written.
    pub requested: bool,
    /// The installed entries.
    pub installed: InstalledWheel,
}

impl<'a> Python<'a> {
    /// The source of `spec` in `layer`, for the target it names (or the default).
    pub fn new(spec: &'a PythonSpec, layer: &'a ResolvedLayer) -> Python<'a> {
        let target = Target::of(spec.target.as_ref(), layer.arch);
        let scheme = Scheme::debian(target.python);
        Python { spec, layer, target, scheme, recorded: None, selection: OnceLock::new() }
    }

    /// Takes what the spec's lock file (`SPEC.lock`) recorded for this entry,
    /// so [`Source::check`] can refuse a pylock edited since `strata lock`.
    pub fn with_lock(mut self, lock: Option<&crate::lockfile::Lock>) -> Self {
        self.recorded = lock.and_then(|l| lockfile::recorded(l, &crate::lockfile::layer_key(self.layer)));
        self
    }

    /// The lock file's path.
    pub fn lock_path(&self) -> PathBuf {
        self.layer.resolve(&self.spec.lock)
    }

    /// The lock, parsed, with one wheel per package chosen for the target.
    pub fn selection(&self) -> Result<&Selection, SourceError> {
        self.selection
            .get_or_init(|| {
                let extras: BTreeSet<String> = self.spec.extras.iter().cloned().collect();
                let path = self.layer.host_file(&self.spec.lock).map_err(|e| pylock::PylockError {
                    file: self.lock_path(),
                    line: None,
                    message: format!("cannot read the lock file: {e}"),
                    hint: Some(match e {
                        crate::hostfs::HostPathError::Missing { .. } => "create it with `strata lock SPEC` (needs `requirements:` and uv) or write it with `uv pip compile ... --format pylock.toml`; the path is relative to the file that names it".to_string(),
                        other => other.hint().to_string(),
                    }),
                })?;
                pylock::select_file(&path, &self.target, &extras)
            })
            .as_ref()
            .map_err(|e| SourceError::Other(Box::new(e.clone())))
    }

    /// The split settings.
    pub fn policy(&self) -> SplitPolicy {
        let d = SplitPolicy::default();
        match &self.spec.split {
            None => d,
            Some(s) => SplitPolicy {
                own_layer_min_bytes: s.own_layer_min_bytes.unwrap_or(d.own_layer_min_bytes),
                groups: s.groups.unwrap_or(d.groups),
                max_layers: s.max_layers.unwrap_or(d.max_layers),
            },
        }
    }

    /// Where a selected wheel's bytes are (fetched into the store, or local
    /// and checked against its pinned hash and size now).
    pub fn wheel_file(&self, ctx: &Context<'_>, w: &SelectedWheel) -> Result<PathBuf, SourceError> {
        match &w.location {
            WheelLocation::Url(_) => Ok(ctx.store.path(&w.sha256)),
            WheelLocation::Path(p) => {
                let p = crate::hostfs::resolve(&self.layer.context, Path::new(""), p).map_err(|e| {
                    SourceError::Message(format!("package `{}`: wheel {e}\nhint: {}", w.package, e.hint()))
                })?;
                verify_local(&p, w)?;
                Ok(p)
            }
        }
    }

    /// Plans every selected wheel (`wheel_files` gives each file) and checks
    /// that no two wheels put different content at one path.
    pub fn plan_wheels(&self, files: &[PathBuf]) -> Result<Vec<PlannedWheel>, SourceError> {
        let sel = self.selection()?;
        let requested = pylock::requirement_names(&self.spec.requirements);
        plan_wheels(sel, files, &self.scheme, &requested)
    }
}

fn verify_local(p: &Path, w: &SelectedWheel) -> Result<(), SourceError> {
    let (f, on_disk) = crate::hostfs::open_regular(p).map_err(|e| {
        SourceError::Message(format!(
            "package `{}`: {e}\nhint: `path` in the lock is relative to the lock file",
            w.package
        ))
    })?;
    // The pinned size bounds the read (a file that never ends, or grows,
    // is refused instead of hashed forever).
    let expect = w.size.unwrap_or(on_disk);
    if on_disk != expect {
        return Err(SourceError::Message(format!("{}: expected {expect} bytes (pinned in the lock), found {on_disk}\nhint: the file changed since it was locked; re-lock if the new file is trusted", p.display())));
    }
    let (d, n) = crate::digest::hash_reader(crate::hostfs::Exact::new(std::io::BufReader::new(f), expect, p))
        .map_err(SourceError::io("reading", p))?;
    if let Some(size) = w.size {
        if size != n {
            return Err(SourceError::Message(format!("{}: expected {size} bytes (pinned in the lock), found {n}\nhint: the file changed since it was locked; re-lock if the new file is trusted", p.display())));
        }
    }
    if d != w.sha256 {
        return Err(SourceError::Message(format!(
            "{}: sha256 mismatch\n  expected: {}\n  found:    {d}\nhint: the file changed since it was locked; re-lock if the new file is trusted",
            p.display(),
            w.sha256
        )));
    }
    Ok(())
}

/// Plans the wheels of `sel` (files in the same order) into entries and
/// checks the whole set for conflicts: identical duplicates (the empty
/// `nvidia/__init__.py` of eleven wheels) are fine, different content at one
/// path is an error naming both wheels.
pub fn plan_wheels(
    sel: &Selection,
    files: &[PathBuf],
    scheme: &Scheme,
    requested: &BTreeSet<String>,
) -> Result<Vec<PlannedWheel>, SourceError> {
    let mut out = Vec::with_capacity(sel.wheels.len());
    let mut all = Tree::new();
    for (w, file) in sel.wheels.iter().zip(files) {
        let zip = ZipArchive::open(file, &w.name.file).map_err(|e| SourceError::Other(Box::new(e)))?;
        let size = fs_err::metadata(file).map_err(SourceError::io("reading", file))?.len();
        let req = requested.contains(&w.package);
        let installed =
            install::install(&zip, &w.name.dist, &w.name.version, scheme, InstallOptions { requested: req })
                .map_err(|e| SourceError::Other(Box::new(e)))?;
        for (path, entry) in &installed.entries {
            if let (Some(Entry { kind: Kind::File { .. }, .. }), Kind::File { content: Content::Source(src), .. }) =
                (all.get(path), &entry.kind)
            {
                // The copy that will not be installed is still checked against its RECORD.
                let mut r = src.open().map_err(|e| SourceError::Message(format!("{}: {e}", src.describe())))?;
                std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| SourceError::Message(e.to_string()))?;
            }
            all.insert(path.clone(), entry.clone()).map_err(|e| match e {
                TreeError::Conflict { path, first_origin, second_origin, detail, .. } => SourceError::Message(format!(
                    "{} and {} both install {path}, with different content{detail}\nhint: these packages conflict; remove one from the lock or pin versions that agree, then re-lock (identical files, like the empty nvidia/__init__.py many CUDA wheels share, are fine)",
                    first_origin.trim_start_matches("wheel "),
                    second_origin.trim_start_matches("wheel ")
                )),
                other => SourceError::Tree(other),
            })?;
        }
        out.push(PlannedWheel { wheel: w.clone(), size, requested: req, installed });
    }
    Ok(out)
}

/// The fingerprint of a layer holding `wheels`.
pub fn fingerprint(target: &Target, scheme: &Scheme, wheels: &[&PlannedWheel]) -> String {
    let mut s = format!("{INSTALLER_VERSION}\ntarget {}\nscheme {}\n", target.describe(), scheme.fingerprint());
    for w in wheels {
        s.push_str(&format!("wheel {} {} requested={}\n", w.wheel.name.file, w.wheel.sha256, w.requested));
    }
    s
}

impl Source for Python<'_> {
    fn describe(&self) -> String {
        format!("python lock {}", self.lock_path().display())
    }

    fn plan_inputs(&self) -> Option<String> {
        let sel = self.selection().ok()?;
        let requested = pylock::requirement_names(&self.spec.requirements);
        let mut s = format!(
            "{INSTALLER_VERSION}\ntarget {}\nscheme {}\npolicy {:?}\nrequested {requested:?}\n",
            self.target.describe(),
            self.scheme.fingerprint(),
            self.policy()
        );
        for w in &sel.wheels {
            s.push_str(&format!("wheel {} {} {} {:?}\n", w.package, w.name.file, w.sha256, w.size));
        }
        Some(s)
    }

    fn check_gpu(
        &self,
        gpu: &crate::spec::GpuSpec,
        store: Option<&crate::store::Store>,
    ) -> Result<(), super::GpuCheckError> {
        let sel = self.selection()?;
        match store {
            None => crate::cuda::check_lock(gpu, &sel.wheels)?,
            Some(store) => {
                if let Some((version, reqs)) = wheel_requires(sel, "torch", store)? {
                    crate::cuda::check_torch_requires(gpu, &version, &reqs, &sel.wheels)?;
                }
                let torch = sel.wheels.iter().find(|w| w.package == "torch").map(|w| w.version.as_str());
                for pkg in crate::cuda::COMPANIONS {
                    if let Some(c) = companion_build(sel, pkg, store)? {
                        crate::cuda::check_companion(gpu, torch, &c)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), SourceError> {
        let sel = self.selection()?;
        if let Some((pylock, sha)) = &self.recorded {
            let hint = format!(
                "hint: if the change is intended, run `strata lock` on the spec to record it (it re-resolves `requirements:` with uv when there are any); otherwise restore {}",
                self.spec.lock
            );
            if pylock != &self.spec.lock {
                return Err(SourceError::Message(format!(
                    "the lock file recorded `{pylock}` for this entry, but the spec now names `{}`\n{hint}",
                    self.spec.lock
                )));
            }
            if sel.lock_sha256.to_string() != *sha {
                return Err(SourceError::Message(format!(
                    "{} changed since `strata lock` recorded it\n  recorded: {sha}\n  now:      {}\n{hint}",
                    self.lock_path().display(),
                    sel.lock_sha256
                )));
            }
        }
        Ok(())
    }

    fn artifacts(&self) -> Vec<Artifact> {
        let Ok(sel) = self.selection() else { return Vec::new() };
        sel.wheels
            .iter()
            .filter_map(|w| match &w.location {
                WheelLocation::Url(u) => {
                    Some(Artifact { name: w.name.file.clone(), url: u.clone(), sha256: w.sha256, size: w.size })
                }
                WheelLocation::Path(_) => None,
            })
            .collect()
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        Err(SourceError::Message(format!("{}: planning needs the fetched wheels (use plan_with)", self.describe())))
    }

    fn plan_with(&self, ctx: &Context<'_>) -> Result<Vec<Part<'_>>, SourceError> {
        let sel = self.selection()?;
        let files = sel.wheels.iter().map(|w| self.wheel_file(ctx, w)).collect::<Result<Vec<_>, _>>()?;
        let mut planned = self.plan_wheels(&files)?;
        let sizes: Vec<(String, u64)> = planned.iter().map(|p| (p.wheel.package.clone(), p.size)).collect();
        let layers = layering::split(&sizes, &self.policy());
        ctx.reporter.info(&format!(
            "python: {} wheels from {} in {} layers",
            planned.len(),
            self.lock_path().display(),
            layers.len()
        ));
        let mut parts = Vec::with_capacity(layers.len());
        for l in layers {
            let members: Vec<&PlannedWheel> = l.wheels.iter().map(|&i| &planned[i]).collect();
            let fp = fingerprint(&self.target, &self.scheme, &members);
            let packages: Vec<crate::sbom::Package> = members.iter().map(|w| sbom_package(w)).collect();
            let mut entries: Vec<(TreePath, Entry)> = Vec::new();
            for &i in &l.wheels {
                entries.append(&mut planned[i].installed.entries);
            }
            let populate = move |_: &Context<'_>, tree: &mut Tree| -> Result<(), SourceError> {
                for (p, e) in entries {
                    tree.insert(p, e)?;
                }
                Ok(())
            };
            parts.push(Part { name: Some(l.name), fingerprint: fp, populate: Box::new(populate), packages });
        }
        Ok(parts)
    }
}

/// The SBOM entry of a planned wheel (`pkg:pypi/<name>@<version>`).
pub fn sbom_package(w: &PlannedWheel) -> crate::sbom::Package {
    use crate::sbom::purl_escape;
    let download = match &w.wheel.location {
        WheelLocation::Url(u) => Some(crate::net::redact::url(u)),
        WheelLocation::Path(_) => None,
    };
    crate::sbom::Package {
        kind: crate::sbom::PackageKind::Wheel,
        name: w.installed.name.clone(),
        version: Some(w.wheel.version.clone()),
        purl: Some(format!(
            "pkg:pypi/{}@{}?file_name={}",
            purl_escape(&w.wheel.package),
            purl_escape(&w.wheel.version),
            purl_escape(&w.wheel.name.file)
        )),
        sha256: Some(w.wheel.sha256),
        download,
        license: w.installed.license.clone(),
    }
}

/// `Requires-Dist` and version of the wheel of `package`, read from the
/// fetched (or local) wheel's METADATA. `None` when the lock has no such package.
pub fn wheel_requires(
    sel: &Selection,
    package: &str,
    store: &crate::store::Store,
) -> Result<Option<(String, Vec<String>)>, SourceError> {
    let Some(w) = sel.wheels.iter().find(|w| w.package == package) else { return Ok(None) };
    let zip = open_fetched(w, store)?;
    Ok(Some(metadata_requires(w, &zip)?))
}

fn open_fetched(w: &SelectedWheel, store: &crate::store::Store) -> Result<ZipArchive, SourceError> {
    let path = match &w.location {
        WheelLocation::Url(_) => store.path(&w.sha256),
        WheelLocation::Path(p) => p.clone(),
    };
    ZipArchive::open(&path, &w.name.file).map_err(|e| SourceError::Other(Box::new(e)))
}

/// What a fetched torchvision/torchaudio wheel records about its build:
/// METADATA's version and requirements, `<package>/version.py`'s
/// `__version__`, and the CUDA runtime its extensions (`<package>/**.so`)
/// link against.
pub fn companion_build(
    sel: &Selection,
    package: &str,
    store: &crate::store::Store,
) -> Result<Option<crate::cuda::CompanionBuild>, SourceError> {
    let Some(w) = sel.wheels.iter().find(|w| w.package == package) else { return Ok(None) };
    let zip = open_fetched(w, store)?;
    let (version, requires) = metadata_requires(w, &zip)?;
    let read =
        |e: &zip::ZipEntry, limit: u64| zip.read_small(e, None, limit).map_err(|e| SourceError::Other(Box::new(e)));
    let mut build_version = None;
    if let Some(e) = zip.entries.iter().find(|e| e.name == format!("{package}/version.py")) {
        let text = String::from_utf8_lossy(&read(e, 1 << 20)?).into_owned();
        build_version = text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("__version__")?.trim_start().strip_prefix('=')?.trim();
            let q = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            Some(rest[1..].split(q).next()?.to_string())
        });
    }
    let mut cudart = Vec::new();
    let prefix = format!("{package}/");
    let extensions = zip.entries.iter().filter(|e| e.name.starts_with(&prefix) && e.name.ends_with(".so"));
    for e in extensions.take(64) {
        let bytes = read(e, 256 << 20)?;
        if let Some(elf) = crate::sources::deb::ldcache::parse_elf(&bytes, 62)
            .or_else(|| crate::sources::deb::ldcache::parse_elf(&bytes, 183))
        {
            for n in elf.needed.into_iter().filter(|n| crate::cuda::cudart_major(n).is_some()) {
                cudart.push((e.name.clone(), n));
            }
        }
    }
    Ok(Some(crate::cuda::CompanionBuild { package: package.to_string(), version, requires, build_version, cudart }))
}

fn metadata_requires(w: &SelectedWheel, zip: &ZipArchive) -> Result<(String, Vec<String>), SourceError> {
    let meta = zip
        .entries
        .iter()
        .find(|e| e.name.ends_with(".dist-info/METADATA") && e.name.matches('/').count() == 1)
        .ok_or_else(|| SourceError::Message(format!("{}: no METADATA", w.name.file)))?;
    let text =
        String::from_utf8_lossy(&zip.read_small(meta, None, 16 << 20).map_err(|e| SourceError::Other(Box::new(e)))?)
            .into_owned();
    let mut version = w.version.clone();
    let mut reqs = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Version:") {
            version = v.trim().to_string();
        } else if let Some(r) = line.strip_prefix("Requires-Dist:") {
            reqs.push(r.trim().to_string());
        }
    }
    Ok((version, reqs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_follow_pep_751() {
        let mk = |lock: &str| PythonSpec {
            lock: lock.into(),
            requirements: vec![],
            exclude_newer: None,
            index_url: None,
            extras: vec![],
            split: None,
            target: None,
        };
        assert!(check_spec(&mk("pylock.toml")).is_ok());
        assert!(check_spec(&mk("../specs/pylock.pytorch-cuda.toml")).is_ok());
        assert!(check_spec(&mk("pytorch.pylock.toml")).is_err());
        assert!(check_spec(&mk("pylock.a.b.toml")).is_err());
        // Each platform's own pylock keeps a PEP 751 name.
        assert_eq!(platform_pylock("pylock.toml", "linux-arm64"), "pylock.linux-arm64.toml");
        assert_eq!(platform_pylock("../x/pylock.app.toml", "linux-amd64"), "../x/pylock.app-linux-amd64.toml");
        assert!(check_spec(&mk(&platform_pylock("locks/pylock.app.toml", "linux-arm64"))).is_ok());
        assert!(
            valid_timestamp("2026-11-01T00:00:00Z") && valid_timestamp("2026-11-01") && !valid_timestamp("yesterday")
        );
    }
}
