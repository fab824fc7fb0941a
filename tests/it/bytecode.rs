//! `bytecode:` on the real Debian/Python base (`specs/python-base.yaml`
//! with a `bytecode:` entry added, in a copy with its layer file and lock):
//! the layer is the same whatever the thread count and the build's paths,
//! its `.pyc` files are hash-based, and Python in the image loads them
//! (under runc, with a read-only root: it could not write new ones).
//!
//! Like tests/debs_real.rs, it runs when every pinned .deb is already in the
//! cache (`$STRATA_CACHE` or the default cache), or when
//! `STRATA_NET_TESTS=1` allows downloading them; otherwise it is skipped
//! with a note. The sandbox needs unprivileged user namespaces; runc needs
//! root. With `STRATA_REQUIRE_TOOLS=1` a missing tool is a failure.

use crate::common::{is_root, require_or_skip, root as repo, tool};
use std::path::Path;
use std::process::{Command, Output};

fn userns_available() -> bool {
    Command::new("unshare").args(["-Urmn", "true"]).output().map(|o| o.status.success()).unwrap_or(false)
}

fn build(cache: &Path, spec: &Path, out: &Path, threads: &str, online: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.arg("--cache").arg(cache).arg("--quiet").arg("build").arg(spec).arg("--threads").arg(threads);
    c.arg("--no-layer-cache").arg("-o").arg(format!("oci:{}:t", out.display()));
    if !online {
        c.arg("--offline");
    }
    c.output().unwrap()
}

fn index_digest(oci: &Path) -> String {
    let index: serde_json::Value = serde_json::from_slice(&fs_err::read(oci.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn bytecode_is_deterministic_hash_based_and_used() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = tmp.path().join("specs");
    fs_err::create_dir_all(specs.join("layers")).unwrap();
    let base = fs_err::read_to_string(repo().join("specs/python-base.yaml")).unwrap();
    let with = base.replacen(
        "  - include: layers/debian-bookworm-python311.yaml\n",
        "  - include: layers/debian-bookworm-python311.yaml\n  - name: bytecode\n    bytecode: {invalidation: checked-hash}\n",
        1,
    );
    assert_ne!(base, with);
    let spec = specs.join("python-base.yaml");
    fs_err::write(&spec, with).unwrap();
    for f in ["layers/debian-bookworm-python311.yaml", "python-base.lock"] {
        fs_err::copy(repo().join("specs").join(f), specs.join(f)).unwrap();
    }
    let loaded = strata::spec::load_with(&spec, &strata::spec::LoadOptions { context: None }).unwrap();
    assert!(loaded.layers.iter().any(|l| l.entry.bytecode.is_some()));
    let lock = strata::lock::load_for(&loaded).unwrap().expect("the lock is copied");
    let cache = strata::store::Store::default_root();
    if crate::common::pinned_artifacts_unavailable(&loaded, &lock) {
        return;
    }
    let online = std::env::var("STRATA_NET_TESTS").as_deref() == Ok("1");
    if !userns_available() {
        require_or_skip("unprivileged user namespaces (for the bytecode sandbox)");
        return;
    }
    // Two builds: one thread and four, different output paths, no layer
    // cache (each build's scratch root has its own random path).
    let a = tmp.path().join("a/oci");
    let b = tmp.path().join("elsewhere/b/oci");
    let o = build(&cache, &spec, &a, "1", online);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = build(&cache, &spec, &b, "4", online);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(index_digest(&a), index_digest(&b), "the same image whatever the threads and paths");

    let Some(umoci) = tool("umoci") else {
        require_or_skip("umoci");
        return;
    };
    let bundle = tmp.path().join("bundle");
    let out = Command::new(umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:t", a.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));
    let rootfs = bundle.join("rootfs");
    // PEP 552 header: magic, flags (0b11 = hash-based, checked), source hash.
    for pyc in [
        "usr/lib/python3.11/__pycache__/os.cpython-311.pyc",
        "usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc",
    ] {
        let b = fs_err::read(rootfs.join(pyc)).unwrap();
        assert_eq!(&b[2..4], b"\r\n", "{pyc}: a .pyc magic number");
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 0b11, "{pyc}: checked hash-based");
    }
    let Some(runc) = tool("runc") else {
        require_or_skip("runc");
        return;
    };
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs_err::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["root"]["readonly"] = true.into();
    // -v: the import system says where each module's code object comes from.
    cfg["process"]["args"] = serde_json::json!(["/usr/bin/python3", "-v", "-c", "import json, email.parser, decimal"]);
    fs_err::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = format!("strata-bytecode-{}", std::process::id());
    let out = Command::new(runc).arg("run").arg("--bundle").arg(&bundle).arg(&id).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !is_root() {
        require_or_skip("runc needs root here");
        return;
    }
    assert!(out.status.success(), "runc: {stderr}");
    for m in [
        "json/__pycache__/__init__.cpython-311.pyc",
        "email/__pycache__/parser.cpython-311.pyc",
        "__pycache__/decimal.cpython-311.pyc",
    ] {
        let line = format!("# code object from '/usr/lib/python3.11/{m}'");
        assert!(stderr.contains(&line), "{line} missing:\n{stderr}");
    }
    assert!(!stderr.contains("could not"), "{stderr}");
    assert!(!stderr.contains("stale"), "{stderr}");
}
