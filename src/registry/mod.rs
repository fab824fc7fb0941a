//! A thin OCI distribution client on `reqwest`: push, pull, inspect and the
//! referrers API, with docker/podman credentials, bearer tokens, retries
//! and bounded concurrency. See docs/registry.md for behaviour in detail.
//!
//! * [`creds`] — where credentials come from (flags, env, auth files, helpers).
//! * [`auth`] — challenges, scopes, the token cache.
//! * `client` — one registry over HTTP: scheme, auth, redirects, retries.
//! * `ops` — blob and manifest operations, uploads.
//! * [`push`] — a [`Content`](crate::image::Content) written to a repository (the registry [`Sink`](crate::image::Sink)).
//! * [`source`] — a repository read as an [`ImageSource`](crate::image::ImageSource).
//!
//! Library code never prints: progress and warnings go to a
//! [`Reporter`](crate::report::Reporter), errors carry the registry,
//! repository and a hint, and secrets are never part of any message.

pub mod auth;
pub(crate) mod client;
pub mod creds;
pub mod error;
pub(crate) mod memory;
pub(crate) mod ops;
pub mod push;
pub mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tracing::debug;

pub use crate::image::{BlobAction, BlobReport, ReferrerOutcome};
pub use crate::oci::{Descriptor, Reference};
pub use client::{http_allowed, is_loopback};
pub use creds::{Credential, CredentialOptions};
pub use error::RegistryError;
pub use push::{PushOptions, PushSummary, RegistrySink};
pub use source::RemoteSource;

use crate::digest::Digest;
use crate::net::{ClientKind, Net, NetOptions, RetryPolicy};
use crate::oci::{media, Index, RawManifest};
use crate::report::{NullReporter, Reporter};
use client::Registry;
use ops::{BlobSource, BytesBlob, FileBlob, Upload};

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Where credentials come from.
    pub credentials: CredentialOptions,
    /// CA files, proxy, timeouts.
    pub net: NetOptions,
    /// Hosts (`host` or `host:port`) that may use plain HTTP or certificates
    /// that do not verify. Loopback hosts may always use HTTP.
    pub insecure_registries: Vec<String>,
    /// Extra attempts after the first on connection errors, 408, 429 and 5xx.
    pub retries: u32,
    /// First backoff delay; doubles each retry (with jitter), at most a minute.
    pub backoff: Duration,
    /// Blobs in flight at once.
    pub concurrency: usize,
    /// Upload in chunks of this size (raised to the registry's
    /// `OCI-Chunk-Min-Length`); `None` = one streamed PUT per blob.
    pub chunk_size: Option<u64>,
    /// The file that remembers which repositories hold which blobs (mount
    /// sources); `None` = do not remember.
    pub memory: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: CredentialOptions::default(),
            net: NetOptions::default(),
            insecure_registries: Vec::new(),
            retries: 5,
            backoff: Duration::from_millis(500),
            concurrency: 4,
            chunk_size: None,
            memory: None,
        }
    }
}

impl ClientOptions {
    /// The memory file under a cache root.
    pub fn memory_in(cache: &Path) -> PathBuf {
        cache.join("registry/blob-locations.json")
    }

    /// The retry policy: `retries` extra attempts, `backoff` doubling.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy { retries: self.retries, backoff: self.backoff, ..RetryPolicy::default() }
    }
}

pub use crate::units::parse_size;

/// A registry client: a small async runtime and the registries it talked to.
pub struct Client {
    rt: Arc<tokio::runtime::Runtime>,
    net: Net,
    opts: Arc<ClientOptions>,
    reporter: Arc<dyn Reporter>,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
}

impl Client {
    /// A client; `reporter` receives progress and warnings.
    pub fn new(opts: ClientOptions, reporter: Arc<dyn Reporter>) -> Result<Client, RegistryError> {
        Client::with_net(Net::new(opts.net.clone())?, opts, reporter)
    }

    /// A client on an existing network layer.
    pub fn with_net(net: Net, opts: ClientOptions, reporter: Arc<dyn Reporter>) -> Result<Client, RegistryError> {
        Ok(Client {
            rt: net.runtime().clone(),
            net,
            opts: Arc::new(opts),
            reporter,
            registries: Mutex::new(HashMap::new()),
        })
    }

    /// A client that reports nothing, with options from the environment
    /// (credentials from env and auth files).
    pub fn from_env() -> Result<Client, RegistryError> {
        Client::new(ClientOptions::default(), Arc::new(NullReporter))
    }

