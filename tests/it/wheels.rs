//! The wheel installer against pip, and the archives it must refuse.
//!
//! Wheels are generated here (purelib and platlib, `.data/scripts` with
//! `#!python`, `.data/data`, headers, entry points, RECORD); the installed
//! files are compared with what `pip install --no-deps --target` makes of
//! the same wheel. The only differences allowed are the documented ones
//! (docs/python.md): INSTALLER, RECORD paths, no direct_url.json, scripts
//! always executable.

use crate::wheels_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use strata::sources::python::{plan_wheels, pylock, Scheme, Target, WheelLocation};
use strata::tree::{Kind, Tree, TreePath};
use wheels_support::*;

fn tp(s: &str) -> TreePath {
    TreePath::from_image_path(s).unwrap()
}

/// Plans `wheels` (all requested) with `scheme` into one tree.
fn install(dir: &Path, wheels: &[&Wheel], scheme: &Scheme) -> Result<Tree, String> {
    let mut entries = Vec::new();
    let mut bytes = Vec::new();
    for w in wheels {
        w.write_to(dir);
        bytes.push((w.dist.replace('_', "-"), w.version.clone(), format!("path = \"{}\"", w.file_name()), w.bytes()));
    }
    for (n, v, l, b) in &bytes {
        entries.push((n.as_str(), v.as_str(), l.clone(), b.as_slice()));
    }
    let text = pylock(&entries);
    let lock = dir.join("pylock.toml");
    fs_err::write(&lock, &text).unwrap();
    let sel = pylock::select(&lock, &text, &Target::default(), &BTreeSet::new()).map_err(|e| e.to_string())?;
    let files: Vec<PathBuf> = sel
        .wheels
        .iter()
        .map(|w| match &w.location {
            WheelLocation::Path(p) => p.clone(),
            WheelLocation::Url(_) => unreachable!(),
        })
        .collect();
    let requested: BTreeSet<String> = sel.wheels.iter().map(|w| w.package.clone()).collect();
    let planned = plan_wheels(&sel, &files, scheme, &requested).map_err(|e| e.to_string())?;
    let mut tree = Tree::new();
    for p in planned {
        for (path, e) in p.installed.entries {
            tree.insert(path, e).map_err(|e| e.to_string())?;
        }
    }
    Ok(tree)
}

/// Writes a tree's files below `root` (streaming every member, so RECORD
/// hashes and sizes are checked here).
fn materialize(tree: &Tree, root: &Path) -> Result<(), String> {
    for (path, e) in tree.iter() {
        let dest = root.join(path.as_str());
        match &e.kind {
            Kind::Dir { .. } => fs_err::create_dir_all(&dest).unwrap(),
            Kind::File { content, .. } => {
                // Errors name the content's origin, as the layer writer does.
                let err = |e: std::io::Error| format!("{}: {e}", content.describe());
                let mut r = content.open().map_err(err)?;
                let mut data = Vec::new();
                r.read_to_end(&mut data).map_err(err)?;
                fs_err::write(&dest, data).unwrap();
                fs_err::set_permissions(&dest, std::fs::Permissions::from_mode(e.mode)).unwrap();
            }
            Kind::Symlink { target } => fs_err::os::unix::fs::symlink(target, &dest).unwrap(),
            Kind::Hardlink { .. } => unreachable!(),
        }
    }
    Ok(())
}

