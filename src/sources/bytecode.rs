//! `bytecode:` — precompiled `.pyc` files for the Python of the layers
//! below, made at build time.
//!
//! Python cannot be replaced here: the bytes of a `.pyc` are the image
//! interpreter's `marshal` of its own compiler's output. So the step runs
//! the image's own pinned interpreter (never the host's), taken from the
//! layers already built and unpacked into a scratch root, in a sandbox:
//! new user, mount and network namespaces (no network, no privilege), the
//! root read-only, one writable output directory. It is a built-in step
//! with a fixed script ([`SCRIPT`]); nothing the spec or an index names is
//! run, only the interpreter the image itself ships.
//!
//! The result does not depend on the machine or the build:
//! * hash-based `.pyc` (PEP 552): a hash of the source, no timestamp, so
//!   file times never matter, at build time or at run time;
//! * `PYTHONHASHSEED=0`, an empty environment, `-S -s -B` (no site, no
//!   user site, no writes), one fixed script;
//! * the files are compiled in [`CHUNKS`] fixed slices of the sorted file
//!   list, each by its own process, so the slices do not depend on the
//!   thread count (only how many run at once does);
//! * the root's paths are the image's paths (the sandbox chroots), so
//!   `co_filename` is the path in the image.
//!
//! Files a wheel already ships a `.pyc` for are left alone; files that do
//! not compile (Python 2 templates some packages carry) are skipped, as
//! `compileall` does, and counted in the build log.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Context, Part, Source, SourceError};
use crate::spec::{BytecodeSpec, ResolvedLayer};
use crate::tree::{Content, Entry, Kind, Tree, TreePath};

/// The version of this step; part of every bytecode layer's fingerprint.
pub const STEP_VERSION: &str = "strata-bytecode 1";

/// The fixed number of slices the file list is compiled in.
pub const CHUNKS: usize = 8;

/// Where the output directory appears inside the sandbox.
const OUT_MOUNT: &str = "/.strata-bytecode";

/// The script the image's interpreter runs: `SCRIPT k n mode out roots...`.
pub const SCRIPT: &str = r#"
import os, sys, py_compile, importlib.util
k, n, mode, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
inv = {"checked-hash": py_compile.PycInvalidationMode.CHECKED_HASH,
       "unchecked-hash": py_compile.PycInvalidationMode.UNCHECKED_HASH}[mode]
files = set()
for root in sys.argv[5:]:
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        files.update(os.path.join(d, f) for f in names if f.endswith(".py"))
ok = bad = have = 0
for i, p in enumerate(sorted(files)):
    if i % n != k:
        continue
    c = importlib.util.cache_from_source(p, optimization="")
    if os.path.lexists(c):
        have += 1
        continue
    try:
        py_compile.compile(p, cfile=out + c, dfile=p, doraise=True, optimize=0, invalidation_mode=inv)
        ok += 1
    except Exception as e:
        bad += 1
        print("skipped", p, type(e).__name__, file=sys.stderr)
print(ok, bad, have)
"#;

/// A `bytecode:` entry.
pub struct Bytecode<'a> {
    /// The entry's settings.
    pub spec: &'a BytecodeSpec,
    /// The entry.
    pub layer: &'a ResolvedLayer,
}

impl Bytecode<'_> {
    /// The fingerprint before the layers below are added (by the planner).
    pub fn base_fingerprint(&self) -> String {
        format!(
            "{STEP_VERSION}\nchunks {CHUNKS}\ninvalidation {}\npython {}\nscript {}\n",
            self.spec.invalidation.as_str(),
            self.spec.python.as_ref().map_or("(auto)", |p| p.0.as_str()),
            crate::digest::Digest::of(SCRIPT.as_bytes())
        )
    }
}

impl Source for Bytecode<'_> {
    fn describe(&self) -> String {
        format!("bytecode ({})", self.spec.invalidation.as_str())
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        let spec = self.spec;
        let populate = move |ctx: &Context<'_>, tree: &mut Tree| compile(spec, ctx, tree);
        Ok(vec![Part {
            name: None,
            fingerprint: self.base_fingerprint(),
            populate: Box::new(populate),
            packages: vec![],
        }])
    }
}

/// The host's architecture as an OCI platform architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

fn msg(s: impl Into<String>) -> SourceError {
    SourceError::Message(s.into())
}

