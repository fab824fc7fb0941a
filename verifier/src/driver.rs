//! The CUDA driver API through cudarc (dynamic loading, binding level 11.4),
//! with small owning wrappers and every panic contained.
//!
//! cudarc reports a missing library or symbol by panicking; [`contained`]
//! turns such a panic into an error string so the user sees a check failure
//! in words, never a Rust panic message.
//!
//! cudarc types `CUresult` as a Rust enum. A driver newer than the binding
//! level may return a code the enum lacks, and receiving that through an
//! enum-typed return would be undefined behaviour. The calls where unusual
//! codes are plausible — `cuInit`, `cuModuleLoadDataEx` and `cuGetErrorName`
//! — are therefore made through cudarc's library handle with an integer
//! return type; the rest (allocation, copies, launches, events) return
//! classic codes that every binding level knows.

use cudarc::driver::sys;
use std::any::Any;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use sys::{CUdevice, CUdeviceptr, CUfunction, CUstream};

/// A failed driver call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CuError {
    /// The API function.
    pub call: &'static str,
    /// The numeric `CUresult`.
    pub code: i32,
    /// `CUDA_ERROR_...`, or `CUresult N` when the driver has no name for it.
    pub name: String,
}

impl fmt::Display for CuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} returned {} ({})", self.call, self.name, self.code)
    }
}

impl std::error::Error for CuError {}

/// Extracts the message of a caught panic.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning a panic (cudarc's way to report a missing library or
/// symbol) into `Err(message)`. The process-wide panic hook installed by the
/// binary keeps the panic from printing anything itself.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}
/// `cuGetErrorName` with an integer argument (see the module docs).
pub fn error_name(code: i32) -> String {
    type F = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;
    // SAFETY: F is cuGetErrorName's C signature; it returns a static NUL-terminated string, read only when not null.
    let name = contained(|| unsafe {
        let f: F = *sys::culib().get::<F>(b"cuGetErrorName\0").ok()?;
        let mut p: *const c_char = std::ptr::null();
        if f(code, &mut p) == 0 && !p.is_null() {
            Some(CStr::from_ptr(p).to_string_lossy().into_owned())
        } else {
            None
        }
    });
    name.ok()
        .flatten()
        .unwrap_or_else(|| format!("CUresult {code}"))
}

/// The first of `names` that libcuda exports, through cudarc's handle. Used
/// where the CUDA 13 headers renamed a function (`cuDeviceGetUuid` →
/// `_v2`, `cuEventElapsedTime` → `_v2`): drivers of either era then work.
fn raw_sym<F: Copy>(names: &[&str]) -> Option<F> {
    contained(|| {
        names.iter().find_map(|n| {
            let mut c = n.as_bytes().to_vec();
            c.push(0);
            // SAFETY: the caller names F as the function's C signature.
            unsafe { sys::culib().get::<F>(c.as_slice()).ok().map(|s| *s) }
        })
    })
    .ok()
    .flatten()
}

fn err(call: &'static str, code: i32) -> CuError {
    CuError {
        call,
        code,
        name: error_name(code),
    }
}

