//! The full level's per-GPU figures: cuBLASLt GEMM throughput (bf16, TF32,
//! FP8) and HBM copy bandwidth, judged against the GPU's datasheet peak.

use super::gpu::fill_random;
use crate::checks::libs::Libs;
use crate::driver::{self, arg, DevBuf, Module};
use crate::ffi::cublas::{compute, dtype, LtGemm, LtSpec};
use crate::peaks::{self, GpuModel};
use crate::report::{Check, Figure, GpuInfo};
use std::time::Instant;

/// GEMM size: large enough that cuBLASLt reaches its sustained rate.
const N: u64 = 8192;
/// Timed batches; the median is reported.
const BATCHES: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn judged(
    name: &str,
    value: f64,
    unit: &'static str,
    peak: Option<f64>,
    fraction: f64,
    what: String,
    model: Option<GpuModel>,
) -> Check {
    let threshold = peak.map(|p| p * fraction);
    let fig = Figure {
        value,
        unit,
        threshold,
        peak,
    };
    match (threshold, model) {
        (Some(t), Some(m)) if value < t => Check::fail(name, format!("{what} on {}: {value:.1} {unit} is below {:.0}% of the datasheet peak", m.name, fraction * 100.0))
            .fix("the GPU is throttled (power, thermal, clocks) or shared; check nvidia-smi -q -d PERFORMANCE,CLOCK on the host")
            .figure(fig),
        (_, Some(m)) => Check::pass(name, format!("{what} on {}", m.name)).figure(fig),
        _ => Check::pass(name, format!("{what} (no datasheet entry for this GPU: reported, not judged)")).figure(fig),
    }
}

struct Bufs {
    a: DevBuf,
    b: DevBuf,
    d: DevBuf,
    scales: DevBuf,
}

/// Times one GEMM type; `types` is (A/B type, C/D type, compute type).
fn gemm(
    module: &Module,
    info: &GpuInfo,
    blas: &crate::ffi::cublas::Cublas,
    ws: &DevBuf,
    bufs: &Bufs,
    types: (i32, i32, i32),
) -> Result<(f64, usize), String> {
    let (ab, cd, comp) = types;
    fill_random(module, &bufs.a, ab, 11, info.sms)?;
    fill_random(module, &bufs.b, ab, 22, info.sms)?;
    let scales = if ab == dtype::R_8F_E4M3 {
        Some((bufs.scales.ptr, bufs.scales.ptr + 256))
    } else {
        None
    };
    let plan = LtGemm::plan(
        blas,
        LtSpec {
            m: N,
            n: N,
            k: N,
            ab_type: ab,
            cd_type: cd,
            compute: comp,
        },
        scales,
        ws.ptr,
        ws.bytes,
    )?;
    // Warm-up: clocks ramp up and cuBLASLt loads its kernel.
    for _ in 0..5 {
        plan.run(bufs.a.ptr, bufs.b.ptr, bufs.d.ptr)?;
    }
    driver::synchronize().map_err(|e| e.to_string())?;
    let iters = 10u32;
    let mut rates = Vec::new();
    for _ in 0..BATCHES {
        let ms = driver::time_ms(iters, || plan.run(bufs.a.ptr, bufs.b.ptr, bufs.d.ptr))?;
        rates.push(2.0 * (N as f64).powi(3) * f64::from(iters) / (ms * 1e-3) / 1e12);
    }
    Ok((median(rates), plan.workspace_needed))
}

/// Runs the throughput and bandwidth checks on the current GPU.
pub fn run(module: &Module, info: &GpuInfo, libs: &Libs, workspace: Option<&DevBuf>) -> Vec<Check> {
    let model = peaks::identify(&info.name, info.sms, info.memory_bytes);
    let mut out = Vec::new();
    let gemm_names = ["gemm-bf16", "gemm-tf32", "gemm-fp8"];
    match (&libs.cublas, workspace) {
        (Some(blas), Some(ws)) => {
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
                            model.map(|m| m.bf16_tflops),
                            peaks::BF16_FRACTION,
                        ),
                        (
                            "gemm-tf32",
                            dtype::R_32F,
                            dtype::R_32F,
                            compute::F32_FAST_TF32,
                            "TF32",
                            model.map(|m| m.tf32_tflops),
                            peaks::TF32_FRACTION,
                        ),
                        (
                            "gemm-fp8",
                            dtype::R_8F_E4M3,
                            dtype::R_16BF,
                            compute::F32,
                            "FP8 e4m3",
                            model.and_then(|m| m.fp8_tflops),
                            peaks::FP8_FRACTION,
                        ),
                    ];
                    for (name, ab, cd, comp, label, peak, fraction) in cases {
                        let t = Instant::now();
                        if ab == dtype::R_8F_E4M3 && info.cc < (8, 9) {
                            out.push(Check::skip(name, format!("FP8 tensor cores need compute capability 8.9 or 9.0; this GPU is {}.{}", info.cc.0, info.cc.1)));
                            continue;
                        }
                        let c = match gemm(module, info, blas, ws, &bufs, (ab, cd, comp)) {
                            Ok((tflops, _)) => judged(
                                name,
                                tflops,
                                "TFLOP/s",
                                peak,
                                fraction,
                                format!("cuBLASLt {label} {N}x{N}x{N}, median of {BATCHES}x10"),
                                model,
                            ),
                            Err(e) => Check::fail(name, format!("cuBLASLt {label} {N}^3: {e}")),
                        };
                        out.push(c.ms(t.elapsed().as_secs_f64() * 1e3));
                    }
                }
            }
        }
        _ => {
            for name in gemm_names {
                out.push(Check::skip(name, "cuBLASLt not loaded"));
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
            judged(
                "hbm-copy",
                best,
                "TB/s",
                model.map(|m| m.hbm_gbs / 1000.0),
                peaks::HBM_FRACTION,
                what,
                model,
            )
        }
        Err(e) => Check::fail("hbm-copy", e),
    }
}
