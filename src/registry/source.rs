//! `docker://REF` as an [`ImageSource`], so `inspect`, `diff` and `audit`
//! read registries through the same trait as layouts and archives. Blobs
//! stream through a small bounded channel and are checked against their
//! digest when the reader reaches the end.

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::digest::{Digest, Hasher};
use crate::image::read::{ImageSource, ManifestRef, ReadError};
use crate::registry::client::{error_chain, short, Registry};
use crate::registry::ops::Fetched;
use crate::registry::pull::{is_index, select_platform};
use crate::registry::reference::Reference;

/// An image in a registry.
pub struct RemoteImage {
    rt: Arc<tokio::runtime::Runtime>,
    reg: Arc<Registry>,
    reference: Reference,
    root: Fetched,
    platform: (String, String),
    resolved: OnceLock<ManifestRef>,
}

fn manifest_ref(f: &Fetched) -> ManifestRef {
    ManifestRef { bytes: f.bytes.to_vec(), digest: f.digest, media_type: f.media_type.clone(), native: true }
}

impl RemoteImage {
    pub(crate) fn new(
        rt: Arc<tokio::runtime::Runtime>,
        reg: Arc<Registry>,
        reference: Reference,
        root: Fetched,
        platform: (String, String),
    ) -> RemoteImage {
        RemoteImage { rt, reg, reference, root, platform, resolved: OnceLock::new() }
    }

    /// True when the root index lists `d`.
    fn lists(&self, d: &Digest) -> bool {
        let want = d.to_string();
        serde_json::from_slice::<serde_json::Value>(&self.root.bytes)
            .ok()
            .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
            .is_some_and(|list| list.iter().any(|m| m.get("digest").and_then(|x| x.as_str()) == Some(want.as_str())))
    }

    /// The reference it was opened with.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

impl ImageSource for RemoteImage {
    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn root(&self) -> Result<ManifestRef, ReadError> {
        Ok(manifest_ref(&self.root))
    }

    fn manifest(&self) -> Result<ManifestRef, ReadError> {
        if let Some(m) = self.resolved.get() {
            return Ok(m.clone());
        }
        let m = if is_index(&self.root.media_type) {
            let what = self.describe();
            let (d, _) = select_platform(&self.root.bytes, &self.platform.0, &self.platform.1, &what)
                .map_err(|e| ReadError::Invalid(e.to_string()))?;
            let f = self
                .rt
                .block_on(self.reg.get_manifest(&self.reference.repository, &d.to_string()))
                .map_err(|e| ReadError::Invalid(e.to_string()))?;
            manifest_ref(&f)
        } else {
            manifest_ref(&self.root)
        };
        let _ = self.resolved.set(m.clone());
        Ok(m)
    }

    fn sbom(&self) -> Result<Option<Vec<u8>>, ReadError> {
        let m = self.manifest()?;
        let repo = &self.reference.repository;
        let err = |e: crate::registry::RegistryError| ReadError::Invalid(e.to_string());
        let referrers = self.rt.block_on(crate::registry::list_referrers(&self.reg, repo, &m.digest)).map_err(err)?;
        let Some(d) = referrers.iter().find(|d| d.artifact_type.as_deref() == Some(crate::sbom::SPDX_MEDIA_TYPE))
        else {
            return Ok(None);
        };
        let f = self.rt.block_on(self.reg.get_manifest(repo, &d.digest.to_string())).map_err(err)?;
        let v: serde_json::Value = serde_json::from_slice(&f.bytes)
            .map_err(|e| ReadError::Invalid(format!("SBOM manifest {}: {e}", d.digest)))?;
        let layer = v
            .pointer("/layers/0/digest")
            .and_then(|x| x.as_str())
            .and_then(|x| Digest::parse(x).ok())
            .ok_or_else(|| ReadError::Invalid(format!("SBOM manifest {} has no document layer", d.digest)))?;
        Ok(Some(self.blob_bytes(&layer)?))
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ReadError> {
        // Manifests are addressable as blobs in layouts; do the same here.
        if *digest == self.root.digest {
            return Ok(Box::new(io::Cursor::new(self.root.bytes.to_vec())));
        }
        // An index's children are manifests: registries serve them from the
        // manifests endpoint, not always from blobs.
        if is_index(&self.root.media_type) && self.lists(digest) {
            let f = self
                .rt
                .block_on(self.reg.get_manifest(&self.reference.repository, &digest.to_string()))
                .map_err(|e| ReadError::Invalid(e.to_string()))?;
            return Ok(Box::new(io::Cursor::new(f.bytes.to_vec())));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
        let reg = self.reg.clone();
        let repo = self.reference.repository.clone();
        let d = *digest;
        self.rt.spawn(async move {
            let op = format!("reading {} from {}/{repo}", short(&d), reg.host);
            let resp = reg.retry(&op, || reg.get_blob(&repo, &d, &op)).await;
            let mut resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if tx.send(Ok(c)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx
                            .send(Err(io::Error::other(format!("{op}: the connection broke: {}", error_chain(&e)))))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
            hasher: Some(Hasher::new()),
            digest: d,
            shown: self.describe(),
        }))
    }
}

/// Reads what a task sends; at the end, checks the digest.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>>,
    cur: Bytes,
    hasher: Option<Hasher>,
    digest: Digest,
    shown: String,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&b);
                    }
                    self.cur = b;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    if let Some(h) = self.hasher.take() {
                        let (found, _) = h.finish();
                        if found != self.digest {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "{}: blob {} arrived corrupt (its bytes hash to {found})",
                                    self.shown, self.digest
                                ),
                            ));
                        }
                    }
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}
