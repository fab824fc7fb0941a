//! Signing keys in the format sigstore tools read: an ECDSA P-256 private
//! key (PKCS#8) encrypted with a password (scrypt N=32768 r=8 p=1, then NaCl
//! secretbox), wrapped as a JSON envelope in a PEM block `ENCRYPTED SIGSTORE
//! PRIVATE KEY` (the older `ENCRYPTED COSIGN PRIVATE KEY` is read too), and
//! the public key as a PEM `PUBLIC KEY` (PKIX).
//!
//! Passwords and private keys never appear in errors or logs: errors say
//! what was wrong with the file, never what it held.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// PEM label of private keys written by Strata (and current sigstore tools).
pub const PRIVATE_KEY_PEM: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The older PEM label, still read.
pub const COSIGN_PRIVATE_KEY_PEM: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// Environment variables holding the key password, in the order they are read.
pub const PASSWORD_VARS: [&str; 2] = ["STRATA_KEY_PASSWORD", "COSIGN_PASSWORD"];

/// Largest key file read (keys are a few hundred bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;
/// scrypt parameters written: log2(N)=15, r=8, p=1 (the only ones sigstore
/// tools accept besides two others of the same cost class).
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// What can go wrong with a key. No variant carries key material or a password.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key could not be read.
    #[error("cannot read the key {what}: {message}")]
    Read {
        /// The file or variable.
        what: String,
        /// Why.
        message: String,
    },
    /// The key is not in a format Strata reads.
    #[error("the key {what} is not a valid {kind}: {reason}")]
    Format {
        /// The file or variable.
        what: String,
        /// Private or public key.
        kind: &'static str,
        /// What is wrong (never the content).
        reason: String,
    },
    /// The password does not open the key (or the key was altered).
    #[error("the password does not decrypt the private key {what} (wrong password, or the file was altered)")]
    Decrypt {
        /// The file or variable.
        what: String,
    },
    /// No password was given.
    #[error("no key password: set STRATA_KEY_PASSWORD (or COSIGN_PASSWORD); passwords are never taken as arguments")]
    NoPassword,
    /// Writing a key failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The key password from the environment (STRATA_KEY_PASSWORD, then
/// COSIGN_PASSWORD). An empty value is an empty password.
pub fn password_from_env() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    for v in PASSWORD_VARS {
        if let Some(p) = std::env::var_os(v) {
            return Ok(Zeroizing::new(p.into_encoded_bytes()));
        }
    }
    Err(KeyError::NoPassword)
}

/// Where a key comes from: `env://VAR` (the PEM text in an environment
/// variable) or a file path.
pub fn read_key_source(source: &str) -> Result<(String, Zeroizing<String>), KeyError> {
    if let Some(var) = source.strip_prefix("env://") {
        let what = format!("in ${var}");
        let text = std::env::var(var).map_err(|_| KeyError::Read {
            what: what.clone(),
            message: "the variable is not set or not UTF-8".into(),
        })?;
        return Ok((what, Zeroizing::new(text)));
    }
    let path = Path::new(source);
    let what = format!("`{}`", path.display());
    let read = || -> std::io::Result<String> {
        use std::io::Read as _;
        let f = fs_err::File::open(path)?;
        let mut s = String::new();
        f.take(MAX_KEY_FILE + 1).read_to_string(&mut s)?;
        if s.len() as u64 > MAX_KEY_FILE {
            return Err(std::io::Error::other("larger than 64 KiB: not a key"));
        }
        Ok(s)
    };
    let text = read().map_err(|e| KeyError::Read { what: what.clone(), message: e.to_string() })?;
    Ok((what, Zeroizing::new(text)))
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

fn scrypt_key(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<Zeroizing<[u8; 32]>, String> {
    let params = scrypt::Params::new(log_n, r, p, 32).map_err(|e| e.to_string())?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, key.as_mut()).map_err(|e| e.to_string())?;
    Ok(key)
}

/// A new random P-256 key.
pub fn generate() -> SigningKey {
    SigningKey::random(&mut OsRng)
}

/// The private key encrypted with `password`, as PEM text.
pub fn encrypt_private_key(key: &SigningKey, password: &[u8]) -> Result<Zeroizing<String>, KeyError> {
    let der = key.to_pkcs8_der().map_err(|e| KeyError::Format {
        what: "(new key)".into(),
        kind: "private key",
        reason: e.to_string(),
    })?;
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let k = scrypt_key(password, &salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P).map_err(|reason| KeyError::Format {
        what: "(new key)".into(),
        kind: "private key",
        reason,
    })?;
    let cipher = XSalsa20Poly1305::new(k.as_ref().into());
    let ciphertext = cipher.encrypt(&nonce.into(), der.as_bytes()).map_err(|_| KeyError::Format {
        what: "(new key)".into(),
        kind: "private key",
        reason: "encryption failed".into(),
    })?;
    let env = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams { n: 1 << SCRYPT_LOG_N, r: SCRYPT_R, p: SCRYPT_P },
            salt: salt.to_vec(),
        },
        cipher: Cipher { name: "nacl/secretbox".into(), nonce: nonce.to_vec() },
        ciphertext,
    };
    let json = serde_json::to_vec(&env).expect("serializing a key envelope cannot fail");
    Ok(Zeroizing::new(pem_encode(PRIVATE_KEY_PEM, &json)))
}

