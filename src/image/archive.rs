//! Images in tar files: `oci-archive` (an OCI layout in a tar) and
//! `docker-archive` (what `docker save` writes, described by
//! `manifest.json`). Both are read in place (members are found by an index
//! of offsets) and written to a temporary name renamed at the end, entries
//! sorted, so the archive's bytes depend only on the image.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::{entry_for, index_bytes, LayoutReader, LayoutStorage, OCI_LAYOUT};
use super::{BlobAction, BlobReader, BlobReport, Content, ImageError, ImageSource, ManifestReport, Sink, WriteReport};
use crate::atomic::{atomic_write, persist, sweep_stale, temp_prefix};
use crate::digest::Digest;
use crate::error::io_err;
use crate::oci::{canonical, media, Descriptor, Manifest, Node, RawManifest};
use crate::tarwriter::{TarHeader, TarType, TarWriter};

/// Member name → (data offset, size) of an uncompressed tar file.
pub struct TarIndex {
    path: PathBuf,
    members: BTreeMap<String, (u64, u64)>,
}

impl TarIndex {
    fn open(path: &Path) -> Result<TarIndex, ImageError> {
        let f = fs_err::File::open(path).map_err(io_err::<ImageError>("opening", path))?;
        let mut ar = tar::Archive::new(io::BufReader::new(f));
        let mut members = BTreeMap::new();
        let bad = |source| ImageError::BadTar { path: path.to_path_buf(), source };
        for e in ar.entries().map_err(bad)? {
            let e = e.map_err(bad)?;
            if e.header().entry_type().is_file() {
                let name = e.path().map_err(bad)?.to_string_lossy().trim_start_matches("./").to_string();
                members.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        Ok(TarIndex { path: path.to_path_buf(), members })
    }

    fn open_member(&self, name: &str) -> Result<Option<BlobReader<'static>>, ImageError> {
        let Some(&(off, size)) = self.members.get(name) else { return Ok(None) };
        let mut f = fs_err::File::open(&self.path).map_err(io_err::<ImageError>("opening", &self.path))?;
        f.seek(SeekFrom::Start(off)).map_err(io_err::<ImageError>("seeking in", &self.path))?;
        Ok(Some(Box::new(io::BufReader::new(f).take(size))))
    }

    fn read_member(&self, name: &str) -> Result<Option<Vec<u8>>, ImageError> {
        match self.open_member(name)? {
            None => Ok(None),
            Some(mut r) => {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map_err(io_err::<ImageError>("reading", &self.path))?;
                Ok(Some(v))
            }
        }
    }

    fn member_size(&self, name: &str) -> Option<u64> {
        self.members.get(name).map(|m| m.1)
    }
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// An oci-archive read by tag.
pub type OciArchive = LayoutReader<TarIndex>;

impl OciArchive {
    /// Opens `file`, choosing the image tagged `tag` (else the only one).
    pub fn open(file: &Path, tag: Option<&str>, shown: String) -> Result<OciArchive, ImageError> {
        Ok(LayoutReader::new(TarIndex::open(file)?, tag, shown))
    }
}

impl LayoutStorage for TarIndex {
    fn index_json(&self, shown: &str) -> Result<Vec<u8>, ImageError> {
        self.read_member("index.json")?.ok_or_else(|| ImageError::NotAnArchive {
            source_name: shown.to_string(),
            member: "index.json",
            kind: "an oci-archive",
        })
    }

    fn open(&self, d: &Digest, shown: &str) -> Result<BlobReader<'_>, ImageError> {
        self.open_member(&blob_member(d))?.ok_or_else(|| ImageError::MissingBlob {
            source_name: shown.to_string(),
            digest: *d,
            container: "archive",
        })
    }

    fn size(&self, d: &Digest) -> Option<u64> {
        self.member_size(&blob_member(d))
    }
}

/// One image of `docker save`'s `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// A docker-archive: its first image, shown as an equivalent OCI manifest.
pub struct DockerArchive {
    idx: TarIndex,
    shown: String,
    manifest: RawManifest,
    /// Blob digest → member name (older `docker save` names members by path).
    members: BTreeMap<Digest, String>,
}

impl DockerArchive {
    /// Opens `file` and reads its `manifest.json`.
    pub fn open(file: &Path, shown: String) -> Result<DockerArchive, ImageError> {
        let idx = TarIndex::open(file)?;
        let bad = |problem: &str| ImageError::BadDockerManifest { source_name: shown.clone(), problem: problem.into() };
        let m = idx.read_member("manifest.json")?.ok_or_else(|| ImageError::NotAnArchive {
            source_name: shown.clone(),
            member: "manifest.json",
            kind: "a docker-archive",
        })?;
        let entries: Vec<DockerEntry> = serde_json::from_slice(&m).map_err(|e| bad(&format!("is not valid: {e}")))?;
        let first = entries.first().ok_or_else(|| bad("lists no image"))?;
        let mut members = BTreeMap::new();
        let mut describe = |name: &str, media_type: &str| -> Result<Descriptor, ImageError> {
            let digest = match name.strip_prefix("blobs/sha256/") {
                Some(hex) => Digest::parse(hex).map_err(|_| bad(&format!("names `{name}`, not a sha256 blob")))?,
                None => {
                    let mut r =
                        idx.open_member(name)?.ok_or_else(|| bad(&format!("names `{name}`, which is missing")))?;
                    crate::digest::hash_reader(&mut r).map_err(io_err::<ImageError>("reading", file))?.0
                }
            };
            let size = idx.member_size(name).ok_or_else(|| bad(&format!("names `{name}`, which is missing")))?;
            members.insert(digest, name.to_string());
            Ok(Descriptor::new(media_type, digest, size))
        };
        let config = describe(&first.config, media::CONFIG)?;
        let mut layers = Vec::new();
        for name in &first.layers {
            let mut head = [0u8; 8];
            let n = idx.open_member(name)?.map(|mut r| r.read(&mut head).unwrap_or(0)).unwrap_or(0);
            let mt = match crate::archive::sniff(&head[..n]) {
                crate::archive::Codec::Gzip => media::LAYER_GZIP,
                crate::archive::Codec::Zstd => media::LAYER_ZSTD,
                _ => media::LAYER_TAR,
            };
            layers.push(describe(name, mt)?);
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::MANIFEST.into()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        };
        let manifest = RawManifest::encode(&manifest, media::MANIFEST)
            .map_err(|source| ImageError::Json { what: "a manifest", source })?;
        Ok(DockerArchive { idx, shown, manifest, members })
    }
}

impl ImageSource for DockerArchive {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn root(&self) -> Result<Descriptor, ImageError> {
        Ok(self.manifest.descriptor())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, ImageError> {
        if d.digest == self.manifest.digest {
            return Ok(self.manifest.clone());
        }
        Err(ImageError::MissingBlob { source_name: self.shown.clone(), digest: d.digest, container: "archive" })
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, ImageError> {
        let missing =
            || ImageError::MissingBlob { source_name: self.shown.clone(), digest: d.digest, container: "archive" };
        let name = self.members.get(&d.digest).ok_or_else(missing)?;
        self.idx.open_member(name)?.ok_or_else(missing)
    }

    fn stores_manifests(&self) -> bool {
        false
    }
}

/// A blob read into an archive, checked against its digest at its end.
struct Verified<'a> {
    inner: BlobReader<'a>,
    hasher: crate::digest::Hasher,
    expected: Digest,
}

impl<'a> Verified<'a> {
    fn new(inner: BlobReader<'a>, expected: Digest) -> Verified<'a> {
        Verified { inner, hasher: crate::digest::Hasher::new(), expected }
    }
}

/// The error a [`Verified`] reader ends with: (expected, found).
#[derive(Debug)]
struct Corrupt(Digest, Digest);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blob {} is corrupt (its bytes hash to {})", self.0, self.1)
    }
}

impl std::error::Error for Corrupt {}

impl Read for Verified<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if n == 0 && !buf.is_empty() {
            let found = std::mem::take(&mut self.hasher).finish().0;
            if found != self.expected {
                return Err(io::Error::other(Corrupt(self.expected, found)));
            }
        }
        Ok(n)
    }
}