fn compile(spec: &BytecodeSpec, ctx: &Context<'_>, tree: &mut Tree) -> Result<(), SourceError> {
    let work = tempfile::Builder::new()
        .prefix("bytecode-")
        .tempdir_in(&ctx.scratch)
        .map_err(SourceError::io("creating a directory in", &ctx.scratch))?;
    let root = work.path().join("root");
    let out = work.path().join("out");
    fs_err::create_dir_all(&root).map_err(|e| msg(e.to_string()))?;
    fs_err::create_dir_all(&out).map_err(|e| msg(e.to_string()))?;
    for blob in &ctx.lower {
        let path = ctx.store.path(&blob.digest);
        let f = fs_err::File::open(&path).map_err(|e| msg(e.to_string()))?;
        let what = format!("layer {}", blob.digest);
        let r = crate::archive::decompress(f, &what)?;
        unpack(r, &root, &what)?;
    }
    fs_err::create_dir_all(root.join(OUT_MOUNT.trim_start_matches('/'))).map_err(|e| msg(e.to_string()))?;
    let (python, version) = interpreter(spec, &root)?;
    let roots: Vec<String> = [
        format!("usr/lib/python{version}"),
        format!("usr/local/lib/python{version}"),
        "usr/lib/python3/dist-packages".to_string(),
    ]
    .into_iter()
    .filter(|r| root.join(r).symlink_metadata().is_ok_and(|m| m.is_dir()))
    .map(|r| format!("/{r}"))
    .collect();
    if roots.is_empty() {
        return Err(msg(format!("bytecode: the layers below have no /usr/lib/python{version} to compile")));
    }
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, CHUNKS);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<(u64, u64, u64, String), SourceError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if k >= CHUNKS {
                            break;
                        }
                        mine.push(run_chunk(&root, &out, &python, spec, k, &roots));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![Err(msg("bytecode: a worker panicked"))]))
            .collect()
    });
    let (mut ok, mut bad, mut have) = (0, 0, 0);
    let mut skipped = String::new();
    for r in results {
        let (o, b, h, s) = r?;
        ok += o;
        bad += b;
        have += h;
        skipped.push_str(&s);
    }
    ctx.reporter.info(&format!(
        "bytecode: {ok} files compiled by {python} ({}), {have} already had a .pyc, {bad} do not compile and were skipped",
        spec.invalidation.as_str()
    ));
    if bad > 0 {
        tracing::debug!("bytecode: skipped\n{skipped}");
    }
    // The unpacked root is no longer needed: free its space before the layer is written.
    let _ = fs_err::remove_dir_all(&root);
    collect(&out, tree)?;
    // `work` (holding `out`) lives in the build's scratch directory, which
    // outlives the layer writer: the tree refers to the files in it.
    let _ = work.keep();
    Ok(())
}

