//! Datasheet peaks (dense, no sparsity) of the GPUs Strata images target, and
//! the thresholds the full level applies.
//!
//! For a model measured on a healthy card (H100 SXM, H200) the threshold is
//! [`MEASURED_FRACTION`] of what the verifier itself measured there, the same
//! figure that PyTorch reaches within a few percent: a card throttled by 10%
//! or more fails. For a model not measured (A100, H100 PCIe) it is a fraction
//! of the datasheet peak, looser because nobody has seen what the card
//! really gives. See docs/verifier.md for the measurements.

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
    /// What the full level measured on a healthy card of this model.
    pub measured: Option<Measured>,
}

/// Full-level figures of a healthy card (medians over runs, same binary).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// bf16 GEMM, TFLOP/s.
    pub bf16_tflops: f64,
    /// TF32 GEMM, TFLOP/s.
    pub tf32_tflops: f64,
    /// FP8 GEMM, TFLOP/s.
    pub fp8_tflops: f64,
    /// Device copy, TB/s (read + write).
    pub hbm_tbs: f64,
}

/// Which figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// bf16 GEMM.
    Bf16,
    /// TF32 GEMM.
    Tf32,
    /// FP8 GEMM.
    Fp8,
    /// Device copy bandwidth.
    Hbm,
}

/// A pass threshold and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The figure must be at least this (TFLOP/s, or TB/s for the copy).
    pub value: f64,
    /// In words: "90% of 781.0 measured on a healthy H100 SXM5 80GB".
    pub basis: String,
}

/// Fraction of the healthy-card measurement a figure must reach.
pub const MEASURED_FRACTION: f64 = 0.90;

impl GpuModel {
    /// The datasheet peak in the figure's unit (TFLOP/s, TB/s).
    pub fn peak(&self, kind: Kind) -> Option<f64> {
        match kind {
            Kind::Bf16 => Some(self.bf16_tflops),
            Kind::Tf32 => Some(self.tf32_tflops),
            Kind::Fp8 => self.fp8_tflops,
            Kind::Hbm => Some(self.hbm_gbs / 1000.0),
        }
    }

