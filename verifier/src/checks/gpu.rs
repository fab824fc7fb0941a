//! The per-GPU checks of the quick level. Each GPU runs on its own thread
//! with its own primary context. Once the context exists, the checks that
//! do not depend on each other run side by side on that context, each on a
//! thread of its own, because their cost is mostly driver and library
//! start-up on the CPU (module loading, JIT, cuBLAS initialisation), not GPU
//! time:
//!
//! - the sm_80 module: JIT, memory, `mma.sync` (this thread);
//! - `wgmma` on sm_90a: its own JIT and kernel;
//! - cuBLAS `cublasGemmEx` TF32;
//! - cuBLASLt bf16, then a cuDNN handle.
//!
//! The report keeps the fixed order whatever order they finish in.

use super::full;
use super::pool::{self, Worker};
use crate::checks::libs::Libs;
use crate::driver::{self, arg, Context, DevBuf, Device, Module};
use crate::ffi::cublas::{compute, dtype, BlasHandle, Cublas, LtGemm, LtSpec};
use crate::ffi::cuda::attr as Attr;
use crate::kernels;
use crate::policy::{match_sm, Level, Options, SmMatch};
use crate::report::{Check, GpuInfo};
use crate::require::{Expr, Facts};
use crate::trace;
use std::time::Instant;

/// What every GPU thread gets.
#[derive(Clone)]
pub struct GpuJob<'a> {
    /// Options.
    pub opts: &'a Options,
    /// CUDA ordinal.
    pub ordinal: i32,
    /// Parsed `NVIDIA_REQUIRE_*` expressions.
    pub requirements: &'a [(String, Expr)],
    /// Driver facts for the rule language (arch and brand are filled per GPU).
    pub facts: Facts,
    /// The GPU's brand (through NVML), asked only when a requirement cannot
    /// be decided without it.
    pub brand: &'a (dyn Fn(i32) -> Option<String> + Sync),
    /// The image's libraries, each ready when the loader thread has it.
    pub libs: &'a Libs,
}

/// What a GPU thread returns.
pub struct GpuOutcome {
    /// The GPU.
    pub info: GpuInfo,
    /// Its checks.
    pub checks: Vec<Check>,
    /// Its primary context, for NCCL afterwards.
    pub context: Option<Context>,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

const GIB: f64 = (1u64 << 30) as f64;

/// Runs every per-GPU check; never panics (a panic inside becomes a failed
/// `internal` check).
pub fn run<'env>(job: &GpuJob<'env>, side: Vec<Worker<'env>>) -> GpuOutcome {
    let mut out = GpuOutcome {
        info: GpuInfo {
            index: job.ordinal as u32,
            ..Default::default()
        },
        checks: Vec::new(),
        context: None,
    };
    let result = driver::contained(|| run_inner(job, side, &mut out));
    if let Err(msg) = result {
        out.checks.push(
            Check::fail(
                "internal",
                format!("a driver call failed unexpectedly: {msg}"),
            )
            .gpu(job.ordinal as u32),
        );
    }
    out
}

fn push(out: &mut GpuOutcome, c: Check) {
    let g = out.info.index;
    out.checks.push(c.gpu(g));
}

