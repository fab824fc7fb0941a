//! Downloads into the content-addressed store: verified by SHA-256 (and size)
//! while streaming, retried on transient failures, written atomically, and
//! serialised per artifact by lock files so concurrent builds share a cache.

use std::io::Write;
use std::sync::Arc;

use futures_util::StreamExt;
use tracing::{info_span, Instrument};

use crate::digest::{Digest, Hasher};
use crate::net::retry::{self, Attempts, Failure, RetryPolicy};
use crate::net::{self, redact, Net, NetError, NetOptions, SpeedGuard};
use crate::report::{task_id, Reporter, TaskKind};
use crate::store::{Store, StoreError};

/// A pinned artifact to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Short name for messages (file name, package name).
    pub name: String,
    /// Where to get it.
    pub url: String,
    /// Its SHA-256.
    pub sha256: Digest,
    /// Its size, when known.
    pub size: Option<u64>,
}

/// Why an artifact could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A registry mirror lists the artifact but could not deliver it.
    #[error("{name}: {message}")]
    Mirror {
        /// Artifact name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("GET {url}: HTTP {status}{after}", after = attempts_note(*attempts))]
    Http {
        /// The URL (credentials redacted).
        url: String,
        /// Status code.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection failed, stalled or was too slow.
    #[error("GET {url}: {message}{after}", after = crate::net::retry::gave_up_note(*attempts, *deadline))]
    Network {
        /// The URL (credentials redacted).
        url: String,
        /// The error.
        message: String,
        /// Attempts made.
        attempts: u32,
        /// The deadline, when it is what ended the attempts.
        deadline: Option<std::time::Duration>,
    },
    /// The bytes do not hash to the pinned digest.
    #[error("{name} from {url}: sha256 mismatch\n  expected: {expected}\n  found:    {found}")]
    Mismatch {
        /// Artifact name.
        name: String,
        /// The URL.
        url: String,
        /// Pinned digest.
        expected: Digest,
        /// Digest of what arrived.
        found: Digest,
    },
    /// The size differs from the pinned one.
    #[error("{name} from {url}: expected {expected} bytes, got {found}{after}", after = attempts_note(*attempts))]
    Size {
        /// Artifact name.
        name: String,
        /// The URL.
        url: String,
        /// Pinned size.
        expected: u64,
        /// Bytes received.
        found: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// Offline mode and the artifact is not available locally.
    #[error("{name} ({sha256}) is not in the cache or mirror, and offline mode forbids downloading {url}")]
    Offline {
        /// Artifact name.
        name: String,
        /// Its digest.
        sha256: Digest,
        /// Where it would come from.
        url: String,
    },
    /// The server's certificate is not trusted: retrying cannot help.
    #[error("GET {url}: TLS: {message}")]
    Tls {
        /// The URL (credentials redacted).
        url: String,
        /// The certificate problem.
        message: String,
    },
    /// The network layer could not be set up (a bad --ca-file).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Hint for FetchError {
    fn hint(&self) -> Option<String> {
        match self {
            FetchError::Http { status, .. } => status_hint(*status).map(str::to_string),
            FetchError::Network { .. } => Some("check the network or proxy settings, or build offline from a mirror (`strata fetch SPEC --into DIR`, then `strata build SPEC --offline --mirror DIR`)".into()),
            FetchError::Mismatch { .. } => Some("the file at this URL changed or is corrupt; if the new file is trusted, update the pinned sha256 (and run `strata lock`)".into()),
            FetchError::Offline { .. } => Some("on a connected machine run `strata fetch SPEC --into MIRROR` and bring MIRROR along".into()),
            FetchError::Tls { .. } => Some(net::TLS_HINT.into()),
            FetchError::Net(e) => e.hint(),
            FetchError::Size { .. } | FetchError::Store(_) => None,
            FetchError::Mirror { .. } => Some("check the registry mirror (`strata fetch --verify docker://HOST/REPO`) and refill it with `strata fetch SPEC --into docker://HOST/REPO`".into()),
        }
    }
}

impl Attempts for FetchError {
    fn set_attempts(&mut self, n: u32) {
        if let FetchError::Http { attempts, .. }
        | FetchError::Network { attempts, .. }
        | FetchError::Size { attempts, .. } = self
        {
            *attempts = n;
        }
    }
    fn set_deadline(&mut self, d: std::time::Duration) {
        if let FetchError::Network { deadline, .. } = self {
            *deadline = Some(d);
        }
    }
}

fn attempts_note(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

fn status_hint(status: u16) -> Option<&'static str> {
    match status {
        404 | 410 => Some("the file is gone from this URL; if it was superseded upstream, re-lock (`strata lock SPEC`) or build from a mirror that still has it (`--mirror DIR`, filled by `strata fetch SPEC --into DIR`)"),
        401 | 403 => Some("the server refused access; check credentials or use a mirror"),
        _ => None,
    }
}

/// How fetching behaves.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// How often and how far apart failed downloads are tried again.
    pub retry: RetryPolicy,
    /// Parallel downloads.
    pub concurrency: usize,
    /// Never open a network connection.
    pub offline: bool,
    /// Local mirror directories laid out by sha256, searched before the network.
    pub mirrors: Vec<std::path::PathBuf>,
    /// Mirrors in registry repositories, searched after the directories
    /// (and read even offline: offline forbids the artifacts' own URLs).
    pub registry_mirrors: Vec<Arc<crate::mirror::RegistryMirror>>,
    /// CA files, proxy, timeouts, URL rewrites.
    pub net: NetOptions,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            retry: RetryPolicy::default(),
            concurrency: 6,
            offline: false,
            mirrors: Vec::new(),
            registry_mirrors: Vec::new(),
            net: NetOptions::default(),
        }
    }
}

