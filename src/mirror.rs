//! Mirror directories for air-gapped sites: every artifact a spec needs, laid
//! out by sha256 (`sha256/<hex>`) with an `index.json` that names each one.
//! A mirror is filled on a connected machine (`strata fetch SPEC --into DIR`),
//! carried across, and used with `strata build --offline --mirror DIR`.

use fs_err as fs;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{hash_reader, Digest};
use crate::fetch::Artifact;
use crate::store::Store;

/// One artifact recorded in a mirror's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEntry {
    /// Short name.
    pub name: String,
    /// The URL it was fetched from (credentials redacted).
    pub url: String,
    /// Size in bytes.
    pub size: u64,
}

/// `index.json` of a mirror: sha256 → entry, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorIndex {
    /// Format version (1).
    pub version: u32,
    /// Artifacts by `sha256:<hex>`.
    pub artifacts: BTreeMap<String, MirrorEntry>,
}

/// Mirror errors.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// IO on a path.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// A registry mirror cannot be read or written.
    #[error("{0}")]
    Registry(String),
    /// The index is unreadable.
    #[error("{}: invalid mirror index: {message}", path.display())]
    Index {
        /// Index path.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
}

fn ioe<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MirrorError + 'a {
    crate::error::io_err(action, path)
}

/// Reads a mirror's index (an absent index is an empty one).
pub fn read_index(dir: &Path) -> Result<MirrorIndex, MirrorError> {
    let p = dir.join("index.json");
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| MirrorError::Index { path: p, message: e.to_string() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MirrorIndex { version: 1, artifacts: BTreeMap::new() }),
        Err(e) => Err(MirrorError::Io(crate::error::IoError { action: "reading", path: p, source: e })),
    }
}

/// What an export did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportSummary {
    /// Artifacts added to the mirror.
    pub added: usize,
    /// Artifacts already there.
    pub present: usize,
    /// Bytes added.
    pub bytes: u64,
}

/// Copies artifacts from the store into the mirror (hard links when possible),
/// each by temporary name + rename, then rewrites the index atomically. Safe
/// to rerun after an interruption: present files are kept.
pub fn export(store: &Store, artifacts: &[Artifact], dir: &Path) -> Result<ExportSummary, MirrorError> {
    let sdir = dir.join("sha256");
    fs::create_dir_all(&sdir).map_err(ioe("creating", &sdir))?;
    let mut index = read_index(dir)?;
    index.version = 1;
    let mut sum = ExportSummary::default();
    for a in artifacts {
        let dest = sdir.join(a.sha256.hex());
        let src = store.path(&a.sha256);
        let size = fs::metadata(&src).map_err(ioe("reading", &src))?.len();
        if dest.is_file() && fs::metadata(&dest).map(|m| m.len()).unwrap_or(0) == size {
            sum.present += 1;
        } else {
            let tmp = sdir.join(format!(".{}.part", a.sha256.hex()));
            let _ = fs::remove_file(&tmp);
            if fs::hard_link(&src, &tmp).is_err() {
                fs::copy(&src, &tmp).map_err(ioe("copying to", &tmp))?;
            }
            fs::rename(&tmp, &dest).map_err(ioe("renaming to", &dest))?;
            sum.added += 1;
            sum.bytes += size;
        }
        index.artifacts.insert(
            a.sha256.to_string(),
            MirrorEntry { name: a.name.clone(), url: crate::net::redact::url(&a.url), size },
        );
    }
    let bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| MirrorError::Index { path: dir.join("index.json"), message: e.to_string() })?;
    crate::atomic::atomic_write(&dir.join("index.json"), &bytes).map_err(|e| {
        MirrorError::Io(crate::error::IoError {
            action: "writing",
            path: dir.join("index.json"),
            source: io::Error::other(e.to_string()),
        })
    })?;
    Ok(sum)
}

/// The file of `digest` in the first mirror that has one (not re-hashed
/// here: readers check the digest of what they read).
pub fn find(dirs: &[PathBuf], digest: &Digest) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join("sha256").join(digest.hex())).find(|p| p.is_file())
}

