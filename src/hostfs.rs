//! Host files a spec names, confined and bounded.
//!
//! Every host path a spec (or a file it includes, or a lock it names)
//! refers to — `include:`, `files: source:`, `tarball: path:`, `python:
//! lock:`, local wheels in a pylock, `debs: keyring:` — is resolved here:
//!
//! - inside the **build context**, a directory (the spec's own directory
//!   unless `--context DIR` says otherwise). The path is resolved with every
//!   symlink followed, and the result must still be inside the context, so a
//!   link cannot lead out of it; `..` and absolute paths are fine only when
//!   they stay inside.
//! - a **regular file**: directories, FIFOs, sockets and devices are refused
//!   before they are opened (opening a FIFO would block), and so is anything
//!   on a kernel pseudo-filesystem (`/proc`, `/sys`), whose "regular" files
//!   have no real size and may hold secrets such as the environment.
//! - **bounded**: files that are read into memory (specs, layer files,
//!   locks) have a size limit checked before reading, and reads never go
//!   past the size the file had when it was opened.

use fs_err::os::unix::fs::OpenOptionsExt;
use fs_err::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a host path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPathError {
    /// The path does not exist (or a component is not a directory).
    #[error("{path} does not exist")]
    Missing {
        /// The path as resolved against the naming file.
        path: PathBuf,
    },
    /// The path leads outside the build context.
    #[error("{path} is outside the build context {context}")]
    Outside {
        /// The path as resolved against the naming file.
        path: PathBuf,
        /// Where it leads once symlinks are followed.
        resolved: PathBuf,
        /// The context directory.
        context: PathBuf,
    },
    /// Not a regular file.
    #[error("{path} is {what}, not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is (`a directory`, `a FIFO`, ...).
        what: &'static str,
    },
    /// Not a directory (where one is needed).
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Larger than what may be read into memory.
    #[error("{path} is {size} bytes; at most {limit} are read for {purpose}")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// What it was read as.
        purpose: &'static str,
    },
    /// A name that is not UTF-8 (image paths are).
    #[error("{path}: the name is not valid UTF-8, which image paths must be")]
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// A directory tree with more entries than a layer may hold.
    #[error("{path} holds more than {limit} files, directories and links")]
    TooMany {
        /// The directory.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// Any other IO error.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        message: String,
    },
}

impl HostPathError {
    /// A hint for the user.
    pub fn hint(&self) -> &'static str {
        match self {
            HostPathError::Missing { .. } => {
                "check the path; relative paths are resolved against the directory of the file that names them"
            }
            HostPathError::Outside { .. } => {
                "files a spec names must be inside its build context (the spec's directory); to use files from a wider tree, pass `--context DIR` (docs/spec.md, \"Build context\")"
            }
            HostPathError::NotRegular { .. } => {
                "name a regular file; directories, FIFOs, devices and /proc or /sys files are refused"
            }
            HostPathError::TooLarge { .. } => "split the file, or see docs/security.md for the limits",
            HostPathError::NotADirectory { .. } => "name a directory; single files go under `files:` with `source:`",
            HostPathError::NotUtf8 { .. } => "rename the file, or leave it out with `exclude:`",
            HostPathError::TooMany { .. } => "copy part of the tree (`include:`/`exclude:`) or split it over several layers",
            HostPathError::Io { .. } => "check the file's permissions",
        }
    }
}

/// The canonical form of a context directory.
pub fn context_dir(dir: &Path) -> Result<PathBuf, HostPathError> {
    let c = fs_err::canonicalize(dir).map_err(|_| HostPathError::Missing { path: dir.to_path_buf() })?;
    if !c.is_dir() {
        return Err(HostPathError::NotRegular { path: c, what: "not a directory" });
    }
    Ok(c)
}

/// Resolves `rel` (relative to `base`, the directory of the file that names
/// it) inside `context` (canonical) to a regular file, following symlinks
/// only as far as they stay in the context.
pub fn resolve(context: &Path, base: &Path, rel: impl AsRef<Path>) -> Result<PathBuf, HostPathError> {
    resolve_as(context, base, rel.as_ref(), Want::File)
}

/// Resolves `rel` as [`resolve`] does, to a directory instead of a file.
pub fn resolve_dir(context: &Path, base: &Path, rel: impl AsRef<Path>) -> Result<PathBuf, HostPathError> {
    resolve_as(context, base, rel.as_ref(), Want::Dir)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    File,
    Dir,
}

