//! Build provenance: an in-toto statement (v1) with a SLSA provenance v1
//! predicate, in a DSSE envelope — signed when a key is given — attached to
//! the image as a referrer (docs/signing.md#provenance).
//!
//! The statement records what is needed to rebuild the image bit for bit:
//! the spec and lock files (paths relative to the build context, sha256),
//! every file the spec read, every artifact the build fetched (URL, sha256),
//! the epoch, the platform, and the builder (Strata's version and the digest
//! of the strata-verify it embeds for that platform). It holds no time of day and no host
//! names, so the same build gives the same statement, byte for byte.

use std::path::Path;

use base64::Engine as _;
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::digest::Digest;
use crate::fetch::Artifact;
use crate::spec::LoadedSpec;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type of Strata's provenance.
pub const BUILD_TYPE: &str = "urn:strata:buildtype:image:v1";
/// DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Media type (and artifact type) of the attached envelope.
pub const MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Largest envelope read.
pub const MAX_ENVELOPE: usize = 8 << 20;

/// A file of the build context the statement names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContextFile {
    /// Path relative to the build context, `/`-separated.
    pub path: String,
    /// Its sha256.
    pub sha256: Digest,
}

/// What a provenance statement says, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The image it is about (name, manifest digest).
    pub subject: (String, Digest),
    /// The spec file.
    pub spec: ContextFile,
    /// The lock file, when the build had one.
    pub lock: Option<ContextFile>,
    /// Every context file the build read (spec, layer files, locks, sources).
    pub files: Vec<ContextFile>,
    /// Artifacts fetched (URL, sha256).
    pub artifacts: Vec<(String, Digest)>,
    /// SOURCE_DATE_EPOCH of the build.
    pub epoch: u64,
    /// The strata version that built it.
    pub strata_version: String,
}

fn rel(context: &Path, p: &Path) -> Option<String> {
    let c = fs_err::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let p = fs_err::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let r = p.strip_prefix(&c).ok()?;
    let parts: Vec<String> = r.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    Some(parts.join("/"))
}

fn file_of(context: &Path, p: &Path) -> Option<ContextFile> {
    let path = rel(context, p)?;
    let bytes = fs_err::read(p).ok()?;
    Some(ContextFile { path, sha256: Digest::of(&bytes) })
}

fn digest_set(d: &Digest) -> Value {
    json!({"sha256": d.hex()})
}

/// Everything the statement is made from.
pub struct Inputs<'a> {
    /// The loaded spec.
    pub spec: &'a LoadedSpec,
    /// The image's name and tag (`app:1.0`).
    pub name: String,
    /// The image manifest digest.
    pub manifest: Digest,
    /// Artifacts fetched.
    pub artifacts: &'a [Artifact],
    /// The epoch.
    pub epoch: u64,
    /// The platform built.
    pub platform: String,
    /// The strata-verify embedded into the image, if any.
    pub verifier: Option<Digest>,
    /// Built with `--unlocked`.
    pub unlocked: bool,
}

/// The in-toto statement for a build, canonical JSON bytes.
pub fn statement(i: &Inputs<'_>) -> Vec<u8> {
    let ctx = &i.spec.context;
    let spec = file_of(ctx, &i.spec.path);
    let lock = file_of(ctx, &crate::lockfile::lock_path(&i.spec.path));
    let mut files: Vec<ContextFile> = i.spec.sources.iter().filter_map(|(p, _)| file_of(ctx, p)).collect();
    if let Some(l) = &lock {
        files.push(l.clone());
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup();
    let mut deps: Vec<Value> =
        files.iter().map(|f| json!({"uri": format!("context:{}", f.path), "digest": digest_set(&f.sha256)})).collect();
    let mut arts: Vec<&Artifact> = i.artifacts.iter().collect();
    arts.sort_by(|a, b| (&a.url, a.sha256.hex()).cmp(&(&b.url, b.sha256.hex())));
    arts.dedup_by(|a, b| a.url == b.url && a.sha256 == b.sha256);
    deps.extend(arts.iter().map(|a| json!({"uri": a.url, "name": a.name, "digest": digest_set(&a.sha256)})));
    // The strata-verify this strata embeds for the platform built (the
    // linux/amd64 one for a platform it carries none for).
    let embedded = crate::sources::verifier::Embedded::for_platform(&i.platform)
        .or(crate::sources::verifier::EMBEDDED.first())
        .map(|e| e.sha256().to_string());
    let mut version = json!({"strata": env!("CARGO_PKG_VERSION")});
    if let Some(e) = &embedded {
        version["strata-verify"] = json!(e);
    }
    let file_json = |f: &Option<ContextFile>| match f {
        Some(f) => json!({"path": f.path, "digest": digest_set(&f.sha256)}),
        None => Value::Null,
    };
    let v = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": i.name, "digest": digest_set(&i.manifest)}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "spec": file_json(&spec),
                    "lock": file_json(&lock),
                    "platform": i.platform,
                    "epoch": i.epoch,
                    "unlocked": i.unlocked,
                },
                "internalParameters": {
                    "verifier": i.verifier.map(|d| d.to_string()),
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": format!("urn:strata:builder:{}", env!("CARGO_PKG_VERSION")),
                    "version": version,
                },
                "metadata": {},
            },
        },
    });
    crate::oci::canonical::to_vec(&v).expect("serializing a statement cannot fail")
}

/// DSSE pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}

