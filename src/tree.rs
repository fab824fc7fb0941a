//! The in-memory file tree of one layer: normalised paths, sorted, each path once,
//! with the conflict rules every source obeys.
//!
//! A tree holds metadata only. File bytes stay where they are (inline for small
//! generated files, in a local file, in a spool file next to the build, or in an
//! artifact such as a wheel) until the layer writer streams them.

// Spools are anonymous temporary files (from `tempfile`) or handles of
// files already opened through `fs_err`, read with positional reads: the
// std type is the one those give. Errors name the spool's path themselves.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::{hash_reader, Digest};

/// A normalised path inside the image: relative to `/`, no `.` or `..`
/// components, no empty components, no trailing slash, valid UTF-8, no NUL,
/// at most [`MAX_PATH_BYTES`] bytes with components of at most
/// [`MAX_NAME_BYTES`] (what Linux, and so every runtime, can unpack).
///
/// A path shares its bytes with the path it was cut from: the parents of a
/// deep path cost a pointer each, not a copy of their text, so the implicit
/// directories of deep archive members do not take quadratic memory.
#[derive(Clone)]
pub struct TreePath {
    buf: Arc<str>,
    len: usize,
}

/// The longest image path accepted, in bytes (Linux's `PATH_MAX` less the NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// The longest path component accepted, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

impl PartialEq for TreePath {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for TreePath {}
impl PartialOrd for TreePath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TreePath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}
impl std::hash::Hash for TreePath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path was empty or named only the root.
    #[error("empty path")]
    Empty,
    /// The path had a `..` component.
    #[error("`{0}` contains a `..` component, which would escape the image root")]
    ParentComponent(String),
    /// An archive member had an absolute path.
    #[error("`{0}` is an absolute path; archive members must be relative")]
    Absolute(String),
    /// The path held a NUL byte.
    #[error("`{0}` contains a NUL byte")]
    Nul(String),
    /// The path is longer than a runtime can unpack.
    #[error("`{0}` is {1} bytes long; image paths may have at most {MAX_PATH_BYTES}")]
    TooLong(String, usize),
    /// A component is longer than a file name can be.
    #[error("`{0}` has a component of {1} bytes; names may have at most {MAX_NAME_BYTES}")]
    NameTooLong(String, usize),
}

/// The start of a path for messages: long hostile paths are cut and their
/// control characters escaped.
fn shown(raw: &str) -> String {
    let one = crate::report::one_line(raw);
    match one.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

impl TreePath {
    /// Parses an image path as written in a spec: `/etc/motd` and `etc/motd`
    /// both name the same file.
    pub fn from_image_path(raw: &str) -> Result<TreePath, PathError> {
        Self::normalise(raw.trim_start_matches('/'), raw)
    }

    /// Parses a member path of an archive (tar, deb, wheel). Absolute paths
    /// and `..` components are refused: they are how archives escape a root.
    /// A leading `./` is normal in tarballs and allowed.
    pub fn from_archive_member(raw: &str) -> Result<TreePath, PathError> {
        if raw.starts_with('/') {
            return Err(PathError::Absolute(shown(raw)));
        }
        Self::normalise(raw, raw)
    }

    fn normalise(rel: &str, original: &str) -> Result<TreePath, PathError> {
        if rel.contains('\0') {
            return Err(PathError::Nul(shown(original)));
        }
        let mut out = String::with_capacity(rel.len().min(MAX_PATH_BYTES + 1));
        for comp in rel.split('/') {
            match comp {
                "" | "." => continue,
                ".." => return Err(PathError::ParentComponent(shown(original))),
                c => {
                    if c.len() > MAX_NAME_BYTES {
                        return Err(PathError::NameTooLong(shown(original), c.len()));
                    }
                    if !out.is_empty() {
                        out.push('/');
                    }
                    if out.len() + c.len() > MAX_PATH_BYTES {
                        return Err(PathError::TooLong(shown(original), rel.len()));
                    }
                    out.push_str(c);
                }
            }
        }
        if out.is_empty() {
            return Err(PathError::Empty);
        }
        let len = out.len();
        Ok(TreePath { buf: Arc::from(out), len })
    }

    /// The path without a leading slash, as stored in tar headers.
    pub fn as_str(&self) -> &str {
        &self.buf[..self.len]
    }

    fn prefix(&self, len: usize) -> TreePath {
        TreePath { buf: self.buf.clone(), len }
    }

    /// The parent directory, or `None` for a top-level entry.
    pub fn parent(&self) -> Option<TreePath> {
        self.as_str().rfind('/').map(|i| self.prefix(i))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        let s = self.as_str();
        match s.rfind('/') {
            Some(i) => &s[i + 1..],
            None => s,
        }
    }

    /// Appends a relative path (which is normalised and checked).
    pub fn join(&self, rel: &str) -> Result<TreePath, PathError> {
        TreePath::normalise(&format!("{}/{}", self.as_str(), rel), rel)
    }

    /// All ancestors, outermost first (`a`, `a/b` for `a/b/c`). They share
    /// this path's bytes.
    pub fn ancestors(&self) -> impl Iterator<Item = TreePath> + '_ {
        self.as_str().match_indices('/').map(move |(i, _)| self.prefix(i))
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.as_str())
    }
}

impl std::borrow::Borrow<str> for TreePath {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.as_str())
    }
}

