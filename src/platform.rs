//! The CPU architectures Strata builds for, and what each is called by the
//! artifacts an image is made of: the OCI `architecture`, the Debian
//! architecture of `.deb`s, the ELF `e_machine` of executables and shared
//! objects, the machine in wheel tags and `platform_machine` markers, the
//! multiarch library directory and the `ld.so.cache` entry flags.
//!
//! Every artifact is checked against the image's architecture: a `.deb` of
//! another architecture (`all` fits every one), a wheel without a tag for
//! this machine, and an ELF executable or shared object built for another
//! CPU are errors (see [`check_elf`] and docs/multi-platform.md).

use std::fmt;
use std::io::Read;

/// A CPU architecture an image can be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Arch {
    /// x86-64 (`linux/amd64`).
    #[default]
    Amd64,
    /// 64-bit Arm (`linux/arm64`, e.g. Grace Hopper hosts).
    Arm64,
}

/// glibc's `FLAG_ELF_LIBC6`.
pub const FLAG_ELF_LIBC6: i32 = 0x0003;
/// glibc's `FLAG_X8664_LIB64`.
pub const FLAG_X8664_LIB64: i32 = 0x0300;
/// glibc's `FLAG_AARCH64_LIB64`.
pub const FLAG_AARCH64_LIB64: i32 = 0x0a00;

/// ELF machine numbers that are not a host CPU (GPU code objects, BPF
/// programs): files for them belong in images of any architecture.
const NOT_A_HOST_CPU: [u16; 3] = [
    190, // EM_CUDA
    224, // EM_AMDGPU
    247, // EM_BPF
];

impl Arch {
    /// Every supported architecture.
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The architecture of an OCI platform `os/arch[/variant]`; an error
    /// names the supported ones.
    pub fn of_platform(platform: &str) -> Result<Arch, String> {
        let Some((os, arch, variant)) = crate::spec::parse_platform(platform) else {
            return Err(format!("platform `{platform}` is not `os/arch[/variant]`"));
        };
        let supported = || Arch::ALL.iter().map(|a| a.platform()).collect::<Vec<_>>().join(", ");
        if os != "linux" {
            return Err(format!("platform `{platform}`: Strata builds Linux images only ({})", supported()));
        }
        let a = match arch.as_str() {
            "amd64" => Arch::Amd64,
            "arm64" => Arch::Arm64,
            _ => {
                return Err(format!(
                    "platform `{platform}`: architecture `{arch}` is not supported; Strata builds {}",
                    supported()
                ))
            }
        };
        match (a, variant.as_deref()) {
            (_, None) | (Arch::Arm64, Some("v8")) => Ok(a),
            (_, Some(v)) => Err(format!("platform `{platform}`: variant `{v}` is not supported for {arch}")),
        }
    }

    /// The OCI `architecture`.
    pub fn oci(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// `linux/<oci arch>`.
    pub fn platform(self) -> &'static str {
        match self {
            Arch::Amd64 => "linux/amd64",
            Arch::Arm64 => "linux/arm64",
        }
    }

    /// The Debian architecture.
    pub fn deb(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The machine of wheel platform tags and `platform_machine` markers.
    pub fn python_machine(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The ELF `e_machine` of its executables and libraries.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => 62,  // EM_X86_64
            Arch::Arm64 => 183, // EM_AARCH64
        }
    }

    /// The Debian multiarch tuple (`/usr/lib/<tuple>`).
    pub fn multiarch(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-linux-gnu",
            Arch::Arm64 => "aarch64-linux-gnu",
        }
    }

    /// The flags of its `ld.so.cache` entries, as its dynamic loader
    /// expects them (`_DL_CACHE_DEFAULT_ID`).
    pub fn ldcache_flags(self) -> i32 {
        match self {
            Arch::Amd64 => FLAG_ELF_LIBC6 | FLAG_X8664_LIB64,
            Arch::Arm64 => FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64,
        }
    }

    /// The dynamic loader's path (the `PT_INTERP` of its programs).
    pub fn dynamic_loader(self) -> &'static str {
        match self {
            Arch::Amd64 => "/lib64/ld-linux-x86-64.so.2",
            Arch::Arm64 => "/lib/ld-linux-aarch64.so.1",
        }
    }

    /// The Debian architectures whose packages fit it (`all` fits every one).
    pub fn fits_deb(self, deb_arch: &str) -> bool {
        deb_arch == "all" || deb_arch == self.deb()
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.platform())
    }
}

/// A readable name for an ELF machine number.
pub fn elf_machine_name(m: u16) -> String {
    match m {
        3 => "i386".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC64".into(),
        22 => "s390".into(),
        40 => "32-bit Arm".into(),
        62 => "x86-64".into(),
        183 => "AArch64 (arm64)".into(),
        243 => "RISC-V".into(),
        258 => "LoongArch".into(),
        n => format!("machine {n}"),
    }
}

