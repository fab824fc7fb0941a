//! Minimal re-locking, against local fixture indexes only: a signed
//! loopback Debian archive (tests/debs_support) and a loopback PEP 691
//! package index that the real uv resolves against (tests/wheels_support).
//! An edit moves only what it needs; `--upgrade-package NAME` moves one
//! package; `--upgrade` moves everything; `--offline --mirror DIR` resolves
//! from what `strata fetch --into DIR` carried, and names what is missing.

use crate::common;
use crate::debs_support;
use crate::wheels_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{run, stderr, stdout, strata, unshare_net};

// ---------------------------------------------------------------- Debian

fn deb_archive(server: &debs_support::Server, key: &debs_support::TestKey, newer: bool) -> String {
    use debs_support::pkg;
    let mut pkgs = vec![
        pkg("app", "1.0").field("Depends: libfoo (>= 1.0), awk"),
        pkg("libfoo", "1.2"),
        pkg("tool", "1.0").field("Depends: libfoo"),
        pkg("mawk", "1.3.4").field("Provides: awk").field("Priority: required"),
        pkg("gawk", "5.2").field("Provides: awk").field("Priority: optional"),
    ];
    if newer {
        // A later archive state: newer app and libfoo, and gawk would now win on priority.
        pkgs.push(pkg("app", "1.1").field("Depends: libfoo (>= 1.3), awk"));
        pkgs.push(pkg("libfoo", "1.3"));
        pkgs[4] = pkg("gawk", "5.2").field("Provides: awk").field("Priority: required");
        pkgs[3] = pkg("mawk", "1.3.4").field("Provides: awk").field("Priority: optional");
    }
    debs_support::publish(server, key, &pkgs)
}

fn deb_spec(dir: &Path, archive: &str, packages: &[&str]) -> PathBuf {
    let p = dir.join("spec.yaml");
    fs_err::write(
        &p,
        format!(
            "version: 1\nname: t\nlayers:\n  - name: os\n    debs:\n      keyring: archive-key.asc\n      archives: [{{url: \"{archive}\", suites: [stable]}}]\n      packages: [{}]\nconfig:\n  env: {{A: \"1\"}}\n",
            packages.join(", ")
        ),
    )
    .unwrap();
    p
}

fn strata_at(dir: &Path, cache: &str, args: &[&str]) -> Output {
    run(strata().current_dir(dir).arg("--cache").arg(dir.join(cache)).args(args))
}

fn deb_versions(dir: &Path) -> BTreeMap<String, String> {
    let lock: toml::Table = toml::from_str(&fs_err::read_to_string(dir.join("spec.lock")).unwrap()).unwrap();
    lock["debs"]["os"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["version"].as_str().unwrap().to_string()))
        .collect()
}

