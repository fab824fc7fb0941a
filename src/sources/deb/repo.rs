//! Lock time: fetch each suite's `InRelease`, verify its signature, fetch the
//! Packages index it lists (checked against the Release SHA256 and size,
//! cached in the store by digest), and resolve the requested packages,
//! keeping the versions the previous lock pinned where they still fit.
//!
//! Offline (`strata lock --offline`), nothing is downloaded: each
//! `InRelease` is the one the previous lock recorded (by sha256, from the
//! store or a mirror), else the newest a mirror holds for its URL; the
//! Packages indexes come from the store or a mirror by digest. `strata fetch
//! --into DIR` puts both into mirrors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::error::DebError;
use crate::archive::decompress;
use crate::digest::Digest;
use crate::error::Hint;
use crate::fetch::Artifact;
use crate::lockfile::{DebPin, DebsInputs, DebsLock, LockedArchive};
use crate::net::redact::url as redact_url;
use crate::net::{Net, NetError, RetryPolicy};
use crate::report::Reporter;
use crate::spec::{DebsSpec, ResolvedLayer};
use crate::store::Store;

use super::control::{for_each_paragraph, parse_relations};
use super::release::{parse_release, parse_release_date, verify_inrelease, Keyring};
use super::resolve::{resolve, Candidate, Request, Universe};
use super::version::Version;

/// The largest `InRelease` or Packages index read (bookworm's main
/// Packages.xz is about 9 MB).
const MAX_INDEX: usize = 256 << 20;

/// Options of a lock run.
pub struct LockContext<'a> {
    /// The store (InRelease files and Packages indexes are kept in it by digest).
    pub store: &'a Store,
    /// Progress.
    pub reporter: Arc<dyn Reporter>,
    /// The network layer (CA files, proxy, timeouts, rewrites); `None`: offline.
    pub net: Option<&'a Net>,
    /// How often a failed request is tried again.
    pub retry: RetryPolicy,
    /// Mirror directories (from `strata fetch --into`), searched offline.
    pub mirrors: &'a [PathBuf],
}

/// What the previous lock says about a layer entry, for a relock.
#[derive(Default)]
pub struct Previous<'a> {
    /// Pins to keep where they still fit (empty for `--upgrade`).
    pub pins: Vec<&'a DebPin>,
    /// The archive states it was resolved against (offline, these are read again).
    pub archives: &'a [LockedArchive],
    /// What the `debs:` entries below this one pin, with their lock keys:
    /// installed already, so they satisfy relations and are not pinned again.
    pub below: Vec<(&'a DebPin, String)>,
}

/// One index file used by a resolution (an `InRelease` or a Packages index), in the store.
#[derive(Debug, Clone)]
pub struct IndexFile {
    /// Short name for messages.
    pub name: String,
    /// Where it was (or would be) fetched.
    pub url: String,
    /// Its digest.
    pub sha256: Digest,
    /// Its size.
    pub size: u64,
}

impl IndexFile {
    /// As an artifact (to put into a mirror).
    pub fn artifact(&self) -> Artifact {
        Artifact { name: self.name.clone(), url: self.url.clone(), sha256: self.sha256, size: Some(self.size) }
    }
}

/// The packages of a layer entry's archives, and what was read to know them.
pub struct Indexes {
    /// Every candidate.
    pub universe: Universe,
    /// The archive states read.
    pub archives: Vec<LockedArchive>,
    /// Optional archives skipped.
    pub notes: Vec<String>,
    /// The index files (all in the store).
    pub files: Vec<IndexFile>,
    /// Archive URLs by index (candidates name their archive by index).
    pub urls: Vec<String>,
}

impl LockContext<'_> {
    /// GETs an index file with retries.
    fn get(&self, net: &Net, url: &str) -> Result<Vec<u8>, NetError> {
        let reporter = self.reporter.clone();
        net.get_small(url, MAX_INDEX, &self.retry, &move |line| reporter.warn(line))
    }

    /// The bytes of `digest` from the store or a mirror (checked).
    fn local(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = if self.store.contains(digest) {
            self.store.mark_used(digest);
            self.store.path(digest)
        } else {
            crate::mirror::find(self.mirrors, digest)?
        };
        // Bounded like a download: a mirror file is an input like any other.
        let bytes = crate::hostfs::read_bounded(&path, MAX_INDEX as u64, "an archive index").ok()?;
        (Digest::of(&bytes) == *digest).then_some(bytes)
    }

    /// Keeps `bytes` in the store (so `strata fetch` and offline relocks find them).
    fn keep(&self, bytes: &[u8]) -> Result<Digest, DebError> {
        Ok(self.store.put_bytes(bytes)?)
    }

    /// The `InRelease` of `url` offline: the recorded one, else the newest
    /// (by `Date:`) a mirror holds.
    fn offline_inrelease(&self, url: &str, recorded: Option<&str>) -> Result<Vec<u8>, DebError> {
        if let Some(d) = recorded.and_then(|h| Digest::parse(h).ok()) {
            if let Some(b) = self.local(&d) {
                return Ok(b);
            }
        }
        let mut best: Option<(i64, Vec<u8>)> = None;
        for (d, _) in crate::mirror::find_url(self.mirrors, url) {
            let Some(b) = self.local(&d) else { continue };
            let date = std::str::from_utf8(&b)
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| l.strip_prefix("Date:")).and_then(|v| parse_release_date(v.trim()))
                })
                .unwrap_or(i64::MIN);
            if best.as_ref().is_none_or(|(t, _)| date > *t) {
                best = Some((date, b));
            }
        }
        best.map(|(_, b)| b)
            .ok_or_else(|| DebError::OfflineInRelease { url: redact_url(url), recorded: recorded.map(str::to_string) })
    }
}

