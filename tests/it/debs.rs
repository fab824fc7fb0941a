//! The `debs:` source end to end, without internet: packages built here,
//! served from a loopback archive signed by a key generated here.

use crate::debs_support;

use debs_support::*;

fn archive_packages() -> Vec<Pkg> {
    vec![
        pkg("app", "1.0")
            .field("Depends: libfoo (>= 1.0), awk, mail-transport-agent | exim-lite, cyc-a, docs-pkg")
            .with(exe("./bin/app", b"#!/bin/sh\necho app\n"))
            .with(file("./usr/share/doc/common/NOTICE", b"same\n"))
            .with(Member::Dir("./lib64/"))
            .with(link("./lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
            .comp(Comp::Xz),
        pkg("libfoo", "0.9").comp(Comp::Zst),
        pkg("libfoo", "1.2")
            .with(file("./lib/x86_64-linux-gnu/libfoo.so.1.2.0", &tiny_so("libfoo.so.1")))
            .with(link("./lib/x86_64-linux-gnu/libfoo.so.1", "libfoo.so.1.2.0"))
            .with(file("./lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", &tiny_so("ld-linux-x86-64.so.2")))
            .with(file(
                "./etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                b"/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
            ))
            .with(file("./usr/share/doc/common/NOTICE", b"same\n"))
            .comp(Comp::Zst),
        pkg("gawk", "5.2").field("Provides: awk").field("Priority: optional").comp(Comp::Gz),
        pkg("mawk", "1.3.4")
            .field("Provides: awk")
            .field("Priority: required")
            .with(exe("./usr/bin/mawk", b"mawk"))
            .comp(Comp::Gz),
        pkg("exim-lite", "4.0").comp(Comp::Gz),
        pkg("cyc-a", "1").field("Depends: cyc-b").comp(Comp::Gz),
        pkg("cyc-b", "1").field("Pre-Depends: cyc-a (= 1)").comp(Comp::Gz),
        pkg("docs-pkg", "1").comp(Comp::Gz),
        pkg("python3.11-minimal", "3.11.2-6").with(exe("./usr/bin/python3.11", b"not really python")).comp(Comp::Xz),
        pkg("ca-certificates", "20250419")
            .field("Depends: openssl")
            .with(file(
                "./usr/share/ca-certificates/mozilla/B.crt",
                b"-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----",
            ))
            .with(file(
                "./usr/share/ca-certificates/mozilla/A.crt",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ))
            .comp(Comp::Xz),
    ]
}

const BODY: &str = "      packages: [app, python3.11-minimal, ca-certificates]\n      exclude: [docs-pkg, openssl]\n";

fn locked_project() -> (Server, Project, std::path::PathBuf) {
    let key = TestKey::new(1);
    let server = Server::empty();
    let url = publish(&server, &key, &archive_packages());
    let project = Project::new(&key);
    let spec = project.spec(&url, BODY);
    let out = project.strata(&["lock", "spec.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (server, project, spec)
}

#[test]
fn lock_resolves_alternatives_virtuals_versions_excludes_and_cycles() {
    let (_server, project, _) = locked_project();
    let lock = fs_err::read_to_string(project.path("spec.lock")).unwrap();
    let names: Vec<String> = lock
        .lines()
        .filter(|l| l.starts_with("name = ") || l.starts_with("version = \""))
        .map(|l| l.split('"').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "app",
            "1.0",
            "ca-certificates",
            "20250419",
            "cyc-a",
            "1",
            "cyc-b",
            "1",
            "exim-lite",
            "4.0",
            "libfoo",
            "1.2",
            "mawk",
            "1.3.4",
            "python3.11-minimal",
            "3.11.2-6"
        ]
    );
    assert!(lock.contains("excluded: docs-pkg (needed by app 1.0)"), "{lock}");
    assert!(lock.contains("provider: mawk for `awk`"), "{lock}");
    assert!(lock.contains("sha256 = \""), "{lock}");
    // Locking again against the same archive state gives the same bytes.
    let again = project.strata(&["lock", "spec.yaml"]);
    assert!(again.status.success());
    assert_eq!(lock, fs_err::read_to_string(project.path("spec.lock")).unwrap());
    assert!(project.strata(&["lock", "--check", "spec.yaml"]).status.success());
}

#[test]
fn build_extracts_all_compressions_and_adds_stand_ins() {
    let (_server, project, _) = locked_project();
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = layer_files(&project.path("out"));
    // xz (app), zst (libfoo), gz (mawk) data.tar members, with merged /usr.
    assert_eq!(files["usr/bin/app"].0, 'f');
    assert_eq!(files["usr/bin/app"].1, 0o755);
    assert_eq!(files["usr/bin/mawk"].2, b"mawk");
    assert_eq!(files["usr/lib/x86_64-linux-gnu/libfoo.so.1"], ('l', 0o777, b"libfoo.so.1.2.0".to_vec()));
    for (l, t) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        assert_eq!(files[l], ('l', 0o777, t.as_bytes().to_vec()), "{l}");
    }
    assert_eq!(files["usr/lib64/ld-linux-x86-64.so.2"].2, b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    // The identical file shipped by two packages is kept once.
    assert_eq!(files["usr/share/doc/common/NOTICE"].2, b"same\n");
    // status.d for scanners.
    let status = String::from_utf8(files["var/lib/dpkg/status.d/libfoo"].2.clone()).unwrap();
    assert!(status.starts_with("Package: libfoo\nStatus: install ok installed\nVersion: 1.2\n"), "{status}");
    assert!(files.contains_key("var/lib/dpkg/status.d/libfoo.md5sums"));
    // Stand-ins.
    assert_eq!(files["tmp"].1, 0o1777);
    assert_eq!(files["usr/local/lib/python3.11/dist-packages"].0, 'd');
    assert_eq!(files["usr/bin/python3"], ('l', 0o777, b"python3.11".to_vec()));
    assert_eq!(
        String::from_utf8(files["etc/ssl/certs/ca-certificates.crt"].2.clone()).unwrap(),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
    );
    assert!(files["etc/ca-certificates.conf"].2.ends_with(b"mozilla/A.crt\nmozilla/B.crt\n"));
    let cache = strata::sources::deb::ldcache::read_cache(&files["etc/ld.so.cache"].2).unwrap();
    let entries: Vec<(String, String)> = cache.iter().map(|e| (e.key.clone(), e.path.clone())).collect();
    assert_eq!(
        entries,
        [
            ("libfoo.so.1".to_string(), "/lib/x86_64-linux-gnu/libfoo.so.1".to_string()),
            ("ld-linux-x86-64.so.2".to_string(), "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".to_string()),
        ]
    );
    // Two builds from the lock give one digest.
    let d1 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out2 = project.strata(&["build", "spec.yaml", "-o", "oci:out2", "--no-layer-cache"]);
    assert_eq!(d1, String::from_utf8_lossy(&out2.stdout).trim());
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, text);
    });
}

