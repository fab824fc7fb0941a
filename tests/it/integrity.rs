//! What the cache hands out is what was stored, and outputs survive
//! concurrency: a cached layer or download whose bytes rotted is caught,
//! removed and rebuilt or fetched again; layouts never share bytes with the
//! cache; builds into one layout at once keep every tag.

use crate::common;

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::*;

const HELLO_DIGEST: &str = "sha256:1cd902a021c6a674dfeef3550eea95bc461538e62e6ed43e9d7992db16bd4dc4";

/// Flips one byte of `p` in place, keeping its size and modification time
/// (what bit rot, or a careless write followed by `touch -r`, looks like).
fn rot(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs_err::metadata(p).unwrap();
    let mtime = meta.modified().unwrap();
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut f = fs_err::OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut b = [0u8; 1];
    let at = meta.len() / 2;
    f.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x55]).unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(mtime)).unwrap();
    drop(f);
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(meta.permissions().mode())).unwrap();
}

/// Every blob of a layout hashes to its name.
fn assert_blobs_whole(layout: &Path) {
    for e in fs_err::read_dir(layout.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(sha256_hex(&read_all(&p)), name, "{} does not match its digest", p.display());
    }
}

fn layer_digests(summary: &serde_json::Value) -> Vec<String> {
    summary["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_rotted_cached_layer_is_rebuilt_and_never_reaches_a_layout() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let hello = root().join("specs/hello.yaml");
    let first = t.path().join("first");
    let (summary, _) = build_json(&hello, &format!("oci:{}", first.display()), &cache);
    assert_eq!(summary["manifest_digest"], HELLO_DIGEST);
    // The biggest layer, rotted in the cache with its size and mtime kept.
    let digest = layer_digests(&summary).into_iter().last().unwrap();
    let blob = cache.join("cas/sha256").join(digest.trim_start_matches("sha256:"));
    rot(&blob);
    // The earlier layout has its own copy: rot in the cache does not reach it.
    assert_blobs_whole(&first);

    let second = t.path().join("second");
    let (summary, err) = build_json(&hello, &format!("oci:{}", second.display()), &cache);
    assert_eq!(summary["manifest_digest"], HELLO_DIGEST, "{err}");
    assert!(err.contains("was corrupt and has been removed; building again"), "{err}");
    assert_blobs_whole(&second);
    // The cache holds good bytes again.
    assert_eq!(sha256_hex(&read_all(&blob)), digest.trim_start_matches("sha256:"));

    // Archives are checked the same way.
    rot(&blob);
    let archive = t.path().join("hello.tar");
    let (summary, err) = build_json(&hello, &format!("oci-archive:{}", archive.display()), &cache);
    assert_eq!(summary["manifest_digest"], HELLO_DIGEST, "{err}");
    assert!(err.contains("building again"), "{err}");
    let x = t.path().join("x");
    fs_err::create_dir_all(&x).unwrap();
    let o = run(std::process::Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&x));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_blobs_whole(&x);
}

#[test]
fn a_rotted_cached_download_is_fetched_again() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let tarball = gzip(&raw_tar(&[TarItem::File("opt/tool/bin", b"#!/bin/sh\necho tool\n", 0o755)]));
    let sha = sha256_hex(&tarball);
    let server = Server::start(HashMap::from([("/tool.tar.gz".to_string(), Reply::Body(tarball))]));
    let spec = t.path().join("spec.yaml");
    fs_err::write(
        &spec,
        format!("version: 1\nname: tool\nlayers:\n  - tarball: {{url: {}/tool.tar.gz, sha256: {sha}}}\n", server.addr),
    )
    .unwrap();
    let (first, _) = build_json(&spec, &format!("oci:{}", t.path().join("a").display()), &cache);
    assert_eq!(server.hits("/tool.tar.gz"), 1);
    rot(&cache.join("cas/sha256").join(&sha));
    // Rebuilding the layer reads the download: its rot is caught, blamed on
    // the cache (not on the server), and the file is downloaded again.
    let o = run(strata()
        .args(["build", "--json", "--no-layer-cache"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", t.path().join("b").display()))
        .arg("--cache")
        .arg(&cache));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cached copy was corrupt"), "{err}");
    assert!(!err.contains("update `sha256`"), "the server is not to blame: {err}");
    assert_eq!(server.hits("/tool.tar.gz"), 2);
    let second: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(first["manifest_digest"], second["manifest_digest"]);
    assert_eq!(sha256_hex(&read_all(&cache.join("cas/sha256").join(&sha))), sha);
}

#[test]
fn concurrent_builds_into_one_layout_keep_every_tag() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let hello = root().join("specs/hello.yaml");
    // Warm the cache so the builds race on writing, not on building.
    build_json(&hello, &format!("oci:{}", t.path().join("warm").display()), &cache);
    for round in 0..5 {
        // Round 0 races into a directory that does not exist yet.
        let dir = t.path().join(format!("layout-{round}"));
        let children: Vec<_> = (0..4)
            .map(|i| {
                strata()
                    .args(["build", "-q"])
                    .arg(&hello)
                    .arg("-o")
                    .arg(format!("oci:{}:t{i}", dir.display()))
                    .arg("--cache")
                    .arg(&cache)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", stderr(&o));
        }
        let index: serde_json::Value = serde_json::from_slice(&read_all(&dir.join("index.json"))).unwrap();
        let mut tags: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string())
            .collect();
        tags.sort();
        assert_eq!(tags, ["t0", "t1", "t2", "t3"], "round {round}: {index}");
        assert_blobs_whole(&dir);
    }
}
