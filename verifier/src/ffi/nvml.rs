//! NVML, for what the CUDA driver API does not say: the GPU brand (`brand=`
//! in `NVIDIA_REQUIRE_*`) and the driver version string at start-up (loaded
//! only when needed: `nvmlInit` costs tens of milliseconds), and the
//! temperature, power, memory and utilisation `strata-verify metrics` serves.

use super::{FfiError, Lib};
use std::ffi::{c_char, c_uint, c_void, CString};
use std::path::Path;

type Init = unsafe extern "C" fn() -> i32;
type DriverVersion = unsafe extern "C" fn(*mut c_char, c_uint) -> i32;
type ByBusId = unsafe extern "C" fn(*const c_char, *mut *mut c_void) -> i32;
type Brand = unsafe extern "C" fn(*mut c_void, *mut c_uint) -> i32;
type Count = unsafe extern "C" fn(*mut c_uint) -> i32;
type ByIndex = unsafe extern "C" fn(c_uint, *mut *mut c_void) -> i32;
type Text = unsafe extern "C" fn(*mut c_void, *mut c_char, c_uint) -> i32;
type Temperature = unsafe extern "C" fn(*mut c_void, c_uint, *mut c_uint) -> i32;
type Uint = unsafe extern "C" fn(*mut c_void, *mut c_uint) -> i32;
type Memory = unsafe extern "C" fn(*mut c_void, *mut MemoryInfo) -> i32;
type Utilization = unsafe extern "C" fn(*mut c_void, *mut UtilizationRates) -> i32;
type ErrorString = unsafe extern "C" fn(i32) -> *const c_char;

/// `nvmlMemory_t`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct MemoryInfo {
    total: u64,
    free: u64,
    used: u64,
}

/// `nvmlUtilization_t`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct UtilizationRates {
    gpu: c_uint,
    memory: c_uint,
}

/// What NVML reports about one GPU; a reading NVML refused is None.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    /// NVML index (the order `nvidia-smi` uses).
    pub index: u32,
    /// `GPU-xxxxxxxx-...`.
    pub uuid: String,
    /// e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Core temperature, °C.
    pub temperature_c: Option<u32>,
    /// Board power draw, W.
    pub power_w: Option<f64>,
    /// Enforced power limit, W.
    pub power_limit_w: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Memory in all, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Share of the last sample period a kernel ran, 0..1.
    pub utilization: Option<f64>,
    /// Share of the last sample period memory was read or written, 0..1.
    pub memory_utilization: Option<f64>,
}

/// An initialised NVML.
pub struct Nvml {
    /// The library.
    pub lib: Lib,
    shutdown: Init,
    driver_version: DriverVersion,
    by_bus_id: ByBusId,
    brand: Brand,
    count: Option<Count>,
    by_index: Option<ByIndex>,
    name: Option<Text>,
    uuid: Option<Text>,
    temperature: Option<Temperature>,
    power: Option<Uint>,
    power_limit: Option<Uint>,
    memory: Option<Memory>,
    utilization: Option<Utilization>,
    error_string: Option<ErrorString>,
}

