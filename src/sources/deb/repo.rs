//! Lock time: fetch each suite's `InRelease`, verify its signature, fetch the
//! Packages index it lists (checked against the Release SHA256 and size,
//! cached in the store by digest), and resolve the requested packages.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::archive::decompress;
use crate::digest::Digest;
use crate::lock::{debs_inputs, DebPin, DebsLock, LockedArchive};
use crate::report::{redact_url, Reporter};
use crate::spec::{DebsSpec, ResolvedLayer};
use crate::store::Store;

use super::control::{for_each_paragraph, parse_relations};
use super::release::{parse_release, parse_release_date, verify_inrelease, Keyring};
use super::resolve::{resolve, Candidate, Request, Universe};
use super::{arch_of, archives_of};

/// Why a plain GET failed: the status when the server answered.
#[derive(Debug)]
pub struct GetError {
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// Description.
    pub message: String,
}

/// GETs a small file (an `InRelease`), retrying network errors and 5xx.
pub fn http_get(url: &str, timeout: Duration) -> Result<Vec<u8>, GetError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| GetError { status: None, message: format!("starting the async runtime: {e}") })?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .timeout(timeout * 4)
        .build()
        .map_err(|e| GetError { status: None, message: format!("building the HTTP client: {e}") })?;
    rt.block_on(async {
        let mut last = GetError { status: None, message: String::new() };
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(300 << attempt)).await;
            }
            match client.get(url).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if resp.status().is_success() {
                        match resp.bytes().await {
                            Ok(b) => return Ok(b.to_vec()),
                            Err(e) => last = GetError { status: None, message: format!("reading the body: {e}") },
                        }
                    } else {
                        last = GetError { status: Some(status), message: format!("HTTP {status}") };
                        if !(500..=599).contains(&status) && status != 429 {
                            return Err(last);
                        }
                    }
                }
                Err(e) => {
                    let mut m = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        let t = s.to_string();
                        if !m.contains(&t) {
                            m.push_str(": ");
                            m.push_str(&t);
                        }
                        src = s.source();
                    }
                    last = GetError { status: None, message: m };
                }
            }
        }
        Err(last)
    })
}

/// Options of a lock run.
pub struct LockContext<'a> {
    /// The store (Packages indexes are cached in it by digest).
    pub store: &'a Store,
    /// Progress.
    pub reporter: Arc<dyn Reporter>,
    /// Network timeout for one connection.
    pub timeout: Duration,
}

/// Resolves one `debs:` entry against its archives.
pub fn lock_layer(layer: &ResolvedLayer, spec: &DebsSpec, cx: &LockContext<'_>) -> Result<DebsLock, String> {
    let arch = arch_of(spec);
    let keyring = match &spec.keyring {
        Some(k) => {
            let path = layer.host_file(k).map_err(|e| format!("keyring: {e}\nhint: {}", e.hint()))?;
            let bytes =
                crate::hostfs::read_bounded(&path, 16 << 20, "a keyring").map_err(|e| format!("keyring: {e}"))?;
            Keyring::from_bytes(&bytes, k)?
        }
        None => Keyring::debian()?,
    };
    let mut universe = Universe::default();
    let mut locked = Vec::new();
    let mut notes = Vec::new();
    let mut urls = Vec::new();
    for archive in archives_of(spec) {
        let idx = urls.len();
        urls.push(archive.url.0.clone());
        let comps = if archive.components.is_empty() { vec!["main".to_string()] } else { archive.components.clone() };
        let mut suite_results = Vec::new();
        let mut skipped = None;
        for suite in &archive.suites {
            let url = format!("{}/dists/{suite}/InRelease", archive.url.0);
            cx.reporter.info(&format!("fetching {}", redact_url(&url)));
            let bytes = match http_get(&url, cx.timeout) {
                Ok(b) => b,
                Err(e) => {
                    if archive.optional {
                        skipped = Some(format!(
                            "skipped optional archive {} suite {suite}: {} ({})",
                            redact_url(&archive.url.0),
                            redact_url(&url),
                            e.message
                        ));
                        break;
                    }
                    let hint = match e.status {
                        Some(404) => "hint: check the archive URL and suite name (the file must exist at URL/dists/SUITE/InRelease), or mark the archive `optional: true`",
                        _ => "hint: check the network or proxy; mark the archive `optional: true` to lock without it",
                    };
                    return Err(format!("GET {}: {}\n{hint}", redact_url(&url), e.message));
                }
            };
            let text = verify_inrelease(&bytes, &keyring, &redact_url(&url))?;
            let release = parse_release(&text, &redact_url(&url))?;
            if let Some(vu) = &release.valid_until {
                if let (Some(t), Ok(now)) =
                    (parse_release_date(vu), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
                {
                    if (now.as_secs() as i64) > t {
                        return Err(format!(
                            "{}: the Release file expired (Valid-Until: {vu})\nhint: the mirror is stale (or the clock is wrong); use an up-to-date mirror",
                            redact_url(&url)
                        ));
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
                    return Err(format!(
                        "{}/dists/{suite}/InRelease lists no {base}(.xz|.gz)\nhint: check the component (`components:`) and architecture (`arch:`)",
                        redact_url(&archive.url.0)
                    ));
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
                    let bytes = http_get(&url, cx.timeout).map_err(|e| {
                        format!("GET {}: {}\nhint: the mirror may be in the middle of an update; retry later or use another mirror", redact_url(&url), e.message)
                    })?;
                    let found = Digest::of(&bytes);
                    if found != digest || bytes.len() as u64 != size {
                        return Err(format!(
                            "{}: the Packages index does not match the signed Release\n  expected: {digest} ({size} bytes)\n  found:    {found} ({} bytes)\nhint: the mirror is being updated or is corrupt; retry later or use another mirror",
                            redact_url(&url),
                            bytes.len()
                        ));
                    }
                    cx.store.put_bytes(&bytes).map_err(|e| e.to_string())?;
                }
                let file = fs_err::File::open(cx.store.path(&digest)).map_err(|e| e.to_string())?;
                let stream = decompress(std::io::BufReader::new(file), &path).map_err(|e| e.to_string())?;
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
        return Err("no packages found in any archive\nhint: check `archives:`, `arch:` and the network".into());
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
