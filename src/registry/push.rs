//! Pushing an image: every blob once (at most `concurrency` at a time), each
//! HEAD-checked, mounted from another repository when one is known to hold
//! it, else uploaded; then manifests bottom-up by digest (an index's
//! children before the index); then the tag. A failure before the tag is
//! written leaves the tag where it was, so a tag never points at a manifest
//! whose blobs are missing.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, info_span};

use crate::digest::Digest;
use crate::image::read::{ImageSource, ManifestRef};
use crate::registry::auth::Scopes;
use crate::registry::client::{short, Registry};
use crate::registry::error::RegistryError;
use crate::registry::memory::BlobMemory;
use crate::registry::ops::{pump, receiver_stream, BlobAction, BlobSource, BlobStream, Problem, Upload};
use crate::registry::reference::Reference;
use crate::report::{human_bytes, task_id, TaskKind};

/// Push settings beyond the client's.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// A repository of the same registry to mount blobs from (`--from`).
    /// Without it, repositories remembered from earlier pushes and pulls are tried.
    pub mount_from: Option<String>,
}

/// One blob of a push, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct BlobReport {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type from the manifest.
    pub media_type: String,
    /// `uploaded`, `mounted` or `skipped`.
    pub action: BlobAction,
    /// Bytes sent, all attempts together (0 for mounted and skipped blobs).
    pub bytes_sent: u64,
    /// The repository it was mounted from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_from: Option<String>,
    /// Attempts needed.
    pub attempts: u32,
}

/// One manifest of a push.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestReport {
    /// Digest.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct PushSummary {
    /// Where it went (`host/repo:tag`).
    pub reference: String,
    /// The pushed manifest (or index) digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The tag written, if any.
    pub tag: Option<String>,
    /// Every blob, in manifest order.
    pub blobs: Vec<BlobReport>,
    /// Every manifest, children first.
    pub manifests: Vec<ManifestReport>,
    /// Artifacts stored with the image (its SBOM) pushed as referrers.
    pub referrers: Vec<crate::registry::ReferrerOutcome>,
    /// Blob bytes sent in total.
    pub bytes_sent: u64,
    /// Wall time.
    pub seconds: f64,
}

struct PlannedBlob {
    digest: Digest,
    size: u64,
    media_type: String,
    label: String,
}

struct PlannedManifest {
    digest: Digest,
    bytes: Bytes,
    media_type: String,
}

/// Everything to send, found by walking the root manifest.
struct Plan {
    blobs: Vec<PlannedBlob>,
    manifests: Vec<PlannedManifest>,
    /// Artifact manifests referring to a pushed manifest (sent after the tag).
    referrers: Vec<PlannedManifest>,
}

fn desc(v: &Value, what: &str) -> Result<(Digest, u64, String), RegistryError> {
    let d = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| RegistryError::Invalid(format!("{what}: descriptor without a digest")))?;
    let d = Digest::parse(d).map_err(|_| {
        RegistryError::Invalid(format!("{what}: `{d}` is not a sha256 digest (only sha256 is supported)"))
    })?;
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| RegistryError::Invalid(format!("{what}: descriptor {d} without a size")))?;
    let mt = v.get("mediaType").and_then(Value::as_str).unwrap_or("application/octet-stream").to_string();
    Ok((d, size, mt))
}

fn plan(src: &dyn ImageSource, root: &ManifestRef) -> Result<Plan, RegistryError> {
    let mut p = Plan { blobs: Vec::new(), manifests: Vec::new(), referrers: Vec::new() };
    let mut seen_blobs = BTreeSet::new();
    let mut seen_manifests = BTreeSet::new();
    walk(
        src,
        Bytes::from(root.bytes.clone()),
        root.digest,
        root.media_type.clone(),
        &mut p,
        &mut seen_blobs,
        &mut seen_manifests,
        0,
    )?;
    let pushed: BTreeSet<Digest> = p.manifests.iter().map(|m| m.digest).collect();
    for d in src.attachments()? {
        let bytes = Bytes::from(src.blob_bytes(&d)?);
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::Invalid(format!("{}: artifact manifest {d} is not JSON: {e}", src.describe()))
        })?;
        let subject = v.pointer("/subject/digest").and_then(Value::as_str).and_then(|s| Digest::parse(s).ok());
        if !subject.is_some_and(|s| pushed.contains(&s)) {
            continue; // refers to something else: not ours to push
        }
        let media_type =
            v.get("mediaType").and_then(Value::as_str).unwrap_or(crate::image::MANIFEST_MEDIA_TYPE).to_string();
        // Its blobs go with the image's (each digest once).
        let (n, b) = (p.manifests.len(), p.blobs.len());
        walk(src, bytes.clone(), d, media_type.clone(), &mut p, &mut seen_blobs, &mut seen_manifests, 0)?;
        p.manifests.truncate(n);
        for blob in &mut p.blobs[b..] {
            blob.label = format!("referrer {}", blob.label);
        }
        p.referrers.push(PlannedManifest { digest: d, bytes, media_type });
    }
    Ok(p)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    src: &dyn ImageSource,
    bytes: Bytes,
    digest: Digest,
    media_type: String,
    p: &mut Plan,
    seen_blobs: &mut BTreeSet<Digest>,
    seen_manifests: &mut BTreeSet<Digest>,
    depth: usize,
) -> Result<(), RegistryError> {
    if depth > 4 {
        return Err(RegistryError::Invalid(format!("{}: image indexes nest too deeply", src.describe())));
    }
    if !seen_manifests.insert(digest) {
        return Ok(());
    }
    let what = format!("{}: manifest {digest}", src.describe());
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid(format!("{what} is not JSON: {e}")))?;
    if let Some(list) = v.get("manifests").and_then(Value::as_array) {
        for m in list {
            let (d, _, mt) = desc(m, &what)?;
            let child = src.blob_bytes(&d)?;
            walk(src, Bytes::from(child), d, mt, p, seen_blobs, seen_manifests, depth + 1)?;
        }
    } else {
        let config = v
            .get("config")
            .ok_or_else(|| RegistryError::Invalid(format!("{what} has neither `config` nor `manifests`")))?;
        let layers = v.get("layers").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut add = |val: &Value, label: String| -> Result<(), RegistryError> {
            let (d, size, mt) = desc(val, &what)?;
            if seen_blobs.insert(d) {
                p.blobs.push(PlannedBlob { digest: d, size, media_type: mt, label: format!("{label} {}", short(&d)) });
            }
            Ok(())
        };
        add(config, "config".into())?;
        let n = layers.len();
        for (i, l) in layers.iter().enumerate() {
            add(l, format!("layer {}/{n}", i + 1))?;
        }
    }
    p.manifests.push(PlannedManifest { digest, bytes, media_type });
    Ok(())
}

