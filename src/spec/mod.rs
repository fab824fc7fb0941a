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
    /// The offending source line (at most [`SNIPPET_CHARS`] of it around
    /// the column) and the column of the caret within that excerpt.
    pub snippet: Option<(String, usize)>,
}

impl std::error::Error for SpecError {}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((l, c)) => write!(f, "{}:{}:{}: {}", self.file.display(), l, c, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let (Some((snippet, col)), Some((line, _))) = (&self.snippet, self.location) {
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
            (Some(t), Some((l, c))) => t.lines().nth(l.saturating_sub(1)).map(|s| excerpt(s, c)),
            _ => None,
        };
        // Messages may quote a value of the file: one line, and not long.
        let message = clip(&crate::report::one_line(&message), MAX_MESSAGE_CHARS);
        SpecError { file: file.to_path_buf(), location, message, hint, snippet }
    }
}

/// The longest message text (a quoted value is cut beyond it).
const MAX_MESSAGE_CHARS: usize = 300;
/// The widest part of an offending line that is shown.
const SNIPPET_CHARS: usize = 120;

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// At most [`SNIPPET_CHARS`] of `line` around column `col` (1-based, in
/// characters), control characters escaped; returns the excerpt and the
/// column within it. The column stays pointing at the same character.
fn excerpt(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let c = col.saturating_sub(1).min(chars.len());
    let start = c.saturating_sub(SNIPPET_CHARS / 2);
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut shown = String::new();
    let mut col_in = 1;
    if start > 0 {
        shown.push('…');
        col_in += 1;
    }
    for (i, ch) in chars[start..end].iter().enumerate() {
        let piece: String = if ch.is_control() && *ch != '\t' { ch.escape_default().collect() } else { ch.to_string() };
        if start + i < c {
            col_in += piece.chars().count();
        }
        shown.push_str(&piece);
    }
    if end < chars.len() {
        shown.push('…');
    }
    (shown, col_in)
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
    /// The build context (canonical): host files the entry names must be in it.
    pub context: PathBuf,
    /// The architecture of the image it is built into: its `.deb`s, wheels
    /// and ELF files are checked against it.
    pub arch: crate::platform::Arch,
}

impl LoadedSpec {
    /// The architecture the image is built for (`platform:`, default
    /// linux/amd64; the first of `platforms:`).
    pub fn arch(&self) -> crate::platform::Arch {
        let p = self.spec.platform.as_deref().or(self.spec.platforms.first().map(String::as_str));
        p.and_then(|p| crate::platform::Arch::of_platform(p).ok()).unwrap_or_default()
    }

    /// The platforms the spec builds for, as written (one for `platform:`).
    pub fn platforms(&self) -> Vec<String> {
        if self.spec.platforms.is_empty() {
            vec![self.spec.platform.clone().unwrap_or_else(|| crate::platform::Arch::Amd64.platform().to_string())]
        } else {
            self.spec.platforms.clone()
        }
    }

    /// True for a spec with `platforms:` (an index, even of one platform).
    pub fn is_multi_platform(&self) -> bool {
        !self.spec.platforms.is_empty()
    }

    /// The lock file: `SPEC.lock`, or `SPEC.<os>-<arch>.lock` for one
    /// platform of a multi-platform spec.
    pub fn lock_path(&self) -> PathBuf {
        self.lock_file.clone().unwrap_or_else(|| crate::lockfile::lock_path(&self.path))
    }

