//! `platforms:`: one spec, an OCI image index with a full image per
//! platform, judged by skopeo; `--platform` for one of them; locks per
//! platform. Offline: the Debian archive is made here.

use crate::debs_support;

use std::path::Path;
use std::process::{Command, Output};

use debs_support::{file, pkg, publish_archs, Pkg, Project, Server, TestKey};

/// The index of [`SPEC`], the same on any machine, thread count and cache state.
const GOLDEN_INDEX: &str = "sha256:61134a077a3f39a9aaa49dff99692de972f610dd90877d744e3ac2cd5c14b8d2";

const SPEC: &str = "version: 1\nname: multi\ntag: \"1.0\"\nplatforms: [linux/amd64, linux/arm64]\nepoch: 1700000000\nlayers:\n  - name: base\n    dirs: [{path: /tmp, mode: \"1777\"}]\n    files:\n      - {path: /etc/motd, content: \"hello from every platform\\n\"}\nconfig:\n  cmd: [/bin/sh]\n";

fn strata(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--cache")
        .arg(dir.join("cache"))
        .arg("--quiet")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().lines().last().unwrap_or_default().to_string()
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found && std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{tool} is required (STRATA_REQUIRE_TOOLS=1)");
    }
    found
}

fn skopeo(args: &[&str]) -> String {
    let o = Command::new("skopeo").args(args).output().unwrap();
    assert!(o.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn platforms_give_an_index_of_full_images_reproducibly() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs_err::write(d.join("spec.yaml"), SPEC).unwrap();
    let a = ok(&strata(d, &["build", "spec.yaml", "--threads", "1", "-o", "oci:a"]));
    let b = ok(&strata(d, &["build", "spec.yaml", "--threads", "4", "--no-layer-cache", "-o", "oci:b"]));
    assert_eq!(a, b, "the index digest depends on threads or the cache");
    assert_eq!(a, GOLDEN_INDEX);

    let idx: serde_json::Value = serde_json::from_slice(&fs_err::read(d.join("a/index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1, "{idx}");
    assert_eq!(idx["manifests"][0]["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1.0");

    // Each platform alone is that child of the index.
    let arm = ok(&strata(d, &["build", "spec.yaml", "--platform", "linux/arm64", "-o", "oci:arm"]));
    let amd = ok(&strata(d, &["build", "spec.yaml", "--platform", "linux/amd64", "-o", "oci:amd"]));
    assert_ne!(arm, amd);

    // A docker-archive holds one image: --platform chooses it.
    let o = strata(d, &["build", "spec.yaml", "-o", "docker-archive:x.tar"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("a docker-archive holds one image") && e.contains("--platform"), "{e}");
    ok(&strata(d, &["build", "spec.yaml", "--platform", "linux/arm64", "-o", "docker-archive:x.tar"]));
    let o = strata(d, &["build", "spec.yaml", "--platform", "linux/riscv64", "-o", "oci:r"]);
    assert!(!o.status.success());
    ok(&strata(d, &["build", "spec.yaml", "-o", "oci-archive:a.tar"]));

    // inspect, diff and audit pick a platform of the index; audit rebuilds each.
    let o = strata(d, &["inspect", "--platform", "linux/arm64", "oci:a:1.0"]);
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(shown.contains(&format!("manifest    {arm}")) && shown.contains("platform    linux/arm64"), "{shown}");
    let o = strata(d, &["diff", "--platform", "linux/arm64", "oci:a:1.0", "oci:arm"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = strata(d, &["audit", "spec.yaml", "oci:a:1.0"]);
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{said}");
    assert!(said.contains(&format!("linux/amd64: identical: spec.yaml rebuilds to {amd}")), "{said}");
    assert!(said.contains(&format!("linux/arm64: identical: spec.yaml rebuilds to {arm}")), "{said}");
    let o = strata(d, &["audit", "spec.yaml", "oci:amd"]);
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "an amd64-only image passed the audit of both platforms: {said}");
    assert!(
        said.contains("linux/arm64: first difference: config /architecture: rebuilt \"arm64\" vs published \"amd64\""),
        "{said}"
    );

    if !have("skopeo") {
        return;
    }
    let layout = format!("oci:{}:1.0", d.join("a").display());
    let raw: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", "--raw", &layout])).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let children: Vec<(String, String)> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (m["platform"]["architecture"].as_str().unwrap().to_string(), m["digest"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(children, [("amd64".to_string(), amd.clone()), ("arm64".to_string(), arm.clone())]);
    for arch in ["amd64", "arm64"] {
        let config: serde_json::Value =
            serde_json::from_str(&skopeo(&["--override-arch", arch, "inspect", "--config", &layout])).unwrap();
        assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some(arch), Some("linux")));
    }
    // skopeo copies the whole index, digests unchanged.
    let copy = format!("oci:{}:1.0", d.join("copy").display());
    skopeo(&["copy", "--all", "--preserve-digests", &layout, &copy]);
    let raw2: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", "--raw", &copy])).unwrap();
    assert_eq!(raw, raw2);
    let archive = format!("oci-archive:{}:1.0", d.join("a.tar").display());
    let raw3: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", "--raw", &archive])).unwrap();
    assert_eq!(raw, raw3);
    let docker: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", d.join("x.tar").display()),
    ]))
    .unwrap();
    assert_eq!(docker["architecture"], "arm64");
}

fn arm64(p: Pkg) -> Pkg {
    Pkg { arch: "arm64".into(), ..p }
}

#[test]
fn debs_are_locked_per_platform_from_one_spec() {
    let key = TestKey::new(11);
    let server = Server::empty();
    let pkgs = vec![
        pkg("app", "1.0").with(file("./usr/share/app/built-for", b"amd64\n")),
        arm64(pkg("app", "1.0")).with(file("./usr/share/app/built-for", b"arm64\n")),
    ];
    let url = publish_archs(&server, &key, &pkgs, &["amd64", "arm64"]);
    let project = Project::new(&key);
    let text = format!(
        "version: 1\nname: t\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n  - name: os\n    debs:\n      keyring: archive-key.asc\n      archives: [{{url: \"{url}\", suites: [stable]}}]\n      packages: [app]\n"
    );
    fs_err::write(project.path("spec.yaml"), text).unwrap();
    ok(&project.strata(&["lock", "spec.yaml"]));
    let amd = fs_err::read_to_string(project.path("spec.linux-amd64.lock")).unwrap();
    let arm = fs_err::read_to_string(project.path("spec.linux-arm64.lock")).unwrap();
    assert!(amd.contains("platform = \"linux/amd64\"") && amd.contains("app_1.0_amd64.deb"), "{amd}");
    assert!(arm.contains("platform = \"linux/arm64\"") && arm.contains("app_1.0_arm64.deb"), "{arm}");
    assert!(!project.path("spec.lock").exists());
    ok(&project.strata(&["lock", "--check", "spec.yaml"]));
    ok(&project.strata(&["build", "spec.yaml", "-o", "oci:out"]));
    for arch in ["amd64", "arm64"] {
        let files = debs_support::layer_files_for(&project.path("out"), &format!("linux/{arch}"));
        assert_eq!(files["usr/share/app/built-for"].2, format!("{arch}\n").into_bytes(), "{arch}");
    }
}

// ---------------------------------------------------------------- Python requirements

use crate::wheels_support::{have_tool, wheel_with_deps, Member, SimpleIndex, Wheel};

/// A wheel of `fast` for one machine that says which one it was built for.
fn fast(version: &str, machine: &str) -> Wheel {
    let mut w = Wheel::new("fast", version).with(Member::file("fast/__init__.py", "", 0o644)).with(Member::file(
        "fast/built_for.txt",
        format!("{machine}\n"),
        0o644,
    ));
    w.tag = format!("cp311-cp311-manylinux_2_17_{machine}");
    w.purelib = false;
    w
}

/// The wheel files a pylock pins, by file name.
fn pinned_wheels(path: &Path) -> Vec<String> {
    let text = fs_err::read_to_string(path).unwrap();
    let lock: toml::Table = toml::from_str(&text).unwrap();
    let mut out: Vec<String> = lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["wheels"].as_array().unwrap().iter())
        .map(|w| w["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn py_multi_spec(dir: &Path, index: &SimpleIndex, reqs: &[&str], exclude_newer: &str) {
    fs_err::write(
        dir.join("spec.yaml"),
        format!(
            "version: 1\nname: app\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n  - name: python\n    python:\n      lock: pylock.app.toml\n      index_url: {}\n      requirements: [{}]\n      exclude_newer: {exclude_newer}\n",
            index.url(),
            reqs.join(", ")
        ),
    )
    .unwrap();
}

fn strata_uv(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(args)
        .current_dir(dir)
        .env("UV_CACHE_DIR", dir.join("uv"))
        .output()
        .unwrap()
}

#[test]
fn python_requirements_are_resolved_per_platform() {
    let uv = std::env::var("STRATA_UV").unwrap_or_else(|_| "uv".into());
    if !have_tool(&uv, &["--version"]) {
        return;
    }
    let index = SimpleIndex::start();
    let early = "2026-01-01T00:00:00Z";
    index.publish(&fast("1.0", "x86_64"), early);
    index.publish(&fast("1.0", "aarch64"), early);
    // A newer release with no aarch64 wheel: the platforms agree on 1.0.
    index.publish(&fast("1.1", "x86_64"), early);
    index.publish(&wheel_with_deps("pure", "1.0", &["fast>=1.0"]), early);
    index.publish(&wheel_with_deps("gamma", "1.0", &[]), early);
    let mut xonly = wheel_with_deps("xonly", "1.0", &[]);
    xonly.tag = "cp311-cp311-manylinux_2_17_x86_64".into();
    xonly.purelib = false;
    index.publish(&xonly, early);

    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    py_multi_spec(d, &index, &["pure"], "2026-03-01T00:00:00Z");
    let o = strata_uv(d, &["lock", "spec.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (amd, arm) = (d.join("pylock.app-linux-amd64.toml"), d.join("pylock.app-linux-arm64.toml"));
    assert_eq!(
        pinned_wheels(&amd),
        ["fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "pure-1.0-py3-none-any.whl"],
        "{}",
        fs_err::read_to_string(&amd).unwrap()
    );
    assert_eq!(pinned_wheels(&arm), ["fast-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", "pure-1.0-py3-none-any.whl"]);
    assert!(!d.join("pylock.app.toml").exists());
    let amd_lock = fs_err::read_to_string(d.join("spec.linux-amd64.lock")).unwrap();
    let arm_lock = fs_err::read_to_string(d.join("spec.linux-arm64.lock")).unwrap();
    assert!(amd_lock.contains("pylock = \"pylock.app-linux-amd64.toml\"") && amd_lock.contains("x86_64"), "{amd_lock}");
    assert!(
        arm_lock.contains("pylock = \"pylock.app-linux-arm64.toml\"") && arm_lock.contains("aarch64"),
        "{arm_lock}"
    );

    // Stable: nothing changed, nothing moves (and uv is not even needed).
    let files = |names: &[&str]| names.iter().map(|n| fs_err::read(d.join(n)).unwrap()).collect::<Vec<_>>();
    let all = [
        "spec.linux-amd64.lock",
        "spec.linux-arm64.lock",
        "pylock.app-linux-amd64.toml",
        "pylock.app-linux-arm64.toml",
    ];
    let before = files(&all);
    let o = strata_uv(d, &["lock", "--json", "spec.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!((v["status"].as_str(), v["resolved"].as_array().map(Vec::len)), (Some("unchanged"), Some(0)), "{v}");
    }
    assert_eq!(files(&all), before);
    let o = strata_uv(d, &["lock", "--check", "spec.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));

    // Each platform's image gets its own wheel.
    let o = strata_uv(d, &["--quiet", "build", "spec.yaml", "-o", "oci:out"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let files = debs_support::layer_files_for(&d.join("out"), &format!("linux/{arch}"));
        let (_, (_, _, data)) =
            files.iter().find(|(p, _)| p.ends_with("/fast/built_for.txt")).expect("fast is installed");
        assert_eq!(String::from_utf8_lossy(data), format!("{machine}\n"), "{arch}");
        assert!(files.keys().any(|p| p.ends_with("/pure/__init__.py")), "{arch}");
    }

    // A requirement added: --check names it for every platform, offline.
    py_multi_spec(d, &index, &["pure", "gamma"], "2026-03-01T00:00:00Z");
    let o = strata_uv(d, &["lock", "--check", "spec.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for lock in ["spec.linux-amd64.lock", "spec.linux-arm64.lock"] {
        assert!(err.contains(&format!("{lock} is stale:\n  layer `python`: requirements added: gamma\n")), "{err}");
    }
    let o = strata_uv(d, &["lock", "spec.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(pinned_wheels(&arm).contains(&"gamma-1.0-py3-none-any.whl".to_string()));
    assert!(pinned_wheels(&amd).contains(&"fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl".to_string()));
    assert_eq!(strata_uv(d, &["lock", "--check", "spec.yaml"]).status.code(), Some(0));

    // Offline, from what `strata fetch` carried for both platforms: gamma removed again.
    let o = strata_uv(d, &["--quiet", "fetch", "--json", "spec.yaml", "--into", "mirror"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["artifacts"], 4, "fast for each machine, pure and gamma once: {v}");
    let hits = index.requests();
    py_multi_spec(d, &index, &["pure"], "2026-03-01T00:00:00Z");
    let o = strata_uv(d, &["lock", "--json", "spec.yaml", "--offline", "--mirror", "mirror"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(index.requests(), hits, "nothing was asked of the index");
    assert_eq!(pinned_wheels(&arm), ["fast-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", "pure-1.0-py3-none-any.whl"]);
    assert_eq!(pinned_wheels(&amd), ["fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "pure-1.0-py3-none-any.whl"]);
    assert_eq!(strata_uv(d, &["lock", "--check", "spec.yaml"]).status.code(), Some(0));

    // A release for both machines: kept out by the relock, taken by --upgrade-package.
    index.publish(&fast("1.2", "x86_64"), "2026-05-01T00:00:00Z");
    index.publish(&fast("1.2", "aarch64"), "2026-05-01T00:00:00Z");
    py_multi_spec(d, &index, &["pure", "gamma"], "2026-06-01T00:00:00Z");
    let o = strata_uv(d, &["lock", "spec.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(pinned_wheels(&arm).contains(&"fast-1.0-cp311-cp311-manylinux_2_17_aarch64.whl".to_string()));
    let o = strata_uv(d, &["lock", "--json", "spec.yaml", "--upgrade-package", "fast"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let moved: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["pins"].clone())
        .collect();
    assert_eq!(moved.len(), 2);
    for pins in &moved {
        assert_eq!(
            pins,
            &serde_json::json!([{"section": "python", "layer": "python", "package": "fast", "from": "1.0", "to": "1.2"}])
        );
    }
    assert!(pinned_wheels(&amd).contains(&"fast-1.2-cp311-cp311-manylinux_2_17_x86_64.whl".to_string()));
    assert!(pinned_wheels(&arm).contains(&"fast-1.2-cp311-cp311-manylinux_2_17_aarch64.whl".to_string()));

    // A package without an aarch64 wheel: a clear error, and nothing written.
    let before = files(&all);
    py_multi_spec(d, &index, &["pure", "gamma", "xonly"], "2026-06-01T00:00:00Z");
    let o = strata_uv(d, &["lock", "spec.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains(
            "error: layer `python`: linux/arm64: package `xonly` has no wheel for CPython 3.11 manylinux_2_28 aarch64"
        ),
        "{err}"
    );
    assert_eq!(files(&all), before, "a failed lock changes nothing");
    // Required on x86-64 only, by a marker: each platform evaluates it.
    py_multi_spec(d, &index, &["pure", "gamma", "\"xonly; platform_machine == 'x86_64'\""], "2026-06-01T00:00:00Z");
    let o = strata_uv(d, &["lock", "spec.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(pinned_wheels(&amd).contains(&"xonly-1.0-cp311-cp311-manylinux_2_17_x86_64.whl".to_string()));
    assert!(!pinned_wheels(&arm).iter().any(|w| w.starts_with("xonly")));
    assert_eq!(strata_uv(d, &["lock", "--check", "spec.yaml"]).status.code(), Some(0));
}
