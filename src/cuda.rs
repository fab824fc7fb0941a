//! CUDA stack consistency: the spec's `gpu.cuda` against what the locked
//! wheels are built for, and the driver the image needs.
//!
//! Evidence, in the order it becomes available:
//! 1. from the lock, before anything is downloaded: the version of
//!    `nvidia-cuda-runtime-cu12` (12.8.90 → CUDA 12.8) and a local version
//!    on torch (`2.9.0+cu128` → CUDA 12.8, `+cpu` → no CUDA);
//! 2. from torch's METADATA once fetched: its pinned
//!    `Requires-Dist: nvidia-cuda-runtime-cu12==12.8.90`.
//!
//! The minimum driver comes from NVIDIA's "CUDA Toolkit and Corresponding
//! Driver Versions" table (Linux x86-64, GA releases); minor-version
//! compatibility lets any CUDA 12.x run on 525.60.13 or newer with limits
//! (no JIT of newer PTX), which is recorded too.

use std::collections::BTreeMap;

use crate::sources::python::marker::normalize_name;
use crate::sources::python::version::Version;
use crate::sources::python::SelectedWheel;
use crate::spec::GpuSpec;

/// Minimum Linux x86-64 driver per CUDA release (GA).
pub const DRIVER_TABLE: [(&str, &str); 11] = [
    ("12.0", "525.60.13"),
    ("12.1", "530.30.02"),
    ("12.2", "535.54.03"),
    ("12.3", "545.23.06"),
    ("12.4", "550.54.14"),
    ("12.5", "555.42.02"),
    ("12.6", "560.28.03"),
    ("12.8", "570.26"),
    ("12.9", "575.51.03"),
    ("13.0", "580.65.06"),
    ("13.1", "590.44.01"),
];

/// Label: the CUDA version of the image's libraries.
pub const LABEL_CUDA: &str = "dev.strata.gpu.cuda";
/// Label: the minimum driver for that CUDA release.
pub const LABEL_DRIVER: &str = "dev.strata.gpu.driver-min";
/// Label: the oldest driver that runs it through minor-version compatibility.
pub const LABEL_DRIVER_COMPAT: &str = "dev.strata.gpu.driver-min-compat";
/// Label: the compute capabilities the image is meant for.
pub const LABEL_ARCH: &str = "dev.strata.gpu.arch";

/// A CUDA inconsistency or an unknown version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}\nhint: {hint}")]
pub struct CudaError {
    /// What is wrong (names both versions).
    pub message: String,
    /// The fix.
    pub hint: String,
}

/// The minimum driver for `cuda` (`"12.8"` → `"570.26"`).
pub fn min_driver(cuda: &str) -> Option<&'static str> {
    DRIVER_TABLE.iter().find(|(c, _)| *c == cuda).map(|(_, d)| *d)
}

/// The minor-version-compatibility floor of a CUDA major version.
pub fn compat_floor(major: u64) -> Option<&'static str> {
    match major {
        11 => Some("450.80.02"),
        12 => Some("525.60.13"),
        13 => Some("580.65.06"),
        _ => None,
    }
}

