//! `debs:`: Debian packages, resolved at lock time and unpacked at build
//! time without dpkg or root (docs/debian.md).
//!
//! - [`version`]: dpkg version ordering.
//! - [`control`]: deb822 paragraphs and dependency relations.
//! - [`release`]: the keyring, `InRelease` signatures, `Release` hashes.
//! - [`resolve`]: dependency resolution over the Packages index.
//! - [`repo`]: lock time: fetch, verify, resolve → pins.
//! - [`extract`]: `.deb` (ar + control.tar + data.tar) → layer tree, status.d.
//! - [`ldcache`]: the `/etc/ld.so.cache` writer.
//! - [`ldlayers`]: that cache across layers (a `debs:` layer above another).
//! - [`standins`]: what maintainer scripts would have done.

pub mod control;
pub mod error;
pub mod extract;
pub mod ldcache;
pub mod ldlayers;
pub mod release;
pub mod repo;
pub mod resolve;
pub mod standins;
pub mod version;

use crate::digest::Digest;
use crate::fetch::Artifact;
use crate::lockfile::DebsLock;
use crate::spec::{DebsSpec, ResolvedLayer};

use super::{Context, Part, Source, SourceError};

/// The default Debian archive.
pub use crate::spec::{DEFAULT_ARCH, DEFAULT_ARCHIVE, DEFAULT_SECURITY_ARCHIVE};

/// The `debs:` source of one layer entry, with its pins from the lock file.
pub struct Debs<'a> {
    /// Its spec.
    pub spec: &'a DebsSpec,
    /// The layer entry.
    pub layer: &'a ResolvedLayer,
    /// The pins (`None` when the lock has no entry for this layer).
    pub pins: Option<&'a DebsLock>,
}

impl Debs<'_> {
    fn pins(&self) -> Result<&DebsLock, SourceError> {
        self.pins.ok_or_else(|| {
            SourceError::Message(format!(
                "no lock entry for the `debs:` of layer `{}`\nhint: run `strata lock SPEC` to pin the packages",
                crate::lockfile::layer_key(self.layer)
            ))
        })
    }
}

impl Source for Debs<'_> {
    fn describe(&self) -> String {
        match self.pins {
            Some(p) => format!("debs ({} packages)", p.packages.len()),
            None => "debs (not locked)".into(),
        }
    }

    fn artifacts(&self) -> Vec<Artifact> {
        let Some(pins) = self.pins else { return Vec::new() };
        pins.packages
            .iter()
            .filter_map(|p| {
                Some(Artifact {
                    name: format!("{}_{}_{}.deb", p.name, p.version, p.arch),
                    url: p.url.clone(),
                    sha256: Digest::parse(&p.sha256).ok()?,
                    size: Some(p.size),
                })
            })
            .collect()
    }

    fn check(&self) -> Result<(), SourceError> {
        let Some(pins) = self.pins else { return Ok(()) };
        let arch = self.layer.arch;
        if pins.arch != arch.deb() {
            return Err(SourceError::Message(format!(
                "the lock resolved the `debs:` of layer `{}` for architecture `{}`, but the image is for {arch}\nhint: run `strata lock SPEC` to resolve them for `{}`",
                crate::lockfile::layer_key(self.layer),
                pins.arch,
                arch.deb()
            )));
        }
        if let Some(p) = pins.packages.iter().find(|p| !arch.fits_deb(&p.arch)) {
            return Err(SourceError::Message(format!(
                "{}_{}_{}.deb is for architecture `{}`, but the image is for {arch} (Debian `{}` or `all`)\nhint: the lock file was edited; run `strata lock SPEC` again",
                p.name,
                p.version,
                p.arch,
                p.arch,
                arch.deb()
            )));
        }
        Ok(())
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        let pins = self.pins()?;
        let merged_usr = self.spec.merged_usr.unwrap_or(true);
        let standins = self.spec.standins.unwrap_or(true);
        let arch = self.layer.arch;
        // v2: cached layers record the ld.so.cache they leave (ldlayers);
        // entries from before that would pass none on, so they are not reused.
        let mut fp = format!("debs-v2 merged_usr={merged_usr} standins={standins}\n");
        if arch != crate::platform::Arch::Amd64 {
            fp.push_str(&format!("arch {}\n", arch.deb()));
        }
        let mut list = Vec::new();
        let mut packages = Vec::new();
        // The purl `distro` qualifier: the release codename of the first
        // archive's first suite (`bookworm` for `bookworm-updates`).
        let distro = self
            .spec
            .archives()
            .first()
            .and_then(|a| a.suites.first())
            .map(|s| s.split('-').next().unwrap_or(s).to_string());
        let distro_q = distro.map(|d| format!("&distro={}", crate::sbom::purl_escape(&d))).unwrap_or_default();
        for p in &pins.packages {
            let d =
                Digest::parse(&p.sha256).map_err(|e| SourceError::Message(format!("lock: package {}: {e}", p.name)))?;
            fp.push_str(&format!("{} {} {} {}\n", p.name, p.version, p.arch, d.hex()));
            list.push((p, d));
            packages.push(crate::sbom::Package {
                kind: crate::sbom::PackageKind::Deb,
                name: p.name.clone(),
                version: Some(p.version.clone()),
                purl: Some(format!(
                    "pkg:deb/debian/{}@{}?arch={}{distro_q}",
                    crate::sbom::purl_escape(&p.name),
                    crate::sbom::purl_escape(&p.version),
                    crate::sbom::purl_escape(&p.arch)
                )),
                sha256: Some(d),
                download: Some(crate::net::redact::url(&p.url)),
                license: None,
            });
        }
        let populate = move |ctx: &Context<'_>, tree: &mut crate::tree::Tree| -> Result<(), SourceError> {
            let opts = extract::ExtractOptions { merged_usr, arch: Some(arch) };
            for (pin, digest) in &list {
                let label = format!("{}_{}_{}.deb", pin.name, pin.version, pin.arch);
                let meta =
                    extract::extract_deb(&ctx.store.path(digest), Some(digest), &label, opts, &ctx.scratch, tree)?;
                if meta.package != pin.name || meta.version != pin.version {
                    return Err(SourceError::Message(format!(
                        "{label}: the .deb's control file says {} {}, the lock says {} {}\nhint: the lock file was edited or the archive is inconsistent; run `strata lock SPEC` again",
                        meta.package, meta.version, pin.name, pin.version
                    )));
                }
                extract::register(&meta, tree)?;
            }
            if standins {
                standins::apply(tree, merged_usr, arch)?;
            } else if merged_usr {
                standins::apply_merged_usr_links(tree)?;
            }
            Ok(())
        };
        Ok(vec![Part { name: None, fingerprint: fp, populate: Box::new(populate), packages }])
    }
}