fn run_inner<'env>(job: &GpuJob<'env>, side: Vec<Worker<'env>>, out: &mut GpuOutcome) {
    let t = Instant::now();
    let dev = match describe(job, &mut out.info) {
        Ok(d) => d,
        Err(e) => {
            push(out, Check::fail("device", e.to_string()).ms(ms(t)));
            return;
        }
    };
    let info = out.info.clone();
    let mode = dev.attribute(Attr::COMPUTE_MODE).unwrap_or(0);
    let ecc = dev.attribute(Attr::ECC_ENABLED).unwrap_or(0);
    let detail = format!(
        "{}, sm_{}{}, {} SMs, {:.1} GiB, ECC {}, PCI {}, {}",
        info.name,
        info.cc.0,
        info.cc.1,
        info.sms,
        info.memory_bytes as f64 / GIB,
        if ecc != 0 { "on" } else { "off" },
        info.pci_bus_id,
        info.uuid
    );
    // CU_COMPUTEMODE_EXCLUSIVE_PROCESS = 3: the command must find the GPU
    // free the moment it starts.
    if mode == 3 {
        crate::handover::note_exclusive_gpu();
    }
    // CU_COMPUTEMODE_PROHIBITED = 2.
    let c = if mode == 2 {
        Check::fail(
            "device",
            format!("{detail}: compute mode is Prohibited, no process may use this GPU"),
        )
        .fix("set the compute mode to Default on the host (nvidia-smi -c DEFAULT)")
    } else {
        Check::pass("device", detail)
    };
    push(out, c.ms(ms(t)));

    let c = require_check(job, &mut out.info);
    push(out, c);
    push(out, arch_check(job, &info));

    // Context: the first real use of the GPU (~90 ms on an H100).
    let label = trace::gpu_label(job.ordinal, 0);
    trace::mark(label, || "context: creating".into());
    let t = Instant::now();
    let ctx = match Context::primary(&dev) {
        Ok(c) => c,
        Err(e) => {
            let (cause, fix) = driver::explain(e.code).unwrap_or((
                "the GPU could not be opened",
                "check nvidia-smi on the host",
            ));
            push(
                out,
                Check::fail("context", format!("{e}: {cause}"))
                    .fix(fix)
                    .ms(ms(t)),
            );
            return;
        }
    };
    out.context = Some(ctx);
    let (free, total) = driver::mem_info().unwrap_or((0, 0));
    let used = total.saturating_sub(free);
    let detail = format!(
        "{:.1} of {:.1} GiB free",
        free as f64 / GIB,
        total as f64 / GIB
    );
    let c = if total > 0 && (free as f64) < 0.9 * total as f64 {
        Check::warn(
            "context",
            format!(
                "{detail}: {:.1} GiB is already in use by another process",
                used as f64 / GIB
            ),
        )
        .fix("another process holds memory on this GPU; check nvidia-smi on the host")
    } else {
        Check::pass("context", detail)
    };
    push(out, c.ms(ms(t)));
    trace::mark(label, || "context: ready".into());

    let results = side_by_side(job, &ctx, &info, free, side);
    let module = results.module;
    for c in results.checks {
        push(out, c);
    }

    if job.opts.policy.level == Level::Full {
        let blas = job.libs.cublas.wait();
        match &module {
            Some(m) => {
                for c in full::run(m, &info, blas.lib.as_ref()) {
                    push(out, c);
                }
            }
            None => push(
                out,
                Check::skip(
                    "gemm-bf16",
                    "the embedded kernels did not load; no throughput checks",
                ),
            ),
        }
    }
}

/// The independent parts of the per-GPU quick level.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Task {
    /// JIT of the sm_80 module, memory, `mma.sync`.
    Sm80,
    /// `wgmma` on sm_90a.
    Sm90a,
    /// cuBLAS TF32.
    Blas,
    /// cuBLASLt bf16 and the cuDNN handle.
    LtDnn,
}

/// Which tasks share a thread; the first group runs on the GPU's own
/// thread. The shipped grouping gives every task its own thread.
fn groups() -> Vec<Vec<Task>> {
    use Task::*;
    #[cfg(feature = "dev-kernels")]
    if let Ok(v) = std::env::var("STRATA_VERIFY_DEV_GROUPS") {
        return match v.as_str() {
            "serial" => vec![vec![Sm80, Sm90a, Blas, LtDnn]],
            "2" => vec![vec![Sm80, Sm90a], vec![Blas, LtDnn]],
            "3" => vec![vec![Sm80, Sm90a], vec![Blas], vec![LtDnn]],
            _ => vec![vec![Sm80], vec![Sm90a], vec![Blas], vec![LtDnn]],
        };
    }
    vec![vec![Sm80], vec![Sm90a], vec![Blas], vec![LtDnn]]
}

#[derive(Default)]
struct SideBySide {
    module: Option<Module>,
    checks: Vec<Check>,
}

#[derive(Default)]
struct TaskOut {
    module: Option<Module>,
    checks: Vec<(Task, Vec<Check>)>,
}

