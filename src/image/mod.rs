//! OCI image config, manifest and index, built from a spec and its layers,
//! serialised canonically; and the outputs that hold them.

pub mod canonical;
pub mod layout;
pub mod read;

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};

use crate::digest::Digest;
use crate::layer::LayerBlob;

/// Media type of OCI image manifests.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of OCI image indexes.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of OCI image configs.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Annotation holding a tag in an OCI layout index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A blob held in memory (config, manifest) with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBlob {
    /// Canonical bytes.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
}

impl JsonBlob {
    fn of<T: serde::Serialize>(v: &T) -> Result<JsonBlob, ImageError> {
        let bytes = canonical::to_vec(v).map_err(|e| ImageError(format!("serialising JSON: {e}")))?;
        let digest = Digest::of(&bytes);
        Ok(JsonBlob { bytes, digest })
    }
}

/// An image-building error (bad values that the spec check did not catch).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(pub String);

/// One layer as it goes into the image.
#[derive(Debug, Clone)]
pub struct ImageLayer {
    /// The blob.
    pub blob: LayerBlob,
    /// History line (`created_by`).
    pub created_by: String,
    /// Annotations on the layer descriptor.
    pub annotations: BTreeMap<String, String>,
}

/// Runtime settings for the config.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// User.
    pub user: Option<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Environment, sorted by name.
    pub env: BTreeMap<String, String>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Exposed ports (`8888/tcp`), sorted.
    pub ports: Vec<String>,
    /// Volumes, sorted.
    pub volumes: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
}

/// Everything a finished image consists of.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The config blob.
    pub config: JsonBlob,
    /// The manifest blob.
    pub manifest: JsonBlob,
    /// The layers, bottom first.
    pub layers: Vec<ImageLayer>,
    /// Platform `os`.
    pub os: String,
    /// Platform `architecture`.
    pub architecture: String,
    /// Platform variant.
    pub variant: Option<String>,
}

impl BuiltImage {
    /// The manifest descriptor (for an index), with optional annotations.
    pub fn manifest_descriptor(&self, annotations: BTreeMap<String, String>) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            self.manifest.bytes.len() as u64,
            oci_digest(&self.manifest.digest),
        );
        let platform = {
            let mut b = PlatformBuilder::default()
                .architecture(Arch::from(self.architecture.as_str()))
                .os(Os::from(self.os.as_str()));
            if let Some(v) = &self.variant {
                b = b.variant(v.clone());
            }
            b.build().ok()
        };
        d.set_platform(platform);
        if !annotations.is_empty() {
            d.set_annotations(Some(annotations.into_iter().collect::<HashMap<_, _>>()));
        }
        d
    }
}

/// Converts our digest type to oci-spec's.
pub fn oci_digest(d: &Digest) -> oci_spec::image::Digest {
    // Always valid: 64 lower-case hex characters.
    d.to_string().parse().unwrap_or_else(|_| unreachable!("sha256 digests are valid OCI digests"))
}

/// RFC 3339 UTC time for seconds since 1970 (no leap seconds).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs / 60) % 60, secs % 60)
}

/// Assembles config and manifest.
pub fn assemble(
    layers: Vec<ImageLayer>,
    runtime: &RuntimeConfig,
    platform: (&str, &str, Option<&str>),
    epoch: u64,
    manifest_annotations: &BTreeMap<String, String>,
) -> Result<BuiltImage, ImageError> {
    let e = |m: String| ImageError(m);
    let created = rfc3339(epoch);
    let mut cfg = ConfigBuilder::default();
    if let Some(u) = &runtime.user {
        cfg = cfg.user(u.clone());
    }
    if let Some(w) = &runtime.workdir {
        cfg = cfg.working_dir(w.clone());
    }
    if !runtime.env.is_empty() {
        cfg = cfg.env(runtime.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
    }
    if let Some(ep) = &runtime.entrypoint {
        cfg = cfg.entrypoint(ep.clone());
    }
    if let Some(c) = &runtime.cmd {
        cfg = cfg.cmd(c.clone());
    }
    if !runtime.ports.is_empty() {
        let mut p = runtime.ports.clone();
        p.sort();
        p.dedup();
        cfg = cfg.exposed_ports(p);
    }
    if !runtime.volumes.is_empty() {
        let mut v = runtime.volumes.clone();
        v.sort();
        v.dedup();
        cfg = cfg.volumes(v);
    }
    if !runtime.labels.is_empty() {
        cfg = cfg.labels(runtime.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    if let Some(s) = &runtime.stop_signal {
        cfg = cfg.stop_signal(s.clone());
    }
    let cfg = cfg.build().map_err(|x| e(x.to_string()))?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.blob.diff_id.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|x| e(x.to_string()))?;
    let history = layers
        .iter()
        .map(|l| HistoryBuilder::default().created(created.clone()).created_by(l.created_by.clone()).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|x| e(x.to_string()))?;
    let (os, arch, variant) = platform;
    let mut ic = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(Arch::from(arch))
        .os(Os::from(os))
        .config(cfg)
        .rootfs(rootfs)
        .history(history);
    if let Some(v) = variant {
        ic = ic.variant(v.to_string());
    }
    let ic = ic.build().map_err(|x| e(x.to_string()))?;
    let config = JsonBlob::of(&ic)?;

    let config_desc = Descriptor::new(MediaType::ImageConfig, config.bytes.len() as u64, oci_digest(&config.digest));
    let layer_descs = layers
        .iter()
        .map(|l| {
            let mut d =
                Descriptor::new(MediaType::Other(l.blob.media_type.clone()), l.blob.size, oci_digest(&l.blob.digest));
            if !l.annotations.is_empty() {
                d.set_annotations(Some(l.annotations.clone().into_iter().collect()));
            }
            d
        })
        .collect::<Vec<_>>();
    let mut mb = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(layer_descs);
    if !manifest_annotations.is_empty() {
        mb = mb.annotations(manifest_annotations.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let manifest = JsonBlob::of(&mb.build().map_err(|x| e(x.to_string()))?)?;
    Ok(BuiltImage {
        config,
        manifest,
        layers,
        os: os.to_string(),
        architecture: arch.to_string(),
        variant: variant.map(str::to_string),
    })
}

/// An OCI index over manifest descriptors, canonical bytes.
pub fn index_bytes(manifests: Vec<Descriptor>) -> Result<Vec<u8>, ImageError> {
    let idx = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|x| ImageError(x.to_string()))?;
    canonical::to_vec(&idx).map_err(|x| ImageError(x.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_201_599), "2025-11-26T23:59:59Z");
    }
}