/// Files and symlinks below `root`: relative path → (kind, mode, bytes).
fn walk(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    fn rec(base: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, Vec<u8>)>) {
        for e in fs_err::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let meta = fs_err::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    ('l', 0o777, fs_err::read_link(&p).unwrap().to_string_lossy().into_owned().into_bytes()),
                );
            } else if meta.is_dir() {
                rec(base, &p, out);
            } else {
                out.insert(rel, ('f', meta.permissions().mode() & 0o7777, fs_err::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    rec(root, root, &mut out);
    out
}

fn demo_wheel() -> Wheel {
    let w = Wheel::new("demo", "1.0");
    let data = w.data();
    let mut big = Vec::new();
    for i in 0..40_000u32 {
        big.extend_from_slice(format!("line {i} of a member that deflates and streams\n").as_bytes());
    }
    let mut stored =
        Member::file("demo/blob.bin", (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>(), 0o644);
    stored.deflate = false;
    let mut w = w
        .with(Member::dir("demo/"))
        .with(Member::file("demo/__init__.py", "def main():\n    print('hi')\n", 0o644))
        .with(Member::file(
            "demo/sub/__init__.py",
            "class obj:\n    @staticmethod\n    def attr():\n        return 0\n",
            0o644,
        ))
        .with(Member::file("demo/tool.bin", b"\x7fELF\x02\x01\x01fake", 0o755))
        .with(Member::file("demo/big.txt", big, 0o644))
        .with(stored)
        .with(Member::symlink("demo/alias.py", "__init__.py"))
        .with(Member::file(&format!("{data}/scripts/demo-tool"), "#!python\nprint('tool')\n", 0o644))
        .with(Member::file(&format!("{data}/scripts/exec-tool"), "#!python -u\nprint('x')\n", 0o755))
        .with(Member::file(&format!("{data}/scripts/gui-tool"), "#!pythonw\nprint('gui')\n", 0o755))
        .with(Member::file(&format!("{data}/scripts/plain.sh"), "#!/bin/sh\necho plain\n", 0o755))
        .with(Member::file(&format!("{data}/scripts/noexec.sh"), "#!/bin/sh\necho noexec\n", 0o644))
        .with(Member::file(&format!("{data}/scripts/demo"), "#!python\n# setuptools' own wrapper\n", 0o755))
        .with(Member::file(&format!("{data}/data/share/demo/x.txt"), "data\n", 0o644))
        .with(Member::file(
            &format!("{data}/data/etc/jupyter/jupyter_server_config.d/demo.json"),
            "{\"ServerApp\": {}}\n",
            0o644,
        ))
        .with(Member::file(&format!("{data}/headers/demo.h"), "int demo;\n", 0o644))
        .with(Member::file(&format!("{data}/purelib/extra_mod.py"), "X = 1\n", 0o644));
    w.entry_points = Some("[console_scripts]\ndemo = demo:main\ndemo-x = demo.sub:obj.attr [extra]\n\n[gui_scripts]\ndemo-gui = demo:main\n".into());
    w
}

fn plat_wheel() -> Wheel {
    let mut w = Wheel::new("plat", "2.0");
    w.tag = "cp311-cp311-manylinux_2_17_x86_64".into();
    w.purelib = false;
    let data = w.data();
    let mut w = w
        .with(Member::file("plat/__init__.py", "def main():\n    return 0\n", 0o644))
        .with(Member::file("plat/_ext.cpython-311-x86_64-linux-gnu.so", b"\x7fELF\x02\x01\x01ext", 0o755))
        .with(Member::file(&format!("{data}/platlib/plat_extra.py"), "Y = 2\n", 0o644))
        .with(Member::file(&format!("{data}/purelib/plat_pure.py"), "Z = 3\n", 0o644));
    w.entry_points = Some("[console_scripts]\nplat-cli = plat:main\n".into());
    w
}

/// pip's `--target` layout as a scheme, with the host interpreter in shebangs.
fn target_scheme(python: &str) -> Scheme {
    Scheme {
        purelib: tp("t"),
        platlib: tp("t"),
        scripts: tp("t/bin"),
        data: tp("t"),
        headers: tp("t/include/python"),
        interpreter: python.to_string(),
        installer: "strata".into(),
    }
}

fn record_rows(text: &[u8], strip: &str) -> BTreeSet<String> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix(strip).unwrap_or(l).to_string())
        .filter(|l| !l.contains("/INSTALLER,") && !l.contains("/direct_url.json,"))
        .collect()
}

#[test]
fn installs_exactly_what_pip_installs() {
    if !have_tool("python3", &["-m", "pip", "--version"]) {
        return;
    }
    let python = String::from_utf8(
        std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    for wheel in [demo_wheel(), plat_wheel()] {
        let tmp = tempfile::tempdir().unwrap();
        let tree = install(tmp.path(), &[&wheel], &target_scheme(&python)).unwrap();
        let ours_root = tmp.path().join("ours");
        materialize(&tree, &ours_root).unwrap();
        let pip_root = tmp.path().join("pip");
        let out = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-compile",
                "--no-index",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&pip_root)
            .arg(tmp.path().join(wheel.file_name()))
            .output()
            .unwrap();
        assert!(out.status.success(), "pip failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut ours = walk(&ours_root.join("t"));
        let mut pip = walk(&pip_root);
        let info = wheel.info();

        // Documented difference 1: INSTALLER names the installer.
        assert_eq!(ours.remove(&format!("{info}/INSTALLER")).unwrap().2, b"strata\n");
        assert_eq!(pip.remove(&format!("{info}/INSTALLER")).unwrap().2, b"pip\n");
        // 2: RECORD paths are relative to where RECORD is (pip's --target
        // installs through a temporary `lib/python`); rows are otherwise the same.
        let our_record = ours.remove(&format!("{info}/RECORD")).unwrap();
        let pip_record = pip.remove(&format!("{info}/RECORD")).unwrap();
        // pip also keeps the row of a setuptools wrapper it skipped (an entry
        // point's own script in .data/scripts); strata lists installed files only.
        let pip_rows: BTreeSet<String> =
            record_rows(&pip_record.2, "../../").into_iter().filter(|r| !r.contains(".data/scripts/")).collect();
        assert_eq!(record_rows(&our_record.2, ""), pip_rows);
        assert!(String::from_utf8_lossy(&our_record.2).lines().collect::<Vec<_>>().is_sorted(), "RECORD is sorted");
        // 3: no direct_url.json (strata installs name+version pins, never direct URLs).
        assert!(pip.remove(&format!("{info}/direct_url.json")).is_some());
        // 4: every script is executable (pip 23 keeps a non-executable zip
        // mode, even for the `#!python` scripts it rewrites).
        let mut fixed = 0;
        for (k, e) in pip.iter_mut() {
            if k.starts_with("bin/") && e.1 == 0o644 {
                e.1 = 0o755;
                fixed += 1;
            }
        }
        assert!(wheel.dist != "demo" || fixed == 2, "demo-tool and noexec.sh are not executable in the zip");
        // 5: a symlink member stays a symlink (pip writes a file holding the
        // target's text); RECORD keeps the wheel's row either way.
        if let Some(e) = pip.get_mut("demo/alias.py") {
            assert_eq!((e.0, &e.2[..]), ('f', &b"__init__.py"[..]));
            *e = ('l', 0o777, b"__init__.py".to_vec());
        }
        assert_eq!(ours.keys().collect::<Vec<_>>(), pip.keys().collect::<Vec<_>>(), "same files");
        for (k, v) in &ours {
            assert_eq!(v, &pip[k], "{k}: kind, mode and content must match pip");
        }
        assert!(!ours.keys().any(|k| k.ends_with(".pyc")), "no .pyc");
    }
}

#[test]
fn debian_scheme_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = install(tmp.path(), &[&demo_wheel(), &plat_wheel()], &Scheme::debian((3, 11))).unwrap();
    let sp = "usr/local/lib/python3.11/dist-packages";
    for p in [
        format!("{sp}/demo/__init__.py"),
        format!("{sp}/extra_mod.py"),
        format!("{sp}/plat_extra.py"),
        format!("{sp}/plat_pure.py"),
        format!("{sp}/demo-1.0.dist-info/REQUESTED"),
        "usr/local/bin/demo-tool".into(),
        "usr/local/bin/plat-cli".into(),
        "usr/local/etc/jupyter/jupyter_server_config.d/demo.json".into(),
        "usr/local/share/demo/x.txt".into(),
        "usr/local/include/python3.11/demo/demo.h".into(),
    ] {
        assert!(tree.get(&tp(&p)).is_some(), "{p} missing");
    }
    let Kind::File { content, .. } = &tree.get(&tp("usr/local/bin/demo")).unwrap().kind else { panic!() };
    let mut s = String::new();
    content.open().unwrap().read_to_string(&mut s).unwrap();
    assert!(s.starts_with("#!/usr/bin/python3.11\n# -*- coding: utf-8 -*-\nimport re\n"), "{s}");
    let Kind::File { content, .. } = &tree.get(&tp(&format!("{sp}/demo-1.0.dist-info/RECORD"))).unwrap().kind else {
        panic!()
    };
    let mut record = String::new();
    content.open().unwrap().read_to_string(&mut record).unwrap();
    assert!(record.contains("../../../bin/demo-tool,sha256="), "{record}");
    assert!(record.contains("../../../include/python3.11/demo/demo.h,sha256="), "{record}");
    assert!(record.contains("demo-1.0.dist-info/INSTALLER,sha256="), "{record}");
    assert!(record.contains("demo-1.0.dist-info/RECORD,,\n"), "{record}");
}

fn refusal(wheels: &[&Wheel]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    match install(tmp.path(), wheels, &Scheme::debian((3, 11))) {
        Err(e) => e,
        Ok(tree) => materialize(&tree, &tmp.path().join("root")).expect_err("the wheel must be refused"),
    }
}

fn small() -> Wheel {
    Wheel::new("evil", "1.0").with(Member::file("evil/__init__.py", "x = 1\n", 0o644))
}

#[test]
fn record_hash_mismatch_is_refused() {
    let mut w = small();
    w.record_override.insert("evil/__init__.py".into(), record_hash(b"something else\n"));
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn member_missing_from_record_is_refused() {
    let mut w = small().with(Member::file("evil/extra.py", "y = 2\n", 0o644));
    w.record_omit.push("evil/extra.py".into());
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn parent_directory_member_is_refused() {
    let w = small().with(Member::file("../../etc/cron.d/evil", "* * * * * root sh\n", 0o644));
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn absolute_member_is_refused() {
    let w = small().with(Member::file("/etc/passwd", "root::0:0::/:/bin/sh\n", 0o644));
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn escaping_symlink_is_refused() {
    let w = small().with(Member::symlink("evil/passwd", "../../../../../../etc/passwd"));
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn zip_bomb_by_ratio_is_refused() {
    // 1 GiB declared from a few compressed bytes.
    let mut zeros = Member::file("evil/zeros.bin", vec![0u8; 4096], 0o644);
    zeros.declared_size = Some(1 << 30);
    let w = small().with(zeros);
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn zip_bomb_larger_than_declared_is_refused() {
    // The directory (and RECORD) claim 16 bytes; the stream inflates to 1 MiB.
    let mut m = Member::file("evil/data.bin", vec![b'a'; 1 << 20], 0o644);
    m.declared_size = Some(16);
    let w = small().with(m);
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn overlapping_members_are_refused() {
    let mut w = small().with(Member::file("evil/a.bin", "aaaa", 0o644)).with(Member::file("evil/b.bin", "bbbb", 0o644));
    w.share_data = Some((1, 2));
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn unknown_data_directory_is_refused() {
    let w = small().with(Member::file("evil-1.0.data/lib/x.py", "", 0o644));
    insta::assert_snapshot!(refusal(&[&w]));
}

#[test]
fn identical_duplicates_across_wheels_are_kept_once_and_different_ones_conflict() {
    let a = Wheel::new("nvidia_a_cu12", "1.0").with(Member::file("nvidia/__init__.py", "", 0o644)).with(Member::file(
        "nvidia/a/lib/liba.so",
        "a",
        0o755,
    ));
    let b = Wheel::new("nvidia_b_cu12", "1.0").with(Member::file("nvidia/__init__.py", "", 0o644)).with(Member::file(
        "nvidia/b/lib/libb.so",
        "b",
        0o755,
    ));
    let tmp = tempfile::tempdir().unwrap();
    let tree = install(tmp.path(), &[&a, &b], &Scheme::debian((3, 11))).unwrap();
    assert!(tree.get(&tp("usr/local/lib/python3.11/dist-packages/nvidia/__init__.py")).is_some());
    let c = Wheel::new("clash", "1.0").with(Member::file("nvidia/__init__.py", "# not empty\n", 0o644));
    insta::assert_snapshot!(refusal(&[&a, &c]));
}

#[test]
fn no_wheel_for_the_target_names_the_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = small();
    w.tag = "cp312-cp312-manylinux_2_28_x86_64".into();
    let mut w2 = small();
    w2.tag = "cp311-cp311-macosx_11_0_arm64".into();
    let text = pylock(&[("evil", "1.0", format!("url = \"https://example.org/{}\"", w.file_name()), &w.bytes())])
        .replace(
            "}]\n",
            &format!(
                "}}, {{ url = \"https://example.org/{}\", size = 1, hashes = {{ sha256 = \"{}\" }} }}]\n",
                w2.file_name(),
                "0".repeat(64)
            ),
        );
    let e = pylock::select(&tmp.path().join("pylock.toml"), &text, &Target::default(), &BTreeSet::new()).unwrap_err();
    insta::assert_snapshot!(e.to_string().replace(&tmp.path().display().to_string(), "TMP"));
}