fn run_task(task: Task, job: &GpuJob<'_>, info: &GpuInfo, free: u64, out: &mut TaskOut) {
    let part = match task {
        Task::Sm80 => 0,
        Task::Blas => 1,
        Task::LtDnn => 2,
        Task::Sm90a => 3,
    };
    let label = trace::gpu_label(job.ordinal, part);
    let mut checks = Vec::new();
    let timed = |name: &'static str, f: &mut dyn FnMut() -> Check| -> Check {
        trace::mark(label, || format!("{name}: start"));
        let t = Instant::now();
        let c = f().ms(ms(t));
        trace::mark(label, || format!("{name}: {}", c.status.key()));
        c
    };
    match task {
        Task::Sm80 => {
            let mut module = None;
            let jit = timed("jit-sm80", &mut || {
                let (m, c) = load_sm80(info);
                module = m;
                c
            });
            checks.push(jit);
            if let Some(m) = &module {
                checks.push(timed("memory", &mut || {
                    memory_check(m, free, info.sms, label)
                }));
                checks.push(timed("mma-sm80", &mut || mma_check(m, info.sms)));
            }
            out.module = module;
        }
        Task::Sm90a => checks.push(timed("wgmma-sm90a", &mut || wgmma_check(info))),
        Task::Blas => {
            let blas = job.libs.cublas.wait();
            trace::mark(label, || "cuBLAS: handed over".into());
            checks.push(timed("cublas-tf32", &mut || {
                cublas_tf32_check(blas.lib.as_ref(), label)
            }));
        }
        Task::LtDnn => {
            let blas = job.libs.cublas.wait();
            trace::mark(label, || "cuBLASLt: handed over".into());
            checks.push(timed("cublaslt-bf16", &mut || {
                cublaslt_bf16_check(blas.lib.as_ref(), label)
            }));
            let dnn = job.libs.cudnn.wait();
            trace::mark(label, || "cuDNN: handed over".into());
            checks.push(timed("cudnn-handle", &mut || match &dnn.lib {
                Some(dnn) => match dnn.handle_roundtrip() {
                    Ok(()) => Check::pass("cudnn-handle", "cudnnCreate/cudnnDestroy on this GPU"),
                    Err(e) => Check::fail("cudnn-handle", e).fix("cuDNN cannot use this GPU; check that it was built for this CUDA major and GPU architecture"),
                },
                None => Check::skip("cudnn-handle", "cuDNN not loaded"),
            }));
        }
    }
    out.checks.push((task, checks));
}

fn run_group(
    group: &[Task],
    job: &GpuJob<'_>,
    ctx: &Context,
    info: &GpuInfo,
    free: u64,
) -> TaskOut {
    let mut out = TaskOut::default();
    if let Err(e) = ctx.make_current() {
        for task in group {
            out.checks.push((
                *task,
                vec![Check::fail(
                    "internal",
                    format!("cannot use the context: {e}"),
                )],
            ));
        }
        return out;
    }
    for task in group {
        let r = driver::contained(|| run_task(*task, job, info, free, &mut out));
        if let Err(msg) = r {
            out.checks.push((
                *task,
                vec![Check::fail(
                    "internal",
                    format!("a driver call failed unexpectedly: {msg}"),
                )],
            ));
        }
    }
    out
}

fn side_by_side<'env>(
    job: &GpuJob<'env>,
    ctx: &Context,
    info: &GpuInfo,
    free: u64,
    mut side: Vec<Worker<'env>>,
) -> SideBySide {
    let groups = groups();
    let handles: Vec<_> = groups
        .iter()
        .skip(1)
        .map(|g| {
            let (g, job, ctx, info) = (g.clone(), job.clone(), *ctx, info.clone());
            pool::run(side.pop(), move || run_group(&g, &job, &ctx, &info, free))
        })
        .collect();
    drop(side);
    let mut outs: Vec<TaskOut> = Vec::new();
    if let Some(first) = groups.first() {
        outs.push(run_group(first, job, ctx, info, free));
    }
    for (h, g) in handles.into_iter().zip(groups.iter().skip(1)) {
        outs.push(h.join().unwrap_or_else(|p| {
            TaskOut {
                module: None,
                checks: g
                    .iter()
                    .map(|t| {
                        (
                            *t,
                            vec![Check::fail("internal", driver::panic_message(p.as_ref()))],
                        )
                    })
                    .collect(),
            }
        }));
    }
    let mut result = SideBySide::default();
    let mut by_task: Vec<(Task, Vec<Check>)> = Vec::new();
    for o in outs {
        if o.module.is_some() {
            result.module = o.module;
        }
        by_task.extend(o.checks);
    }
    for task in [Task::Sm80, Task::Sm90a, Task::Blas, Task::LtDnn] {
        for (t, checks) in by_task.iter_mut() {
            if *t == task {
                result.checks.append(checks);
            }
        }
    }
    result
}

