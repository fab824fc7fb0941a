//! A small, defensive zip reader for wheels.
//!
//! Only the central directory is held in memory. Member bytes are read on
//! demand with positional reads from the file in the store, inflated in a
//! stream and checked as they pass: never more than the declared size
//! (zip bombs), exactly the declared size, the CRC-32, and the hash that the
//! wheel's RECORD gives. A 900 MB wheel is therefore never held in memory.
//!
//! Refused outright: multi-disk archives, encryption, compression methods
//! other than stored and deflate, non-UTF-8 names, duplicate names, members
//! whose local header disagrees with the central directory, members whose
//! data overlap (the non-recursive zip bomb) and members whose declared size
//! is implausible for their compressed size.

use fs_err::os::unix::fs::FileExt;
use fs_err::File;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest as _;

use crate::tree::{ContentSource, RawDeflate};

/// Members that inflate more than this many times their compressed size are
/// refused once they are at least [`RATIO_MIN_SIZE`] large. Large real
/// members stay far below: across the 122 wheels of the flagship image no
/// member of 1 MiB or more exceeds 24:1 except one auditwheel-padded 2 MiB
/// library at 224:1 (zeros up to a 2 MiB page boundary), which is why small
/// members are exempt. Deflate's ceiling is about 1032:1.
pub const MAX_RATIO: u64 = 100;
/// Members below this size are never refused for their ratio.
pub const RATIO_MIN_SIZE: u64 = 32 << 20;
/// Largest total declared size of one wheel (torch 2.9.0: 1.7 GB).
pub const MAX_TOTAL_SIZE: u64 = 32 << 30;
/// Most members one wheel may have (torch 2.9.0: 12,232).
pub const MAX_ENTRIES: usize = 1_000_000;

