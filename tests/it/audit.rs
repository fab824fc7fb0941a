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

/// A source tree with a spec that copies a local directory, built into a
/// layout with signed provenance; returns (layout, public key).
fn build_with_provenance(dir: &Path) -> (String, std::path::PathBuf) {
    let src = dir.join("src");
    fs_err::create_dir_all(src.join("app")).unwrap();
    fs_err::write(src.join("app/main.py"), "print('hello')\n").unwrap();
    fs_err::write(src.join("app/data.txt"), "data\n").unwrap();
    fs_err::write(
        src.join("app.yaml"),
        "version: 1\nname: prov\nepoch: 1700000000\nlayers:\n  - name: app\n    copy:\n      - {from: app, to: /srv/app}\n",
    )
    .unwrap();
    let o = run(strata().args(["key", "generate"]).arg(dir.join("k")).env("STRATA_KEY_PASSWORD", "audit-pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    let layout = format!("oci:{}", dir.join("layout").display());
    let o = run(strata()
        .args(["build", "-q"])
        .arg(src.join("app.yaml"))
        .args(["-o", &layout, "--sign-key"])
        .arg(dir.join("k.key"))
        .arg("--cache")
        .arg(dir.join("publisher-cache"))
        .env("STRATA_KEY_PASSWORD", "audit-pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    (layout, dir.join("k.pub"))
}

fn audit_from_provenance(dir: &Path, layout: &str, key: &Path) -> (i32, String) {
    let o = run(strata()
        .args(["audit", "-q", layout, "--source"])
        .arg(dir.join("src"))
        .arg("--provenance-key")
        .arg(key)
        .arg("--cache")
        .arg(dir.join("auditor-cache")));
    (o.status.code().unwrap_or(-1), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn audit_from_signed_provenance_is_identical_then_names_a_one_byte_edit() {
    let t = tempfile::tempdir().unwrap();
    let (layout, key) = build_with_provenance(t.path());
    let (code, out) = audit_from_provenance(t.path(), &layout, &key);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("identical:"), "{out}");

    // One byte of a copied source file changes.
    fs_err::write(t.path().join("src/app/data.txt"), "dato\n").unwrap();
    let (code, out) = audit_from_provenance(t.path(), &layout, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/srv/app/data.txt"), "the changed file is named: {out}");

    // The spec itself changes: named as a changed input.
    fs_err::write(t.path().join("src/app/data.txt"), "data\n").unwrap();
    let spec = t.path().join("src/app.yaml");
    let text = fs_err::read_to_string(&spec).unwrap();
    fs_err::write(&spec, text.replace("/srv/app", "/srv/apq")).unwrap();
    let (code, out) = audit_from_provenance(t.path(), &layout, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("changed input: app.yaml (changed since the build)"), "{out}");
}

#[test]
fn provenance_signed_by_another_key_or_unsigned_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (layout, _) = build_with_provenance(t.path());
    let o = run(strata().args(["key", "generate"]).arg(t.path().join("other")).env("STRATA_KEY_PASSWORD", "x"));
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, out) = audit_from_provenance(t.path(), &layout, &t.path().join("other.pub"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not signed by this key"), "{out}");

    // Built without a key: the provenance is there but unsigned.
    let plain = format!("oci:{}", t.path().join("plain").display());
    let o = run(strata()
        .args(["build", "-q"])
        .arg(t.path().join("src/app.yaml"))
        .args(["-o", &plain])
        .arg("--cache")
        .arg(t.path().join("publisher-cache")));
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, out) = audit_from_provenance(t.path(), &plain, &t.path().join("k.pub"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("the provenance is not signed"), "{out}");
    // Without --provenance-key, the unsigned statement is used as it is.
    let o = run(strata()
        .args(["audit", "-q", &plain, "--source"])
        .arg(t.path().join("src"))
        .arg("--cache")
        .arg(t.path().join("auditor-cache")));
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn hello_audits_identical_from_its_provenance_which_names_its_inputs() {
    let t = tempfile::tempdir().unwrap();
    let specs = t.path().join("specs");
    fs_err::create_dir_all(&specs).unwrap();
    fs_err::copy(root().join("specs/hello.yaml"), specs.join("hello.yaml")).unwrap();
    let layout = format!("oci:{}", t.path().join("hello").display());
    let o = run(strata()
        .args(["build", "-q"])
        .arg(specs.join("hello.yaml"))
        .args(["-o", &layout, "--cache"])
        .arg(t.path().join("c1")));
    assert!(o.status.success(), "{}", stderr(&o));
    let digest = stdout(&o).trim().to_string();

    // The statement, read from the layout: an in-toto v1 statement with a
    // SLSA v1 predicate about this manifest.
    let (env, stmt) = provenance_in_layout(&t.path().join("hello"));
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    assert_eq!(env["signatures"].as_array().unwrap().len(), 0, "no key: unsigned");
    assert_eq!(stmt["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(stmt["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(stmt["subject"][0]["name"], "hello:1.0");
    assert_eq!(stmt["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"));
    let bd = &stmt["predicate"]["buildDefinition"];
    assert_eq!(bd["externalParameters"]["spec"]["path"], "hello.yaml");
    let spec_sha = sha256_hex(&fs_err::read(specs.join("hello.yaml")).unwrap());
    assert_eq!(bd["externalParameters"]["spec"]["digest"]["sha256"], spec_sha.as_str());
    assert_eq!(bd["externalParameters"]["epoch"], 1700000000);
    assert!(bd["resolvedDependencies"].as_array().unwrap().iter().any(|d| d["uri"] == "context:hello.yaml"));
    let builder = &stmt["predicate"]["runDetails"]["builder"];
    assert!(builder["id"].as_str().unwrap().starts_with("urn:strata:builder:"));
    assert!(builder["version"]["strata-verify"].as_str().unwrap().starts_with("sha256:"));

    // Audit from it, in another cache.
    let o =
        run(strata().args(["audit", "-q", &layout, "--source"]).arg(&specs).arg("--cache").arg(t.path().join("c2")));
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).starts_with("identical:"), "{}", stdout(&o));
}