/// The sm_80 module: JIT-compiled by the driver (~20-100 ms, or well under
/// a millisecond from the driver's cache).
fn load_sm80(info: &GpuInfo) -> (Option<Module>, Check) {
    let ptx80 = kernels::ptx("verify_sm80");
    match Module::load_ptx(&ptx80) {
        Ok(m) => (
            Some(m),
            Check::pass(
                "jit-sm80",
                format!(
                    "PTX {} (sm_80) JIT-compiled for sm_{}{}",
                    kernels::ptx_version(&ptx80).unwrap_or("?"),
                    info.cc.0,
                    info.cc.1
                ),
            ),
        ),
        Err(e) => {
            let (cause, fix) = driver::explain(e.error.code).unwrap_or((
                "the driver could not compile the embedded kernels",
                "check the driver version",
            ));
            let log = if e.log.is_empty() {
                String::new()
            } else {
                format!(
                    "; JIT log: {}",
                    e.log.lines().take(3).collect::<Vec<_>>().join(" | ")
                )
            };
            (
                None,
                Check::fail("jit-sm80", format!("{}: {cause}{log}", e.error)).fix(fix),
            )
        }
    }
}

fn describe(job: &GpuJob<'_>, info: &mut GpuInfo) -> Result<Device, driver::CuError> {
    let dev = Device::get(job.ordinal)?;
    info.name = dev.name()?;
    info.cc = dev.compute_capability()?;
    info.sms = dev.attribute(Attr::MULTIPROCESSOR_COUNT)?.max(0) as u32;
    info.memory_bytes = dev.total_mem()?;
    info.uuid = dev.uuid().unwrap_or_default();
    info.pci_bus_id = dev.pci_bus_id().unwrap_or_default();
    Ok(dev)
}

fn require_check(job: &GpuJob<'_>, info: &mut GpuInfo) -> Check {
    if job.opts.disable_require {
        return Check::skip("require", "NVIDIA_DISABLE_REQUIRE is set");
    }
    if job.requirements.is_empty() {
        return Check::skip("require", "no NVIDIA_REQUIRE_* variable in the environment");
    }
    let mut facts = job.facts.clone();
    facts.arch = Some(format!("{}.{}", info.cc.0, info.cc.1));
    let evaluate = |facts: &Facts| {
        job.requirements
            .iter()
            .map(|(name, expr)| (name, expr, expr.evaluate(facts)))
            .collect::<Vec<_>>()
    };
    let mut outcomes = evaluate(&facts);
    let mut brand_note = "not needed";
    // An alternative that held without the brand decides; only otherwise is
    // NVML asked for it (as the NVIDIA runtime would).
    if outcomes
        .iter()
        .any(|(_, _, o)| !o.satisfied && !o.unknown.is_empty())
    {
        facts.brand = (job.brand)(job.ordinal);
        info.brand = facts.brand.clone();
        brand_note = "unknown (NVML not available)";
        outcomes = evaluate(&facts);
    }
    let describe = format!(
        "cuda {}, driver {}, arch {}, brand {}",
        facts.cuda.as_deref().unwrap_or("?"),
        facts.driver.as_deref().unwrap_or("?"),
        facts.arch.as_deref().unwrap_or("?"),
        facts.brand.as_deref().unwrap_or(brand_note)
    );
    let mut failed = Vec::new();
    let mut passed = Vec::new();
    for (name, expr, outcome) in outcomes {
        if outcome.satisfied {
            passed.push(name.clone());
        } else {
            let mut why = format!(
                "{name}: unsatisfied condition: {}",
                expr.first_alternative()
            );
            if !outcome.unknown.is_empty() {
                why.push_str(&format!(
                    " (could not evaluate {})",
                    outcome.unknown.join(", ")
                ));
            }
            failed.push(why);
        }
    }
    if failed.is_empty() {
        Check::pass(
            "require",
            format!("{} satisfied ({describe})", passed.join(", ")),
        )
    } else {
        Check::fail("require", format!("{} ({describe})", failed.join("; ")))
            .fix("please update your driver to a newer version, or use an image built for an earlier CUDA version; NVIDIA_DISABLE_REQUIRE=1 skips this check")
    }
}

