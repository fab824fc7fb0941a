//! The arm64 image of `specs/python-base-multi.yaml` (`--platform
//! linux/arm64`) against the real Debian archive, judged by
//! arm64 code itself under `qemu-aarch64-static` (Debian's qemu-user-static;
//! no binfmt registration needed: the emulator runs each program directly
//! with `-L ROOT`, so the programs see the unpacked image as `/`):
//!
//! * the image's own `/sbin/ldconfig -p` reads the generated
//!   `/etc/ld.so.cache` and lists its libraries as `libc6,AArch64`;
//! * the image's dynamic loader finds libc through the cache
//!   (`LD_DEBUG=libs`: `search cache=/etc/ld.so.cache`, then the file, with
//!   no fallback to the default directories);
//! * Python imports `ssl`, `sqlite3` and `ctypes`, and
//!   `ctypes.util.find_library('c')` finds libc through `ldconfig -p`.
//!
//! Runs when every pinned .deb is already in the cache (`$STRATA_CACHE` or the
//! default cache), or when `STRATA_NET_TESTS=1` (set by scripts/test.sh) allows downloading them;
//! otherwise it is skipped with a note.

use crate::common::{require_or_skip as skip, root as repo, tool};

use std::process::Command;

#[test]
fn arm64_python_base_finds_its_libraries_through_ld_so_cache_under_qemu() {
    let spec = repo().join("specs/python-base-multi.yaml");
    let all = strata::spec::load_with(&spec, &strata::spec::LoadOptions { context: None }).unwrap();
    let loaded = all.for_platform("linux/arm64").unwrap();
    let lock = strata::lock::load_for(&loaded).unwrap().expect("specs/python-base-multi.linux-arm64.lock is committed");
    let cache = strata::store::Store::default_root();
    if crate::common::pinned_artifacts_unavailable(&loaded, &lock) {
        return;
    }
    let (Some(umoci), Some(qemu)) = (tool("umoci"), tool("qemu-aarch64-static")) else {
        skip("umoci and qemu-aarch64-static (apt: umoci qemu-user-static)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("oci");
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--cache")
        .arg(&cache)
        .args(["--quiet", "build"])
        .arg(&spec)
        .args(["--platform", "linux/arm64"])
        .arg("-o")
        .arg(format!("oci:{}:img", oci.display()))
        .output()
        .unwrap();
    if crate::common::pin_gone_from_archive(&o, "specs/python-base-multi.linux-arm64.lock") {
        return;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = tmp.path().join("root");
    let o = Command::new(umoci)
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:img", oci.display()))
        .arg(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci: {}", String::from_utf8_lossy(&o.stderr));

    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(&qemu);
        c.env_clear().env("PATH", "/usr/bin:/bin").env("LANG", "C.UTF-8");
        for (k, v) in env {
            c.env(k, v);
        }
        c.arg("-L").arg(&root).arg(root.join(args[0].trim_start_matches('/'))).args(&args[1..]);
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };

    // The image's own ldconfig reads the cache.
    let (ok, out, err) = run(&[], &["/usr/sbin/ldconfig", "-p"]);
    assert!(ok, "ldconfig -p: {err}");
    assert!(out.contains("libc.so.6 (libc6,AArch64) => /lib/aarch64-linux-gnu/libc.so.6"), "{out}");
    assert!(out.contains("libssl.so.3 (libc6,AArch64)") && out.contains("libsqlite3.so.0 (libc6,AArch64)"), "{out}");

    // The dynamic loader takes libc from the cache, without searching the
    // default directories.
    let (ok, _, debug) = run(&[("LD_DEBUG", "libs")], &["/usr/bin/python3", "-c", "pass"]);
    assert!(ok, "{debug}");
    let libc = debug.split("find library=libc.so.6").nth(1).expect("the loader looked for libc").to_string();
    let libc: String = libc.lines().take(3).collect::<Vec<_>>().join("\n");
    assert!(libc.contains("search cache=/etc/ld.so.cache"), "{libc}");
    assert!(libc.contains("trying file=/lib/aarch64-linux-gnu/libc.so.6"), "{libc}");
    assert!(!libc.contains("search path="), "the loader fell back to its default directories:\n{libc}");

    // Python and its native modules run, and ctypes finds libc by running
    // `ldconfig -p` and keeping the `libc6,AArch64` entries (only an arm64
    // cache has them: the host's ldconfig and cache cannot answer).
    let script = "import ssl, sqlite3, ctypes, ctypes.util; print(ssl.OPENSSL_VERSION); print(sqlite3.sqlite_version); print(ctypes.util._findSoname_ldconfig('c')); print(ctypes.util.find_library('c'))";
    let (ok, out, err) = run(&[], &["/usr/bin/python3", "-c", script]);
    assert!(ok, "python3: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("OpenSSL 3."), "{out}");
    assert_eq!(lines[2..], ["libc.so.6", "libc.so.6"], "{out}");
}
