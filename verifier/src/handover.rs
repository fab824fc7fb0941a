//! Replacing this process with the user's command (`execve`), so that the
//! command keeps the PID (PID 1 in a container), receives signals directly
//! and its exit status is the container's.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

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

/// Replaces this process with `command`, searching `PATH` like a shell.
/// Returns only on failure, with the error and the exit status to use
/// (127 not found, 126 not executable), as shells do.
pub fn exec(command: &[OsString], result: &str, inherited: &BTreeSet<i32>) -> (io::Error, i32) {
    let Some((program, args)) = command.split_first() else {
        return (io::Error::new(io::ErrorKind::InvalidInput, "no command"), 2);
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
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

#[cfg(test)]
mod tests {
    use super::*;

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
