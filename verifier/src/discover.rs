//! Finding the driver's libcuda and the image's own CUDA libraries, and
//! listing what ended up loaded in the process.
//!
//! libcuda is looked up the way CUDA applications do (`dlopen("libcuda.so.1")`
//! through the dynamic loader), so the verifier sees the same file PyTorch
//! would. The image's libraries (cuBLAS, cuDNN, NCCL) are opened by absolute
//! path from the image's own directories, never through a bare soname that
//! could resolve to the build host's or a CUDA `stubs/` copy.

use crate::compat::{driver_version_from_libcuda_name, DottedVersion};
use crate::ffi::cuda::{CudaApi, ERROR_STUB_LIBRARY};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LAZY, RTLD_LOCAL, RTLD_NOW};
use std::collections::BTreeMap;
use std::ffi::{c_void, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Directories where container runtimes put the driver's user-space
/// libraries: `/usr/local/nvidia/lib64` (GKE-style and the GPU test
/// machine), the distribution library directories (NVIDIA container toolkit),
/// WSL2 and the GPU operator's driver container.
pub const LIBCUDA_DIRS: &[&str] = &[
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    MULTIARCH_LIB_DIR,
    "/usr/lib64",
    "/usr/lib",
    "/usr/lib/wsl/lib",
    DRIVER_CONTAINER_LIB_DIR,
];

/// The GPU device nodes present in `/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceNodes {
    /// `/dev/nvidiactl` exists.
    pub ctl: bool,
    /// `/dev/nvidia-uvm` exists.
    pub uvm: bool,
    /// `/dev/nvidiaN` nodes, sorted.
    pub gpus: Vec<String>,
}

/// Reads `/dev` (or another directory, for tests).
pub fn device_nodes(dev: &Path) -> DeviceNodes {
    let mut nodes = DeviceNodes {
        ctl: dev.join("nvidiactl").exists(),
        uvm: dev.join("nvidia-uvm").exists(),
        gpus: Vec::new(),
    };
    if let Ok(entries) = std::fs::read_dir(dev) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_prefix("nvidia") {
                if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                    nodes.gpus.push(format!("{}/{}", dev.display(), name));
                }
            }
        }
    }
    nodes.gpus.sort_by_key(|p| (p.len(), p.clone()));
    nodes
}

/// libcuda as found.
pub struct Libcuda {
    /// The file the loader mapped (symlinks resolved).
    pub path: PathBuf,
    /// True when `dlopen("libcuda.so.1")` found it: other programs in the
    /// image will find it too.
    pub via_loader: bool,
    /// Driver version from the file name, e.g. `580.159.04`.
    pub version: Option<DottedVersion>,
    /// What the loader said when `via_loader` is false.
    pub loader_error: Option<String>,
    /// Its driver API, every function resolved.
    pub api: CudaApi,
}

/// Why libcuda could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LibcudaError {
    /// Neither the loader nor the known directories have it.
    #[error("libcuda.so.1 was not found: the dynamic loader said `{loader_error}`, and none of {searched} holds it")]
    NotFound {
        /// The loader's message.
        loader_error: String,
        /// The directories looked at, joined for display.
        searched: String,
    },
    /// The file is a CUDA toolkit stub: a placeholder for linking, with no
    /// driver behind it.
    #[error("{} is the CUDA toolkit's stub library, not the driver: {evidence}{}", shown(.path, .target.as_deref()), behind(.driver.as_deref()))]
    Stub {
        /// The path the loader opened (a link, perhaps).
        path: PathBuf,
        /// Where that path leads, when it is a link.
        target: Option<PathBuf>,
        /// What gave it away.
        evidence: String,
        /// The driver's own libcuda, found further down the search order.
        driver: Option<PathBuf>,
    },
    /// It loads but lacks a function every driver has.
    #[error("{path} has no function {symbol}: it is not a complete CUDA driver library")]
    Incomplete {
        /// Where.
        path: PathBuf,
        /// The first missing function.
        symbol: String,
    },
    /// It exists but does not load.
    #[error("{path} exists but does not load: {message}")]
    LoadFailed {
        /// Where.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
}

