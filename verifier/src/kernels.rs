//! The embedded PTX (built from `verifier/kernels/*.cu` by
//! `verifier/kernels/build.sh`) and the host-side inputs and exact expected
//! results for each kernel.

use std::borrow::Cow;

/// PTX for compute capability 8.0+ (`.version 7.0`, `.target sm_80`):
/// memory pattern, copy and `mma.sync` bf16 kernels.
pub const PTX_SM80: &str = include_str!("../kernels/verify_sm80.ptx");
/// PTX for exactly 9.0 (`.version 8.0`, `.target sm_90a`): the `wgmma` kernel.
pub const PTX_SM90A: &str = include_str!("../kernels/verify_sm90a.ptx");

/// The PTX to load for `name` (`verify_sm80` or `verify_sm90a`). With the
/// `dev-kernels` feature, `STRATA_VERIFY_DEV_KERNELS=DIR` replaces it with
/// `DIR/name.ptx`, for bringing new kernels up on a GPU machine.
pub fn ptx(name: &str) -> Cow<'static, str> {
    #[cfg(feature = "dev-kernels")]
    if let Some(dir) = std::env::var_os("STRATA_VERIFY_DEV_KERNELS") {
        if let Ok(text) =
            std::fs::read_to_string(std::path::Path::new(&dir).join(format!("{name}.ptx")))
        {
            return Cow::Owned(text);
        }
    }
    Cow::Borrowed(if name == "verify_sm90a" {
        PTX_SM90A
    } else {
        PTX_SM80
    })
}

/// The `.version` line of a PTX text, for reports.
pub fn ptx_version(ptx: &str) -> Option<&str> {
    ptx.lines()
        .find_map(|l| l.trim().strip_prefix(".version "))
        .map(str::trim)
}

/// Same function as `mix` in verify_sm80.cu.
pub fn mix(i: u64, seed: u32) -> u32 {
    let mut x = (i as u32) ^ ((i >> 32) as u32).wrapping_mul(0x9E37_79B9) ^ seed;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// bf16 bits of a small integer (exact: the low 16 bits of its f32 are zero).
pub fn bf16(v: i32) -> u16 {
    ((v as f32).to_bits() >> 16) as u16
}

/// Inputs and expected output of `mma_bf16_m16n8k16`: A 16×16 row-major,
/// B as 8 rows of 16 k-values, D 16×8 row-major.
pub fn mma_case() -> (Vec<u16>, Vec<u16>, Vec<f32>) {
    let a_val = |m: i32, k: i32| (m * 7 + k * 3) % 9 - 4;
    let b_val = |n: i32, k: i32| (n * 3 + k * 5) % 7 - 3;
    let a = (0..16)
        .flat_map(|m| (0..16).map(move |k| bf16(a_val(m, k))))
        .collect();
    let b = (0..8)
        .flat_map(|n| (0..16).map(move |k| bf16(b_val(n, k))))
        .collect();
    let d = (0..16)
        .flat_map(|m| {
            (0..8).map(move |n| (0..16).map(|k| a_val(m, k) * b_val(n, k)).sum::<i32>() as f32)
        })
        .collect();
    (a, b, d)
}

/// Inputs and expected output of `wgmma_bf16_m64n8k32`: A 64×32 row-major,
/// B as 8 rows of 32 k-values, D 64×8 row-major.
pub fn wgmma_case() -> (Vec<u16>, Vec<u16>, Vec<f32>) {
    let a_val = |m: i32, k: i32| (m * 3 + k * 5) % 7 - 3;
    let b_val = |n: i32, k: i32| (n * 5 + k * 3) % 9 - 4;
    let a = (0..64)
        .flat_map(|m| (0..32).map(move |k| bf16(a_val(m, k))))
        .collect();
    let b = (0..8)
        .flat_map(|n| (0..32).map(move |k| bf16(b_val(n, k))))
        .collect();
    let d = (0..64)
        .flat_map(|m| {
            (0..8).map(move |n| (0..32).map(|k| a_val(m, k) * b_val(n, k)).sum::<i32>() as f32)
        })
        .collect();
    (a, b, d)
}

/// Byte offsets between core matrices that the wgmma kernel's shared-memory
/// layout uses: (along K, along M/N). See verify_sm90a.cu.
pub const WGMMA_LBO_SBO: (u32, u32) = (128, 512);

/// Small-integer GEMM inputs for the library checks, in the "TN" layout of
/// [`crate::ffi::cublas::LtSpec`]: `a` is k×m column-major (row i of Aᵀ is
/// contiguous), `b` is k×n column-major. Returns (a, b, d) with d m×n
/// column-major; every value is exact in bf16, TF32 and FP32.
pub fn small_gemm_case(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 + i / k) % 9) as f32 - 4.0)
        .collect();
    let b: Vec<f32> = (0..n * k)
        .map(|i| ((i * 5 + i / k * 3) % 7) as f32 - 3.0)
        .collect();
    let mut d = vec![0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            let s: f32 = (0..k).map(|l| a[i * k + l] * b[j * k + l]).sum();
            d[i + j * m] = s;
        }
    }
    (a, b, d)
}

