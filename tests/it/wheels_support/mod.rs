//! Test helpers for the wheel tests: a zip writer that can also write the
//! broken archives an installer must refuse, a wheel builder with a correct
//! RECORD, a loopback HTTP server, and readers for OCI layouts.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::Digest as _;

/// One zip member.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub data: Vec<u8>,
    /// Full Unix mode (type and permission bits).
    pub mode: u32,
    pub deflate: bool,
    /// Declared uncompressed size (defaults to the real one).
    pub declared_size: Option<u64>,
}

impl Member {
    pub fn file(name: &str, data: impl AsRef<[u8]>, perm: u32) -> Member {
        Member {
            name: name.into(),
            data: data.as_ref().to_vec(),
            mode: 0o100000 | perm,
            deflate: true,
            declared_size: None,
        }
    }
    pub fn symlink(name: &str, target: &str) -> Member {
        Member {
            name: name.into(),
            data: target.as_bytes().to_vec(),
            mode: 0o120777,
            deflate: false,
            declared_size: None,
        }
    }
    pub fn dir(name: &str) -> Member {
        Member { name: name.into(), data: Vec::new(), mode: 0o040755, deflate: false, declared_size: None }
    }
}

/// Writes a zip archive. `share_data` makes the member at index `.1` reuse
/// the local header and data of the member at index `.0` (overlapping
/// entries, the non-recursive zip bomb).
pub fn zip_bytes(members: &[Member], share_data: Option<(usize, usize)>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut offsets = Vec::new();
    let mut infos = Vec::new();
    for m in members {
        let crc = crc32fast::hash(&m.data);
        let comp = if m.deflate {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&m.data).unwrap();
            e.finish().unwrap()
        } else {
            m.data.clone()
        };
        let size = m.declared_size.unwrap_or(m.data.len() as u64) as u32;
        let method: u16 = if m.deflate { 8 } else { 0 };
        offsets.push(out.len() as u32);
        infos.push((crc, comp.len() as u32, size, method));
        out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04]);
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0x0800u16.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0x5021u16.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(comp.len() as u32).to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(m.name.as_bytes());
        out.extend_from_slice(&comp);
    }
    if let Some((from, to)) = share_data {
        offsets[to] = offsets[from];
        infos[to] = infos[from];
    }
    for (i, m) in members.iter().enumerate() {
        let (crc, csize, size, method) = infos[i];
        central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02]);
        central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0x0800u16.to_le_bytes());
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0x5021u16.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&csize.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&(m.mode << 16).to_le_bytes());
        central.extend_from_slice(&offsets[i].to_le_bytes());
        central.extend_from_slice(m.name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

pub fn record_hash(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    format!("sha256={}", strata::sources::python::zip::b64_encode(&d))
}

/// A wheel with a correct RECORD unless told otherwise.
#[derive(Clone, Debug)]
pub struct Wheel {
    pub dist: String,
    pub version: String,
    pub tag: String,
    pub purelib: bool,
    pub members: Vec<Member>,
    /// RECORD hashes to replace (member name → hash text).
    pub record_override: BTreeMap<String, String>,
    /// Members left out of RECORD.
    pub record_omit: Vec<String>,
    pub entry_points: Option<String>,
    pub share_data: Option<(usize, usize)>,
    /// METADATA text (default: Name and Version only).
    pub metadata: Option<String>,
}

impl Wheel {
    pub fn new(dist: &str, version: &str) -> Wheel {
        Wheel {
            dist: dist.into(),
            version: version.into(),
            tag: "py3-none-any".into(),
            purelib: true,
            members: Vec::new(),
            record_override: BTreeMap::new(),
            record_omit: Vec::new(),
            entry_points: None,
            share_data: None,
            metadata: None,
        }
    }
    pub fn file_name(&self) -> String {
        format!("{}-{}-{}.whl", self.dist, self.version, self.tag)
    }
    pub fn info(&self) -> String {
        format!("{}-{}.dist-info", self.dist, self.version)
    }
    pub fn data(&self) -> String {
        format!("{}-{}.data", self.dist, self.version)
    }
    pub fn with(mut self, m: Member) -> Wheel {
        self.members.push(m);
        self
    }
    pub fn bytes(&self) -> Vec<u8> {
        let info = self.info();
        let mut members = self.members.clone();
        let metadata = self.metadata.clone().unwrap_or_else(|| {
            format!("Metadata-Version: 2.1\nName: {}\nVersion: {}\n", self.dist.replace('_', "-"), self.version)
        });
        members.push(Member::file(&format!("{info}/METADATA"), metadata, 0o644));
        members.push(Member::file(
            &format!("{info}/WHEEL"),
            format!(
                "Wheel-Version: 1.0\nGenerator: strata-tests\nRoot-Is-Purelib: {}\nTag: {}\n",
                self.purelib, self.tag
            ),
            0o644,
        ));
        if let Some(ep) = &self.entry_points {
            members.push(Member::file(&format!("{info}/entry_points.txt"), ep, 0o644));
        }
        let mut record = String::new();
        for m in &members {
            if m.name.ends_with('/') || self.record_omit.contains(&m.name) {
                continue;
            }
            let h = self.record_override.get(&m.name).cloned().unwrap_or_else(|| record_hash(&m.data));
            record.push_str(&format!("{},{},{}\n", m.name, h, m.declared_size.unwrap_or(m.data.len() as u64)));
        }
        record.push_str(&format!("{info}/RECORD,,\n"));
        members.push(Member::file(&format!("{info}/RECORD"), record, 0o664));
        zip_bytes(&members, self.share_data)
    }
    pub fn write_to(&self, dir: &Path) -> PathBuf {
        let p = dir.join(self.file_name());
        fs_err::write(&p, self.bytes()).unwrap();
        p
    }
}

pub use crate::common::sha256_hex;

/// A pylock.toml with one `wheels` entry per wheel: `(name, version, location, bytes)`
/// where location is `url = "..."` or `path = "..."`.
pub fn pylock(entries: &[(&str, &str, String, &[u8])]) -> String {
    let mut s = String::from("lock-version = \"1.0\"\ncreated-by = \"strata-tests\"\nrequires-python = \">=3.11\"\n");
    for (name, version, loc, bytes) in entries {
        s.push_str(&format!(
            "\n[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\nwheels = [{{ {loc}, size = {}, hashes = {{ sha256 = \"{}\" }} }}]\n",
            bytes.len(),
            sha256_hex(bytes)
        ));
    }
    s
}

pub use crate::common::Server;

/// One layer of an OCI layout: its name annotation, digest and entries
/// (path → (type char, mode, content or link target)).
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub digest: String,
    pub entries: BTreeMap<String, (char, u32, Vec<u8>)>,
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    fs_err::read(dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

/// The manifest digest, the config JSON and the layers of the only image in `dir`.
pub fn read_layout(dir: &Path) -> (String, serde_json::Value, Vec<Layer>) {
    let index: serde_json::Value = serde_json::from_slice(&fs_err::read(dir.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(dir, &mdigest)).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(dir, manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let mut layers = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let digest = l["digest"].as_str().unwrap().to_string();
        let name = l["annotations"]["dev.strata.layer.name"].as_str().unwrap_or("").to_string();
        let bytes = blob(dir, &digest);
        let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&bytes[..]));
        let mut entries = BTreeMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            let mode = e.header().mode().unwrap();
            let kind = match e.header().entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                _ => 'f',
            };
            let mut data = Vec::new();
            if kind == 'l' || kind == 'h' {
                data = e.link_name().unwrap().unwrap().to_string_lossy().into_owned().into_bytes();
            } else {
                e.read_to_end(&mut data).unwrap();
            }
            entries.insert(path, (kind, mode, data));
        }
        layers.push(Layer { name, digest, entries });
    }
    (mdigest, config, layers)
}

