//! A generated `/etc/ld.so.cache`, so that `ldconfig -p` (and with it
//! Python's `ctypes.util.find_library`) and the dynamic loader find the
//! image's libraries without running `ldconfig` at build time.
//!
//! Format: glibc's "new" cache, `glibc-ld.so.cache1.1` (glibc ≥ 2.32 writes
//! only this one), little-endian:
//!
//! ```text
//! header (48 bytes)
//!   magic      "glibc-ld.so.cache" (17 bytes) + version "1.1" (3 bytes)
//!   nlibs      u32   number of entries
//!   len_strings u32  size of the string table
//!   flags      u8    2 = little-endian
//!   padding    3 bytes
//!   extension_offset u32  0 = no extensions
//!   unused     3 × u32
//! entries (24 bytes each)
//!   flags      i32   0x0303 = ELF libc6 | x86-64
//!   key        u32   offset of the soname, from the start of the file
//!   value      u32   offset of the full path, from the start of the file
//!   osversion  u32   0
//!   hwcap      u64   0
//! string table: NUL-terminated strings
//! ```
//!
//! Entries are sorted in descending `_dl_cache_libcmp` order (digit runs
//! compare as numbers), which the loader's binary search relies on.

use std::cmp::Ordering;

/// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`.
pub const FLAG_X86_64_LIBC6: i32 = 0x0303;

const MAGIC: &[u8; 20] = b"glibc-ld.so.cache1.1";

/// One cache entry: `key` (a soname such as `libc.so.6`) → absolute `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The name programs ask for.
    pub key: String,
    /// Absolute path of the library.
    pub path: String,
    /// Entry flags.
    pub flags: i32,
}

/// glibc's `_dl_cache_libcmp`.
pub fn libcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        let (ca, cb) = (a[i], b.get(j).copied().unwrap_or(0));
        if ca.is_ascii_digit() {
            if cb.is_ascii_digit() {
                let (mut va, mut vb) = (0u64, 0u64);
                while i < a.len() && a[i].is_ascii_digit() {
                    va = va.saturating_mul(10).saturating_add((a[i] - b'0') as u64);
                    i += 1;
                }
                while j < b.len() && b[j].is_ascii_digit() {
                    vb = vb.saturating_mul(10).saturating_add((b[j] - b'0') as u64);
                    j += 1;
                }
                if va != vb {
                    return va.cmp(&vb);
                }
            } else {
                return Ordering::Greater;
            }
        } else if cb.is_ascii_digit() {
            return Ordering::Less;
        } else if ca != cb {
            return ca.cmp(&cb);
        } else {
            i += 1;
            j += 1;
        }
    }
    0u8.cmp(&b.get(j).copied().unwrap_or(0))
}

/// Serialises entries as an ld.so.cache file. Entries are sorted here
/// (stable, so equal keys keep the caller's directory order).
pub fn write_cache(entries: &[CacheEntry]) -> Vec<u8> {
    let mut sorted: Vec<&CacheEntry> = entries.iter().collect();
    sorted.sort_by(|x, y| libcmp(&y.key, &x.key).then(y.flags.cmp(&x.flags)));
    let header = 48usize;
    let strings_start = header + 24 * sorted.len();
    let mut strings: Vec<u8> = Vec::new();
    let mut offsets = Vec::new();
    let mut intern = std::collections::BTreeMap::<&str, u32>::new();
    for e in &sorted {
        let mut pair = [0u32; 2];
        for (i, st) in [e.key.as_str(), e.path.as_str()].into_iter().enumerate() {
            pair[i] = match intern.get(st) {
                Some(o) => *o,
                None => {
                    let o = (strings_start + strings.len()) as u32;
                    strings.extend_from_slice(st.as_bytes());
                    strings.push(0);
                    intern.insert(st, o);
                    o
                }
            };
        }
        offsets.push((pair[0], pair[1]));
    }
    let mut out = Vec::with_capacity(strings_start + strings.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    out.push(2); // little-endian
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&0u32.to_le_bytes()); // no extension
    out.extend_from_slice(&[0u8; 12]);
    for (e, (k, v)) in sorted.iter().zip(&offsets) {
        out.extend_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
    }
    out.extend_from_slice(&strings);
    out
}

