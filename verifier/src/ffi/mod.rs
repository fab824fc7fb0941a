//! Small hand-written FFI: libcuda (from the file the loader gives for
//! `libcuda.so.1`), and cuBLAS, cuDNN, NCCL and NVML, whose file names change
//! with the CUDA major version (`libcublas.so.12` vs `.13`) and which are
//! opened by absolute path from the image's own directories. Every function
//! is resolved up front, so a missing symbol is an error value, not a panic
//! in the middle of a check.

pub mod cublas;
pub mod cuda;
pub mod cudnn;
pub mod nccl;
pub mod nvml;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LAZY, RTLD_NOW};
use std::path::{Path, PathBuf};

/// A library that could not be opened or lacks a function.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FfiError {
    /// `dlopen` failed.
    #[error("cannot load {path}: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// `dlsym` failed.
    #[error("{path} has no function {symbol} (is it the library it claims to be?)")]
    Symbol {
        /// The file.
        path: PathBuf,
        /// The missing function.
        symbol: String,
    },
}

/// An open library and the path it was opened from.
pub struct Lib {
    lib: Library,
    /// Where it was loaded from.
    pub path: PathBuf,
}

impl Lib {
    /// Opens `path` with RTLD_NOW | RTLD_GLOBAL. GLOBAL lets later loads by
    /// soname (cuDNN asking for libcublasLt.so.12, say) reuse this copy
    /// instead of searching the loader path for another one.
    pub fn open(path: &Path) -> Result<Self, FfiError> {
        Self::open_with(path, RTLD_NOW | RTLD_GLOBAL)
    }

    /// Opens `path` with RTLD_LAZY | RTLD_GLOBAL: dependencies are resolved
    /// (a missing one is an error here) but symbols bind on first use, as
    /// when a library opens its own plug-ins.
    pub fn open_lazy(path: &Path) -> Result<Self, FfiError> {
        Self::open_with(path, RTLD_LAZY | RTLD_GLOBAL)
    }

    fn open_with(path: &Path, flags: std::ffi::c_int) -> Result<Self, FfiError> {
        // SAFETY: loading a library runs its initialisers; these are the
        // image's own CUDA libraries, loaded exactly as PyTorch loads them.
        let lib = unsafe { Library::open(Some(path), flags) }.map_err(|e| FfiError::Open {
            path: path.to_path_buf(),
            message: crate::discover::dl_error_text(&e),
        })?;
        Ok(Lib {
            lib,
            path: path.to_path_buf(),
        })
    }

    /// Resolves `name` as a function pointer of type `F`.
    ///
    /// # Safety
    /// `F` must be the function's true C signature.
    pub unsafe fn sym<F: Copy>(&self, name: &str) -> Result<F, FfiError> {
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        // SAFETY: the caller vouches for the signature.
        unsafe { self.lib.get::<F>(cname.as_slice()) }
            .map(|s| *s)
            .map_err(|_| FfiError::Symbol {
                path: self.path.clone(),
                symbol: name.to_string(),
            })
    }
    /// Like [`Lib::sym`] but None when absent (for functions that only some
    /// versions have).
    ///
    /// # Safety
    /// As [`Lib::sym`].
    pub unsafe fn sym_opt<F: Copy>(&self, name: &str) -> Option<F> {
        // SAFETY: the caller upholds `sym`'s contract (F is the symbol's real type), which `sym_opt` requires of its own callers.
        unsafe { self.sym(name).ok() }
    }
}
