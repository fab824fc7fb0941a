//! OCI image layout directories (`oci:DIR[:TAG]`): reading one image (or
//! index) by tag, and writing content into a layout so that an interrupted
//! write leaves the previous state or the complete new one: blobs first
//! (each by rename), the `index.json` that names them last (by rename); a
//! new layout is built under a temporary name beside its destination and
//! renamed into place whole.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::view::annotated_referrers;
use super::{
    BlobAction, BlobItem, BlobReader, BlobReport, Content, ImageError, ImageSource, ManifestReport, ReferrerOutcome,
    Sink, WriteReport, REFERRERS_ANNOTATION, SBOM_ANNOTATION,
};
use crate::atomic::{atomic_write, set_mode, sweep_stale, temp_prefix};
use crate::digest::{Digest, Hasher};
use crate::error::{io_err, IoError};
use crate::oci::{canonical, media, Descriptor, Index, RawManifest, REF_NAME};
use crate::report::{human_bytes, task_id, Reporter, TaskKind};

/// The `oci-layout` file's bytes.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Parses `index.json` bytes.
pub(crate) fn parse_index(bytes: &[u8], source_name: &str) -> Result<Index, ImageError> {
    let what = format!("{source_name}: index.json");
    Ok(RawManifest::new(bytes.to_vec(), Some(media::INDEX)).index(&what)?)
}

/// The entry of a layout index the user means: the one tagged `tag`, else
/// the only one.
pub(crate) fn select_entry(index: &Index, tag: Option<&str>, source_name: &str) -> Result<Descriptor, ImageError> {
    let tags = || index.manifests.iter().filter_map(|m| m.ref_name().map(str::to_string)).collect::<Vec<_>>();
    match tag {
        Some(t) => index.manifests.iter().find(|m| m.ref_name() == Some(t)).cloned().ok_or_else(|| {
            ImageError::NoSuchTag { source_name: source_name.to_string(), tag: t.to_string(), tags: tags() }
        }),
        None => match index.manifests.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ImageError::EmptyIndex { source_name: source_name.to_string() }),
            many => {
                Err(ImageError::Ambiguous { source_name: source_name.to_string(), count: many.len(), tags: tags() })
            }
        },
    }
}

/// The index entry for a root written under `tag`: the root's descriptor
/// (platform and the source's own annotations kept), its tag, and the
/// artifacts that refer to it.
pub(crate) fn entry_for(content: &Content<'_>, tag: &str) -> Descriptor {
    let mut d = content.root_descriptor.clone();
    d.media_type = content.root.media_type.clone();
    d.size = content.root.bytes.len() as u64;
    for k in [REF_NAME, SBOM_ANNOTATION, REFERRERS_ANNOTATION] {
        d.annotations.remove(k);
    }
    d.annotations.insert(REF_NAME.to_string(), tag.to_string());
    let mut others = Vec::new();
    for r in &content.referrers {
        let sbom = r.subject == content.root.digest
            && crate::sbom::is_sbom(r.artifact_type.as_deref())
            && !d.annotations.contains_key(SBOM_ANNOTATION);
        if sbom {
            d.annotations.insert(SBOM_ANNOTATION.to_string(), r.manifest.digest.to_string());
        } else {
            others.push(r.manifest.digest.to_string());
        }
    }
    if !others.is_empty() {
        d.annotations.insert(REFERRERS_ANNOTATION.to_string(), others.join(" "));
    }
    d
}

/// Canonical `index.json` bytes over `entries`.
pub(crate) fn index_bytes(entries: Vec<Descriptor>) -> Result<Vec<u8>, ImageError> {
    canonical::to_vec(&Index::new(entries)).map_err(|source| ImageError::Json { what: "index.json", source })
}

/// Where the files of an OCI image layout are kept: a directory, or a tar
/// of one (an oci-archive). Everything else about reading a layout is
/// shared ([`LayoutReader`]).
pub trait LayoutStorage: Send + Sync {
    /// `index.json`'s bytes (`shown` names the layout in errors).
    fn index_json(&self, shown: &str) -> Result<Vec<u8>, ImageError>;
    /// Opens `blobs/sha256/<hex>`.
    fn open(&self, d: &Digest, shown: &str) -> Result<BlobReader<'_>, ImageError>;
    /// The size of `blobs/sha256/<hex>`, when it is there.
    fn size(&self, d: &Digest) -> Option<u64>;
    /// A local file holding exactly the blob (directories only).
    fn path(&self, _d: &Digest) -> Option<PathBuf> {
        None
    }
}

