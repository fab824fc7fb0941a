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
//! torchvision and torchaudio ship compiled extensions linked against one
//! torch release and one CUDA release, and are checked against both
//! ([`check_companion`]). Their metadata is not enough: torchvision pins
//! `torch==2.9.0`, but torchaudio 2.10 and later declare no torch
//! requirement at all, so a resolver pairs `torch==2.9.0` with torchaudio
//! 2.11.0, whose extension needs torch 2.11 and CUDA 13. What every wheel
//! of both projects does record is the build itself: `<pkg>/version.py`
//! holds `__version__ = '2.9.0+cu128'` (the CUDA build in the local label,
//! `+cpu` for CPU builds), the release follows torch's (torchaudio 2.N with
//! torch 2.N, torchvision 0.(N+15) with torch 2.N), and the extension's
//! `DT_NEEDED` names the CUDA runtime's major (`libcudart.so.12`).
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
    for w in wheels.iter().filter(|w| COMPANIONS.contains(&w.package.as_str())) {
        check_companion_version(
            gpu,
            &w.package,
            &w.version,
            "its version in the lock",
            torch.map(|t| t.version.as_str()),
        )?;
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

/// The packages built against one torch release.
pub const COMPANIONS: [&str; 2] = ["torchvision", "torchaudio"];

/// What a fetched torchvision or torchaudio wheel says about its build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanionBuild {
    /// The package (`torchaudio`).
    pub package: String,
    /// Its version (METADATA's `Version:`).
    pub version: String,
    /// METADATA's `Requires-Dist:` lines.
    pub requires: Vec<String>,
    /// `__version__` from `<package>/version.py` (`2.11.0+cu130`), when the wheel has one.
    pub build_version: Option<String>,
    /// The CUDA runtimes its extensions link against: (member, `libcudart.so.13`).
    pub cudart: Vec<(String, String)>,
}

/// The torch release (major, minor) a torchvision/torchaudio release is
/// built against: torchaudio 2.N ↔ torch 2.N, torchvision 0.(N+15) ↔ torch 2.N.
pub fn torch_release_of(package: &str, version: &Version) -> Option<(u64, u64)> {
    let (a, b) = version.major_minor();
    match package {
        "torchaudio" if a >= 2 => Some((a, b)),
        "torchvision" if a == 0 && b >= 15 => Some((2, b - 15)),
        _ => None,
    }
}

/// The companion release that goes with a torch release (for hints).
fn companion_for(package: &str, torch: (u64, u64)) -> Option<String> {
    match package {
        "torchaudio" => Some(format!("{}.{}", torch.0, torch.1)),
        "torchvision" if torch.0 == 2 => Some(format!("0.{}", torch.1 + 15)),
        _ => None,
    }
}

fn companion_hint(package: &str, torch: &str) -> String {
    let tv = Version::parse(torch).map(|v| v.major_minor()).ok();
    let pin = tv.and_then(|t| companion_for(package, t)).map(|r| format!("{package}=={r}.*")).unwrap_or_default();
    format!(
        "pin the {package} release built for torch {torch} next to torch in `requirements:` ({pin}) and re-run `strata lock`; torchaudio 2.10 and later declare no torch requirement, so a resolver does not keep them in step"
    )
}