/// An `ld.so.cache` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheFormatError {
    /// Wrong magic.
    #[error("not a glibc-ld.so.cache1.1 file")]
    NotACache,
    /// Shorter than its header says.
    #[error("truncated at offset {offset}")]
    Truncated {
        /// Where.
        offset: usize,
    },
    /// A string offset past the end.
    #[error("string offset {offset} out of range")]
    OffsetOutOfRange {
        /// Where.
        offset: usize,
    },
    /// A string without its NUL.
    #[error("unterminated string at offset {offset}")]
    Unterminated {
        /// Where.
        offset: usize,
    },
}

/// Reads a cache written by [`write_cache`] (or ldconfig, new format only).
pub fn read_cache(b: &[u8]) -> Result<Vec<CacheEntry>, CacheFormatError> {
    if b.len() < 48 || &b[..20] != MAGIC {
        return Err(CacheFormatError::NotACache);
    }
    let u32_at = |o: usize| -> Result<u32, CacheFormatError> {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or(CacheFormatError::Truncated { offset: o })
    };
    let n = u32_at(20)? as usize;
    let cstr = |o: usize| -> Result<String, CacheFormatError> {
        let s = b.get(o..).ok_or(CacheFormatError::OffsetOutOfRange { offset: o })?;
        let end = s.iter().position(|&c| c == 0).ok_or(CacheFormatError::Unterminated { offset: o })?;
        Ok(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let e = 48 + 24 * i;
        let flags = u32_at(e)? as i32;
        out.push(CacheEntry { flags, key: cstr(u32_at(e + 4)? as usize)?, path: cstr(u32_at(e + 8)? as usize)? });
    }
    Ok(out)
}

/// What an ELF file says about itself, as far as ldconfig cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfLib {
    /// `DT_SONAME`, when present.
    pub soname: Option<String>,
    /// `DT_NEEDED`: the libraries it links against, in order.
    pub needed: Vec<String>,
}

/// Parses a 64-bit little-endian shared object for ELF machine `machine`
/// (62 x86-64, 183 AArch64); `None` for anything else (other classes,
/// machines, executables, non-ELF files): ldconfig leaves out libraries of
/// other machines.
pub fn parse_elf(b: &[u8], machine: u16) -> Option<ElfLib> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])));
    let u64_at = |o: usize| b.get(o..o + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])));
    if u16_at(16)? != 3 || u16_at(18)? != machine {
        return None; // not ET_DYN, or another machine
    }
    let phoff = u64_at(32)? as usize;
    let phentsize = u16_at(54)? as usize;
    let phnum = u16_at(56)? as usize;
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..phnum.min(512) {
        let p = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let ptype = u32_at(p)?;
        let (off, vaddr, filesz) = (u64_at(p + 8)?, u64_at(p + 16)?, u64_at(p + 32)?);
        match ptype {
            1 => loads.push((vaddr, off, filesz)),
            2 => dynamic = Some((off, filesz)),
            _ => {}
        }
    }
    let Some((doff, dsize)) = dynamic else { return Some(ElfLib { soname: None, needed: Vec::new() }) };
    let (mut strtab, mut soname_off, mut needed_off) = (None, None, Vec::new());
    let mut o = doff as usize;
    let end = (doff.saturating_add(dsize)) as usize;
    while o + 16 <= end.min(b.len()) {
        let tag = u64_at(o)?;
        let val = u64_at(o + 8)?;
        match tag {
            0 => break,
            5 => strtab = Some(val),
            14 => soname_off = Some(val),
            1 if needed_off.len() < 4096 => needed_off.push(val),
            _ => {}
        }
        o += 16;
    }
    let Some(st) = strtab else { return Some(ElfLib { soname: None, needed: Vec::new() }) };
    let Some(file_off) = loads.iter().find(|(va, _, sz)| st >= *va && st < va + sz).map(|(va, off, _)| st - va + off)
    else {
        return soname_off.is_none().then(|| ElfLib { soname: None, needed: Vec::new() });
    };
    let string = |at: u64| -> Option<String> {
        let start = file_off.checked_add(at)? as usize;
        let s = b.get(start..)?;
        let len = s.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&s[..len]).into_owned())
    };
    let soname = match soname_off {
        Some(so) => Some(string(so)?),
        None => None,
    };
    let needed = needed_off.into_iter().map(string).collect::<Option<Vec<_>>>()?;
    Some(ElfLib { soname, needed })
}

