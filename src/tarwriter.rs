//! A minimal, fully deterministic tar writer for layers.
//!
//! Headers are POSIX ustar with numeric owners only (empty user/group names).
//! Anything that does not fit a ustar field (paths or link targets over 100
//! bytes, sizes of 8 GiB and more, large ids) is carried in a PAX extended
//! header placed just before the entry, named `PaxHeaders/<n>` where `n` is a
//! fixed string. No atime/ctime records are ever written.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// Entry types the layer writer emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarType {
    /// Regular file.
    File,
    /// Hard link.
    Hardlink,
    /// Symbolic link.
    Symlink,
    /// Directory.
    Dir,
}

impl TarType {
    fn flag(self) -> u8 {
        match self {
            TarType::File => b'0',
            TarType::Hardlink => b'1',
            TarType::Symlink => b'2',
            TarType::Dir => b'5',
        }
    }
}

/// Header fields of one entry.
#[derive(Debug, Clone)]
pub struct TarHeader<'a> {
    /// Path without a leading slash; directories get a trailing slash here.
    pub path: &'a str,
    /// Entry type.
    pub kind: TarType,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Size of the data that follows (0 for non-files).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Link target for symlinks and hardlinks.
    pub link: Option<&'a str>,
}

/// Writes tar entries to `W`.
pub struct TarWriter<W: Write> {
    out: W,
}

fn octal(field: &mut [u8], value: u64) -> bool {
    // width-1 octal digits then NUL
    let digits = field.len() - 1;
    let s = format!("{:0width$o}", value, width = digits);
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    // "<len> <key>=<value>\n" where len counts itself.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    loop {
        let candidate = format!("{len}{body}");
        if candidate.len() == len {
            return candidate.into_bytes();
        }
        len = candidate.len();
    }
}

impl<W: Write> TarWriter<W> {
    /// A writer over `out`.
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    #[allow(clippy::too_many_arguments)]
    fn raw_header(
        &mut self,
        name: &[u8],
        kind: u8,
        mode: u32,
        uid: u64,
        gid: u64,
        size: u64,
        mtime: u64,
        link: &[u8],
    ) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(mode & 0o7777));
        octal(&mut h[108..116], uid);
        octal(&mut h[116..124], gid);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        // devmajor/devminor: zero-filled octal as most writers emit
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{:06o}\0 ", sum);
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.write_all(&h)
    }

    /// The inner writer (to write an entry's data some other way after
    /// [`TarWriter::header`]; call [`TarWriter::pad`] afterwards).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Writes the padding that follows `size` bytes of entry data.
    pub fn pad(&mut self, size: u64) -> io::Result<()> {
        pad(&mut self.out, size)
    }

    /// Writes one entry; for files, `data` must yield exactly `header.size` bytes.
    pub fn append(&mut self, header: &TarHeader<'_>, data: Option<&mut dyn Read>) -> io::Result<()> {
        self.header(header)?;
        if header.kind == TarType::File {
            let data = data.ok_or_else(|| io::Error::other("file entry without data"))?;
            let copied = io::copy(&mut data.take(header.size), &mut self.out)?;
            if copied != header.size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: expected {} bytes, the source gave {}", header.path, header.size, copied),
                ));
            }
            // A source that grew since it was measured would silently lose bytes.
            let mut probe = [0u8; 1];
            if data.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!(
                    "{}: the source has more than the {} bytes recorded (did the file change during the build?)",
                    header.path, header.size
                )));
            }
            pad(&mut self.out, header.size)?;
        }
        Ok(())
    }

    /// Writes an entry's header block(s) only (PAX record included).
    pub fn header(&mut self, header: &TarHeader<'_>) -> io::Result<()> {
        let mut pax = Vec::new();
        let path = header.path.as_bytes();
        let name_field: &[u8] = if path.len() > 100 {
            pax.extend(pax_record("path", header.path));
            // The ustar name keeps a recognisable, deterministic prefix.
            truncate_utf8(path, 100)
        } else {
            path
        };
        let link = header.link.unwrap_or("").as_bytes();
        let link_field: &[u8] = if link.len() > 100 {
            pax.extend(pax_record("linkpath", header.link.unwrap_or("")));
            truncate_utf8(link, 100)
        } else {
            link
        };
        const MAX_SIZE: u64 = 0o77777777777;
        const MAX_ID: u64 = 0o7777777;
        let size_field = if header.size > MAX_SIZE {
            pax.extend(pax_record("size", &header.size.to_string()));
            0
        } else {
            header.size
        };
        let uid_field = if header.uid > MAX_ID {
            pax.extend(pax_record("uid", &header.uid.to_string()));
            0
        } else {
            header.uid
        };
        let gid_field = if header.gid > MAX_ID {
            pax.extend(pax_record("gid", &header.gid.to_string()));
            0
        } else {
            header.gid
        };
        let mtime_field = if header.mtime > MAX_SIZE {
            pax.extend(pax_record("mtime", &header.mtime.to_string()));
            0
        } else {
            header.mtime
        };
        if !pax.is_empty() {
            self.raw_header(b"PaxHeaders/entry", b'x', 0o644, 0, 0, pax.len() as u64, mtime_field, b"")?;
            self.out.write_all(&pax)?;
            pad(&mut self.out, pax.len() as u64)?;
        }
        self.raw_header(
            name_field,
            header.kind.flag(),
            header.mode,
            uid_field,
            gid_field,
            size_field,
            mtime_field,
            link_field,
        )
    }

    /// Writes the end-of-archive marker and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }
}

fn pad(out: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

fn truncate_utf8(b: &[u8], max: usize) -> &[u8] {
    if b.len() <= max {
        return b;
    }
    let mut end = max;
    while end > 0 && (b[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &b[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(bytes: &[u8]) -> Vec<(String, u64, Option<String>, u32)> {
        let mut ar = tar::Archive::new(bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().size().unwrap(),
                    e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()),
                    e.header().mode().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn long_paths_and_links_round_trip_through_a_standard_reader() {
        let long = format!("usr/local/lib/python3.11/dist-packages/{}/file.py", "x".repeat(150));
        let long_link = "y".repeat(180);
        let mut w = TarWriter::new(Vec::new());
        let data = b"hello";
        w.append(
            &TarHeader { path: &long, kind: TarType::File, mode: 0o755, uid: 0, gid: 0, size: 5, mtime: 0, link: None },
            Some(&mut &data[..]),
        )
        .unwrap();
        w.append(
            &TarHeader {
                path: "l",
                kind: TarType::Symlink,
                mode: 0o777,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: 0,
                link: Some(&long_link),
            },
            None,
        )
        .unwrap();
        let bytes = w.finish().unwrap();
        let got = read_back(&bytes);
        assert_eq!(got[0], (long, 5, None, 0o755));
        assert_eq!(got[1], ("l".to_string(), 0, Some(long_link), 0o777));
    }

    #[test]
    fn a_source_shorter_than_recorded_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        let data = b"abc";
        let err = w
            .append(
                &TarHeader {
                    path: "f",
                    kind: TarType::File,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    size: 10,
                    mtime: 0,
                    link: None,
                },
                Some(&mut &data[..]),
            )
            .unwrap_err();
        assert!(err.to_string().contains("expected 10 bytes"), "{err}");
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record("path", "abc");
        let s = String::from_utf8(r).unwrap();
        let (len, _) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), s.len());
    }
}
