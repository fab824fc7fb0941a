//! End-to-end tests of `strata build` and `strata inspect`: golden digest,
//! independent judges (skopeo, umoci, runc, podman), reproducibility across
//! environments, and bad input.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;

/// The manifest digest of specs/hello.yaml. A change here means the bytes of
/// every image change: update only together with a FORMAT note in
/// docs/reproducibility.md.
const HELLO_DIGEST: &str = "sha256:1cd902a021c6a674dfeef3550eea95bc461538e62e6ed43e9d7992db16bd4dc4";

fn hello_spec() -> PathBuf {
    root().join("specs/hello.yaml")
}

fn build(spec: &Path, output: &str, cache: &Path) -> std::process::Output {
    run(strata().args(["build", "-q"]).arg(spec).arg("-o").arg(output).arg("--cache").arg(cache))
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().to_string()
}

#[test]
fn hello_has_the_golden_digest() {
    let t = tempfile::tempdir().unwrap();
    let o = build(&hello_spec(), &format!("oci:{}/out", t.path().display()), &t.path().join("cache"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(last_line(&stdout(&o)), HELLO_DIGEST);

    // The manifest and config themselves, byte for byte: when the digest moves,
    // the snapshot diff shows which field did.
    let layout = t.path().join("out");
    let blob =
        |d: &str| fs_err::read_to_string(layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
    let pretty =
        |s: &str| serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(s).unwrap()).unwrap();
    let manifest = blob(HELLO_DIGEST);
    insta::assert_snapshot!("hello_manifest", pretty(&manifest));
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    insta::assert_snapshot!("hello_config", pretty(&blob(m["config"]["digest"].as_str().unwrap())));
}

#[test]
fn every_output_is_accepted_by_skopeo_umoci_and_podman() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let dir = t.path().join("layout");
    let oa = t.path().join("hello-oci.tar");
    let da = t.path().join("hello-docker.tar");
    for out in [
        format!("oci:{}:1.0", dir.display()),
        format!("oci-archive:{}", oa.display()),
        format!("docker-archive:{}", da.display()),
    ] {
        let o = build(&hello_spec(), &out, &cache);
        assert!(o.status.success(), "{out}: {}", stderr(&o));
        assert_eq!(last_line(&stdout(&o)), HELLO_DIGEST, "{out}");
    }

    // docker-archive: the documented manifest.json layout.
    let mut ar = tar::Archive::new(fs_err::File::open(&da).unwrap());
    let mut manifest_json = None;
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name == "manifest.json" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            manifest_json = Some(s);
        }
        names.push(name);
    }
    let m: serde_json::Value = serde_json::from_str(&manifest_json.expect("manifest.json in docker-archive")).unwrap();
    assert_eq!(m[0]["RepoTags"][0], "hello:1.0");
    let cfg = m[0]["Config"].as_str().unwrap();
    assert!(cfg.starts_with("blobs/sha256/") && names.iter().any(|n| n == cfg));
    assert_eq!(m[0]["Layers"].as_array().unwrap().len(), 2);
    for l in m[0]["Layers"].as_array().unwrap() {
        assert!(names.iter().any(|n| n == l.as_str().unwrap()), "layer {l} missing");
    }

    // strata inspect reads all three.
    for src in [format!("oci:{}:1.0", dir.display()), format!("oci-archive:{}", oa.display())] {
        let o = run(strata().args(["inspect", &src]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains(HELLO_DIGEST), "{}", stdout(&o));
    }
    let o = run(strata().args(["inspect", "--json", &format!("docker-archive:{}", da.display())]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["config"]["config"]["Entrypoint"][0], "/hello");

    if have("skopeo") {
        let o = run(std::process::Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:1.0", dir.display())));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(format!("sha256:{}", sha256_hex(&o.stdout)), HELLO_DIGEST, "skopeo sees other manifest bytes");
        let o = run(std::process::Command::new("skopeo").args(["inspect"]).arg(format!("oci:{}:1.0", dir.display())));
        assert!(o.status.success() && stdout(&o).contains("\"Os\": \"linux\""), "{}", stderr(&o));
        for (src, name) in
            [(format!("oci-archive:{}", oa.display()), "a"), (format!("docker-archive:{}", da.display()), "d")]
        {
            let o = run(std::process::Command::new("skopeo")
                .args(["copy", "-q", &src])
                .arg(format!("oci:{}:{name}", t.path().join("copies").display())));
            assert!(o.status.success(), "skopeo copy {src}: {}", stderr(&o));
        }
    }
    if have("umoci") {
        let o = run(std::process::Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:1.0", dir.display()))
            .arg(t.path().join("bundle")));
        assert!(o.status.success(), "umoci unpack: {}", stderr(&o));
        let rootfs = t.path().join("bundle/rootfs");
        assert_eq!(fs_err::read_link(rootfs.join("hello")).unwrap(), Path::new("usr/local/bin/hello"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs_err::metadata(rootfs.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
        assert!(fs_err::read_to_string(rootfs.join("etc/passwd")).unwrap().contains("app:x:1000:1000"));
    }
    if have("podman") {
        let store = t.path().join("podman");
        let o = run(std::process::Command::new("podman")
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--storage-driver", "vfs", "load", "-i"])
            .arg(&da));
        assert!(o.status.success(), "podman load: {}{}", stdout(&o), stderr(&o));
        assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("hello:1.0"));
    }
}

#[test]
fn hello_runs_under_runc() {
    if !(have("umoci") && have("runc")) {
        return;
    }
    if unsafe_is_root() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("layout");
        let o = build(&hello_spec(), &format!("oci:{}", dir.display()), &t.path().join("cache"));
        assert!(o.status.success(), "{}", stderr(&o));
        let (code, out, err) = umoci_runc(&dir, "1.0", t.path());
        assert_eq!(code, 0, "runc: {err}");
        assert_eq!(out, "Hello from a Strata image!\n");
    } else {
        eprintln!("note: runc needs root here; skipped");
    }
}

fn unsafe_is_root() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A spec with a multi-block file so that compression really runs in parallel.
fn big_spec(dir: &Path, algorithm: &str) -> PathBuf {
    fs_err::create_dir_all(dir).unwrap();
    let mut data = Vec::with_capacity(6 << 20);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    while data.len() < 6 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(format!("{:016x} {}\n", x, x % 97).as_bytes());
    }
    fs_err::write(dir.join("big.txt"), &data).unwrap();
    let spec = dir.join("big.yaml");
    fs_err::write(
        &spec,
        format!(
            "version: 1\nname: big\ncompression: {{algorithm: {algorithm}}}\nlayers:\n  - files:\n      - {{path: /data/big.txt, source: big.txt}}\n      - {{path: /data/small, content: \"x\"}}\n"
        ),
    )
    .unwrap();
    spec
}

#[test]
fn digests_do_not_depend_on_path_umask_tz_locale_clock_cache_or_threads() {
    let t = tempfile::tempdir().unwrap();
    let faketime = have("faketime");
    for algorithm in ["gzip", "zstd"] {
        // Two copies of the specs at different paths.
        let a_dir = t.path().join(format!("a-{algorithm}"));
        let b_dir = t.path().join(format!("deeper/path/b-{algorithm}"));
        let mut digests = Vec::new();
        for (i, dir) in [&a_dir, &b_dir].iter().enumerate() {
            let spec = big_spec(dir, algorithm);
            fs_err::copy(hello_spec(), dir.join("hello.yaml")).unwrap();
            let cache = t.path().join(format!("cache-{algorithm}-{i}"));
            for s in [spec, dir.join("hello.yaml")] {
                let (umask, tz, lang, threads) =
                    if i == 0 { ("022", "UTC", "C", "1") } else { ("077", "Asia/Kolkata", "de_DE.UTF-8", "8") };
                let out =
                    format!("oci:{}", dir.join(format!("out-{}", s.file_stem().unwrap().to_string_lossy())).display());
                let script = format!(
                    "umask {umask}; cd {}; exec {} {} build -q {} -o {out} --cache {} --threads {threads}",
                    dir.display(),
                    if i == 1 && faketime { "faketime '2031-07-04 12:00:00'" } else { "" },
                    env!("CARGO_BIN_EXE_strata"),
                    s.display(),
                    cache.display()
                );
                // Cold cache on the first run of each environment, warm on a repeat.
                for _pass in 0..(1 + i) {
                    let o = run(std::process::Command::new("sh")
                        .arg("-c")
                        .arg(&script)
                        .env("TZ", tz)
                        .env("LANG", lang)
                        .env("LC_ALL", lang)
                        .env_remove("SOURCE_DATE_EPOCH"));
                    assert!(o.status.success(), "{script}: {}", stderr(&o));
                    digests.push((i, s.file_name().unwrap().to_string_lossy().into_owned(), last_line(&stdout(&o))));
                }
            }
        }
        for name in ["big.yaml", "hello.yaml"] {
            let ds: Vec<&String> = digests.iter().filter(|d| d.1 == name).map(|d| &d.2).collect();
            assert!(ds.len() >= 3 && ds.windows(2).all(|w| w[0] == w[1]), "{algorithm} {name}: {ds:?}");
        }
        assert_eq!(digests.iter().find(|d| d.1 == "hello.yaml").unwrap().2, HELLO_DIGEST);
    }
}

#[test]
fn source_date_epoch_overrides_the_spec_epoch() {
    let t = tempfile::tempdir().unwrap();
    let o = run(strata()
        .args(["build", "-q"])
        .arg(hello_spec())
        .arg("-o")
        .arg(format!("oci:{}", t.path().join("o").display()))
        .arg("--cache")
        .arg(t.path().join("c"))
        .env("SOURCE_DATE_EPOCH", "1000000000"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(last_line(&stdout(&o)), HELLO_DIGEST);
    let o = run(strata().args(["inspect", "--json"]).arg(format!("oci:{}", t.path().join("o").display())));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["config"]["created"], "2001-09-09T01:46:40Z");
}

#[test]
fn one_layout_keeps_several_tags() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("layout");
    let cache = t.path().join("c");
    assert!(build(&hello_spec(), &format!("oci:{}:one", dir.display()), &cache).status.success());
    let spec = big_spec(&t.path().join("big"), "gzip");
    let o = build(&spec, &format!("oci:{}:two", dir.display()), &cache);
    assert!(o.status.success(), "{}", stderr(&o));
    let one = run(strata().args(["inspect", &format!("oci:{}:one", dir.display())]));
    assert!(stdout(&one).contains(HELLO_DIGEST));
    let two = run(strata().args(["inspect", &format!("oci:{}:two", dir.display())]));
    assert!(stdout(&two).contains(&last_line(&stdout(&o))));
    // Without a tag, a layout with two images is ambiguous.
    let amb = run(strata().args(["inspect", &format!("oci:{}", dir.display())]));
    assert_eq!(amb.status.code(), Some(1));
    assert!(stderr(&amb).contains("holds 2 images"), "{}", stderr(&amb));
}

#[test]
fn an_unchanged_rebuild_takes_every_layer_from_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("c");
    let (a, _) = build_json(&hello_spec(), &format!("oci:{}", t.path().join("a").display()), &cache);
    let (b, _) = build_json(&hello_spec(), &format!("oci:{}", t.path().join("b").display()), &cache);
    assert_eq!(a["manifest_digest"], HELLO_DIGEST);
    assert_eq!(a["manifest_digest"], b["manifest_digest"]);
    assert!(a["layers"].as_array().unwrap().iter().all(|l| l["cached"] == false));
    assert!(b["layers"].as_array().unwrap().iter().all(|l| l["cached"] == true));
}

// ---- bad input -------------------------------------------------------------

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case { dir: tempfile::tempdir().unwrap() }
    }
    fn spec(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("spec.yaml");
        fs_err::write(&p, text).unwrap();
        p
    }
    /// Builds, expects failure with exit code 1 and no output written; returns stderr
    /// with the temporary directory and ports replaced for snapshots.
    fn fails(&self, spec: &Path) -> String {
        let out = self.dir.path().join("out");
        let o = run(strata()
            .args(["build", "-q"])
            .arg(spec)
            .arg("-o")
            .arg(format!("oci:{}", out.display()))
            .arg("--cache")
            .arg(self.dir.path().join("cache"))
            .env("STRATA_RETRY_BASE_MS", "10"));
        assert_eq!(o.status.code(), Some(1), "expected failure; stdout: {} stderr: {}", stdout(&o), stderr(&o));
        assert!(stdout(&o).is_empty(), "no digest on failure: {}", stdout(&o));
        assert!(!out.exists(), "the destination must not be created on failure");
        let err = stderr(&o).replace(&self.dir.path().display().to_string(), "[TMP]");
        regex_lite_ports(&err)
    }
}

