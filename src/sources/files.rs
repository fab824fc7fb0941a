//! `files:`, `dirs:` and `symlinks:`: entries written out in the spec.

use std::sync::Arc;

use crate::digest::{hash_reader, Digest};
use crate::spec::{decode_base64, ResolvedLayer};
use crate::tree::{Content, Entry, Kind};

use super::{Context, Part, Source, SourceError};

/// The inline entries of a layer.
pub struct Files<'a> {
    /// The layer entry.
    pub layer: &'a ResolvedLayer,
}

impl Source for Files<'_> {
    fn describe(&self) -> String {
        format!("files of {}", self.layer.display_name())
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        let e = &self.layer.entry;
        // Local files are hashed now so the fingerprint covers their bytes.
        let mut local: Vec<(std::path::PathBuf, Digest, u64)> = Vec::new();
        let mut fp = String::from("files-v1\n");
        for d in &e.dirs {
            fp.push_str(&format!("dir {} {:o} {} {}\n", d.path.0, d.mode.map_or(0o755, |m| m.0), d.uid, d.gid));
        }
        for f in &e.files {
            let (kind, digest) = if let Some(c) = &f.content {
                ("text", Digest::of(c.as_bytes()))
            } else if let Some(b) = &f.content_base64 {
                ("base64", Digest::of(&decode_base64(b).map_err(|e| SourceError::Message(e.to_string()))?))
            } else {
                let src = self
                    .layer
                    .host_file(f.source.as_deref().unwrap_or_default())
                    .map_err(|e| SourceError::Message(format!("{}: `source`: {e}\nhint: {}", f.path.0, e.hint())))?;
                let (file, size) = crate::hostfs::open_regular(&src)
                    .map_err(|e| SourceError::Message(format!("{}: `source`: {e}", f.path.0)))?;
                let exact = crate::hostfs::Exact::new(std::io::BufReader::new(file), size, &src);
                let (d, n) = hash_reader(exact).map_err(SourceError::io("reading", &src))?;
                local.push((src, d, n));
                ("local", d)
            };
            fp.push_str(&format!(
                "file {} {kind} {digest} {:o} {} {} {:?}\n",
                f.path.0,
                f.mode.map_or(0o644, |m| m.0),
                f.uid,
                f.gid,
                f.mtime
            ));
        }
        for s in &e.symlinks {
            fp.push_str(&format!("symlink {} -> {} {} {}\n", s.path.0, s.target, s.uid, s.gid));
        }
        let populate = move |_: &Context<'_>, tree: &mut crate::tree::Tree| -> Result<(), SourceError> {
            let origin: Arc<str> = Arc::from(format!("{} ({})", self.layer.display_name(), self.layer.file.display()));
            for d in &e.dirs {
                let entry = Entry::dir(d.mode.map_or(0o755, |m| m.0), &origin).owned(d.uid, d.gid);
                tree.insert_spec(d.path.tree_path(), entry)?;
            }
            let mut local = local.into_iter();
            for f in &e.files {
                let mode = f.mode.map_or(0o644, |m| m.0);
                let mut entry = if let Some(c) = &f.content {
                    Entry::bytes(c.as_bytes().to_vec(), mode, &origin)
                } else if let Some(b) = &f.content_base64 {
                    Entry::bytes(decode_base64(b).map_err(|e| SourceError::Message(e.to_string()))?, mode, &origin)
                } else {
                    let (src, digest, size) = local
                        .next()
                        .ok_or_else(|| SourceError::Message("internal: local file list out of step".into()))?;
                    let mut e = Entry::file(Content::LocalFile(src), size, mode, &origin);
                    if let Kind::File { sha256, .. } = &mut e.kind {
                        *sha256 = Some(digest);
                    }
                    e
                };
                entry = entry.owned(f.uid, f.gid);
                entry.mtime = f.mtime;
                tree.insert_spec(f.path.tree_path(), entry)?;
            }
            for s in &e.symlinks {
                tree.insert_spec(s.path.tree_path(), Entry::symlink(s.target.clone(), &origin).owned(s.uid, s.gid))?;
            }
            Ok(())
        };
        Ok(vec![Part { name: None, fingerprint: fp, populate: Box::new(populate), packages: Vec::new() }])
    }
}