    /// The pass threshold for `kind` on this model.
    pub fn threshold(&self, kind: Kind) -> Option<Rule> {
        if let Some(m) = self.measured {
            let healthy = match kind {
                Kind::Bf16 => m.bf16_tflops,
                Kind::Tf32 => m.tf32_tflops,
                Kind::Fp8 => m.fp8_tflops,
                Kind::Hbm => m.hbm_tbs,
            };
            return Some(Rule {
                value: round1(healthy * MEASURED_FRACTION),
                basis: format!(
                    "{:.0}% of {healthy} measured on a healthy {}",
                    MEASURED_FRACTION * 100.0,
                    self.name
                ),
            });
        }
        let fraction = match kind {
            Kind::Bf16 => BF16_FRACTION,
            Kind::Tf32 => TF32_FRACTION,
            Kind::Fp8 => FP8_FRACTION,
            Kind::Hbm => HBM_FRACTION,
        };
        let peak = self.peak(kind)?;
        Some(Rule {
            value: round1(peak * fraction),
            basis: format!(
                "{:.0}% of the datasheet peak {peak}; this model was not measured",
                fraction * 100.0
            ),
        })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Fraction of the bf16 peak an 8192³ GEMM must reach on a model that was
/// not measured.
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
    measured: None,
};
/// A100 SXM4 80 GB.
pub const A100_SXM_80: GpuModel = GpuModel {
    name: "A100 SXM4 80GB",
    bf16_tflops: 312.0,
    tf32_tflops: 156.0,
    fp8_tflops: None,
    hbm_gbs: 2039.0,
    measured: None,
};
/// A100 PCIe 40 GB.
pub const A100_PCIE_40: GpuModel = GpuModel {
    name: "A100 PCIe 40GB",
    bf16_tflops: 312.0,
    tf32_tflops: 156.0,
    fp8_tflops: None,
    hbm_gbs: 1555.0,
    measured: None,
};
/// A100 PCIe 80 GB.
pub const A100_PCIE_80: GpuModel = GpuModel {
    name: "A100 PCIe 80GB",
    bf16_tflops: 312.0,
    tf32_tflops: 156.0,
    fp8_tflops: None,
    hbm_gbs: 1935.0,
    measured: None,
};
/// The verifier's own full level on healthy H100 SXM5 boards (700 W, driver
/// 580.159.04, cuBLAS 13.1): medians of the nine full-level runs on three
/// machines of the device kind nvidia-h100-x1, 2026-12-06 (docs/verifier.md,
/// "Measured"). The GEMMs are power-limited there: healthy runs spread over
/// 721-837 TFLOP/s for bf16 with the card's temperature, 352-381 for TF32,
/// 1354-1504 for FP8 (PyTorch's own FP8 best on the same cards: 1284-1433).
pub const H100_SXM_MEASURED: Measured = Measured {
    bf16_tflops: 729.8,
    tf32_tflops: 370.8,
    fp8_tflops: 1473.8,
    hbm_tbs: 3.04,
};

/// The same on two healthy H200 boards (run 3 in docs/verifier.md, the
/// previous binary: the heuristic's first cuBLASLt algorithm, which on the
/// H100 was within 3% of the fastest).
pub const H200_MEASURED: Measured = Measured {
    bf16_tflops: 814.0,
    tf32_tflops: 365.0,
    fp8_tflops: 1465.0,
    hbm_tbs: 4.24,
};

/// H100 SXM5 80 GB.
pub const H100_SXM: GpuModel = GpuModel {
    name: "H100 SXM5 80GB",
    bf16_tflops: 989.4,
    tf32_tflops: 494.7,
    fp8_tflops: Some(1978.9),
    hbm_gbs: 3350.0,
    measured: Some(H100_SXM_MEASURED),
};
/// H100 PCIe 80 GB.
pub const H100_PCIE: GpuModel = GpuModel {
    name: "H100 PCIe 80GB",
    bf16_tflops: 756.0,
    tf32_tflops: 378.0,
    fp8_tflops: Some(1513.0),
    hbm_gbs: 2000.0,
    measured: None,
};
/// H200 SXM 141 GB.
pub const H200: GpuModel = GpuModel {
    name: "H200 SXM 141GB",
    bf16_tflops: 989.4,
    tf32_tflops: 494.7,
    fp8_tflops: Some(1978.9),
    hbm_gbs: 4800.0,
    measured: Some(H200_MEASURED),
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
    fn measured_models_are_judged_against_their_measurement() {
        let r = H100_SXM.threshold(Kind::Tf32).unwrap();
        assert_eq!(r.value, round1(H100_SXM_MEASURED.tf32_tflops * 0.9));
        assert!(r.basis.starts_with("90% of "), "{}", r.basis);
        assert!(r.basis.ends_with("measured on a healthy H100 SXM5 80GB"));
        assert_eq!(
            H200.threshold(Kind::Hbm).unwrap().value,
            round1(H200_MEASURED.hbm_tbs * 0.9)
        );
    }

    #[test]
    fn unmeasured_models_use_the_datasheet_fractions() {
        // docs/verifier.md quotes these numbers; keep them in step.
        let r = A100_SXM_80.threshold(Kind::Bf16).unwrap();
        assert_eq!(r.value, 218.4);
        assert!(r.basis.contains("not measured"), "{}", r.basis);
        assert_eq!(A100_SXM_80.threshold(Kind::Hbm).unwrap().value, 1.5);
        assert_eq!(A100_SXM_80.threshold(Kind::Fp8), None);
        assert_eq!(H100_PCIE.threshold(Kind::Fp8).unwrap().value, 832.2);
    }
}
