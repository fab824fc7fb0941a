//! The one network layer: an HTTP client built once per command from
//! [`NetOptions`] (extra CA certificates, proxy, timeouts, user agent, URL
//! rewrites for mirrors), one async runtime, one [`retry`] policy that
//! knows which failures are worth another attempt (TLS trust failures and
//! 4xx other than 408/425/429 are not), one way to bound a slow body
//! ([`speed::SpeedGuard`]), and one [`redact`]ion helper for every URL and
//! error text shown. Artifact downloads ([`crate::fetch`]), Debian indexes
//! and the registry client all use it.

pub mod redact;
pub mod retry;
pub mod speed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Hint, IoError};

pub use retry::RetryPolicy;
pub use speed::SpeedGuard;

/// The user agent of every request.
pub const USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));

/// How long network operations may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection (TCP and TLS).
    pub connect: Duration,
    /// With no byte received for this long, an attempt fails (a silent server).
    pub idle: Duration,
    /// An attempt whose body arrives slower than this many bytes per second,
    /// averaged over `idle`, fails (a server that drip-feeds).
    pub min_speed: u64,
    /// An operation (a request and its retries) is not attempted again after
    /// this long, and a request for a small document (a manifest, a token,
    /// an `InRelease`) must complete within it. Large bodies that keep
    /// arriving at `min_speed` or faster are not cut by it.
    pub deadline: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            min_speed: 1024,
            deadline: Duration::from_secs(300),
        }
    }
}

impl Timeouts {
    /// The defaults, overridden by `STRATA_NET_CONNECT_TIMEOUT`,
    /// `STRATA_NET_IDLE_TIMEOUT`, `STRATA_NET_DEADLINE` (durations such as
    /// `30s`, `5m`) and `STRATA_NET_MIN_SPEED` (bytes per second).
    pub fn from_env() -> Result<Timeouts, NetError> {
        let mut t = Timeouts::default();
        let dur = |name: &'static str, into: &mut Duration| -> Result<(), NetError> {
            if let Ok(v) = std::env::var(name) {
                *into = crate::units::parse_duration(&v).map_err(|_| NetError::BadSetting { name, value: v })?;
            }
            Ok(())
        };
        dur("STRATA_NET_CONNECT_TIMEOUT", &mut t.connect)?;
        dur("STRATA_NET_IDLE_TIMEOUT", &mut t.idle)?;
        dur("STRATA_NET_DEADLINE", &mut t.deadline)?;
        if let Ok(v) = std::env::var("STRATA_NET_MIN_SPEED") {
            t.min_speed =
                v.trim().parse().map_err(|_| NetError::BadSetting { name: "STRATA_NET_MIN_SPEED", value: v })?;
        }
        Ok(t)
    }
}