/// What a fetch did.
#[derive(Debug, Default, Clone)]
pub struct FetchSummary {
    /// Artifacts already in the store.
    pub cached: usize,
    /// Artifacts copied from a mirror directory.
    pub from_mirror: usize,
    /// Artifacts downloaded.
    pub downloaded: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Fetches artifacts into a store.
pub struct Fetcher {
    store: Store,
    opts: FetchOptions,
    reporter: Arc<dyn Reporter>,
    net: std::sync::OnceLock<Net>,
}

type Attempt = Result<u64, Failure<FetchError>>;

impl Fetcher {
    /// A fetcher over `store`.
    pub fn new(store: Store, opts: FetchOptions, reporter: Arc<dyn Reporter>) -> Fetcher {
        Fetcher { store, opts, reporter, net: std::sync::OnceLock::new() }
    }

    /// A fetcher that uses an existing network layer.
    pub fn with_net(store: Store, opts: FetchOptions, reporter: Arc<dyn Reporter>, net: Net) -> Fetcher {
        let f = Fetcher::new(store, opts, reporter);
        let _ = f.net.set(net);
        f
    }

    /// The network layer, set up on first use (only a fetch that downloads needs it).
    fn net(&self) -> Result<&Net, FetchError> {
        if let Some(n) = self.net.get() {
            return Ok(n);
        }
        let n = Net::new(self.opts.net.clone())?;
        Ok(self.net.get_or_init(|| n))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Makes every artifact present in the store. Stops at the first error
    /// (after the downloads in flight end); nothing partial is left under a
    /// blob's name.
    pub fn fetch_all(&self, artifacts: &[Artifact]) -> Result<FetchSummary, FetchError> {
        let mut todo: Vec<&Artifact> = Vec::new();
        let mut summary = FetchSummary::default();
        let mut seen = std::collections::BTreeSet::new();
        for a in artifacts {
            if !seen.insert(a.sha256) {
                continue;
            }
            if self.store.contains(&a.sha256) {
                self.store.mark_used(&a.sha256);
                summary.cached += 1;
                continue;
            }
            if let Some(found) = self.copy_from_mirrors(a)? {
                if found {
                    summary.from_mirror += 1;
                    continue;
                }
            }
            if self.opts.offline {
                return Err(FetchError::Offline { name: a.name.clone(), sha256: a.sha256, url: redact::url(&a.url) });
            }
            todo.push(a);
        }
        if todo.is_empty() {
            return Ok(summary);
        }
        let bytes = todo.iter().map(|a| a.size).sum::<Option<u64>>();
        self.reporter.plan(TaskKind::Download, todo.len() as u64, bytes);
        let net = self.net()?;
        let client = net.client()?;
        let results: Vec<Result<u64, FetchError>> = net.block_on(async {
            futures_util::stream::iter(todo.iter().map(|a| async move {
                self.fetch_one(client, a).instrument(info_span!("fetch", name = %a.name)).await
            }))
            .buffer_unordered(self.opts.concurrency.max(1))
            .collect()
            .await
        });
        for r in results {
            let bytes = r?;
            summary.downloaded += 1;
            summary.bytes += bytes;
        }
        Ok(summary)
    }

    /// Copies the artifact from a mirror directory when one has it.
    fn copy_from_mirrors(&self, a: &Artifact) -> Result<Option<bool>, FetchError> {
        for m in &self.opts.mirrors {
            let candidate = m.join("sha256").join(a.sha256.hex());
            if candidate.is_file() {
                self.store.put_file(&candidate, Some(&a.sha256)).map_err(|e| match e {
                    StoreError::Mismatch { expected, found, .. } => FetchError::Mismatch {
                        name: a.name.clone(),
                        url: candidate.display().to_string(),
                        expected,
                        found,
                    },
                    other => FetchError::Store(other),
                })?;
                return Ok(Some(true));
            }
        }
        for m in &self.opts.registry_mirrors {
            match m.copy_to_store(&a.sha256, &self.store) {
                Ok(true) => return Ok(Some(true)),
                Ok(false) => {}
                Err(e) => return Err(FetchError::Mirror { name: a.name.clone(), message: e.to_string() }),
            }
        }
        Ok(None)
    }

    async fn fetch_one(&self, client: &reqwest::Client, a: &Artifact) -> Result<u64, FetchError> {
        // One process downloads a given artifact at a time; others wait, then find it present.
        let store = self.store.clone();
        let name = a.sha256.hex();
        let guard = tokio::task::spawn_blocking(move || store.lock(&name)).await.map_err(|e| {
            FetchError::Network { url: String::new(), message: e.to_string(), attempts: 0, deadline: None }
        })??;
        if self.store.contains(&a.sha256) {
            drop(guard);
            return Ok(0);
        }
        let url = self.opts.net.rewrite(&a.url);
        let id = task_id();
        self.reporter.start(id, TaskKind::Download, &a.name, a.size);
        let on_retry = |line: &str| self.reporter.warn(&format!("{}: {line}", a.name));
        let op = format!("GET {}", redact::url(&url));
        let deadline = self.opts.net.timeouts.deadline;
        let result = retry::run(&self.opts.retry, deadline, &op, &on_retry, |attempt| {
            self.try_download(client, a, &url, id, attempt)
        })
        .await;
        match &result {
            Ok(n) => self.reporter.finish(id, &format!("downloaded {}", crate::report::human_bytes(*n))),
            Err(_) => self.reporter.finish(id, "failed"),
        }
        drop(guard);
        result
    }

    async fn try_download(&self, client: &reqwest::Client, a: &Artifact, url: &str, id: u64, attempt: u32) -> Attempt {
        let shown = redact::url(url);
        let network =
            |message: String| FetchError::Network { url: shown.clone(), message, attempts: attempt, deadline: None };
        let t = &self.opts.net.timeouts;
        let resp = client.get(url).send().await.map_err(|e| {
            let message = net::transport_message(&e, t);
            if net::is_certificate_error(&message) {
                // Another attempt meets the same certificate.
                Failure::Fatal(FetchError::Tls { url: shown.clone(), message })
            } else {
                Failure::Retry(network(message), None)
            }
        })?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let err = FetchError::Http { url: shown, status, attempts: attempt };
            return Err(if retry::transient_status(status) {
                Failure::Retry(err, retry::retry_after(resp.headers()))
            } else {
                Failure::Fatal(err)
            });
        }
        let mut tmp = self.store.temp_file().map_err(|e| Failure::Fatal(e.into()))?;
        let mut hasher = Hasher::new();
        let mut stream = resp.bytes_stream();
        let mut speed = SpeedGuard::new(&self.opts.net.timeouts);
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let write_error = |e| {
            Failure::Fatal(
                StoreError::Io(crate::error::IoError {
                    action: "writing download to",
                    path: self.store.tmp_dir(),
                    source: e,
                })
                .into(),
            )
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Failure::Retry(
                    network(format!(
                        "connection broke after {} bytes: {}",
                        hasher.len(),
                        net::transport_message(&e, t)
                    )),
                    None,
                )
            })?;
            hasher.update(&chunk);
            if let Some(max) = a.size {
                if hasher.len() > max {
                    return Err(Failure::Fatal(FetchError::Size {
                        name: a.name.clone(),
                        url: shown,
                        expected: max,
                        found: hasher.len(),
                        attempts: attempt,
                    }));
                }
            }
            writer.write_all(&chunk).map_err(write_error)?;
            self.reporter.progress(id, hasher.len());
            // A server that drip-feeds resets the idle timeout forever.
            speed.update(chunk.len() as u64).map_err(|m| Failure::Retry(network(m.to_string()), None))?;
        }
        writer.flush().map_err(write_error)?;
        drop(writer);
        let (found, n) = hasher.finish();
        if let Some(expected) = a.size {
            if n != expected {
                // A short body is what a dropped connection looks like: retry.
                return Err(Failure::Retry(
                    FetchError::Size { name: a.name.clone(), url: shown, expected, found: n, attempts: attempt },
                    None,
                ));
            }
        }
        if found != a.sha256 {
            return Err(Failure::Fatal(FetchError::Mismatch {
                name: a.name.clone(),
                url: shown,
                expected: a.sha256,
                found,
            }));
        }
        self.store.commit(tmp, &found).map(|_| n).map_err(|e| Failure::Fatal(e.into()))
    }
}