/// A refused or unreadable wheel archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{wheel}: {message}{}", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
pub struct ZipError {
    /// The wheel file name.
    pub wheel: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// An opened wheel file.
#[derive(Debug)]
pub struct ZipFile {
    file: File,
    path: PathBuf,
    /// The wheel's file name, for messages.
    pub label: String,
    len: u64,
}

/// One member of the central directory.
#[derive(Debug, Clone)]
pub struct ZipEntry {
    /// Member name as stored (UTF-8).
    pub name: String,
    /// 0 = stored, 8 = deflate.
    pub method: u16,
    /// CRC-32 of the uncompressed bytes.
    pub crc32: u32,
    /// Compressed size.
    pub compressed: u64,
    /// Declared uncompressed size.
    pub size: u64,
    /// Offset of the local header.
    pub local_offset: u64,
    /// Unix mode bits from `external_attr` when the archive was made on Unix.
    pub unix_mode: Option<u32>,
}

impl ZipEntry {
    /// A directory entry (name ends in `/`).
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
    /// A symbolic link (Unix `S_IFLNK`).
    pub fn is_symlink(&self) -> bool {
        self.unix_mode.is_some_and(|m| m & 0o170000 == 0o120000)
    }
    /// Executable the way pip decides it: a regular file with any x bit.
    pub fn is_executable(&self) -> bool {
        self.unix_mode.is_some_and(|m| m & 0o170000 == 0o100000 && m & 0o111 != 0)
    }
}

/// A wheel's central directory over its file.
#[derive(Debug, Clone)]
pub struct ZipArchive {
    /// The file.
    pub file: Arc<ZipFile>,
    /// Members in central-directory order.
    pub entries: Vec<ZipEntry>,
    index: HashMap<String, usize>,
}

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64le(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl ZipArchive {
    /// Opens `path` (named `label` in messages) and reads its central directory.
    pub fn open(path: &Path, label: &str) -> Result<ZipArchive, ZipError> {
        let bad = |m: String| ZipError { wheel: label.to_string(), message: m, hint: None };
        let file = File::open(path).map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
        let len = file.metadata().map_err(|e| bad(format!("cannot stat {}: {e}", path.display())))?.len();
        let zf = ZipFile { file, path: path.to_path_buf(), label: label.to_string(), len };
        let read = |off: u64, n: usize| -> Result<Vec<u8>, ZipError> {
            let mut buf = vec![0u8; n];
            zf.file
                .read_exact_at(&mut buf, off)
                .map_err(|e| bad(format!("reading {} bytes at offset {off}: {e}", n)))?;
            Ok(buf)
        };
        // End of central directory: within the last 64 KiB + 22 bytes.
        let tail_len = len.min(65_535 + 22) as usize;
        if tail_len < 22 {
            return Err(bad(format!("not a zip archive ({len} bytes)")));
        }
        let tail = read(len - tail_len as u64, tail_len)?;
        let eocd = (0..=tail_len - 22)
            .rev()
            .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
            .ok_or_else(|| bad("not a zip archive (no end-of-central-directory record)".into()))?;
        let e = &tail[eocd..];
        if u16le(e, 4) != 0 || u16le(e, 6) != 0 {
            return Err(bad("multi-disk zip archives are not supported".into()));
        }
        let mut count = u64::from(u16le(e, 10));
        let mut cd_size = u64::from(u32le(e, 12));
        let mut cd_off = u64::from(u32le(e, 16));
        let eocd_abs = len - tail_len as u64 + eocd as u64;
        // Zip64: a locator sits right before the EOCD record.
        if eocd_abs >= 20 {
            let loc = read(eocd_abs - 20, 20)?;
            if loc[..4] == [0x50, 0x4b, 0x06, 0x07] {
                let z64_off = u64le(&loc, 8);
                if z64_off.checked_add(56).is_none_or(|end| end > len) {
                    return Err(bad("corrupt zip64 locator".into()));
                }
                let z = read(z64_off, 56)?;
                if z[..4] != [0x50, 0x4b, 0x06, 0x06] {
                    return Err(bad("corrupt zip64 end-of-central-directory record".into()));
                }
                count = u64le(&z, 32);
                cd_size = u64le(&z, 40);
                cd_off = u64le(&z, 48);
            }
        }
        if count as usize > MAX_ENTRIES {
            return Err(bad(format!("{count} members is more than the {MAX_ENTRIES} allowed")));
        }
        if cd_off.checked_add(cd_size).is_none_or(|end| end > len) {
            return Err(bad(format!(
                "central directory ({cd_size} bytes at {cd_off}) lies outside the {len}-byte file"
            )));
        }
        let cd = read(cd_off, cd_size as usize)?;
        let mut entries = Vec::with_capacity(count as usize);
        let mut index = HashMap::with_capacity(count as usize);
        let mut p = 0usize;
        for _ in 0..count {
            if p + 46 > cd.len() || cd[p..p + 4] != [0x50, 0x4b, 0x01, 0x02] {
                return Err(bad("corrupt central directory".into()));
            }
            let made_by = u16le(&cd, p + 4);
            let flags = u16le(&cd, p + 8);
            let method = u16le(&cd, p + 10);
            let crc32 = u32le(&cd, p + 16);
            let mut compressed = u64::from(u32le(&cd, p + 20));
            let mut size = u64::from(u32le(&cd, p + 24));
            let n = usize::from(u16le(&cd, p + 28));
            let x = usize::from(u16le(&cd, p + 30));
            let c = usize::from(u16le(&cd, p + 32));
            let disk = u16le(&cd, p + 34);
            let ext = u32le(&cd, p + 38);
            let mut local_offset = u64::from(u32le(&cd, p + 42));
            if p + 46 + n + x + c > cd.len() {
                return Err(bad("corrupt central directory".into()));
            }
            let name = std::str::from_utf8(&cd[p + 46..p + 46 + n])
                .map_err(|_| {
                    bad(format!("member name {:?} is not UTF-8", String::from_utf8_lossy(&cd[p + 46..p + 46 + n])))
                })?
                .to_string();
            // Zip64 extended information.
            let mut xp = p + 46 + n;
            let xend = xp + x;
            while xp + 4 <= xend {
                let id = u16le(&cd, xp);
                let sz = usize::from(u16le(&cd, xp + 2));
                let body = xp + 4;
                if body + sz > xend {
                    break;
                }
                if id == 0x0001 {
                    let mut q = body;
                    for field in [&mut size, &mut compressed, &mut local_offset] {
                        if *field == 0xFFFF_FFFF {
                            if q + 8 > body + sz {
                                return Err(bad(format!("member `{name}`: truncated zip64 field")));
                            }
                            *field = u64le(&cd, q);
                            q += 8;
                        }
                    }
                }
                xp = body + sz;
            }
            p += 46 + n + x + c;
            if disk != 0 {
                return Err(bad(format!("member `{name}` is on another disk; multi-disk archives are not supported")));
            }
            if flags & 1 != 0 {
                return Err(bad(format!("member `{name}` is encrypted")));
            }
            if method != 0 && method != 8 {
                return Err(ZipError {
                    wheel: label.into(),
                    message: format!(
                        "member `{name}` uses compression method {method}; wheels use stored (0) or deflate (8)"
                    ),
                    hint: Some("rebuild the wheel with a standard tool (pip wheel, uv build, python -m build)".into()),
                });
            }
            if method == 0 && compressed != size {
                return Err(bad(format!("stored member `{name}` has compressed size {compressed} but size {size}")));
            }
            let unix_mode = (made_by >> 8 == 3).then_some(ext >> 16).filter(|m| *m != 0);
            if index.insert(name.clone(), entries.len()).is_some() {
                return Err(ZipError {
                    wheel: label.into(),
                    message: format!("member `{name}` appears twice"),
                    hint: Some("duplicate names make the content ambiguous; rebuild the wheel".into()),
                });
            }
            entries.push(ZipEntry { name, method, crc32, compressed, size, local_offset, unix_mode });
        }
        let archive = ZipArchive { file: Arc::new(zf), entries, index };
        archive.check_bombs(cd_off)?;
        Ok(archive)
    }

    fn check_bombs(&self, cd_off: u64) -> Result<(), ZipError> {
        let label = &self.file.label;
        let bomb = |m: String| ZipError {
            wheel: label.clone(),
            message: m,
            hint: Some(
                "this looks like a zip bomb; a real wheel never does this. Check where the wheel came from".into(),
            ),
        };
        let mut total: u64 = 0;
        for e in &self.entries {
            total = total.saturating_add(e.size);
            if e.size >= RATIO_MIN_SIZE && e.size > e.compressed.saturating_mul(MAX_RATIO) {
                return Err(bomb(format!(
                    "member `{}` declares {} bytes from {} compressed bytes (ratio {}:1, limit {MAX_RATIO}:1)",
                    e.name,
                    e.size,
                    e.compressed,
                    e.size / e.compressed.max(1)
                )));
            }
        }
        if total > MAX_TOTAL_SIZE {
            return Err(bomb(format!(
                "members declare {total} bytes in all, more than the {MAX_TOTAL_SIZE}-byte limit"
            )));
        }
        // Member data must not overlap: [local header, data end) ranges in offset order.
        let mut ranges: Vec<(u64, u64, &str)> = self
            .entries
            .iter()
            .map(|e| {
                (
                    e.local_offset,
                    e.local_offset.saturating_add(30 + e.name.len() as u64).saturating_add(e.compressed),
                    e.name.as_str(),
                )
            })
            .collect();
        ranges.sort();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(bomb(format!(
                    "members `{}` and `{}` share compressed data (overlapping entries)",
                    w[0].2, w[1].2
                )));
            }
        }
        if let Some(last) = ranges.last() {
            if last.1 > cd_off {
                return Err(bomb(format!("member `{}` runs into the central directory", last.2)));
            }
        }
        Ok(())
    }

