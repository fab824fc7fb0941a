//! Reading images back: one small [`ImageSource`] trait that OCI layouts,
//! `oci-archive` and `docker-archive` files (and registries) implement, so
//! inspect, diff, push and audit share one code path.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::digest::Digest;
use crate::image::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME};

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// IO on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The content is not what was expected.
    #[error("{0}")]
    Invalid(String),
    /// Bad source syntax.
    #[error(
        "`{0}` is not an image source; use oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or docker://REF"
    )]
    Syntax(String),
}

fn ioe<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ReadError + 'a {
    move |source| ReadError::Io { action, path: path.to_path_buf(), source }
}

/// A manifest as read from a source.
#[derive(Debug, Clone)]
pub struct ManifestRef {
    /// Raw bytes as stored.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// False when the source has no manifest of its own and this one was
    /// synthesised (docker-archive).
    pub native: bool,
}

/// Something images can be read from.
pub trait ImageSource: Send + Sync {
    /// How the user named it.
    fn describe(&self) -> String;
    /// The selected image's manifest.
    fn manifest(&self) -> Result<ManifestRef, ReadError>;
    /// The top-level manifest as stored: an image index when the source
    /// names one, else the image manifest. Push copies it whole.
    fn root(&self) -> Result<ManifestRef, ReadError> {
        self.manifest()
    }
    /// Opens a blob by digest.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ReadError>;
    /// The SBOM (SPDX JSON) attached to the selected image, if any.
    fn sbom(&self) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(None)
    }
    /// Manifests of artifacts stored with the selected image that refer to
    /// it (its SBOM); push sends them as referrers.
    fn attachments(&self) -> Result<Vec<Digest>, ReadError> {
        Ok(Vec::new())
    }
    /// Reads a small blob (configs, manifests) whole, checking its digest.
    fn blob_bytes(&self, digest: &Digest) -> Result<Vec<u8>, ReadError> {
        let mut v = Vec::new();
        self.open_blob(digest)?
            .take(64 << 20)
            .read_to_end(&mut v)
            .map_err(|e| ReadError::Invalid(format!("{}: reading {digest}: {e}", self.describe())))?;
        let found = Digest::of(&v);
        if found != *digest {
            return Err(ReadError::Invalid(format!(
                "{}: blob {digest} is corrupt (its bytes hash to {found})",
                self.describe()
            )));
        }
        Ok(v)
    }
}

/// Opens `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE` or
/// `docker://REF` (credentials from the environment and auth files).
pub fn open(spec: &str) -> Result<Box<dyn ImageSource>, ReadError> {
    if spec.starts_with("docker://") {
        return crate::registry::open_remote(spec).map_err(|e| ReadError::Invalid(e.to_string()));
    }
    if let Some(rest) = spec.strip_prefix("oci:") {
        let (dir, tag) = split_tag(rest);
        return Ok(Box::new(OciDir { dir: dir.into(), tag, shown: spec.to_string() }));
    }
    if let Some(rest) = spec.strip_prefix("oci-archive:") {
        let (file, tag) = split_tag(rest);
        let idx = TarIndex::open(Path::new(&file))?;
        return Ok(Box::new(OciArchive { idx, tag, shown: spec.to_string() }));
    }
    if let Some(rest) = spec.strip_prefix("docker-archive:") {
        let file = rest.split(':').next().unwrap_or(rest);
        let idx = TarIndex::open(Path::new(file))?;
        return Ok(Box::new(DockerArchive { idx, shown: spec.to_string() }));
    }
    Err(ReadError::Syntax(spec.to_string()))
}

fn split_tag(rest: &str) -> (String, Option<String>) {
    if let Some((p, t)) = rest.rsplit_once(':') {
        if !p.is_empty() && !t.contains('/') && crate::spec::valid_tag(t) {
            return (p.to_string(), Some(t.to_string()));
        }
    }
    (rest.to_string(), None)
}

