//! The content-addressed store: verified artifacts and built blobs by SHA-256,
//! written atomically (temporary file, fsync, rename) and guarded by lock
//! files so that concurrent builds can share one cache.
//!
//! Layout under the root (default `~/.cache/strata`, or `STRATA_CACHE`):
//! `cas/sha256/<hex>` blobs, `tmp/` partial writes, `locks/` lock files,
//! `layers/` the layer cache index.
//!
//! Every process that opens the store holds a shared lock on
//! `locks/store.lock` while it runs; `strata cache prune` takes it exclusively,
//! so it never removes a blob a running build is about to read. A blob's
//! access time is set whenever a build uses it (explicitly, so `noatime`
//! mounts do not matter), which is what pruning by age reads. Modification
//! times are left alone: the layer cache uses them to notice changed blobs.

use fs_err::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::digest::{hash_reader, Digest, HashingWriter};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An IO error on a named path.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// Content did not hash to what was expected.
    #[error("{what}: sha256 mismatch\n  expected: {expected}\n  found:    {found}")]
    Mismatch {
        /// What was checked.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes.
        found: Digest,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io(crate::error::IoError { action, path: path.to_path_buf(), source })
}

/// A content-addressed store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// The shared (or, for pruning, exclusive) lock on `locks/store.lock`,
    /// released when the last clone is dropped.
    _use_lock: std::sync::Arc<File>,
}

/// An exclusive lock held until dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Store {
    /// Opens (creating if needed) a store at `root`, holding a shared lock
    /// on it for as long as the `Store` (or a clone) lives. Waits while
    /// `strata cache prune` holds it.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        Self::open_locked(root.into(), false, &mut |_| {})
    }

    /// Opens the store for pruning: an exclusive lock, taken once no other
    /// process has the store open. `waiting` is called once if that means
    /// waiting.
    pub fn open_exclusive(root: impl Into<PathBuf>, waiting: &mut dyn FnMut(&Path)) -> Result<Store, StoreError> {
        Self::open_locked(root.into(), true, waiting)
    }

    fn open_locked(root: PathBuf, exclusive: bool, waiting: &mut dyn FnMut(&Path)) -> Result<Store, StoreError> {
        for sub in ["cas/sha256", "tmp", "locks", "layers"] {
            let p = root.join(sub);
            fs_err::create_dir_all(&p).map_err(io_err("creating cache directory", &p))?;
        }
        let p = root.join("locks/store.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err("creating lock file", &p))?;
        let r = if exclusive { file.try_lock() } else { file.try_lock_shared() };
        match r {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting(&root);
                if exclusive { file.lock() } else { file.lock_shared() }.map_err(io_err("locking", &p))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Io(crate::error::IoError { action: "locking", path: p, source: e }))
            }
        }
        Ok(Store { root, _use_lock: std::sync::Arc::new(file) })
    }

    /// Records that a blob was used now (its access time), for
    /// `strata cache prune --unused-for`. Best effort: a failure only makes
    /// the blob look older.
    pub fn mark_used(&self, d: &Digest) {
        if let Ok(f) = File::open(self.path(d)) {
            let _ = f.set_times(std::fs::FileTimes::new().set_accessed(std::time::SystemTime::now()));
        }
    }

    /// The default root: `$STRATA_CACHE`, else `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`.
    pub fn default_root() -> PathBuf {
        if let Some(p) = std::env::var_os("STRATA_CACHE") {
            return PathBuf::from(p);
        }
        if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(p).join("strata");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
        home.join(".cache/strata")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob with this digest lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("cas/sha256").join(d.hex())
    }

    /// True when the blob is present.
    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Directory for temporary files on the same filesystem as the store.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Directory of the layer cache index.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// Takes an exclusive lock named `name` (blocking).
    pub fn lock(&self, name: &str) -> Result<LockGuard, StoreError> {
        let p = self.root.join("locks").join(format!("{name}.lock"));
        let file = File::create(&p).map_err(io_err("creating lock file", &p))?;
        file.lock().map_err(io_err("locking", &p))?;
        Ok(LockGuard { file })
    }

    /// A new temporary file in the store's tmp dir.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.tmp_dir();
        tempfile::Builder::new().prefix("part-").tempfile_in(&dir).map_err(io_err("creating temporary file in", &dir))
    }

    /// Moves a finished temporary file into place as blob `digest`
    /// (fsync first so a crash never leaves a truncated blob under its name).
    pub fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<PathBuf, StoreError> {
        let dest = self.path(digest);
        {
            use std::os::unix::fs::PermissionsExt;
            // Blobs are shared read-only (hard-linked into layouts).
            fs_err::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o444))
                .map_err(io_err("setting permissions of", tmp.path()))?;
        }
        tmp.as_file().sync_all().map_err(io_err("syncing", tmp.path()))?;
        if dest.is_file() {
            self.mark_used(digest);
            return Ok(dest);
        }
        tmp.persist(&dest).map_err(|e| {
            StoreError::Io(crate::error::IoError { action: "moving blob into", path: dest.clone(), source: e.error })
        })?;
        Ok(dest)
    }

    /// Stores bytes and returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::of(bytes);
        if self.contains(&d) {
            self.mark_used(&d);
            return Ok(d);
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(io_err("writing", &self.tmp_dir()))?;
        self.commit(tmp, &d)?;
        Ok(d)
    }

    /// Copies a local file into the store, verifying `expected` when given.
    pub fn put_file(&self, src: &Path, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        if let Some(d) = expected {
            if self.contains(d) {
                self.mark_used(d);
                let size = fs_err::metadata(self.path(d)).map(|m| m.len()).unwrap_or(0);
                return Ok((*d, size));
            }
        }
        let mut input = File::open(src).map_err(io_err("opening", src))?;
        let tmp = self.temp_file()?;
        let mut w = HashingWriter::new(io::BufWriter::new(tmp));
        io::copy(&mut input, &mut w).map_err(io_err("copying", src))?;
        let (buf, found, size) = w.finish();
        let tmp = buf.into_inner().map_err(|e| {
            StoreError::Io(crate::error::IoError { action: "writing", path: src.to_path_buf(), source: e.into_error() })
        })?;
        if let Some(exp) = expected {
            if *exp != found {
                return Err(StoreError::Mismatch { what: src.display().to_string(), expected: *exp, found });
            }
        }
        self.commit(tmp, &found)?;
        Ok((found, size))
    }

    /// Re-hashes a stored blob; a corrupt one is removed so it is fetched or
    /// built again.
    pub fn verify(&self, d: &Digest) -> Result<bool, StoreError> {
        let p = self.path(d);
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::Io(crate::error::IoError { action: "opening", path: p, source: e })),
        };
        let (found, _) = hash_reader(io::BufReader::new(f)).map_err(io_err("reading", &p))?;
        if found != *d {
            let _ = fs_err::remove_file(&p);
            return Ok(false);
        }
        Ok(true)
    }
}
