//! Pushing: a [`Content`] written to a registry repository. Every blob
//! once (at most `concurrency` at a time), each HEAD-checked, mounted from
//! another repository when one is known to hold it, else uploaded; then
//! manifests bottom-up by digest (an index's children before the index);
//! then the tag; then the artifacts that refer to the image (as referrers).
//! A failure before the tag is written leaves the tag where it was, so a
//! tag never points at a manifest whose blobs are missing.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use tracing::{info, info_span};

use crate::image::{
    short, BlobAction, BlobReport, Content, ImageError, ImageSource, ManifestReport, Sink, WriteReport,
};
use crate::oci::{Descriptor, Reference};
use crate::registry::auth::Scopes;
use crate::registry::client::Registry;
use crate::registry::error::RegistryError;
use crate::registry::memory::BlobMemory;
use crate::registry::ops::{pump, receiver_stream, BlobSource, BlobStream, Problem, Upload};
use crate::registry::Client;
use crate::report::{human_bytes, task_id, TaskKind};

/// Push settings beyond the client's.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// A repository of the same registry to mount blobs from (`--from`).
    /// Without it, repositories remembered from earlier pushes and pulls are tried.
    pub mount_from: Option<String>,
}

/// What a push did.
pub type PushSummary = WriteReport;

/// Streams a blob of an [`ImageSource`] from a scoped reader thread.
struct ScopedBlob<'s, 'e> {
    scope: &'s std::thread::Scope<'s, 'e>,
    src: &'e dyn ImageSource,
    descriptor: &'e Descriptor,
}

impl BlobSource for ScopedBlob<'_, '_> {
    fn open(&self, problem: &Problem) -> BlobStream {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (src, d, problem) = (self.src, self.descriptor, problem.clone());
        self.scope.spawn(move || pump(|| src.open_blob(d), d.digest, d.size, src.describe(), problem, tx));
        receiver_stream(rx)
    }
}

/// A registry repository as a [`Sink`].
pub struct RegistrySink<'c> {
    client: &'c Client,
    dest: Reference,
    opts: PushOptions,
}

impl<'c> RegistrySink<'c> {
    /// Writes to `dest` (tag, else `latest`; a digest in `dest` must match what is written).
    pub fn new(client: &'c Client, dest: Reference, opts: PushOptions) -> RegistrySink<'c> {
        RegistrySink { client, dest, opts }
    }
}

impl Sink for RegistrySink<'_> {
    fn describe(&self) -> String {
        format!("docker://{}", self.dest)
    }

    fn write(&self, content: &Content<'_>) -> Result<WriteReport, ImageError> {
        self.client.push(content, &self.dest, &self.opts).map_err(|e| ImageError::Registry(Box::new(e)))
    }
}

