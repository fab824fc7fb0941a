//! Declarative stand-ins for the maintainer-script effects an image needs.
//! No package script runs; instead, after all packages of a layer are
//! unpacked, strata derives these files from what the packages shipped:
//!
//! | effect | replaces |
//! |---|---|
//! | `/bin`, `/sbin`, `/lib`, `/lib64` → `usr/…` links | merged-/usr (debootstrap, usrmerge) |
//! | `/tmp` 1777 | base-files / debootstrap |
//! | `/usr/local/lib/python3.X/dist-packages` | python3.X-minimal postinst |
//! | `/usr/bin/python3` → `python3.X` | python3-minimal |
//! | `/etc/ssl/certs/ca-certificates.crt`, `/etc/ca-certificates.conf` | ca-certificates postinst (`update-ca-certificates`) |
//! | `/usr/lib/ssl/{certs,cert.pem}` links | the `openssl` package's links, when only libssl is installed |
//! | `/etc/ld.so.cache` | libc-bin trigger (`ldconfig`) |
//! | `/etc/passwd`, `/etc/group` from base-passwd's master files | base-passwd preinst (`update-passwd`) |

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use crate::sources::SourceError;
use crate::tree::{Entry, Kind, Tree, TreePath};

use super::extract::MERGED_DIRS;
use super::ldcache::{looks_like_dso, parse_elf, write_cache, CacheEntry};

fn tp(s: &str) -> Result<TreePath, SourceError> {
    TreePath::from_image_path(s).map_err(|e| SourceError::Message(format!("stand-ins: {e}")))
}

fn read_all(tree: &Tree, p: &TreePath) -> Result<Option<Vec<u8>>, SourceError> {
    match tree.get(p) {
        Some(Entry { kind: Kind::File { content, .. }, .. }) => {
            let mut v = Vec::new();
            content
                .open()
                .and_then(|mut r| r.read_to_end(&mut v))
                .map_err(|e| SourceError::Message(format!("stand-ins: reading {p}: {e}")))?;
            Ok(Some(v))
        }
        _ => Ok(None),
    }
}

/// Follows symlinks inside the tree (at most 32 hops); `None` if the path
/// does not lead to an entry.
pub fn resolve_path(tree: &Tree, p: &str) -> Option<TreePath> {
    let mut comps: Vec<String> =
        p.trim_start_matches('/').split('/').filter(|c| !c.is_empty() && *c != ".").map(String::from).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while !comps.is_empty() {
        let c = comps.remove(0);
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        let cur = TreePath::from_image_path(&done.join("/")).ok()?;
        if let Kind::Symlink { target } = &tree.get(&cur)?.kind {
            hops += 1;
            if hops > 32 {
                return None;
            }
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            let mut new: Vec<String> =
                target.split('/').filter(|c| !c.is_empty() && *c != ".").map(String::from).collect();
            new.extend(comps);
            comps = new;
        }
    }
    TreePath::from_image_path(&done.join("/")).ok()
}

/// Adds the merged-/usr links `/bin`, `/sbin`, `/lib` → `usr/…` (always)
/// and `/lib64`, `/lib32`, `/libx32` (when `/usr` has them).
pub fn apply_merged_usr_links(tree: &mut Tree) -> Result<(), SourceError> {
    let origin: Arc<str> = Arc::from("debs merged-/usr");
    for d in MERGED_DIRS {
        let usr = tp(&format!("usr/{d}"))?;
        let always = matches!(d, "bin" | "sbin" | "lib");
        if always && tree.get(&usr).is_none() {
            tree.insert(usr.clone(), Entry::dir(0o755, &origin))?;
        }
        if tree.get(&usr).is_some() {
            tree.insert(tp(d)?, Entry::symlink(format!("usr/{d}"), &origin))?;
        }
    }
    Ok(())
}

/// The CA bundle `update-ca-certificates` writes.
pub const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// The origin of the stand-ins' entries (the CA bundle they write is the
/// base that local certificates are added to, see [`crate::sources::cacerts`]).
pub const CA_STANDIN_ORIGIN: &str = "debs stand-ins";

/// Applies every stand-in for an image of `arch`. `merged_usr` adds the
/// top-level links.
pub fn apply(tree: &mut Tree, merged_usr: bool, arch: crate::platform::Arch) -> Result<(), SourceError> {
    let origin: Arc<str> = Arc::from(CA_STANDIN_ORIGIN);
    if merged_usr {
        apply_merged_usr_links(tree)?;
    }
    tree.insert(tp("tmp")?, Entry::dir(0o1777, &origin))?;
    python(tree, &origin)?;
    ca_bundle(tree, &origin, arch)?;
    accounts(tree, &origin)?;
    ld_cache(tree, &origin, arch)?;
    Ok(())
}