fn resolve_as(context: &Path, base: &Path, rel: &Path, want: Want) -> Result<PathBuf, HostPathError> {
    let joined = base.join(rel);
    let canon = match fs_err::canonicalize(&joined) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            // Missing: say so only for a path inside the context (a path
            // outside it is refused as such, whether it exists or not).
            let inside = joined
                .ancestors()
                .skip(1)
                .find_map(|a| fs_err::canonicalize(if a.as_os_str().is_empty() { Path::new(".") } else { a }).ok())
                .is_some_and(|a| a.starts_with(context));
            if inside {
                return Err(HostPathError::Missing { path: joined });
            }
            return Err(HostPathError::Outside {
                resolved: joined.clone(),
                path: joined,
                context: context.to_path_buf(),
            });
        }
        Err(e) => return Err(HostPathError::Io { path: joined, message: crate::error::os_message(&e) }),
    };
    if !canon.starts_with(context) {
        return Err(HostPathError::Outside { path: joined, resolved: canon, context: context.to_path_buf() });
    }
    let meta = fs_err::metadata(&canon)
        .map_err(|e| HostPathError::Io { path: joined.clone(), message: crate::error::os_message(&e) })?;
    match want {
        Want::File => check_kind(&joined, &meta)?,
        Want::Dir if meta.is_dir() => {}
        Want::Dir => return Err(HostPathError::NotADirectory { path: joined }),
    }
    check_real_fs(&joined, &canon)?;
    Ok(canon)
}

/// One entry of a directory tree in the build context, found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    /// A directory.
    Dir {
        /// Its path relative to the walked directory, `/`-separated.
        rel: String,
    },
    /// A regular file.
    File {
        /// Its path relative to the walked directory.
        rel: String,
        /// Its path on the host.
        path: PathBuf,
        /// Its permission bits on the host.
        mode: u32,
    },
    /// A symbolic link, never followed: it is copied as a link.
    Symlink {
        /// Its path relative to the walked directory.
        rel: String,
        /// Its target as written.
        target: String,
    },
}

/// Lists the tree below `root` (a directory [`resolve_dir`] returned) in
/// name order, depth first, without following any symbolic link, so
/// nothing outside `root` is ever reached. `enter(rel)` says whether to
/// descend into a directory (and list it); FIFOs, sockets, devices and
/// kernel pseudo-files are refused, and so are names that are not UTF-8
/// and trees of more than `limit` entries.
pub fn walk(root: &Path, limit: usize, enter: &mut dyn FnMut(&str) -> bool) -> Result<Vec<HostEntry>, HostPathError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| HostPathError::Io { path, message: crate::error::os_message(&e) }
    };
    let mut out = Vec::new();
    // Directories still to list, deepest last: (host path, relative path).
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        check_real_fs(&dir, &dir)?;
        let mut names: Vec<std::ffi::OsString> = fs_err::read_dir(&dir)
            .map_err(io(&dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io(&dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut subdirs = Vec::new();
        for name in names {
            let path = dir.join(&name);
            let Some(name) = name.to_str() else { return Err(HostPathError::NotUtf8 { path }) };
            let child = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
            if out.len() >= limit {
                return Err(HostPathError::TooMany { path: root.to_path_buf(), limit });
            }
            let meta = fs_err::symlink_metadata(&path).map_err(io(&path))?;
            let t = meta.file_type();
            if t.is_dir() {
                if enter(&child) {
                    out.push(HostEntry::Dir { rel: child.clone() });
                    subdirs.push((path, child));
                }
            } else if t.is_symlink() {
                let target = fs_err::read_link(&path).map_err(io(&path))?;
                let Some(target) = target.to_str().map(str::to_string) else {
                    return Err(HostPathError::NotUtf8 { path });
                };
                out.push(HostEntry::Symlink { rel: child, target });
            } else if t.is_file() {
                out.push(HostEntry::File { rel: child, path, mode: meta.permissions().mode() & 0o7777 });
            } else {
                check_kind(&path, &meta)?;
            }
        }
        // Depth first, in name order: the first subdirectory is listed next.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// Resolves a file that is about to be written (it may not exist yet): its
/// directory must be inside `context`, and an existing file there must be a
/// regular file, not a link.
pub fn resolve_for_write(context: &Path, base: &Path, rel: impl AsRef<Path>) -> Result<PathBuf, HostPathError> {
    let joined = base.join(rel);
    let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) else {
        return Err(HostPathError::NotRegular { path: joined, what: "not a file name" });
    };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let dir = fs_err::canonicalize(parent).map_err(|_| HostPathError::Missing { path: parent.to_path_buf() })?;
    let path = dir.join(name);
    if !dir.starts_with(context) {
        return Err(HostPathError::Outside { path: joined, resolved: path, context: context.to_path_buf() });
    }
    match fs_err::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(HostPathError::NotRegular { path: joined, what: "a symbolic link" }),
        Ok(m) => check_kind(&joined, &m).map(|()| path),
        Err(_) => Ok(path),
    }
}

fn check_kind(path: &Path, meta: &std::fs::Metadata) -> Result<(), HostPathError> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a file"
    };
    Err(HostPathError::NotRegular { path: path.to_path_buf(), what })
}

