//! An image just built: config, manifest and attached artifacts in memory,
//! layers in the store. It is an [`ImageSource`] like any other, so writing
//! it to a layout, an archive or a registry is the same code as copying.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;

use super::{BlobReader, ImageError, ImageSource};
use crate::digest::Digest;
use crate::layer::LayerBlob;
use crate::oci::{
    media, Descriptor, Empty, History, ImageConfig, Manifest, Platform, RawManifest, RootFs, RuntimeSettings,
};
use crate::store::Store;

/// One layer as it goes into the image.
#[derive(Debug, Clone)]
pub struct ImageLayer {
    /// The blob.
    pub blob: LayerBlob,
    /// History line (`created_by`).
    pub created_by: String,
    /// Annotations on the layer descriptor.
    pub annotations: BTreeMap<String, String>,
}

/// Runtime settings for the config.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// User.
    pub user: Option<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Environment, sorted by name.
    pub env: BTreeMap<String, String>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Exposed ports (`8888/tcp`), sorted.
    pub ports: Vec<String>,
    /// Volumes, sorted.
    pub volumes: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Health check.
    pub healthcheck: Option<crate::oci::Healthcheck>,
}

/// An OCI artifact that refers to an image (`subject`), e.g. its SBOM.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The artifact manifest.
    pub manifest: RawManifest,
    /// Its artifact type.
    pub artifact_type: String,
    /// Its blobs (the empty config, the payload).
    pub blobs: Vec<(Descriptor, Bytes)>,
}

impl Attachment {
    /// The descriptor a referrers list gives it.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = self.manifest.descriptor();
        d.artifact_type = Some(self.artifact_type.clone());
        d
    }

    /// `document` (of `media_type`) as an artifact whose subject is `subject`.
    pub fn new(subject: &Descriptor, media_type: &str, document: &[u8], epoch: u64) -> Result<Attachment, ImageError> {
        let empty = Bytes::from_static(b"{}");
        let config = Descriptor::of(media::EMPTY, &empty);
        let doc = Bytes::copy_from_slice(document);
        let layer = Descriptor::of(media_type, &doc);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::MANIFEST.into()),
            artifact_type: Some(media_type.into()),
            config: config.clone(),
            layers: vec![layer.clone()],
            subject: Some(Descriptor::new(subject.media_type.clone(), subject.digest, subject.size)),
            annotations: BTreeMap::from([(crate::oci::CREATED.to_string(), crate::oci::rfc3339(epoch))]),
        };
        let manifest = RawManifest::encode(&manifest, media::MANIFEST)
            .map_err(|source| ImageError::Json { what: "an artifact manifest", source })?;
        Ok(Attachment { manifest, artifact_type: media_type.into(), blobs: vec![(config, empty), (layer, doc)] })
    }
}

/// Everything a finished image consists of.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// How it is named in messages (`build of specs/app.yaml`).
    pub name: String,
    /// The config as stored.
    pub config: RawManifest,
    /// The manifest as stored.
    pub manifest: RawManifest,
    /// The layers, bottom first.
    pub layers: Vec<ImageLayer>,
    /// Its platform.
    pub platform: Platform,
    /// Artifacts that refer to it (its SBOM).
    pub attachments: Vec<Attachment>,
    /// The store holding its layers.
    pub store: Store,
}

impl BuiltImage {
    /// The manifest descriptor with the image's platform (what an index lists).
    pub fn manifest_descriptor(&self) -> Descriptor {
        let mut d = self.manifest.descriptor();
        d.platform = Some(self.platform.clone());
        d
    }

    /// Attaches an artifact (its subject must be this image).
    pub fn attach(&mut self, a: Attachment) {
        self.attachments.push(a);
    }

    fn attached_blob(&self, d: &Digest) -> Option<&Bytes> {
        self.attachments.iter().flat_map(|a| &a.blobs).find(|(bd, _)| bd.digest == *d).map(|(_, b)| b)
    }
}

