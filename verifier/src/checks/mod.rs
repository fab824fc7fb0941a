//! The check sequence. Order of work, chosen for start-up time:
//!
//! 1. environment and libcuda (no GPU work, a few ms); every driver function
//!    is resolved here, before any other thread starts;
//! 2. `cuInit` on the main thread (~100 ms) while a second thread loads the
//!    image's cuBLAS, NCCL and cuDNN, handing each over as soon as it is
//!    loaded;
//! 3. one thread per GPU: context, then side by side on that context the
//!    sm_80 kernels and memory, wgmma, cuBLAS and cuBLASLt/cuDNN (see
//!    [`gpu`]);
//! 4. NCCL across GPUs, when there is more than one.
//!
//! Report order is fixed (global checks, libraries, then each GPU in ordinal
//! order), whatever order the threads finish in.

pub mod env;
pub mod full;
pub mod gpu;
pub mod libs;
pub mod nccl;
pub mod pool;

use crate::compat::{self, CudaVersion, DottedVersion};
use crate::discover::{self, device_nodes, is_gpu_library, library_stem, version_from_file_name};
use crate::driver;
use crate::ffi::nvml::Nvml;
use crate::policy::Options;
use crate::report::{Check, LibraryInfo, Report};
use crate::require::{self, Expr, Facts, Key};
use crate::trace;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

/// A value produced once by one thread and awaited by others.
pub struct Latch<T> {
    value: Mutex<Option<Arc<T>>>,
    ready: Condvar,
}

impl<T> Default for Latch<T> {
    fn default() -> Self {
        Latch {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }
}

impl<T> Latch<T> {
    /// Publishes the value and wakes the waiters.
    pub fn set(&self, v: T) {
        let mut slot = self.value.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(Arc::new(v));
        self.ready.notify_all();
    }

    /// Publishes `make()` unless a value is already there.
    pub fn set_if_unset(&self, make: impl FnOnce() -> T) {
        let mut slot = self.value.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(Arc::new(make()));
            self.ready.notify_all();
        }
    }

