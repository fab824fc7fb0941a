//! Distribution API operations on one registry: blob HEAD/GET, blob
//! uploads (HEAD → optional mount → POST → streamed monolithic PUT, or
//! PATCH chunks → PUT), manifest GET/PUT, and the referrers API.
//!
//! Upload retries restart the blob from byte 0 in a fresh session: a
//! streamed body cannot be rewound, registries disagree about resuming
//! (`Range` lies on some, distribution 2.8 ignores `Content-Range`), and the
//! digest check on the closing PUT protects integrity either way.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response};
use tracing::debug;
use url::Url;

use crate::digest::{Digest, Hasher};
use crate::image::{short, BlobAction};
use crate::oci::{media, RawManifest};
use crate::registry::auth::Scopes;
use crate::registry::client::{read_limited, Registry, Req, ReqBody};
use crate::registry::error::{Fail, RegistryError};

/// Largest manifest accepted (the spec asks registries to take at least 4 MB).
const MAX_MANIFEST: usize = 8 << 20;

/// Tags asked for per page of a tags list.
const TAGS_PAGE: usize = 1000;

/// Largest page of a tags list accepted.
const MAX_TAGS_PAGE: usize = 4 << 20;

/// Chunk size used when a registry refuses a whole blob in one request.
pub const FALLBACK_CHUNK: u64 = 4 << 20;

/// A stream of a blob's bytes.
pub(crate) type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Where a source reports that the local copy is bad (wrong size or digest):
/// such an upload must fail for good, not be retried.
pub(crate) type Problem = Arc<Mutex<Option<String>>>;

/// Something that can stream a blob's bytes from the start, any number of times.
pub(crate) trait BlobSource: Send + Sync {
    fn open(&self, problem: &Problem) -> BlobStream;
}

/// Bytes in memory.
pub(crate) struct BytesBlob(pub Bytes);

impl BlobSource for BytesBlob {
    fn open(&self, _: &Problem) -> BlobStream {
        Box::pin(futures_util::stream::iter([Ok(self.0.clone())]))
    }
}

/// Feeds a blocking reader into a stream through a small bounded channel,
/// checking size and digest as it goes.
pub(crate) fn pump<'a>(
    open: impl FnOnce() -> Result<Box<dyn std::io::Read + Send + 'a>, crate::image::ImageError>,
    digest: Digest,
    size: u64,
    what: String,
    problem: Problem,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let fail = |msg: String, tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>| {
        if let Ok(mut p) = problem.lock() {
            p.get_or_insert(msg.clone());
        }
        let _ = tx.blocking_send(Err(std::io::Error::other(msg)));
    };
    let mut r = match open() {
        Ok(r) => r,
        Err(e) => return fail(e.to_string(), &tx),
    };
    let mut h = Hasher::new();
    loop {
        // 256 KiB pieces, at most 4 queued: ~1.25 MiB per blob in flight.
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return fail(format!("{what}: reading blob {digest}: {e}"), &tx),
            }
        }
        if n == 0 {
            break;
        }
        buf.truncate(n);
        h.update(&buf);
        if h.len() > size {
            return fail(
                format!(
                    "{what}: blob {digest} is larger than the {size} bytes its descriptor says; the image is corrupt"
                ),
                &tx,
            );
        }
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return; // the request ended; nobody is reading
        }
    }
    let (found, n) = h.finish();
    if n != size {
        return fail(
            format!("{what}: blob {digest} has {n} bytes, its descriptor says {size}; the image is corrupt"),
            &tx,
        );
    }
    if found != digest {
        fail(format!("{what}: blob {digest} is corrupt: its bytes hash to {found}"), &tx);
    }
}

/// A receiver as a stream.
pub(crate) fn receiver_stream(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> BlobStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }))
}

/// A local file.
pub(crate) struct FileBlob {
    pub path: std::path::PathBuf,
    pub digest: Digest,
    pub size: u64,
}