/// Replaces `127.0.0.1:<port>` with a fixed string.
fn regex_lite_ports(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + 10]);
        rest = &rest[i + 10..];
        let n = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        out.push_str("[PORT]");
        rest = &rest[n..];
    }
    out.push_str(rest);
    out
}

#[test]
fn yaml_syntax_error_is_located() {
    let c = Case::new();
    let s = c.spec("version: 1\nname: x\nlayers:\n  - files: [\n");
    insta::assert_snapshot!(c.fails(&s));
}

#[test]
fn unknown_key_is_located_with_a_hint() {
    let c = Case::new();
    let s = c.spec("version: 1\nname: x\nlayers:\n  - fils:\n      - {path: /a, content: x}\n");
    insta::assert_snapshot!(c.fails(&s));
}

#[test]
fn unquoted_mode_is_refused() {
    let c = Case::new();
    let s =
        c.spec("version: 1\nname: x\nlayers:\n  - files:\n      - path: /a\n        content: x\n        mode: 755\n");
    insta::assert_snapshot!(c.fails(&s));
}

#[test]
fn missing_required_field() {
    let c = Case::new();
    let s = c.spec("version: 1\nlayers:\n  - files:\n      - {path: /a, content: x}\n");
    insta::assert_snapshot!(c.fails(&s));
}