fn lock_error(pkgs: &[Pkg], body: &str, tamper: impl FnOnce(&Server)) -> String {
    let key = TestKey::new(2);
    let server = Server::empty();
    let url = publish(&server, &key, pkgs);
    tamper(&server);
    let project = Project::new(&key);
    project.spec(&url, body);
    let out = project.strata(&["lock", "spec.yaml"]);
    assert!(!out.status.success());
    scrub(&out, &project)
}

#[test]
fn packages_index_that_does_not_match_release_is_refused() {
    let err = lock_error(&archive_packages(), BODY, |s| {
        let (xz, _) = compress(Comp::Xz, b"Package: evil\nVersion: 1\n");
        s.put("/debian/dists/stable/main/binary-amd64/Packages.xz", xz);
    });
    snapshot("debs_packages_hash_mismatch", &err);
}

#[test]
fn tampered_inrelease_is_refused() {
    let err = lock_error(&archive_packages(), BODY, |s| {
        let mut ir = String::from_utf8(s.get("/debian/dists/stable/InRelease").unwrap()).unwrap();
        ir = ir.replace("Origin: Test", "Origin: Evil");
        s.put("/debian/dists/stable/InRelease", ir.into_bytes());
    });
    assert!(err.contains("no valid signature by a trusted key"), "{err}");
    snapshot("debs_bad_signature", &err);
}

