//! Image specs: strict YAML loading with `file:line:col` errors and fix-it
//! hints, `include:` resolution, and checks that need more than one field.
//!
//! YAML is read with `serde_norway`, a maintained fork of the deprecated
//! `serde_yaml` with the same serde model and error locations; a second,
//! event-level parse (`yaml-rust2`) maps node paths to positions for the
//! checks that run after deserialisation.

mod locate;
pub mod types;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use types::*;

/// A spec problem, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// The offending source line.
    pub snippet: Option<String>,
}

impl std::error::Error for SpecError {}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((l, c)) => write!(f, "{}:{}:{}: {}", self.file.display(), l, c, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let (Some(snippet), Some((line, col))) = (&self.snippet, self.location) {
            let num = line.to_string();
            let pad = " ".repeat(num.len());
            write!(f, "\n{pad} |\n{num} | {snippet}\n{pad} | {}^", " ".repeat(col.saturating_sub(1)))?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl SpecError {
    fn new(
        file: &Path,
        text: Option<&str>,
        location: Option<(usize, usize)>,
        message: String,
        hint: Option<String>,
    ) -> SpecError {
        let snippet = match (text, location) {
            (Some(t), Some((l, _))) => t.lines().nth(l.saturating_sub(1)).map(|s| s.to_string()),
            _ => None,
        };
        SpecError { file: file.to_path_buf(), location, message, hint, snippet }
    }
}

/// One layer entry after includes were expanded, with the file it came from.
#[derive(Debug, Clone)]
pub struct ResolvedLayer {
    /// The entry.
    pub entry: LayerEntry,
    /// Directory that relative paths in the entry are resolved against.
    pub base_dir: PathBuf,
    /// The spec or layer file that holds it.
    pub file: PathBuf,
    /// Its node path in that file, e.g. `layers[2]`.
    pub node: String,
}

impl ResolvedLayer {
    /// A name for messages and history: the entry's `name`, else file and node.
    pub fn display_name(&self) -> String {
        match &self.entry.name {
            Some(n) => n.clone(),
            None => format!(
                "{}#{}",
                self.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                self.node
            ),
        }
    }

    /// Resolves a path relative to the file that names it.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.base_dir.join(rel)
    }
}

/// A loaded, checked image spec.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The spec file.
    pub path: PathBuf,
    /// The parsed spec (its `layers` still hold `include:` entries).
    pub spec: ImageSpec,
    /// Layers with includes expanded, bottom first.
    pub layers: Vec<ResolvedLayer>,
    /// Every file read (spec and layer files) with its text, in load order.
    pub sources: Vec<(PathBuf, String)>,
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Loads an image spec and everything it includes.
pub fn load(path: &Path) -> Result<LoadedSpec, SpecError> {
    let text = read(path)?;
    let spec: ImageSpec = parse(path, &text)?;
    let index = locate::index(&text);
    let mut sources = vec![(path.to_path_buf(), text.clone())];
    let mut layers = Vec::new();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut stack = vec![canonical(path)];
    expand(path, &text, &index, &base, &spec.layers, &mut layers, &mut sources, &mut stack)?;
    check_image(path, &text, &index, &spec)?;
    if layers.is_empty() {
        return Err(SpecError::new(
            path,
            Some(&text),
            locate::find(&index, "layers"),
            "the image has no layers".into(),
            Some("add at least one entry under `layers:` (files, dirs, tarball, debs, ... or an include)".into()),
        ));
    }
    Ok(LoadedSpec { path: path.to_path_buf(), spec, layers, sources })
}

fn canonical(p: &Path) -> PathBuf {
    fs_err::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn read(path: &Path) -> Result<String, SpecError> {
    fs_err::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            Some("check the path; relative paths in specs are resolved against the file that names them".to_string())
        } else {
            None
        };
        SpecError::new(path, None, None, format!("cannot read: {}", crate::error::os_message(&e)), hint)
    })
}

/// Parses YAML text into `T` with located errors and hints.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, SpecError> {
    serde_norway::from_str::<T>(text).map_err(|e| {
        let location = e.location().map(|l| (l.line(), l.column()));
        let message = strip_position(&e.to_string());
        let hint = hint_for(&message);
        SpecError::new(path, Some(text), location, message, hint)
    })
}

