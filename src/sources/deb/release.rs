//! Signed archive metadata: the OpenPGP keyring, `InRelease` verification
//! (rpgp, pure Rust) and the `Release` fields strata uses.

use std::collections::BTreeMap;
use std::path::Path;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::types::KeyDetails;

use crate::digest::Digest;

use super::control::parse_paragraphs;

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
    pub fn debian() -> Result<Keyring, String> {
        Keyring::from_bytes(DEBIAN_KEYRING, "the built-in Debian archive keyring")
    }

    /// Reads a keyring file (binary `.gpg` or ASCII-armored `.asc`).
    pub fn load(path: &Path) -> Result<Keyring, String> {
        let bytes = crate::hostfs::read_bounded(path, 16 << 20, "a keyring").map_err(|e| e.to_string())?;
        Keyring::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses keyring bytes.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Keyring, String> {
        let (iter, _) =
            SignedPublicKey::from_reader_many(bytes).map_err(|e| format!("{origin}: not an OpenPGP keyring: {e}"))?;
        let mut keys = Vec::new();
        for k in iter {
            keys.push(k.map_err(|e| format!("{origin}: unreadable key: {e}"))?);
        }
        if keys.is_empty() {
            return Err(format!("{origin}: holds no public keys"));
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
pub fn verify_inrelease(bytes: &[u8], keyring: &Keyring, url: &str) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{url}: InRelease is not UTF-8 text"))?;
    let (msg, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| format!("{url}: not an OpenPGP clear-signed InRelease file ({e})\nhint: check that the URL is a Debian archive root (it must have dists/SUITE/InRelease)"))?;
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
    Err(format!(
        "{url}: no valid signature by a trusted key\n  expected: a signature by a key in {}\n  found:    {} signature(s), issuers {}\nhint: the file was altered, or the archive is signed by a key that is not trusted; give the archive's keyring with `keyring:` in the `debs:` entry",
        keyring.origin,
        msg.signatures().len(),
        if issuers.is_empty() { "unknown".to_string() } else { issuers.join(", ") }
    ))
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
pub fn parse_release(text: &str, url: &str) -> Result<Release, String> {
    let ps = parse_paragraphs(text, url)?;
    let p = ps.first().ok_or_else(|| format!("{url}: empty Release file"))?;
    let mut r = Release {
        date: p.get("Date").unwrap_or_default().to_string(),
        valid_until: p.get("Valid-Until").map(str::to_string),
        by_hash: p.get("Acquire-By-Hash").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        sha256: BTreeMap::new(),
    };
    let list = p.get("SHA256").ok_or_else(|| format!("{url}: Release has no SHA256 field\nhint: strata needs SHA256 index checksums (MD5Sum/SHA1 alone are not trusted)"))?;
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [hash, size, path] = parts.as_slice() else {
            return Err(format!("{url}: malformed SHA256 line `{line}`"));
        };
        let d = Digest::parse(hash).map_err(|e| format!("{url}: SHA256 line `{line}`: {e}"))?;
        let n = size.parse::<u64>().map_err(|_| format!("{url}: SHA256 line `{line}`: bad size"))?;
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
        assert!(parse_release("Origin: x\n", "u").unwrap_err().contains("SHA256"));
    }
}