/// Every artifact the mirrors' indexes list for `url` (redacted URLs
/// compare as written), with its file, in mirror order.
pub fn find_url(dirs: &[PathBuf], url: &str) -> Vec<(Digest, PathBuf)> {
    let want = crate::net::redact::url(url);
    let mut out = Vec::new();
    for d in dirs {
        let Ok(index) = read_index(d) else { continue };
        for (digest, e) in &index.artifacts {
            if e.url != want {
                continue;
            }
            if let Ok(digest) = Digest::parse(digest) {
                let p = d.join("sha256").join(digest.hex());
                if p.is_file() {
                    out.push((digest, p));
                }
            }
        }
    }
    out
}

/// Every wheel file the mirrors hold: (file name as the index names it,
/// digest, original URL, size, path).
pub fn wheels(dirs: &[PathBuf]) -> Vec<(String, Digest, String, u64, PathBuf)> {
    let mut out = Vec::new();
    for d in dirs {
        let Ok(index) = read_index(d) else { continue };
        for (digest, e) in &index.artifacts {
            let Ok(digest) = Digest::parse(digest) else { continue };
            let p = d.join("sha256").join(digest.hex());
            if e.name.ends_with(".whl") && !e.name.contains('/') && p.is_file() {
                out.push((e.name.clone(), digest, e.url.clone(), e.size, p));
            }
        }
    }
    out
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file's bytes do not hash to its name.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it hashes to.
        found: Digest,
    },
    /// The index names a file that is absent.
    Missing {
        /// Expected digest.
        digest: String,
        /// Its name.
        name: String,
    },
    /// A file whose name is not a digest.
    Stray(PathBuf),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Corrupt { path, found } => write!(f, "{}: corrupt (bytes hash to {found})", path.display()),
            Problem::Missing { digest, name } => write!(f, "{name} ({digest}): listed in index.json but missing"),
            Problem::Stray(p) => write!(f, "{}: not named by a sha256 digest", p.display()),
        }
    }
}

/// Re-hashes every file of a mirror. Returns (files checked, problems).
pub fn verify(dir: &Path, progress: &dyn Fn(&str)) -> Result<(usize, Vec<Problem>), MirrorError> {
    let sdir = dir.join("sha256");
    let index = read_index(dir)?;
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut names: Vec<PathBuf> = match fs::read_dir(&sdir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(MirrorError::Io(crate::error::IoError { action: "listing", path: sdir, source: e })),
    };
    names.sort();
    for p in names {
        let fname = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if fname.starts_with('.') {
            continue; // an interrupted copy; the next fetch replaces it
        }
        let Ok(expected) = Digest::parse(&fname) else {
            problems.push(Problem::Stray(p));
            continue;
        };
        let name = index.artifacts.get(&expected.to_string()).map(|e| e.name.clone()).unwrap_or_else(|| fname.clone());
        progress(&name);
        let f = fs::File::open(&p).map_err(ioe("opening", &p))?;
        let (found, _) = hash_reader(io::BufReader::with_capacity(1 << 20, f)).map_err(ioe("reading", &p))?;
        checked += 1;
        if found != expected {
            problems.push(Problem::Corrupt { path: p, found });
        }
    }
    for (d, e) in &index.artifacts {
        let hex = d.trim_start_matches("sha256:");
        if !sdir.join(hex).is_file() {
            problems.push(Problem::Missing { digest: d.clone(), name: e.name.clone() });
        }
    }
    Ok((checked, problems))
}

/// Tag of a registry mirror's manifest.
pub const REGISTRY_TAG: &str = "strata-mirror";
/// `artifactType` of a registry mirror's manifest.
pub const REGISTRY_ARTIFACT_TYPE: &str = "application/vnd.strata.mirror.v1";
/// Media type of its config blob: the mirror's `index.json`.
pub const REGISTRY_INDEX_MEDIA_TYPE: &str = "application/vnd.strata.mirror.index.v1+json";
/// Media type of the artifacts' blobs.
pub const ARTIFACT_MEDIA_TYPE: &str = "application/octet-stream";

