//! `specs/python-base.yaml` against the real Debian archive: build from the
//! committed lock, unpack with umoci, run Python under runc.
//!
//! Runs when every pinned .deb is already in the cache (`$STRATA_CACHE` or
//! the default cache), or when `STRATA_NET_TESTS=1` allows downloading them.
//! Otherwise it is skipped with a note: CI has no internet and never
//! downloads the real archive. Needs umoci and runc (and root for runc);
//! with `STRATA_REQUIRE_TOOLS=1` a missing tool is a failure.

use crate::common::{is_root as nix_root, require_or_skip, root as repo, tool};

use std::process::Command;

#[test]
fn python_base_runs_and_finds_libc() {
    let spec = repo().join("specs/python-base.yaml");
    let loaded = strata::spec::load_with(&spec, &strata::spec::LoadOptions { context: None }).unwrap();
    let lock = strata::lock::load_for(&loaded).unwrap().expect("specs/python-base.lock is committed");
    let cache = strata::store::Store::default_root();
    if crate::common::pinned_artifacts_unavailable(&loaded, &lock) {
        return;
    }
    let online = std::env::var("STRATA_NET_TESTS").as_deref() == Ok("1");
    let (Some(umoci), Some(runc)) = (tool("umoci"), tool("runc")) else {
        require_or_skip("umoci and runc");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("oci");
    let mut build = Command::new(env!("CARGO_BIN_EXE_strata"));
    build
        .arg("--cache")
        .arg(&cache)
        .arg("--quiet")
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}:t", oci.display()));
    if !online {
        build.arg("--offline");
    }
    let out = build.output().unwrap();
    if crate::common::pin_gone_from_archive(&out, "specs/python-base.lock") {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle = tmp.path().join("bundle");
    let out = Command::new(umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:t", oci.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs_err::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!([
        "/usr/bin/python3", "-c",
        "import ssl, sqlite3, json, ctypes, ctypes.util; print(ctypes.util.find_library('c')); print(ssl.create_default_context().cert_store_stats()['x509_ca'] > 100)"
    ]);
    fs_err::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = format!("strata-debs-{}", std::process::id());
    let out = Command::new(runc).arg("run").arg("--bundle").arg(&bundle).arg(&id).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !nix_root() {
        require_or_skip("runc needs root here");
        return;
    }
    assert!(out.status.success(), "runc: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "libc.so.6\nTrue", "{stdout}");
}
