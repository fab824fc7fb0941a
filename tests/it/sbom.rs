//! The SBOM: SPDX 2.3 JSON that validates against the vendored SPDX schema and
//! lists the sha256 of every artifact, with the layer it went into.

use crate::common;

use std::collections::HashMap;

use common::*;
use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(&fs_err::read_to_string(root().join("tests/fixtures/spdx-2.3-schema.json")).unwrap()).unwrap()
}

#[test]
fn sbom_validates_and_lists_every_artifact_with_its_layer() {
    let a = gzip(&raw_tar(&[TarItem::File("opt/a", b"a", 0o644)]));
    let b = gzip(&raw_tar(&[TarItem::File("opt/b", b"b", 0o644)]));
    let mut routes = HashMap::new();
    routes.insert("/dl/a-1.0.tar.gz".to_string(), Reply::Body(a.clone()));
    routes.insert("/dl/b-2.0.tar.gz".to_string(), Reply::Body(b.clone()));
    let srv = Server::start(routes);
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("s.yaml");
    fs_err::write(
        &spec,
        format!(
            "version: 1\nname: sbomtest\ntag: \"7\"\nlayers:\n  - name: first\n    tarball: {{url: {u}/dl/a-1.0.tar.gz, sha256: {}}}\n  - name: second\n    tarball: {{url: {u}/dl/b-2.0.tar.gz, sha256: {}}}\n",
            sha256_hex(&a),
            sha256_hex(&b),
            u = srv.addr
        ),
    )
    .unwrap();
    for out in [
        format!("oci:{}", t.path().join("layout").display()),
        format!("oci-archive:{}", t.path().join("img.tar").display()),
    ] {
        let o = run(strata().args(["build", "-q"]).arg(&spec).args(["-o", &out, "--cache"]).arg(t.path().join("c")));
        assert!(o.status.success(), "{}", stderr(&o));
        let digest = stdout(&o).trim().to_string();
        let o = run(strata().args(["inspect", "--sbom", &out]));
        assert!(o.status.success(), "{}", stderr(&o));
        let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();

        let validator = jsonschema::validator_for(&schema()).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "SPDX schema violations: {errors:#?}");
        // The validator does reject a malformed document (the check can fail).
        let mut broken = doc.clone();
        broken["packages"][1]["SPDXID"] = Value::String("not a valid id".into());
        broken["creationInfo"]["created"] = Value::String("yesterday".into());
        assert!(validator.iter_errors(&broken).count() >= 2);

        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let pkgs = doc["packages"].as_array().unwrap();
        let image = &pkgs[0];
        assert_eq!(image["checksums"][0]["checksumValue"], digest.trim_start_matches("sha256:"));
        for (body, layer_name, idx) in [(&a, "first", 1), (&b, "second", 2)] {
            let p = pkgs
                .iter()
                .find(|p| p["checksums"][0]["checksumValue"] == sha256_hex(body))
                .unwrap_or_else(|| panic!("no package with the sha256 of {layer_name}'s tarball"));
            assert!(p["comment"].as_str().unwrap().starts_with(&format!("layer {idx} ({layer_name}) sha256:")), "{p}");
            assert!(p["externalRefs"][0]["referenceLocator"].as_str().unwrap().starts_with("pkg:generic/"), "{p}");
        }
        // Every package is contained in the image.
        let rels = doc["relationships"].as_array().unwrap();
        assert_eq!(rels.iter().filter(|r| r["relationshipType"] == "CONTAINS").count(), pkgs.len() - 1);
    }
}