fn arch_check(job: &GpuJob<'_>, info: &GpuInfo) -> Check {
    let allowed: Vec<String> = job.opts.allowed_sm.iter().map(|s| s.to_string()).collect();
    let origin = if job.opts.allowed_sm_declared {
        "the image's allowed set"
    } else {
        "the default allowed set"
    };
    let sm = format!("sm_{}{}", info.cc.0, info.cc.1);
    match match_sm(&job.opts.allowed_sm, info.cc.0, info.cc.1) {
        SmMatch::Exact => Check::pass("arch", format!("{sm} is in {origin} {}", allowed.join(","))),
        SmMatch::Compatible(base) => Check::warn("arch", format!("{sm} is not in {origin} {}; code built for {base} runs on it, untested", allowed.join(",")))
            .fix(format!("add {sm} to the spec's gpu.arch list and rebuild, or run on a listed GPU")),
        SmMatch::No => Check::fail("arch", format!("{sm} ({}) is not in {origin} {}", info.name, allowed.join(",")))
            .fix(format!("run on a GPU the image was built for ({}), or rebuild with {sm} in the spec's gpu.arch list", allowed.join(", "))),
    }
}

fn fill(
    module: &Module,
    buf: &DevBuf,
    seed: u32,
    and_mask: u32,
    or_mask: u32,
    sms: u32,
) -> Result<(), String> {
    let f = module.function("fill_pattern").map_err(|e| e.to_string())?;
    let n = (buf.bytes / 4) as u64;
    let mut params = [
        arg(&buf.ptr),
        arg(&n),
        arg(&seed),
        arg(&and_mask),
        arg(&or_mask),
    ];
    // SAFETY: fill_pattern(uint32_t*, uint64_t, uint32_t, uint32_t, uint32_t); n words fit in buf.
    unsafe { driver::launch(f, sms.max(1) * 8, 256, 0, &mut params) }.map_err(|e| e.to_string())
}

/// Fills `buf` with random values of one type, in ±[0.5, 1): bf16 pairs,
/// f32, or e4m3 quadruples (sign and mantissa random, exponent fixed, so
/// never NaN, never zero).
pub fn fill_random(
    module: &Module,
    buf: &DevBuf,
    elem: i32,
    seed: u32,
    sms: u32,
) -> Result<(), String> {
    #[allow(unused_mut)]
    let (mut and_mask, mut or_mask) = match elem {
        dtype::R_16BF => (0x807F_807F, 0x3F00_3F00),
        dtype::R_8F_E4M3 => (0x8787_8787, 0x3030_3030),
        _ => (0x807F_FFFF, 0x3F00_0000),
    };
    // Development: other bit patterns (STRATA_VERIFY_DEV_FILL_<14|28|0>=AND,OR
    // in hex), to see how much the data moves a power-limited GEMM.
    #[cfg(feature = "dev-kernels")]
    if let Ok(v) = std::env::var(format!("STRATA_VERIFY_DEV_FILL_{elem}")) {
        if let Some((a, o)) = v.split_once(',') {
            if let (Ok(a), Ok(o)) = (u32::from_str_radix(a, 16), u32::from_str_radix(o, 16)) {
                (and_mask, or_mask) = (a, o);
            }
        }
    }
    fill(module, buf, seed, and_mask, or_mask, sms)
}

fn count_mismatches(
    module: &Module,
    buf: &DevBuf,
    words: u64,
    seed: u32,
    sms: u32,
) -> Result<u64, String> {
    let f = module
        .function("check_pattern")
        .map_err(|e| e.to_string())?;
    let errors = DevBuf::from_slice(&[0u64]).map_err(|e| e.to_string())?;
    let (and_mask, or_mask) = (u32::MAX, 0u32);
    let mut params = [
        arg(&buf.ptr),
        arg(&words),
        arg(&seed),
        arg(&and_mask),
        arg(&or_mask),
        arg(&errors.ptr),
    ];
    // SAFETY: check_pattern(const uint32_t*, uint64_t, uint32_t x3, unsigned long long*);
    // `words` fit in buf and `errors` holds one u64.
    unsafe { driver::launch(f, sms.max(1) * 8, 256, 0, &mut params) }.map_err(|e| e.to_string())?;
    let mut n = [0u64];
    errors.download(&mut n).map_err(|e| e.to_string())?;
    Ok(n[0])
}

