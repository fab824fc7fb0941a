//! Loading the image's cuBLAS/cuBLASLt, cuDNN and NCCL by absolute path and
//! checking that their versions belong together and with the image's CUDA.
//! Runs on its own thread while the main thread waits in `cuInit`; each
//! library is handed over the moment it is loaded (cuBLAS first: the GPU
//! threads need it soonest), so the GPU threads never wait for cuDNN, the
//! slowest to load, before their cuBLAS checks.

use super::Latch;
use crate::compat::CudaVersion;
use crate::discover::{find_lib, image_lib_dirs};
use crate::ffi::cublas::Cublas;
use crate::ffi::cudnn::{self, Cudnn};
use crate::ffi::nccl::{self, Nccl};
use crate::report::Check;
use crate::trace;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One library, loaded or not, and the check that loading it produced.
pub struct Loaded<T> {
    /// The `cublas`, `cudnn` or `nccl` check.
    pub check: Check,
    /// The library, when found and loaded.
    pub lib: Option<T>,
}

/// The image's libraries, each published by the loader thread as soon as it
/// is loaded.
#[derive(Default)]
pub struct Libs {
    /// cuBLAS + cuBLASLt.
    pub cublas: Latch<Loaded<Cublas>>,
    /// cuDNN.
    pub cudnn: Latch<Loaded<Cudnn>>,
    /// NCCL.
    pub nccl: Latch<Loaded<Nccl>>,
}

impl Libs {
    /// The three checks in report order (waits for all of them).
    pub fn checks(&self) -> Vec<Check> {
        vec![
            self.cublas.wait().check.clone(),
            self.cudnn.wait().check.clone(),
            self.nccl.wait().check.clone(),
        ]
    }

    /// Publishes a failure for every library not yet published (the loader
    /// stopped early), so nobody waits forever.
    pub fn fail_unset(&self, why: &str) {
        let fail = |name: &str| {
            Check::fail(
                name,
                format!("loading the image's libraries crashed: {why}"),
            )
        };
        self.cublas.set_if_unset(|| Loaded {
            check: fail("cublas"),
            lib: None,
        });
        self.cudnn.set_if_unset(|| Loaded {
            check: fail("cudnn"),
            lib: None,
        });
        self.nccl.set_if_unset(|| Loaded {
            check: fail("nccl"),
            lib: None,
        });
    }
}

