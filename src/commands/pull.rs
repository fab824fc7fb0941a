//! `strata pull`.

use std::sync::Arc;

use clap::Args;
use strata::image::layout::Output;
use strata::registry::{Client, PullOptions, Reference};
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
    let (dir, tag) = match Output::parse(&args.output)? {
        Output::OciDir { dir, tag } => (dir, tag),
        _ => anyhow::bail!("`{}`: pull writes OCI image layouts only; use -o oci:DIR[:TAG]", args.output),
    };
    let (os, arch) = args
        .platform
        .split_once('/')
        .map(|(o, a)| (o.to_string(), a.split('/').next().unwrap_or(a).to_string()))
        .ok_or_else(|| anyhow::anyhow!("--platform `{}` is not OS/ARCH (e.g. linux/amd64)", args.platform))?;
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let client = Client::new(args.registry.options(global)?, reporter)?;
    let s = client.pull(&r, &dir, tag.as_deref(), &PullOptions { platform: (os, arch) })?;
    if !global.quiet {
        let fresh = s.blobs.iter().filter(|b| b.action == "downloaded").count();
        eprintln!(
            "pulled {} → {} ({} blobs, {} downloaded {}) in {:.1}s",
            s.reference,
            s.output,
            s.blobs.len(),
            fresh,
            human_bytes(s.bytes_downloaded),
            s.seconds
        );
    }
    if args.json {
        out(&serde_json::to_string_pretty(&s)?)?;
    } else {
        out(&s.digest.to_string())?;
    }
    Ok(())
}