fn shown(path: &Path, target: Option<&Path>) -> String {
    match target {
        Some(t) => format!("{} (a link to {})", path.display(), t.display()),
        None => path.display().to_string(),
    }
}

fn behind(driver: Option<&Path>) -> String {
    match driver {
        Some(d) => format!(
            "; the loader finds it before the driver's own {}",
            d.display()
        ),
        None => String::new(),
    }
}

/// The loader's own words for a libloading error (`libcuda.so.1: cannot
/// open shared object file: No such file or directory`), not just
/// "dlopen failed".
pub fn dl_error_text(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(src) => src.to_string(),
        None => e.to_string(),
    }
}

/// The path under which the loader mapped the file holding `symbol` in
/// `lib` (as opened: a link is not resolved), via `dladdr`.
pub fn file_of_symbol(lib: &Library, symbol: &[u8]) -> Option<PathBuf> {
    // SAFETY: we only take the address of the symbol; it is never called here.
    let ptr: *mut c_void = unsafe { lib.get::<*mut c_void>(symbol).ok().map(|s| *s)? };
    file_of_address(ptr as usize)
}
/// The path under which the file mapped at address `addr` was opened, via
/// `dladdr` (which only looks the address up in the loader's tables;
/// nothing is dereferenced).
pub fn file_of_address(addr: usize) -> Option<PathBuf> {
    if addr == 0 {
        return None;
    }
    // SAFETY: Dl_info is plain C data (pointers and integers): all zeroes is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only compares the address with mapped ranges and fills `info`.
    let ok = unsafe { libc::dladdr(addr as *const c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname points into the loader's own string table.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

/// True for a path inside a CUDA toolkit `stubs` directory.
pub fn is_stub_path(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "stubs")
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn version_of(path: &Path) -> Option<DottedVersion> {
    driver_version_from_libcuda_name(&canonical(path).file_name()?.to_string_lossy())
}

/// What a libcuda does when asked, which is what tells the driver's library
/// from the toolkit's link-time stub: every function of the stub returns
/// `CUDA_ERROR_STUB_LIBRARY` (34), `cuDriverGetVersion` included, because
/// there is no driver behind it. (The stub also carries no driver version in
/// its file name, but a copy can be called anything.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `cuDriverGetVersion` answered with this CUDA version (13000 = 13.0).
    Driver(i32),
    /// A stub; the words say how it showed.
    Stub(String),
}

/// Asks the library through its own `cuDriverGetVersion` (safe before
/// `cuInit`, and cheap: no GPU is touched). `has` says whether the library
/// exports a symbol: the toolkit's stub also lacks the `cudbg*` entry points
/// through which cuda-gdb talks to the driver (28 functions on driver
/// 580.159.04 the CUDA 13.0 stub does not have), which the words mention.
pub fn identify(api: &CudaApi, path: &Path, has: impl Fn(&str) -> bool) -> Identity {
    let mut v: std::ffi::c_int = 0;
    // SAFETY: out pointer; callable before cuInit.
    let code = unsafe { (api.driver_get_version)(&mut v) };
    if code == ERROR_STUB_LIBRARY {
        let debugger = if has("cudbgApiClientPid") {
            ""
        } else {
            " and it lacks the driver's cudbg* entry points"
        };
        Identity::Stub(format!(
            "its cuDriverGetVersion returns CUDA_ERROR_STUB_LIBRARY (34){debugger}: there is no driver behind it"
        ))
    } else if is_stub_path(path) {
        Identity::Stub("it lives in a CUDA toolkit `stubs` directory".into())
    } else {
        Identity::Driver(if code == 0 { v } else { 0 })
    }
}

fn exports(lib: &Library, name: &str) -> bool {
    let mut c = name.as_bytes().to_vec();
    c.push(0);
    // SAFETY: only looks the symbol up.
    unsafe { lib.get::<*mut c_void>(c.as_slice()).is_ok() }
}

fn resolve_api(lib: &Library) -> Result<CudaApi, &'static str> {
    CudaApi::resolve(|name| {
        let mut c = name.as_bytes().to_vec();
        c.push(0);
        // SAFETY: only the address is taken here; CudaApi gives it its type.
        unsafe { lib.get::<*mut c_void>(c.as_slice()).ok().map(|s| *s) }
    })
}

/// The driver's own libcuda among the places a loader would look after
/// `skip`: `LD_LIBRARY_PATH`, then the runtimes' injection directories. The
/// driver installs libcuda as `libcuda.so.1` → `libcuda.so.<driver version>`;
/// a file whose real name carries a driver version is taken to be it (it is
/// named in a message, never loaded).
pub fn driver_behind(skip: &Path, ld_library_path: Option<&str>) -> Option<PathBuf> {
    let skip = canonical(skip);
    let dirs = ld_library_path
        .unwrap_or("")
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(LIBCUDA_DIRS.iter().copied());
    for dir in dirs {
        let candidate = Path::new(dir).join("libcuda.so.1");
        let real = canonical(&candidate);
        if candidate.is_file()
            && real != skip
            && !is_stub_path(&real)
            && version_of(&real).is_some()
        {
            return Some(real);
        }
    }
    None
}

/// Opens libcuda the way CUDA programs do, falling back to the known
/// injection directories by absolute path, and makes sure it is the driver's.
pub fn load_libcuda(ld_library_path: Option<&str>) -> Result<Libcuda, LibcudaError> {
    // SAFETY: loading libcuda runs its initialisers, which is what every
    // CUDA program does; no other thread uses the loader-visible state yet.
    let loader = unsafe { Library::open(Some("libcuda.so.1"), RTLD_NOW | RTLD_GLOBAL) };
    let (lib, via_loader, loader_error) = match loader {
        Ok(lib) => (lib, true, None),
        Err(e) => {
            let loader_error = dl_error_text(&e);
            let found = LIBCUDA_DIRS
                .iter()
                .map(|dir| Path::new(dir).join("libcuda.so.1"))
                .find(|c| c.exists());
            let Some(path) = found else {
                return Err(LibcudaError::NotFound {
                    loader_error,
                    searched: LIBCUDA_DIRS.join(", "),
                });
            };
            // SAFETY: as above.
            match unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) } {
                Ok(lib) => (lib, false, Some(loader_error)),
                Err(e) => {
                    return Err(LibcudaError::LoadFailed {
                        path,
                        message: dl_error_text(&e),
                    })
                }
            }
        }
    };
    let opened = file_of_symbol(&lib, b"cuDriverGetVersion\0")
        .unwrap_or_else(|| PathBuf::from("libcuda.so.1"));
    let path = canonical(&opened);
    let api = resolve_api(&lib).map_err(|symbol| LibcudaError::Incomplete {
        path: opened.clone(),
        symbol: symbol.to_string(),
    })?;
    if let Identity::Stub(evidence) = identify(&api, &path, |n| exports(&lib, n)) {
        return Err(LibcudaError::Stub {
            target: (path != opened).then(|| path.clone()),
            driver: driver_behind(&path, ld_library_path),
            path: opened,
            evidence,
        });
    }
    let version = version_of(&path);
    // Open for the life of the process: `api` points into it.
    std::mem::forget(lib);
    Ok(Libcuda {
        path,
        via_loader,
        version,
        loader_error,
        api,
    })
}

