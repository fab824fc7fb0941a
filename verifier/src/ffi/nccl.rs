//! NCCL: version, and an all-reduce across the visible GPUs from one thread
//! (`ncclCommInitAll`).

use super::{FfiError, Lib};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::Path;

type Comm = *mut c_void;
type GetVersion = unsafe extern "C" fn(*mut c_int) -> i32;
type InitAll = unsafe extern "C" fn(*mut Comm, c_int, *const c_int) -> i32;
type AllReduce =
    unsafe extern "C" fn(*const c_void, *mut c_void, usize, i32, i32, Comm, *mut c_void) -> i32;
type Group = unsafe extern "C" fn() -> i32;
type CommDestroy = unsafe extern "C" fn(Comm) -> i32;
type ErrStr = unsafe extern "C" fn(i32) -> *const c_char;

/// ncclFloat32
pub const FLOAT32: i32 = 7;
/// ncclSum
pub const SUM: i32 = 0;

/// NCCL loaded from the image.
pub struct Nccl {
    /// The library.
    pub lib: Lib,
    get_version: GetVersion,
    init_all: InitAll,
    all_reduce: AllReduce,
    group_start: Group,
    group_end: Group,
    comm_destroy: CommDestroy,
    error_string: ErrStr,
}

// SAFETY: function pointers and a library handle.
unsafe impl Send for Nccl {}
// SAFETY: as above.
unsafe impl Sync for Nccl {}

impl Nccl {
    /// Opens `path` (pip ships only `libnccl.so.2`) and resolves the functions.
    pub fn load(path: &Path) -> Result<Self, FfiError> {
        let lib = Lib::open(path)?;
        // SAFETY: signatures from nccl.h.
        unsafe {
            Ok(Nccl {
                get_version: lib.sym("ncclGetVersion")?,
                init_all: lib.sym("ncclCommInitAll")?,
                all_reduce: lib.sym("ncclAllReduce")?,
                group_start: lib.sym("ncclGroupStart")?,
                group_end: lib.sym("ncclGroupEnd")?,
                comm_destroy: lib.sym("ncclCommDestroy")?,
                error_string: lib.sym("ncclGetErrorString")?,
                lib,
            })
        }
    }
    fn check(&self, call: &str, r: i32) -> Result<(), String> {
        if r == 0 {
            return Ok(());
        }
        // SAFETY: ncclGetErrorString returns a static string.
        let p = unsafe { (self.error_string)(r) };
        let text = if p.is_null() {
            String::new()
        } else {
            // SAFETY: `p` is not null (checked) and ncclGetErrorString returns a static NUL-terminated string.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        };
        Err(format!("{call} returned {r} ({text})"))
    }

    /// `ncclGetVersion`: 22705 for 2.27.5.
    pub fn version(&self) -> Result<i32, String> {
        let mut v: c_int = 0;
        // SAFETY: out pointer.
        self.check("ncclGetVersion", unsafe { (self.get_version)(&mut v) })?;
        Ok(v)
    }

    /// `ncclCommInitAll` over devices `0..n`.
    pub fn init_all(&self, n: usize) -> Result<Comms<'_>, String> {
        let mut comms: Vec<Comm> = vec![std::ptr::null_mut(); n];
        let devs: Vec<c_int> = (0..n as c_int).collect();
        // SAFETY: arrays of length n.
        self.check("ncclCommInitAll", unsafe {
            (self.init_all)(comms.as_mut_ptr(), n as c_int, devs.as_ptr())
        })?;
        Ok(Comms { nccl: self, comms })
    }
}

/// Communicators, one per GPU, destroyed on drop.
pub struct Comms<'a> {
    nccl: &'a Nccl,
    comms: Vec<Comm>,
}

impl Comms<'_> {
    /// Sum-all-reduce of `count` floats: `bufs[i] = (send, recv)` device
    /// pointers on GPU i, run on `streams[i]`. Issued as one group from this
    /// thread; the caller synchronises the streams afterwards.
    pub fn all_reduce_f32(
        &self,
        bufs: &[(u64, u64)],
        streams: &[*mut c_void],
        count: usize,
    ) -> Result<(), String> {
        // SAFETY: group calls per nccl.h; one buffer pair per communicator.
        unsafe {
            self.nccl
                .check("ncclGroupStart", (self.nccl.group_start)())?;
            let mut first_err = Ok(());
            for ((comm, (send, recv)), stream) in self.comms.iter().zip(bufs).zip(streams) {
                let r = (self.nccl.all_reduce)(
                    *send as *const c_void,
                    *recv as *mut c_void,
                    count,
                    FLOAT32,
                    SUM,
                    *comm,
                    *stream,
                );
                if first_err.is_ok() {
                    first_err = self.nccl.check("ncclAllReduce", r);
                }
            }
            let end = self.nccl.check("ncclGroupEnd", (self.nccl.group_end)());
            first_err.and(end)
        }
    }
}

impl Drop for Comms<'_> {
    fn drop(&mut self) {
        for c in &self.comms {
            if !c.is_null() {
                // SAFETY: communicator from ncclCommInitAll.
                unsafe { (self.nccl.comm_destroy)(*c) };
            }
        }
    }
}

/// `22705` → `2.27.5`.
pub fn decode_version(v: i32) -> String {
    if v >= 10000 {
        format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_decode() {
        assert_eq!(super::decode_version(22705), "2.27.5");
        assert_eq!(super::decode_version(22809), "2.28.9");
    }
}
