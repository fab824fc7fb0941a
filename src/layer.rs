//! Writes a [`Tree`] as a layer blob: deterministic tar → diff_id hash →
//! compressor → digest hash → temporary file → store, in one streaming pass.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read};

use serde::{Deserialize, Serialize};
use tracing::info_span;

use crate::compress::{Compression, Compressor};
use crate::digest::{Digest, HashingWriter};
use crate::store::{Store, StoreError};
use crate::tarwriter::{TarHeader, TarType, TarWriter};
use crate::tree::{Kind, Tree, TreePath};

/// A layer blob in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed size.
    pub tar_size: u64,
    /// OCI media type.
    pub media_type: String,
}

/// Layer writing settings.
#[derive(Debug, Clone, Copy)]
pub struct LayerSettings {
    /// Compression.
    pub compression: Compression,
    /// Compression threads (the bytes do not depend on it).
    pub threads: usize,
    /// Default mtime for entries.
    pub epoch: u64,
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Reading an entry's content failed.
    #[error("reading {path} from {from}: {source}")]
    Content {
        /// Image path.
        path: TreePath,
        /// Where its bytes come from.
        from: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing the blob failed.
    #[error("writing layer: {0}")]
    Write(#[source] io::Error),
    /// Store error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Streams `tree` into a new blob of `store`; `progress` gets the
/// uncompressed bytes written so far.
pub fn write_layer(tree: &Tree, settings: &LayerSettings, store: &Store, progress: &dyn Fn(u64)) -> Result<LayerBlob, LayerError> {
    let _span = info_span!("layer", entries = tree.len()).entered();
    let tmp = store.temp_file()?;
    let file = tmp.reopen().map_err(LayerError::Write)?;
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let comp = Compressor::new(settings.compression, settings.threads, out).map_err(LayerError::Write)?;
    let tar_hash = HashingWriter::new(comp);
    let mut tar = TarWriter::new(ProgressWriter { inner: tar_hash, report: progress, written: 0, last: 0 });
    write_entries(tree, settings.epoch, &mut tar)?;
    let pw = tar.finish().map_err(LayerError::Write)?;
    let (comp, diff_id, tar_size) = pw.inner.finish();
    let out = comp.finish().map_err(LayerError::Write)?;
    let (buf, digest, size) = out.finish();
    buf.into_inner().map_err(|e| LayerError::Write(e.into_error()))?;
    store.commit(tmp, &digest)?;
    Ok(LayerBlob { digest, diff_id, size, tar_size, media_type: settings.compression.layer_media_type().to_string() })
}

struct ProgressWriter<'a, W> {
    inner: W,
    report: &'a dyn Fn(u64),
    written: u64,
    last: u64,
}

impl<W: io::Write> io::Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.last >= 4 << 20 {
            self.last = self.written;
            (self.report)(self.written);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the tar entries of `tree` (without the end marker).
///
/// Hard links: of all paths that share one file, the first in layer order
/// carries the bytes and the others link to it, so a link never precedes
/// its target in the stream.
pub fn write_entries<W: io::Write>(tree: &Tree, epoch: u64, tar: &mut TarWriter<W>) -> Result<(), LayerError> {
    // target -> first path in order among the target and its links
    let mut first_of: BTreeMap<&TreePath, &TreePath> = BTreeMap::new();
    for (p, e) in tree.iter() {
        if let Kind::Hardlink { target } = &e.kind {
            let cur = first_of.entry(target).or_insert(target);
            if p < *cur {
                *cur = p;
            }
        }
    }
    let mut holder_of: BTreeMap<&TreePath, &TreePath> = BTreeMap::new(); // link path -> target
    for (p, e) in tree.iter() {
        if let Kind::Hardlink { target } = &e.kind {
            holder_of.insert(p, target);
        }
    }
    for (path, e) in tree.iter() {
        let mtime = e.mtime.unwrap_or(epoch);
        let w = |err| LayerError::Write(err);
        match &e.kind {
            Kind::Dir { .. } => {
                let name = format!("{}/", path.as_str());
                tar.append(&TarHeader { path: &name, kind: TarType::Dir, mode: e.mode, uid: e.uid.into(), gid: e.gid.into(), size: 0, mtime, link: None }, None)
                    .map_err(w)?;
            }
            Kind::Symlink { target } => {
                tar.append(&TarHeader { path: path.as_str(), kind: TarType::Symlink, mode: e.mode, uid: e.uid.into(), gid: e.gid.into(), size: 0, mtime, link: Some(target) }, None)
                    .map_err(w)?;
            }
            Kind::File { .. } | Kind::Hardlink { .. } => {
                // The file that owns the bytes of this group.
                let target: &TreePath = holder_of.get(path).copied().unwrap_or(path);
                let first = first_of.get(target).copied().unwrap_or(target);
                let Some(file) = tree.get(target) else { continue };
                let Kind::File { content, size, .. } = &file.kind else { continue };
                if first == path {
                    let mut r = content.open().map_err(|source| LayerError::Content { path: path.clone(), from: content.describe(), source })?;
                    let fmtime = file.mtime.unwrap_or(epoch);
                    tar.append(
                        &TarHeader { path: path.as_str(), kind: TarType::File, mode: file.mode, uid: file.uid.into(), gid: file.gid.into(), size: *size, mtime: fmtime, link: None },
                        Some(&mut r as &mut dyn Read),
                    )
                    .map_err(|source| LayerError::Content { path: path.clone(), from: content.describe(), source })?;
                } else {
                    tar.append(
                        &TarHeader { path: path.as_str(), kind: TarType::Hardlink, mode: file.mode, uid: file.uid.into(), gid: file.gid.into(), size: 0, mtime, link: Some(first.as_str()) },
                        None,
                    )
                    .map_err(w)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Entry;
    use std::sync::Arc;

    #[test]
    fn hardlink_sorted_before_its_target_gets_the_bytes() {
        let origin: Arc<str> = Arc::from("t");
        let mut t = Tree::new();
        t.insert(TreePath::from_image_path("z/file").unwrap(), Entry::bytes(&b"data"[..], 0o644, &origin)).unwrap();
        t.insert(
            TreePath::from_image_path("a/link").unwrap(),
            Entry { kind: Kind::Hardlink { target: TreePath::from_image_path("z/file").unwrap() }, mode: 0o644, uid: 0, gid: 0, mtime: None, origin },
        )
        .unwrap();
        let mut tar = TarWriter::new(Vec::new());
        write_entries(&t, 0, &mut tar).unwrap();
        let bytes = tar.finish().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let got: Vec<(String, tar::EntryType, Option<String>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().entry_type(), e.link_name().unwrap().map(|l| l.display().to_string()))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/".into(), tar::EntryType::Directory, None),
                ("a/link".into(), tar::EntryType::Regular, None),
                ("z/".into(), tar::EntryType::Directory, None),
                ("z/file".into(), tar::EntryType::Link, Some("a/link".into())),
            ]
        );
    }
}
