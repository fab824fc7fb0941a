//! Local CA certificates: the `ca_certificates:` source, and the layer step
//! that adds certificates found in `/usr/local/share/ca-certificates` to the
//! image's CA bundle as Debian's `update-ca-certificates` does.
//!
//! `update-ca-certificates` writes `/etc/ssl/certs/ca-certificates.crt` as
//! the certificates `/etc/ca-certificates.conf` selects (the `debs:`
//! stand-in makes that part, the *base*), followed by every `*.crt` file
//! below `/usr/local/share/ca-certificates` in path order, each ending in a
//! newline. Strata does the same per layer: a layer that brings local
//! certificates, or a new base, gets a new bundle made of the base and every
//! local certificate of the image so far. What the layers below hold is
//! carried as a [`CaState`], whose bytes live in the store.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::spec::ResolvedLayer;
use crate::store::Store;
use crate::tree::{Entry, Kind, Tree, TreePath};

use super::deb::standins::{CA_BUNDLE, CA_STANDIN_ORIGIN};
use super::{Context, Part, Source, SourceError};

/// Where local certificates go.
pub const LOCAL_DIR: &str = "usr/local/share/ca-certificates";

/// The largest certificate file read.
pub const MAX_CERT_BYTES: u64 = 1 << 20;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Why a CA certificate cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file named by `ca_certificates:` is refused.
    #[error("CA certificate: {0}")]
    Host(#[source] crate::hostfs::HostPathError),
    /// Not text: DER, most likely.
    #[error("CA certificate {file} is not PEM text (binary DER?)")]
    NotPem {
        /// The file as named.
        file: String,
    },
    /// A private key, which must never reach an image.
    #[error("CA certificate {file} holds a private key, which must not go into an image")]
    PrivateKey {
        /// The file as named.
        file: String,
    },
    /// No complete certificate.
    #[error("CA certificate {file} holds no complete PEM certificate (`{BEGIN}` … `{END}`)")]
    NoCertificate {
        /// The file as named.
        file: String,
    },
    /// Its image name is not a valid path.
    #[error("CA certificate {name}: {source}")]
    Name {
        /// The name in the image.
        name: String,
        /// Why.
        #[source]
        source: crate::tree::PathError,
    },
    /// A local certificate in the layer is too large to be one.
    #[error("{path} is {size} bytes; CA certificates are read up to {MAX_CERT_BYTES}")]
    TooLarge {
        /// The file in the image.
        path: TreePath,
        /// Its size.
        size: u64,
    },
    /// Reading a certificate or the bundle of the layer failed.
    #[error("reading {path} for the CA bundle: {source}")]
    Read {
        /// The file in the image.
        path: TreePath,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Hint for CaError {
    fn hint(&self) -> Option<String> {
        match self {
            CaError::Host(e) => Some(e.hint().into()),
            CaError::NotPem { .. } => Some("convert it: `openssl x509 -inform der -in CERT -out CERT.crt`".into()),
            CaError::PrivateKey { .. } => Some("give only the CA's certificate (`-----BEGIN CERTIFICATE-----`)".into()),
            CaError::NoCertificate { .. } => {
                Some("give the CA's certificate in PEM form, as update-ca-certificates expects".into())
            }
            _ => None,
        }
    }
}

/// Reads and checks a CA certificate file named by `ca_certificates:`: PEM
/// text with at least one certificate and no private key.
pub fn read_certificate(path: &Path, shown: &str) -> Result<Vec<u8>, CaError> {
    let bytes = crate::hostfs::read_bounded(path, MAX_CERT_BYTES, "a CA certificate").map_err(CaError::Host)?;
    let file = || shown.to_string();
    let text = std::str::from_utf8(&bytes).map_err(|_| CaError::NotPem { file: file() })?;
    if text.contains("PRIVATE KEY-----") {
        return Err(CaError::PrivateKey { file: file() });
    }
    let begins = text.matches(BEGIN).count();
    if begins == 0 || begins != text.matches(END).count() {
        return Err(CaError::NoCertificate { file: file() });
    }
    Ok(bytes)
}

/// The image name of a certificate file: its stem with `.crt` (what
/// `update-ca-certificates` picks up).
pub fn image_name(file: &str) -> String {
    let name = Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let stem =
        ["crt", "pem", "cer"].iter().find_map(|ext| name.strip_suffix(&format!(".{ext}"))).unwrap_or(&name).to_string();
    format!("{stem}.crt")
}

/// The `ca_certificates:` of a layer.
pub struct CaCertificates<'a> {
    /// The layer entry.
    pub layer: &'a ResolvedLayer,
}

impl Source for CaCertificates<'_> {
    fn describe(&self) -> String {
        format!("CA certificates of {}", self.layer.display_name())
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        let mut fp = String::from("ca-certificates-v1\n");
        let mut certs = Vec::new();
        for c in &self.layer.entry.ca_certificates {
            let path = self.layer.host_file(c).map_err(CaError::Host)?;
            let bytes = read_certificate(&path, c)?;
            let name = image_name(c);
            fp.push_str(&format!("{name} {}\n", Digest::of(&bytes)));
            certs.push((name, bytes));
        }
        let populate = move |_: &Context<'_>, tree: &mut Tree| -> Result<(), SourceError> {
            let origin: Arc<str> = Arc::from(format!("{} ({})", self.layer.display_name(), self.layer.file.display()));
            for (name, bytes) in certs {
                let p = TreePath::from_image_path(&format!("{LOCAL_DIR}/{name}"))
                    .map_err(|source| CaError::Name { name: name.clone(), source })?;
                tree.insert_spec(p, Entry::bytes(bytes, 0o644, &origin))?;
            }
            Ok(())
        };
        Ok(vec![Part { name: None, fingerprint: fp, populate: Box::new(populate), packages: Vec::new() }])
    }
}

