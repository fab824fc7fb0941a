//! Image signatures in the sigstore key-based format, fully offline.
//!
//! A signature is an ECDSA P-256 signature (SHA-256, DER, base64) of a
//! "simple signing" payload that names the manifest digest and the
//! repository it was signed for. It is stored where sigstore tools and
//! containers/image (skopeo, podman, CRI-O with `use-sigstore-attachments`)
//! look: a layer of the manifest tagged `sha256-<hex>.sig` in the image's
//! repository, the signature in the layer annotation
//! `dev.cosignproject.cosign/signature`. Where the registry serves the OCI
//! 1.1 referrers API, the same manifest is also pushed as a referrer of the
//! signed manifest. No transparency log and no certificate authority are
//! involved (docs/signing.md says what that trades away).
//!
//! Signing is deterministic (RFC 6979 nonces, no timestamp in the payload):
//! signing the same manifest twice with the same key adds nothing.

pub mod keys;

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::image::read_blob;
use crate::oci::{media, Descriptor, Manifest, RawManifest, Reference};
use crate::registry::{Client, RegistryError};

/// Media type of a signature payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// `artifactType` of the signature manifest pushed as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The most signature layers of one manifest read.
const MAX_SIGNATURES: usize = 256;
/// The largest payload read.
const MAX_PAYLOAD: u64 = 64 * 1024;

/// The tag a manifest's signatures are stored under.
pub fn signature_tag(d: &Digest) -> String {
    format!("sha256-{}.sig", d.hex())
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    critical: Critical,
    #[serde(default)]
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: ImageClaim,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ImageClaim {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The simple-signing payload for `digest` signed as `docker_reference`.
pub fn payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    let mut optional = BTreeMap::new();
    optional.insert("creator".to_string(), serde_json::json!(format!("strata {}", env!("CARGO_PKG_VERSION"))));
    let p = Payload {
        critical: Critical {
            identity: Identity { docker_reference: docker_reference.into() },
            image: ImageClaim { docker_manifest_digest: digest.to_string() },
            kind: PAYLOAD_TYPE.into(),
        },
        optional: Some(optional),
    };
    serde_json::to_vec(&p).expect("serializing a payload cannot fail")
}

/// The base64 DER signature of `payload`.
pub fn sign_bytes(key: &SigningKey, payload: &[u8]) -> String {
    let sig: Signature = key.sign(payload);
    base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
}

/// True when `sig_b64` is `key`'s signature of `payload`.
pub fn verify_bytes(key: &VerifyingKey, payload: &[u8], sig_b64: &str) -> bool {
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(sig_b64.trim().as_bytes()) else {
        return false;
    };
    let Ok(sig) = Signature::from_der(&der) else {
        return false;
    };
    key.verify(payload, &sig).is_ok()
}

/// Errors of signing and verification.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Something read was malformed.
    #[error("{0}")]
    Invalid(String),
}

/// One manifest signed.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The signed manifest.
    pub digest: Digest,
    /// The identity written into the payload.
    pub identity: String,
    /// The tag holding its signatures.
    pub tag: String,
    /// False when the same signature was already there.
    pub added: bool,
    /// True when also pushed as an OCI 1.1 referrer.
    pub referrer: bool,
}

/// The manifests a reference names: the root and, for an index, each child,
/// with the identity each is signed for: `HOST/NAME:TAG` when signed by tag
/// (children too: a verifier that checks a child reaches it by digest and
/// compares the repository only), else `HOST/NAME@DIGEST` of that manifest.
/// Never a bare repository name, which containers/image's default
/// `matchRepoDigestOrExact` refuses.
fn targets(client: &Client, r: &Reference) -> Result<Vec<(Digest, String)>, SignError> {
    let raw = client.get_manifest(r)?;
    let ident = |d: &Digest| match (&r.tag, &r.digest) {
        (_, Some(_)) => format!("{}@{d}", r.repo_display()),
        (Some(t), None) => format!("{}:{t}", r.repo_display()),
        (None, None) => format!("{}:latest", r.repo_display()),
    };
    let mut out = vec![(raw.digest, ident(&raw.digest))];
    if raw.is_index() {
        let idx = raw.index("the image index").map_err(|e| SignError::Invalid(e.to_string()))?;
        for d in idx.manifests {
            out.push((d.digest, ident(&d.digest)));
        }
    }
    Ok(out)
}

