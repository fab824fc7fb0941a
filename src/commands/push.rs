//! `strata push`, and the registry options `build --push`, `pull` and
//! `inspect docker://` share.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use strata::registry::{
    creds, BlobAction, Client, ClientOptions, CredentialOptions, PushOptions, PushSummary, Reference,
};
use strata::report::human_bytes;

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
    /// Also trust the CA certificates in this PEM file. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
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

fn parse_size(s: &str) -> Result<u64, String> {
    strata::registry::parse_size(s)
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
            ca_files: self.ca_file.clone(),
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
    let count = |a: BlobAction| s.blobs.iter().filter(|b| b.action == a).count();
    format!(
        "pushed {} ({} blobs: {} uploaded {}, {} mounted, {} already there) in {:.1}s",
        s.reference,
        s.blobs.len(),
        count(BlobAction::Uploaded),
        human_bytes(s.bytes_sent),
        count(BlobAction::Mounted),
        count(BlobAction::Skipped),
        s.seconds
    )
}

/// Pushes `src` with the given settings; used by `push` and `build --push`.
pub fn push_source(
    src: &dyn strata::image::read::ImageSource,
    dest: &Reference,
    upload: &UploadArgs,
    registry: &RegistryArgs,
    global: &GlobalArgs,
) -> anyhow::Result<PushSummary> {
    let mut opts = registry.options(global)?;
    opts.chunk_size = upload.chunk_size;
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let client = Client::new(opts, reporter)?;
    let summary = client.push(src, dest, &PushOptions { mount_from: upload.from.clone() })?;
    if !global.quiet {
        eprintln!("{}", describe(&summary));
    }
    Ok(summary)
}

pub fn run(args: PushArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.source.starts_with("docker://") {
        anyhow::bail!("`{}`: push reads local images (oci:DIR[:TAG] or oci-archive:FILE[:TAG])\nhint: to copy between registries, pull first: `strata pull REF -o oci:DIR` then `strata push oci:DIR REF`", args.source);
    }
    let dest = Reference::parse(&args.reference)?;
    let src = strata::image::read::open(&args.source).with_context(|| format!("opening {}", args.source))?;
    let summary = push_source(src.as_ref(), &dest, &args.upload, &args.registry, global)?;
    if args.json {
        out(&serde_json::to_string_pretty(&summary)?)?;
    } else {
        out(&summary.digest.to_string())?;
    }
    Ok(())
}
