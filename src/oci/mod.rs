//! The OCI data model as plain values: digests, media types, descriptors,
//! image manifests, indexes, image configs, the one canonical JSON
//! serialisation, and the two ways images are named (registry references
//! and `oci:`/`oci-archive:`/`docker-archive:`/`docker://` locations).
//! No IO happens here; readers and writers are in [`crate::image`] and
//! [`crate::registry`].

pub mod canonical;
mod config;
mod descriptor;
mod location;
mod manifest;
pub mod media;
pub mod reference;

pub use crate::digest::Digest;
pub use config::{Empty, Healthcheck, History, ImageConfig, RootFs, RuntimeSettings};
pub use descriptor::{Descriptor, Platform};
pub use location::{ImageRef, ImageRefError};
pub use manifest::{Index, Manifest, Node, RawManifest};
pub use reference::{valid_tag, Reference, ReferenceError};

/// Annotation holding a tag in an OCI layout index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation holding an image's creation time.
pub const CREATED: &str = "org.opencontainers.image.created";

/// A manifest, index or config that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not a valid {kind}: {source}")]
pub struct OciError {
    /// What was read (source and digest).
    pub what: String,
    /// What it should have been (`image manifest`, `image index`, `image config`).
    pub kind: &'static str,
    /// The parser's complaint.
    #[source]
    pub source: serde_json::Error,
}

/// RFC 3339 UTC time for seconds since 1970 (no leap seconds).
pub fn rfc3339(epoch: u64) -> String {
    let (y, m, d) = crate::time::civil_from_days((epoch / 86_400) as i64);
    let secs = epoch % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_201_599), "2025-11-26T23:59:59Z");
    }
}