fn check(call: &'static str, r: sys::CUresult) -> Result<(), CuError> {
    let code = r as i32;
    if code == 0 {
        Ok(())
    } else {
        Err(err(call, code))
    }
}
/// The path of the libcuda that cudarc itself opened, found through the
/// address of its `cuInit`. Loads cudarc's library handle if needed.
pub fn cudarc_libcuda_path() -> Result<std::path::PathBuf, String> {
    // SAFETY: the cuInit symbol is only looked up, and its address only handed to dladdr: nothing is called or read.
    contained(|| unsafe {
        let sym = sys::culib()
            .get::<*mut c_void>(b"cuInit\0")
            .map_err(|e| e.to_string())?;
        crate::discover::file_of_address(*sym as usize)
            .ok_or_else(|| "dladdr found no file for cuInit".to_string())
    })?
}
/// `cuInit(0)`.
pub fn init() -> Result<(), CuError> {
    type F = unsafe extern "C" fn(c_uint) -> c_int;
    // SAFETY: F is cuInit's C signature in every libcuda, and 0 is the flags value the API requires.
    let code = contained(|| unsafe {
        let f: F = *sys::culib()
            .get::<F>(b"cuInit\0")
            .map_err(|e| e.to_string())?;
        Ok::<c_int, String>(f(0))
    });
    match code {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(c)) => Err(err("cuInit", c)),
        Ok(Err(m)) | Err(m) => Err(CuError {
            call: "cuInit",
            code: -1,
            name: m,
        }),
    }
}
/// `cuDriverGetVersion`: e.g. 13000 for CUDA 13.0.
pub fn driver_version() -> Result<i32, CuError> {
    let mut v: c_int = 0;
    // SAFETY: writes one int through a pointer to a live local.
    check("cuDriverGetVersion", unsafe {
        sys::cuDriverGetVersion(&mut v)
    })?;
    Ok(v)
}
/// `cuDeviceGetCount`.
pub fn device_count() -> Result<i32, CuError> {
    let mut n: c_int = 0;
    // SAFETY: writes one int through a pointer to a live local.
    check("cuDeviceGetCount", unsafe { sys::cuDeviceGetCount(&mut n) })?;
    Ok(n)
}

/// A CUDA device.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// CUDA ordinal.
    pub ordinal: i32,
    /// Driver handle.
    pub dev: CUdevice,
}
impl Device {
    /// `cuDeviceGet`.
    pub fn get(ordinal: i32) -> Result<Self, CuError> {
        let mut dev: CUdevice = 0;
        // SAFETY: writes one device handle through a pointer to a live local; the driver checks the ordinal.
        check("cuDeviceGet", unsafe {
            sys::cuDeviceGet(&mut dev, ordinal)
        })?;
        Ok(Device { ordinal, dev })
    }
    /// `cuDeviceGetAttribute`.
    pub fn attribute(&self, attr: sys::CUdevice_attribute) -> Result<i32, CuError> {
        let mut v: c_int = 0;
        // SAFETY: writes one int through a pointer to a live local; `self.dev` came from cuDeviceGet.
        check("cuDeviceGetAttribute", unsafe {
            sys::cuDeviceGetAttribute(&mut v, attr, self.dev)
        })?;
        Ok(v)
    }

    /// Compute capability.
    pub fn compute_capability(&self) -> Result<(u32, u32), CuError> {
        use sys::CUdevice_attribute::*;
        let major = self.attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = self.attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        Ok((major.max(0) as u32, minor.max(0) as u32))
    }

    /// `cuDeviceGetName`.
    pub fn name(&self) -> Result<String, CuError> {
        let mut buf = [0u8; 256];
        // SAFETY: the driver writes at most `buf.len()` bytes, the length passed, into the local buffer.
        check("cuDeviceGetName", unsafe {
            sys::cuDeviceGetName(
                buf.as_mut_ptr() as *mut c_char,
                buf.len() as c_int,
                self.dev,
            )
        })?;
        Ok(c_buf_to_string(&buf))
    }
    /// `cuDeviceTotalMem`.
    pub fn total_mem(&self) -> Result<u64, CuError> {
        let mut bytes: usize = 0;
        // SAFETY: writes one size_t through a pointer to a live local.
        check("cuDeviceTotalMem", unsafe {
            sys::cuDeviceTotalMem_v2(&mut bytes, self.dev)
        })?;
        Ok(bytes as u64)
    }
    /// `GPU-xxxxxxxx-xxxx-...`, the form `nvidia-smi -L` prints.
    pub fn uuid(&self) -> Result<String, CuError> {
        type F = unsafe extern "C" fn(*mut [u8; 16], CUdevice) -> c_int;
        let f: F = raw_sym(&["cuDeviceGetUuid_v2", "cuDeviceGetUuid"]).ok_or(CuError {
            call: "cuDeviceGetUuid",
            code: -1,
            name: "symbol not found".into(),
        })?;
        let mut b = [0u8; 16];
        // SAFETY: 16-byte out buffer, the layout of CUuuid.
        let code = unsafe { f(&mut b, self.dev) };
        if code != 0 {
            return Err(err("cuDeviceGetUuid", code));
        }
        let hex =
            |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
        Ok(format!(
            "GPU-{}-{}-{}-{}-{}",
            hex(0..4),
            hex(4..6),
            hex(6..8),
            hex(8..10),
            hex(10..16)
        ))
    }