// SAFETY: function pointers and a library handle; NVML is thread-safe.
unsafe impl Send for Nvml {}
// SAFETY: as above.
unsafe impl Sync for Nvml {}

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
                count: lib.sym_opt("nvmlDeviceGetCount_v2"),
                by_index: lib.sym_opt("nvmlDeviceGetHandleByIndex_v2"),
                name: lib.sym_opt("nvmlDeviceGetName"),
                uuid: lib.sym_opt("nvmlDeviceGetUUID"),
                temperature: lib.sym_opt("nvmlDeviceGetTemperature"),
                power: lib.sym_opt("nvmlDeviceGetPowerUsage"),
                power_limit: lib.sym_opt("nvmlDeviceGetEnforcedPowerLimit"),
                memory: lib.sym_opt("nvmlDeviceGetMemoryInfo"),
                utilization: lib.sym_opt("nvmlDeviceGetUtilizationRates"),
                error_string: lib.sym_opt("nvmlErrorString"),
                lib,
            };
            (init, nvml)
        };
        // SAFETY: no arguments.
        let r = unsafe { init() };
        if r != 0 {
            let text = nvml.error_text(r);
            // nvmlShutdown must not follow a failed nvmlInit.
            std::mem::forget(nvml);
            return Err(format!("nvmlInit_v2 returned {r} ({text})"));
        }
        Ok(nvml)
    }

    /// `nvmlErrorString`, or the number.
    fn error_text(&self, r: i32) -> String {
        let p = match self.error_string {
            // SAFETY: returns a static string.
            Some(f) => unsafe { f(r) },
            None => std::ptr::null(),
        };
        if p.is_null() {
            format!("nvmlReturn {r}")
        } else {
            // SAFETY: non-null static NUL-terminated string.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        }
    }

    /// Every GPU NVML sees, with what it could read of each. Err when not
    /// even the list of GPUs could be had (the driver is gone, say).
    pub fn read_all(&self) -> Result<Vec<GpuReading>, String> {
        let (Some(count), Some(by_index)) = (self.count, self.by_index) else {
            return Err("this NVML lacks nvmlDeviceGetCount_v2".into());
        };
        let mut n: c_uint = 0;
        // SAFETY: out pointer.
        let r = unsafe { count(&mut n) };
        if r != 0 {
            return Err(format!(
                "nvmlDeviceGetCount returned {r} ({})",
                self.error_text(r)
            ));
        }
        let mut out = Vec::new();
        for index in 0..n {
            let mut dev: *mut c_void = std::ptr::null_mut();
            // SAFETY: index below the count, out pointer.
            let r = unsafe { by_index(index, &mut dev) };
            if r != 0 {
                return Err(format!(
                    "nvmlDeviceGetHandleByIndex({index}) returned {r} ({})",
                    self.error_text(r)
                ));
            }
            out.push(self.read(index, dev));
        }
        Ok(out)
    }

    fn read(&self, index: u32, dev: *mut c_void) -> GpuReading {
        let text = |f: Option<Text>| -> Option<String> {
            let f = f?;
            let mut buf = [0 as c_char; 96];
            // SAFETY: a device handle, a buffer and its length.
            if unsafe { f(dev, buf.as_mut_ptr(), buf.len() as c_uint) } != 0 {
                return None;
            }
            let bytes: Vec<u8> = buf
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        };
        let uint = |f: Option<Uint>| -> Option<u32> {
            let f = f?;
            let mut v: c_uint = 0;
            // SAFETY: a device handle and an out pointer.
            (unsafe { f(dev, &mut v) } == 0).then_some(v)
        };
        let temperature_c = self.temperature.and_then(|f| {
            let mut v: c_uint = 0;
            // NVML_TEMPERATURE_GPU = 0. SAFETY: as above.
            (unsafe { f(dev, 0, &mut v) } == 0).then_some(v)
        });
        let memory = self.memory.and_then(|f| {
            let mut m = MemoryInfo::default();
            // SAFETY: a device handle and an out struct of nvmlMemory_t's layout.
            (unsafe { f(dev, &mut m) } == 0).then_some(m)
        });
        let util = self.utilization.and_then(|f| {
            let mut u = UtilizationRates::default();
            // SAFETY: as above, nvmlUtilization_t.
            (unsafe { f(dev, &mut u) } == 0).then_some(u)
        });
        GpuReading {
            index,
            uuid: text(self.uuid).unwrap_or_default(),
            name: text(self.name).unwrap_or_default(),
            temperature_c,
            power_w: uint(self.power).map(|mw| f64::from(mw) / 1000.0),
            power_limit_w: uint(self.power_limit).map(|mw| f64::from(mw) / 1000.0),
            memory_used_bytes: memory.map(|m| m.used),
            memory_total_bytes: memory.map(|m| m.total),
            utilization: util.map(|u| f64::from(u.gpu) / 100.0),
            memory_utilization: util.map(|u| f64::from(u.memory) / 100.0),
        }
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
