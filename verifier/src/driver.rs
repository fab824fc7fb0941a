//! The CUDA driver API with small owning wrappers, every call checked.
//!
//! The functions come from [`crate::ffi::cuda::CudaApi`], resolved once from
//! the libcuda the dynamic loader gives for `libcuda.so.1` (see
//! [`crate::discover::load_libcuda`]) and installed here with [`install`]
//! before any thread starts. Return codes are plain integers, named by
//! `cuGetErrorName`.

use crate::ffi::cuda::{CudaApi, Handle};
use std::any::Any;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

pub use crate::ffi::cuda::{Device as CUdevice, DevicePtr as CUdeviceptr};
/// `CUfunction`.
pub type CUfunction = Handle;
/// `CUstream`.
pub type CUstream = Handle;

static API: OnceLock<CudaApi> = OnceLock::new();

/// Makes `api` the driver for the rest of the process. The first call wins.
pub fn install(api: CudaApi) {
    let _ = API.set(api);
}

fn api() -> Result<&'static CudaApi, CuError> {
    API.get().ok_or_else(|| CuError {
        call: "libcuda",
        code: -1,
        name: "the driver library is not loaded".into(),
    })
}

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

/// Runs `f`, turning a panic (a bug, or a library misbehaving under us) into
/// `Err(message)`. The process-wide panic hook installed by the binary keeps
/// the panic from printing anything itself.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}

/// `cuGetErrorName`, or `CUresult N` when the driver has no name for `code`.
pub fn error_name(code: i32) -> String {
    let named = api().ok().and_then(|a| {
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: out pointer; the driver returns a static string.
        if unsafe { (a.get_error_name)(code, &mut p) } == 0 && !p.is_null() {
            // SAFETY: non-null NUL-terminated static string.
            Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        } else {
            None
        }
    });
    named.unwrap_or_else(|| match code {
        34 => "CUDA_ERROR_STUB_LIBRARY".into(),
        _ => format!("CUresult {code}"),
    })
}

fn err(call: &'static str, code: i32) -> CuError {
    CuError {
        call,
        code,
        name: error_name(code),
    }
}

fn check(call: &'static str, code: c_int) -> Result<(), CuError> {
    if code == 0 {
        Ok(())
    } else {
        Err(err(call, code))
    }
}

/// `cuInit(0)`.
pub fn init() -> Result<(), CuError> {
    let a = api()?;
    // SAFETY: flags must be 0.
    check("cuInit", unsafe { (a.init)(0) })
}

/// `cuDriverGetVersion`: e.g. 13000 for CUDA 13.0.
pub fn driver_version() -> Result<i32, CuError> {
    let a = api()?;
    let mut v: c_int = 0;
    // SAFETY: out pointer.
    check("cuDriverGetVersion", unsafe {
        (a.driver_get_version)(&mut v)
    })?;
    Ok(v)
}

/// `cuDeviceGetCount`.
pub fn device_count() -> Result<i32, CuError> {
    let a = api()?;
    let mut n: c_int = 0;
    // SAFETY: out pointer.
    check("cuDeviceGetCount", unsafe { (a.device_get_count)(&mut n) })?;
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
        let a = api()?;
        let mut dev: CUdevice = 0;
        // SAFETY: out pointer.
        check("cuDeviceGet", unsafe { (a.device_get)(&mut dev, ordinal) })?;
        Ok(Device { ordinal, dev })
    }

    /// `cuDeviceGetAttribute` (`attr`: a value of [`crate::ffi::cuda::attr`]).
    pub fn attribute(&self, attr: i32) -> Result<i32, CuError> {
        let a = api()?;
        let mut v: c_int = 0;
        // SAFETY: out pointer.
        check("cuDeviceGetAttribute", unsafe {
            (a.device_get_attribute)(&mut v, attr, self.dev)
        })?;
        Ok(v)
    }

    /// Compute capability.
    pub fn compute_capability(&self) -> Result<(u32, u32), CuError> {
        use crate::ffi::cuda::attr;
        let major = self.attribute(attr::COMPUTE_CAPABILITY_MAJOR)?;
        let minor = self.attribute(attr::COMPUTE_CAPABILITY_MINOR)?;
        Ok((major.max(0) as u32, minor.max(0) as u32))
    }

    /// `cuDeviceGetName`.
    pub fn name(&self) -> Result<String, CuError> {
        let a = api()?;
        let mut buf = [0u8; 256];
        // SAFETY: buffer and its length.
        check("cuDeviceGetName", unsafe {
            (a.device_get_name)(
                buf.as_mut_ptr() as *mut c_char,
                buf.len() as c_int,
                self.dev,
            )
        })?;
        Ok(c_buf_to_string(&buf))
    }

    /// `cuDeviceTotalMem`.
    pub fn total_mem(&self) -> Result<u64, CuError> {
        let a = api()?;
        let mut bytes: usize = 0;
        // SAFETY: out pointer.
        check("cuDeviceTotalMem", unsafe {
            (a.device_total_mem)(&mut bytes, self.dev)
        })?;
        Ok(bytes as u64)
    }

    /// `GPU-xxxxxxxx-xxxx-...`, the form `nvidia-smi -L` prints.
    pub fn uuid(&self) -> Result<String, CuError> {
        let a = api()?;
        let mut b = [0u8; 16];
        // SAFETY: 16-byte out buffer, the layout of CUuuid.
        check("cuDeviceGetUuid", unsafe {
            (a.device_get_uuid)(&mut b, self.dev)
        })?;
        Ok(format_uuid(&b))
    }

    /// `cuDeviceGetPCIBusId`, e.g. `0000:00:1E.0`.
    pub fn pci_bus_id(&self) -> Result<String, CuError> {
        let a = api()?;
        let mut buf = [0u8; 64];
        // SAFETY: buffer and its length.
        check("cuDeviceGetPCIBusId", unsafe {
            (a.device_get_pci_bus_id)(
                buf.as_mut_ptr() as *mut c_char,
                buf.len() as c_int,
                self.dev,
            )
        })?;
        Ok(c_buf_to_string(&buf))
    }
}

