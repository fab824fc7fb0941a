//! Installs one wheel into tree entries, following the binary distribution
//! format specification, without pip and without running Python.
//!
//! * Root files go to purelib or platlib (`Root-Is-Purelib`); `.data/<key>/`
//!   subtrees go to the scheme's `purelib`, `platlib`, `scripts`, `headers`
//!   (`<headers>/<dist>`) or `data` directory; any other key is an error.
//! * Every member must be listed in RECORD with a sha256 (or stronger) hash;
//!   the hash is checked while the bytes stream into the layer (small files
//!   that are rewritten are checked when read here).
//! * `.data/scripts` files starting with `#!python` get the interpreter's
//!   shebang (pip's rule: the whole first line is replaced); scripts are
//!   made executable. Console and GUI entry points get pip's launcher.
//! * `INSTALLER` says `strata`; `REQUESTED` marks requested packages;
//!   RECORD is rewritten with installed paths, sorted. No `.pyc` files.
//! * Modes: 0755 for members that pip would make executable, else 0644.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::marker::normalize_name;
use super::version::Version;
use super::zip::{b64_encode, RecordHash, ZipArchive, ZipEntry, ZipError, ZipMember};
use crate::digest::Digest;
use crate::tree::{Content, Entry, Kind, TreePath};

/// Where a wheel's parts go in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    /// Pure-Python modules.
    pub purelib: TreePath,
    /// Platform-specific modules.
    pub platlib: TreePath,
    /// Scripts and launchers.
    pub scripts: TreePath,
    /// `.data/data` root.
    pub data: TreePath,
    /// Headers root; each distribution gets `<headers>/<name>`.
    pub headers: TreePath,
    /// Interpreter named in launchers and rewritten `#!python` lines.
    pub interpreter: String,
    /// Content of `INSTALLER`.
    pub installer: String,
}

impl Scheme {
    /// Debian's `posix_local` scheme for `python3.X` (what `pip install` uses
    /// on Debian outside a virtual environment).
    pub fn debian(python: (u32, u32)) -> Scheme {
        let p = |s: String| TreePath::from_image_path(&s).unwrap_or_else(|_| unreachable!("constant path"));
        let (ma, mi) = python;
        Scheme {
            purelib: p(format!("/usr/local/lib/python{ma}.{mi}/dist-packages")),
            platlib: p(format!("/usr/local/lib/python{ma}.{mi}/dist-packages")),
            scripts: p("/usr/local/bin".into()),
            data: p("/usr/local".into()),
            headers: p(format!("/usr/local/include/python{ma}.{mi}")),
            interpreter: format!("/usr/bin/python{ma}.{mi}"),
            installer: "strata".into(),
        }
    }

    /// A stable description of every setting, for layer fingerprints.
    pub fn fingerprint(&self) -> String {
        format!(
            "purelib={} platlib={} scripts={} data={} headers={} interpreter={} installer={}",
            self.purelib, self.platlib, self.scripts, self.data, self.headers, self.interpreter, self.installer
        )
    }
}

/// What an installed wheel produced.
#[derive(Debug, Clone)]
pub struct InstalledWheel {
    /// Tree entries (files, symlinks), each once.
    pub entries: Vec<(TreePath, Entry)>,
    /// `Name` from METADATA.
    pub name: String,
    /// `Version` from METADATA.
    pub version: String,
    /// `Requires-Dist` lines from METADATA.
    pub requires_dist: Vec<String>,
    /// `License-Expression` (or a one-line `License`) from METADATA.
    pub license: Option<String>,
}

/// Install settings beyond the scheme.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallOptions {
    /// Write `REQUESTED` (the package was asked for, not pulled in).
    pub requested: bool,
}

const SMALL: u64 = 16 << 20;
const RECORD_LIMIT: u64 = 64 << 20;

fn err(wheel: &str, message: impl Into<String>, hint: Option<&str>) -> ZipError {
    ZipError { wheel: wheel.to_string(), message: message.into(), hint: hint.map(str::to_string) }
}

/// One RECORD row.
#[derive(Debug, Clone)]
struct RecordRow {
    hash: Option<RecordHash>,
    size: Option<u64>,
}

