//! Pulling an image into an OCI image layout: the manifest (from an index,
//! the requested platform's), then config and layers at most `concurrency`
//! at a time, each verified against its digest while it streams to a
//! temporary file and renamed into `blobs/sha256/` only when correct;
//! `index.json` is written last, so an interrupted pull never leaves a tag
//! pointing at missing blobs.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::info_span;

use crate::digest::{Digest, Hasher};
use crate::image::{canonical, REF_NAME};
use crate::registry::client::{error_chain, short, Registry};
use crate::registry::error::{Fail, RegistryError};
use crate::registry::memory::BlobMemory;
use crate::registry::ops::Fetched;
use crate::registry::reference::Reference;
use crate::report::{human_bytes, task_id, TaskKind};

/// Media types of manifest lists.
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == crate::image::INDEX_MEDIA_TYPE
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// Picks `os/arch` from an index: its digest and media type.
pub(crate) fn select_platform(
    index: &[u8],
    os: &str,
    arch: &str,
    what: &str,
) -> Result<(Digest, String), RegistryError> {
    let v: Value = serde_json::from_slice(index)
        .map_err(|e| RegistryError::Invalid(format!("{what}: the index is not JSON: {e}")))?;
    let list = v.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
    let plat = |m: &Value| {
        format!(
            "{}/{}",
            m.pointer("/platform/os").and_then(Value::as_str).unwrap_or("?"),
            m.pointer("/platform/architecture").and_then(Value::as_str).unwrap_or("?")
        )
    };
    let want = format!("{os}/{arch}");
    let pick = list
        .iter()
        .find(|m| plat(m) == want)
        .or_else(|| if list.len() == 1 { list.first() } else { None })
        .ok_or_else(|| {
            RegistryError::Invalid(format!(
                "{what}: the index has no {want} image (it has: {})\nhint: choose one with --platform OS/ARCH",
                list.iter().map(plat).collect::<Vec<_>>().join(", ")
            ))
        })?;
    let d = pick
        .get("digest")
        .and_then(Value::as_str)
        .and_then(|d| Digest::parse(d).ok())
        .ok_or_else(|| RegistryError::Invalid(format!("{what}: index entry without a sha256 digest")))?;
    let mt = pick.get("mediaType").and_then(Value::as_str).unwrap_or(crate::image::MANIFEST_MEDIA_TYPE).to_string();
    Ok((d, mt))
}

/// Pull settings.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platform to take from an index (`os`, `architecture`).
    pub platform: (String, String),
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { platform: ("linux".into(), "amd64".into()) }
    }
}

/// One blob of a pull.
#[derive(Debug, Clone, Serialize)]
pub struct PulledBlob {
    /// Digest.
    pub digest: Digest,
    /// Size.
    pub size: u64,
    /// `downloaded` or `present` (already in the layout).
    pub action: &'static str,
    /// Bytes received, all attempts together.
    pub bytes: u64,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct PullSummary {
    /// What was pulled.
    pub reference: String,
    /// The image manifest written.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The index it was selected from, when the reference named one.
    pub index_digest: Option<Digest>,
    /// The layout directory.
    pub output: String,
    /// The tag in `index.json`.
    pub tag: String,
    /// Blobs.
    pub blobs: Vec<PulledBlob>,
    /// Bytes received.
    pub bytes_downloaded: u64,
    /// Wall time.
    pub seconds: f64,
}

fn ioe<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io { action, path: path.to_path_buf(), source }
}

impl crate::registry::Client {
    /// Resolves `r` to an image manifest (through an index when needed).
    pub(crate) async fn resolve(
        &self,
        reg: &Registry,
        r: &Reference,
        platform: &(String, String),
    ) -> Result<(Fetched, Option<Digest>), RegistryError> {
        let root = reg.get_manifest(&r.repository, &r.manifest_reference()).await?;
        if !is_index(&root.media_type) {
            return Ok((root, None));
        }
        let (d, _) = select_platform(&root.bytes, &platform.0, &platform.1, &r.to_string())?;
        let m = reg.get_manifest(&r.repository, &d.to_string()).await?;
        Ok((m, Some(root.digest)))
    }