/// `GPU-` followed by the 16 bytes in the 8-4-4-4-12 grouping.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
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
    ctx: Handle,
}

// SAFETY: a CUcontext handle may be made current on any thread.
unsafe impl Send for Context {}
// SAFETY: as above; the handle itself is immutable.
unsafe impl Sync for Context {}

impl Context {
    /// `cuDevicePrimaryCtxRetain` + `cuCtxSetCurrent`.
    pub fn primary(device: &Device) -> Result<Self, CuError> {
        let a = api()?;
        let mut ctx: Handle = std::ptr::null_mut();
        // SAFETY: out pointer.
        check("cuDevicePrimaryCtxRetain", unsafe {
            (a.primary_ctx_retain)(&mut ctx, device.dev)
        })?;
        let c = Context { ctx };
        c.make_current()?;
        Ok(c)
    }

    /// `cuCtxSetCurrent`.
    pub fn make_current(&self) -> Result<(), CuError> {
        let a = api()?;
        // SAFETY: a retained context.
        check("cuCtxSetCurrent", unsafe { (a.ctx_set_current)(self.ctx) })
    }
}

/// `cuMemGetInfo`: (free, total) bytes of the current context's device.
pub fn mem_info() -> Result<(u64, u64), CuError> {
    let a = api()?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: out pointers.
    check("cuMemGetInfo", unsafe {
        (a.mem_get_info)(&mut free, &mut total)
    })?;
    Ok((free as u64, total as u64))
}

/// `cuCtxSynchronize`.
pub fn synchronize() -> Result<(), CuError> {
    let a = api()?;
    // SAFETY: no arguments.
    check("cuCtxSynchronize", unsafe { (a.ctx_synchronize)() })
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
        let a = api()?;
        let mut ptr: CUdeviceptr = 0;
        // SAFETY: out pointer.
        check("cuMemAlloc", unsafe {
            (a.mem_alloc)(&mut ptr, bytes.max(1))
        })?;
        Ok(DevBuf { ptr, bytes })
    }

    /// Allocates and copies `data` in.
    pub fn from_slice<T: Copy>(data: &[T]) -> Result<Self, CuError> {
        let buf = Self::alloc(std::mem::size_of_val(data))?;
        buf.upload(data)?;
        Ok(buf)
    }

    /// `cuMemcpyHtoD` of `data` to the start of the buffer (at most the
    /// buffer's size).
    pub fn upload<T: Copy>(&self, data: &[T]) -> Result<(), CuError> {
        let a = api()?;
        let bytes = std::mem::size_of_val(data).min(self.bytes);
        // SAFETY: `bytes` fit in both the host slice and the buffer.
        check("cuMemcpyHtoD", unsafe {
            (a.memcpy_htod)(self.ptr, data.as_ptr() as *const c_void, bytes)
        })
    }

    /// `cuMemcpyDtoH` of the first `out.len()` elements (at most the
    /// buffer's size).
    pub fn download<T: Copy>(&self, out: &mut [T]) -> Result<(), CuError> {
        let a = api()?;
        let bytes = std::mem::size_of_val(out).min(self.bytes);
        // SAFETY: `bytes` fit in both the host slice and the buffer.
        check("cuMemcpyDtoH", unsafe {
            (a.memcpy_dtoh)(out.as_mut_ptr() as *mut c_void, self.ptr, bytes)
        })
    }

    /// `cuMemsetD8`.
    pub fn fill_bytes(&self, value: u8) -> Result<(), CuError> {
        let a = api()?;
        // SAFETY: the whole buffer.
        check("cuMemsetD8", unsafe {
            (a.memset_d8)(self.ptr, value, self.bytes)
        })
    }

    /// `cuMemsetD32` of every 32-bit word with `value`.
    pub fn fill_u32(&self, value: u32) -> Result<(), CuError> {
        let a = api()?;
        // SAFETY: the whole buffer, in 4-byte words.
        check("cuMemsetD32", unsafe {
            (a.memset_d32)(self.ptr, value, self.bytes / 4)
        })
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // Errors here (a context already torn down) have nothing to report to.
        if let Ok(a) = api() {
            // SAFETY: an allocation of ours, freed once.
            let _ = unsafe { (a.mem_free)(self.ptr) };
        }
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
    raw: Handle,
}