/// The statement in a DSSE envelope, signed by `key` when given (an
/// unsigned envelope has an empty `signatures` list).
pub fn envelope(statement: &[u8], key: Option<&SigningKey>) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let signatures: Vec<Value> = key
        .map(|k| {
            let sig = crate::sign::sign_bytes(k, &pae(PAYLOAD_TYPE, statement));
            vec![json!({"keyid": "", "sig": sig})]
        })
        .unwrap_or_default();
    let v = json!({"payloadType": PAYLOAD_TYPE, "payload": b64.encode(statement), "signatures": signatures});
    crate::oci::canonical::to_vec(&v).expect("serializing an envelope cannot fail")
}

/// Why a provenance document was refused.
#[derive(Debug, thiserror::Error)]
#[error("provenance: {0}")]
pub struct ProvenanceError(pub String);

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<EnvSig>,
}

#[derive(Deserialize)]
struct EnvSig {
    sig: String,
}

/// Opens an envelope: the statement bytes, and whether `key` (when given)
/// signed it. With a key, an envelope it did not sign is an error.
pub fn open_envelope(bytes: &[u8], key: Option<&VerifyingKey>) -> Result<Vec<u8>, ProvenanceError> {
    let e = |m: &str| ProvenanceError(m.into());
    if bytes.len() > MAX_ENVELOPE {
        return Err(e("the envelope is larger than 8 MiB"));
    }
    let env: Envelope = serde_json::from_slice(bytes).map_err(|_| e("not a DSSE envelope"))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(e("the envelope does not hold an in-toto statement"));
    }
    let stmt = base64::engine::general_purpose::STANDARD
        .decode(env.payload.as_bytes())
        .map_err(|_| e("the envelope's payload is not base64"))?;
    if let Some(k) = key {
        let msg = pae(&env.payload_type, &stmt);
        if env.signatures.is_empty() {
            return Err(e("the provenance is not signed"));
        }
        if !env.signatures.iter().any(|s| crate::sign::verify_bytes(k, &msg, &s.sig)) {
            return Err(e("the provenance is not signed by this key"));
        }
    }
    Ok(stmt)
}

/// Reads a statement (as [`statement`] writes it).
pub fn parse(statement: &[u8]) -> Result<Provenance, ProvenanceError> {
    let e = |m: &str| ProvenanceError(m.into());
    let v: Value = serde_json::from_slice(statement).map_err(|_| e("the statement is not JSON"))?;
    if v["_type"] != STATEMENT_TYPE || v["predicateType"] != PREDICATE_TYPE {
        return Err(e("not an in-toto statement with a SLSA v1 provenance predicate"));
    }
    let bd = &v["predicate"]["buildDefinition"];
    if bd["buildType"] != BUILD_TYPE {
        return Err(e("the provenance was not written by strata (another buildType)"));
    }
    let dig = |x: &Value| -> Option<Digest> { Digest::parse(x["sha256"].as_str()?).ok() };
    let file = |x: &Value| -> Option<ContextFile> {
        let path = x["path"].as_str()?.to_string();
        Some(ContextFile { path, sha256: dig(&x["digest"])? })
    };
    let ext = &bd["externalParameters"];
    let spec = file(&ext["spec"]).ok_or_else(|| e("no spec file recorded"))?;
    let lock = file(&ext["lock"]);
    let mut files = Vec::new();
    let mut artifacts = Vec::new();
    for d in bd["resolvedDependencies"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let (Some(uri), Some(sha)) = (d["uri"].as_str(), dig(&d["digest"])) else { continue };
        match uri.strip_prefix("context:") {
            Some(p) => files.push(ContextFile { path: p.to_string(), sha256: sha }),
            None => artifacts.push((uri.to_string(), sha)),
        }
    }
    let s0 = &v["subject"][0];
    let subject = (
        s0["name"].as_str().unwrap_or_default().to_string(),
        dig(&s0["digest"]).ok_or_else(|| e("no subject digest"))?,
    );
    Ok(Provenance {
        subject,
        spec,
        lock,
        files,
        artifacts,
        epoch: ext["epoch"].as_u64().unwrap_or(0),
        strata_version: v["predicate"]["runDetails"]["builder"]["version"]["strata"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// A recorded path made safe to join under a directory: relative, no `..`.
pub fn safe_join(dir: &Path, recorded: &str) -> Result<std::path::PathBuf, ProvenanceError> {
    let p = Path::new(recorded);
    let ok = !recorded.is_empty()
        && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        && !recorded.contains('\\');
    if !ok {
        return Err(ProvenanceError(format!(
            "the recorded path `{}` is not a plain relative path",
            crate::report::one_line(recorded)
        )));
    }
    Ok(dir.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_sign_open() {
        let k = crate::sign::keys::generate();
        let stmt = br#"{"_type":"x"}"#;
        let env = envelope(stmt, Some(&k));
        assert_eq!(open_envelope(&env, Some(k.verifying_key())).unwrap(), stmt);
        let other = crate::sign::keys::generate();
        assert!(open_envelope(&env, Some(other.verifying_key())).is_err());
        let unsigned = envelope(stmt, None);
        assert_eq!(open_envelope(&unsigned, None).unwrap(), stmt);
        assert!(open_envelope(&unsigned, Some(k.verifying_key())).is_err());
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab");
    }

    #[test]
    fn unsafe_paths_refused() {
        let d = Path::new("/x");
        assert!(safe_join(d, "specs/a.yaml").is_ok());
        for bad in ["../a", "/etc/passwd", "", "a/../../b"] {
            assert!(safe_join(d, bad).is_err(), "{bad}");
        }
    }
}
