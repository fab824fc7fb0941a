//! The strata-verify built into strata (`verifier/dist/`): its manifest
//! names the exact inputs it was built from, so editing the verifier's
//! sources (or the Cargo.lock entries it uses, or its build profile)
//! without regenerating the binary fails here; the committed locks pin it;
//! and, with the pinned toolchain, rebuilding it gives the same bytes.
//!
//! `STRATA_UPDATE_VERIFIER_DIST=1` rewrites `verifier/dist/manifest.toml`
//! (used by `verifier/dist/update.sh` after it copies a fresh build).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use sha2::Digest as _;

const DIST: &str = "verifier/dist";

/// The binaries strata carries: Rust target, image platform, and the C
/// compiler that links it (`verifier/build-reproducible.sh`).
const BINARIES: &[(&str, &str, &str)] = &[
    ("x86_64-unknown-linux-gnu", "linux/amd64", "cc"),
    ("aarch64-unknown-linux-gnu", "linux/arm64", "aarch64-linux-gnu-gcc"),
];

fn hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs_err::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every input the verifier's bytes depend on besides the toolchain, by
/// name, with its sha256.
fn inputs() -> BTreeMap<String, String> {
    let root = root();
    let mut out = BTreeMap::new();
    let mut files = vec![root.join("verifier/Cargo.toml"), root.join("verifier/build-reproducible.sh")];
    files_under(&root.join("verifier/src"), &mut files);
    let mut ptx: Vec<PathBuf> = fs_err::read_dir(root.join("verifier/kernels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ptx"))
        .collect();
    ptx.sort();
    files.extend(ptx);
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        out.insert(rel, hex(&fs_err::read(&f).unwrap()));
    }

    // The workspace settings the verifier build inherits.
    let cargo: toml::Table = toml::from_str(&fs_err::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let pick = |path: &[&str]| -> toml::Value {
        let mut v = toml::Value::Table(cargo.clone());
        for k in path {
            v = v.get(*k).cloned().unwrap_or(toml::Value::Table(Default::default()));
        }
        v
    };
    let settings = serde_json::json!({
        "workspace.package": pick(&["workspace", "package"]),
        "profile.release": pick(&["profile", "release"]),
        "profile.verifier": pick(&["profile", "verifier"]),
    });
    out.insert(
        "Cargo.toml [workspace.package] [profile.release] [profile.verifier]".into(),
        hex(serde_json::to_string(&settings).unwrap().as_bytes()),
    );

    // strata-verify and every package it depends on, as Cargo.lock has them.
    let lock: toml::Table = toml::from_str(&fs_err::read_to_string(root.join("Cargo.lock")).unwrap()).unwrap();
    let packages = lock["package"].as_array().unwrap();
    let find = |dep: &str| -> &toml::Value {
        let mut parts = dep.split(' ');
        let name = parts.next().unwrap();
        let version = parts.next();
        packages
            .iter()
            .find(|p| p["name"].as_str() == Some(name) && version.is_none_or(|v| p["version"].as_str() == Some(v)))
            .unwrap_or_else(|| panic!("Cargo.lock has no {dep}"))
    };
    let mut todo = vec!["strata-verify".to_string()];
    let mut closure: BTreeMap<(String, String), String> = BTreeMap::new();
    while let Some(dep) = todo.pop() {
        let p = find(&dep);
        let key = (p["name"].as_str().unwrap().to_string(), p["version"].as_str().unwrap().to_string());
        if closure.contains_key(&key) {
            continue;
        }
        let line = format!(
            "{} {} {} {}",
            key.0,
            key.1,
            p.get("source").and_then(|s| s.as_str()).unwrap_or("-"),
            p.get("checksum").and_then(|s| s.as_str()).unwrap_or("-")
        );
        closure.insert(key, line);
        if let Some(deps) = p.get("dependencies").and_then(|d| d.as_array()) {
            todo.extend(deps.iter().map(|d| d.as_str().unwrap().to_string()));
        }
    }
    let text: String = closure.values().map(|l| format!("{l}\n")).collect();
    out.insert("Cargo.lock: strata-verify and its dependencies".into(), hex(text.as_bytes()));
    out
}