    /// Pulls `r` into the OCI layout `dir` under `tag` (default: the reference's tag, else `latest`).
    pub fn pull(
        &self,
        r: &Reference,
        dir: &Path,
        tag: Option<&str>,
        opts: &PullOptions,
    ) -> Result<PullSummary, RegistryError> {
        let started = Instant::now();
        let reg = self.registry(r)?;
        let _span = info_span!("pull", from = %r).entered();
        let tag = tag.map(str::to_string).or_else(|| r.tag.clone()).unwrap_or_else(|| "latest".into());
        if !crate::spec::valid_tag(&tag) {
            return Err(RegistryError::Invalid(format!("`{tag}` is not a valid tag for the layout")));
        }
        // Refuse to write into something that is not a layout.
        if dir.exists() {
            let empty = std::fs::read_dir(dir).map_err(ioe("reading", dir))?.next().is_none();
            if !empty && !dir.join("oci-layout").is_file() {
                return Err(RegistryError::Invalid(format!("{} exists and is not an OCI image layout (no `oci-layout` file); refusing to write into it\nhint: choose a new or empty directory", dir.display())));
            }
        }
        let blobs_dir = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs_dir).map_err(ioe("creating", &blobs_dir))?;
        let summary = self.rt.block_on(async {
            let (m, index_digest) = self.resolve(&reg, r, &opts.platform).await?;
            let v: Value = serde_json::from_slice(&m.bytes)
                .map_err(|e| RegistryError::Invalid(format!("{r}: manifest is not JSON: {e}")))?;
            let mut descs = Vec::new();
            for d in v.get("config").into_iter().chain(v.get("layers").and_then(Value::as_array).into_iter().flatten())
            {
                let digest = d.get("digest").and_then(Value::as_str).and_then(|x| Digest::parse(x).ok());
                let size = d.get("size").and_then(Value::as_u64);
                match (digest, size) {
                    (Some(dg), Some(sz)) => descs.push((dg, sz)),
                    _ => {
                        return Err(RegistryError::Invalid(format!(
                            "{r}: manifest {} has a descriptor without a sha256 digest or size",
                            m.digest
                        )))
                    }
                }
            }
            if v.get("config").is_none() {
                return Err(RegistryError::Invalid(format!(
                    "{r}: manifest {} ({}) is not an image manifest",
                    m.digest, m.media_type
                )));
            }
            let blobs: Vec<PulledBlob> = futures_util::stream::iter(
                descs.iter().map(|&(d, size)| self.download(&reg, &r.repository, d, size, &blobs_dir)),
            )
            .buffered(self.opts.concurrency.max(1))
            .try_collect()
            .await?;
            Ok::<_, RegistryError>((m, index_digest, blobs))
        })?;
        let (m, index_digest, blobs) = summary;
        // manifest blob, oci-layout, then index.json last
        let mpath = blobs_dir.join(m.digest.hex());
        if !mpath.is_file() {
            crate::image::layout::atomic_write(&mpath, &m.bytes).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        }
        crate::image::layout::atomic_write(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        write_index(dir, &m, &tag)?;
        BlobMemory::open(self.opts.memory.clone()).record(&reg.host, &r.repository, blobs.iter().map(|b| b.digest));
        let bytes_downloaded = blobs.iter().map(|b| b.bytes).sum();
        Ok(PullSummary {
            reference: r.to_string(),
            digest: m.digest,
            media_type: m.media_type,
            index_digest,
            output: format!("oci:{}:{tag}", dir.display()),
            tag,
            blobs,
            bytes_downloaded,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    async fn download(
        &self,
        reg: &Registry,
        repo: &str,
        d: Digest,
        size: u64,
        blobs_dir: &Path,
    ) -> Result<PulledBlob, RegistryError> {
        let dest = blobs_dir.join(d.hex());
        if std::fs::metadata(&dest).map(|m| m.len() == size).unwrap_or(false) {
            return Ok(PulledBlob { digest: d, size, action: "present", bytes: 0 });
        }
        let op = format!("downloading {} from {}/{repo}", short(&d), reg.host);
        let task = task_id();
        self.reporter.start(task, TaskKind::Download, &short(&d), Some(size));
        let received = std::sync::atomic::AtomicU64::new(0);
        let r = reg
            .retry(&op, || {
                let received = &received;
                let op = &op;
                let dest = &dest;
                async move {
                    let mut resp = reg.get_blob(repo, &d, op).await?;
                    let mut tmp =
                        tempfile::Builder::new().prefix(".strata-pull-").tempfile_in(blobs_dir).map_err(|e| {
                            Fail::Fatal(RegistryError::Io {
                                action: "creating a temporary file in",
                                path: blobs_dir.to_path_buf(),
                                source: e,
                            })
                        })?;
                    let mut h = Hasher::new();
                    {
                        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
                        loop {
                            let chunk = match resp.chunk().await {
                                Ok(Some(c)) => c,
                                Ok(None) => break,
                                Err(e) => {
                                    return Err(Fail::Retry(
                                        RegistryError::Network {
                                            operation: op.clone(),
                                            message: format!(
                                                "the connection broke after {} bytes: {}",
                                                h.len(),
                                                error_chain(&e)
                                            ),
                                            attempts: 1,
                                            hint: "check the network; strata retries broken downloads".into(),
                                        },
                                        None,
                                    ))
                                }
                            };
                            received.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            h.update(&chunk);
                            if h.len() > size {
                                return Err(Fail::Fatal(RegistryError::Invalid(format!(
                                    "{op}: the registry sent more than the {size} bytes the manifest says"
                                ))));
                            }
                            w.write_all(&chunk).map_err(|e| {
                                Fail::Fatal(RegistryError::Io {
                                    action: "writing",
                                    path: tmp_path(blobs_dir),
                                    source: e,
                                })
                            })?;
                            self.reporter.progress(task, h.len());
                        }
                        w.flush().map_err(|e| {
                            Fail::Fatal(RegistryError::Io { action: "writing", path: tmp_path(blobs_dir), source: e })
                        })?;
                    }
                    let (found, n) = h.finish();
                    if n != size {
                        return Err(Fail::Retry(
                            RegistryError::Invalid(format!("{op}: received {n} of {size} bytes")),
                            None,
                        ));
                    }
                    if found != d {
                        return Err(Fail::Fatal(RegistryError::Invalid(format!(
                            "{op}: the bytes hash to {found}, not {d}; the registry's copy is corrupt"
                        ))));
                    }
                    tmp.persist(dest).map_err(|e| {
                        Fail::Fatal(RegistryError::Io { action: "renaming into", path: dest.clone(), source: e.error })
                    })?;
                    Ok(())
                }
            })
            .await;
        match &r {
            Ok(()) => self.reporter.finish(task, &format!("downloaded {}", human_bytes(size))),
            Err(_) => self.reporter.finish(task, "failed"),
        }
        r.map(|()| PulledBlob { digest: d, size, action: "downloaded", bytes: received.into_inner() })
    }
}

fn tmp_path(dir: &Path) -> std::path::PathBuf {
    dir.join(".strata-pull-*")
}

/// Adds (or replaces) the entry tagged `tag` in `dir/index.json`.
fn write_index(dir: &Path, m: &Fetched, tag: &str) -> Result<(), RegistryError> {
    let p = dir.join("index.json");
    let mut manifests: Vec<Value> = Vec::new();
    if p.is_file() {
        let bytes = std::fs::read(&p).map_err(ioe("reading", &p))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("{}: invalid index.json: {e}", dir.display())))?;
        for e in v.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default() {
            if e.pointer("/annotations").and_then(|a| a.get(REF_NAME)).and_then(Value::as_str) != Some(tag) {
                manifests.push(e);
            }
        }
    }
    manifests.push(json!({
        "mediaType": m.media_type,
        "digest": m.digest.to_string(),
        "size": m.bytes.len(),
        "annotations": {REF_NAME: tag},
    }));
    let index = json!({"schemaVersion": 2, "mediaType": crate::image::INDEX_MEDIA_TYPE, "manifests": manifests});
    let bytes = canonical::to_vec(&index).map_err(|e| RegistryError::Invalid(e.to_string()))?;
    crate::image::layout::atomic_write(&p, &bytes).map_err(|e| RegistryError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_selection() {
        let idx = br#"{"manifests":[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","platform":{"os":"linux","architecture":"arm64"}},{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{"os":"linux","architecture":"amd64"}}]}"#;
        let (d, _) = select_platform(idx, "linux", "amd64", "x").unwrap();
        assert!(d.hex().starts_with("2222"));
        let e = select_platform(idx, "linux", "s390x", "x").unwrap_err().to_string();
        assert!(e.contains("linux/arm64, linux/amd64") && e.contains("--platform"), "{e}");
    }
}