/// Removes the " at line L column C" fragment (the location is shown separately).
fn strip_position(message: &str) -> String {
    if let Some(i) = message.find(" at line ") {
        let tail = &message[i + " at line ".len()..];
        let after_line = tail.trim_start_matches(|c: char| c.is_ascii_digit());
        if let Some(col) = after_line.strip_prefix(" column ") {
            let rest = col.trim_start_matches(|c: char| c.is_ascii_digit());
            return format!("{}{}", &message[..i], rest);
        }
    }
    message.to_string()
}

/// Suggests the nearest known key for "unknown field" errors.
fn hint_for(message: &str) -> Option<String> {
    if let Some(rest) = message.split("missing field `").nth(1) {
        let field = rest.split('`').next().unwrap_or_default();
        return Some(format!("`{field}` is required here; docs/spec.md lists every field"));
    }
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let best = expected
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3));
    Some(match best {
        Some((_, k)) => format!("did you mean `{k}`?"),
        None => {
            format!("valid keys here: {}", expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn expand(
    file: &Path,
    text: &str,
    index: &HashMap<String, (usize, usize)>,
    base: &Path,
    entries: &[LayerEntry],
    out: &mut Vec<ResolvedLayer>,
    sources: &mut Vec<(PathBuf, String)>,
    stack: &mut Vec<PathBuf>,
) -> Result<(), SpecError> {
    for (i, entry) in entries.iter().enumerate() {
        let node = format!("layers[{i}]");
        let err = |sub: &str, message: String, hint: Option<String>| {
            let p = if sub.is_empty() { node.clone() } else { format!("{node}.{sub}") };
            SpecError::new(file, Some(text), locate::find(index, &p), message, hint)
        };
        if let Some(inc) = &entry.include {
            if entry.has_sources() || entry.name.is_some() {
                return Err(err(
                    "include",
                    "`include:` cannot be combined with other keys in one layer entry".into(),
                    Some("put the other keys in a separate entry under `layers:`".into()),
                ));
            }
            let inc_path = base.join(inc);
            let canon = canonical(&inc_path);
            if stack.contains(&canon) {
                return Err(err("include", format!("include cycle: {} includes itself", inc_path.display()), None));
            }
            if stack.len() >= MAX_INCLUDE_DEPTH {
                return Err(err("include", format!("includes nest deeper than {MAX_INCLUDE_DEPTH} levels"), None));
            }
            let inc_text = match fs_err::read_to_string(&inc_path) {
                Ok(t) => t,
                Err(e) => {
                    return Err(err(
                        "include",
                        format!("cannot read included file {}: {}", inc_path.display(), crate::error::os_message(&e)),
                        Some("include paths are relative to the file that names them".into()),
                    ))
                }
            };
            let lf: LayerFile = parse(&inc_path, &inc_text)?;
            let inc_index = locate::index(&inc_text);
            sources.push((inc_path.clone(), inc_text.clone()));
            let inc_base = inc_path.parent().map(Path::to_path_buf).unwrap_or_default();
            stack.push(canon);
            expand(&inc_path, &inc_text, &inc_index, &inc_base, &lf.layers, out, sources, stack)?;
            stack.pop();
            continue;
        }
        if !entry.has_sources() {
            return Err(err("", "this layer entry has no source".into(),
                Some("give it `files`, `dirs`, `symlinks`, `tarball`, `accounts`, `debs` or `python`, or `include:` a layer file".into())));
        }
        check_entry(entry, base).map_err(|(sub, m, h)| err(&sub, m, h))?;
        out.push(ResolvedLayer { entry: entry.clone(), base_dir: base.to_path_buf(), file: file.to_path_buf(), node });
    }
    Ok(())
}

type Problem = (String, String, Option<String>);

fn check_entry(entry: &LayerEntry, base: &Path) -> Result<(), Problem> {
    for (i, f) in entry.files.iter().enumerate() {
        let given =
            [f.content.is_some(), f.content_base64.is_some(), f.source.is_some()].iter().filter(|b| **b).count();
        if given != 1 {
            return Err((
                format!("files[{i}]"),
                format!("file {} needs exactly one of `content`, `content_base64`, `source` ({given} given)", f.path.0),
                Some("use `content` for text, `content_base64` for binary data, `source` for a local file".into()),
            ));
        }
        if let Some(b) = &f.content_base64 {
            if let Err(e) = decode_base64(b) {
                return Err((
                    format!("files[{i}].content_base64"),
                    format!("invalid base64 for {}: {e}", f.path.0),
                    None,
                ));
            }
        }
        if let Some(src) = &f.source {
            let p = base.join(src);
            if !p.is_file() {
                return Err((
                    format!("files[{i}].source"),
                    format!("local file {} (for {}) does not exist or is not a regular file", p.display(), f.path.0),
                    Some("`source` is relative to the spec file that names it".into()),
                ));
            }
        }
    }
    if let Some(t) = &entry.tarball {
        match (&t.url, &t.path) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(("tarball".into(), "a tarball needs exactly one of `url` and `path`".into(), None));
            }
            (Some(url), None) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err((
                        "tarball.url".into(),
                        format!("`{url}` is not an http(s) URL"),
                        Some("use `path:` for local files".into()),
                    ));
                }
                if t.sha256.is_none() {
                    return Err((
                        "tarball".into(),
                        format!("the tarball {url} has no `sha256`"),
                        Some("downloads are pinned by hash; add `sha256: <hex>` (e.g. from `sha256sum FILE`)".into()),
                    ));
                }
            }
            (None, Some(p)) => {
                if !base.join(p).is_file() {
                    return Err((
                        "tarball.path".into(),
                        format!("local tarball {} does not exist", base.join(p).display()),
                        Some("`path` is relative to the spec file that names it".into()),
                    ));
                }
            }
        }
        if let Some(o) = &t.owner {
            if parse_owner(o).is_none() {
                return Err((
                    "tarball.owner".into(),
                    format!("owner `{o}` is not `uid:gid`"),
                    Some("e.g. `owner: \"0:0\"`".into()),
                ));
            }
        }
    }
    if let Some(py) = &entry.python {
        if !entry.files.is_empty()
            || !entry.dirs.is_empty()
            || !entry.symlinks.is_empty()
            || entry.tarball.is_some()
            || entry.accounts.is_some()
        {
            return Err((
                "python".into(),
                "`python:` makes several layers and must be the only source of its layer entry".into(),
                Some("move the other sources to their own entry under `layers:`".into()),
            ));
        }
        crate::sources::python::check_spec(py).map_err(|(sub, m, h)| {
            (if sub.is_empty() { "python".to_string() } else { format!("python.{sub}") }, m, h)
        })?;
    }
    if let Some(a) = &entry.accounts {
        let mut names = std::collections::BTreeSet::new();
        for (i, u) in a.users.iter().enumerate() {
            if !valid_account_name(&u.name) {
                return Err((
                    format!("accounts.users[{i}].name"),
                    format!("`{}` is not a valid user name", u.name),
                    Some("use lower-case letters, digits, `_` and `-`, starting with a letter or `_`".into()),
                ));
            }
            if !names.insert(("u", u.name.clone())) {
                return Err((format!("accounts.users[{i}].name"), format!("user `{}` is defined twice", u.name), None));
            }
        }
        for (i, g) in a.groups.iter().enumerate() {
            if !valid_account_name(&g.name) {
                return Err((
                    format!("accounts.groups[{i}].name"),
                    format!("`{}` is not a valid group name", g.name),
                    None,
                ));
            }
            if !names.insert(("g", g.name.clone())) {
                return Err((
                    format!("accounts.groups[{i}].name"),
                    format!("group `{}` is defined twice", g.name),
                    None,
                ));
            }
        }
    }
    Ok(())
}

