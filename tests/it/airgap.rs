//! Air-gapped workflow: fill a mirror, build inside a network namespace with no
//! interfaces from the mirror alone, get the online build's digest.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use common::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn offline_build_from_a_mirror_in_a_network_namespace_matches_the_online_build() {
    let payload = gzip(&raw_tar(&[TarItem::Dir("opt/"), TarItem::File("opt/tool", b"#!/bin/sh\necho tool\n", 0o755)]));
    let extra = gzip(&raw_tar(&[TarItem::File("etc/extra.conf", b"x=1\n", 0o644)]));
    let mut routes = HashMap::new();
    routes.insert("/pool/tool.tar.gz".to_string(), Reply::Body(payload.clone()));
    routes.insert("/pool/extra.tar.gz".to_string(), Reply::Body(extra.clone()));
    let srv = Server::start(routes);
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("app.yaml");
    fs_err::write(
        &spec,
        format!(
            "version: 1\nname: app\nlayers:\n  - name: tool\n    tarball: {{url: {a}/pool/tool.tar.gz, sha256: {}}}\n  - name: extra\n    tarball: {{url: {a}/pool/extra.tar.gz, sha256: {}, size: {}}}\nconfig: {{entrypoint: [/opt/tool]}}\n",
            sha256_hex(&payload),
            sha256_hex(&extra),
            extra.len(),
            a = srv.addr
        ),
    )
    .unwrap();
    let mirror = t.path().join("mirror");

    // Connected side: fill the mirror; an online build for reference.
    let o = run(strata().args(["fetch", "-q"]).arg(&spec).args([
        "--into",
        &s(&mirror),
        "--cache",
        &s(&t.path().join("c-fetch")),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(mirror.join("sha256").join(sha256_hex(&payload)).is_file());
    let index: serde_json::Value = serde_json::from_slice(&fs_err::read(mirror.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["artifacts"][format!("sha256:{}", sha256_hex(&extra))]["name"], "extra.tar.gz");
    let online = run(strata().args(["build", "-q"]).arg(&spec).args([
        "-o",
        &format!("oci:{}", s(&t.path().join("online"))),
        "--cache",
        &s(&t.path().join("c-online")),
    ]));
    assert!(online.status.success(), "{}", stderr(&online));
    let online_digest = stdout(&online).trim().to_string();

    // A second fetch resumes: nothing new to add.
    let o = run(strata().args(["fetch"]).arg(&spec).args([
        "--into",
        &s(&mirror),
        "--cache",
        &s(&t.path().join("c-fetch")),
    ]));
    assert!(stderr(&o).contains("0 added"), "{}", stderr(&o));

    let Some(mut sanity) = unshare_net(&[
        "build",
        "-q",
        &s(&spec),
        "-o",
        &format!("oci:{}", s(&t.path().join("noNet"))),
        "--cache",
        &s(&t.path().join("c-nonet")),
    ]) else {
        return;
    };
    // Without the mirror, the namespace really has no network: the download fails.
    let o = run(sanity.env("STRATA_RETRY_BASE_MS", "5"));
    assert_eq!(o.status.code(), Some(1), "a build without the mirror must fail in the namespace: {}", stderr(&o));

    // Disconnected side: offline, from the mirror only, cold cache.
    let mut offline = unshare_net(&[
        "build",
        "-q",
        "--offline",
        "--mirror",
        &s(&mirror),
        &s(&spec),
        "-o",
        &format!("oci:{}", s(&t.path().join("offline"))),
        "--cache",
        &s(&t.path().join("c-offline")),
    ])
    .unwrap();
    let o = run(&mut offline);
    assert!(o.status.success(), "offline build failed: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), online_digest);
}

#[test]
fn offline_build_names_the_missing_artifact_and_the_fix() {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("app.yaml");
    fs_err::write(&spec, format!("version: 1\nname: app\nlayers:\n  - tarball: {{url: https://example.invalid/pool/tool.tar.gz, sha256: {}}}\n", "a".repeat(64))).unwrap();
    fs_err::create_dir_all(t.path().join("empty-mirror")).unwrap();
    let o = run(strata()
        .args(["build", "--offline", "--mirror", &s(&t.path().join("empty-mirror"))])
        .arg(&spec)
        .args(["-o", &format!("oci:{}", s(&t.path().join("o"))), "--cache", &s(&t.path().join("c"))]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("tool.tar.gz") && err.contains(&"a".repeat(64)) && err.contains("strata fetch SPEC --into"),
        "{err}"
    );
    assert!(!t.path().join("o").exists());
}

#[test]
fn fetch_verify_finds_corrupt_and_missing_files() {
    let body = gzip(&raw_tar(&[TarItem::File("a", b"hello", 0o644)]));
    let mut routes = HashMap::new();
    routes.insert("/a.tar.gz".to_string(), Reply::Body(body.clone()));
    let srv = Server::start(routes);
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("s.yaml");
    fs_err::write(
        &spec,
        format!(
            "version: 1\nname: x\nlayers:\n  - tarball: {{url: {}/a.tar.gz, sha256: {}}}\n",
            srv.addr,
            sha256_hex(&body)
        ),
    )
    .unwrap();
    let mirror = t.path().join("m");
    assert!(run(strata().args(["fetch", "-q"]).arg(&spec).args([
        "--into",
        &s(&mirror),
        "--cache",
        &s(&t.path().join("c"))
    ]))
    .status
    .success());
    let ok = run(strata().args(["fetch", "--verify", &s(&mirror)]));
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("1 files verified"));

    // Corrupt the copy in the mirror (it may be a hard link to the cache: replace it).
    let f = mirror.join("sha256").join(sha256_hex(&body));
    fs_err::remove_file(&f).unwrap();
    fs_err::write(&f, b"not the tarball").unwrap();
    let bad = run(strata().args(["fetch", "--verify", &s(&mirror)]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("corrupt"), "{}", stderr(&bad));

    fs_err::remove_file(&f).unwrap();
    let missing = run(strata().args(["fetch", "--verify", &s(&mirror)]));
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("a.tar.gz") && stderr(&missing).contains("missing"), "{}", stderr(&missing));
}
