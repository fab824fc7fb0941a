//! `tarball:`: a tar archive (plain, gzip, zstd or xz) from a URL or a local path.

use std::io::Read;
use std::sync::Arc;

use crate::archive::{decompress, read_tar, sniff, Codec, MemberData, Placement};
use crate::digest::HashingReader;
use crate::fetch::Artifact;
use crate::spec::{parse_owner, ResolvedLayer, TarballSpec};
use crate::tree::Spool;

use super::{Context, Part, Source, SourceError};

/// A tarball source.
pub struct Tarball<'a> {
    /// Its spec.
    pub spec: &'a TarballSpec,
    /// The layer entry (for relative paths).
    pub layer: &'a ResolvedLayer,
}

impl Tarball<'_> {
    fn name(&self) -> String {
        match (&self.spec.url, &self.spec.path) {
            (Some(u), _) => crate::net::redact::url(u),
            (_, Some(p)) => self.layer.resolve(p).display().to_string(),
            _ => "tarball".into(),
        }
    }
}

impl Tarball<'_> {
    /// The local tarball `p`, confined to the build context.
    fn local_file(&self, p: &str) -> Result<std::path::PathBuf, SourceError> {
        self.layer.host_file(p).map_err(|e| SourceError::Message(format!("local tarball: {e}\nhint: {}", e.hint())))
    }
}

impl Source for Tarball<'_> {
    fn describe(&self) -> String {
        format!("tarball {}", self.name())
    }

    fn artifacts(&self) -> Vec<Artifact> {
        match (&self.spec.url, &self.spec.sha256) {
            (Some(url), Some(sha)) => vec![Artifact {
                name: url.rsplit('/').next().unwrap_or(url).to_string(),
                url: url.clone(),
                sha256: sha.0,
                size: self.spec.size,
            }],
            _ => Vec::new(),
        }
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        let s = self.spec;
        // A local tarball without a pinned hash is fingerprinted by its bytes.
        let content = match (&s.sha256, &s.path) {
            (Some(d), _) => d.0,
            (None, Some(p)) => {
                let path = self.local_file(p)?;
                let (f, size) = crate::hostfs::open_regular(&path)
                    .map_err(|e| SourceError::Message(format!("local tarball: {e}\nhint: {}", e.hint())))?;
                let exact = crate::hostfs::Exact::new(std::io::BufReader::new(f), size, &path);
                crate::digest::hash_reader(exact).map_err(SourceError::io("reading", &path))?.0
            }
            (None, None) => return Err(SourceError::Message("tarball without url or path".into())),
        };
        let fp = format!(
            "tarball-v1 {content} into={:?} strip={} owner={:?}\n",
            s.into.as_ref().map(|p| &p.0),
            s.strip_components,
            s.owner
        );
        let populate = move |ctx: &Context<'_>, tree: &mut crate::tree::Tree| -> Result<(), SourceError> {
            let name = self.name();
            let placement = Placement {
                into: s.into.as_ref().map(|p| p.tree_path()),
                strip_components: s.strip_components,
                owner: s.owner.as_deref().and_then(parse_owner),
            };
            let file_path = match &s.url {
                Some(_) => ctx.store.path(&content),
                None => self.local_file(s.path.as_deref().unwrap_or_default())?,
            };
            let (file, size) = match &s.url {
                Some(_) => {
                    let f = fs_err::File::open(&file_path)
                        .map_err(|e| SourceError::Message(format!("{name}: {}", crate::error::os_message(&e))))?;
                    let len = f.metadata().map_err(SourceError::io("reading", &file_path))?.len();
                    (f, len)
                }
                None => crate::hostfs::open_regular(&file_path)
                    .map_err(|e| SourceError::Message(format!("{name}: {e}\nhint: {}", e.hint())))?,
            };
            // An uncompressed tar is its own spool: members are read from it
            // when the layer is written, through this handle, instead of
            // being copied to scratch space first.
            let mut head = [0u8; 8];
            let n = std::os::unix::fs::FileExt::read_at(file.file(), &mut head, 0)
                .map_err(SourceError::io("reading", &file_path))?;
            let data = if sniff(&head[..n]) == Codec::Plain {
                let handle = file.file().try_clone().map_err(SourceError::io("opening", &file_path))?;
                MemberData::InPlace(Spool::in_place(handle, file_path.clone()))
            } else {
                MemberData::Spool(&ctx.scratch)
            };
            // Never more than the file's size when it was opened: a file that
            // keeps growing cannot keep the build reading.
            let mut hashing =
                HashingReader::new(crate::hostfs::Exact::new(std::io::BufReader::new(file), size, &file_path));
            let origin: Arc<str> = Arc::from(format!("tarball {name}"));
            let read = decompress(&mut hashing, &name)
                .and_then(|stream| read_tar(stream, &name, &placement, &origin, data, tree));
            // Hash the rest (padding after the end-of-archive marker) to check
            // the pin, also when reading failed: a pinned file that does not
            // match is the error to report, not what its bytes made of it.
            let rest = std::io::copy(&mut (&mut hashing).take(u64::MAX), &mut std::io::sink())
                .map_err(SourceError::io("reading", &file_path));
            let (found, _) = hashing.finish();
            if found != content && rest.is_ok() && s.url.is_some() {
                // Verified when it was downloaded: the cached copy changed since.
                return Err(SourceError::corrupt_cache(&name, &file_path, content, found));
            }
            read?;
            rest?;
            if found != content {
                return Err(SourceError::Message(format!(
                    "{name}: sha256 mismatch\n  expected: {content}\n  found:    {found}\nhint: the file changed since it was pinned; update `sha256` if the new file is trusted"
                )));
            }
            Ok(())
        };
        let file_name = match (&s.url, &s.path) {
            (Some(u), _) => u.rsplit('/').next().unwrap_or(u).to_string(),
            (_, Some(p)) => std::path::Path::new(p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.clone()),
            _ => "tarball".into(),
        };
        let packages = vec![crate::sbom::Package::tarball(s.url.as_deref(), &file_name, Some(content))];
        Ok(vec![Part { name: None, fingerprint: fp, populate: Box::new(populate), packages }])
    }
}
