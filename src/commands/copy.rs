//! `strata copy`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use strata::oci::ImageRef;
use strata::registry::PushOptions;
use strata::transport::Transport;

use super::out;
use super::progress::CliReporter;
use super::push::{transfer_line, RegistryArgs, UploadArgs};
use crate::GlobalArgs;

/// Copy an image (or a multi-platform index) with the artifacts that refer
/// to it, such as its SBOM, between layouts, archives and registries. The
/// manifest digest does not change.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or docker://HOST/NAME[:TAG|@DIGEST].
    pub source: String,
    /// Destination: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or docker://HOST/NAME[:TAG].
    /// Without a tag, the source's tag is kept (else `latest`).
    pub destination: String,
    #[command(flatten)]
    pub upload: UploadArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print a JSON summary (every blob and referrer) instead of the digest.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CopyArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let from = ImageRef::parse(&args.source)?;
    let mut to = ImageRef::parse(&args.destination)?;
    // A registry destination without a tag keeps the source's tag.
    if let (ImageRef::Registry(r), Some(t)) = (&mut to, from.tag()) {
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(t.to_string());
        }
    }
    let mut opts = args.registry.options(global)?;
    opts.chunk_size = args.upload.chunk_size;
    let transport = Transport::new(opts, Arc::new(CliReporter::new(global.quiet)));
    let src = transport.open(&from).with_context(|| format!("opening {from}"))?;
    let tag = from.tag().unwrap_or("latest").to_string();
    let name = match &from {
        ImageRef::Registry(r) => r.repository.rsplit('/').next().unwrap_or("image").to_string(),
        _ => "image".to_string(),
    };
    let sink = transport.sink(&to, &name, &tag, PushOptions { mount_from: args.upload.from.clone() })?;
    let report =
        strata::transport::copy(src.as_ref(), sink.as_ref()).with_context(|| format!("copying {from} to {to}"))?;
    if !global.quiet {
        eprintln!("{}", transfer_line("copied to", &report));
    }
    if args.json {
        out(&serde_json::to_string_pretty(&report)?)?;
    } else {
        out(&report.digest.to_string())?;
    }
    Ok(())
}