/// The interpreter to run, and its `X.Y`.
fn interpreter(spec: &BytecodeSpec, root: &Path) -> Result<(String, String), SourceError> {
    let version_of = |name: &str| -> Option<String> {
        let v = name.strip_prefix("python")?;
        let (a, b) = v.split_once('.')?;
        (a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok()).then(|| v.to_string())
    };
    if let Some(p) = &spec.python {
        let name = p.0.rsplit('/').next().unwrap_or("");
        let resolved = resolve_in(root, &p.0)
            .ok_or_else(|| msg(format!("bytecode.python: {} is not in the layers below", p.0)))?;
        let real = resolved.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let v = version_of(name).or_else(|| version_of(real)).ok_or_else(|| {
            msg(format!("bytecode.python: cannot tell the Python version of {} (expected a name like python3.11)", p.0))
        })?;
        return Ok((p.0.clone(), v));
    }
    let mut found: BTreeSet<String> = BTreeSet::new();
    if let Ok(rd) = fs_err::read_dir(root.join("usr/bin")) {
        for e in rd.flatten() {
            if let Some(v) = e.file_name().to_str().and_then(version_of) {
                if resolve_in(root, &format!("/usr/bin/python{v}")).is_some() {
                    found.insert(v);
                }
            }
        }
    }
    match found.len() {
        1 => {
            let v = found.into_iter().next().unwrap_or_default();
            Ok((format!("/usr/bin/python{v}"), v))
        }
        0 => Err(msg(
            "bytecode: the layers below have no /usr/bin/python3.N to compile with\nhint: put `bytecode:` after the layers that install Python, or name the interpreter with `bytecode.python`",
        )),
        _ => Err(msg(format!(
            "bytecode: the layers below have several interpreters ({})\nhint: name one with `bytecode.python`",
            found.iter().map(|v| format!("/usr/bin/python{v}")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// `path` (absolute, in the image) resolved inside `root`, following
/// symbolic links as the image would (never outside `root`); `None` when
/// it is missing or not a regular file.
fn resolve_in(root: &Path, path: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        parts.push(c);
        let here = root.join(parts.join("/"));
        let meta = here.symlink_metadata().ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs_err::read_link(&here).ok()?;
            let target = target.to_str()?.to_string();
            parts.pop();
            if target.starts_with('/') {
                parts.clear();
            }
            todo.extend(target.split('/').rev().map(str::to_string));
        }
    }
    let p = root.join(parts.join("/"));
    p.is_file().then_some(p)
}

fn run_chunk(
    root: &Path,
    out: &Path,
    python: &str,
    spec: &BytecodeSpec,
    k: usize,
    roots: &[String],
) -> Result<(u64, u64, u64, String), SourceError> {
    let mut cmd = std::process::Command::new(python);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("LC_ALL", "C.UTF-8")
        .args(["-S", "-s", "-B", "-c", SCRIPT])
        .arg(k.to_string())
        .arg(CHUNKS.to_string())
        .arg(spec.invalidation.as_str())
        .arg(OUT_MOUNT)
        .args(roots)
        .stdin(std::process::Stdio::null());
    let sandbox_hint = "hint: `bytecode:` runs the image's interpreter in a sandbox made of user, mount and network namespaces; this kernel or container does not allow them to unprivileged users (see kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns or the container's seccomp profile), or remove `bytecode:` from the spec";
    strata_sys::sandbox(&mut cmd, root, out, OUT_MOUNT)
        .map_err(|e| msg(format!("bytecode: cannot prepare the sandbox: {e}\n{sandbox_hint}")))?;
    let o = cmd.output().map_err(|e| {
        msg(format!("bytecode: cannot start {python} in the sandbox (user, mount and network namespaces, chroot): {e}\n{sandbox_hint}"))
    })?;
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        let tail: String =
            stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(msg(format!("bytecode: {python} failed ({}) compiling slice {k} of {CHUNKS}:\n{tail}", o.status)));
    }
    let nums: Vec<u64> = stdout.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    let [ok, bad, have] = nums[..] else {
        return Err(msg(format!("bytecode: unexpected output from {python}: {stdout}")));
    };
    Ok((ok, bad, have, stderr.into_owned()))
}

/// Unpacks a layer tar into `root`: regular files (in the Python
/// directories, only `.py` sources: the step needs nothing else there),
/// directories, symbolic and hard links, and whiteouts. Nothing is written
/// through a symbolic link, and no path leaves `root`.
fn unpack(r: impl Read, root: &Path, what: &str) -> Result<(), SourceError> {
    let mut ar = tar::Archive::new(r);
    let entries = ar.entries().map_err(|e| msg(format!("{what}: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| msg(format!("{what}: {e}")))?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let Ok(tp) = TreePath::from_archive_member(&raw) else { continue };
        if tp.as_str().is_empty() {
            continue;
        }
        let rel = tp.as_str().to_string();
        let name = tp.file_name().to_string();
        let parent_rel = tp.parent().map(|p| p.as_str().to_string()).unwrap_or_default();
        if !safe_parent(root, &parent_rel) {
            continue;
        }
        let dest = root.join(&rel);
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                let dir = root.join(&parent_rel);
                if let Ok(rd) = fs_err::read_dir(&dir) {
                    for c in rd.flatten() {
                        remove(&c.path());
                    }
                }
            } else {
                remove(&root.join(&parent_rel).join(hidden));
            }
            continue;
        }
        let mode = e.header().mode().unwrap_or(0o644);
        let et = e.header().entry_type();
        let in_site = rel.contains("/site-packages/") || rel.contains("/dist-packages/");
        let io = |err: std::io::Error| msg(format!("{what}: unpacking {rel}: {err}"));
        if et.is_dir() {
            if dest.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                remove(&dest);
            }
            fs_err::create_dir_all(&dest).map_err(|e| msg(e.to_string()))?;
            set_mode(&dest, (mode & 0o7777) | 0o700);
            continue;
        }
        fs_err::create_dir_all(root.join(&parent_rel)).map_err(|e| msg(e.to_string()))?;
        if et.is_symlink() {
            let Some(target) = e.link_name_bytes() else { continue };
            remove(&dest);
            fs_err::os::unix::fs::symlink(String::from_utf8_lossy(&target).as_ref(), &dest).map_err(io)?;
        } else if et.is_hard_link() {
            let Some(target) = e.link_name_bytes() else { continue };
            let Ok(t) = TreePath::from_archive_member(&String::from_utf8_lossy(&target)) else { continue };
            let src = root.join(t.as_str());
            if src.symlink_metadata().is_ok_and(|m| m.is_file()) {
                remove(&dest);
                fs_err::hard_link(&src, &dest).map_err(io)?;
            }
        } else if et.is_file() || et == tar::EntryType::Continuous {
            if in_site && !name.ends_with(".py") {
                continue;
            }
            remove(&dest);
            let mut f = fs_err::File::create(&dest).map_err(io)?;
            std::io::copy(&mut e, &mut f).map_err(io)?;
            set_mode(&dest, (mode & 0o777) | 0o600);
        }
    }
    Ok(())
}

/// True when no component of `rel` under `root` is a symbolic link.
fn safe_parent(root: &Path, rel: &str) -> bool {
    let mut p = root.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
        match p.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => return false,
            Ok(_) => {}
            Err(_) => return true,
        }
    }
    true
}