fn sig_manifest(client: &Client, repo: &Reference, d: &Digest) -> Result<Option<(RawManifest, Manifest)>, SignError> {
    let at = Reference { tag: Some(signature_tag(d)), digest: None, ..repo.clone() };
    match client.get_manifest(&at) {
        Ok(raw) => {
            let m = raw.manifest("the signature manifest").map_err(|e| SignError::Invalid(e.to_string()))?;
            Ok(Some((raw, m)))
        }
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Signs the manifest `r` names (and, for an index, each manifest in it)
/// with `key`, adding the signature to the `sha256-<hex>.sig` tag and, when
/// the registry has the referrers API, as a referrer.
pub fn sign_image(client: &Client, r: &Reference, key: &SigningKey) -> Result<Vec<Signed>, SignError> {
    let mut done = Vec::new();
    for (digest, identity) in targets(client, r)? {
        done.push(sign_one(client, r, &digest, &identity, key)?);
    }
    Ok(done)
}

fn sign_one(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    identity: &str,
    key: &SigningKey,
) -> Result<Signed, SignError> {
    let body = payload(identity, digest);
    let sig = sign_bytes(key, &body);
    let mut layer = Descriptor::of(SIMPLE_SIGNING, &body);
    layer.annotations.insert(SIGNATURE_ANNOTATION.into(), sig);
    let mut layers = match sig_manifest(client, repo, digest)? {
        Some((_, m)) => m.layers,
        None => Vec::new(),
    };
    let tag = signature_tag(digest);
    let added = !layers.iter().any(|l| l.digest == layer.digest && l.annotations == layer.annotations);
    if added {
        client.push_blob_bytes(repo, &body, SIMPLE_SIGNING)?;
        layers.push(layer);
    }
    let manifest = attachment_manifest(client, repo, layers.clone(), None)?;
    if added {
        client.push_manifest(repo, &manifest.bytes, media::MANIFEST, Some(&tag))?;
    }
    let mut referrer = false;
    if client.has_referrers_api(repo, digest)? {
        let subject_raw = client.get_manifest(&repo.with_digest(*digest))?;
        let subject = subject_raw.descriptor();
        let art = attachment_manifest(client, repo, layers, Some(subject.clone()))?;
        client.push_referrer(repo, &subject, &art.bytes, media::MANIFEST)?;
        referrer = true;
    }
    Ok(Signed { digest: *digest, identity: identity.into(), tag, added, referrer })
}

/// The signature manifest: an OCI image manifest whose layers are the
/// payloads (its config lists them as diff IDs, as sigstore tools write it).
fn attachment_manifest(
    client: &Client,
    repo: &Reference,
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
) -> Result<RawManifest, SignError> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let config = serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let cb = serde_json::to_vec(&config).expect("serializing a config cannot fail");
    client.push_blob_bytes(repo, &cb, media::CONFIG)?;
    let m = Manifest {
        schema_version: 2,
        media_type: Some(media::MANIFEST.into()),
        artifact_type: subject.as_ref().map(|_| SIGNATURE_ARTIFACT.to_string()),
        config: Descriptor::of(media::CONFIG, &cb),
        layers,
        subject,
        annotations: BTreeMap::new(),
    };
    RawManifest::encode(&m, media::MANIFEST).map_err(|e| SignError::Invalid(e.to_string()))
}

/// The verdict on one manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The manifest checked.
    pub digest: Digest,
    /// `Ok(identity signed for)` or `Err(reason)`.
    #[serde(with = "verdict_result")]
    pub result: Result<String, String>,
}

mod verdict_result {
    pub fn serialize<S: serde::Serializer>(r: &Result<String, String>, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(2))?;
        match r {
            Ok(i) => {
                m.serialize_entry("verified", &true)?;
                m.serialize_entry("identity", i)?;
            }
            Err(e) => {
                m.serialize_entry("verified", &false)?;
                m.serialize_entry("reason", e)?;
            }
        }
        m.end()
    }
}