/// glibc's `_dl_is_dso`: names ldconfig looks at.
pub fn looks_like_dso(name: &str) -> bool {
    (name.starts_with("lib") || name.starts_with("ld-")) && name.contains(".so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libcmp_compares_digit_runs_numerically() {
        assert_eq!(libcmp("libc.so.6", "libc.so.6"), Ordering::Equal);
        assert_eq!(libcmp("libfoo.so.10", "libfoo.so.9"), Ordering::Greater);
        assert_eq!(libcmp("liba.so", "libb.so"), Ordering::Less);
        assert_eq!(libcmp("libc.so", "libc.so.6"), Ordering::Less);
        assert_eq!(libcmp("lib1", "liba"), Ordering::Greater);
    }

    #[test]
    fn cache_round_trips_sorted_descending() {
        let e = |k: &str, p: &str| CacheEntry { key: k.into(), path: p.into(), flags: FLAG_X86_64_LIBC6 };
        let bytes = write_cache(&[
            e("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
            e("libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"),
            e("libffi.so.8", "/usr/lib/x86_64-linux-gnu/libffi.so.8"),
        ]);
        assert_eq!(&bytes[..20], b"glibc-ld.so.cache1.1");
        let back = read_cache(&bytes).unwrap();
        let keys: Vec<&str> = back.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["libz.so.1", "libffi.so.8", "libc.so.6"]);
        assert_eq!(back[2].path, "/lib/x86_64-linux-gnu/libc.so.6");
        assert!(read_cache(b"nope").is_err());
    }

    /// The cache is accepted by the host's own ldconfig (`ldconfig -p -C FILE`)
    /// when one is installed.
    #[test]
    fn host_ldconfig_reads_the_cache() {
        let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig"].into_iter().find(|p| std::path::Path::new(p).is_file());
        let Some(ldconfig) = ldconfig else {
            if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("ldconfig is required (STRATA_REQUIRE_TOOLS=1)");
            }
            eprintln!("note: no ldconfig on this host; skipping");
            return;
        };
        let e = |k: &str, p: &str| CacheEntry { key: k.into(), path: p.into(), flags: FLAG_X86_64_LIBC6 };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ld.so.cache");
        fs_err::write(
            &f,
            write_cache(&[
                e("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
                e("libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6"),
            ]),
        )
        .unwrap();
        let out = std::process::Command::new(ldconfig).arg("-p").arg("-C").arg(&f).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("2 libs found in cache"), "{text}");
        assert!(text.contains("libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"), "{text}");

        // An arm64 image's cache: glibc names the entries' flags AArch64.
        let flags = crate::platform::Arch::Arm64.ldcache_flags();
        let e = |k: &str, p: &str| CacheEntry { key: k.into(), path: p.into(), flags };
        fs_err::write(&f, write_cache(&[e("libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6")])).unwrap();
        let out = std::process::Command::new(ldconfig).arg("-p").arg("-C").arg(&f).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("libc.so.6 (libc6,AArch64) => /lib/aarch64-linux-gnu/libc.so.6"), "{text}");
    }

    #[test]
    fn elf_soname_of_a_real_library() {
        let Some(p) = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
        else {
            eprintln!("note: no x86-64 libc on this host; skipping");
            return;
        };
        let b = fs_err::read(p).unwrap();
        let elf = parse_elf(&b, 62).unwrap();
        assert_eq!(elf.soname.as_deref(), Some("libc.so.6"));
        // glibc's libc links against the dynamic loader.
        assert!(elf.needed.iter().any(|n| n.starts_with("ld-linux")), "{:?}", elf.needed);
        assert_eq!(parse_elf(&b, 183), None);
        assert_eq!(parse_elf(b"not elf", 62), None);
        // Truncated input never panics.
        for n in [0, 16, 63, 64, 70, 200, 4096] {
            let _ = parse_elf(&b[..n.min(b.len())], 62);
        }
    }
}
