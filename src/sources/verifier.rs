//! The `strata-verify` binary as a layer source: images whose spec has a
//! `gpu:` section get it at [`VERIFIER_PATH`] in a layer of its own, like
//! any other source's layer (cached by fingerprint, listed in the SBOM).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Part, Source, SourceError};
use crate::digest::Digest;
use crate::lockfile::Lock;
use crate::spec::LoadedSpec;
use crate::tree::{Content, Entry, Kind, TreePath};

/// Where the verifier is installed in images.
pub const VERIFIER_PATH: &str = "/usr/local/bin/strata-verify";

/// The verifier binary chosen for a build.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// The local file.
    pub path: PathBuf,
    /// Its digest.
    pub sha256: Digest,
    /// Its size.
    pub size: u64,
}

/// Why the verifier cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The binary cannot be read.
    #[error("{}: the spec has a `gpu:` section, so the image gets strata-verify as its entrypoint, but the binary cannot be read at {}: {}\nhint: build it with `verifier/build-reproducible.sh` (or `cargo build --release -p strata-verify`) and pass `--verifier PATH`, or set `gpu.verify: off`", spec.display(), path.display(), crate::error::os_message(source))]
    Unreadable {
        /// The spec.
        spec: PathBuf,
        /// Where the binary was looked for.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The binary is not the one the lock pins.
    #[error("strata-verify at {} does not match the lock {}\n  locked: {locked} ({locked_size} bytes)\n  found:  {found} ({found_size} bytes)\nhint: build it reproducibly with `verifier/build-reproducible.sh` and pass `--verifier target/x86_64-unknown-linux-gnu/verifier/strata-verify`, or re-lock with the binary you mean (`strata lock SPEC --verifier PATH`)", path.display(), lock.display())]
    NotThePinned {
        /// The binary.
        path: PathBuf,
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
    /// The verifier a spec's `gpu:` section asks for, located (`path`, else
    /// `strata-verify` next to the running executable) and hashed; `None`
    /// when the spec has no `gpu:` section or says `verify: off`. With a
    /// `lock`, the binary must be the one it pins.
    pub fn locate(
        spec: &LoadedSpec,
        path: Option<&Path>,
        lock: Option<&Lock>,
    ) -> Result<Option<Verifier>, VerifierError> {
        let Some(gpu) = &spec.spec.gpu else { return Ok(None) };
        if gpu.verify.as_deref() == Some("off") {
            return Ok(None);
        }
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("strata-verify")))
                .unwrap_or_else(|| PathBuf::from("strata-verify")),
        };
        let unreadable = |source| VerifierError::Unreadable { spec: spec.path.clone(), path: path.clone(), source };
        let f = fs_err::File::open(&path).map_err(unreadable)?;
        let (sha256, size) = crate::digest::hash_reader(std::io::BufReader::new(f)).map_err(unreadable)?;
        if let Some(pin) = lock.and_then(|l| l.verifier.as_ref()) {
            if pin.sha256 != sha256.to_string() {
                return Err(VerifierError::NotThePinned {
                    path,
                    lock: crate::lockfile::lock_path(&spec.path),
                    locked: pin.sha256.clone(),
                    locked_size: pin.size,
                    found: sha256,
                    found_size: size,
                });
            }
        }
        Ok(Some(Verifier { path, sha256, size }))
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
}

impl Source for Verifier {
    fn describe(&self) -> String {
        format!("strata-verify {}", self.path.display())
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        Ok(vec![Part {
            name: None,
            fingerprint: format!("verifier-v1 {} {VERIFIER_PATH} 0755\n", self.sha256),
            populate: Box::new(move |_, tree| {
                let origin: Arc<str> = Arc::from(format!("verifier {}", self.path.display()));
                let mut entry = Entry::file(Content::LocalFile(self.path.clone()), self.size, 0o755, &origin);
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