impl ImageSource for BuiltImage {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn root(&self) -> Result<Descriptor, ImageError> {
        Ok(self.manifest_descriptor())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, ImageError> {
        if d.digest == self.manifest.digest {
            return Ok(self.manifest.clone());
        }
        self.attachments.iter().map(|a| &a.manifest).find(|m| m.digest == d.digest).cloned().ok_or_else(|| {
            ImageError::MissingBlob { source_name: self.describe(), digest: d.digest, container: "image" }
        })
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, ImageError> {
        if d.digest == self.config.digest {
            return Ok(Box::new(io::Cursor::new(self.config.bytes.clone())));
        }
        if let Some(b) = self.attached_blob(&d.digest) {
            return Ok(Box::new(io::Cursor::new(b.clone())));
        }
        let p = self.store.path(&d.digest);
        let f = fs_err::File::open(&p).map_err(crate::error::io_err::<ImageError>("opening", &p))?;
        Ok(Box::new(io::BufReader::new(f)))
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>, ImageError> {
        if subject.digest != self.manifest.digest {
            return Ok(Vec::new());
        }
        Ok(self.attachments.iter().map(Attachment::descriptor).collect())
    }

    fn discard(&self, d: &Descriptor) {
        if self.layers.iter().any(|l| l.blob.digest == d.digest) {
            let _ = fs_err::remove_file(self.store.path(&d.digest));
        }
    }

    fn blob_path(&self, d: &Descriptor) -> Option<PathBuf> {
        self.layers.iter().any(|l| l.blob.digest == d.digest).then(|| self.store.path(&d.digest))
    }
}

/// Assembles config and manifest.
pub fn assemble(
    name: &str,
    layers: Vec<ImageLayer>,
    runtime: &RuntimeConfig,
    platform: Platform,
    epoch: u64,
    manifest_annotations: &BTreeMap<String, String>,
    store: &Store,
) -> Result<BuiltImage, ImageError> {
    let created = crate::oci::rfc3339(epoch);
    let set = |v: &[String]| -> Option<BTreeMap<String, Empty>> {
        (!v.is_empty()).then(|| v.iter().map(|p| (p.clone(), Empty {})).collect())
    };
    let settings = RuntimeSettings {
        user: runtime.user.clone(),
        exposed_ports: set(&runtime.ports),
        env: (!runtime.env.is_empty()).then(|| runtime.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        entrypoint: runtime.entrypoint.clone(),
        cmd: runtime.cmd.clone(),
        volumes: set(&runtime.volumes),
        working_dir: runtime.workdir.clone(),
        labels: (!runtime.labels.is_empty()).then(|| runtime.labels.clone()),
        stop_signal: runtime.stop_signal.clone(),
        healthcheck: runtime.healthcheck.clone(),
    };
    let config = ImageConfig {
        created: Some(created.clone()),
        author: None,
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        os_version: None,
        os_features: None,
        variant: platform.variant.clone(),
        config: Some(settings),
        rootfs: RootFs { kind: "layers".into(), diff_ids: layers.iter().map(|l| l.blob.diff_id).collect() },
        history: Some(
            layers
                .iter()
                .map(|l| History {
                    created: Some(created.clone()),
                    author: None,
                    created_by: Some(l.created_by.clone()),
                    comment: None,
                    empty_layer: None,
                })
                .collect(),
        ),
    };
    let config = RawManifest::encode(&config, media::CONFIG)
        .map_err(|source| ImageError::Json { what: "the image config", source })?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::MANIFEST.into()),
        artifact_type: None,
        config: config.descriptor(),
        layers: layers
            .iter()
            .map(|l| {
                let mut d = Descriptor::new(l.blob.media_type.clone(), l.blob.digest, l.blob.size);
                d.annotations = l.annotations.clone();
                d
            })
            .collect(),
        subject: None,
        annotations: manifest_annotations.clone(),
    };
    let manifest = RawManifest::encode(&manifest, media::MANIFEST)
        .map_err(|source| ImageError::Json { what: "the image manifest", source })?;
    Ok(BuiltImage {
        name: name.to_string(),
        config,
        manifest,
        layers,
        platform,
        attachments: Vec::new(),
        store: store.clone(),
    })
}

/// Several images just built, one per platform, under an OCI image index:
/// an [`ImageSource`] whose root is the index, so every sink writes it
/// (children first, then the index).
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// How it is named in messages.
    pub name: String,
    /// The index as stored.
    pub index: RawManifest,
    /// The images, in the spec's platform order.
    pub images: Vec<BuiltImage>,
}

impl BuiltIndex {
    /// The index over `images` (each listed with its platform).
    pub fn new(name: &str, images: Vec<BuiltImage>) -> Result<BuiltIndex, ImageError> {
        let index = crate::oci::Index::new(images.iter().map(BuiltImage::manifest_descriptor).collect());
        let index = RawManifest::encode(&index, media::INDEX)
            .map_err(|source| ImageError::Json { what: "an image index", source })?;
        Ok(BuiltIndex { name: name.to_string(), index, images })
    }

    fn holder(&self, d: &Digest) -> Option<&BuiltImage> {
        self.images.iter().find(|i| {
            i.manifest.digest == *d
                || i.config.digest == *d
                || i.layers.iter().any(|l| l.blob.digest == *d)
                || i.attachments.iter().any(|a| a.manifest.digest == *d || a.blobs.iter().any(|(b, _)| b.digest == *d))
        })
    }
}

impl ImageSource for BuiltIndex {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn root(&self) -> Result<Descriptor, ImageError> {
        Ok(self.index.descriptor())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, ImageError> {
        if d.digest == self.index.digest {
            return Ok(self.index.clone());
        }
        match self.holder(&d.digest) {
            Some(i) => i.manifest(d),
            None => Err(ImageError::MissingBlob { source_name: self.describe(), digest: d.digest, container: "index" }),
        }
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, ImageError> {
        match self.holder(&d.digest) {
            Some(i) => i.open_blob(d),
            None => Err(ImageError::MissingBlob { source_name: self.describe(), digest: d.digest, container: "index" }),
        }
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>, ImageError> {
        match self.images.iter().find(|i| i.manifest.digest == subject.digest) {
            Some(i) => i.referrers(subject),
            None => Ok(Vec::new()),
        }
    }

    fn discard(&self, d: &Descriptor) {
        if let Some(i) = self.holder(&d.digest) {
            i.discard(d);
        }
    }

    fn blob_path(&self, d: &Descriptor) -> Option<PathBuf> {
        self.holder(&d.digest).and_then(|i| i.blob_path(d))
    }
}