/// A mirror given on the command line or in the configuration file: a
/// directory, or `docker://HOST[:PORT]/REPO`, a registry repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorLocation {
    /// A directory (`sha256/<hex>` and `index.json`).
    Dir(PathBuf),
    /// A registry repository.
    Registry(crate::oci::Reference),
}

impl MirrorLocation {
    /// `docker://…` is a registry repository (a tag or digest is refused);
    /// anything else a directory.
    pub fn parse(s: &Path) -> Result<MirrorLocation, String> {
        let text = s.to_string_lossy();
        let Some(rest) = text.strip_prefix("docker://") else { return Ok(MirrorLocation::Dir(s.to_path_buf())) };
        let r = crate::oci::Reference::parse(rest).map_err(|e| e.to_string())?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(format!(
                "mirror `{text}`: name a repository (docker://HOST[:PORT]/REPO) without a tag or digest"
            ));
        }
        Ok(MirrorLocation::Registry(r))
    }
}

impl std::fmt::Display for MirrorLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorLocation::Dir(d) => write!(f, "{}", d.display()),
            MirrorLocation::Registry(r) => write!(f, "docker://{}", r.repo_display()),
        }
    }
}

/// A mirror kept in a registry repository: one artifact manifest tagged
/// `strata-mirror` whose config is the mirror's index and whose blobs are
/// every artifact (so the registry's garbage collector keeps them all).
pub struct RegistryMirror {
    client: crate::registry::Client,
    repo: crate::oci::Reference,
    index: MirrorIndex,
    manifest: Option<crate::oci::Reference>,
}

impl std::fmt::Debug for RegistryMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryMirror(docker://{})", self.repo.repo_display())
    }
}

fn reg_err(repo: &crate::oci::Reference, e: impl std::fmt::Display) -> MirrorError {
    MirrorError::Registry(format!("docker://{}: {e}", repo.repo_display()))
}

impl RegistryMirror {
    /// Opens the mirror in `repo` (an absent one is empty).
    pub fn open(client: crate::registry::Client, repo: crate::oci::Reference) -> Result<RegistryMirror, MirrorError> {
        let at = crate::oci::Reference {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            tag: Some(REGISTRY_TAG.into()),
            digest: None,
        };
        let src = match client.open(&at) {
            Ok(s) => s,
            Err(e) if e.status() == Some(404) => {
                return Ok(RegistryMirror {
                    client,
                    repo,
                    index: MirrorIndex { version: 1, artifacts: BTreeMap::new() },
                    manifest: None,
                })
            }
            Err(e) => return Err(reg_err(&repo, e)),
        };
        let m = src.root_manifest().manifest("mirror manifest").map_err(|e| reg_err(&repo, e))?;
        if m.artifact_type.as_deref() != Some(REGISTRY_ARTIFACT_TYPE)
            || m.config.media_type != REGISTRY_INDEX_MEDIA_TYPE
        {
            return Err(reg_err(&repo, format!("the tag {REGISTRY_TAG} is not a strata mirror")));
        }
        let bytes = crate::image::read_blob(&src, &m.config).map_err(|e| reg_err(&repo, e))?;
        let index: MirrorIndex =
            serde_json::from_slice(&bytes).map_err(|e| reg_err(&repo, format!("invalid mirror index: {e}")))?;
        let manifest = Some(repo.with_digest(src.root_manifest().digest));
        Ok(RegistryMirror { client, repo, index, manifest })
    }

    /// The index.
    pub fn index(&self) -> &MirrorIndex {
        &self.index
    }

    /// Where it is (`docker://HOST/REPO`).
    pub fn describe(&self) -> String {
        format!("docker://{}", self.repo.repo_display())
    }

