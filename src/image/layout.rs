//! Writing images: OCI image layout directories, `oci-archive` and
//! `docker-archive` tar files. Every output is written so that an interrupted
//! build leaves either the previous state or the complete new one: blobs go in
//! first (each by rename), the index that names them last (by rename), and
//! archives are written to a temporary name and renamed at the end.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::digest::Digest;
use crate::image::{canonical, BuiltImage, REF_NAME};
use crate::store::Store;
use crate::tarwriter::{TarHeader, TarType, TarWriter};

/// Where a build goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `oci:DIR[:TAG]`.
    OciDir {
        /// Directory.
        dir: PathBuf,
        /// Tag (`None` = the spec's).
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// File.
        file: PathBuf,
        /// Tag.
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG]`.
    DockerArchive {
        /// File.
        file: PathBuf,
        /// `name:tag` reference.
        reference: Option<String>,
    },
}

/// An output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Bad output syntax.
    #[error("`{0}` is not an output; use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]")]
    Syntax(String),
    /// The destination is something else.
    #[error("{0} exists and is not an OCI image layout (no `oci-layout` file); refusing to write into it\nhint: choose a new or empty directory")]
    NotALayout(PathBuf),
    /// IO error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A blob in the cache no longer matches its digest. It has been
    /// removed, so building again rewrites it.
    #[error("the cached blob {digest} is corrupt (its bytes hash to {found}); it was removed from the cache\nhint: build again: the layer is rebuilt")]
    CorruptBlob {
        /// The digest it is stored under.
        digest: Digest,
        /// What its bytes hash to.
        found: Digest,
    },
    /// Other.
    #[error("{0}")]
    Other(String),
}

fn ioe<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OutputError + 'a {
    move |source| OutputError::Io { action, path: path.to_path_buf(), source }
}

/// Splits `PATH:TAG` at the last colon when the part after it looks like a tag.
fn split_tag(rest: &str) -> (String, Option<String>) {
    if let Some((p, t)) = rest.rsplit_once(':') {
        if !p.is_empty() && !t.contains('/') && crate::spec::valid_tag(t) {
            return (p.to_string(), Some(t.to_string()));
        }
    }
    (rest.to_string(), None)
}

impl Output {
    /// Parses `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`.
    pub fn parse(s: &str) -> Result<Output, OutputError> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_tag(rest);
            if dir.is_empty() {
                return Err(OutputError::Syntax(s.into()));
            }
            Ok(Output::OciDir { dir: dir.into(), tag })
        } else if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split_tag(rest);
            if file.is_empty() {
                return Err(OutputError::Syntax(s.into()));
            }
            Ok(Output::OciArchive { file: file.into(), tag })
        } else if let Some(rest) = s.strip_prefix("docker-archive:") {
            let mut parts = rest.splitn(2, ':');
            let file = parts.next().unwrap_or_default();
            if file.is_empty() {
                return Err(OutputError::Syntax(s.into()));
            }
            Ok(Output::DockerArchive { file: file.into(), reference: parts.next().map(str::to_string) })
        } else {
            Err(OutputError::Syntax(s.into()))
        }
    }

    /// Displays as it was given.
    pub fn display(&self) -> String {
        match self {
            Output::OciDir { dir, tag } => {
                format!("oci:{}{}", dir.display(), tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default())
            }
            Output::OciArchive { file, tag } => {
                format!("oci-archive:{}{}", file.display(), tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default())
            }
            Output::DockerArchive { file, reference } => format!(
                "docker-archive:{}{}",
                file.display(),
                reference.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
            ),
        }
    }
}

/// All blobs of an image: (digest, where the bytes are).
enum BlobSrc<'a> {
    /// A blob of the store, verified against its digest as it is copied.
    Store(PathBuf, Digest),
    Bytes(&'a [u8]),
    Owned(Vec<u8>),
}

fn blobs<'a>(img: &'a BuiltImage, store: &Store) -> Vec<(Digest, u64, BlobSrc<'a>)> {
    let mut v: Vec<(Digest, u64, BlobSrc<'a>)> = Vec::new();
    v.push((img.config.digest, img.config.bytes.len() as u64, BlobSrc::Bytes(&img.config.bytes)));
    v.push((img.manifest.digest, img.manifest.bytes.len() as u64, BlobSrc::Bytes(&img.manifest.bytes)));
    for l in &img.layers {
        v.push((l.blob.digest, l.blob.size, BlobSrc::Store(store.path(&l.blob.digest), l.blob.digest)));
    }
    v.sort_by_key(|a| a.0);
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Media type of the OCI empty descriptor's blob `{}`.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Annotation on an image's index entry naming its SBOM artifact manifest
/// (kept among the layout's blobs, not listed as an image of its own, so
/// tools that expect one image per layout keep working).
pub const SBOM_ANNOTATION: &str = "dev.strata.sbom";

/// An OCI artifact that refers to an image (`subject`), e.g. its SBOM.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The artifact manifest.
    pub manifest: crate::image::JsonBlob,
    /// Its blobs (empty config, payload).
    pub blobs: Vec<(Digest, Vec<u8>)>,
    /// Its artifact type.
    pub artifact_type: String,
    /// The document itself (also among `blobs`).
    pub document: Vec<u8>,
}

/// The SBOM of `img` as an OCI artifact manifest whose subject is the image.
pub fn sbom_attachment(img: &BuiltImage, sbom: &[u8], epoch: u64) -> Result<Attachment, OutputError> {
    let empty = b"{}".to_vec();
    let empty_d = Digest::of(&empty);
    let sbom_d = Digest::of(sbom);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": crate::image::MANIFEST_MEDIA_TYPE,
        "artifactType": crate::sbom::SPDX_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty_d.to_string(), "size": 2},
        "layers": [{"mediaType": crate::sbom::SPDX_MEDIA_TYPE, "digest": sbom_d.to_string(), "size": sbom.len()}],
        "subject": {"mediaType": crate::image::MANIFEST_MEDIA_TYPE, "digest": img.manifest.digest.to_string(), "size": img.manifest.bytes.len()},
        "annotations": {"org.opencontainers.image.created": crate::image::rfc3339(epoch)},
    });
    let bytes = canonical::to_vec(&m).map_err(|e| OutputError::Other(e.to_string()))?;
    let digest = Digest::of(&bytes);
    Ok(Attachment {
        manifest: crate::image::JsonBlob { bytes, digest },
        blobs: vec![(empty_d, empty), (sbom_d, sbom.to_vec())],
        artifact_type: crate::sbom::SPDX_MEDIA_TYPE.into(),
        document: sbom.to_vec(),
    })
}

fn image_entry(img: &BuiltImage, tag: &str, sbom: Option<&Attachment>) -> Result<serde_json::Value, OutputError> {
    let mut ann = BTreeMap::new();
    ann.insert(REF_NAME.to_string(), tag.to_string());
    if let Some(a) = sbom {
        ann.insert(SBOM_ANNOTATION.to_string(), a.manifest.digest.to_string());
    }
    serde_json::to_value(img.manifest_descriptor(ann)).map_err(|e| OutputError::Other(e.to_string()))
}

/// Writes the image to `output`; `default_tag` is used when the output names
/// none. An SBOM is stored in layouts and oci-archives as an artifact that
/// refers to the image, and beside docker-archives as `FILE.spdx.json`.
pub fn write(
    img: &BuiltImage,
    store: &Store,
    output: &Output,
    default_name: &str,
    default_tag: &str,
    sbom: Option<&Attachment>,
) -> Result<(), OutputError> {
    match output {
        Output::OciDir { dir, tag } => write_oci_dir(img, store, dir, tag.as_deref().unwrap_or(default_tag), sbom),
        Output::OciArchive { file, tag } => {
            write_archive(file, |w| oci_archive_entries(img, store, tag.as_deref().unwrap_or(default_tag), sbom, w))
        }
        Output::DockerArchive { file, reference } => {
            let r = reference.clone().unwrap_or_else(|| format!("{default_name}:{default_tag}"));
            write_archive(file, |w| docker_archive_entries(img, store, &r, w))?;
            if let Some(a) = sbom {
                let mut side = file.as_os_str().to_owned();
                side.push(".spdx.json");
                atomic_write(Path::new(&side), &a.document)?;
            }
            Ok(())
        }
    }
}

fn write_oci_dir(
    img: &BuiltImage,
    store: &Store,
    dir: &Path,
    tag: &str,
    sbom: Option<&Attachment>,
) -> Result<(), OutputError> {
    let fresh = !dir.exists() || fs::read_dir(dir).map_err(ioe("reading", dir))?.next().is_none();
    if !fresh && !dir.join("oci-layout").is_file() {
        return Err(OutputError::NotALayout(dir.to_path_buf()));
    }
    if !dir.exists() {
        // Build next to the destination, then rename: a crash leaves no half layout.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(ioe("creating", parent))?;
        sweep_stale(parent, "layout");
        let tmp = tempfile::Builder::new()
            .prefix(&temp_prefix("layout"))
            .tempdir_in(parent)
            .map_err(ioe("creating temporary directory in", parent))?;
        set_mode(tmp.path(), 0o755)?;
        fill_layout(img, store, tmp.path(), tag, sbom, false)?;
        match fs::rename(tmp.path(), dir) {
            Ok(()) => {
                let _ = tmp.keep();
                return Ok(());
            }
            // Another build created the layout meanwhile: add this image to
            // it like to any existing layout (the temporary one is dropped).
            Err(e) if dir.join("oci-layout").is_file() => {
                tracing::debug!("{} appeared while it was written ({e}); merging into it", dir.display());
            }
            Err(e) => {
                return Err(OutputError::Io { action: "renaming layout into", path: dir.to_path_buf(), source: e })
            }
        }
    }
    fill_layout(img, store, dir, tag, sbom, true)
}

/// Holds an exclusive lock on a layout directory (an advisory lock on the
/// directory itself, so nothing is added to the layout) while its index is
/// read, changed and written: concurrent builds into one layout keep each
/// other's tags.
fn lock_layout(dir: &Path) -> Result<fs::File, OutputError> {
    let f = fs::File::open(dir).map_err(ioe("opening", dir))?;
    f.lock().map_err(ioe("locking", dir))?;
    Ok(f)
}

fn fill_layout(
    img: &BuiltImage,
    store: &Store,
    dir: &Path,
    tag: &str,
    sbom: Option<&Attachment>,
    merge: bool,
) -> Result<(), OutputError> {
    let bdir = dir.join("blobs/sha256");
    fs::create_dir_all(&bdir).map_err(ioe("creating", &bdir))?;
    for (d, _, src) in blobs(img, store).into_iter().chain(attachment_blobs(sbom)) {
        let dest = bdir.join(d.hex());
        if dest.is_file() {
            continue;
        }
        match src {
            BlobSrc::Bytes(b) => atomic_write(&dest, b)?,
            BlobSrc::Owned(b) => atomic_write(&dest, &b)?,
            BlobSrc::Store(p, digest) => {
                // A unique temporary name: two builds may add the same blob.
                let tmp = tempfile::Builder::new()
                    .prefix(&format!(".{}-", d.hex()))
                    .suffix(".tmp")
                    .tempfile_in(&bdir)
                    .map_err(ioe("creating temporary file in", &bdir))?;
                copy_verified(&p, tmp.as_file(), &digest)?;
                set_mode(tmp.path(), 0o644)?;
                tmp.persist(&dest).map_err(|e| OutputError::Io {
                    action: "renaming blob to",
                    path: dest.clone(),
                    source: e.error,
                })?;
            }
        }
    }
    atomic_write(&dir.join("oci-layout"), OCI_LAYOUT)?;
    let _lock = if merge { Some(lock_layout(dir)?) } else { None };
    let existing_index = if merge && dir.join("index.json").is_file() {
        Some(fs::read(dir.join("index.json")).map_err(ioe("reading", &dir.join("index.json")))?)
    } else {
        None
    };
    // Keep other images of the layout; replace the one with this tag.
    let mut manifests: Vec<serde_json::Value> = Vec::new();
    if let Some(bytes) = existing_index {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| OutputError::Other(format!("{}: invalid index.json: {e}", dir.display())))?;
        if let Some(list) = v.get("manifests").and_then(|m| m.as_array()) {
            for m in list {
                if m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1"))).and_then(|t| t.as_str())
                    != Some(tag)
                {
                    manifests.push(m.clone());
                }
            }
        }
    }
    manifests.push(image_entry(img, tag, sbom)?);
    let index = json!({"schemaVersion": 2, "mediaType": crate::image::INDEX_MEDIA_TYPE, "manifests": manifests});
    let bytes = canonical::to_vec(&index).map_err(|e| OutputError::Other(e.to_string()))?;
    atomic_write(&dir.join("index.json"), &bytes)
}

/// Copies a store blob into `out`, checking its digest on the way: a blob
/// that rotted in the cache is removed from it and reported, never handed
/// to a layout. The copy is a reflink (copy-on-write clone) where the
/// filesystem has them, else a plain copy: the layout never shares bytes
/// with the cache, so writing to one cannot corrupt the other.
fn copy_verified(src: &Path, out: &fs::File, digest: &Digest) -> Result<(), OutputError> {
    let input = fs::File::open(src).map_err(ioe("opening", src))?;
    let found = if reflink(&input, out) {
        let (found, _) =
            crate::digest::hash_reader(io::BufReader::with_capacity(1 << 20, out)).map_err(ioe("reading", src))?;
        found
    } else {
        let mut w = crate::digest::HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
        io::copy(&mut io::BufReader::with_capacity(1 << 20, &input), &mut w).map_err(ioe("copying", src))?;
        let (mut buf, found, _) = w.finish();
        buf.flush().map_err(ioe("copying", src))?;
        found
    };
    if found != *digest {
        let _ = fs::remove_file(src);
        return Err(OutputError::CorruptBlob { digest: *digest, found });
    }
    Ok(())
}

/// Clones `src` into `dst` with the FICLONE ioctl (btrfs, XFS, bcachefs…);
/// false where the filesystem cannot.
fn reflink(src: &fs::File, dst: &fs::File) -> bool {
    use std::os::fd::AsRawFd;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both descriptors are open files owned by the caller.
    unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) == 0 }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), OutputError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(ioe("setting permissions of", path))
}

/// The name start of a large temporary output (`layout`, `archive`) written
/// next to its destination: it carries this process's id, so that a later
/// run can tell a leftover of a killed writer from work in progress.
fn temp_prefix(kind: &str) -> String {
    format!(".strata-{kind}-{}-", std::process::id())
}

/// Removes the temporary outputs of `kind` in `dir` that killed writers left:
/// their process is gone (no `/proc/PID`) and they have not changed for a
/// minute (a writer in another PID namespace still touches its file).
fn sweep_stale(dir: &Path, kind: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let head = format!(".strata-{kind}-");
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&head))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let idle = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d > std::time::Duration::from_secs(60));
        if idle {
            let p = e.path();
            let _ = if e.file_type().is_ok_and(|t| t.is_dir()) { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-")
        .tempfile_in(parent)
        .map_err(ioe("creating temporary file in", parent))?;
    tmp.write_all(bytes).map_err(ioe("writing", path))?;
    set_mode(tmp.path(), 0o644)?;
    tmp.as_file().sync_all().map_err(ioe("syncing", path))?;
    tmp.persist(path).map_err(|e| OutputError::Io {
        action: "renaming into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

type Entries<'a> = Vec<(String, u64, BlobSrc<'a>)>;

fn write_archive<'a>(
    file: &Path,
    entries: impl FnOnce(&mut Entries<'a>) -> Result<(), OutputError>,
) -> Result<(), OutputError> {
    let mut list: Entries<'a> = Vec::new();
    entries(&mut list)?;
    list.sort_by(|a, b| a.0.cmp(&b.0));
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(ioe("creating", parent))?;
    sweep_stale(parent, "archive");
    let tmp = tempfile::Builder::new()
        .prefix(&temp_prefix("archive"))
        .tempfile_in(parent)
        .map_err(ioe("creating temporary file in", parent))?;
    {
        let mut tw = TarWriter::new(io::BufWriter::with_capacity(1 << 20, tmp.as_file()));
        let mut dirs_done = std::collections::BTreeSet::new();
        for (name, size, src) in &list {
            // parent directories first
            let mut acc = String::new();
            for comp in name.split('/').collect::<Vec<_>>().iter().rev().skip(1).rev() {
                acc.push_str(comp);
                acc.push('/');
                if dirs_done.insert(acc.clone()) {
                    tw.append(
                        &TarHeader {
                            path: &acc,
                            kind: TarType::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            size: 0,
                            mtime: 0,
                            link: None,
                        },
                        None,
                    )
                    .map_err(ioe("writing", file))?;
                }
            }
            let mut reader: Box<dyn Read> = match src {
                BlobSrc::Bytes(b) => Box::new(*b),
                BlobSrc::Owned(b) => Box::new(&b[..]),
                BlobSrc::Store(p, d) => Box::new(Verified {
                    inner: crate::digest::HashingReader::new(fs::File::open(p).map_err(ioe("opening", p))?),
                    expected: *d,
                    path: p.clone(),
                }),
            };
            tw.append(
                &TarHeader {
                    path: name,
                    kind: TarType::File,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    size: *size,
                    mtime: 0,
                    link: None,
                },
                Some(&mut reader),
            )
            .map_err(|e| match e.get_ref().and_then(|r| r.downcast_ref::<Corrupt>()) {
                Some(c) => OutputError::CorruptBlob { digest: c.0, found: c.1 },
                None => OutputError::Io { action: "writing", path: file.to_path_buf(), source: e },
            })?;
        }
        let mut w = tw.finish().map_err(ioe("writing", file))?;
        w.flush().map_err(ioe("writing", file))?;
    }
    set_mode(tmp.path(), 0o644)?;
    tmp.as_file().sync_all().map_err(ioe("syncing", file))?;
    tmp.persist(file).map_err(|e| OutputError::Io {
        action: "renaming into",
        path: file.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// A store blob read into an archive, checked against its digest at its end.
struct Verified {
    inner: crate::digest::HashingReader<fs::File>,
    expected: Digest,
    path: PathBuf,
}

#[derive(Debug)]
struct Corrupt(Digest, Digest);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cached blob {} is corrupt (its bytes hash to {})", self.0, self.1)
    }
}

impl std::error::Error for Corrupt {}

impl Read for Verified {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let found = self.inner.digest_so_far();
            if found != self.expected {
                let _ = fs::remove_file(&self.path);
                return Err(io::Error::other(Corrupt(self.expected, found)));
            }
        }
        Ok(n)
    }
}

fn attachment_blobs(a: Option<&Attachment>) -> Vec<(Digest, u64, BlobSrc<'static>)> {
    let mut v = Vec::new();
    if let Some(a) = a {
        v.push((a.manifest.digest, a.manifest.bytes.len() as u64, BlobSrc::Owned(a.manifest.bytes.clone())));
        for (d, b) in &a.blobs {
            v.push((*d, b.len() as u64, BlobSrc::Owned(b.clone())));
        }
    }
    v
}

fn oci_archive_entries<'a>(
    img: &'a BuiltImage,
    store: &Store,
    tag: &str,
    sbom: Option<&Attachment>,
    out: &mut Entries<'a>,
) -> Result<(), OutputError> {
    let mut seen = std::collections::BTreeSet::new();
    for (d, size, src) in blobs(img, store).into_iter().chain(attachment_blobs(sbom)) {
        if seen.insert(d) {
            out.push((format!("blobs/sha256/{}", d.hex()), size, src));
        }
    }
    let entries = vec![image_entry(img, tag, sbom)?];
    let index = canonical::to_vec(
        &json!({"schemaVersion": 2, "mediaType": crate::image::INDEX_MEDIA_TYPE, "manifests": entries}),
    )
    .map_err(|e| OutputError::Other(e.to_string()))?;
    out.push(("index.json".into(), index.len() as u64, BlobSrc::Owned(index)));
    out.push(("oci-layout".into(), OCI_LAYOUT.len() as u64, BlobSrc::Bytes(OCI_LAYOUT)));
    Ok(())
}

fn docker_archive_entries<'a>(
    img: &'a BuiltImage,
    store: &Store,
    reference: &str,
    out: &mut Entries<'a>,
) -> Result<(), OutputError> {
    for (d, size, src) in blobs(img, store) {
        if d == img.manifest.digest {
            continue; // docker archives describe images with manifest.json instead
        }
        out.push((format!("blobs/sha256/{}", d.hex()), size, src));
    }
    let manifest = json!([{
        "Config": format!("blobs/sha256/{}", img.config.digest.hex()),
        "RepoTags": [reference],
        "Layers": img.layers.iter().map(|l| format!("blobs/sha256/{}", l.blob.digest.hex())).collect::<Vec<_>>(),
    }]);
    let bytes = canonical::to_vec(&manifest).map_err(|e| OutputError::Other(e.to_string()))?;
    out.push(("manifest.json".into(), bytes.len() as u64, BlobSrc::Owned(bytes)));
    Ok(())
}