    /// The spec for one of its `platforms:`, as if it said `platform: P`,
    /// locked in `SPEC.<os>-<arch>.lock`; a `python:` entry with
    /// `requirements:` takes its pins from its own pylock for P
    /// ([`crate::sources::python::platform_pylock`]).
    pub fn for_platform(&self, platform: &str) -> Result<LoadedSpec, SpecError> {
        let arch = crate::platform::Arch::of_platform(platform)
            .map_err(|m| SpecError::new(&self.path, None, None, m, None))?;
        if !self.platforms().iter().any(|p| p == platform) {
            return Err(SpecError::new(
                &self.path,
                None,
                None,
                format!("the spec does not build for {platform}"),
                Some(format!("its platforms: {}", self.platforms().join(", "))),
            ));
        }
        let mut s = self.clone();
        if !self.is_multi_platform() {
            return Ok(s);
        }
        s.spec.platform = Some(platform.to_string());
        s.spec.platforms = Vec::new();
        let suffix = platform.replace('/', "-");
        for l in &mut s.layers {
            if let Some(d) = &mut l.entry.debs {
                d.arch = None;
            }
            // Requirements are resolved for each platform into its own pylock.
            if let Some(py) = &mut l.entry.python {
                if !py.requirements.is_empty() {
                    py.lock = crate::sources::python::platform_pylock(&py.lock, &suffix);
                }
            }
            set_arch(l, arch).map_err(|m| SpecError::new(&self.path, None, None, m, None))?;
        }
        s.lock_file = Some(self.path.with_extension(format!("{suffix}.lock")));
        Ok(s)
    }
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

    /// Resolves a path relative to the file that names it (as written, for
    /// messages; use [`ResolvedLayer::host_file`] to read it).
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.base_dir.join(rel)
    }

    /// The regular file `rel` names, relative to the file that names it,
    /// confined to the build context ([`crate::hostfs`]).
    pub fn host_file(&self, rel: &str) -> Result<PathBuf, crate::hostfs::HostPathError> {
        crate::hostfs::resolve(&self.context, &self.base_dir, rel)
    }

    /// The directory `rel` names, confined to the build context as
    /// [`ResolvedLayer::host_file`] confines files.
    pub fn host_dir(&self, rel: &str) -> Result<PathBuf, crate::hostfs::HostPathError> {
        crate::hostfs::resolve_dir(&self.context, &self.base_dir, rel)
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
    /// The build context (canonical).
    pub context: PathBuf,
    /// The lock file, when it is not `SPEC.lock` (one platform of a
    /// multi-platform spec: `SPEC.<os>-<arch>.lock`).
    pub lock_file: Option<PathBuf>,
}

const MAX_INCLUDE_DEPTH: usize = 16;
/// The largest spec or layer file read, in bytes.
pub const MAX_SPEC_FILE_BYTES: u64 = 4 << 20;
/// The most bytes of spec and layer files one spec may read in all.
pub const MAX_SPEC_TOTAL_BYTES: u64 = 8 << 20;
/// The deepest YAML nesting (mappings and sequences) accepted.
pub const MAX_YAML_DEPTH: usize = 64;
/// The most `include:` entries one spec may expand, counting repeats.
pub const MAX_INCLUDES: usize = 256;

/// How a spec is loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The build context: host files the spec names must be inside it.
    /// Default: the directory of the spec file.
    pub context: Option<PathBuf>,
}

/// Loads an image spec and everything it includes, with the spec's
/// directory as the build context.
pub fn load(path: &Path) -> Result<LoadedSpec, SpecError> {
    load_with(path, &LoadOptions::default())
}

/// Running totals of one load, checked against the limits as files are read.
struct Budget {
    bytes: u64,
    includes: usize,
    context: PathBuf,
}