/// Writes an address-dependent pattern over up to 256 MiB and checks it on
/// the GPU (twice, two seeds), then checks 16 MiB on the host after a
/// device-to-host copy and 16 MiB on the GPU after a host-to-device copy.
fn memory_check(module: &Module, free: u64, sms: u32, label: &'static str) -> Check {
    let bytes = (256u64 << 20).min(free / 8).max(1 << 20) as usize & !0xFFFF;
    let run = || -> Result<String, String> {
        let buf = DevBuf::alloc(bytes).map_err(|e| e.to_string())?;
        trace::mark(label, || "memory: allocated".into());
        let words = (bytes / 4) as u64;
        let mut bad = 0u64;
        for seed in [0x5EED_0001u32, 0xA5A5_5A5A] {
            fill(module, &buf, seed, u32::MAX, 0, sms)?;
            bad += count_mismatches(module, &buf, words, seed, sms)?;
        }
        trace::mark(label, || "memory: GPU passes done".into());
        let probe = (16usize << 20).min(bytes) / 4;
        let mut host = vec![0u32; probe];
        buf.download(&mut host).map_err(|e| e.to_string())?;
        trace::mark(label, || "memory: downloaded".into());
        let seed = 0xA5A5_5A5Au32;
        let host_bad = host
            .iter()
            .enumerate()
            .filter(|(i, v)| **v != kernels::mix(*i as u64, seed))
            .count() as u64;
        let seed = 0x0DD0_F00Du32;
        let up: Vec<u32> = (0..probe as u64).map(|i| kernels::mix(i, seed)).collect();
        trace::mark(label, || "memory: host side compared and generated".into());
        buf.upload(&up).map_err(|e| e.to_string())?;
        let up_bad = count_mismatches(module, &buf, probe as u64, seed, sms)?;
        if bad + host_bad + up_bad != 0 {
            return Err(format!(
                "{bad} words wrong after GPU write/read, {host_bad} after the copy to the host, {up_bad} after the copy from the host"
            ));
        }
        Ok(format!(
            "{} MiB written and read back twice on the GPU, {} MiB each way over PCIe: 0 errors",
            bytes >> 20,
            (probe * 4) >> 20
        ))
    };
    match run() {
        Ok(d) => Check::pass("memory", d),
        Err(e) => Check::fail("memory", e).fix("GPU memory or the PCIe path returns wrong data; drain the node and run nvidia-smi -q -d ECC,ROW_REMAPPER / dcgmi diag -r 3"),
    }
}

fn mma_check(module: &Module, sms: u32) -> Check {
    let run = || -> Result<String, String> {
        let (a, b, want) = kernels::mma_case();
        let blocks = sms.max(1) * 2;
        let da = DevBuf::from_slice(&a).map_err(|e| e.to_string())?;
        let db = DevBuf::from_slice(&b).map_err(|e| e.to_string())?;
        let dd = DevBuf::alloc(blocks as usize * 128 * 4).map_err(|e| e.to_string())?;
        dd.fill_bytes(0xFF).map_err(|e| e.to_string())?;
        let f = module
            .function("mma_bf16_m16n8k16")
            .map_err(|e| e.to_string())?;
        let mut params = [arg(&da.ptr), arg(&db.ptr), arg(&dd.ptr)];
        // SAFETY: mma_bf16_m16n8k16(const uint16_t*, const uint16_t*, float*); a has 256,
        // b 128 elements, d holds 128 floats per block.
        unsafe { driver::launch(f, blocks, 32, 0, &mut params) }.map_err(|e| e.to_string())?;
        let mut got = vec![0f32; blocks as usize * 128];
        dd.download(&mut got).map_err(|e| e.to_string())?;
        let mut bad = 0;
        let mut first = None;
        for (blk, chunk) in got.chunks(128).enumerate() {
            let (n, f) = kernels::compare_exact(chunk, &want);
            bad += n;
            if first.is_none() {
                first = f.map(|(i, g, w)| (blk, i, g, w));
            }
        }
        match first {
            None => Ok(format!(
                "bf16 mma.sync m16n8k16 on {blocks} blocks: {} values exact",
                got.len()
            )),
            Some((blk, i, g, w)) => Err(format!(
                "{bad} of {} values wrong; first: block {blk} element {i} = {g}, expected {w}",
                got.len()
            )),
        }
    };
    match run() {
        Ok(d) => Check::pass("mma-sm80", d),
        Err(e) => Check::fail("mma-sm80", e)
            .fix("the tensor cores return wrong results: drain the node and run dcgmi diag -r 3"),
    }
}

