//! The HTTP side of the distribution API for one registry: choosing https
//! or (for loopback and `--insecure-registry` hosts only) http, attaching
//! credentials, following redirects by hand (so streamed upload bodies can
//! be re-sent and `Authorization` never leaves the registry's origin),
//! re-authenticating on 401, and classifying failures as worth retrying or
//! not. The operations built on it are in `ops.rs`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use tracing::debug;
use url::Url;

use crate::net::redact::url as redact_url;
use crate::registry::auth::{parse_challenge, AuthState, Challenge, Scheme, Scopes, TokenResponse};
use crate::registry::creds::{Credential, Secret};
use crate::registry::error::{describe_body, hint_for, Fail, RegistryError};
use crate::registry::ClientOptions;
use crate::report::Reporter;

/// A request body that can be produced again (for redirects and re-auth).
pub(crate) enum ReqBody<'a> {
    /// No body (sent with `Content-Length: 0` on POST/PUT/PATCH).
    Empty,
    /// Bytes in memory.
    Bytes(Bytes),
    /// A stream of known length, opened anew for every send.
    Stream { len: u64, open: &'a (dyn Fn() -> reqwest::Body + Send + Sync) },
}

/// One request to the registry.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: ReqBody<'a>,
    pub scopes: &'a Scopes,
    /// The response body is streamed (a blob): no deadline for the whole request.
    pub streaming: bool,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, url: Url, scopes: &'a Scopes) -> Req<'a> {
        Req { method, url, headers: HeaderMap::new(), body: ReqBody::Empty, scopes, streaming: false }
    }
    pub fn header(mut self, k: HeaderName, v: &str) -> Req<'a> {
        if let Ok(v) = HeaderValue::from_str(v) {
            self.headers.insert(k, v);
        }
        self
    }
    pub fn body(mut self, b: ReqBody<'a>) -> Req<'a> {
        self.body = b;
        self
    }
}

/// One registry host and everything learnt about it.
pub(crate) struct Registry {
    /// The host as written in references (for messages and credentials).
    pub host: String,
    api_host: String,
    http_allowed: bool,
    http: reqwest::Client,
    base: tokio::sync::OnceCell<Url>,
    auth: tokio::sync::Mutex<AuthState>,
    pub cred: Option<Credential>,
    searched: Vec<String>,
    pub opts: Arc<ClientOptions>,
    pub reporter: Arc<dyn Reporter>,
}

/// The host part of `host[:port]` (`[::1]:5000` → `::1`).
fn host_only(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    h.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map(|(h, _)| h).unwrap_or(h)
}

/// True for `localhost`, `*.localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback(host: &str) -> bool {
    let h = host_only(host);
    h == "localhost" || h.ends_with(".localhost") || h.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// True when `host` (with port) is listed, with or without the port, in `insecure`.
pub fn named_insecure(host: &str, insecure: &[String]) -> bool {
    insecure.iter().any(|i| i == host || i == host_only(host))
}

/// True when plain HTTP may be used for `host` (with port): loopback, or
/// listed (with or without the port) in `insecure`.
pub fn http_allowed(host: &str, insecure: &[String]) -> bool {
    is_loopback(host) || named_insecure(host, insecure)
}

fn url_host_port(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) if h.contains(':') => format!("[{h}]:{p}"),
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn challenge_of(resp: &Response) -> Option<Challenge> {
    resp.headers().get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).filter_map(parse_challenge).next()
}

fn sensitive(v: String) -> Option<HeaderValue> {
    let mut h = HeaderValue::from_str(&v).ok()?;
    h.set_sensitive(true);
    Some(h)
}

impl Registry {
    pub fn new(
        host: &str,
        http: reqwest::Client,
        lookup: crate::registry::creds::Lookup,
        opts: Arc<ClientOptions>,
        reporter: Arc<dyn Reporter>,
    ) -> Registry {
        Registry {
            host: host.to_string(),
            api_host: crate::oci::reference::api_host(host).to_string(),
            http_allowed: http_allowed(host, &opts.insecure_registries),
            http,
            base: tokio::sync::OnceCell::new(),
            auth: tokio::sync::Mutex::new(AuthState { scheme: Scheme::Anonymous, tokens: Default::default() }),
            cred: lookup.credential,
            searched: lookup.searched,
            opts,
            reporter,
        }
    }