    /// `cuDeviceGetPCIBusId`, e.g. `0000:00:1E.0`.
    pub fn pci_bus_id(&self) -> Result<String, CuError> {
        let mut buf = [0u8; 64];
        // SAFETY: the driver writes at most `buf.len()` bytes, the length passed, into the local buffer.
        check("cuDeviceGetPCIBusId", unsafe {
            sys::cuDeviceGetPCIBusId(
                buf.as_mut_ptr() as *mut c_char,
                buf.len() as c_int,
                self.dev,
            )
        })?;
        Ok(c_buf_to_string(&buf))
    }
}
fn c_buf_to_string(buf: &[u8]) -> String {
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The device's primary context, made current on the calling thread.
///
/// It is retained and deliberately never released: NCCL and the cuBLAS/cuDNN
/// runtime use the same primary context later in the run, and the process
/// ends by `execve`, which frees everything at once.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    ctx: sys::CUcontext,
}

// SAFETY: a CUcontext handle may be made current on any thread.
unsafe impl Send for Context {}
// SAFETY: as above; the handle itself is immutable.
unsafe impl Sync for Context {}
impl Context {
    /// `cuDevicePrimaryCtxRetain` + `cuCtxSetCurrent`.
    pub fn primary(device: &Device) -> Result<Self, CuError> {
        let mut ctx: sys::CUcontext = std::ptr::null_mut();
        // SAFETY: writes one context handle through a pointer to a live local; Drop releases it.
        check("cuDevicePrimaryCtxRetain", unsafe {
            sys::cuDevicePrimaryCtxRetain(&mut ctx, device.dev)
        })?;
        let c = Context { ctx };
        c.make_current()?;
        Ok(c)
    }
    /// `cuCtxSetCurrent`.
    pub fn make_current(&self) -> Result<(), CuError> {
        // SAFETY: `self.ctx` is a primary context retained by `primary` and released only in Drop.
        check("cuCtxSetCurrent", unsafe { sys::cuCtxSetCurrent(self.ctx) })
    }
}
/// `cuMemGetInfo`: (free, total) bytes of the current context's device.
pub fn mem_info() -> Result<(u64, u64), CuError> {
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: writes two size_t values through pointers to live locals.
    check("cuMemGetInfo", unsafe {
        sys::cuMemGetInfo_v2(&mut free, &mut total)
    })?;
    Ok((free as u64, total as u64))
}
/// `cuCtxSynchronize`.
pub fn synchronize() -> Result<(), CuError> {
    // SAFETY: no arguments; it waits for the current context's work to finish.
    check("cuCtxSynchronize", unsafe { sys::cuCtxSynchronize() })
}

/// Device memory, freed on drop.
#[derive(Debug)]
pub struct DevBuf {
    /// Device address.
    pub ptr: CUdeviceptr,
    /// Size in bytes.
    pub bytes: usize,
}
impl DevBuf {
    /// `cuMemAlloc` in the current context.
    pub fn alloc(bytes: usize) -> Result<Self, CuError> {
        let mut ptr: CUdeviceptr = 0;
        // SAFETY: writes one device pointer through a pointer to a live local; at least one byte is asked for.
        check("cuMemAlloc", unsafe {
            sys::cuMemAlloc_v2(&mut ptr, bytes.max(1))
        })?;
        Ok(DevBuf { ptr, bytes })
    }

    /// Allocates and copies `data` in.
    pub fn from_slice<T: Copy>(data: &[T]) -> Result<Self, CuError> {
        let buf = Self::alloc(std::mem::size_of_val(data))?;
        buf.upload(data)?;
        Ok(buf)
    }