/// An OCI image layout read by tag, from wherever its files are.
pub struct LayoutReader<S> {
    storage: S,
    tag: Option<String>,
    shown: String,
}

/// An OCI image layout directory read by tag.
pub type Layout = LayoutReader<LayoutDir>;

impl<S: LayoutStorage> LayoutReader<S> {
    /// The layout in `storage`, choosing the image tagged `tag` (else the only one).
    pub fn new(storage: S, tag: Option<&str>, shown: String) -> LayoutReader<S> {
        LayoutReader { storage, tag: tag.map(str::to_string), shown }
    }

    fn index(&self) -> Result<Index, ImageError> {
        parse_index(&self.storage.index_json(&self.shown)?, &self.shown)
    }
}

impl Layout {
    /// The layout `dir`, choosing the image tagged `tag` (else the only one).
    pub fn open(dir: &Path, tag: Option<&str>, shown: String) -> Layout {
        LayoutReader::new(LayoutDir(dir.to_path_buf()), tag, shown)
    }
}

impl<S: LayoutStorage> ImageSource for LayoutReader<S> {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn root(&self) -> Result<Descriptor, ImageError> {
        select_entry(&self.index()?, self.tag.as_deref(), &self.shown)
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, ImageError> {
        let bytes = super::read_blob(self, d)?;
        Ok(RawManifest::new(bytes, Some(&d.media_type).filter(|m| !m.is_empty()).map(String::as_str)))
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, ImageError> {
        self.storage.open(&d.digest, &self.shown)
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>, ImageError> {
        let entry = self.root()?;
        annotated_referrers(self, &entry, subject, |d| self.storage.size(d))
    }

    fn blob_path(&self, d: &Descriptor) -> Option<PathBuf> {
        self.storage.path(&d.digest)
    }
}

/// A layout directory's files.
pub struct LayoutDir(PathBuf);

impl LayoutDir {
    fn blob(&self, d: &Digest) -> PathBuf {
        self.0.join("blobs/sha256").join(d.hex())
    }
}

impl LayoutStorage for LayoutDir {
    fn index_json(&self, shown: &str) -> Result<Vec<u8>, ImageError> {
        if !self.0.join("oci-layout").is_file() {
            return Err(ImageError::NotALayout { source_name: shown.to_string(), path: self.0.clone() });
        }
        let p = self.0.join("index.json");
        fs_err::read(&p).map_err(io_err::<ImageError>("reading", &p))
    }

    fn open(&self, d: &Digest, shown: &str) -> Result<BlobReader<'_>, ImageError> {
        let p = self.blob(d);
        let f = fs_err::File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::MissingBlob { source_name: shown.to_string(), digest: *d, container: "layout" }
            } else {
                ImageError::Io(IoError { action: "opening", path: p.clone(), source: e })
            }
        })?;
        Ok(Box::new(io::BufReader::new(f)))
    }

    fn size(&self, d: &Digest) -> Option<u64> {
        fs_err::metadata(self.blob(d)).ok().map(|m| m.len())
    }

    fn path(&self, d: &Digest) -> Option<PathBuf> {
        Some(self.blob(d)).filter(|p| p.is_file())
    }
}

/// Writes content into an OCI image layout under a tag.
pub struct LayoutSink {
    dir: PathBuf,
    tag: String,
    shown: String,
    reporter: Arc<dyn Reporter>,
    jobs: usize,
}

impl LayoutSink {
    /// A sink writing into `dir` under `tag`; blobs that must be streamed
    /// (from a registry) are copied `jobs` at a time, with progress.
    pub fn new(dir: &Path, tag: &str, reporter: Arc<dyn Reporter>, jobs: usize) -> Result<LayoutSink, ImageError> {
        if !crate::oci::valid_tag(tag) {
            return Err(ImageError::BadTag(tag.to_string()));
        }
        Ok(LayoutSink {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            shown: format!("oci:{}:{tag}", dir.display()),
            reporter,
            jobs: jobs.max(1),
        })
    }