#[test]
fn missing_local_file() {
    let c = Case::new();
    let s = c
        .spec("version: 1\nname: x\nlayers:\n  - files:\n      - path: /etc/app.conf\n        source: conf/app.conf\n");
    insta::assert_snapshot!(c.fails(&s));
}

fn tarball_case(reply: Reply, sha: &str) -> (Case, Server, PathBuf) {
    let mut routes = HashMap::new();
    routes.insert("/a.tar.gz".to_string(), reply);
    let server = Server::start(routes);
    let c = Case::new();
    let s = c.spec(&format!(
        "version: 1\nname: x\nlayers:\n  - tarball:\n      url: {}/a.tar.gz\n      sha256: {sha}\n",
        server.addr
    ));
    (c, server, s)
}

#[test]
fn sha256_mismatch_shows_expected_and_found() {
    let body = gzip(&raw_tar(&[TarItem::File("a", b"hello", 0o644)]));
    let wrong = "0".repeat(64);
    let (c, _srv, s) = tarball_case(Reply::Body(body.clone()), &wrong);
    let err = c.fails(&s);
    assert!(err.contains(&format!("found:    sha256:{}", sha256_hex(&body))), "{err}");
    insta::assert_snapshot!(err.replace(&sha256_hex(&body), "[FOUND]"));
}

