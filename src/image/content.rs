//! Everything under a root, walked once: what a sink has to write, in the
//! order it has to write it.

use std::collections::BTreeSet;

use super::{ImageError, ImageSource};
use crate::digest::Digest;
use crate::oci::{Descriptor, Node, RawManifest};

/// Indexes (and referrers of referrers) nest at most this deep.
const MAX_DEPTH: usize = 4;

/// One blob to write.
#[derive(Debug, Clone)]
pub struct BlobItem {
    /// Its descriptor (from the manifest that names it).
    pub descriptor: Descriptor,
    /// For progress lines: `config sha256:…`, `layer 2/5 sha256:…`.
    pub label: String,
}

/// A root (image manifest or index) and everything under it: each blob
/// once, manifests children first, and the artifacts that refer to any of
/// those manifests.
pub struct Content<'s> {
    /// Where the bytes come from.
    pub source: &'s dyn ImageSource,
    /// The root's descriptor as the source records it (platform, annotations).
    pub root_descriptor: Descriptor,
    /// The root.
    pub root: RawManifest,
    /// Every blob, in manifest order, each once (referrers' blobs last).
    pub blobs: Vec<BlobItem>,
    /// Every manifest under the root, children before their index, the root last.
    pub manifests: Vec<RawManifest>,
    /// Artifact manifests that refer to a manifest above (written after it).
    pub referrers: Vec<Referrer>,
}

/// An artifact manifest and the manifest it refers to.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// The artifact manifest.
    pub manifest: RawManifest,
    /// Its subject.
    pub subject: Digest,
    /// Its artifact type.
    pub artifact_type: Option<String>,
}

struct Walk<'a, 's> {
    source: &'s dyn ImageSource,
    blobs: &'a mut Vec<BlobItem>,
    seen_blobs: BTreeSet<Digest>,
    seen_manifests: BTreeSet<Digest>,
    manifests: Vec<RawManifest>,
}

impl<'s> Content<'s> {
    /// Walks the source's root.
    pub fn of_root(source: &'s dyn ImageSource) -> Result<Content<'s>, ImageError> {
        let root = source.root()?;
        Content::walk(source, root, true)
    }

    /// Walks from `root` (the source's root, or one image of it); with
    /// `referrers`, the artifacts referring to every manifest come along.
    pub fn walk(source: &'s dyn ImageSource, root: Descriptor, referrers: bool) -> Result<Content<'s>, ImageError> {
        let raw_root = source.manifest(&root)?;
        let mut blobs = Vec::new();
        let mut w = Walk {
            source,
            blobs: &mut blobs,
            seen_blobs: BTreeSet::new(),
            seen_manifests: BTreeSet::new(),
            manifests: Vec::new(),
        };
        w.node(raw_root.clone(), "", 0)?;
        let mut manifests = std::mem::take(&mut w.manifests);
        let mut refs = Vec::new();
        let mut subjects: Vec<Descriptor> =
            if referrers { manifests.iter().map(RawManifest::descriptor).collect() } else { Vec::new() };
        for _ in 0..MAX_DEPTH {
            let mut next = Vec::new();
            for s in &subjects {
                for d in source.referrers(s)? {
                    if w.seen_manifests.contains(&d.digest) {
                        continue;
                    }
                    let raw = source.manifest(&d)?;
                    w.node(raw.clone(), "referrer ", 0)?;
                    // The walk ends with the referrer itself; an index
                    // referrer's children go before the root.
                    w.manifests.pop();
                    let at = manifests.len() - 1;
                    manifests.splice(at..at, w.manifests.drain(..));
                    next.push(raw.descriptor());
                    refs.push(Referrer { manifest: raw, subject: s.digest, artifact_type: d.artifact_type.clone() });
                }
            }
            subjects = next;
        }
        Ok(Content { source, root_descriptor: root, root: raw_root, blobs, manifests, referrers: refs })
    }

    /// The SBOM (SPDX or CycloneDX) among the referrers of `subject`, if any.
    /// Returns its media type and bytes.
    pub fn sbom_of(&self, subject: &Digest) -> Result<Option<(String, Vec<u8>)>, ImageError> {
        for r in self.referrers.iter().filter(|r| r.subject == *subject) {
            if !crate::sbom::is_sbom(r.artifact_type.as_deref()) {
                continue;
            }
            let what = format!("{}: SBOM manifest {}", self.source.describe(), r.manifest.digest);
            let m = r.manifest.manifest(&what)?;
            if let Some(doc) = m.layers.first() {
                let kind = r.artifact_type.clone().unwrap_or_default();
                return super::read_blob(self.source, doc).map(|b| Some((kind, b)));
            }
        }
        Ok(None)
    }
}

impl Walk<'_, '_> {
    fn node(&mut self, raw: RawManifest, prefix: &str, depth: usize) -> Result<(), ImageError> {
        if depth > MAX_DEPTH {
            return Err(ImageError::TooDeep { source_name: self.source.describe() });
        }
        if !self.seen_manifests.insert(raw.digest) {
            return Ok(());
        }
        let what = format!("{}: manifest {}", self.source.describe(), raw.digest);
        match raw.parse(&what)? {
            Node::Index(idx) => {
                for d in &idx.manifests {
                    let child = self.source.manifest(d)?;
                    self.node(child, prefix, depth + 1)?;
                }
            }
            Node::Image(m) => {
                self.blob(&m.config, format!("{prefix}config"));
                let n = m.layers.len();
                for (i, l) in m.layers.iter().enumerate() {
                    self.blob(l, format!("{prefix}layer {}/{n}", i + 1));
                }
            }
        }
        self.manifests.push(raw);
        Ok(())
    }

    fn blob(&mut self, d: &Descriptor, label: String) {
        if self.seen_blobs.insert(d.digest) {
            let label = format!("{label} {}", super::short(&d.digest));
            self.blobs.push(BlobItem { descriptor: d.clone(), label });
        }
    }
}