fn wgmma_check(info: &GpuInfo) -> Check {
    if info.cc != (9, 0) {
        return Check::skip(
            "wgmma-sm90a",
            format!(
                "wgmma needs compute capability 9.0; this GPU is {}.{}",
                info.cc.0, info.cc.1
            ),
        );
    }
    let t = Instant::now();
    let ptx = kernels::ptx("verify_sm90a");
    let module = match Module::load_ptx(&ptx) {
        Ok(m) => m,
        Err(e) => {
            let (cause, fix) = driver::explain(e.error.code).unwrap_or((
                "the driver could not compile the sm_90a kernel",
                "check the driver version",
            ));
            let log = if e.log.is_empty() {
                String::new()
            } else {
                format!(
                    "; JIT log: {}",
                    e.log.lines().take(3).collect::<Vec<_>>().join(" | ")
                )
            };
            return Check::fail("wgmma-sm90a", format!("{}: {cause}{log}", e.error)).fix(fix);
        }
    };
    let jit_ms = t.elapsed().as_secs_f64() * 1e3;
    let run = || -> Result<String, String> {
        let (a, b, want) = kernels::wgmma_case();
        let blocks = info.sms.max(1);
        let da = DevBuf::from_slice(&a).map_err(|e| e.to_string())?;
        let db = DevBuf::from_slice(&b).map_err(|e| e.to_string())?;
        let dd = DevBuf::alloc(blocks as usize * 512 * 4).map_err(|e| e.to_string())?;
        dd.fill_bytes(0xFF).map_err(|e| e.to_string())?;
        let f = module
            .function("wgmma_bf16_m64n8k32")
            .map_err(|e| e.to_string())?;
        #[allow(unused_mut)]
        let (mut lbo, mut sbo) = kernels::WGMMA_LBO_SBO;
        #[cfg(feature = "dev-kernels")]
        if std::env::var_os("STRATA_VERIFY_DEV_WGMMA_SWAP").is_some() {
            std::mem::swap(&mut lbo, &mut sbo);
        }
        let mut params = [
            arg(&da.ptr),
            arg(&db.ptr),
            arg(&dd.ptr),
            arg(&lbo),
            arg(&sbo),
        ];
        // SAFETY: wgmma_bf16_m64n8k32(const uint16_t*, const uint16_t*, float*, uint32_t, uint32_t);
        // a has 2048, b 256 elements, d holds 512 floats per block.
        unsafe { driver::launch(f, blocks, 128, 0, &mut params) }.map_err(|e| e.to_string())?;
        let mut got = vec![0f32; blocks as usize * 512];
        dd.download(&mut got).map_err(|e| e.to_string())?;
        let mut bad = 0;
        let mut first = None;
        for (blk, chunk) in got.chunks(512).enumerate() {
            let (n, f) = kernels::compare_exact(chunk, &want);
            bad += n;
            if first.is_none() {
                first = f.map(|(i, g, w)| (blk, i, g, w));
            }
        }
        match first {
            None => Ok(format!("bf16 wgmma m64n8k16 x2 on {blocks} warpgroups: {} values exact (JIT {jit_ms:.1} ms)", got.len())),
            Some((blk, i, g, w)) => Err(format!("{bad} of {} values wrong; first: block {blk} element {i} = {g}, expected {w}", got.len())),
        }
    };
    match run() {
        Ok(d) => Check::pass("wgmma-sm90a", d),
        Err(e) => Check::fail("wgmma-sm90a", e).fix("Hopper's warpgroup tensor-core path returns wrong results: drain the node and run dcgmi diag -r 3"),
    }
}

const SMALL: (usize, usize, usize) = (256, 128, 256);