/// Picks a manifest from index bytes: by tag when given, else the only one.
fn select_from_index(index: &[u8], tag: Option<&str>, shown: &str) -> Result<(Digest, String), ReadError> {
    let chosen = select_entry(index, tag, shown)?;
    let digest = chosen
        .get("digest")
        .and_then(Value::as_str)
        .and_then(|d| Digest::parse(d).ok())
        .ok_or_else(|| ReadError::Invalid(format!("{shown}: index entry without a sha256 digest")))?;
    let mt = chosen.get("mediaType").and_then(Value::as_str).unwrap_or(MANIFEST_MEDIA_TYPE).to_string();
    Ok((digest, mt))
}

/// The SBOM named by an index entry's `dev.strata.sbom` annotation.
fn sbom_of_entry(src: &dyn ImageSource, entry: &Value) -> Result<Option<Vec<u8>>, ReadError> {
    let Some(d) =
        entry.pointer("/annotations/dev.strata.sbom").and_then(Value::as_str).and_then(|d| Digest::parse(d).ok())
    else {
        return Ok(None);
    };
    let m: Value = serde_json::from_slice(&src.blob_bytes(&d)?)
        .map_err(|e| ReadError::Invalid(format!("SBOM manifest {d}: {e}")))?;
    let layer = m
        .pointer("/layers/0/digest")
        .and_then(Value::as_str)
        .and_then(|d| Digest::parse(d).ok())
        .ok_or_else(|| ReadError::Invalid(format!("SBOM manifest {d} has no document layer")))?;
    Ok(Some(src.blob_bytes(&layer)?))
}

/// The index entry of the selected image.
fn select_entry(index: &[u8], tag: Option<&str>, shown: &str) -> Result<Value, ReadError> {
    let v: Value = serde_json::from_slice(index)
        .map_err(|e| ReadError::Invalid(format!("{shown}: index.json is not valid JSON: {e}")))?;
    let list = v.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
    let tag_of =
        |m: &Value| m.get("annotations").and_then(|a| a.get(REF_NAME)).and_then(Value::as_str).map(str::to_string);
    let chosen = match tag {
        Some(t) => list.iter().find(|m| tag_of(m).as_deref() == Some(t)).ok_or_else(|| {
            let tags: Vec<String> = list.iter().filter_map(tag_of).collect();
            ReadError::Invalid(format!(
                "{shown}: no image tagged `{t}` (tags here: {})",
                if tags.is_empty() { "none".into() } else { tags.join(", ") }
            ))
        })?,
        None => match list.as_slice() {
            [one] => one,
            [] => return Err(ReadError::Invalid(format!("{shown}: the index lists no images"))),
            many => {
                let tags: Vec<String> = many.iter().filter_map(tag_of).collect();
                return Err(ReadError::Invalid(format!(
                    "{shown}: holds {} images; name one with :TAG ({})",
                    many.len(),
                    tags.join(", ")
                )));
            }
        },
    };
    Ok(chosen.clone())
}

/// The artifact manifests an index entry's annotations name (its SBOM).
fn attachments_of_entry(entry: &Value) -> Vec<Digest> {
    entry
        .pointer("/annotations/dev.strata.sbom")
        .and_then(Value::as_str)
        .and_then(|d| Digest::parse(d).ok())
        .into_iter()
        .collect()
}

/// The manifest or index an index entry names, unresolved.
fn root_manifest(src: &dyn ImageSource, digest: Digest, mt: String) -> Result<ManifestRef, ReadError> {
    let bytes = src.blob_bytes(&digest)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ReadError::Invalid(format!("{}: manifest {digest} is not JSON: {e}", src.describe())))?;
    let media_type = v.get("mediaType").and_then(Value::as_str).map(str::to_string).unwrap_or(mt);
    if v.get("layers").is_some() {
        check_descriptors(&v, &format!("{}: manifest {digest}", src.describe()))?;
    }
    Ok(ManifestRef { bytes, digest, media_type, native: true })
}