    /// The registry of a reference (credentials are looked up on first use).
    fn registry(&self, r: &Reference) -> Result<Arc<Registry>, RegistryError> {
        let mut map = self.registries.lock().map_err(|_| RegistryError::Invalid("registry table poisoned".into()))?;
        if let Some(reg) = map.get(&r.registry) {
            return Ok(reg.clone());
        }
        let lookup = creds::lookup(&r.registry, &r.repository, &self.opts.credentials)?;
        match &lookup.credential {
            Some(c) => debug!(registry = %r.registry, "credentials: {}", c.describe()),
            None => debug!(registry = %r.registry, searched = %lookup.searched.join(", "), "no credentials; anonymous"),
        }
        // Only hosts named as insecure skip certificate checks; loopback merely may use HTTP.
        let insecure = client::named_insecure(&r.registry, &self.opts.insecure_registries);
        let http = self.net.http(ClientKind { redirects: false, insecure })?.clone();
        let reg = Arc::new(Registry::new(&r.registry, http, lookup, self.opts.clone(), self.reporter.clone()));
        map.insert(r.registry.clone(), reg.clone());
        Ok(reg)
    }

    /// Opens the repository of `r` as an image source rooted at the
    /// manifest (or index) `r` names.
    pub fn open(&self, r: &Reference) -> Result<RemoteSource, RegistryError> {
        let reg = self.registry(r)?;
        let root = self.rt.block_on(reg.get_manifest(&r.repository, &r.manifest_reference()))?;
        let memory = Arc::new(memory::BlobMemory::open(self.opts.memory.clone()));
        Ok(RemoteSource::new(self.rt.clone(), reg, r.clone(), root, memory))
    }

    /// The manifest (or index) `r` names: bytes, media type and digest.
    pub fn get_manifest(&self, r: &Reference) -> Result<RawManifest, RegistryError> {
        let reg = self.registry(r)?;
        self.rt.block_on(reg.get_manifest(&r.repository, &r.manifest_reference()))
    }

    /// The tags of the repository of `r` (every page), at most `max` (more
    /// is an error); a repository the registry does not know has none.
    pub fn list_tags(&self, r: &Reference, max: usize) -> Result<Vec<String>, RegistryError> {
        let reg = self.registry(r)?;
        self.rt.block_on(reg.list_tags(&r.repository, max))
    }

    /// True when the repository of `r` has the blob.
    pub fn blob_exists(&self, r: &Reference, d: &Digest) -> Result<bool, RegistryError> {
        let reg = self.registry(r)?;
        Ok(self.rt.block_on(reg.head_blob(&r.repository, d, &auth::Scopes::pull(&r.repository)))?.is_some())
    }

    /// The size of the blob in the repository of `r`, when it has it.
    pub fn blob_size(&self, r: &Reference, d: &Digest) -> Result<Option<u64>, RegistryError> {
        let reg = self.registry(r)?;
        self.rt.block_on(reg.head_blob(&r.repository, d, &auth::Scopes::pull(&r.repository)))
    }

    /// Remembers that the repository of `r` holds `digests`, so a later push
    /// to another repository of the same registry mounts them from it.
    pub fn remember_blobs(&self, r: &Reference, digests: impl IntoIterator<Item = Digest>) {
        let memory = memory::BlobMemory::open(self.opts.memory.clone());
        memory.record(&r.registry, &r.repository, digests);
    }

    /// The network layer this client uses.
    pub fn net(&self) -> &Net {
        &self.net
    }

    fn push_blob_source(
        &self,
        r: &Reference,
        d: Digest,
        size: u64,
        media_type: &str,
        src: &dyn BlobSource,
    ) -> Result<BlobReport, RegistryError> {
        let reg = self.registry(r)?;
        let task = crate::report::task_id();
        let up = Upload { repo: &r.repository, digest: d, size, source: src, mount_from: None, task, checked: false };
        let res = self.rt.block_on(reg.upload(&up))?;
        Ok(BlobReport {
            digest: d,
            size,
            media_type: media_type.into(),
            action: res.action,
            bytes_sent: res.bytes_sent,
            mounted_from: res.mounted_from,
            attempts: res.attempts,
        })
    }

    /// Uploads a small blob from memory to the repository of `r` (skipped when present).
    pub fn push_blob_bytes(&self, r: &Reference, bytes: &[u8], media_type: &str) -> Result<BlobReport, RegistryError> {
        let b = Bytes::copy_from_slice(bytes);
        self.push_blob_source(r, Digest::of(bytes), bytes.len() as u64, media_type, &BytesBlob(b))
    }

    /// Uploads a file as a blob, streaming it (checked against `digest` and `size`).
    pub fn push_blob_file(
        &self,
        r: &Reference,
        path: &Path,
        digest: Digest,
        size: u64,
        media_type: &str,
    ) -> Result<BlobReport, RegistryError> {
        let _guard = self.rt.enter(); // FileBlob reads on the runtime's blocking pool
        self.push_blob_source(r, digest, size, media_type, &FileBlob { path: path.to_path_buf(), digest, size })
    }

    /// Pushes a manifest (by digest, plus `tag` when given); its blobs must be there.
    pub fn push_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Digest, RegistryError> {
        let reg = self.registry(r)?;
        let b = Bytes::copy_from_slice(bytes);
        let d = Digest::of(bytes);
        self.rt.block_on(async {
            reg.put_manifest(&r.repository, &d.to_string(), &b, media_type).await?;
            if let Some(t) = tag {
                reg.put_manifest(&r.repository, t, &b, media_type).await?;
            }
            Ok::<_, RegistryError>(())
        })?;
        Ok(d)
    }