/// Network settings shared by every command that downloads or uploads.
#[derive(Debug, Clone, Default)]
pub struct NetOptions {
    /// Extra CA certificates (PEM bundles) trusted besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// A proxy for every request (`http://host:port`); without it the usual
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` variables apply.
    pub proxy: Option<String>,
    /// URL prefix rewrites (`from`, `to`), first match wins: mirrors.
    pub rewrites: Vec<(String, String)>,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl NetOptions {
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

/// Why the network layer could not be set up, or a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A CA file could not be read.
    #[error("--ca-file: {0}")]
    CaFile(#[source] IoError),
    /// A CA file holds no usable certificate.
    #[error("--ca-file {}: {problem}", path.display())]
    BadCaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The proxy URL is not usable.
    #[error("proxy `{url}`: {message}")]
    BadProxy {
        /// The URL (redacted).
        url: String,
        /// Why.
        message: String,
    },
    /// A setting in the environment does not parse.
    #[error("{name}=`{value}` is not valid (durations: 250ms, 30s, 5m, 1h; speeds: bytes per second)")]
    BadSetting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The HTTP client or runtime could not be built.
    #[error("starting the network client: {0}")]
    Setup(String),
    /// The server's certificate is not trusted.
    #[error("{operation}: TLS: {message}")]
    Tls {
        /// What was being done (names the URL).
        operation: String,
        /// The certificate problem.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{operation}: HTTP {status}{}", retry::attempts_note(*attempts))]
    Status {
        /// What was being done.
        operation: String,
        /// The status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection failed, stalled or was too slow.
    #[error("{operation}: {message}{}", retry::gave_up_note(*attempts, *deadline))]
    Transport {
        /// What was being done.
        operation: String,
        /// What happened.
        message: String,
        /// Attempts made.
        attempts: u32,
        /// The deadline, when it is what ended the attempts.
        deadline: Option<Duration>,
    },
    /// A document was larger than allowed.
    #[error("{operation}: the answer is larger than {limit} bytes")]
    TooLarge {
        /// What was being done.
        operation: String,
        /// The limit.
        limit: usize,
    },
}

impl NetError {
    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            NetError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl Hint for NetError {
    fn hint(&self) -> Option<String> {
        match self {
            NetError::Tls { .. } => Some(TLS_HINT.into()),
            NetError::Transport { .. } => Some("check the network or proxy settings; slow servers are cut off after STRATA_NET_IDLE_TIMEOUT without data or below STRATA_NET_MIN_SPEED (docs/air-gapped.md)".into()),
            _ => None,
        }
    }
}

/// What to do about an untrusted certificate.
pub const TLS_HINT: &str = "if the server uses a private CA, pass its certificate with --ca-file FILE (PEM); a TLS-intercepting proxy needs its CA the same way";

/// Which HTTP client: whether it follows redirects itself (downloads do;
/// the registry client follows them by hand, so credentials stay with the
/// registry's origin and streamed bodies are re-sent) and whether it skips
/// certificate verification (only for hosts the user named as insecure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKind {
    /// Follow redirects.
    pub redirects: bool,
    /// Accept certificates that do not verify.
    pub insecure: bool,
}

/// The network layer of one command: an async runtime and the HTTP
/// clients, each built once on first use.
#[derive(Clone)]
pub struct Net {
    rt: Arc<tokio::runtime::Runtime>,
    certs: Arc<Vec<reqwest::Certificate>>,
    clients: Arc<[std::sync::OnceLock<reqwest::Client>; 4]>,
    opts: Arc<NetOptions>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("opts", &self.opts).finish_non_exhaustive()
    }
}

impl Net {
    /// Reads the CA files and builds the clients.
    pub fn new(opts: NetOptions) -> Result<Net, NetError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-net")
            .enable_all()
            .build()
            .map_err(|e| NetError::Setup(format!("the async runtime: {e}")))?;
        let certs = load_ca_files(&opts.ca_files)?;
        let net = Net { rt: Arc::new(rt), certs: Arc::new(certs), clients: Arc::default(), opts: Arc::new(opts) };
        // Build the common client now, so that a bad proxy fails at once.
        net.http(ClientKind { redirects: true, insecure: false })?;
        Ok(net)
    }

    /// A client of the given kind.
    pub fn http(&self, kind: ClientKind) -> Result<&reqwest::Client, NetError> {
        let slot = &self.clients[usize::from(kind.redirects) * 2 + usize::from(kind.insecure)];
        if let Some(c) = slot.get() {
            return Ok(c);
        }
        let c = build_client(&self.opts, &self.certs, kind)?;
        Ok(slot.get_or_init(|| c))
    }

    /// The client for downloads: follows redirects, verifies certificates.
    pub fn client(&self) -> Result<&reqwest::Client, NetError> {
        self.http(ClientKind { redirects: true, insecure: false })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<tokio::runtime::Runtime> {
        &self.rt
    }

    /// The settings.
    pub fn options(&self) -> &NetOptions {
        &self.opts
    }

    /// Runs a future to completion on the runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// GETs a small document (at most `limit` bytes) with retries, within
    /// the deadline: Debian `InRelease` files and the like.
    pub fn get_small(
        &self,
        url: &str,
        limit: usize,
        policy: &RetryPolicy,
        on_retry: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<u8>, NetError> {
        let url = self.opts.rewrite(url);
        let op = format!("GET {}", redact::url(&url));
        let t = self.opts.timeouts;
        self.block_on(retry::run(policy, t.deadline, &op, on_retry, |_| async {
            let client = self.client().map_err(retry::Failure::Fatal)?;
            let resp = client.get(&url).timeout(t.deadline).send().await.map_err(|e| classify(&e, &op, &t))?;
            let status = resp.status().as_u16();
            if !resp.status().is_success() {
                let e = NetError::Status { operation: op.clone(), status, attempts: 1 };
                return Err(if retry::transient_status(status) {
                    retry::Failure::Retry(e, retry::retry_after(resp.headers()))
                } else {
                    retry::Failure::Fatal(e)
                });
            }
            let mut resp = resp;
            let mut v = Vec::new();
            let mut guard = SpeedGuard::new(&t);
            while let Some(c) = resp.chunk().await.map_err(|e| classify(&e, &op, &t))? {
                v.extend_from_slice(&c);
                if v.len() > limit {
                    return Err(retry::Failure::Fatal(NetError::TooLarge { operation: op.clone(), limit }));
                }
                guard.update(c.len() as u64).map_err(|m| {
                    retry::Failure::Retry(
                        NetError::Transport {
                            operation: op.clone(),
                            message: m.to_string(),
                            attempts: 1,
                            deadline: None,
                        },
                        None,
                    )
                })?;
            }
            Ok(v)
        }))
    }
}

/// The text of a transport error, redacted, saying which timeout a
/// timed-out request ran into.
pub fn transport_message(e: &reqwest::Error, t: &Timeouts) -> String {
    let message = redact::error_chain(e);
    if e.is_timeout() {
        format!("{message}: nothing arrived for {}s (STRATA_NET_IDLE_TIMEOUT)", t.idle.as_secs_f64().round())
    } else {
        message
    }
}

/// Classifies a transport error: an untrusted certificate is final (retrying
/// cannot help), anything else is worth another attempt.
pub fn classify(e: &reqwest::Error, op: &str, t: &Timeouts) -> retry::Failure<NetError> {
    let message = transport_message(e, t);
    if is_certificate_error(&message) {
        return retry::Failure::Fatal(NetError::Tls { operation: op.to_string(), message });
    }
    retry::Failure::Retry(NetError::Transport { operation: op.to_string(), message, attempts: 1, deadline: None }, None)
}

/// True when an error text is about the peer's certificate (not about the
/// peer speaking something other than TLS).
pub fn is_certificate_error(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("certificate") || m.contains("unknownissuer") || m.contains("notvalidforname")
}

fn load_ca_files(files: &[PathBuf]) -> Result<Vec<reqwest::Certificate>, NetError> {
    let mut out = Vec::new();
    for f in files {
        let pem = fs_err::read(f)
            .map_err(|source| NetError::CaFile(IoError { action: "reading", path: f.clone(), source }))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| NetError::BadCaFile {
            path: f.clone(),
            problem: format!("not a PEM certificate bundle: {e}"),
        })?;
        if certs.is_empty() {
            return Err(NetError::BadCaFile {
                path: f.clone(),
                problem: "no certificates found (expected PEM `BEGIN CERTIFICATE` blocks)".into(),
            });
        }
        out.extend(certs);
    }
    Ok(out)
}

fn build_client(
    opts: &NetOptions,
    certs: &[reqwest::Certificate],
    kind: ClientKind,
) -> Result<reqwest::Client, NetError> {
    let t = &opts.timeouts;
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(t.connect)
        .read_timeout(t.idle)
        .pool_idle_timeout(Duration::from_secs(60));
    for c in certs {
        b = b.add_root_certificate(c.clone());
    }
    if let Some(p) = &opts.proxy {
        let proxy = reqwest::Proxy::all(p)
            .map_err(|e| NetError::BadProxy { url: redact::url(p), message: redact::error_chain(&e) })?;
        b = b.proxy(proxy);
    }
    if !kind.redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    if kind.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| NetError::Setup(redact::error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_first_match_wins() {
        let o = NetOptions {
            rewrites: vec![("https://a/".into(), "http://m/a/".into()), ("https://".into(), "http://x/".into())],
            ..Default::default()
        };
        assert_eq!(o.rewrite("https://a/f"), "http://m/a/f");
        assert_eq!(o.rewrite("https://b/f"), "http://x/b/f");
        assert_eq!(o.rewrite("ftp://c"), "ftp://c");
    }
}
