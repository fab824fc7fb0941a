//! A registry repository as an [`ImageSource`]: the manifest (or index) a
//! reference names, the manifests under it, blobs, and referrers. Blobs
//! stream through a small bounded channel; a connection that breaks midway
//! is resumed by asking again and skipping what was already delivered, and
//! the digest is checked when the reader reaches the end.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::digest::{Digest, Hasher};
use crate::image::{BlobReader, ImageError, ImageSource};
use crate::net::{transport_message, SpeedGuard};
use crate::oci::{Descriptor, RawManifest, Reference};
use crate::registry::client::Registry;
use crate::registry::error::{Fail, RegistryError};
use crate::registry::memory::BlobMemory;

/// What to do when a download breaks, stalls or crawls.
const SLOW_HINT: &str = "check the network; strata retries broken and stalled downloads (STRATA_NET_IDLE_TIMEOUT, STRATA_NET_MIN_SPEED and STRATA_NET_DEADLINE set how long it waits)";

fn image_error(e: RegistryError) -> ImageError {
    ImageError::Registry(Box::new(e))
}

/// A repository of a registry, rooted at what a reference names.
pub struct RemoteSource {
    rt: Arc<tokio::runtime::Runtime>,
    reg: Arc<Registry>,
    reference: Reference,
    root: RawManifest,
    memory: Arc<BlobMemory>,
}

impl RemoteSource {
    pub(crate) fn new(
        rt: Arc<tokio::runtime::Runtime>,
        reg: Arc<Registry>,
        reference: Reference,
        root: RawManifest,
        memory: Arc<BlobMemory>,
    ) -> RemoteSource {
        RemoteSource { rt, reg, reference, root, memory }
    }

    /// The reference it was opened with.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The root manifest (or index) as fetched.
    pub fn root_manifest(&self) -> &RawManifest {
        &self.root
    }
}

impl ImageSource for RemoteSource {
    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn root(&self) -> Result<Descriptor, ImageError> {
        Ok(self.root.descriptor())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, ImageError> {
        if d.digest == self.root.digest {
            return Ok(self.root.clone());
        }
        // Registries serve an index's children from the manifests endpoint.
        self.rt.block_on(self.reg.get_manifest(&self.reference.repository, &d.digest.to_string())).map_err(image_error)
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, ImageError> {
        if d.digest == self.root.digest {
            return Ok(Box::new(io::Cursor::new(self.root.bytes.clone())));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
        let reg = self.reg.clone();
        let repo = self.reference.repository.clone();
        let digest = d.digest;
        self.rt.spawn(async move {
            let op = format!("reading {} from {}/{repo}", crate::image::short(&digest), reg.host);
            let delivered = AtomicU64::new(0);
            let r = reg
                .retry(&op, || {
                    let (reg, repo, op, tx, delivered) = (&reg, &repo, &op, &tx, &delivered);
                    async move {
                        let mut resp = reg.get_blob(repo, &digest, op).await?;
                        // Bytes the reader already has are skipped on a retry.
                        let mut skip = delivered.load(Ordering::Relaxed);
                        let mut speed = SpeedGuard::new(&reg.opts.net.timeouts);
                        loop {
                            match resp.chunk().await {
                                Ok(Some(mut c)) => {
                                    // A server that drip-feeds resets the idle timeout forever.
                                    speed.update(c.len() as u64).map_err(|m| {
                                        Fail::Retry(
                                            RegistryError::Network {
                                                operation: op.clone(),
                                                message: m.to_string(),
                                                attempts: 1,
                                                hint: SLOW_HINT.into(),
                                            },
                                            None,
                                        )
                                    })?;
                                    if skip > 0 {
                                        let n = skip.min(c.len() as u64);
                                        skip -= n;
                                        let _ = c.split_to(n as usize);
                                        if c.is_empty() {
                                            continue;
                                        }
                                    }
                                    let len = c.len() as u64;
                                    if tx.send(Ok(c)).await.is_err() {
                                        return Ok(()); // the reader went away
                                    }
                                    delivered.fetch_add(len, Ordering::Relaxed);
                                }
                                Ok(None) => return Ok(()),
                                Err(e) => {
                                    return Err(Fail::Retry(
                                        RegistryError::Network {
                                            operation: op.clone(),
                                            message: format!(
                                                "the connection broke after {} bytes: {}",
                                                delivered.load(Ordering::Relaxed),
                                                transport_message(&e, &reg.opts.net.timeouts)
                                            ),
                                            attempts: 1,
                                            hint: SLOW_HINT.into(),
                                        },
                                        None,
                                    ))
                                }
                            }
                        }
                    }
                })
                .await;
            if let Err(e) = r {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
            hasher: Some(Hasher::new()),
            digest,
            shown: self.describe(),
            on_verified: Some(Box::new({
                let (memory, host, repo) =
                    (self.memory.clone(), self.reg.host.clone(), self.reference.repository.clone());
                move |d: Digest| memory.record(&host, &repo, [d])
            })),
        }))
    }

    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>, ImageError> {
        self.rt
            .block_on(crate::registry::list_referrers(&self.reg, &self.reference.repository, &subject.digest))
            .map_err(image_error)
    }
}

/// Reads what a task sends; at the end, checks the digest.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>>,
    cur: Bytes,
    hasher: Option<Hasher>,
    digest: Digest,
    shown: String,
    on_verified: Option<Box<dyn FnOnce(Digest) + Send>>,
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
                        if let Some(f) = self.on_verified.take() {
                            f(found);
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