    /// `https://host/` (or `http://`), learnt on first use by `GET /v2/`.
    pub async fn base(&self) -> Result<Url, RegistryError> {
        self.base.get_or_try_init(|| self.ping()).await.cloned()
    }

    /// `base` + `v2/<path>`.
    pub async fn url(&self, path: &str) -> Result<Url, RegistryError> {
        let base = self.base().await?;
        base.join(&format!("v2/{path}"))
            .map_err(|e| RegistryError::Invalid(format!("{}: bad URL path `{path}`: {e}", self.host)))
    }

    async fn ping(&self) -> Result<Url, RegistryError> {
        let op = format!("contacting {}", self.host);
        let schemes: &[&str] = if self.http_allowed { &["https", "http"] } else { &["https"] };
        let (mut attempt, started) = (0, Instant::now());
        loop {
            attempt += 1;
            let mut errors = Vec::new();
            let mut outcome = None;
            for scheme in schemes {
                let base = Url::parse(&format!("{scheme}://{}/", self.api_host)).map_err(|e| {
                    RegistryError::Invalid(format!("`{}` is not a valid registry host: {e}", self.host))
                })?;
                let url = base.join("v2/").map_err(|e| RegistryError::Invalid(e.to_string()))?;
                match self.http.get(url.clone()).timeout(self.opts.net.timeouts.deadline).send().await {
                    Ok(resp) => {
                        outcome = Some((base, url, resp));
                        break;
                    }
                    Err(e) => {
                        let msg = crate::net::redact::error_chain(&e);
                        // The server speaks TLS but its certificate does not
                        // verify: falling back to HTTP would not help.
                        if *scheme == "https" && crate::net::is_certificate_error(&msg) {
                            return Err(RegistryError::Network {
                                operation: op,
                                message: format!("TLS: {msg}"),
                                attempts: attempt,
                                hint: format!(
                                    "if the registry uses a private CA, pass its certificate with --ca-file FILE; to skip verification for this host only, use --insecure-registry {}",
                                    self.host
                                ),
                            });
                        }
                        errors.push(format!("{scheme}: {msg}"));
                    }
                }
            }
            let fail = match outcome {
                None => {
                    let hint = if self.http_allowed {
                        format!("is a registry listening at {}? (https and http were both tried)", self.host)
                    } else if is_loopback(&self.host) {
                        String::new()
                    } else {
                        format!(
                            "check the host name and network; for a registry with a private CA use --ca-file FILE; plain HTTP is used only for loopback hosts and those named with --insecure-registry {}",
                            self.host
                        )
                    };
                    Fail::Retry(
                        RegistryError::Network {
                            operation: op.clone(),
                            message: errors.join("; "),
                            attempts: attempt,
                            hint,
                        },
                        None,
                    )
                }
                Some((base, url, resp)) => {
                    let status = resp.status().as_u16();
                    debug!(url = %url, status, "ping");
                    match status {
                        200..=299 | 403 => return self.learnt(base, Scheme::Anonymous).await,
                        401 => {
                            let scheme = match challenge_of(&resp) {
                                Some(Challenge::Bearer { realm, service, .. }) => Scheme::Bearer { realm, service },
                                _ => Scheme::Basic,
                            };
                            return self.learnt(base, scheme).await;
                        }
                        404 => {
                            return Err(RegistryError::Http {
                                operation: op,
                                status,
                                detail: format!("{} is not a registry API endpoint", redact_url(url.as_str())),
                                attempts: attempt,
                                hint: "check the host and port of the reference".into(),
                            })
                        }
                        s => {
                            let ra = crate::net::retry::retry_after(resp.headers());
                            let body = resp.bytes().await.unwrap_or_default();
                            let (detail, codes) = describe_body(&body);
                            let e = RegistryError::Http {
                                operation: op.clone(),
                                status: s,
                                detail,
                                attempts: attempt,
                                hint: hint_for(s, &codes, ""),
                            };
                            if crate::net::retry::transient_status(s) {
                                Fail::Retry(e, ra)
                            } else {
                                return Err(e);
                            }
                        }
                    }
                }
            };
            if let Fail::Retry(e, ra) = fail {
                self.backoff(&op, e, attempt, started, ra).await?;
            }
        }
    }