impl Client {
    /// Pushes `content` to `dest` (tag, else `latest`; a digest in `dest`
    /// must match). Prints nothing; progress goes to the reporter.
    pub fn push(
        &self,
        content: &Content<'_>,
        dest: &Reference,
        opts: &PushOptions,
    ) -> Result<PushSummary, RegistryError> {
        let started = Instant::now();
        let src = content.source;
        if !src.stores_manifests() {
            return Err(RegistryError::Invalid(format!(
                "{}: this source has no manifest of its own (docker-archive); pushing it would need a new one\nhint: build or copy to oci:DIR or oci-archive:FILE first",
                src.describe()
            )));
        }
        if let Some(d) = dest.digest {
            if d != content.root.digest {
                return Err(RegistryError::Invalid(format!(
                    "{dest}: the reference names digest {d}, but {} holds {}",
                    src.describe(),
                    content.root.digest
                )));
            }
        }
        let reg = self.registry(dest)?;
        let memory = BlobMemory::open(self.opts.memory.clone());
        let _span = info_span!("push", to = %dest).entered();
        let summary =
            std::thread::scope(|scope| self.rt.block_on(self.push_async(scope, &reg, content, dest, opts, &memory)))?;
        memory.record(&reg.host, &dest.repository, content.blobs.iter().map(|b| b.descriptor.digest));
        Ok(PushSummary { seconds: started.elapsed().as_secs_f64(), ..summary })
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_async<'s, 'e>(
        &self,
        scope: &'s std::thread::Scope<'s, 'e>,
        reg: &Arc<Registry>,
        content: &'e Content<'e>,
        dest: &Reference,
        opts: &PushOptions,
        memory: &BlobMemory,
    ) -> Result<PushSummary, RegistryError> {
        let src = content.source;
        let root = &content.root;
        let repo = dest.repository.as_str();
        let scopes = Scopes::push(repo);
        let mount_from = opts.mount_from.clone().filter(|f| f != repo);
        let reports: Vec<BlobReport> = futures_util::stream::iter(content.blobs.iter().map(|item| {
            let source = ScopedBlob { scope, src, descriptor: &item.descriptor };
            let b = &item.descriptor;
            let mount = mount_from.clone().or_else(|| memory.source_for(&reg.host, &b.digest, repo));
            let scopes = &scopes;
            async move {
                let mk = |action, bytes_sent, mounted_from, attempts| BlobReport {
                    digest: b.digest,
                    size: b.size,
                    media_type: b.media_type.clone(),
                    action,
                    bytes_sent,
                    mounted_from,
                    attempts,
                };
                if reg.head_blob(repo, &b.digest, scopes).await?.is_some() {
                    self.reporter.info(&format!("{:>6} {} — already in {}/{repo}", "skip", item.label, reg.host));
                    return Ok::<_, RegistryError>(mk(BlobAction::Skipped, 0, None, 1));
                }
                let task = task_id();
                self.reporter.start(task, TaskKind::Upload, &item.label, Some(b.size));
                let up = Upload { repo, digest: b.digest, size: b.size, source: &source, mount_from: mount, task, checked: true };
                match reg.upload(&up).await {
                    Ok(r) => {
                        let how = match r.action {
                            BlobAction::Uploaded => format!("uploaded {}", human_bytes(b.size)),
                            BlobAction::Mounted => format!("mounted from {}", r.mounted_from.as_deref().unwrap_or("?")),
                            BlobAction::Skipped | BlobAction::Written => "already there".to_string(),
                        };
                        self.reporter.finish(task, &how);
                        info!(blob = %b.digest, action = ?r.action, bytes = r.bytes_sent, attempts = r.attempts, "blob done");
                        Ok(mk(r.action, r.bytes_sent, r.mounted_from, r.attempts))
                    }
                    Err(e) => {
                        self.reporter.finish(task, "failed");
                        Err(e)
                    }
                }
            }
        }))
        .buffered(self.opts.concurrency.max(1))
        .try_collect()
        .await?;

        let mut manifests = Vec::new();
        for m in &content.manifests {
            reg.put_manifest(repo, &m.digest.to_string(), &m.bytes, &m.media_type).await?;
            manifests.push(ManifestReport {
                digest: m.digest,
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
            });
        }
        let tag = dest.tag_or_default();
        if let Some(t) = &tag {
            reg.put_manifest(repo, t, &root.bytes, &root.media_type).await?;
        }
        let mut referrers = Vec::new();
        for r in &content.referrers {
            let out = crate::registry::put_referrer(reg, repo, &r.manifest).await?;
            self.reporter.info(&format!(
                "{:>6} {} {} — {}",
                "push",
                "referrer",
                short(&r.manifest.digest),
                match &out.fallback_tag {
                    Some(t) => format!("listed under tag {t} (the registry has no referrers API)"),
                    None => "indexed by the registry".to_string(),
                }
            ));
            referrers.push(out);
        }
        let bytes_sent = reports.iter().map(|r| r.bytes_sent).sum();
        let shown = match &tag {
            Some(t) => format!("{}/{repo}:{t}", dest.registry),
            None => format!("{}/{repo}@{}", dest.registry, root.digest),
        };
        Ok(PushSummary {
            reference: shown,
            digest: root.digest,
            media_type: root.media_type.clone(),
            tag,
            blobs: reports,
            manifests,
            referrers,
            bytes_sent,
            seconds: 0.0,
        })
    }
}