    /// Blocks until [`Latch::set`] has run.
    pub fn wait(&self) -> Arc<T> {
        let mut slot = self.value.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(v) = slot.as_ref() {
                return Arc::clone(v);
            }
            slot = self.ready.wait(slot).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn kernel_module_version() -> Option<DottedVersion> {
    if let Ok(text) = std::fs::read_to_string("/proc/driver/nvidia/version") {
        if let Some(v) = compat::driver_version_from_proc(&text) {
            return Some(v);
        }
    }
    std::fs::read_to_string("/sys/module/nvidia/version")
        .ok()
        .and_then(|t| DottedVersion::parse(t.trim()).ok())
}

fn find_nvml(libcuda: &Path) -> Option<PathBuf> {
    let beside = libcuda.parent().map(|d| d.join("libnvidia-ml.so.1"));
    if let Some(p) = beside.filter(|p| p.exists()) {
        return Some(p);
    }
    discover::LIBCUDA_DIRS
        .iter()
        .map(|d| Path::new(d).join("libnvidia-ml.so.1"))
        .find(|p| p.exists())
}

/// Runs the checks the options ask for.
pub fn run(opts: &Options, env: &BTreeMap<String, String>, report: &mut Report) {
    report.image_cuda = opts.cuda.map(|c| c.to_string());
    report.allowed_sm = opts.allowed_sm.iter().map(|s| s.to_string()).collect();

    let nodes = device_nodes(Path::new("/dev"));
    let t = Instant::now();
    report.checks.push(env::preflight(env, &nodes).ms(ms(t)));

    // libcuda, found the way CUDA programs find it.
    trace::mark("main", || "libcuda: opening".into());
    let t = Instant::now();
    let ld_path = env.get("LD_LIBRARY_PATH").map(String::as_str);
    let libcuda = match discover::load_libcuda(ld_path) {
        Ok(l) => l,
        Err(e) => {
            report
                .checks
                .push(env::libcuda_failure(&e, &nodes, env).ms(ms(t)));
            return;
        }
    };
    driver::install(libcuda.api);
    let version_text = libcuda
        .version
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown version".into());
    let c = if libcuda.via_loader {
        let found = format!("{} (driver {version_text})", libcuda.path.display());
        match discover::unversioned_libcuda(&libcuda.path) {
            None => Check::pass("libcuda", found),
            Some(discover::Unversioned::Stub { path, evidence }) => Check::warn(
                "libcuda",
                format!("{found}; but `libcuda.so`, the name some programs open instead of libcuda.so.1, leads to {}, the CUDA toolkit's stub library: {evidence}", path.display()),
            )
            .fix(format!("remove {} (or its directory from LD_LIBRARY_PATH): it is for linking only, and programs that open libcuda.so get it instead of the driver", path.display())),
            Some(discover::Unversioned::Other { path }) => Check::warn(
                "libcuda",
                format!("{found}; but `libcuda.so`, the name some programs open instead of libcuda.so.1, leads to another libcuda, {}", path.display()),
            )
            .fix(format!("remove {} (or its directory from LD_LIBRARY_PATH) so that every program uses the driver's libcuda", path.display())),
        }
    } else {
        let dir = libcuda
            .path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        Check::fail(
            "libcuda",
            format!(
                "{} exists but the dynamic loader cannot find libcuda.so.1 ({}): CUDA programs in this image, PyTorch included, will not see the GPU",
                libcuda.path.display(),
                libcuda.loader_error.as_deref().unwrap_or("")
            ),
        )
        .fix(format!("add {dir} to LD_LIBRARY_PATH (or to /etc/ld.so.conf.d/ and run ldconfig)"))
    };
    report.checks.push(c.ms(ms(t)));
    report.driver.libcuda = Some(libcuda.path.display().to_string());
    trace::mark("main", || "libcuda: ready".into());

    // What every GPU thread reads: the requirement expressions (parsed
    // once, evaluated per GPU) and NVML, opened only when a fact needs it
    // (tens of milliseconds to initialise, 150 ms on a cold start): the GPU
    // brand for an NVIDIA_REQUIRE_* expression that cannot be decided
    // without it, or the driver version when neither libcuda's file name
    // nor the kernel module gives it.
    let shared = Shared::new(opts, &libcuda);
    let brand_of = |ordinal: i32| shared.brand_of(ordinal);

    // The image's libraries load on their own thread while cuInit runs.
    let libs = libs::Libs::default();
    let cuinit_done: Latch<()> = Latch::default();
    std::thread::scope(|scope| {
        // The GPU threads are made before the loader starts (see [`pool`]).
        let expected = nodes.gpus.len().clamp(1, 8);
        let spare = pool::workers(scope, pool::PER_GPU * expected);
        let loader = scope.spawn(|| {
            // Development: start loading only once cuInit has returned
            // (STRATA_VERIFY_DEV_LOADER=after-init), to measure what the two
            // cost each other.
            #[cfg(feature = "dev-kernels")]
            if std::env::var("STRATA_VERIFY_DEV_LOADER").as_deref() == Ok("after-init") {
                cuinit_done.wait();
            }
            if let Err(msg) =
                driver::contained(|| libs::load(&libs, &opts.lib_dirs, env, opts.cuda))
            {
                libs.fail_unset(&msg);
            }
        });
        let gpus = GpuPhase {
            opts,
            libcuda: &libcuda,
            libs: &libs,
            cuinit_done: &cuinit_done,
            shared: &shared,
            brand: &brand_of,
        };
        gpu_phase(&gpus, report, scope, spare);
        cuinit_done.set_if_unset(|| ());
        if loader.join().is_err() {
            libs.fail_unset("the loader thread stopped");
        }
    });
    // The libraries stay loaded: the process is about to become the command
    // (or exit), and closing cuBLAS and cuDNN first would only run their
    // destructors (over 10 ms) before it does.
    std::mem::forget(libs);

    trace::mark("main", || "listing loaded libraries".into());
    report.libraries = loaded_gpu_libraries();
    report.checks.push(duplicates_check(&report.libraries));
    trace::mark("main", || "checks done".into());
}

/// What [`run`] prepares before the GPU threads start.
struct Shared<'a> {
    libcuda: &'a discover::Libcuda,
    requirements: Vec<(String, Expr)>,
    bad_requirements: Vec<String>,
    uses_brand: bool,
    nvml: OnceLock<Option<Nvml>>,
}

impl<'a> Shared<'a> {
    fn new(opts: &Options, libcuda: &'a discover::Libcuda) -> Self {
        let mut requirements: Vec<(String, Expr)> = Vec::new();
        let mut bad_requirements = Vec::new();
        for (name, value) in &opts.requirements {
            match require::parse(value) {
                Ok(e) => requirements.push((name.clone(), e)),
                Err(e) => bad_requirements.push(format!("{name}: {e}")),
            }
        }
        let uses_brand = !opts.disable_require
            && requirements
                .iter()
                .any(|(_, e)| e.alternatives.iter().flatten().any(|c| c.key == Key::Brand));
        Shared {
            libcuda,
            requirements,
            bad_requirements,
            uses_brand,
            nvml: OnceLock::new(),
        }
    }