/// Compares `got` with `want` exactly. Returns the number of mismatches and
/// the first one as (index, got, want).
pub fn compare_exact(got: &[f32], want: &[f32]) -> (usize, Option<(usize, f32, f32)>) {
    let mut bad = 0;
    let mut first = None;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.to_bits() != w.to_bits() {
            bad += 1;
            if first.is_none() {
                first = Some((i, *g, *w));
            }
        }
    }
    (bad, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_matches_reference_values() {
        // Golden values computed independently (Python, same arithmetic);
        // the CUDA mix() is checked against the host on the GPU.
        assert_eq!(mix(0, 0), 0);
        assert_eq!(mix(1, 0), 0x6889_90c0);
        assert_eq!(mix(12345, 0xdead_beef), 0xa000_a004);
        assert_eq!(mix((1 << 32) + 7, 3), 0x6afd_cf1d);
        assert_ne!(mix(1, 0), mix(2, 0));
        assert_ne!(mix(1, 1), mix(1, 0));
        assert_ne!(mix(1 << 32, 0), mix(0, 0));
    }

    #[test]
    fn bf16_of_small_integers() {
        assert_eq!(bf16(1), 0x3f80);
        assert_eq!(bf16(-2), 0xc000);
        assert_eq!(bf16(0), 0);
    }

    #[test]
    fn reference_cases_have_the_right_shapes_and_nonzero_results() {
        let (a, b, d) = mma_case();
        assert_eq!((a.len(), b.len(), d.len()), (256, 128, 128));
        assert!(d.iter().any(|x| *x != 0.0));
        let (a, b, d) = wgmma_case();
        assert_eq!((a.len(), b.len(), d.len()), (2048, 256, 512));
        assert!(d.iter().filter(|x| **x != 0.0).count() > 400);
        let (a, b, d) = small_gemm_case(64, 32, 16);
        assert_eq!((a.len(), b.len(), d.len()), (1024, 512, 2048));
        // Largest |sum| stays far below 2^8 · k, so every partial sum is exact.
        assert!(d.iter().all(|x| x.abs() <= 16.0 * 16.0));
    }

    #[test]
    fn exact_comparison_reports_the_first_mismatch() {
        let (bad, first) = compare_exact(&[1.0, 2.0, 3.0], &[1.0, 2.5, 3.5]);
        assert_eq!(bad, 2);
        assert_eq!(first, Some((1, 2.0, 2.5)));
        assert_eq!(compare_exact(&[0.0], &[0.0]), (0, None));
    }

    #[test]
    fn ptx_version_line() {
        assert_eq!(
            ptx_version("//x\n.version 7.0\n.target sm_80\n"),
            Some("7.0")
        );
        assert_eq!(ptx_version("nothing"), None);
    }
}