    /// Downloads the artifact `digest` into the store (verified) when the
    /// mirror lists it; `Ok(false)` when it does not.
    pub fn copy_to_store(&self, digest: &Digest, store: &Store) -> Result<bool, MirrorError> {
        let Some(e) = self.index.artifacts.get(&digest.to_string()) else { return Ok(false) };
        let Some(m) = &self.manifest else { return Ok(false) };
        if store.contains(digest) {
            return Ok(true);
        }
        let src = self.client.open(m).map_err(|e| reg_err(&self.repo, e))?;
        let d = crate::oci::Descriptor::new(ARTIFACT_MEDIA_TYPE, *digest, e.size);
        download_blob(&src, &d, store).map_err(|e| reg_err(&self.repo, e))?;
        Ok(true)
    }

    /// Copies every artifact the mirror lists into a directory mirror
    /// (`dir`), downloading only what `dir` lacks; returns how many were
    /// downloaded.
    pub fn sync_to(&self, dir: &Path, store: &Store) -> Result<usize, MirrorError> {
        let mut missing = Vec::new();
        for (d, e) in &self.index.artifacts {
            let digest = Digest::parse(d).map_err(|e| reg_err(&self.repo, e))?;
            let have = dir.join("sha256").join(digest.hex());
            if have.is_file() && fs::metadata(&have).map(|m| m.len()).unwrap_or(0) == e.size {
                continue;
            }
            self.copy_to_store(&digest, store)?;
            missing.push(Artifact { name: e.name.clone(), url: e.url.clone(), sha256: digest, size: Some(e.size) });
        }
        export(store, &missing, dir)?;
        Ok(missing.len())
    }

    /// Adds `artifacts` (in the store) to the mirror: each blob uploaded
    /// unless the repository has it, then one new manifest listing the
    /// merged index. Several specs can share one mirror; two writers at the
    /// same moment can lose one's additions (rerun it: nothing is uploaded
    /// twice).
    pub fn export(&mut self, store: &Store, artifacts: &[Artifact]) -> Result<ExportSummary, MirrorError> {
        let mut sum = ExportSummary::default();
        for a in artifacts {
            let src = store.path(&a.sha256);
            let size = fs::metadata(&src).map_err(ioe("reading", &src))?.len();
            let rep = self
                .client
                .push_blob_file(&self.repo, &src, a.sha256, size, ARTIFACT_MEDIA_TYPE)
                .map_err(|e| reg_err(&self.repo, e))?;
            if rep.bytes_sent > 0 || matches!(rep.action, crate::image::BlobAction::Uploaded) {
                sum.added += 1;
                sum.bytes += size;
            } else {
                sum.present += 1;
            }
            self.index.artifacts.insert(
                a.sha256.to_string(),
                MirrorEntry { name: a.name.clone(), url: crate::net::redact::url(&a.url), size },
            );
        }
        self.index.version = 1;
        let config = crate::oci::canonical::to_vec(&self.index).map_err(|e| reg_err(&self.repo, e))?;
        let mut layers = Vec::new();
        for (d, e) in &self.index.artifacts {
            let digest = Digest::parse(d).map_err(|e| reg_err(&self.repo, e))?;
            let mut desc = crate::oci::Descriptor::new(ARTIFACT_MEDIA_TYPE, digest, e.size);
            desc.annotations.insert("org.opencontainers.image.title".into(), e.name.clone());
            layers.push(desc);
        }
        if layers.is_empty() {
            layers.push(crate::oci::Descriptor::of(crate::oci::media::EMPTY, b"{}"));
            self.client
                .push_blob_bytes(&self.repo, b"{}", crate::oci::media::EMPTY)
                .map_err(|e| reg_err(&self.repo, e))?;
        }
        let m = crate::oci::Manifest {
            schema_version: 2,
            media_type: Some(crate::oci::media::MANIFEST.into()),
            artifact_type: Some(REGISTRY_ARTIFACT_TYPE.into()),
            config: crate::oci::Descriptor::of(REGISTRY_INDEX_MEDIA_TYPE, &config),
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        };
        let raw =
            crate::oci::RawManifest::encode(&m, crate::oci::media::MANIFEST).map_err(|e| reg_err(&self.repo, e))?;
        self.client
            .push_blob_bytes(&self.repo, &config, REGISTRY_INDEX_MEDIA_TYPE)
            .map_err(|e| reg_err(&self.repo, e))?;
        let d = self
            .client
            .push_manifest(&self.repo, &raw.bytes, crate::oci::media::MANIFEST, Some(REGISTRY_TAG))
            .map_err(|e| reg_err(&self.repo, e))?;
        self.manifest = Some(self.repo.with_digest(d));
        Ok(sum)
    }