    /// The member called `name`.
    pub fn get(&self, name: &str) -> Option<&ZipEntry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// A checking reader over a member's uncompressed bytes.
    pub fn open_member(&self, entry: &ZipEntry, expect: Option<&RecordHash>) -> io::Result<MemberReader<'static>> {
        open_member(self.file.clone(), entry, expect.cloned())
    }

    /// Reads a small member whole (checked), refusing more than `limit` bytes.
    pub fn read_small(&self, entry: &ZipEntry, expect: Option<&RecordHash>, limit: u64) -> Result<Vec<u8>, ZipError> {
        if entry.size > limit {
            return Err(ZipError {
                wheel: self.file.label.clone(),
                message: format!(
                    "member `{}` is {} bytes; at most {limit} are expected for this kind of file",
                    entry.name, entry.size
                ),
                hint: None,
            });
        }
        let mut out = Vec::with_capacity(entry.size as usize);
        self.open_member(entry, expect).and_then(|mut r| r.read_to_end(&mut out)).map_err(|e| ZipError {
            wheel: self.file.label.clone(),
            message: e.to_string(),
            hint: None,
        })?;
        Ok(out)
    }
}

/// A RECORD hash that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match problem {
    RecordHashProblem::NotAlgorithmValue => format!("hash `{hash}` is not ALGORITHM=VALUE"),
    RecordHashProblem::WeakAlgorithm(a) => format!("hash algorithm `{a}` is not accepted (sha256 or stronger is required)"),
    RecordHashProblem::NotBase64 => format!("hash `{hash}` is not urlsafe base64"),
    RecordHashProblem::Length { algorithm, found, want } => format!("hash `{hash}` has {found} bytes, {algorithm} has {want}"),
})]
pub struct RecordHashError {
    /// The hash as written.
    pub hash: String,
    /// What is wrong.
    pub problem: RecordHashProblem,
}