/// What the unversioned name `libcuda.so` leads to, when that is not the
/// libcuda in use. CUDA's runtime, PyTorch and NCCL open `libcuda.so.1`, but
/// some programs (and anything linked with `-lcuda` against a stub at run
/// time) open `libcuda.so`; a stub or another driver copy found under that
/// name breaks only them.
pub enum Unversioned {
    /// `libcuda.so` is a stub.
    Stub {
        /// The path the loader opened.
        path: PathBuf,
        /// What gave it away.
        evidence: String,
    },
    /// `libcuda.so` is another, complete libcuda.
    Other {
        /// The path the loader opened.
        path: PathBuf,
    },
}

/// Opens `libcuda.so` through the loader (local scope: nothing it exports
/// can shadow the libcuda in use) and compares it with `in_use`. None when
/// the name does not resolve or resolves to the same file.
pub fn unversioned_libcuda(in_use: &Path) -> Option<Unversioned> {
    // SAFETY: the same load any program opening `libcuda.so` makes; a stub
    // has no initialisers worth the name, and the driver's own file is
    // already loaded (the loader then hands back the same object).
    let lib = unsafe { Library::open(Some("libcuda.so"), RTLD_LAZY | RTLD_LOCAL) }.ok()?;
    let opened = file_of_symbol(&lib, b"cuDriverGetVersion\0")?;
    let path = canonical(&opened);
    if path == canonical(in_use) {
        return None;
    }
    let out = match resolve_api(&lib) {
        Ok(api) => match identify(&api, &path, |n| exports(&lib, n)) {
            Identity::Stub(evidence) => Unversioned::Stub {
                path: opened,
                evidence,
            },
            Identity::Driver(_) => Unversioned::Other { path: opened },
        },
        Err(symbol) => Unversioned::Stub {
            path: opened,
            evidence: format!("it has no function {symbol}"),
        },
    };
    // Closed again, so that it does not count among the libraries this
    // process uses (only cuDriverGetVersion was called: nothing of it runs
    // on).
    drop(lib);
    Some(out)
}