/// Follows a nested index to the linux/amd64 (or only) manifest.
fn resolve_manifest(src: &dyn ImageSource, mut digest: Digest, mut mt: String) -> Result<ManifestRef, ReadError> {
    for _ in 0..4 {
        let bytes = src.blob_bytes(&digest)?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ReadError::Invalid(format!("{}: manifest {digest} is not JSON: {e}", src.describe())))?;
        let declared = v.get("mediaType").and_then(Value::as_str).map(str::to_string).unwrap_or(mt.clone());
        if declared == INDEX_MEDIA_TYPE || declared == "application/vnd.docker.distribution.manifest.list.v2+json" {
            let list = v.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
            let pick = list
                .iter()
                .find(|m| {
                    m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                        && m.pointer("/platform/architecture").and_then(Value::as_str) == Some("amd64")
                })
                .or_else(|| list.first())
                .ok_or_else(|| ReadError::Invalid(format!("{}: image index {digest} is empty", src.describe())))?;
            digest = pick
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| ReadError::Invalid("index entry without digest".into()))?;
            mt = pick.get("mediaType").and_then(Value::as_str).unwrap_or(MANIFEST_MEDIA_TYPE).to_string();
            continue;
        }
        check_descriptors(&v, &format!("{}: manifest {digest}", src.describe()))?;
        return Ok(ManifestRef { bytes, digest, media_type: declared, native: true });
    }
    Err(ReadError::Invalid(format!("{}: indexes nest too deeply", src.describe())))
}

/// Every descriptor of an image manifest (config, layers, subject) must name
/// a sha256 digest and a size: a local layout or archive is held to what a
/// registry would accept, so no path can be smuggled in as a digest.
pub fn check_descriptors(manifest: &Value, what: &str) -> Result<(), ReadError> {
    let mut descs: Vec<(String, &Value)> = Vec::new();
    if let Some(c) = manifest.get("config") {
        descs.push(("config".into(), c));
    }
    if let Some(s) = manifest.get("subject") {
        descs.push(("subject".into(), s));
    }
    if let Some(layers) = manifest.get("layers") {
        let list = layers.as_array().ok_or_else(|| ReadError::Invalid(format!("{what}: `layers` is not a list")))?;
        for (i, l) in list.iter().enumerate() {
            descs.push((format!("layers[{i}]"), l));
        }
    }
    for (name, d) in descs {
        let digest = d.get("digest").and_then(Value::as_str).unwrap_or_default();
        if Digest::parse(digest).is_err() || !digest.starts_with("sha256:") {
            return Err(ReadError::Invalid(format!(
                "{what}: {name} has the digest `{}`, which is not `sha256:` and 64 hex digits",
                crate::report::one_line(&digest.chars().take(100).collect::<String>())
            )));
        }
        if d.get("size").and_then(Value::as_u64).is_none() {
            return Err(ReadError::Invalid(format!("{what}: {name} has no valid size")));
        }
    }
    Ok(())
}

struct OciDir {
    dir: PathBuf,
    tag: Option<String>,
    shown: String,
}

impl ImageSource for OciDir {
    fn describe(&self) -> String {
        self.shown.clone()
    }
    fn manifest(&self) -> Result<ManifestRef, ReadError> {
        if !self.dir.join("oci-layout").is_file() {
            return Err(ReadError::Invalid(format!(
                "{}: {} is not an OCI image layout (no oci-layout file)",
                self.shown,
                self.dir.display()
            )));
        }
        let p = self.dir.join("index.json");
        let index = std::fs::read(&p).map_err(ioe("reading", &p))?;
        let (d, mt) = select_from_index(&index, self.tag.as_deref(), &self.shown)?;
        resolve_manifest(self, d, mt)
    }
    fn sbom(&self) -> Result<Option<Vec<u8>>, ReadError> {
        let p = self.dir.join("index.json");
        let index = std::fs::read(&p).map_err(ioe("reading", &p))?;
        let entry = select_entry(&index, self.tag.as_deref(), &self.shown)?;
        sbom_of_entry(self, &entry)
    }
    fn attachments(&self) -> Result<Vec<Digest>, ReadError> {
        let p = self.dir.join("index.json");
        let index = std::fs::read(&p).map_err(ioe("reading", &p))?;
        Ok(attachments_of_entry(&select_entry(&index, self.tag.as_deref(), &self.shown)?))
    }
    fn root(&self) -> Result<ManifestRef, ReadError> {
        let p = self.dir.join("index.json");
        let index = std::fs::read(&p).map_err(ioe("reading", &p))?;
        let (d, mt) = select_from_index(&index, self.tag.as_deref(), &self.shown)?;
        root_manifest(self, d, mt)
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ReadError> {
        let p = self.dir.join("blobs/sha256").join(digest.hex());
        let f = File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ReadError::Invalid(format!("{}: blob {digest} is missing from the layout", self.shown))
            } else {
                ReadError::Io { action: "opening", path: p.clone(), source: e }
            }
        })?;
        Ok(Box::new(io::BufReader::new(f)))
    }
}

