//! Hostile and malformed input through the `strata` binary: code a lock
//! could run, host files a spec could reach, memory and time bombs, and the
//! smaller defects of docs/security.md. Each test builds its own fixture.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Replaces the temporary directory in messages so snapshots are stable.
fn redact(s: &str, dir: &Path) -> String {
    let d = dir.display().to_string();
    let real = std::fs::canonicalize(dir).map(|p| p.display().to_string()).unwrap_or_else(|_| d.clone());
    s.replace(&real, "[DIR]").replace(&d, "[DIR]")
}

fn strata_in(dir: &Path) -> Command {
    let mut c = strata();
    c.arg("--cache").arg(dir.join("cache")).arg("--quiet").current_dir(dir);
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn fail(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1\nstdout: {}\nstderr: {}", stdout(o), stderr(o));
    stderr(o)
}

/// The uv this test run uses: `STRATA_UV`, else `uv` on PATH (None, or a
/// failure with STRATA_REQUIRE_TOOLS=1, when there is none).
fn real_uv() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_UV") {
        return Some(PathBuf::from(p));
    }
    have("uv").then(|| PathBuf::from("uv"))
}

/// A source distribution whose in-tree build backend (no build
/// requirements to download) would write `marker`: what a resolver that
/// builds sdists to read their metadata would run.
fn evil_sdist(marker: &Path) -> Vec<u8> {
    let backend = format!("import pathlib\npathlib.Path({:?}).write_text('ran')\n", marker.display().to_string());
    let pyproject = "[build-system]\nrequires = []\nbuild-backend = \"evilbackend\"\nbackend-path = [\".\"]\n";
    gzip(&raw_tar(&[
        TarItem::Dir("evil-1.0"),
        TarItem::File("evil-1.0/pyproject.toml", pyproject.as_bytes(), 0o644),
        TarItem::File("evil-1.0/evilbackend.py", backend.as_bytes(), 0o644),
        TarItem::File("evil-1.0/PKG-INFO", b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n", 0o644),
    ]))
}

fn lock_spec(dir: &Path, requirement: &str, index: Option<&str>) -> PathBuf {
    let index = index.map(|i| format!("      index_url: {i}\n")).unwrap_or_default();
    write(
        dir,
        "spec.yaml",
        &format!(
            "version: 1\nname: py\nlayers:\n  - python:\n      lock: pylock.toml\n      requirements: [{}]\n      exclude_newer: 2026-11-01T00:00:00Z\n{index}",
            serde_json::to_string(requirement).unwrap()
        ),
    )
}

/// A uv stand-in that leaves a trace when it is run at all.
fn tracing_uv(dir: &Path) -> PathBuf {
    let fake = dir.join("fake-uv");
    std::fs::write(&fake, format!("#!/bin/sh\ntouch {}\nexit 1\n", dir.join("uv-ran").display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake
}

#[test]
fn lock_refuses_local_editable_url_and_option_requirements_before_the_resolver_sees_them() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let marker = dir.join("MARKER");
    // A local project whose build would write the marker.
    write(
        dir,
        "evil/setup.py",
        &format!("open({:?}, 'w').write('ran')\nfrom setuptools import setup\nsetup(name='evil')\n", marker.display()),
    );
    let fake = tracing_uv(dir);
    let mut shown = Vec::new();
    for req in [
        "./evil",
        "evil @ file:///tmp/evil",
        "-e ./evil",
        "--index-url=http://127.0.0.1:1/simple",
        "numpy --hash=sha256:00",
        "evil-1.0.tar.gz",
    ] {
        let spec = lock_spec(dir, req, None);
        for check in [false, true] {
            let mut c = strata_in(dir);
            c.env("STRATA_UV", &fake).arg("lock").arg(&spec);
            if check {
                c.arg("--check");
            }
            let e = fail(&run(&mut c));
            if !check {
                shown.push(redact(&e, dir));
            }
        }
        assert!(!marker.exists() && !dir.join("uv-ran").exists(), "{req}: the resolver or a build ran");
    }
    insta::assert_snapshot!(shown.join("\n"));
}

#[test]
fn lock_resolves_wheels_only_and_never_builds_an_sdist() {
    let Some(uv) = real_uv() else { return };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let marker = dir.join("MARKER");
    let sdist = evil_sdist(&marker);
    let sha = sha256_hex(&sdist);
    // A PEP 691 index page: the sdist is the only file, uploaded in time.
    let page = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "evil",
        "files": [{
            "filename": "evil-1.0.tar.gz",
            "url": "/files/evil-1.0.tar.gz",
            "hashes": {"sha256": sha},
            "upload-time": "2026-01-01T00:00:00Z",
        }],
    });
    let server = Server::start(HashMap::from([
        (
            "/simple/evil/".to_string(),
            Reply::Typed("application/vnd.pypi.simple.v1+json", page.to_string().into_bytes()),
        ),
        ("/files/evil-1.0.tar.gz".to_string(), Reply::Body(sdist)),
    ]));
    let spec = lock_spec(dir, "evil==1.0", Some(&format!("{}/simple", server.addr)));
    let o = run(strata_in(dir).env("STRATA_UV", &uv).env("UV_CACHE_DIR", dir.join("uv-cache")).arg("lock").arg(&spec));
    let e = fail(&o);
    assert!(e.contains("uv pip compile failed"), "{e}");
    assert!(server.hits("/simple/evil/") >= 1, "uv asked the index: {e}");
    assert!(!marker.exists(), "the sdist's build backend ran at lock time");
    assert!(!dir.join("pylock.toml").exists());
}