/// `LD_LIBRARY_PATH` entries that point into a CUDA `stubs` directory.
pub fn stub_dirs_in(ld_library_path: &str) -> Vec<String> {
    ld_library_path
        .split(':')
        .filter(|d| !d.is_empty() && is_stub_path(Path::new(d)))
        .map(str::to_string)
        .collect()
}

fn list_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// `site-packages`-like directories under `prefix/lib` (python3.X/{site,dist}-packages).
fn site_packages_under(lib_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in list_dir_sorted(lib_dir) {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("python3") {
            for sp in ["site-packages", "dist-packages"] {
                let d = entry.join(sp);
                if d.is_dir() {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// Python environments whose `nvidia/*/lib` directories are searched, in
/// order. Kept short and explicit so the search is predictable; anything
/// else can be named with `STRATA_VERIFY_LIB_PATH`.
pub fn site_packages_dirs(env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(v) = env.get(var).filter(|v| !v.is_empty()) {
            prefixes.push(PathBuf::from(v).join("lib"));
        }
    }
    prefixes.push(PathBuf::from("/usr/local/lib"));
    prefixes.push(PathBuf::from("/usr/lib"));
    prefixes.push(PathBuf::from("/opt/conda/lib"));
    for opt in list_dir_sorted(Path::new("/opt")) {
        prefixes.push(opt.join(".venv/lib"));
        prefixes.push(opt.join("lib"));
    }
    if let Some(home) = env.get("HOME").filter(|v| !v.is_empty()) {
        prefixes.push(PathBuf::from(home).join(".local/lib"));
    }
    let mut out = Vec::new();
    for p in prefixes {
        out.extend(site_packages_under(&p));
    }
    // Debian's own python3 packages directory.
    let debian = PathBuf::from("/usr/lib/python3/dist-packages");
    if debian.is_dir() {
        out.push(debian);
    }
    dedup_canonical(out)
}

fn dedup_canonical(dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    dirs.into_iter()
        .filter(|d| seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())))
        .collect()
}

/// Directories searched for the image's CUDA libraries, most preferred first:
/// explicit ones, the wheels' `nvidia/*/lib`, `/usr/local/cuda`, then
/// `LD_LIBRARY_PATH` (stubs excluded) and the distribution's library dirs.
pub fn image_lib_dirs(extra: &[PathBuf], env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    for sp in site_packages_dirs(env) {
        for pkg in list_dir_sorted(&sp.join("nvidia")) {
            let lib = pkg.join("lib");
            if lib.is_dir() {
                dirs.push(lib);
            }
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    dirs.push(PathBuf::from(CUDA_TARGET_LIB_DIR));
    if let Some(ld) = env.get("LD_LIBRARY_PATH") {
        for d in ld.split(':').filter(|d| !d.is_empty()) {
            if !is_stub_path(Path::new(d)) {
                dirs.push(PathBuf::from(d));
            }
        }
    }
    dirs.push(PathBuf::from(MULTIARCH_LIB_DIR));
    dirs.push(PathBuf::from("/usr/lib64"));
    dedup_canonical(dirs.into_iter().filter(|d| d.is_dir()).collect())
}

/// Finds the first existing file among `names` × `dirs`. With
/// `names_first`, every directory is tried for the first name before the
/// second name is considered (used when the image's CUDA major is known and
/// the matching soname must win); otherwise directory order wins.
pub fn find_lib(dirs: &[PathBuf], names: &[String], names_first: bool) -> Option<PathBuf> {
    if names_first {
        for name in names {
            for dir in dirs {
                let p = dir.join(name);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    } else {
        for dir in dirs {
            for name in names {
                let p = dir.join(name);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    None
}
/// Every shared object mapped into this process, in load order.
pub fn loaded_objects() -> Vec<PathBuf> {
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info pointer and our own Vec.
        let out = unsafe { &mut *(data as *mut Vec<PathBuf>) };
        // SAFETY: dl_iterate_phdr passes a valid dl_phdr_info for the duration of the callback.
        let name = unsafe { (*info).dlpi_name };
        if !name.is_null() {
            // SAFETY: dlpi_name is not null (checked) and is the loader's NUL-terminated name of the object.
            let bytes = unsafe { CStr::from_ptr(name) }.to_bytes();
            if !bytes.is_empty() {
                out.push(PathBuf::from(OsStr::from_bytes(bytes)));
            }
        }
        0
    }
    let mut out: Vec<PathBuf> = Vec::new();
    // SAFETY: the callback only appends to `out`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(collect), &mut out as *mut Vec<PathBuf> as *mut c_void) };
    out
}
/// True for libraries worth listing in the report: CUDA, its math
/// libraries, NCCL and the driver's own.
pub fn is_gpu_library(file_name: &str) -> bool {
    const STEMS: &[&str] = &[
        "libcuda",
        "libcublas",
        "libcudnn",
        "libnccl",
        "libnvidia",
        "libnvrtc",
        "libnvjitlink",
        "libcudart",
        "libcusparse",
        "libcufft",
        "libcurand",
        "libcusolver",
        "libnvml",
    ];
    let lower = file_name.to_ascii_lowercase();
    STEMS.iter().any(|s| lower.starts_with(s))
}

/// The version in a library file name: `libcublas.so.12.8.4.1` → `12.8.4.1`.
pub fn version_from_file_name(file_name: &str) -> Option<String> {
    let idx = file_name.find(".so.")?;
    let v = &file_name[idx + 4..];
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Some(v.to_string())
}

/// `libcublasLt.so.12.8.4.1` → `libcublasLt`.
pub fn library_stem(file_name: &str) -> &str {
    file_name.split(".so").next().unwrap_or(file_name)
}

// The directories named after the architecture this binary runs on (kept
// here, below every other item, so that the x86-64 binary's panic
// locations, part of its bytes, do not move): Debian's multiarch library
// directory, and the CUDA toolkit's target directory (`sbsa-linux` is the
// toolkit for Arm64 servers such as Grace Hopper).
#[cfg(target_arch = "x86_64")]
const MULTIARCH_LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu";
#[cfg(target_arch = "x86_64")]
const DRIVER_CONTAINER_LIB_DIR: &str = "/run/nvidia/driver/usr/lib/x86_64-linux-gnu";
#[cfg(target_arch = "x86_64")]
const CUDA_TARGET_LIB_DIR: &str = "/usr/local/cuda/targets/x86_64-linux/lib";
#[cfg(target_arch = "aarch64")]
const MULTIARCH_LIB_DIR: &str = "/usr/lib/aarch64-linux-gnu";
#[cfg(target_arch = "aarch64")]
const DRIVER_CONTAINER_LIB_DIR: &str = "/run/nvidia/driver/usr/lib/aarch64-linux-gnu";
#[cfg(target_arch = "aarch64")]
const CUDA_TARGET_LIB_DIR: &str = "/usr/local/cuda/targets/sbsa-linux/lib";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_paths() {
        assert!(is_stub_path(Path::new(
            "/usr/local/cuda/lib64/stubs/libcuda.so"
        )));
        assert!(!is_stub_path(Path::new(
            "/usr/local/nvidia/lib64/libcuda.so.1"
        )));
        assert_eq!(
            stub_dirs_in("/usr/local/nvidia/lib64::/usr/local/cuda/lib64/stubs"),
            vec!["/usr/local/cuda/lib64/stubs".to_string()]
        );
    }

    #[test]
    fn file_name_versions() {
        assert_eq!(
            version_from_file_name("libcublas.so.12.8.4.1").as_deref(),
            Some("12.8.4.1")
        );
        assert_eq!(version_from_file_name("libnccl.so.2").as_deref(), Some("2"));
        assert_eq!(version_from_file_name("libcudnn.so"), None);
        assert_eq!(version_from_file_name("libfoo.so.1.0-beta"), None);
        assert_eq!(library_stem("libcublasLt.so.12.8.4.1"), "libcublasLt");
        assert!(is_gpu_library("libcublasLt.so.12"));
        assert!(is_gpu_library("libnvidia-ml.so.1"));
        assert!(!is_gpu_library("libc.so.6"));
    }

    #[test]
    fn find_lib_orders() {
        let root = std::env::temp_dir().join(format!("strata-verify-find-{}", std::process::id()));
        let a = root.join("a");
        let b = root.join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("libcublas.so.13"), b"").unwrap();
        std::fs::write(b.join("libcublas.so.12"), b"").unwrap();
        let dirs = vec![a.clone(), b.clone()];
        let names = vec!["libcublas.so.12".to_string(), "libcublas.so.13".to_string()];
        assert_eq!(
            find_lib(&dirs, &names, true),
            Some(b.join("libcublas.so.12"))
        );
        assert_eq!(
            find_lib(&dirs, &names, false),
            Some(a.join("libcublas.so.13"))
        );
        assert_eq!(find_lib(&dirs, &["libnccl.so.2".to_string()], true), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn device_nodes_are_read_from_the_given_dir() {
        let root = std::env::temp_dir().join(format!("strata-verify-dev-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        for n in [
            "nvidiactl",
            "nvidia0",
            "nvidia10",
            "nvidia2",
            "nvidia-uvm-tools",
        ] {
            std::fs::write(root.join(n), b"").unwrap();
        }
        let nodes = device_nodes(&root);
        assert!(nodes.ctl);
        assert!(!nodes.uvm);
        let names: Vec<_> = nodes
            .gpus
            .iter()
            .map(|p| p.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["nvidia0", "nvidia2", "nvidia10"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn loaded_objects_include_libc() {
        let objs = loaded_objects();
        assert!(
            objs.iter().any(|p| p.to_string_lossy().contains("libc.so")),
            "{objs:?}"
        );
    }
}