// SAFETY: a CUmodule handle may be used from any thread of its context.
unsafe impl Send for Module {}
// SAFETY: as above; the handle itself is immutable.
unsafe impl Sync for Module {}

impl Module {
    /// `cuModuleLoadDataEx` with the JIT error log captured.
    pub fn load_ptx(ptx: &str) -> Result<Self, JitError> {
        let no_log = |error: CuError| JitError {
            error,
            log: String::new(),
        };
        let a = api().map_err(no_log)?;
        let image = CString::new(ptx).map_err(|_| {
            no_log(CuError {
                call: "cuModuleLoadDataEx",
                code: -1,
                name: "PTX text contains a NUL byte".into(),
            })
        })?;
        let mut log = vec![0u8; 16 * 1024];
        // CU_JIT_ERROR_LOG_BUFFER = 5, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6.
        let mut options: [c_int; 2] = [5, 6];
        let mut values: [*mut c_void; 2] =
            [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
        let mut raw: Handle = std::ptr::null_mut();
        // SAFETY: NUL-terminated PTX; two options with their values; the log
        // buffer outlives the call.
        let code = unsafe {
            (a.module_load_data_ex)(
                &mut raw,
                image.as_ptr() as *const c_void,
                2,
                options.as_mut_ptr(),
                values.as_mut_ptr(),
            )
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
        let a = api()?;
        let cname = CString::new(name).map_err(|_| CuError {
            call: "cuModuleGetFunction",
            code: -1,
            name: "NUL in name".into(),
        })?;
        let mut f: CUfunction = std::ptr::null_mut();
        // SAFETY: out pointer, a loaded module, a NUL-terminated name.
        check("cuModuleGetFunction", unsafe {
            (a.module_get_function)(&mut f, self.raw, cname.as_ptr())
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
    let a = api()?;
    // SAFETY: the caller guarantees `f` and `params` (this function's contract); grid, block and shared memory sizes are checked by the driver.
    check("cuLaunchKernel", unsafe {
        (a.launch_kernel)(
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
    let a = api()?;
    // SAFETY: the caller's buffers hold `bytes`.
    check("cuMemcpyDtoDAsync", unsafe {
        (a.memcpy_dtod_async)(dst, src, bytes, std::ptr::null_mut())
    })
}

/// `cuStreamCreate` with default flags, in the current context.
pub fn stream_create() -> Result<CUstream, CuError> {
    let a = api()?;
    let mut s: CUstream = std::ptr::null_mut();
    // SAFETY: out pointer; flags 0.
    check("cuStreamCreate", unsafe { (a.stream_create)(&mut s, 0) })?;
    Ok(s)
}

/// Times `iters` runs of `body` on the default stream with CUDA events and
/// returns milliseconds.
pub fn time_ms(iters: u32, mut body: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let a = api().map_err(|e| e.to_string())?;
    let mut start: Handle = std::ptr::null_mut();
    let mut stop: Handle = std::ptr::null_mut();
    // SAFETY: out pointers; flags 0.
    unsafe {
        check("cuEventCreate", (a.event_create)(&mut start, 0)).map_err(|e| e.to_string())?;
        if let Err(e) = check("cuEventCreate", (a.event_create)(&mut stop, 0)) {
            (a.event_destroy)(start);
            return Err(e.to_string());
        }
    }
    let null: Handle = std::ptr::null_mut();
    let result = (|| {
        // SAFETY: events of this context, the default stream.
        check("cuEventRecord", unsafe { (a.event_record)(start, null) })
            .map_err(|e| e.to_string())?;
        for _ in 0..iters {
            body()?;
        }
        // SAFETY: as above.
        unsafe {
            check("cuEventRecord", (a.event_record)(stop, null)).map_err(|e| e.to_string())?;
            check("cuEventSynchronize", (a.event_synchronize)(stop)).map_err(|e| e.to_string())?;
        }
        let mut ms: f32 = 0.0;
        // SAFETY: two recorded events of this context and an out pointer.
        check("cuEventElapsedTime", unsafe {
            (a.event_elapsed_time)(&mut ms, start, stop)
        })
        .map_err(|e| e.to_string())?;
        Ok(f64::from(ms))
    })();
    // SAFETY: events created above, destroyed once.
    unsafe {
        (a.event_destroy)(start);
        (a.event_destroy)(stop);
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
