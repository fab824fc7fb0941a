//! Unpacking a `.deb` without dpkg: the outer `ar` archive, `control.tar.*`
//! (kept for `/var/lib/dpkg/status.d`) and `data.tar.{xz,zst,gz}` (into the
//! layer tree). Member paths that are absolute or contain `..` are refused,
//! and the tree refuses anything written through a symlink.

use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use crate::archive::{decompress, read_tar_mapped, MemberData};
use crate::digest::{Digest, HashingReader};
use crate::sources::SourceError;
use crate::tree::{Entry, PathError, Tree, TreePath};

use super::control::parse_paragraphs;

/// Top-level directories that Debian's merged-/usr layout moves into `/usr`.
pub const MERGED_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// What a package's control archive says about it.
#[derive(Debug, Clone)]
pub struct DebMeta {
    /// `Package:`.
    pub package: String,
    /// `Version:`.
    pub version: String,
    /// The `control` file, verbatim.
    pub control: Vec<u8>,
    /// The `md5sums` file, when the package has one.
    pub md5sums: Option<Vec<u8>>,
}

/// How to place members.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Map `/bin`, `/sbin`, `/lib*` into `/usr`.
    pub merged_usr: bool,
    /// The image's architecture: a package whose `Architecture:` is
    /// neither it nor `all` is refused before anything is unpacked.
    pub arch: Option<crate::platform::Arch>,
}

const MAX_CONTROL: u64 = 64 << 20;

fn msg(label: &str, m: impl std::fmt::Display) -> SourceError {
    SourceError::Message(format!("{label}: {m}"))
}

/// Maps a data.tar member to its image path (`None` for the root itself).
pub fn map_member(raw: &str, opts: ExtractOptions, label: &str) -> Result<Option<TreePath>, SourceError> {
    let p = match TreePath::from_archive_member(raw) {
        Ok(p) => p,
        Err(PathError::Empty) => return Ok(None),
        Err(source) => return Err(SourceError::Path { archive: label.to_string(), source }),
    };
    if opts.merged_usr {
        let first = p.as_str().split('/').next().unwrap_or("");
        if MERGED_DIRS.contains(&first) {
            return TreePath::from_image_path(&format!("usr/{}", p.as_str()))
                .map(Some)
                .map_err(|source| SourceError::Path { archive: label.to_string(), source });
        }
    }
    Ok(Some(p))
}

/// Unpacks the `.deb` at `path` into `tree`. When `expected` is given, the
/// file's sha256 must match it. File bytes are spooled into `scratch`.
pub fn extract_deb(
    path: &Path,
    expected: Option<&Digest>,
    label: &str,
    opts: ExtractOptions,
    scratch: &Path,
    tree: &mut Tree,
) -> Result<DebMeta, SourceError> {
    let file = fs_err::File::open(path).map_err(|e| msg(label, e))?;
    let mut r = HashingReader::new(BufReader::with_capacity(1 << 20, file));
    let meta = read_deb(&mut r, label, opts, scratch, tree);
    // Hash the rest whether or not the package read well: a package that
    // does not match its pin rotted in the cache (it was verified when it
    // was downloaded), and that, not its contents, is the error to report.
    let rest = io::copy(&mut r, &mut io::sink());
    let (found, _) = r.finish();
    if let (Some(exp), Ok(_)) = (expected, &rest) {
        if &found != exp {
            return Err(SourceError::corrupt_cache(label, path, *exp, found));
        }
    }
    let meta = meta?;
    rest.map_err(|e| msg(label, e))?;
    Ok(meta)
}

struct ArHeader {
    name: String,
    size: u64,
}

fn read_ar_header(r: &mut (impl Read + Send), label: &str) -> Result<Option<ArHeader>, SourceError> {
    let mut h = [0u8; 60];
    let mut got = 0;
    while got < 60 {
        let n = r.read(&mut h[got..]).map_err(|e| msg(label, e))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if got == 0 {
        return Ok(None);
    }
    if got < 60 || &h[58..60] != b"`\n" {
        return Err(msg(label, "corrupt ar member header (not a .deb, or truncated)"));
    }
    let name = String::from_utf8_lossy(&h[0..16]).trim_end().trim_end_matches('/').to_string();
    let size = std::str::from_utf8(&h[48..58])
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| msg(label, format!("ar member `{name}` has an invalid size")))?;
    Ok(Some(ArHeader { name, size }))
}

