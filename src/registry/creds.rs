//! Where registry credentials come from, in this order (the first source
//! that has an entry for the registry wins):
//!
//! 1. `--creds USER:PASS` (explicit),
//! 2. `STRATA_REGISTRY_USER` + `STRATA_REGISTRY_PASSWORD` in the environment,
//! 3. `--authfile FILE`, else `$REGISTRY_AUTH_FILE` (podman's `auth.json` format),
//! 4. `$XDG_RUNTIME_DIR/containers/auth.json` (where `podman login` writes),
//! 5. `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/containers/auth.json`),
//! 6. `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`).
//!
//! Within a file: `credHelpers[host]`, then `auths` (podman's namespaced
//! `host/namespace` keys match by longest prefix; docker's
//! `https://host/v1/` style keys are normalised), then `credsStore`.
//! Helpers speak docker's credential-helper protocol (`docker-credential-NAME
//! get`, server on stdin, JSON on stdout) and are killed after a timeout.
//! Secrets are never shown: [`Credential`]'s `Debug` hides them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

/// What kind of secret a credential carries.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A password (or a personal access token used as one) for HTTP Basic
    /// auth and token requests.
    Password(String),
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the
    /// token endpoint.
    IdentityToken(String),
}

/// A credential and where it came from.
#[derive(Clone)]
pub struct Credential {
    /// User name (empty for identity tokens).
    pub username: String,
    /// The secret.
    pub secret: Secret,
    /// Where it was found, for messages (`--creds`, `auths["host"] in FILE`, …).
    pub source: String,
}

impl Credential {
    /// The secret text (for sending only).
    pub fn secret_text(&self) -> &str {
        match &self.secret {
            Secret::Password(s) | Secret::IdentityToken(s) => s,
        }
    }