    async fn learnt(&self, base: Url, scheme: Scheme) -> Result<Url, RegistryError> {
        debug!(registry = %self.host, base = %base, ?scheme, "registry ready");
        self.auth.lock().await.scheme = scheme;
        Ok(base)
    }

    /// Waits before attempt `attempt + 1` of an operation begun at
    /// `started`; the error to return when attempts are used up or the
    /// deadline passed.
    pub async fn backoff(
        &self,
        op: &str,
        err: RegistryError,
        attempt: u32,
        started: Instant,
        after: Option<Duration>,
    ) -> Result<(), RegistryError> {
        let policy = self.opts.retry_policy();
        let wait = match policy.next_wait(attempt, started, self.opts.net.timeouts.deadline, after) {
            Ok(w) => w,
            Err(crate::net::retry::Stop::Deadline(d)) => return Err(err.with_attempts(attempt).with_deadline(d)),
            Err(crate::net::retry::Stop::Attempts) => return Err(err.with_attempts(attempt)),
        };
        debug!(operation = op, attempt, wait_ms = wait.as_millis() as u64, "retrying");
        // The error already names its operation.
        self.reporter.warn(&format!(
            "{} — retrying in {:.1}s (attempt {} of {})",
            first_line(&err.to_string()),
            wait.as_secs_f64(),
            attempt + 1,
            policy.retries + 1
        ));
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Runs `f` until it succeeds, fails for good, or attempts run out.
    pub async fn retry<T, F, Fut>(&self, op: &str, mut f: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Fail>>,
    {
        let (mut attempt, started) = (0, Instant::now());
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(Fail::Fatal(e)) => return Err(e.with_attempts(attempt)),
                Err(Fail::Retry(e, after)) => self.backoff(op, e, attempt, started, after).await?,
            }
        }
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        let c = self.cred.as_ref()?;
        match &c.secret {
            Secret::Password(p) => sensitive(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{p}", c.username))
            )),
            Secret::IdentityToken(_) => None,
        }
    }

    /// The `Authorization` value for a request needing `scopes`.
    async fn authorization(&self, scopes: &Scopes, op: &str) -> Result<Option<HeaderValue>, Fail> {
        let mut st = self.auth.lock().await;
        match st.scheme.clone() {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.basic_header()),
            Scheme::Bearer { realm, service } => {
                if let Some(t) = st.cached(scopes, Instant::now()) {
                    return Ok(sensitive(format!("Bearer {t}")));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scopes, op).await?;
                let v = token.value.clone();
                st.tokens.insert(scopes.key(), token);
                Ok(sensitive(format!("Bearer {v}")))
            }
        }
    }

    /// After a 401: learns the scheme from the challenge and fetches a fresh
    /// token; false when trying again cannot help.
    async fn reauthenticate(&self, scopes: &Scopes, challenge: Option<Challenge>, op: &str) -> Result<bool, Fail> {
        let mut st = self.auth.lock().await;
        match challenge {
            Some(Challenge::Bearer { realm, service, scope, .. }) => {
                st.scheme = Scheme::Bearer { realm: realm.clone(), service: service.clone() };
                st.tokens.remove(&scopes.key());
                let wanted = scopes.merged_with(scope.as_deref());
                let token = self.fetch_token(&realm, service.as_deref(), &wanted, op).await?;
                // The token covers `wanted` ⊇ `scopes`: good for both.
                st.tokens.insert(scopes.key(), token.clone());
                st.tokens.insert(wanted.key(), token);
                Ok(true)
            }
            Some(Challenge::Basic { .. }) => {
                let had = st.scheme == Scheme::Basic;
                st.scheme = Scheme::Basic;
                Ok(!had && self.cred.is_some())
            }
            None => Ok(false),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &Scopes,
        op: &str,
    ) -> Result<crate::registry::auth::Token, Fail> {
        let url = Url::parse(realm).map_err(|e| {
            Fail::Fatal(RegistryError::Invalid(format!("{}: the token realm `{realm}` is not a URL: {e}", self.host)))
        })?;
        if url.scheme() != "https"
            && !(url.scheme() == "http" && http_allowed(&url_host_port(&url), &self.opts.insecure_registries))
        {
            return Err(Fail::Fatal(RegistryError::Invalid(format!(
                "{}: the token server {} is not HTTPS; refusing to send credentials over plain HTTP\nhint: if this is intended, name its host with --insecure-registry {}",
                self.host,
                redact_url(realm),
                url_host_port(&url)
            ))));
        }
        let shown = redact_url(realm);
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(s) = service {
            q.push(("service", s.to_string()));
        }
        for s in &scopes.0 {
            q.push(("scope", s.clone()));
        }
        let rb = match self.cred.as_ref().map(|c| &c.secret) {
            Some(Secret::IdentityToken(t)) => {
                let mut form: Vec<(&str, String)> = vec![
                    ("grant_type", "refresh_token".into()),
                    ("client_id", "strata".into()),
                    ("refresh_token", t.clone()),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                form.push(("scope", scopes.key()));
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                self.http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            Some(Secret::Password(_)) => {
                let mut rb = self.http.get(url.clone()).query(&q);
                if let Some(c) = &self.cred {
                    rb = rb.query(&[("account", c.username.as_str())]);
                }
                match self.basic_header() {
                    Some(h) => rb.header(AUTHORIZATION, h),
                    None => rb,
                }
            }
            None => self.http.get(url.clone()).query(&q),
        };
        let resp = rb.timeout(self.opts.net.timeouts.deadline).send().await.map_err(|e| {
            Fail::Retry(
                RegistryError::Network {
                    operation: format!("{op}: getting a token from {shown}"),
                    message: crate::net::redact::error_chain(&e),
                    attempts: 1,
                    hint: "the registry sends clients to this token server; check that it is reachable".into(),
                },
                None,
            )
        })?;
        let status = resp.status().as_u16();
        debug!(realm = %shown, status, scopes = %scopes.key(), "token request");
        if status == 401 || status == 403 {
            let msg = match &self.cred {
                Some(c) => format!(
                    "{op}: the token server {shown} of {} rejected {} (HTTP {status})\nhint: check the user name and password (or token) in {}; for a different account pass --creds USER:PASSWORD",
                    self.host,
                    c.describe(),
                    c.source
                ),
                None => format!(
                    "{op}: the token server {shown} of {} refused anonymous access (HTTP {status}) and no credentials were found\n  looked in: {}\nhint: pass --creds USER:PASSWORD, set STRATA_REGISTRY_USER and STRATA_REGISTRY_PASSWORD, or log in with `podman login {}`",
                    self.host,
                    self.searched.join(", "),
                    self.host
                ),
            };
            return Err(Fail::Fatal(RegistryError::Unauthorized { registry: self.host.clone(), message: msg }));
        }
        if !(200..300).contains(&status) {
            let ra = crate::net::retry::retry_after(resp.headers());
            let body = resp.bytes().await.unwrap_or_default();
            let (detail, _) = describe_body(&body);
            let e = RegistryError::Http {
                operation: format!("{op}: getting a token from {shown}"),
                status,
                detail,
                attempts: 1,
                hint: String::new(),
            };
            return Err(if crate::net::retry::transient_status(status) { Fail::Retry(e, ra) } else { Fail::Fatal(e) });
        }
        let body = resp.bytes().await.map_err(|e| {
            Fail::Retry(
                RegistryError::Network {
                    operation: format!("{op}: reading a token from {shown}"),
                    message: crate::net::redact::error_chain(&e),
                    attempts: 1,
                    hint: String::new(),
                },
                None,
            )
        })?;
        let tr: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Fail::Fatal(RegistryError::Invalid(format!(
                "{op}: the token server {shown} answered with something that is not a token response: {e}"
            )))
        })?;
        tr.into_token(Instant::now()).ok_or_else(|| {
            Fail::Fatal(RegistryError::Invalid(format!("{op}: the token server {shown} answered without a token")))
        })
    }

    fn unauthorized(&self, op: &str, scopes: &Scopes, challenge: Option<Challenge>, status: u16) -> RegistryError {
        let insufficient =
            matches!(&challenge, Some(Challenge::Bearer { error: Some(e), .. }) if e == "insufficient_scope");
        let message = match (&self.cred, insufficient) {
            (None, _) => format!(
                "{op}: {} requires authentication (HTTP {status}) and no credentials were found for it\n  looked in: {}\nhint: pass --creds USER:PASSWORD, set STRATA_REGISTRY_USER and STRATA_REGISTRY_PASSWORD, or log in with `podman login {}` or `docker login {}`",
                self.host,
                self.searched.join(", "),
                self.host,
                self.host
            ),
            (Some(c), true) => format!(
                "{op}: {} accepted {} but did not grant `{}` (HTTP {status}, insufficient_scope)\nhint: check that this account may push to (or pull from) the repository",
                self.host,
                c.describe(),
                scopes.key()
            ),
            (Some(c), false) => format!(
                "{op}: {} rejected {} (HTTP {status})\nhint: check the user name and password (or token) in {}; for a different account pass --creds USER:PASSWORD",
                self.host,
                c.describe(),
                c.source
            ),
        };
        RegistryError::Unauthorized { registry: self.host.clone(), message }
    }

    /// Sends `req` with credentials, following redirects and
    /// re-authenticating once on 401. Other statuses are returned as they are.
    pub async fn send(&self, req: &Req<'_>, op: &str) -> Result<Response, Fail> {
        let base = self.base().await.map_err(Fail::Fatal)?;
        let mut reauthed = false;
        loop {
            let auth = self.authorization(req.scopes, op).await?;
            let resp = self.send_following(req, auth.as_ref(), &base, op).await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                let ch = challenge_of(&resp);
                debug!(url = %redact_url(resp.url().as_str()), challenge = ?ch, "401");
                if !reauthed && self.reauthenticate(req.scopes, ch.clone(), op).await? {
                    reauthed = true;
                    continue;
                }
                return Err(Fail::Fatal(self.unauthorized(op, req.scopes, ch, 401)));
            }
            return Ok(resp);
        }
    }

    async fn send_following(
        &self,
        req: &Req<'_>,
        auth: Option<&HeaderValue>,
        base: &Url,
        op: &str,
    ) -> Result<Response, Fail> {
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut with_body = true;
        for _hop in 0..10 {
            let mut rb = self.http.request(method.clone(), url.clone()).headers(req.headers.clone());
            // Credentials go only to the registry's own origin: a redirect to
            // object storage or another port must not receive them.
            if url.origin() == base.origin() {
                if let Some(a) = auth {
                    rb = rb.header(AUTHORIZATION, a.clone());
                }
            }
            let sends_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
            // Small requests must finish within the deadline; streamed blobs
            // (up or down) are bounded by the idle timeout and minimum speed.
            if !req.streaming && !matches!(req.body, ReqBody::Stream { .. }) {
                rb = rb.timeout(self.opts.net.timeouts.deadline);
            }
            rb = match (&req.body, with_body) {
                (ReqBody::Bytes(b), true) => rb.body(b.clone()),
                (ReqBody::Stream { len, open }, true) => rb.header(CONTENT_LENGTH, *len).body(open()),
                _ if sends_body => rb.header(CONTENT_LENGTH, 0).body(Bytes::new()),
                _ => rb,
            };
            let started = Instant::now();
            let resp = rb.send().await.map_err(|e| {
                let message = crate::net::transport_message(&e, &self.opts.net.timeouts);
                if crate::net::is_certificate_error(&message) {
                    // Another attempt meets the same certificate.
                    return Fail::Fatal(RegistryError::Network {
                        operation: op.to_string(),
                        message: format!("TLS: {message}"),
                        attempts: 1,
                        hint: crate::net::TLS_HINT.into(),
                    });
                }
                Fail::Retry(
                    RegistryError::Network {
                        operation: op.to_string(),
                        message,
                        attempts: 1,
                        hint: format!("the connection to {} failed; check the network or proxy, then run the command again (blobs already uploaded are skipped)", url_host_port(&url)),
                    },
                    None,
                )
            })?;
            let status = resp.status().as_u16();
            debug!(
                "{method} {} → {status} ({:.0} ms)",
                redact_url(url.as_str()),
                started.elapsed().as_secs_f64() * 1000.0
            );
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                    return Ok(resp);
                };
                let next = url.join(loc).map_err(|e| {
                    Fail::Fatal(RegistryError::Invalid(format!(
                        "{op}: redirect to an invalid Location `{}`: {e}",
                        redact_url(loc)
                    )))
                })?;
                self.check_target(&next, op)?;
                if status == 303 || (matches!(status, 301 | 302) && method == Method::POST) {
                    method = Method::GET;
                    with_body = false;
                }
                url = next;
                continue;
            }
            return Ok(resp);
        }
        Err(Fail::Fatal(RegistryError::Invalid(format!("{op}: more than 10 redirects"))))
    }

    /// Refuses http:// targets (Locations, redirects) on hosts where plain HTTP is not allowed.
    pub fn check_target(&self, u: &Url, op: &str) -> Result<(), Fail> {
        match u.scheme() {
            "https" => Ok(()),
            "http" if http_allowed(&url_host_port(u), &self.opts.insecure_registries) => Ok(()),
            _ => Err(Fail::Fatal(RegistryError::Invalid(format!(
                "{op}: the registry sent the client to {}, which is not HTTPS; refusing\nhint: if this host is trusted, name it with --insecure-registry {}",
                redact_url(u.as_str()),
                url_host_port(u)
            )))),
        }
    }

    /// Turns an unexpected response into a failure (retryable or not).
    pub async fn status_fail(&self, resp: Response, op: &str, repo: &str) -> Fail {
        let status = resp.status().as_u16();
        let ra = crate::net::retry::retry_after(resp.headers());
        let body = read_limited(resp, 64 << 10).await;
        let (detail, codes) = describe_body(&body);
        let e = RegistryError::Http {
            operation: op.to_string(),
            status,
            detail,
            attempts: 1,
            hint: hint_for(status, &codes, repo),
        };
        if crate::net::retry::transient_status(status) {
            Fail::Retry(e, ra)
        } else {
            Fail::Fatal(e)
        }
    }
}

/// Reads at most `max` bytes of a body (error bodies can be anything).
pub(crate) async fn read_limited(mut resp: Response, max: usize) -> Vec<u8> {
    let mut v = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        v.extend_from_slice(&c);
        if v.len() >= max {
            v.truncate(max);
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_hosts() {
        assert!(
            is_loopback("127.0.0.1:5000")
                && is_loopback("localhost")
                && is_loopback("[::1]:5000")
                && is_loopback("registry.localhost:80")
        );
        assert!(!is_loopback("10.0.0.1:5000") && !is_loopback("example.com"));
        let ins = vec!["reg.internal:5000".to_string(), "other.internal".to_string()];
        assert!(http_allowed("reg.internal:5000", &ins) && http_allowed("other.internal:443", &ins));
        assert!(!http_allowed("reg.internal:6000", &ins) && !http_allowed("example.com", &ins));
    }
}
