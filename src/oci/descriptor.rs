//! Descriptors: what a manifest or index says about the content it points at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// A reference to content: its media type, digest and size, plus optional
/// annotations, platform (in indexes) and artifact type (OCI 1.1). The
/// digest is a validated sha256, so a descriptor can never name a path
/// such as `sha256:../..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type (some old index entries omit it: empty here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// Digest of the content.
    #[serde(deserialize_with = "oci_digest")]
    pub digest: Digest,
    /// Size of the content in bytes.
    pub size: u64,
    /// Other places the content may be downloaded from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the image it names (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the manifest it names (referrer lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The content itself, base64 (small blobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// A digest as OCI JSON writes it: `sha256:` and 64 lower-case hex digits
/// (a bare hex string, which [`Digest::parse`] also accepts, is refused).
pub(crate) fn oci_digest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
    let s = String::deserialize(d)?;
    match s.strip_prefix("sha256:").and(Digest::parse(&s).ok()) {
        Some(digest) => Ok(digest),
        None => Err(serde::de::Error::custom(format!(
            "the digest `{}` is not `sha256:` and 64 hex digits (only sha256 is supported)",
            crate::report::one_line(&s.chars().take(100).collect::<String>())
        ))),
    }
}

impl Descriptor {
    /// A descriptor with only the required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// The descriptor of `bytes`.
    pub fn of(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The tag an OCI layout index records for this entry.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotation(super::REF_NAME)
    }

    /// True when it names an index.
    pub fn is_index(&self) -> bool {
        super::media::is_index(&self.media_type)
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// Operating system version.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Operating system features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// CPU features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl Platform {
    /// `os`/`architecture`[/`variant`].
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: Vec::new(),
            variant: variant.map(str::to_string),
            features: Vec::new(),
        }
    }

    /// linux/amd64, what Strata builds and picks from indexes by default.
    pub fn linux_amd64() -> Platform {
        Platform::new("linux", "amd64", None)
    }

    /// Parses `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut it = s.split('/');
        let (os, arch, variant) = (it.next()?, it.next()?, it.next());
        if os.is_empty() || arch.is_empty() || it.next().is_some() || variant == Some("") {
            return None;
        }
        Some(Platform::new(os, arch, variant))
    }

    /// True when `self` (what an index entry offers) satisfies `want`: same
    /// os and architecture, and the same variant when `want` names one.
    pub fn satisfies(&self, want: &Platform) -> bool {
        self.os == want.os
            && self.architecture == want.architecture
            && (want.variant.is_none() || self.variant == want.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_refuse_digests_that_are_not_sha256() {
        let ok = r#"{"mediaType":"m","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}"#;
        assert!(serde_json::from_str::<Descriptor>(ok).is_ok());
        for bad in [
            "sha256:../..",
            "sha512:00",
            "../../etc/passwd",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let j = format!(r#"{{"mediaType":"m","digest":"{bad}","size":1}}"#);
            assert!(serde_json::from_str::<Descriptor>(&j).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.satisfies(&Platform::parse("linux/arm64").unwrap()));
        assert!(!Platform::linux_amd64().satisfies(&p));
        assert!(Platform::parse("linux").is_none() && Platform::parse("linux/").is_none());
    }
}
