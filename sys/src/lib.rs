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