/// What the first bytes of a file say, when it is an ELF executable or
/// shared object for a host CPU: its `e_machine`. `None` for anything else
/// (not ELF, too short, relocatable objects, core files, GPU code).
pub fn elf_machine(head: &[u8]) -> Option<u16> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let le = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |o: usize| {
        let b = [head[o], head[o + 1]];
        if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let (e_type, machine) = (u16_at(16), u16_at(18));
    // ET_EXEC and ET_DYN only: what the loader runs or maps.
    if !(e_type == 2 || e_type == 3) || machine == 0 || NOT_A_HOST_CPU.contains(&machine) {
        return None;
    }
    Some(machine)
}

/// An ELF file whose machine differs from the image's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("/{path} is an ELF {} file ({origin}), but the image is for {arch}", elf_machine_name(*machine))]
pub struct ForeignElf {
    /// Its path in the layer.
    pub path: String,
    /// The artifact it came from (the tree entry's origin).
    pub origin: String,
    /// Its machine.
    pub machine: u16,
    /// The image's architecture.
    pub arch: Arch,
}

/// Checks every regular file of `tree` whose path `allowed` does not
/// accept: an ELF executable or shared object must be for `arch`. Reads at
/// most 20 bytes of each file. Errors reading a file are left to the layer
/// writer, which reads it whole.
pub fn check_elf(tree: &crate::tree::Tree, arch: Arch, allowed: &dyn Fn(&str) -> bool) -> Result<(), ForeignElf> {
    for (path, entry) in tree.iter() {
        let crate::tree::Kind::File { content, size, .. } = &entry.kind else { continue };
        if *size < 20 {
            continue;
        }
        let Ok(mut r) = content.open() else { continue };
        let mut head = [0u8; 20];
        if r.read_exact(&mut head).is_err() {
            continue;
        }
        let Some(machine) = elf_machine(&head) else { continue };
        if machine != arch.elf_machine() && !allowed(path.as_str()) {
            return Err(ForeignElf {
                path: path.as_str().to_string(),
                origin: entry.origin.to_string(),
                machine,
                arch,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut h = b"\x7fELF".to_vec();
        h.extend_from_slice(&[class, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        if data == 1 {
            h.extend_from_slice(&e_type.to_le_bytes());
            h.extend_from_slice(&machine.to_le_bytes());
        } else {
            h.extend_from_slice(&e_type.to_be_bytes());
            h.extend_from_slice(&machine.to_be_bytes());
        }
        h.resize(64, 0);
        h
    }

    #[test]
    fn platforms_map_to_every_name_of_their_architecture() {
        let a = Arch::of_platform("linux/arm64").unwrap();
        assert_eq!((a.oci(), a.deb(), a.python_machine(), a.elf_machine()), ("arm64", "arm64", "aarch64", 183));
        assert_eq!(a.ldcache_flags(), 0x0a03);
        assert_eq!(Arch::of_platform("linux/arm64/v8").unwrap(), Arch::Arm64);
        let x = Arch::of_platform("linux/amd64").unwrap();
        assert_eq!((x.multiarch(), x.ldcache_flags()), ("x86_64-linux-gnu", 0x0303));
        let e = Arch::of_platform("linux/s390x").unwrap_err();
        assert!(e.contains("`s390x` is not supported") && e.contains("linux/amd64, linux/arm64"), "{e}");
        assert!(Arch::of_platform("windows/amd64").unwrap_err().contains("Linux images only"));
        assert!(Arch::of_platform("linux/amd64/v3").is_err());
        assert!(Arch::Arm64.fits_deb("all") && Arch::Arm64.fits_deb("arm64") && !Arch::Arm64.fits_deb("amd64"));
    }

    #[test]
    fn elf_headers_are_read_for_programs_and_libraries_only() {
        assert_eq!(elf_machine(&header(2, 1, 3, 62)), Some(62));
        assert_eq!(elf_machine(&header(2, 1, 2, 183)), Some(183));
        assert_eq!(elf_machine(&header(2, 2, 3, 22)), Some(22)); // big-endian s390x
        assert_eq!(elf_machine(&header(1, 1, 3, 40)), Some(40)); // 32-bit Arm
        assert_eq!(elf_machine(&header(2, 1, 1, 62)), None); // relocatable object
        assert_eq!(elf_machine(&header(2, 1, 2, 190)), None); // a CUDA cubin
        assert_eq!(elf_machine(&header(2, 1, 1, 247)), None); // BPF
        assert_eq!(elf_machine(b"\x7fELF"), None);
        assert_eq!(elf_machine(b"#!/bin/sh\nexec true\n\n\n"), None);
    }

    /// The host's own libc is recognised as the host's architecture.
    #[test]
    fn the_hosts_libc_is_its_own_architecture() {
        let Some(p) = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
        else {
            return;
        };
        let b = fs_err::read(p).unwrap();
        assert_eq!(elf_machine(&b[..20]), Some(Arch::Amd64.elf_machine()));
    }
}
