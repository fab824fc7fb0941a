//! One image model for reading and writing.
//!
//! * An [`ImageSource`] holds manifests and blobs under a root: an OCI
//!   layout, an archive, a registry repository ([`crate::registry`]), or an
//!   image just built ([`BuiltImage`]). It can also list the artifacts that
//!   refer to a manifest (its SBOM, signatures).
//! * [`Image`] is the typed view of one image of a source (manifest,
//!   config, layers, attachments), chosen through indexes by platform.
//! * [`Content`] is everything under a root, walked once: blobs, manifests
//!   children first, referrers. An index (several images) is walked the same
//!   way as a single image.
//! * A [`Sink`] writes a [`Content`]: an OCI layout, an oci-archive, a
//!   docker-archive, a registry. Building, pushing, pulling and copying are
//!   all "open a source, walk its content, write it to a sink".

pub mod archive;
pub mod built;
pub mod content;
pub mod layout;
mod view;

use std::io::{self, Read};
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{Hint, IoError};
use crate::oci::{Descriptor, OciError, RawManifest};

pub use built::{assemble, Attachment, BuiltImage, BuiltIndex, ImageLayer, RuntimeConfig};
pub use content::{BlobItem, Content};
pub use view::Image;

/// Manifests, configs and other small JSON blobs read whole are refused
/// beyond this size (the distribution spec asks registries to accept 4 MB).
pub const MAX_SMALL_BLOB: u64 = 8 << 20;

/// Annotation on an image's layout index entry naming its SBOM artifact
/// manifest (kept among the layout's blobs, not listed as an image of its
/// own, so tools that expect one image per layout keep working).
pub const SBOM_ANNOTATION: &str = "dev.strata.sbom";
/// Annotation on a layout index entry naming the other artifacts (space
/// separated digests) that refer to a manifest under that entry.
pub const REFERRERS_ANNOTATION: &str = "dev.strata.referrers";

/// A stream of a blob's bytes.
pub type BlobReader<'a> = Box<dyn Read + Send + 'a>;

/// Something images are read from.
pub trait ImageSource: Send + Sync {
    /// How the user named it (`oci:build/app:1.0`, `docker://host/app:1`).
    fn describe(&self) -> String;
    /// The descriptor of what the user named (an image manifest or an
    /// index), with the annotations and platform the source records for it.
    fn root(&self) -> Result<Descriptor, ImageError>;
    /// A manifest or index the source holds, by descriptor (the root, an
    /// index's children, referrers), digest-checked.
    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, ImageError>;
    /// Opens a blob (config, layer, artifact payload) for streaming. Readers
    /// that stream from a network check the digest at the end; callers that
    /// need the bytes verified before use read them with [`read_blob`].
    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, ImageError>;
    /// The artifact manifests whose `subject` is `subject` (its SBOM,
    /// signatures, attestations).
    fn referrers(&self, _subject: &Descriptor) -> Result<Vec<Descriptor>, ImageError> {
        Ok(Vec::new())
    }
    /// A local file that holds exactly the blob's bytes, when there is one:
    /// layout writers link or copy it instead of streaming.
    fn blob_path(&self, _d: &Descriptor) -> Option<PathBuf> {
        None
    }
    /// Forgets a local blob found corrupt while it was copied (the cache
    /// drops it, so the next build rewrites it). Default: nothing.
    fn discard(&self, _d: &Descriptor) {}
    /// False when the source has no manifests of its own and the one it
    /// shows was made up from its metadata (`docker save` archives): such
    /// an image cannot be copied to a registry with its digest unchanged.
    fn stores_manifests(&self) -> bool {
        true
    }
}