impl BlobSource for FileBlob {
    fn open(&self, problem: &Problem) -> BlobStream {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (path, digest, size, problem) = (self.path.clone(), self.digest, self.size, problem.clone());
        tokio::task::spawn_blocking(move || {
            let shown = path.display().to_string();
            pump(
                || {
                    fs_err::File::open(&path).map(|f| Box::new(f) as Box<dyn std::io::Read + Send>).map_err(|e| {
                        crate::image::ImageError::Io(crate::error::IoError {
                            action: "opening",
                            path: path.clone(),
                            source: e,
                        })
                    })
                },
                digest,
                size,
                shown.clone(),
                problem,
                tx,
            )
        });
        receiver_stream(rx)
    }
}

/// One blob upload.
pub(crate) struct Upload<'a> {
    pub repo: &'a str,
    pub digest: Digest,
    pub size: u64,
    pub source: &'a dyn BlobSource,
    pub mount_from: Option<String>,
    pub task: u64,
    /// True when the caller already found the blob missing with HEAD.
    pub checked: bool,
}

/// How an upload went.
pub(crate) struct UploadResult {
    pub action: BlobAction,
    pub bytes_sent: u64,
    pub attempts: u32,
    pub mounted_from: Option<String>,
}

enum Start {
    Mounted,
    Session { location: Url, min_chunk: Option<u64> },
}

struct UploadState {
    mount: Option<String>,
    chunk: Option<u64>,
    mounted: Option<String>,
}

fn location(resp: &Response) -> Option<Result<Url, url::ParseError>> {
    let loc = resp.headers().get(LOCATION)?.to_str().ok()?;
    Some(resp.url().join(loc))
}

