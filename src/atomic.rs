//! Writing files so that a reader sees the old bytes or the new ones, never
//! a mix: a temporary file beside the destination, fsync, rename. Large
//! outputs (layouts, archives) are built under a temporary name that
//! carries the writer's pid, so that a later run can remove what a killed
//! writer left behind.

use std::io::Write;
use std::path::Path;

use crate::error::{io_err, IoError};

/// Writes `bytes` to `path` through a temporary file and a rename (mode 0644).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-")
        .tempfile_in(parent)
        .map_err(io_err("creating temporary file in", parent))?;
    tmp.write_all(bytes).map_err(io_err("writing", path))?;
    persist(tmp, path)
}

/// Moves a finished temporary file to `path`: mode 0644, fsync, rename.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), IoError> {
    set_mode(tmp.path(), 0o644)?;
    tmp.as_file().sync_all().map_err(io_err("syncing", path))?;
    tmp.persist(path).map_err(|e| IoError { action: "renaming into", path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

/// Sets permission bits.
pub fn set_mode(path: &Path, mode: u32) -> Result<(), IoError> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err("setting permissions of", path))
}

/// The name start of a large temporary output of `kind` (`layout`,
/// `archive`) written next to its destination: it carries this process's
/// id, so that a later run can tell a killed writer's leftover from work in
/// progress.
pub fn temp_prefix(kind: &str) -> String {
    format!(".strata-{kind}-{}-", std::process::id())
}

/// Removes the temporary outputs of `kind` in `dir` that killed writers left:
/// their process is gone (no `/proc/PID`) and they have not changed for a
/// minute (a writer in another PID namespace still touches its file).
pub fn sweep_stale(dir: &Path, kind: &str) {
    let Ok(entries) = fs_err::read_dir(dir) else { return };
    let head = format!(".strata-{kind}-");
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&head))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let idle = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d > std::time::Duration::from_secs(60));
        if idle {
            let p = e.path();
            let _ = if e.file_type().is_ok_and(|t| t.is_dir()) {
                fs_err::remove_dir_all(&p)
            } else {
                fs_err::remove_file(&p)
            };
        }
    }
}
