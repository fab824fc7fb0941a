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
const TARGET: &str = "x86_64-unknown-linux-gnu";

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

fn binary() -> Vec<u8> {
    fs_err::read(root().join(DIST).join(TARGET).join("strata-verify")).unwrap()
}

fn tool_version(cmd: &str, args: &[&str]) -> Option<String> {
    let o = std::process::Command::new(cmd).args(args).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn dist_manifest_matches_the_verifier_sources() {
    let now = inputs();
    let bin = binary();
    if std::env::var("STRATA_UPDATE_VERIFIER_DIST").as_deref() == Ok("1") {
        let toolchain = tool_version("rustc", &["-V"]).expect("rustc");
        let linker = tool_version("cc", &["-dumpfullversion"]).map(|v| format!("cc {v}")).unwrap_or("-".into());
        let mut text = String::from(
            "# The strata-verify binaries built into strata (src/sources/verifier.rs), made by\n\
             # verifier/build-reproducible.sh from the inputs below. Written by verifier/dist/update.sh;\n\
             # tests/it/verifier_dist.rs fails when an input changes and the binary was not rebuilt.\n\
             # Rebuild and compare: verifier/dist/update.sh --check (docs/verifier.md).\n",
        );
        let mut t = toml::Table::new();
        t.insert("toolchain".into(), toolchain.into());
        t.insert("linker".into(), linker.into());
        t.insert("sources".into(), sources_digest(&now).into());
        let mut b = toml::Table::new();
        b.insert("target".into(), TARGET.into());
        b.insert("platform".into(), "linux/amd64".into());
        b.insert("file".into(), format!("{TARGET}/strata-verify").into());
        b.insert("sha256".into(), format!("sha256:{}", hex(&bin)).into());
        b.insert("size".into(), (bin.len() as i64).into());
        t.insert("binary".into(), toml::Value::Array(vec![b.into()]));
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
    let b = &m["binary"].as_array().unwrap()[0];
    assert_eq!(
        b["sha256"].as_str(),
        Some(format!("sha256:{}", hex(&bin)).as_str()),
        "the binary is not the one the manifest names"
    );
    assert_eq!(b["size"].as_integer(), Some(bin.len() as i64));
}

#[test]
fn strata_carries_the_dist_binary_and_writes_it_out() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("strata-verify");
    let o = run(strata().args(["verifier", "--json", "--write"]).arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let bin = binary();
    assert_eq!(v["sha256"], format!("sha256:{}", hex(&bin)));
    assert_eq!(v["size"], bin.len());
    assert_eq!(v["sources"], manifest()["sources"].as_str().unwrap());
    assert_eq!(fs_err::read(&out).unwrap(), bin);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs_err::metadata(&out).unwrap().permissions().mode() & 0o777, 0o755);
    // The plain output ends with the digest, like `strata build`.
    let o = run(strata().arg("verifier"));
    assert_eq!(stdout(&o).lines().last().unwrap(), format!("sha256:{}", hex(&bin)));
    let o = run(strata().args(["verifier", "--platform", "linux/arm64"]));
    assert!(!o.status.success() && stderr(&o).contains("linux/amd64"), "{}", stderr(&o));
}

#[test]
fn committed_gpu_locks_pin_the_built_in_verifier() {
    let bin = binary();
    let lock: toml::Table =
        toml::from_str(&fs_err::read_to_string(root().join("specs/pytorch-cuda.lock")).unwrap()).unwrap();
    assert_eq!(lock["verifier"]["sha256"].as_str(), Some(format!("sha256:{}", hex(&bin)).as_str()));
    assert_eq!(lock["verifier"]["size"].as_integer(), Some(bin.len() as i64));
}

/// Rebuilds strata-verify from scratch with `verifier/build-reproducible.sh`
/// into a fresh target directory and compares the bytes with the committed
/// ones: the auditor's check, about a minute on 2 cores. It needs the
/// toolchain the manifest names (rustc and the C compiler that links);
/// with another it is skipped (`STRATA_VERIFIER_REBUILD=1` runs it anyway,
/// `=0` skips it).
#[test]
fn rebuilding_with_the_pinned_toolchain_gives_the_committed_bytes() {
    let m = manifest();
    let want_rustc = m["toolchain"].as_str().unwrap().to_string();
    let want_cc = m["linker"].as_str().unwrap().to_string();
    let have_rustc = tool_version("rustc", &["-V"]).unwrap_or_default();
    let have_cc = tool_version("cc", &["-dumpfullversion"]).map(|v| format!("cc {v}")).unwrap_or_default();
    match std::env::var("STRATA_VERIFIER_REBUILD").as_deref() {
        Ok("0") => return eprintln!("note: STRATA_VERIFIER_REBUILD=0: rebuild skipped"),
        Ok("1") => {}
        _ if have_rustc != want_rustc || have_cc != want_cc => {
            return eprintln!(
                "note: the committed strata-verify was built with {want_rustc} and {want_cc}; this machine has {have_rustc} and {have_cc}: rebuild skipped"
            )
        }
        _ => {}
    }
    let target = tempfile::tempdir().unwrap();
    let o = run(std::process::Command::new(root().join("verifier/build-reproducible.sh"))
        .env("CARGO_TARGET_DIR", target.path())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    assert!(o.status.success(), "verifier/build-reproducible.sh failed:\n{}", stderr(&o));
    let rebuilt = fs_err::read(target.path().join(TARGET).join("verifier/strata-verify")).unwrap();
    let committed = binary();
    assert!(
        rebuilt == committed,
        "rebuilt strata-verify differs from verifier/dist: {} ({} bytes) vs committed {} ({} bytes)",
        hex(&rebuilt),
        rebuilt.len(),
        hex(&committed),
        committed.len()
    );
}