/// Checks one companion's version (from the lock, or its `version.py`)
/// against torch and `gpu.cuda`. `evidence` says where the version came from.
fn check_companion_version(
    gpu: &GpuSpec,
    package: &str,
    version: &str,
    evidence: &str,
    torch: Option<&str>,
) -> Result<(), CudaError> {
    let Ok(v) = Version::parse(version) else { return Ok(()) };
    if let (Some(t), Some(built_for)) = (torch, torch_release_of(package, &v)) {
        let tv = Version::parse(t).map(|t| t.major_minor()).ok();
        if tv.is_some_and(|tv| tv != built_for) {
            return Err(CudaError {
                message: format!(
                    "{package} {} is built against torch {}.{} ({evidence}; {}), but the lock has torch {t}; its compiled extension would fail to load",
                    v.public(),
                    built_for.0,
                    built_for.1,
                    if package == "torchvision" { "torchvision 0.N+15 goes with torch 2.N" } else { "torchaudio 2.N goes with torch 2.N" }
                ),
                hint: companion_hint(package, t),
            });
        }
    }
    if let Some(local) = v.local.first() {
        if local == "cpu" {
            return Err(CudaError {
                message: format!(
                    "gpu.cuda is \"{}\", but {package} {version} is the CPU-only build ({evidence})",
                    gpu.cuda
                ),
                hint: format!(
                    "lock the CUDA {} build of {package} (PyPI's, or a `+cu{}` build) and re-run `strata lock`",
                    gpu.cuda,
                    gpu.cuda.replace('.', "")
                ),
            });
        }
        if let Some(c) = cuda_of_local(local) {
            if c != parse_cuda(&gpu.cuda).unwrap_or_default() {
                return Err(CudaError {
                    message: format!(
                        "gpu.cuda is \"{}\", but {package} {version} is built for CUDA {}.{} ({evidence})",
                        gpu.cuda, c.0, c.1
                    ),
                    hint: format!(
                        "lock the {package} built for CUDA {} and torch {} and re-run `strata lock`",
                        gpu.cuda,
                        torch.unwrap_or("(the locked torch)")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The CUDA major of a CUDA runtime soname (`libcudart.so.12`, or a
/// vendored `libcudart.e8e8b82a.so.12`); `None` for other libraries.
pub fn cudart_major(lib: &str) -> Option<u64> {
    if !lib.starts_with("libcudart.") {
        return None;
    }
    lib.rsplit_once(".so.")?.1.split('.').next()?.parse().ok()
}

/// Checks what a fetched torchvision/torchaudio wheel records about its
/// build (its torch requirement, `version.py`, the CUDA runtime its
/// extensions link) against the locked torch and `gpu.cuda`.
pub fn check_companion(gpu: &GpuSpec, torch: Option<&str>, c: &CompanionBuild) -> Result<(), CudaError> {
    let pkg = c.package.as_str();
    if let Some(t) = torch {
        for r in &c.requires {
            let spec = r.split(';').next().unwrap_or("").trim();
            let n = spec.bytes().take_while(|b| b.is_ascii_alphanumeric() || b"._-".contains(b)).count();
            if normalize_name(&spec[..n]) != "torch" {
                continue;
            }
            let rest = spec[n..].trim().trim_start_matches('(').trim_end_matches(')').trim();
            let Some(pinned) = rest.strip_prefix("==").map(str::trim) else { continue };
            let (Ok(p), Ok(l)) = (Version::parse(pinned), Version::parse(t)) else { continue };
            if p.public() != l.public() {
                return Err(CudaError {
                    message: format!("{pkg} {} requires torch=={pinned}, but the lock has torch {t}", c.version),
                    hint: companion_hint(pkg, t),
                });
            }
        }
    }
    if let Some(b) = &c.build_version {
        check_companion_version(gpu, pkg, b, &format!("{pkg}/version.py: __version__ = '{b}'"), torch)?;
    }
    let declared = parse_cuda(&gpu.cuda).unwrap_or_default();
    for (member, lib) in &c.cudart {
        let major = cudart_major(lib);
        if let Some(m) = major {
            if m != declared.0 {
                return Err(CudaError {
                    message: format!(
                        "gpu.cuda is \"{}\", but {pkg} {} is built for CUDA {m} ({member} links {lib})",
                        gpu.cuda, c.version
                    ),
                    hint: format!(
                        "lock the {pkg} built for CUDA {} and torch {} and re-run `strata lock`",
                        gpu.cuda,
                        torch.unwrap_or("(the locked torch)")
                    ),
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

    fn torch_audio_vision(audio: &str, vision: &str) -> Vec<SelectedWheel> {
        let mut l = torch_lock();
        l.push(wheel("torchaudio", audio, &format!("torchaudio-{audio}-cp311-cp311-manylinux_2_28_x86_64.whl")));
        l.push(wheel("torchvision", vision, &format!("torchvision-{vision}-cp311-cp311-manylinux_2_28_x86_64.whl")));
        l
    }

    #[test]
    fn torchvision_and_torchaudio_must_be_the_releases_of_the_locked_torch() {
        assert!(check_lock(&gpu("12.8"), &torch_audio_vision("2.9.0", "0.24.0")).is_ok());
        // An unpinned torchaudio next to torch==2.9.0 resolves to 2.11.0.
        let e = check_lock(&gpu("12.8"), &torch_audio_vision("2.11.0", "0.24.0")).unwrap_err();
        insta::assert_snapshot!("torchaudio_2_11_in_the_lock", e.to_string());
        let e = check_lock(&gpu("12.8"), &torch_audio_vision("2.9.0", "0.26.0")).unwrap_err();
        assert!(e.message.contains("torchvision 0.26.0 is built against torch 2.11"), "{e}");
        assert!(e.hint.contains("torchvision==0.24.*"), "{e}");
        let e = check_lock(&gpu("12.8"), &torch_audio_vision("2.9.0+cu126", "0.24.0")).unwrap_err();
        assert!(e.message.contains("torchaudio 2.9.0+cu126 is built for CUDA 12.6"), "{e}");
        let e = check_lock(&gpu("12.8"), &torch_audio_vision("2.9.0", "0.24.0+cpu")).unwrap_err();
        assert!(e.message.contains("CPU-only"), "{e}");
        assert_eq!(torch_release_of("torchvision", &Version::parse("0.15.2").unwrap()), Some((2, 0)));
        assert_eq!(torch_release_of("torchvision", &Version::parse("0.14.0").unwrap()), None);
    }

    #[test]
    fn a_fetched_companion_is_checked_by_what_its_wheel_records() {
        // What the real wheels hold (METADATA, version.py, DT_NEEDED of the extension).
        let audio_2_9 = CompanionBuild {
            package: "torchaudio".into(),
            version: "2.9.0".into(),
            requires: vec!["torch==2.9.0".into()],
            build_version: Some("2.9.0+cu128".into()),
            cudart: vec![("torchaudio/lib/libtorchaudio.so".into(), "libcudart.so.12".into())],
        };
        assert!(check_companion(&gpu("12.8"), Some("2.9.0"), &audio_2_9).is_ok());
        let vision = CompanionBuild {
            package: "torchvision".into(),
            version: "0.24.0".into(),
            requires: vec!["numpy".into(), "torch (==2.9.0)".into()],
            build_version: Some("0.24.0+cu128".into()),
            cudart: vec![("torchvision/_C.so".into(), "libcudart.so.12".into())],
        };
        assert!(check_companion(&gpu("12.8"), Some("2.9.0"), &vision).is_ok());
        let e = check_companion(&gpu("12.8"), Some("2.8.0"), &vision).unwrap_err();
        assert!(e.message.contains("torchvision 0.24.0 requires torch==2.9.0, but the lock has torch 2.8.0"), "{e}");
        // torchaudio 2.11.0: no torch requirement at all; version.py and the
        // extension's CUDA runtime tell.
        let audio_2_11 = CompanionBuild {
            package: "torchaudio".into(),
            version: "2.11.0".into(),
            requires: vec![],
            build_version: Some("2.11.0+cu130".into()),
            cudart: vec![("torchaudio/lib/libtorchaudio.abi3.so".into(), "libcudart.so.13".into())],
        };
        let e = check_companion(&gpu("12.8"), Some("2.9.0"), &audio_2_11).unwrap_err();
        insta::assert_snapshot!("torchaudio_2_11_fetched", e.to_string());
        // Relabelled as 2.9.0 in the lock, it is still caught by what it links.
        let relabelled = CompanionBuild { build_version: None, version: "2.9.0".into(), ..audio_2_11 };
        let e = check_companion(&gpu("12.8"), Some("2.9.0"), &relabelled).unwrap_err();
        assert!(
            e.message.contains("built for CUDA 13 (torchaudio/lib/libtorchaudio.abi3.so links libcudart.so.13)"),
            "{e}"
        );
        assert_eq!(cudart_major("libcudart.e8e8b82a.so.12"), Some(12));
        assert_eq!(cudart_major("libc10_cuda.so"), None);
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
