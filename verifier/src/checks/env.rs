//! Checks that need no GPU: the container environment and the words to use
//! when the driver is missing.

use crate::discover::{stub_dirs_in, DeviceNodes, LibcudaError};
use crate::report::Check;
use std::collections::BTreeMap;

/// Variables DCGM's deployment check warns about: they attach debuggers,
/// profilers or injection libraries to every CUDA process.
const INTRUSIVE_VARS: &[&str] = &[
    "NSIGHT_CUDA_DEBUGGER",
    "CUDA_INJECTION32_PATH",
    "CUDA_INJECTION64_PATH",
    "CUDA_AUTO_BOOST",
    "CUDA_ENABLE_COREDUMP_ON_EXCEPTION",
    "CUDA_COREDUMP_FILE",
    "CUDA_DEVICE_WAITS_ON_EXCEPTION",
    "CUDA_PROFILE",
    "COMPUTE_PROFILE",
    "OPENCL_PROFILE",
];

/// The `environment` check: device nodes, GPU-selection variables and
/// settings that silently change what CUDA does.
pub fn preflight(env: &BTreeMap<String, String>, nodes: &DeviceNodes) -> Check {
    let mut parts = Vec::new();
    let mut node_names: Vec<&str> = Vec::new();
    if nodes.ctl {
        node_names.push("/dev/nvidiactl");
    }
    if nodes.uvm {
        node_names.push("/dev/nvidia-uvm");
    }
    node_names.extend(nodes.gpus.iter().map(String::as_str));
    parts.push(if node_names.is_empty() {
        "no /dev/nvidia* device nodes".to_string()
    } else {
        format!("device nodes {}", node_names.join(" "))
    });
    for var in [
        "NVIDIA_VISIBLE_DEVICES",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "CUDA_MODULE_LOADING",
    ] {
        if let Some(v) = env.get(var) {
            parts.push(format!("{var}={v}"));
        }
    }
    let mut warnings = Vec::new();
    let mut fixes = Vec::new();
    let stubs = stub_dirs_in(env.get("LD_LIBRARY_PATH").map(String::as_str).unwrap_or(""));
    if !stubs.is_empty() {
        warnings.push(format!(
            "LD_LIBRARY_PATH contains the CUDA stub directory {}",
            stubs.join(", ")
        ));
        fixes.push("remove the stubs directory from LD_LIBRARY_PATH: it is for linking only and shadows the driver's libcuda".to_string());
    }
    let intrusive: Vec<&str> = INTRUSIVE_VARS
        .iter()
        .copied()
        .filter(|v| env.contains_key(*v))
        .collect();
    if !intrusive.is_empty() {
        warnings.push(format!(
            "debugging/profiling variables are set: {}",
            intrusive.join(", ")
        ));
        fixes.push(format!(
            "unset {} unless you mean to debug or profile",
            intrusive.join(" ")
        ));
    }
    if env
        .get("NVIDIA_TF32_OVERRIDE")
        .map(|v| v.trim() == "0")
        .unwrap_or(false)
    {
        warnings.push("NVIDIA_TF32_OVERRIDE=0 turns TF32 off in every NVIDIA library".to_string());
        fixes.push("unset NVIDIA_TF32_OVERRIDE to keep TF32 tensor-core math".to_string());
    }
    match env.get("CUDA_VISIBLE_DEVICES").map(|v| v.trim()) {
        Some("") | Some("-1") => {
            warnings.push("CUDA_VISIBLE_DEVICES hides every GPU".to_string());
            fixes.push("unset CUDA_VISIBLE_DEVICES or list the GPUs to use".to_string());
        }
        _ => {}
    }
    let detail = if warnings.is_empty() {
        parts.join("; ")
    } else {
        format!("{}; {}", warnings.join("; "), parts.join("; "))
    };
    if warnings.is_empty() {
        Check::pass("environment", detail)
    } else {
        Check::warn("environment", detail).fix(fixes.join("; "))
    }
}

