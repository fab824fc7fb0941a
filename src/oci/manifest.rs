//! Image manifests and indexes, and manifests as stored (exact bytes).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{canonical, media, Descriptor, OciError};
use crate::digest::Digest;

/// An image manifest (OCI or docker schema 2): a config and layers; or an
/// artifact (`artifactType`, and a `subject` it refers to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// What kind of artifact this is (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers (or an artifact's blobs), bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs, attestations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (OCI, or a docker manifest list): several manifests, each
/// usually for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// What kind of artifact this is (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests (or nested indexes).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An OCI index over `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media::INDEX.to_string()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// A parsed manifest or index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived, matched at once
pub enum Node {
    /// An image manifest (or artifact manifest).
    Image(Manifest),
    /// An index.
    Index(Index),
}

/// A manifest or index as stored: the exact bytes its digest covers, and
/// its media type. Copies move these bytes unchanged; only what Strata
/// writes itself is serialised, through [`canonical`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// The bytes.
    pub bytes: Bytes,
    /// Their sha256.
    pub digest: Digest,
    /// The media type: the document's `mediaType`, else the one it was
    /// served or listed with, else guessed from its shape.
    pub media_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
}

impl RawManifest {
    /// Wraps stored bytes; `declared` is the media type they were served
    /// or listed with (used when the document does not say).
    pub fn new(bytes: impl Into<Bytes>, declared: Option<&str>) -> RawManifest {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        let shape = serde_json::from_slice::<Shape>(&bytes).ok();
        let declared = declared.map(|h| h.split(';').next().unwrap_or(h).trim()).filter(|h| !h.is_empty());
        let media_type = match shape {
            Some(Shape { media_type: Some(m), .. }) => m,
            _ if declared.is_some() => declared.unwrap_or_default().to_string(),
            Some(Shape { manifests: Some(_), .. }) => media::INDEX.to_string(),
            _ => media::MANIFEST.to_string(),
        };
        RawManifest { bytes, digest, media_type }
    }

    /// Serialises `value` canonically (what Strata writes).
    pub fn encode<T: Serialize>(value: &T, media_type: &str) -> Result<RawManifest, serde_json::Error> {
        let bytes = Bytes::from(canonical::to_vec(value)?);
        Ok(RawManifest { digest: Digest::of(&bytes), bytes, media_type: media_type.to_string() })
    }

    /// A descriptor of these bytes.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest, self.bytes.len() as u64)
    }

    /// True when it is an index.
    pub fn is_index(&self) -> bool {
        media::is_index(&self.media_type)
    }

    /// Parses it; `what` names it in errors.
    pub fn parse(&self, what: &str) -> Result<Node, OciError> {
        if self.is_index() {
            return serde_json::from_slice(&self.bytes).map(Node::Index).map_err(|source| OciError {
                what: what.to_string(),
                kind: "image index",
                source,
            });
        }
        serde_json::from_slice(&self.bytes).map(Node::Image).map_err(|source| OciError {
            what: what.to_string(),
            kind: "image manifest",
            source,
        })
    }

    /// Parses it as an image manifest.
    pub fn manifest(&self, what: &str) -> Result<Manifest, OciError> {
        serde_json::from_slice(&self.bytes).map_err(|source| OciError {
            what: what.to_string(),
            kind: "image manifest",
            source,
        })
    }

    /// Parses it as an index.
    pub fn index(&self, what: &str) -> Result<Index, OciError> {
        serde_json::from_slice(&self.bytes).map_err(|source| OciError {
            what: what.to_string(),
            kind: "image index",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_document_then_header_then_shape() {
        let m =
            RawManifest::new(&br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#[..], None);
        assert!(m.is_index());
        let m = RawManifest::new(
            &br#"{"schemaVersion":2,"config":{}}"#[..],
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
        );
        assert_eq!(m.media_type, media::DOCKER_MANIFEST);
        let m = RawManifest::new(&br#"{"schemaVersion":2,"manifests":[]}"#[..], None);
        assert!(m.is_index());
        let m = RawManifest::new(&br#"{"schemaVersion":2,"config":{}}"#[..], None);
        assert_eq!(m.media_type, media::MANIFEST);
    }

    #[test]
    fn parse_errors_name_what_and_kind() {
        let m = RawManifest::new(&br#"{"schemaVersion":2,"config":{"digest":"sha256:../..","size":1}}"#[..], None);
        let e = m.parse("oci:x manifest sha256:00").unwrap_err().to_string();
        assert!(e.starts_with("oci:x manifest sha256:00 is not a valid image manifest: "), "{e}");
    }
}
