//! The linux/arm64 strata-verify as an arm64 image runs it, judged by
//! arm64 code itself: an arm64 `gpu:` image is built with the arm64 glibc
//! of Debian's cross packages (libc6-arm64-cross, libgcc-s1-arm64-cross,
//! pulled in by gcc-aarch64-linux-gnu, which scripts/test.sh installs),
//! unpacked, and its entrypoint is run under `qemu-aarch64-static -L ROOT`
//! (Debian's qemu-user-static; no binfmt needed) with the image's own
//! environment:
//!
//! * `--version` and `--help` answer;
//! * with no GPU visible, the quick level's strict policy gives the plain
//!   no-GPU verdict, naming the arm64 library directories it searched, and
//!   exits 1 without starting the command; `STRATA_VERIFY=warn` reports
//!   the same and then starts it.
//!
//! The command is the host's `/bin/sh` (the image has none): qemu-user
//! hands the exec to the host kernel, which runs x86-64 programs natively
//! and arm64 ones only through binfmt, which is not assumed. Nothing here
//! touches a GPU; an arm64 GPU host has never run this binary.

use crate::common::*;
use crate::debs_support::layer_files_for;

use std::path::Path;
use std::process::{Command, Output};

const CROSS_LIBS: &str = "/usr/aarch64-linux-gnu/lib";

/// The image's files written out under `root` (modes kept, links made).
fn unpack(oci: &Path, root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (path, (kind, mode, data)) in layer_files_for(oci, "linux/arm64") {
        let dest = root.join(&path);
        match kind {
            'd' => fs_err::create_dir_all(&dest).unwrap(),
            'l' => {
                fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
                fs_err::os::unix::fs::symlink(String::from_utf8(data).unwrap(), &dest).unwrap();
            }
            _ => {
                fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
                fs_err::write(&dest, data).unwrap();
                fs_err::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
    }
}

/// Runs `args` (an absolute path in the image, then its arguments) under
/// qemu with `root` as `/` and exactly `env`.
fn qemu(qemu: &Path, root: &Path, args: &[String], env: &[(String, String)]) -> Output {
    let prog = root.join(args[0].trim_start_matches('/'));
    run(Command::new(qemu)
        .arg("-L")
        .arg(root)
        .arg(prog)
        .args(&args[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v))))
}

#[test]
fn the_arm64_verifier_in_an_arm64_image_runs_under_qemu_and_says_plainly_there_is_no_gpu() {
    let Some(qemu_bin) = tool("qemu-aarch64-static") else {
        require_or_skip("qemu-aarch64-static (apt: qemu-user-static)");
        return;
    };
    let libs = ["ld-linux-aarch64.so.1", "libc.so.6", "libgcc_s.so.1"];
    if !libs.iter().all(|l| Path::new(CROSS_LIBS).join(l).is_file()) {
        require_or_skip(&format!("the arm64 glibc in {CROSS_LIBS} (apt: libc6-arm64-cross libgcc-s1-arm64-cross)"));
        return;
    }
    if Path::new("/dev/nvidiactl").exists() {
        return eprintln!(
            "note: this machine has an NVIDIA device: the no-GPU verdict is not what it would see; skipped"
        );
    }
    let t = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(t.path().join("libs")).unwrap();
    let mut files = String::new();
    for l in libs {
        fs_err::copy(Path::new(CROSS_LIBS).join(l), t.path().join("libs").join(l)).unwrap();
        let dest = if l.starts_with("ld-") { format!("/lib/{l}") } else { format!("/lib/aarch64-linux-gnu/{l}") };
        files.push_str(&format!("      - {{path: {dest}, source: libs/{l}, mode: \"0755\"}}\n"));
    }
    let spec = t.path().join("gpu.yaml");
    fs_err::write(
        &spec,
        format!(
            "version: 1\nname: gpu-arm64\nplatform: linux/arm64\nlayers:\n  - name: libc\n    files:\n{files}gpu:\n  cuda: \"12.8\"\n  arch: [sm_90]\n  verify: quick\nconfig:\n  entrypoint: [/bin/sh, -c, \"echo the command ran\"]\n"
        ),
    )
    .unwrap();
    let oci = t.path().join("oci");
    let o = run(strata()
        .arg("--cache")
        .arg(t.path().join("cache"))
        .args(["--quiet", "build"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", oci.display())));
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(strata().args(["inspect", "--json"]).arg(format!("oci:{}", oci.display())));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let config = &v["config"]["config"];
    let entrypoint: Vec<String> =
        config["Entrypoint"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert_eq!(entrypoint[..2], ["/usr/local/bin/strata-verify".to_string(), "--".to_string()]);
    let env: Vec<(String, String)> = config["Env"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e.as_str()?.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
        .unwrap_or_default();
    let root = t.path().join("root");
    unpack(&oci, &root);
    let verifier = root.join("usr/local/bin/strata-verify");
    assert_eq!(
        fs_err::read(&verifier).unwrap(),
        strata::sources::verifier::Embedded::for_platform("linux/arm64").unwrap().bytes
    );

    let arg = |a: &[&str]| -> Vec<String> {
        std::iter::once(entrypoint[0].clone()).chain(a.iter().map(|s| s.to_string())).collect()
    };
    let o = qemu(&qemu_bin, &root, &arg(&["--version"]), &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("strata-verify "), "{}", stdout(&o));
    let o = qemu(&qemu_bin, &root, &arg(&["--help"]), &env);
    assert!(o.status.success() && stdout(&o).contains("usage: strata-verify"), "{}", stdout(&o));

    // Strict (the image's own policy): the no-GPU verdict, exit 1, the command not started.
    let o = qemu(&qemu_bin, &root, &entrypoint, &env);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(!out.contains("the command ran"), "strict mode started the command: {out}");
    assert!(err.contains("quick level, strict"), "{err}");
    assert!(err.contains("no GPU is visible in this container"), "{err}");
    assert!(err.contains("/usr/lib/aarch64-linux-gnu") && !err.contains("x86_64"), "{err}");
    assert!(err.contains("not starting"), "{err}");

    // warn: the same report, then the command runs.
    let mut warn = env.clone();
    warn.retain(|(k, _)| k != "STRATA_VERIFY");
    warn.push(("STRATA_VERIFY".into(), "warn".into()));
    let o = qemu(&qemu_bin, &root, &entrypoint, &warn);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("no GPU is visible in this container"), "{err}");
    assert!(err.contains("starting the command anyway"), "{err}");
    assert_eq!(out.trim(), "the command ran", "{err}");
}
