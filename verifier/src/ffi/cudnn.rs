//! cuDNN: version queries, the sub-library version checks and a handle.

use super::{FfiError, Lib};
use std::ffi::{c_char, c_void, CStr};
use std::path::Path;

type Handle = *mut c_void;
type GetSize = unsafe extern "C" fn() -> usize;
type Check = unsafe extern "C" fn() -> i32;
type Create = unsafe extern "C" fn(*mut Handle) -> i32;
type Destroy = unsafe extern "C" fn(Handle) -> i32;
type ErrStr = unsafe extern "C" fn(i32) -> *const c_char;

/// cuDNN loaded from the image.
pub struct Cudnn {
    /// The library.
    pub lib: Lib,
    get_version: GetSize,
    get_cudart_version: GetSize,
    create: Create,
    destroy: Destroy,
    error_string: ErrStr,
    checks: Vec<(&'static str, Check)>,
    /// Sub-libraries opened ahead of cuDNN (kept open).
    pub parts: Vec<Lib>,
}

// SAFETY: function pointers and a library handle; cuDNN is thread-safe for
// distinct handles and for its global version queries.
unsafe impl Send for Cudnn {}
// SAFETY: as above.
unsafe impl Sync for Cudnn {}

/// The per-sub-library version checks: cuDNN 9 names, then cuDNN 8 names.
/// Each one loads its sub-library and compares its version with the core's.
const CHECKS: &[&str] = &[
    "cudnnGraphVersionCheck",
    "cudnnOpsVersionCheck",
    "cudnnCnnVersionCheck",
    "cudnnAdvVersionCheck",
    "cudnnOpsInferVersionCheck",
    "cudnnOpsTrainVersionCheck",
    "cudnnCnnInferVersionCheck",
    "cudnnCnnTrainVersionCheck",
    "cudnnAdvInferVersionCheck",
    "cudnnAdvTrainVersionCheck",
];

/// The sub-libraries cuDNN opens itself on first use, per major version.
/// cuDNN 9 prints "Invalid handle. Cannot load symbol ..." and aborts the
/// process when one of them (or a dependency such as libz.so.1) cannot be
/// loaded, so they are opened here first, where failure is an error value.
fn parts(major: &str) -> &'static [&'static str] {
    match major {
        "9" => &["graph", "ops", "cnn", "adv"],
        _ => &[
            "ops_infer",
            "ops_train",
            "cnn_infer",
            "cnn_train",
            "adv_infer",
            "adv_train",
        ],
    }
}

impl Cudnn {
    /// Opens the sub-libraries beside `path`, then `path`, and resolves the
    /// functions.
    pub fn load(path: &Path) -> Result<Self, FfiError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let major = name.rsplit('.').next().unwrap_or("9").to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut opened = Vec::new();
        for part in parts(&major) {
            let p = dir.join(format!("libcudnn_{part}.so.{major}"));
            if !p.exists() {
                return Err(FfiError::Open {
                    path: p,
                    message: "missing: cuDNN would abort the process when it needs it".into(),
                });
            }
            crate::trace::mark("loader", || format!("cuDNN: opening libcudnn_{part}"));
            opened.push(Lib::open_lazy(&p)?);
        }
        crate::trace::mark("loader", || "cuDNN: opening libcudnn".into());
        let lib = Lib::open(path)?;
        // SAFETY: signatures from cudnn_graph.h / cudnn_ops.h (9.x) and
        // cudnn_*_infer.h (8.x).
        unsafe {
            let checks = CHECKS
                .iter()
                .filter_map(|n| lib.sym_opt::<Check>(n).map(|f| (*n, f)))
                .collect();
            Ok(Cudnn {
                get_version: lib.sym("cudnnGetVersion")?,
                get_cudart_version: lib.sym("cudnnGetCudartVersion")?,
                create: lib.sym("cudnnCreate")?,
                destroy: lib.sym("cudnnDestroy")?,
                error_string: lib.sym("cudnnGetErrorString")?,
                checks,
                lib,
                parts: opened,
            })
        }
    }

    /// `cudnnGetVersion`: 91002 for 9.10.2 (8.x: 8907 for 8.9.7).
    pub fn version(&self) -> usize {
        // SAFETY: no arguments.
        unsafe { (self.get_version)() }
    }

    /// `cudnnGetCudartVersion`: the CUDA runtime cuDNN was built with, 12080 for 12.8.
    pub fn cudart_version(&self) -> usize {
        // SAFETY: no arguments.
        unsafe { (self.get_cudart_version)() }
    }

    fn err(&self, status: i32) -> String {
        // SAFETY: cudnnGetErrorString returns a static string.
        let p = unsafe { (self.error_string)(status) };
        if p.is_null() {
            format!("cudnnStatus {status}")
        } else {
            // SAFETY: non-null static NUL-terminated string.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }

    /// Runs every sub-library version check this cuDNN has; returns the
    /// names that passed, or the first failure in words.
    pub fn version_checks(&self) -> Result<Vec<&'static str>, String> {
        if self.checks.is_empty() {
            return Err(format!(
                "{} exports no cudnn*VersionCheck function",
                self.lib.path.display()
            ));
        }
        let mut passed = Vec::new();
        for (name, f) in &self.checks {
            // SAFETY: no arguments.
            let s = unsafe { f() };
            if s != 0 {
                return Err(format!("{name} returned {} ({s})", self.err(s)));
            }
            passed.push(*name);
        }
        Ok(passed)
    }

    /// Creates and destroys a handle on the current context's GPU.
    pub fn handle_roundtrip(&self) -> Result<(), String> {
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: out pointer; destroy only what was created.
        let s = unsafe { (self.create)(&mut h) };
        if s != 0 {
            return Err(format!("cudnnCreate returned {} ({s})", self.err(s)));
        }
        // SAFETY: handle from cudnnCreate.
        let s = unsafe { (self.destroy)(h) };
        if s != 0 {
            return Err(format!("cudnnDestroy returned {} ({s})", self.err(s)));
        }
        Ok(())
    }
}

/// Decodes `cudnnGetVersion` (9.x: major*10000+minor*100+patch; 8.x:
/// major*1000+minor*100+patch).
pub fn decode_version(v: usize) -> (usize, usize, usize) {
    if v >= 90000 {
        (v / 10000, (v % 10000) / 100, v % 100)
    } else {
        (v / 1000, (v % 1000) / 100, v % 100)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_decode() {
        assert_eq!(super::decode_version(91002), (9, 10, 2));
        assert_eq!(super::decode_version(91900), (9, 19, 0));
        assert_eq!(super::decode_version(8907), (8, 9, 7));
    }
}