/// Decrypts a private key (PEM text) with `password`. `what` names the
/// source in errors.
pub fn decrypt_private_key(pem: &str, password: &[u8], what: &str) -> Result<SigningKey, KeyError> {
    let fmt =
        |reason: &str| KeyError::Format { what: what.into(), kind: "encrypted private key", reason: reason.into() };
    let (label, body) = pem_decode(pem).ok_or_else(|| fmt("no PEM block"))?;
    if label != PRIVATE_KEY_PEM && label != COSIGN_PRIVATE_KEY_PEM {
        return Err(fmt(&format!(
            "the PEM block is `{}`, not `{PRIVATE_KEY_PEM}` (keys from `strata key generate` or cosign)",
            crate::report::one_line(&label.chars().take(60).collect::<String>())
        )));
    }
    let env: Envelope = serde_json::from_slice(&body).map_err(|_| fmt("the envelope is not the expected JSON"))?;
    if env.kdf.name != "scrypt" || env.cipher.name != "nacl/secretbox" {
        return Err(fmt("only scrypt with nacl/secretbox is supported"));
    }
    let ScryptParams { n, r, p } = env.kdf.params;
    // Bounded: a key file must not be able to ask for gigabytes of memory.
    if !n.is_power_of_two() || !(2..=1 << 20).contains(&n) || !(1..=16).contains(&r) || !(1..=4).contains(&p) {
        return Err(fmt("scrypt parameters out of range (N a power of two up to 2^20, r up to 16, p up to 4)"));
    }
    if env.cipher.nonce.len() != 24 {
        return Err(fmt("the nonce is not 24 bytes"));
    }
    let k = scrypt_key(password, &env.kdf.salt, n.trailing_zeros() as u8, r, p).map_err(|e| fmt(&e))?;
    let cipher = XSalsa20Poly1305::new(k.as_ref().into());
    let nonce = crypto_secretbox::Nonce::from_slice(&env.cipher.nonce);
    let der = Zeroizing::new(
        cipher.decrypt(nonce, env.ciphertext.as_slice()).map_err(|_| KeyError::Decrypt { what: what.into() })?,
    );
    SigningKey::from_pkcs8_der(&der).map_err(|_| fmt("the decrypted key is not a PKCS#8 ECDSA P-256 key"))
}

/// The public key as PEM (`PUBLIC KEY`, PKIX).
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).expect("encoding a P-256 public key cannot fail")
}

/// Parses a public key (PEM `PUBLIC KEY`, ECDSA P-256).
pub fn parse_public_key(pem: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| KeyError::Format {
        what: what.into(),
        kind: "public key",
        reason: "expected a PEM `PUBLIC KEY` block holding an ECDSA P-256 key".into(),
    })
}

/// Loads a private key from `source` (a file or `env://VAR`) with the
/// password from the environment.
pub fn load_private_key(source: &str) -> Result<SigningKey, KeyError> {
    let (what, text) = read_key_source(source)?;
    let password = password_from_env()?;
    decrypt_private_key(&text, &password, &what)
}

/// Loads a public key from `source` (a file or `env://VAR`).
pub fn load_public_key(source: &str) -> Result<VerifyingKey, KeyError> {
    let (what, text) = read_key_source(source)?;
    parse_public_key(&text, &what)
}

fn pem_encode(label: &str, body: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(body);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// The first PEM block: its label and decoded body.
fn pem_decode(text: &str) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body_start.find(&end_marker)?;
    let b64: String = body_start[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let body = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()).ok()?;
    Some((label, Zeroizing::new(body)))
}

/// Writes a new key pair to `PREFIX.key` (mode 0600) and `PREFIX.pub`,
/// refusing to overwrite either. Returns the two paths.
pub fn write_key_pair(prefix: &Path, password: &[u8]) -> Result<(PathBuf, PathBuf), KeyError> {
    let key = generate();
    let private = encrypt_private_key(&key, password)?;
    let public = public_key_pem(key.verifying_key());
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (kp, pp) = (with(".key"), with(".pub"));
    for p in [&kp, &pp] {
        if p.exists() {
            return Err(KeyError::Write { path: p.clone(), message: "already exists; not overwritten".into() });
        }
    }
    write_new(&kp, private.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&pp, public.as_bytes(), 0o644) {
        let _ = fs_err::remove_file(&kp);
        return Err(e);
    }
    Ok((kp, pp))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    use std::io::Write as _;
    let err = |e: std::io::Error| KeyError::Write { path: path.to_path_buf(), message: e.to_string() };
    let mut f = fs_err::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(err)?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = fs_err::remove_file(path);
        return Err(err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_password() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back = decrypt_private_key(&pem, b"pw", "test").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        let e = decrypt_private_key(&pem, b"pX", "test").unwrap_err();
        assert!(matches!(e, KeyError::Decrypt { .. }), "{e}");
        let pubpem = public_key_pem(key.verifying_key());
        assert!(pubpem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(&parse_public_key(&pubpem, "t").unwrap(), key.verifying_key());
    }

    #[test]
    fn envelope_fields() {
        let pem = encrypt_private_key(&generate(), b"").unwrap();
        let (_, body) = pem_decode(&pem).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kdf"]["name"], "scrypt");
        assert_eq!(v["kdf"]["params"]["N"], 32768);
        assert_eq!(v["kdf"]["params"]["r"], 8);
        assert_eq!(v["kdf"]["params"]["p"], 1);
        assert_eq!(v["cipher"]["name"], "nacl/secretbox");
    }

    #[test]
    fn hostile_scrypt_parameters_refused() {
        let pem = encrypt_private_key(&generate(), b"").unwrap();
        let (_, body) = pem_decode(&pem).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["kdf"]["params"]["N"] = serde_json::json!(1u64 << 40);
        let bad = pem_encode(PRIVATE_KEY_PEM, &serde_json::to_vec(&v).unwrap());
        let e = decrypt_private_key(&bad, b"", "t").unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
    }
}