/// What is wrong with a RECORD hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordHashProblem {
    /// No `=`.
    NotAlgorithmValue,
    /// MD5, SHA-1 or unknown.
    WeakAlgorithm(String),
    /// The value does not decode.
    NotBase64,
    /// The digest has the wrong length.
    Length {
        /// The algorithm.
        algorithm: String,
        /// Bytes found.
        found: usize,
        /// Bytes the algorithm makes.
        want: usize,
    },
}

/// A hash from a RECORD line (`sha256=<urlsafe b64>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHash {
    /// `sha256`, `sha384` or `sha512`.
    pub algorithm: String,
    /// The digest bytes.
    pub digest: Vec<u8>,
    /// As written in RECORD.
    pub text: String,
}

impl RecordHash {
    /// Parses `algo=value`; algorithms weaker than SHA-256 are refused.
    pub fn parse(s: &str) -> Result<RecordHash, RecordHashError> {
        let bad = |problem| RecordHashError { hash: s.to_string(), problem };
        let (algo, value) = s.split_once('=').ok_or_else(|| bad(RecordHashProblem::NotAlgorithmValue))?;
        let want = match algo {
            "sha256" => 32,
            "sha384" => 48,
            "sha512" => 64,
            other => return Err(bad(RecordHashProblem::WeakAlgorithm(other.to_string()))),
        };
        let digest = crate::encoding::decode_url_safe(value).map_err(|_| bad(RecordHashProblem::NotBase64))?;
        if digest.len() != want {
            return Err(bad(RecordHashProblem::Length { algorithm: algo.to_string(), found: digest.len(), want }));
        }
        Ok(RecordHash { algorithm: algo.to_string(), digest, text: s.to_string() })
    }

    /// The SHA-256 as a [`crate::digest::Digest`] when that is the algorithm.
    pub fn sha256(&self) -> Option<crate::digest::Digest> {
        (self.algorithm == "sha256").then(|| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&self.digest);
            crate::digest::Digest(a)
        })
    }
}

/// RECORD's encoding: urlsafe base64 without padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    crate::encoding::encode_url_safe(bytes)
}

