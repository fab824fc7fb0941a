//! The Python part of `strata lock` and of the lock file (`SPEC.lock`).
//!
//! Wheels are pinned by the PEP 751 `pylock.toml` itself (URL, size,
//! sha256). The lock file records, per `python:` layer entry, which pylock
//! the spec was locked with and its sha256:
//!
//! ```toml
//! [python."python"]
//! pylock = "pylock.pytorch-cuda.toml"
//! sha256 = "sha256:…"
//! wheels = 122
//! target = "CPython 3.11 manylinux_2_28 x86_64"
//! ```
//!
//! `strata build` refuses a pylock whose bytes no longer match that record,
//! so an edited lock cannot slip into a build unnoticed.

use std::path::Path;

use super::uv::{self, UvError};
use super::Python;
use crate::digest::Digest;
use crate::lockfile::{layer_key, Lock};
use crate::spec::LoadedSpec;

/// The lock file's table for Python entries.
pub const TABLE: &str = "python";

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
    /// Whether uv rewrote it (false: recorded as brought).
    pub resolved: bool,
    /// Whether its bytes changed.
    pub changed: bool,
}

/// The record of `key` in `lock`: (pylock as named, sha256).
pub fn recorded(lock: &Lock, key: &str) -> Option<(String, String)> {
    let t = lock.other.get(TABLE)?.as_table()?.get(key)?.as_table()?;
    Some((t.get("pylock")?.as_str()?.to_string(), t.get("sha256")?.as_str()?.to_string()))
}

/// Resolves every `python:` entry with `requirements:` (uv), reads the
/// others as they are, and records each pylock's sha256 in `lock`. With
/// `check`, nothing is written and a pylock uv would change is an error.
pub fn lock_python(spec: &LoadedSpec, lock: &mut Lock, check: bool) -> Result<Vec<Locked>, UvError> {
    let mut table = toml::Table::new();
    let mut out = Vec::new();
    let command = format!("strata lock {}", spec.path.display());
    for layer in &spec.layers {
        let Some(py) = &layer.entry.python else { continue };
        let key = layer_key(layer);
        let src = Python::new(py, layer);
        // Written by `strata lock`: its directory must be in the build context.
        let path = crate::hostfs::resolve_for_write(&layer.context, &layer.base_dir, &py.lock).map_err(|e| {
            UvError { message: format!("python lock {}: {e}", src.lock_path().display()), hint: Some(e.hint().into()) }
        })?;
        let old = match crate::hostfs::read_bounded(&path, super::pylock::MAX_PYLOCK_BYTES, "a lock file") {
            Ok(b) => Some(b),
            Err(crate::hostfs::HostPathError::Missing { .. }) => None,
            Err(e) => return Err(UvError { message: e.to_string(), hint: Some(e.hint().into()) }),
        };
        let (bytes, wheels, resolved) = if py.requirements.is_empty() {
            let sel = src.selection().map_err(|e| UvError { message: e.to_string(), hint: None })?;
            (old.clone().unwrap_or_default(), sel.wheels.len(), false)
        } else {
            let (text, sel) = uv::compile(py, &path, &src.target, &command)?;
            (text.into_bytes(), sel.wheels.len(), true)
        };
        let changed = old.as_deref() != Some(&bytes[..]);
        if changed {
            if check {
                return Err(UvError {
                    message: format!(
                        "{} is out of date: uv resolves `{}` differently now",
                        path.display(),
                        py.requirements.join(", ")
                    ),
                    hint: Some(format!("run `{command}` and commit the result")),
                });
            }
            write_atomic(&path, &bytes)
                .map_err(|e| UvError { message: format!("writing {}: {e}", path.display()), hint: None })?;
        }
        let sha256 = Digest::of(&bytes);
        let mut t = toml::Table::new();
        t.insert("pylock".into(), py.lock.clone().into());
        t.insert("sha256".into(), sha256.to_string().into());
        t.insert("wheels".into(), (wheels as i64).into());
        t.insert("target".into(), src.target.describe().into());
        table.insert(key.clone(), t.into());
        out.push(Locked { layer: key, pylock: py.lock.clone(), sha256, wheels, resolved, changed });
    }
    if table.is_empty() {
        lock.other.remove(TABLE);
    } else {
        lock.other.insert(TABLE.into(), table.into());
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