    fn nvml(&self) -> Option<&Nvml> {
        self.nvml
            .get_or_init(|| find_nvml(&self.libcuda.path).and_then(|p| Nvml::open(&p).ok()))
            .as_ref()
    }

    /// The brand of a GPU, asked of NVML only when a requirement cannot be
    /// decided without it.
    fn brand_of(&self, ordinal: i32) -> Option<String> {
        if !self.uses_brand {
            return None;
        }
        let pci = driver::Device::get(ordinal)
            .and_then(|d| d.pci_bus_id())
            .ok()?;
        self.nvml()
            .and_then(|n| n.brand(&pci))
            .map(|b| require::brand_name(b).to_string())
    }
}

/// The inputs of [`gpu_phase`], all made before the thread scope.
struct GpuPhase<'env> {
    opts: &'env Options,
    libcuda: &'env discover::Libcuda,
    libs: &'env libs::Libs,
    cuinit_done: &'env Latch<()>,
    shared: &'env Shared<'env>,
    brand: &'env (dyn Fn(i32) -> Option<String> + Sync),
}

fn gpu_phase<'scope, 'env>(
    p: &GpuPhase<'env>,
    report: &mut Report,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    mut spare: Vec<pool::Worker<'env>>,
) {
    let GpuPhase {
        opts,
        libcuda,
        libs,
        cuinit_done,
        shared,
        brand,
    } = *p;
    let t = Instant::now();
    trace::mark("main", || "cuInit: start".into());
    let init = driver::init();
    cuinit_done.set_if_unset(|| ());
    if let Err(e) = init {
        let (cause, fix) = driver::explain(e.code).unwrap_or((
            "the driver did not initialise",
            "check nvidia-smi on the host",
        ));
        let cause = if e.code == crate::ffi::cuda::ERROR_STUB_LIBRARY {
            format!("{} is a CUDA stub library: {cause}", libcuda.path.display())
        } else {
            cause.to_string()
        };
        report.checks.push(
            Check::fail("cuinit", format!("{e}: {cause}"))
                .fix(fix)
                .ms(ms(t)),
        );
        report.checks.extend(libs.checks());
        return;
    }
    trace::mark("main", || "cuInit: done".into());
    let count = driver::device_count().unwrap_or(0);
    let api = driver::driver_version().map(CudaVersion::from_driver_api);
    report
        .checks
        .push(Check::pass("cuinit", format!("{count} GPU(s) visible")).ms(ms(t)));

    // Driver facts.
    let t = Instant::now();
    let module_version = kernel_module_version();
    let lib_version = libcuda.version.clone();
    let driver_version = lib_version
        .as_ref()
        .map(|v| v.to_string())
        .or_else(|| module_version.as_ref().map(|v| v.to_string()))
        .or_else(|| shared.nvml().and_then(|n| n.driver_version()));
    report.driver.version = driver_version.clone();
    match &api {
        Ok(api) => {
            report.driver.cuda = Some(api.to_string());
            let module = match (&module_version, &lib_version) {
                (Some(m), Some(l)) if m.compare(l).is_eq() => {
                    "libcuda and kernel module agree".to_string()
                }
                (Some(m), Some(l)) => {
                    format!("libcuda {l}, kernel module {m} (a cuda-compat libcuda?)")
                }
                (Some(m), None) => format!("kernel module {m}"),
                _ => "kernel module version not readable".to_string(),
            };
            report.checks.push(
                Check::pass(
                    "driver",
                    format!(
                        "driver {}, CUDA {api} ({module})",
                        driver_version.as_deref().unwrap_or("?")
                    ),
                )
                .ms(ms(t)),
            );
        }
        Err(e) => report
            .checks
            .push(Check::fail("driver", e.to_string()).ms(ms(t))),
    }

    // Image CUDA against the driver.
    let c = match (opts.cuda, &api) {
        (None, _) => Check::skip(
            "cuda-compat",
            "the image declares no CUDA version (STRATA_CUDA_VERSION)",
        ),
        (Some(_), Err(_)) => Check::skip("cuda-compat", "driver CUDA version unknown"),
        (Some(img), Ok(api)) => compat_check(img, *api, driver_version.as_deref()),
    };
    report.checks.push(c);

    // Requirement expressions: parsed once (before the threads), evaluated per GPU.
    let bad = &shared.bad_requirements;
    if !bad.is_empty() && !opts.disable_require {
        report.checks.push(Check::fail("require-syntax", bad.join("; ")).fix("correct the expression (space = OR, comma = AND, e.g. cuda>=12.8 brand=tesla,driver>=535)"));
    }
    if count <= 0 {
        report.checks.push(
            Check::fail("gpus", "the driver reports no GPU")
                .fix("start the container with GPUs (--gpus all) and check NVIDIA_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES"),
        );
        report.checks.extend(libs.checks());
        return;
    }

    // One thread per GPU.
    let jobs: Vec<gpu::GpuJob<'_>> = (0..count)
        .map(|ordinal| gpu::GpuJob {
            opts,
            ordinal,
            requirements: &shared.requirements,
            facts: Facts {
                cuda: api.as_ref().ok().map(|a| a.to_string()),
                driver: driver_version.clone(),
                arch: None,
                brand: None,
            },
            brand,
            libs,
        })
        .collect();
    trace::mark("main", || format!("{count} GPU thread(s): start"));
    let handles: Vec<_> = jobs
        .iter()
        .map(|job| {
            // Threads made before the loader started; more only when there
            // are more GPUs than device nodes were counted.
            let keep = spare.len().saturating_sub(pool::PER_GPU);
            let mut mine = spare.split_off(keep);
            if mine.len() < pool::PER_GPU {
                mine.extend(pool::workers(scope, pool::PER_GPU - mine.len()));
            }
            let own = mine.pop();
            let job = job.clone();
            pool::run(own, move || gpu::run(&job, mine))
        })
        .collect();
    drop(spare);
    let outcomes: Vec<gpu::GpuOutcome> = {
        handles
            .into_iter()
            .zip(&jobs)
            .map(|(h, job)| {
                h.join().unwrap_or_else(|p| gpu::GpuOutcome {
                    info: crate::report::GpuInfo {
                        index: job.ordinal as u32,
                        ..Default::default()
                    },
                    checks: vec![Check::fail("internal", driver::panic_message(p.as_ref()))
                        .gpu(job.ordinal as u32)],
                    context: None,
                })
            })
            .collect()
    };

    trace::mark("main", || "GPU threads: done".into());
    report.checks.extend(libs.checks());
    let nccl_lib = libs.nccl.wait();
    let mut contexts = Vec::new();
    for o in outcomes {
        report.gpus.push(o.info);
        report.checks.extend(o.checks);
        contexts.extend(o.context);
    }

    let t = Instant::now();
    match (&nccl_lib.lib, contexts.len()) {
        (_, n) if n < 2 => report.checks.push(
            Check::skip(
                "nccl-allreduce",
                format!("{n} GPU visible; the all-reduce needs two or more"),
            )
            .ms(ms(t)),
        ),
        (None, _) => report
            .checks
            .push(Check::skip("nccl-allreduce", "NCCL not loaded")),
        (Some(nc), n) if n == count as usize => {
            let checks =
                driver::contained(|| nccl::run(nc, &contexts, &report.gpus, opts.policy.level))
                    .unwrap_or_else(|m| {
                        vec![Check::fail("nccl-allreduce", format!("NCCL crashed: {m}"))]
                    });
            report.checks.extend(checks);
        }
        (Some(_), n) => report.checks.push(Check::skip(
            "nccl-allreduce",
            format!("only {n} of {count} GPUs could be opened"),
        )),
    }
}