/// Parses RECORD (CSV: `path,hash,size`, `"` quoting).
fn parse_record(wheel: &str, text: &str) -> Result<BTreeMap<String, RecordRow>, ZipError> {
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fields = parse_csv_line(line)
            .ok_or_else(|| err(wheel, format!("RECORD line {}: unbalanced quotes", i + 1), None))?;
        if fields.is_empty() || fields.len() > 3 {
            return Err(err(
                wheel,
                format!("RECORD line {} has {} fields; expected path,hash,size", i + 1, fields.len()),
                None,
            ));
        }
        let hash = match fields.get(1).map(String::as_str) {
            None | Some("") => None,
            Some(h) => Some(
                RecordHash::parse(h)
                    .map_err(|m| err(wheel, format!("RECORD line {} ({}): {m}", i + 1, fields[0]), None))?,
            ),
        };
        let size = match fields.get(2).map(String::as_str) {
            None | Some("") => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| err(wheel, format!("RECORD line {}: size `{s}` is not a number", i + 1), None))?,
            ),
        };
        rows.insert(fields[0].clone(), RecordRow { hash, size });
    }
    Ok(rows)
}

fn parse_csv_line(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `Key: Value` headers (WHEEL, METADATA) up to the first blank line.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push('\n');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// `[console_scripts]` / `[gui_scripts]` of entry_points.txt (INI,
/// case-sensitive keys, `=` or `:` delimiters, `#`/`;` comments).
fn parse_entry_points(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_string();
            continue;
        }
        let split = t.find('=').or_else(|| t.find(':'));
        if let Some(i) = split {
            out.entry(section.clone()).or_default().push((t[..i].trim().to_string(), t[i + 1..].trim().to_string()));
        }
    }
    out
}

/// pip's launcher (distlib's template as pip writes it).
pub fn launcher(interpreter: &str, module: &str, attr: &str) -> String {
    let import_name = attr.split('.').next().unwrap_or(attr);
    format!(
        "#!{interpreter}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {module} import {import_name}\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit({attr}())\n"
    )
}

/// `../../../bin/x` from `usr/local/lib/python3.11/dist-packages` to `usr/local/bin/x`.
pub fn relpath(from_dir: &TreePath, to: &TreePath) -> String {
    let a: Vec<&str> = from_dir.as_str().split('/').collect();
    let b: Vec<&str> = to.as_str().split('/').collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&str> = std::iter::repeat_n("..", a.len() - common).collect();
    parts.extend(&b[common..]);
    parts.join("/")
}

struct Out {
    entries: Vec<(TreePath, Entry)>,
    /// installed path → (hash text, size)
    record: BTreeMap<TreePath, (String, String)>,
}

impl Out {
    fn bytes(&mut self, path: TreePath, bytes: Vec<u8>, mode: u32, origin: &Arc<str>) {
        let d = Digest::of(&bytes);
        self.record.insert(path.clone(), (format!("sha256={}", b64_encode(&d.0)), bytes.len().to_string()));
        self.entries.push((path, Entry::bytes(bytes, mode, origin)));
    }
}