/// Something that can produce a file's bytes on demand. Sources with their own
/// storage (zip members of a wheel, for example) implement this.
pub trait ContentSource: Send + Sync + fmt::Debug {
    /// Opens a fresh reader positioned at the first byte.
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>>;
    /// Human-readable origin for error messages.
    fn describe(&self) -> String;
    /// The bytes as an existing raw deflate stream (a deflated zip member),
    /// which a gzip layer can carry as is instead of compressing again.
    fn raw_deflate(&self) -> io::Result<Option<RawDeflate<'_>>> {
        Ok(None)
    }
}

/// A raw deflate stream (RFC 1951, no header) that inflates to a file's bytes.
pub struct RawDeflate<'a> {
    /// The compressed bytes, exactly `compressed_size` of them.
    pub reader: Box<dyn Read + Send + 'a>,
    /// Compressed length.
    pub compressed_size: u64,
    /// CRC-32 of the inflated bytes, as recorded by the archive (checked).
    pub crc32: u32,
}

/// Where a regular file's bytes come from.
#[derive(Clone)]
pub enum Content {
    /// Bytes held in memory (small generated files, inline spec content).
    Bytes(Arc<[u8]>),
    /// A local file read when the layer is written.
    LocalFile(PathBuf),
    /// A byte range of a spool file written while reading an archive.
    Spool(SpoolRange),
    /// Anything else.
    Source(Arc<dyn ContentSource>),
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Content::LocalFile(p) => write!(f, "LocalFile({})", p.display()),
            Content::Spool(s) => write!(f, "Spool({}+{})", s.offset, s.len),
            Content::Source(s) => write!(f, "Source({})", s.describe()),
        }
    }
}

impl Content {
    /// Opens the bytes for reading.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        match self {
            Content::Bytes(b) => Ok(Box::new(&b[..])),
            // Checked again when read: a file swapped for a FIFO or a device
            // since it was planned must not block or feed the layer.
            Content::LocalFile(p) => {
                let (f, _) = crate::hostfs::open_regular(p).map_err(|e| io::Error::other(e.to_string()))?;
                Ok(Box::new(f))
            }
            Content::Spool(s) => Ok(Box::new(s.reader())),
            Content::Source(s) => s.open(),
        }
    }

    /// The bytes as a raw deflate stream, when the source has one.
    pub fn raw_deflate(&self) -> io::Result<Option<RawDeflate<'_>>> {
        match self {
            Content::Source(s) => s.raw_deflate(),
            _ => Ok(None),
        }
    }

    /// Where the bytes come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Content::Bytes(_) => "inline content".to_string(),
            Content::LocalFile(p) => p.display().to_string(),
            Content::Spool(s) => format!("{} (spooled)", s.spool.path.display()),
            Content::Source(s) => s.describe(),
        }
    }
}

/// An append-only file that holds the bytes of archive members until the layer
/// is written, so archive order and layer order can differ without holding
/// the data in memory.
///
/// An uncompressed archive needs no copy: its own file serves as the spool
/// ([`Spool::in_place`]), and members are ranges of it.
#[derive(Debug)]
pub struct Spool {
    file: File,
    path: PathBuf,
    /// A temporary file of ours, removed on drop (not an archive read in place).
    owned: bool,
}

impl Spool {
    /// Creates a spool file inside `dir` (removed when the last range is dropped).
    pub fn create_in(dir: &std::path::Path) -> io::Result<(Arc<Spool>, fs_err::File)> {
        let tmp = tempfile::Builder::new().prefix("spool-").tempfile_in(dir)?;
        let (file, path) = tmp.keep().map_err(|e| e.error)?;
        let writer = fs_err::File::from_parts(file.try_clone()?, &path);
        Ok((Arc::new(Spool { file, path, owned: true }), writer))
    }

    /// Uses an existing file (an uncompressed tar) as the spool, read through
    /// this open handle: replacing the file on disk meanwhile does not change
    /// what is read. It is never written or removed.
    pub fn in_place(file: File, path: PathBuf) -> Arc<Spool> {
        Arc::new(Spool { file, path, owned: false })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs_err::remove_file(&self.path);
        }
    }
}

/// A byte range inside a [`Spool`].
#[derive(Debug, Clone)]
pub struct SpoolRange {
    /// The spool file.
    pub spool: Arc<Spool>,
    /// First byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl SpoolRange {
    fn reader(&self) -> SpoolReader<'_> {
        SpoolReader { range: self, pos: 0 }
    }
}

struct SpoolReader<'a> {
    range: &'a SpoolRange,
    pos: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.range.len - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left as usize);
        let n = self.range.spool.file.read_at(&mut buf[..want], self.range.offset + self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("spool file {} is shorter than recorded", self.range.spool.path.display()),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The kind of a tree entry.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A directory. `implicit` directories were created as parents of other
    /// entries; explicit ones were named by a source.
    Dir {
        /// Created only as a parent.
        implicit: bool,
    },
    /// A regular file.
    File {
        /// The bytes.
        content: Content,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the bytes when the source already knows it.
        sha256: Option<Digest>,
    },
    /// A symbolic link with its target as written (absolute or relative).
    Symlink {
        /// Link target.
        target: String,
    },
    /// A hard link to another regular file of the same layer.
    Hardlink {
        /// The file it shares bytes with.
        target: TreePath,
    },
}

/// One entry of a tree.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time; `None` means the build's epoch.
    pub mtime: Option<u64>,
    /// Which source put it there, for error messages.
    pub origin: Arc<str>,
}