/// Where an archive entry's bytes come from.
enum Data<'a> {
    Bytes(&'a [u8]),
    Owned(Vec<u8>),
    Blob(&'a Descriptor),
}

fn header(path: &str, kind: TarType, size: u64) -> TarHeader<'_> {
    let mode = if kind == TarType::Dir { 0o755 } else { 0o644 };
    TarHeader { path, kind, mode, uid: 0, gid: 0, size, mtime: 0, link: None }
}

/// Writes `entries` (sorted by name, parent directories first) to `file`
/// through a temporary file renamed at the end.
fn write_tar(file: &Path, content: &Content<'_>, mut entries: Vec<(String, u64, Data<'_>)>) -> Result<(), ImageError> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent).map_err(io_err::<ImageError>("creating", parent))?;
    sweep_stale(parent, "archive");
    let tmp =
        tempfile::Builder::new()
            .prefix(&temp_prefix("archive"))
            .tempfile_in(parent)
            .map_err(io_err::<ImageError>("creating temporary file in", parent))?;
    {
        let mut tw = TarWriter::new(io::BufWriter::with_capacity(1 << 20, tmp.as_file()));
        let mut dirs_done = BTreeSet::new();
        for (name, size, data) in &entries {
            let mut acc = String::new();
            let comps: Vec<&str> = name.split('/').collect();
            for comp in &comps[..comps.len() - 1] {
                acc.push_str(comp);
                acc.push('/');
                if dirs_done.insert(acc.clone()) {
                    tw.append(&header(&acc, TarType::Dir, 0), None).map_err(io_err::<ImageError>("writing", file))?;
                }
            }
            let mut reader: BlobReader<'_> = match data {
                Data::Bytes(b) => Box::new(*b),
                Data::Owned(b) => Box::new(&b[..]),
                Data::Blob(d) => Box::new(Verified::new(content.source.open_blob(d)?, d.digest)),
            };
            tw.append(&header(name, TarType::File, *size), Some(&mut reader)).map_err(|e| {
                match e.get_ref().and_then(|r| r.downcast_ref::<Corrupt>()) {
                    Some(Corrupt(digest, found)) => {
                        if let Data::Blob(d) = data {
                            content.source.discard(d);
                        }
                        ImageError::CorruptBlob { digest: *digest, found: *found }
                    }
                    None => {
                        ImageError::Io(crate::error::IoError { action: "writing", path: file.to_path_buf(), source: e })
                    }
                }
            })?;
        }
        let mut w = tw.finish().map_err(io_err::<ImageError>("writing", file))?;
        w.flush().map_err(io_err::<ImageError>("writing", file))?;
    }
    Ok(persist(tmp, file)?)
}

