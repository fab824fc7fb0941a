//! `strata diff`: pairs of builds that differ in exactly one thing; the report
//! names exactly that thing and nothing else.

use crate::common;

use std::path::Path;

use common::*;
use serde_json::Value;

const BASE: &str = r##"version: 1
name: d
epoch: 1700000000
compression: {algorithm: gzip, level: 6}
layers:
  - name: only
    files:
      - {path: /etc/a.conf, content: "a=1\n"}
      - {path: /usr/bin/tool, content: "#!/bin/sh\n", mode: "0755"}
    symlinks:
      - {path: /usr/bin/t, target: tool}
"##;

fn build(dir: &Path, name: &str, text: &str) -> String {
    let spec = dir.join(format!("{name}.yaml"));
    fs_err::write(&spec, text).unwrap();
    let out = dir.join(format!("{name}.tar"));
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci-archive:{}", out.display()))
        .arg("--cache")
        .arg(dir.join("cache")));
    assert!(o.status.success(), "{}", stderr(&o));
    format!("oci-archive:{}", out.display())
}

fn diff_json(a: &str, b: &str) -> (i32, Value, String) {
    let o = run(strata().args(["diff", "--json", a, b]));
    let text = run(strata().args(["diff", a, b]));
    (o.status.code().unwrap(), serde_json::from_str(&stdout(&o)).unwrap(), stdout(&text))
}

/// The only file change in the only layer.
fn only_file_change(v: &Value) -> &Value {
    assert_eq!(v["config"].as_array().unwrap().len(), 0, "config must not differ: {v}");
    assert_eq!(v["manifest_annotations"].as_array().unwrap().len(), 0, "{v}");
    // The specs differ by one line, so their checksums differ: reported as provenance.
    assert!(v["spec_checksums"].is_array(), "{v}");
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["status"], "different");
    let files = layers[0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "exactly one path must differ: {files:?}");
    &files[0]
}

#[test]
fn identical_builds_exit_0_and_say_so() {
    let t = tempfile::tempdir().unwrap();
    let a = build(t.path(), "a", BASE);
    let b = build(t.path(), "b", BASE);
    let o = run(strata().args(["diff", &a, &b]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("identical"), "{}", stdout(&o));
}

#[test]
fn one_mtime() {
    let t = tempfile::tempdir().unwrap();
    let a = build(t.path(), "a", BASE);
    let b = build(t.path(), "b", &BASE.replace(r#"content: "a=1\n"}"#, r#"content: "a=1\n", mtime: 1700000001}"#));
    let (code, v, text) = diff_json(&a, &b);
    assert_eq!(code, 1);
    let f = only_file_change(&v);
    assert_eq!(f["change"], "modified");
    assert_eq!(f["path"], "etc/a.conf");
    assert_eq!(f["fields"], serde_json::json!([{"field": "mtime", "a": "1700000000", "b": "1700000001"}]));
    assert!(text.contains("~ /etc/a.conf  mtime 1700000000 → 1700000001"), "{text}");
}

#[test]
fn one_mode_bit() {
    let t = tempfile::tempdir().unwrap();
    let a = build(t.path(), "a", BASE);
    let b = build(t.path(), "b", &BASE.replace(r#"mode: "0755""#, r#"mode: "0775""#));
    let (code, v, _) = diff_json(&a, &b);
    assert_eq!(code, 1);
    let f = only_file_change(&v);
    assert_eq!(f["path"], "usr/bin/tool");
    assert_eq!(f["fields"], serde_json::json!([{"field": "mode", "a": "0755", "b": "0775"}]));
}

#[test]
fn one_extra_file() {
    let t = tempfile::tempdir().unwrap();
    let a = build(t.path(), "a", BASE);
    let b = build(
        t.path(),
        "b",
        &BASE.replace("    symlinks:", "      - {path: /etc/b.conf, content: \"b\"}\n    symlinks:"),
    );
    let (code, v, text) = diff_json(&a, &b);
    assert_eq!(code, 1);
    let f = only_file_change(&v);
    assert_eq!(f["change"], "added");
    assert_eq!(f["path"], "etc/b.conf");
    assert!(text.contains("+ /etc/b.conf"), "{text}");
}

#[test]
fn one_symlink_target() {
    let t = tempfile::tempdir().unwrap();
    let a = build(t.path(), "a", BASE);
    let b = build(t.path(), "b", &BASE.replace("target: tool", "target: ./tool"));
    let (code, v, _) = diff_json(&a, &b);
    assert_eq!(code, 1);
    let f = only_file_change(&v);
    assert_eq!(f["path"], "usr/bin/t");
    assert_eq!(f["fields"], serde_json::json!([{"field": "link", "a": "tool", "b": "./tool"}]));
}

#[test]
fn compressor_level() {
    let t = tempfile::tempdir().unwrap();
    let a = build(t.path(), "a", BASE);
    let b = build(t.path(), "b", &BASE.replace("level: 6", "level: 9"));
    let (code, v, text) = diff_json(&a, &b);
    assert_eq!(code, 1);
    assert_eq!(v["config"].as_array().unwrap().len(), 0, "{v}");
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["status"], "same_content_different_compression", "{v}");
    assert!(layers[0]["a_compression"].as_str().unwrap().contains("level=6"));
    assert!(layers[0]["b_compression"].as_str().unwrap().contains("level=9"));
    assert!(text.contains("different compressor or settings"), "{text}");
}

#[test]
fn unreadable_input_exits_2() {
    let o = run(strata().args(["diff", "oci:/nonexistent/a", "oci:/nonexistent/b"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