fn sources_digest(inputs: &BTreeMap<String, String>) -> String {
    let text: String = inputs.iter().map(|(k, v)| format!("{v}  {k}\n")).collect();
    format!("sha256:{}", hex(text.as_bytes()))
}

fn manifest() -> toml::Table {
    toml::from_str(&fs_err::read_to_string(root().join(DIST).join("manifest.toml")).unwrap()).unwrap()
}

fn binary_for(target: &str) -> Vec<u8> {
    fs_err::read(root().join(DIST).join(target).join("strata-verify")).unwrap()
}

/// The linux/amd64 binary.
fn binary() -> Vec<u8> {
    binary_for(BINARIES[0].0)
}

/// `cc 12.2.0`: the linker as the manifest names it.
fn linker_version(cmd: &str) -> Option<String> {
    tool_version(cmd, &["-dumpfullversion"]).map(|v| format!("{cmd} {v}"))
}

fn tool_version(cmd: &str, args: &[&str]) -> Option<String> {
    let o = std::process::Command::new(cmd).args(args).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn dist_manifest_matches_the_verifier_sources() {
    let now = inputs();
    if std::env::var("STRATA_UPDATE_VERIFIER_DIST").as_deref() == Ok("1") {
        let toolchain = tool_version("rustc", &["-V"]).expect("rustc");
        let linker = |cmd: &str| linker_version(cmd).unwrap_or("-".into());
        let mut text = String::from(
            "# The strata-verify binaries built into strata (src/sources/verifier.rs), made by\n\
             # verifier/build-reproducible.sh from the inputs below. Written by verifier/dist/update.sh;\n\
             # tests/it/verifier_dist.rs fails when an input changes and the binary was not rebuilt.\n\
             # Rebuild and compare: verifier/dist/update.sh --check (docs/verifier.md).\n",
        );
        let mut t = toml::Table::new();
        t.insert("toolchain".into(), toolchain.into());
        // The linker of the linux/amd64 binary, as before there were two.
        t.insert("linker".into(), linker(BINARIES[0].2).into());
        t.insert("sources".into(), sources_digest(&now).into());
        let mut all = Vec::new();
        for (target, platform, cc) in BINARIES {
            let bin = binary_for(target);
            let mut b = toml::Table::new();
            b.insert("target".into(), (*target).into());
            b.insert("platform".into(), (*platform).into());
            b.insert("file".into(), format!("{target}/strata-verify").into());
            b.insert("linker".into(), linker(cc).into());
            b.insert("sha256".into(), format!("sha256:{}", hex(&bin)).into());
            b.insert("size".into(), (bin.len() as i64).into());
            all.push(toml::Value::Table(b));
        }
        t.insert("binary".into(), toml::Value::Array(all));
        t.insert("inputs".into(), toml::Value::Table(now.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect()));
        text.push_str(&toml::to_string(&t).unwrap());
        fs_err::write(root().join(DIST).join("manifest.toml"), text).unwrap();
        return;
    }
    let m = manifest();
    let recorded: BTreeMap<String, String> = m["inputs"]
        .as_table()
        .expect("manifest.toml has [inputs]")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let mut changed = Vec::new();
    for (k, v) in &now {
        match recorded.get(k) {
            None => changed.push(format!("{k} (new)")),
            Some(r) if r != v => changed.push(k.clone()),
            _ => {}
        }
    }
    changed.extend(recorded.keys().filter(|k| !now.contains_key(*k)).map(|k| format!("{k} (gone)")));
    assert!(
        changed.is_empty(),
        "the verifier's inputs changed since verifier/dist/ was built:\n  {}\nrun verifier/dist/update.sh (with {}) and commit verifier/dist/ and the relocked specs",
        changed.join("\n  "),
        m["toolchain"].as_str().unwrap_or("the pinned toolchain")
    );
    assert_eq!(m["sources"].as_str(), Some(sources_digest(&now).as_str()));
    let listed = m["binary"].as_array().unwrap();
    assert_eq!(listed.len(), BINARIES.len(), "the manifest lists {} binaries", listed.len());
    for (b, (target, platform, _)) in listed.iter().zip(BINARIES) {
        let bin = binary_for(target);
        assert_eq!(b["target"].as_str(), Some(*target));
        assert_eq!(b["platform"].as_str(), Some(*platform));
        assert_eq!(b["file"].as_str(), Some(format!("{target}/strata-verify").as_str()));
        assert_eq!(
            b["sha256"].as_str(),
            Some(format!("sha256:{}", hex(&bin)).as_str()),
            "{target}/strata-verify is not the binary the manifest names"
        );
        assert_eq!(b["size"].as_integer(), Some(bin.len() as i64));
    }
}

/// ELF `e_machine` of a file (62 x86-64, 183 AArch64).
fn elf_machine(b: &[u8]) -> u16 {
    assert_eq!(&b[..4], b"\x7fELF");
    u16::from_le_bytes([b[18], b[19]])
}

#[test]
fn each_dist_binary_is_an_elf_for_its_platform() {
    for (target, want) in [("x86_64-unknown-linux-gnu", 62), ("aarch64-unknown-linux-gnu", 183)] {
        assert_eq!(elf_machine(&binary_for(target)), want, "{target}/strata-verify");
    }
}

#[test]
fn strata_carries_the_dist_binaries_and_writes_each_out() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    for (target, platform, _) in BINARIES {
        let out = t.path().join(format!("strata-verify-{target}"));
        let o = run(strata().args(["verifier", "--json", "--platform", platform, "--write"]).arg(&out));
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let bin = binary_for(target);
        assert_eq!(v["platform"], *platform);
        assert_eq!(v["target"], *target);
        assert_eq!(v["sha256"], format!("sha256:{}", hex(&bin)));
        assert_eq!(v["size"], bin.len());
        assert_eq!(v["sources"], manifest()["sources"].as_str().unwrap());
        assert_eq!(fs_err::read(&out).unwrap(), bin);
        assert_eq!(fs_err::metadata(&out).unwrap().permissions().mode() & 0o777, 0o755);
        // One platform's plain output ends with its digest, like `strata build`.
        let o = run(strata().args(["verifier", "--platform", platform]));
        assert_eq!(stdout(&o).lines().last().unwrap(), format!("sha256:{}", hex(&bin)));
    }
    // Without --platform: every binary, each block ending with its digest;
    // the arm64 one names its cross linker.
    let o = run(strata().arg("verifier"));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks.len(), BINARIES.len(), "{text}");
    for (block, (target, platform, cc)) in blocks.iter().zip(BINARIES) {
        assert!(block.starts_with(&format!("platform   {platform} ({target})")), "{block}");
        assert!(block.contains(&format!("linked by {cc} ")), "{block}");
        assert_eq!(block.trim_end().lines().last().unwrap(), format!("sha256:{}", hex(&binary_for(target))));
    }
    let o = run(strata().args(["verifier", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(BINARIES.len()), "{v}");
    // --write needs one platform; an unknown one names those strata carries.
    let o = run(strata().args(["verifier", "--write"]).arg(t.path().join("x")));
    assert!(!o.status.success() && stderr(&o).contains("--platform"), "{}", stderr(&o));
    assert!(!t.path().join("x").exists());
    let o = run(strata().args(["verifier", "--platform", "linux/riscv64"]));
    assert!(!o.status.success() && stderr(&o).contains("linux/amd64, linux/arm64"), "{}", stderr(&o));
}

#[test]
fn committed_gpu_locks_pin_the_built_in_verifier() {
    let bin = binary();
    let lock: toml::Table =
        toml::from_str(&fs_err::read_to_string(root().join("specs/pytorch-cuda.lock")).unwrap()).unwrap();
    assert_eq!(lock["verifier"]["sha256"].as_str(), Some(format!("sha256:{}", hex(&bin)).as_str()));
    assert_eq!(lock["verifier"]["size"].as_integer(), Some(bin.len() as i64));
}

/// Rebuilds both strata-verify binaries from scratch with
/// `verifier/build-reproducible.sh` into a fresh target directory and
/// compares the bytes with the committed ones: the auditor's check. Each
/// needs the toolchain the manifest names (rustc, and the C compiler that
/// links it: `cc` for x86-64, `aarch64-linux-gnu-gcc` with the
/// aarch64-unknown-linux-gnu standard library for arm64); a binary whose
/// toolchain differs is skipped with a note (`STRATA_VERIFIER_REBUILD=1`
/// rebuilds anyway, `=0` skips both). With the pinned rustc but no arm64
/// cross toolchain at all, `STRATA_REQUIRE_TOOLS=1` fails instead.
#[test]
fn rebuilding_with_the_pinned_toolchain_gives_the_committed_bytes() {
    let m = manifest();
    let want_rustc = m["toolchain"].as_str().unwrap().to_string();
    let have_rustc = tool_version("rustc", &["-V"]).unwrap_or_default();
    let force = match std::env::var("STRATA_VERIFIER_REBUILD").as_deref() {
        Ok("0") => return eprintln!("note: STRATA_VERIFIER_REBUILD=0: rebuild skipped"),
        Ok("1") => true,
        _ => false,
    };
    let target_dir = tempfile::tempdir().unwrap();
    for b in m["binary"].as_array().unwrap() {
        let target = b["target"].as_str().unwrap();
        let cc = BINARIES.iter().find(|x| x.0 == target).unwrap_or_else(|| panic!("unknown target {target}")).2;
        let want_cc = b.get("linker").or(m.get("linker")).and_then(|l| l.as_str()).unwrap().to_string();
        let have_cc = linker_version(cc).unwrap_or_default();
        let have_std = tool_version("rustc", &["--print", "target-libdir", "--target", target])
            .is_some_and(|d| Path::new(&d).is_dir());
        if !force {
            if have_rustc != want_rustc {
                eprintln!(
                    "note: the committed {target}/strata-verify was built with {want_rustc}; this machine has {have_rustc}: rebuild skipped"
                );
                continue;
            }
            if have_cc.is_empty() || !have_std {
                require_or_skip(&format!(
                    "the {target} toolchain for rebuilding strata-verify ({cc}{}; scripts/test.sh installs it)",
                    if have_std { String::new() } else { format!(" and `rustup target add {target}`") }
                ));
                continue;
            }
            if have_cc != want_cc {
                eprintln!(
                    "note: the committed {target}/strata-verify was linked by {want_cc}; this machine has {have_cc}: rebuild skipped"
                );
                continue;
            }
        }
        let o = run(std::process::Command::new(root().join("verifier/build-reproducible.sh"))
            .arg(target)
            .env("CARGO_TARGET_DIR", target_dir.path())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"));
        assert!(o.status.success(), "verifier/build-reproducible.sh {target} failed:\n{}", stderr(&o));
        let rebuilt = fs_err::read(target_dir.path().join(target).join("verifier/strata-verify")).unwrap();
        let committed = binary_for(target);
        assert!(
            rebuilt == committed,
            "rebuilt {target}/strata-verify differs from verifier/dist: {} ({} bytes) vs committed {} ({} bytes)",
            hex(&rebuilt),
            rebuilt.len(),
            hex(&committed),
            committed.len()
        );
    }
}
