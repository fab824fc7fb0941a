//! `strata pull`.

use std::sync::Arc;

use clap::Args;
use serde_json::json;
use strata::image::layout::LayoutSink;
use strata::image::{BlobAction, Content, Image, Sink};
use strata::oci::{ImageRef, Platform, Reference};
use strata::report::human_bytes;

use super::out;
use super::progress::CliReporter;
use super::push::RegistryArgs;
use crate::GlobalArgs;

/// Pull an image from a registry into an OCI image layout.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// HOST[:PORT]/NAME[:TAG][@sha256:DIGEST] (`docker://` optional).
    pub reference: String,
    /// Where to write it: oci:DIR[:TAG] (tag default: the reference's, else `latest`).
    #[arg(short, long, value_name = "oci:DIR[:TAG]")]
    pub output: String,
    /// Platform to take from a multi-platform image.
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print a JSON summary instead of the digest.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PullArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let r = Reference::parse(&args.reference)?;
    let (dir, tag) = match ImageRef::parse(&args.output)? {
        ImageRef::Layout { dir, tag } => (dir, tag),
        _ => anyhow::bail!("`{}`: pull writes OCI image layouts only; use -o oci:DIR[:TAG]", args.output),
    };
    let platform = Platform::parse(&args.platform)
        .ok_or_else(|| anyhow::anyhow!("--platform `{}` is not OS/ARCH (e.g. linux/amd64)", args.platform))?;
    let tag = tag.or_else(|| r.tag.clone()).unwrap_or_else(|| "latest".into());
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let opts = args.registry.options(global)?;
    let jobs = opts.concurrency;
    let sink = LayoutSink::new(&dir, &tag, reporter.clone(), jobs)?;
    let client = strata::registry::Client::new(opts, reporter.clone())?;
    let src = client.open(&r)?;
    // The platform's image (not the whole index), with the artifacts that refer to it.
    let image = Image::open(&src, &platform)?;
    let content = Content::walk(&src, image.descriptor.clone(), true)?;
    let s = sink.write(&content)?;
    let index_digest = image.index.as_ref().map(|i| i.digest.to_string());
    let downloaded = s.blobs.iter().filter(|b| b.action == BlobAction::Written);
    let bytes_downloaded: u64 = downloaded.clone().map(|b| b.bytes_sent).sum();
    if !global.quiet {
        eprintln!(
            "pulled {r} → {} ({} blobs, {} downloaded {}) in {:.1}s",
            s.reference,
            s.blobs.len(),
            downloaded.count(),
            human_bytes(bytes_downloaded),
            s.seconds
        );
    }
    if args.json {
        let blobs: Vec<_> = s
            .blobs
            .iter()
            .map(|b| {
                let action = if b.action == BlobAction::Written { "downloaded" } else { "present" };
                json!({"digest": b.digest, "size": b.size, "action": action, "bytes": b.bytes_sent})
            })
            .collect();
        out(&serde_json::to_string_pretty(&json!({
            "reference": r.to_string(),
            "digest": s.digest,
            "media_type": s.media_type,
            "index_digest": index_digest,
            "output": s.reference,
            "tag": tag,
            "blobs": blobs,
            "referrers": s.referrers,
            "bytes_downloaded": bytes_downloaded,
            "seconds": s.seconds,
        }))?)?;
    } else {
        out(&s.digest.to_string())?;
    }
    Ok(())
}