/// Member name → (data offset, size) of an uncompressed tar file.
struct TarIndex {
    path: PathBuf,
    members: BTreeMap<String, (u64, u64)>,
}

impl TarIndex {
    fn open(path: &Path) -> Result<TarIndex, ReadError> {
        let f = File::open(path).map_err(ioe("opening", path))?;
        let mut ar = tar::Archive::new(io::BufReader::new(f));
        let mut members = BTreeMap::new();
        for e in ar.entries().map_err(ioe("reading", path))? {
            let e =
                e.map_err(|err| ReadError::Invalid(format!("{}: not a valid tar archive: {err}", path.display())))?;
            if e.header().entry_type().is_file() {
                let name =
                    e.path().map_err(ioe("reading", path))?.to_string_lossy().trim_start_matches("./").to_string();
                members.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        Ok(TarIndex { path: path.to_path_buf(), members })
    }

    fn open_member(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>, ReadError> {
        let Some(&(off, size)) = self.members.get(name) else { return Ok(None) };
        let mut f = File::open(&self.path).map_err(ioe("opening", &self.path))?;
        f.seek(SeekFrom::Start(off)).map_err(ioe("seeking in", &self.path))?;
        Ok(Some(Box::new(io::BufReader::new(f).take(size))))
    }

    fn read_member(&self, name: &str) -> Result<Option<Vec<u8>>, ReadError> {
        match self.open_member(name)? {
            None => Ok(None),
            Some(mut r) => {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map_err(ioe("reading", &self.path))?;
                Ok(Some(v))
            }
        }
    }
}

struct OciArchive {
    idx: TarIndex,
    tag: Option<String>,
    shown: String,
}

impl ImageSource for OciArchive {
    fn describe(&self) -> String {
        self.shown.clone()
    }
    fn manifest(&self) -> Result<ManifestRef, ReadError> {
        let index = self
            .idx
            .read_member("index.json")?
            .ok_or_else(|| ReadError::Invalid(format!("{}: no index.json (not an oci-archive?)", self.shown)))?;
        let (d, mt) = select_from_index(&index, self.tag.as_deref(), &self.shown)?;
        resolve_manifest(self, d, mt)
    }
    fn sbom(&self) -> Result<Option<Vec<u8>>, ReadError> {
        let index = self
            .idx
            .read_member("index.json")?
            .ok_or_else(|| ReadError::Invalid(format!("{}: no index.json", self.shown)))?;
        let entry = select_entry(&index, self.tag.as_deref(), &self.shown)?;
        sbom_of_entry(self, &entry)
    }
    fn attachments(&self) -> Result<Vec<Digest>, ReadError> {
        let index = self
            .idx
            .read_member("index.json")?
            .ok_or_else(|| ReadError::Invalid(format!("{}: no index.json", self.shown)))?;
        Ok(attachments_of_entry(&select_entry(&index, self.tag.as_deref(), &self.shown)?))
    }
    fn root(&self) -> Result<ManifestRef, ReadError> {
        let index = self
            .idx
            .read_member("index.json")?
            .ok_or_else(|| ReadError::Invalid(format!("{}: no index.json (not an oci-archive?)", self.shown)))?;
        let (d, mt) = select_from_index(&index, self.tag.as_deref(), &self.shown)?;
        root_manifest(self, d, mt)
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ReadError> {
        self.idx
            .open_member(&format!("blobs/sha256/{}", digest.hex()))?
            .ok_or_else(|| ReadError::Invalid(format!("{}: blob {digest} is missing from the archive", self.shown)))
    }
}

struct DockerArchive {
    idx: TarIndex,
    shown: String,
}

impl DockerArchive {
    fn member_digest(&self, name: &str) -> Result<Digest, ReadError> {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            return Digest::parse(hex).map_err(|e| ReadError::Invalid(e.to_string()));
        }
        // Older `docker save` layouts name members by path; hash them.
        let mut r =
            self.idx.open_member(name)?.ok_or_else(|| ReadError::Invalid(format!("{}: missing {name}", self.shown)))?;
        crate::digest::hash_reader(&mut r).map(|(d, _)| d).map_err(ioe("reading", &self.idx.path))
    }
}

impl ImageSource for DockerArchive {
    fn describe(&self) -> String {
        self.shown.clone()
    }
    fn manifest(&self) -> Result<ManifestRef, ReadError> {
        let m = self
            .idx
            .read_member("manifest.json")?
            .ok_or_else(|| ReadError::Invalid(format!("{}: no manifest.json (not a docker-archive?)", self.shown)))?;
        let v: Value = serde_json::from_slice(&m)
            .map_err(|e| ReadError::Invalid(format!("{}: manifest.json: {e}", self.shown)))?;
        let first = v
            .as_array()
            .and_then(|a| a.first())
            .ok_or_else(|| ReadError::Invalid(format!("{}: manifest.json lists no image", self.shown)))?;
        let cfg_name = first
            .get("Config")
            .and_then(Value::as_str)
            .ok_or_else(|| ReadError::Invalid("manifest.json without Config".into()))?;
        let cfg_digest = self.member_digest(cfg_name)?;
        let cfg_size = self.idx.members.get(cfg_name).map(|m| m.1).unwrap_or(0);
        let mut layers = Vec::new();
        for l in first.get("Layers").and_then(Value::as_array).cloned().unwrap_or_default() {
            let name = l.as_str().unwrap_or_default().to_string();
            let d = self.member_digest(&name)?;
            let size = self.idx.members.get(&name).map(|m| m.1).unwrap_or(0);
            let mut head = [0u8; 8];
            let n = self.idx.open_member(&name)?.map(|mut r| r.read(&mut head).unwrap_or(0)).unwrap_or(0);
            let mt = match crate::archive::sniff(&head[..n]) {
                crate::archive::Codec::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                crate::archive::Codec::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                _ => "application/vnd.oci.image.layer.v1.tar",
            };
            layers.push(serde_json::json!({"mediaType": mt, "size": size, "digest": d.to_string()}));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": crate::image::CONFIG_MEDIA_TYPE, "size": cfg_size, "digest": cfg_digest.to_string()},
            "layers": layers,
        });
        let bytes = crate::image::canonical::to_vec(&manifest).map_err(|e| ReadError::Invalid(e.to_string()))?;
        let digest = Digest::of(&bytes);
        Ok(ManifestRef { bytes, digest, media_type: MANIFEST_MEDIA_TYPE.into(), native: false })
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ReadError> {
        let name = format!("blobs/sha256/{}", digest.hex());
        if let Some(r) = self.idx.open_member(&name)? {
            return Ok(r);
        }
        for n in self.idx.members.keys() {
            if self.member_digest(n)? == *digest {
                if let Some(r) = self.idx.open_member(n)? {
                    return Ok(r);
                }
            }
        }
        Err(ReadError::Invalid(format!("{}: blob {digest} is missing from the archive", self.shown)))
    }
}

/// An image just built: manifest and config in memory, layers in the store.
pub struct BuiltSource {
    /// The image.
    pub image: crate::image::BuiltImage,
    /// The store holding its layers.
    pub store: crate::store::Store,
    /// How to name it.
    pub name: String,
}

impl ImageSource for BuiltSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn manifest(&self) -> Result<ManifestRef, ReadError> {
        Ok(ManifestRef {
            bytes: self.image.manifest.bytes.clone(),
            digest: self.image.manifest.digest,
            media_type: MANIFEST_MEDIA_TYPE.into(),
            native: true,
        })
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ReadError> {
        if *digest == self.image.config.digest {
            return Ok(Box::new(io::Cursor::new(self.image.config.bytes.clone())));
        }
        let p = self.store.path(digest);
        let f = File::open(&p).map_err(ioe("opening", &p))?;
        Ok(Box::new(io::BufReader::new(f)))
    }
}
