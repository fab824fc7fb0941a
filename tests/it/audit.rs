//! `strata audit`: an identical rebuild says identical; an image built from a
//! spec edited by one line is named with that difference and its cause.

use crate::common;

use std::path::Path;

use common::*;

const SPEC: &str = "version: 1\nname: audited\nepoch: 1700000000\nlayers:\n  - name: app\n    files:\n      - {path: /etc/app.conf, content: \"level=1\\n\"}\n      - {path: /etc/other, content: \"o\"}\nconfig:\n  env: {MODE: prod}\n";

fn publish(dir: &Path, name: &str, text: &str, env: &[(&str, &str)]) -> String {
    let spec = dir.join(format!("{name}.yaml"));
    fs_err::write(&spec, text).unwrap();
    let out = dir.join(format!("{name}.tar"));
    let mut c = strata();
    c.args(["build", "-q"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci-archive:{}", out.display()))
        .arg("--cache")
        .arg(dir.join("publisher-cache"));
    for (k, v) in env {
        c.env(k, v);
    }
    let o = run(&mut c);
    assert!(o.status.success(), "{}", stderr(&o));
    format!("oci-archive:{}", out.display())
}

fn audit(dir: &Path, published: &str) -> (i32, String) {
    let spec = dir.join("auditor.yaml");
    fs_err::write(&spec, SPEC).unwrap();
    let o = run(strata().args(["audit", "-q"]).arg(&spec).arg(published).arg("--cache").arg(dir.join("auditor-cache")));
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn identical_rebuild_says_identical() {
    let t = tempfile::tempdir().unwrap();
    let published = publish(t.path(), "p", SPEC, &[]);
    let (code, out) = audit(t.path(), &published);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("identical:"), "{out}");
}

#[test]
fn one_edited_line_is_named_with_its_cause() {
    let t = tempfile::tempdir().unwrap();
    let published = publish(t.path(), "p", &SPEC.replace("level=1", "level=2"), &[]);
    let (code, out) = audit(t.path(), &published);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first difference: layer 1 (app): /etc/app.conf content"), "{out}");
    assert!(out.contains("likely cause: an input changed"), "{out}");
    assert!(out.contains("(1 path(s) differ"), "only the edited file differs: {out}");
}

#[test]
fn a_different_epoch_is_named_as_epoch_handling() {
    let t = tempfile::tempdir().unwrap();
    let published = publish(t.path(), "p", SPEC, &[("SOURCE_DATE_EPOCH", "1800000000")]);
    let (code, out) = audit(t.path(), &published);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("likely cause: epoch handling"), "{out}");
}

#[test]
fn a_different_compressor_setting_is_named() {
    let t = tempfile::tempdir().unwrap();
    let published = publish(
        t.path(),
        "p",
        &SPEC.replace("epoch: 1700000000\n", "epoch: 1700000000\ncompression: {algorithm: gzip, level: 1}\n"),
        &[],
    );
    let (code, out) = audit(t.path(), &published);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("same uncompressed content") && out.contains("level=1"), "{out}");
    assert!(out.contains("likely cause: a different compressor or compression settings"), "{out}");
}
