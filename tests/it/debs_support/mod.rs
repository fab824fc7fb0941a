//! Test helpers for the `debs:` source: .debs built here (ar + control.tar +
//! data.tar in gz/xz/zst), a Debian archive (Packages, Release, InRelease
//! signed by a key generated here) and a loopback HTTP server. No internet.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use pgp::composed::{ArmorOptions, CleartextSignedMessage, KeyType, SecretKeyParamsBuilder, SignedSecretKey};
use pgp::types::Password;
use rand::SeedableRng;
use sha2::Digest as _;

/// A tar member for the test tar writer.
#[derive(Clone)]
pub enum Member {
    /// A directory.
    Dir(&'static str),
    /// A file with mode.
    File(String, Vec<u8>, u32),
    /// A symlink.
    Link(String, String),
}

pub fn file(path: &str, content: &[u8]) -> Member {
    Member::File(path.to_string(), content.to_vec(), 0o644)
}

pub fn exe(path: &str, content: &[u8]) -> Member {
    Member::File(path.to_string(), content.to_vec(), 0o755)
}

pub fn link(path: &str, target: &str) -> Member {
    Member::Link(path.to_string(), target.to_string())
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

/// A minimal ustar writer that writes names verbatim (even `..`), so tests
/// can build hostile archives.
pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut h = [0u8; 512];
        let (name, mode, typ, size, link, data): (&str, u32, u8, usize, &str, &[u8]) = match m {
            Member::Dir(p) => (p, 0o755, b'5', 0, "", &[]),
            Member::File(p, d, mode) => (p, *mode, b'0', d.len(), "", d),
            Member::Link(p, t) => (p, 0o777, b'2', 0, t, &[]),
        };
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size as u64);
        octal(&mut h[136..148], 1_600_000_000);
        h[156] = typ;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Compression of a data.tar.
#[derive(Clone, Copy, Debug)]
pub enum Comp {
    Gz,
    Xz,
    Zst,
}

pub fn compress(c: Comp, data: &[u8]) -> (Vec<u8>, &'static str) {
    match c {
        Comp::Gz => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            (e.finish().unwrap(), ".gz")
        }
        Comp::Xz => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(data).unwrap();
            (e.finish().unwrap(), ".xz")
        }
        Comp::Zst => (zstd::encode_all(data, 3).unwrap(), ".zst"),
    }
}

fn ar_member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let h = format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", name, 0, 0, 0, "100644", data.len());
    assert_eq!(h.len(), 60);
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

/// A test package.
#[derive(Clone)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Extra control fields (`Depends: ...`), one per line.
    pub fields: Vec<String>,
    pub members: Vec<Member>,
    pub comp: Comp,
}

pub fn pkg(name: &str, version: &str) -> Pkg {
    Pkg {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        fields: vec![],
        members: vec![],
        comp: Comp::Xz,
    }
}

impl Pkg {
    pub fn field(mut self, f: &str) -> Pkg {
        self.fields.push(f.into());
        self
    }
    pub fn with(mut self, m: Member) -> Pkg {
        self.members.push(m);
        self
    }
    pub fn comp(mut self, c: Comp) -> Pkg {
        self.comp = c;
        self
    }
    pub fn control(&self) -> String {
        let mut c = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Test <t@example.org>\n",
            self.name, self.version, self.arch
        );
        for f in &self.fields {
            c.push_str(f);
            c.push('\n');
        }
        c.push_str("Description: test package\n");
        c
    }
    /// The .deb bytes.
    pub fn deb(&self) -> Vec<u8> {
        let mut md5 = String::new();
        for m in &self.members {
            if let Member::File(p, d, _) = m {
                md5.push_str(&format!("{:x}  {}\n", md5_hex(d), p.trim_start_matches("./")));
            }
        }
        let control_tar =
            tar(&[Member::Dir("./"), file("./control", self.control().as_bytes()), file("./md5sums", md5.as_bytes())]);
        let (control_gz, _) = compress(Comp::Gz, &control_tar);
        let mut members = vec![Member::Dir("./")];
        members.extend(self.members.iter().cloned());
        let (data, ext) = compress(self.comp, &tar(&members));
        let mut out = b"!<arch>\n".to_vec();
        ar_member(&mut out, "debian-binary", b"2.0\n");
        ar_member(&mut out, "control.tar.gz", &control_gz);
        ar_member(&mut out, &format!("data.tar{ext}"), &data);
        out
    }
}