fn parse_cuda(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Checks the `gpu:` section on its own: a CUDA release the driver table knows.
pub fn check_gpu(gpu: &GpuSpec) -> Result<(), CudaError> {
    if parse_cuda(&gpu.cuda).is_none() || min_driver(&gpu.cuda).is_none() {
        return Err(CudaError {
            message: format!(
                "gpu.cuda is \"{}\", which is not a CUDA release strata knows the driver requirement of",
                gpu.cuda
            ),
            hint: format!(
                "use MAJOR.MINOR, one of {}",
                DRIVER_TABLE.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    for a in gpu.arch.iter().flatten() {
        let ok = a
            .strip_prefix("sm_")
            .is_some_and(|n| n.len() >= 2 && n.trim_end_matches('a').bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(CudaError {
                message: format!("gpu.arch `{a}` is not a compute capability like `sm_80`"),
                hint: "A100 is sm_80, H100/H200 sm_90".into(),
            });
        }
    }
    Ok(())
}

fn is_runtime(pkg: &str) -> bool {
    pkg == "nvidia-cuda-runtime"
        || pkg.strip_prefix("nvidia-cuda-runtime-cu").is_some_and(|m| m.bytes().all(|b| b.is_ascii_digit()))
}

/// CUDA from a torch local version: `cu128` → 12.8, `cu118` → 11.8.
fn cuda_of_local(local: &str) -> Option<(u64, u64)> {
    let d = local.strip_prefix("cu")?;
    if d.len() < 2 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (ma, mi) = d.split_at(d.len() - 1);
    Some((ma.parse().ok()?, mi.parse().ok()?))
}

fn mismatch(gpu: &GpuSpec, found: (u64, u64), evidence: &str, torch: Option<&str>) -> CudaError {
    let (ma, mi) = found;
    let declared = &gpu.cuda;
    let message = match torch {
        Some(t) => {
            format!("gpu.cuda is \"{declared}\", but torch {t} in the lock is built for CUDA {ma}.{mi} ({evidence})")
        }
        None => format!("gpu.cuda is \"{declared}\", but the lock's CUDA libraries are CUDA {ma}.{mi} ({evidence})"),
    };
    let alt = match torch {
        Some(_) => {
            // The newest PyTorch release with a build for these older CUDA versions.
            let newest = match declared.as_str() {
                "12.1" => "; the newest is torch 2.5.1",
                "12.4" => "; the newest is torch 2.6.0",
                _ => "",
            };
            format!(
                "or lock a PyTorch built for CUDA {declared} (a `+cu{}` build from https://download.pytorch.org/whl/cu{}{newest}) and re-run `strata lock`",
                declared.replace('.', ""),
                declared.replace('.', "")
            )
        }
        None => format!("or lock CUDA {declared} wheels and re-run `strata lock`"),
    };
    CudaError { message, hint: format!("set `gpu.cuda: \"{ma}.{mi}\"` to match the lock, {alt}") }
}

/// Checks `gpu.cuda` against the locked wheels (no downloads needed).
pub fn check_lock(gpu: &GpuSpec, wheels: &[SelectedWheel]) -> Result<(), CudaError> {
    check_gpu(gpu)?;
    let declared = parse_cuda(&gpu.cuda).unwrap_or_default();
    let torch = wheels.iter().find(|w| w.package == "torch");
    let torch_v = torch.and_then(|t| Version::parse(&t.version).ok());
    if let (Some(t), Some(v)) = (torch, &torch_v) {
        if let Some(local) = v.local.first() {
            if local == "cpu" {
                return Err(CudaError {
                    message: format!("gpu.cuda is \"{}\", but torch {} in the lock is the CPU-only build", gpu.cuda, t.version),
                    hint: format!("lock the CUDA build (PyPI's torch, or https://download.pytorch.org/whl/cu{}), or remove the `gpu:` section", gpu.cuda.replace('.', "")),
                });
            }
            if let Some(c) = cuda_of_local(local) {
                if c != declared {
                    return Err(mismatch(gpu, c, &format!("local version +{local}"), Some(&t.version)));
                }
            }
        }
    }
    for w in wheels.iter().filter(|w| is_runtime(&w.package)) {
        let v = Version::parse(&w.version)
            .map_err(|e| CudaError { message: e.to_string(), hint: "fix the lock".into() })?;
        let found = v.major_minor();
        if found != declared {
            return Err(mismatch(
                gpu,
                found,
                &format!("{} {}", w.package, w.version),
                torch.map(|t| t.version.as_str()),
            ));
        }
    }
    Ok(())
}

/// Checks torch's pinned `Requires-Dist` (from its METADATA) against
/// `gpu.cuda` and against the CUDA runtime the lock actually holds.
pub fn check_torch_requires(
    gpu: &GpuSpec,
    torch_version: &str,
    requires: &[String],
    wheels: &[SelectedWheel],
) -> Result<(), CudaError> {
    let declared = parse_cuda(&gpu.cuda).unwrap_or_default();
    for r in requires {
        let spec = r.split(';').next().unwrap_or("").trim();
        let n = spec.bytes().take_while(|b| b.is_ascii_alphanumeric() || b"._-".contains(b)).count();
        let name = normalize_name(&spec[..n]);
        if !is_runtime(&name) {
            continue;
        }
        let Some(pinned) = spec[n..].trim().strip_prefix("==").map(str::trim) else { continue };
        let Ok(v) = Version::parse(pinned) else { continue };
        let found = v.major_minor();
        if found != declared {
            return Err(mismatch(gpu, found, &format!("it requires {name}=={pinned}"), Some(torch_version)));
        }
        if let Some(locked) = wheels.iter().find(|w| w.package == name) {
            if Version::parse(&locked.version).map(|l| l != v).unwrap_or(true) {
                return Err(CudaError {
                    message: format!(
                        "torch {torch_version} requires {name}=={pinned}, but the lock has {name} {}",
                        locked.version
                    ),
                    hint: "the lock is inconsistent; re-create it (`strata lock SPEC`)".into(),
                });
            }
        }
    }
    Ok(())
}

/// The labels (and, when asked for, the environment) a `gpu:` section adds.
pub fn labels_and_env(gpu: &GpuSpec) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = BTreeMap::new();
    let mut env = BTreeMap::new();
    labels.insert(LABEL_CUDA.to_string(), gpu.cuda.clone());
    if let Some(d) = min_driver(&gpu.cuda) {
        labels.insert(LABEL_DRIVER.to_string(), d.to_string());
    }
    if let Some(f) = parse_cuda(&gpu.cuda).and_then(|(ma, _)| compat_floor(ma)) {
        labels.insert(LABEL_DRIVER_COMPAT.to_string(), f.to_string());
    }
    let arch = gpu.arch.clone().unwrap_or_else(|| vec!["sm_80".into(), "sm_90".into()]);
    labels.insert(LABEL_ARCH.to_string(), arch.join(","));
    if gpu.require_cuda_env {
        env.insert("NVIDIA_REQUIRE_CUDA".to_string(), format!("cuda>={}", gpu.cuda));
    }
    (labels, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::python::tags::WheelName;
    use crate::sources::python::WheelLocation;

    fn gpu(c: &str) -> GpuSpec {
        GpuSpec { cuda: c.into(), arch: None, verify: None, require_cuda_env: false }
    }

    fn wheel(pkg: &str, version: &str, file: &str) -> SelectedWheel {
        SelectedWheel {
            package: pkg.into(),
            version: version.into(),
            name: WheelName::parse(file).unwrap(),
            location: WheelLocation::Url(format!("https://example.org/{file}")),
            sha256: crate::digest::Digest::of(file.as_bytes()),
            size: None,
            line: 1,
        }
    }

    fn torch_lock() -> Vec<SelectedWheel> {
        vec![
            wheel(
                "nvidia-cuda-runtime-cu12",
                "12.8.90",
                "nvidia_cuda_runtime_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
            ),
            wheel("torch", "2.9.0", "torch-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
        ]
    }

    #[test]
    fn cuda_12_1_with_torch_2_9_is_refused_with_both_versions_and_the_fix() {
        let e = check_lock(&gpu("12.1"), &torch_lock()).unwrap_err();
        insta::assert_snapshot!(e.to_string());
        let reqs =
            vec!["nvidia-cuda-runtime-cu12==12.8.90; platform_system == \"Linux\" and platform_machine == \"x86_64\""
                .to_string()];
        let e = check_torch_requires(&gpu("12.1"), "2.9.0", &reqs, &torch_lock()).unwrap_err();
        insta::assert_snapshot!("torch_requires", e.to_string());
        assert!(check_lock(&gpu("12.8"), &torch_lock()).is_ok());
        assert!(check_torch_requires(&gpu("12.8"), "2.9.0", &reqs, &torch_lock()).is_ok());
    }

    #[test]
    fn local_versions_and_cpu_builds() {
        let l = vec![wheel("torch", "2.9.0+cu126", "torch-2.9.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl")];
        assert!(check_lock(&gpu("12.8"), &l).unwrap_err().message.contains("CUDA 12.6 (local version +cu126)"));
        let l = vec![wheel("torch", "2.9.0+cpu", "torch-2.9.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")];
        assert!(check_lock(&gpu("12.8"), &l).unwrap_err().message.contains("CPU-only"));
        assert_eq!(cuda_of_local("cu130"), Some((13, 0)));
        assert_eq!(cuda_of_local("cu118"), Some((11, 8)));
    }

    #[test]
    fn driver_table_and_labels() {
        assert_eq!(min_driver("12.8"), Some("570.26"));
        assert!(check_gpu(&gpu("12.7")).is_err());
        let mut g = gpu("12.8");
        g.require_cuda_env = true;
        let (labels, env) = labels_and_env(&g);
        assert_eq!(labels[LABEL_DRIVER], "570.26");
        assert_eq!(labels[LABEL_DRIVER_COMPAT], "525.60.13");
        assert_eq!(env["NVIDIA_REQUIRE_CUDA"], "cuda>=12.8");
    }
}
