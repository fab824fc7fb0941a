//! Writes a [`Tree`] as a layer blob: deterministic tar → diff_id hash →
//! compressor → digest hash → temporary file → store, in one streaming pass.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};

use serde::{Deserialize, Serialize};
use tracing::info_span;

use crate::compress::{Algorithm, Compression, Compressor, ParallelGzip};
use crate::digest::{Digest, Hasher, HashingWriter};
use crate::store::{Store, StoreError};
use crate::tarwriter::{TarHeader, TarType, TarWriter};
use crate::tree::{Content, Kind, Tree, TreePath};

/// Plain (non-spliced) tar bytes are cut into gzip members of at most this
/// many bytes in splice mode. Part of the reproducibility contract.
pub const PLAIN_MEMBER_MAX: usize = 8 << 20;
/// Files smaller than this are compressed with their neighbours instead of
/// being spliced (small members would cost more than they save).
pub const SPLICE_MIN: u64 = 16 * 1024;

/// A layer blob in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed size.
    pub tar_size: u64,
    /// OCI media type.
    pub media_type: String,
}

/// Layer writing settings.
#[derive(Debug, Clone, Copy)]
pub struct LayerSettings {
    /// Compression.
    pub compression: Compression,
    /// Compression threads (the bytes do not depend on it).
    pub threads: usize,
    /// Default mtime for entries.
    pub epoch: u64,
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Reading an entry's content failed.
    #[error("reading {path} from {from}: {source}")]
    Content {
        /// Image path.
        path: TreePath,
        /// Where its bytes come from.
        from: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing the blob failed.
    #[error("writing layer: {0}")]
    Write(#[source] io::Error),
    /// Store error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Streams `tree` into a new blob of `store`; `progress` gets the
/// uncompressed bytes written so far.
pub fn write_layer(
    tree: &Tree,
    settings: &LayerSettings,
    store: &Store,
    progress: &dyn Fn(u64),
) -> Result<LayerBlob, LayerError> {
    let _span = info_span!("layer", entries = tree.len()).entered();
    let tmp = store.temp_file()?;
    let file = tmp.reopen().map_err(LayerError::Write)?;
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    if settings.compression.algorithm == Algorithm::Gzip && settings.compression.splice {
        let splicer = Splicer::new(out, settings.compression.level as u32, settings.threads);
        let mut tar = TarWriter::new(ProgressWriter { inner: splicer, report: progress, written: 0, last: 0 });
        write_entries(tree, settings.epoch, &mut tar)?;
        let pw = tar.finish().map_err(LayerError::Write)?;
        let (out, diff_id, tar_size) = pw.inner.finish().map_err(LayerError::Write)?;
        let (buf, digest, size) = out.finish();
        buf.into_inner().map_err(|e| LayerError::Write(e.into_error()))?;
        store.commit(tmp, &digest)?;
        return Ok(LayerBlob {
            digest,
            diff_id,
            size,
            tar_size,
            media_type: settings.compression.layer_media_type().to_string(),
        });
    }
    let comp = Compressor::new(settings.compression, settings.threads, out).map_err(LayerError::Write)?;
    let tar_hash = HashingWriter::new(comp);
    let mut tar = TarWriter::new(ProgressWriter { inner: tar_hash, report: progress, written: 0, last: 0 });
    write_entries(tree, settings.epoch, &mut tar)?;
    let pw = tar.finish().map_err(LayerError::Write)?;
    let (comp, diff_id, tar_size) = pw.inner.finish();
    let out = comp.finish().map_err(LayerError::Write)?;
    let (buf, digest, size) = out.finish();
    buf.into_inner().map_err(|e| LayerError::Write(e.into_error()))?;
    store.commit(tmp, &digest)?;
    Ok(LayerBlob { digest, diff_id, size, tar_size, media_type: settings.compression.layer_media_type().to_string() })
}

struct ProgressWriter<'a, W> {
    inner: W,
    report: &'a dyn Fn(u64),
    written: u64,
    last: u64,
}

/// Where layer tar bytes go. A sink may take a file's bytes in another form
/// (a raw deflate stream) instead of having them written.
pub trait LayerSink: io::Write {
    /// Offers a file's content; returns true when the sink took it (its
    /// uncompressed bytes then count as written), false to have them written.
    fn splice(
        &mut self,
        _path: &TreePath,
        _content: &Content,
        _size: u64,
        _sha256: Option<Digest>,
    ) -> Result<bool, LayerError> {
        Ok(false)
    }
}

impl<W: io::Write> LayerSink for HashingWriter<W> {}
impl LayerSink for Vec<u8> {}

impl<W: LayerSink> LayerSink for ProgressWriter<'_, W> {
    fn splice(
        &mut self,
        path: &TreePath,
        content: &Content,
        size: u64,
        sha256: Option<Digest>,
    ) -> Result<bool, LayerError> {
        let took = self.inner.splice(path, content, size, sha256)?;
        if took {
            self.written += size;
            if self.written - self.last >= 1 << 20 {
                self.last = self.written;
                (self.report)(self.written);
            }
        }
        Ok(took)
    }
}

/// Multi-member gzip writer for splice mode: plain tar bytes become gzip
/// members of at most [`PLAIN_MEMBER_MAX`] bytes (block-parallel, as in the
/// plain writer); a file that is already a raw deflate stream becomes a
/// member of its own, its deflate bytes copied unchanged. Every member is
/// still inflated here to hash the tar (diff_id), check the recorded CRC-32
/// and the file's sha256, so nothing unverified reaches the layer.
pub struct Splicer<W: io::Write> {
    out: W,
    level: u32,
    threads: usize,
    plain: Vec<u8>,
    tar_hash: Hasher,
}

impl<W: io::Write> Splicer<W> {
    /// A splicer writing gzip members to `out`.
    pub fn new(out: W, level: u32, threads: usize) -> Self {
        Splicer { out, level, threads, plain: Vec::new(), tar_hash: Hasher::new() }
    }