impl Registry {
    async fn head_blob_once(&self, repo: &str, d: &Digest, scopes: &Scopes, op: &str) -> Result<Option<u64>, Fail> {
        let url = self.url(&format!("{repo}/blobs/{d}")).await?;
        let resp = self.send(&Req::new(Method::HEAD, url, scopes), op).await?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                resp.headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(self.status_fail(resp, op, repo).await),
        }
    }

    /// The blob's size when the repository has it.
    pub async fn head_blob(&self, repo: &str, d: &Digest, scopes: &Scopes) -> Result<Option<u64>, RegistryError> {
        let op = format!("checking for {} in {}/{repo}", short(d), self.host);
        self.retry(&op, || self.head_blob_once(repo, d, scopes, &op)).await
    }

    async fn start_upload(
        &self,
        repo: &str,
        scopes: &Scopes,
        mount: Option<(&Digest, &str)>,
        op: &str,
    ) -> Result<Start, Fail> {
        let mut url = self.url(&format!("{repo}/blobs/uploads/")).await?;
        if let Some((d, from)) = mount {
            url.query_pairs_mut().append_pair("mount", &d.to_string()).append_pair("from", from);
        }
        let resp = self.send(&Req::new(Method::POST, url, scopes), op).await?;
        match resp.status().as_u16() {
            201 if mount.is_some() => Ok(Start::Mounted),
            201 | 202 => {
                let loc = match location(&resp) {
                    Some(Ok(u)) => u,
                    Some(Err(e)) => {
                        return Err(Fail::Fatal(RegistryError::Invalid(format!(
                            "{op}: the registry sent an invalid upload Location: {e}"
                        ))))
                    }
                    None => {
                        return Err(Fail::Retry(
                            RegistryError::Invalid(format!(
                            "{op}: the registry started an upload but sent no Location header (a proxy may strip it)"
                        )),
                            None,
                        ))
                    }
                };
                self.check_target(&loc, op)?;
                let min_chunk =
                    resp.headers().get("OCI-Chunk-Min-Length").and_then(|v| v.to_str().ok()?.trim().parse().ok());
                Ok(Start::Session { location: loc, min_chunk })
            }
            _ => Err(self.status_fail(resp, op, repo).await),
        }
    }

    /// Best-effort cancel of an upload session (spec: clients SHOULD, and SHOULD ignore failures).
    async fn cancel_upload(&self, loc: &Url, scopes: &Scopes) {
        let req = Req::new(Method::DELETE, loc.clone(), scopes);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.send(&req, "cancelling an upload")).await;
    }

    /// Uploads one blob (HEAD, mount, POST, PUT or PATCHes), with retries.
    pub(crate) async fn upload(&self, u: &Upload<'_>) -> Result<UploadResult, RegistryError> {
        let scopes = Scopes::push(u.repo);
        let sent = Arc::new(AtomicU64::new(0));
        let mut st = UploadState { mount: u.mount_from.clone(), chunk: self.opts.chunk_size, mounted: None };
        let op = format!("uploading {} to {}/{}", short(&u.digest), self.host, u.repo);
        let (mut attempt, started) = (0, std::time::Instant::now());
        loop {
            attempt += 1;
            match self.upload_attempt(u, &scopes, &mut st, &sent, attempt, &op).await {
                Ok(action) => {
                    return Ok(UploadResult {
                        action,
                        bytes_sent: sent.load(Ordering::Relaxed),
                        attempts: attempt,
                        mounted_from: st.mounted,
                    })
                }
                Err(Fail::Fatal(e)) => return Err(e.with_attempts(attempt)),
                Err(Fail::Retry(e, ra)) => self.backoff(&op, e, attempt, started, ra).await?,
            }
        }
    }

    async fn upload_attempt(
        &self,
        u: &Upload<'_>,
        scopes: &Scopes,
        st: &mut UploadState,
        sent: &Arc<AtomicU64>,
        attempt: u32,
        op: &str,
    ) -> Result<BlobAction, Fail> {
        if attempt > 1 || !u.checked {
            // After a failed attempt the blob may be complete anyway (only the answer was lost).
            if self.head_blob_once(u.repo, &u.digest, scopes, op).await?.is_some() {
                return Ok(if attempt > 1 { BlobAction::Uploaded } else { BlobAction::Skipped });
            }
        }
        let mut session = None;
        if let Some(from) = st.mount.clone() {
            match self.start_upload(u.repo, &scopes.and_pull(&from), Some((&u.digest, &from)), op).await {
                Ok(Start::Mounted) => {
                    st.mounted = Some(from);
                    return Ok(BlobAction::Mounted);
                }
                Ok(Start::Session { location, min_chunk }) => {
                    debug!(blob = %u.digest, from = %from, "the registry could not mount; uploading into the session it opened");
                    session = Some((location, min_chunk));
                }
                Err(Fail::Fatal(e)) | Err(Fail::Retry(e, _)) => {
                    debug!(blob = %u.digest, from = %from, "mount failed, uploading instead: {e}")
                }
            }
            st.mount = None;
        }
        let (loc, min_chunk) = match session {
            Some(s) => s,
            None => match self.start_upload(u.repo, scopes, None, op).await? {
                Start::Session { location, min_chunk } => (location, min_chunk),
                Start::Mounted => return Ok(BlobAction::Mounted),
            },
        };
        let problem: Problem = Arc::default();
        let res = match st.chunk {
            None => self.put_whole(u, scopes, &loc, sent, &problem, op).await,
            Some(c) => {
                let c = c.max(min_chunk.unwrap_or(0)).max(1);
                self.put_chunks(u, scopes, loc.clone(), c, sent, &problem, op).await
            }
        };
        let Err(fail) = res else { return Ok(BlobAction::Uploaded) };
        if let Some(p) = problem.lock().ok().and_then(|mut p| p.take()) {
            return Err(Fail::Fatal(RegistryError::Invalid(p)));
        }
        self.cancel_upload(&loc, scopes).await;
        match fail {
            Fail::Fatal(e) if st.chunk.is_none() && matches!(e.status(), Some(413 | 416)) => {
                st.chunk = Some(FALLBACK_CHUNK);
                self.reporter.warn(&format!(
                    "{op}: the registry refused the blob in one request (HTTP {}); sending it in {} chunks instead",
                    e.status().unwrap_or(0),
                    crate::report::human_bytes(FALLBACK_CHUNK)
                ));
                Err(Fail::Retry(e, Some(Duration::ZERO)))
            }
            other => Err(other),
        }
    }

    fn progress_stream(&self, u: &Upload<'_>, problem: &Problem, sent: &Arc<AtomicU64>) -> BlobStream {
        let this_attempt = Arc::new(AtomicU64::new(0));
        let (sent, reporter, task) = (sent.clone(), self.reporter.clone(), u.task);
        Box::pin(u.source.open(problem).map(move |r| {
            if let Ok(b) = &r {
                sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                let n = this_attempt.fetch_add(b.len() as u64, Ordering::Relaxed) + b.len() as u64;
                reporter.progress(task, n);
            }
            r
        }))
    }

    async fn put_whole(
        &self,
        u: &Upload<'_>,
        scopes: &Scopes,
        loc: &Url,
        sent: &Arc<AtomicU64>,
        problem: &Problem,
        op: &str,
    ) -> Result<(), Fail> {
        let open = || reqwest::Body::wrap_stream(self.progress_stream(u, problem, sent));
        let mut url = loc.clone();
        url.query_pairs_mut().append_pair("digest", &u.digest.to_string());
        let req = Req::new(Method::PUT, url, scopes)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(ReqBody::Stream { len: u.size, open: &open });
        let resp = self.send(&req, op).await?;
        match resp.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            _ => Err(self.status_fail(resp, op, u.repo).await),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_chunks(
        &self,
        u: &Upload<'_>,
        scopes: &Scopes,
        mut loc: Url,
        chunk: u64,
        sent: &Arc<AtomicU64>,
        problem: &Problem,
        op: &str,
    ) -> Result<(), Fail> {
        let chunk = usize::try_from(chunk).unwrap_or(usize::MAX);
        let mut stream = u.source.open(problem);
        let mut buf = BytesMut::new();
        let mut offset = 0u64;
        let mut eof = false;
        loop {
            while !eof && buf.len() < chunk {
                match stream.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(e)) => return Err(Fail::Fatal(RegistryError::Invalid(format!("{op}: {e}")))),
                    None => eof = true,
                }
            }
            if buf.is_empty() {
                break;
            }
            let piece = buf.split_to(buf.len().min(chunk)).freeze();
            let len = piece.len() as u64;
            let end = offset + len - 1;
            sent.fetch_add(len, Ordering::Relaxed);
            let req = Req::new(Method::PATCH, loc.clone(), scopes)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, &format!("{offset}-{end}"))
                .body(ReqBody::Bytes(piece));
            let resp = self.send(&req, op).await?;
            match resp.status().as_u16() {
                // 202 per spec; some registries answer 201 or 204.
                201 | 202 | 204 => {
                    if let Some(Ok(next)) = location(&resp) {
                        self.check_target(&next, op)?;
                        loc = next;
                    }
                }
                _ => return Err(self.status_fail(resp, op, u.repo).await),
            }
            offset = end + 1;
            self.reporter.progress(u.task, offset);
        }
        let mut url = loc;
        url.query_pairs_mut().append_pair("digest", &u.digest.to_string());
        let resp =
            self.send(&Req::new(Method::PUT, url, scopes).header(CONTENT_TYPE, "application/octet-stream"), op).await?;
        match resp.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            _ => Err(self.status_fail(resp, op, u.repo).await),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`, checked against the digest when the reference is one.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<RawManifest, RegistryError> {
        let scopes = Scopes::pull(repo);
        let op = format!(
            "reading manifest {}/{repo}{}{reference}",
            self.host,
            if reference.starts_with("sha256:") { "@" } else { ":" }
        );
        let fetched = self
            .retry(&op, || async {
                let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
                let resp =
                    self.send(&Req::new(Method::GET, url, &scopes).header(ACCEPT, media::MANIFEST_ACCEPT), &op).await?;
                if resp.status().as_u16() != 200 {
                    let mut f = self.status_fail(resp, &op, repo).await;
                    if let Fail::Fatal(RegistryError::Http { status: 404, hint, .. }) = &mut f {
                        *hint = format!(
                            "no manifest `{reference}` in {}/{repo}; check the tag (or digest) and repository",
                            self.host
                        );
                    }
                    return Err(f);
                }
                let header = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
                if resp.content_length().is_some_and(|n| n > MAX_MANIFEST as u64) {
                    return Err(Fail::Fatal(RegistryError::Invalid(format!(
                        "{op}: the manifest is larger than {MAX_MANIFEST} bytes"
                    ))));
                }
                let bytes = read_limited(resp, MAX_MANIFEST + 1).await;
                if bytes.len() > MAX_MANIFEST {
                    return Err(Fail::Fatal(RegistryError::Invalid(format!(
                        "{op}: the manifest is larger than {MAX_MANIFEST} bytes"
                    ))));
                }
                Ok((Bytes::from(bytes), header))
            })
            .await?;
        let (bytes, header) = fetched;
        let m = RawManifest::new(bytes, header.as_deref());
        if let Ok(want) = Digest::parse(reference) {
            if want != m.digest {
                return Err(RegistryError::Invalid(format!(
                    "{op}: the registry sent a manifest that hashes to {}, not the requested {want}",
                    m.digest
                )));
            }
        }
        Ok(m)
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns the response headers.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &Bytes,
        media_type: &str,
    ) -> Result<HeaderMap, RegistryError> {
        let scopes = Scopes::push(repo);
        let digest = Digest::of(bytes);
        let op = if reference.starts_with("sha256:") {
            format!("pushing manifest {} to {}/{repo}", short(&digest), self.host)
        } else {
            format!("tagging {} as {}/{repo}:{reference}", short(&digest), self.host)
        };
        self.retry(&op, || async {
            let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
            let req = Req::new(Method::PUT, url, &scopes)
                .header(CONTENT_TYPE, media_type)
                .body(ReqBody::Bytes(bytes.clone()));
            let resp = self.send(&req, &op).await?;
            match resp.status().as_u16() {
                200 | 201 | 202 | 204 => {
                    if let Some(got) = resp.headers().get("Docker-Content-Digest").and_then(|v| v.to_str().ok()) {
                        if got != digest.to_string() {
                            self.reporter.warn(&format!(
                                "{op}: the registry reports digest {got}, but the manifest bytes hash to {digest}"
                            ));
                        }
                    }
                    Ok(resp.headers().clone())
                }
                _ => Err(self.status_fail(resp, &op, repo).await),
            }
        })
        .await
    }

    /// `GET /v2/<repo>/blobs/<digest>` (redirects to storage are followed without credentials).
    pub(crate) async fn get_blob(&self, repo: &str, d: &Digest, op: &str) -> Result<Response, Fail> {
        let scopes = Scopes::pull(repo);
        let url = self.url(&format!("{repo}/blobs/{d}")).await?;
        let req = Req { streaming: true, ..Req::new(Method::GET, url, &scopes) };
        let resp = self.send(&req, op).await?;
        if resp.status().as_u16() == 200 {
            Ok(resp)
        } else {
            Err(self.status_fail(resp, op, repo).await)
        }
    }

    /// `GET /v2/<repo>/tags/list`, page by page (`n` and `last`, following
    /// the `Link: <…>; rel="next"` header when the registry sends one), at
    /// most `max` tags (more is an error). A repository the registry does
    /// not know (404) has no tags.
    pub async fn list_tags(&self, repo: &str, max: usize) -> Result<Vec<String>, RegistryError> {
        let scopes = Scopes::pull(repo);
        let op = format!("listing the tags of {}/{repo}", self.host);
        let base = self.url(&format!("{repo}/tags/list")).await?;
        let mut url = base.clone();
        url.query_pairs_mut().append_pair("n", &TAGS_PAGE.to_string());
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..=max / TAGS_PAGE + 1 {
            let page = self
                .retry(&op, || async {
                    let resp = self.send(&Req::new(Method::GET, url.clone(), &scopes), &op).await?;
                    match resp.status().as_u16() {
                        200 => {}
                        404 => return Ok(None),
                        _ => return Err(self.status_fail(resp, &op, repo).await),
                    }
                    let link = resp.headers().get("Link").and_then(|v| v.to_str().ok()).and_then(next_link);
                    let body = read_limited(resp, MAX_TAGS_PAGE + 1).await;
                    if body.len() > MAX_TAGS_PAGE {
                        return Err(Fail::Fatal(RegistryError::Invalid(format!(
                            "{op}: a page of the tags list is larger than {MAX_TAGS_PAGE} bytes"
                        ))));
                    }
                    Ok(Some((body, link)))
                })
                .await?;
            let Some((body, link)) = page else { return Ok(out) };
            #[derive(serde::Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let list: TagList = serde_json::from_slice(&body)
                .map_err(|e| RegistryError::Invalid(format!("{op}: the registry sent an invalid tags list: {e}")))?;
            let tags = list.tags.unwrap_or_default();
            let count = tags.len();
            let mut new = 0;
            for t in tags {
                if seen.insert(t.clone()) {
                    out.push(t);
                    new += 1;
                }
            }
            if out.len() > max {
                return Err(RegistryError::Invalid(format!("{op}: the repository has more than {max} tags")));
            }
            // A registry that ignores `n` sends everything at once; a page
            // with nothing new ends the listing either way.
            if new == 0 {
                return Ok(out);
            }
            url = match link {
                Some(l) => {
                    let next = url
                        .join(&l)
                        .map_err(|e| RegistryError::Invalid(format!("{op}: invalid `Link` header `{l}`: {e}")))?;
                    if next.origin() != base.origin() {
                        return Err(RegistryError::Invalid(format!(
                            "{op}: the `Link` header points to another host ({}); refusing",
                            next.origin().ascii_serialization()
                        )));
                    }
                    next
                }
                None if count >= TAGS_PAGE => {
                    let mut next = base.clone();
                    let last = out.last().cloned().unwrap_or_default();
                    next.query_pairs_mut().append_pair("n", &TAGS_PAGE.to_string()).append_pair("last", &last);
                    next
                }
                None => return Ok(out),
            };
        }
        Err(RegistryError::Invalid(format!("{op}: the repository has more than {max} tags")))
    }

    /// The referrers API: `Some(index)` when the registry supports it, `None` when not.
    pub async fn referrers_api(&self, repo: &str, subject: &Digest) -> Result<Option<Bytes>, RegistryError> {
        let scopes = Scopes::pull(repo);
        let op = format!("listing referrers of {} in {}/{repo}", short(subject), self.host);
        self.retry(&op, || async {
            let url = self.url(&format!("{repo}/referrers/{subject}")).await?;
            let resp = self.send(&Req::new(Method::GET, url, &scopes).header(ACCEPT, media::INDEX), &op).await?;
            let status = resp.status().as_u16();
            let is_index = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with(media::INDEX));
            match status {
                200 if is_index => Ok(Some(Bytes::from(read_limited(resp, MAX_MANIFEST).await))),
                // 404 (or anything but an index) means no referrers API: use the fallback tag.
                200 | 400 | 404 | 405 => Ok(None),
                _ => Err(self.status_fail(resp, &op, repo).await),
            }
        })
        .await
    }
}

/// The target of `rel="next"` in a `Link` header (`<URL>; rel="next"`).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_name_the_next_page() {
        assert_eq!(
            next_link("</v2/m/tags/list?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/m/tags/list?last=b&n=2")
        );
        assert_eq!(next_link("<https://r/a>; rel=\"prev\", <https://r/b>; rel=next").as_deref(), Some("https://r/b"));
        assert_eq!(next_link("<https://r/a>; rel=\"prev\""), None);
        assert_eq!(next_link("garbage"), None);
    }
}
