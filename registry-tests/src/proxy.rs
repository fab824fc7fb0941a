//! The fault proxy: an HTTP/1.1 proxy in front of a real docker-registry
//! that forwards requests unchanged (keeping `Host`, so the registry's
//! Locations point back at the proxy) except where a rule or mode says to
//! misbehave. It is the only fake in the registry tests and stores nothing
//! itself: what a push leaves behind is judged by the real registry.
//!
//! Faults: answer a status (500, 503, 429 with Retry-After, …) instead of
//! forwarding; read part of a request body and drop the connection; answer
//! 307 to the same path on a second port (which records whether
//! `Authorization` arrived, then forwards with the credentials a presigned
//! URL would carry); rewrite upload Locations to relative ones; reject
//! bearer tokens past their `exp` (distribution allows 60 s of leeway, real
//! registries often do not); refuse request bodies over a size (GHCR's
//! 4 MiB cap, answered 416 with GHCR's error text); throttle uploads;
//! accept a request and answer nothing (a stalled registry); forward the
//! answer one byte at a time with a pause between bytes (a registry that
//! drip-feeds). A real registry produces none of these on demand.

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, LOCATION};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

type BoxError = Box<dyn Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What a rule does to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status (with `Retry-After: N` when given) without forwarding.
    Status {
        /// Status code.
        status: u16,
        /// Seconds for `Retry-After`.
        retry_after: Option<u64>,
    },
    /// Read this many bytes of the request body, then drop the connection.
    DropAfter(u64),
    /// Answer 307 to the same path and query on the alternate port.
    RedirectToAlt,
    /// Read the request and answer nothing for this long, then close.
    Silent(Duration),
    /// Forward, then send the answer's body one byte at a time, this long apart.
    Drip(Duration),
}

/// A fault for the next `times` requests that match.
#[derive(Debug, Clone)]
pub struct Rule {
    /// HTTP method (`""` = any).
    pub method: &'static str,
    /// A substring of path and query (`""` = any).
    pub path: &'static str,
    /// Only requests whose `Content-Length` is at least this.
    pub min_body: u64,
    /// How many matching requests get the fault.
    pub times: usize,
    /// The fault.
    pub fault: Fault,
}

/// Standing behaviours.
#[derive(Debug, Clone, Default)]
pub struct Modes {
    /// Rewrite upload `Location`s to relative references (`<uuid>?_state=…`).
    pub relative_location: bool,
    /// Refuse request bodies larger than this (416, GHCR's message).
    pub body_cap: Option<u64>,
    /// Reject bearer tokens whose `exp` has passed: (realm, service) for the challenge.
    pub expire_tokens: Option<(String, String)>,
    /// Forward request bodies at most this many bytes per second.
    pub throttle: Option<u64>,
    /// `Authorization` the alternate port adds when forwarding (what a presigned URL grants).
    pub alt_auth: Option<String>,
}

/// What the proxy saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// `METHOD path?query → status` of every request on the main port.
    pub requests: Vec<String>,
    /// Faults injected (`METHOD path: fault`).
    pub faults: Vec<String>,
    /// Requests on the alternate port.
    pub alt_requests: usize,
    /// Of those, how many carried `Authorization`.
    pub alt_with_authorization: usize,
    /// Bearer tokens rejected as expired.
    pub expired_tokens: usize,
    /// Blob PUTs with a body but no `Content-Length`.
    pub puts_without_length: usize,
}

struct State {
    upstream: SocketAddr,
    alt_port: u16,
    rules: Mutex<Vec<Rule>>,
    modes: Mutex<Modes>,
    stats: Mutex<Stats>,
    body_bytes: AtomicU64,
}

/// A running proxy.
pub struct FaultProxy {
    /// Main port.
    pub addr: SocketAddr,
    /// The port redirects go to.
    pub alt: SocketAddr,
    state: Arc<State>,
    rt: Option<tokio::runtime::Runtime>,
}