/// Reads a small blob whole (configs, SBOM documents), checking its size
/// and digest.
pub fn read_blob(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>, ImageError> {
    if d.size > MAX_SMALL_BLOB {
        return Err(ImageError::TooLarge { source_name: src.describe(), digest: d.digest, size: d.size });
    }
    let mut v = Vec::new();
    src.open_blob(d)?.take(MAX_SMALL_BLOB + 1).read_to_end(&mut v).map_err(|e| ImageError::Read {
        source_name: src.describe(),
        digest: d.digest,
        source: e,
    })?;
    verify(src, d, &v)?;
    Ok(v)
}

/// Checks bytes against the descriptor that named them.
pub fn verify(src: &dyn ImageSource, d: &Descriptor, bytes: &[u8]) -> Result<(), ImageError> {
    let found = Digest::of(bytes);
    if found != d.digest {
        return Err(ImageError::DigestMismatch { source_name: src.describe(), expected: d.digest, found });
    }
    Ok(())
}

/// Something images are written to.
pub trait Sink {
    /// How the user named it.
    fn describe(&self) -> String;
    /// Writes everything `content` holds (blobs first, then manifests
    /// children first, then the root, then the name that points at it), so
    /// that an interruption never leaves a name pointing at missing content.
    fn write(&self, content: &Content<'_>) -> Result<WriteReport, ImageError>;
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobAction {
    /// Its bytes were sent to a registry.
    Uploaded,
    /// Mounted from another repository of the same registry (no bytes sent).
    Mounted,
    /// Already in the destination (no bytes sent or written).
    Skipped,
    /// Written into a layout or archive.
    Written,
}

/// One blob of a write.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlobReport {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type from the manifest.
    pub media_type: String,
    /// What was done.
    pub action: BlobAction,
    /// Bytes sent or copied, all attempts together (0 when mounted or skipped).
    pub bytes_sent: u64,
    /// The repository it was mounted from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_from: Option<String>,
    /// Attempts needed.
    pub attempts: u32,
}

/// One manifest of a write.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManifestReport {
    /// Digest.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// Where a referrer was recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReferrerOutcome {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// The manifest it refers to.
    pub subject: Digest,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// The fallback tag (`sha256-<hex>`) updated, when the registry has no referrers API.
    pub fallback_tag: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteReport {
    /// Where it went (`host/repo:tag`, `oci:DIR:TAG`).
    pub reference: String,
    /// The root manifest (or index) digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The tag written, if any.
    pub tag: Option<String>,
    /// Every blob, in manifest order.
    pub blobs: Vec<BlobReport>,
    /// Every manifest, children first.
    pub manifests: Vec<ManifestReport>,
    /// Artifacts stored with the image (its SBOM) written as referrers.
    pub referrers: Vec<ReferrerOutcome>,
    /// Blob bytes sent or copied in total.
    pub bytes_sent: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Why an image could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// IO on a local path.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A manifest, index or config does not parse.
    #[error(transparent)]
    Parse(#[from] OciError),
    /// A directory that should be an OCI image layout is not one.
    #[error("{source_name}: {} is not an OCI image layout (no oci-layout file)", path.display())]
    NotALayout {
        /// How the user named it.
        source_name: String,
        /// The directory.
        path: PathBuf,
    },
    /// A destination directory holds something else.
    #[error("{} exists and is not an OCI image layout (no `oci-layout` file); refusing to write into it", path.display())]
    NotALayoutDestination {
        /// The directory.
        path: PathBuf,
    },
    /// An archive lacks the member that says what it holds.
    #[error("{source_name}: no {member} (not {kind}?)")]
    NotAnArchive {
        /// How the user named it.
        source_name: String,
        /// `index.json`, `manifest.json`.
        member: &'static str,
        /// `an oci-archive`, `a docker-archive`.
        kind: &'static str,
    },
    /// A tar file does not parse.
    #[error("{}: not a valid tar archive: {source}", path.display())]
    BadTar {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: io::Error,
    },
    /// A `docker save` manifest.json that does not describe an image.
    #[error("{source_name}: manifest.json {problem}")]
    BadDockerManifest {
        /// How the user named it.
        source_name: String,
        /// What is wrong.
        problem: String,
    },
    /// A blob the manifests name is not there.
    #[error("{source_name}: blob {digest} is missing from the {container}")]
    MissingBlob {
        /// How the user named it.
        source_name: String,
        /// The blob.
        digest: Digest,
        /// `layout`, `archive`.
        container: &'static str,
    },
    /// Bytes do not hash to the digest that names them.
    #[error("{source_name}: blob {expected} is corrupt: its bytes hash to {found}")]
    DigestMismatch {
        /// How the user named it.
        source_name: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes.
        found: Digest,
    },
    /// A blob held locally (in the cache) no longer has the bytes its digest
    /// names. The source has dropped it, so building again rewrites it.
    #[error("the cached blob {digest} is corrupt (its bytes hash to {found}); it was removed from the cache")]
    CorruptBlob {
        /// The digest it is stored under.
        digest: Digest,
        /// What its bytes hash to.
        found: Digest,
    },
    /// A blob's length differs from its descriptor's size.
    #[error("{source_name}: blob {digest} has {found} bytes, its descriptor says {expected}; the image is corrupt")]
    SizeMismatch {
        /// How the user named it.
        source_name: String,
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// Bytes found.
        found: u64,
    },
    /// A small blob (manifest, config) is implausibly large.
    #[error(
        "{source_name}: blob {digest} is {size} bytes, more than the {} allowed for manifests and configs",
        MAX_SMALL_BLOB
    )]
    TooLarge {
        /// How the user named it.
        source_name: String,
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Reading a blob failed midway.
    #[error("{source_name}: reading {digest}: {source}")]
    Read {
        /// How the user named it.
        source_name: String,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No image carries the tag asked for.
    #[error("{source_name}: no image tagged `{tag}` (tags here: {})", list_or_none(tags))]
    NoSuchTag {
        /// How the user named it.
        source_name: String,
        /// The tag.
        tag: String,
        /// The tags there are.
        tags: Vec<String>,
    },
    /// Several images and no tag to choose one.
    #[error("{source_name}: holds {count} images; name one with :TAG ({})", tags.join(", "))]
    Ambiguous {
        /// How the user named it.
        source_name: String,
        /// How many.
        count: usize,
        /// Their tags.
        tags: Vec<String>,
    },
    /// An index with no entries.
    #[error("{source_name}: the index lists no images")]
    EmptyIndex {
        /// How the user named it.
        source_name: String,
    },
    /// An index without an image for the platform asked for.
    #[error("{source_name}: the index has no {want} image (it has: {})", have.join(", "))]
    NoPlatform {
        /// How the user named it.
        source_name: String,
        /// The platform asked for.
        want: String,
        /// The platforms there are.
        have: Vec<String>,
    },
    /// Indexes nested more deeply than any real image does.
    #[error("{source_name}: image indexes nest too deeply")]
    TooDeep {
        /// How the user named it.
        source_name: String,
    },
    /// A manifest the walk expected to be an image is something else.
    #[error("{source_name}: manifest {digest} ({media_type}) is not an image manifest")]
    NotAnImage {
        /// How the user named it.
        source_name: String,
        /// The manifest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// The destination cannot hold what is written to it.
    #[error("{sink}: {problem}")]
    Unsupported {
        /// How the user named the destination.
        sink: String,
        /// What it cannot hold.
        problem: String,
        /// What to do instead.
        advice: String,
    },
    /// A tag that is not valid.
    #[error("`{0}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)")]
    BadTag(String),
    /// Serialising JSON failed.
    #[error("serialising {what}: {source}")]
    Json {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A registry read or write failed (the registry's own error).
    #[error(transparent)]
    Registry(Box<dyn std::error::Error + Send + Sync>),
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Hint for ImageError {
    fn hint(&self) -> Option<String> {
        match self {
            ImageError::NotALayoutDestination { .. } => Some("choose a new or empty directory".into()),
            ImageError::CorruptBlob { .. } => Some("build again: the layer is rebuilt".into()),
            ImageError::NoPlatform { .. } => Some("choose one with --platform OS/ARCH".into()),
            ImageError::Unsupported { advice, .. } => Some(advice.clone()),
            ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. } => {
                Some("the image is damaged; copy or build it again".into())
            }
            _ => None,
        }
    }
}

/// Short form of a digest for progress lines: `sha256:0123456789ab`.
pub fn short(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}