fn python(tree: &mut Tree, origin: &Arc<str>) -> Result<(), SourceError> {
    let mut versions: Vec<(u32, String)> = Vec::new();
    for (p, e) in tree.iter() {
        if let (Some("usr/bin"), Kind::File { .. }) = (p.parent().as_ref().map(|x| x.as_str()), &e.kind) {
            let name = p.file_name();
            if let Some(minor) = name.strip_prefix("python3.").and_then(|m| m.parse::<u32>().ok()) {
                versions.push((minor, name.to_string()));
            }
        }
    }
    versions.sort();
    for (_, name) in &versions {
        tree.insert(tp(&format!("usr/local/lib/{name}/dist-packages"))?, Entry::dir(0o755, origin))?;
    }
    if let Some((_, newest)) = versions.last() {
        let link = tp("usr/bin/python3")?;
        if tree.get(&link).is_none() {
            tree.insert(link, Entry::symlink(newest.clone(), origin))?;
        }
    }
    Ok(())
}

fn ca_bundle(tree: &mut Tree, origin: &Arc<str>, arch: crate::platform::Arch) -> Result<(), SourceError> {
    let base = "usr/share/ca-certificates/";
    let certs: Vec<String> = tree
        .iter()
        .filter(|(p, e)| {
            p.as_str().starts_with(base) && p.as_str().ends_with(".crt") && matches!(e.kind, Kind::File { .. })
        })
        .map(|(p, _)| p.as_str()[base.len()..].to_string())
        .collect();
    if certs.is_empty() {
        return Ok(());
    }
    // /etc/ca-certificates.conf semantics: one path per line relative to
    // /usr/share/ca-certificates, `!path` deselects, `#` comments. Without a
    // conf file every certificate is selected (the postinst's default).
    let conf_path = tp("etc/ca-certificates.conf")?;
    let selected: Vec<String> = match read_all(tree, &conf_path)? {
        Some(b) => String::from_utf8_lossy(&b)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .filter(|l| certs.iter().any(|c| c == l))
            .map(String::from)
            .collect(),
        None => {
            let mut conf = String::from("# Generated by strata: every certificate in /usr/share/ca-certificates is trusted.\n# Prefix a line with `!` to distrust it (see update-ca-certificates(8)).\n");
            for c in &certs {
                conf.push_str(c);
                conf.push('\n');
            }
            tree.insert(conf_path, Entry::bytes(conf.into_bytes(), 0o644, origin))?;
            certs.clone()
        }
    };
    let mut bundle = Vec::new();
    for c in &selected {
        if let Some(mut b) = read_all(tree, &tp(&format!("{base}{c}"))?)? {
            if !b.ends_with(b"\n") {
                b.push(b'\n');
            }
            bundle.extend_from_slice(&b);
        }
    }
    tree.insert(tp(CA_BUNDLE)?, Entry::bytes(bundle, 0o644, origin))?;
    // Only libssl3 installed (no `openssl` package): OpenSSL's default
    // OPENSSLDIR /usr/lib/ssl would be missing, so link it as openssl does.
    let libssl = format!("usr/lib/{}/libssl.so.", arch.multiarch());
    let has_libssl = tree.iter().any(|(p, _)| p.as_str().starts_with(&libssl));
    if has_libssl && resolve_path(tree, "usr/lib/ssl").is_none_or(|p| tree.get(&p).is_none()) {
        tree.insert(tp("usr/lib/ssl/certs")?, Entry::symlink("/etc/ssl/certs", origin))?;
        tree.insert(tp("usr/lib/ssl/cert.pem")?, Entry::symlink("/etc/ssl/certs/ca-certificates.crt", origin))?;
    }
    Ok(())
}

fn accounts(tree: &mut Tree, origin: &Arc<str>) -> Result<(), SourceError> {
    for (master, target) in
        [("usr/share/base-passwd/passwd.master", "etc/passwd"), ("usr/share/base-passwd/group.master", "etc/group")]
    {
        let t = tp(target)?;
        if tree.get(&t).is_some() {
            continue;
        }
        if let Some(b) = read_all(tree, &tp(master)?)? {
            tree.insert(t, Entry::bytes(b, 0o644, origin))?;
        }
    }
    Ok(())
}