fn full(status: u16, body: &str) -> Response<Body> {
    let mut r =
        Response::new(Full::new(Bytes::from(body.to_string())).map_err(|e: Infallible| match e {}).boxed_unsync());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn drain(body: Incoming) -> u64 {
    let mut n = 0;
    let mut s = BodyStream::new(body);
    while let Some(Ok(f)) = s.next().await {
        if let Some(d) = f.data_ref() {
            n += d.len() as u64;
        }
    }
    n
}

impl FaultProxy {
    /// A proxy in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("proxy runtime");
        let main = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let alt = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy alt");
        let (addr, alt_addr) = (main.local_addr().unwrap(), alt.local_addr().unwrap());
        let state = Arc::new(State {
            upstream,
            alt_port: alt_addr.port(),
            rules: Mutex::new(Vec::new()),
            modes: Mutex::new(Modes::default()),
            stats: Mutex::new(Stats::default()),
            body_bytes: AtomicU64::new(0),
        });
        for (l, is_alt) in [(main, false), (alt, true)] {
            l.set_nonblocking(true).unwrap();
            let st = state.clone();
            rt.spawn(async move {
                let l = tokio::net::TcpListener::from_std(l).expect("tokio listener");
                loop {
                    let Ok((stream, _)) = l.accept().await else { continue };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(st.clone(), req, is_alt));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        }
        FaultProxy { addr, alt: alt_addr, state, rt: Some(rt) }
    }

    /// `127.0.0.1:PORT` of the main port.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Adds a rule (rules are tried in order).
    pub fn rule(&self, r: Rule) {
        self.state.rules.lock().unwrap().push(r);
    }

    /// Drops all rules.
    pub fn clear_rules(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Changes the standing modes.
    pub fn modes(&self, f: impl FnOnce(&mut Modes)) {
        f(&mut self.state.modes.lock().unwrap());
    }

    /// A copy of the statistics.
    pub fn stats(&self) -> Stats {
        self.state.stats.lock().unwrap().clone()
    }

    /// Request body bytes forwarded upstream so far.
    pub fn body_bytes(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn take_rule(st: &State, method: &str, pq: &str, len: u64) -> Option<Fault> {
    let mut rules = st.rules.lock().unwrap();
    let r = rules.iter_mut().find(|r| {
        r.times > 0 && (r.method.is_empty() || r.method == method) && pq.contains(r.path) && len >= r.min_body
    })?;
    r.times -= 1;
    Some(r.fault.clone())
}

async fn handle(st: Arc<State>, req: Request<Incoming>, alt: bool) -> Result<Response<Body>, BoxError> {
    let method = req.method().to_string();
    let pq = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
    let len: u64 = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    let modes = st.modes.lock().unwrap().clone();
    if alt {
        {
            let mut s = st.stats.lock().unwrap();
            s.alt_requests += 1;
            if req.headers().contains_key(AUTHORIZATION) {
                s.alt_with_authorization += 1;
            }
        }
        return forward(st, req, modes.alt_auth.clone(), &modes, &method, &pq).await;
    }
    if method == "PUT" && pq.contains("digest=") && req.headers().contains_key("transfer-encoding") {
        st.stats.lock().unwrap().puts_without_length += 1;
    }
    let note = |st: &State, what: String| st.stats.lock().unwrap().faults.push(format!("{method} {pq}: {what}"));
    if let Some(cap) = modes.body_cap {
        if len > cap {
            drain(req.into_body()).await;
            note(&st, format!("416 body of {len} bytes over the cap"));
            return Ok(full(
                416,
                r#"{"errors":[{"code":"REQUESTED_RANGE_NOT_SATISFIABLE","message":"the request body is too large and exceeds the maximum permissible limit of 4.00MiB"}]}"#,
            ));
        }
    }
    if let Some((realm, service)) = &modes.expire_tokens {
        let tok = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        if let Some(t) = tok {
            if crate::token::jwt_exp(&t).is_some_and(|exp| exp <= now()) {
                drain(req.into_body()).await;
                st.stats.lock().unwrap().expired_tokens += 1;
                note(&st, "401 expired token".into());
                let mut r = full(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}"#);
                let ch = format!("Bearer realm=\"{realm}\",service=\"{service}\",error=\"invalid_token\"");
                r.headers_mut().insert("www-authenticate", HeaderValue::from_str(&ch)?);
                return Ok(r);
            }
        }
    }
    if let Some(fault) = take_rule(&st, &method, &pq, len) {
        note(&st, format!("{fault:?}"));
        match fault {
            Fault::Status { status, retry_after } => {
                drain(req.into_body()).await;
                let mut r =
                    full(status, &format!(r#"{{"errors":[{{"code":"UNKNOWN","message":"injected {status}"}}]}}"#));
                if let Some(s) = retry_after {
                    r.headers_mut().insert("retry-after", HeaderValue::from_str(&s.to_string())?);
                }
                return Ok(r);
            }
            Fault::DropAfter(n) => {
                let mut s = BodyStream::new(req.into_body());
                let mut got = 0u64;
                while got < n {
                    match s.next().await {
                        Some(Ok(f)) => got += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                        _ => break,
                    }
                }
                // An error from the service makes hyper close the connection without answering.
                return Err("injected: connection dropped mid-body".into());
            }
            Fault::Silent(d) => {
                drain(req.into_body()).await;
                tokio::time::sleep(d).await;
                return Err("injected: silence".into());
            }
            Fault::Drip(interval) => {
                let resp = forward(st, req, None, &modes, &method, &pq).await?;
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await?.to_bytes();
                let drip = futures_util::stream::unfold(0usize, move |i| {
                    let bytes = bytes.clone();
                    async move {
                        if i >= bytes.len() {
                            return None;
                        }
                        if i > 0 {
                            tokio::time::sleep(interval).await;
                        }
                        Some((Ok::<_, BoxError>(hyper::body::Frame::data(bytes.slice(i..i + 1))), i + 1))
                    }
                });
                return Ok(Response::from_parts(parts, StreamBody::new(drip).boxed_unsync()));
            }
            Fault::RedirectToAlt => {
                drain(req.into_body()).await;
                let mut r = full(307, "");
                r.headers_mut()
                    .insert(LOCATION, HeaderValue::from_str(&format!("http://127.0.0.1:{}{pq}", st.alt_port))?);
                return Ok(r);
            }
        }
    }
    forward(st, req, None, &modes, &method, &pq).await
}

async fn forward(
    st: Arc<State>,
    req: Request<Incoming>,
    inject_auth: Option<String>,
    modes: &Modes,
    method: &str,
    pq: &str,
) -> Result<Response<Body>, BoxError> {
    let (mut parts, body) = req.into_parts();
    if let Some(a) = inject_auth {
        parts.headers.insert(AUTHORIZATION, HeaderValue::from_str(&a)?);
    }
    parts.uri = pq.parse()?;
    let throttle = modes.throttle;
    let counter = st.clone();
    let stream = BodyStream::new(body).then(move |frame| {
        let counter = counter.clone();
        async move {
            let frame = frame.map_err(|e| Box::new(e) as BoxError)?;
            if let Some(d) = frame.data_ref() {
                counter.body_bytes.fetch_add(d.len() as u64, Ordering::SeqCst);
                if let Some(rate) = throttle {
                    tokio::time::sleep(Duration::from_secs_f64(d.len() as f64 / rate.max(1) as f64)).await;
                }
            }
            Ok::<_, BoxError>(frame)
        }
    });
    let body: Body = StreamBody::new(stream).boxed_unsync();
    let conn = tokio::net::TcpStream::connect(st.upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn)).await?;
    tokio::spawn(connection);
    let resp = sender.send_request(Request::from_parts(parts, body)).await?;
    let (mut rparts, rbody) = resp.into_parts();
    if modes.relative_location {
        if let Some(loc) = rparts.headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string) {
            if let Some(rel) = relative(&loc) {
                rparts.headers.insert(LOCATION, HeaderValue::from_str(&rel)?);
            }
        }
    }
    st.stats.lock().unwrap().requests.push(format!("{method} {pq} → {}", rparts.status.as_u16()));
    Ok(Response::from_parts(rparts, rbody.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
}

/// `http://h/v2/r/blobs/uploads/UUID?q` → `UUID?q`; other absolute URLs → path-absolute.
fn relative(loc: &str) -> Option<String> {
    let rest = loc.strip_prefix("http://").or_else(|| loc.strip_prefix("https://"))?;
    let pq = &rest[rest.find('/')?..];
    if pq.contains("/blobs/uploads/") {
        let (path, query) = match pq.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (pq, None),
        };
        let last = path.rsplit('/').next().filter(|s| !s.is_empty())?;
        return Some(match query {
            Some(q) => format!("{last}?{q}"),
            None => last.to_string(),
        });
    }
    Some(pq.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_locations() {
        assert_eq!(relative("http://127.0.0.1:1/v2/a/b/blobs/uploads/u-1?_state=x").as_deref(), Some("u-1?_state=x"));
        assert_eq!(relative("http://127.0.0.1:1/v2/a/blobs/sha256:ab").as_deref(), Some("/v2/a/blobs/sha256:ab"));
        assert_eq!(relative("/v2/x"), None);
    }
}