    /// Pushes an artifact manifest whose `subject` is `subject` (its blobs
    /// must already be in the repository: see [`Client::push_blob_bytes`]).
    /// When the registry does not index referrers itself (no `OCI-Subject`
    /// in the answer), the fallback tag `sha256-<subject hex>` — an image
    /// index listing the referrers — is updated, as the distribution spec
    /// asks. Concurrent updates of one fallback tag can lose an entry (the
    /// spec offers no compare-and-swap).
    pub fn push_referrer(
        &self,
        repo: &Reference,
        subject: &Descriptor,
        manifest: &[u8],
        media_type: &str,
    ) -> Result<ReferrerOutcome, RegistryError> {
        let raw = RawManifest::new(Bytes::copy_from_slice(manifest), Some(media_type));
        let named = raw.manifest("the referrer manifest").ok().and_then(|m| m.subject).map(|s| s.digest);
        if named != Some(subject.digest) {
            return Err(RegistryError::Invalid(format!(
                "the referrer manifest's `subject` ({}) is not {}",
                named.map(|d| d.to_string()).unwrap_or_else(|| "missing".into()),
                subject.digest
            )));
        }
        let reg = self.registry(repo)?;
        self.rt.block_on(put_referrer(&reg, &repo.repository, &raw))
    }

    /// True when the registry of `repo` serves the OCI 1.1 referrers API.
    pub fn has_referrers_api(&self, repo: &Reference, subject: &Digest) -> Result<bool, RegistryError> {
        let reg = self.registry(repo)?;
        Ok(self.rt.block_on(reg.referrers_api(&repo.repository, subject))?.is_some())
    }

    /// The referrers of `subject` in the repository of `repo` (the referrers
    /// API, else the fallback tag), optionally only those of `artifact_type`.
    pub fn referrers(
        &self,
        repo: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let reg = self.registry(repo)?;
        let descs = self.rt.block_on(list_referrers(&reg, &repo.repository, subject))?;
        Ok(descs
            .into_iter()
            .filter(|d| artifact_type.is_none() || d.artifact_type.as_deref() == artifact_type)
            .collect())
    }
}

/// Pushes an artifact manifest (with a `subject`) by digest; when the
/// registry does not answer with `OCI-Subject`, adds it to the fallback tag
/// `sha256-<subject hex>`.
pub(crate) async fn put_referrer(reg: &Registry, r: &str, raw: &RawManifest) -> Result<ReferrerOutcome, RegistryError> {
    let m = raw.manifest("referrer manifest").map_err(|e| RegistryError::Invalid(e.to_string()))?;
    let subject = m
        .subject
        .as_ref()
        .map(|s| s.digest)
        .ok_or_else(|| RegistryError::Invalid("referrer manifest without a sha256 `subject`".into()))?;
    let digest = raw.digest;
    let artifact_type = m.artifact_type.clone().or_else(|| Some(m.config.media_type.clone()));
    let headers = reg.put_manifest(r, &digest.to_string(), &raw.bytes, &raw.media_type).await?;
    if headers.get("OCI-Subject").and_then(|h| h.to_str().ok()) == Some(subject.to_string().as_str()) {
        return Ok(ReferrerOutcome { digest, subject, artifact_type, fallback_tag: None });
    }
    let tag = format!("sha256-{}", subject.hex());
    let mut index = match reg.get_manifest(r, &tag).await {
        Ok(f) => f.index("the referrers fallback index").unwrap_or_else(|_| Index::new(Vec::new())),
        Err(e) if e.status() == Some(404) => Index::new(Vec::new()),
        Err(e) => return Err(e),
    };
    if !index.manifests.iter().any(|d| d.digest == digest) {
        let mut d = raw.descriptor();
        d.artifact_type = artifact_type.clone();
        d.annotations = m.annotations.clone();
        index.manifests.push(d);
        let index = Index::new(index.manifests);
        let ib = RawManifest::encode(&index, media::INDEX).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        reg.put_manifest(r, &tag, &ib.bytes, media::INDEX).await?;
    }
    Ok(ReferrerOutcome { digest, subject, artifact_type, fallback_tag: Some(tag) })
}

/// The referrer descriptors of `subject` in `repo` (API, else fallback tag).
pub(crate) async fn list_referrers(
    reg: &Registry,
    repo: &str,
    subject: &Digest,
) -> Result<Vec<Descriptor>, RegistryError> {
    let raw = match reg.referrers_api(repo, subject).await? {
        Some(b) => RawManifest::new(b, Some(media::INDEX)),
        None => match reg.get_manifest(repo, &format!("sha256-{}", subject.hex())).await {
            Ok(f) => f,
            Err(e) if e.status() == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        },
    };
    let what = format!("referrers of {subject}");
    Ok(raw.index(&what).map_err(|e| RegistryError::Invalid(e.to_string()))?.manifests)
}
