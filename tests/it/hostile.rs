//! Hostile and malformed input through the `strata` binary: code a lock
//! could run, host files a spec could reach, memory and time bombs, and the
//! smaller defects of docs/security.md. Each test builds its own fixture.

use crate::common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Replaces the temporary directory in messages so snapshots are stable.
fn redact(s: &str, dir: &Path) -> String {
    let d = dir.display().to_string();
    let real = fs_err::canonicalize(dir).map(|p| p.display().to_string()).unwrap_or_else(|_| d.clone());
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
        fs_err::create_dir_all(parent).unwrap();
    }
    fs_err::write(&p, text).unwrap();
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
    fs_err::write(&fake, format!("#!/bin/sh\ntouch {}\nexit 1\n", dir.join("uv-ran").display())).unwrap();
    fs_err::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
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
            let o = run(&mut c);
            if check {
                // `lock --check`: 0 current, 1 stale, 2 error.
                assert_eq!(o.status.code(), Some(2), "{req}: {}", stderr(&o));
            } else {
                shown.push(redact(&fail(&o), dir));
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

/// Runs strata in `dir` under an address-space limit (bytes), with a
/// wall-clock bound: a bomb must end quickly with exit 1.
fn limited(dir: &Path, limit: u64, args: &[&str]) -> Output {
    let mut c = Command::new("timeout");
    c.arg("60").arg("prlimit").arg(format!("--as={limit}")).arg(env!("CARGO_BIN_EXE_strata"));
    c.arg("--cache").arg(dir.join("cache")).arg("--quiet").args(args).current_dir(dir);
    c.env_remove("SOURCE_DATE_EPOCH").env_remove("STRATA_THREADS").env_remove("STRATA_CACHE");
    run(&mut c)
}

const GIB: u64 = 1 << 30;

#[test]
fn host_files_stay_in_the_build_context_and_secrets_stay_out_of_logs() {
    let t = tempfile::tempdir().unwrap();
    let root_dir = t.path();
    let proj = root_dir.join("proj");
    fs_err::create_dir_all(proj.join("adir")).unwrap();
    write(root_dir, "outside.yaml", "version: 1\nlayers:\n  - dirs: [{path: /from-outside}]\n");
    write(root_dir, "secret.txt", "s3cr3t-file-content\n");
    fs_err::write(root_dir.join("outside.tar"), raw_tar(&[TarItem::File("x", b"x", 0o644)])).unwrap();
    fs_err::os::unix::fs::symlink("../outside.yaml", proj.join("link.yaml")).unwrap();
    fs_err::os::unix::fs::symlink("../secret.txt", proj.join("link.txt")).unwrap();
    assert!(run(Command::new("mkfifo").arg(proj.join("fifo"))).status.success());
    let cases: &[(&str, &str)] = &[
        ("include /proc/self/environ", "  - include: /proc/self/environ\n"),
        ("include outside", "  - include: ../outside.yaml\n"),
        ("include via a symlink", "  - include: link.yaml\n"),
        ("include a FIFO", "  - include: fifo\n"),
        ("source /etc/passwd", "  - files: [{path: /x, source: /etc/passwd}]\n"),
        ("source /proc/self/environ", "  - files: [{path: /x, source: /proc/self/environ}]\n"),
        ("source via a symlink", "  - files: [{path: /x, source: link.txt}]\n"),
        ("source a FIFO", "  - files: [{path: /x, source: fifo}]\n"),
        ("source /dev/zero", "  - files: [{path: /x, source: ../../../../../../dev/zero}]\n"),
        ("tarball outside", "  - tarball: {path: ../outside.tar}\n"),
        ("tarball a directory", "  - tarball: {path: adir}\n"),
        ("pylock outside", "  - python: {lock: ../pylock.toml}\n"),
    ];
    let mut shown = Vec::new();
    for (what, layer) in cases {
        let spec = write(&proj, "spec.yaml", &format!("version: 1\nname: x\nlayers:\n{layer}"));
        // The environment carries a registry password, as in CI.
        let o = run(strata_in(&proj)
            .env("STRATA_TEST_PASSWORD", "hunter2-env-secret")
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(format!("oci:{}", root_dir.join("out").display())));
        let e = fail(&o);
        assert!(!e.contains("hunter2") && !e.contains("s3cr3t"), "{what}: a secret reached the log:\n{e}");
        assert!(!root_dir.join("out").exists(), "{what}: an image was written");
        shown.push(format!("## {what}\n{}", redact(&e, root_dir)));
    }
    insta::assert_snapshot!(shown.join("\n"));

    // `--context` widens the context explicitly; symlinks inside it are fine.
    let spec = write(&proj, "spec.yaml", "version: 1\nname: x\nlayers:\n  - include: link.yaml\n");
    let o = run(strata_in(&proj)
        .arg("build")
        .arg(&spec)
        .arg("--context")
        .arg(root_dir)
        .arg("-o")
        .arg(format!("oci:{}", root_dir.join("out").display())));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn spec_bombs_end_in_a_clear_error_under_a_memory_limit() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let mut shown = Vec::new();
    let mut check = |what: &str, spec: &str, needle: &str| {
        let o = limited(dir, GIB, &["build", spec, "-o", "oci:out"]);
        let e = fail(&o);
        assert!(e.contains(needle), "{what}: {e}");
        assert!(e.len() < 4000, "{what}: the message is {} bytes long", e.len());
        shown.push(format!("## {what}\n{}", redact(&e, dir)));
    };
    // Ten small files, each including the next twice: 2^10 expansions.
    for i in 0..10 {
        write(
            dir,
            &format!("f{i}.yaml"),
            &format!("version: 1\nlayers:\n  - include: f{}.yaml\n  - include: f{}.yaml\n", i + 1, i + 1),
        );
    }
    write(dir, "f10.yaml", "version: 1\nlayers:\n  - dirs: [{path: /d}]\n");
    write(dir, "fanout.yaml", "version: 1\nname: x\nlayers:\n  - include: f0.yaml\n");
    check("include fan-out", "fanout.yaml", "includes");
    // A 50 MB spec.
    let mut big = String::from("version: 1\nname: x\nlayers:\n  - dirs: [{path: /d}]\n");
    while big.len() < 50 << 20 {
        big.push_str(&format!("# {}\n", "x".repeat(1000)));
    }
    write(dir, "big.yaml", &big);
    check("50 MB spec", "big.yaml", "at most");
    // 100,000 levels of nesting, flow and block style.
    write(dir, "deep-flow.yaml", &format!("version: 1\nname: x\nlayers: {}", "[".repeat(100_000)));
    check("deep flow nesting", "deep-flow.yaml", "deeper than 64");
    let block: String = (0..2500).map(|i| format!("{}- \n", " ".repeat(i))).collect();
    write(dir, "deep-block.yaml", &format!("version: 1\nname: x\nlayers:\n{block}"));
    check("deep block nesting", "deep-block.yaml", "deeper than 64");
    // Files that never end.
    assert!(run(Command::new("mkfifo").arg(dir.join("pylock.toml"))).status.success());
    write(dir, "fifo-lock.yaml", "version: 1\nname: x\nlayers:\n  - python: {lock: pylock.toml}\n");
    check("pylock is a FIFO", "fifo-lock.yaml", "FIFO");
    assert!(run(Command::new("mkfifo").arg(dir.join("x.lock"))).status.success());
    write(dir, "x.yaml", "version: 1\nname: x\nlayers:\n  - dirs: [{path: /d}]\n");
    check("spec lock is a FIFO", "x.yaml", "FIFO");
    // A local wheel that never ends (a FIFO), and one far longer than the
    // size its lock pins: refused before it is read, not hashed forever.
    let pylock = |file: &str| {
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"test\"\nrequires-python = \">=3.11\"\n\n[[packages]]\nname = \"demo\"\nversion = \"1.0\"\nwheels = [{{ path = \"{file}\", size = 10, hashes = {{ sha256 = \"{}\" }} }}]\n",
            "0".repeat(64)
        )
    };
    fs_err::create_dir_all(dir.join("w1")).unwrap();
    assert!(run(Command::new("mkfifo").arg(dir.join("w1/demo-1.0-py3-none-any.whl"))).status.success());
    write(dir, "w1/pylock.toml", &pylock("demo-1.0-py3-none-any.whl"));
    write(dir, "w1.yaml", "version: 1\nname: x\nlayers:\n  - python: {lock: w1/pylock.toml}\n");
    check("local wheel is a FIFO", "w1.yaml", "FIFO");
    fs_err::create_dir_all(dir.join("w2")).unwrap();
    fs_err::write(dir.join("w2/demo-1.0-py3-none-any.whl"), vec![0u8; 8 << 20]).unwrap();
    write(dir, "w2/pylock.toml", &pylock("demo-1.0-py3-none-any.whl"));
    write(dir, "w2.yaml", "version: 1\nname: x\nlayers:\n  - python: {lock: w2/pylock.toml}\n");
    check("local wheel longer than pinned", "w2.yaml", "expected 10 bytes");
    // A 524-byte tarball whose members have 30,000 path components each.
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..3 {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let path = format!("{i}/{}", "a/".repeat(30_000));
        b.append_data(&mut h, path.trim_end_matches('/'), &b""[..]).unwrap();
    }
    let bomb = gzip(&b.into_inner().unwrap());
    assert!(bomb.len() < 2048, "{}", bomb.len());
    fs_err::write(dir.join("bomb.tar.gz"), bomb).unwrap();
    write(dir, "tarbomb.yaml", "version: 1\nname: x\nlayers:\n  - tarball: {path: bomb.tar.gz}\n");
    check("deep tarball paths", "tarbomb.yaml", "at most 4095");
    insta::assert_snapshot!(shown.join("\n"));
}