/// Streams a blob of an [`ImageSource`] from a scoped reader thread.
struct ScopedBlob<'s, 'e> {
    scope: &'s std::thread::Scope<'s, 'e>,
    src: &'e dyn ImageSource,
    digest: Digest,
    size: u64,
}

impl BlobSource for ScopedBlob<'_, '_> {
    fn open(&self, problem: &Problem) -> BlobStream {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (src, digest, size, problem) = (self.src, self.digest, self.size, problem.clone());
        self.scope.spawn(move || {
            pump(|| src.open_blob(&digest).map_err(|e| e.to_string()), digest, size, src.describe(), problem, tx)
        });
        receiver_stream(rx)
    }
}

impl crate::registry::Client {
    /// Pushes the image `src` holds to `dest` (tag, else `latest`; a digest
    /// in `dest` must match). Prints nothing; progress goes to the reporter.
    pub fn push(
        &self,
        src: &dyn ImageSource,
        dest: &Reference,
        opts: &PushOptions,
    ) -> Result<PushSummary, RegistryError> {
        let started = Instant::now();
        let root = src.root()?;
        if !root.native {
            return Err(RegistryError::Invalid(format!(
                "{}: this source has no manifest of its own (docker-archive); pushing it would need a new one\nhint: build or copy to oci:DIR or oci-archive:FILE first",
                src.describe()
            )));
        }
        if let Some(d) = dest.digest {
            if d != root.digest {
                return Err(RegistryError::Invalid(format!(
                    "{dest}: the reference names digest {d}, but {} holds {}",
                    src.describe(),
                    root.digest
                )));
            }
        }
        let plan = plan(src, &root)?;
        let reg = self.registry(dest)?;
        let memory = BlobMemory::open(self.opts.memory.clone());
        let _span = info_span!("push", to = %dest).entered();
        let summary = std::thread::scope(|scope| {
            self.rt.block_on(self.push_async(scope, &reg, src, dest, &plan, &root, opts, &memory))
        })?;
        memory.record(&reg.host, &dest.repository, plan.blobs.iter().map(|b| b.digest));
        Ok(PushSummary { seconds: started.elapsed().as_secs_f64(), ..summary })
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_async<'s, 'e>(
        &self,
        scope: &'s std::thread::Scope<'s, 'e>,
        reg: &Registry,
        src: &'e dyn ImageSource,
        dest: &Reference,
        plan: &Plan,
        root: &ManifestRef,
        opts: &PushOptions,
        memory: &BlobMemory,
    ) -> Result<PushSummary, RegistryError> {
        let repo = dest.repository.as_str();
        let scopes = Scopes::push(repo);
        let mount_from = opts.mount_from.clone().filter(|f| f != repo);
        let reports: Vec<BlobReport> = futures_util::stream::iter(plan.blobs.iter().map(|b| {
            let source = ScopedBlob { scope, src, digest: b.digest, size: b.size };
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
                    self.reporter.info(&format!("{:>6} {} — already in {}/{repo}", "skip", b.label, reg.host));
                    return Ok::<_, RegistryError>(mk(BlobAction::Skipped, 0, None, 1));
                }
                let task = task_id();
                self.reporter.start(task, TaskKind::Upload, &b.label, Some(b.size));
                let up = Upload { repo, digest: b.digest, size: b.size, source: &source, mount_from: mount, task, checked: true };
                match reg.upload(&up).await {
                    Ok(r) => {
                        let how = match r.action {
                            BlobAction::Uploaded => format!("uploaded {}", human_bytes(b.size)),
                            BlobAction::Mounted => format!("mounted from {}", r.mounted_from.as_deref().unwrap_or("?")),
                            BlobAction::Skipped => "already there".to_string(),
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
        for m in &plan.manifests {
            reg.put_manifest(repo, &m.digest.to_string(), &m.bytes, &m.media_type).await?;
            manifests.push(ManifestReport {
                digest: m.digest,
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
            });
        }
        let tag = dest.tag_or_default();
        if let Some(t) = &tag {
            reg.put_manifest(repo, t, &Bytes::from(root.bytes.clone()), &root.media_type).await?;
        }
        let mut referrers = Vec::new();
        for r in &plan.referrers {
            let out = crate::registry::put_referrer(reg, repo, &r.bytes, &r.media_type).await?;
            self.reporter.info(&format!(
                "{:>6} {} {} — {}",
                "push",
                "referrer",
                short(&r.digest),
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
