//! Reading tar archives safely into a [`Tree`]: compression detected by magic
//! bytes, member paths checked for escapes, file bytes spooled to disk so
//! memory does not grow with the archive.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::sources::SourceError;
use crate::tree::{Content, Entry, Kind, Spool, SpoolRange, Tree, TreePath};

/// Compression of an archive stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Not compressed.
    Plain,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// xz.
    Xz,
    /// bzip2 (recognised to give a clear error).
    Bzip2,
}

/// Recognises the codec from the first bytes.
pub fn sniff(head: &[u8]) -> Codec {
    if head.starts_with(&[0x1f, 0x8b]) {
        Codec::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Codec::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Codec::Xz
    } else if head.starts_with(b"BZh") {
        Codec::Bzip2
    } else {
        Codec::Plain
    }
}

/// Wraps `r` in the decoder its first bytes call for.
pub fn decompress<'a>(r: impl Read + Send + 'a, what: &str) -> Result<Box<dyn Read + Send + 'a>, SourceError> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf().map_err(|e| SourceError::Message(format!("{what}: {e}")))?;
    Ok(match sniff(head) {
        Codec::Plain => Box::new(br),
        // MultiGzDecoder: concatenated gzip members are one stream (pigz, bgzip).
        Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Codec::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(br).map_err(|e| SourceError::Message(format!("{what}: {e}")))?,
        ),
        Codec::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(br)),
        Codec::Bzip2 => {
            return Err(SourceError::Message(format!(
                "{what} is bzip2-compressed, which strata does not read\nhint: recompress it as gzip, zstd or xz"
            )))
        }
    })
}

/// How to map archive members into the image.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Directory the archive is unpacked into (`None` = the root).
    pub into: Option<TreePath>,
    /// Leading components to drop.
    pub strip_components: u32,
    /// Forced owner, else the archive's numeric ids.
    pub owner: Option<(u32, u32)>,
}

impl Placement {
    fn map(&self, archive: &str, raw: &str) -> Result<Option<TreePath>, SourceError> {
        let rel = TreePath::from_archive_member(raw);
        let rel = match rel {
            Ok(p) => p,
            // `./` alone is the archive root.
            Err(crate::tree::PathError::Empty) => return Ok(None),
            Err(source) => return Err(SourceError::Path { archive: archive.to_string(), source }),
        };
        let mut comps: Vec<&str> = rel.as_str().split('/').collect();
        let strip = self.strip_components as usize;
        if comps.len() <= strip {
            return Ok(None);
        }
        comps.drain(..strip);
        let joined = comps.join("/");
        let p = match &self.into {
            Some(base) => base.join(&joined),
            None => TreePath::from_archive_member(&joined),
        };
        p.map(Some).map_err(|source| SourceError::Path { archive: archive.to_string(), source })
    }
}

/// Where the bytes of an archive's files are kept until the layer is written.
pub enum MemberData<'a> {
    /// Copied into a new spool file in this scratch directory (a compressed
    /// stream has no other place to read them from later).
    Spool(&'a Path),
    /// Read later from the archive file itself, at each member's offset:
    /// the stream must be this file's bytes, uncompressed, from its start.
    InPlace(Arc<Spool>),
}

/// Reads a (decompressed) tar stream into `tree`, placed as `placement` says.
/// Device nodes and FIFOs are refused.
pub fn read_tar(
    r: impl Read,
    archive: &str,
    placement: &Placement,
    origin: &Arc<str>,
    data: MemberData<'_>,
    tree: &mut Tree,
) -> Result<(), SourceError> {
    let (kept, stripped) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize));
    let map = |raw: &str| {
        let p = placement.map(archive, raw)?;
        match &p {
            Some(_) => kept.set(kept.get() + 1),
            None if placement.strip_components > 0 => stripped.set(stripped.get() + 1),
            None => {}
        }
        Ok(p)
    };
    read_tar_mapped(r, archive, map, placement.owner, origin, data, tree)?;
    if kept.get() == 0 && stripped.get() > 0 {
        return Err(SourceError::Message(format!(
            "{archive}: `strip_components: {}` removes the whole path of every member ({} of them), so the layer would be empty\nhint: lower `strip_components`",
            placement.strip_components,
            stripped.get()
        )));
    }
    Ok(())
}

