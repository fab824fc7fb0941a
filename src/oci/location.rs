//! Where an image is, as users write it: `oci:DIR[:TAG]`,
//! `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]` or
//! `docker://HOST/NAME[:TAG][@DIGEST]`. One parser for every command that
//! reads or writes images.

use std::fmt;
use std::path::PathBuf;

use super::reference::{valid_tag, Reference, ReferenceError};

/// An image location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory, `oci:DIR[:TAG]`.
    Layout {
        /// The directory.
        dir: PathBuf,
        /// The tag (`None`: the only image, or the writer's default).
        tag: Option<String>,
    },
    /// A tar of an OCI image layout, `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// The file.
        file: PathBuf,
        /// The tag.
        tag: Option<String>,
    },
    /// A `docker save` tarball, `docker-archive:FILE[:NAME:TAG]`.
    DockerArchive {
        /// The file.
        file: PathBuf,
        /// The `name:tag` it records.
        reference: Option<String>,
    },
    /// A registry, `docker://REF`.
    Registry(Reference),
}

/// A location that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ImageRefError {
    /// No known transport prefix.
    #[error("`{0}` is not an image location; use oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or docker://HOST/NAME[:TAG]")]
    Syntax(String),
    /// A bad registry reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// Splits `PATH:TAG` at the last colon when the part after it looks like a tag.
fn split_tag(rest: &str) -> (&str, Option<String>) {
    if let Some((p, t)) = rest.rsplit_once(':') {
        if !p.is_empty() && !t.contains('/') && valid_tag(t) {
            return (p, Some(t.to_string()));
        }
    }
    (rest, None)
}

impl ImageRef {
    /// Parses a location with its transport prefix.
    pub fn parse(s: &str) -> Result<ImageRef, ImageRefError> {
        let syntax = || ImageRefError::Syntax(s.to_string());
        if s.starts_with("docker://") {
            return Ok(ImageRef::Registry(Reference::parse(s)?));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_tag(rest);
            if dir.is_empty() {
                return Err(syntax());
            }
            return Ok(ImageRef::Layout { dir: dir.into(), tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split_tag(rest);
            if file.is_empty() {
                return Err(syntax());
            }
            return Ok(ImageRef::OciArchive { file: file.into(), tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, reference) = match rest.split_once(':') {
                Some((f, r)) => (f, Some(r.to_string())),
                None => (rest, None),
            };
            if file.is_empty() {
                return Err(syntax());
            }
            return Ok(ImageRef::DockerArchive { file: file.into(), reference });
        }
        Err(syntax())
    }

    /// Parses a location where a bare reference means a registry
    /// (`strata push SRC HOST/NAME:TAG`).
    pub fn parse_or_registry(s: &str) -> Result<ImageRef, ImageRefError> {
        match ImageRef::parse(s) {
            Err(ImageRefError::Syntax(_)) => Ok(ImageRef::Registry(Reference::parse(s)?)),
            other => other,
        }
    }

    /// The tag a layout or oci-archive location names.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Layout { tag, .. } | ImageRef::OciArchive { tag, .. } => tag.as_deref(),
            ImageRef::Registry(r) => r.tag.as_deref(),
            ImageRef::DockerArchive { .. } => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suffix = |t: &Option<String>| t.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
        match self {
            ImageRef::Layout { dir, tag } => write!(f, "oci:{}{}", dir.display(), suffix(tag)),
            ImageRef::OciArchive { file, tag } => write!(f, "oci-archive:{}{}", file.display(), suffix(tag)),
            ImageRef::DockerArchive { file, reference } => {
                write!(f, "docker-archive:{}{}", file.display(), suffix(reference))
            }
            ImageRef::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transport() {
        assert_eq!(
            ImageRef::parse("oci:build/x:1.0").unwrap(),
            ImageRef::Layout { dir: "build/x".into(), tag: Some("1.0".into()) }
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/a:b/c").unwrap(),
            ImageRef::Layout { dir: "/tmp/a:b/c".into(), tag: None }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:x.tar:app:1").unwrap(),
            ImageRef::DockerArchive { file: "x.tar".into(), reference: Some("app:1".into()) }
        );
        assert!(
            matches!(ImageRef::parse("docker://127.0.0.1:5000/a:1").unwrap(), ImageRef::Registry(r) if r.tag.as_deref() == Some("1"))
        );
        assert!(matches!(ImageRef::parse("build/x"), Err(ImageRefError::Syntax(_))));
        assert!(matches!(ImageRef::parse("oci:"), Err(ImageRefError::Syntax(_))));
        assert!(matches!(ImageRef::parse_or_registry("127.0.0.1:5000/a").unwrap(), ImageRef::Registry(_)));
        for s in ["oci:build/x:1.0", "oci-archive:a.tar", "docker-archive:x.tar:app:1", "docker://127.0.0.1:5000/a:1"] {
            assert_eq!(ImageRef::parse(s).unwrap().to_string(), s);
        }
    }
}
