//! Running out of memory ends the command with a clear error and exit
//! status 1, like any other failure, instead of an abort (exit 134) or a
//! panic (exit 101).
//!
//! The global allocator is the system's, wrapped: when an allocation fails
//! it writes one line to stderr with plain system calls (no allocation) and
//! ends the process. Panics that are really a lack of memory (a capacity
//! overflow, a thread that cannot be spawned) are reported the same way.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, ending the process cleanly when it fails.
pub struct ExitOnOom;

// SAFETY: every method forwards to `System` with the same arguments and
// returns its result; only a null result is intercepted (and never returned).
unsafe impl GlobalAlloc for ExitOnOom {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
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
pub fn install_panic_hook() {
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