impl Entry {
    /// An explicit directory.
    pub fn dir(mode: u32, origin: &Arc<str>) -> Entry {
        Entry {
            kind: Kind::Dir { implicit: false },
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            mtime: None,
            origin: origin.clone(),
        }
    }
    /// A regular file.
    pub fn file(content: Content, size: u64, mode: u32, origin: &Arc<str>) -> Entry {
        Entry {
            kind: Kind::File { content, size, sha256: None },
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            mtime: None,
            origin: origin.clone(),
        }
    }
    /// A regular file held in memory.
    pub fn bytes(bytes: impl Into<Arc<[u8]>>, mode: u32, origin: &Arc<str>) -> Entry {
        let b: Arc<[u8]> = bytes.into();
        let size = b.len() as u64;
        let sha = Digest::of(&b);
        let mut e = Entry::file(Content::Bytes(b), size, mode, origin);
        if let Kind::File { sha256, .. } = &mut e.kind {
            *sha256 = Some(sha);
        }
        e
    }
    /// A symbolic link (mode 0777 as on Linux).
    pub fn symlink(target: impl Into<String>, origin: &Arc<str>) -> Entry {
        Entry {
            kind: Kind::Symlink { target: target.into() },
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: None,
            origin: origin.clone(),
        }
    }
    /// Sets the owner.
    pub fn owned(mut self, uid: u32, gid: u32) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Dir { .. } => "directory",
            Kind::File { .. } => "file",
            Kind::Symlink { .. } => "symlink",
            Kind::Hardlink { .. } => "hardlink",
        }
    }
}

/// Why an entry could not be added to a tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Two sources put different things at one path.
    #[error("conflict at {path}: {first_origin} provides a {first_kind}, {second_origin} provides a different {second_kind}{detail}\nhint: identical duplicates are allowed; to override a file on purpose, put the new version in a later layer")]
    Conflict {
        /// The path.
        path: TreePath,
        /// Origin of the entry already present.
        first_origin: String,
        /// Its type.
        first_kind: &'static str,
        /// Origin of the new entry.
        second_origin: String,
        /// Its type.
        second_kind: &'static str,
        /// What differs.
        detail: String,
    },
    /// An entry would be written through a symbolic link.
    #[error("{origin} writes {path} through the symlink {link} -> {target}; writing through links is refused because it can escape the image root or silently change another file")]
    ThroughSymlink {
        /// Entry path.
        path: TreePath,
        /// The symlink on the way.
        link: TreePath,
        /// Its target.
        target: String,
        /// The source.
        origin: String,
    },
    /// A parent of the entry is a regular file.
    #[error("{origin} writes {path}, but {parent} is not a directory")]
    NotADirectory {
        /// Entry path.
        path: TreePath,
        /// The offending parent.
        parent: TreePath,
        /// The source.
        origin: String,
    },
    /// A hard link names a file outside this layer or something that is not a file.
    #[error(
        "{origin}: hardlink {path} -> {target} points outside the layer or at something that is not a regular file"
    )]
    BadHardlink {
        /// Link path.
        path: TreePath,
        /// Its target.
        target: TreePath,
        /// The source.
        origin: String,
    },
    /// The layer has more entries than a layer may have.
    #[error("{origin}: the layer would have more than {MAX_TREE_ENTRIES} entries (files, directories and links)\nhint: split the content over several layers")]
    TooManyEntries {
        /// The source that added the entry too many.
        origin: String,
    },
    /// An entry would replace a directory link of an earlier layer.
    #[error("{origin} writes a {kind} at {path}, which replaces the symlink {path} -> {target} of layer `{layer}`; in the image the {kind} would hide everything the link leads to\nhint: write below the link's target instead (paths below {path}/ already resolve through the link), or list {path} under `replace_symlinks:` of this layer to replace the link on purpose")]
    ReplacesLink {
        /// The link's path.
        path: TreePath,
        /// Its target.
        target: String,
        /// The earlier layer that made it.
        layer: String,
        /// What would replace it.
        kind: &'static str,
        /// The source.
        origin: String,
    },
    /// Resolving a path through links went round in circles.
    #[error("{origin} writes {path}: too many levels of symbolic links (more than {MAX_LINK_HOPS}) on the way")]
    LinkLoop {
        /// The path as written.
        path: String,
        /// The source.
        origin: String,
    },
    /// A path became invalid once links were resolved.
    #[error("{origin} writes {path}: {source}")]
    Resolved {
        /// The path as written.
        path: String,
        /// The source.
        origin: String,
        /// Why the resolved path is refused.
        #[source]
        source: PathError,
    },
    /// Reading content to compare duplicates failed.
    #[error("reading {what} to compare duplicate {path}: {source}")]
    Io {
        /// The path.
        path: TreePath,
        /// What was read.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// The most entries one layer's tree may hold.
pub const MAX_TREE_ENTRIES: usize = 2_000_000;

/// The most symbolic links followed while resolving one path (Linux's limit).
pub const MAX_LINK_HOPS: usize = 40;

/// A directory link of an earlier layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerLink {
    /// The link's target, as written.
    pub target: String,
    /// The layer that made it.
    pub layer: Arc<str>,
}

/// What one layer sees of the layers below it: their symbolic links that
/// may lead to directories (links to regular files of their own layer are
/// left out). Paths of the layer resolve through them, inside the image
/// root, as a runtime resolves them when the layer's files are unpacked
/// over the lower ones: on a merged-/usr base, `/bin/x` is `/usr/bin/x`.
#[derive(Debug, Clone, Default)]
pub struct Lower {
    links: BTreeMap<TreePath, LowerLink>,
}