/// Reads a `.deb` from a stream.
pub fn read_deb(
    r: &mut (impl Read + Send),
    label: &str,
    opts: ExtractOptions,
    scratch: &Path,
    tree: &mut Tree,
) -> Result<DebMeta, SourceError> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| msg(label, "not a .deb (too short)"))?;
    if &magic != b"!<arch>\n" {
        return Err(msg(label, "not a .deb (no `!<arch>` ar signature)\nhint: the file may be an HTML error page saved by a proxy; check the URL"));
    }
    let mut seen_binary = false;
    let mut meta: Option<DebMeta> = None;
    let mut data_done = false;
    while let Some(h) = read_ar_header(r, label)? {
        let mut member = (&mut *r).take(h.size);
        match h.name.as_str() {
            "debian-binary" => {
                let mut v = String::new();
                (&mut member).take(64).read_to_string(&mut v).map_err(|e| msg(label, format!("debian-binary: {e}")))?;
                if !v.starts_with("2.") {
                    return Err(msg(label, format!("unsupported .deb format `{}` (expected 2.x)", v.trim())));
                }
                seen_binary = true;
            }
            n if n.starts_with("control.tar") => {
                if !seen_binary {
                    return Err(msg(label, "control.tar comes before debian-binary"));
                }
                if h.size > MAX_CONTROL {
                    return Err(msg(
                        label,
                        format!("control.tar is {} bytes; refusing more than {MAX_CONTROL}", h.size),
                    ));
                }
                meta = Some(read_control(&mut member, label)?);
            }
            n if n.starts_with("data.tar") => {
                let Some(m) = &meta else {
                    return Err(msg(label, "data.tar comes before control.tar"));
                };
                if let Some(arch) = opts.arch {
                    let found = control_field(&m.control, "Architecture").unwrap_or_default();
                    if !arch.fits_deb(&found) {
                        return Err(msg(
                            label,
                            format!(
                                "the package is for architecture `{found}` (its control file says so), but the image is for {arch} (Debian `{}` or `all`)",
                                arch.deb()
                            ),
                        ));
                    }
                }
                let origin: Arc<str> = Arc::from(format!("deb {} {}", m.package, m.version));
                let what = format!("{label} {n}");
                {
                    let stream = decompress(&mut member, &what)?;
                    read_data(stream, &what, opts, &origin, scratch, tree)?;
                }
                data_done = true;
            }
            _ => {} // Unknown members (signatures such as _gpgbuilder) are ignored, as dpkg does.
        }
        io::copy(&mut member, &mut io::sink()).map_err(|e| msg(label, e))?;
        if h.size % 2 == 1 {
            let mut pad = [0u8; 1];
            let _ = r.read(&mut pad).map_err(|e| msg(label, e))?;
        }
    }
    let meta = meta.ok_or_else(|| msg(label, "no control.tar member"))?;
    if !data_done {
        return Err(msg(label, "no data.tar member"));
    }
    Ok(meta)
}

/// A field of a control file's first paragraph.
fn control_field(control: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(control);
    let para = parse_paragraphs(&text, "control").ok()?.into_iter().next()?;
    para.get(name).map(|v| v.trim().to_string())
}

fn read_control(r: &mut (impl Read + Send), label: &str) -> Result<DebMeta, SourceError> {
    let stream = decompress(r, &format!("{label} control.tar"))?;
    let mut ar = tar::Archive::new(stream);
    let mut control = None;
    let mut md5sums = None;
    let entries = ar.entries().map_err(|e| msg(label, format!("control.tar: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| msg(label, format!("control.tar: {e}")))?;
        let p = String::from_utf8_lossy(&e.path_bytes()).trim_start_matches("./").to_string();
        if !e.header().entry_type().is_file() {
            continue;
        }
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).map_err(|err| msg(label, format!("control.tar {p}: {err}")))?;
        match p.as_str() {
            "control" => control = Some(buf),
            "md5sums" => md5sums = Some(buf),
            _ => {}
        }
    }
    let control = control.ok_or_else(|| msg(label, "control.tar has no `control` file"))?;
    let text = String::from_utf8_lossy(&control).into_owned();
    let ps = parse_paragraphs(&text, &format!("{label} control"))?;
    let p = ps.first().ok_or_else(|| msg(label, "empty control file"))?;
    let package = p.get("Package").ok_or_else(|| msg(label, "control file has no Package field"))?.to_string();
    let version = p.get("Version").ok_or_else(|| msg(label, "control file has no Version field"))?.to_string();
    let mut control = control;
    if !control.ends_with(b"\n") {
        control.push(b'\n');
    }
    Ok(DebMeta { package, version, control, md5sums })
}

/// Reads a decompressed data.tar into the tree.
pub fn read_data(
    r: impl Read,
    what: &str,
    opts: ExtractOptions,
    origin: &Arc<str>,
    scratch: &Path,
    tree: &mut Tree,
) -> Result<(), SourceError> {
    read_tar_mapped(r, what, |raw| map_member(raw, opts, what), None, origin, MemberData::Spool(scratch), tree)
}

/// The control file with the `Status:` field dpkg's own database carries, so
/// `dpkg-query --admindir` (and scanners that check it) see the package as
/// installed.
fn status_paragraph(control: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(control);
    if text.lines().any(|l| l.starts_with("Status:")) {
        return control.to_vec();
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut done = false;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if !done && line.starts_with("Package:") {
            if !line.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("Status: install ok installed\n");
            done = true;
        }
    }
    out.into_bytes()
}

/// Writes `/var/lib/dpkg/status.d/<pkg>` (the control file, as a dpkg status
/// paragraph: `Status: install ok installed` after `Package:`) and
/// `<pkg>.md5sums`, the layout distroless uses and Trivy and Syft read.
pub fn register(meta: &DebMeta, tree: &mut Tree) -> Result<(), SourceError> {
    let origin: Arc<str> = Arc::from(format!("deb {} {} (status.d)", meta.package, meta.version));
    let base = TreePath::from_image_path("var/lib/dpkg/status.d").map_err(|e| SourceError::Message(e.to_string()))?;
    let p =
        base.join(&meta.package).map_err(|e| SourceError::Message(format!("package name {}: {e}", meta.package)))?;
    tree.insert(p, Entry::bytes(status_paragraph(&meta.control), 0o644, &origin))?;
    if let Some(m) = &meta.md5sums {
        let p = base.join(&format!("{}.md5sums", meta.package)).map_err(|e| SourceError::Message(e.to_string()))?;
        tree.insert(p, Entry::bytes(m.clone(), 0o644, &origin))?;
    }
    Ok(())
}
