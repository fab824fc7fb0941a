//! `strata inspect`.

use clap::Args;
use serde_json::{json, Value};
use strata::digest::Digest;
use strata::report::human_bytes;

use super::out;
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
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn open(args: &InspectArgs, global: &GlobalArgs) -> anyhow::Result<Box<dyn strata::image::read::ImageSource>> {
    if args.source.starts_with("docker://") {
        let r = strata::registry::Reference::parse(&args.source)?;
        let reporter = std::sync::Arc::new(super::progress::CliReporter::new(global.quiet));
        let client = strata::registry::Client::new(args.registry.options(global)?, reporter)?;
        return Ok(Box::new(client.open(&r)?));
    }
    Ok(strata::image::read::open(&args.source)?)
}

pub fn run(args: InspectArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let src = open(&args, global)?;
    if args.sbom {
        let doc = src.sbom()?.ok_or_else(|| anyhow::anyhow!("{}: no SBOM is attached to this image\nhint: images built by strata carry one; for docker-archive outputs it is the file FILE.spdx.json beside the archive", args.source))?;
        let v: Value = serde_json::from_slice(&doc)?;
        out(&serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let m = src.manifest()?;
    let root = src.root()?;
    let manifest: Value = serde_json::from_slice(&m.bytes)?;
    let cfg_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .and_then(|d| Digest::parse(d).ok())
        .ok_or_else(|| anyhow::anyhow!("{}: the manifest has no config digest", args.source))?;
    let config: Value = serde_json::from_slice(&src.blob_bytes(&cfg_digest)?)?;
    if args.json {
        out(&serde_json::to_string_pretty(&json!({
            "source": args.source,
            "manifest_digest": if m.native { Value::String(m.digest.to_string()) } else { Value::Null },
            "index_digest": if root.digest != m.digest { Value::String(root.digest.to_string()) } else { Value::Null },
            "media_type": m.media_type,
            "manifest": manifest,
            "config_digest": cfg_digest.to_string(),
            "config": config,
        }))?)?;
        return Ok(());
    }
    let s = |p: &str| {
        config
            .pointer(p)
            .map(|v| if let Value::String(s) = v { s.clone() } else { v.to_string() })
            .unwrap_or_else(|| "-".into())
    };
    if root.digest != m.digest {
        out(&format!("index       {}  ({}, {} bytes)", root.digest, root.media_type, root.bytes.len()))?;
    }
    if m.native {
        out(&format!("manifest    {}  ({}, {} bytes)", m.digest, m.media_type, m.bytes.len()))?;
    } else {
        out("manifest    (none: docker-archive; shown as an equivalent OCI manifest)")?;
    }
    out(&format!("config      {cfg_digest}"))?;
    out(&format!("platform    {}/{}", s("/os"), s("/architecture")))?;
    out(&format!("created     {}", s("/created")))?;
    out(&format!("user        {}", s("/config/User")))?;
    out(&format!("workdir     {}", s("/config/WorkingDir")))?;
    out(&format!("entrypoint  {}", s("/config/Entrypoint")))?;
    out(&format!("cmd         {}", s("/config/Cmd")))?;
    if let Some(env) = config.pointer("/config/Env").and_then(Value::as_array) {
        for e in env {
            out(&format!("env         {}", e.as_str().unwrap_or_default()))?;
        }
    }
    let diff_ids = config.pointer("/rootfs/diff_ids").and_then(Value::as_array).cloned().unwrap_or_default();
    let layers = manifest.get("layers").and_then(Value::as_array).cloned().unwrap_or_default();
    let total: u64 = layers.iter().filter_map(|l| l.get("size").and_then(Value::as_u64)).sum();
    out(&format!("layers      {} ({})", layers.len(), human_bytes(total)))?;
    for (i, l) in layers.iter().enumerate() {
        let name = l.pointer("/annotations/dev.strata.layer.name").and_then(Value::as_str).unwrap_or("");
        let mt = l.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let comp = mt.rsplit('+').next().filter(|c| *c != mt).unwrap_or("tar");
        out(&format!(
            "  {:>3}  {}  {:>10}  {:<5} diff_id {}  {}",
            i + 1,
            l.get("digest").and_then(Value::as_str).unwrap_or(""),
            human_bytes(l.get("size").and_then(Value::as_u64).unwrap_or(0)),
            comp,
            diff_ids.get(i).and_then(Value::as_str).unwrap_or("?"),
            name
        ))?;
    }
    Ok(())
}