/// How one layer changes the links that the layers above it resolve through.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkChanges {
    /// Directory links the layer makes or retargets, as (path, target).
    #[serde(default)]
    pub set: Vec<(String, String)>,
    /// Links of lower layers that it replaces or hides.
    #[serde(default)]
    pub removed: Vec<String>,
}

impl Lower {
    /// Nothing below.
    pub fn new() -> Lower {
        Lower::default()
    }

    /// True when there are no links below.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The link at `path`, if an earlier layer made one there.
    pub fn get(&self, path: &str) -> Option<&LowerLink> {
        self.links.get(path)
    }

    /// Every link, sorted by path.
    pub fn links(&self) -> impl Iterator<Item = (&TreePath, &LowerLink)> {
        self.links.iter()
    }

    /// A digest of every (path, target): what the bytes of a layer written
    /// above these links can depend on (part of the layer cache key).
    pub fn digest(&self) -> Digest {
        let mut s = String::from("lower-links-v1\n");
        for (p, l) in &self.links {
            s.push_str(p.as_str());
            s.push('\0');
            s.push_str(&l.target);
            s.push('\n');
        }
        Digest::of(s.as_bytes())
    }

    /// Applies the changes of the layer `layer` on top.
    pub fn apply(&mut self, changes: &LinkChanges, layer: &str) -> Result<(), PathError> {
        let layer: Arc<str> = Arc::from(layer);
        for r in &changes.removed {
            self.links.remove(r.as_str());
        }
        for (p, t) in &changes.set {
            self.links.insert(TreePath::from_image_path(p)?, LowerLink { target: t.clone(), layer: layer.clone() });
        }
        Ok(())
    }

    /// True when a link is `path` itself or one of its ancestors.
    fn touches(&self, path: &str) -> bool {
        self.links.keys().any(|l| {
            let l = l.as_str();
            path.starts_with(l) && (path.len() == l.len() || path.as_bytes()[l.len()] == b'/')
        })
    }
}

/// How a path being inserted resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A member of an archive (tarball, `.deb`, wheel): through the links of
    /// earlier layers only; writing through a link of its own layer is refused.
    Archive,
    /// A path the spec names: through every link, as `mkdir -p` or `cp` would.
    Spec,
}