/// Installs the wheel `zip` (its file name parsed as `dist`/`version`) with `scheme`.
pub fn install(
    zip: &ZipArchive,
    dist: &str,
    version: &str,
    scheme: &Scheme,
    opts: InstallOptions,
) -> Result<InstalledWheel, ZipError> {
    let wheel = zip.file.label.clone();
    let w = wheel.as_str();
    let origin: Arc<str> = Arc::from(format!("wheel {wheel}"));

    // The one .dist-info directory, named for this distribution.
    let mut info_dirs: BTreeSet<&str> = BTreeSet::new();
    for e in &zip.entries {
        if let Some((top, _)) = e.name.split_once('/') {
            if top.ends_with(".dist-info") {
                info_dirs.insert(top);
            }
        }
    }
    let want = normalize_name(dist);
    let info_dir = match info_dirs.iter().copied().collect::<Vec<_>>().as_slice() {
        [one] => one.to_string(),
        [] => return Err(err(w, "has no .dist-info directory", Some("this is not a valid wheel"))),
        many => {
            let found: Vec<&str> = many
                .iter()
                .copied()
                .filter(|d| d.rsplit_once('-').is_some_and(|(n, _)| normalize_name(n) == want))
                .collect();
            match found.as_slice() {
                [one] => one.to_string(),
                _ => {
                    return Err(err(
                        w,
                        format!(
                            "has {} .dist-info directories ({}); expected one for `{dist}`",
                            many.len(),
                            many.join(", ")
                        ),
                        None,
                    ))
                }
            }
        }
    };
    let (info_name, info_ver) = info_dir.trim_end_matches(".dist-info").rsplit_once('-').unwrap_or(("", ""));
    if normalize_name(info_name) != want {
        return Err(err(
            w,
            format!("its metadata directory `{info_dir}` is for `{}`, not `{want}`", normalize_name(info_name)),
            None,
        ));
    }
    let data_dir = format!("{}.data", info_dir.trim_end_matches(".dist-info"));

    // RECORD first: everything else is checked against it.
    let record_name = format!("{info_dir}/RECORD");
    let record_entry = zip.get(&record_name).ok_or_else(|| {
        err(w, format!("has no {record_name}"), Some("a wheel without RECORD cannot be verified; rebuild it"))
    })?;
    let record_text = String::from_utf8(zip.read_small(record_entry, None, RECORD_LIMIT)?)
        .map_err(|_| err(w, "RECORD is not UTF-8", None))?;
    let record = parse_record(w, &record_text)?;
    let expect = |e: &ZipEntry| -> Result<Option<RecordHash>, ZipError> {
        if e.name == record_name || e.name == format!("{record_name}.jws") || e.name == format!("{record_name}.p7s") {
            return Ok(None);
        }
        let row = record.get(&e.name).ok_or_else(|| {
            err(w, format!("member `{}` is not listed in RECORD", e.name), Some("installers must refuse files that RECORD does not vouch for; the wheel was modified or built incorrectly"))
        })?;
        let h = row.hash.clone().ok_or_else(|| {
            err(
                w,
                format!("member `{}` has no hash in RECORD", e.name),
                Some("every file except RECORD itself needs a sha256 hash in RECORD"),
            )
        })?;
        if let Some(s) = row.size {
            if s != e.size {
                return Err(err(
                    w,
                    format!("member `{}`: RECORD says {s} bytes, the zip directory says {}", e.name, e.size),
                    None,
                ));
            }
        }
        Ok(Some(h))
    };
    let read_meta = |name: &str| -> Result<Option<String>, ZipError> {
        let Some(e) = zip.get(&format!("{info_dir}/{name}")) else { return Ok(None) };
        let bytes = zip.read_small(e, expect(e)?.as_ref(), SMALL)?;
        String::from_utf8(bytes).map(Some).map_err(|_| err(w, format!("{info_dir}/{name} is not UTF-8"), None))
    };

    let wheel_meta = read_meta("WHEEL")?.ok_or_else(|| err(w, format!("has no {info_dir}/WHEEL"), None))?;
    let headers = parse_headers(&wheel_meta);
    let get = |k: &str| headers.iter().find(|(hk, _)| hk.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
    let wv = get("Wheel-Version").ok_or_else(|| err(w, "WHEEL has no Wheel-Version", None))?;
    if wv.split('.').next() != Some("1") {
        return Err(err(
            w,
            format!("Wheel-Version {wv} is not supported (this installer reads 1.x)"),
            Some("use a wheel built by a current tool"),
        ));
    }
    let purelib_root = match get("Root-Is-Purelib").map(str::to_ascii_lowercase).as_deref() {
        Some("true") => true,
        Some("false") | None => false,
        Some(other) => return Err(err(w, format!("WHEEL has Root-Is-Purelib: {other}; expected true or false"), None)),
    };

    let metadata = read_meta("METADATA")?.ok_or_else(|| err(w, format!("has no {info_dir}/METADATA"), None))?;
    let mh = parse_headers(&metadata);
    let meta_name = mh.iter().find(|(k, _)| k.eq_ignore_ascii_case("Name")).map(|(_, v)| v.clone()).unwrap_or_default();
    let meta_version =
        mh.iter().find(|(k, _)| k.eq_ignore_ascii_case("Version")).map(|(_, v)| v.clone()).unwrap_or_default();
    if normalize_name(&meta_name) != want {
        return Err(err(w, format!("METADATA says Name: {meta_name}, but the wheel file is for `{dist}`"), None));
    }
    let same = |a: &str, b: &str| match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    };
    if !same(&meta_version, version) || !same(info_ver, version) {
        return Err(err(w, format!("METADATA says Version: {meta_version} and the metadata directory is `{info_dir}`, but the wheel file says {version}"), None));
    }
    let header = |k: &str| {
        mh.iter()
            .find(|(hk, _)| hk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let license = header("License-Expression")
        .or_else(|| header("License").filter(|l| !l.contains('\n') && l.len() <= 100 && l != "UNKNOWN"));
    let requires_dist =
        mh.iter().filter(|(k, _)| k.eq_ignore_ascii_case("Requires-Dist")).map(|(_, v)| v.clone()).collect();

    let eps = parse_entry_points(&read_meta("entry_points.txt")?.unwrap_or_default());
    let mut launchers: BTreeMap<String, (String, String)> = BTreeMap::new();
    for section in ["console_scripts", "gui_scripts"] {
        for (name, value) in eps.get(section).map(Vec::as_slice).unwrap_or_default() {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(err(w, format!("entry point name `{name}` in [{section}] is not a valid file name"), None));
            }
            let interpreter_name = scheme.interpreter.rsplit('/').next().unwrap_or_default();
            if name == "python" || name == "python3" || name == interpreter_name {
                return Err(err(
                    w,
                    format!("entry point `{name}` would replace the Python interpreter's own command"),
                    Some("this wheel cannot be installed into a system Python"),
                ));
            }
            let target = value.split('[').next().unwrap_or("").trim();
            let (module, attr) = target
                .split_once(':')
                .map(|(m, a)| (m.trim(), a.trim()))
                .filter(|(m, a)| !m.is_empty() && !a.is_empty())
                .ok_or_else(|| {
                    err(w, format!("entry point `{name} = {value}` has no callable (expected `module:function`)"), None)
                })?;
            let ident =
                |s: &str| s.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
            if !ident(module) || !ident(attr) {
                return Err(err(w, format!("entry point `{name} = {value}` is not `module:function`"), None));
            }
            if launchers.insert(name.clone(), (module.to_string(), attr.to_string())).is_some() {
                return Err(err(w, format!("entry point `{name}` is declared twice"), None));
            }
        }
    }

    let root = if purelib_root { &scheme.purelib } else { &scheme.platlib };
    let mut out = Out { entries: Vec::new(), record: BTreeMap::new() };
    for e in &zip.entries {
        if e.is_dir() {
            continue;
        }
        if e.name == record_name {
            continue;
        }
        let member = TreePath::from_archive_member(&e.name).map_err(|p| {
            err(
                w,
                format!("member {p}"),
                Some("a member path must stay inside the install directory; this wheel is malicious or broken"),
            )
        })?;
        let hash = expect(e)?;
        // Destination.
        let (dest_root, rel, kind): (TreePath, String, &str) = match e.name.split_once('/') {
            Some((top, rest)) if top == data_dir => {
                let (key, sub) = rest.split_once('/').unwrap_or((rest, ""));
                if sub.trim_matches('/').is_empty() {
                    continue;
                }
                let base = match key {
                    "purelib" => scheme.purelib.clone(),
                    "platlib" => scheme.platlib.clone(),
                    "scripts" => scheme.scripts.clone(),
                    "data" => scheme.data.clone(),
                    "headers" => scheme.headers.join(&meta_name).map_err(|p| err(w, format!("distribution name {p}"), None))?,
                    other => return Err(err(w, format!("member `{}` is in `{data_dir}/{other}/`; `{other}` is not a wheel data directory (purelib, platlib, scripts, headers, data)", e.name), None)),
                };
                (base, sub.to_string(), key)
            }
            _ => (root.clone(), member.as_str().to_string(), "root"),
        };
        let dest = dest_root.join(&rel).map_err(|p| {
            err(
                w,
                format!("member {p}"),
                Some("a member path must stay inside the install directory; this wheel is malicious or broken"),
            )
        })?;
        if e.is_symlink() {
            let target = String::from_utf8(zip.read_small(e, hash.as_ref(), 4096)?)
                .map_err(|_| err(w, format!("symlink `{}` has a non-UTF-8 target", e.name), None))?;
            let parent = dest.parent().unwrap_or_else(|| dest.clone());
            let inside = !target.starts_with('/')
                && normalize_dots(&format!("{}/{}", parent.as_str(), target))
                    .is_some_and(|r| r.starts_with(&format!("{}/", dest_root.as_str())));
            let escapes = !inside;
            if escapes {
                return Err(err(
                    w,
                    format!("member `{}` is a symlink to `{target}`, which points outside {dest_root}", e.name),
                    Some("symlinks in wheels must stay inside the directory they are installed into"),
                ));
            }
            out.record
                .insert(dest.clone(), (hash.as_ref().map(|h| h.text.clone()).unwrap_or_default(), e.size.to_string()));
            out.entries.push((dest, Entry::symlink(target, &origin)));
            continue;
        }
        if kind == "scripts" {
            let name = dest.file_name();
            let stem = name
                .strip_suffix(".exe")
                .or_else(|| name.strip_suffix("-script.py"))
                .or_else(|| name.strip_suffix(".pya"))
                .unwrap_or(name);
            if launchers.contains_key(stem) {
                continue; // setuptools' own wrapper for an entry point: the launcher replaces it (pip's rule)
            }
            let bytes = zip.read_small(e, hash.as_ref(), SMALL)?;
            if bytes.starts_with(b"#!python") {
                let rest = match bytes.iter().position(|&b| b == b'\n') {
                    Some(i) => &bytes[i + 1..],
                    None => &[][..],
                };
                let mut new = format!("#!{}\n", scheme.interpreter).into_bytes();
                new.extend_from_slice(rest);
                out.bytes(dest, new, 0o755, &origin);
            } else {
                let h = hash.as_ref().map(|h| h.text.clone()).unwrap_or_default();
                out.record.insert(dest.clone(), (h, bytes.len().to_string()));
                out.entries.push((dest, Entry::bytes(bytes, 0o755, &origin)));
            }
            continue;
        }
        let mode = if e.is_executable() { 0o755 } else { 0o644 };
        let sha = hash.as_ref().and_then(RecordHash::sha256);
        out.record
            .insert(dest.clone(), (hash.as_ref().map(|h| h.text.clone()).unwrap_or_default(), e.size.to_string()));
        let content = Content::Source(Arc::new(ZipMember { file: zip.file.clone(), entry: e.clone(), expect: hash }));
        let mut entry = Entry::file(content, e.size, mode, &origin);
        if let Kind::File { sha256, .. } = &mut entry.kind {
            *sha256 = sha;
        }
        out.entries.push((dest, entry));
    }

    for (name, (module, attr)) in &launchers {
        let path = scheme.scripts.join(name).map_err(|p| err(w, format!("entry point {p}"), None))?;
        out.bytes(path, launcher(&scheme.interpreter, module, attr).into_bytes(), 0o755, &origin);
    }
    let info = root.join(&info_dir).map_err(|p| err(w, format!("metadata directory {p}"), None))?;
    let join = |n: &str| info.join(n).unwrap_or_else(|_| unreachable!("constant name"));
    out.bytes(join("INSTALLER"), format!("{}\n", scheme.installer).into_bytes(), 0o644, &origin);
    if opts.requested {
        out.bytes(join("REQUESTED"), Vec::new(), 0o644, &origin);
    }
    let record_path = join("RECORD");
    let mut rows: Vec<String> =
        out.record.iter().map(|(p, (h, s))| format!("{},{},{}", csv_field(&relpath(root, p)), h, s)).collect();
    rows.push(format!("{},,", csv_field(&relpath(root, &record_path))));
    rows.sort();
    let mut text = rows.join("\n");
    text.push('\n');
    out.entries.push((record_path, Entry::bytes(text.into_bytes(), 0o644, &origin)));
    Ok(InstalledWheel { entries: out.entries, name: meta_name, version: meta_version, requires_dist, license })
}

/// Lexically resolves `.` and `..`; `None` when `..` climbs above the start.
fn normalize_dots(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relpaths_climb_out_of_site_packages() {
        let s = Scheme::debian((3, 11));
        let p = |x: &str| TreePath::from_image_path(x).unwrap();
        assert_eq!(relpath(&s.purelib, &p("/usr/local/bin/jupyter")), "../../../bin/jupyter");
        assert_eq!(
            relpath(&s.purelib, &p("/usr/local/lib/python3.11/dist-packages/torch/__init__.py")),
            "torch/__init__.py"
        );
        assert_eq!(
            relpath(&s.purelib, &p("/usr/local/include/python3.11/demo/x.h")),
            "../../../include/python3.11/demo/x.h"
        );
    }

    #[test]
    fn launcher_matches_pip() {
        assert_eq!(
            launcher("/usr/bin/python3.11", "demo.sub", "obj.attr"),
            "#!/usr/bin/python3.11\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom demo.sub import obj\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(obj.attr())\n"
        );
    }

    #[test]
    fn csv_and_headers() {
        assert_eq!(parse_csv_line("a,\"b,c\",\"d\"\"e\"").unwrap(), vec!["a", "b,c", "d\"e"]);
        assert!(parse_csv_line("\"a,b").is_none());
        assert_eq!(csv_field("x,y"), "\"x,y\"");
        let h = parse_headers("Name: torch\nVersion: 2.9.0\nRequires-Dist: filelock\n\nbody: no");
        assert_eq!(h.len(), 3);
        let ep = parse_entry_points(
            "[console_scripts]\ntorchrun = torch.distributed.run:main\n# c\n[gui_scripts]\ng = a:b\n",
        );
        assert_eq!(ep["console_scripts"], vec![("torchrun".to_string(), "torch.distributed.run:main".to_string())]);
        assert_eq!(ep["gui_scripts"].len(), 1);
    }
}
