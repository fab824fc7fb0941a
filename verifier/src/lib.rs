//! `strata-verify`: proves, at container start, that the GPU stack inside an
//! image built by Strata works on the GPUs it was given, then hands the process
//! over to the real command.
//!
//! The crate is a library plus a thin binary so that the pure parts (policy,
//! requirement rules, the CUDA/driver table, report rendering) are unit-tested
//! on machines without a GPU, which is where CI runs.
//!
//! One concern per module:
//! - [`policy`]: command line and environment → what to check and how strictly.
//! - [`require`]: the `NVIDIA_REQUIRE_*` rule language of the NVIDIA container runtime.
//! - [`compat`]: CUDA toolkit ↔ minimum driver table and version comparison.
//! - [`peaks`]: datasheet peaks of the GPUs we know and the pass thresholds.
//! - [`report`]: check results, the text report and the JSON report.
//! - [`json`]: the one JSON writer (deterministic key order).
//! - [`discover`]: finding libcuda and the image's own CUDA libraries.
//! - [`driver`]: the CUDA driver API, every call checked.
//! - [`ffi`]: libcuda, cuBLAS, cuBLASLt, cuDNN, NCCL and NVML through libloading.
//! - [`kernels`]: the embedded PTX and the host-side reference results.
//! - [`checks`]: the quick and full check sequences.
//! - [`handover`]: replacing this process with the user's command.
//! - [`metrics`]: `strata-verify metrics`, GPU metrics for Prometheus.
//! - [`trace`]: the optional start-up timeline (`STRATA_VERIFY_TRACE=1`).
#![deny(missing_docs)]

pub mod checks;
pub mod compat;
pub mod discover;
pub mod driver;
pub mod ffi;
pub mod handover;
pub mod json;
pub mod kernels;
pub mod metrics;
pub mod peaks;
pub mod policy;
pub mod report;
pub mod require;
pub mod trace;