/// Loads an image spec and everything it includes.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<LoadedSpec, SpecError> {
    let ctx_dir = match &opts.context {
        Some(c) => c.clone(),
        None => path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf(),
    };
    let context = crate::hostfs::context_dir(&ctx_dir).map_err(|e| {
        SpecError::new(
            &ctx_dir,
            None,
            None,
            format!("build context: {e}"),
            Some("`--context` names a directory".into()),
        )
    })?;
    let mut budget = Budget { bytes: 0, includes: 0, context };
    let text = read(path, &mut budget)?;
    let spec: ImageSpec = parse(path, &text)?;
    let index = locate::index(&text);
    let mut sources = vec![(path.to_path_buf(), text.clone())];
    let mut layers = Vec::new();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut stack = vec![canonical(path)];
    expand(path, &text, &index, &base, &spec.layers, &mut layers, &mut sources, &mut stack, &mut budget)?;
    check_image(path, &text, &index, &spec)?;
    let first = spec.platform.as_deref().or(spec.platforms.first().map(String::as_str));
    let arch = first.map(crate::platform::Arch::of_platform).transpose().ok().flatten().unwrap_or_default();
    for l in &mut layers {
        if spec.platforms.len() > 1 && l.entry.debs.as_ref().is_some_and(|d| d.arch.is_some()) {
            return Err(SpecError::new(
                &l.file,
                None,
                None,
                format!("layer `{}`: `debs.arch` cannot be given in a spec for several platforms", l.display_name()),
                Some("leave it out: each platform's image takes its own architecture".into()),
            ));
        }
        set_arch(l, arch).map_err(|m| {
            let (ltext, lindex) = match sources.iter().find(|(p, _)| *p == l.file) {
                Some((_, t)) => (t.as_str(), locate::index(t)),
                None => (text.as_str(), index.clone()),
            };
            SpecError::new(
                &l.file,
                Some(ltext),
                locate::find(&lindex, &format!("{}.debs.arch", l.node)),
                m,
                Some("leave `arch:` out: a `debs:` entry takes the image platform's architecture".into()),
            )
        })?;
    }
    if layers.is_empty() {
        return Err(SpecError::new(
            path,
            Some(&text),
            locate::find(&index, "layers"),
            "the image has no layers".into(),
            Some("add at least one entry under `layers:` (files, dirs, tarball, debs, ... or an include)".into()),
        ));
    }
    Ok(LoadedSpec { path: path.to_path_buf(), spec, layers, sources, context: budget.context, lock_file: None })
}

/// The checksum of a spec as parsed, recorded in every image as the
/// manifest annotation `dev.strata.spec.sha256` (provenance; the lock does
/// not use it): the spec file and every included layer file, each turned
/// into canonical JSON (so comments, key order, quoting style and line
/// endings do not matter), with its path relative to the spec.
pub fn checksum(spec: &LoadedSpec) -> Result<crate::digest::Digest, SpecError> {
    let base = spec.path.parent().unwrap_or(Path::new(""));
    let mut text = String::from("strata-spec-v1\n");
    for (i, (path, source)) in spec.sources.iter().enumerate() {
        let value: serde_json::Value = parse(path, source)?;
        let canon =
            crate::oci::canonical::to_vec(&value).map_err(|e| SpecError::new(path, None, None, e.to_string(), None))?;
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
    Ok(crate::digest::Digest::of(text.as_bytes()))
}

fn canonical(p: &Path) -> PathBuf {
    fs_err::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Reads a spec or layer file: a regular file, within the size limits.
fn read(path: &Path, budget: &mut Budget) -> Result<String, SpecError> {
    let cannot = |e: crate::hostfs::HostPathError| {
        SpecError::new(path, None, None, format!("cannot read: {e}"), Some(e.hint().to_string()))
    };
    let left = MAX_SPEC_TOTAL_BYTES.saturating_sub(budget.bytes);
    let bytes = crate::hostfs::read_bounded(path, MAX_SPEC_FILE_BYTES.min(left), "a spec or layer file").map_err(
        |e| match e {
            crate::hostfs::HostPathError::TooLarge { size, .. } if MAX_SPEC_FILE_BYTES > left => SpecError::new(
                path,
                None,
                None,
                format!(
                    "the spec and the files it includes exceed {MAX_SPEC_TOTAL_BYTES} bytes in all (this one has {size})"
                ),
                Some("large inline content belongs in a file named by `source:`".into()),
            ),
            crate::hostfs::HostPathError::TooLarge { size, .. } => SpecError::new(
                path,
                None,
                None,
                format!("the file is {size} bytes; spec and layer files may have at most {MAX_SPEC_FILE_BYTES}"),
                Some("large inline content belongs in a file named by `source:`".into()),
            ),
            other => cannot(other),
        },
    )?;
    budget.bytes += bytes.len() as u64;
    let text = String::from_utf8(bytes).map_err(|e| {
        SpecError::new(path, None, None, format!("the file is not UTF-8 (byte {})", e.utf8_error().valid_up_to()), None)
    })?;
    check_depth(path, &text)?;
    Ok(text)
}

/// Refuses YAML nested deeper than [`MAX_YAML_DEPTH`], before any parser
/// that could take super-linear time or stack on it sees the text: a pass
/// of the event parser, which stops at the first node too deep.
fn check_depth(path: &Path, text: &str) -> Result<(), SpecError> {
    let too_deep = |line: usize, col: usize| {
        SpecError::new(
            path,
            Some(text),
            Some((line, col)),
            format!("the YAML nests deeper than {MAX_YAML_DEPTH} levels"),
            Some("specs need only a few levels; check the indentation and brackets".into()),
        )
    };
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((ev, mark)) => match ev {
                yaml_rust2::Event::MappingStart(..) | yaml_rust2::Event::SequenceStart(..) => {
                    depth += 1;
                    if depth > MAX_YAML_DEPTH {
                        return Err(too_deep(mark.line(), mark.col() + 1));
                    }
                }
                yaml_rust2::Event::MappingEnd | yaml_rust2::Event::SequenceEnd => depth = depth.saturating_sub(1),
                yaml_rust2::Event::StreamEnd => return Ok(()),
                _ => {}
            },
            // The event parser stops deep flow nesting itself; other syntax
            // errors are reported by the deserialiser, with its words.
            Err(e) if e.info().contains("recursion limit") => {
                return Err(too_deep(e.marker().line(), e.marker().col() + 1))
            }
            Err(_) => return Ok(()),
        }
    }
}