/// A layer's file tree.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<TreePath, Entry>,
    /// The links of the layers below.
    lower: Arc<Lower>,
    /// Links below that this layer may replace (`replace_symlinks:`).
    replace: Arc<std::collections::BTreeSet<TreePath>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// An empty tree for a layer above `lower`, allowed to replace the links
    /// in `replace` with other entries.
    pub fn above(lower: Arc<Lower>, replace: std::collections::BTreeSet<TreePath>) -> Tree {
        Tree { entries: BTreeMap::new(), lower, replace: Arc::new(replace) }
    }

    /// The links of the layers below this one.
    pub fn lower(&self) -> &Lower {
        &self.lower
    }

    /// Number of entries (implicit directories included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks an entry up.
    pub fn get(&self, path: &TreePath) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Entries in layer order: sorted by path bytes, so parents come first.
    pub fn iter(&self) -> impl Iterator<Item = (&TreePath, &Entry)> {
        self.entries.iter()
    }

    /// Adds an entry, creating missing parents as implicit directories
    /// (0755, root-owned).
    ///
    /// Rules: a directory named twice merges (an explicit one's attributes
    /// replace an implicit one's; between two explicit ones the later wins);
    /// identical files, symlinks or hardlinks named twice are kept once;
    /// anything else at one path is a [`TreeError::Conflict`]. Nothing may be
    /// written below a symlink or a file.
    ///
    /// This is how archive members are added: parents resolve through the
    /// directory links of earlier layers ([`Lower`]), never through a link
    /// of this layer ([`TreeError::ThroughSymlink`]), and replacing a link
    /// of an earlier layer with anything but a link is refused unless the
    /// layer says so ([`TreeError::ReplacesLink`]).
    pub fn insert(&mut self, path: TreePath, entry: Entry) -> Result<(), TreeError> {
        self.insert_via(path, entry, Via::Archive)
    }

    /// Adds an entry whose path the spec names (`files:`, `dirs:`,
    /// `symlinks:`, `copy:`, accounts): parents resolve through every link,
    /// this layer's and earlier layers', inside the image root, and a
    /// directory's own path does too (as `mkdir -p` would). Otherwise as
    /// [`Tree::insert`].
    pub fn insert_spec(&mut self, path: TreePath, entry: Entry) -> Result<(), TreeError> {
        self.insert_via(path, entry, Via::Spec)
    }

    fn insert_via(&mut self, path: TreePath, mut entry: Entry, via: Via) -> Result<(), TreeError> {
        let follow_last = via == Via::Spec && matches!(entry.kind, Kind::Dir { .. });
        let path = self.resolve(&path, via, follow_last, &entry.origin)?;
        if let Kind::Hardlink { target } = &entry.kind {
            let target = self.resolve(target, Via::Archive, false, &entry.origin)?;
            entry.kind = Kind::Hardlink { target };
        }
        if !matches!(entry.kind, Kind::Symlink { .. }) && !self.entries.contains_key(&path) {
            if let Some(link) = self.lower.get(path.as_str()) {
                if !self.replace.contains(&path) {
                    return Err(TreeError::ReplacesLink {
                        target: link.target.clone(),
                        layer: link.layer.to_string(),
                        kind: entry.type_name(),
                        origin: entry.origin.to_string(),
                        path,
                    });
                }
            }
        }
        if self.entries.len() >= MAX_TREE_ENTRIES && !self.entries.contains_key(&path) {
            return Err(TreeError::TooManyEntries { origin: entry.origin.to_string() });
        }
        // Every ancestor of an entry exists and is a directory: find the
        // deepest existing ancestor and create only the missing ones below
        // it, so a deep path costs its new parents, not its depth, each time.
        let ancestors: Vec<TreePath> = path.ancestors().collect();
        let first_missing = ancestors.iter().rposition(|a| self.entries.contains_key(a)).map_or(0, |i| i);
        for anc in ancestors.into_iter().skip(first_missing) {
            match self.entries.get(&anc) {
                None => {
                    self.entries.insert(
                        anc,
                        Entry {
                            kind: Kind::Dir { implicit: true },
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            mtime: None,
                            origin: entry.origin.clone(),
                        },
                    );
                }
                Some(Entry { kind: Kind::Dir { .. }, .. }) => {}
                Some(Entry { kind: Kind::Symlink { target }, .. }) => {
                    return Err(TreeError::ThroughSymlink {
                        path: path.clone(),
                        link: anc.clone(),
                        target: target.clone(),
                        origin: entry.origin.to_string(),
                    })
                }
                Some(_) => {
                    return Err(TreeError::NotADirectory {
                        path: path.clone(),
                        parent: anc.clone(),
                        origin: entry.origin.to_string(),
                    })
                }
            }
        }
        let Some(existing) = self.entries.get_mut(&path) else {
            self.entries.insert(path, entry);
            return Ok(());
        };
        match (&existing.kind, &entry.kind) {
            (Kind::Dir { implicit: old_implicit }, Kind::Dir { implicit: new_implicit }) => {
                if !*new_implicit || *old_implicit {
                    let keep_explicit = !*old_implicit || !*new_implicit;
                    *existing = entry;
                    existing.kind = Kind::Dir { implicit: !keep_explicit };
                }
                Ok(())
            }
            _ => {
                let detail = same_entry(&path, existing, &entry)?;
                match detail {
                    None => Ok(()),
                    Some(detail) => Err(TreeError::Conflict {
                        path,
                        first_origin: existing.origin.to_string(),
                        first_kind: existing.type_name(),
                        second_origin: entry.origin.to_string(),
                        second_kind: entry.type_name(),
                        detail,
                    }),
                }
            }
        }
    }

    /// Where `path` lands once links are followed, inside the image root
    /// (`..` stops at `/`, absolute targets start again at `/`). Archive
    /// paths follow only the links of earlier layers; spec paths follow
    /// this layer's too. The last component is followed only with
    /// `follow_last`.
    fn resolve(&self, path: &TreePath, via: Via, follow_last: bool, origin: &str) -> Result<TreePath, TreeError> {
        if via == Via::Archive && !self.lower.touches(path.as_str()) {
            return Ok(path.clone());
        }
        let (todo, last) = match path.parent() {
            _ if follow_last => (path.as_str(), None),
            Some(parent) => (&path.as_str()[..parent.as_str().len()], Some(path.file_name())),
            None => return Ok(path.clone()),
        };
        let mut done = self.follow(todo, via, path, origin)?;
        if let Some(last) = last {
            if !done.is_empty() {
                done.push('/');
            }
            done.push_str(last);
        }
        if done == path.as_str() {
            return Ok(path.clone());
        }
        TreePath::from_image_path(&done).map_err(|source| TreeError::Resolved {
            path: path.to_string(),
            origin: origin.to_string(),
            source,
        })
    }

    /// Follows the links on the way of the relative path `raw` (components
    /// may include `.` and `..`) and returns where it leads, without a
    /// leading slash (empty for the root).
    fn follow(&self, raw: &str, via: Via, shown: &TreePath, origin: &str) -> Result<String, TreeError> {
        let mut todo: std::collections::VecDeque<String> = raw.split('/').map(str::to_string).collect();
        let mut done = String::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    done.truncate(done.rfind('/').unwrap_or(0));
                    continue;
                }
                _ => {}
            }
            let len = done.len();
            if !done.is_empty() {
                done.push('/');
            }
            done.push_str(&c);
            let target = match self.entries.get(done.as_str()) {
                Some(Entry { kind: Kind::Symlink { target }, .. }) if via == Via::Spec => Some(target.clone()),
                Some(_) => None,
                None if self.replace.contains(done.as_str()) => None,
                None => self.lower.get(&done).map(|l| l.target.clone()),
            };
            if let Some(target) = target {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(TreeError::LinkLoop { path: shown.to_string(), origin: origin.to_string() });
                }
                done.truncate(len);
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target.split('/').rev() {
                    todo.push_front(t.to_string());
                }
            }
        }
        Ok(done)
    }

    /// How this layer changes the links later layers resolve through: the
    /// links it makes that may lead to a directory (a link that leads to a
    /// regular file of this layer cannot be written through), and the
    /// links of earlier layers it replaces or hides.
    pub fn link_changes(&self) -> LinkChanges {
        let mut changes = LinkChanges::default();
        for (p, e) in &self.entries {
            match &e.kind {
                Kind::Symlink { target } => {
                    if self.may_lead_to_dir(p, target) {
                        changes.set.push((p.as_str().to_string(), target.clone()));
                    } else if self.lower.get(p.as_str()).is_some() {
                        changes.removed.push(p.as_str().to_string());
                    }
                }
                _ => {
                    if self.lower.get(p.as_str()).is_some() {
                        changes.removed.push(p.as_str().to_string());
                    }
                }
            }
        }
        // A lower link below something that is not a directory here is hidden.
        for (l, _) in self.lower.links() {
            if changes.removed.iter().any(|r| r == l.as_str()) {
                continue;
            }
            let hidden =
                l.ancestors().any(|a| self.entries.get(&a).is_some_and(|e| !matches!(e.kind, Kind::Dir { .. })));
            if hidden {
                changes.removed.push(l.as_str().to_string());
            }
        }
        changes
    }

    /// False when the link at `path` leads to a regular file (or a hard
    /// link) of this tree; true when it leads to a directory, to nothing
    /// here (it may be a directory of an earlier layer), or round in circles.
    fn may_lead_to_dir(&self, path: &TreePath, target: &str) -> bool {
        let raw = match (target.starts_with('/'), path.parent()) {
            (true, _) | (false, None) => target.to_string(),
            (false, Some(parent)) => format!("{}/{target}", parent.as_str()),
        };
        match self.follow(&raw, Via::Spec, path, "") {
            Ok(end) => !matches!(
                self.entries.get(end.as_str()).map(|e| &e.kind),
                Some(Kind::File { .. } | Kind::Hardlink { .. })
            ),
            Err(_) => true,
        }
    }

    /// Checks that every hard link names a regular file of this tree.
    pub fn check_hardlinks(&self) -> Result<(), TreeError> {
        for (path, e) in &self.entries {
            if let Kind::Hardlink { target } = &e.kind {
                match self.entries.get(target) {
                    Some(Entry { kind: Kind::File { .. }, .. }) => {}
                    _ => {
                        return Err(TreeError::BadHardlink {
                            path: path.clone(),
                            target: target.clone(),
                            origin: e.origin.to_string(),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves every entry of `other` into this tree with the usual rules.
    pub fn merge(&mut self, other: Tree) -> Result<(), TreeError> {
        for (p, e) in other.entries {
            self.insert(p, e)?;
        }
        Ok(())
    }

    /// Removes an entry (and nothing else).
    pub fn remove(&mut self, path: &TreePath) -> Option<Entry> {
        self.entries.remove(path)
    }

    /// Total bytes of regular files.
    pub fn file_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match &e.kind {
                Kind::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }
}

/// `None` when two non-directory entries are the same, else what differs.
fn same_entry(path: &TreePath, a: &Entry, b: &Entry) -> Result<Option<String>, TreeError> {
    let mut diffs = Vec::new();
    match (&a.kind, &b.kind) {
        (Kind::File { content: ca, size: sa, sha256: ha }, Kind::File { content: cb, size: sb, sha256: hb }) => {
            if sa != sb {
                diffs.push(format!("size {sa} vs {sb}"));
            } else {
                let da = match ha {
                    Some(d) => *d,
                    None => content_digest(path, ca)?,
                };
                let db = match hb {
                    Some(d) => *d,
                    None => content_digest(path, cb)?,
                };
                if da != db {
                    diffs.push(format!("content {da} vs {db}"));
                }
            }
        }
        (Kind::Symlink { target: ta }, Kind::Symlink { target: tb }) => {
            if ta != tb {
                diffs.push(format!("target `{ta}` vs `{tb}`"));
            }
        }
        (Kind::Hardlink { target: ta }, Kind::Hardlink { target: tb }) => {
            if ta != tb {
                diffs.push(format!("target {ta} vs {tb}"));
            }
        }
        _ => diffs.push(format!("{} vs {}", a.type_name(), b.type_name())),
    }
    if a.mode != b.mode {
        diffs.push(format!("mode {:04o} vs {:04o}", a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        diffs.push(format!("owner {}:{} vs {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if diffs.is_empty() {
        Ok(None)
    } else {
        Ok(Some(format!(" ({})", diffs.join(", "))))
    }
}

fn content_digest(path: &TreePath, c: &Content) -> Result<Digest, TreeError> {
    let r = c.open().map_err(|source| TreeError::Io { path: path.clone(), what: c.describe(), source })?;
    hash_reader(r).map(|(d, _)| d).map_err(|source| TreeError::Io { path: path.clone(), what: c.describe(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn paths_normalise_and_refuse_escapes() {
        assert_eq!(TreePath::from_image_path("/usr//bin/./x/").unwrap().as_str(), "usr/bin/x");
        assert_eq!(TreePath::from_archive_member("./a/b").unwrap().as_str(), "a/b");
        assert!(matches!(TreePath::from_archive_member("/etc/passwd"), Err(PathError::Absolute(_))));
        assert!(matches!(TreePath::from_archive_member("a/../../b"), Err(PathError::ParentComponent(_))));
        assert!(matches!(TreePath::from_image_path("/"), Err(PathError::Empty)));
    }

    #[test]
    fn sorted_order_puts_parents_first() {
        let mut t = Tree::new();
        let origin = o("test");
        for p in ["a-c", "a/b", "a.d/e", "a/b/c"] {
            t.insert(TreePath::from_image_path(p).unwrap(), Entry::bytes(&b"x"[..], 0o644, &origin)).ok();
        }
        let order: Vec<_> = t.iter().map(|(p, _)| p.as_str().to_string()).collect();
        for (i, p) in order.iter().enumerate() {
            for anc in TreePath::from_image_path(p).unwrap().ancestors() {
                let j = order.iter().position(|q| q == anc.as_str()).unwrap();
                assert!(j < i, "{anc} must come before {p}");
            }
        }
    }

    #[test]
    fn identical_duplicates_are_kept_once_and_different_ones_conflict() {
        let mut t = Tree::new();
        let p = TreePath::from_image_path("nvidia/__init__.py").unwrap();
        t.insert(p.clone(), Entry::bytes(&b""[..], 0o644, &o("wheel a"))).unwrap();
        t.insert(p.clone(), Entry::bytes(&b""[..], 0o644, &o("wheel b"))).unwrap();
        let err = t.insert(p, Entry::bytes(&b"x"[..], 0o644, &o("wheel c"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("wheel a") && msg.contains("wheel c") && msg.contains("size 0 vs 1"), "{msg}");
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let mut t = Tree::new();
        t.insert(TreePath::from_image_path("escape").unwrap(), Entry::symlink("../../etc", &o("tarball"))).unwrap();
        let err = t
            .insert(TreePath::from_image_path("escape/passwd").unwrap(), Entry::bytes(&b"x"[..], 0o644, &o("tarball")))
            .unwrap_err();
        assert!(matches!(err, TreeError::ThroughSymlink { .. }), "{err}");
    }

    #[test]
    fn explicit_directory_attributes_replace_implicit_ones() {
        let mut t = Tree::new();
        let origin = o("t");
        t.insert(TreePath::from_image_path("tmp/x").unwrap(), Entry::bytes(&b""[..], 0o644, &origin)).unwrap();
        t.insert(TreePath::from_image_path("tmp").unwrap(), Entry::dir(0o1777, &origin)).unwrap();
        let e = t.get(&TreePath::from_image_path("tmp").unwrap()).unwrap();
        assert_eq!(e.mode, 0o1777);
        assert!(matches!(e.kind, Kind::Dir { implicit: false }));
        // A later implicit creation does not reset it.
        t.insert(TreePath::from_image_path("tmp/y").unwrap(), Entry::bytes(&b""[..], 0o644, &origin)).unwrap();
        assert_eq!(t.get(&TreePath::from_image_path("tmp").unwrap()).unwrap().mode, 0o1777);
    }

    #[test]
    fn paths_are_bounded_and_parents_share_their_bytes() {
        let deep = "a/".repeat(2000) + "f";
        let p = TreePath::from_archive_member(&deep).unwrap();
        let mut t = Tree::new();
        t.insert(p.clone(), Entry::bytes(&b""[..], 0o644, &o("t"))).unwrap();
        assert_eq!(t.len(), 2001);
        // Every implicit parent is a prefix of the one buffer: no copies.
        for (k, _) in t.iter() {
            assert!(Arc::ptr_eq(&k.buf, &p.buf), "{} has its own copy", k.as_str().len());
        }
        // A sibling deep below creates only its own new parent.
        let q = TreePath::from_archive_member(&("a/".repeat(2000) + "g/h")).unwrap();
        t.insert(q, Entry::bytes(&b""[..], 0o644, &o("t"))).unwrap();
        assert_eq!(t.len(), 2003);
        assert!(matches!(TreePath::from_archive_member(&"a/".repeat(2049)), Err(PathError::TooLong(..))));
        assert!(matches!(TreePath::from_image_path(&"n".repeat(256)), Err(PathError::NameTooLong(..))));
        assert!(TreePath::from_image_path(&"n".repeat(255)).is_ok());
    }

    fn merged_usr_below() -> Arc<Lower> {
        let mut base = Tree::new();
        let o = o("os");
        base.insert(TreePath::from_image_path("usr/bin/sh").unwrap(), Entry::bytes(&b"sh"[..], 0o755, &o)).unwrap();
        base.insert(TreePath::from_image_path("usr/lib").unwrap(), Entry::dir(0o755, &o)).unwrap();
        base.insert(TreePath::from_image_path("bin").unwrap(), Entry::symlink("usr/bin", &o)).unwrap();
        base.insert(TreePath::from_image_path("lib").unwrap(), Entry::symlink("/usr/lib", &o)).unwrap();
        base.insert(TreePath::from_image_path("usr/bin/python3").unwrap(), Entry::symlink("sh", &o)).unwrap();
        base.insert(TreePath::from_image_path("etc/mtab").unwrap(), Entry::symlink("../proc/self/mounts", &o)).unwrap();
        let mut lower = Lower::new();
        lower.apply(&base.link_changes(), "os").unwrap();
        Arc::new(lower)
    }

    fn paths(t: &Tree) -> Vec<String> {
        t.iter().map(|(p, e)| format!("{} {}", p.as_str(), e.type_name())).collect()
    }

    #[test]
    fn lower_links_are_directory_links_only() {
        let lower = merged_usr_below();
        let links: Vec<_> = lower.links().map(|(p, l)| format!("{} -> {}", p.as_str(), l.target)).collect();
        // usr/bin/python3 leads to a file of its layer: nothing can be written through it.
        assert_eq!(links, ["bin -> usr/bin", "etc/mtab -> ../proc/self/mounts", "lib -> /usr/lib"]);
    }

    #[test]
    fn paths_resolve_through_directory_links_of_earlier_layers() {
        let lower = merged_usr_below();
        let mut t = Tree::above(lower.clone(), Default::default());
        let origin = o("app");
        t.insert_spec(TreePath::from_image_path("bin/hello").unwrap(), Entry::bytes(&b"x"[..], 0o755, &origin))
            .unwrap();
        // An archive member too, and a hard link to it.
        t.insert(TreePath::from_image_path("lib/x/a.so").unwrap(), Entry::bytes(&b"y"[..], 0o644, &origin)).unwrap();
        let hl = Entry {
            kind: Kind::Hardlink { target: TreePath::from_image_path("lib/x/a.so").unwrap() },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: None,
            origin: origin.clone(),
        };
        t.insert(TreePath::from_image_path("lib/x/b.so").unwrap(), hl).unwrap();
        t.check_hardlinks().unwrap();
        // A directory the spec names at a link is the link's target (`mkdir -p /bin`).
        t.insert_spec(TreePath::from_image_path("bin").unwrap(), Entry::dir(0o755, &origin)).unwrap();
        assert_eq!(
            paths(&t),
            [
                "usr directory",
                "usr/bin directory",
                "usr/bin/hello file",
                "usr/lib directory",
                "usr/lib/x directory",
                "usr/lib/x/a.so file",
                "usr/lib/x/b.so hardlink"
            ]
        );
        let changes = t.link_changes();
        assert!(changes.set.is_empty() && changes.removed.is_empty(), "{changes:?}");
    }

    #[test]
    fn replacing_a_directory_link_of_an_earlier_layer_is_refused_unless_listed() {
        let lower = merged_usr_below();
        let origin = o("tarball rootfs.tar");
        let mut t = Tree::above(lower.clone(), Default::default());
        let err = t.insert(TreePath::from_image_path("bin").unwrap(), Entry::dir(0o755, &origin)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TreeError::ReplacesLink { .. }), "{msg}");
        assert!(msg.contains("/bin -> usr/bin") && msg.contains("layer `os`") && msg.contains("rootfs.tar"), "{msg}");
        let err = t
            .insert_spec(TreePath::from_image_path("lib").unwrap(), Entry::bytes(&b""[..], 0o644, &origin))
            .unwrap_err();
        assert!(matches!(err, TreeError::ReplacesLink { kind: "file", .. }), "{err}");
        // A link may replace a link.
        t.insert(TreePath::from_image_path("lib").unwrap(), Entry::symlink("usr/lib64", &origin)).unwrap();

        let replace = [TreePath::from_image_path("bin").unwrap()].into_iter().collect();
        let mut t = Tree::above(lower.clone(), replace);
        t.insert(TreePath::from_image_path("bin/tool").unwrap(), Entry::bytes(&b""[..], 0o755, &origin)).unwrap();
        t.insert(TreePath::from_image_path("bin").unwrap(), Entry::dir(0o755, &origin)).unwrap();
        assert_eq!(paths(&t), ["bin directory", "bin/tool file"]);
        let mut next = (*lower).clone();
        next.apply(&t.link_changes(), "tools").unwrap();
        assert!(next.get("bin").is_none() && next.get("lib").is_some());
    }

    #[test]
    fn spec_paths_follow_links_of_their_own_layer_inside_the_root() {
        let mut t = Tree::new();
        let origin = o("spec");
        t.insert(TreePath::from_image_path("usr/bin").unwrap(), Entry::dir(0o755, &origin)).unwrap();
        t.insert(TreePath::from_image_path("bin").unwrap(), Entry::symlink("usr/bin", &origin)).unwrap();
        t.insert(TreePath::from_image_path("up").unwrap(), Entry::symlink("../../../opt", &origin)).unwrap();
        t.insert_spec(TreePath::from_image_path("bin/x").unwrap(), Entry::bytes(&b""[..], 0o644, &origin)).unwrap();
        // `..` stops at the root: the link cannot lead out of the image.
        t.insert_spec(TreePath::from_image_path("up/y").unwrap(), Entry::bytes(&b""[..], 0o644, &origin)).unwrap();
        assert!(t.get(&TreePath::from_image_path("usr/bin/x").unwrap()).is_some());
        assert!(t.get(&TreePath::from_image_path("opt/y").unwrap()).is_some());
        // Archive members still may not write through their own layer's links.
        let err =
            t.insert(TreePath::from_image_path("bin/z").unwrap(), Entry::bytes(&b""[..], 0o644, &origin)).unwrap_err();
        assert!(matches!(err, TreeError::ThroughSymlink { .. }), "{err}");
        t.insert(TreePath::from_image_path("a").unwrap(), Entry::symlink("b", &origin)).unwrap();
        t.insert(TreePath::from_image_path("b").unwrap(), Entry::symlink("a", &origin)).unwrap();
        let err = t
            .insert_spec(TreePath::from_image_path("a/f").unwrap(), Entry::bytes(&b""[..], 0o644, &origin))
            .unwrap_err();
        assert!(matches!(err, TreeError::LinkLoop { .. }), "{err}");
    }

    #[test]
    fn hardlink_outside_layer_is_refused() {
        let mut t = Tree::new();
        let origin = o("t");
        t.insert(
            TreePath::from_image_path("l").unwrap(),
            Entry {
                kind: Kind::Hardlink { target: TreePath::from_image_path("missing").unwrap() },
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: None,
                origin,
            },
        )
        .unwrap();
        assert!(matches!(t.check_hardlinks(), Err(TreeError::BadHardlink { .. })));
    }
}