fn cublas_tf32_check(blas: Option<&Cublas>, label: &'static str) -> Check {
    let Some(blas) = blas else {
        return Check::skip("cublas-tf32", "cuBLAS not loaded");
    };
    let (m, n, k) = SMALL;
    let run = || -> Result<String, String> {
        let (a, b, want) = kernels::small_gemm_case(m, n, k);
        let da = DevBuf::from_slice(&a).map_err(|e| e.to_string())?;
        let db = DevBuf::from_slice(&b).map_err(|e| e.to_string())?;
        let dc = DevBuf::alloc(m * n * 4).map_err(|e| e.to_string())?;
        dc.fill_bytes(0xFF).map_err(|e| e.to_string())?;
        let handle = BlasHandle::new(blas)?;
        trace::mark(label, || "cublas-tf32: cublasCreate done".into());
        let spec = LtSpec::tn(
            m as u64,
            n as u64,
            k as u64,
            dtype::R_32F,
            dtype::R_32F,
            compute::F32_FAST_TF32,
        );
        handle.gemm_ex(spec, da.ptr, db.ptr, dc.ptr)?;
        trace::mark(label, || "cublas-tf32: cublasGemmEx queued".into());
        driver::synchronize().map_err(|e| e.to_string())?;
        trace::mark(label, || "cublas-tf32: synchronised".into());
        let mut got = vec![0f32; m * n];
        dc.download(&mut got).map_err(|e| e.to_string())?;
        match kernels::compare_exact(&got, &want) {
            (0, _) => Ok(format!(
                "cublasGemmEx TF32 {m}x{n}x{k}: {} values exact",
                m * n
            )),
            (bad, Some((i, g, w))) => Err(format!(
                "{bad} of {} values wrong; first at {i}: {g}, expected {w}",
                m * n
            )),
            (bad, None) => Err(format!("{bad} values wrong")),
        }
    };
    match run() {
        Ok(d) => Check::pass("cublas-tf32", d),
        Err(e) => Check::fail("cublas-tf32", e).fix("cuBLAS from the image does not work on this GPU; check that its CUDA major matches the driver (cuda-compat) and the GPU architecture"),
    }
}

fn cublaslt_bf16_check(blas: Option<&Cublas>, label: &'static str) -> Check {
    let Some(blas) = blas else {
        return Check::skip("cublaslt-bf16", "cuBLASLt not loaded");
    };
    let (m, n, k) = SMALL;
    let run = || -> Result<String, String> {
        let ws = DevBuf::alloc(full::WORKSPACE_BYTES).map_err(|e| e.to_string())?;
        let (a, b, want) = kernels::small_gemm_case(m, n, k);
        let a16: Vec<u16> = a.iter().map(|x| kernels::bf16(*x as i32)).collect();
        let b16: Vec<u16> = b.iter().map(|x| kernels::bf16(*x as i32)).collect();
        let da = DevBuf::from_slice(&a16).map_err(|e| e.to_string())?;
        let db = DevBuf::from_slice(&b16).map_err(|e| e.to_string())?;
        let dd = DevBuf::alloc(m * n * 4).map_err(|e| e.to_string())?;
        dd.fill_bytes(0xFF).map_err(|e| e.to_string())?;
        let spec = LtSpec::tn(
            m as u64,
            n as u64,
            k as u64,
            dtype::R_16BF,
            dtype::R_32F,
            compute::F32,
        );
        let plan = LtGemm::plan(blas, spec, None, ws.ptr, ws.bytes)?;
        trace::mark(label, || "cublaslt-bf16: planned".into());
        plan.run(da.ptr, db.ptr, dd.ptr)?;
        trace::mark(label, || "cublaslt-bf16: cublasLtMatmul queued".into());
        driver::synchronize().map_err(|e| e.to_string())?;
        trace::mark(label, || "cublaslt-bf16: synchronised".into());
        let mut got = vec![0f32; m * n];
        dd.download(&mut got).map_err(|e| e.to_string())?;
        match kernels::compare_exact(&got, &want) {
            (0, _) => Ok(format!(
                "cublasLtMatmul bf16 {m}x{n}x{k}: {} values exact",
                m * n
            )),
            (bad, Some((i, g, w))) => Err(format!(
                "{bad} of {} values wrong; first at {i}: {g}, expected {w}",
                m * n
            )),
            (bad, None) => Err(format!("{bad} values wrong")),
        }
    };
    match run() {
        Ok(d) => Check::pass("cublaslt-bf16", d),
        Err(e) => Check::fail("cublaslt-bf16", e).fix("cuBLASLt from the image does not work on this GPU; check that its CUDA major matches the driver and the GPU architecture"),
    }
}