/// The tar reader behind tarballs and `.deb` data archives. `map` turns a
/// member path into its image path (`None`: skip the member); `owner`, when
/// set, replaces the archive's numeric ids. Hardlink targets go through `map`
/// too, so a link can only point at another member that lands in the tree.
pub fn read_tar_mapped(
    r: impl Read,
    archive: &str,
    map: impl Fn(&str) -> Result<Option<TreePath>, SourceError>,
    owner: Option<(u32, u32)>,
    origin: &Arc<str>,
    data: MemberData<'_>,
    tree: &mut Tree,
) -> Result<(), SourceError> {
    let fail = |m: String| SourceError::Message(format!("{archive}: {m}"));
    let (spool, mut spool_w, scratch) = match data {
        MemberData::Spool(scratch) => {
            let (spool, file) =
                Spool::create_in(scratch).map_err(SourceError::io("creating spool file in", scratch))?;
            (spool, Some(io::BufWriter::with_capacity(1 << 20, file)), Some(scratch))
        }
        MemberData::InPlace(spool) => (spool, None, None),
    };
    let flush = |w: &mut Option<io::BufWriter<fs_err::File>>| -> Result<(), SourceError> {
        match (w, scratch) {
            (Some(w), Some(dir)) => w.flush().map_err(SourceError::io("writing spool file in", dir)),
            _ => Ok(()),
        }
    };
    let mut offset = 0u64;
    let mut ar = tar::Archive::new(r);
    let entries = ar.entries().map_err(|e| fail(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("corrupt or truncated tar: {e}")))?;
        let raw_path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|e| fail(format!("member path `{}` is not valid UTF-8", e.as_bytes().escape_ascii())))?;
        // Member names are shown escaped: they come from the archive and
        // could hold terminal escape sequences.
        let shown = crate::report::one_line(&raw_path);
        let et = entry.header().entry_type();
        if et.is_pax_global_extensions() || et.is_pax_local_extensions() || et.is_gnu_longname() || et.is_gnu_longlink()
        {
            continue;
        }
        let Some(path) = map(&raw_path)? else {
            continue;
        };
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = match owner {
            Some(o) => o,
            None => {
                // An id that does not fit 32 bits is refused, not truncated
                // or turned into root.
                let id = |what: &str, v: io::Result<u64>, raw: &[u8]| -> Result<u32, SourceError> {
                    // An empty field (some writers leave it blank) means 0.
                    if raw.iter().all(|b| *b == 0 || *b == b' ') {
                        return Ok(0);
                    }
                    let v = v.map_err(|e| fail(format!("{shown}: unreadable {what}: {e}")))?;
                    u32::try_from(v).map_err(|_| {
                        fail(format!(
                            "{shown}: {what} {v} does not fit in 32 bits\nhint: set `owner:` to choose the owner"
                        ))
                    })
                };
                let old = header.as_old();
                (id("uid", header.uid(), &old.uid)?, id("gid", header.gid(), &old.gid)?)
            }
        };
        let kind = if et.is_dir() {
            Kind::Dir { implicit: false }
        } else if et.is_file() || et == tar::EntryType::Continuous {
            let size = entry.size();
            let range = match &mut spool_w {
                Some(w) => {
                    let copied = io::copy(&mut entry, w).map_err(|e| fail(format!("reading {shown}: {e}")))?;
                    if copied != size {
                        return Err(fail(format!("{shown} is truncated ({copied} of {size} bytes)")));
                    }
                    offset += size;
                    SpoolRange { spool: spool.clone(), offset: offset - size, len: size }
                }
                // The tar reader reads past the bytes (hashing them on the
                // way); a short archive fails at the next header.
                None => SpoolRange { spool: spool.clone(), offset: entry.raw_file_position(), len: size },
            };
            Kind::File { content: Content::Spool(range), size, sha256: None }
        } else if et.is_symlink() {
            let target = entry.link_name_bytes().ok_or_else(|| fail(format!("symlink {shown} has no target")))?;
            let target = String::from_utf8(target.into_owned()).map_err(|e| {
                fail(format!(
                    "symlink {shown} has a target that is not valid UTF-8 (`{}`); image paths are UTF-8",
                    e.as_bytes().escape_ascii()
                ))
            })?;
            if target.is_empty() || target.contains('\0') || target.len() > crate::tree::MAX_PATH_BYTES {
                return Err(fail(format!("symlink {shown} has an empty, too long or invalid target")));
            }
            Kind::Symlink { target }
        } else if et.is_hard_link() {
            let raw_target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| fail(format!("hardlink {shown} has no target")))?;
            let target_shown = crate::report::one_line(&raw_target);
            let target = map(&raw_target)
                .map_err(|e| fail(format!("hardlink {shown} -> {target_shown} points outside the archive ({e})")))?;
            let Some(target) = target else {
                return Err(fail(format!(
                    "hardlink {shown} -> {target_shown} points outside the unpacked part of the archive"
                )));
            };
            Kind::Hardlink { target }
        } else {
            return Err(fail(format!(
                "{shown} is {}; layers hold only files, directories and links (device nodes are created by the runtime)",
                entry_type_name(et)
            )));
        };
        if matches!(kind, Kind::File { .. }) && tree.get(&path).is_some() {
            // Comparing with a duplicate reads this file's bytes back from the spool.
            flush(&mut spool_w)?;
        }
        tree.insert(path, Entry { kind, mode, uid, gid, mtime: None, origin: origin.clone() })?;
    }
    flush(&mut spool_w)?;
    tree.check_hardlinks()?;
    Ok(())
}

/// A tar entry type in words, for messages.
fn entry_type_name(et: tar::EntryType) -> String {
    use tar::EntryType as E;
    match et {
        E::Char => "a character device".into(),
        E::Block => "a block device".into(),
        E::Fifo => "a FIFO".into(),
        E::GNUSparse => "a GNU sparse file".into(),
        other => {
            let b = other.as_byte();
            if b.is_ascii_graphic() {
                format!("an entry of unknown type `{}` (0x{b:02x})", b as char)
            } else {
                format!("an entry of unknown type 0x{b:02x}")
            }
        }
    }
}