    /// `cuMemcpyHtoD` of `data` to the start of the buffer.
    pub fn upload<T: Copy>(&self, data: &[T]) -> Result<(), CuError> {
        let bytes = std::mem::size_of_val(data);
        assert!(bytes <= self.bytes, "upload larger than the buffer");
        // SAFETY: `data` is a live host slice of `bytes` bytes and the allocation holds at least that many (asserted above).
        check("cuMemcpyHtoD", unsafe {
            sys::cuMemcpyHtoD_v2(self.ptr, data.as_ptr() as *const c_void, bytes)
        })
    }
    /// `cuMemcpyDtoH` of the first `out.len()` elements.
    pub fn download<T: Copy>(&self, out: &mut [T]) -> Result<(), CuError> {
        let bytes = std::mem::size_of_val(out);
        assert!(bytes <= self.bytes, "download larger than the buffer");
        // SAFETY: `out` is a live, writable host slice of `bytes` bytes and the allocation holds at least that many (asserted above).
        check("cuMemcpyDtoH", unsafe {
            sys::cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, self.ptr, bytes)
        })
    }
    /// `cuMemsetD8`.
    pub fn fill_bytes(&self, value: u8) -> Result<(), CuError> {
        // SAFETY: sets exactly the `self.bytes` bytes of this live allocation.
        check("cuMemsetD8", unsafe {
            sys::cuMemsetD8_v2(self.ptr, value, self.bytes)
        })
    }
}
impl Drop for DevBuf {
    fn drop(&mut self) {
        // Errors here (a context already torn down) have nothing to report to.
        // SAFETY: `self.ptr` came from cuMemAlloc and is freed once, here.
        let _ = contained(|| unsafe { sys::cuMemFree_v2(self.ptr) });
    }
}
/// A module failed to load; `log` holds the JIT compiler's error log.
#[derive(Debug, Clone)]
pub struct JitError {
    /// The driver error.
    pub error: CuError,
    /// What the PTX JIT compiler said.
    pub log: String,
}

/// A loaded module.
#[derive(Debug)]
pub struct Module {
    raw: sys::CUmodule,
}