/// The failing `libcuda` check, in words that depend on what is missing.
pub fn libcuda_failure(
    e: &LibcudaError,
    nodes: &DeviceNodes,
    env: &BTreeMap<String, String>,
) -> Check {
    const RUN_WITH_GPUS: &str = "start the container with GPU access: `docker run --gpus all ...`, `podman run --device nvidia.com/gpu=all ...` (CDI), or a Kubernetes pod requesting nvidia.com/gpu; the host needs the NVIDIA driver and the NVIDIA Container Toolkit";
    match e {
        LibcudaError::NotFound { .. } => {
            let hidden = env
                .get("NVIDIA_VISIBLE_DEVICES")
                .map(|v| matches!(v.trim(), "" | "void" | "none"))
                .unwrap_or(false);
            if nodes.gpus.is_empty() && !nodes.ctl {
                let why = if hidden { " (NVIDIA_VISIBLE_DEVICES asks for none)" } else { "" };
                Check::fail(
                    "libcuda",
                    format!("no GPU is visible in this container and the NVIDIA driver libraries were not injected{why}: {e}"),
                )
                .fix(RUN_WITH_GPUS)
            } else {
                Check::fail(
                    "libcuda",
                    format!("GPU device nodes are present but the driver's libraries were not injected: {e}"),
                )
                .fix("let the NVIDIA container runtime inject the driver libraries: set NVIDIA_DRIVER_CAPABILITIES=compute,utility (or all) and run with --gpus all / the CDI device nvidia.com/gpu=all")
            }
        }
        LibcudaError::Stub { path, driver, .. } => {
            let dir = path
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            let remove = format!("remove {} from the image, or {dir} from LD_LIBRARY_PATH and /etc/ld.so.conf.d (then run ldconfig): it is the CUDA toolkit's link-time stub, and CUDA programs, PyTorch included, load it instead of the driver's libcuda", path.display());
            let fix = match driver {
                Some(_) => remove,
                None => format!("{remove}; then {RUN_WITH_GPUS}"),
            };
            Check::fail("libcuda", e.to_string()).fix(fix)
        }
        LibcudaError::Incomplete { .. } => Check::fail("libcuda", e.to_string())
            .fix("the libcuda.so.1 the loader finds is not the driver's (a stub, or a damaged copy); remove it so that the one the NVIDIA container runtime injects is found"),
        LibcudaError::LoadFailed { .. } => Check::fail("libcuda", e.to_string())
            .fix("the injected driver library is damaged or for another architecture; check the host's driver installation (nvidia-smi on the host)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn clean_environment_passes_and_lists_nodes() {
        let nodes = DeviceNodes {
            ctl: true,
            uvm: true,
            gpus: vec!["/dev/nvidia0".into()],
        };
        let c = preflight(&env(&[("NVIDIA_VISIBLE_DEVICES", "all")]), &nodes);
        assert_eq!(c.status, Status::Pass);
        assert_eq!(
            c.detail,
            "device nodes /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia0; NVIDIA_VISIBLE_DEVICES=all"
        );
    }

    #[test]
    fn stubs_tf32_override_and_profilers_warn() {
        let e = env(&[
            ("LD_LIBRARY_PATH", "/usr/local/cuda/lib64/stubs:/usr/lib"),
            ("NVIDIA_TF32_OVERRIDE", "0"),
            ("CUDA_INJECTION64_PATH", "/x.so"),
        ]);
        let c = preflight(&e, &DeviceNodes::default());
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail
                .contains("stub directory /usr/local/cuda/lib64/stubs"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("NVIDIA_TF32_OVERRIDE=0"));
        assert!(c.detail.contains("CUDA_INJECTION64_PATH"));
        assert!(c.fix.unwrap().contains("unset NVIDIA_TF32_OVERRIDE"));
    }

    #[test]
    fn missing_driver_words_depend_on_device_nodes() {
        let e = LibcudaError::NotFound {
            loader_error: "libcuda.so.1: cannot open shared object file".into(),
            searched: "/usr/lib".into(),
        };
        let c = libcuda_failure(&e, &DeviceNodes::default(), &BTreeMap::new());
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.starts_with("no GPU is visible in this container and the NVIDIA driver libraries were not injected"), "{}", c.detail);
        assert!(c.fix.as_deref().unwrap().contains("--gpus all"));
        let nodes = DeviceNodes {
            ctl: true,
            uvm: false,
            gpus: vec!["/dev/nvidia0".into()],
        };
        let c = libcuda_failure(&e, &nodes, &BTreeMap::new());
        assert!(c.detail.starts_with(
            "GPU device nodes are present but the driver's libraries were not injected"
        ));
        assert!(c
            .fix
            .as_deref()
            .unwrap()
            .contains("NVIDIA_DRIVER_CAPABILITIES"));
        let stub = LibcudaError::Stub {
            path: "/opt/app/lib/libcuda.so.1".into(),
            target: None,
            evidence: "its cuDriverGetVersion returns CUDA_ERROR_STUB_LIBRARY (34): there is no driver behind it".into(),
            driver: Some("/usr/local/nvidia/lib64/libcuda.so.580.159.04".into()),
        };
        let c = libcuda_failure(&stub, &nodes, &BTreeMap::new());
        assert_eq!(c.detail, "/opt/app/lib/libcuda.so.1 is the CUDA toolkit's stub library, not the driver: its cuDriverGetVersion returns CUDA_ERROR_STUB_LIBRARY (34): there is no driver behind it; the loader finds it before the driver's own /usr/local/nvidia/lib64/libcuda.so.580.159.04");
        let fix = c.fix.unwrap();
        assert!(fix.starts_with("remove /opt/app/lib/libcuda.so.1 from the image, or /opt/app/lib from LD_LIBRARY_PATH"), "{fix}");
        assert!(
            !fix.contains("nvidia/lib64"),
            "the driver's own file must not be named for removal: {fix}"
        );
    }
}
