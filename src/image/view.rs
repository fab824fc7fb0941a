//! One image of a source, typed: its manifest, config, layers and the
//! artifacts attached to it.

use super::{read_blob, BlobReader, ImageError, ImageSource, SBOM_ANNOTATION};
use crate::oci::{media, Descriptor, ImageConfig, Manifest, Node, Platform, RawManifest};

/// Indexes nest at most this deep (real images use one level).
const MAX_DEPTH: usize = 4;

/// An image of an [`ImageSource`], chosen from the source's root (through
/// indexes, by platform).
pub struct Image<'s> {
    source: &'s dyn ImageSource,
    /// The root index it was chosen from, when the root is one.
    pub index: Option<RawManifest>,
    /// Its descriptor (from the index entry that names it, or the root).
    pub descriptor: Descriptor,
    /// The manifest as stored.
    pub raw: RawManifest,
    /// The manifest, parsed.
    pub manifest: Manifest,
}

impl<'s> Image<'s> {
    /// The image the source's root names: the root itself when it is an
    /// image manifest, else the entry for `platform` (or the only entry) of
    /// the index, following nested indexes.
    pub fn open(source: &'s dyn ImageSource, platform: &Platform) -> Result<Image<'s>, ImageError> {
        let mut d = source.root()?;
        let mut index = None;
        for _ in 0..MAX_DEPTH {
            let raw = source.manifest(&d)?;
            let what = format!("{}: manifest {}", source.describe(), raw.digest);
            match raw.parse(&what)? {
                Node::Image(manifest) => return Ok(Image { source, index, descriptor: d, raw, manifest }),
                Node::Index(idx) => {
                    d = select_platform(&idx.manifests, platform, &source.describe())?.clone();
                    index.get_or_insert(raw);
                }
            }
        }
        Err(ImageError::TooDeep { source_name: source.describe() })
    }

    /// The source it was read from.
    pub fn source(&self) -> &'s dyn ImageSource {
        self.source
    }

    /// How the user named the source.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// False when the manifest was made up (docker-archive).
    pub fn native(&self) -> bool {
        self.source.stores_manifests()
    }

    /// The config: its bytes as stored, and parsed.
    pub fn config(&self) -> Result<(Vec<u8>, ImageConfig), ImageError> {
        let bytes = read_blob(self.source, &self.manifest.config)?;
        let what = format!("{}: config {}", self.describe(), self.manifest.config.digest);
        let cfg = ImageConfig::from_slice(&bytes, &what)?;
        Ok((bytes, cfg))
    }

    /// The layer descriptors, bottom first.
    pub fn layers(&self) -> &[Descriptor] {
        &self.manifest.layers
    }

    /// Opens a blob of the image.
    pub fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'s>, ImageError> {
        self.source.open_blob(d)
    }

    /// The artifacts that refer to this image (SBOM, signatures).
    pub fn attachments(&self) -> Result<Vec<Descriptor>, ImageError> {
        self.source.referrers(&self.raw.descriptor())
    }

    /// The SBOM (SPDX or CycloneDX JSON) attached to the image, if any.
    pub fn sbom(&self) -> Result<Option<Vec<u8>>, ImageError> {
        let Some(d) = self.attachments()?.into_iter().find(|d| crate::sbom::is_sbom(d.artifact_type.as_deref())) else {
            return Ok(None);
        };
        let raw = self.source.manifest(&d)?;
        let what = format!("{}: SBOM manifest {}", self.describe(), d.digest);
        let m = raw.manifest(&what)?;
        let Some(doc) = m.layers.first() else {
            return Err(ImageError::BadDockerManifest {
                source_name: self.describe(),
                problem: format!("SBOM manifest {} has no document layer", d.digest),
            });
        };
        read_blob(self.source, doc).map(Some)
    }
}

/// The index entry for `want`, else the only entry.
pub(crate) fn select_platform<'a>(
    entries: &'a [Descriptor],
    want: &Platform,
    source_name: &str,
) -> Result<&'a Descriptor, ImageError> {
    if let Some(d) = entries.iter().find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(want))) {
        return Ok(d);
    }
    match entries {
        [only] => Ok(only),
        [] => Err(ImageError::EmptyIndex { source_name: source_name.to_string() }),
        many => Err(ImageError::NoPlatform {
            source_name: source_name.to_string(),
            want: want.to_string(),
            have: many
                .iter()
                .map(|d| d.platform.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "?/?".into()))
                .collect(),
        }),
    }
}

/// The artifacts a layout index entry names for `subject`: its SBOM
/// annotation and referrer list, kept when their manifest's `subject` is it.
pub(crate) fn annotated_referrers(
    source: &dyn ImageSource,
    entry: &Descriptor,
    subject: &Descriptor,
    size_of: impl Fn(&crate::digest::Digest) -> Option<u64>,
) -> Result<Vec<Descriptor>, ImageError> {
    let mut digests: Vec<&str> = Vec::new();
    if let Some(d) = entry.annotation(SBOM_ANNOTATION) {
        digests.push(d);
    }
    if let Some(list) = entry.annotation(super::REFERRERS_ANNOTATION) {
        digests.extend(list.split_whitespace());
    }
    let mut out = Vec::new();
    for d in digests {
        let Ok(digest) = crate::digest::Digest::parse(d) else { continue };
        let Some(size) = size_of(&digest).filter(|_| d.starts_with("sha256:")) else { continue };
        let raw = source.manifest(&Descriptor::new(media::MANIFEST, digest, size))?;
        let what = format!("{}: artifact manifest {digest}", source.describe());
        let m = raw.manifest(&what)?;
        if m.subject.as_ref().is_some_and(|s| s.digest == subject.digest) {
            let mut desc = raw.descriptor();
            desc.artifact_type = m.artifact_type.clone().or_else(|| Some(m.config.media_type.clone()));
            desc.annotations = m.annotations.clone();
            out.push(desc);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint;

    #[test]
    fn platform_selection() {
        let entry = |hex: char, arch: &str| {
            let mut d =
                Descriptor::new(media::MANIFEST, crate::digest::Digest::parse(&hex.to_string().repeat(64)).unwrap(), 1);
            d.platform = Some(Platform::new("linux", arch, None));
            d
        };
        let idx = vec![entry('1', "arm64"), entry('2', "amd64")];
        let d = select_platform(&idx, &Platform::linux_amd64(), "x").unwrap();
        assert!(d.digest.hex().starts_with("2222"));
        let e = select_platform(&idx, &Platform::new("linux", "s390x", None), "x").unwrap_err();
        let (msg, hint) = (e.to_string(), e.hint().unwrap_or_default());
        assert!(msg.contains("linux/arm64, linux/amd64") && hint.contains("--platform"), "{msg} {hint}");
    }
}
