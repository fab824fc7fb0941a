//! The `gpu:` section: strata-verify goes into its own layer and wraps the
//! entrypoint. Without a GPU (CI), the strict policy refuses to start the
//! command with words about the driver, and `warn` runs it.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;

/// strata-verify built by `cargo test --workspace` next to strata.
fn verifier_bin() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_strata")).with_file_name("strata-verify");
    if p.is_file() {
        Some(p)
    } else if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{} is missing: run the tests with `cargo test --workspace`", p.display());
    } else {
        eprintln!("note: strata-verify not built; skipping");
        None
    }
}

/// A spec with glibc copied from the host (strata-verify is dynamically
/// linked), the hello program as the command, and a gpu: section.
fn gpu_spec(dir: &Path, verify: &str) -> PathBuf {
    let libs = dir.join("libs");
    fs_err::create_dir_all(&libs).unwrap();
    let mut files = String::new();
    for (src, dest) in [
        ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
        ("/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libgcc_s.so.1"),
        ("/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6"),
        ("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
    ] {
        let name = Path::new(dest).file_name().unwrap().to_string_lossy().into_owned();
        fs_err::copy(src, libs.join(&name)).unwrap();
        files.push_str(&format!("      - {{path: {dest}, source: libs/{name}, mode: \"0755\"}}\n"));
    }
    let hello =
        std::process::Command::new("python3").arg(root().join("specs/hello/make-hello-elf.py")).output().unwrap();
    let b64 = String::from_utf8(hello.stdout).unwrap();
    let spec = dir.join("gpu.yaml");
    fs_err::write(
        &spec,
        format!(
            "version: 1\nname: gpu-hello\nlayers:\n  - name: libc\n    files:\n{files}  - name: app\n    files:\n      - {{path: /hello, mode: \"0755\", content_base64: {}}}\ngpu:\n  cuda: \"12.8\"\n  arch: [sm_80, sm_90]\n  verify: {verify}\nconfig:\n  entrypoint: [/hello]\n",
            b64.trim()
        ),
    )
    .unwrap();
    spec
}

fn config_of(layout: &Path) -> serde_json::Value {
    let o = run(strata().args(["inspect", "--json"]).arg(format!("oci:{}", layout.display())));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["config"].clone()
}

#[test]
fn gpu_section_adds_the_verifier_layer_and_wraps_the_entrypoint() {
    let Some(verifier) = verifier_bin() else { return };
    let t = tempfile::tempdir().unwrap();
    let spec = gpu_spec(t.path(), "quick");
    let out = t.path().join("img");
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", out.display()))
        .arg("--cache")
        .arg(t.path().join("c"))
        .arg("--verifier")
        .arg(&verifier));
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = config_of(&out);
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/strata-verify", "--", "/hello"]));
    let env: Vec<String> =
        cfg["config"]["Env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    for want in ["STRATA_CUDA_VERSION=12.8", "STRATA_ALLOWED_SM=sm_80,sm_90", "STRATA_VERIFY=quick"] {
        assert!(env.iter().any(|e| e == want), "{want} missing from {env:?}");
    }
    assert_eq!(
        cfg["config"]["Labels"]["dev.strata.verifier.sha256"],
        format!("sha256:{}", sha256_hex(&fs_err::read(&verifier).unwrap()))
    );
    assert_eq!(cfg["history"].as_array().unwrap().last().unwrap()["created_by"], "strata: strata-verify");

    // verify: off → no verifier at all.
    let spec_off = gpu_spec(&t.path().join("off"), "off");
    let out_off = t.path().join("img-off");
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&spec_off)
        .arg("-o")
        .arg(format!("oci:{}", out_off.display()))
        .arg("--cache")
        .arg(t.path().join("c"))
        .arg("--verifier")
        .arg(&verifier));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(config_of(&out_off)["config"]["Entrypoint"], serde_json::json!(["/hello"]));
}

#[test]
fn missing_verifier_binary_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let spec = gpu_spec(t.path(), "quick");
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", t.path().join("o").display()))
        .arg("--cache")
        .arg(t.path().join("c"))
        .arg("--verifier")
        .arg(t.path().join("nope")));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("strata-verify") && stderr(&o).contains("hint:"), "{}", stderr(&o));
}

#[test]
fn without_a_gpu_strict_refuses_to_start_and_warn_runs_the_command() {
    let Some(verifier) = verifier_bin() else { return };
    if !(have("umoci") && have("runc")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let spec = gpu_spec(t.path(), "quick");
    let out = t.path().join("img");
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}:t", out.display()))
        .arg("--cache")
        .arg(t.path().join("c"))
        .arg("--verifier")
        .arg(&verifier));
    assert!(o.status.success(), "{}", stderr(&o));

    let (code, stdout_s, stderr_s) = umoci_runc(&out, "t", &t.path().join("strict"));
    assert_ne!(code, 0, "strict mode must fail without a GPU");
    assert!(!stdout_s.contains("Hello from a Strata image!"), "the command must not run: {stdout_s}");
    let all = format!("{stdout_s}{stderr_s}").to_lowercase();
    assert!(all.contains("driver"), "no words about the driver: {all}");

    // warn: same image, policy from the environment.
    let bundle = t.path().join("warn");
    let o = run(std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", out.display()))
        .arg(&bundle));
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs_err::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = serde_json::Value::Bool(false);
    let env = cfg["process"]["env"].as_array_mut().unwrap();
    env.retain(|e| !e.as_str().unwrap().starts_with("STRATA_VERIFY="));
    env.push(serde_json::Value::String("STRATA_VERIFY=warn".into()));
    fs_err::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = format!("strata-gpu-warn-{}", std::process::id());
    let o = run(std::process::Command::new("runc").arg("run").arg(&id).current_dir(&bundle));
    let _ = std::process::Command::new("runc").args(["delete", "-f", &id]).output();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Hello from a Strata image!"),
        "warn mode must run the command: {} / {}",
        stdout(&o),
        stderr(&o)
    );
}
