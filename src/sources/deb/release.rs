//! Signed archive metadata: the OpenPGP keyring, `InRelease` verification
//! (rpgp, pure Rust) and the `Release` fields strata uses.

use std::collections::BTreeMap;
use std::path::Path;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::types::KeyDetails;

use crate::digest::Digest;

use super::control::parse_paragraphs;
use super::error::DebError;

/// The Debian archive keyring shipped with strata: `keys/debian-archive-keyring.gpg`,
/// `/usr/share/keyrings/debian-archive-keyring.gpg` of Debian's
/// `debian-archive-keyring` 2023.3+deb12u2 (bullseye, bookworm and trixie
/// archive, security and release keys).
pub const DEBIAN_KEYRING: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/debian-archive-keyring.gpg"));

/// Trusted signing keys.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    origin: String,
}

impl Keyring {
    /// The built-in Debian archive keyring.
    pub fn debian() -> Result<Keyring, DebError> {
        Keyring::from_bytes(DEBIAN_KEYRING, "the built-in Debian archive keyring")
    }

    /// Reads a keyring file (binary `.gpg` or ASCII-armored `.asc`).
    pub fn load(path: &Path) -> Result<Keyring, DebError> {
        let bytes = crate::hostfs::read_bounded(path, 16 << 20, "a keyring")
            .map_err(|source| DebError::KeyringFile { source })?;
        Keyring::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses keyring bytes.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Keyring, DebError> {
        let (iter, _) = SignedPublicKey::from_reader_many(bytes)
            .map_err(|e| DebError::NotAKeyring { origin: origin.to_string(), detail: e.to_string() })?;
        let mut keys = Vec::new();
        for k in iter {
            keys.push(k.map_err(|e| DebError::UnreadableKey { origin: origin.to_string(), detail: e.to_string() })?);
        }
        if keys.is_empty() {
            return Err(DebError::EmptyKeyring { origin: origin.to_string() });
        }
        Ok(Keyring { keys, origin: origin.to_string() })
    }

    /// Fingerprints of the primary keys, upper-case hex.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| format!("{:X}", k.fingerprint())).collect()
    }
}

/// Verifies an `InRelease` file and returns the signed text (LF line ends).
/// At least one signature must verify against a key (or signing subkey) of
/// the keyring; signatures by unknown keys are ignored, as apt does.
pub fn verify_inrelease(bytes: &[u8], keyring: &Keyring, url: &str) -> Result<String, DebError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DebError::NotUtf8 { url: url.to_string() })?;
    let (msg, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| DebError::NotClearSigned { url: url.to_string(), detail: e.to_string() })?;
    let mut issuers = Vec::new();
    for sig in msg.signatures() {
        let fps = sig.issuer_fingerprint();
        for fp in &fps {
            issuers.push(format!("{fp:X}"));
        }
        // Key ids are the low 64 bits of v4 fingerprints: list them only when no fingerprint was given.
        for id in sig.issuer_key_id().into_iter().filter(|_| fps.is_empty()) {
            issuers.push(hex::encode_upper(id.as_ref()));
        }
    }
    for key in &keyring.keys {
        if msg.verify(key).is_ok() {
            return Ok(msg.signed_text().replace("\r\n", "\n"));
        }
        for sub in &key.public_subkeys {
            if msg.verify(sub).is_ok() {
                return Ok(msg.signed_text().replace("\r\n", "\n"));
            }
        }
    }
    issuers.sort();
    issuers.dedup();
    Err(DebError::Untrusted {
        url: url.to_string(),
        keyring: keyring.origin.clone(),
        signatures: msg.signatures().len(),
        issuers,
    })
}

/// The fields of a `Release` file that resolution uses.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// `Date:`.
    pub date: String,
    /// `Valid-Until:`, when present.
    pub valid_until: Option<String>,
    /// `Acquire-By-Hash: yes`.
    pub by_hash: bool,
    /// `SHA256:` entries: path → (size, digest).
    pub sha256: BTreeMap<String, (u64, Digest)>,
}

/// Parses the signed text of a Release file.
pub fn parse_release(text: &str, url: &str) -> Result<Release, DebError> {
    let ps = parse_paragraphs(text, url)?;
    let p = ps.first().ok_or_else(|| DebError::EmptyRelease { url: url.to_string() })?;
    let mut r = Release {
        date: p.get("Date").unwrap_or_default().to_string(),
        valid_until: p.get("Valid-Until").map(str::to_string),
        by_hash: p.get("Acquire-By-Hash").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        sha256: BTreeMap::new(),
    };
    let list = p.get("SHA256").ok_or_else(|| DebError::NoSha256 { url: url.to_string() })?;
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (url, line) = (url.to_string(), line.to_string());
        let [hash, size, path] = parts.as_slice() else {
            return Err(DebError::MalformedSha256Line { url, line });
        };
        let d = Digest::parse(hash).map_err(|source| DebError::BadSha256 {
            url: url.clone(),
            line: line.clone(),
            source,
        })?;
        let n = size.parse::<u64>().map_err(|_| DebError::BadSha256Size { url, line })?;
        r.sha256.insert(path.to_string(), (n, d));
    }
    Ok(r)
}

/// Seconds since 1970 of an RFC 2822 date as used in Release files
/// (`Sat, 08 Nov 2025 09:31:41 UTC`).
pub fn parse_release_date(s: &str) -> Option<i64> {
    crate::time::parse_rfc2822_utc(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_keyring_loads_with_bookworm_keys() {
        let k = Keyring::debian().unwrap();
        let fps = k.fingerprints();
        // Debian Archive Automatic Signing Key (12/bookworm) and its security twin.
        assert!(fps.iter().any(|f| f.ends_with("B7C5D7D6350947F8")), "{fps:?}");
        assert!(fps.iter().any(|f| f.ends_with("254CF3B5AEC0A8F0")), "{fps:?}");
    }

    #[test]
    fn release_dates() {
        assert_eq!(parse_release_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(parse_release_date("Sat, 08 Nov 2025 09:31:41 UTC"), Some(1762594301));
        assert_eq!(parse_release_date("garbage"), None);
    }

    #[test]
    fn release_sha256_list() {
        let t = "Origin: Debian\nDate: Sat, 08 Nov 2025 09:31:41 UTC\nAcquire-By-Hash: yes\nSHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 12 main/binary-amd64/Packages.xz\n";
        let r = parse_release(t, "u").unwrap();
        assert!(r.by_hash);
        assert_eq!(r.sha256["main/binary-amd64/Packages.xz"].0, 12);
        assert!(parse_release("Origin: x\n", "u").unwrap_err().to_string().contains("SHA256"));
    }
}