fn compat_check(img: CudaVersion, api: CudaVersion, driver: Option<&str>) -> Check {
    let have = format!("driver {} supports CUDA {api}", driver.unwrap_or("?"));
    match compat::evaluate(img, api) {
        compat::Compat::Native => Check::pass("cuda-compat", format!("image CUDA {img}; {have}")),
        compat::Compat::MinorCompat { native_driver } => Check::warn(
            "cuda-compat",
            format!("image CUDA {img} runs on CUDA {api} through minor-version compatibility: PTX built by CUDA {img} cannot be JIT-compiled and newer APIs report CUDA_ERROR_NOT_SUPPORTED; {have}"),
        )
        .fix(match native_driver {
            Some(d) => format!("upgrade the host driver to {d} or newer for native CUDA {img} support"),
            None => format!("upgrade the host driver to one that supports CUDA {img}"),
        }),
        compat::Compat::TooOld { native_driver, floor } => Check::fail(
            "cuda-compat",
            format!(
                "image CUDA {img} needs driver {} or newer{}; {have}",
                native_driver.unwrap_or("(newer than this table knows)"),
                floor.map(|f| format!(" (at least {f} through minor-version compatibility)")).unwrap_or_default()
            ),
        )
        .fix("upgrade the host's NVIDIA driver, or use an image built for the CUDA version the driver supports; on data-center GPUs the cuda-compat package can also bridge the gap"),
    }
}

