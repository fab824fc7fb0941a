//! NCCL across the visible GPUs: an exact all-reduce at the quick level
//! (only with more than one GPU: communicator set-up costs about half a
//! second), and the all-reduce bus bandwidth at the full level.

use crate::driver::{self, Context, DevBuf};
use crate::ffi::nccl::Nccl;
use crate::peaks;
use crate::policy::Level;
use crate::report::{Check, Figure, GpuInfo};
use std::time::Instant;

/// Bus bandwidth every NVLink-connected SXM system reaches easily; below it
/// the GPUs talk over PCIe or the network path. Only applied when every GPU
/// is an SXM board from the datasheet table.
pub const NVLINK_MIN_BUSBW_GBS: f64 = 100.0;

fn set(ctx: &Context) -> Result<(), String> {
    ctx.make_current().map_err(|e| e.to_string())
}

fn memset_f32(buf: &DevBuf, value: f32) -> Result<(), String> {
    buf.fill_u32(value.to_bits()).map_err(|e| e.to_string())
}

fn sync_all(ctxs: &[Context]) -> Result<(), String> {
    for c in ctxs {
        set(c)?;
        driver::synchronize().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One stream per GPU, created in its context (NCCL's own examples give each
/// device its own stream rather than the legacy default stream).
fn streams(ctxs: &[Context]) -> Result<Vec<*mut std::ffi::c_void>, String> {
    let mut out = Vec::new();
    for c in ctxs {
        set(c)?;
        out.push(driver::stream_create().map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Runs the NCCL checks over `ctxs` (one primary context per GPU, in ordinal order).
pub fn run(nccl: &Nccl, ctxs: &[Context], gpus: &[GpuInfo], level: Level) -> Vec<Check> {
    let mut out = Vec::new();
    let n = ctxs.len();
    let t = Instant::now();
    let comms = match nccl.init_all(n) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail("nccl-allreduce", format!("{e} for {n} GPUs")).ms(t.elapsed().as_secs_f64() * 1e3)
                .fix("NCCL cannot connect the GPUs; run with NCCL_DEBUG=INFO to see why (shared memory size: docker --shm-size, --ipc=host)"));
            return out;
        }
    };
    let init_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let streams = match streams(ctxs) {
        Ok(s) => s,
        Err(e) => {
            out.push(Check::fail("nccl-allreduce", e));
            return out;
        }
    };
    let count = 1usize << 20;
    let correct = (|| -> Result<String, String> {
        let mut bufs = Vec::new();
        for (i, c) in ctxs.iter().enumerate() {
            set(c)?;
            let send = DevBuf::alloc(count * 4).map_err(|e| e.to_string())?;
            let recv = DevBuf::alloc(count * 4).map_err(|e| e.to_string())?;
            memset_f32(&send, (i + 1) as f32)?;
            memset_f32(&recv, -1.0)?;
            bufs.push((send, recv));
        }
        sync_all(ctxs)?;
        let ptrs: Vec<(u64, u64)> = bufs.iter().map(|(s, r)| (s.ptr, r.ptr)).collect();
        comms.all_reduce_f32(&ptrs, &streams, count)?;
        sync_all(ctxs)?;
        let want = (n * (n + 1) / 2) as f32;
        for (i, c) in ctxs.iter().enumerate() {
            set(c)?;
            let mut host = vec![0f32; count];
            bufs[i].1.download(&mut host).map_err(|e| e.to_string())?;
            if let Some((j, v)) = host.iter().enumerate().find(|(_, v)| **v != want) {
                return Err(format!("GPU {i} element {j} is {v}, expected {want}"));
            }
        }
        Ok(format!(
            "sum over {n} GPUs of {count} floats exact (communicator set-up {init_ms:.0} ms)"
        ))
    })();
    out.push(match correct {
        Ok(d) => Check::pass("nccl-allreduce", d),
        Err(e) => Check::fail("nccl-allreduce", e).fix("NCCL returns wrong data: check NVLink/PCIe health (nvidia-smi nvlink -s) and run nccl-tests"),
    }.ms(t.elapsed().as_secs_f64() * 1e3 + init_ms));

    if level == Level::Full {
        let t = Instant::now();
        let count = 64usize << 20; // 256 MiB of floats per GPU
        let bw = (|| -> Result<f64, String> {
            let mut bufs = Vec::new();
            for c in ctxs {
                set(c)?;
                let send = DevBuf::alloc(count * 4).map_err(|e| e.to_string())?;
                let recv = DevBuf::alloc(count * 4).map_err(|e| e.to_string())?;
                memset_f32(&send, 1.0)?;
                bufs.push((send, recv));
            }
            let ptrs: Vec<(u64, u64)> = bufs.iter().map(|(s, r)| (s.ptr, r.ptr)).collect();
            for _ in 0..2 {
                comms.all_reduce_f32(&ptrs, &streams, count)?;
            }
            sync_all(ctxs)?;
            let iters = 5;
            let start = Instant::now();
            for _ in 0..iters {
                comms.all_reduce_f32(&ptrs, &streams, count)?;
            }
            sync_all(ctxs)?;
            let secs = start.elapsed().as_secs_f64() / f64::from(iters);
            let bytes = (count * 4) as f64;
            Ok(bytes / secs * 2.0 * (n as f64 - 1.0) / n as f64 / 1e9)
        })();
        let sxm = gpus.iter().all(|g| {
            matches!(peaks::identify(&g.name, g.sms, g.memory_bytes), Some(m) if m.name.contains("SXM"))
        });
        let c = match bw {
            Ok(busbw) => {
                let threshold = sxm.then_some(NVLINK_MIN_BUSBW_GBS);
                let fig = Figure {
                    value: busbw,
                    unit: "GB/s",
                    threshold,
                    peak: None,
                };
                match threshold {
                    Some(t) if busbw < t => Check::fail("nccl-busbw", format!("all-reduce of 256 MiB over {n} GPUs: bus bandwidth below what NVLink gives"))
                        .fix("the GPUs are not using NVLink (check nvidia-smi topo -m and NCCL_P2P_DISABLE)").figure(fig),
                    _ => Check::pass("nccl-busbw", format!("all-reduce of 256 MiB over {n} GPUs (bus bandwidth)")).figure(fig),
                }
            }
            Err(e) => Check::fail("nccl-busbw", e),
        };
        out.push(c.ms(t.elapsed().as_secs_f64() * 1e3));
    }
    // The process is about to become the user's command (execve) or exit,
    // either of which releases the communicators with everything else;
    // ncclCommDestroy first would only add its own teardown to the start-up.
    std::mem::forget(comms);
    out
}
