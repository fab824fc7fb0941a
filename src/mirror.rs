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
    /// Other URLs the same bytes were fetched from (sorted, at most
    /// [`MAX_ALSO`]), so a lookup by any of them finds the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// Most other URLs kept for one artifact.
pub const MAX_ALSO: usize = 16;

impl MirrorEntry {
    /// True when it was fetched from `url` (a redacted URL).
    pub fn has_url(&self, url: &str) -> bool {
        self.url == url || self.also.iter().any(|u| u == url)
    }

    /// `self` with `other`'s URLs added to `also` (not its own `url`).
    fn with_urls_of(mut self, other: &MirrorEntry) -> MirrorEntry {
        let mut urls: Vec<String> = std::iter::once(&other.url).chain(&other.also).chain(&self.also).cloned().collect();
        urls.retain(|u| *u != self.url);
        urls.sort();
        urls.dedup();
        urls.truncate(MAX_ALSO);
        self.also = urls;
        self
    }
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
        let mut e = MirrorEntry { name: a.name.clone(), url: crate::net::redact::url(&a.url), size, also: Vec::new() };
        if let Some(old) = index.artifacts.get(&a.sha256.to_string()) {
            e = e.with_urls_of(old);
        }
        index.artifacts.insert(a.sha256.to_string(), e);
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
            if !e.has_url(&want) {
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
    /// A part of a registry mirror that cannot be read.
    Unreadable(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Corrupt { path, found } => write!(f, "{}: corrupt (bytes hash to {found})", path.display()),
            Problem::Missing { digest, name } => write!(f, "{name} ({digest}): listed in index.json but missing"),
            Problem::Stray(p) => write!(f, "{}: not named by a sha256 digest", p.display()),
            Problem::Unreadable(m) => write!(f, "{m}"),
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

/// Tag of the manifest listing a registry mirror's whole index (written for
/// older readers; see [`RegistryMirror`]).
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

/// A mirror kept in a registry repository. Each `fetch --into` writes its
/// own artifact manifest under a tag derived from its content,
/// `strata-mirror-<32 hex>` (the start of the sha256 of its index), whose
/// config is the index of what that fetch put there and whose blobs are
/// those artifacts (so the registry's garbage collector keeps them all).
/// Nothing is ever overwritten, so writers at the same moment lose nothing:
/// readers list the repository's tags and take the union of every
/// `strata-mirror*` manifest's index (the plain `strata-mirror` tag that
/// older versions wrote included). The union is also written to
/// `strata-mirror` for older readers; nothing here depends on that copy.
pub struct RegistryMirror {
    client: crate::registry::Client,
    repo: crate::oci::Reference,
    index: MirrorIndex,
    manifest: Option<crate::oci::Reference>,
    /// Mirror tags that could not be read (skipped), and other warnings.
    warnings: Vec<String>,
    /// The `strata-mirror` tag names something other than a mirror.
    legacy_foreign: bool,
}

impl std::fmt::Debug for RegistryMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryMirror(docker://{})", self.repo.repo_display())
    }
}

fn reg_err(repo: &crate::oci::Reference, e: impl std::fmt::Display) -> MirrorError {
    MirrorError::Registry(format!("docker://{}: {e}", repo.repo_display()))
}

/// Prefix of the tag each fetch writes: `strata-mirror-<32 hex>`.
pub const REGISTRY_TAG_PREFIX: &str = "strata-mirror-";
/// Most tags of a mirror's repository listed.
const MAX_REPO_TAGS: usize = 100_000;
/// Most mirror manifests read.
const MAX_MIRROR_TAGS: usize = 10_000;
/// Most index bytes read from all of them together.
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// True for the tags a mirror is made of.
pub fn is_mirror_tag(tag: &str) -> bool {
    tag == REGISTRY_TAG || tag.strip_prefix(REGISTRY_TAG_PREFIX).is_some_and(|h| !h.is_empty())
}

/// The tag a fetch's index is written under.
pub fn contribution_tag(config: &[u8]) -> String {
    format!("{REGISTRY_TAG_PREFIX}{}", &Digest::of(config).hex()[..32])
}

/// The union of several indexes, one entry per digest whichever order they
/// come in: the same digest is the same bytes, so entries differ only in
/// name, URL or a (wrong) size. Where sizes differ, `size_of` (the
/// registry's own answer) picks those of the right size when it knows;
/// among the rest the least (url, name, size) is kept, with the others'
/// URLs in its `also`.
pub fn union_indexes(indexes: &[MirrorIndex], size_of: &mut dyn FnMut(&str) -> Option<u64>) -> MirrorIndex {
    let mut all: BTreeMap<String, Vec<&MirrorEntry>> = BTreeMap::new();
    for i in indexes {
        for (d, e) in &i.artifacts {
            all.entry(d.clone()).or_default().push(e);
        }
    }
    let mut out = MirrorIndex { version: 1, artifacts: BTreeMap::new() };
    for (d, mut es) in all {
        if es.iter().any(|e| e.size != es[0].size) {
            if let Some(n) = size_of(&d) {
                if es.iter().any(|e| e.size == n) {
                    es.retain(|e| e.size == n);
                }
            }
        }
        let best = es.iter().min_by(|a, b| (&a.url, &a.name, a.size).cmp(&(&b.url, &b.name, b.size)));
        if let Some(best) = best {
            let e = es.iter().fold((*best).clone(), |e, other| e.with_urls_of(other));
            out.artifacts.insert(d, e);
        }
    }
    out
}

impl RegistryMirror {
    /// Opens the mirror in `repo`: the union of every mirror tag there (an
    /// absent repository or one without such tags is an empty mirror). A
    /// mirror tag that cannot be read is skipped and listed by
    /// [`RegistryMirror::warnings`].
    pub fn open(client: crate::registry::Client, repo: crate::oci::Reference) -> Result<RegistryMirror, MirrorError> {
        let mut tags: Vec<String> = client
            .list_tags(&repo, MAX_REPO_TAGS)
            .map_err(|e| reg_err(&repo, e))?
            .into_iter()
            .filter(|t| is_mirror_tag(t))
            .collect();
        tags.sort();
        if tags.len() > MAX_MIRROR_TAGS {
            return Err(reg_err(
                &repo,
                format!("more than {MAX_MIRROR_TAGS} mirror tags ({REGISTRY_TAG_PREFIX}…); refusing to read them all"),
            ));
        }
        let mut indexes = Vec::new();
        let mut warnings = Vec::new();
        let mut legacy_foreign = false;
        let mut manifest = None;
        let mut read: u64 = 0;
        for tag in &tags {
            let at = crate::oci::Reference {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                tag: Some(tag.clone()),
                digest: None,
            };
            let src = match client.open(&at) {
                Ok(s) => s,
                // Listed, then gone: nothing of it to read.
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(reg_err(&repo, e)),
            };
            let m = match src.root_manifest().manifest("mirror manifest") {
                Ok(m)
                    if m.artifact_type.as_deref() == Some(REGISTRY_ARTIFACT_TYPE)
                        && m.config.media_type == REGISTRY_INDEX_MEDIA_TYPE =>
                {
                    m
                }
                _ => {
                    legacy_foreign |= tag == REGISTRY_TAG;
                    warnings.push(format!("the tag {tag} is not a strata mirror; skipped"));
                    continue;
                }
            };
            read += m.config.size;
            if read > MAX_INDEX_BYTES {
                return Err(reg_err(
                    &repo,
                    format!("the mirror's indexes are larger than {MAX_INDEX_BYTES} bytes together; refusing"),
                ));
            }
            let parsed = crate::image::read_blob(&src, &m.config)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<MirrorIndex>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(i) => {
                    indexes.push(i);
                    manifest.get_or_insert_with(|| repo.with_digest(src.root_manifest().digest));
                }
                Err(e) => warnings.push(format!("the tag {tag} has an invalid mirror index ({e}); skipped")),
            }
        }
        let index = union_indexes(&indexes, &mut |d| {
            Digest::parse(d).ok().and_then(|d| client.blob_size(&repo, &d).ok().flatten())
        });
        Ok(RegistryMirror { client, repo, index, manifest, warnings, legacy_foreign })
    }

    /// The index (the union of the mirror's tags).
    pub fn index(&self) -> &MirrorIndex {
        &self.index
    }

    /// Mirror tags that were skipped, and why.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
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
        // Blobs belong to the repository: any of its mirror manifests reads them.
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

    /// Pushes an artifact manifest listing `index` (its config and blobs
    /// must be there), tagged `tag`; returns its digest.
    fn push_index(&self, index: &MirrorIndex, config: &[u8], tag: &str) -> Result<Digest, MirrorError> {
        let mut layers = Vec::new();
        for (d, e) in &index.artifacts {
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
            config: crate::oci::Descriptor::of(REGISTRY_INDEX_MEDIA_TYPE, config),
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        };
        let raw =
            crate::oci::RawManifest::encode(&m, crate::oci::media::MANIFEST).map_err(|e| reg_err(&self.repo, e))?;
        self.client
            .push_blob_bytes(&self.repo, config, REGISTRY_INDEX_MEDIA_TYPE)
            .map_err(|e| reg_err(&self.repo, e))?;
        self.client
            .push_manifest(&self.repo, &raw.bytes, crate::oci::media::MANIFEST, Some(tag))
            .map_err(|e| reg_err(&self.repo, e))
    }

    /// Adds `artifacts` (in the store) to the mirror: each blob uploaded
    /// unless the repository has it, then one manifest listing them under
    /// its own tag (`strata-mirror-<32 hex>`, derived from its index, so a
    /// rerun writes the same tag again and other writers' tags are never
    /// touched). Then the union is written to `strata-mirror` for older
    /// readers (best effort: a failure there loses nothing; the returned
    /// warning says so).
    pub fn export(&mut self, store: &Store, artifacts: &[Artifact]) -> Result<ExportSummary, MirrorError> {
        let mut sum = ExportSummary::default();
        let mut mine = MirrorIndex { version: 1, artifacts: BTreeMap::new() };
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
            mine.artifacts.insert(
                a.sha256.to_string(),
                MirrorEntry { name: a.name.clone(), url: crate::net::redact::url(&a.url), size, also: Vec::new() },
            );
        }
        let config = crate::oci::canonical::to_vec(&mine).map_err(|e| reg_err(&self.repo, e))?;
        let d = self.push_index(&mine, &config, &contribution_tag(&config))?;
        self.manifest = Some(self.repo.with_digest(d));
        self.index = union_indexes(&[self.index.clone(), mine], &mut |_| None);
        // The copy for older readers, never over a tag that is not a mirror.
        if !self.legacy_foreign {
            let union = self.index.clone();
            let written = crate::oci::canonical::to_vec(&union)
                .map_err(|e| reg_err(&self.repo, e))
                .and_then(|c| self.push_index(&union, &c, REGISTRY_TAG));
            if let Err(e) = written {
                self.warnings.push(format!("the combined index was not written to {REGISTRY_TAG} ({e}); nothing is lost (every fetch's own tag has it)"));
            }
        }
        Ok(sum)
    }