fn blob_reports(content: &Content<'_>, skip: impl Fn(&Descriptor) -> bool) -> Vec<BlobReport> {
    content
        .blobs
        .iter()
        .filter(|b| !skip(&b.descriptor))
        .map(|b| BlobReport {
            digest: b.descriptor.digest,
            size: b.descriptor.size,
            media_type: b.descriptor.media_type.clone(),
            action: BlobAction::Written,
            bytes_sent: b.descriptor.size,
            mounted_from: None,
            attempts: 1,
        })
        .collect()
}

fn report(
    reference: String,
    content: &Content<'_>,
    tag: Option<String>,
    blobs: Vec<BlobReport>,
    started: std::time::Instant,
) -> WriteReport {
    WriteReport {
        reference,
        digest: content.root.digest,
        media_type: content.root.media_type.clone(),
        tag,
        bytes_sent: blobs.iter().map(|b| b.bytes_sent).sum(),
        blobs,
        manifests: content
            .manifests
            .iter()
            .map(|m| ManifestReport { digest: m.digest, media_type: m.media_type.clone(), size: m.bytes.len() as u64 })
            .collect(),
        referrers: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Writes an oci-archive under a tag.
pub struct OciArchiveSink {
    file: PathBuf,
    tag: String,
}

impl OciArchiveSink {
    /// A sink writing `file` with one image tagged `tag`.
    pub fn new(file: &Path, tag: &str) -> Result<OciArchiveSink, ImageError> {
        if !crate::oci::valid_tag(tag) {
            return Err(ImageError::BadTag(tag.to_string()));
        }
        Ok(OciArchiveSink { file: file.to_path_buf(), tag: tag.to_string() })
    }
}

impl Sink for OciArchiveSink {
    fn describe(&self) -> String {
        format!("oci-archive:{}:{}", self.file.display(), self.tag)
    }

    fn write(&self, content: &Content<'_>) -> Result<WriteReport, ImageError> {
        let started = std::time::Instant::now();
        let mut entries: Vec<(String, u64, Data<'_>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for b in &content.blobs {
            if seen.insert(b.descriptor.digest) {
                entries.push((blob_member(&b.descriptor.digest), b.descriptor.size, Data::Blob(&b.descriptor)));
            }
        }
        for m in content.manifests.iter().chain(content.referrers.iter().map(|r| &r.manifest)) {
            if seen.insert(m.digest) {
                entries.push((blob_member(&m.digest), m.bytes.len() as u64, Data::Bytes(&m.bytes)));
            }
        }
        let index = index_bytes(vec![entry_for(content, &self.tag)])?;
        entries.push(("index.json".into(), index.len() as u64, Data::Owned(index)));
        entries.push(("oci-layout".into(), OCI_LAYOUT.len() as u64, Data::Bytes(OCI_LAYOUT)));
        write_tar(&self.file, content, entries)?;
        Ok(report(self.describe(), content, Some(self.tag.clone()), blob_reports(content, |_| false), started))
    }
}

/// Writes a docker-archive (one image; its SBOM beside it as `FILE.spdx.json`,
/// or `FILE.cdx.json` for CycloneDX).
pub struct DockerArchiveSink {
    file: PathBuf,
    reference: String,
}

impl DockerArchiveSink {
    /// A sink writing `file`, recording the image as `reference` (`name:tag`).
    pub fn new(file: &Path, reference: &str) -> DockerArchiveSink {
        DockerArchiveSink { file: file.to_path_buf(), reference: reference.to_string() }
    }
}

impl Sink for DockerArchiveSink {
    fn describe(&self) -> String {
        format!("docker-archive:{}:{}", self.file.display(), self.reference)
    }

    fn write(&self, content: &Content<'_>) -> Result<WriteReport, ImageError> {
        let started = std::time::Instant::now();
        let what = format!("{}: manifest {}", content.source.describe(), content.root.digest);
        let m =
            match content.root.parse(&what)? {
                Node::Image(m) => m,
                Node::Index(_) => return Err(ImageError::Unsupported {
                    sink: self.describe(),
                    problem: "a docker-archive holds one image, and this is an index of several".into(),
                    advice:
                        "write it to oci:DIR or oci-archive:FILE, or pick one platform first (`strata pull --platform`)"
                            .into(),
                }),
            };
        let mut entries: Vec<(String, u64, Data<'_>)> = Vec::new();
        let mut seen = BTreeSet::new();
        // Docker archives describe images with manifest.json instead of manifests.
        for d in std::iter::once(&m.config).chain(&m.layers) {
            if seen.insert(d.digest) {
                let b = content.blobs.iter().find(|b| b.descriptor.digest == d.digest).map(|b| &b.descriptor);
                entries.push((blob_member(&d.digest), d.size, Data::Blob(b.unwrap_or(d))));
            }
        }
        let manifest = vec![DockerEntry {
            config: blob_member(&m.config.digest),
            repo_tags: Some(vec![self.reference.clone()]),
            layers: m.layers.iter().map(|l| blob_member(&l.digest)).collect(),
        }];
        let bytes =
            canonical::to_vec(&manifest).map_err(|source| ImageError::Json { what: "manifest.json", source })?;
        entries.push(("manifest.json".into(), bytes.len() as u64, Data::Owned(bytes)));
        write_tar(&self.file, content, entries)?;
        if let Some((kind, doc)) = content.sbom_of(&content.root.digest)? {
            let mut side = self.file.as_os_str().to_owned();
            side.push(if kind == crate::sbom::CYCLONEDX_MEDIA_TYPE { ".cdx.json" } else { ".spdx.json" });
            atomic_write(Path::new(&side), &doc)?;
        }
        let in_archive: BTreeSet<Digest> = std::iter::once(&m.config).chain(&m.layers).map(|d| d.digest).collect();
        let blobs = blob_reports(content, |d| !in_archive.contains(&d.digest));
        Ok(report(self.describe(), content, None, blobs, started))
    }
}