/// Majors to try, the image's first. With a declared CUDA version only the
/// file names of that major are preferred; without one, directory order
/// decides (the wheels' directories come first).
fn majors(image: Option<CudaVersion>) -> (Vec<u32>, bool) {
    let all = [13u32, 12, 11];
    match image {
        Some(v) => {
            let mut m = vec![v.major];
            m.extend(all.iter().copied().filter(|x| *x != v.major));
            (m, true)
        }
        None => (all.to_vec(), false),
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn dirs_text(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no candidate directory exists".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn cublas_check(dirs: &[PathBuf], image: Option<CudaVersion>) -> (Check, Option<Cublas>) {
    let t = Instant::now();
    let (majors, names_first) = majors(image);
    let lt_names: Vec<String> = majors
        .iter()
        .map(|m| format!("libcublasLt.so.{m}"))
        .collect();
    let Some(lt_path) = find_lib(dirs, &lt_names, names_first) else {
        return (
            Check::fail("cublas", format!("no libcublasLt.so.{{13,12,11}} in the image (searched {})", dirs_text(dirs)))
                .fix("install the CUDA math libraries in the image (the nvidia-cublas-cu12 wheel, or /usr/local/cuda), or name their directory in STRATA_VERIFY_LIB_PATH")
                .ms(ms_since(t)),
            None,
        );
    };
    // cuBLAS of the same major, preferably next to cuBLASLt.
    let suffix = lt_path
        .file_name()
        .map(|n| n.to_string_lossy().replace("libcublasLt", "libcublas"))
        .unwrap_or_default();
    let sibling = lt_path.with_file_name(&suffix);
    let blas_path = if sibling.is_file() {
        Some(sibling)
    } else {
        find_lib(dirs, std::slice::from_ref(&suffix), true)
    };
    let Some(blas_path) = blas_path else {
        return (
            Check::fail(
                "cublas",
                format!(
                    "{} found but no {suffix} beside it or elsewhere",
                    lt_path.display()
                ),
            )
            .ms(ms_since(t)),
            None,
        );
    };
    let blas = match Cublas::load(&lt_path, &blas_path) {
        Ok(b) => b,
        Err(e) => return (Check::fail("cublas", e.to_string()).ms(ms_since(t)), None),
    };
    let (ma, mi, pa) = match blas.version() {
        Ok(v) => v,
        Err(e) => return (Check::fail("cublas", e).ms(ms_since(t)), None),
    };
    let lt = blas.lt_version();
    let lt_text = format!("{}.{}.{}", lt / 10000, (lt % 10000) / 100, lt % 100);
    let blas_text = format!("{ma}.{mi}.{pa}");
    let dir = blas_path
        .parent()
        .map(Path::display)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let mut check = Check::pass(
        "cublas",
        format!("cuBLAS {blas_text} and cuBLASLt {lt_text} from {dir}"),
    );
    if lt_text != blas_text {
        check = Check::fail("cublas", format!("cuBLAS {blas_text} ({}) and cuBLASLt {lt_text} ({}) are from different releases", blas_path.display(), lt_path.display()))
            .fix("install cuBLAS and cuBLASLt from the same package (they ship together in nvidia-cublas-cuXX)");
    } else if let Some(img) = image {
        if ma as u32 != img.major {
            check = Check::fail("cublas", format!("the image declares CUDA {img} but its cuBLAS is {blas_text} (CUDA {ma}.x) at {}", blas_path.display()))
                .fix(format!("install the CUDA {} build of cuBLAS, or correct STRATA_CUDA_VERSION", img.major));
        }
    }
    (check.ms(ms_since(t)), Some(blas))
}

fn cudnn_check(dirs: &[PathBuf], image: Option<CudaVersion>) -> (Check, Option<Cudnn>) {
    let t = Instant::now();
    let names = vec!["libcudnn.so.9".to_string(), "libcudnn.so.8".to_string()];
    let Some(path) = find_lib(dirs, &names, true) else {
        return (
            Check::warn(
                "cudnn",
                format!(
                    "no libcudnn.so.9 or .8 in the image (searched {})",
                    dirs_text(dirs)
                ),
            )
            .fix("install cuDNN (the nvidia-cudnn-cu12 wheel) if the workload needs it")
            .ms(ms_since(t)),
            None,
        );
    };
    let lib = match Cudnn::load(&path) {
        Ok(l) => l,
        Err(e) => return (Check::fail("cudnn", e.to_string()).ms(ms_since(t)), None),
    };
    trace::mark("loader", || "cuDNN: libraries open; version checks".into());
    let (ma, mi, pa) = cudnn::decode_version(lib.version());
    let cudart = lib.cudart_version();
    let cudart_v = CudaVersion::from_driver_api(cudart as i32);
    let checks = match lib.version_checks() {
        Ok(names) => names,
        Err(e) => {
            return (Check::fail("cudnn", format!("cuDNN {ma}.{mi}.{pa} at {}: {e}", path.display()))
                .fix("the cuDNN sub-libraries (libcudnn_ops, libcudnn_cnn, ...) are missing or from another release; reinstall cuDNN as one package")
                .ms(ms_since(t)), Some(lib));
        }
    };
    let short: Vec<&str> = checks
        .iter()
        .map(|n| {
            n.trim_start_matches("cudnn")
                .trim_end_matches("VersionCheck")
        })
        .collect();
    let mut check = Check::pass(
        "cudnn",
        format!(
            "cuDNN {ma}.{mi}.{pa} for CUDA {cudart_v} from {}; version checks {} passed",
            path.parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            short.join("/")
        ),
    );
    if let Some(img) = image {
        if cudart_v.major != img.major {
            check = Check::fail("cudnn", format!("the image declares CUDA {img} but cuDNN {ma}.{mi}.{pa} was built for CUDA {cudart_v} ({})", path.display()))
                .fix(format!("install the CUDA {} build of cuDNN (nvidia-cudnn-cu{})", img.major, img.major));
        }
    }
    (check.ms(ms_since(t)), Some(lib))
}

fn nccl_check(dirs: &[PathBuf]) -> (Check, Option<Nccl>) {
    let t = Instant::now();
    // pip's nvidia-nccl wheels ship only libnccl.so.2.
    let names = vec!["libnccl.so.2".to_string(), "libnccl.so".to_string()];
    let Some(path) = find_lib(dirs, &names, true) else {
        return (
            Check::warn(
                "nccl",
                format!(
                    "no libnccl.so.2 in the image (searched {})",
                    dirs_text(dirs)
                ),
            )
            .fix("install NCCL (the nvidia-nccl-cu12 wheel) for multi-GPU training")
            .ms(ms_since(t)),
            None,
        );
    };
    let lib = match Nccl::load(&path) {
        Ok(l) => l,
        Err(e) => return (Check::fail("nccl", e.to_string()).ms(ms_since(t)), None),
    };
    match lib.version() {
        Ok(v) => (
            Check::pass(
                "nccl",
                format!("NCCL {} from {}", nccl::decode_version(v), path.display()),
            )
            .ms(ms_since(t)),
            Some(lib),
        ),
        Err(e) => (Check::fail("nccl", e).ms(ms_since(t)), None),
    }
}

/// Finds and loads the image's libraries, publishing each in `libs` as soon
/// as it is ready: cuBLAS, then NCCL (small), then cuDNN (the slowest).
pub fn load(
    libs: &Libs,
    extra_dirs: &[PathBuf],
    env: &BTreeMap<String, String>,
    image: Option<CudaVersion>,
) {
    let dirs = image_lib_dirs(extra_dirs, env);
    trace::mark("loader", || "cuBLAS: loading".into());
    let (check, lib) = cublas_check(&dirs, image);
    libs.cublas.set(Loaded { check, lib });
    trace::mark("loader", || "cuBLAS: done; NCCL: loading".into());
    let (check, lib) = nccl_check(&dirs);
    libs.nccl.set(Loaded { check, lib });
    trace::mark("loader", || "NCCL: done; cuDNN: loading".into());
    let (check, lib) = cudnn_check(&dirs, image);
    libs.cudnn.set(Loaded { check, lib });
    trace::mark("loader", || "cuDNN: done".into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_major_goes_first() {
        let (m, first) = majors(Some(CudaVersion {
            major: 12,
            minor: 8,
        }));
        assert_eq!(m, vec![12, 13, 11]);
        assert!(first);
        let (m, first) = majors(None);
        assert_eq!(m, vec![13, 12, 11]);
        assert!(!first);
    }

    #[test]
    fn missing_libraries_are_reported_not_panicked() {
        let empty =
            std::env::temp_dir().join(format!("strata-verify-nolibs-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let (c, lib) = cublas_check(std::slice::from_ref(&empty), None);
        assert!(lib.is_none());
        assert_eq!(c.status, crate::report::Status::Fail);
        assert!(c.detail.contains("no libcublasLt.so"), "{}", c.detail);
        let (c, lib) = nccl_check(std::slice::from_ref(&empty));
        assert!(lib.is_none());
        assert_eq!(c.status, crate::report::Status::Warn);
        // A file that is not a library is an error in words.
        std::fs::write(empty.join("libcudnn.so.9"), b"not an ELF file").unwrap();
        let (c, lib) = cudnn_check(std::slice::from_ref(&empty), None);
        assert!(lib.is_none());
        assert_eq!(c.status, crate::report::Status::Fail);
        assert!(c.detail.contains("cannot load"), "{}", c.detail);
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
