//! `strata inspect`.

use std::sync::Arc;

use clap::Args;
use serde_json::{json, Value};
use strata::image::Image;
use strata::oci::{ImageRef, Platform};
use strata::report::human_bytes;
use strata::transport::Transport;

use super::out;
use super::progress::CliReporter;
use super::push::RegistryArgs;
use crate::GlobalArgs;

/// Show an image's manifest digest, config and layers.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or docker://HOST/NAME[:TAG|@DIGEST].
    pub source: String,
    /// Print manifest and config as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the image's SBOM (SPDX 2.3 JSON) instead.
    #[arg(long, conflicts_with = "json")]
    pub sbom: bool,
    /// Which image of an index (OS/ARCH).
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// A value or `-`.
fn or_dash(v: Option<&str>) -> String {
    v.map(str::to_string).unwrap_or_else(|| "-".into())
}

/// A list as JSON, or `-`.
fn list_or_dash(v: Option<&Vec<String>>) -> String {
    v.map(|l| serde_json::to_string(l).unwrap_or_default()).unwrap_or_else(|| "-".into())
}

/// One line per value (`-` for none), the name in the first column.
fn each(name: &str, values: &[String]) -> anyhow::Result<()> {
    if values.is_empty() {
        return out(&format!("{name:<12}-"));
    }
    for v in values {
        out(&format!("{name:<12}{v}"))?;
    }
    Ok(())
}

/// Nanoseconds as a duration a user writes (`30s`, `1m`, `250ms`).
fn duration(ns: u64) -> String {
    for (unit, n) in [("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000)] {
        if ns >= n && ns.is_multiple_of(n) {
            return format!("{}{unit}", ns / n);
        }
    }
    format!("{ns}ns")
}

/// A health check on one line: the test, then what is set of its timing.
fn healthcheck(h: &strata::oci::Healthcheck) -> String {
    let mut s = serde_json::to_string(&h.test).unwrap_or_default();
    for (name, v) in [
        ("interval", h.interval),
        ("timeout", h.timeout),
        ("start period", h.start_period),
        ("start interval", h.start_interval),
    ] {
        if let Some(ns) = v {
            s.push_str(&format!(", {name} {}", duration(ns)));
        }
    }
    if let Some(r) = h.retries {
        s.push_str(&format!(", retries {r}"));
    }
    s
}

pub fn run(args: InspectArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let transport = Transport::new(args.registry.options(global)?, Arc::new(CliReporter::new(global.quiet)));
    let src = transport.open(&ImageRef::parse(&args.source)?)?;
    let platform = Platform::parse(&args.platform)
        .ok_or_else(|| anyhow::anyhow!("--platform `{}` is not OS/ARCH (e.g. linux/arm64)", args.platform))?;
    let image = Image::open(src.as_ref(), &platform)?;
    if args.sbom {
        let doc = image.sbom()?.ok_or_else(|| anyhow::anyhow!("{}: no SBOM is attached to this image\nhint: images built by strata carry one; for docker-archive outputs it is the file FILE.spdx.json beside the archive", args.source))?;
        let v: Value = serde_json::from_slice(&doc)?;
        out(&serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let (config_bytes, config) = image.config()?;
    let (m, cfg_digest) = (&image.raw, image.manifest.config.digest);
    if args.json {
        // The documents as stored, every field included.
        let manifest: Value = serde_json::from_slice(&m.bytes)?;
        let config: Value = serde_json::from_slice(&config_bytes)?;
        out(&serde_json::to_string_pretty(&json!({
            "source": args.source,
            "manifest_digest": if image.native() { Value::String(m.digest.to_string()) } else { Value::Null },
            "index_digest": image.index.as_ref().map(|i| i.digest.to_string()),
            "media_type": m.media_type,
            "manifest": manifest,
            "config_digest": cfg_digest.to_string(),
            "config": config,
        }))?)?;
        return Ok(());
    }
    if let Some(i) = &image.index {
        out(&format!("index       {}  ({}, {} bytes)", i.digest, i.media_type, i.bytes.len()))?;
    }
    if image.native() {
        out(&format!("manifest    {}  ({}, {} bytes)", m.digest, m.media_type, m.bytes.len()))?;
    } else {
        out("manifest    (none: docker-archive; shown as an equivalent OCI manifest)")?;
    }
    let rt = config.config.clone().unwrap_or_default();
    out(&format!("config      {cfg_digest}"))?;
    let variant = config.variant.as_deref().map(|v| format!("/{v}")).unwrap_or_default();
    out(&format!("platform    {}/{}{variant}", config.os, config.architecture))?;
    out(&format!("created     {}", or_dash(config.created.as_deref())))?;
    out(&format!("user        {}", or_dash(rt.user.as_deref())))?;
    out(&format!("workdir     {}", or_dash(rt.working_dir.as_deref())))?;
    out(&format!("entrypoint  {}", list_or_dash(rt.entrypoint.as_ref())))?;
    out(&format!("cmd         {}", list_or_dash(rt.cmd.as_ref())))?;
    let env: Vec<String> = rt.env.iter().flatten().cloned().collect();
    let keys = |m: &Option<std::collections::BTreeMap<String, strata::oci::Empty>>| -> Vec<String> {
        m.iter().flatten().map(|(k, _)| k.clone()).collect()
    };
    let pairs = |m: Option<&std::collections::BTreeMap<String, String>>| -> Vec<String> {
        m.into_iter().flatten().map(|(k, v)| format!("{k}={}", strata::report::one_line(v))).collect()
    };
    each("env", &env)?;
    each("ports", &keys(&rt.exposed_ports))?;
    each("volumes", &keys(&rt.volumes))?;
    each("label", &pairs(rt.labels.as_ref()))?;
    out(&format!("healthcheck {}", rt.healthcheck.as_ref().map_or_else(|| "-".into(), healthcheck)))?;
    out(&format!("stopsignal  {}", or_dash(rt.stop_signal.as_deref())))?;
    each("annotation", &pairs(Some(&image.manifest.annotations)))?;
    let layers = image.layers();
    let total: u64 = layers.iter().map(|l| l.size).sum();
    out(&format!("layers      {} ({})", layers.len(), human_bytes(total)))?;
    for (i, l) in layers.iter().enumerate() {
        let name = l.annotation("dev.strata.layer.name").unwrap_or("");
        let mt = l.media_type.as_str();
        let comp = mt.rsplit('+').next().filter(|c| *c != mt).unwrap_or("tar");
        out(&format!(
            "  {:>3}  {}  {:>10}  {:<5} diff_id {}  {}",
            i + 1,
            l.digest,
            human_bytes(l.size),
            comp,
            config.rootfs.diff_ids.get(i).map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
            name
        ))?;
    }
    Ok(())
}