/// Library directories in ldconfig's order: `/etc/ld.so.conf` (with its
/// `include` globs of the form `DIR/*.conf`), else `/etc/ld.so.conf.d/*.conf`,
/// then the trusted system directories (the multiarch ones of `arch`).
fn library_dirs(tree: &Tree, arch: crate::platform::Arch) -> Result<Vec<String>, SourceError> {
    let mut dirs = Vec::new();
    let conf_files = |dir: &str| -> Vec<TreePath> {
        let prefix = format!("{}/", dir.trim_matches('/'));
        tree.iter()
            .filter(|(p, e)| {
                p.as_str().starts_with(&prefix)
                    && !p.as_str()[prefix.len()..].contains('/')
                    && p.as_str().ends_with(".conf")
                    && matches!(e.kind, Kind::File { .. })
            })
            .map(|(p, _)| p.clone())
            .collect()
    };
    let mut files: Vec<TreePath> = Vec::new();
    let main = tp("etc/ld.so.conf")?;
    let mut lines = Vec::new();
    if let Some(b) = read_all(tree, &main)? {
        lines.extend(String::from_utf8_lossy(&b).lines().map(String::from));
    } else {
        lines.push("include /etc/ld.so.conf.d/*.conf".into());
    }
    for l in lines {
        let l = l.split('#').next().unwrap_or("").trim().to_string();
        if let Some(pat) = l.strip_prefix("include ") {
            if let Some(dir) = pat.trim().strip_suffix("/*.conf") {
                files.extend(conf_files(dir));
            }
        } else if !l.is_empty() {
            dirs.push(l);
        }
    }
    for f in files {
        if let Some(b) = read_all(tree, &f)? {
            for l in String::from_utf8_lossy(&b).lines() {
                let l = l.split('#').next().unwrap_or("").trim();
                if !l.is_empty() && !l.starts_with("include ") {
                    dirs.push(l.to_string());
                }
            }
        }
    }
    let m = arch.multiarch();
    for d in [format!("/lib/{m}"), format!("/usr/lib/{m}"), "/lib".into(), "/usr/lib".into()] {
        dirs.push(d);
    }
    Ok(dirs)
}

/// `/etc/ld.so.cache` as `ldconfig` of `arch` writes it: the shared objects
/// of that machine in the library directories, with its entry flags.
fn ld_cache(tree: &mut Tree, origin: &Arc<str>, arch: crate::platform::Arch) -> Result<(), SourceError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    let mut soname_cache: BTreeMap<TreePath, Option<String>> = BTreeMap::new();
    for d in library_dirs(tree, arch)? {
        let shown = format!("/{}", d.trim_matches('/'));
        let Some(real) = resolve_path(tree, &d) else { continue };
        if !matches!(tree.get(&real).map(|e| &e.kind), Some(Kind::Dir { .. })) || !seen.insert(real.clone()) {
            continue;
        }
        let prefix = format!("{}/", real.as_str());
        let names: Vec<(String, bool)> = tree
            .iter()
            .filter(|(p, _)| p.as_str().starts_with(&prefix) && !p.as_str()[prefix.len()..].contains('/'))
            .filter(|(p, _)| looks_like_dso(p.file_name()))
            .map(|(p, e)| (p.file_name().to_string(), matches!(e.kind, Kind::Symlink { .. })))
            .collect();
        for (name, is_link) in names {
            let Some(file) = resolve_path(tree, &format!("{prefix}{name}")) else { continue };
            if !soname_cache.contains_key(&file) {
                let so = match read_all(tree, &file)? {
                    Some(b) => parse_elf(&b, arch.elf_machine())
                        .map(|e| e.soname.unwrap_or_else(|| file.file_name().to_string())),
                    None => None,
                };
                soname_cache.insert(file.clone(), so);
            }
            let Some(Some(soname)) = soname_cache.get(&file) else { continue };
            // ldconfig's rule: a link whose target is not the soname (and is
            // not the `.so` development link) counts as the library itself.
            let key = if is_link {
                let real_base = file.file_name();
                if real_base == soname || (name.ends_with(".so") && soname.starts_with(&name)) || name == *soname {
                    name.clone()
                } else {
                    soname.clone()
                }
            } else {
                soname.clone()
            };
            let path = if key == name { format!("{shown}/{name}") } else { format!("{shown}/{key}") };
            let entry = CacheEntry { key, path, flags: arch.ldcache_flags() };
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
    }
    tree.insert(tp("etc/ld.so.cache")?, Entry::bytes(write_cache(&entries), 0o644, origin))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_relative_and_absolute_links() {
        let o: Arc<str> = Arc::from("t");
        let mut t = Tree::new();
        t.insert(tp("usr/lib/x86_64-linux-gnu/libc.so.6").unwrap(), Entry::bytes(&b"x"[..], 0o644, &o)).unwrap();
        t.insert(tp("lib").unwrap(), Entry::symlink("usr/lib", &o)).unwrap();
        t.insert(tp("usr/lib64/ld.so").unwrap(), Entry::symlink("/lib/x86_64-linux-gnu/libc.so.6", &o)).unwrap();
        t.insert(tp("lib64").unwrap(), Entry::symlink("usr/lib64", &o)).unwrap();
        assert_eq!(resolve_path(&t, "/lib64/ld.so").unwrap().as_str(), "usr/lib/x86_64-linux-gnu/libc.so.6");
        t.insert(tp("loop").unwrap(), Entry::symlink("loop", &o)).unwrap();
        assert!(resolve_path(&t, "loop/x").is_none());
    }
}