fn pins(o: &Output) -> Vec<String> {
    assert!(o.status.success(), "{}", stderr(o));
    let v: serde_json::Value = serde_json::from_str(&stdout(o)).unwrap();
    v["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["package"].as_str().unwrap(),
                p["from"].as_str().unwrap_or("-"),
                p["to"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn debian_relock_keeps_pins_and_moves_only_what_is_asked() {
    let key = debs_support::TestKey::new(21);
    let server = debs_support::Server::empty();
    let project = debs_support::Project::new(&key);
    let dir = project.dir.path();
    let url = deb_archive(&server, &key, false);
    deb_spec(dir, &url, &["app"]);
    let o = strata_at(dir, "cache", &["lock", "spec.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(deb_versions(dir), map(&[("app", "1.0"), ("libfoo", "1.2"), ("mawk", "1.3.4")]));

    // The archive moves on; the spec gains a package.
    deb_archive(&server, &key, true);
    deb_spec(dir, &url, &["app", "tool"]);
    let o = strata_at(dir, "cache", &["lock", "--check", "spec.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("layer `os`: Debian packages added: tool\n"), "{}", stderr(&o));
    // Adding tool adds tool; app, libfoo and the awk provider stay although newer ones exist.
    let o = strata_at(dir, "cache", &["lock", "--json", "spec.yaml"]);
    assert_eq!(pins(&o), ["tool - 1.0"]);
    assert_eq!(deb_versions(dir), map(&[("app", "1.0"), ("libfoo", "1.2"), ("mawk", "1.3.4"), ("tool", "1.0")]));
    assert_eq!(strata_at(dir, "cache", &["lock", "--check", "spec.yaml"]).status.code(), Some(0));

    // An edit that chooses nothing (config) resolves nothing, even with the archive gone.
    fs_err::write(
        dir.join("spec.yaml"),
        fs_err::read_to_string(dir.join("spec.yaml")).unwrap().replace("A: \"1\"", "A: \"2\""),
    )
    .unwrap();
    let o = run(strata().current_dir(dir).args(["--cache", "other-cache", "lock", "--offline", "--json", "spec.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "unchanged");
    assert_eq!(v["resolved"], serde_json::json!([]));

    // One package moves on request.
    let o = strata_at(dir, "cache", &["lock", "--json", "spec.yaml", "--upgrade-package", "libfoo"]);
    assert_eq!(pins(&o), ["libfoo 1.2 1.3"]);
    // Everything moves with --upgrade (gawk now wins the awk choice on priority).
    let o = strata_at(dir, "cache", &["lock", "--json", "spec.yaml", "--upgrade"]);
    assert_eq!(pins(&o), ["app 1.0 1.1", "gawk - 5.2", "mawk 1.3.4 -"]);
    assert_eq!(deb_versions(dir), map(&[("app", "1.1"), ("gawk", "5.2"), ("libfoo", "1.3"), ("tool", "1.0")]));
    // A name the lock does not know is an error with a suggestion.
    let o = strata_at(dir, "cache", &["lock", "spec.yaml", "--upgrade-package", "libfo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--upgrade-package libfo: no package of that name")
            && stderr(&o).contains("did you mean `libfoo`?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn debian_offline_relock_from_a_mirror() {
    let key = debs_support::TestKey::new(22);
    let server = debs_support::Server::empty();
    let project = debs_support::Project::new(&key);
    let dir = project.dir.path();
    let url = deb_archive(&server, &key, false);
    deb_spec(dir, &url, &["app"]);
    assert!(strata_at(dir, "cache", &["lock", "spec.yaml"]).status.success());
    // The mirror carries the .debs and the archive indexes.
    let o = strata_at(dir, "cache", &["fetch", "--json", "spec.yaml", "--into", "mirror"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["artifacts"], 3);
    assert_eq!(v["indexes"], 2, "{v}");
    let index = fs_err::read_to_string(dir.join("mirror/index.json")).unwrap();
    assert!(index.contains("/debian/dists/stable/InRelease") && index.contains("Packages.xz"), "{index}");

    // Air-gapped: a fresh cache, no network at all, the mirror answers.
    deb_spec(dir, &url, &["app", "tool"]);
    let args = ["--cache", "air-cache", "lock", "--json", "spec.yaml", "--offline", "--mirror", "mirror"];
    let o = match unshare_net(&args) {
        Some(mut c) => run(c.current_dir(dir)),
        None => run(strata().current_dir(dir).args(args)),
    };
    assert_eq!(pins(&o), ["tool - 1.0"]);
    assert_eq!(deb_versions(dir), map(&[("app", "1.0"), ("libfoo", "1.2"), ("mawk", "1.3.4"), ("tool", "1.0")]));

    // Without the indexes, the error names what is missing.
    deb_spec(dir, &url, &["app", "tool", "gawk"]);
    fs_err::create_dir_all(dir.join("empty")).unwrap();
    let o = run(strata().current_dir(dir).args([
        "--cache",
        "cold",
        "-q",
        "lock",
        "spec.yaml",
        "--offline",
        "--mirror",
        "empty",
    ]));
    assert_eq!(o.status.code(), Some(1));
    let err = debs_support::scrub(&o, &project);
    let err: String = err.lines().map(|l| l.split(" (the lock recorded").next().unwrap().to_string() + "\n").collect();
    // A file snapshot: docs/lock.md shows it.
    insta::assert_snapshot!("offline_index_missing", err);
}

/// Debian's `docker-registry` (open, storage in `dir`) on a free loopback
/// port, stopped on drop; `None` when it is not installed. Credentials and
/// the rest of the registry mirror are tested in registry-tests/.
struct LocalRegistry {
    child: std::process::Child,
    host: String,
}

impl LocalRegistry {
    fn start(dir: &Path) -> Option<LocalRegistry> {
        let bin = common::tool("docker-registry").or_else(|| {
            let p = PathBuf::from("/usr/bin/docker-registry");
            p.is_file().then_some(p)
        });
        let Some(bin) = bin else {
            common::require_or_skip("docker-registry");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = dir.join("registry.yml");
        fs_err::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: strata-test\n",
                dir.join("registry-data").display()
            ),
        )
        .unwrap();
        let log = fs_err::File::create(dir.join("registry.log")).unwrap().into_parts().0;
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let reg = LocalRegistry { child, host: format!("127.0.0.1:{port}") };
        for _ in 0..150 {
            if std::net::TcpStream::connect(&reg.host).is_ok() {
                return Some(reg);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {}", reg.host);
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn debian_offline_relock_from_a_registry_mirror() {
    let key = debs_support::TestKey::new(23);
    let server = debs_support::Server::empty();
    let project = debs_support::Project::new(&key);
    let dir = project.dir.path();
    let Some(reg) = LocalRegistry::start(dir) else { return };
    let url = deb_archive(&server, &key, false);
    deb_spec(dir, &url, &["app"]);
    assert!(strata_at(dir, "cache", &["lock", "spec.yaml"]).status.success());
    let mirror = format!("docker://{}/strata/mirror", reg.host);
    let o = strata_at(dir, "cache", &["fetch", "--json", "spec.yaml", "--into", &mirror]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((v["artifacts"].as_u64(), v["indexes"].as_u64()), (Some(3), Some(2)), "{v}");

    // A fresh cache, the archive not asked: the registry mirror answers.
    let before = server.requests();
    deb_spec(dir, &url, &["app", "tool"]);
    let o = strata_at(dir, "air-cache", &["lock", "--json", "spec.yaml", "--offline", "--mirror", &mirror]);
    assert_eq!(pins(&o), ["tool - 1.0"]);
    assert_eq!(deb_versions(dir), map(&[("app", "1.0"), ("libfoo", "1.2"), ("mawk", "1.3.4"), ("tool", "1.0")]));
    assert_eq!(server.requests(), before, "the offline lock asked the archive");
    // The copy in the cache that the lock resolved from.
    let copy = dir.join("air-cache/mirrors").join(reg.host.replace(':', "_")).join("strata/mirror/index.json");
    let index = fs_err::read_to_string(&copy).unwrap();
    assert!(index.contains("/debian/dists/stable/InRelease") && index.contains("Packages.xz"), "{index}");
}

// ---------------------------------------------------------------- Python

use wheels_support::{have_tool, wheel_with_deps, SimpleIndex};

fn py_index() -> SimpleIndex {
    let index = SimpleIndex::start();
    for (dist, version, deps, at) in [
        ("alpha", "1.0", vec![], "2026-01-01T00:00:00Z"),
        ("beta", "1.0", vec!["alpha>=1.0"], "2026-01-01T00:00:00Z"),
        ("gamma", "1.0", vec![], "2026-01-01T00:00:00Z"),
        ("delta", "1.0", vec![], "2026-01-01T00:00:00Z"),
        ("alpha", "1.1", vec![], "2026-06-01T00:00:00Z"),
        ("beta", "1.1", vec!["alpha>=1.1"], "2026-06-01T00:00:00Z"),
        ("gamma", "1.1", vec![], "2026-06-01T00:00:00Z"),
    ] {
        index.publish(&wheel_with_deps(dist, version, &deps), at);
    }
    index
}

fn py_spec(dir: &Path, name: &str, index: &SimpleIndex, reqs: &[&str], exclude_newer: &str) {
    fs_err::write(
        dir.join(format!("{name}.yaml")),
        format!(
            "version: 1\nname: {name}\nlayers:\n  - name: python\n    python:\n      lock: pylock.{name}.toml\n      index_url: {}\n      requirements: [{}]\n      exclude_newer: {exclude_newer}\nconfig:\n  env: {{A: \"1\"}}\n",
            index.url(),
            reqs.join(", ")
        ),
    )
    .unwrap();
}

/// Whether uv can run: `$STRATA_UV` (scripts/test.sh installs it there when
/// it is not on PATH) or `uv`.
fn uv_available() -> bool {
    let uv = std::env::var("STRATA_UV").unwrap_or_else(|_| "uv".into());
    have_tool(&uv, &["--version"])
}

/// strata with its own cache and uv's cache in `dir`.
fn py_strata(dir: &Path, uv_cache: &str) -> Command {
    let mut c = strata();
    c.current_dir(dir).env("UV_CACHE_DIR", dir.join(uv_cache)).arg("--cache").arg(dir.join("cache"));
    c
}

/// The `[[packages]]` blocks of a pylock by name.
fn blocks(path: &Path) -> BTreeMap<String, String> {
    let text = fs_err::read_to_string(path).unwrap();
    text.split("\n[[packages]]\n")
        .skip(1)
        .map(|b| {
            (
                b.lines().next().unwrap().trim_start_matches("name = ").trim_matches('"').to_string(),
                b.trim_end().to_string(),
            )
        })
        .collect()
}

fn versions(path: &Path) -> BTreeMap<String, String> {
    blocks(path)
        .into_iter()
        .map(|(n, b)| (n, b.lines().nth(1).unwrap().trim_start_matches("version = ").trim_matches('"').to_string()))
        .collect()
}

#[test]
fn python_relock_keeps_pins_and_moves_only_what_is_asked() {
    if !uv_available() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let index = py_index();
    let pylock = dir.join("pylock.app.toml");
    py_spec(dir, "app", &index, &["beta"], "2026-03-01T00:00:00Z");
    let o = run(py_strata(dir, "uv").args(["lock", "app.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(versions(&pylock), map(&[("alpha", "1.0"), ("beta", "1.0")]));
    let first = blocks(&pylock);

    // A config edit: current; relocking does not even need uv.
    fs_err::write(
        dir.join("app.yaml"),
        fs_err::read_to_string(dir.join("app.yaml")).unwrap().replace("A: \"1\"", "A: \"2\""),
    )
    .unwrap();
    assert_eq!(run(py_strata(dir, "uv").args(["lock", "--check", "app.yaml"])).status.code(), Some(0));
    let o = run(py_strata(dir, "uv").env("STRATA_UV", dir.join("no-uv")).args(["lock", "--json", "app.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["resolved"], serde_json::json!([]));

    // Newer releases allowed and one requirement added: only gamma is new.
    py_spec(dir, "app", &index, &["beta", "gamma"], "2026-08-01T00:00:00Z");
    let o = run(py_strata(dir, "uv").args(["lock", "--check", "app.yaml"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("layer `python`: requirements added: gamma\n"), "{err}");
    assert!(
        err.contains("layer `python`: exclude_newer changed: 2026-03-01T00:00:00Z → 2026-08-01T00:00:00Z\n"),
        "{err}"
    );
    assert!(err.contains("layer `python`: the pylock has nothing for `gamma`\n"), "{err}");
    let o = run(py_strata(dir, "uv").args(["lock", "--json", "app.yaml"]));
    assert_eq!(pins(&o), ["gamma - 1.1"]);
    let second = blocks(&pylock);
    assert_eq!(second["alpha"], first["alpha"], "kept pins are kept byte for byte");
    assert_eq!(second["beta"], first["beta"]);
    assert_eq!(run(py_strata(dir, "uv").args(["lock", "--check", "app.yaml"])).status.code(), Some(0));

    // One package on request, then everything.
    let o = run(py_strata(dir, "uv").args(["lock", "--json", "app.yaml", "--upgrade-package", "alpha"]));
    assert_eq!(pins(&o), ["alpha 1.0 1.1"]);
    let o = run(py_strata(dir, "uv").args(["lock", "--json", "app.yaml", "--upgrade"]));
    assert_eq!(pins(&o), ["beta 1.0 1.1"]);
    assert_eq!(versions(&pylock), map(&[("alpha", "1.1"), ("beta", "1.1"), ("gamma", "1.1")]));
    assert_eq!(run(py_strata(dir, "uv").args(["lock", "--check", "app.yaml"])).status.code(), Some(0));
}

#[test]
fn python_offline_relock_from_a_mirror() {
    if !uv_available() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let index = py_index();
    let pylock = dir.join("pylock.app.toml");
    // The connected side locks two specs and carries one mirror.
    py_spec(dir, "app", &index, &["beta"], "2026-03-01T00:00:00Z");
    py_spec(dir, "other", &index, &["gamma"], "2026-03-01T00:00:00Z");
    for spec in ["app.yaml", "other.yaml"] {
        let o = run(py_strata(dir, "uv").args(["lock", spec]));
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(py_strata(dir, "uv").args(["fetch", spec, "--into", "mirror"]));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let before = blocks(&pylock);
    let hits = index.requests();

    // Air-gapped, with a cold cache: gamma (in the mirror) can be added...
    py_spec(dir, "app", &index, &["beta", "gamma"], "2026-03-01T00:00:00Z");
    let offline = |uv_cache: &str| -> Output {
        let args = ["--cache", "air-cache", "lock", "--json", "app.yaml", "--offline", "--mirror", "mirror"];
        match unshare_net(&args) {
            Some(mut c) => run(c.current_dir(dir).env("UV_CACHE_DIR", dir.join(uv_cache))),
            None => run(strata().current_dir(dir).env("UV_CACHE_DIR", dir.join(uv_cache)).args(args)),
        }
    };
    let o = offline("uv-air");
    assert_eq!(pins(&o), ["gamma - 1.0"]);
    let after = blocks(&pylock);
    assert_eq!(after["alpha"], before["alpha"]);
    assert_eq!(after["beta"], before["beta"]);
    // ... and is pinned at the URL it came from, as an online lock would.
    let gamma_url = format!("{}/files/gamma-1.0-py3-none-any.whl", index.base);
    assert!(after["gamma"].contains(&format!("url = \"{gamma_url}\", size = ")), "{}", after["gamma"]);
    assert!(!after["gamma"].contains("file://"), "{}", after["gamma"]);
    assert_eq!(index.requests(), hits, "nothing was asked of the index");
    assert_eq!(run(py_strata(dir, "uv").args(["lock", "--check", "app.yaml"])).status.code(), Some(0));

    // ... but delta (never fetched) cannot, and the error says so.
    py_spec(dir, "app", &index, &["beta", "gamma", "delta"], "2026-03-01T00:00:00Z");
    let o = offline("uv-air2");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("layer `python`: uv pip compile failed") && err.contains("delta"), "{err}");
    assert!(err.contains("hint: offline, uv can choose only from the wheels of the mirrors"), "{err}");
    assert_eq!(blocks(&pylock), after, "a failed relock changes nothing");
}