/// Parses YAML text into `T` with located errors and hints.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, SpecError> {
    serde_norway::from_str::<T>(text).map_err(|e| {
        let mut location = e.location().map(|l| (l.line(), l.column()));
        let message = strip_position(&e.to_string());
        if message.contains("duplicate") {
            if let Some((key, line, col)) = locate::first_duplicate(text) {
                location = Some((line, col));
                let hint = Some(format!("`{key}` appears twice in one mapping; keep one"));
                return SpecError::new(path, Some(text), location, message, hint);
            }
        }
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
    budget: &mut Budget,
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
            budget.includes += 1;
            if budget.includes > MAX_INCLUDES {
                return Err(err(
                    "include",
                    format!(
                        "the spec expands more than {MAX_INCLUDES} includes (counting each time a file is included)"
                    ),
                    Some("include each layer file once; includes that include each other multiply".into()),
                ));
            }
            let inc_path = base.join(inc);
            let canon = match crate::hostfs::resolve(&budget.context, base, inc) {
                Ok(c) => c,
                Err(e) => return Err(err("include", format!("cannot include {inc}: {e}"), Some(e.hint().to_string()))),
            };
            if stack.contains(&canon) {
                return Err(err("include", format!("include cycle: {} includes itself", inc_path.display()), None));
            }
            if stack.len() >= MAX_INCLUDE_DEPTH {
                return Err(err("include", format!("includes nest deeper than {MAX_INCLUDE_DEPTH} levels"), None));
            }
            let inc_text = read(&canon, budget).map_err(|mut e| {
                e.file = inc_path.clone();
                e
            })?;
            let lf: LayerFile = parse(&inc_path, &inc_text)?;
            let inc_index = locate::index(&inc_text);
            sources.push((inc_path.clone(), inc_text.clone()));
            let inc_base = inc_path.parent().map(Path::to_path_buf).unwrap_or_default();
            stack.push(canon);
            expand(&inc_path, &inc_text, &inc_index, &inc_base, &lf.layers, out, sources, stack, budget)?;
            stack.pop();
            continue;
        }
        if !entry.has_sources() {
            return Err(err("", "this layer entry has no source".into(),
                Some("give it `files`, `dirs`, `symlinks`, `copy`, `tarball`, `accounts`, `debs`, `python`, `bytecode` or `ca_certificates`, or `include:` a layer file".into())));
        }
        if out.len() >= crate::sources::python::layering::MAX_IMAGE_LAYERS {
            return Err(err(
                "",
                format!(
                    "the spec has more than {} layer entries; an image has at most that many layers",
                    crate::sources::python::layering::MAX_IMAGE_LAYERS
                ),
                Some("merge layer entries".into()),
            ));
        }
        check_entry(entry, base, &budget.context).map_err(|(sub, m, h)| err(&sub, m, h))?;
        out.push(ResolvedLayer {
            entry: entry.clone(),
            base_dir: base.to_path_buf(),
            file: file.to_path_buf(),
            node,
            context: budget.context.clone(),
            arch: crate::platform::Arch::default(),
        });
    }
    Ok(())
}

