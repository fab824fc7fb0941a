//! Downloads into the content-addressed store: verified by SHA-256 (and size)
//! while streaming, retried on transient failures, written atomically, and
//! serialised per artifact by lock files so concurrent builds share a cache.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tracing::{debug, info_span, Instrument};

use crate::digest::{Digest, Hasher};
use crate::report::{redact_url, task_id, Reporter, TaskKind};
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
    /// The server answered with an error status.
    #[error("GET {url}: HTTP {status}{after}{hint}", after = attempts_note(*attempts), hint = status_hint(*status))]
    Http {
        /// The URL (credentials redacted).
        url: String,
        /// Status code.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection failed.
    #[error("GET {url}: {message}{after}\nhint: check the network or proxy settings, or build offline from a mirror (`strata fetch SPEC --into DIR`, then `strata build SPEC --offline --mirror DIR`)", after = attempts_note(*attempts))]
    Network {
        /// The URL (credentials redacted).
        url: String,
        /// The error.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The bytes do not hash to the pinned digest.
    #[error("{name} from {url}: sha256 mismatch\n  expected: {expected}\n  found:    {found}\nhint: the file at this URL changed or is corrupt; if the new file is trusted, update the pinned sha256 (and run `strata lock`)")]
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
    #[error("{name} ({sha256}) is not in the cache or mirror, and offline mode forbids downloading {url}\nhint: on a connected machine run `strata fetch SPEC --into MIRROR` and bring MIRROR along")]
    Offline {
        /// Artifact name.
        name: String,
        /// Its digest.
        sha256: Digest,
        /// Where it would come from.
        url: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn attempts_note(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => "\nhint: the file is gone from this URL; if it was superseded upstream, re-lock (`strata lock SPEC`) or build from a mirror that still has it (`--mirror DIR`, filled by `strata fetch SPEC --into DIR`)",
        401 | 403 => "\nhint: the server refused access; check credentials or use a mirror",
        _ => "",
    }
}

/// How fetching behaves.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Extra attempts after the first on transient errors.
    pub retries: u32,
    /// Parallel downloads.
    pub concurrency: usize,
    /// Never open a network connection.
    pub offline: bool,
    /// First backoff delay; doubles each retry.
    pub backoff: Duration,
    /// URL prefix rewrites (`from`, `to`), first match wins.
    pub rewrites: Vec<(String, String)>,
    /// Local mirror directories laid out by sha256, searched before the network.
    pub mirrors: Vec<std::path::PathBuf>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        // STRATA_RETRY_BASE_MS shortens the backoff (tests use it).
        let base = std::env::var("STRATA_RETRY_BASE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
        FetchOptions {
            retries: 4,
            concurrency: 6,
            offline: false,
            backoff: Duration::from_millis(base),
            rewrites: Vec::new(),
            mirrors: Vec::new(),
        }
    }
}

impl FetchOptions {
    /// Applies the URL rewrites.
    pub fn rewrite(&self, url: &str) -> String {
        for (from, to) in &self.rewrites {
            if let Some(rest) = url.strip_prefix(from.as_str()) {
                return format!("{to}{rest}");
            }
        }
        url.to_string()
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
}

enum Attempt {
    Done(u64),
    Retry(FetchError, Option<Duration>),
    Fatal(FetchError),
}

impl Fetcher {
    /// A fetcher over `store`.
    pub fn new(store: Store, opts: FetchOptions, reporter: Arc<dyn Reporter>) -> Fetcher {
        Fetcher { store, opts, reporter }
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
                return Err(FetchError::Offline { name: a.name.clone(), sha256: a.sha256, url: redact_url(&a.url) });
            }
            todo.push(a);
        }
        if todo.is_empty() {
            return Ok(summary);
        }
        let bytes = todo.iter().map(|a| a.size).sum::<Option<u64>>();
        self.reporter.plan(TaskKind::Download, todo.len() as u64, bytes);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| {
            FetchError::Network { url: String::new(), message: format!("starting the async runtime: {e}"), attempts: 0 }
        })?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| FetchError::Network {
                url: String::new(),
                message: format!("building the HTTP client: {e}"),
                attempts: 0,
            })?;
        let results: Vec<Result<u64, FetchError>> = rt.block_on(async {
            futures_util::stream::iter(todo.iter().map(|a| {
                let client = client.clone();
                async move { self.fetch_one(&client, a).instrument(info_span!("fetch", name = %a.name)).await }
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
        Ok(None)
    }

    async fn fetch_one(&self, client: &reqwest::Client, a: &Artifact) -> Result<u64, FetchError> {
        // One process downloads a given artifact at a time; others wait, then find it present.
        let store = self.store.clone();
        let name = a.sha256.hex();
        let guard = tokio::task::spawn_blocking(move || store.lock(&name))
            .await
            .map_err(|e| FetchError::Network { url: String::new(), message: e.to_string(), attempts: 0 })??;
        if self.store.contains(&a.sha256) {
            drop(guard);
            return Ok(0);
        }
        let url = self.opts.rewrite(&a.url);
        let id = task_id();
        self.reporter.start(id, TaskKind::Download, &a.name, a.size);
        let mut attempt = 0u32;
        let mut delay = self.opts.backoff;
        let result = loop {
            attempt += 1;
            match self.try_download(client, a, &url, id, attempt).await {
                Attempt::Done(n) => break Ok(n),
                Attempt::Fatal(e) => break Err(e),
                Attempt::Retry(e, retry_after) => {
                    if attempt > self.opts.retries {
                        break Err(e);
                    }
                    let wait = retry_after.unwrap_or(delay).min(Duration::from_secs(60));
                    debug!(url = %redact_url(&url), attempt, ?wait, "retrying: {e}");
                    self.reporter.warn(&format!(
                        "{}: {} — retrying in {:.1}s",
                        a.name,
                        first_line(&e.to_string()),
                        wait.as_secs_f64()
                    ));
                    tokio::time::sleep(wait).await;
                    delay *= 2;
                }
            }
        };
        match &result {
            Ok(n) => self.reporter.finish(id, &format!("downloaded {}", crate::report::human_bytes(*n))),
            Err(_) => self.reporter.finish(id, "failed"),
        }
        drop(guard);
        result
    }

    async fn try_download(&self, client: &reqwest::Client, a: &Artifact, url: &str, id: u64, attempt: u32) -> Attempt {
        let shown = redact_url(url);
        let resp = match client.get(url).send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry(
                    FetchError::Network { url: shown, message: error_chain(&e), attempts: attempt },
                    None,
                )
            }
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let err = FetchError::Http { url: shown, status, attempts: attempt };
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return if matches!(status, 408 | 425 | 429 | 500..=599) {
                Attempt::Retry(err, retry_after)
            } else {
                Attempt::Fatal(err)
            };
        }
        let mut tmp = match self.store.temp_file() {
            Ok(t) => t,
            Err(e) => return Attempt::Fatal(e.into()),
        };
        let mut hasher = Hasher::new();
        let mut stream = resp.bytes_stream();
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    return Attempt::Retry(
                        FetchError::Network {
                            url: shown,
                            message: format!("connection broke after {} bytes: {}", hasher.len(), error_chain(&e)),
                            attempts: attempt,
                        },
                        None,
                    )
                }
            };
            hasher.update(&chunk);
            if let Some(max) = a.size {
                if hasher.len() > max {
                    return Attempt::Fatal(FetchError::Size {
                        name: a.name.clone(),
                        url: shown,
                        expected: max,
                        found: hasher.len(),
                        attempts: attempt,
                    });
                }
            }
            if let Err(e) = writer.write_all(&chunk) {
                return Attempt::Fatal(
                    StoreError::Io { action: "writing download to", path: self.store.tmp_dir(), source: e }.into(),
                );
            }
            self.reporter.progress(id, hasher.len());
        }
        if let Err(e) = writer.flush() {
            return Attempt::Fatal(
                StoreError::Io { action: "writing download to", path: self.store.tmp_dir(), source: e }.into(),
            );
        }
        drop(writer);
        let (found, n) = hasher.finish();
        if let Some(expected) = a.size {
            if n != expected {
                // A short body is what a dropped connection looks like: retry.
                return Attempt::Retry(
                    FetchError::Size { name: a.name.clone(), url: shown, expected, found: n, attempts: attempt },
                    None,
                );
            }
        }
        if found != a.sha256 {
            return Attempt::Fatal(FetchError::Mismatch {
                name: a.name.clone(),
                url: shown,
                expected: a.sha256,
                found,
            });
        }
        match self.store.commit(tmp, &found) {
            Ok(_) => Attempt::Done(n),
            Err(e) => Attempt::Fatal(e.into()),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