#[test]
fn unreachable_url_fails_after_retries() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = Case::new();
    let s = c.spec(&format!(
        "version: 1\nname: x\nlayers:\n  - tarball:\n      url: http://127.0.0.1:{port}/a.tar\n      sha256: {}\n",
        "1".repeat(64)
    ));
    let err = c.fails(&s);
    assert!(err.contains("after 5 attempts"), "{err}");
    assert!(err.contains("Connection refused") || err.contains("connect"), "{err}");
}

/// Builds a spec whose tarball comes from a server that misbehaves, with
/// short network timeouts; returns stderr and how long it took.
fn build_from_a_slow_server(reply: Reply) -> (String, std::time::Duration) {
    let (c, _srv, s) = tarball_case(reply, &"3".repeat(64));
    let started = std::time::Instant::now();
    let o = run(strata()
        .args(["build", "-q"])
        .arg(&s)
        .arg("-o")
        .arg(format!("oci:{}", c.dir.path().join("o").display()))
        .arg("--cache")
        .arg(c.dir.path().join("cache"))
        .env("STRATA_RETRY_BASE_MS", "10")
        .env("STRATA_NET_IDLE_TIMEOUT", "1s")
        .env("STRATA_NET_MIN_SPEED", "200")
        .env("STRATA_NET_DEADLINE", "3s"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    (stderr(&o), started.elapsed())
}

#[test]
fn a_silent_server_is_cut_off_by_the_idle_timeout_and_the_deadline() {
    // The server accepts the request and says nothing for two minutes.
    let (err, took) = build_from_a_slow_server(Reply::Silent(std::time::Duration::from_secs(120)));
    assert!(err.contains("nothing arrived for 1s (STRATA_NET_IDLE_TIMEOUT)"), "{err}");
    assert!(err.contains("the deadline; STRATA_NET_DEADLINE sets it"), "{err}");
    assert!(took < std::time::Duration::from_secs(60), "bounded: {took:?}");
}

#[test]
fn a_drip_feeding_server_is_cut_off_by_the_minimum_speed() {
    // A byte every 100 ms keeps resetting the idle timeout; the whole body
    // would take minutes.
    let body = vec![0u8; 4000];
    let (err, took) = build_from_a_slow_server(Reply::Drip(body, std::time::Duration::from_millis(100)));
    assert!(err.contains("too slow:") && err.contains("less than the minimum 200 bytes per second"), "{err}");
    assert!(err.contains("the deadline; STRATA_NET_DEADLINE sets it"), "{err}");
    assert!(took < std::time::Duration::from_secs(60), "bounded: {took:?}");
}

#[test]
fn missing_file_on_server_is_not_retried_and_says_what_to_do() {
    let (c, srv, s) = tarball_case(Reply::Status(404), &"2".repeat(64));
    insta::assert_snapshot!(c.fails(&s));
    assert_eq!(srv.hits("/a.tar.gz"), 1);
}

#[test]
fn transient_errors_and_truncation_are_retried() {
    let body = gzip(&raw_tar(&[TarItem::File("etc/x", b"hello", 0o644)]));
    let sha = sha256_hex(&body);
    {
        let (c, srv, s) = tarball_case(Reply::FlakyThen(503, 2, body.clone()), &sha);
        let o = run(strata()
            .args(["build", "-q"])
            .arg(&s)
            .arg("-o")
            .arg(format!("oci:{}", c.dir.path().join("o").display()))
            .arg("--cache")
            .arg(c.dir.path().join("cache"))
            .env("STRATA_RETRY_BASE_MS", "10"));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(srv.hits("/a.tar.gz"), 3);
    }
    // A body cut short is retried, then a failure that says how far it got, and
    // leaves nothing in the cache under the artifact's name.
    let (c, srv, _) = tarball_case(Reply::Truncated(body.clone(), body.len() / 2), &sha);
    let s = c.spec(&format!(
        "version: 1\nname: x\nlayers:\n  - tarball:\n      url: {}/a.tar.gz\n      sha256: {sha}\n      size: {}\n",
        srv.addr,
        body.len()
    ));
    let err = c.fails(&s);
    assert!(
        err.contains(&format!("connection broke after {} bytes", body.len() / 2)) && err.contains("after 5 attempts"),
        "{err}"
    );
    assert!(!c.dir.path().join("cache/cas/sha256").join(&sha).exists());
}

fn local_tarball_fails(items: &[TarItem<'_>]) -> String {
    let c = Case::new();
    fs_err::write(c.dir.path().join("bad.tar"), raw_tar(items)).unwrap();
    let s = c.spec("version: 1\nname: x\nlayers:\n  - name: payload\n    tarball: {path: bad.tar}\n");
    c.fails(&s)
}

#[test]
fn tarball_with_parent_paths_is_refused() {
    insta::assert_snapshot!(local_tarball_fails(&[TarItem::File("../../etc/passwd", b"x", 0o644)]));
}

#[test]
fn tarball_with_absolute_paths_is_refused() {
    insta::assert_snapshot!(local_tarball_fails(&[TarItem::File("/etc/passwd", b"x", 0o644)]));
}

#[test]
fn tarball_writing_through_an_escaping_symlink_is_refused() {
    insta::assert_snapshot!(local_tarball_fails(&[
        TarItem::Symlink("etc", "../../../../etc"),
        TarItem::File("etc/passwd", b"x", 0o644)
    ]));
}

#[test]
fn tarball_hardlink_to_outside_is_refused() {
    insta::assert_snapshot!(local_tarball_fails(&[TarItem::Hardlink("shadow", "../../etc/shadow")]));
    insta::assert_snapshot!("hardlink_to_missing", local_tarball_fails(&[TarItem::Hardlink("shadow", "etc/shadow")]));
}

#[test]
fn tarball_with_a_member_appended_twice() {
    // `tar -r` appends a second copy of a member. The same bytes again are
    // accepted (one file in the layer); other bytes are a conflict that
    // names both contents.
    let c = Case::new();
    let same = raw_tar(&[
        TarItem::File("etc/motd", b"first copy\n", 0o644),
        TarItem::File("etc/other", b"x", 0o644),
        TarItem::File("etc/motd", b"first copy\n", 0o644),
    ]);
    fs_err::write(c.dir.path().join("same.tar"), same).unwrap();
    let s = c.spec("version: 1\nname: x\nlayers:\n  - name: payload\n    tarball: {path: same.tar}\n");
    let out = c.dir.path().join("o");
    let o = build(&s, &format!("oci:{}", out.display()), &c.dir.path().join("cache"));
    assert!(o.status.success(), "{}", stderr(&o));
    let blob = |d: &str| fs_err::read(out.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
    let json = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).unwrap();
    let index = json(fs_err::read(out.join("index.json")).unwrap());
    let manifest = json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&layer[..]));
    let paths: Vec<String> =
        ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(paths.iter().filter(|p| p.ends_with("etc/motd")).count(), 1, "{paths:?}");

    let err = local_tarball_fails(&[
        TarItem::File("etc/motd", b"first copy\n", 0o644),
        TarItem::File("etc/motd", b"other copy\n", 0o644),
    ]);
    assert!(err.contains("etc/motd") && err.contains("content sha256:"), "{err}");
}

#[test]
fn tarballs_in_every_codec_unpack_to_the_same_layer() {
    let tar = raw_tar(&[
        TarItem::Dir("opt/"),
        TarItem::File("opt/tool", b"#!/bin/sh\necho hi\n", 0o755),
        TarItem::Symlink("opt/link", "tool"),
    ]);
    let gz = gzip(&tar);
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let mut xz = Vec::new();
    {
        use std::io::Write;
        let mut e = liblzma::write::XzEncoder::new(&mut xz, 6);
        e.write_all(&tar).unwrap();
        e.finish().unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for (name, bytes) in [("a.tar", &tar), ("a.tar.gz", &gz), ("a.tar.zst", &zst), ("a.tar.xz", &xz)] {
        fs_err::write(t.path().join(name), bytes).unwrap();
        let spec = t.path().join(format!("{name}.yaml"));
        fs_err::write(
            &spec,
            format!(
                "version: 1\nname: x\nlayers:\n  - name: opt\n    tarball: {{path: {name}, sha256: {}}}\n",
                sha256_hex(bytes)
            ),
        )
        .unwrap();
        let (v, _) =
            build_json(&spec, &format!("oci:{}", t.path().join(format!("o-{name}")).display()), &t.path().join("c"));
        // The specs differ (each pins its own archive), the layer must not.
        digests.push(v["layers"][0]["digest"].as_str().unwrap().to_string());
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

#[test]
fn a_plain_tarball_is_read_in_place_with_long_names_and_checked_for_truncation() {
    // Uncompressed tars are not copied to scratch space: members are read
    // from the archive at their offsets. Long names (GNU extension headers
    // before the data) must not shift those offsets.
    let long = format!("opt/{}/file.txt", "d".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in [("opt/a", &b"alpha\n"[..]), (long.as_str(), &b"long-named bytes\n"[..]), ("opt/z", b"zulu\n")]
    {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        b.append_data(&mut h, path, body).unwrap();
    }
    let plain = b.into_inner().unwrap();
    let t = tempfile::tempdir().unwrap();
    let mut layers = Vec::new();
    for (name, bytes) in [("p.tar", plain.clone()), ("p.tar.gz", gzip(&plain))] {
        fs_err::write(t.path().join(name), &bytes).unwrap();
        let spec = t.path().join(format!("{name}.yaml"));
        fs_err::write(&spec, format!("version: 1\nname: x\nlayers:\n  - tarball: {{path: {name}}}\n")).unwrap();
        let out = t.path().join(format!("o-{name}"));
        let o = build(&spec, &format!("oci:{}", out.display()), &t.path().join("c"));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let index: serde_json::Value = serde_json::from_slice(&fs_err::read(out.join("index.json")).unwrap()).unwrap();
        let blob = |d: &str| fs_err::read(out.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
        let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
        let mut files = Vec::new();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&layer[..]));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.header().entry_type().is_file() {
                let mut body = String::new();
                std::io::Read::read_to_string(&mut e, &mut body).unwrap();
                files.push((e.path().unwrap().to_string_lossy().into_owned(), body));
            }
        }
        assert_eq!(
            files,
            [
                ("opt/a".to_string(), "alpha\n".to_string()),
                (long.clone(), "long-named bytes\n".to_string()),
                ("opt/z".to_string(), "zulu\n".to_string())
            ],
            "{name}"
        );
        layers.push(manifest["layers"][0]["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(layers[0], layers[1]);

    // Cut inside the last member's bytes: refused, not read short later.
    let cut = plain.len() - 1024 - 512 + 2;
    fs_err::write(t.path().join("cut.tar"), &plain[..cut]).unwrap();
    let c = Case::new();
    fs_err::copy(t.path().join("cut.tar"), c.dir.path().join("cut.tar")).unwrap();
    let err = c.fails(&c.spec("version: 1\nname: x\nlayers:\n  - tarball: {path: cut.tar}\n"));
    assert!(err.contains("cut.tar") && (err.contains("truncated") || err.contains("corrupt")), "{err}");
}

#[test]
fn output_into_a_non_layout_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs_err::write(t.path().join("precious.txt"), "keep me").unwrap();
    let o = build(&hello_spec(), &format!("oci:{}", t.path().display()), &t.path().join("c"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not an OCI image layout"), "{}", stderr(&o));
    assert_eq!(fs_err::read_to_string(t.path().join("precious.txt")).unwrap(), "keep me");
}

#[test]
fn usage_errors_exit_with_2() {
    let o = run(strata().args(["build"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(strata().args(["build", "x.yaml", "-o", "tarball:/x"]));
    // parse error of the output is reported before anything is built
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn committed_json_schemas_are_current() {
    for (flag, file) in [(None, "docs/spec.schema.json"), (Some("--layer"), "docs/layer.schema.json")] {
        let mut cmd = strata();
        cmd.arg("schema");
        if let Some(f) = flag {
            cmd.arg(f);
        }
        let o = run(&mut cmd);
        let committed = fs_err::read_to_string(root().join(file)).unwrap_or_default();
        assert_eq!(
            stdout(&o).trim(),
            committed.trim(),
            "{file} is stale: run `cargo run -- schema {} > {file}`",
            flag.unwrap_or("")
        );
    }
}

#[test]
fn concurrent_builds_share_one_cache_safely() {
    let body = gzip(&raw_tar(&[TarItem::File("opt/data", &vec![7u8; 3 << 20], 0o644)]));
    let sha = sha256_hex(&body);
    let mut routes = HashMap::new();
    routes.insert("/a.tar.gz".to_string(), Reply::Body(body));
    let srv = Server::start(routes);
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("spec.yaml");
    fs_err::write(
        &spec,
        format!("version: 1\nname: x\nlayers:\n  - tarball:\n      url: {}/a.tar.gz\n      sha256: {sha}\n", srv.addr),
    )
    .unwrap();
    let cache = t.path().join("shared-cache");
    let children: Vec<_> = (0..4)
        .map(|i| {
            strata()
                .args(["build", "-q"])
                .arg(&spec)
                .arg("-o")
                .arg(format!("oci:{}", t.path().join(format!("out{i}")).display()))
                .arg("--cache")
                .arg(&cache)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let digests: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            last_line(&stdout(&o))
        })
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    // The per-artifact lock lets one process download while the others wait.
    assert_eq!(srv.hits("/a.tar.gz"), 1);
}

#[test]
fn a_corrupted_layer_cache_entry_is_detected_and_rebuilt() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("c");
    let o = build(&hello_spec(), &format!("oci:{}", t.path().join("a").display()), &cache);
    assert!(o.status.success());
    // Corrupt one cached layer blob in place (same size, different bytes).
    let v: serde_json::Value = {
        let o = run(strata().args(["inspect", "--json", &format!("oci:{}", t.path().join("a").display())]));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let layer = v["manifest"]["layers"][1]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let blob = cache.join("cas/sha256").join(&layer);
    let mut bytes = fs_err::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    fs_err::write(&blob, &bytes).unwrap();

    let (s, err) = build_json(&hello_spec(), &format!("oci:{}", t.path().join("b").display()), &cache);
    assert!(err.contains("was corrupt or changed; rebuilding"), "{err}");
    assert_eq!(s["manifest_digest"], HELLO_DIGEST);
    assert_eq!(s["layers"][1]["cached"], false);
    assert_eq!(s["layers"][0]["cached"], true);
    // The rebuilt blob is intact.
    assert_eq!(sha256_hex(&fs_err::read(&blob).unwrap()), layer);
}

#[test]
fn changing_one_input_rebuilds_only_its_layer() {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("s.yaml");
    fs_err::write(t.path().join("conf"), "v=1\n").unwrap();
    fs_err::write(&spec, "version: 1\nname: x\nlayers:\n  - name: one\n    files: [{path: /one, content: \"1\"}]\n  - name: two\n    files: [{path: /etc/conf, source: conf}]\n").unwrap();
    let cache = t.path().join("c");
    let go = |out: &str| build_json(&spec, &format!("oci:{}", t.path().join(out).display()), &cache).0;
    let a = go("a");
    fs_err::write(t.path().join("conf"), "v=2\n").unwrap();
    let b = go("b");
    assert_eq!(b["layers"][0]["cached"], true);
    assert_eq!(b["layers"][1]["cached"], false);
    assert_eq!(a["layers"][0]["digest"], b["layers"][0]["digest"]);
    assert_ne!(a["layers"][1]["digest"], b["layers"][1]["digest"]);
    // A change back is served from the cache again.
    fs_err::write(t.path().join("conf"), "v=1\n").unwrap();
    let c = go("out-c");
    assert_eq!(c["manifest_digest"], a["manifest_digest"]);
    assert!(c["layers"].as_array().unwrap().iter().all(|l| l["cached"] == true));
}

#[test]
fn layers_written_in_parallel_keep_their_order_and_bytes() {
    let t = tempfile::tempdir().unwrap();
    let text = |n: usize, seed: u64| {
        let mut data = Vec::with_capacity(n + 32);
        let mut x = seed | 1;
        while data.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(format!("{:016x} {}\n", x, x % 97).as_bytes());
        }
        data.truncate(n);
        data
    };
    // The first layer is by far the biggest, so later layers finish first
    // when several are written at once.
    let mut spec = String::from("version: 1\nname: par\nlayers:\n");
    for i in 0..6u64 {
        let size = if i == 0 { 5 << 20 } else { 1000 * i as usize };
        fs_err::write(t.path().join(format!("f{i}")), text(size, i + 1)).unwrap();
        spec.push_str(&format!("  - name: l{i}\n    files: [{{path: /d/f{i}, source: f{i}}}]\n"));
    }
    let spec_path = t.path().join("par.yaml");
    fs_err::write(&spec_path, spec).unwrap();
    let go = |threads: &str, cache: &str, out: &str| -> serde_json::Value {
        let o = run(strata()
            .args(["build", "--json", "--threads", threads])
            .arg(&spec_path)
            .arg("-o")
            .arg(format!("oci:{}", t.path().join(out).display()))
            .arg("--cache")
            .arg(t.path().join(cache)));
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap().to_string()).collect()
    };
    let cached = |v: &serde_json::Value| -> Vec<bool> {
        v["layers"].as_array().unwrap().iter().map(|l| l["cached"].as_bool().unwrap()).collect()
    };
    let want: Vec<String> = (0..6).map(|i| format!("l{i}")).collect();

    let one = go("1", "c1", "o1");
    let many = go("8", "c8", "o8");
    assert_eq!(one["manifest_digest"], many["manifest_digest"]);
    assert_eq!(names(&one), want);
    assert_eq!(names(&many), want);

    // Two layers change: only they are written, between cached ones.
    fs_err::write(t.path().join("f2"), text(3000, 99)).unwrap();
    fs_err::write(t.path().join("f4"), text(4000, 98)).unwrap();
    let many2 = go("8", "c8", "o8b");
    let one2 = go("1", "c1", "o1b");
    assert_eq!(cached(&many2), vec![true, true, false, true, false, true]);
    assert_eq!(names(&many2), want);
    assert_eq!(many2["manifest_digest"], one2["manifest_digest"]);
    assert_ne!(many2["manifest_digest"], many["manifest_digest"]);
}

/// Checks that an OCI layout is whole: every manifest its index names, and
/// every config and layer those manifests name, is present with its digest
/// and size. Returns the tags.
fn assert_layout_whole(dir: &Path) -> Vec<String> {
    let blob = |desc: &serde_json::Value| -> Vec<u8> {
        let d = desc["digest"].as_str().unwrap();
        let p = dir.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        let bytes = fs_err::read(&p).unwrap_or_else(|e| panic!("{}: {d} is named but missing: {e}", dir.display()));
        assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), d, "{}: blob does not hash to its name", p.display());
        assert_eq!(bytes.len() as u64, desc["size"].as_u64().unwrap(), "{}: wrong size", p.display());
        bytes
    };
    let index: serde_json::Value = serde_json::from_slice(&fs_err::read(dir.join("index.json")).unwrap()).unwrap();
    let mut tags = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let manifest: serde_json::Value = serde_json::from_slice(&blob(m)).unwrap();
        blob(&manifest["config"]);
        for l in manifest["layers"].as_array().unwrap() {
            blob(l);
        }
        if let Some(t) = m["annotations"]["org.opencontainers.image.ref.name"].as_str() {
            tags.push(t.to_string());
        }
    }
    tags
}

#[test]
fn a_build_killed_at_any_moment_leaves_a_whole_layout_and_a_sound_cache() {
    let t = tempfile::tempdir().unwrap();
    // The kills below land while the file is read, compressed and written.
    let spec = slow_spec(t.path());
    let out = t.path().join("out");
    let cache = t.path().join("cache");
    // The layout already holds another image, which must survive every kill.
    let o = build(&hello_spec(), &format!("oci:{}:hello", out.display()), &cache);
    assert!(o.status.success(), "{}", stderr(&o));

    let mut killed_while_running = 0;
    for delay_ms in [40u64, 150, 300, 500, 800, 1200, 1700, 2300] {
        let mut child = strata()
            .args(["build", "-q", "--threads", "2"])
            .arg(&spec)
            .arg("-o")
            .arg(format!("oci:{}:big", out.display()))
            .arg("--cache")
            .arg(&cache)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_while_running += 1;
        }
        child.kill().unwrap(); // SIGKILL: no destructor, no cleanup runs
        child.wait().unwrap();
        let tags = assert_layout_whole(&out);
        assert!(tags.contains(&"hello".to_string()), "after a kill at {delay_ms} ms: {tags:?}");
        // Nothing in the cache is stored under a name its bytes do not hash to.
        for e in fs_err::read_dir(cache.join("cas/sha256")).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(
                sha256_hex(&fs_err::read(&p).unwrap()),
                p.file_name().unwrap().to_str().unwrap(),
                "after a kill at {delay_ms} ms: {} is poisoned",
                p.display()
            );
        }
    }
    assert!(killed_while_running >= 3, "only {killed_while_running} kills hit a running build");

    // The interrupted cache and layout finish the job, with the digest a
    // clean build in a fresh cache gives.
    let o = build(&spec, &format!("oci:{}:big", out.display()), &cache);
    assert!(o.status.success(), "{}", stderr(&o));
    let clean = build(&spec, &format!("oci:{}", t.path().join("clean").display()), &t.path().join("fresh-cache"));
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert_eq!(last_line(&stdout(&o)), last_line(&stdout(&clean)));
    let mut tags = assert_layout_whole(&out);
    tags.sort();
    assert_eq!(tags, ["big", "hello"]);
}

#[test]
fn leftovers_of_killed_writers_beside_an_output_are_removed_by_the_next_build() {
    let t = tempfile::tempdir().unwrap();
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let alive = std::process::id();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    let put = |name: &str, dir: bool, backdate: bool| {
        let p = t.path().join(name);
        if dir {
            fs_err::create_dir_all(p.join("blobs/sha256")).unwrap();
            fs_err::write(p.join("blobs/sha256/x"), b"partial").unwrap();
        } else {
            fs_err::write(&p, b"partial archive").unwrap();
        }
        if backdate {
            let f = fs_err::File::open(&p).unwrap();
            f.set_times(std::fs::FileTimes::new().set_modified(long_ago)).unwrap();
        }
    };
    put(&format!(".strata-archive-{dead}-a1b2c3"), false, true); // killed long ago: removed
    put(&format!(".strata-layout-{dead}-d4e5f6"), true, true); // killed long ago: removed
    put(&format!(".strata-archive-{dead}-recent"), false, false); // writer gone, but just touched: kept
    put(&format!(".strata-archive-{alive}-busy"), false, true); // its writer still runs: kept
    put("other-file", false, true); // not ours: kept

    let o = build(&hello_spec(), &format!("oci-archive:{}", t.path().join("hello.tar").display()), &t.path().join("c"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = build(&hello_spec(), &format!("oci:{}", t.path().join("layout").display()), &t.path().join("c"));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut left: Vec<String> =
        fs_err::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    let mut want = vec![
        format!(".strata-archive-{alive}-busy"),
        format!(".strata-archive-{dead}-recent"),
        "c".to_string(),
        "hello.tar".to_string(),
        "layout".to_string(),
        "other-file".to_string(),
    ];
    want.sort();
    assert_eq!(left, want);
}
