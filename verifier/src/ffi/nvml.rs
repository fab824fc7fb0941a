//! NVML, only for what the CUDA driver API does not say: the GPU brand
//! (`brand=` in `NVIDIA_REQUIRE_*`) and the driver version string. Loaded
//! only when needed: `nvmlInit` costs tens of milliseconds.

use super::{FfiError, Lib};
use std::ffi::{c_char, c_uint, c_void, CString};
use std::path::Path;

type Init = unsafe extern "C" fn() -> i32;
type DriverVersion = unsafe extern "C" fn(*mut c_char, c_uint) -> i32;
type ByBusId = unsafe extern "C" fn(*const c_char, *mut *mut c_void) -> i32;
type Brand = unsafe extern "C" fn(*mut c_void, *mut c_uint) -> i32;

/// An initialised NVML.
pub struct Nvml {
    /// The library.
    pub lib: Lib,
    shutdown: Init,
    driver_version: DriverVersion,
    by_bus_id: ByBusId,
    brand: Brand,
}

impl Nvml {
    /// Opens and initialises NVML.
    pub fn open(path: &Path) -> Result<Self, String> {
        let lib = Lib::open(path).map_err(|e| e.to_string())?;
        // SAFETY: signatures from nvml.h.
        let (init, nvml) = unsafe {
            let sym = |e: FfiError| e.to_string();
            let init: Init = lib.sym("nvmlInit_v2").map_err(sym)?;
            let nvml = Nvml {
                shutdown: lib.sym("nvmlShutdown").map_err(sym)?,
                driver_version: lib.sym("nvmlSystemGetDriverVersion").map_err(sym)?,
                by_bus_id: lib.sym("nvmlDeviceGetHandleByPciBusId_v2").map_err(sym)?,
                brand: lib.sym("nvmlDeviceGetBrand").map_err(sym)?,
                lib,
            };
            (init, nvml)
        };
        // SAFETY: no arguments.
        let r = unsafe { init() };
        if r != 0 {
            return Err(format!("nvmlInit_v2 returned {r}"));
        }
        Ok(nvml)
    }

    /// `nvmlSystemGetDriverVersion`, e.g. `580.159.04`.
    pub fn driver_version(&self) -> Option<String> {
        let mut buf = [0 as c_char; 96];
        // SAFETY: buffer and its length.
        if unsafe { (self.driver_version)(buf.as_mut_ptr(), buf.len() as c_uint) } != 0 {
            return None;
        }
        let bytes: Vec<u8> = buf
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The `nvmlBrandType_t` of the GPU at `pci_bus_id` (CUDA's spelling).
    pub fn brand(&self, pci_bus_id: &str) -> Option<u32> {
        let id = CString::new(pci_bus_id).ok()?;
        let mut dev: *mut c_void = std::ptr::null_mut();
        let mut brand: c_uint = 0;
        // SAFETY: NUL-terminated id and out pointers.
        unsafe {
            if (self.by_bus_id)(id.as_ptr(), &mut dev) != 0 || (self.brand)(dev, &mut brand) != 0 {
                return None;
            }
        }
        Some(brand)
    }
}

impl Drop for Nvml {
    fn drop(&mut self) {
        // SAFETY: paired with the successful nvmlInit_v2 in open().
        unsafe { (self.shutdown)() };
    }
}
