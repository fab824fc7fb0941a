//! Locked builds: the lock carries a checksum of the normalised spec; a stale
//! lock is refused with the fix; `--unlocked` builds anyway and says so in the
//! image; the verifier binary is pinned.

mod common;

use std::path::Path;

use common::*;

const SPEC: &str = "version: 1\nname: locked\nlayers:\n  - name: app\n    files:\n      - {path: /etc/app.conf, content: \"a=1\\n\"}\nconfig:\n  env: {A: \"1\", B: \"2\"}\n";

fn lock(dir: &Path, spec: &Path, extra: &[&str]) -> std::process::Output {
    run(strata().args(["lock", "-q"]).arg(spec).arg("--cache").arg(dir.join("cache")).args(extra))
}

fn build(dir: &Path, spec: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    run(strata()
        .args(["build", "-q"])
        .arg(spec)
        .arg("-o")
        .arg(format!("oci:{}", dir.join(out).display()))
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(extra))
}

#[test]
fn a_stale_lock_is_refused_and_unlocked_builds_say_so() {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("s.yaml");
    fs_err::write(&spec, SPEC).unwrap();
    let o = lock(t.path(), &spec, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lock_text = fs_err::read_to_string(t.path().join("s.lock")).unwrap();
    assert!(lock_text.contains("[spec]\nchecksum = \"sha256:"), "{lock_text}");
    let o = build(t.path(), &spec, "a", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let locked_digest = stdout(&o).trim().to_string();

    // Comments, key order, quoting and CRLF line endings do not make the lock stale.
    let reformatted = "# a comment\r\nname: locked\r\nversion: 1\r\nconfig:\r\n  env: {B: '2', A: '1'}\r\nlayers:\r\n  - files:\r\n      - {content: \"a=1\\n\", path: /etc/app.conf}\r\n    name: app\r\n";
    fs_err::write(&spec, reformatted).unwrap();
    let o = build(t.path(), &spec, "b", &[]);
    assert!(o.status.success(), "a reformatted spec must still match its lock: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), locked_digest);

    // A real edit makes it stale.
    fs_err::write(&spec, SPEC.replace("a=1", "a=2")).unwrap();
    let o = build(t.path(), &spec, "c", &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("is stale") && err.contains("strata lock") && err.contains("--unlocked"), "{err}");
    assert!(!t.path().join("c").exists());

    // --unlocked builds and records it in the manifest annotations.
    let o = build(t.path(), &spec, "d", &["--unlocked"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("--unlocked"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&run(strata()
        .args(["inspect", "--json"])
        .arg(format!("oci:{}", t.path().join("d").display())))))
    .unwrap();
    assert!(v["manifest"]["annotations"]["dev.strata.unlocked"].as_str().unwrap().starts_with("true"), "{v}");
    assert!(v["manifest"]["annotations"]["dev.strata.spec.sha256"].as_str().unwrap().starts_with("sha256:"));

    // Re-locking makes it current again.
    assert!(lock(t.path(), &spec, &[]).status.success());
    assert!(build(t.path(), &spec, "e", &[]).status.success());
}

#[test]
fn the_verifier_binary_is_pinned_by_the_lock() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("verify-a");
    let b = t.path().join("verify-b");
    fs_err::write(&a, b"#!/bin/sh\nexec \"$@\"\n").unwrap();
    fs_err::write(&b, b"#!/bin/sh\necho other; exec \"$@\"\n").unwrap();
    let spec = t.path().join("g.yaml");
    fs_err::write(&spec, "version: 1\nname: g\nlayers:\n  - files: [{path: /x, content: x}]\ngpu: {cuda: \"12.8\"}\nconfig: {entrypoint: [/x]}\n").unwrap();
    let o = lock(t.path(), &spec, &["--verifier", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = fs_err::read_to_string(t.path().join("g.lock")).unwrap();
    assert!(text.contains(&format!("sha256 = \"sha256:{}\"", sha256_hex(&fs_err::read(&a).unwrap()))), "{text}");

    assert!(build(t.path(), &spec, "ok", &["--verifier", a.to_str().unwrap()]).status.success());
    let o = build(t.path(), &spec, "bad", &["--verifier", b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("does not match the lock") && err.contains("build-reproducible.sh"), "{err}");
    assert!(build(t.path(), &spec, "exp", &["--verifier", b.to_str().unwrap(), "--unlocked"]).status.success());
}

#[test]
fn committed_locks_are_current() {
    // The specs in the repository build locked: their locks match them.
    for spec in ["specs/python-base.yaml", "specs/pytorch-cuda.yaml"] {
        // They include ../layers/, so the repository is their build context.
        let opts = strata::spec::LoadOptions { context: Some(root()) };
        let loaded = strata::spec::load_with(&root().join(spec), &opts).unwrap();
        let lock = strata::lock::load_for(&loaded).unwrap().unwrap_or_else(|| panic!("{spec} has no lock"));
        strata::lock::check_current(&loaded, &lock).unwrap_or_else(|e| panic!("{spec}: {e}"));
        strata::lock::check_spec(&loaded, Some(&lock)).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
}