impl Module {
    /// `cuModuleLoadDataEx` with the JIT error log captured.
    pub fn load_ptx(ptx: &str) -> Result<Self, JitError> {
        type F = unsafe extern "C" fn(
            *mut sys::CUmodule,
            *const c_void,
            c_uint,
            *mut c_int,
            *mut *mut c_void,
        ) -> c_int;
        let image = CString::new(ptx).map_err(|_| JitError {
            error: CuError {
                call: "cuModuleLoadDataEx",
                code: -1,
                name: "PTX text contains a NUL byte".into(),
            },
            log: String::new(),
        })?;
        let mut log = vec![0u8; 16 * 1024];
        // CU_JIT_ERROR_LOG_BUFFER = 5, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6.
        let mut options: [c_int; 2] = [5, 6];
        let mut values: [*mut c_void; 2] =
            [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
        let mut raw: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: F is cuModuleLoadDataEx's C signature; the PTX is NUL-terminated, and the two options name the log buffer and its size, all alive across the call.
        let code = contained(|| unsafe {
            let f: F = *sys::culib()
                .get::<F>(b"cuModuleLoadDataEx\0")
                .map_err(|e| e.to_string())?;
            Ok::<c_int, String>(f(
                &mut raw,
                image.as_ptr() as *const c_void,
                2,
                options.as_mut_ptr(),
                values.as_mut_ptr(),
            ))
        });
        let code = match code {
            Ok(Ok(c)) => c,
            Ok(Err(m)) | Err(m) => {
                return Err(JitError {
                    error: CuError {
                        call: "cuModuleLoadDataEx",
                        code: -1,
                        name: m,
                    },
                    log: String::new(),
                })
            }
        };
        if code != 0 {
            return Err(JitError {
                error: err("cuModuleLoadDataEx", code),
                log: c_buf_to_string(&log).trim().to_string(),
            });
        }
        Ok(Module { raw })
    }
    /// `cuModuleGetFunction`.
    pub fn function(&self, name: &str) -> Result<CUfunction, CuError> {
        let cname = CString::new(name).map_err(|_| CuError {
            call: "cuModuleGetFunction",
            code: -1,
            name: "NUL in name".into(),
        })?;
        let mut f: CUfunction = std::ptr::null_mut();
        // SAFETY: `self.raw` is a loaded module, `cname` is NUL-terminated and alive, and one handle is written to a live local.
        check("cuModuleGetFunction", unsafe {
            sys::cuModuleGetFunction(&mut f, self.raw, cname.as_ptr())
        })?;
        Ok(f)
    }
}
/// Kernel argument pointer for [`launch`]: the address of a local value.
pub fn arg<T>(value: &T) -> *mut c_void {
    value as *const T as *mut c_void
}

/// `cuLaunchKernel` on the default stream.
///
/// # Safety
/// `f` must be a function of a loaded module, and `params` must point to
/// values of exactly the kernel's parameter types, with every device pointer
/// among them valid for what the kernel reads and writes.
pub unsafe fn launch(
    f: CUfunction,
    grid: u32,
    block: u32,
    smem: u32,
    params: &mut [*mut c_void],
) -> Result<(), CuError> {
    // SAFETY: the caller guarantees `f` and `params` (this function's contract); grid, block and shared memory sizes are checked by the driver.
    check("cuLaunchKernel", unsafe {
        sys::cuLaunchKernel(
            f,
            grid,
            1,
            1,
            block,
            1,
            1,
            smem,
            std::ptr::null_mut(),
            params.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    })
}
/// `cuMemcpyDtoDAsync` on the default stream.
pub fn copy_d2d(dst: CUdeviceptr, src: CUdeviceptr, bytes: usize) -> Result<(), CuError> {
    // SAFETY: only device memory is involved: the driver checks both device pointers and the size, and reports a bad one as an error.
    check("cuMemcpyDtoDAsync", unsafe {
        sys::cuMemcpyDtoDAsync_v2(dst, src, bytes, std::ptr::null_mut())
    })
}
/// Times `iters` runs of `body` on the default stream with CUDA events and
/// returns milliseconds.
pub fn time_ms(iters: u32, mut body: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut start: sys::CUevent = std::ptr::null_mut();
    let mut stop: sys::CUevent = std::ptr::null_mut();
    // SAFETY: each call writes one event handle through a pointer to a live local; both are destroyed below.
    unsafe {
        check("cuEventCreate", sys::cuEventCreate(&mut start, 0)).map_err(|e| e.to_string())?;
        check("cuEventCreate", sys::cuEventCreate(&mut stop, 0)).map_err(|e| e.to_string())?;
    }
    let result = (|| {
        // SAFETY: `start` was created above; it is recorded on the default stream.
        unsafe {
            check(
                "cuEventRecord",
                sys::cuEventRecord(start, std::ptr::null_mut()),
            )
            .map_err(|e| e.to_string())?
        };
        for _ in 0..iters {
            body()?;
        }
        // SAFETY: `stop` was created above; recording it and waiting for it touch no host memory.
        unsafe {
            check(
                "cuEventRecord",
                sys::cuEventRecord(stop, std::ptr::null_mut()),
            )
            .map_err(|e| e.to_string())?;
            check("cuEventSynchronize", sys::cuEventSynchronize(stop))
                .map_err(|e| e.to_string())?;
        }
        type F = unsafe extern "C" fn(*mut f32, sys::CUevent, sys::CUevent) -> c_int;
        let f: F = raw_sym(&["cuEventElapsedTime_v2", "cuEventElapsedTime"])
            .ok_or("libcuda exports no cuEventElapsedTime")?;
        let mut ms: f32 = 0.0;
        // SAFETY: two recorded events of this context and an out pointer.
        let code = unsafe { f(&mut ms, start, stop) };
        if code != 0 {
            return Err(err("cuEventElapsedTime", code).to_string());
        }
        Ok(f64::from(ms))
    })();
    // SAFETY: both events were created above and are destroyed once, here.
    unsafe {
        let _ = sys::cuEventDestroy_v2(start);
        let _ = sys::cuEventDestroy_v2(stop);
    }
    result
}
/// Plain words for the `cuInit` and module-load errors users meet.
pub fn explain(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        34 => (
            "the libcuda in use is the CUDA toolkit's stub (CUDA_ERROR_STUB_LIBRARY): the real driver library was not injected or a stubs directory shadows it",
            "remove any .../stubs directory from LD_LIBRARY_PATH and /etc/ld.so.conf*, and start the container with GPU access (docker run --gpus all, or the NVIDIA container toolkit / CDI device nvidia.com/gpu=all)",
        ),
        100 => (
            "the driver sees no GPU (CUDA_ERROR_NO_DEVICE)",
            "start the container with GPUs (docker run --gpus all, Kubernetes resource nvidia.com/gpu), and check NVIDIA_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES are not empty or wrong",
        ),
        803 => (
            "the user-space driver (libcuda) and the kernel module have different versions (CUDA_ERROR_SYSTEM_DRIVER_MISMATCH), often a cuda-compat libcuda that does not match the host driver",
            "remove the image's cuda-compat libcuda from the loader path, or make the host driver and the injected libraries the same version (reboot after a driver upgrade)",
        ),
        804 => (
            "forward compatibility (a newer cuda-compat libcuda on an older driver) is not supported on this GPU (CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE); it works only on data-center GPUs",
            "upgrade the host driver to one that supports the image's CUDA version natively, or remove cuda-compat from the image",
        ),
        802 => (
            "the system is not ready (CUDA_ERROR_SYSTEM_NOT_READY); on NVSwitch systems (HGX A100/H100) this means the NVIDIA Fabric Manager is not running",
            "start nvidia-fabricmanager on the host (same version as the driver)",
        ),
        999 => (
            "the driver failed to initialise (CUDA_ERROR_UNKNOWN); usually /dev/nvidia-uvm is missing or the kernel module is in a bad state",
            "check that /dev/nvidia-uvm exists in the container (the NVIDIA container toolkit adds it) and that nvidia-smi works on the host",
        ),
        46 => (
            "the GPUs are busy or unavailable (CUDA_ERROR_DEVICES_UNAVAILABLE): exclusive-process compute mode with another process on them",
            "stop the other process or set compute mode to Default on the host",
        ),
        222 => (
            "the driver is too old for the PTX version of the embedded kernels (CUDA_ERROR_UNSUPPORTED_PTX_VERSION)",
            "upgrade the host driver (PTX 7.0 needs CUDA 11.0 / R450, PTX 8.0 needs CUDA 12.0 / R525)",
        ),
        221 => (
            "the PTX JIT compiler library is missing (CUDA_ERROR_JIT_COMPILER_NOT_FOUND)",
            "let the runtime inject libnvidia-ptxjitcompiler.so.1: set NVIDIA_DRIVER_CAPABILITIES to include compute",
        ),
        209 => (
            "no kernel image for this GPU (CUDA_ERROR_NO_BINARY_FOR_GPU)",
            "the GPU's architecture is not one this image was built for; run on an allowed GPU",
        ),
        2 => (
            "out of GPU memory (CUDA_ERROR_OUT_OF_MEMORY)",
            "another process holds the GPU's memory; stop it or run on a free GPU",
        ),
        _ => return None,
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn panics_become_errors() {
        let r: Result<(), String> = contained(|| panic!("Missing symbol cuFoo: not found"));
        assert_eq!(r.unwrap_err(), "Missing symbol cuFoo: not found");
        let r: Result<u32, String> = contained(|| 7);
        assert_eq!(r.unwrap(), 7);
    }
    #[test]
    fn buffers_to_strings() {
        assert_eq!(c_buf_to_string(b"NVIDIA H100\0garbage"), "NVIDIA H100");
        assert_eq!(c_buf_to_string(b"no nul"), "no nul");
    }

    #[test]
    fn plain_words_for_the_codes_users_meet() {
        for code in [34, 100, 803, 804, 802, 999, 222] {
            let (cause, fix) = explain(code).unwrap();
            assert!(!cause.is_empty() && !fix.is_empty());
        }
        assert!(explain(34).unwrap().1.contains("--gpus all"));
        assert!(explain(12345).is_none());
    }
}