    /// Downloads and re-hashes every artifact the mirror lists (nothing is
    /// kept). Returns (artifacts checked, problems).
    pub fn verify(&self, progress: &dyn Fn(&str)) -> Result<(usize, Vec<Problem>), MirrorError> {
        let mut problems = Vec::new();
        let mut checked = 0;
        let Some(m) = &self.manifest else { return Ok((0, problems)) };
        let src = self.client.open(m).map_err(|e| reg_err(&self.repo, e))?;
        for (d, e) in &self.index.artifacts {
            let Ok(digest) = Digest::parse(d) else {
                problems.push(Problem::Missing { digest: d.clone(), name: e.name.clone() });
                continue;
            };
            progress(&e.name);
            let desc = crate::oci::Descriptor::new(ARTIFACT_MEDIA_TYPE, digest, e.size);
            checked += 1;
            let r = crate::image::ImageSource::open_blob(&src, &desc);
            let found = r.and_then(|r| {
                hash_reader(r).map_err(|source| crate::image::ImageError::Read {
                    source_name: self.describe(),
                    digest,
                    source,
                })
            });
            match found {
                Ok((f, _)) if f == digest => {}
                Ok((f, _)) => problems.push(Problem::Corrupt { path: PathBuf::from(self.describe()), found: f }),
                Err(_) => problems.push(Problem::Missing { digest: d.clone(), name: e.name.clone() }),
            }
        }
        Ok((checked, problems))
    }
}

/// Streams a blob of `src`'s repository into the store, verified (digest
/// and size); returns its size.
pub fn download_blob(
    src: &crate::registry::RemoteSource,
    d: &crate::oci::Descriptor,
    store: &Store,
) -> Result<u64, String> {
    use std::io::Read as _;
    let mut r = crate::image::ImageSource::open_blob(src, d).map_err(|e| e.to_string())?;
    let tmp = store.temp_file().map_err(|e| e.to_string())?;
    let mut w = crate::digest::HashingWriter::new(io::BufWriter::new(tmp));
    let n = io::copy(&mut (&mut r).take(d.size + 1), &mut w).map_err(|e| e.to_string())?;
    let (buf, found, _) = w.finish();
    let tmp = buf.into_inner().map_err(|e| e.to_string())?;
    if found != d.digest || n != d.size {
        return Err(format!("downloaded bytes hash to {found} ({n} bytes), not {} ({} bytes)", d.digest, d.size));
    }
    store.commit(tmp, &d.digest).map_err(|e| e.to_string())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_locations_are_directories_unless_docker_urls_without_tags() {
        assert_eq!(MirrorLocation::parse(Path::new("/srv/m")).unwrap(), MirrorLocation::Dir("/srv/m".into()));
        assert_eq!(MirrorLocation::parse(Path::new("docker")).unwrap(), MirrorLocation::Dir("docker".into()));
        match MirrorLocation::parse(Path::new("docker://127.0.0.1:5000/strata/mirror")).unwrap() {
            MirrorLocation::Registry(r) => {
                assert_eq!((r.registry.as_str(), r.repository.as_str()), ("127.0.0.1:5000", "strata/mirror"))
            }
            other => panic!("{other:?}"),
        }
        let e = MirrorLocation::parse(Path::new("docker://127.0.0.1:5000/strata/mirror:v1")).unwrap_err();
        assert!(e.contains("without a tag or digest"), "{e}");
        assert!(MirrorLocation::parse(Path::new("docker://127.0.0.1:5000/Bad")).is_err());
    }
}