#[test]
fn inrelease_signed_by_an_untrusted_key_is_refused() {
    let other = TestKey::new(99);
    let err = lock_error(&archive_packages(), BODY, |s| {
        let release = String::from_utf8(s.get("/debian/dists/stable/Release").unwrap()).unwrap();
        s.put("/debian/dists/stable/InRelease", other.clearsign(&release).into_bytes());
    });
    assert!(err.contains("no valid signature by a trusted key"), "{err}");
}

#[test]
fn unsatisfiable_version_is_explained() {
    let err = lock_error(&archive_packages(), "      packages: [\"libfoo (>= 2.0)\"]\n", |_| {});
    snapshot("debs_unsatisfiable", &err);
}

#[test]
fn build_without_lock_names_the_command() {
    let key = TestKey::new(3);
    let project = Project::new(&key);
    project.spec("http://127.0.0.1:9/debian", BODY);
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(!out.status.success());
    snapshot("debs_missing_lock", &scrub(&out, &project));
}

#[test]
fn changed_spec_makes_the_lock_stale() {
    let (_server, project, _) = locked_project();
    let text = fs_err::read_to_string(project.path("spec.yaml"))
        .unwrap()
        .replace("exclude: [docs-pkg, openssl]", "exclude: [openssl]");
    fs_err::write(project.path("spec.yaml"), text).unwrap();
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(!out.status.success());
    let err = scrub(&out, &project);
    assert!(
        err.contains("spec.lock is stale:\n  layer `os`: exclude removed: docs-pkg\n") && err.contains("strata lock"),
        "{err}"
    );
}

#[test]
fn pinned_deb_gone_from_the_archive_names_the_fixes() {
    let (server, project, _) = locked_project();
    server.remove("/debian/pool/main/app/app_1.0_amd64.deb");
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(!out.status.success());
    snapshot("debs_gone_from_archive", &scrub(&out, &project));
}