fn remove(p: &Path) {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => {
            let _ = fs_err::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs_err::remove_file(p);
        }
        Err(_) => {}
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs_err::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

/// Every `.pyc` the interpreter wrote, as root-owned 0644 files (their
/// `__pycache__` directories 0755).
fn collect(out: &Path, tree: &mut Tree) -> Result<(), SourceError> {
    let origin: Arc<str> = Arc::from("bytecode");
    let mut stack = vec![out.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).map_err(|e| msg(e.to_string()))? {
            let e = e.map_err(|e| msg(e.to_string()))?;
            let ft = e.file_type().map_err(|e| msg(e.to_string()))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(out).map_err(|e| msg(e.to_string()))?;
        let rel =
            rel.to_str().ok_or_else(|| msg(format!("bytecode: a file name that is not UTF-8: {}", rel.display())))?;
        let path = TreePath::from_image_path(&format!("/{rel}"))
            .map_err(|source| SourceError::Path { archive: "bytecode".into(), source })?;
        if let Some(parent) = path.parent() {
            if tree.get(&parent).is_none() && parent.file_name() == "__pycache__" {
                tree.insert(parent, Entry::dir(0o755, &origin))?;
            }
        }
        let size = fs_err::metadata(&f).map_err(|e| msg(e.to_string()))?.len();
        tree.insert(path, Entry::file(Content::LocalFile(f), size, 0o644, &origin))?;
    }
    debug_assert!(tree.iter().all(|(_, e)| !matches!(e.kind, Kind::Hardlink { .. })));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs_err::create_dir_all(r.join("usr/bin")).unwrap();
        fs_err::write(r.join("usr/bin/python3.11"), "").unwrap();
        fs_err::os::unix::fs::symlink("python3.11", r.join("usr/bin/python3")).unwrap();
        fs_err::os::unix::fs::symlink("/usr/bin", r.join("bin")).unwrap();
        fs_err::os::unix::fs::symlink("/etc/passwd", r.join("usr/bin/escape")).unwrap();
        assert_eq!(resolve_in(r, "/usr/bin/python3"), Some(r.join("usr/bin/python3.11")));
        assert_eq!(resolve_in(r, "/bin/python3"), Some(r.join("usr/bin/python3.11")));
        assert_eq!(resolve_in(r, "/usr/bin/escape"), None, "an absolute link resolves in the root");
        assert_eq!(resolve_in(r, "/../../usr/bin/python3.11"), Some(r.join("usr/bin/python3.11")));
        let spec = BytecodeSpec::default();
        assert_eq!(interpreter(&spec, r).unwrap(), ("/usr/bin/python3.11".to_string(), "3.11".to_string()));
        fs_err::write(r.join("usr/bin/python3.12"), "").unwrap();
        assert!(interpreter(&spec, r).unwrap_err().to_string().contains("several interpreters"));
        assert!(!safe_parent(r, "bin/x"));
        assert!(safe_parent(r, "usr/bin"));
    }
}