enum Hashing {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hashing {
    fn new(algo: &str) -> Hashing {
        match algo {
            "sha384" => Hashing::Sha384(sha2::Sha384::new()),
            "sha512" => Hashing::Sha512(sha2::Sha512::new()),
            _ => Hashing::Sha256(sha2::Sha256::new()),
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hashing::Sha256(h) => h.update(b),
            Hashing::Sha384(h) => h.update(b),
            Hashing::Sha512(h) => h.update(b),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Hashing::Sha256(h) => h.finalize().to_vec(),
            Hashing::Sha384(h) => h.finalize().to_vec(),
            Hashing::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

struct PosReader {
    file: Arc<ZipFile>,
    pos: u64,
    end: u64,
}

impl Read for PosReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.file.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than its zip directory says", self.file.path.display()),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads one member, checking size, CRC-32 and the RECORD hash as bytes pass.
pub struct MemberReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    label: String,
    name: String,
    size: u64,
    crc: u32,
    produced: u64,
    crc_hasher: crc32fast::Hasher,
    hash: Option<(Hashing, RecordHash)>,
    done: bool,
}

fn member_err(_label: &str, name: &str, msg: String) -> io::Error {
    // The wheel is named by whoever reports the error (the content's origin).
    io::Error::new(io::ErrorKind::InvalidData, format!("member `{name}`: {msg}"))
}

/// The offset of a member's data, after checking its local header against
/// the central directory.
fn data_start(file: &ZipFile, e: &ZipEntry) -> io::Result<u64> {
    let err = |m: String| member_err(&file.label, &e.name, m);
    let mut h = [0u8; 30];
    file.file.read_exact_at(&mut h, e.local_offset).map_err(|x| err(format!("reading the local header: {x}")))?;
    if h[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Err(err("bad local header signature".into()));
    }
    let n = u64::from(u16le(&h, 26));
    let x = u64::from(u16le(&h, 28));
    let mut name = vec![0u8; n as usize];
    file.file
        .read_exact_at(&mut name, e.local_offset + 30)
        .map_err(|x| err(format!("reading the local header: {x}")))?;
    if name != e.name.as_bytes() {
        return Err(err(format!(
            "the local header names `{}`; the central directory and local headers disagree",
            String::from_utf8_lossy(&name)
        )));
    }
    let start = e.local_offset + 30 + n + x;
    start
        .checked_add(e.compressed)
        .filter(|&end| end <= file.len)
        .ok_or_else(|| err("data runs past the end of the file".into()))?;
    Ok(start)
}

fn open_member(file: Arc<ZipFile>, e: &ZipEntry, expect: Option<RecordHash>) -> io::Result<MemberReader<'static>> {
    let start = data_start(&file, e)?;
    let raw = PosReader { file: file.clone(), pos: start, end: start + e.compressed };
    let inner: Box<dyn Read + Send> =
        if e.method == 8 { Box::new(flate2::read::DeflateDecoder::new(raw)) } else { Box::new(raw) };
    Ok(MemberReader {
        inner,
        label: file.label.clone(),
        name: e.name.clone(),
        size: e.size,
        crc: e.crc32,
        produced: 0,
        crc_hasher: crc32fast::Hasher::new(),
        hash: expect.map(|r| (Hashing::new(&r.algorithm), r)),
        done: false,
    })
}

impl MemberReader<'_> {
    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        let mut probe = [0u8; 1];
        if self.inner.read(&mut probe)? != 0 {
            return Err(member_err(&self.label, &self.name, format!(
                "inflates to more than the {} bytes its zip directory declares; refused (zip bomb or corrupt wheel)", self.size)));
        }
        let crc = std::mem::take(&mut self.crc_hasher).finalize();
        if crc != self.crc {
            return Err(member_err(
                &self.label,
                &self.name,
                format!(
                    "CRC-32 mismatch: zip directory says {:08x}, the bytes give {crc:08x} (corrupt wheel)",
                    self.crc
                ),
            ));
        }
        if let Some((h, rec)) = self.hash.take() {
            let found = h.finish();
            if found != rec.digest {
                return Err(member_err(&self.label, &self.name, format!(
                    "RECORD hash mismatch\n  RECORD says: {}\n  content has: {}={}\nhint: the wheel was modified after it was built, or its RECORD is wrong; installers must refuse it. Rebuild the wheel or get it from its original source",
                    rec.text, rec.algorithm, b64_encode(&found))));
            }
        }
        Ok(())
    }
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min((self.size - self.produced).min(1 << 20) as usize);
        if want == 0 {
            self.finish()?;
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(member_err(
                &self.label,
                &self.name,
                format!(
                    "ends after {} of its declared {} bytes (truncated or corrupt wheel)",
                    self.produced, self.size
                ),
            ));
        }
        self.crc_hasher.update(&buf[..n]);
        if let Some((h, _)) = &mut self.hash {
            h.update(&buf[..n]);
        }
        self.produced += n as u64;
        if self.produced == self.size {
            self.finish()?;
        }
        Ok(n)
    }
}

/// A wheel member as file content: streamed (and checked) when the layer is written.
#[derive(Debug, Clone)]
pub struct ZipMember {
    /// The archive file.
    pub file: Arc<ZipFile>,
    /// The member.
    pub entry: ZipEntry,
    /// The RECORD hash it must match.
    pub expect: Option<RecordHash>,
}

impl ContentSource for ZipMember {
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(open_member(self.file.clone(), &self.entry, self.expect.clone())?))
    }

    /// The member's deflate bytes, for gzip splicing. The layer writer
    /// inflates them while copying and checks the size, the CRC-32 and the
    /// tree entry's sha256 (the RECORD hash), so this is offered only when
    /// RECORD's hash is a sha256, and only for a plausible compressed size
    /// (at most the declared size plus deflate's worst-case overhead), so a
    /// lying member takes the bounded reader and is refused early.
    fn raw_deflate(&self) -> io::Result<Option<RawDeflate<'_>>> {
        let e = &self.entry;
        let sha256 = self.expect.as_ref().and_then(RecordHash::sha256);
        if e.method != 8 || sha256.is_none() || e.compressed > e.size + e.size / 64 + 1024 {
            return Ok(None);
        }
        let start = data_start(&self.file, e)?;
        let reader = PosReader { file: self.file.clone(), pos: start, end: start + e.compressed };
        Ok(Some(RawDeflate { reader: Box::new(reader), compressed_size: e.compressed, crc32: e.crc32 }))
    }

    fn describe(&self) -> String {
        format!("wheel {}", self.file.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_base64_round_trips() {
        let d = crate::digest::Digest::of(b"");
        let s = b64_encode(&d.0);
        assert_eq!(s, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_eq!(crate::encoding::decode_url_safe(&s).unwrap(), d.0.to_vec());
        assert!(RecordHash::parse("md5=abc").is_err());
        assert!(RecordHash::parse("sha256=abc").is_err());
        assert_eq!(RecordHash::parse(&format!("sha256={s}")).unwrap().sha256(), Some(d));
    }
}