    fn flush_plain(&mut self) -> io::Result<()> {
        if self.plain.is_empty() {
            return Ok(());
        }
        // One thread or many give the same bytes; threads only pay off on big runs.
        let threads = if self.plain.len() > 2 * crate::compress::GZIP_BLOCK_SIZE { self.threads } else { 1 };
        let mut g = ParallelGzip::new(&mut self.out, self.level, threads)?;
        g.write_all(&self.plain)?;
        g.finish()?;
        self.plain.clear();
        Ok(())
    }

    /// Ends the stream: returns the writer, the diff_id and the tar size.
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.flush_plain()?;
        let (d, n) = self.tar_hash.finish();
        Ok((self.out, d, n))
    }
}

impl<W: io::Write> io::Write for Splicer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Members end at exact multiples of PLAIN_MEMBER_MAX within a plain
        // run, whatever the sizes of the writes: the bytes depend on data only.
        let room = PLAIN_MEMBER_MAX - self.plain.len();
        let take = room.min(buf.len());
        self.plain.extend_from_slice(&buf[..take]);
        self.tar_hash.update(&buf[..take]);
        if self.plain.len() == PLAIN_MEMBER_MAX {
            self.flush_plain()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: io::Write> LayerSink for Splicer<W> {
    fn splice(
        &mut self,
        path: &TreePath,
        content: &Content,
        size: u64,
        sha256: Option<Digest>,
    ) -> Result<bool, LayerError> {
        if size < SPLICE_MIN {
            return Ok(false);
        }
        let cerr = |source: io::Error| LayerError::Content { path: path.clone(), from: content.describe(), source };
        let Some(raw) = content.raw_deflate().map_err(cerr)? else { return Ok(false) };
        self.flush_plain().map_err(LayerError::Write)?;
        self.out.write_all(&[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]).map_err(LayerError::Write)?;
        let mut reader = raw.reader.take(raw.compressed_size);
        let mut inflater = flate2::Decompress::new(false);
        let mut crc = crc32fast::Hasher::new();
        let mut content_hash = Hasher::new();
        let mut inbuf = vec![0u8; 256 * 1024];
        let mut outbuf = vec![0u8; 1024 * 1024];
        let mut ended = false;
        let bad = |m: String| cerr(io::Error::new(io::ErrorKind::InvalidData, m));
        loop {
            let n = reader.read(&mut inbuf).map_err(cerr)?;
            if n == 0 {
                break;
            }
            self.out.write_all(&inbuf[..n]).map_err(LayerError::Write)?;
            let mut chunk = &inbuf[..n];
            while !chunk.is_empty() || !ended {
                if ended {
                    return Err(bad("the deflate stream ends before its recorded compressed size".into()));
                }
                let before_in = inflater.total_in();
                let before_out = inflater.total_out();
                let status = inflater
                    .decompress(chunk, &mut outbuf, flate2::FlushDecompress::None)
                    .map_err(|e| bad(format!("invalid deflate data: {e}")))?;
                let used = (inflater.total_in() - before_in) as usize;
                let produced = (inflater.total_out() - before_out) as usize;
                if inflater.total_out() > size {
                    // Stop at once: a stream that inflates past its recorded size
                    // could be a zip bomb, and would only be refused at its end.
                    return Err(bad(format!(
                        "inflates to more than the {size} bytes recorded for it; refused (zip bomb or corrupt archive)"
                    )));
                }
                chunk = &chunk[used..];
                let out = &outbuf[..produced];
                crc.update(out);
                content_hash.update(out);
                self.tar_hash.update(out);
                if status == flate2::Status::StreamEnd {
                    ended = true;
                    if !chunk.is_empty() {
                        return Err(bad("the deflate stream ends before its recorded compressed size".into()));
                    }
                    break;
                }
                if used == 0 && produced == 0 {
                    break; // needs more input
                }
            }
        }
        // Drain output the inflater still holds.
        while !ended {
            let before_out = inflater.total_out();
            let status = inflater
                .decompress(&[], &mut outbuf, flate2::FlushDecompress::Finish)
                .map_err(|e| bad(format!("invalid deflate data: {e}")))?;
            let produced = (inflater.total_out() - before_out) as usize;
            if inflater.total_out() > size {
                return Err(bad(format!(
                    "inflates to more than the {size} bytes recorded for it; refused (zip bomb or corrupt archive)"
                )));
            }
            crc.update(&outbuf[..produced]);
            content_hash.update(&outbuf[..produced]);
            self.tar_hash.update(&outbuf[..produced]);
            if status == flate2::Status::StreamEnd {
                ended = true;
            } else if produced == 0 {
                return Err(bad("the deflate stream is truncated".into()));
            }
        }
        if inflater.total_in() != raw.compressed_size {
            return Err(bad(format!(
                "expected {} compressed bytes, the stream used {}",
                raw.compressed_size,
                inflater.total_in()
            )));
        }
        if inflater.total_out() != size {
            return Err(bad(format!("expected {size} bytes, the stream inflates to {}", inflater.total_out())));
        }
        let crc = crc.finalize();
        if crc != raw.crc32 {
            return Err(bad(format!("CRC-32 mismatch: recorded {:08x}, found {crc:08x}", raw.crc32)));
        }
        let (found, _) = content_hash.finish();
        if let Some(expected) = sha256 {
            if expected != found {
                return Err(bad(format!(
                    "sha256 mismatch: the content does not match the hash its archive records for it (a wheel's RECORD)\n  expected: {expected}\n  found:    {found}\nhint: the archive was modified after it was built, or its record is wrong; get it from its original source"
                )));
            }
        }
        self.out.write_all(&crc.to_le_bytes()).map_err(LayerError::Write)?;
        self.out.write_all(&(size as u32).to_le_bytes()).map_err(LayerError::Write)?;
        Ok(true)
    }
}

impl<W: io::Write> io::Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.last >= 1 << 20 {
            self.last = self.written;
            (self.report)(self.written);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the tar entries of `tree` (without the end marker).
///
/// Hard links: of all paths that share one file, the first in layer order
/// carries the bytes and the others link to it, so a link never precedes
/// its target in the stream.
pub fn write_entries<W: LayerSink>(tree: &Tree, epoch: u64, tar: &mut TarWriter<W>) -> Result<(), LayerError> {
    // target -> first path in order among the target and its links
    let mut first_of: BTreeMap<&TreePath, &TreePath> = BTreeMap::new();
    for (p, e) in tree.iter() {
        if let Kind::Hardlink { target } = &e.kind {
            let cur = first_of.entry(target).or_insert(target);
            if p < *cur {
                *cur = p;
            }
        }
    }
    let mut holder_of: BTreeMap<&TreePath, &TreePath> = BTreeMap::new(); // link path -> target
    for (p, e) in tree.iter() {
        if let Kind::Hardlink { target } = &e.kind {
            holder_of.insert(p, target);
        }
    }
    for (path, e) in tree.iter() {
        let mtime = e.mtime.unwrap_or(epoch);
        let w = |err| LayerError::Write(err);
        match &e.kind {
            Kind::Dir { .. } => {
                let name = format!("{}/", path.as_str());
                tar.append(
                    &TarHeader {
                        path: &name,
                        kind: TarType::Dir,
                        mode: e.mode,
                        uid: e.uid.into(),
                        gid: e.gid.into(),
                        size: 0,
                        mtime,
                        link: None,
                    },
                    None,
                )
                .map_err(w)?;
            }
            Kind::Symlink { target } => {
                tar.append(
                    &TarHeader {
                        path: path.as_str(),
                        kind: TarType::Symlink,
                        mode: e.mode,
                        uid: e.uid.into(),
                        gid: e.gid.into(),
                        size: 0,
                        mtime,
                        link: Some(target),
                    },
                    None,
                )
                .map_err(w)?;
            }
            Kind::File { .. } | Kind::Hardlink { .. } => {
                // The file that owns the bytes of this group.
                let target: &TreePath = holder_of.get(path).copied().unwrap_or(path);
                let first = first_of.get(target).copied().unwrap_or(target);
                let Some(file) = tree.get(target) else { continue };
                let Kind::File { content, size, sha256 } = &file.kind else { continue };
                if first == path {
                    let fmtime = file.mtime.unwrap_or(epoch);
                    let header = TarHeader {
                        path: path.as_str(),
                        kind: TarType::File,
                        mode: file.mode,
                        uid: file.uid.into(),
                        gid: file.gid.into(),
                        size: *size,
                        mtime: fmtime,
                        link: None,
                    };
                    tar.header(&header).map_err(w)?;
                    if !tar.get_mut().splice(path, content, *size, *sha256)? {
                        copy_exact(path, content, *size, tar.get_mut())?;
                    }
                    tar.pad(*size).map_err(w)?;
                } else {
                    tar.append(
                        &TarHeader {
                            path: path.as_str(),
                            kind: TarType::Hardlink,
                            mode: file.mode,
                            uid: file.uid.into(),
                            gid: file.gid.into(),
                            size: 0,
                            mtime,
                            link: Some(first.as_str()),
                        },
                        None,
                    )
                    .map_err(w)?;
                }
            }
        }
    }
    Ok(())
}

/// Copies exactly `size` bytes of `content` into `out`.
fn copy_exact(path: &TreePath, content: &Content, size: u64, out: &mut impl io::Write) -> Result<(), LayerError> {
    let cerr = |source: io::Error| LayerError::Content { path: path.clone(), from: content.describe(), source };
    let mut r = content.open().map_err(cerr)?;
    let copied = io::copy(&mut (&mut r).take(size), out).map_err(cerr)?;
    if copied != size {
        return Err(cerr(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("expected {size} bytes, the source gave {copied}"),
        )));
    }
    // A source that grew since it was measured would silently lose bytes.
    let mut probe = [0u8; 1];
    if r.read(&mut probe).map_err(cerr)? != 0 {
        return Err(cerr(io::Error::other(format!(
            "the source has more than the {size} bytes recorded (did the file change during the build?)"
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Entry;
    use std::sync::Arc;

    #[test]
    fn hardlink_sorted_before_its_target_gets_the_bytes() {
        let origin: Arc<str> = Arc::from("t");
        let mut t = Tree::new();
        t.insert(TreePath::from_image_path("z/file").unwrap(), Entry::bytes(&b"data"[..], 0o644, &origin)).unwrap();
        t.insert(
            TreePath::from_image_path("a/link").unwrap(),
            Entry {
                kind: Kind::Hardlink { target: TreePath::from_image_path("z/file").unwrap() },
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: None,
                origin,
            },
        )
        .unwrap();
        let mut tar = TarWriter::new(Vec::new());
        write_entries(&t, 0, &mut tar).unwrap();
        let bytes = tar.finish().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let got: Vec<(String, tar::EntryType, Option<String>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                    e.link_name().unwrap().map(|l| l.display().to_string()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/".into(), tar::EntryType::Directory, None),
                ("a/link".into(), tar::EntryType::Regular, None),
                ("z/".into(), tar::EntryType::Directory, None),
                ("z/file".into(), tar::EntryType::Link, Some("a/link".into())),
            ]
        );
    }
}

#[cfg(test)]
mod splice_tests {
    use super::*;
    use crate::tree::{ContentSource, Entry, RawDeflate};
    use std::sync::Arc;

    #[derive(Debug)]
    struct Deflated {
        data: Vec<u8>,
        raw: Vec<u8>,
        crc: u32,
        declared_len: u64,
    }

    impl Deflated {
        fn new(data: Vec<u8>) -> Deflated {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
            e.write_all(&data).unwrap();
            let raw = e.finish().unwrap();
            let crc = crc32fast::hash(&data);
            let declared_len = raw.len() as u64;
            Deflated { data, raw, crc, declared_len }
        }
    }

    impl ContentSource for Deflated {
        fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
            Ok(Box::new(&self.data[..]))
        }
        fn describe(&self) -> String {
            "test member".into()
        }
        fn raw_deflate(&self) -> io::Result<Option<RawDeflate<'_>>> {
            Ok(Some(RawDeflate {
                reader: Box::new(&self.raw[..]),
                compressed_size: self.declared_len,
                crc32: self.crc,
            }))
        }
    }

    fn text(n: usize, seed: u64) -> Vec<u8> {
        let mut v = Vec::new();
        let mut i = seed;
        while v.len() < n {
            v.extend_from_slice(format!("def f{i}(x):\n    return x * {}\n", i % 97).as_bytes());
            i += 1;
        }
        v.truncate(n);
        v
    }

    fn tree_with(member: Deflated, sha: Option<Digest>) -> Tree {
        let origin: Arc<str> = Arc::from("t");
        let mut t = Tree::new();
        let size = member.data.len() as u64;
        let mut e = Entry::file(Content::Source(Arc::new(member)), size, 0o755, &origin);
        if let Kind::File { sha256, .. } = &mut e.kind {
            *sha256 = sha;
        }
        t.insert(TreePath::from_image_path("usr/lib/big.so").unwrap(), e).unwrap();
        t.insert(
            TreePath::from_image_path("usr/lib/small.py").unwrap(),
            Entry::bytes(b"x = 1\n".to_vec(), 0o644, &origin),
        )
        .unwrap();
        t.insert(TreePath::from_image_path("etc/big.txt").unwrap(), Entry::bytes(text(3 << 20, 7), 0o644, &origin))
            .unwrap();
        t
    }

    fn write(tree: &Tree, splice: bool, threads: usize) -> Result<(Vec<u8>, Digest, LayerBlob), LayerError> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let settings = LayerSettings {
            compression: Compression { splice, ..Compression::new(Algorithm::Gzip, 6) },
            threads,
            epoch: 0,
        };
        let blob = write_layer(tree, &settings, &store, &|_| {})?;
        let bytes = fs_err::read(store.path(&blob.digest)).unwrap();
        Ok((bytes, blob.diff_id, blob))
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn spliced_layers_have_the_same_tar_and_are_independent_of_threads() {
        let data = text(600_000, 1);
        let sha = Digest::of(&data);
        let plain = write(&tree_with(Deflated::new(data.clone()), Some(sha)), false, 2).unwrap();
        let one = write(&tree_with(Deflated::new(data.clone()), Some(sha)), true, 1).unwrap();
        let many = write(&tree_with(Deflated::new(data.clone()), Some(sha)), true, 8).unwrap();
        assert_eq!(one.0, many.0, "splice output must not depend on threads");
        assert_ne!(one.0, plain.0, "splicing changes the compressed bytes");
        assert_eq!(one.1, plain.1, "splicing never changes the tar (diff_id)");
        assert_eq!(gunzip(&one.0), gunzip(&plain.0));
        assert_eq!(crate::digest::Digest::of(&gunzip(&one.0)), one.1);
        // The member's deflate bytes appear unchanged in the layer.
        let member = Deflated::new(data);
        assert!(one.0.windows(member.raw.len()).any(|w| w == &member.raw[..]));
    }

    #[test]
    fn spliced_layers_decode_with_gzip_tools() {
        let data = text(200_000, 3);
        let (bytes, diff_id, _) = write(&tree_with(Deflated::new(data), None), true, 2).unwrap();
        for (cmd, args) in [
            ("gzip", vec!["-dc"]),
            (
                "python3",
                vec!["-c", "import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"],
            ),
        ] {
            let Ok(mut child) = std::process::Command::new(cmd)
                .args(&args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
            else {
                continue;
            };
            let mut stdin = child.stdin.take().unwrap();
            let b = bytes.clone();
            let feeder = std::thread::spawn(move || stdin.write_all(&b));
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap().unwrap();
            assert!(out.status.success(), "{cmd} failed");
            assert_eq!(Digest::of(&out.stdout), diff_id, "{cmd} decodes to another tar");
        }
    }

    #[test]
    fn bad_members_are_refused() {
        let data = text(100_000, 5);
        let mut bad_crc = Deflated::new(data.clone());
        bad_crc.crc ^= 1;
        let e = write(&tree_with(bad_crc, None), true, 1).unwrap_err().to_string();
        assert!(e.contains("CRC-32 mismatch"), "{e}");

        let e = write(&tree_with(Deflated::new(data.clone()), Some(Digest::of(b"other"))), true, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256 mismatch") && e.contains("usr/lib/big.so"), "{e}");

        let mut short = Deflated::new(data.clone());
        short.raw.truncate(short.raw.len() / 2);
        short.declared_len = short.raw.len() as u64;
        let e = write(&tree_with(short, None), true, 1).unwrap_err().to_string();
        assert!(e.contains("truncated") || e.contains("inflates to"), "{e}");

        let mut trailing = Deflated::new(data);
        trailing.raw.extend_from_slice(b"garbage");
        trailing.declared_len = trailing.raw.len() as u64;
        let e = write(&tree_with(trailing, None), true, 1).unwrap_err().to_string();
        assert!(e.contains("ends before its recorded compressed size"), "{e}");
    }
}
