//! The CUDA driver API: the ~30 functions the checks call, resolved once,
//! up front, from the libcuda that `dlopen("libcuda.so.1")` gave — the same
//! file PyTorch and every CUDA program in the image will use.
//!
//! Resolving every function before any thread starts has two effects that
//! matter here: a missing function is an error value naming the function
//! (not a panic in the middle of a check), and no `dlsym` runs later, while
//! the loader thread holds the dynamic loader's lock for hundreds of
//! milliseconds opening cuDNN (every `dlsym` waits for that lock).
//!
//! Every function returns `CUresult`, taken as a plain integer: a code this
//! file does not know is just a number, named by `cuGetErrorName`.

use std::ffi::{c_char, c_int, c_uint, c_void};

/// `CUdevice`.
pub type Device = c_int;
/// `CUdeviceptr`.
pub type DevicePtr = u64;
/// `CUcontext`, `CUmodule`, `CUfunction`, `CUstream`, `CUevent`: opaque handles.
pub type Handle = *mut c_void;

/// `CUdevice_attribute` values used here (unchanged since CUDA 4).
pub mod attr {
    /// CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
    pub const MULTIPROCESSOR_COUNT: i32 = 16;
    /// CU_DEVICE_ATTRIBUTE_COMPUTE_MODE
    pub const COMPUTE_MODE: i32 = 20;
    /// CU_DEVICE_ATTRIBUTE_ECC_ENABLED
    pub const ECC_ENABLED: i32 = 32;
    /// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    pub const COMPUTE_CAPABILITY_MAJOR: i32 = 75;
    /// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
    pub const COMPUTE_CAPABILITY_MINOR: i32 = 76;
}

/// `CUDA_ERROR_STUB_LIBRARY`: what every function of the CUDA toolkit's
/// link-time stub `libcuda.so` returns.
pub const ERROR_STUB_LIBRARY: i32 = 34;

macro_rules! driver_api {
    ($( $field:ident : [$($sym:literal),+] fn($($arg:ty),*) ; )*) => {
        /// Function pointers into libcuda.
        #[derive(Clone, Copy)]
        pub struct CudaApi {
            $(
                #[doc = concat!("`", $($sym, " ",)+ "`")]
                pub $field: unsafe extern "C" fn($($arg),*) -> c_int,
            )*
        }

        impl CudaApi {
            /// Resolves every function through `lookup` (which returns the
            /// address of a symbol, or None). The first of several names
            /// that exists wins (CUDA 13 renamed a few functions `_v2`).
            /// Err names the first function that is missing.
            pub fn resolve(
                mut lookup: impl FnMut(&str) -> Option<*mut c_void>,
            ) -> Result<Self, &'static str> {
                Ok(CudaApi {
                    $(
                        $field: {
                            let names: &[&'static str] = &[$($sym),+];
                            let addr = names
                                .iter()
                                .find_map(|n| lookup(n))
                                .filter(|p| !p.is_null())
                                .ok_or(names[0])?;
                            // SAFETY: the symbol is the libcuda function of
                            // that name, whose C signature is the one written
                            // in this table (cuda.h).
                            unsafe {
                                std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> c_int>(addr)
                            }
                        },
                    )*
                })
            }
        }
    };
}

driver_api! {
    init: ["cuInit"] fn(c_uint);
    driver_get_version: ["cuDriverGetVersion"] fn(*mut c_int);
    get_error_name: ["cuGetErrorName"] fn(c_int, *mut *const c_char);
    device_get_count: ["cuDeviceGetCount"] fn(*mut c_int);
    device_get: ["cuDeviceGet"] fn(*mut Device, c_int);
    device_get_attribute: ["cuDeviceGetAttribute"] fn(*mut c_int, c_int, Device);
    device_get_name: ["cuDeviceGetName"] fn(*mut c_char, c_int, Device);
    device_total_mem: ["cuDeviceTotalMem_v2"] fn(*mut usize, Device);
    device_get_uuid: ["cuDeviceGetUuid_v2", "cuDeviceGetUuid"] fn(*mut [u8; 16], Device);
    device_get_pci_bus_id: ["cuDeviceGetPCIBusId"] fn(*mut c_char, c_int, Device);
    primary_ctx_retain: ["cuDevicePrimaryCtxRetain"] fn(*mut Handle, Device);
    ctx_set_current: ["cuCtxSetCurrent"] fn(Handle);
    ctx_synchronize: ["cuCtxSynchronize"] fn();
    mem_get_info: ["cuMemGetInfo_v2"] fn(*mut usize, *mut usize);
    mem_alloc: ["cuMemAlloc_v2"] fn(*mut DevicePtr, usize);
    mem_free: ["cuMemFree_v2"] fn(DevicePtr);
    memcpy_htod: ["cuMemcpyHtoD_v2"] fn(DevicePtr, *const c_void, usize);
    memcpy_dtoh: ["cuMemcpyDtoH_v2"] fn(*mut c_void, DevicePtr, usize);
    memcpy_dtod_async: ["cuMemcpyDtoDAsync_v2"] fn(DevicePtr, DevicePtr, usize, Handle);
    memset_d8: ["cuMemsetD8_v2"] fn(DevicePtr, u8, usize);
    memset_d32: ["cuMemsetD32_v2"] fn(DevicePtr, c_uint, usize);
    module_load_data_ex: ["cuModuleLoadDataEx"] fn(*mut Handle, *const c_void, c_uint, *mut c_int, *mut *mut c_void);
    module_get_function: ["cuModuleGetFunction"] fn(*mut Handle, Handle, *const c_char);
    launch_kernel: ["cuLaunchKernel"] fn(Handle, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, Handle, *mut *mut c_void, *mut *mut c_void);
    stream_create: ["cuStreamCreate"] fn(*mut Handle, c_uint);
    event_create: ["cuEventCreate"] fn(*mut Handle, c_uint);
    event_record: ["cuEventRecord"] fn(Handle, Handle);
    event_synchronize: ["cuEventSynchronize"] fn(Handle);
    event_elapsed_time: ["cuEventElapsedTime_v2", "cuEventElapsedTime"] fn(*mut f32, Handle, Handle);
    event_destroy: ["cuEventDestroy_v2"] fn(Handle);
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn fake() -> c_int {
        0
    }

    #[test]
    fn a_missing_function_is_named() {
        let present = fake as *const () as *mut c_void;
        let r = CudaApi::resolve(|n| (n != "cuMemsetD32_v2").then_some(present));
        assert_eq!(r.err(), Some("cuMemsetD32_v2"));
        // Either spelling of a renamed function will do.
        let r = CudaApi::resolve(|n| (n != "cuEventElapsedTime_v2").then_some(present));
        assert!(r.is_ok());
        let r = CudaApi::resolve(|n| {
            (n != "cuEventElapsedTime_v2" && n != "cuEventElapsedTime").then_some(present)
        });
        assert_eq!(r.err(), Some("cuEventElapsedTime_v2"));
    }
}
