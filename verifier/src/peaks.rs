//! Datasheet peaks (dense, no sparsity) of the GPUs Strata images target, and
//! the fractions of them the full level requires.
//!
//! The fractions were set from measurements on an H100 SXM and an H200
//! (cuBLASLt reaches about 80% of the bf16/TF32 peak, about 72% of FP8, and a
//! device copy about 90% of HBM bandwidth) with room for a warm card; see
//! docs/verifier.md for the table and the measurements.

/// Peaks of one GPU model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuModel {
    /// Name used in reports.
    pub name: &'static str,
    /// Dense BF16 tensor-core peak, TFLOP/s.
    pub bf16_tflops: f64,
    /// Dense TF32 tensor-core peak, TFLOP/s.
    pub tf32_tflops: f64,
    /// Dense FP8 tensor-core peak, TFLOP/s (None: no FP8 tensor cores).
    pub fp8_tflops: Option<f64>,
    /// HBM bandwidth, GB/s.
    pub hbm_gbs: f64,
}

/// Fraction of the bf16 peak a cuBLASLt 8192³ GEMM must reach.
pub const BF16_FRACTION: f64 = 0.70;
/// Fraction of the TF32 peak.
pub const TF32_FRACTION: f64 = 0.70;
/// Fraction of the FP8 peak.
pub const FP8_FRACTION: f64 = 0.55;
/// Fraction of the HBM bandwidth a device-to-device copy must reach
/// (bytes read plus bytes written).
pub const HBM_FRACTION: f64 = 0.75;

/// A100 SXM4 40 GB.
pub const A100_SXM_40: GpuModel = GpuModel {
    name: "A100 SXM4 40GB",
    bf16_tflops: 312.0,
    tf32_tflops: 156.0,
    fp8_tflops: None,
    hbm_gbs: 1555.0,
};
/// A100 SXM4 80 GB.
pub const A100_SXM_80: GpuModel = GpuModel {
    name: "A100 SXM4 80GB",
    bf16_tflops: 312.0,
    tf32_tflops: 156.0,
    fp8_tflops: None,
    hbm_gbs: 2039.0,
};
/// A100 PCIe 40 GB.
pub const A100_PCIE_40: GpuModel = GpuModel {
    name: "A100 PCIe 40GB",
    bf16_tflops: 312.0,
    tf32_tflops: 156.0,
    fp8_tflops: None,
    hbm_gbs: 1555.0,
};
/// A100 PCIe 80 GB.
pub const A100_PCIE_80: GpuModel = GpuModel {
    name: "A100 PCIe 80GB",
    bf16_tflops: 312.0,
    tf32_tflops: 156.0,
    fp8_tflops: None,
    hbm_gbs: 1935.0,
};
/// H100 SXM5 80 GB.
pub const H100_SXM: GpuModel = GpuModel {
    name: "H100 SXM5 80GB",
    bf16_tflops: 989.4,
    tf32_tflops: 494.7,
    fp8_tflops: Some(1978.9),
    hbm_gbs: 3350.0,
};
/// H100 PCIe 80 GB.
pub const H100_PCIE: GpuModel = GpuModel {
    name: "H100 PCIe 80GB",
    bf16_tflops: 756.0,
    tf32_tflops: 378.0,
    fp8_tflops: Some(1513.0),
    hbm_gbs: 2000.0,
};
/// H200 SXM 141 GB.
pub const H200: GpuModel = GpuModel {
    name: "H200 SXM 141GB",
    bf16_tflops: 989.4,
    tf32_tflops: 494.7,
    fp8_tflops: Some(1978.9),
    hbm_gbs: 4800.0,
};

/// Identifies a GPU from the driver's name, SM count and memory size.
/// Returns None for models without a table entry (their figures are
/// reported without a threshold).
pub fn identify(name: &str, sms: u32, memory_bytes: u64) -> Option<GpuModel> {
    let n = name.to_ascii_lowercase();
    let big = memory_bytes > 60 * (1 << 30);
    // NVL parts have their own (lower) power limits and peaks.
    if n.contains("nvl") {
        return None;
    }
    if n.contains("h200") {
        return Some(H200);
    }
    if n.contains("h100") {
        if n.contains("pcie") {
            return Some(H100_PCIE);
        }
        // "NVIDIA H100 80GB HBM3" is the SXM5 board (132 SMs).
        if sms == 132 {
            return Some(H100_SXM);
        }
        return None;
    }
    if n.contains("a100") {
        let pcie = n.contains("pcie");
        return Some(match (pcie, big) {
            (true, true) => A100_PCIE_80,
            (true, false) => A100_PCIE_40,
            (false, true) => A100_SXM_80,
            (false, false) => A100_SXM_40,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn names_the_driver_reports() {
        assert_eq!(
            identify("NVIDIA H100 80GB HBM3", 132, 80 * GIB),
            Some(H100_SXM)
        );
        assert_eq!(identify("NVIDIA H100 PCIe", 114, 80 * GIB), Some(H100_PCIE));
        assert_eq!(identify("NVIDIA H100 NVL", 132, 94 * GIB), None);
        assert_eq!(identify("NVIDIA H200", 132, 141 * GIB), Some(H200));
        assert_eq!(
            identify("NVIDIA A100-SXM4-80GB", 108, 80 * GIB),
            Some(A100_SXM_80)
        );
        assert_eq!(
            identify("NVIDIA A100-SXM4-40GB", 108, 40 * GIB),
            Some(A100_SXM_40)
        );
        assert_eq!(
            identify("NVIDIA A100 80GB PCIe", 108, 80 * GIB),
            Some(A100_PCIE_80)
        );
        assert_eq!(
            identify("NVIDIA A100-PCIE-40GB", 108, 40 * GIB),
            Some(A100_PCIE_40)
        );
        assert_eq!(identify("NVIDIA GeForce RTX 4090", 128, 24 * GIB), None);
    }

    #[test]
    fn thresholds_match_the_documented_h100_figures() {
        // docs/verifier.md quotes these numbers; keep them in step.
        assert!((H100_SXM.bf16_tflops * BF16_FRACTION - 692.6).abs() < 0.1);
        assert!((H100_SXM.tf32_tflops * TF32_FRACTION - 346.3).abs() < 0.1);
        assert!((H100_SXM.fp8_tflops.unwrap() * FP8_FRACTION - 1088.4).abs() < 0.1);
        assert!((H100_SXM.hbm_gbs * HBM_FRACTION - 2512.5).abs() < 0.1);
    }
}