/// What the layers below one layer hold of the CA bundle's inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaState {
    /// The bundle of the certificates `/etc/ca-certificates.conf` selects,
    /// as the `debs:` stand-in made it (bytes in the store).
    pub base: Option<Digest>,
    /// Local certificates by path below `/usr/local/share/ca-certificates`
    /// (bytes in the store).
    pub local: BTreeMap<String, Digest>,
}

/// How one layer changes the [`CaState`] (recorded with cached layers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaChanges {
    /// A new base.
    #[serde(default)]
    pub base: Option<Digest>,
    /// Local certificates the layer adds or replaces.
    #[serde(default)]
    pub local: Vec<(String, Digest)>,
    /// When the layer wrote a bundle: the digest of the [`CaState`] below it
    /// that the bundle was made from. A cached layer is reused only over
    /// the same state.
    #[serde(default)]
    pub made_from: Option<Digest>,
}

impl CaState {
    /// A digest of the whole state.
    pub fn digest(&self) -> Digest {
        let mut s = format!("ca-state-v1\nbase {:?}\n", self.base.map(|d| d.to_string()));
        for (p, d) in &self.local {
            s.push_str(&format!("{p} {d}\n"));
        }
        Digest::of(s.as_bytes())
    }

    /// Applies one layer's changes.
    pub fn apply(&mut self, changes: &CaChanges) {
        if let Some(b) = changes.base {
            self.base = Some(b);
        }
        for (p, d) in &changes.local {
            self.local.insert(p.clone(), *d);
        }
    }

    /// Every digest the state refers to (they must stay in the store).
    pub fn blobs(changes: &CaChanges) -> impl Iterator<Item = &Digest> {
        changes.base.iter().chain(changes.local.iter().map(|(_, d)| d))
    }
}

fn read_entry(tree: &Tree, p: &TreePath) -> Result<Option<Vec<u8>>, SourceError> {
    let Some(Entry { kind: Kind::File { content, .. }, .. }) = tree.get(p) else { return Ok(None) };
    let mut v = Vec::new();
    content
        .open()
        .and_then(|r| r.take(MAX_CERT_BYTES.max(64 << 20) + 1).read_to_end(&mut v))
        .map_err(|source| CaError::Read { path: p.clone(), source })?;
    Ok(Some(v))
}

fn stored(store: &Store, d: &Digest, what: &str) -> Result<Vec<u8>, SourceError> {
    let path = store.path(d);
    let bytes = fs_err::read(&path).map_err(SourceError::io("reading from the cache", &path))?;
    let found = Digest::of(&bytes);
    if found != *d {
        return Err(SourceError::corrupt_cache(what, &path, *d, found));
    }
    store.mark_used(d);
    Ok(bytes)
}

