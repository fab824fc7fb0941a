//! A token server for docker-registry's `auth: token` mode, on a free
//! loopback port: `GET /token?service=…&scope=…` answers an ES256 JWT with
//! a libtrust `kid` that the registry checks against the committed
//! test-only certificate (fixtures/token-signing-cert.pem). With
//! [`crate::USER`]/[`crate::PASSWORD`] (HTTP Basic) it grants what is asked;
//! anonymously only `pull`; with wrong credentials it answers 401.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

/// `service` of the test registries.
pub const SERVICE: &str = "strata-test-registry";
/// `issuer` of the tokens.
pub const ISSUER: &str = "strata-test-issuer";

const KEY_PEM: &str = include_str!("../fixtures/token-signing-key.pem");
const CERT_PEM: &str = include_str!("../fixtures/token-signing-cert.pem");

struct State {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
    /// Seconds until `exp`.
    exp_secs: AtomicU64,
    /// `expires_in` as told to clients.
    advertised: AtomicU64,
    issued: AtomicUsize,
    refused: AtomicUsize,
}

/// A running token server.
pub struct TokenServer {
    addr: SocketAddr,
    state: Arc<State>,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("PEM base64")
}

/// libtrust key id: base32 of the first 30 bytes of sha256(DER SubjectPublicKeyInfo), in groups of 4.
fn libtrust_kid(uncompressed_point: &[u8]) -> String {
    const P256_SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(uncompressed_point);
    let h = ring::digest::digest(&ring::digest::SHA256, &spki);
    let b32 = base32(&h.as_ref()[..30]);
    b32.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

fn base32(data: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl TokenServer {
    /// Starts on a free port; tokens live 300 s.
    pub fn start() -> TokenServer {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pem_body(KEY_PEM), &rng)
            .expect("test signing key");
        let kid = libtrust_kid(key.public_key().as_ref());
        let state = Arc::new(State {
            key,
            kid,
            rng,
            exp_secs: AtomicU64::new(300),
            advertised: AtomicU64::new(300),
            issued: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        TokenServer { addr, state }
    }

    /// The realm URL for the registry config.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The certificate the registry trusts.
    pub fn cert_pem(&self) -> &'static str {
        CERT_PEM
    }

    /// Tokens' real lifetime (`exp`) and what clients are told (`expires_in`).
    pub fn set_lifetime(&self, exp_secs: u64, advertised: u64) {
        self.state.exp_secs.store(exp_secs, Ordering::SeqCst);
        self.state.advertised.store(advertised, Ordering::SeqCst);
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Requests refused (wrong credentials) so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }
}

fn serve(conn: TcpStream, st: &State) -> std::io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut auth = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            }
        }
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let mut account = String::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "scope" => scopes.extend(v.split(' ').map(str::to_string)),
            "account" => account = v.into_owned(),
            _ => {}
        }
    }
    let user = match auth.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        Some(b) => {
            let dec = base64::engine::general_purpose::STANDARD.decode(b.trim()).unwrap_or_default();
            if dec == format!("{}:{}", crate::USER, crate::PASSWORD).as_bytes() {
                Some(crate::USER.to_string())
            } else {
                st.refused.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}"#;
                return respond(
                    conn,
                    "401 Unauthorized",
                    body,
                    &["WWW-Authenticate: Basic realm=\"strata-test-token\""],
                );
            }
        }
        None => None,
    };
    let _ = account;
    let mut access = Vec::new();
    for s in &scopes {
        let parts: Vec<&str> = s.splitn(3, ':').collect();
        if parts.len() != 3 || parts[0] != "repository" {
            continue;
        }
        let actions: Vec<&str> = parts[2].split(',').filter(|a| user.is_some() || *a == "pull").collect();
        access.push(json!({"type": "repository", "name": parts[1], "actions": actions}));
    }
    let t = now();
    let n = st.issued.fetch_add(1, Ordering::SeqCst);
    let header = json!({"typ": "JWT", "alg": "ES256", "kid": st.kid});
    let claims = json!({
        "iss": ISSUER, "sub": user.clone().unwrap_or_default(), "aud": SERVICE,
        "exp": t + st.exp_secs.load(Ordering::SeqCst), "nbf": t.saturating_sub(5), "iat": t,
        "jti": format!("strata-test-{n}"), "access": access,
    });
    let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let sig = st.key.sign(&st.rng, signing_input.as_bytes()).map_err(|_| std::io::Error::other("signing failed"))?;
    let token = format!("{signing_input}.{}", b64url(sig.as_ref()));
    let body = json!({"token": token, "access_token": token, "expires_in": st.advertised.load(Ordering::SeqCst), "issued_at": "2026-01-01T00:00:00Z"}).to_string();
    respond(conn, "200 OK", &body, &[])
}

fn respond(mut conn: TcpStream, status: &str, body: &str, extra: &[&str]) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

/// The `exp` claim of a JWT (no signature check: the proxy uses it to
/// enforce short lifetimes the registry's 60 s leeway would hide).
pub fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("exp")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn kid_shape() {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pem_body(KEY_PEM), &rng).unwrap();
        let kid = libtrust_kid(key.public_key().as_ref());
        assert_eq!(kid.len(), 48 + 11, "{kid}");
        assert_eq!(kid.split(':').count(), 12);
    }
}