#[test]
fn out_of_memory_is_a_clear_error_not_an_abort() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    // About 4 MiB of inline content: parsing it needs more than 55 MB.
    let mut x: u32 = 7;
    let data: String = (0..2_900_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(x % 64) as usize] as char
        })
        .collect();
    write(
        dir,
        "spec.yaml",
        &format!("version: 1\nname: x\nlayers:\n  - files: [{{path: /big, content_base64: {data}}}]\n"),
    );
    let o = limited(dir, 55_000_000, &["build", "spec.yaml", "-o", "oci:out"]);
    let e = fail(&o);
    assert!(e.starts_with("error: out of memory"), "{e}");
}

#[test]
fn closed_output_streams_end_quietly() {
    let t = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_strata");
    let cache = t.path().join("cache");
    let spec = root().join("specs/hello.yaml");
    let sh = |script: String| run(Command::new("sh").arg("-c").arg(script));
    // An error with stderr closed: exit 1, not a panic (101).
    let o = sh(format!("'{bin}' build /nonexistent.yaml 2>&-"));
    assert_eq!(o.status.code(), Some(1));
    // A successful build with stdout closed: exit 0, like other tools.
    let o = sh(format!(
        "'{bin}' --cache '{}' build -q '{}' -o 'oci:{}' >&-",
        cache.display(),
        spec.display(),
        t.path().join("a").display()
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Progress on a closed pipe.
    let o = sh(format!(
        "'{bin}' --cache '{}' build '{}' -o 'oci:{}' 2>&1 | true",
        cache.display(),
        spec.display(),
        t.path().join("b").display()
    ));
    assert!(o.status.success());
    // -v writes plain text to a file or pipe: no colour escapes.
    let o = run(strata()
        .arg("--cache")
        .arg(&cache)
        .arg("-v")
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", t.path().join("c").display())));
    assert!(o.status.success());
    assert!(!stderr(&o).contains('\u{1b}'), "{}", stderr(&o));
}

/// A one-member tar with a header built by hand.
fn tar_with(edit: impl FnOnce(&mut tar::Header), name: &[u8], link: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    edit(&mut h);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

#[test]
fn smaller_defects_each_get_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let mut shown = Vec::new();
    let mut check = |what: &str, spec: &str, extra: &[&str]| {
        let p = write(dir, "spec.yaml", spec);
        let o = run(strata_in(dir).arg("build").arg(&p).args(extra));
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
        let e = fail(&o);
        assert!(!e.contains('\u{1b}'), "{what}: a raw escape reached the terminal: {e:?}");
        shown.push(format!("## {what}\n{}", redact(&e, dir)));
    };
    let tarball = |name: &str, bytes: Vec<u8>| {
        fs_err::write(dir.join(name), bytes).unwrap();
    };
    let spec_tar =
        |name: &str, extra: &str| format!("version: 1\nname: x\nlayers:\n  - tarball: {{path: {name}{extra}}}\n");
    check("name with ../", "version: 1\nname: ../../x\nlayers:\n  - dirs: [{path: /d}]\n", &[]);
    check("absolute name", "version: 1\nname: /tmp/x\nlayers:\n  - dirs: [{path: /d}]\n", &[]);
    tarball("uid.tar", tar_with(|h| h.set_uid(1 << 32), b"usr/bin/su", b""));
    check("uid past 32 bits", &spec_tar("uid.tar", ""), &[]);
    tarball("link.tar", tar_with(|h| h.set_entry_type(tar::EntryType::Symlink), b"lib/x", b"target-\xff\xfe"));
    check("non-UTF-8 symlink target", &spec_tar("link.tar", ""), &[]);
    tarball("esc.tar", tar_with(|_| {}, b"\x1b[2J\x1b[31mred/../../etc/passwd", b""));
    check("escape sequences in a member name", &spec_tar("esc.tar", ""), &[]);
    tarball("type.tar", tar_with(|h| h.set_entry_type(tar::EntryType::new(b'Z')), b"odd", b""));
    check("unknown tar entry type", &spec_tar("type.tar", ""), &[]);
    tarball("short.tar", tar_with(|_| {}, b"a/b/file", b""));
    check("strip_components removes everything", &spec_tar("short.tar", ", strip_components: 5"), &[]);
    check("into: ../../etc", &spec_tar("short.tar", ", into: ../../etc"), &[]);
    check("epoch past 9999", "version: 1\nname: x\nepoch: 253402300800\nlayers:\n  - dirs: [{path: /d}]\n", &[]);
    check("path: /etc/", "version: 1\nname: x\nlayers:\n  - files: [{path: /etc/, content: x}]\n", &[]);
    check("duplicate key", "version: 1\nname: x\nlayers:\n  - dirs: [{path: /d}]\nname: y\n", &[]);
    check(
        "a long line is cut",
        &format!("version: 1\nname: x\nlayers: [{{dirs: [{{path: /d}}], bogus: {}}}]\n", "y".repeat(5000)),
        &[],
    );
    // SOURCE_DATE_EPOCH too.
    let p = write(dir, "ok.yaml", "version: 1\nname: x\nlayers:\n  - dirs: [{path: /d}]\n");
    let o = run(strata_in(dir).env("SOURCE_DATE_EPOCH", "253402300800").arg("build").arg(&p).arg("-o").arg("oci:o"));
    shown.push(format!("## SOURCE_DATE_EPOCH past 9999\n{}", fail(&o)));
    insta::assert_snapshot!(shown.join("\n"));
}

#[test]
fn inspect_and_diff_refuse_descriptors_that_are_not_digests() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let layout = dir.join("img");
    build_json(&root().join("specs/hello.yaml"), &format!("oci:{}", layout.display()), &dir.join("cache"));
    // Rewrite the manifest so a layer descriptor names a path, as a hostile
    // layout would, and re-point the index at it.
    let index: serde_json::Value = serde_json::from_slice(&read_all(&layout.join("index.json"))).unwrap();
    let old = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let mut m: serde_json::Value = serde_json::from_slice(&read_all(&layout.join("blobs/sha256").join(&old))).unwrap();
    m["layers"][0]["digest"] = serde_json::json!("sha256:../../../../etc/passwd");
    let bytes = serde_json::to_vec(&m).unwrap();
    let new = sha256_hex(&bytes);
    fs_err::write(layout.join("blobs/sha256").join(&new), &bytes).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = serde_json::json!(format!("sha256:{new}"));
    index["manifests"][0]["size"] = serde_json::json!(bytes.len());
    fs_err::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let src = format!("oci:{}:1.0", layout.display());
    let o = run(strata().arg("inspect").arg(&src));
    let e = fail(&o);
    assert!(e.contains("is not `sha256:` and 64 hex digits"), "{e}");
    let o = run(strata().arg("diff").arg(&src).arg(&src));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not `sha256:` and 64 hex digits"), "{}", stderr(&o));
}
