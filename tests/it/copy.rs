//! `copy:` end to end: a directory tree from the build context, filtered by
//! globs, owned and moded by the spec, the same image from any checkout of
//! the same files, and an image that finds its files under runc.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

fn write(p: &Path, bytes: &[u8], mode: u32) {
    fs_err::create_dir_all(p.parent().unwrap()).unwrap();
    fs_err::write(p, bytes).unwrap();
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A web app's tree, with what a checkout also holds (caches, VCS data).
/// `variant` changes what must not matter: non-executable mode bits, times
/// and owners.
fn app_tree(dir: &Path, variant: bool) {
    let (file_mode, exe_mode) = if variant { (0o600, 0o700) } else { (0o644, 0o755) };
    let app = dir.join("app");
    write(&app.join("bin/cat"), &cat_elf(), exe_mode);
    write(&app.join("templates/index.html"), b"<h1>hello from a copied tree</h1>\n", file_mode);
    write(&app.join("templates/partials/nav.html"), b"<nav/>\n", file_mode);
    write(&app.join("static/css/site.css"), b"body{}\n", file_mode);
    fs_err::create_dir_all(app.join("static/empty")).unwrap();
    write(&app.join("__pycache__/m.cpython-311.pyc"), b"cache", file_mode);
    write(&app.join("pkg/__pycache__/x.pyc"), b"cache", file_mode);
    write(&app.join(".git/config"), b"[core]\n", file_mode);
    write(&app.join("notes.tmp"), b"scratch", file_mode);
    fs_err::os::unix::fs::symlink("templates", app.join("current")).unwrap();
    if variant {
        let o =
            run(std::process::Command::new("touch").args(["-h", "-d", "2001-02-03 04:05:06"]).arg(app.join("current")));
        assert!(o.status.success());
        for entry in walk(&app) {
            let _ = std::process::Command::new("touch").arg("-d").arg("2011-12-13 14:15:16").arg(&entry).output();
            if is_root() {
                let _ = std::process::Command::new("chown").arg("-h").arg("4321:4321").arg(&entry).output();
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            v.extend(walk(&p));
        }
        v.push(p);
    }
    v
}

const SPEC: &str = r#"version: 1
name: copy-test
tag: t
layers:
  - name: app
    copy:
      - from: app
        to: /srv/app
        exclude: [__pycache__, .git, "*.tmp"]
        uid: 1000
        gid: 1000
  - name: templates-only
    copy:
      - from: app
        to: /srv/templates
        include: ["*.html"]
        mode: "0600"
        dir_mode: "0700"
config:
  entrypoint: [/srv/app/bin/cat]
  cmd: [/srv/app/current/index.html]
"#;

fn build_in(dir: &Path, out: &Path) -> String {
    fs_err::write(dir.join("spec.yaml"), SPEC).unwrap();
    let o = run(strata()
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(["--quiet", "build"])
        .arg(dir.join("spec.yaml"))
        .arg("-o")
        .arg(format!("oci:{}", out.display())));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

#[test]
fn a_directory_tree_is_copied_filtered_owned_and_the_same_from_any_checkout() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    app_tree(&a, false);
    app_tree(&b, true);
    let layout = t.path().join("layout");
    let digest = build_in(&a, &layout);
    // Other modes, times and owners in the context: the same image.
    assert_eq!(build_in(&b, &t.path().join("layout-b")), digest);

    let layers = layout_entries(&layout);
    let listing = |l: &LayerEntries| -> Vec<String> {
        l.iter().map(|(p, (c, m, u, g, _))| format!("{c} {m:04o} {u}:{g} {p}")).collect()
    };
    assert_eq!(
        listing(&layers[0]),
        [
            "d 0755 0:0 srv",
            "d 0755 1000:1000 srv/app",
            "d 0755 1000:1000 srv/app/bin",
            "f 0755 1000:1000 srv/app/bin/cat",
            "l 0777 1000:1000 srv/app/current",
            "d 0755 1000:1000 srv/app/pkg",
            "d 0755 1000:1000 srv/app/static",
            "d 0755 1000:1000 srv/app/static/css",
            "f 0644 1000:1000 srv/app/static/css/site.css",
            "d 0755 1000:1000 srv/app/static/empty",
            "d 0755 1000:1000 srv/app/templates",
            "f 0644 1000:1000 srv/app/templates/index.html",
            "d 0755 1000:1000 srv/app/templates/partials",
            "f 0644 1000:1000 srv/app/templates/partials/nav.html",
        ]
    );
    assert_eq!(layers[0]["srv/app/current"].4, b"templates");
    assert_eq!(
        listing(&layers[1]),
        [
            "d 0755 0:0 srv",
            "d 0700 0:0 srv/templates",
            "d 0700 0:0 srv/templates/templates",
            "f 0600 0:0 srv/templates/templates/index.html",
            "d 0700 0:0 srv/templates/templates/partials",
            "f 0600 0:0 srv/templates/templates/partials/nav.html",
        ]
    );

    // The image starts and reads its copied file through the copied link.
    if !(have("umoci") && have("runc")) {
        return;
    }
    if !is_root() {
        eprintln!("note: runc needs root here; skipped");
        return;
    }
    let (code, out, err) = runc_run(&layout, "t", t.path(), &[], false);
    assert_eq!(code, 0, "runc: {err}");
    assert_eq!(out, "<h1>hello from a copied tree</h1>\n");
}

fn fails(dir: &Path, spec: &str) -> String {
    fs_err::write(dir.join("spec.yaml"), spec).unwrap();
    let o = run(strata()
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(["--quiet", "build", "spec.yaml", "-o", "oci:out"])
        .current_dir(dir));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let real = fs_err::canonicalize(dir).unwrap().display().to_string();
    stderr(&o).replace(&real, "[DIR]").replace(&dir.display().to_string(), "[DIR]")
}

#[test]
fn copy_refuses_what_lies_outside_the_context_special_files_and_bad_globs() {
    let t = tempfile::tempdir().unwrap();
    let proj = t.path().join("proj");
    fs_err::create_dir_all(proj.join("app")).unwrap();
    write(&t.path().join("secret/key"), b"s3cret", 0o600);
    fs_err::os::unix::fs::symlink("../secret", proj.join("leak")).unwrap();
    let spec = |from: &str, extra: &str| {
        format!("version: 1\nname: x\nlayers:\n  - copy:\n      - from: {from}\n        to: /app\n{extra}")
    };
    insta::assert_snapshot!("copy_outside_the_context", fails(&proj, &spec("../secret", "")));
    let e = fails(&proj, &spec("leak", ""));
    assert!(e.contains("is outside the build context") && !e.contains("s3cret"), "{e}");
    insta::assert_snapshot!("copy_bad_glob", fails(&proj, &spec("app", "        exclude: [\"*.py\", \"a[\"]\n")));
    let o = run(std::process::Command::new("mkfifo").arg(proj.join("app/pipe")));
    assert!(o.status.success());
    insta::assert_snapshot!("copy_fifo_inside", fails(&proj, &spec("app", "")));
    fs_err::remove_file(proj.join("app/pipe")).unwrap();
    write(&proj.join("app/file"), b"x", 0o644);
    let e = fails(&proj, &spec("app/file", ""));
    assert!(e.contains("is not a directory") && e.contains("`files:` with `source:`"), "{e}");
}
