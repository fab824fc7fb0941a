//! The full level's per-GPU figures: GEMM throughput (bf16, TF32, FP8) and
//! HBM copy bandwidth, judged against what a healthy GPU of the same model
//! measured (or, for models not measured, a fraction of the datasheet peak).
//!
//! A GEMM figure is only worth judging if it is the best the image's
//! libraries can do: the heuristic's first cuBLASLt algorithm is not always
//! the fastest (TF32 on an H100 was 13% under PyTorch's figure with it), so
//! every algorithm the heuristic offers, and `cublasGemmEx` (PyTorch's
//! default path), is timed briefly and the fastest is measured.

use super::gpu::fill_random;
use crate::driver::{self, arg, DevBuf, Module};
use crate::ffi::cublas::{compute, dtype, BlasHandle, Cublas, LtGemm, LtSpec};
use crate::peaks::{self, GpuModel, Kind};
use crate::report::{Check, Figure, GpuInfo};
use crate::trace;
use std::time::Instant;

/// GEMM size: large enough that cuBLASLt reaches its sustained rate.
const N: u64 = 8192;
/// Timed batches; the median is reported.
const BATCHES: usize = 5;
/// cuBLASLt workspace (what PyTorch gives cuBLAS on Hopper).
pub const WORKSPACE_BYTES: usize = 32 << 20;
/// Algorithms asked of the cuBLASLt heuristic per GEMM.
const MAX_ALGOS: usize = 8;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn judged(
    name: &str,
    value: f64,
    unit: &'static str,
    kind: Kind,
    what: String,
    model: Option<GpuModel>,
) -> Check {
    let peak = model.and_then(|m| m.peak(kind));
    let rule = model.and_then(|m| m.threshold(kind));
    let fig = Figure {
        value,
        unit,
        threshold: rule.as_ref().map(|r| r.value),
        peak,
    };
    match (rule, model) {
        (Some(r), Some(m)) if value < r.value => Check::fail(name, format!("{what} on {}: {value:.1} {unit} is below {:.1} ({})", m.name, r.value, r.basis))
            .fix("the GPU is throttled (power, thermal, clocks) or shared; check nvidia-smi -q -d PERFORMANCE,CLOCK on the host")
            .figure(fig),
        (Some(r), Some(m)) => Check::pass(name, format!("{what} on {} (threshold {:.1}: {})", m.name, r.value, r.basis)).figure(fig),
        (None, Some(m)) => Check::pass(name, format!("{what} on {} (no threshold for this model: reported, not judged)", m.name)).figure(fig),
        _ => Check::pass(name, format!("{what} (no entry for this GPU: reported, not judged)")).figure(fig),
    }
}

struct Bufs {
    a: DevBuf,
    b: DevBuf,
    d: DevBuf,
    scales: DevBuf,
}

/// One way to run the GEMM.
enum Candidate<'a> {
    /// A cuBLASLt plan with its algorithm chosen.
    Lt(LtGemm<'a>, usize),
    /// `cublasGemmEx` with the default algorithm.
    Ex(BlasHandle<'a>, LtSpec),
}

impl Candidate<'_> {
    fn run(&mut self, bufs: &Bufs) -> Result<(), String> {
        match self {
            Candidate::Lt(plan, i) => {
                plan.choose(*i);
                plan.run(bufs.a.ptr, bufs.b.ptr, bufs.d.ptr)
            }
            Candidate::Ex(h, spec) => h.gemm_ex(*spec, bufs.a.ptr, bufs.b.ptr, bufs.d.ptr),
        }
    }

    fn describe(&self) -> String {
        match self {
            Candidate::Lt(plan, i) => format!(
                "cuBLASLt, heuristic algorithm {} of {}",
                i + 1,
                plan.candidates()
            ),
            Candidate::Ex(_, _) => "cublasGemmEx".to_string(),
        }
    }
}

/// Layouts tried: "TN" (both operands K-major); development builds can add
/// others with STRATA_VERIFY_DEV_GEMM_LAYOUTS=TN,NN,...
fn layouts() -> Vec<(bool, bool)> {
    #[cfg(feature = "dev-kernels")]
    if let Ok(v) = std::env::var("STRATA_VERIFY_DEV_GEMM_LAYOUTS") {
        let l: Vec<(bool, bool)> = v
            .split(',')
            .filter_map(|w| match w.trim() {
                "TN" => Some((true, false)),
                "NN" => Some((false, false)),
                "NT" => Some((false, true)),
                "TT" => Some((true, true)),
                _ => None,
            })
            .collect();
        if !l.is_empty() {
            return l;
        }
    }
    vec![(true, false)]
}

fn tflops(ms: f64, iters: u32) -> f64 {
    2.0 * (N as f64).powi(3) * f64::from(iters) / (ms * 1e-3) / 1e12
}