/// Not a real md5 (tests only compare the file is carried over verbatim).
fn md5_hex(d: &[u8]) -> u128 {
    let h = sha2::Sha256::digest(d);
    u128::from_be_bytes(h[..16].try_into().unwrap())
}

pub use crate::common::sha256_hex;

/// A 64-bit x86-64 ELF shared object with a DT_SONAME, nothing else.
pub fn tiny_so(soname: &str) -> Vec<u8> {
    let mut b = vec![0u8; 0x200];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&3u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&2u16.to_le_bytes());
    let ph = |b: &mut Vec<u8>, at: usize, typ: u32, off: u64, vaddr: u64, size: u64| {
        b[at..at + 4].copy_from_slice(&typ.to_le_bytes());
        b[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
        b[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
        b[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        b[at + 40..at + 48].copy_from_slice(&size.to_le_bytes());
    };
    ph(&mut b, 64, 1, 0, 0, 0x200); // PT_LOAD of the whole file at vaddr 0
    ph(&mut b, 120, 2, 0x100, 0x100, 48); // PT_DYNAMIC
    let dyn_ent = |b: &mut Vec<u8>, at: usize, tag: u64, val: u64| {
        b[at..at + 8].copy_from_slice(&tag.to_le_bytes());
        b[at + 8..at + 16].copy_from_slice(&val.to_le_bytes());
    };
    dyn_ent(&mut b, 0x100, 5, 0x180); // DT_STRTAB
    dyn_ent(&mut b, 0x110, 14, 1); // DT_SONAME at strtab+1
    b[0x181..0x181 + soname.len()].copy_from_slice(soname.as_bytes());
    b
}

/// A signing key generated for one test run (deterministic seed).
pub struct TestKey {
    pub secret: SignedSecretKey,
}

impl TestKey {
    pub fn new(seed: u64) -> TestKey {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id("Strata Test Archive <archive@example.org>".into())
            .created_at(pgp::types::Timestamp::from_secs(1_600_000_000))
            .build()
            .unwrap();
        TestKey { secret: params.generate(&mut rng).unwrap() }
    }
    pub fn public_armored(&self) -> String {
        self.secret.to_public_key().to_armored_string(ArmorOptions::default()).unwrap()
    }
    pub fn clearsign(&self, text: &str) -> String {
        let rng = rand::rngs::StdRng::seed_from_u64(7);
        CleartextSignedMessage::sign(rng, text, &self.secret.primary_key, &Password::empty())
            .unwrap()
            .to_armored_string(ArmorOptions::default())
            .unwrap()
    }
}

pub use crate::common::Server;

/// Publishes packages as suite `stable` of an archive rooted at `/debian`.
/// Returns the archive URL.
pub fn publish(server: &Server, key: &TestKey, pkgs: &[Pkg]) -> String {
    publish_archs(server, key, pkgs, &["amd64"])
}

/// Publishes packages for several architectures: each `binary-ARCH/Packages`
/// lists the packages of that architecture and those of `all`.
pub fn publish_archs(server: &Server, key: &TestKey, pkgs: &[Pkg], archs: &[&str]) -> String {
    let entries: Vec<(String, String, Vec<u8>)> = pkgs.iter().map(|p| (p.arch.clone(), p.control(), p.deb())).collect();
    publish_entries(server, key, &entries, archs)
}

/// Publishes `(index architecture, control paragraph, .deb bytes)` entries
/// as given: the index may say what the .deb does not.
pub fn publish_entries(
    server: &Server,
    key: &TestKey,
    entries: &[(String, String, Vec<u8>)],
    archs: &[&str],
) -> String {
    let mut sums = String::new();
    for arch in archs {
        let mut packages = String::new();
        for (a, control, deb) in entries {
            if a != arch && a != "all" {
                continue;
            }
            let field = |f: &str| control.lines().find_map(|l| l.strip_prefix(f)).unwrap_or_default().to_string();
            let (name, version) = (field("Package: "), field("Version: "));
            let pool = format!("pool/main/{name}/{name}_{version}_{a}.deb");
            packages.push_str(control);
            packages.push_str(&format!("Filename: {pool}\nSize: {}\nSHA256: {}\n\n", deb.len(), sha256_hex(deb)));
            server.put(&format!("/debian/{pool}"), deb.clone());
        }
        let (xz, _) = compress(Comp::Xz, packages.as_bytes());
        let (gz, _) = compress(Comp::Gz, packages.as_bytes());
        server.put(&format!("/debian/dists/stable/main/binary-{arch}/Packages.xz"), xz.clone());
        server.put(&format!("/debian/dists/stable/main/binary-{arch}/Packages.gz"), gz.clone());
        sums.push_str(&format!(
            " {} {} main/binary-{arch}/Packages.xz\n {} {} main/binary-{arch}/Packages.gz\n",
            sha256_hex(&xz),
            xz.len(),
            sha256_hex(&gz),
            gz.len()
        ));
    }
    let release = format!(
        "Origin: Test\nSuite: stable\nCodename: test\nDate: Sat, 01 Nov 2025 10:00:00 UTC\nArchitectures: {}\nComponents: main\nSHA256:\n{sums}",
        archs.join(" ")
    );
    server.put("/debian/dists/stable/Release", release.as_bytes().to_vec());
    server.put("/debian/dists/stable/InRelease", key.clearsign(&release).into_bytes());
    format!("{}/debian", server.base)
}

/// A temporary project: spec, keyring, cache.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(key: &TestKey) -> Project {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("archive-key.asc"), key.public_armored()).unwrap();
        Project { dir }
    }
    /// A project directory with nothing in it yet (no archive key).
    pub fn empty() -> Project {
        Project { dir: tempfile::tempdir().unwrap() }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// Writes `spec.yaml` with one debs layer.
    pub fn spec(&self, archive: &str, debs_body: &str) -> PathBuf {
        let text = format!(
            "version: 1\nname: t\nlayers:\n  - name: os\n    debs:\n      keyring: archive-key.asc\n      archives: [{{url: \"{archive}\", suites: [stable]}}]\n{debs_body}"
        );
        let p = self.path("spec.yaml");
        fs_err::write(&p, text).unwrap();
        p
    }
    pub fn strata(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--cache")
            .arg(self.path("cache"))
            .arg("--quiet")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }
}

/// Files of the single layer of an OCI layout: path → (type, mode, content or link target).
pub fn layer_files(oci_dir: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    layer_files_for(oci_dir, "linux/amd64")
}

/// Files of every layer of the image for `platform` (`os/arch`) of an OCI layout.
pub fn layer_files_for(oci_dir: &Path, platform: &str) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    let src = strata::image::layout::Layout::open(oci_dir, None, format!("oci:{}", oci_dir.display()));
    let want = strata::oci::Platform::parse(platform).unwrap();
    let image = strata::image::Image::open(&src, &want).unwrap();
    let mut out = BTreeMap::new();
    for l in image.layers() {
        let r = image.open_blob(l).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(r));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = String::from_utf8_lossy(&e.path_bytes()).trim_end_matches('/').to_string();
            let t = e.header().entry_type();
            let mode = e.header().mode().unwrap();
            let (c, data) = if t.is_symlink() {
                ('l', e.link_name_bytes().unwrap().to_vec())
            } else if t.is_dir() {
                ('d', vec![])
            } else {
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                ('f', d)
            };
            out.insert(p, (c, mode, data));
        }
    }
    out
}

/// stderr with the loopback port and the temporary directory replaced, for snapshots.
pub fn scrub(out: &std::process::Output, project: &Project) -> String {
    let s = String::from_utf8_lossy(&out.stderr).to_string();
    let s = s.replace(&project.dir.path().display().to_string(), "[TMP]");
    let re_port = |s: &str| -> String {
        let mut o = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("127.0.0.1:") {
            o.push_str(&rest[..i + 10]);
            rest = &rest[i + 10..];
            let n = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            o.push_str("PORT");
            rest = &rest[n..];
        }
        o.push_str(rest);
        o
    };
    re_port(&s)
}