#[test]
fn sbom_is_deterministic_and_does_not_change_the_image_digest() {
    let t = tempfile::tempdir().unwrap();
    let spec = root().join("specs/hello.yaml");
    let mut docs = Vec::new();
    for i in 0..2 {
        let out = format!("oci:{}", t.path().join(format!("o{i}")).display());
        let o = run(strata()
            .args(["build", "-q"])
            .arg(&spec)
            .args(["-o", &out, "--cache"])
            .arg(t.path().join(format!("c{i}"))));
        assert!(o.status.success());
        assert_eq!(stdout(&o).trim(), "sha256:1cd902a021c6a674dfeef3550eea95bc461538e62e6ed43e9d7992db16bd4dc4");
        docs.push(stdout(&run(strata().args(["inspect", "--sbom", &out]))));
    }
    assert_eq!(docs[0], docs[1]);
    // docker-archive: the SBOM is written beside the archive.
    let da = t.path().join("d.tar");
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("docker-archive:{}", da.display()))
        .arg("--cache")
        .arg(t.path().join("c0")));
    assert!(o.status.success());
    let side: Value = serde_json::from_slice(&fs_err::read(t.path().join("d.tar.spdx.json")).unwrap()).unwrap();
    assert_eq!(side["spdxVersion"], "SPDX-2.3");
}

/// A validator of the official CycloneDX 1.6 JSON schema (vendored with the
/// two schemas it references), offline.
fn cyclonedx_validator() -> jsonschema::Validator {
    let load = |f: &str| -> Value {
        serde_json::from_str(&fs_err::read_to_string(root().join("tests/fixtures").join(f)).unwrap()).unwrap()
    };
    let base = "http://cyclonedx.org/schema/";
    let registry = jsonschema::Registry::new()
        .add(format!("{base}spdx.SNAPSHOT.schema.json"), load("cyclonedx-spdx-schema.json"))
        .unwrap()
        .add(format!("{base}jsf-0.82.SNAPSHOT.schema.json"), load("cyclonedx-jsf-0.82-schema.json"))
        .unwrap()
        .prepare()
        .unwrap();
    jsonschema::options().with_registry(&registry).build(&load("cyclonedx-1.6-schema.json")).unwrap()
}

#[test]
fn cyclonedx_sbom_validates_against_the_official_schema() {
    let a = gzip(&raw_tar(&[TarItem::File("opt/a", b"a", 0o644)]));
    let mut routes = HashMap::new();
    routes.insert("/dl/a-1.0.tar.gz".to_string(), Reply::Body(a.clone()));
    let srv = Server::start(routes);
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("s.yaml");
    fs_err::write(
        &spec,
        format!(
            "version: 1\nname: cdxtest\ntag: \"3\"\nlayers:\n  - name: first\n    tarball: {{url: {u}/dl/a-1.0.tar.gz, sha256: {}}}\n",
            sha256_hex(&a),
            u = srv.addr
        ),
    )
    .unwrap();
    let out = format!("oci:{}", t.path().join("layout").display());
    let o = run(strata()
        .args(["build", "-q", "--sbom-format", "cyclonedx"])
        .arg(&spec)
        .args(["-o", &out, "--cache"])
        .arg(t.path().join("c")));
    assert!(o.status.success(), "{}", stderr(&o));
    let digest = stdout(&o).trim().to_string();
    let o = run(strata().args(["inspect", "--sbom", &out]));
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let validator = cyclonedx_validator();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "CycloneDX schema violations: {errors:#?}");
    // The validator does reject a malformed document (the check can fail).
    let mut broken = doc.clone();
    broken["serialNumber"] = Value::String("not-a-uuid".into());
    broken["components"][0]["type"] = Value::String("gadget".into());
    assert!(validator.iter_errors(&broken).count() >= 2);

    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.6");
    assert_eq!(doc["metadata"]["component"]["hashes"][0]["content"], digest.trim_start_matches("sha256:"));
    let c = &doc["components"][0];
    assert_eq!(c["hashes"][0]["content"], sha256_hex(&a));
    assert!(c["purl"].as_str().unwrap().starts_with("pkg:generic/"), "{c}");
    // The format does not change the image.
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&spec)
        .args(["-o", &format!("oci:{}", t.path().join("spdx").display()), "--cache"])
        .arg(t.path().join("c")));
    assert_eq!(stdout(&o).trim(), digest);
}
