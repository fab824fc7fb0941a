//! Paths of a later layer resolve through the directory links of the layers
//! below, as a runtime resolves them: on a merged-/usr base, writing /bin/x
//! writes /usr/bin/x and /bin stays a link. Replacing such a link with a
//! directory is an error naming both layers unless the spec asks for it.

use crate::common;

use std::path::Path;

use common::*;

fn write(p: &Path, bytes: &[u8]) {
    fs_err::create_dir_all(p.parent().unwrap()).unwrap();
    fs_err::write(p, bytes).unwrap();
}

/// A merged-/usr base (as a `debs:` layer lays it out) and a spec with
/// `later` as its second layer.
fn project(dir: &Path, later: &str) -> std::path::PathBuf {
    write(&dir.join("cat"), &cat_elf());
    write(&dir.join("rootfs/bin/greeting.txt"), b"greetings from /bin\n");
    write(&dir.join("rootfs/lib/app/data.txt"), b"data from /lib\n");
    let spec = format!(
        r#"version: 1
name: merged
tag: t
layers:
  - name: os
    dirs: [{{path: /usr/bin}}, {{path: /usr/lib}}]
    symlinks:
      - {{path: /bin, target: usr/bin}}
      - {{path: /lib, target: usr/lib}}
    files:
      - {{path: /usr/bin/cat, source: cat, mode: "0755"}}
{later}config:
  entrypoint: [/bin/cat]
  cmd: [/usr/bin/motd]
"#
    );
    let p = dir.join("spec.yaml");
    fs_err::write(&p, spec).unwrap();
    p
}

fn build(dir: &Path, spec: &Path) -> std::process::Output {
    run(strata()
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(["--quiet", "build"])
        .arg(spec)
        .arg("-o")
        .arg(format!("oci:{}", dir.join("layout").display())))
}

fn runc_ok() -> bool {
    if !(have("umoci") && have("runc")) {
        return false;
    }
    if !is_root() {
        eprintln!("note: runc needs root here; skipped");
        return false;
    }
    true
}

#[test]
fn a_later_layer_writes_through_the_base_links_and_the_image_finds_its_files() {
    let t = tempfile::tempdir().unwrap();
    let spec = project(
        t.path(),
        "  - name: app\n    files:\n      - {path: /bin/motd, content: \"written to /bin/motd\\n\"}\n    copy:\n      - {from: rootfs, to: /}\n",
    );
    let o = build(t.path(), &spec);
    assert!(o.status.success(), "{}", stderr(&o));
    let layers = layout_entries(&t.path().join("layout"));
    let app: Vec<String> = layers[1].iter().map(|(p, (c, ..))| format!("{c} {p}")).collect();
    assert_eq!(
        app,
        [
            "d usr",
            "d usr/bin",
            "f usr/bin/greeting.txt",
            "f usr/bin/motd",
            "d usr/lib",
            "d usr/lib/app",
            "f usr/lib/app/data.txt"
        ]
    );
    // The same layer from the cache: what it leaves for later layers comes with it.
    let again = build(t.path(), &spec);
    assert!(again.status.success() && stdout(&again) == stdout(&o), "{}", stderr(&again));

    if !runc_ok() {
        return;
    }
    let layout = t.path().join("layout");
    // /bin/cat runs through the /bin link, and reads what was written to /bin.
    let (code, out, err) = runc_run(&layout, "t", t.path(), &[], false);
    assert_eq!((code, out.as_str()), (0, "written to /bin/motd\n"), "{err}");
    let (code, out, err) = runc_run(&layout, "t", t.path(), &["/bin/cat", "/lib/app/data.txt"], false);
    assert_eq!((code, out.as_str()), (0, "data from /lib\n"), "{err}");
}

#[test]
fn replacing_a_base_link_with_a_directory_is_an_error_unless_the_spec_says_so() {
    let t = tempfile::tempdir().unwrap();
    let tar = raw_tar(&[TarItem::Dir("bin/"), TarItem::File("bin/motd", b"from the tarball\n", 0o644)]);
    fs_err::write(t.path().join("tool.tar"), tar).unwrap();
    let spec = project(t.path(), "  - name: tool\n    tarball: {path: tool.tar}\n");
    let o = build(t.path(), &spec);
    assert_eq!(o.status.code(), Some(1));
    let real = fs_err::canonicalize(t.path()).unwrap().display().to_string();
    insta::assert_snapshot!("replaces_base_link", stderr(&o).replace(&real, "[DIR]"));

    // Asked for: the layer's /bin is a directory, which hides /usr/bin.
    let spec = project(t.path(), "  - name: tool\n    replace_symlinks: [/bin]\n    tarball: {path: tool.tar}\n");
    let o = build(t.path(), &spec);
    assert!(o.status.success(), "{}", stderr(&o));
    let layers = layout_entries(&t.path().join("layout"));
    assert_eq!(layers[1].keys().collect::<Vec<_>>(), ["bin", "bin/motd"]);
    if !runc_ok() {
        return;
    }
    let (code, _, err) = runc_run(&t.path().join("layout"), "t", t.path(), &[], false);
    assert_ne!(code, 0, "/bin/cat must be gone once /bin is a directory: {err}");
}
