//! Registry authentication: `WWW-Authenticate` challenges, token scopes and
//! the token cache. The flow follows the distribution token spec: the
//! registry answers 401 with `Bearer realm=…,service=…,scope=…`; the client
//! asks the realm for a token covering the scopes (with HTTP Basic
//! credentials when it has them) and retries. Tokens are cached per scope
//! set until shortly before `expires_in` runs out, and dropped on any 401.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic.
    Basic {
        /// Realm, for messages.
        realm: String,
    },
    /// Bearer tokens from a token server.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// `service` parameter.
        service: Option<String>,
        /// Scopes the registry asked for (space separated in the header).
        scope: Option<String>,
        /// `error` (e.g. `insufficient_scope`, `invalid_token`).
        error: Option<String>,
    },
}

/// Parses `WWW-Authenticate`; `None` for schemes other than Basic and Bearer.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    let params = parse_params(rest);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic { realm: get("realm").unwrap_or_default() }),
        "bearer" => Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
            error: get("error"),
        }),
        _ => None,
    }
}

/// `k=v, k2="quoted, \"escaped\""` → pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == ',' || b[i].is_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != '=' && b[i] != ',' {
            i += 1;
        }
        let key: String = b[ks..i].iter().collect::<String>().trim().to_string();
        if i >= b.len() || b[i] != '=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && b[i] != ',' {
                val.push(b[i]);
                i += 1;
            }
            val = val.trim().to_string();
        }
        if !key.is_empty() {
            out.push((key, val));
        }
    }
    out
}

/// A set of token scopes (`repository:NAME:ACTIONS`), kept sorted so equal
/// sets share a cache entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scopes(pub BTreeSet<String>);

impl Scopes {
    /// Pull access to one repository.
    pub fn pull(repo: &str) -> Scopes {
        Scopes([format!("repository:{repo}:pull")].into_iter().collect())
    }
    /// Push (and pull) access to one repository.
    pub fn push(repo: &str) -> Scopes {
        Scopes([format!("repository:{repo}:pull,push")].into_iter().collect())
    }
    /// This set plus pull access to `repo` (for cross-repository mounts).
    pub fn and_pull(&self, repo: &str) -> Scopes {
        let mut s = self.clone();
        s.0.insert(format!("repository:{repo}:pull"));
        s
    }
    /// This set plus the space-separated scopes of a challenge.
    pub fn merged_with(&self, challenge_scope: Option<&str>) -> Scopes {
        let mut s = self.clone();
        if let Some(c) = challenge_scope {
            for sc in c.split_whitespace() {
                s.0.insert(sc.to_string());
            }
        }
        s
    }
    /// Cache key.
    pub fn key(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

/// A token server's answer.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    /// The token (distribution's name).
    #[serde(default)]
    pub token: Option<String>,
    /// The token (OAuth2's name).
    #[serde(default)]
    pub access_token: Option<String>,
    /// Lifetime in seconds; 60 when absent.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A cached bearer token.
#[derive(Clone)]
pub struct Token {
    /// The token text.
    pub value: String,
    /// When to stop using it.
    pub refresh_at: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("value", &"<redacted>").field("refresh_at", &self.refresh_at).finish()
    }
}

impl TokenResponse {
    /// The token and when to refresh it (10 % or 5 s before expiry, whichever is less).
    pub fn into_token(self, now: Instant) -> Option<Token> {
        let value = self.token.filter(|t| !t.is_empty()).or(self.access_token.filter(|t| !t.is_empty()))?;
        let life = Duration::from_secs(self.expires_in.unwrap_or(60).max(1));
        let margin = (life / 10).min(Duration::from_secs(5));
        Some(Token { value, refresh_at: now + life - margin })
    }
}

/// How a registry wants to be authenticated, learnt from `GET /v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// No authentication.
    Anonymous,
    /// HTTP Basic on every request.
    Basic,
    /// Bearer tokens.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service`.
        service: Option<String>,
    },
}

/// Per-registry authentication state.
#[derive(Debug)]
pub struct AuthState {
    /// The scheme.
    pub scheme: Scheme,
    /// Tokens by scope key.
    pub tokens: HashMap<String, Token>,
}

impl AuthState {
    /// A valid cached token for `scopes`.
    pub fn cached(&self, scopes: &Scopes, now: Instant) -> Option<String> {
        self.tokens.get(&scopes.key()).filter(|t| t.refresh_at > now).map(|t| t.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_distribution_challenges() {
        let c = parse_challenge(r#"Bearer realm="http://127.0.0.1:5614/token",service="lab-registry",scope="repository:lab/app:push,pull repository:lab/other:pull",error="insufficient_scope""#).unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "http://127.0.0.1:5614/token".into(),
                service: Some("lab-registry".into()),
                scope: Some("repository:lab/app:push,pull repository:lab/other:pull".into()),
                error: Some("insufficient_scope".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic { realm: "Registry Realm".into() })
        );
        assert_eq!(parse_challenge("basic"), Some(Challenge::Basic { realm: String::new() }));
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
        let c = parse_challenge(r#"Bearer realm=https://auth.example/token, service = reg , scope="a\"b""#).unwrap();
        assert!(
            matches!(c, Challenge::Bearer { ref realm, ref service, ref scope, .. } if realm == "https://auth.example/token" && service.as_deref() == Some("reg") && scope.as_deref() == Some("a\"b"))
        );
    }

    #[test]
    fn scopes_merge_and_key_stably() {
        let s = Scopes::push("a").and_pull("b");
        assert_eq!(s.key(), "repository:a:pull,push repository:b:pull");
        let m = Scopes::pull("a").merged_with(Some("repository:a:pull repository:c:pull"));
        assert_eq!(m.key(), "repository:a:pull repository:c:pull");
    }

    #[test]
    fn token_lifetime() {
        let now = Instant::now();
        let t = TokenResponse { token: Some("t".into()), access_token: None, expires_in: Some(300) }
            .into_token(now)
            .unwrap();
        assert_eq!(t.refresh_at, now + Duration::from_secs(295));
        let t =
            TokenResponse { token: None, access_token: Some("a".into()), expires_in: None }.into_token(now).unwrap();
        assert_eq!((t.value.as_str(), t.refresh_at), ("a", now + Duration::from_secs(55)));
        assert!(TokenResponse { token: Some(String::new()), access_token: None, expires_in: None }
            .into_token(now)
            .is_none());
        assert!(!format!("{t:?}").contains("\"a\""));
    }
}