type Problem = (String, String, Option<String>);

/// Points a layer at the image's architecture: its `debs:` take the
/// platform's Debian architecture; one that names another is an error.
fn set_arch(l: &mut ResolvedLayer, arch: crate::platform::Arch) -> Result<(), String> {
    l.arch = arch;
    if let Some(d) = &mut l.entry.debs {
        match d.arch.as_deref() {
            Some(a) if a != arch.deb() => {
                return Err(format!(
                    "`debs.arch: {a}` does not fit the image platform {arch} (Debian architecture `{}`)",
                    arch.deb()
                ))
            }
            _ => d.arch = Some(arch.deb().to_string()),
        }
    }
    Ok(())
}

fn check_entry(entry: &LayerEntry, base: &Path, context: &Path) -> Result<(), Problem> {
    for (i, s) in entry.symlinks.iter().enumerate() {
        if s.path.0.len() > 1 && s.path.0.ends_with('/') {
            return Err((
                format!("symlinks[{i}].path"),
                format!("symlink path `{}` ends with `/`", s.path.0),
                Some(format!("write it without the slash: `{}`", s.path.0.trim_end_matches('/'))),
            ));
        }
    }
    for (i, f) in entry.files.iter().enumerate() {
        if f.path.0.ends_with('/') {
            return Err((
                format!("files[{i}].path"),
                format!("file path `{}` ends with `/`, which names a directory", f.path.0),
                Some("give the file's own name (e.g. `/etc/motd`); directories go under `dirs:`".into()),
            ));
        }
        if let Some(t) = f.mtime {
            if t > MAX_EPOCH {
                return Err((format!("files[{i}].mtime"), epoch_message("mtime", t), None));
            }
        }
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
            if let Err(e) = crate::hostfs::resolve(context, base, src) {
                return Err((
                    format!("files[{i}].source"),
                    format!("`source` of {}: {e}", f.path.0),
                    Some(e.hint().into()),
                ));
            }
        }
    }
    for (i, c) in entry.copy.iter().enumerate() {
        if let Err(e) = crate::hostfs::resolve_dir(context, base, &c.from) {
            return Err((format!("copy[{i}].from"), format!("copy from `{}`: {e}", c.from), Some(e.hint().into())));
        }
        for (key, globs) in [("include", &c.include), ("exclude", &c.exclude)] {
            if let Err((j, e)) = crate::sources::copy::patterns(globs) {
                return Err((
                    format!("copy[{i}].{key}[{j}]"),
                    e.to_string(),
                    Some(crate::sources::copy::GLOB_HINT.into()),
                ));
            }
        }
    }
    if let Err((j, e)) = crate::sources::copy::patterns(&entry.foreign_elf) {
        return Err((format!("foreign_elf[{j}]"), e.to_string(), Some(crate::sources::copy::GLOB_HINT.into())));
    }
    for (i, c) in entry.ca_certificates.iter().enumerate() {
        match crate::hostfs::resolve(context, base, c) {
            Err(e) => {
                return Err((format!("ca_certificates[{i}]"), format!("CA certificate: {e}"), Some(e.hint().into())))
            }
            Ok(path) => {
                crate::sources::cacerts::read_certificate(&path, c).map_err(|e| {
                    use crate::error::Hint;
                    (format!("ca_certificates[{i}]"), e.to_string(), e.hint())
                })?;
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
                if let Err(e) = crate::hostfs::resolve(context, base, p) {
                    return Err(("tarball.path".into(), format!("local tarball: {e}"), Some(e.hint().into())));
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
            || !entry.copy.is_empty()
            || !entry.ca_certificates.is_empty()
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
    if entry.bytecode.is_some() {
        let others = !entry.files.is_empty()
            || !entry.dirs.is_empty()
            || !entry.symlinks.is_empty()
            || !entry.copy.is_empty()
            || !entry.ca_certificates.is_empty()
            || entry.tarball.is_some()
            || entry.accounts.is_some()
            || entry.debs.is_some()
            || entry.python.is_some();
        if others {
            return Err((
                "bytecode".into(),
                "`bytecode:` compiles the layers below it and must be the only source of its layer entry".into(),
                Some("put `bytecode:` in an entry of its own after the layers it compiles".into()),
            ));
        }
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
        if let Err(m) = crate::platform::Arch::of_platform(p) {
            return Err(err("platform", m, Some("e.g. `linux/amd64` or `linux/arm64`".into())));
        }
        if !spec.platforms.is_empty() {
            return Err(err(
                "platforms",
                "`platform` and `platforms` cannot both be given".into(),
                Some("`platform: P` for one image, `platforms: [P, Q]` for an index".into()),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in spec.platforms.iter().enumerate() {
        let node = format!("platforms[{i}]");
        let a = crate::platform::Arch::of_platform(p)
            .map_err(|m| err(&node, m, Some("e.g. `[linux/amd64, linux/arm64]`".into())))?;
        if !seen.insert(a) {
            return Err(err(&node, format!("{p} is listed twice"), None));
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
        if let Some(h) = &cfg.healthcheck {
            let empty = match &h.test {
                HealthTest::Shell(s) => s.trim().is_empty(),
                HealthTest::Exec(v) => v.is_empty() || v.iter().all(|a| a.trim().is_empty()),
            };
            let bare_keyword =
                matches!(&h.test, HealthTest::Exec(v) if v.len() == 1 && (v[0] == "CMD" || v[0] == "CMD-SHELL"));
            if empty || bare_keyword {
                return Err(err(
                    "config.healthcheck.test",
                    "the health check has no command".into(),
                    Some("e.g. `test: [curl, -f, \"http://localhost:8888/\"]`, or `test: \"pg_isready || exit 1\"` for the shell; `[NONE]` turns checks off".into()),
                ));
            }
            for (key, value) in [
                ("interval", &h.interval),
                ("timeout", &h.timeout),
                ("start_period", &h.start_period),
                ("start_interval", &h.start_interval),
            ] {
                if let Some(v) = value {
                    if let Err(e) = crate::units::parse_duration(v) {
                        let text = e.to_string();
                        let (m, hint) = text
                            .split_once("\nhint: ")
                            .map_or((text.as_str(), None), |(m, h)| (m, Some(h.to_string())));
                        return Err(err(&format!("config.healthcheck.{key}"), format!("healthcheck {key}: {m}"), hint));
                    }
                }
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
    if let Some(e) = spec.epoch {
        if e > MAX_EPOCH {
            return Err(err("epoch", epoch_message("epoch", e), Some("e.g. `epoch: 1700000000`".into())));
        }
    }
    if !valid_name(&spec.name) {
        return Err(err(
            "name",
            format!("`{}` is not a valid image name", crate::report::one_line(&spec.name)),
            Some("names are lower-case letters and digits, with `.`, `_` or `-` between them and `/` between components (e.g. `pytorch-cuda` or `team/app`); the default output is build/NAME".into()),
        ));
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

/// The latest time an image may carry: 9999-12-31T23:59:59Z. RFC 3339 (the
/// `created` field) has four-digit years, so later times make images no tool
/// can read.
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// The message for a time past [`MAX_EPOCH`].
pub fn epoch_message(what: &str, t: u64) -> String {
    format!("{what} {t} is after the year 9999 (at most {MAX_EPOCH}); image times are RFC 3339 with four-digit years")
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

/// An image name: OCI repository components (`[a-z0-9]+` joined by `.`,
/// `_`, `__` or dashes) separated by `/`, at most 255 bytes. No component can
/// be `.` or `..` and the name cannot start with `/`, so `build/NAME` stays
/// inside `build/`.
pub fn valid_name(n: &str) -> bool {
    crate::oci::reference::valid_repository(n)
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
        for ok in ["hello", "pytorch-cuda", "team/app", "a.b_c__d--e", "x1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["../../x", "/abs", "..", ".", "a/../b", "a//b", "A", "a b", "-a", "a-", "a/", "", "a\u{1b}[2J"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