/// Whether an external tool exists; with STRATA_REQUIRE_TOOLS=1 a missing
/// tool fails the test instead of skipping it.
pub fn have_tool(cmd: &str, args: &[&str]) -> bool {
    let ok = std::process::Command::new(cmd).args(args).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("`{cmd}` is required (STRATA_REQUIRE_TOOLS=1) but not available");
        }
        eprintln!("note: skipping, `{cmd} {}` is not available", args.join(" "));
    }
    ok
}

/// Files an index serves: path → (bytes, content type).
/// A package index on loopback that uv resolves against as it does against
/// PyPI: PEP 691 JSON project pages with PEP 700 upload times (so
/// `exclude_newer` applies) and PEP 658 metadata files (so uv reads
/// dependencies without downloading wheels), and the wheels themselves;
/// served by the one test server.
pub struct SimpleIndex {
    pub base: String,
    server: Server,
    projects: Mutex<BTreeMap<String, Vec<serde_json::Value>>>,
}

impl SimpleIndex {
    pub fn start() -> SimpleIndex {
        let server = Server::empty();
        SimpleIndex { base: server.base.clone(), server, projects: Mutex::default() }
    }

    /// How many requests the index has seen.
    pub fn requests(&self) -> usize {
        self.server.requests()
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.server.hits(path)
    }

    /// The index URL (`python.index_url`).
    pub fn url(&self) -> String {
        format!("{}/simple", self.base)
    }

    /// Publishes a wheel as uploaded at `uploaded` (RFC 3339); returns its URL.
    pub fn publish(&self, w: &Wheel, uploaded: &str) -> String {
        let bytes = w.bytes();
        let name = w.file_name();
        let metadata = w.metadata.clone().unwrap_or_else(|| {
            format!("Metadata-Version: 2.1\nName: {}\nVersion: {}\n", w.dist.replace('_', "-"), w.version)
        });
        let url = format!("{}/files/{name}", self.base);
        let entry = serde_json::json!({
            "filename": name,
            "url": url,
            "hashes": {"sha256": sha256_hex(&bytes)},
            "size": bytes.len(),
            "upload-time": uploaded,
            "core-metadata": {"sha256": sha256_hex(metadata.as_bytes())},
        });
        let project = w.dist.to_lowercase().replace('_', "-");
        self.server.put_typed(&format!("/files/{name}"), "application/octet-stream", bytes);
        self.server.put_typed(&format!("/files/{name}.metadata"), "text/plain", metadata.into_bytes());
        let mut projects = self.projects.lock().unwrap();
        let list = projects.entry(project.clone()).or_default();
        list.push(entry);
        let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": list});
        self.server.put_typed(
            &format!("/simple/{project}/"),
            "application/vnd.pypi.simple.v1+json",
            serde_json::to_vec(&page).unwrap(),
        );
        url
    }
}

/// A pure-Python wheel whose METADATA requires `deps`.
pub fn wheel_with_deps(dist: &str, version: &str, deps: &[&str]) -> Wheel {
    let mut w = Wheel::new(dist, version).with(Member::file(
        &format!("{dist}/__init__.py"),
        format!("V = '{version}'\n"),
        0o644,
    ));
    let mut m = format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n");
    for d in deps {
        m.push_str(&format!("Requires-Dist: {d}\n"));
    }
    w.metadata = Some(m);
    w
}