/// Refuses files on kernel pseudo-filesystems (procfs, sysfs, ...).
fn check_real_fs(shown: &Path, path: &Path) -> Result<(), HostPathError> {
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(HostPathError::Io { path: shown.to_path_buf(), message: "the path contains a NUL byte".into() });
    }
    let Some(kind) = strata_sys::filesystem_type(path) else { return Ok(()) };
    const PSEUDO: [i64; 8] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x6462_6720, // debugfs
        0x7363_6673, // securityfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x7472_6163, // tracefs
        0xcafe_4a11, // bpf
    ];
    if PSEUDO.contains(&kind) {
        return Err(HostPathError::NotRegular { path: shown.to_path_buf(), what: "a kernel pseudo-file" });
    }
    Ok(())
}

/// Opens a regular file without blocking on a FIFO (the kind is checked on
/// the open handle), and returns it with its size. Confinement is
/// [`resolve`]'s job: callers pass paths it returned, or paths the user gave.
pub fn open_regular(path: &Path) -> Result<(File, u64), HostPathError> {
    let f = fs_err::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::NotFound => HostPathError::Missing { path: path.to_path_buf() },
            _ => HostPathError::Io { path: path.to_path_buf(), message: crate::error::os_message(&e) },
        },
    )?;
    let meta = f
        .metadata()
        .map_err(|e| HostPathError::Io { path: path.to_path_buf(), message: crate::error::os_message(&e) })?;
    check_kind(path, &meta)?;
    check_real_fs(path, path)?;
    Ok((f, meta.len()))
}

/// Reads a regular file of at most `limit` bytes (checked before reading;
/// a file that grows meanwhile is cut at `limit` and refused).
pub fn read_bounded(path: &Path, limit: u64, purpose: &'static str) -> Result<Vec<u8>, HostPathError> {
    let (f, size) = open_regular(path)?;
    if size > limit {
        return Err(HostPathError::TooLarge { path: path.to_path_buf(), size, limit, purpose });
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| HostPathError::Io { path: path.to_path_buf(), message: crate::error::os_message(&e) })?;
    if buf.len() as u64 > limit {
        return Err(HostPathError::TooLarge { path: path.to_path_buf(), size: buf.len() as u64, limit, purpose });
    }
    Ok(buf)
}

/// A reader over the first `size` bytes of `f` that fails if the file
/// turns out longer or shorter, so a file that grows while it is read (or
/// never ends) cannot keep a build reading.
pub struct Exact<R> {
    inner: std::io::Take<R>,
    size: u64,
    seen: u64,
    path: PathBuf,
}

impl<R: Read> Exact<R> {
    /// Reads `size` bytes of `r` (the file at `path`).
    pub fn new(r: R, size: u64, path: &Path) -> Exact<R> {
        Exact { inner: r.take(size + 1), size, seen: 0, path: path.to_path_buf() }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        if self.seen > self.size {
            return Err(std::io::Error::other(format!(
                "{} grew while it was read (it had {} bytes when opened)",
                self.path.display(),
                self.size
            )));
        }
        if n == 0 && !buf.is_empty() && self.seen < self.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was read ({} of {} bytes)", self.path.display(), self.seen, self.size),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_to_the_context_and_to_regular_files() {
        let t = tempfile::tempdir().unwrap();
        let ctx = context_dir(t.path()).unwrap();
        fs_err::create_dir(ctx.join("sub")).unwrap();
        fs_err::write(ctx.join("a.txt"), b"x").unwrap();
        fs_err::os::unix::fs::symlink("/etc/passwd", ctx.join("out")).unwrap();
        fs_err::os::unix::fs::symlink("a.txt", ctx.join("in")).unwrap();
        assert_eq!(resolve(&ctx, &ctx.join("sub"), "../a.txt").unwrap(), ctx.join("a.txt"));
        assert_eq!(resolve(&ctx, &ctx, "in").unwrap(), ctx.join("a.txt"));
        assert!(matches!(resolve(&ctx, &ctx, "out"), Err(HostPathError::Outside { .. })));
        assert!(matches!(resolve(&ctx, &ctx, "../../../../etc/passwd"), Err(HostPathError::Outside { .. })));
        assert!(matches!(resolve(&ctx, &ctx, "/etc/passwd"), Err(HostPathError::Outside { .. })));
        assert!(matches!(resolve(&ctx, &ctx, "sub"), Err(HostPathError::NotRegular { what: "a directory", .. })));
        assert!(matches!(resolve(&ctx, &ctx, "nope"), Err(HostPathError::Missing { .. })));
        let root = context_dir(Path::new("/")).unwrap();
        assert!(matches!(
            resolve(&root, &root, "proc/self/environ"),
            Err(HostPathError::NotRegular { what: "a kernel pseudo-file", .. })
        ));
        assert!(matches!(resolve(&root, &root, "dev/zero"), Err(HostPathError::NotRegular { what: "a device", .. })));
        assert!(matches!(
            read_bounded(&ctx.join("a.txt"), 0, "a test"),
            Err(HostPathError::TooLarge { size: 1, limit: 0, .. })
        ));
        assert_eq!(read_bounded(&ctx.join("a.txt"), 1, "a test").unwrap(), b"x");
    }
}