/// Times one GEMM type; `types` is (A/B type, C/D type, compute type).
/// Returns the median rate of the fastest way and the words for it.
fn gemm(
    name: &'static str,
    module: &Module,
    info: &GpuInfo,
    blas: &Cublas,
    ws: &DevBuf,
    bufs: &Bufs,
    types: (i32, i32, i32),
) -> Result<(f64, String), String> {
    let (ab, cd, comp) = types;
    let label = trace::gpu_label(info.index as i32, 0);
    fill_random(module, &bufs.a, ab, 11, info.sms)?;
    fill_random(module, &bufs.b, ab, 22, info.sms)?;
    let fp8 = ab == dtype::R_8F_E4M3;
    let scales = fp8.then_some((bufs.scales.ptr, bufs.scales.ptr + 256));
    let mut candidates: Vec<(Candidate<'_>, &'static str)> = Vec::new();
    let mut errors = Vec::new();
    for (trans_a, trans_b) in layouts() {
        let spec = LtSpec {
            trans_a,
            trans_b,
            ..LtSpec::tn(N, N, N, ab, cd, comp)
        };
        // FP8 tensor cores take only "TN".
        if fp8 && spec.layout_name() != "TN" {
            continue;
        }
        match LtGemm::plan_candidates(blas, spec, scales, ws.ptr, ws.bytes, MAX_ALGOS) {
            Ok(plan) => {
                let n = plan.candidates();
                // Every algorithm needs its own plan object to be kept; the
                // descriptors are cheap, so one plan per algorithm.
                candidates.push((Candidate::Lt(plan, 0), spec.layout_name()));
                for i in 1..n {
                    match LtGemm::plan_candidates(blas, spec, scales, ws.ptr, ws.bytes, MAX_ALGOS) {
                        Ok(p) => candidates.push((Candidate::Lt(p, i), spec.layout_name())),
                        Err(e) => errors.push(e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if !fp8 {
            match BlasHandle::new(blas) {
                Ok(h) => candidates.push((Candidate::Ex(h, spec), spec.layout_name())),
                Err(e) => errors.push(e),
            }
        }
    }
    if candidates.is_empty() {
        return Err(errors.join("; "));
    }
    // A short race: every candidate warms up twice, then five timed runs.
    let mut best: Option<(usize, f64)> = None;
    let tried = candidates.len();
    for (i, (c, layout)) in candidates.iter_mut().enumerate() {
        let rate = (|| -> Result<f64, String> {
            for _ in 0..2 {
                c.run(bufs)?;
            }
            Ok(tflops(driver::time_ms(5, || c.run(bufs))?, 5))
        })();
        match rate {
            Ok(r) => {
                trace::mark(label, || {
                    format!("{name} candidate {layout} {}: {r:.1} TFLOP/s", c.describe())
                });
                if best.is_none_or(|(_, b)| r > b) {
                    best = Some((i, r));
                }
            }
            Err(e) => {
                trace::mark(label, || {
                    format!("{name} candidate {layout} {}: {e}", c.describe())
                });
                errors.push(e);
            }
        }
    }
    let Some((i, _)) = best else {
        return Err(errors.join("; "));
    };
    let (c, layout) = &mut candidates[i];
    // Warm-up: clocks settle on the chosen kernel.
    for _ in 0..5 {
        c.run(bufs)?;
    }
    driver::synchronize().map_err(|e| e.to_string())?;
    let iters = 10u32;
    let mut rates = Vec::new();
    for _ in 0..BATCHES {
        let ms = driver::time_ms(iters, || c.run(bufs))?;
        rates.push(tflops(ms, iters));
    }
    Ok((
        median(rates),
        format!(
            "{layout}, {}: the fastest of {tried} tried, median of {BATCHES}x{iters}",
            c.describe()
        ),
    ))
}

/// Runs the throughput and bandwidth checks on the current GPU.
pub fn run(module: &Module, info: &GpuInfo, blas: Option<&Cublas>) -> Vec<Check> {
    let model = peaks::identify(&info.name, info.sms, info.memory_bytes);
    let mut out = Vec::new();
    let gemm_names = ["gemm-bf16", "gemm-tf32", "gemm-fp8"];
    let ws = DevBuf::alloc(WORKSPACE_BYTES);
    match (blas, ws) {
        (Some(blas), Ok(ws)) => {
            let n2 = (N * N) as usize;
            let bufs = (|| -> Result<Bufs, driver::CuError> {
                // Two scale factors of 1.0, 256 bytes apart: cuBLASLt's FP8
                // kernels want every pointer 16-byte aligned, scales included.
                let mut ones = [0f32; 128];
                ones[0] = 1.0;
                ones[64] = 1.0;
                let scales = DevBuf::from_slice(&ones)?;
                Ok(Bufs {
                    a: DevBuf::alloc(n2 * 4)?,
                    b: DevBuf::alloc(n2 * 4)?,
                    d: DevBuf::alloc(n2 * 4)?,
                    scales,
                })
            })();
            match bufs {
                Err(e) => {
                    for name in gemm_names {
                        out.push(Check::fail(
                            name,
                            format!("cannot allocate 768 MiB for the {N}^3 GEMMs: {e}"),
                        ));
                    }
                }
                Ok(bufs) => {
                    let cases = [
                        (
                            "gemm-bf16",
                            dtype::R_16BF,
                            dtype::R_16BF,
                            compute::F32,
                            "bf16",
                            Kind::Bf16,
                        ),
                        (
                            "gemm-tf32",
                            dtype::R_32F,
                            dtype::R_32F,
                            compute::F32_FAST_TF32,
                            "TF32",
                            Kind::Tf32,
                        ),
                        (
                            "gemm-fp8",
                            dtype::R_8F_E4M3,
                            dtype::R_16BF,
                            compute::F32,
                            "FP8 e4m3",
                            Kind::Fp8,
                        ),
                    ];
                    for (name, ab, cd, comp, label, kind) in cases {
                        let t = Instant::now();
                        if ab == dtype::R_8F_E4M3 && info.cc < (8, 9) {
                            out.push(Check::skip(name, format!("FP8 tensor cores need compute capability 8.9 or 9.0; this GPU is {}.{}", info.cc.0, info.cc.1)));
                            continue;
                        }
                        let c = match gemm(name, module, info, blas, &ws, &bufs, (ab, cd, comp)) {
                            Ok((tflops, how)) => judged(
                                name,
                                tflops,
                                "TFLOP/s",
                                kind,
                                format!("{label} {N}x{N}x{N} ({how})"),
                                model,
                            ),
                            Err(e) => Check::fail(name, format!("{label} {N}^3: {e}")),
                        };
                        out.push(c.ms(t.elapsed().as_secs_f64() * 1e3));
                    }
                }
            }
        }
        (None, _) => {
            for name in gemm_names {
                out.push(Check::skip(name, "cuBLAS not loaded"));
            }
        }
        (Some(_), Err(e)) => {
            for name in gemm_names {
                out.push(Check::fail(
                    name,
                    format!("cannot allocate the cuBLASLt workspace: {e}"),
                ));
            }
        }
    }
    let t = Instant::now();
    out.push(hbm(module, info, model).ms(t.elapsed().as_secs_f64() * 1e3));
    out
}

/// Device-to-device copy bandwidth, counting bytes read plus bytes written,
/// as the better of `cuMemcpyDtoDAsync` and a 16-byte-per-thread kernel.
fn hbm(module: &Module, info: &GpuInfo, model: Option<GpuModel>) -> Check {
    let run = || -> Result<(f64, f64, usize), String> {
        let (free, _) = driver::mem_info().map_err(|e| e.to_string())?;
        let bytes = ((2u64 << 30).min(free / 3) as usize) & !0xFFFF;
        let src = DevBuf::alloc(bytes).map_err(|e| e.to_string())?;
        let dst = DevBuf::alloc(bytes).map_err(|e| e.to_string())?;
        fill_random(module, &src, dtype::R_32F, 7, info.sms)?;
        let copy = module.function("copy_u4").map_err(|e| e.to_string())?;
        let n16 = (bytes / 16) as u64;
        let mut kernel = || {
            let mut params = [arg(&src.ptr), arg(&dst.ptr), arg(&n16)];
            // SAFETY: copy_u4(const uint4*, uint4*, uint64_t); both buffers hold n16 16-byte words.
            unsafe { driver::launch(copy, info.sms.max(1) * 8, 512, 0, &mut params) }
                .map_err(|e| e.to_string())
        };
        let memcpy = || driver::copy_d2d(dst.ptr, src.ptr, bytes).map_err(|e| e.to_string());
        let iters = 10u32;
        let gbs = |ms: f64| 2.0 * bytes as f64 * f64::from(iters) / (ms * 1e-3) / 1e9;
        // Warm-up both paths.
        for _ in 0..3 {
            memcpy()?;
            kernel()?;
        }
        let mut a = Vec::new();
        let mut k = Vec::new();
        for _ in 0..BATCHES {
            a.push(gbs(driver::time_ms(iters, memcpy)?));
            k.push(gbs(driver::time_ms(iters, &mut kernel)?));
        }
        Ok((median(a), median(k), bytes))
    };
    match run() {
        Ok((memcpy, kernel, bytes)) => {
            let best = memcpy.max(kernel) / 1000.0;
            let what = format!(
                "device copy of {} MiB: cuMemcpyDtoD {:.0} GB/s, copy kernel {:.0} GB/s (read+write)",
                bytes >> 20,
                memcpy,
                kernel
            );
            judged("hbm-copy", best, "TB/s", Kind::Hbm, what, model)
        }
        Err(e) => Check::fail("hbm-copy", e),
    }
}
