//! Registry errors. Every message names the registry and repository (or
//! URL, credentials redacted), what was being done, the HTTP status and the
//! registry's own error codes, and a `hint:` line when there is something
//! the user can do.

use crate::image::ImageError;
use crate::oci::ReferenceError;
use crate::registry::creds::CredentialError;

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A bad image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Credentials could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The registry or its token server refused the credentials.
    #[error("{message}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// The full message (with its hint).
        message: String,
    },
    /// The registry answered with an error status.
    #[error("{operation}: HTTP {status}{detail}{after}{hint}", detail = prefixed(": ", detail), after = attempts_note(*attempts), hint = prefixed("\nhint: ", hint))]
    Http {
        /// What was being done (names registry and repository).
        operation: String,
        /// HTTP status.
        status: u16,
        /// Error codes and messages from the body.
        detail: String,
        /// Attempts made.
        attempts: u32,
        /// What to do.
        hint: String,
    },
    /// The registry could not be reached, or the connection broke.
    #[error("{operation}: {message}{after}\nhint: {hint}", after = attempts_note(*attempts))]
    Network {
        /// What was being done.
        operation: String,
        /// The transport error.
        message: String,
        /// Attempts made.
        attempts: u32,
        /// What to do.
        hint: String,
    },
    /// The local image could not be read.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Content is not what was expected (digest mismatch, bad JSON, …).
    #[error("{0}")]
    Invalid(String),
    /// The network layer could not be set up (a bad --ca-file or proxy).
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// IO on a local path.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
}

fn prefixed(p: &str, s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("{p}{s}")
    }
}

fn attempts_note(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

impl RegistryError {
    /// Records how many attempts were made.
    pub fn with_attempts(mut self, n: u32) -> RegistryError {
        match &mut self {
            RegistryError::Http { attempts, .. } | RegistryError::Network { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }

    /// Records that the operation's deadline ended the attempts.
    pub fn with_deadline(mut self, d: std::time::Duration) -> RegistryError {
        if let RegistryError::Network { message, .. } = &mut self {
            message.push_str(&format!(
                "; no further attempt: the deadline of {}s passed (STRATA_NET_DEADLINE)",
                d.as_secs_f64().round()
            ));
        }
        self
    }

    /// The HTTP status, when the registry answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Http { status, .. } => Some(*status),
            RegistryError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// One attempt's failure: worth retrying (with the server's `Retry-After`)
/// or not.
#[derive(Debug)]
pub(crate) enum Fail {
    Retry(RegistryError, Option<std::time::Duration>),
    Fatal(RegistryError),
}

impl From<RegistryError> for Fail {
    fn from(e: RegistryError) -> Fail {
        Fail::Fatal(e)
    }
}

/// The registry's JSON error body, read leniently (unknown codes are fine).
#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, serde::Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// `CODE: message; CODE2: message2` from an error body, or its first line.
pub(crate) fn describe_body(body: &[u8]) -> (String, Vec<String>) {
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(body) {
        if !b.errors.is_empty() {
            let codes = b.errors.iter().map(|e| e.code.clone()).collect();
            let text = b
                .errors
                .iter()
                .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{} ({})", e.message, e.code),
                    (false, true) => e.code.clone(),
                    _ => e.message.clone(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            return (text, codes);
        }
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    (line.chars().take(200).collect(), Vec::new())
}

/// What to tell the user for a status and the registry's error codes.
pub(crate) fn hint_for(status: u16, codes: &[String], repo: &str) -> String {
    let has = |c: &str| codes.iter().any(|x| x == c);
    if has("DIGEST_INVALID") {
        return "the bytes the registry received do not hash to the digest; the local image may be corrupt (check it with `strata inspect`) or a proxy altered the upload".into();
    }
    if has("MANIFEST_BLOB_UNKNOWN") || has("BLOB_UNKNOWN") && status == 400 {
        return "a blob the manifest names is missing from the repository; push again (strata uploads blobs before manifests)".into();
    }
    if has("NAME_UNKNOWN") {
        return format!("the repository `{repo}` does not exist, or these credentials may not see it; some registries need repositories created first");
    }
    if has("BLOB_UPLOAD_UNKNOWN") || has("BLOB_UPLOAD_INVALID") {
        return "the upload session expired or was lost; run the command again".into();
    }
    match status {
        403 => format!("the registry denied access to `{repo}`; check that this account may push there"),
        404 => format!("check the repository name `{repo}` and the tag or digest"),
        405 => "the registry does not allow this operation (read-only, or a pull-through cache)".into(),
        413 | 416 => "the registry (or a proxy in front of it) refuses request bodies this large; use chunked uploads with a smaller size, e.g. --chunk-size 4MiB".into(),
        429 => "the registry is rate-limiting; wait and run the command again".into(),
        500..=599 => "the registry failed; run the command again later (uploads already done are skipped)".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_with_unknown_codes() {
        let (t, c) = describe_body(
            br#"{"errors":[{"code":"REQUESTED_RANGE_NOT_SATISFIABLE","message":"too large","detail":null}]}"#,
        );
        assert_eq!(t, "too large (REQUESTED_RANGE_NOT_SATISFIABLE)");
        assert_eq!(c, vec!["REQUESTED_RANGE_NOT_SATISFIABLE".to_string()]);
        let (t, c) = describe_body(b"\n404 page not found\n");
        assert_eq!((t.as_str(), c.len()), ("404 page not found", 0));
    }

    #[test]
    fn http_errors_read_well() {
        let e = RegistryError::Http {
            operation: "pushing manifest to r.io/app".into(),
            status: 400,
            detail: "blob unknown to registry (MANIFEST_BLOB_UNKNOWN)".into(),
            attempts: 1,
            hint: hint_for(400, &["MANIFEST_BLOB_UNKNOWN".into()], "app"),
        };
        insta::assert_snapshot!(e.to_string(), @r"
        pushing manifest to r.io/app: HTTP 400: blob unknown to registry (MANIFEST_BLOB_UNKNOWN)
        hint: a blob the manifest names is missing from the repository; push again (strata uploads blobs before manifests)
        ");
        let e = e.with_attempts(3);
        assert!(e.to_string().contains("(after 3 attempts)"));
    }
}
