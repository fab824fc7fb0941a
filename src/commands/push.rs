//! `strata push`, and the registry options `build --push`, `pull` and
//! `inspect docker://` share.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use strata::image::BlobAction;
use strata::oci::{ImageRef, Reference};
use strata::registry::{creds, ClientOptions, CredentialOptions, PushOptions, PushSummary, RegistrySink};
use strata::report::human_bytes;
use strata::transport::Transport;

use super::out;
use super::progress::CliReporter;
use crate::GlobalArgs;

/// How to reach and authenticate to registries.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Credentials for the registry. Prefer STRATA_REGISTRY_USER and
    /// STRATA_REGISTRY_PASSWORD: arguments are visible in the process list.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Auth file (docker config.json / podman auth.json format). Default:
    /// $REGISTRY_AUTH_FILE, then podman's and docker's usual files.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Use no credentials.
    #[arg(long, conflicts_with_all = ["creds", "authfile"])]
    pub anonymous: bool,
    /// Allow plain HTTP and unverified TLS for HOST[:PORT]. Repeatable.
    /// Loopback hosts (127.0.0.0/8, ::1, localhost) may always use HTTP.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Extra attempts on connection errors, 408, 429 and 5xx answers.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: u32,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
}

/// Upload settings.
#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// Upload blobs in chunks of SIZE (e.g. 4MiB; raised to the registry's
    /// OCI-Chunk-Min-Length) instead of one streamed request per blob.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// Mount blobs from this repository of the same registry when it has
    /// them. Default: repositories remembered from earlier pushes and pulls.
    #[arg(long, value_name = "REPO")]
    pub from: Option<String>,
}

fn parse_size(s: &str) -> Result<u64, strata::units::QuantityError> {
    strata::units::parse_size(s)
}

impl RegistryArgs {
    /// Client options from flags, environment and cache location.
    pub fn options(&self, global: &GlobalArgs) -> anyhow::Result<ClientOptions> {
        let explicit = match &self.creds {
            Some(c) => Some(creds::parse_user_pass(c)?),
            None => None,
        };
        Ok(ClientOptions {
            credentials: CredentialOptions {
                explicit,
                authfile: self.authfile.clone(),
                anonymous: self.anonymous,
                ..Default::default()
            },
            net: super::net_options(global, &[])?,
            insecure_registries: self.insecure_registry.clone(),
            retries: self.retries,
            concurrency: self.jobs.max(1),
            memory: Some(ClientOptions::memory_in(&global.cache_dir())),
            ..ClientOptions::default()
        })
    }
}

/// Push an image from a layout or archive to a registry.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// oci:DIR[:TAG] or oci-archive:FILE[:TAG].
    pub source: String,
    /// Destination: HOST[:PORT]/NAME[:TAG] (`docker://` optional; tag default `latest`).
    pub reference: String,
    #[command(flatten)]
    pub upload: UploadArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print a JSON summary (every blob: uploaded, mounted or skipped) instead of the digest.
    #[arg(long)]
    pub json: bool,
}

/// `pushed host/app:1.0 (3 blobs: 2 uploaded 1.2 MiB, 1 mounted, 0 skipped) in 0.4s`
pub fn describe(s: &PushSummary) -> String {
    transfer_line("pushed", s)
}

/// `VERB DEST (3 blobs: 2 uploaded 1.2 MiB, 1 mounted, 0 already there) in 0.4s`
/// (`written` instead of `uploaded` for layouts and archives).
pub fn transfer_line(verb: &str, s: &PushSummary) -> String {
    let count = |a: BlobAction| s.blobs.iter().filter(|b| b.action == a).count();
    let (moved, word) = match count(BlobAction::Written) {
        0 => (count(BlobAction::Uploaded), "uploaded"),
        n => (n, "written"),
    };
    format!(
        "{verb} {} ({} blobs: {moved} {word} {}, {} mounted, {} already there) in {:.1}s",
        s.reference,
        s.blobs.len(),
        human_bytes(s.bytes_sent),
        count(BlobAction::Mounted),
        count(BlobAction::Skipped),
        s.seconds
    )
}

pub fn run(args: PushArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.source.starts_with("docker://") {
        anyhow::bail!("`{}`: push reads local images (oci:DIR[:TAG] or oci-archive:FILE[:TAG])\nhint: to copy between registries: `strata copy {} docker://DEST`", args.source, args.source);
    }
    let dest = Reference::parse(&args.reference)?;
    let loc = ImageRef::parse(&args.source)?;
    let mut opts = args.registry.options(global)?;
    opts.chunk_size = args.upload.chunk_size;
    let transport = Transport::new(opts, Arc::new(CliReporter::new(global.quiet)));
    let src = transport.open(&loc).with_context(|| format!("opening {}", args.source))?;
    let sink = RegistrySink::new(transport.client()?, dest, PushOptions { mount_from: args.upload.from.clone() });
    let summary = strata::transport::copy(src.as_ref(), &sink)?;
    if !global.quiet {
        eprintln!("{}", describe(&summary));
    }
    if args.json {
        out(&serde_json::to_string_pretty(&summary)?)?;
    } else {
        out(&summary.digest.to_string())?;
    }
    Ok(())
}
