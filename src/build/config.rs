//! What a spec says about the image beyond its layers: compression, the
//! runtime config (with the GPU stack's labels and environment, and the
//! verifier as the entrypoint), and the manifest annotations.

use std::collections::BTreeMap;

use crate::compress::Compression;
use crate::digest::Digest;
use crate::image::RuntimeConfig;
use crate::sources::verifier::{Verifier, VERIFIER_PATH};
use crate::spec::{parse_port, LoadedSpec};

/// The compression settings of a spec.
pub fn compression_of(spec: &LoadedSpec) -> Compression {
    match &spec.spec.compression {
        Some(c) => {
            let mut comp =
                Compression::new(c.algorithm, c.level.unwrap_or_else(|| Compression::default_level(c.algorithm)));
            if let Some(s) = c.splice {
                comp.splice = s && c.algorithm == crate::compress::Algorithm::Gzip;
            }
            comp
        }
        None => Compression::DEFAULT,
    }
}

/// The runtime config: the spec's `config:`, the `gpu:` section's labels and
/// environment, a default `PATH`, and with a verifier, the verifier as the
/// entrypoint (`strata-verify -- <entrypoint>`, `cmd` kept) and what it must
/// check in the environment and labels.
pub fn runtime_config(spec: &LoadedSpec, verifier: Option<&Verifier>) -> RuntimeConfig {
    let mut rc = RuntimeConfig::default();
    if let Some(c) = &spec.spec.config {
        rc.user = c.user.clone();
        rc.workdir = c.workdir.as_ref().map(|p| p.0.clone());
        rc.env = c.env.clone();
        rc.entrypoint = c.entrypoint.clone();
        rc.cmd = c.cmd.clone();
        rc.ports = c.ports.iter().filter_map(|p| parse_port(p)).collect();
        rc.volumes = c.volumes.iter().map(|v| v.0.clone()).collect();
        rc.labels = c.labels.clone();
        rc.stop_signal = c.stop_signal.clone();
        rc.healthcheck = c.healthcheck.as_ref().map(healthcheck);
    }
    if let Some(gpu) = &spec.spec.gpu {
        let (labels, env) = crate::cuda::labels_and_env(gpu);
        for (k, v) in labels {
            rc.labels.entry(k).or_insert(v);
        }
        for (k, v) in env {
            rc.env.entry(k).or_insert(v);
        }
    }
    if !rc.env.contains_key("PATH") {
        rc.env.insert("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if let (Some(v), Some(gpu)) = (verifier, &spec.spec.gpu) {
        let mut ep = vec![VERIFIER_PATH.to_string(), "--".to_string()];
        ep.extend(rc.entrypoint.take().unwrap_or_default());
        rc.entrypoint = Some(ep);
        let arch = gpu.arch.clone().unwrap_or_else(|| vec!["sm_80".into(), "sm_90".into()]);
        rc.env.entry("STRATA_CUDA_VERSION".into()).or_insert_with(|| gpu.cuda.clone());
        rc.env.entry("STRATA_ALLOWED_SM".into()).or_insert_with(|| arch.join(","));
        rc.env.entry("STRATA_VERIFY".into()).or_insert_with(|| gpu.verify.clone().unwrap_or_else(|| "quick".into()));
        rc.labels.insert("dev.strata.verifier.sha256".into(), v.sha256.to_string());
        rc.labels.insert("dev.strata.gpu.cuda".into(), gpu.cuda.clone());
        rc.labels.insert("dev.strata.gpu.arch".into(), arch.join(","));
    }
    rc
}

/// The image config's health check. Durations were checked when the spec
/// was loaded; they are written in nanoseconds, as Docker does.
fn healthcheck(h: &crate::spec::HealthcheckSpec) -> crate::oci::Healthcheck {
    let ns = |d: &Option<String>| -> Option<u64> {
        let d = crate::units::parse_duration(d.as_deref()?).ok()?;
        u64::try_from(d.as_nanos()).ok()
    };
    crate::oci::Healthcheck {
        test: h.test.to_config(),
        interval: ns(&h.interval),
        timeout: ns(&h.timeout),
        start_period: ns(&h.start_period),
        start_interval: ns(&h.start_interval),
        retries: h.retries,
    }
}

/// The manifest annotations: the spec's, the creation time, the spec
/// checksum, the title, a note when the lock was not enforced, and with
/// `annotations_from_labels`, the config's `labels` (an annotation set
/// otherwise keeps its value).
pub fn annotations(
    spec: &LoadedSpec,
    epoch: u64,
    spec_checksum: &Digest,
    unlocked: bool,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut a = spec.spec.annotations.clone();
    a.insert(crate::oci::CREATED.into(), crate::oci::rfc3339(epoch));
    a.insert("dev.strata.spec.sha256".into(), spec_checksum.to_string());
    if unlocked {
        a.insert("dev.strata.unlocked".into(), "true: built with --unlocked; the lock was not enforced".into());
    }
    a.insert("org.opencontainers.image.title".into(), spec.spec.name.clone());
    if spec.spec.annotations_from_labels {
        for (k, v) in labels {
            a.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    a
}
