//! `strata cache info` and `strata cache prune`: builds record what they use,
//! pruning by age removes only what no recent build used, and pruning waits
//! for builds that have the cache open.

use crate::common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;

fn cache_json(cache: &Path, args: &[&str]) -> serde_json::Value {
    let o = run(strata().arg("--cache").arg(cache).arg("cache").args(args).arg("--json"));
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Sets every blob's last use `days` back.
fn age_all(cache: &Path, days: u64) {
    let when = SystemTime::now() - Duration::from_secs(days * 86_400);
    for e in fs_err::read_dir(cache.join("cas/sha256")).unwrap() {
        let f = fs_err::File::open(e.unwrap().path()).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(when)).unwrap();
    }
}

fn all_cached(summary: &serde_json::Value) -> bool {
    summary["layers"].as_array().unwrap().iter().all(|l| l["cached"] == true)
}

#[test]
fn prune_removes_only_what_no_recent_build_used() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let hello = root().join("specs/hello.yaml");
    fs_err::write(t.path().join("tool.tar"), raw_tar(&[TarItem::File("opt/tool", b"tool v1\n", 0o755)])).unwrap();
    let other = t.path().join("other.yaml");
    fs_err::write(&other, "version: 1\nname: other\nlayers:\n  - tarball: {path: tool.tar}\n").unwrap();

    let first_hello = build_json(&hello, &format!("oci:{}", t.path().join("h1").display()), &cache).0;
    let first_other = build_json(&other, &format!("oci:{}", t.path().join("o1").display()), &cache).0;
    let before = cache_json(&cache, &["info"]);
    // The store keeps layers (and downloads); configs and manifests live in the layouts.
    assert_eq!(before["blobs"], 3, "{before}");
    assert_eq!(before["layer_entries"], 3, "{before}");
    assert_eq!(before["tmp_entries"], 0, "a finished build leaves no temporary files: {before}");

    // Two months pass; then only hello is built again, from the cache.
    age_all(&cache, 60);
    let again = build_json(&hello, &format!("oci:{}", t.path().join("h2").display()), &cache).0;
    assert!(all_cached(&again), "{again}");

    let dry = cache_json(&cache, &["prune", "--unused-for", "30d", "--dry-run"]);
    let r = cache_json(&cache, &["prune", "--unused-for", "30d"]);
    assert_eq!(dry["removed_blobs"], r["removed_blobs"], "dry run {dry}, real {r}");
    // other's one layer (its tarball is a local file, which the store does
    // not keep) and its layer cache entry; hello's two layers stay.
    assert_eq!(r["removed_layer_entries"], 1, "{r}");
    assert_eq!(r["removed_blobs"], 1, "{r}");
    assert_eq!(r["kept_blobs"], 2, "{r}");

    // Everything hello needs is still there; other is rebuilt to the same digest.
    let hello3 = build_json(&hello, &format!("oci:{}", t.path().join("h3").display()), &cache).0;
    assert!(all_cached(&hello3), "{hello3}");
    assert_eq!(hello3["manifest_digest"], first_hello["manifest_digest"]);
    let other2 = build_json(&other, &format!("oci:{}", t.path().join("o2").display()), &cache).0;
    assert_eq!(other2["layers"][0]["cached"], false, "{other2}");
    assert_eq!(other2["manifest_digest"], first_other["manifest_digest"]);

    // --all empties the store; the layouts built from it stay whole (hard links).
    let r = cache_json(&cache, &["prune", "--all"]);
    assert_eq!(r["kept_blobs"], 0, "{r}");
    let after = cache_json(&cache, &["info"]);
    assert_eq!((after["blobs"].as_u64(), after["layer_entries"].as_u64()), (Some(0), Some(0)), "{after}");
    let o = run(strata().arg("inspect").arg(format!("oci:{}", t.path().join("h3").display())));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(strata().args(["cache", "prune", "--unused-for", "3y"]).arg("--cache").arg(&cache));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown unit `y`"), "{}", stderr(&o));
}

#[test]
fn prune_waits_for_a_running_build() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let spec = slow_spec(t.path());
    let out = t.path().join("out");
    let build = strata()
        .args(["build", "-q"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", out.display()))
        .arg("--cache")
        .arg(&cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let the build open the cache, then prune everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cache.join("locks/store.lock").exists() {
        assert!(std::time::Instant::now() < deadline, "the build never opened the cache");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let prune = run(strata().args(["cache", "prune", "--all", "--json"]).arg("--cache").arg(&cache));
    let built = build.wait_with_output().unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    assert!(prune.status.success(), "{}", stderr(&prune));
    assert!(stderr(&prune).contains("waiting for the strata processes using"), "{}", stderr(&prune));
    // The prune ran after the build: it removed the build's blobs, and the
    // layout the build wrote is whole.
    let r: serde_json::Value = serde_json::from_str(&stdout(&prune)).unwrap();
    assert_eq!((r["removed_blobs"].as_u64(), r["removed_layer_entries"].as_u64()), (Some(1), Some(1)), "{r}");
    let o = run(strata().args(["inspect", "--json"]).arg(format!("oci:{}", out.display())));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let layer = v["manifest"]["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let bytes = fs_err::read(out.join("blobs/sha256").join(&layer)).unwrap();
    assert_eq!(sha256_hex(&bytes), layer);
}
