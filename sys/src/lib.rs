//! The few operating-system calls Strata needs that the standard library
//! does not offer safely, each `unsafe` block with the reason it is sound.
//! The compiler crate itself forbids `unsafe` code.
//!
//! * [`ExitOnOom`] and [`install_oom_panic_hook`]: running out of memory
//!   ends the command with a clear error and exit status 1, like any other
//!   failure, instead of an abort (exit 134) or a panic (exit 101). The
//!   global allocator is the system's, wrapped: when an allocation fails it
//!   writes one line to stderr with plain system calls (no allocation) and
//!   ends the process. Panics that are really a lack of memory (a capacity
//!   overflow, a thread that cannot be spawned) are reported the same way.
//! * [`reflink`]: a copy-on-write clone of a file (FICLONE), so an output
//!   never shares bytes with the cache yet costs no copy where the
//!   filesystem can clone.
//! * [`sandbox`]: runs a command (the image's own interpreter, for
//!   precompiled bytecode) in new user, mount and network namespaces,
//!   chrooted into a read-only root, with no network and one writable
//!   output directory.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, ending the process cleanly when it fails.
pub struct ExitOnOom;

// SAFETY: every method forwards to `System` with the same arguments and
// returns its result; only a null result is intercepted (and never returned).
unsafe impl GlobalAlloc for ExitOnOom {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` obligations are passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` obligations are passed on unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator, which is `System`'s; the
        // caller's other obligations are passed on unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}

/// Writes `error: out of memory …` to stderr without allocating and exits 1.
fn out_of_memory(size: usize) -> ! {
    let mut buf = [0u8; 160];
    let mut n = 0;
    let mut put = |b: &[u8]| {
        let k = b.len().min(buf.len() - n);
        buf[n..n + k].copy_from_slice(&b[..k]);
        n += k;
    };
    put(b"error: out of memory (an allocation of ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = size;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(b" bytes failed)\nhint: raise the memory limit, or lower --threads\n");
    // SAFETY: writing a valid buffer to fd 2 and exiting; no Rust state is used.
    unsafe {
        let _ = libc::write(2, buf.as_ptr().cast(), n);
        libc::_exit(1)
    }
}

/// Panics whose message says memory ran out end like [`out_of_memory`];
/// every other panic keeps the default report.
pub fn install_oom_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let oom = [
            "capacity overflow",
            "memory allocation",
            "failed to spawn thread",
            "Cannot allocate memory",
            "out of memory",
        ]
        .iter()
        .any(|m| msg.contains(m));
        if oom {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "error: out of memory ({msg})\nhint: raise the memory limit, or lower --threads"
            );
            // SAFETY: ends the process at once, as an abort would, with status 1.
            unsafe { libc::_exit(1) }
        }
        default(info);
    }));
}

/// Clones `src` into `dst` with the FICLONE ioctl (btrfs, XFS, bcachefs…);
/// false where the filesystem cannot (the caller then copies).
pub fn reflink(src: &std::fs::File, dst: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both descriptors belong to files the caller holds open for
    // the whole call; the ioctl reads no memory of this process.
    unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) == 0 }
}

/// The filesystem type (`f_type` of statfs(2)) of the filesystem holding
/// `path`; `None` when it cannot be asked.
pub fn filesystem_type(path: &std::path::Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs is plain C data (integers); all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_type as i64)
}

/// Sets up `cmd` to run sandboxed: in new user, mount and network
/// namespaces (no network, not even loopback; no privilege outside), as
/// uid/gid 0 of the new user namespace (mapped to the caller's ids),
/// chrooted into `root`, which is bind-mounted read-only, with `out` (a
/// directory outside the root) bind-mounted writable at `root/mount_at`
/// (an existing empty directory). The command's path and arguments are
/// resolved inside the new root. The command then fails to spawn with the
/// errno of the step that failed (EPERM when the kernel does not let
/// unprivileged users create namespaces).
pub fn sandbox(
    cmd: &mut std::process::Command,
    root: &std::path::Path,
    out: &std::path::Path,
    mount_at: &str,
) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let cstr = |p: &[u8]| CString::new(p).map_err(|_| std::io::Error::other("a path with a NUL byte"));
    let root_c = cstr(root.as_os_str().as_bytes())?;
    let out_c = cstr(out.as_os_str().as_bytes())?;
    let target_c = cstr(root.join(mount_at.trim_start_matches('/')).as_os_str().as_bytes())?;
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let uid_map = format!("0 {uid} 1");
    let gid_map = format!("0 {gid} 1");
    // The flags a read-only remount must keep (locked by the mount's owner).
    let keep = {
        // SAFETY: statvfs is plain C data; all zeroes is a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `root_c` is NUL-terminated, `st` a valid out pointer.
        if unsafe { libc::statvfs(root_c.as_ptr(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut f: libc::c_ulong = 0;
        for (st_flag, ms_flag) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if st.f_flag & st_flag != 0 {
                f |= ms_flag;
            }
        }
        f
    };
    // No allocation after fork: the error is the bare errno.
    let step = |_what: &'static str, rc: libc::c_int| -> std::io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let write = |path: &'static [u8], data: &[u8]| -> libc::c_int {
        // SAFETY: `path` is a NUL-terminated literal; `data` is valid for its length.
        unsafe {
            let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return -1;
            }
            let n = libc::write(fd, data.as_ptr().cast(), data.len());
            libc::close(fd);
            if n == data.len() as isize {
                0
            } else {
                -1
            }
        }
    };
    let closure = move || -> std::io::Result<()> {
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: each call gets NUL-terminated strings that live as long as
        // this closure, or null where the kernel accepts it; this runs in
        // the forked child before exec, which has one thread, so changing
        // its namespaces and root affects nothing else.
        unsafe {
            step("unshare", libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET))?;
            step("setgroups", write(b"/proc/self/setgroups\0", b"deny"))?;
            step("uid_map", write(b"/proc/self/uid_map\0", uid_map.as_bytes()))?;
            step("gid_map", write(b"/proc/self/gid_map\0", gid_map.as_bytes()))?;
            step(
                "making mounts private",
                libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()),
            )?;
            step(
                "bind-mounting the root",
                libc::mount(root_c.as_ptr(), root_c.as_ptr(), null, libc::MS_BIND | libc::MS_REC, std::ptr::null()),
            )?;
            step(
                "bind-mounting the output",
                libc::mount(out_c.as_ptr(), target_c.as_ptr(), null, libc::MS_BIND, std::ptr::null()),
            )?;
            step(
                "making the root read-only",
                libc::mount(
                    null,
                    root_c.as_ptr(),
                    null,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep,
                    std::ptr::null(),
                ),
            )?;
            step("chroot", libc::chroot(root_c.as_ptr()))?;
            step("chdir", libc::chdir(c"/".as_ptr()))?;
        }
        Ok(())
    };
    // SAFETY: the closure only makes system calls (no allocation on the
    // success path, no locks), as a pre-exec hook must.
    unsafe { cmd.pre_exec(closure) };
    Ok(())
}