/// Checks the signatures of the manifest `r` names (and, for an index, of
/// each manifest in it) against `key`. `identity` is the repository
/// (`host/name`) the signatures must have been made for; default: the
/// repository of `r`.
pub fn verify_image(
    client: &Client,
    r: &Reference,
    key: &VerifyingKey,
    identity: Option<&str>,
) -> Result<Vec<Verdict>, SignError> {
    let want = identity.map(str::to_string).unwrap_or_else(|| r.repo_display());
    let mut out = Vec::new();
    for (digest, _) in targets(client, r)? {
        let result = verify_one(client, r, &digest, key, &want)?;
        out.push(Verdict { digest, result });
    }
    Ok(out)
}

fn verify_one(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    key: &VerifyingKey,
    want: &str,
) -> Result<Result<String, String>, SignError> {
    let tag = signature_tag(digest);
    let Some((_, m)) = sig_manifest(client, repo, digest)? else {
        return Ok(Err(format!(
            "no signature: {} has no `{tag}` tag (the image was never signed, or was changed after signing)",
            repo.repo_display()
        )));
    };
    let at = Reference { tag: Some(tag.clone()), digest: None, ..repo.clone() };
    let src = client.open(&at)?;
    let mut by_key_other_digest = None;
    let mut by_key_other_identity = None;
    let mut considered = 0usize;
    for layer in m.layers.iter().take(MAX_SIGNATURES) {
        let Some(sig) = layer.annotation(SIGNATURE_ANNOTATION) else { continue };
        // Payloads are a few hundred bytes; larger layers are not read.
        if layer.media_type != SIMPLE_SIGNING || layer.size > MAX_PAYLOAD {
            continue;
        }
        considered += 1;
        let body = read_blob(&src, layer).map_err(|e| SignError::Invalid(e.to_string()))?;
        if !verify_bytes(key, &body, sig) {
            continue;
        }
        let Ok(p) = serde_json::from_slice::<Payload>(&body) else { continue };
        if p.critical.kind != PAYLOAD_TYPE {
            continue;
        }
        if p.critical.image.docker_manifest_digest != digest.to_string() {
            by_key_other_digest = Some(p.critical.image.docker_manifest_digest.clone());
            continue;
        }
        let signed_for = p.critical.identity.docker_reference.clone();
        let repo_of = Reference::parse(&signed_for).map(|r| r.repo_display()).unwrap_or_default();
        if repo_of != want {
            by_key_other_identity = Some(signed_for);
            continue;
        }
        return Ok(Ok(signed_for));
    }
    Ok(Err(if let Some(other) = by_key_other_digest {
        format!(
            "tampered: the signature by this key is for {}, but the manifest is {digest} (the manifest was changed after signing)",
            crate::report::one_line(&other)
        )
    } else if let Some(other) = by_key_other_identity {
        format!(
            "identity mismatch: signed for `{}`, not `{want}` (pass --identity to accept another repository)",
            crate::report::one_line(&other)
        )
    } else if considered == 0 {
        format!("no signature: `{tag}` holds no signature layers")
    } else {
        format!("wrong key: {considered} signature(s) found, none made by this key")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_bytes() {
        let k = keys::generate();
        let d = Digest::of(b"m");
        let p = payload("host/app:1", &d);
        let s = sign_bytes(&k, &p);
        assert!(verify_bytes(k.verifying_key(), &p, &s));
        assert!(!verify_bytes(keys::generate().verifying_key(), &p, &s));
        let mut q = p.clone();
        q[5] ^= 1;
        assert!(!verify_bytes(k.verifying_key(), &q, &s));
        // Deterministic: the same payload gives the same signature.
        assert_eq!(s, sign_bytes(&k, &p));
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["critical"]["type"], PAYLOAD_TYPE);
        assert_eq!(v["critical"]["image"]["docker-manifest-digest"], d.to_string());
        assert_eq!(v["critical"]["identity"]["docker-reference"], "host/app:1");
    }
}