    fn fill(&self, content: &Content<'_>, dir: &Path, merge: bool) -> Result<WriteReport, ImageError> {
        let bdir = dir.join("blobs/sha256");
        fs_err::create_dir_all(&bdir).map_err(io_err::<ImageError>("creating", &bdir))?;
        let blobs = self.copy_blobs(content, &bdir)?;
        let mut manifests = Vec::new();
        for m in content.manifests.iter().chain(content.referrers.iter().map(|r| &r.manifest)) {
            let dest = bdir.join(m.digest.hex());
            if !dest.is_file() {
                atomic_write(&dest, &m.bytes)?;
            }
        }
        for m in &content.manifests {
            manifests.push(ManifestReport {
                digest: m.digest,
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
            });
        }
        atomic_write(&dir.join("oci-layout"), OCI_LAYOUT)?;
        // Keep other images of the layout; replace the one with this tag.
        let _lock = if merge { Some(lock_layout(dir)?) } else { None };
        let p = dir.join("index.json");
        let existing = if merge && p.is_file() {
            let bytes = fs_err::read(&p).map_err(io_err::<ImageError>("reading", &p))?;
            Some(parse_index(&bytes, &format!("oci:{}", dir.display()))?)
        } else {
            None
        };
        let mut entries: Vec<Descriptor> = existing
            .map(|i| i.manifests)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.ref_name() != Some(&self.tag))
            .collect();
        entries.push(entry_for(content, &self.tag));
        atomic_write(&dir.join("index.json"), &index_bytes(entries)?)?;
        let bytes_sent = blobs.iter().map(|b| b.bytes_sent).sum();
        Ok(WriteReport {
            reference: self.shown.clone(),
            digest: content.root.digest,
            media_type: content.root.media_type.clone(),
            tag: Some(self.tag.clone()),
            blobs,
            manifests,
            referrers: content
                .referrers
                .iter()
                .map(|r| ReferrerOutcome {
                    digest: r.manifest.digest,
                    subject: r.subject,
                    artifact_type: r.artifact_type.clone(),
                    fallback_tag: None,
                })
                .collect(),
            bytes_sent,
            seconds: 0.0,
        })
    }

    /// Copies every blob not yet in `bdir`: local files by hard link (else
    /// copy), streamed ones `jobs` at a time, verified, each by rename.
    fn copy_blobs(&self, content: &Content<'_>, bdir: &Path) -> Result<Vec<BlobReport>, ImageError> {
        let queue = Mutex::new(content.blobs.iter().enumerate());
        let results: Mutex<Vec<Option<BlobReport>>> = Mutex::new(vec![None; content.blobs.len()]);
        let failure: Mutex<Option<ImageError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.min(content.blobs.len()).max(1) {
                scope.spawn(|| loop {
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((i, item)) = next else { return };
                    match self.copy_blob(content, item, bdir) {
                        Ok(r) => {
                            if let Ok(mut v) = results.lock() {
                                v[i] = Some(r);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        Ok(results.into_inner().unwrap_or_default().into_iter().flatten().collect())
    }

    fn copy_blob(&self, content: &Content<'_>, item: &BlobItem, bdir: &Path) -> Result<BlobReport, ImageError> {
        let d = &item.descriptor;
        let dest = bdir.join(d.digest.hex());
        let report = |action, bytes_sent| BlobReport {
            digest: d.digest,
            size: d.size,
            media_type: d.media_type.clone(),
            action,
            bytes_sent,
            mounted_from: None,
            attempts: 1,
        };
        if fs_err::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == d.size) {
            return Ok(report(BlobAction::Skipped, 0));
        }
        if let Some(src) = content.source.blob_path(d) {
            // A unique temporary name: two builds may add the same blob.
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{}-", d.digest.hex()))
                .suffix(".tmp")
                .tempfile_in(bdir)
                .map_err(io_err::<ImageError>("creating temporary file in", bdir))?;
            if let Err(e) = copy_verified(&src, &tmp, &d.digest) {
                if matches!(e, ImageError::CorruptBlob { .. }) {
                    content.source.discard(d);
                }
                return Err(e);
            }
            crate::atomic::persist(tmp, &dest)?;
            return Ok(report(BlobAction::Written, 0));
        }
        let task = task_id();
        self.reporter.start(task, TaskKind::Download, &super::short(&d.digest), Some(d.size));
        let r = stream_blob(content.source, d, bdir, &dest, &mut |n| self.reporter.progress(task, n));
        match &r {
            Ok(_) => self.reporter.finish(task, &format!("downloaded {}", human_bytes(d.size))),
            Err(_) => self.reporter.finish(task, "failed"),
        }
        r.map(|n| report(BlobAction::Written, n))
    }
}

/// Copies a local blob (in the cache) into `out`, checking its digest on the
/// way: a blob that rotted is reported, never handed to a layout. The copy
/// is a reflink (copy-on-write clone) where the filesystem has them, else a
/// plain copy: the layout never shares bytes with the cache, so writing to
/// one cannot corrupt the other.
fn copy_verified(src: &Path, out: &tempfile::NamedTempFile, digest: &Digest) -> Result<(), ImageError> {
    let input = fs_err::File::open(src).map_err(io_err::<ImageError>("opening", src))?;
    let found = if strata_sys::reflink(input.file(), out.as_file()) {
        let (found, _) = crate::digest::hash_reader(io::BufReader::with_capacity(1 << 20, out.as_file()))
            .map_err(io_err::<ImageError>("reading", src))?;
        found
    } else {
        let mut w = crate::digest::HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out.as_file()));
        io::copy(&mut io::BufReader::with_capacity(1 << 20, input), &mut w)
            .map_err(io_err::<ImageError>("copying", src))?;
        let (mut buf, found, _) = w.finish();
        buf.flush().map_err(io_err::<ImageError>("copying", src))?;
        found
    };
    if found != *digest {
        return Err(ImageError::CorruptBlob { digest: *digest, found });
    }
    Ok(())
}

/// Holds an exclusive lock on a layout directory (an advisory lock on the
/// directory itself, so nothing is added to the layout) while its index is
/// read, changed and written: concurrent writers into one layout keep each
/// other's tags.
fn lock_layout(dir: &Path) -> Result<fs_err::File, ImageError> {
    let f = fs_err::File::open(dir).map_err(io_err::<ImageError>("opening", dir))?;
    f.lock().map_err(io_err::<ImageError>("locking", dir))?;
    Ok(f)
}

/// Streams a blob into a temporary file in `dir`, checking size and digest,
/// and renames it to `dest` only when both are right.
fn stream_blob(
    src: &dyn ImageSource,
    d: &Descriptor,
    dir: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ImageError> {
    let mut r = src.open_blob(d)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-blob-")
        .tempfile_in(dir)
        .map_err(io_err::<ImageError>("creating a temporary file in", dir))?;
    let mut h = Hasher::new();
    {
        let mut w = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ImageError::Read { source_name: src.describe(), digest: d.digest, source: e }),
            };
            h.update(&buf[..n]);
            if h.len() > d.size {
                return Err(ImageError::SizeMismatch {
                    source_name: src.describe(),
                    digest: d.digest,
                    expected: d.size,
                    found: h.len(),
                });
            }
            w.write_all(&buf[..n]).map_err(io_err::<ImageError>("writing", dest))?;
            progress(h.len());
        }
        w.flush().map_err(io_err::<ImageError>("writing", dest))?;
    }
    let (found, n) = h.finish();
    if n != d.size {
        return Err(ImageError::SizeMismatch {
            source_name: src.describe(),
            digest: d.digest,
            expected: d.size,
            found: n,
        });
    }
    if found != d.digest {
        return Err(ImageError::DigestMismatch { source_name: src.describe(), expected: d.digest, found });
    }
    crate::atomic::persist(tmp, dest)?;
    Ok(n)
}