fn check_image(
    path: &Path,
    text: &str,
    index: &HashMap<String, (usize, usize)>,
    spec: &ImageSpec,
) -> Result<(), SpecError> {
    let err =
        |node: &str, m: String, h: Option<String>| SpecError::new(path, Some(text), locate::find(index, node), m, h);
    if let Some(p) = &spec.platform {
        if parse_platform(p).is_none() {
            return Err(err(
                "platform",
                format!("platform `{p}` is not `os/arch[/variant]`"),
                Some("e.g. `linux/amd64`".into()),
            ));
        }
    }
    if let Some(c) = &spec.compression {
        let comp = crate::compress::Compression::new(
            c.algorithm,
            c.level.unwrap_or_else(|| crate::compress::Compression::default_level(c.algorithm)),
        );
        comp.validate().map_err(|m| err("compression.level", m.to_string(), None))?;
    }
    if let Some(cfg) = &spec.config {
        for (i, port) in cfg.ports.iter().enumerate() {
            if parse_port(port).is_none() {
                return Err(err(
                    &format!("config.ports[{i}]"),
                    format!("port `{port}` is not `NUMBER[/tcp|/udp|/sctp]`"),
                    None,
                ));
            }
        }
        for k in cfg.env.keys() {
            if k.is_empty() || k.contains('=') {
                return Err(err(
                    &format!("config.env.{k}"),
                    format!("environment variable name `{k}` is empty or contains `=`"),
                    None,
                ));
            }
        }
    }
    if let Some(gpu) = &spec.gpu {
        let cuda_ok = gpu.cuda.split('.').count() == 2
            && gpu.cuda.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !cuda_ok {
            return Err(err(
                "gpu.cuda",
                format!("CUDA version `{}` is not MAJOR.MINOR", gpu.cuda),
                Some("e.g. `cuda: \"12.8\"` (quoted, or YAML reads 12.10 as 12.1)".into()),
            ));
        }
        if let Some(v) = &gpu.verify {
            if !["quick", "full", "warn", "off"].contains(&v.as_str()) {
                return Err(err(
                    "gpu.verify",
                    format!("`{v}` is not a verify policy"),
                    Some("use quick, full, warn or off".into()),
                ));
            }
        }
        for (i, a) in gpu.arch.iter().flatten().enumerate() {
            let ok = a.strip_prefix("sm_").map(|n| {
                let n = n.strip_suffix('a').unwrap_or(n);
                n.len() >= 2 && n.bytes().all(|b| b.is_ascii_digit())
            });
            if ok != Some(true) {
                return Err(err(
                    &format!("gpu.arch[{i}]"),
                    format!("`{a}` is not a compute capability like `sm_80` or `sm_90`"),
                    None,
                ));
            }
        }
    }
    if let Some(tag) = &spec.tag {
        if !valid_tag(tag) {
            return Err(err(
                "tag",
                format!("`{tag}` is not a valid tag"),
                Some("tags are up to 128 characters of [A-Za-z0-9_.-], not starting with `.` or `-`".into()),
            ));
        }
    }
    Ok(())
}

