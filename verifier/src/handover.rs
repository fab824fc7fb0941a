//! Replacing this process with the user's command (`execve`), so that the
//! command keeps the PID (PID 1 in a container), receives signals directly
//! and its exit status is the container's.
//!
//! Also the one re-exec of the verifier itself, used when a CUDA `stubs`
//! directory on `LD_LIBRARY_PATH` would make cudarc open the stub libcuda
//! instead of the driver's: glibc reads `LD_LIBRARY_PATH` only at start-up,
//! so the only way to change what a later `dlopen("libcuda.so")` finds is to
//! start again without those directories. The original value is restored for
//! the user's command.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Set in the environment of the re-executed verifier.
pub const REEXEC_MARK: &str = "STRATA_VERIFY_REEXEC";
/// Holds the original `LD_LIBRARY_PATH` across the re-exec.
pub const SAVED_LD_PATH: &str = "STRATA_VERIFY_SAVED_LD_LIBRARY_PATH";
/// Value of [`SAVED_LD_PATH`] meaning "was not set".
const UNSET: &str = "\u{1}unset";

/// File descriptors open at start-up (stdin/out/err and whatever the
/// container runtime passed, e.g. for socket activation).
pub fn open_fds() -> BTreeSet<i32> {
    let mut fds = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        for e in entries.flatten() {
            if let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() {
                fds.insert(fd);
            }
        }
    }
    fds
}

/// Marks every descriptor opened since start-up close-on-exec, so the
/// driver's handles to /dev/nvidia* do not leak into the command.
pub fn close_new_fds_on_exec(inherited: &BTreeSet<i32>) {
    for fd in open_fds() {
        if !inherited.contains(&fd) {
            // SAFETY: F_GETFD/F_SETFD on an fd number; a stale number fails
            // harmlessly with EBADF.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
        }
    }
}

/// Restores what the re-exec changed in the environment of `cmd`.
fn restore_env(cmd: &mut Command) {
    cmd.env_remove(REEXEC_MARK);
    if let Some(saved) = std::env::var_os(SAVED_LD_PATH) {
        cmd.env_remove(SAVED_LD_PATH);
        if saved == UNSET {
            cmd.env_remove("LD_LIBRARY_PATH");
        } else {
            cmd.env("LD_LIBRARY_PATH", saved);
        }
    }
}

/// Replaces this process with `command`, searching `PATH` like a shell.
/// Returns only on failure, with the error and the exit status to use
/// (127 not found, 126 not executable), as shells do.
pub fn exec(command: &[OsString], result: &str, inherited: &BTreeSet<i32>) -> (io::Error, i32) {
    let Some((program, args)) = command.split_first() else {
        return (io::Error::new(io::ErrorKind::InvalidInput, "no command"), 2);
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    restore_env(&mut cmd);
    // Lets the command (or its wrapper scripts) know what was verified.
    cmd.env("STRATA_VERIFY_RESULT", result);
    close_new_fds_on_exec(inherited);
    // `exec` resets SIGPIPE to its default and clears the signal mask, so the
    // command starts as it would without the verifier in front of it.
    let e = cmd.exec();
    let status = match e.kind() {
        io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    (e, status)
}

/// `LD_LIBRARY_PATH` without CUDA `stubs` directories.
pub fn without_stub_dirs(ld_library_path: &str) -> String {
    ld_library_path
        .split(':')
        .filter(|d| !crate::discover::is_stub_path(std::path::Path::new(d)))
        .collect::<Vec<_>>()
        .join(":")
}

/// In the re-executed verifier: the `LD_LIBRARY_PATH` the container was
/// started with (None inside when it was unset). None when not re-executed.
pub fn original_ld_library_path() -> Option<Option<String>> {
    if !is_reexec() {
        return None;
    }
    let saved = std::env::var(SAVED_LD_PATH).ok()?;
    Some(if saved == UNSET { None } else { Some(saved) })
}

/// True when this process is the re-executed verifier.
pub fn is_reexec() -> bool {
    std::env::var_os(REEXEC_MARK).is_some()
}

/// Starts this program again with the same arguments and `LD_LIBRARY_PATH`
/// cleaned of stub directories. Returns only on failure.
pub fn reexec_without_stubs() -> io::Error {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let original = std::env::var("LD_LIBRARY_PATH").ok();
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1));
    cmd.env(REEXEC_MARK, "1");
    cmd.env(
        SAVED_LD_PATH,
        original.clone().unwrap_or_else(|| UNSET.to_string()),
    );
    cmd.env(
        "LD_LIBRARY_PATH",
        without_stub_dirs(original.as_deref().unwrap_or("")),
    );
    cmd.exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_dirs_are_removed_and_order_kept() {
        assert_eq!(
            without_stub_dirs("/a:/usr/local/cuda/lib64/stubs:/b:/x/stubs/y"),
            "/a:/b".to_string()
        );
        assert_eq!(without_stub_dirs(""), "");
    }

    #[test]
    fn exec_of_a_missing_program_reports_127() {
        let (e, status) = exec(
            &[OsString::from("/nonexistent/strata-verify-test")],
            "pass",
            &open_fds(),
        );
        assert_eq!(status, 127, "{e}");
        let (_, status) = exec(&[], "pass", &open_fds());
        assert_eq!(status, 2);
    }

    #[test]
    fn open_fds_sees_stdio() {
        let fds = open_fds();
        assert!(
            fds.contains(&0) || fds.contains(&1) || fds.contains(&2),
            "{fds:?}"
        );
    }
}
