//! Replacing this process with the user's command (`execve`), so that the
//! command keeps the PID (PID 1 in a container), receives signals directly
//! and its exit status is the container's.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

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
    // The listing saw its own descriptor, closed now: keep only those still
    // open, or a later file given the same number would count as inherited.
    // SAFETY: F_GETFD on a descriptor number; a closed one fails with EBADF.
    fds.retain(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0);
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

/// The driver's hardware work queues per context; the verifier sets it for
/// itself (main.rs).
pub const CONNECTIONS_VAR: &str = "CUDA_DEVICE_MAX_CONNECTIONS";

/// `CUDA_DEVICE_MAX_CONNECTIONS` as the caller gave it (None: unset), once
/// the verifier has set its own.
static CALLER_CONNECTIONS: OnceLock<Option<OsString>> = OnceLock::new();

/// Sets `CUDA_DEVICE_MAX_CONNECTIONS=1` for this process unless the caller
/// set it; the command gets the caller's environment back. Call while no
/// other thread runs.
pub fn one_connection() {
    let caller = std::env::var_os(CONNECTIONS_VAR);
    if caller.is_none() {
        std::env::set_var(CONNECTIONS_VAR, "1");
    }
    let _ = CALLER_CONNECTIONS.set(caller);
}

/// Set when a GPU is in an exclusive compute mode: a second process holding
/// its context for a moment would keep the command from opening it.
static EXCLUSIVE_GPU: AtomicBool = AtomicBool::new(false);

/// Records that a GPU runs in the Exclusive Process compute mode.
pub fn note_exclusive_gpu() {
    EXCLUSIVE_GPU.store(true, Ordering::Relaxed);
}

/// Where the GPU contexts of the checks are torn down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// By the kernel during `execve` (about 100 ms on an H100, before the
    /// command's first instruction).
    Inline,
    /// By a short-lived process that holds the GPU handles past the
    /// `execve` and exits as soon as the command has replaced this one,
    /// detached (its parent exits at once) so that the command never sees
    /// it as a child unless the command is PID 1.
    Background,
    /// Development: the holding process stays a child of the command.
    #[cfg(feature = "dev-kernels")]
    Child,
}

impl Release {
    /// From `STRATA_VERIFY_RELEASE` (`inline` or `background`, the default).
    pub fn from_env(value: Option<&str>) -> Release {
        match value {
            Some("inline") => Release::Inline,
            #[cfg(feature = "dev-kernels")]
            Some("child") => Release::Child,
            _ => Release::Background,
        }
    }
}

/// What the keeper processes read: made once, never freed (they share this
/// process's memory until the `execve`, and keep it after).
struct KeeperArgs {
    close: Vec<libc::c_int>,
    read_end: libc::c_int,
    write_end: libc::c_int,
    /// The stack for the second process when detaching, else null.
    stack2: *mut libc::c_void,
    /// The second process's ID, written by the first.
    second: AtomicI32,
}

const KEEPER_STACK: usize = 64 << 10;

/// A stack for a keeper process; null when none can be had.
fn keeper_stack() -> *mut libc::c_void {
    // SAFETY: an anonymous private mapping, never unmapped (see KeeperArgs).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            KEEPER_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    // The top (stacks grow down on x86-64 and AArch64), 16-byte aligned.
    // SAFETY: within the mapping just made.
    unsafe { p.cast::<u8>().add(KEEPER_STACK - 64).cast() }
}

/// The first keeper process: drops the descriptors the command inherits
/// and the pipe's writing end, then either waits itself or starts the
/// second process and exits, so that the waiting one is nobody's child
/// here (it goes to the init of the PID namespace, or a subreaper).
extern "C" fn keeper_first(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the leaked KeeperArgs; only async-signal-safe calls
    // follow (close, clone, read, and the exit that returning performs).
    unsafe {
        let a = &*(arg as *const KeeperArgs);
        for fd in &a.close {
            libc::close(*fd);
        }
        libc::close(a.write_end);
        if !a.stack2.is_null() {
            let pid = libc::clone(keeper_wait, a.stack2, libc::CLONE_VM | libc::SIGCHLD, arg);
            if pid > 0 {
                a.second.store(pid, Ordering::Release);
                return 0;
            }
        }
        keeper_wait(arg)
    }
}

/// Waits until the pipe's writing end is closed everywhere (this process's
/// `execve` or exit), then returns, which ends the keeper: its copies of the
/// GPU handles are the last, so the driver's teardown runs here.
extern "C" fn keeper_wait(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: as in keeper_first.
    unsafe {
        let a = &*(arg as *const KeeperArgs);
        let mut byte = 0u8;
        while libc::read(a.read_end, (&mut byte as *mut u8).cast(), 1) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        0
    }
}

/// Starts the process that holds the GPU handles past the `execve` (see
/// [`Release::Background`]). It shares this process's memory (no copy: the
/// start costs about what a thread does) but has its own descriptor table;
/// it closes the descriptors the command inherits first, so the command's
/// stdout reaches EOF when the command closes it. Returns false (and
/// nothing is started) when a GPU is in an exclusive compute mode or the
/// process cannot be made. Returns the process ID of the keeper that
/// waits: when detached, the first keeper writes it into the arguments
/// before it exits.
pub fn start_keeper(inherited: &BTreeSet<i32>, detach: bool) -> Option<i32> {
    if EXCLUSIVE_GPU.load(Ordering::Relaxed) {
        return None;
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: a two-element array for pipe2's out parameter.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let stack = keeper_stack();
    let stack2 = if detach {
        keeper_stack()
    } else {
        std::ptr::null_mut()
    };
    if stack.is_null() || (detach && stack2.is_null()) {
        // SAFETY: both ends were just made.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return None;
    }
    let args: &'static KeeperArgs = Box::leak(Box::new(KeeperArgs {
        close: inherited
            .iter()
            .copied()
            .filter(|fd| !fds.contains(fd))
            .collect(),
        read_end: fds[0],
        write_end: fds[1],
        stack2,
        second: AtomicI32::new(0),
    }));
    let arg = args as *const KeeperArgs as *mut libc::c_void;
    // SAFETY: CLONE_VM without CLONE_THREAD: a process sharing this memory
    // with its own descriptor table, on its own stack; it touches only the
    // leaked arguments and its stack.
    let pid = unsafe { libc::clone(keeper_first, stack, libc::CLONE_VM | libc::SIGCHLD, arg) };
    // SAFETY: our copy of the reading end; the writing end stays open
    // (close-on-exec) until the execve.
    unsafe { libc::close(fds[0]) };
    if pid < 0 {
        // SAFETY: as above.
        unsafe { libc::close(fds[1]) };
        return None;
    }
    if detach {
        let mut status = 0;
        // SAFETY: the first keeper exits once the second is started.
        unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        let second = args.second.load(Ordering::Acquire);
        return Some(if second > 0 { second } else { pid });
    }
    Some(pid)
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
    // The command's environment is the one the verifier was given.
    match CALLER_CONNECTIONS.get() {
        Some(Some(v)) => {
            cmd.env(CONNECTIONS_VAR, v);
        }
        Some(None) => {
            cmd.env_remove(CONNECTIONS_VAR);
        }
        None => {}
    }
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
    fn open_fds_leaves_out_its_own_listing() {
        let before = open_fds();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // The descriptor the listing used was free before this file took
        // the lowest free number, so it must not have been counted.
        assert!(!before.contains(&fd), "{before:?} counts {fd}");
        assert!(open_fds().contains(&fd));
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