/// `os/arch[/variant]`.
pub fn parse_platform(p: &str) -> Option<(String, String, Option<String>)> {
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Some((os.to_string(), arch.to_string(), None)),
        [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
            Some((os.to_string(), arch.to_string(), Some(v.to_string())))
        }
        _ => None,
    }
}

/// `8888`, `8888/tcp`, `53/udp` → canonical `8888/tcp`.
pub fn parse_port(p: &str) -> Option<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let n: u16 = num.parse().ok()?;
    if n == 0 || !["tcp", "udp", "sctp"].contains(&proto) {
        return None;
    }
    Some(format!("{n}/{proto}"))
}

/// `uid:gid`.
pub fn parse_owner(o: &str) -> Option<(u32, u32)> {
    let (u, g) = o.split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

/// OCI tag grammar.
pub use crate::oci::valid_tag;

fn valid_account_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && n.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub use crate::encoding::decode as decode_base64;

/// The JSON Schema of image specs, as committed in `docs/spec.schema.json`.
pub fn image_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ImageSpec)).unwrap_or_default()
}

/// The JSON Schema of layer files, as committed in `docs/layer.schema.json`.
pub fn layer_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(LayerFile)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("a$==").is_err());
    }

    #[test]
    fn unknown_key_hint_suggests_the_nearest() {
        let h =
            hint_for("layers[0]: unknown field `fils`, expected one of `include`, `name`, `files`, `dirs`").unwrap();
        assert_eq!(h, "did you mean `files`?");
        let h = hint_for("unknown field `zzzzzz`, expected `a` or `b`").unwrap();
        assert_eq!(h, "valid keys here: `a`, `b`");
    }

    #[test]
    fn ports_and_tags() {
        assert_eq!(parse_port("8888").as_deref(), Some("8888/tcp"));
        assert_eq!(parse_port("53/udp").as_deref(), Some("53/udp"));
        assert!(parse_port("0").is_none() && parse_port("80/xyz").is_none());
        assert!(valid_tag("2.9.0-cu128") && !valid_tag("-x") && !valid_tag("a b"));
    }
}
