//! The `strata-verify` binary as a layer source: images whose spec has a
//! `gpu:` section get it at [`VERIFIER_PATH`] in a layer of its own, like
//! any other source's layer (cached by fingerprint, listed in the SBOM).
//!
//! strata carries the binary itself ([`EMBEDDED`]): the exact bytes
//! `verifier/build-reproducible.sh` makes from the verifier's sources with
//! the pinned toolchain, committed under `verifier/dist/` with a manifest of
//! the sources they were built from (docs/verifier.md, "Reproducible
//! bytes"). Any install of strata, with any toolchain, therefore puts the
//! same verifier into images and builds the flagship to its golden digest;
//! `--verifier PATH` replaces it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Part, Source, SourceError};
use crate::digest::Digest;
use crate::lockfile::Lock;
use crate::spec::LoadedSpec;
use crate::tree::{Content, Entry, Kind, TreePath};

/// Where the verifier is installed in images.
pub const VERIFIER_PATH: &str = "/usr/local/bin/strata-verify";

/// A `strata-verify` binary built into strata.
#[derive(Debug)]
pub struct Embedded {
    /// The image platform it runs on (`linux/amd64`, `linux/arm64`).
    pub platform: &'static str,
    /// The Rust target it was built for.
    pub target: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// The verifiers strata carries, one per image platform: linux/amd64 first
/// (the default platform), then linux/arm64 (Grace Hopper), both built by
/// `verifier/dist/update.sh` in one run.
pub const EMBEDDED: &[Embedded] = &[
    Embedded {
        platform: "linux/amd64",
        target: "x86_64-unknown-linux-gnu",
        bytes: include_bytes!("../../verifier/dist/x86_64-unknown-linux-gnu/strata-verify"),
    },
    Embedded {
        platform: "linux/arm64",
        target: "aarch64-unknown-linux-gnu",
        bytes: include_bytes!("../../verifier/dist/aarch64-unknown-linux-gnu/strata-verify"),
    },
];

/// The manifest of `verifier/dist/` (the toolchain, the sources' digests,
/// each binary's sha256), as committed.
pub const DIST_MANIFEST: &str = include_str!("../../verifier/dist/manifest.toml");

impl Embedded {
    /// The embedded verifier for an image platform (`os/arch[/variant]`).
    pub fn for_platform(platform: &str) -> Option<&'static Embedded> {
        EMBEDDED.iter().find(|e| e.platform == platform)
    }

    /// Its digest.
    pub fn sha256(&self) -> Digest {
        Digest::of(self.bytes)
    }
}

/// Where the bytes of a verifier come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Built into strata.
    Embedded(&'static Embedded),
    /// A file given with `--verifier PATH`.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Embedded(e) => write!(f, "the strata-verify built into strata ({})", e.target),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The verifier binary chosen for a build.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Where its bytes are.
    pub origin: Origin,
    /// Its digest.
    pub sha256: Digest,
    /// Its size.
    pub size: u64,
}

/// Why the verifier cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The binary cannot be read.
    #[error("{}: the spec has a `gpu:` section, so the image gets strata-verify as its entrypoint, but the binary cannot be read at {}: {}\nhint: leave out `--verifier` to use the strata-verify built into strata, pass the path of a readable binary, or set `gpu.verify: off`", spec.display(), path.display(), crate::error::os_message(source))]
    Unreadable {
        /// The spec.
        spec: PathBuf,
        /// Where the binary was looked for.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// strata carries no verifier for the spec's platform.
    #[error("{}: the spec has a `gpu:` section for platform {platform}, but strata carries strata-verify only for {}\nhint: build strata-verify for {platform} and pass it with `--verifier PATH`, or set `gpu.verify: off`", spec.display(), EMBEDDED.iter().map(|e| e.platform).collect::<Vec<_>>().join(", "))]
    NoEmbedded {
        /// The spec.
        spec: PathBuf,
        /// Its platform.
        platform: String,
    },
    /// The binary is not the one the lock pins.
    #[error("strata-verify ({origin}) does not match the lock {}\n  locked: {locked} ({locked_size} bytes)\n  found:  {found} ({found_size} bytes)\nhint: the lock was made with another verifier: re-lock to pin this one (`strata lock SPEC`, or `strata lock SPEC --verifier PATH`), or pass the pinned binary with `--verifier PATH` (`strata verifier --platform {platform} --write PATH` writes the one built into this strata; `verifier/build-reproducible.sh` rebuilds it)", lock.display())]
    NotThePinned {
        /// The image platform.
        platform: String,
        /// Where the binary came from.
        origin: Origin,
        /// The lock file.
        lock: PathBuf,
        /// The pinned sha256.
        locked: String,
        /// The pinned size.
        locked_size: u64,
        /// What the binary hashes to.
        found: Digest,
        /// Its size.
        found_size: u64,
    },
}

