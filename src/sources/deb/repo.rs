//! Lock time: fetch each suite's `InRelease`, verify its signature, fetch the
//! Packages index it lists (checked against the Release SHA256 and size,
//! cached in the store by digest), and resolve the requested packages.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::error::DebError;
use crate::archive::decompress;
use crate::digest::Digest;
use crate::error::Hint;
use crate::lockfile::{debs_inputs, DebPin, DebsLock, LockedArchive};
use crate::net::redact::url as redact_url;
use crate::net::{Net, NetError, RetryPolicy};
use crate::report::Reporter;
use crate::spec::{DebsSpec, ResolvedLayer};
use crate::store::Store;

use super::control::{for_each_paragraph, parse_relations};
use super::release::{parse_release, parse_release_date, verify_inrelease, Keyring};
use super::resolve::{resolve, Candidate, Request, Universe};

/// The largest `InRelease` or Packages index read (bookworm's main
/// Packages.xz is about 9 MB).
const MAX_INDEX: usize = 256 << 20;

/// Options of a lock run.
pub struct LockContext<'a> {
    /// The store (Packages indexes are cached in it by digest).
    pub store: &'a Store,
    /// Progress.
    pub reporter: Arc<dyn Reporter>,
    /// The network layer (CA files, proxy, timeouts, rewrites).
    pub net: &'a Net,
    /// How often a failed request is tried again.
    pub retry: RetryPolicy,
}

impl LockContext<'_> {
    /// GETs an index file with retries.
    fn get(&self, url: &str) -> Result<Vec<u8>, NetError> {
        let reporter = self.reporter.clone();
        self.net.get_small(url, MAX_INDEX, &self.retry, &move |line| reporter.warn(line))
    }
}

/// Resolves one `debs:` entry against its archives.
pub fn lock_layer(layer: &ResolvedLayer, spec: &DebsSpec, cx: &LockContext<'_>) -> Result<DebsLock, DebError> {
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
    let mut universe = Universe::default();
    let mut locked = Vec::new();
    let mut notes = Vec::new();
    let mut urls = Vec::new();
    for archive in spec.archives() {
        let idx = urls.len();
        urls.push(archive.url.0.clone());
        let comps = if archive.components.is_empty() { vec!["main".to_string()] } else { archive.components.clone() };
        let mut suite_results = Vec::new();
        let mut skipped = None;
        for suite in &archive.suites {
            let url = format!("{}/dists/{suite}/InRelease", archive.url.0);
            cx.reporter.info(&format!("fetching {}", redact_url(&url)));
            let bytes = match cx.get(&url) {
                Ok(b) => b,
                Err(e) => {
                    if archive.optional {
                        skipped = Some(format!(
                            "skipped optional archive {} suite {suite}: {} ({})",
                            redact_url(&archive.url.0),
                            redact_url(&url),
                            net_message(&e)
                        ));
                        break;
                    }
                    let hint = match e.status() {
                        Some(404) => "check the archive URL and suite name (the file must exist at URL/dists/SUITE/InRelease), or mark the archive `optional: true`".to_string(),
                        _ => match e.hint() {
                            Some(h) if matches!(e, NetError::Tls { .. }) => h,
                            _ => "check the network or proxy; mark the archive `optional: true` to lock without it".to_string(),
                        },
                    };
                    return Err(DebError::Download { source: e, hint });
                }
            };
            let text = verify_inrelease(&bytes, &keyring, &redact_url(&url))?;
            let release = parse_release(&text, &redact_url(&url))?;
            if let Some(vu) = &release.valid_until {
                if let (Some(t), Ok(now)) =
                    (parse_release_date(vu), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
                {
                    if (now.as_secs() as i64) > t {
                        return Err(DebError::Expired { url: redact_url(&url), valid_until: vu.clone() });
                    }
                }
            }
            suite_results.push((suite.clone(), release, Digest::of(&bytes)));
        }
        if let Some(s) = skipped {
            cx.reporter.warn(&s);
            notes.push(s);
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
                    cx.reporter.info(&format!("fetching {}", redact_url(&url)));
                    let bytes = cx.get(&url).map_err(|source| DebError::Download {
                        source,
                        hint: "the mirror may be in the middle of an update; retry later or use another mirror".into(),
                    })?;
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
                    cx.store.put_bytes(&bytes)?;
                }
                let p = cx.store.path(&digest);
                let file = fs_err::File::open(&p).map_err(crate::error::io_err::<DebError>("opening", &p))?;
                let stream =
                    decompress(std::io::BufReader::new(file), &path).map_err(|e| DebError::Archive(Box::new(e)))?;
                let what = format!("{}/dists/{suite}/{path}", redact_url(&archive.url.0));
                // Streamed: only the candidates are kept, not the index text.
                for_each_paragraph(std::io::BufReader::with_capacity(1 << 16, stream), &what, |p| {
                    if let Some(c) = Candidate::from_paragraph(&p, &arch, idx, &what)? {
                        universe.add(c);
                    }
                    Ok(())
                })?;
            }
            locked.push(LockedArchive {
                url: archive.url.0.clone(),
                suite,
                date: release.date.clone(),
                inrelease_sha256: inrelease_digest.hex(),
            });
        }
    }
    if universe.is_empty() {
        return Err(DebError::NoPackages);
    }
    let mut request = Request::default();
    for p in &spec.packages {
        let mut g = parse_relations(&p.0)?;
        request.roots.push(g.remove(0));
    }
    request.exclude = spec.exclude.iter().map(|e| e.0.clone()).collect::<BTreeSet<_>>();
    request.prefer = spec.prefer.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    let res = resolve(&universe, &request)?;
    notes.extend(res.notes);
    let packages = res
        .packages
        .values()
        .map(|c| DebPin {
            name: c.name.clone(),
            version: c.version.to_string(),
            arch: c.arch.clone(),
            url: format!("{}/{}", urls[c.archive], c.filename),
            path: c.filename.clone(),
            sha256: c.sha256.hex(),
            size: c.size,
        })
        .collect();
    Ok(DebsLock { inputs: debs_inputs(spec), arch, archives: locked, notes, packages })
}

/// What went wrong, without the operation (the message names the URL already).
fn net_message(e: &NetError) -> String {
    match e {
        NetError::Status { status, .. } => format!("HTTP {status}"),
        NetError::Transport { message, .. } | NetError::Tls { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