fn build_error(pkgs: Vec<Pkg>, body: &str) -> String {
    let key = TestKey::new(4);
    let server = Server::empty();
    let url = publish(&server, &key, &pkgs);
    let project = Project::new(&key);
    project.spec(&url, body);
    let out = project.strata(&["lock", "spec.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(!out.status.success());
    scrub(&out, &project)
}

#[test]
fn deb_with_path_traversal_is_refused() {
    let err = build_error(vec![pkg("evil", "1").with(file("./../../etc/evil", b"x"))], "      packages: [evil]\n");
    snapshot("debs_path_traversal", &err);
}

#[test]
fn deb_writing_through_an_escaping_symlink_is_refused() {
    let err = build_error(
        vec![pkg("evil", "1")
            .with(link("./escape", "../../../../etc"))
            .with(file("./escape/passwd", b"root::0:0::/:/bin/sh\n"))],
        "      packages: [evil]\n",
    );
    snapshot("debs_escaping_symlink", &err);
}

#[test]
fn two_packages_with_different_content_at_one_path_conflict() {
    let err = build_error(
        vec![
            pkg("one", "1").field("Depends: two").with(file("./etc/shared.conf", b"one\n")),
            pkg("two", "1").with(file("./etc/shared.conf", b"two\n")),
        ],
        "      packages: [one]\n",
    );
    snapshot("debs_conflict", &err);
}

#[test]
fn sbom_lists_every_locked_deb_with_its_sha256_and_purl() {
    let (_server, project, _) = locked_project();
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sbom = project.strata(&["inspect", "--sbom", "oci:out"]);
    assert!(sbom.status.success(), "{}", String::from_utf8_lossy(&sbom.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&sbom.stdout).unwrap();
    let lock: toml::Table = toml::from_str(&fs_err::read_to_string(project.path("spec.lock")).unwrap()).unwrap();
    let mut locked = 0;
    for layer in lock["debs"].as_table().unwrap().values() {
        for p in layer["packages"].as_array().unwrap() {
            locked += 1;
            let sha = p["sha256"].as_str().unwrap();
            let name = p["name"].as_str().unwrap();
            let pkg = doc["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["checksums"][0]["checksumValue"] == sha)
                .unwrap_or_else(|| panic!("{name} ({sha}) is missing from the SBOM"));
            assert_eq!(pkg["name"], name);
            assert_eq!(pkg["versionInfo"], p["version"].as_str().unwrap());
            let purl = pkg["externalRefs"][0]["referenceLocator"].as_str().unwrap();
            assert!(purl.starts_with(&format!("pkg:deb/debian/{name}@")), "{purl}");
            assert!(purl.contains("?arch=") && purl.contains("&distro="), "the purl names arch and distro: {purl}");
        }
    }
    assert!(locked >= 5);
}

/// What a package scanner sees: Trivy and Syft are not installable here, so
/// dpkg itself reads the image's `/var/lib/dpkg/status.d/*` (the files those
/// scanners read), joined into a status database.
#[test]
fn dpkg_query_lists_the_installed_packages_from_status_d() {
    if std::process::Command::new("dpkg-query").arg("--version").output().is_err() {
        return;
    }
    let (_server, project, _) = locked_project();
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = layer_files(&project.path("out"));
    let admin = project.path("dpkg-admin");
    fs_err::create_dir_all(admin.join("info")).unwrap();
    let mut status = Vec::new();
    for (path, (_, _, data)) in &files {
        if path.starts_with("var/lib/dpkg/status.d/") && !path.ends_with(".md5sums") {
            status.extend_from_slice(data);
            if !data.ends_with(b"\n") {
                status.push(b'\n');
            }
            status.push(b'\n');
        }
    }
    fs_err::write(admin.join("status"), status).unwrap();
    let q = std::process::Command::new("dpkg-query")
        .arg("--admindir")
        .arg(&admin)
        .args(["-W", "-f", "${Package} ${Version} ${Status}\n"])
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let listed = String::from_utf8_lossy(&q.stdout).into_owned();
    let lock: toml::Table = toml::from_str(&fs_err::read_to_string(project.path("spec.lock")).unwrap()).unwrap();
    for layer in lock["debs"].as_table().unwrap().values() {
        for p in layer["packages"].as_array().unwrap() {
            let line =
                format!("{} {} install ok installed", p["name"].as_str().unwrap(), p["version"].as_str().unwrap());
            assert!(listed.lines().any(|l| l == line), "dpkg-query does not list `{line}`:\n{listed}");
        }
    }
}

/// A spec with a second `debs:` layer above the first, sharing its archive.
fn two_layer_spec(project: &Project, url: &str, os_packages: &str) {
    let debs = |packages: &str| {
        format!("    debs:\n      keyring: archive-key.asc\n      archives: [{{url: \"{url}\", suites: [stable]}}]\n      packages: {packages}\n")
    };
    let text =
        format!("version: 1\nname: t\nlayers:\n  - name: os\n{}  - name: tools\n{}", debs(os_packages), debs("[tool]"));
    fs_err::write(project.path("spec.yaml"), text).unwrap();
}

#[test]
fn a_debs_layer_above_another_installs_only_what_is_not_below_and_keeps_the_ld_cache() {
    let key = TestKey::new(1);
    let server = Server::empty();
    let mut pkgs = archive_packages();
    pkgs.push(
        pkg("tool", "2.0")
            .field("Depends: libfoo (>= 1.0), awk")
            .with(exe("./usr/bin/tool", b"#!/bin/sh\n"))
            .with(file("./usr/lib/x86_64-linux-gnu/libtool.so.1", &tiny_so("libtool.so.1")))
            .comp(Comp::Gz),
    );
    let url = publish(&server, &key, &pkgs);
    let project = Project::new(&key);
    two_layer_spec(&project, &url, "[libfoo, mawk]");
    let out = project.strata(&["lock", "spec.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lock = fs_err::read_to_string(project.path("spec.lock")).unwrap();
    let tools = &lock[lock.find("[debs.tools]").unwrap()..];
    let pinned: Vec<&str> = tools.lines().filter_map(|l| l.strip_prefix("name = ")).collect();
    // libfoo and the awk provider come from the layer below: only `tool` is pinned above.
    assert_eq!(pinned, ["\"tool\""], "{lock}");

    // The layers: libfoo's files only below; the cache above lists both libraries.
    let out = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let layers = layer_contents(&project.path("out"));
    assert_eq!(layers.len(), 2);
    assert!(layers[0].contains_key("usr/lib/x86_64-linux-gnu/libfoo.so.1.2.0"));
    assert!(!layers[1].contains_key("usr/lib/x86_64-linux-gnu/libfoo.so.1.2.0"));
    assert!(!layers[1].contains_key("var/lib/dpkg/status.d/libfoo"));
    let cache = strata::sources::deb::ldcache::read_cache(&layers[1]["etc/ld.so.cache"]).unwrap();
    let keys: Vec<&str> = cache.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["libtool.so.1", "libfoo.so.1", "ld-linux-x86-64.so.2"]);
    // The same when the layer below comes from the layer cache and the one
    // above is written again (a file added to it), and without the cache.
    let spec = fs_err::read_to_string(project.path("spec.yaml")).unwrap();
    let note = format!("{spec}    files: [{{path: /etc/tools-note, content: \"x\\n\"}}]\n");
    fs_err::write(project.path("spec.yaml"), note).unwrap();
    let digest = |o: &std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let over_cached = digest(&project.strata(&["build", "spec.yaml", "-o", "oci:c1"]));
    let fresh = digest(&project.strata(&["build", "spec.yaml", "-o", "oci:c2", "--no-layer-cache"]));
    assert_eq!(over_cached, fresh);
    let layers = layer_contents(&project.path("c1"));
    assert!(layers[1].contains_key("etc/tools-note"));
    let cache = strata::sources::deb::ldcache::read_cache(&layers[1]["etc/ld.so.cache"]).unwrap();
    assert_eq!(cache.len(), 3, "{cache:?}");
    fs_err::write(project.path("spec.yaml"), spec).unwrap();

    // A lock in which both layers pin a package is stale, naming both.
    let block = {
        let s = lock.find("[[debs.os.packages]]\nname = \"libfoo\"").unwrap();
        let e = s + lock[s + 1..].find("\n\n").unwrap() + 2;
        lock[s..e].replace("debs.os.", "debs.tools.")
    };
    let tampered = lock.replace(
        "[[debs.tools.packages]]\nname = \"tool\"",
        &format!("{block}[[debs.tools.packages]]\nname = \"tool\""),
    );
    assert_ne!(tampered, lock);
    fs_err::write(project.path("spec.lock"), &tampered).unwrap();
    let out = project.strata(&["lock", "--check", "spec.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("libfoo") && err.contains("also pinned by layer `os` below"), "{err}");
    // Locking again repairs it.
    let out = project.strata(&["lock", "spec.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs_err::read_to_string(project.path("spec.lock")).unwrap(), lock);

    // The layer below changes: the one above is resolved again with it
    // (without mawk below, tool's `awk` is pinned above).
    two_layer_spec(&project, &url, "[libfoo]");
    let out = project.strata(&["lock", "spec.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lock = fs_err::read_to_string(project.path("spec.lock")).unwrap();
    let tools = &lock[lock.find("[debs.tools]").unwrap()..];
    let pinned: Vec<&str> = tools.lines().filter_map(|l| l.strip_prefix("name = ")).collect();
    assert_eq!(pinned, ["\"mawk\"", "\"tool\""], "{lock}");
}

/// Each layer of an OCI layout: path → content (or link target).
fn layer_contents(oci_dir: &std::path::Path) -> Vec<std::collections::BTreeMap<String, Vec<u8>>> {
    use std::io::Read;
    let src = strata::image::layout::Layout::open(oci_dir, None, format!("oci:{}", oci_dir.display()));
    let image = strata::image::Image::open(&src, &strata::oci::Platform::linux_amd64()).unwrap();
    let mut out = Vec::new();
    for l in image.layers() {
        let mut files = std::collections::BTreeMap::new();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(image.open_blob(l).unwrap()));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = String::from_utf8_lossy(&e.path_bytes()).trim_end_matches('/').to_string();
            let mut d = Vec::new();
            e.read_to_end(&mut d).unwrap();
            files.insert(p, d);
        }
        out.push(files);
    }
    out
}