    /// `user `NAME` from SOURCE`, for messages.
    pub fn describe(&self) -> String {
        match &self.secret {
            Secret::Password(_) => format!("user `{}` from {}", self.username, self.source),
            Secret::IdentityToken(_) => format!("an identity token from {}", self.source),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// How credentials are looked up.
#[derive(Clone, Default)]
pub struct CredentialOptions {
    /// `--creds USER:PASS`.
    pub explicit: Option<(String, String)>,
    /// `--authfile FILE` (overrides `REGISTRY_AUTH_FILE`).
    pub authfile: Option<PathBuf>,
    /// Never look anywhere (anonymous access only).
    pub anonymous: bool,
    /// How long a credential helper may take. Default 30 s.
    pub helper_timeout: Option<Duration>,
    /// The environment to read; `None` = the process environment.
    pub env: Option<Env>,
}

impl fmt::Debug for CredentialOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialOptions")
            .field("explicit", &self.explicit.as_ref().map(|(u, _)| format!("{u}:<redacted>")))
            .field("authfile", &self.authfile)
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

/// Environment variables that decide where credentials are looked for.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `STRATA_REGISTRY_USER`.
    pub user: Option<String>,
    /// `STRATA_REGISTRY_PASSWORD`.
    pub password: Option<String>,
    /// `REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `DOCKER_CONFIG`.
    pub docker_config: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// `PATH` for finding credential helpers; `None` = inherited.
    pub path: Option<std::ffi::OsString>,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Env {
        let s = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let p = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Env {
            user: s("STRATA_REGISTRY_USER"),
            password: s("STRATA_REGISTRY_PASSWORD"),
            registry_auth_file: p("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: p("XDG_RUNTIME_DIR"),
            xdg_config_home: p("XDG_CONFIG_HOME"),
            docker_config: p("DOCKER_CONFIG"),
            home: p("HOME"),
            path: None,
        }
    }
}

/// Credentials could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(pub String);

/// The outcome of a lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The credential, if any source had one.
    pub credential: Option<Credential>,
    /// Every place looked at, in order, for messages when none was found.
    pub searched: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Normalises an `auths` key: drops the scheme and a trailing `/v1/`, `/v2/`
/// or `/`; docker.io's historic names become `docker.io`.
fn normalise_key(k: &str) -> String {
    let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
    let k = k.trim_end_matches('/');
    let k = k.strip_suffix("/v1").or_else(|| k.strip_suffix("/v2")).unwrap_or(k);
    let (host, rest) = match k.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (k, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_string(),
    }
}

fn normalise_host(h: &str) -> String {
    normalise_key(h)
}

/// The server name given to credential helpers for a registry.
fn helper_server(host: &str) -> String {
    if normalise_host(host) == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        host.to_string()
    }
}

/// Looks up credentials for `host` (as in the reference) and `repository`.
pub fn lookup(host: &str, repository: &str, opts: &CredentialOptions) -> Result<Lookup, CredentialError> {
    let mut searched = Vec::new();
    if opts.anonymous {
        return Ok(Lookup { credential: None, searched: vec!["nothing (anonymous access requested)".into()] });
    }
    if let Some((u, p)) = &opts.explicit {
        return Ok(Lookup {
            credential: Some(Credential {
                username: u.clone(),
                secret: Secret::Password(p.clone()),
                source: "--creds".into(),
            }),
            searched,
        });
    }
    let env = opts.env.clone().unwrap_or_else(Env::from_process);
    match (&env.user, &env.password) {
        (Some(u), Some(p)) => {
            return Ok(Lookup {
                credential: Some(Credential {
                    username: u.clone(),
                    secret: Secret::Password(p.clone()),
                    source: "the environment (STRATA_REGISTRY_USER, STRATA_REGISTRY_PASSWORD)".into(),
                }),
                searched,
            })
        }
        (Some(_), None) => {
            return Err(CredentialError(
                "STRATA_REGISTRY_USER is set but STRATA_REGISTRY_PASSWORD is not\nhint: set both, or neither to use auth files and credential helpers".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(CredentialError(
                "STRATA_REGISTRY_PASSWORD is set but STRATA_REGISTRY_USER is not\nhint: set both, or neither to use auth files and credential helpers".into(),
            ))
        }
        (None, None) => searched.push("STRATA_REGISTRY_USER/STRATA_REGISTRY_PASSWORD (unset)".into()),
    }
    let timeout = opts.helper_timeout.unwrap_or(Duration::from_secs(30));
    let helpers = Helpers { timeout, path: env.path.clone() };
    for (path, required) in candidate_files(opts, &env) {
        if !path.is_file() {
            if required {
                return Err(CredentialError(format!(
                    "auth file {} does not exist\nhint: check --authfile / REGISTRY_AUTH_FILE",
                    path.display()
                )));
            }
            searched.push(format!("{} (missing)", path.display()));
            continue;
        }
        searched.push(path.display().to_string());
        if let Some(c) = from_file(&path, host, repository, &helpers)? {
            return Ok(Lookup { credential: Some(c), searched });
        }
    }
    Ok(Lookup { credential: None, searched })
}

fn candidate_files(opts: &CredentialOptions, env: &Env) -> Vec<(PathBuf, bool)> {
    let mut v = Vec::new();
    if let Some(f) = &opts.authfile {
        v.push((f.clone(), true));
    } else if let Some(f) = &env.registry_auth_file {
        v.push((f.clone(), true));
    }
    if let Some(d) = &env.xdg_runtime_dir {
        v.push((d.join("containers/auth.json"), false));
    }
    match (&env.xdg_config_home, &env.home) {
        (Some(c), _) => v.push((c.join("containers/auth.json"), false)),
        (None, Some(h)) => v.push((h.join(".config/containers/auth.json"), false)),
        _ => {}
    }
    match (&env.docker_config, &env.home) {
        (Some(d), _) => v.push((d.join("config.json"), false)),
        (None, Some(h)) => v.push((h.join(".docker/config.json"), false)),
        _ => {}
    }
    v
}

struct Helpers {
    timeout: Duration,
    path: Option<std::ffi::OsString>,
}

fn from_file(
    path: &Path,
    host: &str,
    repository: &str,
    helpers: &Helpers,
) -> Result<Option<Credential>, CredentialError> {
    let text = fs_err::read_to_string(path).map_err(|e| CredentialError(e.to_string()))?;
    let file: AuthFile = serde_json::from_str(&text)
        .map_err(|e| CredentialError(format!("{}: not a valid auth file: {e}", path.display())))?;
    let want = normalise_host(host);
    // 1. credHelpers for this host
    for (k, helper) in &file.cred_helpers {
        if normalise_key(k) == want {
            let what = format!("credential helper docker-credential-{helper} (credHelpers in {})", path.display());
            return run_helper(helper, &helper_server(host), helpers, &what);
        }
    }
    // 2. auths: the longest matching key among `host` and `host/namespace…`
    let full = format!("{want}/{repository}");
    let mut best: Option<(&String, &AuthEntry, usize)> = None;
    for (k, entry) in &file.auths {
        let nk = normalise_key(k);
        let matches = nk == want || (full.starts_with(&nk) && full.as_bytes().get(nk.len()) == Some(&b'/'));
        if matches && best.as_ref().is_none_or(|b| nk.len() > b.2) {
            best = Some((k, entry, nk.len()));
        }
    }
    if let Some((k, e, _)) = best {
        let source = format!("auths[\"{k}\"] in {}", path.display());
        if let Some(t) = e.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential { username: String::new(), secret: Secret::IdentityToken(t.clone()), source }));
        }
        if let Some(a) = e.auth.as_ref().filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| CredentialError(format!("{source}: `auth` is not base64 of USER:PASSWORD")))?;
            let s = String::from_utf8(raw).map_err(|_| CredentialError(format!("{source}: `auth` is not UTF-8")))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| CredentialError(format!("{source}: `auth` does not decode to USER:PASSWORD")))?;
            return Ok(Some(Credential { username: u.to_string(), secret: Secret::Password(p.to_string()), source }));
        }
        if let (Some(u), Some(p)) = (&e.username, &e.password) {
            return Ok(Some(Credential { username: u.clone(), secret: Secret::Password(p.clone()), source }));
        }
        // An empty entry (docker writes `{}` when a credsStore holds the secret): fall through.
    }
    // 3. the default store
    if let Some(store) = file.creds_store.as_ref().filter(|s| !s.is_empty()) {
        let what = format!("credential helper docker-credential-{store} (credsStore in {})", path.display());
        return run_helper(store, &helper_server(host), helpers, &what);
    }
    Ok(None)
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-NAME get`; `Ok(None)` when it has nothing for the server.
fn run_helper(name: &str, server: &str, helpers: &Helpers, what: &str) -> Result<Option<Credential>, CredentialError> {
    let timeout = helpers.timeout;
    if name.contains('/') || name.is_empty() {
        return Err(CredentialError(format!("{what}: `{name}` is not a helper name")));
    }
    let program = format!("docker-credential-{name}");
    let mut cmd = Command::new(&program);
    if let Some(p) = &helpers.path {
        cmd.env("PATH", p);
    }
    let mut child = match cmd.arg("get").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CredentialError(format!(
                "{what}: `{program}` is not installed (not found in PATH)\nhint: install the helper, remove it from the file, or pass credentials with --creds / STRATA_REGISTRY_USER and STRATA_REGISTRY_PASSWORD"
            )))
        }
        Err(e) => return Err(CredentialError(format!("{what}: starting `{program}`: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    // Read both pipes on threads so a chatty helper cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = stderr.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CredentialError(format!(
                    "{what}: `{program} get` did not answer within {} s\nhint: unlock the keychain the helper uses, or pass credentials with --creds",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(CredentialError(format!("{what}: waiting for `{program}`: {e}"))),
        }
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    let out_text = String::from_utf8_lossy(&out);
    if !status.success() {
        let msg = format!("{} {}", out_text.trim(), String::from_utf8_lossy(&err).trim());
        if msg.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        // The helper's own words are shown, cut short: they never contain the secret
        // when it failed, but a misbehaving helper could print anything.
        let short: String = msg.trim().chars().take(200).collect();
        return Err(CredentialError(format!("{what}: `{program} get` failed ({status}): {short}")));
    }
    let reply: HelperReply = serde_json::from_str(out_text.trim()).map_err(|_| {
        CredentialError(format!(
            "{what}: `{program} get` did not print the expected JSON ({{\"Username\":…,\"Secret\":…}})"
        ))
    })?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    let secret =
        if reply.username == "<token>" { Secret::IdentityToken(reply.secret) } else { Secret::Password(reply.secret) };
    Ok(Some(Credential {
        username: if reply.username == "<token>" { String::new() } else { reply.username },
        secret,
        source: what.to_string(),
    }))
}

/// Splits `USER:PASS` (the password may contain colons).
pub fn parse_user_pass(s: &str) -> Result<(String, String), CredentialError> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err(CredentialError("--creds must be USER:PASSWORD\nhint: or set STRATA_REGISTRY_USER and STRATA_REGISTRY_PASSWORD, which keeps the password out of the process list".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_in(dir: &Path) -> Env {
        Env { home: Some(dir.to_path_buf()), ..Env::default() }
    }

    fn opts(env: Env) -> CredentialOptions {
        CredentialOptions { env: Some(env), helper_timeout: Some(Duration::from_secs(5)), ..Default::default() }
    }

    #[test]
    fn explicit_then_env_then_files() {
        let d = tempfile::tempdir().unwrap();
        let mut o = opts(Env { user: Some("u".into()), password: Some("p".into()), ..env_in(d.path()) });
        let c = lookup("r.io", "a", &o).unwrap().credential.unwrap();
        assert!(c.source.contains("STRATA_REGISTRY_USER"));
        o.explicit = Some(("x".into(), "y".into()));
        let c = lookup("r.io", "a", &o).unwrap().credential.unwrap();
        assert_eq!((c.username.as_str(), c.source.as_str()), ("x", "--creds"));
        let half = opts(Env { user: Some("u".into()), ..env_in(d.path()) });
        assert!(lookup("r.io", "a", &half).unwrap_err().0.contains("STRATA_REGISTRY_PASSWORD"));
    }

    #[test]
    fn docker_config_auths_and_namespaces() {
        let d = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(d.path().join(".docker")).unwrap();
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        fs_err::write(
            d.path().join(".docker/config.json"),
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"r.io":{{"auth":"{}"}},"r.io/team":{{"username":"t","password":"tp"}}}}}}"#,
                b("hub:hp"),
                b("plain:pp:with:colons")
            ),
        )
        .unwrap();
        let o = opts(env_in(d.path()));
        let c = lookup("docker.io", "library/alpine", &o).unwrap().credential.unwrap();
        assert_eq!(c.username, "hub");
        let c = lookup("r.io", "other/app", &o).unwrap().credential.unwrap();
        assert_eq!((c.username.as_str(), c.secret_text()), ("plain", "pp:with:colons"));
        assert!(c.source.contains("auths[\"r.io\"]") && c.source.contains("config.json"), "{}", c.source);
        let c = lookup("r.io", "team/app", &o).unwrap().credential.unwrap();
        assert_eq!(c.username, "t");
        let l = lookup("elsewhere.io", "x", &o).unwrap();
        assert!(l.credential.is_none());
        assert!(l.searched.iter().any(|s| s.contains("containers/auth.json (missing)")));
        // Debug output never shows the secret.
        assert!(!format!("{c:?}").contains("tp"));
    }

    #[test]
    fn podman_auth_file_comes_first() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("run");
        fs_err::create_dir_all(run.join("containers")).unwrap();
        fs_err::write(run.join("containers/auth.json"), r#"{"auths":{"r.io":{"username":"pod","password":"x"}}}"#)
            .unwrap();
        fs_err::create_dir_all(d.path().join(".docker")).unwrap();
        fs_err::write(d.path().join(".docker/config.json"), r#"{"auths":{"r.io":{"username":"dock","password":"x"}}}"#)
            .unwrap();
        let o = opts(Env { xdg_runtime_dir: Some(run.clone()), ..env_in(d.path()) });
        assert_eq!(lookup("r.io", "a", &o).unwrap().credential.unwrap().username, "pod");
        let missing = opts(Env { registry_auth_file: Some(d.path().join("nope.json")), ..env_in(d.path()) });
        assert!(lookup("r.io", "a", &missing).unwrap_err().0.contains("nope.json"));
    }

    #[test]
    fn credential_helpers_found_missing_and_slow() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        fs_err::create_dir_all(&bin).unwrap();
        let write_helper = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = bin.join(format!("docker-credential-{name}"));
            fs_err::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write_helper(
            "good",
            r#"read server; echo "{\"ServerURL\":\"$server\",\"Username\":\"helper-user\",\"Secret\":\"hs\"}""#,
        );
        write_helper("none", "echo 'credentials not found in native keychain'; exit 1");
        write_helper("slow", "sleep 5");
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.clone()];
        paths.extend(std::env::split_paths(&old));
        fs_err::create_dir_all(d.path().join(".docker")).unwrap();
        let cfg = d.path().join(".docker/config.json");
        let mut o = opts(Env { path: Some(std::env::join_paths(paths).unwrap()), ..env_in(d.path()) });
        o.helper_timeout = Some(Duration::from_millis(300));

        fs_err::write(&cfg, r#"{"credHelpers":{"r.io":"good"},"credsStore":"none"}"#).unwrap();
        let c = lookup("r.io", "a", &o).unwrap().credential.unwrap();
        assert_eq!((c.username.as_str(), c.secret_text()), ("helper-user", "hs"));
        assert!(c.source.contains("docker-credential-good"));
        assert!(lookup("other.io", "a", &o).unwrap().credential.is_none());

        fs_err::write(&cfg, r#"{"credsStore":"slow"}"#).unwrap();
        let e = lookup("r.io", "a", &o).unwrap_err();
        assert!(e.0.contains("did not answer"), "{e}");

        fs_err::write(&cfg, r#"{"credsStore":"absent-helper"}"#).unwrap();
        let e = lookup("r.io", "a", &o).unwrap_err();
        assert!(e.0.contains("not installed"), "{e}");
    }

    #[test]
    fn user_pass_split() {
        assert_eq!(parse_user_pass("a:b:c").unwrap(), ("a".into(), "b:c".into()));
        assert!(parse_user_pass("nocolon").is_err());
    }
}