impl Sink for LayoutSink {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn write(&self, content: &Content<'_>) -> Result<WriteReport, ImageError> {
        let started = std::time::Instant::now();
        let dir = &self.dir;
        let fresh =
            !dir.exists() || fs_err::read_dir(dir).map_err(io_err::<ImageError>("reading", dir))?.next().is_none();
        if !fresh && !dir.join("oci-layout").is_file() {
            return Err(ImageError::NotALayoutDestination { path: dir.clone() });
        }
        let report =
            if !dir.exists() {
                // Build next to the destination, then rename: a crash or a
                // failure leaves no half layout in the way of the next attempt.
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                fs_err::create_dir_all(parent).map_err(io_err::<ImageError>("creating", parent))?;
                sweep_stale(parent, "layout");
                let tmp = tempfile::Builder::new()
                    .prefix(&temp_prefix("layout"))
                    .tempdir_in(parent)
                    .map_err(io_err::<ImageError>("creating temporary directory in", parent))?;
                set_mode(tmp.path(), 0o755)?;
                let report = self.fill(content, tmp.path(), false)?;
                match fs_err::rename(tmp.path(), dir) {
                    Ok(()) => {
                        let _ = tmp.keep();
                        report
                    }
                    // Another writer created the layout meanwhile: add this
                    // image to it like to any existing layout (the temporary
                    // one is dropped).
                    Err(e) if dir.join("oci-layout").is_file() => {
                        tracing::debug!("{} appeared while it was written ({e}); merging into it", dir.display());
                        self.fill(content, dir, true)?
                    }
                    Err(e) => {
                        return Err(ImageError::Io(IoError {
                            action: "renaming layout into",
                            path: dir.clone(),
                            source: e,
                        }))
                    }
                }
            } else {
                self.fill(content, dir, true)?
            };
        Ok(WriteReport { seconds: started.elapsed().as_secs_f64(), ..report })
    }
}