/// Reads the indexes of a `debs:` entry's archives (see the module docs for
/// where each comes from).
pub fn load_indexes(
    layer: &ResolvedLayer,
    spec: &DebsSpec,
    cx: &LockContext<'_>,
    recorded: &[LockedArchive],
) -> Result<Indexes, DebError> {
    let arch = spec.arch();
    let keyring = match &spec.keyring {
        Some(k) => {
            let path = layer.host_file(k).map_err(|source| DebError::KeyringPath { source })?;
            let bytes = crate::hostfs::read_bounded(&path, 16 << 20, "a keyring")
                .map_err(|source| DebError::KeyringFile { source })?;
            Keyring::from_bytes(&bytes, k)?
        }
        None => Keyring::debian()?,
    };
    let mut out = Indexes {
        universe: Universe::default(),
        archives: Vec::new(),
        notes: Vec::new(),
        files: Vec::new(),
        urls: Vec::new(),
    };
    for archive in spec.archives() {
        let idx = out.urls.len();
        out.urls.push(archive.url.0.clone());
        let comps = if archive.components.is_empty() { vec!["main".to_string()] } else { archive.components.clone() };
        let mut suite_results = Vec::new();
        let mut skipped = None;
        for suite in &archive.suites {
            let url = format!("{}/dists/{suite}/InRelease", archive.url.0);
            let recorded_hash = recorded
                .iter()
                .find(|a| a.url == archive.url.0 && a.suite == *suite)
                .map(|a| a.inrelease_sha256.as_str());
            let fetched = match cx.net {
                Some(net) => {
                    cx.reporter.info(&format!("fetching {}", redact_url(&url)));
                    cx.get(net, &url).map_err(|e| {
                        let hint = match e.status() {
                            Some(404) => "check the archive URL and suite name (the file must exist at URL/dists/SUITE/InRelease), or mark the archive `optional: true`".to_string(),
                            _ => match e.hint() {
                                Some(h) if matches!(e, NetError::Tls { .. }) => h,
                                _ => "check the network or proxy; mark the archive `optional: true` to lock without it".to_string(),
                            },
                        };
                        let short = net_message(&e);
                        (DebError::Download { source: e, hint }, short)
                    })
                }
                None => cx.offline_inrelease(&url, recorded_hash).map_err(|e| {
                    let short = e.to_string();
                    (e, short)
                }),
            };
            let bytes = match fetched {
                Ok(b) => b,
                Err((err, short)) => {
                    if archive.optional {
                        skipped = Some(format!(
                            "skipped optional archive {} suite {suite}: {} ({short})",
                            redact_url(&archive.url.0),
                            redact_url(&url),
                        ));
                        break;
                    }
                    return Err(err);
                }
            };
            let text = verify_inrelease(&bytes, &keyring, &redact_url(&url))?;
            let release = parse_release(&text, &redact_url(&url))?;
            if let Some(vu) = &release.valid_until {
                if let (Some(t), Ok(now)) =
                    (parse_release_date(vu), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
                {
                    if (now.as_secs() as i64) > t {
                        if cx.net.is_some() {
                            return Err(DebError::Expired { url: redact_url(&url), valid_until: vu.clone() });
                        }
                        // Offline, the carried state is the point: it is still signed.
                        cx.reporter.warn(&format!(
                            "offline: {} is past its Valid-Until ({vu}); resolving against it as carried",
                            redact_url(&url)
                        ));
                    }
                }
            }
            let digest = cx.keep(&bytes)?;
            out.files.push(IndexFile {
                name: format!("InRelease {suite} ({})", redact_url(&archive.url.0)),
                url: url.clone(),
                sha256: digest,
                size: bytes.len() as u64,
            });
            suite_results.push((suite.clone(), release, digest));
        }
        if let Some(s) = skipped {
            cx.reporter.warn(&s);
            out.notes.push(s);
            continue;
        }
        for (suite, release, inrelease_digest) in suite_results {
            for comp in &comps {
                let base = format!("{comp}/binary-{arch}/Packages");
                let found = [".xz", ".gz", ""].iter().find_map(|ext| {
                    let p = format!("{base}{ext}");
                    release.sha256.get(&p).map(|e| (p, *e))
                });
                let Some((path, (size, digest))) = found else {
                    return Err(DebError::NoIndex { archive: redact_url(&archive.url.0), suite, base });
                };
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let url = if release.by_hash {
                    format!("{}/dists/{suite}/{dir}/by-hash/SHA256/{}", archive.url.0, digest.hex())
                } else {
                    format!("{}/dists/{suite}/{path}", archive.url.0)
                };
                if cx.store.contains(&digest) {
                    cx.store.mark_used(&digest);
                } else {
                    let bytes = match (cx.local(&digest), cx.net) {
                        (Some(b), _) => b,
                        (None, Some(net)) => {
                            cx.reporter.info(&format!("fetching {}", redact_url(&url)));
                            cx.get(net, &url).map_err(|source| DebError::Download {
                                source,
                                hint: "the mirror may be in the middle of an update; retry later or use another mirror"
                                    .into(),
                            })?
                        }
                        (None, None) => {
                            return Err(DebError::OfflineIndex {
                                url: format!("{}/dists/{suite}/{path}", redact_url(&archive.url.0)),
                                digest,
                            })
                        }
                    };
                    let found = Digest::of(&bytes);
                    if found != digest || bytes.len() as u64 != size {
                        return Err(DebError::IndexMismatch {
                            url: redact_url(&url),
                            expected: digest,
                            expected_size: size,
                            found,
                            found_size: bytes.len() as u64,
                        });
                    }
                    cx.keep(&bytes)?;
                }
                out.files.push(IndexFile {
                    name: format!("Packages {suite}/{path} ({})", redact_url(&archive.url.0)),
                    url: url.clone(),
                    sha256: digest,
                    size,
                });
                let p = cx.store.path(&digest);
                let file = fs_err::File::open(&p).map_err(crate::error::io_err::<DebError>("opening", &p))?;
                let stream =
                    decompress(std::io::BufReader::new(file), &path).map_err(|e| DebError::Archive(Box::new(e)))?;
                let what = format!("{}/dists/{suite}/{path}", redact_url(&archive.url.0));
                // Streamed: only the candidates are kept, not the index text.
                for_each_paragraph(std::io::BufReader::with_capacity(1 << 16, stream), &what, |p| {
                    if let Some(c) = Candidate::from_paragraph(&p, &arch, idx, &what)? {
                        out.universe.add(c);
                    }
                    Ok(())
                })?;
            }
            out.archives.push(LockedArchive {
                url: archive.url.0.clone(),
                suite,
                date: release.date.clone(),
                inrelease_sha256: inrelease_digest.hex(),
            });
        }
    }
    Ok(out)
}

/// Resolves one `debs:` entry against its archives, keeping the previous
/// pins that still fit.
pub fn lock_layer(
    layer: &ResolvedLayer,
    spec: &DebsSpec,
    cx: &LockContext<'_>,
    previous: &Previous<'_>,
) -> Result<DebsLock, DebError> {
    let mut idx = load_indexes(layer, spec, cx, previous.archives)?;
    if idx.universe.is_empty() {
        return Err(DebError::NoPackages);
    }
    let mut installed = BTreeMap::new();
    for (pin, below) in &previous.below {
        let v = Version::parse(&pin.version)?;
        idx.universe.ensure_installed(&pin.name, &v, &pin.arch);
        installed.insert(pin.name.clone(), (v, below.clone()));
    }
    let mut request = Request { installed, ..Request::default() };
    for p in &spec.packages {
        let mut g = parse_relations(&p.0)?;
        request.roots.push(g.remove(0));
    }
    request.exclude = spec.exclude.iter().map(|e| e.0.clone()).collect::<BTreeSet<_>>();
    request.prefer = spec.prefer.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    let old: BTreeMap<&str, &DebPin> = previous.pins.iter().map(|p| (p.name.as_str(), *p)).collect();
    for p in &previous.pins {
        if let Ok(v) = Version::parse(&p.version) {
            request.locked.insert(p.name.clone(), v);
        }
    }
    let res = resolve(&idx.universe, &request)?;
    let mut notes = idx.notes;
    notes.extend(res.notes);
    let packages = res
        .packages
        .values()
        .map(|c| match old.get(c.name.as_str()) {
            // A kept pin stays exactly as it was (same bytes; the URL it was found at).
            Some(p) if p.version == c.version.to_string() && p.sha256 == c.sha256.hex() => (*p).clone(),
            _ => DebPin {
                name: c.name.clone(),
                version: c.version.to_string(),
                arch: c.arch.clone(),
                url: format!("{}/{}", idx.urls[c.archive], c.filename),
                path: c.filename.clone(),
                sha256: c.sha256.hex(),
                size: c.size,
            },
        })
        .collect();
    Ok(DebsLock { arch: spec.arch(), notes, inputs: DebsInputs::of(spec), archives: idx.archives, packages })
}

/// What went wrong, without the operation (the message names the URL already).
fn net_message(e: &NetError) -> String {
    match e {
        NetError::Status { status, .. } => format!("HTTP {status}"),
        NetError::Transport { message, .. } | NetError::Tls { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
