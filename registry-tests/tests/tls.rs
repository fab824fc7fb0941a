//! `--ca-file` for every download, and a TLS trust failure that fails at
//! once, naming the certificate problem and `--ca-file`. The HTTPS server is
//! Debian's docker-registry with a certificate from a private CA
//! (fixtures/tls-ca.pem): its blob URLs serve plain files.

use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;

fn ca() -> String {
    workspace().join("registry-tests/fixtures/tls-ca.pem").display().to_string()
}

#[test]
fn artifact_downloads_fail_at_once_on_an_untrusted_certificate_and_work_with_ca_file() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start_tls(Auth::Open);
    let (layout, _) = hello_image();
    let env = Env::new();
    let dest = format!("{}/tls/hello:1", reg.host());
    // Without the CA: refused at once, never retried over plain HTTP
    // (the message docs/registry.md shows).
    let o = env.run(&["push", &format!("oci:{}", layout.display()), &format!("{}/a/b:1", reg.host())]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    insta::assert_snapshot!("untrusted_certificate", env.scrub(&o));
    env.ok(&["push", &format!("oci:{}", layout.display()), &dest, "--ca-file", &ca()]);
    // A layer of the image is a gzip tarball: a download like any other.
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&m["sha256:".len()..])).unwrap())
            .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let spec = env.path("spec.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: t\nlayers:\n  - tarball:\n      url: https://{}/v2/tls/hello/blobs/{layer}\n      sha256: {}\n",
            reg.host(),
            &layer["sha256:".len()..]
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let o = env.run(&["build", spec.to_str().unwrap(), "-o", &format!("oci:{}", env.path("a").display())]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("TLS") && err.contains("certificate"), "names the certificate problem: {err}");
    assert!(err.contains("--ca-file"), "says what to do: {err}");
    assert!(!err.contains("retrying"), "a trust failure is not retried: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "fails at once");
    let o = env.run(&[
        "build",
        spec.to_str().unwrap(),
        "-o",
        &format!("oci:{}", env.path("b").display()),
        "--ca-file",
        &ca(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn debian_index_downloads_use_ca_file_too() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start_tls(Auth::Open);
    let env = Env::new();
    let spec = env.path("spec.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: t\nlayers:\n  - name: os\n    debs:\n      archives: [{{url: \"https://{}/debian\", suites: [stable]}}]\n      packages: [hello]\n",
            reg.host()
        ),
    )
    .unwrap();
    let o = env.run(&["lock", spec.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("certificate") && err.contains("--ca-file"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    // With the CA the TLS handshake succeeds: what is left is that a
    // registry is not a Debian archive (404 for the InRelease file).
    let o = env.run(&["lock", spec.to_str().unwrap(), "--ca-file", &ca()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("HTTP 404") && !err.contains("certificate"), "{err}");
}