    /// Downloads and re-hashes every artifact the mirror lists (nothing is
    /// kept). Returns (artifacts checked, problems).
    pub fn verify(&self, progress: &dyn Fn(&str)) -> Result<(usize, Vec<Problem>), MirrorError> {
        let mut problems: Vec<Problem> =
            self.warnings.iter().map(|w| Problem::Unreadable(format!("{}: {w}", self.describe()))).collect();
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

    fn entry(name: &str, url: &str, size: u64) -> MirrorEntry {
        MirrorEntry { name: name.into(), url: url.into(), size, also: Vec::new() }
    }

    fn index(entries: &[(&str, MirrorEntry)]) -> MirrorIndex {
        MirrorIndex { version: 1, artifacts: entries.iter().map(|(d, e)| (d.to_string(), e.clone())).collect() }
    }

    #[test]
    fn the_union_keeps_every_digest_and_picks_the_same_entry_in_any_order() {
        let a =
            index(&[("sha256:aa", entry("a.deb", "https://x/a.deb", 1)), ("sha256:cc", entry("c", "https://y/c", 3))]);
        let b =
            index(&[("sha256:bb", entry("b.deb", "https://x/b.deb", 2)), ("sha256:cc", entry("c", "https://x/c", 3))]);
        let ab = union_indexes(&[a.clone(), b.clone()], &mut |_| None);
        let ba = union_indexes(&[b, a], &mut |_| None);
        assert_eq!(ab, ba);
        assert_eq!(
            ab.artifacts.keys().map(String::as_str).collect::<Vec<_>>(),
            ["sha256:aa", "sha256:bb", "sha256:cc"]
        );
        assert_eq!(ab.artifacts["sha256:cc"].url, "https://x/c", "the least URL is kept");
        assert_eq!(ab.artifacts["sha256:cc"].also, ["https://y/c"], "the other URL is kept beside it");
        assert!(ab.artifacts["sha256:cc"].has_url("https://y/c") && ab.artifacts["sha256:aa"].also.is_empty());
        // Sizes that disagree: the registry's answer decides.
        let good = index(&[("sha256:dd", entry("z", "https://z/d", 10))]);
        let lie = index(&[("sha256:dd", entry("d", "https://a/d", 7))]);
        let u = union_indexes(&[lie.clone(), good.clone()], &mut |d| (d == "sha256:dd").then_some(10));
        assert_eq!(u.artifacts["sha256:dd"].size, 10);
        let u = union_indexes(&[good, lie], &mut |_| None);
        assert_eq!(u.artifacts["sha256:dd"].url, "https://a/d", "without an answer, the least entry");
    }

    #[test]
    fn a_directory_mirror_finds_an_artifact_by_every_url_it_came_from() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("cache")).unwrap();
        let d = store.put_bytes(b"Origin: test\n").unwrap();
        let dir = tmp.path().join("mirror");
        for url in ["http://a.example/dists/stable/InRelease", "http://b.example/dists/stable/InRelease"] {
            let a = Artifact { name: "InRelease".into(), url: url.into(), sha256: d, size: None };
            export(&store, &[a], &dir).unwrap();
        }
        for url in ["http://a.example/dists/stable/InRelease", "http://b.example/dists/stable/InRelease"] {
            assert_eq!(find_url(std::slice::from_ref(&dir), url).len(), 1, "{url}");
        }
        assert!(find_url(&[dir], "http://c.example/dists/stable/InRelease").is_empty());
    }

    #[test]
    fn mirror_tags_are_the_legacy_tag_and_content_derived_ones() {
        let t = contribution_tag(b"{}");
        assert_eq!(t, format!("strata-mirror-{}", &Digest::of(b"{}").hex()[..32]));
        assert!(is_mirror_tag(&t) && is_mirror_tag("strata-mirror"));
        assert!(!is_mirror_tag("strata-mirror-") && !is_mirror_tag("latest") && !is_mirror_tag("strata-mirrors"));
        // A valid OCI tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
        assert!(t.len() <= 128 && t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
    }
}