impl Verifier {
    /// The built-in verifier for `platform`, if strata carries one.
    pub fn embedded(platform: &str) -> Option<Verifier> {
        let e = Embedded::for_platform(platform)?;
        Some(Verifier { origin: Origin::Embedded(e), sha256: e.sha256(), size: e.bytes.len() as u64 })
    }

    /// The verifier a spec's `gpu:` section asks for: `path` when given,
    /// else the one built into strata for the spec's platform; `None` when
    /// the spec has no `gpu:` section or says `verify: off`. With a `lock`,
    /// the binary must be the one it pins.
    pub fn locate(
        spec: &LoadedSpec,
        path: Option<&Path>,
        lock: Option<&Lock>,
    ) -> Result<Option<Verifier>, VerifierError> {
        let Some(gpu) = &spec.spec.gpu else { return Ok(None) };
        if gpu.verify.as_deref() == Some("off") {
            return Ok(None);
        }
        let v = match path {
            Some(path) => {
                let unreadable =
                    |source| VerifierError::Unreadable { spec: spec.path.clone(), path: path.to_path_buf(), source };
                let f = fs_err::File::open(path).map_err(unreadable)?;
                let (sha256, size) = crate::digest::hash_reader(std::io::BufReader::new(f)).map_err(unreadable)?;
                Verifier { origin: Origin::File(path.to_path_buf()), sha256, size }
            }
            None => {
                let platform = crate::lockfile::platform_of(spec);
                Verifier::embedded(&platform)
                    .ok_or_else(|| VerifierError::NoEmbedded { spec: spec.path.clone(), platform })?
            }
        };
        if let Some(pin) = lock.and_then(|l| l.verifier.as_ref()) {
            if pin.sha256 != v.sha256.to_string() {
                return Err(VerifierError::NotThePinned {
                    platform: crate::lockfile::platform_of(spec),
                    origin: v.origin,
                    lock: spec.lock_path(),
                    locked: pin.sha256.clone(),
                    locked_size: pin.size,
                    found: v.sha256,
                    found_size: v.size,
                });
            }
        }
        Ok(Some(v))
    }

    /// The SBOM entry of the binary.
    pub fn package(&self) -> crate::sbom::Package {
        let version = env!("CARGO_PKG_VERSION");
        crate::sbom::Package {
            kind: crate::sbom::PackageKind::File,
            name: "strata-verify".into(),
            version: Some(version.into()),
            purl: Some(format!("pkg:generic/strata-verify@{version}?checksum=sha256:{}", self.sha256.hex())),
            sha256: Some(self.sha256),
            download: None,
            license: Some("Apache-2.0".into()),
        }
    }

    /// Its bytes, for the layer.
    fn content(&self) -> Content {
        match &self.origin {
            Origin::Embedded(e) => Content::Bytes(Arc::from(e.bytes)),
            Origin::File(p) => Content::LocalFile(p.clone()),
        }
    }
}

impl Source for Verifier {
    fn describe(&self) -> String {
        format!("strata-verify {}", self.origin)
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        Ok(vec![Part {
            name: None,
            fingerprint: format!("verifier-v1 {} {VERIFIER_PATH} 0755\n", self.sha256),
            populate: Box::new(move |_, tree| {
                let origin: Arc<str> = Arc::from(format!("verifier {}", self.origin));
                let mut entry = Entry::file(self.content(), self.size, 0o755, &origin);
                if let Kind::File { sha256, .. } = &mut entry.kind {
                    *sha256 = Some(self.sha256);
                }
                let path = TreePath::from_image_path(VERIFIER_PATH).map_err(|e| SourceError::Message(e.to_string()))?;
                tree.insert(path, entry)?;
                Ok(())
            }),
            packages: vec![self.package()],
        }])
    }
}