/// The `update-ca-certificates` step of one layer, run once its sources
/// filled `tree`: when the layer brings local certificates or a new base,
/// and a base exists (here or below), `/etc/ssl/certs/ca-certificates.crt`
/// is written again as the base followed by every local certificate of the
/// image, in path order. Returns what the layer changes.
pub fn update_bundle(tree: &mut Tree, below: &CaState, store: &Store) -> Result<CaChanges, SourceError> {
    let bundle_path =
        TreePath::from_image_path(CA_BUNDLE).map_err(|source| CaError::Name { name: CA_BUNDLE.to_string(), source })?;
    let base_here = match tree.get(&bundle_path) {
        Some(e) if &*e.origin == CA_STANDIN_ORIGIN => read_entry(tree, &bundle_path)?,
        _ => None,
    };
    let prefix = format!("{LOCAL_DIR}/");
    let mut local_here = Vec::new();
    for (p, e) in tree.iter() {
        if let (Some(rel), Kind::File { size, .. }) = (p.as_str().strip_prefix(&prefix), &e.kind) {
            if rel.ends_with(".crt") {
                if *size > MAX_CERT_BYTES {
                    return Err(CaError::TooLarge { path: p.clone(), size: *size }.into());
                }
                local_here.push((rel.to_string(), p.clone()));
            }
        }
    }
    if base_here.is_none() && local_here.is_empty() {
        return Ok(CaChanges::default());
    }
    let mut changes = CaChanges::default();
    let mut local: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (rel, d) in &below.local {
        local.insert(rel.clone(), stored(store, d, &format!("CA certificate {rel}"))?);
    }
    for (rel, p) in &local_here {
        let bytes = read_entry(tree, p)?.unwrap_or_default();
        changes.local.push((rel.clone(), store.put_bytes(&bytes)?));
        local.insert(rel.clone(), bytes);
    }
    let base = match base_here {
        Some(b) => {
            changes.base = Some(store.put_bytes(&b)?);
            Some(b)
        }
        None => match &below.base {
            Some(d) => Some(stored(store, d, "the CA bundle")?),
            None => None,
        },
    };
    // No bundle yet (no `ca-certificates` below): the layer that installs
    // it adds these. A base alone is already the stand-in's bundle.
    let Some(mut bundle) = base else { return Ok(changes) };
    if local.is_empty() {
        return Ok(changes);
    }
    for cert in local.values() {
        bundle.extend_from_slice(cert);
        if !cert.ends_with(b"\n") {
            bundle.push(b'\n');
        }
    }
    changes.made_from = Some(below.digest());
    let origin: Arc<str> = Arc::from("update-ca-certificates stand-in");
    tree.remove(&bundle_path);
    tree.insert(bundle_path, Entry::bytes(bundle, 0o644, &origin))?;
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(tag: &str) -> String {
        format!("{BEGIN}\n{tag}\n{END}")
    }

    fn tp(s: &str) -> TreePath {
        TreePath::from_image_path(s).unwrap()
    }

    fn bundle(tree: &Tree) -> String {
        String::from_utf8(read_entry(tree, &tp(CA_BUNDLE)).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn local_certificates_follow_the_base_in_path_order_across_layers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let standin: Arc<str> = Arc::from(CA_STANDIN_ORIGIN);
        let files: Arc<str> = Arc::from("files");
        // Layer 1: a local certificate, no bundle yet.
        let mut l1 = Tree::new();
        l1.insert(
            tp("usr/local/share/ca-certificates/zz-corp.crt"),
            Entry::bytes(cert("Z").into_bytes(), 0o644, &files),
        )
        .unwrap();
        let mut state = CaState::default();
        let c1 = update_bundle(&mut l1, &state, &store).unwrap();
        assert!(l1.get(&tp(CA_BUNDLE)).is_none() && c1.made_from.is_none());
        state.apply(&c1);
        // Layer 2: ca-certificates (the stand-in's base) picks it up.
        let mut l2 = Tree::new();
        l2.insert(tp(CA_BUNDLE), Entry::bytes(format!("{}\n", cert("MOZILLA")).into_bytes(), 0o644, &standin)).unwrap();
        let c2 = update_bundle(&mut l2, &state, &store).unwrap();
        assert_eq!(bundle(&l2), format!("{}\n{}\n", cert("MOZILLA"), cert("Z")));
        assert_eq!(c2.made_from, Some(state.digest()));
        state.apply(&c2);
        // Layer 3: another certificate sorts before the first one, in a subdirectory too.
        let mut l3 = Tree::new();
        l3.insert(
            tp("usr/local/share/ca-certificates/corp/a.crt"),
            Entry::bytes(cert("A").into_bytes(), 0o644, &files),
        )
        .unwrap();
        l3.insert(tp("usr/local/share/ca-certificates/readme.txt"), Entry::bytes(&b"not a cert"[..], 0o644, &files))
            .unwrap();
        update_bundle(&mut l3, &state, &store).unwrap();
        assert_eq!(bundle(&l3), format!("{}\n{}\n{}\n", cert("MOZILLA"), cert("A"), cert("Z")));
        // A layer without certificates changes nothing.
        let mut l4 = Tree::new();
        l4.insert(tp("etc/motd"), Entry::bytes(&b"hi"[..], 0o644, &files)).unwrap();
        assert_eq!(update_bundle(&mut l4, &state, &store).unwrap(), CaChanges::default());
        assert_eq!(l4.len(), 2);
    }

    #[test]
    fn certificate_files_are_pem_without_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.pem");
        fs_err::write(&p, cert("X")).unwrap();
        assert!(read_certificate(&p, "c.pem").is_ok());
        fs_err::write(&p, format!("{}\n-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n", cert("X")))
            .unwrap();
        assert!(matches!(read_certificate(&p, "c.pem"), Err(CaError::PrivateKey { .. })));
        fs_err::write(&p, [0x30u8, 0x82, 0x01, 0xff]).unwrap();
        assert!(matches!(read_certificate(&p, "c.pem"), Err(CaError::NotPem { .. })));
        fs_err::write(&p, "hello").unwrap();
        assert!(matches!(read_certificate(&p, "c.pem"), Err(CaError::NoCertificate { .. })));
        assert_eq!(image_name("certs/corp-root.pem"), "corp-root.crt");
        assert_eq!(image_name("corp.crt"), "corp.crt");
        assert_eq!(image_name("corp"), "corp.crt");
    }
}