/// The GPU libraries mapped into the process, sorted by path.
fn loaded_gpu_libraries() -> Vec<LibraryInfo> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in discover::loaded_objects() {
        let real = std::fs::canonicalize(&p).unwrap_or(p.clone());
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_gpu_library(&name) || !seen.insert(real.clone()) {
            continue;
        }
        out.push(LibraryInfo {
            name: library_stem(&name).to_string(),
            path: real.display().to_string(),
            version: version_from_file_name(&name),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    out
}

/// Two different files of the same library in one process mean two CUDA
/// installations are mixed; PyTorch would get whichever loads first.
fn duplicates_check(libs: &[LibraryInfo]) -> Check {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in libs {
        by_name
            .entry(l.name.as_str())
            .or_default()
            .push(l.path.as_str());
    }
    let dups: Vec<String> = by_name
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| format!("{k}: {}", v.join(" and ")))
        .collect();
    if dups.is_empty() {
        Check::pass(
            "loaded-libraries",
            format!(
                "{} GPU libraries in the process, each from one file",
                libs.len()
            ),
        )
    } else {
        Check::warn("loaded-libraries", format!("the same library is loaded from two files: {}", dups.join("; ")))
            .fix("keep one CUDA installation on the library path (pip wheels or /usr/local/cuda, not both)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn latch_hands_the_value_to_waiters() {
        let latch: Latch<u32> = Latch::default();
        std::thread::scope(|s| {
            let h = s.spawn(|| *latch.wait());
            latch.set(42);
            assert_eq!(h.join().unwrap(), 42);
        });
        assert_eq!(*latch.wait(), 42);
    }

    #[test]
    fn compat_words() {
        let c = |s: &str| CudaVersion::parse(s).unwrap();
        assert_eq!(
            compat_check(c("12.8"), c("13.0"), Some("580.159.04")).status,
            Status::Pass
        );
        let w = compat_check(c("12.8"), c("12.2"), Some("535.104.05"));
        assert_eq!(w.status, Status::Warn);
        assert!(w.fix.unwrap().contains("570.26"));
        let f = compat_check(c("13.0"), c("12.8"), Some("570.86"));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.detail.contains("needs driver 580.65.06 or newer"),
            "{}",
            f.detail
        );
    }

    #[test]
    fn duplicate_libraries_warn() {
        let l = |n: &str, p: &str| LibraryInfo {
            name: n.into(),
            path: p.into(),
            version: None,
        };
        assert_eq!(
            duplicates_check(&[l("libcublasLt", "/a"), l("libcudnn", "/b")]).status,
            Status::Pass
        );
        let c = duplicates_check(&[l("libcublasLt", "/a/x"), l("libcublasLt", "/b/x")]);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("/a/x and /b/x"));
    }
}
